#!/usr/bin/env bash
# The side-by-side benchmark on a GPU machine without internet: cleft's libtorch backend on
# `tch-cuda:0` against PyTorch + transformers + PEFT on `cuda`, the small size, within 8 minutes.
#
# Two halves, because such a machine carries PyTorch but no Rust toolchain and cannot download:
#
#   tools/bench/gpu.sh bundle [TORCH_VERSION]
#       Here (pip reachable): builds cleft with `--features tch` against the libtorch of
#       pip's torch==TORCH_VERSION (default 2.9.0, what burn-tch 0.22.1 expects; give the GPU
#       machine's own version, since the binary loads that machine's libtorch: see
#       tools/tch-env.sh), and packs the stripped binary, libcleft_dylib.so and Rust's libstd
#       into .gpu-bundle/cleft-tch.tar.xz (~13 MB; ignored by git) with the torch version.
#   tools/bench/gpu.sh run [--cpu] [--out DIR] [compare.py options...]
#       There, in a copy of this repository with .gpu-bundle/ beside it: unpacks the bundle,
#       refuses a torch version other than the bundle's, checks that `tch-cuda:0` works, then runs
#       tools/bench/compare.py (3 rounds, 3 warm-up + 10 timed steps, train / zeroshot / text) with
#       the machine's python3 (torch, transformers, peft). `--cpu` runs the same on the CPU (tch
#       against torch on cpu): a dry run of the mechanics on a machine without a GPU. `--out DIR`
#       writes gpu-bench.md and gpu-bench.json there.
#
# On a GPU host without network access: copy the repository and .gpu-bundle/ there and run
# `tools/bench/gpu.sh run --out DIR`.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
bundle_dir="$root/.gpu-bundle"

bundle() {
  export CLEFT_TORCH_VERSION="${1:-2.9.0}"
  # shellcheck source=../tch-env.sh
  source tools/tch-env.sh
  cargo build --release --locked -p cleft-cli --features tch
  local stage
  stage="$(mktemp -d)"
  strip -o "$stage/cleft" "$CARGO_TARGET_DIR/release/cleft"
  strip -o "$stage/libcleft_dylib.so" "$CARGO_TARGET_DIR/release/libcleft_dylib.so"
  local std
  std="$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/lib"
  cp "$std"/libstd-*.so "$stage/"
  echo "$CLEFT_TORCH_VERSION" > "$stage/torch-version"
  mkdir -p "$bundle_dir"
  tar -C "$stage" -cJf "$bundle_dir/cleft-tch.tar.xz.tmp" .
  mv "$bundle_dir/cleft-tch.tar.xz.tmp" "$bundle_dir/cleft-tch.tar.xz"
  rm -rf "$stage"
  echo "bundle: $(du -h "$bundle_dir/cleft-tch.tar.xz" | cut -f1) for torch $CLEFT_TORCH_VERSION in $bundle_dir"
}

run() {
  local device=tch-cuda:0 torch_device=cuda out=""
  local extra=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --cpu) device=tch; torch_device=cpu ;;
      --out) out="$2"; shift ;;
      *) extra+=("$1") ;;
    esac
    shift
  done
  local py="${PYTHON:-python3}"
  [ -f "$bundle_dir/cleft-tch.tar.xz" ] || {
    echo "no $bundle_dir/cleft-tch.tar.xz: run \`tools/bench/gpu.sh bundle VERSION\` where pip works" >&2
    exit 2
  }
  local bin
  bin="$(mktemp -d)"
  tar -C "$bin" -xJf "$bundle_dir/cleft-tch.tar.xz"
  local built have
  built="$(cat "$bin/torch-version")"
  have="$("$py" -c 'import torch; print(torch.__version__.split("+")[0])')"
  if [ "$built" != "$have" ]; then
    echo "the bundle was built against torch $built but $py has torch $have: rebuild it with" \
      "\`tools/bench/gpu.sh bundle $have\`" >&2
    exit 2
  fi
  local torch_lib
  torch_lib="$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
  export LD_LIBRARY_PATH="$torch_lib:$bin:${LD_LIBRARY_PATH:-}"
  "$bin/cleft" devices
  "$py" -c "import torch; d = torch.device('$torch_device'); print('PyTorch', torch.__version__, 'on', torch.cuda.get_device_name(d) if d.type == 'cuda' else 'cpu')"
  [ -n "$out" ] && mkdir -p "$out"
  local json=()
  [ -n "$out" ] && json=(--json-out "$out/gpu-bench.json")
  # 8 minutes at most: whatever finished is printed by compare.py as it goes.
  timeout 480 "$py" tools/bench/compare.py --python "$py" --cleft "$bin/cleft" \
    --device "$device" --torch-device "$torch_device" --sizes small=configs/bench/small.toml \
    --what train zeroshot text --rounds 3 --steps 10 --warmup 3 "${json[@]}" "${extra[@]}" \
    | tee "${out:-$bin}/gpu-bench.md"
}

case "${1:-}" in
  bundle) shift; bundle "$@" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,23p' "$0" >&2; exit 2 ;;
esac
