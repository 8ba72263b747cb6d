/* Unit tests for log.c: logfmt and JSON line format, quoting and escaping,
 * truncation of long lines, level filtering, and the rate limiter. */
#include "log.h"
#include "testlib.h"

#include "clock.h"

#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

/* stderr is redirected into a temporary file while a test logs, and the
 * captured bytes are read back after restoring it (CHECK writes to stderr). */
static int saved_stderr = -1;
static FILE *capture_file;

static void capture_start(void)
{
    fflush(stderr);
    capture_file = tmpfile();
    saved_stderr = dup(STDERR_FILENO);
    if (capture_file)
        dup2(fileno(capture_file), STDERR_FILENO);
}

/* Returns the captured text (malloc'd, NUL-terminated; "" on failure). */
static char *capture_end(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    char *text = calloc(1, 1);
    if (!capture_file)
        return text;
    off_t n = lseek(fileno(capture_file), 0, SEEK_END);
    if (n > 0) {
        char *grown = realloc(text, (size_t)n + 1);
        if (grown) {
            text = grown;
            ssize_t got = pread(fileno(capture_file), text, (size_t)n, 0);
            text[got > 0 ? got : 0] = '\0';
        }
    }
    fclose(capture_file);
    capture_file = NULL;
    return text;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* "2026-12-04T20:18:03.123Z": digits where digits go, the separators exact. */
static bool timestamp_ok(const char *ts)
{
    const char *pattern = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; pattern[i]; i++) {
        if (pattern[i] == 'd' ? !(ts[i] >= '0' && ts[i] <= '9') : ts[i] != pattern[i])
            return false;
    }
    return true;
}

/* A one-line flat JSON object of string values: {"k":"v",...}\n, with
 * only valid escapes and no raw control characters. */
static bool flat_json_ok(const char *s)
{
    if (*s++ != '{')
        return false;
    for (;;) {
        for (int part = 0; part < 2; part++) { /* key, then value */
            if (*s++ != '"')
                return false;
            while (*s != '"') {
                unsigned char c = (unsigned char)*s;
                if (c < 0x20)
                    return false;
                if (c == '\\') {
                    s++;
                    if (*s == 'u') {
                        for (int k = 1; k <= 4; k++)
                            if (!strchr("0123456789abcdefABCDEF", s[k]) || !s[k])
                                return false;
                        s += 4;
                    } else if (!*s || !strchr("\"\\/bfnrt", *s)) {
                        return false;
                    }
                }
                s++;
            }
            s++;
            if (part == 0 && *s++ != ':')
                return false;
        }
        if (*s == ',') {
            s++;
            continue;
        }
        return s[0] == '}' && s[1] == '\n' && s[2] == '\0';
    }
}

/* A logfmt line: key=value pairs split by one space, values bare (no space,
 * quote, '=' or control byte) or quoted with only valid escapes; then \n. */
static bool logfmt_ok(const char *s)
{
    for (;;) {
        if (!strchr("abcdefghijklmnopqrstuvwxyz_", *s) || !*s)
            return false;
        while (*s && *s != '=')
            s++;
        if (*s++ != '=')
            return false;
        if (*s == '"') {
            for (s++; *s != '"'; s++) {
                if (!*s || (unsigned char)*s < 0x20)
                    return false;
                if (*s == '\\') {
                    s++;
                    if (*s == 'u') {
                        for (int k = 1; k <= 4; k++)
                            if (!s[k] || !strchr("0123456789abcdef", s[k]))
                                return false;
                        s += 4;
                    } else if (!*s || !strchr("\"\\nt", *s)) {
                        return false;
                    }
                }
            }
            s++;
        } else {
            while (*s && *s != ' ' && *s != '\n') {
                if ((unsigned char)*s < 0x20 || *s == '"' || *s == '=')
                    return false;
                s++;
            }
        }
        if (*s == '\n')
            return s[1] == '\0';
        if (*s++ != ' ')
            return false;
    }
}

static void test_logfmt_line(void)
{
    log_setup(LOG_DEBUG, LOG_FORMAT_LOGFMT);
    capture_start();
    log_emit(LOG_WARN, "/src/promcast/src/http.c", 120, "request rejected", "reason", "too_large",
             "remote", "127.0.0.1:5555", (const char *)0);
    char *got = capture_end();
    CHECK(strncmp(got, "ts=", 3) == 0 && timestamp_ok(got + 3), "timestamp in %s", got);
    const char *rest = strlen(got) > 27 ? got + 27 : "";
    const char *want = " level=warn caller=http.c:120 msg=\"request rejected\" reason=too_large "
                       "remote=127.0.0.1:5555\n";
    CHECK(strcmp(rest, want) == 0, "got  %swant%s", rest, want);
    CHECK(logfmt_ok(got), "not logfmt: %s", got);
    free(got);

    static const struct {
        const char *value;
        const char *want;
    } cases[] = {
        {"plain", "k=plain\n"},
        {"two words", "k=\"two words\"\n"},
        {"say \"hi\"", "k=\"say \\\"hi\\\"\"\n"},
        {"line1\nline2", "k=\"line1\\nline2\"\n"},
        {"a=b", "k=\"a=b\"\n"},
        {"", "k=\"\"\n"},
        {"back\\slash", "k=back\\slash\n"},
        {"quoted \\ back", "k=\"quoted \\\\ back\"\n"},
        {"tab\there", "k=\"tab\\there\"\n"},
        {"ctl\x01", "k=\"ctl\\u0001\"\n"},
        {"caf\xc3\xa9", "k=\"caf\xc3\xa9\"\n"},
        {"bad\xff", "k=\"bad\xef\xbf\xbd\"\n"}, /* invalid UTF-8 becomes U+FFFD */
        {"cut\xe2\x82", "k=\"cut\xef\xbf\xbd\xef\xbf\xbd\"\n"},
        {NULL, "k=\"\"\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        capture_start();
        log_emit(LOG_INFO, "x.c", 1, "m", "k", cases[i].value, (const char *)0);
        got = capture_end();
        const char *tail = strstr(got, " k=");
        CHECK(tail && strcmp(tail + 1, cases[i].want) == 0, "value [%s]: got %s want %s",
              cases[i].value ? cases[i].value : "(null)", got, cases[i].want);
        CHECK(logfmt_ok(got), "not logfmt: %s", got);
        free(got);
    }
}

static void test_json_line(void)
{
    log_setup(LOG_INFO, LOG_FORMAT_JSON);
    capture_start();
    log_emit(LOG_ERROR, "dir/wire.c", 7, "decode \"failed\"", "err", "bad\nvarint", "empty", "",
             "bs", "a\\b", "ctl", "\x1f", "utf8", "caf\xc3\xa9", "bad", "x\xc0y", (const char *)0);
    char *got = capture_end();
    CHECK(strncmp(got, "{\"ts\":\"", 7) == 0 && timestamp_ok(got + 7), "timestamp in %s", got);
    const char *rest = strlen(got) > 31 ? got + 31 : "";
    const char *want =
        "\",\"level\":\"error\",\"caller\":\"wire.c:7\",\"msg\":\"decode \\\"failed\\\"\","
        "\"err\":\"bad\\nvarint\",\"empty\":\"\",\"bs\":\"a\\\\b\",\"ctl\":\"\\u001f\","
        "\"utf8\":\"caf\xc3\xa9\",\"bad\":\"x\xef\xbf\xbdy\"}\n";
    CHECK(strcmp(rest, want) == 0, "got  %swant %s", rest, want);
    CHECK(flat_json_ok(got), "not a flat JSON object: %s", got);
    free(got);
}

/* Lines are capped at one buffer; what is cut must still be a well-formed
 * line (closing quote, brace, newline), whatever was being escaped. */
static void test_truncation(void)
{
    static char big[10000];
    static const char fill[] = {'x', '"', '\n', '\\', '\x01'};
    for (int format = 0; format < 2; format++) {
        for (size_t f = 0; f < sizeof fill; f++) {
            for (size_t len = 4050; len < 4110; len += 7) {
                memset(big, fill[f], sizeof big);
                big[sizeof big - 1] = '\0';
                log_setup(LOG_INFO, (enum log_format)format);
                capture_start();
                /* The pad shifts where the cut falls inside an escape. */
                const char *end = big + sizeof big - 1;
                log_emit(LOG_INFO, "t.c", 1, "long", "pad", end - len % 5, "v", end - len, "after",
                         "tail", (const char *)0);
                char *got = capture_end();
                size_t n = strlen(got);
                CHECK(n > 0 && n <= 4096 && got[n - 1] == '\n' && count_lines(got) == 1,
                      "format %d fill %d len %zu: %zu bytes", format, fill[f], len, n);
                bool ok = format == LOG_FORMAT_JSON ? flat_json_ok(got) : logfmt_ok(got);
                CHECK(ok, "format %d fill %d len %zu: malformed line ending ...%s", format, fill[f],
                      len, n > 60 ? got + n - 60 : got);
                /* The cut keeps what fits of the long value. */
                CHECK(n > 4000, "format %d fill %d: only %zu bytes kept", format, fill[f], n);
                free(got);
            }
        }
    }
}

static void test_levels(void)
{
    CHECK(log_parse_level("debug") == LOG_DEBUG && log_parse_level("info") == LOG_INFO &&
              log_parse_level("warn") == LOG_WARN && log_parse_level("error") == LOG_ERROR,
          "parse levels");
    CHECK(log_parse_level("warning") == -1 && log_parse_level("") == -1, "unknown level");
    CHECK(log_parse_format("logfmt") == LOG_FORMAT_LOGFMT &&
              log_parse_format("json") == LOG_FORMAT_JSON && log_parse_format("text") == -1,
          "parse formats");

    log_setup(LOG_WARN, LOG_FORMAT_LOGFMT);
    CHECK(!log_enabled(LOG_DEBUG) && !log_enabled(LOG_INFO), "below warn enabled");
    CHECK(log_enabled(LOG_WARN) && log_enabled(LOG_ERROR), "warn/error disabled");
    capture_start();
    log_debug("hidden debug");
    log_info("hidden info", "k", "v");
    log_warn("shown warn");
    log_error("shown error", "k", "v");
    char *got = capture_end();
    CHECK(count_lines(got) == 2 && strstr(got, "level=warn") && strstr(got, "level=error") &&
              !strstr(got, "hidden"),
          "filtered output:\n%s", got);
    /* The macros record this file as the caller. */
    CHECK(strstr(got, "caller=test_log.c:"), "caller in %s", got);
    free(got);

    log_setup(LOG_DEBUG, LOG_FORMAT_LOGFMT);
    capture_start();
    log_debug("now shown");
    got = capture_end();
    CHECK(strstr(got, "level=debug") && strstr(got, "msg=\"now shown\""), "debug line: %s", got);
    free(got);

    char buf[24];
    CHECK(strcmp(log_fmt_u64(buf, sizeof buf, UINT64_MAX), "18446744073709551615") == 0,
          "fmt_u64 %s", buf);
}

static void test_ratelimit_counting(void)
{
    /* An interval longer than any uptime: the first window never ends on
     * its own, so the counts do not depend on timing. */
    const int64_t forever = INT64_MAX / 4;
    struct log_ratelimit rl = LOG_RATELIMIT_INIT;
    uint64_t sup = 99;
    for (int i = 0; i < 3; i++) {
        CHECK(log_ratelimit_allow(&rl, forever, 3, &sup), "call %d within burst denied", i);
        CHECK(sup == 0, "call %d suppressed %llu", i, (unsigned long long)sup);
    }
    for (int i = 0; i < 7; i++)
        CHECK(!log_ratelimit_allow(&rl, forever, 3, &sup), "call %d over burst allowed", i + 3);

    /* End the window by moving its start back, as if the interval passed. */
    atomic_store(&rl.window_start_ms, clock_mono_ms() - forever - 1);
    CHECK(log_ratelimit_allow(&rl, forever, 3, &sup), "first call of a new window denied");
    CHECK(sup == 7, "suppressed reported %llu, want 7", (unsigned long long)sup);
    CHECK(log_ratelimit_allow(&rl, forever, 3, &sup) && sup == 0, "second call: sup %llu",
          (unsigned long long)sup);
    CHECK(log_ratelimit_allow(&rl, forever, 3, &sup) && sup == 0, "third call");
    CHECK(!log_ratelimit_allow(&rl, forever, 3, &sup), "fourth call of the window allowed");

    /* A zero interval starts a new window at every call: never limited. */
    struct log_ratelimit open = LOG_RATELIMIT_INIT;
    for (int i = 0; i < 20; i++)
        CHECK(log_ratelimit_allow(&open, 0, 1, &sup) && sup == 0, "zero interval call %d", i);

    /* burst 0 suppresses everything. */
    struct log_ratelimit closed = LOG_RATELIMIT_INIT;
    CHECK(!log_ratelimit_allow(&closed, forever, 0, &sup), "burst 0 allowed");
}

struct rl_shared {
    struct log_ratelimit rl;
    _Atomic uint64_t allowed;
    _Atomic uint64_t reported;
};

static void *rl_worker(void *arg)
{
    struct rl_shared *s = arg;
    for (int i = 0; i < 2000; i++) {
        uint64_t sup;
        if (log_ratelimit_allow(&s->rl, INT64_MAX / 4, 10, &sup)) {
            atomic_fetch_add(&s->allowed, 1);
            atomic_fetch_add(&s->reported, sup);
        }
    }
    return NULL;
}

static void test_ratelimit_threads(void)
{
    struct rl_shared s = {LOG_RATELIMIT_INIT, 0, 0};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, rl_worker, &s);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    uint64_t allowed = atomic_load(&s.allowed);
    uint64_t left = atomic_load(&s.rl.suppressed);
    CHECK(allowed == 10, "allowed %llu of 8000 with burst 10", (unsigned long long)allowed);
    /* Every denied call is either reported by an allowed one or pending. */
    CHECK(atomic_load(&s.reported) + left == 8000 - allowed, "reported %llu + pending %llu",
          (unsigned long long)atomic_load(&s.reported), (unsigned long long)left);
}

static void test_ratelimited_macro(void)
{
    log_setup(LOG_INFO, LOG_FORMAT_LOGFMT);
    capture_start();
    for (int i = 0; i < 20; i++)
        log_warn_ratelimited("hot path", "i", "x");
    char *got = capture_end();
    size_t lines = count_lines(got);
    uint64_t reported = 0;
    for (const char *p = strstr(got, "suppressed="); p; p = strstr(p + 1, "suppressed="))
        reported += strtoull(p + 11, NULL, 10);
    /* 5 lines per 10 s: at least the first 5 calls are logged; lines and
     * reported suppressions never exceed the calls made. */
    CHECK(lines >= 5 && lines + reported <= 20, "lines %zu reported %llu:\n%s", lines,
          (unsigned long long)reported, got);
    CHECK(strstr(got, "msg=\"hot path\" i=x suppressed=0\n"), "first line:\n%s", got);
    free(got);
}

int main(void)
{
    test_logfmt_line();
    test_json_line();
    test_truncation();
    test_levels();
    test_ratelimit_counting();
    test_ratelimit_threads();
    test_ratelimited_macro();
    log_setup(LOG_INFO, LOG_FORMAT_LOGFMT);
    return test_main_end("test_log");
}
