/*
 * fuzz_wire_write.c — libFuzzer target for the remote-write decoder.
 *
 * Set FUZZ_WIRE_DEBUG=1 to print both label sets on a label mismatch.
 *
 * Input: one mode byte (bit 0: v2 instead of v1; bit 1: snappy block instead
 * of raw protobuf; bit 2: tiny limits and a 2 KiB arena so that short inputs
 * hit every limit), then the body. Without bit 2 the limits are still small
 * (1 MiB body, 1000 series, 32 labels, 1 MiB arena). On success the
 * result's invariants are checked (sorted, valid, bounded labels; totals),
 * the request is re-encoded with our encoder and decoded again (must give
 * the same series), and the protobuf bytes are also given to protobuf-c's
 * unpack as a reference:
 *
 * - both succeed: series, labels (after dropping empty values and sorting),
 *   sample bits, histogram/exemplar/metadata counts must agree;
 * - we accept and protobuf-c rejects, or we report WIRE_ERR_PROTOBUF and
 *   protobuf-c accepts: a disagreement on wire format, reported as a crash,
 *   except for the documented legitimate differences below.
 *
 * Legitimate differences (checked before comparing):
 * - protobuf-c strings are NUL-terminated C strings: labels with a NUL byte
 *   (valid UTF-8, kept by us and by Prometheus) are not compared;
 * - field numbers over 2^29 - 1 (the protobuf maximum): protobuf-c 1.4
 *   accepts field keys up to 32 bits, we reject them as malformed;
 * - keys and length prefixes longer than 5 bytes (non-minimal varints):
 *   protobuf-c rejects them, we (like Go's and gogo's generated code, so
 *   like Prometheus) accept up to 10 bytes; found with long_varints().
 * Validation errors (labels, refs, series shape, limits) are ours alone:
 * protobuf-c does not validate content, so no comparison is made then.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <io/prometheus/write/v2/types.pb-c.h>
#include <prometheus/remote.pb-c.h>

#include "wire_write.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_wire_write: %s: ", #cond);                                       \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct wire_decoder *dec, *dec_small, *dec2;
static struct wire_encoder *enc;
static void *raw;
static size_t rawcap;

static const struct wire_limits limits = {1 << 20, 1000, 32, 128, 256};
/* Tight limits and a 2 KiB arena, so short inputs reach every limit. */
static const struct wire_limits small_limits = {4096, 4, 4, 8, 16};

static uint64_t bits_of(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static bool span_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Invariants of a successful decode. */
static void check_result(const struct wire_request *r, enum wire_proto proto,
                         const struct wire_limits *lim)
{
    uint64_t ns = 0, nh = 0, nx = 0, nst = 0;
    FUZZ_ASSERT(r->nseries <= lim->max_series, "%zu series", r->nseries);
    for (size_t i = 0; i < r->nseries; i++) {
        const struct wire_series *s = &r->series[i];
        FUZZ_ASSERT(s->nlabels > 0 && s->nlabels <= lim->max_labels, "%u labels", s->nlabels);
        for (uint32_t k = 0; k < s->nlabels; k++) {
            const struct label *l = &s->labels[k];
            FUZZ_ASSERT(l->name_len > 0 && l->name_len <= lim->max_label_name_len, "name len");
            FUZZ_ASSERT(l->value_len > 0 && l->value_len <= lim->max_label_value_len, "value len");
        }
        FUZZ_ASSERT(labels_sorted(s->labels, s->nlabels) &&
                        labels_validate(s->labels, s->nlabels) == LABELS_OK,
                    "labels not sorted/valid");
        if (proto == WIRE_PROTO_V2)
            FUZZ_ASSERT((s->nsamples > 0) != (s->nhistograms > 0), "v2 series shape");
        FUZZ_ASSERT(s->nstale_histograms <= s->nhistograms, "stale histograms");
        ns += s->nsamples;
        nh += s->nhistograms;
        nx += s->nexemplars;
        nst += s->nstale_histograms;
    }
    FUZZ_ASSERT(ns == r->nsamples && nh == r->nhistograms && nx == r->nexemplars &&
                    nst == r->nstale_histograms,
                "totals");
}

/* Encode what was decoded and decode it again: same labels and samples. */
static void check_reencode(const struct wire_request *r, enum wire_proto proto)
{
    if (proto == WIRE_PROTO_V2)
        for (size_t i = 0; i < r->nseries; i++)
            if (r->series[i].nsamples == 0)
                return; /* histogram-only series cannot be re-encoded */
    const void *out;
    size_t outlen;
    if (wire_encode_write(enc, proto, r->series, r->nseries, &out, &outlen) != 0)
        return; /* over the encoder cap */
    struct wire_request r2;
    char err[256];
    enum wire_err e = wire_decode_write(dec2, proto, out, outlen, &limits, &r2, err, sizeof err);
    FUZZ_ASSERT(e == WIRE_OK || e == WIRE_ERR_TOO_LARGE, "re-decode: %s", err);
    if (e != WIRE_OK)
        return;
    FUZZ_ASSERT(r2.nseries == r->nseries, "re-decode series %zu vs %zu", r2.nseries, r->nseries);
    for (size_t i = 0; i < r->nseries; i++) {
        const struct wire_series *a = &r->series[i], *b = &r2.series[i];
        FUZZ_ASSERT(a->nlabels == b->nlabels && a->nsamples == b->nsamples, "re-decode shape");
        for (uint32_t k = 0; k < a->nlabels; k++)
            FUZZ_ASSERT(span_eq(a->labels[k].name, a->labels[k].name_len, b->labels[k].name,
                                b->labels[k].name_len) &&
                            span_eq(a->labels[k].value, a->labels[k].value_len, b->labels[k].value,
                                    b->labels[k].value_len),
                        "re-decode label");
        for (uint32_t k = 0; k < a->nsamples; k++)
            FUZZ_ASSERT(a->samples[k].t == b->samples[k].t &&
                            bits_of(a->samples[k].v) == bits_of(b->samples[k].v),
                        "re-decode sample");
    }
}

/* protobuf-c's labels of one series, filtered and sorted like ours. */
static size_t ref_labels(struct label *out, char **names, char **values, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (values[i][0] == '\0')
            continue;
        out[k++] = (struct label){names[i], values[i], (uint32_t)strlen(names[i]),
                                  (uint32_t)strlen(values[i])};
    }
    labels_sort(out, k); /* insertion sort: fine, sets are small here */
    return k;
}

/* protobuf-c hands strings out NUL-terminated without a length, so a label
 * with a NUL byte cannot be compared with it. */
static bool has_nul(const struct wire_series *s)
{
    for (uint32_t k = 0; k < s->nlabels; k++)
        if (memchr(s->labels[k].name, 0, s->labels[k].name_len) != NULL ||
            memchr(s->labels[k].value, 0, s->labels[k].value_len) != NULL)
            return true;
    return false;
}

static void compare_labels(const struct wire_series *s, const struct label *ref, size_t n)
{
    if (has_nul(s))
        return;
    if (getenv("FUZZ_WIRE_DEBUG") != NULL) {
        char a[512], b[512];
        labels_format(s->labels, s->nlabels, a, sizeof a);
        labels_format(ref, n, b, sizeof b);
        fprintf(stderr, "ours %s\nref  %s\n", a, b);
    }
    FUZZ_ASSERT(s->nlabels == n, "labels %u vs protobuf-c %zu", s->nlabels, n);
    for (size_t k = 0; k < n; k++)
        FUZZ_ASSERT(
            span_eq(s->labels[k].name, s->labels[k].name_len, ref[k].name, ref[k].name_len) &&
                span_eq(s->labels[k].value, s->labels[k].value_len, ref[k].value, ref[k].value_len),
            "label %zu differs from protobuf-c", k);
}

/* Our error line for keys whose field number is over the protobuf maximum;
 * protobuf-c 1.4 accepts those (see the file comment). */
static bool is_field_number_error(const char *err)
{
    return strstr(err, "invalid field number") != NULL;
}

/* A structural walk over the message tree (which fields are messages, per
 * protocol) that finds keys or length prefixes longer than 5 bytes: valid
 * protobuf (non-minimal varints) that Go and we accept and protobuf-c 1.4
 * rejects. */
struct walk_schema {
    uint32_t nfields;
    const struct walk_schema *const *sub; /* indexed by field number */
};
static const struct walk_schema leaf = {0, NULL};
static const struct walk_schema *const hist_sub[] = {NULL, NULL, NULL,  NULL, NULL, NULL,
                                                     NULL, NULL, &leaf, NULL, NULL, &leaf};
static const struct walk_schema hist = {12, hist_sub};
static const struct walk_schema *const ex1_sub[] = {NULL, &leaf};
static const struct walk_schema ex1 = {2, ex1_sub};
static const struct walk_schema *const ts1_sub[] = {NULL, &leaf, &leaf, &ex1, &hist};
static const struct walk_schema ts1 = {5, ts1_sub};
static const struct walk_schema *const req1_sub[] = {NULL, &ts1, NULL, &leaf};
static const struct walk_schema req1 = {4, req1_sub};
static const struct walk_schema *const ts2_sub[] = {NULL, NULL, &leaf, &hist, &leaf, &leaf};
static const struct walk_schema ts2 = {6, ts2_sub};
static const struct walk_schema *const req2_sub[] = {NULL, NULL, NULL, NULL, NULL, &ts2};
static const struct walk_schema req2 = {6, req2_sub};

/* Length of the varint at p (0 when it does not end in 10 bytes or before
 * end) and its value. */
static size_t varint_at(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < 10 && p + i < end; i++) {
        r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (p[i] < 0x80) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

static bool long_varints(const uint8_t *p, const uint8_t *end, const struct walk_schema *sch)
{
    while (p < end) {
        uint64_t key, v;
        size_t n = varint_at(p, end, &key);
        if (n == 0)
            return false;
        if (n > 5)
            return true;
        p += n;
        uint64_t f = key >> 3;
        switch (key & 7) {
        case 0:
            n = varint_at(p, end, &v);
            if (n == 0)
                return false;
            p += n;
            break;
        case 1:
            if (end - p < 8)
                return false;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                return false;
            p += 4;
            break;
        case 2:
            n = varint_at(p, end, &v);
            if (n == 0)
                return false;
            if (n > 5)
                return true;
            p += n;
            if (v > (uint64_t)(end - p))
                return false;
            if (f < sch->nfields && sch->sub[f] != NULL && long_varints(p, p + v, sch->sub[f]))
                return true;
            p += v;
            break;
        default:
            return false;
        }
    }
    return false;
}

static void differential_v1(const uint8_t *pb, size_t len, enum wire_err e,
                            const struct wire_request *r, const char *err)
{
    Prometheus__WriteRequest *q = prometheus__write_request__unpack(NULL, len, pb);
    if (e == WIRE_OK && q != NULL) {
        FUZZ_ASSERT(q->n_timeseries == r->nseries, "series %zu vs protobuf-c %zu", r->nseries,
                    q->n_timeseries);
        FUZZ_ASSERT(q->n_metadata == r->nmetadata, "metadata");
        for (size_t i = 0; i < r->nseries; i++) {
            const Prometheus__TimeSeries *t = q->timeseries[i];
            const struct wire_series *s = &r->series[i];
            FUZZ_ASSERT(t->n_samples == s->nsamples, "series %zu: samples %u vs protobuf-c %zu", i,
                        s->nsamples, t->n_samples);
            FUZZ_ASSERT(t->n_histograms == s->nhistograms && t->n_exemplars == s->nexemplars,
                        "series %zu: histogram/exemplar counts", i);
            uint32_t stale = 0;
            for (size_t k = 0; k < t->n_histograms; k++)
                stale += sample_is_stale(t->histograms[k]->sum);
            FUZZ_ASSERT(stale == s->nstale_histograms, "stale histograms");
            for (size_t k = 0; k < t->n_samples; k++)
                FUZZ_ASSERT(t->samples[k]->timestamp == s->samples[k].t &&
                                bits_of(t->samples[k]->value) == bits_of(s->samples[k].v),
                            "series %zu sample %zu", i, k);
            size_t n = t->n_labels;
            struct label *ref = calloc(n + 1, sizeof *ref);
            char **names = calloc(n + 1, sizeof *names), **values = calloc(n + 1, sizeof *values);
            FUZZ_ASSERT(ref && names && values, "out of memory");
            for (size_t k = 0; k < n; k++) {
                names[k] = t->labels[k]->name;
                values[k] = t->labels[k]->value;
            }
            compare_labels(s, ref, ref_labels(ref, names, values, n));
            free(ref);
            free(names);
            free(values);
        }
    } else if (!long_varints(pb, pb + len, &req1)) {
        FUZZ_ASSERT(!(e == WIRE_OK && q == NULL), "accepted what protobuf-c rejects");
        FUZZ_ASSERT(!(e == WIRE_ERR_PROTOBUF && q != NULL && !is_field_number_error(err)),
                    "rejected what protobuf-c accepts: %s", err);
    }
    if (q != NULL)
        prometheus__write_request__free_unpacked(q, NULL);
}

static void differential_v2(const uint8_t *pb, size_t len, enum wire_err e,
                            const struct wire_request *r, const char *err)
{
    Io__Prometheus__Write__V2__Request *q =
        io__prometheus__write__v2__request__unpack(NULL, len, pb);
    if (e == WIRE_OK && q != NULL) {
        FUZZ_ASSERT(q->n_timeseries == r->nseries, "series %zu vs protobuf-c %zu", r->nseries,
                    q->n_timeseries);
        uint64_t nmeta = 0;
        for (size_t i = 0; i < r->nseries; i++) {
            const Io__Prometheus__Write__V2__TimeSeries *t = q->timeseries[i];
            const struct wire_series *s = &r->series[i];
            nmeta += t->metadata != NULL;
            FUZZ_ASSERT(t->n_samples == s->nsamples, "series %zu: samples %u vs protobuf-c %zu", i,
                        s->nsamples, t->n_samples);
            FUZZ_ASSERT(t->n_histograms == s->nhistograms && t->n_exemplars == s->nexemplars,
                        "series %zu: histogram/exemplar counts", i);
            for (size_t k = 0; k < t->n_samples; k++)
                FUZZ_ASSERT(t->samples[k]->timestamp == s->samples[k].t &&
                                bits_of(t->samples[k]->value) == bits_of(s->samples[k].v),
                            "series %zu sample %zu", i, k);
            /* we accepted, so every ref is in range and the count is even */
            FUZZ_ASSERT(t->n_labels_refs % 2 == 0, "odd refs accepted");
            size_t n = 0, cap = t->n_labels_refs / 2;
            struct label *ref = calloc(cap + 1, sizeof *ref);
            char **names = calloc(cap + 1, sizeof *names),
                 **values = calloc(cap + 1, sizeof *values);
            FUZZ_ASSERT(ref && names && values, "out of memory");
            for (size_t k = 0; k + 1 < t->n_labels_refs; k += 2) {
                FUZZ_ASSERT(t->labels_refs[k] < q->n_symbols &&
                                t->labels_refs[k + 1] < q->n_symbols,
                            "ref out of range accepted");
                names[n] = q->symbols[t->labels_refs[k]];
                values[n] = q->symbols[t->labels_refs[k + 1]];
                n++;
            }
            compare_labels(s, ref, ref_labels(ref, names, values, n));
            free(ref);
            free(names);
            free(values);
        }
        FUZZ_ASSERT(nmeta == r->nmetadata, "metadata");
    } else if (!long_varints(pb, pb + len, &req2)) {
        FUZZ_ASSERT(!(e == WIRE_OK && q == NULL), "accepted what protobuf-c rejects");
        FUZZ_ASSERT(!(e == WIRE_ERR_PROTOBUF && q != NULL && !is_field_number_error(err)),
                    "rejected what protobuf-c accepts: %s", err);
    }
    if (q != NULL)
        io__prometheus__write__v2__request__free_unpacked(q, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (dec == NULL) {
        dec = wire_decoder_create(1 << 20);
        dec_small = wire_decoder_create(2048);
        dec2 = wire_decoder_create(1 << 22);
        enc = wire_encoder_create(1 << 22);
    }
    unsigned mode = data[0];
    data++;
    size--;
    enum wire_proto proto = (mode & 1) ? WIRE_PROTO_V2 : WIRE_PROTO_V1;
    const struct wire_limits *lim = (mode & 4) ? &small_limits : &limits;
    struct wire_decoder *d = (mode & 4) ? dec_small : dec;
    struct wire_request r;
    char err[256];
    enum wire_err e;
    const uint8_t *pb = data;
    size_t pblen = size;
    if (mode & 2) {
        e = wire_decode_write(d, proto, data, size, lim, &r, err, sizeof err);
        /* the protobuf bytes for the reference, when snappy accepted them */
        size_t n;
        char err2[256];
        if (e != WIRE_ERR_SNAPPY && e != WIRE_ERR_TOO_LARGE &&
            wire_snappy_uncompress(data, size, lim->max_decompressed_bytes, &raw, &rawcap, &n, err2,
                                   sizeof err2) == WIRE_OK) {
            pb = raw;
            pblen = n;
        } else {
            pb = NULL;
        }
    } else {
        e = wire_decode_write_raw(d, proto, data, size, lim, &r, err, sizeof err);
    }
    FUZZ_ASSERT(e >= WIRE_OK && e < WIRE_ERR_COUNT, "error class %d", (int)e);
    FUZZ_ASSERT(strlen(err) < sizeof err && strchr(err, '\n') == NULL, "error text");
    FUZZ_ASSERT((e == WIRE_OK) == (err[0] == '\0'), "error text vs class: %s", err);
    if (e == WIRE_OK) {
        check_result(&r, proto, lim);
        check_reencode(&r, proto);
    }
    if (pb != NULL && (e == WIRE_OK || e == WIRE_ERR_PROTOBUF)) {
        if (proto == WIRE_PROTO_V1)
            differential_v1(pb, pblen, e, &r, err);
        else
            differential_v2(pb, pblen, e, &r, err);
    }
    return 0;
}
