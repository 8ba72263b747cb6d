/* Unit tests for selfmetrics.c: registration rules, exact exposition text,
 * escaping, concurrency, the child cap, process metrics and promtool. */
#include "selfmetrics.h"
#include "testlib.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

/* For printing a possibly NULL render in a failure message. */
static const char *str(const char *s)
{
    return s ? s : "(null)";
}

static char *render(struct selfmetrics *r)
{
    char *text = NULL;
    size_t len = 0;
    if (selfmetrics_render(r, &text, &len) != 0)
        return NULL;
    CHECK(strlen(text) == len, "len %zu vs strlen %zu", len, strlen(text));
    return text;
}

/* Value of the first sample line that starts with `series` followed by a
 * space; NAN when absent. */
static double sample_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return NAN;
}

static double answer(void *ctx)
{
    return *(double *)ctx;
}

static void test_exact_small(void)
{
    struct selfmetrics *r = selfmetrics_create(0);
    struct selfmetrics_counter *a = selfmetrics_simple_counter(r, "a_total", "Plain counter.");
    static const char *const code[] = {"code"};
    struct selfmetrics_family *b = selfmetrics_register_counter(r, "b_total", "By code.", 1, code);
    struct selfmetrics_gauge *c = selfmetrics_simple_gauge(r, "c", "A gauge.");
    double forty_two = 42;
    CHECK(selfmetrics_register_callback(r, SELFMETRICS_GAUGE, "d", "Callback.", answer,
                                        &forty_two) == 0,
          "callback");
    static const double bounds[] = {0.1, 1};
    struct selfmetrics_histogram *e =
        selfmetrics_simple_histogram(r, "e_seconds", "Durations.", bounds, 2);
    CHECK(a && b && c && e, "registration failed");

    selfmetrics_counter_add(a, 3);
    selfmetrics_counter_inc(selfmetrics_counter_get(b, "500"));
    selfmetrics_counter_add(selfmetrics_counter_get(b, "200"), 7);
    selfmetrics_counter_inc(selfmetrics_counter_get(b, "500"));
    selfmetrics_gauge_set(c, 1.5);
    selfmetrics_histogram_observe(e, 0.0625);
    selfmetrics_histogram_observe(e, 0.5);
    selfmetrics_histogram_observe(e, 2);

    const char *want = "# HELP a_total Plain counter.\n"
                       "# TYPE a_total counter\n"
                       "a_total 3\n"
                       "# HELP b_total By code.\n"
                       "# TYPE b_total counter\n"
                       "b_total{code=\"200\"} 7\n"
                       "b_total{code=\"500\"} 2\n"
                       "# HELP c A gauge.\n"
                       "# TYPE c gauge\n"
                       "c 1.5\n"
                       "# HELP d Callback.\n"
                       "# TYPE d gauge\n"
                       "d 42\n"
                       "# HELP e_seconds Durations.\n"
                       "# TYPE e_seconds histogram\n"
                       "e_seconds_bucket{le=\"0.1\"} 1\n"
                       "e_seconds_bucket{le=\"1\"} 2\n"
                       "e_seconds_bucket{le=\"+Inf\"} 3\n"
                       "e_seconds_sum 2.5625\n"
                       "e_seconds_count 3\n";
    char *got = render(r);
    CHECK(got && strcmp(got, want) == 0, "rendered:\n%s\nwant:\n%s", str(got), want);
    free(got);

    /* After unregistering, the callback family is gone and never called. */
    CHECK(selfmetrics_unregister_callback(r, "d") == 0, "unregister");
    CHECK(selfmetrics_unregister_callback(r, "d") == -1, "second unregister");
    CHECK(selfmetrics_unregister_callback(r, "c") == -1, "unregister of a plain gauge");
    got = render(r);
    CHECK(got && !strstr(got, "\nd 42"), "callback still rendered:\n%s", str(got));
    free(got);
    selfmetrics_destroy(r);
}

static void test_labelled_histogram_and_values(void)
{
    struct selfmetrics *r = selfmetrics_create(0);
    static const char *const names[] = {"path", "method"};
    static const double bounds[] = {0.001, 0.5, INFINITY};
    struct selfmetrics_family *f =
        selfmetrics_register_histogram(r, "req_seconds", "Req.", 2, names, bounds, 3);
    struct selfmetrics_histogram *h = selfmetrics_histogram_get(f, "/x", "GET");
    selfmetrics_histogram_observe(h, 0.001); /* le is inclusive */
    selfmetrics_histogram_observe(h, NAN);   /* only in +Inf */
    selfmetrics_histogram_observe(selfmetrics_histogram_get(f, "/x", "GET"), 0.75);
    CHECK(selfmetrics_histogram_count(h) == 3, "count %llu",
          (unsigned long long)selfmetrics_histogram_count(h));
    CHECK(isnan(selfmetrics_histogram_sum(h)), "sum with NaN %g", selfmetrics_histogram_sum(h));

    const char *want = "# HELP req_seconds Req.\n"
                       "# TYPE req_seconds histogram\n"
                       "req_seconds_bucket{path=\"/x\",method=\"GET\",le=\"0.001\"} 1\n"
                       "req_seconds_bucket{path=\"/x\",method=\"GET\",le=\"0.5\"} 1\n"
                       "req_seconds_bucket{path=\"/x\",method=\"GET\",le=\"+Inf\"} 3\n"
                       "req_seconds_sum{path=\"/x\",method=\"GET\"} NaN\n"
                       "req_seconds_count{path=\"/x\",method=\"GET\"} 3\n";
    char *got = render(r);
    CHECK(got && strcmp(got, want) == 0, "rendered:\n%s\nwant:\n%s", str(got), want);
    free(got);

    /* Float formatting: shortest round-trip text, Prometheus spellings. */
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {1e-05, "1e-05"},
        {-2.5, "-2.5"},
        {123456789, "1.23456789e+08"},
        {1.0 / 3, "0.3333333333333333"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
        {0, "0"},
        {1e300, "1e+300"},
        {999999, "999999"},
        {1e6, "1e+06"},
        {0.0001, "0.0001"},
        {10, "10"},
        {1e-300, "1e-300"},
        {-0.0, "-0"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {0.1 + 0.2, "0.30000000000000004"},
    };
    struct selfmetrics_gauge *g = selfmetrics_simple_gauge(r, "zz_value", "V.");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        selfmetrics_gauge_set(g, cases[i].v);
        got = render(r);
        char line[64];
        snprintf(line, sizeof line, "\nzz_value %s\n", cases[i].text);
        CHECK(got && strstr(got, line), "value %.17g: want %s in\n%s", cases[i].v, cases[i].text,
              str(got));
        free(got);
    }

    /* Integer counters print exactly past 2^53; doubles add on top. */
    struct selfmetrics_counter *big = selfmetrics_simple_counter(r, "big_total", "B.");
    selfmetrics_counter_add(big, (1ull << 53) + 1);
    got = render(r);
    CHECK(got && strstr(got, "\nbig_total 9007199254740993\n"), "big counter:\n%s", str(got));
    free(got);
    struct selfmetrics_counter *mixed = selfmetrics_simple_counter(r, "mixed_total", "M.");
    selfmetrics_counter_add(mixed, 2);
    selfmetrics_counter_add_double(mixed, 0.25);
    selfmetrics_counter_add_double(mixed, -5);  /* ignored */
    selfmetrics_counter_add_double(mixed, NAN); /* ignored */
    CHECK(selfmetrics_counter_value(mixed) == 2.25, "mixed %g", selfmetrics_counter_value(mixed));
    got = render(r);
    CHECK(got && strstr(got, "\nmixed_total 2.25\n"), "mixed counter:\n%s", str(got));
    free(got);

    struct selfmetrics_gauge *gg = selfmetrics_simple_gauge(r, "gg", "G.");
    selfmetrics_gauge_inc(gg);
    selfmetrics_gauge_inc(gg);
    selfmetrics_gauge_dec(gg);
    selfmetrics_gauge_add(gg, 0.5);
    CHECK(selfmetrics_gauge_value(gg) == 1.5, "gauge %g", selfmetrics_gauge_value(gg));

    /* NULL handles are no-ops everywhere. */
    selfmetrics_counter_inc(NULL);
    selfmetrics_counter_add(NULL, 1);
    selfmetrics_counter_add_double(NULL, 1);
    selfmetrics_gauge_set(NULL, 1);
    selfmetrics_gauge_add(NULL, 1);
    selfmetrics_histogram_observe(NULL, 1);
    CHECK(selfmetrics_counter_value(NULL) == 0 && selfmetrics_gauge_value(NULL) == 0 &&
              selfmetrics_histogram_count(NULL) == 0,
          "NULL getters");
    selfmetrics_destroy(r);
    selfmetrics_destroy(NULL);
}

static void test_escaping(void)
{
    struct selfmetrics *r = selfmetrics_create(0);
    static const char *const names[] = {"v"};
    struct selfmetrics_family *f = selfmetrics_register_gauge(
        r, "esc", "Help with \\ backslash, \"quotes\"\nand a newline.", 1, names);
    selfmetrics_gauge_set(selfmetrics_gauge_get(f, "a\\b\"c\nd"), 1);
    selfmetrics_gauge_set(selfmetrics_gauge_get(f, ""), 2);
    selfmetrics_gauge_set(selfmetrics_gauge_get(f, NULL), 3); /* same child as "" */
    selfmetrics_gauge_set(selfmetrics_gauge_get(f, "caf\xc3\xa9"), 4);
    const char *want = "# HELP esc Help with \\\\ backslash, \"quotes\"\\nand a newline.\n"
                       "# TYPE esc gauge\n"
                       "esc{v=\"\"} 3\n"
                       "esc{v=\"a\\\\b\\\"c\\nd\"} 1\n"
                       "esc{v=\"caf\xc3\xa9\"} 4\n";
    char *got = render(r);
    CHECK(got && strcmp(got, want) == 0, "rendered:\n%s\nwant:\n%s", str(got), want);
    free(got);
    selfmetrics_destroy(r);
}

static void test_registration_rules(void)
{
    struct selfmetrics *r = selfmetrics_create(0);
    static const char *const one[] = {"a"};
    static const char *const two_same[] = {"a", "a"};
    static const char *const reserved[] = {"__a"};
    static const char *const le[] = {"le"};
    static const char *const bad[] = {"1a"};
    static const char *const five[] = {"a", "b", "c", "d", "e"};
    static const double ok_bounds[] = {1, 2};
    static const double bad_bounds[] = {2, 1};
    static const double nan_bounds[] = {NAN};
    static const double inf_only[] = {INFINITY};

    CHECK(!selfmetrics_register_counter(r, "no_suffix", "h", 0, NULL), "counter without _total");
    CHECK(!selfmetrics_register_gauge(r, "g_total", "h", 0, NULL), "gauge with _total");
    CHECK(!selfmetrics_register_histogram(r, "h_total", "h", 0, NULL, ok_bounds, 2),
          "histogram with _total");
    CHECK(!selfmetrics_register_gauge(r, "", "h", 0, NULL), "empty name");
    CHECK(!selfmetrics_register_gauge(r, "9x", "h", 0, NULL), "name starting with a digit");
    CHECK(!selfmetrics_register_gauge(r, "a-b", "h", 0, NULL), "dash in name");
    CHECK(!selfmetrics_register_gauge(r, "g", NULL, 0, NULL), "NULL help");
    CHECK(!selfmetrics_register_gauge(r, "g", "bad \xff utf8", 0, NULL), "invalid UTF-8 help");
    CHECK(!selfmetrics_register_gauge(r, "g", "h", 2, two_same), "duplicate label names");
    CHECK(!selfmetrics_register_gauge(r, "g", "h", 1, reserved), "reserved label name");
    CHECK(!selfmetrics_register_gauge(r, "g", "h", 1, bad), "invalid label name");
    CHECK(!selfmetrics_register_gauge(r, "g", "h", 5, five), "too many labels");
    CHECK(!selfmetrics_register_histogram(r, "h", "h", 1, le, ok_bounds, 2), "le on histogram");
    CHECK(!selfmetrics_register_histogram(r, "h", "h", 0, NULL, bad_bounds, 2),
          "decreasing bounds");
    CHECK(!selfmetrics_register_histogram(r, "h", "h", 0, NULL, nan_bounds, 1), "NaN bound");
    CHECK(!selfmetrics_register_histogram(r, "h", "h", 0, NULL, inf_only, 1), "only +Inf");
    CHECK(!selfmetrics_register_histogram(r, "h", "h", 0, NULL, NULL, 0), "no bounds");
    CHECK(selfmetrics_register_callback(r, SELFMETRICS_HISTOGRAM, "cb", "h", answer, NULL) == -1,
          "histogram callback");
    CHECK(selfmetrics_register_callback(r, SELFMETRICS_GAUGE, "cb", "h", NULL, NULL) == -1,
          "NULL callback");
    CHECK(!selfmetrics_register_counter(NULL, "x_total", "h", 0, NULL), "NULL registry");

    /* The same definition twice is one family; a different one conflicts. */
    struct selfmetrics_family *f1 = selfmetrics_register_gauge(r, "g", "h", 1, one);
    struct selfmetrics_family *f2 = selfmetrics_register_gauge(r, "g", "h", 1, one);
    CHECK(f1 && f1 == f2, "idempotent registration gave %p and %p", (void *)f1, (void *)f2);
    CHECK(!selfmetrics_register_gauge(r, "g", "other help", 1, one), "help conflict");
    CHECK(!selfmetrics_register_gauge(r, "g", "h", 0, NULL), "label conflict");
    CHECK(selfmetrics_register_counter(r, "g_total", "h", 1, one) != NULL, "new counter");
    CHECK(!selfmetrics_register_histogram(r, "g", "h", 1, one, ok_bounds, 2), "type conflict");
    CHECK(selfmetrics_register_callback(r, SELFMETRICS_GAUGE, "g", "h", answer, NULL) == -1,
          "callback over a plain family");

    /* Handles of the wrong type are refused, not reinterpreted. */
    CHECK(!selfmetrics_counter_get(f1, "x"), "counter handle from a gauge family");
    CHECK(!selfmetrics_histogram_get(f1, "x"), "histogram handle from a gauge family");
    CHECK(!selfmetrics_gauge_get(NULL), "NULL family");
    const char *vals[] = {"x"};
    CHECK(selfmetrics_gauge_getv(f1, vals) == selfmetrics_gauge_get(f1, "x"), "getv vs get");

    /* Process and build info registration are idempotent. */
    CHECK(selfmetrics_register_process(r) == 0, "process");
    CHECK(selfmetrics_register_process(r) == 0, "process twice");
    CHECK(selfmetrics_register_build_info(r, "1.2.3", "abc1234") == 0, "build info");
    CHECK(selfmetrics_register_build_info(r, "1.2.3", "abc1234") == 0, "build info twice");
    char *got = render(r);
    CHECK(got &&
              strstr(got, "promcast_build_info{version=\"1.2.3\",revision=\"abc1234\",compiler="),
          "build info:\n%s", str(got));
    CHECK(got && strstr(got, "# TYPE process_cpu_seconds_total counter\n"), "process:\n%s",
          str(got));
    free(got);
    selfmetrics_destroy(r);
}

static void test_cap(void)
{
    struct selfmetrics *r = selfmetrics_create(3);
    static const char *const names[] = {"reason"};
    struct selfmetrics_family *f = selfmetrics_register_counter(r, "x_total", "X.", 1, names);
    struct selfmetrics_counter *c[3];
    c[0] = selfmetrics_counter_get(f, "a");
    c[1] = selfmetrics_counter_get(f, "b");
    c[2] = selfmetrics_counter_get(f, "c");
    CHECK(c[0] && c[1] && c[2], "children under the cap");
    CHECK(!selfmetrics_counter_get(f, "d"), "child over the cap");
    selfmetrics_counter_inc(selfmetrics_counter_get(f, "e")); /* goes nowhere */
    CHECK(selfmetrics_counter_get(f, "a") == c[0], "existing child still found over the cap");
    char toolong[SELFMETRICS_MAX_LABEL_VALUE_BYTES + 2];
    memset(toolong, 'x', sizeof toolong - 1);
    toolong[sizeof toolong - 1] = '\0';
    selfmetrics_set_max_children(r, 100);
    CHECK(!selfmetrics_counter_get(f, "bad \xc3\x28"), "invalid UTF-8 value");
    CHECK(!selfmetrics_counter_get(f, "\xed\xa0\x80"), "surrogate value");
    CHECK(!selfmetrics_counter_get(f, "\xc0\xaf"), "overlong value");
    CHECK(!selfmetrics_counter_get(f, toolong), "over-long value");
    toolong[SELFMETRICS_MAX_LABEL_VALUE_BYTES] = '\0';
    CHECK(selfmetrics_counter_get(f, toolong) != NULL, "value of exactly the maximum length");
    CHECK(selfmetrics_counter_get(f, "d") != NULL, "child after raising the cap");

    char *got = render(r);
    const char *want = "promcast_selfmetrics_dropped_children_total{family=\"x_total\"} 6\n";
    CHECK(got && strstr(got, want), "want %s in:\n%s", want, str(got));
    CHECK(got && !strstr(got, "x_total{reason=\"e\"}"), "dropped child rendered:\n%s", str(got));
    free(got);
    selfmetrics_destroy(r);
}

/* ---- concurrency ---------------------------------------------------------- */

#define THREADS 4
#define ITERS   50000

struct shared {
    struct selfmetrics_counter *ints;
    struct selfmetrics_counter *halves;
    struct selfmetrics_gauge *gauge;
    struct selfmetrics_histogram *hist;
    struct selfmetrics_family *lazy;
};

static void *worker(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < ITERS; i++) {
        selfmetrics_counter_inc(s->ints);
        selfmetrics_counter_add_double(s->halves, 0.5);
        selfmetrics_gauge_add(s->gauge, (i & 1) ? 1 : -1);
        selfmetrics_histogram_observe(s->hist, (double)(i % 4));
        /* Lazy lookup-or-create racing with the other threads. */
        char v[8];
        snprintf(v, sizeof v, "r%d", i % 16);
        selfmetrics_counter_inc(selfmetrics_counter_get(s->lazy, v));
    }
    return NULL;
}

static void test_concurrency(void)
{
    struct selfmetrics *r = selfmetrics_create(0);
    static const double bounds[] = {0.5, 1.5, 2.5};
    static const char *const names[] = {"reason"};
    struct shared s = {
        .ints = selfmetrics_simple_counter(r, "ints_total", "I."),
        .halves = selfmetrics_simple_counter(r, "halves_total", "H."),
        .gauge = selfmetrics_simple_gauge(r, "level", "L."),
        .hist = selfmetrics_simple_histogram(r, "obs", "O.", bounds, 3),
        .lazy = selfmetrics_register_counter(r, "lazy_total", "L.", 1, names),
    };
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, &s);
    /* Render while the workers run: must not crash or tear lines. */
    for (int i = 0; i < 5; i++) {
        char *text = render(r);
        CHECK(text != NULL, "render during updates");
        free(text);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);

    double n = (double)THREADS * ITERS;
    CHECK(selfmetrics_counter_value(s.ints) == n, "ints %.17g", selfmetrics_counter_value(s.ints));
    CHECK(selfmetrics_counter_value(s.halves) == n / 2, "halves %.17g",
          selfmetrics_counter_value(s.halves));
    CHECK(selfmetrics_gauge_value(s.gauge) == 0, "gauge %.17g", selfmetrics_gauge_value(s.gauge));
    CHECK(selfmetrics_histogram_count(s.hist) == (uint64_t)n, "hist count %llu",
          (unsigned long long)selfmetrics_histogram_count(s.hist));
    /* values 0,1,2,3 equally often: sum = n/4 * 6 */
    CHECK(selfmetrics_histogram_sum(s.hist) == n / 4 * 6, "hist sum %.17g",
          selfmetrics_histogram_sum(s.hist));
    char *text = render(r);
    CHECK(text && strstr(text, "obs_bucket{le=\"0.5\"} 50000\n") &&
              strstr(text, "obs_bucket{le=\"1.5\"} 100000\n") &&
              strstr(text, "obs_bucket{le=\"2.5\"} 150000\n") &&
              strstr(text, "obs_bucket{le=\"+Inf\"} 200000\n"),
          "buckets:\n%s", str(text));
    for (int i = 0; i < 16; i++) {
        char series[64];
        snprintf(series, sizeof series, "lazy_total{reason=\"r%d\"}", i);
        double v = text ? sample_value(text, series) : NAN;
        CHECK(v == (double)THREADS * ITERS / 16, "%s = %g", series, v);
    }
    /* Each label value got exactly one child, in sorted order. */
    const char *r10 = text ? strstr(text, "reason=\"r10\"") : NULL;
    const char *r9 = text ? strstr(text, "reason=\"r9\"") : NULL;
    CHECK(r10 && r9 && r10 < r9 && !strstr(r10 + 1, "reason=\"r10\""), "child order:\n%s",
          str(text));
    free(text);
    selfmetrics_destroy(r);
}

/* ---- process metrics and promtool ---------------------------------------- */

static void test_process(void)
{
    struct selfmetrics *r = selfmetrics_create(0);
    CHECK(selfmetrics_register_process(r) == 0, "register");
    char *text = render(r);
    CHECK(text != NULL, "render");
    if (!text)
        goto out;
    double rss = sample_value(text, "process_resident_memory_bytes");
    double vsz = sample_value(text, "process_virtual_memory_bytes");
    double start = sample_value(text, "process_start_time_seconds");
    double fds = sample_value(text, "process_open_fds");
    double maxfds = sample_value(text, "process_max_fds");
    double cpu = sample_value(text, "process_cpu_seconds_total");
    double threads = sample_value(text, "process_threads");
    double vmax = sample_value(text, "process_virtual_memory_max_bytes");
    double now = (double)time(NULL);
    CHECK(rss > 0, "rss %g", rss);
    CHECK(vsz >= rss, "vsize %g rss %g", vsz, rss);
    /* Plausibility, not timing: this process started within the last day. */
    CHECK(start > now - 86400 && start < now + 60, "start %f now %f", start, now);
    CHECK(fds >= 3, "open fds %g", fds); /* stdin, stdout, stderr */
    CHECK(maxfds >= fds, "max fds %g", maxfds);
    CHECK(cpu >= 0, "cpu %g", cpu);
    CHECK(threads >= 1, "threads %g", threads);
    CHECK(vmax > 0, "virtual max %g", vmax);
    CHECK(strstr(text, "# HELP process_start_time_seconds Start time of the process since unix "
                       "epoch in seconds.\n# TYPE process_start_time_seconds gauge\n"),
          "help/type:\n%s", str(text));
out:
    free(text);
    selfmetrics_destroy(r);
}

static double series_count(void *ctx)
{
    (void)ctx;
    return 12345;
}

static void test_promtool(void)
{
    struct selfmetrics *r = selfmetrics_create(0);
    selfmetrics_register_process(r);
    selfmetrics_register_build_info(r, NULL, NULL);
    static const char *const proto[] = {"protocol"};
    static const char *const reason[] = {"reason"};
    static const char *const url_reason[] = {"url", "reason"};
    static const double dur[] = SELFMETRICS_DURATION_BUCKETS;
    struct selfmetrics_family *recv = selfmetrics_register_counter(
        r, "promcast_samples_received_total", "Samples decoded from remote write.", 1, proto);
    selfmetrics_counter_add(selfmetrics_counter_get(recv, "v1"), 1000);
    selfmetrics_counter_add(selfmetrics_counter_get(recv, "v2"), 5);
    struct selfmetrics_family *rej = selfmetrics_register_counter(
        r, "promcast_rejected_requests_total", "Requests rejected, by reason.", 1, reason);
    selfmetrics_counter_inc(selfmetrics_counter_get(rej, "too_large"));
    selfmetrics_counter_inc(selfmetrics_counter_get(rej, "weird \"value\"\\\nwith newline"));
    struct selfmetrics_family *drop = selfmetrics_register_counter(
        r, "promcast_remote_write_samples_dropped_total", "Samples dropped.", 2, url_reason);
    selfmetrics_counter_add(
        selfmetrics_counter_get(drop, "http://127.0.0.1:9090/api/v1/write", "http_4xx"), 7);
    selfmetrics_register_callback(r, SELFMETRICS_GAUGE, "promcast_series_active",
                                  "Series in the index.", series_count, NULL);
    struct selfmetrics_family *dec = selfmetrics_register_histogram(
        r, "promcast_decode_duration_seconds", "Time to decode a write request.", 1, proto, dur,
        sizeof dur / sizeof dur[0]);
    for (int i = 0; i < 100; i++)
        selfmetrics_histogram_observe(selfmetrics_histogram_get(dec, "v1"), i * 0.0013);
    selfmetrics_histogram_get(dec, "v2");
    struct selfmetrics_gauge *g = selfmetrics_simple_gauge(r, "promcast_odd_values", "Odd.\\ok");
    selfmetrics_gauge_set(g, NAN);
    /* Provoke a dropped child so that family is rendered too. */
    selfmetrics_set_max_children(r, 2);
    selfmetrics_counter_get(recv, "v3");

    char *text = render(r);
    CHECK(text != NULL, "render");
    if (!text)
        goto out;
    CHECK(strstr(text, "promcast_selfmetrics_dropped_children_total{family="
                       "\"promcast_samples_received_total\"} 1\n"),
          "dropped:\n%s", str(text));
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        printf("test_selfmetrics: promtool not on PATH, skipping promtool check\n");
        goto out;
    }
    char path[] = "/tmp/test_selfmetrics_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0)
        goto out;
    size_t len = strlen(text);
    CHECK(write(fd, text, len) == (ssize_t)len, "write");
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    char output[4096] = "";
    size_t n = p ? fread(output, 1, sizeof output - 1, p) : 0;
    output[n] = '\0';
    int status = p ? pclose(p) : -1;
    CHECK(status == 0 && n == 0, "promtool status %d output:\n%s\ninput:\n%s", status, output,
          text);
    unlink(path);
out:
    free(text);
    selfmetrics_destroy(r);
}

static void test_default_registry(void)
{
    struct selfmetrics *d = selfmetrics_default();
    CHECK(d && d == selfmetrics_default(), "default registry is one object");
    char *text = render(d);
    CHECK(text && strstr(text, "\npromcast_build_info{version=\"" PROMCAST_VERSION "\""),
          "build info:\n%s", str(text));
    CHECK(text && strstr(text, "process_resident_memory_bytes "), "process:\n%s", str(text));
    free(text);
}

static void test_empty(void)
{
    struct selfmetrics *r = selfmetrics_create(0);
    char *text = (char *)"untouched";
    size_t len = 99;
    CHECK(selfmetrics_render(r, &text, &len) == 0 && len == 0 && text && text[0] == '\0',
          "empty registry renders \"\" (len %zu)", len);
    free(text);
    CHECK(selfmetrics_render(NULL, &text, &len) == -1, "NULL registry");
    selfmetrics_destroy(r);
}

int main(void)
{
    test_exact_small();
    test_labelled_histogram_and_values();
    test_escaping();
    test_registration_rules();
    test_cap();
    test_concurrency();
    test_process();
    test_promtool();
    test_default_registry();
    test_empty();
    return test_main_end("test_selfmetrics");
}
