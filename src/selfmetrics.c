/*
 * selfmetrics.c — registry of promcast's own metrics and their text exposition.
 *
 * Hot-path updates are single atomic operations on a child the caller already
 * holds. Doubles live in atomic uint64 words as IEEE-754 bit patterns and are
 * added with a compare-and-swap loop; integer counts use fetch_add, which is
 * exact and cheaper. Children are found through a per-family hash table whose
 * chains only ever grow at the head, published with release stores, so
 * lookups take no lock and creation takes only the family's mutex. Nothing is
 * removed before the registry is destroyed, which is what makes handles safe
 * to keep.
 *
 * The registry mutex guards the sorted family array and is held for a whole
 * render, so a render sees a fixed set of families and a callback can be
 * unregistered safely.
 *
 * Deliberately not done: summaries, exemplars, native histograms, the
 * OpenMetrics format, and removing individual children (label values here
 * are bounded by code and config, and the cap bounds the rest). Process
 * metrics read Linux /proc only. No third-party library.
 */
#include "selfmetrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef PROMCAST_VERSION
#define PROMCAST_VERSION "unknown"
#endif
#ifndef PROMCAST_REVISION
#define PROMCAST_REVISION "unknown"
#endif
#if defined(__clang__)
#define COMPILER_STRING __VERSION__
#elif defined(__GNUC__)
#define COMPILER_STRING "gcc " __VERSION__
#else
#define COMPILER_STRING "unknown"
#endif

#define DROPPED_NAME "promcast_selfmetrics_dropped_children_total"

struct selfmetrics_counter {
    _Atomic uint64_t count;     /* integer increments */
    _Atomic uint64_t frac_bits; /* sum of add_double increments, as a double */
};

struct selfmetrics_gauge {
    _Atomic uint64_t bits; /* the value, as a double */
};

struct selfmetrics_histogram {
    const double *bounds; /* the family's, which outlives the child */
    size_t nbounds;
    _Atomic uint64_t sum_bits;
    _Atomic uint64_t counts[]; /* per bucket, not cumulative; [nbounds] is +Inf */
};

struct child {
    struct child *hash_next; /* both links are fixed before publication */
    struct child *all_next;
    uint64_t hash;
    char *values[SELFMETRICS_MAX_LABELS]; /* NULL past the family's labels */
    union {
        struct selfmetrics_counter counter;
        struct selfmetrics_gauge gauge;
    } u;
    struct selfmetrics_histogram *hist;
};

enum family_kind { KIND_CHILDREN, KIND_CALLBACK, KIND_PROCESS };

enum proc_field {
    PROC_CPU_SECONDS,
    PROC_OPEN_FDS,
    PROC_MAX_FDS,
    PROC_VIRTUAL_BYTES,
    PROC_VIRTUAL_MAX_BYTES,
    PROC_RESIDENT_BYTES,
    PROC_START_TIME,
    PROC_THREADS,
    PROC_NFIELDS
};

struct selfmetrics_family {
    struct selfmetrics *reg;
    enum selfmetrics_type type;
    enum family_kind kind;
    char *name;
    char *help;
    size_t nlabels;
    char *label_names[SELFMETRICS_MAX_LABELS];
    double *bounds;
    size_t nbounds;
    bool uncapped; /* the dropped-children family itself */

    pthread_mutex_t create_lock; /* serialises child creation */
    size_t nbuckets;             /* power of two; 0 for unlabelled families */
    _Atomic(struct child *) *buckets;
    _Atomic(struct child *) all; /* newest first */
    size_t nchildren;            /* under create_lock */
    struct child *single;        /* the child of an unlabelled family */

    selfmetrics_value_fn fn;
    void *ctx;
    enum proc_field proc_field;
};

struct proc_snapshot {
    bool valid[PROC_NFIELDS];
    double value[PROC_NFIELDS];
};

struct selfmetrics {
    pthread_mutex_t lock; /* families array; held through a render */
    struct selfmetrics_family **fams;
    size_t nfams;
    size_t fams_cap;
    _Atomic size_t max_children;
    struct selfmetrics_family *dropped;
    bool process_registered;
    double boot_time; /* seconds since the epoch; 0 until read */
    struct proc_snapshot proc;
};

/* ---- small helpers ------------------------------------------------------- */

static uint64_t dbits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double bitsd(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static void atomic_add_double(_Atomic uint64_t *word, double v)
{
    uint64_t old = atomic_load_explicit(word, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(word, &old, dbits(bitsd(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static bool valid_metric_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool valid_label_name(const char *s)
{
    if (!s || !*s || (s[0] == '_' && s[1] == '_'))
        return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF): the
 * Prometheus parser rejects the whole scrape on one bad label value. */
static bool valid_utf8(const char *str, size_t max_len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (s[i]) {
        if (i >= max_len)
            return false;
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) /* also stops at the NUL */
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return i <= max_len;
}

/* FNV-1a over the values, each followed by 0xff, a byte valid UTF-8 never
 * contains, so ("ab","c") and ("a","bc") differ. */
static uint64_t hash_values(const char *const *values, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return h;
}

/* ---- children ------------------------------------------------------------ */

static void child_free(struct child *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < SELFMETRICS_MAX_LABELS; i++)
        free(c->values[i]);
    free(c->hist);
    free(c);
}

static struct child *child_new(const struct selfmetrics_family *f, const char *const *values,
                               uint64_t hash)
{
    struct child *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->hash = hash;
    for (size_t i = 0; i < f->nlabels; i++) {
        c->values[i] = strdup(values[i]);
        if (!c->values[i])
            goto fail;
    }
    atomic_init(&c->u.counter.count, 0);
    atomic_init(&c->u.counter.frac_bits, dbits(0.0));
    if (f->type == SELFMETRICS_GAUGE)
        atomic_init(&c->u.gauge.bits, dbits(0.0));
    if (f->type == SELFMETRICS_HISTOGRAM) {
        size_t size = sizeof *c->hist + (f->nbounds + 1) * sizeof c->hist->counts[0];
        c->hist = malloc(size);
        if (!c->hist)
            goto fail;
        c->hist->bounds = f->bounds;
        c->hist->nbounds = f->nbounds;
        atomic_init(&c->hist->sum_bits, dbits(0.0));
        for (size_t i = 0; i <= f->nbounds; i++)
            atomic_init(&c->hist->counts[i], 0);
    }
    return c;
fail:
    child_free(c);
    return NULL;
}

/* Makes `c` visible to lock-free readers; caller holds create_lock. */
static void child_publish(struct selfmetrics_family *f, struct child *c)
{
    c->all_next = atomic_load_explicit(&f->all, memory_order_relaxed);
    if (f->nbuckets) {
        _Atomic(struct child *) *b = &f->buckets[c->hash & (f->nbuckets - 1)];
        c->hash_next = atomic_load_explicit(b, memory_order_relaxed);
        atomic_store_explicit(b, c, memory_order_release);
    }
    atomic_store_explicit(&f->all, c, memory_order_release);
    f->nchildren++;
}

static struct child *find_child(struct selfmetrics_family *f, const char *const *values,
                                uint64_t hash)
{
    struct child *c =
        atomic_load_explicit(&f->buckets[hash & (f->nbuckets - 1)], memory_order_acquire);
    for (; c; c = c->hash_next) {
        if (c->hash != hash)
            continue;
        size_t i = 0;
        while (i < f->nlabels && strcmp(c->values[i], values[i]) == 0)
            i++;
        if (i == f->nlabels)
            return c;
    }
    return NULL;
}

static struct child *lookup(struct selfmetrics_family *f, const char *const *values_in);

static void count_dropped(struct selfmetrics_family *f)
{
    struct selfmetrics_family *d = f->reg->dropped;
    if (!d || d == f)
        return;
    const char *v[1] = {f->name};
    struct child *c = lookup(d, v);
    if (c)
        atomic_fetch_add_explicit(&c->u.counter.count, 1, memory_order_relaxed);
}

static struct child *lookup(struct selfmetrics_family *f, const char *const *values_in)
{
    if (f->kind != KIND_CHILDREN)
        return NULL;
    if (f->nlabels == 0)
        return f->single;
    const char *values[SELFMETRICS_MAX_LABELS];
    for (size_t i = 0; i < f->nlabels; i++) {
        values[i] = values_in[i] ? values_in[i] : "";
        if (!valid_utf8(values[i], SELFMETRICS_MAX_LABEL_VALUE_BYTES)) {
            count_dropped(f);
            return NULL;
        }
    }
    uint64_t hash = hash_values(values, f->nlabels);
    struct child *c = find_child(f, values, hash);
    if (c)
        return c;

    bool over_cap = false;
    pthread_mutex_lock(&f->create_lock);
    c = find_child(f, values, hash); /* another thread may have won */
    if (!c) {
        size_t cap = atomic_load_explicit(&f->reg->max_children, memory_order_relaxed);
        if (!f->uncapped && f->nchildren >= cap) {
            over_cap = true;
        } else {
            c = child_new(f, values, hash);
            if (c)
                child_publish(f, c);
        }
    }
    pthread_mutex_unlock(&f->create_lock);
    if (over_cap)
        count_dropped(f);
    return c;
}

static struct child *lookup_va(struct selfmetrics_family *f, va_list ap)
{
    const char *values[SELFMETRICS_MAX_LABELS];
    for (size_t i = 0; i < f->nlabels; i++)
        values[i] = va_arg(ap, const char *);
    return lookup(f, values);
}

/* ---- families ------------------------------------------------------------ */

static void family_free(struct selfmetrics_family *f)
{
    if (!f)
        return;
    struct child *c = atomic_load_explicit(&f->all, memory_order_relaxed);
    while (c) {
        struct child *next = c->all_next;
        child_free(c);
        c = next;
    }
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->label_names[i]);
    free(f->buckets);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->create_lock);
    free(f);
}

/* Index of `name` in the sorted array, or where it would go (*found false). */
static size_t family_find(const struct selfmetrics *r, const char *name, bool *found)
{
    size_t lo = 0, hi = r->nfams;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(r->fams[mid]->name, name);
        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static bool same_family(const struct selfmetrics_family *f, const struct selfmetrics_family *g)
{
    if (f->type != g->type || f->kind != g->kind || strcmp(f->help, g->help) != 0 ||
        f->nlabels != g->nlabels || f->nbounds != g->nbounds)
        return false;
    for (size_t i = 0; i < f->nlabels; i++)
        if (strcmp(f->label_names[i], g->label_names[i]) != 0)
            return false;
    for (size_t i = 0; i < f->nbounds; i++)
        if (f->bounds[i] != g->bounds[i])
            return false;
    return true;
}

static bool valid_family_args(enum selfmetrics_type type, const char *name, const char *help,
                              size_t nlabels, const char *const *label_names, const double *bounds,
                              size_t nbounds)
{
    if (!valid_metric_name(name) || !help || !valid_utf8(help, SIZE_MAX))
        return false;
    if ((type == SELFMETRICS_COUNTER) != has_suffix(name, "_total"))
        return false;
    if (nlabels > SELFMETRICS_MAX_LABELS || (nlabels && !label_names))
        return false;
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_label_name(label_names[i]))
            return false;
        if (type == SELFMETRICS_HISTOGRAM && strcmp(label_names[i], "le") == 0)
            return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(label_names[i], label_names[j]) == 0)
                return false;
    }
    if (type == SELFMETRICS_HISTOGRAM) {
        if (!bounds || nbounds == 0 || nbounds > SELFMETRICS_MAX_BUCKETS + 1)
            return false;
        for (size_t i = 0; i < nbounds; i++) {
            bool last_inf = i == nbounds - 1 && i > 0 && bounds[i] == INFINITY;
            if (!last_inf && !isfinite(bounds[i]))
                return false;
            if (i > 0 && !(bounds[i] > bounds[i - 1]))
                return false;
        }
        if (nbounds == SELFMETRICS_MAX_BUCKETS + 1 && bounds[nbounds - 1] != INFINITY)
            return false;
    }
    return true;
}

static size_t bucket_count_for(size_t max_children)
{
    size_t want = max_children / 2, n = 8;
    while (n < want && n < 4096)
        n *= 2;
    return n;
}

static struct selfmetrics_family *family_new(struct selfmetrics *r, enum selfmetrics_type type,
                                             enum family_kind kind, const char *name,
                                             const char *help, size_t nlabels,
                                             const char *const *label_names, const double *bounds,
                                             size_t nbounds)
{
    struct selfmetrics_family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_mutex_init(&f->create_lock, NULL);
    atomic_init(&f->all, NULL);
    f->reg = r;
    f->type = type;
    f->kind = kind;
    f->name = strdup(name);
    f->help = strdup(help);
    if (!f->name || !f->help)
        goto fail;
    for (f->nlabels = 0; f->nlabels < nlabels; f->nlabels++) {
        f->label_names[f->nlabels] = strdup(label_names[f->nlabels]);
        if (!f->label_names[f->nlabels])
            goto fail;
    }
    if (type == SELFMETRICS_HISTOGRAM) {
        if (bounds[nbounds - 1] == INFINITY)
            nbounds--;
        f->bounds = malloc(nbounds * sizeof *f->bounds);
        if (!f->bounds)
            goto fail;
        memcpy(f->bounds, bounds, nbounds * sizeof *f->bounds);
        f->nbounds = nbounds;
    }
    if (kind == KIND_CHILDREN && nlabels > 0) {
        f->nbuckets = bucket_count_for(atomic_load(&r->max_children));
        f->buckets = malloc(f->nbuckets * sizeof *f->buckets);
        if (!f->buckets)
            goto fail;
        for (size_t i = 0; i < f->nbuckets; i++)
            atomic_init(&f->buckets[i], NULL);
    } else if (kind == KIND_CHILDREN) {
        f->single = child_new(f, NULL, 0);
        if (!f->single)
            goto fail;
        child_publish(f, f->single);
    }
    return f;
fail:
    family_free(f);
    return NULL;
}

/* Inserts `f` (already validated) or returns the equal existing family.
 * Hands `f` over: it is freed when not inserted. */
static struct selfmetrics_family *family_insert(struct selfmetrics *r, struct selfmetrics_family *f)
{
    struct selfmetrics_family *result = NULL;
    pthread_mutex_lock(&r->lock);
    bool found;
    size_t at = family_find(r, f->name, &found);
    if (found) {
        struct selfmetrics_family *old = r->fams[at];
        if (f->kind == KIND_CHILDREN && same_family(old, f))
            result = old;
        goto out;
    }
    if (r->nfams == r->fams_cap) {
        if (r->fams_cap >= SELFMETRICS_MAX_FAMILIES)
            goto out;
        size_t cap = r->fams_cap ? r->fams_cap * 2 : 32;
        struct selfmetrics_family **grown = realloc(r->fams, cap * sizeof *grown);
        if (!grown)
            goto out;
        r->fams = grown;
        r->fams_cap = cap;
    }
    memmove(&r->fams[at + 1], &r->fams[at], (r->nfams - at) * sizeof *r->fams);
    r->fams[at] = f;
    r->nfams++;
    result = f;
out:
    pthread_mutex_unlock(&r->lock);
    if (result != f)
        family_free(f);
    return result;
}

static struct selfmetrics_family *register_family(struct selfmetrics *r, enum selfmetrics_type type,
                                                  const char *name, const char *help,
                                                  size_t nlabels, const char *const *label_names,
                                                  const double *bounds, size_t nbounds)
{
    if (!r || !valid_family_args(type, name, help, nlabels, label_names, bounds, nbounds))
        return NULL;
    struct selfmetrics_family *f =
        family_new(r, type, KIND_CHILDREN, name, help, nlabels, label_names, bounds, nbounds);
    if (!f)
        return NULL;
    return family_insert(r, f);
}

struct selfmetrics_family *selfmetrics_register_counter(struct selfmetrics *r, const char *name,
                                                        const char *help, size_t nlabels,
                                                        const char *const *label_names)
{
    return register_family(r, SELFMETRICS_COUNTER, name, help, nlabels, label_names, NULL, 0);
}

struct selfmetrics_family *selfmetrics_register_gauge(struct selfmetrics *r, const char *name,
                                                      const char *help, size_t nlabels,
                                                      const char *const *label_names)
{
    return register_family(r, SELFMETRICS_GAUGE, name, help, nlabels, label_names, NULL, 0);
}

struct selfmetrics_family *selfmetrics_register_histogram(struct selfmetrics *r, const char *name,
                                                          const char *help, size_t nlabels,
                                                          const char *const *label_names,
                                                          const double *bounds, size_t nbounds)
{
    return register_family(r, SELFMETRICS_HISTOGRAM, name, help, nlabels, label_names, bounds,
                           nbounds);
}

int selfmetrics_register_callback(struct selfmetrics *r, enum selfmetrics_type type,
                                  const char *name, const char *help, selfmetrics_value_fn fn,
                                  void *ctx)
{
    if (!r || !fn || type == SELFMETRICS_HISTOGRAM ||
        !valid_family_args(type, name, help, 0, NULL, NULL, 0))
        return -1;
    struct selfmetrics_family *f = family_new(r, type, KIND_CALLBACK, name, help, 0, NULL, NULL, 0);
    if (!f)
        return -1;
    f->fn = fn;
    f->ctx = ctx;
    return family_insert(r, f) ? 0 : -1;
}

int selfmetrics_unregister_callback(struct selfmetrics *r, const char *name)
{
    if (!r || !name)
        return -1;
    struct selfmetrics_family *victim = NULL;
    pthread_mutex_lock(&r->lock);
    bool found;
    size_t at = family_find(r, name, &found);
    if (found && r->fams[at]->kind == KIND_CALLBACK) {
        victim = r->fams[at];
        memmove(&r->fams[at], &r->fams[at + 1], (r->nfams - at - 1) * sizeof *r->fams);
        r->nfams--;
    }
    pthread_mutex_unlock(&r->lock);
    family_free(victim);
    return victim ? 0 : -1;
}

/* ---- children API -------------------------------------------------------- */

struct selfmetrics_counter *selfmetrics_counter_getv(struct selfmetrics_family *f,
                                                     const char *const *values)
{
    if (!f || f->type != SELFMETRICS_COUNTER || (f->nlabels && !values))
        return NULL;
    struct child *c = lookup(f, values);
    return c ? &c->u.counter : NULL;
}

struct selfmetrics_counter *selfmetrics_counter_get(struct selfmetrics_family *f, ...)
{
    if (!f || f->type != SELFMETRICS_COUNTER)
        return NULL;
    va_list ap;
    va_start(ap, f);
    struct child *c = lookup_va(f, ap);
    va_end(ap);
    return c ? &c->u.counter : NULL;
}

struct selfmetrics_gauge *selfmetrics_gauge_getv(struct selfmetrics_family *f,
                                                 const char *const *values)
{
    if (!f || f->type != SELFMETRICS_GAUGE || (f->nlabels && !values))
        return NULL;
    struct child *c = lookup(f, values);
    return c ? &c->u.gauge : NULL;
}

struct selfmetrics_gauge *selfmetrics_gauge_get(struct selfmetrics_family *f, ...)
{
    if (!f || f->type != SELFMETRICS_GAUGE)
        return NULL;
    va_list ap;
    va_start(ap, f);
    struct child *c = lookup_va(f, ap);
    va_end(ap);
    return c ? &c->u.gauge : NULL;
}

struct selfmetrics_histogram *selfmetrics_histogram_getv(struct selfmetrics_family *f,
                                                         const char *const *values)
{
    if (!f || f->type != SELFMETRICS_HISTOGRAM || (f->nlabels && !values))
        return NULL;
    struct child *c = lookup(f, values);
    return c ? c->hist : NULL;
}

struct selfmetrics_histogram *selfmetrics_histogram_get(struct selfmetrics_family *f, ...)
{
    if (!f || f->type != SELFMETRICS_HISTOGRAM)
        return NULL;
    va_list ap;
    va_start(ap, f);
    struct child *c = lookup_va(f, ap);
    va_end(ap);
    return c ? c->hist : NULL;
}

struct selfmetrics_counter *selfmetrics_simple_counter(struct selfmetrics *r, const char *name,
                                                       const char *help)
{
    return selfmetrics_counter_get(selfmetrics_register_counter(r, name, help, 0, NULL));
}

struct selfmetrics_gauge *selfmetrics_simple_gauge(struct selfmetrics *r, const char *name,
                                                   const char *help)
{
    return selfmetrics_gauge_get(selfmetrics_register_gauge(r, name, help, 0, NULL));
}

struct selfmetrics_histogram *selfmetrics_simple_histogram(struct selfmetrics *r, const char *name,
                                                           const char *help, const double *bounds,
                                                           size_t nbounds)
{
    return selfmetrics_histogram_get(
        selfmetrics_register_histogram(r, name, help, 0, NULL, bounds, nbounds));
}

/* ---- updates ------------------------------------------------------------- */

void selfmetrics_counter_inc(struct selfmetrics_counter *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
}

void selfmetrics_counter_add(struct selfmetrics_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->count, n, memory_order_relaxed);
}

void selfmetrics_counter_add_double(struct selfmetrics_counter *c, double v)
{
    if (c && v > 0) /* also false for NaN */
        atomic_add_double(&c->frac_bits, v);
}

double selfmetrics_counter_value(const struct selfmetrics_counter *c)
{
    if (!c)
        return 0;
    uint64_t n = atomic_load_explicit(&c->count, memory_order_relaxed);
    return (double)n + bitsd(atomic_load_explicit(&c->frac_bits, memory_order_relaxed));
}

void selfmetrics_gauge_set(struct selfmetrics_gauge *g, double v)
{
    if (g)
        atomic_store_explicit(&g->bits, dbits(v), memory_order_relaxed);
}

void selfmetrics_gauge_add(struct selfmetrics_gauge *g, double delta)
{
    if (g)
        atomic_add_double(&g->bits, delta);
}

void selfmetrics_gauge_inc(struct selfmetrics_gauge *g)
{
    selfmetrics_gauge_add(g, 1.0);
}

void selfmetrics_gauge_dec(struct selfmetrics_gauge *g)
{
    selfmetrics_gauge_add(g, -1.0);
}

double selfmetrics_gauge_value(const struct selfmetrics_gauge *g)
{
    return g ? bitsd(atomic_load_explicit(&g->bits, memory_order_relaxed)) : 0;
}

void selfmetrics_histogram_observe(struct selfmetrics_histogram *h, double v)
{
    if (!h)
        return;
    /* First bound >= v; NaN compares false everywhere and lands in +Inf. */
    size_t lo = 0, hi = h->nbounds;
    if (isnan(v)) {
        lo = h->nbounds;
    } else {
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (h->bounds[mid] < v)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    atomic_fetch_add_explicit(&h->counts[lo], 1, memory_order_relaxed);
    atomic_add_double(&h->sum_bits, v);
}

uint64_t selfmetrics_histogram_count(const struct selfmetrics_histogram *h)
{
    uint64_t n = 0;
    for (size_t i = 0; h && i <= h->nbounds; i++)
        n += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    return n;
}

double selfmetrics_histogram_sum(const struct selfmetrics_histogram *h)
{
    return h ? bitsd(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)) : 0;
}

/* ---- registries ---------------------------------------------------------- */

struct selfmetrics *selfmetrics_create(size_t max_children)
{
    struct selfmetrics *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_init(&r->lock, NULL);
    atomic_init(&r->max_children, max_children ? max_children : SELFMETRICS_DEFAULT_MAX_CHILDREN);
    static const char *const fam_label[] = {"family"};
    r->dropped = selfmetrics_register_counter(
        r, DROPPED_NAME,
        "Label value tuples refused because their family was at its child cap or the "
        "values were invalid.",
        1, fam_label);
    if (!r->dropped)
        goto fail;
    /* Its children are bounded by the number of families, and capping it
     * would hide exactly the drops it exists to show. */
    r->dropped->uncapped = true;
    return r;
fail:
    selfmetrics_destroy(r);
    return NULL;
}

void selfmetrics_destroy(struct selfmetrics *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nfams; i++)
        family_free(r->fams[i]);
    free(r->fams);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

void selfmetrics_set_max_children(struct selfmetrics *r, size_t max_children)
{
    if (r)
        atomic_store(&r->max_children,
                     max_children ? max_children : SELFMETRICS_DEFAULT_MAX_CHILDREN);
}

static struct selfmetrics *default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void)
{
    struct selfmetrics *r = selfmetrics_create(0);
    if (!r)
        return;
    /* Both only fail when out of memory; a registry without them still
     * serves every module's metrics. */
    (void)selfmetrics_register_process(r);
    (void)selfmetrics_register_build_info(r, NULL, NULL);
    default_registry = r;
}

struct selfmetrics *selfmetrics_default(void)
{
    pthread_once(&default_once, default_init);
    return default_registry;
}

int selfmetrics_register_build_info(struct selfmetrics *r, const char *version,
                                    const char *revision)
{
    static const char *const names[] = {"version", "revision", "compiler"};
    struct selfmetrics_family *f = selfmetrics_register_gauge(
        r, "promcast_build_info",
        "A metric with a constant '1' value labeled by version, revision, and compiler from "
        "which promcast was built.",
        3, names);
    struct selfmetrics_gauge *g =
        selfmetrics_gauge_get(f, version ? version : PROMCAST_VERSION,
                              revision ? revision : PROMCAST_REVISION, COMPILER_STRING);
    if (!g)
        return -1;
    selfmetrics_gauge_set(g, 1);
    return 0;
}

/* ---- process metrics ----------------------------------------------------- */

static const struct {
    const char *name;
    enum selfmetrics_type type;
    const char *help;
} proc_defs[PROC_NFIELDS] = {
    [PROC_CPU_SECONDS] = {"process_cpu_seconds_total", SELFMETRICS_COUNTER,
                          "Total user and system CPU time spent in seconds."},
    [PROC_OPEN_FDS] = {"process_open_fds", SELFMETRICS_GAUGE, "Number of open file descriptors."},
    [PROC_MAX_FDS] = {"process_max_fds", SELFMETRICS_GAUGE,
                      "Maximum number of open file descriptors."},
    [PROC_VIRTUAL_BYTES] = {"process_virtual_memory_bytes", SELFMETRICS_GAUGE,
                            "Virtual memory size in bytes."},
    [PROC_VIRTUAL_MAX_BYTES] = {"process_virtual_memory_max_bytes", SELFMETRICS_GAUGE,
                                "Maximum amount of virtual memory available in bytes."},
    [PROC_RESIDENT_BYTES] = {"process_resident_memory_bytes", SELFMETRICS_GAUGE,
                             "Resident memory size in bytes."},
    [PROC_START_TIME] = {"process_start_time_seconds", SELFMETRICS_GAUGE,
                         "Start time of the process since unix epoch in seconds."},
    [PROC_THREADS] = {"process_threads", SELFMETRICS_GAUGE, "Number of OS threads in the process."},
};

int selfmetrics_register_process(struct selfmetrics *r)
{
    if (!r)
        return -1;
    pthread_mutex_lock(&r->lock);
    bool done = r->process_registered;
    r->process_registered = true;
    pthread_mutex_unlock(&r->lock);
    if (done)
        return 0;
    for (int i = 0; i < PROC_NFIELDS; i++) {
        struct selfmetrics_family *f =
            family_new(r, proc_defs[i].type, KIND_PROCESS, proc_defs[i].name, proc_defs[i].help, 0,
                       NULL, NULL, 0);
        if (!f)
            return -1;
        f->proc_field = (enum proc_field)i;
        if (!family_insert(r, f))
            return -1;
    }
    return 0;
}

/* The rlimit as client_golang reports it: unlimited is 2^64-1 as a double. */
static double rlimit_value(rlim_t v)
{
    return v == RLIM_INFINITY ? (double)UINT64_MAX : (double)v;
}

static double read_boot_time(void)
{
    FILE *fp = fopen("/proc/stat", "r");
    if (!fp)
        return 0;
    char line[256];
    double bt = 0;
    /* Lines longer than the buffer (intr) come in pieces; a piece starting
     * with "btime " can only be the real line since the numbers are digits. */
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "btime ", 6) == 0) {
            bt = strtod(line + 6, NULL);
            break;
        }
    }
    fclose(fp);
    return bt;
}

/* Fills r->proc; caller holds r->lock. */
static void read_process(struct selfmetrics *r)
{
    struct proc_snapshot *p = &r->proc;
    memset(p, 0, sizeof *p);
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);

    char buf[2048];
    FILE *fp = fopen("/proc/self/stat", "r");
    size_t n = 0;
    if (fp) {
        n = fread(buf, 1, sizeof buf - 1, fp);
        fclose(fp);
    }
    buf[n] = '\0';
    /* The command name may contain spaces and parentheses: fields start
     * after the last ')'. Then field 3 (state) is a letter, 4.. numbers. */
    char *s = strrchr(buf, ')');
    if (s && s[1] == ' ' && s[2] && ticks > 0 && page > 0) {
        s += 3;
        double field[25] = {0};
        int k = 4;
        for (; k <= 24; k++) {
            char *end;
            field[k] = strtod(s, &end);
            if (end == s)
                break;
            s = end;
        }
        if (k > 24) {
            p->value[PROC_CPU_SECONDS] = (field[14] + field[15]) / (double)ticks;
            p->value[PROC_THREADS] = field[20];
            p->value[PROC_VIRTUAL_BYTES] = field[23];
            p->value[PROC_RESIDENT_BYTES] = field[24] * (double)page;
            p->valid[PROC_CPU_SECONDS] = p->valid[PROC_THREADS] = true;
            p->valid[PROC_VIRTUAL_BYTES] = p->valid[PROC_RESIDENT_BYTES] = true;
            if (r->boot_time == 0)
                r->boot_time = read_boot_time();
            if (r->boot_time > 0) {
                p->value[PROC_START_TIME] = r->boot_time + field[22] / (double)ticks;
                p->valid[PROC_START_TIME] = true;
            }
        }
    }

    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int self = dirfd(d);
        double fds = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' || atoi(e->d_name) == self)
                continue;
            fds++;
        }
        closedir(d);
        p->value[PROC_OPEN_FDS] = fds;
        p->valid[PROC_OPEN_FDS] = true;
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        p->value[PROC_MAX_FDS] = rlimit_value(rl.rlim_cur);
        p->valid[PROC_MAX_FDS] = true;
    }
    if (getrlimit(RLIMIT_AS, &rl) == 0) {
        p->value[PROC_VIRTUAL_MAX_BYTES] = rlimit_value(rl.rlim_cur);
        p->valid[PROC_VIRTUAL_MAX_BYTES] = true;
    }
}

/* ---- rendering ----------------------------------------------------------- */

struct out {
    char *buf;
    size_t len;
    size_t cap;
    bool failed;
};

static void out_put(struct out *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (n > SELFMETRICS_MAX_RENDER_BYTES - o->len) {
        o->failed = true;
        return;
    }
    size_t need = o->len + n + 1; /* room for the NUL */
    if (need > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < need)
            cap *= 2;
        char *grown = realloc(o->buf, cap);
        if (!grown) {
            o->failed = true;
            return;
        }
        o->buf = grown;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void out_str(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

/* Escapes for label values (\\, \", \n) or, with quote false, for HELP
 * (\\, \n): exactly what the text format defines. */
static void out_escaped(struct out *o, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s == '"' && quote)
            esc = "\\\"";
        if (esc) {
            out_put(o, run, (size_t)(s - run));
            out_str(o, esc);
            run = s + 1;
        }
    }
    out_put(o, run, (size_t)(s - run));
}

/* The text Go's strconv.FormatFloat(v, 'g', -1, 64) gives, which is what
 * Prometheus client libraries print, so our le labels match theirs: the
 * fewest significant digits that parse back to v, in exponent form when the
 * decimal exponent is below -4 or at least 6. Prometheus spells the
 * non-finite values +Inf, -Inf, NaN. Assumes the "C" locale. */
static void format_double(char *buf, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(buf, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    int digits = 1;
    for (; digits < 17; digits++) {
        snprintf(buf, cap, "%.*e", digits - 1, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    snprintf(buf, cap, "%.*e", digits - 1, v);
    const char *e = strchr(buf, 'e');
    int exp = e ? atoi(e + 1) : 0;
    if (exp < -4 || exp >= 6)
        return;
    int decimals = digits - 1 - exp;
    snprintf(buf, cap, "%.*f", decimals > 0 ? decimals : 0, v);
}

static void out_double(struct out *o, double v)
{
    char buf[40];
    format_double(buf, sizeof buf, v);
    out_str(o, buf);
}

static void out_u64(struct out *o, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    out_str(o, buf);
}

/* name[suffix]{labels[,le="..."]} */
static void out_series(struct out *o, const struct selfmetrics_family *f, const char *suffix,
                       const struct child *c, const char *le)
{
    out_str(o, f->name);
    out_str(o, suffix);
    size_t n = c ? f->nlabels : 0;
    if (n == 0 && !le) {
        out_str(o, " ");
        return;
    }
    out_str(o, "{");
    for (size_t i = 0; i < n; i++) {
        if (i)
            out_str(o, ",");
        out_str(o, f->label_names[i]);
        out_str(o, "=\"");
        out_escaped(o, c->values[i], true);
        out_str(o, "\"");
    }
    if (le) {
        out_str(o, n ? ",le=\"" : "le=\"");
        out_str(o, le);
        out_str(o, "\"");
    }
    out_str(o, "} ");
}

static void out_header(struct out *o, const struct selfmetrics_family *f)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    out_str(o, "# HELP ");
    out_str(o, f->name);
    out_str(o, " ");
    out_escaped(o, f->help, false);
    out_str(o, "\n# TYPE ");
    out_str(o, f->name);
    out_str(o, " ");
    out_str(o, type_names[f->type]);
    out_str(o, "\n");
}

static void render_child(struct out *o, const struct selfmetrics_family *f, const struct child *c)
{
    if (f->type == SELFMETRICS_COUNTER) {
        uint64_t n = atomic_load_explicit(&c->u.counter.count, memory_order_relaxed);
        double frac = bitsd(atomic_load_explicit(&c->u.counter.frac_bits, memory_order_relaxed));
        out_series(o, f, "", c, NULL);
        if (frac == 0) /* print integer counts exactly, even past 2^53 */
            out_u64(o, n);
        else
            out_double(o, (double)n + frac);
        out_str(o, "\n");
        return;
    }
    if (f->type == SELFMETRICS_GAUGE) {
        out_series(o, f, "", c, NULL);
        out_double(o, bitsd(atomic_load_explicit(&c->u.gauge.bits, memory_order_relaxed)));
        out_str(o, "\n");
        return;
    }
    /* _count is the sum of the buckets as read, so it always equals the
     * +Inf bucket even while observations race with the render. */
    const struct selfmetrics_histogram *h = c->hist;
    uint64_t cumulative = 0;
    char le[40];
    for (size_t i = 0; i <= h->nbounds; i++) {
        cumulative += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->nbounds)
            format_double(le, sizeof le, h->bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        out_series(o, f, "_bucket", c, le);
        out_u64(o, cumulative);
        out_str(o, "\n");
    }
    out_series(o, f, "_sum", c, NULL);
    out_double(o, bitsd(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)));
    out_str(o, "\n");
    out_series(o, f, "_count", c, NULL);
    out_u64(o, cumulative);
    out_str(o, "\n");
}

static int compare_children(const void *a, const void *b)
{
    const struct child *x = *(const struct child *const *)a;
    const struct child *y = *(const struct child *const *)b;
    for (size_t i = 0; i < SELFMETRICS_MAX_LABELS; i++) {
        if (!x->values[i] || !y->values[i])
            return (x->values[i] != NULL) - (y->values[i] != NULL);
        int cmp = strcmp(x->values[i], y->values[i]);
        if (cmp)
            return cmp;
    }
    return 0;
}

static void render_children(struct out *o, const struct selfmetrics_family *f)
{
    struct child *head = atomic_load_explicit(&f->all, memory_order_acquire);
    size_t n = 0;
    for (const struct child *c = head; c; c = c->all_next)
        n++;
    if (n == 0)
        return;
    struct child **sorted = malloc(n * sizeof *sorted);
    if (!sorted) {
        o->failed = true;
        return;
    }
    size_t i = 0;
    for (struct child *c = head; c; c = c->all_next)
        sorted[i++] = c;
    qsort(sorted, n, sizeof *sorted, compare_children);
    out_header(o, f);
    for (i = 0; i < n; i++)
        render_child(o, f, sorted[i]);
    free(sorted);
}

static void render_family(struct out *o, const struct selfmetrics *r,
                          const struct selfmetrics_family *f)
{
    double v;
    switch (f->kind) {
    case KIND_CHILDREN:
        render_children(o, f);
        return;
    case KIND_CALLBACK:
        v = f->fn(f->ctx);
        break;
    case KIND_PROCESS:
        if (!r->proc.valid[f->proc_field])
            return;
        v = r->proc.value[f->proc_field];
        break;
    default:
        return;
    }
    out_header(o, f);
    out_series(o, f, "", NULL, NULL);
    out_double(o, v);
    out_str(o, "\n");
}

int selfmetrics_render(struct selfmetrics *r, char **out, size_t *len)
{
    if (!r || !out || !len)
        return -1;
    struct out o = {0};
    pthread_mutex_lock(&r->lock);
    if (r->process_registered)
        read_process(r);
    for (size_t i = 0; i < r->nfams && !o.failed; i++)
        render_family(&o, r, r->fams[i]);
    pthread_mutex_unlock(&r->lock);
    out_str(&o, ""); /* an empty registry still yields a valid "" */
    if (o.failed) {
        free(o.buf);
        return -1;
    }
    *out = o.buf;
    *len = o.len;
    return 0;
}
