#!/usr/bin/env bash
# LLM inference speed, Tessera vs llama.cpp, same GGUF, same threads, same run:
#   bench/llm.sh [MODEL...]            (default: smollm2 qwen2.5-0.5b; threads 1 and 2)
# Prints a Markdown table of prefill (pp512) and decode (tg128) tokens/s and their ratios.
# TESSERA=path/to/tessera overrides the binary (default: release build).
# TESSERA_KERNELS=avx2 compares the AVX2 paths: Tessera's AVX2 kernels against llama.cpp built
# for AVX2 + FMA only (LLAMACPP_ISA=avx2), on a CPU that also has AVX-512.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-"1 2"}
REPS=${REPS:-3}
if [[ -z "${TESSERA:-}" ]]; then
  cargo build --release --bin tessera --example bsbm >&2
  TESSERA="${CARGO_TARGET_DIR:-target}/release/tessera"
fi
if [[ "${TESSERA_KERNELS:-}" == avx2 ]]; then export LLAMACPP_ISA=avx2; fi
export LLAMACPP_TARGETS=${LLAMACPP_TARGETS:-llama-bench}
LLAMA=$(bench/llamacpp.sh)/bin
echo "| model | threads | Tessera pp512 tok/s | llama.cpp pp512 tok/s | ratio | Tessera tg128 tok/s | llama.cpp tg128 tok/s | ratio | Tessera peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|"
for M in ${@:-smollm2 qwen2.5-0.5b}; do
  GGUF=$("$TESSERA" models pull "$M")
  for T in $THREADS; do
    OURS=$("$TESSERA" bench llm --model "$GGUF" --threads "$T" --reps "$REPS" --json)
    THEIRS=$("$LLAMA/llama-bench" -m "$GGUF" -t "$T" -p 512 -n 128 -r "$REPS" -o json 2>/dev/null)
    python3 - "$M" "$T" "$OURS" "$THEIRS" <<'PY'
import json, sys
m, t, ours, theirs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
pp = next(r["avg_ts"] for r in theirs if r["n_prompt"] > 0 and r["n_gen"] == 0)
tg = next(r["avg_ts"] for r in theirs if r["n_gen"] > 0 and r["n_prompt"] == 0)
o_pp, o_tg = ours["prefill_tok_s"], ours["decode_tok_s"]
print(f"| {m} | {t} | {o_pp:.1f} | {pp:.1f} | {o_pp/pp:.2f}x | {o_tg:.1f} | {tg:.1f} | {o_tg/tg:.2f}x | {ours['peak_rss_bytes']/2**20:.0f} |")
PY
  done
done
