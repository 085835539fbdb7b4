#!/usr/bin/env bash
# INSERT TEXT cost as the store grows: the same texts read, in the same run with the same
# model, into a target graph with no entities and into one holding ENTITIES (default 200,000)
# labelled entities, indexed once ahead with `tessera index`. Each `tessera ingest` is a fresh
# process, so its time includes opening the store and its entity index (the first text after
# open pays whatever loading costs). Also times reopening the large store (`tessera query`).
#
#   bench/text-scale.sh            (ENTITIES, MODEL, THREADS, ROUNDS to override; TESSERA=path
#                                   runs a binary already built instead of building release)
#
# Prints one JSON line per measurement and the ratio large / empty (at most 1.25 is the bar).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
n=${ENTITIES:-200000}
model=${MODEL:-qwen2.5-0.5b}
threads=${THREADS:-2}
rounds=${ROUNDS:-2}
if [[ -n "${TESSERA:-}" ]]; then
  tessera=$TESSERA
else
  # The same build as scripts/run.sh and bench/run.sh (RocksDB compiled once for all three).
  (cd "$root" && cargo build --release --quiet --bin tessera --example bsbm)
  tessera=$target/release/tessera
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
G=http://tessera.local/sample/facts
S=http://tessera.local/sample/schema
texts=$root/examples/data/sample-texts.txt
"$tessera" models pull "$model" >/dev/null
"$tessera" models pull minilm >/dev/null

python3 - "$n" "$work/entities.nt" <<'PY'
import random, sys
n, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(7)
syll = ["ka", "lo", "mi", "ren", "tor", "sa", "vel", "dun", "ari", "po", "zen", "qui", "bra", "hol"]
word = lambda: "".join(rng.choice(syll) for _ in range(rng.randint(2, 4))).capitalize()
with open(out, "w") as f:
    for i in range(n):
        e = f"<http://tessera.local/entity/E{i}>"
        f.write(f'{e} <http://www.w3.org/2000/01/rdf-schema#label> "{word()} {word()}" .\n')
        if i % 3 == 0:
            f.write(f"{e} <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://tessera.local/sample/Thing{i % 7}> .\n")
PY
for store in empty large; do
  "$tessera" load --location "$work/$store" --file "$root/examples/data/sample-schema.ttl" --graph "$S" >/dev/null 2>&1
done
"$tessera" load --location "$work/large" --file "$work/entities.nt" --graph "$G" >/dev/null 2>&1
start=$(date +%s.%N)
"$tessera" index --location "$work/large" --graph "$G" --schema "$S" --model "$model" --threads "$threads" >&2
end=$(date +%s.%N)
python3 -c "import json,sys; print(json.dumps({'measure':'index ahead','entities':int(sys.argv[3]),'seconds':round(float(sys.argv[2])-float(sys.argv[1]),1)}))" "$start" "$end" "$n"

ingest() { # store -> seconds as `tessera ingest` reports them
  "$tessera" ingest --location "$work/$1" "$texts" --graph "$G" --schema "$S" \
    --model "$model" --threads "$threads" 2>/dev/null | sed -n 's/.*; \([0-9.]*\) s (.*/\1/p'
}
declare -A best=([empty]=1e9 [large]=1e9)
for ((r = 1; r <= rounds; r++)); do
  for store in empty large; do
    s=$(ingest "$store")
    echo "{\"measure\":\"ingest\",\"store\":\"$store\",\"round\":$r,\"seconds\":$s}"
    best[$store]=$(python3 -c "print(min(float('$s'), float('${best[$store]}')))")
  done
done
start=$(date +%s.%N)
"$tessera" query --location "$work/large" --query "ASK { ?s ?p ?o }" >/dev/null
end=$(date +%s.%N)
python3 -c "import json,sys; print(json.dumps({'measure':'reopen large store and query','seconds':round(float(sys.argv[2])-float(sys.argv[1]),2)}))" "$start" "$end"
python3 -c "import json,sys; e,l=float(sys.argv[1]),float(sys.argv[2]); print(json.dumps({'measure':'ratio large/empty (best of rounds)','empty_s':e,'large_s':l,'ratio':round(l/e,3),'entities':int(sys.argv[3]),'model':sys.argv[4],'cpu':open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].split('\n')[0].strip()}))" "${best[empty]}" "${best[large]}" "$n" "$model"
