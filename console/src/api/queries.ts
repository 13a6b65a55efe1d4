// Shared queries: one key per resource, so a mutation invalidates exactly what it changed.
import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "./client";
import { automationsQuery, flowsQuery } from "./pageQueries";

export const keys = {
  me: ["me"] as const,
  workspaces: ["me", "workspaces"] as const,
  accounts: ["accounts"] as const,
  templates: ["templates"] as const,
  automations: ["automations"] as const,
  members: ["members"] as const,
  invitations: ["invitations"] as const,
  apiKeys: ["api-keys"] as const,
  plans: ["plans"] as const,
};

export const useMe = () => useQuery({ queryKey: keys.me, queryFn: async () => unwrap(await api.GET("/v1/me")) });
export const useWorkspaces = () =>
  useQuery({ queryKey: keys.workspaces, queryFn: async () => unwrap(await api.GET("/v1/me/workspaces")) });
export const useAccounts = () =>
  useQuery({ queryKey: keys.accounts, queryFn: async () => unwrap(await api.GET("/v1/accounts")) });
export const useTemplates = () =>
  useQuery({ queryKey: keys.templates, queryFn: async () => unwrap(await api.GET("/v1/templates")) });
export const useAutomations = () => useQuery(automationsQuery);
export const usePlans = () => useQuery({ queryKey: keys.plans, queryFn: async () => unwrap(await api.GET("/v1/plans")) });
export const useFlows = () => useQuery(flowsQuery);
