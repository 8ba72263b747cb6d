#!/usr/bin/env bash
# The remote-write endpoint's answers, case by case: content negotiation,
# protocol 2.0 with its Written headers, sample kinds, and every kind of bad
# input with its documented status code and a one-line message. After each
# bad request the daemon must still serve, and each refusal must be counted.
. "$(dirname "$0")/lib.sh"
e2e_require curl python3
PCGEN=$BUILD/pcgen

# Small limits so the limit cases are cheap to hit.
cat >"$WORK/promcast.yml" <<'YAML'
global: {step: 1m}
limits:
  max_compressed_request_bytes: 1048576
  max_request_bytes: 4194304
  max_series_per_request: 5000
  max_labels_per_series: 64
  max_label_value_length: 4096
rules:
  - match: '{__name__=~".+"}'
remote_write: []
YAML
e2e_start_promcast pc --config.file="$WORK/promcast.yml"
URL=$pc_URL/api/v1/write
CT_V1='application/x-protobuf'
CT_V2='application/x-protobuf;proto=io.prometheus.write.v2.Request'

# post BODYFILE CONTENT_TYPE [ENCODING] -> prints "code|body" (headers in $WORK/h)
post() {
    local enc=${3:-snappy}
    curl -sS -o "$WORK/body" -D "$WORK/h" -w '%{http_code}' -X POST \
        -H "Content-Type: $2" -H "Content-Encoding: $enc" \
        -H 'X-Prometheus-Remote-Write-Version: 0.1.0' --data-binary @"$1" "$URL"
}
header() { tr -d '\r' <"$WORK/h" | awk -v h="$1" 'tolower($1) == tolower(h) ":" { print $2 }'; }
body_lines() { wc -l <"$WORK/body" | tr -d ' '; }

# case NAME KIND[:N] CONTENT_TYPE ENCODING WANT_CODE [BODY_SUBSTRING]
case_() {
    local name=$1 kind=${2%%:*} n="" ct=$3 enc=$4 want=$5 sub=${6:-}
    [[ $2 == *:* ]] && n=${2#*:}
    "$PCGEN" "$kind" $n >"$WORK/req.bin" || { e2e_log "FAIL: pcgen $kind"; E2E_FAILS=$((E2E_FAILS + 1)); return; }
    local code
    code=$(post "$WORK/req.bin" "$ct" "$enc")
    e2e_eq "$name: status" "$code" "$want"
    if [ -n "$sub" ]; then
        e2e_check "$name: body says '$sub' ($(head -c 200 "$WORK/body"))" grep -qF -- "$sub" "$WORK/body"
        e2e_eq "$name: body is one line" "$(body_lines)" 1
    fi
    e2e_check "$name: daemon still healthy" curl -fsS "$pc_URL/-/healthy" -o /dev/null
}

before=$(e2e_metric "$pc_URL" 'promcast_samples_received_total{protocol="v1"}')
case_ "v1 valid" v1:100 "$CT_V1" snappy 204
case_ "v1 valid, explicit proto" v1:10 "application/x-protobuf;proto=prometheus.WriteRequest" snappy 204
case_ "v1 no Content-Type parameters, spaces" v1:10 " application/x-protobuf ; proto = prometheus.WriteRequest " snappy 204
after=$(e2e_metric "$pc_URL" 'promcast_samples_received_total{protocol="v1"}')
e2e_eq "v1 samples counted" "$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.0f", a - b }')" 120

case_ "v1 stale marker" v1-stale "$CT_V1" snappy 204
e2e_check "stale marker counted" sh -c "[ \"\$(curl -fsS $pc_URL/metrics | awk '\$1==\"promcast_stale_markers_received_total\"{print \$2}')\" -ge 1 ]"
case_ "v1 native histogram (counted)" v1-histogram "$CT_V1" snappy 204
case_ "v1 exemplar (counted, ignored)" v1-exemplar "$CT_V1" snappy 204
case_ "v1 metadata-only request" metadata-only "$CT_V1" snappy 204
e2e_check "histogram counted" sh -c "curl -fsS $pc_URL/metrics | grep -q '^promcast_histograms_received_total{protocol=\"v1\"} 1'"
e2e_check "exemplar counted" sh -c "curl -fsS $pc_URL/metrics | grep -q '^promcast_exemplars_received_total{protocol=\"v1\"} 1'"

# Protocol 2.0, with and without whitespace in the Content-Type.
case_ "v2 valid" v2:50 "$CT_V2" snappy 204
e2e_eq "v2 samples written header" "$(header X-Prometheus-Remote-Write-Samples-Written)" 50
e2e_eq "v2 histograms written header" "$(header X-Prometheus-Remote-Write-Histograms-Written)" 0
e2e_eq "v2 exemplars written header" "$(header X-Prometheus-Remote-Write-Exemplars-Written)" 0
case_ "v2 valid, space after ;" v2:7 "application/x-protobuf; proto=io.prometheus.write.v2.Request" snappy 204
e2e_eq "v2 (spaced) samples written header" "$(header X-Prometheus-Remote-Write-Samples-Written)" 7
case_ "v2 ref outside the symbol table" v2-bad-ref:3 "$CT_V2" snappy 400 "ref"
e2e_eq "v2 error still carries Written header" "$(header X-Prometheus-Remote-Write-Samples-Written)" 0
case_ "v2 odd number of label refs" v2-odd-refs:3 "$CT_V2" snappy 400
case_ "v2 series without samples" v2-no-samples:3 "$CT_V2" snappy 400

# Negotiation failures.
case_ "JSON content type" v1 "application/json" snappy 415 "Content-Type"
case_ "unknown proto message" v1 "application/x-protobuf;proto=foo.Bar" snappy 415 "foo.Bar"
case_ "gzip encoding" v1 "$CT_V1" gzip 415 "Content-Encoding"

# Malformed bodies.
case_ "corrupt snappy" corrupt-snappy "$CT_V1" snappy 400 "snappy"
case_ "framed snappy" framed-snappy "$CT_V1" snappy 400 "fram"
case_ "truncated protobuf" truncated "$CT_V1" snappy 400
case_ "uncompressed protobuf" raw-v1 "$CT_V1" snappy 400
case_ "declared length 4 GiB" declared-4gib "$CT_V1" snappy 413 "4294967295"
case_ "body over max_compressed_request_bytes" incompressible:2000000 "$CT_V1" snappy 413 "exceeds"
case_ "more series than max_series_per_request" v1:6000 "$CT_V1" snappy 413
case_ "100 000 labels in one series" many-labels:100000 "$CT_V1" snappy 400 "labels"
case_ "empty label set" empty-labels "$CT_V1" snappy 400 "empty"
case_ "duplicate label names" dup-labels "$CT_V1" snappy 400 "duplicate"

# Wrong method / path.
code=$(curl -sS -o /dev/null -w '%{http_code}' "$URL")
e2e_eq "GET /api/v1/write" "$code" 405
code=$(curl -sS -o /dev/null -w '%{http_code}' "$pc_URL/nope")
e2e_eq "unknown path" "$code" 404

# Every refusal was counted by reason.
curl -fsS "$pc_URL/metrics" >"$WORK/metrics.txt"
for reason in unsupported_content_type unsupported_content_encoding snappy protobuf too_large \
    body_too_large too_many_series too_many_labels invalid_labels invalid_ref invalid_series; do
    e2e_check "rejections counted for reason=$reason" \
        grep -q "^promcast_rejected_requests_total{reason=\"$reason\"} [1-9]" "$WORK/metrics.txt"
done

# Still fully working after all that.
case_ "v1 valid at the end" v1:10 "$CT_V1" snappy 204
e2e_finish
