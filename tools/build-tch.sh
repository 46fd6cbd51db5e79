#!/usr/bin/env bash
# Builds the `cleft` binary with the libtorch backend next to flex (`--features tch`): devices
# `flex`, `tch` and `tch-cuda:N`. libtorch comes from a pip-installed torch==2.9.0 (tools/tch-env.sh).
# Run the result with the printed LD_LIBRARY_PATH, e.g. `cleft demo --device tch`.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/tch-env.sh
cargo build --release --locked -p cleft-cli --features tch
echo "built $CARGO_TARGET_DIR/release/cleft (flex + tch); run it with:"
echo "  LD_LIBRARY_PATH=$torch_dir/lib $CARGO_TARGET_DIR/release/cleft demo --device tch"
