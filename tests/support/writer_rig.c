#include "writer_rig.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* The guest's own sizes: writers of large clusters or blocks need them. */
#define RIG_HEAP CT_HEAP_SIZE
#define RIG_IO CT_IO_SIZE

static void run_with(struct rig *r, const uint8_t *in, size_t len,
                     struct window_args a, uint32_t out_format,
                     const char *out_name, bool no_kernel,
                     const struct dd_config *extra, uint32_t hole_block,
                     bool no_behind)
{
    struct dd_mem mem = {calloc(1, RIG_HEAP), RIG_HEAP, calloc(1, RIG_IO),
                         RIG_IO, NULL};
    const char *name = out_name ? out_name : "out.img";
    for (unsigned i = 0; i < FMT_ENTROPY_LEN; i++)
        r->entropy[i] = (uint8_t)(i + 1);
    struct dd_config cfg = {
        .in_format = CT_FMT_RAW,
        .out_format = out_format,
        .args = a,
        .write = {.unix_time = 1700000000,
                  .entropy = r->entropy,
                  .out_name = name,
                  .out_name_len = (uint32_t)strlen(name)},
    };
    if (extra) {
        cfg.convert = extra->convert;
        cfg.sparse_min = extra->sparse_min;
        cfg.progress = extra->progress;
        cfg.write.params = extra->write.params;
    }
    memset(&r->err, 0, sizeof r->err);
    ct_mem_init(&r->m, in, len, out_format, &a);
    r->m.no_kernel = no_kernel;
    r->m.no_behind = no_behind;
    r->m.hole_block = hole_block;
    r->m.out_params = cfg.write.params; /* the host bounds by the shape */
    struct ct_ops ops = ct_mem_ops(&r->m);
    r->ret = dd_run(&cfg, &ops, &mem, &r->err);
    free(mem.heap);
    free(mem.io);
}

void rig_write(struct rig *r, const uint8_t *in, size_t len,
               struct window_args a, uint32_t out_format,
               const char *out_name)
{
    run_with(r, in, len, a, out_format, out_name, false, NULL, 0, false);
}

void rig_write_guest_path(struct rig *r, const uint8_t *in, size_t len,
                          struct window_args a, uint32_t out_format,
                          const char *out_name)
{
    run_with(r, in, len, a, out_format, out_name, true, NULL, 0, false);
}

void rig_convert(struct rig *r, const uint8_t *in, size_t len,
                 uint32_t out_format, uint64_t sparse_min,
                 const struct ct_output_params *p)
{
    rig_convert_holes(r, in, len, out_format, sparse_min, p, 0);
}

static void convert_with(struct rig *r, const uint8_t *in, size_t len,
                         uint32_t out_format, uint64_t sparse_min,
                         const struct ct_output_params *p,
                         uint32_t hole_block, bool no_behind)
{
    static const struct window_args whole = {512, 0, 0, false, false};
    struct dd_config extra = {.convert = true,
                              .sparse_min = sparse_min,
                              .progress = true,
                              .write = {.params = p}};
    run_with(r, in, len, whole, out_format, NULL, false, &extra, hole_block,
             no_behind);
}

void rig_convert_holes(struct rig *r, const uint8_t *in, size_t len,
                       uint32_t out_format, uint64_t sparse_min,
                       const struct ct_output_params *p, uint32_t hole_block)
{
    convert_with(r, in, len, out_format, sparse_min, p, hole_block, false);
}

void rig_convert_no_behind(struct rig *r, const uint8_t *in, size_t len,
                           uint32_t out_format, uint64_t sparse_min)
{
    convert_with(r, in, len, out_format, sparse_min, NULL, 0, true);
}

void rig_write_holes(struct rig *r, const uint8_t *in, size_t len,
                     struct window_args a, uint32_t out_format,
                     uint32_t hole_block)
{
    run_with(r, in, len, a, out_format, NULL, false, NULL, hole_block,
             false);
}

uint8_t *rig_read_back(const struct rig *r, uint32_t format, uint64_t *vsize,
                       struct g_error *err)
{
    static const struct window_args all = {1, 0, 0, false, false};
    struct ct_mem m;
    struct dd_mem mem = {calloc(1, RIG_HEAP), RIG_HEAP, calloc(1, RIG_IO),
                         RIG_IO, NULL};
    struct dd_config cfg = {
        .in_format = format, .out_format = CT_FMT_RAW, .args = all};
    uint8_t *out = NULL;

    memset(err, 0, sizeof *err);
    ct_mem_init(&m, r->m.out, r->m.out_len, CT_FMT_RAW, &all);
    struct ct_ops ops = ct_mem_ops(&m);
    if (dd_run(&cfg, &ops, &mem, err) == G_OK) {
        out = m.out ? m.out : malloc(1);
        *vsize = m.out_len;
        m.out = NULL; /* handed to the caller */
    }
    ct_mem_free(&m);
    free(mem.heap);
    free(mem.io);
    return out;
}

void rig_free(struct rig *r)
{
    ct_mem_free(&r->m);
}

uint8_t *rig_pattern(size_t n, unsigned zero_every)
{
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        size_t region = i >> 16;
        p[i] = zero_every && region % zero_every == 1
                   ? 0
                   : (uint8_t)((37 * region + i) % 255 + 1);
    }
    return p;
}

void rig_expect_same(const struct rig *r, const uint8_t *in, size_t len)
{
    cr_assert_eq(r->ret, G_OK, "%s", r->err.msg);
    cr_assert_eq(r->m.out_len, len);
    cr_assert(!memcmp(r->m.out, in, len), "the output is not the input");
}
