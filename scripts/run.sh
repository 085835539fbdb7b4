#!/usr/bin/env bash
# The main job: builds Tessera (release) and runs it. With no arguments it pulls the default
# models (qwen2.5-0.5b, minilm), reads the sample texts in examples/data into ./tessera-data
# against the sample schema, prints the canonical triples with their sources, and serves the
# store at http://127.0.0.1:7878. Any arguments go to the `tessera` command instead.
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
  # What Tessera is for: sample texts read into canonical triples aligned to a sample schema,
  # each traceable to its source. Re-running replaces the same sources (same text, same IRI).
  SAMPLE=http://tessera.local/sample
  "$TESSERA" load --location tessera-data --file examples/data/sample-schema.ttl --graph "$SAMPLE/schema"
  "$TESSERA" ingest --location tessera-data examples/data/sample-texts.txt \
    --graph "$SAMPLE/facts" --schema "$SAMPLE/schema"
  echo "Canonical triples and their sources:"
  "$TESSERA" query --location tessera-data --format tsv --query "
    SELECT ?subject ?relation ?object ?text WHERE {
      GRAPH <$SAMPLE/facts> { ?s ?p ?o FILTER(?p != <http://www.w3.org/2000/01/rdf-schema#label>) }
      GRAPH ?source { ?s ?p ?o }
      GRAPH <urn:tessera:sources> { ?source <https://tessera.dev/ns#text> ?text }
      GRAPH <$SAMPLE/schema> { ?p <http://www.w3.org/2000/01/rdf-schema#label> ?relation }
      OPTIONAL { GRAPH <$SAMPLE/facts> { ?s <http://www.w3.org/2000/01/rdf-schema#label> ?sl } }
      OPTIONAL { GRAPH <$SAMPLE/facts> { ?o <http://www.w3.org/2000/01/rdf-schema#label> ?ol } }
      BIND(COALESCE(?sl, STR(?s)) AS ?subject)
      BIND(COALESCE(?ol, STR(?o)) AS ?object)
    } ORDER BY ?text ?subject"
  echo "Serving the store at http://127.0.0.1:7878/ (SPARQL at /sparql)."
fi
exec "$TESSERA" "$@"
