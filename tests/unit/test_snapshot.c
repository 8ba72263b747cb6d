/*
 * Unit tests for snapshot.c: round trips, newest-first selection, retention,
 * every truncation and every bit flip of a small snapshot, leftover temp
 * files, odd directory entries, schema and format mismatches, the lock, and
 * crashes (kill -9 and SIGXFSZ at deterministic byte offsets and at every
 * commit phase, in forked children) and write errors (EFBIG at every cut).
 */
#include "snapshot.h"
#include "crc32c.h"
#include "log.h"
#include "testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Helpers */

static char root[256];

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0)
            unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
    }
    closedir(d);
    rmdir(dir);
}

/* A fresh empty directory under the test root. */
static const char *fresh_dir(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", root, name);
    rm_rf(path);
    if (mkdir(path, 0755) != 0) {
        perror(path);
        exit(2);
    }
    return path;
}

static int count_suffix(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l >= sl && strcmp(e->d_name + l - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static bool exists(const char *dir, const char *name)
{
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return lstat(p, &st) == 0;
}

static int put_file(const char *dir, const char *name, const void *data, size_t len)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f)
        return -1;
    size_t w = len ? fwrite(data, 1, len, f) : 0;
    return fclose(f) == 0 && w == len ? 0 : -1;
}

static unsigned char *get_file(const char *dir, const char *name, size_t *len)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Records of "generation" g: sizes from a table including 0 and the
 * buffer-bypass size, bytes a function of (g, i, k), so a record from the
 * wrong snapshot or position never matches. */
static const size_t small_sizes[] = {0, 1, 7, 8, 9, 31, 100, 2560, 4096, 3000, 1, 2500};
#define NSMALL (sizeof small_sizes / sizeof small_sizes[0])

static size_t gen_len(unsigned g, size_t i, size_t base)
{
    return base ? base + (i * 37 + g) % 97 : small_sizes[(i + g) % NSMALL];
}

static unsigned char gen_byte(unsigned g, size_t i, size_t k)
{
    return (unsigned char)(g * 131u + i * 17u + k * 7u + (k >> 8));
}

static void gen_fill(unsigned g, size_t i, unsigned char *buf, size_t len)
{
    for (size_t k = 0; k < len; k++)
        buf[k] = gen_byte(g, i, k);
}

/* Expectations for the callbacks. */
struct coll {
    unsigned g;
    size_t n, base; /* expected records: gen_len(g, i, base) */
    size_t got, bad, meta_calls;
    bool record_before_meta;
    uint32_t schema;
    char creator[80];
    unsigned char meta[64];
    size_t meta_len;
    uint64_t info_records;
    long stop_at; /* on_record fails at this index (-1: never) */
};

static void coll_init(struct coll *c, unsigned g, size_t n, size_t base)
{
    memset(c, 0, sizeof *c);
    c->g = g;
    c->n = n;
    c->base = base;
    c->stop_at = -1;
}

static int on_meta(void *ctx, const struct snapshot_info *info)
{
    struct coll *c = ctx;
    c->meta_calls++;
    c->schema = info->schema;
    snprintf(c->creator, sizeof c->creator, "%s", info->creator);
    c->meta_len = info->meta_len;
    if (info->meta_len <= sizeof c->meta && info->meta_len)
        memcpy(c->meta, info->meta, info->meta_len);
    c->info_records = info->records;
    return 0;
}

static int on_record(void *ctx, const void *rec, size_t len)
{
    struct coll *c = ctx;
    const unsigned char *p = rec;
    if (c->meta_calls == 0)
        c->record_before_meta = true;
    if (c->stop_at >= 0 && (long)c->got == c->stop_at)
        return -1;
    bool ok = c->got < c->n && len == gen_len(c->g, c->got, c->base);
    for (size_t k = 0; ok && k < len; k++)
        ok = p[k] == gen_byte(c->g, c->got, k);
    if (!ok)
        c->bad++;
    c->got++;
    return 0;
}

static unsigned char *scratch;
static size_t scratch_cap;

static const unsigned char *rec_of(unsigned g, size_t i, size_t base, size_t *len)
{
    *len = gen_len(g, i, base);
    if (*len > scratch_cap) {
        free(scratch);
        scratch_cap = *len;
        scratch = malloc(scratch_cap);
    }
    gen_fill(g, i, scratch, *len);
    return scratch;
}

/* Write generation g (n records) with schema and keep; returns the commit
 * result's file name in name (if given). */
static int write_gen(const char *dir, uint32_t schema, unsigned g, size_t n, size_t base,
                     unsigned keep, char *name)
{
    char err[512];
    struct snapshot_writer *w = snapshot_begin(dir, schema, "meta", 4, err, sizeof err);
    if (!w) {
        fprintf(stderr, "begin: %s\n", err);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const unsigned char *p = rec_of(g, i, base, &len);
        if (snapshot_add(w, p, len) != 0) {
            fprintf(stderr, "add: %s\n", snapshot_error(w));
            snapshot_abort(w);
            return -1;
        }
    }
    struct snapshot_commit_result cr;
    if (snapshot_commit(w, keep, &cr, err, sizeof err) != 0) {
        fprintf(stderr, "commit: %s\n", err);
        return -1;
    }
    if (name)
        strcpy(name, cr.file);
    return 0;
}

/* Load and check that exactly generation g with n records came back. */
static void expect_gen(const char *what, const char *dir, unsigned g, size_t n, size_t base,
                       struct snapshot_load_result *res)
{
    struct coll c;
    char err[512];
    coll_init(&c, g, n, base);
    int rc = snapshot_load(dir, 1, NULL, on_meta, on_record, &c, res, err, sizeof err);
    CHECK(rc == 0, "%s: load failed: %s", what, err);
    CHECK(res->status == SNAPSHOT_LOAD_OK, "%s: status %d (%s)", what, (int)res->status,
          res->first_problem);
    CHECK(c.got == n && c.bad == 0 && res->records == n,
          "%s: got %zu records (%zu bad, res %llu), want %zu of generation %u", what, c.got, c.bad,
          (unsigned long long)res->records, n, g);
    CHECK(c.meta_calls == 1 && !c.record_before_meta, "%s: on_meta calls %zu", what, c.meta_calls);
}

/* ------------------------------------------------------------------------ */
/* Round trips */

/* Round trip against an explicit size table (generation 5). */
struct sized {
    const size_t *sizes;
    size_t n, got, bad;
};

static int sized_record(void *ctx, const void *rec, size_t len)
{
    struct sized *c = ctx;
    const unsigned char *p = rec;
    bool ok = c->got < c->n && len == c->sizes[c->got];
    for (size_t k = 0; ok && k < len; k++)
        ok = p[k] == gen_byte(5, c->got, k);
    if (!ok)
        c->bad++;
    c->got++;
    return 0;
}

static void test_roundtrip(void)
{
    const char *dir = fresh_dir("roundtrip");
    char err[512];
    /* Sizes around the buffer and bypass thresholds, 0 and the maximum. */
    static const size_t fixed[] = {0,
                                   1,
                                   3,
                                   8,
                                   4095,
                                   4096,
                                   4097,
                                   (1u << 19) - 1,
                                   1u << 19,
                                   (1u << 20) - 9,
                                   (1u << 20) + 1,
                                   SNAPSHOT_MAX_RECORD_BYTES,
                                   0,
                                   5};
    size_t nfixed = sizeof fixed / sizeof fixed[0];
    size_t nrand = 3000, n = nfixed + nrand;
    size_t *sizes = malloc(n * sizeof *sizes);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        sizes[i] = i < nfixed ? fixed[i] : (x >> 8) % 6000;
    }
    unsigned char *buf = malloc(SNAPSHOT_MAX_RECORD_BYTES);
    struct snapshot_writer *w = snapshot_begin(dir, 42, "the meta", 8, err, sizeof err);
    CHECK(w != NULL, "begin: %s", err);
    if (!w)
        goto out;
    for (size_t i = 0; i < n; i++) {
        gen_fill(5, i, buf, sizes[i]);
        CHECK(snapshot_add(w, buf, sizes[i]) == 0, "add record %zu of %zu bytes: %s", i, sizes[i],
              snapshot_error(w));
    }
    CHECK(count_suffix(dir, ".tmp") == 1, "one temp file while writing");
    struct snapshot_commit_result cr;
    CHECK(snapshot_commit(w, 0, &cr, err, sizeof err) == 0, "commit: %s", err);
    CHECK(cr.records == n, "commit records %llu", (unsigned long long)cr.records);
    CHECK(count_suffix(dir, ".tmp") == 0 && count_suffix(dir, ".pcs") == 1, "files after commit");
    size_t flen = 0;
    free(get_file(dir, cr.file, &flen));
    CHECK(flen == cr.bytes, "file size %zu vs commit bytes %llu", flen,
          (unsigned long long)cr.bytes);

    /* Deliver and compare with an explicit size table. */
    struct sized ck = {sizes, n, 0, 0};
    struct snapshot_load_result res;
    struct coll mc;
    coll_init(&mc, 0, 0, 0);
    int rc = snapshot_load(dir, 42, NULL, on_meta, NULL, &mc, &res, err, sizeof err);
    CHECK(rc == 0 && res.status == SNAPSHOT_LOAD_OK, "load meta only: %s", err);
    CHECK(mc.meta_calls == 1 && mc.schema == 42 && mc.meta_len == 8 &&
              memcmp(mc.meta, "the meta", 8) == 0 && mc.info_records == n,
          "metadata delivered: schema %u len %zu records %llu", mc.schema, mc.meta_len,
          (unsigned long long)mc.info_records);
    CHECK(strncmp(mc.creator, "promcast ", 9) == 0, "creator \"%s\"", mc.creator);
    CHECK(strcmp(res.file, cr.file) == 0, "loaded %s, wrote %s", res.file, cr.file);
    CHECK(res.records == n, "no on_record: records still counted");

    rc = snapshot_load(dir, 42, NULL, NULL, sized_record, &ck, &res, err, sizeof err);
    CHECK(rc == 0 && res.status == SNAPSHOT_LOAD_OK, "load: rc %d status %d: %s", rc,
          (int)res.status, err);
    CHECK(ck.got == n && ck.bad == 0, "round trip: %zu of %zu records, %zu differ", ck.got, n,
          ck.bad);

    /* A record over the maximum fails the whole snapshot and leaves no file. */
    w = snapshot_begin(dir, 42, NULL, 0, err, sizeof err);
    CHECK(w != NULL, "begin: %s", err);
    if (w) {
        CHECK(snapshot_add(w, buf, 10) == 0, "small add");
        CHECK(snapshot_add(w, buf, (size_t)SNAPSHOT_MAX_RECORD_BYTES + 1) == -1,
              "over-max record refused");
        CHECK(strstr(snapshot_error(w), "SNAPSHOT_MAX_RECORD_BYTES") != NULL, "error: %s",
              snapshot_error(w));
        CHECK(snapshot_add(w, buf, 10) == -1, "writer stays failed");
        err[0] = '\0';
        CHECK(snapshot_commit(w, 0, NULL, err, sizeof err) == -1 && err[0], "commit fails");
        CHECK(count_suffix(dir, ".tmp") == 0 && count_suffix(dir, ".pcs") == 1,
              "failed snapshot left no file");
    }
    /* Metadata over the maximum. */
    CHECK(snapshot_begin(dir, 1, buf, (size_t)SNAPSHOT_MAX_META_BYTES + 1, err, sizeof err) == NULL,
          "over-max metadata refused");

    /* Empty snapshot: no records, no metadata. */
    const char *d2 = fresh_dir("empty");
    w = snapshot_begin(d2, 1, NULL, 0, err, sizeof err);
    CHECK(w && snapshot_commit(w, 0, NULL, err, sizeof err) == 0, "empty snapshot: %s", err);
    coll_init(&mc, 0, 0, 0);
    rc = snapshot_load(d2, 1, NULL, on_meta, on_record, &mc, &res, err, sizeof err);
    CHECK(rc == 0 && res.status == SNAPSHOT_LOAD_OK && mc.meta_calls == 1 && mc.got == 0 &&
              mc.meta_len == 0,
          "empty snapshot loads: status %d", (int)res.status);
out:
    free(sizes);
    free(buf);
}

static void test_empty_and_missing(void)
{
    struct snapshot_load_result res;
    char err[256], p[600];
    snprintf(p, sizeof p, "%s/does-not-exist", root);
    CHECK(snapshot_load(p, 1, NULL, NULL, NULL, NULL, &res, err, sizeof err) == 0 &&
              res.status == SNAPSHOT_LOAD_NONE,
          "missing directory: start empty");
    const char *dir = fresh_dir("nothing");
    put_file(dir, "journal.log", "x", 1);
    CHECK(snapshot_load(dir, 1, NULL, NULL, NULL, NULL, &res, err, sizeof err) == 0 &&
              res.status == SNAPSHOT_LOAD_NONE && res.files_seen == 0,
          "empty directory: start empty");
    CHECK(exists(dir, "journal.log"), "unrelated files untouched");
    CHECK(snapshot_begin(p, 1, NULL, 0, err, sizeof err) == NULL, "begin in missing dir fails");
}

/* ------------------------------------------------------------------------ */
/* Selection and retention */

static void test_newest_and_keep(void)
{
    const char *dir = fresh_dir("keep");
    struct snapshot_load_result res;
    char names[6][64];
    for (unsigned g = 1; g <= 3; g++)
        CHECK(write_gen(dir, 1, g, 20, 0, 10, names[g]) == 0, "write generation %u", g);
    CHECK(count_suffix(dir, ".pcs") == 3, "keep=10 keeps all three");
    expect_gen("newest of three", dir, 3, 20, 0, &res);
    CHECK(strcmp(res.file, names[3]) == 0, "loaded %s, newest is %s", res.file, names[3]);

    /* Removing the newest exposes the one before. */
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, names[3]);
    unlink(p);
    expect_gen("second newest", dir, 2, 20, 0, &res);

    /* keep=2: after five more commits exactly the newest two remain. */
    for (unsigned g = 4; g <= 8; g++)
        CHECK(write_gen(dir, 1, g, 5, 0, 2, NULL) == 0, "write generation %u", g);
    CHECK(count_suffix(dir, ".pcs") == 2, "keep=2 leaves %d files", count_suffix(dir, ".pcs"));
    expect_gen("keep=2 newest", dir, 8, 5, 0, &res);
    CHECK(snapshot_load(dir, 1, NULL, NULL, NULL, NULL, &res, NULL, 0) == 0, "load");
    /* keep=0 means the default; keep=3 keeps three. */
    CHECK(write_gen(dir, 1, 9, 5, 0, 0, NULL) == 0, "write keep=0");
    CHECK(count_suffix(dir, ".pcs") == SNAPSHOT_DEFAULT_KEEP, "keep=0 → default");
    for (unsigned g = 10; g <= 12; g++)
        CHECK(write_gen(dir, 1, g, 5, 0, 3, NULL) == 0, "write generation %u", g);
    CHECK(count_suffix(dir, ".pcs") == 3, "keep=3");
    CHECK(write_gen(dir, 1, 13, 5, 0, 1, NULL) == 0, "keep=1");
    CHECK(count_suffix(dir, ".pcs") == 1, "keep=1 leaves only the new one");
    expect_gen("keep=1", dir, 13, 5, 0, &res);

    /* Names stay unique and increasing within one millisecond. */
    const char *d2 = fresh_dir("fast");
    char a[64], b[64];
    CHECK(write_gen(d2, 1, 1, 1, 0, 5, a) == 0 && write_gen(d2, 1, 2, 1, 0, 5, b) == 0,
          "two quick commits");
    long long na = atoll(a + 9), nb = atoll(b + 9);
    CHECK(nb > na, "names increase: %s then %s", a, b);

    /* A snapshot far in the future (clock stepped back since): the next one
     * is still named above it, so it is the one loaded. */
    const char *d3 = fresh_dir("clockback");
    size_t len;
    char tmp[64];
    CHECK(write_gen(d3, 1, 1, 3, 0, 5, tmp) == 0, "write");
    unsigned char *bytes = get_file(d3, tmp, &len);
    snprintf(p, sizeof p, "%s/%s", d3, tmp);
    unlink(p);
    put_file(d3, "snapshot-99999999999999.pcs", bytes, len);
    free(bytes);
    CHECK(write_gen(d3, 1, 2, 3, 0, 5, tmp) == 0, "write after future file");
    CHECK(strcmp(tmp, "snapshot-100000000000000.pcs") == 0, "named %s", tmp);
    expect_gen("after clock step back", d3, 2, 3, 0, &res);
}

/* ------------------------------------------------------------------------ */
/* Corruption */

/* Two small generations (record sizes 0, 1, 7, 8, 9 from the table) so the
 * every-bit test stays at about 1300 loads. */
#define GEN_A 12
#define GEN_B 24

/* Small snapshot bytes of generation g (n records), written through the API. */
static unsigned char *small_bytes(unsigned g, size_t n, size_t *len)
{
    const char *dir = fresh_dir("scratch");
    char name[64];
    if (write_gen(dir, 1, g, n, 0, 5, name) != 0)
        return NULL;
    return get_file(dir, name, len);
}

/* Dir with a valid older snapshot A (generation GEN_A, 4 records) and a newer
 * file B holding `blen` bytes of `b`; the load must reject B and give A. */
static void check_fallback(const char *what, const unsigned char *a, size_t alen,
                           const unsigned char *b, size_t blen)
{
    const char *dir = fresh_dir("corrupt");
    struct snapshot_load_result res;
    put_file(dir, "snapshot-100.pcs", a, alen);
    put_file(dir, "snapshot-200.pcs", b, blen);
    expect_gen(what, dir, GEN_A, 4, 0, &res);
    CHECK(strcmp(res.file, "snapshot-100.pcs") == 0 && res.files_corrupt == 1 &&
              res.files_seen == 2,
          "%s: loaded %s, %u corrupt of %u", what, res.file, res.files_corrupt, res.files_seen);
    CHECK(res.first_problem[0] != '\0' && strstr(res.first_problem, "snapshot-200.pcs"),
          "%s: problem reported: %s", what, res.first_problem);
    CHECK(exists(dir, "snapshot-200.pcs.corrupt") && !exists(dir, "snapshot-200.pcs"),
          "%s: corrupt file renamed aside", what);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void set32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Recompute every CRC of well-structured snapshot bytes after editing them:
 * header CRC, the footer's chain over header and record CRCs, footer CRC. */
static void fix_crcs(unsigned char *m, size_t len)
{
    uint32_t hlen = le32(m + 12);
    unsigned char c4[4];
    set32(m + hlen - 4, crc32c(m, hlen - 4));
    memcpy(c4, m + hlen - 4, 4);
    uint32_t chain = crc32c(c4, 4);
    size_t off = hlen;
    while (le32(m + off) != 0xFFFFFFFFu && off + 8 <= len) {
        memcpy(c4, m + off + 4, 4);
        chain = crc32c_update(chain, c4, 4);
        off += 8 + le32(m + off);
    }
    set32(m + off + 24, chain);
    set32(m + off + 28, crc32c(m + off, 28));
}

static void test_corruption(void)
{
    size_t alen, blen;
    unsigned char *a = small_bytes(GEN_A, 4, &alen);
    unsigned char *b = small_bytes(GEN_B, 5, &blen);
    CHECK(a && b, "small snapshots");
    if (!a || !b)
        goto out;
    unsigned char *m = malloc(blen + 100);

    /* Unchanged B is loaded (the harness itself works). */
    {
        const char *dir = fresh_dir("corrupt");
        struct snapshot_load_result res;
        put_file(dir, "snapshot-100.pcs", a, alen);
        put_file(dir, "snapshot-200.pcs", b, blen);
        expect_gen("intact newer file", dir, GEN_B, 5, 0, &res);
    }
    char what[128];
    log_setup((enum log_level)(LOG_ERROR + 1), LOG_FORMAT_LOGFMT);
    for (size_t cut = 0; cut < blen; cut++) {
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", cut, blen);
        check_fallback(what, a, alen, b, cut);
    }
    for (size_t i = 0; i < blen; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(m, b, blen);
            m[i] ^= (unsigned char)(1u << bit);
            snprintf(what, sizeof what, "bit %d of byte %zu flipped (of %zu)", bit, i, blen);
            check_fallback(what, a, alen, m, blen);
        }
    static const size_t extra[] = {1, 4, 32, 100};
    for (size_t k = 0; k < sizeof extra / sizeof extra[0]; k++) {
        memcpy(m, b, blen);
        memset(m + blen, 0, extra[k]);
        snprintf(what, sizeof what, "%zu bytes of trailing garbage", extra[k]);
        check_fallback(what, a, alen, m, blen + extra[k]);
    }
    /* B's records with A's footer spliced on. */
    memcpy(m, b, blen);
    memcpy(m + blen - 32, a + alen - 32, 32);
    check_fallback("footer of another file", a, alen, m, blen);
    /* The whole file twice. */
    {
        unsigned char *twice = malloc(2 * blen);
        memcpy(twice, b, blen);
        memcpy(twice + blen, b, blen);
        check_fallback("file repeated", a, alen, twice, 2 * blen);
        free(twice);
    }

    log_setup(LOG_INFO, LOG_FORMAT_LOGFMT);

    /* All files corrupt: start empty, each reported. */
    {
        const char *dir = fresh_dir("allbad");
        struct snapshot_load_result res;
        put_file(dir, "snapshot-100.pcs", a, alen - 1);
        put_file(dir, "snapshot-200.pcs", b, 10);
        CHECK(snapshot_load(dir, 1, NULL, NULL, NULL, NULL, &res, NULL, 0) == 0 &&
                  res.status == SNAPSHOT_LOAD_NONE && res.files_corrupt == 2,
              "all corrupt: status %d corrupt %u", (int)res.status, res.files_corrupt);
        CHECK(count_suffix(dir, ".corrupt") == 2, "both renamed aside");
        /* Quarantined files are pruned like snapshots. */
        for (unsigned g = 1; g <= 2; g++)
            CHECK(write_gen(dir, 1, g, 2, 0, 1, NULL) == 0, "write");
        CHECK(count_suffix(dir, ".corrupt") == 1, "keep=1 prunes quarantined files to 1");
    }

    /* Checksums all right but the footer's totals wrong, or a reserved or
     * flags field set: corrupt. */
    static const struct {
        long at; /* from the start, or from the end when negative */
        unsigned char x;
        const char *what;
    } fields[] = {
        {-24, 1, "footer record count + 1"},
        {-16, 1, "footer byte total + 1"},
        {-28, 1, "footer reserved field"},
        {20, 1, "header flags"},
    };
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        memcpy(m, b, blen);
        m[fields[k].at < 0 ? (long)blen + fields[k].at : fields[k].at] ^= fields[k].x;
        fix_crcs(m, blen);
        check_fallback(fields[k].what, a, alen, m, blen);
    }
    /* Sanity of fix_crcs itself: repairing an intact file changes nothing. */
    memcpy(m, b, blen);
    fix_crcs(m, blen);
    CHECK(memcmp(m, b, blen) == 0, "fix_crcs is the identity on a valid file");

    /* A creator string with a NUL or control byte is corrupt even with a
     * correct header CRC (found by fuzzing: it was delivered cut short). */
    static const unsigned char bad_creator[] = {0, 0x1f, 0x7f, 0x80, 0xff};
    for (size_t k = 0; k < sizeof bad_creator; k++) {
        memcpy(m, b, blen);
        m[40 + 3] = bad_creator[k];
        fix_crcs(m, blen);
        snprintf(what, sizeof what, "creator byte 0x%02x", bad_creator[k]);
        check_fallback(what, a, alen, m, blen);
    }

    /* A newer format with an intact header is refused, not quarantined;
     * the same change without fixing the header CRC is corruption. */
    {
        memcpy(m, b, blen);
        m[8] = 2; /* format version 2 */
        fix_crcs(m, blen);
        const char *dir = fresh_dir("newer");
        struct snapshot_load_result res;
        struct coll cl;
        coll_init(&cl, 0, 0, 0);
        put_file(dir, "snapshot-100.pcs", a, alen);
        put_file(dir, "snapshot-200.pcs", m, blen);
        int rc = snapshot_load(dir, 1, NULL, on_meta, on_record, &cl, &res, NULL, 0);
        CHECK(rc == 0 && res.status == SNAPSHOT_LOAD_NEWER_FORMAT && res.format_version == 2 &&
                  strcmp(res.file, "snapshot-200.pcs") == 0,
              "newer format: status %d version %u", (int)res.status, res.format_version);
        CHECK(cl.meta_calls == 0 && cl.got == 0, "newer format delivers nothing");
        CHECK(exists(dir, "snapshot-200.pcs") && res.files_corrupt == 0, "not quarantined");
    }
    free(m);
out:
    free(a);
    free(b);
}

/* ------------------------------------------------------------------------ */
/* Directory contents */

static void test_dir_entries(void)
{
    const char *dir = fresh_dir("entries");
    struct snapshot_load_result res;
    size_t alen, blen;
    unsigned char *a = small_bytes(GEN_A, 4, &alen);
    unsigned char *b = small_bytes(GEN_B, 5, &blen);
    dir = fresh_dir("entries");
    char p[700], q[700];

    put_file(dir, "snapshot-100.pcs", a, alen);
    /* Valid content under names that are not canonical: ignored. */
    put_file(dir, "snapshot-0150.pcs", b, blen);
    put_file(dir, "snapshot-abc.pcs", b, blen);
    put_file(dir, "snapshot-.pcs", b, blen);
    put_file(dir, "snapshot--5.pcs", b, blen);
    put_file(dir, "snapshot-99999999999999999999.pcs", b, blen);
    put_file(dir, "snapshot-160.pcs.bak", b, blen);
    /* A directory, a FIFO and a symlink to a valid snapshot outside the dir,
     * all named like newer snapshots: skipped, never followed or read. */
    snprintf(p, sizeof p, "%s/snapshot-500.pcs", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/snapshot-600.pcs", dir);
    mkfifo(p, 0644);
    put_file(root, "outside.pcs", b, blen);
    snprintf(q, sizeof q, "%s/outside.pcs", root);
    snprintf(p, sizeof p, "%s/snapshot-700.pcs", dir);
    CHECK(symlink(q, p) == 0, "symlink");
    /* Zero-length newest file: corrupt. */
    put_file(dir, "snapshot-800.pcs", "", 0);
    /* Leftover temp files from a crash, one with valid content. */
    put_file(dir, "snapshot-900.tmp", b, blen);
    put_file(dir, "snapshot-901.tmp", "xx", 2);

    expect_gen("odd entries", dir, GEN_A, 4, 0, &res);
    CHECK(strcmp(res.file, "snapshot-100.pcs") == 0, "loaded %s", res.file);
    CHECK(res.names_ignored == 5, "names ignored %u", res.names_ignored);
    CHECK(res.files_skipped == 3, "skipped dir, fifo, symlink: %u", res.files_skipped);
    CHECK(res.files_corrupt == 1, "zero-length file corrupt: %u", res.files_corrupt);
    CHECK(res.tmp_removed == 2 && count_suffix(dir, ".tmp") == 0, "temp files removed: %u",
          res.tmp_removed);
    struct stat st;
    CHECK(lstat(p, &st) == 0 && S_ISLNK(st.st_mode), "symlink left alone");
    CHECK(stat(q, &st) == 0 && (size_t)st.st_size == blen, "symlink target untouched");
    CHECK(exists(dir, "snapshot-0150.pcs") && exists(dir, "snapshot-abc.pcs"),
          "ignored names untouched");

    /* Loading again reports nothing new. */
    expect_gen("second load", dir, GEN_A, 4, 0, &res);
    CHECK(res.files_corrupt == 0 && res.tmp_removed == 0, "corrupt file reported once");
    free(a);
    free(b);
}

/* ------------------------------------------------------------------------ */
/* Schema, limits, callbacks, lock */

static void test_schema_limits_lock(void)
{
    const char *dir = fresh_dir("schema");
    struct snapshot_load_result res;
    struct coll c;
    char err[512];
    CHECK(write_gen(dir, 1, 1, 10, 0, 5, NULL) == 0, "schema 1");
    CHECK(write_gen(dir, 7, 2, 10, 0, 5, NULL) == 0, "schema 7");
    coll_init(&c, 0, 0, 0);
    int rc = snapshot_load(dir, 1, NULL, on_meta, on_record, &c, &res, err, sizeof err);
    CHECK(rc == 0 && res.status == SNAPSHOT_LOAD_SCHEMA_MISMATCH && res.schema == 7,
          "schema mismatch: rc %d status %d schema %u", rc, (int)res.status, res.schema);
    CHECK(c.meta_calls == 0 && c.got == 0 && res.files_corrupt == 0, "nothing delivered");
    CHECK(count_suffix(dir, ".pcs") == 2, "mismatching file kept");
    coll_init(&c, 2, 10, 0);
    rc = snapshot_load(dir, 7, NULL, on_meta, on_record, &c, &res, err, sizeof err);
    CHECK(rc == 0 && res.status == SNAPSHOT_LOAD_OK && c.got == 10 && c.bad == 0,
          "load with the file's schema");

    /* Lowered limits skip the file (not corruption) and fall back. */
    const char *d2 = fresh_dir("limits");
    CHECK(write_gen(d2, 1, 1, 3, 10, 5, NULL) == 0, "small records");
    CHECK(write_gen(d2, 1, 2, 3, 5000, 5, NULL) == 0, "big records");
    struct snapshot_limits lim = {1000, 0, 0};
    coll_init(&c, 1, 3, 10);
    rc = snapshot_load(d2, 1, &lim, on_meta, on_record, &c, &res, err, sizeof err);
    CHECK(rc == 0 && res.status == SNAPSHOT_LOAD_OK && c.got == 3 && c.bad == 0 &&
              res.files_skipped == 1 && res.files_corrupt == 0,
          "record limit: status %d skipped %u", (int)res.status, res.files_skipped);
    CHECK(count_suffix(d2, ".pcs") == 2, "over-limit file not quarantined");
    struct snapshot_limits lim2 = {0, 0, 2};
    rc = snapshot_load(d2, 1, &lim2, NULL, NULL, NULL, &res, err, sizeof err);
    CHECK(rc == 0 && res.status == SNAPSHOT_LOAD_NONE && res.files_skipped == 2,
          "record count limit");
    struct snapshot_limits lim3 = {0, 2, 0};
    rc = snapshot_load(d2, 1, &lim3, NULL, NULL, NULL, &res, err, sizeof err);
    CHECK(rc == 0 && res.status == SNAPSHOT_LOAD_NONE && res.files_skipped == 2,
          "metadata limit (4 bytes > 2)");

    /* A callback stopping the load: -1, delivered count reported. */
    coll_init(&c, 2, 3, 5000);
    c.stop_at = 2;
    rc = snapshot_load(d2, 1, NULL, on_meta, on_record, &c, &res, err, sizeof err);
    CHECK(rc == -1 && res.records == 2 && strstr(err, "rejected"), "callback stop: rc %d %s", rc,
          err);

    /* The lock: one writer or loader per directory at a time. */
    struct snapshot_writer *w = snapshot_begin(d2, 1, NULL, 0, err, sizeof err);
    CHECK(w != NULL, "begin: %s", err);
    CHECK(snapshot_begin(d2, 1, NULL, 0, err, sizeof err) == NULL && strstr(err, "locked"),
          "second writer refused: %s", err);
    CHECK(snapshot_load(d2, 1, NULL, NULL, NULL, NULL, &res, err, sizeof err) == -1 &&
              strstr(err, "locked"),
          "loader refused while writing: %s", err);
    snapshot_abort(w);
    CHECK(count_suffix(d2, ".tmp") == 0, "abort removes the temp file");
    CHECK(snapshot_load(d2, 1, NULL, NULL, NULL, NULL, &res, err, sizeof err) == 0,
          "loader works after abort: %s", err);
    snapshot_abort(NULL);
}

/* ------------------------------------------------------------------------ */
/* Crashes and write errors, in forked children */

#define CRASH_RECORDS 1000
#define CRASH_BASE    2500

enum cut_kind { CUT_BYTES_KILL, CUT_BYTES_ERROR, CUT_PHASE, CUT_RECORDS };

struct cut {
    enum cut_kind kind;
    uint64_t at; /* byte limit, phase, or records before _exit */
};

static void kill_at_phase(void *ctx, enum snapshot_phase p)
{
    if ((uintptr_t)ctx == (uintptr_t)p)
        raise(SIGKILL);
}

/* Child: write generation g with the cut applied. Exit codes: 0 committed,
 * 3 add failed, 4 commit failed, 5 begin failed, 6 stopped after k records. */
static void child(const char *dir, unsigned g, struct cut cut)
{
    struct rlimit rl = {0, 0};
    char err[512];
    setrlimit(RLIMIT_CORE, &rl);
    if (cut.kind == CUT_BYTES_KILL || cut.kind == CUT_BYTES_ERROR) {
        if (cut.kind == CUT_BYTES_ERROR)
            signal(SIGXFSZ, SIG_IGN);
        rl.rlim_cur = rl.rlim_max = (rlim_t)cut.at;
        setrlimit(RLIMIT_FSIZE, &rl);
    }
    struct snapshot_writer *w = snapshot_begin(dir, 1, "meta", 4, err, sizeof err);
    if (!w)
        _exit(5);
    if (cut.kind == CUT_PHASE)
        snapshot_set_phase_hook(w, kill_at_phase, (void *)(uintptr_t)cut.at);
    for (size_t i = 0; i < CRASH_RECORDS; i++) {
        if (cut.kind == CUT_RECORDS && i == cut.at)
            _exit(6); /* no commit, no abort: the temp file stays, like a crash */
        size_t len;
        const unsigned char *p = rec_of(g, i, CRASH_BASE, &len);
        if (snapshot_add(w, p, len) != 0) {
            snapshot_abort(w);
            _exit(3);
        }
    }
    _exit(snapshot_commit(w, 2, NULL, err, sizeof err) == 0 ? 0 : 4);
}

static void test_crashes(void)
{
    const char *dir = fresh_dir("crash");
    char name[64];
    struct snapshot_load_result res;
    CHECK(write_gen(dir, 1, 1, CRASH_RECORDS, CRASH_BASE, 2, name) == 0, "generation 1");
    size_t size = 0;
    free(get_file(dir, name, &size));
    CHECK(size > (2u << 20), "crash snapshot spans several buffers: %zu bytes", size);
    /* Record sizes depend on the generation; the header and footer do not. */
    size_t overhead = size;
    for (size_t i = 0; i < CRASH_RECORDS; i++)
        overhead -= 8 + gen_len(1, i, CRASH_BASE);

    /* Deterministic cut points: evenly spread byte offsets with a
     * deterministic jitter, the edges of header/footer, the end; then every
     * commit phase; then stops between records. */
    struct cut cuts[200];
    size_t n = 0;
    for (unsigned k = 0; k < 120; k++) {
        uint64_t at = (uint64_t)size * k / 120 + (k * 7919u) % 4093u;
        cuts[n++] = (struct cut){k % 2 ? CUT_BYTES_ERROR : CUT_BYTES_KILL, at};
    }
    static const int64_t edges[] = {0, 1, 15, 16, 60, -33, -32, -31, -1, 0x7fffffff};
    for (size_t k = 0; k < sizeof edges / sizeof edges[0]; k++)
        for (int kind = 0; kind < 2; kind++) {
            uint64_t at = edges[k] < 0 ? size + (uint64_t)edges[k] : (uint64_t)edges[k];
            if (edges[k] == 0x7fffffff)
                at = size; /* exactly the file size: completes */
            cuts[n++] = (struct cut){kind ? CUT_BYTES_ERROR : CUT_BYTES_KILL, at};
        }
    for (int round = 0; round < 2; round++)
        for (int p = SNAPSHOT_PHASE_WRITTEN; p <= SNAPSHOT_PHASE_PRUNED; p++)
            cuts[n++] = (struct cut){CUT_PHASE, (uint64_t)p};
    static const uint64_t recs[] = {0, 1, 399, 400, 500, 999};
    for (size_t k = 0; k < sizeof recs / sizeof recs[0]; k++)
        cuts[n++] = (struct cut){CUT_RECORDS, recs[k]};

    /* Thousands of expected warnings; failures still print through CHECK. */
    log_setup((enum log_level)(LOG_ERROR + 1), LOG_FORMAT_LOGFMT);
    unsigned current = 1, attempts = 0, corrupt_starts = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned g = (unsigned)k + 2;
        struct cut c = cuts[k];
        size = overhead;
        for (size_t i = 0; i < CRASH_RECORDS; i++)
            size += 8 + gen_len(g, i, CRASH_BASE);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            child(dir, g, c);
        int status = 0;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait");
        bool completes, expect_signal = false;
        int expect_code = 0, sig = 0;
        switch (c.kind) {
        case CUT_BYTES_KILL:
        case CUT_BYTES_ERROR:
            completes = c.at >= size;
            if (!completes && c.kind == CUT_BYTES_KILL) {
                expect_signal = true;
                sig = SIGXFSZ;
            }
            break;
        case CUT_PHASE:
            completes = c.at >= SNAPSHOT_PHASE_RENAMED;
            expect_signal = true;
            sig = SIGKILL;
            break;
        default:
            completes = false;
            expect_code = 6;
            break;
        }
        const char *kinds[] = {"kill at byte", "EFBIG at byte", "kill at phase",
                               "exit after records"};
        char what[128];
        snprintf(what, sizeof what, "cut %zu: %s %llu (file %zu bytes)", k, kinds[c.kind],
                 (unsigned long long)c.at, size);
        if (expect_signal)
            CHECK(WIFSIGNALED(status) && WTERMSIG(status) == sig, "%s: child status 0x%x", what,
                  status);
        else if (c.kind == CUT_BYTES_ERROR && !completes)
            CHECK(WIFEXITED(status) && (WEXITSTATUS(status) == 3 || WEXITSTATUS(status) == 4),
                  "%s: child status 0x%x", what, status);
        else
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == expect_code, "%s: child status 0x%x",
                  what, status);
        /* A write error cleans up after itself: no temp file left. */
        if (c.kind == CUT_BYTES_ERROR)
            CHECK(count_suffix(dir, ".tmp") == 0, "%s: temp file left after write error", what);

        unsigned want = completes ? g : current;
        expect_gen(what, dir, want, CRASH_RECORDS, CRASH_BASE, &res);
        if (res.status != SNAPSHOT_LOAD_OK || res.files_corrupt != 0)
            corrupt_starts++;
        CHECK(res.files_corrupt == 0, "%s: %u corrupt files", what, res.files_corrupt);
        CHECK(count_suffix(dir, ".tmp") == 0, "%s: temp file not removed by load", what);
        current = want;
        attempts++;
    }
    log_setup(LOG_INFO, LOG_FORMAT_LOGFMT);
    CHECK(attempts >= 100, "crash attempts %u", attempts);
    CHECK(corrupt_starts == 0, "corrupt-state starts: %u of %u", corrupt_starts, attempts);
    printf("crash simulation: %u interrupted snapshots, %u corrupt-state starts\n", attempts,
           corrupt_starts);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/test_snapshot.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }
    test_roundtrip();
    test_empty_and_missing();
    test_newest_and_keep();
    test_corruption();
    test_dir_entries();
    test_schema_limits_lock();
    test_crashes();

    /* Clean up the per-test directories and the root. */
    DIR *d = opendir(root);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char p[600];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", root, e->d_name);
            rm_rf(p);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(root);
    free(scratch);
    return test_main_end("test_snapshot");
}
