"""Logins work through airlock (issue 10, item 7; SPEC 4: action `allowed`). A credential
arriving from its issuer, or in a token endpoint's answer, reaches the client intact and is
recorded as seen (a SECRET threat with action `allowed`), never redacted — with the real client
libraries: requests-oauthlib for OAuth (GitHub, Google, Azure AD), boto3 for AWS STS, and the
registries' token shapes (npm, Docker). The same credential from anywhere else is redacted."""

from __future__ import annotations

import pytest
import requests

from records import FLOWS, THREATS, log_text, read_threats, wait_threats
from token_upstream import TOKEN_HOSTS, TokenUpstream


@pytest.fixture
def token_up(certs) -> TokenUpstream:
    return TokenUpstream.shared(lambda: certs.upstream_ca.issue_cert(*TOKEN_HOSTS))


@pytest.fixture
def login_proxy(start_proxy, certs, token_up):
    resolve = {f"{h}:443": f"127.0.0.1:{token_up.https_port}" for h in TOKEN_HOSTS}
    return start_proxy({"upstream_ca": [str(certs.upstream_ca_path)], "resolve": resolve,
                        "allow_private": ["127.0.0.0/8"]}, base=False)


def _session(p) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.proxies = {"https": p.url, "http": p.url}
    s.verify = str(p.ca_path)
    return s


def _allowed(p, *values: str):
    """Each value came through as it was sent, a SECRET threat says `allowed`, nothing was
    redacted, and no record carries a value."""
    threats = wait_threats(p, lambda t: t.get("action") == "allowed")
    for t in threats:
        assert (t["threat_type"], t["direction"]) == ("SECRET", "inbound"), t
    assert not read_threats(p, lambda t: t.get("action") == "redacted"), read_threats(p)
    records = log_text(p, THREATS) + log_text(p, FLOWS) + p.stderr_text()
    for v in values:
        assert v not in records and v[8:40] not in records, "a record carries the credential"
    return threats


def test_github_oauth_login_with_requests_oauthlib(login_proxy, token_up):
    from requests_oauthlib import OAuth2Session

    p = login_proxy
    oauth = OAuth2Session("Iv1.0123456789abcdef")
    token = oauth.fetch_token(
        "https://github.com/login/oauth/access_token", code="one-time-code",
        client_secret="not-a-real-client-secret", include_client_id=True,
        proxies={"https": p.url}, verify=str(p.ca_path),
    )
    assert token["access_token"] == token_up.issued["github"]
    t = _allowed(p, token_up.issued["github"])
    assert any(x["pattern"] == "github_oauth_token" for x in t), t
    flow = p.wait_flows(lambda f: (f.get("url") or "").endswith("/login/oauth/access_token"))[0]
    assert flow["action"] == "allowed", flow


def test_google_token_endpoint_keeps_access_refresh_and_id_tokens(login_proxy, token_up):
    from requests_oauthlib import OAuth2Session

    p = login_proxy
    oauth = OAuth2Session("client.apps.googleusercontent.com", scope=["openid"],
                          redirect_uri="http://localhost:8085/")
    token = oauth.fetch_token("https://oauth2.googleapis.com/token", code="4/0Adeu5BW",
                              client_secret="GOCSPX-notarealsecret", proxies={"https": p.url},
                              verify=str(p.ca_path))
    issued = token_up.issued
    assert token["access_token"] == issued["google_access"]
    assert token["refresh_token"] == issued["google_refresh"]
    assert token["id_token"] == issued["google_id"]
    _allowed(p, issued["google_access"], issued["google_id"])


def test_azure_ad_client_credentials(login_proxy, token_up):
    from oauthlib.oauth2 import BackendApplicationClient
    from requests_oauthlib import OAuth2Session

    p = login_proxy
    oauth = OAuth2Session(client=BackendApplicationClient(client_id="00000000-1111-2222-3333-444444444444"))
    token = oauth.fetch_token("https://login.microsoftonline.com/contoso/oauth2/v2.0/token",
                              client_secret="notarealsecret", scope=["https://graph.microsoft.com/.default"],
                              proxies={"https": p.url}, verify=str(p.ca_path))
    assert token["access_token"] == token_up.issued["azure_access"]
    _allowed(p, token_up.issued["azure_access"])


def test_aws_sts_assume_role_with_boto3(login_proxy, token_up):
    import boto3
    from botocore.config import Config

    p = login_proxy
    sts = boto3.client(
        "sts", region_name="us-east-1", endpoint_url="https://sts.amazonaws.com",
        aws_access_key_id="AKIAQYLPMN5HFIQR7ABC", aws_secret_access_key="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",
        verify=str(p.ca_path), config=Config(proxies={"https": p.url}, retries={"max_attempts": 1}),
    )
    creds = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/demo", RoleSessionName="airlock-test")["Credentials"]
    issued = token_up.issued
    assert creds["AccessKeyId"] == issued["aws_key_id"]
    assert creds["SecretAccessKey"] == issued["aws_secret"]
    assert creds["SessionToken"] == issued["aws_session"]
    _allowed(p, issued["aws_secret"], issued["aws_session"])


def test_npm_login_token(login_proxy, token_up):
    p = login_proxy
    with _session(p) as s:
        r = s.put("https://registry.npmjs.org/-/user/org.couchdb.user:alice",
                  json={"name": "alice", "password": "correct horse", "type": "user"}, timeout=20)
    assert r.status_code == 201 and r.json()["token"] == token_up.issued["npm"]
    _allowed(p, token_up.issued["npm"])


def test_docker_registry_token(login_proxy, token_up):
    p = login_proxy
    with _session(p) as s:
        r = s.get("https://auth.docker.io/token?service=registry.docker.io&scope=repository:library/alpine:pull",
                  timeout=20)
    assert r.json()["token"] == token_up.issued["docker"]
    _allowed(p, token_up.issued["docker"])


def test_the_same_credential_from_elsewhere_is_redacted(login_proxy, token_up):
    p = login_proxy
    with _session(p) as s:
        r = s.get("https://files.test/files/config", timeout=20)
    assert token_up.issued["github"] not in r.text
    assert r.json()["token"] == "[REDACTED:github_oauth_token]", r.text
    t = wait_threats(p, lambda t: t.get("pattern") == "github_oauth_token")[0]
    assert (t["threat_type"], t["action"]) == ("SECRET", "redacted"), t
