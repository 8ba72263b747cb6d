/*
 * wire_pb.h — protobuf wire-format primitives shared by the wire modules
 * (remote write now, remote read later).
 *
 * Everything here is a small static inline function over byte spans: reading
 * varints, tags, length prefixes and fixed64 values with every length checked
 * against the end of the buffer, skipping unknown fields, and the matching
 * writers. It knows no message schema and allocates nothing; the decoders in
 * wire_*.c build on it. Groups (wire types 3/4) and the undefined wire types
 * 6/7 are errors: no promcast message uses them.
 *
 * Reading functions take `const uint8_t **pp` (the cursor, advanced only on
 * success) and `end` (one past the last readable byte); they never read at or
 * beyond `end`. Writers take a cursor into a buffer the caller has sized with
 * the *_size() helpers and return the advanced cursor.
 *
 * Thread-safety: pure functions, callable from any thread.
 */
#ifndef PROMCAST_WIRE_PB_H
#define PROMCAST_WIRE_PB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum wire_pb_type {
    WIRE_PB_VARINT = 0,
    WIRE_PB_I64 = 1,
    WIRE_PB_LEN = 2,
    WIRE_PB_SGROUP = 3,
    WIRE_PB_EGROUP = 4,
    WIRE_PB_I32 = 5,
};

/* Largest field number protobuf allows (2^29 - 1). */
#define WIRE_PB_MAX_FIELD 536870911u

enum wire_pb_status {
    WIRE_PB_OK = 0,
    WIRE_PB_TRUNCATED,      /* the value runs past the end of its message */
    WIRE_PB_VARINT_LONG,    /* more than 10 bytes with the continuation bit */
    WIRE_PB_BAD_FIELD,      /* field number 0 or over WIRE_PB_MAX_FIELD */
    WIRE_PB_GROUP,          /* wire type 3 or 4 */
    WIRE_PB_BAD_WIRE_TYPE,  /* wire type 6 or 7 */
    WIRE_PB_LENGTH_PAST_END /* a length prefix larger than what is left */
};

static inline const char *wire_pb_status_str(enum wire_pb_status s)
{
    switch (s) {
    case WIRE_PB_OK:
        return "ok";
    case WIRE_PB_TRUNCATED:
        return "truncated";
    case WIRE_PB_VARINT_LONG:
        return "varint longer than 10 bytes";
    case WIRE_PB_BAD_FIELD:
        return "invalid field number";
    case WIRE_PB_GROUP:
        return "group wire type not supported";
    case WIRE_PB_BAD_WIRE_TYPE:
        return "invalid wire type";
    case WIRE_PB_LENGTH_PAST_END:
        return "length past end of message";
    }
    return "malformed";
}

/* The multi-byte path of wire_pb_varint(); the common one-byte case is
 * decided by the inlined fast path. A 10th byte may carry bits above 2^64;
 * they are dropped, as Go's gogo-generated code and protobuf-c do. */
static inline enum wire_pb_status wire_pb_varint_slow(const uint8_t **pp, const uint8_t *end,
                                                      uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (p >= end)
            return WIRE_PB_TRUNCATED;
        uint8_t b = *p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *v = r;
            *pp = p;
            return WIRE_PB_OK;
        }
    }
    return WIRE_PB_VARINT_LONG;
}

static inline enum wire_pb_status wire_pb_varint(const uint8_t **pp, const uint8_t *end,
                                                 uint64_t *v)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) {
        *v = *p;
        *pp = p + 1;
        return WIRE_PB_OK;
    }
    return wire_pb_varint_slow(pp, end, v);
}

/* Read a field key. */
static inline enum wire_pb_status wire_pb_tag(const uint8_t **pp, const uint8_t *end,
                                              uint32_t *field, unsigned *wt)
{
    uint64_t key;
    enum wire_pb_status s = wire_pb_varint(pp, end, &key);
    if (s != WIRE_PB_OK)
        return s;
    if (key >> 3 == 0 || key >> 3 > WIRE_PB_MAX_FIELD)
        return WIRE_PB_BAD_FIELD;
    *field = (uint32_t)(key >> 3);
    *wt = (unsigned)(key & 7);
    return WIRE_PB_OK;
}

/* Read a length prefix and hand back the span it announces; the cursor moves
 * past the span. */
static inline enum wire_pb_status wire_pb_span(const uint8_t **pp, const uint8_t *end,
                                               const uint8_t **start, size_t *len)
{
    const uint8_t *p = *pp;
    uint64_t n;
    enum wire_pb_status s = wire_pb_varint(&p, end, &n);
    if (s != WIRE_PB_OK)
        return s;
    if (n > (uint64_t)(end - p))
        return WIRE_PB_LENGTH_PAST_END;
    *start = p;
    *len = (size_t)n;
    *pp = p + n;
    return WIRE_PB_OK;
}

static inline uint64_t wire_pb_le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

/* Read the 8 bytes of a fixed64/double field. */
static inline enum wire_pb_status wire_pb_fixed64(const uint8_t **pp, const uint8_t *end,
                                                  uint64_t *v)
{
    if (end - *pp < 8)
        return WIRE_PB_TRUNCATED;
    *v = wire_pb_le64(*pp);
    *pp += 8;
    return WIRE_PB_OK;
}

/* Skip the value of a field of wire type wt. */
static inline enum wire_pb_status wire_pb_skip(const uint8_t **pp, const uint8_t *end, unsigned wt)
{
    uint64_t v;
    const uint8_t *s;
    size_t n;
    switch (wt) {
    case WIRE_PB_VARINT:
        return wire_pb_varint(pp, end, &v);
    case WIRE_PB_I64:
        if (end - *pp < 8)
            return WIRE_PB_TRUNCATED;
        *pp += 8;
        return WIRE_PB_OK;
    case WIRE_PB_LEN:
        return wire_pb_span(pp, end, &s, &n);
    case WIRE_PB_I32:
        if (end - *pp < 4)
            return WIRE_PB_TRUNCATED;
        *pp += 4;
        return WIRE_PB_OK;
    case WIRE_PB_SGROUP:
    case WIRE_PB_EGROUP:
        return WIRE_PB_GROUP;
    default:
        return WIRE_PB_BAD_WIRE_TYPE;
    }
}

/* Writers ------------------------------------------------------------------ */

static inline size_t wire_pb_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Size of a length-delimited field with a one-byte key (fields 1..15). */
static inline size_t wire_pb_len_field_size(size_t len)
{
    return 1 + wire_pb_varint_size(len) + len;
}

static inline uint8_t *wire_pb_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint8_t *wire_pb_put_tag(uint8_t *p, uint32_t field, unsigned wt)
{
    return wire_pb_put_varint(p, (uint64_t)field << 3 | wt);
}

static inline uint8_t *wire_pb_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p + 8;
}

/* Key, length prefix and bytes of a length-delimited field. */
static inline uint8_t *wire_pb_put_bytes(uint8_t *p, uint32_t field, const void *data, size_t len)
{
    p = wire_pb_put_tag(p, field, WIRE_PB_LEN);
    p = wire_pb_put_varint(p, len);
    if (len > 0)
        memcpy(p, data, len);
    return p + len;
}

#endif
