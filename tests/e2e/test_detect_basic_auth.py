"""Detection: `Authorization: Basic` credentials leaving for a third party are a leak (the
issue names them beside keys); the proxy's own Proxy-Authorization is not forwarded at all."""

from __future__ import annotations

import base64
import secrets
import time

import pytest

from detect_fixtures import *  # noqa: F401,F403
from e2e_helpers import requests_session
from records import wait_threats

SCHEMES = ["http", "https"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_basic_credentials_to_a_third_party_are_blocked(detect_proxy, detect_up, scheme):
    p = detect_proxy()
    password = "pw-" + secrets.token_urlsafe(12)
    token = base64.b64encode(f"deploy:{password}".encode()).decode()
    tag = detect_up.new_tag()
    with requests_session(p) as s:
        r = s.get(f"{scheme}://example.test/t/{tag}", headers={"Authorization": f"Basic {token}"}, timeout=30)
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert r.headers["X-Airlock-Block-Reason"] == "credential-leak"
    assert r.headers["X-Airlock-Rule"] == "http_basic_auth"
    assert token not in r.text and password not in r.text
    time.sleep(0.3)
    assert detect_up.hits(tag) == [], "the upstream received the credentials"
    threat = wait_threats(p, lambda t: t["pattern"] == "http_basic_auth")[0]
    assert threat["threat_type"] == "EXFIL" and threat["action"] == "blocked", threat
    for f in ("threats.jsonl", "flows.jsonl"):
        text = (p.data_dir / "logs" / f).read_text()
        assert token not in text and password not in text, f


def test_a_basic_realm_challenge_is_not_a_credential(detect_proxy, detect_up):
    p = detect_proxy()
    tag = detect_up.new_tag()
    with requests_session(p) as s:
        r = s.get(f"http://example.test/t/{tag}", headers={"X-Note": 'Basic realm="registry"'}, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300])
