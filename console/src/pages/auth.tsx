// Sign up, log in, password reset (request and set), invitation accept. Tokens from the email links
// arrive in the URL fragment (#token=...), which the browser never sends to a server.
import { zodResolver } from "@hookform/resolvers/zod";
import { useMutation } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { useForm } from "react-hook-form";
import { Link, useNavigate, useSearchParams } from "react-router";
import { z } from "zod";
import { api, unwrap, type Schemas } from "../api/client";
import { session } from "../api/session";
import { ErrorNote, Field } from "../components/ui";

/** Stores the pair as a workspace session, named from /v1/me. */
export async function signInWith(pair: Schemas["TokenPair"], email: string): Promise<void> {
  const me = unwrap(
    await api.GET("/v1/me", { headers: { Authorization: `Bearer ${pair.access_token}` } }),
  );
  session.signIn({
    tenantId: pair.tenant_id,
    tenantName: me.tenant.name,
    email: me.user?.email ?? email,
    role: pair.role,
    accessToken: pair.access_token,
    refreshToken: pair.refresh_token,
  });
}

function tokenFromFragment(): string {
  return new URLSearchParams(globalThis.location?.hash.replace(/^#/, "") ?? "").get("token") ?? "";
}

function AuthCard({ title, children, footer }: { title: string; children: ReactNode; footer?: ReactNode }) {
  return (
    <main id="main" className="auth">
      <div className="auth-card">
        <p className="brand">Replyflow</p>
        <h1>{title}</h1>
        {children}
        {footer ? <div className="auth-footer">{footer}</div> : null}
      </div>
    </main>
  );
}

const loginSchema = z.object({
  email: z.string().email("Enter an email address"),
  password: z.string().min(1, "Enter your password"),
  tenant_id: z.string().optional(),
});

export function LoginPage() {
  const navigate = useNavigate();
  const [params] = useSearchParams();
  // The workspace switcher sends a workspace without a session here with its id (and the email).
  const form = useForm<z.infer<typeof loginSchema>>({
    resolver: zodResolver(loginSchema),
    defaultValues: { email: params.get("email") ?? "", password: "", tenant_id: params.get("tenant") ?? "" },
  });
  const login = useMutation({
    mutationFn: async (values: z.infer<typeof loginSchema>) => {
      const body = { email: values.email, password: values.password, tenant_id: values.tenant_id || null };
      await signInWith(unwrap(await api.POST("/v1/auth/login", { body })), values.email);
    },
    onSuccess: () => navigate(params.get("next") || "/"),
  });
  const errors = form.formState.errors;
  return (
    <AuthCard
      title={params.get("add") ? "Sign in to another workspace" : "Log in"}
      footer={
        <>
          <Link to="/signup">Create an account</Link> · <Link to="/password/forgot">Forgot your password?</Link>
        </>
      }
    >
      <form onSubmit={form.handleSubmit((values) => login.mutate(values))} noValidate>
        <Field label="Email" error={errors.email?.message}>
          <input type="email" autoComplete="email" {...form.register("email")} />
        </Field>
        <Field label="Password" error={errors.password?.message}>
          <input type="password" autoComplete="current-password" {...form.register("password")} />
        </Field>
        <Field label="Workspace id (optional)" hint="Leave empty for your first workspace">
          <input {...form.register("tenant_id")} />
        </Field>
        <ErrorNote error={login.error} />
        <button type="submit" className="primary" disabled={login.isPending}>
          {login.isPending ? "Logging in…" : "Log in"}
        </button>
      </form>
    </AuthCard>
  );
}

const signupSchema = z.object({
  name: z.string().max(120),
  email: z.string().email("Enter an email address"),
  password: z.string().min(10, "At least 10 characters"),
  workspace_name: z.string().min(1, "Name your workspace").max(120),
});

export function SignupPage() {
  const navigate = useNavigate();
  const form = useForm<z.infer<typeof signupSchema>>({
    resolver: zodResolver(signupSchema),
    defaultValues: { name: "" },
  });
  const signup = useMutation({
    mutationFn: async (body: z.infer<typeof signupSchema>) => {
      await signInWith(unwrap(await api.POST("/v1/auth/signup", { body })), body.email);
    },
    onSuccess: () => navigate("/"),
  });
  const errors = form.formState.errors;
  return (
    <AuthCard title="Create your workspace" footer={<Link to="/login">Already have an account? Log in</Link>}>
      <form onSubmit={form.handleSubmit((values) => signup.mutate(values))} noValidate>
        <Field label="Your name" error={errors.name?.message}>
          <input autoComplete="name" {...form.register("name")} />
        </Field>
        <Field label="Email" error={errors.email?.message}>
          <input type="email" autoComplete="email" {...form.register("email")} />
        </Field>
        <Field label="Password" error={errors.password?.message} hint="At least 10 characters">
          <input type="password" autoComplete="new-password" {...form.register("password")} />
        </Field>
        <Field label="Workspace name" error={errors.workspace_name?.message}>
          <input {...form.register("workspace_name")} />
        </Field>
        <ErrorNote error={signup.error} />
        <button type="submit" className="primary" disabled={signup.isPending}>
          {signup.isPending ? "Creating…" : "Sign up"}
        </button>
      </form>
    </AuthCard>
  );
}

export function ForgotPasswordPage() {
  const form = useForm<{ email: string }>({ resolver: zodResolver(z.object({ email: z.string().email("Enter an email address") })) });
  const forgot = useMutation({
    mutationFn: async (body: { email: string }) => unwrap(await api.POST("/v1/auth/password/forgot", { body })),
  });
  return (
    <AuthCard title="Reset your password" footer={<Link to="/login">Back to log in</Link>}>
      {forgot.isSuccess ? (
        <p role="status">{forgot.data.message}</p>
      ) : (
        <form onSubmit={form.handleSubmit((values) => forgot.mutate(values))} noValidate>
          <Field label="Email" error={form.formState.errors.email?.message}>
            <input type="email" autoComplete="email" {...form.register("email")} />
          </Field>
          <ErrorNote error={forgot.error} />
          <button type="submit" className="primary" disabled={forgot.isPending}>
            Email me a link
          </button>
        </form>
      )}
    </AuthCard>
  );
}

export function ResetPasswordPage() {
  const navigate = useNavigate();
  const [token] = useState(tokenFromFragment);
  const form = useForm<{ new_password: string }>({
    resolver: zodResolver(z.object({ new_password: z.string().min(10, "At least 10 characters") })),
  });
  const reset = useMutation({
    mutationFn: async (values: { new_password: string }) =>
      unwrap(await api.POST("/v1/auth/password/reset", { body: { token, new_password: values.new_password } })),
    onSuccess: () => navigate("/login"),
  });
  return (
    <AuthCard title="Choose a new password" footer={<Link to="/login">Back to log in</Link>}>
      {!token ? <p className="error">This page needs the link from the password reset email.</p> : null}
      <form onSubmit={form.handleSubmit((values) => reset.mutate(values))} noValidate>
        <Field label="New password" error={form.formState.errors.new_password?.message}>
          <input type="password" autoComplete="new-password" {...form.register("new_password")} />
        </Field>
        <ErrorNote error={reset.error} />
        <button type="submit" className="primary" disabled={!token || reset.isPending}>
          Set the password
        </button>
      </form>
    </AuthCard>
  );
}

export function AcceptInvitationPage() {
  const navigate = useNavigate();
  const [token] = useState(tokenFromFragment);
  const signedIn = session.current();
  const form = useForm<{ name: string; password: string; email: string }>({ defaultValues: { name: "", password: "", email: "" } });
  const accept = useMutation({
    mutationFn: async (values: { name: string; password: string; email: string }) => {
      const useSession = signedIn !== null && !values.password;
      const body = useSession ? { token } : { token, name: values.name, password: values.password };
      const headers = useSession ? undefined : { Authorization: "" };
      const pair = unwrap(await api.POST("/v1/invitations/accept", { body, headers }));
      await signInWith(pair, values.email || signedIn?.email || "");
    },
    onSuccess: () => navigate("/"),
  });
  return (
    <AuthCard title="Join a workspace" footer={<Link to="/login">Log in instead</Link>}>
      {!token ? <p className="error">This page needs the link from the invitation email.</p> : null}
      <p>
        {signedIn
          ? `Signed in as ${signedIn.email}: accept with this account, or give a password to create a new one.`
          : "New to Replyflow? Choose a password for your account. Already have one? Log in first, then open the link again."}
      </p>
      <form onSubmit={form.handleSubmit((values) => accept.mutate(values))} noValidate>
        <Field label="Your name">
          <input autoComplete="name" {...form.register("name")} />
        </Field>
        <Field label={signedIn ? "Password (only for a new account)" : "Password"}>
          <input type="password" autoComplete="new-password" {...form.register("password")} />
        </Field>
        <ErrorNote error={accept.error} />
        <button type="submit" className="primary" disabled={!token || accept.isPending}>
          Accept the invitation
        </button>
      </form>
    </AuthCard>
  );
}
