#!/usr/bin/env bash
# Runs every Carillon test: unit, conformance, property and end-to-end
# (SIPp, baresip, sipvicious, PostgreSQL). Installs the third-party peers
# first when they are missing (needs root; prints what to install if not).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sipp >/dev/null || need+=(sip-tester)
command -v baresip >/dev/null || need+=(baresip-core)
command -v svwar >/dev/null || need+=(sipvicious)
command -v sox >/dev/null || need+=(sox)
command -v unshare >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v systemd-analyze >/dev/null || need+=(systemd)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql)
if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "tests need: ${need[*]}" >&2
    echo "run as root, or first: sudo apt-get install -y ${need[*]}" >&2
    exit 2
  fi
  echo "installing test peers: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

bash tests/layering.sh

# A real PostgreSQL for the store and CDR tests.
if [ "$(id -u)" = 0 ]; then
  CARILLON_TEST_PG_URL="$(bash tests/pg-setup.sh)"
  export CARILLON_TEST_PG_URL
fi

# The kernel RTP path's tests need root and a kernel that allows BPF. A
# machine without it is reported loudly and those tests are skipped; the
# probe is independent of our program, so a program the verifier rejects
# still fails them.
if [ "$(id -u)" != 0 ] || ! python3 tests/bpf-probe.py; then
  echo "WARNING: no BPF here (not root, or the kernel refuses bpf()): kernel RTP path tests SKIPPED" >&2
  export CARILLON_SKIP_KERNELPATH=1
fi

export CARILLON_SHARED_DIR="${CARILLON_SHARED_DIR:-$(cd .. && pwd)/shared}"
cargo test --workspace --release -- --test-threads=2
