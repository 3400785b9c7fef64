"""Streaming: server-sent events pass through without being buffered."""

import time

import httpx
import pytest

from e2e_helpers import httpx_client
from upstream import SSE_HOLD_SECONDS


def _time_sse(client, url):
    """Returns (seconds to the first event, seconds to the end, raw body)."""
    t0 = time.monotonic()
    first = None
    buf = b""
    with client.stream("GET", url) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for chunk in r.iter_raw():
            buf += chunk
            if first is None and b"data: first\n\n" in buf:
                first = time.monotonic() - t0
    return first, time.monotonic() - t0, buf


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_sse_first_event_not_delayed(proxy, upstreams, certs, scheme):
    port = upstreams.http_port if scheme == "http" else upstreams.https_port
    with httpx.Client(verify=certs.upstream_client_ctx(), trust_env=False, timeout=30) as c:
        c.get(f"{scheme}://127.0.0.1:{port}/hello")  # warm the connection
        d_first, d_total, _ = _time_sse(c, f"{scheme}://127.0.0.1:{port}/sse")
    with httpx_client(proxy) as c:
        assert c.get(f"{scheme}://example.test/hello").text == "hello"  # warm the tunnel / connection
        p_first, p_total, body = _time_sse(c, f"{scheme}://example.test/sse")
    msg = (
        f"first SSE event after {p_first}s through the proxy vs {d_first:.3f}s direct; "
        f"stream ended after {p_total:.3f}s (direct {d_total:.3f}s); upstream holds the rest {SSE_HOLD_SECONDS}s"
    )
    assert p_first is not None, msg
    assert p_first < 0.5, msg
    assert p_total >= SSE_HOLD_SECONDS - 0.1, msg
    assert body.count(b"data: ") == 4, body


def test_slow_body_streams(proxy):
    """The first part of a slow response arrives before the upstream sends the rest."""
    with httpx_client(proxy) as c:
        # The tunnel, the handshake and the host certificate first: only the body is timed
        # (in a debug build under a full parallel run they took up to a second).
        assert c.get("https://example.test/hello").status_code == 200
        t0 = time.monotonic()
        with c.stream("GET", "https://example.test/slow-body?delay=3") as r:
            it = r.iter_raw()
            buf = b""
            while b"part1" not in buf:
                buf += next(it)
            first = time.monotonic() - t0
            for chunk in it:
                buf += chunk
    assert buf == b"part1\npart2\n"
    assert first < 1.5, f"first part arrived after {first:.3f}s, upstream sent it at once and the rest 3 s later"


def test_sse_over_client_h2(proxy):
    with httpx_client(proxy, http2=True) as c:
        assert c.get("https://example.test/hello").http_version == "HTTP/2"
        first, total, body = _time_sse(c, "https://example.test/sse")
    msg = f"first SSE event after {first}s over h2 through the proxy; stream ended after {total:.3f}s"
    assert first is not None and first < 0.5, msg
    assert body.count(b"data: ") == 4, body
