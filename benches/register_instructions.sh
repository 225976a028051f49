#!/usr/bin/env bash
# Machine-independent cost of an authenticated registration: user-space
# instructions per registration, carillon against Kamailio 5.6 (bounded).
#
# Wall-clock CPU on this shared VM swings by up to 1.6x within minutes;
# instruction counts do not. Each server runs under `valgrind
# --tool=callgrind` (Kamailio with --trace-children, so its forked workers
# are counted too), with the users and config of register_load.sh and
# kamailio/register_load.sh (10,000 users, Kamailio `-x tlsf`, htable
# passwords, usrloc in memory; carillon with SQLite bindings). Once the
# server listens its counters are zeroed, SIPp runs tests/sipp/
# register_auth.xml for COUNT registrations at RATE/s (slow enough that
# nothing is retransmitted under valgrind), the counters are dumped, and the
# script prints the instructions per registration (summed over every
# thread and process). For carillon it also prints how many of them are
# the signalling core (`Switch::handle_input`: parse, validation, digest,
# transactions, registrar, responses) and how many are SHA-256 (the nonce
# MAC: valgrind does not emulate the SHA extensions, so natively this part
# runs far fewer instructions; the figure without it is the fair one).
#
# What it does not show: system calls and the kernel's UDP path (about
# half of the switch's CPU at 10,000 registrations/s, see register_load.sh's
# "CPU per registration" line), cache misses and lock contention. At this
# low rate no batching happens, so carillon's per-wake-up costs weigh more
# than under load.
#
# Usage: benches/register_instructions.sh
#        TARGETS=carillon COUNT=1000 benches/register_instructions.sh
# Env: TARGETS ("carillon kamailio"), COUNT (2000), RATE (100), USERS
#      (10000), CARILLON_BIN (skip build), CARGO_TARGET_DIR, KEEP_WORK=1.
# Needs valgrind, sipp, kamailio. Only the processes it starts are stopped.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGETS="${TARGETS:-carillon kamailio}"
USERS="${USERS:-10000}"
COUNT="${COUNT:-2000}"
RATE="${RATE:-100}"
LIMIT=1000
SIPP_TIMEOUT=$((COUNT / RATE + 120))
SCENARIO="$ROOT/tests/sipp/register_auth.xml"

for tool in valgrind callgrind_control callgrind_annotate sipp; do
    command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install -y valgrind sip-tester)" >&2; exit 2; }
done
case " $TARGETS " in
*" carillon "*) carillon_bin "$ROOT" ;;
esac

SERVER_PID=""
SIPP_PID=""
bench_pids() { echo $SIPP_PID $SERVER_PID; }
bench_workdir carillon-regcount
write_register_csv "$USERS" > "$WORK/users.csv"

# The valgrind processes of this run (the server and, for Kamailio, its
# forked workers), found by the output file pattern only this run uses.
valgrind_pids() { pgrep -f -- "--callgrind-out-file=$1/" || true; }

# Zeroes the counters, runs SIPp, dumps; prints "registrations failed".
measure() {
    local run="$1" port="$2" sport
    sport="$(free_port)"
    local p
    for p in $(valgrind_pids "$run"); do callgrind_control -z "$p" >/dev/null; done
    rm -f "$run"/cg/*.1
    start_sipp_register "$run" "$port" "$sport" "$RATE"
    local rc=0
    wait "$SIPP_PID" || rc=$?
    SIPP_PID=""
    sleep 2 # deferred work (the binding writer's next commit) is counted
    for p in $(valgrind_pids "$run"); do callgrind_control -d "$p" >/dev/null; done
    sleep 1
    [ "$rc" = 0 ] || echo "  (sipp exit $rc)" >&2
    python3 - "$run/stat.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
h, l = rows[0], rows[-1]
print(l[h.index("SuccessfulCall(C)")], l[h.index("FailedCall(C)")], l[h.index("Retransmissions(C)")])
PY
}

# Sums the instruction totals of every dump in $1/cg ("summary:" lines).
total_instructions() {
    cat "$1"/cg/*.1 | awk '/^summary:/ {s += $2} END {print s + 0}'
}

# Inclusive instructions of the first function matching $2 in dump file $1.
inclusive() {
    callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
        awk -v pat="$2" 'index($0, pat) {gsub(",", "", $1); print $1; found = 1; exit} END {if (!found) print 0}'
}

report() {
    local name="$1" run="$2" ok="$3" failed="$4" retrans="$5" extra="${6:-}"
    python3 - "$name" "$(total_instructions "$run")" "$ok" "$failed" "$retrans" "$extra" <<'PY'
import sys
name, total, ok, failed, retrans, extra = sys.argv[1:]
total, ok = int(total), int(ok)
line = (f"{name}: registrations={ok} failed={failed} retransmissions={retrans}  "
        f"instructions per registration={total / ok:,.0f}" if ok else f"{name}: no registration completed")
if ok and extra:
    core, sha = (int(x) for x in extra.split())
    line += (f"  (signalling core {core / ok:,.0f}; SHA-256 {sha / ok:,.0f}; "
             f"without SHA-256 {(total - sha) / ok:,.0f})")
print(line)
PY
}

run_carillon() {
    local run="$WORK/carillon" port
    port="$(free_port)"
    mkdir -p "$run/config" "$run/cg"
    write_register_users "$USERS" > "$run/config/users.toml"
    write_register_config "$run" "$port" > "$run/config/carillon.toml"
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$run/cg/carillon.%p" \
        "$CARILLON_BIN" run --config "$run/config" > "$run/server.log" 2>&1 &
    SERVER_PID=$!
    wait_udp_listener "$port" "$SERVER_PID" "$run/server.log" carillon 1200
    local counts dump
    counts="$(measure "$run" "$port")"
    dump="$(ls "$run"/cg/*.1 | head -1)"
    # shellcheck disable=SC2086
    report carillon "$run" $counts \
        "$(inclusive "$dump" 'Switch::handle_input [') $(inclusive "$dump" 'sha2::sha256::compress256 [')"
    stop_pids "$SERVER_PID"
    SERVER_PID=""
}

run_kamailio() {
    command -v kamailio >/dev/null || { echo "kamailio not found (apt-get install -y kamailio)" >&2; return; }
    local run="$WORK/kamailio" port
    port="$(free_port)"
    mkdir -p "$run/db" "$run/cg"
    write_kamailio_users "$USERS" > "$run/db/users"
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$run/cg/kamailio.%p" \
        kamailio -f "$ROOT/benches/kamailio/register.cfg" -DD -E -l "udp:127.0.0.1:$port" \
        -A CHILDREN=2 -A "USERS_URL=\"text://$run/db\"" -m 128 -M 16 -Y "$run" -w "$run" -x tlsf \
        > "$run/server.log" 2>&1 &
    SERVER_PID=$!
    wait_udp_listener "$port" "$SERVER_PID" "$run/server.log" kamailio 1200
    sleep 2 # the workers finish their start-up after the socket is bound
    local counts
    counts="$(measure "$run" "$port")"
    # shellcheck disable=SC2086
    report "kamailio (-x tlsf, 2 children)" "$run" $counts
    # Kamailio stops its workers when the main process gets SIGTERM.
    stop_pids "$SERVER_PID"
    SERVER_PID=""
}

for t in $TARGETS; do
    case "$t" in
    carillon) run_carillon ;;
    kamailio) run_kamailio ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
    esac
done
