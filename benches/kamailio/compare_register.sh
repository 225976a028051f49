#!/usr/bin/env bash
# Back-to-back authenticated REGISTER runs: Kamailio (register_load.sh in
# this directory) then carillon (benches/register_load.sh), ROUNDS times,
# same RATES and COUNT, so the ratio is measured in the same minutes on the
# same (shared) cores. For carillon it also reads SIPp's retransmission
# count from its kept work directory (then removes that directory only).
#
# Usage: CARILLON_BIN=/path/to/carillon RATES="2000 5000 10000" ROUNDS=2 \
#            benches/kamailio/compare_register.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
ROUNDS="${ROUNDS:-2}"
export RATES="${RATES:-5000 10000}" COUNT="${COUNT:-10000}"
for round in $(seq "$ROUNDS"); do
    echo "== round $round $(date +%T) loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
    timeout 600 "$HERE/register_load.sh"
    before="$(ls -d /tmp/carillon-regload.* 2>/dev/null || true)"
    KEEP_WORK=1 timeout 600 "$ROOT/benches/register_load.sh"
    # Our kept work dir: new since the run started and holding exactly our
    # rate-* dirs. Anything else (another user's concurrent run) is left alone.
    want="$(for r in $RATES; do echo "rate-$r"; done | sort | tr '\n' ' ')"
    for d in $(ls -d /tmp/carillon-regload.* 2>/dev/null); do
        case " $before " in *" $d "*) continue ;; esac
        have="$(ls "$d" | grep '^rate-' | sort | tr '\n' ' ')"
        [ "$have" = "$want" ] || { echo "  (left alone: $d)"; continue; }
        for r in $RATES; do
            [ -f "$d/rate-$r/stat.csv" ] || continue
            python3 - "$d/rate-$r/stat.csv" "$r" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
h, l = rows[0], rows[-1]
print(f"  carillon rate={sys.argv[2]}/s sipp retransmissions={l[h.index('Retransmissions(C)')]}")
PY
        done
        rm -rf "$d"
    done
done
