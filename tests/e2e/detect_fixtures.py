"""Fixtures and helpers for the detection tests (``test_detect_*.py``).

Import with ``from detect_fixtures import *``.

* ``detect_up``      - the recording upstream of detect_upstream.py (one per worker process),
                       HTTPS certificate valid for example.test, other.test, api.anthropic.com,
                       api.github.com (signed by the suite's upstream CA).
* ``detect_proxy``   - factory over ``start_proxy``: a proxy whose ``resolve`` sends those names
                       to ``detect_up``; extra config keys are merged in.
* keys               - ``fresh_key(role)`` returns a credential that the rule catalogue
                       (``rules/secrets.yaml``) must detect: generated fresh when the shape is
                       known (GitHub classic PAT with its CRC32 checksum, Anthropic key, PEM private
                       key), checked against the catalogue's own pattern when the catalogue is
                       there, else the rule's first positive example.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import ssl
import string
import time
import zlib
from urllib.parse import unquote
from dataclasses import dataclass

import pytest

from detect_upstream import DetectUpstream
from e2e_helpers import REPO, connect, connect_tunnel, read_response, tls_wrap
from records import FLOWS, THREATS, log_text, merge_config

__all__ = [
    "detect_up",
    "detect_proxy",
    "Key",
    "fresh_key",
    "rule_info",
    "catalogue",
    "assert_no_leak",
    "secret_windows",
    "assert_credential_block",
    "open_exchange",
    "send_raw",
    "DETECT_NAMES",
]

DETECT_NAMES = ["example.test", "other.test", "api.anthropic.com", "api.github.com", "evil.test", "localhost", "127.0.0.1"]
UPSTREAM_HOSTS = ["example.test", "other.test", "api.anthropic.com", "api.github.com", "evil.test"]

# --------------------------------------------------------------------------- the upstream

@pytest.fixture
def detect_up(certs) -> DetectUpstream:
    return DetectUpstream.shared(lambda: certs.upstream_ca.issue_cert(*DETECT_NAMES))


@pytest.fixture
def detect_proxy(start_proxy, certs, detect_up):
    """detect_proxy(extra_config=None, **start_proxy_kwargs) -> Proxy"""

    def make(extra: dict | None = None, **kw):
        resolve = {}
        for host in UPSTREAM_HOSTS:
            resolve[f"{host}:80"] = f"127.0.0.1:{detect_up.http_port}"
            resolve[f"{host}:443"] = f"127.0.0.1:{detect_up.https_port}"
        config = {"upstream_ca": [str(certs.upstream_ca_path)], "resolve": resolve,
                  "allow_private": ["127.0.0.0/8"]}
        config = merge_config(config, extra)
        return start_proxy(config, base=False, **kw)

    return make


# --------------------------------------------------------------------------- the rule catalogue

_cat_cache: dict = {}


def catalogue() -> dict | None:
    """{rule id: rule dict (with 'kind')} from rules/*.yaml, or None while the files are missing."""
    import yaml

    files = [(REPO / "rules" / "secrets.yaml", "secret"), (REPO / "rules" / "injections.yaml", "injection")]
    if not files[0][0].exists():
        return None
    stamp = tuple(f.stat().st_mtime_ns if f.exists() else 0 for f, _ in files)
    if _cat_cache.get("stamp") == stamp:
        return _cat_cache["rules"]
    rules = {}
    for path, kind in files:
        if not path.exists():
            continue
        data = yaml.safe_load(path.read_text()) or {}
        for r in data.get("rules") or []:
            r = dict(r)
            r["kind"] = kind
            rules[r["id"]] = r
    _cat_cache.update(stamp=stamp, rules=rules)
    return rules


def _py_regex(pattern: str):
    """The catalogue's Rust regex (bytes, ASCII) as a Python bytes regex, or None."""
    p = pattern.replace("(?<", "(?P<").replace("(?P<=", "(?<=").replace("(?P<!", "(?<!")
    p = p.replace(r"\z", r"\Z")
    p = re.sub(r"\\x\{([0-9A-Fa-f]{1,2})\}", lambda m: "\\x%02x" % int(m.group(1), 16), p)
    # Rust accepts inline flags anywhere; Python only at the start: hoist a leading run.
    flags = 0
    m = re.match(r"^\(\?([imsx]+)\)", p)
    if m:
        for ch in m.group(1):
            flags |= {"i": re.I, "m": re.M, "s": re.S, "x": re.X}[ch]
        p = p[m.end():]
    try:
        return re.compile(p.encode(), flags)
    except re.error:
        return None


def _entropy(b: bytes) -> float:
    if not b:
        return 0.0
    counts = {}
    for x in b:
        counts[x] = counts.get(x, 0) + 1
    n = len(b)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _match(rule: dict, text: str):
    """(secret, whole match) if the rule's pattern finds text as the catalogue would, else None."""
    rx = _py_regex(rule["pattern"])
    if rx is None:
        return None
    for m in rx.finditer(text.encode()):
        secret = m.group("secret") if "secret" in rx.groupindex and m.group("secret") else m.group(0)
        if len(m.group(0)) > int(rule.get("max_len") or 1 << 30):
            continue
        if rule.get("entropy") and _entropy(secret) < float(rule["entropy"]):
            continue
        return secret.decode(), m.group(0).decode()
    return None


# --------------------------------------------------------------------------- keys

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def _b62(n: int, width: int) -> str:
    out = ""
    for _ in range(width):
        out = BASE62[n % 62] + out
        n //= 62
    return out


def _rand(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def gen_github_pat() -> tuple[str, str]:
    body = _rand(string.ascii_letters + string.digits, 30)
    tok = "ghp_" + body + _b62(zlib.crc32(body.encode()), 6)
    return tok, tok


def gen_anthropic() -> tuple[str, str]:
    tok = "sk-ant-api03-" + _rand(string.ascii_letters + string.digits + "-_", 93) + "AA"
    return tok, tok


def gen_pem() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    return pem.strip(), pem.strip()


def gen_aws_secret() -> tuple[str, str]:
    # 40 chars of base64 alphabet, with both '/' and '+' in it (so URL-encoding changes it)
    while True:
        s = _rand(string.ascii_letters + string.digits + "+/", 38)
        s = s[:10] + "/" + s[10:25] + "+" + s[25:]
        if _entropy(s.encode()) > 4.5:
            break
    return f"aws_secret_access_key = {s}", s


# role -> (preferred rule ids, family, generator)
ROLES = {
    "github": (["github_pat_classic"], "vcs_token", gen_github_pat),
    "anthropic": (["anthropic_api_key"], "ai_api_key", gen_anthropic),
    "pem": (["private_key_pem", "private_key", "pem_private_key", "rsa_private_key"], "private_key_pem", gen_pem),
    "aws_secret": (["aws_secret_access_key", "aws_secret_key"], "aws_access_key", gen_aws_secret),
}


# rule names the spec itself spells out (SPEC 4, the egress_block example)
SPEC_NAMES = {"github_pat_classic": "GitHub token (classic)"}


@dataclass
class Key:
    rule: str  # rule id (the threat's pattern, X-Airlock-Rule)
    name: str  # the rule's human name
    family: str
    text: str  # what to paste (contains the secret, maybe with context such as "aws_secret_access_key = ")
    secret: str  # the credential itself
    keyword: str = ""  # a fixed prefix that is not secret material (ghp_, sk-ant-api03-)

    @property
    def core(self) -> str:
        """The part of the secret that is secret material (the vendor prefix is public)."""
        s = self.secret
        if "PRIVATE KEY-----" in s:
            lines = [ln for ln in s.splitlines() if ln and not ln.startswith("-----") and ":" not in ln]
            return "".join(lines)[32:]  # past the ASN.1 preamble every key of a kind shares
        if self.keyword and s.lower().startswith(self.keyword.lower()):
            return s[len(self.keyword):]
        return s


def _pick_rule(role: str, cat: dict | None):
    ids, family, _ = ROLES[role]
    if cat is None:
        return None
    for i in ids:
        if i in cat:
            return cat[i]
    cands = [r for r in cat.values() if r.get("family") == family and r["kind"] == "secret"]
    if role == "aws_secret":
        cands = [r for r in cands if "secret" in (r["id"] + r.get("name", "")).lower()] or cands
    if role == "pem":
        cands = [r for r in cands if "PRIVATE" in r["pattern"]] or cands
    return cands[0] if cands else None


def rule_info(rule_id: str) -> dict | None:
    cat = catalogue()
    return None if cat is None else cat.get(rule_id)


def fresh_key(role: str) -> Key:
    ids, family, gen = ROLES[role]
    cat = catalogue()
    rule = _pick_rule(role, cat)
    text, secret = gen()
    prefix = {"github": "ghp_", "anthropic": "sk-ant-api03-"}.get(role, "")
    if rule is None:
        # no catalogue yet (or no such rule): the spec's own names and our generated shape
        return Key(ids[0], SPEC_NAMES.get(ids[0], ids[0]), family, text, secret, prefix)
    name = rule.get("name", rule["id"])
    m = _match(rule, text)
    if m is not None and m[0] in text:
        return Key(rule["id"], name, rule.get("family", family), text, m[0], prefix)
    # our generated shape is not what the rule wants: put our fresh secret in the rule's own
    # positive examples (its context), else use the first example the pattern finds as is
    positives = (rule.get("examples") or {}).get("positive") or []
    for ex in positives:
        m = _match(rule, ex)
        if m is None or m[0] not in ex:
            continue
        candidate = ex.replace(m[0], secret)
        m2 = _match(rule, candidate)
        if m2 is not None and m2[0] == secret:
            return Key(rule["id"], name, rule.get("family", family), candidate, secret, prefix)
    for ex in positives:
        m = _match(rule, ex)
        if m is not None:
            return Key(rule["id"], name, rule.get("family", family), ex, m[0], prefix)
    ex = (positives or [text])[0]
    return Key(rule["id"], name, rule.get("family", family), ex, ex, prefix)


# --------------------------------------------------------------------------- leaks and blocks


def secret_windows(key: Key, width: int = 12) -> list[str]:
    core = key.core
    if len(core) <= width:
        return [core]
    return [core[i : i + width] for i in range(len(core) - width + 1)]


def assert_no_leak(proxy, key: Key, *, extra_text: dict | None = None):
    """Neither the secret nor any 12-character run of its secret material is in threats.jsonl,
    flows.jsonl, the proxy's stderr, or extra_text {label: text}."""
    sources = {
        THREATS: log_text(proxy, THREATS),
        FLOWS: log_text(proxy, FLOWS),
        "stderr": proxy.stderr_text(),
    }
    sources.update(extra_text or {})
    windows = secret_windows(key)
    for label, text in sources.items():
        variants = {text, text.replace("\\n", "\n").replace("\\/", "/"), unquote(text)}
        for t in variants:
            assert key.secret not in t, f"the secret ({key.rule}) is in clear in {label}"
            found = next((w for w in windows if w in t), None)
            assert found is None, f"12 characters of the secret ({found!r}, rule {key.rule}) are in {label}"


def assert_credential_block(status: int, headers: dict, body: bytes, key: Key):
    """The 403 a client sees for an outbound credential (SPEC 5)."""
    headers = {k.lower(): v for k, v in headers.items()}
    text = body.decode("utf-8", errors="replace")
    assert status == 403, f"expected 403 for a credential leak ({key.rule}), got {status}: {text[:300]}"
    assert headers.get("x-airlock-block-reason") == "credential-leak", headers
    assert headers.get("x-airlock-rule") == key.rule, headers
    try:
        doc = json.loads(body)
    except ValueError:
        raise AssertionError(f"403 body is not JSON: {text[:300]!r}") from None
    assert doc.get("error") == "blocked", doc
    assert doc.get("rule") == key.rule, doc
    assert "reason" in doc and "detail" in doc, doc
    assert key.secret not in text, "the block body repeats the secret"
    for w in secret_windows(key):
        assert w not in text, f"the block body contains part of the secret: {w!r}"


# --------------------------------------------------------------------------- raw exchanges


def open_exchange(proxy, scheme: str, host: str, timeout: float = 10.0):
    """A socket on which to write one HTTP/1.1 request to host through the proxy, and the
    request-target prefix to use (absolute form over plain HTTP, origin form in a tunnel)."""
    if scheme == "http":
        return connect(proxy.port, timeout), f"http://{host}"
    sock, resp = connect_tunnel(proxy.port, f"{host}:443", timeout)
    assert resp.status == 200, f"CONNECT {host}:443 answered {resp.status}"
    return tls_wrap(sock, host, proxy.ca_path), ""


def send_raw(proxy, scheme: str, host: str, head: str, parts: list[bytes], pause: float = 0.0, timeout: float = 10.0):
    """Sends head (with {target} for the request target prefix) then each part, pausing between
    them; returns the RawResponse (or raises)."""
    sock, prefix = open_exchange(proxy, scheme, host, timeout)
    try:
        sock.sendall(head.replace("{target}", prefix).encode())
        for i, part in enumerate(parts):
            if i and pause:
                time.sleep(pause)
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                break  # the proxy may answer (and stop reading) before the upload ends
        return read_response(sock)
    finally:
        try:
            sock.close()
        except OSError:
            pass
