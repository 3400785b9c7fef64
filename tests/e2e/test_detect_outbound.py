"""Detection, outbound: a credential leaving is blocked before anything reaches the upstream
(SPEC 4, 5, 6: `detect.outbound_secrets: block` by default)."""

from __future__ import annotations

import base64
import gzip
import json
import time
from urllib.parse import quote

import pytest

from detect_fixtures import *  # noqa: F401,F403
from detect_fixtures import assert_credential_block, assert_no_leak, fresh_key, send_raw
from e2e_helpers import requests_session, url_path
from records import read_threats, wait_threats

SCHEMES = ["http", "https"]


def _port(scheme):
    return 80 if scheme == "http" else 443


def _flow_for(proxy, tag, count=1):
    return proxy.wait_flows(lambda f: f"/t/{tag}" in (f.get("url") or ""), count=count)


def check_blocked(proxy, up, tag, status, headers, body, key, scheme, *, host="example.test", method="POST"):
    """Everything a user sees of a blocked outbound credential."""
    assert_credential_block(status, headers, body, key)
    # the flow record
    flow = _flow_for(proxy, tag)[0]
    assert flow["action"] == "blocked", flow
    assert flow["status"] == 403, flow
    reason = str(flow.get("reason") or "")
    assert key.rule in reason or key.name in reason, f"flow reason does not name the rule {key.rule}: {reason!r}"
    # nothing reached the upstream (the flow record is written after the 403 went out)
    time.sleep(0.3)
    assert up.hits(tag) == [], f"the upstream received the blocked request: {up.hits(tag)}"
    # the threat record
    t = wait_threats(proxy, lambda t: t.get("pattern") == key.rule)[0]
    assert t["direction"] == "outbound", t
    assert t["threat_type"] == "EXFIL", t
    assert t["action"] == "blocked", t
    assert t["protocol"] == scheme, t
    assert t["dest"] == f"{host}:{_port(scheme)}", t
    assert t["method"] == method, t
    assert str(t["path"]).startswith(f"/t/{tag}"), t
    assert t["family"] == key.family, t
    assert isinstance(t.get("snippet"), str) and len(t["snippet"]) <= 200, t
    assert_no_leak(proxy, key)
    return flow, t


def _session_post(proxy, url, **kw):
    with requests_session(proxy) as s:
        return s.post(url, timeout=20, **kw)


# --------------------------------------------------------------------------- where the key is


@pytest.mark.parametrize("scheme", SCHEMES)
def test_key_in_json_chat_body(detect_proxy, detect_up, scheme):
    p = detect_proxy()
    key = fresh_key("github")
    tag = detect_up.new_tag()
    body = {"messages": [{"role": "user", "content": f"my key is {key.text}"}]}
    r = _session_post(p, f"{scheme}://example.test/t/{tag}/v1/chat", json=body)
    check_blocked(p, detect_up, tag, r.status_code, r.headers, r.content, key, scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_key_in_gzip_body(detect_proxy, detect_up, scheme):
    p = detect_proxy()
    key = fresh_key("anthropic")
    tag = detect_up.new_tag()
    raw = json.dumps({"messages": [{"role": "user", "content": f"use {key.text} please"}]}).encode()
    r = _session_post(
        p,
        f"{scheme}://example.test/t/{tag}",
        data=gzip.compress(raw),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    check_blocked(p, detect_up, tag, r.status_code, r.headers, r.content, key, scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_key_in_non_auth_header(detect_proxy, detect_up, scheme):
    p = detect_proxy()
    key = fresh_key("github")
    tag = detect_up.new_tag()
    with requests_session(p) as s:
        r = s.get(f"{scheme}://example.test/t/{tag}", headers={"X-Note": key.text}, timeout=20)
    check_blocked(p, detect_up, tag, r.status_code, r.headers, r.content, key, scheme, method="GET")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_key_in_query_string(detect_proxy, detect_up, scheme):
    p = detect_proxy()
    key = fresh_key("github")
    tag = detect_up.new_tag()
    with requests_session(p) as s:
        r = s.get(f"{scheme}://example.test/t/{tag}?token={key.text}", timeout=20)
    check_blocked(p, detect_up, tag, r.status_code, r.headers, r.content, key, scheme, method="GET")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_key_url_encoded_in_query(detect_proxy, detect_up, scheme):
    p = detect_proxy()
    key = fresh_key("aws_secret")
    assert "+" in key.secret or "/" in key.secret, f"want a key with + or / in it: {key}"
    tag = detect_up.new_tag()
    encoded = quote(key.text, safe="")
    assert "%2B" in encoded or "%2F" in encoded
    assert key.secret not in encoded
    with requests_session(p) as s:
        r = s.get(f"{scheme}://example.test/t/{tag}?q={encoded}", timeout=20)
    check_blocked(p, detect_up, tag, r.status_code, r.headers, r.content, key, scheme, method="GET")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_pem_private_key_in_json_string(detect_proxy, detect_up, scheme):
    p = detect_proxy()
    key = fresh_key("pem")
    tag = detect_up.new_tag()
    data = json.dumps({"messages": [{"role": "user", "content": f"here is the deploy key:\n{key.text}\n"}]})
    assert "\\n" in data and "\n" not in data  # the PEM's newlines are JSON escapes on the wire
    r = _session_post(p, f"{scheme}://example.test/t/{tag}", data=data, headers={"Content-Type": "application/json"})
    check_blocked(p, detect_up, tag, r.status_code, r.headers, r.content, key, scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_base64_encoded_key_in_body(detect_proxy, detect_up, scheme):
    p = detect_proxy()
    key = fresh_key("github")
    tag = detect_up.new_tag()
    encoded = base64.b64encode(f"GITHUB_TOKEN={key.text}\n".encode()).decode()
    r = _session_post(p, f"{scheme}://example.test/t/{tag}", json={"file": ".env", "content_b64": encoded})
    check_blocked(p, detect_up, tag, r.status_code, r.headers, r.content, key, scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_key_split_across_chunks_of_a_streamed_upload(detect_proxy, detect_up, scheme):
    p = detect_proxy()
    key = fresh_key("github")
    tag = detect_up.new_tag()
    body = ("{\"messages\":[{\"role\":\"user\",\"content\":\"" + "a " * 2000 + f"my key is {key.text} ok\"}}]}}").encode()
    cut = body.index(key.secret.encode()) + len(key.secret) // 2
    part1, part2 = body[:cut], body[cut:]

    def chunk(b: bytes) -> bytes:
        return b"%x\r\n" % len(b) + b + b"\r\n"

    head = (
        f"POST {{target}}/t/{tag} HTTP/1.1\r\nHost: example.test\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    resp = send_raw(p, scheme, "example.test", head, [chunk(part1), chunk(part2) + b"0\r\n\r\n"], pause=0.5)
    check_blocked(p, detect_up, tag, resp.status, resp.headers, resp.body, key, scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_late_key_in_large_streamed_body_aborts_upstream(detect_proxy, detect_up, scheme):
    p = detect_proxy({"max_scan_bytes": 8 * 1024 * 1024, "max_hold_bytes": 256 * 1024})
    key = fresh_key("github")
    tag = detect_up.new_tag()
    total = 5 * 1024 * 1024
    tail = f" my key is {key.text}\n".encode()
    body = b"lorem ipsum dolor sit amet " * ((total - len(tail)) // 27)
    body += b"x" * (total - len(tail) - len(body)) + tail
    assert len(body) == total
    head = (
        f"POST {{target}}/t/{tag} HTTP/1.1\r\nHost: example.test\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {total}\r\nConnection: close\r\n\r\n"
    )
    parts = [body[i : i + 256 * 1024] for i in range(0, total, 256 * 1024)]
    resp = send_raw(p, scheme, "example.test", head, parts, timeout=20)
    # the client is told (it had sent everything when the key was found)
    assert_credential_block(resp.status, resp.headers, resp.body, key)
    flow = _flow_for(p, tag)[0]
    reason = str(flow.get("reason") or "")
    assert flow["action"] == "blocked" or "abort" in reason.lower(), flow
    assert key.rule in reason or key.name in reason, flow
    scan = flow.get("scan") or {}
    assert scan.get("truncated") in (False, None), f"8 MB max_scan_bytes does not cut a 5 MB body: {scan}"
    # the upstream never got the whole body (and never the key)
    hits = detect_up.wait_settled(tag)
    # the body streamed (max_hold_bytes is far below its size): the upstream saw the start of it
    assert len(hits) == 1 and hits[0].body_len > 0, (
        f"with max_hold_bytes 256 KiB a 5 MB body must stream to the upstream: {[(h.body_len, h.error) for h in hits]}"
    )
    for h in hits:
        assert h.body_len < total and not h.complete, (
            f"the upstream received the complete body ({h.body_len} bytes) although a key was found in it"
        )
        assert key.secret.encode() not in bytes(h.body)
    t = wait_threats(p, lambda t: t.get("pattern") == key.rule)[0]
    assert t["action"] == "blocked" and t["direction"] == "outbound", t
    assert_no_leak(p, key)


# --------------------------------------------------------------------------- host binding


def test_anthropic_key_in_its_header_to_its_host_passes(detect_proxy, detect_up):
    p = detect_proxy()
    key = fresh_key("anthropic")
    tag = detect_up.new_tag()
    with requests_session(p) as s:
        r = s.post(
            f"https://api.anthropic.com/t/{tag}/v1/messages",
            headers={"x-api-key": key.secret, "anthropic-version": "2023-06-01"},
            json={"model": "claude-x", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
            timeout=20,
        )
    assert r.status_code == 200, (r.status_code, r.headers, r.text[:300])
    hit = detect_up.wait_hits(tag)[0]
    assert hit.headers.get("x-api-key") == key.secret, "the key did not reach its issuer intact"
    flow = _flow_for(p, tag)[0]
    assert flow["action"] == "allowed", flow
    assert key.rule in json.dumps(flow), f"the flow record does not note the credential ({key.rule}): {flow}"
    time.sleep(0.3)
    assert read_threats(p) == [], read_threats(p)
    assert_no_leak(p, key)


@pytest.mark.parametrize("scheme_word", ["Bearer", "token"])
def test_github_token_in_authorization_to_api_github_passes(detect_proxy, detect_up, scheme_word):
    p = detect_proxy()
    key = fresh_key("github")
    tag = detect_up.new_tag()
    with requests_session(p) as s:
        r = s.get(
            f"https://api.github.com/t/{tag}/user", headers={"Authorization": f"{scheme_word} {key.secret}"}, timeout=20
        )
    assert r.status_code == 200, (r.status_code, r.headers, r.text[:300])
    hit = detect_up.wait_hits(tag)[0]
    assert hit.headers.get("authorization") == f"{scheme_word} {key.secret}"
    flow = _flow_for(p, tag)[0]
    assert flow["action"] == "allowed", flow
    assert key.rule in json.dumps(flow), f"the flow record does not note the credential ({key.rule}): {flow}"
    time.sleep(0.3)
    assert read_threats(p) == [], read_threats(p)
    assert_no_leak(p, key)


def test_issuer_key_in_body_to_issuer_host_is_blocked(detect_proxy, detect_up):
    """Host binding covers auth headers only. (api.anthropic.com is an LLM API, where the
    default `llm_prompt_secrets: redact` would replace the key and let the call go on:
    test_llm_redact.py; here prompts are handled like any body.)"""
    p = detect_proxy({"detect": {"llm_prompt_secrets": "block"}})
    key = fresh_key("anthropic")
    tag = detect_up.new_tag()
    with requests_session(p) as s:
        r = s.post(
            f"https://api.anthropic.com/t/{tag}/v1/messages",
            headers={"x-api-key": key.secret},
            json={"messages": [{"role": "user", "content": f"remember this: {key.secret}"}]},
            timeout=20,
        )
    check_blocked(p, detect_up, tag, r.status_code, r.headers, r.content, key, "https", host="api.anthropic.com")


@pytest.mark.parametrize(
    "role,header", [("anthropic", "x-api-key"), ("github", "authorization")], ids=["anthropic", "github"]
)
def test_issuer_header_to_another_host_is_blocked(detect_proxy, detect_up, role, header):
    p = detect_proxy()
    key = fresh_key(role)
    tag = detect_up.new_tag()
    value = key.secret if header == "x-api-key" else f"Bearer {key.secret}"
    with requests_session(p) as s:
        r = s.get(f"https://example.test/t/{tag}", headers={header: value}, timeout=20)
    check_blocked(p, detect_up, tag, r.status_code, r.headers, r.content, key, "https", method="GET")


# --------------------------------------------------------------------------- off, disabled, negatives


def test_outbound_secrets_off_lets_the_key_through(detect_proxy, detect_up):
    p = detect_proxy({"detect": {"outbound_secrets": "off"}})
    key = fresh_key("github")
    tag = detect_up.new_tag()
    r = _session_post(p, f"https://example.test/t/{tag}", json={"content": f"my key is {key.text}"})
    assert r.status_code == 200, (r.status_code, r.text[:300])
    hit = detect_up.wait_hits(tag)[0]
    assert key.secret.encode() in bytes(hit.body)
    flow = _flow_for(p, tag)[0]
    assert flow["action"] == "allowed", flow
    time.sleep(0.3)
    assert [t for t in read_threats(p) if t.get("direction") == "outbound"] == [], read_threats(p)


def test_disabled_pattern_passes_while_others_block(detect_proxy, detect_up):
    gh = fresh_key("github")
    p = detect_proxy({"detect": {"disabled_patterns": [gh.rule]}})
    tag = detect_up.new_tag()
    r = _session_post(p, f"https://example.test/t/{tag}", json={"content": f"my key is {gh.text}"})
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert gh.secret.encode() in bytes(detect_up.wait_hits(tag)[0].body)
    # another rule still blocks
    ant = fresh_key("anthropic")
    tag2 = detect_up.new_tag()
    r = _session_post(p, f"https://example.test/t/{tag2}", json={"content": f"my key is {ant.text}"})
    check_blocked(p, detect_up, tag2, r.status_code, r.headers, r.content, ant, "https")
    assert [t for t in read_threats(p) if t.get("pattern") == gh.rule] == []


HARD_NEGATIVES = "\n".join(
    [
        "request ids: 123e4567-e89b-12d3-a456-426614174000 9f1c2d3e-4b5a-6789-abcd-ef0123456789",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b and c1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:5d41402abc4b2a76b9719d911017c592ae2f5e0f0b0b1d6a3c6f0e6d2b7a4c1f",
        "aws docs example: AKIAIOSFODNN7EXAMPLE",
        "cleanup: rm -rf ./build && make",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGw3tJ6mHc8hZ9bqv6Y0Qk3YtL1oNn9m2b5dXwz1pQ7r dev@laptop",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7vbqajDhA0fQk0Yx3nMZ0q7pKcD2b6e0w9s5XkF1a user@host",
    ]
)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_hard_negatives_pass_both_ways(detect_proxy, detect_up, scheme):
    p = detect_proxy()
    tag = detect_up.new_tag()
    payload = json.dumps({"messages": [{"role": "user", "content": HARD_NEGATIVES}]})
    r = _session_post(p, f"{scheme}://example.test/t/{tag}", data=payload, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, (r.status_code, r.headers, r.text[:300])
    assert bytes(detect_up.wait_hits(tag)[0].body) == payload.encode()
    # and coming back
    path = detect_up.canned(HARD_NEGATIVES, content_type="text/plain")
    with requests_session(p) as s:
        r = s.get(f"{scheme}://example.test{path}", timeout=20)
    assert r.status_code == 200
    assert r.text == HARD_NEGATIVES
    assert "x-airlock-redacted" not in {k.lower() for k in r.headers}
    flows = p.wait_flows(lambda f: url_path(f) == path or f"/t/{tag}" in (f.get("url") or ""), count=2)
    assert all(f["action"] == "allowed" for f in flows), flows
    time.sleep(0.3)
    assert read_threats(p) == [], read_threats(p)
