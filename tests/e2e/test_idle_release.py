"""What a burst leaves behind goes back when the proxy falls quiet (issue 13 item 6): the
pooled upstream connections are closed once no client connection has been open for 5 s,
and the next request opens a new one as if nothing happened."""

from __future__ import annotations

import os
import time

import httpx

from records import wait_for


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def _connections_to(pid: int, port: int) -> int:
    """The proxy's established TCP connections whose remote port is `port`."""
    inodes = _socket_inodes(pid)
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            remote_port = int(cols[2].rsplit(":", 1)[1], 16)
            if remote_port == port and cols[3] == "01" and cols[9] in inodes:
                n += 1
    return n


def test_idle_upstream_connections_close_when_the_proxy_falls_quiet(start_proxy, upstreams):
    p = start_proxy()
    pid = p.proc.pid
    with httpx.Client(proxy=p.url, verify=str(p.ca_path), trust_env=False, timeout=10) as c:
        for i in range(5):
            assert c.get(f"https://example.test/hello?n={i}").status_code == 200
    # The client has gone: the pooled upstream connection stays for a while, then closes.
    assert _connections_to(pid, upstreams.https_port) >= 1, "no pooled upstream connection after the requests"
    started = time.monotonic()
    wait_for(lambda: _connections_to(pid, upstreams.https_port), lambda n: n == 0,
             what="the idle upstream connections closed", timeout=15, interval=0.5)
    assert time.monotonic() - started >= 3, "closed at once: the pool was not kept between requests"
    with httpx.Client(proxy=p.url, verify=str(p.ca_path), trust_env=False, timeout=10) as c:
        assert c.get("https://example.test/hello?after=1").status_code == 200
    flows = p.wait_flows(lambda f: "after=1" in (f.get("url") or ""))
    assert flows[0]["status"] == 200


def test_a_client_that_stays_connected_keeps_its_upstream_connection(start_proxy, upstreams):
    p = start_proxy()
    pid = p.proc.pid
    with httpx.Client(proxy=p.url, verify=str(p.ca_path), trust_env=False, timeout=10) as c:
        assert c.get("https://example.test/hello?n=1").status_code == 200
        time.sleep(7)  # quiet, but the client's tunnel stays open
        assert _connections_to(pid, upstreams.https_port) >= 1, "the pool was emptied under an open client"
        assert c.get("https://example.test/hello?n=2").status_code == 200
