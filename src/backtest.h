/*
 * backtest.h — `promcast backtest`: replay history through the model.
 *
 * The command reads one CSV file or every CSV below a directory, or fetches
 * the series a selector matches from a Prometheus remote-read endpoint
 * (`--remote-read`), feeds each series through exactly the model code the
 * daemon runs (model.h), writes one output row per input row (sample), and
 * prints a summary: forecast error relative to naive baselines per horizon,
 * one-step interval coverage and, when anomaly windows are given, the NAB
 * score (nab.h). docs/backtest.md is the user documentation; `promcast
 * backtest --help` lists every flag.
 *
 * The forecast evaluation, the remote-read file naming and the time-range
 * splitting are exported so unit tests can check their arithmetic.
 *
 * Thread-safety: backtest_main() is a whole program (it may start worker
 * threads of its own); backtest_evaluate() is pure and reentrant.
 */
#ifndef PROMCAST_BACKTEST_H
#define PROMCAST_BACKTEST_H

#include <stddef.h>
#include <stdint.h>

#include "labels.h"
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

/* ---- Remote read (`--remote-read=URL --match=SELECTOR`) ------------------ */

/* Defaults and bounds of the remote-read flags (docs/backtest.md). */
#define BACKTEST_DEFAULT_RANGE_MS         (7 * 86400000LL)  /* --start default: end - 7d */
#define BACKTEST_DEFAULT_MAX_RANGE_MS     (90 * 86400000LL) /* --max-range */
#define BACKTEST_DEFAULT_REQUEST_RANGE_MS 86400000LL        /* --request-range: 1d */
#define BACKTEST_MIN_REQUEST_RANGE_MS     60000LL           /* smallest --request-range */
#define BACKTEST_DEFAULT_MAX_SERIES       1000u             /* --max-series */
#define BACKTEST_MAX_MAX_SERIES           1000000u          /* largest --max-series */
#define BACKTEST_DEFAULT_MAX_SAMPLES      50000000u         /* --max-samples (16 bytes each) */
#define BACKTEST_DEFAULT_TIMEOUT_MS       60000             /* per request, without a config */

/* Bytes of the metric-name part of a file name; longest name with its NUL. */
#define BACKTEST_FILE_METRIC_MAX 120
#define BACKTEST_FILE_NAME_MAX   (BACKTEST_FILE_METRIC_MAX + 2 + 16 + 4 + 1)

/*
 * The output file name of a series fetched by remote read:
 * `<metric>__<hash>.csv`. <metric> is the __name__ value with every byte
 * outside [A-Za-z0-9_] replaced by '_', cut to BACKTEST_FILE_METRIC_MAX
 * bytes ("series" when there is no name); <hash> is 16 lower-case hex digits
 * of the 64-bit FNV-1a hash of the label set encoded as Prometheus hashes
 * one (for each label in order: name, 0xff, value, 0xff). So a name is safe
 * on any file system (no '/', '.', '-' or ':'), the same label set always
 * gives the same name, and different sets differ unless their 64-bit hashes
 * collide (the command renames such a rare collision, see docs). labels must
 * be sorted by name (as remote read delivers them) and are borrowed.
 * Writes the NUL-terminated name into buf and returns its length, or 0
 * (buf set to "" when cap > 0) when cap is smaller than the name needs;
 * BACKTEST_FILE_NAME_MAX is always enough. Pure.
 */
size_t backtest_series_file_name(const struct label *labels, size_t n, char *buf, size_t cap);

/* One remote-read query range, both ends inclusive (ms since the epoch). */
struct backtest_range {
    int64_t start_ms;
    int64_t end_ms;
};

/*
 * How [start_ms, end_ms] (inclusive) is cut into sub-requests of part_ms:
 * part i covers [start + i*part, min(start + (i+1)*part - 1, end)], so the
 * parts are disjoint, ascending and together cover the range exactly (the
 * last may be shorter, down to one millisecond). backtest_range_parts()
 * returns their number: 0 when start > end or part_ms <= 0.
 * backtest_range_part() returns part i (< the number of parts; otherwise an
 * empty range with start > end). Pure.
 */
size_t backtest_range_parts(int64_t start_ms, int64_t end_ms, int64_t part_ms);
struct backtest_range backtest_range_part(int64_t start_ms, int64_t end_ms, int64_t part_ms,
                                          size_t i);

#endif
