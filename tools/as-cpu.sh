#!/usr/bin/env bash
# Runs a command with another CPU's cache geometry, so that the float32 rounding of that CPU can be
# reproduced on this one (Linux x86-64, root: it needs a private mount namespace).
#
#   tools/as-cpu.sh zen3 -- cargo test -p cleft-peft --test smollm2
#   tools/as-cpu.sh list
#
# Why this is the switch that matters: in a build without burn's `x86-v4` feature (cleft-cli turns
# it on by default: build with `--no-default-features --features flex` for this tool) the flex
# backend's matrix products go through the `gemm` crate 0.19, which dispatches at run time to its
# AVX2+FMA kernel on every x86-64 CPU with FMA (its AVX-512 kernel is compiled only with `x86-v4`),
# and sizes its cache blocks from /sys/devices/system/cpu/cpu*/cache. The K-block (`kc`, at least
# 512) follows the L1d size and associativity, so a K = 1536 product (SmolLM2's down_proj) is summed
# in 3 blocks of 512 on a Zen 3 (32 KiB, 8-way) and in 2 blocks of 768 on a Zen 5 (48 KiB, 12-way):
# the same kernel, a different summation order. Faking the cache files reproduces that exactly.
# Nothing in gemm 0.19 or std limits the *instruction set* dispatch (std's cpuid detection has no
# override), so the AVX-512 kernels of an `x86-v4` build cannot be switched off this way; the tests'
# tolerances cover them by the same noise model (see testing/src/lib.rs).
set -euo pipefail

# name: "L1d size ways | L2 size ways | L3 size ways" (per core for L1/L2; L3 shared by all CPUs)
profile() {
  case "$1" in
    zen3) echo "32K 8 512K 8 32768K 16" ;;          # AMD EPYC Milan (AVX2, no AVX-512)
    zen4) echo "32K 8 1024K 8 32768K 16" ;;         # AMD EPYC Genoa
    zen5) echo "48K 12 1024K 16 32768K 16" ;;       # AMD EPYC Turin
    skylake-sp) echo "32K 8 1024K 16 33792K 11" ;;  # Intel Xeon Skylake/Cascade Lake
    sapphire-rapids) echo "48K 12 2048K 16 107520K 15" ;;
    haswell) echo "32K 8 256K 8 30720K 20" ;;       # Intel Xeon v3 (AVX2, no AVX-512)
    *) return 1 ;;
  esac
}

if [ "${1:-}" = list ] || [ $# -lt 3 ] || [ "${2:-}" != -- ]; then
  echo "usage: tools/as-cpu.sh PROFILE -- COMMAND [ARGS...]" >&2
  echo "profiles (L1d size/ways, L2 size/ways, L3 size/ways):" >&2
  for p in zen3 zen4 zen5 skylake-sp sapphire-rapids haswell; do echo "  $p: $(profile $p)" >&2; done
  [ "${1:-}" = list ] && exit 0 || exit 2
fi
name=$1
shift 2
if ! geometry=$(profile "$name"); then
  echo "unknown profile '$name' (tools/as-cpu.sh list)" >&2
  exit 2
fi
read -r l1 l1w l2 l2w l3 l3w <<<"$geometry"
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
  echo "tools/as-cpu.sh needs root and unshare (a private mount namespace over /sys)" >&2
  exit 2
fi

real=/sys/devices/system/cpu
fake=$(mktemp -d)
trap 'rm -rf "$fake"' EXIT
for f in online possible present kernel_max; do
  [ -r "$real/$f" ] && cat "$real/$f" >"$fake/$f"
done
cpus=$(ls -d "$real"/cpu[0-9]* | xargs -n1 basename)
last=$(( $(echo "$cpus" | wc -l) - 1 ))
index() { # dir type level size ways shared
  mkdir -p "$1"
  echo "$2" >"$1/type"; echo "$3" >"$1/level"; echo "$4" >"$1/size"
  echo "$5" >"$1/ways_of_associativity"; echo 64 >"$1/coherency_line_size"
  echo "$6" >"$1/shared_cpu_list"
}
for cpu in $cpus; do
  n=${cpu#cpu}
  index "$fake/$cpu/cache/index0" Data 1 "$l1" "$l1w" "$n"
  index "$fake/$cpu/cache/index1" Instruction 1 32K 8 "$n"
  index "$fake/$cpu/cache/index2" Unified 2 "$l2" "$l2w" "$n"
  index "$fake/$cpu/cache/index3" Unified 3 "$l3" "$l3w" "0-$last"
done

echo "as-cpu: $name cache geometry (L1d $l1 ${l1w}-way, L2 $l2 ${l2w}-way, L3 $l3) over $real" >&2
unshare --mount --propagation private -- bash -c 'mount --bind "$0" /sys/devices/system/cpu && exec "$@"' "$fake" "$@"
