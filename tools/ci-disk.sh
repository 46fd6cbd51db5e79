#!/usr/bin/env bash
# Disk hygiene for CI, whose machine keeps the build caches between runs (a run once failed with
# "No space left on device" while linking): prints free space and the size of every cleft cache,
# removes what no CI build reuses (incremental-compilation state: CI builds with
# CARGO_INCREMENTAL=0), and when free space is still below CLEFT_CI_MIN_FREE_GB (default 30, about
# what a cold CI run writes) removes caches in order of cost to rebuild, cheapest first, the main
# target dir last (a cold build then, not a failed one).
#
#   tools/ci-disk.sh          # before the builds
#   tools/ci-disk.sh report   # sizes only
set -euo pipefail
cache="${CLEFT_CACHE_ROOT:-$HOME/.cache}"
main_target="${CARGO_TARGET_DIR:-$cache/cleft-target}"
min_free_gb="${CLEFT_CI_MIN_FREE_GB:-30}"

free_gb() {
  mkdir -p "$cache"
  df -P -B1G "$cache" | awk 'NR == 2 { print $4 }'
}

report() {
  echo "disk: $(free_gb) GB free on the filesystem of $cache"
  for dir in "$cache"/cleft-* "$main_target" "$HOME/.cargo/registry" "$cache/pip"; do
    if [ -d "$dir" ]; then du -sh "$dir" 2>/dev/null || true; fi
  done | sort -u -k2
}

report
if [ "${1:-}" = report ]; then exit 0; fi

# Incremental state of every cleft target dir (debug and release, host and cross targets).
find "$cache" -maxdepth 5 -type d -name incremental -path '*cleft-target*' -prune \
  -exec rm -rf {} + 2>/dev/null || true

# Cheapest to rebuild first: pip's download cache, the fuzz engine (7 min), the AVX2-only and tch
# targets of local scripts (CI builds those in the main target dir or not at all), then the main
# target dir itself.
for victim in "$cache/pip" "$cache/cleft-target-fuzz" "$cache/cleft-target-avx2" \
  "$cache/cleft-target-tch" "$main_target"; do
  free=$(free_gb)
  if [ "$free" -ge "$min_free_gb" ]; then break; fi
  if [ -d "$victim" ]; then
    echo "disk: only $free GB free (< $min_free_gb): removing $victim"
    rm -rf "$victim"
  fi
done
free=$(free_gb)
echo "disk: $free GB free after cleaning"
if [ "$free" -lt "$min_free_gb" ]; then
  echo "disk: still below $min_free_gb GB with every cleft cache removed; the builds may fail" >&2
fi
