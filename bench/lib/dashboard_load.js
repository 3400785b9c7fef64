// Times the dashboard's first screen in Chromium (playwright-core): from navigation to the
// page marking itself ready (status, flows, threats, spend and sessions all shown), N times
// with a fresh page each time. Prints one JSON line: {"ms": [...], "flows_shown": n}.
// Usage: node dashboard_load.js URL N   (NODE_PATH must hold playwright-core)
"use strict";
const { chromium } = require("playwright-core");

(async () => {
  const [url, n] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  const out = { ms: [] };
  try {
    for (let i = 0; i < Number(n || 5); i++) {
      const page = await browser.newPage();
      const t0 = Date.now();
      await page.goto(url);
      await page.waitForSelector('body[data-ready="1"]', { timeout: 30000 });
      out.ms.push(Date.now() - t0);
      out.flows_shown = await page.$$eval("#flows tbody tr", rows => rows.length);
      out.sessions_shown = await page.$$eval("#sessions tbody tr", rows => rows.length);
      await page.close();
    }
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})().catch(e => { console.log(JSON.stringify({ error: e.message })); process.exit(1); });
