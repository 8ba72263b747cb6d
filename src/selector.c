/*
 * selector.c — PromQL series selectors: a hand-written parser for the vector
 * selector subset of PromQL and a matcher over `struct label` arrays.
 *
 * It wraps PCRE2 (8-bit, JIT when the library has it). Regexes follow
 * Prometheus 2.42 (RE2 through Go's regexp): the pattern is compiled as
 * `^(?:re)$`, `.` excludes only `\n`, `$` matches only at the very end
 * (PCRE2_DOLLAR_ENDONLY), `\d \w \s` are ASCII, patterns and subjects are
 * UTF-8 (invalid subject bytes never match a pattern character, where RE2
 * would see U+FFFD). Common shapes skip PCRE2 entirely: literals, literal
 * alternations `a|b|c`, `.*`, `.+`, `lit.*`, `.*lit`, `.*lit.*`.
 *
 * PCRE2 is a backtracking engine, unlike RE2: every match runs under a match
 * and heap limit (selector.h) so that a hostile regex from a remote-read
 * request costs bounded CPU; hitting a limit fails the matcher closed.
 *
 * It deliberately does not parse the rest of PromQL (ranges, offsets,
 * functions) and does not reject PCRE-only syntax (lookaround,
 * backreferences) that RE2 would refuse: the limits keep those safe.
 */
#include "selector.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum fast_kind {
    FAST_PCRE = 0, /* no shortcut: run the compiled regex */
    FAST_EQUAL,    /* literal: plain equality */
    FAST_SET,      /* a|b|c of literals */
    FAST_ANY,      /* .* : any value without '\n' */
    FAST_NONEMPTY, /* .+ */
    FAST_PREFIX,   /* lit.* */
    FAST_SUFFIX,   /* .*lit */
    FAST_CONTAINS, /* .*lit.* (lit has no '\n') */
};

struct piece {
    size_t off, len; /* a slice of the matcher's value */
};

struct matcher {
    enum matcher_op op;
    char *name;
    size_t name_len;
    char *value;
    size_t value_len;
    enum fast_kind fast;
    size_t lit_off, lit_len; /* FAST_EQUAL/PREFIX/SUFFIX/CONTAINS: slice of value */
    size_t nset;
    struct piece *set; /* FAST_SET, sorted by (len, bytes) */
    pcre2_code *re;
};

struct selector {
    char *text;
    size_t text_len, text_cap; /* canonical text being built (selector_create) */
    bool parsed;
    size_t n, cap;
    struct matcher *m;
};

/* Per-thread PCRE2 state: match data, a match context carrying the limits
 * and a JIT stack larger than the 32 KiB machine-stack default. */
struct thread_state {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static pthread_key_t tls_key;
static bool tls_ok;
static pcre2_compile_context *global_cctx;
static _Atomic uint64_t regex_failures;

static void thread_state_free(void *p)
{
    struct thread_state *ts = p;
    if (!ts)
        return;
    pcre2_match_data_free(ts->md);
    pcre2_match_context_free(ts->mctx);
    pcre2_jit_stack_free(ts->jit);
    free(ts);
}

static void global_init(void)
{
    tls_ok = pthread_key_create(&tls_key, thread_state_free) == 0;
    global_cctx = pcre2_compile_context_create(NULL);
    if (global_cctx) {
        pcre2_set_newline(global_cctx, PCRE2_NEWLINE_LF);
        pcre2_set_max_pattern_length(global_cctx, SELECTOR_MAX_REGEX_BYTES + 16);
    }
}

static struct thread_state *thread_state_get(void)
{
    pthread_once(&global_once, global_init);
    if (!tls_ok)
        return NULL;
    struct thread_state *ts = pthread_getspecific(tls_key);
    if (ts)
        return ts;
    ts = calloc(1, sizeof *ts);
    if (!ts)
        return NULL;
    /* One ovector pair is enough: only "matched or not" is used. */
    ts->md = pcre2_match_data_create(1, NULL);
    ts->mctx = pcre2_match_context_create(NULL);
    if (!ts->md || !ts->mctx)
        goto fail;
    pcre2_set_match_limit(ts->mctx, SELECTOR_MATCH_LIMIT);
    pcre2_set_heap_limit(ts->mctx, SELECTOR_HEAP_LIMIT_KIB);
    ts->jit = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
    if (ts->jit)
        pcre2_jit_stack_assign(ts->mctx, NULL, ts->jit);
    if (pthread_setspecific(tls_key, ts) != 0)
        goto fail;
    return ts;
fail:
    thread_state_free(ts);
    return NULL;
}

uint64_t selector_regex_failures(void)
{
    return atomic_load_explicit(&regex_failures, memory_order_relaxed);
}

const char *selector_op_str(enum matcher_op op)
{
    switch (op) {
    case MATCH_EQ:
        return "=";
    case MATCH_NEQ:
        return "!=";
    case MATCH_RE:
        return "=~";
    case MATCH_NRE:
        return "!~";
    }
    return "?";
}

/* ---- small helpers ---------------------------------------------------- */

static void fmt_err(char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fmt_err(char *err, size_t errcap, const char *fmt, ...)
{
    if (!err || errcap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
}

/* Length of the valid UTF-8 sequence at s (1..4), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A growable byte buffer; `len` excludes the NUL kept after the data. */
struct buf {
    char *p;
    size_t len, cap;
};

static int buf_put(struct buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int buf_putc(struct buf *b, char c)
{
    return buf_put(b, &c, 1);
}

/* Append s as a double-quoted PromQL string that parses back to s. */
static int buf_put_quoted(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (buf_putc(b, '"') < 0)
        return -1;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        char esc[4] = {'\\', 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        default:
            elen = 0;
        }
        if (elen) {
            if (buf_put(b, esc, elen) < 0)
                return -1;
            i++;
            continue;
        }
        size_t ul = c < 0x20 || c == 0x7f ? 0 : utf8_len((const unsigned char *)s + i, n - i);
        if (ul == 0) {
            char x[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            if (buf_put(b, x, 4) < 0)
                return -1;
            i++;
            continue;
        }
        if (buf_put(b, s + i, ul) < 0)
            return -1;
        i += ul;
    }
    return buf_putc(b, '"');
}

/* Quote at most ~60 bytes of a value for an error message. */
static void quote_short(const char *s, size_t n, char *out, size_t cap)
{
    struct buf b = {0};
    bool cut = n > 60;
    if (buf_put_quoted(&b, s, cut ? 60 : n) < 0 || (cut && buf_put(&b, "...", 3) < 0)) {
        snprintf(out, cap, "\"...\"");
    } else {
        snprintf(out, cap, "%s", b.p);
    }
    free(b.p);
}

static bool is_regex_meta(char c)
{
    /* The characters Go's regexp.QuoteMeta escapes: Prometheus treats a
     * regex without any of them as a literal. */
    return strchr("\\.+*?()|[]{}^$", c) != NULL && c != '\0';
}

static bool is_literal(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (is_regex_meta(s[i]))
            return false;
    return true;
}

static int piece_cmp(const void *pa, const void *pb, const char *base)
{
    const struct piece *a = pa, *b = pb;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return memcmp(base + a->off, base + b->off, a->len);
}

/* qsort has no context pointer in C11; the set is small, so insertion sort. */
static void pieces_sort(struct piece *p, size_t n, const char *base)
{
    for (size_t i = 1; i < n; i++) {
        struct piece key = p[i];
        size_t j = i;
        while (j > 0 && piece_cmp(&p[j - 1], &key, base) > 0) {
            p[j] = p[j - 1];
            j--;
        }
        p[j] = key;
    }
}

/* ---- compiling one matcher -------------------------------------------- */

static void matcher_cleanup(struct matcher *m)
{
    free(m->name);
    free(m->value);
    free(m->set);
    pcre2_code_free(m->re);
    memset(m, 0, sizeof *m);
}

/* Pick a shortcut for regex m->value, or leave FAST_PCRE. Returns -1 only
 * when out of memory. */
static int classify_regex(struct matcher *m)
{
    const char *v = m->value;
    size_t n = m->value_len;
    if (is_literal(v, n)) {
        m->fast = FAST_EQUAL;
        m->lit_off = 0;
        m->lit_len = n;
        return 0;
    }
    if (n == 2 && v[0] == '.' && (v[1] == '*' || v[1] == '+')) {
        m->fast = v[1] == '*' ? FAST_ANY : FAST_NONEMPTY;
        return 0;
    }
    /* a|b|c: every alternative a literal (an empty alternative matches ""). */
    if (memchr(v, '|', n)) {
        size_t k = 1;
        bool lit = true;
        for (size_t i = 0; i < n && lit; i++) {
            if (v[i] == '|')
                k++;
            else if (is_regex_meta(v[i]))
                lit = false;
        }
        if (lit) {
            m->set = calloc(k, sizeof *m->set);
            if (!m->set)
                return -1;
            size_t start = 0, j = 0;
            for (size_t i = 0; i <= n; i++) {
                if (i == n || v[i] == '|') {
                    m->set[j].off = start;
                    m->set[j].len = i - start;
                    j++;
                    start = i + 1;
                }
            }
            m->nset = k;
            pieces_sort(m->set, k, v);
            m->fast = FAST_SET;
        }
        return 0;
    }
    bool lead = n >= 2 && v[0] == '.' && v[1] == '*';
    bool trail = n >= 2 && v[n - 2] == '.' && v[n - 1] == '*';
    if (lead && trail && n >= 4) {
        if (is_literal(v + 2, n - 4) && !memchr(v + 2, '\n', n - 4)) {
            m->fast = FAST_CONTAINS;
            m->lit_off = 2;
            m->lit_len = n - 4;
        }
    } else if (trail && !lead) {
        if (is_literal(v, n - 2)) {
            m->fast = FAST_PREFIX;
            m->lit_off = 0;
            m->lit_len = n - 2;
        }
    } else if (lead && !trail) {
        if (is_literal(v + 2, n - 2)) {
            m->fast = FAST_SUFFIX;
            m->lit_off = 2;
            m->lit_len = n - 2;
        }
    }
    return 0;
}

/*
 * Compile m->value as a regex: a shortcut when one applies, else PCRE2.
 * Shortcut shapes other than literals and literal sets still go through
 * pcre2_compile once so that their errors (invalid UTF-8) match the general
 * case. On error writes "invalid regex ...".
 */
static int compile_regex(struct matcher *m, char *err, size_t errcap)
{
    char q[96];
    if (m->value_len > SELECTOR_MAX_REGEX_BYTES) {
        quote_short(m->value, m->value_len, q, sizeof q);
        fmt_err(err, errcap, "invalid regex %s: longer than %u bytes", q, SELECTOR_MAX_REGEX_BYTES);
        return -1;
    }
    if (classify_regex(m) < 0) {
        fmt_err(err, errcap, "out of memory");
        return -1;
    }
    if (m->fast == FAST_EQUAL || m->fast == FAST_SET)
        return 0;
    pthread_once(&global_once, global_init);
    size_t plen = m->value_len + 6;
    char *pat = malloc(plen);
    if (!pat) {
        fmt_err(err, errcap, "out of memory");
        return -1;
    }
    memcpy(pat, "^(?:", 4);
    memcpy(pat + 4, m->value, m->value_len);
    memcpy(pat + 4 + m->value_len, ")$", 2);
    int ecode;
    PCRE2_SIZE eoff;
    m->re = pcre2_compile((PCRE2_SPTR)pat, plen,
                          PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY |
                              PCRE2_NEVER_BACKSLASH_C,
                          &ecode, &eoff, global_cctx);
    free(pat);
    if (!m->re) {
        PCRE2_UCHAR msg[160];
        if (pcre2_get_error_message(ecode, msg, sizeof msg) < 0)
            snprintf((char *)msg, sizeof msg, "error %d", ecode);
        quote_short(m->value, m->value_len, q, sizeof q);
        fmt_err(err, errcap, "invalid regex %s: %s", q, (const char *)msg);
        return -1;
    }
    if (m->fast != FAST_PCRE) {
        /* Compiled only to reject what RE2 would reject (e.g. invalid UTF-8). */
        pcre2_code_free(m->re);
        m->re = NULL;
        return 0;
    }
    /* JIT is an optimisation only: without it pcre2_match interprets. */
    (void)pcre2_jit_compile(m->re, PCRE2_JIT_COMPLETE);
    return 0;
}

static bool no_newline(const char *v, size_t n)
{
    return n == 0 || memchr(v, '\n', n) == NULL;
}

/* 1 match, 0 no match, -1 PCRE2 limit or error. */
static int regex_match(const struct matcher *m, const char *v, size_t n)
{
    const char *lit = m->value + m->lit_off;
    size_t ll = m->lit_len;
    switch (m->fast) {
    case FAST_EQUAL:
        return n == ll && memcmp(v, lit, n) == 0;
    case FAST_ANY:
        return no_newline(v, n);
    case FAST_NONEMPTY:
        return n > 0 && no_newline(v, n);
    case FAST_PREFIX:
        return n >= ll && memcmp(v, lit, ll) == 0 && no_newline(v + ll, n - ll);
    case FAST_SUFFIX:
        return n >= ll && memcmp(v + n - ll, lit, ll) == 0 && no_newline(v, n - ll);
    case FAST_CONTAINS:
        return no_newline(v, n) && (ll == 0 || (n >= ll && memmem(v, n, lit, ll) != NULL));
    case FAST_SET: {
        size_t lo = 0, hi = m->nset;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            const struct piece *p = &m->set[mid];
            int c = p->len != n ? (p->len < n ? -1 : 1) : memcmp(m->value + p->off, v, n);
            if (c == 0)
                return 1;
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return 0;
    }
    case FAST_PCRE:
        break;
    }
    struct thread_state *ts = thread_state_get();
    if (!ts) {
        atomic_fetch_add_explicit(&regex_failures, 1, memory_order_relaxed);
        return -1;
    }
    /* An empty label value may come with a NULL pointer. */
    PCRE2_SPTR subj = (PCRE2_SPTR)(n ? v : "");
    int rc = pcre2_match(m->re, subj, n, 0, 0, ts->md, ts->mctx);
    if (rc >= 0)
        return 1;
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    atomic_fetch_add_explicit(&regex_failures, 1, memory_order_relaxed);
    return -1;
}

static bool matcher_accepts(const struct matcher *m, const char *v, size_t n)
{
    switch (m->op) {
    case MATCH_EQ:
        return n == m->value_len && (n == 0 || memcmp(v, m->value, n) == 0);
    case MATCH_NEQ:
        return !(n == m->value_len && (n == 0 || memcmp(v, m->value, n) == 0));
    case MATCH_RE:
        return regex_match(m, v, n) == 1;
    case MATCH_NRE:
        return regex_match(m, v, n) == 0;
    }
    return false;
}

static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Append a matcher to s; takes ownership of name and value (freed on
 * failure). */
static int selector_push(struct selector *s, enum matcher_op op, char *name, size_t name_len,
                         char *value, size_t value_len, char *err, size_t errcap)
{
    struct matcher m = {
        .op = op, .name = name, .name_len = name_len, .value = value, .value_len = value_len};
    if (s->n >= SELECTOR_MAX_MATCHERS) {
        fmt_err(err, errcap, "more than %u matchers", SELECTOR_MAX_MATCHERS);
        goto fail;
    }
    if ((op == MATCH_RE || op == MATCH_NRE) && compile_regex(&m, err, errcap) < 0)
        goto fail;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        struct matcher *p = realloc(s->m, cap * sizeof *p);
        if (!p) {
            fmt_err(err, errcap, "out of memory");
            goto fail;
        }
        s->m = p;
        s->cap = cap;
    }
    s->m[s->n++] = m;
    return 0;
fail:
    matcher_cleanup(&m);
    return -1;
}

/* ---- the parser --------------------------------------------------------- */

struct parser {
    const char *s;
    size_t n, pos;
    char *err;
    size_t errcap;
    size_t erroff;
    bool failed;
};

static void perr(struct parser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perr(struct parser *p, size_t off, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    p->erroff = off;
    if (p->err && p->errcap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->errcap, fmt, ap);
        va_end(ap);
    }
}

/* Describe the character at pos for an error: 'x', '\xNN' or end of input. */
static void describe_at(const struct parser *p, size_t pos, char *out, size_t cap)
{
    if (pos >= p->n) {
        snprintf(out, cap, "end of input");
        return;
    }
    unsigned char c = (unsigned char)p->s[pos];
    if (c >= 0x20 && c < 0x7f) {
        snprintf(out, cap, "character '%c'", c);
        return;
    }
    size_t ul = c >= 0x80 ? utf8_len((const unsigned char *)p->s + pos, p->n - pos) : 0;
    if (ul > 1)
        snprintf(out, cap, "character '%.*s'", (int)ul, p->s + pos);
    else
        snprintf(out, cap, "character '\\x%02x'", c);
}

static void unexpected(struct parser *p, const char *expected)
{
    char what[32];
    describe_at(p, p->pos, what, sizeof what);
    perr(p, p->pos, "unexpected %s at offset %zu, expected %s", what, p->pos, expected);
}

/* Whitespace and `#` line comments, as PromQL's lexer skips them. */
static void skip_space(struct parser *p)
{
    while (p->pos < p->n) {
        char c = p->s[p->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            p->pos++;
        } else if (c == '#') {
            while (p->pos < p->n && p->s[p->pos] != '\n')
                p->pos++;
        } else {
            break;
        }
    }
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int put_utf8(struct buf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return buf_put(b, u, n);
}

/* One escape after a backslash at p->pos - 1 (PromQL's lexEscape rules). */
static int parse_escape(struct parser *p, char quote, struct buf *out)
{
    size_t at = p->pos - 1;
    if (p->pos >= p->n) {
        perr(p, at, "escape sequence not terminated at offset %zu", at);
        return -1;
    }
    char c = p->s[p->pos++];
    char simple = 0;
    switch (c) {
    case 'a':
        simple = '\a';
        break;
    case 'b':
        simple = '\b';
        break;
    case 'f':
        simple = '\f';
        break;
    case 'n':
        simple = '\n';
        break;
    case 'r':
        simple = '\r';
        break;
    case 't':
        simple = '\t';
        break;
    case 'v':
        simple = '\v';
        break;
    case '\\':
        simple = '\\';
        break;
    default:
        if (c == quote)
            simple = quote;
    }
    if (simple)
        return buf_putc(out, simple) < 0 ? -2 : 0;

    int ndig, base;
    uint32_t max;
    if (c >= '0' && c <= '7') {
        ndig = 3, base = 8, max = 255;
        p->pos--; /* the first digit is part of the number */
    } else if (c == 'x') {
        ndig = 2, base = 16, max = 255;
    } else if (c == 'u') {
        ndig = 4, base = 16, max = 0x10ffff;
    } else if (c == 'U') {
        ndig = 8, base = 16, max = 0x10ffff;
    } else {
        char what[32];
        describe_at(p, p->pos - 1, what, sizeof what);
        perr(p, at, "unknown escape sequence at offset %zu: %s after backslash", at, what);
        return -1;
    }
    uint32_t x = 0;
    for (int i = 0; i < ndig; i++) {
        int d = p->pos < p->n ? hex_val(p->s[p->pos]) : -1;
        if (d < 0 || d >= base) {
            if (p->pos >= p->n || p->s[p->pos] == quote)
                perr(p, at, "escape sequence not terminated at offset %zu", at);
            else
                perr(p, at, "illegal character in escape sequence at offset %zu", p->pos);
            return -1;
        }
        x = x * (uint32_t)base + (uint32_t)d;
        p->pos++;
    }
    if (x > max || (x >= 0xd800 && x < 0xe000 && max > 255)) {
        perr(p, at, "escape sequence is an invalid Unicode code point at offset %zu", at);
        return -1;
    }
    if (max == 255)
        return buf_putc(out, (char)x) < 0 ? -2 : 0;
    return put_utf8(out, x) < 0 ? -2 : 0;
}

/* A quoted string at p->pos; decoded bytes go to out. -1 syntax, -2 OOM. */
static int parse_string(struct parser *p, struct buf *out)
{
    size_t open = p->pos;
    char quote = p->s[p->pos++];
    bool raw = quote == '`';
    for (;;) {
        if (p->pos >= p->n || (!raw && p->s[p->pos] == '\n')) {
            perr(p, open, "unterminated %sstring at offset %zu", raw ? "raw " : "", open);
            return -1;
        }
        char c = p->s[p->pos];
        if (c == quote) {
            p->pos++;
            break;
        }
        if (c == '\\' && !raw) {
            p->pos++;
            int rc = parse_escape(p, quote, out);
            if (rc < 0)
                return rc;
            continue;
        }
        size_t ul = utf8_len((const unsigned char *)p->s + p->pos, p->n - p->pos);
        if (ul == 0) {
            perr(p, p->pos, "invalid UTF-8 in string at offset %zu", p->pos);
            return -1;
        }
        if (buf_put(out, p->s + p->pos, ul) < 0)
            return -2;
        p->pos += ul;
    }
    if (!out->p && buf_put(out, "", 0) < 0)
        return -2;
    return 0;
}

static bool matcher_accepts_empty(const struct matcher *m)
{
    return matcher_accepts(m, "", 0);
}

/* Parse the inside of `{...}`; p->pos is just past '{'. */
static void parse_matchers(struct parser *p, struct selector *s, size_t *name_matcher_at)
{
    for (;;) {
        skip_space(p);
        if (p->pos < p->n && p->s[p->pos] == '}') {
            p->pos++;
            return;
        }
        if (p->pos >= p->n || !is_alpha(p->s[p->pos])) {
            unexpected(p, "label matcher");
            return;
        }
        size_t name_at = p->pos;
        while (p->pos < p->n && (is_alpha(p->s[p->pos]) || is_digit(p->s[p->pos])))
            p->pos++;
        size_t name_len = p->pos - name_at;
        skip_space(p);
        enum matcher_op op;
        const char *o = p->s + p->pos;
        size_t left = p->n - p->pos;
        if (left >= 2 && o[0] == '=' && o[1] == '~') {
            op = MATCH_RE, p->pos += 2;
        } else if (left >= 2 && o[0] == '!' && o[1] == '~') {
            op = MATCH_NRE, p->pos += 2;
        } else if (left >= 2 && o[0] == '!' && o[1] == '=') {
            op = MATCH_NEQ, p->pos += 2;
        } else if (left >= 1 && o[0] == '=') {
            op = MATCH_EQ, p->pos += 1;
        } else {
            unexpected(p, "one of \"=\", \"!=\", \"=~\", \"!~\"");
            return;
        }
        skip_space(p);
        if (p->pos >= p->n ||
            (p->s[p->pos] != '"' && p->s[p->pos] != '\'' && p->s[p->pos] != '`')) {
            unexpected(p, "quoted string");
            return;
        }
        size_t value_at = p->pos;
        struct buf v = {0};
        int rc = parse_string(p, &v);
        if (rc < 0) {
            free(v.p);
            if (rc == -2)
                perr(p, value_at, "out of memory");
            return;
        }
        char *name = dup_bytes(p->s + name_at, name_len);
        if (!name) {
            free(v.p);
            perr(p, name_at, "out of memory");
            return;
        }
        char msg[256];
        if (selector_push(s, op, name, name_len, v.p, v.len, msg, sizeof msg) < 0) {
            perr(p, value_at, "%s at offset %zu", msg, value_at);
            return;
        }
        if (name_len == 8 && memcmp(p->s + name_at, "__name__", 8) == 0 && !*name_matcher_at)
            *name_matcher_at = s->n; /* 1-based, 0 = none */
        skip_space(p);
        if (p->pos < p->n && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->n && p->s[p->pos] == '}') {
            p->pos++;
            return;
        }
        unexpected(p, "\",\" or \"}\"");
        return;
    }
}

struct selector *selector_parse(const char *text, char *err, size_t errcap, size_t *err_offset)
{
    struct parser p = {.s = text ? text : "", .err = err, .errcap = errcap};
    p.n = strlen(p.s);
    struct selector *s = NULL;
    if (p.n > SELECTOR_MAX_TEXT_BYTES) {
        perr(&p, 0, "selector longer than %u bytes", SELECTOR_MAX_TEXT_BYTES);
        goto fail;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        perr(&p, 0, "out of memory");
        goto fail;
    }
    s->parsed = true;
    skip_space(&p);
    size_t metric_at = p.pos, metric_len = 0;
    if (p.pos < p.n && (is_alpha(p.s[p.pos]) || p.s[p.pos] == ':')) {
        while (p.pos < p.n && (is_alpha(p.s[p.pos]) || is_digit(p.s[p.pos]) || p.s[p.pos] == ':'))
            p.pos++;
        metric_len = p.pos - metric_at;
        char *name = dup_bytes("__name__", 8);
        char *value = dup_bytes(p.s + metric_at, metric_len);
        if (!name || !value) {
            free(name);
            free(value);
            perr(&p, 0, "out of memory");
            goto fail;
        }
        char msg[128];
        if (selector_push(s, MATCH_EQ, name, 8, value, metric_len, msg, sizeof msg) < 0) {
            perr(&p, metric_at, "%s", msg);
            goto fail;
        }
        skip_space(&p);
    }
    bool braces = false;
    size_t name_matcher_at = 0;
    size_t brace_at = p.pos;
    if (p.pos < p.n && p.s[p.pos] == '{') {
        braces = true;
        p.pos++;
        parse_matchers(&p, s, &name_matcher_at);
        if (p.failed)
            goto fail;
        skip_space(&p);
    }
    if (!braces && metric_len == 0) {
        if (p.pos >= p.n)
            perr(&p, p.pos, "empty selector");
        else
            unexpected(&p, "metric name or \"{\"");
        goto fail;
    }
    if (p.pos < p.n) {
        unexpected(&p, braces ? "end of selector" : "\"{\" or end of selector");
        goto fail;
    }
    if (metric_len && name_matcher_at) {
        const struct matcher *m = &s->m[name_matcher_at - 1];
        char q[96];
        quote_short(m->value, m->value_len, q, sizeof q);
        perr(&p, brace_at, "metric name must not be set twice: \"%.*s\" or %s", (int)metric_len,
             p.s + metric_at, q);
        goto fail;
    }
    bool non_empty = false;
    for (size_t i = 0; i < s->n && !non_empty; i++)
        non_empty = !matcher_accepts_empty(&s->m[i]);
    if (!non_empty) {
        perr(&p, metric_at, "vector selector must contain at least one non-empty matcher");
        goto fail;
    }
    s->text = dup_bytes(p.s, p.n);
    if (!s->text) {
        perr(&p, 0, "out of memory");
        goto fail;
    }
    s->text_len = p.n;
    return s;
fail:
    if (err_offset)
        *err_offset = p.erroff;
    selector_destroy(s);
    return NULL;
}

/* ---- built selectors ---------------------------------------------------- */

struct selector *selector_create(void)
{
    struct selector *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->text = dup_bytes("{}", 2);
    if (!s->text) {
        free(s);
        return NULL;
    }
    s->text_len = 2;
    s->text_cap = 3;
    return s;
}

/* Room for `,name op "value"}` after the text: quoting grows a byte to at
 * most 4 (\xNN). Reserved before the matcher is added so that appending the
 * text cannot fail afterwards. */
static int text_reserve(struct selector *s, size_t name_len, size_t value_len)
{
    size_t need = s->text_len + 1 + name_len + 2 + 2 + 4 * value_len + 1 + 1;
    if (need <= s->text_cap)
        return 0;
    char *p = realloc(s->text, need);
    if (!p)
        return -1;
    s->text = p;
    s->text_cap = need;
    return 0;
}

/* Replace the closing brace by `,name op "value"}` for the last matcher. */
static void text_append_last(struct selector *s)
{
    const struct matcher *m = &s->m[s->n - 1];
    struct buf b = {s->text, s->text_len - 1, s->text_cap};
    const char *op = selector_op_str(m->op);
    int rc = 0;
    if (s->n > 1)
        rc |= buf_putc(&b, ',');
    rc |= buf_put(&b, m->name, m->name_len);
    rc |= buf_put(&b, op, strlen(op));
    rc |= buf_put_quoted(&b, m->value, m->value_len);
    rc |= buf_putc(&b, '}');
    assert(rc == 0 && b.p == s->text); /* text_reserve made the room */
    (void)rc;
    s->text_len = b.len;
}

int selector_add(struct selector *s, enum matcher_op op, const char *name, size_t name_len,
                 const char *value, size_t value_len, char *err, size_t errcap)
{
    if (!s || s->parsed || (unsigned)op > MATCH_NRE) {
        fmt_err(err, errcap, "invalid selector_add call");
        return -1;
    }
    if (!name)
        name_len = 0;
    if (!value)
        value_len = 0;
    char *n = dup_bytes(name ? name : "", name_len);
    char *v = dup_bytes(value ? value : "", value_len);
    if (!n || !v || text_reserve(s, name_len, value_len) < 0) {
        free(n);
        free(v);
        fmt_err(err, errcap, "out of memory");
        return -1;
    }
    if (selector_push(s, op, n, name_len, v, value_len, err, errcap) < 0)
        return -1;
    text_append_last(s);
    return 0;
}

void selector_destroy(struct selector *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        matcher_cleanup(&s->m[i]);
    free(s->m);
    free(s->text);
    free(s);
}

bool selector_match(const struct selector *s, const struct label *labels, size_t n)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct matcher *m = &s->m[i];
        const char *v = "";
        size_t vlen = 0;
        for (size_t j = 0; j < n; j++) {
            if (labels[j].name_len == m->name_len &&
                memcmp(labels[j].name, m->name, m->name_len) == 0) {
                v = labels[j].value;
                vlen = labels[j].value_len;
                break;
            }
        }
        if (!matcher_accepts(m, v, vlen))
            return false;
    }
    return true;
}

const char *selector_text(const struct selector *s)
{
    return s->text ? s->text : "";
}

size_t selector_count(const struct selector *s)
{
    return s->n;
}

void selector_matcher(const struct selector *s, size_t i, enum matcher_op *op, const char **name,
                      const char **value)
{
    selector_matcher_bytes(s, i, op, name, NULL, value, NULL);
}

void selector_matcher_bytes(const struct selector *s, size_t i, enum matcher_op *op,
                            const char **name, size_t *name_len, const char **value,
                            size_t *value_len)
{
    const struct matcher *m = &s->m[i];
    if (op)
        *op = m->op;
    if (name)
        *name = m->name;
    if (name_len)
        *name_len = m->name_len;
    if (value)
        *value = m->value;
    if (value_len)
        *value_len = m->value_len;
}
