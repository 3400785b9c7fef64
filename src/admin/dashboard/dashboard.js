// airlock's dashboard: status, live flows (server-sent events), threats, LLM conversations,
// LLM spend.
// Everything comes from this admin server's own API; no other origin is contacted.
"use strict";

const MAX_ROWS = 500;
const flows = [];
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const auth = token ? { Authorization: "Bearer " + token } : {};

function $(id) { return document.getElementById(id); }

async function api(path) {
  const r = await fetch(path, { headers: auth });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text == null ? "-" : String(text);
  row.appendChild(td);
}

function time(ts) { return (ts || "").replace("T", " ").slice(0, 19); }

function matches(f) {
  const host = $("f-host").value.trim().toLowerCase();
  const action = $("f-action").value;
  const listener = $("f-listener").value.trim();
  if (action && f.action !== action) return false;
  if (listener && f.listener !== listener) return false;
  if (host) {
    const re = new RegExp("^" + host.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
    if (!re.test(f.host || "")) return false;
  }
  return true;
}

function renderFlows() {
  const body = $("flows").tBodies[0];
  body.replaceChildren();
  for (const f of flows) {
    if (!matches(f)) continue;
    const row = document.createElement("tr");
    row.className = f.action;
    row.dataset.id = f.id;
    cell(row, time(f.timestamp));
    cell(row, f.listener);
    cell(row, f.method);
    cell(row, f.status);
    cell(row, f.action);
    cell(row, f.url);
    row.addEventListener("click", () => showFlow(f));
    body.appendChild(row);
  }
}

function showFlow(f) {
  const detail = $("flow-detail");
  detail.hidden = false;
  detail.textContent = JSON.stringify({
    url: f.url, status: f.status, action: f.action, reason: f.reason,
    request_headers: f.request_headers, scan: f.scan,
  }, null, 2);
}

function addFlow(f) {
  flows.unshift(f);
  if (flows.length > MAX_ROWS) flows.length = MAX_ROWS;
}

function addThreat(t, atTop) {
  const body = $("threats").tBodies[0];
  const row = document.createElement("tr");
  row.className = t.action;
  cell(row, time(t.timestamp));
  cell(row, t.threat_type);
  cell(row, t.pattern);
  cell(row, t.action);
  cell(row, t.dest);
  cell(row, t.snippet);
  if (atTop) body.prepend(row); else body.appendChild(row);
}

function bars(el, lines) {
  el.replaceChildren();
  const max = Math.max(0, ...lines.map(l => l.cost_usd || 0));
  if (!lines.length) { el.textContent = "no LLM calls recorded"; return; }
  for (const l of lines) {
    const row = document.createElement("div");
    row.className = "row";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = l.key;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = (max > 0 ? Math.max(2, 240 * (l.cost_usd || 0) / max) : 2) + "px";
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = "$" + (l.cost_usd || 0).toFixed(4) + " · " + l.calls + " calls";
    row.append(label, bar, value);
    el.appendChild(row);
  }
}

// ---------------------------------------------------------------- conversations

let openSession = null;

async function refreshSessions() {
  const sessions = await api("/api/sessions?limit=100");
  const body = $("sessions").tBodies[0];
  body.replaceChildren();
  if (!sessions.length) {
    const row = document.createElement("tr");
    cell(row, "no LLM conversation recorded");
    body.appendChild(row);
  }
  for (const s of sessions) {
    const row = document.createElement("tr");
    row.dataset.session = s.session;
    if (s.session === openSession) row.className = "open";
    cell(row, time(s.last));
    cell(row, s.title || "(no user message)");
    cell(row, s.turns);
    cell(row, s.models);
    cell(row, s.input_tokens + " / " + s.output_tokens);
    cell(row, "$" + (s.cost_usd || 0).toFixed(4));
    cell(row, s.source + " · " + s.listener);
    row.addEventListener("click", () => showSession(s.session).catch(e => { $("transcript").textContent = e.message; }));
    body.appendChild(row);
  }
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text != null) e.textContent = String(text);
  return e;
}

function partBlock(who, p) {
  const label = p.kind === "text" ? who : who + " · " + p.kind + (p.name ? " " + p.name : "");
  const block = el("div", "msg " + (p.kind === "text" ? who : p.kind));
  block.append(el("div", "who", label), el("pre", "text", p.text || (p.kind === "image" ? "[image]" : "")));
  return block;
}

async function showSession(id) {
  const view = await api("/api/sessions/" + encodeURIComponent(id));
  openSession = id;
  for (const row of $("sessions").tBodies[0].rows) row.classList.toggle("open", row.dataset.session === id);
  const box = $("transcript");
  box.replaceChildren(el("h3", null, "Session " + id));
  view.turns.forEach((t, i) => {
    const turn = el("article", "turn");
    turn.dataset.turn = String(i + 1);
    const cost = t.cost_usd == null ? "cost ?" : "$" + t.cost_usd.toFixed(4);
    const ttft = t.ttft_ms == null ? "" : " · first token " + Math.round(t.ttft_ms) + " ms";
    turn.appendChild(el("div", "turn-head",
      "turn " + (i + 1) + " · " + time(t.timestamp) + " · " + (t.model || t.provider) + " · " +
      t.input_tokens + " in / " + t.output_tokens + " out · " + cost + " · " +
      Math.round(t.latency_ms) + " ms" + ttft + (t.status && t.status !== 200 ? " · HTTP " + t.status : "")));
    if (t.system) {
      const d = el("details", "system");
      d.append(el("summary", null, "system prompt (" + t.system.length + " chars)"), el("pre", "text", t.system));
      turn.appendChild(d);
    }
    if (t.tools && t.tools.length) turn.appendChild(el("div", "tools", "tools: " + t.tools.join(", ")));
    if (t.prompt_unreadable) turn.appendChild(el("div", "muted", "the request was too large to keep"));
    for (const m of t.messages) for (const p of m.parts) turn.appendChild(partBlock(m.role, p));
    for (const p of t.answer) turn.appendChild(partBlock("answer", p));
    for (const th of t.threats || []) {
      turn.appendChild(el("div", "detection " + th.action,
        "⚠ " + th.threat_type + " " + th.pattern + " · " + th.action + " · " + th.direction +
        (th.location ? " · " + th.location : "") + " · " + th.snippet));
    }
    box.appendChild(turn);
  });
  box.hidden = false;
}

async function refreshStatus() {
  const s = await api("/api/status");
  $("st-running").textContent = s.running ? "running" : "stopped";
  $("st-uptime").textContent = s.uptime_secs == null ? "-" : s.uptime_secs + " s";
  $("st-lockdown").textContent = s.lockdown ? "ON" : "off";
  $("st-requests").textContent = s.counters.requests;
  $("st-blocked").textContent = s.counters.blocked;
  $("st-threats").textContent = s.counters.threats;
  $("st-config").textContent = (s.config_digest || "").slice(0, 12);
  $("st-ca").textContent = (s.ca_fingerprint || "").slice(0, 23);
}

async function refreshSpend() {
  bars($("spend-model"), await api("/api/usage?by=model"));
  bars($("spend-day"), await api("/api/usage?by=day"));
}

function live() {
  const url = "/api/events" + (token ? "?access_token=" + encodeURIComponent(token) : "");
  const events = new EventSource(url);
  events.addEventListener("open", () => { $("live-state").textContent = "live"; });
  events.addEventListener("error", () => { $("live-state").textContent = "reconnecting…"; });
  events.addEventListener("flow", e => { addFlow(JSON.parse(e.data)); renderFlows(); });
  events.addEventListener("threat", e => { addThreat(JSON.parse(e.data), true); refreshStatus().catch(() => {}); });
}

async function start() {
  for (const id of ["f-host", "f-action", "f-listener"]) $(id).addEventListener("input", renderFlows);
  const [recent, threats] = await Promise.all([api("/api/flows?limit=200"), api("/api/threats?limit=100")]);
  for (const f of recent.reverse()) addFlow(f);
  renderFlows();
  for (const t of threats) addThreat(t, false);
  live();
  await Promise.all([refreshStatus(), refreshSpend(), refreshSessions()]);
  document.body.dataset.ready = "1";
  setInterval(() => { refreshStatus().catch(() => {}); refreshSpend().catch(() => {}); }, 5000);
  setInterval(() => { refreshSessions().catch(() => {}); }, 3000);
}

start().catch(e => { $("live-state").textContent = "error: " + e.message; });

// ---- Pending: requests held by `action: ask` policy rules --------------------------------
// Listed from /api/pending, kept current by the `pending` server-sent event (and a slow poll
// while the event stream is down); Approve / Deny POST to /api/pending/{id}/approve|deny.

function renderPending(list) {
  const section = $("pending-section");
  const body = $("pending").tBodies[0];
  body.replaceChildren();
  section.hidden = list.length === 0;
  for (const p of list) {
    const row = document.createElement("tr");
    row.dataset.id = p.id;
    cell(row, time(p.since));
    cell(row, p.rule);
    cell(row, p.method);
    cell(row, p.url);
    const td = document.createElement("td");
    for (const [verb, label] of [["approve", "Approve"], ["deny", "Deny"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = verb;
      b.textContent = label;
      b.addEventListener("click", () => decidePending(p.id, verb, row));
      td.appendChild(b);
    }
    row.appendChild(td);
    body.appendChild(row);
  }
}

async function refreshPending() {
  renderPending(await api("/api/pending"));
}

async function decidePending(id, verb, row) {
  for (const b of row.querySelectorAll("button")) b.disabled = true;
  try {
    const r = await fetch("/api/pending/" + encodeURIComponent(id) + "/" + verb, { method: "POST", headers: auth });
    const answer = await r.json().catch(() => ({}));
    $("pending-state").textContent = r.ok
      ? answer.decision + ": " + answer.method + " " + answer.url
      : verb + " failed: " + (answer.detail || r.status);
  } catch (e) {
    $("pending-state").textContent = verb + " failed: " + e.message;
  }
  await refreshPending().catch(() => {});
}

function startPending() {
  const url = "/api/events" + (token ? "?access_token=" + encodeURIComponent(token) : "");
  const events = new EventSource(url);
  let open = false;
  events.addEventListener("open", () => { open = true; refreshPending().catch(() => {}); });
  events.addEventListener("error", () => { open = false; });
  events.addEventListener("pending", e => renderPending(JSON.parse(e.data)));
  setInterval(() => { if (!open) refreshPending().catch(() => {}); }, 2000);
  refreshPending().then(() => { document.body.dataset.pendingReady = "1"; }).catch(() => {});
}

startPending();
