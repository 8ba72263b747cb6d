/*
 * Unit tests for backtest.c: step inference, the forecast-evaluation
 * arithmetic on hand-made series, and the command on small files written to a
 * temporary directory (output layout, timestamps kept, exit codes).
 *
 * Remote read: the file-name encoding (pinned against an independent FNV-1a
 * computation, safe characters, unique, deterministic), the time-range
 * splitting, the flag checks (exit code and message), and whole runs against
 * a fake remote-read server on 127.0.0.1 (libmicrohttpd, answering with
 * wire_read's own response builder, streamed or SAMPLES): the sub-requests
 * sent, files and index.csv written, outputs identical to a CSV run of the
 * same samples, stale markers, credentials from the config's remote_read
 * section, and every error path (HTTP status, bad body, series, sample and
 * size caps, nothing matched).
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backtest.h"
#include "selector.h"
#include "testlib.h"
#include "wire_read.h"

#define NEAR(a, b, tol, ...)                                                                       \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        CHECK(fabs(a_ - b_) <= (tol), __VA_ARGS__);                                                \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            fprintf(stderr, "    got %.17g want %.17g\n", a_, b_);                                 \
    } while (0)

#define SEC 1000
#define MIN (60 * SEC)

static void test_infer_step(void)
{
    int64_t t[64];
    size_t n;

    /* Regular 5-minute data at odd seconds. */
    for (n = 0; n < 20; n++)
        t[n] = INT64_C(1424986973000) + (int64_t)n * 5 * MIN;
    CHECK(backtest_infer_step(t, n) == 5 * MIN, "regular got %lld",
          (long long)backtest_infer_step(t, n));

    /* Jitter around 5 minutes snaps to 5m. */
    for (n = 0; n < 21; n++)
        t[n] = (int64_t)n * 5 * MIN + (n % 2 ? 7 * SEC : 0);
    CHECK(backtest_infer_step(t, n) == 5 * MIN, "jitter got %lld",
          (long long)backtest_infer_step(t, n));

    /* Repeated timestamps and a long gap do not move the median. */
    int64_t irregular[] = {0,        10 * MIN, 10 * MIN, 20 * MIN,   30 * MIN,  30 * MIN,
                           30 * MIN, 40 * MIN, 50 * MIN, 5000 * MIN, 5010 * MIN};
    CHECK(backtest_infer_step(irregular, sizeof irregular / sizeof irregular[0]) == 10 * MIN,
          "irregular got %lld",
          (long long)backtest_infer_step(irregular, sizeof irregular / sizeof irregular[0]));

    /* Not near a round step: whole seconds (7m stays 7m; 7m1.4s -> 7m1s). */
    for (n = 0; n < 10; n++)
        t[n] = (int64_t)n * 7 * MIN;
    CHECK(backtest_infer_step(t, n) == 7 * MIN, "7m got %lld",
          (long long)backtest_infer_step(t, n));
    for (n = 0; n < 10; n++)
        t[n] = (int64_t)n * (7 * MIN + 1400);
    CHECK(backtest_infer_step(t, n) == 7 * MIN + SEC, "7m1.4s got %lld",
          (long long)backtest_infer_step(t, n));
    /* Below a second: whole milliseconds. */
    for (n = 0; n < 10; n++)
        t[n] = (int64_t)n * 250;
    CHECK(backtest_infer_step(t, n) == 250, "250ms got %lld", (long long)backtest_infer_step(t, n));
    /* Lower median of an even count: {1m, 1m, 2m, 2m} -> 1m. */
    int64_t even[] = {0, MIN, 2 * MIN, 4 * MIN, 6 * MIN};
    CHECK(backtest_infer_step(even, 5) == MIN, "even count got %lld",
          (long long)backtest_infer_step(even, 5));

    /* Nothing to infer from. */
    CHECK(backtest_infer_step(t, 1) == 0, "one row");
    int64_t same[] = {5, 5, 5};
    CHECK(backtest_infer_step(same, 3) == 0, "one time");
    CHECK(backtest_infer_step(NULL, 0) == 0, "empty");
}

/*
 * A hand-made series: step 1m, season 4 steps, one horizon of 2 steps.
 *   k      0  1  2  3  4  5  6  7
 *   value  1  3  2  5  4  6  5  8
 *   yhat   -  2  4  3  6  5  7  6     (value[k-1] + 1; k = 0 not ready)
 *   fc2    -  3.5 2.5 5.5 4.5 6.5 ... (value[k] + 0.5, for step k + 2)
 *   bounds [yhat - 2, yhat + 1.5]
 */
static const double V[8] = {1, 3, 2, 5, 4, 6, 5, 8};

static void make_series(struct model_output *o, size_t n)
{
    memset(o, 0, n * sizeof *o);
    for (size_t k = 0; k < n; k++) {
        o[k].t = INT64_C(1400000000000) / MIN * MIN + (int64_t)k * MIN;
        o[k].value = V[k];
        o[k].ready = k > 0;
        o[k].yhat = k > 0 ? V[k - 1] + 1 : V[0];
        o[k].yhat_lower = o[k].yhat - 2;
        o[k].yhat_upper = o[k].yhat + 1.5;
        o[k].nhorizons = 1;
        o[k].forecast[0] = V[k] + 0.5;
    }
}

static void test_evaluate(void)
{
    struct model_output o[8];
    struct backtest_eval ev;
    int64_t h[1] = {2 * MIN};

    make_series(o, 8);
    CHECK(backtest_evaluate(o, 8, MIN, h, 1, 4 * MIN, &ev) == 0, "evaluate");
    CHECK(ev.nslots == 2, "slots %d", ev.nslots);

    /* One step, k = 1..7: |yhat - v| = 1 2 2 2 1 2 2; naive |v[k-1] - v| =
     * 2 1 3 1 2 1 3; seasonal (k >= 4): |v[k-4] - v| = 3 3 3 3 with the model's
     * errors 2 1 2 2 on those points. */
    CHECK(ev.h[0].n == 7 && ev.h[0].ns == 4, "one step n %zu ns %zu", ev.h[0].n, ev.h[0].ns);
    NEAR(ev.h[0].mae_model, 12.0 / 7.0, 1e-12, "one-step MAE");
    NEAR(ev.h[0].mae_naive, 13.0 / 7.0, 1e-12, "one-step naive MAE");
    NEAR(ev.h[0].mae_model_s, 7.0 / 4.0, 1e-12, "one-step model MAE on seasonal points");
    NEAR(ev.h[0].mae_seasonal, 3.0, 1e-12, "one-step seasonal MAE");

    /* Two steps, origins k = 1..5: |v[k] + .5 - v[k+2]| = 1.5 1.5 .5 .5 1.5;
     * naive |v[k] - v[k+2]| = 2 2 1 1 2; seasonal (k >= 2): |v[k-2] - v[k+2]|
     * = 3 3 3 3 with model errors 1.5 .5 .5 1.5. */
    CHECK(ev.h[1].n == 5 && ev.h[1].ns == 4, "2-step n %zu ns %zu", ev.h[1].n, ev.h[1].ns);
    NEAR(ev.h[1].mae_model, 5.5 / 5.0, 1e-12, "2-step MAE");
    NEAR(ev.h[1].mae_naive, 8.0 / 5.0, 1e-12, "2-step naive MAE");
    NEAR(ev.h[1].mae_model_s, 1.0, 1e-12, "2-step MAE on seasonal points");
    NEAR(ev.h[1].mae_seasonal, 3.0, 1e-12, "2-step seasonal MAE");

    /* Coverage: v - yhat = +1 -2 +2 -2 +1 -2 +2 in [-2, +1.5] (inclusive):
     * 5 of 7. */
    CHECK(ev.cov_n == 7 && ev.cov_inside == 5, "coverage %zu/%zu", ev.cov_inside, ev.cov_n);

    /* A missing step (k = 3): every point needing it is skipped. One step:
     * k = 4 loses its naive value. Two steps: k = 1 (target 3) and k = 3
     * (origin) go; k = 2 (target 4), k = 4 (target 6) and k = 5 stay. */
    struct model_output g[7];
    memcpy(g, o, 3 * sizeof *o);
    memcpy(g + 3, o + 4, 4 * sizeof *o);
    CHECK(backtest_evaluate(g, 7, MIN, h, 1, 4 * MIN, &ev) == 0, "gap evaluate");
    CHECK(ev.h[0].n == 5, "gap one-step n %zu", ev.h[0].n);
    CHECK(ev.h[1].n == 3, "gap 2-step n %zu", ev.h[1].n);
    NEAR(ev.h[1].mae_model, (1.5 + 0.5 + 1.5) / 3.0, 1e-12, "gap 2-step MAE");

    /* A horizon shorter than the step has nothing to compare with. */
    int64_t short_h[1] = {30 * SEC};
    CHECK(backtest_evaluate(o, 8, MIN, short_h, 1, 4 * MIN, &ev) == 0 && ev.h[1].n == 0,
          "sub-step horizon n %zu", ev.h[1].n);
    /* A horizon that is not a multiple of the step targets the step it falls
     * in: 90 s from k lands in step k + 1. */
    int64_t odd_h[1] = {90 * SEC};
    CHECK(backtest_evaluate(o, 8, MIN, odd_h, 1, 4 * MIN, &ev) == 0 && ev.h[1].n == 6,
          "90s horizon n %zu", ev.h[1].n);

    /* Not-ready outputs are not origins; NaN forecasts are skipped. */
    make_series(o, 8);
    o[5].ready = false;
    o[6].forecast[0] = NAN;
    CHECK(backtest_evaluate(o, 8, MIN, h, 1, 4 * MIN, &ev) == 0, "evaluate 2");
    CHECK(ev.h[0].n == 6 && ev.h[1].n == 4 && ev.cov_n == 6, "ready/NaN n %zu %zu %zu", ev.h[0].n,
          ev.h[1].n, ev.cov_n);

    /* Bad arguments. */
    CHECK(backtest_evaluate(o, 8, 0, h, 1, 4 * MIN, &ev) == -1, "step 0");
    CHECK(backtest_evaluate(o, 8, MIN, h, 1, 0, &ev) == -1, "season 0");
    CHECK(backtest_evaluate(o, 8, MIN, h, MODEL_MAX_HORIZONS + 1, MIN, &ev) == -1, "nh");
    CHECK(backtest_evaluate(NULL, 0, MIN, h, 1, MIN, &ev) == 0 && ev.h[0].n == 0, "empty");
}

/* ---- the command on small files ------------------------------------------------- */

static char tmpdir[256];

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "create %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void make_dir(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    CHECK(mkdir(path, 0777) == 0, "mkdir %s", path);
}

static char *read_file(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int run(const char *a1, const char *a2, const char *a3, const char *a4, const char *a5)
{
    static char name[] = "backtest";
    char *argv[8] = {name};
    int argc = 1;
    const char *in[5] = {a1, a2, a3, a4, a5};
    static char store[5][600];
    for (int i = 0; i < 5 && in[i]; i++) {
        /* "@" expands to the temporary directory. */
        const char *at = strchr(in[i], '@');
        if (at)
            snprintf(store[i], sizeof store[i], "%.*s%s%s", (int)(at - in[i]), in[i], tmpdir,
                     at + 1);
        else
            snprintf(store[i], sizeof store[i], "%s", in[i]);
        argv[argc++] = store[i];
    }
    fflush(stdout);
    return backtest_main(argc, argv);
}

static bool starts_with(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void test_command(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/promcast-test-backtest-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "mkdtemp");
        return;
    }

    /* 3 days of 5-minute data in mixed timestamp formats, with a missing
     * value, a quoted timestamp and a repeated timestamp. */
    char *csv = malloc(1 << 20);
    size_t o = (size_t)sprintf(csv, "timestamp,value,extra\r\n");
    int rows = 3 * 288;
    for (int i = 0; i < rows; i++) {
        long long ts = 1424986800LL + i * 300LL;
        double v = 10.0 + 5.0 * sin(i * 2.0 * 3.141592653589793 / 288.0) + (i % 7) * 0.1;
        if (i == 100)
            o += (size_t)sprintf(csv + o, "%lld,,x\r\n", ts);
        else if (i == 101)
            o += (size_t)sprintf(csv + o, "\"%lld000\",%.3f,x\r\n", ts, v);
        else if (i == 102)
            o += (size_t)sprintf(csv + o, "2015-02-27T06:15:00Z,%.3f\r\n", v);
        else if (i == 103)
            o += (size_t)sprintf(csv + o, "2015-02-27T06:15:00Z,%.3f\r\n", v + 1);
        else
            o += (size_t)sprintf(csv + o, "%lld,%.3f\r\n", ts, v);
    }
    make_dir("in");
    make_dir("in/sub");
    write_file("in/sub/a.csv", csv);
    write_file("in/b.csv", "timestamp,value\n2015-02-26 21:40:00,1\n2015-02-26 21:45:00,2\n"
                           "2015-02-26 21:50:00,3\n");
    write_file("in/notes.txt", "not a csv\n");
    write_file("labels.json", "{\"sub/a.csv\": [[\"2015-02-28 00:00:00\", "
                              "\"2015-02-28 02:00:00\"]], \"b.csv\": []}");

    int rc = run("--input=@/in", "--output", "@/out", "--labels=@/labels.json",
                 "--summary-json=@/sum.json");
    CHECK(rc == 0, "directory run rc %d", rc);
    char *out = read_file("out/sub/a.csv");
    CHECK(out != NULL, "mirrored output missing");
    if (out) {
        CHECK(starts_with(out, "timestamp,value,yhat,yhat_lower,yhat_upper,anomaly_score,"
                               "forecast_15m,forecast_1h\n"),
              "header: %.90s", out);
        CHECK(count_lines(out) == (size_t)rows + 1, "rows %zu", count_lines(out));
        CHECK(strstr(out, "\n1424986800,") != NULL, "first timestamp text");
        CHECK(strstr(out, "\n\"1425017100000\",") != NULL, "quoted timestamp kept");
        CHECK(strstr(out, "\n2015-02-27T06:15:00Z,") != NULL, "RFC 3339 text kept");
    }
    CHECK(read_file("out/b.csv") != NULL, "second file");
    CHECK(read_file("out/notes.txt") == NULL, "non-csv copied");
    char *sum = read_file("sum.json");
    CHECK(sum && strstr(sum, "\"reward_low_FN_rate\"") && strstr(sum, "\"rel_naive\""),
          "summary json");

    /* Single file to a named output; --step override; unknown flag; missing
     * input; bad file. */
    rc = run("--input=@/in/b.csv", "--output=@/b-out.csv", "--step=5m", NULL, NULL);
    CHECK(rc == 0 && count_lines(read_file("b-out.csv")) == 4, "single file rc %d", rc);
    CHECK(run("--input=@/in/b.csv", "--bogus", NULL, NULL, NULL) == 1, "unknown flag");
    CHECK(run("--output=@/x.csv", NULL, NULL, NULL, NULL) == 1, "no input");
    CHECK(run("--input=@/nope.csv", NULL, NULL, NULL, NULL) == 1, "missing input");
    write_file("bad.csv", "timestamp,value\n1,2\nx,3\n");
    CHECK(run("--input=@/bad.csv", NULL, NULL, NULL, NULL) == 1, "bad row fails");
    CHECK(run("--input=@/bad.csv", "--skip-bad-rows", "--output=@/bad-out.csv", NULL, NULL) == 0,
          "bad row skipped");
    CHECK(count_lines(read_file("bad-out.csv")) == 3, "skipped row still written");
    CHECK(run("--help", NULL, NULL, NULL, NULL) == 0, "help");

    /* A config: its step is used (no inference), its horizons name the
     * columns, and a series no rule matches is an error. --metric-name
     * decides which rule applies. */
    write_file("c.yml", "global: {step: 10m}\n"
                        "rules:\n"
                        "  - match: '{__name__=\"b\"}'\n"
                        "    horizons: [30m]\n"
                        "remote_write: []\n");
    rc = run("--config=@/c.yml", "--input=@/in/b.csv", "--output=@/c-out.csv",
             "--summary-json=@/c.json", NULL);
    out = read_file("c-out.csv");
    CHECK(rc == 0 && starts_with(out, "timestamp,value,yhat,yhat_lower,yhat_upper,anomaly_score,"
                                      "forecast_30m\n"),
          "config run rc %d: %.80s", rc, out ? out : "(none)");
    sum = read_file("c.json");
    CHECK(sum && strstr(sum, "\"step\": \"10m\", \"step_ms\": 600000, \"step_inferred\": false"),
          "config step: %s", sum ? sum : "(none)");
    CHECK(run("--config=@/c.yml", "--input=@/in/sub/a.csv", NULL, NULL, NULL) == 1,
          "no matching rule");
    CHECK(run("--config=@/c.yml", "--input=@/in/sub/a.csv", "--metric-name=b", NULL, NULL) == 0,
          "--metric-name");
    write_file("broken.yml", "rules: [\n");
    CHECK(run("--config=@/broken.yml", "--input=@/in/b.csv", NULL, NULL, NULL) == 1, "bad config");

    /* Score-only: a perfect detector over the labels scores 100. */
    make_dir("scores");
    o = (size_t)sprintf(csv, "timestamp,value,anomaly_score\n");
    for (int i = 0; i < 1000; i++)
        o += (size_t)sprintf(csv + o, "%d,1,%d\n", 1400000000 + 60 * i, i == 500);
    write_file("scores/f.csv", csv);
    write_file("w.json", "{\"f.csv\": [[1400030000, 1400035940]]}");
    rc = run("--score-only=@/scores", "--labels=@/w.json", "--summary-json=@/s2.json", NULL, NULL);
    sum = read_file("s2.json");
    CHECK(rc == 0 && sum && strstr(sum, "\"standard\": {\"score\": 100,"), "score-only: %s",
          sum ? sum : "(none)");
    CHECK(run("--score-only=@/scores", NULL, NULL, NULL, NULL) == 1, "score-only needs labels");

    free(csv);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0, "cleanup");
}

/* ---- remote read: file names ---------------------------------------------------- */

#define L(n, v)                                                                                    \
    {                                                                                              \
        n, v, (uint32_t)(sizeof n - 1), (uint32_t)(sizeof v - 1)                                   \
    }

static bool name_is_safe(const char *s)
{
    size_t l = strlen(s);
    if (l < 4 + 18 || strcmp(s + l - 4, ".csv") != 0)
        return false;
    for (size_t i = 0; i < l - 4; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    /* ...__<16 hex>.csv */
    const char *h = s + l - 4 - 16;
    if (h[-1] != '_' || h[-2] != '_')
        return false;
    for (int i = 0; i < 16; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return true;
}

static void test_file_names(void)
{
    char a[BACKTEST_FILE_NAME_MAX], b[BACKTEST_FILE_NAME_MAX];

    /* Pinned: FNV-1a 64 of "__name__\xffpc_bt\xffkind\xffsine\xff", computed
     * independently (Python). A change here renames users' files. */
    struct label sine[] = {L("__name__", "pc_bt"), L("kind", "sine")};
    size_t n = backtest_series_file_name(sine, 2, a, sizeof a);
    CHECK(n == strlen(a) && strcmp(a, "pc_bt__ecae6f5ab321ef6d.csv") == 0, "pinned name %s", a);

    /* Deterministic: the same set in other buffers gives the same name. */
    char nm[] = "pc_bt", k[] = "kind", v[] = "sine";
    struct label copy[] = {{"__name__", nm, 8, 5}, {k, v, 4, 4}};
    backtest_series_file_name(copy, 2, b, sizeof b);
    CHECK(strcmp(a, b) == 0, "same set, other buffers: %s vs %s", a, b);

    /* Safe and unique over sets that differ in small ways, including ones
     * whose metric parts read the same and label boundaries that move. */
    struct label s0[] = {L("__name__", "a")};
    struct label s1[] = {L("__name__", "a"), L("x", "1")};
    struct label s2[] = {L("__name__", "a"), L("x", "2")};
    struct label s3[] = {L("__name__", "a"), L("x", "12")};
    struct label s4[] = {L("__name__", "a"), L("x1", "2")};
    struct label s5[] = {L("__name__", "a:b")};
    struct label s6[] = {L("__name__", "a_b")};
    struct label s7[] = {L("__name__", "a/b")};
    struct label s8[] = {L("__name__", "../../etc/passwd")};
    struct label s9[] = {L("job", "x")};
    struct label s10[] = {L("__name__", "a"), L("x", "1"), L("y", "")};
    struct label s11[] = {L("__name__", "-rf .hidden")};
    struct label s12[] = {L("__name__", "\xc3\xa9t\xc3\xa9")};
    struct {
        const struct label *l;
        size_t n;
        const char *prefix;
    } cases[] = {
        {s0, 1, "a__"},      {s1, 2, "a__"},   {s2, 2, "a__"},
        {s3, 2, "a__"},      {s4, 2, "a__"},   {s5, 1, "a_b__"},
        {s6, 1, "a_b__"},    {s7, 1, "a_b__"}, {s8, 1, "______etc_passwd__"},
        {s9, 1, "series__"}, {s10, 3, "a__"},  {s11, 1, "_rf__hidden__"},
        {s12, 1, "__t____"},
    };
    size_t nc = sizeof cases / sizeof cases[0];
    char names[16][BACKTEST_FILE_NAME_MAX];
    for (size_t i = 0; i < nc; i++) {
        backtest_series_file_name(cases[i].l, cases[i].n, names[i], sizeof names[i]);
        CHECK(name_is_safe(names[i]), "case %zu: unsafe name \"%s\"", i, names[i]);
        CHECK(strncmp(names[i], cases[i].prefix, strlen(cases[i].prefix)) == 0,
              "case %zu: \"%s\" does not start with \"%s\"", i, names[i], cases[i].prefix);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(names[i], names[j]) != 0, "cases %zu and %zu share \"%s\"", j, i,
                  names[i]);
    }

    /* A long metric name is cut; the name always fits BACKTEST_FILE_NAME_MAX. */
    char longname[400];
    memset(longname, 'm', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    struct label ll[] = {{"__name__", longname, 8, (uint32_t)strlen(longname)}};
    n = backtest_series_file_name(ll, 1, a, sizeof a);
    CHECK(n == BACKTEST_FILE_METRIC_MAX + 2 + 16 + 4 && name_is_safe(a), "long name %zu: %s", n, a);
    /* Too small a buffer: 0 and "". */
    CHECK(backtest_series_file_name(sine, 2, b, 10) == 0 && b[0] == '\0', "small buffer: %s", b);
}

/* ---- remote read: range splitting ------------------------------------------------------ */

#define DAY     (INT64_C(86400) * SEC)
#define FAKE_T0 INT64_C(1700006400000) /* 2023-11-15T00:00:00Z */

static void test_ranges(void)
{
    struct backtest_range p;

    /* Two days and one millisecond in days: 3 parts, the last 1 ms long. */
    int64_t t0 = INT64_C(1700006400000);
    CHECK(backtest_range_parts(t0, t0 + 2 * DAY, DAY) == 3, "2d inclusive parts %zu",
          backtest_range_parts(t0, t0 + 2 * DAY, DAY));
    p = backtest_range_part(t0, t0 + 2 * DAY, DAY, 0);
    CHECK(p.start_ms == t0 && p.end_ms == t0 + DAY - 1, "part 0 %lld..%lld", (long long)p.start_ms,
          (long long)p.end_ms);
    p = backtest_range_part(t0, t0 + 2 * DAY, DAY, 2);
    CHECK(p.start_ms == t0 + 2 * DAY && p.end_ms == t0 + 2 * DAY, "last part %lld..%lld",
          (long long)p.start_ms, (long long)p.end_ms);
    p = backtest_range_part(t0, t0 + 2 * DAY, DAY, 3);
    CHECK(p.start_ms > p.end_ms, "past the last part is empty");
    /* Exactly two days' worth of milliseconds: 2 parts. */
    CHECK(backtest_range_parts(t0, t0 + 2 * DAY - 1, DAY) == 2, "exact 2d");
    /* Shorter than a part; one instant; nothing; bad part length. */
    CHECK(backtest_range_parts(t0, t0 + 5 * MIN, DAY) == 1, "short range");
    p = backtest_range_part(t0, t0 + 5 * MIN, DAY, 0);
    CHECK(p.start_ms == t0 && p.end_ms == t0 + 5 * MIN, "short range part");
    CHECK(backtest_range_parts(t0, t0, DAY) == 1, "one instant");
    CHECK(backtest_range_parts(t0 + 1, t0, DAY) == 0, "start after end");
    CHECK(backtest_range_parts(t0, t0 + DAY, 0) == 0 && backtest_range_parts(t0, t0 + DAY, -5) == 0,
          "part <= 0");
    /* No overflow at the extremes. */
    CHECK(backtest_range_parts(INT64_MIN, INT64_MAX, INT64_MAX) == 3, "extremes %zu",
          backtest_range_parts(INT64_MIN, INT64_MAX, INT64_MAX));
    static const int64_t ext[3][2] = {
        {INT64_MIN, -2}, {-1, INT64_MAX - 2}, {INT64_MAX - 1, INT64_MAX}};
    for (size_t i = 0; i < 3; i++) {
        p = backtest_range_part(INT64_MIN, INT64_MAX, INT64_MAX, i);
        CHECK(p.start_ms == ext[i][0] && p.end_ms == ext[i][1], "extreme part %zu: %lld..%lld", i,
              (long long)p.start_ms, (long long)p.end_ms);
    }

    /* Table: parts are disjoint, ascending, no longer than part_ms, and
     * cover [start, end] exactly; negative times too. */
    static const struct {
        int64_t start, end, part;
    } tab[] = {
        {0, 7 * DAY, DAY},
        {0, 7 * DAY - 1, DAY},
        {-3 * DAY - 7, 2 * DAY + 11, 7 * 3600 * SEC},
        {FAKE_T0, FAKE_T0 + 90 * DAY, DAY},
        {FAKE_T0, FAKE_T0 + 59 * SEC, MIN},
        {5, 5, 1},
        {-10, 10, 3},
    };
    for (size_t c = 0; c < sizeof tab / sizeof tab[0]; c++) {
        size_t np = backtest_range_parts(tab[c].start, tab[c].end, tab[c].part);
        int64_t next = tab[c].start;
        bool ok = np > 0;
        for (size_t i = 0; i < np && ok; i++) {
            p = backtest_range_part(tab[c].start, tab[c].end, tab[c].part, i);
            ok = p.start_ms == next && p.end_ms >= p.start_ms &&
                 p.end_ms - p.start_ms < tab[c].part &&
                 (i + 1 == np || p.end_ms - p.start_ms == tab[c].part - 1);
            next = p.end_ms + 1;
        }
        CHECK(ok && next == tab[c].end + 1, "case %zu [%lld, %lld] by %lld: %zu parts", c,
              (long long)tab[c].start, (long long)tab[c].end, (long long)tab[c].part, np);
    }
}

/* ---- remote read: a fake server -------------------------------------------------------- */

enum fake_mode {
    FAKE_OK = 0,    /* answer with the series; streamed when asked */
    FAKE_SAMPLES,   /* always SAMPLES */
    FAKE_STATUS500, /* 500 with a two-line body */
    FAKE_GARBAGE,   /* 200, a body that is not snappy */
};

#define FAKE_T1   (FAKE_T0 + DAY)
#define FAKE_MAXQ 64

struct fake {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    enum fake_mode mode;
    int requests;
    int nq;
    struct backtest_range q[FAKE_MAXQ]; /* query ranges, in arrival order */
    char matchers[256];                 /* of the first query seen */
    char auth[256];                     /* Authorization of the last request */
    char ctype[128];
};

struct upload {
    char *buf;
    size_t len, cap;
};

/* The fake TSDB: three series at 1m over [FAKE_T0, FAKE_T1]; the third has a
 * stale marker at FAKE_T0 + 100 min. */
static const char *const fake_kind[3] = {"ramp", "sine", "stale"};

static double fake_value(int k, int64_t t)
{
    double i = (double)((t - FAKE_T0) / MIN);
    if (k == 0)
        return 50.0 + 0.1 * i + (double)((long)i * 7919 % 13) / 6.5;
    if (k == 1)
        return 100.0 + 10.0 * sin(i * 2.0 * 3.141592653589793 / 90.0);
    if (t == FAKE_T0 + 100 * MIN)
        return sample_stale_value();
    return 7.0 + (double)((long)i % 5);
}

static enum MHD_Result fake_reply(struct MHD_Connection *c, unsigned status, const void *body,
                                  size_t len, const char *ctype, const char *cenc)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    if (cenc)
        MHD_add_response_header(r, "Content-Encoding", cenc);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Answer a decoded request like a Prometheus server would. */
static enum MHD_Result fake_answer(struct fake *f, struct MHD_Connection *c,
                                   const struct wire_read_request *rq, bool samples_only)
{
    enum wire_read_type type = samples_only ? WIRE_READ_SAMPLES : rq->response_type;
    struct wire_read_response *resp = wire_read_response_create(64u << 20, 1u << 20);
    struct sample *smp = malloc((size_t)(DAY / MIN + 2) * sizeof *smp);
    char err[256];
    (void)f;
    wire_read_response_begin(resp, type, rq->nqueries);
    for (size_t qi = 0; qi < rq->nqueries; qi++) {
        const struct wire_read_query *q = &rq->queries[qi];
        struct selector *sel = selector_create();
        for (size_t m = 0; m < q->nmatchers; m++)
            selector_add(sel, q->matchers[m].op, q->matchers[m].name, q->matchers[m].name_len,
                         q->matchers[m].value, q->matchers[m].value_len, err, sizeof err);
        for (int k = 0; k < 3; k++) {
            struct label l[2] = {{"__name__", "pc_bt", 8, 5},
                                 {"kind", fake_kind[k], 4, (uint32_t)strlen(fake_kind[k])}};
            if (!selector_match(sel, l, 2))
                continue;
            size_t n = 0;
            for (int64_t t = FAKE_T0; t <= FAKE_T1; t += MIN)
                if (t >= q->start_ms && t <= q->end_ms)
                    smp[n++] = (struct sample){t, fake_value(k, t)};
            if (n)
                wire_read_response_add_series(resp, qi, l, 2, smp, n);
        }
        selector_destroy(sel);
    }
    const void *body;
    size_t len;
    wire_read_response_finish(resp, &body, &len);
    enum MHD_Result ret =
        type == WIRE_READ_SAMPLES
            ? fake_reply(c, 200, body, len, WIRE_READ_SAMPLES_CONTENT_TYPE,
                         WIRE_READ_SAMPLES_CONTENT_ENCODING)
            : fake_reply(c, 200, body, len, WIRE_READ_STREAMED_CONTENT_TYPE, NULL);
    wire_read_response_destroy(resp);
    free(smp);
    return ret;
}

static enum MHD_Result fake_handler(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)url, (void)method, (void)version;
    struct fake *f = cls;
    struct upload *u = *con_cls;
    if (!u) {
        u = calloc(1, sizeof *u);
        *con_cls = u;
        return u ? MHD_YES : MHD_NO;
    }
    if (*upload_size > 0) {
        if (u->len + *upload_size > u->cap) {
            size_t ncap = (u->len + *upload_size) * 2;
            char *b = realloc(u->buf, ncap);
            if (!b)
                return MHD_NO;
            u->buf = b;
            u->cap = ncap;
        }
        memcpy(u->buf + u->len, upload_data, *upload_size);
        u->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    struct wire_read_request rq;
    char err[256];
    wire_read_request_init(&rq);
    if (wire_read_decode_request(u->buf, u->len, NULL, &rq, err, sizeof err) != WIRE_READ_OK)
        return fake_reply(c, 400, err, strlen(err), "text/plain", NULL);
    pthread_mutex_lock(&f->mu);
    f->requests++;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    snprintf(f->auth, sizeof f->auth, "%s", a ? a : "");
    a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    snprintf(f->ctype, sizeof f->ctype, "%s", a ? a : "");
    for (size_t i = 0; i < rq.nqueries && f->nq < FAKE_MAXQ; i++) {
        f->q[f->nq++] = (struct backtest_range){rq.queries[i].start_ms, rq.queries[i].end_ms};
        if (f->nq == 1) {
            size_t o = 0;
            for (size_t m = 0; m < rq.queries[i].nmatchers; m++) {
                const struct wire_read_matcher *x = &rq.queries[i].matchers[m];
                o += (size_t)snprintf(f->matchers + o, sizeof f->matchers - o, "%.*s%s%.*s;",
                                      (int)x->name_len, x->name, selector_op_str(x->op),
                                      (int)x->value_len, x->value);
                if (o >= sizeof f->matchers)
                    break;
            }
        }
    }
    enum fake_mode mode = f->mode;
    pthread_mutex_unlock(&f->mu);
    enum MHD_Result ret;
    if (mode == FAKE_STATUS500)
        ret = fake_reply(c, 500, "boom: storage on fire\nsecond line\n", 34, "text/plain", NULL);
    else if (mode == FAKE_GARBAGE)
        ret = fake_reply(c, 200, "this is not snappy", 18, WIRE_READ_SAMPLES_CONTENT_TYPE,
                         WIRE_READ_SAMPLES_CONTENT_ENCODING);
    else
        ret = fake_answer(f, c, &rq, mode == FAKE_SAMPLES);
    wire_read_request_cleanup(&rq);
    return ret;
}

static void fake_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    struct upload *u = *con_cls;
    if (u) {
        free(u->buf);
        free(u);
    }
    *con_cls = NULL;
}

static struct fake *fake_start(void)
{
    struct fake *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_mutex_init(&f->mu, NULL);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, fake_handler, f,
                            MHD_OPTION_NOTIFY_COMPLETED, fake_completed, NULL, MHD_OPTION_SOCK_ADDR,
                            &sa, MHD_OPTION_END);
    if (!f->d) {
        pthread_mutex_destroy(&f->mu);
        free(f);
        return NULL;
    }
    f->port = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT)->port;
    return f;
}

static void fake_stop(struct fake *f)
{
    if (!f)
        return;
    MHD_stop_daemon(f->d);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static void fake_reset(struct fake *f, enum fake_mode mode)
{
    pthread_mutex_lock(&f->mu);
    f->mode = mode;
    f->requests = 0;
    f->nq = 0;
    f->matchers[0] = f->auth[0] = f->ctype[0] = '\0';
    pthread_mutex_unlock(&f->mu);
}

/* Run the command with NULL-terminated args ("@" = the temporary directory,
 * "%" = the fake server's base URL); stderr is captured into err. */
static int run_list(const struct fake *f, char *err, size_t errcap, const char *const *args)
{
    static char name[] = "backtest";
    char *argv[32] = {name};
    static char store[31][700];
    int argc = 1;
    for (int i = 0; args[i] && argc < 32; i++, argc++) {
        const char *in = args[i];
        char *o = store[argc - 1], *end = o + sizeof store[0] - 1;
        for (; *in && o < end; in++) {
            if (*in == '@')
                o += snprintf(o, (size_t)(end - o), "%s", tmpdir);
            else if (*in == '%')
                o += snprintf(o, (size_t)(end - o), "http://127.0.0.1:%d", f ? f->port : 1);
            else
                *o++ = *in;
        }
        *o = '\0';
        argv[argc] = store[argc - 1];
    }
    fflush(stdout);
    fflush(stderr);
    FILE *cap = tmpfile();
    int saved = dup(2);
    if (cap)
        dup2(fileno(cap), 2);
    int rc = backtest_main(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    err[0] = '\0';
    if (cap) {
        rewind(cap);
        size_t n = fread(err, 1, errcap - 1, cap);
        err[n] = '\0';
        fclose(cap);
    }
    return rc;
}

#define RUN(f, err, ...) run_list((f), (err), sizeof(err), (const char *const[]){__VA_ARGS__, NULL})

/* Flag combinations refused before anything is read. */
static void test_remote_args(void)
{
    static const struct {
        const char *args[6];
        const char *msg;
    } cases[] = {
        {{"--remote-read=%/api/v1/read", "--output=@/o"}, "needs --match=SELECTOR"},
        {{"--remote-read=%/api/v1/read", "--match=up"}, "needs --output=DIR"},
        {{"--remote-read=%/api/v1/read", "--match=up", "--output=@/o", "--labels=@/l.json"},
         "--labels does not apply to --remote-read"},
        {{"--remote-read=%/api/v1/read", "--match=up", "--output=@/o", "--input=@/x.csv"},
         "cannot be combined with --input"},
        {{"--remote-read=%/api/v1/read", "--match=up", "--output=@/o", "--score-only=@/x"},
         "cannot be combined with --score-only"},
        {{"--remote-read=%/api/v1/read", "--match=up", "--output=@/o", "--metric-name=x"},
         "--metric-name applies to CSV input only"},
        {{"--remote-read=%/api/v1/read", "--match=up", "--output=@/o", "--skip-bad-rows"},
         "--skip-bad-rows applies to CSV input only"},
        {{"--input=@/x.csv", "--match=up"}, "--match needs --remote-read"},
        {{"--input=@/x.csv", "--start=1700000000"}, "--start needs --remote-read"},
        {{"--remote-read=ftp://h/api/v1/read", "--match=up", "--output=@/o"},
         "want an http:// or https:// URL"},
        {{"--remote-read=%/api/v1/read", "--match=up", "--output=@/o", "--start=yesterday"},
         "--start: bad time \"yesterday\""},
        {{"--remote-read=%/api/v1/read", "--match=up", "--output=@/o", "--start=1700000000",
          "--end=2023-11-14T00:00:00Z"},
         "--start must be before --end"},
        {{"--remote-read=%/api/v1/read", "--match=up", "--output=@/o", "--start=1600000000",
          "--end=1700000000"},
         "longer than --max-range=90d"},
        {{"--remote-read=%/api/v1/read", "--match=up", "--output=@/o", "--end=1700000000",
          "--max-range=6d"},
         "is 1w, longer than --max-range=6d"},
        {{"--remote-read=%/api/v1/read", "--match=up", "--output=@/o", "--request-range=30s"},
         "--request-range: want a duration of at least 1m"},
        {{"--remote-read=%/api/v1/read", "--match=up", "--output=@/o", "--max-series=0"},
         "--max-series: want 1..1000000"},
        {{"--remote-read=%/api/v1/read", "--match=up", "--output=@/o", "--max-samples=x"},
         "--max-samples: bad number"},
        {{"--remote-read=%/api/v1/read", "--match={", "--output=@/o"}, "--match: "},
        {{"--remote-read=%/api/v1/read", "--match=up", "--output=@/file.txt"}, "not a directory"},
    };
    char err[4096];
    write_file("file.txt", "x\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const *a = cases[i].args;
        int rc = run_list(NULL, err, sizeof err, a);
        CHECK(rc == 1 && strstr(err, cases[i].msg) != NULL,
              "case %zu (%s %s ...): rc %d, stderr %s", i, a[0], a[1] ? a[1] : "", rc, err);
    }
}

/* The rows of a CSV file of samples, as the e2e test writes them. */
static void write_samples_csv(const char *rel, int k)
{
    char *csv = malloc(1 << 20);
    size_t o = (size_t)sprintf(csv, "timestamp,value\n");
    for (int64_t t = FAKE_T0; t <= FAKE_T1; t += MIN) {
        time_t s = (time_t)(t / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        o += strftime(csv + o, 64, "%Y-%m-%dT%H:%M:%S", &tm);
        o += (size_t)sprintf(csv + o, ".%03dZ,%.17g\n", (int)(t % 1000), fake_value(k, t));
    }
    write_file(rel, csv);
    free(csv);
}

/* The output file of pc_bt{kind="KIND"}, via its documented name. */
static char *output_of(const char *dir, const char *kind)
{
    struct label l[2] = {{"__name__", "pc_bt", 8, 5}, {"kind", kind, 4, (uint32_t)strlen(kind)}};
    char name[BACKTEST_FILE_NAME_MAX], rel[400];
    backtest_series_file_name(l, 2, name, sizeof name);
    snprintf(rel, sizeof rel, "%s/%s", dir, name);
    return read_file(rel);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void test_remote_runs(struct fake *f)
{
    char err[8192];
    int rc;

    /* 1. Streamed, the embedded config (every series modelled); the selector
     * picks ramp and sine. One day + 1 ms in 6h requests: 5 of them. */
    fake_reset(f, FAKE_OK);
    rc = RUN(f, err, "--remote-read=%/api/v1/read",
             "--match={__name__=\"pc_bt\",kind=~\"ramp|sine\"}", "--start=2023-11-15T00:00:00Z",
             "--end=1700092800", "--request-range=6h", "--output=@/rr", "--summary-json=@/rr.json");
    CHECK(rc == 0, "streamed run rc %d: %s", rc, err);
    CHECK(f->nq == 5, "requests %d", f->nq);
    for (int i = 0; i < f->nq && i < 5; i++) {
        int64_t s = FAKE_T0 + i * 6 * 3600 * SEC;
        int64_t e = i == 4 ? FAKE_T1 : s + 6 * 3600 * SEC - 1;
        CHECK(f->q[i].start_ms == s && f->q[i].end_ms == e, "request %d: %lld..%lld", i,
              (long long)f->q[i].start_ms, (long long)f->q[i].end_ms);
    }
    CHECK(strcmp(f->matchers, "__name__=pc_bt;kind=~ramp|sine;") == 0, "matchers %s", f->matchers);
    CHECK(strcmp(f->ctype, "application/x-protobuf") == 0, "request content type %s", f->ctype);
    CHECK(f->auth[0] == '\0', "no credentials without a config: %s", f->auth);
    char *streamed[2] = {dup_or_null(output_of("rr", "ramp")),
                         dup_or_null(output_of("rr", "sine"))};
    for (int k = 0; k < 2; k++) {
        CHECK(streamed[k] && starts_with(streamed[k], "timestamp,value,yhat,yhat_lower,yhat_upper,"
                                                      "anomaly_score,forecast_15m,forecast_1h\n"),
              "series %d output header", k);
        CHECK(count_lines(streamed[k]) == 1442, "series %d rows %zu", k, count_lines(streamed[k]));
        CHECK(streamed[k] && strstr(streamed[k], "\n2023-11-15T00:00:00.000Z,") &&
                  strstr(streamed[k], "\n2023-11-16T00:00:00.000Z,"),
              "series %d first and last timestamps", k);
    }
    char *idx = read_file("rr/index.csv");
    CHECK(idx && strcmp(idx,
                        "file,series,samples,status\n"
                        "pc_bt__78028f888dfac3da.csv,\"pc_bt{kind=\"\"ramp\"\"}\",1441,ok\n"
                        "pc_bt__ecae6f5ab321ef6d.csv,\"pc_bt{kind=\"\"sine\"\"}\",1441,ok\n") == 0,
          "index.csv:\n%s", idx ? idx : "(none)");
    char *sum = read_file("rr.json");
    CHECK(sum && strstr(sum, "\"requests\": 5") && strstr(sum, "\"series_modelled\": 2") &&
              strstr(sum, "\"series\": \"pc_bt{kind=\\\"sine\\\"}\"") &&
              strstr(sum, "\"path\": \"pc_bt__ecae6f5ab321ef6d.csv\"") &&
              strstr(sum, "\"start\": \"2023-11-15T00:00:00.000Z\""),
          "summary: %s", sum ? sum : "(none)");

    /* 2. The same samples as CSV files: byte-identical outputs. */
    make_dir("csv");
    write_samples_csv("csv/ramp.csv", 0);
    write_samples_csv("csv/sine.csv", 1);
    rc = RUN(f, err, "--input=@/csv", "--output=@/csv-out");
    CHECK(rc == 0, "CSV run rc %d: %s", rc, err);
    char *c = read_file("csv-out/ramp.csv");
    CHECK(c && streamed[0] && strcmp(c, streamed[0]) == 0, "ramp: remote read and CSV differ");
    c = read_file("csv-out/sine.csv");
    CHECK(c && streamed[1] && strcmp(c, streamed[1]) == 0, "sine: remote read and CSV differ");

    /* 3. A server that answers SAMPLES although streaming was offered; one
     * request for the whole range. Same outputs. */
    fake_reset(f, FAKE_SAMPLES);
    rc = RUN(f, err, "--remote-read=%/api/v1/read",
             "--match={__name__=\"pc_bt\",kind=~\"ramp|sine\"}", "--start=2023-11-15T00:00:00Z",
             "--end=1700092800", "--request-range=2d", "--output=@/rs");
    CHECK(rc == 0 && f->nq == 1, "SAMPLES run rc %d, %d requests: %s", rc, f->nq, err);
    for (int k = 0; k < 2; k++) {
        c = output_of("rs", fake_kind[k]);
        CHECK(c && streamed[k] && strcmp(c, streamed[k]) == 0, "SAMPLES output %d differs", k);
    }
    free(streamed[0]);
    free(streamed[1]);

    /* 4. Stale markers go to the model as the daemon's do: the row is kept,
     * with no value. A config whose rule models only kind="stale" skips the
     * other two, which are listed. Its remote_read section names this URL
     * with a bearer token, so the token is sent. */
    char cfg[1024];
    write_file("token", "s3cret\n");
    snprintf(cfg, sizeof cfg,
             "rules:\n"
             "  - match: '{kind=\"stale\"}'\n"
             "    horizons: [30m]\n"
             "remote_write: []\n"
             "remote_read:\n"
             "  url: http://127.0.0.1:%d/api/v1/read\n"
             "  bearer_token_file: %s/token\n",
             f->port, tmpdir);
    write_file("stale.yml", cfg);
    fake_reset(f, FAKE_OK);
    rc = RUN(f, err, "--config=@/stale.yml", "--remote-read=%/api/v1/read", "--match=pc_bt",
             "--start=1700006400", "--end=1700092800", "--output=@/st", "--summary-json=@/st.json");
    CHECK(rc == 0, "stale run rc %d: %s", rc, err);
    CHECK(strcmp(f->auth, "Bearer s3cret") == 0, "bearer token from the config: \"%s\"", f->auth);
    c = output_of("st", "stale");
    CHECK(c && count_lines(c) == 1442 && strstr(c, "\n2023-11-15T01:40:00.000Z,,"),
          "stale marker row kept without a value");
    sum = read_file("st.json");
    CHECK(sum && strstr(sum, "\"stale_markers\": 1") && strstr(sum, "\"series_skipped\": 2") &&
              strstr(sum, "\"skipped_series\": [\"pc_bt{kind=\\\"ramp\\\"}\", "
                          "\"pc_bt{kind=\\\"sine\\\"}\"]"),
          "stale summary: %s", sum ? sum : "(none)");
    idx = read_file("st/index.csv");
    CHECK(idx && strstr(idx, "\n,\"pc_bt{kind=\"\"ramp\"\"}\",1441,skipped\n"), "index: %s",
          idx ? idx : "(none)");
    /* Another URL does not get the config's credentials. */
    fake_reset(f, FAKE_OK);
    rc = RUN(f, err, "--config=@/stale.yml", "--remote-read=%/api/v1/read/", "--match=pc_bt",
             "--start=1700006400", "--end=1700092800", "--output=@/st2");
    CHECK(rc == 0 && f->requests == 2 && f->auth[0] == '\0',
          "other URL: rc %d, %d requests, auth \"%s\": %s", rc, f->requests, f->auth, err);
    /* Nothing modelled at all: an error that lists the series. */
    rc = RUN(f, err, "--config=@/stale.yml", "--remote-read=%/api/v1/read",
             "--match={kind=\"sine\"}", "--start=1700006400", "--end=1700092800", "--output=@/st3");
    CHECK(rc == 1 && strstr(err, "none of the 1 series") && strstr(err, "pc_bt{kind=\"sine\"}"),
          "none modelled: rc %d: %s", rc, err);

    /* 5. Errors. */
    fake_reset(f, FAKE_STATUS500);
    rc = RUN(f, err, "--remote-read=%/api/v1/read", "--match=pc_bt", "--start=1700006400",
             "--end=1700092800", "--output=@/e1");
    CHECK(rc == 1 && strstr(err, "HTTP 500: boom: storage on fire\n") &&
              !strstr(err, "second line"),
          "500: rc %d: %s", rc, err);
    fake_reset(f, FAKE_GARBAGE);
    rc = RUN(f, err, "--remote-read=%/api/v1/read", "--match=pc_bt", "--start=1700006400",
             "--end=1700092800", "--output=@/e2");
    CHECK(rc == 1 && strstr(err, "bad response (snappy)"), "garbage: rc %d: %s", rc, err);
    fake_reset(f, FAKE_OK);
    rc = RUN(f, err, "--remote-read=%/api/v1/read", "--match=pc_bt", "--start=1700006400",
             "--end=1700092800", "--output=@/e3", "--max-series=2");
    CHECK(rc == 1 && strstr(err, "selects at least 3 series") &&
              strstr(err, "more than --max-series=2"),
          "max series: rc %d: %s", rc, err);
    rc = RUN(f, err, "--remote-read=%/api/v1/read", "--match=pc_bt", "--start=1700006400",
             "--end=1700092800", "--output=@/e4", "--max-samples=2000");
    CHECK(rc == 1 && strstr(err, "more than --max-samples=2000 samples"), "max samples: rc %d: %s",
          rc, err);
    rc = RUN(f, err, "--remote-read=%/api/v1/read", "--match=pc_bt", "--start=1700006400",
             "--end=1700092800", "--output=@/e5", "--max-response-bytes=1000");
    CHECK(rc == 1 && strstr(err, "over --max-response-bytes=1000"), "max bytes: rc %d: %s", rc,
          err);
    rc = RUN(f, err, "--remote-read=%/api/v1/read", "--match=nothing_here", "--start=1700006400",
             "--end=1700092800", "--output=@/e6");
    CHECK(rc == 1 && strstr(err, "no series matches --match=nothing_here"), "no series: rc %d: %s",
          rc, err);
    /* Nobody listening. */
    rc = RUN(NULL, err, "--remote-read=%/api/v1/read", "--match=pc_bt", "--start=1700006400",
             "--end=1700092800", "--output=@/e7");
    CHECK(rc == 1 && strstr(err, "remote read http://127.0.0.1:1/api/v1/read"),
          "no server: rc %d: %s", rc, err);
}

static void test_remote(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/promcast-test-backtest-rr-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    test_remote_args();
    struct fake *f = fake_start();
    CHECK(f != NULL, "fake server");
    if (f)
        test_remote_runs(f);
    fake_stop(f);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0, "cleanup");
}

int main(void)
{
    test_infer_step();
    test_evaluate();
    test_command();
    test_file_names();
    test_ranges();
    test_remote();
    return test_main_end("test_backtest");
}
