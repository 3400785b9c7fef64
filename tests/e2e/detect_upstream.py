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
import threading
from dataclasses import dataclass, field

from aiohttp import web

from records import wait_for
from upstream import AppServer


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


class DetectUpstream(AppServer):
    thread_name = "detect-upstreams"

    def __init__(self, leaf):
        super().__init__(leaf)
        self._lock = threading.Lock()
        self._hits: dict[str, list[Hit]] = {}
        self._canned: dict[str, Canned] = {}

    # ----------------------------------------------------------------- test-side API
    def new_tag(self) -> str:
        return "d" + secrets.token_hex(8)

    def hits(self, tag: str) -> list[Hit]:
        with self._lock:
            return list(self._hits.get(tag, []))

    def wait_hits(self, tag: str, count: int = 1, timeout: float = 5.0) -> list[Hit]:
        return wait_for(lambda: self.hits(tag), None, count, timeout, what=f"{count} request(s) for tag {tag} upstream")

    def wait_settled(self, tag: str, timeout: float = 5.0) -> list[Hit]:
        """Hits for tag once every one of them finished reading (complete or failed); after
        timeout, the hits as they are."""
        try:
            return wait_for(lambda: self.hits(tag), lambda got: all(h.complete or h.error for h in got), None, timeout)
        except AssertionError:
            return self.hits(tag)

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
