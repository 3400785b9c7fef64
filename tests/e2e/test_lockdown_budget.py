"""The kill switch and budgets (issue 5): `airlock lockdown on|off` (and SIGUSR1) block all egress
but `lockdown_allow`, at once, open connections included; `budgets` cap the request body bytes
sent to a host per hour."""

from __future__ import annotations

import json
import re
import signal

import pytest

from e2e_helpers import airlock, connect_tunnel, httpx_client
from policy_fixtures import *  # noqa: F401,F403
from policy_fixtures import (
    assert_blocked,
    assert_passed,
    check_policy_block,
    get,
    lockdown,
    post,
    status_json,
    wait_policy_threat,
)
from records import wait_for

# --------------------------------------------------------------------------- lockdown


def test_lockdown_on_and_off(policy_proxy, upstreams):
    p = policy_proxy({"lockdown_allow": ["local.test", "*.allowed.test"]})
    assert status_json(p).get("lockdown") is False
    assert_passed(get(p, "http://example.test/hello"))
    with httpx_client(p) as c:
        assert c.get("https://example.test/hello").status_code == 200  # a tunnel open before the switch
        lockdown(p, "on")
        # at once: the command has returned, the next request is blocked, on an open tunnel too
        r = c.get("https://example.test/echo/in-open-tunnel")
        assert r.status_code == 403 and r.headers.get("x-airlock-rule") == "lockdown", (r.status_code, r.text[:200])
    assert status_json(p).get("lockdown") is True
    r = post(p, "http://example.test/echo/locked", data=b"x")
    check_policy_block(p, r, "lockdown", host="example.test", method="POST", path_prefix="/echo/locked")
    assert_blocked(get(p, "https://example.test/hello"), "lockdown")
    # lockdown_allow
    assert_passed(get(p, f"http://local.test:{upstreams.http_port}/hello"))
    assert_passed(get(p, f"https://local.test:{upstreams.https_port}/hello"))
    assert_passed(get(p, "http://api.allowed.test/hello"))

    lockdown(p, "off")
    assert status_json(p).get("lockdown") is False
    assert_passed(get(p, "http://example.test/hello"))
    assert_passed(get(p, "https://example.test/hello"))


def test_lockdown_beats_allow_rules(policy_proxy):
    p = policy_proxy({"policy": {"allow_hosts": ["example.test"], "rules": [{"name": "allow-all", "match": "true", "action": "allow"}]}})
    lockdown(p, "on")
    assert_blocked(get(p, "http://example.test/hello"), "lockdown")


def test_sigusr1_turns_lockdown_on(policy_proxy):
    p = policy_proxy()
    assert_passed(get(p, "http://example.test/hello"))
    p.proc.send_signal(signal.SIGUSR1)

    def lockdown_on():
        if status_json(p).get("lockdown") is True:
            return True
        assert p.alive(), "SIGUSR1 killed airlock"
        return False

    wait_for(lockdown_on, timeout=3, interval=0.1, what="SIGUSR1 to turn lockdown on")
    assert_blocked(get(p, "http://example.test/hello"), "lockdown")
    assert_blocked(get(p, "https://example.test/hello"), "lockdown")
    wait_policy_threat(p, "lockdown")
    lockdown(p, "off")
    assert_passed(get(p, "http://example.test/hello"))


def test_lockdown_refuses_blind_connect(policy_proxy, upstreams):
    p = policy_proxy({"lockdown_allow": ["local.test"]}, mitm=False)
    lockdown(p, "on")
    sock, resp = connect_tunnel(p.port, "example.test:443")
    sock.close()
    assert resp.status == 403, f"CONNECT during lockdown answered {resp.status}"
    assert resp.headers.get("x-airlock-rule") == "lockdown", resp.headers
    assert resp.headers.get("x-airlock-block-reason") == "policy", resp.headers
    sock, resp = connect_tunnel(p.port, f"local.test:{upstreams.https_port}")
    sock.close()
    assert resp.status == 200, f"CONNECT to a lockdown_allow host answered {resp.status}"


def test_lockdown_blocks_gateways_too(policy_proxy, upstreams):
    svc = {"name": "svc", "listen": "127.0.0.1:0", "target": f"http://127.0.0.1:{upstreams.http_port}"}
    p = policy_proxy({"gateways": [svc]})
    gws = {g["name"]: g["listen"] for g in p.boot.get("gateways") or []}
    import requests

    assert requests.get(f"http://{gws['svc']}/hello", timeout=10).status_code == 200
    lockdown(p, "on")
    assert_blocked(requests.get(f"http://{gws['svc']}/hello", timeout=10), "lockdown")


# --------------------------------------------------------------------------- budgets


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_budget(policy_proxy, upstreams, scheme):
    p = policy_proxy({"budgets": [{"host": "example.test", "max_request_bytes_per_hour": 1000}]})
    url = f"{scheme}://example.test/echo/budget"
    assert_passed(post(p, url, data=b"a" * 400))
    assert_passed(post(p, url, data=b"b" * 400))  # 800 of 1000
    r = post(p, url, data=b"c" * 400)  # would make 1200
    doc = assert_blocked(r, rule_prefix="budget")
    t = wait_policy_threat(p, doc["rule"])
    assert t["dest"] == f"example.test:{80 if scheme == 'http' else 443}", t
    flow = p.wait_flows(lambda f: f.get("action") == "blocked" and "/echo/budget" in (f.get("url") or ""))[0]
    assert flow["status"] == 403, flow
    # still over: another request that would pass the budget is blocked too
    assert_blocked(post(p, url, data=b"d" * 300), rule_prefix="budget")
    # other hosts are not counted
    port = upstreams.http_port if scheme == "http" else upstreams.https_port
    assert_passed(post(p, f"{scheme}://local.test:{port}/echo/other", data=b"e" * 900))


def test_budget_counts_requests_without_content_length(policy_proxy):
    p = policy_proxy({"budgets": [{"host": "example.test", "max_request_bytes_per_hour": 1000}]})
    url = "http://example.test/echo/budget-chunked"
    assert_passed(post(p, url, data=iter([b"a" * 300, b"b" * 300])))  # chunked: 600
    assert_passed(post(p, url, data=b"c" * 300))  # 900
    r = post(p, url, data=iter([b"d" * 100, b"e" * 100]))  # would make 1100
    assert r.status_code == 403, f"a chunked upload past the budget answered {r.status_code}"


# --------------------------------------------------------------------------- config


def test_config_check_lockdown_and_budgets(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(
        json.dumps(
            {
                "lockdown_allow": ["api.anthropic.com", "*.internal.test"],
                "budgets": [{"host": "example.test", "max_request_bytes_per_hour": 1000}, {"host": "*.big.test", "max_request_bytes_per_hour": 10_000_000}],
            }
        )
    )
    r = airlock("config", "check", good)
    assert r.returncode == 0, r.stderr
    bad = {
        "budget_string": ({"budgets": [{"host": "x.test", "max_request_bytes_per_hour": "lots"}]}, [r"budgets", r"max_request_bytes_per_hour"]),
        "budget_bool": ({"budgets": [{"host": "x.test", "max_request_bytes_per_hour": True}]}, [r"max_request_bytes_per_hour"]),
        "budget_unknown_key": ({"budgets": [{"host": "x.test", "max_request_bytes_per_hour": 5, "per": "day"}]}, [r"budgets", r"\bper\b"]),
        "lockdown_allow_not_list": ({"lockdown_allow": 5}, [r"lockdown_allow"]),
    }
    for name, (doc, patterns) in bad.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(doc))
        r = airlock("config", "check", path)
        assert r.returncode == 2, f"{name}: exit {r.returncode} {r.stderr}"
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, f"{name}: {r.stderr!r}"
        for pat in patterns:
            assert re.search(pat, lines[0]), f"{name}: {lines[0]!r} does not name {pat}"
