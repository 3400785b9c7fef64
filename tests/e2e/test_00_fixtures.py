"""Sanity checks of the test fixtures themselves, without airlock in the path.

If these fail, the environment is broken, not the proxy."""

import time

import httpx
import requests
import websocket

from e2e_helpers import curl, sha256


def test_upstream_plain_and_tls(upstreams, certs):
    r = requests.get(f"http://127.0.0.1:{upstreams.http_port}/hello", timeout=10)
    assert r.text == "hello"
    r = requests.get(f"https://127.0.0.1:{upstreams.https_port}/hello", verify=str(certs.upstream_ca_path), timeout=10)
    assert r.text == "hello"
    res = curl(
        f"https://example.test:{upstreams.https_port}/echo?x=1",
        cacert=certs.upstream_ca_path,
        extra=["--resolve", f"example.test:{upstreams.https_port}:127.0.0.1", "--data-binary", "abc"],
    )
    assert res.rc == 0, res.stderr
    echo = res.json()
    assert echo["method"] == "POST" and echo["body"] == "abc" and echo["query"] == "x=1"
    assert echo["body_sha256"] == sha256(b"abc")


def test_upstream_keepalive_peer_port(upstreams):
    with requests.Session() as s:
        ports = {s.get(f"http://127.0.0.1:{upstreams.http_port}/echo", timeout=10).json()["peer_port"] for _ in range(3)}
    assert len(ports) == 1


def test_rogue_upstream_is_untrusted_by_upstream_ca(upstreams, certs):
    res = curl(f"https://127.0.0.1:{upstreams.rogue_port}/hello", cacert=certs.upstream_ca_path)
    assert res.rc != 0
    res = curl(f"https://127.0.0.1:{upstreams.rogue_port}/hello", cacert=certs.rogue_ca_path)
    assert res.rc == 0 and res.text == "hello"


def test_h2_upstream(upstreams, certs):
    with httpx.Client(http2=True, verify=certs.upstream_client_ctx()) as c:
        r = c.post(f"https://127.0.0.1:{upstreams.h2_port}/echo", content=b"xyz")
    assert r.http_version == "HTTP/2"
    assert r.json()["http_version"] == "2"
    assert r.json()["body"] == "xyz"
    res = curl(f"https://127.0.0.1:{upstreams.h2_port}/hello", cacert=certs.upstream_ca_path, extra=["--http1.1"])
    assert res.rc == 0 and res.text == "hello" and res.http_version == "1.1"


def test_sse_direct(upstreams, certs):
    t0 = time.monotonic()
    with httpx.Client(verify=certs.upstream_client_ctx()) as c:
        with c.stream("GET", f"https://127.0.0.1:{upstreams.https_port}/sse") as r:
            first = None
            buf = b""
            for chunk in r.iter_raw():
                buf += chunk
                if first is None and b"data: first" in buf:
                    first = time.monotonic() - t0
    total = time.monotonic() - t0
    assert first is not None and first < 0.5
    assert total >= 1.4
    assert buf.count(b"data:") == 4


def test_ws_direct(upstreams, certs):
    ws = websocket.create_connection(f"ws://127.0.0.1:{upstreams.http_port}/ws", timeout=10)
    ws.send("hi")
    assert ws.recv() == "hi"
    ws.close()
    ws = websocket.create_connection(
        f"wss://127.0.0.1:{upstreams.https_port}/ws", timeout=10, sslopt={"ca_certs": str(certs.upstream_ca_path)}
    )
    ws.send_binary(b"\x00\x01")
    assert ws.recv() == b"\x00\x01"
    ws.close()
