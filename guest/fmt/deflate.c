#include "deflate.h"

#include "zmem.h"

/* zlib's deflate state with a 4 KiB window and memory level 9: the state
 * (~6 KiB), window and prev (16 KiB), a 64 Ki-entry hash head (128 KiB)
 * and the pending buffer (128 KiB); zlib allocates them all in
 * deflateInit2. */
#define DEFLATE_ARENA (320u * 1024u)

struct fmt_deflate {
    z_stream zs;
    struct arena mem;
};

struct fmt_deflate *fmt_deflate_new(const struct fmt_env *env,
                                    int window_bits, int mem_level,
                                    const char *fmt)
{
    struct fmt_deflate *z = fmt_alloc(env, sizeof *z, fmt, "deflate state");
    if (!z || !fmt_zmem_init(&z->zs, &z->mem, env, DEFLATE_ARENA, fmt,
                             "deflate state"))
        return NULL;
    if (deflateInit2(&z->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -window_bits,
                     mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
        g_fail(env->err, G_ENOMEM, "%s: cannot set up compression", fmt);
        return NULL;
    }
    return z;
}

size_t fmt_deflate_try(struct fmt_deflate *z, const void *src, size_t len,
                       void *dst, size_t cap)
{
    /* zlib's counters are 32-bit; callers pass at most a cluster. */
    if (len > UINT32_MAX || cap > UINT32_MAX ||
        deflateReset(&z->zs) != Z_OK)
        return 0;
    z->zs.next_in = (Bytef *)(uintptr_t)src;
    z->zs.avail_in = (uInt)len;
    z->zs.next_out = dst;
    z->zs.avail_out = (uInt)cap;
    /* Z_STREAM_END only when the whole stream fit with room to spare:
     * zlib reports Z_OK when the output ends exactly at cap. */
    if (deflate(&z->zs, Z_FINISH) != Z_STREAM_END)
        return 0;
    return cap - z->zs.avail_out;
}
