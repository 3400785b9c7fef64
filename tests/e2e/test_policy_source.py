"""Remote policy (issue 5, SPEC 7): `policy.source` serves {"rules": [...]}, pulled at start and
every `refresh_secs`; its rules come after the file's own rules; a failed pull keeps the last good
set; with none ever loaded everything is blocked (rule `policy-source`)."""

from __future__ import annotations

import json
import time

from policy_fixtures import *  # noqa: F401,F403
from policy_fixtures import (
    assert_blocked,
    assert_passed,
    get,
    has_rule_count,
    poll_request,
    policy_diagnostics,
    rule,
    stderr_mark,
    wait_policy_threat,
)
from records import wait_for


def _source(server, **extra):
    return {"policy": {"source": server.url, "refresh_secs": 1, **extra}}


def _is_block(name):
    return lambda r: r.status_code == 403 and r.headers.get("x-airlock-rule") == name


def _wait_diag(proxy, count, since=0, timeout=4.0):
    wait_for(
        lambda: policy_diagnostics(proxy, since), lambda lines: any(has_rule_count(d, count) for d in lines), None, timeout,
        what=f"a JSON diagnostic line on stderr mentioning the policy and its {count} rules",
        show=lambda lines: f"policy lines: {json.dumps(lines)[:1500]}; last stderr: {proxy.stderr_lines[-5:]}",
    )


def test_remote_rules_followed_then_kept_when_source_goes_down(policy_proxy, policy_server):
    policy_server.set_rules(
        [
            rule("remote-a", 'request.path == "/echo/a"'),
            rule("remote-a2", 'request.path == "/echo/a2"'),
            rule("remote-a3", 'request.path == "/echo/a3"'),
        ]
    )
    p = policy_proxy(_source(policy_server))
    r = poll_request(lambda: get(p, "http://example.test/echo/a"), _is_block("remote-a"), what="remote-a to apply")
    assert_blocked(r, "remote-a")
    wait_policy_threat(p, "remote-a")
    assert_passed(get(p, "http://example.test/echo/b"))
    assert_blocked(get(p, "https://example.test/echo/a3"), "remote-a3")
    _wait_diag(p, 3)

    # the server changes its rules: the proxy follows within a refresh or two
    mark = stderr_mark(p)
    policy_server.set_rules(
        [
            rule("remote-b", 'request.path == "/echo/b"'),
            rule("remote-c", 'request.path == "/echo/c"', "warn"),
        ]
    )
    poll_request(lambda: get(p, "http://example.test/echo/b"), _is_block("remote-b"), what="remote-b to apply")
    assert_passed(get(p, "http://example.test/echo/a"))
    assert_passed(get(p, "https://example.test/echo/c"))
    wait_policy_threat(p, "remote-c", action="warned")
    _wait_diag(p, 2, since=mark)

    # the server goes away: the last rules stay
    policy_server.stop()
    time.sleep(2.5)  # more than two refresh periods
    assert p.alive()
    assert_blocked(get(p, "http://example.test/echo/b"), "remote-b")
    assert_blocked(get(p, "https://example.test/echo/b"), "remote-b")
    assert_passed(get(p, "http://example.test/echo/a"))


def test_bad_pulls_keep_the_last_good_set(policy_proxy, policy_server):
    policy_server.set_rules([rule("remote-keep", 'request.path == "/echo/keep"')])
    p = policy_proxy(_source(policy_server))
    poll_request(lambda: get(p, "http://example.test/echo/keep"), _is_block("remote-keep"))
    for bad in (
        lambda: policy_server.set_status(500),
        lambda: policy_server.set_body("this is not json {"),
        lambda: policy_server.set_body(json.dumps({"rules": [rule("remote-broken", "request.path ==")]})),
    ):
        bad()
        n = policy_server.hits
        policy_server.wait_hits(n + 2, timeout=5)  # two pulls of the bad document
        assert_blocked(get(p, "http://example.test/echo/keep"), "remote-keep")
        assert_passed(get(p, "http://example.test/echo/other"))
    assert p.alive()


def test_nothing_loaded_blocks_everything(policy_proxy, policy_server):
    policy_server.set_status(503)
    p = policy_proxy(_source(policy_server))
    for scheme in ("http", "https"):
        r = get(p, f"{scheme}://example.test/hello")
        assert_blocked(r, "policy-source")
    wait_policy_threat(p, "policy-source")
    # once a set is served, it applies and the rest passes
    policy_server.set_rules([rule("remote-first", 'request.path == "/echo/first"')])
    poll_request(lambda: get(p, "http://example.test/hello"), lambda r: r.status_code == 200, what="first good pull")
    assert_blocked(get(p, "http://example.test/echo/first"), "remote-first")


def test_source_refused_at_start_blocks_everything(policy_proxy, policy_server):
    policy_server.stop()
    p = policy_proxy(_source(policy_server))
    assert_blocked(get(p, "http://example.test/hello"), "policy-source")
    policy_server.set_rules([])
    policy_server.restart()
    poll_request(lambda: get(p, "http://example.test/hello"), lambda r: r.status_code == 200, what="first good pull")


def test_remote_rules_come_after_file_rules_and_before_host_lists(policy_proxy, policy_server, upstreams):
    policy_server.set_rules(
        [
            rule("remote-block-example", 'request.host == "example.test"'),
            rule("remote-allow-local", 'request.host == "local.test"', "allow"),
            rule("remote-allow-blocked", 'request.host == "blocked.test"', "allow"),
        ]
    )
    p = policy_proxy(
        _source(
            policy_server,
            default="deny",
            deny_hosts=["blocked.test"],
            allow_hosts=["example.test", "other.test"],
            rules=[rule("file-allow", 'request.path == "/echo/file-allowed"', "allow")],
        )
    )
    poll_request(
        lambda: get(p, "http://example.test/echo/other"), _is_block("remote-block-example"), what="remote rules loaded"
    )
    # the file's rule comes first
    assert_passed(get(p, "http://example.test/echo/file-allowed"))
    assert_passed(get(p, "https://example.test/echo/file-allowed"))
    # the remote block comes before allow_hosts
    assert_blocked(get(p, "https://example.test/echo/other"), "remote-block-example")
    # the remote allow comes before default deny
    assert_passed(get(p, f"http://local.test:{upstreams.http_port}/hello"))
    # deny_hosts comes before any rule
    assert_blocked(get(p, "http://blocked.test/hello"), "deny_hosts")
    # allow_hosts still allows what no rule decided; default decides the rest
    assert_passed(get(p, "http://other.test/hello"))
    assert_blocked(get(p, "http://evil.test/hello"), "default")
