/*
 * Holes of the input's files (ABI 9's map call, guest/engine/holes.c): a
 * plain range in a hole of its file is zeros, so a sparse output skips it
 * as qemu-img convert skips the holes of a raw input, and nobody reads or
 * copies it; a file without holes costs one map call.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "engine/holes.h"
#include "writer_rig.h"

#define KiB 1024u
#define MiB (1024u * KiB)

/* len bytes of zeros with 4 KiB of data at each offset in at[] */
static uint8_t *sparse(size_t len, const size_t *at, unsigned n)
{
    uint8_t *p = calloc(1, len);
    for (unsigned i = 0; i < n; i++)
        for (size_t j = 0; j < 4 * KiB; j++)
            p[at[i] + j] = (uint8_t)(j % 251 + 1);
    return p;
}

Test(holes, convert_reads_no_hole)
{
    const size_t len = 64 * MiB, at[] = {0, 32 * MiB, len - 4 * KiB};
    uint8_t *in = sparse(len, at, 3);
    struct rig r;
    rig_convert_holes(&r, in, len, CT_FMT_RAW, 4 * KiB, NULL, 4 * KiB);
    rig_expect_same(&r, in, len);
    cr_expect_eq(r.m.bytes_taken, 12u * KiB, "read %llu bytes",
                 (unsigned long long)r.m.bytes_taken);
    cr_expect_eq(r.m.bytes_written, 12u * KiB);
    rig_free(&r);
    /* the same file system without holes: everything is read */
    rig_convert_holes(&r, in, len, CT_FMT_RAW, 4 * KiB, NULL, 0);
    rig_expect_same(&r, in, len);
    cr_expect_eq(r.m.bytes_taken, len);
    cr_expect_eq(r.m.bytes_written, 12u * KiB);
    rig_free(&r);
    free(in);
}

/* A hole shorter than -S between data is still left out: it touches a
 * hole of the input (qemu-img's rule); zeros stored as data are written. */
Test(holes, a_short_hole_is_left_out_stored_zeros_are_not)
{
    const size_t len = 16 * KiB, at[] = {0, 8 * KiB};
    uint8_t *in = sparse(len, at, 2);
    struct rig r;
    rig_convert_holes(&r, in, len, CT_FMT_RAW, 64 * KiB, NULL, 4 * KiB);
    rig_expect_same(&r, in, len);
    cr_expect_eq(r.m.bytes_written, 8u * KiB, "%llu",
                 (unsigned long long)r.m.bytes_written);
    rig_free(&r);
    rig_convert_holes(&r, in, len, CT_FMT_RAW, 64 * KiB, NULL, 0);
    rig_expect_same(&r, in, len);
    cr_expect_eq(r.m.bytes_written, 12u * KiB, "the 4 KiB run is written");
    rig_free(&r);
    free(in);
}

/* dd stays dense: holes are allocated zeros, but never read or copied. */
Test(holes, dd_allocates_holes_without_reading_them)
{
    const size_t len = 8 * MiB, at[] = {MiB};
    uint8_t *in = sparse(len, at, 1);
    static const struct window_args a = {MiB, 0, 0, false, false};
    struct rig r;
    rig_write_holes(&r, in, len, a, CT_FMT_RAW, 4 * KiB);
    rig_expect_same(&r, in, len);
    cr_expect_eq(r.m.bytes_written, len);
    cr_expect_eq(r.m.bytes_taken, 4u * KiB);
    rig_free(&r);
    rig_write_holes(&r, in, len, a, CT_FMT_QCOW2, 4 * KiB);
    cr_assert_eq(r.ret, G_OK, "%s", r.err.msg);
    cr_expect_eq(r.m.bytes_taken, 4u * KiB);
    uint64_t vsize;
    struct g_error err;
    uint8_t *back = rig_read_back(&r, CT_FMT_QCOW2, &vsize, &err);
    cr_assert_not_null(back, "%s", err.msg);
    cr_expect(vsize == len && !memcmp(back, in, len));
    free(back);
    rig_free(&r);
    free(in);
}

/* A file without holes is asked about once, whatever the reads. */
Test(holes, a_dense_file_costs_one_call)
{
    const size_t len = 8 * MiB;
    uint8_t *in = rig_pattern(len, 0);
    struct rig r;
    rig_convert_holes(&r, in, len, CT_FMT_RAW, 4 * KiB, NULL, 4 * KiB);
    rig_expect_same(&r, in, len);
    cr_expect_eq(r.m.maps, 1u);
    rig_free(&r);
    free(in);
}

/* holes_refine against a host that answers what it likes. */
struct fake {
    int ret;
    uint64_t size, data, hole;
    unsigned calls;
};

static int fake_map(void *ctx, uint32_t h, uint64_t off, uint64_t *data,
                    uint64_t *hole)
{
    struct fake *f = ctx;
    (void)h;
    (void)off;
    f->calls++;
    *data = f->data;
    *hole = f->hole;
    return f->ret;
}

static int fake_size(void *ctx, uint32_t h, uint64_t *size)
{
    (void)h;
    *size = ((struct fake *)ctx)->size;
    return CT_OK;
}

static int refine(struct fake *f, uint64_t off, uint64_t len,
                  struct fmt_extent *e, struct g_error *err)
{
    struct ct_ops ops = {.ctx = f, .size = fake_size, .map = fake_map};
    struct holes h;
    holes_init(&h, &ops);
    *e = (struct fmt_extent){FMT_EXTENT_PLAIN, 3, off, len};
    memset(err, 0, sizeof *err);
    return holes_refine(&h, e, err);
}

Test(holes, host_answers_are_checked)
{
    struct fmt_extent e;
    struct g_error err;
    /* a hole from 0 to 4096, data to 8192, in a 16 KiB file */
    struct fake ok = {CT_OK, 16384, 4096, 8192, 0};
    cr_assert_eq(refine(&ok, 0, 16384, &e, &err), G_OK);
    cr_expect(e.kind == FMT_EXTENT_ZERO && e.len == 4096);
    cr_expect_eq(refine(&ok, 5000, 16384, &e, &err), G_OK);
    cr_expect(e.kind == FMT_EXTENT_PLAIN && e.len == 3192);
    /* data before the offset asked, or past the end of the file */
    struct fake bad = {CT_OK, 16384, 0, 8192, 0};
    cr_expect_eq(refine(&bad, 100, 10, &e, &err), G_OK); /* asks at 0 */
    struct fake past = {CT_OK, 16384, 0, 20000, 0};
    cr_expect_eq(refine(&past, 0, 10, &e, &err), G_EIO);
    cr_expect(strstr(err.msg, "answered"), "%s", err.msg);
    struct fake back = {CT_OK, 16384, 8192, 4096, 0};
    cr_expect_eq(refine(&back, 0, 10, &e, &err), G_EIO);
    /* a host that cannot say: everything stays data, never asked again */
    struct fake no = {CT_ENOTSUP, 16384, 0, 0, 0};
    cr_expect_eq(refine(&no, 0, 10, &e, &err), G_OK);
    cr_expect(e.kind == FMT_EXTENT_PLAIN && e.len == 10);
    struct fake fail = {CT_EIO, 16384, 0, 0, 0};
    cr_expect_eq(refine(&fail, 0, 10, &e, &err), G_EIO);
    cr_expect(strstr(err.msg, "map of file 3"), "%s", err.msg);
    /* past the end of the file reads as zeros, without asking */
    struct fake end = {CT_OK, 4096, 0, 4096, 0};
    cr_expect_eq(refine(&end, 8192, 512, &e, &err), G_OK);
    cr_expect(e.kind == FMT_EXTENT_ZERO && e.len == 512);
}
