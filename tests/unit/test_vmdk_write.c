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

#include "fmt/vmdk.h"
#include "output_bound.h"
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
    struct fmt_writer *w;
    int ret;
};

#define WT_HEAP (1u << 20)
#define WT_IO (64u << 20) /* calloc'd: untouched pages cost nothing */

/* cid: the entropy's first four bytes (NULL: 1, 2, 3, 4 like the rest). */
static void wt_open_named(struct wt *t, uint64_t vsize, const char *name,
                          const uint8_t *cid)
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
        .ops = &t->ops, .err = &t->r.err, .heap = &t->heap, .io = &t->io};
    t->opts = (struct fmt_write_opts){.unix_time = 1700000000,
                                      .entropy = t->r.entropy,
                                      .out_name = name,
                                      .out_name_len = (uint32_t)strlen(name)};
    t->ret = fmt_writer_open(&t->env, CT_FMT_VMDK, vsize, &t->opts, &t->w);
    if (t->ret == G_OK)
        cr_assert_eq(t->ops.begin_output(t->ops.ctx, CT_FMT_VMDK, vsize),
                     CT_OK);
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

/* Every header field of writers.md 3.1. */
static void check_header(const uint8_t *h, uint64_t v)
{
    struct lay l = lay_of(v);
    cr_expect_eq(memcmp(h, "KDMV", 4), 0);
    cr_expect_eq(le32(h + 4), 1u, "version");
    cr_expect_eq(le32(h + 8), 3u, "flags");
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
    cr_expect_eq(h[77] | h[78], 0, "compressAlgorithm");
    for (unsigned i = 79; i < SEC; i++)
        cr_assert_eq(h[i], 0, "header pad byte %u", i);
}

/* writers.md 3.3, with the CID the test's entropy gives. */
static void check_descriptor(const uint8_t *out, uint64_t v, const char *cid,
                             const char *name)
{
    char want[2048];
    int n = snprintf(want, sizeof want,
                     "# Disk DescriptorFile\nversion=1\nCID=%s\n"
                     "parentCID=ffffffff\ncreateType=\"monolithicSparse\"\n"
                     "\n# Extent description\nRW %llu SPARSE \"%s\"\n\n"
                     "# The Disk Data Base\n#DDB\n\n"
                     "ddb.virtualHWVersion = \"4\"\n"
                     "ddb.geometry.cylinders = \"%llu\"\n"
                     "ddb.geometry.heads = \"16\"\n"
                     "ddb.geometry.sectors = \"63\"\n"
                     "ddb.adapterType = \"ide\"\n"
                     "ddb.toolsVersion = \"2147483647\"\n",
                     cid, (unsigned long long)(v / SEC), name,
                     (unsigned long long)(v / (16 * 63 * SEC)));
    const uint8_t *d = out + SEC;
    cr_expect_eq(memcmp(d, want, (size_t)n), 0, "descriptor:\n%.*s\nwant:\n%s",
                 n, (const char *)d, want);
    for (unsigned i = (unsigned)n; i < 20 * SEC; i++)
        cr_assert_eq(d[i], 0, "descriptor padding byte %u", i);
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
    static const uint64_t steps[] = {1, 511, 1000, GRAIN - 1, 3, 70000,
                                     4 * MiB + 17};
    for (unsigned i = 0; b.w->pos < v; i++) {
        uint64_t n = steps[i % (sizeof steps / sizeof steps[0])];
        if (n > v - b.w->pos)
            n = v - b.w->pos;
        wr(&b, data + b.w->pos, n);
    }
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
 * bytes for 512 bytes, 1 GiB and the cap. */
Test(vmdk_write, memory_does_not_grow)
{
    static const uint64_t vs[] = {SEC, GiB, TiB, OUTPUT_VMDK_MAX_VSIZE};
    uint64_t heap0 = 0, io0 = 0;
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        struct wt t;
        wt_open(&t, vs[i]);
        cr_assert_eq(t.ret, G_OK);
        if (i == 0) {
            heap0 = t.heap.used;
            io0 = t.io.used;
            cr_expect_leq(io0, 16384u, "I/O bytes %llu",
                          (unsigned long long)io0);
            cr_expect_leq(heap0, 1024u, "heap bytes %llu",
                          (unsigned long long)heap0);
        }
        cr_expect_eq(t.heap.used, heap0);
        cr_expect_eq(t.io.used, io0);
        wt_close(&t);
    }
}
