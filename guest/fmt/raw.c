/*
 * raw: the virtual disk is the file. Reads past the end of the file are
 * zeros, which is how qemu's rounding of the size up to 512 bytes reads.
 */
#include "fmt.h"
#include "../rt/rt.h"

static int raw_read(struct fmt_reader *r, uint64_t off, void *buf,
                    uint64_t len)
{
    uint64_t got = 0;
    int ret;

    if (off < r->file_size &&
        (ret = fmt_pread_partial(r->env, r->handle, off, buf, len, &got,
                                 "raw")) != G_OK)
        return ret;
    if (got < len)
        memset((uint8_t *)buf + got, 0, (size_t)(len - got));
    return G_OK;
}

/* The file is the disk: plain up to its end, zeros after (the 512-byte
 * rounding). */
static int raw_extent(struct fmt_reader *r, uint64_t off, uint64_t len,
                      struct fmt_extent *e)
{
    if (off >= r->file_size) {
        *e = (struct fmt_extent){FMT_EXTENT_ZERO, 0, 0, len};
        return G_OK;
    }
    uint64_t n = r->file_size - off < len ? r->file_size - off : len;
    *e = (struct fmt_extent){FMT_EXTENT_PLAIN, r->handle, off, n};
    return G_OK;
}

int fmt_raw_open(const struct fmt_env *env, uint32_t handle,
                 struct fmt_reader *r)
{
    uint64_t size;
    int ret = env->ops->size(env->ops->ctx, handle, &size);
    if (ret != CT_OK)
        return g_fail(env->err, G_EIO, "raw: cannot get the image size: %s",
                      ct_result_str(ret));
    r->name = "raw";
    r->vsize = size;
    r->file_size = size;
    r->read = raw_read;
    r->extent = raw_extent;
    r->env = env;
    r->handle = handle;
    return G_OK;
}
