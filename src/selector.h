/*
 * selector.h — PromQL series selectors: parse and match.
 *
 *   {__name__=~"job:.*", env!="dev"}     http_requests_total{code=~"5.."}
 *
 * The grammar is PromQL's vector-selector subset as in Prometheus 2.42: an
 * optional metric name `[a-zA-Z_:][a-zA-Z0-9_:]*`, then an optional `{...}`
 * with comma-separated matchers `label op "value"` (a trailing comma is
 * allowed), label names `[a-zA-Z_][a-zA-Z0-9_]*`, strings in "...", '...'
 * (Go escapes) or `...` (raw). A metric name becomes `__name__="name"`.
 * Range (`[5m]`), `offset` and `@` are not part of a series selector.
 *
 * Matchers `=`, `!=`, `=~`, `!~`; regexes are PCRE2 compiled fully anchored
 * (`^(?:re)$`) like Prometheus 2.x's RE2: `.` does not match a newline, `$`
 * only matches at the very end. A matcher on a label the series lacks sees the
 * empty string, as in Prometheus (so `{env!="dev"}` matches series without
 * `env`, and `{env=""}` matches exactly those). selector_parse() rejects a
 * selector whose every matcher accepts the empty string ("vector selector must
 * contain at least one non-empty matcher"), as Prometheus does; write
 * `{__name__=~".+"}` to select everything.
 *
 * A compiled selector is immutable once built: selector_match() may be called
 * from any number of threads at once (PCRE2 match data, match limits and JIT
 * stack are per thread, created on first use and freed at thread exit).
 * PCRE2 is included only by selector.c.
 */
#ifndef PROMCAST_SELECTOR_H
#define PROMCAST_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels.h"

enum matcher_op { MATCH_EQ = 0, MATCH_NEQ, MATCH_RE, MATCH_NRE };

/*
 * Fixed safety bounds on regex matching (not configurable: they bound the CPU
 * and memory one label value can cost, whoever sent the regex). A match that
 * hits one of them counts as "no match" for both =~ and !~ (the selector
 * fails closed) and is counted in selector_regex_failures().
 */
#define SELECTOR_MATCH_LIMIT     10000000u  /* PCRE2 backtracking steps per match */
#define SELECTOR_HEAP_LIMIT_KIB  16384u     /* interpreter backtracking memory per thread */
#define SELECTOR_MAX_REGEX_BYTES (1u << 20) /* longest regex accepted */
#define SELECTOR_MAX_MATCHERS    1024u      /* matchers in one selector */
#define SELECTOR_MAX_TEXT_BYTES  (4u << 20) /* longest selector text parsed */

struct selector;

/*
 * Parse a selector. On success returns a new selector (owned by the caller,
 * free with selector_destroy). On error returns NULL, writes a one-line reason
 * (which names the byte offset) to err (truncated to errcap, NUL-terminated;
 * err may be NULL when errcap is 0) and the 0-based byte offset of the error
 * in `text` to *err_offset (may be NULL). `text` is NUL-terminated and copied.
 * Thread-safe.
 */
struct selector *selector_parse(const char *text, char *err, size_t errcap, size_t *err_offset);

/*
 * Build a selector from matchers given one by one (remote-read requests carry
 * them already split). `name` and `value` are copied and need not be
 * NUL-terminated. selector_add returns -1 and writes err when a regex does
 * not compile, the selector has SELECTOR_MAX_MATCHERS already, or memory runs
 * out; the selector is then unchanged. No "non-empty matcher" rule applies
 * here (remote read accepts any matcher set). selector_create returns NULL
 * only when out of memory. Not thread-safe on one selector until built.
 */
struct selector *selector_create(void);
int selector_add(struct selector *s, enum matcher_op op, const char *name, size_t name_len,
                 const char *value, size_t value_len, char *err, size_t errcap);

/* Frees everything; accepts NULL. */
void selector_destroy(struct selector *s);

/* True when every matcher accepts the label set (labels need not be sorted
 * nor NUL-terminated; they are borrowed for the call). A selector with no
 * matchers matches everything. Thread-safe. */
bool selector_match(const struct selector *s, const struct label *labels, size_t n);

/* The selector's text: the source as given to selector_parse, or for
 * selector_create a canonical `{name="value",...}` (Go-style escapes) that
 * parses back to the same matchers. Owned by the selector. */
const char *selector_text(const struct selector *s);

/* Inspect matchers (for remote-read, explain output and tests). Names and
 * values are owned by the selector and NUL-terminated; a value may itself
 * contain NUL bytes (from `\x00` or remote read): selector_matcher_bytes
 * gives the lengths. Index i must be < selector_count(s). */
size_t selector_count(const struct selector *s);
void selector_matcher(const struct selector *s, size_t i, enum matcher_op *op, const char **name,
                      const char **value);
void selector_matcher_bytes(const struct selector *s, size_t i, enum matcher_op *op,
                            const char **name, size_t *name_len, const char **value,
                            size_t *value_len);

/* "=", "!=", "=~", "!~". */
const char *selector_op_str(enum matcher_op op);

/* Matches that hit a PCRE2 limit or error since start (for /metrics). */
uint64_t selector_regex_failures(void);

#endif
