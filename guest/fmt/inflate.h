/*
 * Decompression for drivers (qcow2 clusters: raw deflate; vmdk grains:
 * zlib). zlib comes from Debian's static libz.a, linked into dd.bin; its
 * state lives in the driver's arena, allocated once and reset per use.
 * Output is bounded by the destination size, so a compression bomb only
 * ever fills one cluster or grain.
 */
#ifndef INSTAR_GUEST_FMT_INFLATE_H
#define INSTAR_GUEST_FMT_INFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fmt.h"

#define FMT_INFLATE_RAW (-15) /* raw deflate, 32 KiB window (qcow2) */
#define FMT_INFLATE_ZLIB 15   /* zlib header + adler32 (vmdk) */

struct fmt_inflate; /* opaque: holds a z_stream */

/* What one inflate did, for the caller to report (fmt_inflate_fail). */
struct fmt_inflate_status {
    int zr;          /* zlib's return code */
    bool too_large;  /* a size did not fit zlib's 32-bit counters */
    size_t out;      /* bytes produced */
    const char *msg; /* zlib's message (static), or NULL */
};

/* Allocates a decompressor from env->heap. Its state and window live in
 * memory of its own, so one decompressor per vCPU may run concurrently. */
struct fmt_inflate *fmt_inflate_new(const struct fmt_env *env, int mode,
                                    const char *fmt);

/*
 * Inflates src into dst. *out_len receives the bytes produced. The stream
 * must end within src (Z_STREAM_END) unless `allow_partial` is set; then
 * filling dst completely also counts as success (qcow2 compressed clusters
 * may carry trailing bytes). Garbage is G_ECORRUPT with a message naming
 * fmt and `what`.
 */
int fmt_inflate(struct fmt_inflate *z, const void *src, size_t src_len,
                void *dst, size_t dst_len, size_t *out_len,
                bool allow_partial, const char *what);

/* fmt_inflate without the message: safe on the worker vCPU (touches only
 * z, src and dst). Returns G_OK, or an error with *st saying why. */
int fmt_inflate_try(struct fmt_inflate *z, const void *src, size_t src_len,
                    void *dst, size_t dst_len, bool allow_partial,
                    struct fmt_inflate_status *st);

/* The error fmt_inflate reports for a failed fmt_inflate_try. */
int fmt_inflate_fail(struct fmt_inflate *z,
                     const struct fmt_inflate_status *st, const char *what);

#endif
