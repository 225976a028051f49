#!/usr/bin/env bash
# Rebuilds relay.bpf.o from relay.bpf.c. Needs clang and libbpf-dev
# (apt-get install -y clang libbpf-dev). The object is committed so that
# building Carillon needs only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")"
arch_include="/usr/include/$(uname -m)-linux-gnu"
clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I"$arch_include" \
  -c relay.bpf.c -o relay.bpf.o
llvm-strip -g relay.bpf.o 2>/dev/null || true
echo "built $(pwd)/relay.bpf.o"
