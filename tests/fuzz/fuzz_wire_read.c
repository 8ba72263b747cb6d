/*
 * fuzz_wire_read.c — libFuzzer target for the remote-read codec.
 *
 * Input: one mode byte, then the body. Bits 0-2 of the mode choose what the
 * body feeds; bit 3 selects tiny limits so short inputs reach every cap.
 *
 *   0  ReadRequest, raw protobuf      (+ differential against protobuf-c)
 *   1  ReadRequest, as a snappy body
 *   2  ReadResponse protobuf; the harness snappy-compresses it
 *      (+ differential against protobuf-c)
 *   3  SAMPLES response, as a snappy body
 *   4  streamed response, raw bytes (frames as given)
 *   5  streamed response: the body is split into messages ([len byte][msg])
 *      and the harness frames each with a correct CRC, so the fuzzer can
 *      reach the ChunkedReadResponse decoder
 *   6  samples built from the bytes: XOR chunk round trip (bit-exact), and
 *      SAMPLES and streamed responses built and decoded back
 *   7  arbitrary XOR chunk data: if it decodes, re-encoding it must decode
 *      to the same samples
 *
 * Every decode checks the invariants promised in wire_read.h (error class
 * and one-line text, limits, sorted and valid labels, sorted and clipped
 * samples). A request that decodes is re-encoded with the client encoder
 * and must decode to the same queries.
 *
 * Differential with protobuf-c (modes 0 and 2): when both accept, contents
 * must agree; a disagreement on well-formedness aborts, except for these
 * legitimate differences, checked first:
 * - protobuf-c strings are NUL-terminated C strings: fields holding a NUL
 *   byte are not compared;
 * - field number 0 and field numbers over 2^29 - 1: protobuf-c 1.4 accepts
 *   them as unknown fields, we reject them (as Go does: "illegal tag 0");
 * - keys and length prefixes longer than 5 bytes: protobuf-c rejects them,
 *   we (like Go's generated code, so like Prometheus) accept up to 10;
 * - protobuf-c 1.4 does not check the wire type of bool fields
 *   (ReadHints.by, field 6); Go's generated code and we reject a wrong one;
 * - our content errors (limits, matcher rules, response types, labels)
 *   are not protobuf-c's business.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <prometheus/remote.pb-c.h>

#include "crc32c.h"
#include "wire_read.h"
#include "wire_write.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_wire_read: %s: ", #cond);                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const struct wire_read_request_limits req_limits = {1 << 20, 4 << 20, 64, 64, 1024, 65536};
static const struct wire_read_request_limits req_tiny = {4096, 8192, 4, 4, 16, 32};
static const struct wire_read_response_limits resp_limits = {
    1 << 20, 4 << 20, 1 << 20, 1000, 200000, 70000, 32, 256, 1024};
static const struct wire_read_response_limits resp_tiny = {1 << 16, 1 << 16, 1 << 14, 8, 512,
                                                           256,     4,       16,      32};

static const struct wire_read_query ranges[3] = {
    {INT64_MIN, INT64_MAX, NULL, 0}, {0, 1000, NULL, 0}, {-1000, INT64_MAX, NULL, 0}};

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

static void check_err(enum wire_read_err e, const char *err)
{
    FUZZ_ASSERT(e >= WIRE_READ_OK && e < WIRE_READ_ERR_COUNT, "error class %d", (int)e);
    FUZZ_ASSERT(strchr(err, '\n') == NULL, "error text has a newline: %s", err);
    FUZZ_ASSERT((e == WIRE_READ_OK) == (err[0] == '\0'), "error text vs class %s: '%s'",
                wire_read_err_reason(e), err);
}

/* Long varints and big field numbers: see the file comment. ---------------- */

/* A message's fields: sub[f] is the schema of field f when it is a message
 * (descended into), &opaque when it is a message we only skip, NULL for
 * scalars, strings and packed lists. */
struct walk_schema {
    uint32_t nfields;
    const struct walk_schema *const *sub;
};
static const struct walk_schema leafmsg = {0, NULL};
static const struct walk_schema opaque = {0, NULL};
static const struct walk_schema *const query_sub[] = {NULL, NULL, NULL, &leafmsg, &leafmsg};
static const struct walk_schema query_schema = {5, query_sub};
static const struct walk_schema *const request_sub[] = {NULL, &query_schema, NULL};
static const struct walk_schema request_schema = {3, request_sub};
static const struct walk_schema *const ts_sub[] = {NULL, &leafmsg, &leafmsg, &opaque, &opaque};
static const struct walk_schema ts_schema = {5, ts_sub};
static const struct walk_schema *const qr_sub[] = {NULL, &ts_schema};
static const struct walk_schema qr_schema = {2, qr_sub};
static const struct walk_schema *const resp_sub[] = {NULL, &qr_schema};
static const struct walk_schema resp_schema = {2, resp_sub};

struct walk {
    bool odd;    /* a key/length over 5 bytes, field number 0 or over 2^29 - 1 */
    bool opaque; /* an exemplar or histogram is present */
};

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

static void walk(const uint8_t *p, const uint8_t *end, const struct walk_schema *sch,
                 struct walk *w)
{
    while (p < end) {
        uint64_t key, v;
        size_t n = varint_at(p, end, &key);
        if (n == 0)
            return;
        if (n > 5 || (key >> 3) == 0 || (key >> 3) > 536870911u) {
            w->odd = true;
            return;
        }
        p += n;
        uint64_t f = key >> 3;
        switch (key & 7) {
        case 0:
            n = varint_at(p, end, &v);
            if (n == 0)
                return;
            p += n;
            break;
        case 1:
            if (end - p < 8)
                return;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                return;
            p += 4;
            break;
        case 2:
            n = varint_at(p, end, &v);
            if (n == 0)
                return;
            if (n > 5) {
                w->odd = true;
                return;
            }
            p += n;
            if (v > (uint64_t)(end - p))
                return;
            if (f < sch->nfields && sch->sub[f] == &opaque)
                w->opaque = true;
            else if (f < sch->nfields && sch->sub[f] != NULL)
                walk(p, p + v, sch->sub[f], w);
            p += v;
            break;
        default:
            return;
        }
    }
}

/* Requests --------------------------------------------------------------------- */

static bool has_nul(const char *s, size_t n)
{
    return n > 0 && memchr(s, 0, n) != NULL;
}

static void check_request(const struct wire_read_request *r,
                          const struct wire_read_request_limits *lim)
{
    FUZZ_ASSERT(r->nqueries <= lim->max_queries, "%zu queries", r->nqueries);
    FUZZ_ASSERT(r->response_type == WIRE_READ_SAMPLES ||
                    r->response_type == WIRE_READ_STREAMED_XOR_CHUNKS,
                "response type %d", (int)r->response_type);
    for (size_t i = 0; i < r->nqueries; i++) {
        const struct wire_read_query *q = &r->queries[i];
        FUZZ_ASSERT(q->nmatchers <= lim->max_matchers, "%zu matchers", q->nmatchers);
        for (size_t k = 0; k < q->nmatchers; k++) {
            const struct wire_read_matcher *m = &q->matchers[k];
            FUZZ_ASSERT((unsigned)m->op <= MATCH_NRE, "op %d", (int)m->op);
            FUZZ_ASSERT(m->name_len > 0 && m->name_len <= lim->max_name_len, "name len");
            FUZZ_ASSERT(m->value_len <= lim->max_value_len, "value len");
            FUZZ_ASSERT(m->value != NULL && m->name != NULL, "null pointer");
            /* touch every byte (ASan checks the storage) */
            volatile char sink = 0;
            for (uint32_t b = 0; b < m->name_len; b++)
                sink ^= m->name[b];
            for (uint32_t b = 0; b < m->value_len; b++)
                sink ^= m->value[b];
            (void)sink;
        }
    }
}

/* Encode the decoded request with the client encoder, decode it again. */
static void check_request_reencode(const struct wire_read_request *r)
{
    void *buf = NULL;
    size_t cap = 0, len = 0;
    char err[256];
    enum wire_read_type t = r->response_type;
    int rc =
        wire_read_encode_request(r->queries, r->nqueries, &t, 1, &buf, &cap, &len, err, sizeof err);
    FUZZ_ASSERT(rc == 0, "re-encode: %s", err);
    struct wire_read_request r2;
    wire_read_request_init(&r2);
    enum wire_read_err e = wire_read_decode_request(buf, len, &req_limits, &r2, err, sizeof err);
    FUZZ_ASSERT(e == WIRE_READ_OK || e == WIRE_READ_ERR_TOO_LARGE, "re-decode: %s", err);
    if (e == WIRE_READ_OK) {
        FUZZ_ASSERT(r2.nqueries == r->nqueries && r2.response_type == r->response_type,
                    "re-decode shape");
        for (size_t i = 0; i < r->nqueries; i++) {
            const struct wire_read_query *a = &r->queries[i], *b = &r2.queries[i];
            FUZZ_ASSERT(a->start_ms == b->start_ms && a->end_ms == b->end_ms &&
                            a->nmatchers == b->nmatchers,
                        "re-decode query %zu", i);
            for (size_t k = 0; k < a->nmatchers; k++) {
                const struct wire_read_matcher *x = &a->matchers[k], *y = &b->matchers[k];
                FUZZ_ASSERT(
                    x->op == y->op && x->name_len == y->name_len && x->value_len == y->value_len &&
                        memcmp(x->name, y->name, x->name_len) == 0 &&
                        (x->value_len == 0 || memcmp(x->value, y->value, x->value_len) == 0),
                    "re-decode matcher %zu.%zu", i, k);
            }
        }
    }
    wire_read_request_cleanup(&r2);
    free(buf);
}

static bool is_content_error(enum wire_read_err e)
{
    return e == WIRE_READ_ERR_TOO_MANY_QUERIES || e == WIRE_READ_ERR_TOO_MANY_MATCHERS ||
           e == WIRE_READ_ERR_INVALID_MATCHER || e == WIRE_READ_ERR_RESPONSE_TYPE ||
           e == WIRE_READ_ERR_TOO_LARGE;
}

static void differential_request(const uint8_t *pb, size_t len, enum wire_read_err e,
                                 const struct wire_read_request *r, const char *err)
{
    if (is_content_error(e))
        return;
    struct walk w = {false, false};
    walk(pb, pb + len, &request_schema, &w);
    Prometheus__ReadRequest *q = prometheus__read_request__unpack(NULL, len, pb);
    if (e == WIRE_READ_OK && q != NULL) {
        FUZZ_ASSERT(q->n_queries == r->nqueries, "queries %zu vs protobuf-c %zu", r->nqueries,
                    q->n_queries);
        int chosen = -1;
        for (size_t i = 0; i < q->n_accepted_response_types && chosen < 0; i++)
            if ((int)q->accepted_response_types[i] == 0 || (int)q->accepted_response_types[i] == 1)
                chosen = (int)q->accepted_response_types[i];
        FUZZ_ASSERT((chosen < 0 ? 0 : chosen) == (int)r->response_type, "negotiation");
        for (size_t i = 0; i < r->nqueries; i++) {
            const Prometheus__Query *pq = q->queries[i];
            const struct wire_read_query *our = &r->queries[i];
            FUZZ_ASSERT(pq->start_timestamp_ms == our->start_ms &&
                            pq->end_timestamp_ms == our->end_ms && pq->n_matchers == our->nmatchers,
                        "query %zu", i);
            for (size_t k = 0; k < our->nmatchers; k++) {
                const Prometheus__LabelMatcher *pm = pq->matchers[k];
                const struct wire_read_matcher *m = &our->matchers[k];
                FUZZ_ASSERT((int)pm->type == (int)m->op, "matcher %zu.%zu type", i, k);
                if (!has_nul(m->name, m->name_len))
                    FUZZ_ASSERT(strlen(pm->name) == m->name_len &&
                                    memcmp(pm->name, m->name, m->name_len) == 0,
                                "matcher %zu.%zu name", i, k);
                if (!has_nul(m->value, m->value_len))
                    FUZZ_ASSERT(strlen(pm->value) == m->value_len &&
                                    memcmp(pm->value, m->value, m->value_len) == 0,
                                "matcher %zu.%zu value", i, k);
            }
        }
    } else if (!w.odd) {
        FUZZ_ASSERT(!(e == WIRE_READ_OK && q == NULL), "accepted what protobuf-c rejects");
        FUZZ_ASSERT(!(e == WIRE_READ_ERR_PROTOBUF && q != NULL &&
                      strstr(err, "ReadHints field 6 has wire type") == NULL),
                    "rejected what protobuf-c accepts: %s", err);
    }
    if (q != NULL)
        prometheus__read_request__free_unpacked(q, NULL);
}

static void fuzz_request(const uint8_t *data, size_t size, bool snappy_body, bool tiny)
{
    const struct wire_read_request_limits *lim = tiny ? &req_tiny : &req_limits;
    struct wire_read_request r;
    wire_read_request_init(&r);
    char err[256] = "x";
    enum wire_read_err e = snappy_body
                               ? wire_read_decode_request(data, size, lim, &r, err, sizeof err)
                               : wire_read_decode_request_raw(data, size, lim, &r, err, sizeof err);
    check_err(e, err);
    if (e == WIRE_READ_OK) {
        check_request(&r, lim);
        check_request_reencode(&r);
    } else {
        FUZZ_ASSERT(r.mem == NULL && r.queries == NULL, "output touched on failure");
    }
    if (!snappy_body)
        differential_request(data, size, e, &r, err);
    wire_read_request_cleanup(&r);
}

/* Responses -------------------------------------------------------------------- */

struct seen {
    const struct wire_read_response_limits *lim;
    size_t nqueries;
    uint64_t series, samples;
    size_t last_q;
    /* optional expected content (modes 2 and 6) */
    const struct sample *want;
    size_t nwant;
    size_t want_series;
};

static int on_series(void *ctx, size_t qi, const struct label *labels, size_t nlabels,
                     const struct sample *samples, size_t ns)
{
    struct seen *s = ctx;
    FUZZ_ASSERT(qi < s->nqueries, "query index %zu", qi);
    FUZZ_ASSERT(nlabels > 0 && nlabels <= s->lim->max_labels, "%zu labels", nlabels);
    FUZZ_ASSERT(labels_sorted(labels, nlabels) && labels_validate(labels, nlabels) == LABELS_OK,
                "labels not sorted/valid");
    for (size_t i = 0; i < nlabels; i++)
        FUZZ_ASSERT(labels[i].value_len > 0 && labels[i].name_len <= s->lim->max_label_name_len &&
                        labels[i].value_len <= s->lim->max_label_value_len,
                    "label lengths");
    FUZZ_ASSERT(ns <= s->lim->max_series_samples, "%zu samples", ns);
    for (size_t i = 0; i < ns; i++) {
        FUZZ_ASSERT(samples[i].t >= ranges[qi].start_ms && samples[i].t <= ranges[qi].end_ms,
                    "sample outside the query range");
        FUZZ_ASSERT(i == 0 || samples[i].t > samples[i - 1].t, "samples not strictly sorted");
    }
    if (s->want != NULL && s->series == s->want_series) {
        FUZZ_ASSERT(ns == s->nwant, "round trip: %zu samples, want %zu", ns, s->nwant);
        for (size_t i = 0; i < ns; i++)
            FUZZ_ASSERT(samples[i].t == s->want[i].t &&
                            bits_of(samples[i].v) == bits_of(s->want[i].v),
                        "round trip sample %zu", i);
    }
    s->series++;
    s->samples += ns;
    s->last_q = qi;
    return 0;
}

static enum wire_read_err decode_resp(const void *body, size_t len, enum wire_read_type type,
                                      bool tiny, struct seen *s, char *err, size_t errcap)
{
    const struct wire_read_response_limits *lim = tiny ? &resp_tiny : &resp_limits;
    s->lim = lim;
    s->nqueries = 3;
    struct wire_read_stats st;
    enum wire_read_err e =
        wire_read_decode_response(body, len, type, ranges, 3, lim, on_series, s, &st, err, errcap);
    check_err(e, err);
    FUZZ_ASSERT(st.series == s->series && st.samples == s->samples, "stats vs callbacks");
    FUZZ_ASSERT(st.series <= lim->max_series && st.samples <= lim->max_samples, "limits");
    return e;
}

static void differential_response(const uint8_t *pb, size_t len, enum wire_read_err e,
                                  const struct seen *s, const char *err)
{
    if (e != WIRE_READ_OK && e != WIRE_READ_ERR_PROTOBUF)
        return;
    struct walk w = {false, false};
    walk(pb, pb + len, &resp_schema, &w);
    Prometheus__ReadResponse *q = prometheus__read_response__unpack(NULL, len, pb);
    if (e == WIRE_READ_OK && q != NULL) {
        size_t series = 0;
        for (size_t i = 0; i < q->n_results; i++)
            series += q->results[i]->n_timeseries;
        FUZZ_ASSERT(q->n_results == 3 && series == s->series, "results %zu series %zu vs %" PRIu64,
                    q->n_results, series, s->series);
    } else if (!w.odd) {
        /* exemplars and histograms are skipped, not parsed: protobuf-c may
         * reject their content */
        FUZZ_ASSERT(!(e == WIRE_READ_OK && q == NULL && !w.opaque),
                    "accepted what protobuf-c rejects");
        FUZZ_ASSERT(!(e == WIRE_READ_ERR_PROTOBUF && q != NULL && strstr(err, "results") == NULL),
                    "rejected what protobuf-c accepts: %s", err);
    }
    if (q != NULL)
        prometheus__read_response__free_unpacked(q, NULL);
}

static void fuzz_samples_pb(const uint8_t *data, size_t size, bool tiny)
{
    void *z = NULL;
    size_t zcap = 0, zlen;
    if (wire_snappy_compress(data, size, &z, &zcap, &zlen) != 0)
        return;
    struct seen s = {0};
    char err[512] = "x";
    enum wire_read_err e = decode_resp(z, zlen, WIRE_READ_SAMPLES, tiny, &s, err, sizeof err);
    if (!tiny)
        differential_response(data, size, e, &s, err);
    free(z);
}

/* Mode 5: [len][msg] pieces framed with correct CRCs. */
static void fuzz_framed(const uint8_t *data, size_t size, bool tiny)
{
    uint8_t *body = malloc(7 * size + 8); /* each piece: 1 byte in, at most 6 added */
    size_t n = 0;
    while (size > 0) {
        size_t k = data[0];
        data++;
        size--;
        if (k > size)
            k = size;
        uint32_t c = crc32c(data, k);
        size_t v = k;
        while (v >= 0x80) {
            body[n++] = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        body[n++] = (uint8_t)v;
        body[n++] = (uint8_t)(c >> 24);
        body[n++] = (uint8_t)(c >> 16);
        body[n++] = (uint8_t)(c >> 8);
        body[n++] = (uint8_t)c;
        memcpy(body + n, data, k);
        n += k;
        data += k;
        size -= k;
    }
    struct seen s = {0};
    char err[512] = "x";
    decode_resp(body, n, WIRE_READ_STREAMED_XOR_CHUNKS, tiny, &s, err, sizeof err);
    free(body);
}

/* XOR chunks ------------------------------------------------------------------- */

static const uint64_t special_bits[8] = {
    0x7ff0000000000002u, /* stale marker */
    0x7ff8000000000001u, /* a quiet NaN */
    0x7ff0000000000000u, /* +Inf */
    0xfff0000000000000u, /* -Inf */
    0x8000000000000000u, /* -0 */
    0x0000000000000001u, /* smallest denormal */
    0x7fefffffffffffffu, /* DBL_MAX */
    0x3ff0000000000000u, /* 1.0 */
};

/* Samples from bytes: per sample a control byte (bits 0-1: timestamp step
 * size 1/2/4/8 bytes; bits 2-4: value kind) then its payload. */
static size_t make_samples(const uint8_t *d, size_t n, struct sample *out, size_t cap)
{
    size_t k = 0;
    uint64_t t = 0, v = 0;
    while (n > 0 && k < cap) {
        unsigned c = d[0];
        d++;
        n--;
        size_t tb = (size_t)1 << (c & 3);
        uint64_t step = 0;
        for (size_t i = 0; i < tb && n > 0; i++, d++, n--)
            step = step << 8 | d[0];
        if (tb < 8 && (step >> (8 * tb - 1)) & 1)
            step |= UINT64_MAX << (8 * tb); /* sign-extend */
        t += step;
        switch ((c >> 2) & 7) {
        case 0:
            break; /* same value */
        case 1:
            if (n > 0) {
                v = special_bits[d[0] & 7];
                d++;
                n--;
            }
            break;
        case 2:
            for (size_t i = 0; i < 8 && n > 0; i++, d++, n--)
                v = v << 8 | d[0];
            break;
        case 3:
            if (n > 0) {
                v ^= (uint64_t)d[0] << (c >> 5 << 3);
                d++;
                n--;
            }
            break;
        default:
            v = bits_of((double)(k * ((c >> 5) + 1)));
            break;
        }
        out[k].t = (int64_t)t;
        out[k].v = double_of(v);
        k++;
    }
    return k;
}

static void xor_roundtrip(const struct sample *s, size_t n)
{
    size_t cap = wire_read_xor_max_size(n);
    uint8_t *buf = malloc(cap);
    struct sample *out = malloc((n + 1) * sizeof *out);
    size_t len = wire_read_xor_encode(s, n, buf, cap), got;
    char err[160];
    FUZZ_ASSERT(len >= 2 && len <= cap, "encode %zu samples: %zu bytes", n, len);
    FUZZ_ASSERT(wire_read_xor_decode(buf, len, out, n, &got, err, sizeof err) == 0 && got == n,
                "decode: %s", err);
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT(out[i].t == s[i].t && bits_of(out[i].v) == bits_of(s[i].v),
                    "XOR round trip sample %zu of %zu", i, n);
    if (len > 2)
        FUZZ_ASSERT(wire_read_xor_decode(buf, len - 1, out, n, &got, err, sizeof err) != 0,
                    "a truncated chunk decoded");
    free(buf);
    free(out);
}

/* Build SAMPLES and streamed responses of one series and decode them. */
static void builder_roundtrip(const struct sample *s, size_t n, size_t frame_bytes)
{
    static const struct label lab[] = {{"__name__", "m", 8, 1}, {"job", "j", 3, 1}};
    struct wire_read_response *r = wire_read_response_create(1 << 24, frame_bytes);
    FUZZ_ASSERT(r != NULL, "out of memory");
    for (int type = 0; type < 2; type++) {
        wire_read_response_begin(r, (enum wire_read_type)type, 3);
        enum wire_read_err e = wire_read_response_add_series(r, 2, lab, 2, s, n);
        FUZZ_ASSERT(e == WIRE_READ_OK, "add_series: %s", wire_read_response_error(r));
        const void *body;
        size_t len;
        FUZZ_ASSERT(wire_read_response_finish(r, &body, &len) == WIRE_READ_OK, "finish");
        /* keep samples in range of query 2 only */
        size_t k = 0;
        while (k < n && s[k].t < ranges[2].start_ms)
            k++;
        struct seen seen = {0};
        seen.want = s + k;
        seen.nwant = n - k;
        seen.want_series = 0;
        char err[512];
        e = decode_resp(body, len, (enum wire_read_type)type, false, &seen, err, sizeof err);
        FUZZ_ASSERT(e == WIRE_READ_OK, "decode our own response (type %d): %s", type, err);
        FUZZ_ASSERT(seen.series == (type == 0 || n > 0 ? 1u : 0u), "series %" PRIu64, seen.series);
    }
    wire_read_response_destroy(r);
}

static void fuzz_xor_samples(const uint8_t *data, size_t size)
{
    enum { CAP = 4000 };
    struct sample *s = malloc(CAP * sizeof *s);
    size_t n = make_samples(data, size, s, CAP);
    xor_roundtrip(s, n);
    /* a strictly increasing version for the builders */
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || s[i].t > s[m - 1].t)
            s[m++] = s[i];
    builder_roundtrip(s, m, 64 + (size > 0 ? (size_t)data[0] * 8 : 0));
    free(s);
}

static void fuzz_xor_bytes(const uint8_t *data, size_t size)
{
    struct sample *out = malloc(65536 * sizeof *out);
    size_t n;
    char err[160];
    if (wire_read_xor_decode(data, size, out, 65536, &n, err, sizeof err) == 0) {
        FUZZ_ASSERT(n == (size_t)wire_read_xor_count(data, size), "count");
        xor_roundtrip(out, n);
    } else {
        FUZZ_ASSERT(strchr(err, '\n') == NULL && err[0] != '\0', "error text");
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    data++;
    size--;
    bool tiny = (mode & 8) != 0;
    struct seen s = {0};
    char err[512] = "x";
    switch (mode & 7) {
    case 0:
        fuzz_request(data, size, false, tiny);
        break;
    case 1:
        fuzz_request(data, size, true, tiny);
        break;
    case 2:
        fuzz_samples_pb(data, size, tiny);
        break;
    case 3:
        decode_resp(data, size, WIRE_READ_SAMPLES, tiny, &s, err, sizeof err);
        break;
    case 4:
        decode_resp(data, size, WIRE_READ_STREAMED_XOR_CHUNKS, tiny, &s, err, sizeof err);
        break;
    case 5:
        fuzz_framed(data, size, tiny);
        break;
    case 6:
        fuzz_xor_samples(data, size);
        break;
    default:
        fuzz_xor_bytes(data, size);
        break;
    }
    return 0;
}
