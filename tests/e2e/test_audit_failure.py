"""The audit log on a full disk (issue 13 item 3): with `audit.on_failure: block` (the default)
new requests get a 503 with the cause while the log cannot be written, and are served again
once it can; with `allow` they keep being served and the failures are counted. Either way the
records queued meanwhile are written when space comes back, and the chain holds. The log
directory is a small tmpfs (root, as in CI)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request

import pytest

from e2e_helpers import airlock, cli_env, curl
from records import wait_for


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mnt = tmp_path / "logs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(mnt):
    """Fills the filesystem to the last byte."""
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def _metric(p, name):
    with urllib.request.urlopen(f"http://{p.boot['admin']}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def _status(p):
    with urllib.request.urlopen(f"http://{p.boot['admin']}/api/status", timeout=5) as r:
        return json.loads(r.read())


def _get(p, marker):
    return curl([f"https://example.test/hello?{marker}"], proxy=p, cacert=p.ca_path)


def test_block_refuses_until_the_log_can_be_written(start_proxy, small_disk):
    p = start_proxy({"log_dir": str(small_disk)})
    assert _get(p, "before=1").status == 200
    filler = _fill(small_disk)
    # The first requests may pass before a write has failed; then every one is refused.
    res = wait_for(lambda: _get(p, f"full={time.monotonic()}"), lambda r: r.status == 503,
                   what="a 503 once the audit log cannot be written", timeout=15, interval=0.3)
    body = json.loads(res.body)
    assert body["error"] == "audit-unavailable" and "audit log cannot be written" in body["reason"], body
    assert "space" in body["reason"], body
    assert res.headers.get("retry-after") == "5", res.headers
    status = _status(p)
    assert status["audit"]["writable"] is False and status["audit"]["error"], status
    assert _metric(p, "airlock_audit_write_failures_total") >= 1
    text = airlock("status", env=cli_env(p)).stdout
    assert "AUDIT LOG    cannot be written" in text, text
    # Space again: served again within a few seconds, with no traffic needed to notice.
    filler.unlink()
    time.sleep(2.5)
    assert _status(p)["audit"]["writable"] is True
    assert _get(p, "after=1").status == 200
    # Nothing was lost: the refused requests' records were kept and written, chain intact.
    flows = wait_for(lambda: [json.loads(x) for x in (small_disk / "flows.jsonl").read_text().splitlines()],
                     lambda f: any("after=1" in (x.get("url") or "") for x in f), what="the flow after recovery")
    urls = [f.get("url") or "" for f in flows]
    assert any("full=" in u for u in urls), urls
    refused = [f for f in flows if f.get("status") == 503]
    assert refused and all(f["action"] == "blocked" for f in refused), refused
    env = dict(cli_env(p), AIRLOCK_CONFIG=str(p.config_path))
    r = airlock("audit", "verify", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert p.alive()


def test_allow_keeps_serving_and_counts(start_proxy, small_disk):
    p = start_proxy({"log_dir": str(small_disk), "audit": {"on_failure": "allow"}})
    assert _get(p, "before=1").status == 200
    filler = _fill(small_disk)
    for i in range(5):
        assert _get(p, f"full={i}").status == 200
        time.sleep(0.2)
    wait_for(lambda: _metric(p, "airlock_audit_write_failures_total"), lambda n: n >= 1,
             what="the failures counted", timeout=10)
    assert _status(p)["audit"]["writable"] is False
    filler.unlink()
    wait_for(lambda: _status(p)["audit"]["writable"], what="the log writable again", timeout=10)
    flows = [json.loads(x) for x in (small_disk / "flows.jsonl").read_text().splitlines()]
    assert sum("full=" in (f.get("url") or "") for f in flows) == 5, [f.get("url") for f in flows]
    env = dict(cli_env(p), AIRLOCK_CONFIG=str(p.config_path))
    assert airlock("audit", "verify", env=env).returncode == 0


def test_on_failure_values_are_checked(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("audit: {on_failure: ignore}\n")
    r = airlock("config", "check", cfg)
    assert r.returncode == 2 and "audit.on_failure" in r.stderr, r.stderr


def test_a_full_store_disk_keeps_serving_and_the_jsonl_keeps_every_record(start_proxy, small_disk, tmp_path):
    """The store (airlock.db, in the data directory) on a full disk while the audit files are
    elsewhere: requests are served, every record reaches the JSONL files, the store's losses
    are counted and shown, one error line says so (not one per batch), and the store takes
    records again once there is space."""
    logs = tmp_path / "audit-files"  # off the small disk (which is tmp_path / "logs")
    p = start_proxy({"log_dir": str(logs)}, data_dir=small_disk)
    assert _get(p, "before=1").status == 200
    filler = _fill(small_disk)
    pad = "x" * 3000  # fills the store's pages fast
    sent = 0

    def one():
        nonlocal sent
        sent += 1
        assert _get(p, f"full={sent}&pad={pad}").status == 200
        return _status(p)["store"]

    store = wait_for(one, lambda s: s["writable"] is False, what="the store failing on the full disk",
                     timeout=30, interval=0.1)
    assert "full" in (store["error"] or ""), store
    for _ in range(5):
        one()
    assert _metric(p, "airlock_store_dropped_total") >= 1
    text = airlock("status", env=cli_env(p)).stdout
    assert "STORE        cannot be written" in text and "records not stored" in text, text
    # Every request has its line in the audit file, whatever the store took.
    flows = wait_for(lambda: [json.loads(x) for x in (logs / "flows.jsonl").read_text().splitlines()],
                     lambda f: sum("full=" in (x.get("url") or "") for x in f) == sent,
                     what=f"{sent} flow lines in flows.jsonl")
    assert all(f["status"] == 200 for f in flows if "full=" in (f.get("url") or "")), flows[-1]
    errors = [e for e in p.events() if "the store cannot be written" in e.get("message", "")]
    assert len(errors) == 1, errors
    # Space again: the store takes records again, and `logs` (which reads it) shows them.
    filler.unlink()
    wait_for(lambda: (_get(p, "after=1"), _status(p)["store"])[1], lambda s: s["writable"] is True,
             what="the store writable again", timeout=15, interval=0.3)
    out = wait_for(lambda: airlock("logs", "--limit", "5", "--json", env=cli_env(p)).stdout,
                   lambda o: "after=1" in o, what="the request after recovery in `airlock logs`")
    assert "after=1" in out
    assert p.alive()
