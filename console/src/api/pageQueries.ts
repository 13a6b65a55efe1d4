// The logs and stats pages' queries, from the URL alone: the page renders them, and the route's loader
// starts them at navigation time, in parallel with the page's own chunk, instead of after it (the
// waterfall HTML -> entry JS -> page chunk -> API calls becomes HTML -> entry JS -> chunk + API calls).
import { api, unwrap } from "./client";

const ACTIONS = ["matched", "skipped", "queued", "parked", "deferred", "sent", "failed", "unknown"] as const;
const STATUSES = ["sent", "failed", "skipped", "deferred", "parked", "queued", "unknown"] as const;
export { ACTIONS, STATUSES };
type Action = (typeof ACTIONS)[number];
type Status = (typeof STATUSES)[number];
export const LOG_PAGE = 50;
export const STATS_RANGES = [7, 30, 90];

export interface LogRow {
  id: number;
  at: string;
  automation: string | null | undefined;
  what: string;
  why: string;
}

function iso(local: string | null): string | undefined {
  return local ? new Date(local).toISOString() : undefined;
}

function day(offset: number): string {
  return new Date(Date.now() - offset * 86_400_000).toISOString().slice(0, 10);
}

export const automationsQuery = {
  queryKey: ["automations"] as const,
  queryFn: async () => unwrap(await api.GET("/v1/automations")),
};
export const flowsQuery = { queryKey: ["flows"] as const, queryFn: async () => unwrap(await api.GET("/v1/flows")) };

export function logFilters(params: URLSearchParams) {
  const cursors = (params.get("cursors") ?? "").split(" ").filter(Boolean);
  return {
    tab: params.get("tab") === "replies" ? ("replies" as const) : ("decisions" as const),
    automationId: params.get("automation") || undefined,
    kind: params.get("kind") || undefined,
    since: iso(params.get("since")),
    until: iso(params.get("until")),
    cursors,
    cursor: cursors.at(-1),
  };
}

export function logsQuery(params: URLSearchParams) {
  const { tab, automationId, kind, since, until, cursor } = logFilters(params);
  const common = { automation_id: automationId, since, until, cursor, limit: LOG_PAGE };
  return {
    queryKey: ["logs", tab, automationId, kind, since, until, cursor],
    queryFn: async (): Promise<{ next: string | null | undefined; rows: LogRow[] }> => {
      if (tab === "replies") {
        const page = unwrap(await api.GET("/v1/logs/replies", { params: { query: { ...common, status: kind as Status | undefined } } }));
        return {
          next: page.next_cursor,
          rows: page.items.map((r) => ({
            id: r.id,
            at: r.created_at,
            automation: r.automation_id,
            what: `${r.kind} ${r.status}`,
            why: [r.error_code, r.detail, r.text].filter(Boolean).join(" · "),
          })),
        };
      }
      const page = unwrap(await api.GET("/v1/logs/automations", { params: { query: { ...common, action: kind as Action | undefined } } }));
      return {
        next: page.next_cursor,
        rows: page.items.map((r) => ({
          id: r.id,
          at: r.created_at,
          automation: r.automation_id,
          what: r.action,
          why: [r.reason, r.detail].filter(Boolean).join(" · "),
        })),
      };
    },
  };
}

export function statsRange(params: URLSearchParams) {
  const range = Number(params.get("days")) || 30;
  return { range, since: day(range - 1), until: day(0) };
}

export function statsQuery(params: URLSearchParams) {
  const { since, until } = statsRange(params);
  return {
    queryKey: ["stats", since, until],
    queryFn: async () => unwrap(await api.GET("/v1/stats", { params: { query: { since, until } } })),
  };
}

export function skippedQuery(params: URLSearchParams) {
  const { since } = statsRange(params);
  return {
    queryKey: ["skipped-reasons", since],
    queryFn: async () =>
      unwrap(await api.GET("/v1/logs/automations", { params: { query: { action: "skipped", since: since + "T00:00:00Z", limit: 200 } } })),
  };
}
