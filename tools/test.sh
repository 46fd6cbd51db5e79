#!/usr/bin/env bash
# The whole test suite: fetches the real offline assets (cached, checksummed), then runs every
# workspace test. This is the README's test command and what .ci/run calls. Extra arguments go to
# `cargo test`. `--no-fail-fast`: one failing test binary does not hide the others' results.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cleft-target}"
tools/cpu-info.sh
tools/fetch-assets.sh
cargo test --workspace --locked --no-fail-fast "$@"
