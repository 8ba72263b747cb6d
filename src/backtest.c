/*
 * backtest.c — `promcast backtest`: replay history through the model.
 *
 * For each input file: load it (csvts), pick the model parameters from the
 * configuration's first matching rule (inferring the step from the data when
 * the config sets none), run every row through model_observe() exactly as the
 * daemon would, map each input row to the output of the step it falls in,
 * write the per-row CSV, and evaluate forecasts against naive baselines. With
 * labels, the rows' anomaly scores are scored with NAB's rules (nab.c). Files
 * are independent, so a small pool of threads runs them; results are
 * collected per file and reported in sorted file order, so the output does
 * not depend on scheduling.
 *
 * With --remote-read the history comes from Prometheus instead: the
 * selector's series over [start, end] are fetched in sub-requests of
 * --request-range (so no single response grows with the whole range),
 * concatenated per series in memory (bounded by --max-series and
 * --max-samples), then each series is one job like a file, with its samples
 * fed to the model unfiltered, stale markers included, as the daemon feeds
 * them.
 *
 * Deliberately not done here: HTTP (outbound.c), the remote-read wire format
 * (wire_read.c), plotting, tuning parameters, or any model logic (model.c is
 * the only place that knows how forecasts are made).
 *
 * No third-party library: JSON output is written by hand (plain numbers and
 * escaped strings), so jansson stays inside nab.c; libcurl and snappy stay
 * behind outbound.c and wire_read.c.
 */
#include "backtest.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "csvts.h"
#include "labels.h"
#include "model.h"
#include "nab.h"
#include "outbound.h"
#include "selector.h"
#include "wire_read.h"

/* Outputs one model_observe() call may return (a sample closes one step;
 * more only if the model ever reports several). */
#define OBSERVE_MAX_OUT 16

/* Deepest directory nesting walked below --input. */
#define WALK_MAX_DEPTH 64

/* Default season of the seasonal-naive baseline when the rule sets none. */
#define DEFAULT_SEASON_MS (24 * 3600 * 1000LL)

/* The subset of NAB folders that the data README's forecast table covers. */
static const char *const reference_subset[] = {"realTraffic/", "realAdExchange/",
                                               "artificialWithAnomaly/"};
#define NREFERENCE_SUBSET (sizeof reference_subset / sizeof reference_subset[0])

struct options {
    const char *config_file;
    const char *input;
    const char *output;
    const char *labels_file;
    const char *score_only;
    const char *summary_json;
    const char *metric_name;
    int64_t step_ms; /* 0: config or inferred */
    bool skip_bad_rows;
    size_t max_file_bytes;
    bool max_file_bytes_set;
    unsigned jobs;

    /* --remote-read mode */
    const char *remote_read; /* URL; NULL: CSV mode */
    const char *match;
    const char *start_text, *end_text;
    int64_t start_ms, end_ms; /* resolved by parse_args */
    size_t max_series;
    size_t max_samples;
    size_t max_response_bytes;
    int64_t request_range_ms;
    int64_t max_range_ms;
    const char *remote_only_flag; /* first remote-read-only flag seen, for errors */
};

/* One input file (or remote-read series) and everything learned from it. */
struct job {
    /* Path relative to --input (or as given for a file); remote read: the
     * output file name, relative to --output. */
    char *rel;
    char *in_path;  /* path opened; remote read: the series text, for messages */
    char *out_path; /* NULL: no CSV written */
    /* Remote read only (NULL/0 for files): the label set as text, the
     * history (owned until the job runs), the rule matched at fetch time and
     * the stale markers fed. */
    char *series;
    struct sample *samples;
    size_t nsamples;
    const struct config_rule *rule;
    size_t stale;
    int failed;
    char err[512];

    size_t rows, bad, missing, late, duplicate, gaps, invalid, no_output;
    int64_t step_ms;
    bool step_inferred;
    int64_t season_ms;
    size_t steps, ready;
    struct backtest_eval ev;
    int nh;
    int64_t horizon_ms[MODEL_MAX_HORIZONS];
    char first_bad[256];

    /* NAB: per-row time and score, windows (borrowed from the labels). */
    int nwin; /* -1: file not in the labels */
    const struct nab_window *win;
    const char *label_key;
    int64_t *nab_t;
    double *nab_score;
    size_t nab_n;
};

/* A series that no rule models (remote read): listed, not run. */
struct skipped {
    char *series;
    size_t samples;
};

/* What a remote-read fetch did, for the summary. */
struct remote_info {
    char url[512]; /* redacted */
    size_t requests;
    uint64_t bytes;          /* response bodies */
    size_t series;           /* distinct series returned */
    size_t samples;          /* samples kept for modelled series */
    size_t overlap;          /* samples at or before a series' previous one, dropped */
    uint64_t skipped_native; /* native-histogram chunks or samples, not modelled */
    struct skipped *skipped;
    size_t nskipped;
};

struct run {
    struct options opt;
    struct config *cfg;
    struct nab_labels *labels;
    struct job *jobs;
    size_t njobs;
    struct remote_info rr;
    pthread_mutex_t lock;
    size_t next; /* next job to hand out, under lock */
};

static void fmt(char *buf, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));

static void fmt(char *buf, size_t cap, const char *f, ...)
{
    va_list ap;
    if (!buf || cap == 0)
        return;
    va_start(ap, f);
    vsnprintf(buf, cap, f, ap);
    va_end(ap);
}

static void usage(FILE *out)
{
    fputs("usage: promcast backtest [flags] --input=CSV|DIR [--output=CSV|DIR] "
          "[--labels=WINDOWS.json]\n"
          "       promcast backtest [flags] --remote-read=URL --match=SELECTOR --output=DIR\n"
          "                         [--start=TIME] [--end=TIME]\n"
          "       promcast backtest --score-only=CSV|DIR --labels=WINDOWS.json "
          "[--summary-json=FILE]\n"
          "\n"
          "Replays history through the same model code as the daemon. Each input CSV has a\n"
          "header starting `timestamp,value`; timestamps in unix seconds, unix milliseconds\n"
          "(magnitude >= 1e11), RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` (UTC). With a\n"
          "directory, every *.csv below it is processed and outputs are mirrored under\n"
          "--output. With --remote-read, the series SELECTOR matches are read from a\n"
          "Prometheus remote-read endpoint and each is written to DIR/<metric>__<hash>.csv,\n"
          "with DIR/index.csv mapping files to label sets. Each output row is the input\n"
          "row's timestamp text (remote read: RFC 3339 UTC with milliseconds), then\n"
          "value,yhat,yhat_lower,yhat_upper,anomaly_score,forecast_<horizon>... A summary\n"
          "(MAE relative to naive and seasonal-naive forecasts per horizon, interval\n"
          "coverage, NAB scores when --labels is given) goes to stdout.\n"
          "\n"
          "flags:\n"
          "  --config=FILE          configuration file (default: the embedded default config:\n"
          "                         model auto, horizons 15m and 1h, coverage 0.95)\n"
          "  --input=PATH           a CSV file or a directory of CSV files\n"
          "  --output=PATH          output CSV file, or directory when --input is one or with\n"
          "                         --remote-read (default: no CSV output, summary only;\n"
          "                         required with --remote-read)\n"
          "  --labels=FILE          anomaly windows, NAB combined_windows.json format; keys are\n"
          "                         file paths relative to --input (CSV input only)\n"
          "  --score-only=PATH      do not run the model: score existing CSVs that have an\n"
          "                         anomaly_score column against --labels (NAB)\n"
          "  --summary-json=FILE    also write the summary as JSON\n"
          "  --step=DURATION        model step, overriding the config and the inference\n"
          "                         (default: the config's step, else inferred per series)\n"
          "  --metric-name=NAME     __name__ given to every input series for rule matching\n"
          "                         (default: the file name without .csv; CSV input only)\n"
          "  --skip-bad-rows        keep going past malformed rows (counted, written with\n"
          "                         empty fields) instead of stopping at the first one\n"
          "  --max-file-bytes=N     largest input file accepted (default 1073741824)\n"
          "  --jobs=N               series processed in parallel (default: CPUs, at most 8)\n"
          "  --help                 this text\n"
          "\n"
          "remote read (history from Prometheus; the config's remote_read: section, when its\n"
          "url is the same URL, gives basic auth, bearer token, TLS, headers and timeout):\n"
          "  --remote-read=URL      Prometheus remote-read URL, e.g.\n"
          "                         http://127.0.0.1:9090/api/v1/read\n"
          "  --match=SELECTOR       PromQL series selector, e.g. '{__name__=\"job:load\"}'\n"
          "                         (required); series no config rule models are skipped\n"
          "  --start=TIME           RFC 3339 or unix seconds (default: --end minus 7d)\n"
          "  --end=TIME             RFC 3339 or unix seconds (default: now)\n"
          "  --max-range=DURATION   longest --start..--end accepted (default 90d)\n"
          "  --request-range=DURATION\n"
          "                         time range of one remote-read request; longer ranges are\n"
          "                         read in several (default 1d, at least 1m)\n"
          "  --max-series=N         most series read (default 1000; more is an error)\n"
          "  --max-samples=N        most samples held in memory, 16 bytes each\n"
          "                         (default 50000000; more is an error)\n"
          "  --max-response-bytes=N largest response body of one request, as received and\n"
          "                         decompressed (default 268435456)\n"
          "\n"
          "Exit status: 0 on success, 1 on bad usage, bad input or a failed read (message on\n"
          "stderr). See docs/backtest.md for the details.\n",
          out);
}

/* ---- Small helpers ----------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    size_t o = la;
    if (la > 0 && a[la - 1] != '/')
        p[o++] = '/';
    memcpy(p + o, b, lb + 1);
    return p;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p of the directory part of `path`. */
static int make_parent_dirs(const char *path, char *err, size_t errcap)
{
    char *p = xstrdup(path);
    if (!p) {
        fmt(err, errcap, "%s: out of memory", path);
        return -1;
    }
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0777) < 0 && errno != EEXIST) {
            fmt(err, errcap, "%s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = '/';
    }
    free(p);
    return 0;
}

/* Floor of t to the step grid (steps start at multiples of step since the
 * epoch, as in the model). */
static int64_t align(int64_t t, int64_t step)
{
    int64_t r = t % step;
    if (r < 0)
        r += step;
    return t - r;
}

/* Shortest "%g" text that reads back as the same double; "" for NaN/inf. */
static void num_text(double v, char *buf, size_t cap)
{
    if (!isfinite(v)) {
        buf[0] = '\0';
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
}

/* ---- Remote read: names, times, ranges ---------------------------------------- */

/* ms since the epoch as RFC 3339 UTC with milliseconds:
 * 2024-03-01T12:00:00.000Z. */
static void time_text(int64_t ms, char *buf, size_t cap)
{
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        sec--;
    }
    time_t tt = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&tt, &tm)) {
        fmt(buf, cap, "%lld", (long long)ms);
        return;
    }
    fmt(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

#define FNV64_OFFSET UINT64_C(14695981039346656037)
#define FNV64_PRIME  UINT64_C(1099511628211)

static uint64_t fnv_bytes(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * FNV64_PRIME;
    return h;
}

/* FNV-1a 64 of a sorted label set encoded name 0xff value 0xff ... (the
 * byte Prometheus separates labels with when it hashes them). Spelled out
 * here, not labels_hash(), because file names depend on it: it must never
 * change. */
static uint64_t label_set_hash(const struct label *l, size_t n)
{
    static const char sep = (char)0xff;
    uint64_t h = FNV64_OFFSET;
    for (size_t i = 0; i < n; i++) {
        h = fnv_bytes(h, l[i].name, l[i].name_len);
        h = fnv_bytes(h, &sep, 1);
        h = fnv_bytes(h, l[i].value, l[i].value_len);
        h = fnv_bytes(h, &sep, 1);
    }
    return h;
}

size_t backtest_series_file_name(const struct label *labels, size_t n, char *buf, size_t cap)
{
    char metric[BACKTEST_FILE_METRIC_MAX + 1];
    size_t m = 0;
    const struct label *name = labels_get(labels, n, "__name__");
    if (name) {
        for (uint32_t k = 0; k < name->value_len && m < BACKTEST_FILE_METRIC_MAX; k++) {
            char c = name->value[k];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_';
            metric[m++] = ok ? c : '_';
        }
    }
    if (m == 0) {
        memcpy(metric, "series", 6);
        m = 6;
    }
    metric[m] = '\0';
    int len = snprintf(buf, cap, "%s__%016llx.csv", metric,
                       (unsigned long long)label_set_hash(labels, n));
    if (len < 0 || (size_t)len >= cap) {
        if (cap > 0)
            buf[0] = '\0';
        return 0;
    }
    return (size_t)len;
}

size_t backtest_range_parts(int64_t start_ms, int64_t end_ms, int64_t part_ms)
{
    if (start_ms > end_ms || part_ms <= 0)
        return 0;
    /* Unsigned: end - start cannot overflow there. */
    uint64_t span = (uint64_t)end_ms - (uint64_t)start_ms;
    return (size_t)(span / (uint64_t)part_ms) + 1;
}

struct backtest_range backtest_range_part(int64_t start_ms, int64_t end_ms, int64_t part_ms,
                                          size_t i)
{
    struct backtest_range r = {1, 0};
    if (i >= backtest_range_parts(start_ms, end_ms, part_ms))
        return r;
    /* i * part <= end - start here, so nothing below overflows; unsigned
     * differences because end - start may not fit an int64_t. */
    r.start_ms = (int64_t)((uint64_t)start_ms + (uint64_t)i * (uint64_t)part_ms);
    r.end_ms = (uint64_t)end_ms - (uint64_t)r.start_ms < (uint64_t)part_ms
                   ? end_ms
                   : r.start_ms + (part_ms - 1);
    return r;
}

/* The label set as text, `name{a="b", ...}` with Go-style escapes in values
 * (\\ \" \n, \xHH for other control bytes). NULL when out of memory. */
static char *series_text(const struct label *l, size_t n)
{
    size_t cap = 8;
    for (size_t i = 0; i < n; i++)
        cap += (size_t)l[i].name_len + 4 * (size_t)l[i].value_len + 6;
    char *s = malloc(cap), *o = s;
    if (!s)
        return NULL;
    const struct label *name = labels_get(l, n, "__name__");
    if (name) {
        memcpy(o, name->value, name->value_len);
        o += name->value_len;
    }
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (&l[i] == name)
            continue;
        *o++ = any ? ',' : '{';
        any = true;
        memcpy(o, l[i].name, l[i].name_len);
        o += l[i].name_len;
        *o++ = '=';
        *o++ = '"';
        for (uint32_t k = 0; k < l[i].value_len; k++) {
            unsigned char c = (unsigned char)l[i].value[k];
            if (c == '\\' || c == '"') {
                *o++ = '\\';
                *o++ = (char)c;
            } else if (c == '\n') {
                *o++ = '\\';
                *o++ = 'n';
            } else if (c < 0x20 || c == 0x7f) {
                o += sprintf(o, "\\x%02x", c);
            } else {
                *o++ = (char)c;
            }
        }
        *o++ = '"';
    }
    if (any)
        *o++ = '}';
    else if (!name)
        o += sprintf(o, "{}");
    *o = '\0';
    return s;
}

/* ---- Step inference ------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int64_t backtest_infer_step(const int64_t *t, size_t n)
{
    static const int64_t nice[] = {
        1000,   2000,   5000,    10000,   15000,   20000,   30000,    60000,    120000,   300000,
        600000, 900000, 1200000, 1800000, 3600000, 7200000, 10800000, 21600000, 43200000, 86400000,
    };
    int64_t *d = NULL;
    size_t nd = 0;

    if (n < 2)
        return 0;
    d = malloc((n - 1) * sizeof *d);
    if (!d)
        return 0;
    for (size_t i = 1; i < n; i++)
        if (t[i] > t[i - 1])
            d[nd++] = t[i] - t[i - 1];
    if (nd == 0) {
        free(d);
        return 0;
    }
    qsort(d, nd, sizeof *d, cmp_i64);
    /* Lower median: an actual observed interval. */
    int64_t med = d[(nd - 1) / 2];
    free(d);
    for (size_t i = 0; i < sizeof nice / sizeof nice[0]; i++)
        if (llabs(med - nice[i]) * 10 <= nice[i])
            return nice[i];
    if (med >= 1000)
        return (med + 500) / 1000 * 1000;
    return med;
}

/* ---- Forecast evaluation ----------------------------------------------------- */

/* Index of the output whose step starts at t, or -1. */
static long find_step(const struct model_output *out, size_t n, int64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (out[mid].t < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && out[lo].t == t ? (long)lo : -1;
}

static bool value_at(const struct model_output *out, size_t n, int64_t t, double *v)
{
    long k = find_step(out, n, t);
    if (k < 0 || !isfinite(out[k].value))
        return false;
    *v = out[k].value;
    return true;
}

/* Accumulate one point of one slot (sums, divided at the end). */
static void add_point(struct backtest_horizon_eval *h, double forecast, double actual, double naive,
                      bool has_seasonal, double seasonal)
{
    double e = fabs(forecast - actual);
    h->n++;
    h->mae_model += e;
    h->mae_naive += fabs(naive - actual);
    if (has_seasonal) {
        h->ns++;
        h->mae_model_s += e;
        h->mae_seasonal += fabs(seasonal - actual);
    }
}

/* Seasonal-naive value for target time `target` forecast `lead` ms ahead:
 * the value k seasons before the target, with k the smallest number of
 * seasons not shorter than the lead. */
static bool seasonal_value(const struct model_output *out, size_t n, int64_t step, int64_t season,
                           int64_t target, int64_t lead, double *v)
{
    int64_t k = (lead + season - 1) / season;
    if (k < 1)
        k = 1;
    return value_at(out, n, align(target - k * season, step), v);
}

int backtest_evaluate(const struct model_output *out, size_t n, int64_t step_ms,
                      const int64_t *horizon_ms, int nh, int64_t season_ms,
                      struct backtest_eval *ev)
{
    if (!ev || step_ms <= 0 || season_ms <= 0 || nh < 0 || nh > MODEL_MAX_HORIZONS ||
        (nh > 0 && !horizon_ms))
        return -1;
    memset(ev, 0, sizeof *ev);
    ev->nslots = 1 + nh;
    for (size_t k = 0; k < n; k++) {
        const struct model_output *o = &out[k];
        double naive, seasonal, actual;
        bool hs;
        if (!o->ready)
            continue;
        if (isfinite(o->value) && isfinite(o->yhat_lower) && isfinite(o->yhat_upper)) {
            ev->cov_n++;
            if (o->value >= o->yhat_lower && o->value <= o->yhat_upper)
                ev->cov_inside++;
        }
        /* One step: yhat was made at the end of the previous step. */
        if (isfinite(o->value) && isfinite(o->yhat) && value_at(out, n, o->t - step_ms, &naive)) {
            hs = seasonal_value(out, n, step_ms, season_ms, o->t, step_ms, &seasonal);
            add_point(&ev->h[0], o->yhat, o->value, naive, hs, seasonal);
        }
        if (!isfinite(o->value))
            continue;
        for (int i = 0; i < nh && i < o->nhorizons; i++) {
            /* A horizon inside the origin's own step has no future value to
             * compare with. */
            int64_t target = align(o->t + horizon_ms[i], step_ms);
            if (target <= o->t || !isfinite(o->forecast[i]) || !value_at(out, n, target, &actual))
                continue;
            hs = seasonal_value(out, n, step_ms, season_ms, target, horizon_ms[i], &seasonal);
            add_point(&ev->h[1 + i], o->forecast[i], actual, o->value, hs, seasonal);
        }
    }
    for (int s = 0; s < ev->nslots; s++) {
        struct backtest_horizon_eval *h = &ev->h[s];
        if (h->n) {
            h->mae_model /= (double)h->n;
            h->mae_naive /= (double)h->n;
        }
        if (h->ns) {
            h->mae_model_s /= (double)h->ns;
            h->mae_seasonal /= (double)h->ns;
        }
    }
    return 0;
}

/* ---- Option parsing ------------------------------------------------------------ */

static int parse_size(const char *s, size_t *out)
{
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || e == s || *e || s[0] == '-')
        return -1;
    *out = (size_t)v;
    return 0;
}

/* A --start/--end value: RFC 3339, unix seconds (or milliseconds from 1e11
 * on) or `YYYY-MM-DD HH:MM:SS` UTC, as csvts reads CSV timestamps. */
static int parse_time_flag(const char *flag, const char *val, int64_t *ms)
{
    const char *why = NULL;
    if (csvts_parse_time(val, strlen(val), ms, &why) < 0) {
        fprintf(stderr,
                "promcast backtest: %s: bad time \"%s\" (%s; want RFC 3339 or unix seconds)\n",
                flag, val, why ? why : "unreadable");
        return -1;
    }
    return 0;
}

/* The remote-read checks of parse_args(): flag combinations and the time
 * range. Returns 0 or -1 (message printed). */
static int check_remote_args(struct options *o)
{
    if (o->input || o->score_only) {
        fprintf(stderr, "promcast backtest: --remote-read cannot be combined with %s\n",
                o->input ? "--input" : "--score-only");
        return -1;
    }
    if (o->labels_file) {
        fprintf(stderr, "promcast backtest: --labels does not apply to --remote-read: NAB anomaly "
                        "windows are keyed by CSV file (score the output CSVs with --score-only "
                        "instead)\n");
        return -1;
    }
    const char *csv_only = o->metric_name          ? "--metric-name"
                           : o->skip_bad_rows      ? "--skip-bad-rows"
                           : o->max_file_bytes_set ? "--max-file-bytes"
                                                   : NULL;
    if (csv_only) {
        fprintf(stderr,
                "promcast backtest: %s applies to CSV input only, not to --remote-read (series "
                "are matched to rules by their own labels)\n",
                csv_only);
        return -1;
    }
    if (!o->match) {
        fprintf(stderr, "promcast backtest: --remote-read needs --match=SELECTOR\n");
        return -1;
    }
    if (!o->output) {
        fprintf(stderr,
                "promcast backtest: --remote-read needs --output=DIR (one CSV per series)\n");
        return -1;
    }
    if (o->end_text) {
        if (parse_time_flag("--end", o->end_text, &o->end_ms) < 0)
            return -1;
    } else {
        o->end_ms = clock_now_ms();
    }
    if (o->start_text) {
        if (parse_time_flag("--start", o->start_text, &o->start_ms) < 0)
            return -1;
    } else {
        o->start_ms = o->end_ms - BACKTEST_DEFAULT_RANGE_MS;
    }
    if (o->start_ms >= o->end_ms) {
        fprintf(stderr, "promcast backtest: --start must be before --end\n");
        return -1;
    }
    if (o->end_ms - o->start_ms > o->max_range_ms) {
        char got[32], cap[32];
        config_format_duration(o->end_ms - o->start_ms, got, sizeof got);
        config_format_duration(o->max_range_ms, cap, sizeof cap);
        fprintf(stderr,
                "promcast backtest: the range --start..--end is %s, longer than --max-range=%s\n",
                got, cap);
        return -1;
    }
    return 0;
}

/* Returns 0, 1 for --help, -1 on error (message printed). */
static int parse_args(int argc, char **argv, struct options *o)
{
    static const char *const valued[] = {"config",        "input",       "output",
                                         "labels",        "score-only",  "summary-json",
                                         "step",          "metric-name", "max-file-bytes",
                                         "jobs",          "config.file", "remote-read",
                                         "match",         "start",       "end",
                                         "max-series",    "max-samples", "max-response-bytes",
                                         "request-range", "max-range"};
    memset(o, 0, sizeof *o);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->jobs = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (unsigned)ncpu;
    o->max_file_bytes = CSVTS_DEFAULT_MAX_BYTES;
    o->max_series = BACKTEST_DEFAULT_MAX_SERIES;
    o->max_samples = BACKTEST_DEFAULT_MAX_SAMPLES;
    o->max_response_bytes = WIRE_READ_DEFAULT_MAX_RESPONSE_BODY;
    o->request_range_ms = BACKTEST_DEFAULT_REQUEST_RANGE_MS;
    o->max_range_ms = BACKTEST_DEFAULT_MAX_RANGE_MS;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strcmp(a, "--skip-bad-rows") == 0) {
            o->skip_bad_rows = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "promcast backtest: unexpected argument \"%s\" (see --help)\n", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const char *val = NULL;
        const char *known = NULL;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            if (strlen(valued[k]) == nlen && strncmp(valued[k], name, nlen) == 0)
                known = valued[k];
        if (!known) {
            fprintf(stderr, "promcast backtest: unknown flag --%.*s (see --help)\n", (int)nlen,
                    name);
            return -1;
        }
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "promcast backtest: --%.*s needs a value\n", (int)nlen, name);
            return -1;
        }
#define IS(n) (nlen == strlen(n) && strncmp(name, n, nlen) == 0)
        /* Flags that only mean something with --remote-read. */
        if (!o->remote_only_flag &&
            (IS("match") || IS("start") || IS("end") || IS("max-series") || IS("max-samples") ||
             IS("max-response-bytes") || IS("request-range") || IS("max-range")))
            o->remote_only_flag = known;
        if (IS("config") || IS("config.file")) {
            o->config_file = val;
        } else if (IS("input")) {
            o->input = val;
        } else if (IS("output")) {
            o->output = val;
        } else if (IS("labels")) {
            o->labels_file = val;
        } else if (IS("score-only")) {
            o->score_only = val;
        } else if (IS("summary-json")) {
            o->summary_json = val;
        } else if (IS("metric-name")) {
            o->metric_name = val;
        } else if (IS("step")) {
            if (config_parse_duration(val, &o->step_ms) < 0 || o->step_ms <= 0) {
                fprintf(stderr, "promcast backtest: --step: bad duration \"%s\"\n", val);
                return -1;
            }
        } else if (IS("max-file-bytes")) {
            if (parse_size(val, &o->max_file_bytes) < 0 || o->max_file_bytes == 0) {
                fprintf(stderr, "promcast backtest: --max-file-bytes: bad number \"%s\"\n", val);
                return -1;
            }
            o->max_file_bytes_set = true;
        } else if (IS("jobs")) {
            size_t j;
            if (parse_size(val, &j) < 0 || j == 0 || j > 256) {
                fprintf(stderr, "promcast backtest: --jobs: want 1..256, got \"%s\"\n", val);
                return -1;
            }
            o->jobs = (unsigned)j;
        } else if (IS("remote-read")) {
            if (strncmp(val, "http://", 7) != 0 && strncmp(val, "https://", 8) != 0) {
                fprintf(stderr,
                        "promcast backtest: --remote-read: want an http:// or https:// "
                        "URL, got \"%s\"\n",
                        val);
                return -1;
            }
            o->remote_read = val;
        } else if (IS("match")) {
            o->match = val;
        } else if (IS("start")) {
            o->start_text = val;
        } else if (IS("end")) {
            o->end_text = val;
        } else if (IS("max-series")) {
            if (parse_size(val, &o->max_series) < 0 || o->max_series == 0 ||
                o->max_series > BACKTEST_MAX_MAX_SERIES) {
                fprintf(stderr, "promcast backtest: --max-series: want 1..%u, got \"%s\"\n",
                        BACKTEST_MAX_MAX_SERIES, val);
                return -1;
            }
        } else if (IS("max-samples")) {
            if (parse_size(val, &o->max_samples) < 0 || o->max_samples == 0 ||
                o->max_samples > SIZE_MAX / sizeof(struct sample) / 4) {
                fprintf(stderr, "promcast backtest: --max-samples: bad number \"%s\"\n", val);
                return -1;
            }
        } else if (IS("max-response-bytes")) {
            if (parse_size(val, &o->max_response_bytes) < 0 || o->max_response_bytes == 0) {
                fprintf(stderr, "promcast backtest: --max-response-bytes: bad number \"%s\"\n",
                        val);
                return -1;
            }
        } else if (IS("request-range")) {
            if (config_parse_duration(val, &o->request_range_ms) < 0 ||
                o->request_range_ms < BACKTEST_MIN_REQUEST_RANGE_MS) {
                fprintf(stderr,
                        "promcast backtest: --request-range: want a duration of at least 1m, "
                        "got \"%s\"\n",
                        val);
                return -1;
            }
        } else if (IS("max-range")) {
            if (config_parse_duration(val, &o->max_range_ms) < 0 || o->max_range_ms <= 0) {
                fprintf(stderr, "promcast backtest: --max-range: bad duration \"%s\"\n", val);
                return -1;
            }
        }
#undef IS
    }
    if (o->remote_read)
        return check_remote_args(o);
    if (o->remote_only_flag) {
        fprintf(stderr, "promcast backtest: --%s needs --remote-read=URL\n", o->remote_only_flag);
        return -1;
    }
    if (o->score_only) {
        if (o->input || o->output || o->config_file) {
            fprintf(stderr, "promcast backtest: --score-only does not take --input, --output or "
                            "--config\n");
            return -1;
        }
        if (!o->labels_file) {
            fprintf(stderr, "promcast backtest: --score-only needs --labels\n");
            return -1;
        }
        return 0;
    }
    if (!o->input) {
        fprintf(stderr, "promcast backtest: --input or --remote-read is required (see --help)\n");
        return -1;
    }
    return 0;
}

/* ---- Input discovery ------------------------------------------------------------ */

struct walk {
    char **rel;
    size_t n, cap;
};

static bool has_csv_suffix(const char *name)
{
    size_t l = strlen(name);
    return l > 4 && strcmp(name + l - 4, ".csv") == 0;
}

static int walk_add(struct walk *w, const char *rel)
{
    if (w->n == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 64;
        char **nr = realloc(w->rel, ncap * sizeof *nr);
        if (!nr)
            return -1;
        w->rel = nr;
        w->cap = ncap;
    }
    w->rel[w->n] = xstrdup(rel);
    if (!w->rel[w->n])
        return -1;
    w->n++;
    return 0;
}

/* Collect every regular *.csv below root/sub (symbolic links to files are
 * followed, to directories not, so a link cycle cannot loop). */
static int walk_dir(struct walk *w, const char *root, const char *sub, int depth, char *err,
                    size_t errcap)
{
    char *dir = sub[0] ? path_join(root, sub) : xstrdup(root);
    DIR *d = NULL;
    int ret = -1;

    if (!dir) {
        fmt(err, errcap, "%s: out of memory", root);
        return -1;
    }
    if (depth > WALK_MAX_DEPTH) {
        fmt(err, errcap, "%s: directories nested deeper than %d", dir, WALK_MAX_DEPTH);
        goto fail;
    }
    d = opendir(dir);
    if (!d) {
        fmt(err, errcap, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *rel = sub[0] ? path_join(sub, e->d_name) : xstrdup(e->d_name);
        char *full = rel ? path_join(root, rel) : NULL;
        struct stat lst, st;
        int r = 0;
        if (!rel || !full) {
            fmt(err, errcap, "%s: out of memory", dir);
            r = -1;
        } else if (lstat(full, &lst) == 0) {
            if (S_ISDIR(lst.st_mode))
                r = walk_dir(w, root, rel, depth + 1, err, errcap);
            else if (has_csv_suffix(e->d_name) && stat(full, &st) == 0 && S_ISREG(st.st_mode))
                r = walk_add(w, rel) < 0 ? -1 : 0;
            if (r < 0 && !err[0])
                fmt(err, errcap, "%s: out of memory", dir);
        }
        free(rel);
        free(full);
        if (r < 0)
            goto fail;
    }
    ret = 0;
fail:
    if (d)
        closedir(d);
    free(dir);
    return ret;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Build the job list from --input (or --score-only). */
static int make_jobs(struct run *r, const char *input, const char *output)
{
    struct walk w = {NULL, 0, 0};
    char err[600] = "";
    int ret = -1;

    if (is_dir(input)) {
        if (walk_dir(&w, input, "", 0, err, sizeof err) < 0) {
            fprintf(stderr, "promcast backtest: %s\n", err);
            goto done;
        }
        if (w.n == 0) {
            fprintf(stderr, "promcast backtest: %s: no *.csv file below it\n", input);
            goto done;
        }
        qsort(w.rel, w.n, sizeof *w.rel, cmp_str);
        if (output && !is_dir(output) && mkdir(output, 0777) < 0) {
            fprintf(stderr, "promcast backtest: --output %s: %s\n", output, strerror(errno));
            goto done;
        }
    } else {
        struct stat st;
        if (stat(input, &st) < 0) {
            fprintf(stderr, "promcast backtest: %s: %s\n", input, strerror(errno));
            goto done;
        }
        if (walk_add(&w, input) < 0)
            goto oom;
    }
    r->jobs = calloc(w.n, sizeof *r->jobs);
    if (!r->jobs)
        goto oom;
    r->njobs = w.n;
    bool dir_mode = is_dir(input);
    for (size_t i = 0; i < w.n; i++) {
        struct job *j = &r->jobs[i];
        j->nwin = -1;
        j->rel = xstrdup(w.rel[i]);
        j->in_path = dir_mode ? path_join(input, w.rel[i]) : xstrdup(input);
        if (!j->rel || !j->in_path)
            goto oom;
        if (output) {
            if (dir_mode) {
                j->out_path = path_join(output, w.rel[i]);
            } else if (is_dir(output)) {
                const char *base = strrchr(input, '/');
                j->out_path = path_join(output, base ? base + 1 : input);
            } else {
                j->out_path = xstrdup(output);
            }
            if (!j->out_path)
                goto oom;
        }
    }
    ret = 0;
    goto done;
oom:
    fprintf(stderr, "promcast backtest: out of memory\n");
    ret = -1;
done:
    for (size_t i = 0; i < w.n; i++)
        free(w.rel[i]);
    free(w.rel);
    return ret;
}

/* True when both paths name the same existing file or directory. */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* ---- Remote read: fetch ------------------------------------------------------------ */

/* One series as it arrives over the sub-requests. */
struct rr_series {
    struct label *labels; /* one allocation: the array, then the bytes */
    size_t nlabels;
    uint64_t hash;
    const struct config_rule *rule; /* NULL: no rule models it, samples not kept */
    struct sample *s;
    size_t n, cap;
    size_t seen; /* samples received, kept or not */
};

struct rr_fetch {
    const struct config *cfg;
    struct rr_series *series;
    size_t nseries, capseries;
    size_t *slot; /* open addressing on the hash: series index + 1, 0 = empty */
    size_t mask;  /* slots - 1; slots a power of two over 2 * max_series */
    size_t max_series, max_samples;
    size_t samples; /* kept, over all series */
    size_t overlap; /* at or before the series' last kept sample: dropped */
    size_t over;    /* new series past max_series in the current response */
    bool too_many_samples, nomem;
};

static int rr_init(struct rr_fetch *f, const struct config *cfg, size_t max_series,
                   size_t max_samples)
{
    memset(f, 0, sizeof *f);
    size_t slots = 16;
    while (slots < 2 * max_series + 2)
        slots *= 2;
    f->slot = calloc(slots, sizeof *f->slot);
    if (!f->slot)
        return -1;
    f->mask = slots - 1;
    f->cfg = cfg;
    f->max_series = max_series;
    f->max_samples = max_samples;
    return 0;
}

static void rr_cleanup(struct rr_fetch *f)
{
    for (size_t i = 0; i < f->nseries; i++) {
        free(f->series[i].labels);
        free(f->series[i].s);
    }
    free(f->series);
    free(f->slot);
    memset(f, 0, sizeof *f);
}

static bool same_labels(const struct label *a, size_t na, const struct label *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (labels_cmp(&a[i], &b[i]) != 0)
            return false;
    return true;
}

/* The series with these labels, or NULL with *slot the free slot for it. */
static struct rr_series *rr_find(struct rr_fetch *f, const struct label *l, size_t n, uint64_t h,
                                 size_t *slot)
{
    size_t i = (size_t)h & f->mask;
    for (; f->slot[i]; i = (i + 1) & f->mask) {
        struct rr_series *se = &f->series[f->slot[i] - 1];
        if (se->hash == h && same_labels(se->labels, se->nlabels, l, n))
            return se;
    }
    *slot = i;
    return NULL;
}

/* A new series with a copy of the labels (they point into the response). */
static struct rr_series *rr_add(struct rr_fetch *f, const struct label *l, size_t n, uint64_t h,
                                size_t slot)
{
    if (f->nseries == f->capseries) {
        size_t ncap = f->capseries ? f->capseries * 2 : 64;
        if (ncap > f->max_series)
            ncap = f->max_series;
        struct rr_series *ns = realloc(f->series, ncap * sizeof *ns);
        if (!ns)
            return NULL;
        f->series = ns;
        f->capseries = ncap;
    }
    size_t bytes = n * sizeof(struct label);
    for (size_t i = 0; i < n; i++)
        bytes += (size_t)l[i].name_len + l[i].value_len;
    struct label *c = malloc(bytes ? bytes : 1);
    if (!c)
        return NULL;
    char *p = (char *)(c + n);
    for (size_t i = 0; i < n; i++) {
        memcpy(p, l[i].name, l[i].name_len);
        c[i].name = p;
        c[i].name_len = l[i].name_len;
        p += l[i].name_len;
        memcpy(p, l[i].value, l[i].value_len);
        c[i].value = p;
        c[i].value_len = l[i].value_len;
        p += l[i].value_len;
    }
    struct rr_series *se = &f->series[f->nseries];
    memset(se, 0, sizeof *se);
    se->labels = c;
    se->nlabels = n;
    se->hash = h;
    se->rule = config_match_rule(f->cfg, c, n);
    f->slot[slot] = ++f->nseries;
    return se;
}

/* wire_read callback: append one response's samples of a series. The
 * sub-requests are disjoint and ascending, so they simply concatenate;
 * anything not after the last kept sample (a server ignoring the range) is
 * dropped and counted. */
static int rr_on_series(void *ctx, size_t qi, const struct label *labels, size_t n,
                        const struct sample *smp, size_t ns)
{
    struct rr_fetch *f = ctx;
    size_t slot = 0;
    (void)qi;
    uint64_t h = label_set_hash(labels, n);
    struct rr_series *se = rr_find(f, labels, n, h, &slot);
    if (!se) {
        if (ns == 0)
            return 0;
        if (f->nseries >= f->max_series) {
            /* Keep decoding to count them, keeping nothing. */
            f->over++;
            return 0;
        }
        se = rr_add(f, labels, n, h, slot);
        if (!se) {
            f->nomem = true;
            return 1;
        }
    }
    se->seen += ns;
    if (!se->rule)
        return 0;
    size_t k = 0;
    if (se->n > 0)
        while (k < ns && smp[k].t <= se->s[se->n - 1].t)
            k++;
    f->overlap += k;
    size_t add = ns - k;
    if (add == 0)
        return 0;
    if (add > f->max_samples - f->samples) {
        f->too_many_samples = true;
        return 1;
    }
    if (se->n + add > se->cap) {
        size_t ncap = se->cap ? se->cap * 2 : 1024;
        if (ncap < se->n + add)
            ncap = se->n + add;
        struct sample *nsm = realloc(se->s, ncap * sizeof *nsm);
        if (!nsm) {
            f->nomem = true;
            return 1;
        }
        se->s = nsm;
        se->cap = ncap;
    }
    memcpy(se->s + se->n, smp + k, add * sizeof *smp);
    se->n += add;
    f->samples += add;
    return 0;
}

#define STREAMED_CONTENT_TYPE_PREFIX "application/x-streamed-protobuf"

/* One sub-request: ask, check the answer, decode it into f. 0 or -1
 * (message printed). */
static int fetch_part(struct run *r, struct rr_fetch *f, struct outbound *client,
                      const struct wire_read_query *q, const struct wire_read_response_limits *lim,
                      void **buf, size_t *bufcap)
{
    static const enum wire_read_type types[] = {WIRE_READ_STREAMED_XOR_CHUNKS, WIRE_READ_SAMPLES};
    static const struct outbound_header hdrs[] = {
        {"Content-Type", WIRE_READ_SAMPLES_CONTENT_TYPE},
        {"Content-Encoding", WIRE_READ_SAMPLES_CONTENT_ENCODING},
        {"Accept-Encoding", WIRE_READ_SAMPLES_CONTENT_ENCODING},
        {WIRE_READ_VERSION_HEADER, WIRE_READ_VERSION},
    };
    char err[512], from[40], to[40];
    size_t len = 0;

    time_text(q->start_ms, from, sizeof from);
    time_text(q->end_ms, to, sizeof to);
    if (wire_read_encode_request(q, 1, types, 2, buf, bufcap, &len, err, sizeof err) < 0) {
        fprintf(stderr, "promcast backtest: cannot encode the remote-read request: %s\n", err);
        return -1;
    }
    struct outbound_request rq = {.method = "POST",
                                  .headers = hdrs,
                                  .nheaders = sizeof hdrs / sizeof hdrs[0],
                                  .body = *buf,
                                  .body_len = len,
                                  .max_response_bytes = r->opt.max_response_bytes};
    struct outbound_response resp;
    int rc = outbound_do(client, &rq, &resp);
    r->rr.requests++;
    if (rc < 0) {
        if (resp.err == OUTBOUND_ERR_TOO_LARGE)
            fprintf(stderr,
                    "promcast backtest: remote read %s (%s to %s): response body over "
                    "--max-response-bytes=%zu (shorten --request-range or narrow --match)\n",
                    r->rr.url, from, to, r->opt.max_response_bytes);
        else
            fprintf(stderr, "promcast backtest: remote read %s (%s to %s): %s\n", r->rr.url, from,
                    to, resp.error);
        return -1;
    }
    const char *body = resp.body ? resp.body : "";
    r->rr.bytes += resp.body_len;
    if (resp.status != 200) {
        int l = (int)strcspn(body, "\r\n");
        fprintf(stderr, "promcast backtest: remote read %s (%s to %s): HTTP %ld: %.*s\n", r->rr.url,
                from, to, resp.status, l > 300 ? 300 : l, body);
        return -1;
    }
    enum wire_read_type type = strncmp(resp.content_type, STREAMED_CONTENT_TYPE_PREFIX,
                                       strlen(STREAMED_CONTENT_TYPE_PREFIX)) == 0
                                   ? WIRE_READ_STREAMED_XOR_CHUNKS
                                   : WIRE_READ_SAMPLES;
    struct wire_read_stats st;
    memset(&st, 0, sizeof st);
    f->over = 0;
    enum wire_read_err e = wire_read_decode_response(body, resp.body_len, type, q, 1, lim,
                                                     rr_on_series, f, &st, err, sizeof err);
    r->rr.skipped_native += st.skipped_chunks + st.skipped_histograms;
    if (f->too_many_samples) {
        fprintf(stderr,
                "promcast backtest: more than --max-samples=%zu samples (at %s to %s); narrow "
                "--match, shorten --start..--end or raise --max-samples\n",
                f->max_samples, from, to);
        return -1;
    }
    if (f->nomem) {
        fprintf(stderr, "promcast backtest: out of memory reading %s\n", r->rr.url);
        return -1;
    }
    if (e != WIRE_READ_OK) {
        fprintf(stderr, "promcast backtest: remote read %s (%s to %s): bad response (%s): %s%s\n",
                r->rr.url, from, to, wire_read_err_reason(e), err,
                e == WIRE_READ_ERR_LIMIT || e == WIRE_READ_ERR_TOO_LARGE
                    ? " (shorten --request-range or narrow --match)"
                    : "");
        return -1;
    }
    if (f->over) {
        fprintf(stderr,
                "promcast backtest: --match selects at least %zu series (seen by the response "
                "for %s to %s), more than --max-series=%zu; narrow --match or raise "
                "--max-series\n",
                f->nseries + f->over, from, to, f->max_series);
        return -1;
    }
    return 0;
}

/* Read every series of --match over [start, end] into f, one sub-request
 * per --request-range. 0 or -1 (message printed). */
static int fetch_remote(struct run *r, struct rr_fetch *f)
{
    struct selector *sel = NULL;
    struct wire_read_matcher *m = NULL;
    struct outbound *client = NULL;
    struct config_http_client own;
    const struct config_http_client *http = &own;
    void *buf = NULL;
    size_t bufcap = 0;
    char err[512];
    int ret = -1;

    memset(&own, 0, sizeof own);
    sel = selector_parse(r->opt.match, err, sizeof err, NULL);
    if (!sel) {
        fprintf(stderr, "promcast backtest: --match: %s\n", err);
        goto done;
    }
    size_t nm = selector_count(sel);
    m = calloc(nm ? nm : 1, sizeof *m);
    if (!m)
        goto oom;
    for (size_t i = 0; i < nm; i++) {
        size_t nl, vl;
        selector_matcher_bytes(sel, i, &m[i].op, &m[i].name, &nl, &m[i].value, &vl);
        m[i].name_len = (uint32_t)nl;
        m[i].value_len = (uint32_t)vl;
    }

    /* Credentials and TLS only from a remote_read: section naming this very
     * URL, so they never go to a server the config did not name. */
    if (r->cfg && r->cfg->remote_read.http.url &&
        strcmp(r->cfg->remote_read.http.url, r->opt.remote_read) == 0) {
        http = &r->cfg->remote_read.http;
    } else {
        own.url = xstrdup(r->opt.remote_read);
        own.timeout_ms = BACKTEST_DEFAULT_TIMEOUT_MS;
        if (!own.url)
            goto oom;
    }
    client = outbound_create(http, err, sizeof err);
    if (!client) {
        fprintf(stderr, "promcast backtest: --remote-read: %s\n", err);
        goto done;
    }
    fmt(r->rr.url, sizeof r->rr.url, "%s", outbound_url(client));

    struct wire_read_response_limits lim;
    wire_read_response_limits_default(&lim);
    lim.max_body_bytes = r->opt.max_response_bytes;
    lim.max_decompressed_bytes = r->opt.max_response_bytes;
    /* --max-samples is enforced in rr_on_series (kept samples only, with a
     * clear message); the decoder's caps per response and per series stay
     * at their defaults or above it, so it runs into them only for a single
     * response too big to hold. */
    if (lim.max_samples <= r->opt.max_samples)
        lim.max_samples = r->opt.max_samples + 1;
    if (lim.max_series_samples <= r->opt.max_samples)
        lim.max_series_samples = r->opt.max_samples + 1;
    /* --max-series is enforced in rr_on_series, which can count the excess;
     * the decoder's own cap only has to stay above it. */
    if (lim.max_series < 2 * r->opt.max_series)
        lim.max_series = 2 * r->opt.max_series;

    size_t nparts = backtest_range_parts(r->opt.start_ms, r->opt.end_ms, r->opt.request_range_ms);
    for (size_t i = 0; i < nparts; i++) {
        struct backtest_range pr =
            backtest_range_part(r->opt.start_ms, r->opt.end_ms, r->opt.request_range_ms, i);
        struct wire_read_query q = {pr.start_ms, pr.end_ms, m, nm};
        if (fetch_part(r, f, client, &q, &lim, &buf, &bufcap) < 0)
            goto done;
    }
    ret = 0;
    goto done;
oom:
    fprintf(stderr, "promcast backtest: out of memory\n");
done:
    free(buf);
    outbound_destroy(client);
    free(own.url);
    free(m);
    selector_destroy(sel);
    return ret;
}

static int cmp_series_ptr(const void *a, const void *b)
{
    const struct rr_series *x = *(const struct rr_series *const *)a;
    const struct rr_series *y = *(const struct rr_series *const *)b;
    size_t n = x->nlabels < y->nlabels ? x->nlabels : y->nlabels;
    for (size_t i = 0; i < n; i++) {
        int c = labels_cmp(&x->labels[i], &y->labels[i]);
        if (c)
            return c;
    }
    return (x->nlabels > y->nlabels) - (x->nlabels < y->nlabels);
}

struct name_ref {
    const char *name;
    size_t job;
};

static int cmp_name_ref(const void *a, const void *b)
{
    const struct name_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->job > y->job) - (x->job < y->job);
}

/* Two label sets with one file name (a 64-bit hash collision): the later
 * ones in label order get `_2`, `_3`... before `.csv`. A natural name has
 * 16 hex digits there, so a renamed one cannot equal another name. */
static int rename_collisions(struct run *r)
{
    struct name_ref *v = malloc((r->njobs + 1) * sizeof *v);
    char **renamed = calloc(r->njobs + 1, sizeof *renamed);
    int ret = -1;
    if (!v || !renamed)
        goto done;
    for (size_t i = 0; i < r->njobs; i++)
        v[i] = (struct name_ref){r->jobs[i].rel, i};
    qsort(v, r->njobs, sizeof *v, cmp_name_ref);
    /* Names are compared as they were; the new ones are put in after. */
    for (size_t i = 1, k = 2; i < r->njobs; i++) {
        if (strcmp(v[i].name, v[i - 1].name) != 0) {
            k = 2;
            continue;
        }
        size_t l = strlen(v[i].name), cap = l + 24;
        char *nn = malloc(cap);
        if (!nn)
            goto done;
        snprintf(nn, cap, "%.*s_%zu.csv", (int)(l - 4), v[i].name, k++);
        renamed[v[i].job] = nn;
    }
    for (size_t i = 0; i < r->njobs; i++) {
        if (renamed[i]) {
            free(r->jobs[i].rel);
            r->jobs[i].rel = renamed[i];
            renamed[i] = NULL;
        }
    }
    ret = 0;
done:
    if (renamed)
        for (size_t i = 0; i < r->njobs; i++)
            free(renamed[i]);
    free(renamed);
    free(v);
    return ret;
}

/* Turn the fetched series into jobs (modelled ones, in label order) and the
 * list of skipped ones. The samples move to the jobs. 0 or -1 (message
 * printed). */
static int make_remote_jobs(struct run *r, struct rr_fetch *f)
{
    struct rr_series **order = NULL;
    char from[40], to[40];
    int ret = -1;

    r->rr.series = f->nseries;
    r->rr.samples = f->samples;
    r->rr.overlap = f->overlap;
    if (f->nseries == 0) {
        time_text(r->opt.start_ms, from, sizeof from);
        time_text(r->opt.end_ms, to, sizeof to);
        fprintf(stderr, "promcast backtest: no series matches --match=%s from %s to %s\n",
                r->opt.match, from, to);
        return -1;
    }
    order = malloc(f->nseries * sizeof *order);
    if (!order)
        goto oom;
    size_t modelled = 0;
    for (size_t i = 0; i < f->nseries; i++) {
        order[i] = &f->series[i];
        modelled += f->series[i].rule != NULL;
    }
    qsort(order, f->nseries, sizeof *order, cmp_series_ptr);
    r->jobs = calloc(modelled + 1, sizeof *r->jobs);
    r->rr.skipped = calloc(f->nseries - modelled + 1, sizeof *r->rr.skipped);
    if (!r->jobs || !r->rr.skipped)
        goto oom;
    for (size_t i = 0; i < f->nseries; i++) {
        struct rr_series *se = order[i];
        char *text = series_text(se->labels, se->nlabels);
        if (!text)
            goto oom;
        if (!se->rule) {
            r->rr.skipped[r->rr.nskipped++] = (struct skipped){text, se->seen};
            continue;
        }
        struct job *j = &r->jobs[r->njobs++];
        char name[BACKTEST_FILE_NAME_MAX];
        j->nwin = -1;
        j->series = text;
        j->in_path = xstrdup(text);
        backtest_series_file_name(se->labels, se->nlabels, name, sizeof name);
        j->rel = xstrdup(name);
        j->out_path = path_join(r->opt.output, name);
        j->rule = se->rule;
        j->samples = se->s;
        j->nsamples = se->n;
        se->s = NULL;
        se->n = se->cap = 0;
        if (!j->in_path || !j->rel || !j->out_path)
            goto oom;
    }
    if (rename_collisions(r) < 0)
        goto oom;
    for (size_t i = 0; i < r->njobs; i++) {
        if (strcmp(strrchr(r->jobs[i].out_path, '/') + 1, r->jobs[i].rel) != 0) {
            char *p = path_join(r->opt.output, r->jobs[i].rel);
            if (!p)
                goto oom;
            free(r->jobs[i].out_path);
            r->jobs[i].out_path = p;
        }
    }
    if (modelled == 0) {
        fprintf(stderr,
                "promcast backtest: none of the %zu series --match selects is modelled by a rule "
                "of %s:\n",
                f->nseries, r->cfg->source ? r->cfg->source : "the config");
        for (size_t i = 0; i < r->rr.nskipped && i < 20; i++)
            fprintf(stderr, "  %s\n", r->rr.skipped[i].series);
        if (r->rr.nskipped > 20)
            fprintf(stderr, "  ... and %zu more\n", r->rr.nskipped - 20);
        goto done;
    }
    ret = 0;
    goto done;
oom:
    fprintf(stderr, "promcast backtest: out of memory\n");
done:
    free(order);
    return ret;
}

/* index.csv in --output: which file holds which series, and what became of
 * every series read (ok, failed, skipped). */
static void csv_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_index(const struct run *r)
{
    char *path = path_join(r->opt.output, "index.csv");
    char *tmp = path ? malloc(strlen(path) + 8) : NULL;
    FILE *f = NULL;
    int ret = -1;

    if (!path || !tmp) {
        fprintf(stderr, "promcast backtest: out of memory\n");
        goto done;
    }
    snprintf(tmp, strlen(path) + 8, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "promcast backtest: %s: %s\n", tmp, strerror(errno));
        goto done;
    }
    fputs("file,series,samples,status\n", f);
    for (size_t i = 0; i < r->njobs; i++) {
        const struct job *j = &r->jobs[i];
        fprintf(f, "%s,", j->rel);
        csv_quoted(f, j->series);
        fprintf(f, ",%zu,%s\n", j->rows, j->failed ? "failed" : "ok");
    }
    for (size_t i = 0; i < r->rr.nskipped; i++) {
        fputc(',', f);
        csv_quoted(f, r->rr.skipped[i].series);
        fprintf(f, ",%zu,skipped\n", r->rr.skipped[i].samples);
    }
    if (ferror(f) || fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "promcast backtest: %s: write error\n", tmp);
        unlink(tmp);
        goto done;
    }
    f = NULL;
    if (rename(tmp, path) < 0) {
        fprintf(stderr, "promcast backtest: %s: %s\n", path, strerror(errno));
        unlink(tmp);
        goto done;
    }
    ret = 0;
done:
    if (f) {
        fclose(f);
        unlink(tmp);
    }
    free(tmp);
    free(path);
    return ret;
}

/* ---- One file -------------------------------------------------------------------- */

/* A metric name from the file name: [a-zA-Z0-9_:], not starting with a digit. */
static void metric_from_path(const char *path, char *buf, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    if (len > 4 && strcmp(base + len - 4, ".csv") == 0)
        len -= 4;
    size_t o = 0;
    if (len == 0 || (base[0] >= '0' && base[0] <= '9'))
        buf[o++] = '_';
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        char c = base[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == ':';
        buf[o++] = ok ? c : '_';
    }
    buf[o] = '\0';
}

/* Model parameters for a job from the first matching rule (remote read:
 * the rule found when the series was fetched). */
static int job_params(struct run *r, struct job *j, const struct csvts *ts, struct model_params *p)
{
    const struct config_rule *rule = j->rule;
    if (!j->series) {
        char name[256];
        if (r->opt.metric_name)
            fmt(name, sizeof name, "%s", r->opt.metric_name);
        else
            metric_from_path(j->rel, name, sizeof name);
        struct label lb[2] = {
            {"__name__", name, 8, (uint32_t)strlen(name)},
            {"file", j->rel, 4, (uint32_t)strlen(j->rel)},
        };
        rule = config_match_rule(r->cfg, lb, 2);
        if (!rule) {
            fmt(j->err, sizeof j->err, "%s: no rule of %s models the series %s{file=\"%s\"}",
                j->in_path, r->cfg->source ? r->cfg->source : "the config", name, j->rel);
            return -1;
        }
    }
    *p = rule->params;
    if (r->opt.step_ms > 0) {
        p->step_ms = r->opt.step_ms;
    } else if (!rule->step_set || !r->opt.config_file) {
        /* The embedded default's step is the daemon's choice for live data;
         * history is replayed at its own sampling interval instead. */
        int64_t *t = malloc((ts->n + 1) * sizeof *t);
        size_t n = 0;
        if (!t) {
            fmt(j->err, sizeof j->err, "%s: out of memory", j->in_path);
            return -1;
        }
        for (size_t i = 0; i < ts->n; i++)
            if (!(ts->rows[i].flags & CSVTS_BAD))
                t[n++] = ts->rows[i].t;
        int64_t s = backtest_infer_step(t, n);
        free(t);
        if (s > 0) {
            p->step_ms = s;
            j->step_inferred = true;
        } else {
            /* Fewer than two distinct timestamps: nothing to infer from,
             * so use the daemon's default step. */
            p->step_ms = 60000;
        }
    }
    char why[256];
    if (model_params_check(p, why, sizeof why) < 0) {
        fmt(j->err, sizeof j->err, "%s: model parameters: %s", j->in_path, why);
        return -1;
    }
    return 0;
}

static int append_outputs(struct model_output **out, size_t *n, size_t *cap,
                          const struct model_output *buf, int k)
{
    if (k <= 0)
        return 0;
    if (*n + (size_t)k > *cap) {
        size_t ncap = *cap ? *cap * 2 : 1024;
        while (ncap < *n + (size_t)k)
            ncap *= 2;
        struct model_output *no = realloc(*out, ncap * sizeof *no);
        if (!no)
            return -1;
        *out = no;
        *cap = ncap;
    }
    memcpy(*out + *n, buf, (size_t)k * sizeof *buf);
    *n += (size_t)k;
    return 0;
}

static int cmp_output_t(const void *a, const void *b)
{
    int64_t x = ((const struct model_output *)a)->t, y = ((const struct model_output *)b)->t;
    return (x > y) - (x < y);
}

static int write_csv(struct job *j, const struct csvts *ts, const struct model_output *out,
                     size_t nout, const struct model_params *p)
{
    char *tmp = NULL;
    FILE *f = NULL;
    char num[40];

    if (make_parent_dirs(j->out_path, j->err, sizeof j->err) < 0)
        return -1;
    size_t tl = strlen(j->out_path) + 16;
    tmp = malloc(tl);
    if (!tmp) {
        fmt(j->err, sizeof j->err, "%s: out of memory", j->out_path);
        return -1;
    }
    snprintf(tmp, tl, "%s.tmp", j->out_path);
    f = fopen(tmp, "w");
    if (!f) {
        fmt(j->err, sizeof j->err, "%s: %s", tmp, strerror(errno));
        goto fail;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 16);
    fputs("timestamp,value,yhat,yhat_lower,yhat_upper,anomaly_score", f);
    for (int h = 0; h < p->nhorizons; h++) {
        config_format_duration(p->horizon_ms[h], num, sizeof num);
        fprintf(f, ",forecast_%s", num);
    }
    fputc('\n', f);
    for (size_t i = 0; i < ts->n; i++) {
        const struct csvts_row *row = &ts->rows[i];
        const struct model_output *o = NULL;
        if (!(row->flags & CSVTS_BAD)) {
            long k = find_step(out, nout, align(row->t, p->step_ms));
            if (k >= 0)
                o = &out[k];
        }
        if (ts->text) {
            fwrite(ts->text + row->ts_off, 1, row->ts_len, f);
        } else {
            /* Remote read: there is no input text to copy. */
            time_text(row->t, num, sizeof num);
            fputs(num, f);
        }
        fputc(',', f);
        num_text(o ? o->value : row->v, num, sizeof num);
        fputs(num, f);
        for (int c = 0; c < 3; c++) {
            double v = !o ? NAN : c == 0 ? o->yhat : c == 1 ? o->yhat_lower : o->yhat_upper;
            num_text(v, num, sizeof num);
            fputc(',', f);
            fputs(num, f);
        }
        num_text(o && o->ready ? o->anomaly_score : 0.0, num, sizeof num);
        fputc(',', f);
        fputs(num, f);
        for (int h = 0; h < p->nhorizons; h++) {
            num_text(o && h < o->nhorizons ? o->forecast[h] : NAN, num, sizeof num);
            fputc(',', f);
            fputs(num, f);
        }
        fputc('\n', f);
    }
    if (ferror(f) || fclose(f) != 0) {
        f = NULL;
        fmt(j->err, sizeof j->err, "%s: write error", tmp);
        goto fail;
    }
    f = NULL;
    if (rename(tmp, j->out_path) < 0) {
        fmt(j->err, sizeof j->err, "%s: %s", j->out_path, strerror(errno));
        goto fail;
    }
    free(tmp);
    return 0;
fail:
    if (f)
        fclose(f);
    if (tmp)
        unlink(tmp);
    free(tmp);
    return -1;
}

/* Keep each row's time and score for NAB. */
static int keep_nab_rows(struct job *j, const struct csvts *ts, const struct model_output *out,
                         size_t nout, int64_t step, bool from_extra)
{
    j->nab_t = malloc((ts->n + 1) * sizeof *j->nab_t);
    j->nab_score = malloc((ts->n + 1) * sizeof *j->nab_score);
    if (!j->nab_t || !j->nab_score) {
        fmt(j->err, sizeof j->err, "%s: out of memory", j->in_path);
        return -1;
    }
    for (size_t i = 0; i < ts->n; i++) {
        const struct csvts_row *row = &ts->rows[i];
        double s = 0.0;
        if (from_extra) {
            if (!(row->flags & (CSVTS_BAD | CSVTS_EXTRA_MISSING)))
                s = row->extra;
        } else if (!(row->flags & CSVTS_BAD)) {
            long k = find_step(out, nout, align(row->t, step));
            if (k >= 0 && out[k].ready)
                s = out[k].anomaly_score;
        }
        j->nab_t[i] = row->t;
        j->nab_score[i] = s;
    }
    j->nab_n = ts->n;
    return 0;
}

/* Remote read: the job's samples as rows (no text: write_csv formats the
 * times). The samples are freed here, as the rows now hold them. */
static int rows_from_samples(struct job *j, struct csvts *ts)
{
    ts->rows = malloc((j->nsamples + 1) * sizeof *ts->rows);
    if (!ts->rows) {
        fmt(j->err, sizeof j->err, "%s: out of memory", j->in_path);
        return -1;
    }
    for (size_t i = 0; i < j->nsamples; i++) {
        struct csvts_row *row = &ts->rows[i];
        memset(row, 0, sizeof *row);
        row->t = j->samples[i].t;
        row->v = j->samples[i].v; /* copied bit for bit: stale markers stay stale */
        row->extra = NAN;
        if (!isfinite(row->v)) {
            row->flags = CSVTS_MISSING;
            ts->n_missing++;
            j->stale += sample_is_stale(row->v);
        }
    }
    ts->n = j->nsamples;
    free(j->samples);
    j->samples = NULL;
    j->nsamples = 0;
    return 0;
}

static void run_file(struct run *r, struct job *j)
{
    struct csvts ts;
    struct csvts_options co = {NULL, r->opt.skip_bad_rows, r->opt.max_file_bytes};
    struct model_params p;
    struct model_output *out = NULL, buf[OBSERVE_MAX_OUT];
    size_t nout = 0, capout = 0;
    void *state = NULL;

    memset(&ts, 0, sizeof ts);
    if (r->labels)
        j->nwin = nab_labels_find(r->labels, j->rel, &j->win, &j->label_key);
    if (r->opt.score_only)
        co.extra_column = "anomaly_score";
    if (j->series) {
        if (rows_from_samples(j, &ts) < 0)
            goto fail;
    } else if (csvts_load(&ts, j->in_path, &co, j->err, sizeof j->err) < 0) {
        goto fail;
    }
    j->rows = ts.n;
    j->bad = ts.n_bad;
    j->missing = ts.n_missing;
    fmt(j->first_bad, sizeof j->first_bad, "%s", ts.first_bad);
    if (r->opt.score_only) {
        if (j->nwin >= 0 && keep_nab_rows(j, &ts, NULL, 0, 1, true) < 0)
            goto fail;
        csvts_cleanup(&ts);
        return;
    }

    if (job_params(r, j, &ts, &p) < 0)
        goto fail;
    j->step_ms = p.step_ms;
    j->nh = p.nhorizons;
    memcpy(j->horizon_ms, p.horizon_ms, sizeof j->horizon_ms);
    j->season_ms = p.nseasons > 0 && p.season_ms[0] > 0 ? p.season_ms[0] : DEFAULT_SEASON_MS;

    size_t ssize = model_state_size(&p);
    state = malloc(ssize ? ssize : 1);
    if (!state) {
        fmt(j->err, sizeof j->err, "%s: out of memory for model state (%zu bytes)", j->in_path,
            ssize);
        goto fail;
    }
    model_init(state, &p);
    int64_t tmax = INT64_MIN;
    for (size_t i = 0; i < ts.n; i++) {
        const struct csvts_row *row = &ts.rows[i];
        unsigned flags = 0;
        /* A CSV row without a value has nothing to feed; remote-read samples
         * all go in, stale markers and NaN too, as the daemon feeds them. */
        if ((row->flags & CSVTS_BAD) || ((row->flags & CSVTS_MISSING) && !j->series))
            continue;
        int k = model_observe(state, &p, row->t, row->v, buf, OBSERVE_MAX_OUT, &flags);
        if (append_outputs(&out, &nout, &capout, buf, k) < 0)
            goto oom;
        j->late += (flags & MODEL_F_LATE) != 0;
        j->duplicate += (flags & MODEL_F_DUPLICATE) != 0;
        j->gaps += (flags & MODEL_F_GAP) != 0;
        j->invalid += (flags & MODEL_F_INVALID) != 0;
        if (row->t > tmax)
            tmax = row->t;
    }
    if (tmax != INT64_MIN) {
        int k = model_flush(state, &p, align(tmax, p.step_ms) + p.step_ms, buf, OBSERVE_MAX_OUT);
        if (append_outputs(&out, &nout, &capout, buf, k) < 0)
            goto oom;
    }
    /* The model emits steps in time order; sort anyway so lookups are safe
     * whatever it does. */
    for (size_t k = 1; k < nout; k++) {
        if (out[k].t <= out[k - 1].t) {
            qsort(out, nout, sizeof *out, cmp_output_t);
            break;
        }
    }
    j->steps = nout;
    for (size_t k = 0; k < nout; k++)
        j->ready += out[k].ready;
    for (size_t i = 0; i < ts.n; i++)
        if (!(ts.rows[i].flags & CSVTS_BAD) &&
            find_step(out, nout, align(ts.rows[i].t, p.step_ms)) < 0)
            j->no_output++;

    if (backtest_evaluate(out, nout, p.step_ms, p.horizon_ms, p.nhorizons, j->season_ms, &j->ev) <
        0) {
        fmt(j->err, sizeof j->err, "%s: cannot evaluate (bad step or horizons)", j->in_path);
        goto fail;
    }
    if (j->out_path && write_csv(j, &ts, out, nout, &p) < 0)
        goto fail;
    if (j->nwin >= 0 && keep_nab_rows(j, &ts, out, nout, p.step_ms, false) < 0)
        goto fail;
    free(out);
    free(state);
    csvts_cleanup(&ts);
    return;
oom:
    fmt(j->err, sizeof j->err, "%s: out of memory", j->in_path);
fail:
    j->failed = 1;
    free(out);
    free(state);
    csvts_cleanup(&ts);
}

static void *worker(void *arg)
{
    struct run *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        size_t i = r->next < r->njobs ? r->next++ : r->njobs;
        pthread_mutex_unlock(&r->lock);
        if (i >= r->njobs)
            return NULL;
        run_file(r, &r->jobs[i]);
    }
}

static void run_all(struct run *r)
{
    unsigned nt = r->opt.jobs < r->njobs ? r->opt.jobs : (unsigned)r->njobs;
    pthread_t *th = nt > 1 ? calloc(nt, sizeof *th) : NULL;
    unsigned started = 0;

    r->next = 0;
    if (th) {
        for (; started < nt; started++)
            if (pthread_create(&th[started], NULL, worker, r) != 0)
                break;
    }
    /* This thread works too, so a failed pthread_create only slows things. */
    worker(r);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
}

/* ---- Aggregation ------------------------------------------------------------------- */

/* Geometric mean of per-file MAE ratios of one slot. */
struct geo {
    size_t n;
    double sum_log;
    size_t nexcl;
};

static double geo_mean(const struct geo *g)
{
    return g->n ? exp(g->sum_log / (double)g->n) : NAN;
}

/* ratio model/baseline of job j, slot s; false when it cannot enter a
 * geometric mean (no points, baseline MAE 0, model MAE 0). */
static bool ratio(const struct job *j, int s, bool seasonal, double *out)
{
    const struct backtest_horizon_eval *h = &j->ev.h[s];
    size_t n = seasonal ? h->ns : h->n;
    double m = seasonal ? h->mae_model_s : h->mae_model;
    double b = seasonal ? h->mae_seasonal : h->mae_naive;
    if (j->failed || s >= j->ev.nslots || n == 0 || !(b > 0) || !(m > 0) || !isfinite(m / b))
        return false;
    *out = m / b;
    return true;
}

static bool in_reference_subset(const char *rel)
{
    for (size_t i = 0; i < NREFERENCE_SUBSET; i++) {
        const char *hit = strstr(rel, reference_subset[i]);
        if (hit && (hit == rel || hit[-1] == '/'))
            return true;
    }
    return false;
}

struct totals {
    size_t files_ok, files_failed, rows, bad, missing, late, steps, ready;
    size_t cov_n, cov_inside;
    int nslots;
    char slot_name[BACKTEST_EVAL_SLOTS][32];
    int64_t slot_ms[BACKTEST_EVAL_SLOTS];
    struct geo naive[BACKTEST_EVAL_SLOTS], seasonal[BACKTEST_EVAL_SLOTS];
    struct geo sub_naive[BACKTEST_EVAL_SLOTS], sub_seasonal[BACKTEST_EVAL_SLOTS];
    size_t sub_files;
    double coverage_nominal;
    bool mixed_horizons;

    /* NAB */
    bool nab;
    size_t nab_files, nab_unlabelled, labelled_missing;
    struct nab_result nab_res[NAB_NPROFILES];
    struct nab_file_result *nab_file[NAB_NPROFILES]; /* per job index, NULL if none */
    long *nab_index;                                 /* job -> corpus file, -1 */
};

static int compute_totals(struct run *r, struct totals *t)
{
    memset(t, 0, sizeof *t);
    t->coverage_nominal = NAN;
    t->nslots = 0;
    for (size_t i = 0; i < r->njobs; i++) {
        const struct job *j = &r->jobs[i];
        if (j->failed) {
            t->files_failed++;
            continue;
        }
        t->files_ok++;
        t->rows += j->rows;
        t->bad += j->bad;
        t->missing += j->missing;
        t->late += j->late;
        t->steps += j->steps;
        t->ready += j->ready;
        t->cov_n += j->ev.cov_n;
        t->cov_inside += j->ev.cov_inside;
        if (r->opt.score_only)
            continue;
        if (t->nslots == 0) {
            t->nslots = j->ev.nslots;
            fmt(t->slot_name[0], sizeof t->slot_name[0], "step");
            for (int s = 1; s < t->nslots; s++) {
                t->slot_ms[s] = j->horizon_ms[s - 1];
                config_format_duration(j->horizon_ms[s - 1], t->slot_name[s],
                                       sizeof t->slot_name[s]);
            }
        } else if (j->ev.nslots != t->nslots ||
                   memcmp(&t->slot_ms[1], j->horizon_ms,
                          (size_t)(t->nslots - 1) * sizeof(int64_t)) != 0) {
            t->mixed_horizons = true;
        }
        bool sub = in_reference_subset(j->rel);
        t->sub_files += sub;
        for (int s = 0; s < t->nslots && s < j->ev.nslots; s++) {
            double q;
            if (ratio(j, s, false, &q)) {
                t->naive[s].n++;
                t->naive[s].sum_log += log(q);
                if (sub) {
                    t->sub_naive[s].n++;
                    t->sub_naive[s].sum_log += log(q);
                }
            } else {
                t->naive[s].nexcl++;
                t->sub_naive[s].nexcl += sub;
            }
            if (ratio(j, s, true, &q)) {
                t->seasonal[s].n++;
                t->seasonal[s].sum_log += log(q);
                if (sub) {
                    t->sub_seasonal[s].n++;
                    t->sub_seasonal[s].sum_log += log(q);
                }
            } else {
                t->seasonal[s].nexcl++;
                t->sub_seasonal[s].nexcl += sub;
            }
        }
    }
    if (r->cfg && r->cfg->n_rules > 0)
        t->coverage_nominal = r->cfg->rules[0].params.coverage;

    if (!r->labels)
        return 0;
    t->nab = true;
    struct nab_corpus *c = nab_corpus_create();
    t->nab_index = malloc((r->njobs + 1) * sizeof *t->nab_index);
    if (!c || !t->nab_index)
        goto oom;
    for (size_t i = 0; i < r->njobs; i++) {
        const struct job *j = &r->jobs[i];
        t->nab_index[i] = -1;
        if (j->failed)
            continue;
        if (j->nwin < 0) {
            t->nab_unlabelled++;
            continue;
        }
        if (nab_corpus_add(c, j->label_key, j->nab_t, j->nab_score, j->nab_n, j->win,
                           (size_t)j->nwin) < 0)
            goto oom;
        t->nab_index[i] = (long)t->nab_files++;
    }
    /* Labelled files that were not among the inputs. */
    for (size_t k = 0; k < nab_labels_nfiles(r->labels); k++) {
        const char *key = nab_labels_key(r->labels, k);
        bool seen = false;
        for (size_t i = 0; i < r->njobs && !seen; i++)
            seen = r->jobs[i].label_key && strcmp(r->jobs[i].label_key, key) == 0;
        t->labelled_missing += !seen;
    }
    for (int p = 0; p < NAB_NPROFILES; p++) {
        t->nab_file[p] = calloc(t->nab_files + 1, sizeof *t->nab_file[p]);
        if (!t->nab_file[p] || nab_corpus_score(c, &nab_profiles[p], &t->nab_res[p]) < 0 ||
            nab_corpus_files(c, &nab_profiles[p], t->nab_res[p].threshold, t->nab_file[p]) < 0)
            goto oom;
    }
    nab_corpus_destroy(c);
    return 0;
oom:
    nab_corpus_destroy(c);
    fprintf(stderr, "promcast backtest: out of memory while scoring\n");
    return -1;
}

static void totals_cleanup(struct totals *t)
{
    for (int p = 0; p < NAB_NPROFILES; p++)
        free(t->nab_file[p]);
    free(t->nab_index);
}

/* ---- Text summary ------------------------------------------------------------------ */

static void print_ratio(FILE *f, const struct job *j, int s)
{
    double q;
    if (ratio(j, s, false, &q))
        fprintf(f, " %7.3f", q);
    else
        fprintf(f, " %7s", "-");
}

/* What the summary calls a job: its series (remote read) or its path. */
static const char *job_name(const struct job *j)
{
    return j->series ? j->series : j->rel;
}

/* The remote-read lines at the top of the text summary. */
static void print_source(FILE *f, const struct run *r)
{
    char from[40], to[40];
    time_text(r->opt.start_ms, from, sizeof from);
    time_text(r->opt.end_ms, to, sizeof to);
    fprintf(f, "source: %s, match %s, %s to %s\n", r->rr.url, r->opt.match, from, to);
    fprintf(f, "        %zu request%s, %llu bytes; %zu series read, %zu samples kept",
            r->rr.requests, r->rr.requests == 1 ? "" : "s", (unsigned long long)r->rr.bytes,
            r->rr.series, r->rr.samples);
    if (r->rr.overlap)
        fprintf(f, ", %zu overlapping samples dropped", r->rr.overlap);
    if (r->rr.skipped_native)
        fprintf(f, ", %llu native-histogram chunks/samples ignored",
                (unsigned long long)r->rr.skipped_native);
    fprintf(f, "\noutput: %s (index.csv maps files to series)\n", r->opt.output);
    if (r->rr.nskipped) {
        fprintf(f, "skipped, no rule models them: %zu series:", r->rr.nskipped);
        for (size_t i = 0; i < r->rr.nskipped && i < 20; i++)
            fprintf(f, " %s", r->rr.skipped[i].series);
        if (r->rr.nskipped > 20)
            fprintf(f, " ... (all in index.csv)");
        fputc('\n', f);
    }
}

static void print_text(struct run *r, const struct totals *t, double secs)
{
    FILE *f = stdout;
    bool score_only = r->opt.score_only != NULL;
    bool remote = r->opt.remote_read != NULL;

    if (remote)
        fprintf(f, "promcast backtest: %zu series, %zu rows", r->njobs, t->rows);
    else
        fprintf(f, "promcast backtest: %zu file%s, %zu rows", r->njobs, r->njobs == 1 ? "" : "s",
                t->rows);
    if (t->bad || t->missing)
        fprintf(f, " (%zu malformed, %zu missing values)", t->bad, t->missing);
    if (t->files_failed)
        fprintf(f, ", %zu %s FAILED", t->files_failed,
                remote                 ? "series"
                : t->files_failed == 1 ? "file"
                                       : "files");
    fprintf(f, ", %.1f s\n", secs);
    if (!score_only)
        fprintf(f, "config: %s\n", r->cfg && r->cfg->source ? r->cfg->source : "<embedded>");
    if (remote)
        print_source(f, r);

    /* Per file. */
    fprintf(f, "\n%-52s %7s", remote ? "series" : "file", "rows");
    if (!score_only) {
        fprintf(f, " %6s %7s %6s", "step", "ready", "cover");
        for (int s = 0; s < t->nslots; s++)
            fprintf(f, " %7s", t->slot_name[s]);
    }
    if (t->nab)
        fprintf(f, " %8s %8s", "nab_raw", "detected");
    fputc('\n', f);
    for (size_t i = 0; i < r->njobs; i++) {
        const struct job *j = &r->jobs[i];
        if (j->failed) {
            fprintf(f, "%-52s FAILED: %s\n", job_name(j), j->err);
            continue;
        }
        fprintf(f, "%-52s %7zu", job_name(j), j->rows);
        if (!score_only) {
            char step[32] = "-";
            if (j->step_ms > 0) {
                config_format_duration(j->step_ms, step, sizeof step);
                if (j->step_inferred)
                    strcat(step, "*");
            }
            fprintf(f, " %6s %7zu", step, j->ready);
            if (j->ev.cov_n)
                fprintf(f, " %6.3f", (double)j->ev.cov_inside / (double)j->ev.cov_n);
            else
                fprintf(f, " %6s", "-");
            for (int s = 0; s < t->nslots; s++)
                print_ratio(f, j, s);
        }
        if (t->nab) {
            if (t->nab_index[i] >= 0) {
                const struct nab_file_result *x = &t->nab_file[0][t->nab_index[i]];
                fprintf(f, " %8.3f %6zu/%zu", x->raw, x->windows_detected, x->windows);
            } else {
                fprintf(f, " %8s", "unlabel.");
            }
        }
        fputc('\n', f);
        if (j->bad)
            fprintf(f, "    %zu malformed row%s skipped, first: %s\n", j->bad,
                    j->bad == 1 ? "" : "s", j->first_bad);
    }
    if (!score_only)
        fprintf(f, "(step: * = inferred from the data; ready: steps past warm-up; cover: one-step "
                   "interval coverage;\n"
                   " columns step/horizons: MAE relative to the naive last-value forecast)\n");
    if (t->nab)
        fprintf(f, "(nab_raw, detected: the file's part of the standard profile's total at the "
                   "chosen threshold)\n");

    if (!score_only && t->nslots > 0) {
        fprintf(f, "\nforecast error: geometric mean over %s of MAE / baseline MAE\n",
                remote ? "series" : "files");
        fprintf(f, "(naive = value at the forecast origin, snaive = value one season before the "
                   "target)\n");
        const char *unit = remote ? "series" : "files";
        int w = remote ? 6 : 5;
        fprintf(f, "  %-8s %9s %*s %9s %*s", "", remote ? "all series" : "all files", w, "", "", w,
                "");
        if (t->sub_files)
            fprintf(f, " | %s", "reference subset");
        fprintf(f, "\n  %-8s %9s %*s %9s %*s", "horizon", "vs naive", w, unit, "vs snaive", w,
                unit);
        if (t->sub_files)
            fprintf(f, " | %9s %5s %9s %5s", "vs naive", "files", "vs snaive", "files");
        fputc('\n', f);
        for (int s = 0; s < t->nslots; s++) {
            fprintf(f, "  %-8s %9.3f %*zu %9.3f %*zu", t->slot_name[s], geo_mean(&t->naive[s]), w,
                    t->naive[s].n, geo_mean(&t->seasonal[s]), w, t->seasonal[s].n);
            if (t->sub_files)
                fprintf(f, " | %9.3f %5zu %9.3f %5zu", geo_mean(&t->sub_naive[s]),
                        t->sub_naive[s].n, geo_mean(&t->sub_seasonal[s]), t->sub_seasonal[s].n);
            fputc('\n', f);
        }
        if (t->mixed_horizons)
            fprintf(f, "  (files have different horizons; columns follow the first file)\n");
        /* Which files each "vs naive" mean leaves out, and why it may. */
        for (int s = 0; s < t->nslots; s++) {
            if (!t->naive[s].nexcl)
                continue;
            fprintf(f, "  not in the %s means (no points, or a naive or model MAE of 0):",
                    t->slot_name[s]);
            for (size_t i = 0; i < r->njobs; i++) {
                double q;
                if (!r->jobs[i].failed && !ratio(&r->jobs[i], s, false, &q))
                    fprintf(f, " %s", job_name(&r->jobs[i]));
            }
            fputc('\n', f);
        }
        if (t->sub_files)
            fprintf(f, "  reference subset = files below realTraffic/, realAdExchange/ and "
                       "artificialWithAnomaly/ (the NAB data README's forecast table)\n");
        fprintf(f, "\ninterval coverage (one step, nominal %.3g): ", t->coverage_nominal);
        if (t->cov_n)
            fprintf(f, "%.4f over %zu steps\n", (double)t->cov_inside / (double)t->cov_n, t->cov_n);
        else
            fprintf(f, "- (no ready step)\n");
    }

    if (t->nab) {
        size_t nw = t->nab_res[0].windows;
        fprintf(f, "\nNAB score (%s; %zu file%s, %zu window%s; null detector 0, perfect 100):\n",
                r->opt.labels_file, t->nab_files, t->nab_files == 1 ? "" : "s", nw,
                nw == 1 ? "" : "s");
        fprintf(f, "  %-20s %8s %10s %12s %9s %7s\n", "profile", "score", "raw", "threshold",
                "detected", "fp_rows");
        for (int p = 0; p < NAB_NPROFILES; p++) {
            const struct nab_result *x = &t->nab_res[p];
            fprintf(f, "  %-20s %8.2f %10.4f %12.6g %5zu/%-3zu %7zu\n", nab_profiles[p].name,
                    x->score, x->raw, x->threshold, x->windows_detected, x->windows, x->fp_rows);
        }
        if (t->nab_unlabelled)
            fprintf(f, "  %zu input file%s not in the labels (not scored)\n", t->nab_unlabelled,
                    t->nab_unlabelled == 1 ? "" : "s");
        if (t->labelled_missing)
            fprintf(f, "  %zu labelled file%s not among the inputs\n", t->labelled_missing,
                    t->labelled_missing == 1 ? "" : "s");
    }
}

/* ---- JSON summary ------------------------------------------------------------------ */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    char buf[40];
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    num_text(v, buf, sizeof buf);
    fputs(buf, f);
}

static void json_geo(FILE *f, const struct geo *g)
{
    fputs("{\"files\": ", f);
    fprintf(f, "%zu, \"excluded\": %zu, \"geomean\": ", g->n, g->nexcl);
    json_num(f, geo_mean(g));
    fputc('}', f);
}

static void json_slot(FILE *f, const struct job *j, int s)
{
    const struct backtest_horizon_eval *h = &j->ev.h[s];
    double q;
    fprintf(f, "{\"points\": %zu, \"mae\": ", h->n);
    json_num(f, h->n ? h->mae_model : NAN);
    fputs(", \"mae_naive\": ", f);
    json_num(f, h->n ? h->mae_naive : NAN);
    fputs(", \"rel_naive\": ", f);
    json_num(f, ratio(j, s, false, &q) ? q : NAN);
    fprintf(f, ", \"seasonal_points\": %zu, \"mae_on_seasonal_points\": ", h->ns);
    json_num(f, h->ns ? h->mae_model_s : NAN);
    fputs(", \"mae_seasonal_naive\": ", f);
    json_num(f, h->ns ? h->mae_seasonal : NAN);
    fputs(", \"rel_seasonal_naive\": ", f);
    json_num(f, ratio(j, s, true, &q) ? q : NAN);
    fputc('}', f);
}

/* The "source" and "skipped_series" members of a remote-read summary. */
static void json_source(FILE *f, const struct run *r)
{
    char from[40], to[40];
    time_text(r->opt.start_ms, from, sizeof from);
    time_text(r->opt.end_ms, to, sizeof to);
    fputs(",\n  \"source\": {\"remote_read\": ", f);
    json_str(f, r->rr.url);
    fputs(", \"match\": ", f);
    json_str(f, r->opt.match);
    fputs(", \"start\": ", f);
    json_str(f, from);
    fputs(", \"end\": ", f);
    json_str(f, to);
    fprintf(f,
            ", \"start_ms\": %lld, \"end_ms\": %lld, \"requests\": %zu, \"response_bytes\": %llu"
            ", \"series\": %zu, \"series_modelled\": %zu, \"series_skipped\": %zu, \"samples\": %zu"
            ", \"overlapping_samples\": %zu, \"native_histograms_ignored\": %llu}",
            (long long)r->opt.start_ms, (long long)r->opt.end_ms, r->rr.requests,
            (unsigned long long)r->rr.bytes, r->rr.series, r->njobs, r->rr.nskipped, r->rr.samples,
            r->rr.overlap, (unsigned long long)r->rr.skipped_native);
    fputs(",\n  \"skipped_series\": [", f);
    for (size_t i = 0; i < r->rr.nskipped; i++) {
        fputs(i ? ", " : "", f);
        json_str(f, r->rr.skipped[i].series);
    }
    fputc(']', f);
}

static int write_json(struct run *r, const struct totals *t, double secs)
{
    char *tmp = NULL;
    size_t tl = strlen(r->opt.summary_json) + 8;
    FILE *f;

    tmp = malloc(tl);
    if (!tmp)
        return -1;
    snprintf(tmp, tl, "%s.tmp", r->opt.summary_json);
    f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "promcast backtest: %s: %s\n", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    fputs("{\n  \"mode\": ", f);
    json_str(f, r->opt.score_only ? "score-only" : "backtest");
    fputs(",\n  \"config\": ", f);
    if (r->cfg)
        json_str(f, r->cfg->source ? r->cfg->source : "<embedded>");
    else
        fputs("null", f);
    if (r->opt.remote_read)
        json_source(f, r);
    fprintf(f, ",\n  \"seconds\": %.3f", secs);
    fprintf(f, ",\n  \"files_total\": %zu, \"files_failed\": %zu", r->njobs, t->files_failed);
    fprintf(f, ",\n  \"rows\": %zu, \"malformed_rows\": %zu, \"missing_values\": %zu", t->rows,
            t->bad, t->missing);
    fprintf(f, ",\n  \"horizons\": [");
    for (int s = 0; s < t->nslots; s++) {
        if (s)
            fputs(", ", f);
        json_str(f, t->slot_name[s]);
    }
    fputs("]", f);

    if (!r->opt.score_only) {
        fputs(",\n  \"mae_ratio\": {", f);
        for (int s = 0; s < t->nslots; s++) {
            fprintf(f, "%s\n    ", s ? "," : "");
            json_str(f, t->slot_name[s]);
            fputs(": {\"naive\": ", f);
            json_geo(f, &t->naive[s]);
            fputs(", \"seasonal_naive\": ", f);
            json_geo(f, &t->seasonal[s]);
            fputs(", \"reference_subset_naive\": ", f);
            json_geo(f, &t->sub_naive[s]);
            fputs(", \"reference_subset_seasonal_naive\": ", f);
            json_geo(f, &t->sub_seasonal[s]);
            fputc('}', f);
        }
        fprintf(f, "\n  },\n  \"reference_subset_files\": %zu", t->sub_files);
        fputs(",\n  \"coverage\": {\"nominal\": ", f);
        json_num(f, t->coverage_nominal);
        fputs(", \"one_step\": ", f);
        json_num(f, t->cov_n ? (double)t->cov_inside / (double)t->cov_n : NAN);
        fprintf(f, ", \"points\": %zu}", t->cov_n);
    }

    if (t->nab) {
        fputs(",\n  \"nab\": {\"labels\": ", f);
        json_str(f, r->opt.labels_file);
        fprintf(f,
                ", \"files\": %zu, \"windows\": %zu, \"unlabelled_inputs\": %zu, "
                "\"labelled_files_not_in_input\": %zu",
                t->nab_files, t->nab_res[0].windows, t->nab_unlabelled, t->labelled_missing);
        for (int p = 0; p < NAB_NPROFILES; p++) {
            const struct nab_result *x = &t->nab_res[p];
            fputs(",\n    ", f);
            json_str(f, nab_profiles[p].name);
            fputs(": {\"score\": ", f);
            json_num(f, x->score);
            fputs(", \"raw\": ", f);
            json_num(f, x->raw);
            fputs(", \"null_raw\": ", f);
            json_num(f, x->null_raw);
            fputs(", \"perfect_raw\": ", f);
            json_num(f, x->perfect_raw);
            fputs(", \"threshold\": ", f);
            json_num(f, x->threshold);
            fprintf(f, ", \"windows_detected\": %zu, \"fp_rows\": %zu}", x->windows_detected,
                    x->fp_rows);
        }
        fputs("\n  }", f);
    }

    fputs(",\n  \"files\": [", f);
    for (size_t i = 0; i < r->njobs; i++) {
        const struct job *j = &r->jobs[i];
        fprintf(f, "%s\n    {\"path\": ", i ? "," : "");
        json_str(f, j->rel);
        if (j->series) {
            fputs(", \"series\": ", f);
            json_str(f, j->series);
        }
        if (j->failed) {
            fputs(", \"error\": ", f);
            json_str(f, j->err);
            fputc('}', f);
            continue;
        }
        fprintf(f, ", \"rows\": %zu, \"malformed_rows\": %zu, \"missing_values\": %zu", j->rows,
                j->bad, j->missing);
        if (!r->opt.score_only) {
            char step[32];
            config_format_duration(j->step_ms, step, sizeof step);
            fputs(", \"step\": ", f);
            json_str(f, step);
            fprintf(f, ", \"step_ms\": %lld, \"step_inferred\": %s", (long long)j->step_ms,
                    j->step_inferred ? "true" : "false");
            fprintf(f, ", \"steps\": %zu, \"ready_steps\": %zu, \"rows_without_output\": %zu",
                    j->steps, j->ready, j->no_output);
            fprintf(f, ", \"late\": %zu, \"duplicates\": %zu, \"gaps\": %zu", j->late, j->duplicate,
                    j->gaps);
            if (j->series)
                fprintf(f, ", \"stale_markers\": %zu", j->stale);
            fputs(", \"coverage\": ", f);
            json_num(f, j->ev.cov_n ? (double)j->ev.cov_inside / (double)j->ev.cov_n : NAN);
            fputs(", \"horizons\": {", f);
            for (int s = 0; s < j->ev.nslots; s++) {
                char name[32] = "step";
                if (s > 0)
                    config_format_duration(j->horizon_ms[s - 1], name, sizeof name);
                fprintf(f, "%s", s ? ", " : "");
                json_str(f, name);
                fputs(": ", f);
                json_slot(f, j, s);
            }
            fputc('}', f);
        }
        if (t->nab && t->nab_index[i] >= 0) {
            fputs(", \"nab\": {\"key\": ", f);
            json_str(f, j->label_key);
            fprintf(f, ", \"windows\": %d", j->nwin);
            for (int p = 0; p < NAB_NPROFILES; p++) {
                const struct nab_file_result *x = &t->nab_file[p][t->nab_index[i]];
                fputs(", ", f);
                json_str(f, nab_profiles[p].name);
                fputs(": {\"raw\": ", f);
                json_num(f, x->raw);
                fprintf(f, ", \"windows_detected\": %zu, \"fp_rows\": %zu}", x->windows_detected,
                        x->fp_rows);
            }
            fputc('}', f);
        }
        fputc('}', f);
    }
    fputs("\n  ]\n}\n", f);
    if (ferror(f) || fclose(f) != 0) {
        fprintf(stderr, "promcast backtest: %s: write error\n", tmp);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    if (rename(tmp, r->opt.summary_json) < 0) {
        fprintf(stderr, "promcast backtest: %s: %s\n", r->opt.summary_json, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

/* ---- Entry point ------------------------------------------------------------------- */

/* Make sure --output can be a directory before reading anything. */
static int prepare_output_dir(const char *dir)
{
    struct stat st;
    char err[600] = "";
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return 0;
        fprintf(stderr, "promcast backtest: --output %s: not a directory\n", dir);
        return -1;
    }
    char *probe = path_join(dir, "index.csv");
    int rc = probe ? make_parent_dirs(probe, err, sizeof err) : -1;
    free(probe);
    if (rc < 0)
        fprintf(stderr, "promcast backtest: --output %s: %s\n", dir,
                err[0] ? err : "out of memory");
    return rc;
}

int backtest_main(int argc, char **argv)
{
    struct run r;
    struct totals t;
    struct rr_fetch rf;
    char err[4096];
    int ret = 1, nerr = 0;
    bool totals_done = false, curl_started = false;

    memset(&r, 0, sizeof r);
    memset(&t, 0, sizeof t);
    memset(&rf, 0, sizeof rf);
    pthread_mutex_init(&r.lock, NULL);
    int pa = parse_args(argc, argv, &r.opt);
    if (pa != 0) {
        if (pa > 0) {
            usage(stdout);
            ret = 0;
        }
        goto done;
    }
    int64_t t0 = clock_mono_ms();

    if (!r.opt.score_only) {
        err[0] = '\0';
        if (r.opt.config_file)
            r.cfg = config_load_file(r.opt.config_file, err, sizeof err, &nerr);
        else
            r.cfg = config_load_string("<embedded>", config_default_yaml,
                                       strlen(config_default_yaml), err, sizeof err, &nerr);
        if (!r.cfg) {
            fprintf(stderr, "%s", err);
            if (err[0] && err[strlen(err) - 1] != '\n')
                fputc('\n', stderr);
            fprintf(stderr, "promcast backtest: invalid configuration\n");
            goto done;
        }
    }
    if (r.opt.labels_file) {
        r.labels = nab_labels_load(r.opt.labels_file, err, sizeof err);
        if (!r.labels) {
            fprintf(stderr, "promcast backtest: %s\n", err);
            goto done;
        }
    }
    if (r.opt.remote_read) {
        if (prepare_output_dir(r.opt.output) < 0)
            goto done;
        /* A whole program: libcurl is set up here, before any thread. */
        if (outbound_global_init() < 0) {
            fprintf(stderr, "promcast backtest: cannot initialise the HTTP client\n");
            goto done;
        }
        curl_started = true;
        if (rr_init(&rf, r.cfg, r.opt.max_series, r.opt.max_samples) < 0) {
            fprintf(stderr, "promcast backtest: out of memory\n");
            goto done;
        }
        if (fetch_remote(&r, &rf) < 0 || make_remote_jobs(&r, &rf) < 0)
            goto done;
        rr_cleanup(&rf); /* the samples now belong to the jobs */
    } else {
        if (make_jobs(&r, r.opt.score_only ? r.opt.score_only : r.opt.input,
                      r.opt.score_only ? NULL : r.opt.output) < 0)
            goto done;
        /* Outputs must never overwrite the inputs they are made from. */
        for (size_t i = 0; i < r.njobs; i++) {
            if (r.jobs[i].out_path && (strcmp(r.jobs[i].out_path, r.jobs[i].in_path) == 0 ||
                                       same_file(r.jobs[i].out_path, r.jobs[i].in_path))) {
                fprintf(stderr, "promcast backtest: output %s would overwrite its input\n",
                        r.jobs[i].out_path);
                goto done;
            }
        }
    }

    run_all(&r);
    if (compute_totals(&r, &t) < 0)
        goto done;
    totals_done = true;
    if (r.opt.remote_read && write_index(&r) < 0)
        goto done;
    double secs = (double)(clock_mono_ms() - t0) / 1000.0;
    print_text(&r, &t, secs);
    fflush(stdout);
    for (size_t i = 0; i < r.njobs; i++)
        if (r.jobs[i].failed)
            fprintf(stderr, "promcast backtest: %s\n", r.jobs[i].err);
    if (r.opt.summary_json && write_json(&r, &t, secs) < 0)
        goto done;
    ret = t.files_failed ? 1 : 0;
done:
    if (totals_done)
        totals_cleanup(&t);
    rr_cleanup(&rf);
    for (size_t i = 0; i < r.njobs; i++) {
        free(r.jobs[i].rel);
        free(r.jobs[i].in_path);
        free(r.jobs[i].out_path);
        free(r.jobs[i].series);
        free(r.jobs[i].samples);
        free(r.jobs[i].nab_t);
        free(r.jobs[i].nab_score);
    }
    free(r.jobs);
    for (size_t i = 0; i < r.rr.nskipped; i++)
        free(r.rr.skipped[i].series);
    free(r.rr.skipped);
    nab_labels_destroy(r.labels);
    config_destroy(r.cfg);
    if (curl_started)
        outbound_global_cleanup();
    pthread_mutex_destroy(&r.lock);
    return ret;
}
