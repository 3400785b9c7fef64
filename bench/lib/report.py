#!/usr/bin/env python3
"""Markdown report from a bench results JSON file (written by driver.py).

usage: report.py RESULTS.json   -> Markdown on stdout
"""
import json
import sys

PROXIES = ["direct", "airlock@base", "airlock", "airlock+policy", "squid", "mitmdump"]
OTHERS = ["squid", "mitmdump"]
MB = 1_000_000  # figures are decimal megabytes (VmRSS kB * 1024 / 10^6)

# Targets for airlock (logging on), from the issue.
CPU_TARGETS = {"https_1k_ka": 0.15, "https_1k_newconn": 4.0, "https_1k_newconn_full": 4.0, "https_post_1m": 4.0}
SSE_MAX_DELTA_MS = 5.0
IDLE_MAX_MB = 30.0
HOLD_MAX_MB = 150.0


def mb(kb):
    return None if kb is None else kb * 1024 / MB


def f(v, digits=2, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}{unit}"
    return f"{v:.{digits}f}{unit}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def scen(res, proxy, key):
    return res["proxies"].get(proxy, {}).get("scenarios", {}).get(key)


def merge_rounds(res: dict) -> tuple[dict, list[str]]:
    """With --rounds N the proxies are keyed `name #i`: each scenario's figures become the
    median over the rounds (every round's CPU figure is listed in a table of its own)."""
    import statistics

    keys = list(res["proxies"])
    if not any(" #" in k for k in keys):
        return res, []
    groups: dict[str, list[dict]] = {}
    for k in keys:
        groups.setdefault(k.split(" #")[0], []).append(res["proxies"][k])
    merged = dict(res, proxies={})
    lines = ["### Rounds (proxy CPU-s per 1,000 requests, in the order they ran; the tables above use the median)", "",
             "| Scenario | Proxy | rounds | median |", "|---|---|---|---:|"]
    for name, runs in groups.items():
        first = dict(runs[0])
        first["scenarios"] = {}
        for sc in res["scenarios"]:
            rs = [r.get("scenarios", {}).get(sc["key"]) for r in runs]
            rs = [r for r in rs if r]
            if not rs:
                continue
            ok = [r for r in rs if r.get("ok")]
            cpu = [r["proxy_cpu_s_per_1k"] for r in ok if r.get("proxy_cpu_s_per_1k") is not None]
            m = dict(rs[0])
            m["ok"] = len(ok) == len(rs)
            if cpu:
                m["proxy_cpu_s_per_1k"] = statistics.median(cpu)
            for field in ("rps", "p50_ms", "p99_ms"):
                vals = [r[field] for r in ok if r.get(field) is not None]
                if vals:
                    m[field] = statistics.median(vals)
            first["scenarios"][sc["key"]] = m
            lines.append(f"| {sc['title']} | {name} | {', '.join(f(c, 3) for c in cpu)} | {f(m.get('proxy_cpu_s_per_1k'), 3)} |")
        merged["proxies"][name] = first
    return merged, lines + [""]


def render(res: dict) -> str:
    out = []
    w = out.append
    res, rounds = merge_rounds(res)
    m = res["machine"]
    present = [p for p in PROXIES if p in res["proxies"]]
    mode = "quick smoke run" if res.get("quick") else "full run"
    w(f"Run {res['started']} ({mode}); machine: {m['nproc']} CPUs ({m.get('cpu_model', '')}), "
      f"{m['mem_total_kb'] // 1024 // 1024} GiB, kernel {m['kernel']}, "
      f"load average at start {m['loadavg_at_start'][0]:.2f}.")
    w("")
    vers = []
    if "airlock" in present:
        vers.append(res["proxies"]["airlock"].get("version", "airlock ?")
                    + (f" (git {res['airlock_git']})" if res.get("airlock_git") else ""))
    if "airlock@base" in present:
        vers.append("baseline " + res["proxies"]["airlock@base"].get("version", "airlock ?")
                    + (f" (git {res['baseline_git']})" if res.get("baseline_git") else ""))
    if "squid" in present:
        vers.append(res["proxies"]["squid"].get("version", "squid ?") + " (ssl-bump)")
    if "mitmdump" in present:
        vers.append(res["proxies"]["mitmdump"].get("version", "mitmdump ?"))
    vers += [f"load generator {res['tools']['oha']}", res["tools"]["nginx"]]
    w("Versions: " + "; ".join(vers) + ".")
    cfg = (res["proxies"].get("airlock", {}).get("extra") or {}).get("config") or {}
    extra_cfg = {k: v for k, v in cfg.items() if k not in ("upstream_ca", "resolve")}
    if extra_cfg:
        w("")
        w(f"airlock settings beyond the bench's `upstream_ca` and `resolve`: `{json.dumps(extra_cfg)}`.")
    w("")
    w(f"All scenarios: {res['concurrency']} concurrent connections, fixed request counts; "
      "CPU = proxy utime+stime from /proc summed over its process tree.")
    w("")

    # ---- main table
    w("### Throughput, latency, proxy CPU")
    w("")
    w("| Scenario | Proxy | Requests | req/s | p50 ms | p99 ms | proxy CPU-s / 1k req | RSS peak MB | Result |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for sc in res["scenarios"]:
        for p in present:
            r = scen(res, p, sc["key"])
            if r is None:
                continue
            status = "ok" if r.get("ok") else _failure(r)
            w(f"| {sc['title']} | {p} | {r.get('requests', sc['requests']):,} | {f(r.get('rps'), 0)} | "
              f"{f(r.get('p50_ms'))} | {f(r.get('p99_ms'))} | "
              f"{f(r.get('proxy_cpu_s_per_1k'), 3)} | {f(mb(r.get('rss_peak_kb')), 1)} | {status} |")
    w("")

    if rounds:
        out.extend(rounds)

    # ---- ratios
    if "airlock" in present:
        w("### airlock vs the others (ratio = airlock ÷ other; below 1 is better for airlock)")
        w("")
        others = [o for o in ["airlock@base"] + OTHERS if o in present]
        head = "| Scenario | airlock CPU-s/1k | " + " | ".join(f"{o} CPU-s/1k | CPU airlock/{o} | req/s airlock/{o}" for o in others) + " |"
        w(head)
        w("|---|---:|" + "---:|---:|---:|" * len(others))
        for sc in res["scenarios"]:
            if scen(res, "airlock", sc["key"]) is None:
                continue
            a = scen(res, "airlock", sc["key"]) or {}
            a_ok = a.get("ok")
            row = f"| {sc['title']} | {f(a.get('proxy_cpu_s_per_1k'), 3) if a_ok else 'failed'} |"
            for o in others:
                r = scen(res, o, sc["key"]) or {}
                o_ok = r.get("ok")
                row += (f" {f(r.get('proxy_cpu_s_per_1k'), 3) if o_ok else 'failed'} |"
                        f" {ratio(a.get('proxy_cpu_s_per_1k'), r.get('proxy_cpu_s_per_1k')) if a_ok and o_ok else '–'} |"
                        f" {ratio(a.get('rps'), r.get('rps')) if a_ok and o_ok else '–'} |")
            w(row)
        w("")

    # ---- SSE
    w("### SSE time to first event (HTTPS, fresh connection each sample)")
    w("")
    w("| Proxy | samples | median from connect ms | p90 ms | median from request sent ms | Δ median vs direct ms | errors |")
    w("|---|---:|---:|---:|---:|---:|---|")
    direct = _sse_med(res, "direct")
    for p in present:
        s = res["proxies"][p].get("sse")
        if not s:
            continue
        med = _sse_med(res, p)
        p90 = (s.get("from_connect_s") or {}).get("p90")
        req = (s.get("from_request_s") or {}).get("median")
        delta = None if med is None or direct is None else med - direct
        errs = f"{s.get('error_count', 0)}" + (f": {s['errors'][0][:80]}" if s.get("errors") else "")
        if s.get("error"):
            errs = s["error"][:100]
        w(f"| {p} | {s.get('n', 0)} | {f(_ms(med))} | {f(_ms(p90))} | {f(_ms(req))} | "
          f"{f(_ms(delta)) if p != 'direct' else ''} | {errs} |")
    w("")

    # ---- memory
    w("### Proxy memory (RSS, MB, summed over the proxy's processes)")
    w("")
    w("Scenario run: idle = 1.5 s after start; peak = sampled every 0.1 s during the scenarios; "
      "after = 5 s after the last scenario. Open-connection run, on a fresh instance: idle, "
      "then N intercepted connections held open (CONNECT + TLS + one request each), then 10 s after "
      "they all closed.")
    w("")
    w("| Proxy | idle | peak | after scenarios | fresh idle | held conns | with conns open | 10 s after closing | processes |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in present:
        r = res["proxies"][p]
        if p == "direct":
            continue
        h = r.get("hold") or {}
        opened = (h.get("ready") or {}).get("open")
        held = f"{opened}/{h.get('connections')}" if h else "–"
        w(f"| {p} | {f(mb(r.get('rss_idle_kb')), 1)} | {f(mb(r.get('rss_peak_kb')), 1)} | "
          f"{f(mb(r.get('rss_after_kb')), 1)} | {f(mb(h.get('rss_before_kb')), 1)} | {held} | "
          f"{f(mb(h.get('rss_open_kb')), 1)} | {f(mb(h.get('rss_after_close_kb')), 1)} | "
          f"{r.get('nprocs_idle', '–')} |")
    w("")

    # ---- problems
    problems = []
    for p in present:
        r = res["proxies"][p]
        if r.get("start_error"):
            problems.append(f"- {p}: failed to start: {r['start_error']}")
        for sc in res["scenarios"]:
            s = scen(res, p, sc["key"])
            if s and not s.get("ok"):
                problems.append(f"- {p} / {sc['key']}: {_failure(s, long=True)}")
        if r.get("sse") and not r["sse"].get("ok"):
            problems.append(f"- {p} / sse: {r['sse'].get('error') or r['sse'].get('errors')}")
        h = r.get("hold")
        if h and not h.get("ok"):
            problems.append(f"- {p} / hold: opened {(h.get('ready') or {}).get('open')} of {h.get('connections')}; "
                            f"{(h.get('ready') or {}).get('first_errors')} {h.get('error', '')}")
        if p != "direct" and r.get("alive_at_end") is False:
            problems.append(f"- {p}: process died during the run (exit {r.get('exit_code')})")
    if problems:
        w("### Problems seen")
        w("")
        out.extend(problems)
        w("")

    # ---- targets
    if "airlock" in present:
        w("### airlock targets")
        w("")
        w("| Target | Figure | Verdict |")
        w("|---|---|---|")
        for key, limit in CPU_TARGETS.items():
            s = scen(res, "airlock", key) or {}
            title = next(sc["title"] for sc in res["scenarios"] if sc["key"] == key)
            v = s.get("proxy_cpu_s_per_1k") if s.get("ok") else None
            w(f"| {title}: ≤ {limit} CPU-s / 1k req | {f(v, 3) if v is not None else 'failed'} | {_verdict(v, limit)} |")
        med = _sse_med(res, "airlock")
        delta = None if med is None or direct is None else _ms(med - direct)
        w(f"| SSE first event within {SSE_MAX_DELTA_MS:g} ms of direct | "
          f"{f(_ms(med))} ms vs direct {f(_ms(direct))} ms (Δ {f(delta)} ms) | {_verdict(delta, SSE_MAX_DELTA_MS)} |")
        a = res["proxies"]["airlock"]
        idle = mb(a.get("rss_idle_kb"))
        w(f"| Idle RSS ≤ {IDLE_MAX_MB:g} MB | {f(idle, 1)} MB | {_verdict(idle, IDLE_MAX_MB)} |")
        h = a.get("hold") or {}
        n = h.get("connections")
        opened = (h.get("ready") or {}).get("open")
        open_mb = mb(h.get("rss_open_kb"))
        label = f"RSS ≤ {HOLD_MAX_MB:g} MB with 1,000 open intercepted connections"
        if n and n != 1000:
            w(f"| {label} | {f(open_mb, 1)} MB with {opened}/{n} (quick run) | not measured at 1,000 |")
        else:
            ok = opened == n and n
            w(f"| {label} | {f(open_mb, 1)} MB with {opened}/{n} open | "
              f"{_verdict(open_mb, HOLD_MAX_MB) if ok else 'not met (connections failed)'} |")
        after = mb(h.get("rss_after_close_kb"))
        fresh = mb(h.get("rss_before_kb"))
        if fresh is not None and after is not None and open_mb is not None:
            # "Near idle": at most 10 MB, or a quarter of what the open connections added, above idle.
            near = fresh + max(10.0, 0.25 * (open_mb - fresh))
            w(f"| RSS back near idle 10 s after they close (≤ idle + max(10 MB, ¼ of the growth) = {near:.1f} MB) | "
              f"{after:.1f} MB (idle {fresh:.1f}, open {open_mb:.1f}) | {_verdict(after, near)} |")
        w("")
    return "\n".join(out)


def _ms(s):
    return None if s is None else s * 1000


def _sse_med(res, p):
    s = res["proxies"].get(p, {}).get("sse") or {}
    return (s.get("from_connect_s") or {}).get("median")


def _verdict(v, limit):
    if v is None:
        return "not measured"
    return "**met**" if v <= limit else "**not met**"


def _failure(r, long=False):
    if r.get("error"):
        return ("FAILED: " + r["error"])[: 400 if long else 60].replace("\n", " ").replace("|", "\\|")
    codes = r.get("status_codes")
    errs = r.get("errors")
    txt = f"FAILED: {r.get('status_200', 0)}/{r.get('requests')} × 200; codes {codes}; errors {errs}"
    return txt[: 400 if long else 80].replace("|", "\\|")


def main():
    with open(sys.argv[1]) as fh:
        res = json.load(fh)
    print(render(res))


if __name__ == "__main__":
    main()
