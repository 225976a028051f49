# Shared by the benchmark scripts (sourced, not run): a private work
# directory removed at exit, the PIDs this script started stopped at exit
# (SIGTERM, then SIGKILL after 5 s; never any other process), a free
# loopback UDP port, and CPU ticks of a process.
#
#   source "$(dirname "$0")/lib.sh"      (or ../lib.sh from a subfolder)
#   bench_pids() { echo $SWITCH_PID $LOAD_PID; }   # what to stop at exit
#   bench_workdir carillon-callload      # sets WORK, installs the EXIT trap
#   port="$(free_port)"; t="$(cpu_ticks "$pid")"

stop_pids() {
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
}

bench_cleanup() {
    # shellcheck disable=SC2046
    stop_pids $(bench_pids 2>/dev/null)
    if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}

bench_workdir() {
    WORK="$(mktemp -d "/tmp/$1.XXXXXX")"
    trap bench_cleanup EXIT
}

free_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

clk_tck="$(getconf CLK_TCK)"

# Sets CARILLON_BIN, unless already set, to this tree's optimized build
# (`cargo build --profile dist`, built now; repository root $1) and checks
# that it is there.
carillon_bin() {
    if [ -z "${CARILLON_BIN:-}" ]; then
        export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$1/target}"
        (cd "$1" && cargo build --profile dist -p carillon) >&2
        CARILLON_BIN="$CARGO_TARGET_DIR/dist/carillon"
    fi
    [ -x "$CARILLON_BIN" ] || { echo "no binary at $CARILLON_BIN" >&2; exit 2; }
}

# utime + stime of one process, in clock ticks.
cpu_ticks() { sed -e 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# "utime stime" of the processes given, summed, in clock ticks: user code
# against the kernel (system calls, page faults, and the loopback delivery
# of every datagram sent, which the kernel charges to the sender).
cpu_split() {
    local p
    for p in "$@"; do sed -e 's/^.*) //' "/proc/$p/stat" 2>/dev/null; done |
        awk '{u += $12; s += $13} END {print u + 0, s + 0}'
}

# Minor page faults of one process so far (all its threads).
minor_faults() { sed -e 's/^.*) //' "/proc/$1/stat" | awk '{print $8}'; }

# Successful calls (registrations) in a SIPp -trace_stat file.
sipp_ok() {
    python3 -c 'import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
print(rows[-1][rows[0].index("SuccessfulCall(C)")] if len(rows) > 1 else 0)' "$1"
}

# Prints "  CPU per registration: user U us, kernel K us (kernel share P %)"
# from two cpu_split readings ($1, $2), the registrations ($3).
print_split() {
    python3 - "$1" "$2" "$3" "$clk_tck" <<'PY'
import sys
(u0, s0), (u1, s1) = (map(int, a.split()) for a in sys.argv[1:3])
ok, tck = int(sys.argv[3]), int(sys.argv[4])
u, s = (u1 - u0) / tck, (s1 - s0) / tck
if ok > 0 and u + s > 0:
    print(f"  CPU per registration: user {u / ok * 1e6:.1f}us, kernel {s / ok * 1e6:.1f}us "
          f"(kernel share {100 * s / (u + s):.0f} %)")
PY
}

# utime + stime per thread name of one process ("name ticks" lines, threads
# of one name summed; names as the kernel truncates them to 15 bytes).
thread_ticks() {
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s %s\n' "$(tr ' ' '_' < "$t/comm" 2>/dev/null)" \
            "$(sed -e 's/^.*) //' "$t/stat" 2>/dev/null | awk '{print $12 + $13}')"
    done | awk 'NF == 2 {a[$1] += $2} END {for (k in a) print k, a[k]}'
}

# Busy ticks of the whole machine, all CPUs (user, nice, system, irq,
# softirq, steal): what a kernel fast path costs wherever it is charged.
machine_busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# run_time_ns and run_cnt of the BPF programs a process holds, summed
# (kernel.bpf_stats_enabled must be 1): "ns count".
bpf_prog_stats() {
    local ns=0 cnt=0 f v c
    for f in /proc/"$1"/fdinfo/*; do
        grep -q '^prog_type' "$f" 2>/dev/null || continue
        v="$(awk '/^run_time_ns/ {print $2}' "$f")"; c="$(awk '/^run_cnt/ {print $2}' "$f")"
        ns=$((ns + ${v:-0})); cnt=$((cnt + ${c:-0}))
    done
    echo "$ns $cnt"
}

# utime + stime of a process and its direct children (Kamailio forks its
# workers and timers under the main process).
tree_pids() { echo "$1"; pgrep -P "$1" || true; }
tree_cpu_ticks() {
    local t=0 p v
    for p in $(tree_pids "$1"); do
        v="$(sed -e 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')" || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# Starts tests/sipp/register_auth.xml in the background (in directory $1)
# against 127.0.0.1:$2 from local port $3 at $4 registrations/s; uses
# SCENARIO, WORK/users.csv, LIMIT, COUNT and SIPP_TIMEOUT (SIPP_EXTRA: more
# sipp options, e.g. "-trace_rtt"); sets SIPP_PID.
start_sipp_register() {
    local run="$1" port="$2" sport="$3" rate="$4"
    (cd "$run" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sf "$SCENARIO" -inf "$WORK/users.csv" \
        -i 127.0.0.1 -p "$sport" "127.0.0.1:$port" \
        -r "$rate" -rp 1000 -l "$LIMIT" -m "$COUNT" \
        -timeout "${SIPP_TIMEOUT}s" -timeout_error -nostdin \
        -trace_stat -stf "$run/stat.csv" -fd "${SIPP_STAT_PERIOD:-60}" \
        ${SIPP_EXTRA:-} > "$run/sipp.out" 2> "$run/sipp.err") &
    SIPP_PID=$!
}

# The SIPp injection file for register_auth.xml: users 100000.. with
# password pw<ext>, $1 of them.
write_register_csv() {
    echo SEQUENTIAL
    for i in $(seq 0 $(($1 - 1))); do
        ext=$((100000 + i))
        echo "$ext;[authentication username=$ext password=pw$ext]"
    done
}

# users.toml for the REGISTER benchmarks: $1 users 100000.. with password
# pw<ext> (the same users write_register_csv gives SIPp).
write_register_users() {
    echo '[defaults]'
    echo 'context = "internal"'
    echo 'max_contacts = 3'
    local i ext
    for i in $(seq 0 $(($1 - 1))); do
        ext=$((100000 + i))
        printf '\n[[user]]\nextension = "%s"\npassword = "pw%s"\n' "$ext" "$ext"
    done
}

# The same users as a db_text table for Kamailio's htable (see
# benches/kamailio/register.cfg).
write_kamailio_users() {
    echo 'id(int,auto) key_name(str) key_type(int) value_type(int) key_value(str) expires(int)'
    local i
    for i in $(seq 0 $(($1 - 1))); do
        echo "$((i + 1)):$((100000 + i)):0:0:pw$((100000 + i)):0"
    done
}

# carillon.toml for the REGISTER benchmarks: UDP on 127.0.0.1:$2, SQLite
# and the CDR spool in directory $1, 127.0.0.1 exempt from rate limits and
# bans, MD5 challenges only (what SIPp answers).
write_register_config() {
    cat <<TOML
[general]
realm = "carillon"

[[listen]]
transport = "udp"
address = "127.0.0.1:$2"

[database]
url = "sqlite://$1/carillon.db"
cdr_spool = "$1/cdr-spool.jsonl"

[registrar]
min_expires = 60
max_expires = 3600
default_expires = 3600

[security]
exempt = ["127.0.0.1"]
digest_algorithms = ["MD5"]
TOML
}

# Waits (at most 10 s, or $5 tenths of a second) until something listens
# on UDP 127.0.0.1:$1; if process $2 exits or time runs out, prints log $3
# (of server $4) and exits.
wait_udp_listener() {
    local port="$1" pid="$2" log="$3" name="$4" tries="${5:-100}"
    for _ in $(seq "$tries"); do
        if ss -Hlun "sport = :$port" 2>/dev/null | grep -q .; then sleep 0.5; return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "$name did not start; log:" >&2
    cat "$log" >&2
    exit 1
}
