/*
 * csvts.h — time series in CSV files: `timestamp,value[,...]` with a header.
 *
 * What `promcast backtest` reads. A file is loaded whole (up to a byte cap)
 * and split into rows; the timestamp field of every row is kept as the exact
 * bytes of the input so it can be written back unchanged.
 *
 * Format accepted (docs/backtest.md is the user-facing version):
 *   - RFC 4180 CSV: fields separated by ',', optionally quoted with '"' ('""'
 *     inside quotes is one quote; quoted fields may span lines); lines end in
 *     LF or CRLF; a UTF-8 byte-order mark is skipped; blank lines are ignored.
 *   - A header is required; its first two names must be `timestamp` and
 *     `value` (case-insensitive, surrounding blanks ignored). Further columns
 *     are ignored unless one is asked for by name (csvts_options.extra_column).
 *   - timestamp: see csvts_parse_time().
 *   - value: a decimal number; an empty field, `NaN`, `null` or `NA` (any
 *     case) and non-finite numbers are "missing": the row is kept, flagged
 *     CSVTS_MISSING, with v = NaN.
 * A malformed row (bad timestamp, bad number, too few columns) is an error
 * reported as `file:line:col: message`; with skip_bad_rows it is kept flagged
 * CSVTS_BAD instead (time copied from the previous good row), counted, and
 * only the first message is kept.
 *
 * Thread-safety: functions are reentrant; a struct csvts belongs to one
 * thread at a time. No third-party library.
 */
#ifndef PROMCAST_CSVTS_H
#define PROMCAST_CSVTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Default cap on the size of one input file (--max-file-bytes). */
#define CSVTS_DEFAULT_MAX_BYTES ((size_t)1 << 30)

enum {
    CSVTS_BAD = 1u << 0,           /* malformed row (only with skip_bad_rows) */
    CSVTS_MISSING = 1u << 1,       /* value missing or not finite */
    CSVTS_EXTRA_MISSING = 1u << 2, /* extra column absent, empty or NaN */
};

struct csvts_row {
    int64_t t;     /* ms since the epoch */
    double v;      /* NaN when CSVTS_MISSING */
    double extra;  /* the extra column's number, NaN when absent */
    size_t ts_off; /* timestamp field bytes in csvts.text (quotes included) */
    uint32_t ts_len;
    uint32_t line;  /* 1-based line where the row starts */
    unsigned flags; /* CSVTS_* */
};

struct csvts_options {
    const char *extra_column; /* also read this column by header name; NULL: none */
    bool skip_bad_rows;
    size_t max_bytes; /* 0: CSVTS_DEFAULT_MAX_BYTES */
};

struct csvts {
    char *text; /* the whole file (owned) */
    size_t len;
    struct csvts_row *rows; /* data rows in file order (owned) */
    size_t n;
    size_t n_bad;        /* rows flagged CSVTS_BAD */
    size_t n_missing;    /* rows flagged CSVTS_MISSING */
    char first_bad[256]; /* message of the first bad row, "" if none */
};

/*
 * Load `path` (borrowed). On success fills *c (caller later calls
 * csvts_cleanup) and returns 0. On error returns -1, leaves *c empty and
 * writes `path:line:col: message` (or `path: message`) to err. opt may be NULL.
 */
int csvts_load(struct csvts *c, const char *path, const struct csvts_options *opt, char *err,
               size_t errcap);

/* Same on bytes already in memory (copied); `name` is used in messages. */
int csvts_load_buffer(struct csvts *c, const char *name, const char *data, size_t len,
                      const struct csvts_options *opt, char *err, size_t errcap);

/* Free what csvts_load filled; accepts NULL and an empty (zeroed) struct. */
void csvts_cleanup(struct csvts *c);

/*
 * Parse a timestamp (len bytes, no NUL needed; surrounding blanks ignored)
 * into ms since the epoch, UTC. Accepted:
 *   - a number: unix seconds when its magnitude is below 1e11 (i.e. before
 *     the year 5138), unix milliseconds from 1e11 on (i.e. after 1973-03-03);
 *     fractions allowed, exponents allowed;
 *   - RFC 3339: `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)` (also `t`, `z`,
 *     `+HHMM`);
 *   - `YYYY-MM-DD HH:MM:SS[.frac]` (or with `T`) without a zone, read as UTC.
 * Sub-millisecond digits are truncated. Years 0000..9999 only. Returns 0, or
 * -1 with a static reason in *why (may be NULL).
 */
int csvts_parse_time(const char *s, size_t len, int64_t *ms, const char **why);

/* Parse a value field as described above: 0 with *v set (NaN when missing,
 * *missing true), -1 when it is not a number. */
int csvts_parse_value(const char *s, size_t len, double *v, bool *missing);

#endif
