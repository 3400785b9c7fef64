"""Real-format stand-ins for the corpus's fake test values (variant "real").

agent-egress-bench plants well-known documentation values (AWS's AKIAIOSFODNN7EXAMPLE, Stripe's
sk_test_4eC39HqLyjWDarjtT1zdp7dc, jwt.io's sample tokens, the 4111... test card) or placeholder
strings of the wrong length (a 34-character ghp_ token, SG.FAKE_TEST_KEY_...). A detector that
knows those values are examples, or that checks lengths and checksums, rightly lets them through,
so the corpus as it stands measures partly "does the tool flag the famous examples" rather than
"does it stop a credential leaving".

This module replaces each fake value of an *attack* case by a freshly generated value of the
provider's real format, in the same place and with the same encoding (raw, base64, hex, hex with
dashes, percent-encoded once or twice, percent-encoded base64, split across WebSocket fragments
or JSON fields). Benign cases are never changed: their documentation examples are the point of
those cases.

Formats come from the providers' documentation (or, where a provider publishes none, the shape
publicly observed), NOT from airlock's rules/secrets.yaml, so the comparison stays honest.
See GENERATORS below for the source of each.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import random
import re
import string
import urllib.parse
import zlib

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase  # GitHub's base62 order
ALNUM = string.ascii_letters + string.digits
B64 = string.ascii_letters + string.digits + "+/"
B64URL = string.ascii_letters + string.digits + "-_"
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


# --------------------------------------------------------------------------- encodings helpers


def b58check(payload: bytes) -> str:
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + out


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        b = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if ((b >> i) & 1) else 0
    return chk


def bech32_segwit_v0(hrp: str, program: bytes) -> str:
    """BIP-173 segwit v0 address (bech32, not bech32m)."""
    acc, bits, data = 0, 0, [0]  # witness version 0
    for b in program:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    hrp_exp = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    poly = _bech32_polymod(hrp_exp + data + [0] * 6) ^ 1
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[d] for d in data + checksum)


def luhn_complete(prefix_digits: str, length: int, rng: random.Random) -> str:
    body = prefix_digits + "".join(rng.choice(string.digits) for _ in range(length - len(prefix_digits) - 1))
    total = 0
    for i, d in enumerate(reversed(body)):
        n = int(d)
        if i % 2 == 0:  # these get doubled once the check digit is appended
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return body + str((10 - total % 10) % 10)


def b64url_nopad(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


# --------------------------------------------------------------------------- generators


def _rand(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def gen_aws_access_key_id(rng, fake):
    # AWS IAM docs: long-term access key IDs start with AKIA; 20 characters, upper-case letters
    # and digits (observed keys use the base32 alphabet A-Z2-7 after the prefix).
    return "AKIA" + _rand(rng, string.ascii_uppercase + "234567", 16)


def gen_aws_secret_access_key(rng, fake):
    # AWS docs: the secret access key is 40 characters of the base64 alphabet (A-Za-z0-9/+).
    return _rand(rng, B64, 40)


def gen_github_pat_classic(rng, fake):
    # GitHub blog "Behind GitHub's new authentication token formats" (2021-04-05): prefix ghp_,
    # 30 random base62 characters, then a 6-character base62 CRC32 checksum of the random part.
    body = _rand(rng, ALNUM, 30)
    crc = zlib.crc32(body.encode()) & 0xFFFFFFFF
    chk = ""
    while crc:
        crc, r = divmod(crc, 62)
        chk = B62[r] + chk
    return "ghp_" + body + chk.rjust(6, "0")


def gen_stripe_test_key(rng, fake):
    # Stripe API docs: secret keys are sk_test_ / sk_live_ followed by alphanumerics. The docs'
    # own example keys have 24 characters after the prefix; the keys Stripe issues today, as
    # publicly observed, are "sk_test_51" + 97 alphanumerics (107 in all). The fake stands for
    # a real key, so it gets the form issued today, not the documentation's.
    return "sk_test_51" + _rand(rng, ALNUM, 97)


def gen_stripe_live_key(rng, fake):
    return "sk_live_" + _rand(rng, ALNUM, 24)


def gen_sendgrid_key(rng, fake):
    # SendGrid docs: "SG." + 22-character key id + "." + 43-character secret (69 in all),
    # base64url alphabet.
    return "SG." + _rand(rng, B64URL, 22) + "." + _rand(rng, B64URL, 43)


def gen_openai_project_key(rng, fake):
    # OpenAI publishes no format. Publicly observed project keys: sk-proj- then ~156 characters
    # of [A-Za-z0-9_-] with "T3BlbkFJ" (base64 of "OpenAI") in the middle.
    return "sk-proj-" + _rand(rng, B64URL, 74) + "T3BlbkFJ" + _rand(rng, B64URL, 74)


def gen_jwt(rng, fake):
    # RFC 7519: base64url(header).base64url(claims).base64url(signature); keep the fake's
    # algorithm, give it realistic claims and a signature of that algorithm's size.
    try:
        head = json.loads(base64.urlsafe_b64decode(fake.split(".")[0] + "=="))
    except ValueError:
        head = {"alg": "HS256", "typ": "JWT"}
    alg = head.get("alg", "HS256")
    sig_len = {"HS256": 32, "HS384": 48, "HS512": 64, "RS256": 256, "RS384": 256, "RS512": 256,
               "ES256": 64, "ES384": 96, "PS256": 256}.get(alg, 32)
    iat = 1767225600 + rng.randrange(0, 30_000_000)
    claims = {
        "iss": "https://auth." + _rand(rng, string.ascii_lowercase, 8) + ".com/",
        "sub": _rand(rng, ALNUM, 24),
        "aud": "api",
        "iat": iat,
        "exp": iat + 3600,
        "scope": "read write",
    }
    sig = bytes(rng.randrange(256) for _ in range(sig_len))
    return ".".join([
        b64url_nopad(json.dumps(head, separators=(",", ":")).encode()),
        b64url_nopad(json.dumps(claims, separators=(",", ":")).encode()),
        b64url_nopad(sig),
    ])


def gen_card(rng, fake):
    # ISO/IEC 7812: issuer prefix + account digits + Luhn check digit. Keep the fake's brand:
    # Visa 4, 16 digits; Mastercard 51-55, 16; American Express 34/37, 15.
    if fake.startswith("4"):
        return luhn_complete("4" + str(rng.randrange(10)), 16, rng)
    if fake[:2] in ("51", "52", "53", "54", "55"):
        return luhn_complete(str(rng.randrange(51, 56)), 16, rng)
    if fake[:2] in ("34", "37"):
        return luhn_complete(rng.choice(["34", "37"]), 15, rng)
    return luhn_complete(fake[:1], len(fake), rng)


def gen_iban_gb(rng, fake):
    # ISO 13616 / UK format: GB + 2 check digits (mod 97) + 4-letter bank code + 6-digit sort
    # code + 8-digit account number.
    bban = _rand(rng, string.ascii_uppercase, 4) + _rand(rng, string.digits, 14)
    rearranged = bban + "GB00"
    num = int("".join(str(int(c, 36)) for c in rearranged))
    check = 98 - num % 97
    return f"GB{check:02d}{bban}"


def gen_btc_p2pkh(rng, fake):
    # Bitcoin P2PKH: Base58Check(0x00 || 20-byte hash160), starts with 1.
    return b58check(b"\x00" + bytes(rng.randrange(256) for _ in range(20)))


def gen_btc_bech32(rng, fake):
    # BIP-173: segwit v0 P2WPKH, bc1q + bech32 of a 20-byte program.
    return bech32_segwit_v0("bc", bytes(rng.randrange(256) for _ in range(20)))


def gen_btc_wif(rng, fake):
    # Wallet Import Format: Base58Check(0x80 || 32-byte key), uncompressed -> starts with 5.
    key = bytes(rng.randrange(256) for _ in range(32))
    return b58check(b"\x80" + key)


GENERATORS = {
    "aws_access_key_id": gen_aws_access_key_id,
    "aws_secret_access_key": gen_aws_secret_access_key,
    "github_pat_classic": gen_github_pat_classic,
    "stripe_test_secret_key": gen_stripe_test_key,
    "stripe_live_secret_key": gen_stripe_live_key,
    "sendgrid_api_key": gen_sendgrid_key,
    "openai_project_key": gen_openai_project_key,
    "jwt": gen_jwt,
    "payment_card": gen_card,
    "iban": gen_iban_gb,
    "bitcoin_p2pkh_address": gen_btc_p2pkh,
    "bitcoin_bech32_address": gen_btc_bech32,
    "bitcoin_wif_private_key": gen_btc_wif,
}

# The fake values found in the corpus (commit 9cd7770) and what each stands for. JWTs are found
# by shape (JWT_RE) instead of listed.
FAKES = [
    ("AKIAIOSFODNN7EXAMPLE", "aws_access_key_id"),  # AWS docs example
    ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key"),  # AWS docs example
    ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXMPLEKEY", "aws_secret_access_key"),  # the same, one letter short (hex body case)
    ("ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij1234", "github_pat_classic"),  # 40 after ghp_, real has 36
    ("ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef01", "github_pat_classic"),  # 34 after ghp_
    ("ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef12", "github_pat_classic"),  # 34, split across two messages
    ("sk-test-4eC39HqLyjWDarjtT1zdp7dc", "stripe_test_secret_key"),  # Stripe docs key, '-' for '_'
    ("sk_live_FAKE_TEST_KEY_00000000000", "stripe_live_secret_key"),
    ("SG.FAKE_TEST_KEY_0000000000.FAKE_TEST_000000000000000000000000000000000000000", "sendgrid_api_key"),
    ("sk-proj-FAKE00000000000000000000000000000000000000TEST0000", "openai_project_key"),
    ("4111111111111111", "payment_card"),  # Visa test card
    ("5500000000000004", "payment_card"),  # Mastercard test card
    ("378282246310005", "payment_card"),  # Amex test card
    ("GB82WEST12345698765432", "iban"),  # the IBAN registry's example
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "bitcoin_p2pkh_address"),  # the genesis block address
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "bitcoin_bech32_address"),  # BIP-173 test vector
    ("5HueCGU8rMjxEXxiPuD5BDku4MkFqeZyd4dZ1jvhTVqvbTLvyTJ", "bitcoin_wif_private_key"),  # Bitcoin wiki example
]

JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

# Values split over several places of one case, so no single string holds the fake. Each entry:
# the pieces as they appear (in order), and what the joined value stands for. The real value is
# cut at the same lengths (the last piece takes any difference in length).
SPLITS = {
    # "part1: ghp_ABCDEFGHIJKLMN" / "part2: OPQRSTUVWXYZabcdef12": two messages
    "ws-dlp-cross-message-005": (["ghp_ABCDEFGHIJKLMN", "OPQRSTUVWXYZabcdef12"], "github_pat_classic"),
    # {"access_key": "AKIAIOSFODNN", "key_suffix": "7EXAMPLE"}
    "mcp-input-scattered-secret-005": (["AKIAIOSFODNN", "7EXAMPLE"], "aws_access_key_id"),
}

# A GitHub token cut into DNS labels: ghp-xxxx.yyyyzzzz.aaaabbbb.ccccdddd (placeholder letters).
# Replaced by a real token, '_' written '-' (not allowed in a host name), cut into 8-char labels.
HOST_CHUNKS = {
    "hostname-exfil-chunked-labels-004": ("ghp-xxxx.yyyyzzzz.aaaabbbb.ccccdddd", "github_pat_classic"),
}


def _pct(s: str, upper: bool) -> str:
    fmt = "%{:02X}" if upper else "%{:02x}"
    return "".join(fmt.format(b) for b in s.encode())


def encodings(value: str):
    """(name, encoded) for every encoding the corpus uses to hide a value."""
    raw = value.encode()
    b64 = base64.b64encode(raw).decode()
    out = [
        ("raw", value),
        ("base64", b64),
        ("base64url", base64.urlsafe_b64encode(raw).decode().rstrip("=")),
        ("hex", raw.hex()),
        ("HEX", raw.hex().upper()),
        ("hex-dashes", "-".join(f"{b:02x}" for b in raw)),
        ("pct", _pct(value, False)),
        ("PCT", _pct(value, True)),
        ("pct-pct", _pct(value, False).replace("%", "%25")),
        ("PCT-PCT", _pct(value, True).replace("%", "%25")),
        ("pct-base64", _pct(b64, False)),
        ("PCT-base64", _pct(b64, True)),
    ]
    return out


def encode_as(name: str, value: str) -> str:
    return dict(encodings(value))[name]


class Replacer:
    """Consistent fake -> real mapping for one run (same fake, same stand-in everywhere)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.mapping: dict[str, tuple[str, str]] = {}  # fake -> (type, real)

    def real_for(self, fake: str, kind: str) -> str:
        if fake not in self.mapping:
            self.mapping[fake] = (kind, GENERATORS[kind](self.rng, fake))
        return self.mapping[fake][1]

    # -- strings

    def _replace_in_string(self, s: str, changes: list, where: str) -> str:
        for fake, kind in FAKES:
            for enc_name, enc_fake in encodings(fake):
                if enc_fake and enc_fake in s:
                    real = self.real_for(fake, kind)
                    s = s.replace(enc_fake, encode_as(enc_name, real))
                    changes.append({"where": where, "type": kind, "encoding": enc_name, "fake": fake})
        for m in list(JWT_RE.finditer(s)):
            fake = m.group(0)
            if fake in [self.mapping[k][1] for k in self.mapping]:
                continue  # already a generated one
            real = self.real_for(fake, "jwt")
            s = s.replace(fake, real)
            changes.append({"where": where, "type": "jwt", "encoding": "raw", "fake": fake[:40] + "…"})
        return s

    def _walk(self, obj, changes, path=""):
        if isinstance(obj, str):
            return self._replace_in_string(obj, changes, path or "payload")
        if isinstance(obj, list):
            return [self._walk(v, changes, f"{path}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            return {k: self._walk(v, changes, f"{path}.{k}" if path else k) for k, v in obj.items()}
        return obj

    # -- websocket messages split into fragments

    def _frames(self, frames: list, changes: list) -> list:
        """Replaces fakes inside each message, joining its fragments (text and binary)."""
        out = copy.deepcopy(frames)
        i = 0
        while i < len(out):
            j = i
            while j < len(out) and out[j].get("fin", True) is False:
                j += 1
            group = out[i : j + 1]
            if all(f.get("encoding") != "base64" for f in group) and len(group) > 1:
                pieces = [f.get("payload", "") for f in group]
                joined = "".join(pieces)
                new = self._replace_in_string(joined, changes, f"frames[{i}..{j}] (joined)")
                if new != joined:
                    cuts, pos = [], 0
                    for p in pieces[:-1]:
                        pos += len(p)
                        cuts.append(pos)
                    parts, prev = [], 0
                    for c in cuts:
                        parts.append(new[prev:c])
                        prev = c
                    parts.append(new[prev:])
                    for f, p in zip(group, parts):
                        f["payload"] = p
            else:
                for k, f in enumerate(group):
                    p = f.get("payload", "")
                    if f.get("encoding") == "base64":
                        raw = base64.b64decode(p).decode("latin-1")
                        new = self._replace_in_string(raw, changes, f"frames[{i + k}] (decoded base64)")
                        if new != raw:
                            f["payload"] = base64.b64encode(new.encode("latin-1")).decode()
                    else:
                        f["payload"] = self._replace_in_string(p, changes, f"frames[{i + k}]")
            i = j + 1
        return out

    # -- a case

    def apply(self, case: dict) -> tuple[dict, list]:
        """Returns (new case, list of changes). Benign cases come back unchanged."""
        if case.get("expected_verdict") != "block":
            return case, []
        changes: list = []
        new = copy.deepcopy(case)
        payload = new["payload"]
        cid = case["id"]
        if cid in SPLITS:
            pieces, kind = SPLITS[cid]
            real = self.real_for("".join(pieces), kind)
            text = json.dumps(payload)
            pos = 0
            for n, piece in enumerate(pieces):
                start = sum(len(p) for p in pieces[:n])
                part = real[start:start + len(piece)] if n < len(pieces) - 1 else real[start:]
                idx = text.index(piece, pos)
                text = text[:idx] + part + text[idx + len(piece):]
                pos = idx + len(part)
            payload = json.loads(text)
            changes.append({"where": "split over " + str(len(pieces)) + " places", "type": kind, "encoding": "raw",
                            "fake": "".join(pieces)})
        elif cid in HOST_CHUNKS:
            chunked, kind = HOST_CHUNKS[cid]
            real = self.real_for(chunked, kind).replace("_", "-")
            labels = [real[:8]] + [real[k:k + 8] for k in range(8, len(real), 8)]
            payload = json.loads(json.dumps(payload).replace(chunked, ".".join(labels)))
            changes.append({"where": "url host labels", "type": kind, "encoding": "dns-labels", "fake": chunked})
        if "frames" in payload:
            payload["frames"] = self._frames(payload["frames"], changes)
            rest = {k: v for k, v in payload.items() if k != "frames"}
            payload.update(self._walk(rest, changes))
        else:
            payload = self._walk(payload, changes)
        new["payload"] = payload
        return new, changes


# Strings that betray a fake value still present after replacement (checked on attack cases).
FAKE_MARKERS = ["EXAMPLE", "FAKE", "ABCDEFGHIJ", "4eC39HqLyj", "xxxx", "4111111111111111",
                "GB82WEST", "1A1zP1eP5", "w508d6qe", "5HueCGU8", "fakesig", "dozjgNryP4J3",
                "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"]


def leftover_markers(case: dict) -> list[str]:
    """Fake markers still visible in the case, raw or after one URL/base64/hex decoding."""
    text = json.dumps(case["payload"], ensure_ascii=False)
    views = [text, urllib.parse.unquote(text), urllib.parse.unquote(urllib.parse.unquote(text))]
    for tok in re.findall(r"[A-Za-z0-9+/=]{16,}", text):
        try:
            views.append(base64.b64decode(tok + "=" * (-len(tok) % 4)).decode("latin-1"))
        except (binascii.Error, ValueError):
            pass
    for tok in re.findall(r"(?:[0-9a-fA-F]{2}-?){8,}", text):
        try:
            views.append(bytes.fromhex(tok.replace("-", "")).decode("latin-1"))
        except ValueError:
            pass
    joined = "\n".join(views)
    return sorted({m for m in FAKE_MARKERS if m in joined})
