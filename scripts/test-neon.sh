#!/usr/bin/env bash
# Runs the kernel tests (NEON kernels against the scalar reference) for AArch64 under QEMU
# user-mode emulation, on an x86-64 machine.
# Needs: apt-get install -y qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
#        rustup target add aarch64-unknown-linux-gnu
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
exec cargo test -p tessera-kernels --release --target aarch64-unknown-linux-gnu "$@"
