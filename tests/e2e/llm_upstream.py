"""A fake LLM provider for the airlock end-to-end tests (``test_llm_*.py``).

One aiohttp app speaking the wire formats of the three providers airlock accounts for, served
over plain HTTP and over HTTPS (certificate signed by the suite's upstream CA, valid for
``api.anthropic.com``, ``api.openai.com``, ``generativelanguage.googleapis.com``, ``localhost``
and ``127.0.0.1``), inside the pytest worker (no control endpoint is needed):

* Anthropic  ``POST /v1/messages`` (JSON, or SSE when ``"stream": true``: ``message_start`` with
  ``usage.input_tokens`` / ``cache_creation_input_tokens`` / ``cache_read_input_tokens``,
  ``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta``) per delta,
  ``content_block_stop``, ``message_delta`` with ``usage.output_tokens``, ``message_stop``) and
  ``POST /v1/messages/count_tokens``.
* OpenAI     ``POST /v1/chat/completions`` (JSON, or ``data:`` chunks; with
  ``stream_options.include_usage`` a last chunk with ``choices: []`` and the usage, then
  ``data: [DONE]``), ``POST /v1/responses`` (JSON, or the ``response.*`` SSE events ending in
  ``response.completed`` with the usage), ``POST /v1/embeddings`` (``float`` or ``base64``).
* Google     ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``
  (``?alt=sse``: ``data:`` events, every one with ``usageMetadata`` as Gemini sends it, the
  counts of the last one final; without ``alt=sse`` a JSON array).

What each request gets back is set by the test with ``LLMUpstream.reply(...)``, which returns a
``Reply`` whose ``tag`` (``llmtag-<16 hex>``) the test puts anywhere in the request body (the
prompt, the embedding input) or in an ``x-llm-tag`` header. A request without a known tag gets a
default reply. Token counts in a ``Reply`` are the provider's own fields:

    =================  ======================  ============================  ========================
    Reply field        Anthropic               OpenAI chat / responses / emb Gemini
    =================  ======================  ============================  ========================
    input_tokens       input_tokens            prompt_tokens / input_tokens  promptTokenCount
    output_tokens      output_tokens           completion_tokens / output_t. candidatesTokenCount
    cache_read_tokens  cache_read_input_tokens *_tokens_details.cached_tok.  cachedContentTokenCount
    cache_write_tokens cache_creation_input_t. (none)                        (none)
    =================  ======================  ============================  ========================

Every request is recorded (``Received``: path, query, headers, body, the tag, and what was sent
back) so a test can prove what reached the provider, or that nothing did.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web

from records import wait_for
from upstream import AppServer

TAG_RE = re.compile(rb"llmtag-[0-9a-f]{16}")
DEFAULT_TEXT = "Hello from the fake provider."


def _nodelay(request: web.Request):
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def _split3(text: str) -> list[str]:
    """Splits a text into up to three deltas at spaces (for a default stream)."""
    words = text.split(" ")
    if len(words) < 3:
        return [text]
    n = len(words)
    cuts = [0, n // 3, 2 * n // 3, n]
    parts = [" ".join(words[cuts[i] : cuts[i + 1]]) for i in range(3)]
    return [parts[0] + " ", parts[1] + " ", parts[2]]


# --------------------------------------------------------------------------- test-side objects


@dataclass
class Reply:
    """What the fake provider answers to the requests carrying ``tag``.

    ``deltas`` is how a stream splits the text (one text delta event per item); ``text``
    defaults to their concatenation and vice versa. ``model`` is the model the response
    reports (default: the requested one). ``hold``: after the first text delta the stream
    waits until the test calls ``release()`` (or ``hold_timeout`` passes, which sets
    ``hold_timed_out``). ``pause_after_first``: a timed pause after the first delta instead.
    ``status`` != 200 answers the provider's error document with that status.
    ``cumulative_delta_usage``: Anthropic's ``message_delta`` repeats input and cache counts
    (cumulative, as the current API does) instead of carrying only ``output_tokens``.
    """

    text: str | None = None
    deltas: list[str] | None = None
    model: str | None = None
    input_tokens: int = 12
    output_tokens: int = 7
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    status: int = 200
    error_message: str = "fake provider error"
    hold: bool = False
    hold_timeout: float = 5.0
    pause_after_first: float = 0.0
    cumulative_delta_usage: bool = False
    embedding_dims: int = 8
    tag: str = field(default_factory=lambda: "llmtag-" + secrets.token_hex(8))
    # state (set by the server)
    first_sent: threading.Event = field(default_factory=threading.Event, repr=False)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)
    hold_timed_out: bool = False
    _gate: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self):
        if self.text is None and self.deltas is None:
            self.text = DEFAULT_TEXT
        if self.deltas is None:
            self.deltas = _split3(self.text)
        if self.text is None:
            self.text = "".join(self.deltas)

    def release(self):
        self._gate.set()

    @property
    def released(self) -> bool:
        return self._gate.is_set()

    def prompt(self, text: str = "Say hello.") -> str:
        """A user message carrying the tag."""
        return f"{text} [{self.tag}]"


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict  # lower-case names
    body: bytes
    tls: bool
    tag: str | None
    started: float = field(default_factory=time.monotonic)
    status: int | None = None  # what the fake answered
    response: bytearray = field(default_factory=bytearray)  # every byte of the body sent back
    done: bool = False

    @property
    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


# --------------------------------------------------------------------------- the server


class LLMUpstream(AppServer):
    thread_name = "llm-upstream"
    nodelay = True  # inherited by accepted sockets on Linux; set again per request (_nodelay)

    def __init__(self, leaf):
        super().__init__(leaf)
        self._lock = threading.Lock()
        self._replies: dict[str, Reply] = {}
        self._received: list[Received] = []

    # ----------------------------------------------------------------- test-side API
    def reply(self, **kw) -> Reply:
        """Registers what requests carrying the returned Reply's tag get (see Reply)."""
        r = Reply(**kw)
        with self._lock:
            self._replies[r.tag] = r
        return r

    def received(self, tag: str | None = None) -> list[Received]:
        """Requests received (for tag, or all), oldest first."""
        with self._lock:
            return [r for r in self._received if tag is None or r.tag == tag]

    def wait_received(self, tag: str, count: int = 1, timeout: float = 5.0, done: bool = True) -> list[Received]:
        """Waits until count requests with tag arrived (and, with done, were answered in full)."""
        return wait_for(
            lambda: self.received(tag), lambda got: len(got) >= count and (not done or all(r.done for r in got)),
            None, timeout, interval=0.02, what=f"{count} request(s) for {tag} at the fake provider",
            show=lambda got: f"{len(got)} received, done: {[r.done for r in got]}",
        )

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    # ----------------------------------------------------------------- helpers
    async def _record(self, request: web.Request) -> Received:
        _nodelay(request)
        body = await request.read()
        tag = request.headers.get("x-llm-tag")
        if not tag:
            m = TAG_RE.search(body)
            tag = m.group(0).decode() if m else None
        rec = Received(
            method=request.method,
            path=request.path,
            query=request.query_string,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            tls=request.secure,
            tag=tag,
        )
        with self._lock:
            self._received.append(rec)
        return rec

    def _reply_for(self, rec: Received) -> Reply:
        with self._lock:
            r = self._replies.get(rec.tag or "")
        return r if r is not None else Reply(tag=rec.tag or "none")

    @staticmethod
    def _json(rec: Received, status: int, doc) -> web.Response:
        data = json.dumps(doc).encode()
        rec.status = status
        rec.response += data
        rec.done = True
        return web.Response(status=status, body=data, content_type="application/json")

    @staticmethod
    async def _sse_start(request: web.Request, rec: Received) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            },
        )
        await resp.prepare(request)
        rec.status = 200
        return resp

    @staticmethod
    async def _send(resp: web.StreamResponse, rec: Received, data: bytes):
        rec.response += data
        await resp.write(data)

    @staticmethod
    async def _after_first(reply: Reply):
        reply.first_sent.set()
        if reply.pause_after_first:
            await asyncio.sleep(reply.pause_after_first)
        if reply.hold:
            deadline = time.monotonic() + reply.hold_timeout
            while not reply.released:
                if time.monotonic() >= deadline:
                    reply.hold_timed_out = True
                    break
                await asyncio.sleep(0.005)

    @staticmethod
    async def _finish(resp: web.StreamResponse, rec: Received, reply: Reply):
        await resp.write_eof()
        rec.done = True
        reply.finished.set()

    # ----------------------------------------------------------------- Anthropic
    @staticmethod
    def _anthropic_error(reply: Reply) -> dict:
        kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}.get(reply.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": reply.error_message}}

    async def anthropic_messages(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        reply = self._reply_for(rec)
        req = rec.json or {}
        if reply.status != 200:
            reply.finished.set()
            return self._json(rec, reply.status, self._anthropic_error(reply))
        model = reply.model or req.get("model") or "claude-unknown"
        msg_id = "msg_" + secrets.token_hex(12)
        usage = {
            "input_tokens": reply.input_tokens,
            "cache_creation_input_tokens": reply.cache_write_tokens,
            "cache_read_input_tokens": reply.cache_read_tokens,
            "output_tokens": reply.output_tokens,
            "service_tier": "standard",
        }
        if not req.get("stream"):
            reply.finished.set()
            return self._json(
                rec,
                200,
                {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": reply.text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": usage,
                },
            )

        def ev(name: str, doc: dict) -> bytes:
            return f"event: {name}\ndata: {json.dumps(doc)}\n\n".encode()

        resp = await self._sse_start(request, rec)
        start_usage = dict(usage, output_tokens=1)
        await self._send(
            resp,
            rec,
            ev(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": msg_id,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                },
            )
            + ev(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
            + ev("ping", {"type": "ping"}),
        )
        for i, delta in enumerate(reply.deltas):
            await self._send(
                resp,
                rec,
                ev(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": delta}},
                ),
            )
            if i == 0:
                await self._after_first(reply)
        if reply.cumulative_delta_usage:
            delta_usage = {
                "input_tokens": reply.input_tokens,
                "cache_creation_input_tokens": reply.cache_write_tokens,
                "cache_read_input_tokens": reply.cache_read_tokens,
                "output_tokens": reply.output_tokens,
            }
        else:
            delta_usage = {"output_tokens": reply.output_tokens}
        await self._send(
            resp,
            rec,
            ev("content_block_stop", {"type": "content_block_stop", "index": 0})
            + ev(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": delta_usage,
                },
            )
            + ev("message_stop", {"type": "message_stop"}),
        )
        await self._finish(resp, rec, reply)
        return resp

    async def anthropic_count_tokens(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        reply = self._reply_for(rec)
        reply.finished.set()
        if reply.status != 200:
            return self._json(rec, reply.status, self._anthropic_error(reply))
        return self._json(rec, 200, {"input_tokens": reply.input_tokens})

    # ----------------------------------------------------------------- OpenAI
    @staticmethod
    def _openai_error(reply: Reply) -> dict:
        kind = {400: "invalid_request_error", 401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(
            reply.status, "server_error"
        )
        return {"error": {"message": reply.error_message, "type": kind, "param": None, "code": kind}}

    @staticmethod
    def _chat_usage(reply: Reply) -> dict:
        return {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cache_read_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    async def openai_chat(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        reply = self._reply_for(rec)
        req = rec.json or {}
        if reply.status != 200:
            reply.finished.set()
            return self._json(rec, reply.status, self._openai_error(reply))
        model = reply.model or req.get("model") or "gpt-unknown"
        cid = "chatcmpl-" + secrets.token_hex(12)
        created = int(time.time())
        if not req.get("stream"):
            reply.finished.set()
            return self._json(
                rec,
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": self._chat_usage(reply),
                    "service_tier": "default",
                    "system_fingerprint": "fp_fake",
                },
            )
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict | None, finish=None, usage=None, choices=True) -> bytes:
            doc = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
            }
            if include_usage:
                doc["usage"] = usage
            return f"data: {json.dumps(doc)}\n\n".encode()

        resp = await self._sse_start(request, rec)
        await self._send(resp, rec, chunk({"role": "assistant", "content": "", "refusal": None}))
        for i, delta in enumerate(reply.deltas):
            await self._send(resp, rec, chunk({"content": delta}))
            if i == 0:
                await self._after_first(reply)
        tail = chunk({}, finish="stop")
        if include_usage:
            tail += chunk(None, usage=self._chat_usage(reply), choices=False)
        tail += b"data: [DONE]\n\n"
        await self._send(resp, rec, tail)
        await self._finish(resp, rec, reply)
        return resp

    @staticmethod
    def _responses_usage(reply: Reply) -> dict:
        return {
            "input_tokens": reply.input_tokens,
            "input_tokens_details": {"cached_tokens": reply.cache_read_tokens},
            "output_tokens": reply.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }

    async def openai_responses(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        reply = self._reply_for(rec)
        req = rec.json or {}
        if reply.status != 200:
            reply.finished.set()
            return self._json(rec, reply.status, self._openai_error(reply))
        model = reply.model or req.get("model") or "gpt-unknown"
        rid = "resp_" + secrets.token_hex(12)
        mid = "msg_" + secrets.token_hex(12)
        created = int(time.time())

        def response(status: str, text: str | None, usage) -> dict:
            output = []
            if text is not None:
                output = [
                    {
                        "id": mid,
                        "type": "message",
                        "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
                    }
                ]
            return {
                "id": rid,
                "object": "response",
                "created_at": created,
                "status": status,
                "error": None,
                "incomplete_details": None,
                "instructions": None,
                "max_output_tokens": None,
                "model": model,
                "output": output,
                "parallel_tool_calls": True,
                "previous_response_id": None,
                "reasoning": {"effort": None, "summary": None},
                "store": True,
                "temperature": 1.0,
                "text": {"format": {"type": "text"}},
                "tool_choice": "auto",
                "tools": [],
                "top_p": 1.0,
                "truncation": "disabled",
                "usage": usage,
                "user": None,
                "metadata": {},
            }

        if not req.get("stream"):
            reply.finished.set()
            return self._json(rec, 200, response("completed", reply.text, self._responses_usage(reply)))

        seq = 0

        def ev(doc: dict) -> bytes:
            nonlocal seq
            doc["sequence_number"] = seq
            seq += 1
            return f"event: {doc['type']}\ndata: {json.dumps(doc)}\n\n".encode()

        item = {"id": mid, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        resp = await self._sse_start(request, rec)
        await self._send(
            resp,
            rec,
            ev({"type": "response.created", "response": response("in_progress", None, None)})
            + ev({"type": "response.in_progress", "response": response("in_progress", None, None)})
            + ev({"type": "response.output_item.added", "output_index": 0, "item": item})
            + ev(
                {
                    "type": "response.content_part.added",
                    "item_id": mid,
                    "output_index": 0,
                    "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                }
            ),
        )
        for i, delta in enumerate(reply.deltas):
            await self._send(
                resp,
                rec,
                ev(
                    {
                        "type": "response.output_text.delta",
                        "item_id": mid,
                        "output_index": 0,
                        "content_index": 0,
                        "delta": delta,
                        "logprobs": [],
                    }
                ),
            )
            if i == 0:
                await self._after_first(reply)
        part = {"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}
        done_item = dict(item, status="completed", content=[part])
        await self._send(
            resp,
            rec,
            ev(
                {
                    "type": "response.output_text.done",
                    "item_id": mid,
                    "output_index": 0,
                    "content_index": 0,
                    "text": reply.text,
                    "logprobs": [],
                }
            )
            + ev({"type": "response.content_part.done", "item_id": mid, "output_index": 0, "content_index": 0, "part": part})
            + ev({"type": "response.output_item.done", "output_index": 0, "item": done_item})
            + ev(
                {
                    "type": "response.completed",
                    "response": response("completed", reply.text, self._responses_usage(reply)),
                }
            ),
        )
        await self._finish(resp, rec, reply)
        return resp

    async def openai_embeddings(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        reply = self._reply_for(rec)
        req = rec.json or {}
        reply.finished.set()
        if reply.status != 200:
            return self._json(rec, reply.status, self._openai_error(reply))
        inputs = req.get("input")
        if not isinstance(inputs, list) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        data = []
        for i, _ in enumerate(inputs):
            vec = [round(0.01 * (i + 1) * (k + 1), 4) for k in range(reply.embedding_dims)]
            if req.get("encoding_format") == "base64":
                emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            else:
                emb = vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        return self._json(
            rec,
            200,
            {
                "object": "list",
                "data": data,
                "model": reply.model or req.get("model") or "text-embedding-unknown",
                "usage": {"prompt_tokens": reply.input_tokens, "total_tokens": reply.input_tokens},
            },
        )

    async def openai_models(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        return self._json(
            rec,
            200,
            {"object": "list", "data": [{"id": "gpt-4o", "object": "model", "created": 0, "owned_by": "fake"}]},
        )

    # ----------------------------------------------------------------- Google
    @staticmethod
    def _gemini_usage(reply: Reply, output_tokens: int) -> dict:
        u = {
            "promptTokenCount": reply.input_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": reply.input_tokens + output_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.input_tokens}],
        }
        if reply.cache_read_tokens:
            u["cachedContentTokenCount"] = reply.cache_read_tokens
        return u

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        reply = self._reply_for(rec)
        spec = request.match_info["spec"]
        requested, _, method = spec.partition(":")
        if reply.status != 200:
            reply.finished.set()
            status_name = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED"}.get(
                reply.status, "INTERNAL"
            )
            return self._json(
                rec, reply.status, {"error": {"code": reply.status, "message": reply.error_message, "status": status_name}}
            )
        model = reply.model or requested
        rid = secrets.token_urlsafe(12)

        def doc(text: str, final: bool, output_tokens: int) -> dict:
            cand = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
            if final:
                cand["finishReason"] = "STOP"
            return {
                "candidates": [cand],
                "usageMetadata": self._gemini_usage(reply, output_tokens),
                "modelVersion": model,
                "responseId": rid,
            }

        if method == "generateContent":
            reply.finished.set()
            return self._json(rec, 200, doc(reply.text, True, reply.output_tokens))
        if method != "streamGenerateContent":
            return self._json(rec, 404, {"error": {"code": 404, "message": f"no method {method}", "status": "NOT_FOUND"}})

        n = len(reply.deltas)
        # the running candidate count, final (== output_tokens) on the last event
        counts = [max(1, reply.output_tokens * (i + 1) // n) for i in range(n)]
        counts[-1] = reply.output_tokens
        if request.query.get("alt") == "sse":
            resp = await self._sse_start(request, rec)
            for i, delta in enumerate(reply.deltas):
                data = json.dumps(doc(delta, i == n - 1, counts[i]))
                await self._send(resp, rec, f"data: {data}\r\n\r\n".encode())
                if i == 0:
                    await self._after_first(reply)
            await self._finish(resp, rec, reply)
            return resp
        # without alt=sse: one JSON array, streamed element by element
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json; charset=UTF-8"})
        await resp.prepare(request)
        rec.status = 200
        for i, delta in enumerate(reply.deltas):
            prefix = "[" if i == 0 else ",\r\n"
            await self._send(resp, rec, (prefix + json.dumps(doc(delta, i == n - 1, counts[i]))).encode())
            if i == 0:
                await self._after_first(reply)
        await self._send(resp, rec, b"]")
        await self._finish(resp, rec, reply)
        return resp

    # ----------------------------------------------------------------- anything else
    async def other(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        return self._json(rec, 404, {"error": {"message": f"fake provider: no route for {request.path}"}})

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self.anthropic_messages)
        app.router.add_post("/v1/messages/count_tokens", self.anthropic_count_tokens)
        app.router.add_post("/v1/chat/completions", self.openai_chat)
        app.router.add_post("/v1/responses", self.openai_responses)
        app.router.add_post("/v1/embeddings", self.openai_embeddings)
        app.router.add_get("/v1/models", self.openai_models)
        app.router.add_post("/v1beta/models/{spec}", self.gemini)
        app.router.add_route("*", "/{tail:.*}", self.other)
        return app
