#!/usr/bin/env bash
# Installs what the build and the tests need on Debian/Ubuntu if it is missing: libclang for
# RocksDB's bindings (oxrocksdb-sys runs bindgen; without it the build fails after compiling
# RocksDB), Chromium for the console's browser test (tests/console), and a C++ compiler with
# Python's venv for llama.cpp's llama-server (bench/llamacpp.sh; the remote-backend test).
set -euo pipefail
command -v cargo >/dev/null || { echo "error: cargo not found; install Rust from https://rustup.rs" >&2; exit 1; }
missing=()
if command -v dpkg >/dev/null; then
  dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (RocksDB's bindings; the console's browser test; llama-server)" >&2
  sudo_if() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if apt-get update -q
  sudo_if env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
