/* Unit tests for labels.c: ordering, validation, hashing, formatting. */
#include "labels.h"
#include "testlib.h"

#define L(n, v)                                                                                    \
    {                                                                                              \
        n, v, sizeof(n) - 1, sizeof(v) - 1                                                         \
    }

static void test_sort_and_validate(void)
{
    struct label a[] = {L("job", "api"), L("__name__", "up"), L("instance", "x:1")};
    CHECK(!labels_sorted(a, 3), "unsorted input reported sorted");
    labels_sort(a, 3);
    CHECK(labels_sorted(a, 3), "sort failed");
    CHECK(label_name_is(&a[0], "__name__"), "first is %.*s", (int)a[0].name_len, a[0].name);
    CHECK(labels_validate(a, 3) == LABELS_OK, "valid set rejected");

    struct label dup[] = {L("a", "1"), L("a", "2")};
    CHECK(labels_validate(dup, 2) == LABELS_DUPLICATE_NAME, "duplicate accepted");
    struct label empty_name[] = {L("", "1")};
    CHECK(labels_validate(empty_name, 1) == LABELS_EMPTY_NAME, "empty name accepted");
    CHECK(labels_validate(NULL, 0) == LABELS_EMPTY, "empty set accepted");
}

static void test_hash(void)
{
    struct label a[] = {L("__name__", "up"), L("job", "api")};
    char buf[] = "__name__upjobapi";
    struct label b[] = {{buf, buf + 8, 8, 2}, {buf + 10, buf + 13, 3, 3}};
    CHECK(labels_hash(a, 2) == labels_hash(b, 2), "same set, different buffers");
    /* Moving a byte across the name/value boundary must change the hash. */
    struct label c[] = {L("__name__", "up"), L("joba", "pi")};
    CHECK(labels_hash(a, 2) != labels_hash(c, 2), "boundary shift collides");

    /* A set too large for the stack path hashes the same via streaming as the
     * equivalent sum of parts would be checked for determinism. */
    static char big[3000];
    memset(big, 'x', sizeof big);
    struct label d[] = {{"a", big, 1, sizeof big}};
    CHECK(labels_hash(d, 1) == labels_hash(d, 1), "streaming hash not deterministic");
    struct label e[] = {{"a", big, 1, sizeof big - 1}};
    CHECK(labels_hash(d, 1) != labels_hash(e, 1), "streaming hash ignores length");
}

static void test_format(void)
{
    struct label a[] = {L("__name__", "up"), L("job", "api")};
    char buf[64];
    labels_format(a, 2, buf, sizeof buf);
    CHECK(strcmp(buf, "up{job=\"api\"}") == 0, "got %s", buf);
    char small[8];
    size_t n = labels_format(a, 2, small, sizeof small);
    CHECK(n == 7 && strcmp(small + 4, "...") == 0, "truncation got %s", small);
    struct label stale[] = {L("x", "y")};
    labels_format(stale, 1, buf, sizeof buf);
    CHECK(strcmp(buf, "{x=\"y\"}") == 0, "got %s", buf);
}

static void test_stale(void)
{
    double s = sample_stale_value();
    CHECK(sample_is_stale(s), "stale marker not recognised");
    CHECK(!sample_is_stale(NAN), "ordinary NaN taken for stale");
    CHECK(!sample_is_stale(0.0), "zero taken for stale");
}

int main(void)
{
    test_sort_and_validate();
    test_hash();
    test_format();
    test_stale();
    return test_main_end("test_labels");
}
