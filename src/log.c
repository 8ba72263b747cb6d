/*
 * log.c — logfmt / JSON log lines on stderr.
 *
 * Each line is assembled in a stack buffer and written with one write(2), so
 * concurrent threads never interleave within a line. Values are quoted and
 * escaped as logfmt (or JSON) requires. Does not rotate or buffer: stderr is
 * the container runtime's business.
 */
#include "log.h"

#include "clock.h"

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

struct line {
    char buf[4096];
    size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof l->buf - 2 - l->len; /* keep space for "\n" */
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
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

static void put_escaped(struct line *l, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
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
        } else {
            put(l, (const char *)&c, 1);
        }
    }
}

static void put_kv(struct line *l, int format, bool first, const char *k, const char *v)
{
    if (format == LOG_FORMAT_JSON) {
        puts_(l, first ? "{\"" : ",\"");
        put_escaped(l, k);
        puts_(l, "\":\"");
        put_escaped(l, v);
        puts_(l, "\"");
        return;
    }
    if (!first)
        puts_(l, " ");
    puts_(l, k);
    puts_(l, "=");
    if (needs_quotes(v)) {
        puts_(l, "\"");
        put_escaped(l, v);
        puts_(l, "\"");
    } else {
        puts_(l, v);
    }
}

void log_emit(enum log_level level, const char *file, int line, const char *msg, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (!log_enabled(level))
        return;
    int format = atomic_load(&current_format);
    struct line l;
    l.len = 0;

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
        puts_(&l, "}");
    l.buf[l.len++] = '\n';
    ssize_t w = write(STDERR_FILENO, l.buf, l.len);
    (void)w;
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
