#!/usr/bin/env bash
# Python environment for tools/bench/reference.py (the PyTorch side of the cleft benchmark).
# Prints the path of a python that has the pinned torch / transformers / peft.
#
#   py="$(tools/bench/setup.sh)" && "$py" tools/bench/reference.py configs/bench/small.toml
#
# Reuses ${CLEFT_GOLDEN_VENV:-$HOME/.cache/cleft-golden-venv} (the golden-fixture venv,
# tools/README.md) when it already has exactly these versions; otherwise creates / completes
# ${CLEFT_BENCH_VENV:-$HOME/.cache/cleft-bench-venv} with pip. torch from PyPI is the CUDA build
# (several GB with its libraries); the benchmark runs it on the CPU. CI never runs this.
set -euo pipefail

TORCH=2.15.0
TRANSFORMERS=5.24.0
PEFT=0.21.2
PYTHON="${PYTHON:-python3}"
golden="${CLEFT_GOLDEN_VENV:-$HOME/.cache/cleft-golden-venv}"
venv="${CLEFT_BENCH_VENV:-$HOME/.cache/cleft-bench-venv}"

log() { echo "setup.sh: $*" >&2; }

# exit 0 when $1 has the pinned versions (torch's local tag, e.g. +cu132, is ignored) and tomllib
pinned() {
  [[ -x "$1" ]] || return 1
  "$1" - "$TORCH" "$TRANSFORMERS" "$PEFT" <<'EOF' 2>/dev/null
import sys, tomllib  # tomllib: Python >= 3.11
import torch, transformers, peft
want = sys.argv[1:]
have = [torch.__version__.split("+")[0], transformers.__version__, peft.__version__]
sys.exit(0 if have == want else 1)
EOF
}

for candidate in "$golden/bin/python" "$venv/bin/python"; do
  if pinned "$candidate"; then
    log "using $candidate (torch $TORCH, transformers $TRANSFORMERS, peft $PEFT)"
    echo "$candidate"
    exit 0
  fi
done

"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { log "$PYTHON is older than 3.11 (tomllib is needed); set PYTHON=python3.11 or newer"; exit 1; }
if [[ ! -x "$venv/bin/python" ]]; then
  log "creating $venv"
  "$PYTHON" -m venv "$venv"
fi
log "installing torch==$TORCH transformers==$TRANSFORMERS peft==$PEFT into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "torch==$TORCH" "transformers==$TRANSFORMERS" "peft==$PEFT" >&2
pinned "$venv/bin/python" || { log "$venv still lacks the pinned versions"; exit 1; }
echo "$venv/bin/python"
