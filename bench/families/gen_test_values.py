#!/usr/bin/env python3
"""Derives the well-known *test* private keys that crates/scan/src/families/testvalues.rs lists
(published keys that agents paste into test code and docs; reporting them would be noise).

- Hardhat / Anvil / Foundry default accounts: BIP-39 "test test … junk", m/44'/60'/0'/0/i, i < 20.
- BIP-32 test vectors 1 and 2: every private key on their published chains.
- The Bitcoin wiki's WIF example key (0C28FCA3…).

Pure Python (secp256k1 in a few lines); prints Rust array lines. Run:
    python3 bench/families/gen_test_values.py
"""
import hashlib
import hmac

P = 2**256 - 2**32 - 977
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
G = (0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
     0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8)


def add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0] and (a[1] + b[1]) % P == 0:
        return None
    if a == b:
        lam = 3 * a[0] * a[0] * pow(2 * a[1], P - 2, P) % P
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], P - 2, P) % P
    x = (lam * lam - a[0] - b[0]) % P
    return (x, (lam * (a[0] - x) - a[1]) % P)


def mul(k, pt=G):
    r = None
    while k:
        if k & 1:
            r = add(r, pt)
        pt = add(pt, pt)
        k >>= 1
    return r


def ser_pub(k):
    x, y = mul(k)
    return bytes([2 + (y & 1)]) + x.to_bytes(32, "big")


def master(seed):
    i = hmac.new(b"Bitcoin seed", seed, hashlib.sha512).digest()
    return int.from_bytes(i[:32], "big"), i[32:]


def child(k, c, idx):
    if idx >= 0x80000000:
        data = b"\0" + k.to_bytes(32, "big") + idx.to_bytes(4, "big")
    else:
        data = ser_pub(k) + idx.to_bytes(4, "big")
    i = hmac.new(c, data, hashlib.sha512).digest()
    return (int.from_bytes(i[:32], "big") + k) % N, i[32:]


def b58check(payload):
    a = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = a[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def xprv(k, c, depth=0, fp=b"\0" * 4, idx=0):
    return b58check(bytes.fromhex("0488ADE4") + bytes([depth]) + fp + idx.to_bytes(4, "big") + c
                    + b"\0" + k.to_bytes(32, "big"))


def path(seed, steps):
    k, c = master(seed)
    keys = [k]
    for s in steps:
        k, c = child(k, c, s)
        keys.append(k)
    return keys


H = 0x80000000
keys = {}
# Hardhat / Anvil default accounts.
mn = "test test test test test test test test test test test junk"
seed = hashlib.pbkdf2_hmac("sha512", mn.encode(), b"mnemonic", 2048)
for i in range(20):
    k = path(seed, [44 + H, 60 + H, 0 + H, 0, i])[-1]
    keys[k] = f"Hardhat/Anvil account {i}"
assert min(k for k, v in keys.items() if v.endswith(" 0")) or True
acct0 = [k for k, v in keys.items() if v == "Hardhat/Anvil account 0"][0]
assert acct0.to_bytes(32, "big").hex() == "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
# BIP-32 test vector 1.
s1 = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
m1, c1 = master(s1)
assert xprv(m1, c1) == ("xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmP"
                        "GJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi")
for j, k in enumerate(path(s1, [0 + H, 1, 2 + H, 2, 1000000000])):
    keys.setdefault(k, f"BIP-32 test vector 1, depth {j}")
# BIP-32 test vector 2.
s2 = bytes.fromhex("fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c99969390"
                   "8d8a8784817e7b7875726f6c696663605d5a5754514e4b484542")
for j, k in enumerate(path(s2, [0, 2147483647 + H, 1, 2147483646 + H, 2])):
    keys.setdefault(k, f"BIP-32 test vector 2, depth {j}")
# Bitcoin wiki WIF example.
wiki = 0x0C28FCA386C7A227600B2FE50B7CAE11EC86D3BF1FBE471BE89827E19D72AA1D
assert b58check(b"\x80" + wiki.to_bytes(32, "big")) == "5HueCGU8rMjxEXxiPuD5BDku4MkFqeZyd4dZ1jvhTVqvbTLvyTJ"
keys.setdefault(wiki, "Bitcoin wiki WIF example")

for k, what in keys.items():
    h = k.to_bytes(32, "big").hex()
    print(f'    // {what}\n    hex32("{h}"),')
