/*
 * Unit tests for backtest.c: step inference, the forecast-evaluation
 * arithmetic on hand-made series, and the command on small files written to a
 * temporary directory (output layout, timestamps kept, exit codes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backtest.h"
#include "testlib.h"

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

int main(void)
{
    test_infer_step();
    test_evaluate();
    test_command();
    return test_main_end("test_backtest");
}
