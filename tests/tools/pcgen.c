/*
 * pcgen.c — writes remote-write request bodies, good and bad, to stdout.
 *
 * The end-to-end tests post these with curl to check promcast's status codes.
 * Messages are built with protobuf-c's generated code (an encoder independent
 * of promcast's own), so malformed-but-encodable cases (duplicate or empty
 * label sets, bad v2 refs) can be made; byte-level damage (truncation,
 * corrupt or framed snappy, huge declared lengths) is applied afterwards.
 *
 *   pcgen KIND [N]
 *
 * KIND: v1 v2 v1-stale v1-histogram v1-exemplar metadata-only empty-labels
 *       dup-labels many-labels truncated corrupt-snappy framed-snappy
 *       declared-4gib incompressible v2-bad-ref v2-odd-refs v2-no-samples
 *       raw-v1 (uncompressed protobuf)
 * N: series count (v1, v2), label count (many-labels), bytes (incompressible).
 */
#include "wire_write.h"

#include "io/prometheus/write/v2/types.pb-c.h"
#include "prometheus/remote.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void emit(const void *buf, size_t len)
{
    if (fwrite(buf, 1, len, stdout) != len) {
        perror("pcgen: write");
        exit(1);
    }
}

static void emit_snappy(const void *pb, size_t len)
{
    void *buf = NULL;
    size_t cap = 0, out = 0;
    if (wire_snappy_compress(pb, len, &buf, &cap, &out) < 0) {
        fprintf(stderr, "pcgen: snappy failed\n");
        exit(1);
    }
    emit(buf, out);
    free(buf);
}

static uint8_t *pack_v1(Prometheus__WriteRequest *wr, size_t *len)
{
    *len = prometheus__write_request__get_packed_size(wr);
    uint8_t *b = malloc(*len ? *len : 1);
    prometheus__write_request__pack(wr, b);
    return b;
}

/* A v1 request with n series of node-exporter-like labels, one sample each.
 * `labels_per_series` overrides the label count (many-labels). */
struct v1_builder {
    Prometheus__WriteRequest wr;
    Prometheus__TimeSeries *ts;
    Prometheus__TimeSeries **tsp;
    Prometheus__Label *labels;
    Prometheus__Label **labelp;
    Prometheus__Sample *samples;
    Prometheus__Sample **samplep;
    char *strings;
};

static void v1_build(struct v1_builder *b, size_t n, size_t nlabels, double value)
{
    static const char *names[] = {"__name__", "cpu", "instance", "job", "mode"};
    prometheus__write_request__init(&b->wr);
    b->ts = calloc(n, sizeof *b->ts);
    b->tsp = calloc(n, sizeof *b->tsp);
    b->labels = calloc(n * nlabels, sizeof *b->labels);
    b->labelp = calloc(n * nlabels, sizeof *b->labelp);
    b->samples = calloc(n, sizeof *b->samples);
    b->samplep = calloc(n, sizeof *b->samplep);
    b->strings = calloc(n * nlabels, 64);
    int64_t t = now_ms();
    for (size_t i = 0; i < n; i++) {
        Prometheus__TimeSeries *ts = &b->ts[i];
        prometheus__time_series__init(ts);
        ts->n_labels = nlabels;
        ts->labels = &b->labelp[i * nlabels];
        for (size_t j = 0; j < nlabels; j++) {
            Prometheus__Label *l = &b->labels[i * nlabels + j];
            char *s = &b->strings[(i * nlabels + j) * 64];
            prometheus__label__init(l);
            if (nlabels <= 5) {
                l->name = (char *)names[j];
                if (j == 0)
                    snprintf(s, 64, "pcgen_metric");
                else
                    snprintf(s, 64, "v%zu", i);
            } else {
                /* many-labels: label names l000000.. (sorted), __name__ first */
                if (j == 0) {
                    l->name = "__name__";
                    snprintf(s, 64, "pcgen_many");
                } else {
                    snprintf(s, 32, "l%07zu", j);
                    l->name = s;
                    s += 32;
                    snprintf(s, 32, "v");
                }
            }
            l->value = s;
            ts->labels[j] = l;
        }
        prometheus__sample__init(&b->samples[i]);
        b->samples[i].value = value;
        b->samples[i].timestamp = t;
        b->samplep[i] = &b->samples[i];
        ts->n_samples = 1;
        ts->samples = &b->samplep[i];
        b->tsp[i] = ts;
    }
    b->wr.n_timeseries = n;
    b->wr.timeseries = b->tsp;
}

static void v1_free(struct v1_builder *b)
{
    free(b->ts);
    free(b->tsp);
    free(b->labels);
    free(b->labelp);
    free(b->samples);
    free(b->samplep);
    free(b->strings);
}

static double stale_nan(void)
{
    uint64_t bits = UINT64_C(0x7ff0000000000002);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static void gen_v1(size_t n, size_t nlabels, double value, bool compress, size_t truncate_to)
{
    struct v1_builder b;
    v1_build(&b, n, nlabels, value);
    size_t len;
    uint8_t *pb = pack_v1(&b.wr, &len);
    if (truncate_to && truncate_to < len)
        len = truncate_to;
    if (compress)
        emit_snappy(pb, len);
    else
        emit(pb, len);
    free(pb);
    v1_free(&b);
}

static void gen_v1_custom(const char *kind)
{
    Prometheus__WriteRequest wr = PROMETHEUS__WRITE_REQUEST__INIT;
    Prometheus__TimeSeries ts = PROMETHEUS__TIME_SERIES__INIT;
    Prometheus__TimeSeries *tsp[] = {&ts};
    Prometheus__Label l0 = PROMETHEUS__LABEL__INIT, l1 = PROMETHEUS__LABEL__INIT;
    Prometheus__Label *lp[] = {&l0, &l1};
    Prometheus__Sample s = PROMETHEUS__SAMPLE__INIT;
    Prometheus__Sample *sp[] = {&s};
    Prometheus__Histogram h = PROMETHEUS__HISTOGRAM__INIT;
    Prometheus__Histogram *hp[] = {&h};
    Prometheus__Exemplar ex = PROMETHEUS__EXEMPLAR__INIT;
    Prometheus__Exemplar *exp_[] = {&ex};
    Prometheus__MetricMetadata md = PROMETHEUS__METRIC_METADATA__INIT;
    Prometheus__MetricMetadata *mdp[] = {&md};

    l0.name = "__name__";
    l0.value = "pcgen_custom";
    l1.name = "job";
    l1.value = "pcgen";
    s.value = 1;
    s.timestamp = now_ms();
    ts.n_labels = 2;
    ts.labels = lp;
    ts.n_samples = 1;
    ts.samples = sp;
    wr.n_timeseries = 1;
    wr.timeseries = tsp;

    if (strcmp(kind, "empty-labels") == 0) {
        ts.n_labels = 0;
    } else if (strcmp(kind, "dup-labels") == 0) {
        l1.name = "__name__";
        l1.value = "again";
    } else if (strcmp(kind, "v1-histogram") == 0) {
        ts.n_samples = 0;
        h.count_case = PROMETHEUS__HISTOGRAM__COUNT_COUNT_INT;
        h.count_int = 3;
        h.sum = 4.5;
        h.schema = 0;
        h.timestamp = s.timestamp;
        ts.n_histograms = 1;
        ts.histograms = hp;
    } else if (strcmp(kind, "v1-exemplar") == 0) {
        ts.n_samples = 0;
        ex.value = 2;
        ex.timestamp = s.timestamp;
        ts.n_exemplars = 1;
        ts.exemplars = exp_;
    } else if (strcmp(kind, "metadata-only") == 0) {
        wr.n_timeseries = 0;
        md.type = PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGE;
        md.metric_family_name = "pcgen_custom";
        md.help = "A metric made by pcgen.";
        md.unit = "";
        wr.n_metadata = 1;
        wr.metadata = mdp;
    }
    size_t len;
    uint8_t *pb = pack_v1(&wr, &len);
    emit_snappy(pb, len);
    free(pb);
}

static void gen_v2(size_t n, const char *variant)
{
    Io__Prometheus__Write__V2__Request rq = IO__PROMETHEUS__WRITE__V2__REQUEST__INIT;
    size_t nsym = 4 + n;
    char **symbols = calloc(nsym, sizeof *symbols);
    char *symbuf = calloc(n, 32);
    symbols[0] = "";
    symbols[1] = "__name__";
    symbols[2] = "pcgen_v2_metric";
    symbols[3] = "instance";
    for (size_t i = 0; i < n; i++) {
        snprintf(symbuf + 32 * i, 32, "host-%zu", i);
        symbols[4 + i] = symbuf + 32 * i;
    }
    Io__Prometheus__Write__V2__TimeSeries *ts = calloc(n, sizeof *ts);
    Io__Prometheus__Write__V2__TimeSeries **tsp = calloc(n, sizeof *tsp);
    Io__Prometheus__Write__V2__Sample *s = calloc(n, sizeof *s);
    Io__Prometheus__Write__V2__Sample **sp = calloc(n, sizeof *sp);
    uint32_t *refs = calloc(n * 4, sizeof *refs);
    int64_t t = now_ms();
    for (size_t i = 0; i < n; i++) {
        io__prometheus__write__v2__time_series__init(&ts[i]);
        io__prometheus__write__v2__sample__init(&s[i]);
        s[i].value = (double)i;
        s[i].timestamp = t;
        sp[i] = &s[i];
        refs[4 * i + 0] = 1;
        refs[4 * i + 1] = 2;
        refs[4 * i + 2] = 3;
        refs[4 * i + 3] = (uint32_t)(4 + i);
        ts[i].n_labels_refs = 4;
        ts[i].labels_refs = &refs[4 * i];
        ts[i].n_samples = 1;
        ts[i].samples = &sp[i];
        tsp[i] = &ts[i];
    }
    if (strcmp(variant, "v2-bad-ref") == 0)
        refs[3] = (uint32_t)nsym + 10;
    else if (strcmp(variant, "v2-odd-refs") == 0)
        ts[0].n_labels_refs = 3;
    else if (strcmp(variant, "v2-no-samples") == 0)
        ts[0].n_samples = 0;
    rq.n_symbols = nsym;
    rq.symbols = symbols;
    rq.n_timeseries = n;
    rq.timeseries = tsp;
    size_t len = io__prometheus__write__v2__request__get_packed_size(&rq);
    uint8_t *pb = malloc(len ? len : 1);
    io__prometheus__write__v2__request__pack(&rq, pb);
    emit_snappy(pb, len);
    free(pb);
    free(symbols);
    free(symbuf);
    free(ts);
    free(tsp);
    free(s);
    free(sp);
    free(refs);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: pcgen KIND [N]\n");
        return 2;
    }
    const char *kind = argv[1];
    size_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;

    if (strcmp(kind, "v1") == 0) {
        gen_v1(n ? n : 10, 5, 42.0, true, 0);
    } else if (strcmp(kind, "raw-v1") == 0) {
        gen_v1(n ? n : 10, 5, 42.0, false, 0);
    } else if (strcmp(kind, "v1-stale") == 0) {
        gen_v1(n ? n : 1, 5, stale_nan(), true, 0);
    } else if (strcmp(kind, "many-labels") == 0) {
        gen_v1(1, n ? n : 100000, 1.0, true, 0);
    } else if (strcmp(kind, "truncated") == 0) {
        /* Cut inside the last series' sample: a length prefix runs past the end. */
        struct v1_builder b;
        v1_build(&b, 3, 5, 1.0);
        size_t len;
        uint8_t *pb = pack_v1(&b.wr, &len);
        emit_snappy(pb, len - 3);
        free(pb);
        v1_free(&b);
    } else if (strcmp(kind, "corrupt-snappy") == 0) {
        /* Declares 100 bytes, then a copy referring before the start. */
        static const uint8_t bad[] = {100, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        emit(bad, sizeof bad);
    } else if (strcmp(kind, "framed-snappy") == 0) {
        static const uint8_t framed[] = {0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59,
                                         0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
        emit(framed, sizeof framed);
    } else if (strcmp(kind, "declared-4gib") == 0) {
        /* Preamble varint 0xFFFFFFFF (4 GiB - 1), then a short literal. */
        static const uint8_t big[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x0c, 'h', 'e', 'l', 'l', 'o'};
        emit(big, sizeof big);
    } else if (strcmp(kind, "incompressible") == 0) {
        size_t len = n ? n : (20u << 20);
        uint8_t *b = malloc(len);
        uint64_t x = 88172645463325252ull;
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[i] = (uint8_t)x;
        }
        emit(b, len);
        free(b);
    } else if (strcmp(kind, "v2") == 0 || strncmp(kind, "v2-", 3) == 0) {
        gen_v2(n ? n : 10, kind);
    } else if (strcmp(kind, "empty-labels") == 0 || strcmp(kind, "dup-labels") == 0 ||
               strcmp(kind, "v1-histogram") == 0 || strcmp(kind, "v1-exemplar") == 0 ||
               strcmp(kind, "metadata-only") == 0) {
        gen_v1_custom(kind);
    } else {
        fprintf(stderr, "pcgen: unknown kind %s\n", kind);
        return 2;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
