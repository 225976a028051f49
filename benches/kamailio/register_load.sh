#!/usr/bin/env bash
# Reference run: authenticated REGISTER load against Debian's Kamailio 5.6
# (bounded), the same way benches/register_load.sh measures carillon.
#
# Same SIPp scenario (tests/sipp/register_auth.xml), same users (USERS users
# 100000.. with password pw<ext>), same SIPp options. Kamailio runs
# benches/kamailio/register.cfg in the foreground (-DD -E) on
# 127.0.0.1:<free port> with CHILDREN UDP workers; passwords live in an
# htable loaded at start-up from a db_text file written here, bindings in
# usrloc db_mode 0. For each rate in RATES a fresh Kamailio is started, SIPp
# runs COUNT registrations (REGISTER -> 401 -> REGISTER with credentials ->
# 200), and the script prints completed/failed, wall time, rate, Kamailio's
# CPU seconds (utime+stime summed over the main process and all its
# children, from /proc/<pid>/stat, before and 1 s after the run) and
# successful registrations per core-second. It also prints SIPp's
# retransmission count: the config is stateless, so each retransmitted
# REGISTER is processed again (SIPp retransmits after 500 ms, which happens
# as soon as the shared cores are saturated).
#
# Usage: benches/kamailio/register_load.sh
#        RATES="5000 10000" COUNT=10000 CHILDREN=1 benches/kamailio/register_load.sh
# Env: USERS (10000), COUNT (10000), RATES ("5000 10000"), LIMIT (5000),
#      SIPP_TIMEOUT (60), CHILDREN (2), KAMAILIO (kamailio), KEEP_WORK=1,
#      KAM_ARGS (extra kamailio options, e.g. "-x tlsf" for the TLSF allocator).
# Needs: apt-get install -y kamailio sip-tester. Only the processes this
# script starts are stopped, by PID.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
USERS="${USERS:-10000}"
COUNT="${COUNT:-10000}"
RATES="${RATES:-5000 10000}"
LIMIT="${LIMIT:-5000}"
SIPP_TIMEOUT="${SIPP_TIMEOUT:-60}"
CHILDREN="${CHILDREN:-2}"
KAMAILIO="${KAMAILIO:-kamailio}"
SCENARIO="$ROOT/tests/sipp/register_auth.xml"
CFG="$HERE/register.cfg"

command -v sipp >/dev/null || { echo "sipp not found (apt-get install -y sip-tester)" >&2; exit 2; }
command -v "$KAMAILIO" >/dev/null || { echo "kamailio not found (apt-get install -y kamailio)" >&2; exit 2; }

KAM_PID=""
SIPP_PID=""
bench_pids() { echo $SIPP_PID $KAM_PID; }
bench_workdir kamailio-regload


# Users: db_text table for the htable, and the SIPp injection file (same
# shape as benches/register_load.sh).
mkdir -p "$WORK/db"
write_kamailio_users "$USERS" > "$WORK/db/users"
write_register_csv "$USERS" > "$WORK/users.csv"


run_rate() {
    local rate="$1"
    local port sport run
    port="$(free_port)"
    sport="$(free_port)"
    run="$WORK/rate-$rate"
    mkdir -p "$run"
    (cd "$run" && exec timeout $((SIPP_TIMEOUT + 120)) "$KAMAILIO" -f "$CFG" -DD -E \
        -l "udp:127.0.0.1:$port" -A "CHILDREN=$CHILDREN" \
        -A "USERS_URL=\"text://$WORK/db\"" -m 128 -M 16 -Y "$run" -w "$run" ${KAM_ARGS:-} \
        > "$run/kamailio.log" 2>&1) &
    KAM_PID=$!
    wait_udp_listener "$port" "$KAM_PID" "$run/kamailio.log" kamailio
    # $KAM_PID is the subshell that exec'd timeout; Kamailio's main process
    # is timeout's child.
    local main_pid
    main_pid="$(pgrep -P "$KAM_PID" | head -1)"
    local nproc_k
    nproc_k="$(tree_pids "$main_pid" | wc -l)"

    local cpu0 cpu1 t0 t1 rc=0
    cpu0="$(tree_cpu_ticks "$main_pid")"
    local split0 split1
    # shellcheck disable=SC2046
    split0="$(cpu_split $(tree_pids "$main_pid"))"
    t0="$(date +%s.%N)"
    start_sipp_register "$run" "$port" "$sport" "$rate"
    wait "$SIPP_PID" || rc=$?
    SIPP_PID=""
    t1="$(date +%s.%N)"
    sleep 1
    cpu1="$(tree_cpu_ticks "$main_pid")"
    # shellcheck disable=SC2046
    split1="$(cpu_split $(tree_pids "$main_pid"))"
    kill "$main_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$KAM_PID" 2>/dev/null || break; sleep 0.1; done
    kill "$KAM_PID" 2>/dev/null || true
    wait "$KAM_PID" 2>/dev/null || true
    KAM_PID=""

    python3 - "$run/stat.csv" "$t0" "$t1" "$cpu0" "$cpu1" "$clk_tck" "$rate" "$rc" "$nproc_k" "$CHILDREN" <<'PY'
import csv, sys
path, t0, t1, c0, c1, tck, rate, rc, nproc, children = sys.argv[1:]
rows = list(csv.reader(open(path), delimiter=";"))
head, last = rows[0], rows[-1]
col = lambda name: int(last[head.index(name)])
ok, failed = col("SuccessfulCall(C)"), col("FailedCall(C)")
retrans = col("Retransmissions(C)")
wall = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(tck)
inf = float("inf")
# Kamailio's register.cfg is stateless (no tm): every SIPp retransmission
# is a REGISTER it handles again, so also print requests received per
# core-second (2 per registration + retransmissions).
print(f"kamailio rate={rate}/s  children={children} ({nproc} processes)  completed={ok}  failed={failed}  "
      f"wall={wall:.2f}s  registrations/s={ok / wall:.0f}  kamailio_cpu={cpu:.2f}s  "
      f"per_core_second={ok / cpu if cpu > 0 else inf:.0f}  "
      f"(REGISTER transactions per core-second={2 * ok / cpu if cpu > 0 else inf:.0f}; "
      f"sipp retransmissions={retrans}, REGISTERs received per core-second="
      f"{(2 * ok + retrans) / cpu if cpu > 0 else inf:.0f}; sipp exit {rc})")
PY
    print_split "$split0" "$split1" "$(sipp_ok "$run/stat.csv")"
}

for r in $RATES; do
    run_rate "$r"
done
