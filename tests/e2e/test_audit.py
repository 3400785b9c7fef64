"""The audit log's tamper evidence and retention: every JSONL line is chained to the one before
(`chain`, and `chain_prev` where a file or a run starts), `logs/chain-head.json` holds the newest
hash, `airlock audit verify [FILE…]` exits 0 while the chain holds and 1 naming the first edited,
removed, reordered or truncated line; rotated files are gzipped and kept as `log_keep` says, each
deletion logged and counted; a crash leaves at most one torn line, which readers skip."""

import gzip
import json
import os
import signal
import threading
import time

import httpx

from e2e_helpers import airlock, cli_env, curl, requests_session
from records import read_jsonl, wait_for

DENIED = "denied.test"


def _verify(p, *files, env=None):
    return airlock("audit", "verify", *files, env=env or cli_env(p))


def _logs(p):
    return p.data_dir / "logs"


def _lines(path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _traffic(p, n: int, tag: str = "t"):
    """n flows through curl and requests, over HTTP and HTTPS; waits until all are in flows.jsonl."""
    before = len(read_jsonl(p.flows_path))
    for i in range(n // 2):
        r = curl(f"https://example.test/hello?{tag}={i}", proxy=p, cacert=p.ca_path)
        assert r.status == 200, r.stderr
    with requests_session(p) as s:
        for i in range(n // 2, n):
            assert s.get(f"http://example.test/hello?{tag}={i}", timeout=30).status_code == 200
    wait_for(lambda: read_jsonl(p.flows_path), lambda f: len(f) >= before + n, what=f"{n} more flows")


def _stopped_with_flows(start_proxy, n: int = 10):
    p = start_proxy()
    _traffic(p, n)
    assert p.stop() == 0
    return p


def _bad_line(r) -> str:
    """The one error line of a failed verify."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    errors = [line for line in r.stderr.splitlines() if line.startswith("airlock: error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def test_verify_passes_on_real_traffic_and_every_line_is_chained(start_proxy):
    p = _stopped_with_flows(start_proxy)
    r = _verify(p)
    assert r.returncode == 0, r.stderr
    assert "flows.jsonl: 10 line(s), chain holds, matches the chain head" in r.stdout, r.stdout
    flows = read_jsonl(p.flows_path)
    assert all(len(f["chain"]) == 64 for f in flows), flows
    # The first line of a chain says what it continues from: nothing yet.
    assert flows[0]["chain_prev"] == "0" * 64
    assert all("chain_prev" not in f for f in flows[1:])
    head = json.loads((_logs(p) / "chain-head.json").read_text())
    assert head["flows"] == {"file": "flows.jsonl", "line": 10, "hash": flows[-1]["chain"]}


def test_an_edited_line_is_named(start_proxy):
    p = _stopped_with_flows(start_proxy)
    lines = _lines(p.flows_path)
    # Still valid JSON, same length even: only the chain tells.
    lines[4] = lines[4].replace(b"/hello?", b"/hellO?", 1)
    p.flows_path.write_bytes(b"".join(lines))
    error = _bad_line(_verify(p))
    assert "flows.jsonl:5: hash mismatch" in error, error


def test_a_removed_line_is_named(start_proxy):
    p = _stopped_with_flows(start_proxy)
    lines = _lines(p.flows_path)
    del lines[2]
    p.flows_path.write_bytes(b"".join(lines))
    assert "flows.jsonl:3: hash mismatch" in _bad_line(_verify(p))


def test_swapped_lines_are_named(start_proxy):
    p = _stopped_with_flows(start_proxy)
    lines = _lines(p.flows_path)
    lines[6], lines[7] = lines[7], lines[6]
    p.flows_path.write_bytes(b"".join(lines))
    assert "flows.jsonl:7: hash mismatch" in _bad_line(_verify(p))


def test_truncating_the_newest_lines_is_seen_through_the_chain_head(start_proxy):
    p = _stopped_with_flows(start_proxy)
    lines = _lines(p.flows_path)
    p.flows_path.write_bytes(b"".join(lines[:8]))
    error = _bad_line(_verify(p))
    assert "truncated: the chain head names line 10, the file ends at line 8" in error, error
    # A restart does not launder it: the chain goes on from the head, so the break stays.
    p2 = start_proxy(data_dir=p.data_dir)
    _traffic(p2, 2, tag="after")
    assert p2.stop() == 0
    assert any("no longer holds the line chain-head.json names" in line for line in p2.stderr_lines), p2.stderr_text()
    error = _bad_line(_verify(p2))
    assert "flows.jsonl:9:" in error and "removed" in error, error


def test_the_chain_continues_across_restarts(start_proxy):
    p = _stopped_with_flows(start_proxy, 4)
    last = read_jsonl(p.flows_path)[-1]["chain"]
    p2 = start_proxy(data_dir=p.data_dir)
    _traffic(p2, 4, tag="second")
    assert p2.stop() == 0
    flows = read_jsonl(p.flows_path)
    assert len(flows) == 8
    assert flows[4]["chain_prev"] == last, "the first line after a restart names the hash it continues from"
    r = _verify(p2)
    assert r.returncode == 0, r.stderr
    assert "flows.jsonl: 8 line(s), chain holds" in r.stdout, r.stdout


def test_kill_9_under_load_then_restart_keeps_ca_chain_and_logs(start_proxy):
    p = start_proxy(log=0)
    ca_before = p.ca_path.read_bytes()
    stop = threading.Event()
    errors = []

    def load(k):
        with requests_session(p) as s:
            i = 0
            while not stop.is_set():
                try:
                    s.get(f"https://example.test/hello?load={k}-{i}", timeout=5)
                except Exception as e:  # the proxy dies under us: expected
                    errors.append(e)
                    return
                i += 1

    workers = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for w in workers:
        w.start()
    wait_for(lambda: read_jsonl(p.flows_path), lambda f: len(f) >= 200, timeout=30, what="load flowing")
    os.kill(p.proc.pid, signal.SIGKILL)
    p.proc.wait(5)
    stop.set()
    for w in workers:
        w.join(10)
    # What a crash in the middle of a write leaves (SIGKILL rarely lands inside one): a last line
    # cut short, no newline.
    with p.flows_path.open("ab") as f:
        f.write(b'{"timestamp":"2026-01-01T00:00:00+00:00","id":"torn","url":"https://exa')
    whole = len(_lines(p.flows_path)) - 1
    r = _verify(p)
    assert r.returncode == 0, r.stderr
    assert f"line {whole + 1} is torn" in r.stderr and f"holds up to line {whole}" in r.stderr, r.stderr
    # Readers of ours skip it.
    r = airlock("threats", "--json", env=cli_env(p))
    assert r.returncode == 0, r.stderr

    p2 = start_proxy(data_dir=p.data_dir, log=0)
    assert p2.ca_path.read_bytes() == ca_before, "the CA changed across the crash"
    # Said right after the boot line (stderr is read on a thread of the fixture's).
    wait_for(lambda: any("torn by a crash" in line for line in p2.stderr_lines),
             what="the warning about the torn line", show=lambda _: p2.stderr_text())
    _traffic(p2, 4, tag="after")  # HTTPS through the same CA
    assert p2.stop() == 0
    # The torn fragment is moved aside (left in place it would end up mid-file, where every JSON
    # Lines reader stumbles); the chain goes on from the last whole line.
    aside = list(_logs(p).glob("flows.jsonl.torn-*"))
    assert len(aside) == 1 and aside[0].read_bytes().endswith(b'"url":"https://exa'), aside
    lines = _lines(p.flows_path)
    assert len(read_jsonl(p.flows_path)) == len(lines) == whole + 4
    resumed = json.loads(lines[whole])
    assert resumed["chain_prev"] == json.loads(lines[whole - 1])["chain"]
    r = _verify(p2)
    assert r.returncode == 0, r.stderr
    assert f"flows.jsonl: {len(lines)} line(s), chain holds, matches the chain head" in r.stdout, r.stdout


def test_readers_skip_a_torn_last_line(start_proxy):
    p = start_proxy()
    token = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"
    r = curl(["-X", "POST", "-d", f"token={token}", "https://example.test/post"], proxy=p, cacert=p.ca_path)
    assert r.status == 403
    threats_path = _logs(p) / "threats.jsonl"
    wait_for(lambda: read_jsonl(threats_path), what="the threat record")
    assert p.stop() == 0
    with threats_path.open("ab") as f:
        f.write(b'{"timestamp":"2026-01-01T00:00:00+00:00","threat_type":"EXF')
    r = airlock("threats", "--json", env=cli_env(p))
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [t["threat_type"] for t in records] == ["EXFIL"], r.stdout
    assert "skipped a torn last line" in r.stderr, r.stderr
    r = airlock("status", "--json", env=cli_env(p))
    assert r.returncode == 0 and [t["threat_type"] for t in json.loads(r.stdout)["last_threats"]] == ["EXFIL"]


# --------------------------------------------------------------------------- rotation and log_keep


def _fill_past_rotation(p, rotated=None):
    """Flow records past 10 MB (the rotation size): requests with 30 kB URLs the policy refuses
    (no upstream, a record each), until `rotated()` (by default: a rotated file is there).
    Returns how many were sent."""
    rotated = rotated or (lambda: len(list(_logs(p).glob("flows.jsonl.*"))) > 0)
    path = "/" + "a" * 30_000
    n = 0
    with httpx.Client(proxy=p.url, trust_env=False, timeout=30) as c:
        while True:
            for _ in range(50):
                r = c.get(f"http://{DENIED}{path}?n={n}")
                assert r.status_code == 403, r.text
                n += 1
            if rotated():
                return n
            assert n < 2000, "no rotation after 2000 records of 30 kB"


def test_rotation_gzips_the_old_file_and_the_chain_runs_across(start_proxy):
    p = start_proxy({"policy": {"deny_hosts": [DENIED]}}, log=0)
    sent = _fill_past_rotation(p)
    rotated = wait_for(lambda: list(_logs(p).glob("flows.jsonl.*.gz")), what="the rotated file, gzipped", timeout=20)
    assert len(rotated) == 1, rotated
    assert not [f for f in _logs(p).glob("flows.jsonl.*") if not f.name.endswith(".gz")], "uncompressed copy left"
    assert p.stop() == 0
    old = gzip.decompress(rotated[0].read_bytes()).splitlines()
    assert len(old) * 30_000 > 9 * 1024 * 1024
    new = read_jsonl(p.flows_path)
    assert len(old) + len(new) == sent, "a line lost on rotation"
    assert all(json.loads(line) for line in old), "a line split on rotation"
    # The new file continues from the last line of the rotated one.
    assert new[0]["chain_prev"] == json.loads(old[-1])["chain"]
    r = _verify(p)
    assert r.returncode == 0, r.stderr
    assert f"{rotated[0].name}: {len(old)} line(s), chain holds" in r.stdout, r.stdout
    # The rotated file alone checks too (from its chain_prev on), and in the wrong order it does not.
    r = _verify(p, rotated[0], env=cli_env(p))
    assert r.returncode == 0, r.stderr
    assert "continues a chain" not in r.stderr
    error = _bad_line(_verify(p, p.flows_path, rotated[0]))
    assert f"{rotated[0]}:1:" in error, error
    # Removing it is seen: the chain starts from a file that is not there and log_keep did not remove.
    rotated[0].unlink()
    error = _bad_line(_verify(p))
    assert "flows.jsonl:1:" in error and "an earlier audit file is missing" in error, error


def test_log_keep_deletes_logs_and_counts(start_proxy):
    p = start_proxy({"policy": {"deny_hosts": [DENIED]}, "log_keep": {"files": 0}}, log=0)

    def deleted():
        return [e for e in p.events() if e.get("message") == "deleted a rotated audit file"]

    # The rotated file can be compressed and deleted before the test looks for it: the fill
    # stops at the first rotation either way (filling on would rotate a second time).
    _fill_past_rotation(p, rotated=lambda: deleted() or list(_logs(p).glob("flows.jsonl.*")))

    event = wait_for(deleted, what="the deletion in the diagnostics log", timeout=20)[0]
    assert event["level"] == "WARN" and "flows.jsonl." in event["file"] and "log_keep.files is 0" in event["reason"], event
    assert not list(_logs(p).glob("flows.jsonl.*")), "log_keep.files 0 keeps no rotated file"
    admin = p.boot["admin"]
    with httpx.Client(trust_env=False, timeout=10) as c:
        metrics = c.get(f"http://{admin}/metrics").text
    assert "airlock_audit_files_deleted_total 1" in metrics.splitlines(), metrics
    r = airlock("status", "--json", env=cli_env(p))
    assert r.returncode == 0 and json.loads(r.stdout)["counters"]["audit_files_deleted"] == 1, r.stdout
    r = airlock("status", env=cli_env(p))
    assert "1 rotated file(s) deleted by log_keep" in r.stdout, r.stdout
    head = json.loads((_logs(p) / "chain-head.json").read_text())
    assert head["deleted_files"] == 1 and head["flows"]["pruned"]["file"] == event["file"].rsplit("/", 1)[-1]
    assert p.stop() == 0
    # What is left still verifies: it starts where the deleted file ended.
    r = _verify(p)
    assert r.returncode == 0, r.stderr
    assert read_jsonl(p.flows_path)[0]["chain_prev"] == head["flows"]["pruned"]["hash"]


def test_log_keep_is_validated_with_its_key_path(tmp_path):
    def check(value):
        path = tmp_path / "c.json"
        path.write_text(json.dumps({"log_keep": value}))
        return airlock("config", "check", path)

    assert check({"files": 3, "days": 30}).returncode == 0
    assert check({"files": 10, "days": None}).returncode == 0
    for value, key in [
        ({"files": "3"}, "log_keep.files"),
        ({"files": -1}, "log_keep.files"),
        ({"files": True}, "log_keep.files"),
        ({"days": 0}, "log_keep.days"),
        ({"count": 3}, "log_keep.count"),
        (5, "log_keep"),
    ]:
        r = check(value)
        assert r.returncode == 2, (value, r.stderr)
        assert f"`{key}`" in r.stderr and len(r.stderr.strip().splitlines()) == 1, (value, r.stderr)


def test_verify_of_a_missing_file_fails(tmp_path):
    r = airlock("audit", "verify", tmp_path / "flows.jsonl")
    assert r.returncode == 1 and "cannot read" in r.stderr, r.stderr


def test_verify_with_nothing_written_yet(tmp_path, run_env):
    r = airlock("audit", "verify", env=run_env(tmp_path / "empty"))
    assert r.returncode == 0 and "no audit files" in r.stdout, (r.stdout, r.stderr)


# --------------------------------------------------------------------------- signed head


def _copy_logs(p, dest):
    """A copy of the logs elsewhere (the public key kept apart from them)."""
    dest.mkdir()
    for name in ("flows.jsonl", "chain-head.json"):
        (dest / name).write_bytes((_logs(p) / name).read_bytes())
    key = dest.parent / f"{dest.name}-trusted.pub"
    key.write_bytes((_logs(p) / "chain-head.pub").read_bytes())
    return dest / "flows.jsonl", dest / "chain-head.json", key


def _truncate_and_rewrite_head(flows, head_path, keep: int):
    """What someone who may write the logs can do: drop the newest lines and move the head
    back to match, so that the chain alone holds."""
    lines = _lines(flows)[:keep]
    flows.write_bytes(b"".join(lines))
    head = json.loads(head_path.read_text())
    head["flows"]["line"] = keep
    head["flows"]["hash"] = json.loads(lines[-1])["chain"]
    head_path.write_text(json.dumps(head, indent=2))
    return head


def test_a_signed_head_lets_a_copy_be_checked_with_the_public_key_alone(start_proxy, tmp_path):
    p = _stopped_with_flows(start_proxy)
    key_file = p.data_dir / "audit" / "signing.key"
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
    assert "BEGIN PUBLIC KEY" in (_logs(p) / "chain-head.pub").read_text()
    r = _verify(p)
    assert r.returncode == 0 and "chain head signed by ed25519:" in r.stdout, r.stdout + r.stderr
    flows, head, key = _copy_logs(p, tmp_path / "copy")
    r = airlock("audit", "verify", "--public-key", str(key), str(flows))
    assert r.returncode == 0 and "(the key given)" in r.stdout, r.stdout + r.stderr


def test_a_rewritten_head_is_caught_by_its_signature(start_proxy, tmp_path):
    p = _stopped_with_flows(start_proxy)
    flows, head, key = _copy_logs(p, tmp_path / "copy")
    rewritten = _truncate_and_rewrite_head(flows, head, keep=7)
    # The chain and the head agree now; the signature does not.
    error = _bad_line(airlock("audit", "verify", str(flows)))
    assert "signature does not match" in error and "edited" in error, error
    # Removing the signature passes a check without the key, never one with it.
    del rewritten["signed"]
    head.write_text(json.dumps(rewritten, indent=2))
    assert airlock("audit", "verify", str(flows)).returncode == 0
    error = _bad_line(airlock("audit", "verify", "--public-key", str(key), str(flows)))
    assert "not signed" in error, error


def test_a_head_signed_by_another_key_is_refused(start_proxy, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    p = _stopped_with_flows(start_proxy)
    flows, head, key = _copy_logs(p, tmp_path / "copy")
    rewritten = _truncate_and_rewrite_head(flows, head, keep=6)
    # Re-signed with the forger's own key: what airlock signs is the head without
    # `signed`, as compact JSON (deleted_files, then the kinds in order).
    forger = Ed25519PrivateKey.generate()
    del rewritten["signed"]
    body = {"deleted_files": rewritten.pop("deleted_files")} | dict(sorted(rewritten.items()))
    message = json.dumps(body, separators=(",", ":")).encode()
    public = forger.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    forged = {"deleted_files": body["deleted_files"],
              "signed": {"public_key": public, "signature": forger.sign(message).hex()}}
    forged |= {k: v for k, v in body.items() if k != "deleted_files"}
    head.write_text(json.dumps(forged, indent=2))
    # Its own signature holds (so the message format above is airlock's), but not for our key.
    r = airlock("audit", "verify", str(flows))
    assert r.returncode == 0 and "give --public-key" in r.stdout, r.stdout + r.stderr
    error = _bad_line(airlock("audit", "verify", "--public-key", str(key), str(flows)))
    assert "signed by another key" in error, error


def test_a_signing_key_readable_by_others_refuses_start(start_proxy, tmp_path):
    p = _stopped_with_flows(start_proxy, 2)
    key_file = p.data_dir / "audit" / "signing.key"
    key_file.chmod(0o644)
    r = airlock("start", "--data-dir", str(p.data_dir), "--listen", "127.0.0.1:0", timeout=30)
    assert r.returncode != 0 and "readable by other users" in r.stderr, r.stderr
