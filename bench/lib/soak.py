#!/usr/bin/env python3
"""The soak (issue 13), run by hand through `bench/run --soak SECONDS`: mixed load at 500
connections through intercepted HTTPS for SECONDS (default 600), then the figures that matter
on a long day (every record is kept: `log_keep.files` and `store.max_mb` are raised so that
nothing is pruned during the run):

- requests answered vs flow records written (they must be equal: every request is recorded);
- the proxy's file descriptors and RSS at the start, every 10 s, and 10 s after the load (flat);
- errors by kind, as the clients saw them.

The mix: 440 keep-alive connections GETting 1 KiB, 40 opening a new connection per GET, 20
POSTing 64 KiB bodies. All on loopback, against the bench's nginx upstream."""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from driver import HOST, UPSTREAM_PORTS, Airlock, Upstream, log  # noqa: E402


def sample(pid: int) -> dict:
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.split()
    mib = lambda key: int(status.get(key, ["0"])[0]) // 1024  # noqa: E731
    return {"t": round(time.monotonic(), 1), "rss_mib": mib("VmRSS"), "anon_mib": mib("RssAnon"),
            "threads": int(status.get("Threads", ["0"])[0]), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def oha(binary: str, proxy: Airlock, url: str, seconds: int, conns: int, extra: list[str]) -> subprocess.Popen:
    cmd = [binary, "-z", f"{seconds}s", "-c", str(conns), "--no-tui", "--output-format", "json",
           "-t", "30s", "--connect-timeout", "10s", "-x", f"http://127.0.0.1:{proxy.port}",
           "--no-pre-lookup", "--cacert", str(proxy.cafile), *extra, url]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def flow_records(data: Path) -> dict:
    """Flow records in the store and in the JSONL files (rotated and compressed ones too)."""
    out = {"store": None, "jsonl": 0}
    db = data / "airlock.db"
    if db.exists():
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        out["store"] = con.execute("SELECT COUNT(*) FROM flows").fetchone()[0]
        con.close()
    import gzip

    for p in (data / "logs").glob("flows*"):
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rb") as f:
            out["jsonl"] += sum(1 for line in f if line.strip())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--certs", required=True)
    ap.add_argument("--oha", required=True)
    ap.add_argument("--airlock", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    work = Path(args.work)
    up = Upstream(work, Path(args.certs), args.python)
    UPSTREAM_PORTS.extend([up.http_port, up.https_port])
    # Every record kept, so that records can be counted against requests: no rotated file
    # deleted (log_keep's default keeps 10 per kind), no store trimming (max_mb).
    proxy = Airlock(Path(args.airlock), work, Path(args.certs),
                    {"log_keep": {"files": 100000}, "store": {"max_mb": 16384}})
    body = work / "body-64k"
    body.write_bytes(os.urandom(64 * 1024))
    result: dict = {"seconds": args.seconds, "samples": []}
    try:
        up.start()
        proxy.start()
        pid = proxy.proc.pid
        base = f"https://{HOST}:{up.https_port}"
        # Idle: once the detection engines are built (the boot line comes before them).
        time.sleep(5)
        result["start"] = sample(pid)
        log(f"soak: {args.seconds} s at 500 connections; proxy pid {pid}, {result['start']}")
        runs = {
            "get_1k_keepalive": oha(args.oha, proxy, base + "/1k", args.seconds, 440, []),
            "get_1k_newconn": oha(args.oha, proxy, base + "/1k", args.seconds, 40, ["--disable-keepalive"]),
            "post_64k": oha(args.oha, proxy, base + "/upload", args.seconds, 20,
                            ["-m", "POST", "-T", "application/octet-stream", "-D", str(body)]),
        }
        stop = threading.Event()

        def sampler():
            while not stop.wait(10):
                if proxy.alive():
                    result["samples"].append(sample(pid))

        t = threading.Thread(target=sampler, daemon=True)
        t.start()
        answered, errors = 0, {}
        result["clients"] = {}
        for name, p in runs.items():
            out, err = p.communicate(timeout=args.seconds + 120)
            data = json.loads(out)
            codes = {str(k): v for k, v in data.get("statusCodeDistribution", {}).items()}
            errs = data.get("errorDistribution", {})
            answered += sum(codes.values())
            for k, v in errs.items():
                errors[k] = errors.get(k, 0) + v
            result["clients"][name] = {"status_codes": codes, "errors": errs,
                                       "rps": round(data["summary"].get("requestsPerSec", 0), 1)}
        stop.set()
        time.sleep(10)
        result["after_10s"] = sample(pid)
        # SOAK_HOLD=SECONDS keeps the proxy up after the figures, to look inside it
        # (gdb -p PID -batch -ex 'call (void)malloc_stats()', /proc/PID/smaps).
        hold = int(os.environ.get("SOAK_HOLD", "0"))
        if hold:
            log(f"holding the proxy (pid {pid}) for {hold} s (SOAK_HOLD)")
            time.sleep(hold)
        if os.environ.get("AIRLOCK_SOAK_MALLOC_STATS"):
            # glibc's own account of the heap, into the proxy's stderr log: in use vs held.
            subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (void) malloc_stats()"],
                           capture_output=True, timeout=60)
            time.sleep(0.5)
            result["malloc_stats"] = proxy.stderr_path.read_text(errors="replace")[-4000:]
        result["answered"] = answered
        result["client_errors"] = errors
        proxy.stop()
        result["records"] = flow_records(proxy.work / "data")
        result["alive_to_the_end"] = True
    finally:
        if proxy.alive():
            proxy.stop()
        up.stop()
    Path(args.out).write_text(json.dumps(result, indent=2))
    rss = [s["rss_mib"] for s in result["samples"]]
    fds = [s["fds"] for s in result["samples"]]
    print(f"soak {args.seconds} s, 500 connections (440 keep-alive GET 1 KiB, 40 new-connection GET, 20 POST 64 KiB)")
    recs = result["records"]
    store = "off" if recs["store"] is None else f"{recs['store']:,}"
    aborted = result["client_errors"].get("aborted due to deadline", 0)
    print(f"  answered: {result['answered']:,} (and {aborted} in flight when the clients stopped); "
          f"flow records: store {store}, JSONL {recs['jsonl']:,}")
    print(f"  client errors by kind: {result['client_errors'] or 'none'}")
    for name, c in result["clients"].items():
        print(f"  {name}: {c['rps']} req/s, status {c['status_codes']}")
    print(f"  RSS MiB: start {result['start']['rss_mib']}, during min {min(rss, default=0)} max {max(rss, default=0)}, "
          f"last {rss[-1] if rss else '-'}, 10 s after {result['after_10s']['rss_mib']}")
    print(f"  fds: start {result['start']['fds']}, during max {max(fds, default=0)}, 10 s after {result['after_10s']['fds']}")
    if "malloc_stats" in result:
        print(result["malloc_stats"][result["malloc_stats"].find("Arena 0"):])
    print(f"  anonymous memory MiB: start {result['start']['anon_mib']}, 10 s after {result['after_10s']['anon_mib']}; "
          f"threads: start {result['start']['threads']}, during max {max((s['threads'] for s in result['samples']), default=0)}, "
          f"10 s after {result['after_10s']['threads']}")


main()
