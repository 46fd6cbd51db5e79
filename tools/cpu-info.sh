#!/usr/bin/env bash
# One line saying where a test run happens: CPU model, the SIMD level the kernels can dispatch to,
# and the cache geometry that sizes the GEMM blocks (both change float32 rounding; see
# tools/as-cpu.sh and testing/src/tolerance.rs).
set -uo pipefail
model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)
flags=" $(sed -n 's/^flags[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1) "
has() { [[ "$flags" == *" $1 "* ]]; }
if has avx512f && has avx512bw && has avx512vl && has avx512dq; then level="x86-64-v4 (AVX-512)"
elif has avx2 && has fma && has bmi2; then level="x86-64-v3 (AVX2+FMA, no AVX-512)"
elif has sse4_2; then level="x86-64-v2 (SSE4.2, no AVX2)"
else level="$(uname -m) baseline"; fi
cache() { # level type
  for d in /sys/devices/system/cpu/cpu0/cache/index*; do
    [ "$(cat "$d/level" 2>/dev/null)" = "$1" ] && [ "$(cat "$d/type" 2>/dev/null)" != Instruction ] &&
      echo "$(cat "$d/size")/$(cat "$d/ways_of_associativity")-way" && return
  done
  echo "?"
}
echo "CPU: ${model:-unknown} | $(nproc) CPUs | SIMD: $level | L1d $(cache 1), L2 $(cache 2), L3 $(cache 3)"
