"""Local upstream servers for the airlock end-to-end tests.

Everything listens on 127.0.0.1 with an ephemeral port, inside one asyncio
event loop running in a daemon thread:

/echo?headers=sha256 reports header values as their sha256 (for the masking tests).

* ``http``   - the aiohttp app over plain HTTP/1.1
* ``https``  - the same app over TLS, certificate signed by the *upstream CA*
* ``rogue``  - the same app over TLS, certificate signed by the *rogue CA*
* ``h2``     - a small ASGI app served by hypercorn over TLS (upstream CA),
               offering h2 and http/1.1 via ALPN; its /echo reports the
               HTTP version the request arrived with.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import socket
import ssl
import threading

from aiohttp import WSMsgType, web

SSE_HOLD_SECONDS = 1.5


def bound_socket(nodelay: bool = False) -> socket.socket:
    """A listening, non-blocking socket on an ephemeral loopback port (with nodelay: TCP_NODELAY,
    which accepted sockets inherit on Linux)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _peer_port(request: web.Request) -> int | None:
    transport = request.transport
    if transport is None:
        return None
    peer = transport.get_extra_info("peername")
    return peer[1] if peer else None


def _echo_payload(method, path, query, headers, body: bytes, peer_port, http_version, hash_headers=False):
    merged: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    if hash_headers:
        # header values as sha256 hex: lets a test check what arrived without echoing secrets
        merged = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in merged.items()}
    return {
        "method": method,
        "path": path,
        "query": query,
        "headers": merged,
        "body": body.decode("utf-8", errors="replace"),
        "body_len": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "peer_port": peer_port,
        "http_version": http_version,
    }


# --------------------------------------------------------------------------- aiohttp app


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    version = f"{request.version.major}.{request.version.minor}"
    payload = _echo_payload(
        request.method,
        request.path,
        request.query_string,
        request.headers.items(),
        body,
        _peer_port(request),
        version,
        hash_headers=request.query.get("headers") == "sha256",
    )
    return web.json_response(payload)


async def nbytes(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    data = os.urandom(n)
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"X-Body-Sha256": hashlib.sha256(data).hexdigest()},
    )


async def sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(
        status=200,
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
    )
    await resp.prepare(request)
    await resp.write(b"data: first\n\n")
    await asyncio.sleep(SSE_HOLD_SECONDS)
    for i in range(2, 5):
        await resp.write(f"data: event{i}\n\n".encode())
    await resp.write_eof()
    return resp


async def slow_body(request: web.Request) -> web.StreamResponse:
    """Sends 'part1', waits ?delay= seconds (default 1), then 'part2'."""
    delay = float(request.query.get("delay", "1"))
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    await resp.write(b"part1\n")
    await asyncio.sleep(delay)
    await resp.write(b"part2\n")
    await resp.write_eof()
    return resp


async def truncated(request: web.Request) -> web.StreamResponse:
    """Announces 100000 bytes, sends 50000, then drops the connection."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/octet-stream"})
    resp.content_length = 100000
    await resp.prepare(request)
    await resp.write(b"t" * 50000)
    await asyncio.sleep(0.1)
    request.transport.close()
    return resp


async def set_cookie(request: web.Request) -> web.Response:
    value = request.query.get("value") or secrets.token_hex(16)
    return web.Response(text="cookie set", headers={"Set-Cookie": f"sid={value}; Path=/"})


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status")


async def ws_echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
        else:
            break
    return ws


def make_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/hello", hello)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/bytes/{n:\\d+}", nbytes)
    app.router.add_get("/sse", sse)
    app.router.add_get("/slow-body", slow_body)
    app.router.add_get("/set-cookie", set_cookie)
    app.router.add_get("/truncated", truncated)
    app.router.add_get("/status/{code:\\d+}", status)
    app.router.add_get("/ws", ws_echo)
    return app


# --------------------------------------------------------------------------- ASGI app (hypercorn, h2)


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.request":
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        elif message["type"] == "http.disconnect":
            return
    path = scope["path"]
    if path == "/hello":
        data, ctype = b"hello", b"text/plain"
    else:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        client = scope.get("client")
        payload = _echo_payload(
            scope["method"],
            path,
            scope.get("query_string", b"").decode("latin-1"),
            headers,
            body,
            client[1] if client else None,
            scope["http_version"],
        )
        data, ctype = json.dumps(payload).encode(), b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


# --------------------------------------------------------------------------- runner


def server_ctx(leaf) -> ssl.SSLContext:
    """A server-side TLS context presenting leaf (a trustme.LeafCert)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(ctx)
    return ctx


_shared_lock = threading.Lock()
_shared: dict = {}


class AppServer:
    """One aiohttp app (``_app()``) in its own event loop on a daemon thread, served over plain
    HTTP (``http_port``) and over HTTPS with ``leaf`` (``https_port``). The upstreams of the suite
    (``Upstreams`` here, ``DetectUpstream``, ``LLMUpstream``) are this, plus their own endpoints."""

    @classmethod
    def shared(cls, make_leaf):
        """The one started instance of this class in this process (made with the leaf certificate
        make_leaf() returns, the first time): for fixtures star-imported into many test modules,
        where a session-scoped fixture would start one server per module."""
        with _shared_lock:
            if cls not in _shared:
                _shared[cls] = cls(make_leaf()).start()
            return _shared[cls]

    thread_name = "upstream"
    nodelay = False  # TCP_NODELAY on the listening sockets

    def __init__(self, leaf):
        self.leaf = leaf  # trustme.LeafCert
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._runner: web.AppRunner | None = None
        self.http_port = self.https_port = 0

    def _app(self) -> web.Application:
        raise NotImplementedError

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _start(self):
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        plain, tls = bound_socket(self.nodelay), bound_socket(self.nodelay)
        await web.SockSite(self._runner, plain).start()
        await web.SockSite(self._runner, tls, ssl_context=server_ctx(self.leaf)).start()
        self.http_port = plain.getsockname()[1]
        self.https_port = tls.getsockname()[1]

    def start(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        return self

    async def _stop(self):
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self):
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)


class Upstreams(AppServer):
    """All upstream servers: the aiohttp app over HTTP, over HTTPS (upstream CA) and over HTTPS
    with the rogue CA's certificate, and hypercorn (h2)."""

    thread_name = "upstreams"

    def __init__(self, upstream_cert, rogue_cert, cert_dir: str):
        super().__init__(upstream_cert)  # trustme.LeafCert signed by upstream CA
        self.upstream_cert = upstream_cert
        self.rogue_cert = rogue_cert  # trustme.LeafCert signed by rogue CA
        self.cert_dir = cert_dir
        self._h2_shutdown: asyncio.Event | None = None
        self._h2_task = None
        self._h2_sock: socket.socket | None = None
        self.rogue_port = self.h2_port = 0

    def _app(self) -> web.Application:
        return make_app()

    async def _start(self):
        await super()._start()
        rogue, h2 = bound_socket(), bound_socket()
        self._h2_sock = h2  # hypercorn serves its fd: the socket object must outlive _start
        await web.SockSite(self._runner, rogue, ssl_context=server_ctx(self.rogue_cert)).start()
        self.rogue_port = rogue.getsockname()[1]
        self.h2_port = h2.getsockname()[1]

        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        certfile = os.path.join(self.cert_dir, "h2-cert.pem")
        keyfile = os.path.join(self.cert_dir, "h2-key.pem")
        self.upstream_cert.cert_chain_pems[0].write_to_path(certfile)
        self.upstream_cert.private_key_pem.write_to_path(keyfile)
        config = Config()
        config.bind = [f"fd://{h2.fileno()}"]
        config.certfile = certfile
        config.keyfile = keyfile
        config.alpn_protocols = ["h2", "http/1.1"]
        config.accesslog = None
        config.errorlog = None
        config.keep_alive_timeout = 75
        self._h2_shutdown = asyncio.Event()
        self._h2_task = asyncio.ensure_future(
            serve(asgi_app, config, shutdown_trigger=self._h2_shutdown.wait, mode="asgi")
        )

    def start(self) -> "Upstreams":
        logging.getLogger("hypercorn.error").disabled = True
        super().start()
        # hypercorn binds asynchronously; wait until the h2 port answers.
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", self.h2_port), timeout=1):
                    break
            except OSError:
                import time

                time.sleep(0.02)
        return self

    async def _stop(self):
        if self._h2_shutdown is not None:
            self._h2_shutdown.set()
            try:
                await asyncio.wait_for(self._h2_task, 5)
            except Exception:
                pass
        await super()._stop()
