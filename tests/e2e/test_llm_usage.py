"""LLM call records, cost and `airlock usage` (SPEC 9, issue 4), through the gateway.

Prices are USD per million tokens; each token kind is priced separately:
    cost = input*in + output*out + cache_read*cr + cache_write*cw  (all / 1e6)
with the token counts as the provider reports them. The exact-cost tests use model names that
no shipped table has (``acme-*``) or override a shipped entry with the reported model's exact
name, so the result does not depend on the shipped prices."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import anthropic
import httpx
import pytest

from e2e_helpers import airlock, cli_env
from llm_fixtures import *  # noqa: F401,F403
from llm_fixtures import (
    USAGE_FIELDS,
    anthropic_client,
    anthropic_text,
    check_llm_record,
    consume_stream,
    gateway_url,
    openai_client,
    usage_json,
)
from records import parse_jsonl, read_llm, wait_for, wait_llm

SPEC_PRICES = {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75}


def _cost(prices, i, o, cr=0, cw=0):
    return (i * prices["input"] + o * prices["output"] + cr * prices.get("cache_read", 0) + cw * prices.get("cache_write", 0)) / 1e6


def _claude(p, llm_up, *, requested="claude-sonnet-4-5", **reply):
    c = anthropic_client(gateway_url(p))
    r = llm_up.reply(**reply)
    c.messages.create(model=requested, max_tokens=16, messages=[{"role": "user", "content": r.prompt()}])
    return r


def _gpt(p, llm_up, *, requested="gpt-4o", **reply):
    c = openai_client(gateway_url(p))
    r = llm_up.reply(**reply)
    c.chat.completions.create(model=requested, messages=[{"role": "user", "content": r.prompt()}])
    return r


def _gemini(p, llm_up, *, requested="gemini-2.5-flash", stream=False, **reply):
    r = llm_up.reply(**reply)
    body = {"contents": [{"role": "user", "parts": [{"text": r.prompt()}]}]}
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    with httpx.Client(trust_env=False, timeout=20) as c:
        resp = c.post(f"{gateway_url(p)}/v1beta/models/{requested}:{method}", json=body, headers={"x-goog-api-key": "k"})
    assert resp.status_code == 200, resp.text[:300]
    return r


# --------------------------------------------------------------------------- the record


def test_stream_record_latency_and_ttft(llm_gateway, llm_up):
    p = llm_gateway()
    c = anthropic_client(gateway_url(p))
    r = llm_up.reply(deltas=["first", " second", " third"], model="claude-sonnet-4-5-20250929",
                     input_tokens=100, output_tokens=30, pause_after_first=0.6)
    t0 = time.monotonic()
    stream = c.messages.create(model="claude-sonnet-4-5", max_tokens=64, stream=True,
                               messages=[{"role": "user", "content": r.prompt()}])
    res = consume_stream(stream, anthropic_text)
    wall_ms = (time.monotonic() - t0) * 1000
    assert res.text == "first second third"
    rec = check_llm_record(wait_llm(p)[0], stream=True, status=200, input_tokens=100, output_tokens=30)
    assert rec["latency_ms"] >= 550, f"latency_ms {rec['latency_ms']} < the 600 ms the provider took: {rec}"
    assert rec["latency_ms"] <= wall_ms + 50, f"latency_ms {rec['latency_ms']} > the client's {wall_ms:.0f} ms: {rec}"
    assert rec["ttft_ms"] <= rec["latency_ms"] - 400, (
        f"ttft_ms {rec['ttft_ms']} is not the time to the first token (the rest came 600 ms later): {rec}"
    )
    ts = datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - ts).total_seconds()) < 60, rec


def test_cumulative_message_delta_usage_not_double_counted(llm_gateway, llm_up):
    """Anthropic's message_delta carries cumulative counts (input and cache too, as the API does):
    the record has them once."""
    p = llm_gateway()
    c = anthropic_client(gateway_url(p))
    r = llm_up.reply(deltas=["a", "b"], model="claude-sonnet-4-5-20250929", input_tokens=500, output_tokens=40,
                     cache_read_tokens=2000, cache_write_tokens=300, cumulative_delta_usage=True)
    consume_stream(c.messages.create(model="claude-sonnet-4-5", max_tokens=64, stream=True,
                                     messages=[{"role": "user", "content": r.prompt()}]), anthropic_text)
    check_llm_record(wait_llm(p)[0], input_tokens=500, output_tokens=40, cache_read_tokens=2000, cache_write_tokens=300)


def test_gemini_stream_usage_is_the_last_events(llm_gateway, llm_up):
    """Every Gemini stream event carries usageMetadata (running counts): the record takes the
    final counts, not their sum."""
    p = llm_gateway()
    _gemini(p, llm_up, stream=True, deltas=["one ", "two ", "three ", "four"], model="gemini-2.5-flash",
            input_tokens=40, output_tokens=12, cache_read_tokens=8)
    check_llm_record(
        wait_llm(p)[0], provider="google", stream=True, input_tokens=40, output_tokens=12, cache_read_tokens=8,
        cache_write_tokens=0,
    )


def test_error_status_is_recorded(llm_gateway, llm_up):
    p = llm_gateway()
    c = anthropic_client(gateway_url(p))
    r = llm_up.reply(status=429, error_message="rate limited")
    with pytest.raises(anthropic.RateLimitError):
        c.messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=[{"role": "user", "content": r.prompt()}])
    rec = wait_llm(p)[0]
    assert rec["status"] == 429 and rec["provider"] == "anthropic", rec
    assert rec["endpoint"] == "/v1/messages" and rec["requested_model"] == "claude-sonnet-4-5", rec


# --------------------------------------------------------------------------- prices


def test_prices_override_exact_cost(llm_gateway, llm_up):
    odd = {"input": 1, "output": 2, "cache_read": 0.5, "cache_write": 4}
    p = llm_gateway({"prices": {"claude-sonnet-4-5": SPEC_PRICES, "claude-haiku-4-5": odd}})
    _claude(p, llm_up, model="claude-sonnet-4-5", input_tokens=1000, output_tokens=500, cache_read_tokens=200,
            cache_write_tokens=100)
    rec = wait_llm(p)[0]
    # 0.003 + 0.0075 + 0.00006 + 0.000375
    check_llm_record(rec, model="claude-sonnet-4-5", cost_usd=0.010935)
    # a shipped model's price replaced by the config's
    _claude(p, llm_up, requested="claude-haiku-4-5", model="claude-haiku-4-5", input_tokens=1000, output_tokens=500,
            cache_read_tokens=200, cache_write_tokens=100)
    rec = wait_llm(p, lambda x: x.get("model") == "claude-haiku-4-5")[0]
    check_llm_record(rec, cost_usd=0.001 + 0.001 + 0.0001 + 0.0004)


def test_prices_longest_prefix_of_the_reported_model(llm_gateway, llm_up):
    short = {"input": 1, "output": 1, "cache_read": 1, "cache_write": 1}
    long = {"input": 10, "output": 20, "cache_read": 1, "cache_write": 2}
    p = llm_gateway({"prices": {"acme": short, "acme-large": long}})
    _claude(p, llm_up, requested="acme-large", model="acme-large-2025-06-01", input_tokens=1000, output_tokens=500,
            cache_read_tokens=200, cache_write_tokens=100)
    _claude(p, llm_up, requested="acme-large", model="acme-small-1", input_tokens=1000, output_tokens=500,
            cache_read_tokens=200, cache_write_tokens=100)
    big = wait_llm(p, lambda x: x.get("model") == "acme-large-2025-06-01")[0]
    check_llm_record(big, requested_model="acme-large", cost_usd=_cost(long, 1000, 500, 200, 100))
    small = wait_llm(p, lambda x: x.get("model") == "acme-small-1")[0]
    check_llm_record(small, requested_model="acme-large", cost_usd=_cost(short, 1000, 500, 200, 100))


def test_prices_for_openai_and_google_models(llm_gateway, llm_up):
    gpt = {"input": 2, "output": 8, "cache_read": 0.5, "cache_write": 0}
    gem = {"input": 0.5, "output": 4, "cache_read": 0.125, "cache_write": 0}
    p = llm_gateway({"prices": {"acme-gpt": gpt, "acme-gem": gem}})
    _gpt(p, llm_up, requested="acme-gpt", model="acme-gpt-1", input_tokens=1000, output_tokens=250)
    _gemini(p, llm_up, requested="acme-gem-pro", model="acme-gem-pro", input_tokens=2000, output_tokens=100)
    check_llm_record(wait_llm(p, lambda x: x.get("provider") == "openai")[0], model="acme-gpt-1", cost_usd=0.004)
    check_llm_record(wait_llm(p, lambda x: x.get("provider") == "google")[0], model="acme-gem-pro", cost_usd=0.0014)


def test_unknown_model_has_null_cost(llm_gateway, llm_up):
    p = llm_gateway()
    _claude(p, llm_up, requested="zz-mystery", model="zz-mystery-model-7", input_tokens=10, output_tokens=10)
    _gpt(p, llm_up, requested="zz-mystery", model="zz-mystery-gpt-7", input_tokens=10, output_tokens=10)
    for model in ("zz-mystery-model-7", "zz-mystery-gpt-7"):
        rec = wait_llm(p, lambda x, m=model: x.get("model") == m)[0]
        check_llm_record(rec, cost_usd=None, requested_model="zz-mystery", input_tokens=10, output_tokens=10)


@pytest.mark.parametrize(
    "provider,model",
    [
        ("anthropic", "claude-sonnet-4-5-20250929"),
        ("anthropic", "claude-opus-4-1-20250805"),
        ("openai", "gpt-4o-2024-08-06"),
        ("openai", "gpt-4.1-mini-2025-04-14"),
        ("google", "gemini-2.5-flash"),
        ("google", "gemini-2.5-pro"),
    ],
)
def test_shipped_price_table_knows_current_models(llm_gateway, llm_up, provider, model):
    p = llm_gateway()
    call = {"anthropic": _claude, "openai": _gpt, "google": _gemini}[provider]
    call(p, llm_up, requested=model, model=model, input_tokens=1000, output_tokens=1000)
    rec = check_llm_record(wait_llm(p)[0], provider=provider, model=model)
    assert isinstance(rec["cost_usd"], (int, float)) and rec["cost_usd"] > 0, f"no shipped price for {model}: {rec}"


# --------------------------------------------------------------------------- airlock usage


def _by_key(lines):
    for line in lines:
        missing = [f for f in USAGE_FIELDS if f not in line]
        assert not missing, f"usage line lacks {missing}: {line}"
    return {line["key"]: line for line in lines}


def _check_group(line, calls, i, o, cr, cw, cost):
    got = (line["calls"], line["input_tokens"], line["output_tokens"], line["cache_read_tokens"], line["cache_write_tokens"])
    assert got == (calls, i, o, cr, cw), f"usage line {line} != calls/in/out/cr/cw {(calls, i, o, cr, cw)}"
    assert abs(line["cost_usd"] - cost) < 1e-9, f"usage cost {line['cost_usd']} != {cost}: {line}"


def _usage_calls(proxy, *args):
    lines = usage_json(proxy, *args)
    return sum(int(line.get("calls") or 0) for line in lines)


def test_usage_command(llm_gateway, llm_up):
    gpt = {"input": 2, "output": 8, "cache_read": 0.5, "cache_write": 0}
    gem = {"input": 0.5, "output": 4, "cache_read": 0.125, "cache_write": 0}
    p = llm_gateway({"prices": {"acme-claude": SPEC_PRICES, "acme-gpt": gpt, "acme-gem": gem}})
    _claude(p, llm_up, requested="acme-claude", model="acme-claude-1", input_tokens=1000, output_tokens=500,
            cache_read_tokens=200, cache_write_tokens=100)  # 0.010935
    c = anthropic_client(gateway_url(p))
    r = llm_up.reply(model="acme-claude-1", input_tokens=100, output_tokens=50)  # 0.00105
    consume_stream(c.messages.create(model="acme-claude", max_tokens=8, stream=True,
                                     messages=[{"role": "user", "content": r.prompt()}]), anthropic_text)
    _gpt(p, llm_up, requested="acme-gpt", model="acme-gpt-1", input_tokens=1000, output_tokens=250)  # 0.004
    _gemini(p, llm_up, requested="acme-gem-pro", model="acme-gem-pro", input_tokens=2000, output_tokens=100)  # 0.0014
    wait_llm(p, count=4)
    total = 0.010935 + 0.00105 + 0.004 + 0.0014

    # the store may lag the log file a little
    wait_for(lambda: _usage_calls(p, "--by", "model") == 4, timeout=5, what="airlock usage counts 4 calls")
    by_model = _by_key(usage_json(p, "--by", "model"))
    assert set(by_model) == {"acme-claude-1", "acme-gpt-1", "acme-gem-pro"}, by_model
    _check_group(by_model["acme-claude-1"], 2, 1100, 550, 200, 100, 0.010935 + 0.00105)
    _check_group(by_model["acme-gpt-1"], 1, 1000, 250, 0, 0, 0.004)
    _check_group(by_model["acme-gem-pro"], 1, 2000, 100, 0, 0, 0.0014)

    by_provider = _by_key(usage_json(p, "--by", "provider"))
    assert set(by_provider) == {"anthropic", "openai", "google"}, by_provider
    _check_group(by_provider["anthropic"], 2, 1100, 550, 200, 100, 0.010935 + 0.00105)
    _check_group(by_provider["google"], 1, 2000, 100, 0, 0, 0.0014)

    by_day = _by_key(usage_json(p, "--by", "day"))
    today = {datetime.now(timezone.utc).date().isoformat(), datetime.now().date().isoformat()}
    assert len(by_day) == 1 and set(by_day) <= today, by_day
    _check_group(next(iter(by_day.values())), 4, 4100, 900, 200, 100, total)

    since = _by_key(usage_json(p, "--since", "1h", "--by", "provider"))
    assert since == by_provider, (since, by_provider)

    # --data-dir works like AIRLOCK_HOME (as for `airlock threats`)
    r = airlock("usage", "--json", "--by", "model", "--data-dir", p.data_dir)
    if r.returncode == 0:
        assert _by_key(parse_jsonl(r.stdout)) == by_model

    # the table for people
    r = airlock("usage", "--by", "model", env=cli_env(p))
    assert r.returncode == 0, r.stderr
    for model in ("acme-claude-1", "acme-gpt-1", "acme-gem-pro"):
        assert model in r.stdout, r.stdout


def test_usage_since_excludes_older_calls(llm_gateway, llm_up):
    p = llm_gateway()
    _gpt(p, llm_up, model="gpt-4o-2024-08-06", input_tokens=10, output_tokens=1)
    wait_llm(p)
    wait_for(lambda: _usage_calls(p, "--since", "1h") == 1, timeout=5, what="usage --since 1h counts the call")
    time.sleep(3)
    assert _usage_calls(p, "--since", "2s") == 0, usage_json(p, "--since", "2s")
    assert _usage_calls(p, "--since", "1m") == 1


def test_usage_with_no_calls(llm_gateway):
    p = llm_gateway()
    assert usage_json(p, "--by", "model") == [] or _usage_calls(p, "--by", "model") == 0
    assert read_llm(p) == []


# --------------------------------------------------------------------------- configuration

BAD_PRICES = [
    ("string_price", {"acme-model": {"input": "cheap", "output": 1}}, [r"prices", r"input"]),
    ("unknown_price_key", {"acme-model": {"inptu": 1, "output": 1}}, [r"prices", r"inptu"]),
    ("not_a_map", {"acme-model": 3}, [r"prices", r"acme-model"]),
]


@pytest.mark.parametrize("name,prices,patterns", BAD_PRICES, ids=[b[0] for b in BAD_PRICES])
def test_config_check_rejects_bad_prices(tmp_path, name, prices, patterns):
    import re

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"prices": prices}))
    r = airlock("config", "check", path)
    assert r.returncode == 2, f"exit {r.returncode} for prices {prices}: {r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0].replace(str(path), "<file>")  # the words looked for are not in the file's path
    for pat in patterns:
        assert re.search(pat, line), f"error line does not name {pat}: {line!r}"


def test_config_check_accepts_prices(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"prices": {"my-model": {"input": 1, "output": 2.5, "cache_read": 0.1, "cache_write": 1.25}}}))
    r = airlock("config", "check", path)
    assert r.returncode == 0, r.stderr
