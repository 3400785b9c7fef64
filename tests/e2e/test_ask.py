"""`action: ask` (issue 12 item 6): a policy rule that holds a request until a person decides.

A held request waits (nothing reaches the upstream), is listed by /api/pending (id, method,
url, rule, since) and pushed on /api/events; `airlock approve ID` lets it go on as if allowed,
`airlock deny ID` and `policy.ask_timeout_secs` answer 403 (reason policy, rule = the ask rule)
with a POLICY threat; other requests keep flowing meanwhile; a client that leaves takes its
entry with it; stopping airlock denies what is held. The browser half is at the end."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
import requests

from detect_fixtures import *  # noqa: F401,F403
from e2e_helpers import airlock, cli_env, curl, requests_session
from policy_fixtures import *  # noqa: F401,F403
from policy_fixtures import lockdown, rule
from records import read_threats, wait_for, wait_threats

ASK_RULE = "ask-tagged"
# detect_proxy's config is not the suite's base: every proxy here gets its own admin port.
ADMIN = {"admin": {"listen": "127.0.0.1:0"}}


def _ask_config(timeout: int | None = None, **extra) -> dict:
    policy = {"rules": [rule(ASK_RULE, 'request.path.startsWith("/t/ask")', "ask")]}
    if timeout is not None:
        policy["ask_timeout_secs"] = timeout
    return {"policy": policy, **ADMIN, **extra}


@pytest.fixture
def ask_proxy(detect_proxy):
    """A proxy whose rule `ask-tagged` holds every request for /t/ask…, recorded by detect_up."""

    def make(timeout: int | None = 60, extra: dict | None = None, **kw):
        return detect_proxy({**_ask_config(timeout), **(extra or {})}, **kw)

    return make


# --------------------------------------------------------------------------- helpers


def admin_url(p) -> str:
    addr = p.boot.get("admin")
    assert addr and not addr.endswith(":0"), p.boot
    return f"http://{addr}"


def admin_call(p, method: str, path: str, headers: dict | None = None):
    req = urllib.request.Request(admin_url(p) + path, method=method, headers=headers or {}, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def pending(p, headers: dict | None = None) -> list:
    status, body = admin_call(p, "GET", "/api/pending", headers)
    assert status == 200, (status, body)
    return body


def wait_held(p, tag: str, timeout: float = 5.0) -> dict:
    """The pending entry of the request for /t/<tag>…"""
    return wait_for(
        lambda: [e for e in pending(p) if f"/t/{tag}" in e["url"]], None, 1, timeout, what=f"a held request for {tag}"
    )[0]


def in_background(fn, *args, **kw):
    """Runs fn in a thread; returns a function that waits for its result (or raises its error)."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn(*args, **kw)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def result(timeout: float = 30):
        t.join(timeout)
        assert not t.is_alive(), f"the client still waits after {timeout}s"
        if "error" in out:
            raise out["error"]
        return out["value"]

    result.done = lambda: not t.is_alive()
    return result


def decide(p, verb: str, id_: str, env=None):
    return airlock(verb, id_, env=env or cli_env(p), timeout=20)


def flow_for(p, tag: str, pred=lambda f: True) -> dict:
    return p.wait_flows(lambda f: f"/t/{tag}" in (f.get("url") or "") and pred(f))[0]


def assert_ask_block(r_status: int, headers: dict, body: bytes):
    assert r_status == 403, (r_status, body[:300])
    h = {k.lower(): v for k, v in headers.items()}
    assert h.get("x-airlock-block-reason") == "policy", h
    assert h.get("x-airlock-rule") == ASK_RULE, h
    doc = json.loads(body)
    assert doc["error"] == "blocked" and doc["rule"] == ASK_RULE, doc
    return doc


# --------------------------------------------------------------------------- approve, deny, timeout


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_approve_lets_the_held_request_through(ask_proxy, detect_up, scheme):
    p = ask_proxy()
    tag = "ask" + detect_up.new_tag()
    url = f"{scheme}://example.test/t/{tag}/item?q=1"
    session = requests_session(p)
    body = b"a small body the upstream must get whole, after the approval"
    result = in_background(session.post, url, data=body, timeout=30)

    held = wait_held(p, tag)
    assert set(held) == {"id", "method", "url", "rule", "since"}, held
    assert held["method"] == "POST" and held["rule"] == ASK_RULE, held
    assert held["url"] == url, held
    assert re.fullmatch(r"[0-9a-f]{16}", held["id"]), held
    since = datetime.fromisoformat(held["since"])
    assert since.tzinfo is not None and abs(time.time() - since.timestamp()) < 30, held
    time.sleep(0.3)
    assert detect_up.hits(tag) == [], "a held request reached the upstream"
    assert not result.done(), "the client got an answer before anybody decided"

    r = decide(p, "approve", held["id"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"approved {held['id']} POST {url} (rule {ASK_RULE})", r.stdout

    resp = result()
    assert resp.status_code == 200, resp.text[:300]
    assert resp.json() == {"ok": True, "body_len": len(body), "body_sha256": hashlib.sha256(body).hexdigest()}
    assert len(detect_up.wait_hits(tag)) == 1
    assert pending(p) == []
    flow = flow_for(p, tag)
    assert flow["action"] == "allowed" and flow["status"] == 200, flow
    assert "approved by a person" in flow["reason"] and ASK_RULE in flow["reason"], flow
    # Approved once is answered once.
    again = decide(p, "approve", held["id"])
    assert again.returncode == 1, again


def test_an_approved_body_is_still_scanned(ask_proxy, detect_up):
    key = fresh_key("github")  # noqa: F405
    p = ask_proxy()
    tag = "ask" + detect_up.new_tag()
    result = in_background(
        requests_session(p).post, f"https://example.test/t/{tag}", data=f"token={key.text}".encode(), timeout=30
    )
    held = wait_held(p, tag)
    assert decide(p, "approve", held["id"]).returncode == 0
    resp = result()
    assert resp.status_code == 403, resp.text[:300]
    assert resp.headers["X-Airlock-Block-Reason"] == "credential-leak", dict(resp.headers)
    assert resp.headers["X-Airlock-Rule"] == key.rule, dict(resp.headers)
    time.sleep(0.3)
    assert detect_up.hits(tag) == [], "an approved request carrying a credential reached the upstream"


def test_the_pending_url_is_masked_like_the_flow_record(ask_proxy, detect_up):
    key = fresh_key("github")  # noqa: F405
    # Warned, not blocked: the request reaches the ask rule with a credential in its URL.
    p = ask_proxy(extra={"detect": {"outbound_secrets": "warn"}})
    tag = "ask" + detect_up.new_tag()
    result = in_background(requests_session(p).get, f"https://example.test/t/{tag}?token={key.secret}", timeout=30)
    held = wait_held(p, tag)
    assert key.secret not in held["url"] and f"/t/{tag}?token=" in held["url"], held
    assert decide(p, "deny", held["id"]).returncode == 0
    assert result().status_code == 403
    flow = flow_for(p, tag)
    assert flow["url"] == held["url"], (flow["url"], held["url"])
    assert key.secret not in p.stderr_text()


def test_deny_answers_403_with_the_ask_rule(ask_proxy, detect_up):
    p = ask_proxy()
    tag = "ask" + detect_up.new_tag()
    url = f"https://example.test/t/{tag}/x"
    result = in_background(curl, url, proxy=p, cacert=p.ca_path, timeout=30)
    held = wait_held(p, tag)
    r = decide(p, "deny", held["id"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"denied {held['id']} GET {url} (rule {ASK_RULE})", r.stdout

    res = result()
    assert res.rc == 0, res.stderr
    doc = assert_ask_block(res.status, res.headers, res.body)
    assert "denied" in doc["reason"], doc
    time.sleep(0.3)
    assert detect_up.hits(tag) == [], "a denied request reached the upstream"
    flow = flow_for(p, tag)
    assert flow["action"] == "blocked" and flow["status"] == 403, flow
    assert "a person denied it" in flow["reason"], flow
    threat = wait_threats(p, lambda t: t.get("pattern") == ASK_RULE)[0]
    assert threat["threat_type"] == "POLICY" and threat["action"] == "blocked", threat
    assert threat["snippet"].startswith("denied by a person"), threat
    assert threat["dest"] == "example.test:443" and threat["path"] == f"/t/{tag}/x", threat
    assert pending(p) == []


def test_nobody_deciding_in_time_is_a_denial(ask_proxy, detect_up):
    p = ask_proxy(timeout=1)
    tag = "ask" + detect_up.new_tag()
    session = requests_session(p)
    started = time.monotonic()
    resp = session.get(f"http://example.test/t/{tag}", timeout=30)
    took = time.monotonic() - started
    assert_ask_block(resp.status_code, resp.headers, resp.content)
    assert 0.9 <= took < 8, f"answered after {took:.2f}s with ask_timeout_secs: 1"
    assert "ask_timeout_secs" in resp.json()["reason"], resp.json()
    assert detect_up.hits(tag) == []
    flow = flow_for(p, tag)
    assert flow["action"] == "blocked" and flow["status"] == 403, flow
    assert "none came within 1 s" in flow["reason"], flow
    threat = wait_threats(p, lambda t: t.get("pattern") == ASK_RULE)[0]
    assert threat["threat_type"] == "POLICY" and "ask_timeout_secs" in threat["snippet"], threat
    assert pending(p) == []


def test_other_requests_keep_flowing_while_one_is_held(ask_proxy, detect_up):
    p = ask_proxy()
    tag = "ask" + detect_up.new_tag()
    # Ceilings, not waits: both stay held through ten other exchanges, which take longer on a loaded machine.
    held_client = in_background(curl, f"http://example.test/t/{tag}", proxy=p, timeout=90)
    second = in_background(requests_session(p).get, f"https://example.test/t/{tag}-second", timeout=90)
    first = wait_held(p, tag)
    wait_for(lambda: pending(p), None, 2, 5, what="two held requests")
    session = requests_session(p)
    for i in range(5):
        other = detect_up.new_tag()
        started = time.monotonic()
        r = session.get(f"https://example.test/t/{other}", timeout=10)
        assert r.status_code == 200 and time.monotonic() - started < 3, (i, r.status_code)
        res = curl(f"http://example.test/t/{other}/c", proxy=p, timeout=10)
        assert res.status == 200, res.stderr
    assert not held_client.done() and not second.done()
    assert len(pending(p)) == 2
    # Each is decided on its own.
    assert decide(p, "deny", first["id"]).returncode == 0
    assert held_client().status == 403
    assert not second.done()
    (rest,) = pending(p)
    assert decide(p, "approve", rest["id"]).returncode == 0
    assert second().status_code == 200


def test_a_client_that_leaves_takes_its_entry_along(ask_proxy, detect_up):
    p = ask_proxy()
    for label, extra in [("get", []), ("post", ["-d", "x" * 5000])]:
        tag = "ask" + detect_up.new_tag()
        res = in_background(curl, [*extra, f"http://example.test/t/{tag}"], proxy=p, timeout=2)
        wait_held(p, tag)
        assert res().rc == 28  # curl's own timeout: it gave up and closed the connection
        wait_for(lambda: [e for e in pending(p) if tag in e["url"]], lambda got: got == [], timeout=5,
                 what=f"the entry of the client that left ({label}) to go")
        flow = flow_for(p, tag)
        assert flow["action"] == "failed" and "client left" in flow["reason"], flow
    assert detect_up.hits(tag) == []


def test_lockdown_switched_on_while_held_still_refuses(ask_proxy, detect_up):
    p = ask_proxy()
    tag = "ask" + detect_up.new_tag()
    result = in_background(requests_session(p).get, f"https://example.test/t/{tag}", timeout=30)
    held = wait_held(p, tag)
    lockdown(p, "on")
    assert decide(p, "approve", held["id"]).returncode == 0
    resp = result()
    assert resp.status_code == 403 and resp.headers["X-Airlock-Rule"] == "lockdown", resp.text[:300]
    assert detect_up.hits(tag) == []


def test_stopping_airlock_denies_what_is_held(ask_proxy, detect_up):
    p = ask_proxy()
    tag = "ask" + detect_up.new_tag()
    result = in_background(curl, f"http://example.test/t/{tag}", proxy=p, timeout=30)
    wait_held(p, tag)
    started = time.monotonic()
    assert p.stop(timeout=10) == 0
    res = result()
    assert time.monotonic() - started < 8
    assert_ask_block(res.status, res.headers, res.body)
    assert detect_up.hits(tag) == []


def test_blind_tunnel_is_held_at_connect(detect_proxy, detect_up, certs):
    connect_rule = rule(ASK_RULE, 'request.method == "CONNECT" && request.host == "example.test"', "ask")
    p = detect_proxy({"policy": {"rules": [connect_rule]}, **ADMIN}, mitm=False)
    tag = detect_up.new_tag()
    result = in_background(curl, f"https://example.test/t/{tag}", proxy=p, cacert=certs.upstream_ca_path, timeout=30)
    held = wait_for(lambda: pending(p), None, 1, 5, what="the held CONNECT")[0]
    assert held["method"] == "CONNECT" and held["url"] == "example.test:443", held
    assert decide(p, "approve", held["id"]).returncode == 0
    res = result()
    assert res.status == 200, res.stderr
    assert len(detect_up.wait_hits(tag)) == 1


def test_ask_rules_from_the_policy_source(detect_proxy, detect_up, policy_server):
    policy_server.set_rules([rule("remote-ask", 'request.path.startsWith("/t/ask")', "ask")])
    p = detect_proxy({"policy": {"source": policy_server.url, "refresh_secs": 60}, **ADMIN})
    wait_for(lambda: "policy rules loaded from policy.source" in p.stderr_text(), timeout=10, what="the remote rules")
    tag = "ask" + detect_up.new_tag()
    result = in_background(requests_session(p).get, f"http://example.test/t/{tag}", timeout=30)
    held = wait_for(lambda: pending(p), None, 1, 10, what="a request held by the remote rule")[0]
    assert held["rule"] == "remote-ask", held
    assert decide(p, "deny", held["id"]).returncode == 0
    resp = result()
    assert resp.status_code == 403 and resp.headers["X-Airlock-Rule"] == "remote-ask"


# --------------------------------------------------------------------------- the API and the event stream


def test_api_answers_and_refusals(ask_proxy, detect_up):
    p = ask_proxy()
    status, body = admin_call(p, "POST", "/api/pending/0123456789abcdef/approve")
    assert status == 404 and body["error"] == "not-found" and "/api/pending" in body["detail"], body
    tag = "ask" + detect_up.new_tag()
    result = in_background(requests_session(p).get, f"http://example.test/t/{tag}", timeout=30)
    held = wait_held(p, tag)
    # A page of another site cannot approve, even knowing the id.
    status, body = admin_call(p, "POST", f"/api/pending/{held['id']}/approve", {"Origin": "https://evil.example"})
    assert status == 403 and body["error"] == "forbidden", body
    status, body = admin_call(p, "GET", f"/api/pending/{held['id']}/approve")
    assert status == 405, body
    assert [e["id"] for e in pending(p)] == [held["id"]]
    status, body = admin_call(p, "POST", f"/api/pending/{held['id']}/deny")
    assert status == 200 and body["decision"] == "denied" and body["id"] == held["id"], body
    assert result().status_code == 403


def test_pending_changes_are_pushed_on_the_event_stream(ask_proxy, detect_up):
    p = ask_proxy()
    host, port = p.boot["admin"].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: {p.boot['admin']}\r\nAccept: text/event-stream\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    assert buf.startswith(b"HTTP/1.1 200"), buf[:200]
    tag = "ask" + detect_up.new_tag()
    result = in_background(requests_session(p).get, f"http://example.test/t/{tag}", timeout=30)

    def next_pending(buf: bytes):
        while True:
            m = re.search(rb"event: ?pending\ndata: ?(.*)\n\n", buf)
            if m:
                return json.loads(m.group(1)), buf[m.end():]
            chunk = sock.recv(65536)
            assert chunk, "the event stream ended"
            buf += chunk

    events, buf = next_pending(buf)
    while not events:
        events, buf = next_pending(buf)
    (held,) = events
    assert held["rule"] == ASK_RULE and tag in held["url"], held
    assert decide(p, "approve", held["id"]).returncode == 0
    events, buf = next_pending(buf)
    assert events == [], events
    assert result().status_code == 200
    sock.close()


def test_a_token_protected_admin_server(ask_proxy, detect_up, tmp_path):
    token = "ask-admin-" + os.urandom(8).hex()
    env_extra = {"AIRLOCK_TEST_ASK_TOKEN": token}
    p = ask_proxy(extra={"admin": {"listen": "127.0.0.1:0", "token_env": "AIRLOCK_TEST_ASK_TOKEN"}}, extra_env=env_extra)
    status, body = admin_call(p, "GET", "/api/pending")
    assert status == 401, body
    tag = "ask" + detect_up.new_tag()
    result = in_background(requests_session(p).get, f"http://example.test/t/{tag}", timeout=30)
    (held,) = wait_for(lambda: pending(p, {"Authorization": f"Bearer {token}"}), None, 1, 5, what="the held request")
    # Without the token the command says how to give it; with the config and its variable it works.
    env = cli_env(p)
    env["AIRLOCK_CONFIG"] = str(p.config_path)
    r = decide(p, "approve", held["id"], env=env)
    assert r.returncode == 1 and "AIRLOCK_TEST_ASK_TOKEN" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = decide(p, "approve", held["id"], env={**env, **env_extra})
    assert r.returncode == 0, r.stderr
    assert result().status_code == 200
    assert token not in p.stderr_text()


# --------------------------------------------------------------------------- the command line


def test_unknown_ids_and_no_instance(ask_proxy, start_proxy, tmp_path):
    p = ask_proxy()
    for verb in ("approve", "deny"):
        r = decide(p, verb, "0123456789abcdef")
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert "0123456789abcdef" in lines[0] and f"{admin_url(p)}/api/pending" in lines[0], lines[0]
        assert r.stdout == ""
    r = decide(p, "approve", "../../status")
    assert r.returncode == 1 and "no request is held" in r.stderr, r.stderr
    # No instance on the data directory.
    env = cli_env(p)
    env["AIRLOCK_HOME"] = str(tmp_path / "nothing-runs-here")
    r = airlock("approve", "0123456789abcdef", env=env)
    assert r.returncode == 1 and "not running" in r.stderr and "airlock start" in r.stderr, r.stderr
    # An instance without an admin server.
    q = start_proxy({"admin": None})
    r = airlock("deny", "0123456789abcdef", env=cli_env(q))
    assert r.returncode == 1 and "no admin server" in r.stderr and "admin.listen" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # A missing id is a usage error.
    r = airlock("approve", env=cli_env(p))
    assert r.returncode == 2, r


def test_status_shows_what_is_held(ask_proxy, detect_up):
    p = ask_proxy()
    tag = "ask" + detect_up.new_tag()
    result = in_background(requests_session(p).get, f"http://example.test/t/{tag}", timeout=30)
    held = wait_held(p, tag)
    r = airlock("status", "--json", env=cli_env(p))
    assert json.loads(r.stdout)["pending"] == 1, r.stdout
    r = airlock("status", env=cli_env(p))
    assert re.search(r"pending\s+1 held", r.stdout), r.stdout
    assert decide(p, "deny", held["id"]).returncode == 0
    assert result().status_code == 403


BAD_TIMEOUTS = [("zero", 0), ("negative", -5), ("string", '"60"'), ("bool", "true"), ("float", 1.5), ("huge", 10**6)]


@pytest.mark.parametrize("name,value", BAD_TIMEOUTS, ids=[b[0] for b in BAD_TIMEOUTS])
def test_config_check_rejects_bad_ask_timeouts(tmp_path, name, value):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"policy:\n  ask_timeout_secs: {value}\n")
    r = airlock("config", "check", path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "ask_timeout_secs" in lines[0], r.stderr
    r = airlock("start", "--listen", "127.0.0.1:0", "--data-dir", tmp_path / "d", "--config", path, timeout=20)
    assert r.returncode == 2 and "ask_timeout_secs" in r.stderr, r.stderr[-300:]


def test_config_check_accepts_ask(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(
        "policy:\n  ask_timeout_secs: 30\n  rules:\n"
        "    - {name: ask-x, match: 'request.host == \"api.example.com\"', action: ask}\n"
    )
    r = airlock("config", "check", path)
    assert r.returncode == 0, r.stderr
    path.write_text("policy:\n  rules:\n    - {name: ask-x, match: 'true', action: asks}\n")
    r = airlock("config", "check", path)
    assert r.returncode == 2 and "action" in r.stderr and "ask" in r.stderr, r.stderr


# --------------------------------------------------------------------------- in a real browser

DRIVER = Path(__file__).with_name("ask_driver.js")


@pytest.mark.timeout(120)
def test_approve_and_deny_on_the_dashboard(ask_proxy, detect_up, playwright_modules):
    p = ask_proxy()
    admin = admin_url(p) + "/"
    shots = Path(__file__).with_name("artifacts")
    shots.mkdir(exist_ok=True)
    driver = subprocess.Popen(
        ["node", str(DRIVER), admin],
        env=dict(os.environ, NODE_PATH=playwright_modules, ASK_SHOTS=str(shots)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        ready = driver.stdout.readline()
        assert ready.startswith("READY "), ready + driver.stderr.read()
        assert json.loads(ready[len("READY "):])["hidden"] is True, ready  # nothing held: no panel
        # Two requests are held while the page is open: they appear without a reload.
        approve_tag = "ask" + detect_up.new_tag()
        deny_tag = "ask" + detect_up.new_tag()
        approved = in_background(requests_session(p).get, f"https://example.test/t/{approve_tag}", timeout=60)
        denied = in_background(curl, f"http://example.test/t/{deny_tag}", proxy=p, timeout=60)
        to_approve = wait_held(p, approve_tag)
        to_deny = wait_held(p, deny_tag)
        driver.stdin.write(json.dumps({"approve": to_approve["id"], "deny": to_deny["id"]}) + "\n")
        driver.stdin.flush()
        resp = approved(60)
        res = denied(60)
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    result_line = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert result_line, out + err
    result = json.loads(result_line[0][len("RESULT "):])
    assert resp.status_code == 200 and resp.json()["ok"] is True, resp.text[:300]
    assert_ask_block(res.status, res.headers, res.body)
    assert len(detect_up.wait_hits(approve_tag)) == 1 and detect_up.hits(deny_tag) == []
    # What the person saw: both rows with their method, URL and rule, then an empty list.
    rows = result["rows"]
    assert any(approve_tag in r and "GET" in r and ASK_RULE in r for r in rows), rows
    assert any(deny_tag in r for r in rows), rows
    assert result["after"] == [] and result["hidden_after"] is True, result
    assert "denied" in result["state"], result
    admin_origin = admin.rstrip("/")
    assert all(u.startswith(admin_origin) for u in result["requests"]), result["requests"]
    assert result["console"] == [], result["console"]
    assert pending(p) == []
    assert (shots / "ask-pending.png").stat().st_size > 1000
