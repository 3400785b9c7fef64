"""Live reload (issue 5, SPEC 7): SIGHUP and a change of the config file on disk reload policy,
routes, detection settings and the log level without dropping open connections; a bad new file
is refused and the running settings stay. `airlock status --json` shows the active file's
`config_digest` (sha256 of its bytes) and `config_loaded_at`."""

from __future__ import annotations

import json
import re
import time

import pytest
import websocket

from detect_fixtures import fresh_key
from e2e_helpers import httpx_client, sha256
from policy_fixtures import *  # noqa: F401,F403
from policy_fixtures import (
    assert_blocked,
    assert_passed,
    file_digest,
    get,
    policy_config,
    poll_request,
    reload_config,
    rewrite_config,
    sighup,
    status_json,
    stderr_mark,
    wait_digest,
)
from records import merge_config, wait_for
from upstream import SSE_HOLD_SECONDS

SCHEMES = ["http", "https"]


def _start(start_proxy, extra=None, **kw):
    config = policy_config(start_proxy, merge_config({"policy": {"deny_hosts": ["blocked.test"]}}, extra or {}))
    p = start_proxy(config, base=False, **kw)
    return p, config


def _deny_example(config):
    return merge_config(config, {"policy": {"deny_hosts": ["blocked.test", "example.test"]}})


# --------------------------------------------------------------------------- SIGHUP


@pytest.mark.parametrize("scheme", SCHEMES)
def test_sighup_new_file_blocks_host(start_proxy, upstreams, scheme):
    p, config = _start(start_proxy)
    assert_passed(get(p, f"{scheme}://example.test/hello"))
    reload_config(p, _deny_example(config))
    assert_blocked(get(p, f"{scheme}://example.test/hello"), "deny_hosts")
    assert_blocked(get(p, "http://blocked.test/hello"), "deny_hosts")
    port = upstreams.http_port if scheme == "http" else upstreams.https_port
    assert_passed(get(p, f"{scheme}://local.test:{port}/hello"))
    assert p.alive()


def test_status_digest_and_loaded_at(start_proxy):
    p, config = _start(start_proxy)
    st = status_json(p)
    assert st.get("config_digest") == file_digest(p.config_path), st
    loaded = st.get("config_loaded_at")
    assert loaded, f"status --json has no config_loaded_at: {st}"
    time.sleep(1.1)  # a timestamp with one-second resolution still moves
    digest = reload_config(p, _deny_example(config))
    st2 = status_json(p)
    assert st2["config_digest"] == digest != st["config_digest"]
    assert st2.get("config_loaded_at") and st2["config_loaded_at"] != loaded, (loaded, st2.get("config_loaded_at"))
    assert st2.get("pid") == st.get("pid") == p.proc.pid, "a reload must not restart the process"


def test_reload_applies_to_open_keepalive_connections(start_proxy):
    p, config = _start(start_proxy)
    with httpx_client(p) as c:
        assert c.get("https://example.test/hello").status_code == 200  # the tunnel is open
        assert c.get("http://example.test/hello").status_code == 200  # and a plain keep-alive connection
        reload_config(p, _deny_example(config))
        for url in ("https://example.test/hello", "http://example.test/hello"):
            r = c.get(url)
            assert r.status_code == 403 and r.headers.get("x-airlock-rule") == "deny_hosts", (
                f"{url} on a connection opened before the reload: {r.status_code} {r.text[:200]!r}"
            )


# --------------------------------------------------------------------------- open connections survive


@pytest.mark.parametrize("scheme", SCHEMES)
def test_sse_stream_opened_before_reload_is_not_cut(start_proxy, scheme):
    p, config = _start(start_proxy)
    buf = b""
    with httpx_client(p) as c:
        with c.stream("GET", f"{scheme}://example.test/sse") as r:
            assert r.status_code == 200
            it = r.iter_raw()
            t0 = time.monotonic()
            while b"data: first\n\n" not in buf:
                buf += next(it)
            reload_config(p, _deny_example(config), timeout=SSE_HOLD_SECONDS)
            reloaded = time.monotonic() - t0
            for chunk in it:
                buf += chunk
    assert buf.count(b"data: ") == 4, f"the stream was cut by the reload: {buf!r}"
    assert buf.endswith(b"data: event4\n\n"), buf
    assert reloaded < SSE_HOLD_SECONDS, f"the reload took {reloaded:.2f}s, longer than the stream's pause"
    assert_blocked(get(p, f"{scheme}://example.test/sse"), "deny_hosts")
    assert p.alive()


def test_slow_response_spans_a_reload(start_proxy):
    """The reload is known to have happened while the response was still open."""
    p, config = _start(start_proxy)
    buf = b""
    with httpx_client(p) as c:
        with c.stream("GET", "https://example.test/slow-body?delay=3") as r:
            it = r.iter_raw()
            while b"part1" not in buf:
                buf += next(it)
            reload_config(p, _deny_example(config), timeout=2.5)
            assert b"part2" not in buf
            t_reloaded = time.monotonic()
            for chunk in it:
                buf += chunk
            t_end = time.monotonic()
    assert buf == b"part1\npart2\n", f"the response was cut by the reload: {buf!r}"
    assert t_end > t_reloaded
    assert_blocked(get(p, "https://example.test/slow-body?delay=0"), "deny_hosts")


def test_websocket_survives_reload(start_proxy):
    p, config = _start(start_proxy)
    ws = websocket.create_connection(
        "wss://example.test/ws",
        http_proxy_host="127.0.0.1",
        http_proxy_port=p.port,
        proxy_type="http",
        sslopt={"ca_certs": str(p.ca_path)},
        timeout=10,
    )
    try:
        ws.send("before")
        assert ws.recv() == "before"
        reload_config(p, _deny_example(config))
        ws.send("after")
        assert ws.recv() == "after", "the WebSocket opened before the reload stopped working"
    finally:
        ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        websocket.create_connection(
            "wss://example.test/ws",
            http_proxy_host="127.0.0.1",
            http_proxy_port=p.port,
            proxy_type="http",
            sslopt={"ca_certs": str(p.ca_path)},
            timeout=10,
        )
    assert exc.value.status_code == 403


# --------------------------------------------------------------------------- a bad new file


def _bad_files(config):
    return {
        "invalid_yaml": ("policy:\n  deny_hosts: [unclosed, \n", [r"config|reload|yaml|pars|invalid|line|expected|error"]),
        "unknown_key": (json.dumps(merge_config(_deny_example(config), {"bogus_reload_key": 1})), [r"bogus_reload_key"]),
        "unknown_policy_key": (
            json.dumps(merge_config(_deny_example(config), {"policy": {"deny_hostz": ["x"]}})),
            [r"deny_hostz"],
        ),
        "wrong_type": (json.dumps(merge_config(_deny_example(config), {"log": True})), [r"\blog\b"]),
        "rule_does_not_compile": (
            json.dumps(merge_config(_deny_example(config), {"policy": {"rules": [{"name": "broken-rule-xyz", "match": "request.path ==", "action": "block"}]}})),
            [r"broken-rule-xyz"],
        ),
    }


BAD_KINDS = ["invalid_yaml", "unknown_key", "unknown_policy_key", "wrong_type", "rule_does_not_compile"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_new_file_is_refused(start_proxy, kind):
    p, config = _start(start_proxy)
    digest0 = file_digest(p.config_path)
    text, patterns = _bad_files(config)[kind]
    mark = stderr_mark(p)
    rewrite_config(p, text)
    sighup(p)

    def diagnosed():
        new = [line for line in p.stderr_lines[mark:] if not line.startswith('{"event"')]
        return [line for line in new if all(re.search(pat, line, re.I) for pat in patterns)]

    wait_for(diagnosed, timeout=3, what=f"a stderr diagnostic naming the error ({patterns}) after a bad reload",
             show=lambda _: f"new lines: {p.stderr_lines[mark:]}")
    assert p.alive(), "a bad new config file killed the proxy"
    # the old settings stay
    assert status_json(p).get("config_digest") == digest0, "the refused file became the active config"
    assert_blocked(get(p, "http://blocked.test/hello"), "deny_hosts")
    assert_passed(get(p, "http://example.test/hello"))
    assert_passed(get(p, "https://example.test/hello"))
    # a good file afterwards is taken
    reload_config(p, _deny_example(config))
    assert_blocked(get(p, "http://example.test/hello"), "deny_hosts")


def test_bad_file_on_disk_without_signal_is_refused(start_proxy):
    p, config = _start(start_proxy)
    digest0 = file_digest(p.config_path)
    time.sleep(0.5)
    mark = stderr_mark(p)
    rewrite_config(p, json.dumps(merge_config(_deny_example(config), {"bogus_disk_key": 1})))
    wait_for(lambda: any("bogus_disk_key" in line for line in p.stderr_lines[mark:]), timeout=3.5,
             what="a diagnostic for the bad file on disk", show=lambda _: f"new lines: {p.stderr_lines[mark:]}")
    assert p.alive()
    assert status_json(p).get("config_digest") == digest0
    assert_passed(get(p, "http://example.test/hello"))


# --------------------------------------------------------------------------- file change, no signal


def test_file_change_without_signal_is_picked_up(start_proxy):
    p, config = _start(start_proxy)
    assert_passed(get(p, "http://example.test/hello"))
    time.sleep(0.5)
    digest = rewrite_config(p, _deny_example(config))
    poll_request(
        lambda: get(p, "http://example.test/hello"),
        lambda r: r.status_code == 403,
        timeout=3.5,
        what="the rewritten file (no signal) to take effect",
    )
    assert_blocked(get(p, "https://example.test/hello"), "deny_hosts")
    wait_digest(p, digest, timeout=1)


# --------------------------------------------------------------------------- what a reload reloads


def test_reload_routes(start_proxy):
    key = fresh_key("anthropic")
    env_name = "AIRLOCK_E2E_RELOAD_KEY"
    p, config = _start(start_proxy, extra_env={env_name: key.secret})
    hdrs = {"Authorization": "Bearer placeholder"}
    echo = get(p, "https://example.test/echo?headers=sha256", headers=hdrs).json()
    assert echo["headers"].get("authorization") == sha256(b"Bearer placeholder")
    assert "x-api-key" not in echo["headers"]
    route = {"host": "example.test", "inject": {"header": "x-api-key", "value_env": env_name}}
    reload_config(p, merge_config(config, {"routes": [route]}))
    r = get(p, "https://example.test/echo?headers=sha256", headers=hdrs)
    assert_passed(r)
    echo = r.json()
    assert echo["headers"].get("x-api-key") == sha256(key.secret.encode()), "the reloaded route did not inject"
    assert "authorization" not in echo["headers"], "the agent's placeholder was not stripped"


def test_reload_detection_settings(start_proxy):
    key = fresh_key("github")
    p, config = _start(start_proxy, extra={"detect": {"outbound_secrets": "off"}})
    assert_passed(get(p, f"http://example.test/hello?token={key.secret}"))
    reload_config(p, merge_config(config, {"detect": {"outbound_secrets": "block"}}))
    r = get(p, f"http://example.test/hello?token={key.secret}")
    assert_blocked(r, key.rule, reason="credential-leak")


def test_reload_log_level(start_proxy):
    p, config = _start(start_proxy, extra={"log": 0}, log=None)
    assert p.boot["log"] == "off"
    assert_passed(get(p, "http://example.test/echo/before-reload"))
    p.wait_flows(lambda f: "/echo/before-reload" in (f.get("url") or ""))
    assert not p.events("egress_request")
    reload_config(p, merge_config(config, {"log": 2}))
    assert_passed(get(p, "http://example.test/echo/after-reload"))
    wait_for(lambda: [e for e in p.events("egress_request") if str(e.get("path", "")).startswith("/echo/after-reload")],
             timeout=3, what="an egress_request after reloading with log: 2")
    reload_config(p, merge_config(config, {"log": 0}))
    n = len(p.events("egress_request"))
    assert_passed(get(p, "http://example.test/echo/after-second-reload"))
    p.wait_flows(lambda f: "/echo/after-second-reload" in (f.get("url") or ""))
    time.sleep(0.2)
    assert len(p.events("egress_request")) == n, "egress_request still written after reloading with log: 0"
