/*
 * selector.h — PromQL series selectors: parse and match.
 *
 *   {__name__=~"job:.*", env!="dev"}     http_requests_total{code=~"5.."}
 *
 * Matchers `=`, `!=`, `=~`, `!~`; regexes are PCRE2 compiled fully anchored
 * (`^(?:re)$`) like Prometheus's RE2. A matcher on a label the series lacks
 * sees the empty string, as in Prometheus (so `{env!="dev"}` matches series
 * without `env`, and `{env=""}` matches exactly those).
 *
 * A compiled selector is immutable: selector_match() may be called from any
 * number of threads at once (match data is per call, on the stack or per
 * thread). PCRE2 is included only by selector.c.
 */
#ifndef PROMCAST_SELECTOR_H
#define PROMCAST_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "labels.h"

enum matcher_op { MATCH_EQ = 0, MATCH_NEQ, MATCH_RE, MATCH_NRE };

struct selector;

/*
 * Parse a selector. On success returns a new selector (owned by the caller,
 * free with selector_destroy). On error returns NULL, writes a one-line reason
 * to err and the 0-based byte offset of the error in `text` to *err_offset
 * (may be NULL). `text` is copied.
 */
struct selector *selector_parse(const char *text, char *err, size_t errcap, size_t *err_offset);

/*
 * Build a selector from matchers given one by one (remote-read requests carry
 * them already split). `name` and `value` are copied; returns -1 and writes
 * err when a regex does not compile.
 */
struct selector *selector_create(void);
int selector_add(struct selector *s, enum matcher_op op, const char *name, size_t name_len,
                 const char *value, size_t value_len, char *err, size_t errcap);

void selector_destroy(struct selector *s);

/* True when every matcher accepts the label set (labels need not be sorted). */
bool selector_match(const struct selector *s, const struct label *labels, size_t n);

/* The selector's source text (as given, or rebuilt for selector_create). */
const char *selector_text(const struct selector *s);

/* Inspect matchers (for remote-read, explain output and tests). */
size_t selector_count(const struct selector *s);
void selector_matcher(const struct selector *s, size_t i, enum matcher_op *op, const char **name,
                      const char **value);

#endif
