#!/usr/bin/env python3
"""Summary of a paired run: requests per proxy CPU-second of two airlock variants, run after run
(the two alternate), with medians and the ratio. bench/policy: airlock vs airlock+policy (issue
5's target: under 5 % fewer requests per CPU-second); bench/recording: airlock-norec (no store,
no admin server) vs airlock (issue 12's target: under 10 % fewer).

Usage: policy_report.py RESULTS.json [BASE VARIANT BASE_LABEL VARIANT_LABEL]"""
import json
import statistics
import sys

res = json.load(open(sys.argv[1]))
BASE, VARIANT, BASE_LABEL, VARIANT_LABEL = (sys.argv[2:6] if len(sys.argv) >= 6 else
                                            ("airlock", "airlock+policy", "airlock (no policy)", "airlock + 50 rules"))
runs = {}
for key, p in res["proxies"].items():
    name = key.partition(" #")[0]
    for sc, r in p.get("scenarios", {}).items():
        if r.get("ok") and r.get("proxy_cpu_s_per_1k"):
            runs.setdefault(sc, {}).setdefault(name, []).append(1000 / r["proxy_cpu_s_per_1k"])
for sc, by in runs.items():
    a, b = by.get(BASE, []), by.get(VARIANT, [])
    if not a or not b:
        continue
    print(f"{sc}: requests per proxy CPU-second, run by run")
    width = max(len(BASE_LABEL), len(VARIANT_LABEL)) + 1
    print(f"  {BASE_LABEL + ':':<{width}} {', '.join(f'{x:,.0f}' for x in a)}")
    print(f"  {VARIANT_LABEL + ':':<{width}} {', '.join(f'{x:,.0f}' for x in b)}")
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"  medians {ma:,.0f} vs {mb:,.0f}: {VARIANT} / {BASE} = {mb / ma:.3f} "
          f"({(1 - mb / ma) * 100:.1f} % fewer requests per CPU-second)")
