"""Sanity checks of the fake LLM provider (llm_upstream.py) with the official SDKs, without
airlock in the path. If these fail, the fixtures are broken, not the proxy."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import pytest

from llm_fixtures import *  # noqa: F401,F403
from llm_fixtures import anthropic_client, consume_stream, openai_client, sdk_http_client


def _base(llm_up, scheme):
    return llm_up.http_url if scheme == "http" else llm_up.https_url


def _direct_anthropic(llm_up, certs, scheme):
    c = anthropic_client(_base(llm_up, scheme))
    if scheme == "https":
        c = c.with_options(http_client=sdk_http_client(verify=certs.upstream_client_ctx()))
    return c


def _direct_openai(llm_up, certs, scheme):
    c = openai_client(_base(llm_up, scheme))
    if scheme == "https":
        c = c.with_options(http_client=sdk_http_client(verify=certs.upstream_client_ctx()))
    return c


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_anthropic_sdk_direct(llm_up, certs, scheme):
    c = _direct_anthropic(llm_up, certs, scheme)
    r = llm_up.reply(text="Hi there, human.", model="claude-sonnet-4-5-20250929", input_tokens=21, output_tokens=5,
                     cache_read_tokens=3, cache_write_tokens=4)
    msg = c.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": r.prompt()}])
    assert msg.content[0].text == "Hi there, human."
    assert msg.model == "claude-sonnet-4-5-20250929"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (21, 5)
    assert (msg.usage.cache_read_input_tokens, msg.usage.cache_creation_input_tokens) == (3, 4)
    rec = llm_up.wait_received(r.tag)[0]
    assert rec.path == "/v1/messages" and rec.tls == (scheme == "https")
    assert rec.json["model"] == "claude-sonnet-4-5"
    # this SDK generation sends the key as a bearer token; older ones as x-api-key
    assert "fakekey-" in rec.headers.get("x-api-key", "") + rec.headers.get("authorization", "")
    assert json.loads(rec.response)["content"][0]["text"] == "Hi there, human."


def test_anthropic_sdk_stream_hold(llm_up, certs):
    c = _direct_anthropic(llm_up, certs, "http")
    r = llm_up.reply(deltas=["Hel", "lo ", "world"], model="claude-x-1", input_tokens=9, output_tokens=3,
                     cache_read_tokens=2, cache_write_tokens=1, hold=True)
    stream = c.messages.create(model="claude-x", max_tokens=64, stream=True,
                               messages=[{"role": "user", "content": r.prompt()}])
    res = consume_stream(stream, lambda e: getattr(getattr(e, "delta", None), "text", None), r)
    assert res.first_before_release and not res.first_hold_timed_out
    assert res.texts == ["Hel", "lo ", "world"]
    types = [e.type for e in res.events]
    assert types == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"], types
    assert res.events[0].message.usage.input_tokens == 9
    assert res.events[0].message.usage.cache_read_input_tokens == 2
    assert res.events[0].message.usage.cache_creation_input_tokens == 1
    assert res.events[-2].usage.output_tokens == 3
    assert res.events[0].message.model == "claude-x-1"
    # the helper stream as well
    r2 = llm_up.reply(text="one two three four")
    with c.messages.stream(model="claude-x", max_tokens=64, messages=[{"role": "user", "content": r2.prompt()}]) as s:
        assert "".join(s.text_stream) == "one two three four"
        final = s.get_final_message()
    assert final.usage.output_tokens == 7


def test_anthropic_hold_times_out(llm_up, certs):
    c = _direct_anthropic(llm_up, certs, "http")
    r = llm_up.reply(deltas=["a", "b"], hold=True, hold_timeout=0.3)
    t0 = time.monotonic()
    raw = c.messages.with_raw_response.create(model="m", max_tokens=8, stream=True,
                                              messages=[{"role": "user", "content": r.prompt()}])
    body = raw.http_response.read()
    assert time.monotonic() - t0 >= 0.3
    assert r.hold_timed_out
    assert body == bytes(llm_up.wait_received(r.tag)[0].response)


def test_anthropic_count_tokens_and_error(llm_up, certs):
    c = _direct_anthropic(llm_up, certs, "http")
    r = llm_up.reply(input_tokens=42)
    n = c.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": r.prompt()}])
    assert n.input_tokens == 42
    assert llm_up.wait_received(r.tag)[0].path == "/v1/messages/count_tokens"
    e = llm_up.reply(status=429, error_message="slow down")
    with pytest.raises(anthropic.RateLimitError):
        c.messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": e.prompt()}])


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_openai_chat_direct(llm_up, certs, scheme):
    c = _direct_openai(llm_up, certs, scheme)
    r = llm_up.reply(text="Hello!", model="gpt-4o-2024-08-06", input_tokens=30, output_tokens=4, cache_read_tokens=10)
    comp = c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": r.prompt()}])
    assert comp.choices[0].message.content == "Hello!"
    assert comp.model == "gpt-4o-2024-08-06"
    assert comp.usage.prompt_tokens == 30 and comp.usage.completion_tokens == 4
    assert comp.usage.prompt_tokens_details.cached_tokens == 10
    assert llm_up.wait_received(r.tag)[0].headers["authorization"].startswith("Bearer fakekey-")


def test_openai_chat_stream_direct(llm_up, certs):
    c = _direct_openai(llm_up, certs, "http")
    r = llm_up.reply(deltas=["A", "B", "C"], model="gpt-4o-mini-2024-07-18", input_tokens=8, output_tokens=3, hold=True)
    stream = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": r.prompt()}],
                                       stream=True, stream_options={"include_usage": True})
    res = consume_stream(stream, lambda ch: ch.choices[0].delta.content if ch.choices else None, r)
    assert res.first_before_release and not res.first_hold_timed_out
    assert res.text == "ABC"
    assert res.events[-1].choices == [] and res.events[-1].usage.prompt_tokens == 8
    assert res.events[-1].model == "gpt-4o-mini-2024-07-18"
    assert bytes(llm_up.wait_received(r.tag)[0].response).endswith(b"data: [DONE]\n\n")


def test_openai_responses_and_embeddings_direct(llm_up, certs):
    c = _direct_openai(llm_up, certs, "http")
    r = llm_up.reply(text="resp text", model="gpt-4.1-2025-04-14", input_tokens=15, output_tokens=2, cache_read_tokens=5)
    resp = c.responses.create(model="gpt-4.1", input=r.prompt())
    assert resp.output_text == "resp text"
    assert resp.usage.input_tokens == 15 and resp.usage.input_tokens_details.cached_tokens == 5
    r = llm_up.reply(deltas=["x", "y"], hold=True)
    stream = c.responses.create(model="gpt-4.1", input=r.prompt(), stream=True)
    res = consume_stream(stream, lambda e: e.delta if e.type == "response.output_text.delta" else None, r)
    assert res.first_before_release and res.text == "xy"
    assert res.events[-1].type == "response.completed" and res.events[-1].response.usage.output_tokens == 7
    r = llm_up.reply(model="text-embedding-3-small", input_tokens=6, embedding_dims=4)
    emb = c.embeddings.create(model="text-embedding-3-small", input=[r.prompt("a"), "b"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 4
    assert emb.usage.prompt_tokens == 6
    body = llm_up.wait_received(r.tag)[0].json
    assert body["encoding_format"] == "base64"  # the SDK's default
    emb = c.embeddings.create(model="text-embedding-3-small", input=r.prompt("c"), encoding_format="float")
    assert emb.data[0].embedding == pytest.approx([0.01, 0.02, 0.03, 0.04])


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_gemini_direct(llm_up, certs, scheme):
    base = _base(llm_up, scheme)
    r = llm_up.reply(deltas=["Gem", "ini ", "says hi"], model="gemini-2.5-flash-001", input_tokens=11,
                     output_tokens=6, cache_read_tokens=4, hold=True)
    body = {"contents": [{"role": "user", "parts": [{"text": r.prompt()}]}]}
    with httpx.Client(verify=certs.upstream_client_ctx(), trust_env=False, timeout=10) as c:
        doc = c.post(f"{base}/v1beta/models/gemini-2.5-flash:generateContent", json=body,
                     headers={"x-goog-api-key": "k"}).json()
        assert doc["candidates"][0]["content"]["parts"][0]["text"] == "Gemini says hi"
        assert doc["usageMetadata"]["promptTokenCount"] == 11
        assert doc["usageMetadata"]["cachedContentTokenCount"] == 4
        assert doc["modelVersion"] == "gemini-2.5-flash-001"
        events = []
        with c.stream("POST", f"{base}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", json=body) as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            for line in s.iter_lines():
                if line.startswith("data: "):
                    if not events:
                        assert not r.released and not r.hold_timed_out
                        r.release()
                    events.append(json.loads(line[6:]))
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == "Gemini says hi"
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] == 6
    rec = llm_up.received(r.tag)
    assert [x.path for x in rec] == ["/v1beta/models/gemini-2.5-flash:generateContent",
                                     "/v1beta/models/gemini-2.5-flash:streamGenerateContent"]
    assert rec[1].query == "alt=sse"
