/*
 * pcwrite.c — drives one remote-write writer (src/writer.c) against a real
 * receiver, for the end-to-end outage test.
 *
 * Every interval it enqueues one sample per series, stamped with the current
 * wall clock, for the given number of ticks; then it shuts the writer down
 * with a deadline and prints its counters as one `key=value` line:
 *
 *   pcwrite --url URL [--series N] [--ticks N] [--interval-ms MS]
 *           [--metric NAME] [--capacity N] [--max-per-send N]
 *           [--batch-deadline-ms MS] [--shards N] [--min-backoff-ms MS]
 *           [--max-backoff-ms MS] [--protocol 1|2] [--shutdown-timeout-ms MS]
 *
 * Series are NAME{series="<i>",job="pcwrite"}; the value of tick k is k.
 * While running, a `progress ...` line goes to stdout every 5 ticks; the
 * last line is `final ...`. Exit status 0 unless the writer cannot start.
 * Logs (retries, drops) go to stderr.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "config.h"
#include "labels.h"
#include "outbound.h"
#include "writer.h"

struct opts {
    const char *url;
    const char *metric;
    long series;
    long ticks;
    long interval_ms;
    long capacity;
    long max_per_send;
    long batch_deadline_ms;
    long shards;
    long min_backoff_ms;
    long max_backoff_ms;
    long protocol;
    long shutdown_timeout_ms;
};

static void usage(void)
{
    fprintf(stderr,
            "usage: pcwrite --url URL [--series N] [--ticks N] [--interval-ms MS] [--metric NAME]\n"
            "               [--capacity N] [--max-per-send N] [--batch-deadline-ms MS]\n"
            "               [--shards N] [--min-backoff-ms MS] [--max-backoff-ms MS]\n"
            "               [--protocol 1|2] [--shutdown-timeout-ms MS]\n");
    exit(2);
}

static long num(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0)
        usage();
    return v;
}

static void parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.metric = "pcwrite_test",
                       .series = 10,
                       .ticks = 60,
                       .interval_ms = 1000,
                       .capacity = 100000,
                       .max_per_send = 2000,
                       .batch_deadline_ms = 1000,
                       .shards = 2,
                       .min_backoff_ms = 30,
                       .max_backoff_ms = 5000,
                       .protocol = 1,
                       .shutdown_timeout_ms = 60000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(a, "--url") == 0)
            o->url = v;
        else if (strcmp(a, "--metric") == 0)
            o->metric = v;
        else if (strcmp(a, "--series") == 0)
            o->series = num(v);
        else if (strcmp(a, "--ticks") == 0)
            o->ticks = num(v);
        else if (strcmp(a, "--interval-ms") == 0)
            o->interval_ms = num(v);
        else if (strcmp(a, "--capacity") == 0)
            o->capacity = num(v);
        else if (strcmp(a, "--max-per-send") == 0)
            o->max_per_send = num(v);
        else if (strcmp(a, "--batch-deadline-ms") == 0)
            o->batch_deadline_ms = num(v);
        else if (strcmp(a, "--shards") == 0)
            o->shards = num(v);
        else if (strcmp(a, "--min-backoff-ms") == 0)
            o->min_backoff_ms = num(v);
        else if (strcmp(a, "--max-backoff-ms") == 0)
            o->max_backoff_ms = num(v);
        else if (strcmp(a, "--protocol") == 0)
            o->protocol = num(v);
        else if (strcmp(a, "--shutdown-timeout-ms") == 0)
            o->shutdown_timeout_ms = num(v);
        else
            usage();
    }
    if (o->url == NULL || o->series < 1 || o->series > 1000000)
        usage();
}

static void sleep_until_mono(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
}

static void print_stats(const char *what, long tick, uint64_t enqueued, const struct writer *w)
{
    struct writer_stats s;
    writer_stats(w, &s);
    printf("%s tick=%ld enqueued=%" PRIu64 " accepted=%" PRIu64 " sent=%" PRIu64 " pending=%" PRIu64
           " retried=%" PRIu64 " failed=%" PRIu64 " dropped=%" PRIu64 " requests=%" PRIu64,
           what, tick, enqueued, s.accepted, s.sent, s.pending, s.retried, s.failed,
           s.dropped_total, s.requests);
    for (int r = 0; r < WRITER_DROP_COUNT; r++)
        printf(" dropped_%s=%" PRIu64, writer_drop_reason((enum writer_drop)r), s.dropped[r]);
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(argc, argv, &o);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (outbound_global_init() != 0) {
        fprintf(stderr, "pcwrite: curl init failed\n");
        return 1;
    }
    struct config_remote_write c;
    memset(&c, 0, sizeof c);
    c.http.url = (char *)o.url;
    c.http.timeout_ms = 30000;
    c.protocol = (int)o.protocol;
    c.queue_capacity = (uint64_t)o.capacity;
    c.max_samples_per_send = (uint64_t)o.max_per_send;
    c.batch_send_deadline_ms = o.batch_deadline_ms;
    c.min_backoff_ms = o.min_backoff_ms;
    c.max_backoff_ms = o.max_backoff_ms;
    c.retry_on_http_429 = true;
    c.shards = (uint64_t)o.shards;
    char err[256];
    struct writer *w = writer_create(&c, NULL, NULL, err, sizeof err);
    if (w == NULL) {
        fprintf(stderr, "pcwrite: %s\n", err);
        return 1;
    }

    char(*ids)[24] = calloc((size_t)o.series, sizeof *ids);
    if (ids == NULL)
        return 1;
    for (long i = 0; i < o.series; i++)
        snprintf(ids[i], sizeof ids[i], "%ld", i);
    struct label l[3] = {
        {"__name__", o.metric, 8, (uint32_t)strlen(o.metric)},
        {"job", "pcwrite", 3, 7},
        {"series", NULL, 6, 0},
    };
    uint64_t enqueued = 0;
    int64_t first_ms = 0, last_ms = 0;
    int64_t start = clock_mono_ms();
    for (long tick = 0; tick < o.ticks; tick++) {
        int64_t t = clock_now_ms();
        if (t <= last_ms)
            t = last_ms + 1; /* per-series timestamps strictly increase */
        if (tick == 0)
            first_ms = t;
        last_ms = t;
        for (long i = 0; i < o.series; i++) {
            l[2].value = ids[i];
            l[2].value_len = (uint32_t)strlen(ids[i]);
            writer_enqueue(w, l, 3, t, (double)tick);
            enqueued++;
        }
        if (tick % 5 == 4) {
            print_stats("progress", tick + 1, enqueued, w);
            printf("\n");
        }
        sleep_until_mono(start + (tick + 1) * o.interval_ms);
    }
    int abandoned = writer_shutdown(w, clock_mono_ms() + o.shutdown_timeout_ms);
    print_stats("final", o.ticks, enqueued, w);
    printf(" abandoned=%d first_ms=%" PRId64 " last_ms=%" PRId64 "\n", abandoned, first_ms,
           last_ms);
    writer_destroy(w);
    free(ids);
    outbound_global_cleanup();
    return 0;
}
