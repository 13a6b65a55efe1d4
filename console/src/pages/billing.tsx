// The plan, usage against its limits and plan changes (POST /v1/subscriptions).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { keys, useAccounts, useAutomations, usePlans, useSubscription } from "../api/queries";
import { ErrorNote, Loading, Page, formatDate } from "../components/ui";

function Usage({ label, used, limit }: { label: string; used: number | undefined; limit: number }) {
  return (
    <li className="usage">
      <span>
        {label}: <strong>{used ?? "…"}</strong> of {limit}
      </span>
      <meter min={0} max={Math.max(1, limit)} value={used ?? 0} high={limit * 0.8} aria-label={`${label} used`} />
    </li>
  );
}

function monthStart(): string {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString().slice(0, 10);
}

export default function BillingPage() {
  const queryClient = useQueryClient();
  const subscription = useSubscription();
  const plans = usePlans();
  const accounts = useAccounts();
  const automations = useAutomations();
  const month = useQuery({
    queryKey: ["stats-month"],
    queryFn: async () => unwrap(await api.GET("/v1/stats", { params: { query: { since: monthStart() } } })),
  });
  const change = useMutation({
    mutationFn: async (plan_code: string) => unwrap(await api.POST("/v1/subscriptions", { body: { plan_code } })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: keys.subscription });
      void queryClient.invalidateQueries({ queryKey: keys.me });
    },
  });
  const cancel = useMutation({
    mutationFn: async () => unwrap(await api.POST("/v1/subscriptions/current/cancel")),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.subscription }),
  });
  if (subscription.isPending) return <Loading />;
  if (subscription.isError) return <ErrorNote error={subscription.error} />;
  const sub = subscription.data;
  const sent = ((month.data?.totals ?? {}) as Record<string, number>).sent;
  return (
    <Page title="Billing">
      <div className="card">
        <h2>
          {sub.plan.name} plan <span className="badge">{sub.status}</span>
        </h2>
        <p>
          Current period {formatDate(sub.current_period_start)} – {formatDate(sub.current_period_end)}
          {sub.cancel_at_period_end ? " · cancels at the end of the period" : ""}
        </p>
        <ul className="list">
          <Usage label="Instagram accounts" used={accounts.data?.length} limit={sub.plan.max_accounts} />
          <Usage label="Automations" used={automations.data?.length} limit={sub.plan.max_automations} />
          <Usage label="DMs sent this month" used={sent ?? (month.data ? 0 : undefined)} limit={sub.plan.monthly_dm_quota} />
        </ul>
        <p className="muted">
          {sub.plan.api_requests_per_minute} API requests per minute · logs kept {sub.plan.log_retention_days} days
        </p>
        {!sub.cancel_at_period_end && sub.plan.price_cents > 0 ? (
          <button type="button" className="danger" onClick={() => confirm("Cancel at the end of the period?") && cancel.mutate()}>
            Cancel the subscription
          </button>
        ) : null}
      </div>
      <ErrorNote error={change.error ?? cancel.error ?? plans.error} />
      <h2>Plans</h2>
      <ul className="cards plans">
        {plans.data?.map((plan) => (
          <li key={plan.code} className={plan.code === sub.plan_code ? "card current" : "card"}>
            <h3>{plan.name}</h3>
            <p className="price">{plan.price_cents === 0 ? "Free" : `$${(plan.price_cents / 100).toFixed(0)} / month`}</p>
            <ul>
              <li>{plan.max_accounts} accounts</li>
              <li>{plan.max_automations} automations</li>
              <li>{plan.monthly_dm_quota} DMs a month</li>
            </ul>
            {plan.code === sub.plan_code ? (
              <span className="badge ok">Current plan</span>
            ) : (
              <button type="button" className="primary" disabled={change.isPending} onClick={() => change.mutate(plan.code)}>
                Switch to {plan.name}
              </button>
            )}
          </li>
        ))}
      </ul>
    </Page>
  );
}
