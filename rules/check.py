#!/usr/bin/env python3
"""Checker for airlock's detection rule catalogue (rules/secrets.yaml, rules/injections.yaml).

    python3 rules/check.py                 # validate schema + every example + global hard negatives
    python3 rules/check.py -v              # also list cross-rule overlaps on positive examples
    python3 rules/check.py fake ghp_ --checksum github_crc32   # print a fake, checksum-valid token
    python3 rules/check.py fake sk-ant-api03- --len 93 --charset b64url --suffix AA
    python3 rules/check.py test 'some text'   # show which rules fire on a string
    python3 rules/check.py notword 30 'pub*' site access   # name-segment class used by generic_secret_assignment

Only the Python standard library and PyYAML are used. Patterns are compiled as *bytes* regexes
and matched against UTF-8 bytes, which mirrors the Rust engine (`regex::bytes` with `(?-u)`):
`\\b`, `\\w`, `\\s`, `\\d` and `(?i:...)` are ASCII-only on both sides.

Exit status: 0 when everything passes, 1 on any failure.
"""

import argparse
import math
import os
import random
import re
import sys
import unicodedata
import zlib

try:
    import re._parser as sre_parse  # Python >= 3.11
    import re._constants as sre_c
except ImportError:  # pragma: no cover - older Pythons
    import sre_parse  # type: ignore
    import sre_constants as sre_c  # type: ignore

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SECRETS = os.path.join(HERE, "secrets.yaml")
INJECTIONS = os.path.join(HERE, "injections.yaml")

SECRET_FAMILIES = {
    "ai_api_key", "aws_access_key", "cloud_credential", "vcs_token", "messaging_token",
    "payment_key", "saas_api_key", "package_registry_token", "ci_cd_token",
    "secrets_manager_token", "observability_token", "jwt", "url_credential",
    "private_key_pem", "ssh_key_file", "unix_sensitive", "dotenv_file", "credential_file",
    "crypto_wallet_key",
}
INJECTION_FAMILIES = {
    "pipe_to_shell", "shell_exec", "reverse_shell", "destructive_rm", "ssh_key_inject",
    "prompt_injection", "exfil_command", "encoded_exec", "markdown_exfil",
}
CHECKSUMS = {"github_crc32", "npm_crc32", "basic_auth", "none"}
COMMON_KEYS = {"id", "name", "family", "keywords", "pattern", "max_len", "lead", "entropy", "examples", "fallback"}
SECRET_KEYS = COMMON_KEYS | {"checksum", "issuer_hosts", "auth_headers", "hex_secrets"}
# The largest maximum of a bounded repetition of one character class: above it, write {n,}
# (the regex crate unrolls {64,8000} into megabytes of automaton; max_len bounds the match).
MAX_BOUNDED_REPEAT = 512
INJECTION_KEYS = COMMON_KEYS | {"default_action", "raw"}
REQUIRED = ["id", "name", "family", "keywords", "pattern", "max_len", "examples"]

# Zero-width characters removed by the injection normaliser (and detected raw by zero_width_* rules).
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
# Small reference table of look-alikes folded by the injection normaliser after NFKC.
# (Cyrillic and Greek letters that render like Latin ones.) The Rust engine may fold more.
CONFUSABLES = {
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ɡ": "g", "ӏ": "l",
    "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p", "С": "c",
    "Т": "t", "Х": "x", "І": "i", "Ј": "j", "Ѕ": "s",
    "α": "a", "ο": "o", "ρ": "p", "ι": "i", "ν": "v", "τ": "t", "κ": "k", "χ": "x",
    "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m", "Ν": "n",
    "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x",
}

# Strings that NO rule (secret or injection) may fire on. Kept in sync with rules/README.md.
HARD_NEGATIVES = [
    # UUIDs
    "550e8400-e29b-41d4-a716-446655440000",
    'request_id = "f47ac10b-58cc-4372-a567-0e02b2c3d479"',
    # git SHAs (40 hex) and other hashes
    "9fceb02d0ae598e95dc970b74767f19372d61af8",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8\nAuthor: Jane Doe <jane@example.com>",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "d41d8cd98f00b204e9800998ecf8427e",
    '"integrity": "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="',
    # random base64 / alphanumerics of the same lengths as common keys, without context
    "q7Zr2Lm9XcV4bN8sT1wE6yU3iO0pA5dF7gH2jK4l",
    "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8=",
    "k3J9sX2mQ8vL5nR1tW7yZ0aB4cD6eF8gH1jK3mN5pQ7r",
    "Xk2mL9pQ4rT7vW1yZ3aB5cD8eF0gH2jK4mN6pQ8rS0tU2vW4xY6zA8bC0dE2fG4",
    # public keys and certificates
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGw3mRl3vYQ2xN8pT5kZq1cH7bF9sD4jL6aE0uW2yR8o jane@laptop",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7vbqajDhA3Q0bK9pL2mN5xR8tW1yZ4cF7hJ0kM3nP6qS9uV2wX5zA8bD1eG4iL7oR0tU3xY6aC9fH2kN5qT8wZ1cE4hK7nQ0tW3zB6dG9jM2pS5vY8 deploy@ci",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEq5Tw8mZ3yXcJ0bK9pL2mN5xR8tW1\nyZ4cF7hJ0kM3nP6qS9uV2wX5zA8bD1eG4iL7oR0tU3xY6aC9fH2kN5qT8wZ1cE4h\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\nRTESMBAGA1UEChMJQmFsdGltb3JlMRMwEQYDVQQLEwpDeWJlclRydXN0MSIwIAYD\n-----END CERTIFICATE-----",
    "-----BEGIN RSA PUBLIC KEY-----\nMIIBCgKCAQEA+xGZ/wcz9ugFpP07Nspo6U17l0YhFiFpxxU4pTk3Lifz9R3zsIsu\nERwta7+fWIfxOo208ett/jhskiVodSEt3QBGh4XBipyWopKwZ93HHaDVZAALi/2A\n-----END RSA PUBLIC KEY-----",
    "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGRzZ2IBEADJ3k9pL2mN5xR8tW1yZ4cF7hJ0kM3nP6qS9uV2wX5zA8bD1eG4\niL7oR0tU3xY6aC9fH2kN5qT8wZ1cE4hK7nQ0tW3zB6dG9jM2pS5vY8bE1gJ4mP7s\n-----END PGP PUBLIC KEY BLOCK-----",
    "-----BEGIN CERTIFICATE REQUEST-----\nMIICvDCCAaQCAQAwdzELMAkGA1UEBhMCVVMxDTALBgNVBAgMBFV0YWgxDzANBgNV\nBAcMBkxpbmRvbjEWMBQGA1UECgwNRGlnaUNlcnQgSW5jLjERMA8GA1UECwwIRGln\n-----END CERTIFICATE REQUEST-----",
    # documentation placeholders
    "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "OPENAI_API_KEY=sk-...",
    'api_key = "YOUR_API_KEY"',
    "Authorization: Bearer <your-token>",
    "export GITHUB_TOKEN=<your-token>",
    "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "ANTHROPIC_API_KEY=sk-ant-api03-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    'password = "<password>"',
    "DB_PASSWORD=${DB_PASSWORD}",
    "password: changeme",
    "postgres://user:password@localhost:5432/mydb",
    "mongodb+srv://<username>:<password>@cluster0.example.mongodb.net/test",
    "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
    # AWS's published documentation example keys (see rules/README.md for the decision)
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AKIAIOSFODNN7EXAMPLE,wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    # benign shell and prose
    "rm -rf ./build",
    "rm -rf /tmp/foo",
    "rm -rf node_modules",
    "rm -rf ~/projects/app/dist && npm run build",
    "RUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*",
    "curl -fsSL https://example.com/release.tar.gz -o release.tar.gz",
    "curl -s https://api.github.com/repos/rust-lang/rust | jq .stargazers_count",
    "ssh-keygen -t ed25519 -f ~/.ssh/id_ed25519 -C jane@example.com",
    "cat ~/.ssh/id_ed25519.pub",
    "cp .env.example .env",
    "Please ignore the formatting issues in the previous message.",
    "You are now ready to deploy the application.",
    "max_tokens = 4096",
    "token_type: Bearer",
    "The string \u201cpassword\u201d must be at least 12 characters long.",
    # documentation and public values of the classes in rules/README.md ("placeholders")
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    'stripe.api_key = "sk_test_BQokikJOvBiI2HlWgH4olfQ2"',
    'MNEMONIC="test test test test test test test test test test test junk"',
    'export API_TOKEN="REPLACE_WITH_YOUR_TOKEN_1"',
    "SECRET_KEY=my-secret-token-2024",
    'PASSWORD_FILE=/run/secrets/db_password_2',
    # pagination and CSRF tokens in API responses
    '{"data": [], "meta": {"next_token": "7140dibdnow9c7btw3w29grvxfcgvpb9n9coehpk7xz5i"}}',
    '<input type="hidden" name="csrf_token" value="a8Kx2mP9qR4tV7wY1zB3cD5fG8hJ0kL6">',
]

# --------------------------------------------------------------------------------------------
# helpers: entropy, checksums, fake values


B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CHARSETS = {
    "b62": B62,
    "alnum": B62,
    "hex": "0123456789abcdef",
    "HEX": "0123456789ABCDEF",
    "lower": "abcdefghijklmnopqrstuvwxyz",
    "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "alpha": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "lowernum": "0123456789abcdefghijklmnopqrstuvwxyz",
    "uppernum": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "b32": "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
    "b64": B62 + "+/",
    "b64url": B62 + "-_",
    "digits": "0123456789",
    "bech32": "qpzry9x8gf2tvdw0s3jn54khce6mua7l",
}


def shannon(data: bytes) -> float:
    """Shannon entropy in bits per byte of `data`."""
    if not data:
        return 0.0
    counts = {}
    for b in data:
        counts[b] = counts.get(b, 0) + 1
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def base62(n: int, width: int = 6) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return out.rjust(width, "0")


def crc32_token_ok(token: bytes, prefix_len: int) -> bool:
    """GitHub/npm token checksum: token = PREFIX + BODY(30) + base62(crc32(BODY)) left-padded to 6.
    The CRC is over the random body only (not the prefix); the alphabet is 0-9A-Za-z."""
    if len(token) < prefix_len + 7:
        return False
    body, check = token[prefix_len:-6], token[-6:]
    try:
        return base62(zlib.crc32(body) & 0xFFFFFFFF) == check.decode("ascii")
    except UnicodeDecodeError:
        return False


def checksum_ok(kind, secret: bytes) -> bool:
    if kind in (None, "none"):
        return True
    if kind == "github_crc32":  # ghp_ gho_ ghu_ ghs_ ghr_ (4-char prefix)
        return crc32_token_ok(secret, 4)
    if kind == "npm_crc32":  # npm_ (4-char prefix)
        return crc32_token_ok(secret, 4)
    if kind == "basic_auth":  # base64 of printable "user:password"
        import base64, binascii
        try:
            raw = base64.b64decode(secret + b"=" * (-len(secret) % 4), validate=True)
        except (binascii.Error, ValueError):
            return False
        return b":" in raw[1:] and all(32 <= c < 127 for c in raw)
    raise ValueError(kind)


def fake(prefix="", length=36, charset="b62", suffix="", checksum=None, rng=random):
    """A fake credential: prefix + random chars (+ checksum) + suffix."""
    chars = CHARSETS.get(charset, charset)
    if checksum in ("github_crc32", "npm_crc32"):
        body = "".join(rng.choice(B62) for _ in range(length - 6))
        return prefix + body + base62(zlib.crc32(body.encode()) & 0xFFFFFFFF) + suffix
    return prefix + "".join(rng.choice(chars) for _ in range(length)) + suffix


# --------------------------------------------------------------------------------------------
# generator for "a name segment that is not one of these words" (used by generic_secret_assignment)

ALNUM = B62


def _alnum_class(chars):
    """A character class for `chars` (a subset of 0-9A-Za-z), written with ranges."""
    chars = set(chars)
    if chars == set(ALNUM):
        return "[A-Za-z0-9]"
    out = ""
    for run in ("0123456789", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"):
        sel = [c for c in run if c in chars]
        i = 0
        while i < len(sel):
            j = i
            while j + 1 < len(sel) and run.index(sel[j + 1]) == run.index(sel[j]) + 1:
                j += 1
            out += sel[i] + "-" + sel[j] if j - i >= 2 else "".join(sel[i:j + 1])
            i = j + 1
    return "[" + out + "]" if len(chars) > 1 else out


def notword(excluded, maxlen):
    """A regex for an alphanumeric word of 1..maxlen characters that is none of `excluded`,
    ignoring case; an entry ending in '*' excludes every word that starts with it. No
    look-around: a walk down the trie of the excluded words, where each character that leaves
    the trie starts a free tail."""
    words = {w.lower() for w in excluded if not w.endswith("*")}
    prefixes = {w[:-1].lower() for w in excluded if w.endswith("*")}

    def node(p):
        if p in prefixes:
            return None
        depth = len(p)
        kids = sorted({w[depth] for w in words | prefixes if w.startswith(p) and len(w) > depth})
        rest = maxlen - depth
        alts = []
        if rest >= 1:
            free = [c for c in ALNUM if c.lower() not in kids]
            alts.append(_alnum_class(free) + ("[A-Za-z0-9]{0,%d}" % (rest - 1) if rest > 1 else ""))
            for k in kids:
                sub = node(p + k)
                if sub is not None:
                    alts.append(_alnum_class(k.lower() + k.upper()) + sub)
        can_end = depth > 0 and p not in words
        if not alts:
            return "" if can_end else None
        body = "(?:" + "|".join(alts) + ")" if len(alts) > 1 else alts[0]
        if can_end:
            return "(?:" + "|".join(alts) + ")?"
        return body

    return node("")


# --------------------------------------------------------------------------------------------
# normalisation for injection rules (reference implementation of what the engine does)


def normalise(text: str) -> str:
    t = unicodedata.normalize("NFKC", text)
    t = "".join(ch for ch in t if ch not in ZERO_WIDTH)
    t = "".join(CONFUSABLES.get(ch, ch) for ch in t)
    return t.lower()


# --------------------------------------------------------------------------------------------
# pattern linting


FORBIDDEN_SYNTAX = [
    (r"\(\?-u\)", "(?-u) is added by the engine; leave it out"),
    (r"\(\?[=!]", "look-ahead is not supported by Rust regex"),
    (r"\(\?<[=!]", "look-behind is not supported by Rust regex"),
    (r"\(\?>", "atomic groups are not supported by Rust regex"),
    (r"\(\?P=", "backreferences are not supported by Rust regex"),
    (r"\\[1-9]", "backreferences are not supported by Rust regex"),
    (r"\\[Zz]", r"\Z/\z differ between Python and Rust; avoid"),
    (r"[*+?}]\+", "possessive quantifiers are not supported by Rust regex"),
    (r"\\[pP]\{", "Unicode classes do not apply in (?-u) byte mode"),
    (r"\{,", "{,n} is not portable; write {0,n}"),
]


def _walk(parsed, depth_info, errors, rule_id):
    """Reject unbounded and nested (outer max > 1) repetitions."""
    for op, av in parsed:
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
            lo, hi, sub = av
            # Unbounded repetition of one character class is linear in Rust's regex and stays
            # inside the engine's window (max_len); it also compiles far smaller than a long
            # bounded run ({64,16000} is unrolled 16000 times). Anything else must be bounded.
            single_class = len(sub) == 1 and sub[0][0] in (sre_c.IN, sre_c.LITERAL, sre_c.ANY, sre_c.NOT_LITERAL)
            if hi == sre_c.MAXREPEAT and not single_class:
                errors.append(f"{rule_id}: unbounded quantifier (*, + or {{n,}}) over more than one character class; use {{m,n}}")
            if single_class and hi != sre_c.MAXREPEAT and hi > MAX_BOUNDED_REPEAT:
                errors.append(f"{rule_id}: {{{lo},{hi}}} on one character class unrolls into a large automaton; write {{{lo},}}")
            if depth_info and hi > 1 and any(h > 1 for h in depth_info):
                errors.append(f"{rule_id}: nested quantifier")
            _walk(sub, depth_info + [hi], errors, rule_id)
        elif op == sre_c.SUBPATTERN:
            _walk(av[-1], depth_info, errors, rule_id)
        elif op == sre_c.BRANCH:
            for alt in av[1]:
                _walk(alt, depth_info, errors, rule_id)
        elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            errors.append(f"{rule_id}: look-around")


def lint_pattern(rule_id, pattern, errors):
    if not isinstance(pattern, str) or not pattern:
        errors.append(f"{rule_id}: pattern must be a non-empty string")
        return None
    if not pattern.isascii():
        errors.append(f"{rule_id}: pattern must be ASCII (write bytes as \\xNN)")
        return None
    for bad, why in FORBIDDEN_SYNTAX:
        if re.search(bad, pattern):
            errors.append(f"{rule_id}: {why}")
    try:
        rx = re.compile(pattern.encode("ascii"))
    except re.error as e:
        errors.append(f"{rule_id}: pattern does not compile: {e}")
        return None
    names = set(rx.groupindex)
    if names - {"secret"}:
        errors.append(f"{rule_id}: only the named group `secret` is allowed, got {sorted(names)}")
    # A hit on the last repeat max > 1 nested inside another repeat with max > 1 is an error.
    try:
        _walk(sre_parse.parse(pattern.encode("ascii")), [], errors, rule_id)
    except Exception as e:  # pragma: no cover
        errors.append(f"{rule_id}: could not analyse pattern: {e}")
    return rx


# --------------------------------------------------------------------------------------------
# loading and matching


class Rule:
    def __init__(self, d, kind):
        self.d = d
        self.kind = kind  # "secret" | "injection"
        self.id = d.get("id")
        self.family = d.get("family")
        self.keywords = d.get("keywords") or []
        self.max_len = d.get("max_len")
        self.entropy = d.get("entropy")
        self.checksum = d.get("checksum")
        self.raw = bool(d.get("raw", False))
        self.fallback = bool(d.get("fallback", False))
        self.hex_secrets = bool(d.get("hex_secrets", False))
        self.rx = None

    def prepare(self, text: str) -> bytes:
        if self.kind == "injection" and not self.raw:
            text = normalise(text)
        return text.encode("utf-8")

    def detections(self, text: str):
        """All matches that the engine would report: (match, secret_bytes, reasons_rejected)."""
        data = self.prepare(text)
        out = []
        for m in self.rx.finditer(data):
            whole = m.group(0)
            secret = m.group("secret") if "secret" in self.rx.groupindex else None
            if secret is None:
                secret = whole
            rejected = []
            floor = self.entropy
            hex_value = re.fullmatch(rb"[0-9A-Fa-f]{32,}", secret) is not None
            if floor is not None and self.hex_secrets and hex_value:
                floor = min(float(floor), 3.2)  # random hex tops out at 4 bits per character
            if floor is not None and shannon(secret) < float(floor):
                rejected.append(f"entropy {shannon(secret):.2f} < {floor}")
            if self.fallback:
                uuid = re.fullmatch(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", secret)
                digest = hex_value and len(secret) in (32, 40, 64, 128)
                if uuid or (digest and not self.hex_secrets):
                    rejected.append("a hash or an id (catch-alls drop them)")
                if re.fullmatch(rb"(?:(?:[A-Z][a-z]+)+[0-9]*|[0-9]+)(?:_(?:(?:[A-Z][a-z]+)+[0-9]*|[0-9]+))+", secret):
                    rejected.append("a name from code (capitalised words joined by underscores)")
            if self.checksum and not checksum_ok(self.checksum, secret):
                rejected.append("checksum")
            low = whole.lower()
            if not any(k.encode("utf-8").lower() in low for k in self.keywords):
                rejected.append("no keyword in match (engine would never look here)")
            if isinstance(self.max_len, int) and len(whole) > self.max_len:
                rejected.append(f"match length {len(whole)} > max_len {self.max_len}")
            out.append((m, secret, rejected))
        return out

    def fires(self, text: str) -> bool:
        return any(not rej for _, _, rej in self.detections(text))


def load(path, kind, errors):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or set(doc) != {"rules"} or not isinstance(doc["rules"], list):
        errors.append(f"{path}: top level must be a mapping with a single key `rules` (a list)")
        return []
    rules = []
    allowed = SECRET_KEYS if kind == "secret" else INJECTION_KEYS
    families = SECRET_FAMILIES if kind == "secret" else INJECTION_FAMILIES
    for i, d in enumerate(doc["rules"]):
        where = f"{os.path.basename(path)}[{i}]"
        if not isinstance(d, dict):
            errors.append(f"{where}: rule must be a mapping")
            continue
        rid = d.get("id", where)
        for k in REQUIRED:
            if k not in d:
                errors.append(f"{rid}: missing key `{k}`")
        for k in d:
            if k not in allowed:
                errors.append(f"{rid}: unknown key `{k}`")
        if not (isinstance(rid, str) and re.fullmatch(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*", rid)):
            errors.append(f"{rid}: id must be snake_case")
        if not isinstance(d.get("name"), str) or not d.get("name", "").strip():
            errors.append(f"{rid}: name must be a non-empty string")
        if d.get("family") not in families:
            errors.append(f"{rid}: family {d.get('family')!r} not in {sorted(families)}")
        r = Rule(d, kind)
        # keywords
        kws = d.get("keywords")
        if not isinstance(kws, list) or not kws:
            errors.append(f"{rid}: keywords must be a non-empty list")
            r.keywords = []
        else:
            for k in kws:
                if not isinstance(k, str):
                    errors.append(f"{rid}: keyword {k!r} is not a string")
                    continue
                if r.raw:
                    if len(k.encode("utf-8")) < 3:
                        errors.append(f"{rid}: raw keyword {k!r} shorter than 3 bytes")
                else:
                    if not k.isascii():
                        errors.append(f"{rid}: keyword {k!r} must be ASCII")
                    if len(k) < 3:
                        errors.append(f"{rid}: keyword {k!r} shorter than 3 chars")
                    if kind == "injection" and k != k.lower():
                        errors.append(f"{rid}: injection keyword {k!r} must be lower case")
            if len(set(k.lower() for k in kws if isinstance(k, str))) != len(kws):
                errors.append(f"{rid}: duplicate keywords")
        # numbers and enums
        if not (isinstance(r.max_len, int) and not isinstance(r.max_len, bool) and r.max_len > 0):
            errors.append(f"{rid}: max_len must be a positive integer")
        if r.entropy is not None and not (isinstance(r.entropy, (int, float)) and 0 <= r.entropy <= 8):
            errors.append(f"{rid}: entropy must be a number in 0..8")
        if kind == "secret":
            if r.checksum is not None and r.checksum not in CHECKSUMS:
                errors.append(f"{rid}: checksum must be one of {sorted(CHECKSUMS)}")
            for k in ("issuer_hosts", "auth_headers"):
                v = d.get(k)
                if v is not None and not (isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)):
                    errors.append(f"{rid}: {k} must be a non-empty list of strings")
            if d.get("auth_headers") and not d.get("issuer_hosts"):
                errors.append(f"{rid}: auth_headers without issuer_hosts")
            for h in d.get("auth_headers") or []:
                if isinstance(h, str) and h != h.lower():
                    errors.append(f"{rid}: auth header {h!r} must be lower case")
        else:
            if "default_action" in d and d["default_action"] not in ("warn", "block"):
                errors.append(f"{rid}: default_action must be warn or block")
            if "raw" in d and not isinstance(d["raw"], bool):
                errors.append(f"{rid}: raw must be true/false")
            pat = d.get("pattern")
            if not r.raw and isinstance(pat, str):
                # Text is lower-cased before matching: upper-case literals can never match.
                stripped = re.sub(r"\\[A-Za-z]", "", pat)
                if re.search(r"[A-Z]", stripped):
                    errors.append(f"{rid}: injection pattern must be lower case (text is normalised)")
        r.rx = lint_pattern(rid, d.get("pattern"), errors)
        # examples
        ex = d.get("examples")
        if not isinstance(ex, dict) or set(ex) - {"positive", "negative"}:
            errors.append(f"{rid}: examples must be a mapping with positive/negative")
            ex = {}
        for side in ("positive", "negative"):
            v = ex.get(side)
            if not isinstance(v, list) or len(v) < 2 or not all(isinstance(s, str) and s for s in v):
                errors.append(f"{rid}: examples.{side} needs at least 2 non-empty strings")
                ex[side] = [s for s in (v or []) if isinstance(s, str)]
        r.examples = ex
        rules.append(r)
    return rules


def check(verbose=False):
    errors, notes = [], []
    secrets = load(SECRETS, "secret", errors)
    injections = load(INJECTIONS, "injection", errors)
    rules = secrets + injections
    seen = {}
    for r in rules:
        if r.id in seen:
            errors.append(f"{r.id}: duplicate id")
        seen[r.id] = r
    live = [r for r in rules if r.rx is not None]
    n_examples = 0
    for r in live:
        for text in r.examples.get("positive", []):
            n_examples += 1
            dets = r.detections(text)
            if not dets:
                errors.append(f"{r.id}: positive does not match: {text!r}")
                continue
            if not any(not rej for _, _, rej in dets):
                why = "; ".join(", ".join(rej) for _, _, rej in dets)
                errors.append(f"{r.id}: positive matched but was rejected ({why}): {text!r}")
            for m, _, rej in dets:
                # every match on a positive must carry a keyword and fit max_len
                for reason in rej:
                    if reason.startswith("no keyword") or reason.startswith("match length"):
                        errors.append(f"{r.id}: {reason}: {m.group(0)[:80]!r}")
            if verbose:
                others = [o.id for o in live if o is not r and o.kind == r.kind and o.fires(text)]
                if others:
                    notes.append(f"overlap: positive of {r.id} also fires {others}: {text[:70]!r}")
        for text in r.examples.get("negative", []):
            n_examples += 1
            if r.fires(text):
                errors.append(f"{r.id}: negative fires: {text!r}")
    for text in HARD_NEGATIVES:
        n_examples += 1
        hits = [r.id for r in live if r.fires(text)]
        if hits:
            errors.append(f"hard negative fires {hits}: {text!r}")
    return rules, secrets, injections, errors, notes, n_examples


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    ap.add_argument("-v", "--verbose", action="store_true", help="list cross-rule overlaps")
    f = sub.add_parser("fake", help="print fake credential(s) for examples")
    f.add_argument("prefix", nargs="?", default="")
    f.add_argument("--len", type=int, default=36, help="random part length (incl. 6 checksum chars)")
    f.add_argument("--charset", default="b62", help="|".join(CHARSETS) + " or literal characters")
    f.add_argument("--suffix", default="")
    f.add_argument("--checksum", choices=sorted(CHECKSUMS))
    f.add_argument("-n", type=int, default=1)
    t = sub.add_parser("test", help="show which rules fire on a string")
    t.add_argument("text")
    nw = sub.add_parser("notword", help="regex for a name segment that is none of WORDS (WORD* = prefix)")
    nw.add_argument("maxlen", type=int)
    nw.add_argument("words", nargs="+")
    a = ap.parse_args(argv)

    if a.cmd == "notword":
        print(notword(a.words, a.maxlen))
        return 0
    if a.cmd == "fake":
        rng = random.SystemRandom()
        for _ in range(a.n):
            print(fake(a.prefix, a.len, a.charset, a.suffix, a.checksum, rng))
        return 0
    rules, secrets, injections, errors, notes, n_ex = check(a.verbose)
    if a.cmd == "test":
        for r in rules:
            if r.rx is None:
                continue
            for m, secret, rej in r.detections(a.text):
                state = "FIRES" if not rej else "rejected: " + ", ".join(rej)
                print(f"{r.id:40} {state}  secret={secret[:60]!r}")
        return 0
    for n in notes:
        print("note:", n)
    if errors:
        for e in errors:
            print("FAIL:", e)
        print(f"{len(errors)} failure(s)")
        return 1
    fams = {}
    for r in rules:
        fams.setdefault((r.kind, r.family), 0)
        fams[(r.kind, r.family)] += 1
    for (kind, fam), n in sorted(fams.items()):
        print(f"  {kind:9} {fam:24} {n}")
    print(f"{len(rules)} rules ({len(secrets)} secret, {len(injections)} injection), "
          f"{len(fams)} families, {n_ex - len(HARD_NEGATIVES)} examples + {len(HARD_NEGATIVES)} global hard negatives: "
          f"all examples pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
