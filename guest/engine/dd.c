/* dd = open the input, compute the window, declare the output, copy. */
#include "engine.h"
#include "../rt/rt.h"

static int open_input(const struct dd_config *cfg, const struct fmt_env *env,
                      const struct engine_buf *b, struct fmt_reader *r)
{
    uint32_t fmt = cfg->in_format;

    if (fmt == CT_FMT_PROBE) {
        uint64_t size = 0, got = 0;
        const struct ct_ops *ops = env->ops;
        int ret = ops->size(ops->ctx, CT_HANDLE_INPUT, &size);
        if (ret == CT_OK && size > 0)
            ret = ops->read(ops->ctx, CT_HANDLE_INPUT, 0, b->p,
                            FMT_PROBE_LEN, &got);
        if (ret != CT_OK)
            return g_fail(env->err, G_EIO, "cannot read the image header: %s",
                          ct_result_str(ret));
        if (got > FMT_PROBE_LEN)
            got = FMT_PROBE_LEN;
        struct fmt_probe_result p = fmt_probe(b->p, (size_t)got);
        if (p.format != CT_FMT_RAW)
            return g_fail(env->err, G_ENOTSUP,
                          "%s image: format not supported yet", p.name);
        fmt = p.format;
    }
    if (fmt != CT_FMT_RAW)
        return g_fail(env->err, G_ENOTSUP,
                      "input format %u not supported yet", (unsigned)fmt);
    return fmt_raw_open(env, CT_HANDLE_INPUT, r);
}

int dd_run(const struct dd_config *cfg, const struct ct_ops *ops,
           const struct engine_buf *b, struct g_error *err)
{
    struct fmt_env env = {ops, err};
    struct fmt_reader r;
    struct fmt_writer w;
    struct window win;
    int ret;

    if (b->size < FMT_PROBE_LEN)
        return g_fail(err, G_EINVAL, "engine: I/O area too small");
    ret = open_input(cfg, &env, b, &r);
    if (ret != G_OK)
        return ret;
    if (!window_compute(r.vsize, &cfg->args, &win))
        return g_fail(err, G_ERANGE, "%s: virtual size %llu is too large",
                      r.name, (unsigned long long)r.vsize);
    ret = ops->begin_output(ops->ctx, cfg->out_format, r.vsize);
    if (ret != CT_OK)
        return g_fail(err, G_EIO, "host refused the output: %s",
                      ct_result_str(ret));
    if (cfg->out_format != CT_FMT_RAW)
        return g_fail(err, G_ENOTSUP, "output format %u not supported yet",
                      (unsigned)cfg->out_format);
    ret = fmt_raw_writer_open(&env, win.out_size, &w);
    if (ret != G_OK)
        return ret;
    return engine_copy(&r, &w, win.start, win.end, win.out_size, b, err);
}
