"""Threat alerts (`alerts.webhook_url`, SPEC 6): one POST per threat per dedup window, whose JSON is
the threat record exactly as in threats.jsonl (masked) plus a Slack-compatible `text`; never the
secret; a failing webhook is retried; a webhook that is down does not slow requests, and what it
missed is counted in /metrics."""

from __future__ import annotations

import time
import urllib.request

import pytest

from detect_fixtures import *  # noqa: F401,F403
from detect_fixtures import fresh_key
from e2e_helpers import closed_port, requests_session
from otlp_receiver import WebhookReceiver, wait_quiet
from records import wait_for, wait_threats


def _unchained(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("chain", "chain_prev")}


def _counter(p, name: str, result: str) -> float:
    with urllib.request.urlopen(f"http://{p.boot['admin']}/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(f'{name}{{result="{result}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _leak(p, key, tag: str) -> float:
    """POSTs the key through the proxy (blocked); returns how long the request took."""
    started = time.monotonic()
    with requests_session(p) as s:
        r = s.post(f"https://example.test/echo?alert={tag}", data=f"note: {key.text}", timeout=20)
    assert r.status_code == 403, r.text
    return time.monotonic() - started


@pytest.fixture
def webhook():
    r = WebhookReceiver()
    yield r
    r.stop()


def test_one_alert_per_threat_per_dedup_window(start_proxy, webhook):
    p = start_proxy({"alerts": {"webhook_url": f"{webhook.url}/services/T000/B000/hooktoken"}})
    github = fresh_key("github")
    _leak(p, github, "1")
    _leak(p, github, "2")  # same (pattern, dest, direction) within the window: no second alert
    anthropic = fresh_key("anthropic")
    _leak(p, anthropic, "3")

    threats = wait_threats(p, count=2)
    alerts = webhook.wait_alerts(count=2)
    wait_quiet(1.5)
    assert len(webhook.alerts()) == 2, webhook.alerts()
    by_rule = {a["pattern"]: a for a in webhook.alerts()}
    assert set(by_rule) == {github.rule, anthropic.rule}, alerts
    for t in threats:
        a = dict(by_rule[t["pattern"]])
        text = a.pop("text")
        # the threat record exactly as threats.jsonl has it, plus text
        assert a == _unchained(t)
        assert text.startswith(f"airlock: EXFIL blocked {t['pattern']} → example.test:443 (POST /echo"), text
    for req in webhook.requests:
        assert req.path == "/services/T000/B000/hooktoken"
        assert req.headers["content-type"] == "application/json"
    # never the secret; and the webhook's token is in no log line
    everything = webhook.all_bytes()
    assert github.secret.encode() not in everything and anthropic.secret.encode() not in everything
    assert "hooktoken" not in p.stderr_text()
    assert _counter(p, "airlock_alerts_total", "sent") == 2


def test_after_the_dedup_window_the_same_threat_alerts_again(start_proxy, webhook):
    p = start_proxy({"alerts": {"webhook_url": webhook.url}, "dedup_window_secs": 1})
    key = fresh_key("github")
    _leak(p, key, "a")
    webhook.wait_alerts(count=1)
    time.sleep(1.2)
    _leak(p, key, "b")
    alerts = webhook.wait_alerts(count=2)
    assert [a["pattern"] for a in alerts] == [key.rule, key.rule]


def test_a_failing_webhook_is_retried(start_proxy, webhook):
    webhook.fail_next(2, status=500)
    p = start_proxy({"alerts": {"webhook_url": webhook.url}})
    key = fresh_key("github")
    _leak(p, key, "retry")
    alert = webhook.wait_alerts(timeout=15)[0]
    assert alert["pattern"] == key.rule
    assert [r.status for r in webhook.requests] == [500, 500, 200]
    wait_for(lambda: _counter(p, "airlock_alerts_total", "sent"), lambda n: n == 1, what="sent alert")
    assert _counter(p, "airlock_alerts_total", "failed") == 0


def test_a_down_webhook_does_not_slow_requests(start_proxy):
    p = start_proxy({"alerts": {"webhook_url": f"http://127.0.0.1:{closed_port()}/hook"}})
    # The host's certificate is made on the first request (slow in a debug build on a busy
    # machine): not what is measured here.
    with requests_session(p) as s:
        assert s.get("https://example.test/hello?warm=1", timeout=20).status_code == 200
    slowest = max(_leak(p, fresh_key(role), str(i)) for i, role in enumerate(["github", "anthropic"] * 3))
    assert slowest < 1.0, f"a request took {slowest:.2f}s with the webhook down"
    # two distinct threats (the repeats are deduplicated); each given up on after 4 attempts
    wait_for(lambda: _counter(p, "airlock_alerts_total", "failed"), lambda n: n >= 2, timeout=30,
             what="failed alerts in /metrics")
    assert _counter(p, "airlock_alerts_total", "sent") == 0
    with requests_session(p) as s:
        assert s.get("http://example.test/hello", timeout=20).status_code == 200


def test_a_secret_in_the_url_is_masked_in_the_alert(start_proxy, webhook):
    p = start_proxy({"alerts": {"webhook_url": webhook.url}})
    key = fresh_key("github")
    with requests_session(p) as s:
        r = s.get(f"https://example.test/echo?token={key.secret}&x=1", timeout=20)
    assert r.status_code == 403
    alert = webhook.wait_alerts()[0]
    assert alert["pattern"] == key.rule
    assert alert["path"].startswith("/echo"), alert
    assert key.secret not in alert["text"] and key.secret not in alert["path"], alert
    assert key.secret.encode() not in webhook.all_bytes()
