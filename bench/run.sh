#!/usr/bin/env bash
# Side-by-side benchmark of Tessera and `oxigraph serve` / `oxigraph load` on the same
# BSBM-shaped data, the same query mix and the same machine, in one run.
#
#   bench/run.sh
#
# Environment: PRODUCTS (default 3000, about 1M triples), MIXES1 / MIXES8 (query mixes per
# client with 1 and 8 clients), OXIGRAPH (the oxigraph binary; default: bench/oxigraph.sh
# fetches the official 0.5.13 release binary). Prints one JSON line per measurement and a
# table of ratios (Tessera / oxigraph; above 1.0 means Tessera is faster).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
products=${PRODUCTS:-3000}
mixes1=${MIXES1:-100}
mixes8=${MIXES8:-30}
oxigraph=$("$root/bench/oxigraph.sh")

(cd "$root" && cargo build --release --quiet --bin tessera --example bsbm)
tessera=$target/release/tessera
bsbm=$target/release/examples/bsbm
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
results=$work/results.jsonl

"$bsbm" generate --products "$products" --out "$work/data.nt"
triples=$(wc -l < "$work/data.nt")

timed_load() { # name command...
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s.%N)
  python3 -c "import json,sys; s=float(sys.argv[2])-float(sys.argv[1]); print(json.dumps({'system':sys.argv[3],'load_seconds':round(s,3),'triples':int(sys.argv[4]),'triples_per_s':round(int(sys.argv[4])/s)}))" \
    "$start" "$end" "$name" "$triples" | tee -a "$results"
}
timed_load tessera "$tessera" load --location "$work/tessera" --file "$work/data.nt"
timed_load oxigraph "$oxigraph" load --location "$work/oxigraph" --file "$work/data.nt"

RUST_LOG=warn "$tessera" serve --no-text --location "$work/tessera" --bind 127.0.0.1:7901 --timeout-s 0 & pids+=($!)
"$oxigraph" serve --location "$work/oxigraph" --bind 127.0.0.1:7902 >/dev/null 2>&1 & pids+=($!)
for port in 7901 7902; do
  for _ in $(seq 300); do curl -fs -o /dev/null "http://127.0.0.1:$port/query?query=ASK%7B%7D" && break; sleep 0.1; done
done

drive() { # system port clients mixes
  "$bsbm" run --endpoint "http://127.0.0.1:$2/query" --products "$products" --clients "$3" --mixes "$4" --seed 7 \
    | python3 -c "import json,sys; r=json.loads(sys.stdin.read()); r['system']=sys.argv[1]; print(json.dumps(r))" "$1" | tee -a "$results"
}
# Warm-up (same queries for both), then measure; the order alternates between rounds.
drive tessera 7901 1 2 >/dev/null; drive oxigraph 7902 1 2 >/dev/null
drive tessera 7901 1 "$mixes1"; drive oxigraph 7902 1 "$mixes1"
drive oxigraph 7902 8 "$mixes8"; drive tessera 7901 8 "$mixes8"

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
load = {r['system']: r for r in rows if 'load_seconds' in r}
print()
print(f"data: {load['tessera']['triples']} triples")
print("| measure | Tessera | oxigraph | ratio (Tessera/oxigraph) |")
print("|---|---|---|---|")
t, o = load['tessera']['triples_per_s'], load['oxigraph']['triples_per_s']
print(f"| bulk load, triples/s | {t:,} | {o:,} | {t/o:.2f}x |")
for clients in (1, 8):
    q = {r['system']: r for r in rows if r.get('clients') == clients}
    t, o = q['tessera'], q['oxigraph']
    print(f"| {clients} client(s): queries/s | {t['qps']:.1f} | {o['qps']:.1f} | {t['qps']/o['qps']:.2f}x |")
    print(f"| {clients} client(s): p50 latency, ms | {t['p50_ms']:.2f} | {o['p50_ms']:.2f} | {o['p50_ms']/t['p50_ms']:.2f}x |")
    print(f"| {clients} client(s): p99 latency, ms | {t['p99_ms']:.2f} | {o['p99_ms']:.2f} | {o['p99_ms']/t['p99_ms']:.2f}x |")
    if t['errors'] or o['errors']:
        print(f"| {clients} client(s): errors | {t['errors']} | {o['errors']} | |")
PY
