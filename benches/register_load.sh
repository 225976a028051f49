#!/usr/bin/env bash
# Authenticated REGISTER load against an optimized `carillon` (profile dist) (bounded).
#
# Builds the binary (`cargo build --profile dist`), writes a temporary config with USERS users
# (listener on 127.0.0.1:<free port>, 127.0.0.1 exempt from rate limits and
# bans, SQLite in the temp dir), then for each rate in RATES starts a fresh
# switch with RUST_LOG=warn, runs SIPp's tests/sipp/register_auth.xml for
# COUNT registrations (each = REGISTER -> 401 -> REGISTER with credentials
# -> 200) and prints completed/failed registrations, wall time, rate, the
# switch's CPU seconds (utime+stime from /proc/<pid>/stat) and successful
# registrations per core-second of switch CPU.
#
# Usage: benches/register_load.sh            (defaults below)
#        RATES="5000 10000" COUNT=10000 benches/register_load.sh
# Env: USERS (10000), COUNT (10000), RATES ("2000 5000 10000"),
#      LIMIT (5000 concurrent), SIPP_TIMEOUT (60), CARILLON_BIN (skip build),
#      CARGO_TARGET_DIR (default ./target), PROFILE=/path/prefix to record
#      `perf record -g` of the switch during each run (PROFILE.<rate>;
#      PERF_CALLGRAPH="--call-graph dwarf" for exact callers),
#      STEADY_FROM=SECONDS: also report the steady state, i.e. the
#      registrations completed and the switch CPU used from SECONDS after
#      the start to the end (give COUNT for well over 32 s of load: a
#      completed REGISTER transaction is kept 32 s, so the switch's memory
#      stops growing, and page faults stop, only after that),
#      Also prints the switch CPU per registration by thread name, and
#      with SIPP_EXTRA="-trace_rtt -rtt_freq 1000" the registration time
#      percentiles (first REGISTER to 200, SIPp's whole milliseconds).
#      STRACE=/path/prefix to count the switch's system calls during each
#      run (`strace -c -f`, written to STRACE.<rate>; it slows the switch,
#      so read its counts, not the CPU figures of that run).
# Only the processes this script starts are stopped, by PID.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
USERS="${USERS:-10000}"
COUNT="${COUNT:-10000}"
RATES="${RATES:-2000 5000 10000}"
LIMIT="${LIMIT:-5000}"
SIPP_TIMEOUT="${SIPP_TIMEOUT:-60}"
SCENARIO="$ROOT/tests/sipp/register_auth.xml"

command -v sipp >/dev/null || { echo "sipp not found (apt-get install -y sip-tester)" >&2; exit 2; }

carillon_bin "$ROOT"

SWITCH_PID=""
SIPP_PID=""
bench_pids() { echo $SIPP_PID $SWITCH_PID; }
bench_workdir carillon-regload


# Users and the SIPp injection file.
write_register_users "$USERS" > "$WORK/users.toml"
write_register_csv "$USERS" > "$WORK/users.csv"


run_rate() {
    local rate="$1"
    local port sport run
    port="$(free_port)"
    sport="$(free_port)"
    run="$WORK/rate-$rate"
    mkdir -p "$run/config"
    cp "$WORK/users.toml" "$run/config/users.toml"
    write_register_config "$run" "$port" > "$run/config/carillon.toml"
    RUST_LOG=warn "$CARILLON_BIN" run --config "$run/config" > "$run/carillon.log" 2>&1 &
    SWITCH_PID=$!
    wait_udp_listener "$port" "$SWITCH_PID" "$run/carillon.log" carillon

    local cpu0 cpu1 t0 t1 rc=0
    cpu0="$(cpu_ticks "$SWITCH_PID")"
    local split0 split1
    split0="$(cpu_split "$SWITCH_PID")"
    local flt0 flt1
    flt0="$(minor_faults "$SWITCH_PID")"
    thread_ticks "$SWITCH_PID" > "$run/threads0"
    local perf_pid=""
    if [ -n "${PROFILE:-}" ]; then
        # Optional: sample the switch with perf while SIPp runs.
        perf record -F 1999 ${PERF_CALLGRAPH:--g} -p "$SWITCH_PID" -o "$PROFILE.$rate" > "$run/perf.log" 2>&1 &
        perf_pid=$!
        sleep 0.5
    fi
    local strace_pid=""
    if [ -n "${STRACE:-}" ]; then
        strace -c -f -p "$SWITCH_PID" -o "$STRACE.$rate" > "$run/strace.log" 2>&1 &
        strace_pid=$!
        sleep 0.5
    fi
    t0="$(date +%s.%N)"
    local cpu_w=-1 ok_w=-1
    if [ -n "${STEADY_FROM:-}" ]; then
        SIPP_STAT_PERIOD=1 start_sipp_register "$run" "$port" "$sport" "$rate"
        local waited=0
        while [ "$waited" -lt "$STEADY_FROM" ] && kill -0 "$SIPP_PID" 2>/dev/null; do
            sleep 1
            waited=$((waited + 1))
        done
        if kill -0 "$SIPP_PID" 2>/dev/null; then
            cpu_w="$(cpu_ticks "$SWITCH_PID")"
            ok_w="$(python3 -c '
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
print(rows[-1][rows[0].index("SuccessfulCall(C)")] if len(rows) > 1 else -1)' "$run/stat.csv")"
        fi
    else
        start_sipp_register "$run" "$port" "$sport" "$rate"
    fi
    wait "$SIPP_PID" || rc=$?
    SIPP_PID=""
    t1="$(date +%s.%N)"
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
    fi
    if [ -n "$strace_pid" ]; then
        kill -INT "$strace_pid" 2>/dev/null || true
        wait "$strace_pid" 2>/dev/null || true
    fi
    # Let deferred work (binding writes to the database) finish and count it.
    sleep 1
    cpu1="$(cpu_ticks "$SWITCH_PID")"
    split1="$(cpu_split "$SWITCH_PID")"
    flt1="$(minor_faults "$SWITCH_PID")"
    thread_ticks "$SWITCH_PID" > "$run/threads1"
    local rss_kib
    rss_kib="$(awk '/^VmRSS:/ {print $2}' "/proc/$SWITCH_PID/status")"
    kill "$SWITCH_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SWITCH_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SWITCH_PID" 2>/dev/null || true
    wait "$SWITCH_PID" 2>/dev/null || true
    SWITCH_PID=""

    python3 - "$run/stat.csv" "$t0" "$t1" "$cpu0" "$cpu1" "$clk_tck" "$rate" "$rc" "$rss_kib" "$cpu_w" "$ok_w" "$run/threads0" "$run/threads1" <<'PY'
import csv, sys
path, t0, t1, c0, c1, tck, rate, rc, rss, cw, okw, th0, th1 = sys.argv[1:]
rows = list(csv.reader(open(path), delimiter=";"))
head, last = rows[0], rows[-1]
col = lambda name: int(last[head.index(name)])
ok, failed = col("SuccessfulCall(C)"), col("FailedCall(C)")
wall = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(tck)
print(f"rate={rate}/s  completed={ok}  failed={failed}  wall={wall:.2f}s  "
      f"registrations/s={ok / wall:.0f}  switch_cpu={cpu:.2f}s  "
      f"per_core_second={ok / cpu if cpu > 0 else float('inf'):.0f}  "
      f"(REGISTER transactions per core-second={2 * ok / cpu if cpu > 0 else float('inf'):.0f}, sipp exit {rc})  "
      f"switch_rss={int(rss) / 1024:.1f}MiB")
def threads(p):
    return {k: int(v) for k, v in (l.split() for l in open(p) if l.strip())}
a, b = threads(th0), threads(th1)
per = {k: (b[k] - a.get(k, 0)) / int(tck) for k in b if b[k] - a.get(k, 0) > 0}
if ok > 0:
    print("  switch CPU per registration by thread: " + ", ".join(
        f"{k} {v / ok * 1e6:.1f}us" for k, v in sorted(per.items(), key=lambda kv: -kv[1])))
import glob, os
rtt = sorted(glob.glob(os.path.join(os.path.dirname(path), "*_rtt.csv")))
if rtt:
    # SIPp -trace_rtt (SIPP_EXTRA="-trace_rtt -rtt_freq N"): first REGISTER
    # sent to 200 received, whole milliseconds.
    v = sorted(float(l.split(";")[1]) for l in open(rtt[-1]).readlines()[1:] if l.count(";") == 2)
    if v:
        q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
        print(f"  registration time (ms, SIPp rtd): p50={q(0.5):.0f} p90={q(0.9):.0f} p99={q(0.99):.0f} max={v[-1]:.0f} n={len(v)}")
if int(cw) >= 0 and int(okw) >= 0:
    cpu_s = (int(c1) - int(cw)) / int(tck)
    n = ok - int(okw)
    print(f"  steady state (from the window start to the end): registrations={n}  "
          f"switch_cpu={cpu_s:.2f}s  per_core_second={n / cpu_s if cpu_s > 0 else float('inf'):.0f}")
PY
    print_split "$split0" "$split1" "$(sipp_ok "$run/stat.csv")"
    echo "  page faults: $((flt1 - flt0)) (minor)"
}

for r in $RATES; do
    run_rate "$r"
done
