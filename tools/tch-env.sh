# Sourced by tools/build-tch.sh, tools/test-tch.sh and tools/bench/gpu.sh: the libtorch that the
# `tch` feature links.
#
# burn-tch 0.22.1's torch-sys 0.22 expects libtorch 2.9.0: the libtorch inside a pip-installed
# torch==2.9.0 is used (PyPI's Linux wheel is a CUDA build: ~7 GB with its nvidia-* libraries, which
# also serves `tch-cuda:N` on a GPU machine). CLEFT_TORCH_VERSION picks another version (e.g. the
# one a GPU machine carries): torch-sys's version check is then bypassed, and whether its C++
# wrapper compiles against that libtorch is up to that version. The venv lives in
# ${CLEFT_TORCH_VENV:-~/.cache/cleft-torch[-VERSION]} and is created on first use. Exports LIBTORCH,
# LD_LIBRARY_PATH (the binaries need it at run time) and a target dir of its own, so the default
# build is not rebuilt by the other feature set.
torch_version="${CLEFT_TORCH_VERSION:-2.9.0}"
if [ "$torch_version" = 2.9.0 ]; then
  venv="${CLEFT_TORCH_VENV:-$HOME/.cache/cleft-torch}"
  export CARGO_TARGET_DIR="${CLEFT_TCH_TARGET_DIR:-$HOME/.cache/cleft-target-tch}"
else
  venv="${CLEFT_TORCH_VENV:-$HOME/.cache/cleft-torch-$torch_version}"
  export CARGO_TARGET_DIR="${CLEFT_TCH_TARGET_DIR:-$HOME/.cache/cleft-target-tch-$torch_version}"
  export LIBTORCH_BYPASS_VERSION_CHECK=1
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -c "import torch; assert torch.__version__.split('+')[0] == '$torch_version'" \
  2>/dev/null || "$venv/bin/pip" install --quiet "torch==$torch_version"
torch_dir="$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
export LIBTORCH="$torch_dir"
export LD_LIBRARY_PATH="$torch_dir/lib:${LD_LIBRARY_PATH:-}"
