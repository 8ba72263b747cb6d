/*
 * errbuf.h — the project's "char *err, size_t errcap" convention in one place.
 *
 * Functions that can fail write one human-readable line into a caller
 * buffer; these helpers format it (truncated, always NUL-terminated, nothing
 * written when err is NULL or errcap is 0) and quote untrusted bytes safely.
 * Pure and thread-safe.
 */
#ifndef PROMCAST_ERRBUF_H
#define PROMCAST_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>

void errbuf_set(char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void errbuf_vset(char *err, size_t errcap, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* An excerpt of untrusted bytes fit for an error line: at most outcap - 4
 * bytes, characters outside printable ASCII (and `"`, `\`) replaced by '?',
 * "..." appended when cut. Returns out. outcap must be at least 4. */
const char *errbuf_printable(char *out, size_t outcap, const void *s, size_t n);

#endif
