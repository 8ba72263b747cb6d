/*
 * config.c — loads and validates the YAML configuration into a `struct
 * config` (config.h); the key reference is docs/configuration.md.
 *
 * Two passes. First, libyaml's event API builds a small tree of nodes that
 * remember their line and column; aliases become shared references to the
 * anchored node (never copies), nesting depth, node count and items per
 * collection are capped while reading. Second, the schema walk converts the
 * tree into the config, reporting every problem it finds (unknown and
 * duplicate keys, wrong types, ranges, enums, selectors, cross-field rules)
 * as `file:line:col: message` and carrying on, so one run shows them all.
 * Each node visited counts toward CONFIG_MAX_VISITS so that alias expansion
 * stays bounded.
 *
 * It deliberately does not resolve YAML merge keys (`<<`), tags beyond the
 * plain/quoted distinction, or YAML 1.1 sexagesimal/hex numbers; it does not
 * read the files that keys name (password_file, tls files) — their users do,
 * so that a reload picks up rotated secrets. libyaml is included only here.
 */
#include "config.h"

#include <yaml.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "limits.h"

/* ---- the YAML tree --------------------------------------------------------- */

enum node_type { NODE_SCALAR, NODE_SEQ, NODE_MAP };

struct node {
    enum node_type type;
    bool plain;    /* plain scalar (not quoted, not a block scalar, no !!str tag) */
    bool complete; /* end event seen: an alias may refer to it */
    int line, col; /* 1-based start */
    int end_line;
    char *s; /* scalar bytes, NUL-terminated */
    size_t len;
    size_t n, cap; /* children: items, or key, value, key, value ... */
    struct node **kids;
    struct node *next_alloc;
};

struct anchor {
    char *name;
    struct node *node;
};

struct err_rec {
    int line, col;
    char *text;
};

struct ctx {
    const char *name;
    const char *src;
    size_t srclen;
    char *errbuf;
    size_t errcap, errlen;
    int nerr;
    struct err_rec *errs; /* CONFIG_MAX_ERRORS slots, allocated on first error */
    size_t nstored;
    bool fatal;  /* stop walking: error cap or visit budget hit */
    bool capped; /* more than CONFIG_MAX_ERRORS errors */
    size_t visits;
    size_t nodes;
    struct node *allocs;
    struct anchor *anchors;
    size_t nanchors, anchors_cap;
    int scan_line; /* scalar_column's cursor: line scan_line starts at scan_pos */
    size_t scan_pos, scanned;
};

static void err_line(struct ctx *c, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Record one error (line 0 = no position); they are written out sorted by
 * position by errors_flush(). */
static void err_line(struct ctx *c, int line, int col, const char *fmt, ...)
{
    if (c->nerr >= (int)CONFIG_MAX_ERRORS) {
        c->capped = true;
        c->fatal = true;
        return;
    }
    c->nerr++;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!c->errs) {
        c->errs = calloc(CONFIG_MAX_ERRORS, sizeof *c->errs);
        if (!c->errs)
            return; /* still counted */
    }
    struct err_rec *e = &c->errs[c->nstored];
    e->line = line;
    e->col = col;
    e->text = strdup(msg);
    if (e->text)
        c->nstored++;
}

/* Write the recorded errors to errbuf in file order, then free them. */
static void errors_flush(struct ctx *c)
{
    /* Insertion sort keeps equal positions in the order found. */
    for (size_t i = 1; i < c->nstored; i++) {
        struct err_rec key = c->errs[i];
        size_t j = i;
        while (j > 0 && (c->errs[j - 1].line > key.line ||
                         (c->errs[j - 1].line == key.line && c->errs[j - 1].col > key.col))) {
            c->errs[j] = c->errs[j - 1];
            j--;
        }
        c->errs[j] = key;
    }
    /* Whole lines only; when they do not all fit, a last line says so. */
    size_t shown = 0;
    char line[1400];
    for (size_t i = 0; i < c->nstored; i++) {
        const struct err_rec *e = &c->errs[i];
        int w;
        if (e->line > 0)
            w = snprintf(line, sizeof line, "%s:%d:%d: %s\n", c->name, e->line, e->col, e->text);
        else
            w = snprintf(line, sizeof line, "%s: %s\n", c->name, e->text);
        free(e->text);
        if (w <= 0 || !c->errbuf || shown < i)
            continue;
        size_t len = (size_t)w < sizeof line ? (size_t)w : sizeof line - 1;
        if (c->errlen + len + 80 < c->errcap) {
            memcpy(c->errbuf + c->errlen, line, len + 1);
            c->errlen += len;
            shown++;
        }
    }
    if (c->errbuf && c->errcap > 0) {
        size_t room = c->errcap - c->errlen;
        if (shown < c->nstored)
            snprintf(c->errbuf + c->errlen, room, "%s: %zu more errors not shown\n", c->name,
                     c->nstored - shown);
        else if (c->capped)
            snprintf(c->errbuf + c->errlen, room, "%s: too many errors, stopped after %u\n",
                     c->name, CONFIG_MAX_ERRORS);
        c->errbuf[c->errcap - 1] = '\0';
    }
    free(c->errs);
    c->errs = NULL;
    c->nstored = 0;
}

#define node_err(c, n, ...) err_line((c), (n)->line, (n)->col, __VA_ARGS__)

static struct node *node_new(struct ctx *c, enum node_type type, const yaml_mark_t *start)
{
    if (c->nodes >= CONFIG_MAX_NODES) {
        err_line(c, (int)start->line + 1, (int)start->column + 1,
                 "more than %u YAML nodes in one file", CONFIG_MAX_NODES);
        return NULL;
    }
    struct node *n = calloc(1, sizeof *n);
    if (!n) {
        err_line(c, 0, 0, "out of memory");
        return NULL;
    }
    n->type = type;
    n->line = (int)start->line + 1;
    n->col = (int)start->column + 1;
    n->end_line = n->line;
    n->next_alloc = c->allocs;
    c->allocs = n;
    c->nodes++;
    return n;
}

static void tree_free(struct ctx *c)
{
    struct node *n = c->allocs;
    while (n) {
        struct node *next = n->next_alloc;
        free(n->s);
        free(n->kids);
        free(n);
        n = next;
    }
    c->allocs = NULL;
    for (size_t i = 0; i < c->nanchors; i++)
        free(c->anchors[i].name);
    free(c->anchors);
    c->anchors = NULL;
    c->nanchors = c->anchors_cap = 0;
}

static int node_append(struct ctx *c, struct node *parent, struct node *kid)
{
    size_t max = parent->type == NODE_MAP ? 2 * (size_t)CONFIG_MAX_ITEMS : CONFIG_MAX_ITEMS;
    if (parent->n >= max) {
        node_err(c, parent, "more than %u entries in one %s", CONFIG_MAX_ITEMS,
                 parent->type == NODE_MAP ? "mapping" : "sequence");
        return -1;
    }
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        struct node **k = realloc(parent->kids, cap * sizeof *k);
        if (!k) {
            err_line(c, 0, 0, "out of memory");
            return -1;
        }
        parent->kids = k;
        parent->cap = cap;
    }
    parent->kids[parent->n++] = kid;
    return 0;
}

static int anchor_add(struct ctx *c, const yaml_char_t *name, struct node *n)
{
    if (!name)
        return 0;
    if (c->nanchors == c->anchors_cap) {
        size_t cap = c->anchors_cap ? c->anchors_cap * 2 : 8;
        struct anchor *a = realloc(c->anchors, cap * sizeof *a);
        if (!a) {
            err_line(c, 0, 0, "out of memory");
            return -1;
        }
        c->anchors = a;
        c->anchors_cap = cap;
    }
    char *dup = strdup((const char *)name);
    if (!dup) {
        err_line(c, 0, 0, "out of memory");
        return -1;
    }
    c->anchors[c->nanchors].name = dup;
    c->anchors[c->nanchors].node = n;
    c->nanchors++;
    return 0;
}

static struct node *anchor_find(struct ctx *c, const char *name)
{
    /* The latest definition wins, as YAML says. */
    for (size_t i = c->nanchors; i-- > 0;)
        if (strcmp(c->anchors[i].name, name) == 0)
            return c->anchors[i].node;
    return NULL;
}

/* Line and column (1-based) of a byte offset, for reader errors that carry
 * no mark. */
static void offset_position(const struct ctx *c, size_t off, int *line, int *col)
{
    int l = 1, k = 1;
    for (size_t i = 0; i < off && i < c->srclen; i++) {
        if (c->src[i] == '\n') {
            l++;
            k = 1;
        } else if (((unsigned char)c->src[i] & 0xc0) != 0x80) {
            k++;
        }
    }
    *line = l;
    *col = k;
}

static void report_parser_error(struct ctx *c, const yaml_parser_t *p)
{
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
    if (p->error == YAML_READER_ERROR)
        offset_position(c, p->problem_offset, &line, &col);
    const char *problem = p->problem ? p->problem : "syntax error";
    if (p->error == YAML_MEMORY_ERROR)
        problem = "out of memory";
    if (p->context)
        err_line(c, line, col, "yaml: %s (%s at line %d, column %d)", problem, p->context,
                 (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    else
        err_line(c, line, col, "yaml: %s", problem);
}

/* Read the whole stream into a tree. *root is NULL for an empty document.
 * Returns -1 after reporting an error. */
static int tree_build(struct ctx *c, const char *buf, size_t len, struct node **root)
{
    yaml_parser_t p;
    struct node *stack[CONFIG_MAX_DEPTH];
    size_t depth = 0;
    int docs = 0, rc = -1;
    bool done = false;
    *root = NULL;
    if (!yaml_parser_initialize(&p)) {
        err_line(c, 0, 0, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            report_parser_error(c, &p);
            goto out;
        }
        struct node *n = NULL;
        const yaml_char_t *anchor = NULL;
        bool push = false, fail = false;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                err_line(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                         "yaml: only one document per file is supported");
                fail = true;
            }
            break;
        case YAML_SCALAR_EVENT:
            n = node_new(c, NODE_SCALAR, &ev.start_mark);
            if (!n) {
                fail = true;
                break;
            }
            n->complete = true;
            n->end_line = (int)ev.end_mark.line + 1;
            n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                       !(ev.data.scalar.tag &&
                         strcmp((const char *)ev.data.scalar.tag, YAML_STR_TAG) == 0);
            n->s = malloc(ev.data.scalar.length + 1);
            if (!n->s) {
                err_line(c, 0, 0, "out of memory");
                fail = true;
                break;
            }
            memcpy(n->s, ev.data.scalar.value, ev.data.scalar.length);
            n->s[ev.data.scalar.length] = '\0';
            n->len = ev.data.scalar.length;
            anchor = ev.data.scalar.anchor;
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (depth >= CONFIG_MAX_DEPTH) {
                err_line(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                         "YAML nested deeper than %u levels", CONFIG_MAX_DEPTH);
                fail = true;
                break;
            }
            n = node_new(c, ev.type == YAML_MAPPING_START_EVENT ? NODE_MAP : NODE_SEQ,
                         &ev.start_mark);
            if (!n) {
                fail = true;
                break;
            }
            anchor = ev.type == YAML_MAPPING_START_EVENT ? ev.data.mapping_start.anchor
                                                         : ev.data.sequence_start.anchor;
            push = true;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (depth > 0) {
                stack[depth - 1]->complete = true;
                stack[depth - 1]->end_line = (int)ev.end_mark.line + 1;
                depth--;
            }
            break;
        case YAML_ALIAS_EVENT:
            n = anchor_find(c, (const char *)ev.data.alias.anchor);
            if (!n) {
                err_line(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                         "yaml: unknown anchor \"%s\"", (const char *)ev.data.alias.anchor);
                fail = true;
            } else if (!n->complete) {
                err_line(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                         "yaml: alias \"%s\" refers to a node that contains it",
                         (const char *)ev.data.alias.anchor);
                fail = true;
                n = NULL;
            }
            break;
        default:
            break;
        }
        if (!fail && n) {
            if (depth == 0)
                *root = n;
            else if (node_append(c, stack[depth - 1], n) < 0)
                fail = true;
            if (!fail && anchor && anchor_add(c, anchor, n) < 0)
                fail = true;
            if (!fail && push)
                stack[depth++] = n;
        }
        yaml_event_delete(&ev);
        if (fail)
            goto out;
    }
    rc = 0;
out:
    yaml_parser_delete(&p);
    return rc;
}

/* ---- schema helpers ------------------------------------------------------------- */

static bool visit(struct ctx *c, const struct node *n)
{
    if (c->fatal)
        return false;
    if (++c->visits > CONFIG_MAX_VISITS) {
        node_err(c, n, "more than %u YAML nodes visited (aliases expand too much)",
                 CONFIG_MAX_VISITS);
        c->fatal = true;
        return false;
    }
    return true;
}

static bool is_null(const struct node *n)
{
    if (!n)
        return true;
    if (n->type != NODE_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->s, "~") == 0 || strcmp(n->s, "null") == 0 ||
           strcmp(n->s, "Null") == 0 || strcmp(n->s, "NULL") == 0;
}

static const char *kind_name(const struct node *n)
{
    if (is_null(n))
        return "null";
    switch (n->type) {
    case NODE_MAP:
        return "a mapping";
    case NODE_SEQ:
        return "a sequence";
    case NODE_SCALAR:
        break;
    }
    return n->plain ? "a plain scalar" : "a string";
}

/* "path.key", or "key" at the top level. */
static const char *join(char *buf, size_t cap, const char *path, const char *key)
{
    if (path && *path)
        snprintf(buf, cap, "%s.%s", path, key);
    else
        snprintf(buf, cap, "%s", key);
    return buf;
}

/* Quote a scalar for a message, cut at 60 bytes. */
static const char *quoted(const struct node *n, char *buf, size_t cap)
{
    if (n->type != NODE_SCALAR) {
        snprintf(buf, cap, "%s", kind_name(n));
        return buf;
    }
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < n->len && o + 8 < cap; i++) {
        unsigned char ch = (unsigned char)n->s[i];
        if (i == 60) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static bool key_is(const struct node *k, const char *name)
{
    return k->type == NODE_SCALAR && strlen(name) == k->len && memcmp(k->s, name, k->len) == 0;
}

struct key_ref {
    const struct node *k;
    size_t idx;
};

static int key_ref_cmp(const struct key_ref *a, const struct key_ref *b, bool nocase)
{
    if (a->k->len != b->k->len)
        return a->k->len < b->k->len ? -1 : 1;
    int c = nocase ? strncasecmp(a->k->s, b->k->s, a->k->len) : memcmp(a->k->s, b->k->s, a->k->len);
    if (c != 0)
        return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int key_ref_cmp_case(const void *a, const void *b)
{
    return key_ref_cmp(a, b, false);
}

static int key_ref_cmp_nocase(const void *a, const void *b)
{
    return key_ref_cmp(a, b, true);
}

/* Report every key of mapping m that repeats an earlier one. Sorting keeps
 * this O(n log n): a mapping may have CONFIG_MAX_ITEMS keys and be visited
 * many times through aliases. */
static void report_duplicates(struct ctx *c, const struct node *m, const char *path, bool nocase)
{
    size_t n = m->n / 2, k = 0;
    if (n < 2)
        return;
    struct key_ref *refs = malloc(n * sizeof *refs);
    if (!refs) {
        err_line(c, 0, 0, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (m->kids[2 * i]->type == NODE_SCALAR)
            refs[k++] = (struct key_ref){m->kids[2 * i], i};
    qsort(refs, k, sizeof *refs, nocase ? key_ref_cmp_nocase : key_ref_cmp_case);
    size_t first = 0;
    char q[96];
    for (size_t i = 1; i < k; i++) {
        const struct node *a = refs[first].k, *b = refs[i].k;
        bool same = a->len == b->len && (nocase ? strncasecmp(a->s, b->s, a->len) == 0
                                                : memcmp(a->s, b->s, a->len) == 0);
        if (!same) {
            first = i;
            continue;
        }
        node_err(c, b, "duplicate key %s in %s (first at line %d)", quoted(b, q, sizeof q),
                 *path ? path : "top level", a->line);
    }
    free(refs);
}

/*
 * Check a mapping's keys: report non-string keys, unknown keys (listing the
 * known ones) and duplicates. Returns true when n is a mapping to read from;
 * null is an empty mapping without error (returns false); anything else is
 * reported and returns false.
 */
static bool map_check(struct ctx *c, const struct node *n, const char *path,
                      const char *const *known)
{
    if (!n || !visit(c, n))
        return false;
    if (is_null(n))
        return false;
    if (n->type != NODE_MAP) {
        node_err(c, n, "%s: expected a mapping, got %s", *path ? path : "top level", kind_name(n));
        return false;
    }
    for (size_t i = 0; i + 1 < n->n; i += 2) {
        const struct node *k = n->kids[i];
        if (!visit(c, k))
            return false;
        if (k->type != NODE_SCALAR) {
            node_err(c, k, "%s: keys must be strings, got %s", *path ? path : "top level",
                     kind_name(k));
            continue;
        }
        bool found = false;
        for (size_t j = 0; known[j] && !found; j++)
            found = key_is(k, known[j]);
        char q[96];
        if (!found) {
            char list[512];
            size_t o = 0;
            list[0] = '\0';
            for (size_t j = 0; known[j] && o < sizeof list; j++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", j ? ", " : "", known[j]);
            if (*path)
                node_err(c, k, "unknown key %s in %s (known: %s)", quoted(k, q, sizeof q), path,
                         list);
            else
                node_err(c, k, "unknown key %s at top level (known: %s)", quoted(k, q, sizeof q),
                         list);
            continue;
        }
    }
    report_duplicates(c, n, path, false);
    return true;
}

/* The value of `key` in mapping m (first occurrence), or NULL when the key
 * is absent or its value is null. */
static const struct node *map_get(const struct node *m, const char *key)
{
    if (!m || m->type != NODE_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < m->n; i += 2)
        if (key_is(m->kids[i], key))
            return is_null(m->kids[i + 1]) ? NULL : m->kids[i + 1];
    return NULL;
}

/* The key node itself, for "missing" errors on null values. */
static const struct node *map_key(const struct node *m, const char *key)
{
    if (!m || m->type != NODE_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < m->n; i += 2)
        if (key_is(m->kids[i], key))
            return m->kids[i];
    return NULL;
}

/* Report a missing required key at the key (null value) or the mapping. */
static void missing(struct ctx *c, const struct node *m, const struct node *where, const char *path,
                    const char *key)
{
    const struct node *k = map_key(m, key);
    if (k)
        node_err(c, k, "%s.%s: must not be empty", path, key);
    else if (m && m->type == NODE_MAP)
        node_err(c, m, "%s: missing required key \"%s\"", path, key);
    else
        node_err(c, where, "%s: missing required key \"%s\"", path, key);
}

/* Scalar value for key, or NULL (absent/null). Reports non-scalars. */
static const struct node *scalar_at(struct ctx *c, const struct node *m, const char *path,
                                    const char *key, const char *what)
{
    const struct node *v = map_get(m, key);
    if (!v || !visit(c, v))
        return NULL;
    if (v->type != NODE_SCALAR) {
        char p[256];
        node_err(c, v, "%s: expected %s, got %s", join(p, sizeof p, path, key), what, kind_name(v));
        return NULL;
    }
    return v;
}

/* 1 set, 0 absent, -1 error. */
static int get_string(struct ctx *c, const struct node *m, const char *path, const char *key,
                      char **out)
{
    const struct node *v = scalar_at(c, m, path, key, "a string");
    if (!v)
        return map_get(m, key) ? -1 : 0;
    if (memchr(v->s, '\0', v->len)) {
        char p[256];
        node_err(c, v, "%s: must not contain NUL bytes", join(p, sizeof p, path, key));
        return -1;
    }
    char *s = strdup(v->s);
    if (!s) {
        err_line(c, 0, 0, "out of memory");
        return -1;
    }
    free(*out);
    *out = s;
    return 1;
}

static int get_bool(struct ctx *c, const struct node *m, const char *path, const char *key,
                    bool *out)
{
    const struct node *v = scalar_at(c, m, path, key, "a boolean (true or false)");
    if (!v)
        return map_get(m, key) ? -1 : 0;
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes",
                                      "YES",  "on",   "On",   "ON",  NULL};
    static const char *const no[] = {"false", "False", "FALSE", "no",  "No",
                                     "NO",    "off",   "Off",   "OFF", NULL};
    if (v->plain) {
        for (size_t i = 0; yes[i]; i++)
            if (strcmp(v->s, yes[i]) == 0) {
                *out = true;
                return 1;
            }
        for (size_t i = 0; no[i]; i++)
            if (strcmp(v->s, no[i]) == 0) {
                *out = false;
                return 1;
            }
    }
    char p[256], q[96];
    node_err(c, v, "%s: expected a boolean (true or false), got %s", join(p, sizeof p, path, key),
             quoted(v, q, sizeof q));
    return -1;
}

/* Decimal integer, optional sign, `_` between digits allowed (YAML 1.1). */
static bool parse_int(const char *s, int64_t *out)
{
    bool neg = false;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (!(*s >= '0' && *s <= '9'))
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s == '_' && s[1] >= '0' && s[1] <= '9')
            continue;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_C(9223372036854775808) - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (!neg && v > INT64_MAX)
        return false;
    *out = neg ? (v == UINT64_C(9223372036854775808) ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return true;
}

static int get_int(struct ctx *c, const struct node *m, const char *path, const char *key,
                   int64_t *out, int64_t min, int64_t max)
{
    const struct node *v = scalar_at(c, m, path, key, "an integer");
    if (!v)
        return map_get(m, key) ? -1 : 0;
    char p[256], q[96];
    int64_t x;
    if (!v->plain || !parse_int(v->s, &x)) {
        node_err(c, v, "%s: expected an integer, got %s", join(p, sizeof p, path, key),
                 quoted(v, q, sizeof q));
        return -1;
    }
    if (x < min || x > max) {
        node_err(c, v, "%s: must be between %lld and %lld, got %lld", join(p, sizeof p, path, key),
                 (long long)min, (long long)max, (long long)x);
        return -1;
    }
    *out = x;
    return 1;
}

static int get_u64(struct ctx *c, const struct node *m, const char *path, const char *key,
                   uint64_t *out, uint64_t min, uint64_t max)
{
    int64_t x = 0;
    int rc = get_int(c, m, path, key, &x, (int64_t)min, (int64_t)max);
    if (rc == 1)
        *out = (uint64_t)x;
    return rc;
}

/* lo/hi bounds; *_open makes the bound exclusive. */
static int get_double(struct ctx *c, const struct node *m, const char *path, const char *key,
                      double *out, double lo, bool lo_open, double hi, bool hi_open)
{
    const struct node *v = scalar_at(c, m, path, key, "a number");
    if (!v)
        return map_get(m, key) ? -1 : 0;
    char p[256], q[96];
    char *end = NULL;
    errno = 0;
    double x = v->plain && v->len > 0 ? strtod(v->s, &end) : NAN;
    bool ok = end && *end == '\0' && errno == 0 && isfinite(x);
    /* strtod also takes hex floats, "inf" and "nan": not numbers in YAML. */
    for (size_t i = 0; ok && i < v->len; i++)
        if (!strchr("0123456789+-.eE", v->s[i]))
            ok = false;
    if (!ok) {
        node_err(c, v, "%s: expected a number, got %s", join(p, sizeof p, path, key),
                 quoted(v, q, sizeof q));
        return -1;
    }
    if (x < lo || (lo_open && x == lo) || x > hi || (hi_open && x == hi)) {
        join(p, sizeof p, path, key);
        if (isinf(hi))
            node_err(c, v, "%s: must be %s %g, got %g", p, lo_open ? "greater than" : "at least",
                     lo, x);
        else
            node_err(c, v, "%s: must be in %c%g, %g%c, got %g", p, lo_open ? '(' : '[', lo, hi,
                     hi_open ? ')' : ']', x);
        return -1;
    }
    *out = x;
    return 1;
}

static int duration_value(struct ctx *c, const struct node *v, const char *path, int64_t *out,
                          int64_t min)
{
    char q[96];
    if (v->type != NODE_SCALAR) {
        node_err(c, v, "%s: expected a duration like 30s, 5m, 1h30m, got %s", path, kind_name(v));
        return -1;
    }
    int64_t ms;
    if (memchr(v->s, '\0', v->len) || config_parse_duration(v->s, &ms) < 0) {
        node_err(c, v, "%s: expected a duration like 30s, 5m, 1h30m, got %s", path,
                 quoted(v, q, sizeof q));
        return -1;
    }
    if (ms < min) {
        if (min == 1)
            node_err(c, v, "%s: must be greater than 0", path);
        else {
            char b[32];
            node_err(c, v, "%s: must be at least %s", path, config_format_duration(min, b, 32));
        }
        return -1;
    }
    *out = ms;
    return 1;
}

static int get_duration(struct ctx *c, const struct node *m, const char *path, const char *key,
                        int64_t *out, int64_t min)
{
    const struct node *v = map_get(m, key);
    if (!v || !visit(c, v))
        return 0;
    char p[256];
    return duration_value(c, v, join(p, sizeof p, path, key), out, min);
}

/* One of names[] (NULL-terminated); *out gets its index. */
static int get_enum(struct ctx *c, const struct node *m, const char *path, const char *key,
                    const char *const *names, int *out)
{
    const struct node *v = scalar_at(c, m, path, key, "a string");
    if (!v)
        return map_get(m, key) ? -1 : 0;
    char list[256], p[256], q[96];
    size_t o = 0;
    for (int i = 0; names[i]; i++) {
        if (strcmp(v->s, names[i]) == 0 && strlen(names[i]) == v->len) {
            *out = i;
            return 1;
        }
        if (o < sizeof list)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", names[i]);
    }
    node_err(c, v, "%s: unknown value %s (one of: %s)", join(p, sizeof p, path, key),
             quoted(v, q, sizeof q), list);
    return -1;
}

static bool valid_label_name(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' ||
              (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

static bool valid_metric_name(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_' ||
                    s[0] == ':'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' ||
              s[i] == ':' || (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

/* RFC 9110 token characters. */
static bool valid_header_name(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(ch > 0x20 && ch < 0x7f) || strchr("\"(),/:;<=>?@[\\]{}", ch))
            return false;
    }
    return true;
}

static void labels_cleanup(struct config_labels *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
        free(l->values[i]);
    }
    free(l->names);
    free(l->values);
    memset(l, 0, sizeof *l);
}

enum labels_kind { LABELS_LABELS, LABELS_ANNOTATIONS, LABELS_HEADERS };

struct pair {
    char *name, *value;
};

static int pair_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pair *)a)->name, ((const struct pair *)b)->name);
}

/* A string→string mapping: label names (reserved `__` prefix refused),
 * annotation names, or HTTP header names. */
static void get_labels(struct ctx *c, const struct node *m, const char *path, const char *key,
                       struct config_labels *out, enum labels_kind kind)
{
    const struct node *v = map_get(m, key);
    char p[256], q[96];
    join(p, sizeof p, path, key);
    if (!v || !visit(c, v))
        return;
    if (v->type != NODE_MAP) {
        node_err(c, v, "%s: expected a mapping, got %s", p, kind_name(v));
        return;
    }
    size_t n = v->n / 2;
    report_duplicates(c, v, p, kind == LABELS_HEADERS);
    out->names = calloc(n ? n : 1, sizeof *out->names);
    out->values = calloc(n ? n : 1, sizeof *out->values);
    if (!out->names || !out->values) {
        err_line(c, 0, 0, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct node *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        if (!visit(c, k) || !visit(c, val))
            return;
        if (k->type != NODE_SCALAR) {
            node_err(c, k, "%s: keys must be strings, got %s", p, kind_name(k));
            continue;
        }
        if (kind == LABELS_HEADERS) {
            if (!valid_header_name(k->s, k->len)) {
                node_err(c, k, "%s: invalid header name %s", p, quoted(k, q, sizeof q));
                continue;
            }
            static const char *const reserved[] = {"authorization",
                                                   "host",
                                                   "content-type",
                                                   "content-encoding",
                                                   "content-length",
                                                   "user-agent",
                                                   "connection",
                                                   "transfer-encoding",
                                                   NULL};
            bool bad = strncasecmp(k->s, "x-prometheus-remote-", 20) == 0;
            for (size_t j = 0; reserved[j] && !bad; j++)
                bad = strcasecmp(k->s, reserved[j]) == 0;
            if (bad) {
                node_err(c, k, "%s: header %s is set by promcast and cannot be configured", p,
                         quoted(k, q, sizeof q));
                continue;
            }
        } else if (!valid_label_name(k->s, k->len)) {
            node_err(c, k, "%s: invalid label name %s (must match [a-zA-Z_][a-zA-Z0-9_]*)", p,
                     quoted(k, q, sizeof q));
            continue;
        } else if (kind == LABELS_LABELS && k->len >= 2 && k->s[0] == '_' && k->s[1] == '_') {
            node_err(c, k, "%s: label name %s is reserved (starts with __)", p,
                     quoted(k, q, sizeof q));
            continue;
        }
        const char *value = "";
        size_t vlen = 0;
        if (!is_null(val)) {
            if (val->type != NODE_SCALAR) {
                node_err(c, val, "%s.%s: expected a string, got %s", p, k->s, kind_name(val));
                continue;
            }
            value = val->s;
            vlen = val->len;
        }
        if (memchr(value, '\0', vlen) ||
            (kind == LABELS_HEADERS && (memchr(value, '\r', vlen) || memchr(value, '\n', vlen)))) {
            node_err(c, val, "%s.%s: value contains a forbidden control character", p, k->s);
            continue;
        }
        out->names[out->n] = strdup(k->s);
        out->values[out->n] = strdup(value);
        if (!out->names[out->n] || !out->values[out->n]) {
            free(out->names[out->n]);
            free(out->values[out->n]);
            err_line(c, 0, 0, "out of memory");
            return;
        }
        out->n++;
    }
    /* Sorted by name, as config.h promises. */
    struct pair *pairs = malloc((out->n ? out->n : 1) * sizeof *pairs);
    if (!pairs) {
        err_line(c, 0, 0, "out of memory");
        return;
    }
    for (size_t i = 0; i < out->n; i++)
        pairs[i] = (struct pair){out->names[i], out->values[i]};
    qsort(pairs, out->n, sizeof *pairs, pair_cmp);
    for (size_t i = 0; i < out->n; i++) {
        out->names[i] = pairs[i].name;
        out->values[i] = pairs[i].value;
    }
    free(pairs);
}

/* http:// or https:// with a host, no spaces or control characters. */
static int get_url(struct ctx *c, const struct node *m, const char *path, const char *key,
                   char **out, bool required, const struct node *where)
{
    char p[256], q[96];
    const char *sub = *path ? path : "top level";
    int rc = get_string(c, m, path, key, out);
    if (rc == 0 && required)
        missing(c, m, where, sub, key);
    if (rc != 1)
        return rc;
    const struct node *v = map_get(m, key);
    const char *u = *out;
    size_t skip = strncasecmp(u, "http://", 7) == 0    ? 7
                  : strncasecmp(u, "https://", 8) == 0 ? 8
                                                       : 0;
    bool ok = skip > 0 && u[skip] != '\0' && !strchr("/?#", u[skip]);
    for (const char *s = u; ok && *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            ok = false;
    if (!ok) {
        node_err(c, v, "%s: expected an http:// or https:// URL with a host, got %s",
                 join(p, sizeof p, path, key), quoted(v, q, sizeof q));
        free(*out);
        *out = NULL;
        return -1;
    }
    return 1;
}

/* Number of UTF-8 characters in s[0..n) (libyaml columns count characters). */
static int utf8_chars(const char *s, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            k++;
    return k;
}

/*
 * Column of byte `off` of scalar v's value in the source, when the scalar is
 * on one line and its source text is its value verbatim (plain, or quoted
 * without escapes); otherwise the scalar's own column.
 */
static int scalar_column(struct ctx *c, const struct node *v, size_t off)
{
    if (v->end_line != v->line || !c->src)
        return v->col;
    /* Find the start of the scalar's line, scanning on from the last line
     * found (errors come mostly in file order); the total scan is capped so
     * that a pathological file cannot make this quadratic. */
    if (v->line < c->scan_line) {
        c->scan_line = 1;
        c->scan_pos = 0;
    }
    size_t pos = c->scan_pos;
    for (int l = c->scan_line; l < v->line && pos < c->srclen; pos++) {
        if (++c->scanned > 4 * (size_t)CONFIG_MAX_FILE_BYTES)
            return v->col;
        if (c->src[pos] == '\n')
            l++;
    }
    c->scan_line = v->line;
    c->scan_pos = pos;
    for (int k = 1; k < v->col && pos < c->srclen; k++) {
        pos++;
        while (pos < c->srclen && ((unsigned char)c->src[pos] & 0xc0) == 0x80)
            pos++;
    }
    if (pos >= c->srclen)
        return v->col;
    int quote = !v->plain && (c->src[pos] == '\'' || c->src[pos] == '"') ? 1 : 0;
    if (!v->plain && !quote)
        return v->col;
    if (pos + (size_t)quote + v->len > c->srclen || memcmp(c->src + pos + quote, v->s, v->len) != 0)
        return v->col;
    if (quote && c->src[pos + (size_t)quote + v->len] != c->src[pos])
        return v->col;
    return v->col + quote + utf8_chars(v->s, off < v->len ? off : v->len);
}

static int get_selector(struct ctx *c, const struct node *m, const char *path, const char *key,
                        char **text, struct selector **sel, const struct node *where)
{
    char p[256];
    join(p, sizeof p, path, key);
    const struct node *v = scalar_at(c, m, path, key, "a selector string");
    if (!v) {
        if (!map_get(m, key))
            missing(c, m, where, path, key);
        return -1;
    }
    char err[512];
    size_t off = 0;
    if (memchr(v->s, '\0', v->len)) {
        node_err(c, v, "%s: invalid selector: NUL byte", p);
        return -1;
    }
    struct selector *s = selector_parse(v->s, err, sizeof err, &off);
    if (!s) {
        err_line(c, v->line, scalar_column(c, v, off), "%s: invalid selector: %s", p, err);
        return -1;
    }
    char *t = strdup(v->s);
    if (!t) {
        selector_destroy(s);
        err_line(c, 0, 0, "out of memory");
        return -1;
    }
    *text = t;
    *sel = s;
    return 1;
}

/* A sequence value for key: returns it, NULL when absent/null; reports
 * non-sequences (and sets *bad). */
static const struct node *seq_at(struct ctx *c, const struct node *m, const char *path,
                                 const char *key, bool *bad)
{
    const struct node *v = map_get(m, key);
    *bad = false;
    if (!v || !visit(c, v))
        return NULL;
    if (v->type != NODE_SEQ) {
        char p[256];
        node_err(c, v, "%s: expected a sequence, got %s", join(p, sizeof p, path, key),
                 kind_name(v));
        *bad = true;
        return NULL;
    }
    return v;
}

/* ---- sections ------------------------------------------------------------------------- */

static const char *const top_keys[] = {"global",      "storage",      "output",      "limits",
                                       "rules",       "remote_write", "remote_read", "alerting",
                                       "alert_rules", "kubernetes",   "scalers",     NULL};

/* Default suffixes of the output series, by enum config_output_kind. */
static const char *const output_keys[OUTPUT__COUNT] = {"yhat", "yhat_lower", "yhat_upper",
                                                       "anomaly_score", "forecast"};

static void parse_global(struct ctx *c, struct config *cfg, const struct node *root)
{
    static const char *const keys[] = {"step", "evaluation_interval", "external_labels", NULL};
    const struct node *g = map_get(root, "global");
    if (!map_check(c, g, "global", keys))
        return;
    get_duration(c, g, "global", "step", &cfg->global.step_ms, 1);
    get_duration(c, g, "global", "evaluation_interval", &cfg->global.evaluation_interval_ms, 1);
    get_labels(c, g, "global", "external_labels", &cfg->global.external_labels, LABELS_LABELS);
}

static void parse_storage(struct ctx *c, struct config *cfg, const struct node *root)
{
    static const char *const keys[] = {"path", "snapshot_interval", "shutdown_timeout", NULL};
    const struct node *s = map_get(root, "storage");
    if (!map_check(c, s, "storage", keys))
        return;
    if (get_string(c, s, "storage", "path", &cfg->storage.path) == 1 && !*cfg->storage.path)
        node_err(c, map_get(s, "path"), "storage.path: must not be empty");
    get_duration(c, s, "storage", "snapshot_interval", &cfg->storage.snapshot_interval_ms, 1000);
    get_duration(c, s, "storage", "shutdown_timeout", &cfg->storage.shutdown_timeout_ms, 1000);
}

/* A metric-name fragment: only characters valid in a metric name. */
static void check_name_part(struct ctx *c, const struct node *m, const char *key, const char *v)
{
    for (const char *p = v; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == ':')) {
            node_err(c, map_get(m, key),
                     "output.%s: \"%s\" may only contain [a-zA-Z0-9_:] (it becomes part of a "
                     "metric name)",
                     key, v);
            return;
        }
    }
}

static void parse_output(struct ctx *c, struct config *cfg, const struct node *root)
{
    static const char *const keys[] = {"prefix",        "yhat",     "yhat_lower",    "yhat_upper",
                                       "anomaly_score", "forecast", "horizon_label", "history",
                                       "close_delay",   NULL};
    struct config_output *o = &cfg->output;
    const struct node *m = map_get(root, "output");
    if (!map_check(c, m, "output", keys))
        return;
    if (get_string(c, m, "output", "prefix", &o->prefix) == 1)
        check_name_part(c, m, "prefix", o->prefix);
    for (int k = 0; k < OUTPUT__COUNT; k++) {
        if (get_string(c, m, "output", output_keys[k], &o->suffix[k]) != 1)
            continue;
        if (!*o->suffix[k])
            node_err(c, map_get(m, output_keys[k]),
                     "output.%s: must not be empty (outputs would collide with their input)",
                     output_keys[k]);
        else
            check_name_part(c, m, output_keys[k], o->suffix[k]);
    }
    if (get_string(c, m, "output", "horizon_label", &o->horizon_label) == 1) {
        const char *h = o->horizon_label;
        bool ok = *h && !(h[0] >= '0' && h[0] <= '9') && strncmp(h, "__", 2) != 0;
        for (const char *p = h; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '_';
        if (!ok)
            node_err(c, map_get(m, "horizon_label"),
                     "output.horizon_label: \"%s\" is not a valid label name", h);
    }
    get_duration(c, m, "output", "history", &o->history_ms, 0);
    get_duration(c, m, "output", "close_delay", &o->close_delay_ms, 0);
    for (int a = 0; a < OUTPUT__COUNT; a++)
        for (int b = a + 1; b < OUTPUT__COUNT; b++)
            if (o->suffix[a] && o->suffix[b] && strcmp(o->suffix[a], o->suffix[b]) == 0)
                node_err(c, m, "output: %s and %s have the same suffix \"%s\"", output_keys[a],
                         output_keys[b], o->suffix[a]);
}

static void parse_limits(struct ctx *c, struct config *cfg, const struct node *root)
{
    static const char *const keys[] = {"max_compressed_request_bytes",
                                       "max_request_bytes",
                                       "max_series_per_request",
                                       "max_labels_per_series",
                                       "max_label_name_length",
                                       "max_label_value_length",
                                       "max_series",
                                       "max_active_series",
                                       "series_idle_ttl",
                                       "max_connections",
                                       "max_inflight_requests",
                                       "request_timeout",
                                       "max_read_request_bytes",
                                       "max_read_queries",
                                       "max_read_response_bytes",
                                       NULL};
    const struct node *l = map_get(root, "limits");
    if (!map_check(c, l, "limits", keys))
        return;
    struct config_limits *x = &cfg->limits;
    const char *p = "limits";
    /* Sizes stay below 2 GiB: snappy and the label types use 32-bit lengths. */
    get_u64(c, l, p, "max_compressed_request_bytes", &x->max_compressed_request_bytes, 1024,
            INT32_MAX);
    get_u64(c, l, p, "max_request_bytes", &x->max_request_bytes, 1024, INT32_MAX);
    get_u64(c, l, p, "max_series_per_request", &x->max_series_per_request, 1, 100000000);
    get_u64(c, l, p, "max_labels_per_series", &x->max_labels_per_series, 1, 65535);
    get_u64(c, l, p, "max_label_name_length", &x->max_label_name_length, 1, 1 << 20);
    get_u64(c, l, p, "max_label_value_length", &x->max_label_value_length, 1, 1 << 24);
    int rs = get_u64(c, l, p, "max_series", &x->max_series, 1, 1000000000);
    int ra = get_u64(c, l, p, "max_active_series", &x->max_active_series, 1, 1000000000);
    get_duration(c, l, p, "series_idle_ttl", &x->series_idle_ttl_ms, 1000);
    get_u64(c, l, p, "max_connections", &x->max_connections, 1, 1000000);
    get_u64(c, l, p, "max_inflight_requests", &x->max_inflight_requests, 1, 100000);
    get_duration(c, l, p, "request_timeout", &x->request_timeout_ms, 1000);
    get_u64(c, l, p, "max_read_request_bytes", &x->max_read_request_bytes, 1024, INT32_MAX);
    get_u64(c, l, p, "max_read_queries", &x->max_read_queries, 1, 100000);
    get_u64(c, l, p, "max_read_response_bytes", &x->max_read_response_bytes, 1024, INT32_MAX);
    if (rs >= 0 && ra >= 0 && x->max_series > x->max_active_series) {
        const struct node *at =
            map_get(l, "max_series") ? map_get(l, "max_series") : map_get(l, "max_active_series");
        node_err(c, at,
                 "limits.max_series (%llu) must not exceed limits.max_active_series (%llu): "
                 "modelled series are a subset of indexed ones",
                 (unsigned long long)x->max_series, (unsigned long long)x->max_active_series);
    }
}

/* Checks of a season or horizon against the rule's step (when known). */
static bool step_multiple(struct ctx *c, const struct node *v, const char *path, int64_t ms,
                          int64_t step, int64_t min_steps)
{
    char a[32], b[32];
    if (step <= 0)
        return true;
    if (ms % step != 0) {
        node_err(c, v, "%s: %s is not a multiple of the step %s", path,
                 config_format_duration(ms, a, sizeof a), config_format_duration(step, b, 32));
        return false;
    }
    if (ms / step < min_steps || ms / step > CONFIG_MAX_MODEL_STEPS) {
        node_err(c, v, "%s: %s must be between %lld and %d steps of %s", path,
                 config_format_duration(ms, a, sizeof a), (long long)min_steps,
                 CONFIG_MAX_MODEL_STEPS, config_format_duration(step, b, 32));
        return false;
    }
    return true;
}

/* seasons / horizons: a sequence of distinct positive durations. Returns
 * the count, or -1 (absent) / -2 (error). */
static int duration_list(struct ctx *c, const struct node *r, const char *path, const char *key,
                         int64_t *out, int max, int64_t step, int64_t min_steps)
{
    bool bad;
    const struct node *v = seq_at(c, r, path, key, &bad);
    if (bad)
        return -2;
    if (!v)
        return -1; /* absent or null: the default */
    char p[256], ip[288];
    join(p, sizeof p, path, key);
    if (v->n > (size_t)max) {
        node_err(c, v, "%s: at most %d entries, got %zu", p, max, v->n);
        return -2;
    }
    int n = 0;
    bool ok = true;
    for (size_t i = 0; i < v->n; i++) {
        const struct node *it = v->kids[i];
        if (!visit(c, it))
            return -2;
        snprintf(ip, sizeof ip, "%s[%zu]", p, i);
        int64_t ms;
        if (duration_value(c, it, ip, &ms, 1) < 0) {
            ok = false;
            continue;
        }
        if (!step_multiple(c, it, ip, ms, step, min_steps)) {
            ok = false;
            continue;
        }
        bool dup = false;
        for (int j = 0; j < n && !dup; j++)
            dup = out[j] == ms;
        if (dup) {
            char a[32];
            node_err(c, it, "%s: duplicate %s", ip, config_format_duration(ms, a, sizeof a));
            ok = false;
            continue;
        }
        out[n++] = ms;
    }
    return ok ? n : -2;
}

static void parse_rule(struct ctx *c, const struct config *cfg, const struct node *r,
                       const char *path, struct config_rule *rule)
{
    static const char *const keys[] = {"match",   "transform",   "model",
                                       "seasons", "horizons",    "interval_coverage",
                                       "step",    "aggregation", NULL};
    static const char *const transforms[] = {"none", "rate", NULL};
    static const char *const models[] = {"auto", "holt_winters", "ar", "level", NULL};
    static const char *const aggs[] = {"last", "mean", "max", NULL};
    struct model_params *mp = &rule->params;
    /* Defaults (as model_params_default, set here so config.c does not
     * depend on model.c). */
    mp->step_ms = cfg->global.step_ms;
    mp->kind = MODEL_AUTO;
    mp->transform = MODEL_TRANSFORM_NONE;
    mp->aggregation = MODEL_AGG_LAST;
    mp->nseasons = -1;
    mp->nhorizons = 2;
    mp->horizon_ms[0] = 15 * 60 * 1000;
    mp->horizon_ms[1] = 60 * 60 * 1000;
    mp->coverage = 0.95;
    rule->step_set = cfg->global.step_ms > 0;

    if (!map_check(c, r, path, keys)) {
        if (is_null(r))
            node_err(c, r, "%s: expected a mapping, got null", path);
        return;
    }
    get_selector(c, r, path, "match", &rule->match_text, &rule->match, r);
    int x;
    if (get_enum(c, r, path, "transform", transforms, &x) == 1)
        mp->transform = (enum model_transform)x;
    if (get_enum(c, r, path, "model", models, &x) == 1)
        mp->kind = (enum model_kind)x;
    if (get_enum(c, r, path, "aggregation", aggs, &x) == 1)
        mp->aggregation = (enum model_aggregation)x;
    get_double(c, r, path, "interval_coverage", &mp->coverage, 0, true, 1, true);
    int step_rc = get_duration(c, r, path, "step", &mp->step_ms, 1);
    if (step_rc == 1)
        rule->step_set = true;
    int64_t step = step_rc < 0 ? 0 : mp->step_ms; /* no step checks on a bad step */

    int64_t seasons[MODEL_MAX_SEASONS];
    int ns = duration_list(c, r, path, "seasons", seasons, MODEL_MAX_SEASONS, step, 2);
    if (ns >= 0) {
        mp->nseasons = ns;
        for (int i = 0; i < ns; i++)
            mp->season_ms[i] = seasons[i];
    }
    int64_t horizons[MODEL_MAX_HORIZONS];
    int nh = duration_list(c, r, path, "horizons", horizons, MODEL_MAX_HORIZONS, step, 1);
    if (nh >= 0) {
        mp->nhorizons = nh;
        for (int i = 0; i < nh; i++)
            mp->horizon_ms[i] = horizons[i];
    }
    /* Default horizons must also fit the step. */
    if (nh == -1 && step > 0) {
        for (int i = 0; i < mp->nhorizons; i++) {
            if (mp->horizon_ms[i] % step != 0 ||
                mp->horizon_ms[i] / step > CONFIG_MAX_MODEL_STEPS) {
                char a[32], b[32];
                node_err(c, r, "%s: the default horizon %s does not fit the step %s; set horizons",
                         path, config_format_duration(mp->horizon_ms[i], a, 32),
                         config_format_duration(step, b, 32));
                break;
            }
        }
    }
}

static void parse_rules(struct ctx *c, struct config *cfg, const struct node *root)
{
    bool bad;
    const struct node *v = seq_at(c, root, "", "rules", &bad);
    if (!v || v->n == 0)
        return;
    cfg->rules = calloc(v->n, sizeof *cfg->rules);
    if (!cfg->rules) {
        err_line(c, 0, 0, "out of memory");
        return;
    }
    cfg->n_rules = v->n;
    for (size_t i = 0; i < v->n && !c->fatal; i++) {
        char path[64];
        snprintf(path, sizeof path, "rules[%zu]", i);
        parse_rule(c, cfg, v->kids[i], path, &cfg->rules[i]);
    }
}

static void tls_cleanup(struct config_tls *t)
{
    free(t->ca_file);
    free(t->cert_file);
    free(t->key_file);
    free(t->server_name);
    memset(t, 0, sizeof *t);
}

static void http_client_cleanup(struct config_http_client *h)
{
    free(h->url);
    free(h->basic_auth_username);
    free(h->basic_auth_password_file);
    free(h->bearer_token_file);
    tls_cleanup(&h->tls);
    labels_cleanup(&h->headers);
    memset(h, 0, sizeof *h);
}

/* The HTTP client keys shared by remote_write, remote_read and
 * alertmanagers (m was already key-checked by the caller). */
static void parse_http_client(struct ctx *c, const struct node *m, const char *path,
                              struct config_http_client *h, const char *timeout_key,
                              int64_t default_timeout_ms)
{
    char p[256];
    h->timeout_ms = default_timeout_ms;
    get_url(c, m, path, "url", &h->url, true, m);
    get_duration(c, m, path, timeout_key, &h->timeout_ms, 1);
    get_labels(c, m, path, "headers", &h->headers, LABELS_HEADERS);
    get_string(c, m, path, "bearer_token_file", &h->bearer_token_file);

    static const char *const ba_keys[] = {"username", "password_file", NULL};
    const struct node *ba = map_get(m, "basic_auth");
    join(p, sizeof p, path, "basic_auth");
    if (map_check(c, ba, p, ba_keys)) {
        if (get_string(c, ba, p, "username", &h->basic_auth_username) == 0)
            missing(c, ba, ba, p, "username");
        if (get_string(c, ba, p, "password_file", &h->basic_auth_password_file) == 0)
            missing(c, ba, ba, p, "password_file");
        if (h->bearer_token_file)
            node_err(c, ba, "%s: at most one of basic_auth and bearer_token_file may be set", path);
    }

    static const char *const tls_keys[] = {
        "ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify", NULL};
    const struct node *t = map_get(m, "tls_config");
    join(p, sizeof p, path, "tls_config");
    if (map_check(c, t, p, tls_keys)) {
        get_string(c, t, p, "ca_file", &h->tls.ca_file);
        get_string(c, t, p, "cert_file", &h->tls.cert_file);
        get_string(c, t, p, "key_file", &h->tls.key_file);
        get_string(c, t, p, "server_name", &h->tls.server_name);
        get_bool(c, t, p, "insecure_skip_verify", &h->tls.insecure_skip_verify);
        if (!h->tls.cert_file != !h->tls.key_file)
            node_err(c, t, "%s: cert_file and key_file must be set together", p);
    }
}

#define HTTP_CLIENT_KEYS "url", "headers", "basic_auth", "bearer_token_file", "tls_config"

static void parse_remote_write(struct ctx *c, struct config *cfg, const struct node *root)
{
    static const char *const keys[] = {HTTP_CLIENT_KEYS, "protocol", "queue", "remote_timeout",
                                       NULL};
    static const char *const qkeys[] = {
        "capacity",    "max_samples_per_send", "batch_send_deadline", "batch_idle_flush",
        "min_backoff", "max_backoff",          "retry_on_http_429",   "shards",
        NULL};
    static const char *const protocols[] = {"v1", "v2", NULL};
    bool bad;
    const struct node *v = seq_at(c, root, "", "remote_write", &bad);
    if (!v || v->n == 0)
        return;
    cfg->remote_write = calloc(v->n, sizeof *cfg->remote_write);
    if (!cfg->remote_write) {
        err_line(c, 0, 0, "out of memory");
        return;
    }
    cfg->n_remote_write = v->n;
    for (size_t i = 0; i < v->n && !c->fatal; i++) {
        struct config_remote_write *w = &cfg->remote_write[i];
        const struct node *m = v->kids[i];
        char path[64], qp[80];
        snprintf(path, sizeof path, "remote_write[%zu]", i);
        w->protocol = 1;
        w->queue_capacity = 100000;
        w->max_samples_per_send = 2000;
        w->batch_send_deadline_ms = 5000;
        w->batch_idle_flush_ms = 200;
        w->min_backoff_ms = 30;
        w->max_backoff_ms = 5000;
        w->retry_on_http_429 = true;
        w->shards = 4;
        w->http.timeout_ms = 30000;
        if (!map_check(c, m, path, keys)) {
            if (is_null(m))
                node_err(c, m, "%s: expected a mapping, got null", path);
            continue;
        }
        parse_http_client(c, m, path, &w->http, "remote_timeout", 30000);
        int proto;
        if (get_enum(c, m, path, "protocol", protocols, &proto) == 1)
            w->protocol = proto + 1;
        const struct node *q = map_get(m, "queue");
        join(qp, sizeof qp, path, "queue");
        if (map_check(c, q, qp, qkeys)) {
            int rc = get_u64(c, q, qp, "capacity", &w->queue_capacity, 1, 100000000);
            int rm =
                get_u64(c, q, qp, "max_samples_per_send", &w->max_samples_per_send, 1, 1000000);
            get_duration(c, q, qp, "batch_send_deadline", &w->batch_send_deadline_ms, 1);
            get_duration(c, q, qp, "batch_idle_flush", &w->batch_idle_flush_ms, 0);
            int r1 = get_duration(c, q, qp, "min_backoff", &w->min_backoff_ms, 1);
            int r2 = get_duration(c, q, qp, "max_backoff", &w->max_backoff_ms, 1);
            get_bool(c, q, qp, "retry_on_http_429", &w->retry_on_http_429);
            get_u64(c, q, qp, "shards", &w->shards, 1, 1000);
            if (rc >= 0 && rm >= 0 && w->max_samples_per_send > w->queue_capacity)
                node_err(c, q, "%s: max_samples_per_send (%llu) must not exceed capacity (%llu)",
                         qp, (unsigned long long)w->max_samples_per_send,
                         (unsigned long long)w->queue_capacity);
            if (r1 >= 0 && r2 >= 0 && w->min_backoff_ms > w->max_backoff_ms)
                node_err(c, q, "%s: min_backoff must not exceed max_backoff", qp);
        }
    }
}

static void parse_remote_read(struct ctx *c, struct config *cfg, const struct node *root)
{
    static const char *const keys[] = {
        HTTP_CLIENT_KEYS,      "enabled",        "lookback", "max_series_per_request",
        "requests_per_second", "remote_timeout", NULL};
    struct config_remote_read *r = &cfg->remote_read;
    r->lookback_ms = 7LL * 24 * 3600 * 1000;
    r->max_series_per_request = 100;
    r->requests_per_second = 10;
    r->http.timeout_ms = 60000;
    const struct node *m = map_get(root, "remote_read");
    if (!map_check(c, m, "remote_read", keys))
        return;
    r->enabled = true;
    parse_http_client(c, m, "remote_read", &r->http, "remote_timeout", 60000);
    get_bool(c, m, "remote_read", "enabled", &r->enabled);
    get_duration(c, m, "remote_read", "lookback", &r->lookback_ms, 1);
    get_u64(c, m, "remote_read", "max_series_per_request", &r->max_series_per_request, 1, 1000000);
    get_double(c, m, "remote_read", "requests_per_second", &r->requests_per_second, 0, true, 1e6,
               false);
}

static void parse_alerting(struct ctx *c, struct config *cfg, const struct node *root)
{
    static const char *const keys[] = {"resend_delay", "alertmanagers", NULL};
    static const char *const am_keys[] = {HTTP_CLIENT_KEYS, "timeout", NULL};
    cfg->alerting.resend_delay_ms = 60000;
    const struct node *a = map_get(root, "alerting");
    if (!map_check(c, a, "alerting", keys))
        return;
    get_duration(c, a, "alerting", "resend_delay", &cfg->alerting.resend_delay_ms, 1);
    bool bad;
    const struct node *v = seq_at(c, a, "alerting", "alertmanagers", &bad);
    if (!v || v->n == 0)
        return;
    cfg->alerting.alertmanagers = calloc(v->n, sizeof *cfg->alerting.alertmanagers);
    if (!cfg->alerting.alertmanagers) {
        err_line(c, 0, 0, "out of memory");
        return;
    }
    cfg->alerting.n_alertmanagers = v->n;
    for (size_t i = 0; i < v->n && !c->fatal; i++) {
        char path[64];
        snprintf(path, sizeof path, "alerting.alertmanagers[%zu]", i);
        struct config_http_client *h = &cfg->alerting.alertmanagers[i];
        h->timeout_ms = 10000;
        if (!map_check(c, v->kids[i], path, am_keys)) {
            if (is_null(v->kids[i]))
                node_err(c, v->kids[i], "%s: expected a mapping, got null", path);
            continue;
        }
        parse_http_client(c, v->kids[i], path, h, "timeout", 10000);
    }
}

static void parse_alert_rule(struct ctx *c, const struct node *m, const char *path,
                             struct config_alert_rule *a)
{
    static const char *const keys[] = {"alert", "match",  "forecast",    "anomaly",
                                       "for",   "labels", "annotations", NULL};
    static const char *const fkeys[] = {"horizon", "above", "below", NULL};
    static const char *const akeys[] = {"score_above", NULL};
    char p[96], q[96];
    if (!map_check(c, m, path, keys)) {
        if (is_null(m))
            node_err(c, m, "%s: expected a mapping, got null", path);
        return;
    }
    int rc = get_string(c, m, path, "alert", &a->alert);
    if (rc == 0)
        missing(c, m, m, path, "alert");
    else if (rc == 1 && !valid_metric_name(a->alert, strlen(a->alert)))
        node_err(c, map_get(m, "alert"),
                 "%s.alert: invalid alert name %s (must match [a-zA-Z_:][a-zA-Z0-9_:]*)", path,
                 quoted(map_get(m, "alert"), q, sizeof q));
    get_selector(c, m, path, "match", &a->match_text, &a->match, m);
    get_duration(c, m, path, "for", &a->for_ms, 0);
    get_labels(c, m, path, "labels", &a->labels, LABELS_LABELS);
    get_labels(c, m, path, "annotations", &a->annotations, LABELS_ANNOTATIONS);

    const struct node *f = map_get(m, "forecast"), *an = map_get(m, "anomaly");
    if (!f == !an) {
        node_err(c, f && an ? an : m, "%s: exactly one of forecast and anomaly must be set", path);
    }
    if (f) {
        a->kind = ALERT_FORECAST;
        join(p, sizeof p, path, "forecast");
        if (map_check(c, f, p, fkeys)) {
            if (get_duration(c, f, p, "horizon", &a->horizon_ms, 1) == 0)
                missing(c, f, f, p, "horizon");
            a->has_above =
                get_double(c, f, p, "above", &a->above, -HUGE_VAL, false, HUGE_VAL, false) == 1;
            a->has_below =
                get_double(c, f, p, "below", &a->below, -HUGE_VAL, false, HUGE_VAL, false) == 1;
            if (!map_get(f, "above") && !map_get(f, "below"))
                node_err(c, f, "%s: one of above or below is required", p);
            if (a->has_above && a->has_below && a->below >= a->above)
                node_err(c, f, "%s: below (%g) must be less than above (%g) when both are set", p,
                         a->below, a->above);
        }
    } else if (an) {
        a->kind = ALERT_ANOMALY;
        join(p, sizeof p, path, "anomaly");
        if (map_check(c, an, p, akeys)) {
            if (get_double(c, an, p, "score_above", &a->score_above, 0, false, 1, true) == 0)
                missing(c, an, an, p, "score_above");
        }
    }
}

static void parse_alert_rules(struct ctx *c, struct config *cfg, const struct node *root)
{
    bool bad;
    const struct node *v = seq_at(c, root, "", "alert_rules", &bad);
    if (!v || v->n == 0)
        return;
    cfg->alert_rules = calloc(v->n, sizeof *cfg->alert_rules);
    if (!cfg->alert_rules) {
        err_line(c, 0, 0, "out of memory");
        return;
    }
    cfg->n_alert_rules = v->n;
    for (size_t i = 0; i < v->n && !c->fatal; i++) {
        char path[64];
        snprintf(path, sizeof path, "alert_rules[%zu]", i);
        parse_alert_rule(c, v->kids[i], path, &cfg->alert_rules[i]);
    }
}

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount/"

static void parse_kubernetes(struct ctx *c, struct config *cfg, const struct node *root)
{
    static const char *const keys[] = {"in_cluster",     "api_server",           "token_file",
                                       "ca_file",        "insecure_skip_verify", "leader_election",
                                       "lease_name",     "lease_namespace",      "lease_duration",
                                       "renew_deadline", "retry_period",         NULL};
    struct config_kubernetes *k = &cfg->kubernetes;
    k->lease_duration_ms = 15000;
    k->renew_deadline_ms = 10000;
    k->retry_period_ms = 2000;
    const struct node *m = map_get(root, "kubernetes");
    const char *p = "kubernetes";
    if (!map_check(c, m, p, keys))
        return;
    cfg->kubernetes_set = true;
    get_bool(c, m, p, "in_cluster", &k->in_cluster);
    get_url(c, m, p, "api_server", &k->api_server, false, m);
    get_string(c, m, p, "token_file", &k->token_file);
    get_string(c, m, p, "ca_file", &k->ca_file);
    get_bool(c, m, p, "insecure_skip_verify", &k->insecure_skip_verify);
    get_bool(c, m, p, "leader_election", &k->leader_election);
    get_string(c, m, p, "lease_name", &k->lease_name);
    get_string(c, m, p, "lease_namespace", &k->lease_namespace);
    int r1 = get_duration(c, m, p, "lease_duration", &k->lease_duration_ms, 1000);
    int r2 = get_duration(c, m, p, "renew_deadline", &k->renew_deadline_ms, 1000);
    int r3 = get_duration(c, m, p, "retry_period", &k->retry_period_ms, 100);
    if (k->in_cluster == (map_get(m, "api_server") != NULL))
        node_err(c, m, "kubernetes: set exactly one of in_cluster: true or api_server");
    if (r1 >= 0 && r2 >= 0 && r3 >= 0 &&
        !(k->lease_duration_ms > k->renew_deadline_ms && k->renew_deadline_ms > k->retry_period_ms))
        node_err(c, m, "kubernetes: need lease_duration > renew_deadline > retry_period");
    /* The service account's files are the in-cluster defaults. */
    if (k->in_cluster && !k->token_file)
        k->token_file = strdup(SA_DIR "token");
    if (k->in_cluster && !k->ca_file)
        k->ca_file = strdup(SA_DIR "ca.crt");
    if (!k->lease_name)
        k->lease_name = strdup("promcast");
    if (!k->lease_namespace)
        k->lease_namespace = strdup("default");
    if ((k->in_cluster && (!k->token_file || !k->ca_file)) || !k->lease_name || !k->lease_namespace)
        err_line(c, 0, 0, "out of memory");
}

static void parse_scaler(struct ctx *c, const struct node *m, const char *path,
                         struct config_scaler *s)
{
    static const char *const keys[] = {"name",         "target",
                                       "match",        "capacity_per_replica",
                                       "lead_time",    "min_replicas",
                                       "max_replicas", "behavior",
                                       "dry_run",      NULL};
    static const char *const tkeys[] = {"kind", "namespace", "name", NULL};
    static const char *const bkeys[] = {"scale_up_stabilization", "scale_down_stabilization", NULL};
    static const char *const kinds[] = {"Deployment", "StatefulSet", NULL};
    char p[96];
    s->lead_time_ms = 5 * 60 * 1000;
    s->min_replicas = 1;
    s->max_replicas = 10;
    s->scale_down_stabilization_ms = 5 * 60 * 1000;
    if (!map_check(c, m, path, keys)) {
        if (is_null(m))
            node_err(c, m, "%s: expected a mapping, got null", path);
        return;
    }
    int rc = get_string(c, m, path, "name", &s->name);
    if (rc == 0)
        missing(c, m, m, path, "name");
    else if (rc == 1 && !*s->name)
        node_err(c, map_get(m, "name"), "%s.name: must not be empty", path);
    const struct node *t = map_get(m, "target");
    join(p, sizeof p, path, "target");
    if (map_check(c, t, p, tkeys)) {
        int kind = 0;
        get_enum(c, t, p, "kind", kinds, &kind);
        s->kind = strdup(kinds[kind]);
        if (get_string(c, t, p, "namespace", &s->namespace_) == 0)
            s->namespace_ = strdup("default");
        if (get_string(c, t, p, "name", &s->target_name) == 0)
            missing(c, t, t, p, "name");
        if (!s->kind || !s->namespace_)
            err_line(c, 0, 0, "out of memory");
    } else if (!t) {
        missing(c, m, m, path, "target");
    }
    get_selector(c, m, path, "match", &s->match_text, &s->match, m);
    if (get_double(c, m, path, "capacity_per_replica", &s->capacity_per_replica, 0, true, HUGE_VAL,
                   false) == 0)
        missing(c, m, m, path, "capacity_per_replica");
    get_duration(c, m, path, "lead_time", &s->lead_time_ms, 0);
    int r1 = get_int(c, m, path, "min_replicas", &s->min_replicas, 0, 100000);
    int r2 = get_int(c, m, path, "max_replicas", &s->max_replicas, 1, 100000);
    if (r1 >= 0 && r2 >= 0 && s->min_replicas > s->max_replicas) {
        const struct node *at = map_get(m, "min_replicas") ? map_get(m, "min_replicas") : m;
        node_err(c, at, "%s: min_replicas (%lld) must not exceed max_replicas (%lld)", path,
                 (long long)s->min_replicas, (long long)s->max_replicas);
    }
    const struct node *b = map_get(m, "behavior");
    join(p, sizeof p, path, "behavior");
    if (map_check(c, b, p, bkeys)) {
        get_duration(c, b, p, "scale_up_stabilization", &s->scale_up_stabilization_ms, 0);
        get_duration(c, b, p, "scale_down_stabilization", &s->scale_down_stabilization_ms, 0);
    }
    get_bool(c, m, path, "dry_run", &s->dry_run);
}

static void parse_scalers(struct ctx *c, struct config *cfg, const struct node *root)
{
    bool bad;
    const struct node *v = seq_at(c, root, "", "scalers", &bad);
    if (!v || v->n == 0)
        return;
    cfg->scalers = calloc(v->n, sizeof *cfg->scalers);
    if (!cfg->scalers) {
        err_line(c, 0, 0, "out of memory");
        return;
    }
    cfg->n_scalers = v->n;
    for (size_t i = 0; i < v->n && !c->fatal; i++) {
        char path[64];
        snprintf(path, sizeof path, "scalers[%zu]", i);
        struct config_scaler *s = &cfg->scalers[i];
        parse_scaler(c, v->kids[i], path, s);
        for (size_t j = 0; j < i && s->name; j++) {
            if (cfg->scalers[j].name && strcmp(cfg->scalers[j].name, s->name) == 0) {
                node_err(c, map_get(v->kids[i], "name"),
                         "%s.name: duplicate scaler name \"%s\" (also scalers[%zu])", path, s->name,
                         j);
                break;
            }
        }
    }
    if (!cfg->kubernetes_set)
        node_err(c, v, "scalers: a kubernetes section is required to scale workloads");
}

/* ---- public API ------------------------------------------------------------------------ */

static void config_defaults(struct config *cfg)
{
    cfg->global.evaluation_interval_ms = 30000;
    cfg->storage.snapshot_interval_ms = 5 * 60 * 1000;
    cfg->storage.shutdown_timeout_ms = 30 * 1000;
    cfg->output.history_ms = 60 * 60 * 1000;
    cfg->output.close_delay_ms = 5000;
    struct config_limits *l = &cfg->limits;
    l->max_compressed_request_bytes = LIMIT_MAX_COMPRESSED_REQUEST_BYTES;
    l->max_request_bytes = LIMIT_MAX_REQUEST_BYTES;
    l->max_series_per_request = LIMIT_MAX_SERIES_PER_REQUEST;
    l->max_labels_per_series = LIMIT_MAX_LABELS_PER_SERIES;
    l->max_label_name_length = LIMIT_MAX_LABEL_NAME_LENGTH;
    l->max_label_value_length = LIMIT_MAX_LABEL_VALUE_LENGTH;
    l->max_series = LIMIT_MAX_SERIES;
    l->max_active_series = LIMIT_MAX_ACTIVE_SERIES;
    l->series_idle_ttl_ms = LIMIT_SERIES_IDLE_TTL_MS;
    l->max_connections = LIMIT_MAX_CONNECTIONS;
    l->max_inflight_requests = LIMIT_MAX_INFLIGHT_REQUESTS;
    l->request_timeout_ms = LIMIT_REQUEST_TIMEOUT_MS;
    l->max_read_request_bytes = LIMIT_MAX_READ_REQUEST_BYTES;
    l->max_read_queries = LIMIT_MAX_READ_QUERIES;
    l->max_read_response_bytes = LIMIT_MAX_READ_RESPONSE_BYTES;
    cfg->alerting.resend_delay_ms = 60000;
    cfg->remote_read.lookback_ms = 7LL * 24 * 3600 * 1000;
    cfg->remote_read.max_series_per_request = 100;
    cfg->remote_read.requests_per_second = 10;
    cfg->remote_read.http.timeout_ms = 60000;
    cfg->kubernetes.lease_duration_ms = 15000;
    cfg->kubernetes.renew_deadline_ms = 10000;
    cfg->kubernetes.retry_period_ms = 2000;
}

struct config *config_load_string(const char *name, const char *yaml, size_t len, char *errbuf,
                                  size_t errcap, int *nerrors)
{
    struct ctx c = {.name = name ? name : "<config>",
                    .src = yaml,
                    .srclen = len,
                    .errbuf = errbuf,
                    .errcap = errcap,
                    .scan_line = 1};
    struct node *root = NULL;
    if (errbuf && errcap)
        errbuf[0] = '\0';
    struct config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        err_line(&c, 0, 0, "out of memory");
        goto fail;
    }
    config_defaults(cfg);
    atomic_init(&cfg->refs, 1);
    cfg->source = strdup(c.name);
    cfg->storage.path = strdup("data/");
    bool outputs_ok = true;
    cfg->output.prefix = strdup("");
    cfg->output.horizon_label = strdup("horizon");
    for (int k = 0; k < OUTPUT__COUNT; k++) {
        char sfx[32];
        snprintf(sfx, sizeof sfx, ":%s", output_keys[k]);
        cfg->output.suffix[k] = strdup(sfx);
        outputs_ok = outputs_ok && cfg->output.suffix[k];
    }
    if (!cfg->source || !cfg->storage.path || !cfg->output.prefix || !cfg->output.horizon_label ||
        !outputs_ok) {
        err_line(&c, 0, 0, "out of memory");
        goto fail;
    }
    if (len > CONFIG_MAX_FILE_BYTES) {
        err_line(&c, 0, 0, "config larger than %u bytes", CONFIG_MAX_FILE_BYTES);
        goto fail;
    }
    if (tree_build(&c, yaml ? yaml : "", yaml ? len : 0, &root) < 0)
        goto fail;
    if (root) {
        if (map_check(&c, root, "", top_keys)) {
            parse_global(&c, cfg, root);
            parse_storage(&c, cfg, root);
            parse_output(&c, cfg, root);
            parse_limits(&c, cfg, root);
            parse_rules(&c, cfg, root);
            parse_remote_write(&c, cfg, root);
            parse_remote_read(&c, cfg, root);
            parse_alerting(&c, cfg, root);
            parse_alert_rules(&c, cfg, root);
            parse_kubernetes(&c, cfg, root);
            parse_scalers(&c, cfg, root);
        }
    }
    if (c.nerr > 0)
        goto fail;
    tree_free(&c);
    if (nerrors)
        *nerrors = 0;
    return cfg;
fail:
    tree_free(&c);
    errors_flush(&c);
    config_destroy(cfg);
    if (nerrors)
        *nerrors = c.nerr;
    return NULL;
}

struct config *config_load_file(const char *path, char *errbuf, size_t errcap, int *nerrors)
{
    struct ctx c = {.name = path, .errbuf = errbuf, .errcap = errcap};
    if (errbuf && errcap)
        errbuf[0] = '\0';
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0;
    struct config *cfg;
    if (!f) {
        err_line(&c, 0, 0, "cannot open: %s", strerror(errno));
        goto fail;
    }
    /* Read at most one byte past the cap, so pipes are bounded too. */
    buf = malloc((size_t)CONFIG_MAX_FILE_BYTES + 1);
    if (!buf) {
        err_line(&c, 0, 0, "out of memory");
        goto fail;
    }
    len = fread(buf, 1, (size_t)CONFIG_MAX_FILE_BYTES + 1, f);
    if (ferror(f)) {
        err_line(&c, 0, 0, "cannot read: %s", strerror(errno));
        goto fail;
    }
    if (len > CONFIG_MAX_FILE_BYTES) {
        err_line(&c, 0, 0, "file larger than %u bytes", CONFIG_MAX_FILE_BYTES);
        goto fail;
    }
    fclose(f);
    f = NULL;
    cfg = config_load_string(path, buf, len, errbuf, errcap, nerrors);
    free(buf);
    return cfg;
fail:
    if (f)
        fclose(f);
    free(buf);
    errors_flush(&c);
    if (nerrors)
        *nerrors = c.nerr;
    return NULL;
}

void config_destroy(struct config *c)
{
    if (!c)
        return;
    free(c->source);
    labels_cleanup(&c->global.external_labels);
    free(c->storage.path);
    free(c->output.prefix);
    free(c->output.horizon_label);
    for (int k = 0; k < OUTPUT__COUNT; k++)
        free(c->output.suffix[k]);
    for (size_t i = 0; i < c->n_rules; i++) {
        free(c->rules[i].match_text);
        selector_destroy(c->rules[i].match);
    }
    free(c->rules);
    for (size_t i = 0; i < c->n_remote_write; i++)
        http_client_cleanup(&c->remote_write[i].http);
    free(c->remote_write);
    http_client_cleanup(&c->remote_read.http);
    for (size_t i = 0; i < c->alerting.n_alertmanagers; i++)
        http_client_cleanup(&c->alerting.alertmanagers[i]);
    free(c->alerting.alertmanagers);
    for (size_t i = 0; i < c->n_alert_rules; i++) {
        struct config_alert_rule *a = &c->alert_rules[i];
        free(a->alert);
        free(a->match_text);
        selector_destroy(a->match);
        labels_cleanup(&a->labels);
        labels_cleanup(&a->annotations);
    }
    free(c->alert_rules);
    free(c->kubernetes.api_server);
    free(c->kubernetes.token_file);
    free(c->kubernetes.ca_file);
    free(c->kubernetes.lease_name);
    free(c->kubernetes.lease_namespace);
    for (size_t i = 0; i < c->n_scalers; i++) {
        struct config_scaler *s = &c->scalers[i];
        free(s->name);
        free(s->kind);
        free(s->namespace_);
        free(s->target_name);
        free(s->match_text);
        selector_destroy(s->match);
    }
    free(c->scalers);
    free(c);
}

struct config *config_retain(struct config *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void config_release(struct config *c)
{
    /* acq_rel: the last releaser must see every other thread's reads done. */
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        config_destroy(c);
}

/* ---- durations ------------------------------------------------------------------------- */

#define MS_SECOND INT64_C(1000)
#define MS_MINUTE (60 * MS_SECOND)
#define MS_HOUR   (60 * MS_MINUTE)
#define MS_DAY    (24 * MS_HOUR)
#define MS_WEEK   (7 * MS_DAY)
#define MS_YEAR   (365 * MS_DAY)
/* Prometheus durations are nanoseconds in an int64: the same ceiling here
 * keeps every value convertible to ns without overflow. */
#define MS_MAX (INT64_MAX / 1000000)

int config_parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t mult;
    } units[] = {{"y", MS_YEAR},   {"w", MS_WEEK},   {"d", MS_DAY}, {"h", MS_HOUR},
                 {"m", MS_MINUTE}, {"s", MS_SECOND}, {"ms", 1}};
    if (!s || !*s)
        return -1;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    int64_t total = 0;
    size_t next_unit = 0; /* units must come in this order, each once */
    const char *p = s;
    while (*p) {
        if (!(*p >= '0' && *p <= '9'))
            return -1;
        int64_t v = 0;
        while (*p >= '0' && *p <= '9') {
            if (v > (MS_MAX - (*p - '0')) / 10)
                return -1;
            v = v * 10 + (*p - '0');
            p++;
        }
        /* Longest unit match at p: "ms" before "m". */
        size_t u = SIZE_MAX;
        if (p[0] == 'm' && p[1] == 's')
            u = 6;
        else
            for (size_t i = 0; i < 6; i++)
                if (*p == units[i].unit[0])
                    u = i;
        if (u == SIZE_MAX || u < next_unit)
            return -1;
        p += strlen(units[u].unit);
        next_unit = u + 1;
        if (v > (MS_MAX - total) / units[u].mult)
            return -1;
        total += v * units[u].mult;
    }
    *ms = total;
    return 0;
}

char *config_format_duration(int64_t ms, char *buf, size_t cap)
{
    static const struct {
        const char *unit;
        int64_t mult;
        bool exact; /* years and weeks only when nothing smaller remains */
    } units[] = {{"y", MS_YEAR, true},  {"w", MS_WEEK, true},    {"d", MS_DAY, false},
                 {"h", MS_HOUR, false}, {"m", MS_MINUTE, false}, {"s", MS_SECOND, false},
                 {"ms", 1, false}};
    if (!buf || cap == 0)
        return buf;
    buf[0] = '\0';
    if (ms == 0) {
        snprintf(buf, cap, "0s");
        return buf;
    }
    size_t o = 0;
    uint64_t left = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    if (ms < 0)
        o += (size_t)snprintf(buf + o, cap - o, "-");
    for (size_t i = 0; i < sizeof units / sizeof units[0] && o < cap; i++) {
        uint64_t mult = (uint64_t)units[i].mult;
        if (units[i].exact && left % mult != 0)
            continue;
        uint64_t v = left / mult;
        if (v > 0) {
            o += (size_t)snprintf(buf + o, cap - o, "%llu%s", (unsigned long long)v, units[i].unit);
            left -= v * mult;
        }
    }
    return buf;
}

const struct config_rule *config_match_rule(const struct config *c, const struct label *labels,
                                            size_t n)
{
    for (size_t i = 0; i < c->n_rules; i++)
        if (c->rules[i].match && selector_match(c->rules[i].match, labels, n))
            return &c->rules[i];
    return NULL;
}

int config_check_file(const char *path, FILE *out)
{
    size_t cap = 1 << 20;
    char *errbuf = malloc(cap);
    int nerr = 0;
    struct config *c = config_load_file(path, errbuf, errbuf ? cap : 0, &nerr);
    if (!c) {
        if (errbuf && *errbuf)
            fputs(errbuf, out);
        else
            fprintf(out, "%s: invalid configuration\n", path);
        fprintf(out, "%s: %d error%s\n", path, nerr, nerr == 1 ? "" : "s");
        free(errbuf);
        return 1;
    }
    fprintf(out,
            "%s: OK, %zu rule%s, %zu remote_write, remote_read %s, %zu alertmanager%s, "
            "%zu alert rule%s, %zu scaler%s\n",
            path, c->n_rules, c->n_rules == 1 ? "" : "s", c->n_remote_write,
            c->remote_read.enabled ? "on" : "off", c->alerting.n_alertmanagers,
            c->alerting.n_alertmanagers == 1 ? "" : "s", c->n_alert_rules,
            c->n_alert_rules == 1 ? "" : "s", c->n_scalers, c->n_scalers == 1 ? "" : "s");
    config_destroy(c);
    free(errbuf);
    return 0;
}

/* ---- the embedded default ----------------------------------------------------------------- */

const char config_default_yaml[] =
    "# promcast's embedded default configuration, used when no --config.file\n"
    "# is given: model every incoming series and write the results back to the\n"
    "# Prometheus on this host; warm-start new series from its history.\n"
    "global:\n"
    "  # no step: the daemon models at 1m, backtest infers it from the data\n"
    "  evaluation_interval: 30s\n"
    "storage:\n"
    "  path: data/\n"
    "rules:\n"
    "  # everything except promcast's own output series, which come back\n"
    "  # through the Prometheus we write to\n"
    "  - match: '{__name__=~\".+\", "
    "__name__!~\".*:(yhat|yhat_lower|yhat_upper|anomaly_score|forecast)\"}'\n"
    "    model: auto\n"
    "    horizons: [15m, 1h]\n"
    "    interval_coverage: 0.95\n"
    "remote_write:\n"
    "  - url: http://127.0.0.1:9090/api/v1/write\n"
    "remote_read:\n"
    "  url: http://127.0.0.1:9090/api/v1/read\n"
    "  lookback: 7d\n";
