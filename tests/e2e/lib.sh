# lib.sh — shared helpers for promcast's end-to-end tests (sourced, not run).
#
# Every process a test starts is recorded with its PID and stopped by that PID
# on exit (trap). All traffic stays on 127.0.0.1; ports are picked at run time.
# Checks never depend on wall-clock speed: waits poll a condition up to a
# generous deadline and fail with a message if it never holds.

set -u
set -o pipefail

E2E_NAME=$(basename "${0%.sh}")
SRC=${PROMCAST_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${PROMCAST_BUILD_DIR:-$SRC/build}
PROMCAST=$BUILD/promcast
WORK=$(mktemp -d "${TMPDIR:-/tmp}/promcast-$E2E_NAME.XXXXXX")
E2E_PIDS=()
E2E_FAILS=0
E2E_CHECKS=0

e2e_log() { printf '%s: %s\n' "$E2E_NAME" "$*" >&2; }

e2e_cleanup() {
    local pid
    for pid in "${E2E_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        fi
    done
    if [ "$E2E_FAILS" -eq 0 ] && [ -z "${E2E_KEEP:-}" ]; then
        rm -rf "$WORK"
    else
        e2e_log "logs kept in $WORK"
    fi
}
trap e2e_cleanup EXIT

# e2e_require CMD... : skip (exit 77 → ctest "skipped"? no: fail loudly) when a tool is missing.
e2e_require() {
    local c
    for c in "$@"; do
        if ! command -v "$c" >/dev/null 2>&1 && [ ! -x "$c" ]; then
            e2e_log "FAIL: required tool $c not found (install the Debian package; see README)"
            exit 1
        fi
    done
}

# e2e_free_port: print a TCP port that is free on 127.0.0.1 right now.
e2e_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# e2e_start NAME CMD... : start a background process, logs to $WORK/NAME.log,
# remember its PID in the variable NAME_PID.
e2e_start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    E2E_PIDS+=("$pid")
    printf -v "${name}_PID" '%s' "$pid"
    e2e_log "started $name (pid $pid): $*"
}

# e2e_stop PID [SIGNAL] : stop one process by PID and wait for it.
e2e_stop() {
    local pid=$1 sig=${2:-TERM}
    kill -"$sig" "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# e2e_wait_for DESCRIPTION SECONDS CMD... : poll CMD every 0.2 s until it
# succeeds; fail the test when it never does.
e2e_wait_for() {
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    e2e_log "FAIL: timed out after ${secs}s waiting for: $what"
    E2E_FAILS=$((E2E_FAILS + 1))
    return 1
}

# e2e_check DESCRIPTION CMD... : one assertion.
e2e_check() {
    local what=$1
    shift
    E2E_CHECKS=$((E2E_CHECKS + 1))
    if "$@"; then
        e2e_log "ok: $what"
    else
        e2e_log "FAIL: $what"
        E2E_FAILS=$((E2E_FAILS + 1))
    fi
}

# e2e_eq DESCRIPTION GOT WANT
e2e_eq() {
    E2E_CHECKS=$((E2E_CHECKS + 1))
    if [ "$2" = "$3" ]; then
        e2e_log "ok: $1 ($2)"
    else
        e2e_log "FAIL: $1: got '$2', want '$3'"
        E2E_FAILS=$((E2E_FAILS + 1))
    fi
}

# e2e_start_promcast NAME [ARGS...] : start promcast on a free port chosen by
# the kernel (port 0), wait until it is ready, set NAME_URL.
e2e_start_promcast() {
    local name=$1
    shift
    e2e_start "$name" "$PROMCAST" --web.listen-address=127.0.0.1:0 "$@"
    local log=$WORK/$name.log port=""
    for _ in $(seq 1 150); do
        port=$(sed -n 's/.*msg=listening .*port=\([0-9]*\).*/\1/p' "$log" | head -n1)
        [ -n "$port" ] && break
        local pidvar=${name}_PID
        if ! kill -0 "${!pidvar}" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if [ -z "$port" ]; then
        e2e_log "FAIL: $name did not start; log:"
        cat "$log" >&2
        exit 1
    fi
    printf -v "${name}_URL" 'http://127.0.0.1:%s' "$port"
    local url=http://127.0.0.1:$port
    e2e_wait_for "$name ready" 30 curl -fsS "$url/-/ready" || exit 1
}

# e2e_metric URL NAME_WITH_LABELS : print the value of one sample from a
# /metrics page (exact match of the name+labels text), or 0 when absent.
e2e_metric() {
    curl -fsS "$1/metrics" | awk -v m="$2" '$1 == m { v = $2 } END { print (v == "" ? 0 : v) }'
}

# e2e_metric_sum URL NAME : sum of every sample of a family.
e2e_metric_sum() {
    curl -fsS "$1/metrics" | awk -v m="$2" '
        { n = $1; sub(/\{.*/, "", n) }
        n == m { s += $2 }
        END { printf "%.0f\n", s }'
}

# e2e_finish : print the summary line and exit with the right code.
e2e_finish() {
    echo "$E2E_NAME: $E2E_CHECKS checks, $E2E_FAILS failed"
    [ "$E2E_FAILS" -eq 0 ]
    exit $?
}
