/*
 * main.c — command line, module wiring, start and stop order.
 *
 * Subcommands: (none) runs the daemon; `check-config FILE`; `backtest ...`;
 * `--version`; `--help`. The daemon owns the current configuration (swapped
 * on SIGHUP or POST /-/reload; a bad file keeps the running one), the signal
 * loop, and the housekeeping timer thread (flushing quiet steps, idle
 * eviction, snapshots, the output watermark). Nothing else lives here:
 * modules do the work, main starts them in dependency order and stops them in
 * reverse:
 *
 *   start: config → pipeline → series index → writers → snapshot restore →
 *          warm start → HTTP → timer
 *   stop:  HTTP → warm start → timer → final snapshot → writers (flush within
 *          storage.shutdown_timeout) → index → pipeline
 */
#include "backtest.h"
#include "clock.h"
#include "config.h"
#include "http.h"
#include "limits.h"
#include "log.h"
#include "outbound.h"
#include "pipeline.h"
#include "selfmetrics.h"
#include "series.h"
#include "snapshot.h"
#include "warmstart.h"
#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long the warm-start queue must have had the chance to fill before an
 * empty queue counts as "warm-up done" for readiness. */
#define READY_GRACE_MS 5000

struct flags {
    const char *config_file; /* NULL: embedded default */
    const char *listen_address;
    const char *log_level;
    const char *log_format;
    unsigned web_threads;
};

struct daemon {
    struct flags flags;
    struct pipeline *pipeline;
    struct warmstart *warm;
    struct writer **writers;
    size_t nwriters;
    struct config *writers_cfg; /* the config the writers were made from (retained) */
    char *storage_path;         /* fixed at start */
    int64_t started_ms;
    int64_t last_snapshot_ms;
    int64_t watermark_written;
    struct selfmetrics_counter *snapshots_ok, *snapshots_failed;
    struct selfmetrics_gauge *snapshot_time, *snapshot_records, *snapshot_seconds;
    pthread_mutex_t cfg_lock; /* guards cfg pointer swaps; reloads serialise on reload_lock */
    pthread_mutex_t reload_lock;
    struct config *cfg;
    struct series_index *series;
    struct http_server *http;
    struct selfmetrics *metrics;
    struct selfmetrics_gauge *reload_ok, *reload_time;
    struct selfmetrics_counter *reloads_failed;
    struct selfmetrics_counter *evicted;
    _Atomic bool ready;   /* latched once start-up and the first warm-up are done */
    _Atomic bool serving; /* false during start-up and shutdown */

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
        .max_read_request_bytes = l->max_read_request_bytes,
        .max_read_queries = l->max_read_queries,
        .max_read_response_bytes = l->max_read_response_bytes,
    };
    series_index_opts_default(so);
    series_index_opts_from_config(so, c);
}

/* ---- write-back targets --------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool labels_eq(const struct config_labels *a, const struct config_labels *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->names[i], b->names[i]) != 0 || strcmp(a->values[i], b->values[i]) != 0)
            return false;
    return true;
}

static bool http_client_eq(const struct config_http_client *a, const struct config_http_client *b)
{
    return str_eq(a->url, b->url) && str_eq(a->basic_auth_username, b->basic_auth_username) &&
           str_eq(a->basic_auth_password_file, b->basic_auth_password_file) &&
           str_eq(a->bearer_token_file, b->bearer_token_file) &&
           str_eq(a->tls.ca_file, b->tls.ca_file) && str_eq(a->tls.cert_file, b->tls.cert_file) &&
           str_eq(a->tls.key_file, b->tls.key_file) &&
           str_eq(a->tls.server_name, b->tls.server_name) &&
           a->tls.insecure_skip_verify == b->tls.insecure_skip_verify &&
           a->timeout_ms == b->timeout_ms && labels_eq(&a->headers, &b->headers);
}

/* Same targets with the same settings: the running writers (and what they
 * have queued) can stay. */
static bool remote_write_eq(const struct config *a, const struct config *b)
{
    if (a->n_remote_write != b->n_remote_write ||
        !labels_eq(&a->global.external_labels, &b->global.external_labels))
        return false;
    for (size_t i = 0; i < a->n_remote_write; i++) {
        const struct config_remote_write *x = &a->remote_write[i], *y = &b->remote_write[i];
        if (!http_client_eq(&x->http, &y->http) || x->protocol != y->protocol ||
            x->queue_capacity != y->queue_capacity ||
            x->max_samples_per_send != y->max_samples_per_send ||
            x->batch_send_deadline_ms != y->batch_send_deadline_ms ||
            x->batch_idle_flush_ms != y->batch_idle_flush_ms ||
            x->min_backoff_ms != y->min_backoff_ms || x->max_backoff_ms != y->max_backoff_ms ||
            x->retry_on_http_429 != y->retry_on_http_429 || x->shards != y->shards)
            return false;
    }
    return true;
}

static void writers_free(struct writer **w, size_t n, int64_t deadline_ms)
{
    for (size_t i = 0; i < n; i++)
        writer_shutdown(w[i], deadline_ms);
    for (size_t i = 0; i < n; i++)
        writer_destroy(w[i]);
    free(w);
}

static struct writer **writers_make(const struct config *c, char *err, size_t errcap)
{
    struct writer **w = calloc(c->n_remote_write ? c->n_remote_write : 1, sizeof *w);
    if (!w) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < c->n_remote_write; i++) {
        w[i] = writer_create(&c->remote_write[i], &c->global.external_labels, selfmetrics_default(),
                             err, errcap);
        if (!w[i]) {
            writers_free(w, i, clock_mono_ms());
            return NULL;
        }
    }
    return w;
}

/* Apply a freshly loaded config to the running modules, then make it
 * current. Fails (nothing changed) only when new writers cannot be made. */
static int install_config(struct daemon *d, struct config *c, char *err, size_t errcap)
{
    struct writer **old = NULL;
    size_t nold = 0;
    if (!d->writers_cfg || !remote_write_eq(d->writers_cfg, c)) {
        struct writer **w = writers_make(c, err, errcap);
        if (!w)
            return -1;
        old = d->writers;
        nold = d->nwriters;
        d->writers = w;
        d->nwriters = c->n_remote_write;
        config_release(d->writers_cfg);
        d->writers_cfg = config_retain(c);
    }
    if (pipeline_configure(d->pipeline, c, d->writers, d->nwriters) < 0) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    /* No hook uses the old writers any more: let them send what they hold. */
    if (old)
        writers_free(old, nold, clock_mono_ms() + 5000);
    struct http_limits hl;
    struct series_index_opts so;
    limits_from_config(c, &hl, &so);
    series_index_set_limits(d->series, &so);
    series_index_set_rules(d->series, c);
    if (d->http)
        http_server_set_limits(d->http, &hl);
    pthread_mutex_lock(&d->cfg_lock);
    struct config *prev = d->cfg;
    d->cfg = c;
    pthread_mutex_unlock(&d->cfg_lock);
    config_release(prev);
    return 0;
}

static int reload(struct daemon *d, char *err, size_t errcap)
{
    pthread_mutex_lock(&d->reload_lock);
    struct config *c = load_config(&d->flags, err, errcap);
    int rc = -1;
    if (c && install_config(d, c, err, errcap) < 0) {
        config_release(c);
        c = NULL;
    }
    if (c) {
        selfmetrics_gauge_set(d->reload_ok, 1);
        selfmetrics_gauge_set(d->reload_time, (double)clock_now_ms() / 1000.0);
        log_info("configuration reloaded", "file",
                 d->flags.config_file ? d->flags.config_file : "<embedded>");
        if (strcmp(c->storage.path, d->storage_path) != 0)
            log_warn("storage.path changed: it takes effect at the next start", "running",
                     d->storage_path, "configured", c->storage.path);
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

/* Ready once started (state restored) and the series that arrived first have
 * their history; then it stays ready, so series appearing later (pod churn)
 * never flap readiness. */
static bool hook_ready(void *ctx, char *why, size_t whycap)
{
    struct daemon *d = ctx;
    if (atomic_load(&d->ready))
        return true;
    if (!atomic_load(&d->serving)) {
        snprintf(why, whycap, "promcast is starting");
        return false;
    }
    struct pipeline_stats st;
    pipeline_get_stats(d->pipeline, &st);
    size_t pending = d->warm ? warmstart_pending(d->warm) : 0;
    if (d->warm &&
        (clock_mono_ms() - d->started_ms < READY_GRACE_MS || pending > 0 || st.warming > 0)) {
        snprintf(why, whycap, "warming up: %zu series waiting for history from remote_read",
                 pending > st.warming ? pending : (size_t)st.warming);
        return false;
    }
    atomic_store(&d->ready, true);
    log_info("ready: state restored and warm-up done");
    return true;
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

static double pipeline_stat(void *ctx, size_t off)
{
    struct pipeline_stats st;
    pipeline_get_stats(ctx, &st);
    return (double)*(const uint64_t *)((const char *)&st + off);
}

#define PIPELINE_METRIC(field)                                                                     \
    static double metric_pipeline_##field(void *ctx)                                               \
    {                                                                                              \
        return pipeline_stat(ctx, offsetof(struct pipeline_stats, field));                         \
    }
PIPELINE_METRIC(slot_bytes)
PIPELINE_METRIC(warming)
PIPELINE_METRIC(steps)
PIPELINE_METRIC(outputs)
PIPELINE_METRIC(suppressed)
PIPELINE_METRIC(late)
PIPELINE_METRIC(counter_resets)
PIPELINE_METRIC(invalid)

static double metric_warm_pending(void *ctx)
{
    return (double)warmstart_pending(ctx);
}

static void register_pipeline_metrics(struct daemon *d)
{
    static const struct {
        enum selfmetrics_type type;
        const char *name, *help;
        selfmetrics_value_fn fn;
    } m[] = {
        {SELFMETRICS_GAUGE, "promcast_model_state_bytes",
         "Memory held by model slots (engine state and output history).",
         metric_pipeline_slot_bytes},
        {SELFMETRICS_GAUGE, "promcast_series_warming",
         "Modelled series waiting for warm-start history.", metric_pipeline_warming},
        {SELFMETRICS_COUNTER, "promcast_model_steps_total",
         "Steps closed by the models (each yields one set of outputs).", metric_pipeline_steps},
        {SELFMETRICS_COUNTER, "promcast_output_samples_total",
         "Output samples handed to the remote-write writers (per writer set).",
         metric_pipeline_outputs},
        {SELFMETRICS_COUNTER, "promcast_output_samples_suppressed_total",
         "Outputs not written because a run before a crash may already have written them.",
         metric_pipeline_suppressed},
        {SELFMETRICS_COUNTER, "promcast_samples_late_total",
         "Samples older than their series' open step (dropped by the model).",
         metric_pipeline_late},
        {SELFMETRICS_COUNTER, "promcast_rate_resets_total",
         "Counter resets seen by rules with transform: rate.", metric_pipeline_counter_resets},
        {SELFMETRICS_COUNTER, "promcast_samples_invalid_total",
         "NaN or infinite values (not stale markers) ignored by the models.",
         metric_pipeline_invalid},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        selfmetrics_register_callback(d->metrics, m[i].type, m[i].name, m[i].help, m[i].fn,
                                      d->pipeline);
    struct selfmetrics_family *snaps = selfmetrics_register_counter(
        d->metrics, "promcast_snapshots_total", "State snapshots written, by result.", 1,
        (const char *const[]){"result"});
    d->snapshots_ok = selfmetrics_counter_get(snaps, "ok");
    d->snapshots_failed = selfmetrics_counter_get(snaps, "failed");
    d->snapshot_time =
        selfmetrics_simple_gauge(d->metrics, "promcast_snapshot_last_success_timestamp_seconds",
                                 "When the last state snapshot was committed.");
    d->snapshot_records = selfmetrics_simple_gauge(d->metrics, "promcast_snapshot_records",
                                                   "Series in the last state snapshot.");
    d->snapshot_seconds = selfmetrics_simple_gauge(d->metrics, "promcast_snapshot_duration_seconds",
                                                   "Time the last snapshot took.");
}

/* ---- state on disk ---------------------------------------------------------- */

static int mkdir_p(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static int snap_add(void *ctx, const void *rec, size_t len)
{
    return snapshot_add(ctx, rec, len) < 0 ? -1 : 0;
}

/* Write a snapshot of every model slot. The metadata is the newest output
 * step, so a restart knows what may already have been written. */
static int take_snapshot(struct daemon *d)
{
    char err[512];
    int64_t t0 = clock_mono_ms();
    int64_t wm = pipeline_high_watermark(d->pipeline);
    struct snapshot_writer *w = snapshot_begin(d->storage_path, pipeline_snapshot_schema(), &wm,
                                               sizeof wm, err, sizeof err);
    if (!w) {
        selfmetrics_counter_inc(d->snapshots_failed);
        log_error("snapshot failed", "err", err);
        return -1;
    }
    if (pipeline_snapshot(d->pipeline, snap_add, w) != 0) {
        snprintf(err, sizeof err, "%s", snapshot_error(w)[0] ? snapshot_error(w) : "out of memory");
        snapshot_abort(w);
        selfmetrics_counter_inc(d->snapshots_failed);
        log_error("snapshot failed", "err", err);
        return -1;
    }
    struct snapshot_commit_result res;
    if (snapshot_commit(w, SNAPSHOT_DEFAULT_KEEP, &res, err, sizeof err) < 0) {
        selfmetrics_counter_inc(d->snapshots_failed);
        log_error("snapshot failed", "err", err);
        return -1;
    }
    selfmetrics_counter_inc(d->snapshots_ok);
    selfmetrics_gauge_set(d->snapshot_time, (double)clock_now_ms() / 1000.0);
    selfmetrics_gauge_set(d->snapshot_records, (double)res.records);
    selfmetrics_gauge_set(d->snapshot_seconds, (double)(clock_mono_ms() - t0) / 1000.0);
    char n[24], b[24];
    log_debug("snapshot written", "file", res.file, "series", log_fmt_u64(n, sizeof n, res.records),
              "bytes", log_fmt_u64(b, sizeof b, res.bytes));
    return 0;
}

/*
 * The output watermark: the newest output step emitted, persisted every
 * second (temp file + rename; no fsync: it only has to survive the process,
 * and a lost update costs a suppressed step, not a conflict, see below).
 */
static void watermark_path(const struct daemon *d, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/output-watermark", d->storage_path);
}

static void watermark_write(struct daemon *d)
{
    int64_t wm = pipeline_high_watermark(d->pipeline);
    if (wm == INT64_MIN || wm == d->watermark_written)
        return;
    char path[4200], tmp[4300], text[32];
    watermark_path(d, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int n = snprintf(text, sizeof text, "%" PRId64 "\n", wm);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    bool ok = write(fd, text, (size_t)n) == n;
    close(fd);
    if (ok && rename(tmp, path) == 0)
        d->watermark_written = wm;
}

static int64_t watermark_read(const struct daemon *d)
{
    char path[4200], text[32] = "";
    watermark_path(d, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f)
        return INT64_MIN;
    int64_t wm = INT64_MIN;
    if (!fgets(text, sizeof text, f) || sscanf(text, "%" SCNd64, &wm) != 1)
        wm = INT64_MIN;
    fclose(f);
    return wm;
}

struct restore_ctx {
    struct daemon *d;
    int64_t now;
    uint64_t restored, dropped, malformed;
    int64_t meta_wm;
};

static int on_snapshot_meta(void *ctx, const struct snapshot_info *info)
{
    struct restore_ctx *r = ctx;
    if (info->meta_len == sizeof r->meta_wm)
        memcpy(&r->meta_wm, info->meta, sizeof r->meta_wm);
    return 0;
}

static int on_snapshot_record(void *ctx, const void *rec, size_t len)
{
    struct restore_ctx *r = ctx;
    int rc = pipeline_restore(r->d->pipeline, rec, len, r->now);
    if (rc > 0)
        r->restored++;
    else if (rc == 0)
        r->dropped++;
    else
        r->malformed++;
    return 0;
}

/* Longest step of the config's rules: the margin added to the watermark. */
static int64_t longest_step(const struct config *c)
{
    int64_t step = c->global.step_ms > 0 ? c->global.step_ms : 60000;
    for (size_t i = 0; i < c->n_rules; i++)
        if (c->rules[i].params.step_ms > step)
            step = c->rules[i].params.step_ms;
    return step;
}

/*
 * Load the newest valid snapshot, then decide which outputs must not be
 * written again: everything up to the newest step written before the last
 * stop (watermark file or snapshot, whichever is newer) plus one step, since
 * the watermark file may lag the last emission by up to a second.
 */
static int restore_state(struct daemon *d, const struct config *c)
{
    if (mkdir_p(d->storage_path) < 0) {
        log_error("cannot create storage.path", "path", d->storage_path, "err", strerror(errno));
        return -1;
    }
    struct restore_ctx r = {.d = d, .now = clock_now_ms(), .meta_wm = INT64_MIN};
    struct snapshot_load_result res;
    char err[512];
    int64_t t0 = clock_mono_ms();
    if (snapshot_load(d->storage_path, pipeline_snapshot_schema(), NULL, on_snapshot_meta,
                      on_snapshot_record, &r, &res, err, sizeof err) < 0) {
        log_error("cannot load the snapshot; starting without learned state", "err", err);
        return -1;
    }
    char a[24], b[24], ms[24];
    if (res.files_corrupt)
        log_error("corrupt snapshot found and set aside; the previous good one was used", "problem",
                  res.first_problem);
    switch (res.status) {
    case SNAPSHOT_LOAD_OK:
        log_info("state restored", "file", res.file, "series", log_fmt_u64(a, sizeof a, r.restored),
                 "not_restored", log_fmt_u64(b, sizeof b, r.dropped + r.malformed), "ms",
                 log_fmt_u64(ms, sizeof ms, (uint64_t)(clock_mono_ms() - t0)));
        break;
    case SNAPSHOT_LOAD_SCHEMA_MISMATCH:
        log_warn("snapshot made by an incompatible model version; starting afresh", "file",
                 res.file);
        break;
    case SNAPSHOT_LOAD_NEWER_FORMAT:
        log_error("snapshot written by a newer promcast; starting afresh", "file", res.file);
        break;
    case SNAPSHOT_LOAD_NONE:
        log_info("no snapshot yet; starting afresh", "path", d->storage_path);
        break;
    }
    int64_t wm = watermark_read(d);
    if (r.meta_wm > wm)
        wm = r.meta_wm;
    if (wm != INT64_MIN) {
        pipeline_set_suppress_until(d->pipeline, wm + longest_step(c));
        d->watermark_written = wm;
    }
    return 0;
}

/* ---- housekeeping timer --------------------------------------------------- */

/* Named periodic jobs, Redis serverCron style: the thread wakes every second
 * and runs each job whose period has elapsed. */
static void *timer_main(void *arg)
{
    struct daemon *d = arg;
    int64_t last_evict = clock_mono_ms();
    d->last_snapshot_ms = clock_mono_ms();
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
        int64_t snap_every = c->storage.snapshot_interval_ms;
        config_release((struct config *)c);

        /* every second: close the steps of quiet series, persist the
         * watermark of what has been emitted */
        pipeline_flush(d->pipeline, clock_now_ms());
        watermark_write(d);

        /* idle eviction, a few times per TTL so a series lives at most
         * ~1.25 TTL */
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

        if (snap_every > 0 && now - d->last_snapshot_ms >= snap_every) {
            d->last_snapshot_ms = now;
            take_snapshot(d);
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
    if (outbound_global_init() < 0) {
        log_error("cannot initialise libcurl");
        return 1;
    }

    pthread_mutex_init(&d.cfg_lock, NULL);
    pthread_mutex_init(&d.reload_lock, NULL);
    pthread_mutex_init(&d.stop_lock, NULL);
    pthread_cond_init(&d.stop_cond, NULL);
    d.started_ms = clock_mono_ms();

    struct config *cfg = load_config(f, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s", err);
        log_error("cannot load configuration", "file",
                  f->config_file ? f->config_file : "<embedded>");
        return 1;
    }
    log_info("starting promcast", "version", PROMCAST_VERSION, "config",
             f->config_file ? f->config_file : "<embedded>");
    d.storage_path = strdup(cfg->storage.path);

    d.metrics = selfmetrics_default();
    if (!d.metrics || !d.storage_path) {
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

    /* The pipeline first (the index calls its hooks), warm start wired
     * through it when remote_read is on. */
    bool warm = cfg->remote_read.enabled && cfg->remote_read.http.url;
    struct pipeline_opts po = {.metrics = d.metrics};
    if (warm) {
        po.warm_request = warmstart_request;
        po.warm_ctx = NULL; /* set below, before any series exists */
    }
    d.pipeline = pipeline_create(&po);
    struct http_limits hl;
    struct series_index_opts so;
    limits_from_config(cfg, &hl, &so);
    so.hooks = pipeline_hooks(d.pipeline);
    d.series = d.pipeline ? series_index_create(&so) : NULL;
    if (!d.series) {
        log_error("cannot create the series index");
        goto out;
    }
    pipeline_attach(d.pipeline, d.series);
    if (warm) {
        d.warm =
            warmstart_create(&cfg->remote_read, d.series, d.pipeline, d.metrics, err, sizeof err);
        if (!d.warm) {
            log_error("cannot set up remote_read for warm start", "err", err);
            goto out;
        }
        pipeline_set_warm_ctx(d.pipeline, d.warm);
    }
    if (install_config(&d, cfg, err, sizeof err) < 0) {
        log_error("cannot set up remote_write", "err", err);
        goto out;
    }
    cfg = NULL; /* d.cfg owns it now */
    register_pipeline_metrics(&d);
    selfmetrics_register_callback(d.metrics, SELFMETRICS_GAUGE, "promcast_series_active",
                                  "Series in the index (seen within series_idle_ttl).",
                                  metric_series_active, d.series);
    selfmetrics_register_callback(d.metrics, SELFMETRICS_GAUGE, "promcast_series_modelled",
                                  "Series matched by a rule and modelled.", metric_series_modelled,
                                  d.series);
    selfmetrics_register_callback(d.metrics, SELFMETRICS_GAUGE, "promcast_series_index_bytes",
                                  "Memory held by the series index (labels, entries, tables).",
                                  metric_series_bytes, d.series);
    if (d.warm)
        selfmetrics_register_callback(
            d.metrics, SELFMETRICS_GAUGE, "promcast_warmstart_pending_series",
            "Series queued for warm-start history.", metric_warm_pending, d.warm);

    restore_state(&d, d.cfg); /* logs what it found; failure means starting afresh */
    if (d.warm && warmstart_start(d.warm) < 0) {
        log_error("cannot start the warm-start thread");
        goto out;
    }

    struct http_server_opts ho = {
        .listen_address = f->listen_address,
        .threads = f->web_threads,
        .max_connections = (unsigned)d.cfg->limits.max_connections,
        .connection_timeout_ms = d.cfg->limits.request_timeout_ms,
        .limits = hl,
    };
    struct http_hooks hooks = {
        .ctx = &d,
        .reload = hook_reload,
        .ready = hook_ready,
        .config_acquire = hook_config_acquire,
        .config_release = hook_config_release,
    };
    d.http = http_server_create(&ho, d.series, d.pipeline, d.metrics, &hooks, err, sizeof err);
    if (!d.http) {
        log_error("cannot start the HTTP server", "err", err);
        goto out;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", http_server_port(d.http));
    log_info("listening", "address", f->listen_address, "port", port);

    if (pthread_create(&d.timer, NULL, timer_main, &d) != 0) {
        log_error("cannot start the timer thread");
        goto out;
    }
    atomic_store(&d.serving, true);

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
    atomic_store(&d.serving, false);
    atomic_store(&d.ready, false);
    int64_t deadline = clock_mono_ms() + d.cfg->storage.shutdown_timeout_ms;
    /* No more input, then no more warm-start applies, then no timer. */
    http_server_destroy(d.http);
    d.http = NULL;
    warmstart_destroy(d.warm);
    d.warm = NULL;
    pthread_mutex_lock(&d.stop_lock);
    d.stopping = true;
    pthread_cond_broadcast(&d.stop_cond);
    pthread_mutex_unlock(&d.stop_lock);
    pthread_join(d.timer, NULL);
    /* Open steps stay open in the snapshot; the next run continues them. */
    take_snapshot(&d);
    watermark_write(&d);
    if (d.writers) {
        int abandoned = 0;
        for (size_t i = 0; i < d.nwriters; i++)
            abandoned += writer_shutdown(d.writers[i], deadline);
        if (abandoned) {
            char n[24];
            log_warn("shutdown deadline passed with output samples unsent", "abandoned",
                     log_fmt_u64(n, sizeof n, (uint64_t)abandoned));
        }
    }
out:
    http_server_destroy(d.http);
    warmstart_destroy(d.warm);
    series_index_destroy(d.series);
    if (d.writers)
        writers_free(d.writers, d.nwriters, clock_mono_ms());
    config_release(d.writers_cfg);
    pipeline_destroy(d.pipeline);
    config_release(d.cfg);
    config_release(cfg);
    free(d.storage_path);
    pthread_mutex_destroy(&d.cfg_lock);
    pthread_mutex_destroy(&d.reload_lock);
    pthread_mutex_destroy(&d.stop_lock);
    pthread_cond_destroy(&d.stop_cond);
    outbound_global_cleanup();
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
