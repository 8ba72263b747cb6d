/*
 * pipeline.h — from accepted samples to output series.
 *
 * The pipeline owns the per-series model slot that the series index keeps in
 * each modelled entry (through struct series_model_hooks): the engine state
 * (model.h), the recent outputs for remote read, and the warm-start buffer.
 * Each closed step becomes NAME:yhat, NAME:yhat_lower, NAME:yhat_upper,
 * NAME:anomaly_score and NAME:forecast{horizon="…"} samples (names from the
 * config's `output:` section), handed to every remote-write writer and kept
 * in the slot's history.
 *
 * It also answers remote-read queries over its outputs (history plus the
 * forecast path past the last step), serialises slots for snapshots and
 * rebuilds them on restore, and applies warm-start history.
 *
 * Thread-safety: hooks run under the index's shard locks (many threads, one
 * per shard at a time); pipeline_configure() may run concurrently with them
 * (it swaps what they read and waits on series_index_barrier()). Everything
 * else is thread-safe unless stated.
 */
#ifndef PROMCAST_PIPELINE_H
#define PROMCAST_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels.h"
#include "model.h"

struct config;
struct pipeline;
struct selector;
struct selfmetrics;
struct series_index;
struct series_model_hooks;
struct writer;

struct pipeline_opts {
    struct selfmetrics *metrics; /* borrowed */
    /* Warm start: when set, a new series buffers its samples and waits for
     * history; warm_request queues it (called under a shard lock: must not
     * block; return false when the request could not be queued, and the
     * series then starts cold at once). */
    bool (*warm_request)(void *ctx, const struct label *labels, size_t n);
    void *warm_ctx;
    size_t warm_buffer; /* samples buffered per warming series (0 = 256) */
};

struct pipeline *pipeline_create(const struct pipeline_opts *opts);

/* Set opts.warm_ctx after creation (the warm-start worker needs the
 * pipeline first). Call before any series exists. */
void pipeline_set_warm_ctx(struct pipeline *p, void *warm_ctx);

/* Frees the pipeline (after the index that uses its hooks). NULL is fine. */
void pipeline_destroy(struct pipeline *p);

/* The hooks to put in series_index_opts; valid for the pipeline's life. */
struct series_model_hooks *pipeline_hooks(struct pipeline *p);

/* Tell the pipeline which index holds its slots (for visits and barriers).
 * Call once, before configure. */
void pipeline_attach(struct pipeline *p, struct series_index *idx);

/*
 * Install output naming/history from cfg and the set of writers outputs go
 * to (array copied; writers borrowed). Safe while ingest runs: returns only
 * after no hook can still use the previous set, so the caller may then shut
 * down writers that are no longer in it. cfg is only read during the call.
 * Returns -1 when out of memory (nothing changed).
 */
int pipeline_configure(struct pipeline *p, const struct config *cfg, struct writer *const *writers,
                       size_t nwriters);

/*
 * Close open steps by the clock: every slot whose open step ended at least
 * output.close_delay before now_ms is closed and its outputs emitted (live
 * series usually close a step sooner, with their first sample of the next
 * step). For the timer thread, every second. Returns the steps closed.
 */
size_t pipeline_flush(struct pipeline *p, int64_t now_ms);

/* Counts for /metrics and /api/v1/status. */
struct pipeline_stats {
    uint64_t slots;      /* live model slots */
    uint64_t slot_bytes; /* bytes held by slots (state + history) */
    uint64_t warming;    /* slots waiting for warm-start history */
    uint64_t steps;      /* closed steps */
    uint64_t outputs;    /* output samples handed to writers */
    uint64_t suppressed; /* outputs not written: already written before a restart */
    uint64_t late;       /* samples older than their series' open step */
    uint64_t counter_resets;
    uint64_t invalid;      /* NaN/Inf values ignored */
    uint64_t writer_drops; /* enqueue refusals (the writers count reasons) */
};
void pipeline_get_stats(struct pipeline *p, struct pipeline_stats *st);

/*
 * Outputs already written before a crash must not be written again with
 * other values (Prometheus rejects the whole batch). The pipeline records
 * the newest output step it emitted; main persists it (watermark file) and,
 * on start, passes the persisted value back: outputs with a step start at or
 * before it are kept in history but not written.
 */
int64_t pipeline_high_watermark(struct pipeline *p);
void pipeline_set_suppress_until(struct pipeline *p, int64_t t_ms);

/* ---- warm start ----------------------------------------------------------- */

/*
 * Apply history to a warming slot (called through series_index_with_model:
 * `model` is the slot, labels are the series'). hist: time-ordered samples
 * from Prometheus; the part of it before the first sample buffered live
 * initialises the model (model_warm_start), then the buffered samples are
 * replayed live, emitting outputs. nhist == 0 abandons the warm start (the
 * slot goes live with its buffered samples). Returns 0, or 1 when the slot
 * was not warming.
 */
int pipeline_warm_apply(struct pipeline *p, void *model, const struct label *labels, size_t n,
                        const struct sample *hist, size_t nhist);

/* ---- remote read -------------------------------------------------------- */

/* One output series found for a remote-read query. labels: sorted output
 * labels; samples: time-ordered, within the query range. Valid only during
 * the callback. Return nonzero to stop. */
typedef int (*pipeline_read_fn)(void *ctx, const struct label *labels, size_t n,
                                const struct sample *samples, size_t ns);

/*
 * Find every output series matching sel with samples in [start_ms, end_ms]:
 * history, and for yhat / yhat_lower / yhat_upper the forecast path past the
 * last closed step (future timestamps at step resolution, up to the longest
 * horizon). Calls fn under a shard lock (keep it short). Returns 0, fn's
 * nonzero result, or -1 out of memory.
 */
int pipeline_read(struct pipeline *p, const struct selector *sel, int64_t start_ms, int64_t end_ms,
                  pipeline_read_fn fn, void *ctx);

/* ---- snapshots ---------------------------------------------------------------- */

/* Called for every modelled series with its serialised record (labels +
 * slot); the bytes are valid only during the call. Return nonzero to stop. */
typedef int (*pipeline_record_fn)(void *ctx, const void *rec, size_t len);

/* Serialise every slot (one shard lock at a time). Returns 0, fn's nonzero
 * result, or -1 out of memory. */
int pipeline_snapshot(struct pipeline *p, pipeline_record_fn fn, void *ctx);

/* Rebuild one slot from a record made by pipeline_snapshot and hand it to
 * the index (series_index_restore). Returns 1 restored, 0 not restored
 * (rule changed, model layout changed), -1 malformed record. */
int pipeline_restore(struct pipeline *p, const void *rec, size_t len, int64_t now_ms);

/* Fixed number stored with snapshots: changes when the record layout or
 * MODEL_STATE_VERSION does. */
uint32_t pipeline_snapshot_schema(void);

#endif
