/*
 * test_config.c — the YAML configuration: the canonical deploy/promcast.yml
 * and the embedded default load; every key of data/config/full.yml lands in
 * its field; defaults; bad snippets each give exactly the expected
 * `line:col: message`; a file with many mistakes reports all of them in file
 * order (data/config/bad.expected); loader bounds (size, depth, items,
 * aliases); durations; rule matching order; check-config output.
 *
 * Fixtures are found through PROMCAST_SOURCE_DIR, which ctest sets.
 */
#include "config.h"
#include "limits.h"
#include "testlib.h"

#define ERRCAP (64 * 1024)

static char errbuf[ERRCAP];

static const char *source_dir(void)
{
    const char *d = getenv("PROMCAST_SOURCE_DIR");
    return d && *d ? d : ".";
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *p = realloc(buf, 2 * cap + 1);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static struct config *load(const char *yaml, int *nerr)
{
    return config_load_string("t.yml", yaml, strlen(yaml), errbuf, sizeof errbuf, nerr);
}

/* ---- files that must load ------------------------------------------------------- */

static void test_canonical(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/deploy/promcast.yml", source_dir());
    int nerr = -1;
    struct config *c = config_load_file(path, errbuf, sizeof errbuf, &nerr);
    CHECK(c != NULL && nerr == 0, "canonical %s: %s", path, errbuf);
    if (!c)
        return;
    CHECK(c->global.step_ms == 60000, "step %lld", (long long)c->global.step_ms);
    CHECK(c->global.evaluation_interval_ms == 30000, "evaluation_interval");
    CHECK(c->global.external_labels.n == 0, "external_labels");
    CHECK(strcmp(c->storage.path, "/var/lib/promcast") == 0, "storage.path %s", c->storage.path);
    CHECK(c->storage.snapshot_interval_ms == 300000, "snapshot_interval");
    CHECK(c->limits.max_request_bytes == 33554432, "max_request_bytes");
    CHECK(c->limits.max_series == 1000000 && c->limits.series_idle_ttl_ms == 3600000, "limits");
    CHECK(c->n_rules == 1, "rules %zu", c->n_rules);
    if (c->n_rules == 1) {
        const struct config_rule *r = &c->rules[0];
        CHECK(strcmp(r->match_text, "{__name__=~\"job:.*\"}") == 0, "match %s", r->match_text);
        CHECK(r->step_set && r->params.step_ms == 60000, "rule step");
        CHECK(r->params.kind == MODEL_AUTO && r->params.transform == MODEL_TRANSFORM_NONE,
              "model/transform");
        CHECK(r->params.nseasons == 1 && r->params.season_ms[0] == 86400000, "seasons");
        CHECK(r->params.nhorizons == 2 && r->params.horizon_ms[0] == 900000 &&
                  r->params.horizon_ms[1] == 3600000,
              "horizons");
        CHECK(r->params.coverage == 0.95, "coverage");
    }
    CHECK(c->n_remote_write == 1, "remote_write");
    if (c->n_remote_write == 1) {
        const struct config_remote_write *w = &c->remote_write[0];
        CHECK(strcmp(w->http.url, "http://127.0.0.1:9090/api/v1/write") == 0, "rw url");
        CHECK(w->protocol == 1 && w->queue_capacity == 100000 && w->max_samples_per_send == 2000,
              "rw queue");
        CHECK(w->batch_send_deadline_ms == 5000 && w->min_backoff_ms == 30 &&
                  w->max_backoff_ms == 5000 && w->retry_on_http_429,
              "rw queue timing");
    }
    CHECK(c->remote_read.enabled && c->remote_read.lookback_ms == 7LL * 86400000, "remote_read");
    CHECK(c->alerting.resend_delay_ms == 60000 && c->alerting.n_alertmanagers == 1, "alerting");
    CHECK(c->n_alert_rules == 2, "alert rules");
    if (c->n_alert_rules == 2) {
        const struct config_alert_rule *a = &c->alert_rules[0], *b = &c->alert_rules[1];
        CHECK(strcmp(a->alert, "PredictedHighLoad") == 0 && a->kind == ALERT_FORECAST &&
                  a->horizon_ms == 1800000 && a->has_above && a->above == 1000 && !a->has_below &&
                  a->for_ms == 300000,
              "alert 0");
        CHECK(a->labels.n == 1 && strcmp(a->labels.names[0], "severity") == 0, "alert labels");
        CHECK(a->annotations.n == 1 && strstr(a->annotations.values[0], "{{ $eta }}"),
              "annotations");
        CHECK(b->kind == ALERT_ANOMALY && b->score_above == 0.99, "alert 1");
    }
    CHECK(c->kubernetes_set && c->kubernetes.in_cluster, "kubernetes");
    CHECK(c->kubernetes.token_file &&
              strcmp(c->kubernetes.token_file,
                     "/var/run/secrets/kubernetes.io/serviceaccount/token") == 0,
          "in-cluster token default");
    CHECK(c->n_scalers == 1, "scalers");
    if (c->n_scalers == 1) {
        const struct config_scaler *s = &c->scalers[0];
        CHECK(strcmp(s->name, "api") == 0 && strcmp(s->kind, "Deployment") == 0 &&
                  strcmp(s->namespace_, "default") == 0 && strcmp(s->target_name, "api") == 0,
              "scaler target");
        CHECK(s->capacity_per_replica == 100 && s->lead_time_ms == 300000 && s->min_replicas == 2 &&
                  s->max_replicas == 50 && !s->dry_run,
              "scaler numbers");
        CHECK(s->scale_up_stabilization_ms == 0 && s->scale_down_stabilization_ms == 300000,
              "scaler behavior");
    }
    config_destroy(c);
}

static void test_embedded_default(void)
{
    int nerr = -1;
    struct config *c =
        config_load_string("<embedded>", config_default_yaml, strlen(config_default_yaml), errbuf,
                           sizeof errbuf, &nerr);
    CHECK(c != NULL && nerr == 0, "embedded default: %s", errbuf);
    if (!c)
        return;
    CHECK(strcmp(c->source, "<embedded>") == 0, "source");
    /* No step: the daemon uses 1m, backtest infers it from the data. */
    CHECK(c->global.step_ms == 0 && !c->rules[0].step_set &&
              c->global.evaluation_interval_ms == 30000,
          "global");
    CHECK(strcmp(c->storage.path, "data/") == 0, "storage.path");
    CHECK(c->n_rules == 1 && c->rules[0].params.kind == MODEL_AUTO &&
              c->rules[0].params.nhorizons == 2 && c->rules[0].params.coverage == 0.95 &&
              c->rules[0].params.nseasons == -1,
          "rule");
    CHECK(c->n_remote_write == 1 &&
              strcmp(c->remote_write[0].http.url, "http://127.0.0.1:9090/api/v1/write") == 0,
          "remote_write");
    CHECK(c->remote_read.enabled &&
              strcmp(c->remote_read.http.url, "http://127.0.0.1:9090/api/v1/read") == 0 &&
              c->remote_read.lookback_ms == 7LL * 86400000,
          "remote_read");
    CHECK(c->alerting.n_alertmanagers == 0 && c->n_alert_rules == 0 && c->n_scalers == 0 &&
              !c->kubernetes_set,
          "no alerting, no scalers");
    /* Reference counting: the last release frees (ASan/valgrind check). */
    CHECK(config_retain(c) == c && config_retain(NULL) == NULL, "retain");
    config_release(c);
    config_release(NULL);
    CHECK(c->n_rules == 1, "still alive after one release");
    config_retain(c);
    config_release(c);

    /* It models every series, including ones with odd names. */
    struct label l[2] = {{"__name__", "x:y", 8, 3}, {"a", "b", 1, 1}};
    CHECK(config_match_rule(c, l, 2) == &c->rules[0], "matches everything");
    config_release(c);
}

static void test_defaults(void)
{
    static const char *const empties[] = {"", "# only a comment\n", "---\n", "~\n",
                                          "global:\nrules:\n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        int nerr = -1;
        struct config *c = load(empties[i], &nerr);
        CHECK(c != NULL && nerr == 0, "empty [%s]: %s", empties[i], errbuf);
        if (!c)
            continue;
        CHECK(c->global.step_ms == 0 && c->global.evaluation_interval_ms == 30000, "global");
        CHECK(strcmp(c->storage.path, "data/") == 0 && c->storage.snapshot_interval_ms == 300000,
              "storage");
        const struct config_limits *l = &c->limits;
        CHECK(l->max_compressed_request_bytes == LIMIT_MAX_COMPRESSED_REQUEST_BYTES &&
                  l->max_request_bytes == LIMIT_MAX_REQUEST_BYTES &&
                  l->max_series_per_request == LIMIT_MAX_SERIES_PER_REQUEST &&
                  l->max_labels_per_series == LIMIT_MAX_LABELS_PER_SERIES &&
                  l->max_label_name_length == LIMIT_MAX_LABEL_NAME_LENGTH &&
                  l->max_label_value_length == LIMIT_MAX_LABEL_VALUE_LENGTH &&
                  l->max_series == LIMIT_MAX_SERIES &&
                  l->max_active_series == LIMIT_MAX_ACTIVE_SERIES &&
                  l->series_idle_ttl_ms == LIMIT_SERIES_IDLE_TTL_MS &&
                  l->max_connections == LIMIT_MAX_CONNECTIONS &&
                  l->max_inflight_requests == LIMIT_MAX_INFLIGHT_REQUESTS &&
                  l->request_timeout_ms == LIMIT_REQUEST_TIMEOUT_MS,
              "limits defaults");
        CHECK(c->n_rules == 0 && c->n_remote_write == 0 && !c->remote_read.enabled &&
                  c->alerting.resend_delay_ms == 60000 && c->n_alert_rules == 0 &&
                  c->n_scalers == 0 && !c->kubernetes_set,
              "sections");
        struct label l1 = {"__name__", "up", 8, 2};
        CHECK(config_match_rule(c, &l1, 1) == NULL, "no rules, nothing modelled");
        config_destroy(c);
    }

    /* Defaults inside sections. */
    int nerr = -1;
    struct config *c = load("rules:\n  - match: up\nremote_write:\n  - url: http://h/w\n"
                            "kubernetes:\n  api_server: https://k:6443\n"
                            "scalers:\n  - {name: s, target: {name: d}, match: up, "
                            "capacity_per_replica: 1}\n",
                            &nerr);
    CHECK(c != NULL, "section defaults: %s", errbuf);
    if (!c)
        return;
    const struct model_params *p = &c->rules[0].params;
    CHECK(!c->rules[0].step_set && p->step_ms == 0, "no step anywhere");
    CHECK(p->kind == MODEL_AUTO && p->transform == MODEL_TRANSFORM_NONE &&
              p->aggregation == MODEL_AGG_LAST && p->nseasons == -1 && p->nhorizons == 2 &&
              p->horizon_ms[0] == 900000 && p->horizon_ms[1] == 3600000 && p->coverage == 0.95,
          "rule defaults");
    const struct config_remote_write *w = &c->remote_write[0];
    CHECK(w->protocol == 1 && w->queue_capacity == 100000 && w->max_samples_per_send == 2000 &&
              w->batch_send_deadline_ms == 5000 && w->min_backoff_ms == 30 &&
              w->max_backoff_ms == 5000 && w->retry_on_http_429 && w->shards == 4 &&
              w->http.timeout_ms == 30000,
          "remote_write defaults");
    const struct config_kubernetes *k = &c->kubernetes;
    CHECK(!k->in_cluster && !k->token_file && !k->ca_file && !k->leader_election &&
              strcmp(k->lease_name, "promcast") == 0 &&
              strcmp(k->lease_namespace, "default") == 0 && k->lease_duration_ms == 15000 &&
              k->renew_deadline_ms == 10000 && k->retry_period_ms == 2000,
          "kubernetes defaults");
    const struct config_scaler *s = &c->scalers[0];
    CHECK(strcmp(s->kind, "Deployment") == 0 && strcmp(s->namespace_, "default") == 0 &&
              s->lead_time_ms == 300000 && s->min_replicas == 1 && s->max_replicas == 10 &&
              s->scale_up_stabilization_ms == 0 && s->scale_down_stabilization_ms == 300000 &&
              !s->dry_run,
          "scaler defaults");
    config_destroy(c);

    /* A global step flows into rules; seasons: [] means none. */
    c = load("global: {step: 15s}\nrules:\n  - {match: up, seasons: []}\n", &nerr);
    CHECK(c && c->rules[0].step_set && c->rules[0].params.step_ms == 15000 &&
              c->rules[0].params.nseasons == 0,
          "global step into rule: %s", errbuf);
    config_destroy(c);
}

static void test_full(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/unit/data/config/full.yml", source_dir());
    int nerr = -1;
    struct config *c = config_load_file(path, errbuf, sizeof errbuf, &nerr);
    CHECK(c != NULL, "full.yml: %s", errbuf);
    if (!c)
        return;
    CHECK(c->global.step_ms == 30000 && c->global.evaluation_interval_ms == 15000, "global");
    CHECK(c->global.external_labels.n == 2 &&
              strcmp(c->global.external_labels.names[0], "cluster") == 0 &&
              strcmp(c->global.external_labels.values[0], "eu1") == 0 &&
              strcmp(c->global.external_labels.names[1], "replica") == 0,
          "external_labels");
    CHECK(strcmp(c->storage.path, "/tmp/promcast-test") == 0 &&
              c->storage.snapshot_interval_ms == 120000,
          "storage");
    const struct config_limits *l = &c->limits;
    CHECK(l->max_compressed_request_bytes == 1048576 && l->max_request_bytes == 4194304 &&
              l->max_series_per_request == 5000 && l->max_labels_per_series == 32 &&
              l->max_label_name_length == 256 && l->max_label_value_length == 2048 &&
              l->max_series == 5000 && l->max_active_series == 10000 &&
              l->series_idle_ttl_ms == 7200000 && l->max_connections == 100 &&
              l->max_inflight_requests == 8 && l->request_timeout_ms == 10000,
          "limits");
    CHECK(c->n_rules == 3, "rules");
    if (c->n_rules == 3) {
        const struct model_params *p = &c->rules[0].params;
        CHECK(p->step_ms == 60000 && p->transform == MODEL_TRANSFORM_RATE &&
                  p->kind == MODEL_HOLT_WINTERS && p->nseasons == 2 &&
                  p->season_ms[0] == 86400000 && p->season_ms[1] == 604800000 &&
                  p->nhorizons == 3 && p->horizon_ms[2] == 7200000 && p->coverage == 0.8 &&
                  p->aggregation == MODEL_AGG_MAX,
              "rule 0");
        p = &c->rules[1].params;
        CHECK(p->step_ms == 30000 && p->kind == MODEL_AR && p->nseasons == 0 &&
                  p->aggregation == MODEL_AGG_MEAN,
              "rule 1");
        CHECK(c->rules[2].params.kind == MODEL_LEVEL, "rule 2");
    }
    CHECK(c->n_remote_write == 2, "remote_write");
    if (c->n_remote_write == 2) {
        const struct config_remote_write *w = &c->remote_write[0];
        CHECK(w->protocol == 2 && w->http.timeout_ms == 20000 && w->http.headers.n == 1 &&
                  strcmp(w->http.headers.names[0], "X-Scope-OrgID") == 0 &&
                  strcmp(w->http.headers.values[0], "tenant1") == 0,
              "rw 0 http");
        CHECK(strcmp(w->http.basic_auth_username, "u") == 0 &&
                  strcmp(w->http.basic_auth_password_file, "/etc/promcast/password") == 0,
              "basic_auth");
        CHECK(strcmp(w->http.tls.ca_file, "/etc/promcast/ca.pem") == 0 &&
                  strcmp(w->http.tls.cert_file, "/etc/promcast/cert.pem") == 0 &&
                  strcmp(w->http.tls.key_file, "/etc/promcast/key.pem") == 0 &&
                  strcmp(w->http.tls.server_name, "mimir.example") == 0 &&
                  w->http.tls.insecure_skip_verify,
              "tls");
        CHECK(w->queue_capacity == 5000 && w->max_samples_per_send == 500 &&
                  w->batch_send_deadline_ms == 1000 && w->min_backoff_ms == 50 &&
                  w->max_backoff_ms == 10000 && !w->retry_on_http_429 && w->shards == 2,
              "queue");
        CHECK(strcmp(c->remote_write[1].http.bearer_token_file, "/etc/promcast/token") == 0,
              "bearer");
    }
    const struct config_remote_read *r = &c->remote_read;
    CHECK(!r->enabled && r->lookback_ms == 2 * 86400000LL && r->max_series_per_request == 50 &&
              r->requests_per_second == 2.5 && r->http.timeout_ms == 45000,
          "remote_read");
    CHECK(c->alerting.resend_delay_ms == 120000 && c->alerting.n_alertmanagers == 2 &&
              c->alerting.alertmanagers[0].timeout_ms == 3000 &&
              c->alerting.alertmanagers[1].timeout_ms == 10000,
          "alerting");
    if (c->n_alert_rules == 2) {
        const struct config_alert_rule *a = &c->alert_rules[0];
        CHECK(a->has_above && a->has_below && a->below == -5 && a->labels.n == 2 &&
                  a->annotations.n == 2 && strcmp(a->annotations.names[0], "runbook") == 0,
              "alert 0 (sorted annotations)");
        CHECK(c->alert_rules[1].score_above == 0.999 && c->alert_rules[1].for_ms == 0, "alert 1");
    }
    const struct config_kubernetes *k = &c->kubernetes;
    CHECK(!k->in_cluster && strcmp(k->api_server, "https://10.0.0.1:6443") == 0 &&
              strcmp(k->token_file, "/etc/promcast/k8s-token") == 0 &&
              strcmp(k->ca_file, "/etc/promcast/k8s-ca.crt") == 0 && k->insecure_skip_verify &&
              k->leader_election && strcmp(k->lease_name, "promcast-eu1") == 0 &&
              strcmp(k->lease_namespace, "monitoring") == 0 && k->lease_duration_ms == 30000 &&
              k->renew_deadline_ms == 20000 && k->retry_period_ms == 5000,
          "kubernetes");
    if (c->n_scalers == 1) {
        const struct config_scaler *s = &c->scalers[0];
        CHECK(strcmp(s->kind, "StatefulSet") == 0 && strcmp(s->namespace_, "prod") == 0 &&
                  strcmp(s->target_name, "api-db") == 0 && s->capacity_per_replica == 250.5 &&
                  s->lead_time_ms == 180000 && s->min_replicas == 3 && s->max_replicas == 30 &&
                  s->scale_up_stabilization_ms == 30000 &&
                  s->scale_down_stabilization_ms == 600000 && s->dry_run,
              "scaler");
    }

    /* Rule matching: first match wins. */
    struct label a[2] = {{"__name__", "http_requests_total", 8, 19}, {"code", "503", 4, 3}};
    struct label b[2] = {{"__name__", "http_requests_total", 8, 19}, {"code", "200", 4, 3}};
    struct label j[1] = {{"__name__", "job:x", 8, 5}};
    CHECK(config_match_rule(c, a, 2) == &c->rules[0], "503 → rule 0");
    CHECK(config_match_rule(c, b, 2) == &c->rules[2], "200 → rule 2 (catch-all)");
    CHECK(config_match_rule(c, j, 1) == &c->rules[1], "job: → rule 1");
    CHECK(config_match_rule(c, NULL, 0) == NULL, "no name → no rule");
    config_destroy(c);
}

/* ---- errors ------------------------------------------------------------------------ */

struct bad_case {
    const char *yaml;
    const char *want; /* substring of the output, "t.yml:L:C: message" */
    int nerr;         /* exact error count */
};

static const struct bad_case bad_cases[] = {
    /* structure and keys */
    {"global:\n  stepp: 1m\n",
     "t.yml:2:3: unknown key \"stepp\" in global (known: step, evaluation_interval, "
     "external_labels)",
     1},
    {"rules:\n  - match: up\n    stepp: 1m\n",
     "t.yml:3:5: unknown key \"stepp\" in rules[0] (known: match, transform, model, seasons, "
     "horizons, interval_coverage, step, aggregation)",
     1},
    {"foo: 1\n",
     "t.yml:1:1: unknown key \"foo\" at top level (known: global, storage, output, limits, "
     "rules, remote_write, remote_read, alerting, alert_rules, kubernetes, scalers)",
     1},
    {"- a\n", "t.yml:1:1: top level: expected a mapping, got a sequence", 1},
    {"global: 5\n", "t.yml:1:9: global: expected a mapping, got a plain scalar", 1},
    {"rules: {match: up}\n", "t.yml:1:8: rules: expected a sequence, got a mapping", 1},
    {"rules:\n  - up\n", "t.yml:2:5: rules[0]: expected a mapping, got a plain scalar", 1},
    {"rules:\n  -\n", "t.yml:2:4: rules[0]: expected a mapping, got null", 1},
    {"global:\n  step: 1m\n  step: 2m\n",
     "t.yml:3:3: duplicate key \"step\" in global (first at line 2)", 1},
    {"global:\n  [a]: 1\n", "t.yml:2:3: global: keys must be strings, got a sequence", 1},
    /* durations */
    {"global:\n  step: 5 minutes\n",
     "t.yml:2:9: global.step: expected a duration like 30s, 5m, 1h30m, got \"5 minutes\"", 1},
    {"global:\n  step: 1.5h\n", "t.yml:2:9: global.step: expected a duration like", 1},
    {"global:\n  step: -1m\n", "t.yml:2:9: global.step: expected a duration like", 1},
    {"global:\n  step: 0s\n", "t.yml:2:9: global.step: must be greater than 0", 1},
    {"global:\n  step: [1m]\n",
     "t.yml:2:9: global.step: expected a duration like 30s, 5m, 1h30m, got a sequence", 1},
    {"limits:\n  series_idle_ttl: 10ms\n",
     "t.yml:2:20: limits.series_idle_ttl: must be at least 1s", 1},
    /* numbers and booleans */
    {"limits:\n  max_series: abc\n",
     "t.yml:2:15: limits.max_series: expected an integer, got \"abc\"", 1},
    {"limits:\n  max_series: '5'\n",
     "t.yml:2:15: limits.max_series: expected an integer, got \"5\"", 1},
    {"limits:\n  max_series: -1\n",
     "t.yml:2:15: limits.max_series: must be between 1 and 1000000000, got -1", 1},
    {"limits:\n  max_series: 99999999999999999999\n",
     "t.yml:2:15: limits.max_series: expected an integer", 1},
    {"limits:\n  max_series: 3000000\n",
     "t.yml:2:15: limits.max_series (3000000) must not exceed limits.max_active_series "
     "(2000000)",
     1},
    {"limits:\n  max_request_bytes: 1_000_000\n", NULL, 0},
    {"rules:\n  - match: up\n    interval_coverage: 1\n",
     "t.yml:3:24: rules[0].interval_coverage: must be in (0, 1), got 1", 1},
    {"rules:\n  - match: up\n    interval_coverage: 0\n",
     "t.yml:3:24: rules[0].interval_coverage: must be in (0, 1), got 0", 1},
    {"rules:\n  - match: up\n    interval_coverage: .nan\n",
     "t.yml:3:24: rules[0].interval_coverage: expected a number, got \".nan\"", 1},
    {"rules:\n  - match: up\n    interval_coverage: 0x1p-1\n",
     "t.yml:3:24: rules[0].interval_coverage: expected a number", 1},
    {"remote_write:\n  - url: http://h\n    queue: {retry_on_http_429: maybe}\n",
     "t.yml:3:32: remote_write[0].queue.retry_on_http_429: expected a boolean (true or false), "
     "got \"maybe\"",
     1},
    {"remote_write:\n  - url: http://h\n    queue: {retry_on_http_429: 'true'}\n",
     "expected a boolean (true or false), got \"true\"", 1},
    /* enums */
    {"rules:\n  - match: up\n    transform: log\n",
     "t.yml:3:16: rules[0].transform: unknown value \"log\" (one of: none, rate)", 1},
    {"rules:\n  - match: up\n    model: arima\n",
     "t.yml:3:12: rules[0].model: unknown value \"arima\" (one of: auto, holt_winters, ar, "
     "level)",
     1},
    {"rules:\n  - match: up\n    aggregation: sum\n",
     "t.yml:3:18: rules[0].aggregation: unknown value \"sum\" (one of: last, mean, max)", 1},
    {"remote_write:\n  - url: http://h\n    protocol: v3\n",
     "t.yml:3:15: remote_write[0].protocol: unknown value \"v3\" (one of: v1, v2)", 1},
    {"kubernetes: {in_cluster: true}\nscalers:\n  - {name: s, target: {kind: Pod, name: d}, "
     "match: up, capacity_per_replica: 1}\n",
     "t.yml:3:30: scalers[0].target.kind: unknown value \"Pod\" (one of: Deployment, "
     "StatefulSet)",
     1},
    /* selectors: the column points inside the scalar */
    {"rules:\n  - match: '{a=}'\n",
     "t.yml:2:16: rules[0].match: invalid selector: unexpected character '}' at offset 3, "
     "expected quoted string",
     1},
    {"rules:\n  - match: foo bar\n",
     "t.yml:2:16: rules[0].match: invalid selector: unexpected character 'b' at offset 4", 1},
    {"rules:\n  - match: \"{a=~\\\"(\\\"}\"\n",
     "t.yml:2:12: rules[0].match: invalid selector: invalid regex \"(\": missing closing "
     "parenthesis",
     1},
    {"rules:\n  - match: '{}'\n",
     "t.yml:2:13: rules[0].match: invalid selector: vector selector must contain at least one "
     "non-empty matcher",
     1},
    {"rules:\n  - match: |\n      {a=}\n", "t.yml:2:12: rules[0].match: invalid selector", 1},
    {"rules:\n  - match: '{\xc3\xa9=\"x\"}'\n",
     "t.yml:2:14: rules[0].match: invalid selector: unexpected character '\xc3\xa9' at offset 1",
     1},
    {"rules:\n  - match: {a: b}\n",
     "t.yml:2:12: rules[0].match: expected a selector string, got a mapping", 1},
    /* required keys */
    {"rules:\n  - model: auto\n", "t.yml:2:5: rules[0]: missing required key \"match\"", 1},
    {"rules:\n  - match:\n", "t.yml:2:5: rules[0].match: must not be empty", 1},
    {"remote_write:\n  - protocol: v2\n",
     "t.yml:2:5: remote_write[0]: missing required key \"url\"", 1},
    {"remote_read:\n  lookback: 1d\n", "t.yml:2:3: remote_read: missing required key \"url\"", 1},
    {"alert_rules:\n  - match: up\n    anomaly: {score_above: 0.9}\n",
     "t.yml:2:5: alert_rules[0]: missing required key \"alert\"", 1},
    {"alert_rules:\n  - alert: A\n    anomaly: {score_above: 0.9}\n",
     "t.yml:2:5: alert_rules[0]: missing required key \"match\"", 1},
    {"kubernetes: {in_cluster: true}\nscalers:\n  - {target: {name: d}, match: up, "
     "capacity_per_replica: 1}\n",
     "t.yml:3:5: scalers[0]: missing required key \"name\"", 1},
    {"kubernetes: {in_cluster: true}\nscalers:\n  - {name: s, match: up, "
     "capacity_per_replica: 1}\n",
     "t.yml:3:5: scalers[0]: missing required key \"target\"", 1},
    {"kubernetes: {in_cluster: true}\nscalers:\n  - {name: s, target: {name: d}, "
     "capacity_per_replica: 1}\n",
     "t.yml:3:5: scalers[0]: missing required key \"match\"", 1},
    {"kubernetes: {in_cluster: true}\nscalers:\n  - {name: s, target: {name: d}, match: up}\n",
     "t.yml:3:5: scalers[0]: missing required key \"capacity_per_replica\"", 1},
    {"kubernetes: {in_cluster: true}\nscalers:\n  - {name: s, target: {kind: Deployment}, "
     "match: up, capacity_per_replica: 1}\n",
     "t.yml:3:23: scalers[0].target: missing required key \"name\"", 1},
    /* URLs */
    {"remote_write:\n  - url: ftp://x\n",
     "t.yml:2:10: remote_write[0].url: expected an http:// or https:// URL with a host, got "
     "\"ftp://x\"",
     1},
    {"remote_write:\n  - url: http:///path\n", "t.yml:2:10: remote_write[0].url: expected", 1},
    {"alerting:\n  alertmanagers:\n    - url: 'http://a b'\n",
     "t.yml:3:12: alerting.alertmanagers[0].url: expected an http:// or https:// URL", 1},
    {"kubernetes:\n  api_server: k8s:6443\n",
     "t.yml:2:15: kubernetes.api_server: expected an http:// or https:// URL", 1},
    /* labels and headers */
    {"global:\n  external_labels: {1a: b}\n",
     "t.yml:2:21: global.external_labels: invalid label name \"1a\" (must match "
     "[a-zA-Z_][a-zA-Z0-9_]*)",
     1},
    {"global:\n  external_labels: {__a: b}\n",
     "t.yml:2:21: global.external_labels: label name \"__a\" is reserved", 1},
    {"global:\n  external_labels: {a: [b]}\n",
     "t.yml:2:24: global.external_labels.a: expected a string, got a sequence", 1},
    {"global:\n  external_labels: [a]\n",
     "t.yml:2:20: global.external_labels: expected a mapping, got a sequence", 1},
    {"alert_rules:\n  - {alert: A, match: up, anomaly: {score_above: 0.5}, labels: {a-b: c}}\n",
     "t.yml:2:65: alert_rules[0].labels: invalid label name \"a-b\"", 1},
    {"alert_rules:\n  - {alert: A, match: up, anomaly: {score_above: 0.5}, annotations: "
     "{9: c}}\n",
     "t.yml:2:70: alert_rules[0].annotations: invalid label name \"9\"", 1},
    {"remote_write:\n  - url: http://h\n    headers: {Authorization: x}\n",
     "t.yml:3:15: remote_write[0].headers: header \"Authorization\" is set by promcast", 1},
    {"remote_write:\n  - url: http://h\n    headers: {X-A: a, x-a: b}\n",
     "t.yml:3:23: duplicate key \"x-a\" in remote_write[0].headers (first at line 3)", 1},
    {"remote_write:\n  - url: http://h\n    headers: {'a b': x}\n",
     "t.yml:3:15: remote_write[0].headers: invalid header name \"a b\"", 1},
    /* HTTP client rules */
    {"remote_write:\n  - url: http://h\n    bearer_token_file: t\n    basic_auth: {username: u, "
     "password_file: p}\n",
     "t.yml:4:17: remote_write[0]: at most one of basic_auth and bearer_token_file", 1},
    {"remote_write:\n  - url: http://h\n    basic_auth: {username: u}\n",
     "t.yml:3:17: remote_write[0].basic_auth: missing required key \"password_file\"", 1},
    {"remote_write:\n  - url: http://h\n    tls_config: {cert_file: c}\n",
     "t.yml:3:17: remote_write[0].tls_config: cert_file and key_file must be set together", 1},
    {"remote_write:\n  - url: http://h\n    queue: {capacity: 10, max_samples_per_send: 20}\n",
     "t.yml:3:12: remote_write[0].queue: max_samples_per_send (20) must not exceed capacity (10)",
     1},
    {"remote_write:\n  - url: http://h\n    queue: {min_backoff: 10s, max_backoff: 1s}\n",
     "t.yml:3:12: remote_write[0].queue: min_backoff must not exceed max_backoff", 1},
    /* seasons and horizons */
    {"rules:\n  - match: up\n    seasons: [1d, 1w, 2w]\n",
     "t.yml:3:14: rules[0].seasons: at most 2 entries, got 3", 1},
    {"global: {step: 1m}\nrules:\n  - match: up\n    seasons: [61s]\n",
     "t.yml:4:15: rules[0].seasons[0]: 1m1s is not a multiple of the step 1m", 1},
    {"global: {step: 1m}\nrules:\n  - match: up\n    seasons: [1m]\n",
     "t.yml:4:15: rules[0].seasons[0]: 1m must be between 2 and 20160 steps of 1m", 1},
    {"rules:\n  - match: up\n    step: 1s\n    seasons: [1w]\n",
     "t.yml:4:15: rules[0].seasons[0]: 1w must be between 2 and 20160 steps of 1s", 1},
    {"rules:\n  - match: up\n    seasons: [1d, 1d]\n",
     "t.yml:3:19: rules[0].seasons[1]: duplicate 1d", 1},
    {"rules:\n  - match: up\n    seasons: 1d\n",
     "t.yml:3:14: rules[0].seasons: expected a sequence, got a plain scalar", 1},
    {"rules:\n  - match: up\n    horizons: [0s]\n",
     "t.yml:3:16: rules[0].horizons[0]: must be greater than 0", 1},
    {"rules:\n  - match: up\n    horizons: [1m, 2m, 3m, 4m, 5m, 6m, 7m, 8m, 9m]\n",
     "t.yml:3:15: rules[0].horizons: at most 8 entries, got 9", 1},
    {"global: {step: 1m}\nrules:\n  - match: up\n    horizons: [90s]\n",
     "t.yml:4:16: rules[0].horizons[0]: 1m30s is not a multiple of the step 1m", 1},
    {"rules:\n  - match: up\n    step: 7m\n",
     "t.yml:2:5: rules[0]: the default horizon 15m does not fit the step 7m; set horizons", 1},
    {"rules:\n  - match: up\n    step: 7m\n    horizons: [7m, 14m]\n", NULL, 0},
    /* alert rules */
    {"alert_rules:\n  - alert: A\n    match: up\n",
     "t.yml:2:5: alert_rules[0]: exactly one of forecast and anomaly must be set", 1},
    {"alert_rules:\n  - alert: A\n    match: up\n    forecast: {horizon: 5m, above: 1}\n    "
     "anomaly: {score_above: 0.9}\n",
     "t.yml:5:14: alert_rules[0]: exactly one of forecast and anomaly must be set", 1},
    {"alert_rules:\n  - alert: A\n    match: up\n    forecast: {above: 1}\n",
     "t.yml:4:15: alert_rules[0].forecast: missing required key \"horizon\"", 1},
    {"alert_rules:\n  - alert: A\n    match: up\n    forecast: {horizon: 5m}\n",
     "t.yml:4:15: alert_rules[0].forecast: one of above or below is required", 1},
    {"alert_rules:\n  - alert: A\n    match: up\n    forecast: {horizon: 5m, above: 1, below: "
     "2}\n",
     "t.yml:4:15: alert_rules[0].forecast: below (2) must be less than above (1)", 1},
    {"alert_rules:\n  - alert: A\n    match: up\n    anomaly: {score_above: 1}\n",
     "t.yml:4:28: alert_rules[0].anomaly.score_above: must be in [0, 1), got 1", 1},
    {"alert_rules:\n  - alert: A\n    match: up\n    anomaly: {}\n",
     "t.yml:4:14: alert_rules[0].anomaly: missing required key \"score_above\"", 1},
    {"alert_rules:\n  - alert: High Load\n    match: up\n    anomaly: {score_above: 0.5}\n",
     "t.yml:2:12: alert_rules[0].alert: invalid alert name \"High Load\"", 1},
    {"alert_rules:\n  - alert: A\n    match: up\n    anomaly: {score_above: 0.5}\n    for: "
     "-1m\n",
     "t.yml:5:10: alert_rules[0].for: expected a duration like", 1},
    /* kubernetes and scalers */
    {"kubernetes: {}\n",
     "t.yml:1:13: kubernetes: set exactly one of in_cluster: true or api_server", 1},
    {"kubernetes: {in_cluster: true, api_server: 'https://k'}\n",
     "t.yml:1:13: kubernetes: set exactly one of in_cluster: true or api_server", 1},
    {"kubernetes: {in_cluster: true, lease_duration: 10s, renew_deadline: 10s}\n",
     "t.yml:1:13: kubernetes: need lease_duration > renew_deadline > retry_period", 1},
    {"scalers:\n  - {name: s, target: {name: d}, match: up, capacity_per_replica: 1}\n",
     "t.yml:2:3: scalers: a kubernetes section is required to scale workloads", 1},
    {"kubernetes: {in_cluster: true}\nscalers:\n  - {name: s, target: {name: d}, match: up, "
     "capacity_per_replica: 1, min_replicas: 5, max_replicas: 2}\n",
     "t.yml:3:84: scalers[0]: min_replicas (5) must not exceed max_replicas (2)", 1},
    {"kubernetes: {in_cluster: true}\nscalers:\n  - {name: s, target: {name: d}, match: up, "
     "capacity_per_replica: 0}\n",
     "t.yml:3:67: scalers[0].capacity_per_replica: must be greater than 0, got 0", 1},
    {"kubernetes: {in_cluster: true}\nscalers:\n  - {name: s, target: {name: d}, match: up, "
     "capacity_per_replica: 1}\n  - {name: s, target: {name: e}, match: up, "
     "capacity_per_replica: 1}\n",
     "t.yml:4:12: scalers[1].name: duplicate scaler name \"s\" (also scalers[0])", 1},
    {"kubernetes: {in_cluster: true}\nscalers:\n  - {name: s, target: {name: d}, match: up, "
     "capacity_per_replica: 1, behavior: {scale_up: 1m}}\n",
     "t.yml:3:81: unknown key \"scale_up\" in scalers[0].behavior (known: "
     "scale_up_stabilization, scale_down_stabilization)",
     1},
    /* YAML itself */
    {"a: [1, 2\nb: 3\n",
     "t.yml:2:2: yaml: did not find expected ',' or ']' (while parsing a "
     "flow sequence at line 1, column 4)",
     1},
    {"global:\n\tstep: 1m\n", "t.yml:2:1: yaml: found character that cannot start any token", 1},
    {"global: {}\n---\nglobal: {}\n", "t.yml:2:1: yaml: only one document per file is supported",
     1},
    {"global: *x\n", "t.yml:1:9: yaml: unknown anchor \"x\"", 1},
    {"global: &x {a: *x}\n", "t.yml:1:16: yaml: alias \"x\" refers to a node that contains it", 1},
    {"global:\n  step: \xc3\x28\n", "t.yml:2:10: yaml: invalid trailing UTF-8 octet", 1},
    {"global:\n  step: 1m\x01\n", "t.yml:2:11: yaml: control characters are not allowed", 1},
    /* aliases are fine within bounds */
    {"global: {step: &s 1m, evaluation_interval: *s}\nrules:\n  - &r {match: up}\n  - *r\n", NULL,
     0},
};

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *b = &bad_cases[i];
        int nerr = -1;
        struct config *c = load(b->yaml, &nerr);
        if (!b->want) {
            CHECK(c != NULL && nerr == 0, "good [%s]: %s", b->yaml, errbuf);
        } else {
            CHECK(c == NULL, "bad [%s]: accepted", b->yaml);
            CHECK(strstr(errbuf, b->want) != NULL, "bad [%s]:\n  got  %s  want %s", b->yaml, errbuf,
                  b->want);
            CHECK(nerr == b->nerr, "bad [%s]: %d errors, want %d:\n%s", b->yaml, nerr, b->nerr,
                  errbuf);
        }
        config_destroy(c);
    }
}

/* A file with many mistakes reports all of them, in file order. */
static void test_bad_file(void)
{
    char path[4096], exp_path[4096];
    snprintf(path, sizeof path, "%s/tests/unit/data/config/bad.yml", source_dir());
    snprintf(exp_path, sizeof exp_path, "%s/tests/unit/data/config/bad.expected", source_dir());
    size_t len = 0, elen = 0;
    char *yaml = read_all(path, &len), *want = read_all(exp_path, &elen);
    CHECK(yaml && want, "fixtures %s", path);
    if (yaml && want) {
        int nerr = 0;
        struct config *c = config_load_string("bad.yml", yaml, len, errbuf, sizeof errbuf, &nerr);
        CHECK(c == NULL, "bad.yml accepted");
        CHECK(strcmp(errbuf, want) == 0, "bad.yml output:\n%s\nwant:\n%s", errbuf, want);
        int lines = 0;
        for (const char *p = want; *p; p++)
            lines += *p == '\n';
        CHECK(nerr == lines, "bad.yml: %d errors, want %d", nerr, lines);
        config_destroy(c);
    }
    free(yaml);
    free(want);
}

/* Loader bounds: size, depth, items, alias expansion, error count. */
static void test_bounds(void)
{
    int nerr;
    size_t big = (size_t)CONFIG_MAX_FILE_BYTES + 1;
    char *buf = malloc(big + 1);
    if (!buf)
        return;
    memset(buf, '#', big);
    buf[big] = '\0';
    struct config *c = config_load_string("t.yml", buf, big, errbuf, sizeof errbuf, &nerr);
    CHECK(c == NULL && strstr(errbuf, "t.yml: config larger than 16777216 bytes"), "size: %s",
          errbuf);

    /* Nesting. */
    size_t o = (size_t)sprintf(buf, "global: ");
    for (int i = 0; i < 100; i++)
        buf[o++] = '[';
    for (int i = 0; i < 100; i++)
        buf[o++] = ']';
    buf[o++] = '\n';
    buf[o] = '\0';
    c = load(buf, &nerr);
    CHECK(c == NULL && strstr(errbuf, "t.yml:1:72: YAML nested deeper than 64 levels"), "depth: %s",
          errbuf);

    /* Items per sequence. */
    o = (size_t)sprintf(buf, "rules: [");
    for (unsigned i = 0; i <= CONFIG_MAX_ITEMS; i++)
        o += (size_t)sprintf(buf + o, "%s1", i ? "," : "");
    strcpy(buf + o, "]\n");
    c = load(buf, &nerr);
    CHECK(c == NULL && strstr(errbuf, "t.yml:1:8: more than 10000 entries in one sequence"),
          "items: %s", errbuf);

    /* Billion laughs, the way this schema could expand it: many alert rules
     * sharing one huge label map by alias. The visit budget stops it. */
    o = (size_t)sprintf(buf, "l: &l {");
    for (unsigned i = 0; i < CONFIG_MAX_ITEMS; i++)
        o += (size_t)sprintf(buf + o, "%sa%u: x", i ? ", " : "", i);
    o += (size_t)sprintf(buf + o, "}\nr: &r {alert: A, match: up, anomaly: {score_above: 0.5}, "
                                  "labels: *l}\nalert_rules: [");
    for (int i = 0; i < 1000; i++)
        o += (size_t)sprintf(buf + o, "%s*r", i ? "," : "");
    strcpy(buf + o, "]\n");
    c = load(buf, &nerr);
    CHECK(c == NULL && strstr(errbuf, "aliases expand too much"), "laughs: %s", errbuf);

    /* Rules by alias: many references to one big rule, bounded by visits. */
    o = (size_t)sprintf(buf, "x: &r {match: up, horizons: [");
    for (int i = 0; i < 8; i++)
        o += (size_t)sprintf(buf + o, "%s%dm", i ? "," : "", i + 1);
    o += (size_t)sprintf(buf + o, "]}\nrules: [");
    for (unsigned i = 0; i < CONFIG_MAX_ITEMS; i++)
        o += (size_t)sprintf(buf + o, "%s*r", i ? "," : "");
    strcpy(buf + o, "]\n");
    c = load(buf, &nerr);
    /* The unknown top-level key "x" is one error; the 10000 rules are fine. */
    CHECK(c == NULL && nerr == 1 && strstr(errbuf, "unknown key \"x\""), "alias rules: %s", errbuf);

    /* The error count is capped. */
    o = (size_t)sprintf(buf, "global:\n");
    for (int i = 0; i < 2000; i++)
        o += (size_t)sprintf(buf + o, "  k%d: 1\n", i);
    c = load(buf, &nerr);
    CHECK(c == NULL && nerr == (int)CONFIG_MAX_ERRORS &&
              strstr(errbuf, "t.yml:2:3: unknown key \"k0\" in global") &&
              strstr(errbuf, "more errors not shown\n"),
          "error cap: %d", nerr);
    char *huge = malloc(1 << 20);
    if (huge) {
        c = config_load_string("t.yml", buf, strlen(buf), huge, 1 << 20, &nerr);
        CHECK(c == NULL && strstr(huge, "t.yml: too many errors, stopped after 1000\n"),
              "error cap note");
        free(huge);
    }

    /* A small error buffer is truncated, still NUL-terminated. */
    char small[16];
    c = config_load_string("t.yml", "foo: 1\n", 7, small, sizeof small, &nerr);
    CHECK(c == NULL && strlen(small) < sizeof small && nerr == 1, "small buffer [%s]", small);
    char mid[200];
    c = config_load_string("t.yml", "foo: 1\nbar: 2\n", 14, mid, sizeof mid, &nerr);
    CHECK(c == NULL && nerr == 2 && strstr(mid, "t.yml: 2 more errors not shown\n"),
          "whole lines only [%s]", mid);
    c = config_load_string("t.yml", "foo: 1\n", 7, NULL, 0, NULL);
    CHECK(c == NULL, "NULL error buffer");
    free(buf);

    /* Files that cannot be read. */
    c = config_load_file("/nonexistent/promcast.yml", errbuf, sizeof errbuf, &nerr);
    CHECK(c == NULL && nerr == 1 &&
              strstr(errbuf, "/nonexistent/promcast.yml: cannot open: No such file"),
          "missing file: %s", errbuf);
    c = config_load_file("/", errbuf, sizeof errbuf, &nerr);
    CHECK(c == NULL && nerr == 1, "directory: %s", errbuf);
}

/* ---- durations ------------------------------------------------------------------------ */

static void test_durations(void)
{
    static const struct {
        const char *s;
        int64_t ms; /* -1 = invalid */
    } cases[] = {
        {"0", 0},
        {"0s", 0},
        {"0h", 0},
        {"1ms", 1},
        {"30s", 30000},
        {"5m", 300000},
        {"90m", 5400000},
        {"1h30m", 5400000},
        {"7d", 604800000},
        {"1w", 604800000},
        {"1y", 31536000000},
        {"01m", 60000},
        {"1y2w3d4h5m6s7ms",
         31536000000 + 2 * 604800000LL + 3 * 86400000LL + 4 * 3600000LL + 5 * 60000 + 6000 + 7},
        {"1s5ms", 1005},
        {"106751d", 106751LL * 86400000},
        {"", -1},
        {"-1s", -1},
        {"+1s", -1},
        {"1.5h", -1},
        {"5 minutes", -1},
        {"1m1h", -1},
        {"1h1h", -1},
        {"1ms1s", -1},
        {"1", -1},
        {"10", -1},
        {"s", -1},
        {"1x", -1},
        {"1m ", -1},
        {" 1m", -1},
        {"1M", -1},
        {"1msm", -1},
        {"1d1ms2s", -1},
        {"106752d", -1},
        {"99999999999999999999s", -1},
        {"9223372036854775807ms", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = -12345;
        int rc = config_parse_duration(cases[i].s, &ms);
        if (cases[i].ms < 0) {
            CHECK(rc == -1 && ms == -12345, "duration [%s] accepted as %lld", cases[i].s,
                  (long long)ms);
        } else {
            CHECK(rc == 0 && ms == cases[i].ms, "duration [%s] = %lld (rc %d), want %lld",
                  cases[i].s, (long long)ms, rc, (long long)cases[i].ms);
        }
    }
    CHECK(config_parse_duration(NULL, NULL) == -1, "NULL");

    static const struct {
        int64_t ms;
        const char *s;
    } fmt[] = {
        {0, "0s"},
        {1, "1ms"},
        {1500, "1s500ms"},
        {60000, "1m"},
        {5400000, "1h30m"},
        {86400000, "1d"},
        {604800000, "1w"},
        {691200000, "8d"},
        {31536000000, "1y"},
        {7776000000, "90d"},
        {31622400000, "366d"},
        {-1000, "-1s"},
        {1209600000, "2w"},
        {3723004, "1h2m3s4ms"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof fmt / sizeof fmt[0]; i++) {
        config_format_duration(fmt[i].ms, buf, sizeof buf);
        CHECK(strcmp(buf, fmt[i].s) == 0, "format %lld = %s, want %s", (long long)fmt[i].ms, buf,
              fmt[i].s);
    }
    /* Round trip over a spread of values. */
    for (int64_t ms = 1; ms < INT64_C(9000000000000); ms = ms * 7 + 13) {
        int64_t back = -1;
        config_format_duration(ms, buf, sizeof buf);
        CHECK(config_parse_duration(buf, &back) == 0 && back == ms, "round trip %lld → %s → %lld",
              (long long)ms, buf, (long long)back);
    }
    char tiny[4];
    config_format_duration(5400000, tiny, sizeof tiny);
    CHECK(strlen(tiny) < sizeof tiny, "truncated format stays terminated");
    config_format_duration(INT64_MIN, buf, sizeof buf);
    CHECK(buf[0] == '-', "INT64_MIN formats: %s", buf);
}

/* ---- check-config ----------------------------------------------------------------- */

static void test_check_file(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/deploy/promcast.yml", source_dir());
    FILE *out = tmpfile();
    if (!out)
        return;
    int rc = config_check_file(path, out);
    char text[4096] = "";
    rewind(out);
    size_t n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    CHECK(rc == 0 && strstr(text, ": OK, 1 rule, 1 remote_write"), "check canonical: %d %s", rc,
          text);
    fclose(out);

    snprintf(path, sizeof path, "%s/tests/unit/data/config/bad.yml", source_dir());
    out = tmpfile();
    if (!out)
        return;
    rc = config_check_file(path, out);
    rewind(out);
    n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    CHECK(rc == 1 && strstr(text, "bad.yml:4:9: global.step: expected a duration") &&
              strstr(text, "bad.yml: 25 errors\n"),
          "check bad: %d %s", rc, text);
    fclose(out);
}

int main(void)
{
    test_canonical();
    test_embedded_default();
    test_defaults();
    test_full();
    test_bad();
    test_bad_file();
    test_bounds();
    test_durations();
    test_check_file();
    return test_main_end("test_config");
}
