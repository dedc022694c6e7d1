/* The guest engine and raw driver, run on the host over ct_mem. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ct_mem.h"
#include "engine/engine.h"

static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7 + (i >> 9) + 1); /* never all-zero blocks */
    return p;
}

struct run {
    struct ct_mem m;
    struct g_error err;
    int ret;
};

/* The host's kernel copy off: the guest's own read-and-write path. */
static bool kernel_off;

static void run_dd(struct run *r, const uint8_t *in, size_t len,
                   struct window_args a, uint32_t in_fmt, size_t iosize)
{
    struct dd_mem mem = {calloc(1, 1 << 20), 1 << 20, calloc(1, iosize),
                         iosize, NULL};
    struct dd_config cfg = {
        .in_format = in_fmt, .out_format = CT_FMT_RAW, .args = a};
    memset(&r->err, 0, sizeof r->err);
    ct_mem_init(&r->m, in, len, CT_FMT_RAW, &a);
    r->m.no_kernel = kernel_off;
    struct ct_ops ops = ct_mem_ops(&r->m);
    r->ret = dd_run(&cfg, &ops, &mem, &r->err);
    free(mem.heap);
    free(mem.io);
}

/* Expected output by the definition: input (zero-padded) [start, end),
 * then zeros to the next multiple of 512. */
static void expect_window(const struct run *r, const uint8_t *in, size_t len,
                          uint64_t start, uint64_t end)
{
    uint64_t out = (end - start + 511) & ~511ull;
    cr_assert_eq(r->ret, G_OK, "dd failed: %s", r->err.msg);
    cr_assert_eq(r->m.out_len, out, "output %zu bytes, expected %llu",
                 r->m.out_len, (unsigned long long)out);
    for (uint64_t i = 0; i < out; i++) {
        uint64_t src = start + i;
        uint8_t want = (src < end && src < len) ? in[src] : 0;
        if (r->m.out[i] != want)
            cr_assert_fail("byte %llu: got %u want %u",
                           (unsigned long long)i, r->m.out[i], want);
    }
}

Test(engine, whole_file_unaligned_size)
{
    uint8_t *in = pattern(3000);
    struct run r;
    run_dd(&r, in, 3000, (struct window_args){512, 0, 0, 0, 0}, CT_FMT_PROBE,
           1 << 20);
    expect_window(&r, in, 3000, 0, 3072);
    ct_mem_free(&r.m);
    free(in);
}

Test(engine, chunk_loop_with_small_buffer)
{
    /* A 2 KiB I/O area (1 KiB chunks) forces many chunks and a short last
     * one. */
    size_t len = 1050112 + 77;
    uint8_t *in = pattern(len);
    struct run r;
    kernel_off = true;
    run_dd(&r, in, len, (struct window_args){1000, 0, 3, 0, 1}, CT_FMT_PROBE,
           2048);
    kernel_off = false;
    expect_window(&r, in, len, 3000, (len + 511) & ~511ull);
    cr_expect_gt(r.m.writes, 1000);
    cr_expect_eq(r.m.copies, 0);
    ct_mem_free(&r.m);
    free(in);
}

/* Raw to raw: the host copies the whole window in one call and the bytes
 * never enter the guest; only the zero tail of the 512 rounding is
 * written. */
Test(engine, raw_window_is_one_host_copy)
{
    size_t len = 1050112 + 77;
    uint8_t *in = pattern(len);
    struct run r;
    run_dd(&r, in, len, (struct window_args){1000, 0, 3, 0, 1}, CT_FMT_PROBE,
           2048);
    expect_window(&r, in, len, 3000, (len + 511) & ~511ull);
    cr_expect_eq(r.m.copies, 1);
    cr_expect_eq(r.m.writes, 1, "only the zero tail");
    ct_mem_free(&r.m);
    free(in);
}

Test(engine, window_is_not_padded_with_input_bytes)
{
    /* bs=3 count=100: 300 bytes of data, then zeros to 512, although the
     * input has data there. */
    uint8_t *in = pattern(3000);
    struct run r;
    run_dd(&r, in, 3000, (struct window_args){3, 100, 0, 1, 0}, CT_FMT_PROBE,
           1 << 20);
    expect_window(&r, in, 3000, 0, 300);
    cr_expect_eq(r.m.out[299], in[299]);
    cr_expect_eq(r.m.out[300], 0);
    ct_mem_free(&r.m);
    free(in);
}

Test(engine, matrix_against_definition)
{
    static const uint64_t sizes[] = {0, 1, 511, 512, 1000, 3000, 70000};
    static const uint64_t bss[] = {1, 3, 512, 1000, 4096, 65536};
    static const uint64_t ns[] = {0, 1, 2, 5, 17, 300, 100000};
    for (size_t si = 0; si < 2 * sizeof sizes / sizeof *sizes; si++) {
        /* Every case twice: kernel copies, and the guest's own path. */
        kernel_off = si % 2;
        uint8_t *in = pattern(sizes[si / 2]);
        for (size_t bi = 0; bi < sizeof bss / sizeof *bss; bi++)
            for (size_t ci = 0; ci < 8; ci++)
                for (size_t ki = 0; ki < 8; ki++) {
                    struct window_args a = {bss[bi], ci < 7 ? ns[ci] : 0,
                                            ki < 7 ? ns[ki] : 0, ci < 7,
                                            ki < 7};
                    struct window w = {0};
                    struct run r;
                    cr_assert(window_compute(sizes[si / 2], &a, &w));
                    run_dd(&r, in, sizes[si / 2], a, CT_FMT_PROBE, 4096);
                    expect_window(&r, in, sizes[si / 2], w.start, w.end);
                    cr_expect_eq(r.m.skip_notice, w.skip_past_end);
                    ct_mem_free(&r.m);
                }
        free(in);
    }
    kernel_off = false;
}

Test(engine, known_format_magic_is_refused_not_read_as_raw)
{
    /* qed: recognised by the probe, no driver (qcow2 now has one). */
    uint8_t in[4096] = "QED";
    struct run r;
    run_dd(&r, in, sizeof in, (struct window_args){512, 0, 0, 0, 0},
           CT_FMT_PROBE, 1 << 20);
    cr_expect_eq(r.ret, G_ENOTSUP);
    cr_expect_str_eq(r.err.msg, "qed image: format not supported by instar");
    cr_expect_not(r.m.begun, "no output may be declared");
    ct_mem_free(&r.m);
}

Test(engine, forced_raw_copies_container_bytes)
{
    uint8_t in[1024] = "QFI\xfb";
    struct run r;
    run_dd(&r, in, sizeof in, (struct window_args){512, 0, 0, 0, 0},
           CT_FMT_RAW, 1 << 20);
    expect_window(&r, in, sizeof in, 0, 1024);
    ct_mem_free(&r.m);
}

Test(engine, read_error_names_offset)
{
    uint8_t *in = pattern(8192);
    struct run r;
    struct dd_mem mem = {calloc(1, 65536), 65536, calloc(1, 2048), 2048, NULL};
    struct window_args a = {512, 0, 0, 0, 0};
    struct dd_config cfg = {
        .in_format = CT_FMT_RAW, .out_format = CT_FMT_RAW, .args = a};
    memset(&r.err, 0, sizeof r.err);
    ct_mem_init(&r.m, in, 8192, CT_FMT_RAW, &a);
    r.m.fail_read_at = 3;
    r.m.no_kernel = true; /* reads happen only on the guest's path */
    struct ct_ops ops = ct_mem_ops(&r.m);
    cr_expect_eq(dd_run(&cfg, &ops, &mem, &r.err), G_EIO);
    cr_expect_str_eq(r.err.msg,
                     "raw: read of 1024 bytes at offset 2048 failed: I/O "
                     "error");
    ct_mem_free(&r.m);
    free(mem.heap);
    free(mem.io);
    free(in);
}

Test(engine, first_error_wins)
{
    struct g_error e = {0};
    cr_expect_eq(g_fail(&e, G_EIO, "first %d", 1), G_EIO);
    cr_expect_eq(g_fail(&e, G_EINVAL, "second"), G_EINVAL);
    cr_expect_eq(e.code, G_EIO);
    cr_expect_str_eq(e.msg, "first 1");
}
