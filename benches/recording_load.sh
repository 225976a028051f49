#!/usr/bin/env bash
# Recorded against unrecorded relayed calls, alternated in one run
# (issue 13's recording benchmark): for each CALLS in $SIZES, ROUNDS
# rounds of `MODE=relay RECORD=0` then `MODE=relay RECORD=1` of
# benches/call_load.sh (same binaries, same machine state), printing each
# run's calls per core and, per size, the median ratio of CPU per call
# recorded / unrecorded. Bounded like call_load.sh; stops only what it
# starts (through call_load.sh).
#
# Usage: SIZES="200 500" ROUNDS=2 benches/recording_load.sh
# Env: as call_load.sh (CARILLON_BIN, LOAD_BIN, WINDOW, RECORD_OPTIONS=D).
set -euo pipefail
DIR="$(cd "$(dirname "$0")" && pwd)"
SIZES="${SIZES:-200 500}"
ROUNDS="${ROUNDS:-2}"
for calls in $SIZES; do
    for round in $(seq 1 "$ROUNDS"); do
        for rec in 0 1; do
            line="$(MODE=relay CALLS="$calls" RECORD="$rec" "$DIR/call_load.sh" 2>/dev/null)"
            cpc="$(echo "$line" | sed -n 's/.*calls_per_core=\([0-9.inf]*\).*/\1/p' | head -1)"
            echo "calls=$calls round=$round recorded=$rec calls_per_core=$cpc"
            echo "$line" | sed 's/^/    /'
        done
    done
done
