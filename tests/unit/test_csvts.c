/* Unit tests for csvts.c: timestamp formats, value parsing, CSV edge cases. */
#include <stdint.h>

#include "csvts.h"
#include "testlib.h"

struct time_case {
    const char *in;
    int ok;
    int64_t want;
};

static void test_parse_time(void)
{
    static const struct time_case cases[] = {
        /* unix seconds and milliseconds (1e11 is the boundary) */
        {"1425008573", 1, INT64_C(1425008573000)},
        {"1425008573.5", 1, INT64_C(1425008573500)},
        {"1425008573.1239", 1, INT64_C(1425008573123)},
        {"1425008573123", 1, INT64_C(1425008573123)},
        {"1425008573123.9", 1, INT64_C(1425008573123)},
        {"99999999999", 1, INT64_C(99999999999000)},
        {"100000000000", 1, INT64_C(100000000000)},
        {"0", 1, 0},
        {"-1", 1, -1000},
        {".5", 1, 500},
        {"1.4e9", 1, INT64_C(1400000000000)},
        {"1.4e12", 1, INT64_C(1400000000000)},
        {"  1425008573\t", 1, INT64_C(1425008573000)},
        /* YYYY-MM-DD HH:MM:SS as UTC */
        {"2015-02-26 21:42:53", 1, INT64_C(1424986973000)},
        {"2015-02-26T21:42:53", 1, INT64_C(1424986973000)},
        {"2015-02-26 21:42:53.000000", 1, INT64_C(1424986973000)},
        {"2000-01-01 00:00:00.5", 1, INT64_C(946684800500)},
        {"2016-02-29 00:00:00", 1, INT64_C(1456704000000)},
        {"1970-01-01 00:00:00", 1, 0},
        {"1969-12-31 23:59:59", 1, -1000},
        {"9999-12-31 23:59:59", 1, INT64_C(253402300799000)},
        {"0001-01-01 00:00:00", 1, INT64_C(-62135596800000)},
        /* RFC 3339 */
        {"2015-02-26T21:42:53Z", 1, INT64_C(1424986973000)},
        {"2015-02-26t21:42:53z", 1, INT64_C(1424986973000)},
        {"2015-02-26T21:42:53.123Z", 1, INT64_C(1424986973123)},
        {"2015-02-26T21:42:53.123456789Z", 1, INT64_C(1424986973123)},
        {"2015-02-26T21:42:53.1Z", 1, INT64_C(1424986973100)},
        {"2015-02-26T23:42:53+02:00", 1, INT64_C(1424986973000)},
        {"2015-02-26T16:42:53-05:00", 1, INT64_C(1424986973000)},
        {"2015-02-26T23:42:53+0200", 1, INT64_C(1424986973000)},
        {"2015-02-26T21:12:53-00:30", 1, INT64_C(1424986973000)},
        {"2015-02-26 21:42:53 UTC", 1, INT64_C(1424986973000)},
        {"2016-12-31T23:59:60Z", 1, INT64_C(1483228800000)},
        /* malformed */
        {"", 0, 0},
        {"   ", 0, 0},
        {"abc", 0, 0},
        {"12:30", 0, 0},
        {"2015-02-26", 0, 0},
        {"2015-02-29 00:00:00", 0, 0},
        {"2015-13-01 00:00:00", 0, 0},
        {"2015-00-10 00:00:00", 0, 0},
        {"2015-02-26 24:00:00", 0, 0},
        {"2015-02-26 21:60:00", 0, 0},
        {"2015-02-26 21:42", 0, 0},
        {"2015-02-26 21:42:53.", 0, 0},
        {"2015-02-26T21:42:53+2", 0, 0},
        {"2015-02-26T21:42:53+25:00", 0, 0},
        {"2015-02-26 21:42:53 garbage", 0, 0},
        {"2015-02-26T21:42:53Zx", 0, 0},
        {"2015/02/26 21:42:53", 0, 0},
        {"1e20", 0, 0},
        {"-", 0, 0},
        {"1425008573x", 0, 0},
        {"99999999999999999999999", 0, 0},
        {"nan", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct time_case *c = &cases[i];
        int64_t ms = -12345;
        const char *why = NULL;
        int rc = csvts_parse_time(c->in, strlen(c->in), &ms, &why);
        if (c->ok) {
            CHECK(rc == 0 && ms == c->want, "\"%s\": rc %d got %lld want %lld (%s)", c->in, rc,
                  (long long)ms, (long long)c->want, why ? why : "");
        } else {
            CHECK(rc == -1 && why != NULL, "\"%s\": accepted as %lld", c->in, (long long)ms);
        }
    }
    /* Length is honoured: no NUL needed, trailing bytes ignored. */
    int64_t ms = 0;
    CHECK(csvts_parse_time("1425008573999", 10, &ms, NULL) == 0 && ms == INT64_C(1425008573000),
          "length-bounded parse got %lld", (long long)ms);
}

static void test_parse_value(void)
{
    static const struct {
        const char *in;
        int rc;
        int missing;
        double want;
    } cases[] = {
        {"1.5", 0, 0, 1.5},   {"-2", 0, 0, -2},
        {" 3e2 ", 0, 0, 300}, {"0.0819647355164", 0, 0, 0.0819647355164},
        {"", 0, 1, 0},        {"NaN", 0, 1, 0},
        {"nan", 0, 1, 0},     {"null", 0, 1, 0},
        {"NA", 0, 1, 0},      {"+Inf", 0, 1, 0},
        {"abc", -1, 0, 0},    {"1,5", -1, 0, 0},
        {"1.5x", -1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v = 0;
        bool missing = false;
        int rc = csvts_parse_value(cases[i].in, strlen(cases[i].in), &v, &missing);
        CHECK(rc == cases[i].rc, "\"%s\": rc %d", cases[i].in, rc);
        if (rc == 0 && cases[i].missing)
            CHECK(missing && isnan(v), "\"%s\": not missing", cases[i].in);
        if (rc == 0 && !cases[i].missing)
            CHECK(!missing && v == cases[i].want, "\"%s\": got %g", cases[i].in, v);
    }
}

static int load(struct csvts *c, const char *text, const struct csvts_options *o, char *err)
{
    return csvts_load_buffer(c, "t.csv", text, strlen(text), o, err, 256);
}

static bool ts_is(const struct csvts *c, size_t i, const char *want)
{
    const struct csvts_row *r = &c->rows[i];
    return strlen(want) == r->ts_len && memcmp(c->text + r->ts_off, want, r->ts_len) == 0;
}

static void test_csv_basic(void)
{
    struct csvts c;
    char err[256] = "";

    /* CRLF, no final newline, extra columns ignored, blank line skipped. */
    int rc = load(&c,
                  "timestamp,value,other\r\n2015-02-26 21:42:53,35,x\r\n\r\n"
                  "2015-02-26 21:47:53,41,y",
                  NULL, err);
    CHECK(rc == 0, "crlf: %s", err);
    if (rc == 0) {
        CHECK(c.n == 2, "crlf rows %zu", c.n);
        CHECK(c.rows[0].t == INT64_C(1424986973000) && c.rows[0].v == 35, "row0");
        CHECK(c.rows[1].v == 41 && c.rows[1].line == 4, "row1 line %u", c.rows[1].line);
        CHECK(ts_is(&c, 0, "2015-02-26 21:42:53"), "raw ts");
        csvts_cleanup(&c);
    }

    /* Quoted fields: raw timestamp text keeps its quotes; "" escapes; a
     * quoted field may span lines (line numbers follow). */
    rc = load(&c,
              "\"timestamp\",\"value\",\"note\"\n\"1425008573\",\"7\",\"a,\"\"b\"\"\nc\"\n"
              "1425008574,8,\n",
              NULL, err);
    CHECK(rc == 0, "quoted: %s", err);
    if (rc == 0) {
        CHECK(c.n == 2, "quoted rows %zu", c.n);
        CHECK(ts_is(&c, 0, "\"1425008573\""), "quoted raw ts");
        CHECK(c.rows[0].t == INT64_C(1425008573000) && c.rows[0].v == 7, "quoted row0");
        CHECK(c.rows[1].line == 4, "line after multi-line field %u", c.rows[1].line);
        csvts_cleanup(&c);
    }

    /* Header case and blanks, byte-order mark. */
    rc = load(&c, "\xEF\xBB\xBF Timestamp , VALUE \n1,2\n", NULL, err);
    CHECK(rc == 0 && c.n == 1, "bom/case: %s", err);
    csvts_cleanup(&c);

    /* Header only: no rows, fine. */
    rc = load(&c, "timestamp,value\n", NULL, err);
    CHECK(rc == 0 && c.n == 0, "header only: %s", err);
    csvts_cleanup(&c);

    /* Missing values are rows too. */
    rc = load(&c, "timestamp,value\n1,\n2,NaN\n3,4\n", NULL, err);
    CHECK(rc == 0 && c.n == 3 && c.n_missing == 2, "missing: %s", err);
    if (rc == 0) {
        CHECK((c.rows[0].flags & CSVTS_MISSING) && isnan(c.rows[0].v), "missing flag");
        CHECK(!(c.rows[2].flags & CSVTS_MISSING) && c.rows[2].v == 4, "present value");
    }
    csvts_cleanup(&c);
    csvts_cleanup(NULL);
}

static void test_csv_errors(void)
{
    static const struct {
        const char *text;
        const char *want; /* substring of the message */
    } cases[] = {
        {"", "t.csv: empty file"},
        {"time,value\n1,2\n", "t.csv:1:1: header must start with `timestamp,value`"},
        {"value,timestamp\n1,2\n", "t.csv:1:1: header"},
        {"timestamp\n1\n", "t.csv:1:1: header"},
        {"1425008573,5\n1425008574,6\n", "t.csv:1:1: header"},
        {"timestamp,value\n1,2\n2,abc\n", "t.csv:3:3: value is not a number: \"abc\""},
        {"timestamp,value\n1,2\nyesterday,3\n", "t.csv:3:1: not a number or a date"},
        {"timestamp,value\n1,2\n3\n", "t.csv:3:1: want at least 2 columns"},
        {"timestamp,value\n\"1,2\n", "t.csv:2:1: unterminated quoted field"},
        {"timestamp,value\n\"1\"x,2\n", "t.csv:2:4: unexpected character after a closing quote"},
        {"timestamp,value\r\n1,2\r\n2015-02-30 00:00:00,1\r\n", "t.csv:3:1: no such date"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct csvts c;
        char err[256] = "";
        int rc = load(&c, cases[i].text, NULL, err);
        CHECK(rc == -1 && strstr(err, cases[i].want) != NULL,
              "case %zu: rc %d msg \"%s\" want \"%s\"", i, rc, err, cases[i].want);
        if (rc == 0)
            csvts_cleanup(&c);
    }
}

static void test_csv_skip_and_extra(void)
{
    struct csvts c;
    char err[256] = "";
    struct csvts_options o = {NULL, true, 0};

    int rc = load(&c, "timestamp,value\n10,1\nbad,2\n30,3\n", &o, err);
    CHECK(rc == 0, "skip: %s", err);
    if (rc == 0) {
        CHECK(c.n == 3 && c.n_bad == 1, "skip counts n %zu bad %zu", c.n, c.n_bad);
        CHECK(c.rows[1].flags & CSVTS_BAD, "bad row flagged");
        CHECK(c.rows[1].t == 10000, "bad row takes previous time, got %lld",
              (long long)c.rows[1].t);
        CHECK(strstr(c.first_bad, "t.csv:3:1:") != NULL, "first_bad \"%s\"", c.first_bad);
        csvts_cleanup(&c);
    }

    struct csvts_options x = {"anomaly_score", false, 0};
    rc = load(&c, "timestamp,value,foo,Anomaly_Score\n1,2,z,0.5\n2,3,z,\n3,4\n", &x, err);
    CHECK(rc == 0, "extra: %s", err);
    if (rc == 0) {
        CHECK(c.rows[0].extra == 0.5, "extra value %g", c.rows[0].extra);
        CHECK(c.rows[1].flags & CSVTS_EXTRA_MISSING, "empty extra");
        CHECK(c.rows[2].flags & CSVTS_EXTRA_MISSING, "short row extra");
        csvts_cleanup(&c);
    }
    rc = load(&c, "timestamp,value\n1,2\n", &x, err);
    CHECK(rc == -1 && strstr(err, "no column named `anomaly_score`"), "no extra column: %s", err);

    struct csvts_options small = {NULL, false, 10};
    rc = load(&c, "timestamp,value\n1,2\n", &small, err);
    CHECK(rc == -1 && strstr(err, "over the limit"), "size cap: %s", err);

    rc = csvts_load(&c, "/nonexistent/x.csv", NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "/nonexistent/x.csv: "), "missing file: %s", err);
}

/* The committed NAB copy parses completely. */
static void test_nab_file(void)
{
    const char *src = getenv("PROMCAST_SOURCE_DIR");
    char path[4096];
    struct csvts c;
    char err[512];
    if (!src)
        return;
    snprintf(path, sizeof path, "%s/tests/data/nab-dev/realAdExchange/exchange-2_cpc_results.csv",
             src);
    int rc = csvts_load(&c, path, NULL, err, sizeof err);
    CHECK(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK(c.n == 1624 && c.n_bad == 0 && c.n_missing == 0, "rows %zu", c.n);
        csvts_cleanup(&c);
    }
}

int main(void)
{
    test_parse_time();
    test_parse_value();
    test_csv_basic();
    test_csv_errors();
    test_csv_skip_and_extra();
    test_nab_file();
    return test_main_end("test_csvts");
}
