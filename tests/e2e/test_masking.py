"""Credentials are forwarded intact but never written in clear to any log."""

import os
import secrets

import pytest

from e2e_helpers import requests_session, sha256, url_path
from records import wait_for


def _files_containing(root, needles):
    hits = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                data = open(path, "rb").read()
            except OSError:
                continue
            for n in needles:
                if n.encode() in data:
                    hits.append((path, n))
    return hits


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_credentials_masked_in_logs(proxy, scheme):
    s_auth, s_cookie, s_key, s_pauth = (f"SECRET{secrets.token_hex(12)}" for _ in range(4))
    headers = {
        "Authorization": f"Bearer {s_auth}",
        "Cookie": f"s={s_cookie}",
        "X-Api-Key": s_key,
    }
    with requests_session(proxy) as s:
        # the upstream answers with sha256 of each header value, so no secret comes back in a body
        r = s.post(f"{scheme}://example.test/echo?headers=sha256", headers=headers, data=b"not a secret", timeout=30)
        assert r.status_code == 200
        echo = r.json()
        # upstream got them intact
        assert echo["headers"]["authorization"] == sha256(f"Bearer {s_auth}".encode()), "Authorization altered"
        assert echo["headers"]["cookie"] == sha256(f"s={s_cookie}".encode()), "Cookie altered"
        assert echo["headers"]["x-api-key"] == sha256(s_key.encode()), "X-Api-Key altered"
        # a credential coming back
        r2 = s.get(f"{scheme}://example.test/set-cookie", timeout=30)
        assert r2.status_code == 200
        set_cookie = r2.headers["set-cookie"]
    s_set = set_cookie.split(";")[0].split("=", 1)[1]
    assert len(s_set) >= 8

    if scheme == "http":
        # Proxy-Authorization on an absolute-form request
        with requests_session(proxy) as s:
            s.get("http://example.test/hello?pauth=1", headers={"Proxy-Authorization": f"Basic {s_pauth}"}, timeout=30)

    flow = proxy.wait_flows(lambda f: url_path(f) == "/echo" and f.get("method") == "POST")[0]
    proxy.wait_flows(lambda f: url_path(f) == "/set-cookie")
    rh = flow["request_headers"]
    for name in ("authorization", "cookie", "x-api-key"):
        assert name in rh, f"{name} missing from request_headers (it should be there, masked): {rh}"
    # egress events were written at --log 2 (so the stderr check below means something)
    wait_for(
        lambda: any(e.get("path", "").startswith("/echo") for e in proxy.events("egress_request")),
        what="egress_request event for /echo on stderr at --log 2",
    )
    wait_for(lambda: len(proxy.events("egress_response")) >= 2, what="egress_response events at --log 2")

    all_secrets = [s_auth, s_cookie, s_key, s_set] + ([s_pauth] if scheme == "http" else [])
    flows_text = proxy.flows_path.read_text()
    leaked = [x for x in all_secrets if x in flows_text]
    assert not leaked, f"secrets in clear in flows.jsonl: {leaked}"
    stderr = proxy.stderr_text()
    leaked = [x for x in all_secrets if x in stderr]
    assert not leaked, f"secrets in clear on stderr: {leaked}"
    hits = _files_containing(proxy.data_dir, all_secrets)
    assert not hits, f"secrets in clear in files under the data dir: {hits}"
