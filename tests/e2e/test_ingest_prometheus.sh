#!/usr/bin/env bash
# End to end with a real Prometheus 2.42: it scrapes itself and a node
# exporter every second and remote-writes to promcast. Afterwards scraping is
# switched off (config reload), the queue drains, and promcast must have
# received exactly what Prometheus reports as sent: nothing lost.
. "$(dirname "$0")/lib.sh"
e2e_require prometheus prometheus-node-exporter curl python3

e2e_start_promcast pc
NODE_PORT=$(e2e_free_port)
e2e_start node prometheus-node-exporter --web.listen-address=127.0.0.1:$NODE_PORT \
    --no-collector.wifi --no-collector.hwmon
PROM_PORT=$(e2e_free_port)
PROM=http://127.0.0.1:$PROM_PORT

write_prom_config() { # $1 = with scrape configs (1) or without (0)
    {
        cat <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels: {replica: e2e}
remote_write:
  - url: $pc_URL/api/v1/write
    queue_config: {batch_send_deadline: 1s, max_samples_per_send: 2000, capacity: 10000}
    metadata_config: {send_interval: 5s}
YAML
        # Without scraping, the jobs stay but lose their targets: a removed
        # target gets end-of-run stale markers, a removed job does not.
        local p="'127.0.0.1:$PROM_PORT'" n="'127.0.0.1:$NODE_PORT'"
        [ "$1" = 1 ] || { p=""; n=""; }
        cat <<YAML
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: [$p]}]
  - job_name: node
    static_configs: [{targets: [$n]}]
YAML
    } >"$WORK/prometheus.yml"
}
write_prom_config 1
e2e_start prom prometheus --config.file="$WORK/prometheus.yml" \
    --storage.tsdb.path="$WORK/tsdb" --web.listen-address=127.0.0.1:$PROM_PORT \
    --web.enable-lifecycle
e2e_wait_for "prometheus ready" 60 curl -fsS "$PROM/-/ready" || e2e_finish

# Let it run until a good number of samples has flowed (polls, no timing).
enough() { [ "$(e2e_metric_sum "$pc_URL" promcast_samples_received_total)" -gt 30000 ]; }
e2e_wait_for "30000 samples received by promcast" 180 enough

# Stop scraping: Prometheus writes stale markers for every series of the
# removed targets and sends them too; then nothing new is appended.
write_prom_config 0
curl -fsS -X POST "$PROM/-/reload" >/dev/null
prom_sent() {
    curl -fsS "$PROM/metrics" | awk '
        /^prometheus_remote_storage_samples_total\{/ { t += $2 }
        /^prometheus_remote_storage_samples_failed_total\{/ { f += $2 }
        /^prometheus_remote_storage_samples_dropped_total\{/ { d += $2 }
        END { printf "%.0f\n", t - f - d }'
}
prom_pending() {
    curl -fsS "$PROM/metrics" | awk '/^prometheus_remote_storage_samples_pending\{/ { p += $2 } END { printf "%.0f\n", p }'
}
# Drained when nothing is pending and both sides agree on a stable count.
drained() {
    local a b
    [ "$(prom_pending)" = 0 ] || return 1
    a=$(prom_sent)
    sleep 3
    b=$(prom_sent)
    [ "$a" = "$b" ] && [ "$(prom_pending)" = 0 ]
}
# The scrape loops of removed targets write their stale markers one or two
# intervals after the reload; wait until they have reached promcast.
stale_seen() { [ "$(e2e_metric "$pc_URL" promcast_stale_markers_received_total)" != 0 ]; }
e2e_wait_for "stale markers of the removed targets" 60 stale_seen
e2e_wait_for "remote-write queue drained" 120 drained

sent=$(prom_sent)
received=$(e2e_metric "$pc_URL" 'promcast_samples_received_total{protocol="v1"}')
received=$(printf '%.0f' "$received")
e2e_log "prometheus sent $sent samples, promcast received $received"
e2e_check "prometheus sent a meaningful number of samples" [ "$sent" -gt 30000 ]
e2e_eq "promcast received every sample prometheus sent" "$received" "$sent"
failed=$(curl -fsS "$PROM/metrics" | awk '/^prometheus_remote_storage_samples_failed_total\{/ { f += $2 } END { printf "%.0f\n", f }')
e2e_eq "prometheus saw no failed sends" "$failed" 0

stale=$(e2e_metric "$pc_URL" promcast_stale_markers_received_total)
e2e_check "stale markers from the removed targets were recognised ($stale)" \
    awk -v s="$stale" 'BEGIN { exit !(s > 0) }'
meta=$(e2e_metric "$pc_URL" 'promcast_metadata_received_total{protocol="v1"}')
e2e_check "metadata-only requests were accepted ($meta entries)" \
    awk -v s="$meta" 'BEGIN { exit !(s > 0) }'
active=$(e2e_metric "$pc_URL" promcast_series_active)
e2e_check "series are indexed ($active)" awk -v s="$active" 'BEGIN { exit !(s > 100) }'
rejected=$(e2e_metric_sum "$pc_URL" promcast_rejected_requests_total)
e2e_eq "no request was rejected" "$rejected" 0
ok204=$(e2e_metric "$pc_URL" 'promcast_write_requests_total{protocol="v1",code="204"}')
e2e_check "write requests answered 204 ($ok204)" awk -v s="$ok204" 'BEGIN { exit !(s > 0) }'

# The self-metrics page passes promtool.
curl -fsS "$pc_URL/metrics" >"$WORK/metrics.txt"
e2e_check "promtool check metrics is clean" sh -c "promtool check metrics <'$WORK/metrics.txt' >'$WORK/promtool.out' 2>&1"
cat "$WORK/promtool.out" >&2

e2e_finish
