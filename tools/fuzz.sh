#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that reads a user's file (fuzz/src/lib.rs), with
# libFuzzer on the pinned stable compiler.
#
#   tools/fuzz.sh build                       # the engine binaries (fuzz/engine)
#   tools/fuzz.sh run TARGET [SECONDS] [-- libFuzzer options…]
#   tools/fuzz.sh ci [SECONDS]                # every target for SECONDS (default 60): .ci/run
#   tools/fuzz.sh long [SECONDS] [JOBS]       # every target for SECONDS (default 3600), JOBS workers
#   tools/fuzz.sh list
#
# Why libFuzzer through `libfuzzer-sys` and not cargo-fuzz / bolero / AFL: no nightly toolchain
# can be downloaded here, and cargo-fuzz's default address sanitizer needs `-Z sanitizer`. The
# coverage instrumentation libFuzzer needs is rustc's stable `-C passes=sancov-module` plus LLVM's
# sanitizer-coverage options (what cargo-fuzz passes with `--sanitizer none`), and libFuzzer itself
# is compiled by libfuzzer-sys from its bundled C++ sources (g++). No sanitizer: Rust code is
# memory-safe except `unsafe` blocks (the parsers have none), so the bugs this finds are panics,
# aborts, hangs (`-timeout`) and runaway memory (`-rss_limit_mb`). AFL++ would need its own C
# build and a fork server per target for no gain here.
#
# The working corpus grows under ${CLEFT_FUZZ_DIR:-~/.cache/cleft-fuzz}/TARGET, seeded from the
# committed fuzz/corpus/TARGET (real files: fixtures and offline assets). A crash is written to
# ${CLEFT_FUZZ_DIR}/artifacts/TARGET/; after fixing it, copy it to fixtures/fuzz/TARGET/ with a
# NAME.expect holding part of the error it must now give: the normal suite replays it
# (fuzz/tests/replay.rs). Each run appends a line to ${CLEFT_FUZZ_DIR}/runs.tsv
# (date, target, seconds, executions, corpus entries, coverage, outcome).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
triple="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="${CLEFT_FUZZ_TARGET_DIR:-$HOME/.cache/cleft-target-fuzz}"
work="${CLEFT_FUZZ_DIR:-$HOME/.cache/cleft-fuzz}"
targets=(gguf safetensors peft_adapter config csv image)

build() {
  # `--target` keeps the instrumentation off build scripts and proc macros.
  RUSTFLAGS="-C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=4 \
-C llvm-args=-sanitizer-coverage-inline-8bit-counters -C llvm-args=-sanitizer-coverage-pc-table \
-C llvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -C debug-assertions \
-C overflow-checks" \
    cargo build --release --locked --manifest-path fuzz/engine/Cargo.toml --target "$triple" --bins
}

binary() { echo "$CARGO_TARGET_DIR/$triple/release/$1"; }

# run TARGET SECONDS [JOBS] [libFuzzer options…]
run_one() {
  local target="$1" seconds="$2" jobs="${3:-1}"
  shift 3 || shift $#
  local corpus="$work/$target" artifacts="$work/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  local log="$work/$target.log"
  local parallel=()
  [ "$jobs" -gt 1 ] && parallel=(-fork="$jobs" -ignore_crashes=0)
  local status=0
  # The real offline assets as extra seeds where tools/fetch-assets.sh put them (not committed;
  # libFuzzer cuts inputs at -max_len: the RG1 radiographs and the SmolLM2 GGUF become their
  # first megabyte, i.e. real headers).
  local assets="${CLEFT_ASSETS:-$HOME/.cache/cleft-assets}" extra=()
  case "$target" in
    image) [ -d "$assets/dicom" ] && extra=("$assets/dicom") ;;
    gguf) [ -d "$assets/smollm2" ] && extra=("$assets/smollm2") ;;
  esac
  # -rss_limit_mb: a parser must stay far below this on inputs of at most -max_len bytes.
  "$(binary "$target")" "$corpus" "fuzz/corpus/$target" "${extra[@]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -max_len=1048576 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "${parallel[@]}" "$@" >"$log" 2>&1 \
    || status=$?
  local execs cov entries
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)"
  entries="$(find "$corpus" -type f | wc -l)"
  local outcome=ok
  if [ "$status" != 0 ]; then
    outcome="CRASH (exit $status): $(grep -m1 -E 'panicked|ERROR: libFuzzer|Test unit written' "$log" || true)"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$target" "$seconds" \
    "${execs:-?}" "$entries" "${cov:-?}" "$outcome" >>"$work/runs.tsv"
  printf '%-13s %6ss  %10s execs  corpus %5s  cov %6s  %s\n' "$target" "$seconds" \
    "${execs:-?}" "$entries" "${cov:-?}" "$outcome"
  if [ "$status" != 0 ]; then
    tail -40 "$log" >&2
    ls -t "$artifacts" | head -3 | sed "s|^|  artifact: $artifacts/|" >&2
  fi
  return "$status"
}

all() {
  local seconds="$1" jobs="$2" status=0
  build
  for target in "${targets[@]}"; do
    run_one "$target" "$seconds" "$jobs" || status=1
  done
  return $status
}

case "${1:-}" in
  build) build ;;
  list) printf '%s\n' "${targets[@]}" ;;
  run)
    [ $# -ge 2 ] || { echo "usage: tools/fuzz.sh run TARGET [SECONDS] [-- options]" >&2; exit 2; }
    target="$2"; seconds="${3:-60}"; shift $(( $# >= 3 ? 3 : 2 ))
    [ "${1:-}" = -- ] && shift
    build && run_one "$target" "$seconds" 1 "$@"
    ;;
  ci) all "${2:-60}" 1 ;;
  long) all "${2:-3600}" "${3:-1}" ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
