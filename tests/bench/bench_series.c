/*
 * bench_series.c — `promcast-bench series`: cost of the series index.
 *
 *   promcast-bench series [--series N] [--rounds R] [--shape node|ksm]
 *                         [--threads T] [--shards S] [--batch B]
 *
 * Builds N label sets of the benchmark shape (node-exporter: 10 labels;
 * ksm: kube-state-metrics with a 36-byte uid), inserts them, then ingests R
 * rounds of one sample per series in a shuffled order, in batches of B series
 * whose label bytes are first copied into a "request buffer" (untimed), as a
 * decoder would leave them, through series_ingest_batch() (or one
 * series_ingest() call per series with --single). Reports CPU time (thread CPU clock) per insert
 * and per warm sample, the hash alone, bytes per series by the index's own
 * accounting and by RSS delta. Measures only; never passes or fails on time.
 */
#include "labels.h"
#include "series.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int bench_series_main(int argc, char **argv);

#define B_LABELS 10

/* One label set as a decoder produces it: offsets into a byte string. */
struct bset {
    uint32_t off, len; /* bytes in the pool */
    uint8_t n;
    uint16_t nl[B_LABELS], vl[B_LABELS];
};

struct bench {
    unsigned nseries, rounds, threads, shards, batch;
    int ksm, single;
    char *pool; /* label bytes of every set, back to back */
    struct bset *sets;
    unsigned *order; /* shuffled series order per thread slice */
    struct series_index *idx;
};

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void shuffle(unsigned *a, unsigned n, uint64_t *rng)
{
    for (unsigned k = n - 1; k > 0; k--) {
        unsigned j = (unsigned)(rng_next(rng) % (k + 1)), t = a[k];
        a[k] = a[j];
        a[j] = t;
    }
}

static size_t make_set(char *buf, struct bset *s, unsigned k, int ksm, uint64_t *rng)
{
    char v[B_LABELS][64];
    const char *names[B_LABELS];
    unsigned n;
    if (!ksm) {
        static const char *nn[] = {"__name__", "container", "cpu",       "endpoint", "instance",
                                   "job",      "mode",      "namespace", "pod",      "service"};
        static const char *modes[] = {"idle", "user", "system", "iowait"};
        memcpy(names, nn, sizeof nn);
        n = 10;
        snprintf(v[0], 64, "node_cpu_seconds_total");
        snprintf(v[1], 64, "node-exporter");
        snprintf(v[2], 64, "%u", k % 16);
        snprintf(v[3], 64, "metrics");
        snprintf(v[4], 64, "10.0.%u.%u:9100", (k / 64) / 250, (k / 64) % 250);
        snprintf(v[5], 64, "node-exporter");
        snprintf(v[6], 64, "%s", modes[(k / 16) % 4]);
        snprintf(v[7], 64, "monitoring");
        snprintf(v[8], 64, "node-exporter-%05x", (k / 64) * 2654435761u % 0xfffff);
        snprintf(v[9], 64, "node-exporter");
    } else {
        static const char *nn[] = {"__name__",  "container", "endpoint", "instance", "job",
                                   "namespace", "pod",       "service",  "uid"};
        memcpy(names, nn, sizeof nn);
        n = 9;
        uint64_t a = rng_next(rng), b = rng_next(rng);
        snprintf(v[0], 64, "kube_pod_container_status_restarts_total");
        snprintf(v[1], 64, "app-%u", k % 3);
        snprintf(v[2], 64, "http");
        snprintf(v[3], 64, "10.0.3.17:8080");
        snprintf(v[4], 64, "kube-state-metrics");
        snprintf(v[5], 64, "team-%u", (k / 3) % 40);
        snprintf(v[6], 64, "web-%08x-%05x", (unsigned)(k / 3) * 2654435761u, (unsigned)(a >> 40));
        snprintf(v[7], 64, "kube-state-metrics");
        snprintf(v[8], 64, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32),
                 (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xffff, (unsigned)(b >> 48),
                 (unsigned long long)(b & 0xffffffffffffull));
    }
    size_t len = 0;
    s->n = (uint8_t)n;
    for (unsigned i = 0; i < n; i++) {
        size_t nl = strlen(names[i]), vl = strlen(v[i]);
        memcpy(buf + len, names[i], nl);
        memcpy(buf + len + nl, v[i], vl);
        s->nl[i] = (uint16_t)nl;
        s->vl[i] = (uint16_t)vl;
        len += nl + vl;
    }
    s->len = (uint32_t)len;
    return len;
}

/* Point labels at a copy of set k's bytes in `req` (the request buffer). */
static size_t set_labels(const struct bench *b, unsigned k, char *req, struct label *l)
{
    const struct bset *s = &b->sets[k];
    memcpy(req, b->pool + s->off, s->len);
    size_t off = 0;
    for (unsigned i = 0; i < s->n; i++) {
        l[i].name = req + off;
        l[i].name_len = s->nl[i];
        off += s->nl[i];
        l[i].value = req + off;
        l[i].value_len = s->vl[i];
        off += s->vl[i];
    }
    return s->n;
}

struct thread_arg {
    struct bench *b;
    unsigned lo, hi; /* slice of b->order */
    double cpu;
    uint64_t ingests;
    struct series_ingest_stats st;
};

/* R rounds over the slice, batch by batch; only series_ingest is timed. */
static void *ingest_rounds(void *arg)
{
    struct thread_arg *ta = arg;
    struct bench *b = ta->b;
    unsigned batch = b->batch;
    char *req = malloc((size_t)batch * 512);
    struct label *labels = malloc((size_t)batch * B_LABELS * sizeof *labels);
    size_t *nl = malloc(batch * sizeof *nl);
    struct series_input *in = malloc(batch * sizeof *in);
    if (!req || !labels || !nl || !in)
        goto out;
    for (unsigned r = 1; r <= b->rounds; r++) {
        for (unsigned i = ta->lo; i < ta->hi; i += batch) {
            unsigned m = ta->hi - i < batch ? ta->hi - i : batch;
            for (unsigned j = 0; j < m; j++)
                nl[j] = set_labels(b, b->order[i + j], req + (size_t)j * 512,
                                   labels + (size_t)j * B_LABELS);
            struct sample x = {(int64_t)r * 15000, (double)r};
            for (unsigned j = 0; j < m; j++)
                in[j] = (struct series_input){labels + (size_t)j * B_LABELS, nl[j], &x, 1};
            double t0 = cpu_now();
            if (b->single)
                for (unsigned j = 0; j < m; j++)
                    series_ingest(b->idx, in[j].labels, in[j].n, &x, 1, r, &ta->st);
            else
                series_ingest_batch(b->idx, in, m, r, &ta->st);
            ta->cpu += cpu_now() - t0;
            ta->ingests += m;
        }
    }
out:
    free(req);
    free(labels);
    free(nl);
    free(in);
    return NULL;
}

static int parse_args(struct bench *b, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--shape") == 0 && v) {
            b->ksm = strcmp(v, "ksm") == 0;
        } else if (strcmp(a, "--single") == 0) {
            b->single = 1;
            continue;
        } else if (v && strcmp(a, "--series") == 0) {
            b->nseries = (unsigned)strtoul(v, NULL, 10);
        } else if (v && strcmp(a, "--rounds") == 0) {
            b->rounds = (unsigned)strtoul(v, NULL, 10);
        } else if (v && strcmp(a, "--threads") == 0) {
            b->threads = (unsigned)strtoul(v, NULL, 10);
        } else if (v && strcmp(a, "--shards") == 0) {
            b->shards = (unsigned)strtoul(v, NULL, 10);
        } else if (v && strcmp(a, "--batch") == 0) {
            b->batch = (unsigned)strtoul(v, NULL, 10);
        } else {
            fprintf(stderr,
                    "usage: promcast-bench series [--series N] [--rounds R] [--shape node|ksm]"
                    " [--threads T] [--shards S] [--batch B] [--single]\n");
            return -1;
        }
        i++;
    }
    if (b->nseries == 0 || b->rounds == 0 || b->threads == 0 || b->threads > 64 || b->batch == 0)
        return -1;
    return 0;
}

int bench_series_main(int argc, char **argv)
{
    struct bench b = {100000, 20, 1, 0, 500, 0, 0, NULL, NULL, NULL, NULL};
    int rc = 1;
    if (parse_args(&b, argc, argv) < 0)
        return 2;
    b.pool = malloc((size_t)b.nseries * 512);
    b.sets = malloc(b.nseries * sizeof *b.sets);
    b.order = malloc(b.nseries * sizeof *b.order);
    if (!b.pool || !b.sets || !b.order)
        goto out;
    uint64_t rng = 42;
    size_t off = 0;
    for (unsigned k = 0; k < b.nseries; k++) {
        b.sets[k].off = (uint32_t)off;
        off += make_set(b.pool + off, &b.sets[k], k, b.ksm, &rng);
        b.order[k] = k;
    }
    shuffle(b.order, b.nseries, &rng);
    double raw = (double)off / b.nseries;

    /* labels_hash() alone, over a hot request buffer, for reference (the
     * index uses its own seeded hash, timed as part of ingest). */
    char req[512];
    struct label l[B_LABELS];
    uint64_t sink = 0;
    double t0 = cpu_now();
    for (unsigned k = 0; k < b.nseries; k += 64) {
        size_t n = set_labels(&b, b.order[k], req, l);
        for (int rep = 0; rep < 64; rep++)
            sink += labels_hash(l, n);
    }
    double hash_ns = (cpu_now() - t0) / ((b.nseries + 63) / 64 * 64) * 1e9;

    long rss0 = rss_kib();
    struct series_index_opts o;
    series_index_opts_default(&o);
    o.nshards = b.shards;
    o.max_active_series = (size_t)b.nseries * 2;
    o.max_modelled_series = (size_t)b.nseries * 2;
    b.idx = series_index_create(&o);
    if (!b.idx)
        goto out;
    size_t mem0 = series_index_memory_bytes(b.idx);

    /* Inserts, in shuffled order (copying each set into req is included:
     * it is a few ns next to an insert). */
    struct series_ingest_stats st = {0};
    t0 = cpu_now();
    for (unsigned k = 0; k < b.nseries; k++) {
        size_t n = set_labels(&b, b.order[k], req, l);
        struct sample x = {0, 0};
        series_ingest(b.idx, l, n, &x, 1, 0, &st);
    }
    double insert_ns = (cpu_now() - t0) / b.nseries * 1e9;
    long rss1 = rss_kib();
    size_t mem1 = series_index_memory_bytes(b.idx);

    /* Ingest in another order than inserted, so entries are not visited in
     * allocation order (which the prefetcher would hide). */
    shuffle(b.order, b.nseries, &rng);

    /* Warm ingest of existing series, T threads on disjoint slices. */
    struct thread_arg ta[64];
    pthread_t th[64];
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    for (unsigned t = 0; t < b.threads; t++) {
        memset(&ta[t], 0, sizeof ta[t]);
        ta[t].b = &b;
        ta[t].lo = (unsigned)((uint64_t)b.nseries * t / b.threads);
        ta[t].hi = (unsigned)((uint64_t)b.nseries * (t + 1) / b.threads);
        pthread_create(&th[t], NULL, ingest_rounds, &ta[t]);
    }
    double cpu = 0;
    uint64_t ingests = 0, accepted = 0;
    for (unsigned t = 0; t < b.threads; t++) {
        pthread_join(th[t], NULL);
        cpu += ta[t].cpu;
        ingests += ta[t].ingests;
        accepted += ta[t].st.accepted;
    }
    clock_gettime(CLOCK_MONOTONIC, &w1);
    double wall = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;

    /* The sweep: a pass that finds nothing idle, then one that evicts all.
     * Each holds one shard lock at a time: total / shards is the typical
     * stall an ingest thread can see. */
    t0 = cpu_now();
    size_t none = series_index_evict_idle(b.idx, 0);
    double sweep_none = cpu_now() - t0;
    t0 = cpu_now();
    size_t evicted = series_index_evict_idle(b.idx, INT64_MAX / 2);
    double sweep_all = cpu_now() - t0;
    unsigned nsh = b.shards ? b.shards : SERIES_DEFAULT_SHARDS;

    printf("series index bench: shape=%s series=%u rounds=%u threads=%u shards=%u batch=%u"
           " api=%s\n",
           b.ksm ? "ksm" : "node", b.nseries, b.rounds, b.threads,
           b.shards ? b.shards : SERIES_DEFAULT_SHARDS, b.batch,
           b.single ? "series_ingest" : "series_ingest_batch");
    printf("  label bytes per set (names+values)  %.1f\n", raw);
    printf("  labels_hash alone (for reference)   %.1f ns/series\n", hash_ns);
    printf("  insert new series                   %.1f ns/series\n", insert_ns);
    printf("  ingest existing series, 1 sample    %.1f ns/sample (CPU, %llu samples, "
           "%llu accepted)\n",
           cpu / (double)ingests * 1e9, (unsigned long long)ingests, (unsigned long long)accepted);
    printf("  ingest wall throughput              %.0f samples/s (incl. untimed buffer copies)\n",
           (double)ingests / wall);
    printf("  memory by accounting                %.1f bytes/series (%zu total)\n",
           (double)(mem1 - mem0) / b.nseries, mem1);
    printf("  memory by RSS delta                 %.1f bytes/series\n",
           (double)(rss1 - rss0) * 1024.0 / b.nseries);
    printf("  sweep, nothing idle                 %.2f ms (%.1f us per shard lock)\n",
           sweep_none * 1e3, sweep_none * 1e6 / nsh);
    printf("  sweep, evicting all %-6zu           %.2f ms (%.1f us per shard lock), "
           "%zu bytes left\n",
           evicted, sweep_all * 1e3, sweep_all * 1e6 / nsh, series_index_memory_bytes(b.idx));
    printf("  (sink %llu, %zu)\n", (unsigned long long)(sink & 1), none);
    rc = 0;
out:
    series_index_destroy(b.idx);
    free(b.pool);
    free(b.sets);
    free(b.order);
    return rc;
}
