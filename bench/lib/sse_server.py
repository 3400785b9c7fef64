#!/usr/bin/env python3
"""Tiny SSE origin for the benchmark, served behind nginx (proxy_buffering off).

Every request gets a text/event-stream response whose first event is written together
with the headers, immediately; the stream is then held open for --hold seconds, one more
event is sent and the connection closed. Loopback only.
"""
import argparse
import asyncio


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: float) -> None:
    try:
        # Read the request head (and ignore it): nginx sends no body for GET.
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        writer.write(
            b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\n"
            b"Connection: close\r\n"
            b"\r\n"
            b"event: first\ndata: first\n\n"
        )
        await writer.drain()
        await asyncio.sleep(hold)
        writer.write(b"event: last\ndata: last\n\n")
        await writer.drain()
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--hold", type=float, default=1.0)
    args = ap.parse_args()
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args.hold), "127.0.0.1", args.port, backlog=1024
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
