/*
 * The vmdk writer driven directly (fmt_writer_open / _write / _zero /
 * _finish over ct_mem): every header field, the descriptor text, both
 * directories and both copies of each grain table checked against
 * ../shared/design/writers.md section 3, computed here from the spec's
 * formulas and the measured rows rather than from output_vmdk_layout().
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fmt/vmdk.h"
#include "fmt/vmdk_write.h"
#include "output_bound.h"
#include "par_threads.h"
#include "writer_rig.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define TiB (1ull << 40)
#define SEC 512u
#define GRAIN (64u * 1024u)
#define SPAN (32 * MiB) /* one grain table */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p)
{
    return le32(p) | (uint64_t)le32(p + 4) << 32;
}
static uint64_t up(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

/* writers.md 3.1, from its own formulas. */
struct lay {
    uint64_t cap, grains, gts, gds, gd, overhead;
};
static struct lay lay_of(uint64_t v)
{
    struct lay l;
    l.cap = v / SEC;
    l.grains = up(l.cap, 128);
    l.gts = up(l.grains, 512);
    l.gds = up(4 * l.gts, SEC);
    l.gd = 21 + l.gds + 4 * l.gts;
    l.overhead = up(l.gd + l.gds + 4 * l.gts, 128) * 128;
    return l;
}

/* A writer over ct_mem, as the engine would drive it. */
struct wt {
    struct rig r; /* r.m is the output; rig_read_back reads it */
    struct ct_ops ops;
    struct arena heap, io;
    void *heap_mem, *io_mem;
    struct fmt_env env;
    struct fmt_write_opts opts;
    struct ct_output_params params;
    struct fmt_writer *w;
    int ret;
};

/* The output's shape (convert's -o and -c), -S, and the vCPUs. */
struct shape {
    struct ct_output_params p;
    uint64_t sparse_min;
    bool two_vcpus; /* deflate on a worker thread too */
};

static const struct shape STREAM_4K = {
    .p = {.subformat = CT_SUB_STREAM_OPTIMIZED}, .sparse_min = 4096};

#define WT_HEAP (2u << 20)
#define WT_IO (64u << 20) /* calloc'd: untouched pages cost nothing */

/* cid: the entropy's first four bytes (NULL: 1, 2, 3, 4 like the rest);
 * sh: NULL for dd's defaults. */
static void wt_open_as(struct wt *t, uint64_t vsize, const char *name,
                       const uint8_t *cid, const struct shape *sh)
{
    static const struct window_args all = {1, 0, 0, false, false};
    memset(t, 0, sizeof *t);
    for (unsigned i = 0; i < FMT_ENTROPY_LEN; i++)
        t->r.entropy[i] = (uint8_t)(i + 1);
    if (cid)
        memcpy(t->r.entropy, cid, 4);
    ct_mem_init(&t->r.m, NULL, 0, CT_FMT_VMDK, &all);
    t->ops = ct_mem_ops(&t->r.m);
    t->heap_mem = calloc(1, WT_HEAP);
    t->io_mem = calloc(1, WT_IO);
    arena_init(&t->heap, t->heap_mem, WT_HEAP);
    arena_init(&t->io, t->io_mem, WT_IO);
    t->env = (struct fmt_env){
        .ops = &t->ops, .err = &t->r.err, .heap = &t->heap, .io = &t->io,
        .par = sh && sh->two_vcpus ? par_threads() : NULL};
    t->opts = (struct fmt_write_opts){.unix_time = 1700000000,
                                      .entropy = t->r.entropy,
                                      .out_name = name,
                                      .out_name_len = (uint32_t)strlen(name)};
    if (sh) {
        t->params = sh->p;
        t->opts.params = &t->params;
        t->opts.sparse_min = sh->sparse_min;
        t->r.m.out_params = &t->params; /* the host's bound for it */
    }
    t->ret = fmt_writer_open(&t->env, CT_FMT_VMDK, vsize, &t->opts, &t->w);
    if (t->ret == G_OK)
        cr_assert_eq(t->ops.begin_output(t->ops.ctx, CT_FMT_VMDK, vsize),
                     CT_OK);
}

static void wt_open_named(struct wt *t, uint64_t vsize, const char *name,
                          const uint8_t *cid)
{
    wt_open_as(t, vsize, name, cid, NULL);
}

static void wt_open(struct wt *t, uint64_t vsize)
{
    wt_open_named(t, vsize, "out.vmdk", NULL);
}

static void wt_close(struct wt *t)
{
    ct_mem_free(&t->r.m);
    free(t->heap_mem);
    free(t->io_mem);
}

static uint8_t *io_buf(struct wt *t, uint64_t n)
{
    uint8_t *p = arena_alloc(&t->io, n ? n : 1, 512);
    cr_assert(p, "test I/O area too small for %llu", (unsigned long long)n);
    return p;
}

static void wr(struct wt *t, const uint8_t *data, uint64_t len)
{
    uint8_t *b = io_buf(t, len);
    memcpy(b, data, len);
    cr_assert_eq(fmt_writer_write(t->w, t->w->pos, b, len), G_OK, "%s",
                 t->r.err.msg);
    t->io.used -= (len + 511) / 512 * 512; /* hand the buffer back */
}

/* data[pos, v) in writes of uneven lengths, across grains and chunks. */
static void wr_in_steps(struct wt *t, const uint8_t *data, uint64_t v)
{
    static const uint64_t steps[] = {1, 511, 1000, GRAIN - 1, 3, 70000,
                                     4 * MiB + 17};
    for (unsigned i = 0; t->w->pos < v; i++) {
        uint64_t n = steps[i % (sizeof steps / sizeof steps[0])];
        if (n > v - t->w->pos)
            n = v - t->w->pos;
        wr(t, data + t->w->pos, n);
    }
}

static void zr(struct wt *t, uint64_t len)
{
    cr_assert_eq(fmt_writer_zero(t->w, t->w->pos, len), G_OK, "%s",
                 t->r.err.msg);
}

static uint64_t fin(struct wt *t)
{
    uint64_t size = 0;
    cr_assert_eq(fmt_writer_finish(t->w, &size), G_OK, "%s", t->r.err.msg);
    cr_assert_eq(t->ops.end_output(t->ops.ctx, size), CT_OK);
    cr_assert_eq(t->r.m.out_len, size);
    return size;
}

/* Every header field of writers.md 3.1; streamOptimized's version, flags
 * and compressAlgorithm as measured (3, 0x30003, 1: deflate), the rest
 * the same, gdOffset included. */
static void check_header_as(const uint8_t *h, uint64_t v, bool stream)
{
    struct lay l = lay_of(v);
    cr_expect_eq(memcmp(h, "KDMV", 4), 0);
    cr_expect_eq(le32(h + 4), stream ? 3u : 1u, "version");
    cr_expect_eq(le32(h + 8), stream ? 0x30003u : 3u, "flags");
    cr_expect_eq(le64(h + 12), l.cap, "capacity");
    cr_expect_eq(le64(h + 20), 128u, "grainSize");
    cr_expect_eq(le64(h + 28), 1u, "descriptorOffset");
    cr_expect_eq(le64(h + 36), 20u, "descriptorSize");
    cr_expect_eq(le32(h + 44), 512u, "numGTEsPerGT");
    cr_expect_eq(le64(h + 48), 21u, "rgdOffset");
    cr_expect_eq(le64(h + 56), l.gd, "gdOffset");
    cr_expect_eq(le64(h + 64), l.overhead, "overHead");
    cr_expect_eq(h[72], 0, "uncleanShutdown");
    cr_expect_eq(memcmp(h + 73, "\n \r\n", 4), 0, "newline test");
    cr_expect_eq(h[77] | h[78] << 8, stream ? 1 : 0, "compressAlgorithm");
    for (unsigned i = 79; i < SEC; i++)
        cr_assert_eq(h[i], 0, "header pad byte %u", i);
}

static void check_header(const uint8_t *h, uint64_t v)
{
    check_header_as(h, v, false);
}

/* writers.md 3.3, with the CID the test's entropy gives, the create type
 * and the adapter (every adapter but ide has 255 heads: measured). */
static void check_descriptor_as(const uint8_t *out, uint64_t v,
                                const char *cid, const char *name,
                                const char *type, const char *adapter)
{
    char want[2048];
    unsigned heads = strcmp(adapter, "ide") ? 255 : 16;
    int n = snprintf(want, sizeof want,
                     "# Disk DescriptorFile\nversion=1\nCID=%s\n"
                     "parentCID=ffffffff\ncreateType=\"%s\"\n"
                     "\n# Extent description\nRW %llu SPARSE \"%s\"\n\n"
                     "# The Disk Data Base\n#DDB\n\n"
                     "ddb.virtualHWVersion = \"4\"\n"
                     "ddb.geometry.cylinders = \"%llu\"\n"
                     "ddb.geometry.heads = \"%u\"\n"
                     "ddb.geometry.sectors = \"63\"\n"
                     "ddb.adapterType = \"%s\"\n"
                     "ddb.toolsVersion = \"2147483647\"\n",
                     cid, type, (unsigned long long)(v / SEC), name,
                     (unsigned long long)(v / (heads * 63 * SEC)), heads,
                     adapter);
    const uint8_t *d = out + SEC;
    cr_expect_eq(memcmp(d, want, (size_t)n), 0, "descriptor:\n%.*s\nwant:\n%s",
                 n, (const char *)d, want);
    for (unsigned i = (unsigned)n; i < 20 * SEC; i++)
        cr_assert_eq(d[i], 0, "descriptor padding byte %u", i);
}

static void check_descriptor(const uint8_t *out, uint64_t v, const char *cid,
                             const char *name)
{
    check_descriptor_as(out, v, cid, name, "monolithicSparse", "ide");
}

/* Both directories list their own tables; both table copies hold `gte`
 * (NULL: grain g at overHead + 128 g, every grain of the disk). The gap
 * up to overHead is zero. */
static void check_tables(const uint8_t *out, uint64_t v, const uint32_t *gte)
{
    struct lay l = lay_of(v);
    const uint64_t dirs[2] = {21, l.gd};
    for (int d = 0; d < 2; d++) {
        const uint8_t *gd = out + dirs[d] * SEC;
        for (uint64_t j = 0; j < l.gts; j++)
            cr_assert_eq(le32(gd + 4 * j), dirs[d] + l.gds + 4 * j,
                         "directory %d entry %llu", d, (unsigned long long)j);
        for (uint64_t b = 4 * l.gts; b < l.gds * SEC; b++)
            cr_assert_eq(gd[b], 0, "directory %d padding", d);
        for (uint64_t g = 0; g < 512 * l.gts; g++) {
            uint32_t want = g >= l.grains ? 0
                            : gte        ? gte[g]
                                         : (uint32_t)(l.overhead + 128 * g);
            uint32_t got = le32(gd + l.gds * SEC + 4 * g);
            cr_assert_eq(got, want, "copy %d GT entry %llu: %u, want %u", d,
                         (unsigned long long)g, got, want);
        }
    }
    for (uint64_t b = (l.gd + l.gds + 4 * l.gts) * SEC; b < l.overhead * SEC;
         b++)
        cr_assert_eq(out[b], 0, "gap before overHead at %llu",
                     (unsigned long long)b);
}

/* The output read back by the project's vmdk reader. */
static void check_reads_back(struct wt *t, const uint8_t *want, uint64_t v)
{
    struct g_error err;
    uint64_t got = 0;
    uint8_t *back = rig_read_back(&t->r, CT_FMT_VMDK, &got, &err);
    cr_assert(back, "read back: %s", err.msg);
    cr_assert_eq(got, v);
    cr_expect_eq(memcmp(back, want, (size_t)v), 0, "data differs");
    free(back);
}

/* Dense output of a window of w bytes (v = w rounded to 512), as dd
 * writes it, checked field by field. */
static void dense_case(uint64_t w)
{
    uint64_t v = up(w, SEC) * SEC;
    uint8_t *data = rig_pattern((size_t)v, 3);
    memset(data + w, 0, (size_t)(v - w));
    struct wt t;
    wt_open(&t, v);
    cr_assert_eq(t.ret, G_OK, "W=%llu: %s", (unsigned long long)w,
                 t.r.err.msg);
    for (uint64_t off = 0; off < v; off += 4 * MiB)
        wr(&t, data + off, v - off < 4 * MiB ? v - off : 4 * MiB);
    uint64_t size = fin(&t);
    struct lay l = lay_of(v);
    cr_expect_eq(size, l.overhead * SEC + GRAIN * up(w, GRAIN),
                 "W=%llu: file %llu", (unsigned long long)w,
                 (unsigned long long)size);
    check_header(t.r.m.out, v);
    check_descriptor(t.r.m.out, v, "4030201", "out.vmdk");
    check_tables(t.r.m.out, v, NULL);
    for (uint64_t g = 0; g < l.grains; g++) {
        uint64_t n = v - g * GRAIN < GRAIN ? v - g * GRAIN : GRAIN;
        const uint8_t *at = t.r.m.out + (l.overhead + 128 * g) * SEC;
        cr_assert_eq(memcmp(at, data + g * GRAIN, (size_t)n), 0,
                     "grain %llu", (unsigned long long)g);
        for (uint64_t b = n; b < GRAIN; b++)
            cr_assert_eq(at[b], 0, "grain tail");
    }
    check_reads_back(&t, data, v);
    wt_close(&t);
    free(data);
}

/* Sizes of writers.md section 1 and the edges of a grain and a table. */
Test(vmdk_write, dense_sizes_field_by_field)
{
    static const uint64_t ws[] = {
        1,          512,           3000,          GRAIN - 1,
        GRAIN,      GRAIN + 1,     MiB + 1536,    SPAN - GRAIN,
        SPAN - 512, SPAN - 1,      SPAN,          SPAN + 1,
        SPAN + 512, SPAN + GRAIN,  40 * MiB + 1536, 2 * SPAN + 512};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        dense_case(ws[i]);
}

/* writers.md section 1: the measured qemu-img dd file sizes. */
Test(vmdk_write, file_sizes_of_qemu)
{
    static const struct {
        uint64_t w, size;
    } rows[] = {{1, 131072},          {512, 131072},
                {3000, 131072},       {65536, 131072},
                {65537, 196608},      {MiB, 1114112},
                {MiB + 1536, 1179648}, {2 * MiB, 2162688},
                {2 * MiB + 1, 2228224}, {5 * MiB + 1536, 5373952},
                {8 * MiB + 1, 8519680}, {33 * MiB, 34668544},
                {40 * MiB + 1536, 42074112}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint64_t v = up(rows[i].w, SEC) * SEC;
        uint8_t *data = calloc(1, (size_t)v);
        struct wt t;
        wt_open(&t, v);
        cr_assert_eq(t.ret, G_OK);
        wr(&t, data, v);
        cr_expect_eq(fin(&t), rows[i].size, "W=%llu",
                     (unsigned long long)rows[i].w);
        wt_close(&t);
        free(data);
    }
}

/* The measured layouts of writers.md 3.1 as the writer stamps them, for
 * sizes written sparsely (a few grains, the rest zero()). */
Test(vmdk_write, measured_layouts)
{
    static const struct {
        uint64_t v, gts, gd, overhead;
    } rows[] = {
        {512, 1, 26, 128},           {32 * MiB, 1, 26, 128},
        {32 * MiB + 512, 2, 30, 128}, {40 * MiB + 1536, 2, 30, 128},
        {GiB, 32, 150, 384},         {1600 * MiB, 50, 222, 512},
        {64 * GiB, 2048, 8229, 16512}, {TiB, 32768, 131349, 262784},
    };
    uint8_t one[SEC];
    memset(one, 0xa5, sizeof one);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint64_t v = rows[i].v;
        struct wt t;
        wt_open(&t, v);
        cr_assert_eq(t.ret, G_OK);
        wr(&t, one, SEC);
        if (v > SEC) {
            zr(&t, v - 2 * SEC);
            wr(&t, one, SEC);
        }
        uint64_t size = fin(&t);
        const uint8_t *h = t.r.m.out;
        cr_expect_eq(le64(h + 56), rows[i].gd, "V=%llu",
                     (unsigned long long)v);
        cr_expect_eq(le64(h + 64), rows[i].overhead);
        check_header(h, v);
        check_descriptor(h, v, "4030201", "out.vmdk");
        struct lay l = lay_of(v);
        cr_assert_eq(l.gts, rows[i].gts);
        uint64_t last = l.grains - 1;
        uint32_t *gte = calloc(512 * l.gts, 4);
        gte[0] = (uint32_t)l.overhead;
        if (last)
            gte[last] = (uint32_t)l.overhead + 128;
        check_tables(h, v, gte);
        cr_expect_eq(size, (l.overhead + (last ? 256 : 128)) * SEC);
        free(gte);
        wt_close(&t);
    }
}

/* zero() leaves grains unallocated (convert); a grain with any written
 * byte is allocated, in the order first written; a table with no grain
 * is still listed by both directories and reads as zeros. */
Test(vmdk_write, zero_ranges_stay_unallocated)
{
    const uint64_t v = 3 * SPAN + 5 * GRAIN + 1536;
    uint8_t *want = calloc(1, (size_t)v);
    uint8_t *data = rig_pattern((size_t)v, 0);
    struct wt t;
    wt_open(&t, v);
    cr_assert_eq(t.ret, G_OK);
    struct lay l = lay_of(v);
    uint32_t *gte = calloc(512 * l.gts, 4);
    uint64_t sector = l.overhead;
#define DATA(n)                                                               \
    do {                                                                      \
        uint64_t p0 = t.w->pos;                                               \
        wr(&t, data + p0, (n));                                               \
        memcpy(want + p0, data + p0, (n));                                    \
    } while (0)
#define ALLOC(g) (gte[g] = (uint32_t)sector, sector += 128)
    DATA(GRAIN);                 /* grain 0 */
    ALLOC(0);
    zr(&t, 2 * GRAIN);           /* grains 1, 2: unallocated */
    zr(&t, 1000);                /* grain 3: zero head ... */
    DATA(10);                    /* ... one written byte run allocates */
    ALLOC(3);
    zr(&t, 4 * GRAIN - 1010);    /* rest of grain 3 through grain 6 */
    DATA(1);                     /* grain 7: its first byte */
    ALLOC(7);
    zr(&t, SPAN + 3 * GRAIN - 1); /* up to grain 522, in table 1 */
    DATA(3 * GRAIN + 7);          /* grains 522..525 */
    ALLOC(522);
    ALLOC(523);
    ALLOC(524);
    ALLOC(525);
    /* table 2 has no grain at all */
    zr(&t, 3 * SPAN - t.w->pos);
    DATA(2 * GRAIN);             /* grains 1536, 1537 */
    ALLOC(1536);
    ALLOC(1537);
    zr(&t, v - t.w->pos - 512);
    DATA(512);                   /* the last, partial grain */
    ALLOC(l.grains - 1);
#undef DATA
#undef ALLOC
    uint64_t size = fin(&t);
    cr_expect_eq(size, sector * SEC);
    check_header(t.r.m.out, v);
    check_tables(t.r.m.out, v, gte);
    check_reads_back(&t, want, v);
    wt_close(&t);
    free(gte);
    free(want);
    free(data);
}

/* All zero(): no grain, the file is just the metadata. */
Test(vmdk_write, all_zero_has_no_grain)
{
    const uint64_t v = 2 * SPAN + 512;
    struct wt t;
    uint8_t *zeros = calloc(1, (size_t)v);
    wt_open(&t, v);
    cr_assert_eq(t.ret, G_OK);
    zr(&t, v);
    cr_expect_eq(fin(&t), 128u * SEC);
    uint32_t *gte = calloc(512 * lay_of(v).gts, 4);
    check_tables(t.r.m.out, v, gte);
    check_reads_back(&t, zeros, v);
    free(gte);
    free(zeros);
    wt_close(&t);
}

/* Any split of the same bytes into write() calls gives the same file. */
Test(vmdk_write, split_writes_give_the_same_file)
{
    const uint64_t v = SPAN + 3 * GRAIN + 512;
    uint8_t *data = rig_pattern((size_t)v, 3);
    struct wt a, b;
    wt_open(&a, v);
    wr(&a, data, v);
    fin(&a);
    wt_open(&b, v);
    wr_in_steps(&b, data, v);
    fin(&b);
    cr_assert_eq(a.r.m.out_len, b.r.m.out_len);
    cr_expect_eq(memcmp(a.r.m.out, b.r.m.out, a.r.m.out_len), 0);
    wt_close(&a);
    wt_close(&b);
    free(data);
}

/* Dense dd costs one host write per chunk, two per grain table (both
 * copies, written as each 32 MiB span completes), one for header and
 * descriptor and one per directory piece. */
Test(vmdk_write, one_host_write_per_chunk)
{
    const uint64_t v = 2 * SPAN;
    uint8_t *data = rig_pattern(4 * MiB, 0);
    struct wt t;
    wt_open(&t, v);
    cr_assert_eq(t.ret, G_OK);
    for (uint64_t off = 0; off < SPAN; off += 4 * MiB)
        wr(&t, data, 4 * MiB);
    /* The first span is done: its table is already in the file. */
    cr_expect_eq(t.r.m.writes, 8u + 2u);
    struct lay l = lay_of(v);
    cr_expect_eq(le32(t.r.m.out + (21 + l.gds) * SEC + 4 * 511),
                 l.overhead + 128 * 511);
    cr_expect_eq(le32(t.r.m.out + (l.gd + l.gds) * SEC), l.overhead);
    for (uint64_t off = 0; off < SPAN; off += 4 * MiB)
        wr(&t, data, 4 * MiB);
    cr_expect_eq(t.r.m.writes, 16u + 4u);
    fin(&t);
    cr_expect_eq(t.r.m.writes, 16u + 4u + 1u + 2u);
    wt_close(&t);
    free(data);
}

/* The descriptor: the CID is the entropy's first 32 bits in lowercase hex
 * without zero padding, the name is copied as it is. */
Test(vmdk_write, descriptor_cid_and_name)
{
    static const struct {
        uint8_t e[4];
        const char *cid;
    } cids[] = {{{0xb7, 0x55, 0x37, 0xa9}, "a93755b7"},
                {{0x22, 0x20, 0xd7, 0x08}, "8d72022"},
                {{0x0f, 0, 0, 0}, "f"},
                {{0, 0, 0, 0}, "0"},
                {{0xff, 0xff, 0xff, 0xff}, "ffffffff"}};
    static const char *const names[] = {"quo\"te.vmdk", "back\\sl.vmdk",
                                        "x", "new\nline", ""};
    uint8_t one[SEC] = {1};
    for (size_t i = 0; i < sizeof cids / sizeof cids[0]; i++) {
        struct wt t;
        wt_open_named(&t, 5 * SEC, names[i], cids[i].e);
        cr_assert_eq(t.ret, G_OK);
        wr(&t, one, SEC);
        zr(&t, 4 * SEC);
        fin(&t);
        check_descriptor(t.r.m.out, 5 * SEC, cids[i].cid, names[i]);
        wt_close(&t);
    }
    /* The longest name the host passes still fits the 20 sectors. */
    struct wt t;
    char name[CT_OUT_NAME_MAX + 1];
    memset(name, 'n', CT_OUT_NAME_MAX);
    name[CT_OUT_NAME_MAX] = '\0';
    wt_open_named(&t, TiB, name, NULL);
    cr_assert_eq(t.ret, G_OK);
    zr(&t, TiB);
    fin(&t);
    check_descriptor(t.r.m.out, TiB, "4030201", name);
    /* writers.md 3.3: not capped at 16383. */
    cr_expect(strstr((const char *)t.r.m.out + SEC,
                     "ddb.geometry.cylinders = \"2130440\"\n"));
    wt_close(&t);
}

/* writers.md 3.4: no vmdk of size 0 is readable by qemu-img 7.2, so open
 * refuses it, before anything is written. */
Test(vmdk_write, empty_image_is_refused_in_open)
{
    struct wt t;
    wt_open(&t, 0);
    cr_expect_eq(t.ret, G_ENOTSUP);
    cr_expect(strstr(t.r.err.msg, "vmdk") &&
                  strstr(t.r.err.msg, "virtual size 0") &&
                  strstr(t.r.err.msg, "qemu-img"),
              "%s", t.r.err.msg);
    cr_expect_eq(t.r.m.writes, 0u);
    cr_expect_not(t.r.m.begun);
    wt_close(&t);

    /* Through dd: count=0, skip past the end, an empty input. */
    static const struct window_args cases[] = {
        {512, 0, 0, true, false}, {512, 0, 9, false, true},
        {512, 0, 0, false, false}};
    uint8_t in[3000] = {0};
    for (size_t i = 0; i < 3; i++) {
        struct rig r;
        rig_write(&r, in, i == 2 ? 0 : sizeof in, cases[i], CT_FMT_VMDK,
                  NULL);
        cr_expect_eq(r.ret, G_ENOTSUP, "case %zu: %s", i, r.err.msg);
        cr_expect_not(r.m.begun, "case %zu: output begun", i);
        cr_expect_eq(r.m.writes, 0u);
        rig_free(&r);
    }
}

/* Sizes the writer must never see: past the cap, not whole sectors. */
Test(vmdk_write, open_refuses_what_output_vsize_refuses)
{
    struct wt t;
    wt_open(&t, OUTPUT_VMDK_MAX_VSIZE + SEC);
    cr_expect_eq(t.ret, G_ERANGE);
    cr_expect_eq(t.r.m.writes, 0u);
    wt_close(&t);
    wt_open(&t, 3000);
    cr_expect_eq(t.ret, G_ERANGE);
    wt_close(&t);
    wt_open(&t, OUTPUT_VMDK_MAX_VSIZE);
    cr_expect_eq(t.ret, G_OK, "%s", t.r.err.msg);
    wt_close(&t);
}

/* An image of the largest size (output_bound's tests check that a dense
 * one fits the 32-bit entries): sparse up to its last two grains, which
 * land in the last table. */
Test(vmdk_write, cap_sized_image_writes_its_last_grains)
{
    const uint64_t v = OUTPUT_VMDK_MAX_VSIZE;
    uint8_t *data = rig_pattern(2 * GRAIN, 0);
    struct wt t;
    wt_open(&t, v);
    cr_assert_eq(t.ret, G_OK);
    zr(&t, v - 2 * GRAIN);
    wr(&t, data, 2 * GRAIN);
    uint64_t size = fin(&t);
    struct lay l = lay_of(v);
    cr_expect_eq(size, (l.overhead + 256) * SEC);
    const uint8_t *gt = t.r.m.out + (l.gd + l.gds + 4 * (l.gts - 1)) * SEC;
    uint64_t in_last = (l.grains - 1) % 512;
    cr_expect_eq(le32(gt + 4 * (in_last - 1)), l.overhead);
    cr_expect_eq(le32(gt + 4 * in_last), l.overhead + 128);
    wt_close(&t);
    free(data);
}

/* fmt_vmdk_writer_map: where bytes go, allocating in order or not. */
Test(vmdk_write, map_places_and_looks_up)
{
    struct wt t;
    uint64_t at = 1, n = 0;
    uint8_t one[10] = {7};
    wt_open(&t, 4 * GRAIN);
    cr_assert_eq(t.ret, G_OK);
    /* Nothing allocated: unallocated, the whole run. */
    cr_expect_eq(fmt_vmdk_writer_map(t.w, 0, 4 * GRAIN, false, &at, &n),
                 G_OK);
    cr_expect(at == 0 && n == 4 * GRAIN);
    zr(&t, GRAIN + 100);
    wr(&t, one, 10); /* grain 1 at overHead */
    cr_expect_eq(fmt_vmdk_writer_map(t.w, GRAIN + 200, 3 * GRAIN - 200,
                                     false, &at, &n),
                 G_OK);
    cr_expect_eq(at, 128 * SEC + 200);
    cr_expect_eq(n, GRAIN - 200, "only the rest of grain 1 is allocated");
    cr_expect_eq(fmt_vmdk_writer_map(t.w, 2 * GRAIN, GRAIN, false, &at, &n),
                 G_OK);
    cr_expect_eq(at, 0u);
    /* Placing allocates grains 2 and 3 right after grain 1. */
    cr_expect_eq(fmt_vmdk_writer_map(t.w, GRAIN + 110, 3 * GRAIN - 110, true,
                                     &at, &n),
                 G_OK);
    cr_expect(at == 128 * SEC + 110 && n == 3 * GRAIN - 110);
    cr_expect_eq(fmt_vmdk_writer_map(t.w, 3 * GRAIN, 1, false, &at, &n),
                 G_OK);
    cr_expect_eq(at, (128 + 2 * 128) * SEC);
    /* Before the grain allocated last: out of order, refused. */
    cr_expect_eq(fmt_vmdk_writer_map(t.w, 0, 1, false, &at, &n), G_EINVAL);
    wt_close(&t);
}

/* Memory does not grow with the virtual size: the same heap and I/O
 * bytes for 512 bytes, 1 GiB and the cap, within io_max and heap_max. */
static void memory_flat(const struct shape *sh, uint64_t io_max,
                        uint64_t heap_max)
{
    static const uint64_t vs[] = {SEC, GiB, TiB, OUTPUT_VMDK_MAX_VSIZE};
    uint64_t heap0 = 0, io0 = 0;
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        struct wt t;
        wt_open_as(&t, vs[i], "out.vmdk", NULL, sh);
        cr_assert_eq(t.ret, G_OK);
        if (i == 0) {
            heap0 = t.heap.used;
            io0 = t.io.used;
            cr_expect_leq(io0, io_max, "I/O bytes %llu",
                          (unsigned long long)io0);
            cr_expect_leq(heap0, heap_max, "heap bytes %llu",
                          (unsigned long long)heap0);
        }
        cr_expect_eq(t.heap.used, heap0);
        cr_expect_eq(t.io.used, io0);
        wt_close(&t);
    }
}

Test(vmdk_write, memory_does_not_grow)
{
    memory_flat(NULL, 16384, 1024);
}

/* ---- convert's shapes: streamOptimized, -c, adapter_type ---------------- */

/* One stored streamOptimized grain: its marker, stream and padding. */
struct sgrain {
    uint64_t sector, lba, csize;
};

/* Walks grain table entries of a streamOptimized file: each allocated
 * entry points at a marker whose lba is the grain's first sector and
 * whose stream inflates (host zlib) to the grain's bytes of want (only
 * those inside the disk for the last grain), is byte for byte zlib's
 * compress2() at the default level (what qemu-img writes with the same
 * zlib), and is padded with zeros to a sector. Grains follow each other
 * sector after sector from overHead on. Returns how many were stored,
 * their records in g (up to max). */
static size_t check_stream_grains(const uint8_t *out, uint64_t out_len,
                                  uint64_t v, const uint8_t *want,
                                  struct sgrain *g, size_t max)
{
    struct lay l = lay_of(v);
    const uint8_t *gt = out + (l.gd + l.gds) * SEC;
    uint64_t next = l.overhead;
    size_t n = 0;
    uint8_t *buf = malloc(GRAIN + 1024);
    for (uint64_t i = 0; i < l.grains; i++) {
        uint32_t sector = le32(gt + 4 * i);
        if (!sector)
            continue;
        cr_assert_eq(sector, next, "grain %llu at sector %u, want %llu",
                     (unsigned long long)i, sector,
                     (unsigned long long)next);
        const uint8_t *m = out + (uint64_t)sector * SEC;
        uint64_t csize = le32(m + 8), len = v - i * GRAIN;
        if (len > GRAIN)
            len = GRAIN;
        cr_assert_eq(le64(m), i * 128, "marker lba of grain %llu",
                     (unsigned long long)i);
        cr_assert_leq((uint64_t)sector * SEC + 12 + csize, out_len);
        uLongf got = GRAIN;
        cr_assert_eq(uncompress(buf, &got, m + 12, csize), Z_OK);
        cr_assert_eq(got, len, "grain %llu inflates to %lu",
                     (unsigned long long)i, (unsigned long)got);
        cr_assert_eq(memcmp(buf, want + i * GRAIN, (size_t)len), 0,
                     "grain %llu data", (unsigned long long)i);
        uLongf zl = GRAIN + 1024;
        cr_assert_eq(compress2(buf, &zl, want + i * GRAIN, len,
                               Z_DEFAULT_COMPRESSION),
                     Z_OK);
        cr_assert_eq(zl, csize, "grain %llu: %llu bytes, compress2 %lu",
                     (unsigned long long)i, (unsigned long long)csize,
                     (unsigned long)zl);
        cr_assert_eq(memcmp(buf, m + 12, zl), 0, "grain %llu stream",
                     (unsigned long long)i);
        uint64_t end = (uint64_t)sector * SEC + 12 + csize;
        next = up(end, SEC);
        for (uint64_t b = end; b < next * SEC && b < out_len; b++)
            cr_assert_eq(out[b], 0, "grain %llu padding",
                         (unsigned long long)i);
        if (n < max)
            g[n] = (struct sgrain){sector, i * 128, csize};
        n++;
    }
    free(buf);
    return n;
}

/* Both directories' copies of every table agree (check_tables checks
 * them against a list; here the list is what the first copy says). */
static void check_table_copies(const uint8_t *out, uint64_t v)
{
    struct lay l = lay_of(v);
    uint32_t *gte = calloc(512 * l.gts, 4);
    for (uint64_t g = 0; g < l.grains; g++)
        gte[g] = le32(out + (21 + l.gds) * SEC + 4 * g);
    check_tables(out, v, gte);
    free(gte);
}

/* qemu-img convert -O vmdk -o subformat=streamOptimized of the writers.md
 * mid image (1 MiB + 1536, every third 64 KiB zero), measured: grains at
 * these sectors with these stream lengths, the zero grains (and the
 * zero partial last one) left out, the file ending 128 sectors past the
 * last grain's first. With -S 0 every grain is stored, zeros deflated to
 * 84 bytes and the last 1536 zero bytes to 20. */
Test(vmdk_convert, stream_as_qemu_writes_it)
{
    static const struct {
        uint64_t sparse_min, file;
        size_t n;
        uint64_t sector[17], csize[17];
    } cases[] = {
        {4096, 141312, 11,
         {128, 130, 132, 134, 136, 138, 140, 142, 144, 146, 148},
         {586, 586, 587, 586, 587, 586, 586, 586, 586, 586, 586}},
        {0, 144896, 17,
         {128, 130, 131, 133, 135, 136, 138, 140, 141, 143, 145, 146, 148,
          150, 151, 153, 155},
         {586, 84, 586, 587, 84, 586, 587, 84, 586, 586, 84, 586, 586, 84,
          586, 586, 20}},
    };
    const uint64_t v = MiB + 1536;
    uint8_t *in = rig_pattern((size_t)v, 3);
    for (size_t c = 0; c < 2; c++) {
        struct ct_output_params p = {.subformat = CT_SUB_STREAM_OPTIMIZED};
        struct rig r;
        struct sgrain g[17];
        rig_convert(&r, in, (size_t)v, CT_FMT_VMDK, cases[c].sparse_min, &p);
        cr_assert_eq(r.ret, G_OK, "%s", r.err.msg);
        cr_expect_eq(r.m.out_len, cases[c].file, "file %zu",
                     (size_t)r.m.out_len);
        check_header_as(r.m.out, v, true);
        check_descriptor_as(r.m.out, v, "4030201", "out.img",
                            "streamOptimized", "ide");
        check_table_copies(r.m.out, v);
        size_t n = check_stream_grains(r.m.out, r.m.out_len, v, in, g, 17);
        cr_assert_eq(n, cases[c].n, "%zu grains", n);
        for (size_t i = 0; i < n; i++) {
            cr_expect_eq(g[i].sector, cases[c].sector[i], "grain %zu", i);
            cr_expect_eq(g[i].csize, cases[c].csize[i], "grain %zu", i);
        }
        /* Past the last grain: nothing (a hole qemu fills with zeros). */
        uint64_t last_end = (g[n - 1].sector * SEC + 12 + g[n - 1].csize);
        for (uint64_t b = last_end; b < r.m.out_len; b++)
            cr_assert_eq(r.m.out[b], 0);
        struct g_error err;
        uint64_t got = 0;
        uint8_t *back = rig_read_back(&r, CT_FMT_VMDK, &got, &err);
        cr_assert(back, "read back: %s", err.msg);
        cr_expect_eq(got, v);
        cr_expect_eq(memcmp(back, in, (size_t)v), 0);
        free(back);
        rig_free(&r);
    }
    free(in);
}

/* Bytes deflate cannot shrink (xorshift). */
static uint8_t *noise(size_t n)
{
    uint8_t *p = malloc(n);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 32);
    }
    return p;
}

/* Measured on random grains: each takes 65562 bytes of stream (stored
 * blocks), 129 sectors with its marker; the file ends where the last one
 * does, past the 128 sectors qemu reserves. It stays within the host's
 * bound for the shape. */
Test(vmdk_convert, stream_incompressible_grains)
{
    const uint64_t v = 3 * GRAIN;
    uint8_t *in = noise((size_t)v);
    struct wt t;
    struct sgrain g[3];
    wt_open_as(&t, v, "out.vmdk", NULL, &STREAM_4K);
    cr_assert_eq(t.ret, G_OK, "%s", t.r.err.msg);
    wr(&t, in, v);
    uint64_t size = fin(&t);
    cr_expect_eq(size, 515u * SEC);
    cr_assert_eq(check_stream_grains(t.r.m.out, size, v, in, g, 3), 3u);
    for (size_t i = 0; i < 3; i++) {
        cr_expect_eq(g[i].sector, 128 + 129 * i);
        cr_expect_eq(g[i].csize, 65562u);
    }
    cr_expect_leq(size, output_bound_p(CT_FMT_VMDK, &STREAM_4K.p, v));
    check_reads_back(&t, in, v);
    wt_close(&t);
    free(in);
}

/* zero() leaves whole grains out, in one call or several; zeros inside a
 * grain with data are stored with it; a grain of written zeros is left
 * out when the output is sparse (any -S) and stored when it is dense
 * (-S 0), as qemu-img convert does. */
Test(vmdk_convert, stream_zero_runs)
{
    const uint64_t v = 7 * GRAIN;
    for (int dense = 0; dense < 2; dense++) {
        struct shape sh = STREAM_4K;
        sh.sparse_min = dense ? 0 : 1 * MiB;
        uint8_t *data = rig_pattern((size_t)v, 0);
        uint8_t *want = calloc(1, (size_t)v);
        uint8_t *zeros = calloc(1, GRAIN);
        struct wt t;
        wt_open_as(&t, v, "out.vmdk", NULL, &sh);
        cr_assert_eq(t.ret, G_OK);
        wr(&t, data, GRAIN);              /* grain 0: data */
        memcpy(want, data, GRAIN);
        zr(&t, GRAIN);                    /* grain 1: zero() */
        wr(&t, zeros, GRAIN);             /* grain 2: written zeros */
        zr(&t, 1000);                     /* grain 3: zeros, ... */
        wr(&t, data + 3 * GRAIN + 1000, 10); /* ... ten bytes, ... */
        memcpy(want + 3 * GRAIN + 1000, data + 3 * GRAIN + 1000, 10);
        zr(&t, GRAIN - 1010);             /* ... zeros */
        zr(&t, 100);                      /* grain 4: zero() in pieces */
        zr(&t, GRAIN - 100);
        wr(&t, zeros, 5000);              /* grain 5: zeros written, */
        zr(&t, GRAIN - 5000);             /* then zero() */
        wr(&t, data + 6 * GRAIN, GRAIN);  /* grain 6: data */
        memcpy(want + 6 * GRAIN, data + 6 * GRAIN, GRAIN);
        fin(&t);
        struct lay l = lay_of(v);
        const uint8_t *gt = t.r.m.out + (l.gd + l.gds) * SEC;
        const bool stored[7] = {true, false, dense, true, false, dense,
                                true};
        for (int i = 0; i < 7; i++)
            cr_expect_eq(le32(gt + 4 * i) != 0, stored[i],
                         "dense %d grain %d", dense, i);
        check_table_copies(t.r.m.out, v);
        check_stream_grains(t.r.m.out, t.r.m.out_len, v, want, NULL, 0);
        check_reads_back(&t, want, v);
        wt_close(&t);
        free(data);
        free(want);
        free(zeros);
    }
}

/* Grains straddling engine chunks, split writes and batch edges: any
 * split gives the same file, serial or with the worker deflating. */
Test(vmdk_convert, stream_splits_and_vcpus_give_the_same_file)
{
    const uint64_t v = SPAN + 77 * GRAIN + 1536; /* two tables, 3 batches+ */
    uint8_t *data = rig_pattern((size_t)v, 3);
    struct shape sh = STREAM_4K;
    struct wt a, b;
    wt_open_as(&a, v, "out.vmdk", NULL, &sh);
    cr_assert_eq(a.ret, G_OK);
    wr(&a, data, v);
    fin(&a);
    sh.two_vcpus = true;
    wt_open_as(&b, v, "out.vmdk", NULL, &sh);
    cr_assert_eq(b.ret, G_OK);
    wr_in_steps(&b, data, v);
    fin(&b);
    cr_assert_eq(a.r.m.out_len, b.r.m.out_len);
    cr_expect_eq(memcmp(a.r.m.out, b.r.m.out, a.r.m.out_len), 0);
    check_stream_grains(b.r.m.out, b.r.m.out_len, v, data, NULL, 0);
    check_reads_back(&b, data, v);
    wt_close(&a);
    wt_close(&b);
    free(data);
}

/* -c with streamOptimized is the same file; -c on monolithicSparse
 * stores plain grains exactly as without it, except that an all-zero
 * grain stays out whatever -S is (measured: -S 1M keeps a written zero
 * grain without -c, leaves it out with -c). */
Test(vmdk_convert, compress_flag)
{
    const uint64_t v = MiB + 1536;
    uint8_t *in = rig_pattern((size_t)v, 3);
    struct ct_output_params so = {.subformat = CT_SUB_STREAM_OPTIMIZED};
    struct ct_output_params soc = so, c = {.flags = CT_OUT_COMPRESS};
    soc.flags = CT_OUT_COMPRESS;
    struct rig a, b;
    rig_convert(&a, in, (size_t)v, CT_FMT_VMDK, 4096, &so);
    rig_convert(&b, in, (size_t)v, CT_FMT_VMDK, 4096, &soc);
    cr_assert(a.ret == G_OK && b.ret == G_OK);
    cr_assert_eq(a.m.out_len, b.m.out_len);
    cr_expect_eq(memcmp(a.m.out, b.m.out, a.m.out_len), 0);
    rig_free(&a);
    rig_free(&b);
    for (int s = 0; s < 2; s++) {
        uint64_t smin = s ? 0 : 4096;
        rig_convert(&a, in, (size_t)v, CT_FMT_VMDK, smin, NULL);
        rig_convert(&b, in, (size_t)v, CT_FMT_VMDK, smin, &c);
        cr_assert(a.ret == G_OK && b.ret == G_OK, "%s", b.err.msg);
        cr_assert_eq(a.m.out_len, b.m.out_len, "-S %llu",
                     (unsigned long long)smin);
        cr_expect_eq(memcmp(a.m.out, b.m.out, a.m.out_len), 0);
        rig_free(&a);
        rig_free(&b);
    }
    /* A grain of written zeros between data (what -S 1M writes). */
    struct shape sh = {.p = c, .sparse_min = MiB};
    uint8_t *zeros = calloc(1, GRAIN);
    struct wt t;
    wt_open_as(&t, 3 * GRAIN, "out.vmdk", NULL, &sh);
    cr_assert_eq(t.ret, G_OK);
    wr(&t, in, GRAIN);
    wr(&t, zeros, GRAIN);
    wr(&t, in + 2 * GRAIN, 100);
    zr(&t, GRAIN - 100);
    cr_expect_eq(fin(&t), (128 + 256) * SEC);
    uint32_t gte[512] = {128, 0, 256};
    check_header(t.r.m.out, 3 * GRAIN);
    check_tables(t.r.m.out, 3 * GRAIN, gte);
    uint8_t *want = calloc(1, 3 * GRAIN);
    memcpy(want, in, GRAIN);
    memcpy(want + 2 * GRAIN, in + 2 * GRAIN, 100);
    check_reads_back(&t, want, 3 * GRAIN);
    wt_close(&t);
    free(want);
    free(zeros);
    free(in);
}

/* adapter_type: ddb.adapterType, and 255 heads (so fewer cylinders) for
 * all but ide; nothing else changes (measured for each, at 1 MiB + 1536
 * and 1 GiB: lsilogic 130 cylinders, ide 2080). */
Test(vmdk_convert, adapter_types)
{
    static const struct {
        uint32_t adapter;
        const char *name;
    } as[] = {{CT_VMDK_IDE, "ide"},
              {CT_VMDK_BUSLOGIC, "buslogic"},
              {CT_VMDK_LSILOGIC, "lsilogic"},
              {CT_VMDK_LEGACY_ESX, "legacyESX"}};
    static const uint64_t vs[] = {MiB + 1536, GiB, TiB};
    uint8_t one[SEC] = {1};
    for (size_t i = 0; i < 4; i++)
        for (size_t k = 0; k < 3; k++)
            for (int stream = 0; stream < 2; stream++) {
                struct shape sh = {.p = {.adapter = as[i].adapter},
                                   .sparse_min = 4096};
                if (stream)
                    sh.p.subformat = CT_SUB_STREAM_OPTIMIZED;
                struct wt t;
                wt_open_as(&t, vs[k], "out.vmdk", NULL, &sh);
                cr_assert_eq(t.ret, G_OK, "%s", t.r.err.msg);
                wr(&t, one, SEC);
                zr(&t, vs[k] - SEC);
                fin(&t);
                check_header_as(t.r.m.out, vs[k], stream);
                check_descriptor_as(t.r.m.out, vs[k], "4030201", "out.vmdk",
                                    stream ? "streamOptimized"
                                           : "monolithicSparse",
                                    as[i].name);
                wt_close(&t);
            }
    /* The measured cylinder counts themselves. */
    struct shape lsi = {.p = {.adapter = CT_VMDK_LSILOGIC}};
    struct wt t;
    wt_open_as(&t, GiB, "out.vmdk", NULL, &lsi);
    zr(&t, GiB);
    fin(&t);
    cr_expect(strstr((const char *)t.r.m.out + SEC,
                     "ddb.geometry.cylinders = \"130\"\n"
                     "ddb.geometry.heads = \"255\"\n"));
    wt_close(&t);
}

/* Shapes the writer does not make are refused by name, before anything
 * is written. */
Test(vmdk_convert, other_shapes_are_refused)
{
    static const struct {
        struct ct_output_params p;
        const char *option;
    } bad[] = {
        {{.subformat = CT_SUB_FIXED}, "subformat"},
        {{.subformat = 7}, "subformat"},
        {{.adapter = 4}, "adapter_type"},
        {{.cluster_bits = 16}, "cluster_size"},
        {{.version = 3}, "compat"},
        {{.block_size = 1u << 20}, "block_size"},
        {{.flags = CT_OUT_FORCE_SIZE}, "force_size"},
        {{.flags = 1u << 7}, "flags"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct shape sh = {.p = bad[i].p};
        struct wt t;
        wt_open_as(&t, MiB, "out.vmdk", NULL, &sh);
        cr_expect_eq(t.ret, G_ENOTSUP, "case %zu", i);
        cr_expect(strstr(t.r.err.msg, "vmdk") &&
                      strstr(t.r.err.msg, bad[i].option),
                  "case %zu: %s", i, t.r.err.msg);
        cr_expect_eq(t.r.m.writes, 0u);
        wt_close(&t);
    }
}

/* The stream's memory is its two batches: 2 x 32 grains in, 2 x 32
 * compressed out, one compressor (serial), whatever the size. */
Test(vmdk_convert, stream_memory_does_not_grow)
{
    memory_flat(&STREAM_4K, 64 * (GRAIN + 129 * SEC) + 16384, 340u * 1024);
}

/* A grain whose 128 sectors would end past sector 2^32 cannot be listed
 * by a 32-bit entry (qemu fails that write): refused, nothing written. */
Test(vmdk_convert, stream_grain_past_the_entries_is_refused)
{
    uint8_t one[SEC] = {1};
    struct wt t;
    wt_open_as(&t, 2 * GRAIN, "out.vmdk", NULL, &STREAM_4K);
    cr_assert_eq(t.ret, G_OK);
    struct vmdk_w *s = t.w->priv;
    s->next_sector = (1ull << 32) - 127; /* as if the file were that long */
    wr(&t, one, SEC);
    zr(&t, GRAIN - SEC);
    uint64_t writes = t.r.m.writes, size = 0;
    cr_expect_eq(fmt_writer_finish(t.w, &size), G_ERANGE);
    cr_expect(strstr(t.r.err.msg, "vmdk") &&
                  strstr(t.r.err.msg, "4294967169"),
              "%s", t.r.err.msg);
    cr_expect_eq(t.r.m.writes, writes);
    wt_close(&t);
}
