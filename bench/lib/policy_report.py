#!/usr/bin/env python3
"""Summary of bench/policy: requests per proxy CPU-second with and without the 50-rule
policy, run after run (the two alternate), with medians and the ratio (issue 5's target:
under 5 % fewer requests per CPU-second)."""
import json
import statistics
import sys

res = json.load(open(sys.argv[1]))
runs = {}
for key, p in res["proxies"].items():
    name = key.partition(" #")[0]
    for sc, r in p.get("scenarios", {}).items():
        if r.get("ok") and r.get("proxy_cpu_s_per_1k"):
            runs.setdefault(sc, {}).setdefault(name, []).append(1000 / r["proxy_cpu_s_per_1k"])
for sc, by in runs.items():
    a, b = by.get("airlock", []), by.get("airlock+policy", [])
    if not a or not b:
        continue
    print(f"{sc}: requests per proxy CPU-second, run by run")
    print(f"  airlock (no policy): {', '.join(f'{x:,.0f}' for x in a)}")
    print(f"  airlock + 50 rules:  {', '.join(f'{x:,.0f}' for x in b)}")
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"  medians {ma:,.0f} vs {mb:,.0f}: policy on / off = {mb / ma:.3f} "
          f"({(1 - mb / ma) * 100:.1f} % fewer requests per CPU-second)")
