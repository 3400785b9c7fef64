"""Outbound redaction for LLM calls (issue 10, item 5; SPEC 4, 6: `detect.llm_prompt_secrets:
redact`, the default). A credential in a request to an LLM API is replaced by
`[REDACTED:<rule>]` in the JSON and the request goes on: the model never sees the secret and a
session whose history holds a key goes on. Everywhere else the default stays block."""

from __future__ import annotations

import json

import pytest

from detect_fixtures import *  # noqa: F401,F403
from detect_fixtures import assert_no_leak, fresh_key
from llm_fixtures import *  # noqa: F401,F403
from llm_fixtures import anthropic_client, gateway_url, openai_client, provider_key
from records import wait_threats


def _converse(provider, c, r, history):
    if provider == "anthropic":
        return c.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=history).content[0].text
    return c.chat.completions.create(model="gpt-4o", messages=history).choices[0].message.content


def _check_redacted_body(rec, key):
    """What the provider received: valid JSON, the placeholder, no key, a true length."""
    assert key.secret.encode() not in rec.body, "the provider received the secret"
    doc = json.loads(rec.body)  # still a JSON document
    assert f"[REDACTED:{key.rule}]".encode() in rec.body, rec.body[:500]
    length = rec.headers.get("content-length")
    if length is not None:
        assert int(length) == len(rec.body), (length, len(rec.body))
    return doc


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_a_session_whose_history_holds_a_key_goes_on(llm_gateway, llm_up, provider):
    p = llm_gateway()
    c = anthropic_client(gateway_url(p)) if provider == "anthropic" else openai_client(gateway_url(p))
    key = fresh_key("github")
    r = llm_up.reply(text="Noted.")
    history = [{"role": "user", "content": r.prompt(f"Here is my token {key.text}, push the fix.")}]
    for turn in range(3):
        answer = _converse(provider, c, r, history)
        assert answer == "Noted."
        history += [{"role": "assistant", "content": answer},
                    {"role": "user", "content": r.prompt(f"Turn {turn}: go on.")}]
    received = llm_up.wait_received(r.tag, count=3)
    for rec in received:
        _check_redacted_body(rec, key)
    t = wait_threats(p, lambda t: t.get("pattern") == key.rule)[0]
    assert (t["direction"], t["threat_type"], t["action"]) == ("outbound", "EXFIL", "redacted"), t
    assert t["dest"] == f"127.0.0.1:{llm_up.http_port}", t
    flows = p.wait_flows(lambda f: f.get("listener") == "llm", count=3)
    assert all(f["action"] == "redacted" and f["status"] == 200 for f in flows), flows
    assert_no_leak(p, key)


def test_a_prompt_to_a_provider_host_is_redacted_through_the_proxy(llm_proxy, llm_up):
    p = llm_proxy()
    c = anthropic_client(proxy=p, api_key=provider_key("anthropic"))
    key = fresh_key("anthropic")
    r = llm_up.reply(text="ok")
    msg = c.messages.create(model="claude-sonnet-4-5", max_tokens=8,
                            messages=[{"role": "user", "content": r.prompt(f"my other key: {key.text}")}])
    assert msg.content[0].text == "ok"
    _check_redacted_body(llm_up.wait_received(r.tag)[0], key)
    t = wait_threats(p, lambda t: t.get("pattern") == key.rule and t.get("action") == "redacted")[0]
    assert (t["threat_type"], t["protocol"], t["dest"]) == ("EXFIL", "https", "api.anthropic.com:443"), t
    assert_no_leak(p, key)


def test_a_pem_key_pasted_into_a_prompt_is_redacted_whole(llm_gateway, llm_up):
    p = llm_gateway()
    c = anthropic_client(gateway_url(p))
    key = fresh_key("pem")
    r = llm_up.reply(text="ok")
    c.messages.create(model="claude-sonnet-4-5", max_tokens=8,
                      messages=[{"role": "user", "content": r.prompt(f"why does this fail?\n{key.text}\n")}])
    rec = llm_up.wait_received(r.tag)[0]
    doc = _check_redacted_body(rec, key)
    content = doc["messages"][0]["content"]
    assert "BEGIN" not in content.split("[REDACTED:")[1], content
    assert_no_leak(p, key)


def test_block_stays_the_default_elsewhere(detect_proxy, detect_up):
    """The same prompt JSON to a host that is not an LLM API is refused."""
    p = detect_proxy()
    key = fresh_key("github")
    import httpx

    with httpx.Client(proxy=p.url, verify=p.ssl_ctx(), trust_env=False, timeout=20) as h:
        r = h.post("https://example.test/v1/messages",
                   json={"messages": [{"role": "user", "content": f"token {key.text}"}]})
    assert r.status_code == 403 and r.headers["x-airlock-block-reason"] == "credential-leak"


def test_llm_prompt_secrets_block_refuses_the_call(llm_gateway, llm_up):
    import anthropic

    p = llm_gateway({"detect": {"llm_prompt_secrets": "block"}})
    c = anthropic_client(gateway_url(p))
    key = fresh_key("github")
    r = llm_up.reply(text="never")
    with pytest.raises(anthropic.PermissionDeniedError):
        c.messages.create(model="claude-sonnet-4-5", max_tokens=8,
                          messages=[{"role": "user", "content": r.prompt(key.text)}])
    assert llm_up.received(r.tag) == []
