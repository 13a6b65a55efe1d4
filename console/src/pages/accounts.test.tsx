// The accounts page's "Send a test comment" form (sandbox stacks): validation before any request, the
// request the API documents, the result with its link to the logs, and the API's error shape.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import type { ReactNode } from "react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Schemas } from "../api/client";
import AccountsPage, { TestCommentForm, testCommentOutcome } from "./accounts";

const account = (over: Partial<Schemas["AccountView"]> = {}): Schemas["AccountView"] => ({
  id: "acc-1",
  ig_user_id: "17841400000000042",
  username: "my.shop",
  status: "active",
  status_reason: null,
  token_expires_at: null,
  hourly_send_budget: 200,
  webhook_subscribed_at: null,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
  sandbox: true,
  ...over,
});

const sent: Schemas["SandboxCommentSent"] = {
  comment_id: "17912345678901234",
  account_id: "acc-1",
  ig_user_id: "17841400000000042",
  media_id: "18034567890123456",
  text: "send me the LINK please",
  username: "ann.b",
  from_id: "7351928465012834",
  enqueued: 1,
  dropped: {},
};

type Seen = { method: string; path: string; body: unknown };

/** fetch answered by ``answer(method, path)``; every request is recorded. */
function stubFetch(answer: (method: string, path: string) => [number, unknown]): Seen[] {
  const seen: Seen[] = [];
  vi.stubGlobal("fetch", async (input: Request) => {
    const path = new URL(input.url).pathname;
    const text = await input.text();
    seen.push({ method: input.method, path, body: text ? JSON.parse(text) : null });
    const [status, body] = answer(input.method, path);
    return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
  });
  return seen;
}

function wrap(children: ReactNode) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter>{children}</MemoryRouter>
    </QueryClientProvider>,
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("the test comment form", () => {
  it("refuses an empty comment without calling the API", async () => {
    const seen = stubFetch(() => [500, {}]);
    wrap(<TestCommentForm account={account()} />);
    fireEvent.click(screen.getByRole("button", { name: "Send a test comment" }));
    expect(await screen.findByText("Write the comment")).toBeTruthy();
    fireEvent.change(screen.getByLabelText(/^Comment(?!er)/), { target: { value: "hi" } });
    fireEvent.change(screen.getByLabelText(/^Commenter's username/), { target: { value: "not a name" } });
    fireEvent.click(screen.getByRole("button", { name: "Send a test comment" }));
    expect(await screen.findByText(/Letters, digits, dots and underscores/)).toBeTruthy();
    expect(seen).toEqual([]);
  });

  it("posts the comment and shows the result with a link to the logs", async () => {
    const seen = stubFetch(() => [202, sent]);
    wrap(<TestCommentForm account={account()} />);
    fireEvent.change(screen.getByLabelText(/^Comment(?!er)/), { target: { value: "send me the LINK please" } });
    fireEvent.change(screen.getByLabelText(/^Commenter's username/), { target: { value: "ann.b" } });
    fireEvent.click(screen.getByRole("button", { name: "Send a test comment" }));
    const result = await screen.findByTestId("test-comment-sent");
    expect(result.textContent).toContain("Comment 17912345678901234 from @ann.b sent: it is on its way to your automations.");
    expect(screen.getByRole("link", { name: "See the decision in the logs" }).getAttribute("href")).toBe("/logs");
    expect(seen).toEqual([
      { method: "POST", path: "/v1/accounts/acc-1/test-comments", body: { text: "send me the LINK please", username: "ann.b" } },
    ]);
  });

  it("sends no username when none is given", async () => {
    const seen = stubFetch(() => [202, sent]);
    wrap(<TestCommentForm account={account()} />);
    fireEvent.change(screen.getByLabelText(/^Comment(?!er)/), { target: { value: "LINK" } });
    fireEvent.click(screen.getByRole("button", { name: "Send a test comment" }));
    await screen.findByTestId("test-comment-sent");
    expect(seen[0].body).toEqual({ text: "LINK", username: null });
  });

  it("shows the API's error message and code", async () => {
    const error = { error: { code: "sandbox_tools_disabled", message: "test comments exist only on a sandbox stack", details: null } };
    stubFetch(() => [404, error]);
    wrap(<TestCommentForm account={account()} />);
    fireEvent.change(screen.getByLabelText(/^Comment(?!er)/), { target: { value: "LINK" } });
    fireEvent.click(screen.getByRole("button", { name: "Send a test comment" }));
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("test comments exist only on a sandbox stack");
    expect(alert.textContent).toContain("(sandbox_tools_disabled)");
    expect(screen.queryByTestId("test-comment-sent")).toBeNull();
  });

  it("says why the webhook dropped an event", () => {
    expect(testCommentOutcome({ ...sent, enqueued: 0, dropped: { self_comment: 1 } })).toBe("the webhook dropped it (self_comment)");
  });
});

describe("the accounts page", () => {
  it("offers the test comment only on a connected sandbox account", async () => {
    const accounts = [
      account({ id: "a", username: "sandboxed" }),
      account({ id: "b", username: "real.one", sandbox: false }),
      account({ id: "c", username: "gone", status: "disabled" }),
    ];
    stubFetch((_method, path) => (path === "/v1/accounts" ? [200, accounts] : [200, { items: [], next_cursor: null }]));
    wrap(<AccountsPage />);
    await screen.findByRole("heading", { name: "@gone" });
    await waitFor(() => expect(screen.getAllByRole("form").map((f) => f.getAttribute("aria-label"))).toEqual(["Send a test comment to @sandboxed"]));
  });
});
