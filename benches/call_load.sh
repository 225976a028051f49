#!/usr/bin/env bash
# Call capacity of an optimized `carillon` (profile dist), driven by `carillon-load` (bounded).
#
# The switch gets a temporary config: a trunk `loadgen` whose contact is the
# load tool's answering side and whose `identify` is 127.0.0.1, so calls from
# the load tool's calling side enter context `bench`, where `_2XXX` dials
# trunk/loadgen/${EXTEN}: every call is relayed through the B2BUA and (with
# RTP) the media plane. 127.0.0.1 is exempt from rate limits.
#
# Modes (MODE=...):
#   cps        signalling only: RATE calls/s of HOLD-second calls for
#              SECONDS seconds; prints achieved CPS, failures and the
#              switch's CPU per 100 CPS.
#   relay      CALLS concurrent calls with 20 ms G.711 µ-law RTP both ways;
#              after the ramp, measures the switch's CPU and memory over a
#              WINDOW-second steady state: CPU per 100 calls, calls per core
#              (100 % of one core), memory per call, RTP loss per direction.
#   transcode  as relay, but the answering side speaks only A-law and the
#              trunk allows only alaw: the switch transcodes every packet.
#
# Relay options:
#   RECORD=1   every call is recorded: the dialplan runs MixMonitor (mono;
#              RECORD_OPTIONS=D for stereo) before Dial, so each relayed call
#              also writes a WAV under the work dir's recordings/ (a tapped
#              flow: never kernel-forwarded). Run it alternated with RECORD=0
#              (benches/recording_load.sh) to compare.
#   KERNEL=1   `[rtp] kernel_forwarding = true`: latched same-codec flows are
#              forwarded by the eBPF program at TC ingress (needs root). The switch process
#              then hardly runs; the forwarding is charged to whoever's
#              softirq delivers the packet, so the figure to read is
#              machine_cpu (all processes and kernel) against DIRECT=1.
#   DIRECT=1   the load tool calls its own answering side directly, no
#              switch in the path: the machine's CPU for the same calls and
#              packets without any relay (the baseline for KERNEL=1).
#
# Usage: MODE=cps RATE=1000 benches/call_load.sh
#        MODE=relay CALLS=1000 benches/call_load.sh
# Env: CARILLON_BIN / LOAD_BIN (skip the build), CARGO_TARGET_DIR,
#      KEEP_WORK=1 (keep the temp dir with logs and the JSON report).
# Only the processes this script starts are stopped, by PID.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/lib.sh"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODE="${MODE:-cps}"
RATE="${RATE:-500}"
SECONDS_RUN="${SECONDS_RUN:-20}"
HOLD="${HOLD:-3}"
CALLS="${CALLS:-500}"
WINDOW="${WINDOW:-10}"
RAMP_RATE="${RAMP_RATE:-200}"

if [ -z "${CARILLON_BIN:-}" ] || [ -z "${LOAD_BIN:-}" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
    (cd "$ROOT" && cargo build --profile dist -p carillon -p carillon-load) >&2
    CARILLON_BIN="${CARILLON_BIN:-$CARGO_TARGET_DIR/dist/carillon}"
    LOAD_BIN="${LOAD_BIN:-$CARGO_TARGET_DIR/dist/carillon-load}"
fi

SWITCH_PID=""
LOAD_PID=""
bench_pids() { echo $LOAD_PID $SWITCH_PID; }
bench_workdir carillon-callload

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

SIP_PORT="$(free_port)"
UAS_PORT="$(free_port)"
UAC_PORT="$(free_port)"
CODEC=pcmu
UAS_CODEC=pcmu
ALLOW='["ulaw", "alaw"]'
if [ "$MODE" = transcode ]; then
    UAS_CODEC=pcma
    ALLOW='["alaw"]'
fi

mkdir -p "$WORK/config"
cat > "$WORK/config/carillon.toml" <<TOML
[general]
realm = "carillon"

[[listen]]
transport = "udp"
address = "127.0.0.1:$SIP_PORT"

[database]
url = "sqlite://$WORK/carillon.db"
cdr_spool = "$WORK/cdr-spool.jsonl"

[security]
exempt = ["127.0.0.1"]
digest_algorithms = ["MD5"]

# 4 ports per call (RTP+RTCP on each leg): 49,000 ports hold ~12,000
# concurrent calls (2,500 CPS of 3 s calls need 7,500).
[rtp]
port_min = 16384
port_max = 65534
$([ "${KERNEL:-0}" = 1 ] && echo "kernel_forwarding = true")

$([ "${RECORD:-0}" = 1 ] && printf '[recording]\ndir = "%s/recordings"\n' "$WORK")
TOML
cat > "$WORK/config/users.toml" <<TOML
[[user]]
extension = "100"
password = "unused-100"
context = "bench"
TOML
cat > "$WORK/config/trunks.toml" <<TOML
[trunk.loadgen]
kind = "carrier"
contacts = ["sip:127.0.0.1:$UAS_PORT"]
identify = ["127.0.0.1"]
context = "bench"
allow = $ALLOW
TOML
MIXMONITOR=""
if [ "${RECORD:-0}" = 1 ]; then
    MIXMONITOR="{ app = \"MixMonitor\", options = \"${RECORD_OPTIONS:-}\" },"
fi
cat > "$WORK/config/dialplan.toml" <<TOML
[context.bench]
allow_trunks = ["loadgen"]

[[context.bench.extension]]
match = "_2XXX"
steps = [
  $MIXMONITOR
  { app = "Dial", targets = ["trunk/loadgen/\${EXTEN}"], timeout = 30 },
  { app = "Hangup" },
]
TOML
"$CARILLON_BIN" check-config "$WORK/config" >&2

RUST_LOG=warn "$CARILLON_BIN" run --config "$WORK/config" > "$WORK/carillon.log" 2>&1 &
SWITCH_PID=$!
wait_udp_listener "$SIP_PORT" "$SWITCH_PID" "$WORK/carillon.log" carillon
rss0="$(rss_kb "$SWITCH_PID")"

TARGET_PORT="$SIP_PORT"
[ "${DIRECT:-0}" = 1 ] && TARGET_PORT="$UAS_PORT"
common=(--target "127.0.0.1:$TARGET_PORT" --role both --uas-listen "127.0.0.1:$UAS_PORT"
        --uac-listen "127.0.0.1:$UAC_PORT" --local-ip 127.0.0.1 --callee 2000-2999
        --report json)

case "$MODE" in
cps)
    calls=$((RATE * SECONDS_RUN))
    conc=$((RATE * (HOLD + 2) * 2))
    cpu0="$(cpu_ticks "$SWITCH_PID")"; t0="$(date +%s.%N)"
    timeout $((SECONDS_RUN * 3 + HOLD + 60)) "$LOAD_BIN" "${common[@]}" --rate "$RATE" \
        --concurrency "$conc" --calls "$calls" --duration "${HOLD}s" \
        --max-time "$((SECONDS_RUN * 3 + HOLD + 40))s" > "$WORK/report.json" || true
    t1="$(date +%s.%N)"; cpu1="$(cpu_ticks "$SWITCH_PID")"
    python3 - "$WORK/report.json" "$t0" "$t1" "$cpu0" "$cpu1" "$clk_tck" "$RATE" <<'PY'
import json, sys
path, t0, t1, c0, c1, tck, rate = sys.argv[1:]
r = json.load(open(path))
u = r["uac"]
wall = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(tck)
cps = u.get("cps_attempted", 0)
print(f"mode=cps rate={rate}/s attempted={u['attempted']} answered={u['answered']} "
      f"completed={u['completed']} failed={u['failed']} failure_pct={r['failure_pct']:.3f} "
      f"achieved_cps={cps:.0f} setup_ms_p50={u['setup_ms'].get('p50')} "
      f"setup_ms_p99={u['setup_ms'].get('p99')} switch_cpu={cpu:.2f}s wall={wall:.1f}s "
      f"switch_cpu_per_call={cpu / max(u['attempted'], 1) * 1e6:.0f}us "
      f"cpu_per_100cps={cpu / max(u['attempted'], 1) * 100 * 100:.1f}% of a core "
      f"=> calls_per_core_second={u['attempted'] / cpu if cpu else float('inf'):.0f}")
PY
    ;;
relay|transcode)
    ramp=$(( (CALLS + RAMP_RATE - 1) / RAMP_RATE ))
    hold=$((ramp + WINDOW + 6))
    timeout $((hold * 2 + 90)) "$LOAD_BIN" "${common[@]}" --rate "$RAMP_RATE" \
        --concurrency "$CALLS" --calls "$CALLS" --duration "${hold}s" \
        --rtp --codec "$CODEC" --uas-codec "$UAS_CODEC" --ptime 20 --media-threads "${MEDIA_THREADS:-2}" \
        --max-time "$((hold * 2 + 60))s" > "$WORK/report.json" &
    LOAD_PID=$!
    sleep $((ramp + 3))
    if [ "${KERNEL:-0}" = 1 ]; then
        bpf_stats_was="$(cat /proc/sys/kernel/bpf_stats_enabled)"
        echo 1 > /proc/sys/kernel/bpf_stats_enabled
    fi
    read -r bpf_ns0 bpf_cnt0 < <(bpf_prog_stats "$SWITCH_PID")
    cpu0="$(cpu_ticks "$SWITCH_PID")"; t0="$(date +%s.%N)"; m0="$(machine_busy_ticks)"
    if [ "${PERF_STAT:-0}" = 1 ]; then
        # System calls, context switches and CPU of the switch in the window
        # (software counters: they work where hardware ones are not exposed).
        perf stat -x, -e raw_syscalls:sys_enter,context-switches,task-clock \
            -p "$SWITCH_PID" -o "$WORK/perf_stat.csv" -- sleep "$WINDOW" 2>/dev/null
    else
        sleep "$WINDOW"
    fi
    cpu1="$(cpu_ticks "$SWITCH_PID")"; t1="$(date +%s.%N)"; m1="$(machine_busy_ticks)"
    read -r bpf_ns1 bpf_cnt1 < <(bpf_prog_stats "$SWITCH_PID")
    if [ "${KERNEL:-0}" = 1 ]; then echo "$bpf_stats_was" > /proc/sys/kernel/bpf_stats_enabled; fi
    rss1="$(rss_kb "$SWITCH_PID")"
    load_cpu="$(cpu_ticks "$LOAD_PID" 2>/dev/null || echo 0)"
    threads="$(ls /proc/$SWITCH_PID/task | wc -l)"
    wait "$LOAD_PID" || true
    LOAD_PID=""
    python3 - "$WORK/report.json" "$t0" "$t1" "$cpu0" "$cpu1" "$clk_tck" "$CALLS" "$rss0" "$rss1" "$MODE" "$threads" "$m0" "$m1" "${KERNEL:-0}" "${DIRECT:-0}" "$((bpf_ns1 - bpf_ns0))" "$((bpf_cnt1 - bpf_cnt0))" <<'PY'
import json, sys
path, t0, t1, c0, c1, tck, calls, rss0, rss1, mode, threads, m0, m1, kernel, direct, bpf_ns, bpf_cnt = sys.argv[1:]
r = json.load(open(path))
u, rtp = r["uac"], r.get("rtp") or {}
wall = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(tck)
frac = cpu / wall
calls = int(calls)
per_call_kb = (int(rss1) - int(rss0)) / calls
print(f"mode={mode} calls={calls} answered={u['answered']} failed={u['failed']} peak={u['peak_concurrent']} "
      f"switch_cpu_in_window={frac * 100:.1f}% of a core ({threads} threads) "
      f"cpu_per_100_calls={frac * 100 / calls * 100:.2f}% "
      f"=> calls_per_core={calls / frac if frac else float('inf'):.0f} "
      f"memory_per_call={per_call_kb:.1f} KiB (rss {int(rss0)//1024}->{int(rss1)//1024} MiB)")
machine = (int(m1) - int(m0)) / int(tck) / wall
print(f"  kernel_forwarding={kernel == '1'} direct_no_switch={direct == '1'} "
      f"machine_cpu={machine * 100:.1f}% of a core (all processes, kernel included) "
      f"machine_cpu_per_100_calls={machine * 100 / calls * 100:.2f}%")
if int(bpf_cnt):
    ns, cnt = int(bpf_ns), int(bpf_cnt)
    print(f"  kernel program: {cnt} runs in the window ({cnt / wall:.0f}/s, every packet on the "
          f"interface), {ns / cnt:.0f} ns per run, {ns / wall / 1e9 * 100:.2f}% of a core")
for d in ("uac_to_uas", "uas_to_uac"):
    s = rtp.get(d, {})
    print(f"  rtp {d}: sent={s.get('packets_sent')} received={s.get('packets_received')} "
          f"lost={s.get('packets_lost')} loss_pct={s.get('loss_pct')} reordered={s.get('reordered')} "
          f"jitter_mean_ms={s.get('jitter_mean_ms')} jitter_max_ms={s.get('jitter_max_ms')} "
          f"payload_mismatch={s.get('payload_mismatch')}")
PY
    if [ -s "$WORK/perf_stat.csv" ]; then
        # Per relayed packet: each call is 2 directions x 50 packets/s.
        python3 - "$WORK/perf_stat.csv" "$CALLS" "$WINDOW" <<'PY'
import sys
path, calls, window = sys.argv[1:]
counts = {}
for line in open(path):
    f = line.strip().split(",")
    if len(f) > 2 and f[0] and not line.startswith("#"):
        try:
            counts[f[2]] = float(f[0])
        except ValueError:
            pass
packets = int(calls) * 100 * int(window)
sc = counts.get("raw_syscalls:sys_enter", 0)
cs = counts.get("context-switches", 0)
tc = counts.get("task-clock", 0)
print(f"  perf_stat: syscalls_per_packet={sc / packets:.3f} context_switches_per_packet={cs / packets:.4f} "
      f"cpu_us_per_packet={tc * 1e3 / packets:.3f} (packets={packets}, task-clock {tc:.0f} ms)")
PY
    fi
    if [ "${RECORD:-0}" = 1 ]; then
        files="$(find "$WORK/recordings" -name '*.wav' | wc -l)"
        bytes="$(du -sb "$WORK/recordings" | cut -f1)"
        echo "  recorded=1 options=${RECORD_OPTIONS:-mono} wav_files=$files bytes=$bytes"
    else
        echo "  recorded=0"
    fi
    ;;
*) echo "unknown MODE=$MODE" >&2; exit 2 ;;
esac
