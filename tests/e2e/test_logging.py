"""Stderr event lines at --log 2 and --log 0."""

import secrets

import pytest

from e2e_helpers import curl, requests_session, url_path
from records import wait_for


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_log2_egress_events(proxy, scheme):
    marker = secrets.token_hex(8)
    with requests_session(proxy) as s:
        r = s.post(f"{scheme}://example.test/echo?m={marker}", data=f"body-{marker}", timeout=30)
    assert r.status_code == 200

    def requests_seen():
        return [
            e
            for e in proxy.events("egress_request")
            if e.get("host") == "example.test" and str(e.get("path", "")).startswith("/echo")
        ]

    req = wait_for(requests_seen, what="egress_request event on stderr")[0]
    assert req["method"] == "POST"
    assert marker in req["path"]
    assert isinstance(req["headers"], dict)
    assert f"body-{marker}" in str(req["body"])
    resp = wait_for(
        lambda: [e for e in proxy.events("egress_response") if e.get("host") == "example.test" and f"body-{marker}" in str(e.get("body", ""))],
        what="egress_response event carrying the echoed body",
    )[0]
    assert resp["status"] == 200
    assert isinstance(resp["headers"], dict)


def test_log0_no_egress_events(start_proxy):
    p = start_proxy(log=0)
    assert p.boot["log"] == "off"
    marker = secrets.token_hex(8)
    with requests_session(p) as s:
        assert s.post(f"http://example.test/echo?m={marker}", data=f"body-{marker}", timeout=30).status_code == 200
        assert s.post(f"https://example.test/echo?m={marker}", data=f"body-{marker}", timeout=30).status_code == 200
    p.wait_flows(lambda f: url_path(f) == "/echo", count=2)
    assert curl("http://example.test/hello?last=1", proxy=p).status == 200
    p.wait_flows(lambda f: "last=1" in (f.get("url") or ""))
    names = [e.get("event") for e in p.events()]
    assert not [n for n in names if n in ("egress_request", "egress_response")], names
    assert marker not in p.stderr_text(), "request details on stderr at --log 0"
