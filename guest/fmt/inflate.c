#include "inflate.h"

#include "zmem.h"

/* Each stream allocates only from its own arena: zlib allocates its
 * window lazily, inside inflate(), which may run on the worker vCPU. The
 * state (~7 KiB) and a 32 KiB window fit with room to spare. */
#define INFLATE_ARENA (64u * 1024u)

struct fmt_inflate {
    z_stream zs;
    struct arena mem;
    const struct fmt_env *env;
    const char *fmt;
};

struct fmt_inflate *fmt_inflate_new(const struct fmt_env *env, int mode,
                                    const char *fmt)
{
    struct fmt_inflate *z = fmt_alloc(env, sizeof *z, fmt, "inflate state");
    if (!z || !fmt_zmem_init(&z->zs, &z->mem, env, INFLATE_ARENA, fmt,
                             "inflate state"))
        return NULL;
    z->env = env;
    z->fmt = fmt;
    if (inflateInit2(&z->zs, mode) != Z_OK) {
        g_fail(env->err, G_ENOMEM, "%s: cannot set up decompression", fmt);
        return NULL;
    }
    return z;
}

int fmt_inflate_try(struct fmt_inflate *z, const void *src, size_t src_len,
                    void *dst, size_t dst_len, bool allow_partial,
                    struct fmt_inflate_status *st)
{
    int zr;

    *st = (struct fmt_inflate_status){.zr = Z_OK};
    /* zlib's counters are 32-bit; callers bound both sizes far below. */
    if (src_len > UINT32_MAX || dst_len > UINT32_MAX) {
        st->too_large = true;
        return G_EINVAL;
    }
    if ((zr = inflateReset(&z->zs)) != Z_OK) {
        st->zr = zr;
        return G_ECORRUPT;
    }
    z->zs.next_in = (Bytef *)(uintptr_t)src;
    z->zs.avail_in = (uInt)src_len;
    z->zs.next_out = dst;
    z->zs.avail_out = (uInt)dst_len;
    zr = inflate(&z->zs, Z_FINISH);
    st->zr = zr;
    st->out = dst_len - z->zs.avail_out;
    st->msg = z->zs.msg;
    if (zr == Z_STREAM_END)
        return G_OK;
    if (allow_partial && z->zs.avail_out == 0 &&
        (zr == Z_OK || zr == Z_BUF_ERROR))
        return G_OK;
    return G_ECORRUPT;
}

int fmt_inflate_fail(struct fmt_inflate *z,
                     const struct fmt_inflate_status *st, const char *what)
{
    if (st->too_large)
        return g_fail(z->env->err, G_EINVAL, "%s: %s too large to inflate",
                      z->fmt, what);
    return g_fail(z->env->err, G_ECORRUPT,
                  "%s: %s does not decompress (zlib %d: %s)", z->fmt, what,
                  st->zr, st->msg ? st->msg : "truncated or corrupt data");
}

int fmt_inflate(struct fmt_inflate *z, const void *src, size_t src_len,
                void *dst, size_t dst_len, size_t *out_len,
                bool allow_partial, const char *what)
{
    struct fmt_inflate_status st;
    int ret = fmt_inflate_try(z, src, src_len, dst, dst_len, allow_partial,
                              &st);
    *out_len = st.out;
    return ret == G_OK ? G_OK : fmt_inflate_fail(z, &st, what);
}
