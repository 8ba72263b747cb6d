/*
 * test_outbound.c — the outbound HTTP client against a fake server on
 * 127.0.0.1 (libmicrohttpd, plain and TLS): URLs and methods, binary bodies,
 * extra headers, keep-alive, basic auth and bearer-token rotation (refresh
 * interval and 401), Retry-After (both forms and bad values), the response
 * body cap, timeouts against a server that never answers, and TLS (CA
 * verification, server_name, insecure_skip_verify, client certificates)
 * with a throw-away CA made by the openssl CLI at test time.
 *
 * Client certificates are checked on the server side through GnuTLS, which
 * libmicrohttpd is built on; its two functions are looked up at run time
 * (dlsym) so the test links nothing extra. When openssl or TLS support is
 * missing, only the TLS cases are skipped, with a note.
 */
#include "outbound.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

/* ---- fake server ---------------------------------------------------------------------- */

struct fake {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    int requests;
    int connections;
    char method[16];
    char path[256];
    char auth[512];
    char host[256];
    char xscope[256];
    char ctype[256];
    char expect_auth[512]; /* what /auth accepts */
    unsigned char body[70000];
    size_t body_len;
};

struct upload {
    unsigned char *buf;
    size_t len, cap;
};

static void copy_hdr(struct MHD_Connection *c, const char *name, char *out, size_t cap)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(out, cap, "%s", v ? v : "");
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const void *body,
                             size_t len, const char *h1, const char *v1, const char *h2,
                             const char *v2)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (h1)
        MHD_add_response_header(r, h1, v1);
    if (h2)
        MHD_add_response_header(r, h2, v2);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Did the TLS client present a certificate the server's trust list verifies?
 * 1 yes, 0 no, -1 cannot tell (GnuTLS symbols not found). */
static int client_cert_ok(struct MHD_Connection *c)
{
    void *sym = dlsym(RTLD_DEFAULT, "gnutls_certificate_verify_peers2");
    void *sym2 = dlsym(RTLD_DEFAULT, "gnutls_certificate_get_peers");
    int (*verify)(void *, unsigned *);
    const void *(*peers)(void *, unsigned *);
    if (sym == NULL || sym2 == NULL)
        return -1;
    memcpy(&verify, &sym, sizeof sym);
    memcpy(&peers, &sym2, sizeof sym2);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL || ci->tls_session == NULL)
        return -1;
    unsigned npeers = 0;
    if (peers(ci->tls_session, &npeers) == NULL || npeers == 0)
        return 0;
    unsigned status = 1;
    int rc = verify(ci->tls_session, &status);
    return rc == 0 && status == 0;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_size, void **con_cls)
{
    (void)version;
    struct fake *f = cls;
    struct upload *u = *con_cls;
    if (u == NULL) {
        u = calloc(1, sizeof *u);
        *con_cls = u;
        return u ? MHD_YES : MHD_NO;
    }
    if (*upload_size > 0) {
        if (u->len + *upload_size > u->cap) {
            size_t ncap = (u->len + *upload_size) * 2;
            unsigned char *b = realloc(u->buf, ncap);
            if (b == NULL)
                return MHD_NO;
            u->buf = b;
            u->cap = ncap;
        }
        memcpy(u->buf + u->len, upload_data, *upload_size);
        u->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&f->mu);
    f->requests++;
    snprintf(f->method, sizeof f->method, "%s", method);
    snprintf(f->path, sizeof f->path, "%s", url);
    copy_hdr(c, "Authorization", f->auth, sizeof f->auth);
    copy_hdr(c, "Host", f->host, sizeof f->host);
    copy_hdr(c, "X-Scope-OrgID", f->xscope, sizeof f->xscope);
    copy_hdr(c, "Content-Type", f->ctype, sizeof f->ctype);
    f->body_len = u->len < sizeof f->body ? u->len : sizeof f->body;
    if (u->len)
        memcpy(f->body, u->buf, f->body_len);
    char expect[512];
    snprintf(expect, sizeof expect, "%s", f->expect_auth);
    pthread_mutex_unlock(&f->mu);

    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "v");
    if (strncmp(url, "/base/", 6) == 0)
        url += 5; /* the base URL of some cases */
    if (strcmp(url, "/auth") == 0) {
        const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (a && strcmp(a, expect) == 0)
            return reply(c, 200, "ok", 2, NULL, NULL, NULL, NULL);
        return reply(c, 401, "unauthorized", 12, NULL, NULL, NULL, NULL);
    }
    if (strcmp(url, "/retry-after") == 0)
        return reply(c, 503, "busy", 4, "Retry-After", q ? q : "", NULL, NULL);
    if (strcmp(url, "/status") == 0) {
        unsigned st = q ? (unsigned)atoi(q) : 200;
        return reply(c, st, "", 0, NULL, NULL, NULL, NULL);
    }
    if (strcmp(url, "/big") == 0) {
        size_t n = q ? (size_t)atol(q) : 0;
        char *b = malloc(n ? n : 1);
        memset(b, 'x', n);
        enum MHD_Result r = reply(c, 200, b, n, "Content-Type", "text/plain", NULL, NULL);
        free(b);
        return r;
    }
    if (strcmp(url, "/written") == 0)
        return reply(c, 204, "", 0, "X-Prometheus-Remote-Write-Samples-Written", "42",
                     "X-Prometheus-Remote-Write-Histograms-Written", "bogus");
    if (strcmp(url, "/clientcert") == 0) {
        int ok = client_cert_ok(c);
        if (ok < 0)
            return reply(c, 501, "cannot check", 12, NULL, NULL, NULL, NULL);
        return reply(c, ok ? 200 : 403, ok ? "cert" : "nocert", ok ? 4 : 6, NULL, NULL, NULL, NULL);
    }
    /* default: echo the body back */
    return reply(c, 200, u->buf ? (const void *)u->buf : "", u->len, "Content-Type",
                 "application/octet-stream", NULL, NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    struct upload *u = *con_cls;
    if (u) {
        free(u->buf);
        free(u);
    }
    *con_cls = NULL;
}

static void notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    (void)c, (void)socket_context;
    struct fake *f = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        pthread_mutex_lock(&f->mu);
        f->connections++;
        pthread_mutex_unlock(&f->mu);
    }
}

/* Start a fake server; TLS when key/cert given (PEM text), requesting client
 * certificates verified against trust when given. */
static struct fake *fake_start(const char *key, const char *cert, const char *trust)
{
    struct fake *f = calloc(1, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
    if (key)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, NULL},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify_conn, f},
        {key ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, (void *)key},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert},
        {trust ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, (void *)trust},
        {MHD_OPTION_END, 0, NULL},
    };
    f->d =
        MHD_start_daemon(flags, 0, NULL, NULL, handler, f, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (f->d == NULL) {
        free(f);
        return NULL;
    }
    f->port = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT)->port;
    return f;
}

static void fake_stop(struct fake *f)
{
    if (f == NULL)
        return;
    MHD_stop_daemon(f->d);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* ---- helpers ---------------------------------------------------------------------------- */

static char tmpdir[256];

static void write_file(const char *path, const char *text)
{
    /* write to a temp name and rename, as secret rotation does */
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (fp == NULL) {
        perror(tmp);
        exit(2);
    }
    fputs(text, fp);
    fclose(fp);
    rename(tmp, path);
}

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, fp);
    b[got] = '\0';
    fclose(fp);
    return b;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct config_http_client http_cfg(const char *url)
{
    struct config_http_client h;
    memset(&h, 0, sizeof h);
    h.url = (char *)url;
    h.timeout_ms = 5000;
    return h;
}

static int get(struct outbound *c, const char *path, struct outbound_response *r)
{
    struct outbound_request req = {.method = "GET", .path = path, .max_response_bytes = 100000};
    return outbound_do(c, &req, r);
}

/* ---- cases ------------------------------------------------------------------------------ */

static void test_redact(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"http://127.0.0.1:9090/api/v1/write", "http://127.0.0.1:9090/api/v1/write"},
        {"https://user:pass@host:9/api?token=abc#frag", "https://host:9/api"},
        {"https://user@host/", "https://host/"},
        {"http://u:p@ss@host/x", "http://host/x"},
        {"http://host?x=@y", "http://host"},
        {"http://host/a@b", "http://host/a@b"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[128];
        outbound_redact_url(cases[i].in, buf, sizeof buf);
        CHECK(strcmp(buf, cases[i].want) == 0, "redact %s: got %s want %s", cases[i].in, buf,
              cases[i].want);
    }
    char small[8];
    size_t n = outbound_redact_url("https://user:pw@example.com/", small, sizeof small);
    CHECK(n == 7 && strcmp(small, "https:/") == 0, "redact truncated: %s (%zu)", small, n);
}

static void test_retry_after_parse(void)
{
    const int64_t date = 784111777000; /* Sun, 06 Nov 1994 08:49:37 GMT */
    static const struct {
        const char *in;
        int64_t now;
        int rc;
        int64_t want;
    } cases[] = {
        {"120", 0, 0, 120000},
        {"0", 0, 0, 0},
        {" 7 ", 0, 0, 7000},
        {"99999999999999999999", 0, 0, 1000000000000},
        {"Sun, 06 Nov 1994 08:49:37 GMT", date - 10000, 0, 10000},
        {"Sunday, 06-Nov-94 08:49:37 GMT", date - 2000, 0, 2000},
        {"Sun Nov  6 08:49:37 1994", date - 1000, 0, 1000},
        {"Sun, 06 Nov 1994 08:49:37 GMT", date + 50000, 0, 0}, /* in the past */
        {"", 0, -1, 0},
        {"   ", 0, -1, 0},
        {"abc", 0, -1, 0},
        {"-5", 0, -1, 0},
        {"1.5", 0, -1, 0},
        {"12abc", 0, -1, 0},
        {"+3", 0, -1, 0},
        {"0x10", 0, -1, 0},
        {"GMT", 0, -1, 0},
        {"Sun, 99 Foo 1994 99:99:99 GMT", 0, -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t got = -12345;
        int rc = outbound_parse_retry_after(cases[i].in, cases[i].now, &got);
        CHECK(rc == cases[i].rc, "retry-after '%s': rc %d want %d (value %lld)", cases[i].in, rc,
              cases[i].rc, (long long)got);
        if (cases[i].rc == 0)
            CHECK(got == cases[i].want, "retry-after '%s': got %lld want %lld", cases[i].in,
                  (long long)got, (long long)cases[i].want);
        else
            CHECK(got == -12345, "retry-after '%s': output touched on failure", cases[i].in);
    }
    CHECK(outbound_parse_retry_after(NULL, 0, &(int64_t){0}) == -1, "NULL value");
}

static void test_basic_requests(struct fake *f)
{
    char base[128], err[256];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/base", f->port);
    struct config_http_client h = http_cfg(base);
    char *names[] = {"X-Scope-OrgID"}, *values[] = {"tenant-1"};
    h.headers.n = 1;
    h.headers.names = names;
    h.headers.values = values;
    struct outbound *c = outbound_create(&h, err, sizeof err);
    CHECK(c != NULL, "create: %s", err);
    if (c == NULL)
        return;
    CHECK(strcmp(outbound_url(c), base) == 0, "url %s", outbound_url(c));

    /* path joining and methods */
    static const struct {
        const char *method, *path, *want_path;
    } cases[] = {
        {"GET", NULL, "/base"},    {"GET", "x", "/base/x"},     {"PUT", "/y", "/base/y"},
        {"PATCH", "z", "/base/z"}, {"DELETE", "/d", "/base/d"}, {"HEAD", "h", "/base/h"},
        {"POST", "?v=1", "/base"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct outbound_request req = {.method = cases[i].method, .path = cases[i].path};
        struct outbound_response r;
        int rc = outbound_do(c, &req, &r);
        CHECK(rc == 0 && r.status == 200, "%s %s: rc %d status %ld err %s", cases[i].method,
              cases[i].path ? cases[i].path : "(null)", rc, r.status, r.error);
        CHECK(strcmp(f->method, cases[i].method) == 0, "method seen %s want %s", f->method,
              cases[i].method);
        CHECK(strcmp(f->path, cases[i].want_path) == 0, "path seen %s want %s", f->path,
              cases[i].want_path);
        CHECK(strcmp(f->xscope, "tenant-1") == 0, "extra header seen '%s'", f->xscope);
    }

    /* absolute URL in path */
    char abs[160];
    snprintf(abs, sizeof abs, "http://127.0.0.1:%d/other", f->port);
    struct outbound_response r;
    CHECK(get(c, abs, &r) == 0 && strcmp(f->path, "/other") == 0, "absolute path: %s", f->path);

    /* binary body round trip */
    unsigned char body[3000];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (unsigned char)(i * 7);
    body[0] = 0;
    body[1] = 0xff;
    struct outbound_header hd[] = {{"Content-Type", "application/x-protobuf"}};
    struct outbound_request req = {.method = "POST",
                                   .path = "echo",
                                   .headers = hd,
                                   .nheaders = 1,
                                   .body = body,
                                   .body_len = sizeof body,
                                   .max_response_bytes = 10000};
    int rc = outbound_do(c, &req, &r);
    CHECK(rc == 0 && r.status == 200, "binary post: rc %d status %ld", rc, r.status);
    CHECK(r.body_len == sizeof body && memcmp(r.body, body, sizeof body) == 0,
          "binary body echoed: len %zu", r.body_len);
    CHECK(strcmp(r.content_type, "application/octet-stream") == 0, "content type %s",
          r.content_type);
    CHECK(strcmp(f->ctype, "application/x-protobuf") == 0, "request content type %s", f->ctype);
    /* a body without a Content-Type is not labelled a form */
    struct outbound_request nreq = {.path = "echo", .body = "abc", .body_len = 3};
    rc = outbound_do(c, &nreq, &r);
    CHECK(rc == 0 && strcmp(f->method, "POST") == 0 && f->ctype[0] == '\0' && f->body_len == 3,
          "untyped body: method %s content type '%s'", f->method, f->ctype);
    CHECK(r.retry_after_ms == -1 && r.samples_written == -1, "absent headers are -1");

    /* a bad header is refused before sending */
    struct outbound_header bad[] = {{"X-Evil", "a\r\nInjected: 1"}};
    struct outbound_request breq = {.path = "echo", .headers = bad, .nheaders = 1};
    rc = outbound_do(c, &breq, &r);
    CHECK(rc == -1 && r.err == OUTBOUND_ERR_INVALID, "CRLF header refused: rc %d err %d", rc,
          r.err);

    /* Written headers */
    rc = get(c, "/written", &r);
    CHECK(rc == 0 && r.status == 204 && r.samples_written == 42 && r.histograms_written == -1 &&
              r.exemplars_written == -1,
          "written headers: %lld %lld %lld", (long long)r.samples_written,
          (long long)r.histograms_written, (long long)r.exemplars_written);
    char hv[64];
    CHECK(outbound_response_header(c, "X-Prometheus-Remote-Write-Samples-Written", hv, sizeof hv) ==
                  0 &&
              strcmp(hv, "42") == 0,
          "response header lookup: %s", hv);
    CHECK(outbound_response_header(c, "X-Absent", hv, sizeof hv) == -1, "absent header");

    /* statuses come back as answers, not errors */
    rc = get(c, "/status?v=503", &r);
    CHECK(rc == 0 && r.status == 503, "503: rc %d status %ld", rc, r.status);
    rc = get(c, "/status?v=302", &r);
    CHECK(rc == 0 && r.status == 302, "302 not followed: rc %d status %ld", rc, r.status);

    /* keep-alive: everything above went over one connection */
    CHECK(f->connections == 1, "connections used: %d", f->connections);
    outbound_destroy(c);
}

static void test_retry_after_http(struct fake *f)
{
    char base[128], err[256];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", f->port);
    struct config_http_client h = http_cfg(base);
    struct outbound *c = outbound_create(&h, err, sizeof err);
    struct outbound_response r;
    int rc = get(c, "/retry-after?v=3", &r);
    CHECK(rc == 0 && r.status == 503 && r.retry_after_ms == 3000, "Retry-After 3: %lld",
          (long long)r.retry_after_ms);
    rc = get(c, "/retry-after?v=soon", &r);
    CHECK(rc == 0 && r.status == 503 && r.retry_after_ms == -1, "Retry-After bad: %lld",
          (long long)r.retry_after_ms);
    /* an HTTP-date one hour ahead: the delay is about an hour */
    char date[64], path[192];
    time_t t = time(NULL) + 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    /* URL-encode spaces and commas */
    size_t n = 0;
    char enc[128];
    for (const char *p = date; *p && n + 4 < sizeof enc; p++) {
        if (*p == ' ' || *p == ',' || *p == ':')
            n += (size_t)snprintf(enc + n, sizeof enc - n, "%%%02X", (unsigned char)*p);
        else
            enc[n++] = *p;
    }
    enc[n] = '\0';
    snprintf(path, sizeof path, "/retry-after?v=%s", enc);
    rc = get(c, path, &r);
    CHECK(rc == 0 && r.retry_after_ms > 3000000 && r.retry_after_ms <= 3600000,
          "Retry-After date %s: %lld", date, (long long)r.retry_after_ms);
    outbound_destroy(c);
}

static void test_body_cap(struct fake *f)
{
    char base[128], err[256];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", f->port);
    struct config_http_client h = http_cfg(base);
    struct outbound *c = outbound_create(&h, err, sizeof err);
    struct outbound_request req = {.path = "/big?v=100000", .max_response_bytes = 1000};
    struct outbound_response r;
    int rc = outbound_do(c, &req, &r);
    CHECK(rc == -1 && r.err == OUTBOUND_ERR_TOO_LARGE && r.status == 200,
          "over cap: rc %d err %s status %ld", rc, outbound_err_reason(r.err), r.status);
    CHECK(strstr(r.error, "1000") != NULL, "cap in message: %s", r.error);
    req.truncate_body = true;
    rc = outbound_do(c, &req, &r);
    CHECK(rc == 0 && r.truncated && r.body_len == 1000 && r.body[0] == 'x' && r.body[1000] == 0,
          "truncated: rc %d len %zu", rc, r.body_len);
    req.truncate_body = false;
    req.max_response_bytes = 100000;
    rc = outbound_do(c, &req, &r);
    CHECK(rc == 0 && !r.truncated && r.body_len == 100000, "exactly at cap: rc %d len %zu", rc,
          r.body_len);
    req.max_response_bytes = 0; /* default cap (1 MiB) */
    rc = outbound_do(c, &req, &r);
    CHECK(rc == 0 && r.body_len == 100000, "default cap: rc %d len %zu", rc, r.body_len);
    outbound_destroy(c);
}

static void test_basic_auth(struct fake *f)
{
    char base[128], err[256], pw[512];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", f->port);
    snprintf(pw, sizeof pw, "%s/password", tmpdir);
    write_file(pw, "s3cret\n");
    struct config_http_client h = http_cfg(base);
    h.basic_auth_username = "alice";
    h.basic_auth_password_file = pw;
    struct outbound *c = outbound_create(&h, err, sizeof err);
    CHECK(c != NULL, "create: %s", err);
    struct outbound_response r;
    get(c, "/echo", &r);
    CHECK(strcmp(f->auth, "Basic YWxpY2U6czNjcmV0") == 0, "basic auth header: %s", f->auth);

    /* rotation picked up after a 401 (alice:n3w) */
    write_file(pw, "n3w");
    snprintf(f->expect_auth, sizeof f->expect_auth, "Basic YWxpY2U6bjN3");
    int before = f->requests;
    int rc = get(c, "/auth", &r);
    CHECK(rc == 0 && r.status == 200 && r.credentials_retried, "rotated password after 401: %ld",
          r.status);
    CHECK(f->requests - before == 2, "401 then one retry: %d requests", f->requests - before);
    outbound_destroy(c);
}

static void test_bearer(struct fake *f)
{
    char base[128], err[256], tok[512];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", f->port);
    snprintf(tok, sizeof tok, "%s/token", tmpdir);
    write_file(tok, "tok1\n");
    struct config_http_client h = http_cfg(base);
    h.bearer_token_file = tok;
    struct outbound *c = outbound_create(&h, err, sizeof err);
    CHECK(c != NULL, "create: %s", err);
    struct outbound_response r;
    get(c, "/echo", &r);
    CHECK(strcmp(f->auth, "Bearer tok1") == 0, "bearer: %s", f->auth);

    /* within the refresh interval the cached token is used */
    write_file(tok, "tok2");
    get(c, "/echo", &r);
    CHECK(strcmp(f->auth, "Bearer tok1") == 0, "cached token: %s", f->auth);

    /* a 401 re-reads the file and retries once with the new token */
    snprintf(f->expect_auth, sizeof f->expect_auth, "Bearer tok2");
    int before = f->requests;
    int rc = get(c, "/auth", &r);
    CHECK(rc == 0 && r.status == 200 && r.credentials_retried, "401 then tok2: status %ld",
          r.status);
    CHECK(f->requests - before == 2, "one retry: %d", f->requests - before);

    /* a 401 with an unchanged token is returned as is, no second attempt */
    snprintf(f->expect_auth, sizeof f->expect_auth, "Bearer other");
    before = f->requests;
    rc = get(c, "/auth", &r);
    CHECK(rc == 0 && r.status == 401 && !r.credentials_retried, "unchanged token: %ld", r.status);
    CHECK(f->requests - before == 1, "no retry: %d", f->requests - before);

    /* after the refresh interval the new token is used without a 401 */
    outbound_set_credentials_refresh(c, 20);
    write_file(tok, "tok3");
    sleep_ms(50);
    get(c, "/echo", &r);
    CHECK(strcmp(f->auth, "Bearer tok3") == 0, "refreshed token: %s", f->auth);

    /* file gone: the last good token keeps being used */
    unlink(tok);
    sleep_ms(50);
    rc = get(c, "/echo", &r);
    CHECK(rc == 0 && strcmp(f->auth, "Bearer tok3") == 0, "token file gone: %s", f->auth);
    outbound_destroy(c);

    /* never readable: requests fail with a credentials error, nothing sent */
    c = outbound_create(&h, err, sizeof err);
    CHECK(c != NULL, "create with missing token file still works: %s", err);
    before = f->requests;
    rc = get(c, "/echo", &r);
    CHECK(rc == -1 && r.err == OUTBOUND_ERR_CREDENTIALS, "missing token: rc %d err %s", rc,
          outbound_err_reason(r.err));
    CHECK(strstr(r.error, "tok3") == NULL, "no secret in error: %s", r.error);
    CHECK(f->requests == before, "nothing sent");
    /* the file appears: next request uses it */
    write_file(tok, "late");
    rc = get(c, "/echo", &r);
    CHECK(rc == 0 && strcmp(f->auth, "Bearer late") == 0, "late token: %s", f->auth);
    outbound_destroy(c);
}

/* A listener that never accepts: connect succeeds (kernel backlog), no
 * answer ever comes. */
static void test_timeout(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &alen) != 0) {
        CHECK(0, "cannot set up silent listener");
        close(s);
        return;
    }
    char base[128], err[256];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    struct config_http_client h = http_cfg(base);
    h.timeout_ms = 300;
    struct outbound *c = outbound_create(&h, err, sizeof err);
    struct outbound_response r;
    int rc = get(c, NULL, &r);
    CHECK(rc == -1 && r.err == OUTBOUND_ERR_TIMEOUT && r.status == 0,
          "silent server: rc %d err %s (%s)", rc, outbound_err_reason(r.err), r.error);
    /* per-request timeout overrides the configured one */
    struct outbound_request req = {.timeout_ms = 100};
    rc = outbound_do(c, &req, &r);
    CHECK(rc == -1 && r.err == OUTBOUND_ERR_TIMEOUT, "request timeout: %s", r.error);
    outbound_destroy(c);
    close(s);

    /* closed port: network error */
    snprintf(base, sizeof base, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    h = http_cfg(base);
    c = outbound_create(&h, err, sizeof err);
    rc = get(c, NULL, &r);
    CHECK(rc == -1 && r.err == OUTBOUND_ERR_NETWORK, "refused: rc %d err %s (%s)", rc,
          outbound_err_reason(r.err), r.error);
    outbound_destroy(c);
}

static bool cancel_always(void *arg)
{
    (void)arg;
    return true;
}

static void test_cancel(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    bind(s, (struct sockaddr *)&a, sizeof a);
    listen(s, 16);
    getsockname(s, (struct sockaddr *)&a, &alen);
    char base[128], err[256];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    struct config_http_client h = http_cfg(base);
    h.timeout_ms = 60000;
    struct outbound *c = outbound_create(&h, err, sizeof err);
    struct outbound_request req = {.cancel = cancel_always};
    struct outbound_response r;
    int rc = outbound_do(c, &req, &r);
    CHECK(rc == -1 && r.err == OUTBOUND_ERR_CANCELLED, "cancelled: rc %d err %s", rc,
          outbound_err_reason(r.err));
    outbound_destroy(c);
    close(s);
}

static void test_create_errors(void)
{
    char err[256];
    struct config_http_client h = http_cfg("ftp://x");
    CHECK(outbound_create(&h, err, sizeof err) == NULL && strstr(err, "url") != NULL, "ftp url: %s",
          err);
    h = http_cfg("https://127.0.0.1:1/");
    h.tls.ca_file = "/nonexistent/ca.pem";
    CHECK(outbound_create(&h, err, sizeof err) == NULL && strstr(err, "ca_file") != NULL,
          "missing ca: %s", err);
    char *names[] = {"X-Bad"}, *values[] = {"a\nb"};
    h = http_cfg("http://127.0.0.1:1/");
    h.headers.n = 1;
    h.headers.names = names;
    h.headers.values = values;
    CHECK(outbound_create(&h, err, sizeof err) == NULL, "CRLF config header refused");
    outbound_destroy(NULL);
}

/* ---- TLS -------------------------------------------------------------------------------- */

static int make_certs(void)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && {"
             " printf 'subjectAltName=DNS:promcast.test\\n' > srv.ext &&"
             " printf 'extendedKeyUsage=clientAuth\\n' > cli.ext &&"
             " openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
             "   -keyout ca.key -out ca.pem -days 2 -subj /CN=promcast-test-ca &&"
             " openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
             "   -keyout srv.key -out srv.csr -subj /CN=promcast.test &&"
             " openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
             "   -out srv.pem -days 2 -extfile srv.ext &&"
             " openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
             "   -keyout cli.key -out cli.csr -subj /CN=promcast-client &&"
             " openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
             "   -out cli.pem -days 2 -extfile cli.ext; } >openssl.log 2>&1",
             tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_tls(void)
{
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        printf("test_outbound: NOTE: openssl CLI not found, TLS cases skipped\n");
        return;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        printf("test_outbound: NOTE: libmicrohttpd without TLS, TLS cases skipped\n");
        return;
    }
    if (make_certs() != 0) {
        CHECK(0, "openssl failed; see %s/openssl.log", tmpdir);
        return;
    }
    char p_ca[512], p_key[512], p_cert[512], p_ckey[512], p_ccert[512];
    snprintf(p_ca, sizeof p_ca, "%s/ca.pem", tmpdir);
    snprintf(p_key, sizeof p_key, "%s/srv.key", tmpdir);
    snprintf(p_cert, sizeof p_cert, "%s/srv.pem", tmpdir);
    snprintf(p_ckey, sizeof p_ckey, "%s/cli.key", tmpdir);
    snprintf(p_ccert, sizeof p_ccert, "%s/cli.pem", tmpdir);
    char *key = read_text(p_key), *cert = read_text(p_cert), *ca = read_text(p_ca);
    struct fake *f = fake_start(key, cert, ca);
    CHECK(f != NULL, "TLS fake server");
    if (f == NULL)
        goto out;
    char url[128], err[256];
    snprintf(url, sizeof url, "https://127.0.0.1:%d", f->port);
    struct outbound_response r;
    int rc;

    /* unknown CA */
    struct config_http_client h = http_cfg(url);
    struct outbound *c = outbound_create(&h, err, sizeof err);
    rc = get(c, NULL, &r);
    CHECK(rc == -1 && r.err == OUTBOUND_ERR_TLS, "unknown CA: rc %d err %s (%s)", rc,
          outbound_err_reason(r.err), r.error);
    outbound_destroy(c);

    /* right CA, but the certificate is for promcast.test, not 127.0.0.1 */
    h.tls.ca_file = p_ca;
    c = outbound_create(&h, err, sizeof err);
    rc = get(c, NULL, &r);
    CHECK(rc == -1 && r.err == OUTBOUND_ERR_TLS, "name mismatch: rc %d err %s (%s)", rc,
          outbound_err_reason(r.err), r.error);
    outbound_destroy(c);

    /* server_name makes it verify; the Host header stays the configured one */
    h.tls.server_name = "promcast.test";
    c = outbound_create(&h, err, sizeof err);
    rc = get(c, NULL, &r);
    CHECK(rc == 0 && r.status == 200, "server_name: rc %d status %ld (%s)", rc, r.status, r.error);
    char want_host[64];
    snprintf(want_host, sizeof want_host, "127.0.0.1:%d", f->port);
    CHECK(strcmp(f->host, want_host) == 0, "Host header with server_name: %s", f->host);
    CHECK(strcmp(f->path, "/") == 0, "path with server_name: %s", f->path);
    /* and the connection is reused */
    int conns = f->connections;
    rc = get(c, "/echo", &r);
    CHECK(rc == 0 && f->connections == conns, "TLS keep-alive: %d -> %d", conns, f->connections);
    /* no client certificate was sent */
    rc = get(c, "/clientcert", &r);
    if (rc == 0 && r.status == 501)
        printf("test_outbound: NOTE: GnuTLS not reachable, client-cert check skipped\n");
    else
        CHECK(rc == 0 && r.status == 403, "no client cert: rc %d status %ld", rc, r.status);
    outbound_destroy(c);

    /* client certificate */
    h.tls.cert_file = p_ccert;
    h.tls.key_file = p_ckey;
    c = outbound_create(&h, err, sizeof err);
    CHECK(c != NULL, "create with client cert: %s", err);
    rc = get(c, "/clientcert", &r);
    if (!(rc == 0 && r.status == 501))
        CHECK(rc == 0 && r.status == 200, "client cert accepted: rc %d status %ld (%s)", rc,
              r.status, r.error);
    outbound_destroy(c);

    /* insecure_skip_verify: no CA, wrong name, still connects */
    struct config_http_client hi = http_cfg(url);
    hi.tls.insecure_skip_verify = true;
    c = outbound_create(&hi, err, sizeof err);
    rc = get(c, NULL, &r);
    CHECK(rc == 0 && r.status == 200, "insecure_skip_verify: rc %d (%s)", rc, r.error);
    outbound_destroy(c);

    /* plain HTTP to a TLS port fails cleanly */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", f->port);
    struct config_http_client hp = http_cfg(url);
    hp.timeout_ms = 2000;
    c = outbound_create(&hp, err, sizeof err);
    rc = get(c, NULL, &r);
    CHECK(rc == -1 || r.status >= 400, "http to https port: rc %d status %ld", rc, r.status);
    outbound_destroy(c);
out:
    fake_stop(f);
    free(key);
    free(cert);
    free(ca);
}

int main(void)
{
    if (outbound_global_init() != 0) {
        fprintf(stderr, "curl_global_init failed\n");
        return 1;
    }
    snprintf(tmpdir, sizeof tmpdir, "%s/promcast-test-outbound.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_redact();
    test_retry_after_parse();
    test_create_errors();
    struct fake *f = fake_start(NULL, NULL, NULL);
    CHECK(f != NULL, "fake server");
    if (f) {
        test_basic_requests(f);
        test_retry_after_http(f);
        test_body_cap(f);
        test_basic_auth(f);
        test_bearer(f);
        fake_stop(f);
    }
    test_timeout();
    test_cancel();
    test_tls();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    outbound_global_cleanup();
    return test_main_end("test_outbound");
}
