// Connect an Instagram account (Instagram Login: /oauth/start -> Instagram -> back here with code and
// state -> /oauth/complete under this user's session) and each account's health. On a stack whose
// Graph API is the local sandbox (the account says `sandbox: true`), a connected account also has a
// "Send a test comment" form: the comment reaches the pipeline like one Instagram delivered.
import { zodResolver } from "@hookform/resolvers/zod";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { useForm } from "react-hook-form";
import { Link, useNavigate } from "react-router";
import { z } from "zod";
import { api, unwrap, type Schemas } from "../api/client";
import { keys, useAccounts } from "../api/queries";
import { Empty, ErrorNote, Field, Loading, Page, formatDate } from "../components/ui";

const DAY_MS = 86_400_000;

export function tokenHealth(account: Schemas["AccountView"], now = Date.now()): { label: string; tone: "ok" | "warn" | "bad" } {
  if (account.status === "needs_reauth") return { label: "Needs re-authorization", tone: "bad" };
  if (account.status !== "active") return { label: account.status, tone: "bad" };
  if (!account.token_expires_at) return { label: "Token valid", tone: "ok" };
  const days = Math.floor((Date.parse(account.token_expires_at) - now) / DAY_MS);
  if (days < 0) return { label: "Token expired", tone: "bad" };
  if (days < 7) return { label: `Token expires in ${days} d`, tone: "warn" };
  return { label: `Token valid for ${days} d`, tone: "ok" };
}

async function startOAuth(): Promise<void> {
  const start = unwrap(await api.GET("/v1/accounts/oauth/start"));
  globalThis.location.assign(start.authorize_url);
}

function SentThisHour({ account }: { account: Schemas["AccountView"] }) {
  const since = new Date(Date.now() - 3_600_000).toISOString();
  const sent = useQuery({
    queryKey: ["sent-hour", account.id],
    queryFn: async () =>
      unwrap(
        await api.GET("/v1/logs/replies", {
          params: { query: { account_id: account.id, status: "sent", since, limit: 200 } },
        }),
      ),
    refetchInterval: 30_000,
  });
  const used = sent.data ? `${sent.data.items.length}${sent.data.next_cursor ? "+" : ""}` : "…";
  const share = sent.data ? Math.min(100, (100 * sent.data.items.length) / Math.max(1, account.hourly_send_budget)) : 0;
  return (
    <div>
      <span>
        Sent in the last hour: <strong>{used}</strong> of {account.hourly_send_budget}
      </span>
      <meter min={0} max={100} value={share} aria-label="Hourly send budget used" />
      <ErrorNote error={sent.error} />
    </div>
  );
}

export const testCommentSchema = z.object({
  text: z.string().trim().min(1, "Write the comment").max(2200, "At most 2200 characters"),
  username: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9._]{0,30}$/, "Letters, digits, dots and underscores; 30 at most"),
});
type TestCommentDraft = z.infer<typeof testCommentSchema>;

/** What the intake did with the comment's event, in words. */
export function testCommentOutcome(sent: Schemas["SandboxCommentSent"]): string {
  if (sent.enqueued > 0) return "it is on its way to your automations";
  const reasons = Object.keys(sent.dropped).join(", ") || "no reason given";
  return `the webhook dropped it (${reasons})`;
}

/** A comment on the account's post, made in the sandbox and delivered through the webhook's queues. */
export function TestCommentForm({ account }: { account: Schemas["AccountView"] }) {
  const queryClient = useQueryClient();
  const form = useForm<TestCommentDraft>({
    resolver: zodResolver(testCommentSchema),
    defaultValues: { text: "", username: "" },
  });
  const send = useMutation({
    mutationFn: async (values: TestCommentDraft) =>
      unwrap(
        await api.POST("/v1/accounts/{account_id}/test-comments", {
          params: { path: { account_id: account.id } },
          body: { text: values.text, username: values.username || null },
        }),
      ),
    onSuccess: () => {
      for (const queryKey of [["logs"], ["stats"], ["sent-hour", account.id]]) void queryClient.invalidateQueries({ queryKey });
    },
  });
  const errors = form.formState.errors;
  return (
    <form
      className="test-comment"
      aria-label={`Send a test comment to @${account.username}`}
      onSubmit={form.handleSubmit((values) => send.mutate(values))}
      noValidate
    >
      <h3>Send a test comment</h3>
      <p className="muted">Sandbox only: a comment on the account's post, answered by your automations like a real one.</p>
      <Field label="Comment" error={errors.text?.message}>
        <textarea rows={2} placeholder="e.g. send me the LINK please" {...form.register("text")} />
      </Field>
      <Field label="Commenter's username (optional)" error={errors.username?.message} hint="Default: maya.creates">
        <input autoComplete="off" {...form.register("username")} />
      </Field>
      <ErrorNote error={send.error} />
      <button type="submit" className="primary" disabled={send.isPending}>
        {send.isPending ? "Sending…" : "Send a test comment"}
      </button>
      {send.data ? (
        <div className="notice" role="status" data-testid="test-comment-sent">
          <p>
            Comment {send.data.comment_id} from @{send.data.username} sent: {testCommentOutcome(send.data)}.
          </p>
          <Link to="/logs">See the decision in the logs</Link>
        </div>
      ) : null}
    </form>
  );
}

function AccountCard({ account }: { account: Schemas["AccountView"] }) {
  const queryClient = useQueryClient();
  const health = tokenHealth(account);
  const disconnect = useMutation({
    mutationFn: async () => unwrap(await api.DELETE("/v1/accounts/{account_id}", { params: { path: { account_id: account.id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.accounts }),
  });
  const reconnect = useMutation({ mutationFn: startOAuth });
  return (
    <li className="card account" data-testid="account">
      <h2>@{account.username}</h2>
      <p>
        <span className={`badge ${health.tone}`}>{health.label}</span>{" "}
        {account.status_reason ? <span className="muted">{account.status_reason}</span> : null}
      </p>
      <dl className="facts">
        <dt>Instagram id</dt>
        <dd>{account.ig_user_id}</dd>
        <dt>Token expires</dt>
        <dd>{formatDate(account.token_expires_at)}</dd>
        <dt>Webhooks</dt>
        <dd>{account.webhook_subscribed_at ? `subscribed ${formatDate(account.webhook_subscribed_at)}` : "not subscribed"}</dd>
      </dl>
      <SentThisHour account={account} />
      <div className="row">
        {health.tone !== "ok" ? (
          <button type="button" className="primary" onClick={() => reconnect.mutate()}>
            Reconnect
          </button>
        ) : null}
        {account.status !== "disabled" ? (
          <button type="button" className="danger" onClick={() => confirm(`Disconnect @${account.username}? Its automations pause.`) && disconnect.mutate()}>
            Disconnect
          </button>
        ) : null}
      </div>
      <ErrorNote error={disconnect.error ?? reconnect.error} />
      {account.sandbox && account.status === "active" ? <TestCommentForm account={account} /> : null}
    </li>
  );
}

export default function AccountsPage() {
  const accounts = useAccounts();
  const queryClient = useQueryClient();
  const connect = useMutation({ mutationFn: startOAuth });
  const sandbox = useMutation({
    mutationFn: async () => unwrap(await api.POST("/v1/accounts/sandbox", { body: {} })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.accounts }),
  });
  const actions = (
    <>
      <button type="button" className="primary" onClick={() => connect.mutate()} disabled={connect.isPending}>
        Connect with Instagram
      </button>
      <button type="button" onClick={() => sandbox.mutate()} disabled={sandbox.isPending} title="Local and test stacks only">
        Connect a sandbox account
      </button>
    </>
  );
  return (
    <Page title="Instagram accounts" actions={actions}>
      <ErrorNote error={connect.error ?? sandbox.error} />
      {accounts.isPending ? <Loading /> : null}
      <ErrorNote error={accounts.error} />
      {accounts.data && accounts.data.length === 0 ? (
        <Empty title="No Instagram account yet">
          <p>Connect a professional Instagram account: Replyflow answers its comments, mentions and DMs.</p>
        </Empty>
      ) : null}
      <ul className="cards">
        {accounts.data?.map((account) => <AccountCard key={account.id} account={account} />)}
      </ul>
    </Page>
  );
}

/** Instagram redirects here (OAUTH_REDIRECT_URI) with code and state; finish under this session. */
export function OAuthCallbackPage() {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [params] = useState(() => new URLSearchParams(globalThis.location.search));
  const started = useRef(false);
  const complete = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/v1/accounts/oauth/complete", {
          body: { code: (params.get("code") ?? "").split("#")[0], state: params.get("state") ?? "" },
        }),
      ),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: keys.accounts });
      navigate("/accounts", { replace: true });
    },
  });
  const denied = params.get("error");
  useEffect(() => {
    if (!denied && !started.current) {
      started.current = true;
      complete.mutate();
    }
  }, [denied, complete]);
  return (
    <Page title="Connecting your Instagram account">
      {denied ? (
        <p className="error" role="alert">
          Instagram login was not completed ({params.get("error_description") ?? denied}); nothing was connected.
        </p>
      ) : null}
      {complete.isPending ? <Loading label="Finishing the connection" /> : null}
      <ErrorNote error={complete.error} />
      <p>
        <Link to="/accounts">Back to the accounts</Link>
      </p>
    </Page>
  );
}
