/*
 * http.h — promcast's HTTP server (libmicrohttpd, thread pool).
 *
 * Routes: POST /api/v1/write (remote write 1.0 and 2.0), POST /api/v1/read
 * (remote read of promcast's outputs and forecast path), GET /metrics,
 * GET /-/healthy, GET /-/ready, POST /-/reload, GET /api/v1/status.
 * This is the only module that maps errors to HTTP status codes and the only
 * one that includes libmicrohttpd.
 *
 * Ownership: the server borrows the series index, pipeline and metrics
 * registry given at creation; they must outlive it. Hooks are called from the server's threads.
 */
#ifndef PROMCAST_HTTP_H
#define PROMCAST_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct pipeline;
struct series_index;
struct selfmetrics;

/* Per-request limits (from config `limits:`); replaced atomically on reload. */
struct http_limits {
    uint64_t max_compressed_request_bytes;
    uint64_t max_request_bytes;
    uint64_t max_series_per_request;
    uint64_t max_labels_per_series;
    uint64_t max_label_name_length;
    uint64_t max_label_value_length;
    uint64_t max_inflight_requests;
    uint64_t max_read_request_bytes;  /* remote-read request body */
    uint64_t max_read_queries;        /* queries per remote-read request */
    uint64_t max_read_response_bytes; /* whole remote-read answer */
};

/* Calls from the server into the program that embeds it (main.c). */
struct http_hooks {
    void *ctx;
    /* POST /-/reload: reload the configuration; 0 on success, else -1 with a
     * one-line reason (several lines allowed for config errors) in err. */
    int (*reload)(void *ctx, char *err, size_t errcap);
    /* GET /-/ready: true when ready; else a reason in why. */
    bool (*ready)(void *ctx, char *why, size_t whycap);
    /* The current config, retained for the caller; released with
     * config_release. Used by /api/v1/status. */
    const struct config *(*config_acquire)(void *ctx);
    void (*config_release)(void *ctx, const struct config *c);
};

struct http_server_opts {
    const char *listen_address; /* "host:port", ":port", "[::1]:port"; port 0 = any */
    unsigned threads;           /* thread pool size; 0 = number of CPUs */
    unsigned max_connections;
    int64_t connection_timeout_ms;
    struct http_limits limits;
};

/*
 * Start serving. Returns NULL and writes a reason to err on failure (bad
 * address, port in use). `series` and `metrics` are borrowed. The hooks struct
 * is copied.
 */
struct http_server *http_server_create(const struct http_server_opts *opts,
                                       struct series_index *series, struct pipeline *pipeline,
                                       struct selfmetrics *metrics, const struct http_hooks *hooks,
                                       char *err, size_t errcap);

/* Replace the request limits (thread-safe; applies to requests that start
 * after the call). */
void http_server_set_limits(struct http_server *s, const struct http_limits *limits);

/* The bound TCP port (useful with port 0). */
uint16_t http_server_port(const struct http_server *s);

/* Stop accepting, finish in-flight requests, free everything. NULL is fine. */
void http_server_destroy(struct http_server *s);

#endif
