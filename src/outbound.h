/*
 * outbound.h — the outbound HTTP client: the only module that talks to libcurl.
 *
 * One `struct outbound` is built from a `struct config_http_client` (base URL,
 * basic auth, bearer token file, TLS, timeout, extra headers) and sends
 * requests to that endpoint over one kept-alive connection (libcurl easy
 * handle, connection reused from request to request). The remote-write
 * client uses it now; the Alertmanager, Kubernetes and remote-read clients
 * use it the same way.
 *
 * Credentials files (bearer token, basic-auth password) are re-read at most
 * every OUTBOUND_CREDENTIALS_REFRESH_MS and at once after a 401: if the file
 * then holds a different secret, the request is retried once with it
 * (Kubernetes projected tokens and rotated secrets apply without a reload).
 * If the file cannot be read, the last good secret is kept (warned,
 * rate-limited). Secrets never appear in logs or errors.
 *
 * Redirects are not followed (a 3xx is returned as is), so credentials and
 * request bodies never go to a host that the configuration did not name.
 *
 * Thread-safety: an outbound object is used by one thread at a time (a
 * libcurl easy handle is single-threaded); give each thread its own. Objects
 * are independent. outbound_global_init() must run once before any thread
 * starts. The free functions (outbound_redact_url, outbound_parse_retry_after,
 * outbound_err_reason) are reentrant.
 */
#ifndef PROMCAST_OUTBOUND_H
#define PROMCAST_OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Longest time a cached bearer token or password is used without re-reading
 * its file (client-go also re-reads every minute and after a 401). */
#define OUTBOUND_CREDENTIALS_REFRESH_MS 60000
/* Largest credentials file read; a bigger one is refused. */
#define OUTBOUND_MAX_CREDENTIAL_BYTES 65536
/* Timeout when the configuration gives none (0). */
#define OUTBOUND_DEFAULT_TIMEOUT_MS 30000
/* Response body cap when a request gives none (0). */
#define OUTBOUND_DEFAULT_MAX_RESPONSE_BYTES (1u << 20)
/* Extra headers per request (config headers + request headers). */
#define OUTBOUND_MAX_HEADERS 64
/* Longest full request URL (base URL + path). */
#define OUTBOUND_MAX_URL_BYTES 8192

/* What went wrong when no usable HTTP response came back. */
enum outbound_err {
    OUTBOUND_OK = 0,
    OUTBOUND_ERR_NETWORK,     /* resolve, connect, send or receive failed; connection reset */
    OUTBOUND_ERR_TIMEOUT,     /* the request timeout expired */
    OUTBOUND_ERR_TLS,         /* handshake, certificate verification, client certificate */
    OUTBOUND_ERR_TOO_LARGE,   /* response body over max_response_bytes (and not truncating) */
    OUTBOUND_ERR_CREDENTIALS, /* a credentials file was never readable */
    OUTBOUND_ERR_INVALID,     /* bad request arguments (URL too long, too many headers) */
    OUTBOUND_ERR_CANCELLED,   /* the request's cancel callback asked to stop */
    OUTBOUND_ERR_OTHER,       /* anything else libcurl reports */
};

/* Short snake_case name for metric labels and logs: "ok", "network",
 * "timeout", "tls", "too_large", "credentials", "invalid", "cancelled", "other". */
const char *outbound_err_reason(enum outbound_err e);

struct outbound_header {
    const char *name;  /* e.g. "Content-Type" */
    const char *value; /* NUL-terminated; no CR/LF (refused with OUTBOUND_ERR_INVALID) */
};

struct outbound_request {
    const char *method; /* "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"; NULL = GET, or
                           POST when there is a body */
    /* NULL or "": the configured URL. Starting with "http://" or "https://":
     * that URL, used as is. Anything else is appended to the configured URL
     * (one '/' between them; a query string starting with '?' is appended
     * directly). */
    const char *path;
    const struct outbound_header *headers; /* added after the configured ones */
    size_t nheaders;
    const void *body; /* may be binary; NULL when body_len is 0 */
    size_t body_len;
    size_t max_response_bytes; /* cap on the response body kept in memory; 0 =
                                  OUTBOUND_DEFAULT_MAX_RESPONSE_BYTES */
    bool truncate_body;        /* over the cap: keep the first bytes and set truncated, instead
                           of failing with OUTBOUND_ERR_TOO_LARGE */
    int64_t timeout_ms;        /* whole request; 0 = the configured timeout */
    /* Optional: called from inside outbound_do() about once a second (more
     * often while data flows); returning true aborts the request with
     * OUTBOUND_ERR_CANCELLED. Lets a shutdown deadline cut a slow request. */
    bool (*cancel)(void *arg);
    void *cancel_arg;
};

/* Result of outbound_do(). Header fields are -1 when absent or unparseable. */
struct outbound_response {
    long status; /* HTTP status of the last response; 0 when none was received */
    /* Response body, NUL-terminated (the NUL is not counted in body_len).
     * Owned by the client; valid until its next request or destroy. */
    const char *body;
    size_t body_len;
    bool truncated;          /* body cut at max_response_bytes (truncate_body) */
    char content_type[128];  /* "" when absent; cut to fit */
    int64_t retry_after_ms;  /* Retry-After, seconds or HTTP-date, as a delay from now (>= 0) */
    int64_t samples_written; /* X-Prometheus-Remote-Write-Samples-Written */
    int64_t histograms_written;
    int64_t exemplars_written;
    bool credentials_retried; /* a 401 made the client re-read credentials and retry */
    enum outbound_err err;
    char error[256]; /* one line: libcurl's error text or ours; "" on success */
};

/* curl_global_init() once, from main before any thread starts. 0 or -1. */
int outbound_global_init(void);
/* curl_global_cleanup(), after every client is destroyed. */
void outbound_global_cleanup(void);

/*
 * A new client for cfg (borrowed for the call: everything needed is copied).
 * cfg->url must be an http:// or https:// URL. TLS files (ca_file, cert_file,
 * key_file) must be readable now; credentials files are read now when
 * possible and otherwise at the first request (a warning is logged).
 * NULL on failure, with one line in err (errcap > 0; err may be NULL when
 * errcap is 0). The object is single-threaded (see above).
 */
struct outbound *outbound_create(const struct config_http_client *cfg, char *err, size_t errcap);

/* Closes the connection and frees everything (secrets are wiped). NULL ok. */
void outbound_destroy(struct outbound *c);

/* How long a credential is used before its file is read again; 0 means
 * OUTBOUND_CREDENTIALS_REFRESH_MS. For tests; call before requests. */
void outbound_set_credentials_refresh(struct outbound *c, int64_t interval_ms);

/*
 * Send one request and wait for the response (blocking, up to the timeout).
 * req and everything it points to are borrowed for the call. *resp is always
 * filled. Returns 0 when an HTTP response was received (any status: the
 * caller decides what a 4xx or 5xx means), -1 when not (resp->err and
 * resp->error say why; resp->status may still be set, e.g. for a body over
 * the cap). After a 401 the credentials are re-read and, if they changed,
 * the request is sent once more; resp describes the last attempt.
 */
int outbound_do(struct outbound *c, const struct outbound_request *req,
                struct outbound_response *resp);

/* Value of a header of the last response (the last occurrence), copied into
 * buf (NUL-terminated, cut to cap). Returns 0, or -1 when absent. */
int outbound_response_header(struct outbound *c, const char *name, char *buf, size_t cap);

/* The configured URL with credentials removed (see outbound_redact_url); for
 * logs and metric labels. Owned by the client. */
const char *outbound_url(const struct outbound *c);

/*
 * Copy url into buf without its user-info ("user:pass@"), query string and
 * fragment, which may carry secrets: "https://u:p@h:9/api?k=v" becomes
 * "https://h:9/api". Always NUL-terminated (cap > 0); returns the length
 * of the result (cut to cap - 1).
 */
size_t outbound_redact_url(const char *url, char *buf, size_t cap);

/*
 * Parse a Retry-After value: delta-seconds ("120", clamped to 10^9 s) or an
 * HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT", RFC 850 and asctime forms too)
 * turned into a delay from now_ms (wall clock, ms since the epoch); a date in
 * the past gives 0. Returns 0 and sets *delay_ms, or -1 for anything else
 * (empty, negative, fractional, garbage), leaving *delay_ms alone.
 */
int outbound_parse_retry_after(const char *value, int64_t now_ms, int64_t *delay_ms);

#endif
