/*
 * writer.c — remote-write client queues: per-target sharded FIFOs of copied
 * samples, sender threads that batch, encode (wire_write.h), send
 * (outbound.h) and retry, and the per-target self-metrics.
 *
 * Queue layout. Each queued sample is one malloc'd record holding its merged
 * label set (external labels included) as a `struct label` array pointing at
 * bytes inside the same record, so a batch is encoded straight from the
 * records without copying. Records form a singly linked FIFO per shard. A
 * sender takes the first k records as its batch but leaves them in the
 * queue until the batch is done (sent or dropped): producers only append at
 * the tail, so the batch's records are stable without holding the lock, and
 * in-flight samples keep counting against the capacity. Capacity is
 * reserved with two atomic counters (samples, bytes) shared by all shards
 * before anything is allocated, so the bound holds exactly.
 *
 * Deliberately not done here: relabelling, metadata, exemplars, histograms,
 * resharding by throughput (the shard count is fixed by config), splitting a
 * batch that the receiver refuses as too large (batches are bounded instead).
 * Wraps no library directly: HTTP goes through outbound.c, encoding through
 * wire_write.c.
 */
#include "writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "outbound.h"
#include "selfmetrics.h"
#include "wire_write.h"

/* Encoder cap: comfortably above WRITER_MAX_REQUEST_BYTES of labels plus the
 * per-sample protobuf overhead of a full batch. */
#define ENCODER_MAX_BYTES (32u << 20)

/* One queued sample. */
struct wrec {
    struct wrec *next;
    int64_t t;
    double v;
    int64_t enq_ms;    /* monotonic, for batch_send_deadline */
    int64_t origin_ms; /* wall clock the sample's data arrived at promcast; 0 = unknown */
    uint32_t nlabels;
    uint32_t bytes;        /* accounted size (allocation + malloc header) */
    struct label labels[]; /* then the name and value bytes */
};

struct shard {
    struct writer *w;
    unsigned idx;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* under mu */
    struct wrec *head, *tail;
    size_t count;
    /* sender thread only */
    struct outbound *http;
    struct wire_encoder *enc;
    struct wire_series *series; /* max_samples_per_send entries */
    struct sample *samples;
    int64_t *origins; /* origin_ms of each entry of series */
};

struct writer {
    /* copied configuration */
    int protocol;
    uint64_t capacity;
    uint64_t bytes_cap;
    size_t max_per_send;
    int64_t deadline_ms;
    int64_t idle_ms; /* batch_idle_flush; 0 = off */
    int64_t min_backoff_ms;
    int64_t max_backoff_ms;
    bool retry_429;
    char *url;         /* redacted */
    struct label *ext; /* external labels, sorted, non-empty values */
    size_t next;
    char *ext_bytes;

    size_t nshards;
    struct shard *shards;

    _Atomic uint64_t pending;
    _Atomic uint64_t pending_bytes;
    atomic_bool closing;
    _Atomic int64_t flush_deadline_ms;
    bool shut_down;
    int abandoned;

    _Atomic uint64_t accepted, sent, retried, failed, requests;
    _Atomic uint64_t dropped[WRITER_DROP_COUNT];
    _Atomic int64_t last_send_ms;

    /* self-metrics (NULL handles are no-ops) */
    struct selfmetrics_gauge *m_pending;
    struct selfmetrics_counter *m_sent, *m_retried, *m_failed;
    struct selfmetrics_counter *m_dropped[WRITER_DROP_COUNT];
    struct selfmetrics_gauge *m_last_send;
    struct selfmetrics_histogram *m_duration;
    struct selfmetrics_histogram *m_age;
    struct selfmetrics_histogram *m_latency;
    struct selfmetrics_family *f_requests;
};

static const char *const drop_reasons[WRITER_DROP_COUNT] = {
    [WRITER_DROP_QUEUE_FULL] = "queue_full",   [WRITER_DROP_FUTURE_TIMESTAMP] = "future_timestamp",
    [WRITER_DROP_INVALID] = "invalid",         [WRITER_DROP_HTTP_4XX] = "http_4xx",
    [WRITER_DROP_HTTP_429] = "http_429",       [WRITER_DROP_HTTP_OTHER] = "http_other",
    [WRITER_DROP_NOT_WRITTEN] = "not_written", [WRITER_DROP_SHUTDOWN] = "shutdown",
};

const char *writer_drop_reason(enum writer_drop r)
{
    if ((unsigned)r < WRITER_DROP_COUNT)
        return drop_reasons[r];
    return "unknown";
}

static void set_err(char *err, size_t errcap, const char *msg, const char *detail)
{
    if (err != NULL && errcap > 0)
        snprintf(err, errcap, "%s%s%s", msg, detail ? ": " : "", detail ? detail : "");
}

static void count_drop(struct writer *w, enum writer_drop r, uint64_t n)
{
    if (n == 0)
        return;
    atomic_fetch_add(&w->dropped[r], n);
    selfmetrics_counter_add(w->m_dropped[r], n);
}

/* Compare label names bytewise, shorter first on a common prefix. */
static int name_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* ---- metrics ------------------------------------------------------------------------ */

static void register_metrics(struct writer *w, struct selfmetrics *r)
{
    static const char *const l_url[] = {"url"};
    static const char *const l_reason[] = {"url", "reason"};
    static const char *const l_code[] = {"url", "code"};
    static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                    1,     2.5,  5,     10,   30,  60};
    if (r == NULL)
        return;
    struct selfmetrics_family *f;
    f = selfmetrics_register_gauge(r, "promcast_remote_write_samples_pending",
                                   "Samples queued or in flight to a remote-write target.", 1,
                                   l_url);
    w->m_pending = selfmetrics_gauge_get(f, w->url);
    f = selfmetrics_register_counter(r, "promcast_remote_write_samples_sent_total",
                                     "Samples a remote-write target accepted (2xx).", 1, l_url);
    w->m_sent = selfmetrics_counter_get(f, w->url);
    f = selfmetrics_register_counter(
        r, "promcast_remote_write_samples_retried_total",
        "Samples re-sent after a 5xx, 429 or network error (counted once per retry).", 1, l_url);
    w->m_retried = selfmetrics_counter_get(f, w->url);
    f = selfmetrics_register_counter(
        r, "promcast_remote_write_samples_failed_total",
        "Samples a remote-write target refused for good (4xx, 429 without retry, v2 not "
        "written).",
        1, l_url);
    w->m_failed = selfmetrics_counter_get(f, w->url);
    f = selfmetrics_register_counter(r, "promcast_remote_write_samples_dropped_total",
                                     "Samples that will never be delivered, by reason.", 2,
                                     l_reason);
    for (int i = 0; i < WRITER_DROP_COUNT; i++)
        w->m_dropped[i] = selfmetrics_counter_get(f, w->url, drop_reasons[i]);
    f = selfmetrics_register_gauge(
        r, "promcast_remote_write_last_send_timestamp_seconds",
        "Unix time of the last successful send to a remote-write target (0: never).", 1, l_url);
    w->m_last_send = selfmetrics_gauge_get(f, w->url);
    f = selfmetrics_register_histogram(r, "promcast_remote_write_send_duration_seconds",
                                       "Duration of each remote-write request attempt.", 1, l_url,
                                       bounds, sizeof bounds / sizeof bounds[0]);
    w->m_duration = selfmetrics_histogram_get(f, w->url);
    static const double age_bounds[] = {1,  2,  5,   10,  15,  20,  30,   45,
                                        60, 90, 120, 180, 300, 600, 1800, 3600};
    f = selfmetrics_register_histogram(
        r, "promcast_remote_write_sample_age_seconds",
        "Age of each sample when the target accepted it: acceptance time minus the sample's "
        "timestamp (for outputs, the start of the step they describe).",
        1, l_url, age_bounds, sizeof age_bounds / sizeof age_bounds[0]);
    w->m_age = selfmetrics_histogram_get(f, w->url);
    static const double lat_bounds[] = {0.5,  1,    1.5, 2,  2.25, 2.5, 2.75, 3,   3.25, 3.5,
                                        3.75, 4,    5,   6,  8,    10,  15,   20,  30,   45,
                                        60,   62.5, 65,  70, 75,   90,  120,  180, 300,  3600};
    f = selfmetrics_register_histogram(
        r, "promcast_output_latency_seconds",
        "From the arrival at promcast of the first sample of a step to the target accepting "
        "that step's outputs.",
        1, l_url, lat_bounds, sizeof lat_bounds / sizeof lat_bounds[0]);
    w->m_latency = selfmetrics_histogram_get(f, w->url);
    w->f_requests = selfmetrics_register_counter(
        r, "promcast_remote_write_requests_total",
        "Remote-write request attempts by HTTP status (\"error\": no response).", 2, l_code);
    if (!w->m_pending || !w->m_sent || !w->m_dropped[0] || !w->f_requests)
        log_warn("remote-write self-metrics unavailable (registration failed)", "url", w->url);
}

static void count_request(struct writer *w, long status)
{
    atomic_fetch_add(&w->requests, 1);
    if (w->f_requests == NULL)
        return;
    char code[16] = "error";
    if (status > 0 && status < 1000)
        snprintf(code, sizeof code, "%ld", status);
    selfmetrics_counter_inc(selfmetrics_counter_get(w->f_requests, w->url, code));
}

/* ---- enqueue ------------------------------------------------------------------------ */

/* The next label of the series' labels merged with the external labels, in
 * name order: a name the series has wins over the external label, and
 * labels with an empty value are absent. *i and *j walk the two arrays;
 * NULL when both are done. */
static const struct label *merge_next(const struct writer *w, const struct label *labels, size_t n,
                                      size_t *i, size_t *j)
{
    while (*i < n && labels[*i].value_len == 0)
        (*i)++;
    if (*i == n && *j == w->next)
        return NULL;
    int c = *i == n         ? 1
            : *j == w->next ? -1
                            : name_cmp(labels[*i].name, labels[*i].name_len, w->ext[*j].name,
                                       w->ext[*j].name_len);
    const struct label *l = c <= 0 ? &labels[*i] : &w->ext[*j];
    if (c <= 0)
        (*i)++;
    if (c >= 0)
        (*j)++;
    return l;
}

int writer_enqueue(struct writer *w, const struct label *labels, size_t n, int64_t t_ms, double v)
{
    return writer_enqueue_origin(w, labels, n, t_ms, v, 0);
}

int writer_enqueue_origin(struct writer *w, const struct label *labels, size_t n, int64_t t_ms,
                          double v, int64_t origin_ms)
{
    if (atomic_load_explicit(&w->closing, memory_order_acquire)) {
        count_drop(w, WRITER_DROP_SHUTDOWN, 1);
        return -1;
    }
    if (t_ms > clock_now_ms()) {
        count_drop(w, WRITER_DROP_FUTURE_TIMESTAMP, 1);
        log_warn_ratelimited("remote write: refusing a sample with a future timestamp", "url",
                             w->url);
        return -1;
    }
    if (n == 0 || labels == NULL || n > UINT32_MAX / 2 || !labels_sorted(labels, n))
        goto invalid;

    /* Size of the merged set: series labels with a value, plus every
     * external label whose name the series does not have. */
    size_t m = 0, bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (labels[i].name_len == 0)
            goto invalid;
    size_t i = 0, j = 0;
    for (const struct label *l; (l = merge_next(w, labels, n, &i, &j));) {
        bytes += (size_t)l->name_len + l->value_len;
        m++;
        if (bytes > WRITER_MAX_SAMPLE_BYTES)
            goto invalid;
    }
    if (m == 0)
        goto invalid;
    size_t size = sizeof(struct wrec) + m * sizeof(struct label) + bytes;
    if (size > WRITER_MAX_SAMPLE_BYTES)
        goto invalid;
    uint64_t acct = (size + 8 + 15) & ~(uint64_t)15; /* glibc chunk: size field, 16-aligned */

    /* Reserve capacity before allocating, so the bounds hold exactly. */
    if (atomic_fetch_add(&w->pending, 1) >= w->capacity) {
        atomic_fetch_sub(&w->pending, 1);
        goto full;
    }
    if (atomic_fetch_add(&w->pending_bytes, acct) + acct > w->bytes_cap) {
        atomic_fetch_sub(&w->pending_bytes, acct);
        atomic_fetch_sub(&w->pending, 1);
        goto full;
    }
    struct wrec *r = malloc(size);
    if (r == NULL) {
        atomic_fetch_sub(&w->pending_bytes, acct);
        atomic_fetch_sub(&w->pending, 1);
        goto full;
    }
    r->next = NULL;
    r->t = t_ms;
    r->v = v; /* plain copy: stale-marker bits survive */
    r->origin_ms = origin_ms;
    r->nlabels = (uint32_t)m;
    r->bytes = (uint32_t)acct;
    char *p = (char *)&r->labels[m];
    i = j = 0;
    for (size_t k = 0; k < m; k++) {
        const struct label *l = merge_next(w, labels, n, &i, &j);
        struct label *d = &r->labels[k];
        memcpy(p, l->name, l->name_len);
        d->name = p;
        d->name_len = l->name_len;
        p += l->name_len;
        memcpy(p, l->value, l->value_len);
        d->value = p;
        d->value_len = l->value_len;
        p += l->value_len;
    }

    struct shard *s = &w->shards[labels_hash(labels, n) % w->nshards];
    r->enq_ms = clock_mono_ms();
    pthread_mutex_lock(&s->mu);
    /* Checked again under the lock: once shutdown has taken every shard
     * lock after setting `closing`, nothing more is appended. */
    if (atomic_load_explicit(&w->closing, memory_order_acquire)) {
        pthread_mutex_unlock(&s->mu);
        free(r);
        atomic_fetch_sub(&w->pending_bytes, acct);
        atomic_fetch_sub(&w->pending, 1);
        count_drop(w, WRITER_DROP_SHUTDOWN, 1);
        return -1;
    }
    if (s->tail)
        s->tail->next = r;
    else
        s->head = r;
    s->tail = r;
    s->count++;
    if (s->count == 1 || s->count == w->max_per_send)
        pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&w->accepted, 1);
    selfmetrics_gauge_inc(w->m_pending);
    return 0;

invalid:
    count_drop(w, WRITER_DROP_INVALID, 1);
    log_warn_ratelimited("remote write: refusing a sample with an invalid label set", "url",
                         w->url);
    return -1;
full:
    count_drop(w, WRITER_DROP_QUEUE_FULL, 1);
    log_warn_ratelimited("remote write: queue full, dropping the newest samples", "url", w->url);
    return -1;
}

/* ---- sender ------------------------------------------------------------------------- */

static void mono_timespec(int64_t ms, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ms / 1000);
    ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

/* Wait on the shard's condition until at most until_ms (monotonic). */
static void shard_wait_until(struct shard *s, int64_t until_ms)
{
    struct timespec ts;
    mono_timespec(until_ms, &ts);
    pthread_cond_timedwait(&s->cond, &s->mu, &ts);
}

static bool closing(const struct writer *w)
{
    return atomic_load_explicit(&w->closing, memory_order_acquire);
}

static bool past_flush_deadline(void *arg)
{
    struct writer *w = arg;
    return closing(w) && clock_mono_ms() >= atomic_load(&w->flush_deadline_ms);
}

/* Sleep until retry_at unless shutdown's deadline comes first. Returns false
 * when the batch must be abandoned (the retry would fall after the
 * deadline). */
static bool backoff_wait(struct shard *s, int64_t retry_at)
{
    struct writer *w = s->w;
    bool ok = true;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        int64_t now = clock_mono_ms();
        if (closing(w) && retry_at > atomic_load(&w->flush_deadline_ms)) {
            ok = false;
            break;
        }
        if (now >= retry_at)
            break;
        shard_wait_until(s, retry_at);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* First line of a response body, printable ASCII only, for a log line. */
static void body_line(const char *body, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        unsigned char ch = (unsigned char)body[i];
        if (ch == '\n' || ch == '\r')
            break;
        out[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    out[n] = '\0';
}

enum batch_outcome { BATCH_DONE, BATCH_ABANDON };

static void refuse_batch(struct writer *w, enum writer_drop reason, size_t k, long status,
                         const struct outbound_response *resp)
{
    char line[256], code[24], nbuf[24];
    body_line(resp->body, resp->body_len, line, sizeof line);
    snprintf(code, sizeof code, "%ld", status);
    atomic_fetch_add(&w->failed, k);
    selfmetrics_counter_add(w->m_failed, k);
    count_drop(w, reason, k);
    log_warn_ratelimited("remote write: batch refused, dropped", "url", w->url, "status", code,
                         "samples", log_fmt_u64(nbuf, sizeof nbuf, k), "reason",
                         drop_reasons[reason], "response", line);
}

/* Send one batch of k samples (already in s->series), retrying as the
 * answers require. */
static enum batch_outcome send_batch(struct shard *s, size_t k)
{
    struct writer *w = s->w;
    const void *body;
    size_t body_len;
    enum wire_proto proto = w->protocol == 2 ? WIRE_PROTO_V2 : WIRE_PROTO_V1;
    if (wire_encode_write(s->enc, proto, s->series, k, &body, &body_len) != 0) {
        /* Cannot happen for records built by writer_enqueue(); never retry. */
        log_error("remote write: cannot encode a batch, dropped", "url", w->url, "err",
                  wire_encoder_error(s->enc));
        count_drop(w, WRITER_DROP_INVALID, k);
        return BATCH_DONE;
    }
    struct outbound_header hdrs[5] = {
        {"Content-Encoding", "snappy"},
        {"Content-Type", proto == WIRE_PROTO_V2
                             ? "application/x-protobuf;proto=io.prometheus.write.v2.Request"
                             : "application/x-protobuf"},
        {"X-Prometheus-Remote-Write-Version", proto == WIRE_PROTO_V2 ? "2.0.0" : "0.1.0"},
    };
    char attempt_buf[24];
    int64_t backoff = w->min_backoff_ms;
    for (uint64_t attempt = 0;; attempt++) {
        size_t nh = 3;
        if (attempt > 0) {
            hdrs[nh++] = (struct outbound_header){
                "Retry-Attempt", log_fmt_u64(attempt_buf, sizeof attempt_buf, attempt)};
        }
        int64_t timeout = 0; /* the configured one */
        if (closing(w)) {
            int64_t left = atomic_load(&w->flush_deadline_ms) - clock_mono_ms();
            if (left <= 0)
                return BATCH_ABANDON;
            timeout = left;
        }
        struct outbound_request req = {
            .method = "POST",
            .headers = hdrs,
            .nheaders = nh,
            .body = body,
            .body_len = body_len,
            .max_response_bytes = WRITER_MAX_RESPONSE_BYTES,
            .truncate_body = true,
            .timeout_ms = timeout,
            .cancel = past_flush_deadline,
            .cancel_arg = w,
        };
        struct outbound_response resp;
        int64_t t0 = clock_mono_ns();
        int rc = outbound_do(s->http, &req, &resp);
        selfmetrics_histogram_observe(w->m_duration, (double)(clock_mono_ns() - t0) / 1e9);
        count_request(w, rc == 0 ? resp.status : 0);

        long st = rc == 0 ? resp.status : 0;
        if (rc != 0) {
            if (resp.err == OUTBOUND_ERR_CANCELLED)
                return BATCH_ABANDON;
            log_warn_ratelimited("remote write: send failed, will retry", "url", w->url, "err",
                                 outbound_err_reason(resp.err), "detail", resp.error);
        } else if (st >= 200 && st < 300) {
            if (proto == WIRE_PROTO_V2 && resp.samples_written <= 0) {
                log_error("remote write: the receiver answered 2xx but wrote no samples; it "
                          "does not support remote-write 2.0 (set protocol: v1)",
                          "url", w->url);
                refuse_batch(w, WRITER_DROP_NOT_WRITTEN, k, st, &resp);
                return BATCH_DONE;
            }
            atomic_fetch_add(&w->sent, k);
            selfmetrics_counter_add(w->m_sent, k);
            int64_t now = clock_now_ms();
            atomic_store(&w->last_send_ms, now);
            selfmetrics_gauge_set(w->m_last_send, (double)now / 1000.0);
            for (size_t i = 0; i < k; i++) {
                selfmetrics_histogram_observe(w->m_age,
                                              (double)(now - s->series[i].samples[0].t) / 1000.0);
                if (s->origins[i] > 0)
                    selfmetrics_histogram_observe(w->m_latency,
                                                  (double)(now - s->origins[i]) / 1000.0);
            }
            return BATCH_DONE;
        } else if (st >= 500 || (st == 429 && w->retry_429)) {
            char code[24], line[256];
            snprintf(code, sizeof code, "%ld", st);
            body_line(resp.body, resp.body_len, line, sizeof line);
            log_warn_ratelimited("remote write: receiver busy or failing, will retry", "url",
                                 w->url, "status", code, "response", line);
        } else if (st == 429) {
            refuse_batch(w, WRITER_DROP_HTTP_429, k, st, &resp);
            return BATCH_DONE;
        } else if (st >= 400) {
            refuse_batch(w, WRITER_DROP_HTTP_4XX, k, st, &resp);
            return BATCH_DONE;
        } else {
            refuse_batch(w, WRITER_DROP_HTTP_OTHER, k, st, &resp);
            return BATCH_DONE;
        }
        /* retryable: same batch again after a delay */
        atomic_fetch_add(&w->retried, k);
        selfmetrics_counter_add(w->m_retried, k);
        int64_t delay = backoff;
        if (rc == 0 && resp.retry_after_ms >= 0)
            delay = resp.retry_after_ms < WRITER_MAX_RETRY_AFTER_MS ? resp.retry_after_ms
                                                                    : WRITER_MAX_RETRY_AFTER_MS;
        backoff = backoff > w->max_backoff_ms / 2 ? w->max_backoff_ms : backoff * 2;
        if (!backoff_wait(s, clock_mono_ms() + delay))
            return BATCH_ABANDON;
    }
}

/* Point s->series at up to max_per_send of the avail records from first.
 * Only links inside the snapshot are followed: the last record's `next` may
 * be written by a producer meanwhile. Returns k, sets *last. */
static size_t collect(struct shard *s, struct wrec *first, size_t avail, struct wrec **last)
{
    struct writer *w = s->w;
    size_t k = 0, bytes = 0;
    struct wrec *r = first;
    while (k < avail && k < w->max_per_send) {
        if (k > 0 && bytes + r->bytes > WRITER_MAX_REQUEST_BYTES)
            break;
        s->samples[k].t = r->t;
        s->origins[k] = r->origin_ms;
        memcpy(&s->samples[k].v, &r->v, sizeof r->v);
        s->series[k] = (struct wire_series){
            .labels = r->labels,
            .nlabels = r->nlabels,
            .nsamples = 1,
            .samples = &s->samples[k],
        };
        bytes += r->bytes;
        *last = r;
        k++;
        if (k < avail)
            r = r->next;
    }
    return k;
}

/* Free k records starting at first (already unlinked from the queue). */
static void release(struct writer *w, struct wrec *first, size_t k)
{
    uint64_t bytes = 0;
    struct wrec *r = first;
    for (size_t i = 0; i < k; i++) {
        struct wrec *next = r->next;
        bytes += r->bytes;
        free(r);
        r = next;
    }
    atomic_fetch_sub(&w->pending_bytes, bytes);
    atomic_fetch_sub(&w->pending, k);
    selfmetrics_gauge_add(w->m_pending, -(double)k);
}

static void *sender_main(void *arg)
{
    struct shard *s = arg;
    struct writer *w = s->w;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        bool cl = closing(w);
        int64_t now = clock_mono_ms();
        if (cl && (s->count == 0 || now >= atomic_load(&w->flush_deadline_ms)))
            break;
        if (s->count == 0) {
            pthread_cond_wait(&s->cond, &s->mu);
            continue;
        }
        /* Send when the batch is full, when its oldest sample has waited
         * batch_send_deadline, or when nothing new came for batch_idle_flush
         * (outputs come in bursts at step boundaries: waiting out the
         * deadline after a burst adds latency and fills nothing). */
        int64_t due = s->head->enq_ms + w->deadline_ms;
        if (w->idle_ms > 0 && s->tail->enq_ms + w->idle_ms < due)
            due = s->tail->enq_ms + w->idle_ms;
        if (!cl && s->count < w->max_per_send && now < due) {
            shard_wait_until(s, due);
            continue;
        }
        struct wrec *first = s->head, *last = NULL;
        size_t avail = s->count;
        pthread_mutex_unlock(&s->mu);

        size_t k = collect(s, first, avail, &last);
        enum batch_outcome o = send_batch(s, k);

        pthread_mutex_lock(&s->mu);
        if (o == BATCH_ABANDON)
            break; /* left queued; writer_shutdown() counts it */
        s->head = last->next;
        if (s->head == NULL)
            s->tail = NULL;
        s->count -= k;
        pthread_mutex_unlock(&s->mu);
        release(w, first, k);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static int copy_external(struct writer *w, const struct config_labels *ext)
{
    if (ext == NULL || ext->n == 0)
        return 0;
    size_t bytes = 0, n = 0;
    for (size_t i = 0; i < ext->n; i++) {
        if (ext->names[i] == NULL || ext->values[i] == NULL || ext->values[i][0] == '\0' ||
            ext->names[i][0] == '\0')
            continue;
        bytes += strlen(ext->names[i]) + strlen(ext->values[i]);
        n++;
    }
    if (n == 0)
        return 0;
    w->ext = calloc(n, sizeof *w->ext);
    w->ext_bytes = malloc(bytes ? bytes : 1);
    if (w->ext == NULL || w->ext_bytes == NULL)
        return -1;
    char *p = w->ext_bytes;
    for (size_t i = 0; i < ext->n; i++) {
        if (ext->names[i] == NULL || ext->values[i] == NULL || ext->values[i][0] == '\0' ||
            ext->names[i][0] == '\0')
            continue;
        size_t nl = strlen(ext->names[i]), vl = strlen(ext->values[i]);
        struct label *l = &w->ext[w->next++];
        memcpy(p, ext->names[i], nl);
        l->name = p;
        l->name_len = (uint32_t)nl;
        p += nl;
        memcpy(p, ext->values[i], vl);
        l->value = p;
        l->value_len = (uint32_t)vl;
        p += vl;
    }
    labels_sort(w->ext, w->next);
    /* a duplicate name would break the merge's sortedness */
    if (!labels_sorted(w->ext, w->next))
        return -1;
    return 0;
}

/* Frees a shard's queue and resources; only for shards whose mutex and
 * condition were initialised (s->w set). */
static void shard_cleanup(struct shard *s)
{
    if (s->w == NULL)
        return;
    struct wrec *r = s->head;
    while (r) {
        struct wrec *next = r->next;
        free(r);
        r = next;
    }
    s->head = s->tail = NULL;
    s->count = 0;
    outbound_destroy(s->http);
    wire_encoder_destroy(s->enc);
    free(s->series);
    free(s->samples);
    free(s->origins);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
}

static int shard_init(struct writer *w, struct shard *s, unsigned idx,
                      const struct config_remote_write *cfg, const pthread_condattr_t *ca,
                      char *err, size_t errcap)
{
    s->idx = idx;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, ca);
    s->w = w; /* from here on shard_cleanup() applies */
    char herr[256];
    s->http = outbound_create(&cfg->http, herr, sizeof herr);
    if (s->http == NULL) {
        set_err(err, errcap, "remote_write", herr);
        return -1;
    }
    s->enc = wire_encoder_create(ENCODER_MAX_BYTES);
    s->series = calloc(w->max_per_send, sizeof *s->series);
    s->samples = calloc(w->max_per_send, sizeof *s->samples);
    s->origins = calloc(w->max_per_send, sizeof *s->origins);
    if (s->enc == NULL || s->series == NULL || s->samples == NULL || s->origins == NULL) {
        set_err(err, errcap, "out of memory", NULL);
        return -1;
    }
    return 0;
}

struct writer *writer_create(const struct config_remote_write *cfg,
                             const struct config_labels *external_labels,
                             struct selfmetrics *metrics, char *err, size_t errcap)
{
    set_err(err, errcap, "", NULL);
    if (cfg == NULL || cfg->http.url == NULL) {
        set_err(err, errcap, "remote_write: url missing", NULL);
        return NULL;
    }
    struct writer *w = calloc(1, sizeof *w);
    if (w == NULL) {
        set_err(err, errcap, "out of memory", NULL);
        return NULL;
    }
    w->protocol = cfg->protocol == 2 ? 2 : 1;
    w->capacity = cfg->queue_capacity ? cfg->queue_capacity : 100000;
    w->bytes_cap = w->capacity * WRITER_BYTES_PER_SAMPLE;
    w->max_per_send = cfg->max_samples_per_send ? (size_t)cfg->max_samples_per_send : 2000;
    w->deadline_ms = cfg->batch_send_deadline_ms > 0 ? cfg->batch_send_deadline_ms : 5000;
    w->idle_ms = cfg->batch_idle_flush_ms;
    w->min_backoff_ms = cfg->min_backoff_ms > 0 ? cfg->min_backoff_ms : 30;
    w->max_backoff_ms = cfg->max_backoff_ms > 0 ? cfg->max_backoff_ms : 5000;
    if (w->max_backoff_ms < w->min_backoff_ms)
        w->max_backoff_ms = w->min_backoff_ms;
    w->retry_429 = cfg->retry_on_http_429;
    w->nshards = cfg->shards ? (size_t)cfg->shards : 1;
    size_t ulen = strlen(cfg->http.url) + 1;
    w->url = malloc(ulen);
    w->shards = calloc(w->nshards, sizeof *w->shards);
    if (w->url == NULL || w->shards == NULL) {
        set_err(err, errcap, "out of memory", NULL);
        goto fail;
    }
    outbound_redact_url(cfg->http.url, w->url, ulen);
    if (copy_external(w, external_labels) != 0) {
        set_err(err, errcap, "external_labels: duplicate names or out of memory", NULL);
        goto fail;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = 0;
    for (size_t i = 0; i < w->nshards && rc == 0; i++)
        rc = shard_init(w, &w->shards[i], (unsigned)i, cfg, &ca, err, errcap);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        goto fail;
    register_metrics(w, metrics);
    for (size_t i = 0; i < w->nshards; i++) {
        struct shard *s = &w->shards[i];
        rc = pthread_create(&s->thread, NULL, sender_main, s);
        if (rc != 0) {
            set_err(err, errcap, "cannot start sender thread", strerror(rc));
            goto fail;
        }
        s->started = true;
    }
    return w;
fail:
    writer_destroy(w);
    return NULL;
}

int writer_shutdown(struct writer *w, int64_t deadline_ms)
{
    if (w->shut_down)
        return w->abandoned;
    atomic_store(&w->flush_deadline_ms, deadline_ms);
    atomic_store_explicit(&w->closing, true, memory_order_release);
    for (size_t i = 0; i < w->nshards; i++) {
        struct shard *s = &w->shards[i];
        if (s->w == NULL)
            continue;
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mu);
    }
    uint64_t abandoned = 0;
    for (size_t i = 0; i < w->nshards; i++) {
        struct shard *s = &w->shards[i];
        if (s->w == NULL)
            continue;
        if (s->started) {
            pthread_join(s->thread, NULL);
            s->started = false;
        }
        pthread_mutex_lock(&s->mu);
        struct wrec *first = s->head;
        size_t k = s->count;
        s->head = s->tail = NULL;
        s->count = 0;
        pthread_mutex_unlock(&s->mu);
        release(w, first, k);
        abandoned += k;
    }
    count_drop(w, WRITER_DROP_SHUTDOWN, abandoned);
    if (abandoned > 0) {
        char nbuf[24];
        log_warn("remote write: shutdown deadline reached, samples abandoned", "url", w->url,
                 "samples", log_fmt_u64(nbuf, sizeof nbuf, abandoned));
    }
    w->shut_down = true;
    w->abandoned = abandoned > INT32_MAX ? INT32_MAX : (int)abandoned;
    return w->abandoned;
}

/* Also frees writers that writer_create() left half built. */
void writer_destroy(struct writer *w)
{
    if (w == NULL)
        return;
    if (!w->shut_down && w->shards != NULL)
        writer_shutdown(w, clock_mono_ms());
    for (size_t i = 0; w->shards != NULL && i < w->nshards; i++)
        shard_cleanup(&w->shards[i]);
    free(w->shards);
    free(w->url);
    free(w->ext);
    free(w->ext_bytes);
    free(w);
}

void writer_stats(const struct writer *w, struct writer_stats *out)
{
    struct writer *m = (struct writer *)w; /* atomics are read only */
    memset(out, 0, sizeof *out);
    out->pending = atomic_load(&m->pending);
    out->pending_bytes = atomic_load(&m->pending_bytes);
    out->accepted = atomic_load(&m->accepted);
    out->sent = atomic_load(&m->sent);
    out->retried = atomic_load(&m->retried);
    out->failed = atomic_load(&m->failed);
    for (int i = 0; i < WRITER_DROP_COUNT; i++) {
        out->dropped[i] = atomic_load(&m->dropped[i]);
        out->dropped_total += out->dropped[i];
    }
    out->requests = atomic_load(&m->requests);
    out->last_send_ms = atomic_load(&m->last_send_ms);
}

uint64_t writer_pending(const struct writer *w)
{
    return atomic_load(&((struct writer *)w)->pending);
}

const char *writer_url(const struct writer *w)
{
    return w->url;
}
