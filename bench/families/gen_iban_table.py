#!/usr/bin/env python3
"""Prints the IBAN_FORMATS table of crates/scan/src/families/iban.rs from the SWIFT IBAN registry
as shipped by the PyPI package `schwifty` (iban_registry/generated.json plus its non-aspirational
overwrites). Run: python3 bench/families/gen_iban_table.py [path/to/schwifty.whl]
(without an argument it runs `pip download --no-deps schwifty` into a temporary folder)."""
import glob
import json
import re
import subprocess
import sys
import tempfile
import zipfile

if len(sys.argv) > 1:
    wheel = sys.argv[1]
else:
    tmp = tempfile.mkdtemp()
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "schwifty", "-d", tmp],
                   check=True)
    wheel = glob.glob(f"{tmp}/schwifty-*.whl")[0]
z = zipfile.ZipFile(wheel)
reg = json.loads(z.read("schwifty/iban_registry/generated.json"))
for k, v in json.loads(z.read("schwifty/iban_registry/overwrite.json")).items():
    if v.get("aspirational"):
        continue
    reg.setdefault(k, {}).update({kk: vv for kk, vv in v.items() if kk in ("bban_spec", "iban_length")})
print(f"// {len(reg)} countries, from {wheel.rsplit('/', 1)[-1]}")
for cc in sorted(reg):
    spec = reg[cc]["bban_spec"]
    assert re.fullmatch(r"(\d+![nac])+", spec), spec
    n = sum(int(x) for x in re.findall(r"(\d+)!", spec))
    assert n + 4 == reg[cc]["iban_length"], cc
    print(f'    (*b"{cc}", {reg[cc]["iban_length"]}, "{spec.replace("!", "")}"),')
