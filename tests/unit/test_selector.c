/*
 * test_selector.c — PromQL selector parsing (valid input, every error with
 * its offset), matching semantics (missing labels, anchoring, negation, UTF-8,
 * escapes, newlines), the regex shortcuts against PCRE2, canonical text of
 * built selectors, and matching from several threads at once.
 */
#include "selector.h"
#include "testlib.h"

#include <pthread.h>

/* ---- parsing ------------------------------------------------------------ */

struct parse_case {
    const char *text;
    size_t count;    /* matchers on success; 0 = must fail */
    const char *err; /* substring of the error */
    size_t offset;   /* error offset */
};

static const struct parse_case parse_cases[] = {
    {"foo", 1, NULL, 0},
    {"  foo  ", 1, NULL, 0},
    {":foo:bar_1", 1, NULL, 0},
    {"foo{}", 1, NULL, 0},
    {"foo{a=\"b\"}", 2, NULL, 0},
    {"{a=\"b\"}", 1, NULL, 0},
    {"{a=\"b\",}", 1, NULL, 0},
    {" foo { a = \"b\" , c !~ 'd' , e =~ `f.*` , g != \"\" , } ", 5, NULL, 0},
    {"{__name__=~\"job:.*\", env!=\"dev\"}", 2, NULL, 0},
    {"http_requests_total{code=~\"5..\"}", 2, NULL, 0},
    {"foo # a comment\n{a=\"b\"}", 2, NULL, 0},
    {"{a=\"\", b=\"x\"}", 2, NULL, 0},
    {"foo{a=~\".*\"}", 2, NULL, 0},
    {"{a=\"b\",a=\"c\"}", 2, NULL, 0},
    {"{by=\"x\", offset=\"y\"}", 2, NULL, 0},
    {"sum", 1, NULL, 0},
    /* errors, with offsets */
    {"", 0, "empty selector", 0},
    {"   ", 0, "empty selector", 3},
    {"{}", 0, "vector selector must contain at least one non-empty matcher", 0},
    {"{a=\"\"}", 0, "at least one non-empty matcher", 0},
    {"{a=~\".*\"}", 0, "at least one non-empty matcher", 0},
    {"{a!~\".+\"}", 0, "at least one non-empty matcher", 0},
    {"{a!=\"x\", b=~\"x|\"}", 0, "at least one non-empty matcher", 0},
    {"{a=\"b\"", 0, "unexpected end of input at offset 6, expected \",\" or \"}\"", 6},
    {"{a=}", 0, "unexpected character '}' at offset 3, expected quoted string", 3},
    {"{a}", 0, "unexpected character '}' at offset 2, expected one of", 2},
    {"{a==\"b\"}", 0, "unexpected character '=' at offset 3, expected quoted string", 3},
    {"{,}", 0, "unexpected character ',' at offset 1, expected label matcher", 1},
    {"{a=\"b\",,}", 0, "unexpected character ',' at offset 7, expected label matcher", 7},
    {"{a=\"b\" c=\"d\"}", 0, "unexpected character 'c' at offset 7, expected \",\" or \"}\"", 7},
    {"{1a=\"b\"}", 0, "unexpected character '1' at offset 1, expected label matcher", 1},
    {"{a:b=\"c\"}", 0, "unexpected character ':' at offset 2", 2},
    {"{a=\"b}", 0, "unterminated string at offset 3", 3},
    {"{a=\"x\ny\"}", 0, "unterminated string at offset 3", 3},
    {"{a=`x}", 0, "unterminated raw string at offset 3", 3},
    {"{a=\"\\q\"}", 0, "unknown escape sequence at offset 4", 4},
    {"{a=\"it\\'s\"}", 0, "unknown escape sequence at offset 6", 6},
    {"{a='it\\\"s'}", 0, "unknown escape sequence at offset 6", 6},
    {"{a=\"\\x4\"}", 0, "escape sequence not terminated at offset 4", 4},
    {"{a=\"\\x4g\"}", 0, "illegal character in escape sequence at offset 7", 4},
    {"{a=\"\\400\"}", 0, "invalid Unicode code point at offset 4", 4},
    {"{a=\"\\ud800\"}", 0, "invalid Unicode code point at offset 4", 4},
    {"{a=\"\\U00110000\"}", 0, "invalid Unicode code point at offset 4", 4},
    {"{a=\"\\", 0, "escape sequence not terminated at offset 4", 4},
    {"{a=\"\xff\"}", 0, "invalid UTF-8 in string at offset 4", 4},
    {"{a=\"\xc3\"}", 0, "invalid UTF-8 in string at offset 4", 4},
    {"{a=~\"a(\"}", 0, "invalid regex \"a(\": missing closing parenthesis at offset 4", 4},
    {"foo{a=~\"[\"}", 0, "invalid regex \"[\": missing terminating ] for character class", 7},
    {"{a=~\"\\\\C\"}", 0, "invalid regex", 4},
    {"foo{__name__=\"bar\"}", 0, "metric name must not be set twice: \"foo\" or \"bar\"", 3},
    {"foo bar", 0, "unexpected character 'b' at offset 4, expected \"{\" or end of selector", 4},
    {"foo[5m]", 0, "unexpected character '[' at offset 3", 3},
    {"foo{a=\"b\"} offset 5m", 0, "unexpected character 'o' at offset 11, expected end", 11},
    {"{a=\"b\"}{c=\"d\"}", 0, "unexpected character '{' at offset 7", 7},
    {"1foo", 0, "unexpected character '1' at offset 0, expected metric name or \"{\"", 0},
    {"\"foo\"", 0, "unexpected character '\"' at offset 0", 0},
    {"{a=\"b\"\xc3\xa9", 0, "unexpected character '\xc3\xa9' at offset 6", 6},
    {"{a=\"b\"\x01}", 0, "unexpected character '\\x01' at offset 6", 6},
};

static void test_parse(void)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        char err[256] = "";
        size_t off = 9999;
        struct selector *s = selector_parse(c->text, err, sizeof err, &off);
        if (c->count) {
            CHECK(s != NULL, "parse [%s]: unexpected error: %s", c->text, err);
            if (s) {
                CHECK(selector_count(s) == c->count, "parse [%s]: %zu matchers, want %zu", c->text,
                      selector_count(s), c->count);
                CHECK(strcmp(selector_text(s), c->text) == 0, "parse [%s]: text [%s]", c->text,
                      selector_text(s));
            }
        } else {
            CHECK(s == NULL, "parse [%s]: accepted, want error %s", c->text, c->err);
            CHECK(strstr(err, c->err) != NULL, "parse [%s]: error [%s], want [%s]", c->text, err,
                  c->err);
            CHECK(off == c->offset, "parse [%s]: offset %zu, want %zu (%s)", c->text, off,
                  c->offset, err);
        }
        selector_destroy(s);
    }
    /* NULL error buffer and offset are allowed. */
    CHECK(selector_parse("{", NULL, 0, NULL) == NULL, "NULL err");
}

struct value_case {
    const char *text;
    enum matcher_op op;
    const char *name;
    const char *value;
    size_t value_len;
};

static const struct value_case value_cases[] = {
    {"foo", MATCH_EQ, "__name__", "foo", 3},
    {"{a=\"\\x41\\u00e9\\101\\n\\t\\\\\\\"\"}", MATCH_EQ, "a",
     "A\xc3\xa9"
     "A\n\t\\\"",
     8},
    {"{a='it\\'s \"q\"'}", MATCH_EQ, "a", "it's \"q\"", 8},
    {"{a=`raw\\n\"'\nline`}", MATCH_EQ, "a", "raw\\n\"'\nline", 12},
    {"{a!=\"\\x00z\",b=\"c\"}", MATCH_NEQ, "a", "\0z", 2},
    {"{a=~\"\\\\d+\"}", MATCH_RE, "a", "\\d+", 3},
    {"{a!~\"\\U0001F600\",b=\"c\"}", MATCH_NRE, "a", "\xf0\x9f\x98\x80", 4},
    {"{a=\"\\a\\b\\f\\r\\v\\377\"}", MATCH_EQ, "a", "\a\b\f\r\v\xff", 6},
    {"{a=\"\xe6\x97\xa5\xe6\x9c\xac\"}", MATCH_EQ, "a", "\xe6\x97\xa5\xe6\x9c\xac", 6},
};

static void test_values(void)
{
    for (size_t i = 0; i < sizeof value_cases / sizeof value_cases[0]; i++) {
        const struct value_case *c = &value_cases[i];
        char err[256] = "";
        struct selector *s = selector_parse(c->text, err, sizeof err, NULL);
        CHECK(s != NULL, "value [%s]: %s", c->text, err);
        if (!s)
            continue;
        enum matcher_op op;
        const char *name, *value;
        size_t nl, vl;
        selector_matcher_bytes(s, 0, &op, &name, &nl, &value, &vl);
        CHECK(op == c->op, "value [%s]: op %d", c->text, op);
        CHECK(strcmp(name, c->name) == 0 && nl == strlen(c->name), "value [%s]: name %s", c->text,
              name);
        CHECK(vl == c->value_len && memcmp(value, c->value, vl) == 0,
              "value [%s]: value [%s] len %zu", c->text, value, vl);
        selector_destroy(s);
    }
}

/* ---- matching ------------------------------------------------------------- */

struct match_case {
    const char *sel;
    const char *labels[8]; /* name, value, ... NULL; values may hold '\n' */
    bool want;
};

static const struct match_case match_cases[] = {
    {"foo", {"__name__", "foo"}, true},
    {"foo", {"__name__", "foobar"}, false},
    {"foo", {"job", "x"}, false},
    {"foo{job=\"a\"}", {"job", "a", "__name__", "foo"}, true}, /* unsorted */
    {"foo{job=\"a\"}", {"__name__", "foo", "job", "b"}, false},
    /* missing labels match as "" */
    {"foo{env!=\"dev\"}", {"__name__", "foo"}, true},
    {"foo{env!=\"dev\"}", {"__name__", "foo", "env", "dev"}, false},
    {"foo{env=\"\"}", {"__name__", "foo"}, true},
    {"foo{env=\"\"}", {"__name__", "foo", "env", "x"}, false},
    {"foo{env=~\"x|\"}", {"__name__", "foo"}, true},
    {"foo{env=~\"x?\"}", {"__name__", "foo"}, true},
    {"foo{env=~\"x+\"}", {"__name__", "foo"}, false},
    {"foo{env!~\"x+\"}", {"__name__", "foo"}, true},
    {"foo{env=~\".*\"}", {"__name__", "foo"}, true},
    {"foo{env=~\".+\"}", {"__name__", "foo"}, false},
    /* anchoring */
    {"{a=~\"a\"}", {"a", "ab"}, false},
    {"{a=~\"a\"}", {"a", "ba"}, false},
    {"{a=~\"a\"}", {"a", "a"}, true},
    {"{a=~\"a\"}", {"a", "a\n"}, false},
    {"{a=~\"a$\"}", {"a", "a\n"}, false},
    {"{a=~\"^a$\"}", {"a", "a"}, true},
    {"{a=~\"b.\"}", {"a", "bxy"}, false},
    {"{a=~\"a|b\"}", {"a", "a"}, true},
    {"{a=~\"a|b\"}", {"a", "b"}, true},
    {"{a=~\"a|b\"}", {"a", "ab"}, false},
    {"{a=~\"a|b.*\"}", {"a", "ax"}, false},
    {"{a=~\"a|b.*\"}", {"a", "bx"}, true},
    {"{a=~\"x.*|y\"}", {"a", "zy"}, false},
    {"{a=~\"(a|b)c\"}", {"a", "bc"}, true},
    /* negation */
    {"m{a!~\"a|b\"}", {"a", "c", "__name__", "m"}, true},
    {"m{a!~\"a|b\"}", {"a", "a", "__name__", "m"}, false},
    {"m{a!~\"a.*\"}", {"a", "ba", "__name__", "m"}, true},
    {"m{a!~\"a.*\"}", {"a", "ab", "__name__", "m"}, false},
    {"m{a!=\"x\"}", {"a", "y", "__name__", "m"}, true},
    /* newlines: `.` does not match them (Prometheus 2.x) unless (?s) */
    {"m{a=~\".*\"}", {"__name__", "m", "a", "x\ny"}, false},
    {"{a=~\".+\"}", {"a", "x\ny"}, false},
    {"{a=~\"x.*\"}", {"a", "x\ny"}, false},
    {"{a=~\".*y\"}", {"a", "x\ny"}, false},
    {"{a=~\".*-.*\"}", {"a", "x-\ny"}, false},
    {"m{a=~\"(?s).*\"}", {"__name__", "m", "a", "x\ny"}, true},
    {"{a=~\"x\\\\ny\"}", {"a", "x\ny"}, true},
    {"{a=~\"x\\ny\"}", {"a", "x\ny"}, true},
    /* UTF-8 */
    {"{a=~\".\"}", {"a", "\xc3\xa9"}, true},
    {"{a=~\"..\"}", {"a", "\xc3\xa9"}, false},
    {"{a=~\"\xc3\xa9.\"}", {"a", "\xc3\xa9\xe6\x97\xa5"}, true},
    {"{a=\"\xe6\x97\xa5\"}", {"a", "\xe6\x97\xa5"}, true},
    {"{a=~\"[^a]\"}", {"a", "\xe6\x97\xa5"}, true},
    {"{a=~\"\\\\p{Han}+\"}", {"a", "\xe6\x97\xa5\xe6\x9c\xac"}, true},
    {"{a=~\"(?i)\xc3\xa9\"}", {"a", "\xc3\x89"}, true},
    {"{a=~\"x.\"}", {"a", "x\xff"}, false}, /* invalid UTF-8 never matches `.` */
    {"{a=~\"x.*\"}", {"a", "x\xff"}, true}, /* but `lit.*` is a shortcut, like RE2 */
    /* escapes in the matched value */
    {"{a=\"tab\\there\"}", {"a", "tab\there"}, true},
    {"{a=\"\\u00e9\"}", {"a", "\xc3\xa9"}, true},
    /* shortcuts and case folding */
    {"{a=~\"(?i)foo\"}", {"a", "FoO"}, true},
    {"{a=~\"foo|bar|baz\"}", {"a", "baz"}, true},
    {"{a=~\"foo|bar|baz\"}", {"a", "ba"}, false},
    {"{a=~\"api-.*\"}", {"a", "api-1"}, true},
    {"{a=~\".*-api\"}", {"a", "x-api"}, true},
    {"{a=~\".*-api.*\"}", {"a", "x-api-y"}, true},
    {"{a=~\".*-api.*\"}", {"a", "x-ap"}, false},
    {"{a=~\"5..\"}", {"a", "503"}, true},
    {"{a=~\"5..\"}", {"a", "5030"}, false},
    {"{__name__=~\"job:.*\", env!=\"dev\"}", {"__name__", "job:x:rate5m", "env", "prod"}, true},
    {"{__name__=~\"job:.*\", env!=\"dev\"}", {"__name__", "job:x:rate5m", "env", "dev"}, false},
    {"{__name__=~\"job:.*\", env!=\"dev\"}", {"__name__", "node_load1"}, false},
};

/* Pack name/value pairs into one buffer with no NUL between them, so a
 * matcher that relied on NUL termination would read the next string. */
static size_t make_labels(const char *const *pairs, struct label *out, char *buf)
{
    size_t n = 0, off = 0;
    for (size_t i = 0; pairs[i] && pairs[i + 1]; i += 2) {
        size_t nl = strlen(pairs[i]), vl = strlen(pairs[i + 1]);
        memcpy(buf + off, pairs[i], nl);
        out[n].name = buf + off;
        out[n].name_len = (uint32_t)nl;
        off += nl;
        memcpy(buf + off, pairs[i + 1], vl);
        out[n].value = buf + off;
        out[n].value_len = (uint32_t)vl;
        off += vl;
        n++;
    }
    buf[off] = 'Z';
    return n;
}

static void test_match(void)
{
    for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
        const struct match_case *c = &match_cases[i];
        char err[256] = "";
        struct selector *s = selector_parse(c->sel, err, sizeof err, NULL);
        CHECK(s != NULL, "match [%s]: parse error %s", c->sel, err);
        if (!s)
            continue;
        struct label l[4];
        char buf[256];
        size_t n = make_labels(c->labels, l, buf);
        bool got = selector_match(s, l, n);
        char desc[256];
        labels_format(l, n, desc, sizeof desc);
        CHECK(got == c->want, "match [%s] against %s: got %d want %d", c->sel, desc, got, c->want);
        selector_destroy(s);
    }
}

/* The shortcuts must agree with PCRE2: `(?:re)` has the same meaning but is
 * never taken by a shortcut. */
static void test_shortcuts_agree(void)
{
    static const char *const patterns[] = {
        "",
        "foo",
        "foo|bar",
        "a||b",
        "|",
        ".*",
        ".+",
        "foo.*",
        ".*foo",
        ".*foo.*",
        ".*.*",
        "a-b c",
        ".*\n.*",
        "x\n.*",
        ".*\nx",
        "\xc3\xa9.*",
        "f o.*",
        ",|;",
        "a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q|r|s|t|u|v|w|x|y|zz",
    };
    static const char *const values[] = {
        "",      "foo", "bar", "foobar", "xfoo",  "xfooy", "fo",        "a",
        "b",     "a|b", "\n",  "foo\n",  "\nfoo", "x\nx",  "x\n",       "\nx",
        "a-b c", "f o", "zz",  "z",      ",",     ";",     "\xc3\xa9x", "\xc3\xa9",
    };
    /* Invalid UTF-8 is left out on purpose: there the shortcuts follow RE2
     * (`.*` accepts any byte) and PCRE2 does not; see the match table. */
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        struct selector *fast = selector_create();
        struct selector *slow = selector_create();
        char wrapped[128];
        snprintf(wrapped, sizeof wrapped, "(?:%s)", patterns[i]);
        char err[256] = "";
        CHECK(selector_add(fast, MATCH_RE, "a", 1, patterns[i], strlen(patterns[i]), err,
                           sizeof err) == 0,
              "add %s: %s", patterns[i], err);
        CHECK(selector_add(slow, MATCH_RE, "a", 1, wrapped, strlen(wrapped), err, sizeof err) == 0,
              "add %s: %s", wrapped, err);
        for (size_t j = 0; j < sizeof values / sizeof values[0]; j++) {
            struct label l = {"a", values[j], 1, (uint32_t)strlen(values[j])};
            bool a = selector_match(fast, &l, 1), b = selector_match(slow, &l, 1);
            CHECK(a == b, "shortcut /%s/ on [%s]: fast %d, pcre %d", patterns[i], values[j], a, b);
        }
        selector_destroy(fast);
        selector_destroy(slow);
    }
}

/* ---- built selectors -------------------------------------------------------- */

static void test_create(void)
{
    struct selector *s = selector_create();
    CHECK(s && strcmp(selector_text(s), "{}") == 0, "empty text [%s]", s ? selector_text(s) : "");
    CHECK(selector_count(s) == 0 && selector_match(s, NULL, 0), "empty selector matches all");
    char err[256] = "";
    CHECK(selector_add(s, MATCH_EQ, "__name__xx", 8, "upxx", 2, err, sizeof err) == 0, "%s", err);
    CHECK(selector_add(s, MATCH_RE, "job", 3, "a\"b\n\\\x01\xc3\xa9.*", 10, err, sizeof err) == 0,
          "%s", err);
    CHECK(selector_add(s, MATCH_NRE, "x", 1, "(", 1, err, sizeof err) == -1, "bad regex accepted");
    CHECK(strstr(err, "invalid regex \"(\": missing closing parenthesis") != NULL, "err [%s]", err);
    CHECK(selector_count(s) == 2, "failed add changed the count");
    CHECK(selector_add(s, MATCH_NEQ, "e", 1, NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(selector_add(s, MATCH_EQ, "f", 1, "\xff\t\r", 3, err, sizeof err) == 0, "%s", err);
    const char *want = "{__name__=\"up\",job=~\"a\\\"b\\n\\\\\\x01\xc3\xa9.*\",e!=\"\","
                       "f=\"\\xff\\t\\r\"}";
    CHECK(strcmp(selector_text(s), want) == 0, "canonical text [%s] want [%s]", selector_text(s),
          want);
    enum matcher_op op;
    const char *name, *value;
    selector_matcher(s, 1, &op, &name, &value);
    CHECK(op == MATCH_RE && strcmp(name, "job") == 0, "matcher 1");
    CHECK(strcmp(selector_op_str(MATCH_NRE), "!~") == 0, "op str");

    /* The canonical text parses back to the same matchers. */
    char perr[256] = "";
    struct selector *p = selector_parse(selector_text(s), perr, sizeof perr, NULL);
    CHECK(p != NULL, "reparse [%s]: %s", selector_text(s), perr);
    if (p) {
        CHECK(selector_count(p) == selector_count(s), "reparse count");
        for (size_t i = 0; i < selector_count(s) && i < selector_count(p); i++) {
            enum matcher_op o1, o2;
            const char *n1, *n2, *v1, *v2;
            size_t nl1, nl2, vl1, vl2;
            selector_matcher_bytes(s, i, &o1, &n1, &nl1, &v1, &vl1);
            selector_matcher_bytes(p, i, &o2, &n2, &nl2, &v2, &vl2);
            CHECK(o1 == o2 && nl1 == nl2 && vl1 == vl2 && memcmp(n1, n2, nl1) == 0 &&
                      memcmp(v1, v2, vl1) == 0,
                  "reparse matcher %zu", i);
        }
    }
    selector_destroy(p);

    /* Values built by remote read may contain NUL bytes. */
    struct selector *z = selector_create();
    CHECK(selector_add(z, MATCH_EQ, "a", 1, "x\0y", 3, err, sizeof err) == 0, "%s", err);
    struct label l1 = {"a", "x\0y", 1, 3}, l2 = {"a", "x", 1, 1};
    CHECK(selector_match(z, &l1, 1) && !selector_match(z, &l2, 1), "NUL inside value");
    CHECK(strcmp(selector_text(z), "{a=\"x\\x00y\"}") == 0, "text [%s]", selector_text(z));
    selector_destroy(z);

    CHECK(selector_add(s, (enum matcher_op)7, "a", 1, "b", 1, err, sizeof err) == -1, "bad op");
    selector_destroy(s);
    selector_destroy(NULL);

    /* Parsed selectors are immutable. */
    struct selector *q = selector_parse("foo", NULL, 0, NULL);
    CHECK(selector_add(q, MATCH_EQ, "a", 1, "b", 1, err, sizeof err) == -1, "add to parsed");
    selector_destroy(q);

    /* The matcher cap. */
    struct selector *big = selector_create();
    int rc = 0;
    for (unsigned i = 0; i <= SELECTOR_MAX_MATCHERS && rc == 0; i++)
        rc = selector_add(big, MATCH_EQ, "a", 1, "b", 1, err, sizeof err);
    CHECK(rc == -1 && selector_count(big) == SELECTOR_MAX_MATCHERS, "matcher cap: %zu",
          selector_count(big));
    selector_destroy(big);
}

/* A catastrophic regex hits the match limit and fails closed both ways. */
static void test_match_limit(void)
{
    char value[64];
    memset(value, 'a', 40);
    value[40] = '\0';
    struct label l = {"a", value, 1, 40};
    uint64_t before = selector_regex_failures();
    struct selector *re = selector_create();
    struct selector *nre = selector_create();
    char err[256] = "";
    CHECK(selector_add(re, MATCH_RE, "a", 1, "(a+)+(b|c)", 10, err, sizeof err) == 0, "%s", err);
    CHECK(selector_add(nre, MATCH_NRE, "a", 1, "(a+)+(b|c)", 10, err, sizeof err) == 0, "%s", err);
    CHECK(!selector_match(re, &l, 1), "=~ over the limit must not match");
    CHECK(!selector_match(nre, &l, 1), "!~ over the limit must not match either");
    CHECK(selector_regex_failures() >= before + 2, "failures %llu -> %llu",
          (unsigned long long)before, (unsigned long long)selector_regex_failures());
    selector_destroy(re);
    selector_destroy(nre);
}

/* ---- threads ------------------------------------------------------------------ */

struct thread_arg {
    const struct selector *s;
    int matched;
};

static void *match_thread(void *p)
{
    struct thread_arg *a = p;
    char v[32];
    for (int i = 0; i < 2000; i++) {
        int len = snprintf(v, sizeof v, "pod-%d-x", i);
        struct label l[2] = {{"__name__", "up", 8, 2}, {"pod", v, 3, (uint32_t)len}};
        if (selector_match(a->s, l, 2))
            a->matched++;
    }
    return NULL;
}

static void test_threads(void)
{
    struct selector *s = selector_parse("up{pod=~\"pod-[0-9]*5-(x|y)\"}", NULL, 0, NULL);
    CHECK(s != NULL, "thread selector");
    if (!s)
        return;
    pthread_t t[4];
    struct thread_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i].s = s;
        a[i].matched = 0;
        pthread_create(&t[i], NULL, match_thread, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(a[i].matched == 200, "thread %d matched %d, want 200", i, a[i].matched);
    }
    selector_destroy(s);
}

int main(void)
{
    test_parse();
    test_values();
    test_match();
    test_shortcuts_agree();
    test_create();
    test_match_limit();
    test_threads();
    return test_main_end("test_selector");
}
