/*
 * crc32c.h — CRC-32C (Castagnoli), as used by Prometheus's remote-read chunk
 * frames and by promcast's snapshot records.
 *
 * Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF;
 * crc32c("123456789") == 0xE3069283. Pure and thread-safe.
 */
#ifndef PROMCAST_CRC32C_H
#define PROMCAST_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC of len bytes. */
uint32_t crc32c(const void *buf, size_t len);

/* Continue a CRC: crc32c_update(crc32c(a), b) == crc32c(a ‖ b). Start with 0. */
uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len);

#endif
