/*
 * Unit tests for pipeline.c: slots through the index hooks, output naming,
 * refusal of promcast's own outputs, remote-read answers (history and the
 * forecast path), snapshot records and restore, warm start, suppression.
 * Writers are not involved (none configured): outputs are observed through
 * pipeline_read and the stats.
 */
#include "config.h"
#include "model.h"
#include "pipeline.h"
#include "selector.h"
#include "series.h"
#include "testlib.h"

#include <stdlib.h>

#define STEP 60000LL
#define T0   1699999980000LL /* a multiple of the step */

static const char *yaml = "global: {step: 1m}\n"
                          "output: {history: 2h}\n"
                          "rules:\n"
                          "  - match: '{__name__=~\"load|busy\"}'\n"
                          "    seasons: []\n"
                          "    horizons: [5m, 30m]\n"
                          "remote_write: []\n";

struct rig {
    struct config *cfg;
    struct pipeline *p;
    struct series_index *idx;
};

static void rig_init(struct rig *r, bool warm,
                     bool (*warm_request)(void *, const struct label *, size_t))
{
    char err[1024];
    int nerr;
    r->cfg = config_load_string("t.yml", yaml, strlen(yaml), err, sizeof err, &nerr);
    CHECK(r->cfg != NULL, "config: %s", err);
    struct pipeline_opts po = {0};
    if (warm)
        po.warm_request = warm_request;
    r->p = pipeline_create(&po);
    struct series_index_opts so;
    series_index_opts_default(&so);
    so.hooks = pipeline_hooks(r->p);
    r->idx = series_index_create(&so);
    pipeline_attach(r->p, r->idx);
    CHECK(pipeline_configure(r->p, r->cfg, NULL, 0) == 0, "configure");
    series_index_set_rules(r->idx, r->cfg);
}

static void rig_cleanup(struct rig *r)
{
    series_index_destroy(r->idx);
    pipeline_destroy(r->p);
    config_release(r->cfg);
}

#define L(n, v)                                                                                    \
    {                                                                                              \
        n, v, sizeof(n) - 1, sizeof(v) - 1                                                         \
    }

static void feed(struct rig *r, const char *name, int64_t from, int64_t to, double base)
{
    struct label l[] = {{"__name__", name, 8, (uint32_t)strlen(name)}, L("job", "api")};
    struct series_ingest_stats st = {0};
    for (int64_t k = from; k < to; k++) {
        /* two samples per step, a gentle sine */
        for (int j = 0; j < 2; j++) {
            struct sample s = {T0 + k * STEP + j * 30000, base + sin((double)k / 10.0)};
            series_ingest(r->idx, l, 2, &s, 1, 0, &st);
        }
    }
}

/* Collects what pipeline_read returns. */
struct got {
    int series;
    char names[8][64];
    size_t ns[8];
    struct sample last[8];
    int64_t max_t[8];
};

static int collect(void *ctx, const struct label *labels, size_t n, const struct sample *s,
                   size_t ns)
{
    struct got *g = ctx;
    CHECK(labels_sorted(labels, n), "read: unsorted labels");
    for (size_t i = 1; i < ns; i++)
        CHECK(s[i].t > s[i - 1].t, "read: samples not increasing at %zu", i);
    if (g->series < 8) {
        const struct label *nm = labels_get(labels, n, "__name__");
        snprintf(g->names[g->series], 64, "%.*s", (int)nm->value_len, nm->value);
        g->ns[g->series] = ns;
        g->last[g->series] = s[ns - 1];
        g->max_t[g->series] = s[ns - 1].t;
    }
    g->series++;
    return 0;
}

static struct got read_sel(struct rig *r, const char *sel_text, int64_t start, int64_t end)
{
    struct got g;
    memset(&g, 0, sizeof g);
    char err[256];
    struct selector *sel = selector_parse(sel_text, err, sizeof err, NULL);
    CHECK(sel != NULL, "selector %s: %s", sel_text, err);
    if (sel)
        CHECK(pipeline_read(r->p, sel, start, end, collect, &g) == 0, "read %s", sel_text);
    selector_destroy(sel);
    return g;
}

static void test_read(void)
{
    struct rig r;
    rig_init(&r, false, NULL);
    feed(&r, "load", 0, 100, 10);
    feed(&r, "other", 0, 100, 10); /* no rule: never modelled */
    struct pipeline_stats st;
    pipeline_get_stats(r.p, &st);
    CHECK(st.slots == 1, "slots %llu", (unsigned long long)st.slots);
    CHECK(st.steps == 99, "steps %llu (the last step is still open)", (unsigned long long)st.steps);

    int64_t now = T0 + 100 * STEP;
    struct got g = read_sel(&r, "{__name__=\"load:yhat\"}", T0, now + 3600000);
    CHECK(g.series == 1 && strcmp(g.names[0], "load:yhat") == 0, "yhat found: %d %s", g.series,
          g.names[0]);
    /* history (ready steps of the last 2h) plus the path past the last step
     * up to the longest horizon (30m = 30 steps) */
    CHECK(g.max_t[0] == T0 + 98 * STEP + 30 * STEP, "path ends at %lld, want %lld",
          (long long)g.max_t[0], (long long)(T0 + 128 * STEP));
    struct got past = read_sel(&r, "{__name__=\"load:yhat\"}", T0, T0 + 98 * STEP);
    CHECK(past.series == 1 && past.max_t[0] == T0 + 98 * STEP, "history ends at the last step");
    CHECK(g.ns[0] == past.ns[0] + 30, "path adds 30 points: %zu vs %zu", g.ns[0], past.ns[0]);

    struct got score = read_sel(&r, "{__name__=\"load:anomaly_score\", job=\"api\"}", T0, now);
    CHECK(score.series == 1 && score.max_t[0] == T0 + 98 * STEP,
          "score has history but no future path");
    CHECK(score.last[0].v >= 0 && score.last[0].v <= 1, "score in [0,1]: %g", score.last[0].v);

    struct got all = read_sel(&r, "{__name__=~\"load:.*\"}", T0, now + 3600000);
    CHECK(all.series == 4, "regex over all outputs: %d series (forecast is not served)",
          all.series);
    struct got none = read_sel(&r, "{__name__=\"load:yhat\", job=\"web\"}", T0, now);
    CHECK(none.series == 0, "other matchers apply");
    struct got input = read_sel(&r, "{__name__=\"load\"}", T0, now);
    CHECK(input.series == 0, "inputs are not outputs");

    /* promcast's own outputs coming back are never modelled */
    feed(&r, "load:yhat", 0, 10, 1);
    pipeline_get_stats(r.p, &st);
    CHECK(st.slots == 1, "output series got a slot: %llu", (unsigned long long)st.slots);
    rig_cleanup(&r);
}

struct recs {
    size_t n;
    void *rec[16];
    size_t len[16];
};

static int keep(void *ctx, const void *rec, size_t len)
{
    struct recs *r = ctx;
    if (r->n < 16) {
        r->rec[r->n] = malloc(len);
        memcpy(r->rec[r->n], rec, len);
        r->len[r->n++] = len;
    }
    return 0;
}

static void test_snapshot_restore(void)
{
    struct rig a, b;
    rig_init(&a, false, NULL);
    rig_init(&b, false, NULL);
    feed(&a, "load", 0, 80, 5);
    feed(&a, "busy", 0, 80, 50);
    struct recs recs = {0};
    CHECK(pipeline_snapshot(a.p, keep, &recs) == 0 && recs.n == 2, "snapshot records: %zu", recs.n);
    for (size_t i = 0; i < recs.n; i++)
        CHECK(pipeline_restore(b.p, recs.rec[i], recs.len[i], 0) == 1, "record %zu restored", i);
    /* Both continue identically. */
    feed(&a, "load", 80, 120, 5);
    feed(&b, "load", 80, 120, 5);
    int64_t end = T0 + 200 * STEP;
    struct got ga = read_sel(&a, "{__name__=\"load:yhat_upper\"}", T0, end);
    struct got gb = read_sel(&b, "{__name__=\"load:yhat_upper\"}", T0, end);
    CHECK(ga.series == 1 && gb.series == 1 && ga.ns[0] == gb.ns[0] &&
              ga.last[0].t == gb.last[0].t && ga.last[0].v == gb.last[0].v,
          "restored slot diverged: %zu/%zu points, last %g vs %g", ga.ns[0], gb.ns[0], ga.last[0].v,
          gb.last[0].v);
    CHECK(pipeline_high_watermark(b.p) == pipeline_high_watermark(a.p),
          "watermark after restore: %lld vs %lld", (long long)pipeline_high_watermark(b.p),
          (long long)pipeline_high_watermark(a.p));

    /* Damaged records are refused, never crash. */
    unsigned char *r0 = recs.rec[0];
    for (size_t cut = 0; cut < recs.len[0]; cut += 97)
        CHECK(pipeline_restore(b.p, r0, cut, 0) < 0, "truncated record at %zu accepted", cut);
    r0[0] ^= 1;
    CHECK(pipeline_restore(b.p, r0, recs.len[0], 0) < 0, "bad magic accepted");
    for (size_t i = 0; i < recs.n; i++)
        free(recs.rec[i]);
    rig_cleanup(&a);
    rig_cleanup(&b);
}

static int warm_calls;
static bool warm_req(void *ctx, const struct label *labels, size_t n)
{
    (void)ctx;
    (void)labels;
    (void)n;
    warm_calls++;
    return true;
}

static int apply_hist(void *ctx, const struct label *labels, size_t n, void *model)
{
    struct rig *r = ctx;
    struct sample hist[200];
    for (int k = 0; k < 200; k++)
        hist[k] = (struct sample){T0 - (200 - k) * STEP, 7 + sin((double)k / 10.0)};
    return pipeline_warm_apply(r->p, model, labels, n, hist, 200);
}

static void test_warm_start(void)
{
    struct rig r;
    rig_init(&r, true, warm_req);
    feed(&r, "load", 0, 3, 7); /* buffered while warming */
    struct pipeline_stats st;
    pipeline_get_stats(r.p, &st);
    CHECK(warm_calls == 1 && st.warming == 1 && st.steps == 0, "warming: calls %d warming %llu",
          warm_calls, (unsigned long long)st.warming);
    struct label l[] = {L("__name__", "load"), L("job", "api")};
    CHECK(series_index_with_model(r.idx, l, 2, apply_hist, &r) == 0, "warm apply");
    pipeline_get_stats(r.p, &st);
    CHECK(st.warming == 0, "still warming");
    /* With 200 steps of history the model is ready at once: the replayed
     * live samples already yield ready outputs. */
    struct got g = read_sel(&r, "{__name__=\"load:yhat\"}", T0, T0 + 3 * STEP);
    CHECK(g.series == 1 && g.ns[0] >= 2, "outputs right after warm start: %d series, %zu points",
          g.series, g.ns[0]);
    rig_cleanup(&r);
}

static void test_suppress(void)
{
    struct rig r;
    rig_init(&r, false, NULL);
    pipeline_set_suppress_until(r.p, T0 + 50 * STEP);
    feed(&r, "load", 0, 60, 3);
    struct pipeline_stats st;
    pipeline_get_stats(r.p, &st);
    /* Ready outputs of steps up to 50 are kept in history but not written:
     * with no writers nothing is written anyway, but they are counted. */
    CHECK(st.suppressed > 0, "suppressed %llu", (unsigned long long)st.suppressed);
    CHECK(pipeline_high_watermark(r.p) == T0 + 58 * STEP, "watermark %lld",
          (long long)pipeline_high_watermark(r.p));
    rig_cleanup(&r);
}

int main(void)
{
    test_read();
    test_snapshot_restore();
    test_warm_start();
    test_suppress();
    return test_main_end("test_pipeline");
}
