#!/usr/bin/env bash
# The console in a real browser: starts `tessera serve` on an on-disk store holding the sample
# schema, with the small model (smollm2), and drives the page at / in headless Chromium
# (Debian's `chromium`, through puppeteer-core and the DevTools protocol): read a text, see its
# triples in the table and the graph, run a query, expand a node, the schema, drop the source.
# Screenshots are kept in $TESSERA_CONSOLE_SHOTS (default $CARGO_TARGET_DIR/console-screenshots).
#
#   tests/console/run.sh [path/to/tessera]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=${1:-$target/debug/tessera}
port=${TESSERA_CONSOLE_PORT:-7881}
shots=${TESSERA_CONSOLE_SHOTS:-$target/console-screenshots}
export CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[[ -n $CHROMIUM ]] || { echo "error: chromium not found (scripts/deps.sh installs it)" >&2; exit 1; }

(cd "$here" && npm install --no-audit --no-fund --silent)

work=$(mktemp -d)
"$bin" load --location "$work/db" --file "$root/examples/data/sample-schema.ttl" >/dev/null 2>&1
RUST_LOG=warn "$bin" serve --location "$work/db" --bind "127.0.0.1:$port" --model smollm2 --threads 2 &
pid=$!
trap 'kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
# Ready once the model is loaded (pulled first on a fresh machine).
for _ in $(seq 600); do curl -fs -o /dev/null "http://127.0.0.1:$port/ready" && break; sleep 0.5; done
curl -fs -o /dev/null "http://127.0.0.1:$port/ready" || { echo "error: the server did not become ready" >&2; exit 1; }

rm -rf "$shots"
(cd "$here" && node browser.mjs "http://127.0.0.1:$port" "$shots")
