/* The vmdk reader over ct_mem, on images built here byte by byte. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ct_mem.h"
#include "extent_check.h"
#include "engine/engine.h"

#define SEC 512u
#define GRAIN 8u     /* sectors: 4 KiB grains keep the images small */
#define GTES 4u      /* entries per grain table: several tables */
#define DESC_SECTORS 20u

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint8_t *pattern(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 7 + (i >> 9) + seed) % 255 + 1);
    return p;
}

/* Grain kinds for the builder. */
enum { G_DATA, G_HOLE, G_ZERO };

struct img {
    uint8_t *p;
    size_t len;
    uint32_t gd_sector, gt_sector, overhead;
};

static void header(uint8_t *h, uint64_t cap, uint32_t flags, uint32_t gd,
                   uint32_t overhead, int compressed)
{
    memcpy(h, "KDMV", 4);
    put32(h + 4, compressed ? 3 : 1);
    put32(h + 8, flags);
    put64(h + 12, cap);
    put64(h + 20, GRAIN);
    put64(h + 28, 1);
    put64(h + 36, DESC_SECTORS);
    put32(h + 44, GTES);
    put64(h + 48, 0);
    put64(h + 56, gd);
    put64(h + 64, overhead);
    memcpy(h + 73, "\n \r\n", 4);
    h[77] = compressed ? 1 : 0;
}

/* A sparse extent of `len` bytes (multiple of 512) with the given grain
 * kinds (NULL: all data), an embedded descriptor, optionally compressed
 * grains with markers and the GD in a footer. */
static struct img build(const uint8_t *data, size_t len, const int *kinds,
                        const char *desc, int compressed, int gd_at_end)
{
    uint64_t cap = len / SEC;
    uint32_t ngrains = (uint32_t)((cap + GRAIN - 1) / GRAIN);
    uint32_t ngts = (ngrains + GTES - 1) / GTES;
    uint32_t gd = 1 + DESC_SECTORS, gt = gd + 1;
    uint32_t overhead = (gt + ngts + GRAIN - 1) / GRAIN * GRAIN;
    size_t cap_bytes = (size_t)(overhead + 3) * SEC +
                       (size_t)ngrains * (GRAIN * SEC * 2 + 2 * SEC);
    struct img im = {calloc(1, cap_bytes), 0, gd, gt, overhead};
    uint32_t flags = 1 | 4 | (compressed ? 3u << 16 : 0);
    size_t pos = (size_t)overhead * SEC;

    header(im.p, cap, flags, gd_at_end ? 0xffffffffu : gd, overhead,
           compressed);
    if (gd_at_end)
        put64(im.p + 56, UINT64_MAX);
    memcpy(im.p + SEC, desc, strlen(desc));
    for (uint32_t t = 0; t < ngts; t++)
        put32(im.p + gd * SEC + 4 * t, gt + t);
    for (uint32_t g = 0; g < ngrains; g++) {
        int k = kinds ? kinds[g] : G_DATA;
        uint8_t *e = im.p + (gt + g / GTES) * SEC + 4 * (g % GTES);
        size_t off = (size_t)g * GRAIN * SEC;
        size_t n = len - off < GRAIN * SEC ? len - off : GRAIN * SEC;
        if (k == G_ZERO)
            put32(e, 1);
        if (k != G_DATA)
            continue;
        put32(e, (uint32_t)(pos / SEC));
        if (compressed) {
            uLongf zl = GRAIN * SEC * 2;
            cr_assert_eq(compress(im.p + pos + 12, &zl, data + off, n), Z_OK);
            put64(im.p + pos, off / SEC);
            put32(im.p + pos + 8, (uint32_t)zl);
            pos += (12 + zl + SEC - 1) / SEC * SEC;
        } else {
            memcpy(im.p + pos, data + off, n);
            pos += GRAIN * SEC;
        }
    }
    if (gd_at_end) {
        put64(im.p + pos, 1);
        put32(im.p + pos + 12, 3);
        header(im.p + pos + SEC, cap, flags, gd, overhead, compressed);
        pos += 3 * SEC;
    }
    im.len = pos;
    return im;
}

static const char *desc_plain =
    "# Disk DescriptorFile\nversion=1\nCID=11111111\nparentCID=ffffffff\n"
    "createType=\"monolithicSparse\"\n";

struct run {
    struct ct_mem m;
    struct g_error err;
    int ret;
};

/* What a run may use besides the defaults: 0 = default. */
struct limits {
    uint32_t files_max;
    size_t io_size;
};

static void run_dd_once(struct run *r, const uint8_t *in, size_t len,
                        struct window_args a, const struct ct_mem_file *files,
                        size_t nfiles, struct limits lim, bool no_kernel)
{
    size_t io = lim.io_size ? lim.io_size : 8 << 20;
    struct dd_mem mem = {calloc(1, 16 << 20), 16 << 20, calloc(1, io), io,
                         NULL};
    struct dd_config cfg = {.in_format = CT_FMT_PROBE,
                            .out_format = CT_FMT_RAW,
                            .args = a,
                            .files_max = lim.files_max};
    memset(&r->err, 0, sizeof r->err);
    ct_mem_init(&r->m, in, len, CT_FMT_RAW, &a);
    for (size_t i = 0; i < nfiles; i++)
        ct_mem_add_file(&r->m, files[i].name, files[i].data, files[i].len);
    r->m.no_kernel = no_kernel;
    struct ct_ops ops = ct_mem_ops(&r->m);
    r->ret = dd_run(&cfg, &ops, &mem, &r->err);
    free(mem.heap);
    free(mem.io);
}

/* dd through the engine's extents (host copies), and again through the
 * guest's own path: same result, message and bytes. r holds the first. */
static void run_dd_lim(struct run *r, const uint8_t *in, size_t len,
                       struct window_args a, const struct ct_mem_file *files,
                       size_t nfiles, struct limits lim)
{
    struct run g;
    run_dd_once(r, in, len, a, files, nfiles, lim, false);
    run_dd_once(&g, in, len, a, files, nfiles, lim, true);
    expect_same_dd(r->ret, r->err.msg, &r->m, g.ret, g.err.msg, &g.m);
    ct_mem_free(&g.m);
}

static void run_dd(struct run *r, const uint8_t *in, size_t len,
                   struct window_args a, const struct ct_mem_file *files,
                   size_t nfiles)
{
    run_dd_lim(r, in, len, a, files, nfiles, (struct limits){0, 0});
}

static const struct window_args all = {512, 0, 0, 0, 0};

static void expect_bytes(struct run *r, const uint8_t *want, size_t len)
{
    cr_assert_eq(r->ret, G_OK, "dd failed: %s", r->err.msg);
    cr_assert_eq(r->m.out_len, len, "output %zu bytes, expected %zu",
                 r->m.out_len, len);
    for (size_t i = 0; i < len; i++)
        if (r->m.out[i] != want[i])
            cr_assert_fail("byte %zu: got %u want %u", i, r->m.out[i],
                           want[i]);
}

/* a window of n bytes: the output is rounded up to 512 with zeros */
static void expect_window(struct run *r, const uint8_t *want, size_t n)
{
    size_t out = (n + 511) & ~(size_t)511;
    uint8_t *w = calloc(1, out);
    memcpy(w, want, n);
    expect_bytes(r, w, out);
    free(w);
}

static void expect_error(const uint8_t *in, size_t len,
                         const struct ct_mem_file *files, size_t nfiles,
                         const char *msg)
{
    struct run r;
    run_dd(&r, in, len, all, files, nfiles);
    cr_expect_neq(r.ret, G_OK);
    cr_expect_str_eq(r.err.msg, msg);
    ct_mem_free(&r.m);
}

#define LEN (16 * GRAIN * SEC + 3 * SEC) /* 16 grains and a partial one */

/* data with the given kinds applied: holes and zero grains read as 0 */
static uint8_t *expected(const uint8_t *data, const int *kinds)
{
    uint8_t *w = malloc(LEN);
    memcpy(w, data, LEN);
    for (size_t g = 0; kinds && g * GRAIN * SEC < LEN; g++)
        if (kinds[g] != G_DATA) {
            size_t off = g * GRAIN * SEC;
            memset(w + off, 0, LEN - off < GRAIN * SEC ? LEN - off
                                                       : GRAIN * SEC);
        }
    return w;
}

static const int kinds17[17] = {G_DATA, G_HOLE, G_DATA, G_DATA, G_ZERO,
                                G_DATA, G_DATA, G_DATA, G_HOLE, G_HOLE,
                                G_HOLE, G_HOLE, G_DATA, G_DATA, G_ZERO,
                                G_DATA, G_DATA};

Test(vmdk, monolithic_sparse_with_holes_and_zero_grains)
{
    uint8_t *data = pattern(LEN, 1), *want = expected(data, kinds17);
    struct img im = build(data, LEN, kinds17, desc_plain, 0, 0);
    struct run r;
    run_dd(&r, im.p, im.len, all, NULL, 0);
    expect_bytes(&r, want, LEN);
    ct_mem_free(&r.m);
    /* a window starting and ending inside grains */
    run_dd(&r, im.p, im.len, (struct window_args){1000, 60, 3, 1, 1}, NULL,
           0);
    expect_window(&r, want + 3000, 57000);
    ct_mem_free(&r.m);
    free(im.p);
    free(data);
    free(want);
}

Test(vmdk, stream_optimized_compressed_grains)
{
    uint8_t *data = pattern(LEN, 2), *want = expected(data, kinds17);
    for (int footer = 0; footer < 2; footer++) {
        struct img im = build(data, LEN, kinds17, desc_plain, 1, footer);
        struct run r;
        run_dd(&r, im.p, im.len, all, NULL, 0);
        expect_bytes(&r, want, LEN);
        ct_mem_free(&r.m);
        run_dd(&r, im.p, im.len, (struct window_args){1000, 60, 3, 1, 1},
               NULL, 0);
        expect_window(&r, want + 3000, 57000);
        ct_mem_free(&r.m);
        free(im.p);
    }
    free(data);
    free(want);
}

Test(vmdk, flat_extents_with_offset_and_skipped_lines)
{
    uint8_t *data = pattern(8192, 3), want[8192 + 2048];
    const char *d = "# Disk DescriptorFile\nversion=1\nCID=1\n"
                    "parentCID=ffffffff\ncreateType=\"monolithicFlat\"\n"
                    "RW 4 FLAT \"a.bin\" 2\n"
                    "RDONLY 4 FLAT \"a.bin\" 0\n"
                    "RW 4 ZERO\n"
                    "RW 12 FLAT \"a.bin\" 6\n"
                    "RW 4 VMFS \"a.bin\"\n";
    struct ct_mem_file f = {"a.bin", data, 8192};
    struct run r;
    memcpy(want, data + 1024, 2048);
    memcpy(want + 2048, data + 3072, 5120); /* then past EOF: zeros */
    memset(want + 2048 + 5120, 0, 1024);
    memcpy(want + 8192, data, 2048);
    run_dd(&r, (const uint8_t *)d, strlen(d), all, &f, 1);
    expect_bytes(&r, want, sizeof want);
    ct_mem_free(&r.m);
    free(data);
}

Test(vmdk, sparse_extent_in_descriptor_uses_header_capacity)
{
    uint8_t *data = pattern(LEN, 4);
    struct img im = build(data, LEN, NULL, "", 0, 0);
    const char *d = "version=1\nCID=1\nparentCID=ffffffff\n"
                    "createType=\"twoGbMaxExtentSparse\"\n"
                    "RW 8 SPARSE \"s.vmdk\"\nRW 8 SPARSE \"s.vmdk\"\n";
    struct ct_mem_file f = {"s.vmdk", im.p, im.len};
    uint8_t *want = malloc(2 * LEN);
    struct run r;
    memcpy(want, data, LEN);
    memcpy(want + LEN, data, LEN);
    run_dd(&r, (const uint8_t *)d, strlen(d), all, &f, 1);
    expect_bytes(&r, want, 2 * LEN);
    ct_mem_free(&r.m);
    free(want);
    free(im.p);
    free(data);
}

static char *overlay_desc(uint32_t pcid)
{
    static char buf[256];
    snprintf(buf, sizeof buf,
             "# Disk DescriptorFile\nversion=1\nCID=22222222\n"
             "parentCID=%08x\ncreateType=\"monolithicSparse\"\n"
             "parentFileNameHint=\"base.vmdk\"\n",
             pcid);
    return buf;
}

Test(vmdk, parent_supplies_unallocated_grains)
{
    uint8_t *base = pattern(LEN, 5), *top = pattern(LEN, 6);
    /* the base is shorter than the overlay: past its end reads zeros */
    size_t blen = 10 * GRAIN * SEC + SEC;
    struct img b = build(base, blen, NULL, desc_plain, 0, 0);
    struct img t = build(top, LEN, kinds17, overlay_desc(0x11111111), 0, 0);
    struct ct_mem_file f = {"base.vmdk", b.p, b.len};
    uint8_t *want = malloc(LEN);
    struct run r;
    for (size_t g = 0; g * GRAIN * SEC < LEN; g++) {
        size_t off = g * GRAIN * SEC;
        size_t n = LEN - off < GRAIN * SEC ? LEN - off : GRAIN * SEC;
        for (size_t i = off; i < off + n; i++)
            want[i] = kinds17[g] == G_DATA   ? top[i]
                      : kinds17[g] == G_ZERO ? 0
                      : i < blen             ? base[i]
                                             : 0;
    }
    run_dd(&r, t.p, t.len, all, &f, 1);
    expect_bytes(&r, want, LEN);
    ct_mem_free(&r.m);
    free(want);
    free(b.p);
    free(t.p);
    free(base);
    free(top);
}

Test(vmdk, parent_cid_mismatch_fails_on_unallocated_read)
{
    uint8_t *data = pattern(LEN, 7);
    struct img b = build(data, LEN, NULL, desc_plain, 0, 0);
    struct img t = build(data, LEN, kinds17, overlay_desc(0x12345678), 0, 0);
    struct ct_mem_file f = {"base.vmdk", b.p, b.len};
    expect_error(t.p, t.len, &f, 1,
                 "vmdk: parentCID 12345678 does not match the parent's CID "
                 "11111111");
    free(b.p);
    free(t.p);
    free(data);
}

Test(vmdk, missing_parent_is_named)
{
    uint8_t *data = pattern(LEN, 7);
    struct img t = build(data, LEN, kinds17, overlay_desc(1), 0, 0);
    expect_error(t.p, t.len, NULL, 0,
                 "vmdk: cannot open 'base.vmdk': not found or not allowed "
                 "(files an image refers to must be in an allowed "
                 "directory)");
    free(t.p);
    free(data);
}

/* A good monolithic image to corrupt. */
static struct img good(void)
{
    static uint8_t *data;
    if (!data)
        data = pattern(LEN, 8);
    return build(data, LEN, kinds17, desc_plain, 0, 0);
}

static void header_error(size_t off, int width, uint64_t v, const char *msg)
{
    struct img im = good();
    if (width == 2) {
        im.p[off] = (uint8_t)v;
        im.p[off + 1] = (uint8_t)(v >> 8);
    } else if (width == 4) {
        put32(im.p + off, (uint32_t)v);
    } else {
        put64(im.p + off, v);
    }
    expect_error(im.p, im.len, NULL, 0, msg);
    free(im.p);
}

Test(vmdk, header_fields_are_checked)
{
    header_error(4, 4, 4, "vmdk: version 4 is not supported");
    header_error(12, 8, 0,
                 "vmdk: capacity 0 is not supported (qemu cannot open such "
                 "an extent either)");
    header_error(12, 8, 1ull << 62,
                 "vmdk: capacity 4611686018427387904 sectors exceeds the "
                 "limit");
    header_error(20, 8, 0, "vmdk: grainSize 0 is out of range");
    header_error(20, 8, 65537, "vmdk: grainSize 65537 is out of range");
    header_error(44, 4, 0, "vmdk: numGTEsPerGT 0 is out of range");
    header_error(44, 4, 513, "vmdk: numGTEsPerGT 513 is out of range");
    header_error(77, 2, 2, "vmdk: compressAlgorithm 2 is not supported");
    header_error(56, 8, 0, "vmdk: gdOffset 0 overlaps the header");
    header_error(56, 8, 1u << 20,
                 "vmdk: grain directory at sector 1048576 (20 bytes) is past "
                 "the end of the file");
}

Test(vmdk, grain_directory_limit)
{
    /* 1 grain per 1-entry table over 2^25 + 1 grains: one entry more than
     * qemu takes ("L1 size too big") */
    struct img im = good();
    put64(im.p + 12, ((1ull << 25) + 1) * GRAIN);
    put32(im.p + 44, 1);
    expect_error(im.p, im.len, NULL, 0,
                 "vmdk: grain directory size 33554433 entries exceeds the "
                 "limit");
    /* the largest directory is no more than a range check at open */
    put64(im.p + 12, (1ull << 25) * GRAIN);
    expect_error(im.p, im.len, NULL, 0,
                 "vmdk: grain directory at sector 21 (134217728 bytes) is "
                 "past the end of the file");
    free(im.p);
}

Test(vmdk, tables_pointing_outside_are_refused)
{
    struct img im = good();
    put32(im.p + im.gd_sector * SEC, 0x7fffffff);
    expect_error(im.p, im.len, NULL, 0,
                 "vmdk: grain table at sector 2147483647 (16 bytes) is past "
                 "the end of the file");
    free(im.p);
    im = good();
    put32(im.p + im.gt_sector * SEC, 0x00ffffff);
    expect_error(im.p, im.len, NULL, 0,
                 "vmdk: grain data at offset 8589934080 (4096 bytes) is past "
                 "the end of the file");
    free(im.p);
    im = good();
    put32(im.p + im.gt_sector * SEC, 5);
    expect_error(im.p, im.len, NULL, 0,
                 "vmdk: grain 0 at sector 5 lies inside the metadata "
                 "(overHead 32 sectors)");
    free(im.p);
}

Test(vmdk, compressed_garbage_and_bad_footer)
{
    uint8_t *data = pattern(LEN, 9);
    struct img im = build(data, LEN, NULL, desc_plain, 1, 0);
    size_t g0 = (size_t)im.overhead * SEC;
    memset(im.p + g0 + 12, 0xde, 20);
    expect_error(im.p, im.len, NULL, 0,
                 "vmdk: compressed grain at offset 16384 does not "
                 "decompress (zlib -3: incorrect header check)");
    free(im.p);
    im = build(data, LEN, NULL, desc_plain, 1, 0);
    put32(im.p + g0 + 8, 1u << 30);
    expect_error(im.p, im.len, NULL, 0,
                 "vmdk: compressed grain size 1073741824 is larger than a "
                 "grain allows");
    free(im.p);
    im = build(data, LEN, NULL, desc_plain, 1, 1);
    memcpy(im.p + im.len - 2 * SEC, "XXXX", 4);
    expect_error(im.p, im.len, NULL, 0,
                 "vmdk: footer magic is not KDMV (invalid footer)");
    memset(im.p + im.len - 3 * SEC, 0, SEC);
    expect_error(im.p, im.len, NULL, 0,
                 "vmdk: footer marker type 0 is not a footer marker "
                 "(invalid footer)");
    free(im.p);
    free(data);
}

Test(vmdk, descriptor_errors)
{
    static const struct {
        const char *desc, *msg;
    } cases[] = {
        {"version=1\nCID=1\nparentCID=1\nRW 4 FLAT \"a.bin\" 0\n",
         "vmdk: descriptor has no createType (invalid VMDK image "
         "descriptor)"},
        {"version=1\nCID=1\nparentCID=1\ncreateType=\"monolithicSparse\"\n",
         "vmdk: createType 'monolithicSparse' is not supported in a "
         "descriptor file"},
        {"version=1\nCID=1\ncreateType=\"vmfs\"\n",
         "vmdk: descriptor has no parentCID"},
        {"version=1\nCID=zz\nparentCID=1\ncreateType=\"vmfs\"\n",
         "vmdk: descriptor CID has no hex value"},
        {"version=1\nCID=1\nparentCID=1\ncreateType=\"vmfs\"\n"
         "RW 4 FLAT \"a.bin\"\n",
         "vmdk: invalid extent line: RW 4 FLAT \"a.bin\""},
        {"version=1\nCID=1\nparentCID=1\ncreateType=\"vmfs\"\n"
         "RW 4 FLAT \"a.bin\" -4\n",
         "vmdk: invalid extent line: RW 4 FLAT \"a.bin\" -4"},
        {"version=1\nCID=1\nparentCID=1\ncreateType=\"vmfs\"\n"
         "RW 4 SESPARSE \"a.bin\"\n",
         "vmdk: SESPARSE extents are not supported"},
        {"version=1\nCID=1\nparentCID=1\ncreateType=\"vmfs\"\n"
         "RW 4 SPARSE \"a.bin\"\n",
         "vmdk: sparse extent magic is not KDMV (image not in VMDK format)"},
        {"version=1\nCID=1\nparentCID=1\ncreateType=\"vmfs\"\n"
         "RW 4 FLAT \"../a.bin\" 0\n",
         "vmdk: cannot open '../a.bin': not found or not allowed (files an "
         "image refers to must be in an allowed directory)"},
        {"version=1\nCID=1\nparentCID=1\ncreateType=\"vmfs\"\n"
         "RW 144115188075855872 FLAT \"a.bin\" 0\n",
         "vmdk: extent size 144115188075855872 sectors exceeds the limit"},
        {"COWD", "vmdk: COWD (ESX sparse, vmdk3) images are not supported"},
    };
    uint8_t a[4096] = {1};
    struct ct_mem_file f = {"a.bin", a, sizeof a};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* the probe would call some of these raw: force vmdk */
        struct run r;
        struct dd_mem mem = {calloc(1, 4 << 20), 4 << 20, calloc(1, 4 << 20),
                             4 << 20, NULL};
        struct dd_config cfg = {
            .in_format = CT_FMT_VMDK, .out_format = CT_FMT_RAW, .args = all};
        memset(&r.err, 0, sizeof r.err);
        ct_mem_init(&r.m, (const uint8_t *)cases[i].desc,
                    strlen(cases[i].desc), CT_FMT_RAW, &all);
        ct_mem_add_file(&r.m, f.name, f.data, f.len);
        struct ct_ops ops = ct_mem_ops(&r.m);
        r.ret = dd_run(&cfg, &ops, &mem, &r.err);
        cr_expect_neq(r.ret, G_OK, "case %zu", i);
        cr_expect_str_eq(r.err.msg, cases[i].msg, "case %zu", i);
        ct_mem_free(&r.m);
        free(mem.heap);
        free(mem.io);
    }
}

Test(vmdk, too_many_extents)
{
    /* the shortest lines: one more extent than the cap still fits in the
     * descriptor qemu reads */
    size_t n = LIMIT_VMDK_EXTENTS + 1, len = 0;
    char *d = malloc(64 + n * 14);
    len += (size_t)sprintf(d, "version=1\nCID=1\nparentCID=1\n"
                              "createType=\"vmfs\"\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(d + len, "RW 1 VMFS \"a\"\n");
    cr_assert_leq(len, LIMIT_VMDK_DESCRIPTOR_BYTES);
    expect_error((const uint8_t *)d, len, NULL, 0,
                 "vmdk: descriptor has more than 65536 extents");
    free(d);
}

Test(vmdk, chain_loop_is_bounded)
{
    /* an image naming itself as parent: the depth limit stops it */
    uint8_t *data = pattern(LEN, 10);
    char d[256];
    snprintf(d, sizeof d,
             "version=1\nCID=1\nparentCID=1\ncreateType=\"x\"\n"
             "parentFileNameHint=\"self.vmdk\"\n");
    struct img im = build(data, LEN, kinds17, d, 0, 0);
    struct ct_mem_file f = {"self.vmdk", im.p, im.len};
    struct run r;
    run_dd(&r, im.p, im.len, all, &f, 1);
    cr_expect_neq(r.ret, G_OK);
    cr_expect(strstr(r.err.msg, "vmdk: cannot open 'self.vmdk'") ||
                  strstr(r.err.msg, "backing chain is deeper"),
              "%s", r.err.msg);
    ct_mem_free(&r.m);
    free(im.p);
    free(data);
}

/* A monolithicFlat descriptor naming a.bin, padded with a comment line to
 * exactly `size` bytes. */
static char *padded_desc(size_t size)
{
    const char *head = "version=1\nCID=1\nparentCID=ffffffff\n"
                       "createType=\"monolithicFlat\"\n"
                       "RW 8 FLAT \"a.bin\" 0\n#";
    size_t h = strlen(head);
    char *d = malloc(size);
    memcpy(d, head, h);
    memset(d + h, 'x', size - h - 1);
    d[size - 1] = '\n';
    return d;
}

Test(vmdk, descriptor_file_is_read_as_far_as_qemu_reads)
{
    uint8_t *a = pattern(4096, 11);
    struct ct_mem_file f = {"a.bin", a, 4096};
    size_t lim = LIMIT_VMDK_DESCRIPTOR_BYTES;
    char *d = padded_desc(lim);
    struct run r;

    run_dd(&r, (const uint8_t *)d, lim, all, &f, 1);
    expect_bytes(&r, a, 4096);
    ct_mem_free(&r.m);
    free(d);
    /* one byte more: qemu would drop it, and with it any extent there */
    d = padded_desc(lim + 1);
    expect_error((const uint8_t *)d, lim + 1, &f, 1,
                 "vmdk: descriptor file size 1048576 exceeds the limit "
                 "1048575 (qemu reads only that much of it)");
    /* text ending at a NUL: what follows is not descriptor */
    d[100] = '\0';
    run_dd(&r, (const uint8_t *)d, lim + 1, all, &f, 1);
    expect_bytes(&r, a, 4096);
    ct_mem_free(&r.m);
    free(d);
    free(a);
}

Test(vmdk, files_beyond_what_the_run_can_open_are_refused_up_front)
{
    uint8_t *a = pattern(4096, 12);
    const char *d = "version=1\nCID=1\nparentCID=ffffffff\n"
                    "createType=\"twoGbMaxExtentFlat\"\n"
                    "RW 8 FLAT \"a.bin\" 0\nRW 8 FLAT \"b.bin\" 0\n"
                    "RW 8 FLAT \"a.bin\" 0\nRW 8 FLAT \"c.bin\" 0\n";
    struct ct_mem_file f[3] = {
        {"a.bin", a, 4096}, {"b.bin", a, 4096}, {"c.bin", a, 4096}};
    uint8_t *want = malloc(4 * 4096);
    struct run r;

    /* three files (a.bin twice) and the descriptor: 4 handles */
    run_dd_lim(&r, (const uint8_t *)d, strlen(d), all, f, 3,
               (struct limits){3, 0});
    cr_expect_neq(r.ret, G_OK);
    cr_expect_str_eq(r.err.msg,
                     "vmdk: too many files referenced: 3 > 2 (the open-files "
                     "limit, ulimit -n, bounds what this run can open)");
    cr_expect_eq(r.m.open_handles, 0, "refused before opening any");
    ct_mem_free(&r.m);
    for (int i = 0; i < 4; i++)
        memcpy(want + i * 4096, a, 4096);
    run_dd_lim(&r, (const uint8_t *)d, strlen(d), all, f, 3,
               (struct limits){4, 0});
    expect_bytes(&r, want, 4 * 4096);
    cr_expect_eq(r.m.open_handles, 3);
    ct_mem_free(&r.m);
    free(want);
    free(a);
}

Test(vmdk, empty_parent_hint_means_no_parent)
{
    /* qemu 7.2 reads such an image standalone: holes are zeros and the
     * parentCID, which matches nothing, is not checked */
    uint8_t *data = pattern(LEN, 13), *want = expected(data, kinds17);
    const char *d = "# Disk DescriptorFile\nversion=1\nCID=22222222\n"
                    "parentCID=12345678\ncreateType=\"monolithicSparse\"\n"
                    "parentFileNameHint=\"\"\n";
    struct img im = build(data, LEN, kinds17, d, 0, 0);
    struct run r;
    run_dd(&r, im.p, im.len, all, NULL, 0);
    expect_bytes(&r, want, LEN);
    cr_expect_eq(r.m.open_handles, 0);
    ct_mem_free(&r.m);
    free(im.p);
    free(want);
    free(data);
}

/* Sparse extents of 16 grain tables each (4 grains of 4 KiB per table). */
#define WIDE_LEN (16 * GTES * GRAIN * SEC)
#define WIDE_FILES 20

Test(vmdk, table_cache_is_shared_and_evicts_across_extents)
{
    /* 20 files of 16 tables (plus a directory page) each, listed twice:
     * 340 tables cycle through the cache's 256 slots, so the second
     * round reads every table again after it was evicted */
    static char names[WIDE_FILES][8];
    struct ct_mem_file f[WIDE_FILES];
    uint8_t *data[WIDE_FILES];
    struct img im[WIDE_FILES];
    char *d = malloc(4096);
    size_t len = (size_t)sprintf(d, "version=1\nCID=1\nparentCID=ffffffff\n"
                                    "createType=\"twoGbMaxExtentSparse\"\n");
    uint8_t *want = malloc(2 * WIDE_FILES * (size_t)WIDE_LEN);
    struct run r;

    for (int i = 0; i < WIDE_FILES; i++) {
        sprintf(names[i], "s%02d", i);
        data[i] = pattern(WIDE_LEN, 20 + (unsigned)i);
        im[i] = build(data[i], WIDE_LEN, NULL, "", 0, 0);
        f[i] = (struct ct_mem_file){names[i], im[i].p, im[i].len};
        memcpy(want + (size_t)i * WIDE_LEN, data[i], WIDE_LEN);
        memcpy(want + (size_t)(WIDE_FILES + i) * WIDE_LEN, data[i],
               WIDE_LEN);
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < WIDE_FILES; i++)
            len += (size_t)sprintf(d + len, "RW 1 SPARSE \"%s\"\n", names[i]);
    /* a small I/O area: the cache does not grow with the extents */
    run_dd_lim(&r, (const uint8_t *)d, len, all, f, WIDE_FILES,
               (struct limits){0, 2 << 20});
    expect_bytes(&r, want, 2 * WIDE_FILES * (size_t)WIDE_LEN);
    ct_mem_free(&r.m);
    /* a window crossing from the last extent of round one into the first
     * of round two, unaligned */
    run_dd_lim(&r, (const uint8_t *)d, len,
               (struct window_args){1000, 5263, 5237, 1, 1}, f, WIDE_FILES,
               (struct limits){0, 2 << 20});
    expect_window(&r, want + 5237000, 26000);
    ct_mem_free(&r.m);
    for (int i = 0; i < WIDE_FILES; i++) {
        free(im[i].p);
        free(data[i]);
    }
    free(want);
    free(d);
}

/* Every name a descriptor lists is a file of its own holding the same
 * sparse extent: the most extents a run can hold. */
struct many {
    const uint8_t *desc, *ext;
    size_t desc_len, ext_len;
    uint32_t handles;
};

static int many_file(struct many *m, uint32_t h, const uint8_t **p,
                     size_t *n)
{
    *p = NULL;
    *n = 0;
    if (h > m->handles)
        return CT_EBADH;
    *p = h ? m->ext : m->desc;
    *n = h ? m->ext_len : m->desc_len;
    return CT_OK;
}

static int many_size(void *ctx, uint32_t h, uint64_t *size)
{
    const uint8_t *p;
    size_t n;
    int ret = many_file(ctx, h, &p, &n);
    *size = n;
    return ret;
}

static int many_read(void *ctx, uint32_t h, uint64_t off, void *buf,
                     uint64_t len, uint64_t *nread)
{
    const uint8_t *p;
    size_t n;
    int ret = many_file(ctx, h, &p, &n);
    *nread = off < n ? (n - off < len ? n - off : len) : 0;
    if (*nread)
        memcpy(buf, p + off, (size_t)*nread);
    return ret;
}

static int many_open(void *ctx, uint32_t parent, const char *name,
                     uint32_t name_len, uint32_t *h)
{
    struct many *m = ctx;
    (void)parent, (void)name, (void)name_len;
    *h = ++m->handles;
    return CT_OK;
}

Test(vmdk, most_extents_fit_the_guest_memory)
{
    /* LIMIT_VMDK_EXTENTS lines in a descriptor qemu reads whole: the
     * shortest distinct names (1 and 2 bytes, any but NUL, CR, LF and
     * quote) give 63756 files, the rest repeat one; "1SPARSE" needs no
     * space, as for qemu's sscanf. Opened in the guest's
     * own heap and in its I/O area less the engine's chunk. */
    size_t cap = LIMIT_VMDK_DESCRIPTOR_BYTES, len = 0;
    char *d = malloc(LIMIT_VMDK_EXTENTS * 16u + 128), alpha[256];
    unsigned na = 0, lines = 0, files = 0;
    uint8_t *data = pattern(4 * GRAIN * SEC, 30);
    struct img im = build(data, 4 * GRAIN * SEC, NULL, "", 0, 0);
    struct many m = {(const uint8_t *)d, im.p, 0, im.len, 0};
    struct ct_ops ops = {.ctx = &m,
                         .size = many_size,
                         .read = many_read,
                         .open_backing = many_open};
    struct g_error err = {0};
    uint8_t *hm = calloc(1, CT_HEAP_SIZE), *iom = calloc(1, CT_IO_SIZE);
    struct arena heap, io;
    struct fmt_env env = {&ops, &err,         &heap, &io,
                          NULL, 0,    NULL, FMT_REFS_OPEN};
    struct fmt_reader *r;
    uint64_t ext = 4 * GRAIN * SEC;

    for (unsigned c = 1; c < 256; c++)
        if (c != '\n' && c != '\r' && c != '"')
            alpha[na++] = (char)c;
    len += (size_t)sprintf(d, "version=1\nCID=1\nparentCID=ffffffff\n"
                              "createType=\"twoGbMaxExtentSparse\"\n");
    for (unsigned i = 0; i < na && lines < LIMIT_VMDK_EXTENTS; i++, lines++)
        len += (size_t)sprintf(d + len, "RW 1SPARSE \"%c\"\n", alpha[i]);
    for (unsigned i = 0; i < na * na && lines < LIMIT_VMDK_EXTENTS;
         i++, lines++)
        len += (size_t)sprintf(d + len, "RW 1SPARSE \"%c%c\"\n",
                               alpha[i / na], alpha[i % na]);
    files = lines;
    for (; lines < LIMIT_VMDK_EXTENTS; lines++)
        len += (size_t)sprintf(d + len, "RW 1SPARSE \"%c\"\n", alpha[0]);
    cr_assert_leq(len, cap);
    m.desc_len = len;
    arena_init(&heap, hm, CT_HEAP_SIZE);
    arena_init(&io, iom, CT_IO_SIZE - ENGINE_BUF_MAX);
    cr_assert_eq(fmt_open(&env, CT_HANDLE_INPUT, CT_FMT_VMDK, 0, &r), G_OK,
                 "%s", err.msg);
    cr_expect_eq(m.handles, files);
    cr_expect_eq(r->vsize, (uint64_t)LIMIT_VMDK_EXTENTS * ext);
    cr_log_info("%u extents, %u files: heap %llu of %llu bytes, I/O %llu "
                "(descriptor %zu)",
                lines, files, (unsigned long long)heap.used,
                (unsigned long long)CT_HEAP_SIZE,
                (unsigned long long)io.used, len);
    cr_expect_leq(heap.used, 12u << 20, "heap %llu",
                  (unsigned long long)heap.used);
    cr_expect_leq(io.used, 2u << 20, "I/O %llu", (unsigned long long)io.used);
    /* reads across an extent boundary and at the very end */
    uint8_t *buf = arena_alloc(&io, 2 * ext, 512);
    cr_assert(buf);
    cr_assert_eq(r->read(r, 40000 * ext + ext / 2, buf, ext), G_OK, "%s",
                 err.msg);
    cr_expect_eq(memcmp(buf, data + ext / 2, ext / 2), 0);
    cr_expect_eq(memcmp(buf + ext / 2, data, ext / 2), 0);
    cr_assert_eq(r->read(r, r->vsize - ext, buf, ext), G_OK, "%s", err.msg);
    cr_expect_eq(memcmp(buf, data, ext), 0);
    free(hm);
    free(iom);
    free(im.p);
    free(data);
    free(d);
}
