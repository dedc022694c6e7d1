/*
 * qcow2 output with convert's options (-o cluster_size, compat, -c), run
 * through the engine (rig_convert) and checked against what qemu-img 7.2
 * convert wrote for the same input: whole files by size and CRC-32, and
 * the fields each option sets one by one. Every output also reads back
 * through the project's qcow2 reader.
 *
 * The measured input ("A") is rig_pattern(20 MiB + 1536, 4): every 4th
 * 64 KiB region from the second on is zeros. The same bytes were written
 * to a raw file and converted with `qemu-img convert -O qcow2 -o
 * cluster_size=N,compat=V -S S [-c]`.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fmt/fmt.h"
#include "fmt/qcow2.h"
#include "output_bound.h"
#include "writer_rig.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define A_LEN (20 * MiB + 1536)
#define COPIED (1ull << 63)
#define COMPRESSED (1ull << 62)

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* convert -O qcow2 of in with these options; asserts success. */
static void convert(struct rig *r, const uint8_t *in, size_t len,
                    unsigned bits, unsigned version, bool compress,
                    uint64_t sparse_min)
{
    struct ct_output_params p = {.cluster_bits = bits, .version = version,
                                 .flags = compress ? CT_OUT_COMPRESS : 0};
    rig_convert(r, in, len, CT_FMT_QCOW2, sparse_min, &p);
    cr_assert_eq(r->ret, G_OK, "cluster_bits %u: %s", bits, r->err.msg);
}

/* The output reads back as the input, zeros past its end. */
static void reads_back(const struct rig *r, const uint8_t *in, size_t len)
{
    struct g_error err;
    uint64_t vsize = 0;
    uint8_t *back = rig_read_back(r, CT_FMT_QCOW2, &vsize, &err);
    cr_assert(back, "%s", err.msg);
    cr_assert_eq(vsize, div_up(len, 512) * 512);
    cr_assert_eq(memcmp(back, in, len), 0, "data differs");
    free(back);
}

static uint64_t u64(const struct rig *r, uint64_t off)
{
    cr_assert_leq(off + 8, r->m.out_len, "offset %#llx past the file",
                  (unsigned long long)off);
    return get_be64(r->m.out + off);
}

static uint16_t u16(const struct rig *r, uint64_t off)
{
    return get_be16(r->m.out + off);
}

/* Refcount of host cluster c (through the file's own table). */
static uint16_t refcount(const struct rig *r, uint64_t c)
{
    unsigned bits = get_be32(r->m.out + 20);
    uint64_t cl = 1ull << bits, rb = cl / 2;
    uint64_t block = u64(r, u64(r, 48) + 8 * (c / rb));
    return block ? u16(r, block + 2 * (c % rb)) : 0;
}

/* --- whole files against qemu-img ---------------------------------------- */

static const struct {
    unsigned bits, version;
    bool compress;
    uint64_t sparse_min, size;
    uint32_t crc;
} qemu_files[] = {
    {9, 3, false, 4096, 16073216, 0x49b6c902},
    {10, 3, false, 4096, 15931392, 0x4007f1ed},
    {12, 3, false, 4096, 15798272, 0xf3e50922},
    {13, 3, false, 4096, 15794176, 0xc1dd834e},
    {16, 3, false, 4096, 16121856, 0x89cb66e9},
    {21, 3, false, 4096, 33554432, 0xd6eca75f},
    {9, 2, false, 4096, 16073216, 0x476132bc},
    {16, 2, false, 4096, 16121856, 0x8bb60dbb},
    {9, 3, false, 0, 21422592, 0x57a51d66},
    {16, 3, false, 0, 21364736, 0x0e43aec3},
    {9, 3, true, 4096, 8795648, 0xeb517379},
    {12, 3, true, 4096, 1249280, 0xec243634},
    {16, 3, true, 4096, 467456, 0x590732a9},
    {21, 3, true, 4096, 10584576, 0x450d4fb5},
    {16, 3, true, 0, 473600, 0x03e643d9},
    {12, 2, true, 4096, 1249280, 0x9c012427},
};

Test(qcow2_convert, files_are_qemus, .timeout = 120)
{
    uint8_t *in = rig_pattern(A_LEN, 4);
    for (size_t i = 0; i < sizeof qemu_files / sizeof qemu_files[0]; i++) {
        struct rig r;
        convert(&r, in, A_LEN, qemu_files[i].bits, qemu_files[i].version,
                qemu_files[i].compress, qemu_files[i].sparse_min);
        uint32_t crc = (uint32_t)crc32(0, r.m.out, (uInt)r.m.out_len);
        cr_expect(r.m.out_len == qemu_files[i].size &&
                      crc == qemu_files[i].crc,
                  "cluster_bits %u compat %u%s -S %llu: %llu bytes crc "
                  "%#x, qemu-img %llu bytes crc %#x",
                  qemu_files[i].bits, qemu_files[i].version,
                  qemu_files[i].compress ? " -c" : "",
                  (unsigned long long)qemu_files[i].sparse_min,
                  (unsigned long long)r.m.out_len, crc,
                  (unsigned long long)qemu_files[i].size,
                  qemu_files[i].crc);
        reads_back(&r, in, A_LEN);
        cr_expect_leq(r.m.out_len,
                      output_bound_p(CT_FMT_QCOW2,
                                     &(struct ct_output_params){
                                         .cluster_bits = qemu_files[i].bits},
                                     div_up(A_LEN, 512) * 512));
        rig_free(&r);
    }
    free(in);
}

/* --- the header ----------------------------------------------------------- */

/* v3: 112 bytes; the feature name table only from 8 KiB clusters on
 * (measured for 512 B .. 2 MiB); v2: 72 bytes, nothing after. */
Test(qcow2_convert, header_for_every_cluster_size_and_compat)
{
    size_t len = 3 * MiB + 512;
    uint8_t *in = rig_pattern(len, 0);
    for (unsigned bits = 9; bits <= 21; bits++) {
        for (unsigned version = 2; version <= 3; version++) {
            struct rig r;
            uint64_t cl = 1ull << bits;
            uint64_t l1 = div_up(div_up(len, cl), cl / 8);
            convert(&r, in, len, bits, version, false, 4096);
            const uint8_t *h = r.m.out;
            cr_expect_eq(get_be32(h), QCOW2_MAGIC);
            cr_expect_eq(get_be32(h + 4), version);
            cr_expect_eq(get_be32(h + 20), bits);
            cr_expect_eq(get_be64(h + 24), div_up(len, 512) * 512);
            cr_expect_eq(get_be32(h + 36), l1, "l1_size");
            cr_expect_eq(get_be64(h + 40), 3 * cl, "l1_table_offset");
            cr_expect_eq(get_be64(h + 48), cl, "refcount_table_offset");
            cr_expect_eq(get_be32(h + 56), 1u, "refcount_table_clusters");
            cr_expect_eq(get_be64(h + 64) | get_be32(h + 60), 0u);
            uint64_t end = 72;
            if (version == 3) {
                cr_expect_eq(get_be64(h + 72) | get_be64(h + 80) |
                                 get_be64(h + 88),
                             0u, "feature bits");
                cr_expect_eq(get_be32(h + 96), 4u, "refcount_order");
                cr_expect_eq(get_be32(h + 100), 112u, "header_length");
                end = 112;
                if (bits >= 13) {
                    cr_expect_eq(get_be32(h + 112), QCOW2_EXT_FEATURE_TABLE);
                    cr_expect_eq(get_be32(h + 116), 384u);
                    cr_expect_str_eq((const char *)h + 120 + 2, "dirty bit");
                    end = 120 + 384;
                }
            }
            for (uint64_t i = end; i < cl && i < r.m.out_len; i++)
                cr_assert_eq(h[i], 0, "cluster_bits %u v%u: header byte %llu",
                             bits, version, (unsigned long long)i);
            reads_back(&r, in, len);
            rig_free(&r);
        }
    }
    free(in);
}

/* --- the layout, field by field ------------------------------------------- */

/*
 * 512-byte clusters (A, qemu-img measured): L1 of 641 entries at cluster
 * 3 (11 clusters), L2 0 at 14 and its 64 data clusters, L2 1 at 79;
 * refcount block 1 after the run that reached cluster 256 (274). Block 64
 * no longer fits the one-cluster table: a two-cluster table and block 65
 * go at 16640, the next range boundary, the 51 clusters before it stay
 * free, and the old table at cluster 1 is freed but keeps its entries.
 */
Test(qcow2_convert, layout_512_byte_clusters_and_table_growth)
{
    uint8_t *in = rig_pattern(A_LEN, 4);
    struct rig r;
    convert(&r, in, A_LEN, 9, 3, false, 4096);
    const uint64_t cl = 512;

    cr_expect_eq(get_be32(r.m.out + 36), 641u);
    cr_expect_eq(u64(&r, 3 * cl), 14 * cl | COPIED, "L1[0]");
    cr_expect_eq(u64(&r, 3 * cl + 8), 79 * cl | COPIED, "L1[1]");
    cr_expect_eq(u64(&r, 14 * cl), 15 * cl | COPIED, "L2 0, entry 0");
    cr_expect_eq(u64(&r, 14 * cl + 8 * 63), 78 * cl | COPIED);
    cr_expect_eq(u64(&r, 48), 16641 * cl, "refcount_table_offset");
    cr_expect_eq(get_be32(r.m.out + 56), 2u, "refcount_table_clusters");
    const uint64_t rt = 16641 * cl;
    cr_expect_eq(u64(&r, rt), 2 * cl);
    cr_expect_eq(u64(&r, rt + 8), 274 * cl);
    cr_expect_eq(u64(&r, rt + 8 * 63), 16131 * cl);
    cr_expect_eq(u64(&r, rt + 8 * 64), 16392 * cl);
    cr_expect_eq(u64(&r, rt + 8 * 65), 16640 * cl);
    /* The old table: freed, its bytes left as they were. */
    cr_expect_eq(refcount(&r, 1), 0);
    cr_expect_eq(u64(&r, cl + 8), 274 * cl);
    cr_expect_eq(u64(&r, cl + 8 * 63), 16131 * cl);
    for (uint64_t c = 16589; c < 16640; c++)
        cr_assert_eq(refcount(&r, c), 0, "cluster %llu is free",
                     (unsigned long long)c);
    for (uint64_t c = 16640; c < 16643; c++)
        cr_expect_eq(refcount(&r, c), 1);
    reads_back(&r, in, A_LEN);
    rig_free(&r);
    free(in);
}

/*
 * -c at 64 KiB clusters (A, measured): cluster 0 compressed at 0x50000
 * (580 bytes: one sector past the first), the zero cluster 1 unallocated,
 * cluster 2 packed right after cluster 0; host clusters counted once per
 * compressed cluster touching them. With -S 0 zeros are compressed too.
 */
Test(qcow2_convert, compressed_clusters)
{
    uint8_t *in = rig_pattern(A_LEN, 4);
    struct rig r;
    const uint64_t l2 = 0x40000;

    convert(&r, in, A_LEN, 16, 3, true, 4096);
    cr_expect_eq(u64(&r, 0x30000), 0x40000 | COPIED, "L1[0]");
    cr_expect_eq(u64(&r, l2), 0x4040000000050000ull);
    cr_expect_eq(u64(&r, l2 + 8), 0u, "zero cluster unallocated");
    cr_expect_eq(u64(&r, l2 + 16), 0x4040000000050244ull);
    cr_expect_eq(u64(&r, l2 + 8 * 16), 0x4040000000051b32ull);
    cr_expect_eq(refcount(&r, 5), 113);
    cr_expect_eq(refcount(&r, 6), 114);
    cr_expect_eq(refcount(&r, 7), 16);
    cr_expect_eq(r.m.out_len % 512, 0u, "ends on a sector");
    reads_back(&r, in, A_LEN);
    rig_free(&r);

    convert(&r, in, A_LEN, 16, 3, true, 0);
    cr_expect_eq(u64(&r, l2 + 8), 0x4000000000050244ull, "zeros too");
    cr_expect_eq(refcount(&r, 5), 145);
    reads_back(&r, in, A_LEN);
    rig_free(&r);
    free(in);
}

/* A cluster that does not compress into cluster - 1 bytes is stored plain
 * (COPIED, whole), as qemu-img does (measured with random data). */
Test(qcow2_convert, incompressible_cluster_is_plain)
{
    size_t len = 3 * 65536;
    uint8_t *in = malloc(len);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        in[i] = (uint8_t)x;
    }
    memset(in + 65536, 0, 65536 + 60000); /* cluster 2: mostly zeros */
    struct rig r;
    convert(&r, in, len, 16, 3, true, 4096);
    cr_expect_eq(u64(&r, 0x40000), 0x50000 | COPIED, "plain, first");
    cr_expect_eq(u64(&r, 0x40008), 0u);
    cr_expect(u64(&r, 0x40010) & COMPRESSED, "compressed: %#llx",
              (unsigned long long)u64(&r, 0x40010));
    cr_expect_eq(u64(&r, 0x40010) & 0x3fffffffffffffull, 0x60000u);
    cr_expect_eq(memcmp(r.m.out + 0x50000, in, 65536), 0);
    reads_back(&r, in, len);
    rig_free(&r);
    free(in);
}

/* --- sparse output for every cluster size ----------------------------------- */

/* zero() leaves clusters unallocated: with 2 MiB of zeros between data,
 * no cluster inside them has an L2 entry, and the file holds only the
 * clusters with data. */
Test(qcow2_convert, zeros_stay_unallocated_for_every_cluster_size)
{
    size_t len = 6 * MiB;
    uint8_t *in = rig_pattern(len, 0);
    memset(in + 2 * MiB, 0, 2 * MiB);
    for (unsigned bits = 9; bits <= 21; bits++) {
        for (int compress = 0; compress < 2; compress++) {
            struct rig r;
            uint64_t cl = 1ull << bits, l2e = cl / 8;
            convert(&r, in, len, bits, 3, compress, 4096);
            uint64_t l1 = u64(&r, 40), allocated = 0;
            for (uint64_t c = 0; c < len / cl; c++) {
                uint64_t t = u64(&r, l1 + 8 * (c / l2e)) & QCOW2_OFFSET_MASK;
                uint64_t e = t ? u64(&r, t + 8 * (c % l2e)) : 0;
                bool zero = c * cl >= 2 * MiB && (c + 1) * cl <= 4 * MiB;
                cr_assert(zero ? e == 0 : e != 0,
                          "cluster_bits %u%s: cluster %llu entry %#llx", bits,
                          compress ? " -c" : "", (unsigned long long)c,
                          (unsigned long long)e);
                allocated += e != 0;
            }
            if (!compress)
                cr_expect_leq(r.m.out_len, (allocated + 3) * cl + 4 * MiB,
                              "cluster_bits %u: %llu bytes", bits,
                              (unsigned long long)r.m.out_len);
            reads_back(&r, in, len);
            rig_free(&r);
        }
    }
    free(in);
}

/*
 * qemu-img convert rounds the zero runs it skips to 4 KiB (-S 4k): a data
 * MiB that starts with 1536 zero bytes after a zero MiB is written from
 * its first byte, so at 512-byte clusters its first three (all-zero)
 * clusters are allocated. Input: 8 MiB, every 4th MiB from the second
 * zero, the others one byte value with 1536 zeros every 8 KiB, then 3000
 * zeros; measured sizes and CRC-32, and the L2 entry at 2 MiB.
 */
Test(qcow2_convert, zero_runs_rounded_as_qemu)
{
    static const struct {
        unsigned bits;
        uint64_t size, at_2mib;
        uint32_t crc;
    } want[] = {{9, 6418432, 0x106200, 0x5d7085ae},
                {10, 6356992, 0x103c00, 0x93faa980},
                {12, 6324224, 0x106000, 0x20c405ff}};
    size_t len = 8 * MiB + 3000;
    uint8_t *in = calloc(1, len);
    for (size_t i = 0; i < 8; i++) {
        if (i % 4 == 1)
            continue;
        memset(in + i * MiB, (int)((i * 7) % 255 + 1), MiB);
        for (size_t k = 0; k < MiB; k += 8192)
            memset(in + i * MiB + k, 0, 1536);
    }
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct rig r;
        uint64_t cl = 1ull << want[i].bits, l2e = cl / 8, c = 2 * MiB / cl;
        convert(&r, in, len, want[i].bits, 3, false, 4096);
        uint64_t t = u64(&r, u64(&r, 40) + 8 * (c / l2e)) & QCOW2_OFFSET_MASK;
        cr_expect_eq(u64(&r, t + 8 * (c % l2e)), want[i].at_2mib | COPIED,
                     "cluster_bits %u", want[i].bits);
        cr_expect_eq(r.m.out_len, want[i].size, "cluster_bits %u",
                     want[i].bits);
        cr_expect_eq((uint32_t)crc32(0, r.m.out, (uInt)r.m.out_len),
                     want[i].crc, "cluster_bits %u", want[i].bits);
        reads_back(&r, in, len);
        rig_free(&r);
    }
    free(in);
}

/* An L1 table that reaches past refcount block 0 (600 MiB of zeros at
 * 512-byte clusters: 300 clusters of L1) makes block 1 when qemu-img
 * create allocates it; instar makes it only after begin_output (the host
 * stops a guest that writes before). Measured: block 1 at cluster 303,
 * 155648 bytes. */
Test(qcow2_convert, l1_table_past_block_0)
{
    size_t len = 600 * MiB;
    uint8_t *in = calloc(1, len);
    struct rig r;
    convert(&r, in, len, 9, 3, false, 4096);
    cr_expect_eq(r.m.out_len, 155648u);
    cr_expect_eq(u64(&r, 512 + 8), 303 * 512u, "refcount block 1");
    cr_expect_eq((uint32_t)crc32(0, r.m.out, (uInt)r.m.out_len),
                 0x9094759fu);
    rig_free(&r);
    free(in);
}

/* --- refusals ----------------------------------------------------------------- */

static void refused(struct ct_output_params p, const char *what)
{
    uint8_t in[4096] = {1};
    struct rig r;
    rig_convert(&r, in, sizeof in, CT_FMT_QCOW2, 4096, &p);
    cr_expect_eq(r.ret, G_ENOTSUP, "%s", what);
    cr_expect(strstr(r.err.msg, "qcow2") && strstr(r.err.msg, what), "%s",
              r.err.msg);
    cr_expect_not(r.m.begun);
    rig_free(&r);
}

Test(qcow2_convert, shapes_qcow2_does_not_take_are_refused)
{
    refused((struct ct_output_params){.cluster_bits = 8}, "cluster_size");
    refused((struct ct_output_params){.cluster_bits = 22}, "cluster_size");
    refused((struct ct_output_params){.version = 1}, "compat");
    refused((struct ct_output_params){.version = 4}, "compat");
    refused((struct ct_output_params){.subformat = CT_SUB_FIXED}, "subformat");
    refused((struct ct_output_params){.flags = CT_OUT_FORCE_SIZE},
            "force_size");
    refused((struct ct_output_params){.block_size = 1 << 20}, "block_size");
}

/* --- the output bound ----------------------------------------------------------- */

/* Dense outputs as qemu-img convert -S 0 wrote them (100 MiB of data):
 * at 512-byte clusters the refcount table grew to 17 clusters. The bound
 * covers them, with little to spare. */
Test(qcow2_convert, bound_covers_grown_tables)
{
    static const struct {
        unsigned bits;
        uint64_t vsize, size;
    } dense[] = {{9, 100 * MiB, 106981376},  {10, 100 * MiB, 106017792},
                 {11, 100 * MiB, 105377792}, {12, 100 * MiB, 105127936},
                 {9, A_LEN, 21422592},       {16, A_LEN, 21364736}};
    for (size_t i = 0; i < sizeof dense / sizeof dense[0]; i++) {
        struct ct_output_params p = {.cluster_bits = dense[i].bits};
        uint64_t b = output_bound_p(CT_FMT_QCOW2, &p, dense[i].vsize);
        cr_expect(b >= dense[i].size && b - dense[i].size <= 2 * MiB,
                  "cluster_bits %u: bound %llu for %llu", dense[i].bits,
                  (unsigned long long)b, (unsigned long long)dense[i].size);
    }
}
