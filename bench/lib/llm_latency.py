#!/usr/bin/env python3
"""What the LLM gateway adds to a streamed answer, measured side by side in one run.

A fake Anthropic upstream streams Messages-API SSE: `message_start`, then N text deltas, then
`message_delta` / `message_stop`, each event stamped with the upstream's send time
(time.monotonic_ns, one clock: same machine). The client asks it directly and through an
airlock `kind: llm` gateway, interleaved call by call, and measures:
  - time to first token: request sent -> first text delta received;
  - per-event latency: receive time - the upstream's stamp, for every delta.
The gateway runs the whole pipeline: detection on both bodies, usage and cost accounting,
the assistant text scanned across deltas. Stdlib only.
"""
import argparse
import http.client
import json
import multiprocessing
import os
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time


class Upstream(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def handler_factory(events, gap):
    class Handler(socketserver.StreamRequestHandler):
        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def handle(self):
            while True:
                line = self.rfile.readline()
                if not line:
                    return
                length = 0
                while True:
                    h = self.rfile.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode().partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v)
                self.rfile.read(length)
                self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                 b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
                self.wfile.flush()

                def send(event, data):
                    data["t"] = time.monotonic_ns()
                    payload = f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
                    self.wfile.flush()

                send("message_start", {"type": "message_start", "message": {
                    "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
                    "content": [], "stop_reason": None,
                    "usage": {"input_tokens": 100, "output_tokens": 1, "cache_read_input_tokens": 0,
                              "cache_creation_input_tokens": 0}}})
                send("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}})
                for i in range(events):
                    if gap:
                        time.sleep(gap)
                    send("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                 "delta": {"type": "text_delta", "text": f" word{i}"}})
                send("content_block_stop", {"type": "content_block_stop", "index": 0})
                send("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                       "usage": {"output_tokens": events}})
                send("message_stop", {"type": "message_stop"})
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

    return Handler


def serve(events, gap, ready):
    up = Upstream(("127.0.0.1", 0), handler_factory(events, gap))
    ready.put(up.server_address[1])
    up.serve_forever()


def call(port, body):
    """One streamed call: (ttft seconds, [per-delta latency seconds])."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.monotonic_ns()
    conn.request("POST", "/v1/messages", body=body, headers={
        "content-type": "application/json", "x-api-key": "benchkeynotasecret", "anthropic-version": "2023-06-01"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    ttft, lat, buf, first_ns, last_ns = None, [], b"", None, None
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            break
        now = time.monotonic_ns()
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            data = event.split(b"data: ", 1)[1]
            d = json.loads(data)
            if d.get("type") == "content_block_delta":
                if ttft is None:
                    ttft = (now - t0) / 1e9
                    first_ns = now
                last_ns = now
                lat.append((now - d["t"]) / 1e9)
    conn.close()
    return ttft, lat, (last_ns - first_ns) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--airlock", required=True)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--gap-ms", type=float, default=5.0,
                    help="pause between deltas at the upstream (0: a burst; a model emits every ~10-30 ms)")
    args = ap.parse_args()

    # The upstream runs in its own process: in this one, its sending thread and the client's
    # reading thread would take turns on the GIL, and that wait would count as latency.
    ready = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(args.events, args.gap_ms / 1000, ready), daemon=True)
    server.start()
    up_port = ready.get(timeout=10)

    work = tempfile.mkdtemp(prefix="airlock-llm-bench-")
    config = {"allow_private": ["127.0.0.0/8"], "gateways": [{"name": "llm", "listen": "127.0.0.1:0", "kind": "llm",
                            "upstreams": {"anthropic": f"http://127.0.0.1:{up_port}"}}]}
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump(config, f)
    p = subprocess.Popen([args.airlock, "start", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(work, "data"),
                          "--config", os.path.join(work, "config.json")],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    boot = json.loads(p.stderr.readline())
    threading.Thread(target=lambda: p.stderr.read(), daemon=True).start()
    gw_port = int(boot["gateways"][0]["listen"].rsplit(":", 1)[1])

    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": True,
                       "messages": [{"role": "user", "content": "Write a long answer, please."}]}).encode()
    try:
        for port in (up_port, gw_port):  # warm-up
            call(port, body)
        res = {"direct": ([], [], []), "gateway": ([], [], [])}
        for _ in range(args.calls):
            for name, port in (("direct", up_port), ("gateway", gw_port)):
                ttft, lat, span = call(port, body)
                res[name][0].append(ttft)
                res[name][1].extend(lat)
                res[name][2].append(span)
    finally:
        p.terminate()
        p.wait(10)
        server.terminate()

    ms = lambda xs, q=None: 1000 * (statistics.median(xs) if q is None else statistics.quantiles(xs, n=100)[q - 1])
    pacing = f"{args.gap_ms} ms apart" if args.gap_ms else "sent back to back"
    print(f"Streamed Anthropic Messages call, {args.events} text deltas each ({pacing}), {args.calls} calls "
          f"per path, interleaved; gateway = airlock `kind: llm` with default detection")
    print("| path | TTFT p50 ms | TTFT p90 ms | per-event latency p50 ms | per-event latency p90 ms |")
    print("|---|---|---|---|---|")
    for name in ("direct", "gateway"):
        t, l, _ = res[name]
        print(f"| {name} | {ms(t):.3f} | {ms(t, 90):.3f} | {ms(l):.3f} | {ms(l, 90):.3f} |")
    d_t = ms(res["gateway"][0]) - ms(res["direct"][0])
    d_l = ms(res["gateway"][1]) - ms(res["direct"][1])
    per_event = (statistics.median(res["gateway"][2]) - statistics.median(res["direct"][2])) / max(args.events - 1, 1)
    print()
    print(f"added by the gateway (p50 gateway - p50 direct): TTFT {d_t:.3f} ms (target < 1 ms), "
          f"per-event latency {d_l:.3f} ms (target < 0.2 ms)")
    print(f"stream time first->last delta, median, gateway - direct, per event: {per_event * 1000:.3f} ms "
          f"(what each event costs the gateway when they arrive faster than it reads them)")
    records = os.path.join(work, "data", "logs", "llm.jsonl")
    n = sum(1 for _ in open(records)) if os.path.exists(records) else 0
    print(f"LLM records written by the gateway: {n} (expected {args.calls + 1})")


if __name__ == "__main__":
    sys.exit(main())
