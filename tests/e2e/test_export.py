"""OpenTelemetry export (`export.otlp`, SPEC 6): flow, threat and LLM call records reach a local
OTLP/HTTP collector as log records, decoded with the official `opentelemetry-proto` package;
the collector's header arrives and is never logged; no secret is in any byte sent; a collector
answering 503 gets everything once it recovers; a collector that is down costs the requests
nothing and its losses are counted in /metrics."""

from __future__ import annotations

import json
import signal
import socket
import statistics
import ssl
import time
import urllib.request

import pytest

from detect_fixtures import *  # noqa: F401,F403
from detect_fixtures import fresh_key
from e2e_helpers import airlock, cli_env, closed_port, requests_session
from llm_fixtures import *  # noqa: F401,F403
from llm_fixtures import anthropic_client, fake_api_key, gateway_url
from otlp_receiver import OtlpReceiver
from records import read_flows, wait_for, wait_llm, wait_threats

COLLECTOR_KEY = "collector-key-5f1e2d"


def _export(endpoint: str, interval: int = 1, headers: dict | None = None) -> dict:
    otlp = {"endpoint": endpoint, "interval_secs": interval}
    if headers is not None:
        otlp["headers"] = headers
    return {"export": {"otlp": otlp}}


def _unchained(record: dict) -> dict:
    """A JSONL line less its audit chain fields (tamper evidence of the file, not of the record)."""
    return {k: v for k, v in record.items() if k not in ("chain", "chain_prev")}


def _metrics(p) -> str:
    with urllib.request.urlopen(f"http://{p.boot['admin']}/metrics", timeout=5) as r:
        return r.read().decode()


def _counter(p, name: str, result: str) -> float:
    for line in _metrics(p).splitlines():
        if line.startswith(f'{name}{{result="{result}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def collector():
    r = OtlpReceiver()
    yield r
    r.stop()


def test_records_arrive_as_otlp_logs_with_semantic_attributes(llm_gateway, llm_up, collector):
    p = llm_gateway(_export(collector.url, headers={"authorization": f"Bearer {COLLECTOR_KEY}"}))
    # a flow through the forward proxy (HTTPS, intercepted)
    with requests_session(p) as s:
        assert s.get("https://example.test/hello?otlp=1", timeout=20).status_code == 200
        # a leak: blocked, a threat
        key = fresh_key("github")
        r = s.post("https://example.test/echo?otlp=2", data=f"token={key.text}", timeout=20)
        assert r.status_code == 403
    # an LLM call through the gateway
    reply = llm_up.reply(text="Hi.", model="claude-sonnet-4-5-20250929", input_tokens=21, output_tokens=8)
    c = anthropic_client(gateway_url(p), api_key=fake_api_key())
    c.messages.create(model="claude-sonnet-4-5", max_tokens=50,
                      messages=[{"role": "user", "content": reply.prompt()}])

    threat = wait_threats(p, lambda t: t["pattern"] == key.rule)[0]
    call = wait_llm(p)[0]
    records = collector.wait_records(
        lambda r: r.attributes.get("airlock.record") in ("threat", "llm")
        or "otlp=1" in str(r.attributes.get("url.full")),
        count=3,
        timeout=15,
    )
    by_kind = {r.attributes["airlock.record"]: r for r in records}
    assert set(by_kind) == {"flow", "threat", "llm"}, records

    # the resource: who is exporting
    res = by_kind["flow"].resource
    assert res["service.name"] == "airlock"
    assert res["service.version"] == p.boot["version"]
    assert res["host.name"] == socket.gethostname()
    assert len(res["service.instance.id"]) == 36, res
    assert by_kind["flow"].scope == "airlock"

    # a flow: HTTP semantic conventions; the body is the flow.jsonl line
    f = by_kind["flow"]
    a = f.attributes
    assert f.event_name == "airlock.flow"
    assert a["http.request.method"] == "GET"
    assert a["url.full"] == "https://example.test/hello?otlp=1"
    assert (a["server.address"], a["server.port"]) == ("example.test", 443)
    assert a["http.response.status_code"] == 200
    assert a["client.address"] == "127.0.0.1"
    assert a["airlock.action"] == "allowed"
    assert f.time_unix_nano > 0 and f.observed_time_unix_nano >= f.time_unix_nano
    flow_line = [x for x in read_flows(p) if x["id"] == a["airlock.flow.id"]]
    assert flow_line and json.loads(f.body) == _unchained(flow_line[0])

    # a threat: the masked record, its rule and action
    t = by_kind["threat"]
    assert t.event_name == "airlock.threat"
    assert t.attributes["airlock.threat.type"] == "EXFIL"
    assert t.attributes["airlock.threat.pattern"] == key.rule
    assert t.attributes["airlock.action"] == "blocked"
    assert (t.attributes["server.address"], t.attributes["server.port"]) == ("example.test", 443)
    assert json.loads(t.body) == _unchained(threat)
    assert t.severity_text == "WARN"

    # an LLM call: gen_ai conventions
    g = by_kind["llm"]
    assert g.event_name == "airlock.llm_call"
    assert g.attributes["gen_ai.provider.name"] == "anthropic"
    assert g.attributes["gen_ai.system"] == "anthropic"
    assert g.attributes["gen_ai.request.model"] == "claude-sonnet-4-5"
    assert g.attributes["gen_ai.response.model"] == "claude-sonnet-4-5-20250929"
    assert (g.attributes["gen_ai.usage.input_tokens"], g.attributes["gen_ai.usage.output_tokens"]) == (21, 8)
    assert json.loads(g.body) == _unchained(call)

    # the wire: OTLP/HTTP protobuf to /v1/logs with the configured header
    for req in collector.accepted():
        assert req.path == "/v1/logs"
        assert req.headers["content-type"] == "application/x-protobuf"
        assert req.headers["authorization"] == f"Bearer {COLLECTOR_KEY}"
    # no secret anywhere: not the leaked token, and the collector's key is in no log
    assert key.secret.encode() not in collector.all_bytes()
    assert COLLECTOR_KEY not in p.stderr_text()
    for name in ("flows.jsonl", "threats.jsonl", "llm.jsonl"):
        assert COLLECTOR_KEY not in (p.data_dir / "logs" / name).read_text()
    # counted as sent
    assert _counter(p, "airlock_export_records_total", "sent") >= 3
    assert _counter(p, "airlock_export_records_total", "dropped") == 0


def test_a_collector_answering_503_gets_everything_once_it_recovers(start_proxy, collector):
    collector.fail_next(3, status=503)
    p = start_proxy(_export(collector.url))
    with requests_session(p) as s:
        for i in range(5):
            assert s.get(f"http://example.test/hello?retry={i}", timeout=20).status_code == 200
    records = collector.wait_records(lambda r: "retry=" in str(r.attributes.get("url.full")), count=5, timeout=20)
    assert len({r.attributes["url.full"] for r in records}) == 5
    statuses = [r.status for r in collector.requests]
    assert statuses[:3] == [503, 503, 503] and 200 in statuses, statuses
    wait_for(lambda: _counter(p, "airlock_export_records_total", "sent"), lambda n: n >= 5,
             what="sent records in /metrics")
    assert _counter(p, "airlock_export_records_total", "failed") == 0
    # status says where records go and how it went
    st = json.loads(airlock("status", "--json", env=cli_env(p)).stdout)
    assert st["export"]["otlp"]["destination"] == collector.url, st["export"]
    assert st["export"]["otlp"]["sent"] >= 5 and st["export"]["otlp"]["failed"] == 0
    assert st["export"]["alerts"] is None
    assert f"OTLP logs to {collector.url}: " in airlock("status", env=cli_env(p)).stdout


def test_a_reload_moves_the_export_to_the_new_collector(start_proxy, collector):
    p = start_proxy(_export(collector.url))
    with requests_session(p) as s:
        assert s.get("http://example.test/hello?before=1", timeout=20).status_code == 200
    collector.wait_records(lambda r: "before=1" in str(r.attributes.get("url.full")))
    with OtlpReceiver() as second:
        config = json.loads(p.config_path.read_text())
        config["export"]["otlp"]["endpoint"] = second.url
        p.config_path.write_text(json.dumps(config))
        p.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: p.stderr_text().count("exporting records as OTLP logs"), lambda n: n >= 2,
                 what="the exporter restarted by the reload")
        with requests_session(p) as s:
            assert s.get("http://example.test/hello?after=1", timeout=20).status_code == 200
        second.wait_records(lambda r: "after=1" in str(r.attributes.get("url.full")))
        assert not [r for r in collector.log_records() if "after=1" in str(r.attributes.get("url.full"))]
        # the admin API names the destination the instance exports to now
        with urllib.request.urlopen(f"http://{p.boot['admin']}/api/status", timeout=5) as r:
            status = json.loads(r.read())
        assert status["export"]["otlp"]["destination"] == second.url, status["export"]


def test_an_https_collector_is_verified_and_used(start_proxy, certs):
    # the collector's certificate is issued by the upstream CA, which the config's upstream_ca trusts
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certs.upstream_ca.issue_cert("127.0.0.1").configure_cert(ctx)
    with OtlpReceiver(tls=ctx) as secure:
        assert secure.url.startswith("https://")
        p = start_proxy(_export(secure.url, headers={"authorization": f"Bearer {COLLECTOR_KEY}"}))
        with requests_session(p) as s:
            assert s.get("http://example.test/hello?tls=1", timeout=20).status_code == 200
        rec = secure.wait_records(lambda r: "tls=1" in str(r.attributes.get("url.full")), timeout=15)[0]
        assert rec.request.headers["authorization"] == f"Bearer {COLLECTOR_KEY}"


def test_an_untrusted_https_collector_gets_nothing(start_proxy, certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certs.rogue_ca.issue_cert("127.0.0.1").configure_cert(ctx)
    with OtlpReceiver(tls=ctx) as rogue:
        p = start_proxy(_export(rogue.url))
        with requests_session(p) as s:
            assert s.get("http://example.test/hello?rogue=1", timeout=20).status_code == 200
        warning = wait_for(lambda: [line for line in p.stderr_lines if "OTLP export is failing" in line],
                           what="the export failure warning", timeout=15)[0]
        assert rogue.requests == []
        assert "cert" in warning.lower(), warning  # the cause, for the operator


def test_what_is_buffered_is_sent_at_stop(start_proxy, collector):
    p = start_proxy(_export(collector.url, interval=600))
    with requests_session(p) as s:
        assert s.get("http://example.test/hello?atstop=1", timeout=20).status_code == 200
    p.wait_flows(lambda f: "atstop=1" in (f.get("url") or ""))
    assert collector.requests == []  # the batch waits for its interval
    assert p.stop() == 0
    rec = collector.wait_records(lambda r: "atstop=1" in str(r.attributes.get("url.full")), timeout=5)
    assert rec


def test_retry_after_is_honoured(start_proxy, collector):
    collector.fail_next(1, status=429, retry_after="2")
    p = start_proxy(_export(collector.url))
    with requests_session(p) as s:
        assert s.get("http://example.test/hello?ra=1", timeout=20).status_code == 200
    collector.wait_records(lambda r: "ra=1" in str(r.attributes.get("url.full")), timeout=20)
    first, second = collector.requests[:2]
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.9, f"retried after {second.at - first.at:.2f}s, Retry-After said 2"


def test_a_collector_that_is_down_costs_the_requests_nothing(start_proxy):
    port = closed_port()
    p = start_proxy(_export(f"http://127.0.0.1:{port}"))
    took = []
    with requests_session(p) as s:
        for i in range(20):
            started = time.monotonic()
            assert s.get(f"http://example.test/hello?down={i}", timeout=20).status_code == 200
            took.append(time.monotonic() - started)
    # A request that waited on the exporter would wait on its connect and backoffs (0.5 s and
    # up), every one of them: the median says so; one slow request on a busy machine does not.
    assert statistics.median(took) < 0.25, f"requests took {sorted(took)} s with the collector down"
    # the batch is given up on after its retries (0.5 + 1 + 2 + 4 + 8 s) and counted
    wait_for(lambda: _counter(p, "airlock_export_records_total", "failed"), lambda n: n >= 20,
             timeout=40, what="failed records in /metrics")
    assert _counter(p, "airlock_export_records_total", "sent") == 0
    # one warning when it starts failing, not one per attempt; the proxy keeps serving
    warnings = [line for line in p.stderr_lines if "OTLP export is failing" in line]
    assert len(warnings) == 1, warnings
    with requests_session(p) as s:
        assert s.get("http://example.test/hello?after=1", timeout=20).status_code == 200
    # a stop while the exporter retries is still a clean, quick stop
    time.sleep(1.5)
    started = time.monotonic()
    assert p.stop() == 0
    assert time.monotonic() - started < 4.5


def test_env_fallback_and_headers(start_proxy, collector):
    p = start_proxy(
        {"export": {"otlp": {"interval_secs": 1}}},
        extra_env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_EXPORTER_OTLP_HEADERS": f"x-scope-orgid=team-a,authorization=Bearer%20{COLLECTOR_KEY}",
        },
    )
    with requests_session(p) as s:
        assert s.get("http://example.test/hello?env=1", timeout=20).status_code == 200
    rec = collector.wait_records(lambda r: "env=1" in str(r.attributes.get("url.full")), timeout=15)[0]
    assert rec.request.headers["x-scope-orgid"] == "team-a"
    assert rec.request.headers["authorization"] == f"Bearer {COLLECTOR_KEY}"
    assert COLLECTOR_KEY not in p.stderr_text()


@pytest.mark.parametrize(
    "otlp, key",
    [
        ({"endpoint": "collector:4318"}, "export.otlp.endpoint"),
        ({"endpoint": "grpc://collector:4317"}, "export.otlp.endpoint"),
        ({"endpoint": "http://c:4318", "interval_secs": 0}, "export.otlp.interval_secs"),
        ({"endpoint": "http://c:4318", "headers": {"bad name": "x"}}, "export.otlp.headers.bad name"),
        ({"endpoint": "http://c:4318", "batch": 5}, "export.otlp.batch"),
    ],
)
def test_bad_export_config_is_a_config_error(start_proxy, tmp_path, otlp, key):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(json.dumps({"export": {"otlp": otlp}}))
    r = airlock("config", "check", str(cfg))
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert key in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
