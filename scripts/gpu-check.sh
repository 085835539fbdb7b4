#!/usr/bin/env bash
# The GPU check of the CUDA path, in two halves:
#
#   scripts/gpu-check.sh prepare   here (no GPU needed): builds the CUDA binaries with
#                                  scripts/cuda.sh and packs them, with the headers of the
#                                  benchmark models, into .gpu/ (ignored by git, under 64 MiB)
#   scripts/gpu-check.sh run       on the GPU machine (x86-64, NVIDIA driver, CUDA 13 libraries
#                                  from PyTorch's wheels, no Rust): runs the backend tests on the
#                                  GPU and the LLM benchmark on GPU and CPU; report in $OUT
#
# From a session with a device machine: prepare here, then one call, e.g.
#   run(command="scripts/gpu-check.sh run", carry=[".gpu"], timeout_s=540)
# The real weights do not travel (SmolLM2 alone is 98 MB): the benchmark runs models rebuilt
# there from their headers with seeded random weights (`tessera models synth`), which have the
# real shapes and block types and so the real speed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bundle=.gpu
read -r -a models <<<"${GPU_CHECK_MODELS:-smollm2 qwen2.5-0.5b}"

prepare() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target-cuda}"
  local build=(scripts/cuda.sh cargo)
  "${build[@]}" build --release --features cuda --bin tessera
  local tests
  tests=$("${build[@]}" test --release --features cuda -p tessera-engine --test backends --no-run \
    --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "backends":
        print(m["executable"])')
  rm -rf "$bundle" && mkdir -p "$bundle/stage"
  cp "$CARGO_TARGET_DIR/release/tessera" "$bundle/stage/tessera"
  cp "$tests" "$bundle/stage/backends"
  strip "$bundle/stage/tessera" "$bundle/stage/backends"
  # The CUDA binary loads the driver library at start: the link stub stands in for it here,
  # for a command that never touches a GPU.
  scripts/cuda.sh bash -c '
    stub=$(mktemp -d) && ln -s "$CUDA_HOME/lib/stubs/libcuda.so" "$stub/libcuda.so.1"
    export LD_LIBRARY_PATH="$stub:$CUDA_HOME/lib"
    bin=$1 && shift
    for m in "$@"; do "$bin" models skeleton "$m" ".gpu/stage/$m.skeleton.gguf" || exit; done
    rm -r "$stub"' _ "$bundle/stage/tessera" "${models[@]}"
  tar -C "$bundle/stage" -cJf "$bundle/bundle.tar.xz" .
  rm -rf "$bundle/stage"
  du -h "$bundle/bundle.tar.xz"
}

# Seconds for the next step: at most $1, and never past the whole run's deadline (the check
# must end within 8 minutes, leaving the device time to rerun it).
budget() {
  local left=$((deadline - SECONDS))
  ((left < 5)) && left=5
  echo $(($1 < left ? $1 : left))
}

run() {
  deadline=$((SECONDS + 450))
  local out="${OUT:-$root/gpu-out}"
  mkdir -p "$out"
  local report="$out/gpu-report.txt"
  local work=/tmp/tessera-gpu
  rm -rf "$work" && mkdir -p "$work"
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
    "$bundle/bundle.tar.xz" "$work"
  # CUDA 13 libraries: PyTorch's nvidia-* wheels (nvidia/cu13/lib), the system toolkit, the driver.
  local libs
  libs=$(python3 - <<'EOF'
import glob, os, site
dirs = []
for s in site.getsitepackages() + [site.getusersitepackages()]:
    dirs += glob.glob(os.path.join(s, "nvidia", "cu13", "lib"))
    dirs += glob.glob(os.path.join(s, "nvidia", "*", "lib"))
print(":".join(dirs))
EOF
)
  export LD_LIBRARY_PATH="$libs:/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
  export TESSERA_HOME="$work/home" RUST_BACKTRACE=1
  {
    echo "== machine"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    nproc
    echo "== missing libraries"
    ldd "$work/tessera" | grep 'not found' || echo none
    echo "== backend tests (tiny models of every kernel type: CPU paths and the GPU vs f32)"
    timeout "$(budget 120)" "$work/backends" --nocapture 2>&1 || echo "backend tests FAILED ($?)"
  } 2>&1 | tee "$report"
  for m in "${models[@]}"; do
    {
      echo "== $m: seeded random weights in its layout"
      timeout "$(budget 90)" "$work/tessera" models synth "$work/$m.skeleton.gguf" "$work/$m.gguf" --seed 0
      for dev in cuda cpu; do
        local threads=1
        [[ $dev == cpu ]] && threads=$(nproc)
        timeout "$(budget 90)" "$work/tessera" bench llm --model "$work/$m.gguf" --device "$dev" \
          --threads "$threads" --reps 3 --json || echo "bench $m on $dev FAILED ($?)"
      done
    } 2>&1 | tee -a "$report"
  done
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
