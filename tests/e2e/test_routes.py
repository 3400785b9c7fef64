"""Routes: per-host credential injection (issue 5, SPEC 8). The agent sends a placeholder; the
upstream sees the real credential; the real credential is in no log line and no record, and is
never reported as a leak.

The upstream echoes header values as sha256 (`/echo?headers=sha256`), so the real key never comes
back in a response body (where it would be a SECRET arriving, redacted, and logged masked)."""

from __future__ import annotations

import json
import re

import pytest

from detect_fixtures import fresh_key
from e2e_helpers import airlock, clean_environ, sha256, url_path
from llm_fixtures import *  # noqa: F401,F403
from llm_fixtures import anthropic_client
from policy_fixtures import *  # noqa: F401,F403
from policy_fixtures import (
    assert_blocked,
    assert_passed,
    assert_secret_nowhere,
    get,
    post,
    wait_egress,
    wait_policy_threat,
)
from records import read_threats, wait_llm

SCHEMES = ["http", "https"]
ENV = "AIRLOCK_E2E_ROUTE_KEY"


def _route(**kw):
    r = {"host": "example.test", "inject": {"header": "x-api-key", "value_env": ENV}}
    r.update(kw)
    return r


def _exfil(proxy):
    return read_threats(proxy, lambda t: t.get("threat_type") == "EXFIL")


def _key():
    return fresh_key("anthropic")


def _check_secret_nowhere(proxy, key):
    assert_secret_nowhere(proxy, key.secret, core=key.core)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_injected_from_env_while_agent_sends_placeholder(policy_proxy, scheme):
    key = _key()
    p = policy_proxy({"routes": [_route()]}, extra_env={ENV: key.secret})
    r = post(
        p,
        f"{scheme}://example.test/echo?headers=sha256&probe=route",
        data=b'{"prompt": "hello"}',
        headers={"Authorization": "Bearer placeholder", "X-Api-Key": "placeholder-key", "Content-Type": "application/json"},
    )
    assert_passed(r)
    echo = r.json()
    # the real key replaced the agent's placeholder (one value, not appended)
    assert echo["headers"].get("x-api-key") == sha256(key.secret.encode()), "the upstream did not get the real key"
    assert "authorization" not in echo["headers"], "the agent's Authorization was not stripped"
    assert echo["body"] == '{"prompt": "hello"}'
    # never reported as a leak
    flow = p.wait_flows(lambda f: "probe=route" in (f.get("url") or ""))[0]
    assert flow["action"] == "allowed", flow
    assert _exfil(p) == [], f"the injected key was reported as a leak: {_exfil(p)}"
    # at --log 2 the egress_request shows what went upstream: injected header masked or absent,
    # the agent's placeholder Authorization gone
    ev = wait_egress(p, "egress_request", host="example.test", path_prefix="/echo")[0]
    headers = {k.lower(): v for k, v in (ev.get("headers") or {}).items()}
    assert "authorization" not in headers, f"egress_request still shows the agent's Authorization: {headers}"
    assert key.secret not in json.dumps(ev)
    assert "placeholder" not in json.dumps(headers), headers
    wait_egress(p, "egress_response", host="example.test")
    rh = flow.get("request_headers") or {}
    assert key.secret not in json.dumps(rh)
    _check_secret_nowhere(p, key)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_injected_from_file_into_authorization(policy_proxy, tmp_path, scheme):
    key = _key()
    value_file = tmp_path / "route-secret.txt"
    value_file.write_text(f"Bearer {key.secret}")
    route = {"host": "example.test", "inject": {"header": "authorization", "value_file": str(value_file)}}
    p = policy_proxy({"routes": [route]})
    r = get(p, f"{scheme}://example.test/echo?headers=sha256&probe=file", headers={"Authorization": "Bearer placeholder"})
    assert_passed(r)
    assert r.json()["headers"].get("authorization") == sha256(f"Bearer {key.secret}".encode())
    p.wait_flows(lambda f: "probe=file" in (f.get("url") or ""))
    wait_egress(p, "egress_request", host="example.test", path_prefix="/echo")
    assert _exfil(p) == [], _exfil(p)
    _check_secret_nowhere(p, key)


def test_explicit_strip_list(policy_proxy):
    key = _key()
    p = policy_proxy({"routes": [_route(strip=["x-agent-token", "authorization"])]}, extra_env={ENV: key.secret})
    r = get(
        p,
        "https://example.test/echo?headers=sha256",
        headers={"Authorization": "Bearer placeholder", "X-Agent-Token": "placeholder", "X-Other": "kept"},
    )
    assert_passed(r)
    h = r.json()["headers"]
    assert "x-agent-token" not in h and "authorization" not in h, h
    assert h.get("x-api-key") == sha256(key.secret.encode()), h
    assert h.get("x-other") == sha256(b"kept"), "a header not in strip must pass untouched"
    _check_secret_nowhere(p, key)


def test_route_applies_only_to_its_host(policy_proxy, upstreams):
    key = _key()
    p = policy_proxy({"routes": [_route(host="*.routed.test")]}, extra_env={ENV: key.secret})
    # a glob host gets the key
    h = get(p, "http://api.routed.test/echo?headers=sha256", headers={"Authorization": "Bearer placeholder"}).json()["headers"]
    assert h.get("x-api-key") == sha256(key.secret.encode()), h
    assert "authorization" not in h
    # another host gets neither the key nor a stripped Authorization
    h = get(p, "http://example.test/echo?headers=sha256", headers={"Authorization": "Bearer placeholder"}).json()["headers"]
    assert "x-api-key" not in h, "a route injected its key into another host's request"
    assert h.get("authorization") == sha256(b"Bearer placeholder")
    _check_secret_nowhere(p, key)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_allow_paths(policy_proxy, scheme):
    key = _key()
    p = policy_proxy({"routes": [_route(allow_paths=["/echo*"])]}, extra_env={ENV: key.secret})
    assert_passed(get(p, f"{scheme}://example.test/echo/ok?headers=sha256"))
    r = get(p, f"{scheme}://example.test/hello", headers={"Authorization": "Bearer placeholder"})
    doc = assert_blocked(r, rule_prefix="route")
    t = wait_policy_threat(p, doc["rule"])
    assert t["dest"] == f"example.test:{80 if scheme == 'http' else 443}", t
    flow = p.wait_flows(lambda f: url_path(f) == "/hello")[0]
    assert flow["action"] == "blocked", flow
    _check_secret_nowhere(p, key)


def test_same_key_from_the_agent_is_a_leak(policy_proxy):
    """Control: the key shape used above is one detection blocks when the agent itself sends it."""
    key = _key()
    p = policy_proxy()
    r = post(p, "http://example.test/echo?headers=sha256", data=json.dumps({"k": key.secret}))
    assert_blocked(r, key.rule, reason="credential-leak")


def test_route_to_llm_provider_keeps_llm_record_clean(llm_proxy, llm_up):
    """The primary use: the agent's SDK holds a placeholder; airlock injects the real Anthropic
    key on the way to api.anthropic.com; llm.jsonl, flows and stderr never see it."""
    key = _key()
    route = {"host": "api.anthropic.com", "inject": {"header": "x-api-key", "value_env": ENV}}
    p = llm_proxy({"allow_private": ["127.0.0.0/8"], "routes": [route]}, extra_env={ENV: key.secret})
    c = anthropic_client(proxy=p, api_key="placeholder-not-a-key")
    r = llm_up.reply(text="Injected hello.", model="claude-sonnet-4-5-20250929")
    msg = c.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": r.prompt()}])
    assert msg.content[0].text == "Injected hello."
    rec = llm_up.wait_received(r.tag)[0]
    assert rec.headers.get("x-api-key") == key.secret, "the provider did not get the real key"
    assert "authorization" not in rec.headers, "the SDK's placeholder Authorization reached the provider"
    wait_llm(p)
    assert _exfil(p) == []
    _check_secret_nowhere(p, key)


# --------------------------------------------------------------------------- config check


def _check(path, env=None):
    r = airlock("config", "check", path, env=env)
    lines = r.stderr.strip().splitlines()
    return r, lines


def test_config_check_value_env_unset(tmp_path):
    var = "AIRLOCK_E2E_UNSET_ROUTE_VAR"
    path = tmp_path / "routes.yaml"
    path.write_text(json.dumps({"routes": [{"host": "example.test", "inject": {"header": "x-api-key", "value_env": var}}]}))
    r, lines = _check(path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and var in lines[0], r.stderr
    env = clean_environ()
    env[var] = "set-now"
    r, _ = _check(path, env)
    assert r.returncode == 0, r.stderr


def test_config_check_value_file_missing(tmp_path):
    missing = tmp_path / "no-such-secret-file.txt"
    path = tmp_path / "routes.yaml"
    path.write_text(json.dumps({"routes": [{"host": "example.test", "inject": {"header": "x-api-key", "value_file": str(missing)}}]}))
    r, lines = _check(path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and "no-such-secret-file.txt" in lines[0], r.stderr
    missing.write_text("a-value")
    r, _ = _check(path)
    assert r.returncode == 0, r.stderr


def test_start_refuses_unset_value_env(tmp_path):
    var = "AIRLOCK_E2E_UNSET_START_VAR"
    path = tmp_path / "routes.yaml"
    path.write_text(json.dumps({"routes": [{"host": "example.test", "inject": {"header": "x-api-key", "value_env": var}}]}))
    r = airlock("start", "--listen", "127.0.0.1:0", "--data-dir", tmp_path / "d", "--config", path, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert var in r.stderr


@pytest.mark.parametrize(
    "route,pattern",
    [
        ({"host": "example.test", "inject": {"header": "x-api-key"}}, r"inject|value_env|value_file"),
        ({"host": "example.test", "inject": {"header": "x-api-key", "value_env": "A", "value_file": "/x"}}, r"value_env|value_file"),
        ({"inject": {"header": "x-api-key", "value_env": "A"}}, r"host"),
        ({"host": "example.test", "inject": {"header": "x-api-key", "value_env": "A"}, "bogus": 1}, r"bogus"),
        ({"host": "example.test", "inject": {"header": "x-api-key", "value_env": "A"}, "allow_paths": "/v1"}, r"allow_paths"),
    ],
    ids=["no_value_source", "two_value_sources", "no_host", "unknown_key", "allow_paths_not_a_list"],
)
def test_config_check_rejects_bad_routes(tmp_path, route, pattern):
    path = tmp_path / "routes.yaml"
    path.write_text(json.dumps({"routes": [route]}))
    env = clean_environ()
    env["A"] = "x"
    r, lines = _check(path, env)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1, r.stderr
    assert re.search(pattern, lines[0]) and "routes" in lines[0], lines[0]
