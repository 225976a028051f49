#!/usr/bin/env bash
# Runs every Carillon test: unit, conformance, property and end-to-end
# (SIPp, baresip, sipvicious, PostgreSQL), as root:
#
#   sudo bash tests/run.sh
#
# 1. Installs the third-party peers that are missing (Debian packages).
# 2. Fetches the crates and builds every test binary while the network is
#    still there.
# 3. Runs the whole `cargo test` inside a network namespace that has only
#    loopback (`unshare --net`), with a private PostgreSQL started inside
#    it: no test can reach any address but 127.0.0.0/8 and ::1, whatever
#    it does.
# 4. Ends by naming every group of tests that skipped (only the kernel RTP
#    path may skip, when the kernel refuses BPF); a missing peer or
#    database fails its tests here instead of skipping them
#    (CARILLON_REQUIRE_PEERS=1).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "tests/run.sh needs root: it installs the test peers and runs the tests in a" >&2
  echo "loopback-only network namespace (unshare --net). Run: sudo bash tests/run.sh" >&2
  echo "(a plain 'cargo test' also works, without that containment and with skips)" >&2
  exit 2
fi

need=()
command -v sipp >/dev/null || need+=(sip-tester)
command -v baresip >/dev/null || need+=(baresip-core)
command -v svwar >/dev/null || need+=(sipvicious)
command -v sox >/dev/null || need+=(sox)
command -v unshare >/dev/null || need+=(util-linux)
command -v nsenter >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v sysctl >/dev/null || need+=(procps)
command -v python3 >/dev/null || need+=(python3)
command -v systemd-analyze >/dev/null || need+=(systemd)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
# The AMI tests' client libraries (panoramisk in a venv, asterisk-manager).
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if ((${#need[@]})); then
  echo "installing test peers: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

bash tests/layering.sh

# Everything that needs the network happens here, before the namespace.
cargo fetch --locked
bash tests/ami/install-clients.sh
cargo test --workspace --release --locked --no-run

# The kernel RTP path's tests need a kernel that allows BPF. A machine
# without it is reported loudly and those tests skip (and are named at the
# end); the probe is independent of our program, so a program the verifier
# rejects still fails them.
if ! python3 tests/bpf-probe.py; then
  echo "WARNING: the kernel refuses bpf(): kernel RTP path tests will be SKIPPED" >&2
  export CARILLON_SKIP_KERNELPATH=1
fi

export CARILLON_SHARED_DIR="${CARILLON_SHARED_DIR:-$(cd .. && pwd)/shared}"
export CARILLON_REQUIRE_PEERS=1
CARILLON_SKIP_REPORT="$(mktemp /tmp/carillon-skipped.XXXXXX)"
export CARILLON_SKIP_REPORT
CARILLON_PG_DIR="$(mktemp -d /tmp/carillon-pg.XXXXXX)"
export CARILLON_PG_DIR

status=0
unshare --net -- bash -euo pipefail -c '
  ip link set lo up
  # Proof for the log that this namespace has nothing but loopback.
  echo "test network namespace: $(ip -o link show | awk -F": " "{print \$2}" | tr "\n" " ")"
  trap "bash tests/pg-setup.sh stop \"$CARILLON_PG_DIR\"" EXIT
  CARILLON_TEST_PG_URL="$(bash tests/pg-setup.sh start "$CARILLON_PG_DIR")"
  export CARILLON_TEST_PG_URL
  cargo test --workspace --release --locked --offline --no-fail-fast -- --test-threads=2
' || status=$?

if [ -s "$CARILLON_SKIP_REPORT" ]; then
  echo "SKIPPED test groups:"
  sort -u "$CARILLON_SKIP_REPORT" | sed 's/^/  /'
else
  echo "SKIPPED test groups: none"
fi
rm -f "$CARILLON_SKIP_REPORT"
exit $status
