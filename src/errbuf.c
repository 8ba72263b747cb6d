/*
 * errbuf.c — formatting of one-line error messages into caller buffers.
 * Deliberately tiny: no allocation, no global state.
 */
#include "errbuf.h"

#include <stdio.h>
#include <string.h>

void errbuf_vset(char *err, size_t errcap, const char *fmt, va_list ap)
{
    if (err == NULL || errcap == 0)
        return;
    vsnprintf(err, errcap, fmt, ap);
}

void errbuf_set(char *err, size_t errcap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errbuf_vset(err, errcap, fmt, ap);
    va_end(ap);
}

const char *errbuf_printable(char *out, size_t outcap, const void *s, size_t n)
{
    const unsigned char *b = s;
    size_t k = n < outcap - 4 ? n : outcap - 4;
    for (size_t i = 0; i < k; i++)
        out[i] = (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '"' && b[i] != '\\') ? (char)b[i] : '?';
    if (n > k)
        memcpy(out + k, "...", 4);
    else
        out[k] = '\0';
    return out;
}
