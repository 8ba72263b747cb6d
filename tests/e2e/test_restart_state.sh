#!/usr/bin/env bash
# Learned state survives restarts:
#  1. after a snapshot, kill -9 and restart: the restored models give exactly
#     the forecast path they gave before;
#  2. N kill -9 restarts (default 100) at random moments while snapshots are
#     written every second and samples keep arriving: every start loads a
#     complete snapshot, never a corrupt one.
. "$(dirname "$0")/lib.sh"
e2e_require curl python3
PCFEED=$BUILD/pcfeed
PCREAD=$BUILD/pcread
RESTARTS=${PROMCAST_E2E_RESTARTS:-100}
SERIES=${PROMCAST_E2E_STATE_SERIES:-20000}

cat >"$WORK/promcast.yml" <<YAML
global: {step: 10s}
storage: {path: $WORK/state, snapshot_interval: 1s}
output: {history: 10m}
limits: {max_series: 100000}
rules:
  - match: '{__name__=~"pc_state|pc_load"}'
    seasons: []
    horizons: [1m, 5m]
remote_write: []
YAML

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
snapshots() { e2e_metric "$pc_URL" 'promcast_snapshots_total{result="ok"}' | awk '{ printf "%d", $1 }'; }

# read_path SELECTOR_MATCHERS... -> sorted "labels t bits" lines of the answer
read_path() {
    local now=$1
    shift
    "$PCREAD" request --types samples --query $((now - 3600000)) $((now + 3600000)) "$@" >"$WORK/rq.bin" &&
        curl -fsS -X POST -H 'Content-Type: application/x-protobuf' -H 'Content-Encoding: snappy' \
            --data-binary @"$WORK/rq.bin" "$pc_URL/api/v1/read" -o "$WORK/resp.bin" &&
        "$PCREAD" decode --samples --query $((now - 3600000)) $((now + 3600000)) <"$WORK/resp.bin" 2>/dev/null | sort
}

# ---- 1. a restart continues the forecast exactly --------------------------------
e2e_start_promcast pc --config.file="$WORK/promcast.yml"
now=$(now_ms)
from=$(( (now - 3 * 3600000) / 10000 * 10000 ))
"$PCFEED" "$pc_URL/api/v1/write" --name pc_state --series 50 --from $from --to $((now - 20000)) \
    --interval 10000 --period 1800000 >/dev/null || e2e_log "FAIL: feeding history"
base=$(snapshots)
two_more() { [ "$(snapshots)" -ge $((base + 2)) ]; }
e2e_wait_for "two snapshots after the feed" 60 two_more
read_path "$now" '__name__=~pc_state:yhat.*' >"$WORK/before.txt"
e2e_check "forecast path read before the restart ($(wc -l <"$WORK/before.txt") points)" \
    [ "$(wc -l <"$WORK/before.txt")" -gt 1000 ]
e2e_stop "$pc_PID" KILL
e2e_start_promcast pc --config.file="$WORK/promcast.yml"
grep -q 'msg="state restored".* series=50 ' "$WORK/pc.log" &&
    e2e_log "ok: 50 series restored" || { e2e_log "FAIL: restore log: $(grep restored "$WORK/pc.log")"; E2E_FAILS=$((E2E_FAILS + 1)); }
read_path "$now" '__name__=~pc_state:yhat.*' >"$WORK/after.txt"
e2e_check "the restored models give the same forecast path, bit for bit" \
    cmp -s "$WORK/before.txt" "$WORK/after.txt"
e2e_stop "$pc_PID" TERM

# ---- 2. kill -9 during snapshotting, again and again --------------------------------
mv "$WORK/pc.log" "$WORK/pc-part1.log"
e2e_start_promcast pc --config.file="$WORK/promcast.yml"
now=$(now_ms)
"$PCFEED" "$pc_URL/api/v1/write" --name pc_load --series "$SERIES" --from $((now - 600000)) \
    --to "$now" --interval 10000 >/dev/null || e2e_log "note: initial feed incomplete"
e2e_start feed "$PCFEED" "$pc_URL/api/v1/write" --name pc_load --series "$SERIES" \
    --from "$(now_ms)" --to $(( $(now_ms) + 86400000 )) --interval 2000 --realtime
port=${pc_URL##*:}
base=$(snapshots)
e2e_wait_for "first snapshot of the big state" 120 two_more
corrupt=0
interrupted=0
short=0
# Kill while a snapshot is being written: most rounds wait for the temp file
# of the next snapshot to appear and kill at once; the others kill at a
# random moment.
tmp_exists() { compgen -G "$WORK/state/*.tmp" >/dev/null; }
for i in $(seq 1 "$RESTARTS"); do
    if [ $((RANDOM % 10)) -lt 7 ]; then
        for _ in $(seq 1 500); do tmp_exists && break; sleep 0.01; done
    else
        sleep "$(python3 -c 'import random; print(round(random.uniform(0.2, 1.8), 2))')"
    fi
    kill -KILL "$pc_PID"
    tmp_exists && interrupted=$((interrupted + 1))
    e2e_stop "$pc_PID" KILL
    mv "$WORK/pc.log" "$WORK/pc-kill-$i.log"
    # Same port, so the feeder reconnects.
    e2e_start pc "$PROMCAST" --config.file="$WORK/promcast.yml" --web.listen-address=127.0.0.1:$port
    e2e_wait_for "restart $i ready" 120 curl -fsS "$pc_URL/-/ready" || break
    log=$WORK/pc.log
    if grep -qiE 'corrupt|cannot load the snapshot' "$log"; then
        corrupt=$((corrupt + 1))
        e2e_log "restart $i: $(grep -iE 'corrupt|cannot load' "$log" | head -n 2)"
    fi
    n=$(sed -n 's/.*msg="state restored".* series=\([0-9]*\).*/\1/p' "$log")
    if [ -z "$n" ] || [ "$n" -lt "$SERIES" ]; then
        short=$((short + 1))
        e2e_log "restart $i: restored '${n:-none}' series: $(grep -E 'restored|snapshot' "$log" | head -n 2)"
    fi
done
e2e_log "$RESTARTS kill -9 restarts, $interrupted of them interrupted a snapshot being written"
e2e_eq "starts that met a corrupt snapshot or failed to load" "$corrupt" 0
e2e_eq "starts that restored fewer than all $SERIES series" "$short" 0
e2e_check "some kills landed while a snapshot was being written ($interrupted)" [ "$interrupted" -gt 0 ]
e2e_finish
