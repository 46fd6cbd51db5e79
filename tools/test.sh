#!/usr/bin/env bash
# The whole test suite: fetches the real offline assets (cached, checksummed), then runs every
# workspace test. This is the README's test command and what .ci/run calls. Extra arguments go to
# `cargo test`. `--no-fail-fast`: one failing test binary does not hide the others' results.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cleft-target}"
tools/cpu-info.sh
# The workspace links MPI (cleft-mpi) and starts `mpirun -np 2` in a test.
if ! command -v mpicc >/dev/null 2>&1 || ! command -v mpirun >/dev/null 2>&1; then
  echo "Open MPI is missing: apt-get install openmpi-bin libopenmpi-dev libclang-dev (.ci/run does)" >&2
  exit 1
fi
tools/fetch-assets.sh
cargo test --workspace --locked --no-fail-fast "$@"
