#!/usr/bin/env bash
# The GPU check of the CUDA path, in two halves:
#
#   scripts/gpu-check.sh prepare   here (no GPU needed): builds the CUDA binaries with
#                                  scripts/cuda.sh and packs them, with the headers of the
#                                  benchmark models, into .gpu/bundle.tar.xz (ignored by git),
#                                  and splits the real SmolLM2 GGUF into .gpu/smollm2.part1/2
#   scripts/gpu-check.sh run       on the GPU machine (x86-64, NVIDIA driver, CUDA 13 libraries
#                                  from PyPI's wheels, no Rust): measures the copy bandwidth,
#                                  runs the backend tests on the GPU, the greedy agreement of
#                                  the real SmolLM2 on GPU and CPU (when both halves are there),
#                                  the LLM benchmark at batch 1/8/64/256 and the reading
#                                  benchmark on GPU and CPU; report in $OUT/gpu-report.txt
#
# What travels to a device machine is capped at 64 MiB a call, and SmolLM2 alone is 98 MB: one
# call carries the bundle and the first half, the next (on the still-warm machine, which
# keeps ignored files) the second half:
#   run(command="scripts/gpu-check.sh run",
#       carry=[".gpu/bundle.tar.xz", ".gpu/smollm2.part1", ".gpu/smollm2.sha256"])
#   run(command="GPU_CHECK=greedy scripts/gpu-check.sh run", carry=[".gpu/smollm2.part2"])
# The speed runs use models rebuilt there from their headers with seeded random weights
# (`tessera models synth`): the real shapes and block types, so the real speed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bundle=.gpu
read -r -a models <<<"${GPU_CHECK_MODELS:-smollm2 qwen2.5-0.5b qwen2.5-1.5b}"

prepare() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target-cuda}"
  local build=(scripts/cuda.sh cargo)
  "${build[@]}" build --release --features cuda --bin tessera
  local tests
  tests=$("${build[@]}" test --release --features cuda -p tessera-llm --test backends --no-run \
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
    for m in "$@" smollm2; do "$bin" models pull "$m" >/dev/null || exit; done
    for m in "$@"; do "$bin" models skeleton "$m" ".gpu/stage/$m.skeleton.gguf" || exit; done
    rm -r "$stub"' _ "$bundle/stage/tessera" "${models[@]}"
  tar -C "$bundle/stage" -cJf "$bundle/bundle.tar.xz" .
  rm -rf "$bundle/stage"
  # The real SmolLM2, in two halves that each fit a call beside the bundle.
  local smol
  smol=$(scripts/cuda.sh bash -c '
    stub=$(mktemp -d) && ln -s "$CUDA_HOME/lib/stubs/libcuda.so" "$stub/libcuda.so.1"
    LD_LIBRARY_PATH="$stub:$CUDA_HOME/lib" "$1" models path smollm2; rc=$?
    rm -r "$stub"; exit $rc' _ "$CARGO_TARGET_DIR/release/tessera")
  head -c 40000000 "$smol" >"$bundle/smollm2.part1"
  tail -c +40000001 "$smol" >"$bundle/smollm2.part2"
  sha256sum "$smol" | cut -d' ' -f1 >"$bundle/smollm2.sha256"
  du -h "$bundle"/*
}

# Seconds for the next step: at most $1, and never past the whole run's deadline (the check
# must end within 8 minutes, leaving the device time to rerun it).
budget() {
  local left=$((deadline - SECONDS))
  ((left < 5)) && left=5
  echo $(($1 < left ? $1 : left))
}

setup() {
  out="${OUT:-$root/gpu-out}"
  mkdir -p "$out"
  report="$out/gpu-report.txt"
  work=/tmp/tessera-gpu
  if [[ ! -x $work/tessera ]]; then
    rm -rf "$work" && mkdir -p "$work"
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      "$bundle/bundle.tar.xz" "$work"
  fi
  # CUDA 13 libraries: the nvidia-* wheels (nvidia/cu13/lib), the system toolkit, the driver.
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
}

# The real SmolLM2 on the GPU and on the CPU, greedy from the same prompt: the streams must
# agree token for token until the first step where the CPU's two best logits are within 0.5.
greedy() {
  local model=$work/smollm2-real.gguf
  if [[ ! -f $model ]]; then
    if [[ -f $bundle/smollm2.part1 && -f $bundle/smollm2.part2 ]]; then
      cat "$bundle/smollm2.part1" "$bundle/smollm2.part2" >"$model.partial"
      mv "$model.partial" "$model"
    else
      echo "real-model check skipped: .gpu/smollm2.part1 and part2 are not both here"
      return 0
    fi
  fi
  echo "sha256 $(sha256sum "$model" | cut -d' ' -f1) (expected $(cat "$bundle/smollm2.sha256" 2>/dev/null || echo '?'))"
  local prompt="The history of the Roman Empire begins with"
  for dev in cuda cpu; do
    timeout "$(budget 60)" "$work/tessera" bench greedy --model "$model" --device "$dev" \
      --threads "$(nproc)" --tokens 96 "$prompt" >"$out/greedy-$dev.json" || echo "greedy on $dev FAILED ($?)"
  done
  if python3 - "$out/greedy-cuda.json" "$out/greedy-cpu.json" <<'EOF'
import json, sys
g, c = (json.load(open(p)) for p in sys.argv[1:3])
n = len(c["tokens"])
first = next((i for i in range(n) if g["tokens"][i] != c["tokens"][i]), None)
if first is None:
    print(f"greedy: GPU and CPU agree on all {n} tokens")
else:
    tie = min(range(first + 1), key=lambda i: c["gaps"][i])
    ok = any(c["gaps"][i] < 0.5 for i in range(first + 1))
    print(f"greedy: agree on {first} of {n} tokens; first difference at {first}, CPU top-2 gap there "
          f"{c['gaps'][first]:.4f}, smallest gap up to it {c['gaps'][tie]:.4f} at {tie}: "
          + ("a near-tie, as allowed" if ok else "NOT a near-tie: FAILED"))
print("cpu :", repr(c["text"][:300]))
print("cuda:", repr(g["text"][:300]))
EOF
  then :; else echo "greedy comparison FAILED"; fi
}

run() {
  deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-480}))
  setup
  if [[ ${GPU_CHECK:-all} == greedy ]]; then
    { echo "== real SmolLM2, greedy on GPU and CPU"; greedy; } 2>&1 | tee -a "$report"
    return
  fi
  {
    echo "== machine"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader || true
    echo "cpus $(nproc): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
    echo "== missing libraries"
    ldd "$work/tessera" | grep 'not found' || echo none
    echo "== device-to-device copy bandwidth (bytes read + written, 2 GiB buffers, median of 20)"
    timeout "$(budget 60)" python3 - <<'EOF' | tee "$out/bandwidth.txt" || echo "bandwidth FAILED"
import torch
x = torch.empty(1 << 29, dtype=torch.float32, device="cuda").normal_()
y = torch.empty_like(x)
for _ in range(3):
    y.copy_(x)
ts = []
for _ in range(20):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); y.copy_(x); e.record(); torch.cuda.synchronize()
    ts.append(s.elapsed_time(e))
ms = sorted(ts)[len(ts) // 2]
print(f"{2 * x.numel() * 4 / ms / 1e6:.0f} GB/s")
EOF
    echo "== backend tests (tiny models of every kernel type: CPU paths and the GPU vs f32)"
    timeout "$(budget 120)" "$work/backends" --nocapture 2>&1 || echo "backend tests FAILED ($?)"
    echo "== real SmolLM2, greedy on GPU and CPU"
    greedy
  } 2>&1 | tee "$report"
  local bw
  bw=$(grep -o '^[0-9]*' "$out/bandwidth.txt" 2>/dev/null || true)
  bw=${bw:-4300}
  for m in "${models[@]}"; do
    {
      echo "== $m: seeded random weights in its layout"
      [[ -f $work/$m.gguf ]] ||
        timeout "$(budget 90)" "$work/tessera" models synth "$work/$m.skeleton.gguf" "$work/$m.gguf" --seed 0 ||
        echo "synth $m FAILED ($?)"
      local batches="1,8,64,256"
      [[ $m == qwen2.5-1.5b ]] && batches="1,64"
      echo "-- cuda, decode kernel and no event tracking (this build)"
      timeout "$(budget 150)" "$work/tessera" bench llm --model "$work/$m.gguf" --device cuda \
        --batch "$batches" --bandwidth-gbs "$bw" --reps 2 --json || echo "bench $m on cuda FAILED ($?)"
      if [[ $m != qwen2.5-1.5b ]]; then
        echo "-- cuda, tensor path and event tracking (as before this build)"
        TESSERA_CUDA_ATTENTION_KERNEL=0 TESSERA_CUDA_EVENT_TRACKING=1 timeout "$(budget 60)" \
          "$work/tessera" bench llm --model "$work/$m.gguf" --device cuda --batch 1,8 \
          --prompt-tokens 0 --gen-tokens 32 --bandwidth-gbs "$bw" --reps 1 --json ||
          echo "bench $m on cuda (before) FAILED ($?)"
        echo "-- cpu, $(nproc) threads"
        timeout "$(budget 60)" "$work/tessera" bench llm --model "$work/$m.gguf" --device cpu \
          --threads "$(nproc)" --reps 1 --json || echo "bench $m on cpu FAILED ($?)"
      fi
    } 2>&1 | tee -a "$report"
  done
  for m in qwen2.5-0.5b qwen2.5-1.5b; do
    [[ -f $work/$m.gguf ]] || continue
    {
      echo "== reading ($m shape, EDC stage token counts per text)"
      timeout "$(budget 120)" "$work/tessera" bench read --model "$work/$m.gguf" --device cuda \
        --texts 512 --width 64,256 --json || echo "read $m on cuda FAILED ($?)"
      timeout "$(budget 60)" "$work/tessera" bench read --model "$work/$m.gguf" --device cpu \
        --threads "$(nproc)" --texts 16 --width 8 --json || echo "read $m on cpu FAILED ($?)"
    } 2>&1 | tee -a "$report"
  done
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
