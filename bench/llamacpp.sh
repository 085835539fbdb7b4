#!/usr/bin/env bash
# Builds llama.cpp (CPU) from the source shipped in the `llama-cpp-python` PyPI package, the
# reference for the tokenizer golden ids, the greedy agreement data and `llama-bench`.
# Prints the build directory (binaries in DIR/bin). Cached under $TESSERA_HOME/llamacpp.
set -euo pipefail
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
HOME_DIR=${TESSERA_HOME:-$HOME/.cache/tessera}
ROOT="$HOME_DIR/llamacpp/$VERSION"
SRC="$ROOT/llama_cpp_python-$VERSION/vendor/llama.cpp"
BUILD="$SRC/build"
if [[ -x "$BUILD/bin/llama-bench" && -x "$BUILD/bin/llama-tokenize" ]]; then
  echo "$BUILD"; exit 0
fi
mkdir -p "$ROOT"
if [[ ! -d "$SRC" ]]; then
  URL=$(python3 - "$VERSION" <<'PY'
import json, sys, urllib.request
v = sys.argv[1]
d = json.load(urllib.request.urlopen(f"https://pypi.org/pypi/llama-cpp-python/{v}/json"))
print(next(u["url"] for u in d["urls"] if u["packagetype"] == "sdist"))
PY
)
  echo "llamacpp.sh: downloading $URL" >&2
  curl -sSfL "$URL" | tar xz -C "$ROOT"
fi
if [[ ! -x "$ROOT/venv/bin/cmake" ]]; then
  python3 -m venv "$ROOT/venv"
  "$ROOT/venv/bin/pip" install -q cmake ninja >&2
fi
export PATH="$ROOT/venv/bin:$PATH"
# Native flags: the reference should run at its best on the machine that measures it.
cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=ON >&2
ninja -C "$BUILD" llama-tokenize llama-bench >&2
echo "$BUILD"
