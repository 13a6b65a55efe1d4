// Every decision and every reply, newest first, filtered in the URL and paged by the API's cursor.
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { Link, useSearchParams } from "react-router";
import { ACTIONS, STATUSES, logFilters, logsQuery } from "../api/pageQueries";
import { useAutomations } from "../api/queries";
import { Empty, ErrorNote, Loading, Page, formatDate } from "../components/ui";

export default function LogsPage() {
  const [params, setParams] = useSearchParams();
  const { tab, automationId, kind, cursors, cursor } = logFilters(params);
  const automations = useAutomations();
  const names = new Map(automations.data?.map((a) => [a.id, a.name]));

  const logs = useQuery({ ...logsQuery(params), placeholderData: keepPreviousData, refetchInterval: cursor ? false : 5000 });

  function set(changes: Record<string, string | null>) {
    const next = new URLSearchParams(params);
    for (const [key, value] of Object.entries(changes)) {
      if (value) next.set(key, value);
      else next.delete(key);
    }
    if (!("cursors" in changes)) next.delete("cursors");
    setParams(next);
  }

  const kinds = tab === "replies" ? STATUSES : ACTIONS;
  return (
    <Page title="Logs">
      <div className="tabs" role="tablist" aria-label="Log">
        <button type="button" role="tab" aria-selected={tab === "decisions"} onClick={() => set({ tab: null, kind: null })}>
          Decisions
        </button>
        <button type="button" role="tab" aria-selected={tab === "replies"} onClick={() => set({ tab: "replies", kind: null })}>
          Replies
        </button>
      </div>
      <form className="filters" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Automation
          <select value={automationId ?? ""} onChange={(e) => set({ automation: e.target.value })}>
            <option value="">All</option>
            {automations.data?.map((a) => (
              <option key={a.id} value={a.id}>
                {a.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          {tab === "replies" ? "Status" : "Decision"}
          <select value={kind ?? ""} onChange={(e) => set({ kind: e.target.value })}>
            <option value="">All</option>
            {kinds.map((k) => (
              <option key={k}>{k}</option>
            ))}
          </select>
        </label>
        <label>
          From
          <input type="datetime-local" value={params.get("since") ?? ""} onChange={(e) => set({ since: e.target.value })} />
        </label>
        <label>
          Until
          <input type="datetime-local" value={params.get("until") ?? ""} onChange={(e) => set({ until: e.target.value })} />
        </label>
      </form>
      {logs.isPending ? <Loading /> : null}
      <ErrorNote error={logs.error ?? automations.error} />
      {logs.data && logs.data.rows.length === 0 ? (
        <Empty title="Nothing logged yet">
          <p>When a comment, mention or DM arrives, each automation's decision and each reply appears here.</p>
          <p>
            Trying it out locally? <Link to="/accounts">Send a test comment from Accounts</Link>.
          </p>
        </Empty>
      ) : null}
      {logs.data && logs.data.rows.length > 0 ? (
        <div className="table-wrap" tabIndex={0} role="region" aria-label="Log entries">
          <table className="logs" data-testid="log-table">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Automation</th>
                <th scope="col">{tab === "replies" ? "Reply" : "Decision"}</th>
                <th scope="col">Why</th>
              </tr>
            </thead>
            <tbody>
              {logs.data.rows.map((row) => (
                <tr key={row.id}>
                  <td>{formatDate(row.at)}</td>
                  <td>{row.automation ? (names.get(row.automation) ?? row.automation) : "—"}</td>
                  <td>
                    <span className="badge">{row.what}</span>
                  </td>
                  <td>{row.why || "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <nav className="pager" aria-label="Pages">
        <button type="button" disabled={cursors.length === 0} onClick={() => set({ cursors: cursors.slice(0, -1).join(" ") })}>
          Newer
        </button>
        <button type="button" disabled={!logs.data?.next} onClick={() => set({ cursors: [...cursors, logs.data?.next ?? ""].join(" ") })}>
          Older
        </button>
      </nav>
    </Page>
  );
}
