import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useForm } from "react-hook-form";
import { api, unwrap, type Schemas } from "../api/client";
import { keys, useMe } from "../api/queries";
import { Empty, ErrorNote, Field, Loading, Page, formatDate } from "../components/ui";

type Role = NonNullable<Schemas["InviteRequest"]["role"]>;
const ROLES: Role[] = ["owner", "admin", "member"];

export default function MembersPage() {
  const queryClient = useQueryClient();
  const me = useMe();
  const isOwner = me.data?.role === "owner";
  const members = useQuery({ queryKey: keys.members, queryFn: async () => unwrap(await api.GET("/v1/members")) });
  const invitations = useQuery({
    queryKey: keys.invitations,
    enabled: isOwner,
    queryFn: async () => unwrap(await api.GET("/v1/invitations")),
  });
  const refresh = () => {
    void queryClient.invalidateQueries({ queryKey: keys.members });
    void queryClient.invalidateQueries({ queryKey: keys.invitations });
  };
  const form = useForm<{ email: string; role: Role }>({ defaultValues: { email: "", role: "member" } });
  const invite = useMutation({
    mutationFn: async (body: { email: string; role: Role }) => unwrap(await api.POST("/v1/members", { body })),
    onSuccess: () => {
      form.reset();
      refresh();
    },
  });
  const change = useMutation({
    mutationFn: async ({ user_id, role }: { user_id: string; role: Role }) =>
      unwrap(await api.PATCH("/v1/members/{user_id}", { params: { path: { user_id } }, body: { role } })),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: async (user_id: string) => unwrap(await api.DELETE("/v1/members/{user_id}", { params: { path: { user_id } } })),
    onSuccess: refresh,
  });
  const revoke = useMutation({
    mutationFn: async (invitation_id: string) =>
      unwrap(await api.DELETE("/v1/invitations/{invitation_id}", { params: { path: { invitation_id } } })),
    onSuccess: refresh,
  });
  const resend = useMutation({
    mutationFn: async (invitation_id: string) =>
      unwrap(await api.POST("/v1/invitations/{invitation_id}/resend", { params: { path: { invitation_id } } })),
    onSuccess: refresh,
  });
  return (
    <Page title="Members and roles">
      <p className="muted">Owners manage members and billing; admins manage accounts, automations and API keys; members read.</p>
      {members.isPending ? <Loading /> : null}
      <ErrorNote error={members.error ?? change.error ?? remove.error} />
      {members.data ? (
        <div className="table-wrap" tabIndex={0} role="region" aria-label="Members">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Email</th>
                <th scope="col">Role</th>
                <th scope="col">Joined</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {members.data.map((m) => (
                <tr key={m.user_id}>
                  <td>{m.name || "—"}</td>
                  <td>{m.email}</td>
                  <td>
                    {isOwner ? (
                      <select
                        aria-label={`Role of ${m.email}`}
                        value={m.role}
                        onChange={(e) => change.mutate({ user_id: m.user_id, role: e.target.value as Role })}
                      >
                        {ROLES.map((r) => (
                          <option key={r}>{r}</option>
                        ))}
                      </select>
                    ) : (
                      m.role
                    )}
                  </td>
                  <td>{formatDate(m.joined_at)}</td>
                  <td>
                    {isOwner && m.user_id !== me.data?.user?.id ? (
                      <button type="button" className="link danger" onClick={() => confirm(`Remove ${m.email}?`) && remove.mutate(m.user_id)}>
                        Remove
                      </button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {isOwner ? (
        <>
          <h2>Invite someone</h2>
          <form className="row wrap" onSubmit={form.handleSubmit((v) => invite.mutate(v))} aria-label="Invite">
            <Field label="Email">
              <input type="email" {...form.register("email", { required: true })} />
            </Field>
            <Field label="Role">
              <select {...form.register("role")}>
                {ROLES.map((r) => (
                  <option key={r}>{r}</option>
                ))}
              </select>
            </Field>
            <button type="submit" className="primary" disabled={invite.isPending}>
              Send the invitation
            </button>
          </form>
          <ErrorNote error={invitations.error ?? invite.error ?? revoke.error ?? resend.error} />
          <h2>Invitations</h2>
          {invitations.data?.length === 0 ? <Empty title="No pending invitations" /> : null}
          <ul className="list">
            {invitations.data?.map((i) => (
              <li key={i.id}>
                {i.email} · {i.role} · <span className="badge">{i.status}</span> · expires {formatDate(i.expires_at)}{" "}
                {i.status === "pending" ? (
                  <>
                    <button type="button" className="link" onClick={() => resend.mutate(i.id)}>
                      Resend
                    </button>
                    <button type="button" className="link danger" onClick={() => revoke.mutate(i.id)}>
                      Revoke
                    </button>
                  </>
                ) : null}
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </Page>
  );
}
