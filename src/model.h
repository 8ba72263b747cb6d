/*
 * model.h — the per-series forecast and anomaly engine (pure code).
 *
 * Everything here is a pure function of (state, params, input): no I/O, no
 * locks, no globals, no allocation. The daemon, `promcast backtest` and the
 * unit tests run exactly these functions.
 *
 * State lives in caller-provided memory of model_state_size(params) bytes. It
 * holds no pointers, so it can be copied, snapshotted to disk and restored
 * byte for byte (guarded by MODEL_STATE_VERSION and the params it was made
 * with). The layout is documented in model.c.
 *
 * Time is in milliseconds since the epoch. Raw samples are aggregated onto a
 * step grid (step boundaries at multiples of step_ms since the epoch); each
 * closed step that had data updates the model once and yields one output.
 *
 * Thread-safety: functions touching one state must not run concurrently on
 * that state; different states are independent.
 */
#ifndef PROMCAST_MODEL_H
#define PROMCAST_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels.h"

#define MODEL_MAX_HORIZONS  8
#define MODEL_MAX_SEASONS   2
#define MODEL_STATE_VERSION 3
/* Sample values beyond +-this are ignored like NaN (MODEL_F_INVALID): no
 * metric has them, and squares of errors of such values overflow. */
#define MODEL_VALUE_MAX 1e30

enum model_kind { MODEL_AUTO = 0, MODEL_HOLT_WINTERS, MODEL_AR, MODEL_LEVEL };
enum model_transform { MODEL_TRANSFORM_NONE = 0, MODEL_TRANSFORM_RATE };
enum model_aggregation { MODEL_AGG_LAST = 0, MODEL_AGG_MEAN, MODEL_AGG_MAX };

/* How a series is modelled; filled from a config rule (or backtest flags). */
struct model_params {
    int64_t step_ms; /* > 0 */
    enum model_kind kind;
    enum model_transform transform;
    enum model_aggregation aggregation;
    int nseasons; /* -1 = detect from data (none/daily/weekly); else 0..2 */
    int64_t season_ms[MODEL_MAX_SEASONS];
    int nhorizons; /* 0..MODEL_MAX_HORIZONS */
    int64_t horizon_ms[MODEL_MAX_HORIZONS];
    double coverage; /* prediction-interval coverage in (0,1), default 0.95 */
};

/* Fill params with the defaults of the embedded configuration: step 1m,
 * model auto, no transform, aggregation last, seasons auto-detected,
 * horizons 15m and 1h, coverage 0.95. */
void model_params_default(struct model_params *p);

/* Check params; on error return -1 and write a one-line reason to err. */
int model_params_check(const struct model_params *p, char *err, size_t errcap);

/* Flags reported by model_observe() about the sample it was given. */
enum {
    MODEL_F_LATE = 1u << 0,      /* older than the open step: dropped */
    MODEL_F_DUPLICATE = 1u << 1, /* same timestamp as the previous sample */
    MODEL_F_STALE = 1u << 2,     /* stale marker: series paused */
    MODEL_F_RESET = 1u << 3,     /* counter reset seen (transform rate) */
    MODEL_F_GAP = 1u << 4,       /* one or more steps without data were skipped */
    MODEL_F_INVALID = 1u << 5,   /* NaN/Inf (not a stale marker) or |v| > MODEL_VALUE_MAX:
                                    ignored */
};

/* One closed step. */
struct model_output {
    int64_t t;         /* start of the step described (aligned to step_ms) */
    double value;      /* the step's aggregated (and transformed) observation */
    double yhat;       /* the one-step-ahead expectation made before seeing value */
    double yhat_lower; /* prediction interval at params->coverage */
    double yhat_upper;
    double anomaly_score; /* in [0, 1] */
    int nhorizons;
    double forecast[MODEL_MAX_HORIZONS]; /* value expected at t + horizon_ms[i] */
    bool ready; /* false during warm-up: numbers are provisional (yhat may be the
                   value itself, score 0); the daemon does not write them back */
};

/* What the explain view shows. */
struct model_info {
    enum model_kind active; /* the model auto currently trusts most (the
                               naive candidate is reported as MODEL_LEVEL) */
    int nseasons;           /* detected or configured */
    int64_t season_ms[MODEL_MAX_SEASONS];
    double alpha, beta, gamma, phi; /* Holt-Winters smoothing / damping */
    double level, trend;
    double resid_scale; /* robust scale of one-step errors */
    uint64_t steps;     /* closed steps seen */
    int64_t last_t;     /* start of the last closed step, 0 if none */
    double last_value, last_yhat, last_score;
};

/* Bytes of state for these params (depends on step and seasons). */
size_t model_state_size(const struct model_params *p);

/* Initialise state (state_size bytes of caller memory). */
void model_init(void *state, const struct model_params *p);

/*
 * Check that `size` bytes at state (e.g. read back from a snapshot) are a
 * state that model_init() made for params with the same layout as p, in this
 * build: magic, MODEL_STATE_VERSION, size, step, kind, seasons and horizons
 * all match. A state that fails must be re-initialised, not used. The state
 * is native-endian (floats and integers as in memory): snapshots are not
 * portable across architectures. Returns 0 or -1. Pure; state is borrowed.
 */
int model_state_check(const void *state, size_t size, const struct model_params *p);

/*
 * Feed one raw sample. Samples should come in time order per series; a sample
 * older than the open step is dropped (MODEL_F_LATE). A sample past the open
 * step closes it (and reports the steps in between as a gap, without filling
 * them). Writes up to max_out outputs for closed steps and returns how many
 * (one sample closes at most one step, so max_out = 1 suffices; out may be
 * NULL with max_out = 0 to update without outputs);
 * *flags (may be NULL) receives MODEL_F_* bits.
 */
int model_observe(void *state, const struct model_params *p, int64_t t, double v,
                  struct model_output *out, int max_out, unsigned *flags);

/* Close the open step if `now` is at or past its end (series went quiet).
 * Returns the number of outputs written (0 or 1). */
int model_flush(void *state, const struct model_params *p, int64_t now, struct model_output *out,
                int max_out);

/*
 * The forecast path after the last closed step: points at t_last + k*step for
 * k = 1..n with n = min(max, longest horizon / step). Returns n (0 when the
 * model has no data yet). Arrays may be NULL except t and yhat.
 */
int model_forecast_path(const void *state, const struct model_params *p, int64_t *t, double *yhat,
                        double *lower, double *upper, int max);

/*
 * Initialise from a batch of history (time-ordered samples, stale markers
 * allowed): fits parameters and seasonality on the whole batch and leaves the
 * state as if the samples had been observed live. Returns 0, -1 if n == 0.
 * (It calls model_init() and replays the batch through model_observe(), so
 * the result is exactly the live state; the last step stays open, as live.
 * Cost: n samples' worth of model_observe.) hist is borrowed.
 */
int model_warm_start(void *state, const struct model_params *p, const struct sample *hist,
                     size_t n);

void model_describe(const void *state, const struct model_params *p, struct model_info *out);

const char *model_kind_name(enum model_kind k);

#endif
