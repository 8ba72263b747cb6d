#!/usr/bin/env bash
# test_remote_read_codec.sh — promcast's remote-read codec against a real
# Prometheus (2.42 from Debian) on 127.0.0.1.
#
# Prometheus scrapes itself every 100 ms (so head series span several
# 120-sample chunks), then the same multi-query ReadRequest, encoded by
# `pcread request`, is posted twice with curl: once accepting
# STREAMED_XOR_CHUNKS, once SAMPLES only. Both answers are decoded by
# `pcread decode` (promcast's decoder) and must list exactly the same
# samples, bit for bit; every XOR chunk Prometheus sent must also come out
# byte-identical when promcast re-encodes its samples (--verify-chunks).
# No promcast daemon is involved: this checks the wire codec alone.

. "$(dirname "$0")/lib.sh"

PCREAD=$BUILD/pcread
e2e_require prometheus curl python3 "$PCREAD"

PORT=$(e2e_free_port)
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 100ms
  scrape_timeout: 100ms
  external_labels: {replica: a}
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ['127.0.0.1:$PORT']}]
EOF
e2e_start prom prometheus --config.file="$WORK/prometheus.yml" \
    --storage.tsdb.path="$WORK/data" --web.listen-address="127.0.0.1:$PORT"
PROM=http://127.0.0.1:$PORT
e2e_wait_for "prometheus ready" 60 curl -fsS "$PROM/-/ready" || e2e_finish

# At least 250 samples of `up`: every series then has 3 chunks or more.
enough_samples() {
    curl -fsS "$PROM/api/v1/query" --data-urlencode 'query=count_over_time(up[5m])' |
        python3 -c 'import json,sys
r = json.load(sys.stdin)["data"]["result"]
sys.exit(0 if r and float(r[0]["value"][1]) >= 250 else 1)'
}
e2e_wait_for "250 scrapes" 120 enough_samples || e2e_finish

# Samples at or before END are committed (scrapes time out after 100 ms).
END=$(($(date +%s%3N) - 2000))
START=$((END - 300000))
NARROW_START=$((END - 7000))
NARROW_END=$((END - 3500))
QUERIES=(--query "$START" "$END" 'job=prometheus'
         --query "$START" "$END" '__name__=up'
         --query "$NARROW_START" "$NARROW_END" '__name__=~prometheus_http_.*' 'code!=500'
         --query "$START" "$END" '__name__=no_such_metric')
RANGES=(--query "$START" "$END" --query "$START" "$END"
        --query "$NARROW_START" "$NARROW_END" --query "$START" "$END")

read_post() { # TYPES OUT
    "$PCREAD" request --types "$1" "${QUERIES[@]}" >"$WORK/$2.req" &&
        curl -sS -D "$WORK/$2.headers" -o "$WORK/$2.body" -w '%{http_code}' \
            --data-binary @"$WORK/$2.req" -H 'Content-Type: application/x-protobuf' \
            -H 'Content-Encoding: snappy' -H 'X-Prometheus-Remote-Read-Version: 0.1.0' \
            "$PROM/api/v1/read"
}

code=$(read_post streamed,samples streamed)
e2e_eq "streamed request status" "$code" 200
e2e_check "streamed content type" grep -qi \
    '^Content-Type: application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse' \
    "$WORK/streamed.headers"
code=$(read_post samples samples)
e2e_eq "SAMPLES request status" "$code" 200
e2e_check "SAMPLES content encoding" grep -qi '^Content-Encoding: snappy' "$WORK/samples.headers"

"$PCREAD" decode --streamed --verify-chunks "${RANGES[@]}" <"$WORK/streamed.body" \
    >"$WORK/streamed.txt" 2>"$WORK/streamed.log"
e2e_eq "streamed body decodes and every chunk re-encodes identically" "$?" 0
cat "$WORK/streamed.log" >&2
"$PCREAD" decode --samples "${RANGES[@]}" <"$WORK/samples.body" >"$WORK/samples.txt" \
    2>"$WORK/samples.log"
e2e_eq "SAMPLES body decodes" "$?" 0
cat "$WORK/samples.log" >&2

sort "$WORK/streamed.txt" >"$WORK/streamed.sorted"
sort "$WORK/samples.txt" >"$WORK/samples.sorted"
e2e_check "streamed and SAMPLES answers list the same samples" \
    cmp -s "$WORK/streamed.sorted" "$WORK/samples.sorted"
nsamples=$(wc -l <"$WORK/samples.sorted")
e2e_check "answers are not empty ($nsamples samples)" test "$nsamples" -gt 1000
e2e_check "query 2 (narrow range) answered" grep -q '^2 ' "$WORK/streamed.sorted"
e2e_check "query 3 (no match) empty" bash -c "! grep -q '^3 ' '$WORK/streamed.sorted'"
chunks=$(sed -n 's/.* \([0-9]*\) chunks,.*/\1/p' "$WORK/streamed.log")
series=$(sed -n 's/.* \([0-9]*\) series,.*/\1/p' "$WORK/streamed.log")
# Series created late in the run are short; the long-lived ones (`up` has
# 250+ samples) span two chunks or more.
e2e_check "multi-chunk series ($chunks chunks for $series series)" \
    test "${chunks:-0}" -gt "${series:-0}"

e2e_finish
