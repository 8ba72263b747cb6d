/*
 * wire_read.c — the remote-read codec: ReadRequest decode/encode, SAMPLES
 * and STREAMED_XOR_CHUNKS responses (build and decode), and the XOR chunk
 * encoding of Prometheus's TSDB.
 *
 * Decoding walks the protobuf bytes by hand with wire_pb.h: every length is
 * checked against what is left, known fields must have their schema's wire
 * type (as Go's generated code demands), unknown fields are skipped, and
 * nothing recurses deeper than the schema. A request is small, so it is
 * decoded in two passes over a private copy — count and validate, then
 * fill arrays sized exactly — which keeps memory proportional to the body
 * and makes "outputs untouched on failure" trivial. Responses are decoded in
 * one pass, series by series, into buffers bounded by the caller's limits.
 *
 * The XOR chunk code follows protocols.md §2.5 bit for bit, including the
 * asymmetric delta-of-delta range rule, the 31 clamp on leading zeros and
 * "0 significant bits means 64". Timestamp arithmetic is done on uint64_t so
 * that any sequence wraps like Go's int64 instead of overflowing.
 *
 * It deliberately does not evaluate matchers (selector.c does), look at HTTP
 * headers, read native-histogram chunks (they are skipped and counted), or
 * keep state between calls beyond reusable buffers.
 *
 * Libraries: snappy through wire_write.c's helpers (the one snappy user),
 * CRC-32C from crc32c.c. protobuf-c is not used here; tests and the fuzz
 * target use its generated code as an independent reference.
 */
#include "wire_read.h"

#include "errbuf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "wire_pb.h"
#include "wire_write.h"

const char *wire_read_err_reason(enum wire_read_err e)
{
    switch (e) {
    case WIRE_READ_OK:
        return "ok";
    case WIRE_READ_ERR_SNAPPY:
        return "snappy";
    case WIRE_READ_ERR_TOO_LARGE:
        return "too_large";
    case WIRE_READ_ERR_PROTOBUF:
        return "protobuf";
    case WIRE_READ_ERR_TOO_MANY_QUERIES:
        return "too_many_queries";
    case WIRE_READ_ERR_TOO_MANY_MATCHERS:
        return "too_many_matchers";
    case WIRE_READ_ERR_INVALID_MATCHER:
        return "invalid_matcher";
    case WIRE_READ_ERR_RESPONSE_TYPE:
        return "response_type";
    case WIRE_READ_ERR_FRAME:
        return "frame";
    case WIRE_READ_ERR_CHUNK:
        return "chunk";
    case WIRE_READ_ERR_INVALID_SERIES:
        return "invalid_series";
    case WIRE_READ_ERR_LIMIT:
        return "limit";
    case WIRE_READ_ERR_ABORTED:
        return "aborted";
    case WIRE_READ_ERR_NOMEM:
        return "nomem";
    }
    return "unknown";
}

void wire_read_request_limits_default(struct wire_read_request_limits *l)
{
    l->max_body_bytes = WIRE_READ_DEFAULT_MAX_REQUEST_BODY;
    l->max_decompressed_bytes = WIRE_READ_DEFAULT_MAX_REQUEST_BYTES;
    l->max_queries = WIRE_READ_DEFAULT_MAX_QUERIES;
    l->max_matchers = WIRE_READ_DEFAULT_MAX_MATCHERS;
    l->max_name_len = WIRE_READ_DEFAULT_MAX_NAME_LEN;
    l->max_value_len = WIRE_READ_DEFAULT_MAX_VALUE_LEN;
}

void wire_read_response_limits_default(struct wire_read_response_limits *l)
{
    l->max_body_bytes = WIRE_READ_DEFAULT_MAX_RESPONSE_BODY;
    l->max_decompressed_bytes = WIRE_READ_DEFAULT_MAX_RESPONSE_BYTES;
    l->max_frame_bytes = WIRE_READ_DEFAULT_MAX_FRAME_BYTES;
    l->max_series = WIRE_READ_DEFAULT_MAX_SERIES;
    l->max_samples = WIRE_READ_DEFAULT_MAX_SAMPLES;
    l->max_series_samples = WIRE_READ_DEFAULT_MAX_SERIES_SAMPLES;
    l->max_labels = WIRE_READ_DEFAULT_MAX_LABELS;
    l->max_label_name_len = WIRE_READ_DEFAULT_MAX_LABEL_NAME_LEN;
    l->max_label_value_len = WIRE_READ_DEFAULT_MAX_LABEL_VALUE_LEN;
}

/* Error lines ------------------------------------------------------------- */

static void clear_err(char *err, size_t errcap)
{
    if (err != NULL && errcap > 0)
        err[0] = '\0';
}

/* At most 48 bytes of untrusted text for an error line, anything but
 * printable ASCII replaced, so the line stays one line. */
static const char *printable(char out[56], const uint8_t *s, size_t n)
{
    return errbuf_printable(out, 52, s, n);
}

static enum wire_read_err from_wire_err(enum wire_err e)
{
    switch (e) {
    case WIRE_OK:
        return WIRE_READ_OK;
    case WIRE_ERR_TOO_LARGE:
        return WIRE_READ_ERR_TOO_LARGE;
    case WIRE_ERR_NOMEM:
        return WIRE_READ_ERR_NOMEM;
    default:
        return WIRE_READ_ERR_SNAPPY;
    }
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

/* Grow a realloc buffer to hold at least need elements of size elem. */
static int grow(void **buf, size_t *cap, size_t elem, size_t need)
{
    if (*buf != NULL && *cap >= need)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c = c > SIZE_MAX / 4 ? need : c * 2;
    if (c > SIZE_MAX / elem)
        return -1;
    void *p = realloc(*buf, c * elem);
    if (p == NULL)
        return -1;
    *buf = p;
    *cap = c;
    return 0;
}

/* XOR chunks -------------------------------------------------------------- */

/* MSB-first bit writer over a zeroed buffer. */
struct bitw {
    uint8_t *buf;
    size_t nbits;
};

/* Append the low n (1..64) bits of v. */
static void put_bits(struct bitw *w, uint64_t v, unsigned n)
{
    while (n > 0) {
        unsigned room = 8 - (unsigned)(w->nbits & 7);
        unsigned take = n < room ? n : room;
        unsigned chunk = (unsigned)(v >> (n - take)) & ((1u << take) - 1);
        w->buf[w->nbits >> 3] |= (uint8_t)(chunk << (room - take));
        w->nbits += take;
        n -= take;
    }
}

/* Go's binary.PutUvarint, byte-wise into the bit stream. */
static void put_uvarint_bits(struct bitw *w, uint64_t v)
{
    while (v >= 0x80) {
        put_bits(w, (v & 0x7f) | 0x80, 8);
        v >>= 7;
    }
    put_bits(w, v, 8);
}

/* The asymmetric range test of Prometheus's writer: n bits hold
 * -(2^(n-1) - 1) ..= 2^(n-1). */
static int dod_fits(int64_t dod, unsigned n)
{
    int64_t half = INT64_C(1) << (n - 1);
    return dod >= -(half - 1) && dod <= half;
}

struct xor_state {
    uint64_t prev; /* previous value's bits */
    unsigned lead; /* current window; 0xff = none yet (writer) */
    unsigned trail;
};

static void put_value(struct bitw *w, struct xor_state *x, uint64_t v)
{
    uint64_t d = v ^ x->prev;
    x->prev = v;
    if (d == 0) {
        put_bits(w, 0, 1);
        return;
    }
    unsigned lead = (unsigned)__builtin_clzll(d), trail = (unsigned)__builtin_ctzll(d);
    if (lead >= 32)
        lead = 31; /* the count has 5 bits */
    if (x->lead != 0xff && lead >= x->lead && trail >= x->trail) {
        put_bits(w, 2, 2); /* '10': same window */
        put_bits(w, d >> x->trail, 64 - x->lead - x->trail);
        return;
    }
    x->lead = lead;
    x->trail = trail;
    unsigned sig = 64 - lead - trail;
    put_bits(w, 3, 2); /* '11': new window */
    put_bits(w, lead, 5);
    put_bits(w, sig & 63, 6); /* 64 does not fit: written as 0 */
    put_bits(w, d >> trail, sig);
}

size_t wire_read_xor_max_size(size_t n)
{
    /* header 2, first sample 10 + 8, second delta 10; every later sample at
     * most 4 + 64 bits of timestamp and 2 + 5 + 6 + 64 of value (< 19 bytes) */
    return 40 + 19 * n;
}

size_t wire_read_xor_encode(const struct sample *samples, size_t n, uint8_t *out, size_t cap)
{
    size_t max = wire_read_xor_max_size(n);
    if (n > 65535 || cap < max)
        return 0;
    memset(out, 0, max);
    out[0] = (uint8_t)(n >> 8);
    out[1] = (uint8_t)n;
    struct bitw w = {out, 16};
    struct xor_state x = {0, 0xff, 0};
    uint64_t t = 0, delta = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t ti = (uint64_t)samples[i].t;
        uint64_t v = bits_of(samples[i].v);
        if (i == 0) {
            /* Go's binary.PutVarint: zigzag */
            uint64_t neg = samples[i].t < 0 ? UINT64_MAX : 0;
            put_uvarint_bits(&w, (ti << 1) ^ neg);
            put_bits(&w, v, 64);
            x.prev = v;
        } else if (i == 1) {
            delta = ti - t;
            put_uvarint_bits(&w, delta);
            put_value(&w, &x, v);
        } else {
            uint64_t nd = ti - t;
            int64_t dod = (int64_t)(nd - delta);
            delta = nd;
            if (dod == 0) {
                put_bits(&w, 0, 1);
            } else if (dod_fits(dod, 14)) {
                put_bits(&w, 2, 2);
                put_bits(&w, (uint64_t)dod, 14);
            } else if (dod_fits(dod, 17)) {
                put_bits(&w, 6, 3);
                put_bits(&w, (uint64_t)dod, 17);
            } else if (dod_fits(dod, 20)) {
                put_bits(&w, 14, 4);
                put_bits(&w, (uint64_t)dod, 20);
            } else {
                put_bits(&w, 15, 4);
                put_bits(&w, (uint64_t)dod, 64);
            }
            put_value(&w, &x, v);
        }
        t = ti;
    }
    return (w.nbits + 7) / 8;
}

long wire_read_xor_count(const void *data, size_t len)
{
    const uint8_t *p = data;
    if (len < 2)
        return -1;
    return (long)p[0] << 8 | p[1];
}

/* MSB-first bit reader. */
struct bitr {
    const uint8_t *buf;
    size_t nbits;
    size_t pos;
};

/* Read n (1..64) bits; -1 past the end. */
static int get_bits(struct bitr *r, unsigned n, uint64_t *v)
{
    if (n > r->nbits - r->pos)
        return -1;
    uint64_t x = 0;
    while (n > 0) {
        unsigned off = (unsigned)(r->pos & 7), avail = 8 - off;
        unsigned take = n < avail ? n : avail;
        unsigned byte = r->buf[r->pos >> 3];
        x = (x << take) | ((byte >> (avail - take)) & ((1u << take) - 1));
        r->pos += take;
        n -= take;
    }
    *v = x;
    return 0;
}

/* Go's binary.ReadUvarint over the bit stream: at most 10 bytes, the 10th
 * at most 1. Returns 0, -1 when truncated, -2 on overflow. */
static int get_uvarint_bits(struct bitr *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned i = 0, shift = 0; i < 10; i++, shift += 7) {
        uint64_t b;
        if (get_bits(r, 8, &b) != 0)
            return -1;
        if (b < 0x80) {
            if (i == 9 && b > 1)
                return -2;
            *v = x | b << shift;
            return 0;
        }
        x |= (b & 0x7f) << shift;
    }
    return -2;
}

static int get_value(struct bitr *r, struct xor_state *x, uint64_t *v)
{
    uint64_t b;
    if (get_bits(r, 1, &b) != 0)
        return -1;
    if (b == 0) {
        *v = x->prev;
        return 0;
    }
    if (get_bits(r, 1, &b) != 0)
        return -1;
    if (b == 1) {
        uint64_t lead, sig;
        if (get_bits(r, 5, &lead) != 0 || get_bits(r, 6, &sig) != 0)
            return -1;
        if (sig == 0)
            sig = 64;
        if (lead + sig > 64)
            return -2;
        x->lead = (unsigned)lead;
        x->trail = (unsigned)(64 - lead - sig);
    }
    /* a '10' before any window reuses the reader's initial (0, 0): 64 bits */
    uint64_t d;
    if (get_bits(r, 64 - x->lead - x->trail, &d) != 0)
        return -1;
    x->prev ^= d << x->trail;
    *v = x->prev;
    return 0;
}

int wire_read_xor_decode(const void *data, size_t len, struct sample *out, size_t cap, size_t *n,
                         char *err, size_t errcap)
{
    long count = wire_read_xor_count(data, len);
    if (count < 0) {
        errbuf_set(err, errcap, "XOR chunk: %zu bytes, shorter than its header", len);
        return -1;
    }
    if ((size_t)count > cap) {
        errbuf_set(err, errcap, "XOR chunk: %ld samples, room for %zu", count, cap);
        return -1;
    }
    if (len > SIZE_MAX / 8) {
        errbuf_set(err, errcap, "XOR chunk: too long");
        return -1;
    }
    struct bitr r = {data, len * 8, 16};
    struct xor_state x = {0, 0, 0};
    uint64_t t = 0, delta = 0, v;
    int rc = 0;
    long i;
    for (i = 0; i < count; i++) {
        if (i == 0) {
            uint64_t z;
            rc = get_uvarint_bits(&r, &z);
            if (rc == 0)
                rc = get_bits(&r, 64, &v);
            if (rc != 0)
                goto fail;
            t = (z >> 1) ^ (0 - (z & 1));
            x.prev = v;
        } else if (i == 1) {
            rc = get_uvarint_bits(&r, &delta);
            if (rc != 0)
                goto fail;
            t += delta;
            if ((rc = get_value(&r, &x, &v)) != 0)
                goto fail;
        } else {
            unsigned prefix = 0, k;
            uint64_t b, dod = 0;
            for (k = 0; k < 4; k++) {
                if ((rc = get_bits(&r, 1, &b)) != 0)
                    goto fail;
                prefix = prefix << 1 | (unsigned)b;
                if (b == 0)
                    break;
            }
            unsigned sz = prefix == 2 ? 14 : prefix == 6 ? 17 : prefix == 14 ? 20 : 0;
            if (prefix == 15) {
                if ((rc = get_bits(&r, 64, &dod)) != 0)
                    goto fail;
            } else if (sz != 0) {
                if ((rc = get_bits(&r, sz, &dod)) != 0)
                    goto fail;
                /* values above 2^(sz-1) are negative (two's complement) */
                if (dod > UINT64_C(1) << (sz - 1))
                    dod -= UINT64_C(1) << sz;
            }
            delta += dod;
            t += delta;
            if ((rc = get_value(&r, &x, &v)) != 0)
                goto fail;
        }
        out[i].t = (int64_t)t;
        out[i].v = double_of(v);
    }
    *n = (size_t)count;
    return 0;
fail:
    errbuf_set(err, errcap, "XOR chunk: sample %ld of %ld: %s", i, count,
               rc == -2 ? "malformed (varint overflow or window over 64 bits)" : "data truncated");
    return -1;
}

/* Protobuf reading helpers -------------------------------------------------- */

static const char *wt_name(unsigned wt)
{
    static const char *const names[] = {"varint",    "fixed64", "bytes",   "group-start",
                                        "group-end", "fixed32", "invalid", "invalid"};
    return names[wt & 7];
}

/* Requests: decode -------------------------------------------------------- */

struct reqdec {
    const struct wire_read_request_limits *lim;
    const uint8_t *base; /* start of the protobuf, for offsets */
    char *err;
    size_t errcap;
    /* fill pass only (NULL while counting) */
    struct wire_read_query *queries;
    struct wire_read_matcher *matchers;
    size_t nq, nm;
    /* response type negotiation */
    int chosen; /* -1 until a supported type is seen */
    size_t ntypes;
    int64_t first_types[8];
};

static enum wire_read_err req_fail(struct reqdec *c, enum wire_read_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum wire_read_err req_fail(struct reqdec *c, enum wire_read_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errbuf_vset(c->err, c->errcap, fmt, ap);
    va_end(ap);
    return e;
}

static enum wire_read_err req_pb(struct reqdec *c, const char *msg, enum wire_pb_status s,
                                 const uint8_t *at)
{
    return req_fail(c, WIRE_READ_ERR_PROTOBUF, "protobuf: %s: %s at offset %zu", msg,
                    wire_pb_status_str(s), (size_t)(at - c->base));
}

static enum wire_read_err req_wt(struct reqdec *c, const char *msg, uint32_t field, unsigned wt,
                                 const uint8_t *at)
{
    return req_fail(c, WIRE_READ_ERR_PROTOBUF,
                    "protobuf: %s field %" PRIu32 " has wire type %s at offset %zu", msg, field,
                    wt_name(wt), (size_t)(at - c->base));
}

/* Skip one unknown field, or fail on a group / bad wire type. */
static enum wire_read_err req_skip(struct reqdec *c, const char *msg, const uint8_t **p,
                                   const uint8_t *end, unsigned wt)
{
    const uint8_t *at = *p;
    enum wire_pb_status s = wire_pb_skip(p, end, wt);
    return s == WIRE_PB_OK ? WIRE_READ_OK : req_pb(c, msg, s, at);
}

/* ReadHints is advisory: only its well-formedness is checked. */
static enum wire_read_err check_hints(struct reqdec *c, const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        const uint8_t *at = p;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status s = wire_pb_tag(&p, end, &f, &wt);
        if (s != WIRE_PB_OK)
            return req_pb(c, "ReadHints", s, at);
        if (f >= 1 && f <= 7) {
            unsigned want = (f == 2 || f == 5) ? WIRE_PB_LEN : WIRE_PB_VARINT;
            if (wt != want)
                return req_wt(c, "ReadHints", f, wt, at);
        }
        enum wire_read_err e = req_skip(c, "ReadHints", &p, end, wt);
        if (e != WIRE_READ_OK)
            return e;
    }
    return WIRE_READ_OK;
}

static enum wire_read_err parse_matcher(struct reqdec *c, size_t qi, size_t mi, const uint8_t *p,
                                        const uint8_t *end)
{
    uint64_t type = 0;
    const uint8_t *name = NULL, *value = NULL;
    size_t nlen = 0, vlen = 0;
    while (p < end) {
        const uint8_t *at = p;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status s = wire_pb_tag(&p, end, &f, &wt);
        if (s != WIRE_PB_OK)
            return req_pb(c, "LabelMatcher", s, at);
        if (f == 1) {
            if (wt != WIRE_PB_VARINT)
                return req_wt(c, "LabelMatcher", f, wt, at);
            if ((s = wire_pb_varint(&p, end, &type)) != WIRE_PB_OK)
                return req_pb(c, "LabelMatcher", s, at);
        } else if (f == 2 || f == 3) {
            if (wt != WIRE_PB_LEN)
                return req_wt(c, "LabelMatcher", f, wt, at);
            const uint8_t *sp;
            size_t n;
            if ((s = wire_pb_span(&p, end, &sp, &n)) != WIRE_PB_OK)
                return req_pb(c, "LabelMatcher", s, at);
            if (f == 2) {
                name = sp;
                nlen = n;
            } else {
                value = sp;
                vlen = n;
            }
        } else {
            enum wire_read_err e = req_skip(c, "LabelMatcher", &p, end, wt);
            if (e != WIRE_READ_OK)
                return e;
        }
    }
    char buf[56];
    /* an enum is an int32 on the wire: Go and protobuf-c keep the low 32 bits */
    int32_t t32 = (int32_t)(uint32_t)type;
    if (t32 < 0 || t32 > 3)
        return req_fail(c, WIRE_READ_ERR_INVALID_MATCHER,
                        "query %zu matcher %zu: unknown matcher type %" PRId32, qi, mi, t32);
    if (nlen == 0)
        return req_fail(c, WIRE_READ_ERR_INVALID_MATCHER, "query %zu matcher %zu: empty label name",
                        qi, mi);
    if (nlen > c->lim->max_name_len)
        return req_fail(c, WIRE_READ_ERR_INVALID_MATCHER,
                        "query %zu matcher %zu: label name of %zu bytes exceeds limit %zu", qi, mi,
                        nlen, c->lim->max_name_len);
    if (vlen > c->lim->max_value_len)
        return req_fail(c, WIRE_READ_ERR_INVALID_MATCHER,
                        "query %zu matcher %zu (%s): value of %zu bytes exceeds limit %zu", qi, mi,
                        printable(buf, name, nlen), vlen, c->lim->max_value_len);
    if (c->matchers != NULL) {
        struct wire_read_matcher *m = &c->matchers[c->nm];
        m->op = (enum matcher_op)t32;
        m->name = (const char *)name;
        m->name_len = (uint32_t)nlen;
        /* an absent value is the empty string: keep a valid pointer */
        m->value = value != NULL ? (const char *)value : (const char *)name + nlen;
        m->value_len = (uint32_t)vlen;
    }
    c->nm++;
    return WIRE_READ_OK;
}

static enum wire_read_err parse_query(struct reqdec *c, const uint8_t *p, const uint8_t *end)
{
    size_t qi = c->nq, m0 = c->nm, nm = 0;
    uint64_t start = 0, stop = 0;
    while (p < end) {
        const uint8_t *at = p;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status s = wire_pb_tag(&p, end, &f, &wt);
        if (s != WIRE_PB_OK)
            return req_pb(c, "Query", s, at);
        enum wire_read_err e = WIRE_READ_OK;
        if (f == 1 || f == 2) {
            if (wt != WIRE_PB_VARINT)
                return req_wt(c, "Query", f, wt, at);
            if ((s = wire_pb_varint(&p, end, f == 1 ? &start : &stop)) != WIRE_PB_OK)
                return req_pb(c, "Query", s, at);
        } else if (f == 3 || f == 4) {
            if (wt != WIRE_PB_LEN)
                return req_wt(c, "Query", f, wt, at);
            const uint8_t *sp;
            size_t n;
            if ((s = wire_pb_span(&p, end, &sp, &n)) != WIRE_PB_OK)
                return req_pb(c, "Query", s, at);
            if (f == 3) {
                if (nm == c->lim->max_matchers)
                    return req_fail(c, WIRE_READ_ERR_TOO_MANY_MATCHERS,
                                    "query %zu: more than %zu matchers", qi, c->lim->max_matchers);
                e = parse_matcher(c, qi, nm, sp, sp + n);
                nm++;
            } else {
                e = check_hints(c, sp, sp + n);
            }
        } else {
            e = req_skip(c, "Query", &p, end, wt);
        }
        if (e != WIRE_READ_OK)
            return e;
    }
    if (c->queries != NULL) {
        struct wire_read_query *q = &c->queries[qi];
        q->start_ms = (int64_t)start;
        q->end_ms = (int64_t)stop;
        q->matchers = c->matchers + m0;
        q->nmatchers = nm;
    }
    c->nq++;
    return WIRE_READ_OK;
}

static void note_type(struct reqdec *c, uint64_t v)
{
    int64_t t = (int32_t)(uint32_t)v;
    if (c->ntypes < 8)
        c->first_types[c->ntypes] = t;
    c->ntypes++;
    if (c->chosen < 0 && (t == WIRE_READ_SAMPLES || t == WIRE_READ_STREAMED_XOR_CHUNKS))
        c->chosen = (int)t;
}

static enum wire_read_err parse_request(struct reqdec *c, const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        const uint8_t *at = p;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status s = wire_pb_tag(&p, end, &f, &wt);
        if (s != WIRE_PB_OK)
            return req_pb(c, "ReadRequest", s, at);
        enum wire_read_err e = WIRE_READ_OK;
        if (f == 1) {
            if (wt != WIRE_PB_LEN)
                return req_wt(c, "ReadRequest", f, wt, at);
            const uint8_t *sp;
            size_t n;
            if ((s = wire_pb_span(&p, end, &sp, &n)) != WIRE_PB_OK)
                return req_pb(c, "ReadRequest", s, at);
            if (c->nq == c->lim->max_queries)
                return req_fail(c, WIRE_READ_ERR_TOO_MANY_QUERIES, "more than %zu queries",
                                c->lim->max_queries);
            e = parse_query(c, sp, sp + n);
        } else if (f == 2 && wt == WIRE_PB_VARINT) {
            uint64_t v;
            if ((s = wire_pb_varint(&p, end, &v)) != WIRE_PB_OK)
                return req_pb(c, "ReadRequest", s, at);
            note_type(c, v);
        } else if (f == 2 && wt == WIRE_PB_LEN) { /* packed */
            const uint8_t *sp;
            size_t n;
            if ((s = wire_pb_span(&p, end, &sp, &n)) != WIRE_PB_OK)
                return req_pb(c, "ReadRequest", s, at);
            const uint8_t *q = sp, *qend = sp + n;
            while (q < qend) {
                uint64_t v;
                const uint8_t *vat = q;
                if ((s = wire_pb_varint(&q, qend, &v)) != WIRE_PB_OK)
                    return req_pb(c, "ReadRequest accepted_response_types", s, vat);
                note_type(c, v);
            }
        } else if (f == 2) {
            return req_wt(c, "ReadRequest", f, wt, at);
        } else {
            e = req_skip(c, "ReadRequest", &p, end, wt);
        }
        if (e != WIRE_READ_OK)
            return e;
    }
    return WIRE_READ_OK;
}

static enum wire_read_err unsupported_types(struct reqdec *c)
{
    char list[128];
    size_t k = 0;
    for (size_t i = 0; i < c->ntypes && i < 8 && k < sizeof list; i++)
        k += (size_t)snprintf(list + k, sizeof list - k, "%s%" PRId64, i ? " " : "",
                              c->first_types[i]);
    return req_fail(c, WIRE_READ_ERR_RESPONSE_TYPE,
                    "server does not support any of the requested response types: [%s%s]; "
                    "supported: [0 (SAMPLES) 1 (STREAMED_XOR_CHUNKS)]",
                    list, c->ntypes > 8 ? " ..." : "");
}

/* Decode buf[0..len) (heap, realloc-able, handed over) into out. */
static enum wire_read_err decode_request(uint8_t *buf, size_t len,
                                         const struct wire_read_request_limits *lim,
                                         struct wire_read_request *out, char *err, size_t errcap)
{
    struct reqdec c = {.lim = lim, .base = buf, .err = err, .errcap = errcap, .chosen = -1};
    enum wire_read_err e = parse_request(&c, buf, buf + len);
    if (e != WIRE_READ_OK)
        goto fail;
    if (c.ntypes > 0 && c.chosen < 0) {
        e = unsupported_types(&c);
        goto fail;
    }
    /* Second pass into arrays placed after the body in the same block. */
    size_t off = (len + 15) & ~(size_t)15;
    size_t need =
        off + c.nq * sizeof(struct wire_read_query) + c.nm * sizeof(struct wire_read_matcher);
    uint8_t *block = realloc(buf, need ? need : 1);
    if (block == NULL) {
        e = req_fail(&c, WIRE_READ_ERR_NOMEM, "out of memory for %zu bytes", need);
        goto fail;
    }
    buf = block;
    struct reqdec f = {.lim = lim, .base = buf, .chosen = -1};
    f.queries = (struct wire_read_query *)(void *)(buf + off);
    f.matchers =
        (struct wire_read_matcher *)(void *)(buf + off + c.nq * sizeof(struct wire_read_query));
    e = parse_request(&f, buf, buf + len);
    if (e != WIRE_READ_OK) /* cannot happen: same bytes as the first pass */
        goto fail;
    wire_read_request_cleanup(out);
    out->queries = c.nq ? f.queries : NULL;
    out->nqueries = c.nq;
    out->response_type = c.chosen < 0 ? WIRE_READ_SAMPLES : (enum wire_read_type)c.chosen;
    out->decompressed_bytes = len;
    out->mem = buf;
    clear_err(err, errcap);
    return WIRE_READ_OK;
fail:
    free(buf);
    return e;
}

void wire_read_request_init(struct wire_read_request *r)
{
    if (r != NULL)
        memset(r, 0, sizeof *r);
}

void wire_read_request_cleanup(struct wire_read_request *r)
{
    if (r == NULL)
        return;
    free(r->mem);
    memset(r, 0, sizeof *r);
}

enum wire_read_err wire_read_decode_request(const void *body, size_t len,
                                            const struct wire_read_request_limits *limits,
                                            struct wire_read_request *out, char *err, size_t errcap)
{
    struct wire_read_request_limits def;
    if (limits == NULL) {
        wire_read_request_limits_default(&def);
        limits = &def;
    }
    if (len > limits->max_body_bytes) {
        errbuf_set(err, errcap, "request body of %zu bytes exceeds limit %zu", len,
                   limits->max_body_bytes);
        return WIRE_READ_ERR_TOO_LARGE;
    }
    void *buf = NULL;
    size_t cap = 0, n = 0;
    enum wire_err we = wire_snappy_uncompress(body, len, limits->max_decompressed_bytes, &buf, &cap,
                                              &n, err, errcap);
    if (we != WIRE_OK) {
        free(buf);
        return from_wire_err(we);
    }
    return decode_request(buf, n, limits, out, err, errcap);
}

enum wire_read_err wire_read_decode_request_raw(const void *pb, size_t len,
                                                const struct wire_read_request_limits *limits,
                                                struct wire_read_request *out, char *err,
                                                size_t errcap)
{
    struct wire_read_request_limits def;
    if (limits == NULL) {
        wire_read_request_limits_default(&def);
        limits = &def;
    }
    if (len > limits->max_decompressed_bytes) {
        errbuf_set(err, errcap, "request of %zu bytes exceeds limit %zu", len,
                   limits->max_decompressed_bytes);
        return WIRE_READ_ERR_TOO_LARGE;
    }
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL) {
        errbuf_set(err, errcap, "out of memory for %zu bytes", len);
        return WIRE_READ_ERR_NOMEM;
    }
    if (len > 0)
        memcpy(buf, pb, len);
    return decode_request(buf, len, limits, out, err, errcap);
}

/* Requests: encode -------------------------------------------------------- */

/* Size of an optional varint field with a one-byte key (omitted when 0, as
 * proto3 encoders do). */
static size_t opt_varint_size(uint64_t v)
{
    return v ? 1 + wire_pb_varint_size(v) : 0;
}

static uint8_t *put_opt_varint(uint8_t *p, uint32_t field, uint64_t v)
{
    if (v == 0)
        return p;
    p = wire_pb_put_tag(p, field, WIRE_PB_VARINT);
    return wire_pb_put_varint(p, v);
}

static size_t opt_bytes_size(size_t len)
{
    return len ? wire_pb_len_field_size(len) : 0;
}

static uint8_t *put_opt_bytes(uint8_t *p, uint32_t field, const void *d, size_t len)
{
    return len ? wire_pb_put_bytes(p, field, d, len) : p;
}

static size_t matcher_size(const struct wire_read_matcher *m)
{
    return opt_varint_size((uint64_t)m->op) + opt_bytes_size(m->name_len) +
           opt_bytes_size(m->value_len);
}

static size_t query_size(const struct wire_read_query *q)
{
    size_t n = opt_varint_size((uint64_t)q->start_ms) + opt_varint_size((uint64_t)q->end_ms);
    for (size_t i = 0; i < q->nmatchers; i++)
        n += wire_pb_len_field_size(matcher_size(&q->matchers[i]));
    return n;
}

int wire_read_encode_request(const struct wire_read_query *queries, size_t nqueries,
                             const enum wire_read_type *types, size_t ntypes, void **buf,
                             size_t *bufcap, size_t *outlen, char *err, size_t errcap)
{
    size_t total = 0;
    for (size_t i = 0; i < nqueries; i++) {
        for (size_t k = 0; k < queries[i].nmatchers; k++)
            if ((unsigned)queries[i].matchers[k].op > MATCH_NRE) {
                errbuf_set(err, errcap, "query %zu matcher %zu: invalid matcher type %d", i, k,
                           (int)queries[i].matchers[k].op);
                return -1;
            }
        total += wire_pb_len_field_size(query_size(&queries[i]));
    }
    for (size_t i = 0; i < ntypes; i++)
        if ((unsigned)types[i] > WIRE_READ_STREAMED_XOR_CHUNKS) {
            errbuf_set(err, errcap, "invalid response type %d", (int)types[i]);
            return -1;
        }
    if (ntypes > 0)
        total += wire_pb_len_field_size(ntypes); /* packed enums of one byte */
    uint8_t *pb = malloc(total ? total : 1);
    if (pb == NULL) {
        errbuf_set(err, errcap, "out of memory for %zu bytes", total);
        return -1;
    }
    uint8_t *p = pb;
    for (size_t i = 0; i < nqueries; i++) {
        const struct wire_read_query *q = &queries[i];
        p = wire_pb_put_tag(p, 1, WIRE_PB_LEN);
        p = wire_pb_put_varint(p, query_size(q));
        p = put_opt_varint(p, 1, (uint64_t)q->start_ms);
        p = put_opt_varint(p, 2, (uint64_t)q->end_ms);
        for (size_t k = 0; k < q->nmatchers; k++) {
            const struct wire_read_matcher *m = &q->matchers[k];
            p = wire_pb_put_tag(p, 3, WIRE_PB_LEN);
            p = wire_pb_put_varint(p, matcher_size(m));
            p = put_opt_varint(p, 1, (uint64_t)m->op);
            p = put_opt_bytes(p, 2, m->name, m->name_len);
            p = put_opt_bytes(p, 3, m->value, m->value_len);
        }
    }
    if (ntypes > 0) {
        p = wire_pb_put_tag(p, 2, WIRE_PB_LEN);
        p = wire_pb_put_varint(p, ntypes);
        for (size_t i = 0; i < ntypes; i++)
            *p++ = (uint8_t)types[i];
    }
    int rc = wire_snappy_compress(pb, (size_t)(p - pb), buf, bufcap, outlen);
    free(pb);
    if (rc != 0)
        errbuf_set(err, errcap, "snappy: cannot compress %zu bytes", total);
    else
        clear_err(err, errcap);
    return rc;
}

/* Responses: build ----------------------------------------------------------- */

struct chunk_ref {
    size_t off, len; /* XOR data in the scratch buffer */
    int64_t mint, maxt;
};

struct wire_read_response {
    size_t max_bytes;
    size_t frame_bytes;
    enum wire_read_type type;
    size_t nqueries;
    size_t next_q;  /* SAMPLES: QueryResults [0, next_q) are closed */
    int q_open;     /* SAMPLES: QueryResult next_q is open */
    size_t q_start; /* ... and its content starts here in out */
    size_t last_q;  /* query index of the previous add_series */
    uint8_t *out;   /* protobuf (SAMPLES) or frames not yet taken */
    size_t len, cap;
    size_t taken;    /* streamed: out[0..taken) was handed out */
    size_t produced; /* streamed: frame bytes over the whole response */
    void *z;         /* snappy body */
    size_t zcap;
    uint8_t * xor ; /* chunk data scratch */
    size_t xorcap;
    struct chunk_ref *chunks;
    size_t chunkcap;
    const char *error;
};

struct wire_read_response *wire_read_response_create(size_t max_bytes, size_t frame_bytes)
{
    struct wire_read_response *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->max_bytes = max_bytes;
    r->frame_bytes = frame_bytes;
    r->error = "";
    return r;
}

void wire_read_response_destroy(struct wire_read_response *r)
{
    if (r == NULL)
        return;
    free(r->out);
    free(r->z);
    free(r->xor);
    free(r->chunks);
    free(r);
}

void wire_read_response_begin(struct wire_read_response *r, enum wire_read_type type,
                              size_t nqueries)
{
    r->type = type;
    r->nqueries = nqueries;
    r->next_q = 0;
    r->q_open = 0;
    r->q_start = 0;
    r->last_q = 0;
    r->len = 0;
    r->taken = 0;
    r->produced = 0;
    r->error = "";
}

const char *wire_read_response_error(const struct wire_read_response *r)
{
    return r->error;
}

size_t wire_read_response_bytes(const struct wire_read_response *r)
{
    return r->type == WIRE_READ_SAMPLES ? r->len : r->produced;
}

static enum wire_read_err resp_fail(struct wire_read_response *r, enum wire_read_err e,
                                    const char *why)
{
    r->error = why;
    return e;
}

/* Drop what an earlier take handed out. */
static void forget_taken(struct wire_read_response *r)
{
    if (r->taken > 0) {
        memmove(r->out, r->out + r->taken, r->len - r->taken);
        r->len -= r->taken;
        r->taken = 0;
    }
}

static size_t label_msg_size(const struct label *l)
{
    return opt_bytes_size(l->name_len) + opt_bytes_size(l->value_len);
}

static size_t labels_field_size(const struct label *labels, size_t n)
{
    size_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += wire_pb_len_field_size(label_msg_size(&labels[i]));
    return s;
}

static uint8_t *put_labels(uint8_t *p, const struct label *labels, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p = wire_pb_put_tag(p, 1, WIRE_PB_LEN);
        p = wire_pb_put_varint(p, label_msg_size(&labels[i]));
        p = put_opt_bytes(p, 1, labels[i].name, labels[i].name_len);
        p = put_opt_bytes(p, 2, labels[i].value, labels[i].value_len);
    }
    return p;
}

static size_t sample_msg_size(const struct sample *s)
{
    return (bits_of(s->v) ? 9 : 0) + opt_varint_size((uint64_t)s->t);
}

/* Close the open QueryResult: its content moves right to make room for the
 * key and length (capacity was reserved by the caller). */
static void close_query(struct wire_read_response *r)
{
    size_t content = r->len - r->q_start;
    size_t h = 1 + wire_pb_varint_size(content);
    memmove(r->out + r->q_start + h, r->out + r->q_start, content);
    uint8_t *p = wire_pb_put_tag(r->out + r->q_start, 1, WIRE_PB_LEN);
    wire_pb_put_varint(p, content);
    r->len += h;
    r->q_open = 0;
    r->next_q++;
}

/* Bytes close_query() and empty results up to query q (exclusive) add. */
static size_t closing_cost(const struct wire_read_response *r, size_t q)
{
    size_t n = 0, next = r->next_q;
    if (r->q_open) {
        n += 1 + wire_pb_varint_size(r->len - r->q_start);
        next++;
    }
    return n + 2 * (q > next ? q - next : 0);
}

static void close_up_to(struct wire_read_response *r, size_t q)
{
    if (r->q_open)
        close_query(r);
    while (r->next_q < q) {
        r->out[r->len++] = 0x0a; /* empty QueryResult */
        r->out[r->len++] = 0x00;
        r->next_q++;
    }
}

static enum wire_read_err add_samples_series(struct wire_read_response *r, size_t qi,
                                             const struct label *labels, size_t nlabels,
                                             const struct sample *samples, size_t ns)
{
    size_t ts = labels_field_size(labels, nlabels);
    for (size_t i = 0; i < ns; i++)
        ts += wire_pb_len_field_size(sample_msg_size(&samples[i]));
    size_t entry = wire_pb_len_field_size(ts);
    int reopen = !(r->q_open && r->next_q == qi);
    size_t cost = reopen ? closing_cost(r, qi) : 0;
    size_t content = (reopen ? 0 : r->len - r->q_start) + entry;
    /* what the body would be if finished right after this series */
    size_t after = r->len + cost + entry + 1 + wire_pb_varint_size(content);
    if (after > r->max_bytes)
        return resp_fail(r, WIRE_READ_ERR_LIMIT, "response exceeds its byte limit");
    if (grow((void **)&r->out, &r->cap, 1, after + 16) != 0)
        return resp_fail(r, WIRE_READ_ERR_NOMEM, "out of memory");
    if (reopen) {
        close_up_to(r, qi);
        r->q_open = 1;
        r->q_start = r->len;
    }
    uint8_t *p = r->out + r->len;
    p = wire_pb_put_tag(p, 1, WIRE_PB_LEN);
    p = wire_pb_put_varint(p, ts);
    p = put_labels(p, labels, nlabels);
    for (size_t i = 0; i < ns; i++) {
        uint64_t b = bits_of(samples[i].v);
        p = wire_pb_put_tag(p, 2, WIRE_PB_LEN);
        p = wire_pb_put_varint(p, sample_msg_size(&samples[i]));
        if (b) {
            p = wire_pb_put_tag(p, 1, WIRE_PB_I64);
            p = wire_pb_put_le64(p, b);
        }
        p = put_opt_varint(p, 2, (uint64_t)samples[i].t);
    }
    r->len = (size_t)(p - r->out);
    return WIRE_READ_OK;
}

static size_t chunk_msg_size(const struct chunk_ref *c)
{
    return opt_varint_size((uint64_t)c->mint) + opt_varint_size((uint64_t)c->maxt) + 2 +
           wire_pb_len_field_size(c->len);
}

/* Message and frame sizes of chunks [a, b) of a series. */
static size_t frame_msg_size(const struct wire_read_response *r, size_t lsize, size_t a, size_t b,
                             size_t qi)
{
    size_t s = lsize;
    for (size_t i = a; i < b; i++)
        s += wire_pb_len_field_size(chunk_msg_size(&r->chunks[i]));
    return wire_pb_len_field_size(s) + opt_varint_size(qi);
}

static size_t frame_size(size_t msg)
{
    return wire_pb_varint_size(msg) + 4 + msg;
}

static uint8_t *put_frame(const struct wire_read_response *r, uint8_t *p, size_t msg,
                          const struct label *labels, size_t nlabels, size_t lsize, size_t a,
                          size_t b, size_t qi)
{
    p = wire_pb_put_varint(p, msg);
    uint8_t *crc_at = p;
    p += 4;
    uint8_t *m = p;
    size_t series = lsize;
    for (size_t i = a; i < b; i++)
        series += wire_pb_len_field_size(chunk_msg_size(&r->chunks[i]));
    p = wire_pb_put_tag(p, 1, WIRE_PB_LEN);
    p = wire_pb_put_varint(p, series);
    p = put_labels(p, labels, nlabels);
    for (size_t i = a; i < b; i++) {
        const struct chunk_ref *c = &r->chunks[i];
        p = wire_pb_put_tag(p, 2, WIRE_PB_LEN);
        p = wire_pb_put_varint(p, chunk_msg_size(c));
        p = put_opt_varint(p, 1, (uint64_t)c->mint);
        p = put_opt_varint(p, 2, (uint64_t)c->maxt);
        p = put_opt_varint(p, 3, 1); /* XOR */
        p = wire_pb_put_bytes(p, 4, r->xor +c->off, c->len);
    }
    p = put_opt_varint(p, 2, qi);
    uint32_t crc = crc32c(m, (size_t)(p - m));
    crc_at[0] = (uint8_t)(crc >> 24);
    crc_at[1] = (uint8_t)(crc >> 16);
    crc_at[2] = (uint8_t)(crc >> 8);
    crc_at[3] = (uint8_t)crc;
    return p;
}

/* Where the frame starting at chunk a ends: as many chunks as fit in
 * frame_bytes, and at least one. */
static size_t frame_end(const struct wire_read_response *r, size_t lsize, size_t a, size_t nchunks,
                        size_t qi)
{
    size_t series = lsize + wire_pb_len_field_size(chunk_msg_size(&r->chunks[a])), b = a + 1;
    for (; b < nchunks; b++) {
        size_t next = series + wire_pb_len_field_size(chunk_msg_size(&r->chunks[b]));
        if (frame_size(wire_pb_len_field_size(next) + opt_varint_size(qi)) > r->frame_bytes)
            break;
        series = next;
    }
    return b;
}

static enum wire_read_err add_streamed_series(struct wire_read_response *r, size_t qi,
                                              const struct label *labels, size_t nlabels,
                                              const struct sample *samples, size_t ns)
{
    if (ns == 0)
        return WIRE_READ_OK;
    size_t nchunks = (ns + WIRE_READ_CHUNK_SAMPLES - 1) / WIRE_READ_CHUNK_SAMPLES;
    if (grow((void **)&r->chunks, &r->chunkcap, sizeof *r->chunks, nchunks) != 0 ||
        grow((void **)&r->xor, &r->xorcap, 1,
             nchunks * wire_read_xor_max_size(WIRE_READ_CHUNK_SAMPLES)) != 0)
        return resp_fail(r, WIRE_READ_ERR_NOMEM, "out of memory");
    size_t off = 0;
    for (size_t i = 0; i < nchunks; i++) {
        size_t a = i * WIRE_READ_CHUNK_SAMPLES;
        size_t k = ns - a < WIRE_READ_CHUNK_SAMPLES ? ns - a : WIRE_READ_CHUNK_SAMPLES;
        size_t n = wire_read_xor_encode(samples + a, k, r->xor +off, r->xorcap - off);
        r->chunks[i] = (struct chunk_ref){off, n, samples[a].t, samples[a + k - 1].t};
        off += n;
    }
    size_t lsize = labels_field_size(labels, nlabels), total = 0;
    for (size_t a = 0; a < nchunks;) {
        size_t b = frame_end(r, lsize, a, nchunks, qi);
        total += frame_size(frame_msg_size(r, lsize, a, b, qi));
        a = b;
    }
    if (total > r->max_bytes || r->produced > r->max_bytes - total)
        return resp_fail(r, WIRE_READ_ERR_LIMIT, "response exceeds its byte limit");
    forget_taken(r);
    if (grow((void **)&r->out, &r->cap, 1, r->len + total) != 0)
        return resp_fail(r, WIRE_READ_ERR_NOMEM, "out of memory");
    uint8_t *p = r->out + r->len;
    for (size_t a = 0; a < nchunks;) {
        size_t b = frame_end(r, lsize, a, nchunks, qi);
        p = put_frame(r, p, frame_msg_size(r, lsize, a, b, qi), labels, nlabels, lsize, a, b, qi);
        a = b;
    }
    r->len = (size_t)(p - r->out);
    r->produced += total;
    return WIRE_READ_OK;
}

enum wire_read_err wire_read_response_add_series(struct wire_read_response *r, size_t query_index,
                                                 const struct label *labels, size_t nlabels,
                                                 const struct sample *samples, size_t nsamples)
{
    if (query_index >= r->nqueries || query_index < r->last_q)
        return resp_fail(r, WIRE_READ_ERR_INVALID_SERIES, "query index out of range or decreasing");
    if (!labels_sorted(labels, nlabels))
        return resp_fail(r, WIRE_READ_ERR_INVALID_SERIES, "labels not sorted or duplicated");
    for (size_t i = 1; i < nsamples; i++)
        if (samples[i].t <= samples[i - 1].t)
            return resp_fail(r, WIRE_READ_ERR_INVALID_SERIES, "samples not strictly time-ordered");
    enum wire_read_err e =
        r->type == WIRE_READ_SAMPLES
            ? add_samples_series(r, query_index, labels, nlabels, samples, nsamples)
            : add_streamed_series(r, query_index, labels, nlabels, samples, nsamples);
    if (e == WIRE_READ_OK) {
        r->last_q = query_index;
        r->error = "";
    }
    return e;
}

void wire_read_response_take(struct wire_read_response *r, const void **out, size_t *outlen)
{
    if (r->type == WIRE_READ_SAMPLES) {
        *out = r->out;
        *outlen = 0;
        return;
    }
    forget_taken(r);
    *out = r->out;
    *outlen = r->len;
    r->taken = r->len;
}

enum wire_read_err wire_read_response_finish(struct wire_read_response *r, const void **out,
                                             size_t *outlen)
{
    if (r->type != WIRE_READ_SAMPLES) {
        wire_read_response_take(r, out, outlen);
        return WIRE_READ_OK;
    }
    if (grow((void **)&r->out, &r->cap, 1, r->len + closing_cost(r, r->nqueries) + 1) != 0)
        return resp_fail(r, WIRE_READ_ERR_NOMEM, "out of memory");
    close_up_to(r, r->nqueries);
    size_t zlen;
    if (r->len > UINT32_MAX)
        return resp_fail(r, WIRE_READ_ERR_LIMIT, "response over 4 GiB");
    if (wire_snappy_compress(r->out, r->len, &r->z, &r->zcap, &zlen) != 0)
        return resp_fail(r, WIRE_READ_ERR_NOMEM, "out of memory compressing the response");
    *out = r->z;
    *outlen = zlen;
    return WIRE_READ_OK;
}

/* Responses: decode ---------------------------------------------------------- */

struct respdec {
    const struct wire_read_response_limits *lim;
    const struct wire_read_query *queries;
    size_t nqueries;
    wire_read_series_fn fn;
    void *ctx;
    struct wire_read_stats *st;
    char *err;
    size_t errcap;
    const uint8_t *base;
    uint64_t decoded;  /* samples buffered over the response (max_samples) */
    struct label *cur; /* labels of the series being built */
    size_t ncur, curcap;
    struct label *next; /* labels of the incoming streamed series */
    size_t nnext, nextcap;
    struct sample *samples; /* the series being built */
    size_t ns, scap;
    struct sample *tmp; /* merge-sort scratch */
    size_t tmpcap;
    int pending; /* streamed: cur/samples hold an undelivered series */
    size_t pending_q;
};

static enum wire_read_err dec_fail(struct respdec *c, enum wire_read_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum wire_read_err dec_fail(struct respdec *c, enum wire_read_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errbuf_vset(c->err, c->errcap, fmt, ap);
    va_end(ap);
    return e;
}

static enum wire_read_err dec_pb(struct respdec *c, const char *msg, enum wire_pb_status s,
                                 const uint8_t *at)
{
    return dec_fail(c, WIRE_READ_ERR_PROTOBUF, "protobuf: %s: %s at offset %zu", msg,
                    wire_pb_status_str(s), (size_t)(at - c->base));
}

static enum wire_read_err dec_wt(struct respdec *c, const char *msg, uint32_t field, unsigned wt,
                                 const uint8_t *at)
{
    return dec_fail(c, WIRE_READ_ERR_PROTOBUF,
                    "protobuf: %s field %" PRIu32 " has wire type %s at offset %zu", msg, field,
                    wt_name(wt), (size_t)(at - c->base));
}

/* One field of a message: key, then (for the caller) its value. Checks the
 * wire type of fields the schema knows (want[f] for f < nwant; 0xff =
 * unknown) and skips the others. *skipped tells the caller there is nothing
 * more to read. */
static enum wire_read_err next_field(struct respdec *c, const char *msg, const uint8_t **p,
                                     const uint8_t *end, const uint8_t *want, uint32_t nwant,
                                     uint32_t *field, int *skipped)
{
    const uint8_t *at = *p;
    unsigned wt;
    enum wire_pb_status s = wire_pb_tag(p, end, field, &wt);
    if (s != WIRE_PB_OK)
        return dec_pb(c, msg, s, at);
    *skipped = 0;
    if (*field < nwant && want[*field] != 0xff) {
        if (wt != want[*field])
            return dec_wt(c, msg, *field, wt, at);
        return WIRE_READ_OK;
    }
    *skipped = 1;
    s = wire_pb_skip(p, end, wt);
    return s == WIRE_PB_OK ? WIRE_READ_OK : dec_pb(c, msg, s, at);
}

static const uint8_t label_want[] = {0xff, WIRE_PB_LEN, WIRE_PB_LEN};
static const uint8_t sample_want[] = {0xff, WIRE_PB_I64, WIRE_PB_VARINT};
static const uint8_t series_want[] = {0xff, WIRE_PB_LEN, WIRE_PB_LEN, WIRE_PB_LEN, WIRE_PB_LEN};
static const uint8_t chunk_want[] = {0xff, WIRE_PB_VARINT, WIRE_PB_VARINT, WIRE_PB_VARINT,
                                     WIRE_PB_LEN};
static const uint8_t result_want[] = {0xff, WIRE_PB_LEN};
static const uint8_t chunked_want[] = {0xff, WIRE_PB_LEN, WIRE_PB_VARINT};
#define NWANT(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

static enum wire_read_err read_span(struct respdec *c, const char *msg, const uint8_t **p,
                                    const uint8_t *end, const uint8_t **sp, size_t *n)
{
    const uint8_t *at = *p;
    enum wire_pb_status s = wire_pb_span(p, end, sp, n);
    return s == WIRE_PB_OK ? WIRE_READ_OK : dec_pb(c, msg, s, at);
}

static enum wire_read_err read_varint(struct respdec *c, const char *msg, const uint8_t **p,
                                      const uint8_t *end, uint64_t *v)
{
    const uint8_t *at = *p;
    enum wire_pb_status s = wire_pb_varint(p, end, v);
    return s == WIRE_PB_OK ? WIRE_READ_OK : dec_pb(c, msg, s, at);
}

/* Parse a Label message and append it to *ls (unless its value is empty). */
static enum wire_read_err parse_label(struct respdec *c, const uint8_t *p, const uint8_t *end,
                                      struct label **ls, size_t *cap, size_t *n)
{
    const uint8_t *name = p, *value = p;
    size_t nlen = 0, vlen = 0;
    while (p < end) {
        uint32_t f;
        int skipped;
        enum wire_read_err e =
            next_field(c, "Label", &p, end, label_want, NWANT(label_want), &f, &skipped);
        if (e == WIRE_READ_OK && !skipped)
            e = read_span(c, "Label", &p, end, f == 1 ? &name : &value, f == 1 ? &nlen : &vlen);
        if (e != WIRE_READ_OK)
            return e;
    }
    char buf[56];
    if (nlen > c->lim->max_label_name_len)
        return dec_fail(c, WIRE_READ_ERR_LIMIT, "label name of %zu bytes exceeds limit %zu", nlen,
                        c->lim->max_label_name_len);
    if (vlen > c->lim->max_label_value_len)
        return dec_fail(c, WIRE_READ_ERR_LIMIT, "label %s: value of %zu bytes exceeds limit %zu",
                        printable(buf, name, nlen), vlen, c->lim->max_label_value_len);
    if (vlen == 0) /* an empty value is an absent label */
        return WIRE_READ_OK;
    if (*n == c->lim->max_labels)
        return dec_fail(c, WIRE_READ_ERR_LIMIT, "series with more than %zu labels",
                        c->lim->max_labels);
    if (grow((void **)ls, cap, sizeof **ls, *n + 1) != 0)
        return dec_fail(c, WIRE_READ_ERR_NOMEM, "out of memory for %zu labels", *n + 1);
    (*ls)[*n] =
        (struct label){(const char *)name, (const char *)value, (uint32_t)nlen, (uint32_t)vlen};
    (*n)++;
    return WIRE_READ_OK;
}

/* Collect the labels (field 1) of a TimeSeries or ChunkedSeries, checking
 * the wire types of every field on the way; sort and validate them. */
static enum wire_read_err parse_series_labels(struct respdec *c, const char *msg, const uint8_t *p,
                                              const uint8_t *end, const uint8_t *want,
                                              uint32_t nwant, struct label **ls, size_t *cap,
                                              size_t *n)
{
    *n = 0;
    while (p < end) {
        uint32_t f = 0;
        int skipped = 1;
        const uint8_t *sp = NULL;
        size_t len = 0;
        enum wire_read_err e = next_field(c, msg, &p, end, want, nwant, &f, &skipped);
        if (e == WIRE_READ_OK && !skipped)
            e = read_span(c, msg, &p, end, &sp, &len);
        if (e == WIRE_READ_OK && !skipped && f == 1)
            e = parse_label(c, sp, sp + len, ls, cap, n);
        if (e != WIRE_READ_OK)
            return e;
    }
    labels_sort(*ls, *n);
    enum labels_check k = labels_validate(*ls, *n);
    if (k != LABELS_OK) {
        char buf[256];
        labels_format(*ls, *n, buf, sizeof buf);
        for (char *q = buf; *q; q++) /* untrusted bytes: keep the line one line */
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                *q = '?';
        return dec_fail(c, WIRE_READ_ERR_INVALID_SERIES, "series %s: %s", buf, labels_check_str(k));
    }
    return WIRE_READ_OK;
}

/* Make room for k more samples in the series being built. */
static enum wire_read_err reserve_samples(struct respdec *c, size_t k)
{
    if (k > c->lim->max_series_samples - c->ns)
        return dec_fail(c, WIRE_READ_ERR_LIMIT, "series with more than %zu samples",
                        c->lim->max_series_samples);
    if (k > c->lim->max_samples - c->decoded)
        return dec_fail(c, WIRE_READ_ERR_LIMIT, "response with more than %zu samples",
                        c->lim->max_samples);
    if (grow((void **)&c->samples, &c->scap, sizeof *c->samples, c->ns + k) != 0)
        return dec_fail(c, WIRE_READ_ERR_NOMEM, "out of memory for %zu samples", c->ns + k);
    return WIRE_READ_OK;
}

/* Keep samples [from, ns) that fall in query qi's range. */
static void clip(struct respdec *c, size_t qi, size_t from)
{
    int64_t lo = c->queries[qi].start_ms, hi = c->queries[qi].end_ms;
    size_t k = from;
    for (size_t i = from; i < c->ns; i++) {
        if (c->samples[i].t < lo || c->samples[i].t > hi) {
            c->st->out_of_range++;
            continue;
        }
        c->samples[k++] = c->samples[i];
    }
    c->decoded += k - from;
    c->ns = k;
}

/* Stable merge sort by time (overlapping chunks), then keep the first
 * sample of each timestamp. */
static enum wire_read_err normalise(struct respdec *c)
{
    size_t n = c->ns, i;
    for (i = 1; i < n; i++)
        if (c->samples[i].t <= c->samples[i - 1].t)
            break;
    if (i >= n)
        return WIRE_READ_OK;
    if (grow((void **)&c->tmp, &c->tmpcap, sizeof *c->tmp, n) != 0)
        return dec_fail(c, WIRE_READ_ERR_NOMEM, "out of memory for %zu samples", n);
    struct sample *a = c->samples, *t = c->tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t x = lo, y = mid, k = lo;
            while (x < mid && y < hi)
                t[k++] = a[y].t < a[x].t ? a[y++] : a[x++];
            while (x < mid)
                t[k++] = a[x++];
            while (y < hi)
                t[k++] = a[y++];
        }
        struct sample *s = a;
        a = t;
        t = s;
    }
    if (a != c->samples)
        memcpy(c->samples, a, n * sizeof *a);
    size_t k = 1;
    for (i = 1; i < n; i++) {
        if (c->samples[i].t == c->samples[k - 1].t) {
            c->st->duplicates++;
            continue;
        }
        c->samples[k++] = c->samples[i];
    }
    c->ns = k;
    return WIRE_READ_OK;
}

static enum wire_read_err deliver(struct respdec *c, size_t qi)
{
    enum wire_read_err e = normalise(c);
    if (e != WIRE_READ_OK)
        return e;
    if (c->st->series >= c->lim->max_series)
        return dec_fail(c, WIRE_READ_ERR_LIMIT, "response with more than %zu series",
                        c->lim->max_series);
    if (c->fn(c->ctx, qi, c->cur, c->ncur, c->samples, c->ns) != 0)
        return dec_fail(c, WIRE_READ_ERR_ABORTED, "stopped by the caller");
    c->st->series++;
    c->st->samples += c->ns;
    c->ns = 0;
    return WIRE_READ_OK;
}

static enum wire_read_err parse_sample(struct respdec *c, const uint8_t *p, const uint8_t *end)
{
    uint64_t v = 0, t = 0;
    while (p < end) {
        uint32_t f;
        int skipped;
        const uint8_t *at = p;
        enum wire_read_err e =
            next_field(c, "Sample", &p, end, sample_want, NWANT(sample_want), &f, &skipped);
        if (e == WIRE_READ_OK && !skipped && f == 1) {
            at = p;
            enum wire_pb_status s = wire_pb_fixed64(&p, end, &v);
            if (s != WIRE_PB_OK)
                e = dec_pb(c, "Sample", s, at);
        } else if (e == WIRE_READ_OK && !skipped) {
            e = read_varint(c, "Sample", &p, end, &t);
        }
        if (e != WIRE_READ_OK)
            return e;
    }
    enum wire_read_err e = reserve_samples(c, 1);
    if (e != WIRE_READ_OK)
        return e;
    c->samples[c->ns].t = (int64_t)t;
    c->samples[c->ns].v = double_of(v);
    c->ns++;
    return WIRE_READ_OK;
}

static enum wire_read_err parse_timeseries(struct respdec *c, size_t qi, const uint8_t *p,
                                           const uint8_t *end)
{
    enum wire_read_err e = parse_series_labels(c, "TimeSeries", p, end, series_want,
                                               NWANT(series_want), &c->cur, &c->curcap, &c->ncur);
    if (e != WIRE_READ_OK)
        return e;
    c->ns = 0;
    while (p < end) { /* structure already checked by parse_series_labels */
        uint32_t f;
        int skipped;
        const uint8_t *sp;
        size_t n;
        e = next_field(c, "TimeSeries", &p, end, series_want, NWANT(series_want), &f, &skipped);
        if (e == WIRE_READ_OK && !skipped)
            e = read_span(c, "TimeSeries", &p, end, &sp, &n);
        if (e == WIRE_READ_OK && !skipped && f == 2) {
            size_t from = c->ns;
            e = parse_sample(c, sp, sp + n);
            if (e == WIRE_READ_OK)
                clip(c, qi, from);
        } else if (e == WIRE_READ_OK && !skipped && f == 4) {
            c->st->skipped_histograms++;
        }
        if (e != WIRE_READ_OK)
            return e;
    }
    return deliver(c, qi);
}

static enum wire_read_err decode_samples(struct respdec *c, const uint8_t *p, const uint8_t *end)
{
    size_t results = 0;
    while (p < end) {
        uint32_t f;
        int skipped;
        const uint8_t *sp;
        size_t n;
        const uint8_t *at = p;
        enum wire_read_err e =
            next_field(c, "ReadResponse", &p, end, result_want, NWANT(result_want), &f, &skipped);
        if (e == WIRE_READ_OK && !skipped)
            e = read_span(c, "ReadResponse", &p, end, &sp, &n);
        if (e != WIRE_READ_OK)
            return e;
        if (skipped)
            continue;
        if (results == c->nqueries)
            return dec_fail(c, WIRE_READ_ERR_PROTOBUF,
                            "response has more results than the %zu queries (offset %zu)",
                            c->nqueries, (size_t)(at - c->base));
        const uint8_t *q = sp, *qend = sp + n;
        while (q < qend) {
            const uint8_t *tsp;
            size_t tn;
            e = next_field(c, "QueryResult", &q, qend, result_want, NWANT(result_want), &f,
                           &skipped);
            if (e == WIRE_READ_OK && !skipped)
                e = read_span(c, "QueryResult", &q, qend, &tsp, &tn);
            if (e == WIRE_READ_OK && !skipped)
                e = parse_timeseries(c, results, tsp, tsp + tn);
            if (e != WIRE_READ_OK)
                return e;
        }
        results++;
        c->st->results++;
    }
    if (results != c->nqueries)
        return dec_fail(c, WIRE_READ_ERR_PROTOBUF, "response has %zu results for %zu queries",
                        results, c->nqueries);
    return WIRE_READ_OK;
}

static int labels_equal(const struct label *a, size_t na, const struct label *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (labels_cmp(&a[i], &b[i]) != 0)
            return 0;
    return 1;
}

static enum wire_read_err parse_chunk(struct respdec *c, size_t qi, const uint8_t *p,
                                      const uint8_t *end)
{
    uint64_t type = 0, ignored;
    const uint8_t *data = p;
    size_t dlen = 0;
    const uint8_t *start = p;
    while (p < end) {
        uint32_t f;
        int skipped;
        enum wire_read_err e =
            next_field(c, "Chunk", &p, end, chunk_want, NWANT(chunk_want), &f, &skipped);
        if (e == WIRE_READ_OK && !skipped && f == 4)
            e = read_span(c, "Chunk", &p, end, &data, &dlen);
        else if (e == WIRE_READ_OK && !skipped)
            e = read_varint(c, "Chunk", &p, end, f == 3 ? &type : &ignored);
        if (e != WIRE_READ_OK)
            return e;
    }
    if ((int32_t)(uint32_t)type != 1) { /* histograms and newer encodings */
        c->st->skipped_chunks++;
        return WIRE_READ_OK;
    }
    long count = wire_read_xor_count(data, dlen);
    if (count < 0)
        return dec_fail(c, WIRE_READ_ERR_CHUNK, "XOR chunk at offset %zu: %zu bytes",
                        (size_t)(start - c->base), dlen);
    enum wire_read_err e = reserve_samples(c, (size_t)count);
    if (e != WIRE_READ_OK)
        return e;
    size_t n;
    char why[128];
    if (wire_read_xor_decode(data, dlen, c->samples + c->ns, (size_t)count, &n, why, sizeof why) !=
        0)
        return dec_fail(c, WIRE_READ_ERR_CHUNK, "chunk at offset %zu: %s",
                        (size_t)(start - c->base), why);
    size_t from = c->ns;
    c->ns += n;
    clip(c, qi, from);
    c->st->chunks++;
    return WIRE_READ_OK;
}

static enum wire_read_err parse_chunked_series(struct respdec *c, size_t qi, const uint8_t *p,
                                               const uint8_t *end)
{
    enum wire_read_err e = parse_series_labels(c, "ChunkedSeries", p, end, series_want, 3, &c->next,
                                               &c->nextcap, &c->nnext);
    if (e != WIRE_READ_OK)
        return e;
    if (!(c->pending && c->pending_q == qi && labels_equal(c->cur, c->ncur, c->next, c->nnext))) {
        /* a new series: the previous one is complete */
        if (c->pending && (e = deliver(c, c->pending_q)) != WIRE_READ_OK)
            return e;
        struct label *s = c->cur;
        size_t scap = c->curcap;
        c->cur = c->next;
        c->curcap = c->nextcap;
        c->next = s;
        c->nextcap = scap;
        c->ncur = c->nnext;
        c->pending = 1;
        c->pending_q = qi;
        c->ns = 0;
    }
    while (p < end) {
        uint32_t f;
        int skipped;
        const uint8_t *sp;
        size_t n;
        e = next_field(c, "ChunkedSeries", &p, end, series_want, 3, &f, &skipped);
        if (e == WIRE_READ_OK && !skipped)
            e = read_span(c, "ChunkedSeries", &p, end, &sp, &n);
        if (e == WIRE_READ_OK && !skipped && f == 2)
            e = parse_chunk(c, qi, sp, sp + n);
        if (e != WIRE_READ_OK)
            return e;
    }
    return WIRE_READ_OK;
}

static enum wire_read_err parse_frame_msg(struct respdec *c, const uint8_t *p, const uint8_t *end)
{
    /* query_index may follow the series: find it first (last one wins) */
    uint64_t qi = 0;
    const uint8_t *q = p;
    while (q < end) {
        uint32_t f;
        int skipped;
        const uint8_t *sp;
        size_t n;
        enum wire_read_err e = next_field(c, "ChunkedReadResponse", &q, end, chunked_want,
                                          NWANT(chunked_want), &f, &skipped);
        if (e == WIRE_READ_OK && !skipped && f == 1)
            e = read_span(c, "ChunkedReadResponse", &q, end, &sp, &n);
        else if (e == WIRE_READ_OK && !skipped)
            e = read_varint(c, "ChunkedReadResponse", &q, end, &qi);
        if (e != WIRE_READ_OK)
            return e;
    }
    if (qi >= c->nqueries)
        return dec_fail(c, WIRE_READ_ERR_PROTOBUF,
                        "frame at offset %zu: query_index %" PRId64 " out of range (%zu queries)",
                        (size_t)(p - c->base), (int64_t)qi, c->nqueries);
    while (p < end) {
        uint32_t f;
        int skipped;
        const uint8_t *sp;
        size_t n;
        uint64_t ignored;
        enum wire_read_err e = next_field(c, "ChunkedReadResponse", &p, end, chunked_want,
                                          NWANT(chunked_want), &f, &skipped);
        if (e == WIRE_READ_OK && !skipped && f == 1) {
            e = read_span(c, "ChunkedReadResponse", &p, end, &sp, &n);
            if (e == WIRE_READ_OK)
                e = parse_chunked_series(c, (size_t)qi, sp, sp + n);
        } else if (e == WIRE_READ_OK && !skipped) {
            e = read_varint(c, "ChunkedReadResponse", &p, end, &ignored);
        }
        if (e != WIRE_READ_OK)
            return e;
    }
    return WIRE_READ_OK;
}

/* A broken frame is often the server's text error appended to the stream:
 * show it when the rest of the body is text. */
static const char *trailing_text(char out[80], const uint8_t *p, const uint8_t *end)
{
    size_t n = (size_t)(end - p);
    for (size_t i = 0; i < n && i < 48; i++)
        if ((p[i] < 0x20 && p[i] != '\n') || p[i] >= 0x7f)
            return "";
    char buf[56];
    snprintf(out, 80, " (body continues with text \"%s\")", printable(buf, p, n));
    return out;
}

static enum wire_read_err decode_frames(struct respdec *c, const uint8_t *p, const uint8_t *end)
{
    char text[80];
    while (p < end) {
        const uint8_t *frame = p;
        size_t off = (size_t)(p - c->base);
        uint64_t len;
        enum wire_pb_status s = wire_pb_varint(&p, end, &len);
        if (s != WIRE_PB_OK)
            return dec_fail(c, WIRE_READ_ERR_FRAME, "frame at offset %zu: %s length%s", off,
                            s == WIRE_PB_TRUNCATED ? "truncated" : "malformed",
                            trailing_text(text, frame, end));
        if (len > c->lim->max_frame_bytes)
            return dec_fail(c, WIRE_READ_ERR_TOO_LARGE,
                            "frame at offset %zu: %" PRIu64 " bytes exceed limit %zu%s", off, len,
                            c->lim->max_frame_bytes, trailing_text(text, frame, end));
        if (end - p < 4)
            return dec_fail(c, WIRE_READ_ERR_FRAME, "frame at offset %zu: truncated checksum%s",
                            off, trailing_text(text, frame, end));
        uint32_t want = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        p += 4;
        if (len > (uint64_t)(end - p))
            return dec_fail(c, WIRE_READ_ERR_FRAME,
                            "frame at offset %zu: length %" PRIu64 " past end of body (%zu left)%s",
                            off, len, (size_t)(end - p), trailing_text(text, frame, end));
        uint32_t got = crc32c(p, (size_t)len);
        if (got != want)
            return dec_fail(c, WIRE_READ_ERR_FRAME,
                            "frame at offset %zu: CRC-32C mismatch (frame says %08" PRIx32
                            ", data has %08" PRIx32 ")%s",
                            off, want, got, trailing_text(text, frame, end));
        c->st->frames++;
        enum wire_read_err e = parse_frame_msg(c, p, p + len);
        if (e != WIRE_READ_OK)
            return e;
        p += len;
    }
    if (c->pending) {
        c->pending = 0;
        return deliver(c, c->pending_q);
    }
    return WIRE_READ_OK;
}

enum wire_read_err wire_read_decode_response(const void *body, size_t len, enum wire_read_type type,
                                             const struct wire_read_query *queries, size_t nqueries,
                                             const struct wire_read_response_limits *limits,
                                             wire_read_series_fn fn, void *ctx,
                                             struct wire_read_stats *stats, char *err,
                                             size_t errcap)
{
    struct wire_read_response_limits def;
    struct wire_read_stats local;
    if (limits == NULL) {
        wire_read_response_limits_default(&def);
        limits = &def;
    }
    if (stats == NULL)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (len > limits->max_body_bytes) {
        errbuf_set(err, errcap, "response body of %zu bytes exceeds limit %zu", len,
                   limits->max_body_bytes);
        return WIRE_READ_ERR_TOO_LARGE;
    }
    struct respdec c = {.lim = limits,
                        .queries = queries,
                        .nqueries = nqueries,
                        .fn = fn,
                        .ctx = ctx,
                        .st = stats,
                        .err = err,
                        .errcap = errcap};
    void *buf = NULL;
    size_t cap = 0, n = 0;
    enum wire_read_err e = WIRE_READ_OK;
    if (type == WIRE_READ_SAMPLES) {
        enum wire_err we = wire_snappy_uncompress(body, len, limits->max_decompressed_bytes, &buf,
                                                  &cap, &n, err, errcap);
        if (we != WIRE_OK) {
            e = from_wire_err(we);
            goto done;
        }
        c.base = buf;
        e = decode_samples(&c, buf, (const uint8_t *)buf + n);
    } else {
        c.base = body;
        e = decode_frames(&c, body, (const uint8_t *)body + len);
    }
    if (e == WIRE_READ_OK)
        clear_err(err, errcap);
done:
    free(buf);
    free(c.cur);
    free(c.next);
    free(c.samples);
    free(c.tmp);
    return e;
}
