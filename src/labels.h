/*
 * labels.h — the label-set and sample types every module speaks.
 *
 * A label is a (name, value) pair of byte strings that are NOT NUL-terminated:
 * the wire decoder hands out labels that point straight into the decompressed
 * request body (zero copy), and the series index stores its own packed copy.
 * Whoever produced a `struct label` array owns the bytes it points to; every
 * function below borrows them for the duration of the call only.
 *
 * Samples carry the value as a double, but stale markers (the exact bit pattern
 * 0x7ff0000000000002) must never go through float arithmetic: copy samples by
 * assignment/memcpy only and test them with sample_is_stale().
 *
 * Thread-safety: all functions are pure and may be called from any thread.
 */
#ifndef PROMCAST_LABELS_H
#define PROMCAST_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct label {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
};

struct sample {
    int64_t t; /* milliseconds since the Unix epoch */
    double v;  /* may be the stale marker; see sample_is_stale() */
};

#define SAMPLE_STALE_BITS UINT64_C(0x7ff0000000000002)

static inline bool sample_bits_are_stale(uint64_t bits)
{
    return bits == SAMPLE_STALE_BITS;
}

static inline bool sample_is_stale(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits == SAMPLE_STALE_BITS;
}

static inline double sample_stale_value(void)
{
    uint64_t bits = SAMPLE_STALE_BITS;
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* Results of labels_validate(), in the order the checks run. */
enum labels_check {
    LABELS_OK = 0,
    LABELS_EMPTY,          /* no labels at all */
    LABELS_EMPTY_NAME,     /* a label with an empty name */
    LABELS_DUPLICATE_NAME, /* the same name twice (after sorting) */
};

/* Compare two labels by name, then value (bytewise, like Prometheus). */
int labels_cmp(const struct label *a, const struct label *b);

/* Sort labels in place by name (then value). Insertion sort for the usual
 * short, already-sorted sets, so O(n) when sorted. */
void labels_sort(struct label *labels, size_t n);

/* True when labels are strictly sorted by name (no duplicates). */
bool labels_sorted(const struct label *labels, size_t n);

/* Validate a label set that is already sorted. Empty values are allowed here
 * (Prometheus drops them on ingest; the index does the same). */
enum labels_check labels_validate(const struct label *labels, size_t n);

/* 64-bit hash of a sorted label set; equal sets hash equal whatever buffer
 * their bytes live in. Uses XXH3. */
uint64_t labels_hash(const struct label *labels, size_t n);

/* Find the label with the given NUL-terminated name; NULL when absent. */
const struct label *labels_get(const struct label *labels, size_t n, const char *name);

/* Compare a label's name or value with a NUL-terminated string. */
bool label_name_is(const struct label *l, const char *name);

/* Human-readable text of the check result, for error lines. */
const char *labels_check_str(enum labels_check c);

/* Format `name{a="b",...}` into buf (truncated with "..." if it does not fit,
 * always NUL-terminated). Returns the length written. For log lines and
 * error messages, not for the hot path. */
size_t labels_format(const struct label *labels, size_t n, char *buf, size_t cap);

#endif
