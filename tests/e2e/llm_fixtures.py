"""Fixtures and helpers for the LLM gateway and accounting tests (``test_llm_*.py``).

Import with ``from llm_fixtures import *``.

* ``llm_up``       - the fake provider of llm_upstream.py (one per worker process), HTTP and HTTPS
                     (certificate for the providers' hosts, 127.0.0.1 and localhost, signed by the
                     suite's upstream CA). ``llm_up.reply(...)`` sets what a tagged request gets.
* ``llm_gateway``  - factory over ``start_proxy``: an airlock with a ``kind: llm`` gateway named
                     ``llm`` on ``127.0.0.1:0`` whose three upstreams point at ``llm_up`` (plain
                     HTTP, or HTTPS with ``upstream="https"``); extra config keys are merged in.
                     The same airlock is a forward proxy whose ``resolve`` sends the providers'
                     hosts to ``llm_up``'s HTTPS port (so it also serves the intercept tests).
* ``llm_proxy``    - the same without a gateway (forward proxy only).
* ``gateway_url(proxy, name)`` - ``http://127.0.0.1:<port>`` from the boot line's ``gateways``.
* SDK clients      - ``anthropic_client`` / ``openai_client``: the official SDKs with
                     ``max_retries=0``, pointed at a gateway (``base_url``) or, with ``proxy=``, at
                     their default base URL through the forward proxy (httpx client with the
                     proxy and the airlock CA). ``sent`` collects the requests the client sent.
* records          - ``check_llm_record`` (the fields of one ``logs/llm.jsonl`` record; reading and
                     waiting: ``read_llm`` / ``wait_llm`` in records.py), ``usage_json`` (the CLI),
                     ``assert_not_logged`` (values absent from every log file and stderr).
"""

from __future__ import annotations

import os
import secrets
import string
import time

import httpx
import pytest

from e2e_helpers import airlock, cli_env
from llm_upstream import LLMUpstream, Reply
from records import merge_config, parse_jsonl

__all__ = [
    "llm_up",
    "llm_gateway",
    "llm_proxy",
    "PROVIDER_HOSTS",
    "gateway_url",
    "gateway_entry",
    "provider_resolve",
    "fake_api_key",
    "provider_key",
    "anthropic_client",
    "openai_client",
    "sdk_http_client",
    "usage_json",
    "assert_not_logged",
    "check_llm_record",
    "consume_stream",
    "anthropic_text",
    "chat_text",
    "responses_text",
    "StreamResult",
    "Reply",
    "LLM_FIELDS",
    "USAGE_FIELDS",
]

PROVIDER_HOSTS = {
    "anthropic": "api.anthropic.com",
    "openai": "api.openai.com",
    "google": "generativelanguage.googleapis.com",
}
LLM_NAMES = list(PROVIDER_HOSTS.values()) + ["localhost", "127.0.0.1"]

LLM_FIELDS = (
    "timestamp",
    "provider",
    "model",
    "endpoint",
    "stream",
    "status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "source",
    "requested_model",
)
USAGE_FIELDS = ("key", "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd")

# the SDKs read these; the tests decide where the clients go
for _var in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
    os.environ.pop(_var, None)

# --------------------------------------------------------------------------- the fake provider

@pytest.fixture
def llm_up(certs) -> LLMUpstream:
    return LLMUpstream.shared(lambda: certs.upstream_ca.issue_cert(*LLM_NAMES))


def provider_resolve(up: LLMUpstream) -> dict:
    """resolve entries sending the providers' hosts (port 443) to the fake provider's HTTPS port."""
    return {f"{host}:443": f"127.0.0.1:{up.https_port}" for host in PROVIDER_HOSTS.values()}


def gateway_entry(up: LLMUpstream, name: str = "llm", upstream: str = "http") -> dict:
    base = up.http_url if upstream == "http" else up.https_url
    return {
        "name": name,
        "listen": "127.0.0.1:0",
        "kind": "llm",
        "upstreams": {provider: base for provider in PROVIDER_HOSTS},
    }


def _config(start_proxy, certs, up, extra: dict | None) -> dict:
    config = start_proxy.base_config()  # example.test etc. for the target gateway tests
    config["upstream_ca"] = [str(certs.upstream_ca_path)]
    config["resolve"] = {**config["resolve"], **provider_resolve(up)}
    return merge_config(config, extra)


@pytest.fixture
def llm_gateway(start_proxy, certs, llm_up):
    """llm_gateway(extra_config=None, *, upstream="http", gateways=None, **start_proxy_kwargs) -> Proxy

    gateways=None gives the one ``llm`` gateway; a list replaces it (see gateway_entry)."""

    def make(extra: dict | None = None, *, upstream: str = "http", gateways: list | None = None, **kw):
        config = _config(start_proxy, certs, llm_up, extra)
        config["gateways"] = gateways if gateways is not None else [gateway_entry(llm_up, upstream=upstream)]
        return start_proxy(config, base=False, **kw)

    return make


@pytest.fixture
def llm_proxy(start_proxy, certs, llm_up):
    """llm_proxy(extra_config=None, **start_proxy_kwargs) -> Proxy (forward proxy, providers -> llm_up)"""

    def make(extra: dict | None = None, **kw):
        return start_proxy(_config(start_proxy, certs, llm_up, extra), base=False, **kw)

    return make


def gateway_url(proxy, name: str = "llm") -> str:
    """The gateway's base URL, from the boot line (``gateways``: [{name, listen}])."""
    gws = proxy.boot.get("gateways")
    assert isinstance(gws, list), f"boot line has no gateways list: {proxy.boot}"
    for gw in gws:
        if isinstance(gw, dict) and gw.get("name") == name:
            host, _, port = str(gw.get("listen")).rpartition(":")
            assert host == "127.0.0.1", f"gateway {name} listens on {gw.get('listen')!r}"
            assert port.isdigit() and int(port) != 0, f"boot line does not name gateway {name}'s bound port: {gw}"
            return f"http://127.0.0.1:{port}"
    raise AssertionError(f"boot line does not list gateway {name!r}: {gws}")


# --------------------------------------------------------------------------- keys


def fake_api_key() -> str:
    """An API key for the gateway tests: distinctive, but no shape any detection rule knows
    (letters only: the generic assignment rules want a digit), so it is never a 'leak'."""
    return "fakekey-" + "".join(secrets.choice(string.ascii_letters) for _ in range(32))


def provider_key(provider: str) -> str:
    """A key shaped like the provider's real ones (for the forward-proxy tests, where it goes to
    the provider's own host and must pass)."""
    alphabet = string.ascii_letters + string.digits
    if provider == "anthropic":
        from detect_fixtures import fresh_key

        return fresh_key("anthropic").secret
    if provider == "openai":
        return "sk-proj-" + "".join(secrets.choice(alphabet + "_-") for _ in range(100))
    if provider == "google":
        return "AIza" + "".join(secrets.choice(alphabet) for _ in range(35))
    raise ValueError(provider)


# --------------------------------------------------------------------------- SDK clients


def sdk_http_client(*, proxy=None, verify=None, sent: list | None = None):
    """The httpx client an SDK is given: ``httpx2`` (what the current SDKs are built on; the
    anthropic SDK refuses a legacy ``httpx`` client), else ``httpx``. With proxy: through the
    forward proxy, trusting the airlock CA. ``sent`` collects every request sent (body read)."""
    try:
        import httpx2 as hx
    except ImportError:  # older SDKs
        hx = httpx
    hooks = {}
    if sent is not None:

        def on_request(request):
            request.read()
            sent.append(request)

        hooks["request"] = [on_request]
    kw = dict(trust_env=False, timeout=hx.Timeout(20.0), event_hooks=hooks)
    if proxy is not None:
        kw.update(proxy=proxy.url, verify=proxy.ssl_ctx())
    elif verify is not None:
        kw.update(verify=verify)
    return hx.Client(**kw)


def anthropic_client(base_url: str | None = None, *, proxy=None, api_key: str | None = None, sent: list | None = None):
    """anthropic.Anthropic at base_url (a gateway), or at its default base URL through proxy."""
    import anthropic

    return anthropic.Anthropic(
        api_key=api_key or fake_api_key(),
        base_url=base_url,
        http_client=sdk_http_client(proxy=proxy, sent=sent),
        max_retries=0,
    )


def openai_client(base_url: str | None = None, *, proxy=None, api_key: str | None = None, sent: list | None = None):
    """openai.OpenAI at base_url + /v1 (a gateway), or at its default base URL through proxy."""
    import openai

    return openai.OpenAI(
        api_key=api_key or fake_api_key(),
        base_url=None if base_url is None else base_url.rstrip("/") + "/v1",
        http_client=sdk_http_client(proxy=proxy, sent=sent),
        max_retries=0,
    )


def anthropic_text(event):
    """The text of an Anthropic stream event (content_block_delta / text_delta), else None."""
    if getattr(event, "type", None) == "content_block_delta" and getattr(event.delta, "type", None) == "text_delta":
        return event.delta.text
    return None


def chat_text(chunk):
    """The text of an OpenAI chat completion chunk, else None."""
    return chunk.choices[0].delta.content if chunk.choices else None


def responses_text(event):
    """The text of an OpenAI Responses stream event (response.output_text.delta), else None."""
    return event.delta if getattr(event, "type", None) == "response.output_text.delta" else None


class StreamResult:
    def __init__(self):
        self.events: list = []
        self.texts: list[str] = []
        self.first_at: float | None = None  # monotonic time of the first text delta
        self.first_before_release: bool | None = None
        self.first_hold_timed_out: bool | None = None
        self.error: BaseException | None = None

    @property
    def text(self) -> str:
        return "".join(self.texts)


def consume_stream(stream, get_text, reply: Reply | None = None, *, catch=()) -> StreamResult:
    """Iterates an SDK stream; on the first text delta notes whether the fake provider was still
    holding the rest (reply.hold), then releases it. Exceptions of the types in catch are kept
    in .error instead of raised."""
    res = StreamResult()
    try:
        for ev in stream:
            res.events.append(ev)
            text = get_text(ev)
            if text:
                if res.first_at is None:
                    res.first_at = time.monotonic()
                    if reply is not None:
                        res.first_before_release = not reply.released
                        res.first_hold_timed_out = reply.hold_timed_out
                        reply.release()
                res.texts.append(text)
    except catch as e:  # type: ignore[misc]
        res.error = e
    finally:
        if reply is not None:
            reply.release()
    return res


# --------------------------------------------------------------------------- records


def check_llm_record(rec: dict, **expected) -> dict:
    """Every field of SPEC 9 is there, with the right types; expected values match exactly
    (cost_usd within 1e-9)."""
    from datetime import datetime

    missing = [f for f in LLM_FIELDS if f not in rec]
    assert not missing, f"LLM call record lacks {missing}: {rec}"
    ts = rec["timestamp"]
    assert isinstance(ts, str) and datetime.fromisoformat(ts.replace("Z", "+00:00")).utcoffset().total_seconds() == 0, (
        f"timestamp is not RFC 3339 UTC: {ts!r}"
    )
    assert rec["provider"] in ("anthropic", "openai", "google"), rec
    assert isinstance(rec["stream"], bool), rec
    assert isinstance(rec["status"], int), rec
    for f in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        assert isinstance(rec[f], int) and not isinstance(rec[f], bool), f"{f} is not an integer: {rec}"
    assert rec["cost_usd"] is None or isinstance(rec["cost_usd"], (int, float)), rec
    assert isinstance(rec["latency_ms"], (int, float)) and rec["latency_ms"] >= 0, rec
    if rec["stream"]:
        assert isinstance(rec["ttft_ms"], (int, float)), f"a stream's record needs ttft_ms: {rec}"
        assert 0 <= rec["ttft_ms"] <= rec["latency_ms"], rec
    else:
        assert rec["ttft_ms"] is None or isinstance(rec["ttft_ms"], (int, float)), rec
    assert "127.0.0.1" in str(rec["source"]), f"source should name the client (127.0.0.1): {rec}"
    for k, v in expected.items():
        if k == "cost_usd" and v is not None:
            assert isinstance(rec[k], (int, float)) and abs(rec[k] - v) < 1e-9, f"cost_usd {rec[k]!r} != {v!r}: {rec}"
        else:
            assert rec[k] == v, f"{k} = {rec[k]!r}, expected {v!r}: {rec}"
    return rec


def usage_json(proxy, *args) -> list[dict]:
    """`airlock usage --json ARGS` for the proxy's data dir (AIRLOCK_HOME), parsed."""
    r = airlock("usage", "--json", *args, env=cli_env(proxy))
    assert r.returncode == 0, f"airlock usage --json {' '.join(map(str, args))} exited {r.returncode}: {r.stderr}"
    return parse_jsonl(r.stdout, source="airlock usage --json")


def assert_not_logged(proxy, *values: str):
    """None of values is in any file under logs/ or in the proxy's stderr."""
    sources = {"stderr": proxy.stderr_text()}
    logs = proxy.data_dir / "logs"
    if logs.is_dir():
        for f in sorted(logs.rglob("*")):
            if f.is_file():
                sources[str(f.relative_to(proxy.data_dir))] = f.read_text(errors="replace")
    for label, text in sources.items():
        for v in values:
            assert v not in text, f"{v[:12]}... (an API key) is written to {label}"
