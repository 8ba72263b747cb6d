/*
 * writer.h — the remote-write client for one `remote_write` target.
 *
 * Output samples are enqueued without ever waiting on the network and sent by
 * `shards` sender threads, each with its own FIFO, HTTP connection
 * (outbound.h) and encoder (wire_write.h, PRW 1.0 or 2.0). A series always
 * maps to the same shard (hash of its labels), so its samples leave in the
 * order they were enqueued; Prometheus rejects a whole request if one sample
 * in it is out of order.
 *
 * Batching: a shard sends when it holds max_samples_per_send samples, or when
 * its oldest pending sample has waited batch_send_deadline, whichever comes
 * first. A batch is also cut at WRITER_MAX_REQUEST_BYTES of label data.
 *
 * Outcome of a send, by answer:
 *   2xx                 sent (v2: the Samples-Written header must be > 0,
 *                       else the receiver does not speak 2.0: the batch fails,
 *                       reason "not_written")
 *   5xx, network error  retried with the same batch: delay min_backoff,
 *                       doubling up to max_backoff, or Retry-After when the
 *                       answer has one (capped at WRITER_MAX_RETRY_AFTER_MS);
 *                       forever while the process runs
 *   429                 retried like a 5xx when retry_on_http_429, else the
 *                       batch is dropped (reason "http_429")
 *   other 4xx           dropped (reason "http_4xx"), body logged (rate-limited)
 *   1xx, 3xx            dropped (reason "http_other"; redirects are not followed)
 * While a batch is retried new samples keep queueing behind it. The queue is
 * bounded: queue_capacity samples in total over all shards, pending batches
 * included, and queue_capacity * WRITER_BYTES_PER_SAMPLE bytes of copied
 * labels. Over either bound the NEWEST sample is refused (reason
 * "queue_full"): the oldest are the ones being retried, and dropping them
 * would break per-series order; after an outage the queue drains in order.
 *
 * Memory per queued sample: one allocation of 40 bytes + 24 per label + the
 * label name and value bytes (external labels included), plus malloc's
 * header; this is what is counted against the byte bound. A typical output
 * series with 5 labels and 100 bytes of text costs about 280 bytes, so the
 * default capacity of 100000 holds about 28 MB.
 *
 * Never written: a sample with a timestamp after the wall clock at enqueue
 * (reason "future_timestamp"): Prometheus <= 2.53 accepts it and then refuses
 * every normal sample for up to an hour (notes/protocols.md §3).
 *
 * Self-metrics, one child per target (`url` is the configured URL without
 * credentials, query or fragment; two targets with the same redacted URL
 * share children):
 *   promcast_remote_write_samples_pending{url}               gauge
 *   promcast_remote_write_samples_sent_total{url}
 *   promcast_remote_write_samples_retried_total{url}          samples re-sent
 *   promcast_remote_write_samples_failed_total{url}           refused by the receiver
 *                                                             (http_4xx, http_429,
 *                                                             http_other, not_written)
 *   promcast_remote_write_samples_dropped_total{url,reason}   every sample that will
 *                                                             never be delivered
 *   promcast_remote_write_last_send_timestamp_seconds{url}   last successful send
 *   promcast_remote_write_send_duration_seconds{url}         histogram, every attempt
 *   promcast_remote_write_requests_total{url,code}           code = HTTP status, or
 *                                                             "error" (no response)
 * Every sample handed to writer_enqueue() ends up in exactly one of sent,
 * dropped (some reason) or pending.
 *
 * Thread-safety: writer_enqueue() and the accessors may be called from any
 * thread at any time before writer_destroy(); writer_shutdown() and
 * writer_destroy() from one thread.
 */
#ifndef PROMCAST_WRITER_H
#define PROMCAST_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "labels.h"

struct selfmetrics;
struct writer;

/* Byte budget per sample of queue_capacity: bounds the copied labels. */
#define WRITER_BYTES_PER_SAMPLE 512
/* Largest single queued sample (labels after merging external labels); a
 * bigger one is refused as "invalid". */
#define WRITER_MAX_SAMPLE_BYTES 65536
/* Label bytes of one batch; a batch is cut here even below
 * max_samples_per_send, so the encoded request stays far below what
 * receivers accept (Prometheus: 32 MiB decompressed). */
#define WRITER_MAX_REQUEST_BYTES (8u << 20)
/* Longest Retry-After honoured; longer values are cut to this. */
#define WRITER_MAX_RETRY_AFTER_MS (5 * 60 * 1000)
/* Response body kept for the log line of a refused batch. */
#define WRITER_MAX_RESPONSE_BYTES 4096

/* Reasons a sample is dropped (label `reason`). */
enum writer_drop {
    WRITER_DROP_QUEUE_FULL = 0,   /* queue at capacity (samples or bytes): newest refused */
    WRITER_DROP_FUTURE_TIMESTAMP, /* t after the wall clock */
    WRITER_DROP_INVALID,          /* no labels, empty or unsorted names, too large */
    WRITER_DROP_HTTP_4XX,         /* batch refused with a 4xx other than 429 */
    WRITER_DROP_HTTP_429,         /* 429 and retry_on_http_429 is false */
    WRITER_DROP_HTTP_OTHER,       /* 1xx or 3xx answer */
    WRITER_DROP_NOT_WRITTEN,      /* v2: 2xx but Samples-Written 0 or absent */
    WRITER_DROP_SHUTDOWN,         /* pending at the shutdown deadline, or enqueued after it */
};
#define WRITER_DROP_COUNT (WRITER_DROP_SHUTDOWN + 1)

/* "queue_full", "future_timestamp", "invalid", "http_4xx", "http_429",
 * "http_other", "not_written", "shutdown". Static string. */
const char *writer_drop_reason(enum writer_drop r);

struct writer_stats {
    uint64_t pending;       /* queued or in flight */
    uint64_t pending_bytes; /* accounted bytes of those */
    uint64_t accepted;      /* writer_enqueue() calls that returned 0 */
    uint64_t sent;
    uint64_t retried;
    uint64_t failed;
    uint64_t dropped[WRITER_DROP_COUNT];
    uint64_t dropped_total;
    uint64_t requests;    /* HTTP attempts, answered or not */
    int64_t last_send_ms; /* wall clock of the last successful send; 0 = never */
};

/*
 * A writer for one target, its sender threads started. cfg and
 * external_labels (NULL = none; empty values ignored) are borrowed for the
 * call: everything needed is copied. shards 0 means 1; max_samples_per_send
 * 0 means 2000; queue_capacity 0 means 100000; batch_send_deadline 0 means
 * 5 s; backoffs 0 mean 30 ms and 5 s. metrics: the registry the families go
 * into (borrowed for the writer's life; NULL: no metrics). NULL on failure
 * with one line in err (TLS file unreadable, out of memory, thread start).
 */
struct writer *writer_create(const struct config_remote_write *cfg,
                             const struct config_labels *external_labels,
                             struct selfmetrics *metrics, char *err, size_t errcap);

/*
 * Queue one sample. labels (sorted by name, no duplicates, no empty names)
 * are borrowed for the call and copied, external labels merged in (a label
 * the series already has wins; empty values count as absent). Never blocks
 * on the network: it takes a shard mutex for a pointer append. Returns 0, or
 * -1 when the sample is dropped (counted by reason). Any thread.
 */
int writer_enqueue(struct writer *w, const struct label *labels, size_t n, int64_t t_ms, double v);

/* writer_enqueue() with the wall-clock time (ms) at which the data behind the
 * sample arrived at promcast: the writer then records arrival-to-acceptance
 * latency (promcast_output_latency_seconds). origin_ms 0 = unknown. */
int writer_enqueue_origin(struct writer *w, const struct label *labels, size_t n, int64_t t_ms,
                          double v, int64_t origin_ms);

/*
 * Stop accepting, send what is pending (immediately, without waiting for
 * batches to fill; retrying as usual) until the queue is empty or
 * deadline_ms passes, then stop the sender threads. deadline_ms is a point
 * on the monotonic clock (clock_mono_ms() + timeout), so several writers can
 * share one deadline. A request in flight at the deadline is cut (within
 * about a second). Returns the number of samples abandoned (counted as
 * dropped "shutdown"). A second call returns the same number.
 */
int writer_shutdown(struct writer *w, int64_t deadline_ms);

/* Frees the writer; shuts it down first (abandoning everything pending) if
 * writer_shutdown() was not called. NULL is fine. */
void writer_destroy(struct writer *w);

/* Counters so far (each read atomically; the set is not one snapshot). */
void writer_stats(const struct writer *w, struct writer_stats *out);

/* Samples queued or in flight. */
uint64_t writer_pending(const struct writer *w);

/* The target URL without credentials (as in the `url` label). */
const char *writer_url(const struct writer *w);

#endif
