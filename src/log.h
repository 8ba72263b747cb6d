/*
 * log.h — leveled logging in logfmt or JSON on stderr, Prometheus style:
 *   ts=2026-12-04T20:18:03.123Z level=warn caller=http.c:120 msg="..." key=value ...
 *
 * Thread-safety: every function may be called from any thread; one line is
 * written with a single write(2) so lines from threads never interleave.
 */
#ifndef PROMCAST_LOG_H
#define PROMCAST_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_LOGFMT = 0, LOG_FORMAT_JSON };

/* Parse "debug|info|warn|error" / "logfmt|json"; -1 when unknown. */
int log_parse_level(const char *s);
int log_parse_format(const char *s);

/* Set before threads start; later changes are atomic but not ordered. */
void log_setup(enum log_level level, enum log_format format);
bool log_enabled(enum log_level level);

/*
 * Log one event. `msg` is the human message; the variadic part is a list of
 * key/value C strings terminated by NULL: log_emit(LOG_WARN, __FILE__, __LINE__,
 * "request rejected", "reason", "too_large", "remote", addr, NULL).
 */
void log_emit(enum log_level level, const char *file, int line, const char *msg, ...);

#define log_debug(...) log_emit(LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__, (const char *)0)
#define log_info(...)  log_emit(LOG_INFO, __FILE__, __LINE__, __VA_ARGS__, (const char *)0)
#define log_warn(...)  log_emit(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__, (const char *)0)
#define log_error(...) log_emit(LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__, (const char *)0)

/*
 * Rate limiting for warnings on hot paths: a `struct log_ratelimit` lives in
 * static storage at the call site; log_ratelimit_allow() returns true at most
 * `burst` times per `interval_ms`, and reports how many were suppressed since
 * the last allowed line through *suppressed. Lock-free.
 */
struct log_ratelimit {
    _Atomic int64_t window_start_ms;
    _Atomic uint32_t count;
    _Atomic uint64_t suppressed;
};
#define LOG_RATELIMIT_INIT                                                                         \
    {                                                                                              \
        0, 0, 0                                                                                    \
    }
bool log_ratelimit_allow(struct log_ratelimit *rl, int64_t interval_ms, uint32_t burst,
                         uint64_t *suppressed);

/* Log at most 5 lines per 10 s per call site, adding suppressed=N. */
#define log_warn_ratelimited(...)                                                                  \
    do {                                                                                           \
        static struct log_ratelimit rl_ = LOG_RATELIMIT_INIT;                                      \
        uint64_t sup_;                                                                             \
        if (log_ratelimit_allow(&rl_, 10000, 5, &sup_)) {                                          \
            char supbuf_[24];                                                                      \
            log_fmt_u64(supbuf_, sizeof supbuf_, sup_);                                            \
            log_emit(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__, "suppressed", supbuf_,             \
                     (const char *)0);                                                             \
        }                                                                                          \
    } while (0)

/* Small formatting helper for key/value arguments. */
const char *log_fmt_u64(char *buf, unsigned cap, uint64_t v);

#endif
