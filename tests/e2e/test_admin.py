"""The admin server: health, Prometheus metrics and the JSON API (SPEC 6, 6b)."""

import json
import re
import socket
import subprocess
import time

import httpx
import pytest

from e2e_helpers import AIRLOCK_BIN, airlock, cli_env, closed_port, curl
from records import wait_for

TOKEN = "ghp_" + "Zq8wXr3Tn5Lp7Kd9Hf2Jb4Mc6Vg1Ns0Ye3Ua"


def _admin(p) -> str:
    addr = p.boot.get("admin")
    assert addr and not addr.endswith(":0"), f"boot line admin: {p.boot}"
    return f"http://{addr}"


def _get(url, **kw):
    with httpx.Client(trust_env=False, timeout=10) as c:
        return c.get(url, **kw)


def _traffic(p):
    assert curl(["https://example.test/hello"], proxy=p, cacert=p.ca_path).status == 200
    r = curl(["-X", "POST", "-d", f"token={TOKEN}", "https://example.test/post"], proxy=p, cacert=p.ca_path)
    assert r.status == 403


def _samples(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out


def test_health_and_boot_line(proxy):
    base = _admin(proxy)
    assert _get(f"{base}/healthz").status_code == 200
    assert _get(f"{base}/readyz").status_code == 200


def test_metrics_count_what_the_records_hold(proxy):
    _traffic(proxy)
    base = _admin(proxy)

    def counted():
        r = _get(f"{base}/metrics")
        s = _samples(r.text)
        return (r, s) if s.get('airlock_requests_total{listener="proxy",action="blocked"}', 0) >= 1 else None

    r, s = wait_for(counted, what="the blocked request in /metrics", timeout=10)
    assert r.headers["content-type"].startswith("application/openmetrics-text"), r.headers
    assert r.text.rstrip().endswith("# EOF")
    assert s['airlock_requests_total{listener="proxy",action="allowed"}'] >= 1
    threat = [k for k in s if k.startswith("airlock_threats_total{") and 'threat_type="EXFIL"' in k]
    assert threat and s[threat[0]] >= 1, r.text
    assert any(k.startswith("airlock_detections_total{") for k in s), r.text
    assert s['airlock_bytes_total{direction="response"}'] >= len("hello")
    assert s["airlock_request_duration_seconds_count"] >= 2
    assert "airlock_open_connections" in s
    assert s["airlock_leaf_cache_misses_total"] >= 1
    assert "airlock_leaf_cache_hits_total" in s
    assert s["airlock_store_dropped_total"] == 0
    assert "airlock_store_queue_depth" in s
    assert TOKEN not in r.text
    # The official parser reads it, and its counters match the traffic sent.
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    requests = {
        s.labels["action"]: s.value
        for s in families["airlock_requests"].samples
        if s.name == "airlock_requests_total" and s.labels["listener"] == "proxy"
    }
    assert requests.get("allowed", 0) >= 1 and requests.get("blocked", 0) >= 1, requests
    assert families["airlock_requests"].type == "counter"
    assert families["airlock_request_duration_seconds"].type == "histogram"
    assert families["airlock_open_connections"].type == "gauge"


def test_api_flows_threats_status_agree_with_the_cli(proxy):
    _traffic(proxy)
    base = _admin(proxy)

    def stored():
        flows = _get(f"{base}/api/flows?limit=10").json()
        return flows if len(flows) >= 2 else None

    flows = wait_for(stored, what="two flows in /api/flows", timeout=10)
    assert flows[0]["method"] == "POST" and flows[0]["action"] == "blocked", "newest first"
    assert all(TOKEN not in json.dumps(f) for f in flows)
    assert [f["action"] for f in _get(f"{base}/api/flows?action=blocked").json()] == ["blocked"]
    assert _get(f"{base}/api/flows?host=*.example.com").json() == []
    assert len(_get(f"{base}/api/flows?limit=1").json()) == 1
    threats = _get(f"{base}/api/threats?limit=5").json()
    assert threats and threats[0]["threat_type"] == "EXFIL", threats
    assert _get(f"{base}/api/usage?by=model").json() == []
    assert _get(f"{base}/api/usage?by=planet").status_code == 400
    assert _get(f"{base}/api/pending").json() == []
    status = _get(f"{base}/api/status").json()
    assert status["running"] is True and status["counters"]["requests"] >= 2, status
    assert status["counters"]["threats"] >= 1 and status["last_threats"], status
    cli = json.loads(airlock("status", "--json", env=cli_env(proxy)).stdout)
    assert cli["counters"] == status["counters"], (cli, status)
    assert len(cli["last_threats"]) == len(status["last_threats"])


def test_admin_off(start_proxy):
    p = start_proxy({"admin": None})
    assert p.boot["admin"] is None


def test_an_explicit_admin_address_in_use_is_an_error(start_proxy):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        cfg = start_proxy.base_config()
        cfg["admin"] = {"listen": f"127.0.0.1:{port}"}
        path = start_proxy.write_config(cfg)
        r = subprocess.run(
            [AIRLOCK_BIN, "start", "--data-dir", str(start_proxy.new_data_dir()), "--config", str(path),
             "--listen", "127.0.0.1:0"],
            capture_output=True, text=True, timeout=30,
        )
        assert r.returncode == 1, r.stderr
        assert "admin" in r.stderr and str(port) in r.stderr, r.stderr
    finally:
        holder.close()


def test_off_loopback_needs_a_token(start_proxy, monkeypatch):
    cfg = start_proxy.base_config()
    cfg["admin"] = {"listen": "0.0.0.0:0"}
    r = airlock("config", "check", start_proxy.write_config(cfg))
    assert r.returncode == 2 and "admin.token_env" in r.stderr, r.stderr
    cfg["admin"] = {"listen": "0.0.0.0:0", "token_env": "AIRLOCK_TEST_ADMIN_TOKEN"}
    # Named but not set: a runtime error naming the variable.
    path = start_proxy.write_config(cfg)
    r = subprocess.run(
        [AIRLOCK_BIN, "start", "--data-dir", str(start_proxy.new_data_dir()), "--config", str(path),
         "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=30,
        env={k: v for k, v in __import__("os").environ.items() if k != "AIRLOCK_TEST_ADMIN_TOKEN"},
    )
    assert r.returncode == 1 and "AIRLOCK_TEST_ADMIN_TOKEN" in r.stderr, r.stderr
    monkeypatch.setenv("AIRLOCK_TEST_ADMIN_TOKEN", "s3cret-admin-token")
    p = start_proxy(cfg)
    port = p.boot["admin"].rsplit(":", 1)[1]
    base = f"http://127.0.0.1:{port}"
    assert _get(f"{base}/healthz").status_code == 200, "health checks need no token"
    r = _get(f"{base}/api/status")
    assert r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer"
    assert _get(f"{base}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = _get(f"{base}/api/status", headers={"Authorization": "Bearer s3cret-admin-token"})
    assert ok.status_code == 200 and ok.json()["running"] is True
