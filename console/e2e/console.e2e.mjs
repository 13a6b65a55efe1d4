// The tenant's day in a real browser against a running local stack:
// sign up -> connect an Instagram account through the OAuth flow (the sandbox consents) -> create a
// template and an automation (dry run) -> "Send a test comment" on the accounts page (the API makes
// the comment in the sandbox and delivers it through the webhook's queues) -> the decision shows in
// the logs and the counts in the stats, without a reload. Every page is screenshot (SCREENSHOT_DIR)
// and checked with axe: no serious or critical violation.
//
// Env: BASE_URL (the stack), SIMULATE (JSON argv of the CLI's `simulate`; the Stripe fake's payment
// is its `stripe paid`), SCREENSHOT_DIR. Exit 0 when every step passed; the failing step is on
// stderr otherwise.
import AxeBuilder from "@axe-core/playwright";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { launch } from "./browser.mjs";

const BASE = (process.env.BASE_URL || "http://127.0.0.1:3000").replace(/\/$/, "");
const SIMULATE = JSON.parse(process.env.SIMULATE || '["replyflow", "simulate"]');
const SHOTS = process.env.SCREENSHOT_DIR || new URL("./screenshots/", import.meta.url).pathname;
const TIMEOUT = 20_000;
mkdirSync(SHOTS, { recursive: true });

const report = { pages: {}, steps: [] };
const unique = Date.now().toString(36);
const email = `owner-${unique}@example.com`;

function step(name) {
  report.steps.push(name);
  console.log(`step: ${name}`);
}

async function check(page, name) {
  await page.waitForLoadState("networkidle").catch(() => null);
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const result = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  report.pages[name] = { violations: result.violations.map((v) => `${v.impact} ${v.id}`) };
  if (bad.length) {
    const detail = bad.map((v) => `${v.impact} ${v.id}: ${v.help} -> ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
    throw new Error(`axe on ${name}:\n  ${detail.join("\n  ")}`);
  }
}

async function main() {
  const browser = await launch();
  const page = browser.context.pages()[0] ?? (await browser.context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  const consoleErrors = [];
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  try {
    step("signed-out pages");
    await page.goto(`${BASE}/login`);
    await page.getByRole("heading", { name: "Log in" }).waitFor();
    await check(page, "login");
    await page.goto(`${BASE}/password/forgot`);
    await page.getByRole("heading", { name: "Reset your password" }).waitFor();
    await check(page, "password-forgot");
    await page.goto(`${BASE}/password/reset#token=example`);
    await check(page, "password-reset");
    await page.goto(`${BASE}/invitations/accept#token=example`);
    await check(page, "invitation-accept");

    step("sign up");
    await page.goto(`${BASE}/`);
    await page.waitForURL(/\/login/);
    await page.getByRole("link", { name: "Create an account" }).click();
    await page.getByLabel("Your name").fill("Olivia Owner");
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill("correct horse battery");
    await page.getByLabel("Workspace name").fill("Olivia's shop");
    await check(page, "signup");
    await page.getByRole("button", { name: "Sign up" }).click();
    await page.getByRole("heading", { name: "Welcome to Olivia's shop" }).waitFor();
    await check(page, "overview");

    step("connect an Instagram account (OAuth against the sandbox)");
    await page.getByRole("link", { name: "Instagram accounts" }).first().click();
    await page.getByRole("heading", { name: "No Instagram account yet" }).waitFor();
    await page.getByRole("button", { name: "Connect with Instagram" }).click();
    await page.waitForURL(`${BASE}/accounts`, { timeout: TIMEOUT });
    const card = page.getByTestId("account").first();
    await card.waitFor();
    await card.getByText(/Token valid/).waitFor();
    await card.getByRole("form", { name: /^Send a test comment to @/ }).waitFor();
    await check(page, "accounts");

    step("create a template with a live preview");
    await page.getByRole("link", { name: "Templates" }).click();
    await page.getByRole("button", { name: "New template" }).click();
    await page.getByLabel("Name", { exact: true }).fill("Link pack");
    await page.getByLabel(/^Text/).fill("Hi {{username}}! Here is your link");
    await page.getByRole("button", { name: "Add a button" }).click();
    await page.getByLabel("Button 1 title").fill("Open the pack");
    await page.getByLabel("Button 1 URL or payload").fill("https://example.com/pack");
    await page.getByRole("button", { name: "Add a quick reply" }).click();
    await page.getByLabel("Quick reply 1 title").fill("More please");
    await page.getByTestId("dm-bubble").getByText("Hi jane.doe! Here is your link").waitFor();
    await page.locator(".dm-buttons").getByText("Open the pack").waitFor();
    await page.locator(".quick-replies").getByText("More please").waitFor();
    await check(page, "template-editor");
    await page.getByRole("button", { name: "Create template" }).click();
    await page.getByRole("heading", { name: "Link pack" }).waitFor();
    await check(page, "templates");

    step("create an automation and dry-run it");
    await page.getByRole("link", { name: "Automations" }).click();
    await page.getByRole("heading", { name: "No automations yet" }).waitFor();
    await page.getByRole("button", { name: "New automation" }).click();
    const form = page.getByRole("form", { name: "New automation" });
    await form.getByRole("textbox", { name: "Name", exact: true }).fill("Comment LINK -> DM");
    await form.getByRole("textbox", { name: /^Keywords/ }).fill("link");
    await form.getByRole("combobox", { name: "Template" }).selectOption({ label: "Link pack" });
    await form.getByRole("button", { name: "Create automation" }).click();
    const automation = page.getByTestId("automation").first();
    await automation.getByRole("heading", { name: "Comment LINK -> DM" }).waitFor();
    await automation.getByPlaceholder("e.g. send me the link").fill("what is the price?");
    await automation.getByRole("button", { name: "Dry run" }).click();
    await automation.getByTestId("dry-run-result").getByText("Would not fire").waitFor();
    await automation.getByPlaceholder("e.g. send me the link").fill("send me the LINK please");
    await automation.getByRole("button", { name: "Dry run" }).click();
    await automation.getByTestId("dry-run-result").getByText("Would fire").waitFor();
    await check(page, "automations");

    step("a test comment from the accounts page; the log row and the stats update in the page");
    await page.getByRole("link", { name: "Logs" }).click();
    await page.getByRole("heading", { name: "Nothing logged yet" }).waitFor();
    await page.getByRole("link", { name: "Send a test comment from Accounts" }).waitFor();
    await check(page, "logs-empty");
    await page.getByRole("link", { name: "Send a test comment from Accounts" }).click();
    const tester = page.getByTestId("account").first().getByRole("form", { name: /^Send a test comment to @/ });
    await tester.getByRole("textbox", { name: /^Comment(?!er)/ }).fill("send me the LINK please");
    await tester.getByRole("button", { name: "Send a test comment" }).click();
    const sent = tester.getByTestId("test-comment-sent");
    await sent.getByText(/from @maya\.creates sent: it is on its way to your automations/).waitFor();
    await check(page, "accounts-test-comment");
    await sent.getByRole("link", { name: "See the decision in the logs" }).click();
    await page.waitForURL(`${BASE}/logs`);
    const table = page.getByTestId("log-table");
    await table.getByText("Comment LINK -> DM").first().waitFor({ timeout: 30_000 });
    await table.getByText(/sent|matched/).first().waitFor();
    await check(page, "logs");
    await page.getByRole("tab", { name: "Replies" }).click();
    await page.getByTestId("log-table").getByText(/private_reply sent/).first().waitFor({ timeout: 30_000 });
    await check(page, "logs-replies");

    await page.getByRole("link", { name: "Stats" }).click();
    await page.getByTestId("total-sent").getByText("1", { exact: true }).waitFor({ timeout: 30_000 });
    await page.getByRole("cell", { name: "Comment LINK -> DM" }).waitFor();
    await check(page, "stats");

    step("flows: the step editor and its simulator");
    await page.getByRole("link", { name: "Flows", exact: true }).click();
    await page.getByRole("heading", { name: "No flows yet" }).waitFor();
    await page.getByRole("button", { name: "New flow" }).click();
    await page.getByLabel("Flow name").fill("Guide");
    await page.getByTestId("flow-step").first().getByText("Hi! Want the guide?").first().waitFor();
    await page.getByRole("button", { name: "Run the simulation" }).click();
    await page.getByTestId("simulation").getByText("Here it is: https://example.com/guide").waitFor();
    await check(page, "flow-editor");
    await page.getByRole("button", { name: "Create the flow" }).click();
    await page.getByRole("heading", { name: "Guide" }).waitFor();
    await check(page, "flows");

    step("contacts");
    await page.getByRole("link", { name: "Contacts", exact: true }).click();
    await page.getByTestId("contacts-table").getByText("@maya.creates").waitFor();
    await page.getByRole("button", { name: "@maya.creates" }).click();
    await page.getByRole("heading", { name: "Timeline" }).waitFor();
    await check(page, "contacts");

    step("members, API keys, billing");
    await page.getByRole("link", { name: "Members" }).click();
    await page.getByRole("cell", { name: email }).waitFor();
    await page.getByRole("form", { name: "Invite" }).getByLabel("Email").fill(`teammate-${unique}@example.com`);
    await page.getByRole("button", { name: "Send the invitation" }).click();
    await page.getByText(`teammate-${unique}@example.com`).waitFor();
    await check(page, "members");
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByLabel("Name", { exact: true }).fill("CRM sync");
    await page.getByRole("button", { name: "Create a key" }).click();
    await page.locator("code.secret").getByText(/^rfk_/).waitFor();
    await check(page, "api-keys");

    step("billing: plan and usage (GET /v1/billing); an upgrade through Checkout, paid by the Stripe fake");
    await page.getByRole("link", { name: "Billing" }).click();
    await page.getByRole("heading", { name: "Plans" }).waitFor();
    await page.getByRole("heading", { name: /Free plan/ }).waitFor();
    await page.getByTestId("usage-max_accounts").getByText(/Instagram accounts: 1 of \d+/).waitFor();
    await page.getByTestId("usage-monthly_dm_quota").waitFor();
    await check(page, "billing");
    const slug = await page.evaluate(async () => {
      const state = JSON.parse(localStorage.getItem("replyflow.session.v1"));
      const token = state.workspaces[state.current].accessToken;
      const me = await fetch("/v1/me", { headers: { Authorization: `Bearer ${token}` } });
      return (await me.json()).tenant.slug;
    });
    // The fake serves no checkout page: a stand-in for Stripe's, then the fake plays the paying customer.
    await page.route(/\/checkout\/cs_/, (route) =>
      route.fulfill({ contentType: "text/html", body: '<!doctype html><html lang="en"><title>Checkout</title><h1>Checkout</h1></html>' }),
    );
    await page.getByRole("button", { name: "Upgrade to Pro" }).click();
    await page.waitForURL(/\/checkout\/cs_/);
    const [command, ...args] = SIMULATE;
    execFileSync(command, [...args, "stripe", "paid", "--tenant", slug], { stdio: "inherit" });
    await page.goto(`${BASE}/billing?checkout=success`);
    await page.getByRole("heading", { name: /Pro plan/ }).waitFor({ timeout: 45_000 });
    await page.getByTestId("invoices").waitFor();
    await page.getByRole("button", { name: "Manage billing" }).waitFor();
    await check(page, "billing-pro");

    step("phone width");
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole("button", { name: "Menu" }).click();
    await page.getByRole("link", { name: "Logs" }).click();
    await page.getByTestId("log-table").waitFor();
    await check(page, "phone-logs");
    await page.getByRole("button", { name: "Menu" }).click();
    await page.getByRole("link", { name: "Templates" }).click();
    await check(page, "phone-templates");

    if (consoleErrors.length) throw new Error(`uncaught errors in the page:\n${consoleErrors.join("\n")}`);
    report.ok = true;
  } catch (error) {
    report.ok = false;
    report.error = String(error?.stack ?? error);
    await page.screenshot({ path: join(SHOTS, "failure.png"), fullPage: true }).catch(() => null);
    console.error(`FAILED at step "${report.steps.at(-1)}" on ${page.url()}\n${report.error}`);
  } finally {
    writeFileSync(join(SHOTS, "report.json"), JSON.stringify(report, null, 2));
    await browser.close();
  }
  process.exit(report.ok ? 0 : 1);
}

await main();
