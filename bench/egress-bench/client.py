"""The agent side: sends one case through airlock over raw sockets.

Raw sockets, so every byte of the case goes out as written: the URL exactly as the case spells
it (percent-encoding, upper-case host labels, IP literals such as 0x7f000001 untouched), headers
in the case's order, WebSocket frames with the case's fragmentation, opcodes and RSV bits.

http://  -> absolute-form request to the proxy (what HTTP_PROXY clients do)
https:// -> CONNECT host:port, TLS to airlock's interception (trusting airlock's CA), then an
            origin-form request inside the tunnel
ws(s):// -> CONNECT, (TLS,) then an HTTP/1.1 Upgrade inside the tunnel (what websocket-client
            and browsers do through a proxy)
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field
from ipaddress import ip_address
from urllib.parse import urlsplit


@dataclass
class HttpResult:
    status: int = 0
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    connect_status: int | None = None  # status of the CONNECT, for https
    error: str | None = None


@dataclass
class WsResult:
    status: int = 0  # of the upgrade (or of the CONNECT when that was refused)
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    acks: int = 0
    close_code: int | None = None
    close_reason: str = ""
    closed_without_close_frame: bool = False
    send_error: str | None = None
    error: str | None = None


def _split_url(url: str):
    """(scheme, netloc, host, port, request-target) keeping the case's spelling."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    netloc = parts.netloc
    host = parts.hostname or ""
    # keep case of the host as written (urlsplit lower-cases .hostname)
    raw_host = netloc.rsplit("@", 1)[-1]
    if raw_host.startswith("["):
        raw_host = raw_host[: raw_host.index("]") + 1]
    elif ":" in raw_host:
        raw_host = raw_host.rsplit(":", 1)[0]
    default = {"http": 80, "ws": 80, "https": 443, "wss": 443}[scheme]
    port = parts.port or default
    rest = url.split(netloc, 1)[1] if netloc else "/"
    if not rest.startswith("/"):
        rest = "/" + rest
    if "#" in rest:
        rest = rest.split("#", 1)[0]
    return scheme, netloc, raw_host, host, port, rest


def _is_ip(host: str) -> bool:
    try:
        ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def _recv_head(sock) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes):
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            k = k.strip().lower()
            headers[k] = f"{headers[k]}, {v.strip()}" if k in headers else v.strip()
    return status, headers


def _read_body(sock, headers: dict, rest: bytes) -> bytes:
    def more():
        try:
            return sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, socket.timeout, OSError):
            return b""

    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            c = more()
            if not c:
                break
            rest += c
        return rest[:n]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        buf, body = rest, b""
        while True:
            while b"\r\n" not in buf:
                c = more()
                if not c:
                    return body
                buf += c
            line, buf = buf.split(b"\r\n", 1)
            size = int(line.split(b";")[0] or b"0", 16)
            while len(buf) < size + 2:
                c = more()
                if not c:
                    return body + buf[:size]
                buf += c
            body += buf[:size]
            buf = buf[size + 2:]
            if size == 0:
                return body
    while True:
        c = more()
        if not c:
            return rest
        rest += c


def _open(proxy_port: int, url: str, ca_path: str, timeout: float):
    """Connects through the proxy. Returns (sock, tunnelled, connect_status, connect_headers, rest)."""
    scheme, netloc, raw_host, host, port, target = _split_url(url)
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout)
    sock.settimeout(timeout)
    if scheme in ("http",):
        return sock, False, None, {}, b""
    authority = f"{raw_host}:{port}"
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    head, rest = _recv_head(sock)
    status, headers = _parse_head(head)
    if status != 200:
        return sock, True, status, headers, rest
    if scheme in ("https", "wss"):
        ctx = ssl.create_default_context(cafile=ca_path)
        ctx.set_alpn_protocols(["http/1.1"])
        sni = None if _is_ip(host) else raw_host
        if sni is None:
            ctx.check_hostname = False
        sock = ctx.wrap_socket(sock, server_hostname=sni)
    return sock, True, 200, headers, b""


def http_request(proxy_port: int, ca_path: str, method: str, url: str, headers: list[tuple[str, str]],
                 body: bytes | None, timeout: float = 10.0) -> HttpResult:
    res = HttpResult()
    try:
        scheme, netloc, raw_host, host, port, target = _split_url(url)
        sock, tunnelled, cstatus, cheaders, rest = _open(proxy_port, url, ca_path, timeout)
        res.connect_status = cstatus
        if tunnelled and cstatus != 200:
            res.status, res.headers = cstatus or 0, cheaders
            res.body = _read_body(sock, cheaders, rest) if cstatus else b""
            sock.close()
            return res
        request_target = url if not tunnelled else target
        lines = [f"{method} {request_target} HTTP/1.1"]
        names = {k.lower() for k, _ in headers}
        if "host" not in names:
            lines.append(f"Host: {netloc}")
        for k, v in headers:
            lines.append(f"{k}: {v}")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        lines.append("Connection: close")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + (body or b""))
        head, rest = _recv_head(sock)
        if not head:
            res.error = "connection closed without a response"
            return res
        res.status, res.headers = _parse_head(head)
        res.body = _read_body(sock, res.headers, rest)
        sock.close()
    except (OSError, ssl.SSLError, ValueError) as e:
        res.error = f"{type(e).__name__}: {e}"
    return res


def _ws_frame(payload: bytes, opcode: int, fin: bool = True, rsv1: bool = False) -> bytes:
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


OPCODES = {"continuation": 0, "text": 1, "binary": 2}


def frame_bytes(frame: dict) -> bytes:
    p = frame.get("payload", "")
    if frame.get("encoding") == "base64":
        return base64.b64decode(p)
    return p.encode("utf-8")


def ws_session(proxy_port: int, ca_path: str, url: str, frames: list[dict], extra_headers: list[tuple[str, str]],
               timeout: float = 10.0, settle: float = 3.0) -> WsResult:
    res = WsResult()
    try:
        scheme, netloc, raw_host, host, port, target = _split_url(url)
        sock, tunnelled, cstatus, cheaders, rest = _open(proxy_port, url, ca_path, timeout)
        if cstatus not in (None, 200):
            res.status, res.headers = cstatus, cheaders
            return res
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {target} HTTP/1.1", f"Host: {netloc}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in extra_headers]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head, buf = _recv_head(sock)
        res.status, res.headers = _parse_head(head)
        if res.status != 101:
            res.body = _read_body(sock, res.headers, buf)
            return res
        messages = 0
        for f in frames:
            fin = f.get("fin", True)
            data = _ws_frame(frame_bytes(f), OPCODES[f.get("opcode", "text")], fin, bool(f.get("rsv1")))
            try:
                sock.sendall(data)
            except (OSError, ssl.SSLError) as e:
                res.send_error = f"{type(e).__name__}: {e}"
                break
            if fin:
                messages += 1
            time.sleep(0.01)
        # read until every message is acknowledged, a Close arrives, or the connection ends
        sock.settimeout(0.25)
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and res.acks < messages:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                chunk = b""
            if not chunk:
                res.closed_without_close_frame = res.close_code is None
                break
            buf += chunk
            while len(buf) >= 2:
                op, n, pos = buf[0] & 0x0F, buf[1] & 0x7F, 2
                if n == 126:
                    if len(buf) < 4:
                        break
                    n, pos = struct.unpack("!H", buf[2:4])[0], 4
                elif n == 127:
                    if len(buf) < 10:
                        break
                    n, pos = struct.unpack("!Q", buf[2:10])[0], 10
                if len(buf) < pos + n:
                    break
                payload, buf = buf[pos:pos + n], buf[pos + n:]
                if op == 8:
                    res.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    res.close_reason = payload[2:].decode("utf-8", "replace")
                elif op == 1 and payload.startswith(b"ack "):
                    res.acks += 1
            if res.close_code is not None:
                break
        try:
            if res.close_code is None:
                sock.sendall(_ws_frame(struct.pack("!H", 1000), 8))
            sock.close()
        except (OSError, ssl.SSLError):
            pass
    except (OSError, ssl.SSLError, ValueError) as e:
        res.error = f"{type(e).__name__}: {e}"
    return res
