// Drives the dashboard in a real Chromium (playwright-core): waits for the page to load its
// data, prints "READY" with what it shows, waits for a flow whose URL contains argv[3] to
// arrive live, clicks it, and prints what the detail pane and the console said, as JSON.
// Usage: node dashboard_driver.js URL MARKER   (NODE_PATH must hold playwright-core)
"use strict";
const { chromium } = require("playwright-core");

(async () => {
  const [url, marker] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const out = { console: [], requests: [] };
  try {
    const page = await browser.newPage();
    page.on("console", m => { if (m.type() === "error" || m.type() === "warning") out.console.push(m.text()); });
    page.on("request", r => out.requests.push(r.url()));
    await page.goto(url);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
    await page.waitForFunction(() => document.getElementById("live-state").textContent === "live", null, { timeout: 10000 });
    out.initial = {
      flows: await page.$$eval("#flows tbody tr", rows => rows.map(r => r.textContent)),
      threats: await page.$$eval("#threats tbody tr", rows => rows.map(r => r.textContent)),
      requests: await page.textContent("#st-requests"),
      ca: await page.textContent("#st-ca"),
      spend: await page.textContent("#spend-model"),
    };
    const shots = process.env.DASHBOARD_SHOTS;
    if (shots) await page.screenshot({ path: shots + "/dashboard-loaded.png", fullPage: true });
    console.log("READY " + JSON.stringify(out.initial));
    const row = await page.waitForSelector(`#flows tbody tr:has-text("${marker}")`, { timeout: 15000 });
    await row.click();
    out.detail = await page.textContent("#flow-detail");
    await page.fill("#f-action", "").catch(() => {});
    await page.selectOption("#f-action", "blocked");
    out.filtered = await page.$$eval("#flows tbody tr", rows => rows.map(r => r.className));
    if (shots) await page.screenshot({ path: shots + "/dashboard-live-detail-filtered.png", fullPage: true });
  } finally {
    await browser.close();
  }
  console.log("RESULT " + JSON.stringify(out));
})().catch(e => { console.log("FAILED " + e.message); process.exit(1); });
