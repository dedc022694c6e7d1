/* Text helpers the drivers share: hex digits and UTF-16LE names. */
#include "rt.h"

int rt_hexval(unsigned c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (int)(c - 'A' + 10);
    return -1;
}

static uint32_t utf8_encode(uint32_t c, uint8_t *b)
{
    if (c < 0x80) {
        b[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        b[0] = (uint8_t)(0xc0 | c >> 6);
        b[1] = (uint8_t)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        b[0] = (uint8_t)(0xe0 | c >> 12);
        b[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
        b[2] = (uint8_t)(0x80 | (c & 0x3f));
        return 3;
    }
    b[0] = (uint8_t)(0xf0 | c >> 18);
    b[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3f));
    b[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
    b[3] = (uint8_t)(0x80 | (c & 0x3f));
    return 4;
}

int rt_utf16le_to_utf8(const uint8_t *in, uint32_t units, char *out,
                       uint32_t cap, uint32_t *len)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < units; i++) {
        uint32_t c = (uint32_t)in[2 * i] | (uint32_t)in[2 * i + 1] << 8;
        if (c >= 0xd800 && c < 0xdc00 && i + 1 < units) {
            uint32_t lo = (uint32_t)in[2 * i + 2] |
                          (uint32_t)in[2 * i + 3] << 8;
            if (lo >= 0xdc00 && lo < 0xe000) {
                c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                i++;
            }
        }
        /* A NUL would cut the name short on the host; a lone surrogate
         * has no UTF-8 form. */
        if (c == 0 || (c >= 0xd800 && c < 0xe000))
            return RT_TEXT_INVALID;
        uint8_t b[4];
        uint32_t k = utf8_encode(c, b);
        if (k > cap - n)
            return RT_TEXT_TOO_LONG;
        memcpy(out + n, b, k);
        n += k;
    }
    *len = n;
    return 0;
}
