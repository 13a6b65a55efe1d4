import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useForm } from "react-hook-form";
import { api, unwrap } from "../api/client";
import { keys } from "../api/queries";
import { Empty, ErrorNote, Field, Loading, Page, formatDate } from "../components/ui";

type Draft = { name: string; role: "admin" | "member" };

export default function ApiKeysPage() {
  const queryClient = useQueryClient();
  const list = useQuery({ queryKey: keys.apiKeys, queryFn: async () => unwrap(await api.GET("/v1/api-keys")) });
  const form = useForm<Draft>({ defaultValues: { name: "", role: "member" } });
  const create = useMutation({
    mutationFn: async (body: Draft) => unwrap(await api.POST("/v1/api-keys", { body })),
    onSuccess: () => {
      form.reset();
      void queryClient.invalidateQueries({ queryKey: keys.apiKeys });
    },
  });
  const revoke = useMutation({
    mutationFn: async (key_id: string) => unwrap(await api.DELETE("/v1/api-keys/{key_id}", { params: { path: { key_id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.apiKeys }),
  });
  return (
    <Page title="API keys">
      <form className="row wrap" onSubmit={form.handleSubmit((v) => create.mutate(v))} aria-label="New API key">
        <Field label="Name">
          <input {...form.register("name", { required: true })} placeholder="e.g. CRM sync" />
        </Field>
        <Field label="Role">
          <select {...form.register("role")}>
            <option>member</option>
            <option>admin</option>
          </select>
        </Field>
        <button type="submit" className="primary" disabled={create.isPending}>
          Create a key
        </button>
      </form>
      <ErrorNote error={create.error ?? revoke.error} />
      {create.data ? (
        <div className="notice" role="status">
          <p>Copy the key now: it is shown only once.</p>
          <code className="secret">{create.data.key}</code>
        </div>
      ) : null}
      {list.isPending ? <Loading /> : null}
      <ErrorNote error={list.error} />
      {list.data?.length === 0 ? (
        <Empty title="No API keys">
          <p>An API key lets a server call the Replyflow API as this workspace: send it as “Authorization: Bearer rfk_…”.</p>
        </Empty>
      ) : null}
      <ul className="list">
        {list.data?.map((k) => (
          <li key={k.id}>
            <strong>{k.name}</strong> <code>{k.prefix}…</code> · {k.role} · created {formatDate(k.created_at)} · last used {formatDate(k.last_used_at)}{" "}
            {k.revoked_at ? (
              <span className="badge bad">revoked</span>
            ) : (
              <button type="button" className="link danger" onClick={() => confirm(`Revoke ${k.name}?`) && revoke.mutate(k.id)}>
                Revoke
              </button>
            )}
          </li>
        ))}
      </ul>
    </Page>
  );
}
