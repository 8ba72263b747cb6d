#!/usr/bin/env bash
# The write-back through a Prometheus outage, end to end: pcfeed sends live
# samples to promcast (10 series, one per second, 2 s step); promcast writes
# its outputs to a real Prometheus 2.42 receiver, which is stopped (by PID)
# for OUTAGE seconds and restarted on the same port and data directory.
# Afterwards every output sample promcast produced must be stored in
# Prometheus exactly once: produced = sent = stored, nothing dropped.
#   PROMCAST_E2E_OUTAGE_S  outage length [120, as the issue asks]
. "$(dirname "$0")/lib.sh"
e2e_require prometheus curl python3 jq
PCFEED=$BUILD/pcfeed
OUTAGE=${PROMCAST_E2E_OUTAGE_S:-120}
PORT=$(e2e_free_port)
PROM=http://127.0.0.1:$PORT

echo 'global: {scrape_interval: 1m}' >"$WORK/prometheus.yml"
start_prometheus() {
    e2e_start "$1" prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
        --web.listen-address="127.0.0.1:$PORT" --web.enable-remote-write-receiver --log.level=warn
    e2e_wait_for "prometheus ($1) ready" 60 curl -fsS "$PROM/-/ready" || exit 1
}
start_prometheus prom1

cat >"$WORK/promcast.yml" <<YAML
global: {step: 2s}
storage: {path: $WORK/state, snapshot_interval: 1m}
rules:
  - match: '{__name__="pc_out"}'
    seasons: []
    horizons: [10s, 1m]
remote_write:
  - url: $PROM/api/v1/write
    queue: {capacity: 100000, batch_send_deadline: 1s, min_backoff: 30ms, max_backoff: 5s}
YAML
e2e_start_promcast pc --config.file="$WORK/promcast.yml"
m() { e2e_metric_sum "$pc_URL" "$1"; }

e2e_start feed "$PCFEED" "$pc_URL/api/v1/write" --name pc_out --series 10 \
    --from $(( $(date +%s%N) / 1000000 / 1000 * 1000 )) --to $(( ($(date +%s) + 86400) * 1000 )) \
    --interval 1000 --period 60000 --realtime
sent_some() { [ "$(m promcast_remote_write_samples_sent_total)" -gt 200 ]; }
e2e_wait_for "outputs reaching Prometheus" 180 sent_some || e2e_finish

e2e_log "stopping Prometheus (pid $prom1_PID) for $OUTAGE s"
e2e_stop "$prom1_PID" TERM
sleep "$OUTAGE"
pending=$(m promcast_remote_write_samples_pending)
e2e_check "outputs queue up during the outage (pending=$pending)" [ "$pending" -gt 100 ]
e2e_check "sends are retried during the outage" [ "$(m promcast_remote_write_samples_retried_total)" -gt 0 ]
start_prometheus prom2
sleep 10
e2e_stop "$feed_PID" TERM
# The last steps close once no sample arrives for a step (timer flush).
sleep 8
drained() { [ "$(m promcast_remote_write_samples_pending)" = 0 ]; }
e2e_wait_for "queue drained after the restart" 120 drained

produced=$(m promcast_output_samples_total)
sent=$(m promcast_remote_write_samples_sent_total)
stored=0
for out in yhat yhat_lower yhat_upper anomaly_score forecast; do
    n=$(curl -fsS -G "$PROM/api/v1/query" --data-urlencode "query=sum(count_over_time(pc_out:$out[1h]))" |
        jq -r '.data.result[0].value[1] // 0')
    stored=$((stored + n))
done
e2e_log "produced $produced, sent $sent, stored $stored output samples"
e2e_check "a meaningful number of outputs crossed the outage ($produced)" [ "$produced" -gt 1000 ]
e2e_eq "every produced output was acknowledged" "$sent" "$produced"
e2e_eq "every acknowledged output is stored in Prometheus, once" "$stored" "$sent"
e2e_eq "no output dropped" "$(m promcast_remote_write_samples_dropped_total)" 0
e2e_eq "no output failed" "$(m promcast_remote_write_samples_failed_total)" 0
e2e_finish
