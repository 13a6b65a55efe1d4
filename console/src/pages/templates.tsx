// Templates with a live preview that looks like the DM the recipient gets. The preview is the API's
// own rendering (POST /v1/templates/preview: variables filled, the Send API message it would send),
// re-asked as the draft changes; while it loads, the draft is shown as typed.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useDeferredValue, useState } from "react";
import { useFieldArray, useForm, useWatch } from "react-hook-form";
import { api, unwrap, type Schemas } from "../api/client";
import { keys, useTemplates } from "../api/queries";
import { DmPreview, fromSendApi, type PreviewMessage } from "../components/DmPreview";
import { Empty, ErrorNote, Field, Loading, Page } from "../components/ui";

type Draft = {
  name: string;
  text: string;
  buttons: { type: "web_url" | "postback"; title: string; value: string }[];
  quick_replies: { title: string; payload: string }[];
};

const EMPTY: Draft = { name: "", text: "Hi {{username}}! ", buttons: [], quick_replies: [] };

export function toBody(draft: Draft): Schemas["TemplateCreate"] {
  return {
    name: draft.name.trim(),
    text: draft.text,
    buttons: draft.buttons.map((b) =>
      b.type === "web_url"
        ? { type: "web_url", title: b.title, url: b.value }
        : { type: "postback", title: b.title, payload: b.value || b.title.toUpperCase() },
    ),
    quick_replies: draft.quick_replies.map((q) => ({ content_type: "text", title: q.title, payload: q.payload || q.title.toUpperCase() })),
  };
}

function fromTemplate(t: Schemas["TemplateView"]): Draft {
  const buttons = (t.buttons as { type: "web_url" | "postback"; title: string; url?: string; payload?: string }[]).map((b) => ({
    type: b.type,
    title: b.title,
    value: (b.type === "web_url" ? b.url : b.payload) ?? "",
  }));
  const quick = (t.quick_replies as { title?: string; payload?: string }[]).map((q) => ({ title: q.title ?? "", payload: q.payload ?? "" }));
  return { name: t.name, text: t.text, buttons, quick_replies: quick };
}

function localPreview(draft: Draft): PreviewMessage {
  const body = toBody(draft);
  return {
    text: body.text.replaceAll("{{username}}", "jane.doe"),
    buttons: body.buttons ?? [],
    quickReplies: body.quick_replies ?? [],
    cards: [],
  };
}

function Preview({ draft }: { draft: Draft }) {
  const deferred = useDeferredValue(draft);
  const body = toBody(deferred);
  const valid = body.text.trim().length > 0 && body.buttons!.every((b) => b.title) && body.quick_replies!.every((q) => q.title);
  const preview = useQuery({
    queryKey: ["preview", body],
    enabled: valid,
    queryFn: async () =>
      unwrap(
        await api.POST("/v1/templates/preview", {
          body: { text: body.text, buttons: body.buttons, quick_replies: body.quick_replies, variables: { username: "jane.doe" } },
        }),
      ),
    placeholderData: (previous) => previous,
    retry: false,
  });
  const message = preview.data && !preview.isPlaceholderData ? fromSendApi(preview.data.message, preview.data.text) : localPreview(draft);
  return (
    <div className="preview">
      <DmPreview message={message} />
      {preview.data ? <p className="muted">{preview.data.text_bytes} bytes (Instagram allows 1000)</p> : null}
      <ErrorNote error={preview.error} />
    </div>
  );
}

function Editor({ template, onDone }: { template: Schemas["TemplateView"] | null; onDone: () => void }) {
  const queryClient = useQueryClient();
  const form = useForm<Draft>({ defaultValues: template ? fromTemplate(template) : EMPTY });
  const buttons = useFieldArray({ control: form.control, name: "buttons" });
  const quick = useFieldArray({ control: form.control, name: "quick_replies" });
  const draft = useWatch({ control: form.control }) as Draft;
  const save = useMutation({
    mutationFn: async (values: Draft) => {
      const body = toBody(values);
      return template
        ? unwrap(await api.PATCH("/v1/templates/{template_id}", { params: { path: { template_id: template.id } }, body }))
        : unwrap(await api.POST("/v1/templates", { body }));
    },
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: keys.templates });
      onDone();
    },
  });
  return (
    <div className="editor">
      <form onSubmit={form.handleSubmit((values) => save.mutate(values))} aria-label="Template">
        <Field label="Name">
          <input {...form.register("name", { required: true })} />
        </Field>
        <Field label="Text" hint="{{username}} is the recipient's username">
          <textarea rows={4} {...form.register("text", { required: true })} />
        </Field>
        <fieldset>
          <legend>Buttons (up to 3)</legend>
          {buttons.fields.map((field, i) => (
            <div className="row" key={field.id}>
              <select aria-label={`Button ${i + 1} type`} {...form.register(`buttons.${i}.type`)}>
                <option value="web_url">Link</option>
                <option value="postback">Postback</option>
              </select>
              <input aria-label={`Button ${i + 1} title`} placeholder="Title" maxLength={20} {...form.register(`buttons.${i}.title`)} />
              <input aria-label={`Button ${i + 1} URL or payload`} placeholder="https://… or PAYLOAD" {...form.register(`buttons.${i}.value`)} />
              <button type="button" className="link" onClick={() => buttons.remove(i)}>
                Remove
              </button>
            </div>
          ))}
          {buttons.fields.length < 3 ? (
            <button type="button" onClick={() => buttons.append({ type: "web_url", title: "", value: "https://" })}>
              Add a button
            </button>
          ) : null}
        </fieldset>
        <fieldset>
          <legend>Quick replies (up to 13)</legend>
          {quick.fields.map((field, i) => (
            <div className="row" key={field.id}>
              <input aria-label={`Quick reply ${i + 1} title`} placeholder="Title" maxLength={20} {...form.register(`quick_replies.${i}.title`)} />
              <input aria-label={`Quick reply ${i + 1} payload`} placeholder="PAYLOAD" {...form.register(`quick_replies.${i}.payload`)} />
              <button type="button" className="link" onClick={() => quick.remove(i)}>
                Remove
              </button>
            </div>
          ))}
          {quick.fields.length < 13 ? (
            <button type="button" onClick={() => quick.append({ title: "", payload: "" })}>
              Add a quick reply
            </button>
          ) : null}
        </fieldset>
        <ErrorNote error={save.error} />
        <div className="row">
          <button type="submit" className="primary" disabled={save.isPending}>
            {template ? "Save" : "Create template"}
          </button>
          <button type="button" onClick={onDone}>
            Cancel
          </button>
        </div>
      </form>
      <Preview draft={draft} />
    </div>
  );
}

export default function TemplatesPage() {
  const templates = useTemplates();
  const queryClient = useQueryClient();
  const [editing, setEditing] = useState<Schemas["TemplateView"] | "new" | null>(null);
  const remove = useMutation({
    mutationFn: async (id: string) => unwrap(await api.DELETE("/v1/templates/{template_id}", { params: { path: { template_id: id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.templates }),
  });
  if (editing) {
    return (
      <Page title={editing === "new" ? "New template" : `Edit ${editing.name}`}>
        <Editor template={editing === "new" ? null : editing} onDone={() => setEditing(null)} />
      </Page>
    );
  }
  return (
    <Page
      title="Templates"
      actions={
        <button type="button" className="primary" onClick={() => setEditing("new")}>
          New template
        </button>
      }
    >
      {templates.isPending ? <Loading /> : null}
      <ErrorNote error={templates.error ?? remove.error} />
      {templates.data?.length === 0 ? (
        <Empty title="No templates yet">
          <p>A template is the message an automation sends: text, up to 3 buttons and quick replies.</p>
        </Empty>
      ) : null}
      <ul className="cards">
        {templates.data?.map((t) => (
          <li key={t.id} className="card">
            <h2>{t.name}</h2>
            <DmPreview
              message={{
                text: t.text,
                buttons: t.buttons as unknown as PreviewMessage["buttons"],
                quickReplies: t.quick_replies as unknown as PreviewMessage["quickReplies"],
                cards: [],
              }}
            />
            <div className="row">
              <button type="button" onClick={() => setEditing(t)}>
                Edit
              </button>
              <button type="button" className="danger" onClick={() => confirm(`Delete ${t.name}?`) && remove.mutate(t.id)}>
                Delete
              </button>
            </div>
          </li>
        ))}
      </ul>
    </Page>
  );
}
