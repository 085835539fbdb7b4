#!/usr/bin/env bash
# Builds llama.cpp (CPU) from the source shipped in the `llama-cpp-python` PyPI package, the
# reference for the tokenizer golden ids, the greedy agreement data, `llama-bench`, and the
# `llama-server` that the remote-backend tests and benchmarks read through.
# Prints the build directory (binaries in DIR/bin). Cached under $TESSERA_HOME/llamacpp.
# LLAMACPP_TARGETS overrides what is built (default: llama-tokenize llama-bench llama-server).
set -euo pipefail
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
# SHA-256 of the sdist of 0.3.36; another version must bring its own.
SHA256=${LLAMA_CPP_PYTHON_SHA256:-832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e}
TARGETS=${LLAMACPP_TARGETS:-llama-tokenize llama-bench llama-server}
HOME_DIR=${TESSERA_HOME:-$HOME/.cache/tessera}
ROOT="$HOME_DIR/llamacpp/$VERSION"
SRC="$ROOT/llama_cpp_python-$VERSION/vendor/llama.cpp"
# LLAMACPP_ISA=avx2 builds for AVX2 + FMA only (no AVX-512), the peer of Tessera's AVX2
# kernels (`TESSERA_KERNELS=avx2`) on a machine that has more.
ISA=${LLAMACPP_ISA:-native}
# The build directory names its flags: a cached build with other flags is not reused.
if [[ $ISA == avx2 ]]; then BUILD="$SRC/build-avx2"; else BUILD="$SRC/build-noamx"; fi
missing=0
for t in $TARGETS; do [[ -x "$BUILD/bin/$t" ]] || missing=1; done
if [[ $missing == 0 ]]; then echo "$BUILD"; exit 0; fi
mkdir -p "$ROOT"
if [[ ! -x "$ROOT/venv/bin/cmake" ]]; then
  python3 -m venv "$ROOT/venv"
  "$ROOT/venv/bin/pip" install -q cmake ninja >&2
fi
if [[ ! -d "$SRC" ]]; then
  # The registry's JSON API is not always reachable; pip's simple index is.
  DL=$(mktemp -d)
  echo "llamacpp.sh: fetching llama-cpp-python $VERSION source with pip" >&2
  "$ROOT/venv/bin/pip" download -q --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$VERSION" -d "$DL" >&2
  TARBALL=$(ls "$DL"/llama_cpp_python-*.tar.gz)
  echo "$SHA256  $TARBALL" | sha256sum -c --quiet - >&2 \
    || { echo "llamacpp.sh: SHA-256 mismatch for $TARBALL" >&2; exit 1; }
  tar xzf "$TARBALL" -C "$ROOT"
  rm -rf "$DL"
fi
export PATH="$ROOT/venv/bin:$PATH"
# Native flags: the reference should run at its best on the machine that measures it. AMX
# excepted: some virtual machines advertise AMX without enabling its tile state, and ggml's
# AMX path then dies with SIGILL at the first matrix product (seen on an "Intel(R) Xeon(R)
# Processor" VM); Tessera's kernels use AVX-512 VNNI, not AMX, so the comparison stays between
# the same instruction sets.
NOAMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
if [[ $ISA == avx2 ]]; then
  FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
    -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF)
else
  FLAGS=(-DGGML_NATIVE=ON -DCMAKE_C_FLAGS="$NOAMX" -DCMAKE_CXX_FLAGS="$NOAMX")
fi
cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF "${FLAGS[@]}" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=ON >&2
# shellcheck disable=SC2086
ninja -C "$BUILD" $TARGETS >&2
echo "$BUILD"
