/*
 * bench_ingest.c — `promcast-bench ingest`: remote-write ingest throughput,
 * promcast side by side with Prometheus's own receiver, same payloads, same
 * machine, same invocation.
 *
 * It generates realistic label sets (node-exporter and kube-state-metrics
 * families, ~10 labels each), pre-encodes every request (2000 samples each by
 * default, timestamps advancing by 10 s per round so nothing is a duplicate),
 * starts each server itself on 127.0.0.1 (promcast on port 0; Prometheus with
 * --web.enable-remote-write-receiver), sends round 0 (series creation), then
 * the remaining rounds over N keep-alive connections, and reports:
 *   - samples per server CPU-second (utime+stime of the server process from
 *     /proc, so the client's own CPU use does not count),
 *   - samples per wall second, p50/p99 request latency,
 *   - server RSS, and bytes per active series (RSS delta; for promcast also
 *     its own index accounting).
 * Each batch index is always sent by the same connection, in round order, so
 * per-series time order holds (Prometheus rejects out-of-order samples).
 * Measures; never decides pass or fail.
 */
#include "wire_write.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int bench_ingest_main(int argc, char **argv);

struct opts {
    const char *promcast_bin;
    const char *prometheus_bin;
    size_t series;
    size_t batch;
    size_t rounds;
    unsigned connections;
    bool v2;
    bool skip_prometheus;
    bool model; /* model every series (default: decode + index only) */
};

struct body {
    void *data;
    size_t len;
};

/* ---- label sets ------------------------------------------------------------ */

struct gen_series {
    struct label labels[12];
    uint32_t n;
};

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        perror("strdup");
        exit(1);
    }
    return d;
}

static void set_label(struct gen_series *s, const char *name, const char *value)
{
    s->labels[s->n].name = name;
    s->labels[s->n].name_len = (uint32_t)strlen(name);
    s->labels[s->n].value = xstrdup(value);
    s->labels[s->n].value_len = (uint32_t)strlen(value);
    s->n++;
}

/* Deterministic realistic label sets: 60% node-exporter families (per node,
 * per cpu/mode/device), 40% kube-state-metrics families (per pod/container
 * with a 36-char uid). Label names sorted as the wire requires. */
static struct gen_series *make_series(size_t n)
{
    static const char *node_metrics[] = {
        "node_cpu_seconds_total",           "node_disk_read_bytes_total",
        "node_network_receive_bytes_total", "node_filesystem_avail_bytes",
        "node_memory_MemAvailable_bytes",   "node_disk_io_time_seconds_total"};
    static const char *modes[] = {"idle",    "iowait", "irq",    "nice",
                                  "softirq", "steal",  "system", "user"};
    static const char *ksm_metrics[] = {
        "kube_pod_container_status_restarts_total", "kube_pod_container_resource_requests",
        "kube_pod_status_phase", "container_memory_working_set_bytes"};
    static const char *namespaces[] = {"default", "monitoring", "kube-system", "payments",
                                       "search",  "checkout",   "ml-serving",  "ingress"};
    struct gen_series *out = calloc(n, sizeof *out);
    char buf[128];
    for (size_t i = 0; i < n; i++) {
        struct gen_series *s = &out[i];
        if (i % 10 < 6) {
            size_t node = (i / 48) % 4096;
            const char *metric = node_metrics[(i / 8) % 6];
            set_label(s, "__name__", metric);
            set_label(s, "container", "node-exporter");
            snprintf(buf, sizeof buf, "%zu", i % 48 / 8);
            set_label(s, "cpu", buf);
            set_label(s, "endpoint", "metrics");
            snprintf(buf, sizeof buf, "10.%zu.%zu.%zu:9100", node / 65536 % 256, node / 256 % 256,
                     node % 256);
            set_label(s, "instance", buf);
            set_label(s, "job", "node-exporter");
            set_label(s, "mode", modes[i % 8]);
            set_label(s, "namespace", "monitoring");
            snprintf(buf, sizeof buf, "node-exporter-%05zx", node * 2654435761u % 0xfffff);
            set_label(s, "pod", buf);
            set_label(s, "service", "node-exporter");
        } else {
            size_t pod = i / 4;
            set_label(s, "__name__", ksm_metrics[i % 4]);
            snprintf(buf, sizeof buf, "app-%zu", pod % 97);
            set_label(s, "container", buf);
            set_label(s, "endpoint", "http");
            set_label(s, "instance", "10.0.3.17:8080");
            set_label(s, "job", "kube-state-metrics");
            set_label(s, "namespace", namespaces[pod % 8]);
            snprintf(buf, sizeof buf, "app-%zu-%08zx-%05zx", pod % 97,
                     pod * 2246822519u % 0xffffffff, pod % 0xfffff);
            set_label(s, "pod", buf);
            set_label(s, "service", "kube-state-metrics");
            snprintf(buf, sizeof buf, "%08zx-%04zx-4%03zx-a%03zx-%012zx",
                     pod * 2654435761u % 0xffffffff, pod % 0xffff, pod % 0xfff, (pod * 7) % 0xfff,
                     pod * 40503u);
            set_label(s, "uid", buf);
        }
    }
    return out;
}

/* ---- payloads -------------------------------------------------------------- */

/* bodies[round * nbatches + b] */
static struct body *encode_all(const struct opts *o, const struct gen_series *gs, int64_t base,
                               enum wire_proto proto, size_t *raw_bytes)
{
    size_t nb = (o->series + o->batch - 1) / o->batch;
    struct body *bodies = calloc(nb * o->rounds, sizeof *bodies);
    struct wire_encoder *enc = wire_encoder_create(64u << 20);
    struct wire_series *ws = calloc(o->batch, sizeof *ws);
    struct sample *samples = calloc(o->batch, sizeof *samples);
    *raw_bytes = 0;
    for (size_t r = 0; r < o->rounds; r++) {
        for (size_t b = 0; b < nb; b++) {
            size_t first = b * o->batch, n = o->series - first;
            if (n > o->batch)
                n = o->batch;
            for (size_t k = 0; k < n; k++) {
                const struct gen_series *g = &gs[first + k];
                samples[k].t = base + (int64_t)r * 10000;
                samples[k].v = (double)((first + k) % 1000) + (double)r * 0.5;
                ws[k] = (struct wire_series){.labels = (struct label *)g->labels,
                                             .nlabels = g->n,
                                             .samples = &samples[k],
                                             .nsamples = 1};
            }
            const void *out;
            size_t len;
            if (wire_encode_write(enc, proto, ws, n, &out, &len) < 0) {
                fprintf(stderr, "encode: %s\n", wire_encoder_error(enc));
                exit(1);
            }
            struct body *bd = &bodies[r * nb + b];
            bd->data = malloc(len);
            memcpy(bd->data, out, len);
            bd->len = len;
            *raw_bytes += len;
        }
    }
    free(ws);
    free(samples);
    wire_encoder_destroy(enc);
    return bodies;
}

/* ---- process inspection ---------------------------------------------------- */

static double proc_cpu_seconds(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return NAN;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return NAN;
    unsigned long utime = 0, stime = 0;
    /* fields after ')': state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return NAN;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double proc_rss_bytes(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return NAN;
    double kb = NAN;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lf kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024.0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- HTTP ------------------------------------------------------------------- */

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    size_t *total = u;
    *total += s * n;
    return s * n;
}

static size_t capture(char *p, size_t s, size_t n, void *u)
{
    struct body *b = u;
    char *d = realloc(b->data, b->len + s * n + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, p, s * n);
    b->data = d;
    b->len += s * n;
    d[b->len] = '\0';
    return s * n;
}

static char *http_get(const char *url)
{
    CURL *c = curl_easy_init();
    struct body b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, capture);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK || code != 200) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

/* Value of an unlabelled (or exactly labelled) sample on a /metrics page. */
static double scrape_value(const char *base, const char *name)
{
    char url[256];
    snprintf(url, sizeof url, "%s/metrics", base);
    char *text = http_get(url);
    if (!text)
        return NAN;
    double v = NAN;
    size_t n = strlen(name);
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            v = strtod(line + n + 1, NULL);
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return v;
}

struct driver {
    const char *url;
    enum wire_proto proto;
    struct body *bodies;
    size_t nbatches, round_from, round_to;
    unsigned conn, nconn;
    double *latencies; /* per request, indexed like bodies */
    atomic_size_t *errors;
    atomic_size_t *samples_ok;
    size_t batch, series;
};

static void *drive(void *arg)
{
    struct driver *d = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, d->proto == WIRE_PROTO_V2
                                 ? "Content-Type: application/x-protobuf;proto=io.prometheus.write."
                                   "v2.Request"
                                 : "Content-Type: application/x-protobuf");
    h = curl_slist_append(h, "Content-Encoding: snappy");
    h = curl_slist_append(h, d->proto == WIRE_PROTO_V2
                                 ? "X-Prometheus-Remote-Write-Version: 2.0.0"
                                 : "X-Prometheus-Remote-Write-Version: 0.1.0");
    h = curl_slist_append(h, "Expect:");
    size_t sink = 0;
    curl_easy_setopt(c, CURLOPT_URL, d->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "promcast-bench");
    for (size_t r = d->round_from; r < d->round_to; r++) {
        for (size_t b = d->conn; b < d->nbatches; b += d->nconn) {
            size_t i = r * d->nbatches + b;
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, d->bodies[i].data);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)d->bodies[i].len);
            double t0 = now_s();
            CURLcode rc = curl_easy_perform(c);
            d->latencies[i] = now_s() - t0;
            long code = 0;
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
            if (rc != CURLE_OK || code / 100 != 2) {
                if (atomic_fetch_add(d->errors, 1) < 3)
                    fprintf(stderr, "  request failed: %s, HTTP %ld\n",
                            rc != CURLE_OK ? curl_easy_strerror(rc) : "status", code);
            } else {
                size_t n = d->series - b * d->batch;
                atomic_fetch_add(d->samples_ok, n > d->batch ? d->batch : n);
            }
        }
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

struct phase {
    double wall, cpu, samples, p50, p99, errors;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static struct phase run_phase(const struct opts *o, const char *url, pid_t pid,
                              enum wire_proto proto, struct body *bodies, size_t from, size_t to)
{
    size_t nb = (o->series + o->batch - 1) / o->batch;
    double *lat = calloc(nb * o->rounds, sizeof *lat);
    atomic_size_t errors = 0, ok = 0;
    pthread_t th[256];
    struct driver dv[256];
    unsigned nconn = o->connections > 256 ? 256 : o->connections;
    double cpu0 = proc_cpu_seconds(pid), t0 = now_s();
    for (unsigned k = 0; k < nconn; k++) {
        dv[k] = (struct driver){url,   proto, bodies,  nb,  from,     to,       k,
                                nconn, lat,   &errors, &ok, o->batch, o->series};
        pthread_create(&th[k], NULL, drive, &dv[k]);
    }
    for (unsigned k = 0; k < nconn; k++)
        pthread_join(th[k], NULL);
    struct phase p = {.wall = now_s() - t0, .cpu = proc_cpu_seconds(pid) - cpu0};
    p.samples = (double)atomic_load(&ok);
    p.errors = (double)atomic_load(&errors);
    size_t n = (to - from) * nb;
    qsort(lat + from * nb, n, sizeof *lat, cmp_double);
    p.p50 = lat[from * nb + n / 2];
    p.p99 = lat[from * nb + (size_t)((double)(n - 1) * 0.99)];
    free(lat);
    return p;
}

/* ---- servers ---------------------------------------------------------------- */

static pid_t spawn(char *const argv[], const char *logpath)
{
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(logpath, "w", stderr);
        (void)f;
        if (!freopen("/dev/null", "w", stdout))
            _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static void stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 300; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(100000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static int free_port(void)
{
    /* Prometheus needs an explicit port; ask the kernel for one. */
    FILE *p = popen("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); "
                    "print(s.getsockname()[1])'",
                    "r");
    int port = 0;
    if (p) {
        if (fscanf(p, "%d", &port) != 1)
            port = 0;
        pclose(p);
    }
    return port;
}

static bool wait_ready(const char *base, double secs)
{
    char url[256];
    snprintf(url, sizeof url, "%s/-/ready", base);
    double end = now_s() + secs;
    while (now_s() < end) {
        char *t = http_get(url);
        if (t) {
            free(t);
            return true;
        }
        usleep(100000);
    }
    return false;
}

struct result {
    const char *name;
    struct phase create, steady;
    double rss_idle, rss_end, active, index_bytes, model_bytes;
    double request_bytes;
    bool ok;
};

static void report(const struct opts *o, const struct result *r, size_t n)
{
    printf("\n== remote-write ingest: %zu series, %zu samples/request, %zu rounds, %u "
           "connections\n",
           o->series, o->batch, o->rounds, o->connections);
    printf("%-22s", "");
    for (size_t i = 0; i < n; i++)
        printf(" %20s", r[i].name);
    printf("\n");
#define ROW(label, fmt, expr)                                                                      \
    do {                                                                                           \
        printf("%-22s", label);                                                                    \
        for (size_t i = 0; i < n; i++) {                                                           \
            if (r[i].ok)                                                                           \
                printf(" " fmt, (expr));                                                           \
            else                                                                                   \
                printf(" %20s", "failed");                                                         \
        }                                                                                          \
        printf("\n");                                                                              \
    } while (0)
    ROW("steady samples/cpu-s", "%20.0f", r[i].steady.samples / r[i].steady.cpu);
    ROW("steady samples/s", "%20.0f", r[i].steady.samples / r[i].steady.wall);
    ROW("steady p50 latency ms", "%20.2f", r[i].steady.p50 * 1e3);
    ROW("steady p99 latency ms", "%20.2f", r[i].steady.p99 * 1e3);
    ROW("create samples/cpu-s", "%20.0f", r[i].create.samples / r[i].create.cpu);
    ROW("failed requests", "%20.0f", r[i].steady.errors + r[i].create.errors);
    ROW("server RSS MiB", "%20.1f", r[i].rss_end / 1048576.0);
    ROW("active series", "%20.0f", r[i].active);
    ROW("RSS delta B/series", "%20.1f", (r[i].rss_end - r[i].rss_idle) / r[i].active);
    ROW("index B/series", "%20.1f", r[i].index_bytes / r[i].active);
    if (o->model)
        ROW("model state B/series", "%20.1f", r[i].model_bytes / r[i].active);
    ROW("avg request KiB", "%20.1f", r[i].request_bytes / 1024.0);
#undef ROW
    if (n > 1 && r[0].ok && r[n - 1].ok) {
        double a = r[0].steady.samples / r[0].steady.cpu;
        double b = r[n - 1].steady.samples / r[n - 1].steady.cpu;
        printf("ratio %s / %s (samples per CPU-second, steady): %.2fx\n", r[0].name, r[n - 1].name,
               a / b);
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: promcast-bench ingest [--promcast BIN] [--prometheus BIN] [--series N]\n"
            "         [--batch N] [--rounds N] [--connections N] [--v2] [--no-prometheus]\n"
            "         [--model]   (model every series too; default: decode + index only)\n"
            "defaults: --promcast ./promcast --prometheus prometheus --series 100000 --batch "
            "2000\n"
            "          --rounds 20 --connections 4\n");
}

int bench_ingest_main(int argc, char **argv)
{
    struct opts o = {"./promcast", "prometheus", 100000, 2000, 20, 4, false, false, false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--promcast") == 0 && v)
            o.promcast_bin = argv[++i];
        else if (strcmp(a, "--prometheus") == 0 && v)
            o.prometheus_bin = argv[++i];
        else if (strcmp(a, "--series") == 0 && v)
            o.series = strtoull(argv[++i], NULL, 10);
        else if (strcmp(a, "--batch") == 0 && v)
            o.batch = strtoull(argv[++i], NULL, 10);
        else if (strcmp(a, "--rounds") == 0 && v)
            o.rounds = strtoull(argv[++i], NULL, 10);
        else if (strcmp(a, "--connections") == 0 && v)
            o.connections = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(a, "--v2") == 0)
            o.v2 = true;
        else if (strcmp(a, "--no-prometheus") == 0)
            o.skip_prometheus = true;
        else if (strcmp(a, "--model") == 0)
            o.model = true;
        else {
            usage();
            return 2;
        }
    }
    if (o.series == 0 || o.batch == 0 || o.rounds < 2 || o.connections == 0) {
        usage();
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);

    char dir[] = "/tmp/promcast-bench.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    fprintf(stderr, "generating %zu series and %zu rounds of requests...\n", o.series, o.rounds);
    struct gen_series *gs = make_series(o.series);
    /* Recent enough for Prometheus's head (within the last hour), never in
     * the future. */
    int64_t base = (int64_t)time(NULL) * 1000 - 50 * 60 * 1000;
    size_t nb = (o.series + o.batch - 1) / o.batch;
    size_t raw_v1 = 0, raw_v2 = 0;
    struct body *v1 = encode_all(&o, gs, base, WIRE_PROTO_V1, &raw_v1);
    struct body *v2 = o.v2 ? encode_all(&o, gs, base, WIRE_PROTO_V2, &raw_v2) : NULL;

    struct result res[3];
    size_t nres = 0;

    /* promcast, v1 (and v2) */
    for (int pass = 0; pass < (o.v2 ? 2 : 1); pass++) {
        enum wire_proto proto = pass ? WIRE_PROTO_V2 : WIRE_PROTO_V1;
        struct result *r = &res[nres++];
        memset(r, 0, sizeof *r);
        r->name = pass ? "promcast (PRW 2.0)" : "promcast (PRW 1.0)";
        char cfg[512], log[512];
        snprintf(cfg, sizeof cfg, "%s/promcast.yml", dir);
        snprintf(log, sizeof log, "%s/promcast-%d.log", dir, pass);
        FILE *f = fopen(cfg, "w");
        /* Without --model no rule matches: the figure is decode + index, the
         * ingest path itself. With it every series also gets a model (5m step,
         * daily season, the default horizons) and no write-back target. */
        fprintf(f,
                "global: {step: 5m}\nstorage: {path: %s/state, snapshot_interval: 1h}\n"
                "limits: {max_active_series: %zu, max_series: %zu,\n"
                "  max_series_per_request: %zu}\nrules:%s\nremote_write: []\n",
                dir, o.series * 2, o.series * 2, o.batch * 2,
                o.model ? "\n  - {match: '{__name__=~\".+\"}', seasons: [1d]}" : " []");
        fclose(f);
        char cfgflag[600];
        snprintf(cfgflag, sizeof cfgflag, "--config.file=%s", cfg);
        char *args[] = {(char *)o.promcast_bin, cfgflag, "--web.listen-address=127.0.0.1:0",
                        "--log.level=warn", NULL};
        /* The port is in the "listening" line, which needs info level: run at
         * info and read it. */
        args[3] = "--log.level=info";
        pid_t pid = spawn(args, log);
        char base_url[64] = "";
        for (int i = 0; i < 100 && !base_url[0]; i++) {
            usleep(100000);
            FILE *lf = fopen(log, "r");
            char line[1024];
            while (lf && fgets(line, sizeof line, lf)) {
                char *p = strstr(line, "msg=listening");
                if (p && (p = strstr(line, "port=")))
                    snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d", atoi(p + 5));
            }
            if (lf)
                fclose(lf);
        }
        if (!base_url[0] || !wait_ready(base_url, 30)) {
            fprintf(stderr, "promcast did not start; see %s\n", log);
            stop(pid);
            continue;
        }
        char url[128];
        snprintf(url, sizeof url, "%s/api/v1/write", base_url);
        r->rss_idle = proc_rss_bytes(pid);
        struct body *bodies = pass ? v2 : v1;
        fprintf(stderr, "%s: round 0 (series creation)...\n", r->name);
        r->create = run_phase(&o, url, pid, proto, bodies, 0, 1);
        fprintf(stderr, "%s: rounds 1..%zu (steady state)...\n", r->name, o.rounds - 1);
        r->steady = run_phase(&o, url, pid, proto, bodies, 1, o.rounds);
        r->rss_end = proc_rss_bytes(pid);
        r->active = scrape_value(base_url, "promcast_series_active");
        r->index_bytes = scrape_value(base_url, "promcast_series_index_bytes");
        r->model_bytes = scrape_value(base_url, "promcast_model_state_bytes");
        r->request_bytes = (double)(pass ? raw_v2 : raw_v1) / (double)(nb * o.rounds);
        r->ok = true;
        stop(pid);
    }

    /* Prometheus's own receiver, v1 only (2.42 has no v2). */
    if (!o.skip_prometheus) {
        struct result *r = &res[nres++];
        memset(r, 0, sizeof *r);
        r->name = "prometheus receiver";
        int port = free_port();
        char cfg[512], log[512], tsdb[512], listen[64], cfgflag[600], tsdbflag[600];
        snprintf(cfg, sizeof cfg, "%s/prometheus.yml", dir);
        snprintf(log, sizeof log, "%s/prometheus.log", dir);
        snprintf(tsdb, sizeof tsdb, "%s/tsdb", dir);
        FILE *f = fopen(cfg, "w");
        fprintf(f, "global: {scrape_interval: 1h}\n");
        fclose(f);
        snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", port);
        snprintf(cfgflag, sizeof cfgflag, "--config.file=%s", cfg);
        snprintf(tsdbflag, sizeof tsdbflag, "--storage.tsdb.path=%s", tsdb);
        char *args[] = {(char *)o.prometheus_bin,
                        cfgflag,
                        tsdbflag,
                        listen,
                        "--web.enable-remote-write-receiver",
                        NULL};
        pid_t pid = spawn(args, log);
        char base_url[64];
        snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d", port);
        if (port == 0 || !wait_ready(base_url, 60)) {
            fprintf(stderr, "prometheus did not start; see %s\n", log);
            stop(pid);
        } else {
            char url[128];
            snprintf(url, sizeof url, "%s/api/v1/write", base_url);
            r->rss_idle = proc_rss_bytes(pid);
            fprintf(stderr, "%s: round 0 (series creation)...\n", r->name);
            r->create = run_phase(&o, url, pid, WIRE_PROTO_V1, v1, 0, 1);
            fprintf(stderr, "%s: rounds 1..%zu (steady state)...\n", r->name, o.rounds - 1);
            r->steady = run_phase(&o, url, pid, WIRE_PROTO_V1, v1, 1, o.rounds);
            r->rss_end = proc_rss_bytes(pid);
            r->active = scrape_value(base_url, "prometheus_tsdb_head_series");
            r->index_bytes = NAN;
            r->model_bytes = NAN;
            r->request_bytes = (double)raw_v1 / (double)(nb * o.rounds);
            r->ok = true;
            stop(pid);
        }
    }
    report(&o, res, nres);

    for (size_t i = 0; i < nb * o.rounds; i++) {
        free(v1[i].data);
        if (v2)
            free(v2[i].data);
    }
    free(v1);
    free(v2);
    for (size_t i = 0; i < o.series; i++)
        for (uint32_t j = 0; j < gs[i].n; j++)
            free((void *)gs[i].labels[j].value);
    free(gs);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    curl_global_cleanup();
    return 0;
}
