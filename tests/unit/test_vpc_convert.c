/*
 * The vpc writer's convert shapes (-o subformat=fixed, force_size=on)
 * through the engine (rig_convert), checked against what qemu-img 7.2
 * convert writes for the same options (measured: file sizes, footer
 * fields, which bytes are allocated) and read back with the project's vpc
 * reader.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fmt/vpc.h"
#include "output_bound.h"
#include "writer_rig.h"

#define KiB 1024ull
#define MiB (1024 * KiB)
#define VHD_EPOCH 946684800u

static const struct ct_output_params fixed = {.subformat = CT_SUB_FIXED};
static const struct ct_output_params forced = {.flags = CT_OUT_FORCE_SIZE};
static const struct ct_output_params fixed_forced = {
    .subformat = CT_SUB_FIXED, .flags = CT_OUT_FORCE_SIZE};

/* An input of len bytes with data (never zero) at the given ranges. */
static uint8_t *input(size_t len, const uint64_t (*data)[2], size_t n)
{
    uint8_t *p = calloc(len ? len : 1, 1);
    for (size_t i = 0; i < n; i++)
        for (uint64_t o = data[i][0]; o < data[i][1]; o++)
            p[o] = (uint8_t)(o % 251 + 1);
    return p;
}

/* What a footer says, field by field, that varies with the shape. */
struct footer {
    uint64_t data_offset, size;
    const char *creator;
    unsigned c, h, s, type;
};

/* The footer at `off`: the shape's fields as qemu writes them, and the
 * rest as for every qemu-img VHD (writers.md 4.1). */
static void expect_footer(const struct rig *r, uint64_t off,
                          const struct footer *want)
{
    cr_assert_geq(r->m.out_len, off + 512);
    const uint8_t *f = r->m.out + off;
    cr_expect(!memcmp(f, "conectix", 8), "cookie at %llu",
              (unsigned long long)off);
    cr_expect_eq(get_be32(f + 8), 2u, "features");
    cr_expect_eq(get_be32(f + 12), 0x00010000u, "version");
    cr_expect_eq(get_be64(f + 16), want->data_offset, "data offset %#llx",
                 (unsigned long long)get_be64(f + 16));
    cr_expect_eq(get_be32(f + 24), 1700000000u - VHD_EPOCH, "timestamp");
    cr_expect(!memcmp(f + 28, want->creator, 4), "creator %.4s, want %s",
              (const char *)f + 28, want->creator);
    cr_expect_eq(get_be32(f + 32), 0x00050003u, "creator version");
    cr_expect(!memcmp(f + 36, "Wi2k", 4), "creator OS");
    cr_expect_eq(get_be64(f + 40), want->size, "original size %llu",
                 (unsigned long long)get_be64(f + 40));
    cr_expect_eq(get_be64(f + 48), want->size, "current size");
    cr_expect_eq(get_be16(f + 56), want->c, "cylinders %u",
                 get_be16(f + 56));
    cr_expect_eq(f[58], want->h, "heads %u", f[58]);
    cr_expect_eq(f[59], want->s, "sectors per track %u", f[59]);
    cr_expect_eq(get_be32(f + 60), want->type, "disk type");
    cr_expect_eq(get_be32(f + 64), vpc_checksum(f, 512, 64), "checksum");
    cr_expect_eq(f[68 + 6] >> 4, 4u, "version 4 UUID");
    for (unsigned i = 84; i < 512; i++)
        cr_assert_eq(f[i], 0, "reserved byte %u", i);
}

/* The output read back with the project's reader: vsize bytes, the input
 * first and zeros after it. */
static void expect_read_back(const struct rig *r, const uint8_t *in,
                             size_t len, uint64_t vsize)
{
    struct g_error err;
    uint64_t got = 0;
    uint8_t *back = rig_read_back(r, CT_FMT_VPC, &got, &err);
    cr_assert(back, "%s", err.msg);
    cr_expect_eq(got, vsize, "read back: virtual size %llu",
                 (unsigned long long)got);
    cr_expect(!memcmp(back, in, len), "read back: other bytes");
    for (uint64_t i = len; i < got; i++)
        cr_assert_eq(back[i], 0, "padding byte %llu",
                     (unsigned long long)i);
    free(back);
}

/* ---- subformat=fixed ----------------------------------------------------- */

/* qemu-img convert -O vpc -o subformat=fixed of 5 MiB + 1536 bytes with
 * data in three places: the CHS size 5257216, the footer right after it,
 * nothing at the front (the data is there). */
Test(vpc_convert, fixed_layout_is_qemus)
{
    static const uint64_t data[][2] = {
        {0, 4096}, {2 * MiB + 4096, 2 * MiB + 12288}, {5 * MiB + 1024,
                                                       5 * MiB + 1536}};
    size_t len = 5 * MiB + 1536;
    uint8_t *in = input(len, data, 3);
    struct rig r;
    rig_convert(&r, in, len, CT_FMT_VPC, 4 * KiB, &fixed);
    cr_assert_eq(r.ret, G_OK, "%s", r.err.msg);
    cr_expect_eq(r.m.out_len, 5257728u, "file size %zu", r.m.out_len);
    expect_footer(&r, 5257216,
                  &(struct footer){UINT64_MAX, 5257216, "qemu", 151, 4, 17,
                                   VPC_TYPE_FIXED});
    cr_expect(!memcmp(r.m.out, in, len), "the disk is the file's start");
    expect_read_back(&r, in, len, 5257216);
    rig_free(&r);
    free(in);
}

/* Zeros stay holes, as qemu leaves them (measured: only the data and the
 * footer are allocated); -S 0 writes the window's zeros, never the CHS
 * padding past it. */
Test(vpc_convert, fixed_writes_only_data_and_the_footer)
{
    static const uint64_t data[][2] = {{0, 4096},
                                       {2 * MiB + 4096, 2 * MiB + 12288}};
    size_t len = 5 * MiB + 1536;
    uint8_t *in = input(len, data, 2);
    struct rig r;
    rig_convert(&r, in, len, CT_FMT_VPC, 4 * KiB, &fixed);
    cr_assert_eq(r.ret, G_OK, "%s", r.err.msg);
    cr_expect_eq(r.m.bytes_written, 4096u + 8192 + 512, "%llu",
                 (unsigned long long)r.m.bytes_written);
    rig_free(&r);
    rig_convert(&r, in, len, CT_FMT_VPC, 0, &fixed);
    cr_assert_eq(r.ret, G_OK, "%s", r.err.msg);
    cr_expect_eq(r.m.bytes_written, len + 512, "%llu",
                 (unsigned long long)r.m.bytes_written);
    cr_expect_eq(r.m.out_len, 5257728u);
    expect_read_back(&r, in, len, 5257216);
    rig_free(&r);
    free(in);
}

/* qemu-img 7.2 writes the lone footer of an empty fixed disk and fails to
 * open it; instar refuses before writing anything. */
Test(vpc_convert, empty_fixed_disk_is_refused)
{
    const struct ct_output_params *ps[] = {&fixed, &fixed_forced};
    for (size_t i = 0; i < 2; i++) {
        struct rig r;
        uint8_t none = 0;
        rig_convert(&r, &none, 0, CT_FMT_VPC, 4 * KiB, ps[i]);
        cr_expect_eq(r.ret, G_ENOTSUP, "%s", r.err.msg);
        cr_expect(strstr(r.err.msg, "vpc") && strstr(r.err.msg, "fixed"),
                  "%s", r.err.msg);
        cr_expect_not(r.m.begun);
        rig_free(&r);
    }
}

/* ---- force_size=on ------------------------------------------------------- */

/*
 * The case: the exact size (the window rounded up to 512, no CHS
 * rounding), creator "qem2", geometry 65535/16/255 whatever the size, and
 * qemu's file sizes, dynamic and fixed (measured with qemu-img convert
 * -o [subformat=fixed,]force_size=on; the input's first sector is data,
 * except the last row whose every byte is).
 */
Test(vpc_convert, force_size_keeps_the_exact_size_as_qemu)
{
    static const struct {
        size_t len;
        uint64_t vsize, dynamic_file, fixed_file;
        bool all_data;
    } rows[] = {
        {3000, 3072, 2100224, 3584, false},
        {MiB + 1536, MiB + 1536, 2100224, 1050624, false},
        {34816, 34816, 2100224, 35328, false},     /* CHS-exact: 1/4/17 */
        {1079296, 1079296, 2100224, 1079808, false}, /* CHS-exact */
        {2 * MiB, 2 * MiB, 2100224, 2097664, false},
        {5 * MiB + 1536, 5 * MiB + 1536, 6295552, 5244928, true},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const uint64_t d[1][2] = {{0, rows[i].all_data ? rows[i].len : 512}};
        uint8_t *in = input(rows[i].len, d, 1);
        for (int fx = 0; fx < 2; fx++) {
            struct rig r;
            uint64_t file = fx ? rows[i].fixed_file : rows[i].dynamic_file;
            rig_convert(&r, in, rows[i].len, CT_FMT_VPC, 4 * KiB,
                        fx ? &fixed_forced : &forced);
            cr_assert_eq(r.ret, G_OK, "%zu: %s", rows[i].len, r.err.msg);
            cr_expect_eq(r.m.out_len, file, "%zu %s: file %zu, want %llu",
                         rows[i].len, fx ? "fixed" : "dynamic", r.m.out_len,
                         (unsigned long long)file);
            struct footer f = {fx ? UINT64_MAX : 512, rows[i].vsize, "qem2",
                               65535, 16, 255,
                               fx ? VPC_TYPE_FIXED : VPC_TYPE_DYNAMIC};
            expect_footer(&r, r.m.out_len - 512, &f);
            if (!fx) {
                /* the copy at the front, and the header's BAT length */
                expect_footer(&r, 0, &f);
                cr_expect_eq(get_be32(r.m.out + 512 + 28),
                             (rows[i].vsize + 2 * MiB - 1) / (2 * MiB),
                             "max table entries");
            }
            expect_read_back(&r, in, rows[i].len, rows[i].vsize);
            rig_free(&r);
        }
        free(in);
    }
}

/* zero() in a dynamic disk keeps its blocks unallocated, force_size or
 * not: an all-zero 4 MiB disk is qemu's 2560-byte file, BAT all ones. */
Test(vpc_convert, force_size_dynamic_leaves_zero_blocks_unallocated)
{
    size_t len = 4 * MiB;
    uint8_t *in = calloc(len, 1);
    struct rig r;
    rig_convert(&r, in, len, CT_FMT_VPC, 4 * KiB, &forced);
    cr_assert_eq(r.ret, G_OK, "%s", r.err.msg);
    cr_expect_eq(r.m.out_len, 2560u);
    cr_expect_eq(get_be32(r.m.out + 1536), VPC_BAT_UNUSED);
    cr_expect_eq(get_be32(r.m.out + 1540), VPC_BAT_UNUSED);
    expect_read_back(&r, in, len, len);
    rig_free(&r);
    free(in);
}

/* ---- what the writer does not take --------------------------------------- */

Test(vpc_convert, other_shapes_are_refused_by_name)
{
    static const struct {
        struct ct_output_params p;
        const char *word;
    } rows[] = {
        {{.subformat = CT_SUB_STREAM_OPTIMIZED}, "subformat"},
        {{.flags = CT_OUT_COMPRESS}, "compression"},
        {{.flags = 4}, "flags"},
        {{.cluster_bits = 16}, "cluster_size"},
        {{.version = 2}, "compat"},
        {{.adapter = CT_VMDK_LSILOGIC}, "adapter_type"},
        {{.block_size = 1u << 20}, "block_size"},
    };
    uint8_t in[4096];
    memset(in, 7, sizeof in);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct rig r;
        rig_convert(&r, in, sizeof in, CT_FMT_VPC, 4 * KiB, &rows[i].p);
        cr_expect_eq(r.ret, G_ENOTSUP, "row %zu: %d", i, r.ret);
        cr_expect(strstr(r.err.msg, "vpc:") &&
                      strstr(r.err.msg, rows[i].word),
                  "row %zu: %s", i, r.err.msg);
        cr_expect_not(r.m.begun);
        rig_free(&r);
    }
}

/* The host bounds a fixed disk by its size and footer: exactly the file
 * qemu writes, whatever the shape's size. */
Test(vpc_convert, bound_of_a_fixed_disk_is_its_file)
{
    uint64_t v = 0;
    cr_assert(output_vsize_p(CT_FMT_VPC, &fixed, 5 * MiB + 1536, &v));
    cr_expect_eq(v, 5257216u);
    cr_expect_eq(output_bound_p(CT_FMT_VPC, &fixed, v), 5257728u);
    cr_assert(output_vsize_p(CT_FMT_VPC, &fixed_forced, 3072, &v));
    cr_expect_eq(v, 3072u);
    cr_expect_eq(output_bound_p(CT_FMT_VPC, &fixed_forced, v), 3584u);
}
