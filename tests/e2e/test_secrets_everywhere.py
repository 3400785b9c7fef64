"""Secrets everywhere (hardening): one scripted session full of credentials at `--log 2` (and
`--console`), then every file airlock wrote under its data directory (logs/*.jsonl and rotated
files, airlock.db read as raw SQLite pages and through SQLite, its WAL, the state file,
anything else), everything it printed (stderr, stdout), and what its CLI and admin API show,
are searched for each credential in every form a record could carry it in: as is,
percent-encoded, JSON-escaped, base64 / base64url at any alignment, hex, and any 12-character
run of its secret material. The rule: airlock never writes a credential it knows about —
detected by the catalogue or injected by a route — to any log.

The session puts credentials in request bodies (JSON and form), headers (Authorization and a
custom x- header), URLs (query and path), a route's injected header (echoed back by the
upstream), WebSocket messages, an SSE stream, LLM prompts and answers (through the `kind: llm`
gateway, streamed and not, and intercepted to api.anthropic.com; the conversations store keeps
transcripts) and ordinary responses. It runs twice: with the default actions (outbound block,
inbound and LLM prompts redact) and with every action `warn`, where each credential goes
through and each log sees the whole exchange.

A control value no rule knows goes in a request body: it is expected in the level-2 body
preview, which proves the search finds what is there."""

from __future__ import annotations

import base64
import json
import os
import secrets
import sqlite3
import string
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import httpx
import pytest
import websocket

from detect_fixtures import *  # noqa: F401,F403
from detect_fixtures import fresh_key
from e2e_helpers import airlock, cli_env
from llm_fixtures import *  # noqa: F401,F403
from llm_fixtures import anthropic_client, fake_api_key, gateway_entry, gateway_url, provider_key, provider_resolve
from records import wait_for, wait_llm

ROUTE_ENV = "AIRLOCK_E2E_SECRETS_ROUTE_KEY"
WIDTH = 12

MODES = {
    "default": {},
    "warn": {"detect": {"outbound_secrets": "warn", "inbound_secrets": "warn", "llm_prompt_secrets": "warn"}},
}


# --------------------------------------------------------------------------- forms of a secret


def _b64_interiors(raw: bytes) -> dict[str, str]:
    """base64 and base64url of raw at each of the three byte alignments it can sit at inside a
    longer blob, without the edge characters that depend on the neighbouring bytes."""
    out = {}
    for shift in range(3):
        for name, enc in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            e = enc(b"\0" * shift + raw).decode().rstrip("=")
            e = e[4 if shift else 0 : -4]
            if len(e) >= 16:
                out[f"{name}@{shift}"] = e
    return out


def forms(secret: str) -> dict[str, str]:
    """{form name: text} of the ways a record could hold secret."""
    out = {"as is": secret}
    for name, f in (
        ("percent-encoded", lambda s: quote(s, safe="")),
        ("percent-encoded (path)", lambda s: quote(s, safe="/")),
        ("form-encoded", quote_plus),
        ("JSON-escaped", lambda s: json.dumps(s)[1:-1]),
        ("JSON-escaped (ASCII)", lambda s: json.dumps(s, ensure_ascii=True)[1:-1]),
        ("JSON-escaped, slashes escaped", lambda s: json.dumps(s)[1:-1].replace("/", "\\/")),
        ("JSON-escaped twice", lambda s: json.dumps(json.dumps(s)[1:-1])[1:-1]),
        ("hex", lambda s: s.encode().hex()),
        ("HEX", lambda s: s.encode().hex().upper()),
    ):
        out[name] = f(secret)
    out.update(_b64_interiors(secret.encode()))
    # a PEM key's base64 lines, each on its own (a record may cut the armour off)
    if "PRIVATE KEY-----" in secret:
        for i, line in enumerate(ln for ln in secret.splitlines() if ln and not ln.startswith("-----")):
            if len(line) >= 40:
                out[f"PEM line {i}"] = line
    return out


def core_of(secret: str, prefix: str = "") -> str:
    """The secret material: without a public vendor prefix; a PEM key's base64 body joined."""
    if "PRIVATE KEY-----" in secret:
        lines = [ln for ln in secret.splitlines() if ln and not ln.startswith("-----") and ":" not in ln]
        return "".join(lines)[32:]  # past the ASN.1 preamble every key of a kind shares
    return secret[len(prefix):] if prefix and secret.startswith(prefix) else secret


def views(text: str) -> dict[str, str]:
    """The text as is and decoded the ways a reader would decode it."""
    out = {"": text}
    out[" (percent-decoded)"] = unquote(text)
    out[" (form-decoded)"] = unquote_plus(text)
    out[" (JSON-unescaped)"] = text.replace("\\n", "\n").replace("\\/", "/").replace('\\"', '"')
    return out


def find(secret: str, core: str, sources: dict[str, str]) -> list[str]:
    """Where secret (any of its forms) or a WIDTH-character run of core is, as 'form in source'."""
    hits = []
    fs = forms(secret)
    windows = [core] if len(core) <= WIDTH else [core[i : i + WIDTH] for i in range(len(core) - WIDTH + 1)]
    for label, text in sources.items():
        for form, value in fs.items():
            if value in text:
                hits.append(f"{form} in {label}")
        for suffix, t in views(text).items():
            w = next((w for w in windows if w in t), None)
            if w is not None:
                hits.append(f"{WIDTH} characters of it ({w!r}) in {label}{suffix}")
                break
    return hits


# --------------------------------------------------------------------------- what airlock wrote and printed


def sqlite_text(path: Path) -> str:
    """Every value of every table, through SQLite (a value longer than a page is split across
    overflow pages in the file, where a byte search can miss it)."""
    out = []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for t in tables:
            for row in con.execute(f'SELECT * FROM "{t}"'):
                out.append(" | ".join(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row))
    finally:
        con.close()
    return "\n".join(out)


def written_sources(proxy) -> dict[str, str]:
    """Every file under the data directory (bytes read as latin-1), the store through SQLite."""
    sources = {}
    for dirpath, _, files in os.walk(proxy.data_dir):
        for name in files:
            path = Path(dirpath) / name
            try:
                sources[str(path.relative_to(proxy.data_dir))] = path.read_bytes().decode("latin-1")
            except OSError:
                continue
    db = proxy.data_dir / "airlock.db"
    if db.exists():
        sources["airlock.db (through SQLite)"] = sqlite_text(db)
    return sources


def _api(proxy, path: str) -> str:
    with urllib.request.urlopen(f"http://{proxy.boot['admin']}{path}", timeout=10) as r:
        return r.read().decode("utf-8", errors="replace")


def api_sources(proxy) -> dict[str, str]:
    out = {}
    for path in ("/api/flows?limit=1000", "/api/threats?limit=1000", "/api/sessions", "/api/status", "/api/usage"):
        out[f"admin API {path}"] = _api(proxy, path)
    for s in json.loads(out["admin API /api/sessions"]):
        path = f"/api/sessions/{s['session']}"
        out[f"admin API {path}"] = _api(proxy, path)
    return out


def cli_sources(proxy) -> dict[str, str]:
    out = {}
    for args in (
        ("logs", "--limit", "1000"),
        ("logs", "--json", "--limit", "1000"),
        ("logs", "--llm"),
        ("logs", "--llm", "--json"),
        ("threats", "--limit", "1000"),
        ("threats", "--json", "--limit", "1000"),
        ("status", "--json"),
        ("usage", "--json"),
    ):
        r = airlock(*args, env=cli_env(proxy))
        out[f"airlock {' '.join(args)}"] = r.stdout + r.stderr
    return out


# --------------------------------------------------------------------------- the session


class Secrets:
    """The credentials of the session: label -> (secret, core, rule or None)."""

    def __init__(self):
        self.known: dict[str, tuple[str, str, str | None]] = {}

    def key(self, label: str, role: str):
        k = fresh_key(role)
        self.known[label] = (k.secret, core_of(k.secret, k.keyword), k.rule)
        return k

    def other(self, label: str, value: str, core: str | None = None):
        self.known[label] = (value, core or value, None)
        return value


def _rand(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters) for _ in range(n))


def _ws(proxy, url: str):
    return websocket.create_connection(
        url,
        http_proxy_host="127.0.0.1",
        http_proxy_port=proxy.port,
        proxy_type="http",
        sslopt={"ca_certs": str(proxy.ca_path)},
        timeout=15,
    )


def _ws_exchange(proxy, url: str, message: str) -> str | None:
    """Sends message; returns the echo, or None when airlock closed the connection."""
    ws = _ws(proxy, url)
    try:
        ws.send(message)
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except (websocket.WebSocketException, OSError):
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return None
        return data.decode("utf-8", errors="replace")
    finally:
        try:
            ws.close()
        except (websocket.WebSocketException, OSError):
            pass


def run_session(p, detect_up, llm_up, known: Secrets, control: str):
    """Every way a credential can pass through airlock. Returns nothing: what matters is
    what airlock wrote."""
    tag = detect_up.new_tag()
    with httpx.Client(proxy=p.url, verify=p.ssl_ctx(), trust_env=False, timeout=20) as h:
        # the control, alone in a request body (it must show in the level-2 preview)
        r = h.post("http://example.test/echo?probe=control", json={"note": control})
        assert r.status_code == 200, r.text[:300]

        # request bodies: JSON and form
        gh = known.key("github token in a JSON body", "github")
        h.post(f"https://other.test/t/{tag}/json", json={"message": "deploy with this", "token": gh.text})
        aws = known.key("AWS secret in a form body", "aws_secret")
        h.post(f"http://other.test/t/{tag}/form", data={"aws_secret_access_key": aws.secret, "user": "bob"})
        pem = known.key("PEM key in a JSON body", "pem")
        h.post(f"https://other.test/t/{tag}/pem", json={"files": {"id_rsa": pem.text}})

        # headers: Authorization and a custom x- header
        an = known.key("Anthropic key in Authorization", "anthropic")
        h.get(f"https://other.test/t/{tag}/auth", headers={"Authorization": f"Bearer {an.secret}"})
        gh2 = known.key("github token in X-Deploy-Token", "github")
        h.get(f"http://other.test/t/{tag}/xh", headers={"X-Deploy-Token": gh2.secret})

        # URLs: query and path
        gh3 = known.key("github token in a query", "github")
        h.get(f"https://other.test/t/{tag}/q?access_token={gh3.secret}&page=2")
        an2 = known.key("Anthropic key in a path", "anthropic")
        h.get(f"http://other.test/t/{tag}/p/{an2.secret}/end")

        # the route's injected credential, echoed back by the upstream (in the response's JSON)
        for scheme in ("http", "https"):
            r = h.get(f"{scheme}://example.test/echo?probe=route-{scheme}",
                      headers={"X-Api-Key": "placeholder", "Authorization": "Bearer placeholder"})
            assert r.status_code == 200, r.text[:300]

        # responses carrying credentials (inbound): a JSON document and an SSE stream
        pem2 = known.key("PEM key in a response", "pem")
        aws2 = known.key("AWS secret in a response", "aws_secret")
        doc = detect_up.canned(json.dumps({"private_key": pem2.secret, "note": aws2.text}))
        for scheme in ("http", "https"):
            h.get(f"{scheme}://other.test{doc}")
        an3 = known.key("Anthropic key in an SSE event", "anthropic")
        gh4 = known.key("github token in an SSE event", "github")
        sse = detect_up.canned(
            ["data: {\"step\": 1}\n\n", f"data: {{\"key\": \"{an3.secret}\"}}\n\n",
             f"event: token\ndata: {gh4.secret}\n\n", "data: [DONE]\n\n"],
            chunked=True, delay=0.05, content_type="text/event-stream",
        )
        with h.stream("GET", f"https://other.test{sse}") as r:
            for _ in r.iter_raw():
                pass

    # WebSocket messages (wss through interception, ws in a tunnel)
    gh5 = known.key("github token in a wss message", "github")
    _ws_exchange(p, "wss://example.test/ws", json.dumps({"cmd": "login", "token": gh5.secret}))
    an4 = known.key("Anthropic key in a ws message", "anthropic")
    _ws_exchange(p, "ws://example.test/ws", f"export ANTHROPIC_API_KEY={an4.secret}")

    # LLM prompts and answers through the gateway (the conversations store keeps them)
    gw_key = known.other("the gateway client's x-api-key", fake_api_key())
    c = anthropic_client(gateway_url(p), api_key=gw_key)
    gh6 = known.key("github token in a prompt", "github")
    pem3 = known.key("PEM key in a prompt", "pem")
    an5 = known.key("Anthropic key in an answer", "anthropic")
    r1 = llm_up.reply(text=f"Found it: {an5.secret} is the key.")
    c.messages.create(model="claude-sonnet-4-5", max_tokens=100, system=f"deploy token: {gh6.secret}",
                      messages=[{"role": "user", "content": r1.prompt(f"why does this fail?\n{pem3.secret}\n")}])
    gh7 = known.key("github token split across streamed deltas", "github")
    aws3 = known.key("AWS secret in a streamed prompt", "aws_secret")
    r2 = llm_up.reply(deltas=["Your token is ", gh7.secret[:17], gh7.secret[17:], ", keep it safe."])
    with c.messages.stream(model="claude-sonnet-4-5", max_tokens=100,
                           messages=[{"role": "user", "content": r2.prompt(f"my creds:\n{aws3.text}")}]) as stream:
        "".join(stream.text_stream)

    # intercepted to the provider's own host, with a provider key (presented to its issuer)
    own = provider_key("anthropic")
    known.known["Anthropic key presented to api.anthropic.com"] = (own, core_of(own, "sk-ant-api03-"), None)
    c2 = anthropic_client(proxy=p, api_key=own)
    gh8 = known.key("github token in an intercepted prompt", "github")
    r3 = llm_up.reply(text="ok")
    c2.messages.create(model="claude-sonnet-4-5", max_tokens=8,
                       messages=[{"role": "user", "content": r3.prompt(f"push with {gh8.secret}")}])
    for r in (r1, r2, r3):
        llm_up.wait_received(r.tag, timeout=10)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", list(MODES))
def test_no_known_credential_is_written_anywhere(start_proxy, certs, detect_up, llm_up, mode):
    known = Secrets()
    injected = known.other("the route's injected credential", "inj" + _rand(37))
    control = "ctl" + _rand(37)  # no rule knows this shape: it is logged as is

    config = start_proxy.base_config()
    config["resolve"].update({
        "other.test:80": f"127.0.0.1:{detect_up.http_port}",
        "other.test:443": f"127.0.0.1:{detect_up.https_port}",
        **provider_resolve(llm_up),
    })
    config["gateways"] = [gateway_entry(llm_up)]
    config["routes"] = [{"host": "example.test", "inject": {"header": "x-api-key", "value_env": ROUTE_ENV}}]
    config.update(MODES[mode])
    p = start_proxy(config, extra_env={ROUTE_ENV: injected}, flags=["--console"], capture_stdout=True)

    run_session(p, detect_up, llm_up, known, control)

    # everything recorded: the LLM calls (and their transcripts), then a clean stop (the store
    # writer flushes)
    wait_llm(p, None, count=3, timeout=10)
    wait_for(lambda: json.loads(_api(p, "/api/sessions")), lambda s: sum(x["turns"] for x in s) >= 3,
             timeout=10, what="three conversation turns in the store")
    api = api_sources(p)
    time.sleep(0.5)
    assert p.stop() == 0, "airlock did not stop cleanly"
    sources = written_sources(p)
    sources["stderr"] = p.stderr_text()
    sources["stdout (--console)"] = "\n".join(p.stdout_lines)
    sources.update(api)
    sources.update(cli_sources(p))

    # the search works: the control is in the level-2 body preview (and the JSONL is there)
    assert any(name.startswith("logs/flows") for name in sources), sorted(sources)
    assert "airlock.db" in sources, sorted(sources)
    assert p.stdout_lines, "--console printed nothing on stdout"
    store = sources["airlock.db (through SQLite)"]
    for text in ("why does this fail?", "keep it safe.", "Found it:"):
        assert text in store, f"the conversations store holds no transcript with {text!r}: nothing to search there"
    control_hits = find(control, control, sources)
    assert any("as is in stderr" == h for h in control_hits), (
        f"the control value (no rule knows it) is not in the level-2 preview on stderr: the search "
        f"would not find a leak either; found: {control_hits}"
    )

    # the route's echo (with the injected credential in it) was previewed: its absence below is
    # masking, not a preview left out
    route_ids = {f["id"] for f in p.flows() if "probe=route-" in (f.get("url") or "")}
    previews = [e for e in p.events("egress_response") if e.get("id") in route_ids]
    assert len(previews) == 2 and all('"/echo"' in (e.get("body") or "") for e in previews), previews
    if mode == "warn":
        # with warn, a body holding a credential went upstream and was previewed too (one holding
        # it only in an encoded form, a JSON-escaped PEM say, has its preview withheld)
        for path, text in (("/json", "deploy with this"),):
            evs = [e for e in p.events("egress_request") if (e.get("path") or "").endswith(path)]
            assert evs and text in (evs[0].get("body") or ""), (path, evs)

    # detection knew the credentials (so the rule applies to them)
    threats = [json.loads(line) for line in (p.data_dir / "logs" / "threats.jsonl").read_text().splitlines() if line]
    rules = {t.get("pattern") for t in threats}
    expected_rules = {rule for _, _, rule in known.known.values() if rule}
    assert expected_rules <= rules, f"rules never reported: {expected_rules - rules}; threats: {sorted(rules)}"

    leaks = {}
    for label, (secret, core, _) in known.known.items():
        hits = find(secret, core, sources)
        if hits:
            leaks[label] = hits
    assert not leaks, "credentials airlock knows about were written or printed:\n" + "\n".join(
        f"- {label}: {'; '.join(h[:5])}{' …' if len(h) > 5 else ''}" for label, h in leaks.items()
    )
