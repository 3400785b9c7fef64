"""Command line: config check, start/stop/status, ca."""

import json
import re

import pytest

from e2e_helpers import AIRLOCK_BIN, airlock, curl, pid_alive
from records import wait_for

GOOD_JSON = {
    "proxy_host": "127.0.0.1",
    "proxy_port": 8888,
    "log": 2,
    "log_level": "INFO",
    "enable_mitm": True,
    "passthrough_hosts": ["*.apple.com"],
    "http1_only_hosts": ["ws.example.com"],
    "upstream_ca": [],
    "resolve": {"a.test": "127.0.0.1", "b.test:443": "127.0.0.1:8443"},
    "keylog_file": None,
    "limits": {
        "max_connections": 100,
        "header_bytes": 65536,
        "idle_timeout": 30,
        "header_timeout": 10,
        "connect_timeout": 10,
        "request_timeout": 60,
    },
}

GOOD_YAML = """\
# a YAML config
proxy_host: 127.0.0.1
proxy_port: 8899
log: 1
enable_mitm: false
passthrough_hosts:
  - "*.apple.com"
limits:
  idle_timeout: 30
"""


def test_config_check_good_files(tmp_path):
    good_json = tmp_path / "good.json"
    good_json.write_text(json.dumps(GOOD_JSON))
    r = airlock("config", "check", good_json)
    assert r.returncode == 0, r.stderr
    good_yaml = tmp_path / "good.yaml"
    good_yaml.write_text(GOOD_YAML)
    r = airlock("config", "check", good_yaml)
    assert r.returncode == 0, r.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    assert airlock("config", "check", empty).returncode == 0


BAD = [
    ("unknown_key", "nonsense: 1\n", [r"nonsense"]),
    ("nested_unknown_key", "limits:\n  bogus_limit: 5\n", [r"limits", r"bogus_limit"]),
    ("log_bool", "log: true\n", [r"\blog\b"]),
    ("log_string", 'log: "1"\n', [r"\blog\b"]),
    ("proxy_port_string", 'proxy_port: "x"\n', [r"proxy_port"]),
    ("limits_bool", "limits:\n  idle_timeout: true\n", [r"limits", r"idle_timeout"]),
]


@pytest.mark.parametrize("name,content,patterns", BAD, ids=[b[0] for b in BAD])
def test_config_check_rejects(tmp_path, name, content, patterns):
    path = tmp_path / f"{name}.yaml"
    path.write_text(content)
    r = airlock("config", "check", path)
    assert r.returncode == 2, f"exit {r.returncode} for {content!r}: {r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got: {r.stderr!r}"
    for pat in patterns:
        assert re.search(pat, lines[0]), f"error line does not name {pat}: {lines[0]!r}"


def test_start_with_bad_config_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("nonsense: 1\n")
    r = airlock("start", "--listen", "127.0.0.1:0", "--data-dir", tmp_path / "d", "--config", path, timeout=20)
    assert r.returncode == 2
    assert "nonsense" in r.stderr


def test_second_start_on_same_data_dir_refused(proxy):
    try:
        r = airlock(
            "start", "--listen", "127.0.0.1:0", "--data-dir", proxy.data_dir, "--config", proxy.config_path, timeout=15
        )
    except Exception as e:  # TimeoutExpired: it kept running
        raise AssertionError(f"a second `airlock start` on a busy data dir did not exit: {e}") from None
    assert r.returncode != 0
    assert "already running" in r.stderr.lower(), r.stderr
    assert proxy.alive()


def _listen_port(status):
    listen = status["listen"]
    if isinstance(listen, list):
        listen = listen[0]
    if isinstance(listen, dict):
        listen = listen.get("listen") or listen.get("addr")
    return int(str(listen).rpartition(":")[2])


def test_detach_status_stop(start_proxy, run_env, pid_cleanup):
    data_dir = start_proxy.new_data_dir()
    config_path = start_proxy.write_config(start_proxy.base_config())
    env = run_env(data_dir, config_path)
    try:
        r = airlock(
            "start", "--detach", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--config", config_path,
            env=env, timeout=30,
        )
    except Exception as e:
        raise AssertionError(f"`airlock start --detach` did not return within 30 s (stdio left open?): {e}") from None
    assert r.returncode == 0, r.stderr

    r = airlock("status", "--json", env=env)
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert status["running"] is True
    pid = status["pid"]
    assert isinstance(pid, int) and pid > 0
    pid_cleanup.append(pid)
    assert pid_alive(pid)
    assert (data_dir / "airlock.pid").read_text().strip() == str(pid)
    for key in ("listen", "uptime_secs", "counters", "last_threats"):
        assert key in status, f"status --json lacks {key}: {status}"
    port = _listen_port(status)
    # it was listening when start --detach returned
    res = curl("http://example.test/hello", proxy=f"http://127.0.0.1:{port}")
    assert (res.status, res.body) == (200, b"hello"), res.stderr

    r = airlock("status", env=env)
    assert r.returncode == 0 and str(pid) in r.stdout

    r = airlock("stop", env=env, timeout=20)
    assert r.returncode == 0, r.stderr
    assert "stop" in (r.stdout + r.stderr).lower()
    wait_for(lambda: not pid_alive(pid), timeout=2, what="airlock stop returned but the process lives")

    r = airlock("status", "--json", env=env)
    assert json.loads(r.stdout)["running"] is False

    r = airlock("stop", env=env, timeout=20)
    assert r.returncode == 0
    assert "not running" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr


def test_ca_command(proxy, run_env):
    env = run_env(proxy.data_dir)
    r = airlock("ca", "--path", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(proxy.ca_path)
    r = airlock("ca", "--pem", env=env)
    assert r.returncode == 0
    assert r.stdout.strip() == proxy.ca_path.read_text().strip()
    r = airlock("ca", env=env)
    assert r.returncode == 0
    assert str(proxy.ca_path) in r.stdout


def test_help_and_usage_errors():
    r = airlock("--help")
    assert r.returncode == 0 and "start" in r.stdout
    r = airlock("no-such-command")
    assert r.returncode == 2
    assert AIRLOCK_BIN


def test_status_and_stop_of_foreground_instance(proxy, run_env):
    env = run_env(proxy.data_dir)
    r = airlock("status", "--json", env=env)
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert status["running"] is True and status["pid"] == proxy.proc.pid, status
    assert _listen_port(status) == proxy.port
    r = airlock("stop", env=env, timeout=20)
    assert r.returncode == 0, r.stderr
    proxy.proc.wait(5)
    assert proxy.proc.returncode == 0, f"foreground instance exited {proxy.proc.returncode} on `airlock stop`"
