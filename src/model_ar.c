/*
 * model_ar.c — online autoregression of the deseasonalised series by RLS.
 *
 * The model is an AR(3) of the deseasonalised series d written in
 * error-correction form (the ARIMA family without the MA part):
 *
 *   d_t - d_{t-1} = c (d_{t-1} - mu) + a1 (d_{t-1} - d_{t-2}) + a2 (d_{t-2} - d_{t-3}) + e
 *
 * c = 0 is an ARIMA(2,1,0) (random walk with momentum), c = -1 an AR around
 * the level mu of model_level.c; recursive least squares with forgetting
 * learns where each series sits between the two. Regressors and target are
 * divided by the current error scale, so the coefficients are scale-free and
 * the RLS matrix stays well conditioned whatever the units.
 *
 * Forecasts iterate the recursion with mu held constant (AR_ITER_MAX steps
 * exactly, then only the geometric pull toward mu, the lagged differences
 * having died out); coefficients are
 * clamped to a stable region when forecasting (RLS itself is left alone).
 * A gap (k > 1) skips the update and clears the lagged differences.
 *
 * Deliberately not done: MA terms, order selection. libm only.
 */
#include <math.h>
#include <string.h>

#include "model_internal.h"

#define AR_LAMBDA   0.998
#define AR_P0       10.0
#define AR_PMAX     1e4
#define AR_ITER_MAX 4 /* exact iterations of multi-step forecasts */

void ar_init(struct model_ar *a, double d)
{
    memset(a, 0, sizeof *a);
    a->last = d;
    a->P[0] = a->P[3] = a->P[5] = AR_P0; /* packed upper triangle: 00 01 02 11 12 22 */
}

void ar_reset(struct model_ar *a, double d)
{
    a->last = d;
    for (int i = 0; i < AR_P - 1; i++)
        a->dd[i] = 0;
}

static void coefs(const struct model_ar *a, double *c, double *a1, double *a2)
{
    *c = a->theta[0] < -1 ? -1 : a->theta[0] > 0 ? 0 : a->theta[0];
    double x1 = a->theta[1], x2 = a->theta[2];
    double s = fabs(x1) + fabs(x2);
    if (s > 0.95) {
        x1 *= 0.95 / s;
        x2 *= 0.95 / s;
    }
    *a1 = x1;
    *a2 = x2;
}

void ar_forecast_multi(const struct model_ar *a, double mu, const uint32_t *k, int n, double *out)
{
    double c, a1, a2;
    coefs(a, &c, &a1, &a2);
    /* the first AR_ITER_MAX iterates, then the geometric pull toward mu */
    double at[AR_ITER_MAX + 1];
    double d = a->last, d1 = a->dd[0], d2 = a->dd[1];
    at[0] = d;
    for (int i = 1; i <= AR_ITER_MAX; i++) {
        double step = c * (d - mu) + a1 * d1 + a2 * d2;
        d += step;
        d2 = d1;
        d1 = step;
        at[i] = d;
    }
    for (int j = 0; j < n; j++)
        out[j] =
            k[j] <= AR_ITER_MAX ? at[k[j]] : mu + (d - mu) * hw_powi(1 + c, k[j] - AR_ITER_MAX);
}

double ar_forecast(const struct model_ar *a, double mu, uint32_t k)
{
    double c, a1, a2;
    coefs(a, &c, &a1, &a2);
    double d = a->last, d1 = a->dd[0], d2 = a->dd[1];
    uint32_t n = k < AR_ITER_MAX ? k : AR_ITER_MAX;
    for (uint32_t i = 0; i < n; i++) {
        double step = c * (d - mu) + a1 * d1 + a2 * d2;
        d += step;
        d2 = d1;
        d1 = step;
    }
    /* By now the lagged differences have died out (|a1| + |a2| < 1): only
     * the pull toward mu remains, which is geometric. */
    if (k > n)
        d = mu + (d - mu) * hw_powi(1 + c, k - n);
    return d;
}

void ar_update(struct model_ar *a, double d, double mu, uint32_t k, double scale)
{
    if (k != 1 || !(scale > 0)) {
        ar_reset(a, d);
        return;
    }
    double inv = 1.0 / scale;
    double x0 = (a->last - mu) * inv, x1 = a->dd[0] * inv, x2 = a->dd[1] * inv;
    double y = (d - a->last) * inv;
    double *P = a->P; /* packed: 00 01 02 11 12 22 */
    double px0 = P[0] * x0 + P[1] * x1 + P[2] * x2;
    double px1 = P[1] * x0 + P[3] * x1 + P[4] * x2;
    double px2 = P[2] * x0 + P[4] * x1 + P[5] * x2;
    /* With no information arriving (flat series) P would grow without
     * bound under forgetting: stop forgetting then. */
    double lam = (P[0] > AR_PMAX || P[3] > AR_PMAX || P[5] > AR_PMAX) ? 1 : AR_LAMBDA;
    double den = lam + x0 * px0 + x1 * px1 + x2 * px2;
    double err = y - (a->theta[0] * x0 + a->theta[1] * x1 + a->theta[2] * x2);
    /* A huge standardised error (a jump the cleaning let through) would
     * wreck the fit: limit its pull. */
    err = err > 6 ? 6 : err < -6 ? -6 : err;
    double g = err / den, il = 1 / lam, id = 1 / den;
    a->theta[0] += px0 * g;
    a->theta[1] += px1 * g;
    a->theta[2] += px2 * g;
    P[0] = (P[0] - px0 * px0 * id) * il;
    P[1] = (P[1] - px0 * px1 * id) * il;
    P[2] = (P[2] - px0 * px2 * id) * il;
    P[3] = (P[3] - px1 * px1 * id) * il;
    P[4] = (P[4] - px1 * px2 * id) * il;
    P[5] = (P[5] - px2 * px2 * id) * il;
    for (int i = 0; i < AR_P; i++)
        if (!(fabs(a->theta[i]) < 10))
            a->theta[i] = 0;
    a->dd[1] = a->dd[0];
    a->dd[0] = d - a->last;
    a->last = d;
    a->n++;
}
