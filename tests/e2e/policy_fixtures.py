"""Fixtures and helpers for the policy tests (issue 5): CEL policy, remote policy source, live
reload, routes (credential injection), destination guard, lockdown and budgets.

Import with ``from policy_fixtures import *``.

* ``policy_config(start_proxy, extra=None, *, allow_private=True)`` - the suite's base config
  (``start_proxy.base_config()``) plus the extra names below in ``resolve`` and, unless
  ``allow_private=False``, ``allow_private: ["127.0.0.0/8"]`` (every test name resolves to
  127.0.0.1, which the destination guard refuses by default); ``extra`` is deep-merged in.
* ``policy_proxy``  - factory fixture: ``policy_proxy(extra=None, *, allow_private=True,
  **start_proxy_kwargs) -> Proxy`` (``start_proxy(policy_config(...), base=False, ...)``).
* ``policy_server`` - a threaded ``http.server`` (TCP_NODELAY) serving ``{"rules": [...]}`` at
  ``.url``; ``set_rules``, ``set_body``, ``set_status``, ``hits``, ``wait_hits``, ``stop``,
  ``restart``. Stopped on teardown.
* requests: ``send(proxy, method, url, **kw)`` (a fresh ``requests`` session through the proxy,
  trusting its CA), ``get``, ``post``; ``poll_request`` repeats one until a predicate holds.
* checks: ``assert_blocked`` (the 403 of SPEC 5), ``check_policy_block`` (403 + flow + threat +
  ``egress_block`` line), ``wait_policy_threat``, ``egress_events``, ``assert_secret_nowhere``.
* CLI and reload: ``status_json``, ``lockdown``, ``file_digest``,
  ``rewrite_config``, ``sighup``, ``wait_digest``, ``reload_config``, ``policy_diagnostics``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from e2e_helpers import airlock, cli_env, requests_session
from records import merge_config, read_threats, stderr_events, wait_for

__all__ = [
    "ALLOW_LOOPBACK",
    "HTTP_NAMES",
    "policy_config",
    "policy_proxy",
    "policy_server",
    "PolicyServer",
    "rule",
    "send",
    "get",
    "post",
    "poll_request",
    "assert_blocked",
    "assert_passed",
    "check_policy_block",
    "wait_policy_threat",
    "egress_events",
    "wait_egress",
    "assert_secret_nowhere",
    "status_json",
    "lockdown",
    "file_digest",
    "rewrite_config",
    "sighup",
    "wait_digest",
    "reload_config",
    "policy_diagnostics",
    "has_rule_count",
    "stderr_mark",
]

ALLOW_LOOPBACK = ["127.0.0.0/8"]

# Extra names for plain-HTTP tests: each one's port 80 goes to the plain upstream (the TLS
# upstream's certificate only names the suite's TEST_NAMES, so HTTPS tests use example.test and
# local.test:<https_port>).
HTTP_NAMES = [
    "evil.test",
    "x.evil.test",
    "blocked.test",
    "other.test",
    "api.allowed.test",
    "api.routed.test",
]


# --------------------------------------------------------------------------- config


def policy_config(start_proxy, extra: dict | None = None, *, allow_private: bool = True) -> dict:
    config = start_proxy.base_config()
    up = start_proxy.up
    resolve = dict(config["resolve"])
    for name in HTTP_NAMES:
        resolve[f"{name}:80"] = f"127.0.0.1:{up.http_port}"
    resolve["metadata.test"] = "169.254.169.254"
    config["resolve"] = resolve
    if allow_private:
        config["allow_private"] = list(ALLOW_LOOPBACK)
    else:
        config.pop("allow_private", None)  # whatever the suite's base config says
    return merge_config(config, extra)


@pytest.fixture
def policy_proxy(start_proxy):
    """policy_proxy(extra=None, *, allow_private=True, **start_proxy_kwargs) -> Proxy"""

    def make(extra: dict | None = None, *, allow_private: bool = True, **kw):
        return start_proxy(policy_config(start_proxy, extra, allow_private=allow_private), base=False, **kw)

    return make


def rule(name: str, match: str, action: str = "block") -> dict:
    return {"name": name, "match": match, "action": action}


# --------------------------------------------------------------------------- the policy server


class PolicyServer:
    """Serves the remote policy document at ``url`` (any path answers the same document).

    ``set_rules(rules)`` serves ``{"rules": rules}``; ``set_body(text, status=200)`` anything;
    ``set_status(code)`` an error status with a small body; ``stop()`` closes the listening
    socket (pulls then get connection refused); ``restart()`` listens again on the same port."""

    def __init__(self):
        self._lock = threading.Lock()
        self._status = 200
        self._body = b'{"rules": []}'
        self._ctype = "application/json"
        self.hits = 0
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- content
    def set_rules(self, rules: list[dict]):
        self.set_body(json.dumps({"rules": rules}))

    def set_body(self, body, status: int = 200, content_type: str = "application/json"):
        if isinstance(body, str):
            body = body.encode()
        with self._lock:
            self._body, self._status, self._ctype = body, status, content_type

    def set_status(self, status: int):
        self.set_body(json.dumps({"error": f"status {status}"}), status=status)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/policy.json"

    # -- lifecycle
    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self):
                with server._lock:
                    status, body, ctype = server._status, server._body, server._ctype
                    server.hits += 1
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    def start(self, port: int = 0) -> "PolicyServer":
        srv = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        srv.daemon_threads = True
        self._server = srv
        self.port = srv.server_address[1]
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def restart(self):
        self.stop()
        self.start(self.port)

    def wait_hits(self, count: int, timeout: float = 5.0) -> int:
        return wait_for(lambda: self.hits, lambda hits: hits >= count, None, timeout,
                        what=f"{count} pull(s) of the policy server")


@pytest.fixture
def policy_server():
    srv = PolicyServer().start()
    yield srv
    srv.stop()


# --------------------------------------------------------------------------- requests


def send(proxy, method: str, url: str, **kw):
    """One request through the proxy on a fresh requests session (trusting the airlock CA)."""
    kw.setdefault("timeout", 15)
    with requests_session(proxy) as s:
        return s.request(method, url, **kw)


def get(proxy, url: str, **kw):
    return send(proxy, "GET", url, **kw)


def post(proxy, url: str, data=b"payload", **kw):
    return send(proxy, "POST", url, data=data, **kw)


def poll_request(fn, pred, timeout: float = 4.0, interval: float = 0.1, what: str = ""):
    """Calls fn() (a request) until pred(response) holds; returns that response."""
    return wait_for(fn, pred, None, timeout, interval=interval, what=what)


def _is_rule(value: str, rule_name: str | None, rule_prefix: str | None) -> bool:
    if rule_name is not None:
        return value == rule_name
    if rule_prefix is not None:
        return value.startswith(rule_prefix)
    return bool(value)


def assert_blocked(r, rule: str | None = None, *, reason: str = "policy", rule_prefix: str | None = None) -> dict:
    """r (a requests.Response) is the 403 of SPEC 5 with X-Airlock-Block-Reason ``reason`` and
    X-Airlock-Rule ``rule`` (or starting with ``rule_prefix``, or any non-empty name)."""
    text = r.text[:500]
    assert r.status_code == 403, f"expected a 403 block (rule {rule or rule_prefix}), got {r.status_code}: {text!r}"
    h = {k.lower(): v for k, v in r.headers.items()}
    assert h.get("x-airlock-block-reason") == reason, f"X-Airlock-Block-Reason: {h}"
    got = h.get("x-airlock-rule", "")
    assert _is_rule(got, rule, rule_prefix), f"X-Airlock-Rule {got!r}, expected {rule or (rule_prefix or '') + '*'}"
    try:
        doc = json.loads(r.content)
    except ValueError:
        raise AssertionError(f"403 body is not JSON: {text!r}") from None
    assert doc.get("error") == "blocked", doc
    assert doc.get("rule") == got, f"body rule {doc.get('rule')!r} != header {got!r}"
    assert "reason" in doc and "detail" in doc, doc
    return doc


def assert_passed(r, status: int = 200):
    h = {k.lower(): v for k, v in r.headers.items()}
    assert r.status_code == status, (
        f"expected {status}, got {r.status_code} (block reason {h.get('x-airlock-block-reason')!r}, "
        f"rule {h.get('x-airlock-rule')!r}): {r.text[:300]!r}"
    )
    assert "x-airlock-block-reason" not in h, h


# --------------------------------------------------------------------------- records and events


def wait_policy_threat(proxy, pattern: str | None = None, *, action: str = "blocked", prefix: str | None = None,
                       pred=None, timeout: float = 5.0) -> dict:
    """The first POLICY threat record with that pattern (or pattern prefix) and action."""

    def match(t):
        if t.get("threat_type") != "POLICY" or t.get("action") != action:
            return False
        p = str(t.get("pattern") or "")
        if pattern is not None and p != pattern:
            return False
        if prefix is not None and not p.startswith(prefix):
            return False
        return pred is None or pred(t)

    what = f"a POLICY threat record with pattern {pattern or (prefix or '') + '*'} and action {action}"
    return wait_for(lambda: read_threats(proxy), match, 1, timeout, what=what)[0]


def egress_events(proxy, name: str, *, host: str | None = None, path_prefix: str | None = None) -> list[dict]:
    out = []
    for e in proxy.events(name):
        if host is not None and e.get("host") != host:
            continue
        if path_prefix is not None and not str(e.get("path", "")).startswith(path_prefix):
            continue
        out.append(e)
    return out


def wait_egress(proxy, name: str, *, host: str | None = None, path_prefix: str | None = None, timeout: float = 5.0):
    return wait_for(
        lambda: egress_events(proxy, name, host=host, path_prefix=path_prefix), None, 1, timeout,
        what=f"a {name} event (host {host}, path {path_prefix}*) on stderr",
        show=lambda _: f"events: {[e.get('event') for e in proxy.events()][-30:]}",
    )


def check_policy_block(proxy, r, rule_name: str | None, *, host: str, method: str, path_prefix: str,
                       rule_prefix: str | None = None, reason: str = "policy") -> tuple[dict, dict]:
    """Everything a user sees of a policy block: the 403, the flow record (blocked, 403), the
    POLICY threat record (pattern = rule), the egress_block line (host, method, path).
    Returns (flow, threat)."""
    doc = assert_blocked(r, rule_name, reason=reason, rule_prefix=rule_prefix)
    got_rule = doc["rule"]
    flow = proxy.wait_flows(
        lambda f: f.get("host") == host and urlsplit(f.get("url") or "").path.startswith(path_prefix)
        and f.get("action") == "blocked"
    )[0]
    assert flow["status"] == 403, flow
    assert flow.get("method") == method, flow
    assert flow.get("reason"), f"blocked flow without a reason: {flow}"
    t = wait_policy_threat(proxy, got_rule, pred=lambda t: str(t.get("dest", "")).startswith(f"{host}:"))
    ev = wait_egress(proxy, "egress_block", host=host, path_prefix=path_prefix)[0]
    assert ev.get("method") == method, ev
    return flow, t


def assert_secret_nowhere(proxy, secret: str, *, core: str | None = None, width: int = 12, extra_text: dict | None = None):
    """Neither secret nor any ``width``-character run of ``core`` (its secret material, default
    the whole secret) is on the proxy's stderr or in any file under its data dir (flows.jsonl,
    threats.jsonl, llm.jsonl, the store, ...)."""
    core = core or secret
    windows = [core] if len(core) <= width else [core[i : i + width] for i in range(len(core) - width + 1)]
    sources = {"stderr": proxy.stderr_text()}
    sources.update(extra_text or {})
    for dirpath, _, files in os.walk(proxy.data_dir):
        for name in files:
            path = Path(dirpath) / name
            if path.suffix in (".pem", ".key") and path.parent.name == "ca":
                continue
            try:
                sources[str(path.relative_to(proxy.data_dir))] = path.read_bytes().decode("latin-1")
            except OSError:
                continue
    for label, text in sources.items():
        variants = {text, text.replace("\\n", "\n").replace("\\/", "/"), unquote(text)}
        for t in variants:
            assert secret not in t, f"the injected/known credential is in clear in {label}"
            hit = next((w for w in windows if w in t), None)
            assert hit is None, f"{width} characters of the credential ({hit!r}) are in {label}"


def stderr_mark(proxy) -> int:
    """The number of stderr lines so far (to look only at what comes after)."""
    return len(proxy.stderr_lines)


def policy_diagnostics(proxy, since: int = 0) -> list[dict]:
    """JSON stderr lines after line ``since`` that are not events and mention "policy"."""
    lines = [line for line in list(proxy.stderr_lines)[since:] if "policy" in line.lower()]
    return [obj for obj in stderr_events(lines) if not str(obj.get("event", "")).startswith(("egress_", "boot"))]


def has_rule_count(obj, n: int) -> bool:
    """obj carries the rule count n: an integer field equal to n (not a boolean), or text such
    as "n rules"."""

    def ints(v):
        if isinstance(v, bool):
            return
        if isinstance(v, int):
            yield v
        elif isinstance(v, dict):
            for x in v.values():
                yield from ints(x)
        elif isinstance(v, list):
            for x in v:
                yield from ints(x)

    if n in set(ints(obj)):
        return True
    return re.search(rf"\b{n}\s+(\w+\s+)?rules?\b", json.dumps(obj)) is not None


# --------------------------------------------------------------------------- CLI, status, reload


def status_json(proxy) -> dict:
    r = airlock("status", "--json", env=cli_env(proxy), timeout=15)
    assert r.returncode == 0, f"airlock status --json exited {r.returncode}: {r.stderr}"
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"airlock status --json printed no JSON object: {r.stdout[:500]!r}") from None


def lockdown(proxy, state: str):
    """`airlock lockdown on|off` against the proxy's data dir (AIRLOCK_HOME)."""
    r = airlock("lockdown", state, env=cli_env(proxy), timeout=15)
    assert r.returncode == 0, f"airlock lockdown {state} exited {r.returncode}: {r.stdout} {r.stderr}"
    return r


def file_digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def rewrite_config(proxy, config: dict | str) -> str:
    """Writes the proxy's config file again, in place (one write); returns the new digest."""
    text = config if isinstance(config, str) else json.dumps(config, indent=2)
    with open(proxy.config_path, "w") as f:
        f.write(text)
    return file_digest(proxy.config_path)


def sighup(proxy):
    proxy.proc.send_signal(signal.SIGHUP)


def wait_digest(proxy, digest: str, timeout: float = 3.0) -> dict:
    """Polls `airlock status --json` until config_digest is digest; returns the status."""
    return wait_for(
        lambda: status_json(proxy), lambda st: st.get("config_digest") == digest, None, timeout, interval=0.1,
        what=f"config_digest to become {digest}",
        show=lambda st: f"config_digest {st.get('config_digest')!r}; alive={proxy.alive()}; last stderr: {proxy.stderr_lines[-5:]}",
    )


def reload_config(proxy, config: dict | str, *, signal_it: bool = True, timeout: float = 3.0) -> str:
    """Rewrites the config file, sends SIGHUP (unless signal_it=False) and waits until the
    running instance reports the new file's digest. Returns the digest."""
    digest = rewrite_config(proxy, config)
    if signal_it:
        sighup(proxy)
    wait_digest(proxy, digest, timeout)
    return digest
