/*
 * shared/vhd_chs.h and shared/output_bound.h against what qemu-img 7.2
 * produced (../shared/design/writers.md sections 1, 4.3 and 5.5).
 */
#include <criterion/criterion.h>

#include "output_bound.h"
#include "vhd_chs.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define TiB (1ull << 40)

struct chs_row {
    uint64_t bytes, vsize;
    uint32_t c, h, s;
};

/* Every row of writers.md 4.3 and parity.md's VHD table. */
static const struct chs_row chs_rows[] = {
    {0, 0, 0, 0, 0},
    {1, 34816, 1, 4, 17},
    {512, 34816, 1, 4, 17},
    {3000, 34816, 1, 4, 17},
    {34816, 34816, 1, 4, 17},
    {34817, 69632, 2, 4, 17},
    {65536, 69632, 2, 4, 17},
    {70144, 104448, 3, 4, 17},
    {1048576, 1079296, 31, 4, 17},
    {1050112, 1079296, 31, 4, 17},
    {2097152, 2123776, 61, 4, 17},
    {4194816, 4212736, 121, 4, 17},
    {5244416, 5257216, 151, 4, 17},
    {35651584, 35686400, 820, 5, 17},
    {41944576, 41953280, 964, 5, 17},
    {142467072, 142467072, 1023, 16, 17},
    {142467584, 142721024, 562, 16, 31},
    {142721024, 142721024, 562, 16, 31},
    {259792896, 259792896, 1023, 16, 31},
    {259793408, 260112384, 504, 16, 63},
    {260112384, 260112384, 504, 16, 63},
    {268435456, 268886016, 521, 16, 63},
    {GiB, 1073995776, 2081, 16, 63},
    {4 * GiB, 4295467008ull, 8323, 16, 63},
    {5 * GiB, 5368946688ull, 10403, 16, 63},
    {33821835264ull, 33821835264ull, 65534, 16, 63},
    {33821835776ull, 33822351360ull, 16191, 16, 255},
    {33822351360ull, 33822351360ull, 16191, 16, 255},
    {136899993088ull, 136899993088ull, 65535, 16, 255},
    {137438953472ull, 137438953472ull, 65535, 16, 255},
    {TiB, TiB, 65535, 16, 255},
    {2040 * GiB, 2040 * GiB, 65535, 16, 255},
};

Test(vhd_chs, qemu_geometry_for_every_measured_size)
{
    for (size_t i = 0; i < sizeof chs_rows / sizeof chs_rows[0]; i++) {
        const struct chs_row *r = &chs_rows[i];
        uint64_t v;
        struct vhd_chs g;
        cr_assert(vhd_chs_size(r->bytes, &v, &g), "%llu",
                  (unsigned long long)r->bytes);
        cr_expect_eq(v, r->vsize, "%llu bytes: vsize %llu, want %llu",
                     (unsigned long long)r->bytes, (unsigned long long)v,
                     (unsigned long long)r->vsize);
        cr_expect(g.cylinders == r->c && g.heads == r->h &&
                      g.sectors == r->s,
                  "%llu bytes: %u/%u/%u, want %u/%u/%u",
                  (unsigned long long)r->bytes, g.cylinders, g.heads,
                  g.sectors, r->c, r->h, r->s);
    }
}

Test(vhd_chs, past_2040_gib_is_refused)
{
    uint64_t v;
    struct vhd_chs g;
    cr_expect_not(vhd_chs_size(2040 * GiB + 1, &v, &g));
    cr_expect_not(output_vsize(CT_FMT_VPC, 2041 * GiB, &v));
}

/* The CHS geometry of a size rounds it up, never down, and a second round
 * trip keeps it (qemu reads a "qemu" VHD's size back from its CHS). */
Test(vhd_chs, rounds_up_and_is_stable)
{
    for (uint64_t b = 0; b < 300 * MiB; b = b * 3 / 2 + 4097) {
        uint64_t v, v2;
        struct vhd_chs g, g2;
        cr_assert(vhd_chs_size(b, &v, &g));
        cr_expect_geq(v, b);
        cr_assert(vhd_chs_size(v, &v2, &g2));
        cr_expect_eq(v2, v, "%llu", (unsigned long long)b);
    }
}

/* writers.md section 1: qemu-img dd -O FMT file sizes for a window of W
 * bytes (qcow2, vmdk, vpc, vhdx). vmdk 0 is qemu's unreadable file. */
static const struct {
    uint64_t w, qcow2, vmdk, vpc, vhdx;
} sizes[] = {
    {0, 196608, 65536, 2048, 74448896},
    {1, 393216, 131072, 2100224, 16777216},
    {512, 393216, 131072, 2100224, 16777216},
    {3000, 393216, 131072, 2100224, 16777216},
    {65536, 393216, 131072, 2100224, 16777216},
    {65537, 458752, 196608, 2100224, 16777216},
    {MiB, 1376256, 1114112, 2100224, 16777216},
    {MiB + 1536, 1441792, 1179648, 2100224, 16777216},
    {2 * MiB, 2424832, 2162688, 2100224, 16777216},
    {2 * MiB + 1, 2490368, 2228224, 4197888, 16777216},
    {5 * MiB + 1536, 5636096, 5373952, 6295552, 16777216},
    {8 * MiB, 8716288, 8454144, 8393216, 16777216},
    {8 * MiB + 1, 8781824, 8519680, 10490880, 25165824},
    {33 * MiB, 34930688, 34668544, 35662848, 50331648},
    {40 * MiB + 1536, 42336256, 42074112, 44053504, 58720256},
    {100 * MiB + 1536, 105250816, 104988672, 106983424, 117440512},
    {600 * MiB, 629538816, 629276672, 629302784, 637534208},
};

static uint64_t vsize_of(uint32_t fmt, uint64_t w)
{
    uint64_t v;
    cr_assert(output_vsize(fmt, (w + 511) / 512 * 512, &v));
    return v;
}

Test(output_bound, covers_qemu_dd_sizes)
{
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t w = sizes[i].w;
        uint64_t q = output_bound(CT_FMT_QCOW2, vsize_of(CT_FMT_QCOW2, w));
        uint64_t k = output_bound(CT_FMT_VMDK, vsize_of(CT_FMT_VMDK, w));
        uint64_t p = output_bound(CT_FMT_VPC, vsize_of(CT_FMT_VPC, w));
        uint64_t x = output_bound(CT_FMT_VHDX, vsize_of(CT_FMT_VHDX, w));
        /* qcow2: room for the refcount blocks a larger file would need
         * (two clusters here). */
        cr_expect(q >= sizes[i].qcow2 && q - sizes[i].qcow2 <= 2 * 65536,
                  "qcow2 W=%llu: %llu vs %llu", (unsigned long long)w,
                  (unsigned long long)q, (unsigned long long)sizes[i].qcow2);
        cr_expect_eq(k, sizes[i].vmdk, "vmdk W=%llu: %llu",
                     (unsigned long long)w, (unsigned long long)k);
        /* vpc: dd leaves blocks of CHS padding unallocated; the bound
         * counts every block. */
        cr_expect(p >= sizes[i].vpc &&
                      p - sizes[i].vpc <= 512 + OUTPUT_VPC_BLOCK,
                  "vpc W=%llu: %llu vs %llu", (unsigned long long)w,
                  (unsigned long long)p, (unsigned long long)sizes[i].vpc);
        cr_expect_eq(x, sizes[i].vhdx, "vhdx W=%llu: %llu",
                     (unsigned long long)w, (unsigned long long)x);
    }
}

Test(output_bound, raw_is_exact_and_unknown_is_zero)
{
    cr_expect_eq(output_bound(CT_FMT_RAW, 3072), 3072u);
    cr_expect_eq(output_bound(CT_FMT_PROBE, 3072), 0u);
    cr_expect_eq(output_bound(99, 3072), 0u);
}

/* writers.md 5.5 and 5.6. */
Test(output_bound, vhdx_block_size_and_bat)
{
    static const struct {
        uint64_t v, bs, entries, bat;
    } rows[] = {
        {0, 8 * MiB, 8388607, 64 * MiB},
        {512, 8 * MiB, 1, MiB},
        {GiB, 8 * MiB, 128, MiB},
        {GiB + 512, 16 * MiB, 0, MiB},
        {5 * GiB, 16 * MiB, 321, MiB},
        {64 * GiB, 16 * MiB, 4111, MiB},
        {100 * GiB, 16 * MiB, 0, MiB},
        {100 * GiB + 512, 32 * MiB, 0, MiB},
        {TiB, 32 * MiB, 33023, MiB},
        {4 * TiB, 32 * MiB, 132095, 2 * MiB},
        {32 * TiB, 32 * MiB, 0, 9 * MiB},
        {32 * TiB + 512, 64 * MiB, 0, 5 * MiB},
        {64 * TiB, 64 * MiB, 0, 9 * MiB},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct output_vhdx_layout l = output_vhdx_layout(rows[i].v);
        cr_expect_eq(l.block_size, rows[i].bs, "V=%llu",
                     (unsigned long long)rows[i].v);
        if (rows[i].entries)
            cr_expect_eq(l.bat_entries, rows[i].entries, "V=%llu: %llu",
                         (unsigned long long)rows[i].v,
                         (unsigned long long)l.bat_entries);
        cr_expect_eq(l.bat_len, rows[i].bat, "V=%llu: BAT %llu",
                     (unsigned long long)rows[i].v,
                     (unsigned long long)l.bat_len);
    }
    uint64_t v;
    cr_expect_not(output_vsize(CT_FMT_VHDX, 64 * TiB + 512, &v));
}

/* convert -o block_size: the BAT qemu-img 7.2 writes (measured with
 * qemu-img create and convert, read from the region table): entries for
 * a 5 GiB disk, and for an empty one the (2^32 - 1) / ratio entries its
 * 32-bit arithmetic asks for. */
Test(output_bound, vhdx_layout_with_a_block_size)
{
    static const struct {
        uint64_t v, bs, entries, bat;
    } rows[] = {
        {0, MiB, 1048575, 8 * MiB},
        {0, 2 * MiB, 2097151, 16 * MiB},
        {0, 8 * MiB, 8388607, 64 * MiB},
        {0, 32 * MiB, 33554431, 256 * MiB},
        {0, 64 * MiB, 67108863, 512 * MiB},
        {0, 128 * MiB, 134217727, GiB},
        {0, 256 * MiB, 268435455, 2 * GiB},
        {5 * GiB, MiB, 5121, MiB},
        {5 * GiB, 2 * MiB, 2561, MiB},
        {5 * GiB, 32 * MiB, 161, MiB},
        {5 * GiB, 256 * MiB, 21, MiB},
        {100 * MiB, MiB, 100, MiB},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct output_vhdx_layout l =
            output_vhdx_layout_bs(rows[i].v, rows[i].bs);
        cr_expect_eq(l.block_size, rows[i].bs);
        cr_expect_eq(l.bat_entries, rows[i].entries, "V=%llu bs=%llu: %llu",
                     (unsigned long long)rows[i].v,
                     (unsigned long long)rows[i].bs,
                     (unsigned long long)l.bat_entries);
        cr_expect_eq(l.bat_len, rows[i].bat);
        cr_expect_eq(l.first_block, 2 * MiB + rows[i].bat + 5 * MiB);
        cr_expect_eq(l.empty_size, l.first_block);
    }
}

/* A fixed vhdx as qemu-img 7.2 converts to it: blocks appended after the
 * disk's size, rounded up to a MiB; the bound covers every block there,
 * and the files qemu wrote for 20 MiB + 1536 (sparse: 47185920, -S 0:
 * 55574528, 1 MiB blocks: 33554432). */
Test(output_bound, vhdx_fixed_layout_and_bound)
{
    const uint64_t v = 20 * MiB + 1536;
    struct ct_output_params fixed = {.subformat = CT_SUB_FIXED};
    struct output_vhdx_layout l = output_vhdx_layout_p(v, &fixed);
    cr_expect_eq(l.first_block, 29 * MiB);
    cr_expect_eq(l.empty_size, 8 * MiB + v);
    cr_expect_eq(output_bound_p(CT_FMT_VHDX, &fixed, v), 29 * MiB + 24 * MiB);
    cr_expect_geq(output_bound_p(CT_FMT_VHDX, &fixed, v), 55574528u);
    fixed.block_size = MiB;
    cr_expect_eq(output_bound_p(CT_FMT_VHDX, &fixed, v), 29 * MiB + 21 * MiB);
    cr_expect_geq(output_bound_p(CT_FMT_VHDX, &fixed, v), 33554432u);
    /* dynamic: the defaults' layout with the block size asked for */
    struct ct_output_params dyn = {.block_size = 2 * MiB};
    cr_expect_eq(output_bound_p(CT_FMT_VHDX, &dyn, v), 8 * MiB + 22 * MiB);
    cr_expect_eq(output_vhdx_layout_p(v, NULL).first_block, 8 * MiB);
    /* the largest fixed disk's bound does not overflow */
    fixed.block_size = 0;
    cr_expect_gt(output_bound_p(CT_FMT_VHDX, &fixed, 64 * TiB), 128 * TiB);
}

/* writers.md 3.1. */
Test(output_bound, vmdk_layout)
{
    static const struct {
        uint64_t v, gts, gd, overhead;
    } rows[] = {
        {0, 0, 21, 128},
        {512, 1, 26, 128},
        {32 * MiB, 1, 26, 128},
        {32 * MiB + 512, 2, 30, 128},
        {GiB, 32, 150, 384},
        {1600 * MiB, 50, 222, 512},
        {64 * GiB, 2048, 8229, 16512},
        {TiB, 32768, 131349, 262784},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct output_vmdk_layout l = output_vmdk_layout(rows[i].v);
        cr_expect_eq(l.gts, rows[i].gts);
        cr_expect_eq(l.rgd_offset, 21u);
        cr_expect_eq(l.gd_offset, rows[i].gd, "V=%llu: gd %llu",
                     (unsigned long long)rows[i].v,
                     (unsigned long long)l.gd_offset);
        cr_expect_eq(l.overhead, rows[i].overhead, "V=%llu: overhead %llu",
                     (unsigned long long)rows[i].v,
                     (unsigned long long)l.overhead);
    }
}

Test(output_bound, format_size_limits)
{
    uint64_t v;
    cr_expect(output_vsize(CT_FMT_QCOW2, 2048 * TiB, &v));
    cr_expect_not(output_vsize(CT_FMT_QCOW2, 2048 * TiB + 512, &v));
    cr_expect(output_vsize(CT_FMT_VMDK, OUTPUT_VMDK_MAX_VSIZE, &v));
    cr_expect_not(output_vsize(CT_FMT_VMDK, OUTPUT_VMDK_MAX_VSIZE + 512, &v));
    /* The largest outputs' bounds do not overflow. */
    cr_expect_gt(output_bound(CT_FMT_QCOW2, 2048 * TiB), 2048 * TiB);
    cr_expect_gt(output_bound(CT_FMT_VHDX, 64 * TiB), 64 * TiB);
    cr_expect_gt(output_bound(CT_FMT_VPC, 2040 * GiB), 2040 * GiB);
}

/*
 * Grain table entries are 32-bit sector numbers, and qemu-img 7.2 fails a
 * write whose grain would end past sector 2^32 (measured: a grain at
 * sector 2^32 - 128 is written, one at 2^32 - 64 gets "Invalid
 * argument"). The cap is the largest size whose last grain still fits in
 * a dense output; one sector more does not.
 */
Test(output_bound, vmdk_cap_is_the_last_addressable_grain)
{
    const uint64_t limit = 1ull << 32;
    struct output_vmdk_layout at = output_vmdk_layout(OUTPUT_VMDK_MAX_VSIZE);
    struct output_vmdk_layout past =
        output_vmdk_layout(OUTPUT_VMDK_MAX_VSIZE + 512);
    uint64_t end_at = at.overhead + OUTPUT_VMDK_GRAIN_SECTORS * at.grains;
    uint64_t end_past =
        past.overhead + OUTPUT_VMDK_GRAIN_SECTORS * past.grains;

    cr_expect_eq(OUTPUT_VMDK_MAX_VSIZE, 2198754295808ull);
    cr_expect_leq(end_at, limit, "last grain ends at sector %llu",
                  (unsigned long long)end_at);
    cr_expect_gt(end_past, limit, "cap too low: %llu fits",
                 (unsigned long long)end_past);
    /* writers.md 3.1's formulas, worked out by hand for the cap. */
    cr_expect_eq(at.grains, 33550328u);
    cr_expect_eq(at.gts, 65528u);
    cr_expect_eq(at.gd_sectors, 512u);
    cr_expect_eq(at.gd_offset, 262645u);
    cr_expect_eq(at.overhead, 525312u);
    /* The host's bound for the cap is exactly that dense file. */
    cr_expect_eq(output_bound(CT_FMT_VMDK, OUTPUT_VMDK_MAX_VSIZE),
                 end_at * 512);
}

/* streamOptimized (convert -o subformat=streamOptimized): monolithicSparse's
 * metadata, then grains of at most 129 sectors (a 12-byte marker and
 * zlib's bound for 64 KiB). Measured: qemu-img's file for three random
 * grains is 515 sectors, exactly the bound. */
Test(output_bound, vmdk_stream_optimized)
{
    static const struct ct_output_params so = {
        .subformat = CT_SUB_STREAM_OPTIMIZED};
    static const struct {
        uint64_t v, bound;
    } rows[] = {
        {512, 512ull * (128 + 129)},
        {3 * 65536, 263680},
        {MiB + 1536, 512ull * (128 + 17 * 129)},
        {1ull << 30, 512ull * (384 + 16384 * 129)},
        {OUTPUT_VMDK_MAX_VSIZE, 512ull * (525312 + 33550328ull * 129)},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint64_t v;
        cr_assert(output_vsize_p(CT_FMT_VMDK, &so, rows[i].v, &v));
        cr_expect_eq(v, rows[i].v);
        cr_expect_eq(output_bound_p(CT_FMT_VMDK, &so, v), rows[i].bound,
                     "V=%llu: %llu", (unsigned long long)v,
                     (unsigned long long)output_bound_p(CT_FMT_VMDK, &so, v));
    }
    /* The size cap is the same as monolithicSparse's. */
    uint64_t v;
    cr_expect_not(
        output_vsize_p(CT_FMT_VMDK, &so, OUTPUT_VMDK_MAX_VSIZE + 512, &v));
}
