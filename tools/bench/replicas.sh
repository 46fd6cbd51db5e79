#!/usr/bin/env bash
# Data-parallel scaling of `cleft train --replicas N` on this machine: trains a config for a few
# steps with each replica count (the same global batch: strong scaling) and prints, per count, the
# median step time, samples/s, the speed-up over 1 replica and the communication share (rank 0's
# `comm_s`: host staging + collective operations, over the step time), plus the gradient volume
# summed per step. Steps after the first are timed (the first pays allocation).
#
#   tools/bench/replicas.sh [--config configs/bench/small.toml] [--steps 6] [--replicas "1 2"]
#                           [--device flex] [--bin ~/.cache/cleft-target/release/cleft]
set -euo pipefail
cd "$(dirname "$0")/../.."
config=configs/bench/small.toml
steps=6
replicas="1 2"
device=flex
bin="${CLEFT_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/cleft-target}/release/cleft}"
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --replicas) replicas="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "no cleft binary at $bin (cargo build --release -p cleft-cli, or --bin)" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# 20 test images: the zero-shot evaluation after training is not what is measured.
sed -e "/^\[train\]/a steps = $steps" -e '/^steps *=/d' \
  -e "/^\[data\]/a test_size = 20" -e '/^test_size *=/d' "$config" > "$work/config.toml"
trainable=$("$bin" params "$work/config.toml" | awk '$1 == "total" { gsub(",", "", $3); print $3 }')
for n in $replicas; do
  echo "== $n replica(s): $config, $steps steps, device $device" >&2
  "$bin" train --config "$work/config.toml" --output "$work/run-$n" --device "$device" \
    --replicas "$n" > "$work/log-$n" 2>&1 || { cat "$work/log-$n" >&2; exit 1; }
done
python3 - "$work" "$trainable" "$config" $replicas <<'EOF'
import json, statistics, sys, tomllib
work, trainable, config, counts = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
train = tomllib.load(open(f"{work}/config.toml", "rb"))["train"]
samples = train["batch_size"] * train.get("grad_accumulation", 1)
print(f"{config}: global batch {samples}; {trainable:,} trainable parameters = "
      f"{4 * trainable / 2**20:.1f} MiB of gradients summed per step")
print("| replicas | step (s) | samples/s | speed-up | comm (s) | comm share |")
print("|---|---|---|---|---|---|")
base = None
for n in counts:
    steps = [json.loads(line) for line in open(f"{work}/run-{n}/metrics.jsonl")][1:]
    comm_of = lambda s: s.get("comm_s", s.get("extra", {}).get("comm_s", 0.0))
    step = statistics.median(samples / s["samples_per_sec"] for s in steps)
    comm = statistics.median(comm_of(s) for s in steps)
    base = base or step
    print(f"| {n} | {step:.3f} | {samples / step:.2f} | {base / step:.2f}x | {comm:.3f} | {comm / step:.0%} |")
EOF
