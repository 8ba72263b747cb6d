/*
 * model_score.c — anomaly score and change points.
 *
 * The score of a step is 1 - p, p the smallest of four tail probabilities,
 * each "how often would a value this extreme occur in this series", after
 * the report rule below:
 *
 *   point  z = (y - yhat) / (1.25 s), s a slow robust EWMA of |y - yhat|
 *          (clipped at 5 sigma); p_point = P(|Z| >= |z|).
 *   accumulation  A = EWMA_0.25 of min(-ln p_point, 5), the surprise of the
 *          recent points (mean 1 under the null); u = (A - 1) / sd(A),
 *          p_acc = P(U >= u). Catches runs of moderately odd points
 *          (level shifts, variance bursts) no single point reveals.
 *   density  D = EWMA_0.05 of the same surprise (about the last 20 steps),
 *          standardised by its own long-run mean and mean absolute
 *          deviation (memory 2000 steps): how unusual the recent rate of
 *          odd points is *for this series*. Catches a change in the density
 *          of spikes in a series where single spikes are normal.
 *   run    m = EWMA_0.1 of the deviation of the deseasonalised value from a
 *          slow baseline (half a day), clipped at 4 of its scale;
 *          u = |m| / (1.25 scale of m), p_run = P(U >= u). Catches bumps
 *          and shifts that the adaptive forecast follows too quickly.
 *
 * The tail of each standardised statistic is learned per series (model.c
 * cannot know in advance that tweets are bursty and traffic is not): the
 * exceedance rate q = P(u > 3) by an EWMA (memory ~3000 steps after a
 * start-up average), and beyond 3 a Pareto tail whose index is the Hill
 * estimate (mean of ln(u / 3) over exceedances, memory ~100 of them); below
 * 3 a Gaussian shape scaled to meet q. So p is calibrated per series: under
 * the series' own normal behaviour P(p <= x) ~ x, and one threshold means
 * the same on every series. Everything is computed as surprise L = -ln p.
 * Below 3 (the body, where nothing is anomalous) only the component with
 * the largest u is evaluated: that keeps the score of ordinary steps
 * meaningful at a third of the cost.
 *
 * Report rule (what an alarm tells): once a step with p < ALARM_P has been
 * reported, the episode is known; later steps of it are reported (keep
 * their p) only when their surprise exceeds the last report's by REPORT_M
 * (ten times less likely); otherwise their p becomes exp(-(L - L_report)),
 * the surprise *beyond* what was already said. The episode ends after
 * CALM_N calm steps in a row (p > exp(-CALM_L)), and its level decays by
 * PEAK_DECAY per step, so a condition that persists is reported again now
 * and then. The score thus flags the onset of an episode, and again when
 * it clearly gets worse, rather than every step of it.
 *
 * Change points: a two-sided CUSUM of the clipped point z (slack 1,
 * threshold 10) declares a change after a sustained shift; model.c then
 * re-initialises the levels so the model re-adapts instead of alarming
 * forever.
 *
 * Deliberately not done: forecasting (model.c). libm only.
 */
#include <math.h>
#include <string.h>

#include "model_internal.h"

#define RUN_W      0.1                 /* EWMA weight of the run statistic */
#define ACC_W      0.25                /* EWMA weight of the accumulated surprise */
#define DENS_W     0.05                /* EWMA weight of the density statistic */
#define DENS_MEM   2000                /* steps of memory of its mean and deviation */
#define ACC_MAX    5.0                 /* one point adds at most this much surprise */
#define ALARM_P    1e-3                /* a report this strong opens an episode */
#define REPORT_M   2.302585            /* ln 10: a report must be 10x less likely */
#define PEAK_DECAY 0.995               /* per step decay of the episode's level */
#define CALM_L     1.6                 /* steps with p > exp(-1.6) = 0.2 are calm ... */
#define CALM_N     20u                 /* ... and this many in a row end the episode */
#define CALM_P     0.20189651799465538 /* exp(-CALM_L) */
#define SIG_FLOOR  1e-6                /* relative: errors below this are float rounding */
#define CUSUM_K    1.0
#define CUSUM_H    10.0
#define L_MAX      690.0 /* surprise of p = 1e-300 */

/* The tail of a standardised statistic u is learned per series: q = P(u >
 * TAIL_L) by an EWMA of exceedances, and beyond TAIL_L a Pareto tail whose
 * index comes from the Hill estimator (mean of ln(u/TAIL_L) over
 * exceedances). Below TAIL_L the shape is Gaussian, scaled to meet q. */
#define TAIL_L    3.0
#define TAIL_QMIN 1e-6f

static void tail_init(struct score_tail *t)
{
    t->q = 0.01f;
    t->h = 0.25f;
    t->k = 0;
}

void score_init(struct model_score *s)
{
    memset(s, 0, sizeof *s);
    tail_init(&s->t_point);
    tail_init(&s->t_acc);
    tail_init(&s->t_dens);
    tail_init(&s->t_run);
    s->acc = 1;
    s->dens = 1;
    s->dens_m = 1;
    s->dens_d = (float)(0.8 * sqrt(DENS_W / (2 - DENS_W)));
}

/* Tail probability P(U >= u) in the body (u < TAIL_L): Gaussian shape
 * scaled to meet q at TAIL_L, i.e. 1 - (1 - q) g(u) with g(u) =
 * erf(u / sqrt 2) / erf(3 / sqrt 2), here an odd polynomial fitted on
 * [0, 3] (error < 4e-5, no division: the body needs no more). */
static double body_prob(const struct score_tail *t, double u)
{
    /* Estrin's scheme: a shorter dependency chain than Horner's */
    double u2 = u * u, u4 = u2 * u2, u8 = u4 * u4;
    double a = 0.7999993365565808 + u2 * -0.13313324387693465;
    double b = 0.019723090272089995 + u2 * -0.002213715378609646;
    double c = 0.00017777707919440085 + u2 * -8.958943925478358e-06;
    double g = u * ((a + u4 * b) + u8 * (c + u4 * 2.077246220619688e-07));
    if (g > 1)
        g = 1;
    return 1 - (1 - t->q) * g;
}

/* Surprise -ln P(U >= u) in the tail (u >= TAIL_L), given lu = ln(u / TAIL_L). */
static double tail_surprise(const struct score_tail *t, double lu)
{
    return -log(t->q) + lu / t->h;
}

/* One component with statistic u: its tail surprise (0 in the body), and
 * *lu = ln(u / TAIL_L) (0 in the body) for tail_learn. In the body only the
 * component with the largest u is evaluated (*bu, *bt): the body is about
 * the same Gaussian shape for all, and only the most surprising counts. */
static double component(const struct score_tail *t, double u, double *lu, double *bu,
                        const struct score_tail **bt)
{
    if (u >= TAIL_L) {
        *lu = log(u * (1 / TAIL_L));
        return tail_surprise(t, *lu);
    }
    *lu = 0;
    if (u > *bu) {
        *bu = u;
        *bt = t;
    }
    return 0;
}

static void tail_learn(struct score_tail *t, uint32_t n, double u, double lu)
{
    /* an average over the first 2900 steps, then an EWMA of memory 3000 */
    float rq = n > 2900 ? 1.0f / 3000 : 1.0f / ((float)n + 100.0f);
    int exc = u > TAIL_L;
    t->q += rq * ((float)exc - t->q);
    if (t->q < TAIL_QMIN)
        t->q = TAIL_QMIN; /* also keeps q out of the (slow) denormal range */
    if (exc) {
        float rh = t->k < 95 ? 1.0f / ((float)t->k + 5.0f) : 0.01f;
        float l = lu > 5 ? 5.0f : (float)lu;
        t->h += rh * (l - t->h);
        if (t->h < 0.05f)
            t->h = 0.05f;
        t->k++;
    }
}

void score_step(struct model_score *s, const struct score_input *in, struct score_result *r)
{
    double br = s->n < 50 ? 1.0 / (s->n + 1) : 0.01;
    double lu;

    /* point: error of the combination against its robust scale */
    if (!(s->scale > 0))
        s->scale = (float)(in->scale > 0 ? in->scale : 0);
    double e = in->y - in->yhat;
    double sig = 1.25 * s->scale;
    if (sig < SIG_FLOOR * fabs(in->yhat))
        sig = SIG_FLOOR * fabs(in->yhat); /* float profiles: relative noise */
    double z = sig > 0 ? e / sig : (e != 0 ? 1e300 : 0);
    double az = fabs(z);
    double lp, pp = 0; /* pp: the point's probability when in the body */
    if (az >= TAIL_L) {
        lu = log(az * (1 / TAIL_L));
        lp = tail_surprise(&s->t_point, lu);
    } else {
        lu = 0;
        pp = body_prob(&s->t_point, az);
        lp = -log(pp);
    }
    double bu = -1;
    const struct score_tail *bt = NULL;
    tail_learn(&s->t_point, s->n, az, lu);
    double lim = 5 * sig, ae = fabs(e);
    if (s->n > 10 && ae > lim)
        ae = lim;
    s->scale = (float)((1 - br) * s->scale + br * ae);

    /* accumulation: EWMA of the point surprise (mean 1 under the null), so
     * a run of moderately surprising points adds up */
    double sur = lp > ACC_MAX ? ACC_MAX : lp;
    if (s->n == 0)
        s->acc = 1;
    s->acc = (float)((1 - ACC_W) * s->acc + ACC_W * sur);
    double ua = (s->acc - 1) * (1 / 0.37796447300922720); /* sd(A) = sqrt(ACC_W / (2 - ACC_W)) */
    if (ua < 0)
        ua = 0;
    double la = s->n > 50 ? component(&s->t_acc, ua, &lu, &bu, &bt) : 0;
    if (s->n <= 50)
        lu = ua >= TAIL_L ? log(ua / TAIL_L) : 0;
    tail_learn(&s->t_acc, s->n, ua, lu);

    /* density: the same surprise over about 20 steps, against its own
     * long-run mean and deviation */
    s->dens = (float)((1 - DENS_W) * s->dens + DENS_W * sur);
    double dd = s->dens - s->dens_m;
    double ud = s->dens_d > 0 ? dd / (1.25 * s->dens_d) : 0;
    if (ud < 0)
        ud = 0;
    double ld = s->n > 200 ? component(&s->t_dens, ud, &lu, &bu, &bt) : 0;
    if (s->n <= 200)
        lu = ud >= TAIL_L ? log(ud / TAIL_L) : 0;
    tail_learn(&s->t_dens, s->n, ud, lu);
    {
        float rm = s->n > DENS_MEM ? 1.0f / DENS_MEM : 1.0f / ((float)s->n + 50.0f);
        s->dens_m += rm * (float)dd;
        s->dens_d += rm * ((float)fabs(dd) - s->dens_d);
    }

    /* run: deviation of the deseasonalised value from a slow baseline */
    double d = in->y - in->sdet;
    if (s->n == 0)
        s->base = d;
    double dev = d - s->base;
    double dl = 4 * 1.25 * s->dev_scale;
    if (s->n > 10 && dev > dl)
        dev = dl;
    if (s->n > 10 && dev < -dl)
        dev = -dl;
    s->run = (float)((1 - RUN_W) * s->run + RUN_W * dev);
    double ur = s->run_scale > 0 ? fabs(s->run) / (1.25 * s->run_scale) : 0;
    double lr = s->n > 50 ? component(&s->t_run, ur, &lu, &bu, &bt) : 0;
    if (s->n <= 50)
        lu = ur >= TAIL_L ? log(ur / TAIL_L) : 0;
    tail_learn(&s->t_run, s->n, ur, lu);
    s->dev_scale = (float)((1 - br) * s->dev_scale + br * fabs(dev));
    double rl = 5 * 1.25 * s->run_scale, ar = fabs(s->run);
    if (s->n > 50 && ar > rl)
        ar = rl;
    double rr = s->n < 50 ? 1.0 / (s->n + 1) : br * 0.3;
    s->run_scale = (float)((1 - rr) * s->run_scale + rr * ar);
    s->base += in->base_rate * dev;

    r->l_acc = la;
    r->l_dens = ld;
    r->l_run = lr;
    double pb = bt ? body_prob(bt, bu) : 1; /* the body's most extreme component */
    if (pp > 0 && la == 0 && ld == 0 && lr == 0 && s->peak == 0) {
        /* The common case: everything in the body and no episode open. Then
         * L = -ln p with p = min(pp, pb), the report rule reduces to
         * comparisons of p with constants, and the score is 1 - p: no
         * logarithm or exponential needed. */
        double p = pp < pb ? pp : pb;
        r->l_point = lp;
        if (p < ALARM_P)
            s->peak = (float)-log(p) * (float)PEAK_DECAY;
        if (p > CALM_P)
            s->calm++;
        else
            s->calm = 0;
        r->score = 1 - p;
    } else {
        double L = lp, lb = bt ? -log(pb) : 0;
        if (lb > L)
            L = lb;
        if (la > L)
            L = la;
        if (ld > L)
            L = ld;
        if (lr > L)
            L = lr;
        if (!(L < L_MAX))
            L = L_MAX; /* also NaN: an infinite error is as surprising as it gets */
        r->l_point = lp;

        /* report rule (see the top of the file) */
        double lout = L;
        if (L > s->peak + REPORT_M) {
            if (L > -log(ALARM_P))
                s->peak = (float)L;
        } else {
            lout = L - s->peak;
        }
        if (L < CALM_L) {
            if (++s->calm >= CALM_N)
                s->peak = 0;
        } else {
            s->calm = 0;
        }
        s->peak = s->peak > 0.01f ? s->peak * (float)PEAK_DECAY : 0;
        r->score = lout > 0 ? 1 - exp(-lout) : 0;
    }

    /* change point: two-sided CUSUM of the clipped standardised errors */
    double zc = z > 4 ? 4 : z < -4 ? -4 : z;
    double ch = s->cusum_hi + zc - CUSUM_K, cl = s->cusum_lo - zc - CUSUM_K;
    s->cusum_hi = (float)(ch > 0 ? ch : 0);
    s->cusum_lo = (float)(cl > 0 ? cl : 0);
    r->change = 0;
    if (s->cusum_hi > CUSUM_H || s->cusum_lo > CUSUM_H) {
        r->change = 1;
        s->cusum_hi = s->cusum_lo = 0;
    }
    s->n++;
}
