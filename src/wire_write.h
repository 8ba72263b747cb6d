/*
 * wire_write.h — Prometheus remote-write bodies: snappy + protobuf, v1 and v2.
 *
 * Decoding turns an untrusted request body (snappy block format, then a v1
 * `prometheus.WriteRequest` or a v2 `io.prometheus.write.v2.Request`) into a
 * flat array of series. The decode is zero copy: label bytes point into the
 * decompressed body (or into the caller's buffer for the _raw variant), and
 * every array comes from a per-decoder arena that is reused from request to
 * request, so a decoder in steady state does not call malloc.
 *
 * Encoding builds the same messages from series (write-back of forecasts,
 * the benchmark tool, tests). The snappy helpers at the end are for the other
 * modules that need snappy (remote read): protobuf-c and snappy are included
 * only by the wire module.
 *
 * Thread-safety: a wire_decoder or wire_encoder is used by one thread at a
 * time (give each worker thread its own); different instances are
 * independent. All other functions are reentrant.
 */
#ifndef PROMCAST_WIRE_WRITE_H
#define PROMCAST_WIRE_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "labels.h"

enum wire_proto {
    WIRE_PROTO_V1 = 1, /* prometheus.WriteRequest */
    WIRE_PROTO_V2 = 2, /* io.prometheus.write.v2.Request */
};

/* Why a body was rejected. The http module maps each class to a status code
 * (suggested mapping in the comments) and wire_err_reason() gives the
 * `reason` label of promcast_rejected_requests_total. */
enum wire_err {
    WIRE_OK = 0,
    WIRE_ERR_SNAPPY,          /* corrupt snappy, or the framed format → 400 */
    WIRE_ERR_TOO_LARGE,       /* declared decompressed length over the limit → 413 */
    WIRE_ERR_PROTOBUF,        /* malformed protobuf → 400 */
    WIRE_ERR_TOO_MANY_SERIES, /* more series than max_series → 413 */
    WIRE_ERR_TOO_MANY_LABELS, /* a series with more than max_labels labels → 400 */
    WIRE_ERR_LABEL_TOO_LONG,  /* a label name or value over its limit → 400 */
    WIRE_ERR_INVALID_LABELS,  /* empty set, empty name, duplicate name, bad UTF-8 → 400 */
    WIRE_ERR_INVALID_REF, /* v2: ref outside symbols, odd labels_refs, symbols[0] != "" → 400 */
    WIRE_ERR_INVALID_SERIES, /* v2: a series with both samples and histograms, or neither → 400 */
    WIRE_ERR_NOMEM,          /* decoder arena cap reached (request too complex) → 413 */
};
#define WIRE_ERR_COUNT (WIRE_ERR_NOMEM + 1)

/* Short snake_case name of an error class for metric labels: "ok", "snappy",
 * "too_large", "protobuf", "too_many_series", "too_many_labels",
 * "label_too_long", "invalid_labels", "invalid_ref", "invalid_series",
 * "nomem". Static string. */
const char *wire_err_reason(enum wire_err e);

/* Per-request limits (see limits.h for meaning and config keys). Every field
 * must be set; wire_limits_default() fills the limits.h defaults. */
struct wire_limits {
    size_t max_decompressed_bytes; /* snappy's declared length, checked before allocating */
    size_t max_series;             /* TimeSeries entries per request */
    size_t max_labels;             /* labels per series, after dropping empty values */
    size_t max_label_name_len;     /* bytes */
    size_t max_label_value_len;    /* bytes */
};

void wire_limits_default(struct wire_limits *l);

/* One decoded TimeSeries entry. Labels are sorted by name, free of empty
 * values (Prometheus treats an empty value as an absent label), non-empty,
 * without empty or duplicate names, valid UTF-8 and within the limits.
 * Samples are in wire order, values bit-exact (stale markers included).
 * Histograms and exemplars are validated for well-formedness and counted
 * only; a histogram whose `sum` is the stale NaN counts as stale. The same
 * label set may appear in several entries of one request. */
struct wire_series {
    struct label *labels;
    uint32_t nlabels;
    uint32_t nsamples;
    struct sample *samples;
    uint32_t nhistograms;
    uint32_t nstale_histograms;
    uint32_t nexemplars;
};

/* A decoded request. `series` and everything it points to belong to the
 * decoder (and, for labels, to the body buffer: see below). */
struct wire_request {
    enum wire_proto proto;
    struct wire_series *series;
    size_t nseries;
    uint64_t nsamples; /* sums over series */
    uint64_t nhistograms;
    uint64_t nstale_histograms;
    uint64_t nexemplars;
    uint64_t nmetadata; /* v1: MetricMetadata entries; v2: series carrying metadata */
    size_t decompressed_bytes;
};

/* Reusable per-thread decoding state: the decompression buffer (bounded per
 * call by limits->max_decompressed_bytes) and an arena for the series, label,
 * sample and symbol arrays whose total capacity never exceeds
 * arena_cap_bytes. A request that would need more fails with WIRE_ERR_NOMEM.
 * Need: 40 bytes per series + 24 per label + 16 per sample + 16 per v2
 * symbol, plus growth slack. Real Prometheus payloads need about 1.2x their
 * decompressed size (2000 series of 10 labels: ~600 KiB); a pathological body
 * can need up to ~12x (v2: one-byte refs become 24-byte labels), so a cap of
 * 24 x max_decompressed_bytes is never reached by a body within the limit.
 * Returns NULL when out of memory. */
struct wire_decoder *wire_decoder_create(size_t arena_cap_bytes);

/* Frees the decoder and everything it holds (NULL is a no-op). Any result of
 * a previous decode becomes invalid. */
void wire_decoder_destroy(struct wire_decoder *d);

/* Release every buffer whose capacity is over keep_bytes (call after an
 * unusually large request so one spike does not pin memory). Invalidates the
 * previous result. Returns the bytes the decoder still holds. */
size_t wire_decoder_trim(struct wire_decoder *d, size_t keep_bytes);

/*
 * Decompress a snappy block body and decode it as `proto`.
 *
 * body is borrowed for the call only (nothing points into it afterwards).
 * limits is borrowed; NULL means wire_limits_default(). On WIRE_OK, *out is
 * filled and stays valid until the next decode, trim or destroy on the same
 * decoder; err (if errcap > 0) is set to "". On failure *out is untouched and
 * err receives one human-readable line (NUL-terminated, truncated to errcap),
 * e.g. "snappy: declared length 4294967295 exceeds limit 33554432". err may be
 * NULL when errcap is 0.
 *
 * A snappy body whose first bytes are the framing-format stream identifier
 * is rejected with WIRE_ERR_SNAPPY and a message saying so.
 */
enum wire_err wire_decode_write(struct wire_decoder *d, enum wire_proto proto, const void *body,
                                size_t len, const struct wire_limits *limits,
                                struct wire_request *out, char *err, size_t errcap);

/* Same for an uncompressed protobuf body (tests, fuzzing, benchmarks).
 * limits->max_decompressed_bytes applies to len. Zero copy: the labels of the
 * result point into pb, which the caller must keep unchanged for as long as
 * it uses the result. */
enum wire_err wire_decode_write_raw(struct wire_decoder *d, enum wire_proto proto, const void *pb,
                                    size_t len, const struct wire_limits *limits,
                                    struct wire_request *out, char *err, size_t errcap);

/* Reusable encoding buffers. max_request_bytes caps the uncompressed protobuf
 * of one request (receivers commonly accept 32 MiB; split batches well below
 * it); the other buffers are bounded by it. NULL when out of memory. */
struct wire_encoder *wire_encoder_create(size_t max_request_bytes);
void wire_encoder_destroy(struct wire_encoder *e);

/*
 * Encode n series as a v1 WriteRequest or a v2 Request (symbol table built
 * on the fly, symbols[0] = "") and snappy-compress it. series and everything
 * they point to are borrowed for the call. Each series' labels must be sorted
 * by name without duplicates; v2 also needs at least one sample per series
 * (receivers reject others). Labels with an empty value are sent as such
 * (receivers drop them). Histograms/exemplar counts in `series` are ignored.
 *
 * On success returns 0 and sets *out and *outlen to the compressed body, owned by
 * the encoder and valid until its next call or destroy. On failure (cap
 * exceeded, unsorted labels, out of memory) returns -1, leaves *out and *outlen
 * untouched, and wire_encoder_error() describes why.
 */
int wire_encode_write(struct wire_encoder *e, enum wire_proto proto,
                      const struct wire_series *series, size_t n, const void **out, size_t *outlen);

/* Static one-line description of the last wire_encode_write() failure. */
const char *wire_encoder_error(const struct wire_encoder *e);

/*
 * Snappy block-format helpers for other modules. Both write into a
 * caller-owned heap buffer *buf of capacity *bufcap, grown with realloc() as
 * needed (start with NULL/0; free() it when done), so callers can reuse it.
 * The buffer may have been grown even when the call fails.
 *
 * wire_snappy_uncompress() rejects the framed format and corrupt input
 * (WIRE_ERR_SNAPPY), reads the declared length and rejects it if over
 * max_len (WIRE_ERR_TOO_LARGE) before allocating anything, and returns
 * WIRE_ERR_NOMEM when realloc fails. err/errcap as for wire_decode_write().
 *
 * wire_snappy_compress() returns 0, or -1 when len is over 4 GiB - 1 or
 * memory runs out.
 */
enum wire_err wire_snappy_uncompress(const void *src, size_t len, size_t max_len, void **buf,
                                     size_t *bufcap, size_t *outlen, char *err, size_t errcap);
int wire_snappy_compress(const void *src, size_t len, void **buf, size_t *bufcap, size_t *outlen);

#endif
