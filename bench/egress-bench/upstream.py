"""The local upstream for the egress bench: every host name of the corpus resolves here.

One asyncio loop in a daemon thread serves plain HTTP and TLS (a certificate for every host
name the cases use, signed by a throw-away CA that only airlock trusts through `upstream_ca`) on
127.0.0.2. Plain HTTP/1.1, one request per connection (Connection: close).

* An ordinary request gets the response the runner set for the current case (an inbound case's
  `response_body`), or a small JSON "ok" (outbound cases: nothing is echoed back, so a secret
  sent out never comes back as a response to be scanned).
* A WebSocket upgrade is accepted; every frame is read (fragments, binary, RSV bits as sent) and
  recorded, and each complete message is acknowledged with a text frame "ack N" that carries
  none of its content.
* Every request and message is recorded under the case id the client put in `X-Bench-Case`,
  so the runner knows what reached the upstream.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import ssl
import struct
import threading

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HOST_IP = "127.0.0.2"  # not 127.0.0.1: airlock's destination guard stays on for 127.0.0.1 (SSRF cases)


def _listen_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((HOST_IP, 0))
    s.listen(128)
    s.setblocking(False)
    return s


class Upstream:
    def __init__(self, cert_chain_pem: str, key_pem: str):
        self._cert = cert_chain_pem
        self._key = key_pem
        self.loop = asyncio.new_event_loop()
        self.hits: dict[str, list[dict]] = {}
        self.response: dict = {}  # {"body": bytes, "content_type": str} for the current case
        self._lock = threading.Lock()
        self.http_port = 0
        self.https_port = 0

    # -- control (called from the runner's thread)

    def set_response(self, body: bytes | None, content_type: str | None):
        with self._lock:
            self.response = {"body": body, "content_type": content_type} if body is not None else {}

    def hits_for(self, case_id: str) -> list[dict]:
        with self._lock:
            return list(self.hits.get(case_id, []))

    def _record(self, case_id: str, hit: dict):
        with self._lock:
            self.hits.setdefault(case_id or "?", []).append(hit)

    # -- lifecycle

    def start(self) -> "Upstream":
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self._start())
            started.set()
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True, name="egress-upstream").start()
        if not started.wait(10):
            raise RuntimeError("upstream did not start")
        return self

    async def _start(self):
        import tempfile
        import os

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as d:
            cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
            open(cert, "w").write(self._cert)
            open(key, "w").write(self._key)
            ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["http/1.1"])
        plain, tls = _listen_socket(), _listen_socket()
        self.http_port = plain.getsockname()[1]
        self.https_port = tls.getsockname()[1]
        self._servers = [
            await asyncio.start_server(self._serve, sock=plain),
            await asyncio.start_server(self._serve, sock=tls, ssl=ctx),
        ]

    def stop(self):
        def _close():
            for s in self._servers:
                s.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(_close)

    # -- one connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            await asyncio.wait_for(self._one(reader, writer), timeout=30)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def _one(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        case_id = headers.get("x-bench-case", "")
        if headers.get("upgrade", "").lower() == "websocket":
            await self._websocket(reader, writer, headers, case_id, target)
            return
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                body += chunk[:-2]
                if size == 0:
                    break
        self._record(case_id, {"kind": "http", "method": method, "target": target, "host": headers.get("host"),
                               "body_len": len(body), "body_sha256": hashlib.sha256(body).hexdigest()})
        with self._lock:
            resp = dict(self.response)
        if resp:
            out, ctype = resp["body"], resp["content_type"]
        else:
            out, ctype = b'{"ok":true}', "application/json"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype.encode() + b"\r\nContent-Length: "
            + str(len(out)).encode() + b"\r\nConnection: close\r\n\r\n" + out
        )
        await writer.drain()

    async def _websocket(self, reader, writer, headers, case_id, target):
        key = headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        writer.write(
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode()
        )
        await writer.drain()
        self._record(case_id, {"kind": "ws-open", "target": target})
        message = b""
        count = 0
        while True:
            b0, b1 = await reader.readexactly(2)
            fin, rsv, opcode = b0 & 0x80, (b0 >> 4) & 0x7, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await reader.readexactly(8))[0]
            mask = await reader.readexactly(4) if b1 & 0x80 else b""
            data = await reader.readexactly(n)
            if mask:
                data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
            if opcode == 8:
                self._record(case_id, {"kind": "ws-close", "payload": data[:2].hex()})
                writer.write(b"\x88\x02\x03\xe8")
                await writer.drain()
                return
            if opcode in (9, 10):
                continue
            self._record(case_id, {"kind": "ws-frame", "opcode": opcode, "fin": bool(fin), "rsv": rsv,
                                   "len": len(data), "sha256": hashlib.sha256(data).hexdigest()})
            message += data
            if fin:
                count += 1
                self._record(case_id, {"kind": "ws-message", "n": count, "len": len(message),
                                       "sha256": hashlib.sha256(message).hexdigest()})
                message = b""
                ack = f"ack {count}".encode()
                writer.write(bytes([0x81, len(ack)]) + ack)
                await writer.drain()


def make_certs(names: list[str]):
    """A throw-away CA and one leaf for all names. Returns (ca_pem, leaf_chain_pem, leaf_key_pem)."""
    import trustme

    ca = trustme.CA(organization_name="egress-bench upstream CA")
    leaf = ca.issue_cert(*sorted({n.lower() for n in names}))
    chain = "".join(b.bytes().decode() for b in leaf.cert_chain_pems)
    return ca.cert_pem.bytes().decode(), chain, leaf.private_key_pem.bytes().decode()


def dump_hits(up: Upstream) -> str:
    return json.dumps(up.hits, indent=1)
