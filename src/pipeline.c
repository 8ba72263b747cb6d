/*
 * pipeline.c — model slots, output series, remote-read answers, snapshots.
 *
 * A slot is one allocation per modelled series:
 *
 *   struct slot | hist[prof->hist_cap] (struct hist_entry, 20 bytes) | state
 *
 * where state is model_state_size(params) bytes (model.h, 8-aligned) and the
 * history ring keeps the last `output.history / step` ready outputs (step
 * number + yhat, lower, upper, score as floats) for remote read. Parameters
 * live in an interned, refcounted profile shared by every slot of the same
 * rule, so a slot carries a pointer, not a copy.
 *
 * Output naming and the writer set are an immutable `struct conf` swapped by
 * pipeline_configure(); hooks read it under shard locks, so after
 * series_index_barrier() the old one is unused and freed.
 *
 * Not here: the step grid and models (model*.c), the queues and HTTP of
 * write-back (writer.c), the remote-read wire format (wire_read.c), snapshot
 * files (snapshot.c).
 */
#include "pipeline.h"

#include "clock.h"
#include "config.h"
#include "log.h"
#include "selector.h"
#include "series.h"
#include "writer.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_STEP_MS     60000
#define DEFAULT_WARM_BUFFER 256
#define MAX_OUT_LABELS      128  /* output labels built on the stack */
#define MAX_NAME_BYTES      1024 /* longest output metric name */
#define MAX_PATH_POINTS     4096 /* forecast path points served per series */
#define HORIZON_TEXT        24

struct profile {
    struct model_params params;
    size_t state_size;
    uint32_t hist_cap;
    unsigned refs; /* under pipeline.prof_lock */
    char horizon_text[MODEL_MAX_HORIZONS][HORIZON_TEXT];
    struct profile *next;
};

struct hist_entry {
    uint32_t step; /* t / step_ms */
    float v[4];    /* yhat, lower, upper, score */
};

struct warm {
    size_t n, cap;
    struct sample s[];
};

struct slot {
    struct profile *prof;
    int64_t last_in_t;  /* newest observed sample */
    int64_t last_out_t; /* newest ready output step, INT64_MIN when none */
    uint32_t hist_head; /* next index to write */
    uint32_t hist_len;
    struct warm *warm;  /* non-NULL while waiting for warm-start history */
    int64_t open_since; /* wall clock the first sample of the open step arrived; 0 = none */
};

struct conf {
    char *prefix;
    char *suffix[OUTPUT__COUNT];
    char *horizon_label;
    int64_t history_ms;
    int64_t close_delay_ms;
    struct writer **writers;
    size_t nwriters;
};

struct pipeline {
    struct pipeline_opts opts;
    struct series_model_hooks hooks;
    struct series_index *idx;
    _Atomic(struct conf *) conf;
    pthread_mutex_t conf_lock; /* serialises configure */

    pthread_mutex_t prof_lock;
    struct profile *profiles;

    _Atomic int64_t high_wm;
    _Atomic int64_t suppress_until;

    _Atomic uint64_t slots, slot_bytes, warming, steps, outputs, suppressed, late, resets, invalid,
        writer_drops;
};

/* ---- profiles ------------------------------------------------------------ */

static bool params_equal(const struct model_params *a, const struct model_params *b)
{
    if (a->step_ms != b->step_ms || a->kind != b->kind || a->transform != b->transform ||
        a->aggregation != b->aggregation || a->nseasons != b->nseasons ||
        a->nhorizons != b->nhorizons || a->coverage != b->coverage)
        return false;
    for (int i = 0; i < a->nseasons && i < MODEL_MAX_SEASONS; i++)
        if (a->season_ms[i] != b->season_ms[i])
            return false;
    for (int i = 0; i < a->nhorizons; i++)
        if (a->horizon_ms[i] != b->horizon_ms[i])
            return false;
    return true;
}

/* The parameters a rule gives a series, with the daemon's default step. */
static void effective_params(const struct config *cfg, int rule, struct model_params *out)
{
    *out = cfg->rules[rule].params;
    if (out->step_ms <= 0)
        out->step_ms = cfg->global.step_ms > 0 ? cfg->global.step_ms : DEFAULT_STEP_MS;
}

static struct profile *profile_get(struct pipeline *p, const struct model_params *params,
                                   uint32_t hist_cap)
{
    pthread_mutex_lock(&p->prof_lock);
    struct profile *pr;
    for (pr = p->profiles; pr; pr = pr->next)
        if (pr->hist_cap == hist_cap && params_equal(&pr->params, params))
            break;
    if (pr) {
        pr->refs++;
    } else if ((pr = calloc(1, sizeof *pr))) {
        pr->params = *params;
        pr->state_size = (model_state_size(params) + 7) & ~(size_t)7;
        pr->hist_cap = hist_cap;
        pr->refs = 1;
        for (int i = 0; i < params->nhorizons; i++)
            config_format_duration(params->horizon_ms[i], pr->horizon_text[i], HORIZON_TEXT);
        pr->next = p->profiles;
        p->profiles = pr;
    }
    pthread_mutex_unlock(&p->prof_lock);
    return pr;
}

static void profile_put(struct pipeline *p, struct profile *pr)
{
    pthread_mutex_lock(&p->prof_lock);
    if (--pr->refs == 0) {
        struct profile **pp = &p->profiles;
        while (*pp != pr)
            pp = &(*pp)->next;
        *pp = pr->next;
        free(pr);
    }
    pthread_mutex_unlock(&p->prof_lock);
}

/* ---- slots --------------------------------------------------------------- */

static struct hist_entry *slot_hist(struct slot *s)
{
    return (struct hist_entry *)(s + 1);
}

static void *slot_state(struct slot *s)
{
    size_t off = sizeof *s + (size_t)s->prof->hist_cap * sizeof(struct hist_entry);
    off = (off + 7) & ~(size_t)7;
    return (char *)s + off;
}

static size_t slot_size(const struct profile *pr)
{
    size_t off = sizeof(struct slot) + (size_t)pr->hist_cap * sizeof(struct hist_entry);
    return ((off + 7) & ~(size_t)7) + pr->state_size;
}

static struct slot *slot_new(struct pipeline *p, struct profile *pr)
{
    struct slot *s = calloc(1, slot_size(pr));
    if (!s)
        return NULL;
    s->prof = pr;
    s->last_in_t = INT64_MIN;
    s->last_out_t = INT64_MIN;
    model_init(slot_state(s), &pr->params);
    atomic_fetch_add(&p->slots, 1);
    atomic_fetch_add(&p->slot_bytes, slot_size(pr));
    return s;
}

static void slot_free(struct pipeline *p, struct slot *s)
{
    if (s->warm) {
        free(s->warm);
        atomic_fetch_sub(&p->warming, 1);
    }
    atomic_fetch_sub(&p->slots, 1);
    atomic_fetch_sub(&p->slot_bytes, slot_size(s->prof));
    profile_put(p, s->prof);
    free(s);
}

static void hist_push(struct slot *s, const struct model_output *o)
{
    uint32_t cap = s->prof->hist_cap;
    if (cap == 0)
        return;
    struct hist_entry *e = &slot_hist(s)[s->hist_head];
    e->step = (uint32_t)(o->t / s->prof->params.step_ms);
    e->v[0] = (float)o->yhat;
    e->v[1] = (float)o->yhat_lower;
    e->v[2] = (float)o->yhat_upper;
    e->v[3] = (float)o->anomaly_score;
    s->hist_head = (s->hist_head + 1) % cap;
    if (s->hist_len < cap)
        s->hist_len++;
}

/* ---- output series ------------------------------------------------------- */

/* Labels of one output series: the input's labels with __name__ replaced
 * (and the horizon label for forecasts), sorted. */
struct outlabels {
    struct label l[MAX_OUT_LABELS + 1];
    size_t n;
    size_t name_at; /* index of __name__ in l */
    char name[MAX_NAME_BYTES];
};

/* Build the base: input labels with room for the name. Returns -1 when the
 * set is too large (counted by the caller). */
static int out_init(struct outlabels *ol, const struct label *labels, size_t n)
{
    if (n > MAX_OUT_LABELS)
        return -1;
    memcpy(ol->l, labels, n * sizeof *labels);
    ol->n = n;
    ol->name_at = SIZE_MAX;
    for (size_t i = 0; i < n; i++)
        if (label_name_is(&labels[i], "__name__"))
            ol->name_at = i;
    return ol->name_at == SIZE_MAX ? -1 : 0;
}

static int out_name(struct outlabels *ol, const struct conf *c, const struct label *base_name,
                    enum config_output_kind kind)
{
    int w = snprintf(ol->name, sizeof ol->name, "%s%.*s%s", c->prefix, (int)base_name->value_len,
                     base_name->value, c->suffix[kind]);
    if (w < 0 || (size_t)w >= sizeof ol->name)
        return -1;
    ol->l[ol->name_at].value = ol->name;
    ol->l[ol->name_at].value_len = (uint32_t)w;
    return 0;
}

/* A copy of ol with the horizon label set to `value`, sorted. */
static size_t out_with_horizon(const struct outlabels *ol, const struct conf *c, const char *value,
                               struct label *dst)
{
    struct label h = {c->horizon_label, value, (uint32_t)strlen(c->horizon_label),
                      (uint32_t)strlen(value)};
    size_t m = 0;
    bool placed = false;
    for (size_t i = 0; i < ol->n; i++) {
        int cmp = strncmp(ol->l[i].name, h.name,
                          ol->l[i].name_len < h.name_len ? ol->l[i].name_len : h.name_len);
        if (cmp == 0)
            cmp = (ol->l[i].name_len > h.name_len) - (ol->l[i].name_len < h.name_len);
        if (!placed && cmp >= 0) {
            dst[m++] = h;
            placed = true;
            if (cmp == 0)
                continue; /* the series had that label: the horizon wins */
        }
        dst[m++] = ol->l[i];
    }
    if (!placed)
        dst[m++] = h;
    return m;
}

static void enqueue(struct pipeline *p, const struct conf *c, const struct label *l, size_t n,
                    int64_t t, double v, int64_t origin)
{
    for (size_t w = 0; w < c->nwriters; w++)
        if (writer_enqueue_origin(c->writers[w], l, n, t, v, origin) < 0)
            atomic_fetch_add_explicit(&p->writer_drops, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->outputs, 1, memory_order_relaxed);
}

static void emit(struct pipeline *p, struct slot *s, const struct label *labels, size_t n,
                 const struct model_output *o, int64_t origin)
{
    atomic_fetch_add_explicit(&p->steps, 1, memory_order_relaxed);
    if (!o->ready)
        return;
    hist_push(s, o);
    s->last_out_t = o->t;
    int64_t wm = atomic_load_explicit(&p->high_wm, memory_order_relaxed);
    while (o->t > wm && !atomic_compare_exchange_weak(&p->high_wm, &wm, o->t))
        ;
    if (o->t <= atomic_load_explicit(&p->suppress_until, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&p->suppressed, 1, memory_order_relaxed);
        return;
    }
    const struct conf *c = atomic_load_explicit(&p->conf, memory_order_acquire);
    if (!c || c->nwriters == 0)
        return;
    struct outlabels ol;
    if (out_init(&ol, labels, n) < 0)
        return;
    struct label base_name = ol.l[ol.name_at];
    const double vals[4] = {o->yhat, o->yhat_lower, o->yhat_upper, o->anomaly_score};
    for (int k = OUTPUT_YHAT; k <= OUTPUT_ANOMALY_SCORE; k++) {
        if (out_name(&ol, c, &base_name, (enum config_output_kind)k) < 0)
            return;
        enqueue(p, c, ol.l, ol.n, o->t, vals[k], origin);
    }
    if (out_name(&ol, c, &base_name, OUTPUT_FORECAST) < 0)
        return;
    struct label hl[MAX_OUT_LABELS + 2];
    for (int h = 0; h < o->nhorizons; h++) {
        size_t m = out_with_horizon(&ol, c, s->prof->horizon_text[h], hl);
        enqueue(p, c, hl, m, o->t, o->forecast[h], origin);
    }
}

static void observe_one(struct pipeline *p, struct slot *s, const struct label *labels, size_t n,
                        const struct sample *smp)
{
    struct model_output out[4];
    unsigned flags = 0;
    int k = model_observe(slot_state(s), &s->prof->params, smp->t, smp->v, out, 4, &flags);
    if (flags & MODEL_F_LATE)
        atomic_fetch_add_explicit(&p->late, 1, memory_order_relaxed);
    if (flags & MODEL_F_RESET)
        atomic_fetch_add_explicit(&p->resets, 1, memory_order_relaxed);
    if (flags & MODEL_F_INVALID)
        atomic_fetch_add_explicit(&p->invalid, 1, memory_order_relaxed);
    if (smp->t > s->last_in_t)
        s->last_in_t = smp->t;
    /* Latency is measured from the arrival of a step's first sample: read
     * the clock once per step, not per sample. */
    int64_t origin = s->open_since;
    for (int i = 0; i < k; i++)
        emit(p, s, labels, n, &out[i], origin);
    if (k > 0 || s->open_since == 0)
        s->open_since =
            (flags & (MODEL_F_LATE | MODEL_F_INVALID | MODEL_F_STALE)) ? 0 : clock_now_ms();
}

/* Leave the warming state: replay what was buffered, live. */
static void warm_finish(struct pipeline *p, struct slot *s, const struct label *labels, size_t n)
{
    struct warm *w = s->warm;
    s->warm = NULL;
    atomic_fetch_sub(&p->warming, 1);
    for (size_t i = 0; i < w->n; i++)
        observe_one(p, s, labels, n, &w->s[i]);
    free(w);
}

/* ---- hooks --------------------------------------------------------------- */

/* Never model promcast's own outputs: with a broad rule they come back
 * through the Prometheus we write to and would multiply. */
static bool hook_accept(void *ctx, const struct label *labels, size_t n)
{
    struct pipeline *p = ctx;
    const struct label *name = labels_get(labels, n, "__name__");
    const struct conf *c = atomic_load_explicit(&p->conf, memory_order_acquire);
    if (!name || !c)
        return true;
    size_t pl = strlen(c->prefix);
    if (name->value_len < pl || memcmp(name->value, c->prefix, pl) != 0)
        return true;
    for (int k = 0; k < OUTPUT__COUNT; k++) {
        size_t sl = strlen(c->suffix[k]);
        if (name->value_len > pl + sl &&
            memcmp(name->value + name->value_len - sl, c->suffix[k], sl) == 0)
            return false;
    }
    return true;
}

static void *hook_create(void *ctx, const struct config *cfg, int rule, const struct label *labels,
                         size_t n)
{
    struct pipeline *p = ctx;
    struct model_params params;
    effective_params(cfg, rule, &params);
    const struct conf *c = atomic_load_explicit(&p->conf, memory_order_acquire);
    int64_t hist_ms = c ? c->history_ms : 0;
    uint32_t cap = (uint32_t)(hist_ms / params.step_ms);
    struct profile *pr = profile_get(p, &params, cap);
    if (!pr)
        return NULL;
    struct slot *s = slot_new(p, pr);
    if (!s) {
        profile_put(p, pr);
        return NULL;
    }
    if (p->opts.warm_request) {
        size_t wcap = p->opts.warm_buffer ? p->opts.warm_buffer : DEFAULT_WARM_BUFFER;
        s->warm = malloc(sizeof *s->warm + wcap * sizeof(struct sample));
        if (s->warm) {
            s->warm->n = 0;
            s->warm->cap = wcap;
            atomic_fetch_add(&p->warming, 1);
            if (!p->opts.warm_request(p->opts.warm_ctx, labels, n)) {
                free(s->warm);
                s->warm = NULL;
                atomic_fetch_sub(&p->warming, 1);
            }
        }
    }
    return s;
}

static bool hook_rebind(void *ctx, void *model, const struct config *cfg, int rule)
{
    struct slot *s = model;
    struct model_params params;
    (void)ctx;
    effective_params(cfg, rule, &params);
    return params_equal(&s->prof->params, &params);
}

static void hook_observe(void *ctx, void *model, const struct label *labels, size_t n,
                         const struct sample *sample)
{
    struct pipeline *p = ctx;
    struct slot *s = model;
    if (s->warm) {
        if (s->warm->n < s->warm->cap) {
            s->warm->s[s->warm->n++] = *sample;
            return;
        }
        /* History is taking too long: go live with what we have. */
        warm_finish(p, s, labels, n);
    }
    observe_one(p, s, labels, n, sample);
}

static void hook_destroy(void *ctx, void *model)
{
    slot_free(ctx, model);
}

/* ---- lifecycle ------------------------------------------------------------
 */

static void conf_free(struct conf *c)
{
    if (!c)
        return;
    free(c->prefix);
    for (int k = 0; k < OUTPUT__COUNT; k++)
        free(c->suffix[k]);
    free(c->horizon_label);
    free(c->writers);
    free(c);
}

struct pipeline *pipeline_create(const struct pipeline_opts *opts)
{
    struct pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->opts = *opts;
    p->hooks = (struct series_model_hooks){.ctx = p,
                                           .accept = hook_accept,
                                           .create = hook_create,
                                           .rebind = hook_rebind,
                                           .observe = hook_observe,
                                           .destroy = hook_destroy};
    pthread_mutex_init(&p->conf_lock, NULL);
    pthread_mutex_init(&p->prof_lock, NULL);
    atomic_init(&p->conf, NULL);
    atomic_init(&p->high_wm, INT64_MIN);
    atomic_init(&p->suppress_until, INT64_MIN);
    return p;
}

void pipeline_destroy(struct pipeline *p)
{
    if (!p)
        return;
    conf_free(atomic_load(&p->conf));
    /* Slots are freed by the index (destroy hook) before this; any profile
   * left means a slot leaked. */
    while (p->profiles) {
        struct profile *n = p->profiles->next;
        free(p->profiles);
        p->profiles = n;
    }
    pthread_mutex_destroy(&p->conf_lock);
    pthread_mutex_destroy(&p->prof_lock);
    free(p);
}

void pipeline_set_warm_ctx(struct pipeline *p, void *warm_ctx)
{
    p->opts.warm_ctx = warm_ctx;
}

struct series_model_hooks *pipeline_hooks(struct pipeline *p)
{
    return &p->hooks;
}

void pipeline_attach(struct pipeline *p, struct series_index *idx)
{
    p->idx = idx;
}

int pipeline_configure(struct pipeline *p, const struct config *cfg, struct writer *const *writers,
                       size_t nwriters)
{
    struct conf *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    bool ok = (c->prefix = strdup(cfg->output.prefix)) &&
              (c->horizon_label = strdup(cfg->output.horizon_label));
    for (int k = 0; ok && k < OUTPUT__COUNT; k++)
        ok = (c->suffix[k] = strdup(cfg->output.suffix[k])) != NULL;
    c->history_ms = cfg->output.history_ms;
    c->close_delay_ms = cfg->output.close_delay_ms;
    c->nwriters = nwriters;
    if (ok && nwriters) {
        c->writers = malloc(nwriters * sizeof *c->writers);
        ok = c->writers != NULL;
        if (ok)
            memcpy(c->writers, writers, nwriters * sizeof *writers);
    }
    if (!ok) {
        conf_free(c);
        return -1;
    }
    pthread_mutex_lock(&p->conf_lock);
    struct conf *old = atomic_exchange_explicit(&p->conf, c, memory_order_acq_rel);
    /* Hooks run under shard locks: once every shard has been locked after
   * the swap, none can still hold the old conf. */
    if (p->idx)
        series_index_barrier(p->idx);
    pthread_mutex_unlock(&p->conf_lock);
    conf_free(old);
    return 0;
}

struct flush_ctx {
    struct pipeline *p;
    int64_t until; /* close steps that ended at or before this */
    size_t closed;
};

static int flush_one(void *ctx, const struct label *labels, size_t n, void *model)
{
    struct flush_ctx *f = ctx;
    struct slot *s = model;
    if (s->warm)
        return 0;
    struct model_output out[2];
    int k = model_flush(slot_state(s), &s->prof->params, f->until, out, 2);
    for (int i = 0; i < k; i++)
        emit(f->p, s, labels, n, &out[i], s->open_since);
    if (k > 0)
        s->open_since = 0;
    f->closed += (size_t)k;
    return 0;
}

size_t pipeline_flush(struct pipeline *p, int64_t now_ms)
{
    /* Samples of a step may still be on their way (the sender batches them),
     * so a step is closed by the clock only output.close_delay after its
     * end; a later sample of the series closes it earlier. */
    const struct conf *c = atomic_load_explicit(&p->conf, memory_order_acquire);
    struct flush_ctx f = {p, now_ms - (c ? c->close_delay_ms : 0), 0};
    if (p->idx)
        series_index_visit_models(p->idx, NULL, flush_one, &f);
    return f.closed;
}

void pipeline_get_stats(struct pipeline *p, struct pipeline_stats *st)
{
    st->slots = atomic_load(&p->slots);
    st->slot_bytes = atomic_load(&p->slot_bytes);
    st->warming = atomic_load(&p->warming);
    st->steps = atomic_load(&p->steps);
    st->outputs = atomic_load(&p->outputs);
    st->suppressed = atomic_load(&p->suppressed);
    st->late = atomic_load(&p->late);
    st->counter_resets = atomic_load(&p->resets);
    st->invalid = atomic_load(&p->invalid);
    st->writer_drops = atomic_load(&p->writer_drops);
}

int64_t pipeline_high_watermark(struct pipeline *p)
{
    return atomic_load(&p->high_wm);
}

void pipeline_set_suppress_until(struct pipeline *p, int64_t t_ms)
{
    atomic_store(&p->suppress_until, t_ms);
}

/* ---- warm start -------------------------------------------------------------
 */

int pipeline_warm_apply(struct pipeline *p, void *model, const struct label *labels, size_t n,
                        const struct sample *hist, size_t nhist)
{
    struct slot *s = model;
    if (!s->warm)
        return 1;
    /* History overlaps what arrived live (Prometheus stored it too): keep
   * only the part before the first buffered sample. */
    int64_t cut = s->warm->n ? s->warm->s[0].t : INT64_MAX;
    size_t m = 0;
    while (m < nhist && hist[m].t < cut)
        m++;
    if (m > 0) {
        model_init(slot_state(s), &s->prof->params);
        model_warm_start(slot_state(s), &s->prof->params, hist, m);
        s->last_in_t = hist[m - 1].t;
    }
    warm_finish(p, s, labels, n);
    return 0;
}

/* ---- remote read
 * ---------------------------------------------------------------- */

struct read_ctx {
    struct pipeline *p;
    const struct conf *c;
    const struct selector *sel;
    int64_t start, end;
    pipeline_read_fn fn;
    void *ctx;
    struct sample *buf;
    size_t bufcap;
    int64_t *pt;
    double *py, *plo, *phi;
    bool oom;
};

static bool read_reserve(struct read_ctx *r, size_t need)
{
    if (need <= r->bufcap)
        return true;
    struct sample *b = realloc(r->buf, need * sizeof *b);
    if (!b)
        return false;
    r->buf = b;
    r->bufcap = need;
    return true;
}

static int read_one(void *ctx, const struct label *labels, size_t n, void *model)
{
    struct read_ctx *r = ctx;
    struct slot *s = model;
    if (s->warm)
        return 0;
    struct outlabels ol;
    if (out_init(&ol, labels, n) < 0)
        return 0;
    struct label base_name = ol.l[ol.name_at];
    const struct model_params *mp = &s->prof->params;
    int npath = -1; /* computed once, when a yhat-like series matches */
    if (!read_reserve(r, (size_t)s->prof->hist_cap + MAX_PATH_POINTS)) {
        r->oom = true;
        return -1;
    }
    for (int k = OUTPUT_YHAT; k <= OUTPUT_ANOMALY_SCORE; k++) {
        if (out_name(&ol, r->c, &base_name, (enum config_output_kind)k) < 0)
            return 0;
        if (!selector_match(r->sel, ol.l, ol.n))
            continue;
        size_t ns = 0;
        uint32_t cap = s->prof->hist_cap;
        const struct hist_entry *h = slot_hist(s);
        int64_t last_t = INT64_MIN;
        for (uint32_t i = 0; i < s->hist_len; i++) {
            const struct hist_entry *e = &h[(s->hist_head + cap - s->hist_len + i) % cap];
            int64_t t = (int64_t)e->step * mp->step_ms;
            last_t = t;
            if (t >= r->start && t <= r->end)
                r->buf[ns++] = (struct sample){t, (double)e->v[k]};
        }
        if (k <= OUTPUT_YHAT_UPPER) {
            if (npath < 0)
                npath = model_forecast_path(slot_state(s), mp, r->pt, r->py, r->plo, r->phi,
                                            MAX_PATH_POINTS);
            const double *v = k == OUTPUT_YHAT ? r->py : k == OUTPUT_YHAT_LOWER ? r->plo : r->phi;
            for (int i = 0; i < npath; i++)
                if (r->pt[i] > last_t && r->pt[i] >= r->start && r->pt[i] <= r->end)
                    r->buf[ns++] = (struct sample){r->pt[i], v[i]};
        }
        if (ns == 0)
            continue;
        int rc = r->fn(r->ctx, ol.l, ol.n, r->buf, ns);
        if (rc)
            return rc;
    }
    return 0;
}

/* When the query pins __name__ to one output series name, visit only the
 * input series with the base name (and the query's other matchers, which
 * apply to input labels unchanged, except the horizon label). NULL when the
 * query has no such matcher or when out of memory (then every slot is
 * visited). */
static struct selector *input_selector(const struct conf *c, const struct selector *sel)
{
    size_t nm = selector_count(sel);
    const char *base = NULL;
    size_t base_len = 0;
    for (size_t i = 0; i < nm; i++) {
        enum matcher_op op;
        const char *name, *value;
        size_t nl, vl;
        selector_matcher_bytes(sel, i, &op, &name, &nl, &value, &vl);
        if (op != MATCH_EQ || strcmp(name, "__name__") != 0)
            continue;
        size_t pl = strlen(c->prefix);
        if (vl < pl || memcmp(value, c->prefix, pl) != 0)
            return NULL;
        for (int k = 0; k < OUTPUT__COUNT; k++) {
            size_t sl = strlen(c->suffix[k]);
            if (vl >= pl + sl && memcmp(value + vl - sl, c->suffix[k], sl) == 0) {
                base = value + pl;
                base_len = vl - pl - sl;
                break;
            }
        }
        if (!base)
            return NULL;
    }
    if (!base || base_len == 0)
        return NULL;
    struct selector *in = selector_create();
    if (!in)
        return NULL;
    char err[128];
    if (selector_add(in, MATCH_EQ, "__name__", 8, base, base_len, err, sizeof err) < 0)
        goto fail;
    for (size_t i = 0; i < nm; i++) {
        enum matcher_op op;
        const char *name, *value;
        size_t nl, vl;
        selector_matcher_bytes(sel, i, &op, &name, &nl, &value, &vl);
        if (strcmp(name, "__name__") == 0 || strcmp(name, c->horizon_label) == 0)
            continue;
        if (selector_add(in, op, name, nl, value, vl, err, sizeof err) < 0)
            goto fail;
    }
    return in;
fail:
    selector_destroy(in);
    return NULL;
}

int pipeline_read(struct pipeline *p, const struct selector *sel, int64_t start_ms, int64_t end_ms,
                  pipeline_read_fn fn, void *ctx)
{
    const struct conf *c = atomic_load_explicit(&p->conf, memory_order_acquire);
    if (!c || !p->idx)
        return 0;
    /* The conf cannot be freed under us: configure only swaps it while
   * holding conf_lock, and we hold it for the read. */
    pthread_mutex_lock(&p->conf_lock);
    c = atomic_load_explicit(&p->conf, memory_order_acquire);
    struct read_ctx r = {
        .p = p, .c = c, .sel = sel, .start = start_ms, .end = end_ms, .fn = fn, .ctx = ctx};
    r.pt = malloc(MAX_PATH_POINTS * sizeof *r.pt);
    r.py = malloc(MAX_PATH_POINTS * sizeof *r.py);
    r.plo = malloc(MAX_PATH_POINTS * sizeof *r.plo);
    r.phi = malloc(MAX_PATH_POINTS * sizeof *r.phi);
    int rc = -1;
    if (r.pt && r.py && r.plo && r.phi) {
        struct selector *in = input_selector(c, sel);
        rc = series_index_visit_models(p->idx, in, read_one, &r);
        selector_destroy(in);
        if (r.oom)
            rc = -1;
    }
    pthread_mutex_unlock(&p->conf_lock);
    free(r.buf);
    free(r.pt);
    free(r.py);
    free(r.plo);
    free(r.phi);
    return rc;
}

/* ---- snapshots
 * ------------------------------------------------------------------ */

/*
 * Record layout (little-endian, what x86-64 and arm64 are):
 *   u32 magic "PSL1"
 *   u16 nlabels, then per label: u16 name_len, u32 value_len, name, value
 *   model params: i64 step, u8 kind, u8 transform, u8 aggregation, i8 nseasons,
 *     i64 season[2], u8 nhorizons, i64 horizon[nhorizons], f64 coverage
 *   i64 last_in_t, i64 last_out_t, u32 hist_cap, u32 hist_len, u32 hist_head
 *   hist_cap × (u32 step, 4 × f32)
 *   u32 state_size, state bytes
 */
#define RECORD_MAGIC 0x314c5350u /* "PSL1" */

uint32_t pipeline_snapshot_schema(void)
{
    return (uint32_t)MODEL_STATE_VERSION << 16 | 1u;
}

struct buf {
    unsigned char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct buf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

#define PUT(b, type, v)                                                                            \
    do {                                                                                           \
        type v_ = (type)(v);                                                                       \
        put((b), &v_, sizeof v_);                                                                  \
    } while (0)

struct snap_ctx {
    pipeline_record_fn fn;
    void *ctx;
    struct buf b;
};

static int snap_one(void *ctx, const struct label *labels, size_t n, void *model)
{
    struct snap_ctx *sc = ctx;
    struct slot *s = model;
    if (s->warm)
        return 0; /* nothing learned yet */
    struct buf *b = &sc->b;
    const struct model_params *mp = &s->prof->params;
    b->len = 0;
    PUT(b, uint32_t, RECORD_MAGIC);
    PUT(b, uint16_t, n);
    for (size_t i = 0; i < n; i++) {
        PUT(b, uint16_t, labels[i].name_len);
        PUT(b, uint32_t, labels[i].value_len);
        put(b, labels[i].name, labels[i].name_len);
        put(b, labels[i].value, labels[i].value_len);
    }
    PUT(b, int64_t, mp->step_ms);
    PUT(b, uint8_t, mp->kind);
    PUT(b, uint8_t, mp->transform);
    PUT(b, uint8_t, mp->aggregation);
    PUT(b, int8_t, mp->nseasons);
    PUT(b, int64_t, mp->season_ms[0]);
    PUT(b, int64_t, mp->season_ms[1]);
    PUT(b, uint8_t, mp->nhorizons);
    for (int i = 0; i < mp->nhorizons; i++)
        PUT(b, int64_t, mp->horizon_ms[i]);
    PUT(b, double, mp->coverage);
    PUT(b, int64_t, s->last_in_t);
    PUT(b, int64_t, s->last_out_t);
    PUT(b, uint32_t, s->prof->hist_cap);
    PUT(b, uint32_t, s->hist_len);
    PUT(b, uint32_t, s->hist_head);
    put(b, slot_hist(s), (size_t)s->prof->hist_cap * sizeof(struct hist_entry));
    PUT(b, uint32_t, model_state_size(mp));
    put(b, slot_state(s), model_state_size(mp));
    if (b->oom)
        return -1;
    return sc->fn(sc->ctx, b->p, b->len);
}

int pipeline_snapshot(struct pipeline *p, pipeline_record_fn fn, void *ctx)
{
    struct snap_ctx sc = {fn, ctx, {0}};
    int rc = p->idx ? series_index_visit_models(p->idx, NULL, snap_one, &sc) : 0;
    free(sc.b.p);
    return rc;
}

struct rd {
    const unsigned char *p, *end;
    bool bad;
};

static void get(struct rd *r, void *dst, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p, n);
    r->p += n;
}

static const unsigned char *skip(struct rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *at = r->p;
    r->p += n;
    return at;
}

int pipeline_restore(struct pipeline *p, const void *rec, size_t len, int64_t now_ms)
{
    struct rd r = {rec, (const unsigned char *)rec + len, false};
    uint32_t magic;
    uint16_t n;
    get(&r, &magic, sizeof magic);
    get(&r, &n, sizeof n);
    if (r.bad || magic != RECORD_MAGIC || n == 0 || n > MAX_OUT_LABELS)
        return -1;
    struct label labels[MAX_OUT_LABELS];
    for (uint16_t i = 0; i < n; i++) {
        uint16_t nl;
        uint32_t vl;
        get(&r, &nl, sizeof nl);
        get(&r, &vl, sizeof vl);
        const unsigned char *name = skip(&r, nl), *value = skip(&r, vl);
        if (r.bad || nl == 0)
            return -1;
        labels[i] = (struct label){(const char *)name, (const char *)value, nl, vl};
    }
    if (!labels_sorted(labels, n))
        return -1;
    struct model_params mp;
    memset(&mp, 0, sizeof mp);
    uint8_t kind, transform, agg, nh;
    int8_t nseasons;
    get(&r, &mp.step_ms, sizeof mp.step_ms);
    get(&r, &kind, 1);
    get(&r, &transform, 1);
    get(&r, &agg, 1);
    get(&r, &nseasons, 1);
    get(&r, &mp.season_ms[0], sizeof(int64_t));
    get(&r, &mp.season_ms[1], sizeof(int64_t));
    get(&r, &nh, 1);
    if (r.bad || nh > MODEL_MAX_HORIZONS)
        return -1;
    for (int i = 0; i < nh; i++)
        get(&r, &mp.horizon_ms[i], sizeof(int64_t));
    get(&r, &mp.coverage, sizeof mp.coverage);
    mp.kind = (enum model_kind)kind;
    mp.transform = (enum model_transform)transform;
    mp.aggregation = (enum model_aggregation)agg;
    mp.nseasons = nseasons;
    mp.nhorizons = nh;
    char why[128];
    if (r.bad || model_params_check(&mp, why, sizeof why) < 0)
        return -1;
    int64_t last_in, last_out;
    uint32_t cap, hlen, hhead, ssize;
    get(&r, &last_in, sizeof last_in);
    get(&r, &last_out, sizeof last_out);
    get(&r, &cap, sizeof cap);
    get(&r, &hlen, sizeof hlen);
    get(&r, &hhead, sizeof hhead);
    if (r.bad || hlen > cap || (cap && hhead >= cap) || cap > (1u << 24))
        return -1;
    const unsigned char *hist = skip(&r, (size_t)cap * sizeof(struct hist_entry));
    get(&r, &ssize, sizeof ssize);
    const unsigned char *state = skip(&r, ssize);
    if (r.bad || r.p != r.end)
        return -1;
    if (ssize != model_state_size(&mp))
        return 0; /* the model layout changed: start this series afresh */
    struct profile *pr = profile_get(p, &mp, cap);
    if (!pr)
        return -1;
    struct slot *s = slot_new(p, pr);
    if (!s) {
        profile_put(p, pr);
        return -1;
    }
    memcpy(slot_hist(s), hist, (size_t)cap * sizeof(struct hist_entry));
    memcpy(slot_state(s), state, ssize);
    s->last_in_t = last_in;
    s->last_out_t = last_out;
    s->hist_len = hlen;
    s->hist_head = hhead;
    if (last_out > INT64_MIN) {
        int64_t wm = atomic_load(&p->high_wm);
        while (last_out > wm && !atomic_compare_exchange_weak(&p->high_wm, &wm, last_out))
            ;
    }
    /* The index adopts the slot, or destroys it through the hooks. */
    int rc = series_index_restore(p->idx, labels, n, last_in, s, now_ms);
    return rc < 0 ? -1 : rc;
}
