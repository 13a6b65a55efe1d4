// Outcomes per day and per automation (GET /v1/stats), and skips by reason (the latest skipped
// decisions of the range: the stats endpoint counts outcomes, not reasons).
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useMemo } from "react";
import { useSearchParams } from "react-router";
import { type Schemas } from "../api/client";
import { STATS_RANGES, skippedQuery, statsQuery, statsRange } from "../api/pageQueries";
import { useAutomations, useFlows } from "../api/queries";
import { DailyChart, type Series } from "../components/Chart";
import { Empty, ErrorNote, Loading, Page } from "../components/ui";

const COLORS: Record<string, string> = { sent: "#1a7f37", skipped: "#9a6700", failed: "#cf222e", matched: "#0969da" };

export function dailySeries(view: Schemas["StatsView"], outcomes: string[]): { days: string[]; series: Series[] } {
  const days: string[] = [];
  for (let d = new Date(view.since + "T00:00:00Z"); d <= new Date(view.until + "T00:00:00Z"); d.setUTCDate(d.getUTCDate() + 1)) {
    days.push(d.toISOString().slice(0, 10));
  }
  const index = new Map(days.map((d, i) => [d, i]));
  const series = outcomes.map((outcome) => {
    const values = days.map(() => 0);
    for (const item of view.items) {
      const i = index.get(item.date);
      if (i !== undefined) values[i] += (item.counts as Record<string, number>)[outcome] ?? 0;
    }
    return { label: outcome, values, color: COLORS[outcome] ?? "#6e7781" };
  });
  return { days, series };
}

export function perAutomation(view: Schemas["StatsView"]): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  for (const item of view.items) {
    const key = item.automation_id ?? "";
    const row = out.get(key) ?? {};
    for (const [k, v] of Object.entries(item.counts as Record<string, number>)) row[k] = (row[k] ?? 0) + v;
    out.set(key, row);
  }
  return out;
}

export default function StatsPage() {
  const [params, setParams] = useSearchParams();
  const { range } = statsRange(params);
  const automations = useAutomations();
  const names = new Map(automations.data?.map((a) => [a.id, a.name]));
  const flows = useFlows();
  const flowNames = new Map(flows.data?.map((f) => [f.id, f.name]));
  const stats = useQuery({ ...statsQuery(params), placeholderData: keepPreviousData, refetchInterval: 5000 });
  const skipped = useQuery({ ...skippedQuery(params), refetchInterval: 15000 });
  const chart = useMemo(() => (stats.data ? dailySeries(stats.data, ["sent", "skipped", "failed"]) : null), [stats.data]);
  const reasons = useMemo(() => {
    const counts = new Map<string, number>();
    for (const row of skipped.data?.items ?? []) counts.set(row.reason ?? "unknown", (counts.get(row.reason ?? "unknown") ?? 0) + 1);
    return [...counts.entries()].sort((a, b) => b[1] - a[1]);
  }, [skipped.data]);
  const totals = (stats.data?.totals ?? {}) as Record<string, number>;
  const outcomes = Object.keys(totals).sort();
  const rows = stats.data ? [...perAutomation(stats.data).entries()] : [];
  return (
    <Page
      title="Stats"
      actions={
        <label>
          Range{" "}
          <select value={range} onChange={(e) => setParams({ days: e.target.value })}>
            {STATS_RANGES.map((r) => (
              <option key={r} value={r}>
                Last {r} days
              </option>
            ))}
          </select>
        </label>
      }
    >
      {stats.isPending ? <Loading /> : null}
      <ErrorNote error={stats.error ?? skipped.error ?? automations.error ?? flows.error} />
      {stats.data ? (
        <>
          <ul className="tiles" aria-label="Totals">
            {["sent", "skipped", "failed", "matched"].map((k) => (
              <li key={k} className="tile" data-testid={`total-${k}`}>
                <span className="tile-value">{totals[k] ?? 0}</span>
                <span className="tile-label">{k}</span>
              </li>
            ))}
          </ul>
          {outcomes.length === 0 ? (
            <Empty title="No activity in this range">
              <p>Counts appear once an automation handles its first event.</p>
            </Empty>
          ) : null}
          {chart ? <DailyChart title="Per day" days={chart.days} series={chart.series} /> : null}
          <h2>Per automation</h2>
          {rows.length ? (
            <div className="table-wrap" tabIndex={0} role="region" aria-label="Outcomes per automation">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Automation</th>
                    {outcomes.map((o) => (
                      <th scope="col" key={o}>
                        {o}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {rows.map(([id, counts]) => (
                    <tr key={id}>
                      <td>{id ? (names.get(id) ?? id) : "(no automation)"}</td>
                      {outcomes.map((o) => (
                        <td key={o}>{counts[o] ?? 0}</td>
                      ))}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : (
            <p className="muted">No automation has run in this range.</p>
          )}
          <h2>Flows</h2>
          {Object.keys(stats.data.flows ?? {}).length ? (
            <ul className="list">
              {Object.entries(stats.data.flows ?? {}).map(([flowId, counts]) => (
                <li key={flowId}>
                  {flowNames.get(flowId) ?? flowId}:{" "}
                  {Object.entries(counts)
                    .map(([outcome, n]) => `${outcome} ${n}`)
                    .join(", ")}
                </li>
              ))}
            </ul>
          ) : (
            <p className="muted">No flow has run yet.</p>
          )}
          <h2>Skipped by reason</h2>
          {!skipped.data ? null : reasons.length ? (
            <ul className="bars">
              {reasons.map(([reason, count]) => (
                <li key={reason}>
                  <span>{reason}</span>
                  <meter min={0} max={reasons[0][1]} value={count} aria-label={`${reason}: ${count}`} /> <span>{count}</span>
                </li>
              ))}
            </ul>
          ) : (
            <p className="muted">Nothing skipped.</p>
          )}
        </>
      ) : null}
    </Page>
  );
}
