/*
 * outbound.c — HTTP client for every endpoint promcast calls: remote-write
 * receivers now; Alertmanager, the Kubernetes API and remote-read servers
 * later. Wraps libcurl (the easy interface), and is the only file that
 * includes it.
 *
 * One easy handle per client keeps its connection alive between requests.
 * Per request the handle's method, body, headers and timeout are set again;
 * everything that does not change (TLS files, verification, protocols) is
 * set once at creation.
 *
 * TLS `server_name` (SNI and the name the certificate is checked against,
 * as Go's tls.Config.ServerName) has no direct libcurl option: the request
 * URL's host is replaced by server_name, CURLOPT_CONNECT_TO sends the
 * connection to the configured host and port, and a Host header keeps the
 * configured authority, so the server sees the same request as without it.
 *
 * Deliberately not done: redirects (never followed, see outbound.h), proxies
 * (libcurl's proxy environment variables are ignored so secrets never go to
 * a proxy nobody configured), response decompression, HTTP/2, concurrency
 * inside one client (give each thread its own).
 */
#include "outbound.h"

#include "errbuf.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#ifndef PROMCAST_VERSION
#define PROMCAST_VERSION "unknown"
#endif

#define USER_AGENT "promcast/" PROMCAST_VERSION

/* A secret read from a file, with when it was read (monotonic ms). */
struct credential {
    char *path;  /* NULL: not configured */
    char *value; /* NULL: never read successfully */
    int64_t read_ms;
};

struct outbound {
    CURL *curl;
    char *url;          /* configured URL, trailing '/' kept as given */
    char *redacted_url; /* for logs and labels */
    char *server_name;  /* TLS server name override, or NULL */
    bool https;
    int64_t timeout_ms;
    int64_t refresh_ms;
    char *username; /* basic auth, or NULL */
    struct credential password;
    struct credential token;
    size_t nheaders;
    char **headers; /* "Name: value" lines from the configuration */
    /* Response body buffer, grown up to the request's cap. */
    char *body;
    size_t body_len;
    size_t body_cap;
    size_t body_limit;
    bool body_truncate;
    bool body_truncated;
    bool body_overflow;
    bool (*cancel)(void *arg);
    void *cancel_arg;
    bool cancelled;
    char errbuf[CURL_ERROR_SIZE];
};

static const char *const err_reasons[] = {
    [OUTBOUND_OK] = "ok",
    [OUTBOUND_ERR_NETWORK] = "network",
    [OUTBOUND_ERR_TIMEOUT] = "timeout",
    [OUTBOUND_ERR_TLS] = "tls",
    [OUTBOUND_ERR_TOO_LARGE] = "too_large",
    [OUTBOUND_ERR_CREDENTIALS] = "credentials",
    [OUTBOUND_ERR_INVALID] = "invalid",
    [OUTBOUND_ERR_CANCELLED] = "cancelled",
    [OUTBOUND_ERR_OTHER] = "other",
};

const char *outbound_err_reason(enum outbound_err e)
{
    if ((unsigned)e < sizeof err_reasons / sizeof err_reasons[0])
        return err_reasons[e];
    return "other";
}

int outbound_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void outbound_global_cleanup(void)
{
    curl_global_cleanup();
}

/* ---- small helpers ---------------------------------------------------------------- */

/* Overwrite then free, so secrets do not linger in freed heap memory. */
static void free_secret(char *s)
{
    if (s == NULL)
        return;
    volatile char *p = s;
    while (*p)
        *p++ = 0;
    free(s);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

size_t outbound_redact_url(const char *url, char *buf, size_t cap)
{
    if (cap == 0)
        return 0;
    if (url == NULL)
        url = "";
    size_t n = 0;
    const char *p = url;
    const char *scheme_end = strstr(url, "://");
    if (scheme_end != NULL) {
        /* copy the scheme and "://" */
        for (; p < scheme_end + 3 && n + 1 < cap; p++)
            buf[n++] = *p;
        /* user-info ends at the last '@' before the path, query or fragment */
        const char *auth_end = p + strcspn(p, "/?#");
        const char *at = NULL;
        for (const char *q = p; q < auth_end; q++)
            if (*q == '@')
                at = q;
        if (at != NULL)
            p = at + 1;
    }
    for (; *p && *p != '?' && *p != '#' && n + 1 < cap; p++)
        buf[n++] = *p;
    buf[n] = '\0';
    return n;
}

int outbound_parse_retry_after(const char *value, int64_t now_ms, int64_t *delay_ms)
{
    if (value == NULL)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t len = strlen(value);
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    if (len == 0)
        return -1;
    if (isdigit((unsigned char)value[0])) {
        /* delta-seconds = 1*DIGIT, nothing else */
        int64_t s = 0;
        for (size_t i = 0; i < len; i++) {
            if (!isdigit((unsigned char)value[i]))
                return -1;
            if (s < 1000000000)
                s = s * 10 + (value[i] - '0');
        }
        if (s > 1000000000)
            s = 1000000000;
        *delay_ms = s * 1000;
        return 0;
    }
    /* Every HTTP-date form starts with a day name; curl_getdate() alone
     * would also take numbers and bare time zones. */
    if (!isalpha((unsigned char)value[0]) || len > 64)
        return -1;
    char tmp[65];
    memcpy(tmp, value, len);
    tmp[len] = '\0';
    time_t t = curl_getdate(tmp, NULL);
    if (t == (time_t)-1)
        return -1;
    int64_t d = (int64_t)t * 1000 - now_ms;
    *delay_ms = d > 0 ? d : 0;
    return 0;
}

/* ---- credentials -------------------------------------------------------------------- */

/* Read a whole small file, trailing whitespace removed. Returns a malloc'd
 * string or NULL (errno-style reason in why). */
static char *read_secret_file(const char *path, const char **why)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *why = strerror(errno);
        return NULL;
    }
    char *buf = malloc(OUTBOUND_MAX_CREDENTIAL_BYTES + 1);
    size_t n = 0;
    if (buf == NULL) {
        *why = "out of memory";
        goto fail;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, OUTBOUND_MAX_CREDENTIAL_BYTES + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *why = strerror(errno);
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > OUTBOUND_MAX_CREDENTIAL_BYTES) {
            *why = "file larger than 65536 bytes";
            goto fail;
        }
    }
    close(fd);
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        n--;
    buf[n] = '\0';
    if (memchr(buf, '\0', n) != NULL || has_crlf(buf)) {
        *why = "file holds NUL or line breaks inside the secret";
        free_secret(buf);
        return NULL;
    }
    return buf;
fail:
    close(fd);
    if (buf != NULL) {
        memset(buf, 0, n);
        free(buf);
    }
    return NULL;
}

/* Re-read the file when forced or when the cached value is older than the
 * refresh interval. Returns true when the value changed. */
static bool credential_refresh(struct outbound *c, struct credential *cr, bool force)
{
    if (cr->path == NULL)
        return false;
    int64_t now = clock_mono_ms();
    if (!force && cr->value != NULL && now - cr->read_ms < c->refresh_ms)
        return false;
    const char *why = "";
    char *v = read_secret_file(cr->path, &why);
    if (v == NULL) {
        log_warn_ratelimited("cannot read credentials file; keeping the previous value", "file",
                             cr->path, "err", why, "url", c->redacted_url);
        return false;
    }
    cr->read_ms = now;
    bool changed = cr->value == NULL || strcmp(cr->value, v) != 0;
    if (changed) {
        free_secret(cr->value);
        cr->value = v;
    } else {
        free_secret(v);
    }
    return changed;
}

/* ---- creation ----------------------------------------------------------------------- */

static int check_readable(const char *what, const char *path, char *err, size_t errcap)
{
    if (path == NULL)
        return 0;
    if (access(path, R_OK) != 0) {
        errbuf_set(err, errcap, "tls_config.%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct outbound *c = userdata;
    size_t n = size * nmemb;
    size_t room = c->body_limit - c->body_len;
    size_t take = n;
    if (n > room) {
        if (!c->body_truncate) {
            c->body_overflow = true;
            return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }
        c->body_truncated = true;
        take = room;
    }
    if (take > 0 && c->body_len + take + 1 > c->body_cap) {
        size_t ncap = c->body_cap ? c->body_cap : 4096;
        while (ncap < c->body_len + take + 1)
            ncap *= 2;
        if (ncap > c->body_limit + 1)
            ncap = c->body_limit + 1;
        char *b = realloc(c->body, ncap);
        if (b == NULL)
            return 0;
        c->body = b;
        c->body_cap = ncap;
    }
    if (take > 0) {
        memcpy(c->body + c->body_len, ptr, take);
        c->body_len += take;
    }
    return n;
}

static int progress_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    struct outbound *c = userdata;
    if (c->cancel != NULL && c->cancel(c->cancel_arg)) {
        c->cancelled = true;
        return 1; /* aborts with CURLE_ABORTED_BY_CALLBACK */
    }
    return 0;
}

struct outbound *outbound_create(const struct config_http_client *cfg, char *err, size_t errcap)
{
    errbuf_set(err, errcap, "%s", "");
    if (cfg == NULL || cfg->url == NULL ||
        (strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0)) {
        errbuf_set(err, errcap, "url: expected an http:// or https:// URL");
        return NULL;
    }
    if (strlen(cfg->url) >= OUTBOUND_MAX_URL_BYTES) {
        errbuf_set(err, errcap, "url: longer than %d bytes", OUTBOUND_MAX_URL_BYTES);
        return NULL;
    }
    if (cfg->headers.n > OUTBOUND_MAX_HEADERS) {
        errbuf_set(err, errcap, "headers: more than %d", OUTBOUND_MAX_HEADERS);
        return NULL;
    }
    if (check_readable("ca_file", cfg->tls.ca_file, err, errcap) != 0 ||
        check_readable("cert_file", cfg->tls.cert_file, err, errcap) != 0 ||
        check_readable("key_file", cfg->tls.key_file, err, errcap) != 0)
        return NULL;
    struct outbound *c = calloc(1, sizeof *c);
    if (c == NULL) {
        errbuf_set(err, errcap, "out of memory");
        return NULL;
    }
    c->https = strncmp(cfg->url, "https://", 8) == 0;
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : OUTBOUND_DEFAULT_TIMEOUT_MS;
    c->refresh_ms = OUTBOUND_CREDENTIALS_REFRESH_MS;
    c->url = strdup(cfg->url);
    size_t ulen = strlen(cfg->url) + 1;
    c->redacted_url = malloc(ulen);
    if (c->url == NULL || c->redacted_url == NULL)
        goto nomem;
    outbound_redact_url(cfg->url, c->redacted_url, ulen);
    c->server_name = dup_or_null(cfg->tls.server_name);
    c->username = dup_or_null(cfg->basic_auth_username);
    c->password.path = dup_or_null(cfg->basic_auth_password_file);
    c->token.path = dup_or_null(cfg->bearer_token_file);
    if ((cfg->tls.server_name && !c->server_name) || (cfg->basic_auth_username && !c->username) ||
        (cfg->basic_auth_password_file && !c->password.path) ||
        (cfg->bearer_token_file && !c->token.path))
        goto nomem;
    if (cfg->headers.n > 0) {
        c->headers = calloc(cfg->headers.n, sizeof *c->headers);
        if (c->headers == NULL)
            goto nomem;
        for (size_t i = 0; i < cfg->headers.n; i++) {
            const char *name = cfg->headers.names[i], *value = cfg->headers.values[i];
            if (has_crlf(name) || has_crlf(value) || strchr(name, ':') != NULL) {
                errbuf_set(err, errcap, "headers: invalid header %s", name);
                goto fail;
            }
            size_t n = strlen(name) + strlen(value) + 3;
            c->headers[i] = malloc(n);
            if (c->headers[i] == NULL)
                goto nomem;
            snprintf(c->headers[i], n, "%s: %s", name, value);
            c->nheaders = i + 1;
        }
    }

    c->curl = curl_easy_init();
    if (c->curl == NULL)
        goto nomem;
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* ignore http_proxy & co */
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (cfg->tls.ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, cfg->tls.ca_file);
    if (cfg->tls.cert_file)
        curl_easy_setopt(h, CURLOPT_SSLCERT, cfg->tls.cert_file);
    if (cfg->tls.key_file)
        curl_easy_setopt(h, CURLOPT_SSLKEY, cfg->tls.key_file);
    if (cfg->tls.insecure_skip_verify) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (c->username != NULL) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, c->username);
    }
    /* Read credentials now so a wrong path shows up at start; a file that
     * appears later (Kubernetes) is picked up by the first request. */
    credential_refresh(c, &c->password, true);
    credential_refresh(c, &c->token, true);
    return c;
nomem:
    errbuf_set(err, errcap, "out of memory");
fail:
    outbound_destroy(c);
    return NULL;
}

void outbound_destroy(struct outbound *c)
{
    if (c == NULL)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->url);
    free(c->redacted_url);
    free(c->server_name);
    free(c->username);
    free(c->password.path);
    free_secret(c->password.value);
    free(c->token.path);
    free_secret(c->token.value);
    for (size_t i = 0; i < c->nheaders; i++)
        free(c->headers[i]);
    free(c->headers);
    free(c->body);
    free(c);
}

void outbound_set_credentials_refresh(struct outbound *c, int64_t interval_ms)
{
    c->refresh_ms = interval_ms > 0 ? interval_ms : OUTBOUND_CREDENTIALS_REFRESH_MS;
}

const char *outbound_url(const struct outbound *c)
{
    return c->redacted_url;
}

/* ---- requests ----------------------------------------------------------------------- */

/* The full URL of a request into buf; -1 when it does not fit. */
static int build_url(const struct outbound *c, const char *path, char *buf, size_t cap)
{
    int n;
    if (path == NULL || path[0] == '\0')
        n = snprintf(buf, cap, "%s", c->url);
    else if (strncmp(path, "http://", 7) == 0 || strncmp(path, "https://", 8) == 0)
        n = snprintf(buf, cap, "%s", path);
    else if (path[0] == '?')
        n = snprintf(buf, cap, "%s%s", c->url, path);
    else {
        size_t ulen = strlen(c->url);
        bool slash_u = ulen > 0 && c->url[ulen - 1] == '/';
        bool slash_p = path[0] == '/';
        if (slash_u && slash_p)
            path++;
        n = snprintf(buf, cap, "%s%s%s", c->url, (!slash_u && !slash_p) ? "/" : "", path);
    }
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* For a TLS server name: rewrite url's host to server_name and produce the
 * CONNECT_TO entry and Host header that keep the connection and the request
 * as configured. */
static int apply_server_name(const struct outbound *c, char *url, size_t cap,
                             struct curl_slist **connect_to, char *host_hdr, size_t host_cap)
{
    int rc = -1;
    char *host = NULL, *port = NULL, *explicit_port = NULL, *out = NULL;
    CURLU *u = curl_url();
    if (u == NULL)
        return -1;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_PORT, &explicit_port, 0) != CURLUE_OK)
        explicit_port = NULL;
    char entry[1024];
    int n = snprintf(entry, sizeof entry, "%s:%s:%s:%s", c->server_name, port, host, port);
    if (n < 0 || (size_t)n >= sizeof entry)
        goto out;
    n = explicit_port ? snprintf(host_hdr, host_cap, "Host: %s:%s", host, explicit_port)
                      : snprintf(host_hdr, host_cap, "Host: %s", host);
    if (n < 0 || (size_t)n >= host_cap)
        goto out;
    if (curl_url_set(u, CURLUPART_HOST, c->server_name, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK || strlen(out) >= cap)
        goto out;
    struct curl_slist *l = curl_slist_append(NULL, entry);
    if (l == NULL)
        goto out;
    strcpy(url, out);
    *connect_to = l;
    rc = 0;
out:
    curl_free(host);
    curl_free(port);
    curl_free(explicit_port);
    curl_free(out);
    curl_url_cleanup(u);
    return rc;
}

/* Free a header list, wiping the Authorization line first. */
static void free_headers(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p != NULL; p = p->next)
        if (strncasecmp(p->data, "Authorization:", 14) == 0) {
            volatile char *s = p->data;
            while (*s)
                *s++ = 0;
        }
    curl_slist_free_all(l);
}

static enum outbound_err classify(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return OUTBOUND_ERR_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return OUTBOUND_ERR_NETWORK;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        return OUTBOUND_ERR_TLS;
    default:
        return OUTBOUND_ERR_OTHER;
    }
}

static int64_t header_i64(CURL *h, const char *name)
{
    struct curl_header *hd;
    if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &hd) != CURLHE_OK)
        return -1;
    const char *s = hd->value;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!isdigit((unsigned char)*s))
        return -1;
    int64_t v = 0;
    for (; isdigit((unsigned char)*s); s++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == '\0' ? v : -1;
}

int outbound_response_header(struct outbound *c, const char *name, char *buf, size_t cap)
{
    struct curl_header *hd;
    if (cap == 0 || curl_easy_header(c->curl, name, 0, CURLH_HEADER, -1, &hd) != CURLHE_OK)
        return -1;
    /* the last occurrence */
    size_t amount = hd->amount;
    if (amount > 1 &&
        curl_easy_header(c->curl, name, amount - 1, CURLH_HEADER, -1, &hd) != CURLHE_OK)
        return -1;
    snprintf(buf, cap, "%s", hd->value);
    return 0;
}

static void reset_response(struct outbound_response *resp)
{
    resp->status = 0;
    resp->body = "";
    resp->body_len = 0;
    resp->truncated = false;
    resp->content_type[0] = '\0';
    resp->retry_after_ms = -1;
    resp->samples_written = -1;
    resp->histograms_written = -1;
    resp->exemplars_written = -1;
    resp->err = OUTBOUND_OK;
    resp->error[0] = '\0';
}

static int fail_request(struct outbound_response *resp, enum outbound_err e, const char *msg)
{
    resp->err = e;
    snprintf(resp->error, sizeof resp->error, "%s", msg);
    return -1;
}

/* One attempt: the request with the current credentials. */
static int perform(struct outbound *c, const struct outbound_request *req,
                   struct outbound_response *resp)
{
    char url[OUTBOUND_MAX_URL_BYTES];
    char host_hdr[600];
    struct curl_slist *hdrs = NULL, *connect_to = NULL;
    int rc = -1;
    CURL *h = c->curl;

    reset_response(resp);
    if (build_url(c, req->path, url, sizeof url) != 0)
        return fail_request(resp, OUTBOUND_ERR_INVALID, "request URL too long");
    if (c->nheaders + req->nheaders > OUTBOUND_MAX_HEADERS)
        return fail_request(resp, OUTBOUND_ERR_INVALID, "too many request headers");
    host_hdr[0] = '\0';
    if (c->https && c->server_name != NULL &&
        apply_server_name(c, url, sizeof url, &connect_to, host_hdr, sizeof host_hdr) != 0)
        return fail_request(resp, OUTBOUND_ERR_INVALID, "cannot apply tls server_name to URL");

    /* Headers: configured, then the request's, then ours. "Expect:" stops
     * libcurl's 100-continue round trip for bodies over 1 MiB. */
    struct curl_slist *l;
    for (size_t i = 0; i < c->nheaders; i++) {
        if ((l = curl_slist_append(hdrs, c->headers[i])) == NULL)
            goto nomem;
        hdrs = l;
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct outbound_header *rh = &req->headers[i];
        if (rh->name == NULL || rh->value == NULL || has_crlf(rh->name) || has_crlf(rh->value) ||
            strchr(rh->name, ':') != NULL) {
            fail_request(resp, OUTBOUND_ERR_INVALID, "invalid request header");
            goto out;
        }
        char line[4096];
        int n = snprintf(line, sizeof line, "%s: %s", rh->name, rh->value);
        if (n < 0 || (size_t)n >= sizeof line) {
            fail_request(resp, OUTBOUND_ERR_INVALID, "request header too long");
            goto out;
        }
        if ((l = curl_slist_append(hdrs, line)) == NULL)
            goto nomem;
        hdrs = l;
    }
    if ((l = curl_slist_append(hdrs, "Expect:")) == NULL)
        goto nomem;
    hdrs = l;
    /* libcurl labels a body without a Content-Type as a form; send none. */
    bool has_ctype = false;
    for (size_t i = 0; i < req->nheaders; i++)
        has_ctype |= strcasecmp(req->headers[i].name, "Content-Type") == 0;
    if (!has_ctype) {
        if ((l = curl_slist_append(hdrs, "Content-Type:")) == NULL)
            goto nomem;
        hdrs = l;
    }
    if (host_hdr[0] != '\0') {
        if ((l = curl_slist_append(hdrs, host_hdr)) == NULL)
            goto nomem;
        hdrs = l;
    }
    if (c->token.path != NULL) {
        if (c->token.value == NULL) {
            fail_request(resp, OUTBOUND_ERR_CREDENTIALS, "bearer_token_file could not be read");
            goto out;
        }
        size_t n = strlen(c->token.value) + sizeof "Authorization: Bearer ";
        char *line = malloc(n);
        if (line == NULL)
            goto nomem;
        snprintf(line, n, "Authorization: Bearer %s", c->token.value);
        l = curl_slist_append(hdrs, line);
        free_secret(line);
        if (l == NULL)
            goto nomem;
        hdrs = l;
    }
    if (c->username != NULL) {
        if (c->password.path != NULL && c->password.value == NULL) {
            fail_request(resp, OUTBOUND_ERR_CREDENTIALS,
                         "basic_auth password_file could not be read");
            goto out;
        }
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->password.value ? c->password.value : "");
    }

    const char *method = req->method;
    if (method == NULL)
        method = req->body_len > 0 ? "POST" : "GET";
    bool is_head = strcmp(method, "HEAD") == 0;
    bool is_get = strcmp(method, "GET") == 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, (char *)NULL);
    curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    if (is_head) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (!is_get || req->body_len > 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body_len ? req->body : "");
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, connect_to);
    int64_t timeout = req->timeout_ms > 0 ? req->timeout_ms : c->timeout_ms;
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout);

    c->body_len = 0;
    c->body_limit =
        req->max_response_bytes ? req->max_response_bytes : OUTBOUND_DEFAULT_MAX_RESPONSE_BYTES;
    c->body_truncate = req->truncate_body;
    c->body_truncated = false;
    c->body_overflow = false;
    c->cancel = req->cancel;
    c->cancel_arg = req->cancel_arg;
    c->cancelled = false;
    c->errbuf[0] = '\0';
    CURLcode cr = curl_easy_perform(h);

    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    resp->status = status;
    if (c->body != NULL) {
        c->body[c->body_len] = '\0';
        resp->body = c->body;
    }
    resp->body_len = c->body_len;
    resp->truncated = c->body_truncated;
    if (cr != CURLE_OK) {
        enum outbound_err e = c->body_overflow ? OUTBOUND_ERR_TOO_LARGE
                              : c->cancelled   ? OUTBOUND_ERR_CANCELLED
                                               : classify(cr);
        char msg[sizeof resp->error];
        if (c->cancelled)
            snprintf(msg, sizeof msg, "request cancelled");
        else if (c->body_overflow)
            snprintf(msg, sizeof msg, "response body larger than %zu bytes", c->body_limit);
        else
            snprintf(msg, sizeof msg, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(cr));
        fail_request(resp, e, msg);
        goto out;
    }
    char *ct = NULL;
    if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL)
        snprintf(resp->content_type, sizeof resp->content_type, "%s", ct);
    struct curl_header *hd;
    if (curl_easy_header(h, "Retry-After", 0, CURLH_HEADER, -1, &hd) == CURLHE_OK) {
        int64_t d;
        if (outbound_parse_retry_after(hd->value, clock_now_ms(), &d) == 0)
            resp->retry_after_ms = d;
    }
    resp->samples_written = header_i64(h, "X-Prometheus-Remote-Write-Samples-Written");
    resp->histograms_written = header_i64(h, "X-Prometheus-Remote-Write-Histograms-Written");
    resp->exemplars_written = header_i64(h, "X-Prometheus-Remote-Write-Exemplars-Written");
    rc = 0;
    goto out;
nomem:
    fail_request(resp, OUTBOUND_ERR_OTHER, "out of memory");
out:
    /* The handle keeps pointers to these lists: detach before freeing. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, (struct curl_slist *)NULL);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, (char *)NULL);
    free_headers(hdrs);
    curl_slist_free_all(connect_to);
    return rc;
}

int outbound_do(struct outbound *c, const struct outbound_request *req,
                struct outbound_response *resp)
{
    credential_refresh(c, &c->token, false);
    credential_refresh(c, &c->password, false);
    int rc = perform(c, req, resp);
    if (rc == 0 && resp->status == 401 && (c->token.path != NULL || c->password.path != NULL)) {
        /* Rotated secret? Re-read now; retry once only when it changed,
         * since the same secret would get the same answer. */
        bool changed = credential_refresh(c, &c->token, true);
        changed = credential_refresh(c, &c->password, true) || changed;
        if (changed) {
            rc = perform(c, req, resp);
            resp->credentials_retried = true;
            return rc;
        }
    }
    resp->credentials_retried = false;
    return rc;
}
