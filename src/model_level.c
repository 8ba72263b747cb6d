/*
 * model_level.c — a robust level for series without trend or season.
 *
 * mu <- mu + alpha (d - mu), where d is the (cleaned, deseasonalised when a
 * season was detected) observation; the cleaning in model.c clips outliers
 * first, which makes this a Huber-type EWMA: an isolated spike moves it by at
 * most alpha * k * scale. alpha is learned online by normalised gradient
 * descent on the one-step squared error, through the sensitivity
 * a = d mu / d alpha (a <- (1 - alpha) a + (d - mu)).
 *
 * Its forecast is flat: mu at every horizon. Across a gap of k steps it
 * simply continues (a flat forecast does not move).
 *
 * Deliberately not done: trend (Holt-Winters has it). libm only.
 */
#include <math.h>

#include "model_internal.h"

#define LVL_ALPHA_MIN 0.005f
#define LVL_ALPHA_MAX 0.95f
#define LVL_RATE      0.01f

void level_init(struct model_level *l, double d)
{
    l->mu = d;
    l->alpha = 0.2f;
    l->da = 0;
    l->va = 0;
    l->gscale = 0;
}

double level_forecast(const struct model_level *l)
{
    return l->mu;
}

void level_update(struct model_level *l, double d, uint32_t k, double mse, int learn)
{
    double e = d - l->mu;
    if (learn && k == 1) {
        /* d(0.5 e^2)/d alpha = -e * d mu / d alpha; a normalised step that
         * shrinks near the bounds (a logistic reparametrisation without its
         * log/exp). */
        float a = l->alpha;
        /* in units of a fixed per-series scale (the first error scale seen):
         * raw units^4 would overflow a float for values beyond 1e9, and a
         * constant divisor leaves the normalised step unchanged */
        if (!(l->gscale > 0) && mse > 0)
            l->gscale = (float)sqrt(mse);
        double s2 = l->gscale > 0 ? (double)l->gscale * l->gscale : 1;
        float g = (float)(-e * l->da / s2);
        if (isfinite(g))
            l->va = 0.99f * l->va + 0.01f * g * g;
        if (l->va > 0 && isfinite(l->va) && isfinite(g)) {
            float room =
                (a - LVL_ALPHA_MIN) * (LVL_ALPHA_MAX - a) / (LVL_ALPHA_MAX - LVL_ALPHA_MIN);
            float x = a - LVL_RATE * 4 * room * g / sqrtf(l->va);
            float eps = 1e-4f;
            l->alpha = x < LVL_ALPHA_MIN + eps   ? LVL_ALPHA_MIN + eps
                       : x > LVL_ALPHA_MAX - eps ? LVL_ALPHA_MAX - eps
                                                 : x;
        }
        l->da = (float)((1 - a) * l->da + e);
    }
    l->mu += l->alpha * e;
}
