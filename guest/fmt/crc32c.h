/* CRC-32C (Castagnoli), as used by VHDX checksums. */
#ifndef INSTAR_GUEST_FMT_CRC32C_H
#define INSTAR_GUEST_FMT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC-32C: start with crc = 0; the inversions are inside, so
 * crc32c_update(crc32c_update(0, a, n), b, m) == CRC of a || b. */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);

#endif
