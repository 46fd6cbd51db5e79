#!/usr/bin/env bash
# Installs the Debian packages the test suite needs when they are missing, so a fresh machine runs
# the README's test command with nothing installed by hand:
#   Open MPI (cleft-collectives' `mpi` feature links it; a test starts `mpirun -np 2`): openmpi-bin, libopenmpi-dev;
#   libclang (the mpi crate generates its bindings with bindgen): libclang-dev;
#   with --fuzz also g++ (libFuzzer, through libfuzzer-sys, is C++; tools/fuzz.sh).
# As root it runs apt-get itself; otherwise through sudo when sudo can be used here; otherwise it
# prints the one command to run and exits 1. Nothing is done when everything is present.
#
#   tools/system-deps.sh           # what tools/test.sh needs
#   tools/system-deps.sh --fuzz    # plus what .ci/run's fuzz step needs
set -euo pipefail

missing=()
command -v mpirun >/dev/null 2>&1 || missing+=(openmpi-bin)
command -v mpicc >/dev/null 2>&1 || missing+=(libopenmpi-dev)
# libclang itself (libclang.so / libclang-N.so), not libclang-cpp, which bindgen cannot use.
compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null || compgen -G '/usr/lib/*/libclang-[0-9]*.so*' >/dev/null ||
  missing+=(libclang-dev)
if [ "${1:-}" = --fuzz ]; then
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

command_line="apt-get install -y ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages (Debian names): ${missing[*]}; install their equivalents with" \
    "your package manager (Open MPI with its compiler wrappers, libclang), then re-run" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
  as_root=(sudo)
else
  echo "missing system packages: ${missing[*]}. Run, as root:" >&2
  echo "  apt-get update && $command_line" >&2
  exit 1
fi
echo "installing ${missing[*]} (${as_root[*]:-as root}: apt-get)"
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
