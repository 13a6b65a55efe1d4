// The typed API client: paths and bodies come from openapi.json (npm run gen), so an API change
// breaks `tsc`, not the console's users. Same origin: /v1 is served next to the console.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";
import { session } from "./session";

export type Schemas = components["schemas"];
export type ErrorBody = Schemas["ErrorBody"];

/** An error the API (or its gateway) answered with its one shape: {"error": {code, message, details}}.
 * `retryAfter` is the answer's Retry-After in seconds (a 429 says when its allowance has room again). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  readonly retryAfter: number | null;
  constructor(status: number, body: unknown, headers?: Headers) {
    const error = (body as { error?: Partial<ErrorBody> } | undefined)?.error;
    super(error?.message ?? `The API answered ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = error?.code ?? "http_" + status;
    this.details = error?.details ?? null;
    const seconds = Number(headers?.get("Retry-After") ?? NaN);
    this.retryAfter = Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
  }
}

let refreshing: Promise<boolean> | null = null;

/** One refresh at a time; true when the current workspace has a new token pair. */
async function refreshSession(): Promise<boolean> {
  const current = session.current();
  if (!current) return false;
  refreshing ??= (async () => {
    try {
      const response = await fetch("/v1/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: current.refreshToken }),
      });
      if (!response.ok) return false;
      const pair = (await response.json()) as Schemas["TokenPair"];
      session.update(current.tenantId, { accessToken: pair.access_token, refreshToken: pair.refresh_token });
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

const auth: Middleware = {
  onRequest({ request }) {
    const current = session.current();
    if (current && !request.headers.has("Authorization")) {
      request.headers.set("Authorization", `Bearer ${current.accessToken}`);
    }
    return request;
  },
};

export const retryAfterRefresh: typeof fetch = async (input, init) => {
  const request = new Request(input, init);
  const retry = request.clone();
  const response = await fetch(request);
  if (response.status !== 401 || request.url.includes("/v1/auth/")) return response;
  if (!(await refreshSession())) {
    session.signOut();
    return response;
  }
  retry.headers.set("Authorization", `Bearer ${session.current()?.accessToken ?? ""}`);
  return fetch(retry);
};

export const api = createClient<paths>({ baseUrl: globalThis.location?.origin ?? "", fetch: retryAfterRefresh });
api.use(auth);

/** The data of an openapi-fetch result, or an ApiError thrown with the API's message. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || !result.response.ok) {
    throw new ApiError(result.response.status, result.error, result.response.headers);
  }
  return result.data as T;
}

export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return "Something went wrong";
}
