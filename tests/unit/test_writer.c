/*
 * test_writer.c — the remote-write client against a fake receiver on
 * 127.0.0.1 (libmicrohttpd) that decodes every body with wire_decode_write()
 * and answers from a script: batching by size and by deadline, per-series
 * order across shards with retried 500s and exactly-once delivery, 429 with
 * Retry-After, 400 drops, queue overflow dropping the newest, future and
 * invalid samples, external labels, the v2 Written-header check, shutdown
 * flush and abandonment, auth headers, self-metrics.
 *
 * Nothing here asserts on elapsed time except one lower bound (a retry must
 * not come before the receiver's Retry-After); deadlines are short
 * configured values and every wait polls a condition with a generous limit.
 */
#include "writer.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "outbound.h"
#include "selfmetrics.h"
#include "testlib.h"
#include "wire_write.h"

/* ---- fake receiver ------------------------------------------------------------------- */

#define MAX_SCRIPT 16
#define MAX_RECS   200000
#define MAX_REQS   10000

struct answer {
    unsigned status;
    const char *retry_after; /* NULL: none */
    const char *body;
};

struct rec {
    char key[160]; /* name=value,... in wire order after decoding */
    int64_t t;
    uint64_t vbits;
};

struct rx {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    struct wire_decoder *dec;
    /* script: answers for the first requests, then the default */
    struct answer script[MAX_SCRIPT];
    int nscript;
    unsigned default_status;
    int fail_every;    /* every Nth request answers 500 (0: never) */
    bool omit_written; /* v2: leave out the Written headers */
    /* observations */
    int requests;
    int ok_requests;
    int64_t req_ms[MAX_REQS];
    int batch[MAX_REQS]; /* samples per 2xx request */
    struct rec *recs;    /* samples of 2xx requests, in arrival order */
    size_t nrecs;
    int decode_errors;
    char auth[256];
    char ctype[128];
    char version[32];
    char encoding[32];
    char agent[64];
    char retry_attempt[16];
};

struct upload {
    unsigned char *buf;
    size_t len, cap;
};

static void copy_hdr(struct MHD_Connection *c, const char *name, char *out, size_t cap)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(out, cap, "%s", v ? v : "");
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *body,
                              const char *retry_after, long written)
{
    const char *b = body ? body : "";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(b), (void *)b, MHD_RESPMEM_MUST_COPY);
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    if (written >= 0) {
        char n[24];
        snprintf(n, sizeof n, "%ld", written);
        MHD_add_response_header(r, "X-Prometheus-Remote-Write-Samples-Written", n);
        MHD_add_response_header(r, "X-Prometheus-Remote-Write-Histograms-Written", "0");
        MHD_add_response_header(r, "X-Prometheus-Remote-Write-Exemplars-Written", "0");
    }
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static void format_key(const struct wire_series *s, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < s->nlabels && n < cap; i++) {
        int w = snprintf(out + n, cap - n, "%s%.*s=%.*s", i ? "," : "", (int)s->labels[i].name_len,
                         s->labels[i].name, (int)s->labels[i].value_len, s->labels[i].value);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_size, void **con_cls)
{
    (void)url, (void)method, (void)version;
    struct rx *x = cls;
    struct upload *u = *con_cls;
    if (u == NULL) {
        u = calloc(1, sizeof *u);
        *con_cls = u;
        return u ? MHD_YES : MHD_NO;
    }
    if (*upload_size > 0) {
        if (u->len + *upload_size > u->cap) {
            size_t ncap = (u->len + *upload_size) * 2;
            unsigned char *b = realloc(u->buf, ncap);
            if (b == NULL)
                return MHD_NO;
            u->buf = b;
            u->cap = ncap;
        }
        memcpy(u->buf + u->len, upload_data, *upload_size);
        u->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&x->mu);
    int idx = x->requests++;
    if (idx < MAX_REQS)
        x->req_ms[idx] = clock_mono_ms();
    copy_hdr(c, "Authorization", x->auth, sizeof x->auth);
    copy_hdr(c, "Content-Type", x->ctype, sizeof x->ctype);
    copy_hdr(c, "X-Prometheus-Remote-Write-Version", x->version, sizeof x->version);
    copy_hdr(c, "Content-Encoding", x->encoding, sizeof x->encoding);
    copy_hdr(c, "User-Agent", x->agent, sizeof x->agent);
    copy_hdr(c, "Retry-Attempt", x->retry_attempt, sizeof x->retry_attempt);
    struct answer a = {x->default_status, NULL, NULL};
    if (idx < x->nscript)
        a = x->script[idx];
    else if (x->fail_every > 0 && idx % x->fail_every == x->fail_every - 1)
        a = (struct answer){500, NULL, "injected failure"};
    bool v2 = strstr(x->ctype, "io.prometheus.write.v2.Request") != NULL;
    long written = -1;
    if (a.status >= 200 && a.status < 300) {
        struct wire_request req;
        char err[256];
        enum wire_err e = wire_decode_write(x->dec, v2 ? WIRE_PROTO_V2 : WIRE_PROTO_V1, u->buf,
                                            u->len, NULL, &req, err, sizeof err);
        if (e != WIRE_OK) {
            x->decode_errors++;
            fprintf(stderr, "fake receiver: decode error: %s\n", err);
            pthread_mutex_unlock(&x->mu);
            return answer(c, 400, err, NULL, v2 ? 0 : -1);
        }
        if (x->ok_requests < MAX_REQS)
            x->batch[x->ok_requests] = (int)req.nsamples;
        x->ok_requests++;
        for (size_t i = 0; i < req.nseries; i++) {
            const struct wire_series *s = &req.series[i];
            for (uint32_t k = 0; k < s->nsamples && x->nrecs < MAX_RECS; k++) {
                struct rec *r = &x->recs[x->nrecs++];
                format_key(s, r->key, sizeof r->key);
                r->t = s->samples[k].t;
                memcpy(&r->vbits, &s->samples[k].v, sizeof r->vbits);
            }
        }
        if (v2 && !x->omit_written)
            written = (long)req.nsamples;
    } else if (v2) {
        written = 0;
    }
    pthread_mutex_unlock(&x->mu);
    return answer(c, a.status, a.body, a.retry_after, written);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    struct upload *u = *con_cls;
    if (u) {
        free(u->buf);
        free(u);
    }
    *con_cls = NULL;
}

static struct rx *rx_start(void)
{
    struct rx *x = calloc(1, sizeof *x);
    pthread_mutex_init(&x->mu, NULL);
    x->default_status = 204;
    x->recs = calloc(MAX_RECS, sizeof *x->recs);
    x->dec = wire_decoder_create(64u << 20);
    x->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                            NULL, NULL, handler, x, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                            MHD_OPTION_END);
    if (x->d == NULL) {
        fprintf(stderr, "cannot start fake receiver\n");
        exit(1);
    }
    x->port = MHD_get_daemon_info(x->d, MHD_DAEMON_INFO_BIND_PORT)->port;
    return x;
}

static void rx_stop(struct rx *x)
{
    MHD_stop_daemon(x->d);
    wire_decoder_destroy(x->dec);
    free(x->recs);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

static void rx_set_default(struct rx *x, unsigned status)
{
    pthread_mutex_lock(&x->mu);
    x->default_status = status;
    pthread_mutex_unlock(&x->mu);
}

static int rx_get(struct rx *x, const int *field)
{
    pthread_mutex_lock(&x->mu);
    int v = *field;
    pthread_mutex_unlock(&x->mu);
    return v;
}

/* ---- helpers --------------------------------------------------------------------------- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Poll until a condition holds, for up to 20 s (generous: shared machine). */
#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        for (int w_ = 0; w_ < 4000 && !(cond); w_++)                                               \
            sleep_ms(5);                                                                           \
    } while (0)

static struct config_remote_write rw_cfg(const struct rx *x, char *url, size_t cap)
{
    snprintf(url, cap, "http://127.0.0.1:%d/api/v1/write", x->port);
    struct config_remote_write c;
    memset(&c, 0, sizeof c);
    c.http.url = url;
    c.http.timeout_ms = 10000;
    c.protocol = 1;
    c.queue_capacity = 100000;
    c.max_samples_per_send = 2000;
    c.batch_send_deadline_ms = 20;
    c.min_backoff_ms = 5;
    c.max_backoff_ms = 40;
    c.retry_on_http_429 = true;
    c.shards = 1;
    return c;
}

static struct writer *mk(const struct config_remote_write *c, const struct config_labels *ext,
                         struct selfmetrics *m)
{
    char err[256];
    struct writer *w = writer_create(c, ext, m, err, sizeof err);
    if (w == NULL) {
        fprintf(stderr, "writer_create: %s\n", err);
        exit(1);
    }
    return w;
}

static struct writer_stats st(const struct writer *w)
{
    struct writer_stats s;
    writer_stats(w, &s);
    return s;
}

/* A one-series label set {__name__=name, i="<i>", job="test"} in buf. */
struct lset {
    char name[64], ival[16];
    struct label l[3];
};

static void lset_make(struct lset *s, const char *name, int i)
{
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->ival, sizeof s->ival, "%d", i);
    s->l[0] = (struct label){"__name__", s->name, 8, (uint32_t)strlen(s->name)};
    s->l[1] = (struct label){"i", s->ival, 1, (uint32_t)strlen(s->ival)};
    s->l[2] = (struct label){"job", "test", 3, 4};
}

static int64_t deadline_in(int64_t ms)
{
    return clock_mono_ms() + ms;
}

/* ---- cases ------------------------------------------------------------------------------ */

static void test_batch_by_size(void)
{
    struct rx *x = rx_start();
    char url[128];
    struct config_remote_write c = rw_cfg(x, url, sizeof url);
    c.max_samples_per_send = 10;
    c.batch_send_deadline_ms = 3600000; /* only size (or shutdown) sends */
    struct writer *w = mk(&c, NULL, NULL);
    struct lset s;
    lset_make(&s, "m", 0);
    int64_t base = clock_now_ms() - 100000;
    for (int i = 0; i < 25; i++)
        CHECK(writer_enqueue(w, s.l, 3, base + i * 1000, (double)i) == 0, "enqueue %d", i);
    WAIT_FOR(rx_get(x, &x->ok_requests) >= 2 && writer_pending(w) == 5);
    CHECK(rx_get(x, &x->ok_requests) == 2, "two full batches sent: %d", x->ok_requests);
    CHECK(x->batch[0] == 10 && x->batch[1] == 10, "batch sizes %d %d", x->batch[0], x->batch[1]);
    CHECK(writer_pending(w) == 5, "5 still pending: %llu", (unsigned long long)writer_pending(w));
    int left = writer_shutdown(w, deadline_in(10000));
    CHECK(left == 0, "shutdown flushed everything: %d abandoned", left);
    CHECK(x->ok_requests == 3 && x->batch[2] == 5, "flush batch: %d requests, last %d",
          x->ok_requests, x->batch[2]);
    CHECK(x->nrecs == 25, "25 samples received: %zu", x->nrecs);
    for (size_t i = 0; i < x->nrecs && i < 25; i++) {
        double v;
        memcpy(&v, &x->recs[i].vbits, sizeof v);
        CHECK(x->recs[i].t == base + (int64_t)i * 1000 && v == (double)i, "sample %zu: t %lld", i,
              (long long)x->recs[i].t);
    }
    CHECK(strcmp(x->recs[0].key, "__name__=m,i=0,job=test") == 0, "labels %s", x->recs[0].key);
    CHECK(strcmp(x->ctype, "application/x-protobuf") == 0, "v1 content type %s", x->ctype);
    CHECK(strcmp(x->version, "0.1.0") == 0, "v1 version header %s", x->version);
    CHECK(strcmp(x->encoding, "snappy") == 0, "encoding %s", x->encoding);
    CHECK(strncmp(x->agent, "promcast/", 9) == 0, "user agent %s", x->agent);
    struct writer_stats ws = st(w);
    CHECK(ws.sent == 25 && ws.pending == 0 && ws.dropped_total == 0 && ws.accepted == 25,
          "stats sent %llu pending %llu dropped %llu", (unsigned long long)ws.sent,
          (unsigned long long)ws.pending, (unsigned long long)ws.dropped_total);
    CHECK(ws.last_send_ms > 0, "last send time set");
    writer_destroy(w);
    rx_stop(x);
}

static void test_batch_by_deadline(void)
{
    struct rx *x = rx_start();
    char url[128];
    struct config_remote_write c = rw_cfg(x, url, sizeof url);
    c.max_samples_per_send = 1000;
    c.batch_send_deadline_ms = 30;
    struct writer *w = mk(&c, NULL, NULL);
    struct lset s;
    int64_t now = clock_now_ms();
    for (int i = 0; i < 3; i++) {
        lset_make(&s, "d", i);
        CHECK(writer_enqueue(w, s.l, 3, now - 1000, 1.5) == 0, "enqueue %d", i);
    }
    WAIT_FOR(rx_get(x, &x->ok_requests) >= 1);
    CHECK(x->ok_requests == 1 && x->batch[0] == 3, "deadline batch: %d requests, %d samples",
          x->ok_requests, x->batch[0]);
    WAIT_FOR(writer_pending(w) == 0);
    CHECK(writer_pending(w) == 0, "nothing pending");
    CHECK(writer_shutdown(w, deadline_in(1000)) == 0, "nothing abandoned");
    writer_destroy(w);
    rx_stop(x);
}

/* A burst followed by silence goes out after batch_idle_flush, not after
 * the (hour-long) deadline; with the idle flush off it waits. */
static void test_batch_idle_flush(void)
{
    for (int on = 1; on >= 0; on--) {
        struct rx *x = rx_start();
        char url[128];
        struct config_remote_write c = rw_cfg(x, url, sizeof url);
        c.max_samples_per_send = 1000;
        c.batch_send_deadline_ms = 3600000;
        c.batch_idle_flush_ms = on ? 50 : 0;
        struct writer *w = mk(&c, NULL, NULL);
        struct lset s;
        int64_t now = clock_now_ms();
        for (int i = 0; i < 4; i++) {
            lset_make(&s, "idle", i);
            CHECK(writer_enqueue(w, s.l, 3, now - 1000, 2.5) == 0, "enqueue %d", i);
        }
        if (on) {
            WAIT_FOR(rx_get(x, &x->ok_requests) >= 1);
            CHECK(rx_get(x, &x->ok_requests) == 1 && x->batch[0] == 4,
                  "idle flush: %d requests, %d samples", x->ok_requests, x->batch[0]);
        } else {
            /* Nothing may be sent before shutdown: check a while later. */
            sleep_ms(300);
            CHECK(rx_get(x, &x->ok_requests) == 0, "idle flush off sent %d requests",
                  x->ok_requests);
        }
        CHECK(writer_shutdown(w, deadline_in(5000)) == 0, "nothing abandoned");
        CHECK(x->nrecs == 4, "4 samples received: %zu", x->nrecs);
        writer_destroy(w);
        rx_stop(x);
    }
}

/* 4 shards, 20 series x 100 samples, every third request fails with 500. */
static void test_order_and_retry(void)
{
    struct rx *x = rx_start();
    x->fail_every = 3;
    char url[128];
    struct config_remote_write c = rw_cfg(x, url, sizeof url);
    c.shards = 4;
    c.max_samples_per_send = 50;
    c.batch_send_deadline_ms = 5;
    struct selfmetrics *reg = selfmetrics_create(0);
    struct writer *w = mk(&c, NULL, reg);
    enum { NS = 20, NT = 100 };
    int64_t base = clock_now_ms() - 200000;
    for (int t = 0; t < NT; t++)
        for (int i = 0; i < NS; i++) {
            struct lset s;
            lset_make(&s, "ord", i);
            CHECK(writer_enqueue(w, s.l, 3, base + t * 1000, (double)(i * 1000 + t)) == 0,
                  "enqueue %d/%d", i, t);
        }
    WAIT_FOR(st(w).sent == NS * NT && writer_pending(w) == 0);
    struct writer_stats ws = st(w);
    CHECK(ws.sent == NS * NT, "all sent: %llu", (unsigned long long)ws.sent);
    CHECK(ws.retried > 0, "some retried: %llu", (unsigned long long)ws.retried);
    CHECK(ws.dropped_total == 0 && ws.failed == 0, "nothing dropped");
    /* per series: every t exactly once, in order */
    pthread_mutex_lock(&x->mu);
    int next[NS] = {0};
    int bad = 0;
    for (size_t r = 0; r < x->nrecs; r++) {
        int i = -1;
        sscanf(x->recs[r].key, "__name__=ord,i=%d,", &i);
        if (i < 0 || i >= NS) {
            bad++;
            continue;
        }
        if (x->recs[r].t != base + next[i] * 1000)
            bad++;
        next[i]++;
    }
    size_t nrecs = x->nrecs;
    pthread_mutex_unlock(&x->mu);
    CHECK(nrecs == NS * NT, "received exactly %d samples: %zu", NS * NT, nrecs);
    CHECK(bad == 0, "%d samples out of order, duplicated or unknown", bad);
    for (int i = 0; i < NS; i++)
        CHECK(next[i] == NT, "series %d: %d samples", i, next[i]);

    /* self-metrics */
    char *text = NULL;
    size_t len = 0;
    CHECK(selfmetrics_render(reg, &text, &len) == 0, "render");
    char want[256];
    snprintf(want, sizeof want, "promcast_remote_write_samples_sent_total{url=\"%s\"} %d", url,
             NS * NT);
    CHECK(text && strstr(text, want) != NULL, "metric: %s", want);
    snprintf(want, sizeof want,
             "promcast_remote_write_samples_dropped_total{url=\"%s\",reason=\"queue_full\"} 0",
             url);
    CHECK(text && strstr(text, want) != NULL, "metric: %s", want);
    snprintf(want, sizeof want, "promcast_remote_write_requests_total{url=\"%s\",code=\"500\"}",
             url);
    CHECK(text && strstr(text, want) != NULL, "metric: %s", want);
    snprintf(want, sizeof want, "promcast_remote_write_samples_pending{url=\"%s\"} 0", url);
    CHECK(text && strstr(text, want) != NULL, "metric: %s", want);
    CHECK(text && strstr(text, "promcast_remote_write_send_duration_seconds_bucket") != NULL,
          "duration histogram");
    CHECK(text && strstr(text, "promcast_remote_write_samples_retried_total") != NULL,
          "retried metric");
    CHECK(text && strstr(text, "promcast_remote_write_last_send_timestamp_seconds") != NULL,
          "last send metric");
    free(text);
    writer_destroy(w);
    selfmetrics_destroy(reg);
    rx_stop(x);
}

static void test_429(void)
{
    struct rx *x = rx_start();
    x->script[0] = (struct answer){429, "2", "slow down"};
    x->nscript = 1;
    char url[128];
    struct config_remote_write c = rw_cfg(x, url, sizeof url);
    c.max_backoff_ms = 20;
    struct writer *w = mk(&c, NULL, NULL);
    struct lset s;
    lset_make(&s, "r", 1);
    CHECK(writer_enqueue(w, s.l, 3, clock_now_ms(), 1) == 0, "enqueue");
    WAIT_FOR(st(w).sent == 1);
    CHECK(x->requests == 2 && x->ok_requests == 1, "429 then success: %d requests", x->requests);
    /* lower bound only: the retry must wait for Retry-After (2 s), not the
     * 20 ms backoff */
    CHECK(x->req_ms[1] - x->req_ms[0] >= 1500, "retry waited %lld ms",
          (long long)(x->req_ms[1] - x->req_ms[0]));
    CHECK(strcmp(x->retry_attempt, "1") == 0, "Retry-Attempt header: %s", x->retry_attempt);
    struct writer_stats ws = st(w);
    CHECK(ws.sent == 1 && ws.retried == 1 && ws.dropped_total == 0, "stats after 429 retry");
    writer_destroy(w);
    rx_stop(x);

    /* retry_on_http_429: false drops */
    x = rx_start();
    x->script[0] = (struct answer){429, "1", "slow down"};
    x->nscript = 1;
    c = rw_cfg(x, url, sizeof url);
    c.retry_on_http_429 = false;
    w = mk(&c, NULL, NULL);
    CHECK(writer_enqueue(w, s.l, 3, clock_now_ms(), 1) == 0, "enqueue");
    WAIT_FOR(st(w).dropped_total == 1 && writer_pending(w) == 0);
    ws = st(w);
    CHECK(ws.dropped[WRITER_DROP_HTTP_429] == 1 && ws.failed == 1 && ws.sent == 0,
          "429 dropped: %llu", (unsigned long long)ws.dropped[WRITER_DROP_HTTP_429]);
    CHECK(writer_pending(w) == 0, "nothing pending");
    writer_destroy(w);
    rx_stop(x);
}

static void test_4xx_and_5xx_retry_after(void)
{
    struct rx *x = rx_start();
    x->script[0] = (struct answer){400, NULL, "out of order sample\nsecond line"};
    x->script[1] = (struct answer){503, "0", "restarting"};
    x->nscript = 2;
    char url[128];
    struct config_remote_write c = rw_cfg(x, url, sizeof url);
    c.max_samples_per_send = 4;
    c.batch_send_deadline_ms = 3600000;
    struct writer *w = mk(&c, NULL, NULL);
    struct lset s;
    int64_t base = clock_now_ms() - 10000;
    for (int i = 0; i < 8; i++) {
        lset_make(&s, "b", 0);
        CHECK(writer_enqueue(w, s.l, 3, base + i, i) == 0, "enqueue %d", i);
    }
    WAIT_FOR(st(w).sent == 4);
    struct writer_stats ws = st(w);
    CHECK(ws.dropped[WRITER_DROP_HTTP_4XX] == 4 && ws.failed == 4, "400 dropped 4: %llu",
          (unsigned long long)ws.dropped[WRITER_DROP_HTTP_4XX]);
    CHECK(ws.sent == 4 && ws.retried == 4, "second batch sent after a 503: sent %llu retried %llu",
          (unsigned long long)ws.sent, (unsigned long long)ws.retried);
    CHECK(x->nrecs == 4 && x->recs[0].t == base + 4, "the second batch arrived: %zu", x->nrecs);
    writer_destroy(w);
    rx_stop(x);
}

static void test_queue_full(void)
{
    struct rx *x = rx_start();
    x->default_status = 500;
    char url[128];
    struct config_remote_write c = rw_cfg(x, url, sizeof url);
    c.queue_capacity = 10;
    c.max_samples_per_send = 10;
    c.batch_send_deadline_ms = 5;
    struct writer *w = mk(&c, NULL, NULL);
    struct lset s;
    lset_make(&s, "q", 0);
    int64_t base = clock_now_ms() - 100000;
    for (int i = 0; i < 15; i++) {
        int rc = writer_enqueue(w, s.l, 3, base + i * 1000, i);
        CHECK(rc == (i < 10 ? 0 : -1), "enqueue %d: rc %d", i, rc);
    }
    WAIT_FOR(rx_get(x, &x->requests) >= 2); /* the batch is being retried */
    struct writer_stats ws = st(w);
    CHECK(ws.dropped[WRITER_DROP_QUEUE_FULL] == 5, "5 newest dropped: %llu",
          (unsigned long long)ws.dropped[WRITER_DROP_QUEUE_FULL]);
    CHECK(ws.pending == 10, "10 pending while failing: %llu", (unsigned long long)ws.pending);
    CHECK(writer_enqueue(w, s.l, 3, base + 20000, 20) == -1, "still full while retrying");
    rx_set_default(x, 204);
    WAIT_FOR(st(w).sent == 10 && writer_pending(w) == 0);
    ws = st(w);
    CHECK(ws.sent == 10 && ws.pending == 0, "oldest 10 delivered: %llu",
          (unsigned long long)ws.sent);
    pthread_mutex_lock(&x->mu);
    CHECK(x->nrecs == 10, "received 10: %zu", x->nrecs);
    for (size_t i = 0; i < x->nrecs; i++)
        CHECK(x->recs[i].t == base + (int64_t)i * 1000, "received %zu in order", i);
    pthread_mutex_unlock(&x->mu);
    /* room again */
    CHECK(writer_enqueue(w, s.l, 3, base + 30000, 30) == 0, "accepts again");
    writer_destroy(w);
    rx_stop(x);
}

static void test_refused_samples(void)
{
    struct rx *x = rx_start();
    char url[128];
    struct config_remote_write c = rw_cfg(x, url, sizeof url);
    struct writer *w = mk(&c, NULL, NULL);
    struct lset s;
    lset_make(&s, "f", 0);
    CHECK(writer_enqueue(w, s.l, 3, clock_now_ms() + 60000, 1) == -1, "future refused");
    CHECK(writer_enqueue(w, s.l, 0, clock_now_ms(), 1) == -1, "no labels refused");
    struct label unsorted[2] = {{"b", "1", 1, 1}, {"a", "1", 1, 1}};
    CHECK(writer_enqueue(w, unsorted, 2, clock_now_ms(), 1) == -1, "unsorted refused");
    struct label dup[2] = {{"a", "1", 1, 1}, {"a", "2", 1, 1}};
    CHECK(writer_enqueue(w, dup, 2, clock_now_ms(), 1) == -1, "duplicate names refused");
    struct label empty_name[2] = {{"", "1", 0, 1}, {"a", "2", 1, 1}};
    CHECK(writer_enqueue(w, empty_name, 2, clock_now_ms(), 1) == -1, "empty name refused");
    struct label all_empty[1] = {{"a", "", 1, 0}};
    CHECK(writer_enqueue(w, all_empty, 1, clock_now_ms(), 1) == -1, "only empty values refused");
    static char big[70000];
    memset(big, 'v', sizeof big);
    struct label huge[1] = {{"a", big, 1, sizeof big}};
    CHECK(writer_enqueue(w, huge, 1, clock_now_ms(), 1) == -1, "oversized refused");
    /* stale marker bits survive the queue */
    CHECK(writer_enqueue(w, s.l, 3, clock_now_ms(), sample_stale_value()) == 0, "stale ok");
    WAIT_FOR(st(w).sent == 1);
    CHECK(x->nrecs == 1 && x->recs[0].vbits == SAMPLE_STALE_BITS, "stale bits %llx",
          (unsigned long long)x->recs[0].vbits);
    struct writer_stats ws = st(w);
    CHECK(ws.dropped[WRITER_DROP_FUTURE_TIMESTAMP] == 1, "future counted");
    CHECK(ws.dropped[WRITER_DROP_INVALID] == 6, "invalid counted: %llu",
          (unsigned long long)ws.dropped[WRITER_DROP_INVALID]);
    CHECK(ws.accepted == 1 && ws.sent == 1, "one accepted and sent");
    writer_destroy(w);
    rx_stop(x);
}

static void test_external_labels(void)
{
    struct rx *x = rx_start();
    char url[128];
    struct config_remote_write c = rw_cfg(x, url, sizeof url);
    c.batch_send_deadline_ms = 3600000;
    char *names[] = {"env", "region", "zone"}, *values[] = {"prod", "", "a"};
    struct config_labels ext = {3, names, values};
    struct writer *w = mk(&c, &ext, NULL);
    int64_t now = clock_now_ms();
    struct label l1[3] = {{"__name__", "m", 8, 1}, {"env", "dev", 3, 3}, {"job", "x", 3, 1}};
    struct label l2[3] = {{"__name__", "m", 8, 1}, {"env", "", 3, 0}, {"job", "y", 3, 1}};
    struct label l3[2] = {{"__name__", "m", 8, 1}, {"zzz", "1", 3, 1}};
    struct label l4[1] = {{"a", "1", 1, 1}};
    CHECK(writer_enqueue(w, l1, 3, now, 1) == 0, "l1");
    CHECK(writer_enqueue(w, l2, 3, now, 2) == 0, "l2");
    CHECK(writer_enqueue(w, l3, 2, now, 3) == 0, "l3");
    CHECK(writer_enqueue(w, l4, 1, now, 4) == 0, "l4");
    CHECK(writer_shutdown(w, deadline_in(10000)) == 0, "flushed");
    static const char *const want[] = {
        "__name__=m,env=dev,job=x,zone=a",
        "__name__=m,env=prod,job=y,zone=a",
        "__name__=m,env=prod,zone=a,zzz=1",
        "a=1,env=prod,zone=a",
    };
    CHECK(x->nrecs == 4, "4 received: %zu", x->nrecs);
    for (size_t i = 0; i < 4; i++) {
        bool found = false;
        for (size_t r = 0; r < x->nrecs; r++)
            found |= strcmp(x->recs[r].key, want[i]) == 0;
        CHECK(found, "series %s received", want[i]);
    }
    writer_destroy(w);
    rx_stop(x);
}

static void test_v2(void)
{
    struct rx *x = rx_start();
    char url[128];
    struct config_remote_write c = rw_cfg(x, url, sizeof url);
    c.protocol = 2;
    struct writer *w = mk(&c, NULL, NULL);
    struct lset s;
    lset_make(&s, "v2", 0);
    CHECK(writer_enqueue(w, s.l, 3, clock_now_ms(), 1) == 0, "enqueue");
    WAIT_FOR(st(w).sent == 1);
    CHECK(st(w).sent == 1, "v2 sent with Written header");
    CHECK(strcmp(x->ctype, "application/x-protobuf;proto=io.prometheus.write.v2.Request") == 0,
          "v2 content type %s", x->ctype);
    CHECK(strcmp(x->version, "2.0.0") == 0, "v2 version %s", x->version);
    CHECK(x->nrecs == 1 && strcmp(x->recs[0].key, "__name__=v2,i=0,job=test") == 0, "v2 decoded %s",
          x->nrecs ? x->recs[0].key : "");

    /* a receiver that answers 2xx without the Written header: not v2 */
    pthread_mutex_lock(&x->mu);
    x->omit_written = true;
    pthread_mutex_unlock(&x->mu);
    CHECK(writer_enqueue(w, s.l, 3, clock_now_ms(), 2) == 0, "enqueue");
    CHECK(writer_enqueue(w, s.l, 3, clock_now_ms(), 3) == 0, "enqueue");
    WAIT_FOR(st(w).dropped_total == 2);
    struct writer_stats ws = st(w);
    CHECK(ws.dropped[WRITER_DROP_NOT_WRITTEN] == 2 && ws.failed == 2 && ws.sent == 1,
          "not written: dropped %llu failed %llu sent %llu",
          (unsigned long long)ws.dropped[WRITER_DROP_NOT_WRITTEN], (unsigned long long)ws.failed,
          (unsigned long long)ws.sent);
    writer_destroy(w);
    rx_stop(x);
}

static void test_shutdown_abandon(void)
{
    struct rx *x = rx_start();
    x->default_status = 500;
    char url[128];
    struct config_remote_write c = rw_cfg(x, url, sizeof url);
    c.shards = 2;
    struct writer *w = mk(&c, NULL, NULL);
    int64_t now = clock_now_ms();
    for (int i = 0; i < 5; i++) {
        struct lset s;
        lset_make(&s, "ab", i);
        CHECK(writer_enqueue(w, s.l, 3, now, i) == 0, "enqueue %d", i);
    }
    WAIT_FOR(rx_get(x, &x->requests) >= 1);
    int left = writer_shutdown(w, deadline_in(300));
    CHECK(left == 5, "abandoned %d", left);
    CHECK(writer_shutdown(w, deadline_in(300)) == 5, "second call same answer");
    struct lset s;
    lset_make(&s, "ab", 0);
    CHECK(writer_enqueue(w, s.l, 3, now, 9) == -1, "refused after shutdown");
    struct writer_stats ws = st(w);
    CHECK(ws.dropped[WRITER_DROP_SHUTDOWN] == 6 && ws.pending == 0 && ws.sent == 0,
          "shutdown drops %llu pending %llu", (unsigned long long)ws.dropped[WRITER_DROP_SHUTDOWN],
          (unsigned long long)ws.pending);
    writer_destroy(w);
    rx_stop(x);

    /* a receiver that never answers: the in-flight request is cut */
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    bind(sock, (struct sockaddr *)&a, sizeof a);
    listen(sock, 16);
    getsockname(sock, (struct sockaddr *)&a, &alen);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/write", ntohs(a.sin_port));
    c.http.url = url;
    c.http.timeout_ms = 600000;
    w = mk(&c, NULL, NULL);
    CHECK(writer_enqueue(w, s.l, 3, now, 1) == 0, "enqueue");
    WAIT_FOR(writer_pending(w) == 1);
    sleep_ms(100); /* let the sender start its request */
    left = writer_shutdown(w, deadline_in(200));
    CHECK(left == 1, "in-flight request abandoned: %d", left);
    writer_destroy(w);
    close(sock);

    /* destroy without shutdown abandons silently */
    x = rx_start();
    x->default_status = 500;
    c = rw_cfg(x, url, sizeof url);
    w = mk(&c, NULL, NULL);
    CHECK(writer_enqueue(w, s.l, 3, now, 1) == 0, "enqueue");
    writer_destroy(w);
    writer_destroy(NULL);
    rx_stop(x);
}

static void test_auth(void)
{
    char dir[] = "/tmp/promcast-test-writer.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        CHECK(0, "mkdtemp");
        return;
    }
    char pw[128], tok[128];
    snprintf(pw, sizeof pw, "%s/pw", dir);
    snprintf(tok, sizeof tok, "%s/tok", dir);
    FILE *fp = fopen(pw, "w");
    fputs("s3cret\n", fp);
    fclose(fp);
    fp = fopen(tok, "w");
    fputs("abc.def\n", fp);
    fclose(fp);

    struct rx *x = rx_start();
    char url[128];
    struct config_remote_write c = rw_cfg(x, url, sizeof url);
    c.http.basic_auth_username = "alice";
    c.http.basic_auth_password_file = pw;
    struct writer *w = mk(&c, NULL, NULL);
    struct lset s;
    lset_make(&s, "auth", 0);
    writer_enqueue(w, s.l, 3, clock_now_ms(), 1);
    WAIT_FOR(st(w).sent == 1);
    CHECK(strcmp(x->auth, "Basic YWxpY2U6czNjcmV0") == 0, "basic auth: %s", x->auth);
    writer_destroy(w);

    c = rw_cfg(x, url, sizeof url);
    c.http.bearer_token_file = tok;
    w = mk(&c, NULL, NULL);
    writer_enqueue(w, s.l, 3, clock_now_ms(), 1);
    WAIT_FOR(st(w).sent == 1);
    CHECK(strcmp(x->auth, "Bearer abc.def") == 0, "bearer: %s", x->auth);
    writer_destroy(w);
    rx_stop(x);
    unlink(pw);
    unlink(tok);
    rmdir(dir);
}

static void test_create_errors(void)
{
    char err[256];
    struct config_remote_write c;
    memset(&c, 0, sizeof c);
    CHECK(writer_create(&c, NULL, NULL, err, sizeof err) == NULL, "no url");
    c.http.url = "https://127.0.0.1:1/";
    c.http.tls.ca_file = "/nonexistent/ca.pem";
    CHECK(writer_create(&c, NULL, NULL, err, sizeof err) == NULL && strstr(err, "ca_file"),
          "bad ca: %s", err);
    c.http.tls.ca_file = NULL;
    c.http.url = "https://user:pw@127.0.0.1:1/write?key=secret";
    struct writer *w = writer_create(&c, NULL, NULL, err, sizeof err);
    CHECK(w != NULL, "create: %s", err);
    if (w)
        CHECK(strcmp(writer_url(w), "https://127.0.0.1:1/write") == 0, "redacted url %s",
              writer_url(w));
    writer_destroy(w);
    CHECK(strcmp(writer_drop_reason(WRITER_DROP_QUEUE_FULL), "queue_full") == 0 &&
              strcmp(writer_drop_reason(WRITER_DROP_SHUTDOWN), "shutdown") == 0,
          "reason names");
}

int main(void)
{
    if (outbound_global_init() != 0)
        return 1;
    test_create_errors();
    test_batch_by_size();
    test_batch_by_deadline();
    test_batch_idle_flush();
    test_order_and_retry();
    test_429();
    test_4xx_and_5xx_retry_after();
    test_queue_full();
    test_refused_samples();
    test_external_labels();
    test_v2();
    test_shutdown_abandon();
    test_auth();
    outbound_global_cleanup();
    return test_main_end("test_writer");
}
