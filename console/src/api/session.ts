// Signed-in workspaces, kept in localStorage: one token pair per workspace, one of them current.
// The switcher lists the user's workspaces from GET /v1/me/workspaces; one without a pair here is
// entered by logging in with its tenant_id (the API's way into another workspace).
import { useSyncExternalStore } from "react";

export interface WorkspaceSession {
  tenantId: string;
  tenantName: string;
  email: string;
  role: string;
  accessToken: string;
  refreshToken: string;
}

export interface SessionState {
  current: string | null;
  workspaces: Record<string, WorkspaceSession>;
}

const KEY = "replyflow.session.v1";
const EMPTY: SessionState = { current: null, workspaces: {} };
const listeners = new Set<() => void>();
let state: SessionState = load();

function load(): SessionState {
  try {
    const raw = globalThis.localStorage?.getItem(KEY);
    if (!raw) return EMPTY;
    const parsed = JSON.parse(raw) as SessionState;
    return parsed && typeof parsed === "object" && parsed.workspaces ? parsed : EMPTY;
  } catch {
    return EMPTY;
  }
}

function save(next: SessionState): void {
  state = next;
  try {
    globalThis.localStorage?.setItem(KEY, JSON.stringify(next));
  } catch {
    // storage full or disabled: the session lives for this tab only
  }
  listeners.forEach((listener) => listener());
}

export const session = {
  get: (): SessionState => state,
  current: (): WorkspaceSession | null => (state.current ? (state.workspaces[state.current] ?? null) : null),
  subscribe(listener: () => void): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
  signIn(ws: WorkspaceSession): void {
    save({ current: ws.tenantId, workspaces: { ...state.workspaces, [ws.tenantId]: ws } });
  },
  update(tenantId: string, patch: Partial<WorkspaceSession>): void {
    const existing = state.workspaces[tenantId];
    if (!existing) return;
    save({ ...state, workspaces: { ...state.workspaces, [tenantId]: { ...existing, ...patch } } });
  },
  switchTo(tenantId: string): void {
    if (state.workspaces[tenantId]) save({ ...state, current: tenantId });
  },
  signOut(tenantId: string | null = state.current): void {
    const workspaces = { ...state.workspaces };
    if (tenantId) delete workspaces[tenantId];
    const remaining = Object.keys(workspaces);
    save({ current: remaining[0] ?? null, workspaces });
  },
  reset(): void {
    save(EMPTY);
  },
};

export function useSession(): SessionState {
  return useSyncExternalStore(session.subscribe, session.get, session.get);
}
