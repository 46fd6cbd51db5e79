#!/usr/bin/env python3
"""Side-by-side benchmark: cleft (`cleft bench`) against PyTorch (`tools/bench/reference.py`) on
the same machine, in the same run, alternating sides, several rounds after each side's own
warm-up steps; prints medians and the cleft / PyTorch ratios.

    py="$(tools/bench/setup.sh)"                      # the PyTorch side's venv (pip, on demand)
    cargo build --release -p cleft-cli
    tools/bench/compare.py --python "$py" --cleft target/release/cleft \
        --sizes tiny=configs/tiny/cleft.toml small=configs/bench/small.toml --rounds 3

Standard library only. Each measurement is a fresh process (so peak RSS is per workload); both
sides read their results back to the host every step (loss, gradient norm), as the reference
training loop does. Exit status 1 when a side fails or the parameter counts differ.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

RATE = {"train": "samples_per_sec", "zeroshot": "images_per_sec", "text": "texts_per_sec"}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_line() -> str:
    try:
        out = subprocess.run([os.path.join(ROOT, "tools", "cpu-info.sh")], capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"


def run_json(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    lines = [l for l in proc.stdout.strip().splitlines() if l.startswith("{")]
    if not lines:
        raise SystemExit(f"no JSON line from: {' '.join(cmd)}\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", required=True, help="python with torch, transformers, peft")
    ap.add_argument("--cleft", required=True, help="the cleft binary (release build)")
    ap.add_argument("--sizes", nargs="+", default=["tiny=configs/tiny/cleft.toml",
                                                   "small=configs/bench/small.toml"])
    ap.add_argument("--what", nargs="+", default=["train", "zeroshot", "text"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json-out", help="write every measurement here")
    ap.add_argument("--device", default="flex",
                    help="cleft's device (`cleft bench --device`), e.g. tch for a build from tools/build-tch.sh")
    ap.add_argument("--torch-device", default="cpu",
                    help="PyTorch's device (`reference.py --device`), e.g. cuda next to --device tch-cuda:0")
    a = ap.parse_args()

    rows, records, status = [], [], 0
    for size in a.sizes:
        name, config = size.split("=", 1)
        for what in a.what:
            common = ["--what", what, "--steps", str(a.steps), "--warmup", str(a.warmup)]
            sides = {
                "cleft": [a.cleft, "bench", "--config", config, "--device", a.device] + common,
                "pytorch": [a.python, os.path.join("tools", "bench", "reference.py"), config, "--json",
                            "--device", a.torch_device] + common,
            }
            results = {"cleft": [], "pytorch": []}
            for round_ in range(a.rounds):
                # Alternate which side goes first, so drift of the machine hits both alike.
                order = ["cleft", "pytorch"] if round_ % 2 == 0 else ["pytorch", "cleft"]
                for side in order:
                    result = run_json(sides[side])
                    result["side"], result["size"], result["round"] = side, name, round_
                    results[side].append(result)
                    records.append(result)
            med = {s: statistics.median(r[RATE[what]] for r in results[s]) for s in results}
            rss = {s: statistics.median(r["peak_rss_mib"] for r in results[s]) for s in results}
            params = {s: results[s][0].get("params_total") for s in results}
            if params["cleft"] != params["pytorch"]:
                print(f"{name} {what}: parameter counts differ: {params}", file=sys.stderr)
                status = 1
            rows.append((name, what, med["cleft"], med["pytorch"], med["cleft"] / med["pytorch"],
                         rss["cleft"], rss["pytorch"], rss["cleft"] / rss["pytorch"]))
            print(f"{name:6} {what:8} cleft {med['cleft']:9.2f}  pytorch {med['pytorch']:9.2f}  "
                  f"ratio {med['cleft'] / med['pytorch']:.2f}x  peak RSS ratio {rss['cleft'] / rss['pytorch']:.2f}",
                  flush=True)

    print()
    print(cpu_line())
    print(f"{a.rounds} rounds, alternating; each: {a.warmup} warm-up + {a.steps} timed steps; medians; "
          f"cleft device {a.device}, PyTorch device {a.torch_device} (peak RSS: host memory)")
    print()
    print("| size | workload | cleft | PyTorch | cleft / PyTorch | peak RSS cleft / PyTorch (MiB) | RSS ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, what, c, p, ratio, rc, rp, rr in rows:
        unit = RATE[what].replace("_per_sec", "/s")
        print(f"| {name} | {what} | {c:.2f} {unit} | {p:.2f} {unit} | {ratio:.2f}x | {rc:.0f} / {rp:.0f} | {rr:.2f} |")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(records, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())
