// Drives the dashboard's Pending panel in a real Chromium (playwright-core): loads the page,
// prints "READY" with whether the panel is hidden, reads one JSON line on stdin naming the
// held requests to approve and to deny, waits for both rows to appear live, clicks Approve on
// one and Deny on the other, and prints what the page showed as "RESULT <json>".
// Usage: node ask_driver.js URL   (NODE_PATH must hold playwright-core; ASK_SHOTS a directory
// for screenshots)
"use strict";
const readline = require("readline");
const { chromium } = require("playwright-core");

function nextLine() {
  const rl = readline.createInterface({ input: process.stdin });
  return new Promise(resolve => rl.once("line", line => { rl.close(); resolve(line); }));
}

(async () => {
  const [url] = process.argv.slice(2);
  const shots = process.env.ASK_SHOTS;
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
    await page.waitForSelector('body[data-ready="1"][data-pending-ready="1"]', { timeout: 15000 });
    const hidden = await page.$eval("#pending-section", s => s.hidden);
    console.log("READY " + JSON.stringify({ hidden }));

    const ids = JSON.parse(await nextLine());
    const row = id => `#pending tbody tr[data-id="${id}"]`;
    await page.waitForSelector(row(ids.approve), { timeout: 15000 });
    await page.waitForSelector(row(ids.deny), { timeout: 15000 });
    out.rows = await page.$$eval("#pending tbody tr", rows => rows.map(r => r.textContent));
    if (shots) await page.screenshot({ path: shots + "/ask-pending.png", fullPage: true });

    await page.click(`${row(ids.approve)} button.approve`);
    await page.waitForSelector(row(ids.approve), { state: "detached", timeout: 10000 });
    await page.click(`${row(ids.deny)} button.deny`);
    await page.waitForSelector(row(ids.deny), { state: "detached", timeout: 10000 });
    await page.waitForFunction(() => document.getElementById("pending-section").hidden, null, { timeout: 10000 });
    out.after = await page.$$eval("#pending tbody tr", rows => rows.map(r => r.textContent));
    out.hidden_after = await page.$eval("#pending-section", s => s.hidden);
    out.state = await page.textContent("#pending-state");
    if (shots) await page.screenshot({ path: shots + "/ask-decided.png", fullPage: true });
  } finally {
    await browser.close();
  }
  console.log("RESULT " + JSON.stringify(out));
})().catch(e => { console.log("FAILED " + e.message); process.exit(1); });
