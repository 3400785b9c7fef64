"""What OTLP export costs the request path (issue 14): the same load through airlock with
`export.otlp` off and on (to a local collector in its own process), alternating in one run.
Load: two curl processes, each N sequential keep-alive requests (URL globbing) through the
forward proxy to a local aiohttp upstream over plain HTTP. Prints req/s per round and medians,
and how many records the collector received in each export-on round."""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("AIRLOCK_BIN") or str(ROOT / "target" / "debug" / "airlock")
N = int(os.environ.get("N", "2000"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))


def upstream() -> int:
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/hello", lambda r: web.Response(text="hello"))
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return port


def main():
    up = upstream()
    collector = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("otlp_count_collector.py"))],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    cport = int(collector.stdout.readline())

    def exported() -> int:
        return int(urllib.request.urlopen(f"http://127.0.0.1:{cport}/", timeout=5).read())

    def run(export: bool):
        data = tempfile.mkdtemp(prefix="airlock-export-bench-")
        cfg = {"allow_private": ["127.0.0.0/8"], "admin": None}
        if export:
            cfg["export"] = {"otlp": {"endpoint": f"http://127.0.0.1:{cport}", "interval_secs": 1}}
        path = os.path.join(data, "config.json")
        Path(path).write_text(json.dumps(cfg))
        p = subprocess.Popen([BIN, "start", "--data-dir", data, "--config", path, "--listen", "127.0.0.1:0"],
                             stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        boot = json.loads(p.stderr.readline())
        threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
        proxy = "http://" + boot["listen"]
        subprocess.run(["curl", "-s", "-o", "/dev/null", "--proxy", proxy,
                        f"http://127.0.0.1:{up}/hello?warm=[1-200]"], check=True)
        before = exported()
        started = time.monotonic()
        clients = [subprocess.Popen(["curl", "-s", "-o", "/dev/null", "--proxy", proxy,
                                     f"http://127.0.0.1:{up}/hello?i=[1-{N}]"]) for _ in range(2)]
        for c in clients:
            c.wait()
        elapsed = time.monotonic() - started
        time.sleep(2.5)
        got = exported() - before
        p.terminate()
        p.wait(10)
        return 2 * N / elapsed, got

    results = {"off": [], "on": []}
    try:
        for r in range(ROUNDS):
            for mode in ("off", "on"):
                rps, got = run(mode == "on")
                results[mode].append(rps)
                extra = f" ({got} records reached the collector)" if mode == "on" else ""
                print(f"round {r + 1} export {mode}: {rps:.0f} req/s{extra}", flush=True)
    finally:
        collector.terminate()
    for mode in ("off", "on"):
        v = sorted(results[mode])
        print(f"export {mode}: median {v[len(v) // 2]:.0f} req/s (min {v[0]:.0f}, max {v[-1]:.0f}) over {ROUNDS} rounds")


if __name__ == "__main__":
    main()
