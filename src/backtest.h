/*
 * backtest.h — `promcast backtest`: replay CSV history through the model.
 *
 * The command reads one CSV file or every CSV below a directory, feeds each
 * series through exactly the model code the daemon runs (model.h), writes one
 * output row per input row, and prints a summary: forecast error relative to
 * naive baselines per horizon, one-step interval coverage and, when anomaly
 * windows are given, the NAB score (nab.h). docs/backtest.md is the user
 * documentation; `promcast backtest --help` lists every flag.
 *
 * The forecast evaluation is exported so unit tests can check its arithmetic
 * on hand-made series.
 *
 * Thread-safety: backtest_main() is a whole program (it may start worker
 * threads of its own); backtest_evaluate() is pure and reentrant.
 */
#ifndef PROMCAST_BACKTEST_H
#define PROMCAST_BACKTEST_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* Entry point of `promcast backtest`; argv[0] is "backtest". Returns the
 * process exit code: 0 success, 1 bad usage or bad input (message on stderr). */
int backtest_main(int argc, char **argv);

/* Slot 0 of struct backtest_eval.h[] is the one-step forecast (yhat); slot
 * 1 + i is configured horizon i. */
#define BACKTEST_EVAL_SLOTS (1 + MODEL_MAX_HORIZONS)

/* Errors of one horizon on one series. */
struct backtest_horizon_eval {
    size_t n;           /* origins with model forecast, actual and naive value */
    double mae_model;   /* mean |forecast - actual| over those n */
    double mae_naive;   /* mean |value at origin - actual| over the same n */
    size_t ns;          /* subset of the n that also has a seasonal-naive value */
    double mae_model_s; /* model MAE over the ns */
    double mae_seasonal;
};

struct backtest_eval {
    int nslots; /* 1 + number of horizons */
    struct backtest_horizon_eval h[BACKTEST_EVAL_SLOTS];
    size_t cov_n;      /* ready steps with a finite value and finite bounds */
    size_t cov_inside; /* of those, value within [yhat_lower, yhat_upper] */
};

/*
 * Evaluate a series' closed-step outputs (`out`, n of them, ascending t, as
 * model_observe() produced them; borrowed). Only outputs with ready == true
 * are forecast origins. For origin t and horizon h the actual is the output
 * whose step starts at t + h, the naive forecast is the value at t, and the
 * seasonal naive one is the value at t + h - k*season_ms with the smallest k
 * putting it at or before t. The one-step slot uses yhat of the output at t
 * itself, with the value at t - step_ms as naive. Target times are floored to
 * the step grid; a horizon whose target falls in the origin's own step has no
 * points. Points missing any needed value are skipped. Interval coverage
 * counts ready outputs whose value lies in [yhat_lower, yhat_upper].
 * Returns 0, or -1 when the arguments are inconsistent
 * (step_ms <= 0, season_ms <= 0, nh out of range). Pure.
 */
int backtest_evaluate(const struct model_output *out, size_t n, int64_t step_ms,
                      const int64_t *horizon_ms, int nh, int64_t season_ms,
                      struct backtest_eval *ev);

/* The step inferred from a series' timestamps (ms, time order, repeats
 * allowed): the median of the positive differences, snapped to a round
 * duration (1s 2s 5s 10s 15s 20s 30s 1m 2m 5m 10m 15m 20m 30m 1h 2h 3h 6h 12h
 * 1d) when within 10 % of one, otherwise rounded to whole seconds (whole ms
 * under 1 s). Returns 0 when there is no positive difference. */
int64_t backtest_infer_step(const int64_t *t, size_t n);

#endif
