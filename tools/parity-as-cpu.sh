#!/usr/bin/env bash
# Runs the parity tests (every comparison with a PyTorch golden) under other CPUs' GEMM blocking,
# via tools/as-cpu.sh: what an AVX2-only Zen 3 or an Intel Xeon computes, reproduced on this
# machine. Needs root (a private mount namespace) and the assets (tools/fetch-assets.sh).
#
#   tools/parity-as-cpu.sh                 # zen3 and skylake-sp
#   tools/parity-as-cpu.sh zen3 haswell    # chosen profiles (tools/as-cpu.sh list)
set -euo pipefail
cd "$(dirname "$0")/.."
# Without the AVX-512 GEMM kernels (cleft-cli's default `x86-v4`): they cannot be hidden from
# run-time detection, and the CPUs reproduced here run the AVX2 kernel. Own target dir, so the
# README build is not overwritten.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cleft-target-avx2}"
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(zen3 skylake-sp)
# One workspace-wide invocation, so plugin dylibs and the tests link one libcleft_dylib.so.
# The release profile, as tools/test.sh builds the suite.
parity=(--release --workspace --locked --no-fail-fast --no-default-features --features cleft-cli/flex
  --test smollm2 --test smollm2_f64 --test hf_parity --test minilm --test tiny_gpt2
  --test dinov2_s --test hf_vit --test golden --test families --test gemma3_270m)
# Build once outside the namespace (the build itself does not depend on the cache geometry).
cargo test "${parity[@]}" --no-run
status=0
for profile in "${profiles[@]}"; do
  echo "== parity tests with the $profile cache geometry"
  tools/as-cpu.sh "$profile" -- cargo test "${parity[@]}" || status=1
done
exit $status
