"""A misbehaving upstream for the fault tests (``test_faults.py``): raw sockets, one thread per
connection, over plain TCP and over TLS (certificate for ``fault.test`` signed by the suite's
upstream CA). What a connection gets depends on the request path:

* ``/reset-mid``      - a 200 head announcing ``len`` bytes (default 1,000,000), 64 KiB of them,
                        then a TCP reset (SO_LINGER 0).
* ``/reset-chunked``  - a chunked 200, two chunks, then a TCP reset.
* ``/reset-head``     - the request is read, then a TCP reset before any byte of answer.
* ``/hang``           - the request is read and never answered (the connection is held open
                        until the server stops).
* ``/hang-noread``    - the request head is read, its body is not, and nothing is answered.
* ``/hang-body``      - a 200 head announcing ``len`` bytes (default 1,000,000), 1,000 of them, then
                        nothing.
* ``/big/<n>``        - ``n`` bytes (Content-Length) written as fast as the peer takes them; the
                        server counts what it managed to write (``sent(tag)``) so a test can see
                        whether the proxy kept reading while its client did not.
* ``/gzip-bomb/<n>``  - ``n`` zero bytes gzip-compressed (``Content-Encoding: gzip``), made
                        once per size and cached (a 512 MiB bomb is about 500 KiB).

A ``tag=`` query parameter names the exchange for ``sent()`` and ``requests()``.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
import zlib
from urllib.parse import parse_qs, urlsplit

from upstream import server_ctx

ZEROS = bytes(1 << 20)


def _reset(sock: socket.socket):
    """Closes with a RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    raw = sock
    if isinstance(sock, ssl.SSLSocket):
        # no close_notify: the TCP connection just dies
        raw = socket.socket(fileno=sock.detach())
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()


class FaultUpstream:
    def __init__(self, leaf):
        self.leaf = leaf
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent: dict[str, int] = {}
        self._requests: dict[str, list[dict]] = {}
        self._held: list[socket.socket] = []
        self._closed: set[str] = set()
        self._bombs: dict[int, bytes] = {}
        self._listeners: list[socket.socket] = []
        self.http_port = self.https_port = 0

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> "FaultUpstream":
        ctx = server_ctx(self.leaf)
        for tls in (False, True):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(256)
            self._listeners.append(s)
            if tls:
                self.https_port = s.getsockname()[1]
            else:
                self.http_port = s.getsockname()[1]
            threading.Thread(target=self._accept, args=(s, ctx if tls else None), daemon=True).start()
        return self

    def stop(self):
        self._stop.set()
        for s in self._listeners:
            try:
                s.close()
            except OSError:
                pass
        with self._lock:
            held, self._held = self._held, []
        for s in held:
            try:
                s.close()
            except OSError:
                pass

    # ----------------------------------------------------------------- test-side API
    def sent(self, tag: str) -> int:
        with self._lock:
            return self._sent.get(tag, 0)

    def requests(self, tag: str) -> list[dict]:
        with self._lock:
            return list(self._requests.get(tag, []))

    def bomb(self, n: int) -> bytes:
        with self._lock:
            data = self._bombs.get(n)
        if data is None:
            c = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip wrapper
            parts = []
            left = n
            while left:
                k = min(left, len(ZEROS))
                parts.append(c.compress(ZEROS[:k]))
                left -= k
            parts.append(c.flush())
            data = b"".join(parts)
            with self._lock:
                self._bombs[n] = data
        return data

    def closed(self, tag: str) -> bool:
        """Whether the proxy closed the held upstream connection of ``tag``."""
        with self._lock:
            return tag in self._closed

    def _hold(self, conn, tag: str, drain: bool):
        """Keeps conn open, answering nothing; with drain, notes when the proxy closes it."""
        with self._lock:
            self._held.append(conn)
        if not drain:
            return
        conn.settimeout(None)
        try:
            while conn.recv(65536):
                pass
        except (OSError, ssl.SSLError):
            pass
        with self._lock:
            self._closed.add(tag)

    # ----------------------------------------------------------------- serving
    def _accept(self, listener: socket.socket, ctx):
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, ctx), daemon=True).start()

    def _serve(self, conn: socket.socket, ctx):
        try:
            conn.settimeout(30)
            if ctx is not None:
                conn = ctx.wrap_socket(conn, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    conn.close()
                    return
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            url = urlsplit(target)
            query = parse_qs(url.query)
            tag = (query.get("tag") or [""])[0]
            # /hang-noread takes the head only: the body stays in the socket buffers
            n = 0 if url.path == "/hang-noread" else int(headers.get("content-length") or 0)
            body = rest
            while len(body) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            with self._lock:
                self._requests.setdefault(tag, []).append(
                    {"method": method, "path": url.path, "headers": headers, "body_len": len(body)}
                )
            self._answer(conn, url.path, tag, int((query.get("len") or ["1000000"])[0]))
        except (OSError, ssl.SSLError, ValueError):
            try:
                conn.close()
            except OSError:
                pass

    def _answer(self, conn, path: str, tag: str, length: int):
        if path == "/reset-mid":
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n".encode())
            conn.sendall(b"r" * 65536)
            time.sleep(0.2)
            _reset(conn)
        elif path == "/reset-chunked":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
            conn.sendall(b"6\r\nchunk1\r\n6\r\nchunk2\r\n")
            time.sleep(0.2)
            _reset(conn)
        elif path == "/reset-head":
            _reset(conn)
        elif path in ("/hang", "/hang-noread"):
            self._hold(conn, tag, drain=path == "/hang")
        elif path == "/hang-body":
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n".encode())
            conn.sendall(b"h" * 1000)
            self._hold(conn, tag, drain=True)
        elif path.startswith("/big/"):
            n = int(path.rsplit("/", 1)[1])
            conn.sendall(
                f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\n\r\n".encode()
            )
            left = n
            conn.settimeout(120)
            try:
                while left and not self._stop.is_set():
                    k = min(left, len(ZEROS))
                    conn.sendall(ZEROS[:k])
                    left -= k
                    with self._lock:
                        self._sent[tag] = self._sent.get(tag, 0) + k
            finally:
                conn.close()
        elif path.startswith("/gzip-bomb/"):
            data = self.bomb(int(path.rsplit("/", 1)[1]))
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
                + f"Content-Length: {len(data)}\r\n\r\n".encode()
            )
            conn.settimeout(120)
            view = memoryview(data)
            try:
                for i in range(0, len(data), 65536):
                    conn.sendall(view[i : i + 65536])
                    with self._lock:
                        self._sent[tag] = self._sent.get(tag, 0) + len(view[i : i + 65536])
            finally:
                conn.close()
        elif path == "/sink":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
            conn.close()
        else:
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            conn.close()
