"""Coming from other tools (issue 14, item 7): a ClawSec-style flat JSON config starts as is
(`gateway_local_port` / `gateway_target_port` make a `target` gateway on loopback), and
`prices_file` loads LiteLLM's `model_prices_and_context_window.json` format between the
shipped table and the config's `prices:` (SPEC 6)."""

from __future__ import annotations

import json

import httpx

from detect_fixtures import *  # noqa: F401,F403
from detect_fixtures import assert_credential_block, fresh_key
from e2e_helpers import airlock, closed_port
from llm_fixtures import *  # noqa: F401,F403
from llm_fixtures import anthropic_client, check_llm_record, gateway_url, openai_client
from records import wait_llm


def _clawsec(local: int, target: int) -> dict:
    """A monitor config as ClawSec-style tools write it: flat keys, JSON."""
    return {
        "proxy_host": "127.0.0.1",
        "proxy_port": 8888,
        "enable_mitm": True,
        "max_scan_bytes": 1048576,
        "gateway_local_port": local,
        "gateway_target_port": target,
    }


def test_clawsec_flat_config_starts_as_is(start_proxy, upstreams, tmp_path):
    local = closed_port()
    flat = _clawsec(local, upstreams.http_port)
    path = tmp_path / "clawsec.json"
    path.write_text(json.dumps(flat))
    check = airlock("config", "check", str(path))
    assert check.returncode == 0, check.stderr

    # Started as is, plus a private admin port so that it cannot meet another instance's.
    p = start_proxy({**flat, "admin": {"listen": "127.0.0.1:0"}}, base=False)
    gws = {g["name"]: g["listen"] for g in p.boot.get("gateways", [])}
    assert gws == {"gateway": f"127.0.0.1:{local}"}, p.boot
    with httpx.Client(trust_env=False, timeout=10) as c:
        r = c.get(f"http://127.0.0.1:{local}/hello")
        # No allow_private: the operator named this loopback target, the guard lets it through.
        assert r.status_code == 200, r.text[:300]
        flow = p.wait_flows(lambda f: f.get("listener") == "gateway" and f.get("status") == 200)[0]
        assert (flow["host"], flow["port"], flow["action"]) == ("127.0.0.1", upstreams.http_port, "allowed"), flow

        # The gateway is airlock's whole pipeline: a leaked key is blocked on its way.
        key = fresh_key("github")
        r = c.post(f"http://127.0.0.1:{local}/echo", content=f"token={key.text}")
        assert_credential_block(r.status_code, dict(r.headers), r.content, key)

        # The exemption is that target only: another loopback port through the forward proxy
        # is still refused by the destination guard.
        with httpx.Client(trust_env=False, proxy=p.url, timeout=10) as via:
            r = via.get(f"http://127.0.0.1:{closed_port()}/")
        assert r.status_code == 403 and r.headers.get("x-airlock-block-reason") == "destination", r.text[:300]


def test_clawsec_ports_come_in_pairs(tmp_path):
    for only, missing in (("gateway_local_port", "gateway_target_port"), ("gateway_target_port", "gateway_local_port")):
        path = tmp_path / f"{only}.json"
        path.write_text(json.dumps({only: 18999}))
        r = airlock("config", "check", str(path))
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert missing in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# --------------------------------------------------------------------------- prices_file

# LiteLLM's format: USD per token, provider-prefixed keys beside bare ones, entries priced by
# the image or the character, and the `sample_spec` example at the top.
LITELLM = {
    "sample_spec": {
        "max_tokens": "LEGACY parameter. set to max_output_tokens if provider specifies it.",
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
        "litellm_provider": "one of https://docs.litellm.ai/docs/providers",
        "mode": "one of: chat, embedding, completion, image_generation, audio_transcription",
    },
    "acme-file-model": {
        "max_tokens": 8192,
        "input_cost_per_token": 2e-06,
        "output_cost_per_token": 8e-06,
        "cache_read_input_token_cost": 5e-07,
        "cache_creation_input_token_cost": 2.5e-06,
        "litellm_provider": "anthropic",
        "mode": "chat",
    },
    # A shipped model: the file's price replaces the shipped one.
    "claude-haiku-4-5": {"input_cost_per_token": 7e-06, "output_cost_per_token": 9e-06, "litellm_provider": "anthropic"},
    # Only under a provider prefix: the bare name is priced too, the provider's own prefix
    # before a reseller's.
    "openrouter/acme-prefixed-1": {"input_cost_per_token": 9e-05, "output_cost_per_token": 9e-05},
    "openai/acme-prefixed-1": {"input_cost_per_token": 3e-06, "output_cost_per_token": 6e-06, "litellm_provider": "openai"},
    # In the config's prices too: those win.
    "acme-both": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
    "dall-e-3": {"output_cost_per_image": 0.04, "litellm_provider": "openai", "mode": "image_generation"},
}


def _cost(i, o, cr, cw, p):
    return (i * p[0] + o * p[1] + cr * p[2] + cw * p[3]) / 1e6


def test_prices_file_litellm_format_between_shipped_and_config(llm_gateway, llm_up, tmp_path):
    prices_file = tmp_path / "model_prices_and_context_window.json"
    prices_file.write_text(json.dumps(LITELLM))
    p = llm_gateway({"prices_file": str(prices_file), "prices": {"acme-both": {"input": 50, "output": 60}}})
    claude = anthropic_client(gateway_url(p))
    gpt = openai_client(gateway_url(p))

    def call(model, client="claude"):
        r = llm_up.reply(model=model, input_tokens=1000, output_tokens=500, cache_read_tokens=200, cache_write_tokens=100)
        if client == "claude":
            claude.messages.create(model=model, max_tokens=16, messages=[{"role": "user", "content": r.prompt()}])
        else:
            gpt.chat.completions.create(model=model, messages=[{"role": "user", "content": r.prompt()}])
        return wait_llm(p, lambda x, m=model: x.get("model") == m)[0]

    # Per token in the file, per million here; Anthropic counts cache tokens apart.
    check_llm_record(call("acme-file-model"), cost_usd=_cost(1000, 500, 200, 100, (2, 8, 0.5, 2.5)))
    # No cache prices in the file: the input price (no discount assumed).
    check_llm_record(call("claude-haiku-4-5"), cost_usd=_cost(1000, 500, 200, 100, (7, 9, 7, 7)))
    check_llm_record(call("acme-both"), cost_usd=_cost(1000, 500, 200, 100, (50, 60, 0, 0)))
    # OpenAI counts the cached tokens inside the input: (1000-200)*in + 200*cr + 500*out.
    check_llm_record(call("acme-prefixed-1", client="gpt"), cost_usd=(800 * 3 + 200 * 3 + 500 * 6) / 1e6)
    # A shipped model the file does not name keeps its shipped price.
    rec = call("claude-sonnet-4-5")
    assert isinstance(rec["cost_usd"], float) and rec["cost_usd"] > 0, rec
    # The example entry is no model.
    check_llm_record(call("sample_spec"), cost_usd=None)


def test_prices_file_errors_name_the_key(tmp_path):
    bad = tmp_path / "prices.json"
    bad.write_text('{"m": {"input_cost_per_token": "cheap"')
    missing = tmp_path / "nowhere.json"
    for target in (bad, missing):
        cfg = tmp_path / "airlock.yaml"
        cfg.write_text(json.dumps({"prices_file": str(target)}))
        r = airlock("config", "check", str(cfg))
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert "prices_file" in r.stderr and str(target) in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
