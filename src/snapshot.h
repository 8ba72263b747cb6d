/*
 * snapshot.h — crash-safe snapshot files: a stream of opaque records written
 * atomically into a directory, and a loader that delivers the newest file
 * that validates completely, falling back to older ones.
 *
 * The module knows nothing about series or models: a snapshot is a header
 * (caller-chosen 32-bit `schema` number and optional metadata bytes) followed
 * by records of opaque bytes. docs/snapshots.md describes the on-disk format
 * (little-endian, versioned, CRC-32C on the header, on every record and on
 * the footer) and the guarantees in detail.
 *
 * Files in the snapshot directory:
 *   snapshot-<N>.pcs          complete snapshots; N is the creation time in ms
 *                             since the epoch, or one more than the largest N
 *                             already present (clock stepped back, same ms), so
 *                             a larger N is always a newer snapshot.
 *   snapshot-<N>.tmp          a snapshot being written; left over only by a
 *                             crash, removed by the next snapshot_load().
 *   snapshot-<N>.pcs.corrupt  a file the loader found corrupt, renamed aside
 *                             for inspection (pruned like snapshots, `keep`).
 *   snapshot.lock             flock()ed by a writer and by the loader, so two
 *                             processes never write or prune the same directory.
 * Anything else in the directory is ignored. Symbolic links and non-regular
 * files named like snapshots are never followed or read (logged, skipped).
 *
 * Writing (snapshot_begin → snapshot_add… → snapshot_commit): records stream
 * through a 1 MiB buffer into the temp file, so memory does not depend on the
 * snapshot size. Commit appends the footer, fsyncs the file, renames it to
 * .pcs, fsyncs the directory and only then deletes snapshots beyond the
 * newest `keep`. Any failure before the rename removes the temp file and
 * leaves every older snapshot untouched.
 *
 * Loading: candidates are tried newest first. Each is validated completely
 * (header, every record CRC, record count, footer, no trailing bytes) in a
 * first pass that holds no record in memory; only then is it re-read and its
 * records delivered, so a corrupt file never delivers anything. Memory is
 * bounded by the largest record of the file (≤ SNAPSHOT_MAX_RECORD_BYTES).
 *
 * Thread-safety: functions are reentrant. A writer belongs to one thread at a
 * time. While a writer is open on a directory, other writers and loaders of
 * that directory (in any process, this one included) fail at once with a
 * "locked" error instead of waiting. No third-party library.
 */
#ifndef PROMCAST_SNAPSHOT_H
#define PROMCAST_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

/* On-disk format version written by this code; the loader reads versions
 * 1..SNAPSHOT_FORMAT_VERSION and refuses newer ones (SNAPSHOT_LOAD_NEWER_FORMAT). */
#define SNAPSHOT_FORMAT_VERSION 1

/* Largest record the writer accepts and the loader reads (16 MiB); a series'
 * record (labels, model state, output history) is a few KiB. Part of the
 * format: a length above it marks a file as corrupt. The loader's limit can
 * only be lowered (struct snapshot_limits). */
#define SNAPSHOT_MAX_RECORD_BYTES (16u << 20)

/* Largest metadata blob in the header (1 MiB). */
#define SNAPSHOT_MAX_META_BYTES (1u << 20)

/* Most records in one snapshot (2^32; promcast models ≤ a few million series). */
#define SNAPSHOT_MAX_RECORDS (UINT64_C(1) << 32)

/* Longest creator string kept in the header ("promcast 0.1.0 (abc1234)"). */
#define SNAPSHOT_MAX_CREATOR_BYTES 64

/* Complete snapshots kept by snapshot_commit() when keep == 0. */
#define SNAPSHOT_DEFAULT_KEEP 2

/* ------------------------------------------------------------------------ */
/* Writing */

struct snapshot_writer;

/* Points of snapshot_commit() reported to a phase hook (see
 * snapshot_set_phase_hook). Crash tests stop the process at each of them. */
enum snapshot_phase {
    SNAPSHOT_PHASE_WRITTEN = 0, /* footer handed to the kernel, not yet fsynced */
    SNAPSHOT_PHASE_SYNCED,      /* file fsynced and closed, still named .tmp */
    SNAPSHOT_PHASE_RENAMED,     /* renamed to .pcs, directory not yet fsynced */
    SNAPSHOT_PHASE_DURABLE,     /* directory fsynced: the snapshot survives power loss */
    SNAPSHOT_PHASE_PRUNED,      /* one old file deleted (once per deleted file) */
};
typedef void (*snapshot_phase_fn)(void *ctx, enum snapshot_phase phase);

/* What a successful snapshot_commit() did. */
struct snapshot_commit_result {
    char file[64];          /* "snapshot-<N>.pcs" (name inside the directory) */
    uint64_t records;       /* records written */
    uint64_t bytes;         /* file size in bytes */
    unsigned files_removed; /* old snapshots and quarantined files pruned */
};

/*
 * Start a snapshot in `dir` (borrowed; must exist): lock the directory,
 * create dir/snapshot-<N>.tmp with O_EXCL and write the header (format
 * version, creator "promcast <version>", created-at ms, `schema`, and
 * meta_len ≤ SNAPSHOT_MAX_META_BYTES bytes of `meta`, copied; meta may be
 * NULL when meta_len is 0). Returns the writer, or NULL with a message in err.
 */
struct snapshot_writer *snapshot_begin(const char *dir, uint32_t schema, const void *meta,
                                       size_t meta_len, char *err, size_t errcap);

/* Report commit phases to fn(ctx, phase) (fn may be NULL to stop). Meant for
 * crash tests and phase timing; fn runs on the committing thread. */
void snapshot_set_phase_hook(struct snapshot_writer *w, snapshot_phase_fn fn, void *ctx);

/*
 * Append one record of `len` bytes (copied; rec may be NULL when len is 0).
 * Returns 0, or -1 when the record is over SNAPSHOT_MAX_RECORD_BYTES, the
 * record count would pass SNAPSHOT_MAX_RECORDS, or a write failed (ENOSPC,
 * EIO…). Any -1 fails the whole snapshot: every later add fails, commit
 * fails, and the caller should snapshot_abort(); snapshot_error() says why.
 * Callers that want to skip oversized records check the size first.
 */
int snapshot_add(struct snapshot_writer *w, const void *rec, size_t len);

/* The first error of a failed writer ("" while none); owned by the writer. */
const char *snapshot_error(const struct snapshot_writer *w);

/*
 * Finish the snapshot: footer, fsync, close, rename to snapshot-<N>.pcs,
 * fsync the directory, then delete complete snapshots beyond the newest
 * `keep` (0: SNAPSHOT_DEFAULT_KEEP; the new one counts) and quarantined
 * .corrupt files beyond the newest `keep`. Pruning failures are logged, not
 * errors. Always consumes (frees) the writer.
 * Returns 0 and fills *res (may be NULL). On failure returns -1 with a message
 * in err; if it failed before the rename the temp file is removed and older
 * snapshots are untouched; if the directory fsync failed the renamed file is
 * left in place (it is complete) and nothing is pruned.
 */
int snapshot_commit(struct snapshot_writer *w, unsigned keep, struct snapshot_commit_result *res,
                    char *err, size_t errcap);

/* Drop an unfinished snapshot: close and remove the temp file, unlock.
 * Accepts NULL. */
void snapshot_abort(struct snapshot_writer *w);

/* ------------------------------------------------------------------------ */
/* Loading */

/* Caps applied by the loader (0 = the format maximum). A file over a lowered
 * cap is skipped (counted in files_skipped, not quarantined). */
struct snapshot_limits {
    size_t max_record_bytes; /* ≤ SNAPSHOT_MAX_RECORD_BYTES */
    size_t max_meta_bytes;   /* ≤ SNAPSHOT_MAX_META_BYTES */
    uint64_t max_records;    /* ≤ SNAPSHOT_MAX_RECORDS */
};

/* Header of the snapshot about to be delivered; every pointer is owned by the
 * loader and valid only during the on_meta call. */
struct snapshot_info {
    const char *file; /* "snapshot-<N>.pcs" */
    uint32_t format_version;
    uint32_t schema;
    int64_t created_ms;
    const char *creator; /* NUL-terminated, ≤ SNAPSHOT_MAX_CREATOR_BYTES */
    const void *meta;
    size_t meta_len;
    uint64_t records;      /* records that will follow */
    uint64_t record_bytes; /* their total payload */
};

/* Callbacks return 0 to go on; anything else stops the load (-1). `rec` is
 * borrowed and valid only during the call. */
typedef int (*snapshot_meta_fn)(void *ctx, const struct snapshot_info *info);
typedef int (*snapshot_record_fn)(void *ctx, const void *rec, size_t len);

enum snapshot_load_status {
    SNAPSHOT_LOAD_NONE = 0,        /* no usable snapshot: start empty */
    SNAPSHOT_LOAD_OK,              /* `file` delivered completely */
    SNAPSHOT_LOAD_SCHEMA_MISMATCH, /* newest valid file has another schema: nothing delivered */
    SNAPSHOT_LOAD_NEWER_FORMAT,    /* newest file needs a newer promcast: nothing delivered */
};

struct snapshot_load_result {
    enum snapshot_load_status status;
    char file[64];           /* file loaded or refused; "" with SNAPSHOT_LOAD_NONE */
    uint32_t schema;         /* that file's schema (OK, SCHEMA_MISMATCH) */
    uint32_t format_version; /* that file's format version */
    int64_t created_ms;
    uint64_t records;        /* records delivered (counted also when on_record is NULL) */
    uint64_t record_bytes;   /* their payload bytes */
    unsigned files_seen;     /* snapshot-<N>.pcs candidates tried */
    unsigned files_corrupt;  /* failed validation: logged and renamed to .corrupt */
    unsigned files_skipped;  /* unreadable, symlink, not a regular file, over a limit */
    unsigned tmp_removed;    /* leftover .tmp files deleted */
    unsigned names_ignored;  /* snapshot-*.pcs names whose N is not a canonical number */
    char first_problem[256]; /* message of the first corrupt or skipped file, "" if none */
};

/*
 * Load the newest valid snapshot of `dir` (borrowed). First removes leftover
 * snapshot-*.tmp files. Then tries snapshot-<N>.pcs newest first: a corrupt
 * file is logged (file, offset, what), counted, renamed to .corrupt and the
 * next older one is tried; an unreadable one is logged, counted and skipped.
 * The first file that validates decides:
 *   - format newer than SNAPSHOT_FORMAT_VERSION → SNAPSHOT_LOAD_NEWER_FORMAT;
 *   - schema != `schema` → SNAPSHOT_LOAD_SCHEMA_MISMATCH (res->schema says
 *     which; a caller able to migrate may load again with that schema);
 *   - otherwise on_meta (may be NULL) is called once, then on_record (may be
 *     NULL) for every record in file order → SNAPSHOT_LOAD_OK.
 * A missing directory or one without snapshots gives SNAPSHOT_LOAD_NONE.
 * lim may be NULL (format maxima). res may be NULL.
 *
 * Returns 0 in all the cases above. Returns -1 with a message in err when the
 * directory cannot be opened or is locked, memory runs out, a callback
 * stopped the load, or the file changed or failed to read between the
 * validation pass and the delivery pass; then res->records tells how many
 * records were delivered before the failure, and the caller must discard them.
 */
int snapshot_load(const char *dir, uint32_t schema, const struct snapshot_limits *lim,
                  snapshot_meta_fn on_meta, snapshot_record_fn on_record, void *ctx,
                  struct snapshot_load_result *res, char *err, size_t errcap);

#endif
