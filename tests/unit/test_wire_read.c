/*
 * Unit tests for wire_read.c: the XOR chunk codec (round trips over tricky
 * series, delta-of-delta bucket choice bit by bit, hand-computed bytes),
 * ReadRequest decoding against requests built by protobuf-c and by hand
 * (valid and malformed), the client's request encoder, SAMPLES and streamed
 * responses built by the codec and checked with protobuf-c's unpack, and the
 * response decoder on good and broken bodies (frames, limits, callbacks).
 *
 * With WIRE_READ_SEED_DIR set, also writes the fuzz seed corpus there
 * (tests/fuzz/corpus/wire_read/): one mode byte (see fuzz_wire_read.c)
 * followed by the body.
 */
#include "wire_read.h"

#include <float.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

#include <prometheus/remote.pb-c.h>
#include <prometheus/types.pb-c.h>

#include "crc32c.h"
#include "testlib.h"
#include "wire_write.h"

/* Byte builder: protobuf written independently of the code under test. ---- */

struct tb {
    uint8_t *p;
    size_t len, cap;
};

static void tb_raw(struct tb *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->len + n)
            c *= 2;
        b->p = realloc(b->p, c);
        if (b->p == NULL)
            abort();
        b->cap = c;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void tb_byte(struct tb *b, uint8_t x)
{
    tb_raw(b, &x, 1);
}

static void tb_varint(struct tb *b, uint64_t v)
{
    do {
        uint8_t x = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            x |= 0x80;
        tb_byte(b, x);
    } while (v);
}

static void tb_tag(struct tb *b, uint32_t f, unsigned wt)
{
    tb_varint(b, (uint64_t)f << 3 | wt);
}

static void tb_bytes(struct tb *b, uint32_t f, const void *d, size_t n)
{
    tb_tag(b, f, 2);
    tb_varint(b, n);
    tb_raw(b, d, n);
}

static void tb_str(struct tb *b, uint32_t f, const char *s)
{
    tb_bytes(b, f, s, strlen(s));
}

static void tb_msg(struct tb *b, uint32_t f, const struct tb *m)
{
    tb_bytes(b, f, m->p, m->len);
}

static void tb_free(struct tb *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* A whole frame around a message: uvarint length, CRC-32C big-endian. */
static void tb_frame(struct tb *b, const void *msg, size_t n)
{
    uint32_t c = crc32c(msg, n);
    tb_varint(b, n);
    uint8_t be[4] = {(uint8_t)(c >> 24), (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c};
    tb_raw(b, be, 4);
    tb_raw(b, msg, n);
}

static uint64_t bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static void *snappy(const void *d, size_t n, size_t *out)
{
    void *buf = NULL;
    size_t cap = 0;
    if (wire_snappy_compress(d, n, &buf, &cap, out) != 0)
        abort();
    return buf;
}

static void *unsnappy(const void *d, size_t n, size_t *out)
{
    void *buf = NULL;
    size_t cap = 0;
    char err[128];
    if (wire_snappy_uncompress(d, n, 1u << 30, &buf, &cap, out, err, sizeof err) != WIRE_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void write_seed(const char *name, uint8_t mode, const void *body, size_t len)
{
    const char *dir = getenv("WIRE_READ_SEED_DIR");
    if (dir == NULL)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return;
    fwrite(&mode, 1, 1, f);
    fwrite(body, 1, len, f);
    fclose(f);
}

static unsigned bit_at(const uint8_t *buf, size_t pos)
{
    return (buf[pos >> 3] >> (7 - (pos & 7))) & 1;
}

static uint64_t bits_at(const uint8_t *buf, size_t pos, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 1 | bit_at(buf, pos + i);
    return v;
}

/* XOR chunks ---------------------------------------------------------------- */

/* Encode, decode, compare bit-exact; every shorter prefix must be rejected
 * (the encoder pads only to the byte, so the last byte carries data). */
static void xor_roundtrip(const char *name, const struct sample *s, size_t n)
{
    size_t cap = wire_read_xor_max_size(n);
    uint8_t *buf = malloc(cap);
    struct sample *out = calloc(n + 1, sizeof *out);
    size_t len = wire_read_xor_encode(s, n, buf, cap), got = 0;
    char err[160] = "";
    CHECK(len >= 2 && len <= cap, "%s: encoded %zu bytes (cap %zu)", name, len, cap);
    CHECK(wire_read_xor_count(buf, len) == (long)n, "%s: header count", name);
    int rc = wire_read_xor_decode(buf, len, out, n, &got, err, sizeof err);
    CHECK(rc == 0 && got == n, "%s: decode rc %d got %zu of %zu: %s", name, rc, got, n, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        CHECK(out[i].t == s[i].t && bits(out[i].v) == bits(s[i].v),
              "%s: sample %zu: got (%" PRId64 ", %016" PRIx64 ") want (%" PRId64 ", %016" PRIx64
              ")",
              name, i, out[i].t, bits(out[i].v), s[i].t, bits(s[i].v));
    if (n > 0 && n <= 200) {
        int bad = 0;
        for (size_t k = 0; k < len; k++)
            if (wire_read_xor_decode(buf, k, out, n, &got, err, sizeof err) == 0)
                bad++;
        CHECK(bad == 0, "%s: %d truncated prefixes decoded", name, bad);
    }
    if (n > 0) {
        CHECK(wire_read_xor_decode(buf, len, out, n - 1, &got, err, sizeof err) != 0,
              "%s: decoded into too small a buffer", name);
    }
    free(buf);
    free(out);
}

static void test_xor_tricky(void)
{
    const double stale = sample_stale_value();
    const double qnan = from_bits(UINT64_C(0x7ff8000000000001));
    struct sample irregular[] = {
        {0, 1},      {15000, 2},    {30001, 2},         {44999, 2.5},       {60000, -3},
        {60001, -3}, {120000, 1e9}, {1000000000000, 4}, {1000000000001, 4}, {1000000015000, 0}};
    xor_roundtrip("irregular", irregular, sizeof irregular / sizeof irregular[0]);

    struct sample specials[] = {{1000, 1.0},
                                {2000, qnan},
                                {3000, stale},
                                {4000, stale},
                                {5000, INFINITY},
                                {6000, -INFINITY},
                                {7000, -0.0},
                                {8000, 0.0},
                                {9000, from_bits(1)}, /* smallest denormal */
                                {10000, DBL_MAX},
                                {11000, -DBL_MAX},
                                {12000, 1.0},
                                {13000, nextafter(1.0, 2.0)}, /* leading zeros 63: clamp */
                                {14000, from_bits(UINT64_C(0x8000000000000000))},
                                {15000, from_bits(UINT64_C(0x0000000000000001))}, /* 64 sig bits */
                                {16000, from_bits(UINT64_C(0x8000000000000000))},
                                {17000, stale}};
    xor_roundtrip("specials", specials, sizeof specials / sizeof specials[0]);

    struct sample equal[50];
    for (int i = 0; i < 50; i++)
        equal[i] = (struct sample){1700000000000 + 15000 * i, 42.0};
    xor_roundtrip("equal values, regular steps", equal, 50);

    /* window reuse: XORs inside the first window, then one outside it */
    struct sample win[] = {{1, from_bits(0x00ff000000000000)}, {2, from_bits(0x00f0000000000000)},
                           {3, from_bits(0x00ff000000000000)}, {4, from_bits(0x00f1000000000000)},
                           {5, from_bits(0x0fff00000000000f)}, {6, from_bits(0x0fff00000000000e)}};
    xor_roundtrip("window reuse", win, 6);

    struct sample one = {-5, stale};
    xor_roundtrip("one sample, negative time, stale", &one, 1);
    xor_roundtrip("no samples", NULL, 0);

    struct sample extremes[] = {{INT64_MIN, 1}, {INT64_MAX, 2}, {INT64_MIN, 3},
                                {0, 4},         {INT64_MAX, 5}, {-1, 6}};
    xor_roundtrip("int64 extremes (wrapping arithmetic)", extremes, 6);

    struct sample s120[121];
    for (int i = 0; i < 121; i++)
        s120[i] = (struct sample){1000 * i + (i % 7) * 13, (double)(i * i) / 7.0};
    xor_roundtrip("120 samples", s120, 120);
    xor_roundtrip("121 samples", s120, 121);

    /* pseudo-random series: mixtures of steps, jitter and value kinds */
    uint64_t rng = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < 60; round++) {
        size_t n = 1 + (size_t)(round * 37 % 300);
        struct sample *s = malloc(n * sizeof *s);
        int64_t t = (int64_t)(rng >> 20) - (INT64_C(1) << 40);
        double v = 0;
        for (size_t i = 0; i < n; i++) {
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            unsigned k = (unsigned)(rng >> 60);
            int64_t step = k < 6    ? 15000
                           : k < 10 ? 15000 + (int64_t)(rng >> 48 & 0xfff) - 2048
                           : k < 13 ? (int64_t)(rng >> 30) - (INT64_C(1) << 33)
                                    : (int64_t)(rng >> 44);
            t += step;
            unsigned vk = (unsigned)(rng >> 20) & 7;
            if (vk == 1)
                v += 1;
            else if (vk == 2)
                v = from_bits(rng);
            else if (vk == 3)
                v = stale;
            else if (vk == 4)
                v = (double)(rng >> 40) / 1000.0;
            s[i] = (struct sample){t, v};
        }
        char name[64];
        snprintf(name, sizeof name, "random series %d (%zu samples)", round, n);
        xor_roundtrip(name, s, n);
        free(s);
    }

    struct sample *big = malloc(65536 * sizeof *big);
    for (int i = 0; i < 65536; i++)
        big[i] = (struct sample){i * 10, i % 3 ? 1.5 : (double)i};
    xor_roundtrip("65535 samples (header maximum)", big, 65535);
    uint8_t small[8];
    CHECK(wire_read_xor_encode(big, 65536, NULL, 0) == 0, "65536 samples accepted");
    CHECK(wire_read_xor_encode(big, 1, small, sizeof small) == 0, "cap below max size accepted");
    free(big);
}

/*
 * Bucket choice for a delta-of-delta, checked bit by bit. The series is
 * t = 1000, 2000, 3000 + dod with a constant value, so the stream is:
 * 16 bits count, 16 bits zigzag varint of 1000 (D0 0F), 64 bits value,
 * 16 bits uvarint of 1000 (E8 07), 1 bit '0' (same value) — 113 bits —
 * then the dod prefix and its field, then '0' for the value.
 */
static void test_xor_dod_buckets(void)
{
    static const struct {
        int64_t dod;
        unsigned prefix_len, field; /* field bits; 0 = the one-bit '0' */
    } cases[] = {
        {0, 1, 0},
        {1, 2, 14},
        {-1, 2, 14},
        {8191, 2, 14},
        {-8191, 2, 14},
        {8192, 2, 14},
        {-8192, 3, 17},
        {8193, 3, 17},
        {65535, 3, 17},
        {-65535, 3, 17},
        {65536, 3, 17},
        {-65536, 4, 20},
        {65537, 4, 20},
        {524287, 4, 20},
        {-524287, 4, 20},
        {524288, 4, 20},
        {-524288, 4, 64},
        {524289, 4, 64},
        {1000000000000, 4, 64},
        {-1000000000000, 4, 64},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t dod = cases[i].dod;
        struct sample s[3] = {{1000, 7.25}, {2000, 7.25}, {3000 + dod, 7.25}};
        uint8_t buf[128];
        size_t len = wire_read_xor_encode(s, 3, buf, sizeof buf);
        CHECK(len > 14 && buf[2] == 0xD0 && buf[3] == 0x0F && buf[12] == 0xE8 && buf[13] == 0x07,
              "dod %" PRId64 ": header bytes", dod);
        size_t pos = 113;
        CHECK(bit_at(buf, 112) == 0, "dod %" PRId64 ": value bit of sample 1", dod);
        unsigned plen = cases[i].prefix_len;
        uint64_t want_prefix = plen == 1 ? 0 : plen == 2 ? 2 : plen == 3 ? 6 : 14;
        if (cases[i].field == 64)
            want_prefix = 15;
        CHECK(bits_at(buf, pos, plen) == want_prefix,
              "dod %" PRId64 ": prefix %" PRIx64 " want %" PRIx64, dod, bits_at(buf, pos, plen),
              want_prefix);
        pos += plen;
        unsigned nb = cases[i].field;
        if (nb > 0) {
            uint64_t mask = nb == 64 ? UINT64_MAX : (UINT64_C(1) << nb) - 1;
            CHECK(bits_at(buf, pos, nb) == ((uint64_t)dod & mask),
                  "dod %" PRId64 ": %u-bit field %" PRIx64, dod, nb, bits_at(buf, pos, nb));
            pos += nb;
        }
        CHECK(bit_at(buf, pos) == 0, "dod %" PRId64 ": value bit of sample 2", dod);
        CHECK(len == (pos + 1 + 7) / 8, "dod %" PRId64 ": %zu bytes, want %zu", dod, len,
              (pos + 1 + 7) / 8);
        char name[64];
        snprintf(name, sizeof name, "dod %" PRId64, dod);
        xor_roundtrip(name, s, 3);
    }
}

/*
 * Known answer, computed by hand from protocols.md §2.5 (not from our
 * encoder): samples (1000, 1.0), (2000, 1.0), (3005, 2.0).
 *   00 03                    count 3, big-endian
 *   D0 0F                    t0 = 1000: zigzag 2000 = 0x7D0 → varint D0 0F
 *   3F F0 00 00 00 00 00 00  v0 = 1.0, raw bits
 *   E8 07                    delta 1000 = 0x3E8 → uvarint E8 07
 * then the bit stream:
 *   0                        v1 == v0
 *   10 00000000000101        dod = 1005 - 1000 = 5, 14-bit bucket
 *   1 1 00001 001011         v2: XOR 0x7FF0000000000000 → new window,
 *                            leading 1, 11 significant bits (trailing 52)
 *   11111111111              the 11 bits 0x7FF
 *   0000000                  padding to the byte
 * = 01000000 00000010 11100001 00101111 11111111 10000000
 * = 40 02 E1 2F FF 80
 */
static void test_xor_known_answer(void)
{
    static const uint8_t want[] = {0x00, 0x03, 0xD0, 0x0F, 0x3F, 0xF0, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0xE8, 0x07, 0x40, 0x02, 0xE1, 0x2F, 0xFF, 0x80};
    struct sample s[3] = {{1000, 1.0}, {2000, 1.0}, {3005, 2.0}};
    uint8_t buf[128];
    size_t len = wire_read_xor_encode(s, 3, buf, sizeof buf);
    write_seed("xor_chunk", 7, want, sizeof want);
    /* mode 6: control bytes (step size, value kind) and payloads */
    static const uint8_t gen[] = {0x01, 0x3a, 0x98, 0x04, 0x00, 0x00, 0x05, 0x00, 0x0b, 0x40, 0x09,
                                  0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18, 0x2c, 0x0f, 0x03, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0x10, 0x0d, 0x07};
    write_seed("xor_samples", 6, gen, sizeof gen);
    CHECK(len == sizeof want && memcmp(buf, want, sizeof want) == 0,
          "known-answer chunk: got %zu bytes", len);
    for (size_t i = 0; i < len && i < sizeof want; i++)
        CHECK(buf[i] == want[i], "byte %zu: got %02x want %02x", i, buf[i], want[i]);
    struct sample out[3];
    size_t n;
    char err[128];
    CHECK(wire_read_xor_decode(want, sizeof want, out, 3, &n, err, sizeof err) == 0 && n == 3 &&
              out[2].t == 3005 && out[2].v == 2.0 && out[1].v == 1.0,
          "decoding the known answer: %s", err);
    /* Prometheus 2.42's writer may leave one extra zero byte at the end
     * (its bstream allocates ahead): the reader must ignore it. */
    uint8_t padded[sizeof want + 1];
    memcpy(padded, want, sizeof want);
    padded[sizeof want] = 0;
    CHECK(wire_read_xor_decode(padded, sizeof padded, out, 3, &n, err, sizeof err) == 0 && n == 3,
          "extra zero byte: %s", err);
}

static void test_xor_malformed(void)
{
    struct sample out[4];
    size_t n = 99;
    char err[160];
    static const uint8_t empty[] = {0x00, 0x00};
    CHECK(wire_read_xor_decode(empty, 2, out, 0, &n, err, sizeof err) == 0 && n == 0,
          "empty chunk: %s", err);
    CHECK(wire_read_xor_decode(empty, 1, out, 4, &n, err, sizeof err) != 0, "1-byte chunk");
    static const uint8_t count_only[] = {0x00, 0x01};
    CHECK(wire_read_xor_decode(count_only, 2, out, 4, &n, err, sizeof err) != 0 &&
              strstr(err, "truncated") != NULL,
          "header only: %s", err);
    static const uint8_t overflow[] = {0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0x7f, 0,    0,    0,    0,    0,    0,    0,    0};
    CHECK(wire_read_xor_decode(overflow, sizeof overflow, out, 4, &n, err, sizeof err) != 0 &&
              strstr(err, "malformed") != NULL,
          "varint over 64 bits: %s", err);
    /* count 2; t0 0; v0 0; delta 1; then '11' lead 31 sig 63: 94 > 64 bits */
    static const uint8_t window[] = {0x00, 0x02, 0x00, 0,    0,    0,    0,    0,
                                     0,    0,    0,    0x01, 0xFF, 0xFF, 0xFF, 0xFF,
                                     0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    CHECK(wire_read_xor_decode(window, sizeof window, out, 4, &n, err, sizeof err) != 0 &&
              strstr(err, "malformed") != NULL,
          "window over 64 bits: %s", err);
    static const uint8_t many[] = {0x00, 0x05, 0x00};
    n = 99;
    CHECK(wire_read_xor_decode(many, sizeof many, out, 4, &n, err, sizeof err) != 0 &&
              strstr(err, "room") != NULL,
          "count over capacity: %s", err);
    CHECK(n == 99, "n written on failure");
}

/* Requests ------------------------------------------------------------------- */

static Prometheus__LabelMatcher *pb_matcher(Prometheus__LabelMatcher *m, int type, const char *name,
                                            const char *value)
{
    Prometheus__LabelMatcher init = PROMETHEUS__LABEL_MATCHER__INIT;
    *m = init;
    m->type = (Prometheus__LabelMatcher__Type)type;
    m->name = (char *)name;
    m->value = (char *)value;
    return m;
}

static uint8_t *pack_request(Prometheus__ReadRequest *r, size_t *len)
{
    *len = prometheus__read_request__get_packed_size(r);
    uint8_t *b = malloc(*len ? *len : 1);
    prometheus__read_request__pack(r, b);
    return b;
}

static bool matcher_is(const struct wire_read_matcher *m, enum matcher_op op, const char *name,
                       const char *value, size_t vlen)
{
    return m->op == op && m->name_len == strlen(name) && memcmp(m->name, name, m->name_len) == 0 &&
           m->value_len == vlen && (vlen == 0 || memcmp(m->value, value, vlen) == 0);
}

static void test_request_valid(void)
{
    Prometheus__LabelMatcher m[5];
    Prometheus__LabelMatcher *q0m[] = {pb_matcher(&m[0], 0, "__name__", "up"),
                                       pb_matcher(&m[1], 1, "job", "node"),
                                       pb_matcher(&m[2], 2, "instance", "10\\..*")};
    Prometheus__LabelMatcher *q1m[] = {pb_matcher(&m[3], 3, "env", "dev|test"),
                                       pb_matcher(&m[4], 0, "__name__", "x:yhat")};
    Prometheus__ReadHints hints = PROMETHEUS__READ_HINTS__INIT;
    char *grouping[] = {"job", "instance"};
    hints.step_ms = 15000;
    hints.func = "rate";
    hints.start_ms = 1;
    hints.end_ms = 2;
    hints.n_grouping = 2;
    hints.grouping = grouping;
    hints.by = 1;
    hints.range_ms = 300000;
    Prometheus__Query q[2] = {PROMETHEUS__QUERY__INIT, PROMETHEUS__QUERY__INIT};
    q[0].start_timestamp_ms = 1700000000000;
    q[0].end_timestamp_ms = 1700003600000;
    q[0].n_matchers = 3;
    q[0].matchers = q0m;
    q[0].hints = &hints;
    q[1].start_timestamp_ms = -5;
    q[1].end_timestamp_ms = 0;
    q[1].n_matchers = 2;
    q[1].matchers = q1m;
    Prometheus__Query *qs[] = {&q[0], &q[1]};
    Prometheus__ReadRequest__ResponseType types[] = {
        PROMETHEUS__READ_REQUEST__RESPONSE_TYPE__STREAMED_XOR_CHUNKS,
        PROMETHEUS__READ_REQUEST__RESPONSE_TYPE__SAMPLES};
    Prometheus__ReadRequest req = PROMETHEUS__READ_REQUEST__INIT;
    req.n_queries = 2;
    req.queries = qs;
    req.n_accepted_response_types = 2;
    req.accepted_response_types = types;
    size_t len, zlen;
    uint8_t *pb = pack_request(&req, &len);
    void *z = snappy(pb, len, &zlen);
    write_seed("request_snappy", 1, z, zlen);
    write_seed("request_raw", 0, pb, len);

    struct wire_read_request r;
    wire_read_request_init(&r);
    char err[256] = "x";
    enum wire_read_err e = wire_read_decode_request(z, zlen, NULL, &r, err, sizeof err);
    CHECK(e == WIRE_READ_OK && err[0] == '\0', "protobuf-c request: %s", err);
    CHECK(r.nqueries == 2 && r.response_type == WIRE_READ_STREAMED_XOR_CHUNKS &&
              r.decompressed_bytes == len,
          "queries %zu type %d", r.nqueries, (int)r.response_type);
    if (r.nqueries == 2) {
        CHECK(r.queries[0].start_ms == 1700000000000 && r.queries[0].end_ms == 1700003600000 &&
                  r.queries[0].nmatchers == 3,
              "query 0");
        CHECK(matcher_is(&r.queries[0].matchers[0], MATCH_EQ, "__name__", "up", 2) &&
                  matcher_is(&r.queries[0].matchers[1], MATCH_NEQ, "job", "node", 4) &&
                  matcher_is(&r.queries[0].matchers[2], MATCH_RE, "instance", "10\\..*", 6),
              "query 0 matchers");
        CHECK(r.queries[1].start_ms == -5 && r.queries[1].end_ms == 0 &&
                  r.queries[1].nmatchers == 2 &&
                  matcher_is(&r.queries[1].matchers[0], MATCH_NRE, "env", "dev|test", 8) &&
                  matcher_is(&r.queries[1].matchers[1], MATCH_EQ, "__name__", "x:yhat", 6),
              "query 1");
    }

    /* the same from the raw variant; SAMPLES first in the list */
    types[0] = PROMETHEUS__READ_REQUEST__RESPONSE_TYPE__SAMPLES;
    types[1] = PROMETHEUS__READ_REQUEST__RESPONSE_TYPE__STREAMED_XOR_CHUNKS;
    free(pb);
    pb = pack_request(&req, &len);
    e = wire_read_decode_request_raw(pb, len, NULL, &r, err, sizeof err);
    CHECK(e == WIRE_READ_OK && r.response_type == WIRE_READ_SAMPLES && r.nqueries == 2,
          "raw request, SAMPLES first: %s", err);

    /* no list at all: SAMPLES (Prometheus 2.42's client) */
    req.n_accepted_response_types = 0;
    free(pb);
    pb = pack_request(&req, &len);
    e = wire_read_decode_request_raw(pb, len, NULL, &r, err, sizeof err);
    CHECK(e == WIRE_READ_OK && r.response_type == WIRE_READ_SAMPLES, "no types: %s", err);

    /* unpacked response types by hand, with unknown values and fields */
    struct tb b = {0}, qb = {0}, mb = {0};
    tb_tag(&mb, 1, 0);
    tb_varint(&mb, 2);
    tb_str(&mb, 2, "a");
    tb_bytes(&mb, 3, "x\0y", 3); /* NUL inside a value */
    tb_tag(&mb, 9, 5);           /* unknown fixed32 */
    tb_raw(&mb, "abcd", 4);
    tb_tag(&qb, 3, 2);
    tb_varint(&qb, mb.len);
    tb_raw(&qb, mb.p, mb.len);
    tb_tag(&qb, 2, 0);
    tb_varint(&qb, 99);
    tb_tag(&qb, 15, 1); /* unknown fixed64 */
    tb_raw(&qb, "12345678", 8);
    tb_tag(&b, 2, 0);
    tb_varint(&b, 7); /* unsupported type, skipped in negotiation */
    tb_msg(&b, 1, &qb);
    tb_tag(&b, 2, 0);
    tb_varint(&b, 1);
    tb_tag(&b, 2, 0);
    tb_varint(&b, 0);
    tb_str(&b, 100, "unknown field");
    e = wire_read_decode_request_raw(b.p, b.len, NULL, &r, err, sizeof err);
    CHECK(e == WIRE_READ_OK && r.response_type == WIRE_READ_STREAMED_XOR_CHUNKS &&
              r.nqueries == 1 && r.queries[0].nmatchers == 1 && r.queries[0].end_ms == 99 &&
              matcher_is(&r.queries[0].matchers[0], MATCH_RE, "a", "x\0y", 3),
          "hand-made request with unpacked types: %s", err);
    write_seed("request_unpacked", 0, b.p, b.len);

    /* an empty body is a request without queries */
    e = wire_read_decode_request_raw("", 0, NULL, &r, err, sizeof err);
    CHECK(e == WIRE_READ_OK && r.nqueries == 0 && r.queries == NULL, "empty request: %s", err);

    /* a matcher without value: empty value, valid pointer */
    tb_free(&b);
    tb_free(&qb);
    tb_free(&mb);
    tb_str(&mb, 2, "job");
    tb_msg(&qb, 3, &mb);
    tb_msg(&b, 1, &qb);
    e = wire_read_decode_request_raw(b.p, b.len, NULL, &r, err, sizeof err);
    CHECK(e == WIRE_READ_OK && r.nqueries == 1 && r.queries[0].nmatchers == 1 &&
              r.queries[0].matchers[0].value_len == 0 && r.queries[0].matchers[0].value != NULL,
          "matcher without value: %s", err);

    wire_read_request_cleanup(&r);
    wire_read_request_cleanup(NULL);
    tb_free(&b);
    tb_free(&qb);
    tb_free(&mb);
    free(pb);
    free(z);
}

struct bad_request {
    const char *name;
    enum wire_read_err want;
    const char *needle; /* expected in the error line */
    struct tb body;     /* raw protobuf */
};

static void expect_bad(const char *name, const void *body, size_t len, bool snappy_body,
                       const struct wire_read_request_limits *lim, enum wire_read_err want,
                       const char *needle)
{
    struct wire_read_request r;
    wire_read_request_init(&r);
    /* a previous good result, query{matcher{name="a"}}, must survive a failure */
    static const uint8_t good[] = {0x0a, 0x05, 0x1a, 0x03, 0x12, 0x01, 'a'};
    struct wire_read_request_limits relaxed;
    wire_read_request_limits_default(&relaxed);
    char err[256];
    CHECK(wire_read_decode_request_raw(good, sizeof good, &relaxed, &r, err, sizeof err) ==
              WIRE_READ_OK,
          "%s: setup: %s", name, err);
    struct wire_read_query *before = r.queries;
    enum wire_read_err e = snappy_body
                               ? wire_read_decode_request(body, len, lim, &r, err, sizeof err)
                               : wire_read_decode_request_raw(body, len, lim, &r, err, sizeof err);
    CHECK(e == want, "%s: got %s want %s (%s)", name, wire_read_err_reason(e),
          wire_read_err_reason(want), err);
    CHECK(needle == NULL || strstr(err, needle) != NULL, "%s: error line '%s' lacks '%s'", name,
          err, needle);
    CHECK(strchr(err, '\n') == NULL && err[0] != '\0', "%s: error line", name);
    CHECK(r.queries == before && r.nqueries == 1, "%s: output touched on failure", name);
    wire_read_request_cleanup(&r);
}

static void test_request_malformed(void)
{
    struct wire_read_request_limits lim;
    wire_read_request_limits_default(&lim);
    lim.max_queries = 2;
    lim.max_matchers = 2;
    lim.max_name_len = 8;
    lim.max_value_len = 16;
    struct tb b = {0}, q = {0}, m = {0};

    /* snappy-level problems */
    static const uint8_t corrupt[] = {0x10, 0x00, 0x01, 0x02, 0x03};
    expect_bad("corrupt snappy", corrupt, sizeof corrupt, true, &lim, WIRE_READ_ERR_SNAPPY, NULL);
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
    expect_bad("declared 4 GiB", huge, sizeof huge, true, &lim, WIRE_READ_ERR_TOO_LARGE,
               "declared length");
    size_t zlen;
    tb_str(&m, 2, "job");
    tb_msg(&q, 3, &m);
    tb_msg(&b, 1, &q);
    uint8_t *z = snappy(b.p, b.len, &zlen);
    expect_bad("truncated snappy", z, zlen - 1, true, &lim, WIRE_READ_ERR_SNAPPY, NULL);
    struct wire_read_request_limits tiny = lim;
    tiny.max_body_bytes = zlen - 1;
    expect_bad("body over limit", z, zlen, true, &tiny, WIRE_READ_ERR_TOO_LARGE, "exceeds");
    tiny = lim;
    tiny.max_decompressed_bytes = b.len - 1;
    expect_bad("decompressed over limit", z, zlen, true, &tiny, WIRE_READ_ERR_TOO_LARGE, NULL);
    expect_bad("raw over limit", b.p, b.len, false, &tiny, WIRE_READ_ERR_TOO_LARGE, NULL);
    free(z);

    /* truncated protobuf at every length (except 0 and the full one) */
    for (size_t k = 1; k < b.len; k++) {
        char name[64];
        snprintf(name, sizeof name, "truncated to %zu of %zu", k, b.len);
        expect_bad(name, b.p, k, false, &lim, WIRE_READ_ERR_PROTOBUF, "protobuf");
    }
    tb_free(&b);

    /* too many queries */
    for (int i = 0; i < 3; i++)
        tb_msg(&b, 1, &q);
    expect_bad("too many queries", b.p, b.len, false, &lim, WIRE_READ_ERR_TOO_MANY_QUERIES,
               "more than 2 queries");
    write_seed("request_many_queries", 8, b.p, b.len);
    tb_free(&b);
    tb_free(&q);

    /* too many matchers */
    for (int i = 0; i < 3; i++)
        tb_msg(&q, 3, &m);
    tb_msg(&b, 1, &q);
    expect_bad("too many matchers", b.p, b.len, false, &lim, WIRE_READ_ERR_TOO_MANY_MATCHERS,
               "query 0: more than 2 matchers");
    tb_free(&b);
    tb_free(&q);
    tb_free(&m);

    /* matcher content */
    static const struct {
        const char *name;
        uint64_t type;
        const char *lname, *value;
        const char *needle;
    } mcases[] = {
        {"unknown matcher type", 4, "job", "x", "unknown matcher type 4"},
        {"negative matcher type", UINT64_MAX, "job", "x", "unknown matcher type -1"},
        {"empty matcher name", 0, "", "x", "empty label name"},
        {"name too long", 0, "123456789", "x", "label name of 9 bytes"},
        {"value too long", 2, "job", "0123456789abcdefg", "value of 17 bytes"},
    };
    for (size_t i = 0; i < sizeof mcases / sizeof mcases[0]; i++) {
        tb_tag(&m, 1, 0);
        tb_varint(&m, mcases[i].type);
        if (mcases[i].lname[0])
            tb_str(&m, 2, mcases[i].lname);
        tb_str(&m, 3, mcases[i].value);
        tb_msg(&q, 3, &m);
        tb_msg(&b, 1, &q);
        expect_bad(mcases[i].name, b.p, b.len, false, &lim, WIRE_READ_ERR_INVALID_MATCHER,
                   mcases[i].needle);
        tb_free(&b);
        tb_free(&q);
        tb_free(&m);
    }

    /* response types */
    tb_bytes(&b, 2, "\x05\x07", 2);
    expect_bad("no supported response type", b.p, b.len, false, &lim, WIRE_READ_ERR_RESPONSE_TYPE,
               "server does not support any of the requested response types: [5 7]");
    write_seed("request_bad_types", 0, b.p, b.len);
    tb_free(&b);
    tb_bytes(&b, 2, "\x80", 1);
    expect_bad("truncated packed types", b.p, b.len, false, &lim, WIRE_READ_ERR_PROTOBUF,
               "accepted_response_types");
    tb_free(&b);
    tb_tag(&b, 2, 1);
    tb_raw(&b, "12345678", 8);
    expect_bad("response types as fixed64", b.p, b.len, false, &lim, WIRE_READ_ERR_PROTOBUF,
               "field 2 has wire type fixed64");
    tb_free(&b);

    /* wire types, groups and structure */
    tb_tag(&b, 1, 0);
    tb_varint(&b, 1);
    expect_bad("queries as varint", b.p, b.len, false, &lim, WIRE_READ_ERR_PROTOBUF,
               "ReadRequest field 1 has wire type varint");
    tb_free(&b);
    tb_tag(&q, 1, 2);
    tb_varint(&q, 0);
    tb_msg(&b, 1, &q);
    expect_bad("start as bytes", b.p, b.len, false, &lim, WIRE_READ_ERR_PROTOBUF, "Query field 1");
    tb_free(&b);
    tb_free(&q);
    tb_tag(&m, 2, 0);
    tb_varint(&m, 3);
    tb_msg(&q, 3, &m);
    tb_msg(&b, 1, &q);
    expect_bad("matcher name as varint", b.p, b.len, false, &lim, WIRE_READ_ERR_PROTOBUF,
               "LabelMatcher field 2");
    tb_free(&b);
    tb_free(&q);
    tb_free(&m);
    struct tb h = {0};
    tb_tag(&h, 2, 0); /* func as varint */
    tb_varint(&h, 1);
    tb_msg(&q, 4, &h);
    tb_msg(&b, 1, &q);
    expect_bad("hints.func as varint", b.p, b.len, false, &lim, WIRE_READ_ERR_PROTOBUF,
               "ReadHints field 2");
    tb_free(&b);
    tb_free(&q);
    tb_free(&h);
    tb_tag(&b, 5, 3); /* group */
    expect_bad("group", b.p, b.len, false, &lim, WIRE_READ_ERR_PROTOBUF, "group");
    tb_free(&b);
    tb_tag(&b, 5, 7);
    expect_bad("wire type 7", b.p, b.len, false, &lim, WIRE_READ_ERR_PROTOBUF, "wire type");
    tb_free(&b);
    tb_tag(&b, 1, 2);
    tb_varint(&b, 50);
    tb_raw(&b, "abc", 3);
    expect_bad("length past end", b.p, b.len, false, &lim, WIRE_READ_ERR_PROTOBUF,
               "length past end");
    tb_free(&b);
    static const uint8_t field0[] = {0x02, 0x00};
    expect_bad("field number 0", field0, sizeof field0, false, &lim, WIRE_READ_ERR_PROTOBUF,
               "invalid field number");
}

/* Client request encoder ---------------------------------------------------- */

static void test_request_encode(void)
{
    struct wire_read_matcher m[] = {
        {MATCH_EQ, 8, 2, "__name__", "up"},
        {MATCH_NRE, 3, 9, "job", "node|prom"},
        {MATCH_NEQ, 1, 3, "a", "b\0c"},
        {MATCH_RE, 1, 0, "e", ""},
    };
    struct wire_read_query q[] = {
        {1700000000000, 1700000600000, m, 4},
        {-1000, 0, m + 1, 1},
        {0, 5, NULL, 0},
    };
    enum wire_read_type types[] = {WIRE_READ_STREAMED_XOR_CHUNKS, WIRE_READ_SAMPLES};
    void *buf = NULL;
    size_t cap = 0, len = 0;
    char err[128];
    CHECK(wire_read_encode_request(q, 3, types, 2, &buf, &cap, &len, err, sizeof err) == 0,
          "encode: %s", err);
    size_t pblen;
    uint8_t *pb = unsnappy(buf, len, &pblen);
    Prometheus__ReadRequest *r = pb ? prometheus__read_request__unpack(NULL, pblen, pb) : NULL;
    CHECK(r != NULL, "protobuf-c cannot unpack our request");
    if (r != NULL) {
        CHECK(r->n_queries == 3 && r->n_accepted_response_types == 2 &&
                  r->accepted_response_types[0] == 1 && r->accepted_response_types[1] == 0,
              "request shape");
        if (r->n_queries == 3) {
            CHECK(r->queries[0]->start_timestamp_ms == 1700000000000 &&
                      r->queries[0]->end_timestamp_ms == 1700000600000 &&
                      r->queries[0]->n_matchers == 4 && r->queries[0]->matchers[1]->type == 3 &&
                      strcmp(r->queries[0]->matchers[1]->value, "node|prom") == 0 &&
                      strcmp(r->queries[0]->matchers[0]->name, "__name__") == 0,
                  "query 0 via protobuf-c");
            CHECK(r->queries[1]->start_timestamp_ms == -1000 && r->queries[2]->n_matchers == 0 &&
                      r->queries[2]->end_timestamp_ms == 5,
                  "queries 1, 2 via protobuf-c");
        }
        prometheus__read_request__free_unpacked(r, NULL);
    }
    /* and through our own server-side decoder (NUL bytes kept) */
    struct wire_read_request d;
    wire_read_request_init(&d);
    CHECK(wire_read_decode_request(buf, len, NULL, &d, err, sizeof err) == WIRE_READ_OK &&
              d.nqueries == 3 && d.response_type == WIRE_READ_STREAMED_XOR_CHUNKS,
          "round trip: %s", err);
    if (d.nqueries == 3) {
        CHECK(d.queries[0].nmatchers == 4 &&
                  matcher_is(&d.queries[0].matchers[2], MATCH_NEQ, "a", "b\0c", 3) &&
                  matcher_is(&d.queries[0].matchers[3], MATCH_RE, "e", "", 0) &&
                  d.queries[1].start_ms == -1000 && d.queries[2].nmatchers == 0,
              "round trip content");
    }
    wire_read_request_cleanup(&d);
    free(pb);

    struct wire_read_matcher badm = {(enum matcher_op)7, 1, 1, "a", "b"};
    struct wire_read_query badq = {0, 1, &badm, 1};
    CHECK(wire_read_encode_request(&badq, 1, NULL, 0, &buf, &cap, &len, err, sizeof err) == -1 &&
              strstr(err, "invalid matcher type") != NULL,
          "bad op accepted: %s", err);
    enum wire_read_type badt = (enum wire_read_type)3;
    CHECK(wire_read_encode_request(q, 1, &badt, 1, &buf, &cap, &len, err, sizeof err) == -1,
          "bad response type accepted");
    CHECK(wire_read_encode_request(NULL, 0, NULL, 0, &buf, &cap, &len, err, sizeof err) == 0,
          "empty request: %s", err);
    free(buf);
}

/* Responses: SAMPLES ---------------------------------------------------------- */

/* What the decoder's callback saw. */
struct got_series {
    size_t q;
    char labels[256];
    size_t n;
    struct sample *s;
};
struct got {
    size_t n;
    struct got_series series[64];
    int abort_after; /* stop after this many series (0 = never) */
};

static int collect(void *ctx, size_t qi, const struct label *labels, size_t nlabels,
                   const struct sample *samples, size_t ns)
{
    struct got *g = ctx;
    if (g->n == 64)
        return 1;
    struct got_series *s = &g->series[g->n++];
    s->q = qi;
    labels_format(labels, nlabels, s->labels, sizeof s->labels);
    s->n = ns;
    s->s = malloc((ns + 1) * sizeof *s->s);
    if (ns)
        memcpy(s->s, samples, ns * sizeof *samples);
    return g->abort_after && (int)g->n >= g->abort_after;
}

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->series[i].s);
    memset(g, 0, sizeof *g);
}

static const struct label lab_a[] = {{"__name__", "up", 8, 2}, {"job", "node", 3, 4}};
static const struct label lab_b[] = {{"__name__", "x:yhat", 8, 6}, {"env", "dev\0x", 3, 5}};

static const struct wire_read_query all_time[3] = {{INT64_MIN, INT64_MAX, NULL, 0},
                                                   {INT64_MIN, INT64_MAX, NULL, 0},
                                                   {INT64_MIN, INT64_MAX, NULL, 0}};

static void test_samples_response(void)
{
    struct sample sa[] = {{1000, 1.0}, {2000, -0.0}, {3000, 0.0}, {4000, sample_stale_value()}};
    struct sample sb[] = {{-5, INFINITY}, {0, 2.5}};
    struct wire_read_response *r = wire_read_response_create(1 << 20, 1 << 20);
    wire_read_response_begin(r, WIRE_READ_SAMPLES, 3);
    CHECK(wire_read_response_add_series(r, 0, lab_a, 2, sa, 4) == WIRE_READ_OK, "add a");
    CHECK(wire_read_response_add_series(r, 0, lab_b, 2, NULL, 0) == WIRE_READ_OK, "add empty b");
    CHECK(wire_read_response_add_series(r, 2, lab_b, 2, sb, 2) == WIRE_READ_OK, "add b to q2");
    CHECK(wire_read_response_add_series(r, 1, lab_a, 2, sa, 1) == WIRE_READ_ERR_INVALID_SERIES,
          "decreasing query index accepted");
    const void *body;
    size_t blen;
    CHECK(wire_read_response_finish(r, &body, &blen) == WIRE_READ_OK, "finish");
    write_seed("samples_response", 3, body, blen);

    size_t pblen;
    uint8_t *pb = unsnappy(body, blen, &pblen);
    CHECK(pb != NULL && pblen == wire_read_response_bytes(r), "snappy body");
    if (pb != NULL)
        write_seed("samples_pb", 2, pb, pblen);
    Prometheus__ReadResponse *rr = pb ? prometheus__read_response__unpack(NULL, pblen, pb) : NULL;
    CHECK(rr != NULL, "protobuf-c cannot unpack our ReadResponse");
    if (rr != NULL) {
        CHECK(rr->n_results == 3, "results %zu", rr->n_results);
        if (rr->n_results == 3) {
            CHECK(rr->results[0]->n_timeseries == 2 && rr->results[1]->n_timeseries == 0 &&
                      rr->results[2]->n_timeseries == 1,
                  "series per result");
            Prometheus__TimeSeries *ts = rr->results[0]->timeseries[0];
            CHECK(ts->n_labels == 2 && strcmp(ts->labels[0]->name, "__name__") == 0 &&
                      strcmp(ts->labels[1]->value, "node") == 0 && ts->n_samples == 4,
                  "series a via protobuf-c");
            for (size_t i = 0; i < ts->n_samples && i < 4; i++)
                CHECK(ts->samples[i]->timestamp == sa[i].t &&
                          bits(ts->samples[i]->value) == bits(sa[i].v),
                      "sample %zu via protobuf-c", i);
            ts = rr->results[2]->timeseries[0];
            CHECK(ts->n_samples == 2 && ts->samples[0]->timestamp == -5 &&
                      ts->samples[0]->value == INFINITY && ts->samples[1]->timestamp == 0,
                  "series b via protobuf-c");
        }
        prometheus__read_response__free_unpacked(rr, NULL);
    }
    free(pb);

    struct got g = {0};
    struct wire_read_stats st;
    char err[256];
    enum wire_read_err e = wire_read_decode_response(body, blen, WIRE_READ_SAMPLES, all_time, 3,
                                                     NULL, collect, &g, &st, err, sizeof err);
    CHECK(e == WIRE_READ_OK && g.n == 3 && st.results == 3 && st.series == 3 && st.samples == 6,
          "our decoder: %s (series %zu)", err, g.n);
    if (g.n == 3) {
        CHECK(g.series[0].q == 0 && strcmp(g.series[0].labels, "up{job=\"node\"}") == 0 &&
                  g.series[0].n == 4,
              "decoded a: %s", g.series[0].labels);
        for (size_t i = 0; i < 4 && i < g.series[0].n; i++)
            CHECK(g.series[0].s[i].t == sa[i].t && bits(g.series[0].s[i].v) == bits(sa[i].v),
                  "decoded sample %zu", i);
        CHECK(g.series[1].q == 0 && g.series[1].n == 0, "decoded empty series");
        CHECK(g.series[2].q == 2 && g.series[2].n == 2 && g.series[2].s[0].t == -5, "decoded b");
    }
    got_free(&g);

    /* clipping to the query range */
    struct wire_read_query narrow[3] = {{2000, 3000, NULL, 0}, {0, 0, NULL, 0}, {0, 10, NULL, 0}};
    e = wire_read_decode_response(body, blen, WIRE_READ_SAMPLES, narrow, 3, NULL, collect, &g, &st,
                                  err, sizeof err);
    CHECK(e == WIRE_READ_OK && g.n == 3 && g.series[0].n == 2 && g.series[0].s[0].t == 2000 &&
              g.series[2].n == 1 && g.series[2].s[0].t == 0 && st.out_of_range == 3,
          "clipped: %s, out of range %" PRIu64, err, st.out_of_range);
    got_free(&g);

    /* result count must match the query count */
    e = wire_read_decode_response(body, blen, WIRE_READ_SAMPLES, all_time, 2, NULL, collect, &g,
                                  NULL, err, sizeof err);
    CHECK(e == WIRE_READ_ERR_PROTOBUF && strstr(err, "more results") != NULL,
          "3 results for 2 queries: %s", err);
    got_free(&g);

    /* the callback can stop the decode */
    g.abort_after = 1;
    e = wire_read_decode_response(body, blen, WIRE_READ_SAMPLES, all_time, 3, NULL, collect, &g,
                                  NULL, err, sizeof err);
    CHECK(e == WIRE_READ_ERR_ABORTED && g.n == 1, "abort: %s", wire_read_err_reason(e));
    got_free(&g);

    /* errors in building: unsorted labels, unsorted samples, byte cap */
    struct label unsorted[] = {lab_a[1], lab_a[0]};
    wire_read_response_begin(r, WIRE_READ_SAMPLES, 1);
    CHECK(wire_read_response_add_series(r, 0, unsorted, 2, sa, 1) == WIRE_READ_ERR_INVALID_SERIES,
          "unsorted labels accepted");
    CHECK(strstr(wire_read_response_error(r), "sorted") != NULL, "error text '%s'",
          wire_read_response_error(r));
    struct sample back[] = {{2, 1}, {2, 1}};
    CHECK(wire_read_response_add_series(r, 0, lab_a, 2, back, 2) == WIRE_READ_ERR_INVALID_SERIES,
          "equal timestamps accepted");
    CHECK(wire_read_response_add_series(r, 1, lab_a, 2, sa, 1) == WIRE_READ_ERR_INVALID_SERIES,
          "query index past nqueries accepted");
    wire_read_response_destroy(r);

    /* the cap: fail cleanly, and the response stays as before the call */
    r = wire_read_response_create(200, 1 << 20);
    wire_read_response_begin(r, WIRE_READ_SAMPLES, 2);
    size_t added = 0;
    enum wire_read_err ae = WIRE_READ_OK;
    while ((ae = wire_read_response_add_series(r, 0, lab_a, 2, sa, 4)) == WIRE_READ_OK)
        added++;
    CHECK(ae == WIRE_READ_ERR_LIMIT && added > 0 && wire_read_response_bytes(r) <= 200,
          "cap: %s after %zu series, %zu bytes", wire_read_err_reason(ae), added,
          wire_read_response_bytes(r));
    CHECK(wire_read_response_finish(r, &body, &blen) == WIRE_READ_OK, "finish after cap");
    e = wire_read_decode_response(body, blen, WIRE_READ_SAMPLES, all_time, 2, NULL, collect, &g,
                                  NULL, err, sizeof err);
    CHECK(e == WIRE_READ_OK && g.n == added, "after a failed add: %s, %zu series of %zu", err, g.n,
          added);
    got_free(&g);

    /* an empty response still answers every query */
    wire_read_response_begin(r, WIRE_READ_SAMPLES, 2);
    CHECK(wire_read_response_finish(r, &body, &blen) == WIRE_READ_OK, "finish empty");
    e = wire_read_decode_response(body, blen, WIRE_READ_SAMPLES, all_time, 2, NULL, collect, &g,
                                  &st, err, sizeof err);
    CHECK(e == WIRE_READ_OK && g.n == 0 && st.results == 2, "empty response: %s", err);
    wire_read_response_begin(r, WIRE_READ_SAMPLES, 0);
    CHECK(wire_read_response_finish(r, &body, &blen) == WIRE_READ_OK && blen == 1 &&
              ((const uint8_t *)body)[0] == 0,
          "no queries: the 1-byte body 00 (%zu bytes)", blen);
    wire_read_response_destroy(r);
    wire_read_response_destroy(NULL);
}

static void test_samples_decode_edges(void)
{
    /* hand-made: unsorted labels, empty values, histograms, exemplars,
     * unsorted samples with a duplicate, unknown fields */
    struct tb ts = {0}, l = {0}, s = {0}, qr = {0}, rr = {0};
    tb_str(&l, 1, "job");
    tb_str(&l, 2, "x");
    tb_msg(&ts, 1, &l);
    tb_free(&l);
    tb_str(&l, 1, "empty");
    tb_msg(&ts, 1, &l); /* no value: dropped */
    tb_free(&l);
    tb_str(&l, 1, "__name__");
    tb_str(&l, 2, "m");
    tb_msg(&ts, 1, &l);
    tb_free(&l);
    const int64_t times[] = {30, 10, 20, 10};
    for (int i = 0; i < 4; i++) {
        tb_tag(&s, 2, 0);
        tb_varint(&s, (uint64_t)times[i]);
        tb_tag(&s, 1, 1);
        uint64_t b = bits((double)i);
        uint8_t le[8];
        for (int k = 0; k < 8; k++)
            le[k] = (uint8_t)(b >> (8 * k));
        tb_raw(&s, le, 8);
        tb_msg(&ts, 2, &s);
        tb_free(&s);
    }
    tb_str(&ts, 3, "exemplar bytes");
    tb_str(&ts, 4, "histogram bytes");
    tb_str(&ts, 4, "histogram bytes");
    tb_msg(&qr, 1, &ts);
    tb_str(&qr, 7, "unknown");
    tb_msg(&rr, 1, &qr);
    size_t zlen;
    void *z = snappy(rr.p, rr.len, &zlen);
    struct got g = {0};
    struct wire_read_stats st;
    char err[256];
    enum wire_read_err e = wire_read_decode_response(z, zlen, WIRE_READ_SAMPLES, all_time, 1, NULL,
                                                     collect, &g, &st, err, sizeof err);
    CHECK(e == WIRE_READ_OK && g.n == 1, "hand-made SAMPLES: %s", err);
    if (g.n == 1) {
        CHECK(strcmp(g.series[0].labels, "m{job=\"x\"}") == 0, "labels %s", g.series[0].labels);
        CHECK(g.series[0].n == 3 && g.series[0].s[0].t == 10 && g.series[0].s[0].v == 1.0 &&
                  g.series[0].s[1].t == 20 && g.series[0].s[2].t == 30,
              "sorted, first of duplicates kept");
        CHECK(st.duplicates == 1 && st.skipped_histograms == 2,
              "stats dup %" PRIu64 " hist %" PRIu64, st.duplicates, st.skipped_histograms);
    }
    got_free(&g);
    free(z);

    /* limits */
    struct wire_read_response_limits lim;
    wire_read_response_limits_default(&lim);
    lim.max_series_samples = 3;
    z = snappy(rr.p, rr.len, &zlen);
    e = wire_read_decode_response(z, zlen, WIRE_READ_SAMPLES, all_time, 1, &lim, collect, &g, NULL,
                                  err, sizeof err);
    CHECK(e == WIRE_READ_ERR_LIMIT && strstr(err, "more than 3 samples") != NULL,
          "series samples cap: %s", err);
    wire_read_response_limits_default(&lim);
    lim.max_labels = 1;
    e = wire_read_decode_response(z, zlen, WIRE_READ_SAMPLES, all_time, 1, &lim, collect, &g, NULL,
                                  err, sizeof err);
    CHECK(e == WIRE_READ_ERR_LIMIT && strstr(err, "more than 1 labels") != NULL, "labels cap: %s",
          err);
    wire_read_response_limits_default(&lim);
    lim.max_label_name_len = 3;
    e = wire_read_decode_response(z, zlen, WIRE_READ_SAMPLES, all_time, 1, &lim, collect, &g, NULL,
                                  err, sizeof err);
    CHECK(e == WIRE_READ_ERR_LIMIT, "label name cap: %s", err);
    wire_read_response_limits_default(&lim);
    lim.max_label_value_len = 0;
    e = wire_read_decode_response(z, zlen, WIRE_READ_SAMPLES, all_time, 1, &lim, collect, &g, NULL,
                                  err, sizeof err);
    CHECK(e == WIRE_READ_ERR_LIMIT && strstr(err, "value of 1 bytes exceeds limit 0") != NULL,
          "label value cap: %s", err);
    wire_read_response_limits_default(&lim);
    lim.max_decompressed_bytes = rr.len - 1;
    e = wire_read_decode_response(z, zlen, WIRE_READ_SAMPLES, all_time, 1, &lim, collect, &g, NULL,
                                  err, sizeof err);
    CHECK(e == WIRE_READ_ERR_TOO_LARGE, "decompressed cap: %s", err);
    wire_read_response_limits_default(&lim);
    lim.max_body_bytes = zlen - 1;
    e = wire_read_decode_response(z, zlen, WIRE_READ_SAMPLES, all_time, 1, &lim, collect, &g, NULL,
                                  err, sizeof err);
    CHECK(e == WIRE_READ_ERR_TOO_LARGE, "body cap: %s", err);
    e = wire_read_decode_response(z, zlen - 1, WIRE_READ_SAMPLES, all_time, 1, NULL, collect, &g,
                                  NULL, err, sizeof err);
    CHECK(e == WIRE_READ_ERR_SNAPPY, "truncated snappy: %s", err);
    CHECK(g.n == 0, "series delivered from failed decodes");
    free(z);

    /* duplicate label names are an invalid series */
    tb_free(&ts);
    tb_free(&qr);
    tb_free(&rr);
    for (int i = 0; i < 2; i++) {
        tb_str(&l, 1, "job");
        tb_str(&l, 2, i ? "b\r\nc" : "a"); /* the error line must stay one line */
        tb_msg(&ts, 1, &l);
        tb_free(&l);
    }
    tb_msg(&qr, 1, &ts);
    tb_msg(&rr, 1, &qr);
    z = snappy(rr.p, rr.len, &zlen);
    e = wire_read_decode_response(z, zlen, WIRE_READ_SAMPLES, all_time, 1, NULL, collect, &g, NULL,
                                  err, sizeof err);
    CHECK(e == WIRE_READ_ERR_INVALID_SERIES && strstr(err, "duplicate") != NULL &&
              strpbrk(err, "\r\n") == NULL,
          "duplicate names: %s", err);
    free(z);
    /* a sample's value with the wrong wire type */
    tb_free(&ts);
    tb_free(&qr);
    tb_free(&rr);
    tb_str(&l, 1, "a");
    tb_str(&l, 2, "b");
    tb_msg(&ts, 1, &l);
    tb_tag(&s, 1, 0);
    tb_varint(&s, 1);
    tb_msg(&ts, 2, &s);
    tb_msg(&qr, 1, &ts);
    tb_msg(&rr, 1, &qr);
    z = snappy(rr.p, rr.len, &zlen);
    e = wire_read_decode_response(z, zlen, WIRE_READ_SAMPLES, all_time, 1, NULL, collect, &g, NULL,
                                  err, sizeof err);
    CHECK(e == WIRE_READ_ERR_PROTOBUF && strstr(err, "Sample field 1") != NULL,
          "value as varint: %s", err);
    free(z);
    got_free(&g);
    tb_free(&ts);
    tb_free(&qr);
    tb_free(&rr);
    tb_free(&l);
    tb_free(&s);
}

/* Responses: streamed --------------------------------------------------------- */

/* Walk frames with protobuf-c (independent of our decoder). Returns the
 * number of frames, or -1 when something does not parse. */
static int pb_frames(const uint8_t *p, size_t len, size_t *nchunks, size_t *nsamples,
                     int64_t *last_qi)
{
    const uint8_t *end = p + len;
    int frames = 0;
    *nchunks = *nsamples = 0;
    while (p < end) {
        uint64_t n = 0;
        unsigned shift = 0;
        while (p < end && (*p & 0x80)) {
            n |= (uint64_t)(*p++ & 0x7f) << shift;
            shift += 7;
        }
        if (p >= end)
            return -1;
        n |= (uint64_t)*p++ << shift;
        if ((size_t)(end - p) < 4 + n)
            return -1;
        uint32_t c = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        p += 4;
        if (crc32c(p, n) != c)
            return -1;
        Prometheus__ChunkedReadResponse *m = prometheus__chunked_read_response__unpack(NULL, n, p);
        if (m == NULL || m->n_chunked_series != 1)
            return -1;
        *last_qi = m->query_index;
        for (size_t i = 0; i < m->chunked_series[0]->n_chunks; i++) {
            Prometheus__Chunk *ch = m->chunked_series[0]->chunks[i];
            if (ch->type != PROMETHEUS__CHUNK__ENCODING__XOR || ch->data.len < 2)
                return -1;
            long k = wire_read_xor_count(ch->data.data, ch->data.len);
            if (k > WIRE_READ_CHUNK_SAMPLES)
                return -1;
            *nsamples += (size_t)k;
            (*nchunks)++;
        }
        prometheus__chunked_read_response__free_unpacked(m, NULL);
        p += n;
        frames++;
    }
    return frames;
}

static void test_streamed_response(void)
{
    enum { N = 1000 };
    struct sample *s = malloc(N * sizeof *s);
    for (int i = 0; i < N; i++)
        s[i] = (struct sample){1700000000000 + 15000 * i + (i % 5), i % 10 ? (double)i / 3 : 7};
    s[500].v = sample_stale_value();
    struct wire_read_response *r = wire_read_response_create(1 << 20, 1 << 20);
    wire_read_response_begin(r, WIRE_READ_STREAMED_XOR_CHUNKS, 3);
    CHECK(wire_read_response_add_series(r, 0, lab_a, 2, s, 121) == WIRE_READ_OK, "add 121");
    CHECK(wire_read_response_add_series(r, 0, lab_b, 2, NULL, 0) == WIRE_READ_OK, "add empty");
    CHECK(wire_read_response_add_series(r, 2, lab_b, 2, s, N) == WIRE_READ_OK, "add 1000");
    const void *body;
    size_t blen, nchunks, nsamples;
    int64_t qi = -1;
    CHECK(wire_read_response_finish(r, &body, &blen) == WIRE_READ_OK, "finish");
    CHECK(blen == wire_read_response_bytes(r), "bytes %zu vs %zu", blen,
          wire_read_response_bytes(r));
    uint8_t *copy = malloc(blen);
    memcpy(copy, body, blen);
    int frames = pb_frames(copy, blen, &nchunks, &nsamples, &qi);
    CHECK(frames == 2 && nchunks == 2 + 9 && nsamples == 121 + N && qi == 2,
          "protobuf-c sees %d frames, %zu chunks, %zu samples, last query %" PRId64, frames,
          nchunks, nsamples, qi);
    write_seed("streamed_response", 4, body, blen < 400 ? blen : 400);

    /* the first frame by hand: query_index 0 is omitted, 121 → chunks 120 + 1 */
    const uint8_t *p = body;
    size_t flen = 0, k = 0;
    for (unsigned shift = 0; p[k] & 0x80; shift += 7)
        flen |= (size_t)(p[k++] & 0x7f) << shift;
    flen |= (size_t)p[k] << (7 * k);
    k++;
    Prometheus__ChunkedReadResponse *m =
        prometheus__chunked_read_response__unpack(NULL, flen, p + k + 4);
    CHECK(m != NULL && m->query_index == 0 && m->n_chunked_series == 1, "first frame");
    if (m != NULL && m->n_chunked_series == 1) {
        Prometheus__ChunkedSeries *cs = m->chunked_series[0];
        CHECK(cs->n_labels == 2 && strcmp(cs->labels[1]->name, "job") == 0 && cs->n_chunks == 2,
              "labels and chunks");
        if (cs->n_chunks == 2) {
            CHECK(cs->chunks[0]->min_time_ms == s[0].t && cs->chunks[0]->max_time_ms == s[119].t &&
                      cs->chunks[1]->min_time_ms == s[120].t &&
                      cs->chunks[1]->max_time_ms == s[120].t,
                  "chunk time ranges");
            CHECK(wire_read_xor_count(cs->chunks[0]->data.data, cs->chunks[0]->data.len) == 120 &&
                      wire_read_xor_count(cs->chunks[1]->data.data, cs->chunks[1]->data.len) == 1,
                  "chunk sample counts");
        }
    }
    if (m != NULL)
        prometheus__chunked_read_response__free_unpacked(m, NULL);

    struct got g = {0};
    struct wire_read_stats st;
    char err[256];
    enum wire_read_err e =
        wire_read_decode_response(copy, blen, WIRE_READ_STREAMED_XOR_CHUNKS, all_time, 3, NULL,
                                  collect, &g, &st, err, sizeof err);
    CHECK(e == WIRE_READ_OK && g.n == 2 && st.frames == 2 && st.chunks == 11,
          "decode: %s (%zu series)", err, g.n);
    if (g.n == 2) {
        CHECK(g.series[0].q == 0 && g.series[0].n == 121 && g.series[1].q == 2 &&
                  g.series[1].n == N && strncmp(g.series[1].labels, "x:yhat{env=", 11) == 0,
              "decoded shape (%s)", g.series[1].labels);
        for (size_t i = 0; i < g.series[1].n; i++)
            if (g.series[1].s[i].t != s[i].t || bits(g.series[1].s[i].v) != bits(s[i].v)) {
                CHECK(0, "streamed sample %zu differs", i);
                break;
            }
    }
    got_free(&g);
    free(copy);

    /* small frames: the long series is split, the decoder merges it back */
    struct wire_read_response *r2 = wire_read_response_create(1 << 20, 400);
    wire_read_response_begin(r2, WIRE_READ_STREAMED_XOR_CHUNKS, 1);
    CHECK(wire_read_response_add_series(r2, 0, lab_b, 2, s, N) == WIRE_READ_OK, "split add");
    CHECK(wire_read_response_add_series(r2, 0, lab_a, 2, s, 300) == WIRE_READ_OK, "split add 2");
    /* take() in the middle, then finish: concatenation is the body */
    const void *t1;
    size_t t1len;
    wire_read_response_take(r2, &t1, &t1len);
    struct tb all = {0};
    tb_raw(&all, t1, t1len);
    CHECK(wire_read_response_add_series(r2, 0, lab_b, 2, s, 10) == WIRE_READ_OK, "after take");
    CHECK(wire_read_response_finish(r2, &body, &blen) == WIRE_READ_OK, "finish split");
    tb_raw(&all, body, blen);
    frames = pb_frames(all.p, all.len, &nchunks, &nsamples, &qi);
    CHECK(frames > 4 && nchunks == 9 + 3 + 1 && nsamples == N + 300 + 10,
          "split: %d frames, %zu chunks", frames, nchunks);
    e = wire_read_decode_response(all.p, all.len, WIRE_READ_STREAMED_XOR_CHUNKS, all_time, 1, NULL,
                                  collect, &g, &st, err, sizeof err);
    CHECK(e == WIRE_READ_OK && g.n == 3 && g.series[0].n == N && g.series[1].n == 300 &&
              g.series[2].n == 10 && st.frames == (uint64_t)frames,
          "split decode: %s, %zu series", err, g.n);
    got_free(&g);

    /* byte cap in streamed mode */
    struct wire_read_response *r3 = wire_read_response_create(100, 1 << 20);
    wire_read_response_begin(r3, WIRE_READ_STREAMED_XOR_CHUNKS, 1);
    CHECK(wire_read_response_add_series(r3, 0, lab_a, 2, s, 3) == WIRE_READ_OK, "small add");
    size_t before = wire_read_response_bytes(r3);
    CHECK(wire_read_response_add_series(r3, 0, lab_a, 2, s, N) == WIRE_READ_ERR_LIMIT &&
              wire_read_response_bytes(r3) == before,
          "streamed cap");
    CHECK(wire_read_response_finish(r3, &body, &blen) == WIRE_READ_OK && blen == before,
          "finish after cap");
    e = wire_read_decode_response(body, blen, WIRE_READ_STREAMED_XOR_CHUNKS, all_time, 1, NULL,
                                  collect, &g, NULL, err, sizeof err);
    CHECK(e == WIRE_READ_OK && g.n == 1 && g.series[0].n == 3, "after streamed cap: %s", err);
    got_free(&g);

    tb_free(&all);
    wire_read_response_destroy(r);
    wire_read_response_destroy(r2);
    wire_read_response_destroy(r3);
    free(s);
}

/* A ChunkedReadResponse message for one series. */
static void chunked_msg(struct tb *out, int64_t qi, const char *job, const struct sample *s,
                        size_t n, int type)
{
    struct tb cs = {0}, l = {0}, ch = {0};
    tb_str(&l, 1, "job");
    tb_str(&l, 2, job);
    tb_msg(&cs, 1, &l);
    uint8_t data[4096];
    size_t dlen = wire_read_xor_encode(s, n, data, sizeof data);
    tb_tag(&ch, 1, 0);
    tb_varint(&ch, (uint64_t)s[0].t);
    tb_tag(&ch, 2, 0);
    tb_varint(&ch, (uint64_t)s[n - 1].t);
    tb_tag(&ch, 3, 0);
    tb_varint(&ch, (uint64_t)type);
    tb_bytes(&ch, 4, data, dlen);
    tb_msg(&cs, 2, &ch);
    tb_msg(out, 1, &cs);
    if (qi) {
        tb_tag(out, 2, 0);
        tb_varint(out, (uint64_t)qi);
    }
    tb_free(&cs);
    tb_free(&l);
    tb_free(&ch);
}

static void expect_frames(const char *name, const void *body, size_t len, size_t nq,
                          const struct wire_read_response_limits *lim, enum wire_read_err want,
                          const char *needle, size_t want_series)
{
    struct got g = {0};
    char err[256] = "";
    enum wire_read_err e =
        wire_read_decode_response(body, len, WIRE_READ_STREAMED_XOR_CHUNKS, all_time, nq, lim,
                                  collect, &g, NULL, err, sizeof err);
    CHECK(e == want, "%s: got %s want %s (%s)", name, wire_read_err_reason(e),
          wire_read_err_reason(want), err);
    CHECK(needle == NULL || strstr(err, needle) != NULL, "%s: '%s' lacks '%s'", name, err, needle);
    CHECK(g.n == want_series, "%s: %zu series delivered, want %zu", name, g.n, want_series);
    got_free(&g);
}

static void test_frames(void)
{
    struct sample s[4] = {{10, 1}, {20, 2}, {30, 3}, {40, 4}};
    struct tb m = {0}, body = {0};
    chunked_msg(&m, 0, "a", s, 4, 1);
    tb_frame(&body, m.p, m.len);
    expect_frames("one frame", body.p, body.len, 1, NULL, WIRE_READ_OK, NULL, 1);
    write_seed("frames_one", 4, body.p, body.len);
    write_seed("frames_msg", 5, m.p, m.len); /* mode 5: the fuzzer frames it */

    /* CRC mismatch in each byte of the message */
    for (size_t i = 0; i < body.len; i++) {
        struct tb bad = {0};
        tb_raw(&bad, body.p, body.len);
        bad.p[i] ^= 0x20;
        struct got g = {0};
        char err[256];
        enum wire_read_err e =
            wire_read_decode_response(bad.p, bad.len, WIRE_READ_STREAMED_XOR_CHUNKS, all_time, 1,
                                      NULL, collect, &g, NULL, err, sizeof err);
        CHECK(e != WIRE_READ_OK && g.n == 0, "flipped byte %zu accepted", i);
        if (i >= 5)
            CHECK(e == WIRE_READ_ERR_FRAME && strstr(err, "CRC-32C mismatch") != NULL,
                  "flipped byte %zu: %s", i, err);
        got_free(&g);
        tb_free(&bad);
    }
    /* truncated anywhere */
    for (size_t k = 1; k < body.len; k++) {
        char name[64];
        snprintf(name, sizeof name, "truncated to %zu of %zu", k, body.len);
        expect_frames(name, body.p, k, 1, NULL, WIRE_READ_ERR_FRAME, NULL, 0);
    }
    static const uint8_t long_len[] = {0x80};
    expect_frames("truncated length varint", long_len, 1, 1, NULL, WIRE_READ_ERR_FRAME,
                  "truncated length", 0);
    static const uint8_t past[] = {0x50, 0, 0, 0, 0, 1, 2, 3};
    expect_frames("length past end", past, sizeof past, 1, NULL, WIRE_READ_ERR_FRAME,
                  "past end of body", 0);
    static const uint8_t zero_ok[] = {0x00, 0, 0, 0, 0};
    expect_frames("zero-length frame, CRC of nothing", zero_ok, sizeof zero_ok, 1, NULL,
                  WIRE_READ_OK, NULL, 0);
    static const uint8_t zero_bad[] = {0x00, 0, 0, 0, 1};
    expect_frames("zero-length frame, wrong CRC", zero_bad, sizeof zero_bad, 1, NULL,
                  WIRE_READ_ERR_FRAME, "CRC", 0);
    static const uint8_t zero_short[] = {0x00};
    expect_frames("zero-length frame without CRC", zero_short, 1, 1, NULL, WIRE_READ_ERR_FRAME,
                  "truncated checksum", 0);
    expect_frames("empty body", "", 0, 1, NULL, WIRE_READ_OK, NULL, 0);

    /* a server's text error after a good frame: the error line shows the
     * text; the series is not delivered (it might have continued) */
    struct tb withtext = {0};
    tb_raw(&withtext, body.p, body.len);
    tb_raw(&withtext, "expanding series: context canceled\n", 35);
    expect_frames("text after frames", withtext.p, withtext.len, 1, NULL, WIRE_READ_ERR_FRAME,
                  "body continues with text \"expanding series", 0);
    tb_free(&withtext);

    struct wire_read_response_limits lim;
    wire_read_response_limits_default(&lim);
    lim.max_frame_bytes = m.len - 1;
    expect_frames("frame over limit", body.p, body.len, 1, &lim, WIRE_READ_ERR_TOO_LARGE, "exceed",
                  0);
    wire_read_response_limits_default(&lim);
    lim.max_body_bytes = body.len - 1;
    expect_frames("body over limit", body.p, body.len, 1, &lim, WIRE_READ_ERR_TOO_LARGE, NULL, 0);
    tb_free(&body);
    tb_free(&m);

    /* query_index out of range */
    chunked_msg(&m, 3, "a", s, 4, 1);
    tb_frame(&body, m.p, m.len);
    expect_frames("query_index 3 of 2", body.p, body.len, 2, NULL, WIRE_READ_ERR_PROTOBUF,
                  "query_index 3 out of range", 0);
    tb_free(&body);
    tb_free(&m);

    /* one series over three frames, overlapping chunks, a histogram chunk,
     * then another series; the limit on series counts delivered ones */
    struct sample s2[3] = {{30, 9}, {50, 5}, {60, 6}};
    chunked_msg(&m, 1, "a", s, 4, 1);
    tb_frame(&body, m.p, m.len);
    tb_free(&m);
    chunked_msg(&m, 1, "a", s2, 3, 2); /* HISTOGRAM: skipped */
    tb_frame(&body, m.p, m.len);
    tb_free(&m);
    chunked_msg(&m, 1, "a", s2, 3, 1); /* overlaps at t=30: first kept */
    tb_frame(&body, m.p, m.len);
    tb_free(&m);
    chunked_msg(&m, 1, "b", s, 2, 1);
    tb_frame(&body, m.p, m.len);
    tb_free(&m);
    struct got g = {0};
    struct wire_read_stats st;
    char err[256];
    enum wire_read_err e =
        wire_read_decode_response(body.p, body.len, WIRE_READ_STREAMED_XOR_CHUNKS, all_time, 2,
                                  NULL, collect, &g, &st, err, sizeof err);
    CHECK(e == WIRE_READ_OK && g.n == 2, "merge: %s, %zu series", err, g.n);
    if (g.n == 2) {
        CHECK(g.series[0].q == 1 && strcmp(g.series[0].labels, "{job=\"a\"}") == 0 &&
                  g.series[0].n == 6,
              "merged series: %s, %zu samples", g.series[0].labels, g.series[0].n);
        CHECK(g.series[0].n == 6 && g.series[0].s[2].t == 30 && g.series[0].s[2].v == 3 &&
                  g.series[0].s[4].t == 50 && g.series[0].s[5].t == 60,
              "merged order");
        CHECK(g.series[1].n == 2, "second series");
    }
    CHECK(st.frames == 4 && st.skipped_chunks == 1 && st.duplicates == 1 && st.series == 2 &&
              st.samples == 8 && st.chunks == 3,
          "stats: frames %" PRIu64 " skipped %" PRIu64 " dup %" PRIu64, st.frames,
          st.skipped_chunks, st.duplicates);
    got_free(&g);
    write_seed("frames_merge", 4, body.p, body.len);
    wire_read_response_limits_default(&lim);
    lim.max_series = 1;
    expect_frames("series cap", body.p, body.len, 2, &lim, WIRE_READ_ERR_LIMIT,
                  "more than 1 series", 1);
    wire_read_response_limits_default(&lim);
    lim.max_samples = 7;
    expect_frames("samples cap", body.p, body.len, 2, &lim, WIRE_READ_ERR_LIMIT,
                  "more than 7 samples", 1);
    tb_free(&body);

    /* a corrupt XOR chunk inside a valid frame */
    struct tb cs = {0}, l = {0}, ch = {0};
    tb_str(&l, 1, "job");
    tb_str(&l, 2, "a");
    tb_msg(&cs, 1, &l);
    tb_tag(&ch, 3, 0);
    tb_varint(&ch, 1);
    tb_bytes(&ch, 4, "\x00\x05\x00", 3);
    tb_msg(&cs, 2, &ch);
    tb_msg(&m, 1, &cs);
    tb_frame(&body, m.p, m.len);
    expect_frames("corrupt chunk", body.p, body.len, 1, NULL, WIRE_READ_ERR_CHUNK, "truncated", 0);
    tb_free(&body);
    tb_free(&m);
    tb_free(&cs);
    tb_free(&ch);
    tb_msg(&cs, 1, &l);
    tb_tag(&ch, 3, 0);
    tb_varint(&ch, 1);
    tb_bytes(&ch, 4, "\x00", 1);
    tb_msg(&cs, 2, &ch);
    tb_msg(&m, 1, &cs);
    tb_frame(&body, m.p, m.len);
    expect_frames("1-byte chunk", body.p, body.len, 1, NULL, WIRE_READ_ERR_CHUNK, "1 bytes", 0);
    tb_free(&body);
    tb_free(&m);
    tb_free(&cs);
    tb_free(&l);
    tb_free(&ch);
}

/*
 * A real STREAMED_XOR_CHUNKS body, recorded from Prometheus 2.42.0 (Debian)
 * answering `prometheus_tsdb_head_samples_appended_total` over a 6 s range
 * while scraping itself every second (external label replica="a"): two
 * frames, one series each, one XOR chunk of 6 samples each. Our decoder must
 * read it, and our builder, given the same series, must produce the same
 * bytes: frame layout, field order, omitted zero fields, CRC and chunk data.
 */
static const uint8_t prom242_body[] = {
    0xbd, 0x01, 0x34, 0xea, 0x8c, 0xce, 0x0a, 0xba, 0x01, 0x0a, 0x37, 0x0a, 0x08, 0x5f, 0x5f, 0x6e,
    0x61, 0x6d, 0x65, 0x5f, 0x5f, 0x12, 0x2b, 0x70, 0x72, 0x6f, 0x6d, 0x65, 0x74, 0x68, 0x65, 0x75,
    0x73, 0x5f, 0x74, 0x73, 0x64, 0x62, 0x5f, 0x68, 0x65, 0x61, 0x64, 0x5f, 0x73, 0x61, 0x6d, 0x70,
    0x6c, 0x65, 0x73, 0x5f, 0x61, 0x70, 0x70, 0x65, 0x6e, 0x64, 0x65, 0x64, 0x5f, 0x74, 0x6f, 0x74,
    0x61, 0x6c, 0x0a, 0x1b, 0x0a, 0x08, 0x69, 0x6e, 0x73, 0x74, 0x61, 0x6e, 0x63, 0x65, 0x12, 0x0f,
    0x31, 0x32, 0x37, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x31, 0x3a, 0x33, 0x38, 0x33, 0x37, 0x39, 0x0a,
    0x11, 0x0a, 0x03, 0x6a, 0x6f, 0x62, 0x12, 0x0a, 0x70, 0x72, 0x6f, 0x6d, 0x65, 0x74, 0x68, 0x65,
    0x75, 0x73, 0x0a, 0x0c, 0x0a, 0x07, 0x72, 0x65, 0x70, 0x6c, 0x69, 0x63, 0x61, 0x12, 0x01, 0x61,
    0x0a, 0x0d, 0x0a, 0x04, 0x74, 0x79, 0x70, 0x65, 0x12, 0x05, 0x66, 0x6c, 0x6f, 0x61, 0x74, 0x12,
    0x32, 0x08, 0xc9, 0xd5, 0xb4, 0x97, 0xa4, 0x34, 0x10, 0xd1, 0xfc, 0xb4, 0x97, 0xa4, 0x34, 0x18,
    0x01, 0x22, 0x20, 0x00, 0x06, 0x92, 0xab, 0xe9, 0xae, 0xc8, 0x68, 0x40, 0xbf, 0x72, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xe8, 0x07, 0xd2, 0x7f, 0xf1, 0xf4, 0x05, 0x31, 0x00, 0xf4, 0x40, 0xd7, 0x1b,
    0xca, 0xda, 0x40, 0xb5, 0x01, 0x69, 0xab, 0x76, 0x10, 0x0a, 0xb2, 0x01, 0x0a, 0x37, 0x0a, 0x08,
    0x5f, 0x5f, 0x6e, 0x61, 0x6d, 0x65, 0x5f, 0x5f, 0x12, 0x2b, 0x70, 0x72, 0x6f, 0x6d, 0x65, 0x74,
    0x68, 0x65, 0x75, 0x73, 0x5f, 0x74, 0x73, 0x64, 0x62, 0x5f, 0x68, 0x65, 0x61, 0x64, 0x5f, 0x73,
    0x61, 0x6d, 0x70, 0x6c, 0x65, 0x73, 0x5f, 0x61, 0x70, 0x70, 0x65, 0x6e, 0x64, 0x65, 0x64, 0x5f,
    0x74, 0x6f, 0x74, 0x61, 0x6c, 0x0a, 0x1b, 0x0a, 0x08, 0x69, 0x6e, 0x73, 0x74, 0x61, 0x6e, 0x63,
    0x65, 0x12, 0x0f, 0x31, 0x32, 0x37, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x31, 0x3a, 0x33, 0x38, 0x33,
    0x37, 0x39, 0x0a, 0x11, 0x0a, 0x03, 0x6a, 0x6f, 0x62, 0x12, 0x0a, 0x70, 0x72, 0x6f, 0x6d, 0x65,
    0x74, 0x68, 0x65, 0x75, 0x73, 0x0a, 0x0c, 0x0a, 0x07, 0x72, 0x65, 0x70, 0x6c, 0x69, 0x63, 0x61,
    0x12, 0x01, 0x61, 0x0a, 0x11, 0x0a, 0x04, 0x74, 0x79, 0x70, 0x65, 0x12, 0x09, 0x68, 0x69, 0x73,
    0x74, 0x6f, 0x67, 0x72, 0x61, 0x6d, 0x12, 0x26, 0x08, 0xc9, 0xd5, 0xb4, 0x97, 0xa4, 0x34, 0x10,
    0xd1, 0xfc, 0xb4, 0x97, 0xa4, 0x34, 0x18, 0x01, 0x22, 0x14, 0x00, 0x06, 0x92, 0xab, 0xe9, 0xae,
    0xc8, 0x68, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe8, 0x07, 0x00, 0x00};

static void test_real_prometheus_frames(void)
{
    static const uint64_t float_bits[6] = {0x40bf720000000000, 0x40c06d0000000000,
                                           0x40c1210000000000, 0x40c1d50000000000,
                                           0x40c2890000000000, 0x40c33d8000000000};
    const int64_t t0 = 1796419168969;
    struct wire_read_query q = {t0, t0 + 5000, NULL, 0};
    struct got g = {0};
    struct wire_read_stats st;
    char err[256];
    enum wire_read_err e =
        wire_read_decode_response(prom242_body, sizeof prom242_body, WIRE_READ_STREAMED_XOR_CHUNKS,
                                  &q, 1, NULL, collect, &g, &st, err, sizeof err);
    CHECK(e == WIRE_READ_OK && g.n == 2 && st.frames == 2 && st.chunks == 2, "decode: %s", err);
    struct sample fs[6], hs[6];
    for (int i = 0; i < 6; i++) {
        fs[i] = (struct sample){t0 + 1000 * i, from_bits(float_bits[i])};
        hs[i] = (struct sample){t0 + 1000 * i, 0.0};
    }
    if (g.n == 2) {
        CHECK(strstr(g.series[0].labels, "type=\"float\"") != NULL &&
                  strstr(g.series[0].labels, "replica=\"a\"") != NULL,
              "labels %s", g.series[0].labels);
        CHECK(g.series[0].n == 6 && g.series[1].n == 6, "sample counts");
        for (size_t i = 0; i < 6 && i < g.series[0].n; i++)
            CHECK(g.series[0].s[i].t == fs[i].t && bits(g.series[0].s[i].v) == float_bits[i],
                  "real sample %zu", i);
    }
    got_free(&g);

    struct label lf[] = {{"__name__", "prometheus_tsdb_head_samples_appended_total", 8, 43},
                         {"instance", "127.0.0.1:38379", 8, 15},
                         {"job", "prometheus", 3, 10},
                         {"replica", "a", 7, 1},
                         {"type", "float", 4, 5}};
    struct label lh[5];
    memcpy(lh, lf, sizeof lh);
    lh[4].value = "histogram";
    lh[4].value_len = 9;
    struct wire_read_response *r = wire_read_response_create(1 << 20, 1 << 20);
    wire_read_response_begin(r, WIRE_READ_STREAMED_XOR_CHUNKS, 1);
    CHECK(wire_read_response_add_series(r, 0, lf, 5, fs, 6) == WIRE_READ_OK &&
              wire_read_response_add_series(r, 0, lh, 5, hs, 6) == WIRE_READ_OK,
          "build");
    const void *body;
    size_t blen;
    CHECK(wire_read_response_finish(r, &body, &blen) == WIRE_READ_OK, "finish");
    CHECK(blen == sizeof prom242_body && memcmp(body, prom242_body, blen) == 0,
          "our frames differ from Prometheus 2.42's (%zu vs %zu bytes)", blen, sizeof prom242_body);
    for (size_t i = 0; i < blen && i < sizeof prom242_body; i++)
        if (((const uint8_t *)body)[i] != prom242_body[i]) {
            CHECK(0, "first difference at byte %zu: %02x vs %02x", i, ((const uint8_t *)body)[i],
                  prom242_body[i]);
            break;
        }
    write_seed("frames_prometheus_2_42", 4, prom242_body, sizeof prom242_body);
    wire_read_response_destroy(r);
}

int main(void)
{
    test_xor_tricky();
    test_xor_dod_buckets();
    test_xor_known_answer();
    test_xor_malformed();
    test_request_valid();
    test_request_malformed();
    test_request_encode();
    test_samples_response();
    test_samples_decode_edges();
    test_streamed_response();
    test_frames();
    test_real_prometheus_frames();
    for (int e = 0; e < WIRE_READ_ERR_COUNT; e++)
        CHECK(strcmp(wire_read_err_reason((enum wire_read_err)e), "unknown") != 0, "reason %d", e);
    return test_main_end("test_wire_read");
}
