/*
 * model_internal.h — the pieces model.c assembles into a series model.
 *
 * Not a public API: only model*.c include this. Each component is a plain
 * struct of numbers (no pointers) embedded in struct model_state, plus pure
 * functions over it. model.c owns the layout, the step pipeline, the
 * combination and the intervals; the component files own one concern each:
 *
 *   model_grid.c   raw samples -> closed steps (aggregation, rate, stale)
 *   model_hw.c     damped-trend Holt-Winters with 0..2 seasonal profiles
 *   model_level.c  robust level (Huber EWMA) with a learned gain
 *   model_ar.c     autoregression of the deseasonalised series by RLS
 *   model_score.c  anomaly score (calibrated tail probabilities), change points
 *
 * Every struct here is part of the snapshot format: changing a field means
 * bumping MODEL_STATE_VERSION.
 */
#ifndef PROMCAST_MODEL_INTERNAL_H
#define PROMCAST_MODEL_INTERNAL_H

#include <stdint.h>

#include "model.h"

/* floor(t / d) for d > 0, and *rem = t - d * floor(t / d), given inv =
 * 1.0 / d: a multiplication and an exact correction instead of a 64-bit
 * division (40-90 cycles). Exact for every t. */
static inline int64_t model_floordiv(int64_t t, int64_t d, double inv, int64_t *rem)
{
    int64_t q, r;
    if (t > -(INT64_C(1) << 52) && t < (INT64_C(1) << 52)) {
        q = (int64_t)((double)t * inv); /* within 2 of the quotient */
        r = t - q * d;
        while (r < 0) {
            q--;
            r += d;
        }
        while (r >= d) {
            q++;
            r -= d;
        }
    } else {
        q = t / d;
        r = t % d;
        if (r < 0) {
            q--;
            r += d;
        }
    }
    *rem = r;
    return q;
}

/* ---- step grid (model_grid.c) ------------------------------------------ */

enum {
    GRID_OPEN = 1u << 0,     /* a step is open (has at least one sample or a rate base) */
    GRID_HAS_DATA = 1u << 1, /* the open step has an aggregated value */
    GRID_HAS_BASE = 1u << 2, /* last_raw is a valid counter base (rate) */
    GRID_PAUSED = 1u << 3,   /* a stale marker was seen; nothing is open */
    GRID_SEEN = 1u << 4,     /* at least one valid sample was ever accepted */
    GRID_CLOSED = 1u << 5,   /* not open, and open_t is the last closed step */
};

struct model_grid {
    double inv_step; /* 1 / step_ms */
    int64_t open_t;  /* start of the open step */
    int64_t last_t;  /* newest accepted raw timestamp */
    double last_raw; /* newest raw value (the counter base for rate) */
    double agg_last; /* aggregate of the open step: value of newest sample */
    double agg_sum;  /* sum of values (or of counter increases for rate) */
    double agg_max;
    double agg_dt; /* rate: seconds covered by the increases in agg_sum */
    uint32_t count;
    uint32_t flags;
};

/* One closed step handed from the grid to the models. */
struct grid_step {
    int64_t t;
    double value;
};

void grid_init(struct model_grid *g, int64_t step_ms);

/* Feed one raw sample. Returns 1 and fills *closed when it closed a step with
 * data, else 0. *flags gets MODEL_F_* bits (ORed in). */
int grid_feed(struct model_grid *g, const struct model_params *p, int64_t t, double v,
              struct grid_step *closed, unsigned *flags);

/* Close the open step if now >= its end. Returns 1 and fills *closed. */
int grid_flush(struct model_grid *g, const struct model_params *p, int64_t now,
               struct grid_step *closed);

/* ---- Holt-Winters (model_hw.c) ------------------------------------------ */

#define HW_SLOTS_MAX1 288 /* slots of the first (finer) season */
#define HW_SLOTS_MAX2 84  /* slots of the second season (2-hourly for a week) */

/* The seasonal profiles live outside this struct (at the tail of the state):
 * float[nslots] values followed by uint32[(nslots + 31) / 32] bits, the sign
 * of the last one-step error seen at each slot (for learning gamma);
 * struct hw_season describes one. */
struct hw_season {
    int64_t period_ms;
    double inv_period; /* 1 / period_ms */
    uint32_t nslots;   /* 0: this season is not modelled */
    uint32_t offset;   /* byte offset of the float[nslots] profile in the state */
    float gamma;       /* smoothing of the profile, per visit of a slot (learned) */
    float gamma_v;     /* RMS of gamma's gradient */
    float gstep;       /* step_ms / slot_ms: share of a visit one step makes */
    float strength;    /* smoothed significance ratio (detection) */
    uint32_t visits;   /* completed periods since the model started */
    uint32_t last_i;   /* slot of the previous update (to see the phase wrap) */
    double sum, sumsq; /* running sum / sum of squares of the profile */
};

struct model_hw {
    double level, trend;
    float alpha, beta, phi, pad0;
    /* sensitivities of level/trend to alpha, beta, phi (gradient learning) */
    float da_l, da_t, db_l, db_t, dp_l, dp_t;
    float va, vb, vp;  /* RMS of the three gradients */
    float emean;       /* EWMA of the one-step error (for learning gamma) */
    uint32_t nseason;  /* profiles allocated (0..2) */
    uint32_t detected; /* bit i: season i is significant (used by level/AR) */
    int64_t start_t;   /* first step the profiles saw */
    struct hw_season season[MODEL_MAX_SEASONS];
};

/* Where a time falls in a season: the two slots it lies between. */
struct hw_phase {
    uint32_t i, j; /* the two slots interpolated between */
    float f;       /* weight of slot j */
};

/* The phases of one time in every season, and the profile values there;
 * computed once per step and shifted for the horizons. */
struct hw_phases {
    int64_t pos[MODEL_MAX_SEASONS]; /* t mod period */
    double inv[MODEL_MAX_SEASONS];  /* 1 / period */
    struct hw_phase ph[MODEL_MAX_SEASONS];
    double s[MODEL_MAX_SEASONS]; /* profile values (0 for absent seasons) */
};

void hw_init(struct model_hw *h, double y);
void hw_reset_level(struct model_hw *h, double deseasonalised_y);
void hw_phases_at(const struct model_hw *h, const void *state, int64_t t, struct hw_phases *p);
/* The phases dt >= 0 ms after those in from. */
void hw_phases_shift(const struct model_hw *h, const void *state, const struct hw_phases *from,
                     int64_t dt, struct hw_phases *to);
/* Sum of the profile values of the seasons in mask (bit i = season i). */
double hw_phases_sum(const struct hw_phases *p, unsigned mask);
double hw_powi(double x, uint32_t k);
/* Forecast k >= 1 steps past the last update, at the time of phases p. */
double hw_forecast(const struct model_hw *h, const struct hw_phases *p, uint32_t k);
/* Update with the (cleaned) value y at time t (phases p), k >= 1 steps after
 * the last update; learn parameters when learn != 0 (odd: alpha, even: beta
 * and phi). */
void hw_update(struct model_hw *h, void *state, const struct hw_phases *p, int64_t t, uint32_t k,
               double y, double scale, int learn);

/* ---- robust level (model_level.c) --------------------------------------- */

struct model_level {
    double mu;
    float alpha, da, va;
    float gscale; /* fixed unit of the gradient (first error scale seen) */
};

void level_init(struct model_level *l, double d);
double level_forecast(const struct model_level *l);
/* mse: the level's mean squared one-step error (its square root fixes the
 * unit of the gradient once). */
void level_update(struct model_level *l, double d, uint32_t k, double mse, int learn);

/* ---- autoregression by RLS (model_ar.c) --------------------------------- */

#define AR_P 3 /* regressors: error-correction term + two lagged differences */

struct model_ar {
    double last;                     /* last deseasonalised value d_{t-1} */
    double dd[AR_P - 1];             /* lagged differences d_{t-1}-d_{t-2}, ... */
    double theta[AR_P];              /* coefficients */
    double P[AR_P * (AR_P + 1) / 2]; /* RLS inverse covariance, packed upper */
    uint32_t n;                      /* updates done */
    uint32_t pad0;
};

void ar_init(struct model_ar *a, double d);
void ar_reset(struct model_ar *a, double d);
/* Forecast of the deseasonalised value k steps ahead given the level mu. */
double ar_forecast(const struct model_ar *a, double mu, uint32_t k);
/* The same for n horizons at once (one pass): out[j] for k[j] steps. */
void ar_forecast_multi(const struct model_ar *a, double mu, const uint32_t *k, int n, double *out);
void ar_update(struct model_ar *a, double d, double mu, uint32_t k, double scale);

/* ---- anomaly score (model_score.c) --------------------------------------- */

/* The learned tail of one standardised statistic u: q = P(u > 3), and
 * beyond 3 a Pareto tail of index 1/h (Hill estimate). */
struct score_tail {
    float q, h;
    uint32_t k; /* exceedances seen */
};

struct model_score {
    double base;     /* slow deseasonalised baseline (run component) */
    float scale;     /* robust scale: EWMA of clipped |one-step error| */
    float acc;       /* EWMA_0.25 of point surprise -ln p */
    float dens;      /* EWMA_0.05 of the same (density) */
    float dens_m;    /* long-run mean of dens */
    float dens_d;    /* long-run mean absolute deviation of dens */
    float dev_scale; /* robust scale of deviations from the baseline */
    float run;       /* EWMA of clipped deviations */
    float run_scale; /* robust scale of run */
    float cusum_hi, cusum_lo;
    float peak;    /* surprise of the current episode's last report (decaying) */
    uint32_t calm; /* calm steps in a row */
    uint32_t n;
    uint32_t pad0;
    struct score_tail t_point, t_acc, t_dens, t_run;
};

/* What the score module is given for one step. */
struct score_input {
    double y;
    double yhat;      /* the combination */
    double scale;     /* mean absolute one-step error of the combination (start value) */
    double sdet;      /* detected seasonal component at this step */
    double base_rate; /* per-step rate of the slow baseline */
};

/* What the score module decided for one step. */
struct score_result {
    double score;   /* in [0,1] */
    double l_point; /* surprise -ln p of the one-step error */
    double l_acc;   /* ... of the accumulated surprise */
    double l_dens;  /* ... of the density of surprises */
    double l_run;   /* ... of the deviation from the baseline */
    int change;     /* 1: a change point was declared: re-adapt */
};

void score_init(struct model_score *s);
void score_step(struct model_score *s, const struct score_input *in, struct score_result *r);

/* ---- the whole state (model.c) ------------------------------------------ */

#define MODEL_MAGIC    0x4d435250u /* "PRCM" */
#define MODEL_NCAND    4           /* candidate forecasters combined by auto */
#define MODEL_RING_MAX 8           /* stored origins per horizon */

enum { CAND_NAIVE = 0, CAND_LEVEL, CAND_HW, CAND_AR };

/* One stored forecast, checked when its target step closes. */
struct ring_entry {
    uint32_t target;          /* low 32 bits of the step index it is for */
    float f[MODEL_NCAND + 1]; /* candidates, then the combination */
};

/* Per-horizon error statistics (index 0 = one step). Mean squares are
 * doubles: a float square overflows beyond 1e19, and keeping RMS values
 * instead costs a square root per candidate per update. */
struct hz_stats {
    double mse[MODEL_NCAND]; /* EWMA of squared error per candidate */
    float w[MODEL_NCAND];    /* combination weights from mse (cached) */
    float mae;               /* EWMA of |error| of the combination */
    float qlo, qhi;          /* quantiles of error/mae */
    uint32_t n;
};

struct model_state {
    uint32_t magic;
    uint16_t version;
    uint16_t kind;
    uint32_t size;
    uint32_t long_gap; /* a gap of more steps re-initialises the levels */
    int64_t step_ms;
    uint16_t nh; /* configured horizons */
    uint16_t pad0;
    uint32_t ring_off;  /* byte offset of the first ring */
    uint32_t stats_off; /* byte offset of the statistics (after the rings) */
    uint32_t hsteps[MODEL_MAX_HORIZONS];
    uint32_t hstride[MODEL_MAX_HORIZONS];
    /* the last step's position in horizon i's ring cycle (stride * len
     * steps), as slot * stride + sub: kept incrementally, so consecutive
     * steps need no division */
    uint32_t hsub[MODEL_MAX_HORIZONS];
    uint8_t hring[MODEL_MAX_HORIZONS];
    uint8_t hslot[MODEL_MAX_HORIZONS];

    struct model_grid grid;

    uint64_t steps; /* closed steps with data */
    int64_t last_k; /* step index of the last closed step */
    double last_value, last_yhat, last_score;

    struct model_hw hw;
    struct model_level lvl;
    struct model_ar ar;
    struct model_score sc;
};

#endif
