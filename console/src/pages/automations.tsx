// Automations: a trigger, keywords and the actions to take; the dry run says why one would or would
// not fire for a sample event, without sending anything.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useForm } from "react-hook-form";
import { Link } from "react-router";
import { api, unwrap, type Schemas } from "../api/client";
import { keys, useAccounts, useAutomations, useFlows, useTemplates } from "../api/queries";
import { Empty, ErrorNote, Field, Loading, Page } from "../components/ui";

type Trigger = Schemas["AutomationCreate"]["trigger"];
type MatchMode = NonNullable<Schemas["AutomationCreate"]["match_mode"]>;
type DryKind = Schemas["DryRunRequest"]["kind"];
const TRIGGERS: Trigger[] = ["comment", "live_comment", "dm_keyword", "story_mention", "story_reply", "postback", "quick_reply"];
const MODES: MatchMode[] = ["whole_word", "contains", "exact", "any"];
const KIND_FOR: Record<string, DryKind> = { dm_keyword: "message" };

interface Draft {
  account_id: string;
  name: string;
  trigger: Trigger;
  match_mode: MatchMode;
  keywords: string;
  action: "private_reply" | "dm_reply" | "public_reply" | "start_flow";
  template_id: string;
  flow_id?: string;
  variants: string;
}

export function toBody(d: Draft): Schemas["AutomationCreate"] {
  const template = { template_id: d.template_id };
  const variants = d.variants.split("\n").map((v) => v.trim()).filter(Boolean);
  return {
    account_id: d.account_id,
    name: d.name.trim(),
    trigger: d.trigger,
    match_mode: d.match_mode,
    keywords: d.keywords.split(",").map((k) => k.trim()).filter(Boolean),
    actions: {
      private_reply: d.action === "private_reply" ? template : null,
      dm_reply: d.action === "dm_reply" ? template : null,
      public_reply: d.action === "public_reply" ? { variants } : null,
      ...(d.action === "start_flow" ? { start_flow: { flow_id: d.flow_id ?? "" } } : {}),
    },
  };
}

function NewAutomation({ onDone }: { onDone: () => void }) {
  const accounts = useAccounts();
  const templates = useTemplates();
  const flows = useFlows();
  const queryClient = useQueryClient();
  const form = useForm<Draft>({
    values: {
      account_id: accounts.data?.[0]?.id ?? "",
      name: "",
      trigger: "comment",
      match_mode: "whole_word",
      keywords: "",
      action: "private_reply",
      template_id: templates.data?.[0]?.id ?? "",
      flow_id: flows.data?.[0]?.id ?? "",
      variants: "",
    },
  });
  const action = form.watch("action");
  const create = useMutation({
    mutationFn: async (d: Draft) => unwrap(await api.POST("/v1/automations", { body: toBody(d) })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: keys.automations });
      onDone();
    },
  });
  if (accounts.data?.length === 0) return <p>Connect an Instagram account first.</p>;
  return (
    <form className="card form" onSubmit={form.handleSubmit((d) => create.mutate(d))} aria-label="New automation">
      <Field label="Name">
        <input {...form.register("name", { required: true })} />
      </Field>
      <Field label="Account">
        <select {...form.register("account_id")}>
          {accounts.data?.map((a) => (
            <option key={a.id} value={a.id}>
              @{a.username}
            </option>
          ))}
        </select>
      </Field>
      <Field label="Trigger">
        <select {...form.register("trigger")}>
          {TRIGGERS.map((t) => (
            <option key={t}>{t}</option>
          ))}
        </select>
      </Field>
      <Field label="Match">
        <select {...form.register("match_mode")}>
          {MODES.map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
      </Field>
      <Field label="Keywords" hint="Comma-separated, e.g. link, price">
        <input {...form.register("keywords")} />
      </Field>
      <Field label="Action">
        <select {...form.register("action")}>
          <option value="private_reply">Private reply (DM to a commenter)</option>
          <option value="dm_reply">DM reply</option>
          <option value="public_reply">Public comment reply</option>
          <option value="start_flow">Start a flow</option>
        </select>
      </Field>
      {action === "start_flow" ? (
        <Field label="Flow">
          <select {...form.register("flow_id")}>
            {flows.data?.map((f) => (
              <option key={f.id} value={f.id}>
                {f.name}
              </option>
            ))}
          </select>
        </Field>
      ) : action === "public_reply" ? (
        <Field label="Reply variants" hint="One per line; one is picked at random">
          <textarea rows={3} {...form.register("variants")} />
        </Field>
      ) : (
        <Field label="Template">
          <select {...form.register("template_id")}>
            {templates.data?.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </select>
        </Field>
      )}
      {(action === "private_reply" || action === "dm_reply") && templates.data?.length === 0 ? (
        <p>
          <Link to="/templates">Write a template</Link> first.
        </p>
      ) : null}
      <ErrorNote error={create.error ?? accounts.error ?? templates.error ?? flows.error} />
      <div className="row">
        <button type="submit" className="primary" disabled={create.isPending}>
          Create automation
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function DryRun({ automation }: { automation: Schemas["AutomationView"] }) {
  const [text, setText] = useState("");
  const run = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/v1/automations/{automation_id}/test", {
          params: { path: { automation_id: automation.id } },
          body: { kind: KIND_FOR[automation.trigger] ?? (automation.trigger as DryKind), text, username: "jane.doe" },
        }),
      ),
  });
  const result = run.data;
  return (
    <form
      className="dry-run"
      onSubmit={(event) => {
        event.preventDefault();
        run.mutate();
      }}
    >
      <label className="field">
        <span className="label">Try a {automation.trigger.replace("_", " ")}</span>
        <span className="row">
          <input value={text} onChange={(e) => setText(e.target.value)} placeholder="e.g. send me the link" />
          <button type="submit">Dry run</button>
        </span>
      </label>
      <ErrorNote error={run.error} />
      {result ? (
        <div className={result.would_run ? "verdict ok" : "verdict no"} role="status" data-testid="dry-run-result">
          <strong>{result.would_run ? "Would fire" : "Would not fire"}</strong>
          {result.reason ? <span className="code"> ({result.reason})</span> : null}
          <p>{result.explanation}</p>
          {result.actions?.length ? (
            <ul>
              {result.actions.map((a, i) => (
                <li key={i}>
                  {a.action}
                  {a.skipped ? ` — skipped: ${a.skipped}` : ""}
                  {a.note ? ` — ${a.note}` : ""}
                </li>
              ))}
            </ul>
          ) : null}
          {(result.notes ?? []).map((note, i) => (
            <p key={i} className="muted">
              {note}
            </p>
          ))}
        </div>
      ) : null}
    </form>
  );
}

function AutomationCard({ automation }: { automation: Schemas["AutomationView"] }) {
  const queryClient = useQueryClient();
  const toggle = useMutation({
    mutationFn: async () => {
      const path = { automation_id: automation.id };
      return automation.active
        ? unwrap(await api.POST("/v1/automations/{automation_id}/disable", { params: { path } }))
        : unwrap(await api.POST("/v1/automations/{automation_id}/enable", { params: { path } }));
    },
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.automations }),
  });
  const remove = useMutation({
    mutationFn: async () => unwrap(await api.DELETE("/v1/automations/{automation_id}", { params: { path: { automation_id: automation.id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.automations }),
  });
  const actions = Object.entries(automation.actions as Record<string, unknown>)
    .filter(([, v]) => v)
    .map(([k]) => k.replace("_", " "));
  return (
    <li className="card" data-testid="automation">
      <h2>{automation.name}</h2>
      <p>
        <span className={`badge ${automation.active ? "ok" : "warn"}`}>{automation.active ? "active" : "paused"}</span> {automation.trigger} ·{" "}
        {automation.match_mode} {automation.keywords.length ? `“${automation.keywords.join("”, “")}”` : "(any text)"} → {actions.join(", ")}
      </p>
      <div className="row">
        <button type="button" onClick={() => toggle.mutate()} disabled={toggle.isPending}>
          {automation.active ? "Pause" : "Enable"}
        </button>
        <button type="button" className="danger" onClick={() => confirm(`Delete ${automation.name}?`) && remove.mutate()}>
          Delete
        </button>
      </div>
      <ErrorNote error={toggle.error ?? remove.error} />
      <DryRun automation={automation} />
    </li>
  );
}

export default function AutomationsPage() {
  const automations = useAutomations();
  const [creating, setCreating] = useState(false);
  return (
    <Page
      title="Automations"
      actions={
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          New automation
        </button>
      }
    >
      {creating ? <NewAutomation onDone={() => setCreating(false)} /> : null}
      {automations.isPending ? <Loading /> : null}
      <ErrorNote error={automations.error} />
      {automations.data?.length === 0 && !creating ? (
        <Empty title="No automations yet">
          <p>An automation answers a comment, mention or DM that matches its keywords. Create one, then dry-run it here.</p>
        </Empty>
      ) : null}
      <ul className="cards">
        {automations.data?.map((a) => <AutomationCard key={a.id} automation={a} />)}
      </ul>
    </Page>
  );
}
