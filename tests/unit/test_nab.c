/*
 * Unit tests for nab.c: the scaled sigmoid, probation, sweep weights, the
 * threshold search, normalisation and the windows file.
 *
 * The six published reference scores (numenta 72.76/65.97/76.87 and
 * windowedGaussian 50.87/31.13/59.02 on tests/data/nab-dev) are asserted by
 * tests/e2e/test_backtest_nab.sh through `promcast backtest --score-only`,
 * since the reference rows ship compressed; set PROMCAST_NAB_REFERENCE_DIR to
 * an unpacked reference-scores/ directory to check them here as well.
 */
#include <stdint.h>

#include "csvts.h"
#include "nab.h"
#include "testlib.h"

/* testlib.h's CHECK_NEAR does not compile with a message (it ends in a comma
 * expression after a statement); this one prints the numbers on failure. */
#define NEAR(a, b, tol, ...)                                                                       \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        CHECK(fabs(a_ - b_) <= (tol), __VA_ARGS__);                                                \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            fprintf(stderr, "    got %.17g want %.17g\n", a_, b_);                                 \
    } while (0)

/* S(x) = -tanh(5x/2): the values below are tanh of round numbers. */
#define TANH_2_5  0.98661429815143028888 /* tanh(2.5) = S(-1) */
#define TANH_1_25 0.84828363995751289008 /* tanh(1.25) = S(-0.5) */
#define TANH_2    0.96402758007581688395 /* tanh(2) = S(-0.8) */

static void test_sigmoid(void)
{
    NEAR(nab_scaled_sigmoid(-1.0), TANH_2_5, 1e-15, "S(-1)");
    NEAR(nab_scaled_sigmoid(-0.5), TANH_1_25, 1e-15, "S(-0.5)");
    NEAR(nab_scaled_sigmoid(0.0), 0.0, 1e-15, "S(0)");
    NEAR(nab_scaled_sigmoid(1.0), -TANH_2_5, 1e-15, "S(1)");
    NEAR(nab_scaled_sigmoid(2.999), -tanh(2.5 * 2.999), 1e-12, "S(2.999)");
    CHECK(nab_scaled_sigmoid(3.0) == -1.0, "S(3) = %g", nab_scaled_sigmoid(3.0));
    CHECK(nab_scaled_sigmoid(100.0) == -1.0, "S(100)");
}

static void test_probation(void)
{
    static const size_t cases[][2] = {{0, 0},       {6, 0},       {7, 1},      {100, 15},
                                      {4032, 604},  {4999, 749},  {5000, 750}, {5007, 750},
                                      {15902, 750}, {100000, 750}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(nab_probation_rows(cases[i][0]) == cases[i][1], "n=%zu got %zu want %zu", cases[i][0],
              nab_probation_rows(cases[i][0]), cases[i][1]);
}

/* A synthetic file: N rows one minute apart, one window over rows
 * [WIN_L, WIN_R] (100 rows); probation is 150 rows. */
#define N     1000
#define WIN_L 500
#define WIN_R 599
#define MIN   60000

static int64_t ts[N];
static double sc[N];

static void reset(void)
{
    for (int i = 0; i < N; i++) {
        ts[i] = INT64_C(1400000000000) + (int64_t)i * MIN;
        sc[i] = 0.0;
    }
}

static struct nab_window win_rows(int l, int r)
{
    struct nab_window w = {ts[l], ts[r]};
    return w;
}

/* Score the synthetic file alone under profile p. */
static struct nab_result score1(int p, const struct nab_window *w, size_t nw)
{
    struct nab_result r;
    memset(&r, 0, sizeof r);
    struct nab_corpus *c = nab_corpus_create();
    CHECK(c && nab_corpus_add(c, "f.csv", ts, sc, N, w, nw) == 0, "add");
    CHECK(nab_corpus_score(c, &nab_profiles[p], &r) == 0, "score");
    nab_corpus_destroy(c);
    return r;
}

static void test_single_file(void)
{
    struct nab_window w;
    struct nab_result r;

    /* Null detector (all scores equal): never alarming is best: 0. */
    reset();
    w = win_rows(WIN_L, WIN_R);
    for (int p = 0; p < NAB_NPROFILES; p++) {
        r = score1(p, &w, 1);
        NEAR(r.score, 0.0, 1e-12, "null, profile %s", nab_profiles[p].name);
        CHECK(r.raw == -nab_profiles[p].fn_weight && isinf(r.threshold) && r.windows == 1,
              "null raw %g thr %g", r.raw, r.threshold);
    }

    /* Perfect: one alarm on the window's first row: 100 in every profile. */
    reset();
    sc[WIN_L] = 1.0;
    for (int p = 0; p < NAB_NPROFILES; p++) {
        r = score1(p, &w, 1);
        NEAR(r.score, 100.0, 1e-9, "perfect, profile %s", nab_profiles[p].name);
        CHECK(r.threshold == 1.0 && r.windows_detected == 1 && r.fp_rows == 0, "perfect counts");
    }

    /* One false positive before any window costs exactly fp_weight. */
    reset();
    sc[WIN_L] = 1.0;
    sc[200] = 1.0;
    for (int p = 0; p < NAB_NPROFILES; p++) {
        const struct nab_profile *pr = &nab_profiles[p];
        r = score1(p, &w, 1);
        double raw = pr->tp_weight - pr->fp_weight;
        NEAR(r.raw, raw, 1e-12, "one FP, profile %s", pr->name);
        NEAR(r.score, 100.0 * (raw + pr->fn_weight) / (pr->tp_weight + pr->fn_weight), 1e-9,
             "one FP normalised, profile %s", pr->name);
        CHECK(r.fp_rows == 1, "fp rows %zu", r.fp_rows);
    }
    /* Hand values for standard: 100 * 1.89 / 2 = 94.5; low FP: 89; low FN: 96.33. */
    NEAR(score1(0, &w, 1).score, 94.5, 1e-9, "standard one FP");
    NEAR(score1(1, &w, 1).score, 89.0, 1e-9, "low FP one FP");
    NEAR(score1(2, &w, 1).score, 100.0 * 2.89 / 3.0, 1e-9, "low FN one FP");

    /* A false positive 51 rows after the window: weight S(51/99). */
    reset();
    sc[WIN_L] = 1.0;
    sc[WIN_R + 51] = 1.0;
    r = score1(0, &w, 1);
    NEAR(r.raw, 1.0 - 0.11 * tanh(2.5 * 51.0 / 99.0), 1e-12, "FP after window");
    /* Three window widths after the window it is a full false positive. */
    reset();
    sc[WIN_L] = 1.0;
    sc[WIN_R + 3 * 99] = 1.0;
    NEAR(score1(0, &w, 1).raw, 1.0 - 0.11, 1e-12, "FP far after window");

    /* Detection halfway: position -(599-550+1)/100 = -0.5. */
    reset();
    sc[550] = 1.0;
    NEAR(score1(0, &w, 1).raw, TANH_1_25 / TANH_2_5, 1e-12, "mid-window detection");
    /* Detection on the last row: position -1/100. */
    reset();
    sc[WIN_R] = 1.0;
    NEAR(score1(0, &w, 1).raw, tanh(0.025) / TANH_2_5, 1e-12, "late detection");
    /* Only the earliest alarm in a window counts; later ones do not cost. */
    reset();
    sc[WIN_L] = 1.0;
    for (int i = WIN_L + 1; i <= WIN_R; i++)
        sc[i] = 1.0;
    NEAR(score1(0, &w, 1).raw, 1.0, 1e-12, "plateau in window");
}

static void test_threshold_groups(void)
{
    reset();
    struct nab_window w = win_rows(WIN_L, WIN_R);
    /* 0.9 alarms at row 520 (position -0.8); 0.8 adds the window's first row
     * (worth 1) and a false positive (-0.11): 0.977 beats 0.89, so 0.9. */
    sc[520] = 0.9;
    sc[WIN_L] = 0.8;
    sc[300] = 0.8;
    struct nab_result r = score1(0, &w, 1);
    NEAR(r.raw, TANH_2 / TANH_2_5, 1e-12, "best group");
    CHECK(r.threshold == 0.9, "threshold %g", r.threshold);

    /* Rows with equal scores switch on together. */
    struct nab_file_result fr;
    struct nab_corpus *c = nab_corpus_create();
    nab_corpus_add(c, "f.csv", ts, sc, N, &w, 1);
    CHECK(nab_corpus_files(c, &nab_profiles[0], 0.8, &fr) == 0, "files");
    NEAR(fr.raw, 1.0 - 0.11, 1e-12, "at 0.8");
    CHECK(fr.fp_rows == 1 && fr.windows_detected == 1 && fr.windows == 1, "at 0.8 counts");
    nab_corpus_destroy(c);

    /* With a cheap enough FP the lower threshold wins (low-FN profile has the
     * same FP weight, so compare with a larger early gain instead). */
    reset();
    sc[599] = 0.9; /* last row: worth almost nothing */
    sc[WIN_L] = 0.8;
    sc[300] = 0.8;
    r = score1(0, &w, 1);
    CHECK(r.threshold == 0.8, "threshold %g", r.threshold);
    NEAR(r.raw, 0.89, 1e-12, "raw");

    /* NaN scores count as 0. */
    reset();
    sc[WIN_L] = NAN;
    r = score1(0, &w, 1);
    NEAR(r.score, 0.0, 1e-12, "NaN as 0");
}

static void test_probation_windows(void)
{
    reset();
    /* A window wholly in probation (rows 10..19 of 1000; probation 150) can
     * be neither detected nor missed: null 0, perfect 1. */
    struct nab_window w = win_rows(10, 19);
    sc[10] = 1.0;
    struct nab_result r = score1(0, &w, 1);
    CHECK(r.null_raw == 0.0 && r.perfect_raw == 1.0 && r.raw == 0.0 && r.windows_detected == 0,
          "window in probation: null %g perfect %g raw %g", r.null_raw, r.perfect_raw, r.raw);

    /* A window straddling the end of probation keeps its full width: an
     * alarm on row 150 of window 140..159 sits at position -0.5. */
    reset();
    w = win_rows(140, 159);
    sc[150] = 1.0;
    sc[140] = 1.0; /* in probation: ignored */
    r = score1(0, &w, 1);
    NEAR(r.raw, TANH_1_25 / TANH_2_5, 1e-12, "straddling window");
    CHECK(r.null_raw == -1.0, "straddling window is scorable");

    /* Alarms during probation are never false positives. */
    reset();
    w = win_rows(WIN_L, WIN_R);
    sc[5] = 1.0;
    sc[WIN_L] = 1.0;
    NEAR(score1(0, &w, 1).raw, 1.0, 1e-12, "probation alarm ignored");
}

static void test_windows_edge(void)
{
    reset();
    /* Window bounds between rows: entered at the first row after the start,
     * ended at the last row before the end. */
    struct nab_window w = {ts[WIN_L] - 30000, ts[WIN_R] + 30000};
    sc[WIN_L] = 1.0;
    NEAR(score1(0, &w, 1).raw, 1.0, 1e-12, "bounds between rows");
    /* A window in a gap (no row inside) counts but cannot be detected. */
    struct nab_window gap[2] = {{ts[300] + 1000, ts[300] + 2000}, win_rows(WIN_L, WIN_R)};
    struct nab_result r = score1(0, gap, 2);
    CHECK(r.windows == 2 && r.windows_detected == 1, "gap window: %zu/%zu", r.windows_detected,
          r.windows);
    /* Repeated timestamps: the window ends at the first row of its end time. */
    reset();
    for (int i = 560; i < N; i++)
        ts[i] -= MIN; /* rows 559 and 560 share a time; the window is 500..559 */
    w = (struct nab_window){ts[WIN_L], ts[559]};
    sc[530] = 1.0; /* position -(559-530+1)/60 = -0.5 */
    NEAR(score1(0, &w, 1).raw, TANH_1_25 / TANH_2_5, 1e-12, "repeated end time");
}

static void test_corpus(void)
{
    /* Two files share one threshold: file A is perfect at 0.5, file B has a
     * false positive at 0.7 and its detection at 0.5. */
    static int64_t t2[N];
    static double s2[N];
    reset();
    for (int i = 0; i < N; i++) {
        t2[i] = ts[i];
        s2[i] = 0.0;
    }
    struct nab_window w = win_rows(WIN_L, WIN_R);
    sc[WIN_L] = 0.5;
    s2[WIN_L] = 0.5;
    s2[200] = 0.7;
    struct nab_corpus *c = nab_corpus_create();
    CHECK(nab_corpus_add(c, "a.csv", ts, sc, N, &w, 1) == 0, "add a");
    CHECK(nab_corpus_add(c, "b.csv", t2, s2, N, &w, 1) == 0, "add b");
    CHECK(nab_corpus_nfiles(c) == 2 && strcmp(nab_corpus_name(c, 1), "b.csv") == 0, "names");
    struct nab_result r;
    CHECK(nab_corpus_score(c, &nab_profiles[0], &r) == 0, "score");
    CHECK(r.threshold == 0.5 && r.windows == 2 && r.windows_detected == 2 && r.fp_rows == 1,
          "corpus thr %g det %zu fp %zu", r.threshold, r.windows_detected, r.fp_rows);
    NEAR(r.raw, 2.0 - 0.11, 1e-12, "corpus raw");
    NEAR(r.score, 100.0 * (1.89 + 2.0) / 4.0, 1e-9, "corpus score");
    struct nab_file_result fr[2];
    CHECK(nab_corpus_files(c, &nab_profiles[0], r.threshold, fr) == 0, "files");
    NEAR(fr[0].raw + fr[1].raw, r.raw, 1e-12, "file parts add up");
    NEAR(fr[1].raw, 0.89, 1e-12, "file b");
    nab_corpus_destroy(c);
    nab_corpus_destroy(NULL);
}

static void test_labels(void)
{
    char err[256];
    const char *json = "{\n"
                       "  \"realA/f.csv\": [[\"2014-04-11 00:00:00.000000\", "
                       "\"2014-04-12 00:00:00.000000\"],\n"
                       "                  [\"2014-04-01 00:00:00\", \"2014-04-02 00:00:00\"]],\n"
                       "  \"realA/g.csv\": []\n"
                       "}\n";
    struct nab_labels *l = nab_labels_parse("w.json", json, strlen(json), err, sizeof err);
    CHECK(l != NULL, "parse: %s", err);
    if (!l)
        return;
    const struct nab_window *w = NULL;
    const char *key = NULL;
    CHECK(nab_labels_nfiles(l) == 2 && strcmp(nab_labels_key(l, 0), "realA/f.csv") == 0, "keys");
    CHECK(nab_labels_find(l, "realA/f.csv", &w, &key) == 2, "exact");
    CHECK(w && w[0].start_ms < w[1].start_ms, "sorted windows");
    CHECK(w && w[0].start_ms == INT64_C(1396310400000), "window start %lld",
          (long long)(w ? w[0].start_ms : 0));
    CHECK(nab_labels_find(l, "/data/nab//realA/f.csv", &w, &key) == 2 &&
              strcmp(key, "realA/f.csv") == 0,
          "suffix");
    CHECK(nab_labels_find(l, "./realA/g.csv", &w, NULL) == 0, "empty list");
    CHECK(nab_labels_find(l, "f.csv", &w, NULL) == -1, "no partial name match");
    CHECK(nab_labels_find(l, "other/realA/h.csv", &w, NULL) == -1, "absent");
    nab_labels_destroy(l);
    nab_labels_destroy(NULL);

    static const struct {
        const char *json;
        const char *want;
    } bad[] = {
        {"{\"a.csv\": [[\"2014-04-11 00:00:00\"", "w.json:1:"},
        {"[]", "want a JSON object"},
        {"{\"a.csv\": 3}", "\"a.csv\": want a list"},
        {"{\"a.csv\": [[\"x\", \"2014-04-11 00:00:00\"]]}", "window 1: not a number or a date"},
        {"{\"a.csv\": [[\"2014-04-12 00:00:00\", \"2014-04-11 00:00:00\"]]}",
         "ends before it starts"},
        {"{\"a.csv\": [[\"2014-04-11 00:00:00\"]]}", "want [start, end]"},
        {"{\"a.csv\": [], \"a.csv\": []}", "w.json:1:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        l = nab_labels_parse("w.json", bad[i].json, strlen(bad[i].json), err, sizeof err);
        CHECK(!l && strstr(err, bad[i].want), "bad %zu: \"%s\" want \"%s\"", i, err, bad[i].want);
        nab_labels_destroy(l);
    }
    l = nab_labels_load("/nonexistent/w.json", err, sizeof err);
    CHECK(!l && strstr(err, "/nonexistent/w.json"), "missing file: %s", err);
}

/* Optional: the reference detectors, when an unpacked copy is given. */
static void test_reference(void)
{
    const char *dir = getenv("PROMCAST_NAB_REFERENCE_DIR");
    const char *src = getenv("PROMCAST_SOURCE_DIR");
    static const struct {
        const char *detector;
        double want[NAB_NPROFILES];
    } refs[] = {{"numenta", {72.76, 65.97, 76.87}}, {"windowedGaussian", {50.87, 31.13, 59.02}}};
    char path[4096], err[512];
    if (!dir || !src)
        return;
    snprintf(path, sizeof path, "%s/tests/data/nab-dev/combined_windows.json", src);
    struct nab_labels *l = nab_labels_load(path, err, sizeof err);
    CHECK(l != NULL, "%s", err);
    for (size_t d = 0; l && d < 2; d++) {
        struct nab_corpus *c = nab_corpus_create();
        for (size_t i = 0; i < nab_labels_nfiles(l); i++) {
            struct csvts t;
            struct csvts_options o = {"anomaly_score", false, 0};
            const struct nab_window *w;
            snprintf(path, sizeof path, "%s/%s/%s", dir, refs[d].detector, nab_labels_key(l, i));
            if (csvts_load(&t, path, &o, err, sizeof err) < 0) {
                CHECK(0, "%s", err);
                continue;
            }
            int64_t *tt = malloc(t.n * sizeof *tt + 1);
            double *ss = malloc(t.n * sizeof *ss + 1);
            for (size_t k = 0; k < t.n; k++) {
                tt[k] = t.rows[k].t;
                ss[k] = t.rows[k].extra;
            }
            int nw = nab_labels_find(l, nab_labels_key(l, i), &w, NULL);
            nab_corpus_add(c, nab_labels_key(l, i), tt, ss, t.n, w, (size_t)nw);
            free(tt);
            free(ss);
            csvts_cleanup(&t);
        }
        for (int p = 0; p < NAB_NPROFILES; p++) {
            struct nab_result r;
            char got[32], want[32];
            nab_corpus_score(c, &nab_profiles[p], &r);
            snprintf(got, sizeof got, "%.2f", r.score);
            snprintf(want, sizeof want, "%.2f", refs[d].want[p]);
            CHECK(strcmp(got, want) == 0, "%s %s: got %s want %s", refs[d].detector,
                  nab_profiles[p].name, got, want);
        }
        nab_corpus_destroy(c);
    }
    nab_labels_destroy(l);
}

int main(void)
{
    test_sigmoid();
    test_probation();
    test_single_file();
    test_threshold_groups();
    test_probation_windows();
    test_windows_edge();
    test_corpus();
    test_labels();
    test_reference();
    return test_main_end("test_nab");
}
