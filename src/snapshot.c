/*
 * snapshot.c — write snapshot files atomically and load the newest valid one.
 *
 * Writing streams records through one buffer into snapshot-<N>.tmp and makes
 * the file durable in the classic order: fsync(file) → rename → fsync(dir) →
 * prune old files. Loading validates a file completely in a first pass
 * (CRCs streamed through a fixed buffer) and re-reads it to deliver records
 * in a second pass, re-checking every CRC, so nothing is delivered from a
 * file that is not wholly intact. docs/snapshots.md has the byte layout.
 *
 * Deliberately not done here: knowing what the records mean (the pipeline
 * serialises series), compression, deciding when to snapshot (a timer thread
 * in the caller), exporting metrics (the caller turns the counts of
 * snapshot_load_result into self-metrics), creating the directory.
 * No third-party library: POSIX file I/O, flock(), and crc32c.c.
 */
#include "snapshot.h"

#include "clock.h"
#include "crc32c.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PROMCAST_VERSION
#define PROMCAST_VERSION "unknown"
#endif

/* "\x89PCSNAP\n": the high byte and the newline catch 7-bit and text-mode
 * copies, like PNG's signature. */
static const unsigned char MAGIC[8] = {0x89, 'P', 'C', 'S', 'N', 'A', 'P', '\n'};

/* Every format version starts with magic, u32 version, u32 header_len and
 * ends its header with a CRC-32C of the bytes before it, so a newer file can
 * be told apart from a corrupt one without understanding it. */
#define PRELUDE_BYTES 16
/* Version 1 fields before the creator string. */
#define HEADER_FIXED_BYTES 40
#define HEADER_V1_MAX                                                                              \
    (HEADER_FIXED_BYTES + SNAPSHOT_MAX_CREATOR_BYTES + SNAPSHOT_MAX_META_BYTES + 4)
#define RECORD_PREFIX_BYTES 8
/* A record length no record may have: introduces the footer. */
#define FOOTER_MARKER 0xFFFFFFFFu
#define FOOTER_BYTES  32

/* Write and read buffer; big enough that syscalls are not the cost. */
#define IO_BUF_BYTES (1u << 20)
/* Start writeback every so many bytes so the final fsync does not have a
 * whole multi-GB snapshot of dirty pages to flush at once. */
#define WRITEBACK_BYTES (32u << 20)

#define NAME_PREFIX "snapshot-"
#define LOCK_NAME   "snapshot.lock"
#define NAME_CAP    64
/* N has at most 18 digits, so N + 1 never overflows an int64_t. */
#define NAME_MAX_DIGITS 18
#define NAME_MAX_NUMBER INT64_C(999999999999999999)
#define EXCL_TRIES      1000

/* ------------------------------------------------------------------------ */
/* Small helpers */

static void fmt(char *buf, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));

static void fmt(char *buf, size_t cap, const char *f, ...)
{
    if (!buf || cap == 0)
        return;
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, cap, f, ap);
    va_end(ap);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* The chain CRC covers the header CRC and every record CRC in order, so the
 * footer checks that no record was dropped, repeated or reordered. */
static uint32_t chain_add(uint32_t chain, uint32_t crc)
{
    unsigned char b[4];
    put32(b, crc);
    return crc32c_update(chain, b, 4);
}

static void name_of(char *buf, int64_t n, const char *suffix)
{
    snprintf(buf, NAME_CAP, NAME_PREFIX "%" PRId64 "%s", n, suffix);
}

/*
 * Match "snapshot-<N><suffix>" with N canonical (no sign, no leading zero,
 * ≤ 18 digits). Returns 0 with *n set; 1 when the name has the shape
 * "snapshot-*<suffix>" but N is not canonical; -1 for any other name.
 */
static int parse_name(const char *name, const char *suffix, int64_t *n)
{
    size_t len = strlen(name), plen = strlen(NAME_PREFIX), slen = strlen(suffix);
    if (len < plen + slen || memcmp(name, NAME_PREFIX, plen) != 0 ||
        strcmp(name + len - slen, suffix) != 0)
        return -1;
    const char *d = name + plen;
    size_t nd = len - plen - slen;
    if (nd == 0 || nd > NAME_MAX_DIGITS || (d[0] == '0' && nd > 1))
        return 1;
    int64_t v = 0;
    for (size_t i = 0; i < nd; i++) {
        if (d[i] < '0' || d[i] > '9')
            return 1;
        v = v * 10 + (d[i] - '0');
    }
    *n = v;
    return 0;
}

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

/* ------------------------------------------------------------------------ */
/* Directory scan and lock */

struct numlist {
    int64_t *v;
    size_t n, cap;
};

static int numlist_push(struct numlist *l, int64_t x)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        int64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return 0;
}

/* Largest first: newest snapshot first. */
static void numlist_sort(struct numlist *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof *l->v, cmp_desc);
}

struct scan {
    struct numlist pcs, tmp, corrupt;
    unsigned ignored; /* snapshot-*.pcs with a non-canonical N */
};

static void scan_cleanup(struct scan *s)
{
    free(s->pcs.v);
    free(s->tmp.v);
    free(s->corrupt.v);
    memset(s, 0, sizeof *s);
}

/* List the snapshot files of the directory; log_ignored: warn about names
 * like snapshot-abc.pcs (the loader does, writers stay quiet). */
static int scan_dir(int dirfd, const char *dir, bool log_ignored, struct scan *s, char *err,
                    size_t errcap)
{
    /* fdopendir() takes over its fd, so give it a fresh one of the same dir. */
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        fmt(err, errcap, "snapshot dir %s: cannot list: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        int64_t n;
        int rc = 0;
        if (parse_name(e->d_name, ".pcs", &n) == 0)
            rc = numlist_push(&s->pcs, n);
        else if (parse_name(e->d_name, ".tmp", &n) == 0)
            rc = numlist_push(&s->tmp, n);
        else if (parse_name(e->d_name, ".pcs.corrupt", &n) == 0)
            rc = numlist_push(&s->corrupt, n);
        else if (parse_name(e->d_name, ".pcs", &n) == 1) {
            s->ignored++;
            if (log_ignored)
                log_warn("ignoring file named like a snapshot", "dir", dir, "file", e->d_name,
                         "reason", "not snapshot-<N>.pcs with a canonical number N");
        }
        if (rc != 0) {
            fmt(err, errcap, "snapshot dir %s: out of memory listing files", dir);
            closedir(d);
            goto fail;
        }
        errno = 0;
    }
    if (errno != 0) {
        fmt(err, errcap, "snapshot dir %s: cannot list: %s", dir, strerror(errno));
        closedir(d);
        goto fail;
    }
    closedir(d);
    numlist_sort(&s->pcs);
    numlist_sort(&s->tmp);
    numlist_sort(&s->corrupt);
    return 0;
fail:
    scan_cleanup(s);
    return -1;
}

/*
 * Take the directory's lock file without waiting. With may_skip (the loader)
 * a lock file that cannot be created (read-only directory) is not an error:
 * *lockfd stays -1 and the load goes on without cleaning anything.
 */
static int lock_dir(int dirfd, const char *dir, bool may_skip, int *lockfd, char *err,
                    size_t errcap)
{
    *lockfd = -1;
    int fd = openat(dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 && may_skip && (errno == EROFS || errno == EACCES || errno == EPERM))
        fd = openat(dirfd, LOCK_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (may_skip && (errno == EROFS || errno == EACCES || errno == EPERM || errno == ENOENT))
            return 0;
        fmt(err, errcap, "snapshot dir %s: cannot open %s: %s", dir, LOCK_NAME, strerror(errno));
        return -1;
    }
    int rc;
    do
        rc = flock(fd, LOCK_EX | LOCK_NB);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            fmt(err, errcap,
                "snapshot dir %s is locked: another snapshot is being written or loaded", dir);
        else
            fmt(err, errcap, "snapshot dir %s: cannot lock %s: %s", dir, LOCK_NAME, strerror(e));
        return -1;
    }
    *lockfd = fd;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Writer */

struct snapshot_writer {
    char *dir;
    int dirfd, lockfd, fd;
    char tmpname[NAME_CAP], name[NAME_CAP];
    int64_t number;
    unsigned char *buf;
    size_t used;
    uint64_t off;    /* bytes handed to write() */
    uint64_t wb_off; /* writeback started up to here */
    uint64_t records, record_bytes;
    uint32_t chain;
    bool failed, renamed;
    char errmsg[256];
    snapshot_phase_fn on_phase;
    void *phase_ctx;
};

static void wfail(struct snapshot_writer *w, const char *f, ...)
    __attribute__((format(printf, 2, 3)));

static void wfail(struct snapshot_writer *w, const char *f, ...)
{
    if (w->failed)
        return;
    w->failed = true;
    int n = snprintf(w->errmsg, sizeof w->errmsg, "snapshot %s/%s: ", w->dir, w->tmpname);
    if (n < 0 || (size_t)n >= sizeof w->errmsg)
        return;
    va_list ap;
    va_start(ap, f);
    vsnprintf(w->errmsg + n, sizeof w->errmsg - (size_t)n, f, ap);
    va_end(ap);
}

static void phase(struct snapshot_writer *w, enum snapshot_phase p)
{
    if (w->on_phase)
        w->on_phase(w->phase_ctx, p);
}

static int write_all(struct snapshot_writer *w, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            wfail(w, "write at offset %" PRIu64 ": %s", w->off,
                  k < 0 ? strerror(errno) : "wrote nothing");
            return -1;
        }
        p += k;
        n -= (size_t)k;
        w->off += (uint64_t)k;
    }
    if (w->off - w->wb_off >= WRITEBACK_BYTES) {
        /* Only a hint: errors surface at fsync, which is what counts. */
        (void)sync_file_range(w->fd, (off64_t)w->wb_off, (off64_t)(w->off - w->wb_off),
                              SYNC_FILE_RANGE_WRITE);
        w->wb_off = w->off;
    }
    return 0;
}

static int flush(struct snapshot_writer *w)
{
    if (w->failed)
        return -1;
    if (w->used == 0)
        return 0;
    int rc = write_all(w, w->buf, w->used);
    w->used = 0;
    return rc;
}

static int emit(struct snapshot_writer *w, const void *p, size_t n)
{
    if (w->failed)
        return -1;
    if (n == 0)
        return 0;
    if (n >= IO_BUF_BYTES / 2) {
        /* Large pieces go straight to the kernel instead of through the buffer. */
        if (flush(w) != 0)
            return -1;
        return write_all(w, p, n);
    }
    if (w->used + n > IO_BUF_BYTES && flush(w) != 0)
        return -1;
    memcpy(w->buf + w->used, p, n);
    w->used += n;
    return 0;
}

/* Release everything; removes the temp file unless it became the snapshot. */
static void writer_free(struct snapshot_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->dirfd >= 0 && w->tmpname[0] && !w->renamed) {
        if (unlinkat(w->dirfd, w->tmpname, 0) != 0 && errno != ENOENT)
            log_warn("cannot remove snapshot temp file", "dir", w->dir, "file", w->tmpname, "error",
                     strerror(errno));
    }
    if (w->lockfd >= 0)
        close(w->lockfd); /* releases the flock */
    if (w->dirfd >= 0)
        close(w->dirfd);
    free(w->buf);
    free(w->dir);
    free(w);
}

struct snapshot_writer *snapshot_begin(const char *dir, uint32_t schema, const void *meta,
                                       size_t meta_len, char *err, size_t errcap)
{
    struct snapshot_writer *w = NULL;
    struct scan s = {0};

    if (!dir || (meta_len > 0 && !meta)) {
        fmt(err, errcap, "snapshot_begin: no directory or NULL metadata");
        goto fail;
    }
    if (meta_len > SNAPSHOT_MAX_META_BYTES) {
        fmt(err, errcap, "snapshot metadata of %zu bytes exceeds SNAPSHOT_MAX_META_BYTES (%u)",
            meta_len, SNAPSHOT_MAX_META_BYTES);
        goto fail;
    }
    w = calloc(1, sizeof *w);
    if (w)
        w->dirfd = w->lockfd = w->fd = -1;
    if (!w || !(w->dir = strdup(dir)) || !(w->buf = malloc(IO_BUF_BYTES))) {
        fmt(err, errcap, "snapshot %s: out of memory", dir);
        goto fail;
    }
    w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd < 0) {
        fmt(err, errcap, "snapshot dir %s: %s", dir, strerror(errno));
        goto fail;
    }
    if (lock_dir(w->dirfd, dir, false, &w->lockfd, err, errcap) != 0)
        goto fail;
    if (scan_dir(w->dirfd, dir, false, &s, err, errcap) != 0)
        goto fail;

    /* N must be above every existing one so "largest N" stays "newest",
     * even when the wall clock stepped back or two snapshots share a ms. */
    int64_t created = clock_now_ms();
    int64_t n = created > 0 ? created : 0;
    if (s.pcs.n > 0 && s.pcs.v[0] >= n)
        n = s.pcs.v[0] + 1;
    if (s.tmp.n > 0 && s.tmp.v[0] >= n)
        n = s.tmp.v[0] + 1;
    for (int tries = 0;; tries++) {
        if (n > NAME_MAX_NUMBER || tries == EXCL_TRIES) {
            fmt(err, errcap, "snapshot dir %s: no free snapshot name", dir);
            goto fail;
        }
        name_of(w->tmpname, n, ".tmp");
        w->fd = openat(w->dirfd, w->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                       0644);
        if (w->fd >= 0)
            break;
        if (errno != EEXIST) {
            fmt(err, errcap, "snapshot %s/%s: %s", dir, w->tmpname, strerror(errno));
            w->tmpname[0] = '\0';
            goto fail;
        }
        n++;
    }
    w->number = n;
    name_of(w->name, n, ".pcs");

    static const char version[] = "promcast " PROMCAST_VERSION
#ifdef PROMCAST_REVISION
                                  " (" PROMCAST_REVISION ")"
#endif
        ;
    /* The format allows printable ASCII only (see creator_ok). */
    char creator[SNAPSHOT_MAX_CREATOR_BYTES];
    size_t clen = 0;
    for (; version[clen] && clen < sizeof creator; clen++)
        creator[clen] = version[clen] >= 0x20 && version[clen] <= 0x7e ? version[clen] : '?';
    uint32_t hlen = (uint32_t)(HEADER_FIXED_BYTES + clen + meta_len + 4);
    unsigned char h[HEADER_FIXED_BYTES];
    memcpy(h, MAGIC, 8);
    put32(h + 8, SNAPSHOT_FORMAT_VERSION);
    put32(h + 12, hlen);
    put32(h + 16, schema);
    put32(h + 20, 0); /* flags: none defined in version 1 */
    put64(h + 24, (uint64_t)created);
    put32(h + 32, (uint32_t)clen);
    put32(h + 36, (uint32_t)meta_len);
    uint32_t hcrc = crc32c(h, sizeof h);
    hcrc = crc32c_update(hcrc, creator, clen);
    hcrc = crc32c_update(hcrc, meta, meta_len);
    unsigned char c[4];
    put32(c, hcrc);
    emit(w, h, sizeof h);
    emit(w, creator, clen);
    emit(w, meta, meta_len);
    emit(w, c, 4);
    if (w->failed) {
        fmt(err, errcap, "%s", w->errmsg);
        goto fail;
    }
    w->chain = chain_add(0, hcrc);
    scan_cleanup(&s);
    return w;
fail:
    scan_cleanup(&s);
    writer_free(w);
    return NULL;
}

void snapshot_set_phase_hook(struct snapshot_writer *w, snapshot_phase_fn fn, void *ctx)
{
    if (!w)
        return;
    w->on_phase = fn;
    w->phase_ctx = ctx;
}

const char *snapshot_error(const struct snapshot_writer *w)
{
    return w ? w->errmsg : "no writer";
}

int snapshot_add(struct snapshot_writer *w, const void *rec, size_t len)
{
    if (!w || w->failed)
        return -1;
    if (len > 0 && !rec) {
        wfail(w, "record %" PRIu64 " is NULL", w->records);
        return -1;
    }
    if (len > SNAPSHOT_MAX_RECORD_BYTES) {
        wfail(w, "record %" PRIu64 " of %zu bytes exceeds SNAPSHOT_MAX_RECORD_BYTES (%u)",
              w->records, len, SNAPSHOT_MAX_RECORD_BYTES);
        return -1;
    }
    if (w->records >= SNAPSHOT_MAX_RECORDS) {
        wfail(w, "more than SNAPSHOT_MAX_RECORDS records");
        return -1;
    }
    unsigned char pre[RECORD_PREFIX_BYTES];
    put32(pre, (uint32_t)len);
    /* The CRC covers the length too: a flipped length bit is caught here
     * rather than as a misparse of everything after it. */
    uint32_t crc = crc32c_update(crc32c(pre, 4), rec, len);
    put32(pre + 4, crc);
    if (emit(w, pre, sizeof pre) != 0 || emit(w, rec, len) != 0)
        return -1;
    w->chain = chain_add(w->chain, crc);
    w->records++;
    w->record_bytes += len;
    return 0;
}

/* Delete complete snapshots beyond the newest `keep` and quarantined files
 * beyond the newest `keep`. Never touches the snapshot just written. No
 * directory fsync afterwards: a deletion lost to a power cut only brings back
 * an older file, which the next prune removes again. The same holds for the
 * loader's temp-file removal and quarantine renames. */
static unsigned prune(struct snapshot_writer *w, unsigned keep)
{
    struct scan s = {0};
    char err[256];
    unsigned removed = 0;
    if (scan_dir(w->dirfd, w->dir, false, &s, err, sizeof err) != 0) {
        log_warn("cannot prune old snapshots", "error", err);
        return 0;
    }
    for (int kind = 0; kind < 2; kind++) {
        struct numlist *l = kind == 0 ? &s.pcs : &s.corrupt;
        for (size_t i = keep; i < l->n; i++) {
            char name[NAME_CAP];
            if (kind == 0 && l->v[i] == w->number)
                continue;
            name_of(name, l->v[i], kind == 0 ? ".pcs" : ".pcs.corrupt");
            if (unlinkat(w->dirfd, name, 0) != 0) {
                log_warn("cannot remove old snapshot", "dir", w->dir, "file", name, "error",
                         strerror(errno));
                continue;
            }
            log_debug("removed old snapshot", "dir", w->dir, "file", name);
            removed++;
            phase(w, SNAPSHOT_PHASE_PRUNED);
        }
    }
    scan_cleanup(&s);
    return removed;
}

int snapshot_commit(struct snapshot_writer *w, unsigned keep, struct snapshot_commit_result *res,
                    char *err, size_t errcap)
{
    if (!w) {
        fmt(err, errcap, "snapshot_commit: no writer");
        return -1;
    }
    if (w->failed)
        goto fail;
    unsigned char f[FOOTER_BYTES];
    put32(f, FOOTER_MARKER);
    put32(f + 4, 0);
    put64(f + 8, w->records);
    put64(f + 16, w->record_bytes);
    put32(f + 24, w->chain);
    put32(f + 28, crc32c(f, 28));
    if (emit(w, f, sizeof f) != 0 || flush(w) != 0)
        goto fail;
    phase(w, SNAPSHOT_PHASE_WRITTEN);

    /* After a failed fsync the page cache may already have dropped the dirty
     * pages, so retrying could report success for lost data: give up. */
    if (fsync(w->fd) != 0) {
        wfail(w, "fsync: %s", strerror(errno));
        goto fail;
    }
    int rc = close(w->fd);
    w->fd = -1;
    if (rc != 0) {
        wfail(w, "close: %s", strerror(errno));
        goto fail;
    }
    phase(w, SNAPSHOT_PHASE_SYNCED);

    if (renameat(w->dirfd, w->tmpname, w->dirfd, w->name) != 0) {
        wfail(w, "rename to %s: %s", w->name, strerror(errno));
        goto fail;
    }
    w->renamed = true;
    phase(w, SNAPSHOT_PHASE_RENAMED);

    if (fsync(w->dirfd) != 0) {
        wfail(w, "directory fsync after rename to %s: %s (file kept, nothing pruned)", w->name,
              strerror(errno));
        goto fail;
    }
    phase(w, SNAPSHOT_PHASE_DURABLE);

    unsigned removed = prune(w, keep ? keep : SNAPSHOT_DEFAULT_KEEP);
    if (res) {
        memset(res, 0, sizeof *res);
        snprintf(res->file, sizeof res->file, "%s", w->name);
        res->records = w->records;
        res->bytes = w->off;
        res->files_removed = removed;
    }
    {
        char nrec[24], nbytes[24];
        log_debug("snapshot written", "dir", w->dir, "file", w->name, "records",
                  log_fmt_u64(nrec, sizeof nrec, w->records), "bytes",
                  log_fmt_u64(nbytes, sizeof nbytes, w->off));
    }
    writer_free(w);
    return 0;
fail:
    fmt(err, errcap, "%s", w->errmsg);
    writer_free(w);
    return -1;
}

void snapshot_abort(struct snapshot_writer *w)
{
    writer_free(w);
}

/* ------------------------------------------------------------------------ */
/* Loader */

/* Buffered reader over one file that never reads past the size the file had
 * when it was opened, so a file growing under us cannot keep us reading. */
struct rd {
    int fd;
    unsigned char *buf;
    size_t pos, len;
    uint64_t fpos;  /* file offset of buf[len] */
    uint64_t limit; /* file size at open */
    int err;        /* errno of a failed read, 0 if none */
};

static uint64_t rd_off(const struct rd *r)
{
    return r->fpos - (r->len - r->pos);
}

static bool rd_fill(struct rd *r)
{
    if (r->pos < r->len)
        return true;
    if (r->err || r->fpos >= r->limit)
        return false;
    uint64_t left = r->limit - r->fpos;
    size_t want = left < IO_BUF_BYTES ? (size_t)left : IO_BUF_BYTES;
    ssize_t k;
    do
        k = read(r->fd, r->buf, want);
    while (k < 0 && errno == EINTR);
    if (k < 0) {
        r->err = errno;
        return false;
    }
    if (k == 0) {
        /* Shrunk since fstat: treat the new end as the end. */
        r->limit = r->fpos;
        return false;
    }
    r->pos = 0;
    r->len = (size_t)k;
    r->fpos += (uint64_t)k;
    return true;
}

/* Copy up to n bytes to dst (NULL: only feed *crc, when given). Returns how
 * many were available before end of file or a read error. */
static size_t rd_take(struct rd *r, void *dst, size_t n, uint32_t *crc)
{
    size_t got = 0;
    while (got < n && rd_fill(r)) {
        size_t k = r->len - r->pos;
        if (k > n - got)
            k = n - got;
        if (dst)
            memcpy((unsigned char *)dst + got, r->buf + r->pos, k);
        if (crc)
            *crc = crc32c_update(*crc, r->buf + r->pos, k);
        r->pos += k;
        got += k;
    }
    return got;
}

static int rd_seek(struct rd *r, uint64_t off)
{
    if (lseek(r->fd, (off_t)off, SEEK_SET) < 0) {
        r->err = errno;
        return -1;
    }
    r->pos = r->len = 0;
    r->fpos = off;
    return 0;
}

enum vstatus {
    V_OK = 0,
    V_CORRUPT, /* logged, quarantined, fall back */
    V_SKIP,    /* unreadable or over a lowered limit: logged, fall back */
    V_NEWER,   /* valid header of a newer format: stop */
};

struct vinfo {
    enum vstatus st;
    char why[200];
    uint32_t version, schema, header_len, header_crc;
    int64_t created_ms;
    char creator[SNAPSHOT_MAX_CREATOR_BYTES + 1];
    unsigned char *meta; /* owned */
    size_t meta_len;
    uint64_t records, record_bytes, footer_off;
    size_t max_len;
};

static void vset(struct vinfo *v, enum vstatus st, const char *f, ...)
    __attribute__((format(printf, 3, 4)));

static void vset(struct vinfo *v, enum vstatus st, const char *f, ...)
{
    v->st = st;
    va_list ap;
    va_start(ap, f);
    vsnprintf(v->why, sizeof v->why, f, ap);
    va_end(ap);
}

/* A short read is truncation unless the read failed. */
static void short_read(struct vinfo *v, const struct rd *r, const char *what, uint64_t at)
{
    if (r->err)
        vset(v, V_SKIP, "read error in %s at offset %" PRIu64 ": %s", what, rd_off(r),
             strerror(r->err));
    else
        vset(v, V_CORRUPT,
             "truncated in %s starting at offset %" PRIu64 " (file ends at %" PRIu64 ")", what, at,
             r->limit);
}

/* Printable ASCII only: it is handed out as a C string and logged, so a NUL
 * or control byte would change or garble it. */
static bool creator_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return false;
    return true;
}

static int read_header(struct rd *r, const struct snapshot_limits *lim, struct vinfo *v)
{
    unsigned char pre[PRELUDE_BYTES], c[4];
    if (rd_take(r, pre, sizeof pre, NULL) != sizeof pre) {
        short_read(v, r, "header", 0);
        return -1;
    }
    if (memcmp(pre, MAGIC, sizeof MAGIC) != 0) {
        vset(v, V_CORRUPT, "bad magic at offset 0 (not a promcast snapshot)");
        return -1;
    }
    v->version = get32(pre + 8);
    v->header_len = get32(pre + 12);
    if (v->version == 0) {
        vset(v, V_CORRUPT, "format version 0 at offset 8");
        return -1;
    }
    if (v->version > SNAPSHOT_FORMAT_VERSION) {
        /* Only prove that the header is intact: then it really is newer. */
        if (v->header_len < PRELUDE_BYTES + 4 || v->header_len > r->limit) {
            vset(v, V_CORRUPT, "header length %" PRIu32 " at offset 12 is impossible",
                 v->header_len);
            return -1;
        }
        uint32_t crc = crc32c(pre, sizeof pre);
        size_t rest = v->header_len - PRELUDE_BYTES - 4;
        if (rd_take(r, NULL, rest, &crc) != rest || rd_take(r, c, 4, NULL) != 4) {
            short_read(v, r, "header", 0);
            return -1;
        }
        if (get32(c) != crc) {
            vset(v, V_CORRUPT, "header checksum mismatch at offset %" PRIu32, v->header_len - 4);
            return -1;
        }
        vset(v, V_NEWER, "format version %" PRIu32 " is newer than this promcast reads (%d)",
             v->version, SNAPSHOT_FORMAT_VERSION);
        return -1;
    }
    if (v->header_len < HEADER_FIXED_BYTES + 4 || v->header_len > HEADER_V1_MAX) {
        vset(v, V_CORRUPT, "header length %" PRIu32 " at offset 12 is impossible", v->header_len);
        return -1;
    }
    unsigned char h[HEADER_FIXED_BYTES];
    memcpy(h, pre, sizeof pre);
    if (rd_take(r, h + PRELUDE_BYTES, sizeof h - PRELUDE_BYTES, NULL) != sizeof h - PRELUDE_BYTES) {
        short_read(v, r, "header", 0);
        return -1;
    }
    uint32_t clen = get32(h + 32), mlen = get32(h + 36), flags = get32(h + 20);
    /* Checked before trusting the CRC range: the lengths must add up. */
    if (clen > SNAPSHOT_MAX_CREATOR_BYTES || mlen > SNAPSHOT_MAX_META_BYTES ||
        (uint64_t)HEADER_FIXED_BYTES + clen + mlen + 4 != v->header_len) {
        vset(v, V_CORRUPT,
             "header lengths disagree (header %" PRIu32 ", creator %" PRIu32 ", meta %" PRIu32 ")",
             v->header_len, clen, mlen);
        return -1;
    }
    if (mlen > 0 && !(v->meta = malloc(mlen))) {
        vset(v, V_SKIP, "out of memory for %" PRIu32 " bytes of metadata", mlen);
        return -1;
    }
    uint32_t crc = crc32c(h, sizeof h);
    if (rd_take(r, v->creator, clen, &crc) != clen || rd_take(r, v->meta, mlen, &crc) != mlen ||
        rd_take(r, c, 4, NULL) != 4) {
        short_read(v, r, "header", 0);
        return -1;
    }
    v->creator[clen] = '\0';
    if (get32(c) != crc) {
        vset(v, V_CORRUPT, "header checksum mismatch at offset %" PRIu32, v->header_len - 4);
        return -1;
    }
    if (flags != 0) {
        vset(v, V_CORRUPT, "unknown header flags 0x%" PRIx32 " at offset 20", flags);
        return -1;
    }
    if (!creator_ok(v->creator, clen)) {
        vset(v, V_CORRUPT, "creator string at offset %d is not printable ASCII",
             HEADER_FIXED_BYTES);
        return -1;
    }
    if (mlen > lim->max_meta_bytes) {
        vset(v, V_SKIP, "metadata of %" PRIu32 " bytes is over the limit of %zu", mlen,
             lim->max_meta_bytes);
        return -1;
    }
    v->schema = get32(h + 16);
    v->created_ms = (int64_t)get64(h + 24);
    v->meta_len = mlen;
    v->header_crc = crc;
    return 0;
}

/* Pass 1: check the whole file, hold no record in memory. */
static void validate(struct rd *r, const struct snapshot_limits *lim, struct vinfo *v)
{
    if (read_header(r, lim, v) != 0)
        return;
    uint32_t chain = chain_add(0, v->header_crc);
    for (;;) {
        uint64_t at = rd_off(r);
        unsigned char pre[RECORD_PREFIX_BYTES];
        size_t got = rd_take(r, pre, sizeof pre, NULL);
        if (got != sizeof pre) {
            short_read(v, r, got == 0 ? "record or footer (footer missing)" : "record header", at);
            return;
        }
        uint32_t len = get32(pre);
        if (len == FOOTER_MARKER) {
            unsigned char f[FOOTER_BYTES];
            memcpy(f, pre, sizeof pre);
            if (rd_take(r, f + sizeof pre, sizeof f - sizeof pre, NULL) != sizeof f - sizeof pre) {
                short_read(v, r, "footer", at);
                return;
            }
            if (get32(f + 28) != crc32c(f, 28)) {
                vset(v, V_CORRUPT, "footer checksum mismatch at offset %" PRIu64, at);
                return;
            }
            const char *bad = get32(f + 4) != 0                  ? "reserved field is not 0"
                              : get64(f + 8) != v->records       ? "record count differs"
                              : get64(f + 16) != v->record_bytes ? "record byte total differs"
                              : get32(f + 24) != chain           ? "chain checksum differs"
                                                                 : NULL;
            if (bad) {
                vset(v, V_CORRUPT,
                     "footer at offset %" PRIu64 " does not match the %" PRIu64 " records read: %s",
                     at, v->records, bad);
                return;
            }
            if (rd_off(r) != r->limit) {
                vset(v, V_CORRUPT, "%" PRIu64 " bytes of trailing garbage at offset %" PRIu64,
                     r->limit - rd_off(r), rd_off(r));
                return;
            }
            v->footer_off = at;
            v->st = V_OK;
            return;
        }
        if (len > SNAPSHOT_MAX_RECORD_BYTES) {
            vset(v, V_CORRUPT,
                 "record %" PRIu64 " at offset %" PRIu64 " has impossible length %" PRIu32,
                 v->records, at, len);
            return;
        }
        if (len > lim->max_record_bytes) {
            vset(v, V_SKIP,
                 "record %" PRIu64 " at offset %" PRIu64 " of %" PRIu32
                 " bytes is over the limit of %zu",
                 v->records, at, len, lim->max_record_bytes);
            return;
        }
        if (v->records >= lim->max_records) {
            vset(v, V_SKIP, "more than %" PRIu64 " records (offset %" PRIu64 ")", lim->max_records,
                 at);
            return;
        }
        uint32_t crc = crc32c(pre, 4);
        if (rd_take(r, NULL, len, &crc) != len) {
            short_read(v, r, "record", at);
            return;
        }
        if (crc != get32(pre + 4)) {
            vset(v, V_CORRUPT, "record %" PRIu64 " at offset %" PRIu64 " checksum mismatch",
                 v->records, at);
            return;
        }
        chain = chain_add(chain, crc);
        v->records++;
        v->record_bytes += len;
        if (len > v->max_len)
            v->max_len = len;
    }
}

/* Pass 2: re-read and deliver. Every check is repeated because the bytes are
 * read again; a difference now means the file changed under us. */
static int deliver(struct rd *r, const struct vinfo *v, const char *file, snapshot_meta_fn on_meta,
                   snapshot_record_fn on_record, void *ctx, struct snapshot_load_result *res,
                   char *err, size_t errcap)
{
    unsigned char *rec = NULL;
    if (!(rec = malloc(v->max_len ? v->max_len : 1))) {
        fmt(err, errcap, "snapshot %s: out of memory for a record of %zu bytes", file, v->max_len);
        goto fail;
    }
    if (on_meta) {
        struct snapshot_info info = {
            .file = file,
            .format_version = v->version,
            .schema = v->schema,
            .created_ms = v->created_ms,
            .creator = v->creator,
            .meta = v->meta,
            .meta_len = v->meta_len,
            .records = v->records,
            .record_bytes = v->record_bytes,
        };
        if (on_meta(ctx, &info) != 0) {
            fmt(err, errcap, "snapshot %s: metadata rejected by the caller", file);
            goto fail;
        }
    }
    if (rd_seek(r, v->header_len) != 0)
        goto changed;
    uint32_t chain = chain_add(0, v->header_crc);
    for (uint64_t i = 0; i < v->records; i++) {
        unsigned char pre[RECORD_PREFIX_BYTES];
        if (rd_take(r, pre, sizeof pre, NULL) != sizeof pre)
            goto changed;
        uint32_t len = get32(pre);
        if (len > v->max_len)
            goto changed;
        uint32_t crc = crc32c(pre, 4);
        if (rd_take(r, rec, len, &crc) != len || crc != get32(pre + 4))
            goto changed;
        chain = chain_add(chain, crc);
        if (on_record && on_record(ctx, rec, len) != 0) {
            fmt(err, errcap, "snapshot %s: record %" PRIu64 " rejected by the caller", file, i);
            goto fail;
        }
        res->records++;
        res->record_bytes += len;
    }
    if (rd_off(r) != v->footer_off)
        goto changed;
    {
        unsigned char f[FOOTER_BYTES];
        if (rd_take(r, f, sizeof f, NULL) != sizeof f || get32(f + 24) != chain)
            goto changed;
    }
    free(rec);
    return 0;
changed:
    fmt(err, errcap,
        "snapshot %s changed or failed to read between validation and delivery%s%s "
        "(%" PRIu64 " records delivered)",
        file, r->err ? ": " : "", r->err ? strerror(r->err) : "", res->records);
fail:
    free(rec);
    return -1;
}

/* Rename a corrupt file aside so it is reported once and not counted as a
 * fallback candidate again; the bytes stay for inspection. Returns the new
 * name (in `to`) for the log. */
static const char *quarantine(int dirfd, const char *dir, int64_t n, char *to)
{
    char from[NAME_CAP];
    name_of(from, n, ".pcs");
    name_of(to, n, ".pcs.corrupt");
    if (renameat(dirfd, from, dirfd, to) != 0) {
        log_warn("cannot rename corrupt snapshot aside", "dir", dir, "file", from, "error",
                 strerror(errno));
        return "(not renamed)";
    }
    return to;
}

static void problem(struct snapshot_load_result *res, const char *file, const char *why)
{
    if (res->first_problem[0] == '\0')
        fmt(res->first_problem, sizeof res->first_problem, "%s: %s", file, why);
}

int snapshot_load(const char *dir, uint32_t schema, const struct snapshot_limits *lim,
                  snapshot_meta_fn on_meta, snapshot_record_fn on_record, void *ctx,
                  struct snapshot_load_result *res, char *err, size_t errcap)
{
    struct snapshot_load_result local;
    struct scan s = {0};
    struct rd r = {.fd = -1};
    int dirfd = -1, lockfd = -1, rc = -1;

    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (err && errcap)
        err[0] = '\0';
    if (!dir) {
        fmt(err, errcap, "snapshot_load: no directory");
        return -1;
    }
    struct snapshot_limits eff = {SNAPSHOT_MAX_RECORD_BYTES, SNAPSHOT_MAX_META_BYTES,
                                  SNAPSHOT_MAX_RECORDS};
    if (lim && lim->max_record_bytes && lim->max_record_bytes < eff.max_record_bytes)
        eff.max_record_bytes = lim->max_record_bytes;
    if (lim && lim->max_meta_bytes && lim->max_meta_bytes < eff.max_meta_bytes)
        eff.max_meta_bytes = lim->max_meta_bytes;
    if (lim && lim->max_records && lim->max_records < eff.max_records)
        eff.max_records = lim->max_records;

    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        if (errno == ENOENT) {
            log_info("no snapshot directory; starting without saved state", "dir", dir);
            rc = 0;
        } else {
            fmt(err, errcap, "snapshot dir %s: %s", dir, strerror(errno));
        }
        goto out;
    }
    if (lock_dir(dirfd, dir, true, &lockfd, err, errcap) != 0)
        goto out;
    if (scan_dir(dirfd, dir, true, &s, err, errcap) != 0)
        goto out;
    res->names_ignored = s.ignored;

    /* Unlocked (read-only directory): leave temp files alone, another
     * process may be writing one. */
    for (size_t i = 0; lockfd >= 0 && i < s.tmp.n; i++) {
        char name[NAME_CAP];
        name_of(name, s.tmp.v[i], ".tmp");
        if (unlinkat(dirfd, name, 0) != 0) {
            log_warn("cannot remove leftover snapshot temp file", "dir", dir, "file", name, "error",
                     strerror(errno));
            continue;
        }
        log_info("removed leftover snapshot temp file (interrupted snapshot)", "dir", dir, "file",
                 name);
        res->tmp_removed++;
    }

    if (!(r.buf = malloc(IO_BUF_BYTES))) {
        fmt(err, errcap, "snapshot dir %s: out of memory", dir);
        goto out;
    }
    for (size_t i = 0; i < s.pcs.n; i++) {
        char name[NAME_CAP];
        struct vinfo v = {0};
        struct stat st;
        name_of(name, s.pcs.v[i], ".pcs");
        res->files_seen++;
        /* O_NOFOLLOW: snapshots are files promcast wrote here, a link is
         * someone else's; O_NONBLOCK: a FIFO must not hang the start-up. */
        r.fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (r.fd < 0)
            vset(&v, V_SKIP, "%s",
                 errno == ELOOP ? "is a symbolic link (not followed)" : strerror(errno));
        else if (fstat(r.fd, &st) != 0)
            vset(&v, V_SKIP, "fstat: %s", strerror(errno));
        else if (!S_ISREG(st.st_mode))
            vset(&v, V_SKIP, "is not a regular file");
        else {
            r.pos = r.len = 0;
            r.fpos = 0;
            r.err = 0;
            r.limit = (uint64_t)st.st_size;
            (void)posix_fadvise(r.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
            validate(&r, &eff, &v);
        }

        if (v.st == V_CORRUPT || v.st == V_SKIP) {
            bool corrupt = v.st == V_CORRUPT;
            char to[NAME_CAP];
            /* Unlocked (read-only directory): leave the file where it is. */
            const char *moved =
                corrupt && lockfd >= 0 ? quarantine(dirfd, dir, s.pcs.v[i], to) : "(not renamed)";
            if (corrupt)
                res->files_corrupt++;
            else
                res->files_skipped++;
            problem(res, name, v.why);
            log_error(corrupt ? "corrupt snapshot; falling back to an older one"
                              : "unusable snapshot; falling back to an older one",
                      "dir", dir, "file", name, "reason", v.why, "renamed_to", moved);
            free(v.meta);
            if (r.fd >= 0)
                close(r.fd);
            r.fd = -1;
            continue;
        }

        snprintf(res->file, sizeof res->file, "%s", name);
        res->format_version = v.version;
        if (v.st == V_NEWER) {
            res->status = SNAPSHOT_LOAD_NEWER_FORMAT;
            log_error("snapshot written by a newer promcast; not loading it (upgrade promcast or "
                      "move the file away)",
                      "dir", dir, "file", name, "reason", v.why);
            rc = 0;
        } else if (v.schema != schema) {
            char want[24], got[24];
            res->status = SNAPSHOT_LOAD_SCHEMA_MISMATCH;
            res->schema = v.schema;
            res->created_ms = v.created_ms;
            log_warn("snapshot has another state schema; not loading it", "dir", dir, "file", name,
                     "schema", log_fmt_u64(got, sizeof got, v.schema), "want",
                     log_fmt_u64(want, sizeof want, schema));
            rc = 0;
        } else {
            res->schema = v.schema;
            res->created_ms = v.created_ms;
            if (deliver(&r, &v, name, on_meta, on_record, ctx, res, err, errcap) == 0) {
                char nrec[24];
                res->status = SNAPSHOT_LOAD_OK;
                log_info("snapshot loaded", "dir", dir, "file", name, "records",
                         log_fmt_u64(nrec, sizeof nrec, res->records), "creator", v.creator);
                rc = 0;
            }
        }
        free(v.meta);
        close(r.fd);
        r.fd = -1;
        goto out;
    }
    rc = 0;
    if (res->files_seen > 0)
        log_warn("no valid snapshot found; starting without saved state", "dir", dir);
out:
    free(r.buf);
    scan_cleanup(&s);
    if (lockfd >= 0)
        close(lockfd);
    if (dirfd >= 0)
        close(dirfd);
    return rc;
}
