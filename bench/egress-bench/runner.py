"""agent-egress-bench runner for airlock.

Reads a local copy of the corpus's cases/ directory, sends every case an HTTP/WebSocket proxy can
see through a real airlock process (to a local upstream standing in for every host), and judges
from the wire and from airlock's own records whether airlock contained it. See README.md.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import client  # noqa: E402
import realformat  # noqa: E402
from upstream import HOST_IP, Upstream, make_certs  # noqa: E402

A2A_URL = "https://remote-agent.example.com/a2a"  # the peer agent an A2A message is sent to
MCP_HTTP_URL = "https://mcp-server.example.com/mcp"  # a Streamable-HTTP MCP server

RANK = {"allowed": 0, "failed": 0, "warned": 1, "redacted": 2, "blocked": 3}

NOT_APPLICABLE = {
    "mcp_stdio": "MCP over stdio: JSON-RPC between the agent and a local tool process on pipes; "
                 "no network traffic, so no network proxy sees it",
}


# --------------------------------------------------------------------------- cases -> plans


def load_cases(cases_dir: Path) -> list[dict]:
    cases = []
    for p in sorted(cases_dir.rglob("*.json")):
        with open(p) as f:
            c = json.load(f)
        c["_path"] = str(p.relative_to(cases_dir))
        cases.append(c)
    return cases


def corpus_identity(cases_dir: Path, cases_rev: str | None) -> dict:
    h = hashlib.sha256()
    for p in sorted(cases_dir.rglob("*.json")):
        h.update(p.read_bytes())
    rev = cases_rev
    if not rev:
        try:
            rev = subprocess.run(["git", "-C", str(cases_dir), "rev-parse", "HEAD"], capture_output=True,
                                 text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            rev = None
    return {"path": str(cases_dir), "commit": rev, "sha256_of_case_files": h.hexdigest()}


def _guess_content_type(body: str) -> str:
    s = body.lstrip()
    if s.startswith("<?xml"):
        return "application/xml; charset=utf-8"
    if s.startswith("<"):
        return "text/html; charset=utf-8"
    try:
        json.loads(s)
        return "application/json"
    except ValueError:
        return "text/plain; charset=utf-8"


def plan(case: dict) -> dict:
    """How the case travels: a list of steps (request or websocket session) and its direction."""
    t, it, p = case["transport"], case["input_type"], case["payload"]
    if t in NOT_APPLICABLE:
        return {"applicable": False, "why": NOT_APPLICABLE[t]}
    bench_hdr = ("X-Bench-Case", case["id"])
    if it == "websocket_frame":
        return {"applicable": True, "direction": "outbound", "how": "websocket messages sent by the agent",
                "steps": [{"kind": "ws", "url": p["url"], "frames": p["frames"], "headers": [bench_hdr]}]}
    if it == "response_content":
        body = p["response_body"]
        return {"applicable": True, "direction": "inbound", "how": "GET; the upstream answers the case's response",
                "steps": [{"kind": "http", "method": "GET", "url": p["url"], "headers": [("Accept", "*/*"), bench_hdr],
                           "body": None, "response": body.encode(), "content_type": _guess_content_type(body)}]}
    if it == "a2a_agent_card":
        card = p["agent_card"]
        from urllib.parse import urlsplit

        host = urlsplit(card.get("url") or "https://agent.example.com/").netloc
        body = json.dumps(card, ensure_ascii=False)
        return {"applicable": True, "direction": "inbound",
                "how": "GET /.well-known/agent-card.json; the upstream answers the case's card",
                "steps": [{"kind": "http", "method": "GET", "url": f"https://{host}/.well-known/agent-card.json",
                           "headers": [("Accept", "application/json"), bench_hdr], "body": None,
                           "response": body.encode(), "content_type": "application/json"}]}
    if it in ("a2a_message", "mcp_tool_call") and "jsonrpc_messages" in p:
        url = A2A_URL if t == "a2a" else MCP_HTTP_URL
        steps = []
        for msg in p["jsonrpc_messages"]:
            stream = msg.get("method") == "message/stream"
            accept = "text/event-stream" if stream else (
                "application/json, text/event-stream" if t == "mcp_http" else "application/json")
            steps.append({"kind": "http", "method": "POST", "url": url,
                          "headers": [("Content-Type", "application/json"), ("Accept", accept), bench_hdr],
                          "body": json.dumps(msg, ensure_ascii=False).encode()})
        how = "POST of the JSON-RPC message to a peer agent" if t == "a2a" else "POST to a Streamable-HTTP MCP server"
        return {"applicable": True, "direction": "outbound", "how": how, "steps": steps}
    if it in ("url", "request_body", "header"):
        headers = list((p.get("headers") or {}).items())
        body = p.get("body")
        if body is not None and not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", p.get("content_type") or "application/octet-stream"))
        headers.append(bench_hdr)
        return {"applicable": True, "direction": "outbound", "how": f"{p.get('method', 'GET')} through the proxy",
                "steps": [{"kind": "http", "method": p.get("method", "GET"), "url": p["url"], "headers": headers,
                           "body": body.encode() if body is not None else None}]}
    return {"applicable": False, "why": f"no way to send input_type {it!r} over transport {t!r}"}


def hosts_of(plans: list[dict]) -> set[str]:
    """Host names (as spelled in the cases, and lower-cased) that must resolve to the upstream."""
    out = set()
    for pl in plans:
        for s in pl.get("steps", []):
            _, _, raw, h, _, _ = client._split_url(s["url"])
            if h and not client._is_ip(h) and not h.replace(".", "").isdigit() and not h.startswith("0x"):
                out |= {raw, h.lower()}
    return out


# --------------------------------------------------------------------------- airlock


class Airlock:
    def __init__(self, binary: str, config: dict, workdir: Path, name: str):
        self.dir = workdir / name
        self.data = self.dir / "data"
        self.data.mkdir(parents=True)
        self.config_path = self.dir / "airlock.json"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.cmd = [binary, "start", "--data-dir", str(self.data), "--config", str(self.config_path),
                    "--listen", "127.0.0.1:0", "--log", "1"]
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "airlock_home",
                                    "airlock_config", "sslkeylogfile")}
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        self.stderr: list[str] = []
        first = threading.Event()

        def drain():
            for raw in self.proc.stderr:
                self.stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))
                first.set()
            first.set()

        threading.Thread(target=drain, daemon=True).start()
        if not first.wait(30) or not self.stderr:
            self.proc.kill()
            raise RuntimeError(f"airlock wrote no boot line: {' '.join(self.cmd)}")
        try:
            self.boot = json.loads(self.stderr[0])
        except ValueError:
            self.stop()
            raise RuntimeError(f"airlock did not boot: {self.stderr[:5]}") from None
        self.port = int(self.boot["listen"].rsplit(":", 1)[1])
        self.ca = self.boot.get("ca") or str(self.data / "ca" / "airlock-ca.pem")
        self.flows_path = self.data / "logs" / "flows.jsonl"
        self.threats_path = self.data / "logs" / "threats.jsonl"

    def offsets(self):
        return tuple(p.stat().st_size if p.exists() else 0 for p in (self.flows_path, self.threats_path))

    @staticmethod
    def _lines_from(path: Path, offset: int) -> list[dict]:
        if not path.exists():
            return []
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
        out = []
        for line in data.split(b"\n"):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a line still being written
        return out

    def records_since(self, offs, case_id: str, wait: float = 3.0):
        """New flow and threat records; waits for the case's own flow record (X-Bench-Case)."""
        deadline = time.monotonic() + wait
        while True:
            flows = self._lines_from(self.flows_path, offs[0])
            mine = [f for f in flows if (f.get("request_headers") or {}).get("x-bench-case") == case_id]
            if mine or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        time.sleep(0.03)
        flows = self._lines_from(self.flows_path, offs[0])
        threats = self._lines_from(self.threats_path, offs[1])
        return flows, threats

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# --------------------------------------------------------------------------- one case


def run_case(al: Airlock, up: Upstream, case: dict, pl: dict) -> dict:
    offs = al.offsets()
    steps_out = []
    for step in pl["steps"]:
        up.set_response(step.get("response"), step.get("content_type"))
        if step["kind"] == "ws":
            r = client.ws_session(al.port, al.ca, step["url"], step["frames"], step["headers"])
            steps_out.append({"kind": "ws", "status": r.status, "block_reason": r.headers.get("x-airlock-block-reason"),
                              "rule": r.headers.get("x-airlock-rule"), "acks": r.acks, "close_code": r.close_code,
                              "close_reason": r.close_reason[:200], "closed_without_close_frame": r.closed_without_close_frame,
                              "send_error": r.send_error, "error": r.error,
                              "messages_sent": sum(1 for f in step["frames"] if f.get("fin", True))})
        else:
            r = client.http_request(al.port, al.ca, step["method"], step["url"], step["headers"], step["body"])
            ctype = r.headers.get("content-type", "")
            steps_out.append({"kind": "http", "status": r.status, "connect_status": r.connect_status,
                              "block_reason": r.headers.get("x-airlock-block-reason"),
                              "rule": r.headers.get("x-airlock-rule"),
                              "redacted_header": r.headers.get("x-airlock-redacted"),
                              "redacted_in_body": b"[REDACTED:" in r.body,
                              "sse_error_event": "event-stream" in ctype and b"event: error" in r.body,
                              "body_changed": (step.get("response") is not None and r.status == 200
                                               and r.body != step["response"]),
                              "error": r.error})
    up.set_response(None, None)
    flows, threats = al.records_since(offs, case["id"])
    hits = up.hits_for(case["id"])
    return judge(case, pl, steps_out, flows, threats, hits)


def judge(case, pl, steps, flows, threats, hits) -> dict:
    signals = []  # (outcome, source, detail)
    for s in steps:
        if s.get("block_reason") and s.get("status") == 403:
            signals.append(("blocked", "403", f"{s['block_reason']}:{s.get('rule')}"))
        if s["kind"] == "ws" and s.get("close_code") == 1008:
            signals.append(("blocked", "ws-close-1008", s.get("close_reason", "")[:80]))
        if s.get("sse_error_event"):
            signals.append(("blocked", "sse-error-event", ""))
        if s.get("redacted_header") or s.get("redacted_in_body"):
            signals.append(("redacted", "response", s.get("redacted_header") or "in body"))
    for f in flows:
        if f.get("action") in ("blocked", "redacted", "warned"):
            signals.append((f["action"], "flow", f.get("reason") or ",".join((f.get("scan") or {}).get("findings") or [])))
    for t in threats:
        if t.get("action") in ("blocked", "redacted", "warned"):
            signals.append((t["action"], "threat", f"{t.get('threat_type')}:{t.get('pattern')}"))
    outcome = "allowed"
    for o, _, _ in signals:
        if RANK[o] > RANK[outcome]:
            outcome = o
    errors = [s["error"] for s in steps if s.get("error")]
    failed = [s for s in steps if s["kind"] == "http" and s.get("status") in (502, 503, 504)]
    ws_refused = [s for s in steps if s["kind"] == "ws" and s.get("status") == 101 and s.get("close_code") not in (None, 1008)
                  and s.get("acks", 0) < s.get("messages_sent", 0)]
    if outcome == "allowed" and (failed or errors):
        outcome = "failed"
    delivered = [h for h in hits if h["kind"] in ("http", "ws-message")]
    attack = case["expected_verdict"] == "block"
    # Redaction contains an attack only when the attack is a secret arriving (a DLP case seen in a
    # response): then the agent never gets it. Redacting a file path out of an injected command
    # (response-injection-ignore-002: "cat ~/.ssh/id_rsa") still delivers the injection: flagged.
    inbound_secret = pl["direction"] == "inbound" and any(t.endswith("_dlp") for t in case["capability_tags"])
    if attack:
        if outcome == "blocked" or (outcome == "redacted" and inbound_secret):
            verdict = "contained"
        elif outcome in ("warned", "redacted"):
            verdict = "flagged"
        else:
            verdict = "missed"
    else:
        verdict = {"blocked": "false_block", "warned": "false_flag", "redacted": "false_flag"}.get(outcome, "ok")
    patterns = sorted({t.get("pattern") for t in threats if t.get("pattern")})
    note = ""
    if failed:
        note = f"airlock answered {failed[0]['status']} (forwarded, upstream unreachable)"
    elif errors:
        note = "client error: " + errors[0][:120]
    elif ws_refused:
        note = f"websocket closed with {ws_refused[0]['close_code']} before delivery"
    return {
        "id": case["id"], "category": case["category"], "transport": case["transport"],
        "input_type": case["input_type"], "expected": case["expected_verdict"], "direction": pl["direction"],
        "outcome": outcome, "verdict": verdict, "patterns": patterns,
        "signals": [list(s) for s in signals], "delivered_upstream": len(delivered), "note": note,
        "steps": steps,
        "flows": [{k: f.get(k) for k in ("method", "url", "status", "action", "reason", "scan")} for f in flows],
        "threats": [{k: t.get(k) for k in ("direction", "protocol", "threat_type", "pattern", "action", "dest")}
                    for t in threats],
    }


# --------------------------------------------------------------------------- summaries and report


def summarize(results: list[dict]) -> dict:
    cats: dict[str, dict] = OrderedDict()
    total = {"attacks": 0, "contained": 0, "contained_blocked": 0, "contained_redacted": 0, "flagged": 0,
             "missed": 0, "benign": 0, "false_block": 0, "false_flag": 0}
    for r in sorted(results, key=lambda r: r["category"]):
        c = cats.setdefault(r["category"], {k: 0 for k in total})
        for d in (c, total):
            if r["expected"] == "block":
                d["attacks"] += 1
                d[r["verdict"]] += 1
                if r["verdict"] == "contained":
                    d["contained_blocked" if r["outcome"] == "blocked" else "contained_redacted"] += 1
            else:
                d["benign"] += 1
                if r["verdict"] in ("false_block", "false_flag"):
                    d[r["verdict"]] += 1
    for d in list(cats.values()) + [total]:
        d["containment"] = round(d["contained"] / d["attacks"], 4) if d["attacks"] else None
        d["containment_or_flag"] = round((d["contained"] + d["flagged"]) / d["attacks"], 4) if d["attacks"] else None
    return {"per_category": cats, "overall": total}


def pct(x):
    return "–" if x is None else f"{100 * x:.1f} %"


def render(report: dict) -> str:
    out = []
    a = report["airlock"]
    c = report["corpus"]
    out.append(f"# agent-egress-bench × airlock ({report['stamp']})\n")
    out.append(f"- airlock: `{a['version']}` ({a['bin']})")
    out.append(f"- corpus: {c['path']} commit `{c['commit'] or 'unknown'}`, sha256 of case files "
               f"`{c['sha256_of_case_files'][:16]}…`; {c['cases']} cases, {c['applicable']} visible to an "
               f"HTTP/WebSocket proxy, {c['not_applicable']} not applicable")
    out.append(f"- command: `{report['command']}`")
    out.append(f"- runtime: {report['runtime_s']:.0f} s\n")
    na = OrderedDict()
    for n in report["not_applicable"]:
        na.setdefault(n["category"], []).append(n)
    out.append("Not applicable (MCP over stdio, no network traffic): " +
               ", ".join(f"{k} {len(v)}" for k, v in na.items()) + "\n")
    runs = report["runs"]
    configs = list(OrderedDict.fromkeys(r["config"] for r in runs))
    variants = list(OrderedDict.fromkeys(r["variant"] for r in runs))
    for cfg in configs:
        body = next(r["config_detect"] for r in runs if r["config"] == cfg)
        out.append(f"## config `{cfg}`: {json.dumps(body) if body else '(airlock defaults)'}\n")
        by_v = {r["variant"]: r["summary"] for r in runs if r["config"] == cfg}
        head = "| category | attacks |"
        sep = "|---|---:|"
        for v in variants:
            head += f" contained ({v}) | flagged only ({v}) |"
            sep += "---:|---:|"
        head += " benign | false blocks | false flags |"
        sep += "---:|---:|---:|"
        out += [head, sep]
        cats = list(OrderedDict.fromkeys(k for v in variants for k in by_v[v]["per_category"]))
        for cat in cats + ["**overall**"]:
            rows = {v: (by_v[v]["overall"] if cat == "**overall**" else by_v[v]["per_category"][cat]) for v in variants}
            first = rows[variants[0]]
            line = f"| {cat} | {first['attacks']} |"
            for v in variants:
                d = rows[v]
                if d["attacks"]:
                    line += f" {d['contained']} ({pct(d['containment'])}) | {d['flagged']} |"
                else:
                    line += " – | – |"
            fb = " / ".join(str(rows[v]["false_block"]) for v in variants)
            ff = " / ".join(str(rows[v]["false_flag"]) for v in variants)
            line += f" {first['benign']} | {fb if first['benign'] else '–'} | {ff if first['benign'] else '–'} |"
            out.append(line)
        out.append("")
        if len(variants) > 1:
            out.append(f"(false blocks / false flags: {' / '.join(variants)}; benign cases are the same in every variant)\n")
    out.append("## Cases not contained (attack cases missed or only flagged)\n")
    for r in runs:
        miss = OrderedDict()
        for x in r["results"]:
            if x["verdict"] in ("missed", "flagged"):
                miss.setdefault(x["category"], []).append(x["id"] + (" (flagged)" if x["verdict"] == "flagged" else ""))
        out.append(f"- **{r['config']} / {r['variant']}**: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in miss.items()))
        fb = [x["id"] + f" ({x['outcome']})" for x in r["results"] if x["verdict"] in ("false_block", "false_flag")]
        if fb:
            out.append(f"  - benign blocked/flagged: {', '.join(fb)}")
    if report.get("real_variant"):
        rv = report["real_variant"]
        out.append(f"\n## Variant `real`: {len(rv['changed_cases'])} attack cases changed (seed {rv['seed']})\n")
        for cid, ch in rv["changed_cases"].items():
            kinds = sorted({f"{x['type']} ({x['encoding']})" for x in ch})
            out.append(f"- {cid}: {', '.join(kinds)}")
        if rv["unchanged_attacks_with_fake_markers"]:
            out.append(f"- still fake-looking after replacement: {rv['unchanged_attacks_with_fake_markers']}")
    return "\n".join(out) + "\n"


def deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config_file(path: Path) -> dict:
    text = path.read_text()
    try:
        import yaml

        data = yaml.safe_load(text)
    except ImportError:
        data = json.loads(text)
    return data or {}


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", required=True, type=Path, help="the corpus's cases/ directory")
    ap.add_argument("--config", action="append", type=Path,
                    help="airlock config to merge over the bench base (repeatable); default: configs/defaults.yaml "
                         "and configs/injections-block.yaml")
    ap.add_argument("--variants", default="corpus,real", help="corpus (as it stands), real (real-format values)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the real-format generator")
    ap.add_argument("--only", default="", help="comma-separated case ids (debugging)")
    ap.add_argument("--corpus-rev", default=None, help="corpus commit, when cases/ is not in a git work tree")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    ap.add_argument("--misses", type=Path, default=None, help="also write the per-category miss list (Markdown) here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (configs, data dirs, logs)")
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    binary = os.environ.get("AIRLOCK_BIN") or str(REPO / "target" / "release" / "airlock")
    if not os.access(binary, os.X_OK):
        print(f"airlock binary not found: {binary} (set AIRLOCK_BIN)", file=sys.stderr)
        return 2
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    cases_dir = args.cases.resolve()
    if not cases_dir.is_dir():
        print(f"no cases directory: {cases_dir}", file=sys.stderr)
        return 2
    cases = load_cases(cases_dir)
    if args.only:
        keep = set(args.only.split(","))
        cases = [c for c in cases if c["id"] in keep]
    plans = {c["id"]: plan(c) for c in cases}
    applicable = [c for c in cases if plans[c["id"]]["applicable"]]
    not_applicable = [{"id": c["id"], "category": c["category"], "transport": c["transport"],
                       "expected": c["expected_verdict"], "why": plans[c["id"]]["why"]}
                      for c in cases if not plans[c["id"]]["applicable"]]

    variants = [v for v in args.variants.split(",") if v]
    variant_cases = {}
    real_info = None
    for v in variants:
        if v == "corpus":
            variant_cases[v] = applicable
        elif v == "real":
            rep = realformat.Replacer(args.seed)
            changed, out_cases, leftovers = OrderedDict(), [], []
            for c in applicable:
                nc, ch = rep.apply(c)
                if ch:
                    changed[c["id"]] = ch
                if c["expected_verdict"] == "block" and realformat.leftover_markers(nc):
                    leftovers.append(c["id"])
                out_cases.append(nc)
            variant_cases[v] = out_cases
            real_info = {"seed": args.seed, "changed_cases": changed,
                         "unchanged_attacks_with_fake_markers": leftovers,
                         "values": {fake[:60]: {"type": kind, "real": real}
                                    for fake, (kind, real) in rep.mapping.items()}}
        else:
            print(f"unknown variant {v}", file=sys.stderr)
            return 2
    vplans = {v: {c["id"]: plan(c) for c in cs} for v, cs in variant_cases.items()}

    config_files = args.config or [HERE / "configs" / "defaults.yaml", HERE / "configs" / "injections-block.yaml"]
    configs = [(p.stem, load_config_file(p)) for p in config_files]

    names = set()
    for v in vplans.values():
        names |= hosts_of(list(v.values()))
    ca_pem, chain_pem, key_pem = make_certs(sorted(names) + ["localhost"])
    up = Upstream(chain_pem, key_pem).start()
    work = Path(tempfile.mkdtemp(prefix="egress-bench-"))
    (work / "upstream-ca.pem").write_text(ca_pem)
    resolve = {}
    for h in sorted(names):
        resolve[f"{h}:80"] = f"{HOST_IP}:{up.http_port}"
        resolve[f"{h}:443"] = f"{HOST_IP}:{up.https_port}"
    base = {
        "upstream_ca": [str(work / "upstream-ca.pem")],
        "resolve": resolve,
        # only the bench upstream's own address: 127.0.0.1, 10/8, 169.254/16 … stay refused (SSRF cases)
        "allow_private": [f"{HOST_IP}/32"],
        "dedup_window_secs": 0,  # one threat record per case, even for the same rule and host
        # the corpus's runner contract: seed the tool's blocklist with the benchmark's test domain
        "policy": {"deny_hosts": ["exfil-collector.example.net"]},
    }

    runs = []
    try:
        for cfg_name, cfg in configs:
            for v in variants:
                name = f"{cfg_name}-{v}"
                al = Airlock(binary, deep_merge(base, cfg), work, name)
                results = []
                try:
                    for c in variant_cases[v]:
                        results.append(run_case(al, up, c, vplans[v][c["id"]]))
                finally:
                    al.stop()
                s = summarize(results)
                o = s["overall"]
                print(f"[{name}] attacks contained {o['contained']}/{o['attacks']} ({pct(o['containment'])}), "
                      f"flagged {o['flagged']}, benign false blocks {o['false_block']}/{o['benign']}, "
                      f"false flags {o['false_flag']}", file=sys.stderr)
                runs.append({"config": cfg_name, "config_detect": cfg, "variant": v, "summary": s,
                             "results": results, "airlock_stderr_tail": al.stderr[-20:]})
    finally:
        up.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "stamp": stamp,
        "command": " ".join(["bench/egress-bench/run"] + (argv if argv is not None else sys.argv[1:])),
        "airlock": {"bin": binary, "version": version, "git": os.environ.get("AIRLOCK_GIT")},
        "corpus": {**corpus_identity(cases_dir, args.corpus_rev), "cases": len(cases),
                   "applicable": len(applicable), "not_applicable": len(not_applicable)},
        "base_config": {k: v for k, v in base.items() if k not in ("resolve", "upstream_ca")},
        "resolved_hosts": sorted(names),
        "not_applicable": not_applicable,
        "plans": {cid: {k: v for k, v in p.items() if k in ("direction", "how", "why")} for cid, p in plans.items()},
        "real_variant": real_info,
        "runs": runs,
        "runtime_s": time.monotonic() - t0,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out_json = args.out / f"egress-{stamp}.json"
    out_json.write_text(json.dumps(report, indent=1, default=str))
    md = render(report)
    (args.out / f"egress-{stamp}.md").write_text(md)
    print(md)
    print(f"wrote {out_json}", file=sys.stderr)
    if args.misses:
        args.misses.parent.mkdir(parents=True, exist_ok=True)
        args.misses.write_text(render_misses(report))
        print(f"wrote {args.misses}", file=sys.stderr)
    if work.exists():
        print(f"kept {work}", file=sys.stderr)
    return 0


def render_misses(report: dict) -> str:
    """The work list: per category, the attack cases airlock does not contain, with what it saw."""
    out = [f"# agent-egress-bench: cases airlock does not contain ({report['airlock']['version']})\n",
           f"Corpus commit `{report['corpus']['commit']}`; generated by `{report['command']}` at {report['stamp']}.",
           "Outcome per run: `-` nothing recorded, `warned`/`redacted` = flagged only, `failed` = forwarded "
           "(upstream unreachable). Columns: config/variant.\n"]
    runs = report["runs"]
    keys = [f"{r['config']}/{r['variant']}" for r in runs]
    by_case: dict[str, dict] = OrderedDict()
    info = {}
    for r, k in zip(runs, keys):
        for x in r["results"]:
            info[x["id"]] = x
            by_case.setdefault(x["id"], {})[k] = x
    cats: dict[str, list] = OrderedDict()
    for cid, per in sorted(by_case.items(), key=lambda kv: (info[kv[0]]["category"], kv[0])):
        x = info[cid]
        if x["expected"] != "block":
            continue
        if all(v["verdict"] == "contained" for v in per.values()):
            continue
        cats.setdefault(x["category"], []).append((cid, per))
    for cat, rows in cats.items():
        out.append(f"## {cat} ({len(rows)})\n")
        out.append("| case | " + " | ".join(keys) + " | how sent |")
        out.append("|---|" + "---|" * len(keys) + "---|")
        for cid, per in rows:
            cells = []
            for k in keys:
                v = per.get(k)
                if v is None:
                    cells.append("")
                elif v["verdict"] == "contained":
                    cells.append("contained")
                else:
                    cells.append((v["outcome"] if v["outcome"] != "allowed" else "-")
                                 + (f" ({','.join(v['patterns'])})" if v["patterns"] else ""))
            out.append(f"| {cid} | " + " | ".join(cells) + f" | {report['plans'][cid].get('how', '')} |")
        out.append("")
    fb = OrderedDict()
    for r, k in zip(runs, keys):
        for x in r["results"]:
            if x["verdict"] in ("false_block", "false_flag"):
                fb.setdefault(x["id"], []).append(f"{k}: {x['outcome']} ({','.join(x['patterns'])})")
    if fb:
        out.append("## benign cases blocked or flagged\n")
        for cid, v in fb.items():
            out.append(f"- {cid}: " + "; ".join(v))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
