"""LLM spend limits (`budgets` with a source, listener or total scope): past a limit, LLM calls
are refused with the provider's own error shape (429), and a POLICY threat `budget:llm` is
written."""

import time

import anthropic
import httpx
import openai
import pytest

from e2e_helpers import airlock
from llm_fixtures import *  # noqa: F401,F403
from llm_fixtures import anthropic_client, gateway_url, openai_client
from records import read_jsonl, wait_for


def _threats(p):
    return [t for t in read_jsonl(p.data_dir / "logs" / "threats.jsonl") if t.get("pattern") == "budget:llm"]


def _claude(p, llm_up, tokens=(600, 500)):
    r = llm_up.reply(model="claude-sonnet-4-5-20250929", input_tokens=tokens[0], output_tokens=tokens[1])
    return anthropic_client(gateway_url(p)).messages.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": r.prompt()}]
    )


def test_a_token_budget_refuses_the_next_call_in_each_providers_shape(llm_gateway, llm_up):
    p = llm_gateway({"budgets": [{"total": True, "max_llm_tokens_per_hour": 1000}]})
    _claude(p, llm_up)  # 1,100 tokens: this one goes, the limit is now passed
    wait_for(lambda: read_jsonl(p.data_dir / "logs" / "llm.jsonl"), what="the first call's record")
    with pytest.raises(anthropic.RateLimitError) as refused:
        _claude(p, llm_up)
    assert refused.value.status_code == 429
    body = refused.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error", body
    assert "LLM budget" in body["error"]["message"] and "1000" in body["error"]["message"], body
    assert refused.value.response.headers["x-airlock-rule"] == "budget:llm"
    r = llm_up.reply()
    with pytest.raises(openai.RateLimitError) as refused:
        openai_client(gateway_url(p)).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": r.prompt()}]
        )
    assert refused.value.response.json()["error"]["code"] == "insufficient_quota"
    with httpx.Client(trust_env=False, timeout=20) as c:
        g = c.post(
            f"{gateway_url(p)}/v1beta/models/gemini-2.5-flash:generateContent",
            json={"contents": [{"role": "user", "parts": [{"text": llm_up.reply().prompt()}]}]},
            headers={"x-goog-api-key": "k"},
        )
    assert g.status_code == 429 and g.json()["error"]["status"] == "RESOURCE_EXHAUSTED", g.text
    threats = wait_for(lambda: _threats(p), what="the budget:llm threat")
    assert threats[0]["threat_type"] == "POLICY" and threats[0]["action"] == "blocked", threats
    # Only the call that went upstream has an LLM record.
    assert len(read_jsonl(p.data_dir / "logs" / "llm.jsonl")) == 1
    flows = [f for f in read_jsonl(p.data_dir / "logs" / "flows.jsonl") if f.get("status") == 429]
    assert flows and all(f["action"] == "blocked" for f in flows), flows


def test_a_cost_budget_for_another_source_does_not_apply(llm_gateway, llm_up):
    p = llm_gateway({
        "prices": {"claude-sonnet-4-5-20250929": {"input": 3, "output": 15}},
        "budgets": [
            {"source": "127.0.0.2", "max_llm_cost_usd_per_day": 0.000001},
            {"listener": "llm", "max_llm_cost_usd_per_hour": 1.0},
        ],
    })
    for _ in range(3):
        _claude(p, llm_up)  # $0.0093 each: under the listener's $1, and the source is another
    assert _threats(p) == []


def test_a_cost_budget_for_this_listener(llm_gateway, llm_up):
    p = llm_gateway({
        "prices": {"claude-sonnet-4-5-20250929": {"input": 3, "output": 15}},
        "budgets": [{"listener": "llm", "max_llm_cost_usd_per_hour": 0.005}],
    })
    _claude(p, llm_up)  # $0.0093
    with pytest.raises(anthropic.RateLimitError) as refused:
        _claude(p, llm_up)
    assert "listener llm" in refused.value.response.json()["error"]["message"]


@pytest.mark.parametrize("budget, key", [
    ({"total": True}, "budgets[0].max_llm_cost_usd_per_hour"),
    ({"max_llm_tokens_per_day": 10}, "budgets[0].host"),
    ({"source": "not-an-ip", "max_llm_tokens_per_day": 10}, "budgets[0].source"),
    ({"total": True, "listener": "llm", "max_llm_tokens_per_day": 10}, "budgets[0].source"),
    ({"total": True, "max_llm_cost_usd_per_day": -1}, "budgets[0].max_llm_cost_usd_per_day"),
    ({"host": "example.com", "max_llm_tokens_per_day": 10}, "budgets[0].host"),
])
def test_bad_llm_budgets_are_refused_with_their_key(tmp_path, budget, key):
    path = tmp_path / "c.json"
    import json

    path.write_text(json.dumps({"budgets": [budget]}))
    r = airlock("config", "check", path)
    assert r.returncode == 2 and key in r.stderr, (budget, r.stderr)


def test_a_restart_does_not_forgive_the_days_spend(llm_gateway, llm_up):
    budget = {"budgets": [{"total": True, "max_llm_tokens_per_day": 1000}]}
    p = llm_gateway(budget)
    _claude(p, llm_up)  # 1,100 tokens
    wait_for(lambda: read_jsonl(p.data_dir / "logs" / "llm.jsonl"), what="the call's record")
    time.sleep(0.3)  # the store is written in batches
    p.stop()
    again = llm_gateway(budget, data_dir=p.data_dir)
    with pytest.raises(anthropic.RateLimitError):
        _claude(again, llm_up)
