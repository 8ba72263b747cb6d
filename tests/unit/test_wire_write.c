/*
 * Unit tests for wire_write.c: v1/v2 remote-write decoding against requests
 * built by protobuf-c (the reference encoder) and by hand (unknown fields,
 * odd field orders, malformed bytes), the encoder against protobuf-c's
 * unpack, the snappy helpers, limits and the arena cap.
 *
 * With WIRE_WRITE_SEED_DIR set, also writes the fuzz seed corpus there
 * (tests/fuzz/corpus/wire_write/): one byte of mode (bit 0 = v2, bit 1 =
 * snappy) followed by the body.
 */
#include "wire_write.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <io/prometheus/write/v2/types.pb-c.h>
#include <prometheus/remote.pb-c.h>
#include <prometheus/types.pb-c.h>

#include "testlib.h"

/* Byte builder: an encoder written independently of the one under test. ---- */

struct tb {
    uint8_t *p;
    size_t len, cap;
};

static void tb_raw(struct tb *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->len + n)
            c *= 2;
        b->p = realloc(b->p, c);
        if (b->p == NULL)
            abort();
        b->cap = c;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void tb_varint(struct tb *b, uint64_t v)
{
    uint8_t x[10];
    int n = 0;
    do {
        x[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            x[n] |= 0x80;
        n++;
    } while (v);
    tb_raw(b, x, (size_t)n);
}

static void tb_tag(struct tb *b, uint32_t f, unsigned wt)
{
    tb_varint(b, (uint64_t)f << 3 | wt);
}

static void tb_bytes(struct tb *b, uint32_t f, const void *d, size_t n)
{
    tb_tag(b, f, 2);
    tb_varint(b, n);
    tb_raw(b, d, n);
}

static void tb_str(struct tb *b, uint32_t f, const char *s)
{
    tb_bytes(b, f, s, strlen(s));
}

static void tb_msg(struct tb *b, uint32_t f, const struct tb *child)
{
    tb_bytes(b, f, child->p, child->len);
}

static void tb_fixed64(struct tb *b, uint32_t f, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    tb_tag(b, f, 1);
    tb_raw(b, x, 8);
}

static void tb_reset(struct tb *b)
{
    b->len = 0;
}

static void tb_free(struct tb *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static uint64_t bits_of(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double double_of(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* Test-side description of a series ------------------------------------------ */

struct tlabel {
    const char *n, *v;
};

#define MAXL 12
#define MAXS 4
struct tser {
    struct tlabel l[MAXL]; /* terminated by n == NULL */
    int ns;
    struct sample s[MAXS];
    int nex;   /* exemplars */
    int nhist; /* histograms; the first nstale of them carry the stale sum */
    int nstale;
};

static int tl_count(const struct tlabel *l)
{
    int n = 0;
    while (n < MAXL && l[n].n != NULL)
        n++;
    return n;
}

static int tl_cmp(const void *a, const void *b)
{
    return strcmp(((const struct tlabel *)a)->n, ((const struct tlabel *)b)->n);
}

/* What the decoder should produce: empty values dropped, sorted by name. */
static int expected_labels(const struct tser *t, struct tlabel *out)
{
    int n = 0;
    for (int i = 0; i < tl_count(t->l); i++)
        if (t->l[i].v[0] != '\0')
            out[n++] = t->l[i];
    qsort(out, (size_t)n, sizeof *out, tl_cmp);
    return n;
}

static bool label_eq(const struct label *l, const struct tlabel *t)
{
    return l->name_len == strlen(t->n) && memcmp(l->name, t->n, l->name_len) == 0 &&
           l->value_len == strlen(t->v) && memcmp(l->value, t->v, l->value_len) == 0;
}

static void check_series(const char *ctx, size_t idx, const struct wire_series *got,
                         const struct tser *want)
{
    struct tlabel exp[MAXL];
    int n = expected_labels(want, exp);
    CHECK(got->nlabels == (uint32_t)n, "%s: series %zu: %u labels, want %d", ctx, idx, got->nlabels,
          n);
    for (int i = 0; i < n && (uint32_t)i < got->nlabels; i++)
        CHECK(label_eq(&got->labels[i], &exp[i]),
              "%s: series %zu label %d: got %.*s=%.*s want %s=%s", ctx, idx, i,
              (int)got->labels[i].name_len, got->labels[i].name, (int)got->labels[i].value_len,
              got->labels[i].value, exp[i].n, exp[i].v);
    CHECK(got->nsamples == (uint32_t)want->ns, "%s: series %zu: %u samples, want %d", ctx, idx,
          got->nsamples, want->ns);
    for (int i = 0; i < want->ns && (uint32_t)i < got->nsamples; i++) {
        CHECK(got->samples[i].t == want->s[i].t, "%s: series %zu sample %d: t %lld want %lld", ctx,
              idx, i, (long long)got->samples[i].t, (long long)want->s[i].t);
        CHECK(bits_of(got->samples[i].v) == bits_of(want->s[i].v),
              "%s: series %zu sample %d: bits %016llx want %016llx", ctx, idx, i,
              (unsigned long long)bits_of(got->samples[i].v),
              (unsigned long long)bits_of(want->s[i].v));
    }
    CHECK(got->nexemplars == (uint32_t)want->nex, "%s: series %zu: %u exemplars, want %d", ctx, idx,
          got->nexemplars, want->nex);
    CHECK(got->nhistograms == (uint32_t)want->nhist, "%s: series %zu: %u histograms, want %d", ctx,
          idx, got->nhistograms, want->nhist);
    CHECK(got->nstale_histograms == (uint32_t)want->nstale,
          "%s: series %zu: %u stale histograms, want %d", ctx, idx, got->nstale_histograms,
          want->nstale);
}

static void check_request(const char *ctx, const struct wire_request *r, const struct tser *ts,
                          int n, int nmeta)
{
    CHECK(r->nseries == (size_t)n, "%s: %zu series, want %d", ctx, r->nseries, n);
    uint64_t ns = 0, nh = 0, nx = 0, nst = 0;
    for (int i = 0; i < n && (size_t)i < r->nseries; i++) {
        check_series(ctx, (size_t)i, &r->series[i], &ts[i]);
        ns += (uint64_t)ts[i].ns;
        nh += (uint64_t)ts[i].nhist;
        nx += (uint64_t)ts[i].nex;
        nst += (uint64_t)ts[i].nstale;
    }
    CHECK(r->nsamples == ns, "%s: nsamples %llu want %llu", ctx, (unsigned long long)r->nsamples,
          (unsigned long long)ns);
    CHECK(r->nhistograms == nh && r->nexemplars == nx && r->nstale_histograms == nst,
          "%s: totals h=%llu x=%llu st=%llu", ctx, (unsigned long long)r->nhistograms,
          (unsigned long long)r->nexemplars, (unsigned long long)r->nstale_histograms);
    CHECK(r->nmetadata == (uint64_t)nmeta, "%s: nmetadata %llu want %d", ctx,
          (unsigned long long)r->nmetadata, nmeta);
}

/* Reference encoders (protobuf-c) ------------------------------------------------ */

static const char *help_text = "Help text.";

/* v1 WriteRequest with protobuf-c. Returns a malloc'd buffer. */
static uint8_t *pack_v1(const struct tser *ts, int n, int nmeta, size_t *len)
{
    Prometheus__TimeSeries series[8], *sp[8];
    Prometheus__Label labels[8][MAXL], *lp[8][MAXL];
    Prometheus__Sample samples[8][MAXS], *smp[8][MAXS];
    Prometheus__Exemplar ex[8][3], *exp_[8][3];
    Prometheus__Label exl = PROMETHEUS__LABEL__INIT, *exlp = &exl;
    Prometheus__Histogram h[8][3], *hp[8][3];
    Prometheus__BucketSpan span = PROMETHEUS__BUCKET_SPAN__INIT, *spanp = &span;
    int64_t deltas[2] = {1, -1};
    Prometheus__MetricMetadata md[4], *mdp[4];
    exl.name = "trace_id";
    exl.value = "abc";
    span.offset = -2;
    span.length = 2;
    for (int i = 0; i < n; i++) {
        prometheus__time_series__init(&series[i]);
        sp[i] = &series[i];
        int nl = tl_count(ts[i].l);
        for (int k = 0; k < nl; k++) {
            prometheus__label__init(&labels[i][k]);
            labels[i][k].name = (char *)ts[i].l[k].n;
            labels[i][k].value = (char *)ts[i].l[k].v;
            lp[i][k] = &labels[i][k];
        }
        series[i].n_labels = (size_t)nl;
        series[i].labels = lp[i];
        for (int k = 0; k < ts[i].ns; k++) {
            prometheus__sample__init(&samples[i][k]);
            samples[i][k].value = ts[i].s[k].v;
            samples[i][k].timestamp = ts[i].s[k].t;
            smp[i][k] = &samples[i][k];
        }
        series[i].n_samples = (size_t)ts[i].ns;
        series[i].samples = smp[i];
        for (int k = 0; k < ts[i].nex; k++) {
            prometheus__exemplar__init(&ex[i][k]);
            ex[i][k].n_labels = 1;
            ex[i][k].labels = &exlp;
            ex[i][k].value = 0.5;
            ex[i][k].timestamp = 1000 + k;
            exp_[i][k] = &ex[i][k];
        }
        series[i].n_exemplars = (size_t)ts[i].nex;
        series[i].exemplars = exp_[i];
        for (int k = 0; k < ts[i].nhist; k++) {
            prometheus__histogram__init(&h[i][k]);
            h[i][k].count_case = PROMETHEUS__HISTOGRAM__COUNT_COUNT_INT;
            h[i][k].count_int = 3;
            h[i][k].sum = k < ts[i].nstale ? sample_stale_value() : 2.5;
            h[i][k].schema = -1;
            h[i][k].n_positive_spans = 1;
            h[i][k].positive_spans = &spanp;
            h[i][k].n_positive_deltas = 2;
            h[i][k].positive_deltas = deltas;
            h[i][k].timestamp = -5;
            hp[i][k] = &h[i][k];
        }
        series[i].n_histograms = (size_t)ts[i].nhist;
        series[i].histograms = hp[i];
    }
    for (int i = 0; i < nmeta; i++) {
        prometheus__metric_metadata__init(&md[i]);
        md[i].type = PROMETHEUS__METRIC_METADATA__METRIC_TYPE__COUNTER;
        md[i].metric_family_name = "http_requests_total";
        md[i].help = (char *)help_text;
        md[i].unit = "";
        mdp[i] = &md[i];
    }
    Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
    req.n_timeseries = (size_t)n;
    req.timeseries = sp;
    req.n_metadata = (size_t)nmeta;
    req.metadata = mdp;
    *len = prometheus__write_request__get_packed_size(&req);
    uint8_t *buf = malloc(*len ? *len : 1);
    prometheus__write_request__pack(&req, buf);
    return buf;
}

/* Symbol table for the v2 reference encoder. */
struct tsyms {
    const char *s[256];
    size_t n;
};

static uint32_t tsym(struct tsyms *t, const char *s)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->s[i], s) == 0)
            return (uint32_t)i;
    t->s[t->n] = s;
    return (uint32_t)t->n++;
}

enum { V2_SYMBOLS_LAST = 1, V2_UNPACKED_REFS = 2, V2_MIXED_REFS = 4, V2_METADATA = 8 };

/* v2 Request with protobuf-c; with layout flags the top level (and the
 * unpacked refs) are assembled by hand around protobuf-c's series bytes. */
static uint8_t *pack_v2(const struct tser *ts, int n, int flags, size_t *len)
{
    struct tsyms sy = {{""}, 1};
    Io__Prometheus__Write__V2__TimeSeries series[8], *sp[8];
    uint32_t refs[8][2 * MAXL];
    Io__Prometheus__Write__V2__Sample samples[8][MAXS], *smp[8][MAXS];
    Io__Prometheus__Write__V2__Exemplar ex[8][3], *exp_[8][3];
    uint32_t exrefs[2];
    Io__Prometheus__Write__V2__Histogram h[8][3], *hp[8][3];
    Io__Prometheus__Write__V2__Metadata md = IO__PROMETHEUS__WRITE__V2__METADATA__INIT;
    exrefs[0] = tsym(&sy, "trace_id");
    exrefs[1] = tsym(&sy, "abc");
    md.type = IO__PROMETHEUS__WRITE__V2__METADATA__METRIC_TYPE__METRIC_TYPE_GAUGE;
    md.help_ref = tsym(&sy, help_text);
    for (int i = 0; i < n; i++) {
        io__prometheus__write__v2__time_series__init(&series[i]);
        sp[i] = &series[i];
        int nl = tl_count(ts[i].l);
        for (int k = 0; k < nl; k++) {
            refs[i][2 * k] = tsym(&sy, ts[i].l[k].n);
            refs[i][2 * k + 1] = tsym(&sy, ts[i].l[k].v);
        }
        series[i].n_labels_refs = (size_t)nl * 2;
        series[i].labels_refs = refs[i];
        for (int k = 0; k < ts[i].ns; k++) {
            io__prometheus__write__v2__sample__init(&samples[i][k]);
            samples[i][k].value = ts[i].s[k].v;
            samples[i][k].timestamp = ts[i].s[k].t;
            samples[i][k].start_timestamp = 7;
            smp[i][k] = &samples[i][k];
        }
        series[i].n_samples = (size_t)ts[i].ns;
        series[i].samples = smp[i];
        for (int k = 0; k < ts[i].nex; k++) {
            io__prometheus__write__v2__exemplar__init(&ex[i][k]);
            ex[i][k].n_labels_refs = 2;
            ex[i][k].labels_refs = exrefs;
            ex[i][k].value = 1;
            ex[i][k].timestamp = 99;
            exp_[i][k] = &ex[i][k];
        }
        series[i].n_exemplars = (size_t)ts[i].nex;
        series[i].exemplars = exp_[i];
        for (int k = 0; k < ts[i].nhist; k++) {
            io__prometheus__write__v2__histogram__init(&h[i][k]);
            h[i][k].count_case = IO__PROMETHEUS__WRITE__V2__HISTOGRAM__COUNT_COUNT_FLOAT;
            h[i][k].count_float = 3;
            h[i][k].sum = k < ts[i].nstale ? sample_stale_value() : 2.5;
            h[i][k].start_timestamp = 11;
            hp[i][k] = &h[i][k];
        }
        series[i].n_histograms = (size_t)ts[i].nhist;
        series[i].histograms = hp[i];
        if (flags & V2_METADATA)
            series[i].metadata = &md;
    }
    Io__Prometheus__Write__V2__Request req = IO__PROMETHEUS__WRITE__V2__REQUEST__INIT;
    req.n_symbols = sy.n;
    req.symbols = (char **)sy.s;
    req.n_timeseries = (size_t)n;
    req.timeseries = sp;
    if ((flags & (V2_SYMBOLS_LAST | V2_UNPACKED_REFS | V2_MIXED_REFS)) == 0) {
        *len = io__prometheus__write__v2__request__get_packed_size(&req);
        uint8_t *buf = malloc(*len ? *len : 1);
        io__prometheus__write__v2__request__pack(&req, buf);
        return buf;
    }
    struct tb syms = {0}, body = {0}, one = {0};
    for (size_t i = 0; i < sy.n; i++)
        tb_str(&syms, 4, sy.s[i]);
    for (int i = 0; i < n; i++) {
        size_t total = series[i].n_labels_refs, keep = total;
        if (flags & V2_UNPACKED_REFS)
            keep = 0;
        else if (flags & V2_MIXED_REFS)
            keep = total >= 3 ? 3 : total; /* a pair split across the two forms */
        /* protobuf-c's bytes (packed refs first), then the rest unpacked,
         * after the samples: refs may be split and interleaved */
        tb_reset(&one);
        series[i].n_labels_refs = keep;
        size_t sl = io__prometheus__write__v2__time_series__get_packed_size(&series[i]);
        uint8_t *sb = malloc(sl ? sl : 1);
        io__prometheus__write__v2__time_series__pack(&series[i], sb);
        tb_raw(&one, sb, sl);
        free(sb);
        for (size_t k = keep; k < total; k++) {
            tb_tag(&one, 1, 0);
            tb_varint(&one, refs[i][k]);
        }
        tb_msg(&body, 5, &one);
    }
    struct tb out = {0};
    if (flags & V2_SYMBOLS_LAST) {
        tb_raw(&out, body.p, body.len);
        tb_raw(&out, syms.p, syms.len);
    } else {
        tb_raw(&out, syms.p, syms.len);
        tb_raw(&out, body.p, body.len);
    }
    tb_free(&syms);
    tb_free(&body);
    tb_free(&one);
    *len = out.len;
    return out.p ? out.p : malloc(1);
}

/* Round trips ------------------------------------------------------------------- */

#define ST(v_, t_)                                                                                 \
    {                                                                                              \
        (int64_t)(t_), (v_)                                                                        \
    }

static const struct tser node_series = {{{"__name__", "node_cpu_seconds_total"},
                                         {"cpu", "3"},
                                         {"instance", "10.0.12.7:9100"},
                                         {"job", "node-exporter"},
                                         {"mode", "idle"}},
                                        1,
                                        {ST(12345.5, 1700000000000)},
                                        0,
                                        0,
                                        0};

struct rt_case {
    const char *name;
    int n;
    struct tser s[4];
    int nmeta;
};

static struct rt_case rt_cases[8];
static int rt_ncases;

static void build_rt_cases(void)
{
    double stale = sample_stale_value();
    struct rt_case *c = rt_cases;
    /* sorted labels, several series, a repeated label set */
    *c = (struct rt_case){"sorted+repeated", 3, {node_series, node_series, node_series}, 0};
    c->s[1].s[0].t += 15000;
    c->s[2].l[1].v = "4";
    c++;
    /* unsorted labels, empty value dropped, stale and special values,
     * negative and extreme timestamps */
    *c = (struct rt_case){"unsorted+specials",
                          2,
                          {{{{"zeta", "1"}, {"alpha", "2"}, {"__name__", "m"}, {"empty", ""}},
                            4,
                            {ST(stale, -1), ST(double_of(UINT64_C(0x7ff8000000000001)), INT64_MIN),
                             ST(-2.5, INT64_MAX), ST(double_of(UINT64_C(0x7ff0000000000001)), 0)},
                            0,
                            0,
                            0},
                           {{{"b", "é日本😀"}, {"a", "x"}},
                            2,
                            {ST(1.0 / 0.0, -1700000000000), ST(4.9e-324, 1)},
                            0,
                            0,
                            0}},
                          0};
    c++;
    /* exemplars only, histograms (one stale), metadata */
    *c = (struct rt_case){"exemplars+histograms",
                          3,
                          {{{{"__name__", "req"}}, 0, {{0, 0}}, 2, 0, 0},
                           {{{"__name__", "lat"}}, 0, {{0, 0}}, 0, 2, 1},
                           {{{"__name__", "up"}}, 1, {ST(1, 5)}, 1, 0, 0}},
                          2};
    c++;
    /* metadata only */
    *c = (struct rt_case){"metadata-only", 0, {{{{NULL, NULL}}, 0, {{0, 0}}, 0, 0, 0}}, 3};
    c++;
    /* empty request */
    *c = (struct rt_case){"empty", 0, {{{{NULL, NULL}}, 0, {{0, 0}}, 0, 0, 0}}, 0};
    c++;
    /* a set long enough for the qsort path (> 16 labels), reversed */
    *c = (struct rt_case){"long-reversed", 1, {{{{NULL, NULL}}, 1, {ST(3, 3)}, 0, 0, 0}}, 0};
    static const char *names[MAXL] = {"l", "k", "j", "i", "h", "g", "f", "e", "d", "c", "b", "a"};
    for (int i = 0; i < MAXL; i++)
        c->s[0].l[i] = (struct tlabel){names[i], "v"};
    c++;
    rt_ncases = (int)(c - rt_cases);
}

/* v2 cannot carry exemplar-only series or both samples and histograms; keep
 * only the series a v2 receiver accepts. */
static int v2_compatible(const struct rt_case *c, struct tser *out)
{
    int n = 0;
    for (int i = 0; i < c->n; i++)
        if ((c->s[i].ns > 0) != (c->s[i].nhist > 0))
            out[n++] = c->s[i];
    return n;
}

static void test_roundtrip_v1(struct wire_decoder *d)
{
    char err[256];
    void *z = NULL;
    size_t zcap = 0, zlen;
    for (int i = 0; i < rt_ncases; i++) {
        const struct rt_case *c = &rt_cases[i];
        size_t len;
        uint8_t *pb = pack_v1(c->s, c->n, c->nmeta, &len);
        CHECK(wire_snappy_compress(pb, len, &z, &zcap, &zlen) == 0, "%s: compress", c->name);
        struct wire_request r;
        enum wire_err e = wire_decode_write(d, WIRE_PROTO_V1, z, zlen, NULL, &r, err, sizeof err);
        CHECK(e == WIRE_OK, "v1 %s: %s: %s", c->name, wire_err_reason(e), err);
        if (e == WIRE_OK) {
            check_request(c->name, &r, c->s, c->n, c->nmeta);
            CHECK(r.proto == WIRE_PROTO_V1 && r.decompressed_bytes == len, "v1 %s: header",
                  c->name);
        }
        /* Raw decode of the same bytes must agree. */
        e = wire_decode_write_raw(d, WIRE_PROTO_V1, pb, len, NULL, &r, err, sizeof err);
        CHECK(e == WIRE_OK, "v1 raw %s: %s", c->name, err);
        if (e == WIRE_OK)
            check_request(c->name, &r, c->s, c->n, c->nmeta);
        free(pb);
    }
    free(z);
}

static void test_roundtrip_v2(struct wire_decoder *d)
{
    static const int layouts[] = {0,
                                  V2_SYMBOLS_LAST,
                                  V2_UNPACKED_REFS,
                                  V2_MIXED_REFS,
                                  V2_SYMBOLS_LAST | V2_MIXED_REFS | V2_METADATA,
                                  V2_METADATA};
    char err[256], ctx[96];
    for (int i = 0; i < rt_ncases; i++) {
        struct tser s[4];
        int n = v2_compatible(&rt_cases[i], s);
        for (size_t k = 0; k < sizeof layouts / sizeof layouts[0]; k++) {
            snprintf(ctx, sizeof ctx, "v2 %s layout %d", rt_cases[i].name, layouts[k]);
            size_t len;
            uint8_t *pb = pack_v2(s, n, layouts[k], &len);
            struct wire_request r;
            enum wire_err e =
                wire_decode_write_raw(d, WIRE_PROTO_V2, pb, len, NULL, &r, err, sizeof err);
            CHECK(e == WIRE_OK, "%s: %s: %s", ctx, wire_err_reason(e), err);
            if (e == WIRE_OK)
                check_request(ctx, &r, s, n, (layouts[k] & V2_METADATA) ? n : 0);
            free(pb);
        }
    }
}

/* Hand-built v1 with unknown fields at every level and unusual field
 * orders: the decoder must skip/accept them like any protobuf parser. */
static void test_v1_unknown_and_order(struct wire_decoder *d)
{
    struct tb req = {0}, ts = {0}, lab = {0}, smp = {0};
    /* reserved field 2 and unknown fields of every wire type at the top */
    tb_str(&req, 2, "cortex-source");
    tb_tag(&req, 99, 0);
    tb_varint(&req, UINT64_MAX);
    tb_fixed64(&req, 100, 42);
    tb_tag(&req, 101, 5);
    tb_raw(&req, "abcd", 4);
    /* series: sample before labels, label with value before name, a name
     * given twice (last wins), unknown fields inside Label and Sample */
    tb_tag(&smp, 2, 0);
    tb_varint(&smp, (uint64_t)-7); /* timestamp first, 10-byte negative varint */
    tb_tag(&smp, 7, 5);
    tb_raw(&smp, "wxyz", 4);
    tb_fixed64(&smp, 1, bits_of(0.25));
    tb_fixed64(&smp, 1, bits_of(0.75)); /* last wins */
    tb_msg(&ts, 2, &smp);
    tb_str(&lab, 2, "api");
    tb_str(&lab, 1, "wrong");
    tb_tag(&lab, 3, 0);
    tb_varint(&lab, 1);
    tb_str(&lab, 1, "job");
    tb_msg(&ts, 1, &lab);
    tb_tag(&ts, 15, 2);
    tb_varint(&ts, 0);
    tb_reset(&lab);
    tb_str(&lab, 1, "__name__");
    tb_str(&lab, 2, "up");
    tb_msg(&ts, 1, &lab);
    tb_msg(&req, 1, &ts);
    tb_str(&req, 3, "");
    struct wire_request r;
    char err[256];
    enum wire_err e =
        wire_decode_write_raw(d, WIRE_PROTO_V1, req.p, req.len, NULL, &r, err, sizeof err);
    CHECK(e == WIRE_OK, "unknown fields: %s", err);
    if (e == WIRE_OK) {
        struct tser want = {{{"job", "api"}, {"__name__", "up"}}, 1, {ST(0.75, -7)}, 0, 0, 0};
        check_request("unknown fields", &r, &want, 1, 1);
    }
    /* Cross-check with protobuf-c: it must read the same thing. */
    Prometheus__WriteRequest *ref = prometheus__write_request__unpack(NULL, req.len, req.p);
    CHECK(ref != NULL && ref->n_timeseries == 1 && ref->timeseries[0]->n_samples == 1 &&
              ref->timeseries[0]->samples[0]->value == 0.75 &&
              strcmp(ref->timeseries[0]->labels[0]->name, "job") == 0,
          "protobuf-c disagrees on the hand-built request");
    prometheus__write_request__free_unpacked(ref, NULL);
    tb_free(&req);
    tb_free(&ts);
    tb_free(&lab);
    tb_free(&smp);
}

/* Encoder ------------------------------------------------------------------------ */

/* Turn a test series into what the encoder expects (sorted labels). */
static void to_wire(const struct tser *t, struct label *ls, struct wire_series *ws)
{
    struct tlabel all[MAXL];
    int n = tl_count(t->l);
    memcpy(all, t->l, sizeof all);
    qsort(all, (size_t)n, sizeof *all, tl_cmp);
    for (int i = 0; i < n; i++)
        ls[i] = (struct label){all[i].n, all[i].v, (uint32_t)strlen(all[i].n),
                               (uint32_t)strlen(all[i].v)};
    memset(ws, 0, sizeof *ws);
    ws->labels = ls;
    ws->nlabels = (uint32_t)n;
    ws->samples = (struct sample *)t->s;
    ws->nsamples = (uint32_t)t->ns;
}

static void test_encoder(struct wire_decoder *d)
{
    struct wire_encoder *enc = wire_encoder_create(1 << 20);
    char err[256];
    void *raw = NULL;
    size_t rawcap = 0;
    for (int i = 0; i < rt_ncases; i++) {
        struct tser s[4];
        int n = v2_compatible(&rt_cases[i], s);
        /* the encoder carries labels and samples only */
        for (int k = 0; k < n; k++)
            s[k].nex = s[k].nhist = s[k].nstale = 0;
        int m = 0;
        for (int k = 0; k < n; k++)
            if (s[k].ns > 0)
                s[m++] = s[k];
        n = m;
        struct label ls[4][MAXL];
        struct wire_series ws[4];
        for (int k = 0; k < n; k++)
            to_wire(&s[k], ls[k], &ws[k]);
        for (int proto = 1; proto <= 2; proto++) {
            const void *out;
            size_t outlen, pblen;
            int rc = wire_encode_write(enc, (enum wire_proto)proto, ws, (size_t)n, &out, &outlen);
            CHECK(rc == 0, "encode v%d %s: %s", proto, rt_cases[i].name, wire_encoder_error(enc));
            if (rc != 0)
                continue;
            /* our decoder */
            struct wire_request r;
            enum wire_err e = wire_decode_write(d, (enum wire_proto)proto, out, outlen, NULL, &r,
                                                err, sizeof err);
            CHECK(e == WIRE_OK, "decode own v%d %s: %s", proto, rt_cases[i].name, err);
            if (e == WIRE_OK)
                check_request(rt_cases[i].name, &r, s, n, 0);
            /* protobuf-c as the reference decoder */
            e = wire_snappy_uncompress(out, outlen, 1 << 20, &raw, &rawcap, &pblen, err,
                                       sizeof err);
            CHECK(e == WIRE_OK, "uncompress: %s", err);
            if (proto == 1) {
                Prometheus__WriteRequest *q = prometheus__write_request__unpack(NULL, pblen, raw);
                CHECK(q != NULL && q->n_timeseries == (size_t)n, "protobuf-c v1 %s",
                      rt_cases[i].name);
                for (int k = 0; q && k < n && (size_t)k < q->n_timeseries; k++) {
                    Prometheus__TimeSeries *t = q->timeseries[k];
                    CHECK(t->n_labels == ws[k].nlabels && t->n_samples == ws[k].nsamples,
                          "protobuf-c v1 %s series %d shape", rt_cases[i].name, k);
                    for (size_t j = 0; j < t->n_labels && j < ws[k].nlabels; j++)
                        CHECK(strcmp(t->labels[j]->name, ws[k].labels[j].name) == 0 &&
                                  strcmp(t->labels[j]->value, ws[k].labels[j].value) == 0,
                              "protobuf-c v1 %s series %d label %zu", rt_cases[i].name, k, j);
                    for (size_t j = 0; j < t->n_samples && j < ws[k].nsamples; j++)
                        CHECK(bits_of(t->samples[j]->value) == bits_of(ws[k].samples[j].v) &&
                                  t->samples[j]->timestamp == ws[k].samples[j].t,
                              "protobuf-c v1 %s series %d sample %zu", rt_cases[i].name, k, j);
                }
                prometheus__write_request__free_unpacked(q, NULL);
            } else {
                Io__Prometheus__Write__V2__Request *q =
                    io__prometheus__write__v2__request__unpack(NULL, pblen, raw);
                CHECK(q != NULL && q->n_timeseries == (size_t)n && q->n_symbols > 0 &&
                          q->symbols[0][0] == '\0',
                      "protobuf-c v2 %s", rt_cases[i].name);
                for (int k = 0; q && k < n && (size_t)k < q->n_timeseries; k++) {
                    Io__Prometheus__Write__V2__TimeSeries *t = q->timeseries[k];
                    CHECK(t->n_labels_refs == 2 * (size_t)ws[k].nlabels &&
                              t->n_samples == ws[k].nsamples,
                          "protobuf-c v2 %s series %d shape", rt_cases[i].name, k);
                    for (size_t j = 0; j + 1 < t->n_labels_refs && j / 2 < ws[k].nlabels; j += 2) {
                        const char *nm =
                            t->labels_refs[j] < q->n_symbols ? q->symbols[t->labels_refs[j]] : "?";
                        const char *vl = t->labels_refs[j + 1] < q->n_symbols
                                             ? q->symbols[t->labels_refs[j + 1]]
                                             : "?";
                        CHECK(strcmp(nm, ws[k].labels[j / 2].name) == 0 &&
                                  strcmp(vl, ws[k].labels[j / 2].value) == 0,
                              "protobuf-c v2 %s series %d label %zu", rt_cases[i].name, k, j / 2);
                    }
                    for (size_t j = 0; j < t->n_samples && j < ws[k].nsamples; j++)
                        CHECK(bits_of(t->samples[j]->value) == bits_of(ws[k].samples[j].v) &&
                                  t->samples[j]->timestamp == ws[k].samples[j].t,
                              "protobuf-c v2 %s series %d sample %zu", rt_cases[i].name, k, j);
                }
                io__prometheus__write__v2__request__free_unpacked(q, NULL);
            }
        }
    }
    free(raw);

    /* Failures: unsorted labels, v2 without samples, over the cap. */
    struct label unsorted[] = {{"b", "1", 1, 1}, {"a", "1", 1, 1}};
    struct label dup[] = {{"a", "1", 1, 1}, {"a", "2", 1, 1}};
    struct sample one = {1, 1};
    struct wire_series bad[] = {
        {.labels = unsorted, .nlabels = 2, .nsamples = 1, .samples = &one},
        {.labels = dup, .nlabels = 2, .nsamples = 1, .samples = &one},
    };
    const void *out = NULL;
    size_t outlen = 0;
    for (int proto = 1; proto <= 2; proto++)
        for (int k = 0; k < 2; k++)
            CHECK(wire_encode_write(enc, (enum wire_proto)proto, &bad[k], 1, &out, &outlen) == -1 &&
                      out == NULL,
                  "encoder accepted bad labels case %d v%d", k, proto);
    /* -0.0 and the stale marker keep their bits through encode + decode
     * (protobuf-c's encoder would drop -0.0 as a default value) */
    struct sample zs[] = {{-3, -0.0}, {4, sample_stale_value()}};
    struct wire_series zser = {.labels = unsorted + 1, .nlabels = 1, .nsamples = 2, .samples = zs};
    for (int proto = 1; proto <= 2; proto++) {
        struct wire_request r;
        int rc = wire_encode_write(enc, (enum wire_proto)proto, &zser, 1, &out, &outlen);
        enum wire_err e = rc == 0 ? wire_decode_write(d, (enum wire_proto)proto, out, outlen, NULL,
                                                      &r, err, sizeof err)
                                  : WIRE_ERR_NOMEM;
        CHECK(e == WIRE_OK && r.nseries == 1 && r.series[0].nsamples == 2 &&
                  bits_of(r.series[0].samples[0].v) == UINT64_C(0x8000000000000000) &&
                  sample_is_stale(r.series[0].samples[1].v) && r.series[0].samples[0].t == -3,
              "-0.0/stale round trip v%d: %s", proto, err);
    }
    struct wire_series nosamples = {
        .labels = unsorted + 1, .nlabels = 1, .nsamples = 0, .samples = NULL};
    CHECK(wire_encode_write(enc, WIRE_PROTO_V2, &nosamples, 1, &out, &outlen) == -1,
          "v2 series without samples encoded");
    CHECK(wire_encode_write(enc, WIRE_PROTO_V1, &nosamples, 1, &out, &outlen) == 0,
          "v1 series without samples rejected: %s", wire_encoder_error(enc));
    wire_encoder_destroy(enc);
    enc = wire_encoder_create(64);
    static const char longname[] = "a_rather_long_metric_name_that_goes_on_and_on_for_ever";
    struct label big[] = {{"__name__", longname, 8, sizeof longname - 1}};
    struct wire_series bs = {.labels = big, .nlabels = 1, .nsamples = 1, .samples = &one};
    for (int proto = 1; proto <= 2; proto++) {
        int rc = wire_encode_write(enc, (enum wire_proto)proto, &bs, 1, &out, &outlen);
        CHECK(rc == -1 && strstr(wire_encoder_error(enc), "exceeds") != NULL,
              "cap not enforced v%d: %s", proto, wire_encoder_error(enc));
    }
    wire_encoder_destroy(enc);
    wire_encoder_destroy(NULL);
}

/* Labels: validity and limits, for both protocols ---------------------------------- */

/* One series with the given labels and one sample, hand-encoded. */
static void build_series(struct tb *out, enum wire_proto proto, const struct tlabel *l, int nl)
{
    struct tb ts = {0}, lab = {0}, smp = {0};
    tb_reset(out);
    tb_fixed64(&smp, 1, bits_of(1));
    tb_tag(&smp, 2, 0);
    tb_varint(&smp, 1000);
    if (proto == WIRE_PROTO_V1) {
        for (int i = 0; i < nl; i++) {
            tb_reset(&lab);
            tb_str(&lab, 1, l[i].n);
            tb_str(&lab, 2, l[i].v);
            tb_msg(&ts, 1, &lab);
        }
        tb_msg(&ts, 2, &smp);
        tb_msg(out, 1, &ts);
    } else {
        /* symbols: "", then every name and value at its own index */
        tb_str(out, 4, "");
        for (int i = 0; i < nl; i++) {
            tb_str(out, 4, l[i].n);
            tb_str(out, 4, l[i].v);
        }
        for (int i = 0; i < 2 * nl; i++)
            tb_varint(&lab, (uint64_t)i + 1);
        if (nl > 0)
            tb_msg(&ts, 1, &lab);
        tb_msg(&ts, 2, &smp);
        tb_msg(out, 5, &ts);
    }
    tb_free(&ts);
    tb_free(&lab);
    tb_free(&smp);
}

static void test_labels(struct wire_decoder *d)
{
    static char name65[66], value129[130], value128[129];
    memset(name65, 'n', 65);
    memset(value129, 'v', 129);
    memset(value128, 'v', 128);
    const struct wire_limits lim = {1 << 20, 100, 8, 64, 128};
    static const struct {
        const char *name;
        struct tlabel l[10];
        enum wire_err want;
    } cases[] = {
        {"empty set", {{NULL, NULL}}, WIRE_ERR_INVALID_LABELS},
        {"only label has empty value", {{"a", ""}}, WIRE_ERR_INVALID_LABELS},
        {"empty name", {{"", "x"}}, WIRE_ERR_INVALID_LABELS},
        {"empty name, empty value (dropped)", {{"", ""}, {"a", "1"}}, WIRE_OK},
        {"duplicate", {{"a", "1"}, {"a", "2"}}, WIRE_ERR_INVALID_LABELS},
        {"duplicate unsorted", {{"b", "1"}, {"a", "1"}, {"b", "2"}}, WIRE_ERR_INVALID_LABELS},
        {"duplicate same value", {{"a", "1"}, {"a", "1"}}, WIRE_ERR_INVALID_LABELS},
        {"overlong encoding", {{"a", "\xc0\x80"}}, WIRE_ERR_INVALID_LABELS},
        {"surrogate", {{"a", "\xed\xa0\x80"}}, WIRE_ERR_INVALID_LABELS},
        {"truncated sequence", {{"a", "x\xe2\x82"}}, WIRE_ERR_INVALID_LABELS},
        {"above U+10FFFF", {{"a", "\xf4\x90\x80\x80"}}, WIRE_ERR_INVALID_LABELS},
        {"lone continuation", {{"a", "abcdefgh\x80"}}, WIRE_ERR_INVALID_LABELS},
        {"0xff in name", {{"\xff", "x"}}, WIRE_ERR_INVALID_LABELS},
        {"valid multibyte", {{"a", "é日本😀"}, {"ü", "\xef\xbf\xbf"}}, WIRE_OK},
        {"ascii run then utf8", {{"a", "abcdefgh\xc3\xa9xyz"}}, WIRE_OK},
        {"max code point", {{"a", "\xf4\x8f\xbf\xbf"}}, WIRE_OK},
        {"name too long", {{name65, "x"}}, WIRE_ERR_LABEL_TOO_LONG},
        {"value too long", {{"a", value129}}, WIRE_ERR_LABEL_TOO_LONG},
        {"value at limit", {{"a", value128}}, WIRE_OK},
        {"long name with empty value (dropped)", {{name65, ""}, {"a", "1"}}, WIRE_OK},
        {"8 labels",
         {{"a", "1"},
          {"b", "1"},
          {"c", "1"},
          {"d", "1"},
          {"e", "1"},
          {"f", "1"},
          {"g", "1"},
          {"h", "1"}},
         WIRE_OK},
        {"9 labels",
         {{"a", "1"},
          {"b", "1"},
          {"c", "1"},
          {"d", "1"},
          {"e", "1"},
          {"f", "1"},
          {"g", "1"},
          {"h", "1"},
          {"i", "1"}},
         WIRE_ERR_TOO_MANY_LABELS},
        {"9 labels, one empty",
         {{"a", "1"},
          {"b", "1"},
          {"c", "1"},
          {"d", ""},
          {"e", "1"},
          {"f", "1"},
          {"g", "1"},
          {"h", "1"},
          {"i", "1"}},
         WIRE_OK},
    };
    struct tb b = {0};
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int nl = 0;
        while (nl < 10 && cases[i].l[nl].n != NULL)
            nl++;
        for (int proto = 1; proto <= 2; proto++) {
            build_series(&b, (enum wire_proto)proto, cases[i].l, nl);
            struct wire_request r;
            err[0] = 'x';
            enum wire_err e = wire_decode_write_raw(d, (enum wire_proto)proto, b.p, b.len, &lim, &r,
                                                    err, sizeof err);
            CHECK(e == cases[i].want, "v%d %s: got %s (%s) want %s", proto, cases[i].name,
                  wire_err_reason(e), err, wire_err_reason(cases[i].want));
            CHECK(e == WIRE_OK ? err[0] == '\0' : (err[0] != '\0' && strchr(err, '\n') == NULL),
                  "v%d %s: error text \"%s\"", proto, cases[i].name, err);
            if (e == WIRE_OK && e == cases[i].want) {
                struct tser t = {{{NULL, NULL}}, 1, {ST(1, 1000)}, 0, 0, 0};
                memcpy(t.l, cases[i].l, sizeof(struct tlabel) * (size_t)(nl < MAXL ? nl : MAXL));
                check_series(cases[i].name, 0, &r.series[0], &t);
            }
        }
    }

    /* 100 000 labels in one series, both protocols: rejected at the limit. */
    static struct tlabel many[100000];
    static char names[100000][8];
    for (int i = 0; i < 100000; i++) {
        snprintf(names[i], sizeof names[i], "l%d", i);
        many[i] = (struct tlabel){names[i], "v"};
    }
    for (int proto = 1; proto <= 2; proto++) {
        build_series(&b, (enum wire_proto)proto, many, 100000);
        struct wire_request r;
        enum wire_err e =
            wire_decode_write_raw(d, (enum wire_proto)proto, b.p, b.len, NULL, &r, err, sizeof err);
        CHECK(e == WIRE_ERR_TOO_MANY_LABELS, "v%d 100000 labels: %s (%s)", proto,
              wire_err_reason(e), err);
    }
    tb_free(&b);
}

/* Malformed and limit cases -------------------------------------------------------- */

struct ecase {
    const char *name;
    enum wire_proto proto;
    const char *raw; /* raw protobuf; NULL when built by `build` */
    size_t rawlen;
    void (*build)(struct tb *);
    enum wire_err want;
    uint32_t want_series; /* checked when want == WIRE_OK */
};

#define RAW(s) s, sizeof(s) - 1, NULL

static void b_label_too_far(struct tb *b)
{
    /* TimeSeries { Label { name: length 100, 3 bytes } } */
    tb_raw(b,
           "\x0a\x07\x0a\x05\x0a\x64"
           "abc",
           9);
}

static void b_histogram_bad_packed(struct tb *b)
{
    struct tb ts = {0}, h = {0}, lab = {0};
    tb_str(&lab, 1, "a");
    tb_str(&lab, 2, "b");
    tb_msg(&ts, 1, &lab);
    tb_bytes(&h, 10, "abc", 3); /* packed doubles, 3 bytes */
    tb_msg(&ts, 4, &h);
    tb_msg(b, 1, &ts);
    tb_free(&ts);
    tb_free(&h);
    tb_free(&lab);
}

static void b_histogram_sum_varint(struct tb *b)
{
    tb_raw(b,
           "\x0a\x0c\x0a\x06\x0a\x01"
           "a\x12\x01"
           "b\x22\x02\x18\x01",
           14);
}

static void b_histogram_deep_bad(struct tb *b)
{
    /* Histogram { positive_spans { offset as fixed64 } } */
    tb_raw(b,
           "\x0a\x15\x0a\x06\x0a\x01"
           "a\x12\x01"
           "b\x22\x0b\x5a\x09\x09"
           "12345678",
           23);
}

static void b_exemplar_bad_label(struct tb *b)
{
    tb_raw(b,
           "\x0a\x0e\x0a\x06\x0a\x01"
           "a\x12\x01"
           "b\x1a\x04\x0a\x02\x08\x01",
           16);
}

static void b_many_series(struct tb *b)
{
    for (int i = 0; i < 3; i++)
        tb_raw(b,
               "\x0a\x08\x0a\x06\x0a\x01"
               "a\x12\x01"
               "b",
               10);
}

static void b_two_series(struct tb *b)
{
    for (int i = 0; i < 2; i++)
        tb_raw(b,
               "\x0a\x08\x0a\x06\x0a\x01"
               "a\x12\x01"
               "b",
               10);
}

static void b_v1_as_v2(struct tb *b)
{
    struct tser t = node_series;
    size_t len;
    uint8_t *pb = pack_v1(&t, 1, 1, &len);
    tb_raw(b, pb, len);
    free(pb);
}

static void b_v2_as_v1(struct tb *b)
{
    struct tser t = node_series;
    size_t len;
    uint8_t *pb = pack_v2(&t, 1, V2_METADATA, &len);
    tb_raw(b, pb, len);
    free(pb);
}

/* v2 helpers: symbols "", "a", "b", then one series with the given body. */
static void v2_with_series(struct tb *b, const struct tb *ts)
{
    tb_str(b, 4, "");
    tb_str(b, 4, "a");
    tb_str(b, 4, "b");
    tb_msg(b, 5, ts);
}

/* labels_refs (1,2) packed and one float sample. */
static void v2_base_series(struct tb *ts)
{
    struct tb smp = {0};
    tb_bytes(ts, 1, "\x01\x02", 2);
    tb_fixed64(&smp, 1, bits_of(1));
    tb_msg(ts, 2, &smp);
    tb_free(&smp);
}

static void b_v2_ref_out_of_range(struct tb *b)
{
    struct tb ts = {0}, smp = {0};
    tb_bytes(&ts, 1, "\x01\x03", 2);
    tb_fixed64(&smp, 1, bits_of(1));
    tb_msg(&ts, 2, &smp);
    v2_with_series(b, &ts);
    tb_free(&ts);
    tb_free(&smp);
}

static void b_v2_huge_ref(struct tb *b)
{
    struct tb ts = {0}, smp = {0};
    tb_tag(&ts, 1, 0);
    tb_varint(&ts, 1);
    tb_tag(&ts, 1, 0);
    tb_varint(&ts, UINT64_MAX);
    tb_fixed64(&smp, 1, bits_of(1));
    tb_msg(&ts, 2, &smp);
    v2_with_series(b, &ts);
    tb_free(&ts);
    tb_free(&smp);
}

static void b_v2_odd_refs(struct tb *b)
{
    struct tb ts = {0}, smp = {0};
    tb_bytes(&ts, 1, "\x01\x02\x01", 3);
    tb_fixed64(&smp, 1, bits_of(1));
    tb_msg(&ts, 2, &smp);
    v2_with_series(b, &ts);
    tb_free(&ts);
    tb_free(&smp);
}

static void b_v2_sym0_not_empty(struct tb *b)
{
    struct tb ts = {0};
    v2_base_series(&ts);
    tb_str(b, 4, "x");
    tb_str(b, 4, "a");
    tb_str(b, 4, "b");
    tb_msg(b, 5, &ts);
    tb_free(&ts);
}

static void b_v2_no_symbols(struct tb *b)
{
    struct tb ts = {0};
    v2_base_series(&ts);
    tb_msg(b, 5, &ts);
    tb_free(&ts);
}

static void b_v2_neither(struct tb *b)
{
    struct tb ts = {0};
    tb_bytes(&ts, 1, "\x01\x02", 2);
    v2_with_series(b, &ts);
    tb_free(&ts);
}

static void b_v2_exemplar_only(struct tb *b)
{
    struct tb ts = {0}, ex = {0};
    tb_bytes(&ts, 1, "\x01\x02", 2);
    tb_bytes(&ex, 1, "\x01\x02", 2);
    tb_msg(&ts, 4, &ex);
    v2_with_series(b, &ts);
    tb_free(&ts);
    tb_free(&ex);
}

static void b_v2_both(struct tb *b)
{
    struct tb ts = {0}, h = {0};
    v2_base_series(&ts);
    tb_fixed64(&h, 3, bits_of(1));
    tb_msg(&ts, 3, &h);
    v2_with_series(b, &ts);
    tb_free(&ts);
    tb_free(&h);
}

static void b_v2_histogram_only(struct tb *b)
{
    struct tb ts = {0}, h = {0};
    tb_bytes(&ts, 1, "\x01\x02", 2);
    tb_fixed64(&h, 3, SAMPLE_STALE_BITS);
    tb_msg(&ts, 3, &h);
    v2_with_series(b, &ts);
    tb_free(&ts);
    tb_free(&h);
}

static void b_v2_exemplar_bad_ref(struct tb *b)
{
    struct tb ts = {0}, ex = {0};
    v2_base_series(&ts);
    tb_bytes(&ex, 1, "\x01\x07", 2);
    tb_msg(&ts, 4, &ex);
    v2_with_series(b, &ts);
    tb_free(&ts);
    tb_free(&ex);
}

static void b_v2_exemplar_odd(struct tb *b)
{
    struct tb ts = {0}, ex = {0};
    v2_base_series(&ts);
    tb_tag(&ex, 1, 0);
    tb_varint(&ex, 1);
    tb_msg(&ts, 4, &ex);
    v2_with_series(b, &ts);
    tb_free(&ts);
    tb_free(&ex);
}

/* found by fuzzing: a packed refs span running past the exemplar */
static void b_v2_exemplar_refs_past_end(struct tb *b)
{
    struct tb ts = {0}, ex = {0};
    v2_base_series(&ts);
    tb_raw(&ex, "\x0a\x05\x01", 3);
    tb_msg(&ts, 4, &ex);
    v2_with_series(b, &ts);
    tb_free(&ts);
    tb_free(&ex);
}

static void b_v2_metadata_bad_ref(struct tb *b)
{
    struct tb ts = {0}, md = {0};
    v2_base_series(&ts);
    tb_tag(&md, 3, 0);
    tb_varint(&md, 3);
    tb_msg(&ts, 5, &md);
    v2_with_series(b, &ts);
    tb_free(&ts);
    tb_free(&md);
}

static void b_v2_field6(struct tb *b)
{
    struct tb ts = {0};
    v2_base_series(&ts);
    tb_tag(&ts, 6, 0);
    tb_varint(&ts, 1700000000000);
    tb_bytes(&ts, 6, "xy", 2);
    v2_with_series(b, &ts);
    tb_free(&ts);
}

static void b_v2_refs_fixed64(struct tb *b)
{
    struct tb ts = {0};
    v2_base_series(&ts);
    tb_fixed64(&ts, 1, 1);
    v2_with_series(b, &ts);
    tb_free(&ts);
}

static void b_v2_refs_truncated(struct tb *b)
{
    struct tb ts = {0};
    v2_base_series(&ts);
    tb_bytes(&ts, 1, "\x80", 1);
    v2_with_series(b, &ts);
    tb_free(&ts);
}

static void b_v2_start_ts_wrong(struct tb *b)
{
    struct tb ts = {0}, smp = {0};
    tb_bytes(&ts, 1, "\x01\x02", 2);
    tb_fixed64(&smp, 3, 1);
    tb_msg(&ts, 2, &smp);
    v2_with_series(b, &ts);
    tb_free(&ts);
    tb_free(&smp);
}

static const struct ecase ecases[] = {
    {"empty v1", WIRE_PROTO_V1, RAW(""), WIRE_OK, 0},
    {"empty v2", WIRE_PROTO_V2, RAW(""), WIRE_OK, 0},
    {"group start", WIRE_PROTO_V1, RAW("\x0b"), WIRE_ERR_PROTOBUF, 0},
    {"group end", WIRE_PROTO_V1, RAW("\x0c"), WIRE_ERR_PROTOBUF, 0},
    {"unknown field as group", WIRE_PROTO_V1, RAW("\x4b\x4c"), WIRE_ERR_PROTOBUF, 0},
    {"group in v2", WIRE_PROTO_V2, RAW("\x1b"), WIRE_ERR_PROTOBUF, 0},
    {"wire type 6", WIRE_PROTO_V1, RAW("\x0e"), WIRE_ERR_PROTOBUF, 0},
    {"wire type 7", WIRE_PROTO_V2, RAW("\x4f"), WIRE_ERR_PROTOBUF, 0},
    {"field number 0", WIRE_PROTO_V1, RAW("\x02\x00"), WIRE_ERR_PROTOBUF, 0},
    {"field number 2^29", WIRE_PROTO_V1, RAW("\x80\x80\x80\x80\x10\x00"), WIRE_ERR_PROTOBUF, 0},
    {"largest field number", WIRE_PROTO_V1, RAW("\xf8\xff\xff\xff\x0f\x00"), WIRE_OK, 0},
    {"truncated tag", WIRE_PROTO_V1, RAW("\x80"), WIRE_ERR_PROTOBUF, 0},
    {"series as varint", WIRE_PROTO_V1, RAW("\x08\x01"), WIRE_ERR_PROTOBUF, 0},
    {"series as fixed32", WIRE_PROTO_V1, RAW("\x0d\x00\x00\x00\x00"), WIRE_ERR_PROTOBUF, 0},
    {"11-byte varint", WIRE_PROTO_V1, RAW("\x48\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
     WIRE_ERR_PROTOBUF, 0},
    {"10-byte varint", WIRE_PROTO_V1, RAW("\x48\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), WIRE_OK,
     0},
    {"length past end", WIRE_PROTO_V1, RAW("\x0a\x05\x0a\x03"), WIRE_ERR_PROTOBUF, 0},
    {"huge length", WIRE_PROTO_V1, RAW("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
     WIRE_ERR_PROTOBUF, 0},
    {"truncated fixed64", WIRE_PROTO_V1, RAW("\x49\x01\x02"), WIRE_ERR_PROTOBUF, 0},
    {"truncated fixed32", WIRE_PROTO_V1, RAW("\x4d\x01\x02"), WIRE_ERR_PROTOBUF, 0},
    {"label name past end", WIRE_PROTO_V1, NULL, 0, b_label_too_far, WIRE_ERR_PROTOBUF, 0},
    {"label name as varint", WIRE_PROTO_V1, RAW("\x0a\x04\x0a\x02\x08\x01"), WIRE_ERR_PROTOBUF, 0},
    {"sample value as varint", WIRE_PROTO_V1, RAW("\x0a\x04\x12\x02\x08\x01"), WIRE_ERR_PROTOBUF,
     0},
    {"sample timestamp as fixed64", WIRE_PROTO_V1,
     RAW("\x0a\x0b\x12\x09\x11\x01\x02\x03\x04\x05\x06\x07\x08"), WIRE_ERR_PROTOBUF, 0},
    {"sample value as fixed32", WIRE_PROTO_V1,
     RAW("\x0a\x0b\x12\x09\x0d\x00\x00\x80\x3f\x10\x01\x00\x00"), WIRE_ERR_PROTOBUF, 0},
    {"sample value truncated", WIRE_PROTO_V1, RAW("\x0a\x04\x12\x02\x09\x00"), WIRE_ERR_PROTOBUF,
     0},
    {"histogram packed doubles of 3 bytes", WIRE_PROTO_V1, NULL, 0, b_histogram_bad_packed,
     WIRE_ERR_PROTOBUF, 0},
    {"histogram sum as varint", WIRE_PROTO_V1, NULL, 0, b_histogram_sum_varint, WIRE_ERR_PROTOBUF,
     0},
    {"bucket span offset as fixed64", WIRE_PROTO_V1, NULL, 0, b_histogram_deep_bad,
     WIRE_ERR_PROTOBUF, 0},
    {"exemplar label name as varint", WIRE_PROTO_V1, NULL, 0, b_exemplar_bad_label,
     WIRE_ERR_PROTOBUF, 0},
    {"metadata as varint", WIRE_PROTO_V1, RAW("\x18\x01"), WIRE_ERR_PROTOBUF, 0},
    {"metadata name as varint", WIRE_PROTO_V1, RAW("\x1a\x02\x10\x01"), WIRE_ERR_PROTOBUF, 0},
    {"metadata only", WIRE_PROTO_V1, RAW("\x1a\x00\x1a\x02\x08\x01"), WIRE_OK, 0},
    {"reserved field 2, any type", WIRE_PROTO_V1,
     RAW("\x10\x05\x12\x01x\x15"
         "abcd"),
     WIRE_OK, 0},
    {"empty series", WIRE_PROTO_V1, RAW("\x0a\x00"), WIRE_ERR_INVALID_LABELS, 0},
    {"two series", WIRE_PROTO_V1, NULL, 0, b_two_series, WIRE_OK, 2},
    {"three series over limit 2", WIRE_PROTO_V1, NULL, 0, b_many_series, WIRE_ERR_TOO_MANY_SERIES,
     0},
    {"v1 body as v2", WIRE_PROTO_V2, NULL, 0, b_v1_as_v2, WIRE_OK, 0},
    {"v2 body as v1", WIRE_PROTO_V1, NULL, 0, b_v2_as_v1, WIRE_OK, 0},
    {"v2 ref out of range", WIRE_PROTO_V2, NULL, 0, b_v2_ref_out_of_range, WIRE_ERR_INVALID_REF, 0},
    {"v2 ref 2^64-1", WIRE_PROTO_V2, NULL, 0, b_v2_huge_ref, WIRE_ERR_INVALID_REF, 0},
    {"v2 odd refs", WIRE_PROTO_V2, NULL, 0, b_v2_odd_refs, WIRE_ERR_INVALID_REF, 0},
    {"v2 symbols[0] not empty", WIRE_PROTO_V2, NULL, 0, b_v2_sym0_not_empty, WIRE_ERR_INVALID_REF,
     0},
    {"v2 refs without symbols", WIRE_PROTO_V2, NULL, 0, b_v2_no_symbols, WIRE_ERR_INVALID_REF, 0},
    {"v2 neither samples nor histograms", WIRE_PROTO_V2, NULL, 0, b_v2_neither,
     WIRE_ERR_INVALID_SERIES, 0},
    {"v2 exemplar only", WIRE_PROTO_V2, NULL, 0, b_v2_exemplar_only, WIRE_ERR_INVALID_SERIES, 0},
    {"v2 samples and histograms", WIRE_PROTO_V2, NULL, 0, b_v2_both, WIRE_ERR_INVALID_SERIES, 0},
    {"v2 stale histogram only", WIRE_PROTO_V2, NULL, 0, b_v2_histogram_only, WIRE_OK, 1},
    {"v2 exemplar ref out of range", WIRE_PROTO_V2, NULL, 0, b_v2_exemplar_bad_ref,
     WIRE_ERR_INVALID_REF, 0},
    {"v2 exemplar refs past end", WIRE_PROTO_V2, NULL, 0, b_v2_exemplar_refs_past_end,
     WIRE_ERR_PROTOBUF, 0},
    {"v2 exemplar odd refs", WIRE_PROTO_V2, NULL, 0, b_v2_exemplar_odd, WIRE_ERR_INVALID_REF, 0},
    {"v2 metadata help_ref out of range", WIRE_PROTO_V2, NULL, 0, b_v2_metadata_bad_ref,
     WIRE_ERR_INVALID_REF, 0},
    {"v2 reserved field 6 skipped", WIRE_PROTO_V2, NULL, 0, b_v2_field6, WIRE_OK, 1},
    {"v2 labels_refs as fixed64", WIRE_PROTO_V2, NULL, 0, b_v2_refs_fixed64, WIRE_ERR_PROTOBUF, 0},
    {"v2 packed refs truncated", WIRE_PROTO_V2, NULL, 0, b_v2_refs_truncated, WIRE_ERR_PROTOBUF, 0},
    {"v2 start_timestamp as fixed64", WIRE_PROTO_V2, NULL, 0, b_v2_start_ts_wrong,
     WIRE_ERR_PROTOBUF, 0},
    {"v2 symbols as varint", WIRE_PROTO_V2, RAW("\x20\x01"), WIRE_ERR_PROTOBUF, 0},
    {"v2 symbols only", WIRE_PROTO_V2, RAW("\x22\x00\x22\x01x"), WIRE_OK, 0},
    {"v2 series as varint after symbols", WIRE_PROTO_V2, RAW("\x22\x00\x28\x01"), WIRE_ERR_PROTOBUF,
     0},
};

static void test_errors(struct wire_decoder *d)
{
    const struct wire_limits lim = {1 << 20, 2, 64, 1024, 4096};
    struct tb b = {0};
    char err[256];
    for (size_t i = 0; i < sizeof ecases / sizeof ecases[0]; i++) {
        const struct ecase *c = &ecases[i];
        tb_reset(&b);
        if (c->raw != NULL)
            tb_raw(&b, c->raw, c->rawlen);
        else
            c->build(&b);
        struct wire_request r;
        memset(&r, 0xa5, sizeof r);
        err[0] = '\0';
        /* a fresh decoder first (no arrays yet), then the shared one */
        struct wire_decoder *fresh = wire_decoder_create(1 << 20);
        enum wire_err e0 =
            wire_decode_write_raw(fresh, c->proto, b.p, b.len, &lim, &r, err, sizeof err);
        wire_decoder_destroy(fresh);
        memset(&r, 0xa5, sizeof r);
        err[0] = '\0';
        enum wire_err e = wire_decode_write_raw(d, c->proto, b.p, b.len, &lim, &r, err, sizeof err);
        CHECK(e0 == e, "%s: fresh decoder %s, used one %s", c->name, wire_err_reason(e0),
              wire_err_reason(e));
        CHECK(e == c->want, "%s: got %s (%s) want %s", c->name, wire_err_reason(e), err,
              wire_err_reason(c->want));
        if (e == WIRE_OK && c->want == WIRE_OK)
            CHECK(r.nseries == c->want_series, "%s: %zu series want %u", c->name, r.nseries,
                  c->want_series);
        if (e != WIRE_OK) {
            /* outputs untouched, one line of text */
            CHECK(r.nseries == (size_t)0xa5a5a5a5a5a5a5a5ull, "%s: output touched on error",
                  c->name);
            CHECK(err[0] != '\0' && strchr(err, '\n') == NULL, "%s: error text \"%s\"", c->name,
                  err);
        }
        /* The same body through snappy must give the same answer. */
        void *z = NULL;
        size_t zcap = 0, zlen;
        if (wire_snappy_compress(b.p, b.len, &z, &zcap, &zlen) == 0) {
            enum wire_err e2 = wire_decode_write(d, c->proto, z, zlen, &lim, &r, err, sizeof err);
            CHECK(e2 == e, "%s: snappy path %s vs raw %s", c->name, wire_err_reason(e2),
                  wire_err_reason(e));
        }
        free(z);
    }
    tb_free(&b);
}

static void test_snappy(void)
{
    struct wire_decoder *d = wire_decoder_create(1 << 20);
    struct wire_limits lim;
    wire_limits_default(&lim);
    char err[256];
    struct wire_request r;
    static const struct {
        const char *name;
        const char *body;
        size_t len;
        enum wire_err want;
    } cases[] = {
        {"empty body", "", 0, WIRE_ERR_SNAPPY},
        {"declared 4 GiB", "\xff\xff\xff\xff\x0f\x00\x01", 7, WIRE_ERR_TOO_LARGE},
        {"preamble overflow", "\xff\xff\xff\xff\xff\x01", 6, WIRE_ERR_SNAPPY},
        {"truncated preamble", "\xff", 1, WIRE_ERR_SNAPPY},
        {"corrupt", "\x0a\xff\xff\xff", 4, WIRE_ERR_SNAPPY},
        {"copy before start", "\x04\x05\x00", 3, WIRE_ERR_SNAPPY},
        {"short output",
         "\x05\x00"
         "a",
         3, WIRE_ERR_SNAPPY},
        {"framed magic", "\xff\x06\x00\x00sNaPpY\x01\x05\x00\x00", 14, WIRE_ERR_SNAPPY},
        {"uncompressed protobuf",
         "\x0a\x08\x0a\x06\x0a\x01"
         "a\x12\x01"
         "b",
         10, WIRE_ERR_SNAPPY},
        {"declared 1 MiB from 4 bytes", "\x80\x80\x40\x00", 4, WIRE_ERR_SNAPPY},
        {"zero length", "\x00", 1, WIRE_OK},
        {"literal", "\x02\x04\x1a\x00", 4, WIRE_OK}, /* metadata {} */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wire_decoder *fresh = wire_decoder_create(1 << 20);
        err[0] = '\0';
        enum wire_err e = wire_decode_write(fresh, WIRE_PROTO_V1, cases[i].body, cases[i].len, &lim,
                                            &r, err, sizeof err);
        CHECK(e == cases[i].want, "snappy %s: got %s (%s)", cases[i].name, wire_err_reason(e), err);
        if (e == WIRE_ERR_TOO_LARGE) {
            CHECK(strstr(err, "4294967295") != NULL && strstr(err, "33554432") != NULL,
                  "message: %s", err);
            /* nothing was allocated for the declared length */
            CHECK(wire_decoder_trim(fresh, SIZE_MAX) == 0, "decoder holds memory after TOO_LARGE");
        }
        if (strstr(cases[i].name, "declared") != NULL) /* rejected before allocating */
            CHECK(wire_decoder_trim(fresh, SIZE_MAX) <= 1, "snappy %s: allocated %zu bytes",
                  cases[i].name, wire_decoder_trim(fresh, SIZE_MAX));
        if (strcmp(cases[i].name, "framed magic") == 0)
            CHECK(strstr(err, "framed") != NULL, "framed message: %s", err);
        wire_decoder_destroy(fresh);
    }

    /* declared length just over a small limit */
    struct wire_limits small = lim;
    small.max_decompressed_bytes = 3;
    enum wire_err e = wire_decode_write(d, WIRE_PROTO_V1, "\x04\x0c\x1a\x00\x1a\x00", 6, &small, &r,
                                        err, sizeof err);
    CHECK(e == WIRE_ERR_TOO_LARGE, "4 > 3 bytes: %s", wire_err_reason(e));
    e = wire_decode_write_raw(d, WIRE_PROTO_V1, "\x1a\x00\x1a\x00", 4, &small, &r, err, sizeof err);
    CHECK(e == WIRE_ERR_TOO_LARGE, "raw 4 > 3 bytes: %s", wire_err_reason(e));

    /* every proper prefix of a compressed request is corrupt; single-byte
     * corruptions never crash */
    struct tser t[2] = {node_series, node_series};
    size_t len, zlen, zcap = 0;
    uint8_t *pb = pack_v1(t, 2, 0, &len);
    void *z = NULL;
    CHECK(wire_snappy_compress(pb, len, &z, &zcap, &zlen) == 0, "compress");
    for (size_t k = 0; k < zlen; k++) {
        e = wire_decode_write(d, WIRE_PROTO_V1, z, k, NULL, &r, err, sizeof err);
        CHECK(e == WIRE_ERR_SNAPPY, "snappy prefix %zu/%zu: %s", k, zlen, wire_err_reason(e));
    }
    uint8_t *mut = malloc(zlen);
    for (size_t k = 0; k < zlen; k++) {
        memcpy(mut, z, zlen);
        mut[k] ^= 0x5a;
        (void)wire_decode_write(d, WIRE_PROTO_V1, mut, zlen, NULL, &r, err, sizeof err);
    }
    free(mut);

    /* helpers: uncompress into a caller buffer, reused */
    void *buf = NULL;
    size_t cap = 0, n;
    e = wire_snappy_uncompress(z, zlen, len, &buf, &cap, &n, err, sizeof err);
    CHECK(e == WIRE_OK && n == len && memcmp(buf, pb, len) == 0, "uncompress: %s", err);
    e = wire_snappy_uncompress(z, zlen, len - 1, &buf, &cap, &n, err, sizeof err);
    CHECK(e == WIRE_ERR_TOO_LARGE, "uncompress over max: %s", wire_err_reason(e));
    /* the best real ratio (runs of one byte, ~21:1) passes the plausibility
     * check on the declared length */
    size_t zeros_len = 1 << 20;
    uint8_t *zeros = calloc(zeros_len, 1);
    void *zz = NULL;
    size_t zzcap = 0, zzlen;
    CHECK(wire_snappy_compress(zeros, zeros_len, &zz, &zzcap, &zzlen) == 0, "compress zeros");
    e = wire_snappy_uncompress(zz, zzlen, zeros_len, &buf, &cap, &n, err, sizeof err);
    CHECK(e == WIRE_OK && n == zeros_len && memcmp(buf, zeros, n) == 0,
          "zeros (%zu -> %zu bytes): %s", zeros_len, zzlen, err);
    free(zz);
    free(zeros);
    free(buf);
    free(z);
    free(pb);
    wire_decoder_destroy(d);
}

/* Every prefix of valid messages: an error or a valid shorter result. */
static void test_truncation(struct wire_decoder *d)
{
    struct tser t[3] = {rt_cases[1].s[0], rt_cases[2].s[1], node_series};
    t[1].ns = 1;
    t[1].s[0] = (struct sample){5, 5};
    t[1].nhist = 0;
    t[1].nstale = 0;
    t[1].nex = 1;
    char err[256];
    for (int proto = 1; proto <= 2; proto++) {
        size_t len;
        uint8_t *pb = proto == 1 ? pack_v1(t, 3, 1, &len) : pack_v2(t, 3, V2_METADATA, &len);
        size_t ok = 0;
        for (size_t k = 0; k <= len; k++) {
            /* exact-size copy so ASan sees any read past the prefix */
            uint8_t *cut = malloc(k ? k : 1);
            memcpy(cut, pb, k);
            struct wire_request r;
            enum wire_err e =
                wire_decode_write_raw(d, (enum wire_proto)proto, cut, k, NULL, &r, err, sizeof err);
            CHECK(e == WIRE_OK || e == WIRE_ERR_PROTOBUF, "v%d prefix %zu/%zu: %s (%s)", proto, k,
                  len, wire_err_reason(e), err);
            if (e == WIRE_OK) {
                ok++;
                CHECK(r.nseries <= 3, "v%d prefix %zu: %zu series", proto, k, r.nseries);
                for (size_t i = 0; i < r.nseries; i++)
                    check_series("prefix", i, &r.series[i], &t[i]);
            }
            free(cut);
        }
        CHECK(ok >= 2, "v%d: only %zu prefixes decoded", proto, ok);
        free(pb);
    }
}

/* The arena cap is a hard limit, and the decoder stays usable after it. */
static void test_arena(void)
{
    struct wire_decoder *d = wire_decoder_create(16384);
    struct tser many[8];
    for (int i = 0; i < 8; i++)
        many[i] = node_series;
    size_t len;
    uint8_t *pb = pack_v1(many, 8, 0, &len);
    struct tb big = {0};
    for (int i = 0; i < 40; i++)
        tb_raw(&big, pb, len); /* 320 series: concatenated requests merge */
    char err[256];
    struct wire_request r;
    for (int round = 0; round < 3; round++) {
        enum wire_err e =
            wire_decode_write_raw(d, WIRE_PROTO_V1, big.p, big.len, NULL, &r, err, sizeof err);
        CHECK(e == WIRE_ERR_NOMEM, "arena cap not enforced: %s", wire_err_reason(e));
        CHECK(wire_decoder_trim(d, SIZE_MAX) <= 16384, "arena above its cap");
        e = wire_decode_write_raw(d, WIRE_PROTO_V1, pb, len, NULL, &r, err, sizeof err);
        CHECK(e == WIRE_OK && r.nseries == 8, "decoder unusable after NOMEM: %s", err);
        if (e == WIRE_OK)
            check_request("after nomem", &r, many, 8, 0);
    }
    /* v2 symbols count against the cap too */
    free(pb);
    pb = pack_v2(many, 8, 0, &len);
    tb_reset(&big);
    tb_raw(&big, pb, len);
    for (int i = 0; i < 2000; i++)
        tb_raw(&big, "\x22\x00", 2);
    enum wire_err e =
        wire_decode_write_raw(d, WIRE_PROTO_V2, big.p, big.len, NULL, &r, err, sizeof err);
    CHECK(e == WIRE_ERR_NOMEM, "v2 symbols: %s", wire_err_reason(e));
    wire_decoder_destroy(d);

    d = wire_decoder_create(0);
    e = wire_decode_write_raw(d, WIRE_PROTO_V1, pb, 0, NULL, &r, err, sizeof err);
    CHECK(e == WIRE_OK && r.nseries == 0, "cap 0, empty request: %s", wire_err_reason(e));
    free(pb);
    pb = pack_v1(many, 1, 0, &len);
    e = wire_decode_write_raw(d, WIRE_PROTO_V1, pb, len, NULL, &r, err, sizeof err);
    CHECK(e == WIRE_ERR_NOMEM, "cap 0, one series: %s", wire_err_reason(e));
    wire_decoder_destroy(d);
    wire_decoder_destroy(NULL);
    free(pb);
    tb_free(&big);
}

/* Results of one call stay valid while another decoder works; trim frees. */
static void test_reuse(void)
{
    struct wire_decoder *d = wire_decoder_create(1 << 20);
    char err[256];
    struct wire_request r;
    size_t len;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < rt_ncases; i++) {
            uint8_t *pb = pack_v1(rt_cases[i].s, rt_cases[i].n, rt_cases[i].nmeta, &len);
            enum wire_err e =
                wire_decode_write_raw(d, WIRE_PROTO_V1, pb, len, NULL, &r, err, sizeof err);
            CHECK(e == WIRE_OK, "reuse %s: %s", rt_cases[i].name, err);
            if (e == WIRE_OK)
                check_request(rt_cases[i].name, &r, rt_cases[i].s, rt_cases[i].n,
                              rt_cases[i].nmeta);
            free(pb);
        }
    CHECK(wire_decoder_trim(d, SIZE_MAX) > 0, "decoder holds nothing after use");
    CHECK(wire_decoder_trim(d, 0) == 0, "trim(0) kept memory");
    uint8_t *pb = pack_v1(rt_cases[0].s, rt_cases[0].n, 0, &len);
    enum wire_err e = wire_decode_write_raw(d, WIRE_PROTO_V1, pb, len, NULL, &r, err, sizeof err);
    CHECK(e == WIRE_OK && r.nseries == 3, "decode after trim: %s", err);
    free(pb);
    wire_decoder_destroy(d);
}

static void test_reasons(void)
{
    const char *seen[WIRE_ERR_COUNT];
    for (int i = 0; i < WIRE_ERR_COUNT; i++) {
        seen[i] = wire_err_reason((enum wire_err)i);
        CHECK(strcmp(seen[i], "unknown") != 0, "no reason for %d", i);
        for (const char *p = seen[i]; *p; p++)
            CHECK((*p >= 'a' && *p <= 'z') || *p == '_', "reason %s not snake_case", seen[i]);
        for (int k = 0; k < i; k++)
            CHECK(strcmp(seen[i], seen[k]) != 0, "reason %s repeated", seen[i]);
    }
    CHECK(strcmp(wire_err_reason(WIRE_ERR_TOO_LARGE), "too_large") == 0, "too_large");
}

/* Seed corpus for tests/fuzz/fuzz_wire_write.c ------------------------------------ */

static void write_seed(const char *dir, const char *name, unsigned mode, const void *body,
                       size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return;
    }
    uint8_t m = (uint8_t)mode;
    fwrite(&m, 1, 1, f);
    fwrite(body, 1, len, f);
    fclose(f);
}

static void write_seeds(const char *dir)
{
    struct tser t[3] = {rt_cases[1].s[0], rt_cases[2].s[1], node_series};
    size_t len, zlen, zcap = 0;
    void *z = NULL;
    uint8_t *pb = pack_v1(t, 3, 1, &len);
    write_seed(dir, "v1_raw", 0, pb, len);
    wire_snappy_compress(pb, len, &z, &zcap, &zlen);
    write_seed(dir, "v1_snappy", 2, z, zlen);
    free(pb);
    t[1].nhist = 0;
    t[1].nstale = 0;
    t[1].ns = 1;
    t[1].nex = 1;
    pb = pack_v2(t, 3, V2_METADATA | V2_MIXED_REFS, &len);
    write_seed(dir, "v2_raw", 1, pb, len);
    wire_snappy_compress(pb, len, &z, &zcap, &zlen);
    write_seed(dir, "v2_snappy", 3, z, zlen);
    free(pb);
    struct tser h = rt_cases[2].s[1];
    pb = pack_v2(&h, 1, V2_SYMBOLS_LAST, &len);
    write_seed(dir, "v2_histogram_symbols_last", 1, pb, len);
    free(pb);
    pb = pack_v1(&h, 1, 0, &len);
    write_seed(dir, "v1_histogram", 0, pb, len);
    write_seed(dir, "v1_histogram_small_limits", 4, pb, len);
    free(pb);
    free(z);
    /* 20 labels in reverse order: the qsort path */
    static const char *names[20] = {"t", "s", "r", "q", "p", "o", "n", "m", "l", "k",
                                    "j", "i", "h", "g", "f", "e", "d", "c", "b", "a"};
    struct tlabel rev[20];
    for (int i = 0; i < 20; i++)
        rev[i] = (struct tlabel){names[i], "v"};
    struct tb b = {0};
    build_series(&b, WIRE_PROTO_V1, rev, 20);
    write_seed(dir, "v1_reversed_labels", 0, b.p, b.len);
    build_series(&b, WIRE_PROTO_V2, rev, 20);
    write_seed(dir, "v2_reversed_labels", 1, b.p, b.len);
    tb_free(&b);
}

int main(void)
{
    struct wire_decoder *d = wire_decoder_create(16 << 20);
    build_rt_cases();
    test_roundtrip_v1(d);
    test_roundtrip_v2(d);
    test_v1_unknown_and_order(d);
    test_encoder(d);
    test_labels(d);
    test_errors(d);
    test_snappy();
    test_truncation(d);
    test_arena();
    test_reuse();
    test_reasons();
    wire_decoder_destroy(d);
    const char *seed_dir = getenv("WIRE_WRITE_SEED_DIR");
    if (seed_dir != NULL)
        write_seeds(seed_dir);
    return test_main_end("test_wire_write");
}
