#!/usr/bin/env bash
# Drives a live Tessera server with real clients: rdflib's SPARQLUpdateStore and SPARQLWrapper
# (PyPI, pinned in requirements.txt) and Comunica 4 (npm, pinned in package.json).
#
#   tests/clients/run.sh [path/to/tessera]
#
# The Python virtual environment lives under $TESSERA_HOME (default ~/.cache/tessera).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-}
if [[ -z $bin ]]; then
  # Built the way `cargo test` builds it, so RocksDB is not compiled a second time.
  (cd "$root" && cargo test --quiet --workspace --no-run)
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/tessera"
fi
port=${TESSERA_CLIENTS_PORT:-7880}
venv="${TESSERA_HOME:-$HOME/.cache/tessera}/clients-venv"

[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
(cd "$here" && npm install --no-audit --no-fund --silent)

work=$(mktemp -d)
RUST_LOG=warn "$bin" serve --no-text --location "$work/db" --bind "127.0.0.1:$port" &
pid=$!
trap 'kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done

status=0
"$venv/bin/python" "$here/python_clients.py" "http://127.0.0.1:$port" || status=1
(cd "$here" && node comunica.mjs "http://127.0.0.1:$port") || status=1
exit $status
