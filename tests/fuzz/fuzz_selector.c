/*
 * fuzz_selector.c — libFuzzer target for the PromQL selector parser.
 *
 * Any bytes: parse must not crash or leak. When a selector parses, its
 * matchers are rebuilt with selector_create/selector_add, the canonical text
 * must parse back to the same matchers, and matching a label set cut from the
 * input must agree between the two. Regex shortcuts are checked against
 * PCRE2 by wrapping simple patterns in `(?:...)`.
 */
#include "selector.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80                 ? 1
                     : c >= 0xc2 && c <= 0xdf ? 2
                     : c >= 0xe0 && c <= 0xef ? 3
                     : c >= 0xf0 && c <= 0xf4 ? 4
                                              : 0;
        if (len == 0 || i + len > n)
            return false;
        uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    /* A label set cut from the input: every matcher's name with a value
     * taken from the tail of the input (so values vary with it). */
    size_t off = 0;
    struct selector *s = selector_parse(text, NULL, 0, &off);
    if (!s) {
        if (off > size)
            abort();
        free(text);
        return 0;
    }
    struct selector *b = selector_create();
    size_t n = selector_count(s);
    struct label *l = calloc(n ? n : 1, sizeof *l);
    const char *tail = text + size / 2;
    uint32_t tail_len = (uint32_t)(size - size / 2);
    for (size_t i = 0; i < n; i++) {
        enum matcher_op op;
        const char *name, *value;
        size_t nl, vl;
        selector_matcher_bytes(s, i, &op, &name, &nl, &value, &vl);
        char err[256];
        if (selector_add(b, op, name, nl, value, vl, err, sizeof err) != 0)
            abort(); /* it compiled once already */
        l[i].name = name;
        l[i].name_len = (uint32_t)nl;
        l[i].value = (i & 1) ? tail : value;
        l[i].value_len = (i & 1) ? tail_len : (uint32_t)vl;

        /* Shortcut vs PCRE2 on patterns where wrapping cannot change the
         * meaning, for valid UTF-8 subjects (see selector.c on invalid). */
        if ((op == MATCH_RE || op == MATCH_NRE) && vl < 256 && !memchr(value, '(', vl) &&
            !memchr(value, ')', vl) && !memchr(value, '\\', vl) && !memchr(value, '[', vl) &&
            valid_utf8(tail, tail_len)) {
            char wrapped[300];
            memcpy(wrapped, "(?:", 3);
            memcpy(wrapped + 3, value, vl);
            wrapped[3 + vl] = ')';
            struct selector *x = selector_create(), *y = selector_create();
            if (selector_add(x, MATCH_RE, "v", 1, value, vl, err, sizeof err) == 0 &&
                selector_add(y, MATCH_RE, "v", 1, wrapped, vl + 4, err, sizeof err) == 0) {
                struct label t = {"v", tail, 1, tail_len};
                if (selector_match(x, &t, 1) != selector_match(y, &t, 1))
                    abort();
            }
            selector_destroy(x);
            selector_destroy(y);
        }
    }
    if (selector_match(s, l, n) != selector_match(b, l, n))
        abort();
    struct selector *r = selector_parse(selector_text(b), NULL, 0, NULL);
    if (!r || selector_count(r) != n)
        abort();
    for (size_t i = 0; i < n; i++) {
        enum matcher_op o1, o2;
        const char *n1, *n2, *v1, *v2;
        size_t nl1, nl2, vl1, vl2;
        selector_matcher_bytes(b, i, &o1, &n1, &nl1, &v1, &vl1);
        selector_matcher_bytes(r, i, &o2, &n2, &nl2, &v2, &vl2);
        if (o1 != o2 || nl1 != nl2 || vl1 != vl2 || memcmp(n1, n2, nl1) || memcmp(v1, v2, vl1))
            abort();
    }
    selector_destroy(r);
    selector_destroy(b);
    selector_destroy(s);
    free(l);
    free(text);
    return 0;
}
