/*
 * limits.h — every hard limit of promcast, in one place.
 *
 * Each limit has a default here and the config key (under `limits:` unless
 * said otherwise) that overrides it. Hitting a limit is always counted on
 * /metrics (promcast_rejected_requests_total{reason} for whole requests,
 * promcast_limit_hits_total{limit} for everything else) and logged at most a
 * few times per 10 s.
 */
#ifndef PROMCAST_LIMITS_H
#define PROMCAST_LIMITS_H

/* limits.max_compressed_request_bytes: snappy body as received; over it → 413. */
#define LIMIT_MAX_COMPRESSED_REQUEST_BYTES (16u << 20)

/* limits.max_request_bytes: decompressed body, checked against snappy's
 * declared length before anything is allocated; over it → 413. */
#define LIMIT_MAX_REQUEST_BYTES (32u << 20)

/* limits.max_series_per_request: TimeSeries entries in one write request; → 413. */
#define LIMIT_MAX_SERIES_PER_REQUEST 100000

/* limits.max_labels_per_series: labels of one series; → 400 (never succeeds). */
#define LIMIT_MAX_LABELS_PER_SERIES 64

/* limits.max_label_name_length / max_label_value_length, in bytes; → 400. */
#define LIMIT_MAX_LABEL_NAME_LENGTH  1024
#define LIMIT_MAX_LABEL_VALUE_LENGTH 4096

/* limits.max_active_series: series held in the index (modelled or not). New
 * series over the cap are not indexed; their samples are counted as received
 * and dropped with promcast_limit_hits_total{limit="max_active_series"}. */
#define LIMIT_MAX_ACTIVE_SERIES 2000000

/* limits.max_series: series that get model state (cardinality cap). Further
 * matching series stay indexed but unmodelled (limit "max_series"). */
#define LIMIT_MAX_SERIES 1000000

/* limits.series_idle_ttl: a series without samples for this long is evicted. */
#define LIMIT_SERIES_IDLE_TTL_MS (60 * 60 * 1000)

/* limits.max_connections: concurrent HTTP connections (libmicrohttpd). */
#define LIMIT_MAX_CONNECTIONS 1024

/* limits.max_inflight_requests: write requests decoded at once; more → 503
 * with Retry-After so senders back off (transient overload). */
#define LIMIT_MAX_INFLIGHT_REQUESTS 64

/* limits.request_timeout: idle HTTP connection timeout. */
#define LIMIT_REQUEST_TIMEOUT_MS (30 * 1000)

/* limits.max_read_request_bytes: remote-read request body as received; → 413. */
#define LIMIT_MAX_READ_REQUEST_BYTES (4u << 20)

/* limits.max_read_queries: queries in one remote-read request; → 413. */
#define LIMIT_MAX_READ_QUERIES 256

/* limits.max_read_response_bytes: a whole remote-read answer (history and
 * forecast path), like Prometheus's read sample limit; → 400. */
#define LIMIT_MAX_READ_RESPONSE_BYTES (64u << 20)

/* Not configurable: protobuf nesting is fixed by the schema, so any deeper
 * message is malformed. */
#define LIMIT_PROTO_MAX_DEPTH 8

#endif
