#!/usr/bin/env bash
# Interop/reference run: carillon-load (--role both) through Debian's
# Kamailio 5.6 as a stateful record-routing proxy (bounded).
#
# Kamailio runs benches/kamailio/proxy.cfg in the foreground on
# 127.0.0.1:<free port> with CHILDREN UDP workers and relays every new
# request to the load tool's answering side (UAS_URI); ACK/BYE follow the
# Record-Route. RTP is not touched by Kamailio: it flows end to end between
# the tool's two sides. Prints the load tool's results (calls, failures,
# setup times, RTP loss) and Kamailio's CPU (utime+stime of all its
# processes from /proc) per call.
#
# Modes (MODE=...):
#   cps  signalling only: RATE calls/s of HOLD-second calls for SECONDS_RUN s.
#   rtp  CALLS calls at RAMP_RATE/s, each held HOLD_RTP s, with 20 ms G.711
#        µ-law RTP both ways.
#
# Usage: MODE=cps RATE=500 SECONDS_RUN=10 benches/kamailio/call_load.sh
#        MODE=rtp CALLS=200 benches/kamailio/call_load.sh
# Env: LOAD_BIN (default $CARGO_TARGET_DIR/release/carillon-load, built if
#      missing), CHILDREN (2), KAMAILIO (kamailio), KEEP_WORK=1,
#      KAM_ARGS (extra kamailio options, e.g. "-x tlsf"; "-A TRACE" logs
#      one line per request/reply in the kept kamailio.log).
# Only the processes this script starts are stopped, by PID.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MODE="${MODE:-cps}"
RATE="${RATE:-500}"
SECONDS_RUN="${SECONDS_RUN:-10}"
HOLD="${HOLD:-3}"
CALLS="${CALLS:-200}"
RAMP_RATE="${RAMP_RATE:-100}"
HOLD_RTP="${HOLD_RTP:-10}"
CHILDREN="${CHILDREN:-2}"
KAMAILIO="${KAMAILIO:-kamailio}"
CFG="$HERE/proxy.cfg"

command -v "$KAMAILIO" >/dev/null || { echo "kamailio not found (apt-get install -y kamailio)" >&2; exit 2; }
if [ -z "${LOAD_BIN:-}" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
    LOAD_BIN="$CARGO_TARGET_DIR/release/carillon-load"
    [ -x "$LOAD_BIN" ] || (cd "$ROOT" && cargo build --release -p carillon-load) >&2
fi
[ -x "$LOAD_BIN" ] || { echo "no binary at $LOAD_BIN" >&2; exit 2; }

KAM_PID=""
LOAD_PID=""
bench_pids() { echo $LOAD_PID $KAM_PID; }
bench_workdir kamailio-callload


SIP_PORT="$(free_port)"
UAS_PORT="$(free_port)"
UAC_PORT="$(free_port)"

if [ "$MODE" = cps ]; then
    bound=$((SECONDS_RUN * 3 + HOLD + 60))
else
    bound=$((CALLS / RAMP_RATE + HOLD_RTP + 90))
fi
(cd "$WORK" && exec timeout $((bound + 30)) "$KAMAILIO" -f "$CFG" -DD -E \
    -l "udp:127.0.0.1:$SIP_PORT" -A "CHILDREN=$CHILDREN" \
    -A "UAS_URI=\"sip:127.0.0.1:$UAS_PORT\"" -m 256 -M 16 -Y "$WORK" -w "$WORK" ${KAM_ARGS:-} \
    > "$WORK/kamailio.log" 2>&1) &
KAM_PID=$!
wait_udp_listener "$SIP_PORT" "$KAM_PID" "$WORK/kamailio.log" kamailio
MAIN_PID="$(pgrep -P "$KAM_PID" | head -1)"

common=(--target "127.0.0.1:$SIP_PORT" --role both --uas-listen "127.0.0.1:$UAS_PORT"
        --uac-listen "127.0.0.1:$UAC_PORT" --local-ip 127.0.0.1 --callee 2000-2999
        --report json)
case "$MODE" in
cps)
    calls=$((RATE * SECONDS_RUN))
    extra=(--rate "$RATE" --concurrency $((RATE * (HOLD + 2) * 2)) --calls "$calls"
           --duration "${HOLD}s")
    ;;
rtp)
    extra=(--rate "$RAMP_RATE" --concurrency "$CALLS" --calls "$CALLS" --duration "${HOLD_RTP}s"
           --rtp --codec pcmu --ptime 20 --media-threads "${MEDIA_THREADS:-2}")
    ;;
*) echo "unknown MODE=$MODE" >&2; exit 2 ;;
esac

cpu0="$(tree_cpu_ticks "$MAIN_PID")"; t0="$(date +%s.%N)"
rc=0
timeout "$bound" "$LOAD_BIN" "${common[@]}" "${extra[@]}" --max-time "$((bound - 10))s" \
    > "$WORK/report.json" 2> "$WORK/load.err" &
LOAD_PID=$!
wait "$LOAD_PID" || rc=$?
LOAD_PID=""
t1="$(date +%s.%N)"; cpu1="$(tree_cpu_ticks "$MAIN_PID")"
kill "$MAIN_PID" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$KAM_PID" 2>/dev/null || break; sleep 0.1; done

python3 - "$WORK/report.json" "$t0" "$t1" "$cpu0" "$cpu1" "$clk_tck" "$MODE" "$rc" "$CHILDREN" <<'PY'
import json, sys
path, t0, t1, c0, c1, tck, mode, rc, children = sys.argv[1:]
r = json.load(open(path))
u, s, rtp = r["uac"], r.get("uas") or {}, r.get("rtp") or {}
wall = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(tck)
n = max(u["attempted"], 1)
print(f"kamailio proxy mode={mode} children={children} attempted={u['attempted']} answered={u['answered']} "
      f"completed={u['completed']} failed={u['failed']} failure_pct={r['failure_pct']:.3f} "
      f"achieved_cps={u.get('cps_attempted', 0):.0f} setup_ms_p50={u['setup_ms'].get('p50')} "
      f"setup_ms_p99={u['setup_ms'].get('p99')} wall={wall:.1f}s kamailio_cpu={cpu:.2f}s "
      f"kamailio_cpu_per_call={cpu / n * 1e6:.0f}us "
      f"=> calls_per_core_second={n / cpu if cpu else float('inf'):.0f} (load tool exit {rc})")
for d in ("uac_to_uas", "uas_to_uac"):
    x = rtp.get(d)
    if x:
        print(f"  rtp {d}: sent={x.get('packets_sent')} received={x.get('packets_received')} "
              f"lost={x.get('packets_lost')} loss_pct={x.get('loss_pct')} "
              f"jitter_mean_ms={x.get('jitter_mean_ms')} payload_mismatch={x.get('payload_mismatch')}")
PY
