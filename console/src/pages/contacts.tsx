// Contacts: the people who interacted with an account, filtered in the URL, paged by cursor, each with
// fields, tags and a timeline; CSV export of the current filter (every page, joined).
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useSearchParams } from "react-router";
import { api, ApiError, unwrap } from "../api/client";
import { useAccounts } from "../api/queries";
import { Empty, ErrorNote, Loading, Page, formatDate } from "../components/ui";

const MAX_EXPORT_PAGES = 50;

/** Joins CSV pages: the header once. */
export function joinCsv(pages: string[]): string {
  return pages
    .map((page, i) => (i === 0 ? page : page.split("\n").slice(1).join("\n")))
    .map((page) => page.replace(/\n+$/, ""))
    .filter(Boolean)
    .join("\n") + "\n";
}

function Detail({ id, onClose }: { id: number; onClose: () => void }) {
  const queryClient = useQueryClient();
  const [tag, setTag] = useState("");
  const detail = useQuery({
    queryKey: ["contact", id],
    queryFn: async () => unwrap(await api.GET("/v1/contacts/{contact_id}", { params: { path: { contact_id: String(id) } } })),
  });
  const patch = useMutation({
    mutationFn: async (body: { add_tags?: string[]; remove_tags?: string[] }) =>
      unwrap(await api.PATCH("/v1/contacts/{contact_id}", { params: { path: { contact_id: String(id) } }, body })),
    onSuccess: () => {
      setTag("");
      void queryClient.invalidateQueries({ queryKey: ["contact", id] });
      void queryClient.invalidateQueries({ queryKey: ["contacts"] });
    },
  });
  if (detail.isPending) return <Loading />;
  if (detail.isError) return <ErrorNote error={detail.error} />;
  const c = detail.data;
  return (
    <section className="card" aria-labelledby="contact-title">
      <div className="row">
        <h2 id="contact-title">{c.username ? `@${c.username}` : c.igsid}</h2>
        <button type="button" className="link" onClick={onClose}>
          Close
        </button>
      </div>
      <dl className="facts">
        <dt>IGSID</dt>
        <dd>{c.igsid}</dd>
        <dt>Last interaction</dt>
        <dd>{formatDate(c.last_interaction_at)}</dd>
        {Object.entries(c.fields as Record<string, string>).map(([k, v]) => (
          <div key={k} style={{ display: "contents" }}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
      <p>
        Tags:{" "}
        {c.tags.map((t) => (
          <button key={t} type="button" className="badge" onClick={() => patch.mutate({ remove_tags: [t] })} aria-label={`Remove tag ${t}`}>
            {t} ×
          </button>
        ))}
      </p>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (tag.trim()) patch.mutate({ add_tags: [tag.trim()] });
        }}
      >
        <input aria-label="New tag" value={tag} onChange={(e) => setTag(e.target.value)} placeholder="new-tag" />
        <button type="submit">Add tag</button>
      </form>
      <ErrorNote error={patch.error} />
      <h3>Timeline</h3>
      <ol className="list">
        {c.timeline.map((entry, i) => (
          <li key={i}>
            {formatDate(entry.at)} · {entry.type} {entry.kind} {entry.status ?? ""} {entry.error_code ?? ""}
          </li>
        ))}
      </ol>
    </section>
  );
}

export default function ContactsPage() {
  const [params, setParams] = useSearchParams();
  const accounts = useAccounts();
  const [selected, setSelected] = useState<number | null>(null);
  const filters = {
    account_id: params.get("account") || undefined,
    tag: params.get("tag") || undefined,
    q: params.get("q") || undefined,
    interacted_after: params.get("after") ? new Date(params.get("after")!).toISOString() : undefined,
  };
  const cursors = (params.get("cursors") ?? "").split(" ").filter(Boolean);
  const cursor = cursors.at(-1);
  const contacts = useQuery({
    queryKey: ["contacts", filters, cursor],
    placeholderData: keepPreviousData,
    queryFn: async () => unwrap(await api.GET("/v1/contacts", { params: { query: { ...filters, cursor, limit: 50 } } })),
  });
  const exportCsv = useMutation({
    mutationFn: async () => {
      const pages: string[] = [];
      let next: string | undefined;
      for (let i = 0; i < MAX_EXPORT_PAGES; i++) {
        const result = await api.GET("/v1/contacts/export", { params: { query: { ...filters, cursor: next } }, parseAs: "text" });
        if (!result.response.ok) throw new ApiError(result.response.status, result.error);
        pages.push(String(result.data ?? ""));
        next = result.response.headers.get("X-Next-Cursor") ?? undefined;
        if (!next) break;
      }
      const url = URL.createObjectURL(new Blob([joinCsv(pages)], { type: "text/csv" }));
      const link = document.createElement("a");
      link.href = url;
      link.download = "contacts.csv";
      link.click();
      URL.revokeObjectURL(url);
    },
  });
  function set(changes: Record<string, string>) {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    if (!("cursors" in changes)) next.delete("cursors");
    setParams(next);
  }
  return (
    <Page
      title="Contacts"
      actions={
        <button type="button" onClick={() => exportCsv.mutate()} disabled={exportCsv.isPending}>
          Export CSV
        </button>
      }
    >
      <form className="filters" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Account
          <select value={filters.account_id ?? ""} onChange={(e) => set({ account: e.target.value })}>
            <option value="">All</option>
            {accounts.data?.map((a) => (
              <option key={a.id} value={a.id}>
                @{a.username}
              </option>
            ))}
          </select>
        </label>
        <label>
          Search
          <input type="search" defaultValue={filters.q} onBlur={(e) => set({ q: e.target.value })} onKeyDown={(e) => e.key === "Enter" && set({ q: e.currentTarget.value })} />
        </label>
        <label>
          Tag
          <input defaultValue={filters.tag} onBlur={(e) => set({ tag: e.target.value })} />
        </label>
        <label>
          Interacted after
          <input type="datetime-local" value={params.get("after") ?? ""} onChange={(e) => set({ after: e.target.value })} />
        </label>
      </form>
      <ErrorNote error={contacts.error ?? accounts.error ?? exportCsv.error} />
      {contacts.isPending ? <Loading /> : null}
      {selected !== null ? <Detail id={selected} onClose={() => setSelected(null)} /> : null}
      {contacts.data?.items.length === 0 ? (
        <Empty title="No contacts">
          <p>Everyone who comments, mentions or messages a connected account becomes a contact here.</p>
        </Empty>
      ) : null}
      {contacts.data?.items.length ? (
        <div className="table-wrap" tabIndex={0} role="region" aria-label="Contacts">
          <table data-testid="contacts-table">
            <thead>
              <tr>
                <th scope="col">Contact</th>
                <th scope="col">Tags</th>
                <th scope="col">Last interaction</th>
              </tr>
            </thead>
            <tbody>
              {contacts.data.items.map((c) => (
                <tr key={c.id}>
                  <td>
                    <button type="button" className="link" onClick={() => setSelected(c.id)}>
                      {c.username ? `@${c.username}` : c.igsid}
                    </button>
                  </td>
                  <td>{c.tags.join(", ") || "—"}</td>
                  <td>{formatDate(c.last_interaction_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <nav className="pager" aria-label="Pages">
        <button type="button" disabled={!cursors.length} onClick={() => set({ cursors: cursors.slice(0, -1).join(" ") })}>
          Newer
        </button>
        <button type="button" disabled={!contacts.data?.next_cursor} onClick={() => set({ cursors: [...cursors, contacts.data?.next_cursor ?? ""].join(" ") })}>
          Older
        </button>
      </nav>
    </Page>
  );
}
