"""Faults against a live proxy (hardening): upstreams that reset or never answer, clients that
never read, thousands of slow clients. Each case asserts what the client sees (a clear error
response or a clean close), the flow record, and that the proxy keeps serving afterwards.

Covered elsewhere and not repeated here: untrusted certificates and closed ports
(test_failures.py), connect timeout, header size and idle connections (test_limits.py),
garbage, oversized heads, half bodies, a client leaving mid-response and one stalled client
(test_bad_input.py), 200 concurrent requests (test_concurrency.py), an upstream closing (FIN)
before the announced length (test_forwarding.py)."""

from __future__ import annotations

import json
import os
import select
import socket
import ssl
import threading
import time

import pytest

from e2e_helpers import assert_serving, curl, read_response, rss_kb, tls_wrap
from llm_fixtures import llm_gateway, llm_up  # noqa: F401 (fixtures)
from fault_upstream import FaultUpstream
from records import wait_for

MiB = 1 << 20
BIG = 512 * MiB


@pytest.fixture(scope="module")
def fault_up(certs):
    up = FaultUpstream(certs.upstream_ca.issue_cert("fault.test")).start()
    yield up
    up.stop()


@pytest.fixture
def fault_proxy(start_proxy, fault_up):
    """fault_proxy(limits=None, **config) -> Proxy, with fault.test sent to the fault upstream."""

    def make(limits: dict | None = None, **extra):
        config = start_proxy.base_config()
        config["resolve"]["fault.test:80"] = f"127.0.0.1:{fault_up.http_port}"
        config["resolve"]["fault.test:443"] = f"127.0.0.1:{fault_up.https_port}"
        if limits:
            config["limits"] = limits
        config.update(extra)
        return start_proxy(config)

    return make


def _tag() -> str:
    return "f" + os.urandom(6).hex()


def _reason(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        raise AssertionError(f"error body is not JSON: {body[:300]!r}") from None
    reason = doc.get("reason")
    assert isinstance(reason, str) and reason.strip(), f"error body has no reason: {doc}"
    return reason


def _flow(proxy, tag: str, timeout: float = 10.0) -> dict:
    return proxy.wait_flows(lambda f: tag in (f.get("url") or ""), timeout=timeout)[0]


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _curl_args(scheme: str, h2: bool) -> list[str]:
    if scheme == "http":
        return []
    return ["--http2"] if h2 else ["--http1.1"]


CLIENTS = [("http", False), ("https", False), ("https", True)]
CLIENT_IDS = ["http", "https-h1", "https-h2"]


# --------------------------------------------------------------------------- resets


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_upstream_reset_before_answering_gives_502(fault_proxy, scheme):
    p = fault_proxy()
    tag = _tag()
    t0 = time.monotonic()
    res = curl(f"{scheme}://fault.test/reset-head?tag={tag}", proxy=p, cacert=p.ca_path, timeout=20)
    elapsed = time.monotonic() - t0
    assert res.status == 502, f"an upstream reset before any answer gave {res.status} rc={res.rc} {res.body[:300]!r}"
    _reason(res.body)
    assert elapsed < 5, f"the 502 came after {elapsed:.1f}s"
    f = _flow(p, tag)
    assert f["action"] == "failed" and f.get("reason"), f
    assert f["status"] in (502, None), f
    assert_serving(p)


# A body up to max_hold_bytes (1 MiB) with a known length is read whole and scanned before the
# head leaves; a longer or chunked one streams (the head leaves at once).
HELD, STREAMED = 1_000_000, 4_000_000


@pytest.mark.parametrize(("scheme", "h2"), CLIENTS, ids=CLIENT_IDS)
def test_upstream_reset_inside_a_held_body_gives_502(fault_proxy, scheme, h2):
    """Nothing has left for the client yet: it gets a 502 with a reason, not a connection
    closed without a word (curl: "Empty reply from server")."""
    p = fault_proxy()
    tag = _tag()
    t0 = time.monotonic()
    res = curl(f"{scheme}://fault.test/reset-mid?len={HELD}&tag={tag}", proxy=p, cacert=p.ca_path, timeout=20,
               extra=_curl_args(scheme, h2))
    elapsed = time.monotonic() - t0
    assert res.status == 502, (
        f"an upstream reset inside a held {HELD}-byte body gave status {res.status} (curl exit {res.rc}: {res.stderr.strip()})"
    )
    _reason(res.body)
    assert elapsed < 10, f"the 502 came after {elapsed:.1f}s"
    f = _flow(p, tag)
    assert f["action"] == "failed" and f.get("reason"), f
    assert f["status"] == 502, f
    assert_serving(p)


@pytest.mark.parametrize(("scheme", "h2"), CLIENTS, ids=CLIENT_IDS)
@pytest.mark.parametrize("path", [f"reset-mid?len={STREAMED}", "reset-chunked"], ids=["length", "chunked"])
def test_upstream_reset_inside_a_streamed_body_breaks_the_client_body(fault_proxy, scheme, h2, path):
    """The head (200) is already out: the client must see the body fail (curl exits non-zero),
    promptly, never a complete-looking response; the flow record says it failed."""
    p = fault_proxy()
    tag = _tag()
    sep = "&" if "?" in path else "?"
    t0 = time.monotonic()
    res = curl(f"{scheme}://fault.test/{path}{sep}tag={tag}", proxy=p, cacert=p.ca_path, timeout=20,
               extra=_curl_args(scheme, h2))
    elapsed = time.monotonic() - t0
    assert res.status == 200, (res.status, res.rc, res.stderr)
    assert res.rc != 0, (
        f"curl exit 0 with {len(res.body)} bytes: a response the upstream reset looked complete to the client"
    )
    assert elapsed < 10, f"the client waited {elapsed:.1f}s after the upstream reset the connection"
    assert len(res.body) < STREAMED, len(res.body)
    f = _flow(p, tag)
    assert f["status"] == 200, f
    assert f.get("response_bytes", 0) < STREAMED, f
    assert f["action"] == "failed" and f.get("reason"), (
        f"the flow record of a response the upstream reset mid-body does not say it failed: {f}"
    )
    assert_serving(p)


# --------------------------------------------------------------------------- an upstream that never answers


@pytest.mark.parametrize(("scheme", "h2"), CLIENTS, ids=CLIENT_IDS)
def test_upstream_that_never_answers_gets_504_at_request_timeout(fault_proxy, fault_up, scheme, h2):
    p = fault_proxy({"request_timeout": 2})
    tag = _tag()
    t0 = time.monotonic()
    res = curl(
        f"{scheme}://fault.test/hang?tag={tag}", proxy=p, cacert=p.ca_path, timeout=30, extra=_curl_args(scheme, h2)
    )
    elapsed = time.monotonic() - t0
    assert res.status == 504, f"an upstream that never answers gave {res.status} rc={res.rc} {res.body[:300]!r}"
    reason = _reason(res.body)
    assert "request_timeout" in reason or "within" in reason, reason
    assert 1.5 <= elapsed < 8, f"504 after {elapsed:.1f}s with request_timeout 2"
    f = _flow(p, tag)
    assert f["action"] == "failed" and f.get("reason"), f
    assert f["status"] in (504, None), f
    # the proxy gave up on the upstream connection too
    wait_for(lambda: fault_up.closed(tag), timeout=5, what="the proxy closing the silent upstream connection")
    assert_serving(p)


@pytest.mark.parametrize(("scheme", "h2"), CLIENTS, ids=CLIENT_IDS)
def test_upstream_stalling_inside_a_held_body_gets_504_at_request_timeout(fault_proxy, fault_up, scheme, h2):
    """The head and 1,000 of 1,000,000 bytes, then nothing: the body is held for scanning, so
    nothing has left; at request_timeout the client gets a 504, not an endless wait."""
    p = fault_proxy({"request_timeout": 2})
    tag = _tag()
    t0 = time.monotonic()
    res = curl(f"{scheme}://fault.test/hang-body?len={HELD}&tag={tag}", proxy=p, cacert=p.ca_path, timeout=30,
               extra=_curl_args(scheme, h2))
    elapsed = time.monotonic() - t0
    assert res.status == 504, (
        f"an upstream stalling inside a held body gave {res.status} after {elapsed:.1f}s (curl exit {res.rc}: {res.stderr.strip()})"
    )
    _reason(res.body)
    assert elapsed < 8, f"504 after {elapsed:.1f}s with request_timeout 2"
    f = _flow(p, tag)
    assert f["action"] == "failed" and f["status"] == 504 and f.get("reason"), f
    wait_for(lambda: fault_up.closed(tag), timeout=5, what="the proxy closing the stalled upstream connection")
    assert_serving(p)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_client_leaving_a_stalled_streamed_response_frees_the_upstream(fault_proxy, fault_up, scheme):
    """A streamed body stalls after 1,000 bytes: the head reached the client; when the client
    gives up, the proxy closes the upstream connection and records the flow."""
    p = fault_proxy()
    tag = _tag()
    target = "http://fault.test" if scheme == "http" else ""
    sock = _open_request(p, scheme, f"GET {target}/hang-body?len={STREAMED}&tag={tag} HTTP/1.1\r\nHost: fault.test\r\n\r\n")
    resp = read_response(sock, head_only=True)
    assert resp.status == 200, resp
    sock.close()
    wait_for(lambda: fault_up.closed(tag), timeout=5, what="the proxy closing the stalled upstream connection")
    f = _flow(p, tag)
    assert f["status"] == 200 and f.get("response_bytes", 0) < STREAMED, f
    assert f.get("reason"), f"the flow record does not say the client left a stalled response: {f}"
    assert_serving(p)


# --------------------------------------------------------------------------- clients that never read / upstreams that never read


def _open_request(p, scheme: str, head: str, rcvbuf: int | None = None):
    """A socket (TLS inside a CONNECT tunnel for https) on which head has been sent."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", p.port))
    if scheme == "https":
        sock.sendall(b"CONNECT fault.test:443 HTTP/1.1\r\nHost: fault.test:443\r\n\r\n")
        resp = read_response(sock, head_only=True)
        assert resp.status == 200, resp
        sock = tls_wrap(sock, "fault.test", p.ca_path)
    sock.sendall(head.encode())
    return sock


def _settled(read, quiet: float = 2.0, limit: float = 20.0) -> int:
    """Polls read() until it stops growing for `quiet` seconds (or `limit` passes)."""
    t0 = time.monotonic()
    last, since = read(), time.monotonic()
    while time.monotonic() - t0 < limit:
        time.sleep(0.2)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_client_that_never_reads_a_512mib_response_is_not_buffered(fault_proxy, fault_up, scheme):
    p = fault_proxy()
    pid = p.proc.pid
    assert_serving(p)
    before = rss_kb(pid)
    tag = _tag()
    target = "http://fault.test" if scheme == "http" else ""
    sock = _open_request(
        p, scheme, f"GET {target}/big/{BIG}?tag={tag} HTTP/1.1\r\nHost: fault.test\r\n\r\n", rcvbuf=64 * 1024
    )
    try:
        wait_for(lambda: fault_up.sent(tag), timeout=10, what="the upstream starting to send")
        sent = _settled(lambda: fault_up.sent(tag))
        after = rss_kb(pid)
        growth_mib = (after - before) / 1024
        assert sent < BIG, "the whole 512 MiB left the upstream while the client read nothing"
        assert sent < 128 * MiB, f"the proxy took {sent / MiB:.0f} MiB from the upstream for a client that reads nothing"
        assert growth_mib < 64, (
            f"RSS grew {growth_mib:.0f} MiB ({before // 1024} -> {after // 1024} MiB) while a client did not read "
            f"a 512 MiB response (upstream sent {sent / MiB:.0f} MiB)"
        )
        assert p.alive()
    finally:
        sock.close()
    f = _flow(p, tag)
    assert f["status"] == 200 and f.get("response_bytes", 0) < BIG, f
    assert_serving(p)


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize(("limits", "status", "limit_name"), [
    ({"request_timeout": 2, "idle_timeout": 4}, 504, "request_timeout"),
    ({"request_timeout": 60, "idle_timeout": 3}, 502, "idle_timeout"),
], ids=["request_timeout-first", "idle_timeout-first"])
def test_upload_to_an_upstream_that_never_reads_is_not_buffered(fault_proxy, fault_up, scheme, limits, status, limit_name):
    """The client streams 512 MiB; the upstream reads the head only. The proxy must push back
    (the client's writes stall) instead of holding the body. request_timeout answers 504; an
    upstream connection that takes no byte for idle_timeout is dropped (502), which also ends
    the exchange after a 504, instead of holding the upstream connection, the body and the
    client's connection for good (the flow record is written when the exchange ends)."""
    p = fault_proxy(limits)
    pid = p.proc.pid
    assert_serving(p)
    before = rss_kb(pid)
    tag = _tag()
    target = "http://fault.test" if scheme == "http" else ""
    sock = _open_request(
        p,
        scheme,
        f"POST {target}/hang-noread?tag={tag} HTTP/1.1\r\nHost: fault.test\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {BIG}\r\n\r\n",
    )
    pushed = 0
    stop = threading.Event()

    def upload():
        nonlocal pushed
        chunk = bytes(MiB)
        try:
            while pushed < BIG and not stop.is_set():
                sock.sendall(chunk)
                pushed += len(chunk)
        except (OSError, ssl.SSLError):
            pass

    sock.settimeout(30)
    t = threading.Thread(target=upload, daemon=True)
    t.start()
    try:
        wait_for(lambda: fault_up.requests(tag), timeout=10, what="the request reaching the upstream")
        accepted = _settled(lambda: pushed, quiet=2.0, limit=6.0)
        after = rss_kb(pid)
        growth_mib = (after - before) / 1024
        assert accepted < 128 * MiB, f"the proxy accepted {accepted / MiB:.0f} MiB of body an upstream does not read"
        assert growth_mib < 64, (
            f"RSS grew {growth_mib:.0f} MiB ({before // 1024} -> {after // 1024} MiB) holding a body the upstream "
            f"does not read (client pushed {accepted / MiB:.0f} MiB)"
        )
    finally:
        stop.set()
    sock.close()
    t.join(5)
    f = _flow(p, tag, timeout=15)
    assert f["action"] == "failed" and f["status"] == status, f
    assert limit_name in (f.get("reason") or ""), f
    assert_serving(p)


# --------------------------------------------------------------------------- slowloris


class SlowClients:
    """n connections that each send one byte of a request head every `interval` seconds and
    never finish it; a connection the proxy closes is opened again (a real slowloris)."""

    HEAD = b"GET http://example.test/hello HTTP/1.1\r\nHost: example.test\r\nX-Slow: " + b"a" * 100000

    def __init__(self, port: int, n: int, interval: float = 0.5):
        self.port, self.n, self.interval = port, n, interval
        self.stop = threading.Event()
        self.lifetimes: list[float] = []  # seconds each closed connection lived
        self.answers: dict[bytes, int] = {}  # first line of what the proxy said before closing
        self.open = 0
        self.reconnects = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self._thread.join(15)

    def _new(self):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            self.errors += 1
            return None
        return s

    def _run(self):
        conns: dict[int, list] = {}  # fd -> [sock, opened_at, bytes sent]
        poller = select.poll()

        def add():
            s = self._new()
            if s is not None:
                conns[s.fileno()] = [s, time.monotonic(), 0]
                poller.register(s.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)

        for _ in range(self.n):
            add()
        next_tick = time.monotonic()
        while not self.stop.is_set():
            self.open = len(conns)
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + self.interval
                for c in list(conns.values()):
                    s, _, sent = c
                    try:
                        s.send(self.HEAD[sent : sent + 1])
                        c[2] = sent + 1
                    except OSError:
                        pass  # not connected yet, or closed: the read side notices
            for fd, _ in poller.poll(20):
                c = conns.get(fd)
                if c is None:
                    continue
                s, opened, _ = c
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    line = data.split(b"\r\n", 1)[0]
                    self.answers[line] = self.answers.get(line, 0) + 1
                poller.unregister(fd)
                del conns[fd]
                s.close()
                self.lifetimes.append(time.monotonic() - opened)
                if not self.stop.is_set():
                    self.reconnects += 1
                    add()
        for s, _, _ in conns.values():
            s.close()


def _timed_hello(p) -> tuple[float, int, bytes]:
    t0 = time.monotonic()
    res = curl("http://example.test/hello", proxy=p, timeout=15)
    return time.monotonic() - t0, res.status, res.body


@pytest.mark.timeout(90)
def test_2000_slow_clients_do_not_stop_normal_requests(fault_proxy):
    """2,000 slowloris connections (a header byte every half second, reconnecting when dropped)
    against max_connections 4,000 and header_timeout 2: normal requests are served all along,
    each slow connection is dropped within the header timeout, fds and RSS stay bounded."""
    n, header_timeout = 2000, 2
    p = fault_proxy({"max_connections": 4000, "header_timeout": header_timeout})
    pid = p.proc.pid
    assert_serving(p)
    rss0, fds0 = rss_kb(pid), fd_count(pid)
    peak_fds = peak_rss = 0
    served: list[tuple[float, int, bytes]] = []
    with SlowClients(p.port, n) as slow:
        wait_for(lambda: slow.open >= n * 0.95 or None, timeout=15, what=f"{n} slow connections open")
        t_end = time.monotonic() + 10
        while time.monotonic() < t_end:
            served.append(_timed_hello(p))
            peak_fds = max(peak_fds, fd_count(pid))
            peak_rss = max(peak_rss, rss_kb(pid))
            time.sleep(0.2)
        lifetimes = list(slow.lifetimes)
        answers = dict(slow.answers)
    bad = [s for s in served if s[1] != 200 or s[2] != b"hello"]
    assert not bad, f"{len(bad)} of {len(served)} normal requests failed during the slowloris: {bad[:5]}"
    slowest = max(s[0] for s in served)
    assert slowest < 3, f"a normal request took {slowest:.1f}s during the slowloris"
    assert len(lifetimes) >= n, (
        f"only {len(lifetimes)} slow connections were dropped in 10 s with header_timeout {header_timeout}"
    )
    longest = max(lifetimes)
    assert longest < header_timeout + 3, f"a slow connection lived {longest:.1f}s with header_timeout {header_timeout}"
    assert set(answers) <= {b"HTTP/1.1 408 Request Timeout"}, f"slow clients were answered {answers}"
    assert peak_fds < fds0 + n + 200, f"the proxy held {peak_fds} fds for {n} slow clients (started with {fds0})"
    growth = (peak_rss - rss0) / 1024
    assert growth < 128, f"RSS grew {growth:.0f} MiB with {n} slow clients ({rss0 // 1024} -> {peak_rss // 1024} MiB)"
    # once the slow clients are gone, the proxy's fds come back down
    wait_for(lambda: fd_count(pid) < fds0 + 50 or None, timeout=header_timeout + 5,
             what=f"the proxy's fds back near {fds0} after the slow clients left")
    assert_serving(p)


@pytest.mark.timeout(90)
def test_slow_clients_past_max_connections_are_refused_not_held(fault_proxy):
    """2,000 slow connections against max_connections 300: the rest are refused with a 503 at
    once, the proxy holds at most about 300 client fds, and once header_timeout has dropped the
    slow ones a normal request is served again."""
    n, limit, header_timeout = 2000, 300, 2
    p = fault_proxy({"max_connections": limit, "header_timeout": header_timeout})
    pid = p.proc.pid
    assert_serving(p)
    fds0, rss0 = fd_count(pid), rss_kb(pid)
    peak_fds = peak_rss = 0
    with SlowClients(p.port, n) as slow:
        t_end = time.monotonic() + 6
        while time.monotonic() < t_end:
            peak_fds = max(peak_fds, fd_count(pid))
            peak_rss = max(peak_rss, rss_kb(pid))
            time.sleep(0.1)
        answers = dict(slow.answers)
    refused = sum(v for k, v in answers.items() if k.startswith(b"HTTP/1.1 503"))
    assert refused >= n - limit, f"{refused} slow connections got a 503 past max_connections {limit}: {answers}"
    assert set(answers) <= {b"HTTP/1.1 503 Service Unavailable", b"HTTP/1.1 408 Request Timeout"}, answers
    # refused sockets live on briefly between accept and their 503: bounded by the limit, not
    # by the 2,000 the slow clients keep opening
    assert peak_fds < fds0 + 2 * limit, f"the proxy held {peak_fds} fds with max_connections {limit} (started with {fds0})"
    growth = (peak_rss - rss0) / 1024
    assert growth < 64, f"RSS grew {growth:.0f} MiB with {n} slow clients against max_connections {limit}"
    wait_for(lambda: curl("http://example.test/hello", proxy=p, timeout=5).status == 200 or None,
             timeout=header_timeout + 5, what="a normal request served again after the slowloris")
    assert_serving(p)


# --------------------------------------------------------------------------- decompression bombs


def _peak_rss_while(pid: int, work) -> tuple[int, object]:
    """Runs work() in a thread, sampling the pid's RSS every 20 ms; returns (peak kB, result)."""
    box = {}
    t = threading.Thread(target=lambda: box.update(result=work()), daemon=True)
    t.start()
    peak = rss_kb(pid)
    while t.is_alive():
        peak = max(peak, rss_kb(pid))
        time.sleep(0.02)
    t.join()
    return peak, box.get("result")


def _read_through(sock, limit_s: float = 60.0) -> int:
    """Reads the response on sock to its end (or the peer's close); returns the bytes read."""
    sock.settimeout(limit_s)
    n = 0
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            n += len(chunk)
    except (OSError, ssl.SSLError):
        pass
    return n


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_gzip_bomb_response_is_decoded_in_bounded_memory(fault_proxy, fault_up, scheme):
    """A 512 MiB gzip bomb (about 500 KiB on the wire) as a response: with inbound_secrets
    redact (the default) airlock decodes what it sends on; its memory must not follow the
    decoded size."""
    p = fault_proxy()
    pid = p.proc.pid
    fault_up.bomb(BIG)  # made before the clock starts
    assert_serving(p)
    before = rss_kb(pid)
    tag = _tag()
    target = "http://fault.test" if scheme == "http" else ""
    sock = _open_request(p, scheme, f"GET {target}/gzip-bomb/{BIG}?tag={tag} HTTP/1.1\r\nHost: fault.test\r\n"
                                    "Accept-Encoding: gzip\r\nConnection: close\r\n\r\n")
    try:
        peak, got = _peak_rss_while(pid, lambda: _read_through(sock))
    finally:
        sock.close()
    growth = (peak - before) / 1024
    assert growth < 64, f"RSS grew {growth:.0f} MiB ({before // 1024} -> {peak // 1024} MiB) passing a 512 MiB gzip bomb (client read {got / MiB:.0f} MiB)"
    f = _flow(p, tag, timeout=30)
    assert f["status"] == 200, f
    assert_serving(p)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_gzip_bomb_request_is_scanned_in_bounded_memory(fault_proxy, fault_up, scheme):
    """A 512 MiB gzip bomb as a request body (Content-Encoding: gzip): scanned up to
    max_scan_bytes, forwarded as sent, in bounded memory."""
    p = fault_proxy()
    pid = p.proc.pid
    data = fault_up.bomb(BIG)
    assert_serving(p)
    before = rss_kb(pid)
    tag = _tag()
    target = "http://fault.test" if scheme == "http" else ""
    sock = _open_request(p, scheme, f"POST {target}/sink?tag={tag} HTTP/1.1\r\nHost: fault.test\r\n"
                                    f"Content-Type: text/plain\r\nContent-Encoding: gzip\r\n"
                                    f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")

    def send_and_read():
        sock.sendall(data)
        return read_response(sock)

    try:
        peak, resp = _peak_rss_while(pid, send_and_read)
    finally:
        sock.close()
    growth = (peak - before) / 1024
    assert growth < 64, f"RSS grew {growth:.0f} MiB ({before // 1024} -> {peak // 1024} MiB) scanning a 512 MiB gzip bomb request"
    assert resp is not None and resp.status == 200, resp
    assert fault_up.requests(tag) and fault_up.requests(tag)[0]["body_len"] == len(data), fault_up.requests(tag)
    f = _flow(p, tag, timeout=30)
    assert f["status"] == 200, f
    assert_serving(p)


def test_deeply_nested_json_in_llm_bodies(llm_gateway, llm_up):
    """A prompt nested 100,000 levels deep and an invalid one: forwarded and recorded as calls
    (the parsers give up on them, bounded), and the proxy keeps serving."""
    import httpx

    from llm_fixtures import gateway_url

    p = llm_gateway()
    base = gateway_url(p)
    r = llm_up.reply(text="Deep.")
    deep = '{"model":"claude-sonnet-4-5","max_tokens":5,"x":' + "[" * 100_000 + "]" * 100_000 + \
        ',"messages":[{"role":"user","content":"' + r.prompt() + '"}]}'
    bad = '{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"' + r.prompt() + '"}' + "{" * 5000
    with httpx.Client(timeout=30, trust_env=False) as c:
        for body in (deep, bad):
            res = c.post(base + "/v1/messages", content=body.encode(),
                         headers={"content-type": "application/json", "x-api-key": "fake", "anthropic-version": "2023-06-01"})
            assert res.status_code in (200, 400, 500), res.status_code
    flows = p.wait_flows(lambda f: f.get("listener") == "llm", count=2)
    assert all(f["status"] is not None for f in flows), flows
    assert p.alive()
    assert curl(["https://example.test/hello"], proxy=p, cacert=p.ca_path).status == 200
