/*
 * The engine in convert mode: the whole image, zero runs left out as -S
 * says (qemu-img convert's rule: long runs, and any run touching an input
 * hole or an end of the disk, stay unallocated; short runs between data
 * are written), progress reported, every writer.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "output_bound.h"
#include "writer_rig.h"

#define KiB 1024u

/* An image of `n` sectors; sector i is data when map[i] is '#', zero when
 * '.'. */
static uint8_t *image(const char *map, size_t *len)
{
    size_t n = strlen(map);
    uint8_t *p = calloc(n, 512);
    for (size_t i = 0; i < n; i++)
        if (map[i] == '#')
            memset(p + i * 512, (int)(i % 251) + 1, 512);
    *len = n * 512;
    return p;
}

/* 4 KiB runs: data, a long zero run (8 sectors: left out), data, a short
 * run (2 sectors: written), data, and a zero tail (left out). */
Test(convert, long_zero_runs_are_left_out_short_ones_written)
{
    size_t len;
    uint8_t *in = image("########........####..####....", &len);
    struct rig r;
    rig_convert(&r, in, len, CT_FMT_RAW, 4 * KiB, NULL);
    rig_expect_same(&r, in, len);
    /* 8 + 4 + 2 + 4 sectors of data and short run; the 8-sector run and
     * the 4-sector tail are never written. */
    cr_expect_eq(r.m.bytes_written, 18u * 512, "%llu",
                 (unsigned long long)r.m.bytes_written);
    rig_free(&r);
    free(in);
}

Test(convert, zeros_at_the_start_are_left_out_whatever_their_length)
{
    size_t len;
    uint8_t *in = image("..####", &len);
    struct rig r;
    rig_convert(&r, in, len, CT_FMT_RAW, 4 * KiB, NULL);
    rig_expect_same(&r, in, len);
    cr_expect_eq(r.m.bytes_written, 4u * 512);
    rig_free(&r);
    free(in);
}

Test(convert, sparse_zero_writes_everything)
{
    size_t len;
    uint8_t *in = image("##........##", &len);
    struct rig r;
    rig_convert(&r, in, len, CT_FMT_RAW, 0, NULL);
    rig_expect_same(&r, in, len);
    cr_expect_eq(r.m.bytes_written, len, "-S 0 allocates everything");
    rig_free(&r);
    free(in);
}

Test(convert, all_zero_image_writes_nothing)
{
    size_t len;
    uint8_t *in = image("................", &len);
    struct rig r;
    rig_convert(&r, in, len, CT_FMT_RAW, 4 * KiB, NULL);
    rig_expect_same(&r, in, len);
    cr_expect_eq(r.m.bytes_written, 0u);
    rig_free(&r);
    free(in);
}

Test(convert, unaligned_size_is_rounded_like_qemu)
{
    uint8_t in[3000];
    memset(in, 7, sizeof in);
    struct rig r;
    rig_convert(&r, in, sizeof in, CT_FMT_RAW, 4 * KiB, NULL);
    cr_assert_eq(r.ret, G_OK, "%s", r.err.msg);
    cr_assert_eq(r.m.out_len, 3072u);
    cr_expect(!memcmp(r.m.out, in, sizeof in));
    for (size_t i = sizeof in; i < 3072; i++)
        cr_assert_eq(r.m.out[i], 0);
    rig_free(&r);
}

Test(convert, progress_reaches_the_total)
{
    uint8_t *in = rig_pattern(9u << 20, 3);
    struct rig r;
    rig_convert(&r, in, 9u << 20, CT_FMT_RAW, 4 * KiB, NULL);
    cr_assert_eq(r.ret, G_OK, "%s", r.err.msg);
    cr_expect_eq(r.m.progress_done, 9u << 20);
    cr_expect_geq(r.m.progress_calls, 1u);
    rig_free(&r);
    free(in);
}

/* Every writer takes the sparse calls and reads back the same disk. */
Test(convert, every_format_reads_back_the_input)
{
    static const uint32_t fmts[] = {CT_FMT_QCOW2, CT_FMT_VMDK, CT_FMT_VPC,
                                    CT_FMT_VHDX};
    size_t len = 5u << 20;
    uint8_t *in = rig_pattern(len, 3);
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        struct rig r;
        struct g_error err;
        uint64_t vsize = 0, want;
        rig_convert(&r, in, len, fmts[i], 4 * KiB, NULL);
        cr_assert_eq(r.ret, G_OK, "format %u: %s", fmts[i], r.err.msg);
        cr_assert(output_vsize(fmts[i], len, &want));
        uint8_t *back = rig_read_back(&r, fmts[i], &vsize, &err);
        cr_assert(back, "format %u: %s", fmts[i], err.msg);
        cr_expect_eq(vsize, want);
        cr_expect(!memcmp(back, in, len), "format %u: other bytes",
                  fmts[i]);
        for (uint64_t k = len; k < vsize; k++)
            cr_assert_eq(back[k], 0);
        free(back);
        rig_free(&r);
    }
    free(in);
}

/* Data runs of 1.5 MiB between zero runs of 0.5 MiB, a 1 KiB run of
 * zeros inside one (written: shorter than -S), a zero run of 5.5 MiB
 * (qcow2 holds the data before it while every slot is read over) and an
 * odd tail: runs cross the engine's slots and qemu's 2 MiB requests in
 * every way. */
static uint8_t *runs_image(size_t len)
{
    uint8_t *in = rig_pattern(len, 0);
    for (size_t off = 1536 * KiB; off < len; off += 2048 * KiB)
        memset(in + off, 0, len - off < 512 * KiB ? len - off : 512 * KiB);
    memset(in + 700 * KiB, 0, KiB);
    memset(in + 9728 * KiB, 0, 5632 * KiB);
    return in;
}

/* The data goes out as write-behinds, and the engine changes no buffer
 * of one before a wait covers it (ct_mem aborts the test if it does);
 * the output is byte for byte what the same convert writes on a host
 * without write-behinds, qcow2's allocation included. */
Test(convert, writes_behind_without_touching_queued_buffers)
{
    static const uint32_t fmts[] = {CT_FMT_RAW, CT_FMT_QCOW2, CT_FMT_VPC,
                                    CT_FMT_VMDK, CT_FMT_VHDX};
    size_t len = (21u << 20) + 3 * 512;
    uint8_t *in = runs_image(len);
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        struct rig a, b;
        rig_convert(&a, in, len, fmts[i], 4 * KiB, NULL);
        rig_convert_no_behind(&b, in, len, fmts[i], 4 * KiB);
        cr_assert_eq(a.ret, G_OK, "format %u: %s", fmts[i], a.err.msg);
        cr_assert_eq(b.ret, G_OK, "format %u: %s", fmts[i], b.err.msg);
        cr_expect_gt(a.m.behind_writes, 0u, "format %u", fmts[i]);
        cr_expect_gt(a.m.waits, 0u, "format %u: slots reused", fmts[i]);
        cr_expect_eq(b.m.behind_writes, 0u);
        cr_assert_eq(a.m.out_len, b.m.out_len, "format %u", fmts[i]);
        cr_expect(!memcmp(a.m.out, b.m.out, a.m.out_len),
                  "format %u: other bytes than without write-behinds",
                  fmts[i]);
        struct g_error err;
        uint64_t vsize = 0;
        uint8_t *back = fmts[i] == CT_FMT_RAW
                            ? a.m.out
                            : rig_read_back(&a, fmts[i], &vsize, &err);
        cr_assert(back, "format %u: %s", fmts[i], err.msg);
        cr_expect(!memcmp(back, in, len), "format %u: not the input back",
                  fmts[i]);
        if (back != a.m.out)
            free(back);
        rig_free(&a);
        rig_free(&b);
    }
    free(in);
}

/* Output options a writer does not take are refused, not ignored. */
Test(convert, unsupported_output_options_are_refused)
{
    struct ct_output_params p = {.cluster_bits = 12};
    uint8_t in[4096] = {1};
    struct rig r;
    rig_convert(&r, in, sizeof in, CT_FMT_RAW, 4 * KiB, &p);
    cr_expect_eq(r.ret, G_ENOTSUP);
    cr_expect_not(r.m.begun);
    rig_free(&r);
}
