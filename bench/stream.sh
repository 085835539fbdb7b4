#!/usr/bin/env bash
# Streaming check, side by side: a SELECT of one million rows (a 1000 x 1000 cross product)
# over HTTP; reports time to first byte, total time, bytes, and the server's peak resident
# memory while it answers, for Tessera and for `oxigraph serve`.
#
#   bench/stream.sh        (OXIGRAPH: the oxigraph binary, default: bench/oxigraph.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
oxigraph=$("$root/bench/oxigraph.sh")
# The same target set as bench/run.sh, so RocksDB is compiled once for both.
(cd "$root" && cargo build --release --quiet --bin tessera --example bsbm)
tessera=$target/release/tessera
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

for i in $(seq 1000); do echo "<http://e/s$i> <http://e/p> \"value $i\" ."; done > "$work/data.nt"
"$tessera" load --location "$work/tessera" --file "$work/data.nt" 2>/dev/null
[[ -x $oxigraph ]] && "$oxigraph" load --location "$work/oxigraph" --file "$work/data.nt" >/dev/null 2>&1

measure() { # name port pid
  local rss_file=$work/rss.$1
  ( peak=0; while kill -0 "$3" 2>/dev/null; do
      r=$(awk '/VmRSS/ {print $2}' "/proc/$3/status" 2>/dev/null || echo 0)
      (( r > peak )) && peak=$r && echo "$peak" > "$rss_file"
      sleep 0.05
    done ) &
  local sampler=$!
  local before
  before=$(awk '/VmRSS/ {print $2}' "/proc/$3/status")
  curl -s -o /dev/null -H 'Accept: text/tab-separated-values' \
    --data-urlencode 'query=SELECT * WHERE { ?a ?p ?b . ?c ?q ?d }' \
    -w "{\"system\":\"$1\",\"ttfb_s\":%{time_starttransfer},\"total_s\":%{time_total},\"bytes\":%{size_download}" \
    "http://127.0.0.1:$2/query"
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  echo ",\"rss_before_kib\":$before,\"rss_peak_kib\":$(cat "$rss_file" 2>/dev/null || echo "$before")}"
}

RUST_LOG=warn "$tessera" serve --no-text --location "$work/tessera" --bind 127.0.0.1:7911 --timeout-s 0 & pids+=($!)
tpid=$!
for _ in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:7911/ && break; sleep 0.1; done
measure tessera 7911 "$tpid"
if [[ -x $oxigraph ]]; then
  "$oxigraph" serve --location "$work/oxigraph" --bind 127.0.0.1:7912 >/dev/null 2>&1 & pids+=($!)
  opid=$!
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:7912/query?query=ASK%7B%7D" && break; sleep 0.1; done
  measure oxigraph 7912 "$opid"
fi
