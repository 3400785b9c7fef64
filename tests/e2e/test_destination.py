"""The destination guard (issue 5, SPEC 6 `allow_private`): airlock refuses to connect to loopback,
link-local, private and unique-local addresses, checked after name resolution (`resolve` or DNS),
before any connection is attempted; `allow_private: [cidr…]` opts ranges back in.

A refusal is a 403 with `X-Airlock-Block-Reason: destination`, a POLICY threat record and a
blocked flow record."""

from __future__ import annotations

import time

import pytest

from e2e_helpers import airlock, connect_tunnel, read_response, tls_wrap, url_path
from policy_fixtures import *  # noqa: F401,F403
from policy_fixtures import assert_blocked, assert_passed, get, post, wait_policy_threat


def _refused(r, t0=None):
    doc = assert_blocked(r, reason="destination")
    if t0 is not None:
        elapsed = time.monotonic() - t0
        assert elapsed < 2.0, f"the refusal took {elapsed:.2f}s: it must come before any connection attempt"
    return doc


def _tunnel_refused(proxy, host, port=443, *, sni=None, cafile=None):
    """An HTTPS request to host through the intercepting proxy is refused, either at CONNECT
    (403 to the CONNECT) or on the request inside the tunnel (403 there)."""
    t0 = time.monotonic()
    sock, resp = connect_tunnel(proxy.port, f"{host}:{port}")
    try:
        if resp.status == 403:
            assert resp.headers.get("x-airlock-block-reason") == "destination", resp.headers
            assert resp.headers.get("x-airlock-rule"), resp.headers
            return
        assert resp.status == 200, f"CONNECT {host}:{port} answered {resp.status}"
        tls = tls_wrap(sock, sni or host.strip("[]"), cafile or proxy.ca_path)
        tls.sendall(f"GET /hello HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        got = read_response(tls)
        assert got.status == 403, f"https://{host}/hello through the proxy answered {got.status}: {got.body[:200]!r}"
        assert got.headers.get("x-airlock-block-reason") == "destination", got.headers
        assert got.headers.get("x-airlock-rule"), got.headers
    finally:
        sock.close()
    assert time.monotonic() - t0 < 3.0


def test_name_resolving_to_loopback_refused_by_default(policy_proxy):
    p = policy_proxy(allow_private=False)
    t0 = time.monotonic()
    r = post(p, "http://example.test/echo/guarded", data=b"x")
    doc = _refused(r, t0)
    t = wait_policy_threat(p, doc["rule"])
    assert t["dest"] == "example.test:80", t
    flow = p.wait_flows(lambda f: url_path(f) == "/echo/guarded")[0]
    assert flow["action"] == "blocked", flow
    assert flow["status"] == 403, flow
    _tunnel_refused(p, "example.test")


def test_loopback_allowed_with_allow_private(policy_proxy, upstreams):
    p = policy_proxy()  # allow_private: ["127.0.0.0/8"]
    assert_passed(get(p, "http://example.test/hello"))
    assert_passed(get(p, "https://example.test/hello"))
    assert_passed(get(p, f"http://127.0.0.1:{upstreams.http_port}/hello"))


def test_loopback_ip_literal_and_localhost_refused_by_default(policy_proxy, upstreams):
    p = policy_proxy(allow_private=False)
    _refused(get(p, f"http://127.0.0.1:{upstreams.http_port}/hello"), time.monotonic())
    # a name the system resolver maps to loopback: the check is after resolution
    _refused(get(p, f"http://localhost:{upstreams.http_port}/hello"), time.monotonic())


def test_metadata_address_refused_even_with_loopback_allowed(policy_proxy):
    p = policy_proxy()  # metadata.test -> 169.254.169.254 (nothing listens there)
    t0 = time.monotonic()
    r = get(p, "http://metadata.test/latest/meta-data/iam/security-credentials/", timeout=10)
    doc = _refused(r, t0)
    wait_policy_threat(p, doc["rule"], pred=lambda t: str(t.get("dest", "")).startswith("metadata.test:"))
    _tunnel_refused(p, "metadata.test")
    # and still fine for what is allowed
    assert_passed(get(p, "http://example.test/hello"))


PRIVATE_TARGETS = [
    "169.254.169.254",
    "10.1.2.3",
    "172.16.5.4",
    "172.31.255.254",
    "192.168.1.1",
    "[::1]",
    "[fd00::1]",
    "[fc00::2]",
    "[::ffff:169.254.169.254]",  # IPv4-mapped IPv6 is the address it maps
    "[::ffff:10.1.2.3]",
]


@pytest.mark.parametrize("target", PRIVATE_TARGETS)
def test_private_ip_literals_refused(policy_proxy, target):
    p = policy_proxy()  # only 127.0.0.0/8 allowed
    t0 = time.monotonic()
    r = get(p, f"http://{target}/hello", timeout=10)
    _refused(r, t0)


def test_name_resolving_to_private_range_refused(policy_proxy):
    p = policy_proxy({"resolve": {"intranet.test": "10.20.30.40", "router.test": "192.168.0.1"}})
    for host in ("intranet.test", "router.test"):
        t0 = time.monotonic()
        _refused(get(p, f"http://{host}/hello", timeout=10), t0)


def test_unspecified_address_refused(policy_proxy, upstreams):
    # 0.0.0.0 reaches this machine's own services on Linux: not a way around the guard
    p = policy_proxy()
    _refused(get(p, f"http://0.0.0.0:{upstreams.http_port}/hello", timeout=10), time.monotonic())


def test_allow_private_is_exact_about_its_range(policy_proxy, upstreams):
    p = policy_proxy({"allow_private": ["127.0.0.1/32"], "resolve": {"two.test": f"127.0.0.2:{upstreams.http_port}"}})
    assert_passed(get(p, "http://example.test/hello"))
    _refused(get(p, "http://two.test/hello"), time.monotonic())


def test_no_mitm_connect_to_private_address_refused(policy_proxy):
    p = policy_proxy(allow_private=False, mitm=False)
    for target in ("example.test:443", "10.1.2.3:443", "metadata.test:443"):
        t0 = time.monotonic()
        sock, resp = connect_tunnel(p.port, target)
        sock.close()
        assert resp.status == 403, f"CONNECT {target} answered {resp.status}"
        assert resp.headers.get("x-airlock-block-reason") == "destination", resp.headers
        assert resp.headers.get("x-airlock-rule"), resp.headers
        assert time.monotonic() - t0 < 2.0
    wait_policy_threat(p, pred=lambda t: str(t.get("dest", "")).startswith("example.test:"))


def test_no_mitm_connect_allowed_with_allow_private(policy_proxy):
    p = policy_proxy(mitm=False)
    sock, resp = connect_tunnel(p.port, "example.test:443")
    sock.close()
    assert resp.status == 200, resp
    sock, resp = connect_tunnel(p.port, "metadata.test:443")
    sock.close()
    assert resp.status == 403 and resp.headers.get("x-airlock-block-reason") == "destination", resp


def test_config_check_allow_private(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text('allow_private: ["127.0.0.0/8", "10.0.0.0/8", "fd00::/8", "192.168.1.7/32"]\n')
    r = airlock("config", "check", good)
    assert r.returncode == 0, r.stderr
    for name, body in {
        "not_a_cidr": 'allow_private: ["not-a-cidr"]\n',
        "bad_prefix": 'allow_private: ["10.0.0.0/33"]\n',
        "not_a_list": "allow_private: 10.0.0.0/8\n",
    }.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(body)
        r = airlock("config", "check", path)
        assert r.returncode == 2, f"{name}: exit {r.returncode} {r.stderr}"
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "allow_private" in lines[0], f"{name}: {r.stderr!r}"
