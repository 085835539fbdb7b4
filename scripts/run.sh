#!/usr/bin/env bash
# The main job: builds Tessera (release) and runs it; with no arguments it serves the store in
# ./tessera-data at http://127.0.0.1:7878. Any arguments go to the `tessera` command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
if [[ $# -eq 0 ]]; then set -- serve --location tessera-data; fi
exec cargo run --release --bin tessera -- "$@"
