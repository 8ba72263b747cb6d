#!/usr/bin/env bash
# `promcast backtest` over the committed NAB development corpus
# (tests/data/nab-dev, 34 files, 67 anomaly windows):
#
#  1. the NAB scorer reproduces the published reference scores of two
#     detectors from their per-row scores (--score-only): numenta
#     72.76 / 65.97 / 76.87 and windowedGaussian 50.87 / 31.13 / 59.02
#     (standard / reward_low_FP_rate / reward_low_FN_rate), to 2 decimals;
#  2. a full backtest with --labels writes one output per input with the same
#     rows, the documented header, the input's timestamp text unchanged and
#     scores in [0, 1], and its JSON summary holds NAB scores and MAE ratios
#     as numbers. No accuracy threshold: the model's quality is reported, not
#     gated here.
. "$(dirname "$0")/lib.sh"
e2e_require jq awk tar xz

DATA=$SRC/tests/data/nab-dev
LABELS=$DATA/combined_windows.json
HEADER='timestamp,value,yhat,yhat_lower,yhat_upper,anomaly_score,forecast_15m,forecast_1h'

# ---- 1. reference scores ---------------------------------------------------------
mkdir -p "$WORK/ref"
tar -xJf "$DATA/reference-scores.tar.xz" -C "$WORK/ref" || { e2e_log "FAIL: unpack"; exit 1; }
check_reference() { # DETECTOR STANDARD LOW_FP LOW_FN
    local det=$1 json=$WORK/ref-$1.json
    "$PROMCAST" backtest --score-only="$WORK/ref/reference-scores/$det" --labels="$LABELS" \
        --summary-json="$json" >"$WORK/ref-$det.txt" 2>&1
    e2e_eq "$det score-only exit code" "$?" 0
    e2e_eq "$det files scored" "$(jq '.nab.files' "$json")" 34
    e2e_eq "$det windows" "$(jq '.nab.windows' "$json")" 67
    e2e_eq "$det standard" "$(jq -r '.nab.standard.score' "$json" | xargs printf '%.2f')" "$2"
    e2e_eq "$det reward_low_FP_rate" "$(jq -r '.nab.reward_low_FP_rate.score' "$json" |
        xargs printf '%.2f')" "$3"
    e2e_eq "$det reward_low_FN_rate" "$(jq -r '.nab.reward_low_FN_rate.score' "$json" |
        xargs printf '%.2f')" "$4"
    # The text summary shows the same figures.
    e2e_check "$det text summary" grep -Eq "^  standard +$2 " "$WORK/ref-$det.txt"
}
check_reference numenta 72.76 65.97 76.87
check_reference windowedGaussian 50.87 31.13 59.02

# ---- 2. full backtest ---------------------------------------------------------------
OUT=$WORK/out
"$PROMCAST" backtest --input="$DATA" --output="$OUT" --labels="$LABELS" \
    --summary-json="$WORK/summary.json" >"$WORK/backtest.txt" 2>"$WORK/backtest.err"
e2e_eq "backtest exit code" "$?" 0
cat "$WORK/backtest.txt" >&2

inputs=$(cd "$DATA" && find . -name '*.csv' | sed 's|^\./||' | sort)
e2e_eq "input files" "$(echo "$inputs" | wc -l)" 34
bad_files=""
for f in $inputs; do
    in=$DATA/$f out=$OUT/$f
    if [ ! -f "$out" ]; then
        bad_files="$bad_files $f(missing)"
        continue
    fi
    [ "$(head -n1 "$out" | tr -d '\r')" = "$HEADER" ] || bad_files="$bad_files $f(header)"
    # Same number of data rows (the inputs may lack a final newline).
    nin=$(awk 'END { print NR }' "$in")
    nout=$(awk 'END { print NR }' "$out")
    [ "$nin" = "$nout" ] || bad_files="$bad_files $f(rows:$nin/$nout)"
    # First column = input timestamp text; anomaly_score a number in [0, 1];
    # every row has all 8 fields.
    awk -F, 'NR == FNR { if (FNR > 1) ts[FNR] = $1; next }
             FNR > 1 {
                 if ($1 != ts[FNR]) { print "timestamp row " FNR; exit 1 }
                 if (NF != 8) { print "fields row " FNR; exit 1 }
                 if ($6 !~ /^[0-9.eE+-]+$/ || $6 < 0 || $6 > 1) { print "score row " FNR; exit 1 }
             }' <(tr -d '\r' <"$in") "$out" >"$WORK/awk.txt" ||
        bad_files="$bad_files $f($(cat "$WORK/awk.txt"))"
done
e2e_eq "outputs match their inputs" "${bad_files:-none}" none

S=$WORK/summary.json
e2e_check "summary is JSON" jq -e . "$S" >/dev/null
e2e_eq "summary files" "$(jq '.files_total' "$S")" 34
e2e_eq "summary failed files" "$(jq '.files_failed' "$S")" 0
e2e_eq "summary rows" "$(jq '.rows' "$S")" 228257
for p in standard reward_low_FP_rate reward_low_FN_rate; do
    e2e_check "NAB $p is a number" jq -e ".nab.$p.score | type == \"number\"" "$S" >/dev/null
done
e2e_eq "NAB windows" "$(jq '.nab.windows' "$S")" 67
for h in step 15m 1h; do
    e2e_check "MAE ratio vs naive ($h) is a number" \
        jq -e ".mae_ratio[\"$h\"].naive.geomean | type == \"number\"" "$S" >/dev/null
    e2e_check "MAE ratio vs seasonal naive ($h) is a number" \
        jq -e ".mae_ratio[\"$h\"].seasonal_naive.geomean | type == \"number\"" "$S" >/dev/null
    e2e_check "reference-subset MAE ratio ($h) is a number" \
        jq -e ".mae_ratio[\"$h\"].reference_subset_naive.geomean | type == \"number\"" "$S" >/dev/null
done
e2e_eq "reference subset files" "$(jq '.reference_subset_files' "$S")" 19
e2e_check "coverage is a number in [0,1]" \
    jq -e '.coverage.one_step | type == "number" and . >= 0 and . <= 1' "$S" >/dev/null
e2e_check "steps inferred per file" \
    jq -e '[.files[] | select(.step_inferred)] | length == 34' "$S" >/dev/null
e2e_check "twitter step is 5m" \
    jq -e '.files[] | select(.path == "realTweets/Twitter_volume_AAPL.csv") | .step == "5m"' \
    "$S" >/dev/null

# ---- 3. a bad input fails with file:line:col --------------------------------------
printf 'timestamp,value\n2015-01-01 00:00:00,1\n2015-01-01 00:05:00,oops\n' >"$WORK/bad.csv"
"$PROMCAST" backtest --input="$WORK/bad.csv" >/dev/null 2>"$WORK/bad.err"
e2e_eq "bad input exit code" "$?" 1
e2e_check "bad input message" grep -q "bad.csv:3:21: value is not a number" "$WORK/bad.err"

e2e_finish
