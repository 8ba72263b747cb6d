/*
 * fuzz_csvts.c — libFuzzer target for the backtest CSV reader.
 *
 * Any bytes: loading must not crash, leak or read out of bounds, in every
 * mode (strict, skipping bad rows, with an extra column). When a load
 * succeeds, every row's timestamp bytes lie inside the text, strict loads
 * have no bad row, and each good row's timestamp parses again to the same
 * time. The timestamp and value parsers also get the raw bytes directly.
 */
#include "csvts.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rows(const struct csvts *c, bool strict)
{
    if (strict && c->n_bad != 0)
        abort();
    for (size_t i = 0; i < c->n; i++) {
        const struct csvts_row *r = &c->rows[i];
        if (r->ts_off > c->len || r->ts_len > c->len - r->ts_off)
            abort();
        if ((r->flags & CSVTS_BAD) || r->ts_len == 0 || c->text[r->ts_off] == '"')
            continue;
        int64_t t;
        if (csvts_parse_time(c->text + r->ts_off, r->ts_len, &t, NULL) != 0 || t != r->t)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct csvts c;
    char err[512];
    static const struct csvts_options modes[] = {
        {NULL, false, 0},
        {NULL, true, 0},
        {"anomaly_score", true, 0},
    };

    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        if (csvts_load_buffer(&c, "fuzz.csv", s, size, &modes[m], err, sizeof err) == 0) {
            check_rows(&c, !modes[m].skip_bad_rows);
            csvts_cleanup(&c);
        } else if (err[0] == '\0') {
            abort(); /* every failure explains itself */
        }
    }

    int64_t t;
    double v;
    bool missing;
    size_t n = size < 200 ? size : 200;
    if (csvts_parse_time(s, n, &t, NULL) == 0 &&
        (t < INT64_C(-62167219200000) || t > INT64_C(253402300799999)))
        abort();
    if (csvts_parse_value(s, n, &v, &missing) == 0 && !missing && !isfinite(v))
        abort();
    return 0;
}
