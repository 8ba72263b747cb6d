/*
 * test_series.c — the series index: identity of label sets across buffers,
 * hash collisions (forced through the hash hook), sample semantics
 * (out-of-order, duplicates, conflicts, stale markers), idle eviction with a
 * fake clock, the active and modelled caps, cached rule decisions and their
 * re-evaluation after set_rules, visiting with a selector, memory accounting
 * back to baseline, and a 4-thread stress run checked by exact counts.
 */
#include "series.h"
#include "config.h"
#include "selector.h"
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* ---- helpers -------------------------------------------------------------- */

/* A label set built from "name=value" strings into its own buffer, so two
 * sets with equal contents never share bytes. */
struct lset {
    size_t n;
    struct label l[16];
    char buf[512];
};

static void lset_build(struct lset *s, const char *const *pairs, size_t n)
{
    size_t off = 0;
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(pairs[i], '=');
        size_t nl = (size_t)(eq - pairs[i]), vl = strlen(eq + 1);
        memcpy(s->buf + off, pairs[i], nl);
        s->l[i].name = s->buf + off;
        s->l[i].name_len = (uint32_t)nl;
        off += nl;
        memcpy(s->buf + off, eq + 1, vl);
        s->l[i].value = s->buf + off;
        s->l[i].value_len = (uint32_t)vl;
        off += vl;
    }
}

/* node-exporter-like series number k (10 labels, the benchmark shape). */
static void lset_node(struct lset *s, unsigned k)
{
    char cpu[16], inst[32], pod[40];
    snprintf(cpu, sizeof cpu, "cpu=%u", k % 64);
    snprintf(inst, sizeof inst, "instance=10.0.%u.%u:9100", (k / 64) / 250, (k / 64) % 250);
    snprintf(pod, sizeof pod, "pod=node-exporter-%05u", k / 64);
    const char *p[] = {"__name__=node_cpu_seconds_total",
                       "container=node-exporter",
                       cpu,
                       "endpoint=metrics",
                       inst,
                       "job=node-exporter",
                       "mode=idle",
                       "namespace=monitoring",
                       pod,
                       "service=node-exporter"};
    lset_build(s, p, 10);
}

static struct sample smp(int64_t t, double v)
{
    struct sample s = {t, v};
    return s;
}

static int ingest1(struct series_index *idx, const struct lset *s, int64_t t, double v, int64_t now,
                   struct series_ingest_stats *st)
{
    struct sample x = smp(t, v);
    return series_ingest(idx, s->l, s->n, &x, 1, now, st);
}

static struct series_index *index_new(size_t max_active, size_t max_modelled, int64_t ttl,
                                      unsigned nshards)
{
    struct series_index_opts o;
    series_index_opts_default(&o);
    o.max_active_series = max_active;
    o.max_modelled_series = max_modelled;
    o.idle_ttl_ms = ttl;
    o.nshards = nshards;
    return series_index_create(&o);
}

/* A config with just rules, built from selectors, as config.c would. */
struct rules {
    struct config cfg;
    struct config_rule rule[4];
};

static void rules_init(struct rules *r, const char *const *sel, size_t n)
{
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < n; i++) {
        char err[128];
        r->rule[i].match = selector_parse(sel[i], err, sizeof err, NULL);
        CHECK(r->rule[i].match != NULL, "selector %s: %s", sel[i], err);
    }
    r->cfg.rules = r->rule;
    r->cfg.n_rules = n;
}

static void rules_cleanup(struct rules *r)
{
    for (size_t i = 0; i < r->cfg.n_rules; i++)
        selector_destroy(r->rule[i].match);
}

/* Visit collector: info of the (single) visited series and a count. */
struct seen {
    size_t n;
    struct series_info info;
    char text[512];
};

static int seen_fn(void *ctx, const struct label *labels, size_t n, const struct series_info *info)
{
    struct seen *s = ctx;
    s->n++;
    s->info = *info;
    labels_format(labels, n, s->text, sizeof s->text);
    return 0;
}

static struct series_info info_of(struct series_index *idx, const char *sel_text)
{
    char err[128];
    struct selector *sel = selector_parse(sel_text, err, sizeof err, NULL);
    struct seen s = {0};
    CHECK(sel != NULL, "selector %s: %s", sel_text, err);
    if (sel)
        series_index_visit(idx, sel, seen_fn, &s);
    selector_destroy(sel);
    CHECK(s.n == 1, "%s matched %zu series", sel_text, s.n);
    return s.info;
}

/* ---- identity ------------------------------------------------------------- */

static void test_identity(void)
{
    struct series_index *idx = index_new(100, 100, 1000, 4);
    struct series_ingest_stats st = {0};
    struct lset a, b, c, d, e;
    const char *pa[] = {"__name__=up", "instance=x:1", "job=api"};
    const char *pc[] = {"__name__=up", "instance=x:2", "job=api"};
    const char *pd[] = {"__name__=up", "env=", "instance=x:1", "job=api"}; /* empty value */
    const char *pe[] = {"__name__=up", "instance=x:1", "joba=pi"};         /* boundary shift */
    lset_build(&a, pa, 3);
    lset_build(&b, pa, 3);
    lset_build(&c, pc, 3);
    lset_build(&d, pd, 4);
    lset_build(&e, pe, 3);

    CHECK(ingest1(idx, &a, 1000, 1, 0, &st) == 0, "ingest a");
    CHECK(ingest1(idx, &b, 2000, 2, 0, &st) == 0, "ingest b");
    CHECK(st.new_series == 1 && series_index_count(idx) == 1,
          "same set in two buffers made %llu series", (unsigned long long)st.new_series);
    CHECK(ingest1(idx, &c, 3000, 3, 0, &st) == 0, "ingest c");
    CHECK(st.new_series == 2, "other value not a new series");
    CHECK(ingest1(idx, &d, 3000, 4, 0, &st) == 0, "ingest d");
    CHECK(st.new_series == 2, "empty-valued label not ignored");
    CHECK(ingest1(idx, &e, 3000, 4, 0, &st) == 0, "ingest e");
    CHECK(st.new_series == 3, "name/value boundary shift taken as the same series");

    struct series_info i = info_of(idx, "up{instance=\"x:1\",job=\"api\"}");
    CHECK(i.samples == 3 && i.last_t == 3000 && i.last_v == 4, "a: %llu samples, last %lld=%g",
          (unsigned long long)i.samples, (long long)i.last_t, i.last_v);

    /* Only empty values: nothing to index. */
    const char *pz[] = {"a=", "b="};
    struct lset z;
    lset_build(&z, pz, 2);
    CHECK(ingest1(idx, &z, 1, 1, 0, &st) == 0, "ingest z");
    CHECK(st.dropped_invalid == 1 && series_index_count(idx) == 3, "empty set: invalid=%llu",
          (unsigned long long)st.dropped_invalid);

    /* Every sample lands in exactly one bucket. */
    CHECK(st.samples == st.accepted + st.out_of_order + st.duplicates + st.duplicate_conflicts +
                            st.dropped_samples_limit + st.dropped_invalid,
          "sample buckets do not add up");

    /* Visit round-trips the stored labels. */
    struct seen s = {0};
    char err[64];
    struct selector *sel = selector_parse("{instance=\"x:2\"}", err, sizeof err, NULL);
    series_index_visit(idx, sel, seen_fn, &s);
    selector_destroy(sel);
    CHECK(s.n == 1 && strcmp(s.text, "up{instance=\"x:2\",job=\"api\"}") == 0, "visit gave %s",
          s.text);
    series_index_destroy(idx);
}

/* ---- collisions ----------------------------------------------------------- */

static uint64_t hash_const(const struct label *labels, size_t n)
{
    (void)labels;
    (void)n;
    return 42;
}

/* Home is the last slot whatever the table size: the probe run wraps. */
static uint64_t hash_wrap(const struct label *labels, size_t n)
{
    (void)labels;
    (void)n;
    return UINT64_MAX >> 16;
}

/* Few distinct homes, all in shard 0: long, merging clusters. */
static uint64_t hash_few(const struct label *labels, size_t n)
{
    return labels_hash(labels, n) & 0xf;
}

static int count_fn(void *ctx, const struct label *labels, size_t n, const struct series_info *info)
{
    (void)labels;
    (void)n;
    (void)info;
    (*(size_t *)ctx)++;
    return 0;
}

static void test_collisions(uint64_t (*hash)(const struct label *, size_t), const char *what)
{
    struct series_index_opts o;
    series_index_opts_default(&o);
    o.hash = hash;
    o.idle_ttl_ms = 100;
    o.nshards = 8;
    struct series_index *idx = series_index_create(&o);
    size_t base = series_index_memory_bytes(idx);
    struct series_ingest_stats st = {0};
    const unsigned N = 600;
    struct lset s;
    for (unsigned k = 0; k < N; k++) {
        lset_node(&s, k);
        ingest1(idx, &s, 1, k, k % 2 ? 1000 : 0, &st); /* even ones idle since 0 */
    }
    CHECK(st.new_series == N && series_index_count(idx) == N, "%s: %llu new, %zu held", what,
          (unsigned long long)st.new_series, series_index_count(idx));
    for (unsigned k = 0; k < N; k++) {
        lset_node(&s, k);
        ingest1(idx, &s, 2, k, k % 2 ? 1000 : 0, &st);
    }
    CHECK(st.new_series == N && st.accepted == 2 * N, "%s: second round %llu new %llu accepted",
          what, (unsigned long long)st.new_series, (unsigned long long)st.accepted);

    /* Remove every even one (the first at the shared home slot), from the
     * middle of the clusters; the rest must
     * still be found (backward-shift deletion keeps probe runs intact). */
    size_t ev = series_index_evict_idle(idx, 500);
    CHECK(ev == N / 2, "%s: evicted %zu", what, ev);
    for (unsigned k = 1; k < N; k += 2) {
        lset_node(&s, k);
        ingest1(idx, &s, 3, k, 1000, &st);
    }
    CHECK(st.new_series == N && st.accepted == 2 * N + N / 2,
          "%s: after eviction %llu new %llu accepted", what, (unsigned long long)st.new_series,
          (unsigned long long)st.accepted);
    size_t visited = 0;
    series_index_visit(idx, NULL, count_fn, &visited);
    CHECK(visited == N / 2, "%s: visited %zu", what, visited);

    /* Colliding sets that differ only in a name, or only in where a name
     * ends and its value begins. */
    const char *px[] = {"x=1"}, *py[] = {"y=1"}, *pxy[] = {"xy=1"}, *pxy2[] = {"x=y1"};
    struct lset x, y, xy, xy2;
    lset_build(&x, px, 1);
    lset_build(&y, py, 1);
    lset_build(&xy, pxy, 1);
    lset_build(&xy2, pxy2, 1);
    struct series_ingest_stats st2 = {0};
    ingest1(idx, &x, 1, 1, 1000, &st2);
    ingest1(idx, &y, 1, 1, 1000, &st2);
    ingest1(idx, &xy, 1, 1, 1000, &st2);
    ingest1(idx, &xy2, 1, 1, 1000, &st2);
    ingest1(idx, &x, 2, 1, 1000, &st2);
    CHECK(st2.new_series == 4 && st2.accepted == 5, "%s: name-only differences: %llu new", what,
          (unsigned long long)st2.new_series);
    CHECK(series_index_evict_idle(idx, 100000) == N / 2 + 4, "%s: final eviction", what);
    CHECK(series_index_memory_bytes(idx) == base, "%s: memory %zu, baseline %zu", what,
          series_index_memory_bytes(idx), base);
    series_index_destroy(idx);
}

/* ---- batches ----------------------------------------------------------------- */

static bool stats_equal(const struct series_ingest_stats *a, const struct series_ingest_stats *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

/* The same stream through series_ingest() and series_ingest_batch() (in
 * batches of every size 1..40) must give identical counters and state: the
 * batch path only reorders memory traffic. The stream repeats series inside
 * one window, has empty-valued labels, an all-empty set, out-of-order and
 * duplicate samples, and runs into both caps. */
static void test_batch(uint64_t (*hash)(const struct label *, size_t), const char *what)
{
    enum { NIN = 400 };
    static struct lset sets[NIN];
    static struct sample samples[NIN][2];
    struct series_input in[NIN];
    for (unsigned i = 0; i < NIN; i++) {
        unsigned id = (i * 7) % 150; /* repeats, also within 8 neighbours */
        if (i % 50 == 13) {
            const char *p[] = {"a=", "b="};
            lset_build(&sets[i], p, 2);
        } else if (i % 10 == 3) {
            const char *p[] = {"__name__=m", "empty=", "id=x"};
            lset_build(&sets[i], p, 3);
        } else {
            lset_node(&sets[i], id);
        }
        int64_t t = (int64_t)((i * 37) % 101); /* not monotonic per series */
        samples[i][0] = smp(t, (double)t);
        samples[i][1] = i % 5 == 0 ? samples[i][0] : smp(t + (i % 4 == 0 ? -1 : 1), (double)t);
        in[i] = (struct series_input){sets[i].l, sets[i].n, samples[i], 1 + i % 2};
    }
    const char *sel[] = {"{cpu=~\"1.*\"}", "{__name__=\"m\"}"};
    struct rules r;
    rules_init(&r, sel, 2);

    struct series_index_opts o;
    series_index_opts_default(&o);
    o.hash = hash;
    o.nshards = 4;
    o.max_active_series = 120;
    o.max_modelled_series = 10;
    struct series_index *ref = series_index_create(&o);
    series_index_set_rules(ref, &r.cfg);
    struct series_ingest_stats want = {0};
    for (unsigned i = 0; i < NIN; i++)
        series_ingest(ref, in[i].labels, in[i].n, in[i].samples, in[i].ns, 0, &want);

    for (size_t bs = 1; bs <= 40; bs++) {
        struct series_index *idx = series_index_create(&o);
        series_index_set_rules(idx, &r.cfg);
        struct series_ingest_stats got = {0};
        int rc = 0;
        for (size_t i = 0; i < NIN; i += bs)
            rc |= series_ingest_batch(idx, in + i, NIN - i < bs ? NIN - i : bs, 0, &got);
        CHECK(rc == 0 && stats_equal(&got, &want) &&
                  series_index_count(idx) == series_index_count(ref) &&
                  series_index_modelled(idx) == series_index_modelled(ref) &&
                  /* table sizes per shard depend on the seed */
                  (!hash || series_index_memory_bytes(idx) == series_index_memory_bytes(ref)),
              "%s, batch size %zu: accepted %llu/%llu ooo %llu/%llu new %llu/%llu count %zu/%zu",
              what, bs, (unsigned long long)got.accepted, (unsigned long long)want.accepted,
              (unsigned long long)got.out_of_order, (unsigned long long)want.out_of_order,
              (unsigned long long)got.new_series, (unsigned long long)want.new_series,
              series_index_count(idx), series_index_count(ref));
        series_index_destroy(idx);
    }
    CHECK(want.dropped_series_limit > 0 && want.unmodelled_series_limit > 0 &&
              want.dropped_invalid > 0 && want.out_of_order > 0 && want.duplicates > 0,
          "%s: stream does not reach every case", what);
    series_index_destroy(ref);
    rules_cleanup(&r);
}

/* ---- sample semantics ----------------------------------------------------- */

struct sample_case {
    int64_t t;
    double v;
    bool stale;
    const char *want; /* bucket: a=accepted o=ooo d=dup c=conflict */
};

static void test_samples(void)
{
    struct series_index *idx = index_new(10, 10, 1000, 1);
    struct lset s;
    const char *p[] = {"__name__=x"};
    lset_build(&s, p, 1);
    static const struct sample_case cases[] = {
        {INT64_MIN, 1, false, "a"}, /* first sample of a series is always new */
        {100, 1, false, "a"},       {100, 1, false, "d"}, {100, 2, false, "c"},
        {50, 3, false, "o"},        {200, 0, true, "a"},  {200, 0, true, "d"},
        {200, 5, false, "c"},       {300, 0, true, "a"},  {400, -0.0, false, "a"},
        {400, 0.0, false, "c"}, /* -0 and +0 differ in bits */
        {400, NAN, false, "c"},
    };
    struct series_ingest_stats st = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct sample_case *c = &cases[i];
        struct series_ingest_stats before = st;
        double v = c->stale ? sample_stale_value() : c->v;
        struct sample x = {c->t, v};
        series_ingest(idx, s.l, s.n, &x, 1, 0, &st);
        char got = st.accepted > before.accepted                         ? 'a'
                   : st.out_of_order > before.out_of_order               ? 'o'
                   : st.duplicates > before.duplicates                   ? 'd'
                   : st.duplicate_conflicts > before.duplicate_conflicts ? 'c'
                                                                         : '?';
        CHECK(got == c->want[0], "case %zu (t=%lld stale=%d): got %c want %s", i, (long long)c->t,
              c->stale, got, c->want);
        struct series_info in = info_of(idx, "x");
        bool want_stale = c->stale && c->want[0] == 'a';
        if (c->want[0] == 'a')
            CHECK(in.stale == want_stale && in.last_t == c->t, "case %zu: stale %d last_t %lld", i,
                  in.stale, (long long)in.last_t);
        if (want_stale)
            CHECK(sample_is_stale(in.last_v), "case %zu: stale bits not kept", i);
    }
    CHECK(st.stale == 2, "stale markers counted %llu", (unsigned long long)st.stale);
    struct series_info in = info_of(idx, "x");
    CHECK(!in.stale && in.samples == 5, "resume: stale %d samples %llu", in.stale,
          (unsigned long long)in.samples);

    /* Several samples in one call; a request may repeat the series. */
    struct sample many[] = {{500, 1}, {600, 2}, {550, 3}, {600, 2}, {700, 4}};
    struct series_ingest_stats m = {0};
    series_ingest(idx, s.l, s.n, many, 5, 0, &m);
    series_ingest(idx, s.l, s.n, many, 5, 0, &m);
    CHECK(m.samples == 10 && m.accepted == 3 && m.out_of_order == 5 && m.duplicates == 2,
          "batch: %llu acc %llu ooo %llu dup", (unsigned long long)m.accepted,
          (unsigned long long)m.out_of_order, (unsigned long long)m.duplicates);
    series_index_destroy(idx);
}

/* ---- idle eviction -------------------------------------------------------- */

static void test_eviction(void)
{
    struct series_index *idx = index_new(10, 10, 1000, 2);
    size_t base = series_index_memory_bytes(idx);
    struct series_ingest_stats st = {0};
    struct lset a, b;
    const char *pa[] = {"__name__=a"}, *pb[] = {"__name__=b"};
    lset_build(&a, pa, 1);
    lset_build(&b, pb, 1);
    ingest1(idx, &a, 1, 1, 0, &st);
    ingest1(idx, &b, 1, 1, 0, &st);
    ingest1(idx, &a, 2, 1, 500, &st); /* a seen at 500; b idle since 0 */
    CHECK(series_index_evict_idle(idx, 999) == 0, "evicted before the TTL");
    CHECK(series_index_evict_idle(idx, 1000) == 1, "b not evicted at the TTL");
    CHECK(series_index_count(idx) == 1, "count %zu", series_index_count(idx));
    CHECK(series_index_evict_idle(idx, 1499) == 0, "a evicted early");
    /* The clock going backwards evicts nothing. */
    CHECK(series_index_evict_idle(idx, -5000) == 0, "evicted with now in the past");
    CHECK(series_index_evict_idle(idx, 1500) == 1, "a not evicted");
    CHECK(series_index_count(idx) == 0 && series_index_memory_bytes(idx) == base,
          "after eviction: %zu series, %zu bytes (baseline %zu)", series_index_count(idx),
          series_index_memory_bytes(idx), base);
    /* An evicted series comes back as new, with fresh sample state. */
    ingest1(idx, &a, 1, 1, 2000, &st);
    CHECK(st.new_series == 3 && st.out_of_order == 0, "re-insert: new %llu ooo %llu",
          (unsigned long long)st.new_series, (unsigned long long)st.out_of_order);
    CHECK(series_index_evict_idle(idx, INT64_MAX) == 1, "extreme now");
    CHECK(series_index_evict_idle(idx, INT64_MIN) == 0, "INT64_MIN now");

    /* TTL <= 0 disables eviction. */
    struct series_index_opts o;
    series_index_opts_default(&o);
    o.idle_ttl_ms = 0;
    series_index_set_limits(idx, &o);
    ingest1(idx, &b, 1, 1, 0, &st);
    CHECK(series_index_evict_idle(idx, INT64_MAX) == 0, "TTL 0 evicted");
    series_index_destroy(idx);
}

/* ---- caps ----------------------------------------------------------------- */

static void test_caps(void)
{
    struct series_index *idx = index_new(3, 2, 1000, 4);
    const char *sel[] = {"{__name__=~\".+\"}"};
    struct rules r;
    rules_init(&r, sel, 1);
    series_index_set_rules(idx, &r.cfg);
    struct series_ingest_stats st = {0};
    struct lset s[5];
    for (unsigned k = 0; k < 5; k++)
        lset_node(&s[k], k);
    for (int round = 0; round < 3; round++)
        for (unsigned k = 0; k < 5; k++)
            ingest1(idx, &s[k], 10 + round, 1, k == 2 ? 100 : 0, &st);
    CHECK(st.new_series == 3 && st.dropped_series_limit == 6 && st.dropped_samples_limit == 6,
          "active cap: new %llu dropped %llu/%llu", (unsigned long long)st.new_series,
          (unsigned long long)st.dropped_series_limit,
          (unsigned long long)st.dropped_samples_limit);
    CHECK(series_index_count(idx) == 3, "count %zu", series_index_count(idx));
    CHECK(series_index_modelled(idx) == 2 && st.unmodelled_series_limit == 1,
          "modelled %zu, refusals %llu (counted once per series)", series_index_modelled(idx),
          (unsigned long long)st.unmodelled_series_limit);
    CHECK(st.accepted == 9 && st.modelled_samples == 6, "accepted %llu modelled samples %llu",
          (unsigned long long)st.accepted, (unsigned long long)st.modelled_samples);

    /* Evict the two modelled series (seen at 0; the refused series 2 was
     * seen at 100): a free slot goes to series 2 on its next sample. */
    CHECK(series_index_evict_idle(idx, 1000) == 2, "evict idle");
    CHECK(series_index_modelled(idx) == 0, "modelled %zu", series_index_modelled(idx));
    size_t visited = 0;
    series_index_visit(idx, NULL, count_fn, &visited);
    CHECK(visited == 1, "visited %zu", visited);
    ingest1(idx, &s[2], 20, 1, 1100, &st);
    CHECK(series_index_modelled(idx) == 1, "slot not taken after eviction: %zu",
          series_index_modelled(idx));
    /* New series are accepted again below the active cap. */
    ingest1(idx, &s[3], 20, 1, 1100, &st);
    ingest1(idx, &s[4], 20, 1, 1100, &st);
    CHECK(series_index_count(idx) == 3 && series_index_modelled(idx) == 2,
          "after eviction: %zu active %zu modelled", series_index_count(idx),
          series_index_modelled(idx));

    /* Raising the caps lets the refused ones in. */
    struct series_index_opts o;
    series_index_opts_default(&o);
    o.max_active_series = 10;
    o.max_modelled_series = 10;
    o.idle_ttl_ms = 1000;
    series_index_set_limits(idx, &o);
    for (unsigned k = 0; k < 5; k++)
        ingest1(idx, &s[k], 30, 1, 1100, &st);
    CHECK(series_index_count(idx) == 5 && series_index_modelled(idx) == 5,
          "raised caps: %zu active %zu modelled", series_index_count(idx),
          series_index_modelled(idx));
    /* Lowering them evicts nothing. */
    o.max_active_series = 1;
    o.max_modelled_series = 1;
    series_index_set_limits(idx, &o);
    for (unsigned k = 0; k < 5; k++)
        ingest1(idx, &s[k], 40, 1, 1100, &st);
    CHECK(series_index_count(idx) == 5 && series_index_modelled(idx) == 5,
          "lowered caps: %zu active %zu modelled", series_index_count(idx),
          series_index_modelled(idx));
    series_index_destroy(idx);
    rules_cleanup(&r);
}

/* ---- rules ---------------------------------------------------------------- */

static void test_rules(void)
{
    struct series_index *idx = index_new(100, 100, 1000, 4);
    struct series_ingest_stats st = {0};
    struct lset a, b, c;
    const char *pa[] = {"__name__=job:load", "job=api"};
    const char *pb[] = {"__name__=http_total", "job=web"};
    const char *pc[] = {"__name__=other", "job=db"};
    lset_build(&a, pa, 2);
    lset_build(&b, pb, 2);
    lset_build(&c, pc, 2);

    /* No rules installed: nothing is modelled. */
    ingest1(idx, &a, 1, 1, 0, &st);
    CHECK(info_of(idx, "job:load").rule == -1, "modelled without rules");

    const char *sel1[] = {"{__name__=~\"job:.*\"}", "{job=\"web\"}"};
    struct rules r1;
    rules_init(&r1, sel1, 2);
    series_index_set_rules(idx, &r1.cfg);
    ingest1(idx, &a, 2, 1, 0, &st);
    ingest1(idx, &b, 2, 1, 0, &st);
    ingest1(idx, &c, 2, 1, 0, &st);
    CHECK(info_of(idx, "job:load").rule == 0, "a rule %d", info_of(idx, "job:load").rule);
    CHECK(info_of(idx, "http_total").rule == 1, "b rule");
    CHECK(info_of(idx, "other").rule == -1, "c rule");
    CHECK(series_index_modelled(idx) == 2 && st.modelled_samples == 2, "modelled %zu / %llu",
          series_index_modelled(idx), (unsigned long long)st.modelled_samples);

    /* The decision is cached: samples do not consult the config again. Emptying
     * the installed config's rule list behind the index's back must change
     * nothing until set_rules is called. */
    r1.cfg.n_rules = 0;
    ingest1(idx, &a, 3, 1, 0, &st);
    ingest1(idx, &c, 3, 1, 0, &st);
    CHECK(info_of(idx, "job:load").rule == 0 && info_of(idx, "other").rule == -1,
          "decision re-run per sample");
    r1.cfg.n_rules = 2;

    /* A new config: series are re-evaluated on their next sample only. */
    const char *sel2[] = {"{job=\"db\"}"};
    struct rules r2;
    rules_init(&r2, sel2, 1);
    series_index_set_rules(idx, &r2.cfg);
    rules_cleanup(&r1); /* allowed: set_rules returned */
    ingest1(idx, &a, 4, 1, 0, &st);
    ingest1(idx, &c, 4, 1, 0, &st);
    CHECK(info_of(idx, "job:load").rule == -1, "a kept its old rule");
    CHECK(info_of(idx, "other").rule == 0, "c not re-evaluated");
    CHECK(info_of(idx, "http_total").rule == 1, "idle b lost its decision before a sample");
    CHECK(series_index_modelled(idx) == 2, "modelled %zu", series_index_modelled(idx));
    ingest1(idx, &b, 4, 1, 0, &st);
    CHECK(info_of(idx, "http_total").rule == -1 && series_index_modelled(idx) == 1,
          "b after its sample: rule %d, modelled %zu", info_of(idx, "http_total").rule,
          series_index_modelled(idx));

    series_index_set_rules(idx, NULL);
    ingest1(idx, &c, 5, 1, 0, &st);
    CHECK(series_index_modelled(idx) == 0, "NULL rules: modelled %zu", series_index_modelled(idx));
    series_index_destroy(idx);
    rules_cleanup(&r2);
}

/* A real config: limits and rules from YAML. */
static void test_config(void)
{
    static const char yaml[] = "limits:\n"
                               "  max_series: 2\n"
                               "  max_active_series: 3\n"
                               "  series_idle_ttl: 10s\n"
                               "rules:\n"
                               "  - match: '{__name__=~\"job:.*\"}'\n"
                               "  - match: '{job=\"web\"}'\n";
    char err[1024];
    struct config *cfg =
        config_load_string("test.yml", yaml, sizeof yaml - 1, err, sizeof err, NULL);
    CHECK(cfg != NULL, "config: %s", err);
    if (!cfg)
        return;
    struct series_index_opts o;
    series_index_opts_default(&o);
    series_index_opts_from_config(&o, cfg);
    CHECK(o.max_active_series == 3 && o.max_modelled_series == 2 && o.idle_ttl_ms == 10000,
          "opts from config: %zu %zu %lld", o.max_active_series, o.max_modelled_series,
          (long long)o.idle_ttl_ms);
    struct series_index *idx = series_index_create(&o);
    series_index_set_rules(idx, cfg);
    struct series_ingest_stats st = {0};
    const char *p[4][2] = {{"__name__=job:a", "job=x"},
                           {"__name__=http", "job=web"},
                           {"__name__=job:b", "job=web"},
                           {"__name__=other", "job=x"}};
    struct lset s[4];
    for (int i = 0; i < 4; i++) {
        lset_build(&s[i], p[i], 2);
        ingest1(idx, &s[i], 1, 1, 0, &st);
    }
    CHECK(info_of(idx, "job:a").rule == 0 && info_of(idx, "http").rule == 1 &&
              info_of(idx, "job:b").rule == 0,
          "rules from config");
    CHECK(series_index_count(idx) == 3 && st.dropped_series_limit == 1, "active cap from config");
    CHECK(series_index_modelled(idx) == 2 && st.unmodelled_series_limit == 1,
          "modelled cap from config: %zu", series_index_modelled(idx));
    CHECK(series_index_evict_idle(idx, 9999) == 0 && series_index_evict_idle(idx, 10000) == 3,
          "TTL from config");
    series_index_destroy(idx);
    config_destroy(cfg);
}

/* ---- visit ---------------------------------------------------------------- */

static int stop_after_3(void *ctx, const struct label *labels, size_t n,
                        const struct series_info *info)
{
    (void)labels;
    (void)n;
    (void)info;
    return ++*(size_t *)ctx == 3 ? 7 : 0;
}

static void test_visit(void)
{
    struct series_index *idx = index_new(1000, 1000, 1000, 16);
    struct series_ingest_stats st = {0};
    struct lset s;
    for (unsigned k = 0; k < 200; k++) {
        lset_node(&s, k);
        ingest1(idx, &s, 1, 1, 0, &st);
    }
    char err[64];
    struct selector *sel = selector_parse("{cpu=~\"1.?\"}", err, sizeof err, NULL);
    size_t n = 0, want = 0;
    for (unsigned k = 0; k < 200; k++)
        want += k % 64 == 1 || (k % 64 >= 10 && k % 64 <= 19);
    CHECK(series_index_visit(idx, sel, count_fn, &n) == 0 && n == want, "cpu 1x: %zu want %zu", n,
          want);
    selector_destroy(sel);
    n = 0;
    CHECK(series_index_visit(idx, NULL, stop_after_3, &n) == 7 && n == 3, "stop: %zu", n);

    /* A label set larger than the visit's stack buffer. */
    static char names[100][8];
    struct label big[100];
    for (int i = 0; i < 100; i++) {
        snprintf(names[i], sizeof names[i], "l%03d", i);
        big[i] = (struct label){names[i], "v", 4, 1};
    }
    struct sample x = {1, 1};
    CHECK(series_ingest(idx, big, 100, &x, 1, 0, &st) == 0, "100 labels");
    sel = selector_parse("{l099=\"v\"}", err, sizeof err, NULL);
    struct seen seen = {0};
    series_index_visit(idx, sel, seen_fn, &seen);
    CHECK(seen.n == 1 && strncmp(seen.text, "{l000=\"v\",l001=\"v\"", 18) == 0, "big: %s",
          seen.text);
    selector_destroy(sel);
    series_index_destroy(idx);
}

/* ---- memory --------------------------------------------------------------- */

static void test_memory(void)
{
    struct series_index *idx = index_new(1000000, 1000000, 1000, 0);
    size_t base = series_index_memory_bytes(idx);
    CHECK(base > 0, "baseline 0");
    struct series_ingest_stats st = {0};
    struct lset s;
    const unsigned N = 20000;
    for (unsigned k = 0; k < N; k++) {
        lset_node(&s, k);
        ingest1(idx, &s, 1, 1, 0, &st);
    }
    size_t per = (series_index_memory_bytes(idx) - base) / N;
    printf("test_series: %zu bytes per node-exporter series (accounting)\n", per);
    CHECK(per <= 512, "%zu bytes per series", per);
    CHECK(series_index_evict_idle(idx, 1000) == N, "evict all");
    CHECK(series_index_memory_bytes(idx) == base, "memory %zu after eviction, baseline %zu",
          series_index_memory_bytes(idx), base);
    series_index_destroy(idx);

    /* Bad options. */
    struct series_index_opts o;
    series_index_opts_default(&o);
    o.nshards = 3;
    CHECK(series_index_create(&o) == NULL, "3 shards accepted");
    o.nshards = SERIES_MAX_SHARDS * 2;
    CHECK(series_index_create(&o) == NULL, "too many shards accepted");
    series_index_destroy(NULL);
}

/* ---- model hooks ---------------------------------------------------------- */

/* A fake model owner: each state is a counter of observed samples. rebind
 * keeps state only for rules whose index matches `keep_rule`. */
struct fake_models {
    int created, observed, destroyed, rebinds;
    int keep_rule;
    bool refuse_create;
};

struct fake_state {
    int rule;
    int samples;
};

static void *fake_create(void *ctx, const struct config *cfg, int rule, const struct label *labels,
                         size_t n)
{
    struct fake_models *f = ctx;
    (void)cfg;
    CHECK(n > 0 && labels_sorted(labels, n), "create got unsorted or empty labels");
    if (f->refuse_create)
        return NULL;
    struct fake_state *st = calloc(1, sizeof *st);
    st->rule = rule;
    f->created++;
    return st;
}

static bool fake_rebind(void *ctx, void *model, const struct config *cfg, int rule)
{
    struct fake_models *f = ctx;
    (void)cfg;
    f->rebinds++;
    ((struct fake_state *)model)->rule = rule;
    return rule == f->keep_rule;
}

static void fake_observe(void *ctx, void *model, const struct label *labels, size_t n,
                         const struct sample *sample)
{
    struct fake_models *f = ctx;
    (void)labels;
    (void)n;
    (void)sample;
    f->observed++;
    ((struct fake_state *)model)->samples++;
}

static void fake_destroy(void *ctx, void *model)
{
    struct fake_models *f = ctx;
    f->destroyed++;
    free(model);
}

static int count_models(void *ctx, const struct label *labels, size_t n, void *model)
{
    (void)labels;
    (void)n;
    *(int *)ctx += ((struct fake_state *)model)->samples;
    return 0;
}

static void test_model_hooks(void)
{
    struct fake_models f = {.keep_rule = 0};
    struct series_model_hooks hooks = {&f,          NULL,         fake_create,
                                       fake_rebind, fake_observe, fake_destroy};
    struct series_index_opts o;
    series_index_opts_default(&o);
    o.hooks = &hooks;
    struct series_index *idx = series_index_create(&o);
    const char *sel[] = {"{__name__=\"node_cpu_seconds_total\"}"};
    struct rules r;
    rules_init(&r, sel, 1);
    series_index_set_rules(idx, &r.cfg);
    struct series_ingest_stats st = {0};
    struct lset a, b;
    lset_node(&a, 1);
    lset_node(&b, 2);
    ingest1(idx, &a, 1, 1, 0, &st);
    ingest1(idx, &a, 2, 2, 0, &st);
    ingest1(idx, &a, 2, 2, 0, &st); /* duplicate: not observed */
    ingest1(idx, &b, 1, 1, 0, &st);
    CHECK(f.created == 2 && f.observed == 3, "created %d observed %d", f.created, f.observed);
    int total = 0;
    series_index_visit_models(idx, NULL, count_models, &total);
    CHECK(total == 3, "visit_models saw %d samples", total);
    total = 0;
    CHECK(series_index_with_model(idx, a.l, a.n, count_models, &total) == 0 && total == 2,
          "with_model: %d", total);

    /* Same rule index under a new config: kept; a refused rebind destroys. */
    struct rules r2;
    rules_init(&r2, sel, 1);
    series_index_set_rules(idx, &r2.cfg);
    ingest1(idx, &a, 3, 3, 0, &st);
    CHECK(f.destroyed == 0 && f.rebinds == 1, "kept across reload: destroyed %d rebinds %d",
          f.destroyed, f.rebinds);
    f.keep_rule = 5;
    struct rules r3;
    rules_init(&r3, sel, 1);
    series_index_set_rules(idx, &r3.cfg);
    ingest1(idx, &a, 4, 4, 0, &st);
    CHECK(f.destroyed == 1 && f.created == 3, "refused rebind: destroyed %d created %d",
          f.destroyed, f.created);

    /* Restore: adopted when the rule accepts it, destroyed otherwise. */
    struct lset c;
    lset_node(&c, 3);
    f.keep_rule = 0;
    struct fake_state *m = calloc(1, sizeof *m);
    m->samples = 40;
    CHECK(series_index_restore(idx, c.l, c.n, 100, m, 0) == 1, "restore adopted");
    total = 0;
    series_index_with_model(idx, c.l, c.n, count_models, &total);
    CHECK(total == 40, "restored state: %d", total);
    ingest1(idx, &c, 50, 1, 0, &st); /* older than the restored last_t */
    CHECK(st.out_of_order == 1, "restored last_t respected: ooo %llu",
          (unsigned long long)st.out_of_order);
    f.keep_rule = 7;
    struct lset d;
    lset_node(&d, 4);
    int destroyed = f.destroyed;
    CHECK(series_index_restore(idx, d.l, d.n, 100, calloc(1, sizeof *m), 0) == 0,
          "restore refused");
    CHECK(f.destroyed == destroyed + 1, "refused restore destroyed");

    /* create may refuse: the sample is not observed, and it is tried again. */
    f.refuse_create = true;
    struct lset e;
    lset_node(&e, 5);
    int obs = f.observed;
    ingest1(idx, &e, 1, 1, 0, &st);
    CHECK(f.observed == obs, "observed without state");
    f.refuse_create = false;
    ingest1(idx, &e, 2, 1, 0, &st);
    CHECK(f.observed == obs + 1, "create retried");

    series_index_barrier(idx);
    series_index_destroy(idx);
    /* Two states came from outside (the two restores). */
    CHECK(f.created + 2 == f.destroyed, "every state freed: created %d (+2 restored) destroyed %d",
          f.created, f.destroyed);
    rules_cleanup(&r);
    rules_cleanup(&r2);
    rules_cleanup(&r3);
}

/* ---- threads -------------------------------------------------------------- */

#define T_THREADS 4
#define T_SERIES  3000 /* per thread; thread k covers [k*T_SERIES/2, k*T_SERIES/2 + T_SERIES) */
#define T_ROUNDS  20
#define T_BATCH   37

struct worker {
    struct series_index *idx;
    unsigned k;
    int phase; /* 1: no eviction, fixed now; 2: concurrent eviction */
    struct series_ingest_stats st;
    int failures;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct lset s;
    static _Thread_local struct lset batch[T_BATCH];
    struct series_input in[T_BATCH];
    for (int r = 1; r <= T_ROUNDS; r++) {
        /* Value bits depend only on t, so racing threads never conflict. */
        struct sample x = {r, (double)r};
        int64_t now = w->phase == 1 ? 0 : (int64_t)r * 1000;
        for (unsigned i = 0; i < T_SERIES; i++) {
            unsigned id = w->k * (T_SERIES / 2) + i;
            if (w->k % 2 == 0) { /* even workers: one series at a time */
                lset_node(&s, id);
                if (series_ingest(w->idx, s.l, s.n, &x, 1, now, &w->st) != 0)
                    w->failures++;
                continue;
            }
            unsigned j = i % T_BATCH; /* odd workers: batches */
            lset_node(&batch[j], id);
            in[j] = (struct series_input){batch[j].l, batch[j].n, &x, 1};
            if (j == T_BATCH - 1 || i == T_SERIES - 1)
                if (series_ingest_batch(w->idx, in, j + 1, now, &w->st) != 0)
                    w->failures++;
        }
    }
    return NULL;
}

struct evictor {
    struct series_index *idx;
    _Atomic int stop;
    size_t evicted;
};

static void *evictor_run(void *arg)
{
    struct evictor *e = arg;
    while (!atomic_load(&e->stop))
        e->evicted += series_index_evict_idle(e->idx, INT64_MAX / 2);
    return NULL;
}

struct last_check {
    size_t n, bad;
    uint64_t samples;
};

static int last_fn(void *ctx, const struct label *labels, size_t n, const struct series_info *info)
{
    struct last_check *c = ctx;
    const struct label *cpu = labels_get(labels, n, "cpu");
    int want_rule = cpu && cpu->value_len == 1 ? 0 : -1; /* cpu 0..9 */
    c->n++;
    c->samples += info->samples;
    if (info->last_t != T_ROUNDS || info->last_v != T_ROUNDS || info->rule != want_rule)
        c->bad++;
    return 0;
}

static void test_threads(void)
{
    struct series_index *idx = index_new(1000000, 1000000, 10, 16);
    size_t base = series_index_memory_bytes(idx);
    const char *sel[] = {"{cpu=~\"[0-9]\"}"}; /* cpu 0..9 of 64: rule 0 */
    struct rules r;
    rules_init(&r, sel, 1);
    series_index_set_rules(idx, &r.cfg);
    const unsigned distinct = (T_THREADS + 1) * (T_SERIES / 2);

    for (int phase = 1; phase <= 2; phase++) {
        struct worker w[T_THREADS];
        pthread_t th[T_THREADS], ev;
        struct evictor e = {idx, 0, 0};
        for (unsigned k = 0; k < T_THREADS; k++) {
            memset(&w[k], 0, sizeof w[k]);
            w[k].idx = idx;
            w[k].k = k;
            w[k].phase = phase;
            pthread_create(&th[k], NULL, worker_run, &w[k]);
        }
        if (phase == 2)
            pthread_create(&ev, NULL, evictor_run, &e);
        for (unsigned k = 0; k < T_THREADS; k++)
            pthread_join(th[k], NULL);
        if (phase == 2) {
            atomic_store(&e.stop, 1);
            pthread_join(ev, NULL);
        }
        struct series_ingest_stats sum = {0};
        int failures = 0;
        for (unsigned k = 0; k < T_THREADS; k++) {
            sum.samples += w[k].st.samples;
            sum.accepted += w[k].st.accepted;
            sum.out_of_order += w[k].st.out_of_order;
            sum.duplicates += w[k].st.duplicates;
            sum.duplicate_conflicts += w[k].st.duplicate_conflicts;
            sum.new_series += w[k].st.new_series;
            sum.modelled_samples += w[k].st.modelled_samples;
            failures += w[k].failures;
        }
        const uint64_t total = (uint64_t)T_THREADS * T_SERIES * T_ROUNDS;
        CHECK(failures == 0, "phase %d: %d ingest failures", phase, failures);
        CHECK(sum.samples == total && sum.accepted + sum.out_of_order + sum.duplicates == total &&
                  sum.duplicate_conflicts == 0,
              "phase %d: samples %llu accepted %llu ooo %llu dup %llu conflicts %llu", phase,
              (unsigned long long)sum.samples, (unsigned long long)sum.accepted,
              (unsigned long long)sum.out_of_order, (unsigned long long)sum.duplicates,
              (unsigned long long)sum.duplicate_conflicts);
        if (phase == 1) {
            struct last_check c = {0, 0, 0};
            series_index_visit(idx, NULL, last_fn, &c);
            CHECK(sum.new_series == distinct && series_index_count(idx) == distinct &&
                      c.n == distinct,
                  "phase 1: new %llu count %zu visited %zu want %u",
                  (unsigned long long)sum.new_series, series_index_count(idx), c.n, distinct);
            CHECK(c.bad == 0, "phase 1: %zu series with a wrong last sample or rule", c.bad);
            CHECK(c.samples == sum.accepted, "phase 1: series hold %llu samples, accepted %llu",
                  (unsigned long long)c.samples, (unsigned long long)sum.accepted);
            /* cpu = id % 64 < 10 */
            size_t want_modelled = 0;
            for (unsigned id = 0; id < distinct; id++)
                want_modelled += id % 64 < 10;
            CHECK(series_index_modelled(idx) == want_modelled, "phase 1: modelled %zu want %zu",
                  series_index_modelled(idx), want_modelled);
            CHECK(series_index_evict_idle(idx, 1000) == distinct, "phase 1: evict all");
        } else {
            CHECK(sum.new_series - e.evicted == series_index_count(idx),
                  "phase 2: new %llu - evicted %zu != count %zu",
                  (unsigned long long)sum.new_series, e.evicted, series_index_count(idx));
            series_index_evict_idle(idx, INT64_MAX / 2);
        }
        CHECK(series_index_count(idx) == 0 && series_index_modelled(idx) == 0 &&
                  series_index_memory_bytes(idx) == base,
              "phase %d end: %zu active %zu modelled %zu bytes (baseline %zu)", phase,
              series_index_count(idx), series_index_modelled(idx), series_index_memory_bytes(idx),
              base);
    }
    series_index_destroy(idx);
    rules_cleanup(&r);
}

int main(void)
{
    test_identity();
    test_collisions(hash_const, "constant hash");
    test_collisions(hash_wrap, "constant hash at the last slot");
    test_collisions(hash_few, "16 hash values");
    test_batch(NULL, "seeded hash");
    test_batch(hash_few, "16 hash values");
    test_samples();
    test_eviction();
    test_caps();
    test_rules();
    test_config();
    test_visit();
    test_memory();
    test_model_hooks();
    test_threads();
    return test_main_end("test_series");
}
