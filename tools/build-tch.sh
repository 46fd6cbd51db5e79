#!/usr/bin/env bash
# Builds the `cleft` binary with the libtorch backend (`--features tch`).
#
# burn-tch 0.22.1 links the libtorch inside a pip-installed torch==2.9.0 (a CUDA build, ~7 GB with
# its libraries). The venv lives in ${CLEFT_TORCH_VENV:-$HOME/.cache/cleft-torch}. Run the result
# with the printed LD_LIBRARY_PATH, e.g. `cleft demo --device tch` or `--device tch-cuda:0`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CLEFT_TORCH_VENV:-$HOME/.cache/cleft-torch}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -c 'import torch; assert torch.__version__.startswith("2.9.0")' 2>/dev/null \
  || "$venv/bin/pip" install --quiet torch==2.9.0
torch_dir="$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
export LIBTORCH="$torch_dir"
export LD_LIBRARY_PATH="$torch_dir/lib:${LD_LIBRARY_PATH:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cleft-target-tch}"
cargo build --release -p cleft-cli --no-default-features --features tch
echo "built $CARGO_TARGET_DIR/release/cleft (tch); run it with:"
echo "  LD_LIBRARY_PATH=$torch_dir/lib $CARGO_TARGET_DIR/release/cleft demo --device tch"
