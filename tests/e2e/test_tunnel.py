"""Blind CONNECT tunnels: --no-mitm and passthrough_hosts."""

from e2e_helpers import curl, url_path


def _check_tunnel_flow(p, host="example.test", port=443):
    f = p.wait_flows(lambda f: f.get("method") == "CONNECT" and f.get("host") == host)[0]
    assert f["action"] == "tunneled", f
    assert f["scheme"] == "tcp", f
    assert f["port"] == port, f
    assert f["listener"] == "proxy"
    assert isinstance(f["request_bytes"], int) and f["request_bytes"] > 0, f
    assert isinstance(f["response_bytes"], int) and f["response_bytes"] > 0, f
    return f


def test_blind_tunnel_no_mitm(start_proxy, certs):
    p = start_proxy(mitm=False)
    # the client sees the upstream's own certificate: trusting only the upstream CA works
    res = curl("https://example.test/hello", proxy=p, cacert=certs.upstream_ca_path)
    assert res.rc == 0, res.stderr
    assert (res.status, res.body) == (200, b"hello")
    _check_tunnel_flow(p)
    # plain HTTP is still proxied and recorded with --no-mitm
    res = curl("http://example.test/hello", proxy=p)
    assert (res.status, res.body) == (200, b"hello")
    f = p.wait_flows(lambda f: f.get("scheme") == "http" and url_path(f) == "/hello")[0]
    assert f["action"] == "allowed"


def test_passthrough_hosts(start_proxy, certs):
    p = start_proxy({"passthrough_hosts": ["example.test"]})
    assert p.boot["mitm"] is True
    res = curl("https://example.test/hello", proxy=p, cacert=certs.upstream_ca_path)
    assert res.rc == 0, res.stderr
    assert (res.status, res.body) == (200, b"hello")
    _check_tunnel_flow(p)
    # a host not listed is still intercepted (airlock's CA)
    res = curl("https://h2.test/hello", proxy=p, cacert=p.ca_path)
    assert (res.rc, res.status, res.body) == (0, 200, b"hello"), res.stderr
    f = p.wait_flows(lambda f: f.get("host") == "h2.test")[0]
    assert f["scheme"] == "https" and f["method"] == "GET"


def test_passthrough_hosts_glob(start_proxy, certs):
    p = start_proxy({"passthrough_hosts": ["*.test"]})
    res = curl("https://example.test/hello", proxy=p, cacert=certs.upstream_ca_path)
    assert (res.rc, res.status, res.body) == (0, 200, b"hello"), res.stderr
    _check_tunnel_flow(p)
