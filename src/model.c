/*
 * model.c — the per-series forecast and anomaly engine: layout and pipeline.
 *
 * Role: implements model.h. Raw samples go through the step grid
 * (model_grid.c); every closed step runs one pass of the pipeline:
 *
 *   1. one-step forecasts of the four candidates — naive (last value),
 *      robust level (model_level.c), damped Holt-Winters with seasons
 *      (model_hw.c), error-correction AR by RLS (model_ar.c) — made before
 *      the step's value is seen;
 *   2. their combination = yhat (model auto: weights proportional to the
 *      inverse of each candidate's recent mean squared error at that
 *      horizon, naive favoured by a factor NAIVE_BONUS; a fixed kind uses
 *      its own candidate only), with the interval yhat + scale * [qlo, qhi]
 *      from the empirical quantiles of recent scaled one-step errors;
 *   3. anomaly score and change points (model_score.c);
 *   4. update of every candidate with the value clipped to CLEAN_K of that
 *      candidate's own RMS error (robustness), or with the raw value after
 *      a change point (re-adaptation);
 *   5. per horizon: check the forecasts stored `horizon` steps ago against
 *      this value (error statistics per candidate, interval quantiles), then
 *      store the new forecasts.
 *
 * State layout (one flat blob, no pointers, native byte order; offsets are
 * relative to the blob so a copy anywhere keeps working):
 *
 *   struct model_state                 fixed part (720 bytes on x86-64),
 *                                      see model_internal.h
 *   float profile1[n1], uint32 sign1[ceil(n1/32)]
 *                                      first season: n1 <= 288 slot values
 *                                      and the sign of the last error seen
 *                                      at each slot (for learning gamma)
 *   float profile2[n2], uint32 sign2[ceil(n2/32)]
 *                                      second season, n2 <= 84 slots
 *   (padding to 8)
 *   struct ring_entry ring_i[len_i]    per horizon i (24 bytes each): the
 *                                      stored forecasts; h_i = horizon in
 *                                      steps, stride_i = ceil(h_i / 8),
 *                                      len_i = ceil(h_i / stride_i) <= 8
 *   struct hz_stats stats[1 + nh]      64 bytes each; index 0 = one step:
 *                                      mean squared errors, cached
 *                                      combination weights, interval
 *                                      quantiles
 *
 *   size = 720 + align8(4 (n1 + n2) + 4 (ceil(n1/32) + ceil(n2/32)))
 *          + 24 sum(len_i) + 64 (1 + nh)
 *
 * A season of period P is modelled when P >= 4 steps, with
 * n = min(P / step, 288) slots for the first and min(P / step, 84) for the
 * second (finer steps interpolate between slots). With seasons
 * auto-detected (nseasons = -1) a daily and a weekly profile are allocated.
 * Examples: 5m step, daily season, horizons 15m and 1h: 2320 bytes; the
 * same with seasons auto-detected (daily + weekly): 2664 bytes.
 *
 * Deliberately not done here: I/O, locking, allocation. libm only.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model_internal.h"

#define DAY_MS  INT64_C(86400000)
#define WEEK_MS (7 * DAY_MS)

#define WARM_STEPS  24   /* outputs are provisional before this many steps */
#define ERR_RATE    0.02 /* EWMA rate of the error statistics */
#define Q_RATE      0.03 /* quantile step, in units of the error scale */
#define NAIVE_BONUS 1.3  /* prior preference for the naive forecast */
#define CLEAN_K     4.0  /* errors beyond this many RMS errors are outliers */
/* Combination weights follow error statistics with a memory of ~50
 * updates; recomputing them every 2nd update (every one during warm-up)
 * changes nothing measurable and saves their divisions. */
#define WEIGHTS_EVERY 2u

/* ---- layout ------------------------------------------------------------- */

struct layout {
    int nseason;
    int64_t period[MODEL_MAX_SEASONS];
    uint32_t nslots[MODEL_MAX_SEASONS];
    uint32_t prof_off[MODEL_MAX_SEASONS];
    int nh;
    uint32_t hsteps[MODEL_MAX_HORIZONS];
    uint32_t stride[MODEL_MAX_HORIZONS];
    uint32_t len[MODEL_MAX_HORIZONS];
    uint32_t ring_off, stats_off;
    size_t size;
};

static size_t align8(size_t x)
{
    return (x + 7) & ~(size_t)7;
}

static void layout_compute(const struct model_params *p, struct layout *l)
{
    memset(l, 0, sizeof *l);
    int64_t want[MODEL_MAX_SEASONS];
    int nwant = 0;
    if (p->nseasons < 0) {
        want[nwant++] = DAY_MS;
        want[nwant++] = WEEK_MS;
    } else {
        for (int i = 0; i < p->nseasons && i < MODEL_MAX_SEASONS; i++)
            want[nwant++] = p->season_ms[i];
    }
    size_t off = sizeof(struct model_state);
    for (int i = 0; i < nwant; i++) {
        int64_t per = want[i];
        if (per <= 0 || per / p->step_ms < 4)
            continue;
        int64_t n = per / p->step_ms;
        int64_t cap = l->nseason == 0 ? HW_SLOTS_MAX1 : HW_SLOTS_MAX2;
        if (n > cap)
            n = cap;
        l->period[l->nseason] = per;
        l->nslots[l->nseason] = (uint32_t)n;
        l->prof_off[l->nseason] = (uint32_t)off;
        off += (size_t)n * sizeof(float) + (size_t)(n + 31) / 32 * sizeof(uint32_t);
        l->nseason++;
    }
    off = align8(off);
    l->ring_off = (uint32_t)off;
    l->nh = p->nhorizons < 0                    ? 0
            : p->nhorizons > MODEL_MAX_HORIZONS ? MODEL_MAX_HORIZONS
                                                : p->nhorizons;
    for (int i = 0; i < l->nh; i++) {
        int64_t h = (p->horizon_ms[i] + p->step_ms / 2) / p->step_ms;
        if (h < 1)
            h = 1;
        if (h > INT32_MAX / 2)
            h = INT32_MAX / 2;
        uint32_t stride = (uint32_t)((h + MODEL_RING_MAX - 1) / MODEL_RING_MAX);
        l->hsteps[i] = (uint32_t)h;
        l->stride[i] = stride;
        l->len[i] = (uint32_t)((h + stride - 1) / stride);
        off += l->len[i] * sizeof(struct ring_entry);
    }
    l->stats_off = (uint32_t)off;
    off += (size_t)(1 + l->nh) * sizeof(struct hz_stats);
    l->size = align8(off);
}

static struct ring_entry *ring(struct model_state *s, int i)
{
    size_t off = s->ring_off;
    for (int k = 0; k < i; k++)
        off += s->hring[k] * sizeof(struct ring_entry);
    return (struct ring_entry *)((char *)s + off);
}

static struct hz_stats *stats(struct model_state *s)
{
    return (struct hz_stats *)((char *)s + s->stats_off);
}

static const struct hz_stats *cstats(const struct model_state *s)
{
    return (const struct hz_stats *)((const char *)s + s->stats_off);
}

static void weights_update(const struct model_state *s, struct hz_stats *st, int sharp);

/* ---- params ------------------------------------------------------------- */

void model_params_default(struct model_params *p)
{
    memset(p, 0, sizeof *p);
    p->step_ms = 60 * 1000;
    p->kind = MODEL_AUTO;
    p->transform = MODEL_TRANSFORM_NONE;
    p->aggregation = MODEL_AGG_LAST;
    p->nseasons = -1;
    p->nhorizons = 2;
    p->horizon_ms[0] = 15 * 60 * 1000;
    p->horizon_ms[1] = 60 * 60 * 1000;
    p->coverage = 0.95;
}

int model_params_check(const struct model_params *p, char *err, size_t errcap)
{
    const char *why = NULL;
    if (p->step_ms <= 0)
        why = "step must be positive";
    else if ((int)p->kind < MODEL_AUTO || p->kind > MODEL_LEVEL)
        why = "unknown model kind";
    else if ((int)p->transform < MODEL_TRANSFORM_NONE || p->transform > MODEL_TRANSFORM_RATE)
        why = "unknown transform";
    else if ((int)p->aggregation < MODEL_AGG_LAST || p->aggregation > MODEL_AGG_MAX)
        why = "unknown aggregation";
    else if (p->nseasons < -1 || p->nseasons > MODEL_MAX_SEASONS)
        why = "at most 2 seasons";
    else if (p->nhorizons < 0 || p->nhorizons > MODEL_MAX_HORIZONS)
        why = "at most 8 horizons";
    else if (!(p->coverage > 0 && p->coverage < 1))
        why = "interval coverage must be in (0, 1)";
    for (int i = 0; !why && i < p->nseasons; i++) {
        if (p->season_ms[i] <= 0)
            why = "season must be positive";
        else if (p->season_ms[i] / p->step_ms < 4)
            why = "season must span at least 4 steps";
        else if (p->season_ms[i] > 366 * DAY_MS)
            why = "season longer than a year";
    }
    for (int i = 0; !why && i < p->nhorizons; i++) {
        if (p->horizon_ms[i] <= 0)
            why = "horizon must be positive";
        else if (p->horizon_ms[i] / p->step_ms > 1000000)
            why = "horizon longer than a million steps";
    }
    if (!why)
        return 0;
    if (err && errcap)
        snprintf(err, errcap, "%s", why);
    return -1;
}

size_t model_state_size(const struct model_params *p)
{
    struct layout l;
    layout_compute(p, &l);
    return l.size;
}

/* Inverse of the standard normal CDF (Acklam's rational approximation,
 * relative error < 1.2e-9), used once at init for the interval prior. */
static double norm_quantile(double q)
{
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    if (q <= 0)
        return -1e300;
    if (q >= 1)
        return 1e300;
    if (q < 0.02425) {
        double r = sqrt(-2 * log(q));
        return (((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) /
               ((((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1);
    }
    if (q > 1 - 0.02425) {
        double r = sqrt(-2 * log(1 - q));
        return -(((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) /
               ((((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1);
    }
    double r = q - 0.5, r2 = r * r;
    return (((((a[0] * r2 + a[1]) * r2 + a[2]) * r2 + a[3]) * r2 + a[4]) * r2 + a[5]) * r /
           (((((b[0] * r2 + b[1]) * r2 + b[2]) * r2 + b[3]) * r2 + b[4]) * r2 + 1);
}

void model_init(void *state, const struct model_params *p)
{
    struct layout l;
    layout_compute(p, &l);
    memset(state, 0, l.size);
    struct model_state *s = state;
    s->magic = MODEL_MAGIC;
    s->version = MODEL_STATE_VERSION;
    s->kind = (uint16_t)p->kind;
    s->size = (uint32_t)l.size;
    s->nh = (uint16_t)l.nh;
    for (int i = 0; i < l.nh; i++) {
        s->hsteps[i] = l.hsteps[i];
        s->hstride[i] = l.stride[i];
        s->hring[i] = (uint8_t)l.len[i];
    }
    s->ring_off = l.ring_off;
    s->stats_off = l.stats_off;
    s->step_ms = p->step_ms;
    grid_init(&s->grid, p->step_ms);
    s->hw.nseason = (uint32_t)l.nseason;
    for (int i = 0; i < l.nseason; i++) {
        struct hw_season *se = &s->hw.season[i];
        se->period_ms = l.period[i];
        se->inv_period = 1.0 / (double)l.period[i];
        se->nslots = l.nslots[i];
        se->offset = l.prof_off[i];
        se->gamma = (float)0.1;
        se->gstep = (float)((double)p->step_ms * l.nslots[i] / (double)l.period[i]);
    }
    /* Seasons given in the config are used from the start; auto-detected
     * ones only once significant. */
    s->hw.detected = p->nseasons < 0 ? 0 : (1u << l.nseason) - 1;
    int64_t lg = 0;
    for (int i = 0; i < l.nseason; i++)
        if (l.period[i] > lg)
            lg = l.period[i];
    if (lg < DAY_MS)
        lg = DAY_MS;
    int64_t lgs = lg / p->step_ms;
    s->long_gap = (uint32_t)(lgs < 8 ? 8 : lgs > UINT32_MAX / 2 ? UINT32_MAX / 2 : lgs);
    double zq = norm_quantile(0.5 + p->coverage / 2) * 1.2533;
    struct hz_stats *st = stats(s);
    for (int i = 0; i <= l.nh; i++) {
        st[i].qlo = (float)-zq;
        st[i].qhi = (float)zq;
        weights_update(s, &st[i], i > 0);
    }
    for (int i = 0; i < l.nh; i++) {
        struct ring_entry *r = ring(s, i);
        for (uint32_t k = 0; k < l.len[i]; k++)
            r[k].target = UINT32_MAX;
    }
}

int model_state_check(const void *state, size_t size, const struct model_params *p)
{
    const struct model_state *s = state;
    struct layout l;
    if (!state || size < sizeof *s || p->step_ms <= 0)
        return -1;
    layout_compute(p, &l);
    if (s->magic != MODEL_MAGIC || s->version != MODEL_STATE_VERSION || s->size != size ||
        size != l.size || s->step_ms != p->step_ms || s->kind != (uint16_t)p->kind ||
        s->nh != l.nh || s->ring_off != l.ring_off || s->stats_off != l.stats_off ||
        s->hw.nseason != (uint32_t)l.nseason)
        return -1;
    for (int i = 0; i < l.nh; i++)
        if (s->hsteps[i] != l.hsteps[i] || s->hstride[i] != l.stride[i] || s->hring[i] != l.len[i])
            return -1;
    for (int i = 0; i < l.nseason; i++)
        if (s->hw.season[i].period_ms != l.period[i] || s->hw.season[i].nslots != l.nslots[i] ||
            s->hw.season[i].offset != l.prof_off[i])
            return -1;
    return 0;
}

/* ---- forecasting ---------------------------------------------------------- */

static int64_t step_index(const struct model_state *s, int64_t t)
{
    int64_t rem;
    return model_floordiv(t, s->step_ms, s->grid.inv_step, &rem);
}

/* Candidate forecasts k steps after the last closed step, at the time whose
 * seasonal phases are ph, given the AR forecast of the deseasonalised value. */
static void candidates_ar(const struct model_state *s, const struct hw_phases *ph, uint32_t k,
                          double ar, double *f)
{
    double sdet = hw_phases_sum(ph, s->hw.detected);
    f[CAND_NAIVE] = s->last_value;
    f[CAND_LEVEL] = level_forecast(&s->lvl) + sdet;
    f[CAND_HW] = hw_forecast(&s->hw, ph, k);
    f[CAND_AR] = ar + sdet;
}

/* Candidate forecasts k steps after the last closed step, at the time whose
 * seasonal phases are ph. */
static void candidates(const struct model_state *s, const struct hw_phases *ph, uint32_t k,
                       double *f)
{
    candidates_ar(s, ph, k, ar_forecast(&s->ar, s->lvl.mu, k), f);
}

/* Position of step k in horizon i's ring cycle (stride * len steps), kept
 * incrementally as slot * stride + sub: consecutive steps need no division.
 * Returns sub; *slot gets the slot. */
static uint32_t ring_phase(struct model_state *s, int i, int64_t k, int consecutive, uint32_t *slot)
{
    uint32_t stride = s->hstride[i];
    uint32_t sub, sl;
    if (consecutive) {
        sub = s->hsub[i] + 1;
        sl = s->hslot[i];
        if (sub == stride) {
            sub = 0;
            if (++sl == s->hring[i])
                sl = 0;
        }
    } else {
        int64_t period = (int64_t)stride * s->hring[i];
        int64_t r = k % period;
        uint32_t ph = (uint32_t)(r < 0 ? r + period : r);
        sub = ph % stride;
        sl = ph / stride;
    }
    s->hsub[i] = sub;
    s->hslot[i] = (uint8_t)sl;
    *slot = sl;
    return sub;
}

/* Combination weights from error statistics, cached in st->w: recomputed
 * after each update of the statistics, so the next forecast does not wait
 * for the divisions. */
static void weights_update(const struct model_state *s, struct hz_stats *st, int sharp)
{
    float *w = st->w;
    switch (s->kind) {
    case MODEL_HOLT_WINTERS:
    case MODEL_AR:
    case MODEL_LEVEL:
        for (int m = 0; m < MODEL_NCAND; m++)
            w[m] = 0;
        w[s->kind == MODEL_HOLT_WINTERS ? CAND_HW : s->kind == MODEL_AR ? CAND_AR : CAND_LEVEL] = 1;
        return;
    default:
        break;
    }
    if (st->n == 0) {
        for (int m = 0; m < MODEL_NCAND; m++)
            w[m] = m == CAND_NAIVE;
        return;
    }
    /* inverse mean squared error (squared again when sharp), with a prior
     * preference for naive; the floor keeps a perfect candidate from
     * dividing by zero */
    const double *mse = st->mse;
    double best = mse[0];
    for (int m = 1; m < MODEL_NCAND; m++)
        if (mse[m] < best)
            best = mse[m];
    /* one double division for the scale, the rest in float: ratios to the
     * best are >= 1 (inf for hopeless candidates, whose weight is 0) */
    double floor = 1e-300 + 1e-9 * best;
    double ib = 1 / (best + floor);
    float x[MODEL_NCAND], sum = 0;
    for (int m = 0; m < MODEL_NCAND; m++) {
        float r = (float)((mse[m] + floor) * ib);
        /* a candidate 1e15 times worse than the best gets nothing (and its
         * square stays out of the slow denormal range) */
        float v = r < 1e15f ? (m == CAND_NAIVE ? (float)NAIVE_BONUS : 1.0f) / r : 0;
        x[m] = sharp ? v * v : v;
        sum += x[m];
    }
    float inv = 1 / sum;
    for (int m = 0; m < MODEL_NCAND; m++)
        w[m] = x[m] * inv;
}

static double combine(const double *f, const float *w)
{
    double y = 0;
    for (int m = 0; m < MODEL_NCAND; m++)
        if (w[m] > 0)
            y += w[m] * f[m];
    return y;
}

/* Fold one forecast error into the statistics of a horizon. Each candidate's
 * error is clipped at CLEAN_K of its own recent RMS error (unless raw is
 * set), and the clipped value is written back to yc[m]: the observation as
 * that candidate should learn it. */
static void stats_update(struct hz_stats *st, const double *f, double fc, double y, int raw,
                         double tau_lo, double tau_hi, double *yc)
{
    double rate = st->n >= 49 ? ERR_RATE : 1.0 / (double)(st->n + 1);
    double e2[MODEL_NCAND];
    for (int m = 0; m < MODEL_NCAND; m++) {
        double e = y - f[m];
        e2[m] = e * e;
        st->mse[m] += rate * (e2[m] - st->mse[m]);
    }
    if (yc) {
        for (int m = 0; m < MODEL_NCAND; m++) {
            double lim2 = CLEAN_K * CLEAN_K * st->mse[m];
            yc[m] = y;
            if (!raw && st->n > 0 && e2[m] > lim2) {
                double lim = sqrt(lim2);
                yc[m] = y > f[m] ? f[m] + lim : f[m] - lim;
            }
        }
    }
    double ec = y - fc;
    if (st->n > 0 && st->mae > 0) {
        /* quantiles of error / scale by stochastic approximation: each
         * moves until the share of errors below it is its tau */
        double u = ec / st->mae;
        st->qlo += (float)(Q_RATE * (tau_lo - (u <= st->qlo)));
        st->qhi += (float)(Q_RATE * (tau_hi - (u <= st->qhi)));
        if (st->qlo > 0)
            st->qlo = 0;
        if (st->qhi < 0)
            st->qhi = 0;
    }
    float a = (float)fabs(ec);
    if (!raw && st->n > 0 && a > CLEAN_K * 1.25f * st->mae)
        a = (float)(CLEAN_K * 1.25f * st->mae);
    st->mae += (float)(rate * (a - st->mae));
    st->n++;
}

/* Outputs of the very first step: the model has nothing to compare yet. */
static void step_first(struct model_state *s, int64_t t, int64_t k, double y,
                       struct model_output *out)
{
    int nh = s->nh;
    s->hw.start_t = t;
    hw_init(&s->hw, y);
    level_init(&s->lvl, y);
    ar_init(&s->ar, y);
    score_init(&s->sc);
    s->steps = 1;
    s->last_k = k;
    s->last_value = y;
    s->last_yhat = y;
    s->last_score = 0;
    if (out) {
        memset(out, 0, sizeof *out);
        out->t = t;
        out->value = out->yhat = out->yhat_lower = out->yhat_upper = y;
        out->nhorizons = nh;
        for (int i = 0; i < nh; i++)
            out->forecast[i] = y;
        out->ready = false;
    }
    for (int i = 0; i < nh; i++) {
        uint32_t slot;
        if (ring_phase(s, i, k, 0, &slot) != 0)
            continue;
        struct ring_entry *r = ring(s, i) + slot;
        r->target = (uint32_t)(k + s->hsteps[i]);
        for (int m = 0; m <= MODEL_NCAND; m++)
            r->f[m] = (float)y;
    }
}

static void step_close(struct model_state *s, const struct model_params *p, int64_t t, double y,
                       struct model_output *out)
{
    int64_t k = step_index(s, t);
    if (s->steps == 0) {
        step_first(s, t, k, y, out);
        return;
    }
    double tau_lo = 0.5 - p->coverage / 2, tau_hi = 0.5 + p->coverage / 2;
    struct hz_stats *st = stats(s);
    double f[MODEL_NCAND];
    int nh = s->nh;
    int64_t gap = k - s->last_k;
    if (gap < 1)
        gap = 1; /* cannot happen: the grid closes steps in order */
    uint32_t g = gap > INT32_MAX / 4 ? INT32_MAX / 4 : (uint32_t)gap;
    int ready = s->steps >= WARM_STEPS;
    int long_gap = gap > (int64_t)s->long_gap;

    /* 1-2. one-step forecasts, made before looking at y */
    struct hw_phases ph;
    hw_phases_at(&s->hw, s, t, &ph);
    double sall = ph.s[0] + ph.s[1];
    double sdet = hw_phases_sum(&ph, s->hw.detected);
    candidates(s, &ph, g, f);
    double yhat = combine(f, st[0].w);
    double scale = st[0].mae;
    double lower = yhat + st[0].qlo * scale, upper = yhat + st[0].qhi * scale;

    /* 3. score */
    struct score_result r;
    if (st[0].n < 2 || long_gap) {
        r.score = 0;
        r.l_point = r.l_run = r.l_acc = r.l_dens = 0;
        r.change = long_gap;
    } else {
        struct score_input in;
        in.y = y;
        in.yhat = yhat;
        in.scale = scale;
        in.sdet = sdet;
        /* the baseline forgets over about half a day, but never in fewer than
         * 20 steps nor more than 1000 */
        double br = (double)s->step_ms / (0.5 * DAY_MS);
        in.base_rate = br > 0.05 ? 0.05 : br < 0.001 ? 0.001 : br;
        score_step(&s->sc, &in, &r);
    }
    /* While the first season is in its first period, or during warm-up, the
     * models must learn the shape of the series, outliers included. */
    int learning = !ready || (s->hw.nseason > 0 && t - s->hw.start_t < s->hw.season[0].period_ms);
    if (learning)
        r.change = long_gap;

    /* one-step statistics, and each candidate's cleaned observation */
    double yc[MODEL_NCAND];
    double sig_hw = sqrt(st[0].mse[CAND_HW]);
    double sig_ar = sqrt(st[0].mse[CAND_AR]);
    if (!long_gap) {
        stats_update(&st[0], f, yhat, y, learning || r.change, tau_lo, tau_hi, yc);
        if (st[0].n < 64 || st[0].n % WEIGHTS_EVERY == 0)
            weights_update(s, &st[0], 0);
    } else {
        for (int m = 0; m < MODEL_NCAND; m++)
            yc[m] = y;
    }

    /* 4. model updates */
    double mu_prev = s->lvl.mu;
    if (r.change) {
        hw_reset_level(&s->hw, y - sall);
        s->lvl.mu = y - sdet;
        ar_reset(&s->ar, y - sdet);
    } else {
        hw_update(&s->hw, s, &ph, t, g, yc[CAND_HW], sig_hw, ready ? 1 + (int)(s->steps & 1) : 0);
        level_update(&s->lvl, yc[CAND_LEVEL] - sdet, g, st[0].mse[CAND_LEVEL], ready);
        ar_update(&s->ar, yc[CAND_AR] - sdet, mu_prev, g, sig_ar);
    }
    /* seasonality detection with hysteresis */
    for (uint32_t i = 0; i < s->hw.nseason && p->nseasons < 0; i++) {
        struct hw_season *se = &s->hw.season[i];
        if (se->visits >= 1 && se->strength > 8)
            s->hw.detected |= 1u << i;
        else if (se->strength < 3)
            s->hw.detected &= ~(1u << i);
    }

    s->steps++;
    s->last_k = k;
    s->last_value = y;
    s->last_yhat = yhat;
    s->last_score = r.score;

    /* 5. horizons: check matured forecasts, then store new ones */
    double arh[MODEL_MAX_HORIZONS];
    ar_forecast_multi(&s->ar, s->lvl.mu, s->hsteps, nh, arh);
    for (int i = 0; i < nh; i++) {
        uint32_t h = s->hsteps[i], stride = s->hstride[i], len = s->hring[i];
        struct ring_entry *rg = ring(s, i);
        uint32_t slot, sub = ring_phase(s, i, k, gap == 1, &slot);
        /* The origin h steps back, given d = cycle - h in [0, stride): with
         * d = 0 it is this very phase; else h = (len - 1) stride + (stride -
         * d), so the origin is on a slot boundary when sub + d == stride,
         * at slot + 1 (mod len). */
        uint32_t d = stride * len - h, oslot = slot;
        int due = d == 0 ? sub == 0 : sub + d == stride;
        if (d != 0 && ++oslot == len)
            oslot = 0;
        if (due) {
            struct ring_entry *e = rg + oslot;
            if (e->target == (uint32_t)k) {
                double ff[MODEL_NCAND];
                for (int m = 0; m < MODEL_NCAND; m++)
                    ff[m] = e->f[m];
                stats_update(&st[1 + i], ff, e->f[MODEL_NCAND], y, 0, tau_lo, tau_hi, NULL);
                if (st[1 + i].n < 64 || st[1 + i].n % WEIGHTS_EVERY == 0)
                    weights_update(s, &st[1 + i], 1);
            }
        }
        struct hw_phases phh;
        double fh[MODEL_NCAND];
        hw_phases_shift(&s->hw, s, &ph, (int64_t)h * s->step_ms, &phh);
        candidates_ar(s, &phh, h, arh[i], fh);
        double fc = combine(fh, st[1 + i].w);
        if (out)
            out->forecast[i] = fc;
        if (sub == 0) {
            struct ring_entry *e = rg + slot;
            e->target = (uint32_t)(k + h);
            for (int m = 0; m < MODEL_NCAND; m++)
                e->f[m] = (float)fh[m];
            e->f[MODEL_NCAND] = (float)fc;
        }
    }

    if (out) {
        out->t = t;
        out->value = y;
        out->yhat = yhat;
        out->yhat_lower = lower;
        out->yhat_upper = upper;
        out->anomaly_score = ready ? r.score : 0;
        out->nhorizons = nh;
        out->ready = ready && !long_gap;
    }
}

/* ---- API ------------------------------------------------------------------ */

int model_observe(void *state, const struct model_params *p, int64_t t, double v,
                  struct model_output *out, int max_out, unsigned *flags)
{
    struct model_state *s = state;
    struct grid_step cs;
    unsigned f = 0;
    int n = 0;
    if (grid_feed(&s->grid, p, t, v, &cs, &f)) {
        step_close(s, p, cs.t, cs.value, max_out > 0 ? out : NULL);
        n = max_out > 0 && out ? 1 : 0;
    }
    if (flags)
        *flags = f;
    return n;
}

int model_flush(void *state, const struct model_params *p, int64_t now, struct model_output *out,
                int max_out)
{
    struct model_state *s = state;
    struct grid_step cs;
    if (!grid_flush(&s->grid, p, now, &cs))
        return 0;
    step_close(s, p, cs.t, cs.value, max_out > 0 ? out : NULL);
    return max_out > 0 && out ? 1 : 0;
}

/* Interpolate horizon statistics for a path point k steps ahead. */
static void path_stats(const struct model_state *s, int k, float *w, double *mae, double *qlo,
                       double *qhi)
{
    const struct hz_stats *st = cstats(s);
    /* bracket k between the one-step statistics and the configured horizons */
    int lo = 0, hi = -1;
    uint32_t klo = 1, khi = 0;
    for (uint32_t i = 0; i < s->nh; i++) {
        uint32_t h = s->hsteps[i];
        if (h <= (uint32_t)k && h >= klo && cstats(s)[1 + i].n > 0) {
            lo = 1 + (int)i;
            klo = h;
        }
        if (h >= (uint32_t)k && (hi < 0 || h < khi) && cstats(s)[1 + i].n > 0) {
            hi = 1 + (int)i;
            khi = h;
        }
    }
    double a = 0;
    if (hi < 0) {
        hi = lo;
        khi = klo;
    } else if (khi > klo) {
        a = (double)((uint32_t)k - klo) / (double)(khi - klo);
    }
    /* Combination weights are not interpolated: they are fitted for their
     * horizon, and a candidate that is right at one horizon by coincidence
     * (naive at a horizon equal to the season) is wrong in between. Between
     * two fitted horizons the nearer-below one's weights hold. */
    const struct hz_stats *wsrc = a < 1 ? &st[lo] : &st[hi];
    for (int m = 0; m < MODEL_NCAND; m++)
        w[m] = wsrc->w[m];
    double ml = st[lo].mae, mh = st[hi].mae;
    if (hi == lo && k > (int)klo)
        mh = ml * sqrt((double)k / klo); /* beyond the data: random-walk growth */
    *mae = (1 - a) * ml + a * mh;
    *qlo = (1 - a) * st[lo].qlo + a * st[hi].qlo;
    *qhi = (1 - a) * st[lo].qhi + a * st[hi].qhi;
}

int model_forecast_path(const void *state, const struct model_params *p, int64_t *t, double *yhat,
                        double *lower, double *upper, int max)
{
    const struct model_state *s = state;
    (void)p;
    if (s->steps == 0 || max <= 0)
        return 0;
    uint32_t longest = 1;
    for (uint32_t i = 0; i < s->nh; i++)
        if (s->hsteps[i] > longest)
            longest = s->hsteps[i];
    int n = (int)(longest < (uint32_t)max ? longest : (uint32_t)max);
    int64_t t0 = s->last_k * s->step_ms;
    struct hw_phases ph0, ph;
    hw_phases_at(&s->hw, s, t0, &ph0);
    for (int k = 1; k <= n; k++) {
        double f[MODEL_NCAND], mae, qlo, qhi;
        float w[MODEL_NCAND];
        int64_t tk = t0 + (int64_t)k * s->step_ms;
        hw_phases_shift(&s->hw, s, &ph0, (int64_t)k * s->step_ms, &ph);
        candidates(s, &ph, (uint32_t)k, f);
        path_stats(s, k, w, &mae, &qlo, &qhi);
        double y = combine(f, w);
        t[k - 1] = tk;
        yhat[k - 1] = y;
        if (lower)
            lower[k - 1] = y + qlo * mae;
        if (upper)
            upper[k - 1] = y + qhi * mae;
    }
    return n;
}

int model_warm_start(void *state, const struct model_params *p, const struct sample *hist, size_t n)
{
    if (n == 0)
        return -1;
    model_init(state, p);
    for (size_t i = 0; i < n; i++)
        model_observe(state, p, hist[i].t, hist[i].v, NULL, 0, NULL);
    return 0;
}

void model_describe(const void *state, const struct model_params *p, struct model_info *out)
{
    const struct model_state *s = state;
    (void)p;
    memset(out, 0, sizeof *out);
    const float *w = cstats(s)[0].w;
    int best = 0;
    for (int m = 1; m < MODEL_NCAND; m++)
        if (w[m] > w[best])
            best = m;
    static const enum model_kind kinds[MODEL_NCAND] = {MODEL_LEVEL, MODEL_LEVEL, MODEL_HOLT_WINTERS,
                                                       MODEL_AR};
    out->active = s->kind != MODEL_AUTO ? (enum model_kind)s->kind : kinds[best];
    int ns = 0;
    for (uint32_t i = 0; i < s->hw.nseason; i++)
        if (s->hw.detected & (1u << i))
            out->season_ms[ns++] = s->hw.season[i].period_ms;
    out->nseasons = ns;
    out->alpha = s->hw.alpha;
    out->beta = s->hw.beta;
    out->gamma = s->hw.nseason ? s->hw.season[0].gamma : 0;
    out->phi = s->hw.phi;
    out->level = s->hw.level;
    out->trend = s->hw.trend;
    out->resid_scale = cstats(s)[0].mae * 1.2533;
    out->steps = s->steps;
    out->last_t = s->steps ? s->last_k * s->step_ms : 0;
    out->last_value = s->last_value;
    out->last_yhat = s->last_yhat;
    out->last_score = s->last_score;
}

const char *model_kind_name(enum model_kind k)
{
    switch (k) {
    case MODEL_AUTO:
        return "auto";
    case MODEL_HOLT_WINTERS:
        return "holt_winters";
    case MODEL_AR:
        return "ar";
    case MODEL_LEVEL:
        return "level";
    }
    return "unknown";
}
