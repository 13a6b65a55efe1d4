import { useQueryClient } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { Link, Navigate, NavLink, Outlet, useLocation, useNavigate } from "react-router";
import { api } from "./api/client";
import { session, useSession } from "./api/session";

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

function WorkspaceSwitcher() {
  const state = useSession();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const workspaces = Object.values(state.workspaces);
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
          session.switchTo(event.target.value);
          queryClient.clear();
          navigate("/");
        }}
      >
        {workspaces.map((ws) => (
          <option key={ws.tenantId} value={ws.tenantId}>
            {ws.tenantName} ({ws.role})
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
