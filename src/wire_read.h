/*
 * wire_read.h — Prometheus remote-read bodies: requests, SAMPLES responses,
 * STREAMED_XOR_CHUNKS frames and the XOR chunk encoding (protocols.md §2).
 *
 * Server side (promcast answers Prometheus's remote_read):
 *   wire_read_decode_request()       untrusted ReadRequest → queries + matchers
 *   struct wire_read_response        builds a SAMPLES body or chunk frames
 * Client side (promcast warm-starts from Prometheus's /api/v1/read):
 *   wire_read_encode_request()       queries → ReadRequest body
 *   wire_read_decode_response()      SAMPLES or streamed body → series, one
 *                                    callback per series
 * Shared:
 *   wire_read_xor_encode/decode()    the Gorilla-style XOR chunk data
 *
 * Everything is a pure codec: no I/O, no locks, no globals. The HTTP headers
 * that go with each body are given as macros below; mapping error classes to
 * status codes is the http module's job.
 *
 * Thread-safety: a struct wire_read_response or wire_read_request is used by
 * one thread at a time; distinct instances are independent. All other
 * functions are reentrant and may be called from any thread.
 */
#ifndef PROMCAST_WIRE_READ_H
#define PROMCAST_WIRE_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels.h"
#include "selector.h" /* enum matcher_op: EQ 0, NEQ 1, RE 2, NRE 3, as on the wire */

/* Response types, numbered as in ReadRequest.ResponseType. */
enum wire_read_type {
    WIRE_READ_SAMPLES = 0,
    WIRE_READ_STREAMED_XOR_CHUNKS = 1,
};

/* Headers of a SAMPLES response (and of every request): the body is a
 * snappy block. */
#define WIRE_READ_SAMPLES_CONTENT_TYPE     "application/x-protobuf"
#define WIRE_READ_SAMPLES_CONTENT_ENCODING "snappy"
/* Header of a STREAMED_XOR_CHUNKS response, spelled exactly as Prometheus
 * clients match it (space after ';'). No Content-Encoding: frames are not
 * compressed. */
#define WIRE_READ_STREAMED_CONTENT_TYPE                                                            \
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
/* Request header Prometheus's client sends. */
#define WIRE_READ_VERSION_HEADER "X-Prometheus-Remote-Read-Version"
#define WIRE_READ_VERSION        "0.1.0"

/* Samples per XOR chunk written by the encoders (Prometheus's chunk size). */
#define WIRE_READ_CHUNK_SAMPLES 120

/* Why a body was rejected or could not be built. Suggested HTTP status for
 * the server-side classes in the comments; wire_read_err_reason() gives a
 * snake_case name for metric labels. */
enum wire_read_err {
    WIRE_READ_OK = 0,
    WIRE_READ_ERR_SNAPPY,            /* corrupt or framed snappy → 400 */
    WIRE_READ_ERR_TOO_LARGE,         /* body or declared decompressed size over a limit → 413 */
    WIRE_READ_ERR_PROTOBUF,          /* malformed protobuf → 400 */
    WIRE_READ_ERR_TOO_MANY_QUERIES,  /* more queries than max_queries → 413 */
    WIRE_READ_ERR_TOO_MANY_MATCHERS, /* a query with more than max_matchers → 400 */
    WIRE_READ_ERR_INVALID_MATCHER,   /* unknown type, empty name, name/value too long → 400 */
    WIRE_READ_ERR_RESPONSE_TYPE,     /* no accepted response type is supported → 400 */
    WIRE_READ_ERR_FRAME,             /* streamed body: truncated frame or CRC mismatch */
    WIRE_READ_ERR_CHUNK,             /* corrupt XOR chunk data */
    WIRE_READ_ERR_INVALID_SERIES,    /* bad labels or samples (response side) */
    /* a cap of a response was hit; building one → 400, as Prometheus answers
     * "exceeded sample limit" */
    WIRE_READ_ERR_LIMIT,
    WIRE_READ_ERR_ABORTED, /* the caller's callback asked to stop */
    WIRE_READ_ERR_NOMEM,   /* out of memory → 500 */
};
#define WIRE_READ_ERR_COUNT (WIRE_READ_ERR_NOMEM + 1)

/* "ok", "snappy", "too_large", "protobuf", "too_many_queries",
 * "too_many_matchers", "invalid_matcher", "response_type", "frame", "chunk",
 * "invalid_series", "limit", "aborted", "nomem". Static string. */
const char *wire_read_err_reason(enum wire_read_err e);

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

/* One label matcher. name/value are byte strings, NOT NUL-terminated, and
 * may contain NUL bytes: always use the lengths. */
struct wire_read_matcher {
    enum matcher_op op;
    uint32_t name_len;
    uint32_t value_len;
    const char *name;
    const char *value;
};

/* One query: [start_ms, end_ms], both inclusive, and its matchers (all must
 * hold). Hints are not kept: they are advisory. */
struct wire_read_query {
    int64_t start_ms;
    int64_t end_ms;
    const struct wire_read_matcher *matchers;
    size_t nmatchers;
};

/* Bounds for decoding an untrusted ReadRequest (server side). Every field
 * must be set; wire_read_request_limits_default() fills the defaults. */
struct wire_read_request_limits {
    size_t max_body_bytes;         /* snappy body as received → TOO_LARGE */
    size_t max_decompressed_bytes; /* snappy's declared length, checked before allocating */
    size_t max_queries;            /* queries per request → TOO_MANY_QUERIES */
    size_t max_matchers;           /* matchers per query → TOO_MANY_MATCHERS */
    size_t max_name_len;           /* matcher name bytes → INVALID_MATCHER */
    size_t max_value_len;          /* matcher value (or regex) bytes → INVALID_MATCHER */
};

#define WIRE_READ_DEFAULT_MAX_REQUEST_BODY  (4u << 20)
#define WIRE_READ_DEFAULT_MAX_REQUEST_BYTES (16u << 20)
#define WIRE_READ_DEFAULT_MAX_QUERIES       256u
#define WIRE_READ_DEFAULT_MAX_MATCHERS      256u
#define WIRE_READ_DEFAULT_MAX_NAME_LEN      1024u      /* = LIMIT_MAX_LABEL_NAME_LENGTH */
#define WIRE_READ_DEFAULT_MAX_VALUE_LEN     (1u << 20) /* = SELECTOR_MAX_REGEX_BYTES */

void wire_read_request_limits_default(struct wire_read_request_limits *l);

/* A decoded request. The arrays and the name/value bytes live in storage
 * owned by the struct (a private copy of the body), valid until the next
 * decode into it or wire_read_request_cleanup(). Do not touch `mem`. */
struct wire_read_request {
    struct wire_read_query *queries;
    size_t nqueries;
    enum wire_read_type response_type; /* negotiated: see wire_read_decode_request() */
    size_t decompressed_bytes;
    void *mem; /* private */
};

/* Zero a request before first use; cleanup frees what it holds and zeroes
 * it again. Both accept NULL. */
void wire_read_request_init(struct wire_read_request *r);
void wire_read_request_cleanup(struct wire_read_request *r);

/*
 * Decompress a snappy ReadRequest body and decode it into *out.
 *
 * body is borrowed for the call (nothing points into it afterwards). limits
 * is borrowed; NULL means the defaults. The response type is negotiated as
 * Prometheus does: the first entry of accepted_response_types that is SAMPLES
 * or STREAMED_XOR_CHUNKS (packed or unpacked on the wire); an empty list
 * means SAMPLES; a list with no supported entry is WIRE_READ_ERR_RESPONSE_TYPE
 * ("server does not support any of the requested response types: [...]").
 * Matchers must have a type in 0..3, a non-empty name and lengths within the
 * limits; query ranges are not checked (start > end simply selects nothing).
 * Unknown fields and hints are skipped after a structural check.
 *
 * On WIRE_READ_OK the previous contents of *out are freed and replaced, and
 * err (if errcap > 0) is set to "". On failure *out is untouched and err
 * receives one line (NUL-terminated, truncated to errcap; err may be NULL
 * when errcap is 0).
 */
enum wire_read_err wire_read_decode_request(const void *body, size_t len,
                                            const struct wire_read_request_limits *limits,
                                            struct wire_read_request *out, char *err,
                                            size_t errcap);

/* The same for an uncompressed protobuf body (tests, fuzzing); the bytes are
 * copied. limits->max_decompressed_bytes applies to len. */
enum wire_read_err wire_read_decode_request_raw(const void *pb, size_t len,
                                                const struct wire_read_request_limits *limits,
                                                struct wire_read_request *out, char *err,
                                                size_t errcap);

/*
 * Encode a ReadRequest (client side) and snappy-compress it into the caller's
 * realloc buffer *buf of capacity *bufcap (start with NULL/0, free() when
 * done; it may have grown even on failure). queries and types are borrowed.
 * Ask for {STREAMED_XOR_CHUNKS, SAMPLES} to let a Prometheus server stream.
 * Returns 0 and sets *outlen, or -1 (matcher op out of range, out of memory,
 * body over 4 GiB) with a line in err.
 */
int wire_read_encode_request(const struct wire_read_query *queries, size_t nqueries,
                             const enum wire_read_type *types, size_t ntypes, void **buf,
                             size_t *bufcap, size_t *outlen, char *err, size_t errcap);

/* ------------------------------------------------------------------------ */
/* Responses, server side                                                    */

/*
 * A response builder: a SAMPLES body (ReadResponse, one QueryResult per
 * query, snappy-compressed by wire_read_response_finish) or a stream of
 * STREAMED_XOR_CHUNKS frames (`uvarint(len) ‖ CRC-32C(msg) big-endian ‖ msg`,
 * msg a ChunkedReadResponse holding one series, its samples cut into XOR
 * chunks of WIRE_READ_CHUNK_SAMPLES; a series whose frame would pass
 * frame_bytes is split over several frames carrying the same labels, at
 * chunk boundaries, as Prometheus does).
 *
 * max_bytes caps the whole response (uncompressed protobuf for SAMPLES,
 * frame bytes for streaming — taken or not), like Prometheus's sample limit:
 * going over it fails cleanly with WIRE_READ_ERR_LIMIT. Returns NULL when out
 * of memory. destroy accepts NULL.
 */
struct wire_read_response *wire_read_response_create(size_t max_bytes, size_t frame_bytes);
void wire_read_response_destroy(struct wire_read_response *r);

/* Start a new response of `type` answering nqueries queries (forgets
 * everything of the previous one; buffers are kept for reuse). */
void wire_read_response_begin(struct wire_read_response *r, enum wire_read_type type,
                              size_t nqueries);

/*
 * Add one series to the answer of query `query_index` (< nqueries; indexes
 * must not decrease from call to call: queries are answered in order).
 * labels must be sorted by name without duplicates (labels_sorted()), and
 * samples strictly increasing in time; both are borrowed for the call and
 * values are copied bit-exact (stale markers included). For SAMPLES a series
 * with no samples is still listed; in streamed mode it produces no frame
 * (Prometheus sends only series with chunks).
 *
 * Returns WIRE_READ_OK; WIRE_READ_ERR_LIMIT when max_bytes would be passed;
 * WIRE_READ_ERR_INVALID_SERIES for unsorted labels or samples, or a bad
 * query_index (a caller bug); WIRE_READ_ERR_NOMEM. On failure the response is
 * exactly as before the call (the caller may still finish it, or answer with
 * an error), and wire_read_response_error() says why.
 */
enum wire_read_err wire_read_response_add_series(struct wire_read_response *r, size_t query_index,
                                                 const struct label *labels, size_t nlabels,
                                                 const struct sample *samples, size_t nsamples);

/* Streamed mode only: hand out the frames encoded since the last take (or
 * begin), so a long response can be sent while it is built. *out stays valid
 * until the next call on r. In SAMPLES mode gives an empty span. */
void wire_read_response_take(struct wire_read_response *r, const void **out, size_t *outlen);

/*
 * Finish the response and hand out what is left to send: for SAMPLES the
 * whole snappy body (empty QueryResults are added for queries without
 * series, up to nqueries), for streaming the frames not yet taken. *out is
 * owned by r and valid until its next call. Returns WIRE_READ_OK or
 * WIRE_READ_ERR_NOMEM / WIRE_READ_ERR_LIMIT (body over 4 GiB).
 */
enum wire_read_err wire_read_response_finish(struct wire_read_response *r, const void **out,
                                             size_t *outlen);

/* Static one-line reason of the last failure on r ("" when none). */
const char *wire_read_response_error(const struct wire_read_response *r);

/* Bytes of response produced so far (uncompressed protobuf, or frames). */
size_t wire_read_response_bytes(const struct wire_read_response *r);

/* ------------------------------------------------------------------------ */
/* Responses, client side                                                    */

/* Bounds for decoding a response from a remote-read server. Every field must
 * be set; wire_read_response_limits_default() fills the defaults. */
struct wire_read_response_limits {
    size_t max_body_bytes;         /* the body as received → TOO_LARGE */
    size_t max_decompressed_bytes; /* SAMPLES: snappy's declared length → TOO_LARGE */
    size_t max_frame_bytes;        /* streamed: one frame's message → TOO_LARGE */
    size_t max_series;             /* series delivered over the response → LIMIT */
    size_t max_samples;            /* samples decoded over the response → LIMIT */
    size_t max_series_samples;     /* samples of one series (its merge buffer) → LIMIT */
    size_t max_labels;             /* labels per series → LIMIT */
    size_t max_label_name_len;     /* → LIMIT */
    size_t max_label_value_len;    /* → LIMIT */
};

#define WIRE_READ_DEFAULT_MAX_RESPONSE_BODY   (256u << 20)
#define WIRE_READ_DEFAULT_MAX_RESPONSE_BYTES  (512u << 20)
#define WIRE_READ_DEFAULT_MAX_FRAME_BYTES     50000000u /* Prometheus chunked_read_limit */
#define WIRE_READ_DEFAULT_MAX_SERIES          100000u
#define WIRE_READ_DEFAULT_MAX_SAMPLES         50000000u /* Prometheus read-sample-limit */
#define WIRE_READ_DEFAULT_MAX_SERIES_SAMPLES  2000000u
#define WIRE_READ_DEFAULT_MAX_LABELS          64u   /* = LIMIT_MAX_LABELS_PER_SERIES */
#define WIRE_READ_DEFAULT_MAX_LABEL_NAME_LEN  1024u /* = LIMIT_MAX_LABEL_NAME_LENGTH */
#define WIRE_READ_DEFAULT_MAX_LABEL_VALUE_LEN 4096u /* = LIMIT_MAX_LABEL_VALUE_LENGTH */

void wire_read_response_limits_default(struct wire_read_response_limits *l);

/*
 * Called once per series of a response. labels are sorted by name, without
 * empty values, non-empty and free of empty or duplicate names; they point
 * into the body (or its decompressed copy) and are NOT NUL-terminated.
 * samples are sorted by time without duplicate timestamps (the first of
 * several is kept), restricted to the query's [start_ms, end_ms], values
 * bit-exact. Both are borrowed for the duration of the call. A series may
 * have no samples. Return 0 to go on, non-zero to stop decoding
 * (WIRE_READ_ERR_ABORTED).
 */
typedef int (*wire_read_series_fn)(void *ctx, size_t query_index, const struct label *labels,
                                   size_t nlabels, const struct sample *samples, size_t nsamples);

/* Counts of one decode (filled as far as the decode got, also on failure). */
struct wire_read_stats {
    uint64_t frames;             /* streamed frames read */
    uint64_t results;            /* SAMPLES: QueryResults read */
    uint64_t series;             /* series delivered to the callback */
    uint64_t samples;            /* samples delivered */
    uint64_t chunks;             /* XOR chunks decoded */
    uint64_t skipped_chunks;     /* chunks of other encodings (native histograms) skipped */
    uint64_t skipped_histograms; /* SAMPLES: histogram samples skipped */
    uint64_t out_of_range;       /* samples outside the query's range, dropped */
    uint64_t duplicates;         /* samples with a timestamp already seen, dropped */
};

/*
 * Decode a response body of `type` to the request whose queries were
 * `queries[0..nqueries)` (borrowed; they give the ranges samples are
 * clipped to and bound the query indexes). SAMPLES: a snappy ReadResponse
 * whose results must number exactly nqueries. STREAMED_XOR_CHUNKS: frames,
 * each CRC-checked; a truncated frame or CRC mismatch is WIRE_READ_ERR_FRAME
 * (the server cannot change the status code once streaming, so an error
 * shows up as a broken stream); frames of one series are merged before the
 * callback sees it; chunks of encodings other than XOR are skipped and
 * counted. body is borrowed for the call; limits NULL means the defaults;
 * stats may be NULL.
 *
 * A streamed series is delivered once the next series starts or the body
 * ends cleanly, so a broken stream never delivers a possibly incomplete
 * series; series already delivered stay delivered when a later part of the
 * body fails (a caller that needs all-or-nothing buffers in its callback).
 * err/errcap as for wire_read_decode_request().
 */
enum wire_read_err wire_read_decode_response(const void *body, size_t len, enum wire_read_type type,
                                             const struct wire_read_query *queries, size_t nqueries,
                                             const struct wire_read_response_limits *limits,
                                             wire_read_series_fn fn, void *ctx,
                                             struct wire_read_stats *stats, char *err,
                                             size_t errcap);

/* ------------------------------------------------------------------------ */
/* XOR chunks                                                                */

/* Most bytes wire_read_xor_encode() writes for n samples. */
size_t wire_read_xor_max_size(size_t n);

/*
 * Encode n ≤ 65535 samples as XOR chunk data (Prometheus tsdb/chunkenc XOR,
 * the `data` of a remote-read Chunk of type XOR): big-endian uint16 count,
 * zigzag-varint first timestamp, raw first value, uvarint second delta,
 * then delta-of-delta buckets and XOR-windowed values, zero-padded to a
 * byte. Timestamps are taken as given (arithmetic wraps like Go's int64, so
 * any sequence round-trips; Prometheus readers expect increasing ones).
 * out must hold wire_read_xor_max_size(n) bytes. Returns the bytes written,
 * or 0 when n > 65535 or cap is too small.
 */
size_t wire_read_xor_encode(const struct sample *samples, size_t n, uint8_t *out, size_t cap);

/* Sample count from a chunk's header, or -1 when shorter than 2 bytes. */
long wire_read_xor_count(const void *data, size_t len);

/*
 * Decode XOR chunk data into out[0..cap). Reads exactly the header's count
 * of samples (which must be ≤ cap) and ignores whatever follows them, as
 * Prometheus's iterator does. Returns 0 and sets *n, or -1 when the data is
 * truncated or malformed (a window of more than 64 bits, a varint over 64
 * bits) or the count exceeds cap, with a line in err; out may then have
 * been partly written. data is borrowed for the call.
 */
int wire_read_xor_decode(const void *data, size_t len, struct sample *out, size_t cap, size_t *n,
                         char *err, size_t errcap);

#endif
