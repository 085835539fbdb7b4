#!/usr/bin/env bash
# Installs what the build needs on Debian/Ubuntu if it is missing: libclang for RocksDB's
# bindings (oxrocksdb-sys runs bindgen; without it the build fails after compiling RocksDB).
set -euo pipefail
command -v cargo >/dev/null || { echo "error: cargo not found; install Rust from https://rustup.rs" >&2; exit 1; }
if command -v dpkg >/dev/null && ! dpkg -s libclang-dev >/dev/null 2>&1; then
  echo "installing libclang-dev (needed to build RocksDB's bindings)" >&2
  sudo_if() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if apt-get update -q
  sudo_if env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libclang-dev
fi
