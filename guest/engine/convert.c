#include "engine.h"
#include "../rt/rt.h"

int engine_copy(struct fmt_reader *r, struct fmt_writer *w, uint64_t start,
                uint64_t end, uint64_t out_size, const struct engine_buf *b,
                struct g_error *err)
{
    uint64_t chunk = b->size < ENGINE_CHUNK_MAX ? b->size : ENGINE_CHUNK_MAX;
    uint64_t len = end - start;
    uint64_t done = 0;
    int ret;

    if (end < start || out_size < len || out_size - len >= 512 ||
        chunk < 512)
        return g_fail(err, G_EINVAL,
                      "engine: bad copy range [%llu, %llu) to %llu bytes",
                      (unsigned long long)start, (unsigned long long)end,
                      (unsigned long long)out_size);
    while (done < len) {
        uint64_t n = len - done < chunk ? len - done : chunk;
        ret = r->read(r, start + done, b->p, n);
        if (ret != G_OK)
            return ret;
        ret = fmt_writer_write(w, done, b->p, n);
        if (ret != G_OK)
            return ret;
        done += n;
    }
    /* qemu's output size is the window rounded up to 512; the tail is
     * zeros, never input bytes past the window. */
    if (out_size > len) {
        memset(b->p, 0, (size_t)(out_size - len));
        ret = fmt_writer_write(w, len, b->p, out_size - len);
        if (ret != G_OK)
            return ret;
    }
    uint64_t file_size = 0;
    if ((ret = fmt_writer_finish(w, &file_size)) != G_OK)
        return ret;
    const struct ct_ops *ops = w->env->ops;
    ret = ops->end_output(ops->ctx, file_size);
    if (ret != CT_OK)
        return g_fail(err, ret == CT_ENOSPC ? G_ENOSPC : G_EIO,
                      "%s: cannot finish the output at %llu bytes: %s",
                      w->name, (unsigned long long)file_size,
                      ct_result_str(ret));
    return G_OK;
}
