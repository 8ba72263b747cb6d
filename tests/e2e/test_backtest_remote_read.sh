#!/usr/bin/env bash
# `promcast backtest --remote-read`: history read from a real Prometheus.
#
# Two series over two days at 1m (a sine and a ramp with a deterministic
# wiggle) are written into a TSDB with `promtool tsdb create-blocks-from
# openmetrics`, next to a series the selector must not return; Prometheus
# serves that TSDB. The backtest must write one CSV per series (2881 rows,
# the documented header, RFC 3339 timestamps increasing, scores in [0, 1]),
# an index.csv and a JSON summary with MAE ratios as numbers. The same data
# written as CSV files and run with --input must give identical output files
# (same model code, same samples), whatever --request-range cuts the reads
# into. Then: a series no rule models is skipped and listed, an HTTP error
# shows its status and body, and --labels is refused.
. "$(dirname "$0")/lib.sh"
e2e_require prometheus promtool curl python3 jq awk

STEP=60000
T0=1700006400000 # 2023-11-15T00:00:00Z: fixed, so the test does not depend on the clock
T1=$((T0 + 2 * 86400000))
START=2023-11-15T00:00:00Z
END=2023-11-17T00:00:00Z
HEADER='timestamp,value,yhat,yhat_lower,yhat_upper,anomaly_score,forecast_15m,forecast_1h'

# The history as OpenMetrics (for promtool) and as CSV files (for --input),
# values written with every digit so both hold the very same doubles.
mkdir -p "$WORK/csv"
python3 - "$T0" "$T1" "$STEP" "$WORK" <<'PY'
import math, sys, time
t0, t1, step = map(int, sys.argv[1:4])
work = sys.argv[4]
def ts(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1000)) + ".%03dZ" % (t % 1000)
series = {
    # A daily cycle plus a 90-minute one (so no horizon's naive forecast is exact).
    "sine": lambda i, t: 100.0 + 10.0 * math.sin(2 * math.pi * (t % 86400000) / 86400000.0)
                         + 2.0 * math.sin(2 * math.pi * (t % 5400000) / 5400000.0),
    "ramp": lambda i, t: 50.0 + 0.1 * i + 2.0 * ((i * 7919) % 13) / 13.0,
}
om = open(work + "/history.om", "w")
om.write("# TYPE pc_bt gauge\n")
for kind, fn in series.items():
    csv = open("%s/csv/%s.csv" % (work, kind), "w")
    csv.write("timestamp,value\n")
    for i, t in enumerate(range(t0, t1 + 1, step)):
        v = fn(i, t)
        om.write('pc_bt{kind="%s"} %r %.3f\n' % (kind, v, t / 1000.0))
        csv.write("%s,%r\n" % (ts(t), v))
om.write("# TYPE pc_bt_other gauge\n")
for t in range(t0, t1 + 1, step):
    om.write('pc_bt_other{kind="x"} 1 %.3f\n' % (t / 1000.0))
om.write("# EOF\n")
PY
mkdir -p "$WORK/tsdb"
promtool tsdb create-blocks-from openmetrics "$WORK/history.om" "$WORK/tsdb" >"$WORK/promtool.log" 2>&1 ||
    { e2e_log "FAIL: promtool could not create blocks"; cat "$WORK/promtool.log" >&2; exit 1; }

PROM_PORT=$(e2e_free_port)
PROM=http://127.0.0.1:$PROM_PORT
echo 'global: {scrape_interval: 1m}' >"$WORK/prometheus.yml"
e2e_start prom prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --storage.tsdb.retention.time=30d --web.listen-address=127.0.0.1:$PROM_PORT --log.level=warn
e2e_wait_for "prometheus ready" 60 curl -fsS "$PROM/-/ready" || e2e_finish
n=$(curl -fsS -G "$PROM/api/v1/query" --data-urlencode 'query=count_over_time(pc_bt{kind="sine"}[3d])' \
    --data-urlencode "time=$((T1 / 1000))" | jq -r '.data.result[0].value[1] // 0')
e2e_eq "the backfilled history is queryable" "$n" 2881

# ---- 1. remote read ----------------------------------------------------------------
OUT=$WORK/out
"$PROMCAST" backtest --remote-read="$PROM/api/v1/read" --match='{__name__="pc_bt"}' \
    --start=$START --end=$END --output="$OUT" --summary-json="$WORK/summary.json" \
    >"$WORK/rr.txt" 2>"$WORK/rr.err"
e2e_eq "remote-read backtest exit code" "$?" 0
cat "$WORK/rr.txt" "$WORK/rr.err" >&2

e2e_eq "files written: one CSV per series and index.csv" "$(ls "$OUT" | wc -l)" 3
e2e_eq "two series files, named <metric>__<hash>.csv" \
    "$(ls "$OUT" | grep -Ec '^pc_bt__[0-9a-f]{16}\.csv$')" 2
e2e_check "index.csv written" test -f "$OUT/index.csv"
e2e_eq "index.csv lists both series" \
    "$(tail -n +2 "$OUT/index.csv" | cut -d, -f2- | sort | tr '\n' ' ')" \
    '"pc_bt{kind=""ramp""}",2881,ok "pc_bt{kind=""sine""}",2881,ok '
# file for a series, from index.csv
file_of() { awk -F, -v s="\"pc_bt{kind=\"\"$1\"\"}\"" '$2 == s { print $1 }' "$OUT/index.csv"; }
bad=""
for kind in sine ramp; do
    f=$OUT/$(file_of $kind)
    [ -f "$f" ] || { bad="$bad $kind(no file)"; continue; }
    [ "$(head -n1 "$f")" = "$HEADER" ] || bad="$bad $kind(header)"
    [ "$(tail -n +2 "$f" | wc -l)" = 2881 ] || bad="$bad $kind(rows)"
    awk -F, 'NR > 1 {
                 if ($1 !~ /^20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\.[0-9][0-9][0-9]Z$/) { print "timestamp row " NR; exit 1 }
                 if (NR > 2 && $1 <= prev) { print "order row " NR; exit 1 }
                 prev = $1
                 if (NF != 8) { print "fields row " NR; exit 1 }
                 if ($6 !~ /^[0-9.eE+-]+$/ || $6 < 0 || $6 > 1) { print "score row " NR; exit 1 }
             }' "$f" >"$WORK/awk.txt" || bad="$bad $kind($(cat "$WORK/awk.txt"))"
    first=$(sed -n 2p "$f" | cut -d, -f1)
    last=$(tail -n1 "$f" | cut -d, -f1)
    [ "$first" = 2023-11-15T00:00:00.000Z ] && [ "$last" = 2023-11-17T00:00:00.000Z ] ||
        bad="$bad $kind(range $first..$last)"
done
e2e_eq "series outputs: header, rows, timestamps, scores" "${bad:-none}" none

S=$WORK/summary.json
e2e_check "summary is JSON" jq -e . "$S" >/dev/null
e2e_eq "summary series" "$(jq '.files_total' "$S")" 2
e2e_eq "summary rows" "$(jq '.rows' "$S")" 5762
e2e_eq "summary requests (1d each over 2d + 1 ms)" "$(jq '.source.requests' "$S")" 3
e2e_eq "summary series read" "$(jq '.source.series' "$S")" 2
e2e_eq "summary series names" "$(jq -r '[.files[].series] | join(" ")' "$S")" \
    'pc_bt{kind="ramp"} pc_bt{kind="sine"}'
e2e_check "steps inferred as 1m" jq -e '[.files[] | select(.step == "1m" and .step_inferred)] | length == 2' "$S" >/dev/null
for h in step 15m 1h; do
    e2e_check "MAE ratio vs naive ($h) is a number" \
        jq -e ".mae_ratio[\"$h\"].naive.geomean | type == \"number\"" "$S" >/dev/null
done
e2e_check "per-series MAE ratio (1h) is a number" \
    jq -e '[.files[].horizons["1h"].rel_naive | type == "number"] | all' "$S" >/dev/null
e2e_check "coverage is a number in [0,1]" \
    jq -e '.coverage.one_step | type == "number" and . >= 0 and . <= 1' "$S" >/dev/null

# ---- 2. the same data as CSV: identical outputs ---------------------------------------
"$PROMCAST" backtest --input="$WORK/csv" --output="$WORK/csv-out" >"$WORK/csv.txt" 2>&1
e2e_eq "CSV backtest exit code" "$?" 0
same=""
for kind in sine ramp; do
    cmp -s "$OUT/$(file_of $kind)" "$WORK/csv-out/$kind.csv" || same="$same $kind"
    # The model columns alone, in case the timestamp text ever differs.
    cmp -s <(cut -d, -f2- "$OUT/$(file_of $kind)") <(cut -d, -f2- "$WORK/csv-out/$kind.csv") ||
        same="$same $kind(model columns)"
done
e2e_eq "remote-read and CSV outputs are identical" "${same:-yes}" yes

# Sub-requests of 7h (with a range ending mid-request) concatenate to the same.
"$PROMCAST" backtest --remote-read="$PROM/api/v1/read" --match='{__name__="pc_bt"}' \
    --start=$START --end=$END --output="$WORK/out7h" --request-range=7h \
    --summary-json="$WORK/summary7h.json" >/dev/null 2>&1
e2e_eq "7h sub-requests exit code" "$?" 0
e2e_eq "7h sub-requests count" "$(jq '.source.requests' "$WORK/summary7h.json")" 7
e2e_check "7h sub-requests give the same files" diff -r "$OUT" "$WORK/out7h"

# ---- 3. skipped series, errors ---------------------------------------------------------------
cat >"$WORK/sine-only.yml" <<'YAML'
rules:
  - match: '{__name__="pc_bt", kind="sine"}'
    horizons: [15m, 1h]
remote_write: []
YAML
"$PROMCAST" backtest --config="$WORK/sine-only.yml" --remote-read="$PROM/api/v1/read" \
    --match='{__name__=~"pc_bt|pc_bt_other"}' --start=$START --end=$END --output="$WORK/out-skip" \
    --summary-json="$WORK/skip.json" >"$WORK/skip.txt" 2>&1
e2e_eq "skip run exit code" "$?" 0
e2e_eq "skip run: series modelled" "$(jq '.files_total' "$WORK/skip.json")" 1
e2e_eq "skip run: series skipped" "$(jq -r '.skipped_series | join(" ")' "$WORK/skip.json")" \
    'pc_bt{kind="ramp"} pc_bt_other{kind="x"}'
e2e_eq "skip run: index.csv marks them" "$(grep -c ',skipped$' "$WORK/out-skip/index.csv")" 2
e2e_check "skip run: text summary lists them" grep -q 'skipped, no rule models them: 2 series' "$WORK/skip.txt"

"$PROMCAST" backtest --remote-read="$PROM/api/v1/nope" --match='{__name__="pc_bt"}' \
    --start=$START --end=$END --output="$WORK/out-404" >/dev/null 2>"$WORK/404.err"
e2e_eq "HTTP error exit code" "$?" 1
e2e_check "HTTP error shows the status" grep -q 'HTTP 404' "$WORK/404.err"

"$PROMCAST" backtest --remote-read="$PROM/api/v1/read" --match='{__name__="pc_bt"}' \
    --start=$START --end=$END --output="$WORK/out-max" --max-series=1 >/dev/null 2>"$WORK/max.err"
e2e_eq "--max-series exit code" "$?" 1
e2e_check "--max-series message" grep -q 'more than --max-series=1;' "$WORK/max.err"

"$PROMCAST" backtest --remote-read="$PROM/api/v1/read" --match='{__name__="pc_bt"}' \
    --output="$WORK/out-l" --labels="$WORK/none.json" >/dev/null 2>"$WORK/labels.err"
e2e_eq "--labels refused exit code" "$?" 1
e2e_check "--labels refused message" grep -q -- '--labels does not apply to --remote-read' "$WORK/labels.err"

e2e_stop "$prom_PID"
e2e_finish
