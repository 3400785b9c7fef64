"""The issue-5 config keys (SPEC 6): `policy`, `allow_private`, `lockdown_allow`, `budgets`,
`routes`, checked by `airlock config check` (exit 2, one line naming the key or the rule) and by
`airlock start`."""

from __future__ import annotations

import json
import re

import pytest

from e2e_helpers import airlock, clean_environ

GOOD_YAML = """\
allow_private: ["127.0.0.0/8"]
lockdown_allow: ["api.anthropic.com"]
budgets:
  - {host: example.test, max_request_bytes_per_hour: 1000}
policy:
  default: deny
  allow_hosts: ["*.github.com", "api.anthropic.com"]
  deny_hosts: ["*.pastebin.com"]
  refresh_secs: 60
  source: null
  rules:
    - name: no-posts-to-gists
      match: request.method == "POST" && request.host.endsWith("gist.github.com")
      action: block
    - name: watch-tools
      match: attrs["tool.name"] == "http.put" || attrs["http.url"].startsWith("https://example.test/")
      action: warn
    - name: local-ok
      match: source.ip == "127.0.0.1" && listener == "proxy" && request.port == 443 && request.scheme == "https"
      action: allow
    - name: big-bodies
      match: request.body_size > 1000000 || request.query.contains("dump") || request.url.contains("/upload")
      action: block
    - name: header-check
      match: '"x-agent" in request.headers && request.headers["x-agent"] == "rogue" && request.path != "/"'
      action: block
routes:
  - host: api.anthropic.com
    inject: {header: x-api-key, value_env: AIRLOCK_E2E_CHECK_KEY}
    strip: [authorization, x-api-key]
    allow_paths: ["/v1/messages*"]
"""


def _check(tmp_path, name, text, env=None):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    r = airlock("config", "check", path, env=env)
    return r, r.stderr.strip().splitlines()


def test_config_check_accepts_the_policy_vocabulary(tmp_path):
    env = clean_environ()
    env["AIRLOCK_E2E_CHECK_KEY"] = "x"
    r, _ = _check(tmp_path, "good", GOOD_YAML, env)
    assert r.returncode == 0, r.stderr
    r, _ = _check(tmp_path, "source", json.dumps({"policy": {"source": "http://127.0.0.1:9/policy.json", "refresh_secs": 1}}))
    assert r.returncode == 0, r.stderr
    r, _ = _check(tmp_path, "allow_default", "policy: {default: allow, rules: []}\n")
    assert r.returncode == 0, r.stderr


def _rules(*rules):
    return json.dumps({"policy": {"rules": list(rules)}})


BAD = [
    ("rule_does_not_compile", _rules({"name": "typo-rule-xyz", "match": 'request.method == "POST" &&', "action": "block"}), [r"typo-rule-xyz"]),
    ("rule_unbalanced", _rules({"name": "paren-rule-xyz", "match": '(request.path == "/"', "action": "block"}), [r"paren-rule-xyz"]),
    ("rule_bad_action", _rules({"name": "r1", "match": "true", "action": "deny"}), [r"action"]),
    ("rule_unknown_key", _rules({"name": "r1", "match": "true", "action": "block", "priority": 1}), [r"priority"]),
    ("rule_match_not_string", _rules({"name": "r1", "match": True, "action": "block"}), [r"match"]),
    ("default_bad", json.dumps({"policy": {"default": "maybe"}}), [r"default"]),
    ("unknown_policy_key", json.dumps({"policy": {"deny_hostz": ["x"]}}), [r"deny_hostz"]),
    ("refresh_bool", json.dumps({"policy": {"refresh_secs": True}}), [r"refresh_secs"]),
    ("refresh_string", json.dumps({"policy": {"refresh_secs": "60"}}), [r"refresh_secs"]),
    ("deny_hosts_not_list", json.dumps({"policy": {"deny_hosts": "evil.test"}}), [r"deny_hosts"]),
    ("source_not_string", json.dumps({"policy": {"source": 5}}), [r"source"]),
]


@pytest.mark.parametrize("name,text,patterns", BAD, ids=[b[0] for b in BAD])
def test_config_check_rejects_bad_policy(tmp_path, name, text, patterns):
    r, lines = _check(tmp_path, name, text)
    assert r.returncode == 2, f"exit {r.returncode} for {text!r}: {r.stdout} {r.stderr}"
    assert len(lines) == 1, f"expected one error line, got: {r.stderr!r}"
    for pat in patterns:
        assert re.search(pat, lines[0]), f"error line does not name {pat}: {lines[0]!r}"


def test_start_refuses_a_rule_that_does_not_compile(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(_rules({"name": "start-typo-xyz", "match": "request.path ==", "action": "block"}))
    r = airlock("start", "--listen", "127.0.0.1:0", "--data-dir", tmp_path / "d", "--config", path, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert "start-typo-xyz" in r.stderr
