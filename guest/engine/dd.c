/* dd = open the input, compute the window, open the writer, declare the
 * output, copy. */
#include "engine.h"
#include "output_bound.h"
#include "../rt/rt.h"

/* qemu-img's refusal of a size the output format cannot hold. */
static int too_large(struct g_error *err, uint32_t format, uint64_t size)
{
    static const char *const names[CT_FMT_COUNT] = {
        [CT_FMT_QCOW2] = "qcow2", [CT_FMT_VMDK] = "vmdk",
        [CT_FMT_VPC] = "vpc", [CT_FMT_VHDX] = "vhdx"};
    const char *name = format < CT_FMT_COUNT && names[format]
                           ? names[format] : "output";
    return g_fail(err, G_ERANGE,
                  "The image size is too large for file format '%s' "
                  "(%llu bytes)", name, (unsigned long long)size);
}

int dd_run(const struct dd_config *cfg, const struct ct_ops *ops,
           const struct dd_mem *mem, struct g_error *err)
{
    struct arena heap, io;
    struct fmt_chain chain = {0};
    struct fmt_env env = {ops,      err,           &heap, &io,
                          mem->par, cfg->files_max, &chain, FMT_REFS_OPEN};
    struct fmt_reader *r;
    struct fmt_writer *w;
    static const struct ct_output_params defaults;
    struct fmt_write_opts opts = cfg->write;
    struct window win;
    uint64_t vsize;
    struct engine_buf b;
    int ret;

    if (!opts.params)
        opts.params = &defaults; /* dd, and callers that leave it out */
    arena_init(&heap, mem->heap, mem->heap_size);
    arena_init(&io, mem->io, mem->io_size);
    /* The chunk buffer first, so drivers get the rest of the I/O area. */
    b.size = mem->io_size / 2 < ENGINE_BUF_MAX ? mem->io_size / 2
                                               : ENGINE_BUF_MAX;
    b.size &= ~(uint64_t)511;
    if (b.size < 512 || !(b.p = arena_alloc(&io, b.size, 4096)))
        return g_fail(err, G_EINVAL, "engine: I/O area too small");
    ret = fmt_open_named(&env, CT_HANDLE_INPUT, cfg->in_format, 0,
                         cfg->in_dmg_name, &r);
    if (ret != G_OK)
        return ret;
    if (!window_compute(r->vsize, &cfg->args, &win))
        return g_fail(err, G_ERANGE, "%s: virtual size %llu is too large",
                      r->name, (unsigned long long)r->vsize);
    if (!output_vsize_p(cfg->out_format, opts.params, win.out_size, &vsize))
        return too_large(err, cfg->out_format, win.out_size);
    /* qemu-img dd writes in requests of bs bytes; convert's requests are
     * not dd's (the writer decides by its own calls). */
    opts.request_size = cfg->convert ? 0 : cfg->args.bs;
    opts.sparse_min = cfg->convert ? cfg->sparse_min : 0;
    ret = fmt_writer_open(&env, cfg->out_format, vsize, &opts, &w);
    if (ret != G_OK)
        return ret;
    ret = ops->begin_output(ops->ctx, cfg->out_format, r->vsize);
    if (ret != CT_OK)
        return g_fail(err, G_EIO, "host refused the output: %s",
                      ct_result_str(ret));
    struct engine_job job = {win.start, win.end, win.out_size,
                             cfg->sparse_min, cfg->progress};
    return engine_copy(r, w, &job, &b, err);
}
