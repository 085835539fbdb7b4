#!/usr/bin/env bash
# The main job: builds Tessera (release) and runs it; with no arguments it serves the store in
# ./tessera-data at http://127.0.0.1:7878 after pulling the default models (qwen2.5-0.5b, minilm). Any arguments go to the `tessera` command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
DEFAULT=0
if [[ $# -eq 0 ]]; then DEFAULT=1; set -- serve --location tessera-data; fi
# The same build as bench/run.sh (the example pulls in the dev-dependencies, which changes the
# features of RocksDB's build tools): RocksDB is then compiled once for both.
cargo build --release --bin tessera --example bsbm
TESSERA="${CARGO_TARGET_DIR:-target}/release/tessera"
if [[ $DEFAULT -eq 1 ]]; then
  # The embedded defaults: the default LLM and the embedder, fetched once into the model cache.
  "$TESSERA" models pull qwen2.5-0.5b
  "$TESSERA" models pull minilm
fi
exec "$TESSERA" "$@"
