#include "inflate.h"

#include <zlib.h>

struct fmt_inflate {
    z_stream zs;
    const struct fmt_env *env;
    const char *fmt;
    bool ready;
};

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    struct arena *a = opaque;
    return arena_alloc(a, (uint64_t)items * size, 16);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    (void)p; /* arena memory lives as long as the run */
}

struct fmt_inflate *fmt_inflate_new(const struct fmt_env *env, int mode,
                                    const char *fmt)
{
    struct fmt_inflate *z = fmt_alloc(env, sizeof *z, fmt, "inflate state");
    if (!z)
        return NULL;
    z->env = env;
    z->fmt = fmt;
    z->zs.zalloc = z_alloc;
    z->zs.zfree = z_free;
    z->zs.opaque = env->heap;
    if (inflateInit2(&z->zs, mode) != Z_OK) {
        g_fail(env->err, G_ENOMEM, "%s: cannot set up decompression", fmt);
        return NULL;
    }
    z->ready = true;
    return z;
}

int fmt_inflate(struct fmt_inflate *z, const void *src, size_t src_len,
                void *dst, size_t dst_len, size_t *out_len,
                bool allow_partial, const char *what)
{
    int zr;

    if (inflateReset(&z->zs) != Z_OK)
        return g_fail(z->env->err, G_EINVAL, "%s: inflate reset failed",
                      z->fmt);
    /* zlib's counters are 32-bit; callers bound both sizes far below. */
    if (src_len > UINT32_MAX || dst_len > UINT32_MAX)
        return g_fail(z->env->err, G_EINVAL, "%s: %s too large to inflate",
                      z->fmt, what);
    z->zs.next_in = (Bytef *)(uintptr_t)src;
    z->zs.avail_in = (uInt)src_len;
    z->zs.next_out = dst;
    z->zs.avail_out = (uInt)dst_len;
    zr = inflate(&z->zs, Z_FINISH);
    *out_len = dst_len - z->zs.avail_out;
    if (zr == Z_STREAM_END)
        return G_OK;
    if (allow_partial && z->zs.avail_out == 0 &&
        (zr == Z_OK || zr == Z_BUF_ERROR))
        return G_OK;
    return g_fail(z->env->err, G_ECORRUPT,
                  "%s: %s does not decompress (zlib %d: %s)", z->fmt, what, zr,
                  z->zs.msg ? z->zs.msg : "truncated or corrupt data");
}
