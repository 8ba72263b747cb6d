/*
 * fuzz_snapshot.c — libFuzzer target for the snapshot loader.
 *
 * The first input byte is a mode: bit 0 recomputes every CRC the bytes'
 * structure allows (header, records, footer chain and checksum), bit 1 also
 * fixes the footer's record count and byte total, so mutations get past the
 * checksums and reach the structural checks. The rest of the input becomes
 * snapshot-200.pcs in a private directory (made once per
 * process under $TMPDIR or /tmp) next to a valid older snapshot-100.pcs, and
 * snapshot_load() runs with small caps. Loading must not crash, leak or hang,
 * and:
 *   - on_meta comes exactly once before any record, and only for the file
 *     that is finally reported as loaded (nothing of a rejected file is ever
 *     delivered);
 *   - when the input is loaded, re-encoding what was delivered (header fields,
 *     metadata, records) gives back exactly the input bytes, so only complete,
 *     canonical files are accepted and their content is delivered unchanged;
 *   - otherwise the older file is loaded with exactly its records, or the
 *     input is refused as a newer format / other schema with nothing delivered.
 */
#include "crc32c.h"
#include "log.h"
#include "snapshot.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SCHEMA 1

static char dir[256];
static char path_new[320], path_corrupt[320], path_old[320];
static unsigned char *old_bytes;
static size_t old_len;
static const char *const old_recs[] = {"", "a", "older snapshot record"};
#define OLD_N (sizeof old_recs / sizeof old_recs[0])

struct got {
    int meta_calls;
    bool record_before_meta;
    struct snapshot_info info;
    char creator[SNAPSHOT_MAX_CREATOR_BYTES + 1];
    unsigned char *meta;
    unsigned char *recs; /* records as len(u32 LE) ‖ bytes, like the file minus CRCs */
    size_t len, cap, n;
};

static void cleanup(void)
{
    char p[320];
    unlink(path_new);
    unlink(path_corrupt);
    unlink(path_old);
    snprintf(p, sizeof p, "%s/snapshot.lock", dir);
    unlink(p);
    rmdir(dir);
}

static void put_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
        abort();
}

static void setup(void)
{
    const char *t = getenv("TMPDIR");
    char err[256];
    snprintf(dir, sizeof dir, "%s/fuzz_snapshot.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir))
        abort();
    snprintf(path_new, sizeof path_new, "%s/snapshot-200.pcs", dir);
    snprintf(path_corrupt, sizeof path_corrupt, "%s/snapshot-200.pcs.corrupt", dir);
    snprintf(path_old, sizeof path_old, "%s/snapshot-100.pcs", dir);
    log_setup((enum log_level)(LOG_ERROR + 1), LOG_FORMAT_LOGFMT); /* every input logs */

    /* The older snapshot, written through the API, then renamed to N=100. */
    struct snapshot_writer *w = snapshot_begin(dir, SCHEMA, "old", 3, err, sizeof err);
    if (!w)
        abort();
    for (size_t i = 0; i < OLD_N; i++)
        if (snapshot_add(w, old_recs[i], strlen(old_recs[i])) != 0)
            abort();
    struct snapshot_commit_result cr;
    if (snapshot_commit(w, 1, &cr, err, sizeof err) != 0)
        abort();
    char p[320];
    snprintf(p, sizeof p, "%s/%s", dir, cr.file);
    FILE *f = fopen(p, "rb");
    if (!f)
        abort();
    old_bytes = malloc(1 << 16);
    old_len = fread(old_bytes, 1, 1 << 16, f);
    fclose(f);
    unlink(p);
    put_file(path_old, old_bytes, old_len);
    atexit(cleanup);
}

static int on_meta(void *ctx, const struct snapshot_info *info)
{
    struct got *g = ctx;
    g->meta_calls++;
    g->info = *info;
    snprintf(g->creator, sizeof g->creator, "%s", info->creator);
    free(g->meta);
    g->meta = malloc(info->meta_len ? info->meta_len : 1);
    if (info->meta_len)
        memcpy(g->meta, info->meta, info->meta_len);
    return 0;
}

static void append(struct got *g, const void *p, size_t n)
{
    if (g->len + n > g->cap) {
        g->cap = (g->len + n) * 2;
        g->recs = realloc(g->recs, g->cap);
        if (!g->recs)
            abort();
    }
    if (n)
        memcpy(g->recs + g->len, p, n);
    g->len += n;
}

static int on_record(void *ctx, const void *rec, size_t len)
{
    struct got *g = ctx;
    unsigned char l[4];
    if (g->meta_calls == 0)
        g->record_before_meta = true;
    for (int i = 0; i < 4; i++)
        l[i] = (unsigned char)(len >> (8 * i));
    append(g, l, 4);
    append(g, rec, len);
    g->n++;
    return 0;
}

static void le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Independent encoder of format version 1 (docs/snapshots.md): what the
 * input must be, byte for byte, if the loader accepted it. */
static bool reencodes_to(const struct got *g, const uint8_t *data, size_t size)
{
    size_t clen = strlen(g->creator), mlen = g->info.meta_len;
    size_t hlen = 40 + clen + mlen + 4, total = hlen + g->len + 4 * g->n + 32;
    if (total != size)
        return false;
    unsigned char *b = malloc(total), *p = b;
    static const unsigned char magic[8] = {0x89, 'P', 'C', 'S', 'N', 'A', 'P', '\n'};
    memcpy(p, magic, 8);
    le(p + 8, 1, 4);
    le(p + 12, hlen, 4);
    le(p + 16, g->info.schema, 4);
    le(p + 20, 0, 4);
    le(p + 24, (uint64_t)g->info.created_ms, 8);
    le(p + 32, clen, 4);
    le(p + 36, mlen, 4);
    memcpy(p + 40, g->creator, clen);
    if (mlen)
        memcpy(p + 40 + clen, g->meta, mlen);
    uint32_t hcrc = crc32c(b, hlen - 4);
    le(p + hlen - 4, hcrc, 4);
    p += hlen;
    unsigned char c4[4];
    le(c4, hcrc, 4);
    uint32_t chain = crc32c(c4, 4);
    uint64_t bytes = 0;
    for (size_t off = 0; off < g->len;) {
        size_t len = (size_t)g->recs[off] | (size_t)g->recs[off + 1] << 8 |
                     (size_t)g->recs[off + 2] << 16 | (size_t)g->recs[off + 3] << 24;
        memcpy(p, g->recs + off, 4);
        memcpy(p + 8, g->recs + off + 4, len);
        uint32_t crc = crc32c(p, 4);
        crc = crc32c_update(crc, p + 8, len);
        le(p + 4, crc, 4);
        le(c4, crc, 4);
        chain = crc32c_update(chain, c4, 4);
        p += 8 + len;
        off += 4 + len;
        bytes += len;
    }
    le(p, 0xFFFFFFFFu, 4);
    le(p + 4, 0, 4);
    le(p + 8, g->n, 8);
    le(p + 16, bytes, 8);
    le(p + 24, chain, 4);
    le(p + 28, crc32c(p, 28), 4);
    bool same = memcmp(b, data, size) == 0;
    free(b);
    return same;
}

static bool is_old(const struct got *g)
{
    size_t off = 0;
    if (g->n != OLD_N)
        return false;
    for (size_t i = 0; i < OLD_N; i++) {
        size_t len = strlen(old_recs[i]);
        if (g->recs[off] != len || memcmp(g->recs + off + 4, old_recs[i], len) != 0)
            return false;
        off += 4 + len;
    }
    return g->info.meta_len == 3 && memcmp(g->meta, "old", 3) == 0;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Make the checksums (and with fix_counts the footer totals) right for
 * whatever structure the bytes have; the loader must still judge the rest. */
static void repair(unsigned char *b, size_t size, bool fix_counts)
{
    if (size < 16)
        return;
    uint32_t hlen = get32(b + 12);
    if (hlen < 20 || hlen > size)
        return;
    uint32_t hcrc = crc32c(b, hlen - 4);
    le(b + hlen - 4, hcrc, 4);
    unsigned char c4[4];
    le(c4, hcrc, 4);
    uint32_t chain = crc32c(c4, 4);
    uint64_t n = 0, bytes = 0;
    size_t off = hlen;
    while (size - off >= 8) {
        uint32_t len = get32(b + off);
        if (len == 0xFFFFFFFFu) {
            if (size - off < 32)
                return;
            if (fix_counts) {
                le(b + off + 8, n, 8);
                le(b + off + 16, bytes, 8);
            }
            le(b + off + 24, chain, 4);
            le(b + off + 28, crc32c(b + off, 28), 4);
            return;
        }
        if (len > size - off - 8)
            return;
        uint32_t crc = crc32c_update(crc32c(b + off, 4), b + off + 8, len);
        le(b + off + 4, crc, 4);
        le(c4, crc, 4);
        chain = crc32c_update(chain, c4, 4);
        n++;
        bytes += len;
        off += 8 + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t insize)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    if (insize == 0)
        return 0;
    size_t size = insize - 1;
    unsigned char *data = malloc(size ? size : 1);
    if (size)
        memcpy(data, input + 1, size);
    if (input[0] & 1)
        repair(data, size, input[0] & 2);

    unlink(path_corrupt);
    if (access(path_old, F_OK) != 0)
        abort(); /* the valid older file must never be renamed or removed */
    put_file(path_new, data, size);

    struct snapshot_limits lim = {4096, 1024, 1000};
    struct snapshot_load_result res;
    struct got g = {0};
    char err[512];
    int rc = snapshot_load(dir, SCHEMA, &lim, on_meta, on_record, &g, &res, err, sizeof err);
    if (rc != 0 || g.record_before_meta || g.meta_calls > 1 || res.records != g.n)
        abort();
    switch (res.status) {
    case SNAPSHOT_LOAD_OK:
        if (g.meta_calls != 1)
            abort();
        if (strcmp(res.file, "snapshot-200.pcs") == 0) {
            if (!reencodes_to(&g, data, size) || res.files_corrupt || res.files_skipped)
                abort();
        } else if (strcmp(res.file, "snapshot-100.pcs") != 0 || !is_old(&g) ||
                   res.files_corrupt + res.files_skipped != 1 || !res.first_problem[0]) {
            abort();
        }
        break;
    case SNAPSHOT_LOAD_NEWER_FORMAT:
    case SNAPSHOT_LOAD_SCHEMA_MISMATCH:
        if (g.meta_calls || g.n || strcmp(res.file, "snapshot-200.pcs") != 0)
            abort();
        if (res.status == SNAPSHOT_LOAD_NEWER_FORMAT &&
            (size < 16 || ((uint32_t)data[8] | (uint32_t)data[9] << 8 | (uint32_t)data[10] << 16 |
                           (uint32_t)data[11] << 24) <= 1))
            abort();
        break;
    default:
        abort(); /* the older valid file is always there */
    }
    /* A corrupt input is renamed aside, a skipped one stays; either way the
     * next iteration starts from a clean slate. */
    unlink(path_new);
    free(data);
    free(g.meta);
    free(g.recs);
    return 0;
}
