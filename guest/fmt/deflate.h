/*
 * Compression for writers (qcow2 -c clusters: raw deflate). zlib comes
 * from Debian's static libz.a, as for inflate.h; each compressor's state
 * lives in memory of its own, allocated once and reset per use, so one
 * compressor per vCPU may run concurrently (guest/rt/par.c).
 */
#ifndef INSTAR_GUEST_FMT_DEFLATE_H
#define INSTAR_GUEST_FMT_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "fmt.h"

struct fmt_deflate; /* opaque: holds a z_stream */

/* A raw-deflate compressor (no zlib header or trailer) with a window of
 * 2^window_bits bytes, zlib's memory level mem_level and its default
 * level and strategy, from env->heap. NULL (with a message naming fmt)
 * when it does not fit or zlib refuses the parameters. */
struct fmt_deflate *fmt_deflate_new(const struct fmt_env *env,
                                    int window_bits, int mem_level,
                                    const char *fmt);

/*
 * Compresses src[0, len) into dst as one finished stream that must fit
 * in cap bytes: the compressed length, or 0 when it does not fit (zlib
 * then stops short of the end of the stream). Touches only z, src and
 * dst: safe on the worker vCPU.
 */
size_t fmt_deflate_try(struct fmt_deflate *z, const void *src, size_t len,
                       void *dst, size_t cap);

#endif
