"""Helpers shared by the airlock end-to-end tests (clients, raw sockets, the CLI); records and
waiting are in records.py."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AIRLOCK_BIN = os.environ.get("AIRLOCK_BIN") or str(REPO / "target" / "debug" / "airlock")

# Environment variables that would make a client (or airlock itself) go somewhere
# other than where a test points it.
_ENV_TO_DROP = {
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "ftp_proxy",
    "ssl_cert_file",
    "ssl_cert_dir",
    "requests_ca_bundle",
    "curl_ca_bundle",
    "node_extra_ca_certs",
    "git_ssl_cainfo",
    "pip_cert",
    "aws_ca_bundle",
    "sslkeylogfile",
    "airlock_home",
    "airlock_config",
}


def clean_environ(env: dict | None = None) -> dict:
    base = dict(os.environ if env is None else env)
    return {k: v for k, v in base.items() if k.lower() not in _ENV_TO_DROP}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- curl


@dataclass
class CurlResult:
    rc: int
    status: int
    http_version: str
    connect_status: int
    body: bytes
    stderr: str
    headers: dict  # lower-case names, of the final response (after any CONNECT)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body)


def curl(
    url_or_args,
    *,
    proxy=None,
    cacert=None,
    extra=(),
    timeout: float = 20,
    env=None,
) -> CurlResult:
    """Runs curl once; returns status code, negotiated HTTP version and body."""
    args = [url_or_args] if isinstance(url_or_args, str) else list(url_or_args)
    fd, out = tempfile.mkstemp(prefix="curl-body-")
    os.close(fd)
    fd, hdr = tempfile.mkstemp(prefix="curl-head-")
    os.close(fd)
    try:
        cmd = ["curl", "-sS", "--max-time", str(timeout), "-o", out, "-D", hdr]
        cmd += ["-w", "%{http_code} %{http_version} %{http_connect}"]
        if proxy is not None:
            cmd += ["-x", proxy if isinstance(proxy, str) else proxy.url]
        if cacert is not None:
            cmd += ["--cacert", str(cacert)]
        cmd += list(extra) + args
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=clean_environ() if env is None else env,
            timeout=timeout + 10,
        )
        parts = proc.stdout.decode().split()
        status = int(parts[0]) if parts else 0
        version = parts[1] if len(parts) > 1 else ""
        connect = int(parts[2]) if len(parts) > 2 else 0
        body = Path(out).read_bytes()
        headers = _last_header_block(Path(hdr).read_text(errors="replace"))
        return CurlResult(proc.returncode, status, version, connect, body, proc.stderr.decode(errors="replace"), headers)
    finally:
        os.unlink(out)
        os.unlink(hdr)


def _last_header_block(text: str) -> dict:
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip().startswith("HTTP/")]
    if not blocks:
        return {}
    headers = {}
    for line in blocks[-1].strip().split("\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


# --------------------------------------------------------------------------- raw sockets


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def recv_until(sock, marker: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            break
    return data


def recv_all(sock, timeout: float = 10.0) -> bytes:
    """Reads until the peer closes (or resets) the connection."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        data += chunk
    return data


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: dict
    body: bytes
    rest: bytes  # bytes read after the body (e.g. the first websocket frames)


def read_response(sock, *, head_only: bool = False) -> RawResponse:
    """Reads one HTTP/1.x response (Content-Length or chunked or until close)."""
    data = recv_until(sock, b"\r\n\r\n")
    if b"\r\n\r\n" not in data:
        raise AssertionError(f"no complete HTTP response head received: {data[:300]!r}")
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if head_only or status in (101, 204, 304):
        return RawResponse(status, reason, headers, b"", rest)
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return RawResponse(status, reason, headers, rest[:n], rest[n:])
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        buf = rest
        while True:
            while b"\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise AssertionError("connection closed inside chunked body")
                buf += chunk
            size_line, buf = buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(buf) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    raise AssertionError("connection closed inside chunked body")
                buf += chunk
            body += buf[:size]
            buf = buf[size + 2 :]
            if size == 0:
                return RawResponse(status, reason, headers, body, buf)
    return RawResponse(status, reason, headers, rest + recv_all(sock), b"")


# --------------------------------------------------------------------------- websocket frames

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A masked, final client frame."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_read_frame(sock, buf: bytes = b"") -> tuple[int, bytes, bytes]:
    """Reads one (unmasked, server) frame; returns (opcode, payload, leftover)."""

    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed while reading a websocket frame ({buf!r})")
            buf += chunk

    need(2)
    opcode = buf[0] & 0x0F
    masked = buf[1] & 0x80
    n = buf[1] & 0x7F
    pos = 2
    if n == 126:
        need(4)
        n = struct.unpack("!H", buf[2:4])[0]
        pos = 4
    elif n == 127:
        need(10)
        n = struct.unpack("!Q", buf[2:10])[0]
        pos = 10
    mask = b""
    if masked:
        need(pos + 4)
        mask = buf[pos : pos + 4]
        pos += 4
    need(pos + n)
    payload = buf[pos : pos + n]
    if masked:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return opcode, payload, buf[pos + n :]


def tls_wrap(sock, server_hostname: str, cafile, alpn=None) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(cafile))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx.wrap_socket(sock, server_hostname=server_hostname)


def connect_tunnel(proxy_port: int, target: str, timeout: float = 10.0) -> tuple[socket.socket, RawResponse]:
    """Opens a CONNECT tunnel through the proxy; returns the socket and the CONNECT response."""
    sock = connect(proxy_port, timeout)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    resp = read_response(sock, head_only=True)
    return sock, resp


def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------- CLI


def airlock(*args, env=None, timeout: float = 30, input=None) -> subprocess.CompletedProcess:
    """Runs the airlock CLI to completion and returns text output."""
    return subprocess.run(
        [AIRLOCK_BIN, *map(str, args)],
        capture_output=True,
        text=True,
        env=clean_environ() if env is None else env,
        timeout=timeout,
        stdin=subprocess.DEVNULL if input is None else None,
        input=input,
    )


def cli_env(proxy) -> dict:
    """The environment for a CLI command about a running proxy (AIRLOCK_HOME = its data dir)."""
    env = clean_environ()
    env["AIRLOCK_HOME"] = str(proxy.data_dir)
    return env


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of ours is not alive
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------- flows and clients


def url_path(flow: dict) -> str:
    from urllib.parse import urlsplit

    return urlsplit(flow.get("url") or "").path


def requests_session(proxy, verify=None):
    import requests

    s = requests.Session()
    s.trust_env = False
    s.proxies = {"http": proxy.url, "https": proxy.url}
    s.verify = str(verify or proxy.ca_path)
    return s


def httpx_client(proxy, *, http2: bool = False, asynchronous: bool = False, **kw):
    import httpx

    cls = httpx.AsyncClient if asynchronous else httpx.Client
    return cls(proxy=proxy.url, verify=proxy.ssl_ctx(), trust_env=False, http2=http2, timeout=30, **kw)


def assert_serving(proxy):
    """The proxy still answers a normal request."""
    res = curl("http://example.test/hello", proxy=proxy, timeout=10)
    assert res.rc == 0 and res.status == 200 and res.body == b"hello", (
        f"proxy no longer serves a normal request: rc={res.rc} status={res.status} body={res.body[:200]!r} {res.stderr}"
    )
    assert proxy.alive(), "airlock process exited"


def rss_kb(pid: int) -> int:
    """The resident memory of process `pid`, in KiB (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")
