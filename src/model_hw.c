/*
 * model_hw.c — additive Holt-Winters with damped trend and 0..2 seasons.
 *
 * Error-correction form, one update per closed step, k >= 1 steps after the
 * previous update (k > 1 across gaps):
 *
 *   yhat = L + phi_k T + S1(t) + S2(t)      phi_k = phi + phi^2 + ... + phi^k
 *   e    = y - yhat
 *   L   <- L + phi_k T + alpha e
 *   T   <- phi^k T + beta e
 *   S(t) <- S(t) + gamma e      (spread over the two slots t falls between)
 *
 * Seasonal profiles are float arrays at the tail of the model state, indexed
 * by wall-clock phase (t mod period), so gaps never shift them. A profile
 * has at most HW_SLOTS_MAX1 (first season) / HW_SLOTS_MAX2 (second) slots;
 * when the step is finer than a slot, the value at t is interpolated
 * linearly between the two neighbouring slots and the update is split the
 * same way, scaled so that gamma is the learning rate per visit of a slot.
 *
 * Warm-up: during its first period the first profile takes the whole error
 * (the level stays put, the second profile waits); afterwards a profile
 * averages its visits (gamma_eff = max(gamma, 1 / (visits + 1))), so it is
 * usable after one period and settles after about 1 / gamma periods.
 *
 * Learning: alpha, beta, phi by normalised gradient descent on the squared
 * one-step error, through the exact sensitivity recursions of level and
 * trend (the profiles' dependence on them is ignored); alpha on odd steps,
 * beta and phi on even ones. gamma from the one-step error times the sign
 * of the error seen at the same slot one period earlier (d yhat / d gamma is
 * about that error; each slot keeps one sign bit), both taken net of the
 * recent mean error so that a persisting level error does not pass for a
 * seasonal one. gamma stays within [0.01, 0.1]: fast changes belong to the
 * level and the other candidates; a profile that chases them imprints
 * anomalies into the next period (echoes that alarm a day later).
 *
 * Seasonality detection: a profile whose variance is not clearly above what
 * noise alone would leave in it (sigma^2 gamma / (2 - gamma)) is not
 * significant; model.c then does not deseasonalise the other candidates
 * with it and reports it as not detected.
 *
 * Deliberately not done: multiplicative seasonality, Box-Cox. libm only.
 */
#include <math.h>
#include <string.h>

#include "model_internal.h"

#define ALPHA_MIN  0.01f
#define ALPHA_MAX  0.99f
#define BETA_MIN   0.0005f
#define PHI_MIN    0.80f
#define PHI_MAX    0.98f
#define LEARN_RATE 0.02f /* per call; each parameter learns every 2nd step */
#define RMS_DECAY  0.01f

static float *profile(const void *state, const struct hw_season *s)
{
    return (float *)((char *)(uintptr_t)state + s->offset);
}

void hw_init(struct model_hw *h, double y)
{
    h->level = y;
    h->trend = 0;
    h->alpha = 0.3f;
    h->beta = 0.02f;
    h->phi = 0.9f;
    h->da_l = h->da_t = h->db_l = h->db_t = h->dp_l = h->dp_t = 0;
    h->va = h->vb = h->vp = 0;
    h->emean = 0;
}

void hw_reset_level(struct model_hw *h, double deseasonalised_y)
{
    h->level = deseasonalised_y;
    h->trend = 0;
    h->da_l = h->da_t = h->db_l = h->db_t = h->dp_l = h->dp_t = 0;
}

/* Slot and interpolation weight for a position inside the period. The
 * product pos * nslots is exact, so a position on a slot boundary gives
 * f == 0 exactly. */
static void phase_of(const struct hw_season *s, const float *prof, int64_t pos, double inv,
                     struct hw_phase *ph, double *value)
{
    /* slot = floor(pos * nslots / period) by a multiplication with the
     * reciprocal, corrected with an exact integer remainder */
    int64_t num = pos * (int64_t)s->nslots;
    int64_t i = (int64_t)((double)num * inv);
    int64_t rem = num - i * s->period_ms;
    if (rem < 0) {
        i--;
        rem += s->period_ms;
    } else if (rem >= s->period_ms) {
        i++;
        rem -= s->period_ms;
    }
    if (i >= (int64_t)s->nslots)
        i = s->nslots - 1;
    ph->i = (uint32_t)i;
    ph->j = ph->i + 1 == s->nslots ? 0 : ph->i + 1;
    ph->f = (float)((double)rem * inv);
    *value = (double)prof[ph->i] + (double)ph->f * ((double)prof[ph->j] - (double)prof[ph->i]);
}

void hw_phases_at(const struct model_hw *h, const void *state, int64_t t, struct hw_phases *p)
{
    for (uint32_t k = 0; k < h->nseason; k++) {
        const struct hw_season *s = &h->season[k];
        int64_t pos;
        model_floordiv(t, s->period_ms, s->inv_period, &pos);
        p->pos[k] = pos;
        p->inv[k] = s->inv_period;
        phase_of(s, profile(state, s), pos, p->inv[k], &p->ph[k], &p->s[k]);
    }
    for (uint32_t k = h->nseason; k < MODEL_MAX_SEASONS; k++)
        p->s[k] = 0;
}

void hw_phases_shift(const struct model_hw *h, const void *state, const struct hw_phases *from,
                     int64_t dt, struct hw_phases *to)
{
    for (uint32_t k = 0; k < h->nseason; k++) {
        const struct hw_season *s = &h->season[k];
        int64_t pos = from->pos[k] + dt;
        if (pos >= s->period_ms)
            pos = pos - s->period_ms < s->period_ms ? pos - s->period_ms : pos % s->period_ms;
        to->pos[k] = pos;
        to->inv[k] = from->inv[k];
        phase_of(s, profile(state, s), pos, to->inv[k], &to->ph[k], &to->s[k]);
    }
    for (uint32_t k = h->nseason; k < MODEL_MAX_SEASONS; k++)
        to->s[k] = 0;
}

double hw_phases_sum(const struct hw_phases *p, unsigned mask)
{
    return ((mask & 1u) ? p->s[0] : 0) + ((mask & 2u) ? p->s[1] : 0);
}

double hw_powi(double x, uint32_t k)
{
    double r = 1;
    while (k) {
        if (k & 1)
            r *= x;
        x *= x;
        k >>= 1;
    }
    return r;
}

static double damp_sum(double phi, uint32_t k)
{
    /* phi + phi^2 + ... + phi^k */
    if (k == 1)
        return phi;
    return phi * (1.0 - hw_powi(phi, k)) / (1.0 - phi);
}

double hw_forecast(const struct model_hw *h, const struct hw_phases *p, uint32_t k)
{
    return h->level + damp_sum(h->phi, k) * h->trend + p->s[0] + p->s[1];
}

static float clampf(float x, float lo, float hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

/* One normalised gradient step on a parameter kept inside (lo, hi); g is
 * d(0.5 e^2)/d(param). The step shrinks near the bounds like a logistic
 * reparametrisation would, without its log/exp. */
static float learn(float x, float lo, float hi, float g, float *v)
{
    *v = (1 - RMS_DECAY) * *v + RMS_DECAY * g * g;
    if (!(*v > 0))
        return x;
    float room = (x - lo) * (hi - x) / (hi - lo);
    x -= LEARN_RATE * 4 * room * g / sqrtf(*v);
    float eps = (hi - lo) * 1e-3f;
    return clampf(x, lo + eps, hi - eps);
}

#define GAMMA_MIN     0.01f
#define GAMMA_MAX     0.1f
#define HW_EMEAN_RATE 0.1 /* mean error over about 10 steps */

static void update_season(struct hw_season *s, float *prof, const struct hw_phase *ph,
                          uint32_t visits, double e, double ec, double scale2, int extra,
                          int learn_gamma)
{
    /* gamma follows the correlation of this error with the one made at the
     * same phase one period ago (whose sign each slot keeps): a profile that
     * lags leaves errors of the same sign, one that chases noise errors of
     * alternating sign. d yhat / d gamma ~ e_{t-m}, approximated by its sign
     * times the error scale. */
    uint32_t *sign = (uint32_t *)(prof + s->nslots);
    uint32_t near = ph->f < 0.5f ? ph->i : ph->j;
    uint32_t bit = 1u << (near & 31), *word = &sign[near >> 5];
    if (learn_gamma && visits >= 2 && scale2 > 0) {
        double prev = (*word & bit) ? 1 : -1;
        s->gamma =
            learn(s->gamma, GAMMA_MIN, GAMMA_MAX, (float)(-ec * prev / sqrt(scale2)), &s->gamma_v);
    }
    if (ec >= 0)
        *word |= bit;
    else
        *word &= ~bit;
    double g = s->gamma;
    if (visits + 1 + extra < 1000) {
        double warm = 1.0 / (double)(visits + 1 + extra);
        if (warm > g)
            g = warm;
    }
    double ge = g * s->gstep * e;
    double o0 = prof[ph->i];
    prof[ph->i] = (float)(o0 + ge * (1 - ph->f));
    double n0 = prof[ph->i];
    s->sum += n0 - o0;
    s->sumsq += n0 * n0 - o0 * o0;
    if (ph->f > 0) {
        double o1 = prof[ph->j];
        prof[ph->j] = (float)(o1 + ge * ph->f);
        double n1 = prof[ph->j];
        s->sum += n1 - o1;
        s->sumsq += n1 * n1 - o1 * o1;
    }

    /* Once per period (as the phase wraps to slot 0) the running sums are
     * recomputed exactly, so float rounding never accumulates. */
    uint32_t wrapped = ph->i < s->last_i;
    s->last_i = ph->i;
    if (wrapped) {
        double a = 0, b = 0;
        for (uint32_t k = 0; k < s->nslots; k++) {
            a += prof[k];
            b += (double)prof[k] * prof[k];
        }
        s->sum = a;
        s->sumsq = b;
    }
    /* Significance: variance of the profile against what noise alone would
     * leave in it. */
    /* var / noise with var = sumsq / n - (sum / n)^2 and noise = scale2 g /
     * (2 - g), as one division */
    double n = s->nslots;
    double ratio = (s->sumsq * n - s->sum * s->sum) * (2 - g) / (n * n * scale2 * g + 1e-300);
    if (ratio > 1e6)
        ratio = 1e6;
    s->strength += (float)(0.01 * (ratio - s->strength));
}

void hw_update(struct model_hw *h, void *state, const struct hw_phases *p, int64_t t, uint32_t k,
               double y, double scale, int learn_params)
{
    double phi = h->phi;
    double phik = k == 1 ? phi : hw_powi(phi, k);
    double dsum = damp_sum(phi, k);
    double yhat = h->level + dsum * h->trend + p->s[0] + p->s[1];
    double e = y - yhat;

    if (learn_params && k == 1) {
        double a = h->alpha, b = h->beta;
        /* d yhat / d param, from the sensitivities of the previous update */
        double ga = h->da_l + phi * h->da_t;
        double gb = h->db_l + phi * h->db_t;
        double gp = h->dp_l + h->trend + phi * h->dp_t;
        /* advance the sensitivities to this update */
        h->da_l = (float)((1 - a) * ga + e);
        h->da_t = (float)(phi * h->da_t - b * ga);
        h->db_l = (float)((1 - a) * gb);
        h->db_t = (float)(phi * h->db_t + e - b * gb);
        h->dp_l = (float)((1 - a) * gp);
        h->dp_t = (float)(h->trend + phi * h->dp_t - b * gp);
        /* gradient of 0.5 e^2 is -e * d yhat / d param; normalise by scale */
        double s = scale > 0 ? scale * scale : 1;
        /* alpha on odd steps, beta and phi on even ones: half the cost,
         * and each parameter sees a fresh gradient every second step */
        if (learn_params & 1) {
            h->alpha = learn(h->alpha, ALPHA_MIN, ALPHA_MAX, (float)(-e * ga / s), &h->va);
        } else {
            float bmax = h->alpha * 0.5f;
            h->beta = learn(clampf(h->beta, BETA_MIN, bmax), BETA_MIN, bmax, (float)(-e * gb / s),
                            &h->vb);
            h->phi = learn(h->phi, PHI_MIN, PHI_MAX, (float)(-e * gp / s), &h->vp);
        }
        /* keep sensitivities bounded: they are only a local linearisation */
        float lim = (float)(50 * (scale > 0 ? scale : 1));
        h->da_l = clampf(h->da_l, -lim, lim);
        h->da_t = clampf(h->da_t, -lim, lim);
        h->db_l = clampf(h->db_l, -lim, lim);
        h->db_t = clampf(h->db_t, -lim, lim);
        h->dp_l = clampf(h->dp_l, -lim, lim);
        h->dp_t = clampf(h->dp_t, -lim, lim);
    }

    double a = h->alpha, b = h->beta;
    /* While the first profile is in its first period it takes the whole
     * error (the level has nothing to learn yet) and the second waits. */
    int first = h->nseason > 0 && t - h->start_t < h->season[0].period_ms;
    if (first)
        a = 0, b = 0;
    h->level = h->level + dsum * h->trend + a * e;
    h->trend = phik * h->trend + b * e;
    double sd = scale > 0 ? scale : 0; /* RMS one-step error */
    /* the error net of its recent mean: what is left is seasonal, not a
     * persisting level error */
    double ec = e - h->emean;
    h->emean += (float)(HW_EMEAN_RATE * (e - h->emean));
    for (uint32_t i = 0; i < h->nseason; i++) {
        if (i > 0 && first)
            break;
        struct hw_season *s = &h->season[i];
        /* completed periods; a division only when a boundary is crossed */
        int64_t since = t - h->start_t;
        if (since >= (int64_t)(s->visits + 1) * s->period_ms ||
            since < (int64_t)s->visits * s->period_ms)
            s->visits = since < 0 ? 0 : (uint32_t)(since / s->period_ms);
        update_season(s, profile(state, s), &p->ph[i], s->visits, e, ec, sd * sd, (int)i,
                      learn_params != 0);
    }
}
