/*
 * http.c — the HTTP front door: routing, request bodies, status codes.
 *
 * Wraps libmicrohttpd (its only user) with an internal thread pool. The write
 * path is: headers → content negotiation (415 early) → body accumulated up to
 * limits.max_compressed_request_bytes (413) → wire_decode_write() on a
 * per-thread decoder → series_ingest_batch() → 204. Every rejection
 * increments promcast_rejected_requests_total{reason} and logs a rate-limited
 * warning with the same one-line message the client gets in the body.
 *
 * Deliberately not here: decoding (wire), the index (series), config loading
 * (main.c owns reload; we call a hook), JSON views beyond /api/v1/status.
 */
#include "http.h"

#include "clock.h"
#include "config.h"
#include "log.h"
#include "pipeline.h"
#include "selector.h"
#include "selfmetrics.h"
#include "series.h"
#include "wire_read.h"
#include "wire_write.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* Arena cap per decoding thread: generous against the decompressed-size limit
 * (decoded arrays are smaller than the protobuf they come from, labels are
 * 24 bytes per wire label of at least 4 bytes), enforced by the decoder. */
#define HTTP_DECODER_ARENA_FACTOR 8
/* Past this many bytes of an oversized chunked upload we stop draining and
 * drop the connection instead of reading forever. */
#define HTTP_DRAIN_FACTOR 4
/* Series handed to the index per call. */
#define HTTP_INGEST_BATCH 64

enum route {
    ROUTE_NOT_FOUND = 0,
    ROUTE_WRITE,
    ROUTE_READ,
    ROUTE_METRICS,
    ROUTE_HEALTHY,
    ROUTE_READY,
    ROUTE_RELOAD,
    ROUTE_STATUS,
};

struct route_def {
    const char *path;
    enum route route;
    const char *methods; /* for 405 + Allow */
};

static const struct route_def routes[] = {
    {"/api/v1/write", ROUTE_WRITE, "POST"},   {"/api/v1/read", ROUTE_READ, "POST"},
    {"/metrics", ROUTE_METRICS, "GET, HEAD"}, {"/-/healthy", ROUTE_HEALTHY, "GET, HEAD"},
    {"/-/ready", ROUTE_READY, "GET, HEAD"},   {"/-/reload", ROUTE_RELOAD, "POST, PUT"},
    {"/api/v1/status", ROUTE_STATUS, "GET"},
};

/* Why a write request was refused, for promcast_rejected_requests_total. */
enum reject {
    REJECT_NONE = 0,
    REJECT_CONTENT_TYPE,
    REJECT_CONTENT_ENCODING,
    REJECT_BODY_TOO_LARGE,
    REJECT_OVERLOADED,
    REJECT_DECODE, /* reason label comes from wire_err_reason() */
    REJECT__COUNT
};

static const char *const reject_reasons[] = {
    [REJECT_NONE] = "none",
    [REJECT_CONTENT_TYPE] = "unsupported_content_type",
    [REJECT_CONTENT_ENCODING] = "unsupported_content_encoding",
    [REJECT_BODY_TOO_LARGE] = "body_too_large",
    [REJECT_OVERLOADED] = "overloaded",
    [REJECT_DECODE] = "decode",
};

/* Per-protocol metric handles, looked up once. */
struct proto_metrics {
    struct selfmetrics_counter *samples, *histograms, *exemplars, *metadata, *series;
    struct selfmetrics_counter *bytes_compressed, *bytes_decompressed;
    struct selfmetrics_histogram *decode_seconds;
};

struct http_server {
    struct MHD_Daemon *mhd;
    uint16_t port;
    struct series_index *series;
    struct pipeline *pipeline;
    struct selfmetrics *metrics;
    struct http_hooks hooks;
    struct selfmetrics_family *reads_family; /* {code} */
    struct selfmetrics_counter *read_series, *read_samples;

    pthread_mutex_t limits_lock;
    struct http_limits limits;

    atomic_uint_fast64_t inflight;
    pthread_key_t decoder_key;

    struct proto_metrics proto[3];              /* index by enum wire_proto (1, 2) */
    struct selfmetrics_family *requests_family; /* {handler, code} */
    struct selfmetrics_family *writes_family;   /* {protocol, code} */
    struct selfmetrics_family *rejected_family; /* {reason} */
    struct selfmetrics_counter *out_of_order, *duplicates, *stale, *series_created;
    struct selfmetrics_counter *dropped_series_limit, *dropped_samples_limit;
    struct selfmetrics_counter *duplicate_conflicts, *modelled_samples, *dropped_invalid;
    struct selfmetrics_counter *unmodelled_limit, *ingest_nomem;
};

/* One request's state, from the first call of the access handler to the
 * completion callback. */
struct request {
    enum route route;
    enum wire_proto proto;
    enum reject reject;
    int status; /* decided early (415/413/503), sent when the body is drained */
    char msg[256];
    char *body;
    size_t len, cap;
    size_t drained;    /* bytes discarded after an early decision */
    uint64_t max_body; /* cap on the buffered body for this route */
    bool inflight;
    struct http_limits limits; /* snapshot at request start */
};

static const char *proto_name(enum wire_proto p)
{
    return p == WIRE_PROTO_V2 ? "v2" : "v1";
}

/* ---- responses ------------------------------------------------------------ */

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned status, const char *ctype,
                                const void *buf, size_t len, enum MHD_ResponseMemoryMode mode,
                                const char *const *headers)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)buf, mode);
    if (!r)
        return MHD_NO;
    if (ctype)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    for (; headers && headers[0]; headers += 2)
        MHD_add_response_header(r, headers[0], headers[1]);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *text,
                                 const char *const *headers)
{
    /* Error bodies are one human-readable line. */
    char line[1024];
    int n = snprintf(line, sizeof line, "%s\n", text);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    return send_buf(c, status, "text/plain; charset=utf-8", line, (size_t)n, MHD_RESPMEM_MUST_COPY,
                    headers);
}

static void count_request(struct http_server *s, const char *handler, unsigned status)
{
    char code[16];
    snprintf(code, sizeof code, "%u", status);
    selfmetrics_counter_inc(selfmetrics_counter_get(s->requests_family, handler, code));
}

static void count_reject(struct http_server *s, const char *reason)
{
    selfmetrics_counter_inc(selfmetrics_counter_get(s->rejected_family, reason));
}

/* ---- content negotiation (remote write) ----------------------------------- */

static const char *trim(const char *b, const char *e, const char **end)
{
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *end = e;
    return b;
}

static bool span_ieq(const char *b, const char *e, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(e - b) == n && strncasecmp(b, s, n) == 0;
}

static bool span_eq(const char *b, const char *e, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(e - b) == n && memcmp(b, s, n) == 0;
}

/*
 * Content-Type → protocol. Missing means 1.0 (as Prometheus does). The media
 * type must be application/x-protobuf; the `proto` parameter chooses the
 * message. Unlike Prometheus we trim optional whitespace and compare the
 * parameter name case-insensitively (RFC 9110), so "; proto=..." works too.
 * Returns 0, or -1 with a message.
 */
static int negotiate(const char *ctype, enum wire_proto *proto, char *msg, size_t cap)
{
    *proto = WIRE_PROTO_V1;
    if (!ctype || !*ctype)
        return 0;
    const char *end = ctype + strlen(ctype);
    const char *semi = memchr(ctype, ';', (size_t)(end - ctype));
    const char *te;
    const char *tb = trim(ctype, semi ? semi : end, &te);
    if (!span_ieq(tb, te, "application/x-protobuf")) {
        snprintf(msg, cap, "unsupported Content-Type %.100s, want application/x-protobuf", ctype);
        return -1;
    }
    while (semi) {
        const char *pb = semi + 1;
        semi = memchr(pb, ';', (size_t)(end - pb));
        const char *pe = semi ? semi : end;
        const char *eq = memchr(pb, '=', (size_t)(pe - pb));
        if (!eq)
            continue;
        const char *ne, *ve;
        const char *nb = trim(pb, eq, &ne);
        const char *vb = trim(eq + 1, pe, &ve);
        if (ve - vb >= 2 && *vb == '"' && ve[-1] == '"') {
            vb++;
            ve--;
        }
        if (!span_ieq(nb, ne, "proto"))
            continue;
        if (span_eq(vb, ve, "prometheus.WriteRequest")) {
            *proto = WIRE_PROTO_V1;
        } else if (span_eq(vb, ve, "io.prometheus.write.v2.Request")) {
            *proto = WIRE_PROTO_V2;
        } else {
            snprintf(msg, cap,
                     "unsupported remote-write message %.*s, want prometheus.WriteRequest or "
                     "io.prometheus.write.v2.Request",
                     (int)(ve - vb > 100 ? 100 : ve - vb), vb);
            return -1;
        }
    }
    return 0;
}

static int check_encoding(const char *enc, char *msg, size_t cap)
{
    if (!enc || !*enc)
        return 0; /* assumed snappy, like Prometheus */
    const char *e;
    const char *b = trim(enc, enc + strlen(enc), &e);
    if (span_ieq(b, e, "snappy"))
        return 0;
    snprintf(msg, cap, "unsupported Content-Encoding %.100s, want snappy", enc);
    return -1;
}

/* ---- per-thread decoders -------------------------------------------------- */

static void decoder_free(void *p)
{
    wire_decoder_destroy(p);
}

static struct wire_decoder *thread_decoder(struct http_server *s, const struct http_limits *lim)
{
    struct wire_decoder *d = pthread_getspecific(s->decoder_key);
    if (!d) {
        d = wire_decoder_create((size_t)lim->max_request_bytes * HTTP_DECODER_ARENA_FACTOR);
        if (d)
            pthread_setspecific(s->decoder_key, d);
    }
    return d;
}

/* ---- /api/v1/write ------------------------------------------------------- */

static unsigned wire_err_status(enum wire_err e)
{
    switch (e) {
    case WIRE_ERR_TOO_LARGE:
    case WIRE_ERR_TOO_MANY_SERIES:
    case WIRE_ERR_NOMEM:
        return MHD_HTTP_CONTENT_TOO_LARGE;
    case WIRE_OK:
        return MHD_HTTP_NO_CONTENT;
    default:
        return MHD_HTTP_BAD_REQUEST;
    }
}

static enum MHD_Result write_reply(struct http_server *s, struct MHD_Connection *c,
                                   struct request *rq, unsigned status, const char *msg,
                                   const struct wire_request *wr)
{
    char samples[24] = "0", hist[24] = "0", ex[24] = "0";
    const char *v2_headers[] = {"X-Prometheus-Remote-Write-Samples-Written",
                                samples,
                                "X-Prometheus-Remote-Write-Histograms-Written",
                                hist,
                                "X-Prometheus-Remote-Write-Exemplars-Written",
                                ex,
                                NULL};
    const char *retry_headers[] = {"Retry-After", "1", NULL};
    const char *const *headers = NULL;
    if (rq->proto == WIRE_PROTO_V2) {
        if (wr && status == MHD_HTTP_NO_CONTENT) {
            log_fmt_u64(samples, sizeof samples, wr->nsamples);
            log_fmt_u64(hist, sizeof hist, wr->nhistograms);
            log_fmt_u64(ex, sizeof ex, wr->nexemplars);
        }
        headers = v2_headers;
    } else if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        headers = retry_headers;
    }
    char code[16];
    snprintf(code, sizeof code, "%u", status);
    selfmetrics_counter_inc(selfmetrics_counter_get(s->writes_family, proto_name(rq->proto), code));
    count_request(s, "/api/v1/write", status);
    if (status == MHD_HTTP_NO_CONTENT)
        return send_buf(c, status, NULL, "", 0, MHD_RESPMEM_PERSISTENT, headers);
    return send_text(c, status, msg, headers);
}

static enum MHD_Result write_finish(struct http_server *s, struct MHD_Connection *c,
                                    struct request *rq)
{
    if (rq->status)
        return write_reply(s, c, rq, (unsigned)rq->status, rq->msg, NULL);

    struct proto_metrics *pm = &s->proto[rq->proto];
    int64_t t0 = clock_mono_ns();
    struct wire_decoder *d = thread_decoder(s, &rq->limits);
    if (!d) {
        count_reject(s, "out_of_memory");
        return write_reply(s, c, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
    }
    struct wire_limits wl = {
        .max_decompressed_bytes = rq->limits.max_request_bytes,
        .max_series = rq->limits.max_series_per_request,
        .max_labels = rq->limits.max_labels_per_series,
        .max_label_name_len = rq->limits.max_label_name_length,
        .max_label_value_len = rq->limits.max_label_value_length,
    };
    struct wire_request wr;
    char err[256];
    enum wire_err e = wire_decode_write(d, rq->proto, rq->body, rq->len, &wl, &wr, err, sizeof err);
    selfmetrics_counter_add(pm->bytes_compressed, rq->len);
    if (e != WIRE_OK) {
        const char *reason = wire_err_reason(e);
        count_reject(s, reason);
        log_warn_ratelimited("remote write rejected", "reason", reason, "err", err, "protocol",
                             proto_name(rq->proto));
        return write_reply(s, c, rq, wire_err_status(e), err, NULL);
    }

    struct series_ingest_stats st = {0};
    int64_t now = clock_now_ms();
    bool nomem = false;
    /* Batches let the index overlap the cache misses of neighbouring series. */
    struct series_input batch[HTTP_INGEST_BATCH];
    size_t nb = 0;
    for (size_t i = 0; i <= wr.nseries; i++) {
        if (i < wr.nseries) {
            const struct wire_series *ws = &wr.series[i];
            if (ws->nsamples == 0)
                continue; /* exemplar- or histogram-only entries are counted, not indexed */
            batch[nb++] = (struct series_input){ws->labels, ws->nlabels, ws->samples, ws->nsamples};
        }
        if (nb == HTTP_INGEST_BATCH || (i == wr.nseries && nb > 0)) {
            if (series_ingest_batch(s->series, batch, nb, now, &st) < 0)
                nomem = true;
            nb = 0;
        }
    }
    if (nomem) {
        selfmetrics_counter_inc(s->ingest_nomem);
        log_warn_ratelimited("out of memory inserting new series; their samples were dropped");
    }
    selfmetrics_histogram_observe(pm->decode_seconds, (double)(clock_mono_ns() - t0) / 1e9);
    selfmetrics_counter_add(pm->bytes_decompressed, wr.decompressed_bytes);
    selfmetrics_counter_add(pm->samples, wr.nsamples);
    selfmetrics_counter_add(pm->histograms, wr.nhistograms);
    selfmetrics_counter_add(pm->exemplars, wr.nexemplars);
    selfmetrics_counter_add(pm->metadata, wr.nmetadata);
    selfmetrics_counter_add(pm->series, wr.nseries);
    selfmetrics_counter_add(s->out_of_order, st.out_of_order);
    selfmetrics_counter_add(s->duplicates, st.duplicates);
    selfmetrics_counter_add(s->duplicate_conflicts, st.duplicate_conflicts);
    selfmetrics_counter_add(s->modelled_samples, st.modelled_samples);
    selfmetrics_counter_add(s->dropped_invalid, st.dropped_invalid);
    selfmetrics_counter_add(s->unmodelled_limit, st.unmodelled_series_limit);
    selfmetrics_counter_add(s->stale, st.stale);
    selfmetrics_counter_add(s->series_created, st.new_series);
    if (st.dropped_series_limit) {
        selfmetrics_counter_add(s->dropped_series_limit, st.dropped_series_limit);
        selfmetrics_counter_add(s->dropped_samples_limit, st.dropped_samples_limit);
        char n[24];
        log_warn_ratelimited("active series limit reached; new series not indexed", "dropped",
                             log_fmt_u64(n, sizeof n, st.dropped_series_limit));
    }
    return write_reply(s, c, rq, MHD_HTTP_NO_CONTENT, NULL, &wr);
}

/* First call for a write request: decide early refusals from the headers. */
static void write_begin(struct http_server *s, struct MHD_Connection *c, struct request *rq)
{
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    const char *clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");

    if (negotiate(ctype, &rq->proto, rq->msg, sizeof rq->msg) < 0) {
        rq->status = MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
        rq->reject = REJECT_CONTENT_TYPE;
    } else if (check_encoding(enc, rq->msg, sizeof rq->msg) < 0) {
        rq->status = MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
        rq->reject = REJECT_CONTENT_ENCODING;
    } else if (clen && strtoull(clen, NULL, 10) > rq->limits.max_compressed_request_bytes) {
        rq->status = MHD_HTTP_CONTENT_TOO_LARGE;
        rq->reject = REJECT_BODY_TOO_LARGE;
        snprintf(rq->msg, sizeof rq->msg, "request body of %s bytes exceeds limit %llu", clen,
                 (unsigned long long)rq->limits.max_compressed_request_bytes);
    } else if (atomic_fetch_add(&s->inflight, 1) >= rq->limits.max_inflight_requests) {
        atomic_fetch_sub(&s->inflight, 1);
        rq->status = MHD_HTTP_SERVICE_UNAVAILABLE;
        rq->reject = REJECT_OVERLOADED;
        snprintf(rq->msg, sizeof rq->msg,
                 "too many concurrent write requests (limit %llu), retry later",
                 (unsigned long long)rq->limits.max_inflight_requests);
    } else {
        rq->inflight = true;
    }
    if (rq->reject) {
        count_reject(s, reject_reasons[rq->reject]);
        log_warn_ratelimited("remote write rejected", "reason", reject_reasons[rq->reject], "err",
                             rq->msg);
    }
}

/* Append a body chunk, or discard it once the answer is decided. Returns
 * false when the connection should be dropped (oversized chunked upload). */
static bool buffer_body(struct request *rq, const char *data, size_t n)
{
    if (rq->status) {
        rq->drained += n;
        return rq->drained <= rq->max_body * HTTP_DRAIN_FACTOR;
    }
    if (rq->len + n > rq->max_body) {
        rq->status = MHD_HTTP_CONTENT_TOO_LARGE;
        rq->reject = REJECT_BODY_TOO_LARGE;
        snprintf(rq->msg, sizeof rq->msg, "request body exceeds limit %llu bytes",
                 (unsigned long long)rq->max_body);
        free(rq->body);
        rq->body = NULL;
        rq->len = rq->cap = 0;
        rq->drained = n;
        return true;
    }
    if (rq->len + n > rq->cap) {
        size_t cap = rq->cap ? rq->cap : 64 * 1024;
        while (cap < rq->len + n)
            cap *= 2;
        if (cap > rq->max_body)
            cap = rq->max_body;
        char *b = realloc(rq->body, cap);
        if (!b) {
            rq->status = MHD_HTTP_SERVICE_UNAVAILABLE;
            rq->reject = REJECT_OVERLOADED;
            snprintf(rq->msg, sizeof rq->msg, "out of memory buffering the request body");
            return true;
        }
        rq->body = b;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
    return true;
}

/* ---- /api/v1/read ------------------------------------------------------------ */

static enum MHD_Result read_reply(struct http_server *s, struct MHD_Connection *c, unsigned status,
                                  const char *msg)
{
    char code[16];
    snprintf(code, sizeof code, "%u", status);
    selfmetrics_counter_inc(selfmetrics_counter_get(s->reads_family, code));
    count_request(s, "/api/v1/read", status);
    if (status != MHD_HTTP_OK)
        log_warn_ratelimited("remote read refused", "status", code, "err", msg);
    return send_text(c, status, msg, NULL);
}

static unsigned wire_read_status(enum wire_read_err e)
{
    switch (e) {
    case WIRE_READ_ERR_TOO_LARGE:
    case WIRE_READ_ERR_TOO_MANY_QUERIES:
        return MHD_HTTP_CONTENT_TOO_LARGE;
    case WIRE_READ_ERR_NOMEM:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    default:
        return MHD_HTTP_BAD_REQUEST;
    }
}

struct read_answer {
    struct wire_read_response *resp;
    size_t query;
    enum wire_read_err err;
    uint64_t series, samples;
};

static int read_add(void *ctx, const struct label *labels, size_t n, const struct sample *smp,
                    size_t ns)
{
    struct read_answer *a = ctx;
    a->err = wire_read_response_add_series(a->resp, a->query, labels, n, smp, ns);
    if (a->err != WIRE_READ_OK)
        return 1;
    a->series++;
    a->samples += ns;
    return 0;
}

/*
 * Remote read of promcast's own outputs: each query's matchers become a
 * selector over the output series (pipeline_read), answered as SAMPLES or
 * STREAMED_XOR_CHUNKS as negotiated. The response is built whole (bounded by
 * limits.max_read_response_bytes) so an error can still change the status.
 */
static enum MHD_Result read_finish(struct http_server *s, struct MHD_Connection *c,
                                   struct request *rq)
{
    struct wire_read_request_limits rl;
    wire_read_request_limits_default(&rl);
    rl.max_body_bytes = rq->limits.max_read_request_bytes;
    rl.max_queries = rq->limits.max_read_queries;
    struct wire_read_request req;
    wire_read_request_init(&req);
    char err[256];
    enum wire_read_err e = wire_read_decode_request(rq->body, rq->len, &rl, &req, err, sizeof err);
    if (e != WIRE_READ_OK) {
        wire_read_request_cleanup(&req);
        return read_reply(s, c, wire_read_status(e), err);
    }
    struct wire_read_response *resp =
        wire_read_response_create(rq->limits.max_read_response_bytes, 1u << 20);
    if (!resp) {
        wire_read_request_cleanup(&req);
        return read_reply(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    wire_read_response_begin(resp, req.response_type, req.nqueries);
    struct read_answer a = {resp, 0, WIRE_READ_OK, 0, 0};
    unsigned status = MHD_HTTP_OK;
    for (size_t qi = 0; qi < req.nqueries && status == MHD_HTTP_OK; qi++) {
        const struct wire_read_query *q = &req.queries[qi];
        struct selector *sel = selector_create();
        if (!sel) {
            status = MHD_HTTP_INTERNAL_SERVER_ERROR;
            snprintf(err, sizeof err, "out of memory");
            break;
        }
        for (size_t m = 0; m < q->nmatchers && status == MHD_HTTP_OK; m++) {
            const struct wire_read_matcher *mt = &q->matchers[m];
            if (selector_add(sel, mt->op, mt->name, mt->name_len, mt->value, mt->value_len, err,
                             sizeof err) < 0)
                status = MHD_HTTP_BAD_REQUEST;
        }
        if (status == MHD_HTTP_OK) {
            a.query = qi;
            int rc = pipeline_read(s->pipeline, sel, q->start_ms, q->end_ms, read_add, &a);
            if (a.err != WIRE_READ_OK) {
                status = a.err == WIRE_READ_ERR_LIMIT ? MHD_HTTP_BAD_REQUEST
                                                      : MHD_HTTP_INTERNAL_SERVER_ERROR;
                snprintf(err, sizeof err, "%s (limits.max_read_response_bytes %llu)",
                         wire_read_response_error(resp),
                         (unsigned long long)rq->limits.max_read_response_bytes);
            } else if (rc < 0) {
                status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                snprintf(err, sizeof err, "out of memory");
            }
        }
        selector_destroy(sel);
    }
    enum wire_read_type type = req.response_type;
    wire_read_request_cleanup(&req);
    const void *body = NULL;
    size_t len = 0;
    if (status == MHD_HTTP_OK && wire_read_response_finish(resp, &body, &len) != WIRE_READ_OK) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        snprintf(err, sizeof err, "%s", wire_read_response_error(resp));
    }
    if (status != MHD_HTTP_OK) {
        wire_read_response_destroy(resp);
        return read_reply(s, c, status, err);
    }
    selfmetrics_counter_add(s->read_series, a.series);
    selfmetrics_counter_add(s->read_samples, a.samples);
    selfmetrics_counter_inc(selfmetrics_counter_get(s->reads_family, "200"));
    count_request(s, "/api/v1/read", MHD_HTTP_OK);
    const char *samples_hdr[] = {"Content-Encoding", WIRE_READ_SAMPLES_CONTENT_ENCODING, NULL};
    enum MHD_Result ret = type == WIRE_READ_SAMPLES
                              ? send_buf(c, MHD_HTTP_OK, WIRE_READ_SAMPLES_CONTENT_TYPE, body, len,
                                         MHD_RESPMEM_MUST_COPY, samples_hdr)
                              : send_buf(c, MHD_HTTP_OK, WIRE_READ_STREAMED_CONTENT_TYPE, body, len,
                                         MHD_RESPMEM_MUST_COPY, NULL);
    wire_read_response_destroy(resp);
    return ret;
}

/* ---- small endpoints ------------------------------------------------------ */

static enum MHD_Result serve_metrics(struct http_server *s, struct MHD_Connection *c)
{
    char *text;
    size_t len;
    if (selfmetrics_render(s->metrics, &text, &len) < 0) {
        count_request(s, "/metrics", 500);
        return send_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "rendering metrics failed", NULL);
    }
    count_request(s, "/metrics", 200);
    return send_buf(c, MHD_HTTP_OK, SELFMETRICS_CONTENT_TYPE, text, len, MHD_RESPMEM_MUST_FREE,
                    NULL);
}

static enum MHD_Result serve_ready(struct http_server *s, struct MHD_Connection *c)
{
    char why[256] = "not ready";
    if (s->hooks.ready && !s->hooks.ready(s->hooks.ctx, why, sizeof why)) {
        count_request(s, "/-/ready", 503);
        return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, why, NULL);
    }
    count_request(s, "/-/ready", 200);
    return send_text(c, MHD_HTTP_OK, "promcast is Ready.", NULL);
}

static enum MHD_Result serve_reload(struct http_server *s, struct MHD_Connection *c)
{
    char err[4096] = "";
    if (!s->hooks.reload) {
        count_request(s, "/-/reload", 500);
        return send_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "reload not available", NULL);
    }
    if (s->hooks.reload(s->hooks.ctx, err, sizeof err) < 0) {
        /* Config errors can be several file:line:col lines; keep them all. */
        char body[4200];
        int n = snprintf(body, sizeof body, "failed to reload config: %s", err);
        if (n > 0 && (size_t)n < sizeof body - 1 && body[n - 1] != '\n') {
            body[n++] = '\n';
            body[n] = '\0';
        }
        count_request(s, "/-/reload", 500);
        return send_buf(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", body,
                        strlen(body), MHD_RESPMEM_MUST_COPY, NULL);
    }
    count_request(s, "/-/reload", 200);
    return send_text(c, MHD_HTTP_OK, "config reloaded", NULL);
}

static json_t *limits_json(const struct config_limits *l)
{
    char ttl[32], timeout[32];
    json_t *o = json_object();
    const struct {
        const char *name;
        uint64_t v;
    } n[] = {
        {"max_compressed_request_bytes", l->max_compressed_request_bytes},
        {"max_request_bytes", l->max_request_bytes},
        {"max_series_per_request", l->max_series_per_request},
        {"max_labels_per_series", l->max_labels_per_series},
        {"max_label_name_length", l->max_label_name_length},
        {"max_label_value_length", l->max_label_value_length},
        {"max_series", l->max_series},
        {"max_active_series", l->max_active_series},
        {"max_connections", l->max_connections},
        {"max_inflight_requests", l->max_inflight_requests},
        {"max_read_request_bytes", l->max_read_request_bytes},
        {"max_read_queries", l->max_read_queries},
        {"max_read_response_bytes", l->max_read_response_bytes},
    };
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++)
        json_object_set_new(o, n[i].name, json_integer((json_int_t)n[i].v));
    json_object_set_new(
        o, "series_idle_ttl",
        json_string(config_format_duration(l->series_idle_ttl_ms, ttl, sizeof ttl)));
    json_object_set_new(
        o, "request_timeout",
        json_string(config_format_duration(l->request_timeout_ms, timeout, sizeof timeout)));
    return o;
}

static enum MHD_Result serve_status(struct http_server *s, struct MHD_Connection *c)
{
    json_t *root = json_object();
    json_object_set_new(root, "version", json_string(PROMCAST_VERSION));
    const struct config *cfg =
        s->hooks.config_acquire ? s->hooks.config_acquire(s->hooks.ctx) : NULL;
    if (cfg) {
        char step[32];
        json_t *jc = json_object();
        json_object_set_new(jc, "source", json_string(cfg->source ? cfg->source : ""));
        json_object_set_new(
            jc, "step",
            json_string(config_format_duration(cfg->global.step_ms ? cfg->global.step_ms : 60000,
                                               step, sizeof step)));
        json_object_set_new(jc, "rules", json_integer((json_int_t)cfg->n_rules));
        json_object_set_new(jc, "remote_write", json_integer((json_int_t)cfg->n_remote_write));
        json_object_set_new(jc, "alert_rules", json_integer((json_int_t)cfg->n_alert_rules));
        json_object_set_new(jc, "scalers", json_integer((json_int_t)cfg->n_scalers));
        json_object_set_new(root, "config", jc);
        json_object_set_new(root, "limits", limits_json(&cfg->limits));
        s->hooks.config_release(s->hooks.ctx, cfg);
    }
    json_t *counts = json_object();
    json_object_set_new(counts, "series_active",
                        json_integer((json_int_t)series_index_count(s->series)));
    json_object_set_new(counts, "series_modelled",
                        json_integer((json_int_t)series_index_modelled(s->series)));
    json_object_set_new(counts, "series_index_bytes",
                        json_integer((json_int_t)series_index_memory_bytes(s->series)));
    uint64_t samples = 0;
    for (int p = WIRE_PROTO_V1; p <= WIRE_PROTO_V2; p++)
        samples += (uint64_t)selfmetrics_counter_value(s->proto[p].samples);
    json_object_set_new(counts, "samples_received", json_integer((json_int_t)samples));
    struct pipeline_stats ps;
    pipeline_get_stats(s->pipeline, &ps);
    json_object_set_new(counts, "model_state_bytes", json_integer((json_int_t)ps.slot_bytes));
    json_object_set_new(counts, "series_warming", json_integer((json_int_t)ps.warming));
    json_object_set_new(counts, "steps_closed", json_integer((json_int_t)ps.steps));
    json_object_set_new(counts, "outputs_written", json_integer((json_int_t)ps.outputs));
    json_object_set_new(root, "counts", counts);
    char why[256];
    bool ready = !s->hooks.ready || s->hooks.ready(s->hooks.ctx, why, sizeof why);
    json_object_set_new(root, "ready", json_boolean(ready));

    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (!text) {
        count_request(s, "/api/v1/status", 500);
        return send_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
    }
    count_request(s, "/api/v1/status", 200);
    /* json_dumps uses malloc (jansson's default allocator), so MUST_FREE is right. */
    return send_buf(c, MHD_HTTP_OK, "application/json", text, strlen(text), MHD_RESPMEM_MUST_FREE,
                    NULL);
}

/* ---- libmicrohttpd callbacks ---------------------------------------------- */

static const struct route_def *find_route(const char *url)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(url, routes[i].path) == 0)
            return &routes[i];
    return NULL;
}

static bool method_allowed(const struct route_def *r, const char *method)
{
    size_t n = strlen(method);
    for (const char *p = r->methods; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, method, n) == 0)
            return true;
        if (!e)
            break;
        p = e + 1;
        while (*p == ' ')
            p++;
    }
    return false;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct request *rq = *con_cls;
    (void)version;

    if (!rq) {
        const struct route_def *r = find_route(url);
        if (!r) {
            count_request(s, "other", 404);
            return send_text(c, MHD_HTTP_NOT_FOUND, "404 page not found", NULL);
        }
        if (!method_allowed(r, method)) {
            const char *allow[] = {"Allow", r->methods, NULL};
            count_request(s, r->path, 405);
            return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", allow);
        }
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        rq->route = r->route;
        rq->proto = WIRE_PROTO_V1;
        pthread_mutex_lock(&s->limits_lock);
        rq->limits = s->limits;
        pthread_mutex_unlock(&s->limits_lock);
        *con_cls = rq;
        rq->max_body = rq->route == ROUTE_READ ? rq->limits.max_read_request_bytes
                                               : rq->limits.max_compressed_request_bytes;
        if (rq->route == ROUTE_READ) {
            const char *clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
            if (clen && strtoull(clen, NULL, 10) > rq->max_body) {
                snprintf(rq->msg, sizeof rq->msg, "request body of %s bytes exceeds limit %llu",
                         clen, (unsigned long long)rq->max_body);
                return read_reply(s, c, MHD_HTTP_CONTENT_TOO_LARGE, rq->msg);
            }
        }
        if (rq->route == ROUTE_WRITE) {
            write_begin(s, c, rq);
            /* Refuse before reading a body we already know we will not use
             * when it is big; MHD then closes the connection. Small bodies
             * are drained so the connection can be reused. */
            const char *clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
            if (rq->status && (!clen || strtoull(clen, NULL, 10) > 64 * 1024))
                return write_reply(s, c, rq, (unsigned)rq->status, rq->msg, NULL);
        }
        return MHD_YES;
    }

    if (*upload_data_size) {
        if (rq->route == ROUTE_WRITE || rq->route == ROUTE_READ) {
            if (!buffer_body(rq, upload_data, *upload_data_size))
                return MHD_NO;
        }
        /* Other routes ignore bodies (reload, etc.). */
        *upload_data_size = 0;
        return MHD_YES;
    }

    switch (rq->route) {
    case ROUTE_WRITE:
        return write_finish(s, c, rq);
    case ROUTE_READ:
        if (rq->status)
            return read_reply(s, c, (unsigned)rq->status, rq->msg);
        return read_finish(s, c, rq);
    case ROUTE_METRICS:
        return serve_metrics(s, c);
    case ROUTE_HEALTHY:
        count_request(s, "/-/healthy", 200);
        return send_text(c, MHD_HTTP_OK, "promcast is Healthy.", NULL);
    case ROUTE_READY:
        return serve_ready(s, c);
    case ROUTE_RELOAD:
        return serve_reload(s, c);
    case ROUTE_STATUS:
        return serve_status(s, c);
    case ROUTE_NOT_FOUND:
        break;
    }
    return send_text(c, MHD_HTTP_NOT_FOUND, "404 page not found", NULL);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct request *rq = *con_cls;
    (void)c;
    (void)toe;
    if (!rq)
        return;
    if (rq->inflight)
        atomic_fetch_sub(&s->inflight, 1);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

/* libmicrohttpd hands us its own printf-style format. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn_ratelimited("http server", "err", msg);
}

/* ---- setup ---------------------------------------------------------------- */

/* Parse "host:port", ":port", "[v6]:port" into a socket address. */
static int parse_listen(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen, bool *any,
                        uint16_t *port, char *err, size_t errcap)
{
    const char *colon = strrchr(addr, ':');
    if (!colon) {
        snprintf(err, errcap, "listen address %s: missing port", addr);
        return -1;
    }
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || p > 65535) {
        snprintf(err, errcap, "listen address %s: invalid port", addr);
        return -1;
    }
    *port = (uint16_t)p;
    char host[256];
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof host) {
        snprintf(err, errcap, "listen address %s: host too long", addr);
        return -1;
    }
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    *any = host[0] == '\0';
    if (*any)
        return 0;
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        snprintf(err, errcap, "listen address %s: %s", addr, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void register_metrics(struct http_server *s)
{
    struct selfmetrics *m = s->metrics;
    static const char *const proto_l[] = {"protocol"};
    static const char *const hc_l[] = {"handler", "code"};
    static const char *const pc_l[] = {"protocol", "code"};
    static const char *const reason_l[] = {"reason"};
    static const char *const limit_l[] = {"limit"};
    static const double buckets[] = SELFMETRICS_DURATION_BUCKETS;

    struct selfmetrics_family *samples = selfmetrics_register_counter(
        m, "promcast_samples_received_total",
        "Float samples decoded from remote-write requests, by protocol.", 1, proto_l);
    struct selfmetrics_family *hist = selfmetrics_register_counter(
        m, "promcast_histograms_received_total",
        "Native histogram samples decoded from remote-write requests (counted, not modelled).", 1,
        proto_l);
    struct selfmetrics_family *ex = selfmetrics_register_counter(
        m, "promcast_exemplars_received_total",
        "Exemplars decoded from remote-write requests (counted, then ignored).", 1, proto_l);
    struct selfmetrics_family *meta = selfmetrics_register_counter(
        m, "promcast_metadata_received_total",
        "Metric metadata entries decoded from remote-write requests (counted, then ignored).", 1,
        proto_l);
    struct selfmetrics_family *series = selfmetrics_register_counter(
        m, "promcast_series_received_total",
        "TimeSeries entries decoded from remote-write requests, by protocol.", 1, proto_l);
    struct selfmetrics_family *bytes = selfmetrics_register_counter(
        m, "promcast_received_bytes_total",
        "Remote-write body bytes received, compressed (as sent) and decompressed.", 2,
        (const char *const[]){"protocol", "encoding"});
    struct selfmetrics_family *dur = selfmetrics_register_histogram(
        m, "promcast_request_decode_duration_seconds",
        "Time to decompress, decode and index one remote-write request.", 1, proto_l, buckets,
        sizeof buckets / sizeof buckets[0]);
    for (int p = WIRE_PROTO_V1; p <= WIRE_PROTO_V2; p++) {
        const char *pn = proto_name((enum wire_proto)p);
        s->proto[p].samples = selfmetrics_counter_get(samples, pn);
        s->proto[p].histograms = selfmetrics_counter_get(hist, pn);
        s->proto[p].exemplars = selfmetrics_counter_get(ex, pn);
        s->proto[p].metadata = selfmetrics_counter_get(meta, pn);
        s->proto[p].series = selfmetrics_counter_get(series, pn);
        s->proto[p].bytes_compressed = selfmetrics_counter_get(bytes, pn, "snappy");
        s->proto[p].bytes_decompressed = selfmetrics_counter_get(bytes, pn, "identity");
        s->proto[p].decode_seconds = selfmetrics_histogram_get(dur, pn);
    }
    s->reads_family = selfmetrics_register_counter(m, "promcast_read_requests_total",
                                                   "Remote-read requests answered, by status code.",
                                                   1, (const char *const[]){"code"});
    s->read_series = selfmetrics_simple_counter(m, "promcast_read_series_total",
                                                "Output series returned by remote read.");
    s->read_samples =
        selfmetrics_simple_counter(m, "promcast_read_samples_total",
                                   "Samples returned by remote read (history and forecast path).");
    s->requests_family =
        selfmetrics_register_counter(m, "promcast_http_requests_total",
                                     "HTTP requests served, by handler and status code.", 2, hc_l);
    s->writes_family = selfmetrics_register_counter(
        m, "promcast_write_requests_total",
        "Remote-write requests answered, by protocol and status code.", 2, pc_l);
    s->rejected_family = selfmetrics_register_counter(
        m, "promcast_rejected_requests_total",
        "Remote-write requests refused, by reason (the body of the error reply says more).", 1,
        reason_l);
    s->out_of_order = selfmetrics_simple_counter(
        m, "promcast_samples_out_of_order_total",
        "Samples older than their series' newest sample (counted and skipped).");
    s->duplicates = selfmetrics_simple_counter(
        m, "promcast_samples_duplicate_total",
        "Samples with the same timestamp as their series' newest sample (skipped).");
    s->stale = selfmetrics_simple_counter(m, "promcast_stale_markers_received_total",
                                          "Stale markers received; each pauses its series.");
    s->series_created = selfmetrics_simple_counter(m, "promcast_series_created_total",
                                                   "Series added to the index.");
    struct selfmetrics_family *limits = selfmetrics_register_counter(
        m, "promcast_limit_hits_total",
        "Items refused because a configured limit was reached, by limit.", 1, limit_l);
    s->dropped_series_limit = selfmetrics_counter_get(limits, "max_active_series");
    s->unmodelled_limit = selfmetrics_counter_get(limits, "max_series");
    struct selfmetrics_family *dropped =
        selfmetrics_register_counter(m, "promcast_samples_dropped_total",
                                     "Samples dropped after decoding, by reason.", 1, reason_l);
    s->dropped_samples_limit = selfmetrics_counter_get(dropped, "max_active_series");
    s->dropped_invalid = selfmetrics_counter_get(dropped, "empty_label_set");
    s->ingest_nomem = selfmetrics_simple_counter(
        m, "promcast_series_insert_failures_total",
        "Write requests in which new series could not be inserted for lack of memory.");
    s->duplicate_conflicts = selfmetrics_simple_counter(
        m, "promcast_samples_duplicate_timestamp_conflicts_total",
        "Samples with their series' newest timestamp but a different value (the first wins).");
    s->modelled_samples = selfmetrics_simple_counter(
        m, "promcast_samples_modelled_total", "Accepted samples of series that a rule models.");
}

struct http_server *http_server_create(const struct http_server_opts *opts,
                                       struct series_index *series, struct pipeline *pipeline,
                                       struct selfmetrics *metrics, const struct http_hooks *hooks,
                                       char *err, size_t errcap)
{
    struct http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    s->series = series;
    s->pipeline = pipeline;
    s->metrics = metrics;
    if (hooks)
        s->hooks = *hooks;
    s->limits = opts->limits;
    pthread_mutex_init(&s->limits_lock, NULL);
    if (pthread_key_create(&s->decoder_key, decoder_free) != 0) {
        snprintf(err, errcap, "pthread_key_create failed");
        goto fail_key;
    }
    register_metrics(s);

    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    bool any = false;
    uint16_t port = 0;
    if (parse_listen(opts->listen_address, &ss, &sslen, &any, &port, err, errcap) < 0)
        goto fail;

    unsigned threads = opts->threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (any)
        flags |= MHD_USE_DUAL_STACK;
    else if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned timeout_s = (unsigned)((opts->connection_timeout_ms + 999) / 1000);
    struct MHD_OptionItem sockopt[2] = {
        {any ? MHD_OPTION_END : MHD_OPTION_SOCK_ADDR, 0, any ? NULL : &ss},
        {MHD_OPTION_END, 0, NULL},
    };
    /* The logger goes first so that even option errors reach our log. */
    s->mhd = MHD_start_daemon(flags, port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                              on_mhd_log, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned)opts->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                              timeout_s, MHD_OPTION_ARRAY, sockopt, MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(err, errcap, "cannot listen on %s: %s", opts->listen_address,
                 errno ? strerror(errno) : "libmicrohttpd failed to start");
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : port;
    return s;
fail:
    pthread_key_delete(s->decoder_key);
fail_key:
    pthread_mutex_destroy(&s->limits_lock);
    free(s);
    return NULL;
}

void http_server_set_limits(struct http_server *s, const struct http_limits *limits)
{
    pthread_mutex_lock(&s->limits_lock);
    s->limits = *limits;
    pthread_mutex_unlock(&s->limits_lock);
}

uint16_t http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_destroy(struct http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->mhd);
    /* Pool threads have exited and their decoders were freed by the key
     * destructor. */
    pthread_key_delete(s->decoder_key);
    pthread_mutex_destroy(&s->limits_lock);
    free(s);
}
