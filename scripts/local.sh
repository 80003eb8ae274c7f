#!/usr/bin/env bash
# Builds Agora and runs an all-in-one local cluster: one master and N agents on loopback
# (default 2), until Ctrl-C. Extra arguments go to `agora local` (e.g. --agents 3).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
exec ./target/release/agora local "$@"
