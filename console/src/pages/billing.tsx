// Billing from GET /v1/billing: plan, status and why, period, renewal, grace end, usage against each
// limit, invoices, automations billing paused. Upgrades go through Stripe Checkout
// (POST /v1/billing/checkout) and everything else through the Customer Portal (POST /v1/billing/portal):
// the browser follows the returned URL; the plan changes when Stripe's webhook says so.
import { useMutation, useQuery } from "@tanstack/react-query";
import { useSearchParams } from "react-router";
import { api, unwrap, type Schemas } from "../api/client";
import { usePlans } from "../api/queries";
import { session } from "../api/session";
import { ErrorNote, Loading, Page, formatDate } from "../components/ui";

type Overview = Schemas["BillingOverview"];

export const billingKey = ["billing"] as const;

const LIMIT_LABELS: Record<string, string> = {
  monthly_dm_quota: "DMs sent this month",
  max_accounts: "Instagram accounts",
  max_automations: "Active automations",
  max_members: "Members",
};

export function limitLabel(limit: string): string {
  return LIMIT_LABELS[limit] ?? limit.replaceAll("_", " ");
}

export function formatMoney(cents: number, currency = "usd"): string {
  const amount = cents / 100;
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() }).format(amount);
  } catch {
    return `${amount.toFixed(2)} ${currency.toUpperCase()}`;
  }
}

export function statusTone(status: string): "ok" | "warn" | "bad" {
  if (status === "active" || status === "trialing") return "ok";
  if (status === "past_due") return "warn";
  return "bad";
}

/** Sends the browser to a Stripe page (Checkout or the Customer Portal). */
function follow(view: Schemas["RedirectView"]): void {
  window.location.assign(view.url);
}

function UsageItem({ line }: { line: Schemas["UsageLine"] }) {
  const label = limitLabel(line.limit);
  const over = line.used > line.allowed;
  return (
    <li className="usage" data-testid={`usage-${line.limit}`}>
      <span>
        {label}: <strong>{line.used}</strong> of {line.allowed}
        {over ? <span className="badge bad"> over the limit</span> : null}
      </span>
      <meter min={0} max={Math.max(1, line.allowed)} value={line.used} high={line.allowed * 0.8} aria-label={`${label} used`} />
    </li>
  );
}

function Invoices({ billing }: { billing: Overview }) {
  if (billing.invoices_unavailable) return <p className="muted">Invoices are unavailable right now; try again later.</p>;
  if (billing.invoices.length === 0) return <p className="muted">No invoices yet.</p>;
  return (
    <table data-testid="invoices">
      <thead>
        <tr>
          <th scope="col">Invoice</th>
          <th scope="col">Date</th>
          <th scope="col">Status</th>
          <th scope="col">Amount</th>
        </tr>
      </thead>
      <tbody>
        {billing.invoices.map((invoice) => (
          <tr key={invoice.id}>
            <td>
              {invoice.hosted_invoice_url ? (
                <a href={invoice.hosted_invoice_url} target="_blank" rel="noreferrer">
                  {invoice.number ?? invoice.id}
                </a>
              ) : (
                (invoice.number ?? invoice.id)
              )}
            </td>
            <td>{formatDate(invoice.created)}</td>
            <td>{invoice.status ?? "—"}</td>
            <td>{formatMoney(invoice.amount_paid || invoice.amount_due, invoice.currency)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The overview itself, without the network: what GET /v1/billing said. */
export function BillingSummary({ billing }: { billing: Overview }) {
  return (
    <>
      <div className="card" data-testid="billing-summary">
        <h2>
          {billing.plan_name} plan <span className={`badge ${statusTone(billing.status)}`}>{billing.status}</span>
        </h2>
        {billing.status_reason ? <p data-testid="status-reason">{billing.status_reason}</p> : null}
        {billing.status === "past_due" && billing.grace_until ? (
          <p className="error" role="status">
            Payment failed: the plan stays until {formatDate(billing.grace_until)}, then the workspace moves to the free plan.
          </p>
        ) : null}
        <p>
          {billing.price_cents === 0 ? "Free" : `${formatMoney(billing.price_cents)} / month`}
          {billing.current_period_start || billing.current_period_end
            ? ` · current period ${formatDate(billing.current_period_start)} – ${formatDate(billing.current_period_end)}`
            : ""}
        </p>
        <p>
          {billing.cancel_at_period_end
            ? `Cancels at the end of the period (${formatDate(billing.current_period_end)})`
            : billing.renews_at
              ? `Renews ${formatDate(billing.renews_at)}`
              : "No renewal"}
        </p>
        <h3>Usage</h3>
        <ul className="list" aria-label="Usage">
          {billing.usage.map((line) => (
            <UsageItem key={line.limit} line={line} />
          ))}
        </ul>
      </div>
      {billing.paused_automations.length > 0 ? (
        <div className="card" data-testid="paused-automations">
          <h2>Paused automations</h2>
          <ul className="list">
            {billing.paused_automations.map((automation) => (
              <li key={automation.id}>
                <strong>{automation.name}</strong> — {automation.reason}
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      <h2>Invoices</h2>
      <Invoices billing={billing} />
    </>
  );
}

export default function BillingPage() {
  const [params] = useSearchParams();
  const returned = params.get("checkout"); // Stripe sends the browser back with ?checkout=success|canceled
  const billing = useQuery({
    queryKey: billingKey,
    queryFn: async () => unwrap(await api.GET("/v1/billing")),
    // After a payment the plan changes when Stripe's webhook arrives: look again for about a minute.
    refetchInterval: (query) => (returned === "success" && query.state.dataUpdateCount < 20 ? 3000 : false),
  });
  const plans = usePlans();
  const isOwner = session.current()?.role === "owner";
  const checkout = useMutation({
    mutationFn: async (plan_code: string) => unwrap(await api.POST("/v1/billing/checkout", { body: { plan_code } })),
    onSuccess: follow,
  });
  const portal = useMutation({
    mutationFn: async () => unwrap(await api.POST("/v1/billing/portal")),
    onSuccess: follow,
  });
  if (billing.isPending) return <Loading />;
  if (billing.isError) return <ErrorNote error={billing.error} />;
  const current = billing.data;
  const busy = checkout.isPending || portal.isPending || checkout.isSuccess || portal.isSuccess;
  return (
    <Page
      title="Billing"
      actions={
        <button type="button" disabled={!isOwner || busy} onClick={() => portal.mutate()}>
          Manage billing
        </button>
      }
    >
      {returned === "success" ? (
        <p className="notice" role="status">
          Payment received: the plan changes as soon as Stripe confirms it.
        </p>
      ) : returned === "canceled" ? (
        <p className="muted" role="status">
          Checkout canceled: nothing changed.
        </p>
      ) : null}
      {!isOwner ? <p className="muted">Only the workspace owner can change the plan or manage billing.</p> : null}
      <ErrorNote error={checkout.error ?? portal.error ?? plans.error} />
      <BillingSummary billing={current} />
      <h2>Plans</h2>
      <ul className="cards plans">
        {plans.data?.map((plan) => (
          <li key={plan.code} className={plan.code === current.plan_code ? "card current" : "card"}>
            <h3>{plan.name}</h3>
            <p className="price">{plan.price_cents === 0 ? "Free" : `${formatMoney(plan.price_cents)} / month`}</p>
            <ul>
              <li>{plan.max_accounts} accounts</li>
              <li>{plan.max_automations} automations</li>
              <li>{plan.monthly_dm_quota} DMs a month</li>
            </ul>
            {plan.code === current.plan_code ? (
              <span className="badge ok">Current plan</span>
            ) : plan.price_cents > 0 && current.provider !== "stripe" ? (
              <button type="button" className="primary" disabled={!isOwner || busy} onClick={() => checkout.mutate(plan.code)}>
                Upgrade to {plan.name}
              </button>
            ) : plan.price_cents > 0 ? (
              <button type="button" disabled={!isOwner || busy} onClick={() => portal.mutate()}>
                Switch to {plan.name} in the portal
              </button>
            ) : (
              <span className="muted">Downgrade or cancel in Manage billing</span>
            )}
          </li>
        ))}
      </ul>
    </Page>
  );
}
