"""HTTP/2 on both sides of the interception."""

import json
import os

from e2e_helpers import curl, httpx_client, sha256, url_path


def test_curl_http2_through_interception(proxy):
    res = curl("https://example.test/hello", proxy=proxy, cacert=proxy.ca_path, extra=["--http2"])
    assert res.rc == 0, res.stderr
    assert (res.status, res.body) == (200, b"hello")
    assert res.http_version == "2", f"client side negotiated HTTP/{res.http_version}, expected h2"
    f = proxy.wait_flows(lambda f: url_path(f) == "/hello" and f.get("scheme") == "https")[0]
    assert f["status"] == 200


def test_http1_only_hosts(start_proxy):
    p = start_proxy({"http1_only_hosts": ["example.test"]})
    res = curl("https://example.test/hello", proxy=p, cacert=p.ca_path, extra=["--http2"])
    assert (res.rc, res.status, res.body) == (0, 200, b"hello"), res.stderr
    assert res.http_version == "1.1", f"http1_only_hosts host negotiated HTTP/{res.http_version}"
    # other hosts keep h2
    res = curl("https://h2.test/hello", proxy=p, cacert=p.ca_path, extra=["--http2"])
    assert (res.rc, res.status, res.body) == (0, 200, b"hello"), res.stderr
    assert res.http_version == "2"


def test_httpx_http2_post_binary(proxy):
    data = os.urandom(100 * 1024)
    with httpx_client(proxy, http2=True) as c:
        r = c.post("https://example.test/echo?h2=1", content=data)
        assert r.http_version == "HTTP/2"
        assert r.status_code == 200
        echo = r.json()
        assert echo["body_sha256"] == sha256(data)
        assert echo["query"] == "h2=1"
        # several concurrent streams on the one h2 connection
        r2 = c.get("https://example.test/bytes/200000")
        assert sha256(r2.content) == r2.headers["x-body-sha256"]


def test_upstream_http2(proxy):
    """The proxy speaks h2 to an upstream that offers it (hypercorn on h2.test)."""
    for extra in (["--http2"], ["--http1.1"]):
        res = curl("https://h2.test/echo", proxy=proxy, cacert=proxy.ca_path, extra=extra + ["--data-binary", "abc"])
        assert res.rc == 0 and res.status == 200, (res.status, res.stderr, res.body[:300])
        echo = json.loads(res.body)
        assert echo["body"] == "abc"
        assert echo["http_version"] == "2", f"upstream saw HTTP/{echo['http_version']} (client used {extra[0]})"


def test_http2_large_bodies_both_ways(proxy):
    """Flow control: 5 MB down and 5 MB up over the client-side h2 connection."""
    data = os.urandom(5 * 1024 * 1024)
    with httpx_client(proxy, http2=True) as c:
        r = c.get("https://example.test/bytes/5242880")
        assert r.http_version == "HTTP/2"
        assert len(r.content) == 5242880 and sha256(r.content) == r.headers["x-body-sha256"]
        r = c.post("https://example.test/echo", content=data)
        assert r.json()["body_sha256"] == sha256(data)
        r = c.post("https://h2.test/echo", content=data)
        assert r.json()["body_sha256"] == sha256(data)
        assert r.json()["http_version"] == "2"


def test_upstream_h2_connection_reused(proxy):
    with httpx_client(proxy, http2=True) as c:
        ports = {c.get(f"https://h2.test/echo?i={i}").json()["peer_port"] for i in range(5)}
    assert len(ports) == 1, f"upstream h2 server saw {len(ports)} connections for 5 requests"
