/*
 * wire_write.c — remote-write request bodies: snappy block decompression, a
 * zero-copy protobuf decoder for v1 and v2 write requests, the matching
 * encoder, and snappy helpers for the other modules.
 *
 * Why hand-written: protobuf-c's unpack allocates every message and string,
 * which caps ingest far below the project's target. This decoder walks the
 * bytes once (v2: the top level twice, to find symbols that may follow the
 * series), keeps labels as spans into the body, and takes its arrays from a
 * capped, reused arena. It checks every length against the bytes left, never
 * recurses deeper than the schema, validates the well-formedness of the parts
 * it only counts (exemplars, histograms, metadata) and never trusts the
 * sender's label order.
 *
 * It deliberately does not decode histograms or exemplars further than
 * counting them (and noting stale histograms), does not interpret metadata,
 * and does not enforce label-name character sets beyond UTF-8 validity (the
 * 2.0 spec allows any UTF-8). Mapping errors to HTTP status codes is the http
 * module's job.
 *
 * Wraps libsnappy (snappy-c.h). protobuf-c is not used here: the generated
 * code serves tests and fuzzing as the reference implementation.
 */
#include "wire_write.h"

#include "errbuf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>

#include "limits.h"
#include "wire_pb.h"

const char *wire_err_reason(enum wire_err e)
{
    switch (e) {
    case WIRE_OK:
        return "ok";
    case WIRE_ERR_SNAPPY:
        return "snappy";
    case WIRE_ERR_TOO_LARGE:
        return "too_large";
    case WIRE_ERR_PROTOBUF:
        return "protobuf";
    case WIRE_ERR_TOO_MANY_SERIES:
        return "too_many_series";
    case WIRE_ERR_TOO_MANY_LABELS:
        return "too_many_labels";
    case WIRE_ERR_LABEL_TOO_LONG:
        return "label_too_long";
    case WIRE_ERR_INVALID_LABELS:
        return "invalid_labels";
    case WIRE_ERR_INVALID_REF:
        return "invalid_ref";
    case WIRE_ERR_INVALID_SERIES:
        return "invalid_series";
    case WIRE_ERR_NOMEM:
        return "nomem";
    }
    return "unknown";
}

void wire_limits_default(struct wire_limits *l)
{
    l->max_decompressed_bytes = LIMIT_MAX_REQUEST_BYTES;
    l->max_series = LIMIT_MAX_SERIES_PER_REQUEST;
    l->max_labels = LIMIT_MAX_LABELS_PER_SERIES;
    l->max_label_name_len = LIMIT_MAX_LABEL_NAME_LENGTH;
    l->max_label_value_len = LIMIT_MAX_LABEL_VALUE_LENGTH;
}

/* Error lines ----------------------------------------------------------------- */

/* Copy at most 64 bytes of untrusted text for an error line, replacing
 * anything that is not printable ASCII so the line stays one line. */
/* An excerpt of untrusted label bytes for an error line. */
static const char *printable(char out[72], const uint8_t *s, size_t n)
{
    return errbuf_printable(out, 72, s, n);
}

/* Snappy ---------------------------------------------------------------------- */

static const uint8_t snappy_framed_magic[10] = {0xff, 0x06, 0x00, 0x00, 0x73,
                                                0x4e, 0x61, 0x50, 0x70, 0x59};

/* Grow a realloc buffer to at least need bytes (at least 1, so that an empty
 * result still has a valid pointer). */
static int ensure_buf(void **buf, size_t *cap, size_t need)
{
    if (need == 0)
        need = 1;
    if (*buf != NULL && *cap >= need)
        return 0;
    void *p = realloc(*buf, need);
    if (p == NULL)
        return -1;
    *buf = p;
    *cap = need;
    return 0;
}

enum wire_err wire_snappy_uncompress(const void *src, size_t len, size_t max_len, void **buf,
                                     size_t *bufcap, size_t *outlen, char *err, size_t errcap)
{
    size_t n;
    if (len >= sizeof snappy_framed_magic &&
        memcmp(src, snappy_framed_magic, sizeof snappy_framed_magic) == 0) {
        errbuf_set(err, errcap,
                   "snappy: framed format (stream identifier \"sNaPpY\") is not supported, "
                   "send the block format");
        return WIRE_ERR_SNAPPY;
    }
    if (snappy_uncompressed_length(src, len, &n) != SNAPPY_OK) {
        errbuf_set(err, errcap, "snappy: corrupt input (bad length preamble)");
        return WIRE_ERR_SNAPPY;
    }
    if (n > max_len) {
        errbuf_set(err, errcap, "snappy: declared length %zu exceeds limit %zu", n, max_len);
        return WIRE_ERR_TOO_LARGE;
    }
    /* The best a snappy element does is 64 bytes out of 3 in: a declared
     * length beyond that ratio is a lie, rejected before allocating. */
    if (n / 22 > len) {
        errbuf_set(err, errcap, "snappy: corrupt input (declared length %zu from %zu bytes)", n,
                   len);
        return WIRE_ERR_SNAPPY;
    }
    if (ensure_buf(buf, bufcap, n) != 0) {
        errbuf_set(err, errcap, "snappy: out of memory for %zu bytes", n);
        return WIRE_ERR_NOMEM;
    }
    size_t got = n;
    if (snappy_uncompress(src, len, *buf, &got) != SNAPPY_OK || got != n) {
        errbuf_set(err, errcap, "snappy: corrupt input");
        return WIRE_ERR_SNAPPY;
    }
    *outlen = n;
    return WIRE_OK;
}

int wire_snappy_compress(const void *src, size_t len, void **buf, size_t *bufcap, size_t *outlen)
{
    /* The block format's length preamble is a 32-bit varint. */
    if (len > UINT32_MAX)
        return -1;
    size_t n = snappy_max_compressed_length(len);
    if (ensure_buf(buf, bufcap, n) != 0)
        return -1;
    if (snappy_compress(src, len, *buf, &n) != SNAPPY_OK)
        return -1;
    *outlen = n;
    return 0;
}

/* Decoder state ----------------------------------------------------------------- */

/* A v2 symbol: span into the body, plus a cache of its UTF-8 check so a
 * symbol shared by many series is checked once. */
enum { SYM_UNCHECKED = 0, SYM_VALID, SYM_INVALID };
struct sym {
    const uint8_t *p;
    uint32_t len;
    uint32_t state;
};

struct wire_decoder {
    size_t arena_cap;
    size_t arena_used; /* bytes of capacity held by the four arrays below */
    void *buf;         /* decompressed body */
    size_t bufcap;
    struct wire_series *series;
    size_t series_cap;
    struct label *labels;
    size_t labels_cap;
    struct sample *samples;
    size_t samples_cap;
    struct sym *syms;
    size_t syms_cap;
};

struct wire_decoder *wire_decoder_create(size_t arena_cap_bytes)
{
    struct wire_decoder *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->arena_cap = arena_cap_bytes;
    return d;
}

void wire_decoder_destroy(struct wire_decoder *d)
{
    if (d == NULL)
        return;
    free(d->buf);
    free(d->series);
    free(d->labels);
    free(d->samples);
    free(d->syms);
    free(d);
}

/* Free one arena array if its capacity exceeds keep bytes. */
static void trim_array(struct wire_decoder *d, void **arr, size_t *cap, size_t elem, size_t keep)
{
    if (*cap * elem > keep) {
        free(*arr);
        *arr = NULL;
        d->arena_used -= *cap * elem;
        *cap = 0;
    }
}

size_t wire_decoder_trim(struct wire_decoder *d, size_t keep_bytes)
{
    if (d == NULL)
        return 0;
    if (d->bufcap > keep_bytes) {
        free(d->buf);
        d->buf = NULL;
        d->bufcap = 0;
    }
    void *p;
    /* Round-trip through void * so no struct pointer is accessed as void *. */
    p = d->series;
    trim_array(d, &p, &d->series_cap, sizeof *d->series, keep_bytes);
    d->series = p;
    p = d->labels;
    trim_array(d, &p, &d->labels_cap, sizeof *d->labels, keep_bytes);
    d->labels = p;
    p = d->samples;
    trim_array(d, &p, &d->samples_cap, sizeof *d->samples, keep_bytes);
    d->samples = p;
    p = d->syms;
    trim_array(d, &p, &d->syms_cap, sizeof *d->syms, keep_bytes);
    d->syms = p;
    return d->bufcap + d->arena_used;
}

/* Grow an arena array to hold at least need elements, doubling but never
 * beyond the arena cap. Returns the (possibly moved) array, or NULL with the
 * array untouched when the cap or memory is exhausted. */
static void *arena_grow(struct wire_decoder *d, void *arr, size_t *cap, size_t elem, size_t need)
{
    size_t old_bytes = *cap * elem;
    size_t avail = d->arena_cap - (d->arena_used - old_bytes); /* for this array */
    size_t max_elems = avail / elem;
    if (need > max_elems)
        return NULL;
    size_t ncap = *cap < 64 ? 64 : *cap;
    while (ncap < need && ncap <= max_elems / 2)
        ncap *= 2;
    if (ncap < need || ncap > max_elems)
        ncap = need + (max_elems - need) / 2; /* near the cap: leave room for the others */
    void *p = realloc(arr, ncap * elem);
    if (p == NULL)
        return NULL;
    d->arena_used = d->arena_used - old_bytes + ncap * elem;
    *cap = ncap;
    return p;
}

/* One decode call: cursor-independent state and running counts. */
struct dec {
    struct wire_decoder *d;
    const struct wire_limits *lim;
    size_t max_name; /* label length limits, clamped to what struct label holds */
    size_t max_value;
    const uint8_t *base; /* start of the protobuf, for byte offsets in errors */
    char *err;
    size_t errcap;
    size_t nseries; /* used entries of d->series, d->labels, d->samples, d->syms */
    size_t nlabels;
    size_t nsamples;
    size_t nsyms;
    uint64_t nhistograms;
    uint64_t nstale_histograms;
    uint64_t nexemplars;
    uint64_t nmetadata;
};

static enum wire_err fail(struct dec *c, enum wire_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum wire_err fail(struct dec *c, enum wire_err e, const char *fmt, ...)
{
    if (c->err != NULL && c->errcap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errcap, fmt, ap);
        va_end(ap);
    }
    return e;
}

static enum wire_err pb_fail(struct dec *c, enum wire_pb_status s, const uint8_t *at,
                             const char *msg)
{
    return fail(c, WIRE_ERR_PROTOBUF, "protobuf: %s in %s at byte %zu", wire_pb_status_str(s), msg,
                (size_t)(at - c->base));
}

static enum wire_err wt_fail(struct dec *c, const uint8_t *at, const char *msg, uint32_t field,
                             unsigned wt)
{
    return fail(c, WIRE_ERR_PROTOBUF, "protobuf: field %u of %s has wrong wire type %u at byte %zu",
                (unsigned)field, msg, wt, (size_t)(at - c->base));
}

static enum wire_err nomem(struct dec *c, const char *what)
{
    return fail(c, WIRE_ERR_NOMEM,
                "request too complex: decoder arena cap of %zu bytes reached (%s)", c->d->arena_cap,
                what);
}

/* Well-formedness of the messages that are only counted ------------------------ */

/* What a known field may hold; anything else is skipped as unknown. */
enum field_kind {
    FK_NONE = 0,
    FK_VARINT,
    FK_I64,
    FK_BYTES,         /* string or bytes */
    FK_MSG,           /* nested message, checked with `sub` */
    FK_PACKED_VARINT, /* repeated varint, packed or not */
    FK_PACKED_I64,    /* repeated double, packed or not */
};

struct msg_rule;
#define NFIELDS(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))
struct field_rule {
    uint8_t kind;
    const struct msg_rule *sub;
};
struct msg_rule {
    const char *name;
    uint32_t nfields; /* fields[] is indexed by field number */
    const struct field_rule *fields;
};

/* prometheus.Label, as used inside exemplars (strings not checked further). */
static const struct field_rule label_fields[] = {[1] = {FK_BYTES, NULL}, [2] = {FK_BYTES, NULL}};
static const struct msg_rule label_rule = {"Label", NFIELDS(label_fields), label_fields};

static const struct field_rule span_fields[] = {[1] = {FK_VARINT, NULL}, [2] = {FK_VARINT, NULL}};
static const struct msg_rule span_rule = {"BucketSpan", NFIELDS(span_fields), span_fields};

#define HISTOGRAM_FIELDS                                                                           \
    [1] = {FK_VARINT, NULL}, [2] = {FK_I64, NULL}, [3] = {FK_I64, NULL}, [4] = {FK_VARINT, NULL},  \
    [5] = {FK_I64, NULL}, [6] = {FK_VARINT, NULL}, [7] = {FK_I64, NULL},                           \
    [8] = {FK_MSG, &span_rule}, [9] = {FK_PACKED_VARINT, NULL}, [10] = {FK_PACKED_I64, NULL},      \
    [11] = {FK_MSG, &span_rule}, [12] = {FK_PACKED_VARINT, NULL}, [13] = {FK_PACKED_I64, NULL},    \
    [14] = {FK_VARINT, NULL}, [15] = {FK_VARINT, NULL}, [16] = {FK_PACKED_I64, NULL}

static const struct field_rule histogram_v1_fields[] = {HISTOGRAM_FIELDS};
static const struct msg_rule histogram_v1_rule = {"Histogram", NFIELDS(histogram_v1_fields),
                                                  histogram_v1_fields};
static const struct field_rule histogram_v2_fields[] = {HISTOGRAM_FIELDS, [17] = {FK_VARINT, NULL}};
static const struct msg_rule histogram_v2_rule = {"Histogram", NFIELDS(histogram_v2_fields),
                                                  histogram_v2_fields};

static const struct field_rule exemplar_v1_fields[] = {
    [1] = {FK_MSG, &label_rule}, [2] = {FK_I64, NULL}, [3] = {FK_VARINT, NULL}};
static const struct msg_rule exemplar_v1_rule = {"Exemplar", NFIELDS(exemplar_v1_fields),
                                                 exemplar_v1_fields};

static const struct field_rule metadata_v1_fields[] = {[1] = {FK_VARINT, NULL},
                                                       [2] = {FK_BYTES, NULL},
                                                       [4] = {FK_BYTES, NULL},
                                                       [5] = {FK_BYTES, NULL}};
static const struct msg_rule metadata_v1_rule = {"MetricMetadata", NFIELDS(metadata_v1_fields),
                                                 metadata_v1_fields};

/* Walk a packed run of varints; every element must end inside the run. */
static enum wire_pb_status check_packed_varints(const uint8_t *p, const uint8_t *end)
{
    uint64_t v;
    while (p < end) {
        enum wire_pb_status s = wire_pb_varint(&p, end, &v);
        if (s != WIRE_PB_OK)
            return s;
    }
    return WIRE_PB_OK;
}

/* Check that [p, end) is a well-formed `rule` message: valid keys, lengths
 * inside the message, known fields with their wire types, nested messages
 * recursively (depth bounded by the static schema and LIMIT_PROTO_MAX_DEPTH).
 * When stale is not NULL, *stale is set from the last field 3 (the histogram
 * sum) being the stale NaN. */
static enum wire_err check_msg(struct dec *c, const struct msg_rule *rule, const uint8_t *p,
                               const uint8_t *end, int depth, bool *stale)
{
    if (depth > LIMIT_PROTO_MAX_DEPTH)
        return fail(c, WIRE_ERR_PROTOBUF, "protobuf: nesting deeper than %d in %s",
                    LIMIT_PROTO_MAX_DEPTH, rule->name);
    while (p < end) {
        const uint8_t *at = p;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status s = wire_pb_tag(&p, end, &f, &wt);
        if (s != WIRE_PB_OK)
            return pb_fail(c, s, at, rule->name);
        enum field_kind kind = f < rule->nfields ? (enum field_kind)rule->fields[f].kind : FK_NONE;
        const uint8_t *m;
        size_t mlen;
        uint64_t v;
        switch (kind) {
        case FK_NONE:
            s = wire_pb_skip(&p, end, wt);
            break;
        case FK_VARINT:
            if (wt != WIRE_PB_VARINT)
                return wt_fail(c, at, rule->name, f, wt);
            s = wire_pb_varint(&p, end, &v);
            break;
        case FK_I64:
            if (wt != WIRE_PB_I64)
                return wt_fail(c, at, rule->name, f, wt);
            s = wire_pb_fixed64(&p, end, &v);
            if (s == WIRE_PB_OK && stale != NULL && f == 3)
                *stale = sample_bits_are_stale(v);
            break;
        case FK_BYTES:
            if (wt != WIRE_PB_LEN)
                return wt_fail(c, at, rule->name, f, wt);
            s = wire_pb_span(&p, end, &m, &mlen);
            break;
        case FK_MSG: {
            if (wt != WIRE_PB_LEN)
                return wt_fail(c, at, rule->name, f, wt);
            s = wire_pb_span(&p, end, &m, &mlen);
            if (s != WIRE_PB_OK)
                break;
            enum wire_err e = check_msg(c, rule->fields[f].sub, m, m + mlen, depth + 1, NULL);
            if (e != WIRE_OK)
                return e;
            break;
        }
        case FK_PACKED_VARINT:
            if (wt == WIRE_PB_VARINT) {
                s = wire_pb_varint(&p, end, &v);
            } else if (wt == WIRE_PB_LEN) {
                s = wire_pb_span(&p, end, &m, &mlen);
                if (s == WIRE_PB_OK)
                    s = check_packed_varints(m, m + mlen);
            } else {
                return wt_fail(c, at, rule->name, f, wt);
            }
            break;
        case FK_PACKED_I64:
            if (wt == WIRE_PB_I64) {
                s = wire_pb_fixed64(&p, end, &v);
            } else if (wt == WIRE_PB_LEN) {
                s = wire_pb_span(&p, end, &m, &mlen);
                if (s == WIRE_PB_OK && mlen % 8 != 0)
                    return fail(c, WIRE_ERR_PROTOBUF,
                                "protobuf: packed doubles of %zu bytes in %s at byte %zu", mlen,
                                rule->name, (size_t)(at - c->base));
            } else {
                return wt_fail(c, at, rule->name, f, wt);
            }
            break;
        }
        if (s != WIRE_PB_OK)
            return pb_fail(c, s, at, rule->name);
    }
    return WIRE_OK;
}

/* Labels ------------------------------------------------------------------------ */

/* UTF-8 as Unicode defines it (no overlong forms, surrogates or code points
 * above U+10FFFF), with an ASCII fast path 8 bytes at a time. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & UINT64_C(0x8080808080808080)) == 0) {
                i += 8;
                continue;
            }
        }
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t more;
        uint8_t lo = 0x80, hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) {
            more = 1;
        } else if (b == 0xe0) {
            more = 2;
            lo = 0xa0;
        } else if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) {
            more = 2;
        } else if (b == 0xed) {
            more = 2;
            hi = 0x9f;
        } else if (b == 0xf0) {
            more = 3;
            lo = 0x90;
        } else if (b >= 0xf1 && b <= 0xf3) {
            more = 3;
        } else if (b == 0xf4) {
            more = 3;
            hi = 0x8f;
        } else {
            return false;
        }
        if (n - i - 1 < more)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= more; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += more + 1;
    }
    return true;
}

/* True when no byte of [p, p + n) has the high bit set; one pass of ORs,
 * without a branch per byte. */
static inline bool ascii_only(const uint8_t *p, size_t n)
{
    uint64_t acc = 0, w;
    while (n >= 8) {
        memcpy(&w, p, 8);
        acc |= w;
        p += 8;
        n -= 8;
    }
    if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, p, 4);
        memcpy(&y, p + n - 4, 4);
        acc |= x | y;
    } else {
        while (n > 0) {
            acc |= *p++;
            n--;
        }
    }
    return (acc & UINT64_C(0x8080808080808080)) == 0;
}

static enum wire_err label_too_long(struct dec *c, const uint8_t *name, size_t nlen, size_t vlen)
    __attribute__((noinline, cold));

static enum wire_err label_too_long(struct dec *c, const uint8_t *name, size_t nlen, size_t vlen)
{
    char buf[72];
    if (nlen > c->max_name)
        return fail(c, WIRE_ERR_LABEL_TOO_LONG,
                    "series %zu: label name of %zu bytes exceeds limit %zu (\"%s\")", c->nseries,
                    nlen, c->lim->max_label_name_len, printable(buf, name, nlen));
    return fail(c, WIRE_ERR_LABEL_TOO_LONG,
                "series %zu: value of label \"%s\" has %zu bytes, limit %zu", c->nseries,
                printable(buf, name, nlen), vlen, c->lim->max_label_value_len);
}

static enum wire_err invalid_utf8(struct dec *c, const uint8_t *name, size_t nlen, bool in_name)
    __attribute__((noinline, cold));

static enum wire_err invalid_utf8(struct dec *c, const uint8_t *name, size_t nlen, bool in_name)
{
    char buf[72];
    if (in_name)
        return fail(c, WIRE_ERR_INVALID_LABELS,
                    "series %zu: label name is not valid UTF-8 (\"%s\")", c->nseries,
                    printable(buf, name, nlen));
    return fail(c, WIRE_ERR_INVALID_LABELS, "series %zu: value of label \"%s\" is not valid UTF-8",
                c->nseries, printable(buf, name, nlen));
}

/* Slow path of add_label(): the count limit, or the array is full. */
static enum wire_err grow_labels(struct dec *c, size_t lab0) __attribute__((noinline));

static enum wire_err grow_labels(struct dec *c, size_t lab0)
{
    struct wire_decoder *d = c->d;
    if (c->nlabels - lab0 >= c->lim->max_labels)
        return fail(c, WIRE_ERR_TOO_MANY_LABELS, "series %zu has more than %zu labels", c->nseries,
                    c->lim->max_labels);
    if (c->nlabels < d->labels_cap)
        return WIRE_OK;
    void *p = arena_grow(d, d->labels, &d->labels_cap, sizeof *d->labels, c->nlabels + 1);
    if (p == NULL)
        return nomem(c, "labels");
    d->labels = p;
    return WIRE_OK;
}

/*
 * Add one decoded label to the current series (lab0 = index of its first
 * label): a label with an empty value is dropped (Prometheus treats it as
 * absent); the others are checked against the length limits, for UTF-8
 * (skipped when the caller already knows both strings are valid) and against
 * the label count, then appended.
 */
static inline enum wire_err add_label(struct dec *c, size_t lab0, const uint8_t *name, size_t nlen,
                                      const uint8_t *value, size_t vlen, bool known_valid)
{
    if (vlen == 0)
        return WIRE_OK;
    if (nlen > c->max_name || vlen > c->max_value)
        return label_too_long(c, name, nlen, vlen);
    if (!known_valid) {
        if (!utf8_valid(name, nlen))
            return invalid_utf8(c, name, nlen, true);
        if (!utf8_valid(value, vlen))
            return invalid_utf8(c, name, nlen, false);
    }
    struct wire_decoder *d = c->d;
    if (c->nlabels - lab0 >= c->lim->max_labels || c->nlabels == d->labels_cap) {
        enum wire_err e = grow_labels(c, lab0);
        if (e != WIRE_OK)
            return e;
    }
    struct label *l = &d->labels[c->nlabels++];
    l->name = (const char *)name;
    l->value = (const char *)value;
    l->name_len = (uint32_t)nlen;
    l->value_len = (uint32_t)vlen;
    return WIRE_OK;
}

static int label_qsort_cmp(const void *a, const void *b)
{
    return labels_cmp(a, b);
}

/* Byte order of two non-empty names, deciding on the first byte when it
 * differs (nearly always, for real label sets) without calling memcmp. */
static inline int name_order(const struct label *a, const struct label *b)
{
    uint8_t x = (uint8_t)a->name[0], y = (uint8_t)b->name[0];
    if (x != y)
        return x < y ? -1 : 1;
    uint32_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int r = memcmp(a->name, b->name, n);
    if (r != 0)
        return r;
    return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

/* The common case in one pass: names non-empty and strictly increasing,
 * which is what labels_sorted() && labels_validate() == LABELS_OK means. */
static bool sorted_and_valid(const struct label *ls, size_t n)
{
    if (ls[0].name_len == 0)
        return false;
    for (size_t i = 1; i < n; i++)
        if (ls[i].name_len == 0 || name_order(&ls[i - 1], &ls[i]) >= 0)
            return false;
    return true;
}

/* Sort (when the sender did not) and validate the labels of the series being
 * decoded. */
static enum wire_err finish_labels(struct dec *c, size_t lab0)
{
    size_t n = c->nlabels - lab0;
    if (n == 0)
        return fail(c, WIRE_ERR_INVALID_LABELS, "series %zu: empty label set", c->nseries);
    struct label *ls = c->d->labels + lab0;
    if (sorted_and_valid(ls, n))
        return WIRE_OK;
    if (!labels_sorted(ls, n)) {
        /* labels_sort() is an insertion sort, ideal for the usual short,
         * nearly sorted sets; large limits must not make it quadratic. */
        if (n <= 16)
            labels_sort(ls, n);
        else
            qsort(ls, n, sizeof *ls, label_qsort_cmp);
    }
    enum labels_check k = labels_validate(ls, n);
    if (k == LABELS_OK)
        return WIRE_OK;
    if (k == LABELS_DUPLICATE_NAME) {
        char buf[72];
        for (size_t i = 1; i < n; i++)
            if (ls[i].name_len == ls[i - 1].name_len &&
                memcmp(ls[i].name, ls[i - 1].name, ls[i].name_len) == 0)
                return fail(c, WIRE_ERR_INVALID_LABELS, "series %zu: duplicate label name \"%s\"",
                            c->nseries,
                            printable(buf, (const uint8_t *)ls[i].name, ls[i].name_len));
    }
    return fail(c, WIRE_ERR_INVALID_LABELS, "series %zu: %s", c->nseries, labels_check_str(k));
}

/* Start a new series entry, enforcing max_series before growing anything. */
static enum wire_err begin_series(struct dec *c, struct wire_series **out)
{
    struct wire_decoder *d = c->d;
    if (c->nseries >= c->lim->max_series)
        return fail(c, WIRE_ERR_TOO_MANY_SERIES, "request has more than %zu series",
                    c->lim->max_series);
    if (c->nseries == d->series_cap) {
        void *p = arena_grow(d, d->series, &d->series_cap, sizeof *d->series, c->nseries + 1);
        if (p == NULL)
            return nomem(c, "series");
        d->series = p;
    }
    struct wire_series *s = &d->series[c->nseries];
    memset(s, 0, sizeof *s);
    *out = s;
    return WIRE_OK;
}

/* Decode a Sample (v1: value 1, timestamp 2; v2 adds start_timestamp 3,
 * which is checked and ignored) and append it to the current series. */
static enum wire_err push_sample(struct dec *c, struct wire_series *s, const uint8_t *p,
                                 const uint8_t *end, bool v2)
{
    struct wire_decoder *d = c->d;
    uint64_t bits = 0, ts = 0, v;
    while (p < end) {
        const uint8_t *at = p;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status st = wire_pb_tag(&p, end, &f, &wt);
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "Sample");
        if (f == 1) {
            if (wt != WIRE_PB_I64)
                return wt_fail(c, at, "Sample", f, wt);
            st = wire_pb_fixed64(&p, end, &bits);
        } else if (f == 2) {
            if (wt != WIRE_PB_VARINT)
                return wt_fail(c, at, "Sample", f, wt);
            st = wire_pb_varint(&p, end, &ts);
        } else if (f == 3 && v2) {
            if (wt != WIRE_PB_VARINT)
                return wt_fail(c, at, "Sample", f, wt);
            st = wire_pb_varint(&p, end, &v);
        } else {
            st = wire_pb_skip(&p, end, wt);
        }
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "Sample");
    }
    if (s->nsamples == UINT32_MAX)
        return fail(c, WIRE_ERR_PROTOBUF, "series %zu has too many samples", c->nseries);
    if (c->nsamples == d->samples_cap) {
        void *np = arena_grow(d, d->samples, &d->samples_cap, sizeof *d->samples, c->nsamples + 1);
        if (np == NULL)
            return nomem(c, "samples");
        d->samples = np;
    }
    struct sample *out = &d->samples[c->nsamples++];
    /* Bit copies only: stale markers must survive unchanged. */
    memcpy(&out->v, &bits, sizeof out->v);
    memcpy(&out->t, &ts, sizeof out->t);
    s->nsamples++;
    return WIRE_OK;
}

/* Count one more histogram/exemplar of a series without overflowing. */
static enum wire_err count_one(struct dec *c, uint32_t *n, const char *what)
{
    if (*n == UINT32_MAX)
        return fail(c, WIRE_ERR_PROTOBUF, "series %zu has too many %s", c->nseries, what);
    (*n)++;
    return WIRE_OK;
}

/* Add a finished series to the request totals. */
static void end_series(struct dec *c, const struct wire_series *s)
{
    c->nhistograms += s->nhistograms;
    c->nstale_histograms += s->nstale_histograms;
    c->nexemplars += s->nexemplars;
    c->nseries++;
}

/* Remote write 1.0 ----------------------------------------------------------------- */

/* prometheus.Label: 1 name, 2 value (last occurrence wins). */
static enum wire_err v1_label(struct dec *c, size_t lab0, const uint8_t *p, const uint8_t *end)
{
    size_t mlen = (size_t)(end - p);
    /* Fast path for what every encoder writes: name then value, each with a
     * one-byte length. Tags and lengths are then ASCII bytes too, so one
     * check over the whole message covers both strings. */
    if (mlen >= 4 && p[0] == 0x0a && p[1] < 0x80 && p[1] + 4u <= mlen && p[p[1] + 2] == 0x12 &&
        p[p[1] + 3] < 0x80 && p[1] + p[p[1] + 3] + 4u == mlen) {
        size_t nlen = p[1];
        return add_label(c, lab0, p + 2, nlen, p + nlen + 4, p[nlen + 3], ascii_only(p, mlen));
    }
    const uint8_t *name = p, *value = p;
    size_t nlen = 0, vlen = 0;
    while (p < end) {
        const uint8_t *at = p;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status st = wire_pb_tag(&p, end, &f, &wt);
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "Label");
        if (f == 1 || f == 2) {
            if (wt != WIRE_PB_LEN)
                return wt_fail(c, at, "Label", f, wt);
            if (f == 1)
                st = wire_pb_span(&p, end, &name, &nlen);
            else
                st = wire_pb_span(&p, end, &value, &vlen);
        } else {
            st = wire_pb_skip(&p, end, wt);
        }
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "Label");
    }
    return add_label(c, lab0, name, nlen, value, vlen, false);
}

/* prometheus.TimeSeries: 1 labels, 2 samples, 3 exemplars, 4 histograms. */
static enum wire_err v1_series(struct dec *c, const uint8_t *p, const uint8_t *end)
{
    struct wire_series *s;
    enum wire_err e = begin_series(c, &s);
    if (e != WIRE_OK)
        return e;
    size_t lab0 = c->nlabels;
    while (p < end) {
        const uint8_t *at = p, *m;
        size_t mlen;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status st = wire_pb_tag(&p, end, &f, &wt);
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "TimeSeries");
        if (f < 1 || f > 4) {
            st = wire_pb_skip(&p, end, wt);
            if (st != WIRE_PB_OK)
                return pb_fail(c, st, at, "TimeSeries");
            continue;
        }
        if (wt != WIRE_PB_LEN)
            return wt_fail(c, at, "TimeSeries", f, wt);
        st = wire_pb_span(&p, end, &m, &mlen);
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "TimeSeries");
        bool stale = false;
        switch (f) {
        case 1:
            e = v1_label(c, lab0, m, m + mlen);
            break;
        case 2:
            e = push_sample(c, s, m, m + mlen, false);
            break;
        case 3:
            e = check_msg(c, &exemplar_v1_rule, m, m + mlen, 2, NULL);
            if (e == WIRE_OK)
                e = count_one(c, &s->nexemplars, "exemplars");
            break;
        default:
            e = check_msg(c, &histogram_v1_rule, m, m + mlen, 2, &stale);
            if (e == WIRE_OK)
                e = count_one(c, &s->nhistograms, "histograms");
            if (e == WIRE_OK && stale)
                s->nstale_histograms++;
            break;
        }
        if (e != WIRE_OK)
            return e;
    }
    e = finish_labels(c, lab0);
    if (e != WIRE_OK)
        return e;
    s->nlabels = (uint32_t)(c->nlabels - lab0);
    end_series(c, s);
    return WIRE_OK;
}

/* prometheus.WriteRequest: 1 timeseries, 3 metadata; 2 is reserved. */
static enum wire_err v1_request(struct dec *c, const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        const uint8_t *at = p, *m;
        size_t mlen;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status st = wire_pb_tag(&p, end, &f, &wt);
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "WriteRequest");
        if (f != 1 && f != 3) {
            st = wire_pb_skip(&p, end, wt);
            if (st != WIRE_PB_OK)
                return pb_fail(c, st, at, "WriteRequest");
            continue;
        }
        if (wt != WIRE_PB_LEN)
            return wt_fail(c, at, "WriteRequest", f, wt);
        st = wire_pb_span(&p, end, &m, &mlen);
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "WriteRequest");
        enum wire_err e;
        if (f == 1) {
            e = v1_series(c, m, m + mlen);
        } else {
            e = check_msg(c, &metadata_v1_rule, m, m + mlen, 1, NULL);
            c->nmetadata++;
        }
        if (e != WIRE_OK)
            return e;
    }
    return WIRE_OK;
}

/* Remote write 2.0 ------------------------------------------------------------------ */

/* First pass over io.prometheus.write.v2.Request: collect the symbol spans
 * (field 4), wherever they are; protobuf allows them after the series. */
static enum wire_err v2_symbols(struct dec *c, const uint8_t *p, const uint8_t *end)
{
    struct wire_decoder *d = c->d;
    while (p < end) {
        const uint8_t *at = p, *m;
        size_t mlen;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status st = wire_pb_tag(&p, end, &f, &wt);
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "Request");
        if (f != 4 && f != 5) {
            st = wire_pb_skip(&p, end, wt);
            if (st != WIRE_PB_OK)
                return pb_fail(c, st, at, "Request");
            continue;
        }
        if (wt != WIRE_PB_LEN)
            return wt_fail(c, at, "Request", f, wt);
        st = wire_pb_span(&p, end, &m, &mlen);
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "Request");
        if (f == 5)
            continue;
        if (mlen >= UINT32_MAX)
            return fail(c, WIRE_ERR_PROTOBUF, "protobuf: symbol of %zu bytes at byte %zu", mlen,
                        (size_t)(at - c->base));
        if (c->nsyms == d->syms_cap) {
            void *np = arena_grow(d, d->syms, &d->syms_cap, sizeof *d->syms, c->nsyms + 1);
            if (np == NULL)
                return nomem(c, "symbols");
            d->syms = np;
        }
        struct sym *sy = &d->syms[c->nsyms++];
        sy->p = m;
        sy->len = (uint32_t)mlen;
        sy->state = SYM_UNCHECKED;
    }
    if (c->nsyms > 0 && d->syms[0].len != 0) {
        char buf[72];
        return fail(c, WIRE_ERR_INVALID_REF, "symbols[0] must be the empty string, got \"%s\"",
                    printable(buf, d->syms[0].p, d->syms[0].len));
    }
    return WIRE_OK;
}

static bool sym_utf8(struct sym *s)
{
    if (s->state == SYM_UNCHECKED)
        s->state = utf8_valid(s->p, s->len) ? SYM_VALID : SYM_INVALID;
    return s->state == SYM_VALID;
}

static enum wire_err bad_ref(struct dec *c, uint64_t ref, const char *what)
{
    return fail(c, WIRE_ERR_INVALID_REF, "series %zu: %s ref %" PRIu64 " outside the %zu symbols",
                c->nseries, what, ref, c->nsyms);
}

/* One labels_refs entry; every second one completes a (name, value) pair. */
static enum wire_err v2_ref(struct dec *c, size_t lab0, uint64_t ref, uint64_t *pending,
                            bool *have_pending)
{
    if (ref >= c->nsyms)
        return bad_ref(c, ref, "labels_refs");
    if (!*have_pending) {
        *pending = ref;
        *have_pending = true;
        return WIRE_OK;
    }
    *have_pending = false;
    struct sym *n = &c->d->syms[*pending], *v = &c->d->syms[ref];
    if (v->len == 0)
        return WIRE_OK; /* an empty value means the label is absent */
    if (n->len > c->max_name || v->len > c->max_value)
        return label_too_long(c, n->p, n->len, v->len);
    if (!sym_utf8(n))
        return invalid_utf8(c, n->p, n->len, true);
    if (!sym_utf8(v))
        return invalid_utf8(c, n->p, n->len, false);
    return add_label(c, lab0, n->p, n->len, v->p, v->len, true);
}

/* Exemplar: 1 labels_refs (pairs, checked against the symbols), 2 value,
 * 3 timestamp. Only checked and counted. */
static enum wire_err v2_exemplar(struct dec *c, const uint8_t *p, const uint8_t *end)
{
    uint64_t nrefs = 0, v;
    while (p < end) {
        const uint8_t *at = p, *m;
        size_t mlen;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status st = wire_pb_tag(&p, end, &f, &wt);
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "Exemplar");
        if (f == 1 && wt == WIRE_PB_LEN) {
            st = wire_pb_span(&p, end, &m, &mlen);
            if (st != WIRE_PB_OK)
                return pb_fail(c, st, at, "Exemplar");
            const uint8_t *q = m, *qend = m + mlen;
            while (st == WIRE_PB_OK && q < qend) {
                st = wire_pb_varint(&q, qend, &v);
                if (st == WIRE_PB_OK && v >= c->nsyms)
                    return bad_ref(c, v, "exemplar labels_refs");
                nrefs++;
            }
        } else if (f == 1 || f == 3) {
            if (wt != WIRE_PB_VARINT)
                return wt_fail(c, at, "Exemplar", f, wt);
            st = wire_pb_varint(&p, end, &v);
            if (st == WIRE_PB_OK && f == 1) {
                if (v >= c->nsyms)
                    return bad_ref(c, v, "exemplar labels_refs");
                nrefs++;
            }
        } else if (f == 2) {
            if (wt != WIRE_PB_I64)
                return wt_fail(c, at, "Exemplar", f, wt);
            st = wire_pb_fixed64(&p, end, &v);
        } else {
            st = wire_pb_skip(&p, end, wt);
        }
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "Exemplar");
    }
    if (nrefs % 2 != 0)
        return fail(c, WIRE_ERR_INVALID_REF, "series %zu: odd number of exemplar labels_refs",
                    c->nseries);
    return WIRE_OK;
}

/* Metadata: 1 type, 3 help_ref, 4 unit_ref (2 unused). Only checked. */
static enum wire_err v2_metadata(struct dec *c, const uint8_t *p, const uint8_t *end)
{
    uint64_t v;
    while (p < end) {
        const uint8_t *at = p;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status st = wire_pb_tag(&p, end, &f, &wt);
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "Metadata");
        if (f == 1 || f == 3 || f == 4) {
            if (wt != WIRE_PB_VARINT)
                return wt_fail(c, at, "Metadata", f, wt);
            st = wire_pb_varint(&p, end, &v);
            if (st == WIRE_PB_OK && f != 1 && v >= c->nsyms)
                return bad_ref(c, v, f == 3 ? "metadata help_ref" : "metadata unit_ref");
        } else {
            st = wire_pb_skip(&p, end, wt);
        }
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "Metadata");
    }
    return WIRE_OK;
}

/* TimeSeries: 1 labels_refs (packed or not), 2 samples, 3 histograms,
 * 4 exemplars, 5 metadata; 6 reserved (created_timestamp before rc.4). */
static enum wire_err v2_series(struct dec *c, const uint8_t *p, const uint8_t *end)
{
    struct wire_series *s;
    enum wire_err e = begin_series(c, &s);
    if (e != WIRE_OK)
        return e;
    size_t lab0 = c->nlabels;
    uint64_t pending = 0, v;
    bool have_pending = false, metadata = false;
    while (p < end) {
        const uint8_t *at = p, *m;
        size_t mlen;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status st = wire_pb_tag(&p, end, &f, &wt);
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "TimeSeries");
        if (f == 1 && wt == WIRE_PB_VARINT) {
            st = wire_pb_varint(&p, end, &v);
            if (st != WIRE_PB_OK)
                return pb_fail(c, st, at, "TimeSeries");
            e = v2_ref(c, lab0, v, &pending, &have_pending);
            if (e != WIRE_OK)
                return e;
            continue;
        }
        if (f < 1 || f > 5) {
            st = wire_pb_skip(&p, end, wt);
            if (st != WIRE_PB_OK)
                return pb_fail(c, st, at, "TimeSeries");
            continue;
        }
        if (wt != WIRE_PB_LEN)
            return wt_fail(c, at, "TimeSeries", f, wt);
        st = wire_pb_span(&p, end, &m, &mlen);
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "TimeSeries");
        bool stale = false;
        switch (f) {
        case 1: {
            const uint8_t *q = m, *qend = m + mlen;
            while (q < qend) {
                const uint8_t *qat = q;
                st = wire_pb_varint(&q, qend, &v);
                if (st != WIRE_PB_OK)
                    return pb_fail(c, st, qat, "TimeSeries.labels_refs");
                e = v2_ref(c, lab0, v, &pending, &have_pending);
                if (e != WIRE_OK)
                    return e;
            }
            break;
        }
        case 2:
            e = push_sample(c, s, m, m + mlen, true);
            break;
        case 3:
            e = check_msg(c, &histogram_v2_rule, m, m + mlen, 2, &stale);
            if (e == WIRE_OK)
                e = count_one(c, &s->nhistograms, "histograms");
            if (e == WIRE_OK && stale)
                s->nstale_histograms++;
            break;
        case 4:
            e = v2_exemplar(c, m, m + mlen);
            if (e == WIRE_OK)
                e = count_one(c, &s->nexemplars, "exemplars");
            break;
        default:
            e = v2_metadata(c, m, m + mlen);
            metadata = true;
            break;
        }
        if (e != WIRE_OK)
            return e;
    }
    if (have_pending)
        return fail(c, WIRE_ERR_INVALID_REF, "series %zu: odd number of labels_refs", c->nseries);
    e = finish_labels(c, lab0);
    if (e != WIRE_OK)
        return e;
    if (s->nsamples > 0 && s->nhistograms > 0)
        return fail(c, WIRE_ERR_INVALID_SERIES, "series %zu has both samples and histograms",
                    c->nseries);
    if (s->nsamples == 0 && s->nhistograms == 0)
        return fail(c, WIRE_ERR_INVALID_SERIES, "series %zu has neither samples nor histograms",
                    c->nseries);
    if (metadata)
        c->nmetadata++;
    s->nlabels = (uint32_t)(c->nlabels - lab0);
    end_series(c, s);
    return WIRE_OK;
}

/* io.prometheus.write.v2.Request: 4 symbols, 5 timeseries; 1-3 reserved
 * (skipped, so a v1 body read as v2 is an empty request). */
static enum wire_err v2_request(struct dec *c, const uint8_t *p, const uint8_t *end)
{
    enum wire_err e = v2_symbols(c, p, end);
    if (e != WIRE_OK)
        return e;
    /* The first pass validated every key and length of this level. */
    while (p < end) {
        const uint8_t *at = p, *m;
        size_t mlen;
        uint32_t f;
        unsigned wt;
        enum wire_pb_status st = wire_pb_tag(&p, end, &f, &wt);
        if (st == WIRE_PB_OK)
            st = f == 5 ? wire_pb_span(&p, end, &m, &mlen) : wire_pb_skip(&p, end, wt);
        if (st != WIRE_PB_OK)
            return pb_fail(c, st, at, "Request");
        if (f == 5) {
            e = v2_series(c, m, m + mlen);
            if (e != WIRE_OK)
                return e;
        }
    }
    return WIRE_OK;
}

/* Entry points -------------------------------------------------------------------- */

static enum wire_err decode(struct wire_decoder *d, enum wire_proto proto, const uint8_t *pb,
                            size_t len, const struct wire_limits *lim, struct wire_request *out,
                            char *err, size_t errcap)
{
    static const uint8_t empty[1];
    struct dec c;
    memset(&c, 0, sizeof c);
    c.d = d;
    c.lim = lim;
    c.max_name = lim->max_label_name_len < UINT32_MAX ? lim->max_label_name_len : UINT32_MAX;
    c.max_value = lim->max_label_value_len < UINT32_MAX ? lim->max_label_value_len : UINT32_MAX;
    c.err = err;
    c.errcap = errcap;
    if (len == 0)
        pb = empty; /* no arithmetic on a null pointer */
    c.base = pb;
    enum wire_err e;
    if (proto == WIRE_PROTO_V1)
        e = v1_request(&c, pb, pb + len);
    else if (proto == WIRE_PROTO_V2)
        e = v2_request(&c, pb, pb + len);
    else
        e = fail(&c, WIRE_ERR_PROTOBUF, "unknown remote-write protocol %d", (int)proto);
    if (e != WIRE_OK)
        return e;

    /* Each series' labels and samples were appended right after the previous
     * series' ones; the arrays may have moved while growing, so pointers are
     * set only now. */
    size_t lo = 0, so = 0;
    for (size_t i = 0; i < c.nseries; i++) {
        struct wire_series *s = &d->series[i];
        s->labels = s->nlabels ? d->labels + lo : NULL;
        s->samples = s->nsamples ? d->samples + so : NULL;
        lo += s->nlabels;
        so += s->nsamples;
    }
    memset(out, 0, sizeof *out);
    out->proto = proto;
    out->series = c.nseries ? d->series : NULL;
    out->nseries = c.nseries;
    out->nsamples = c.nsamples;
    out->nhistograms = c.nhistograms;
    out->nstale_histograms = c.nstale_histograms;
    out->nexemplars = c.nexemplars;
    out->nmetadata = c.nmetadata;
    out->decompressed_bytes = len;
    if (err != NULL && errcap > 0)
        err[0] = '\0';
    return WIRE_OK;
}

enum wire_err wire_decode_write(struct wire_decoder *d, enum wire_proto proto, const void *body,
                                size_t len, const struct wire_limits *limits,
                                struct wire_request *out, char *err, size_t errcap)
{
    struct wire_limits defaults;
    if (limits == NULL) {
        wire_limits_default(&defaults);
        limits = &defaults;
    }
    if (len == 0) {
        errbuf_set(err, errcap, "snappy: empty body");
        return WIRE_ERR_SNAPPY;
    }
    size_t n;
    enum wire_err e = wire_snappy_uncompress(body, len, limits->max_decompressed_bytes, &d->buf,
                                             &d->bufcap, &n, err, errcap);
    if (e != WIRE_OK)
        return e;
    return decode(d, proto, d->buf, n, limits, out, err, errcap);
}

enum wire_err wire_decode_write_raw(struct wire_decoder *d, enum wire_proto proto, const void *pb,
                                    size_t len, const struct wire_limits *limits,
                                    struct wire_request *out, char *err, size_t errcap)
{
    struct wire_limits defaults;
    if (limits == NULL) {
        wire_limits_default(&defaults);
        limits = &defaults;
    }
    if (len > limits->max_decompressed_bytes) {
        errbuf_set(err, errcap, "protobuf: body of %zu bytes exceeds limit %zu", len,
                   limits->max_decompressed_bytes);
        return WIRE_ERR_TOO_LARGE;
    }
    return decode(d, proto, pb, len, limits, out, err, errcap);
}

/* Encoder ------------------------------------------------------------------------- */

/* A v2 symbol being interned: the bytes are borrowed from the caller's
 * labels for the duration of one wire_encode_write() call. */
struct esym {
    const char *p;
    uint32_t len;
    uint32_t hash;
};

struct wire_encoder {
    size_t cap; /* max uncompressed protobuf bytes */
    void *pb;
    size_t pbcap;
    void *out;
    size_t outcap;
    uint32_t *slots; /* open addressing, symbol index + 1; 0 = free */
    size_t nslots;   /* power of two */
    struct esym *syms;
    size_t nsyms;
    size_t symscap;
    uint32_t *refs;
    size_t refscap;
    char error[160];
};

struct wire_encoder *wire_encoder_create(size_t max_request_bytes)
{
    struct wire_encoder *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->cap = max_request_bytes;
    return e;
}

void wire_encoder_destroy(struct wire_encoder *e)
{
    if (e == NULL)
        return;
    free(e->pb);
    free(e->out);
    free(e->slots);
    free(e->syms);
    free(e->refs);
    free(e);
}

const char *wire_encoder_error(const struct wire_encoder *e)
{
    return e->error;
}

static int enc_fail(struct wire_encoder *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int enc_fail(struct wire_encoder *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->error, sizeof e->error, fmt, ap);
    va_end(ap);
    return -1;
}

/* Grow a realloc array to at least need elements (doubling). */
static int grow_array(void **arr, size_t *cap, size_t elem, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap < 64 ? 64 : *cap;
    while (ncap < need)
        ncap *= 2;
    if (ncap > SIZE_MAX / elem)
        return -1;
    void *p = realloc(*arr, ncap * elem);
    if (p == NULL)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* Hash of a non-empty byte string. The tail is read with fixed-size loads
 * (overlapping when needed): a variable-length copy into a word costs a
 * store-forwarding stall per symbol. */
static uint32_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = UINT64_C(0x9e3779b97f4a7c15) ^ n, w;
    while (n > 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * UINT64_C(0xff51afd7ed558ccd);
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        w = (uint64_t)a << 32 | b;
    } else {
        w = (uint64_t)(uint8_t)p[0] << 16 | (uint64_t)(uint8_t)p[n / 2] << 8 | (uint8_t)p[n - 1];
    }
    /* murmur3's finaliser: every input bit reaches the low bits used as
     * the slot index */
    h ^= w;
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return (uint32_t)h;
}

static void slots_insert(struct wire_encoder *e, uint32_t hash, uint32_t idx1)
{
    size_t mask = e->nslots - 1, i = hash & mask;
    while (e->slots[i] != 0)
        i = (i + 1) & mask;
    e->slots[i] = idx1;
}

/* Index of the symbol with these bytes, adding it when new; -1 on failure. */
static int64_t intern(struct wire_encoder *e, const char *p, uint32_t len)
{
    if (len == 0)
        return 0; /* symbols[0] is always "" */
    if ((e->nsyms + 1) * 2 > e->nslots) {
        size_t n = e->nslots ? e->nslots * 2 : 1024;
        uint32_t *s = calloc(n, sizeof *s);
        if (s == NULL)
            return -1;
        free(e->slots);
        e->slots = s;
        e->nslots = n;
        for (size_t i = 1; i < e->nsyms; i++)
            slots_insert(e, e->syms[i].hash, (uint32_t)i + 1);
    }
    uint32_t h = hash_bytes(p, len);
    size_t mask = e->nslots - 1, i = h & mask;
    while (e->slots[i] != 0) {
        const struct esym *s = &e->syms[e->slots[i] - 1];
        if (s->hash == h && s->len == len && memcmp(s->p, p, len) == 0)
            return e->slots[i] - 1;
        i = (i + 1) & mask;
    }
    if (e->nsyms >= UINT32_MAX - 1)
        return -1;
    void *arr = e->syms;
    if (grow_array(&arr, &e->symscap, sizeof *e->syms, e->nsyms + 1) != 0)
        return -1;
    e->syms = arr;
    e->syms[e->nsyms] = (struct esym){p, len, h};
    e->slots[i] = (uint32_t)(e->nsyms + 1);
    return (int64_t)e->nsyms++;
}

static size_t sample_size(const struct sample *s)
{
    uint64_t t;
    memcpy(&t, &s->t, sizeof t);
    return 9 + 1 + wire_pb_varint_size(t);
}

static uint8_t *put_sample(uint8_t *p, const struct sample *s)
{
    uint64_t bits, t;
    memcpy(&bits, &s->v, sizeof bits); /* bit copy keeps stale markers exact */
    memcpy(&t, &s->t, sizeof t);
    p = wire_pb_put_tag(p, 2, WIRE_PB_LEN);
    p = wire_pb_put_varint(p, sample_size(s));
    p = wire_pb_put_tag(p, 1, WIRE_PB_I64);
    p = wire_pb_put_le64(p, bits);
    p = wire_pb_put_tag(p, 2, WIRE_PB_VARINT);
    return wire_pb_put_varint(p, t);
}

/* v1 Label body: empty strings are omitted, as proto3 encoders do. */
static size_t v1_label_size(const struct label *l)
{
    return (l->name_len ? wire_pb_len_field_size(l->name_len) : 0) +
           (l->value_len ? wire_pb_len_field_size(l->value_len) : 0);
}

/* Size of a v1 TimeSeries body; stops counting once over cap (the caller
 * then fails), so the sum cannot overflow. */
static size_t v1_series_size(const struct wire_series *s, size_t cap)
{
    size_t n = 0;
    for (uint32_t i = 0; i < s->nlabels && n <= cap; i++)
        n += wire_pb_len_field_size(v1_label_size(&s->labels[i]));
    for (uint32_t i = 0; i < s->nsamples && n <= cap; i++)
        n += wire_pb_len_field_size(sample_size(&s->samples[i]));
    return n;
}

static int check_series(struct wire_encoder *e, enum wire_proto proto, const struct wire_series *s,
                        size_t i)
{
    if (!labels_sorted(s->labels, s->nlabels))
        return enc_fail(e, "series %zu: labels not sorted by name or duplicated", i);
    if (proto == WIRE_PROTO_V2 && s->nsamples == 0)
        return enc_fail(e, "series %zu: no samples (v2 receivers reject it)", i);
    return 0;
}

static int encode_v1(struct wire_encoder *e, const struct wire_series *series, size_t n,
                     size_t *pblen)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (check_series(e, WIRE_PROTO_V1, &series[i], i) != 0)
            return -1;
        total += wire_pb_len_field_size(v1_series_size(&series[i], e->cap));
        if (total > e->cap)
            return enc_fail(e, "request exceeds %zu bytes; send fewer series", e->cap);
    }
    if (ensure_buf(&e->pb, &e->pbcap, total) != 0)
        return enc_fail(e, "out of memory");
    uint8_t *p = e->pb;
    for (size_t i = 0; i < n; i++) {
        const struct wire_series *s = &series[i];
        p = wire_pb_put_tag(p, 1, WIRE_PB_LEN);
        p = wire_pb_put_varint(p, v1_series_size(s, e->cap));
        for (uint32_t k = 0; k < s->nlabels; k++) {
            const struct label *l = &s->labels[k];
            p = wire_pb_put_tag(p, 1, WIRE_PB_LEN);
            p = wire_pb_put_varint(p, v1_label_size(l));
            if (l->name_len)
                p = wire_pb_put_bytes(p, 1, l->name, l->name_len);
            if (l->value_len)
                p = wire_pb_put_bytes(p, 2, l->value, l->value_len);
        }
        for (uint32_t k = 0; k < s->nsamples; k++)
            p = put_sample(p, &s->samples[k]);
    }
    *pblen = (size_t)(p - (uint8_t *)e->pb);
    return 0;
}

/* Bytes of the packed labels_refs of a series whose refs start at r. */
static size_t refs_size(const uint32_t *r, size_t nrefs)
{
    size_t n = 0;
    for (size_t i = 0; i < nrefs; i++)
        n += wire_pb_varint_size(r[i]);
    return n;
}

static size_t v2_series_size(const struct wire_series *s, const uint32_t *r, size_t cap)
{
    size_t nrefs = (size_t)s->nlabels * 2;
    size_t n = nrefs ? wire_pb_len_field_size(refs_size(r, nrefs)) : 0;
    for (uint32_t i = 0; i < s->nsamples && n <= cap; i++)
        n += wire_pb_len_field_size(sample_size(&s->samples[i]));
    return n;
}

static int encode_v2(struct wire_encoder *e, const struct wire_series *series, size_t n,
                     size_t *pblen)
{
    /* Pass 1: intern every name and value, keep the refs, size everything. */
    e->nsyms = 0;
    if (e->nslots)
        memset(e->slots, 0, e->nslots * sizeof *e->slots);
    void *arr = e->syms;
    if (grow_array(&arr, &e->symscap, sizeof *e->syms, 1) != 0)
        return enc_fail(e, "out of memory");
    e->syms = arr;
    e->syms[0] = (struct esym){"", 0, 0};
    e->nsyms = 1;
    size_t total = 0, nrefs = 0;
    for (size_t i = 0; i < n; i++) {
        const struct wire_series *s = &series[i];
        if (check_series(e, WIRE_PROTO_V2, s, i) != 0)
            return -1;
        arr = e->refs;
        if (grow_array(&arr, &e->refscap, sizeof *e->refs, nrefs + (size_t)s->nlabels * 2) != 0)
            return enc_fail(e, "out of memory");
        e->refs = arr;
        size_t nsyms_before = e->nsyms;
        for (uint32_t k = 0; k < s->nlabels; k++) {
            int64_t a = intern(e, s->labels[k].name, s->labels[k].name_len);
            int64_t b = intern(e, s->labels[k].value, s->labels[k].value_len);
            if (a < 0 || b < 0)
                return enc_fail(e, "out of memory for the symbol table");
            e->refs[nrefs + 2 * k] = (uint32_t)a;
            e->refs[nrefs + 2 * k + 1] = (uint32_t)b;
        }
        for (size_t k = nsyms_before; k < e->nsyms; k++)
            total += wire_pb_len_field_size(e->syms[k].len);
        total += wire_pb_len_field_size(v2_series_size(s, e->refs + nrefs, e->cap));
        nrefs += (size_t)s->nlabels * 2;
        if (total > e->cap)
            return enc_fail(e, "request exceeds %zu bytes; send fewer series", e->cap);
    }
    total += wire_pb_len_field_size(0); /* symbols[0] */
    if (total > e->cap)
        return enc_fail(e, "request exceeds %zu bytes; send fewer series", e->cap);
    if (ensure_buf(&e->pb, &e->pbcap, total) != 0)
        return enc_fail(e, "out of memory");

    /* Pass 2: symbols first (receivers need not look ahead), then series. */
    uint8_t *p = e->pb;
    for (size_t k = 0; k < e->nsyms; k++)
        p = wire_pb_put_bytes(p, 4, e->syms[k].p, e->syms[k].len);
    const uint32_t *r = e->refs;
    for (size_t i = 0; i < n; i++) {
        const struct wire_series *s = &series[i];
        size_t nr = (size_t)s->nlabels * 2;
        p = wire_pb_put_tag(p, 5, WIRE_PB_LEN);
        p = wire_pb_put_varint(p, v2_series_size(s, r, e->cap));
        if (nr) {
            p = wire_pb_put_tag(p, 1, WIRE_PB_LEN);
            p = wire_pb_put_varint(p, refs_size(r, nr));
            for (size_t k = 0; k < nr; k++)
                p = wire_pb_put_varint(p, r[k]);
        }
        for (uint32_t k = 0; k < s->nsamples; k++)
            p = put_sample(p, &s->samples[k]);
        r += nr;
    }
    *pblen = (size_t)(p - (uint8_t *)e->pb);
    return 0;
}

int wire_encode_write(struct wire_encoder *e, enum wire_proto proto,
                      const struct wire_series *series, size_t n, const void **out, size_t *outlen)
{
    size_t pblen = 0, zlen;
    int rc;
    e->error[0] = '\0';
    if (proto == WIRE_PROTO_V1)
        rc = encode_v1(e, series, n, &pblen);
    else if (proto == WIRE_PROTO_V2)
        rc = encode_v2(e, series, n, &pblen);
    else
        rc = enc_fail(e, "unknown remote-write protocol %d", (int)proto);
    if (rc != 0)
        return -1;
    if (wire_snappy_compress(e->pb, pblen, &e->out, &e->outcap, &zlen) != 0)
        return enc_fail(e, "snappy compression failed");
    *out = e->out;
    *outlen = zlen;
    return 0;
}
