#!/usr/bin/env python3
"""Writes a seed corpus for each fuzz target into fuzz/corpus/<target>/ (generated, not
committed): the catalogue's positive examples in the encodings the body scanner decodes,
compressed bodies, the README's config blocks, LLM request / response / stream bodies,
WebSocket frames, a TLS ClientHello with an SNI, policy rules and documents.

    fuzz/seeds.py            # every target
    fuzz/seeds.py TARGET...  # those only

Each seed carries the control bytes its target reads first (see fuzz_targets/*.rs).
"""

import base64
import gzip
import hashlib
import json
import re
import ssl
import struct
import sys
import urllib.parse
import zlib
from pathlib import Path

import yaml

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent


def write(target, seeds):
    out = FUZZ / "corpus" / target
    out.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        (out / ("seed-" + hashlib.sha1(s).hexdigest()[:16])).write_bytes(s)
    return len(seeds)


def examples():
    out = []
    for name in ("secrets.yaml", "injections.yaml"):
        for rule in yaml.safe_load((ROOT / "rules" / name).read_text())["rules"]:
            for e in rule.get("examples", {}).get("positive", []):
                out.append(e.encode())
    return out


def encodings(text):
    yield text
    yield json.dumps({"messages": [{"role": "user", "content": text.decode("utf-8", "replace")}]}).encode()
    yield urllib.parse.quote(text, safe="").encode()
    yield urllib.parse.quote(urllib.parse.quote(text, safe=""), safe="").encode()
    yield b"data=" + base64.b64encode(text) + b"&x=1"
    yield b'{"k":"' + text.hex().encode() + b'"}'
    yield b":".join(text.hex()[i:i + 2].encode() for i in range(0, len(text.hex()), 2))
    b64 = base64.b64encode(text)
    yield b"\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))


def scan():
    seeds = []
    for i, e in enumerate(examples()):
        for j, body in enumerate(encodings(e)):
            if (i + j) % 3 == 0:
                seeds.append(bytes([i % 3]) + struct.pack("<I", i * 31 + j) + body)
    return seeds


def scan_body():
    seeds = []
    for i, e in enumerate(examples()[::3]):
        for j, body in enumerate(encodings(e)):
            enc = (i + j) % 5  # none, gzip, deflate, br, zstd (flags % 7)
            if enc == 1:
                body = gzip.compress(body)
            elif enc == 2:
                body = zlib.compress(body)
            elif enc in (3, 4):
                enc = 0
            flags = enc | (0x08 if j % 2 else 0) | (0x10 if i % 2 else 0)
            seeds.append(bytes([flags, 2]) + struct.pack("<I", i) + body)
    return seeds


def decompress():
    seeds = []
    for i, e in enumerate(examples()[::7]):
        seeds.append(bytes([0]) + struct.pack("<I", i) + gzip.compress(e))
        seeds.append(bytes([1]) + struct.pack("<I", i) + zlib.compress(e))
        raw = zlib.compressobj(wbits=-15)
        seeds.append(bytes([1]) + struct.pack("<I", i) + raw.compress(e) + raw.flush())
        seeds.append(bytes([0x80 | (i % 4)]) + struct.pack("<I", i) + e)
    return seeds


def config():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    seeds = [b.encode() for b in blocks]
    seeds.append(b"{}")
    seeds.append(json.dumps({"policy": {"default": "deny", "allow_hosts": ["*.github.com"],
                                        "rules": [{"name": "r", "match": 'request.host == "a"',
                                                   "action": "block"}]}}).encode())
    seeds.append(b"a: &a [1, 2]\nb: [*a, *a, *a]\n")
    return seeds


def llm_bodies():
    req = [
        {"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": True, "system": "be brief",
         "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
         "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]},
        {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True},
         "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"},
                      {"role": "tool", "tool_call_id": "1", "content": "ok"}]},
        {"model": "gpt-4.1", "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
         "instructions": "x", "tools": [{"type": "web_search"}]},
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
         "systemInstruction": {"parts": [{"text": "x"}]}},
    ]
    resp = [
        {"id": "msg_1", "model": "claude-sonnet-4-5-20250929", "content": [{"type": "text", "text": "hello"}],
         "usage": {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 1}},
        {"model": "gpt-4o", "choices": [{"message": {"content": "hello", "tool_calls": [
            {"function": {"name": "f", "arguments": "{}"}}]}}],
         "usage": {"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 1}}},
        {"model": "gpt-4.1", "output": [{"type": "message", "content": [{"type": "output_text", "text": "hi"}]}],
         "usage": {"input_tokens": 3, "output_tokens": 1}},
        {"modelVersion": "gemini-2.5-flash", "candidates": [{"content": {"parts": [{"text": "hi"}]},
                                                             "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1}},
    ]
    streams = [
        b'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":5}}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":2}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
        b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\ndata: [DONE]\n\n',
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"hi","sequence_number":1}\n\n'
        b'event: response.completed\ndata: {"type":"response.completed","response":{"id":"r","usage":{"input_tokens":1,"output_tokens":1}}}\n\n',
        b'data: {"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1}}\r\n\r\n',
    ]
    return req, resp, streams


def llm():
    req, resp, streams = llm_bodies()
    # flags % 8: Messages, CountTokens, ChatCompletions, Completions, Responses, Embeddings,
    # GenerateContent, StreamGenerateContent.
    kinds = [0, 2, 4, 6]
    seeds = []
    for k, body in zip(kinds, req):
        seeds.append(bytes([k]) + json.dumps(body).encode())
    for k, body in zip(kinds, resp):
        seeds.append(bytes([k]) + json.dumps(body).encode())
        seeds.append(bytes([k]) + json.dumps(body).encode()[:40])
    for k, s in zip([0, 2, 4, 7], streams):
        seeds.append(bytes([k]) + s)
    seeds.append(bytes([7]) + json.dumps([resp[3], resp[3]]).encode())
    return seeds


def frame(opcode, payload, mask=None, fin=True, long=False):
    head = bytes([(0x80 if fin else 0) | opcode])
    m = 0x80 if mask else 0
    n = len(payload)
    if n < 126 and not long:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def websocket():
    key = b"\x12\x34\x56\x78"
    return [
        key + struct.pack("<I", 7) + frame(1, b"hello"),
        key + struct.pack("<I", 9) + frame(1, b"part1: ghp_", key) + frame(0, b"x" * 200, key),
        key + struct.pack("<I", 3) + frame(1, b"a" * 300, long=True) + frame(8, b"\x03\xe8bye"),
        key + struct.pack("<I", 5) + frame(2, bytes(range(256)), key, fin=False) + frame(9, b"") + frame(0, b"end"),
        key + struct.pack("<I", 1) + b"[2] chunk " + b"\x81\x7f" + b"\x00" * 8,
    ]


def client_hello(name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def host():
    seeds = []
    for i, name in enumerate(["api.example.com", "Gist.GitHub.com", "xn--bcher-kva.example"]):
        seeds.append(struct.pack("<I", 100 + i * 37) + client_hello(name))
    for text in ["example.com:8443\n*.example.com\nexample.com", "[::1]:443\n*", "10.0.0.0/8\n*.a.b",
                 "127.0.0.1:8888", "API.Example.COM.\n*.example.com."]:
        seeds.append(struct.pack("<I", 3) + text.encode())
    return seeds


def policy():
    seeds = []
    doc = json.loads((ROOT / "bench" / "data" / "policy-50.json").read_text())
    rules = doc["policy"]["rules"]
    seeds.append(b"\x00" + json.dumps({"rules": rules[:5]}).encode())
    for r in rules[:20]:
        seeds.append(b"\x01" + r["match"].encode())
    for expr in ['request.method == "POST" && request.host.endsWith("github.com")',
                 '"x-tool" in request.headers && request.headers["x-tool"] == "curl"',
                 'attrs["tool.name"] in ["http.get", "http.post"] || request.port >= 1000',
                 'request.path.matches("^/v[0-9]+/") && size(request.query) > 2',
                 '!(request.host in ["a.com"]) ? true : false']:
        seeds.append(b"\x03" + expr.encode())
    return seeds


def families():
    """Cards, IBANs, crypto keys, seed phrases, emails and phone numbers, in prose, JSON and
    minified code long enough for the planning's every pass (several 64-byte blocks)."""
    values = [
        b"4111 1111 1111 1111", b"4111-1111-1111-1111", b"5500005555555559", b"378282246310005",
        b"GB82 WEST 1234 5698 7654 32", b"DE89370400440532013000",
        b"5HueCGU8rMjxEXxiPuD5BDku4MkFqeZyd4dJ1jvhTVqvbTLvyTJ",
        b"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", b"bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        b"0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
        b" ".join([b"abandon"] * 11 + [b"about"]),
        b"legal winner thank year wave sausage worth useful legal winner thank yellow",
        b"jane.doe@example.com", b"+1 415 555 2671", b"(415) 555-2671",
    ]
    fillers = [
        b"the function returns a value when called with a list of items ",
        b'{"role":"user","content":"please refactor this module\\n"},',
        b"function a1(b,c){var d=b.map(c);return d&&d.length>42?d.slice(0,42):X9z(d,\"x\")};",
    ]
    seeds = []
    for i, v in enumerate(values):
        for j, f in enumerate(fillers):
            body = f * (1 + i % 3) + v + b" " + f * (2 + j)
            for pick in (0x07, 0x0F, 1 << (i % 3)):
                seeds.append(bytes([pick]) + struct.pack("<I", 17 * i + j) + body)
    return seeds


TARGETS = {
    "scan_stream": scan,
    "scan_body": scan_body,
    "decode": scan,
    "decompress": decompress,
    "config": config,
    "host": host,
    "llm": llm,
    "websocket": websocket,
    "policy": policy,
    "families": families,
}

if __name__ == "__main__":
    for t in sys.argv[1:] or TARGETS:
        print(f"{t}: {write(t, TARGETS[t]())} seeds")
