/* The guest's small runtime: memory functions and message formatting. */
#ifndef INSTAR_GUEST_RT_H
#define INSTAR_GUEST_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* In dd.bin these come from rt/mem.c; in host tests from libc. */
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* Whether n bytes at p (8-byte aligned) are all zero: eight words at a
 * time (one branch per 64 bytes: the sparse scan of convert looks at
 * every data byte), stopping at the first block with a non-zero one. */
static inline bool rt_all_zero(const uint8_t *p, uint64_t n)
{
    const uint64_t *q = (const void *)p;
    uint64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const uint64_t *b = q + i / 8;
        if (b[0] | b[1] | b[2] | b[3] | b[4] | b[5] | b[6] | b[7])
            return false;
    }
    for (; i + 8 <= n; i += 8)
        if (q[i / 8])
            return false;
    for (; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/*
 * Minimal vsnprintf: %s %c %d %u %x and the l/ll/z length modifiers, plus
 * "%%". Always NUL-terminates (when n > 0) and returns the number of bytes
 * written, truncating silently: messages are for humans.
 */
size_t rt_vfmt(char *buf, size_t n, const char *fmt, va_list ap);
size_t rt_fmt(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
size_t rt_strlen(const char *s);

/* The value of hex digit c, or -1. */
int rt_hexval(unsigned c);

#define RT_TEXT_INVALID (-1)  /* a NUL or an unpaired surrogate */
#define RT_TEXT_TOO_LONG (-2) /* more than cap bytes of UTF-8 */
/* Converts `units` UTF-16LE code units to UTF-8 in out (at most cap bytes,
 * no NUL added); *len receives the length. Returns 0 or RT_TEXT_*. */
int rt_utf16le_to_utf8(const uint8_t *in, uint32_t units, char *out,
                       uint32_t cap, uint32_t *len);

#endif
