#!/usr/bin/env python3
"""Latency that detection adds to a 1 MiB POST through airlock, measured side by side.

Two airlock instances from the same binary, one with the default detection settings and one
with every detector off, plus the upstream directly; the three are interleaved request by
request (keep-alive), so machine noise hits all of them alike. The body is 1 MiB of realistic
JSON chat text without any candidate: what every request pays. Stdlib only.
"""
import argparse
import http.client
import http.server
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Like real servers (nginx): without it, http.server's header-then-body writes meet
        # delayed ACKs on a reused connection and every response waits ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        left = n
        while left:
            left -= len(self.rfile.read(min(left, 1 << 16)))
        body = json.dumps({"received": n}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def chat_body(size):
    words = ("the function returns value when called with list of items please refactor this "
             "module so that it handles errors gracefully add tests for edge cases").split()
    rnd = random.Random(7)
    parts, total = [], 0
    while total < size:
        content = " ".join(rnd.choice(words) for _ in range(200)) + "\\n```python\\nprint(1)\\n```\\n"
        msg = json.dumps({"role": "user", "content": content})
        parts.append(msg)
        total += len(msg) + 1
    body = ('{"model":"claude-sonnet-4-5","messages":[' + ",".join(parts) + "]}").encode()
    return body[:size] if len(body) > size else body


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_airlock(binary, work, name, config):
    data = os.path.join(work, name)
    os.makedirs(data)
    cfg = os.path.join(work, f"{name}.json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    p = subprocess.Popen([binary, "start", "--listen", "127.0.0.1:0", "--data-dir", data, "--config", cfg],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    boot = json.loads(p.stderr.readline())
    threading.Thread(target=lambda: p.stderr.read(), daemon=True).start()
    return p, int(boot["listen"].rsplit(":", 1)[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--airlock", required=True)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--size", type=int, default=1 << 20)
    args = ap.parse_args()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    up = server.server_address[1]
    body = chat_body(args.size)
    work = tempfile.mkdtemp(prefix="airlock-detect-bench.")
    base = {"resolve": {"bench.test": f"127.0.0.1:{up}"}, "allow_private": ["127.0.0.0/8"]}
    off = dict(base, detect={"outbound_secrets": "off", "inbound_secrets": "off",
                             "inbound_injection": "off", "prompt_injection": "off"})
    on_p, on_port = start_airlock(args.airlock, work, "on", base)
    off_p, off_port = start_airlock(args.airlock, work, "off", off)
    try:
        conns = {
            "direct": (http.client.HTTPConnection("127.0.0.1", up), "/sink"),
            "airlock, detection off": (http.client.HTTPConnection("127.0.0.1", off_port), f"http://bench.test:{up}/sink"),
            "airlock, detection on": (http.client.HTTPConnection("127.0.0.1", on_port), f"http://bench.test:{up}/sink"),
        }
        times = {k: [] for k in conns}
        cpu0 = {"on": cpu_seconds(on_p.pid), "off": cpu_seconds(off_p.pid)}
        for i in range(args.requests + 10):
            for name, (conn, target) in conns.items():
                t = time.perf_counter()
                conn.request("POST", target, body=body, headers={"content-type": "application/json"})
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    sys.exit(f"{name}: HTTP {r.status}")
                if i >= 10:  # warm-up excluded
                    times[name].append((time.perf_counter() - t) * 1000)
        cpu = {"on": cpu_seconds(on_p.pid) - cpu0["on"], "off": cpu_seconds(off_p.pid) - cpu0["off"]}
    finally:
        for p in (on_p, off_p):
            p.terminate()
            p.wait(timeout=10)
        server.shutdown()

    n = args.requests + 10
    print(f"1 MiB POST ({len(body)} bytes of JSON chat text, no candidates), {args.requests} requests each, "
          "interleaved, keep-alive, plain HTTP through the proxy")
    print("| path | p50 ms | p90 ms | mean ms | proxy CPU ms per request |")
    print("|---|---|---|---|---|")
    for name, xs in times.items():
        xs.sort()
        c = ""
        if "off" in name:
            c = f"{cpu['off'] / n * 1000:.2f}"
        elif "on" in name:
            c = f"{cpu['on'] / n * 1000:.2f}"
        print(f"| {name} | {statistics.median(xs):.2f} | {xs[int(len(xs) * 0.9)]:.2f} | {statistics.mean(xs):.2f} | {c} |")
    added = statistics.median(times["airlock, detection on"]) - statistics.median(times["airlock, detection off"])
    print(f"\nadded by detection (p50 on − p50 off): {added:.2f} ms; "
          f"proxy CPU per request on/off: {cpu['on'] / cpu['off']:.2f}×")


if __name__ == "__main__":
    main()
