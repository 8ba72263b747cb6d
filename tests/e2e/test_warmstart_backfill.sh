#!/usr/bin/env bash
# Warm start from backfilled history: two days of a series are written into
# Prometheus's TSDB with `promtool tsdb create-blocks-from openmetrics`; a
# freshly started promcast sees one live sample of that series, reads the
# history back through remote read and must forecast the next hour at once.
# Its forecast path is compared with that of a promcast that saw the whole
# history live (same samples posted over remote write): the target is a
# warm-started error within 10% of the live one.
. "$(dirname "$0")/lib.sh"
e2e_require prometheus promtool curl python3 jq
PCFEED=$BUILD/pcfeed
PCREAD=$BUILD/pcread

STEP=60000
PERIOD=3600000 # a 1 h cycle, so the season matters
now=$(( $(date +%s) * 1000 / STEP * STEP ))
t_end=$((now - 3 * STEP))      # last backfilled sample
t_start=$((t_end - 2 * 86400000))
t_live=$((t_end + STEP))       # the one live sample

# History: the same function pcfeed computes (series 0: base + amplitude *
# sin(2*pi*(t mod period)/period)), written with every digit.
python3 - "$t_start" "$t_end" "$STEP" "$PERIOD" >"$WORK/history.om" <<'PY'
import math, sys
t0, t1, step, period = map(int, sys.argv[1:])
print("# TYPE pc_warm gauge")
for t in range(t0, t1 + 1, step):
    v = 100.0 + 10.0 * math.sin(2 * math.pi * float(t % period) / float(period))
    print('pc_warm{job="pcfeed",series="0"} %r %.3f' % (v, t / 1000.0))
print("# EOF")
PY
mkdir -p "$WORK/tsdb"
promtool tsdb create-blocks-from openmetrics "$WORK/history.om" "$WORK/tsdb" >"$WORK/promtool.log" 2>&1 ||
    { e2e_log "FAIL: promtool could not create blocks"; cat "$WORK/promtool.log" >&2; exit 1; }
e2e_check "promtool wrote TSDB blocks" sh -c "ls -d '$WORK'/tsdb/01* >/dev/null 2>&1"

PROM_PORT=$(e2e_free_port)
PROM=http://127.0.0.1:$PROM_PORT
echo 'global: {scrape_interval: 1m}' >"$WORK/prometheus.yml"
e2e_start prom prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --storage.tsdb.retention.time=30d --web.listen-address=127.0.0.1:$PROM_PORT --log.level=warn
e2e_wait_for "prometheus ready" 60 curl -fsS "$PROM/-/ready" || e2e_finish
n=$(curl -fsS -G "$PROM/api/v1/query" --data-urlencode "query=count_over_time(pc_warm[3d])" \
    --data-urlencode "time=$((t_end / 1000))" | jq -r '.data.result[0].value[1] // 0')
e2e_eq "the backfilled history is queryable" "$n" 2881

rule() {
    cat <<YAML
global: {step: 1m}
storage: {path: $WORK/state-$1, snapshot_interval: 1h}
rules:
  - match: '{__name__="pc_warm"}'
    seasons: [1h]
    horizons: [15m, 1h]
remote_write: []
YAML
}
{ rule warm; printf 'remote_read:\n  url: %s/api/v1/read\n  lookback: 3d\n' "$PROM"; } >"$WORK/warm.yml"
rule live >"$WORK/live.yml"

# The warm one: one live sample, history from Prometheus.
e2e_start_promcast warm --config.file="$WORK/warm.yml"
"$PCFEED" "$warm_URL/api/v1/write" --name pc_warm --series 1 --from $t_live --to $((t_live + 1)) \
    --interval $STEP --period $PERIOD --amplitude 10 --base 100 >/dev/null
applied() { [ "$(e2e_metric "$warm_URL" 'promcast_warmstart_series_total{result="applied"}')" = 1 ]; }
e2e_wait_for "warm start applied" 60 applied
e2e_eq "history samples fed to the model" "$(e2e_metric "$warm_URL" promcast_warmstart_samples_total)" 2881

# The live one: the same history and live sample, over remote write.
e2e_start_promcast live --config.file="$WORK/live.yml"
"$PCFEED" "$live_URL/api/v1/write" --name pc_warm --series 1 --from $t_start --to $((t_live + 1)) \
    --interval $STEP --period $PERIOD --amplitude 10 --base 100 >/dev/null

# path URL -> "t value" lines of the forecast path (yhat past the last step)
path() {
    "$PCREAD" request --types samples --query $((t_end + 1)) $((t_end + 3600000)) '__name__=pc_warm:yhat' >"$WORK/rq.bin" &&
        curl -fsS -X POST -H 'Content-Type: application/x-protobuf' -H 'Content-Encoding: snappy' \
            --data-binary @"$WORK/rq.bin" "$1/api/v1/read" -o "$WORK/resp.bin" &&
        "$PCREAD" decode --samples --query $((t_end + 1)) $((t_end + 3600000)) <"$WORK/resp.bin" 2>/dev/null |
        awk '{ print $(NF-1), $NF }' | sort -n
}
path "$warm_URL" >"$WORK/warm.path"
path "$live_URL" >"$WORK/live.path"
e2e_eq "warm-started forecast path covers the next hour" "$(wc -l <"$WORK/warm.path")" 60
e2e_eq "live forecast path covers the next hour" "$(wc -l <"$WORK/live.path")" 60

python3 - "$WORK/warm.path" "$WORK/live.path" "$PERIOD" >"$WORK/errors.txt" <<'PY'
import math, struct, sys
def load(p):
    out = []
    for line in open(p):
        t, bits = line.split()
        out.append((int(t), struct.unpack("<d", bytes.fromhex(bits.replace("0x", "").zfill(16))[::-1])[0]))
    return out
period = int(sys.argv[3])
truth = lambda t: 100.0 + 10.0 * math.sin(2 * math.pi * float(t % period) / float(period))
def mae(path): return sum(abs(v - truth(t)) for t, v in path) / len(path)
w, l = load(sys.argv[1]), load(sys.argv[2])
naive = sum(abs(truth(t) - truth(w[0][0] - 60000)) for t, _ in w) / len(w)
print("%.6f %.6f %.6f" % (mae(w), mae(l), naive))
PY
read -r mae_warm mae_live mae_naive <"$WORK/errors.txt"
e2e_log "forecast MAE over the next hour: warm-started $mae_warm, saw history live $mae_live, naive $mae_naive"
e2e_check "warm-started error within 10% of the live model's" \
    python3 -c "import sys; w, l = $mae_warm, $mae_live; sys.exit(0 if w <= 1.10 * l + 1e-9 else 1)"
e2e_check "warm-started forecast beats naive at once" \
    python3 -c "import sys; sys.exit(0 if $mae_warm < 0.5 * $mae_naive else 1)"
e2e_finish
