/*
 * log.c — logfmt / JSON log lines on stderr.
 *
 * Each line is assembled in a stack buffer and written with one write(2), so
 * concurrent threads never interleave within a line. Values are quoted and
 * escaped as logfmt (or JSON) requires; invalid UTF-8 becomes U+FFFD. A line
 * longer than the 4 KiB buffer is cut between escapes and still closed, so it
 * stays parseable. Does not rotate or buffer: stderr is the container
 * runtime's business.
 */
#include "log.h"

#include "clock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int current_level = LOG_INFO;
static _Atomic int current_format = LOG_FORMAT_LOGFMT;

int log_parse_level(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

int log_parse_format(const char *s)
{
    if (strcmp(s, "logfmt") == 0)
        return LOG_FORMAT_LOGFMT;
    if (strcmp(s, "json") == 0)
        return LOG_FORMAT_JSON;
    return -1;
}

void log_setup(enum log_level level, enum log_format format)
{
    atomic_store(&current_level, (int)level);
    atomic_store(&current_format, (int)format);
}

bool log_enabled(enum log_level level)
{
    return (int)level >= atomic_load(&current_level);
}

const char *log_fmt_u64(char *buf, unsigned cap, uint64_t v)
{
    snprintf(buf, cap, "%llu", (unsigned long long)v);
    return buf;
}

/* One log line. Pieces are appended whole or not at all, and LINE_RESERVE
 * bytes are kept for the closing quote, brace and newline, so a line cut at
 * the buffer size is still well-formed logfmt or JSON. */
#define LINE_RESERVE 4

struct line {
    char buf[4096];
    size_t len;
    bool full; /* something did not fit: drop the rest of the content */
};

static void put(struct line *l, const char *s, size_t n)
{
    if (l->full || n > sizeof l->buf - LINE_RESERVE - l->len) {
        l->full = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* For closing characters only: may use the reserve. */
static void put_closing(struct line *l, char c)
{
    if (l->len < sizeof l->buf)
        l->buf[l->len++] = c;
}

static void puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static bool needs_quotes(const char *s)
{
    if (*s == '\0')
        return true;
    for (; *s; s++)
        if (*s <= ' ' || *s == '=' || *s == '"' || (unsigned char)*s >= 0x7f)
            return true;
    return false;
}

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    uint32_t cp;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80) /* also stops at the NUL */
            return 0;
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Escapes for a quoted logfmt or JSON string. Invalid UTF-8 bytes become
 * U+FFFD, as Go's logfmt and JSON encoders do, so a hostile label value can
 * not make the line unparseable for log shippers. */
static void put_escaped(struct line *l, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned char c = *s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c == '\n') {
            put(l, "\\n", 2);
        } else if (c == '\t') {
            put(l, "\\t", 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(l, esc, 6);
        } else if (c >= 0x80) {
            size_t n = utf8_len(s);
            if (n == 0) {
                put(l, "\xef\xbf\xbd", 3);
                n = 1;
            } else {
                put(l, (const char *)s, n);
            }
            s += n;
            continue;
        } else {
            put(l, (const char *)s, 1);
        }
        s++;
    }
}

/* Appends one key/value pair, or nothing if even its start does not fit; a
 * quoted value cut short still gets its closing quote. */
static void put_kv(struct line *l, int format, bool first, const char *k, const char *v)
{
    size_t mark = l->len;
    bool quoted = true;
    if (format == LOG_FORMAT_JSON) {
        puts_(l, first ? "{\"" : ",\"");
        put_escaped(l, k);
        puts_(l, "\":\"");
    } else {
        if (!first)
            puts_(l, " ");
        puts_(l, k);
        puts_(l, "=");
        quoted = needs_quotes(v);
        if (quoted)
            puts_(l, "\"");
    }
    if (l->full) {
        l->len = mark;
        return;
    }
    if (quoted) {
        put_escaped(l, v);
        put_closing(l, '"');
        return;
    }
    /* A bare value is plain ASCII: keep what fits of it. */
    size_t n = strlen(v), room = sizeof l->buf - LINE_RESERVE - l->len;
    put(l, v, n < room ? n : room);
    if (n > room)
        l->full = true;
}

void log_emit(enum log_level level, const char *file, int line, const char *msg, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (!log_enabled(level))
        return;
    if ((unsigned)level > LOG_ERROR)
        level = LOG_ERROR;
    int format = atomic_load(&current_format);
    struct line l;
    l.len = 0;
    l.full = false;

    char ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);

    const char *base = strrchr(file, '/');
    char caller[128];
    snprintf(caller, sizeof caller, "%s:%d", base ? base + 1 : file, line);

    put_kv(&l, format, true, "ts", ts);
    put_kv(&l, format, false, "level", names[level]);
    put_kv(&l, format, false, "caller", caller);
    put_kv(&l, format, false, "msg", msg);

    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        put_kv(&l, format, false, k, v ? v : "");
    }
    va_end(ap);
    if (format == LOG_FORMAT_JSON)
        put_closing(&l, '}');
    put_closing(&l, '\n');
    /* Up to PIPE_BUF bytes reach a pipe in one piece; retry only when a
     * signal interrupted the call before anything was written. */
    while (write(STDERR_FILENO, l.buf, l.len) < 0 && errno == EINTR)
        ;
}

bool log_ratelimit_allow(struct log_ratelimit *rl, int64_t interval_ms, uint32_t burst,
                         uint64_t *suppressed)
{
    int64_t now = clock_mono_ms();
    int64_t start = atomic_load(&rl->window_start_ms);
    if (now - start >= interval_ms &&
        atomic_compare_exchange_strong(&rl->window_start_ms, &start, now))
        atomic_store(&rl->count, 0);
    if (atomic_fetch_add(&rl->count, 1) < burst) {
        *suppressed = atomic_exchange(&rl->suppressed, 0);
        return true;
    }
    atomic_fetch_add(&rl->suppressed, 1);
    return false;
}
