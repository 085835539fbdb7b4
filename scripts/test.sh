#!/usr/bin/env bash
# The test command (CI runs exactly this): formatting, lints, the Rust tests (unit, HTTP,
# W3C SPARQL 1.1 query/update suites over HTTP, CLI, doctests), then the W3C protocol,
# service-description and graph-store manifests with the independent rdf-test-suite runner
# and the real-client checks (rdflib, SPARQLWrapper, Comunica, Prometheus's parser) against a
# live server, and the console in headless Chromium. The remote-backend test reads through
# llama.cpp's llama-server, built first (once; cached under $TESSERA_HOME/llamacpp).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
rustup component add rustfmt clippy >/dev/null 2>&1 || true
target=${CARGO_TARGET_DIR:-$PWD/target}

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== llama-server for the remote-backend test (bench/llamacpp.sh; cached after the first build)"
TESSERA_LLAMA_SERVER="$(bench/llamacpp.sh)/bin/llama-server"
export TESSERA_LLAMA_SERVER
echo "== cargo test --workspace"
cargo test --workspace
# `cargo test` has built target/debug/tessera. (A separate `cargo build` would resolve the
# build dependencies' features without the dev-dependencies and compile RocksDB once more.)
echo "== W3C protocol / service description / graph store manifests (rdf-test-suite)"
tests/protocol-suite/run.sh "$target/debug/tessera"
echo "== real clients (rdflib, SPARQLWrapper, Comunica)"
tests/clients/run.sh "$target/debug/tessera"
echo "== console in headless Chromium (read a text, table, graph, query, schema, drop source)"
tests/console/run.sh "$target/debug/tessera"
echo "== all checks passed"
