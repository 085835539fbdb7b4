#!/usr/bin/env bash
# The main job: builds Tessera (release) and runs it; with no arguments it serves the store in
# ./tessera-data at http://127.0.0.1:7878. Any arguments go to the `tessera` command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
if [[ $# -eq 0 ]]; then set -- serve --location tessera-data; fi
# The same build as bench/run.sh (the example pulls in the dev-dependencies, which changes the
# features of RocksDB's build tools): RocksDB is then compiled once for both.
cargo build --release --bin tessera --example bsbm
exec "${CARGO_TARGET_DIR:-target}/release/tessera" "$@"
