// Flows: a versioned graph of steps (send, wait, condition, delay, capture, tag, set field, public
// reply). The step editor edits the graph as cards, the API validates it on save (each issue names
// the step and the rule), and the simulator plays a conversation against the draft, showing every
// step's decision and every message as the DM it would be.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, unwrap, type Schemas } from "../api/client";
import { useAccounts } from "../api/queries";
import { DmPreview, fromSendApi, type PreviewButton } from "../components/DmPreview";
import { Empty, ErrorNote, Loading, Page } from "../components/ui";

type Step = Record<string, unknown> & { id: string; kind: string };
export interface Graph {
  entry: "comment" | "message";
  start: string;
  steps: Step[];
}
type FieldKind = "text" | "number" | "step" | "lines" | { options: string[] };
const KINDS: Record<string, [string, string, FieldKind][]> = {
  send: [
    ["text", "Text", "text"],
    ["buttons", "Buttons (one per line: Title | https://… or PAYLOAD)", "lines"],
    ["quick_replies", "Quick replies (one per line: Title | PAYLOAD)", "lines"],
    ["next", "Then", "step"],
  ],
  wait: [
    ["routes", "Routes (one per line: PAYLOAD -> step)", "lines"],
    ["on_text", "On any text", "step"],
    ["timeout_minutes", "Timeout (minutes)", "number"],
    ["on_timeout", "On timeout", "step"],
  ],
  condition: [
    ["test", "Test", { options: ["follows", "has_tag", "field_present", "field_matches", "random"] }],
    ["tag", "Tag", "text"],
    ["field", "Field", "text"],
    ["pattern", "Pattern", "text"],
    ["percent", "Percent (random)", "number"],
    ["then", "Then", "step"],
    ["else", "Else", "step"],
  ],
  delay: [
    ["minutes", "Minutes", "number"],
    ["next", "Then", "step"],
  ],
  capture: [
    ["field", "Capture", { options: ["email", "phone"] }],
    ["next", "Then", "step"],
    ["on_invalid", "On invalid", "step"],
  ],
  tag: [
    ["tag", "Tag", "text"],
    ["next", "Then", "step"],
  ],
  untag: [
    ["tag", "Tag", "text"],
    ["next", "Then", "step"],
  ],
  set_field: [
    ["field", "Field", "text"],
    ["value", "Value", "text"],
    ["next", "Then", "step"],
  ],
  public_reply: [
    ["text", "Reply text", "text"],
    ["next", "Then", "step"],
  ],
};

const EXAMPLE: Graph = {
  entry: "comment",
  start: "ask",
  steps: [
    {
      id: "ask",
      kind: "send",
      message: { text: "Hi! Want the guide?", buttons: [{ type: "postback", title: "Yes please", payload: "YES" }] },
      next: "wait",
    },
    { id: "wait", kind: "wait", routes: { YES: "link" }, timeout_minutes: 60 },
    { id: "link", kind: "send", message: { text: "Here it is: https://example.com/guide" } },
  ],
};

type Message = { text?: string; buttons?: PreviewButton[]; quick_replies?: { title?: string; payload?: string; content_type?: string }[] };

/** A step's field as the editor's text (lines for lists and maps). */
export function fieldText(step: Step, name: string): string {
  const message = (step.message ?? {}) as Message;
  if (step.kind === "send" && name === "text") return message.text ?? "";
  if (name === "buttons") return (message.buttons ?? []).map((b) => `${b.title} | ${b.url ?? b.payload ?? ""}`).join("\n");
  if (name === "quick_replies") return (message.quick_replies ?? []).map((q) => `${q.title ?? ""} | ${q.payload ?? ""}`).join("\n");
  if (name === "routes") return Object.entries((step.routes ?? {}) as Record<string, string>).map(([k, v]) => `${k} -> ${v}`).join("\n");
  const value = step[name];
  return value === undefined || value === null ? "" : String(value);
}

/** The step with one field set from the editor's text. */
export function withField(step: Step, name: string, text: string, kind: FieldKind): Step {
  const next: Step = { ...step };
  const message: Message = { ...((step.message ?? {}) as Message) };
  const pairs = (separator: string) =>
    text
      .split("\n")
      .map((line) => line.split(separator).map((part) => part.trim()))
      .filter(([left]) => left);
  if (step.kind === "send" && name === "text") {
    message.text = text;
    next.message = message;
  } else if (name === "buttons") {
    message.buttons = pairs("|").map(([title, target = ""]) =>
      /^https?:\/\//.test(target) ? { type: "web_url", title, url: target } : { type: "postback", title, payload: target || title.toUpperCase() },
    );
    next.message = message;
  } else if (name === "quick_replies") {
    message.quick_replies = pairs("|").map(([title, payload = ""]) => ({ content_type: "text", title, payload: payload || title.toUpperCase() }));
    next.message = message;
  } else if (name === "routes") {
    next.routes = Object.fromEntries(pairs("->").map(([payload, target = ""]) => [payload, target]));
  } else if (text === "") {
    delete next[name];
  } else {
    next[name] = kind === "number" ? Number(text) : text;
  }
  return next;
}

function StepCard({ step, ids, onChange, onRemove }: { step: Step; ids: string[]; onChange: (s: Step) => void; onRemove: () => void }) {
  const fields = KINDS[step.kind] ?? [];
  const label = (name: string) => `${step.id}: ${name}`;
  return (
    <li className="card step" data-testid="flow-step">
      <div className="row">
        <label>
          Step id{" "}
          <input aria-label={label("id")} value={step.id} onChange={(e) => onChange({ ...step, id: e.target.value })} />
        </label>
        <label>
          Kind{" "}
          <select aria-label={label("kind")} value={step.kind} onChange={(e) => onChange({ id: step.id, kind: e.target.value, ...(e.target.value === "send" ? { message: { text: "" } } : {}) })}>
            {Object.keys(KINDS).map((k) => (
              <option key={k}>{k}</option>
            ))}
          </select>
        </label>
        <button type="button" className="link danger" onClick={onRemove}>
          Remove
        </button>
      </div>
      {fields.map(([name, title, kind]) => (
        <label className="field" key={name}>
          <span className="label">{title}</span>
          {kind === "lines" ? (
            <textarea aria-label={label(name)} rows={2} value={fieldText(step, name)} onChange={(e) => onChange(withField(step, name, e.target.value, kind))} />
          ) : kind === "step" || typeof kind === "object" ? (
            <select aria-label={label(name)} value={fieldText(step, name)} onChange={(e) => onChange(withField(step, name, e.target.value, kind))}>
              <option value="">{kind === "step" ? "(end)" : "—"}</option>
              {(kind === "step" ? ids.filter((id) => id !== step.id) : kind.options).map((o) => (
                <option key={o}>{o}</option>
              ))}
            </select>
          ) : (
            <input aria-label={label(name)} type={kind === "number" ? "number" : "text"} value={fieldText(step, name)} onChange={(e) => onChange(withField(step, name, e.target.value, kind))} />
          )}
        </label>
      ))}
      {step.kind === "send" ? <DmPreview message={fromSendApi(sendApiMessage((step.message ?? {}) as Message))} /> : null}
    </li>
  );
}

function sendApiMessage(message: Message): Record<string, unknown> {
  const out: Record<string, unknown> = message.buttons?.length
    ? { attachment: { type: "template", payload: { template_type: "button", text: message.text ?? "", buttons: message.buttons } } }
    : { ...(message as Record<string, unknown>) };
  if (message.quick_replies?.length) out.quick_replies = message.quick_replies;
  return out;
}

type SimEvent = Schemas["SimulatedEvent"];

/** "comment: text", "postback: PAYLOAD", "quick_reply: PAYLOAD", "message: text", "wait: minutes". */
export function parseEvents(text: string): SimEvent[] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [kind, ...rest] = line.split(":");
      const value = rest.join(":").trim();
      const k = kind.trim() as SimEvent["kind"];
      if (k === "wait") return { kind: k, minutes: Number(value) || 0 };
      if (k === "postback" || k === "quick_reply") return { kind: k, payload: value };
      if (k === "follows") return { kind: k, follows: value !== "false" };
      return { kind: k, text: value };
    });
}

function Simulator({ graph }: { graph: Graph }) {
  const [events, setEvents] = useState("comment: guide please\npostback: YES");
  const run = useMutation({
    mutationFn: async () => unwrap(await api.POST("/v1/flows/simulate", { body: { graph: { ...graph }, events: parseEvents(events) } })),
  });
  return (
    <section className="card" aria-labelledby="sim-title">
      <h2 id="sim-title">Simulate</h2>
      <label className="field">
        <span className="label">Conversation (one event per line)</span>
        <textarea rows={3} value={events} onChange={(e) => setEvents(e.target.value)} />
        <span className="hint">comment: text · message: text · postback: PAYLOAD · quick_reply: PAYLOAD · wait: minutes · follows: true</span>
      </label>
      <button type="button" onClick={() => run.mutate()} disabled={run.isPending}>
        Run the simulation
      </button>
      <ErrorNote error={run.error} />
      {run.data ? (
        <div role="status" data-testid="simulation">
          <p>
            Run <strong>{run.data.status}</strong>
            {run.data.end_reason ? ` (${run.data.end_reason})` : ""} · tags {run.data.tags.join(", ") || "none"}
          </p>
          <ol>
            {run.data.transcript.map((step, i) => (
              <li key={i}>
                <code>{JSON.stringify(step.event)}</code> → {step.handled ? "handled" : "not handled"}
                <ul>
                  {(step.decisions ?? []).map((d, j) => (
                    <li key={j}>
                      {String(d.step_id)}: {String(d.outcome)}
                      {d.reason ? ` (${String(d.reason)})` : ""}
                    </li>
                  ))}
                </ul>
                {(step.sends ?? []).map((send, j) => (
                  <DmPreview key={j} message={fromSendApi(send.message as Record<string, unknown> | null)} />
                ))}
              </li>
            ))}
          </ol>
        </div>
      ) : null}
    </section>
  );
}

function Editor({ flow, initial, onDone }: { flow: Schemas["FlowView"] | null; initial: Graph; onDone: () => void }) {
  const queryClient = useQueryClient();
  const accounts = useAccounts();
  const [graph, setGraph] = useState<Graph>(initial);
  const [name, setName] = useState(flow?.name ?? "");
  const [accountId, setAccountId] = useState("");
  const ids = graph.steps.map((s) => s.id);
  const save = useMutation({
    mutationFn: async () => {
      if (flow) {
        const version = unwrap(await api.POST("/v1/flows/{flow_id}/versions", { params: { path: { flow_id: flow.id } }, body: { graph: { ...graph } } }));
        return unwrap(await api.POST("/v1/flows/{flow_id}/activate", { params: { path: { flow_id: flow.id } }, body: { version: version.version } }));
      }
      const account = accountId || accounts.data?.[0]?.id || "";
      return unwrap(await api.POST("/v1/flows", { body: { name, account_id: account, graph: { ...graph }, activate: true } }));
    },
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["flows"] });
      onDone();
    },
  });
  const update = (i: number, step: Step) => setGraph({ ...graph, steps: graph.steps.map((s, j) => (j === i ? step : s)) });
  return (
    <div className="flow-editor">
      <div className="row wrap">
        {!flow ? (
          <>
            <label className="field">
              <span className="label">Flow name</span>
              <input value={name} onChange={(e) => setName(e.target.value)} />
            </label>
            <label className="field">
              <span className="label">Account</span>
              <select value={accountId} onChange={(e) => setAccountId(e.target.value)}>
                {accounts.data?.map((a) => (
                  <option key={a.id} value={a.id}>
                    @{a.username}
                  </option>
                ))}
              </select>
            </label>
          </>
        ) : null}
        <label className="field">
          <span className="label">Started by</span>
          <select value={graph.entry} onChange={(e) => setGraph({ ...graph, entry: e.target.value as Graph["entry"] })}>
            <option value="comment">a comment</option>
            <option value="message">a DM</option>
          </select>
        </label>
        <label className="field">
          <span className="label">First step</span>
          <select value={graph.start} onChange={(e) => setGraph({ ...graph, start: e.target.value })}>
            {ids.map((id) => (
              <option key={id}>{id}</option>
            ))}
          </select>
        </label>
      </div>
      <ol className="steps">
        {graph.steps.map((step, i) => (
          <StepCard key={i} step={step} ids={ids} onChange={(s) => update(i, s)} onRemove={() => setGraph({ ...graph, steps: graph.steps.filter((_, j) => j !== i) })} />
        ))}
      </ol>
      <div className="row">
        <button type="button" onClick={() => setGraph({ ...graph, steps: [...graph.steps, { id: `step${graph.steps.length + 1}`, kind: "send", message: { text: "" } }] })}>
          Add a step
        </button>
        <button type="button" className="primary" onClick={() => save.mutate()} disabled={save.isPending}>
          {flow ? "Save as a new version and activate" : "Create the flow"}
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
      <ErrorNote error={save.error ?? accounts.error} />
      <Simulator graph={graph} />
    </div>
  );
}

function FlowStats({ flow }: { flow: Schemas["FlowView"] }) {
  const stats = useQuery({
    queryKey: ["flows", flow.id, "stats"],
    queryFn: async () => unwrap(await api.GET("/v1/flows/{flow_id}/stats", { params: { path: { flow_id: flow.id } } })),
  });
  if (stats.isPending) return <Loading />;
  if (stats.isError) return <ErrorNote error={stats.error} />;
  if (!stats.data.steps.length) return <p className="muted">No run has reached a step yet.</p>;
  const perDay = dayTotals(stats.data.days);
  return (
    <>
      <ul className="list">
        {stats.data.steps.map((s, i) => (
          <li key={i}>
            v{s.version} {s.step_id}: {s.outcome}
            {s.reason ? ` (${s.reason})` : ""} — {s.count}
          </li>
        ))}
      </ul>
      <p className="muted">
        Per day, {stats.data.since} to {stats.data.until} (UTC)
      </p>
      <ul className="list">
        {perDay.map(([day, counts]) => (
          <li key={day}>
            {day}: {counts}
          </li>
        ))}
      </ul>
    </>
  );
}

/** The flow's outcomes per day, every step and version added up: ["2026-12-01", "entered 3, sent 2"]. */
export function dayTotals(days: { date: string; outcome: string; count: number }[]): [string, string][] {
  const byDay = new Map<string, Map<string, number>>();
  for (const row of days) {
    const counts = byDay.get(row.date) ?? new Map<string, number>();
    counts.set(row.outcome, (counts.get(row.outcome) ?? 0) + row.count);
    byDay.set(row.date, counts);
  }
  return [...byDay.entries()].map(([day, counts]) => [
    day,
    [...counts.entries()].map(([outcome, count]) => `${outcome} ${count}`).join(", "),
  ]);
}

export default function FlowsPage() {
  const queryClient = useQueryClient();
  const flows = useQuery({ queryKey: ["flows"], queryFn: async () => unwrap(await api.GET("/v1/flows")) });
  const [editing, setEditing] = useState<{ flow: Schemas["FlowView"] | null; graph: Graph } | null>(null);
  const [statsOf, setStatsOf] = useState<string | null>(null);
  const open = useMutation({
    mutationFn: async (flow: Schemas["FlowView"]) => {
      const versions = unwrap(await api.GET("/v1/flows/{flow_id}/versions", { params: { path: { flow_id: flow.id } } }));
      const latest = versions.reduce((a, b) => (b.version > a.version ? b : a));
      setEditing({ flow, graph: latest.graph as unknown as Graph });
    },
  });
  const deactivate = useMutation({
    mutationFn: async (flow: Schemas["FlowView"]) =>
      unwrap(await api.POST("/v1/flows/{flow_id}/activate", { params: { path: { flow_id: flow.id } }, body: { version: flow.active_version ? null : flow.latest_version } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["flows"] }),
  });
  if (editing) {
    return (
      <Page title={editing.flow ? `Edit ${editing.flow.name}` : "New flow"}>
        <Editor flow={editing.flow} initial={editing.graph} onDone={() => setEditing(null)} />
      </Page>
    );
  }
  return (
    <Page
      title="Flows"
      actions={
        <button type="button" className="primary" onClick={() => setEditing({ flow: null, graph: EXAMPLE })}>
          New flow
        </button>
      }
    >
      <p className="muted">A flow is a conversation: messages, waits for a tap or an answer, conditions, delays. An automation starts it.</p>
      {flows.isPending ? <Loading /> : null}
      <ErrorNote error={flows.error ?? open.error ?? deactivate.error} />
      {flows.data?.length === 0 ? (
        <Empty title="No flows yet">
          <p>Start from the example (ask, wait for the tap, send the link), simulate it, then save it.</p>
        </Empty>
      ) : null}
      <ul className="cards">
        {flows.data?.map((flow) => (
          <li key={flow.id} className="card">
            <h2>{flow.name}</h2>
            <p>
              <span className={`badge ${flow.active_version ? "ok" : "warn"}`}>{flow.active_version ? `v${flow.active_version} active` : "inactive"}</span> · latest v
              {flow.latest_version}
            </p>
            <div className="row">
              <button type="button" onClick={() => open.mutate(flow)}>
                Edit
              </button>
              <button type="button" onClick={() => deactivate.mutate(flow)}>
                {flow.active_version ? "Deactivate" : "Activate latest"}
              </button>
              <button type="button" className="link" onClick={() => setStatsOf(statsOf === flow.id ? null : flow.id)}>
                Step stats
              </button>
            </div>
            {statsOf === flow.id ? <FlowStats flow={flow} /> : null}
          </li>
        ))}
      </ul>
    </Page>
  );
}
