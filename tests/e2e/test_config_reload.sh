#!/usr/bin/env bash
# Configuration from the command line and at run time: `promcast
# check-config` reports file:line:col errors and its exit code; the embedded
# default and the canonical example validate; POST /-/reload and SIGHUP
# apply a good file, refuse a bad one (every error listed) and keep the
# running configuration; /api/v1/status shows what runs.
. "$(dirname "$0")/lib.sh"
e2e_require curl jq

# ---- check-config -----------------------------------------------------------
out=$("$PROMCAST" check-config "$SRC/deploy/promcast.yml" 2>&1)
e2e_eq "the canonical example validates (exit code)" "$?" 0
e2e_check "check-config says OK ($out)" grep -q 'OK' <<<"$out"
cat >"$WORK/bad.yml" <<'YAML'
global:
  step: 5 minutes
rules:
  - match: '{__name__=~"job:.*"'
    modle: auto
YAML
out=$("$PROMCAST" check-config "$WORK/bad.yml" 2>&1)
rc=$?
e2e_eq "a bad file fails check-config (exit code)" "$rc" 1
e2e_check "error for the duration, with line and column: $(grep -m1 step <<<"$out")" \
    grep -q "bad.yml:2:9: .*duration" <<<"$out"
e2e_check "error for the selector, with line and column" grep -q "bad.yml:4:.*" <<<"$out"
e2e_check "error for the unknown key, with line and column" grep -q 'bad.yml:5:5: unknown key "modle"' <<<"$out"
"$PROMCAST" check-config "$WORK/missing.yml" >/dev/null 2>&1
e2e_eq "a missing file fails check-config" "$?" 1

# ---- reload ---------------------------------------------------------------------
cat >"$WORK/promcast.yml" <<YAML
global: {step: 1m}
storage: {path: $WORK/state}
limits: {max_series_per_request: 1000}
rules:
  - match: '{__name__="a"}'
remote_write: []
YAML
e2e_start_promcast pc --config.file="$WORK/promcast.yml"
status() { curl -fsS "$pc_URL/api/v1/status"; }
e2e_eq "status: one rule" "$(status | jq '.config.rules')" 1
e2e_eq "status: the limit from the file" "$(status | jq '.limits.max_series_per_request')" 1000

cat >"$WORK/promcast.yml" <<YAML
global: {step: 1m}
storage: {path: $WORK/state}
limits: {max_series_per_request: 2000}
remote_write: []
rules:
  - match: '{__name__=~"a|b"}'
  - match: '{__name__="c"}'
YAML
code=$(curl -sS -o "$WORK/reply" -w '%{http_code}' -X POST "$pc_URL/-/reload")
e2e_eq "POST /-/reload of a good file" "$code" 200
e2e_eq "status: two rules after the reload" "$(status | jq '.config.rules')" 2
e2e_eq "status: the new limit" "$(status | jq '.limits.max_series_per_request')" 2000
e2e_eq "reload success gauge" "$(e2e_metric "$pc_URL" promcast_config_last_reload_successful)" 1

cp "$WORK/promcast.yml" "$WORK/good.yml"
cp "$WORK/bad.yml" "$WORK/promcast.yml"
code=$(curl -sS -o "$WORK/reply" -w '%{http_code}' -X POST "$pc_URL/-/reload")
e2e_eq "POST /-/reload of a bad file is refused" "$code" 500
e2e_check "the reply lists the errors with file:line:col ($(head -c 200 "$WORK/reply"))" \
    grep -q "promcast.yml:5:5: unknown key" "$WORK/reply"
e2e_eq "the running configuration stays (rules)" "$(status | jq '.config.rules')" 2
e2e_eq "reload failure gauge" "$(e2e_metric "$pc_URL" promcast_config_last_reload_successful)" 0
e2e_check "still healthy" curl -fsS "$pc_URL/-/healthy" -o /dev/null

# SIGHUP does the same.
sed 's/max_series_per_request: 2000/max_series_per_request: 3000/' "$WORK/good.yml" >"$WORK/promcast.yml"
kill -HUP "$pc_PID"
reloaded() { [ "$(status | jq '.limits.max_series_per_request')" = 3000 ]; }
e2e_wait_for "SIGHUP reload applied" 20 reloaded && e2e_log "ok: SIGHUP reloaded the file"
cp "$WORK/bad.yml" "$WORK/promcast.yml"
kill -HUP "$pc_PID"
failed() { [ "$(e2e_metric "$pc_URL" promcast_config_last_reload_successful)" = 0 ]; }
e2e_wait_for "SIGHUP with a bad file is refused" 20 failed && e2e_log "ok: bad file refused on SIGHUP"
e2e_eq "and the running configuration stays" "$(status | jq '.limits.max_series_per_request')" 3000
e2e_check "the daemon logged the error" grep -q 'configuration reload failed' "$WORK/pc.log"

# The embedded default runs without any file.
e2e_start_promcast def
e2e_eq "embedded default: one rule" "$(curl -fsS "$def_URL/api/v1/status" | jq '.config.source + " " + (.config.rules | tostring)')" '"<embedded> 1"'
e2e_finish
