/*
 * warmstart.c — the remote-read client that backfills new series' models.
 *
 * One worker thread drains a bounded queue of label sets in batches of
 * remote_read.max_series_per_request: one query per series with an equality
 * matcher per label, [now - lookback, now], asking for streamed XOR chunks
 * first and samples second (Prometheus 2.42's server streams). Each returned
 * series whose labels equal the queued set exactly is applied to its slot
 * while the response is decoded (no second copy of the history). Failures
 * are retried with backoff, then the series go live without history.
 *
 * Not here: HTTP (outbound.c), the remote-read wire format (wire_read.c),
 * what warm start does to a model (pipeline.c, model.c).
 */
#include "warmstart.h"

#include "clock.h"
#include "config.h"
#include "log.h"
#include "outbound.h"
#include "pipeline.h"
#include "selfmetrics.h"
#include "series.h"
#include "wire_read.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cap on one remote-read response body held in memory. */
#define WARMSTART_MAX_RESPONSE_BYTES (512u << 20)

struct item {
    struct item *next;
    size_t n;
    bool done;
    struct label labels[]; /* then the label bytes */
};

struct warmstart {
    struct config_http_client http; /* deep copy for outbound_create */
    int64_t lookback_ms;
    size_t batch;
    int64_t interval_ms; /* between requests */
    struct series_index *idx;
    struct pipeline *pipeline;
    struct outbound *client;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct item *head, *tail;
    size_t queued;   /* in the list */
    size_t inflight; /* taken by the worker */
    bool stop;
    bool started;
    pthread_t thread;

    struct selfmetrics_family *series_result; /* {result} */
    struct selfmetrics_family *requests;      /* {code} */
    struct selfmetrics_counter *samples;
    struct selfmetrics_counter *queue_full;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void http_copy_free(struct config_http_client *h)
{
    free(h->url);
    free(h->basic_auth_username);
    free(h->basic_auth_password_file);
    free(h->bearer_token_file);
    free(h->tls.ca_file);
    free(h->tls.cert_file);
    free(h->tls.key_file);
    free(h->tls.server_name);
}

/* The outbound client copies what it needs at creation, so a shallow copy
 * of the strings would do — except that the config may be freed on reload
 * while we live on; keep our own. Extra headers are not copied: remote read
 * needs none of its own and outbound copies them at creation. */
static int http_copy(struct config_http_client *dst, const struct config_http_client *src)
{
    *dst = *src;
    dst->url = dup_or_null(src->url);
    dst->basic_auth_username = dup_or_null(src->basic_auth_username);
    dst->basic_auth_password_file = dup_or_null(src->basic_auth_password_file);
    dst->bearer_token_file = dup_or_null(src->bearer_token_file);
    dst->tls.ca_file = dup_or_null(src->tls.ca_file);
    dst->tls.cert_file = dup_or_null(src->tls.cert_file);
    dst->tls.key_file = dup_or_null(src->tls.key_file);
    dst->tls.server_name = dup_or_null(src->tls.server_name);
    dst->headers = (struct config_labels){0};
    return dst->url ? 0 : -1;
}

static void count_result(struct warmstart *w, const char *result, uint64_t n)
{
    selfmetrics_counter_add(selfmetrics_counter_get(w->series_result, result), n);
}

struct warmstart *warmstart_create(const struct config_remote_read *cfg, struct series_index *idx,
                                   struct pipeline *pipeline, struct selfmetrics *metrics,
                                   char *err, size_t errcap)
{
    struct warmstart *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    if (http_copy(&w->http, &cfg->http) < 0) {
        snprintf(err, errcap, "out of memory");
        http_copy_free(&w->http);
        free(w);
        return NULL;
    }
    w->client = outbound_create(&cfg->http, err, errcap);
    if (!w->client) {
        http_copy_free(&w->http);
        free(w);
        return NULL;
    }
    w->lookback_ms =
        cfg->lookback_ms < WARMSTART_MAX_LOOKBACK_MS ? cfg->lookback_ms : WARMSTART_MAX_LOOKBACK_MS;
    w->batch = cfg->max_series_per_request ? (size_t)cfg->max_series_per_request : 100;
    w->interval_ms =
        cfg->requests_per_second > 0 ? (int64_t)(1000.0 / cfg->requests_per_second) : 0;
    w->idx = idx;
    w->pipeline = pipeline;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);

    static const char *const result_l[] = {"result"};
    static const char *const code_l[] = {"code"};
    w->series_result = selfmetrics_register_counter(
        metrics, "promcast_warmstart_series_total",
        "New series by warm-start outcome: applied (history fed to the model), no_history "
        "(Prometheus had none), failed (reads kept failing), queue_full, abandoned (shutdown).",
        1, result_l);
    w->requests = selfmetrics_register_counter(
        metrics, "promcast_warmstart_requests_total",
        "Remote-read requests for warm-start history, by HTTP status (0: no response).", 1, code_l);
    w->samples = selfmetrics_simple_counter(metrics, "promcast_warmstart_samples_total",
                                            "History samples fed to models by warm start.");
    w->queue_full = selfmetrics_counter_get(w->series_result, "queue_full");
    return w;
}

bool warmstart_request(void *ctx, const struct label *labels, size_t n)
{
    struct warmstart *w = ctx;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += (size_t)labels[i].name_len + labels[i].value_len;
    pthread_mutex_lock(&w->lock);
    bool full = w->stop || w->queued + w->inflight >= WARMSTART_QUEUE_CAP;
    pthread_mutex_unlock(&w->lock);
    if (full) {
        selfmetrics_counter_inc(w->queue_full);
        return false;
    }
    struct item *it = malloc(sizeof *it + n * sizeof(struct label) + bytes);
    if (!it)
        return false;
    it->next = NULL;
    it->n = n;
    it->done = false;
    char *p = (char *)&it->labels[n];
    for (size_t i = 0; i < n; i++) {
        memcpy(p, labels[i].name, labels[i].name_len);
        it->labels[i].name = p;
        it->labels[i].name_len = labels[i].name_len;
        p += labels[i].name_len;
        memcpy(p, labels[i].value, labels[i].value_len);
        it->labels[i].value = p;
        it->labels[i].value_len = labels[i].value_len;
        p += labels[i].value_len;
    }
    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = it;
    else
        w->head = it;
    w->tail = it;
    w->queued++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return true;
}

size_t warmstart_pending(struct warmstart *w)
{
    pthread_mutex_lock(&w->lock);
    size_t n = w->queued + w->inflight;
    pthread_mutex_unlock(&w->lock);
    return n;
}

/* ---- applying history ------------------------------------------------------ */

struct apply_ctx {
    struct pipeline *p;
    const struct sample *hist;
    size_t n;
};

static int apply_one(void *ctx, const struct label *labels, size_t n, void *model)
{
    struct apply_ctx *a = ctx;
    return pipeline_warm_apply(a->p, model, labels, n, a->hist, a->n);
}

/* Hand history (or none) to the series' slot; the series may have been
 * evicted meanwhile, which is fine. */
static void apply(struct warmstart *w, struct item *it, const struct sample *hist, size_t n)
{
    struct apply_ctx a = {w->pipeline, hist, n};
    series_index_with_model(w->idx, it->labels, it->n, apply_one, &a);
    it->done = true;
}

static bool labels_equal(const struct label *a, size_t na, const struct label *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (labels_cmp(&a[i], &b[i]) != 0)
            return false;
    return true;
}

struct decode_ctx {
    struct warmstart *w;
    struct item **items;
    size_t n;
    uint64_t applied, samples;
};

static int on_series(void *ctx, size_t qi, const struct label *labels, size_t n,
                     const struct sample *samples, size_t ns)
{
    struct decode_ctx *d = ctx;
    if (qi >= d->n)
        return 0;
    struct item *it = d->items[qi];
    /* Equality matchers also match series with more labels: only the exact
     * set is this series' history. */
    if (it->done || !labels_equal(labels, n, it->labels, it->n) || ns == 0)
        return 0;
    apply(d->w, it, samples, ns);
    d->applied++;
    d->samples += ns;
    return 0;
}

static bool cancel_cb(void *arg)
{
    struct warmstart *w = arg;
    pthread_mutex_lock(&w->lock);
    bool stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

#define STREAMED_CT_PREFIX "application/x-streamed-protobuf"

/* One remote-read round trip for the items not done yet. 0 when the
 * response was decoded completely, -1 to retry. */
static int fetch(struct warmstart *w, struct item **items, size_t n)
{
    struct wire_read_query *q = calloc(n, sizeof *q);
    size_t nm = 0;
    for (size_t i = 0; i < n; i++)
        nm += items[i]->n;
    struct wire_read_matcher *m = calloc(nm ? nm : 1, sizeof *m);
    struct item **live = calloc(n, sizeof *live);
    void *buf = NULL;
    size_t bufcap = 0, len = 0;
    int rc = -1;
    char err[256];
    if (!q || !m || !live)
        goto out;
    int64_t now = clock_now_ms();
    size_t nq = 0, mi = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i]->done)
            continue;
        live[nq] = items[i];
        q[nq].start_ms = now - w->lookback_ms;
        q[nq].end_ms = now;
        q[nq].matchers = &m[mi];
        q[nq].nmatchers = items[i]->n;
        for (size_t j = 0; j < items[i]->n; j++, mi++)
            m[mi] = (struct wire_read_matcher){MATCH_EQ, items[i]->labels[j].name_len,
                                               items[i]->labels[j].value_len,
                                               items[i]->labels[j].name, items[i]->labels[j].value};
        nq++;
    }
    if (nq == 0) {
        rc = 0;
        goto out;
    }
    static const enum wire_read_type types[] = {WIRE_READ_STREAMED_XOR_CHUNKS, WIRE_READ_SAMPLES};
    if (wire_read_encode_request(q, nq, types, 2, &buf, &bufcap, &len, err, sizeof err) < 0) {
        log_warn_ratelimited("warm start: cannot encode remote-read request", "err", err);
        goto out;
    }
    static const struct outbound_header hdrs[] = {
        {"Content-Type", "application/x-protobuf"},
        {"Content-Encoding", "snappy"},
        {"Accept-Encoding", "snappy"},
        {"X-Prometheus-Remote-Read-Version", "0.1.0"},
    };
    struct outbound_request rq = {.method = "POST",
                                  .headers = hdrs,
                                  .nheaders = sizeof hdrs / sizeof hdrs[0],
                                  .body = buf,
                                  .body_len = len,
                                  .max_response_bytes = WARMSTART_MAX_RESPONSE_BYTES,
                                  .cancel = cancel_cb,
                                  .cancel_arg = w};
    struct outbound_response resp;
    int r = outbound_do(w->client, &rq, &resp);
    char code[16];
    snprintf(code, sizeof code, "%ld", r == 0 ? resp.status : 0L);
    selfmetrics_counter_inc(selfmetrics_counter_get(w->requests, code));
    if (r < 0) {
        log_warn_ratelimited("warm start: remote read failed", "url", outbound_url(w->client),
                             "err", resp.error);
        goto out;
    }
    if (resp.status != 200) {
        char line[200];
        snprintf(line, sizeof line, "%.*s", (int)strcspn(resp.body, "\n"), resp.body);
        log_warn_ratelimited("warm start: remote read refused", "url", outbound_url(w->client),
                             "status", code, "body", line);
        goto out;
    }
    enum wire_read_type type =
        strncmp(resp.content_type, STREAMED_CT_PREFIX, strlen(STREAMED_CT_PREFIX)) == 0
            ? WIRE_READ_STREAMED_XOR_CHUNKS
            : WIRE_READ_SAMPLES;
    struct decode_ctx d = {w, live, nq, 0, 0};
    enum wire_read_err e = wire_read_decode_response(resp.body, resp.body_len, type, q, nq, NULL,
                                                     on_series, &d, NULL, err, sizeof err);
    count_result(w, "applied", d.applied);
    selfmetrics_counter_add(w->samples, d.samples);
    if (e != WIRE_READ_OK) {
        log_warn_ratelimited("warm start: bad remote-read response", "url", outbound_url(w->client),
                             "err", err);
        goto out;
    }
    rc = 0;
out:
    free(buf);
    free(q);
    free(m);
    free(live);
    return rc;
}

/* ---- worker ------------------------------------------------------------------ */

static bool sleep_unless_stopped(struct warmstart *w, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&w->lock);
    while (!w->stop && pthread_cond_timedwait(&w->cond, &w->lock, &ts) == 0)
        ;
    bool stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    return !stop;
}

static void *worker(void *arg)
{
    struct warmstart *w = arg;
    struct item **batch = calloc(w->batch, sizeof *batch);
    if (!batch)
        return NULL;
    int64_t next_ok = 0;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->stop && !w->head)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->stop) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        size_t n = 0;
        while (w->head && n < w->batch) {
            batch[n++] = w->head;
            w->head = w->head->next;
        }
        if (!w->head)
            w->tail = NULL;
        w->queued -= n;
        w->inflight = n;
        pthread_mutex_unlock(&w->lock);

        bool ok = false;
        for (int attempt = 0; attempt < WARMSTART_ATTEMPTS && !ok; attempt++) {
            int64_t wait = next_ok - clock_mono_ms();
            if (attempt > 0)
                wait = wait > 1000 << attempt ? wait : 1000 << attempt;
            if (wait > 0 && !sleep_unless_stopped(w, wait))
                break;
            next_ok = clock_mono_ms() + w->interval_ms;
            ok = fetch(w, batch, n) == 0;
        }
        uint64_t none = 0, failed = 0;
        for (size_t i = 0; i < n; i++) {
            if (!batch[i]->done) {
                apply(w, batch[i], NULL, 0);
                if (ok)
                    none++;
                else
                    failed++;
            }
            free(batch[i]);
        }
        count_result(w, "no_history", none);
        count_result(w, "failed", failed);
        pthread_mutex_lock(&w->lock);
        w->inflight = 0;
        pthread_mutex_unlock(&w->lock);
    }
    free(batch);
    return NULL;
}

int warmstart_start(struct warmstart *w)
{
    if (pthread_create(&w->thread, NULL, worker, w) != 0)
        return -1;
    w->started = true;
    return 0;
}

void warmstart_destroy(struct warmstart *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (w->started)
        pthread_join(w->thread, NULL);
    uint64_t abandoned = 0;
    for (struct item *it = w->head, *next; it; it = next) {
        next = it->next;
        apply(w, it, NULL, 0);
        free(it);
        abandoned++;
    }
    count_result(w, "abandoned", abandoned);
    outbound_destroy(w->client);
    http_copy_free(&w->http);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}
