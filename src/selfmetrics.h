/*
 * selfmetrics.h — promcast's own metrics, served on GET /metrics in the
 * Prometheus text exposition format 0.0.4 (clean under `promtool check metrics`).
 *
 * A registry (`struct selfmetrics`) holds metric families: counters, gauges and
 * histograms, each with a name, a help text and 0..SELFMETRICS_MAX_LABELS fixed
 * label names. A family has one child per tuple of label values. Callers look a
 * child up once (at start-up, or lazily for label values found at run time) and
 * keep the handle: updating a handle is lock-free (C11 atomics) and never
 * allocates. Handles stay valid until the registry is destroyed.
 *
 * The number of children per family is capped (selfmetrics_set_max_children).
 * Over the cap a lookup returns NULL, every update function accepts NULL as a
 * no-op, and promcast_selfmetrics_dropped_children_total{family} counts each
 * refused lookup, so runaway label values cost a counter, not memory.
 *
 * Rendering sorts families by name and children by their label values, so two
 * scrapes of an unchanged registry give identical text.
 *
 * Default registry: like Prometheus client libraries' default registry, the
 * self-metrics describe the whole process, so modules register into the one
 * returned by selfmetrics_default() without passing a registry around. Tests
 * build their own with selfmetrics_create().
 *
 * Thread-safety: every function may be called from any thread, except
 * selfmetrics_destroy(), which needs every other user to have stopped.
 */
#ifndef PROMCAST_SELFMETRICS_H
#define PROMCAST_SELFMETRICS_H

#include <stddef.h>
#include <stdint.h>

/* Label names a family may have; chosen so a lookup fits on the stack. */
#define SELFMETRICS_MAX_LABELS 4
/* Default cap on children per family (selfmetrics_set_max_children). */
#define SELFMETRICS_DEFAULT_MAX_CHILDREN 1000
/* Families per registry: they are registered by code, so this only guards
 * against a registration loop. */
#define SELFMETRICS_MAX_FAMILIES 1024
/* Finite bucket bounds per histogram (+Inf is implicit). */
#define SELFMETRICS_MAX_BUCKETS 64
/* Longest label value accepted for a child, in bytes (longer: refused and
 * counted as a dropped child). */
#define SELFMETRICS_MAX_LABEL_VALUE_BYTES 1024
/* Largest rendered exposition; over it selfmetrics_render() fails. */
#define SELFMETRICS_MAX_RENDER_BYTES (64u << 20)

/* Request/decode durations in seconds, 100 µs … 10 s:
 *   static const double b[] = SELFMETRICS_DURATION_BUCKETS; */
#define SELFMETRICS_DURATION_BUCKETS                                                               \
    {                                                                                              \
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,  \
            5, 10                                                                                  \
    }

enum selfmetrics_type { SELFMETRICS_COUNTER = 0, SELFMETRICS_GAUGE, SELFMETRICS_HISTOGRAM };

struct selfmetrics;
struct selfmetrics_family;
struct selfmetrics_counter;
struct selfmetrics_gauge;
struct selfmetrics_histogram;

/* Value of a callback family, computed at scrape time. Called from the thread
 * that renders, with the registry lock held: it must not register or
 * unregister anything in the same registry, and it should be quick. */
typedef double (*selfmetrics_value_fn)(void *ctx);

/* ---- registries ---------------------------------------------------------- */

/* A new empty registry (only promcast_selfmetrics_dropped_children_total,
 * rendered once it has a child). max_children 0 means the default. NULL when
 * out of memory. */
struct selfmetrics *selfmetrics_create(size_t max_children);

/* Frees the registry, every family and every child; handles die with it.
 * Accepts NULL. No other thread may use the registry or its handles. */
void selfmetrics_destroy(struct selfmetrics *r);

/* The process-wide registry, created on first use (thread-safe) with the
 * process collector and promcast_build_info already registered. Never freed:
 * handles into it stay valid until exit. NULL only when out of memory at the
 * first call. */
struct selfmetrics *selfmetrics_default(void);

/* Cap on children per family, for families already registered and future
 * ones; existing children are kept when lowering it. 0 means the default. */
void selfmetrics_set_max_children(struct selfmetrics *r, size_t max_children);

/* ---- registration --------------------------------------------------------
 * `name` must match [a-zA-Z_:][a-zA-Z0-9_:]*; counters must end in "_total",
 * other types must not. Label names match [a-zA-Z_][a-zA-Z0-9_]*, do not start
 * with "__", are distinct, and a histogram may not use "le". `help` is valid
 * UTF-8. Strings are copied. Registering the same name again with the same
 * type, help, label names (and bounds) returns the existing family, so a
 * module may register on every (re)start; any difference is an error.
 * Return NULL on invalid arguments, a conflicting name, or out of memory. */

struct selfmetrics_family *selfmetrics_register_counter(struct selfmetrics *r, const char *name,
                                                        const char *help, size_t nlabels,
                                                        const char *const *label_names);
struct selfmetrics_family *selfmetrics_register_gauge(struct selfmetrics *r, const char *name,
                                                      const char *help, size_t nlabels,
                                                      const char *const *label_names);
/* `bounds`: 1..SELFMETRICS_MAX_BUCKETS finite, strictly increasing upper
 * bounds (copied; a trailing +Inf is accepted and ignored). A value v is
 * counted in the first bucket with v <= bound; NaN and values above the last
 * bound only in +Inf. */
struct selfmetrics_family *selfmetrics_register_histogram(struct selfmetrics *r, const char *name,
                                                          const char *help, size_t nlabels,
                                                          const char *const *label_names,
                                                          const double *bounds, size_t nbounds);

/* An unlabelled family whose single value is fn(ctx) at every render; type is
 * SELFMETRICS_COUNTER or SELFMETRICS_GAUGE. `ctx` is borrowed until
 * selfmetrics_unregister_callback() or selfmetrics_destroy(). 0 or -1 (bad
 * arguments, name taken, out of memory). */
int selfmetrics_register_callback(struct selfmetrics *r, enum selfmetrics_type type,
                                  const char *name, const char *help, selfmetrics_value_fn fn,
                                  void *ctx);

/* Removes a callback family. When this returns, fn is not running and will
 * not be called again, so ctx may be freed. -1 if `name` is not a callback. */
int selfmetrics_unregister_callback(struct selfmetrics *r, const char *name);

/* The standard process metrics of Prometheus client libraries, read from
 * /proc at render time: process_cpu_seconds_total, process_open_fds,
 * process_max_fds, process_virtual_memory_bytes,
 * process_virtual_memory_max_bytes, process_resident_memory_bytes,
 * process_start_time_seconds, plus process_threads. A metric whose source
 * cannot be read is left out of that scrape. Idempotent. 0 or -1. */
int selfmetrics_register_process(struct selfmetrics *r);

/* promcast_build_info{version,revision,compiler} 1. NULL version/revision
 * mean PROMCAST_VERSION / PROMCAST_REVISION (compile-time; "unknown" when
 * not defined); compiler is the compiler's name and __VERSION__. Copied. */
int selfmetrics_register_build_info(struct selfmetrics *r, const char *version,
                                    const char *revision);

/* ---- children ------------------------------------------------------------
 * Look up, or create, the child for one tuple of label values: the variadic
 * forms take exactly as many `const char *` as the family has label names
 * (none for an unlabelled family), the v forms an array of them. Values are
 * copied; NULL is read as "". Lookups are lock-free; creation takes the
 * family's lock. NULL when `f` is NULL or of another type, when a value is not
 * valid UTF-8 or longer than SELFMETRICS_MAX_LABEL_VALUE_BYTES, when the family
 * is at its cap (counted), or out of memory. */

struct selfmetrics_counter *selfmetrics_counter_get(struct selfmetrics_family *f, ...);
struct selfmetrics_counter *selfmetrics_counter_getv(struct selfmetrics_family *f,
                                                     const char *const *values);
struct selfmetrics_gauge *selfmetrics_gauge_get(struct selfmetrics_family *f, ...);
struct selfmetrics_gauge *selfmetrics_gauge_getv(struct selfmetrics_family *f,
                                                 const char *const *values);
struct selfmetrics_histogram *selfmetrics_histogram_get(struct selfmetrics_family *f, ...);
struct selfmetrics_histogram *selfmetrics_histogram_getv(struct selfmetrics_family *f,
                                                         const char *const *values);

/* Shorthands: register an unlabelled family and return its only child. */
struct selfmetrics_counter *selfmetrics_simple_counter(struct selfmetrics *r, const char *name,
                                                       const char *help);
struct selfmetrics_gauge *selfmetrics_simple_gauge(struct selfmetrics *r, const char *name,
                                                   const char *help);
struct selfmetrics_histogram *selfmetrics_simple_histogram(struct selfmetrics *r, const char *name,
                                                           const char *help, const double *bounds,
                                                           size_t nbounds);

/* ---- updates: lock-free, any thread, NULL handle is a no-op --------------- */

void selfmetrics_counter_inc(struct selfmetrics_counter *c);
void selfmetrics_counter_add(struct selfmetrics_counter *c, uint64_t n);
/* Negative and NaN increments are ignored: a counter only goes up. */
void selfmetrics_counter_add_double(struct selfmetrics_counter *c, double v);
/* Current value (integer part + float part); 0 for NULL. */
double selfmetrics_counter_value(const struct selfmetrics_counter *c);

void selfmetrics_gauge_set(struct selfmetrics_gauge *g, double v);
void selfmetrics_gauge_add(struct selfmetrics_gauge *g, double delta);
void selfmetrics_gauge_inc(struct selfmetrics_gauge *g);
void selfmetrics_gauge_dec(struct selfmetrics_gauge *g);
double selfmetrics_gauge_value(const struct selfmetrics_gauge *g);

void selfmetrics_histogram_observe(struct selfmetrics_histogram *h, double v);
/* Observations so far and their sum; 0 for NULL. */
uint64_t selfmetrics_histogram_count(const struct selfmetrics_histogram *h);
double selfmetrics_histogram_sum(const struct selfmetrics_histogram *h);

/* ---- exposition ---------------------------------------------------------- */

/* Content-Type of the rendered text. */
#define SELFMETRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Renders the whole registry as text format 0.0.4 into a malloc'd,
 * NUL-terminated buffer handed over to the caller (free() it); *len excludes
 * the NUL. Families without children are left out. On failure (out of memory,
 * over SELFMETRICS_MAX_RENDER_BYTES) returns -1 and leaves *out, *len alone.
 * Concurrent renders are serialised; updates go on meanwhile, so a scrape
 * sees each value at some instant during the render. */
int selfmetrics_render(struct selfmetrics *r, char **out, size_t *len);

#endif
