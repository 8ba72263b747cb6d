/*
 * nab.c — NAB scoring: windows file, per-row sweep weights, threshold search.
 *
 * Rules and their provenance are in nab.h. The implementation keeps, for
 * every scorable (post-probation) row of every file, its anomaly score, its
 * unweighted sweep value and the window it lies in; a profile's score is then
 * one pass over those rows in descending score order, keeping the running
 * total of false-positive weights and of each window's best alarm.
 *
 * Deliberately not done: NAB's row-level tp/tn/fp/fn counts (window-level
 * counts say more), per-file thresholds, or reading NAB's profiles.json (the
 * three published profiles are compiled in).
 *
 * Wraps jansson for the windows file; no other module includes it for that.
 */
#include "nab.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csvts.h"

const struct nab_profile nab_profiles[NAB_NPROFILES] = {
    {"standard", 1.0, 0.11, 1.0},
    {"reward_low_FP_rate", 1.0, 0.22, 1.0},
    {"reward_low_FN_rate", 1.0, 0.11, 2.0},
};

/* NAB's probation: 15 % of a file, at most 15 % of 5000 rows. */
#define PROBATION_FRACTION 0.15
#define PROBATION_MAX_ROWS 750

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

double nab_scaled_sigmoid(double x)
{
    if (x >= 3.0)
        return -1.0;
    return 2.0 / (1.0 + exp(5.0 * x)) - 1.0;
}

size_t nab_probation_rows(size_t n)
{
    size_t p = (size_t)floor(PROBATION_FRACTION * (double)n);
    return p < PROBATION_MAX_ROWS ? p : PROBATION_MAX_ROWS;
}

/* ---- Windows file ---------------------------------------------------------- */

struct labels_file {
    char *key;
    struct nab_window *win;
    size_t nwin;
};

struct nab_labels {
    struct labels_file *files; /* sorted by key */
    size_t n;
};

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const struct labels_file *)a)->key, ((const struct labels_file *)b)->key);
}

static int cmp_window(const void *a, const void *b)
{
    const struct nab_window *x = a, *y = b;
    if (x->start_ms != y->start_ms)
        return x->start_ms < y->start_ms ? -1 : 1;
    return (x->end_ms > y->end_ms) - (x->end_ms < y->end_ms);
}

void nab_labels_destroy(struct nab_labels *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->files[i].key);
        free(l->files[i].win);
    }
    free(l->files);
    free(l);
}

static int window_time(json_t *v, int64_t *ms, const char **why)
{
    if (json_is_string(v))
        return csvts_parse_time(json_string_value(v), json_string_length(v), ms, why);
    if (json_is_integer(v) || json_is_real(v)) {
        char buf[64];
        int n = snprintf(buf, sizeof buf, "%.17g", json_number_value(v));
        return csvts_parse_time(buf, (size_t)n, ms, why);
    }
    *why = "want a timestamp string";
    return -1;
}

static struct nab_labels *from_json(const char *name, json_t *root, char *err, size_t errcap)
{
    struct nab_labels *l = NULL;
    const char *key;
    json_t *val;

    if (!json_is_object(root)) {
        fmt(err, errcap, "%s: want a JSON object mapping file paths to window lists", name);
        goto fail;
    }
    l = calloc(1, sizeof *l);
    if (!l)
        goto oom;
    l->files = calloc(json_object_size(root) + 1, sizeof *l->files);
    if (!l->files)
        goto oom;
    json_object_foreach(root, key, val)
    {
        struct labels_file *f = &l->files[l->n];
        if (!json_is_array(val)) {
            fmt(err, errcap, "%s: \"%s\": want a list of [start, end] pairs", name, key);
            goto fail;
        }
        f->key = strdup(key);
        if (!f->key)
            goto oom;
        l->n++;
        f->nwin = json_array_size(val);
        f->win = calloc(f->nwin + 1, sizeof *f->win);
        if (!f->win)
            goto oom;
        for (size_t i = 0; i < f->nwin; i++) {
            json_t *pair = json_array_get(val, i);
            const char *why = NULL;
            if (!json_is_array(pair) || json_array_size(pair) != 2) {
                fmt(err, errcap, "%s: \"%s\": window %zu: want [start, end]", name, key, i + 1);
                goto fail;
            }
            if (window_time(json_array_get(pair, 0), &f->win[i].start_ms, &why) < 0 ||
                window_time(json_array_get(pair, 1), &f->win[i].end_ms, &why) < 0) {
                fmt(err, errcap, "%s: \"%s\": window %zu: %s", name, key, i + 1, why);
                goto fail;
            }
            if (f->win[i].end_ms < f->win[i].start_ms) {
                fmt(err, errcap, "%s: \"%s\": window %zu ends before it starts", name, key, i + 1);
                goto fail;
            }
        }
        qsort(f->win, f->nwin, sizeof *f->win, cmp_window);
    }
    qsort(l->files, l->n, sizeof *l->files, cmp_file);
    return l;
oom:
    fmt(err, errcap, "%s: out of memory", name);
fail:
    nab_labels_destroy(l);
    return NULL;
}

struct nab_labels *nab_labels_load(const char *path, char *err, size_t errcap)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line > 0)
            fmt(err, errcap, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        else
            fmt(err, errcap, "%s: %s", path, je.text);
        return NULL;
    }
    struct nab_labels *l = from_json(path, root, err, errcap);
    json_decref(root);
    return l;
}

struct nab_labels *nab_labels_parse(const char *name, const char *json, size_t len, char *err,
                                    size_t errcap)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        fmt(err, errcap, "%s:%d:%d: %s", name, je.line, je.column, je.text);
        return NULL;
    }
    struct nab_labels *l = from_json(name, root, err, errcap);
    json_decref(root);
    return l;
}

static const struct labels_file *find_exact(const struct nab_labels *l, const char *key)
{
    struct labels_file k = {(char *)key, NULL, 0};
    return bsearch(&k, l->files, l->n, sizeof *l->files, cmp_file);
}

int nab_labels_find(const struct nab_labels *l, const char *path, const struct nab_window **win,
                    const char **key)
{
    char *norm = NULL;
    const struct labels_file *f = NULL;

    if (!l || !path)
        return -1;
    norm = malloc(strlen(path) + 1);
    if (!norm)
        return -1;
    /* Drop "./" components and repeated slashes. */
    size_t o = 0;
    for (const char *p = path; *p;) {
        if ((p == path || p[-1] == '/') && p[0] == '.' && p[1] == '/') {
            p += 2;
            continue;
        }
        if (*p == '/' && o > 0 && norm[o - 1] == '/') {
            p++;
            continue;
        }
        norm[o++] = *p++;
    }
    norm[o] = '\0';
    for (const char *s = norm; s && *s; s = strchr(s, '/'), s = s ? s + 1 : NULL) {
        f = find_exact(l, s);
        if (f)
            break;
    }
    free(norm);
    if (!f)
        return -1;
    if (win)
        *win = f->win;
    if (key)
        *key = f->key;
    return (int)f->nwin;
}

size_t nab_labels_nfiles(const struct nab_labels *l)
{
    return l ? l->n : 0;
}

const char *nab_labels_key(const struct nab_labels *l, size_t i)
{
    return l && i < l->n ? l->files[i].key : NULL;
}

/* ---- Corpus ----------------------------------------------------------------- */

/* One scorable row. */
struct srow {
    double score;
    double u;    /* unweighted sweep value: TP share in a window, S(pos) outside */
    int32_t win; /* global window id, -1 outside windows */
    uint32_t file;
};

struct cfile {
    char *name;
    size_t first_win, nwin;
};

struct nab_corpus {
    struct srow *rows;
    size_t nrows, caprows;
    struct cfile *files;
    size_t nfiles, capfiles;
    bool *win_scorable; /* per global window: has a row after probation */
    size_t nwin, capwin;
};

struct nab_corpus *nab_corpus_create(void)
{
    return calloc(1, sizeof(struct nab_corpus));
}

void nab_corpus_destroy(struct nab_corpus *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nfiles; i++)
        free(c->files[i].name);
    free(c->files);
    free(c->rows);
    free(c->win_scorable);
    free(c);
}

size_t nab_corpus_nfiles(const struct nab_corpus *c)
{
    return c ? c->nfiles : 0;
}

const char *nab_corpus_name(const struct nab_corpus *c, size_t i)
{
    return c && i < c->nfiles ? c->files[i].name : NULL;
}

static int reserve(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return -1;
    *p = np;
    *cap = ncap;
    return 0;
}

/* Index of the row ending a window entered at row i: the first row at the
 * window's end time, or the last row before it. */
static size_t window_right(const int64_t *t, size_t n, size_t i, int64_t end)
{
    size_t j = i;
    while (j < n && t[j] < end)
        j++;
    if (j == n || t[j] > end)
        return j - 1;
    return j;
}

int nab_corpus_add(struct nab_corpus *c, const char *name, const int64_t *t, const double *score,
                   size_t n, const struct nab_window *win_in, size_t nwin)
{
    struct nab_window *win = NULL;
    char *namecopy = NULL;
    size_t prob = nab_probation_rows(n);
    const double max_tp = nab_scaled_sigmoid(-1.0);

    if (!c || n > UINT32_MAX || c->nfiles >= UINT32_MAX || c->nwin + nwin > INT32_MAX)
        return -1;
    namecopy = strdup(name ? name : "");
    win = malloc((nwin + 1) * sizeof *win);
    if (!namecopy || !win)
        goto fail;
    if (nwin)
        memcpy(win, win_in, nwin * sizeof *win);
    qsort(win, nwin, sizeof *win, cmp_window);
    if (reserve((void **)&c->rows, &c->caprows, c->nrows + (n - prob), sizeof *c->rows) < 0 ||
        reserve((void **)&c->files, &c->capfiles, c->nfiles + 1, sizeof *c->files) < 0 ||
        reserve((void **)&c->win_scorable, &c->capwin, c->nwin + nwin + 1,
                sizeof *c->win_scorable) < 0)
        goto fail;

    size_t base = c->nwin, k = 0, nr = c->nrows;
    long cur = -1;               /* window being crossed, local index */
    size_t right = 0, width = 0; /* of the current window */
    bool have_prev = false;
    size_t prev_right = 0, prev_width = 0; /* of the last window left */
    for (size_t w = 0; w < nwin; w++)
        c->win_scorable[base + w] = false;
    for (size_t i = 0; i < n; i++) {
        /* Windows lying wholly in a gap between rows are never entered. */
        while (k < nwin && win[k].end_ms < t[i])
            k++;
        if (k < nwin && t[i] >= win[k].start_ms) {
            cur = (long)k;
            right = window_right(t, n, i, win[k].end_ms);
            width = right - i + 1;
            k++;
        }
        struct srow r;
        r.score = isnan(score[i]) ? 0.0 : score[i];
        /* Infinite scores would collide with the "never alarm" threshold. */
        if (isinf(r.score))
            r.score = r.score > 0 ? DBL_MAX : -DBL_MAX;
        r.file = (uint32_t)c->nfiles;
        if (cur >= 0) {
            r.win = (int32_t)(base + (size_t)cur);
            r.u = nab_scaled_sigmoid(-(double)(right - i + 1) / (double)width) / max_tp;
        } else {
            double pos = 3.0;
            /* NAB divides by (width - 1), undefined for a one-row window;
             * such a window's distance is counted in rows instead. */
            if (have_prev)
                pos = (double)(i - prev_right) / (double)(prev_width > 1 ? prev_width - 1 : 1);
            r.win = -1;
            r.u = nab_scaled_sigmoid(pos);
        }
        if (i >= prob) {
            c->rows[nr++] = r;
            if (r.win >= 0)
                c->win_scorable[r.win] = true;
        }
        if (cur >= 0 && i == right) {
            have_prev = true;
            prev_right = right;
            prev_width = width;
            cur = -1;
        }
    }
    c->nrows = nr;
    c->files[c->nfiles].name = namecopy;
    c->files[c->nfiles].first_win = base;
    c->files[c->nfiles].nwin = nwin;
    c->nfiles++;
    c->nwin += nwin;
    free(win);
    return 0;
fail:
    free(namecopy);
    free(win);
    return -1;
}

static int cmp_score_desc(const void *a, const void *b)
{
    double x = (*(const struct srow *const *)a)->score, y = (*(const struct srow *const *)b)->score;
    return (x < y) - (x > y);
}

int nab_corpus_score(const struct nab_corpus *c, const struct nab_profile *p, struct nab_result *r)
{
    const struct srow **order = NULL;
    double *best = NULL;
    size_t scorable = 0;

    memset(r, 0, sizeof *r);
    order = malloc((c->nrows + 1) * sizeof *order);
    best = malloc((c->nwin + 1) * sizeof *best);
    if (!order || !best) {
        free(order);
        free(best);
        return -1;
    }
    for (size_t i = 0; i < c->nrows; i++)
        order[i] = &c->rows[i];
    qsort(order, c->nrows, sizeof *order, cmp_score_desc);
    for (size_t w = 0; w < c->nwin; w++) {
        best[w] = -p->fn_weight;
        scorable += c->win_scorable[w];
    }

    /* Threshold above every score first: nothing alarms. */
    double tp_sum = -p->fn_weight * (double)scorable, fp_sum = 0.0;
    double best_total = tp_sum, best_thr = INFINITY;
    for (size_t i = 0; i < c->nrows;) {
        double s = order[i]->score;
        for (; i < c->nrows && order[i]->score == s; i++) {
            const struct srow *row = order[i];
            if (row->win < 0) {
                fp_sum += row->u * p->fp_weight;
            } else {
                double v = row->u * p->tp_weight;
                if (v > best[row->win]) {
                    tp_sum += v - best[row->win];
                    best[row->win] = v;
                }
            }
        }
        if (tp_sum + fp_sum > best_total) {
            best_total = tp_sum + fp_sum;
            best_thr = s;
        }
    }
    free(order);
    free(best);

    r->raw = best_total;
    r->threshold = best_thr;
    r->windows = c->nwin;
    r->null_raw = -p->fn_weight * (double)scorable;
    r->perfect_raw = p->tp_weight * (double)c->nwin;
    r->score = r->perfect_raw > r->null_raw
                   ? 100.0 * (r->raw - r->null_raw) / (r->perfect_raw - r->null_raw)
                   : NAN;

    struct nab_file_result *fr = calloc(c->nfiles + 1, sizeof *fr);
    if (!fr)
        return -1;
    if (nab_corpus_files(c, p, best_thr, fr) < 0) {
        free(fr);
        return -1;
    }
    for (size_t f = 0; f < c->nfiles; f++) {
        r->windows_detected += fr[f].windows_detected;
        r->fp_rows += fr[f].fp_rows;
    }
    free(fr);
    return 0;
}

int nab_corpus_files(const struct nab_corpus *c, const struct nab_profile *p, double threshold,
                     struct nab_file_result *res)
{
    double *best = malloc((c->nwin + 1) * sizeof *best);
    if (!best)
        return -1;
    for (size_t w = 0; w < c->nwin; w++)
        best[w] = -INFINITY;
    for (size_t f = 0; f < c->nfiles; f++) {
        memset(&res[f], 0, sizeof res[f]);
        res[f].windows = c->files[f].nwin;
    }
    for (size_t i = 0; i < c->nrows; i++) {
        const struct srow *row = &c->rows[i];
        if (!(row->score >= threshold))
            continue;
        if (row->win < 0) {
            res[row->file].raw += row->u * p->fp_weight;
            res[row->file].fp_rows++;
        } else if (row->u * p->tp_weight > best[row->win]) {
            best[row->win] = row->u * p->tp_weight;
        }
    }
    for (size_t f = 0; f < c->nfiles; f++) {
        for (size_t w = c->files[f].first_win; w < c->files[f].first_win + c->files[f].nwin; w++) {
            if (best[w] > -INFINITY) {
                res[f].raw += best[w];
                res[f].windows_detected++;
            } else if (c->win_scorable[w]) {
                res[f].raw -= p->fn_weight;
            }
        }
    }
    free(best);
    return 0;
}
