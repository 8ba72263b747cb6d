/*
 * config.h — the YAML configuration: types, loading, validation.
 *
 * A `struct config` is built by config_load_file()/config_load_string() and is
 * immutable afterwards; every string and array in it is owned by it and freed
 * by config_destroy(). Reload builds a new config and swaps it in (main.c);
 * a bad file never touches the running one.
 *
 * Errors are reported as `file:line:col: message` lines (1-based line and
 * column, as editors expect), one per problem, all problems of a file at once
 * where the parser can continue.
 *
 * Every key, its type, default and meaning is documented in
 * docs/configuration.md; deploy/promcast.yml is the canonical example and is
 * loaded by the unit tests. An empty file is a valid config with every
 * default and no rules (nothing is modelled).
 *
 * Loading is bounded whatever the input (fixed bounds, below): file size,
 * YAML nesting, items per list or mapping, alias expansion and the number of
 * error lines. Aliases (`*name`) are resolved by reference, not copied, and
 * every node visited through them counts toward CONFIG_MAX_VISITS, so
 * "billion laughs" documents fail with a clear error instead of exploding.
 *
 * libyaml is included only by config.c. Thread-safety: loading is reentrant;
 * a loaded config may be read from any thread.
 */
#ifndef PROMCAST_CONFIG_H
#define PROMCAST_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "selector.h"

/* Fixed bounds of the loader (not configurable: they protect the loader). */
#define CONFIG_MAX_FILE_BYTES (16u << 20) /* config file size */
#define CONFIG_MAX_DEPTH      64u         /* YAML nesting of mappings/sequences */
#define CONFIG_MAX_NODES      1000000u    /* YAML nodes in one file */
#define CONFIG_MAX_ITEMS      10000u      /* entries of one sequence or mapping */
#define CONFIG_MAX_VISITS     1000000u    /* nodes visited, aliases expanded */
#define CONFIG_MAX_ERRORS     1000u       /* error lines reported for one file */
/* Longest season or horizon in model steps (bounds per-series model state). */
#define CONFIG_MAX_MODEL_STEPS 20160

/* A string→string map kept as parallel arrays, sorted by key. */
struct config_labels {
    size_t n;
    char **names;
    char **values;
};

struct config_global {
    int64_t step_ms; /* 0 when not set: the daemon uses 1m, backtest infers */
    int64_t evaluation_interval_ms;
    struct config_labels external_labels;
};

struct config_storage {
    char *path;
    int64_t snapshot_interval_ms;
    int64_t shutdown_timeout_ms; /* SIGTERM: flush queues and snapshot within this */
};

/* The output series written back and served by remote read. */
enum config_output_kind {
    OUTPUT_YHAT = 0,
    OUTPUT_YHAT_LOWER,
    OUTPUT_YHAT_UPPER,
    OUTPUT_ANOMALY_SCORE,
    OUTPUT_FORECAST,
    OUTPUT__COUNT
};

struct config_output {
    char *prefix;                /* prepended to NAME; "" by default */
    char *suffix[OUTPUT__COUNT]; /* ":yhat", ":yhat_lower", ... ":forecast" */
    char *horizon_label;         /* label carrying the horizon of NAME:forecast */
    int64_t history_ms;          /* recent outputs kept in memory for remote read */
    int64_t close_delay_ms;      /* a quiet step is closed this long after its end */
};

/* Every limit; defaults and meaning are documented in limits.h. */
struct config_limits {
    uint64_t max_compressed_request_bytes;
    uint64_t max_request_bytes; /* decompressed */
    uint64_t max_series_per_request;
    uint64_t max_labels_per_series;
    uint64_t max_label_name_length;
    uint64_t max_label_value_length;
    uint64_t max_series;        /* modelled series */
    uint64_t max_active_series; /* indexed series, modelled or not */
    int64_t series_idle_ttl_ms;
    uint64_t max_connections;
    uint64_t max_inflight_requests; /* concurrent decodes before 503 */
    int64_t request_timeout_ms;
    uint64_t max_read_request_bytes;
    uint64_t max_read_queries;
    uint64_t max_read_response_bytes;
};

/* One `rules:` entry: which series are modelled, and how. */
struct config_rule {
    char *match_text;
    struct selector *match;
    bool step_set; /* step given on the rule or globally */
    struct model_params params;
};

struct config_tls {
    char *ca_file;
    char *cert_file;
    char *key_file;
    char *server_name;
    bool insecure_skip_verify;
};

/* HTTP client settings shared by remote_write, remote_read, alertmanagers. */
struct config_http_client {
    char *url;
    char *basic_auth_username;
    char *basic_auth_password_file;
    char *bearer_token_file;
    struct config_tls tls;
    int64_t timeout_ms;
    struct config_labels headers;
};

struct config_remote_write {
    struct config_http_client http;
    int protocol; /* 1 or 2 */
    uint64_t queue_capacity;
    uint64_t max_samples_per_send;
    int64_t batch_send_deadline_ms;
    int64_t batch_idle_flush_ms; /* send early once no sample came for this long; 0 = off */
    int64_t min_backoff_ms;
    int64_t max_backoff_ms;
    bool retry_on_http_429;
    uint64_t shards;
};

struct config_remote_read {
    bool enabled;
    struct config_http_client http;
    int64_t lookback_ms;
    uint64_t max_series_per_request;
    double requests_per_second;
};

struct config_alerting {
    int64_t resend_delay_ms;
    size_t n_alertmanagers;
    struct config_http_client *alertmanagers;
};

enum config_alert_kind { ALERT_FORECAST = 0, ALERT_ANOMALY };

struct config_alert_rule {
    char *alert;
    char *match_text;
    struct selector *match;
    enum config_alert_kind kind;
    int64_t horizon_ms; /* forecast rules */
    bool has_above, has_below;
    double above, below;
    double score_above; /* anomaly rules */
    int64_t for_ms;
    struct config_labels labels;
    struct config_labels annotations;
};

struct config_kubernetes {
    bool in_cluster;
    char *api_server;
    char *token_file;
    char *ca_file;
    bool insecure_skip_verify;
    bool leader_election;
    char *lease_name;
    char *lease_namespace;
    int64_t lease_duration_ms;
    int64_t renew_deadline_ms;
    int64_t retry_period_ms;
};

struct config_scaler {
    char *name;
    char *kind; /* Deployment | StatefulSet */
    char *namespace_;
    char *target_name;
    char *match_text;
    struct selector *match;
    double capacity_per_replica;
    int64_t lead_time_ms;
    int64_t min_replicas;
    int64_t max_replicas;
    int64_t scale_up_stabilization_ms;
    int64_t scale_down_stabilization_ms;
    bool dry_run;
};

struct config {
    char *source; /* file name, or "<embedded>" */
    struct config_global global;
    struct config_storage storage;
    struct config_output output;
    struct config_limits limits;
    size_t n_rules;
    struct config_rule *rules;
    size_t n_remote_write;
    struct config_remote_write *remote_write;
    struct config_remote_read remote_read;
    struct config_alerting alerting;
    size_t n_alert_rules;
    struct config_alert_rule *alert_rules;
    bool kubernetes_set;
    struct config_kubernetes kubernetes;
    size_t n_scalers;
    struct config_scaler *scalers;
    _Atomic unsigned long refs; /* config_retain/config_release; 1 after loading */
};

/* The embedded default configuration's YAML text (models every series,
 * writes back to http://127.0.0.1:9090/api/v1/write). */
extern const char config_default_yaml[];

/*
 * Load and validate. On success returns a new config (caller owns it). On
 * failure returns NULL and writes every error as a line `name:line:col: msg\n`
 * into errbuf (truncated to errcap, always NUL-terminated when errcap > 0;
 * errbuf may be NULL when errcap is 0); *nerrors gets the number of errors
 * when not NULL (0 on success). `name` is used in messages and as source;
 * `yaml` (len bytes, need not be NUL-terminated) is borrowed for the call.
 * A file that cannot be read gives one error line `path: message`.
 */
struct config *config_load_file(const char *path, char *errbuf, size_t errcap, int *nerrors);
struct config *config_load_string(const char *name, const char *yaml, size_t len, char *errbuf,
                                  size_t errcap, int *nerrors);
void config_destroy(struct config *c);

/*
 * Reference counting for the running config, which readers on other threads
 * keep while a reload swaps in a new one. A loaded config holds one
 * reference. config_retain adds one and returns c; config_release drops one
 * and destroys the config with the last. Both accept NULL and may be called
 * from any thread (the counter is atomic; the caller that publishes the
 * current pointer must make retain and the swap mutually exclusive).
 * config_destroy frees regardless of references (single-owner use).
 */
struct config *config_retain(struct config *c);
void config_release(struct config *c);

/* Parse a Prometheus duration ("1h30m", "7d", "500ms", "0s"); units y w d h m
 * s ms, in that order, each at most once. Returns -1 on bad syntax or
 * overflow. */
int config_parse_duration(const char *s, int64_t *ms);

/* Format ms as a Prometheus duration ("1h30m"); returns buf. */
char *config_format_duration(int64_t ms, char *buf, size_t cap);

/* The first rule whose selector matches, or NULL (series is not modelled).
 * Labels are borrowed for the call. Thread-safe. */
const struct config_rule *config_match_rule(const struct config *c, const struct label *labels,
                                            size_t n);

/*
 * `promcast check-config FILE`: load `path`, print every error line (or
 * "path: OK, N rules, ..." on success) to `out`, and return the process exit
 * code: 0 valid, 1 invalid or unreadable.
 */
int config_check_file(const char *path, FILE *out);

#endif
