#!/usr/bin/env bash
# Regenerates the llama.cpp reference data used by the engine's tests:
#   tests/data/tokenizer/MODEL.json        token ids of every text in texts.json, from
#                                          `llama-tokenize` (with --no-parse-special, and without: special tokens parsed)
#   tests/data/llamacpp/MODEL-greedy.jsonl greedy streams and top-2 logits from greedy.cpp
# Usage: [ONLY_GREEDY=1] tests/data/llamacpp/regenerate.sh [MODEL...]   (default: smollm2 qwen2.5-0.5b)
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUILD=$(bench/llamacpp.sh)
TESSERA=${TESSERA:-target/debug/tessera}
g++ -O2 -std=c++17 -o "$BUILD/bin/tessera-greedy" tests/data/llamacpp/greedy.cpp \
  -I"$BUILD/../include" -I"$BUILD/../ggml/include" -L"$BUILD/bin" -lllama -Wl,-rpath,"$BUILD/bin"
ONLY_GREEDY=${ONLY_GREEDY:-0}
for NAME in "${@:-smollm2 qwen2.5-0.5b}"; do
  for M in $NAME; do
    MODEL=$("$TESSERA" models pull "$M")
    python3 - "$BUILD/bin" "$MODEL" "$M" "$ONLY_GREEDY" <<'PY'
import json, subprocess, sys
bindir, model, name, only_greedy = sys.argv[1:]
texts = json.load(open("tests/data/tokenizer/texts.json"))
def tok(text, special):
    args = [f"{bindir}/llama-tokenize", "-m", model, "--stdin", "--ids", "--log-disable", "--no-escape"]
    if not special:
        args.append("--no-parse-special")
    r = subprocess.run(args, input=text.encode(), capture_output=True, check=True)
    return json.loads(r.stdout.decode().strip().splitlines()[-1])
if only_greedy != "1":
    out = [{"plain": tok(t, False), "special": tok(t, True)} for t in texts]
    json.dump({"model": name, "llama_cpp_python": "0.3.36", "ids": out}, open(f"tests/data/tokenizer/{name}.json", "w"))
prompts = [
    "What is the capital of France?",
    "Write a haiku about databases.",
    "List three facts about the Moon.",
    "Alan Shepard was born on Nov 18, 1923. When was he born?",
    "Translate to French: good morning",
    "Explain what a knowledge graph is in one sentence.",
]
lines = []
for p in prompts:
    chat = f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n"
    lines.append(" ".join(map(str, tok(chat, True))))
r = subprocess.run([f"{bindir}/tessera-greedy", model, "48"], input="\n".join(lines).encode(), capture_output=True, check=True)
open(f"tests/data/llamacpp/{name}-greedy.jsonl", "w").write(r.stdout.decode())
PY
    echo "regenerated reference data for $M"
  done
done
