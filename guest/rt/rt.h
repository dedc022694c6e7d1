/* The guest's small runtime: memory functions and message formatting. */
#ifndef INSTAR_GUEST_RT_H
#define INSTAR_GUEST_RT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* In dd.bin these come from rt/mem.c; in host tests from libc. */
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/*
 * Minimal vsnprintf: %s %c %d %u %x and the l/ll/z length modifiers, plus
 * "%%". Always NUL-terminates (when n > 0) and returns the number of bytes
 * written, truncating silently: messages are for humans.
 */
size_t rt_vfmt(char *buf, size_t n, const char *fmt, va_list ap);
size_t rt_fmt(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
size_t rt_strlen(const char *s);

#endif
