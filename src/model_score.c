/*
 * model_score.c — anomaly score and change points.
 *
 * The score of a step is 1 - p, p the smallest of three tail probabilities,
 * each "how often would a value this extreme occur in this series":
 *
 *   point  z = (y - yhat) / (1.25 s), s a slow robust EWMA of |y - yhat|
 *          (clipped at 5 sigma); p_point = P(|Z| >= |z|).
 *   accumulation  A = EWMA_0.25 of min(-log p_point, 5), the surprise of the
 *          recent points (mean 1 under the null); u = (A - 1) / sd(A),
 *          p_acc = P(U >= u). Catches runs of moderately odd points
 *          (level shifts, variance bursts) no single point reveals.
 *   run    m = EWMA_0.1 of the deviation of the deseasonalised value from a
 *          slow baseline (half a day), clipped at 4 of its scale;
 *          u = |m| / (1.25 scale of m), p_run = P(U >= u). Catches bumps
 *          and shifts that the adaptive forecast follows too quickly.
 *
 * The tail of each standardised statistic is learned per series (model.c
 * cannot know in advance that tweets are bursty and traffic is not): the
 * exceedance rate q = P(u > 3) by an EWMA (memory ~3000 steps after a
 * start-up average), and beyond 3 a Pareto tail whose index is the Hill
 * estimate (mean of log(u / 3) over exceedances, memory ~100 of them); below
 * 3 a Gaussian shape scaled to meet q. So p is calibrated per series: under
 * the series' own normal behaviour P(p <= x) ~ x, and one threshold means
 * the same on every series.
 *
 * Refractory period: after a step with p < ALARM_P (score 0.999), the next
 * REFRACTORY steps have p multiplied by a factor decaying linearly from
 * REFRACTORY to 1: the episode is known, the score flags its onset rather
 * than each of its steps.
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

#define RUN_W      0.1  /* EWMA weight of the run statistic */
#define ACC_W      0.25 /* EWMA weight of the accumulated surprise */
#define ACC_MAX    5.0  /* one point adds at most this much surprise */
#define ACC_PMIN   exp(-ACC_MAX)
#define ALARM_P    1e-3 /* score 0.999 starts a refractory period */
#define REFRACTORY 30u  /* its length in steps */
#define SIG_FLOOR  1e-6 /* relative: errors below this are float rounding */
#define CUSUM_K    1.0
#define CUSUM_H    10.0

void score_init(struct model_score *s)
{
    memset(s, 0, sizeof *s);
    s->tail_q = s->run_q = s->acc_q = 0.01f;
    s->tail_h = s->run_h = s->acc_h = 0.25f;
    s->acc = 1;
}

/* The tail of a standardised statistic u is learned per series: q = P(u >
 * TAIL_L) by an EWMA of exceedances, and beyond TAIL_L a Pareto tail whose
 * index comes from the Hill estimator (mean of log(u/TAIL_L) over
 * exceedances). Below TAIL_L the shape is Gaussian, scaled to meet q. */
#define TAIL_L 3.0

/* erf(x) for x >= 0 to 3e-7 (Abramowitz & Stegun 7.1.28): no exp, and the
 * body of the distribution needs no more. */
static double erf_fast(double x)
{
    double t =
        1 +
        x * (0.0705230784 +
             x * (0.0422820123 +
                  x * (0.0092705272 + x * (0.0001520143 + x * (0.0002765672 + x * 0.0000430638)))));
    t *= t; /* ^2 */
    t *= t; /* ^4 */
    t *= t; /* ^8 */
    t *= t; /* ^16 */
    return 1 - 1 / t;
}

static double tail_prob(double q, double h, double u)
{
    if (u >= TAIL_L)
        return q * exp(-log(u / TAIL_L) / h);
    double g = erf_fast(u / M_SQRT2) * (1 / 0.99730020393673979); /* 1 / erf(3 / sqrt 2) */
    return 1 - (1 - q) * g;
}

static void tail_learn(float *q, float *h, uint32_t *k, uint32_t n, double u)
{
    /* an average over the first 2900 steps, then an EWMA of memory 3000 */
    double rq = n > 2900 ? 1.0 / 3000 : 1.0 / (n + 100.0);
    int exc = u > TAIL_L;
    *q = (float)((1 - rq) * *q + rq * exc);
    if (exc) {
        double rh = 1.0 / (*k + 5.0);
        if (rh < 0.01)
            rh = 0.01;
        double l = log(u / TAIL_L);
        if (l > 5)
            l = 5;
        *h = (float)((1 - rh) * *h + rh * l);
        if (*h < 0.05f)
            *h = 0.05f;
        (*k)++;
    }
}

void score_step(struct model_score *s, const struct score_input *in, struct score_result *r)
{
    double br = s->n < 50 ? 1.0 / (s->n + 1) : 0.01;

    /* point: error of the combination against its robust scale */
    if (!(s->scale > 0))
        s->scale = (float)(in->scale > 0 ? in->scale : 0);
    double e = in->y - in->yhat;
    double sig = 1.25 * s->scale;
    if (sig < SIG_FLOOR * fabs(in->yhat))
        sig = SIG_FLOOR * fabs(in->yhat); /* float profiles: relative noise */
    double z = sig > 0 ? e / sig : (e != 0 ? 1e300 : 0);
    double az = fabs(z);
    double pp = tail_prob(s->tail_q, s->tail_h, az);
    tail_learn(&s->tail_q, &s->tail_h, &s->tail_k, s->n, az);
    double lim = 5 * sig, ae = fabs(e);
    if (s->n > 10 && ae > lim)
        ae = lim;
    s->scale = (float)((1 - br) * s->scale + br * ae);

    /* accumulation: EWMA of the point surprise -log p (mean 1 under the
     * null), so a run of moderately surprising points adds up */
    double sur = pp < ACC_PMIN ? ACC_MAX : -log(pp);
    if (s->n == 0)
        s->acc = 1;
    s->acc = (float)((1 - ACC_W) * s->acc + ACC_W * sur);
    double ua = (s->acc - 1) / sqrt(ACC_W / (2 - ACC_W));
    if (ua < 0)
        ua = 0;
    double pa = s->n > 50 ? tail_prob(s->acc_q, s->acc_h, ua) : 1;
    tail_learn(&s->acc_q, &s->acc_h, &s->acc_k, s->n, ua);

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
    double pr = s->n > 50 ? tail_prob(s->run_q, s->run_h, ur) : 1;
    tail_learn(&s->run_q, &s->run_h, &s->run_k, s->n, ur);
    s->dev_scale = (float)((1 - br) * s->dev_scale + br * fabs(dev));
    double rl = 5 * 1.25 * s->run_scale, ar = fabs(s->run);
    if (s->n > 50 && ar > rl)
        ar = rl;
    double rr = s->n < 50 ? 1.0 / (s->n + 1) : br * 0.3;
    s->run_scale = (float)((1 - rr) * s->run_scale + rr * ar);
    s->base += in->base_rate * dev;

    r->p_point = pp;
    r->p_run = pr;
    r->p_acc = pa;
    double p = pp < pr ? pp : pr;
    if (pa < p)
        p = pa;
    /* Refractory period: once an observation reached the alarm level, the
     * episode is known; for the next REFRACTORY steps the predictive
     * distribution is taken as that much less certain (tail probabilities
     * multiplied by a factor decaying linearly from REFRACTORY to 1), so
     * the score flags the onset rather than every step of the episode. */
    if (s->quiet > 0) {
        p *= (double)s->quiet;
        if (p > 1)
            p = 1;
        s->quiet--;
    } else if (p < ALARM_P) {
        s->quiet = REFRACTORY;
    }
    r->score = 1 - p;
    if (!(r->score >= 0))
        r->score = 0;
    if (r->score > 1)
        r->score = 1;

    /* change point: two-sided CUSUM of the clipped standardised errors */
    double zc = z > 4 ? 4 : z < -4 ? -4 : z;
    r->change = 0;
    s->cusum_hi = (float)fmax(0, s->cusum_hi + zc - CUSUM_K);
    s->cusum_lo = (float)fmax(0, s->cusum_lo - zc - CUSUM_K);
    if (s->cusum_hi > CUSUM_H || s->cusum_lo > CUSUM_H) {
        r->change = 1;
        s->cusum_hi = s->cusum_lo = 0;
    }
    s->n++;
}
