// A 429 leaves no page empty or wrong: the page shows the API's message (which allowance ran out, when
// it has room again), keeps what it already has, and reads again by itself after Retry-After.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, render, screen } from "@testing-library/react";
import type { ReactNode } from "react";
import { MemoryRouter } from "react-router";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, unwrap } from "./api/client";
import { session } from "./api/session";
import OverviewPage from "./pages/overview";
import StatsPage from "./pages/stats";
import { queryOptions, rateLimitedRefetch } from "./queryClient";

// uPlot draws on a canvas, which happy-dom does not have; the chart is not what these tests read.
vi.mock("./components/Chart", () => ({ DailyChart: () => null }));

const MESSAGE = "the console allows each signed-in user 600 requests per minute in a workspace; retry in 12 s";
const LIMITED = {
  error: {
    code: "rate_limited",
    message: MESSAGE,
    details: { allowance: "console", limit: 600, window: "minute", window_seconds: 60, resets_at: "2026-12-01T11:15:12Z" },
  },
};
const TENANT = { id: "t1", name: "Acme", slug: "acme", plan_code: "free", status: "active" };

/** fetch answers by path; any other path is the console allowance's 429. */
function answer(routes: Record<string, unknown>) {
  const fetch = vi.fn(async (input: RequestInfo | URL) => {
    const path = new URL(input instanceof Request ? input.url : String(input)).pathname;
    const found = path in routes;
    const headers = { "Content-Type": "application/json", "X-RateLimit-Allowance": "console", ...(found ? {} : { "Retry-After": "12" }) };
    return new Response(JSON.stringify(found ? routes[path] : LIMITED), { status: found ? 200 : 429, headers });
  });
  vi.stubGlobal("fetch", fetch);
  return fetch;
}

function renderPage(page: ReactNode, path: string) {
  const client = new QueryClient({ defaultOptions: { queries: queryOptions } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[path]}>{page}</MemoryRouter>
    </QueryClientProvider>,
  );
}

beforeEach(() => {
  session.signIn({ tenantId: "t1", tenantName: "Acme", email: "a@b.c", role: "owner", accessToken: "a", refreshToken: "r" });
});

afterEach(() => {
  cleanup();
  session.reset();
  vi.unstubAllGlobals();
});

describe("a rate-limited answer", () => {
  it("is an ApiError with the API's message, code and Retry-After", () => {
    const response = new Response(null, { status: 429, headers: { "Retry-After": "12" } });
    try {
      unwrap({ error: LIMITED, response });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ApiError);
      expect((error as ApiError).message).toBe(MESSAGE);
      expect((error as ApiError).code).toBe("rate_limited");
      expect((error as ApiError).retryAfter).toBe(12);
      expect((error as ApiError).details).toMatchObject({ allowance: "console" });
    }
  });

  it("makes a query read again after Retry-After (5 to 60 s), and nothing else does", () => {
    expect(rateLimitedRefetch(new ApiError(429, LIMITED, new Headers({ "Retry-After": "12" })))).toBe(12_000);
    expect(rateLimitedRefetch(new ApiError(429, LIMITED, new Headers({ "Retry-After": "3600" })))).toBe(60_000);
    expect(rateLimitedRefetch(new ApiError(429, LIMITED, new Headers({ "Retry-After": "1" })))).toBe(5_000); // the stage throttle's
    expect(rateLimitedRefetch(new ApiError(429, LIMITED))).toBe(5_000);
    expect(rateLimitedRefetch(new ApiError(404, null))).toBe(false);
    expect(rateLimitedRefetch(null)).toBe(false);
    expect(queryOptions.retry(0, new ApiError(429, LIMITED))).toBe(false); // shown, not retried unseen
  });
});

describe("a page whose reads are refused with 429", () => {
  it("shows the API's message on the overview instead of an unfinished checklist", async () => {
    answer({ "/v1/me": { principal_type: "user", role: "owner", tenant: TENANT } });
    renderPage(<OverviewPage />, "/");
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain(MESSAGE);
    expect(alert.textContent).toContain("(rate_limited)");
  });

  it("shows it on the stats page, and no 'Nothing skipped' for the reasons it could not read", async () => {
    const fetch = answer({
      "/v1/stats": { since: "2026-11-02", until: "2026-12-01", items: [], totals: { sent: 3 }, flows: {} },
      "/v1/automations": [],
      "/v1/flows": [],
    });
    renderPage(<StatsPage />, "/stats");
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain(MESSAGE);
    expect(screen.getByTestId("total-sent").textContent).toContain("3"); // what it could read stays
    expect(screen.queryByText("Nothing skipped.")).toBeNull();
    expect(fetch).toHaveBeenCalled();
  });

  it("shows it when the page's main read is refused", async () => {
    answer({ "/v1/automations": [], "/v1/flows": [] });
    renderPage(<StatsPage />, "/stats");
    expect((await screen.findByRole("alert")).textContent).toContain(MESSAGE);
    expect(screen.queryByText("No activity in this range")).toBeNull();
  });
});
