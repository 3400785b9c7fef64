"""Upstream failures: the client gets a 502 with a reason, and a failed flow is recorded."""

import json

from e2e_helpers import assert_serving, closed_port, connect_tunnel, curl, requests_session


def _reason_of(body: bytes) -> str:
    try:
        obj = json.loads(body)
    except ValueError:
        raise AssertionError(f"error body is not JSON: {body[:300]!r}") from None
    reason = obj.get("reason")
    assert isinstance(reason, str) and reason.strip(), f"error body has no reason: {obj}"
    return reason


def test_untrusted_upstream_certificate(proxy):
    res = curl("https://rogue.test/hello", proxy=proxy, cacert=proxy.ca_path)
    assert res.status == 502, f"expected 502, got {res.status} rc={res.rc} {res.stderr} {res.body[:300]!r}"
    reason = _reason_of(res.body)
    assert "cert" in reason.lower(), f"reason does not say the certificate was the problem: {reason!r}"
    f = proxy.wait_flows(lambda f: f.get("host") == "rogue.test")[0]
    assert f["action"] == "failed", f
    assert isinstance(f.get("reason"), str) and f["reason"], f
    assert res.body.find(b"hello") == -1
    assert_serving(proxy)


def test_untrusted_upstream_with_requests(proxy):
    with requests_session(proxy) as s:
        r = s.get("https://rogue.test/echo", timeout=30)
    assert r.status_code == 502
    _reason_of(r.content)


def test_connect_to_closed_port_no_mitm(start_proxy):
    port = closed_port()
    p = start_proxy({"connect_ports": [443, port]}, mitm=False)
    sock, resp = connect_tunnel(p.port, f"127.0.0.1:{port}")
    sock.close()
    assert resp.status == 502, f"CONNECT to a closed port answered {resp.status}"
    f = p.wait_flows(lambda f: f.get("method") == "CONNECT" and f.get("port") == port)[0]
    assert f["action"] == "failed" and f.get("reason"), f
    assert_serving(p)


def test_connect_to_closed_port_with_mitm(start_proxy):
    port = closed_port()
    proxy = start_proxy({"connect_ports": [443, port]})
    res = curl(f"https://127.0.0.1:{port}/hello", proxy=proxy, cacert=proxy.ca_path)
    assert res.status == 502, f"expected the request inside the tunnel to get 502, got {res.status} (CONNECT {res.connect_status}) {res.stderr}"
    _reason_of(res.body)
    f = proxy.wait_flows(lambda f: f.get("port") == port)[0]
    assert f["action"] == "failed" and f.get("reason"), f
    assert_serving(proxy)


def test_plain_http_to_closed_port(proxy):
    port = closed_port()
    res = curl(f"http://127.0.0.1:{port}/hello", proxy=proxy)
    assert res.status == 502, (res.status, res.stderr)
    _reason_of(res.body)
    f = proxy.wait_flows(lambda f: f.get("port") == port)[0]
    assert f["action"] == "failed" and f.get("reason"), f
    assert f["status"] in (502, None)
    assert_serving(proxy)
