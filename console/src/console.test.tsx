import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, render, screen } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError, unwrap } from "./api/client";
import { keys } from "./api/queries";
import { session } from "./api/session";
import { WorkspaceSwitcher, switchPath, workspaceChoices } from "./Layout";
import { DmPreview, fromSendApi } from "./components/DmPreview";
import { tokenHealth } from "./pages/accounts";
import { BillingSummary, limitLabel, statusTone } from "./pages/billing";
import { joinCsv } from "./pages/contacts";
import { dayTotals, fieldText, parseEvents, withField } from "./pages/flows";
import { toBody as automationBody } from "./pages/automations";
import { dailySeries, perAutomation } from "./pages/stats";
import { toBody as templateBody } from "./pages/templates";
import type { Schemas } from "./api/client";

afterEach(() => {
  cleanup();
  session.reset();
});

describe("the API's error shape", () => {
  it("becomes an ApiError with the API's message and code", () => {
    const response = new Response(null, { status: 409 });
    const body = { error: { code: "oauth_state_used", message: "This state was already used", details: null } };
    expect(() => unwrap({ error: body, response })).toThrowError("This state was already used");
    try {
      unwrap({ error: body, response });
    } catch (error) {
      expect(error).toBeInstanceOf(ApiError);
      expect((error as ApiError).code).toBe("oauth_state_used");
      expect((error as ApiError).status).toBe(409);
    }
  });
  it("says the status when the body is not the error shape", () => {
    expect(new ApiError(502, "Bad Gateway").message).toBe("The API answered 502");
  });
});

describe("sessions per workspace", () => {
  const ws = (tenantId: string) => ({ tenantId, tenantName: tenantId, email: "a@b.c", role: "owner", accessToken: "a", refreshToken: "r" });
  it("switches and signs out to the next workspace", () => {
    session.signIn(ws("t1"));
    session.signIn(ws("t2"));
    expect(session.current()?.tenantId).toBe("t2");
    session.switchTo("t1");
    expect(session.current()?.tenantId).toBe("t1");
    session.signOut();
    expect(session.current()?.tenantId).toBe("t2");
    expect(JSON.parse(localStorage.getItem("replyflow.session.v1")!).current).toBe("t2");
  });
});

describe("the workspace switcher", () => {
  const ws = (tenantId: string) => ({ tenantId, tenantName: `Shop ${tenantId}`, email: "a@b.c", role: "owner", accessToken: "a", refreshToken: "r" });
  const listed = (id: string, role: string, current = false): Schemas["WorkspaceView"] => ({
    tenant: { id, name: `Shop ${id}`, slug: id, plan_code: "free", status: "active" },
    role,
    current,
    joined_at: "2026-11-01T00:00:00Z",
  });
  it("lists the API's workspaces, marks the ones signed into here, and keeps a signed-in one it did not list", () => {
    session.signIn(ws("t9"));
    session.signIn(ws("t1"));
    const choices = workspaceChoices([listed("t1", "owner", true), listed("t2", "member")], session.get());
    expect(choices).toEqual([
      { tenantId: "t1", label: "Shop t1 (owner)", signedIn: true },
      { tenantId: "t2", label: "Shop t2 (member)", signedIn: false },
      { tenantId: "t9", label: "Shop t9 (owner)", signedIn: true },
    ]);
  });
  it("falls back to the signed-in workspaces while the list is not there", () => {
    session.signIn(ws("t1"));
    expect(workspaceChoices(undefined, session.get()).map((c) => c.tenantId)).toEqual(["t1"]);
  });
  it("switches in place when signed in, else logs in to that workspace", () => {
    expect(switchPath({ tenantId: "t1", label: "", signedIn: true }, "a@b.c")).toBe("/");
    expect(switchPath({ tenantId: "t2", label: "", signedIn: false }, "a@b.c")).toBe("/login?add=1&tenant=t2&email=a%40b.c");
  });
  it("renders every workspace of the user as an option", () => {
    session.signIn(ws("t1"));
    const client = new QueryClient({ defaultOptions: { queries: { staleTime: Infinity, retry: false } } });
    client.setQueryData(keys.workspaces, [listed("t1", "owner", true), listed("t2", "admin")]);
    render(
      <QueryClientProvider client={client}>
        <MemoryRouter>
          <WorkspaceSwitcher />
        </MemoryRouter>
      </QueryClientProvider>,
    );
    const options = screen.getAllByRole("option").map((o) => o.textContent);
    expect(options).toEqual(["Shop t1 (owner)", "Shop t2 (admin): log in", "+ Sign in to another workspace"]);
    expect((screen.getByLabelText("Workspace") as HTMLSelectElement).value).toBe("t1");
  });
});

describe("the DM preview", () => {
  it("renders a button template with quick replies", () => {
    const message = fromSendApi({
      attachment: { type: "template", payload: { template_type: "button", text: "Hi jane!", buttons: [{ type: "web_url", title: "Open", url: "https://x" }] } },
      quick_replies: [{ content_type: "text", title: "More", payload: "MORE" }, { content_type: "user_email" }],
    });
    render(<DmPreview message={message} />);
    expect(screen.getByText("Hi jane!")).toBeTruthy();
    expect(screen.getByText("Open")).toBeTruthy();
    expect(screen.getByText("More")).toBeTruthy();
    expect(screen.getByText("Email")).toBeTruthy();
  });
  it("renders a generic template as a carousel", () => {
    const message = fromSendApi({
      attachment: { type: "template", payload: { template_type: "generic", elements: [{ title: "Card A", subtitle: "a" }, { title: "Card B", buttons: [{ title: "Buy" }] }] } },
    });
    render(<DmPreview message={message} />);
    expect(screen.getByRole("list", { name: "Carousel" }).children).toHaveLength(2);
    expect(screen.getByText("Buy")).toBeTruthy();
  });
});

describe("form bodies", () => {
  it("a template draft becomes TemplateCreate", () => {
    const body = templateBody({
      name: " Link ",
      text: "Hi",
      buttons: [
        { type: "web_url", title: "Open", value: "https://x" },
        { type: "postback", title: "Yes", value: "" },
      ],
      quick_replies: [{ title: "More", payload: "" }],
    });
    expect(body).toEqual({
      name: "Link",
      text: "Hi",
      buttons: [
        { type: "web_url", title: "Open", url: "https://x" },
        { type: "postback", title: "Yes", payload: "YES" },
      ],
      quick_replies: [{ content_type: "text", title: "More", payload: "MORE" }],
    });
  });
  it("an automation draft becomes AutomationCreate with one action", () => {
    const body = automationBody({
      account_id: "a1",
      name: "Link",
      trigger: "comment",
      match_mode: "whole_word",
      keywords: "link, price ,",
      action: "private_reply",
      template_id: "t1",
      variants: "",
    });
    expect(body.keywords).toEqual(["link", "price"]);
    expect(body.actions).toEqual({ private_reply: { template_id: "t1" }, dm_reply: null, public_reply: null });
  });
});

describe("account health", () => {
  const account = { id: "a", ig_user_id: "1", username: "u", status: "active", status_reason: null, token_expires_at: null, hourly_send_budget: 200, webhook_subscribed_at: null, created_at: "", updated_at: "" };
  const now = Date.parse("2026-12-01T00:00:00Z");
  it("warns a week before the token expires and asks for re-auth", () => {
    expect(tokenHealth({ ...account, token_expires_at: "2027-01-20T00:00:00Z" }, now).tone).toBe("ok");
    expect(tokenHealth({ ...account, token_expires_at: "2026-12-04T00:00:00Z" }, now)).toEqual({ label: "Token expires in 3 d", tone: "warn" });
    expect(tokenHealth({ ...account, status: "needs_reauth" }, now).label).toBe("Needs re-authorization");
  });
});

describe("stats", () => {
  const view: Schemas["StatsView"] = {
    since: "2026-11-29",
    until: "2026-12-01",
    totals: { sent: 3, skipped: 1 },
    items: [
      { date: "2026-11-29", automation_id: "a1", counts: { sent: 1 } },
      { date: "2026-12-01", automation_id: "a1", counts: { sent: 1, skipped: 1 } },
      { date: "2026-12-01", automation_id: "a2", counts: { sent: 1 } },
    ],
  };
  it("fills every day of the range, zero where nothing happened", () => {
    const { days, series } = dailySeries(view, ["sent", "skipped"]);
    expect(days).toEqual(["2026-11-29", "2026-11-30", "2026-12-01"]);
    expect(series[0].values).toEqual([1, 0, 2]);
    expect(series[1].values).toEqual([0, 0, 1]);
  });
  it("sums per automation", () => {
    expect(perAutomation(view).get("a1")).toEqual({ sent: 2, skipped: 1 });
  });
});

describe("the flow step editor", () => {
  it("round-trips buttons, quick replies and routes through their text", () => {
    let step = { id: "ask", kind: "send", message: { text: "Hi" } } as Parameters<typeof withField>[0];
    step = withField(step, "buttons", "Open | https://x.example\nYes", "lines");
    step = withField(step, "quick_replies", "More | MORE", "lines");
    expect(step.message).toEqual({
      text: "Hi",
      buttons: [
        { type: "web_url", title: "Open", url: "https://x.example" },
        { type: "postback", title: "Yes", payload: "YES" },
      ],
      quick_replies: [{ content_type: "text", title: "More", payload: "MORE" }],
    });
    expect(fieldText(step, "buttons")).toBe("Open | https://x.example\nYes | YES");
    const wait = withField({ id: "w", kind: "wait" }, "routes", "YES -> link\nNO -> bye", "lines");
    expect(wait.routes).toEqual({ YES: "link", NO: "bye" });
    expect(withField({ id: "d", kind: "delay" }, "minutes", "15", "number").minutes).toBe(15);
    expect("next" in withField({ id: "d", kind: "delay", next: "x" }, "next", "", "step")).toBe(false);
  });
  it("parses a conversation for the simulator", () => {
    expect(parseEvents("comment: send: the guide\npostback: YES\nwait: 90\nfollows: false")).toEqual([
      { kind: "comment", text: "send: the guide" },
      { kind: "postback", payload: "YES" },
      { kind: "wait", minutes: 90 },
      { kind: "follows", follows: false },
    ]);
  });
});

describe("contacts CSV export", () => {
  it("joins pages with the header once", () => {
    expect(joinCsv(["id,name\n1,a\n", "id,name\n2,b\n"])).toBe("id,name\n1,a\n2,b\n");
  });
});

describe("the billing overview", () => {
  const overview = (over: Partial<Schemas["BillingOverview"]> = {}): Schemas["BillingOverview"] => ({
    plan_code: "pro",
    plan_name: "Pro",
    price_cents: 2900,
    status: "past_due",
    provider: "stripe",
    status_reason: "payment failed",
    current_period_start: "2026-11-01T00:00:00Z",
    current_period_end: "2026-12-01T00:00:00Z",
    renews_at: "2026-12-01T00:00:00Z",
    cancel_at_period_end: false,
    grace_until: "2026-12-08T00:00:00Z",
    usage: [
      { limit: "monthly_dm_quota", used: 120, allowed: 5000 },
      { limit: "max_accounts", used: 4, allowed: 3 },
    ],
    invoices: [
      { id: "in_1", number: "RF-0001", status: "paid", amount_due: 2900, amount_paid: 2900, currency: "usd", created: "2026-11-01T00:00:00Z", hosted_invoice_url: "https://pay.example/in_1" },
    ],
    invoices_unavailable: false,
    paused_automations: [{ id: "a1", name: "Giveaway", reason: "over the plan's automation limit" }],
    ...over,
  });
  it("shows the plan, status and reason, grace end, usage, invoices and paused automations", () => {
    render(<BillingSummary billing={overview()} />);
    expect(screen.getByRole("heading", { name: /Pro plan/ }).textContent).toContain("past_due");
    expect(screen.getByTestId("status-reason").textContent).toBe("payment failed");
    expect(screen.getByText(/Payment failed: the plan stays until/)).toBeTruthy();
    expect(screen.getByTestId("usage-monthly_dm_quota").textContent).toContain("DMs sent this month: 120 of 5000");
    expect(screen.getByTestId("usage-max_accounts").textContent).toContain("over the limit");
    expect(screen.getByRole("link", { name: "RF-0001" }).getAttribute("href")).toBe("https://pay.example/in_1");
    expect(screen.getByTestId("paused-automations").textContent).toContain("Giveaway — over the plan's automation limit");
  });
  it("says when invoices are unavailable and shows no grace note when active", () => {
    render(<BillingSummary billing={overview({ status: "active", status_reason: null, invoices: [], invoices_unavailable: true, paused_automations: [] })} />);
    expect(screen.queryByText(/Payment failed/)).toBeNull();
    expect(screen.getByText(/Invoices are unavailable/)).toBeTruthy();
    expect(screen.queryByTestId("paused-automations")).toBeNull();
  });
  it("labels limits and tones statuses", () => {
    expect(limitLabel("max_members")).toBe("Members");
    expect(limitLabel("some_new_limit")).toBe("some new limit");
    expect(statusTone("active")).toBe("ok");
    expect(statusTone("past_due")).toBe("warn");
    expect(statusTone("canceled")).toBe("bad");
  });
});

describe("a flow's counts per day", () => {
  it("adds up the steps and versions of each day, in the API's order", () => {
    const days = [
      { date: "2026-12-01", outcome: "entered", count: 2 },
      { date: "2026-12-01", outcome: "sent", count: 1 },
      { date: "2026-12-01", outcome: "entered", count: 1 },
      { date: "2026-12-02", outcome: "tapped", count: 4 },
    ];
    expect(dayTotals(days)).toEqual([
      ["2026-12-01", "entered 3, sent 1"],
      ["2026-12-02", "tapped 4"],
    ]);
  });
});
