"""`limits`: connect timeout, header size, idle client connections."""

import json
import socket
import time

import pytest

from e2e_helpers import assert_serving, connect, curl, read_response, recv_all


@pytest.fixture
def blackhole_port():
    """A loopback port whose accept queue is full: new connections hang in SYN-SENT."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)
    # make sure the queue is really full
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(("127.0.0.1", port))
        full = False
    except (TimeoutError, OSError):
        full = True
    finally:
        probe.close()
    assert full, "could not make a non-answering port on loopback"
    yield port
    filler.close()
    listener.close()


def test_connect_timeout_gives_504(start_proxy, blackhole_port):
    config = start_proxy.base_config()
    config["resolve"]["slow.test:80"] = f"127.0.0.1:{blackhole_port}"
    config["limits"] = {"connect_timeout": 1}
    p = start_proxy(config)
    t0 = time.monotonic()
    res = curl("http://slow.test/hello", proxy=p, timeout=10)
    elapsed = time.monotonic() - t0
    assert res.status == 504, (res.status, res.body[:300], res.stderr)
    assert elapsed < 5, f"504 only after {elapsed:.1f}s with connect_timeout 1"
    body = json.loads(res.body)
    assert isinstance(body.get("reason"), str) and body["reason"]
    f = p.wait_flows(lambda f: f.get("host") == "slow.test")[0]
    assert f["action"] == "failed" and f.get("reason"), f
    assert_serving(p)


def test_header_bytes_limit(start_proxy):
    p = start_proxy({"limits": {"header_bytes": 4096}})
    sock = connect(p.port)
    sock.sendall(b"GET http://example.test/hello HTTP/1.1\r\nHost: example.test\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
    resp = read_response(sock)
    sock.close()
    assert resp.status in (431, 400), f"header_bytes 4096 not enforced: an 8 KB header got {resp.status} from {resp.headers.get('server')}"
    assert "aiohttp" not in resp.headers.get("server", ""), "the upstream answered: the proxy let the headers through"
    # a request within the limit still works
    res = curl("http://example.test/hello", proxy=p, extra=["-H", "X-Small: " + "b" * 1000])
    assert (res.status, res.body) == (200, b"hello")


def test_idle_client_connection_closed(start_proxy):
    p = start_proxy({"limits": {"idle_timeout": 1}})
    sock = connect(p.port)
    sock.sendall(b"GET http://example.test/hello HTTP/1.1\r\nHost: example.test\r\n\r\n")
    resp = read_response(sock)
    assert (resp.status, resp.body) == (200, b"hello")
    t0 = time.monotonic()
    try:
        rest = recv_all(sock, timeout=10)
    except TimeoutError:
        raise AssertionError("an idle keep-alive client connection stayed open 10 s with idle_timeout 1") from None
    finally:
        sock.close()
    elapsed = time.monotonic() - t0
    assert rest == b""
    assert elapsed < 5, f"idle connection closed after {elapsed:.1f}s with idle_timeout 1"


def test_status_reports_the_limits(start_proxy):
    from e2e_helpers import airlock, cli_env

    p = start_proxy({"limits": {"max_connections": 321, "header_bytes": 32768, "idle_timeout": 77,
                                "header_timeout": 9, "connect_timeout": 4, "request_timeout": 120}})
    env = dict(cli_env(p), AIRLOCK_CONFIG=str(p.config_path))
    out = json.loads(airlock("status", "--json", env=env).stdout)
    assert out["limits"] == {"max_connections": 321, "header_bytes": 32768, "idle_timeout": 77,
                             "header_timeout": 9, "connect_timeout": 4, "request_timeout": 120}, out
    # Without the config, status asks the running instance: its limits, not the defaults.
    out = json.loads(airlock("status", "--json", env=cli_env(p)).stdout)
    assert out["limits"]["max_connections"] == 321, out
    text = airlock("status", env=cli_env(p)).stdout
    assert "321 connections, 32 KiB request heads" in text and "idle 77" in text, text
