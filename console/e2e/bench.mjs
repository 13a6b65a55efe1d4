// Time to interactive of the logs and stats pages over a running stack, and the JS each page ships.
// A full navigation per sample (fresh page, warm HTTP cache like a returning user's, signed in): the
// time is performance.now() (ms since navigation start) when the page's data is on screen, plus the
// navigation timing entry's domInteractive. JS bytes: every script response of the navigation, gzipped.
// Env: BASE_URL, EMAIL, PASSWORD, SAMPLES. Prints one JSON object.
import { gzipSync } from "node:zlib";
import { launch } from "./browser.mjs";

const BASE = (process.env.BASE_URL || "http://127.0.0.1:3000").replace(/\/$/, "");
const SAMPLES = Number(process.env.SAMPLES || 20);

async function measure(context, path, ready) {
  const page = await context.newPage();
  const scripts = [];
  page.on("response", async (response) => {
    if (response.request().resourceType() === "script") {
      try {
        scripts.push(gzipSync(await response.body()).length);
      } catch {
        // a cached response without a body: counted on the first, uncached navigation
      }
    }
  });
  await page.goto(`${BASE}${path}`, { waitUntil: "commit" });
  await page.locator(ready).first().waitFor({ timeout: 30_000 });
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    return { ready: performance.now(), domInteractive: nav.domInteractive, load: nav.loadEventEnd };
  });
  await page.close();
  return { ...timing, jsGzipBytes: scripts.reduce((a, b) => a + b, 0), jsFiles: scripts.length };
}

const browser = await launch();
const context = browser.context;
try {
  const first = await measure(context, "/login", "button[type=submit]");
  const login = await context.newPage();
  await login.goto(`${BASE}/login`);
  await login.getByLabel("Email").fill(process.env.EMAIL);
  await login.getByLabel("Password").fill(process.env.PASSWORD);
  await login.getByRole("button", { name: "Log in" }).click();
  await login.getByRole("heading", { name: /Welcome to/ }).waitFor();
  await login.close();
  const pages = {
    logs: { path: "/logs", ready: "[data-testid=log-table] tbody tr" },
    stats: { path: "/stats", ready: "[data-testid=total-sent] .tile-value" },
  };
  const result = { first_page: { path: "/login", js_gzip_bytes: first.jsGzipBytes, js_files: first.jsFiles } };
  for (const [name, spec] of Object.entries(pages)) {
    const cold = await measure(context, spec.path, spec.ready);
    const samples = [];
    for (let i = 0; i < SAMPLES; i++) samples.push(await measure(context, spec.path, spec.ready));
    result[name] = {
      js_gzip_bytes_cold: cold.jsGzipBytes,
      cold_ready_ms: cold.ready,
      ready_ms: samples.map((s) => s.ready),
      dom_interactive_ms: samples.map((s) => s.domInteractive),
    };
  }
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
