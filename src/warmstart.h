/*
 * warmstart.h — history for new series, read back from Prometheus.
 *
 * When the pipeline creates a model slot it asks for warm start
 * (warmstart_request, its warm_request hook). A worker thread batches the
 * queued series into remote-read requests to `remote_read.url` covering the
 * last `remote_read.lookback`, at most `remote_read.requests_per_second`,
 * decodes the answer (streamed XOR chunks or samples) and hands each series'
 * history to pipeline_warm_apply() under its shard lock. A series whose
 * history cannot be fetched (after retries) or that Prometheus does not have
 * goes live without it.
 *
 * Thread-safety: warmstart_request may be called from any thread, also under
 * a shard lock (it only takes the queue's leaf lock and never blocks on I/O).
 */
#ifndef PROMCAST_WARMSTART_H
#define PROMCAST_WARMSTART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels.h"

struct config_remote_read;
struct pipeline;
struct selfmetrics;
struct series_index;
struct warmstart;

/* Series waiting for history at most; further new series start cold
 * (counted as promcast_warmstart_series_total{result="queue_full"}). */
#define WARMSTART_QUEUE_CAP 100000
/* Attempts per batch before its series go live without history. */
#define WARMSTART_ATTEMPTS 3
/* The longest history read back, whatever remote_read.lookback says. */
#define WARMSTART_MAX_LOOKBACK_MS (31LL * 24 * 3600 * 1000)

/*
 * Create the worker (not started until warmstart_start). cfg is copied;
 * idx, pipeline and metrics are borrowed and must outlive the warmstart.
 * NULL with a reason in err (bad URL, TLS files) or out of memory.
 */
struct warmstart *warmstart_create(const struct config_remote_read *cfg, struct series_index *idx,
                                   struct pipeline *pipeline, struct selfmetrics *metrics,
                                   char *err, size_t errcap);

/* Start the worker thread. 0 or -1. */
int warmstart_start(struct warmstart *w);

/* The pipeline's warm_request hook (ctx = the warmstart): copy the labels
 * into the queue. false when the queue is full (the series starts cold). */
bool warmstart_request(void *ctx, const struct label *labels, size_t n);

/* Series queued or being fetched. */
size_t warmstart_pending(struct warmstart *w);

/* Stop the worker; every series still waiting goes live without history.
 * Then free. NULL is fine. */
void warmstart_destroy(struct warmstart *w);

#endif
