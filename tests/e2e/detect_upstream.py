"""Upstream servers for the detection tests (``test_detect_*.py``).

One aiohttp app, served over plain HTTP and over HTTPS with a certificate (signed by the
suite's upstream CA) that also names the providers' hosts (``api.anthropic.com``,
``api.github.com``), so that ``resolve`` can send those names here.

The app records what reaches it, in memory, so a test can prove that a blocked request
never arrived (the servers run inside the pytest worker; no control endpoint is needed):

* ``* /t/<tag>[/...]``  - records the request (head as soon as it arrives, body bytes as
  they stream in, ``complete`` once the whole body was read) and answers a small JSON
  document that never repeats the request (so nothing the test sent comes back).
* ``GET /c/<id>``      - serves a canned response registered with ``DetectUpstream.canned``:
  a list of chunks, optionally with a pause between them, with Content-Length or chunked.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    sock.setblocking(False)
    return sock


@dataclass
class Hit:
    method: str
    path: str
    query: str
    host: str
    headers: dict
    tls: bool
    body: bytearray = field(default_factory=bytearray)
    complete: bool = False
    error: str | None = None

    @property
    def body_len(self) -> int:
        return len(self.body)


@dataclass
class Canned:
    chunks: list
    delay: float = 0.0
    chunked: bool = False
    content_type: str = "application/json"
    status: int = 200


class DetectUpstream:
    def __init__(self, leaf):
        self.leaf = leaf  # trustme.LeafCert
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="detect-upstreams", daemon=True)
        self._runner: web.AppRunner | None = None
        self._lock = threading.Lock()
        self._hits: dict[str, list[Hit]] = {}
        self._canned: dict[str, Canned] = {}
        self.http_port = self.https_port = 0

    # ----------------------------------------------------------------- test-side API
    def new_tag(self) -> str:
        return "d" + secrets.token_hex(8)

    def hits(self, tag: str) -> list[Hit]:
        with self._lock:
            return list(self._hits.get(tag, []))

    def wait_hits(self, tag: str, count: int = 1, timeout: float = 5.0) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.hits(tag)
            if len(got) >= count:
                return got
            if time.monotonic() >= deadline:
                raise AssertionError(f"upstream saw {len(got)} request(s) for tag {tag}, expected {count}")
            time.sleep(0.05)

    def wait_settled(self, tag: str, timeout: float = 5.0) -> list[Hit]:
        """Hits for tag once every one of them finished reading (complete or failed)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.hits(tag)
            if all(h.complete or h.error for h in got) or time.monotonic() >= deadline:
                return got
            time.sleep(0.05)

    def canned(
        self,
        chunks,
        *,
        delay: float = 0.0,
        chunked: bool = False,
        content_type: str = "application/json",
        status: int = 200,
    ) -> str:
        """Registers a response; returns its path (``/c/<id>``)."""
        if isinstance(chunks, (bytes, str)):
            chunks = [chunks]
        chunks = [c.encode() if isinstance(c, str) else c for c in chunks]
        cid = secrets.token_hex(8)
        with self._lock:
            self._canned[cid] = Canned(chunks, delay, chunked, content_type, status)
        return f"/c/{cid}"

    # ----------------------------------------------------------------- handlers
    def _record(self, request: web.Request, tag: str) -> Hit:
        hit = Hit(
            method=request.method,
            path=request.path,
            query=request.query_string,
            host=request.headers.get("Host", ""),
            headers={k.lower(): v for k, v in request.headers.items()},
            tls=request.secure,
        )
        with self._lock:
            self._hits.setdefault(tag, []).append(hit)
        return hit

    async def _tagged(self, request: web.Request) -> web.Response:
        hit = self._record(request, request.match_info["tag"])
        try:
            async for chunk in request.content.iter_any():
                hit.body.extend(chunk)
            # a body cut short (Content-Length not reached / no final chunk) normally raises above
            declared = request.headers.get("Content-Length")
            hit.complete = declared is None or int(declared) == len(hit.body)
        except Exception as e:  # noqa: BLE001 - any failure means the body did not arrive whole
            hit.error = f"{type(e).__name__}: {e}"
            return web.Response(status=400, text="incomplete body")
        return web.json_response(
            {"ok": True, "body_len": len(hit.body), "body_sha256": hashlib.sha256(hit.body).hexdigest()}
        )

    async def _serve_canned(self, request: web.Request) -> web.StreamResponse:
        cid = request.match_info["cid"]
        self._record(request, "canned-" + cid).complete = True
        with self._lock:
            c = self._canned.get(cid)
        if c is None:
            return web.Response(status=404, text="no such canned response")
        if not c.chunked:
            return web.Response(status=c.status, body=b"".join(c.chunks), headers={"Content-Type": c.content_type})
        resp = web.StreamResponse(status=c.status, headers={"Content-Type": c.content_type})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i, chunk in enumerate(c.chunks):
            if i and c.delay:
                await asyncio.sleep(c.delay)
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/t/{tag}", self._tagged)
        app.router.add_route("*", "/t/{tag}/{tail:.*}", self._tagged)
        app.router.add_get("/c/{cid}", self._serve_canned)
        return app

    # ----------------------------------------------------------------- lifecycle
    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _start(self):
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        plain, tls = _bound_socket(), _bound_socket()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.leaf.configure_cert(ctx)
        await web.SockSite(self._runner, plain).start()
        await web.SockSite(self._runner, tls, ssl_context=ctx).start()
        self.http_port = plain.getsockname()[1]
        self.https_port = tls.getsockname()[1]

    def start(self) -> "DetectUpstream":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        return self

    def stop(self):
        try:
            if self._runner is not None:
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
