"""`airlock logs`: flows from the store, filtered, as a table or JSON, while the proxy runs;
`--follow` streams new ones; `--llm` lists LLM calls."""

import json
import os
import select
import subprocess
import time
from pathlib import Path

from e2e_helpers import AIRLOCK_BIN, airlock, cli_env, curl
from llm_fixtures import *  # noqa: F401,F403
from llm_fixtures import anthropic_client, gateway_url
from records import read_jsonl, wait_for


def _store_has(p, count):
    """The store is written in batches: wait until it holds `count` flows."""
    def ready():
        r = airlock("logs", "--json", "--limit", "1000", env=cli_env(p))
        lines = [line for line in r.stdout.splitlines() if line.strip()]
        return lines if len(lines) >= count else None

    return wait_for(ready, what=f"{count} flows in the store", timeout=10)


def _get(p, url, *extra):
    return curl([*extra, url], proxy=p, cacert=p.ca_path)


def _traffic(p):
    assert _get(p, "https://example.test/hello").status == 200
    assert _get(p, "http://example.test/hello?plain=1").status == 200
    token = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"
    blocked = _get(p, "https://example.test/post", "-X", "POST", "-d", f"token={token}")
    assert blocked.status == 403
    return token


def test_logs_table_and_json_while_the_proxy_runs(proxy):
    token = _traffic(proxy)
    lines = _store_has(proxy, 3)
    records = [json.loads(line) for line in lines]
    # The same records as the audit log, same ids, oldest first (the audit chain's fields belong
    # to the file's lines, not to the records).
    audit = {
        f["id"]: {k: v for k, v in f.items() if k not in ("chain", "chain_prev")}
        for f in read_jsonl(proxy.data_dir / "logs" / "flows.jsonl")
    }
    assert [r["id"] for r in records] == sorted((r["id"] for r in records), key=lambda i: list(audit).index(i))
    assert all(audit[r["id"]] == r for r in records)
    assert all(token not in line for line in lines), "a secret in logs --json"
    r = airlock("logs", env=cli_env(proxy))
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if "example.test" in line]
    assert len(rows) == 3, r.stdout
    # Aligned: every URL starts in the same column.
    starts = {row.index("http") for row in rows}
    assert len(starts) == 1, r.stdout
    assert any(" 403 " in row and " blocked " in row for row in rows), r.stdout
    assert token not in r.stdout
    assert proxy.alive()


def test_logs_filters(proxy):
    _traffic(proxy)
    _store_has(proxy, 3)
    env = cli_env(proxy)

    def ids(*args):
        r = airlock("logs", "--json", *args, env=env)
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    assert {f["action"] for f in ids("--action", "blocked")} == {"blocked"}
    assert len(ids("--action", "blocked")) == 1
    assert {f["status"] for f in ids("--status", "200")} == {200}
    assert [f["method"] for f in ids("--method", "post")] == ["POST"]
    assert len(ids("--host", "*.test")) == 3
    assert ids("--host", "*.example.com") == []
    assert len(ids("--listener", "proxy")) == 3
    assert ids("--listener", "llm") == []
    newest = ids("--limit", "1")
    assert len(newest) == 1 and newest[0]["method"] == "POST", "--limit keeps the newest"
    time.sleep(1.5)
    assert ids("--since", "1s") == []
    assert len(ids("--since", "1h")) == 3


def test_logs_follow_streams_new_records(proxy):
    env = cli_env(proxy)
    follower = subprocess.Popen(
        [AIRLOCK_BIN, "logs", "--follow", "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        time.sleep(0.5)
        assert _get(proxy, "https://example.test/hello?followed=1").status == 200
        deadline = time.time() + 10
        seen = b""
        while time.time() < deadline and b"followed=1" not in seen:
            ready, _, _ = select.select([follower.stdout], [], [], 0.5)
            if ready:
                seen += os.read(follower.stdout.fileno(), 65536)
        assert b"followed=1" in seen, seen
        record = json.loads([line for line in seen.splitlines() if b"followed=1" in line][0])
        assert record["status"] == 200
        assert follower.poll() is None, "--follow ended on its own"
    finally:
        follower.kill()
        follower.wait(5)


def test_logs_bad_arguments(proxy):
    env = cli_env(proxy)
    for args in (["--since", "yesterday"], ["--action", "maybe"], ["--limit", "0"]):
        r = airlock("logs", *args, env=env)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("airlock: error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_logs_before_any_flow(start_proxy, run_env):
    r = airlock("logs", env=run_env(start_proxy.new_data_dir()))
    assert (r.returncode, r.stdout.strip()) == (0, "no flows recorded"), r


def test_logs_llm_lists_the_calls(llm_gateway, llm_up):
    p = llm_gateway()
    reply = llm_up.reply(model="claude-sonnet-4-5-20250929", input_tokens=123, output_tokens=45)
    anthropic_client(gateway_url(p)).messages.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": reply.prompt()}]
    )

    def listed():
        r = airlock("logs", "--llm", env=cli_env(p))
        return r.stdout if "claude-sonnet-4-5-20250929" in r.stdout else None

    out = wait_for(listed, what="the LLM call in logs --llm", timeout=10)
    line = [line for line in out.splitlines() if "claude-sonnet-4-5-20250929" in line][0]
    assert "anthropic" in line and " 123 " in f" {line} " and " 45 " in f" {line} ", line
    r = airlock("logs", "--llm", "--json", env=cli_env(p))
    calls = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert calls and calls[-1]["input_tokens"] == 123 and calls[-1]["output_tokens"] == 45, calls


def test_start_console_prints_a_line_per_request(start_proxy):
    cfg = start_proxy.base_config()
    path = start_proxy.write_config(cfg)
    proc = subprocess.Popen(
        [AIRLOCK_BIN, "start", "--console", "--data-dir", str(start_proxy.new_data_dir()), "--config", str(path),
         "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        boot = json.loads(proc.stderr.readline())
        port = int(boot["listen"].rsplit(":", 1)[1])

        class P:
            pass

        p = P()
        p.url = f"http://127.0.0.1:{port}"
        p.port = port
        p.ca_path = Path(boot["ca"])
        assert curl(["https://example.test/hello?console=1"], proxy=p, cacert=p.ca_path).status == 200
        deadline = time.time() + 10
        seen = b""
        while time.time() < deadline and b"console=1" not in seen:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                seen += os.read(proc.stdout.fileno(), 65536)
        line = [line for line in seen.decode().splitlines() if "console=1" in line]
        assert line, seen
        when, method, url, status, action = line[0].split(" ")
        assert (method, url, status, action) == ("GET", "https://example.test/hello?console=1", "200", "allowed"), line
        assert when.startswith("20") and "T" in when
    finally:
        proc.terminate()
        proc.wait(10)


def test_log_rotate_daily_names_the_files_by_date(start_proxy):
    from datetime import datetime, timezone

    p = start_proxy({"log_rotate": "daily"})
    _traffic(p)
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    logs = p.data_dir / "logs"
    # The writer appends in batches: wait for all three flows, not only for the file.
    flows = wait_for(
        lambda: [json.loads(line) for line in (logs / f"flows-{day}.jsonl").read_text().splitlines()]
        if (logs / f"flows-{day}.jsonl").exists() else [],
        lambda f: len(f) >= 3,
        what="today's flows file with the three flows",
    )
    assert not (logs / "flows.jsonl").exists(), "size-rotated file written too"
    assert (logs / f"threats-{day}.jsonl").exists()
    # The commands read the files the config names (the same config as the proxy's).
    env = dict(cli_env(p), AIRLOCK_CONFIG=str(p.config_path))
    r = airlock("threats", "--json", env=env)
    assert r.returncode == 0 and "EXFIL" in r.stdout, r.stdout
    r = airlock("logs", "--json", env=env)
    assert len([line for line in r.stdout.splitlines() if line.strip()]) >= 3


def test_log_rotate_refuses_other_values(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"log_rotate": "weekly"}))
    r = airlock("config", "check", path)
    assert r.returncode == 2 and "log_rotate" in r.stderr, r.stderr


def test_store_null_keeps_the_audit_files_only(start_proxy):
    p = start_proxy({"store": None})
    assert _get(p, "https://example.test/hello?nostore=1").status == 200
    flows = wait_for(lambda: read_jsonl(p.data_dir / "logs" / "flows.jsonl"), lambda f: len(f) >= 1,
                     what="a flow in flows.jsonl", timeout=10)
    assert flows[-1]["url"].endswith("?nostore=1")
    assert not (p.data_dir / "airlock.db").exists()
    env = dict(cli_env(p), AIRLOCK_CONFIG=str(p.config_path))
    r = airlock("logs", env=env)
    assert r.returncode == 1 and "store is off" in r.stderr and "flows" not in r.stdout, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = airlock("usage", env=env)
    assert r.returncode == 1 and "store: null" in r.stderr, r.stderr
    import urllib.request

    with urllib.request.urlopen(f"http://{p.boot['admin']}/api/flows", timeout=5) as resp:
        assert json.loads(resp.read()) == []
    status = json.loads(airlock("status", "--json", env=env).stdout)
    assert status["running"] and status["counters"]["requests"] >= 1, status
