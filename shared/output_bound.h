/*
 * What an output of each format looks like from outside: its virtual size
 * for a window, and the largest file its writer may produce. Header-only
 * and pure, compiled into the guest (whose writers must stay inside) and
 * the host (which refuses any write past the bound): the guest cannot
 * widen what it may write by declaring a larger size.
 *
 * Layouts are qemu-img 7.2's defaults (../shared/design/writers.md): qcow2
 * v3 with 64 KiB clusters and 16-bit refcounts, monolithicSparse vmdk with
 * 64 KiB grains, dynamic VHD with 2 MiB blocks, dynamic VHDX with the
 * block size qemu picks from the size. The bounds hold for a writer that
 * allocates every allocation unit (dd is dense); a sparse writer writes
 * less.
 */
#ifndef INSTAR_OUTPUT_BOUND_H
#define INSTAR_OUTPUT_BOUND_H

#include <stdbool.h>
#include <stdint.h>

#include "instar_ct.h"
#include "vhd_chs.h"

#define OUTPUT_MiB (1ull << 20)

static inline uint64_t output_div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* ---- qcow2 (64 KiB clusters by default, 16-bit refcounts) ----------------- */
#define OUTPUT_QCOW2_CLUSTER_BITS 16u
#define OUTPUT_QCOW2_CLUSTER (1ull << OUTPUT_QCOW2_CLUSTER_BITS)

/* ---- vmdk (monolithicSparse, 64 KiB grains, 512-entry grain tables) ------- */
#define OUTPUT_VMDK_GRAIN_SECTORS 128u
#define OUTPUT_VMDK_GTES 512u
#define OUTPUT_VMDK_DESC_SECTOR 1u
#define OUTPUT_VMDK_DESC_SECTORS 20u
#define OUTPUT_VMDK_RGD_SECTOR 21u
/* Grain table entries are 32-bit sector numbers, and qemu-img 7.2 fails a
 * write whose grain would end past sector 2^32 (2 TiB of file). It creates
 * larger monolithicSparse files but cannot fill them; instar refuses them
 * up front. The cap is the largest size whose last grain still fits in a
 * dense output: 2 TiB less the metadata (overHead 525312 sectors there,
 * 256.5 MiB). */
#define OUTPUT_VMDK_MAX_VSIZE ((2ull << 40) - (513ull << 19))

/* ---- vpc (dynamic VHD, 2 MiB blocks) --------------------------------------- */
#define OUTPUT_VPC_BLOCK (2ull << 20)
#define OUTPUT_VPC_BAT_OFFSET 1536u

/* ---- vhdx (dynamic) -------------------------------------------------------- */
#define OUTPUT_VHDX_MAX_VSIZE (64ull << 40)
/* Where the BAT starts; metadata (1 MiB) follows it, then a 4 MiB gap. */
#define OUTPUT_VHDX_BAT_OFFSET (2 * OUTPUT_MiB)

struct output_vmdk_layout {
    uint64_t grains;    /* grains of the virtual disk */
    uint64_t gts;       /* grain tables (one per 32 MiB) */
    uint64_t gd_sectors; /* sectors of one grain directory */
    uint64_t rgd_offset; /* sector of the redundant directory */
    uint64_t gd_offset;  /* sector of the primary directory */
    uint64_t overhead;   /* sectors before the first grain */
};

/* The metadata layout of a monolithicSparse vmdk of vsize bytes. */
static inline struct output_vmdk_layout output_vmdk_layout(uint64_t vsize)
{
    struct output_vmdk_layout l;
    l.grains = output_div_up(vsize / 512, OUTPUT_VMDK_GRAIN_SECTORS);
    l.gts = output_div_up(l.grains, OUTPUT_VMDK_GTES);
    l.gd_sectors = output_div_up(4 * l.gts, 512);
    l.rgd_offset = OUTPUT_VMDK_RGD_SECTOR;
    l.gd_offset = l.rgd_offset + l.gd_sectors + 4 * l.gts;
    l.overhead = output_div_up(l.gd_offset + l.gd_sectors + 4 * l.gts,
                               OUTPUT_VMDK_GRAIN_SECTORS) *
                 OUTPUT_VMDK_GRAIN_SECTORS;
    return l;
}

struct output_vhdx_layout {
    uint64_t block_size;  /* 8, 16, 32 or 64 MiB, from the virtual size */
    uint64_t chunk_ratio; /* payload blocks per sector-bitmap block */
    uint64_t blocks;      /* payload blocks */
    uint64_t bat_entries; /* payload and sector-bitmap entries */
    uint64_t bat_len;     /* BAT region length (a multiple of 1 MiB) */
    uint64_t metadata_offset;
    uint64_t first_block; /* file offset of the first payload block */
    uint64_t empty_size;  /* the file's size while no block is placed */
};

/* The layout of a dynamic vhdx of vsize bytes, as qemu-img 7.2 makes it,
 * with blocks of block_size bytes (0: the size qemu picks for vsize; else
 * a power of two, 1 .. 256 MiB). */
static inline struct output_vhdx_layout
output_vhdx_layout_bs(uint64_t vsize, uint64_t block_size)
{
    struct output_vhdx_layout l;
    l.block_size = block_size                ? block_size
                   : vsize <= (1ull << 30)   ? 8 * OUTPUT_MiB
                   : vsize <= (100ull << 30) ? 16 * OUTPUT_MiB
                   : vsize <= (32ull << 40)  ? 32 * OUTPUT_MiB
                                             : 64 * OUTPUT_MiB;
    l.chunk_ratio = ((1ull << 23) * 512) / l.block_size;
    l.blocks = output_div_up(vsize, l.block_size);
    /* qemu computes blocks + (blocks - 1) / ratio in unsigned 32-bit
     * arithmetic: for an empty disk that is (2^32 - 1) / ratio entries,
     * which qemu then requires (measured: 8388607, a 64 MiB BAT, with
     * 8 MiB blocks; 1 GiB of BAT with 128 MiB blocks). */
    l.bat_entries = l.blocks ? l.blocks + (l.blocks - 1) / l.chunk_ratio
                             : 0xffffffffull / l.chunk_ratio;
    l.bat_len = output_div_up(l.bat_entries * 8, OUTPUT_MiB) * OUTPUT_MiB;
    l.metadata_offset = OUTPUT_VHDX_BAT_OFFSET + l.bat_len;
    l.first_block = l.metadata_offset + OUTPUT_MiB + 4 * OUTPUT_MiB;
    l.empty_size = l.first_block;
    return l;
}

/* The layout for the output parameters p (NULL: the defaults). A fixed
 * vhdx as qemu-img 7.2 converts to it (measured): create makes the file
 * large enough for every block after the gap but leaves each in state
 * ZERO with no offset, so convert appends every block it writes after
 * that space, from the next MiB; the space stays a hole. */
static inline struct output_vhdx_layout
output_vhdx_layout_p(uint64_t vsize, const struct ct_output_params *p)
{
    struct output_vhdx_layout l =
        output_vhdx_layout_bs(vsize, p ? p->block_size : 0);
    if (p && p->subformat == CT_SUB_FIXED) {
        l.empty_size = l.first_block + vsize;
        l.first_block =
            output_div_up(l.empty_size, OUTPUT_MiB) * OUTPUT_MiB;
    }
    return l;
}

static inline struct output_vhdx_layout output_vhdx_layout(uint64_t vsize)
{
    return output_vhdx_layout_bs(vsize, 0);
}

/* qcow2's cluster size for the output parameters (p may be NULL). */
static inline uint64_t output_qcow2_cluster(const struct ct_output_params *p)
{
    return p && p->cluster_bits ? 1ull << p->cluster_bits
                                : OUTPUT_QCOW2_CLUSTER;
}

/*
 * qemu's refcount blocks for a file of `used` clusters of `cluster` bytes
 * with 16-bit refcounts, counting the blocks and the table themselves:
 * the fixed point where no more of either is needed. With `generous`
 * (a growing table) room for half the table again is added first.
 */
static inline uint64_t output_qcow2_meta_blocks(uint64_t used,
                                                uint64_t cluster,
                                                bool generous)
{
    const uint64_t per_table = cluster / 8, per_block = cluster / 2;
    uint64_t blocks = 0, table = 0, n = 0, last;
    do {
        last = n;
        blocks = output_div_up(used + table + blocks, per_block);
        table = output_div_up(blocks, per_table);
        n = used + blocks + table;
        if (n == last && generous) {
            used += output_div_up(table, 2);
            generous = false;
            n = 0;
        }
    } while (n != last);
    return blocks;
}

/*
 * The largest qcow2 file for vsize bytes with parameters p, every cluster
 * allocated: header, refcount table and block 0, L1, L2s and data; one
 * refcount block per cluster/2 clusters of file (each counting itself),
 * with one to spare; and for each time the refcount table fills (as qemu
 * grows it: small clusters), a skipped range, the new table and the
 * blocks placed with it. Compressed clusters are never larger than plain
 * ones (one that does not shrink is stored plain, and packing takes at
 * most one new cluster per compressed cluster), so one bound serves.
 */
static inline uint64_t output_qcow2_bound(const struct ct_output_params *p,
                                          uint64_t vsize)
{
    const uint64_t c = output_qcow2_cluster(p), rb = c / 2, per = c / 8;
    uint64_t data = output_div_up(vsize, c);
    uint64_t l2 = output_div_up(data, per);
    uint64_t l1 = output_div_up(8 * l2, c);
    uint64_t base = 3 + l1 + l2 + data, grown = 0, f = 0, prev;

    do {
        prev = f;
        f = base + grown + output_div_up(base + grown, rb - 1) + 1;
        grown = 0;
        /* Table s entries long: full once the file passes s ranges. The
         * new one is sized from where its area starts (at most two
         * ranges on). */
        for (uint64_t s = per; s * rb < f;) {
            uint64_t start = (s + 2) * rb;
            uint64_t total = output_qcow2_meta_blocks(start, c, true);
            uint64_t ns = output_div_up(total + output_div_up(total, 2),
                                        per) * per;
            grown += rb + ns / per + (total - s);
            s = ns;
        }
    } while (f != prev);
    return c * f;
}

/* zlib's compressBound(): the most deflate may produce for n bytes. */
static inline uint64_t output_deflate_bound(uint64_t n)
{
    return n + (n >> 12) + (n >> 14) + (n >> 25) + 13;
}

/*
 * The output's virtual size for a window of `window_out` bytes (the window
 * rounded up to 512) with output parameters p (NULL: qemu-img create's
 * defaults, as dd writes): the same, except for vpc, which qemu rounds up
 * to a CHS geometry unless force_size is on. False when qemu-img refuses
 * that size for the format.
 */
static inline bool output_vsize_p(uint32_t format,
                                  const struct ct_output_params *p,
                                  uint64_t window_out, uint64_t *vsize)
{
    struct vhd_chs g;
    uint64_t c;
    *vsize = 0;
    switch (format) {
    case CT_FMT_RAW:
        *vsize = window_out;
        return true;
    case CT_FMT_QCOW2:
        /* qemu's largest L1 table is 32 MiB of 8-byte entries. */
        c = output_qcow2_cluster(p);
        *vsize = window_out;
        return window_out / (c * (c / 8)) < (32ull << 20) / 8 ||
               (window_out / (c * (c / 8)) == (32ull << 20) / 8 &&
                window_out % (c * (c / 8)) == 0);
    case CT_FMT_VMDK:
        *vsize = window_out;
        return window_out <= OUTPUT_VMDK_MAX_VSIZE;
    case CT_FMT_VPC:
        if (p && (p->flags & CT_OUT_FORCE_SIZE)) {
            *vsize = window_out;
            return window_out <= VHD_CHS_MAX_BYTES;
        }
        return vhd_chs_size(window_out, vsize, &g);
    case CT_FMT_VHDX:
        *vsize = window_out;
        return window_out <= OUTPUT_VHDX_MAX_VSIZE;
    default:
        return false;
    }
}

static inline bool output_vsize(uint32_t format, uint64_t window_out,
                                uint64_t *vsize)
{
    return output_vsize_p(format, 0, window_out, vsize);
}

/*
 * The largest file a writer of `format` with parameters p (NULL: the
 * defaults) may produce for an output of `vsize` virtual bytes, every
 * allocation unit allocated; 0 for an unknown format. vsize must have
 * passed output_vsize_p (so nothing overflows).
 */
static inline uint64_t output_bound_p(uint32_t format,
                                      const struct ct_output_params *p,
                                      uint64_t vsize)
{
    switch (format) {
    case CT_FMT_RAW:
        return vsize;
    case CT_FMT_QCOW2:
        return output_qcow2_bound(p, vsize);
    case CT_FMT_VMDK: {
        struct output_vmdk_layout l = output_vmdk_layout(vsize);
        const uint64_t grain = 512ull * OUTPUT_VMDK_GRAIN_SECTORS;
        if (p && p->subformat == CT_SUB_STREAM_OPTIMIZED)
            /* qemu-img convert's streamOptimized keeps monolithicSparse's
             * layout (tables before the grains, no table markers, no
             * footer: measured) and stores each grain as a 12-byte marker
             * and its deflate stream in whole sectors (129 at most). The
             * file ends 128 sectors past the last grain's first at least,
             * which is still inside this. */
            return 512 * l.overhead +
                   l.grains * 512 *
                       output_div_up(12 + output_deflate_bound(grain), 512);
        return 512 * l.overhead + grain * l.grains;
    }
    case CT_FMT_VPC: {
        uint64_t n = output_div_up(vsize, OUTPUT_VPC_BLOCK);
        uint64_t bat = 512 * output_div_up(4 * n, 512);
        if (p && p->subformat == CT_SUB_FIXED)
            return vsize + 512; /* the data, then the footer */
        return OUTPUT_VPC_BAT_OFFSET + bat + n * (512 + OUTPUT_VPC_BLOCK) +
               512;
    }
    case CT_FMT_VHDX: {
        struct output_vhdx_layout l = output_vhdx_layout_p(vsize, p);
        return l.first_block + l.blocks * l.block_size;
    }
    default:
        return 0;
    }
}

static inline uint64_t output_bound(uint32_t format, uint64_t vsize)
{
    return output_bound_p(format, 0, vsize);
}

#endif /* INSTAR_OUTPUT_BOUND_H */
