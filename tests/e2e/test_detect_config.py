"""The detection keys of the config (SPEC 6): `detect`, `max_scan_bytes`, `max_hold_bytes`,
`dedup_window_secs`, checked by `airlock config check` and by `airlock start`."""

from __future__ import annotations

import re

import pytest

from detect_fixtures import fresh_key
from e2e_helpers import airlock

GOOD = """\
max_scan_bytes: 8388608
max_hold_bytes: 524288
dedup_window_secs: 30
detect:
  outbound_secrets: block
  inbound_secrets: redact
  inbound_injection: warn
  prompt_injection: warn
  disabled_patterns: []
"""


def test_config_check_accepts_detect_keys(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    r = airlock("config", "check", path)
    assert r.returncode == 0, r.stderr
    for name, body in {
        "all_off": 'detect: {outbound_secrets: "off", inbound_secrets: "off", inbound_injection: "off", prompt_injection: "off"}\n',
        "warns": "detect: {outbound_secrets: warn, inbound_secrets: warn}\n",
        "blocks": "detect: {inbound_secrets: block, inbound_injection: block, prompt_injection: block}\n",
        "json": '{"detect": {"outbound_secrets": "redact"}, "dedup_window_secs": 0}',
    }.items():
        p = tmp_path / f"{name}.yaml"
        p.write_text(body)
        r = airlock("config", "check", p)
        assert r.returncode == 0, f"{name}: {r.stderr}"


def test_unquoted_off_is_the_action_off(tmp_path):
    # the spec's own vocabulary (block | redact | warn | off) written as a user writes YAML
    path = tmp_path / "off.yaml"
    path.write_text("detect:\n  outbound_secrets: off\n  inbound_injection: off\n")
    r = airlock("config", "check", path)
    assert r.returncode == 0, f"`outbound_secrets: off` (unquoted) refused: {r.stderr}"


def test_config_check_accepts_a_known_disabled_pattern(tmp_path):
    rule = fresh_key("github").rule
    path = tmp_path / "disabled.yaml"
    path.write_text(f"detect:\n  disabled_patterns: [{rule}]\n")
    r = airlock("config", "check", path)
    assert r.returncode == 0, r.stderr


BAD = [
    ("redact_inbound_injection", "detect:\n  inbound_injection: redact\n", [r"inbound_injection"]),
    ("redact_prompt_injection", "detect:\n  prompt_injection: redact\n", [r"prompt_injection"]),
    ("unknown_action", "detect:\n  outbound_secrets: maybe\n", [r"outbound_secrets"]),
    ("unknown_pattern", "detect:\n  disabled_patterns: [no_such_rule_xyz]\n", [r"no_such_rule_xyz"]),
    ("unknown_detect_key", "detect:\n  sideways_secrets: block\n", [r"sideways_secrets"]),
    ("scan_bytes_string", 'max_scan_bytes: "big"\n', [r"max_scan_bytes"]),
    ("hold_bytes_bool", "max_hold_bytes: true\n", [r"max_hold_bytes"]),
    ("dedup_negative", "dedup_window_secs: -5\n", [r"dedup_window_secs"]),
    ("action_bool", "detect:\n  inbound_secrets: true\n", [r"inbound_secrets"]),
]


@pytest.mark.parametrize("name,content,patterns", BAD, ids=[b[0] for b in BAD])
def test_config_check_rejects_bad_detect(tmp_path, name, content, patterns):
    path = tmp_path / f"{name}.yaml"
    path.write_text(content)
    r = airlock("config", "check", path)
    assert r.returncode == 2, f"exit {r.returncode} for {content!r}: {r.stdout} {r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got: {r.stderr!r}"
    for pat in patterns:
        assert re.search(pat, lines[0]), f"error line does not name {pat}: {lines[0]!r}"


def test_start_refuses_redact_for_injection(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("detect:\n  inbound_injection: redact\n")
    r = airlock("start", "--listen", "127.0.0.1:0", "--data-dir", tmp_path / "d", "--config", path, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert "inbound_injection" in r.stderr
