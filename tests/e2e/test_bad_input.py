"""Malformed or abusive clients never take the proxy down."""

import os
import re
import threading
import time

from e2e_helpers import (
    assert_serving,
    connect,
    connect_tunnel,
    recv_all,
    tls_wrap,
)


def test_garbage_instead_of_http(proxy):
    sock = connect(proxy.port)
    sock.sendall(os.urandom(2000).replace(b"\r\n", b"..") + b"\r\n\r\n")
    data = recv_all(sock, timeout=10)
    sock.close()
    assert data == b"" or data.startswith(b"HTTP/1.1 400"), f"garbage answered with {data[:200]!r}"
    assert_serving(proxy)


def test_garbage_inside_connect_tunnel(proxy):
    sock, resp = connect_tunnel(proxy.port, "example.test:443")
    assert resp.status == 200
    sock.sendall(b"\x16\x03\x01\x00\x05" + os.urandom(3000))
    recv_all(sock, timeout=10)  # the proxy closes (or resets) the connection
    sock.close()
    assert_serving(proxy)


def test_oversized_header_block(proxy):
    sock = connect(proxy.port)
    pad = "".join(f"X-Pad-{i}: {'a' * 1000}\r\n" for i in range(1000))
    req = f"GET http://example.test/hello HTTP/1.1\r\nHost: example.test\r\n{pad}\r\n".encode()
    assert len(req) > 1_000_000

    def send():
        try:
            sock.sendall(req)
        except OSError:
            pass  # the proxy may stop reading and close early

    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        data = recv_all(sock, timeout=10)
    except TimeoutError:
        raise AssertionError("the proxy neither answered nor closed the connection after 1 MB of headers") from None
    finally:
        sock.close()
    t.join(5)
    head = data.split(b"\r\n\r\n", 1)[0]
    assert re.match(rb"HTTP/1\.[01] (431|400) ", head), f"answer to 1 MB of headers: {data[:300]!r}"
    assert b"aiohttp" not in head, f"the proxy passed 1 MB of headers upstream instead of refusing them: {head!r}"
    assert_serving(proxy)


def test_half_post_body_then_disconnect(proxy):
    sock = connect(proxy.port)
    sock.sendall(
        b"POST http://example.test/echo HTTP/1.1\r\nHost: example.test\r\n"
        b"Content-Length: 1000000\r\n\r\n" + b"x" * 10000
    )
    sock.close()
    assert_serving(proxy)


def test_half_post_body_then_disconnect_tls(proxy):
    sock, resp = connect_tunnel(proxy.port, "example.test:443")
    assert resp.status == 200
    tls = tls_wrap(sock, "example.test", proxy.ca_path)
    tls.sendall(
        b"POST /echo HTTP/1.1\r\nHost: example.test\r\nContent-Length: 1000000\r\n\r\n" + b"y" * 10000
    )
    tls.close()
    assert_serving(proxy)


def test_client_disconnects_mid_response(proxy):
    sock = connect(proxy.port)
    sock.sendall(b"GET http://example.test/bytes/5000000 HTTP/1.1\r\nHost: example.test\r\n\r\n")
    sock.recv(1000)
    sock.close()
    assert_serving(proxy)


def test_header_timeout(start_proxy):
    p = start_proxy({"limits": {"header_timeout": 1}})
    sock = connect(p.port)
    sock.sendall(b"GET http://example.test/hello HTTP/1.1\r\nHost: exa")
    t0 = time.monotonic()
    try:
        data = recv_all(sock, timeout=10)
    except TimeoutError:
        raise AssertionError("a client stalling in its headers was not dropped within 10 s (header_timeout: 1)") from None
    finally:
        sock.close()
    elapsed = time.monotonic() - t0
    assert elapsed < 5, f"connection closed only after {elapsed:.1f}s with header_timeout 1"
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]
    assert_serving(p)
