#!/usr/bin/env bash
# Runs the W3C SPARQL 1.1 protocol, service description and graph store protocol manifests
# against a live Tessera server with the independent npm runner rdf-test-suite 2.8.0.
#
#   tests/protocol-suite/run.sh [path/to/tessera]
#
# The W3C data comes from TESSERA_W3C_DIR (default: ../shared/data/w3c-sparql11 beside the
# checkout). Each manifest gets a fresh server on an empty on-disk store. Exits non-zero if any
# test fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
w3c=
for candidate in "${TESSERA_W3C_DIR:-}" "$root/../shared/data/w3c-sparql11" /work/shared/data/w3c-sparql11; do
  [[ -n $candidate && -f $candidate/protocol/manifest.ttl ]] && { w3c=$(cd "$candidate" && pwd); break; }
done
[[ -n $w3c ]] || { echo "the W3C SPARQL 1.1 suite was not found: set TESSERA_W3C_DIR" >&2; exit 1; }
bin=${1:-}
if [[ -z $bin ]]; then
  # Built the way `cargo test` builds it, so RocksDB is not compiled a second time.
  (cd "$root" && cargo test --quiet --workspace --no-run)
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/tessera"
fi
port=${TESSERA_SUITE_PORT:-7879}
published=https://w3c.github.io/rdf-tests/sparql/sparql11/

(cd "$here" && npm install --no-audit --no-fund --silent)

work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

start_server() {
  [[ -n $pid ]] && { kill "$pid"; wait "$pid" 2>/dev/null || true; }
  rm -rf "$work/db"
  RUST_LOG=warn "$bin" serve --no-text --location "$work/db" --bind "127.0.0.1:$port" &
  pid=$!
  for _ in $(seq 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/" && return 0
    sleep 0.1
  done
  echo "the server did not start" >&2
  exit 1
}

status=0
run_manifest() { # name manifest-path input-json
  start_server
  echo "== $1"
  if ! (cd "$here" && npx rdf-test-suite engine.js "$published$2" \
      -m "$published~$w3c/" -i "$3" -d 10000 | tee "$work/out.txt"); then
    status=1
  fi
}

run_manifest protocol protocol/manifest.ttl "{\"protocolEndpoint\":\"http://127.0.0.1:$port/sparql\"}"
run_manifest "service description" service-description/manifest.ttl "{\"serviceDescriptionEndpoint\":\"http://127.0.0.1:$port/sparql\"}"
run_manifest "graph store protocol" graph-store-protocol/manifest.ttl "{\"graphStoreEndpoint\":\"http://127.0.0.1:$port/store\"}"
exit $status
