/*
 * main.c — command line, module wiring, start and stop order.
 *
 * Subcommands: (none) runs the daemon; `check-config FILE`; `backtest ...`;
 * `--version`; `--help`. The daemon owns the current configuration (swapped
 * on SIGHUP or POST /-/reload; a bad file keeps the running one), the signal
 * loop, and the housekeeping timer thread. Nothing else lives here: modules do
 * the work, main only starts them in dependency order and stops them in
 * reverse.
 */
#include "backtest.h"
#include "clock.h"
#include "config.h"
#include "http.h"
#include "limits.h"
#include "log.h"
#include "selfmetrics.h"
#include "series.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct flags {
    const char *config_file; /* NULL: embedded default */
    const char *listen_address;
    const char *log_level;
    const char *log_format;
    unsigned web_threads;
};

struct daemon {
    struct flags flags;
    pthread_mutex_t cfg_lock; /* guards cfg pointer swaps; reloads serialise on reload_lock */
    pthread_mutex_t reload_lock;
    struct config *cfg;
    struct series_index *series;
    struct http_server *http;
    struct selfmetrics *metrics;
    struct selfmetrics_gauge *reload_ok, *reload_time;
    struct selfmetrics_counter *reloads_failed;
    struct selfmetrics_counter *evicted;
    _Atomic bool ready;

    pthread_t timer;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stopping;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: promcast [flags]                  run the sidecar\n"
            "       promcast check-config FILE        validate a configuration file\n"
            "       promcast backtest [flags]         replay history through the models "
            "(see promcast backtest --help)\n"
            "       promcast --version\n"
            "\n"
            "flags:\n"
            "  --config.file=FILE          configuration file (default: the embedded default "
            "config,\n"
            "                              which models every series and writes back to\n"
            "                              http://127.0.0.1:9090/api/v1/write)\n"
            "  --web.listen-address=ADDR   address to serve HTTP on (default :9201; port 0 picks "
            "one)\n"
            "  --web.threads=N             HTTP worker threads (default: number of CPUs)\n"
            "  --log.level=LEVEL           debug, info, warn, error (default info)\n"
            "  --log.format=FORMAT         logfmt or json (default logfmt)\n"
            "  --help                      this text\n"
            "  --version                   print the version\n");
}

/* Accept --name=value and --name value. Returns the value or NULL. */
static const char *flag_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] == '\0' && *i + 1 < argc) {
        (*i)++;
        return argv[*i];
    }
    return NULL;
}

static int parse_flags(int argc, char **argv, struct flags *f)
{
    f->listen_address = ":9201";
    f->log_level = "info";
    f->log_format = "logfmt";
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = flag_value(argc, argv, &i, "--config.file"))) {
            f->config_file = v;
        } else if ((v = flag_value(argc, argv, &i, "--web.listen-address"))) {
            f->listen_address = v;
        } else if ((v = flag_value(argc, argv, &i, "--web.threads"))) {
            char *end;
            unsigned long n = strtoul(v, &end, 10);
            if (*end || n > 1024) {
                fprintf(stderr, "promcast: --web.threads: invalid value %s\n", v);
                return -1;
            }
            f->web_threads = (unsigned)n;
        } else if ((v = flag_value(argc, argv, &i, "--log.level"))) {
            f->log_level = v;
        } else if ((v = flag_value(argc, argv, &i, "--log.format"))) {
            f->log_format = v;
        } else {
            fprintf(stderr, "promcast: unknown flag or missing value: %s (see --help)\n", argv[i]);
            return -1;
        }
    }
    if (log_parse_level(f->log_level) < 0) {
        fprintf(stderr, "promcast: --log.level: want debug|info|warn|error, got %s\n",
                f->log_level);
        return -1;
    }
    if (log_parse_format(f->log_format) < 0) {
        fprintf(stderr, "promcast: --log.format: want logfmt|json, got %s\n", f->log_format);
        return -1;
    }
    return 0;
}

/* ---- configuration ownership --------------------------------------------- */

static struct config *load_config(const struct flags *f, char *err, size_t errcap)
{
    int nerr = 0;
    if (f->config_file)
        return config_load_file(f->config_file, err, errcap, &nerr);
    return config_load_string("<embedded>", config_default_yaml, strlen(config_default_yaml), err,
                              errcap, &nerr);
}

static const struct config *hook_config_acquire(void *ctx)
{
    struct daemon *d = ctx;
    pthread_mutex_lock(&d->cfg_lock);
    struct config *c = config_retain(d->cfg);
    pthread_mutex_unlock(&d->cfg_lock);
    return c;
}

static void hook_config_release(void *ctx, const struct config *c)
{
    (void)ctx;
    config_release((struct config *)c);
}

static void limits_from_config(const struct config *c, struct http_limits *hl,
                               struct series_index_opts *so)
{
    const struct config_limits *l = &c->limits;
    *hl = (struct http_limits){
        .max_compressed_request_bytes = l->max_compressed_request_bytes,
        .max_request_bytes = l->max_request_bytes,
        .max_series_per_request = l->max_series_per_request,
        .max_labels_per_series = l->max_labels_per_series,
        .max_label_name_length = l->max_label_name_length,
        .max_label_value_length = l->max_label_value_length,
        .max_inflight_requests = l->max_inflight_requests,
    };
    series_index_opts_default(so);
    series_index_opts_from_config(so, c);
}

/* Apply a freshly loaded config to the running modules, then make it current. */
static void install_config(struct daemon *d, struct config *c)
{
    struct http_limits hl;
    struct series_index_opts so;
    limits_from_config(c, &hl, &so);
    series_index_set_limits(d->series, &so);
    series_index_set_rules(d->series, c);
    if (d->http)
        http_server_set_limits(d->http, &hl);
    pthread_mutex_lock(&d->cfg_lock);
    struct config *old = d->cfg;
    d->cfg = c;
    pthread_mutex_unlock(&d->cfg_lock);
    config_release(old);
}

static int reload(struct daemon *d, char *err, size_t errcap)
{
    pthread_mutex_lock(&d->reload_lock);
    struct config *c = load_config(&d->flags, err, errcap);
    int rc = -1;
    if (c) {
        install_config(d, c);
        selfmetrics_gauge_set(d->reload_ok, 1);
        selfmetrics_gauge_set(d->reload_time, (double)clock_now_ms() / 1000.0);
        log_info("configuration reloaded", "file",
                 d->flags.config_file ? d->flags.config_file : "<embedded>");
        rc = 0;
    } else {
        selfmetrics_gauge_set(d->reload_ok, 0);
        selfmetrics_counter_inc(d->reloads_failed);
        /* Keep only the first line for the log; the HTTP reply gets them all. */
        char first[512];
        snprintf(first, sizeof first, "%.*s", (int)strcspn(err, "\n"), err);
        log_error("configuration reload failed; keeping the running configuration", "err", first);
    }
    pthread_mutex_unlock(&d->reload_lock);
    return rc;
}

static int hook_reload(void *ctx, char *err, size_t errcap)
{
    return reload(ctx, err, errcap);
}

static bool hook_ready(void *ctx, char *why, size_t whycap)
{
    struct daemon *d = ctx;
    if (atomic_load(&d->ready))
        return true;
    snprintf(why, whycap, "promcast is starting");
    return false;
}

static double metric_series_active(void *ctx)
{
    return (double)series_index_count(ctx);
}

static double metric_series_modelled(void *ctx)
{
    return (double)series_index_modelled(ctx);
}

static double metric_series_bytes(void *ctx)
{
    return (double)series_index_memory_bytes(ctx);
}

/* ---- housekeeping timer --------------------------------------------------- */

/* Named periodic jobs, Redis serverCron style: the thread wakes every second
 * and runs each job whose period has elapsed. */
static void *timer_main(void *arg)
{
    struct daemon *d = arg;
    int64_t last_evict = clock_mono_ms();
    pthread_mutex_lock(&d->stop_lock);
    while (!d->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&d->stop_cond, &d->stop_lock, &ts);
        if (d->stopping)
            break;
        pthread_mutex_unlock(&d->stop_lock);

        const struct config *c = hook_config_acquire(d);
        int64_t ttl = c->limits.series_idle_ttl_ms;
        config_release((struct config *)c);
        /* Sweep a few times per TTL so a series lives at most ~1.25 TTL. */
        int64_t period = ttl / 4;
        if (period < 1000)
            period = 1000;
        if (period > 60000)
            period = 60000;
        int64_t now = clock_mono_ms();
        if (now - last_evict >= period) {
            last_evict = now;
            size_t n = series_index_evict_idle(d->series, clock_now_ms());
            selfmetrics_counter_add(d->evicted, n);
            if (n) {
                char buf[24];
                log_debug("evicted idle series", "count", log_fmt_u64(buf, sizeof buf, n));
            }
        }
        pthread_mutex_lock(&d->stop_lock);
    }
    pthread_mutex_unlock(&d->stop_lock);
    return NULL;
}

/* ---- daemon ---------------------------------------------------------------- */

static int run_daemon(struct flags *f)
{
    struct daemon d = {.flags = *f};
    char err[8192];
    int rc = 1;

    log_setup((enum log_level)log_parse_level(f->log_level),
              (enum log_format)log_parse_format(f->log_format));

    /* Signals are handled synchronously by this thread (sigwait); block them
     * before any thread starts so every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    pthread_mutex_init(&d.cfg_lock, NULL);
    pthread_mutex_init(&d.reload_lock, NULL);
    pthread_mutex_init(&d.stop_lock, NULL);
    pthread_cond_init(&d.stop_cond, NULL);

    struct config *cfg = load_config(f, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s", err);
        log_error("cannot load configuration", "file",
                  f->config_file ? f->config_file : "<embedded>");
        return 1;
    }
    log_info("starting promcast", "version", PROMCAST_VERSION, "config",
             f->config_file ? f->config_file : "<embedded>");

    d.metrics = selfmetrics_default();
    if (!d.metrics) {
        log_error("out of memory");
        config_release(cfg);
        return 1;
    }
    d.reload_ok = selfmetrics_simple_gauge(d.metrics, "promcast_config_last_reload_successful",
                                           "Whether the last configuration reload succeeded.");
    d.reload_time =
        selfmetrics_simple_gauge(d.metrics, "promcast_config_last_reload_success_timestamp_seconds",
                                 "Timestamp of the last successful configuration reload.");
    d.reloads_failed =
        selfmetrics_simple_counter(d.metrics, "promcast_config_reload_failures_total",
                                   "Configuration reloads that were rejected.");
    d.evicted = selfmetrics_simple_counter(d.metrics, "promcast_series_evicted_total",
                                           "Series removed from the index after series_idle_ttl "
                                           "without samples.");
    selfmetrics_gauge_set(d.reload_ok, 1);
    selfmetrics_gauge_set(d.reload_time, (double)clock_now_ms() / 1000.0);

    struct http_limits hl;
    struct series_index_opts so;
    limits_from_config(cfg, &hl, &so);
    d.series = series_index_create(&so);
    if (!d.series) {
        log_error("cannot create the series index");
        config_release(cfg);
        return 1;
    }
    d.cfg = cfg;
    series_index_set_rules(d.series, cfg);
    selfmetrics_register_callback(d.metrics, SELFMETRICS_GAUGE, "promcast_series_active",
                                  "Series in the index (seen within series_idle_ttl).",
                                  metric_series_active, d.series);
    selfmetrics_register_callback(d.metrics, SELFMETRICS_GAUGE, "promcast_series_modelled",
                                  "Series matched by a rule and modelled.", metric_series_modelled,
                                  d.series);
    selfmetrics_register_callback(d.metrics, SELFMETRICS_GAUGE, "promcast_series_index_bytes",
                                  "Memory held by the series index (labels, entries, tables).",
                                  metric_series_bytes, d.series);

    struct http_server_opts ho = {
        .listen_address = f->listen_address,
        .threads = f->web_threads,
        .max_connections = (unsigned)cfg->limits.max_connections,
        .connection_timeout_ms = cfg->limits.request_timeout_ms,
        .limits = hl,
    };
    struct http_hooks hooks = {
        .ctx = &d,
        .reload = hook_reload,
        .ready = hook_ready,
        .config_acquire = hook_config_acquire,
        .config_release = hook_config_release,
    };
    d.http = http_server_create(&ho, d.series, d.metrics, &hooks, err, sizeof err);
    if (!d.http) {
        log_error("cannot start the HTTP server", "err", err);
        goto out;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", http_server_port(d.http));
    log_info("listening", "address", f->listen_address, "port", port);

    if (pthread_create(&d.timer, NULL, timer_main, &d) != 0) {
        log_error("cannot start the timer thread");
        goto out_http;
    }
    atomic_store(&d.ready, true);

    for (;;) {
        int sig;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload(&d, err, sizeof err);
            continue;
        }
        log_info("shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    rc = 0;
    atomic_store(&d.ready, false);
    pthread_mutex_lock(&d.stop_lock);
    d.stopping = true;
    pthread_cond_broadcast(&d.stop_cond);
    pthread_mutex_unlock(&d.stop_lock);
    pthread_join(d.timer, NULL);
out_http:
    http_server_destroy(d.http);
out:
    series_index_destroy(d.series);
    config_release(d.cfg);
    pthread_mutex_destroy(&d.cfg_lock);
    pthread_mutex_destroy(&d.reload_lock);
    pthread_mutex_destroy(&d.stop_lock);
    pthread_cond_destroy(&d.stop_cond);
    log_info("stopped");
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
            printf("promcast, version %s\n", PROMCAST_VERSION);
            return 0;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
            strcmp(argv[1], "help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[1], "check-config") == 0) {
            if (argc != 3) {
                fprintf(stderr, "usage: promcast check-config FILE\n");
                return 2;
            }
            return config_check_file(argv[2], stdout);
        }
        if (strcmp(argv[1], "backtest") == 0)
            return backtest_main(argc - 1, argv + 1);
    }
    struct flags f = {0};
    if (parse_flags(argc, argv, &f) < 0)
        return 2;
    return run_daemon(&f);
}
