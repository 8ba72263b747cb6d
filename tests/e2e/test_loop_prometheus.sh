#!/usr/bin/env bash
# The whole loop with a real Prometheus 2.42: it scrapes itself and a node
# exporter, remote-writes to promcast, and is also promcast's write-back
# receiver, warm-start source (remote_read from it) and remote-read client
# (remote_read to promcast with read_recent). Checks that every output
# series is queryable with sane values, that the forecast path reaches past
# now through remote read, and that nothing was dropped or rejected.
. "$(dirname "$0")/lib.sh"
e2e_require prometheus prometheus-node-exporter curl python3 jq

NODE_PORT=$(e2e_free_port)
PROM_PORT=$(e2e_free_port)
PROM=http://127.0.0.1:$PROM_PORT
e2e_start node prometheus-node-exporter --web.listen-address=127.0.0.1:$NODE_PORT \
    --no-collector.wifi --no-collector.hwmon

cat >"$WORK/promcast.yml" <<YAML
global: {step: 2s}
storage: {path: $WORK/state, snapshot_interval: 30s}
output: {history: 10m}
rules:
  - match: '{__name__="node_cpu_seconds_total", mode=~"idle|user|system"}'
    transform: rate
    seasons: []
    horizons: [1m, 5m]
  - match: '{__name__=~"up|node_load1|prometheus_tsdb_head_series|node_memory_MemAvailable_bytes"}'
    seasons: []
    horizons: [1m, 5m]
remote_write:
  - url: $PROM/api/v1/write
    queue: {batch_send_deadline: 1s}
remote_read:
  url: $PROM/api/v1/read
  lookback: 1h
YAML
e2e_start_promcast pc --config.file="$WORK/promcast.yml"

cat >"$WORK/prometheus.yml" <<YAML
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ['127.0.0.1:$PROM_PORT']}]
  - job_name: node
    static_configs: [{targets: ['127.0.0.1:$NODE_PORT']}]
remote_write:
  - url: $pc_URL/api/v1/write
    queue_config: {batch_send_deadline: 1s}
remote_read:
  - url: $pc_URL/api/v1/read
    read_recent: true
YAML
e2e_start prom prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --web.listen-address=127.0.0.1:$PROM_PORT --web.enable-remote-write-receiver
e2e_wait_for "prometheus ready" 60 curl -fsS "$PROM/-/ready" || e2e_finish

# query EXPR -> the JSON result array of an instant query
query() { curl -fsS --data-urlencode "query=$1" "$PROM/api/v1/query" | jq -c '.data.result'; }
count() { curl -fsS --data-urlencode "query=$1" "$PROM/api/v1/query" | jq '.data.result | length'; }
has() { [ "$(count "$1")" -gt 0 ]; }

# The models need a couple of dozen steps (2 s each) before their outputs
# count as ready (history read back at start helps when Prometheus has
# some); then wait until a minute of written outputs exists.
written() { [ "$(query 'count_over_time(node_load1:anomaly_score[5m])' | jq -r '.[0].value[1] // 0')" -ge 30 ]; }
e2e_wait_for "a minute of node_load1 outputs written to Prometheus" 400 written || e2e_finish
e2e_wait_for "forecasts written" 60 has 'up:forecast{horizon="5m"}'

for out in yhat yhat_lower yhat_upper anomaly_score; do
    e2e_check "node_load1:$out is queryable" has "node_load1:$out"
    e2e_check "prometheus_tsdb_head_series:$out is queryable" has "prometheus_tsdb_head_series:$out"
done
e2e_check 'forecast for horizon 1m' has 'up:forecast{horizon="1m"}'
e2e_check 'forecast for horizon 5m' has 'up:forecast{horizon="5m"}'
e2e_eq "the forecast has exactly the configured horizons" \
    "$(curl -fsS "$PROM/api/v1/label/horizon/values" | jq -c '.data')" '["1m","5m"]'
e2e_check "labels of the input are kept" has 'up:yhat{job="node", instance="127.0.0.1:'"$NODE_PORT"'"}'

# Sane values: bounds ordered, scores in [0, 1], rates of CPU seconds in [0, 1.05].
for m in node_load1 up prometheus_tsdb_head_series node_cpu_seconds_total; do
    e2e_eq "$m: no lower bound above its yhat" "$(count "$m:yhat_lower > $m:yhat")" 0
    e2e_eq "$m: no upper bound below its yhat" "$(count "$m:yhat_upper < $m:yhat")" 0
done
e2e_eq "no score outside [0,1]" "$(count '{__name__=~".+:anomaly_score"} > 1 or {__name__=~".+:anomaly_score"} < 0')" 0
e2e_check "cpu rate outputs exist" has 'node_cpu_seconds_total:yhat'
e2e_eq "cpu rates within [0, 1.05] (transform: rate across scrapes)" \
    "$(count 'node_cpu_seconds_total:yhat > 1.05 or node_cpu_seconds_total:yhat < 0')" 0
e2e_eq "up is predicted as 1" "$(query 'round(up:yhat{job="prometheus"})' | jq -r '.[0].value[1]')" 1
e2e_eq "promcast's outputs are never modelled again" \
    "$(count '{__name__=~".+:yhat:yhat|.+:yhat_lower:.*|.+:anomaly_score:.*"}')" 0

# Remote read: a range query reaching past now returns the forecast path,
# merged into the same series as the written past.
now=$(date +%s)
curl -fsS --data-urlencode 'query=node_load1:yhat' --data-urlencode "start=$((now - 120))" \
    --data-urlencode "end=$((now + 300))" --data-urlencode step=5 \
    "$PROM/api/v1/query_range" >"$WORK/range.json"
series=$(jq '.data.result | length' "$WORK/range.json")
future=$(jq --argjson now "$now" '[.data.result[0].values[] | select(.[0] > $now + 30)] | length' "$WORK/range.json")
past=$(jq --argjson now "$now" '[.data.result[0].values[] | select(.[0] < $now - 30)] | length' "$WORK/range.json")
e2e_eq "one series for node_load1:yhat over [now-2m, now+5m]" "$series" 1
e2e_check "it has past points ($past)" [ "$past" -gt 5 ]
e2e_check "it has future points from promcast's forecast path ($future)" [ "$future" -gt 20 ]
reads=$(e2e_metric_sum "$pc_URL" promcast_read_requests_total)
e2e_check "Prometheus asked promcast through remote read ($reads requests)" [ "${reads%.*}" -gt 0 ]

# Nothing dropped, refused or written in the future.
m() { e2e_metric_sum "$pc_URL" "$1"; }
e2e_eq "no write-back sample dropped" "$(m promcast_remote_write_samples_dropped_total)" 0
e2e_eq "no write-back sample failed" "$(m promcast_remote_write_samples_failed_total)" 0
e2e_check "write-back samples were sent ($(m promcast_remote_write_samples_sent_total))" \
    [ "$(m promcast_remote_write_samples_sent_total)" -gt 100 ]
e2e_eq "no incoming request rejected" "$(m promcast_rejected_requests_total)" 0
e2e_eq "prometheus rejected nothing promcast wrote" \
    "$(curl -fsS "$PROM/metrics" | awk '/^prometheus_http_requests_total\{code="(4|5)[0-9][0-9]",handler="\/api\/v1\/write"\}/ { s += $2 } END { printf "%d", s }')" 0
e2e_check "warm start read history from Prometheus" \
    [ "$(m promcast_warmstart_requests_total)" -gt 0 ]
# Latency (measured, not asserted): from the arrival of a step's first
# sample to Prometheus accepting that step's outputs. The issue's target is
# p99 <= step + batch_send_deadline (here 2 s + 1 s).
quantiles() {
    curl -fsS "$pc_URL/metrics" | awk -v m="$1" '
        index($0, m "_bucket") == 1 { match($0, /le="[^"]*"/); n++; les[n] = substr($0, RSTART + 4, RLENGTH - 5); cum[n] = $2 }
        index($0, m "_count") == 1 { total = $2 }
        END { split("0.5 0.9 0.99", qs, " "); out = ""
              for (j = 1; j <= 3; j++) for (i = 1; i <= n; i++) if (cum[i] >= qs[j] * total) { out = out sprintf(" p%g<=%ss", qs[j] * 100, les[i]); break }
              printf "%s over %d outputs\n", out, total }'
}
e2e_log "arrival-to-acceptance latency:$(quantiles promcast_output_latency_seconds) (target p99 <= 3 s)"
e2e_log "output age at acceptance (now - step start):$(quantiles promcast_remote_write_sample_age_seconds)"
curl -fsS "$pc_URL/-/ready" >/dev/null && e2e_log "ok: promcast ready" || { e2e_log "FAIL: promcast not ready"; E2E_FAILS=$((E2E_FAILS + 1)); }
curl -fsS "$pc_URL/metrics" >"$WORK/metrics.txt"
e2e_check "promtool check metrics is clean" sh -c "promtool check metrics <'$WORK/metrics.txt' >'$WORK/promtool.out' 2>&1"
cat "$WORK/promtool.out" >&2
e2e_finish
