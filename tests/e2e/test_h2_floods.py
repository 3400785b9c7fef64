"""HTTP/2 floods against the interception (issue 13 item 5), with the limits set on purpose in
`proxy/intercept.rs`: a CONTINUATION flood (a header block that never ends) is cut off, a
rapid-reset flood (streams opened and reset at once) and SETTINGS and PING floods (frames the
server must acknowledge, sent by a client that never reads the acknowledgements) are survived
with memory bounded, and in every case the proxy keeps serving others. The client is the `h2` library speaking frames directly over a CONNECT
tunnel with ALPN h2."""

from __future__ import annotations

import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, SettingsFrame

from e2e_helpers import connect, curl, recv_until


def _h2_tunnel(p, host="h2.test"):
    sock = connect(p.port)
    sock.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
    head = recv_until(sock, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    ctx = ssl.create_default_context(cafile=str(p.ca_path))
    ctx.set_alpn_protocols(["h2"])
    tls = ctx.wrap_socket(sock, server_hostname=host)
    assert tls.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
    return tls, conn


def _drain_until_closed(tls, conn, seconds):
    """Reads until the peer closes or says GOAWAY; returns (closed, goaway)."""
    deadline = time.monotonic() + seconds
    goaway = False
    tls.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            data = tls.recv(65536)
        except (socket.timeout, TimeoutError):
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            return True, goaway
        if not data:
            return True, goaway
        try:
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    goaway = True
        except Exception:  # a frame h2 refuses after the flood: the peer ended it
            return True, goaway
    return False, goaway


def _rss_kib(p):
    with open(f"/proc/{p.proc.pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _serving(p):
    assert curl(["https://example.test/hello"], proxy=p, cacert=p.ca_path).status == 200
    assert p.alive()


def test_a_continuation_flood_is_cut_off(start_proxy):
    p = start_proxy({"limits": {"header_bytes": 16384}})
    tls, conn = _h2_tunnel(p)
    block = conn.encoder.encode([(":method", "GET"), (":scheme", "https"), (":authority", "h2.test"),
                                 (":path", "/hello")])
    tls.sendall(HeadersFrame(1, data=block, flags=[]).serialize())
    sent = 0
    # Never END_HEADERS: 4 MiB of CONTINUATION, far past the 16 KiB header limit.
    filler = b"\x40\x05x-pad\x83" + b"a" * 3  # a literal header, repeated
    try:
        while sent < 4 << 20:
            tls.sendall(ContinuationFrame(1, data=filler * 1000, flags=[]).serialize())
            sent += len(filler) * 1000
    except (ConnectionError, ssl.SSLError, OSError):
        pass  # cut off while sending: what is wanted
    closed, goaway = _drain_until_closed(tls, conn, 10)
    assert closed or goaway, f"still open after {sent} bytes of CONTINUATION"
    assert sent < 4 << 20 or closed or goaway
    tls.close()
    _serving(p)


def test_a_rapid_reset_flood_is_survived(start_proxy):
    p = start_proxy()
    rss_before = _rss_kib(p)
    tls, conn = _h2_tunnel(p)
    opened = 0
    try:
        for _ in range(2000):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":authority", "h2.test"),
                                    (":path", "/hello")], end_stream=True)
            conn.reset_stream(sid)
            opened += 1
            tls.sendall(conn.data_to_send())
    except (ConnectionError, ssl.SSLError, OSError, h2.exceptions.ProtocolError):
        pass  # the proxy ended the connection (GOAWAY, then close): what the limit is for
    closed, goaway = _drain_until_closed(tls, conn, 5)
    tls.close()
    # Either it ended the flooding connection, or it kept up; it never fell over.
    _serving(p)
    assert _rss_kib(p) - rss_before < 64 * 1024, "memory grew by more than 64 MiB"
    assert opened > 0


def _flood_unread(p, frame: bytes, count: int):
    """Sends `frame` `count` times without reading a byte back; returns the RSS growth in KiB
    and whether the proxy ended the connection. Measured after a first tunnel and request:
    what a proxy's first connection costs (lazy set-up, caches) is no part of the flood."""
    _serving(p)
    warm, _ = _h2_tunnel(p)
    warm.close()
    rss_before = _rss_kib(p)
    tls, conn = _h2_tunnel(p)
    tls.settimeout(10)
    ended = False
    try:
        batch = frame * 1000
        for _ in range(count // 1000):
            tls.sendall(batch)
    except (ConnectionError, ssl.SSLError, OSError, TimeoutError):
        ended = True  # refused (GOAWAY, close) or stopped reading: both bound what it holds
    grown = _rss_kib(p) - rss_before
    closed, goaway = _drain_until_closed(tls, conn, 3)
    tls.close()
    return grown, ended or closed or goaway


def test_a_settings_flood_is_survived(start_proxy):
    p = start_proxy()
    # 1,000,000 SETTINGS frames (15 MB; each one must be ACKed), none of the ACKs read: a server
    # that queued the ACKs would hold more than the 8 MiB allowed.
    frame = SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 65535}).serialize()
    grown, _ = _flood_unread(p, frame, 1_000_000)
    assert grown < 8 * 1024, f"memory grew by {grown // 1024} MiB under a SETTINGS flood"
    _serving(p)


def test_a_ping_flood_is_survived(start_proxy):
    p = start_proxy()
    frame = PingFrame(0, opaque_data=b"12345678").serialize()  # 17 bytes, 17 MB in all
    grown, _ = _flood_unread(p, frame, 1_000_000)
    assert grown < 8 * 1024, f"memory grew by {grown // 1024} MiB under a PING flood"
    _serving(p)
