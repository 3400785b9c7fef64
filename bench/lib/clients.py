#!/usr/bin/env python3
"""Benchmark clients that the load generator does not cover.

* sse   -- time to first SSE event over HTTPS, fresh connection per sample, optionally through
           an HTTP proxy with CONNECT; verifies the server (or proxy) certificate with --cafile.
* newconn -- N HTTPS GETs at concurrency C, each on a new connection (TCP [+ CONNECT] + a full
           TLS handshake: no session is ever resumed) -- the worst case for an interceptor.
* hold  -- open N intercepted connections (CONNECT + TLS + one GET each), keep them open until
           a line arrives on stdin, then close them all.

Only ever connects to the proxy or upstream address it is given (loopback in the bench); the
target name is never resolved.
"""
import argparse
import asyncio
import json
import socket
import ssl
import statistics
import sys
import time


def _ssl_ctx(cafile: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _read_head(sock, limit=65536) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the end of the response head")
        buf += chunk
        if len(buf) > limit:
            raise ConnectionError("response head too long")
    return buf


def sse_once(host, port, path, cafile, connect_addr, proxy, timeout) -> dict:
    """Returns seconds from TCP connect start to the first event, and from the request
    being sent to the first event."""
    t0 = time.perf_counter()
    target = proxy if proxy else connect_addr
    raw = socket.create_connection(target, timeout=timeout)
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if proxy:
            raw.sendall(
                f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
            )
            head = _read_head(raw)
            status = head.split(b"\r\n", 1)[0]
            if b" 200" not in status:
                raise ConnectionError(f"CONNECT refused: {status!r}")
        tls = _ssl_ctx(cafile).wrap_socket(raw, server_hostname=host)
        tls.settimeout(timeout)
        t_req = time.perf_counter()
        tls.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            f"Cache-Control: no-cache\r\nUser-Agent: airlock-bench-sse\r\n\r\n".encode()
        )
        buf = b""
        while b"data: first" not in buf:
            chunk = tls.recv(65536)
            if not chunk:
                raise ConnectionError(f"stream ended before the first event: {buf[:300]!r}")
            buf += chunk
        t1 = time.perf_counter()
        status = buf.split(b"\r\n", 1)[0]
        if b" 200" not in status:
            raise ConnectionError(f"bad status {status!r}")
        return {"from_connect_s": t1 - t0, "from_request_s": t1 - t_req}
    finally:
        raw.close()


def sse(args) -> dict:
    proxy = ("127.0.0.1", args.proxy_port) if args.proxy_port else None
    connect_addr = ("127.0.0.1", args.connect_port)
    samples, errors = [], []
    deadline = time.monotonic() + args.max_seconds
    # One warm-up sample (leaf certificate generation, upstream connection set-up).
    for i in range(args.n + 1):
        if time.monotonic() > deadline:
            errors.append("time budget exhausted")
            break
        try:
            s = sse_once(args.host, args.port, args.path, args.cafile, connect_addr, proxy, args.timeout)
            if i > 0:
                samples.append(s)
        except Exception as e:  # noqa: BLE001 - recorded, reported
            errors.append(f"{type(e).__name__}: {e}")
        time.sleep(0.02)
    out = {"n": len(samples), "errors": errors[:5], "error_count": len(errors)}
    if samples:
        for key in ("from_connect_s", "from_request_s"):
            vals = sorted(s[key] for s in samples)
            out[key] = {
                "median": statistics.median(vals),
                "min": vals[0],
                "max": vals[-1],
                "p90": vals[min(len(vals) - 1, int(round(0.9 * (len(vals) - 1))))],
            }
    return out


async def _open_one(i, args, ctx, conns, errors, sem):
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", args.proxy_port), args.timeout
            )
            writer.write(
                f"CONNECT {args.host}:{args.port} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n\r\n".encode()
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), args.timeout)
            if b" 200" not in head.split(b"\r\n", 1)[0]:
                raise ConnectionError(f"CONNECT refused: {head[:80]!r}")
            await asyncio.wait_for(
                writer.start_tls(ctx, server_hostname=args.host), args.timeout
            )
            writer.write(
                f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
                f"User-Agent: airlock-bench-hold\r\n\r\n".encode()
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), args.timeout)
            if b" 200" not in head.split(b"\r\n", 1)[0]:
                raise ConnectionError(f"bad status {head[:80]!r}")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await asyncio.wait_for(reader.readexactly(length), args.timeout)
            else:
                raise ConnectionError("expected a Content-Length response")
            conns.append(writer)
        except Exception as e:  # noqa: BLE001
            errors.append(f"{type(e).__name__}: {e}")


async def _newconn_one(args, ctx, lat, errors):
    t0 = time.perf_counter()
    writer = None
    try:
        port = args.proxy_port or args.connect_port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if args.proxy_port:
            writer.write(
                f"CONNECT {args.host}:{args.port} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if b" 200" not in head.split(b"\r\n", 1)[0]:
                raise ConnectionError(f"CONNECT refused: {head[:80]!r}")
        # A fresh handshake every time: asyncio never passes a saved session.
        await writer.start_tls(ctx, server_hostname=args.host)
        writer.write(
            f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
            f"Connection: close\r\nUser-Agent: airlock-bench-newconn\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200" not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"bad status {head[:80]!r}")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        lat.append(time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001
        errors.append(f"{type(e).__name__}: {e}")
    finally:
        if writer is not None:
            writer.close()


async def newconn(args) -> dict:
    ctx = _ssl_ctx(args.cafile)
    lat, errors = [], []
    todo = iter(range(args.n))

    async def worker():
        for _ in todo:
            await asyncio.wait_for(_newconn_one(args, ctx, lat, errors), args.timeout)

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(args.parallel))), args.max_seconds)
    wall = time.perf_counter() - t0
    lat.sort()

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else None

    return {"requests": args.n, "status_200": len(lat), "errors": errors[:5], "error_count": len(errors),
            "wall_s": wall, "rps": len(lat) / wall if wall else None,
            "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


async def hold(args) -> None:
    ctx = _ssl_ctx(args.cafile)
    conns, errors = [], []
    sem = asyncio.Semaphore(args.parallel)
    t0 = time.monotonic()
    await asyncio.wait_for(
        asyncio.gather(*(_open_one(i, args, ctx, conns, errors, sem) for i in range(args.n))),
        args.max_seconds,
    )
    print(json.dumps({"event": "ready", "open": len(conns), "errors": len(errors),
                      "first_errors": errors[:3], "seconds": time.monotonic() - t0}), flush=True)
    # Wait for the driver to say "close" (bounded).
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), args.max_seconds)
    except asyncio.TimeoutError:
        pass
    for w in conns:
        w.close()
    for w in conns:
        try:
            await asyncio.wait_for(w.wait_closed(), 2)
        except Exception:  # noqa: BLE001
            pass
    print(json.dumps({"event": "closed", "closed": len(conns)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("sse", "hold", "newconn"):
        p = sub.add_parser(name)
        p.add_argument("--host", required=True)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--path", required=True)
        p.add_argument("--cafile", required=True)
        p.add_argument("--proxy-port", type=int, default=0)
        p.add_argument("--connect-port", type=int, default=0, help="direct: upstream port on 127.0.0.1")
        p.add_argument("--n", type=int, default=20)
        p.add_argument("--timeout", type=float, default=10.0)
        p.add_argument("--max-seconds", type=float, default=120.0)
        p.add_argument("--parallel", type=int, default=64)
    args = ap.parse_args()
    if args.cmd == "sse":
        print(json.dumps(sse(args)))
    elif args.cmd == "newconn":
        print(json.dumps(asyncio.run(newconn(args))))
    else:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.n + 256)), hard))
        asyncio.run(hold(args))


if __name__ == "__main__":
    main()
