/*
 * The engine's side of every writer: the order promise of fmt.h is checked
 * here, once, so a writer can rely on it; and the one way writers reach
 * the output file.
 */
#include "fmt.h"

static int out_of_order(struct fmt_writer *w, const char *call, uint64_t off)
{
    return g_fail(w->env->err, G_EINVAL,
                  "%s: %s at offset %llu, expected %llu (engine bug)",
                  w->name, call, (unsigned long long)off,
                  (unsigned long long)w->pos);
}

/* [off, off+len) must start at pos and stay within the virtual size. */
static int check_range(struct fmt_writer *w, const char *call, uint64_t off,
                       uint64_t len)
{
    uint64_t end;
    if (off != w->pos || __builtin_add_overflow(off, len, &end) ||
        end > w->vsize)
        return out_of_order(w, call, off);
    return G_OK;
}

int fmt_writer_write(struct fmt_writer *w, uint64_t off, const void *buf,
                     uint64_t len)
{
    int ret = check_range(w, "write", off, len);
    if (ret == G_OK && len && (ret = w->write(w, off, buf, len)) == G_OK)
        w->pos += len;
    return ret;
}

int fmt_writer_write_stable(struct fmt_writer *w, struct fmt_stable *st,
                            uint64_t off, const void *buf, uint64_t len)
{
    w->stable = st;
    int ret = fmt_writer_write(w, off, buf, len);
    w->stable = NULL;
    return ret;
}

int fmt_writer_release(struct fmt_writer *w, const uint8_t *p, uint64_t len)
{
    return w->release ? w->release(w, p, len) : G_OK;
}

int fmt_writer_zero(struct fmt_writer *w, uint64_t off, uint64_t len)
{
    int ret = check_range(w, "zero", off, len);
    if (ret == G_OK && len && (ret = w->zero(w, off, len)) == G_OK)
        w->pos += len;
    return ret;
}

int fmt_writer_place(struct fmt_writer *w, uint64_t off, uint64_t len,
                     uint64_t *file_off, uint64_t *n)
{
    int ret = check_range(w, "place", off, len);
    if (ret != G_OK)
        return ret;
    if (!w->place || !len)
        return out_of_order(w, "place", off);
    if ((ret = w->place(w, off, len, file_off, n)) != G_OK)
        return ret;
    if (*n == 0 || *n > len)
        return g_fail(w->env->err, G_EINVAL,
                      "%s: placed %llu of %llu bytes (writer bug)", w->name,
                      (unsigned long long)*n, (unsigned long long)len);
    w->pos += *n;
    return G_OK;
}

int fmt_writer_finish(struct fmt_writer *w, uint64_t *file_size)
{
    return w->finish(w, file_size);
}

const struct ct_output_params *fmt_params(const struct fmt_writer *w)
{
    static const struct ct_output_params defaults;
    return w->opts && w->opts->params ? w->opts->params : &defaults;
}

int fmt_params_only(const struct fmt_writer *w, unsigned takes)
{
    const struct ct_output_params *p = fmt_params(w);
    const struct {
        bool set;
        unsigned bit;
        const char *name;
    } opts[] = {
        {p->cluster_bits != 0, FMT_TAKES_CLUSTER_SIZE, "cluster_size"},
        {p->version != 0, FMT_TAKES_COMPAT, "compat"},
        {p->subformat != 0, FMT_TAKES_SUBFORMAT, "subformat"},
        {p->adapter != 0, FMT_TAKES_ADAPTER, "adapter_type"},
        {p->block_size != 0, FMT_TAKES_BLOCK_SIZE, "block_size"},
        {p->flags & CT_OUT_COMPRESS, FMT_TAKES_COMPRESS, "compression (-c)"},
        {p->flags & CT_OUT_FORCE_SIZE, FMT_TAKES_FORCE_SIZE, "force_size"},
    };

    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (opts[i].set && !(takes & opts[i].bit))
            return g_fail(w->env->err, G_ENOTSUP,
                          "%s: output option %s is not supported", w->name,
                          opts[i].name);
    if (p->flags & ~(CT_OUT_COMPRESS | CT_OUT_FORCE_SIZE))
        return g_fail(w->env->err, G_ENOTSUP,
                      "%s: output flags 0x%x are not supported", w->name,
                      (unsigned)p->flags);
    return G_OK;
}

static int out_done(const struct fmt_writer *w, uint64_t off, uint64_t len,
                    int ret)
{
    if (ret != CT_OK)
        return g_fail(w->env->err, ret == CT_ENOSPC ? G_ENOSPC : G_EIO,
                      "%s: write of %llu bytes at offset %llu failed: %s",
                      w->name, (unsigned long long)len,
                      (unsigned long long)off, ct_result_str(ret));
    return G_OK;
}

int fmt_out_write(const struct fmt_writer *w, uint64_t off, const void *buf,
                  uint64_t len)
{
    const struct ct_ops *ops = w->env->ops;
    return out_done(w, off, len, ops->write(ops->ctx, off, buf, len));
}

int fmt_out_write_data(struct fmt_writer *w, uint64_t off, const void *buf,
                       uint64_t len)
{
    const struct ct_ops *ops = w->env->ops;
    struct fmt_stable *st = w->stable;
    uint64_t ticket = 0;
    if (!st || !ops->write_behind)
        return fmt_out_write(w, off, buf, len);
    int ret = ops->write_behind(ops->ctx, off, buf, len, &ticket);
    /* Each slot the bytes lie in may be reused only after this one. */
    const uint8_t *p = buf;
    for (unsigned k = 0; k < st->slots && ret == CT_OK; k++) {
        const uint8_t *s = st->base + k * st->slot;
        if (p < s + st->slot && s < p + len)
            st->ticket[k] = ticket;
    }
    return out_done(w, off, len, ret);
}
