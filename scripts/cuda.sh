#!/usr/bin/env bash
# Runs a command with a CUDA 13.0 toolkit from PyPI on the environment, for building Tessera
# with `--features cuda` on a machine with no GPU and no system CUDA:
#
#   scripts/cuda.sh cargo build --release --features cuda --bin tessera
#
# The toolkit (nvcc and the libraries candle's CUDA backend links: cudart, cuBLAS, cuRAND,
# NVRTC) is installed once into $TESSERA_HOME/cuda13 with `pip install --no-deps`, pinned to
# the 13.0 line because the GPU machines' driver speaks CUDA 13.0 and may refuse PTX from a
# newer toolkit. The driver library (libcuda) is not on PyPI: a link-time stub exporting the
# driver API's entry points is built from cudarc's bindings; at run time the real driver's
# libcuda.so.1 is loaded in its place (same soname).
set -euo pipefail

home="${TESSERA_HOME:-$HOME/.cache/tessera}"
dir="$home/cuda13"
cu="$dir/nvidia/cu13"
stamp="$dir/.tessera-cuda-1"
packages=(
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.88 nvidia-cuda-cccl==13.0.85
  nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
)

if [[ ! -f "$stamp" ]]; then
  echo "cuda.sh: installing the CUDA 13.0 toolkit from PyPI into $dir" >&2
  rm -rf "$dir.partial"
  python3 -m pip install -q --disable-pip-version-check --no-deps --target "$dir.partial" "${packages[@]}"
  rm -rf "$dir" && mv "$dir.partial" "$dir"

  # Unversioned names for the linker, beside a stub of the driver library.
  stubs="$cu/lib/stubs"
  mkdir -p "$stubs"
  for lib in cudart.so.13 cublas.so.13 cublasLt.so.13 curand.so.10 nvrtc.so.13; do
    ln -sf "../lib$lib" "$stubs/lib${lib%%.so.*}.so"
  done
  bindings=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs 2>/dev/null | tail -1 || true)
  if [[ -z "$bindings" ]]; then
    cargo fetch --manifest-path "$(dirname "$0")/../Cargo.toml" >/dev/null
    bindings=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs | tail -1)
  fi
  grep -o 'pub unsafe fn cu[A-Za-z0-9_]*' "$bindings" | sed 's/pub unsafe fn //' | sort -u |
    sed 's/.*/void &(void) {}/' >"$stubs/libcuda-stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/libcuda-stub.c"
  touch "$stamp"
fi

export CUDA_HOME="$cu" CUDA_PATH="$cu"
export PATH="$cu/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
exec "$@"
