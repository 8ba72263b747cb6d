/*
 * backtest.c — `promcast backtest`: replay CSV history through the model.
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
 * Deliberately not done here: reading from Prometheus (`--remote-read` is a
 * later addition), plotting, tuning parameters, or any model logic (model.c
 * is the only place that knows how forecasts are made).
 *
 * No third-party library: JSON output is written by hand (plain numbers and
 * escaped strings), so jansson stays inside nab.c.
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
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "csvts.h"
#include "labels.h"
#include "model.h"
#include "nab.h"

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
    unsigned jobs;
};

/* One input file and everything learned from it. */
struct job {
    char *rel;      /* path relative to --input (or as given for a file) */
    char *in_path;  /* path opened */
    char *out_path; /* NULL: no CSV written */
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

struct run {
    struct options opt;
    struct config *cfg;
    struct nab_labels *labels;
    struct job *jobs;
    size_t njobs;
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
          "       promcast backtest --score-only=CSV|DIR --labels=WINDOWS.json "
          "[--summary-json=FILE]\n"
          "\n"
          "Replays history through the same model code as the daemon. Each input CSV has a\n"
          "header starting `timestamp,value`; timestamps in unix seconds, unix milliseconds\n"
          "(magnitude >= 1e11), RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` (UTC). With a\n"
          "directory, every *.csv below it is processed and outputs are mirrored under\n"
          "--output. Each output row is the input row's timestamp text, then\n"
          "value,yhat,yhat_lower,yhat_upper,anomaly_score,forecast_<horizon>... A summary\n"
          "(MAE relative to naive and seasonal-naive forecasts per horizon, interval\n"
          "coverage, NAB scores when --labels is given) goes to stdout.\n"
          "\n"
          "flags:\n"
          "  --config=FILE          configuration file (default: the embedded default config:\n"
          "                         model auto, horizons 15m and 1h, coverage 0.95)\n"
          "  --input=PATH           a CSV file or a directory of CSV files\n"
          "  --output=PATH          output CSV file, or directory when --input is one\n"
          "                         (default: no CSV output, summary only)\n"
          "  --labels=FILE          anomaly windows, NAB combined_windows.json format; keys are\n"
          "                         file paths relative to --input\n"
          "  --score-only=PATH      do not run the model: score existing CSVs that have an\n"
          "                         anomaly_score column against --labels (NAB)\n"
          "  --summary-json=FILE    also write the summary as JSON\n"
          "  --step=DURATION        model step, overriding the config and the inference\n"
          "                         (default: the config's step, else inferred per file)\n"
          "  --metric-name=NAME     __name__ given to every input series for rule matching\n"
          "                         (default: the file name without .csv)\n"
          "  --skip-bad-rows        keep going past malformed rows (counted, written with\n"
          "                         empty fields) instead of stopping at the first one\n"
          "  --max-file-bytes=N     largest input file accepted (default 1073741824)\n"
          "  --jobs=N               files processed in parallel (default: CPUs, at most 8)\n"
          "  --help                 this text\n"
          "\n"
          "Exit status: 0 on success, 1 on bad usage or bad input (message on stderr).\n"
          "See docs/backtest.md for the details.\n",
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

/* Returns 0, 1 for --help, -1 on error (message printed). */
static int parse_args(int argc, char **argv, struct options *o)
{
    static const char *const valued[] = {
        "config", "input",       "output",         "labels", "score-only", "summary-json",
        "step",   "metric-name", "max-file-bytes", "jobs",   "config.file"};
    memset(o, 0, sizeof *o);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->jobs = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (unsigned)ncpu;
    o->max_file_bytes = CSVTS_DEFAULT_MAX_BYTES;

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
        bool known = false;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            if (strlen(valued[k]) == nlen && strncmp(valued[k], name, nlen) == 0)
                known = true;
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
        } else if (IS("jobs")) {
            size_t j;
            if (parse_size(val, &j) < 0 || j == 0 || j > 256) {
                fprintf(stderr, "promcast backtest: --jobs: want 1..256, got \"%s\"\n", val);
                return -1;
            }
            o->jobs = (unsigned)j;
        }
#undef IS
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
        fprintf(stderr, "promcast backtest: --input is required (see --help)\n");
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

/* Model parameters for a job from the first matching rule. */
static int job_params(struct run *r, struct job *j, const struct csvts *ts, struct model_params *p)
{
    char name[256];
    if (r->opt.metric_name)
        fmt(name, sizeof name, "%s", r->opt.metric_name);
    else
        metric_from_path(j->rel, name, sizeof name);
    struct label lb[2] = {
        {"__name__", name, 8, (uint32_t)strlen(name)},
        {"file", j->rel, 4, (uint32_t)strlen(j->rel)},
    };
    const struct config_rule *rule = config_match_rule(r->cfg, lb, 2);
    if (!rule) {
        fmt(j->err, sizeof j->err, "%s: no rule of %s models the series %s{file=\"%s\"}",
            j->in_path, r->cfg->source ? r->cfg->source : "the config", name, j->rel);
        return -1;
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
        fwrite(ts->text + row->ts_off, 1, row->ts_len, f);
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
    if (csvts_load(&ts, j->in_path, &co, j->err, sizeof j->err) < 0)
        goto fail;
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
        if (row->flags & (CSVTS_BAD | CSVTS_MISSING))
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

static void print_text(struct run *r, const struct totals *t, double secs)
{
    FILE *f = stdout;
    bool score_only = r->opt.score_only != NULL;

    fprintf(f, "promcast backtest: %zu file%s, %zu rows", r->njobs, r->njobs == 1 ? "" : "s",
            t->rows);
    if (t->bad || t->missing)
        fprintf(f, " (%zu malformed, %zu missing values)", t->bad, t->missing);
    if (t->files_failed)
        fprintf(f, ", %zu file%s FAILED", t->files_failed, t->files_failed == 1 ? "" : "s");
    fprintf(f, ", %.1f s\n", secs);
    if (!score_only)
        fprintf(f, "config: %s\n", r->cfg && r->cfg->source ? r->cfg->source : "<embedded>");

    /* Per file. */
    fprintf(f, "\n%-52s %7s", "file", "rows");
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
            fprintf(f, "%-52s FAILED: %s\n", j->rel, j->err);
            continue;
        }
        fprintf(f, "%-52s %7zu", j->rel, j->rows);
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
        fprintf(f, "\nforecast error: geometric mean over files of MAE / baseline MAE\n"
                   "(naive = value at the forecast origin, snaive = value one season before the "
                   "target)\n");
        fprintf(f, "  %-8s %9s %5s %9s %5s", "", "all files", "", "", "");
        if (t->sub_files)
            fprintf(f, " | %s", "reference subset");
        fprintf(f, "\n  %-8s %9s %5s %9s %5s", "horizon", "vs naive", "files", "vs snaive",
                "files");
        if (t->sub_files)
            fprintf(f, " | %9s %5s %9s %5s", "vs naive", "files", "vs snaive", "files");
        fputc('\n', f);
        for (int s = 0; s < t->nslots; s++) {
            fprintf(f, "  %-8s %9.3f %5zu %9.3f %5zu", t->slot_name[s], geo_mean(&t->naive[s]),
                    t->naive[s].n, geo_mean(&t->seasonal[s]), t->seasonal[s].n);
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
                    fprintf(f, " %s", r->jobs[i].rel);
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

int backtest_main(int argc, char **argv)
{
    struct run r;
    struct totals t;
    char err[4096];
    int ret = 1, nerr = 0;
    bool totals_done = false;

    memset(&r, 0, sizeof r);
    memset(&t, 0, sizeof t);
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

    run_all(&r);
    if (compute_totals(&r, &t) < 0)
        goto done;
    totals_done = true;
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
    for (size_t i = 0; i < r.njobs; i++) {
        free(r.jobs[i].rel);
        free(r.jobs[i].in_path);
        free(r.jobs[i].out_path);
        free(r.jobs[i].nab_t);
        free(r.jobs[i].nab_score);
    }
    free(r.jobs);
    nab_labels_destroy(r.labels);
    config_destroy(r.cfg);
    pthread_mutex_destroy(&r.lock);
    return ret;
}
