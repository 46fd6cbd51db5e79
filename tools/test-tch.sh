#!/usr/bin/env bash
# The tch backend's tests (cleft-cli/tests/tch.rs): a flex checkpoint resumed on libtorch gives
# flex's losses within the stated f32 noise bound, and tch trains the tiny config from scratch.
# Release profile: the same build as tools/build-tch.sh (one build serves both). Extra arguments
# go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/tch-env.sh
cargo test --release --locked -p cleft-cli --features tch --test tch "$@" -- --nocapture
