/*
 * pcfeed.c — feeds promcast synthetic series over remote write, for the
 * end-to-end tests of the loop (restart, outage, warm start).
 *
 *   pcfeed URL --series N --from MS --to MS --interval MS [--shape sine|ramp]
 *          [--period MS] [--amplitude A] [--base B] [--realtime] [--name NAME]
 *
 * Sends, for t = from, from+interval, … < to, one sample per series (value
 * = base + amplitude·sin(2π t / period) + series index, or a ramp), 2000
 * samples per request, in time order. With --realtime it waits until the
 * wall clock reaches each t before sending it (and `--to` may be far in the
 * future: stop it with a signal). Prints the number of samples accepted.
 * Series are NAME{series="k", job="pcfeed"}.
 */
#include "wire_write.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t sink(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static int post(CURL *c, const void *body, size_t len)
{
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    /* Up to a minute of retries: long enough for promcast to restart. */
    for (int attempt = 0; attempt < 300 && !stop; attempt++) {
        CURLcode rc = curl_easy_perform(c);
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (rc == CURLE_OK && code / 100 == 2)
            return 0;
        if (rc == CURLE_OK && code / 100 == 4) {
            fprintf(stderr, "pcfeed: HTTP %ld\n", code);
            return -1;
        }
        usleep(200000); /* promcast restarting: retry like Prometheus would */
    }
    return -1;
}

/* Encode and post one batch; 0, or 1 when it could not be delivered. */
static int flush(CURL *c, struct wire_encoder *enc, const struct wire_series *ws, size_t n,
                 uint64_t *sent)
{
    const void *body;
    size_t len;
    if (wire_encode_write(enc, WIRE_PROTO_V1, ws, n, &body, &len) < 0 || post(c, body, len) < 0)
        return 1;
    *sent += n;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: pcfeed URL --series N --from MS --to MS --interval MS ...\n");
        return 2;
    }
    const char *url = argv[1];
    size_t nseries = 10;
    int64_t from = wall_ms(), to = from + 60000, interval = 15000, period = 86400000;
    double amplitude = 10, base = 100;
    const char *shape = "sine", *name = "pcfeed_value";
    bool realtime = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--realtime") == 0) {
            realtime = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "pcfeed: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--series") == 0)
            nseries = strtoull(v, NULL, 10);
        else if (strcmp(a, "--from") == 0)
            from = strtoll(v, NULL, 10);
        else if (strcmp(a, "--to") == 0)
            to = strtoll(v, NULL, 10);
        else if (strcmp(a, "--interval") == 0)
            interval = strtoll(v, NULL, 10);
        else if (strcmp(a, "--period") == 0)
            period = strtoll(v, NULL, 10);
        else if (strcmp(a, "--amplitude") == 0)
            amplitude = strtod(v, NULL);
        else if (strcmp(a, "--base") == 0)
            base = strtod(v, NULL);
        else if (strcmp(a, "--shape") == 0)
            shape = v;
        else if (strcmp(a, "--name") == 0)
            name = v;
        else {
            fprintf(stderr, "pcfeed: unknown flag %s\n", a);
            return 2;
        }
    }
    if (nseries == 0 || interval <= 0 || period <= 0) {
        fprintf(stderr, "pcfeed: bad arguments\n");
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/x-protobuf");
    h = curl_slist_append(h, "Content-Encoding: snappy");
    h = curl_slist_append(h, "X-Prometheus-Remote-Write-Version: 0.1.0");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);

    char(*vals)[16] = calloc(nseries, sizeof *vals);
    struct label(*labels)[3] = calloc(nseries, sizeof *labels);
    for (size_t k = 0; k < nseries; k++) {
        snprintf(vals[k], sizeof vals[k], "%u", (unsigned)k);
        labels[k][0] = (struct label){"__name__", name, 8, (uint32_t)strlen(name)};
        labels[k][1] = (struct label){"job", "pcfeed", 3, 6};
        labels[k][2] = (struct label){"series", vals[k], 6, (uint32_t)strlen(vals[k])};
    }
    size_t batch = 2000;
    struct wire_series *ws = calloc(batch, sizeof *ws);
    struct sample *smp = calloc(batch, sizeof *smp);
    struct wire_encoder *enc = wire_encoder_create(64u << 20);
    uint64_t sent = 0;
    int rc = 0;
    size_t nb = 0;
    for (int64_t t = from; t < to && !stop && rc == 0; t += interval) {
        if (realtime)
            while (!stop && wall_ms() < t)
                usleep(20000);
        for (size_t k = 0; k < nseries && rc == 0; k++) {
            double x = strcmp(shape, "ramp") == 0
                           ? base + (double)(t - from) / 1000.0 + (double)k
                           : base +
                                 amplitude * sin(2 * M_PI * (double)(t % period) / (double)period) +
                                 (double)k;
            smp[nb] = (struct sample){t, x};
            ws[nb] = (struct wire_series){
                .labels = labels[k], .nlabels = 3, .samples = &smp[nb], .nsamples = 1};
            nb++;
            bool last = k == nseries - 1;
            if (nb == batch || (last && (realtime || t + interval >= to))) {
                rc = flush(c, enc, ws, nb, &sent);
                nb = 0;
            }
        }
    }
    if (nb > 0 && rc == 0)
        rc = flush(c, enc, ws, nb, &sent);
    printf("%" PRIu64 "\n", sent);
    wire_encoder_destroy(enc);
    free(ws);
    free(smp);
    free(vals);
    free(labels);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    return rc;
}
