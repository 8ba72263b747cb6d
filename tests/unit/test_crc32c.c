/* Unit tests for crc32c.c: published check values and incremental use. */
#include "crc32c.h"
#include "testlib.h"

/* Bit-at-a-time reference, independent of the table code. */
static uint32_t slow(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

int main(void)
{
    static const struct {
        const char *in;
        uint32_t want;
    } cases[] = {
        {"", 0x00000000u},
        {"a", 0xC1D04330u},
        {"123456789", 0xE3069283u},
        {"The quick brown fox jumps over the lazy dog", 0x22620404u},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t got = crc32c(cases[i].in, strlen(cases[i].in));
        CHECK(got == cases[i].want, "crc32c(\"%s\") = %08x, want %08x", cases[i].in, got,
              cases[i].want);
    }
    /* 32 zero bytes: iSCSI test vector (RFC 3720 B.4). */
    unsigned char zeros[32] = {0};
    CHECK(crc32c(zeros, 32) == 0x8A9136AAu, "32 zero bytes: %08x", crc32c(zeros, 32));

    unsigned char buf[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    for (size_t n = 0; n <= sizeof buf; n += 37) {
        CHECK(crc32c(buf, n) == slow(buf, n), "length %zu vs bitwise reference", n);
        for (size_t cut = 0; cut <= n; cut += 13)
            CHECK(crc32c_update(crc32c(buf, cut), buf + cut, n - cut) == crc32c(buf, n),
                  "split %zu/%zu", cut, n);
    }
    return test_main_end("test_crc32c");
}
