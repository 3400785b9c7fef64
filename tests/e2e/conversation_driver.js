// Opens an LLM session on the dashboard in a real Chromium (playwright-core): waits for the
// page to load, clicks the session whose first message contains argv[3], and prints what the
// transcript shows (turn headers, messages, detections) and what the console said, as JSON.
// Usage: node conversation_driver.js URL MARKER   (NODE_PATH must hold playwright-core)
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
    const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
    page.on("console", m => { if (m.type() === "error" || m.type() === "warning") out.console.push(m.text()); });
    page.on("request", r => out.requests.push(r.url()));
    await page.goto(url);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
    const row = await page.waitForSelector(`#sessions tbody tr:has-text("${marker}")`, { timeout: 15000 });
    out.row = await row.textContent();
    await row.click();
    await page.waitForSelector("#transcript .turn", { timeout: 10000 });
    out.turns = await page.$$eval("#transcript .turn", turns => turns.map(t => ({
      head: t.querySelector(".turn-head").textContent,
      system: t.querySelector(".system pre") ? t.querySelector(".system pre").textContent : null,
      tools: t.querySelector(".tools") ? t.querySelector(".tools").textContent : null,
      messages: Array.from(t.querySelectorAll(".msg")).map(m => [m.querySelector(".who").textContent, m.querySelector("pre").textContent]),
      detections: Array.from(t.querySelectorAll(".detection")).map(d => d.textContent),
    })));
    const shots = process.env.DASHBOARD_SHOTS;
    if (shots) {
      const section = await page.$("#conversations-section");
      await section.screenshot({ path: shots + "/dashboard-conversation.png" });
    }
  } finally {
    await browser.close();
  }
  console.log("RESULT " + JSON.stringify(out));
})().catch(e => { console.log("FAILED " + e.message); process.exit(1); });
