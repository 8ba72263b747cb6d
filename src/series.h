/*
 * series.h — the series index: the one owner of every label set promcast
 * remembers, the per-series sample bookkeeping, and the selection decision
 * (which config rule, if any, models a series).
 *
 * Shape: a power-of-two number of shards chosen by hash bits, each with its
 * own mutex and open-addressing table, so ingest threads only meet when they
 * touch the same shard and a shard grows or shrinks without stopping the
 * others. A series entry holds a pointer to its interned label-name list
 * ("schema", shared by every series with the same names) followed by its
 * label values packed inline; see series.c for the byte layout.
 *
 * Ownership: label bytes given to series_ingest() are borrowed for the call
 * and copied on insert. The index never keeps pointers into request buffers.
 *
 * Thread-safety: every function may be called from any thread concurrently,
 * except series_index_create/destroy (no other call may run on the index
 * during destroy). Callbacks (visit, model hooks) run under one shard's
 * lock: they must not call back into the index.
 *
 * Model state: each entry has a `void *model` slot owned through the
 * series_model_hooks given at creation (the pipeline): created on the first
 * accepted sample of a series holding a model slot, fed every accepted
 * sample, kept across a config reload when the hooks say the rule is
 * compatible, and destroyed on eviction, loss of the rule, or index
 * destroy.
 */
#ifndef PROMCAST_SERIES_H
#define PROMCAST_SERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels.h"

struct config;
struct selector;
struct series_index;

#define SERIES_DEFAULT_SHARDS 256u
#define SERIES_MAX_SHARDS     65536u

/*
 * Hooks through which the index hands modelled series to the model owner
 * (pipeline.c). Every hook runs under the series' shard lock: it must be
 * quick, must not call into the index, and may take only leaf locks. The
 * struct is borrowed for the index's lifetime.
 */
struct series_model_hooks {
    void *ctx;
    /* May a rule model this series at all? false keeps it unmodelled even
     * when a rule matches (the pipeline refuses its own output series, which
     * come back through the Prometheus it writes to). Called once per series
     * per rules generation. NULL = always. */
    bool (*accept)(void *ctx, const struct label *labels, size_t n);
    /* First accepted sample of a series that holds a model slot under
     * rules[rule] of cfg: return new state, or NULL to skip this sample
     * (create is tried again on the next one). Labels: sorted, borrowed. */
    void *(*create)(void *ctx, const struct config *cfg, int rule, const struct label *labels,
                    size_t n);
    /* The series' rule was decided again under a new config (set_rules):
     * return true to keep `model` for rules[rule] of cfg (same parameters),
     * false to have it destroyed. */
    bool (*rebind)(void *ctx, void *model, const struct config *cfg, int rule);
    /* One accepted sample (in time order per series) of a modelled series.
     * Stale markers included (bit-exact). */
    void (*observe)(void *ctx, void *model, const struct label *labels, size_t n,
                    const struct sample *sample);
    /* Free state (never called with NULL): on eviction, loss of the rule or
     * of the model slot, a refused rebind, destroy. */
    void (*destroy)(void *ctx, void *model);
};

struct series_index_opts {
    size_t max_active_series;   /* limits.max_active_series: indexed series */
    size_t max_modelled_series; /* limits.max_series: series with a model slot */
    int64_t idle_ttl_ms;        /* limits.series_idle_ttl; <= 0: never evict */
    unsigned nshards;           /* power of two <= SERIES_MAX_SHARDS; 0 = default */
    /* Model state of modelled series (the pipeline); all NULL = series
     * are selected and counted but nothing is modelled. */
    struct series_model_hooks *hooks;
    /* Test hook: replaces the index's seeded label-set hash so tests can
     * force collisions. NULL in production. */
    uint64_t (*hash)(const struct label *labels, size_t n);
};

/* Fill opts with the defaults of limits.h (caps, TTL) and default shards,
 * no hooks. */
void series_index_opts_default(struct series_index_opts *opts);

/* Take the caps and TTL from a loaded config's `limits:` (other fields of
 * opts are left as they are). `cfg` is only read during the call. */
void series_index_opts_from_config(struct series_index_opts *opts, const struct config *cfg);

/* Returns NULL when out of memory or opts->nshards is not a power of two
 * (or too large). opts is copied. */
struct series_index *series_index_create(const struct series_index_opts *opts);

/* Frees every series (calling model_destroy) and the index. NULL is fine.
 * No other call may run on the index concurrently or after. */
void series_index_destroy(struct series_index *idx);

/*
 * Replace caps and TTL (config reload); nshards and the hooks are fixed at
 * creation and ignored here. Lowering a cap never evicts: existing series and
 * model slots stay, new ones are refused until the count is below the cap.
 * Thread-safe; takes effect for the next insert / sweep.
 */
void series_index_set_limits(struct series_index *idx, const struct series_index_opts *opts);

/*
 * Install the selection rules of a (new) config: the first rule whose
 * selector matches models a series (config_match_rule). The pointer is
 * borrowed: `cfg` must stay alive until the next set_rules call (or destroy)
 * returns. When this call returns no thread uses the previous config any
 * more, so the caller may free it then. NULL = nothing is modelled.
 * Cached decisions of older configs are re-evaluated lazily on each series'
 * next sample (idle series keep their old decision until evicted), so
 * regexes run once per series per config, never per sample. Thread-safe
 * (calls are serialised); briefly takes each shard lock in turn.
 */
void series_index_set_rules(struct series_index *idx, const struct config *cfg);

/* Counters for one or more series_ingest() calls; each call adds to them.
 * Caller-owned: zero it first, and give each thread its own. Every sample
 * given lands in exactly one of: accepted, out_of_order, duplicates,
 * duplicate_conflicts, dropped_samples_limit, dropped_invalid. */
struct series_ingest_stats {
    uint64_t samples;                 /* samples given */
    uint64_t accepted;                /* newer than the series' last sample (stale markers too) */
    uint64_t out_of_order;            /* t < last t: dropped */
    uint64_t duplicates;              /* t == last t, same value bits: dropped */
    uint64_t duplicate_conflicts;     /* t == last t, other value bits: dropped, first wins */
    uint64_t stale;                   /* accepted stale markers (series paused) */
    uint64_t new_series;              /* series inserted */
    uint64_t dropped_series_limit;    /* new series refused: max_active_series */
    uint64_t dropped_samples_limit;   /* their samples */
    uint64_t unmodelled_series_limit; /* series matching a rule, refused a model slot
                                         because of max_series (once per refusal) */
    uint64_t modelled_samples;        /* accepted samples of modelled series */
    uint64_t dropped_invalid;         /* samples of series whose label set is empty
                                         once empty values are dropped */
};

/*
 * Look up or insert the series and account its samples into *stats.
 * `labels` must be sorted and valid (labels_validate() == LABELS_OK); labels
 * with an empty value are ignored, as Prometheus does. Labels and samples
 * are borrowed for the call; the label bytes are copied on insert. Samples
 * must be in time order (per series) to be accepted. `now_ms` is wall time,
 * used only for the idle TTL. Returns 0, or -1 when memory ran out inserting
 * a new series (its samples are then not counted anywhere; stats untouched).
 * Thread-safe; no allocation for an existing series.
 */
int series_ingest(struct series_index *idx, const struct label *labels, size_t n,
                  const struct sample *samples, size_t ns, int64_t now_ms,
                  struct series_ingest_stats *stats);

/* One series of a decoded request, for series_ingest_batch(). */
struct series_input {
    const struct label *labels;
    size_t n;
    const struct sample *samples;
    size_t ns;
};

/*
 * series_ingest() for `count` series at once, same semantics and ownership
 * (everything borrowed for the call), in input order. Preferred for whole
 * requests: it overlaps the cache misses of neighbouring series, which at
 * 100k+ series is most of the cost of a lookup. Returns -1 when memory ran
 * out inserting one or more new series (those are not counted; the others
 * are processed), else 0. Thread-safe; no allocation for existing series.
 */
int series_ingest_batch(struct series_index *idx, const struct series_input *in, size_t count,
                        int64_t now_ms, struct series_ingest_stats *stats);

/*
 * Evict every series whose last ingest is idle_ttl_ms or more before now_ms.
 * Locks one shard at a time. Returns the number evicted. For the periodic
 * timer thread; thread-safe.
 */
size_t series_index_evict_idle(struct series_index *idx, int64_t now_ms);

/* Series in the index (modelled or not), series holding a model slot, and
 * bytes allocated by the index (entries, tables, interned names, allocator
 * chunk headers included; model state excluded). Lock-free reads. */
size_t series_index_count(const struct series_index *idx);
size_t series_index_modelled(const struct series_index *idx);
size_t series_index_memory_bytes(const struct series_index *idx);

/* What the index knows about one series. */
struct series_info {
    int64_t last_t;       /* timestamp of the last accepted sample (ms);
                             with last_v, meaningful when samples > 0 */
    double last_v;        /* its value; the stale marker when `stale` */
    bool stale;           /* last accepted sample was a stale marker */
    int rule;             /* index into the rules of the config that made the
                             decision (the current one once the series has had
                             a sample since set_rules), -1 when none matched */
    bool modelled;        /* holds a model slot (rule >= 0 and under max_series) */
    uint64_t samples;     /* accepted samples since inserted */
    int64_t last_seen_ms; /* now_ms of the last ingest */
    const void *model;    /* model state (hooks), NULL when none */
};

/*
 * Call fn for every series matching sel (NULL = every series), one shard at a
 * time under that shard's lock. The labels (sorted) and info are valid only
 * during the callback. A nonzero return from fn (use a positive one) stops
 * the walk and is returned; otherwise returns 0, or -1 when out of memory (a
 * label set larger than the stack buffer). fn must not call into the index,
 * and ingest into that shard waits while fn runs, so keep it short.
 * Thread-safe.
 */
typedef int (*series_visit_fn)(void *ctx, const struct label *labels, size_t n,
                               const struct series_info *info);
int series_index_visit(struct series_index *idx, const struct selector *sel, series_visit_fn fn,
                       void *ctx);

/*
 * Like series_index_visit, for series that hold model state only, handing
 * the state to fn mutable (flushing quiet steps, snapshots, remote read).
 * Same locking rules.
 */
typedef int (*series_model_visit_fn)(void *ctx, const struct label *labels, size_t n, void *model);
int series_index_visit_models(struct series_index *idx, const struct selector *sel,
                              series_model_visit_fn fn, void *ctx);

/*
 * Find one series by its exact label set (sorted, no empty values) and, if
 * it holds model state, call fn with it under the shard lock. Returns fn's
 * result, or 1 when the series is absent or has no state. Thread-safe.
 */
int series_index_with_model(struct series_index *idx, const struct label *labels, size_t n,
                            series_model_visit_fn fn, void *ctx);

/*
 * Restore a series from a snapshot: insert it (or find it), decide its rule
 * under the current config and, when it gets a model slot and the hooks'
 * rebind accepts `model` for that rule, adopt `model` (ownership passes to
 * the index either way: a refused model is destroyed through the hooks).
 * last_t is the series' last accepted sample time. Returns 1 when the model
 * was adopted, 0 when it was not, -1 out of memory (model destroyed).
 */
int series_index_restore(struct series_index *idx, const struct label *labels, size_t n,
                         int64_t last_t, void *model, int64_t now_ms);

/* Wait until no thread is inside a model hook that started before the
 * call: locks and unlocks every shard once. For swapping what hooks use. */
void series_index_barrier(struct series_index *idx);

#endif
