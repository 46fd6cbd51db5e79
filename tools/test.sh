#!/usr/bin/env bash
# The whole test suite: installs the Debian packages it needs when they are missing
# (tools/system-deps.sh: Open MPI, libclang), fetches the real offline assets (cached,
# checksummed), then runs every workspace test. This is the README's test command and what .ci/run
# calls. Extra arguments go to `cargo test`. `--no-fail-fast`: one failing test binary does not
# hide the others' results.
#
# One build serves the README's two commands: the tests are built in the release profile and in
# cargo's target directory (`target/`, or $CARGO_TARGET_DIR when set), where
# `cargo run --release -p cleft-cli -- demo` built the same dependency graph with the same
# features, so a test run after the demo compiles only the workspace's own crates and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/cpu-info.sh
# The workspace links MPI (cleft-collectives, feature `mpi`) and starts `mpirun -np 2` in a test.
tools/system-deps.sh
tools/fetch-assets.sh
cargo test --release --workspace --locked --no-fail-fast "$@"
