import { Link } from "react-router";
import { useAccounts, useAutomations, useMe, useTemplates } from "../api/queries";
import { ErrorNote, Loading, Page } from "../components/ui";

/** The getting-started checklist: what to do next, in order. */
export default function OverviewPage() {
  const me = useMe();
  const accounts = useAccounts();
  const templates = useTemplates();
  const automations = useAutomations();
  if (me.isPending) return <Loading />;
  if (me.isError) return <ErrorNote error={me.error} />;
  const steps = [
    { done: (accounts.data?.length ?? 0) > 0, to: "/accounts", label: "Connect an Instagram account" },
    { done: (templates.data?.length ?? 0) > 0, to: "/templates", label: "Write a message template" },
    { done: (automations.data?.length ?? 0) > 0, to: "/automations", label: "Create an automation" },
    { done: false, to: "/logs", label: "Watch the decisions in the logs" },
  ];
  return (
    <Page title={`Welcome to ${me.data.tenant.name}`}>
      <p>
        Plan <strong>{me.data.tenant.plan_code}</strong> · you are <strong>{me.data.role}</strong> · workspace id{" "}
        <code>{me.data.tenant.id}</code>
      </p>
      <ErrorNote error={accounts.error ?? templates.error ?? automations.error} />
      <h2>Get started</h2>
      <ol className="checklist">
        {steps.map((step) => (
          <li key={step.to} className={step.done ? "done" : ""}>
            <Link to={step.to}>{step.label}</Link> {step.done ? <span className="badge ok">done</span> : null}
          </li>
        ))}
      </ol>
    </Page>
  );
}

export function NotFoundPage() {
  return (
    <Page title="Page not found">
      <p>
        There is no page here. <Link to="/">Go to the overview</Link>.
      </p>
    </Page>
  );
}
