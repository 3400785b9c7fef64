"""Inside an intercepted tunnel the request's Host must be the tunnel's host: a request that
names another host is refused (403, policy) and reaches no upstream."""

from __future__ import annotations

import json
import time

from detect_fixtures import *  # noqa: F401,F403
from e2e_helpers import connect_tunnel, read_response, recv_all, tls_wrap


def _tunnel(p, target="example.test:443", sni="example.test"):
    sock, resp = connect_tunnel(p.port, target)
    assert resp.status == 200, f"CONNECT answered {resp.status}"
    return tls_wrap(sock, sni, p.ca_path)


def test_host_header_must_match_the_tunnel(detect_proxy, detect_up):
    p = detect_proxy()
    tag = detect_up.new_tag()
    tls = _tunnel(p)
    try:
        tls.sendall(f"GET /t/{tag} HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n".encode())
        resp = read_response(tls)
    finally:
        tls.close()
    assert resp.status == 403, (resp.status, resp.body[:300])
    assert resp.headers.get("x-airlock-block-reason") == "policy", resp.headers
    doc = json.loads(resp.body)
    assert doc.get("error") == "blocked", doc
    time.sleep(0.3)
    assert detect_up.hits(tag) == [], f"the smuggled request reached an upstream: {detect_up.hits(tag)}"
    f = p.wait_flows(lambda f: f"/t/{tag}" in (f.get("url") or ""))[0]
    assert f["action"] == "blocked" and f["status"] == 403, f


def test_matching_host_header_in_tunnel_is_served(detect_proxy, detect_up):
    p = detect_proxy()
    tag = detect_up.new_tag()
    tls = _tunnel(p)
    try:
        tls.sendall(f"GET /t/{tag} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n".encode())
        resp = read_response(tls)
    finally:
        tls.close()
    assert resp.status == 200, (resp.status, resp.body[:300])
    assert detect_up.wait_hits(tag)[0].host in ("example.test", "example.test:443")


def test_second_request_with_other_host_on_kept_alive_tunnel(detect_proxy, detect_up):
    p = detect_proxy()
    good, bad = detect_up.new_tag(), detect_up.new_tag()
    tls = _tunnel(p)
    try:
        tls.sendall(f"GET /t/{good} HTTP/1.1\r\nHost: example.test\r\n\r\n".encode())
        first = read_response(tls)
        assert first.status == 200
        tls.sendall(f"GET /t/{bad} HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n".encode())
        try:
            second = read_response(tls)
            status = second.status
        except (AssertionError, ConnectionResetError, OSError):
            status = None  # closing the connection is also a refusal
        rest = recv_all(tls, timeout=2)
    finally:
        tls.close()
    assert status in (403, None), status
    assert b"body_len" not in rest
    time.sleep(0.3)
    assert detect_up.hits(bad) == [], "the second request, for another host, reached an upstream"
