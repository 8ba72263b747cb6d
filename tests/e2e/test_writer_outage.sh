#!/usr/bin/env bash
# The remote-write client through a Prometheus outage: pcwrite (one writer,
# src/writer.c) writes S series x one sample per second to a real Prometheus
# 2.42 receiver; Prometheus is stopped (by PID) for OUTAGE seconds in the
# middle and restarted on the same port and data directory. Afterwards every
# enqueued sample must be in Prometheus exactly once (count_over_time per
# series) and pcwrite must report zero drops and nothing abandoned.
#
# Environment (defaults in brackets):
#   PROMCAST_E2E_OUTAGE_S  outage length [120, as the issue asks]
#   PROMCAST_E2E_BEFORE_S  writing before the outage [20]
#   PROMCAST_E2E_AFTER_S   writing after the restart [30]
#   PROMCAST_E2E_SERIES    series [20]
. "$(dirname "$0")/lib.sh"
e2e_require prometheus curl python3
PCWRITE=$BUILD/pcwrite
e2e_require "$PCWRITE"

OUTAGE=${PROMCAST_E2E_OUTAGE_S:-120}
BEFORE=${PROMCAST_E2E_BEFORE_S:-20}
AFTER=${PROMCAST_E2E_AFTER_S:-30}
SERIES=${PROMCAST_E2E_SERIES:-20}
TICKS=$((BEFORE + OUTAGE + AFTER))
METRIC=pcwrite_outage_test
PORT=$(e2e_free_port)
PROM=http://127.0.0.1:$PORT

cat >"$WORK/prometheus.yml" <<'YAML'
global:
  scrape_interval: 1m
YAML

start_prometheus() {
    e2e_start "$1" prometheus --config.file="$WORK/prometheus.yml" \
        --storage.tsdb.path="$WORK/tsdb" \
        --web.listen-address="127.0.0.1:$PORT" --web.enable-remote-write-receiver \
        --log.level=warn
    e2e_wait_for "prometheus ($1) ready" 60 curl -fsS "$PROM/-/ready" || exit 1
}

# query EXPR : print the JSON result vector of an instant query at now.
query() {
    curl -fsS -G "$PROM/api/v1/query" --data-urlencode "query=$1"
}

# last_progress FIELD : FIELD's value on pcwrite's last progress line.
last_progress() {
    grep '^progress ' "$WORK/pcw.log" | tail -n1 | tr ' ' '\n' | sed -n "s/^$1=//p"
}

start_prometheus prom1
e2e_log "writing $SERIES series for $TICKS s; outage of $OUTAGE s after $BEFORE s"
e2e_start pcw "$PCWRITE" --url "$PROM/api/v1/write" --metric "$METRIC" --series "$SERIES" \
    --ticks "$TICKS" --interval-ms 1000 --batch-deadline-ms 1000 --shards 2 \
    --min-backoff-ms 30 --max-backoff-ms 5000 --capacity 100000 --shutdown-timeout-ms 60000

sleep "$BEFORE"
e2e_check "samples reach Prometheus before the outage" \
    sh -c "curl -fsS -G '$PROM/api/v1/query' --data-urlencode 'query=count($METRIC)' | grep -q '\"$SERIES\"'"

e2e_log "stopping Prometheus (pid $prom1_PID) for $OUTAGE s"
e2e_stop "$prom1_PID" TERM
sleep "$OUTAGE"
pending_in_outage=$(last_progress pending)
retried_in_outage=$(last_progress retried)
e2e_check "samples queue up during the outage (pending=${pending_in_outage:-?})" \
    test "${pending_in_outage:-0}" -gt 0
e2e_check "sends are retried during the outage (retried=${retried_in_outage:-?})" \
    test "${retried_in_outage:-0}" -gt 0

start_prometheus prom2
e2e_log "Prometheus restarted (pid $prom2_PID); waiting for pcwrite to finish"
wait "$pcw_PID"
rc=$?
e2e_eq "pcwrite exit status" "$rc" 0
final=$(grep '^final ' "$WORK/pcw.log" | tail -n1)
e2e_log "$final"
field() { printf '%s\n' "$final" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

want=$((SERIES * TICKS))
e2e_eq "samples enqueued" "$(field enqueued)" "$want"
e2e_eq "samples accepted by the writer" "$(field accepted)" "$want"
e2e_eq "samples dropped" "$(field dropped)" 0
e2e_eq "samples abandoned at shutdown" "$(field abandoned)" 0
e2e_eq "samples sent (acknowledged)" "$(field sent)" "$want"
e2e_eq "samples pending at the end" "$(field pending)" 0

# Every sample exactly once: count per series over a window covering the run.
window=$(((TICKS + OUTAGE + 600)))
query "count_over_time(${METRIC}[${window}s])" >"$WORK/counts.json"
python3 - "$WORK/counts.json" "$SERIES" "$TICKS" >"$WORK/counts.txt" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
series, ticks = int(sys.argv[2]), int(sys.argv[3])
res = doc["data"]["result"]
total = sum(int(float(r["value"][1])) for r in res)
wrong = [r["metric"].get("series") + "=" + r["value"][1] for r in res
         if int(float(r["value"][1])) != ticks]
print(len(res), total, " ".join(wrong) or "none")
PY
read -r nseries total wrong <"$WORK/counts.txt"
e2e_eq "series stored in Prometheus" "$nseries" "$SERIES"
e2e_eq "samples stored in Prometheus (sum of count_over_time)" "$total" "$want"
e2e_eq "series with a wrong count" "$wrong" none

# No value was stored twice or altered: the values of each series are
# 0..TICKS-1, so their sum is TICKS*(TICKS-1)/2.
query "sum_over_time(${METRIC}[${window}s])" >"$WORK/sums.json"
badsum=$(python3 -c '
import json, sys
doc = json.load(open(sys.argv[1])); t = int(sys.argv[2])
print(sum(1 for r in doc["data"]["result"] if int(float(r["value"][1])) != t * (t - 1) // 2))
' "$WORK/sums.json" "$TICKS")
e2e_eq "series whose values do not sum to 0+1+...+$((TICKS - 1))" "$badsum" 0

e2e_finish
