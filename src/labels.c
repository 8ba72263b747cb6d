/*
 * labels.c — comparison, sorting, validation and hashing of label sets.
 *
 * Does not own or copy label bytes (see labels.h). The hash is XXH3 from
 * libxxhash over the canonical byte form `name 0xff value 0xff ...`; 0xff can
 * not occur in valid UTF-8, so two different sets never share a canonical form.
 */
#include "labels.h"

#include <stdio.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

int labels_cmp(const struct label *a, const struct label *b)
{
    uint32_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    if (c != 0)
        return c;
    if (a->name_len != b->name_len)
        return a->name_len < b->name_len ? -1 : 1;
    n = a->value_len < b->value_len ? a->value_len : b->value_len;
    c = memcmp(a->value, b->value, n);
    if (c != 0)
        return c;
    if (a->value_len != b->value_len)
        return a->value_len < b->value_len ? -1 : 1;
    return 0;
}

static int name_cmp(const struct label *a, const struct label *b)
{
    uint32_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    if (c != 0)
        return c;
    if (a->name_len != b->name_len)
        return a->name_len < b->name_len ? -1 : 1;
    return 0;
}

void labels_sort(struct label *labels, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct label key = labels[i];
        size_t j = i;
        while (j > 0 && labels_cmp(&labels[j - 1], &key) > 0) {
            labels[j] = labels[j - 1];
            j--;
        }
        labels[j] = key;
    }
}

bool labels_sorted(const struct label *labels, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (name_cmp(&labels[i - 1], &labels[i]) >= 0)
            return false;
    return true;
}

enum labels_check labels_validate(const struct label *labels, size_t n)
{
    if (n == 0)
        return LABELS_EMPTY;
    for (size_t i = 0; i < n; i++) {
        if (labels[i].name_len == 0)
            return LABELS_EMPTY_NAME;
        if (i > 0 && name_cmp(&labels[i - 1], &labels[i]) == 0)
            return LABELS_DUPLICATE_NAME;
    }
    return LABELS_OK;
}

const char *labels_check_str(enum labels_check c)
{
    switch (c) {
    case LABELS_OK:
        return "ok";
    case LABELS_EMPTY:
        return "empty label set";
    case LABELS_EMPTY_NAME:
        return "empty label name";
    case LABELS_DUPLICATE_NAME:
        return "duplicate label name";
    }
    return "invalid labels";
}

uint64_t labels_hash(const struct label *labels, size_t n)
{
    /* One XXH3 call over a stack copy is faster than streaming for the
     * usual few hundred bytes; fall back to streaming for huge sets. */
    unsigned char buf[1024];
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)labels[i].name_len + labels[i].value_len + 2;
    if (len <= sizeof buf) {
        unsigned char *p = buf;
        for (size_t i = 0; i < n; i++) {
            memcpy(p, labels[i].name, labels[i].name_len);
            p += labels[i].name_len;
            *p++ = 0xff;
            memcpy(p, labels[i].value, labels[i].value_len);
            p += labels[i].value_len;
            *p++ = 0xff;
        }
        return XXH3_64bits(buf, len);
    }
    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    XXH3_64bits_reset(&st);
    static const unsigned char sep = 0xff;
    for (size_t i = 0; i < n; i++) {
        XXH3_64bits_update(&st, labels[i].name, labels[i].name_len);
        XXH3_64bits_update(&st, &sep, 1);
        XXH3_64bits_update(&st, labels[i].value, labels[i].value_len);
        XXH3_64bits_update(&st, &sep, 1);
    }
    return XXH3_64bits_digest(&st);
}

bool label_name_is(const struct label *l, const char *name)
{
    size_t n = strlen(name);
    return l->name_len == n && memcmp(l->name, name, n) == 0;
}

const struct label *labels_get(const struct label *labels, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (label_name_is(&labels[i], name))
            return &labels[i];
    return NULL;
}

size_t labels_format(const struct label *labels, size_t n, char *buf, size_t cap)
{
    size_t len = 0;
    bool open = false;
    if (cap == 0)
        return 0;
    buf[0] = '\0';
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(buf + len, cap - len, __VA_ARGS__);                                      \
        if (w_ < 0 || (size_t)w_ >= cap - len)                                                     \
            goto truncated;                                                                        \
        len += (size_t)w_;                                                                         \
    } while (0)
    const struct label *name = labels_get(labels, n, "__name__");
    if (name)
        PUT("%.*s", (int)name->value_len, name->value);
    for (size_t i = 0; i < n; i++) {
        if (&labels[i] == name)
            continue;
        PUT("%s%.*s=\"%.*s\"", open ? "," : "{", (int)labels[i].name_len, labels[i].name,
            (int)labels[i].value_len, labels[i].value);
        open = true;
    }
    PUT("%s", open ? "}" : (name ? "" : "{}"));
#undef PUT
    return len;
truncated:
    if (cap >= 4) {
        len = cap - 1;
        memcpy(buf + cap - 4, "...", 4);
    } else {
        len = strlen(buf);
    }
    return len;
}
