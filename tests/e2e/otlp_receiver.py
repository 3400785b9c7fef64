"""Local receivers for what airlock sends out: an OTLP/HTTP logs collector and an alert webhook.

Both are a real HTTP server (``http.server``, one thread per request; HTTPS with ``tls=``) on 127.0.0.1 with an
ephemeral port that records every request: path, headers, raw body (gunzipped when sent with
``Content-Encoding: gzip``). ``fail_next(n, status, retry_after)`` makes the next n requests get
an error answer (then 200 again), to exercise retries; ``stop()`` closes the port (a receiver
that is down).

``OtlpReceiver`` decodes each body with the official ``opentelemetry-proto`` package
(``ExportLogsServiceRequest``), so the wire format is checked against the real schema, and
flattens every log record into a ``LogRecord`` (resource attributes, attributes, body, event
name, severity) for the tests to assert on.
"""

from __future__ import annotations

import gzip
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from records import wait_for


@dataclass
class Received:
    path: str
    headers: dict  # lower-case names
    raw: bytes  # the body as it came over the wire
    body: bytes  # decompressed
    status: int  # what the receiver answered
    at: float = 0.0  # time.monotonic() when it arrived


@dataclass
class LogRecord:
    resource: dict
    scope: str
    attributes: dict
    body: object
    event_name: str
    severity_number: int
    severity_text: str
    time_unix_nano: int
    observed_time_unix_nano: int
    request: Received = field(repr=False)


def any_value(v):
    """An OTLP AnyValue as a Python value."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    return getattr(v, kind)


def attributes(kvs) -> dict:
    return {kv.key: any_value(kv.value) for kv in kvs}


class RecordingServer:
    """An HTTP server recording every request; answers 200 unless told to fail."""

    path = "/"
    ok_body = b"{}"
    ok_type = "application/json"

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.scheme = "https" if tls is not None else "http"
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._failures: list[tuple[int, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                body = raw
                if (self.headers.get("content-encoding") or "").lower() == "gzip":
                    body = gzip.decompress(raw)
                with owner._lock:
                    failure = owner._failures.pop(0) if owner._failures else None
                status = failure[0] if failure else 200
                owner._record(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, raw, body, status, time.monotonic())
                )
                payload = b"" if failure else owner.ok_body
                self.send_response(status)
                if failure and failure[1] is not None:
                    self.send_header("Retry-After", failure[1])
                self.send_header("Content-Type", owner.ok_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _record(self, r: Received):
        with self._lock:
            self.requests.append(r)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def fail_next(self, n: int, status: int = 503, retry_after: str | None = None):
        with self._lock:
            self._failures.extend([(status, retry_after)] * n)

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.status == 200]

    def all_bytes(self) -> bytes:
        """Every byte received, raw and decompressed, for 'the secret appears nowhere' checks."""
        with self._lock:
            return b"".join(r.raw + r.body + json.dumps(r.headers).encode() for r in self.requests)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class OtlpReceiver(RecordingServer):
    """An OTLP/HTTP collector for the logs signal (POST /v1/logs, protobuf)."""

    ok_body = ExportLogsServiceResponse().SerializeToString()
    ok_type = "application/x-protobuf"

    def log_records(self) -> list[LogRecord]:
        """Every log record of every accepted export request, decoded with the official schema."""
        out = []
        for r in self.accepted():
            req = ExportLogsServiceRequest()
            req.ParseFromString(r.body)  # raises on anything that is not the schema's wire format
            for rl in req.resource_logs:
                resource = attributes(rl.resource.attributes)
                for sl in rl.scope_logs:
                    for lr in sl.log_records:
                        out.append(
                            LogRecord(
                                resource=resource,
                                scope=sl.scope.name,
                                attributes=attributes(lr.attributes),
                                body=any_value(lr.body),
                                event_name=lr.event_name,
                                severity_number=lr.severity_number,
                                severity_text=lr.severity_text,
                                time_unix_nano=lr.time_unix_nano,
                                observed_time_unix_nano=lr.observed_time_unix_nano,
                                request=r,
                            )
                        )
        return out

    def wait_records(self, pred=None, count: int = 1, timeout: float = 10.0) -> list[LogRecord]:
        return wait_for(self.log_records, pred, count=count, timeout=timeout,
                        what="OTLP log records", show=lambda v: f"{len(v)} records")


class WebhookReceiver(RecordingServer):
    """An alert webhook (Slack-style): one JSON object per POST."""

    ok_body = b"ok"
    ok_type = "text/plain"

    def alerts(self) -> list[dict]:
        return [json.loads(r.body) for r in self.accepted()]

    def wait_alerts(self, pred=None, count: int = 1, timeout: float = 10.0) -> list[dict]:
        return wait_for(self.alerts, pred, count=count, timeout=timeout, what="webhook alerts")


def wait_quiet(seconds: float):
    """Lets a background sender run (for 'nothing more arrives' checks)."""
    time.sleep(seconds)
