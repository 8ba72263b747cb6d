/*
 * nab.h — the Numenta Anomaly Benchmark (NAB v1.1) scoring rules.
 *
 * Scores per-row anomaly scores of a set of files against labelled anomaly
 * windows, as NAB's published scorer does (written from its description and
 * checked against its reference results; no NAB code is used):
 *
 *   - The first min(floor(0.15 * rows), 750) rows of a file are probation:
 *     they never count and take no part in the threshold search.
 *   - Each row gets a sweep weight from its position. Inside a window of W
 *     rows ending at row R, row i weighs S(-(R - i + 1) / W) / S(-1) (almost
 *     1 at the window's start, falling to 0 at its end). Outside windows a
 *     row weighs S((i - R') / (W' - 1)) where R', W' are the end and width of
 *     the preceding window (-1 when there is none or it is 3 widths away).
 *     S(x) = 2 / (1 + exp(5x)) - 1, and S(x) = -1 for x >= 3.
 *   - For a threshold, every row whose score is >= it alarms. A window is
 *     worth tp_weight times the weight of its best alarmed row, or -fn_weight
 *     when none of its rows alarms; every alarm outside windows adds
 *     fp_weight times its (negative) weight.
 *   - One threshold for the whole set: every distinct score is tried and the
 *     one with the highest total wins (ties: the highest threshold).
 *   - Normalised: 100 * (raw - null) / (perfect - null), where null is the
 *     total of a detector that never alarms (-fn_weight per window having
 *     scorable rows) and perfect = tp_weight * windows.
 *
 * Window bounds are timestamps (both inclusive). A window is entered at the
 * first row at or after its start and ends at the first row at its end (the
 * last row before it when no row has exactly that time); a window holding no
 * row at all still counts in `perfect` but can never be detected.
 *
 * jansson is included only here (the windows file is JSON).
 * Thread-safety: loaded labels are immutable and may be shared by threads; a
 * corpus belongs to one thread at a time.
 */
#ifndef PROMCAST_NAB_H
#define PROMCAST_NAB_H

#include <stddef.h>
#include <stdint.h>

struct nab_profile {
    const char *name;
    double tp_weight, fp_weight, fn_weight;
};

/* NAB's application profiles: standard, reward_low_FP_rate, reward_low_FN_rate. */
#define NAB_NPROFILES 3
extern const struct nab_profile nab_profiles[NAB_NPROFILES];

/* NAB's scaled sigmoid S(x) described above. */
double nab_scaled_sigmoid(double x);

/* Probation rows of a file of n rows: min(floor(0.15 n), 750). */
size_t nab_probation_rows(size_t n);

struct nab_window {
    int64_t start_ms, end_ms; /* both inclusive */
};

/* ---- Windows file (`combined_windows.json`) -------------------------------- */

/* A JSON object mapping relative file paths to lists of [start, end]
 * timestamp pairs (any format csvts_parse_time() accepts). */
struct nab_labels;

/* Load and validate; NULL on error with `path:line:col: message` (or
 * `path: message`) in err. The caller owns the result. */
struct nab_labels *nab_labels_load(const char *path, char *err, size_t errcap);

/* Same from a JSON text (len bytes, copied); `name` is used in messages. */
struct nab_labels *nab_labels_parse(const char *name, const char *json, size_t len, char *err,
                                    size_t errcap);

void nab_labels_destroy(struct nab_labels *l);

/*
 * Windows of the file at `path`: the key equal to path (with "./" prefixes
 * and repeated '/' removed) or else to its longest trailing part starting
 * after a '/', so "/data/nab/realTweets/x.csv" finds "realTweets/x.csv".
 * Returns the number of windows (sorted by start; *win borrowed from l) and
 * sets *key (borrowed; may be NULL) to the key found, or -1 when no key fits.
 */
int nab_labels_find(const struct nab_labels *l, const char *path, const struct nab_window **win,
                    const char **key);

/* Files in the labels file and the i-th key (sorted). */
size_t nab_labels_nfiles(const struct nab_labels *l);
const char *nab_labels_key(const struct nab_labels *l, size_t i);

/* ---- Scoring a set of files ------------------------------------------------ */

struct nab_corpus;

struct nab_corpus *nab_corpus_create(void);
void nab_corpus_destroy(struct nab_corpus *c);

/*
 * Add one file: n rows in file order with their times (ms) and anomaly
 * scores (NaN counts as 0), and its windows (any order). Everything is
 * copied. Returns 0, or -1 when out of memory (corpus unchanged).
 */
int nab_corpus_add(struct nab_corpus *c, const char *name, const int64_t *t, const double *score,
                   size_t n, const struct nab_window *win, size_t nwin);

size_t nab_corpus_nfiles(const struct nab_corpus *c);
const char *nab_corpus_name(const struct nab_corpus *c, size_t i);

struct nab_result {
    double score;       /* normalised (null 0, perfect 100); NaN when no windows */
    double raw;         /* best total over thresholds */
    double null_raw;    /* total of the never-alarming detector */
    double perfect_raw; /* tp_weight * windows */
    double threshold;   /* rows with score >= threshold alarm; +inf: never alarm */
    size_t windows;     /* all windows of the files */
    size_t windows_detected;
    size_t fp_rows; /* scorable alarms outside windows */
};

/* Optimise the threshold for profile p over every file added so far and
 * fill *r. Returns 0, -1 when out of memory. */
int nab_corpus_score(const struct nab_corpus *c, const struct nab_profile *p, struct nab_result *r);

/* One file's part at a given threshold; the raw values over all files add up
 * to nab_result.raw when threshold is the optimised one. */
struct nab_file_result {
    double raw;
    size_t windows, windows_detected, fp_rows;
};

/* Fill res[0..nfiles-1] for profile p and threshold. Returns 0, -1 on OOM. */
int nab_corpus_files(const struct nab_corpus *c, const struct nab_profile *p, double threshold,
                     struct nab_file_result *res);

#endif
