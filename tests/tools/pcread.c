/*
 * pcread.c — remote-read bodies for the end-to-end tests: writes a
 * ReadRequest to stdout, or decodes a response read from stdin. The HTTP
 * part is left to curl.
 *
 *   pcread request [--types streamed,samples] --query START END MATCHER... [--query ...]
 *   pcread decode (--streamed|--samples) [--verify-chunks] --query START END [--query ...]
 *
 * START/END are milliseconds since the epoch; MATCHER is name=value,
 * name!=value, name=~regex or name!~regex. `decode` prints one line per
 * sample, "Q LABELS T VALUE_BITS_HEX", so the output of a streamed and a
 * SAMPLES answer to the same request can be sorted and compared, and a
 * summary line on stderr. --verify-chunks (streamed only) also walks the
 * frames with protobuf-c and re-encodes every XOR chunk from its decoded
 * samples with promcast's encoder: the bytes must equal the server's, or
 * the server's plus one zero byte (Prometheus ≤ 2.x's bit stream sometimes
 * allocates a padding byte ahead); anything else exits 1.
 */
#include "wire_read.h"

#include <prometheus/remote.pb-c.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

#define MAX_QUERIES  16
#define MAX_MATCHERS 32

static struct wire_read_query queries[MAX_QUERIES];
static struct wire_read_matcher matchers[MAX_QUERIES][MAX_MATCHERS];
static size_t nqueries;

static void usage(void)
{
    fprintf(stderr, "usage: pcread request [--types streamed,samples] --query START END "
                    "MATCHER... [--query ...]\n"
                    "       pcread decode (--streamed|--samples) [--verify-chunks] --query "
                    "START END [--query ...]\n");
    exit(2);
}

static int parse_matcher(const char *arg, struct wire_read_matcher *m)
{
    size_t k = strcspn(arg, "=!");
    const char *p = arg + k;
    size_t oplen = 2;
    if (p[0] == '!' && p[1] == '=')
        m->op = MATCH_NEQ;
    else if (p[0] == '!' && p[1] == '~')
        m->op = MATCH_NRE;
    else if (p[0] == '=' && p[1] == '~')
        m->op = MATCH_RE;
    else if (p[0] == '=') {
        m->op = MATCH_EQ;
        oplen = 1;
    } else {
        return -1;
    }
    m->name = arg;
    m->name_len = (uint32_t)k;
    m->value = p + oplen;
    m->value_len = (uint32_t)strlen(m->value);
    return 0;
}

/* Parse "--query START END [MATCHER...]" groups from argv[i...]. */
static int parse_queries(int argc, char **argv, int i, int with_matchers)
{
    while (i < argc) {
        if (strcmp(argv[i], "--query") != 0 || i + 2 >= argc || nqueries == MAX_QUERIES)
            return -1;
        struct wire_read_query *q = &queries[nqueries];
        q->start_ms = strtoll(argv[i + 1], NULL, 10);
        q->end_ms = strtoll(argv[i + 2], NULL, 10);
        q->matchers = matchers[nqueries];
        q->nmatchers = 0;
        i += 3;
        while (with_matchers && i < argc && strcmp(argv[i], "--query") != 0) {
            if (q->nmatchers == MAX_MATCHERS ||
                parse_matcher(argv[i], &matchers[nqueries][q->nmatchers]) != 0)
                return -1;
            q->nmatchers++;
            i++;
        }
        nqueries++;
    }
    return nqueries > 0 ? 0 : -1;
}

static int cmd_request(int argc, char **argv)
{
    enum wire_read_type types[2] = {WIRE_READ_STREAMED_XOR_CHUNKS, WIRE_READ_SAMPLES};
    size_t ntypes = 2;
    int i = 2;
    if (i + 1 < argc && strcmp(argv[i], "--types") == 0) {
        ntypes = 0;
        char *list = argv[i + 1];
        for (char *tok = strtok(list, ","); tok != NULL && ntypes < 2; tok = strtok(NULL, ","))
            types[ntypes++] =
                strcmp(tok, "streamed") == 0 ? WIRE_READ_STREAMED_XOR_CHUNKS : WIRE_READ_SAMPLES;
        i += 2;
    }
    if (parse_queries(argc, argv, i, 1) != 0)
        usage();
    void *buf = NULL;
    size_t cap = 0, len = 0;
    char err[256];
    if (wire_read_encode_request(queries, nqueries, types, ntypes, &buf, &cap, &len, err,
                                 sizeof err) != 0) {
        fprintf(stderr, "pcread: %s\n", err);
        return 1;
    }
    int rc = fwrite(buf, 1, len, stdout) == len ? 0 : 1;
    free(buf);
    return rc;
}

static uint8_t *read_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        if (buf == NULL)
            return NULL;
        size_t k = fread(buf + n, 1, cap - n, stdin);
        if (k == 0)
            break;
        n += k;
    }
    *len = n;
    return buf;
}

static int print_series(void *ctx, size_t qi, const struct label *labels, size_t nlabels,
                        const struct sample *samples, size_t ns)
{
    (void)ctx;
    char text[2048];
    labels_format(labels, nlabels, text, sizeof text);
    for (size_t i = 0; i < ns; i++) {
        uint64_t b;
        memcpy(&b, &samples[i].v, sizeof b);
        printf("%zu %s %" PRId64 " %016" PRIx64 "\n", qi, text, samples[i].t, b);
    }
    return 0;
}

/* Re-encode every XOR chunk of a streamed body; see the file comment. */
static int verify_chunks(const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    size_t chunks = 0, same = 0, padded = 0, differ = 0;
    struct sample *s = malloc(65536 * sizeof *s);
    uint8_t *enc = malloc(wire_read_xor_max_size(65536));
    while (p < end) {
        uint64_t n = 0;
        unsigned shift = 0;
        while (p < end && (*p & 0x80) && shift < 63) {
            n |= (uint64_t)(*p++ & 0x7f) << shift;
            shift += 7;
        }
        if (p >= end)
            break;
        n |= (uint64_t)*p++ << shift;
        if ((uint64_t)(end - p) < 4 + n)
            break;
        p += 4; /* CRC checked by the decoder */
        Prometheus__ChunkedReadResponse *m =
            prometheus__chunked_read_response__unpack(NULL, (size_t)n, p);
        if (m == NULL) {
            fprintf(stderr, "pcread: protobuf-c cannot unpack a frame\n");
            differ++;
            break;
        }
        for (size_t i = 0; i < m->n_chunked_series; i++)
            for (size_t k = 0; k < m->chunked_series[i]->n_chunks; k++) {
                Prometheus__Chunk *c = m->chunked_series[i]->chunks[k];
                if (c->type != PROMETHEUS__CHUNK__ENCODING__XOR)
                    continue;
                size_t got;
                char err[160];
                chunks++;
                if (wire_read_xor_decode(c->data.data, c->data.len, s, 65536, &got, err,
                                         sizeof err) != 0) {
                    fprintf(stderr, "pcread: chunk %zu: %s\n", chunks, err);
                    differ++;
                    continue;
                }
                if (got > 0 && (s[0].t != c->min_time_ms || s[got - 1].t != c->max_time_ms))
                    fprintf(stderr,
                            "pcread: chunk %zu: samples %" PRId64 "..%" PRId64
                            " vs min/max %" PRId64 "..%" PRId64 "\n",
                            chunks, s[0].t, s[got - 1].t, c->min_time_ms, c->max_time_ms);
                size_t elen = wire_read_xor_encode(s, got, enc, wire_read_xor_max_size(65536));
                if (elen == c->data.len && memcmp(enc, c->data.data, elen) == 0) {
                    same++;
                } else if (elen + 1 == c->data.len && memcmp(enc, c->data.data, elen) == 0 &&
                           c->data.data[elen] == 0) {
                    padded++;
                } else {
                    differ++;
                    fprintf(stderr,
                            "pcread: chunk %zu (%zu samples): re-encoded %zu bytes, "
                            "server sent %zu\n",
                            chunks, got, elen, c->data.len);
                }
            }
        prometheus__chunked_read_response__free_unpacked(m, NULL);
        p += n;
    }
    free(s);
    free(enc);
    fprintf(stderr,
            "pcread: verify-chunks: %zu XOR chunks, %zu byte-identical, %zu identical but for "
            "the server's extra zero byte, %zu different\n",
            chunks, same, padded, differ);
    return differ == 0 && chunks > 0 ? 0 : 1;
}

static int cmd_decode(int argc, char **argv)
{
    if (argc < 3)
        usage();
    enum wire_read_type type;
    if (strcmp(argv[2], "--streamed") == 0)
        type = WIRE_READ_STREAMED_XOR_CHUNKS;
    else if (strcmp(argv[2], "--samples") == 0)
        type = WIRE_READ_SAMPLES;
    else
        usage();
    int i = 3, verify = 0;
    if (i < argc && strcmp(argv[i], "--verify-chunks") == 0) {
        verify = 1;
        i++;
    }
    if (parse_queries(argc, argv, i, 0) != 0)
        usage();
    size_t len;
    uint8_t *body = read_stdin(&len);
    if (body == NULL)
        return 1;
    struct wire_read_stats st;
    char err[512];
    enum wire_read_err e = wire_read_decode_response(body, len, type, queries, nqueries, NULL,
                                                     print_series, NULL, &st, err, sizeof err);
    fprintf(stderr,
            "pcread: %s: %zu bytes, %" PRIu64 " frames, %" PRIu64 " results, %" PRIu64
            " series, %" PRIu64 " samples, %" PRIu64 " chunks, %" PRIu64 " skipped chunks, %" PRIu64
            " out of range, %" PRIu64 " duplicates%s%s\n",
            wire_read_err_reason(e), len, st.frames, st.results, st.series, st.samples, st.chunks,
            st.skipped_chunks, st.out_of_range, st.duplicates, e ? ": " : "", e ? err : "");
    int rc = e == WIRE_READ_OK ? 0 : 1;
    if (rc == 0 && verify && type == WIRE_READ_STREAMED_XOR_CHUNKS)
        rc = verify_chunks(body, len);
    free(body);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "request") == 0)
        return cmd_request(argc, argv);
    if (strcmp(argv[1], "decode") == 0)
        return cmd_decode(argc, argv);
    usage();
    return 2;
}
