#!/usr/bin/env python3
"""Two builds of the scanner side by side in one run: `bench/scan --compare OLD NEW`.

OLD and NEW are `scan_throughput` example binaries (keep a copy of the old one before
rebuilding). Each round runs both, alternating, on the thread's CPU time (SCAN_CPU_TIME=1, mean
of SCAN_REPEAT scans), so that a load change on a shared machine moves both the same way; the
best of the rounds is kept per cell. Then both dump every finding (`--findings`: the corpora,
the corpora sown with every catalogue example, each example alone, both directions, two chunk
sizes) and the dumps must be byte-identical.
"""

import argparse
import hashlib
import os
import subprocess
import sys


def run_table(binary, repeat):
    env = dict(os.environ, SCAN_CPU_TIME="1", SCAN_REPEAT=str(repeat))
    out = subprocess.run([binary], env=env, capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[2].replace(".", "").isdigit():
            rows[cells[0]] = (float(cells[2]), float(cells[3]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=3)
    # CPU time comes in ticks of 4 ms: over 10 scans a tick moves a cell by about 3 %, over 30
    # by about 1 %.
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()

    best = {}
    for _ in range(args.rounds):
        for which, binary in (("old", args.old), ("new", args.new)):
            for corpus, (req, resp) in run_table(binary, args.repeat).items():
                cell = best.setdefault((which, corpus), [0.0, 0.0])
                cell[0] = max(cell[0], req)
                cell[1] = max(cell[1], resp)
    corpora = [c for (w, c) in best if w == "old"]
    print(
        f"scanner throughput, MB per CPU-second (one core), old = {args.old}, new = {args.new}; "
        f"{args.rounds} rounds alternating, mean of {args.repeat} scans each, best round kept"
    )
    print("| corpus | request old | request new | new/old | response old | response new | new/old |")
    print("|---|---|---|---|---|---|---|")
    for c in corpora:
        o, n = best[("old", c)], best[("new", c)]
        print(
            f"| {c} | {o[0]:.0f} | {n[0]:.0f} | {n[0] / o[0]:.2f} | {o[1]:.0f} | {n[1]:.0f} | {n[1] / o[1]:.2f} |"
        )

    digests = []
    for binary in (args.old, args.new):
        out = subprocess.run(
            [binary, "--findings"], capture_output=True, check=True
        ).stdout
        digests.append((hashlib.sha256(out).hexdigest()[:16], out.count(b"\n")))
    same = digests[0] == digests[1]
    print(
        f"findings: old {digests[0][1]} lines (sha256 {digests[0][0]}), "
        f"new {digests[1][1]} lines (sha256 {digests[1][0]}): {'identical' if same else 'DIFFERENT'}"
    )
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
