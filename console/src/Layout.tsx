import { useQueryClient } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { Link, Navigate, NavLink, Outlet, useLocation, useNavigate } from "react-router";
import { api, type Schemas } from "./api/client";
import { useWorkspaces } from "./api/queries";
import { session, useSession, type SessionState } from "./api/session";

export const NAV = [
  { to: "/", label: "Overview" },
  { to: "/accounts", label: "Instagram accounts" },
  { to: "/templates", label: "Templates" },
  { to: "/automations", label: "Automations" },
  { to: "/flows", label: "Flows" },
  { to: "/contacts", label: "Contacts" },
  { to: "/logs", label: "Logs" },
  { to: "/stats", label: "Stats" },
  { to: "/members", label: "Members" },
  { to: "/api-keys", label: "API keys" },
  { to: "/billing", label: "Billing" },
];

export function RequireSession({ children }: { children: ReactNode }) {
  const state = useSession();
  const location = useLocation();
  if (!state.current) {
    const next = encodeURIComponent(location.pathname + location.search);
    return <Navigate to={`/login?next=${next}`} replace />;
  }
  return <>{children}</>;
}

export interface WorkspaceChoice {
  tenantId: string;
  label: string;
  signedIn: boolean;
}

/** The switcher's options: the user's workspaces from the API (a failed or pending read falls back to
 * the ones signed into here), then any signed-in workspace the API did not list. */
export function workspaceChoices(
  listed: readonly Schemas["WorkspaceView"][] | undefined,
  state: SessionState,
): WorkspaceChoice[] {
  const choices: WorkspaceChoice[] = (listed ?? []).map((ws) => ({
    tenantId: ws.tenant.id,
    label: `${ws.tenant.name} (${ws.role})`,
    signedIn: ws.tenant.id in state.workspaces,
  }));
  const seen = new Set(choices.map((c) => c.tenantId));
  for (const ws of Object.values(state.workspaces)) {
    if (!seen.has(ws.tenantId)) choices.push({ tenantId: ws.tenantId, label: `${ws.tenantName} (${ws.role})`, signedIn: true });
  }
  return choices;
}

/** Where choosing a workspace leads: home when signed into it here, else the login for that workspace. */
export function switchPath(choice: WorkspaceChoice, email: string | undefined): string {
  if (choice.signedIn) return "/";
  const params = new URLSearchParams({ add: "1", tenant: choice.tenantId });
  if (email) params.set("email", email);
  return `/login?${params.toString()}`;
}

export function WorkspaceSwitcher() {
  const state = useSession();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const listed = useWorkspaces();
  const choices = workspaceChoices(listed.data, state);
  return (
    <div className="switcher">
      <label htmlFor="workspace">Workspace</label>
      <select
        id="workspace"
        value={state.current ?? ""}
        onChange={(event) => {
          if (event.target.value === "__add") {
            navigate("/login?add=1");
            return;
          }
          const choice = choices.find((c) => c.tenantId === event.target.value);
          if (!choice) return;
          if (choice.signedIn) {
            session.switchTo(choice.tenantId);
            queryClient.clear();
          }
          navigate(switchPath(choice, session.current()?.email));
        }}
      >
        {choices.map((choice) => (
          <option key={choice.tenantId} value={choice.tenantId}>
            {choice.signedIn ? choice.label : `${choice.label}: log in`}
          </option>
        ))}
        <option value="__add">+ Sign in to another workspace</option>
      </select>
    </div>
  );
}

export function Layout() {
  const [open, setOpen] = useState(false);
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const current = session.current();
  async function logout() {
    if (current) await api.POST("/v1/auth/logout", { body: { refresh_token: current.refreshToken } }).catch(() => null);
    session.signOut();
    queryClient.clear();
    navigate("/login");
  }
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="brand">
          Replyflow
        </Link>
        <button
          type="button"
          className="menu-toggle"
          aria-expanded={open}
          aria-controls="nav"
          onClick={() => setOpen(!open)}
        >
          Menu
        </button>
        <WorkspaceSwitcher />
        <span className="who">{current?.email}</span>
        <button type="button" className="link" onClick={logout}>
          Log out
        </button>
      </header>
      <nav id="nav" className={open ? "nav open" : "nav"} aria-label="Main">
        <ul>
          {NAV.map((item) => (
            <li key={item.to}>
              <NavLink to={item.to} end={item.to === "/"} onClick={() => setOpen(false)}>
                {item.label}
              </NavLink>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main">
        <Outlet />
      </main>
    </div>
  );
}
