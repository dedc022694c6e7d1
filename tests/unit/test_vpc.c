/* The vpc (VHD) reader over ct_mem, on images built here byte by byte. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_mem.h"
#include "extent_check.h"
#include "engine/engine.h"
#include "fmt/fmt.h"
#include "fmt/vpc.h"

#define BLK 4096u /* small blocks: one bitmap byte covers a block */

/* --- building images ---------------------------------------------------- */

static void be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = (uint8_t)v; }
static void be32(uint8_t *p, uint32_t v)
{
    be16(p, (uint16_t)(v >> 16));
    be16(p + 2, (uint16_t)v);
}
static void be64(uint8_t *p, uint64_t v)
{
    be32(p, (uint32_t)(v >> 32));
    be32(p + 4, (uint32_t)v);
}

static uint32_t cksum(const uint8_t *p, size_t len, size_t at)
{
    uint32_t s = 0;
    for (size_t i = 0; i < len; i++)
        if (i < at || i >= at + 4)
            s += p[i];
    return ~s;
}

/* Byte at virtual offset o of a disk written with `seed`: never zero. */
static uint8_t pat(uint64_t o, uint8_t seed)
{
    return (uint8_t)((o * 13 + (o >> 9) * 5 + seed) % 251 + 1);
}

struct vspec {
    uint32_t type;           /* 2 fixed, 3 dynamic, 4 differencing */
    uint16_t cyl;
    uint8_t heads, spt;      /* CHS */
    const char *app;         /* creator application (4 bytes) */
    uint64_t current_size;   /* 0: the CHS size */
    uint32_t block_size;     /* 0: BLK */
    uint32_t entries;        /* 0: enough for the size */
    uint64_t alloc;          /* bit i: block i allocated */
    uint64_t bm_custom;      /* bit i: block i's first bitmap byte is bm[i] */
    uint8_t bm[64];
    uint8_t seed;            /* data pattern; also the footer unique id */
    uint8_t parent_seed;     /* parent's unique id (differencing) */
    const char *loc_code;    /* parent locator platform code */
    const uint8_t *loc;
    size_t loc_len;
};

struct vimg {
    uint8_t *p;
    size_t len;
    size_t hdr, bat, loc, blocks; /* offsets, for corrupting */
};

static uint64_t chs_size(const struct vspec *s)
{
    return (uint64_t)s->cyl * s->heads * s->spt * 512;
}

static void put_footer(const struct vspec *s, uint8_t *f, uint64_t data_off)
{
    memset(f, 0, 512);
    memcpy(f, "conectix", 8);
    be32(f + 8, 2);
    be32(f + 12, 0x00010000);
    be64(f + 16, data_off);
    memcpy(f + 28, s->app ? s->app : "qemu", 4);
    memcpy(f + 36, "Wi2k", 4);
    be64(f + 40, s->current_size ? s->current_size : chs_size(s));
    be64(f + 48, s->current_size ? s->current_size : chs_size(s));
    be16(f + 56, s->cyl);
    f[58] = s->heads;
    f[59] = s->spt;
    be32(f + 60, s->type);
    memset(f + 68, s->seed, 16);
    be32(f + 64, cksum(f, 512, 64));
}

/* Recomputes every checksum after a test edited the image. */
static void reseal(struct vimg *v)
{
    be32(v->p + 64, cksum(v->p, 512, 64));
    if (v->len >= 1024 && memcmp(v->p + v->len - 512, "conectix", 8) == 0)
        be32(v->p + v->len - 512 + 64, cksum(v->p + v->len - 512, 512, 64));
    if (v->hdr)
        be32(v->p + v->hdr + 36, cksum(v->p + v->hdr, 1024, 36));
}

static struct vimg build(const struct vspec *s)
{
    struct vimg v = {0};
    uint64_t vsize = s->current_size ? s->current_size : chs_size(s);

    if (s->type == 2) {
        v.len = vsize + 512;
        v.p = calloc(1, v.len);
        for (uint64_t o = 0; o < vsize; o++)
            v.p[o] = pat(o, s->seed);
        put_footer(s, v.p + vsize, UINT64_MAX);
        return v;
    }
    uint32_t bs = s->block_size ? s->block_size : BLK;
    uint32_t entries = s->entries ? s->entries
                                  : (uint32_t)((vsize + bs - 1) / bs);
    size_t bat_len = ((size_t)entries * 4 + 511) & ~(size_t)511;
    size_t loc_len = (s->loc_len + 511) & ~(size_t)511;
    size_t bm = ((bs / 4096) + 511) & ~511u;
    unsigned nalloc = (unsigned)__builtin_popcountll(s->alloc);

    v.hdr = 512;
    v.bat = 1536;
    v.loc = v.bat + bat_len;
    v.blocks = v.loc + loc_len;
    v.len = v.blocks + (size_t)nalloc * (bm + bs) + 512;
    v.p = calloc(1, v.len);
    put_footer(s, v.p, v.hdr);
    memcpy(v.p + v.len - 512, v.p, 512);

    uint8_t *h = v.p + v.hdr;
    memcpy(h, "cxsparse", 8);
    be64(h + 8, UINT64_MAX);
    be64(h + 16, v.bat);
    be32(h + 24, 0x00010000);
    be32(h + 28, entries);
    be32(h + 32, bs);
    memset(h + 40, s->parent_seed, 16);
    if (s->loc_code) {
        memcpy(h + 576, s->loc_code, 4);
        be32(h + 576 + 4, (uint32_t)loc_len);
        be32(h + 576 + 8, (uint32_t)s->loc_len);
        be64(h + 576 + 16, v.loc);
        memcpy(v.p + v.loc, s->loc, s->loc_len);
    }
    be32(h + 36, cksum(h, 1024, 36));

    memset(v.p + v.bat, 0xff, bat_len);
    size_t at = v.blocks;
    for (uint32_t i = 0; i < entries && i < 64; i++) {
        if (!(s->alloc >> i & 1))
            continue;
        be32(v.p + v.bat + i * 4, (uint32_t)(at / 512));
        memset(v.p + at, 0xff, bm);
        if (s->bm_custom >> i & 1)
            v.p[at] = s->bm[i];
        for (uint32_t k = 0; k < bs; k++) {
            uint64_t o = (uint64_t)i * bs + k;
            v.p[at + bm + k] = o < vsize ? pat(o, s->seed) : 0x77;
        }
        at += bm + bs;
    }
    return v;
}

/* What a chain (top first) reads at o, by the spec. */
static uint8_t expect(const struct vspec *const *chain, unsigned n,
                      uint64_t o)
{
    const struct vspec *s = chain[0];
    uint64_t vsize = s->current_size ? s->current_size : chs_size(s);
    uint32_t bs = s->block_size ? s->block_size : BLK;
    if (o >= vsize)
        return 0;
    if (s->type == 2)
        return pat(o, s->seed);
    uint64_t b = o / bs;
    if (b < 64 && (s->alloc >> b & 1)) {
        uint8_t bm = (s->bm_custom >> b & 1) ? s->bm[b] : 0xff;
        unsigned sec = (unsigned)((o % bs) / 512);
        /* BLK blocks: the first bitmap byte covers all 8 sectors */
        if (sec >= 8 || (bm >> (7 - sec) & 1))
            return pat(o, s->seed);
    }
    if (s->type == 4 && n > 1)
        return expect(chain + 1, n - 1, o);
    return 0;
}

/* --- running the reader -------------------------------------------------- */

struct rig {
    struct ct_mem m;
    struct ct_ops ops;
    struct g_error err;
    struct arena heap, io;
    struct fmt_env env;
    void *hb, *ib;
    uint8_t *buf; /* 256 KiB in the I/O arena, for check_read */
    struct fmt_reader *r;
    int ret;
};

#define RIG_IO (1u << 20)

static void rig_init(struct rig *g, const struct vimg *img)
{
    struct window_args a = {512, 0, 0, 0, 0};
    memset(g, 0, sizeof *g);
    ct_mem_init(&g->m, img->p, img->len, CT_FMT_RAW, &a);
    g->ops = ct_mem_ops(&g->m);
    g->hb = calloc(1, 1 << 20);
    g->ib = calloc(1, RIG_IO);
    arena_init(&g->heap, g->hb, 1 << 20);
    arena_init(&g->io, g->ib, RIG_IO);
    g->buf = arena_alloc(&g->io, 256 << 10, 512);
    g->env = (struct fmt_env){&g->ops, &g->err, &g->heap,     &g->io,
                              NULL,    0,       NULL, FMT_REFS_OPEN};
}

static int rig_open(struct rig *g, uint32_t fmt)
{
    g->ret = fmt_open(&g->env, CT_HANDLE_INPUT, fmt, 0, &g->r);
    return g->ret;
}

static void rig_free(struct rig *g)
{
    ct_mem_free(&g->m);
    free(g->hb);
    free(g->ib);
}

/* Reads [off, off + len) through the reader (buffer in the I/O arena) and
 * compares with the chain's expected bytes. */
static void check_read(struct rig *g, const struct vspec *const *chain,
                       unsigned n, uint64_t off, uint64_t len)
{
    uint8_t *buf = g->buf;
    cr_assert(buf && len <= (256u << 10));
    memset(buf, 0xee, len);
    int ret = g->r->read(g->r, off, buf, len);
    cr_assert_eq(ret, G_OK, "read %llu+%llu: %s", (unsigned long long)off,
                 (unsigned long long)len, g->err.msg);
    for (uint64_t i = 0; i < len; i++)
        if (buf[i] != expect(chain, n, off + i))
            cr_assert_fail("read %llu+%llu: byte %llu is %u, want %u",
                           (unsigned long long)off, (unsigned long long)len,
                           (unsigned long long)(off + i), buf[i],
                           expect(chain, n, off + i));
    /* The same window through the extents the engine routes by (its
     * reads are not the read path's: the count is kept). */
    unsigned reads = g->m.reads;
    extent_check(g->r, &g->m, buf, 256u << 10, off, len);
    g->m.reads = reads;
}

/* Many windows: aligned, unaligned, across blocks, past the end. */
static void check_windows(struct rig *g, const struct vspec *const *chain,
                          unsigned n)
{
    static const uint64_t offs[] = {0, 1, 511, 512, 4095, 4096, 5000, 12288,
                                    20000, 40959, 40960, 50000};
    static const uint64_t lens[] = {1, 512, 1000, 4096, 8192, 40960, 65536};
    uint64_t vsize = g->r->vsize;
    for (size_t i = 0; i < sizeof offs / sizeof *offs; i++)
        for (size_t j = 0; j < sizeof lens / sizeof *lens; j++)
            if (offs[i] <= vsize + 8192)
                check_read(g, chain, n, offs[i], lens[j]);
}

static struct vspec dyn(uint64_t alloc, uint8_t seed)
{
    /* 2 x 4 x 10 sectors = 40960 bytes = 10 blocks of 4 KiB */
    return (struct vspec){.type = 3, .cyl = 2, .heads = 4, .spt = 10,
                          .alloc = alloc, .seed = seed};
}

static const uint8_t w2ru_base[] = {'.', 0, '\\', 0, 'b', 0, 'a', 0,
                                    's', 0, 'e', 0, '.', 0, 'v', 0,
                                    'h', 0, 'd', 0};

static struct vspec diff(uint64_t alloc, uint8_t seed, uint8_t parent)
{
    struct vspec s = dyn(alloc, seed);
    s.type = 4;
    s.parent_seed = parent;
    s.loc_code = "W2ru";
    s.loc = w2ru_base;
    s.loc_len = sizeof w2ru_base;
    return s;
}

/* --- valid images ------------------------------------------------------- */

Test(vpc, dynamic_probed_and_read)
{
    struct vspec s = dyn(0x2cd, 1); /* blocks 0,2,3,6,7,9 */
    const struct vspec *chain[] = {&s};
    struct vimg v = build(&s);
    struct rig g;
    rig_init(&g, &v);
    cr_assert_eq(rig_open(&g, CT_FMT_PROBE), G_OK, "%s", g.err.msg);
    cr_expect_str_eq(g.r->name, "vpc");
    cr_expect_eq(g.r->vsize, 40960);
    check_windows(&g, chain, 1);
    rig_free(&g);
    free(v.p);
}

Test(vpc, one_host_read_per_contiguous_run)
{
    /* 10 blocks all allocated and adjacent in the file, but each block's
     * bitmap sits between them: 10 data reads + 10 bitmaps + BAT. */
    struct vspec s = dyn(0x3ff, 2);
    const struct vspec *chain[] = {&s};
    struct vimg v = build(&s);
    struct rig g;
    rig_init(&g, &v);
    cr_assert_eq(rig_open(&g, CT_FMT_VPC), G_OK, "%s", g.err.msg);
    g.m.reads = 0;
    g.m.fail_read_at = 1000000; /* count reads */
    check_read(&g, chain, 1, 0, 40960);
    cr_expect_leq(g.m.reads, 21, "%u host reads", g.m.reads);
    rig_free(&g);
    free(v.p);
}

Test(vpc, bitmap_clear_sectors_read_zeros_in_dynamic_disk)
{
    struct vspec s = dyn(0x3ff, 3);
    s.bm_custom = 0x25;
    s.bm[0] = 0x0f; /* sectors 0-3 clear */
    s.bm[2] = 0xa5;
    s.bm[5] = 0x00;
    const struct vspec *chain[] = {&s};
    struct vimg v = build(&s);
    struct rig g;
    rig_init(&g, &v);
    cr_assert_eq(rig_open(&g, CT_FMT_VPC), G_OK, "%s", g.err.msg);
    check_windows(&g, chain, 1);
    rig_free(&g);
    free(v.p);
}

Test(vpc, two_mib_blocks)
{
    struct vspec s = {.type = 3, .cyl = 100, .heads = 4, .spt = 17,
                      .block_size = 2u << 20, .alloc = 0x1, .seed = 9};
    const struct vspec *chain[] = {&s};
    struct vimg v = build(&s);
    struct rig g;
    rig_init(&g, &v);
    cr_assert_eq(rig_open(&g, CT_FMT_VPC), G_OK, "%s", g.err.msg);
    cr_expect_eq(g.r->vsize, 100 * 4 * 17 * 512);
    check_read(&g, chain, 1, 0, 200000);
    check_read(&g, chain, 1, 3000000, 200000);
    check_read(&g, chain, 1, 2097152 - 1000, 4000);
    rig_free(&g);
    free(v.p);
}

Test(vpc, fixed_forced)
{
    struct vspec s = {.type = 2, .cyl = 2, .heads = 4, .spt = 10, .seed = 4};
    const struct vspec *chain[] = {&s};
    struct vimg v = build(&s);
    struct rig g;
    rig_init(&g, &v);
    cr_assert_eq(rig_open(&g, CT_FMT_VPC), G_OK, "%s", g.err.msg);
    cr_expect_eq(g.r->vsize, 40960);
    check_windows(&g, chain, 1);
    rig_free(&g);
    /* without -f the probe sees no magic at 0: raw, as qemu */
    rig_init(&g, &v);
    cr_assert_eq(rig_open(&g, CT_FMT_PROBE), G_OK, "%s", g.err.msg);
    cr_expect_str_eq(g.r->name, "raw");
    cr_expect_eq(g.r->vsize, 40960 + 512);
    rig_free(&g);
    free(v.p);
}

static uint64_t vsize_of(struct vspec s)
{
    struct vimg v = build(&s);
    struct rig g;
    rig_init(&g, &v);
    cr_assert_eq(rig_open(&g, CT_FMT_VPC), G_OK, "%s", g.err.msg);
    uint64_t n = g.r->vsize;
    rig_free(&g);
    free(v.p);
    return n;
}

Test(vpc, virtual_size_from_chs_or_current_size_as_qemu)
{
    struct vspec s = dyn(0, 1);
    s.current_size = 30000 * 512; /* footer says more than CHS */
    s.entries = 30000 * 512 / BLK;
    cr_expect_eq(vsize_of(s), 40960);         /* "qemu": CHS */
    s.app = "vpc ";
    cr_expect_eq(vsize_of(s), 40960);
    static const char *const by_size[] = {"qem2", "win ", "d2v ", "CTXS",
                                          "tap"};
    for (size_t i = 0; i < 5; i++) {
        s.app = by_size[i]; /* "tap" copies its NUL: "tap\0" */
        cr_expect_eq(vsize_of(s), 30000 * 512, "%s", by_size[i]);
    }
    s.app = "qem2";
    s.current_size = 30000 * 512 + 100; /* rounded down to sectors */
    cr_expect_eq(vsize_of(s), 30000 * 512);
    s.app = "qemu"; /* the maximum geometry means current_size */
    s.cyl = 65535;
    s.heads = 16;
    s.spt = 255;
    s.current_size = 30000 * 512;
    cr_expect_eq(vsize_of(s), 30000 * 512);
}

static void add_file(struct rig *g, const char *name, const struct vimg *v)
{
    ct_mem_add_file(&g->m, name, v->p, v->len);
}

Test(vpc, differencing_reads_parent)
{
    struct vspec base = dyn(0x3ff, 10);
    struct vspec top = diff(0x0c5, 20, 10); /* blocks 0,2,6,7 */
    top.bm_custom = 0x45;
    top.bm[0] = 0xf0;
    top.bm[2] = 0x5a;
    top.bm[6] = 0x00;
    const struct vspec *chain[] = {&top, &base};
    struct vimg vb = build(&base), vt = build(&top);
    struct rig g;
    rig_init(&g, &vt);
    add_file(&g, "./base.vhd", &vb);
    cr_assert_eq(rig_open(&g, CT_FMT_PROBE), G_OK, "%s", g.err.msg);
    check_windows(&g, chain, 2);
    rig_free(&g);
    free(vb.p);
    free(vt.p);
}

Test(vpc, three_level_chain_with_fixed_base)
{
    static const uint8_t mid_name[] = {'m', 0, 'i', 0, 'd', 0};
    struct vspec base = {.type = 2, .cyl = 2, .heads = 4, .spt = 10,
                         .seed = 30};
    struct vspec mid = diff(0x00f, 31, 30);
    struct vspec top = diff(0x300, 32, 31);
    top.loc = mid_name;
    top.loc_len = sizeof mid_name;
    mid.bm_custom = 0x2;
    mid.bm[1] = 0x81;
    const struct vspec *chain[] = {&top, &mid, &base};
    struct vimg vb = build(&base), vm = build(&mid), vt = build(&top);
    struct rig g;
    rig_init(&g, &vt);
    add_file(&g, "mid", &vm);
    add_file(&g, "./base.vhd", &vb);
    cr_assert_eq(rig_open(&g, CT_FMT_PROBE), G_OK, "%s", g.err.msg);
    check_windows(&g, chain, 3);
    rig_free(&g);
    free(vb.p);
    free(vm.p);
    free(vt.p);
}

Test(vpc, parent_shorter_and_longer_than_child)
{
    struct vspec small = dyn(0x3ff, 40);
    small.cyl = 1; /* 20480 bytes */
    struct vspec big = dyn(0x3ff, 41);
    big.cyl = 4; /* 81920 bytes */
    big.entries = 20;
    for (int k = 0; k < 2; k++) {
        struct vspec *base = k ? &big : &small;
        struct vspec top = diff(0x201, 42, base->seed);
        const struct vspec *chain[] = {&top, base};
        struct vimg vb = build(base), vt = build(&top);
        struct rig g;
        rig_init(&g, &vt);
        add_file(&g, "./base.vhd", &vb);
        cr_assert_eq(rig_open(&g, CT_FMT_VPC), G_OK, "%s", g.err.msg);
        cr_expect_eq(g.r->vsize, 40960);
        check_windows(&g, chain, 2);
        rig_free(&g);
        free(vb.p);
        free(vt.p);
    }
}

static void open_with_locator(const char *code, const void *loc, size_t len,
                              const char *file_name)
{
    struct vspec base = dyn(0x3ff, 50);
    struct vspec top = diff(0x001, 51, 50);
    top.loc_code = code;
    top.loc = loc;
    top.loc_len = len;
    const struct vspec *chain[] = {&top, &base};
    struct vimg vb = build(&base), vt = build(&top);
    struct rig g;
    rig_init(&g, &vt);
    add_file(&g, file_name, &vb);
    cr_assert_eq(rig_open(&g, CT_FMT_VPC), G_OK, "%s: %s", code, g.err.msg);
    check_read(&g, chain, 2, 0, 40960);
    rig_free(&g);
    free(vb.p);
    free(vt.p);
}

Test(vpc, locator_kinds)
{
    static const uint8_t w2ku[] = {'C', 0, ':', 0, '\\', 0, 'v', 0, 'm', 0,
                                   '\\', 0, 0xe9, 0, '.', 0, 'v', 0, 0, 0};
    open_with_locator("W2ku", w2ku, sizeof w2ku, "/vm/\xc3\xa9.v");
    static const char macx[] = "file://localhost/vm/a%20b.vhd";
    open_with_locator("MacX", macx, sizeof macx - 1, "/vm/a b.vhd");
    static const char macx2[] = "file:///x.vhd";
    open_with_locator("MacX", macx2, sizeof macx2 - 1, "/x.vhd");
    static const uint8_t rel[] = {'.', 0, '.', 0, '\\', 0, 'p', 0, 0, 0, 0,
                                  0};
    open_with_locator("W2ru", rel, sizeof rel, "../p");
}

/* --- malformed images: refused with one exact message -------------------- */

static void expect_refused(struct vimg *v, uint32_t fmt, int code,
                           const char *msg)
{
    struct rig g;
    rig_init(&g, v);
    cr_expect_eq(rig_open(&g, fmt), code, "got %d: %s", g.ret, g.err.msg);
    cr_expect_str_eq(g.err.msg, msg);
    rig_free(&g);
}

Test(vpc, refuses_bad_footers)
{
    struct vspec s = dyn(0x1, 1);
    struct vimg v = build(&s);
    char want[200];

    struct vimg tiny = {v.p, 100, 0, 0, 0, 0};
    expect_refused(&tiny, CT_FMT_VPC, G_ECORRUPT,
                   "vpc: file size 100 is too small for a VHD footer");

    uint8_t junk[2048] = {1};
    struct vimg j = {junk, sizeof junk, 0, 0, 0, 0};
    expect_refused(&j, CT_FMT_VPC, G_ECORRUPT,
                   "vpc: no 'conectix' footer at offset 0 or at the end "
                   "of the file");

    v.p[100] ^= 1; /* reserved byte: only the checksum notices */
    snprintf(want, sizeof want,
             "vpc: footer checksum 0x%x at offset 0 is wrong (computed "
             "0x%x)",
             cksum(v.p, 512, 64) + 1, cksum(v.p, 512, 64));
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT, want);
    v.p[100] ^= 1;

    be32(v.p + 12, 0x00020000);
    reseal(&v);
    expect_refused(&v, CT_FMT_PROBE, G_ENOTSUP,
                   "vpc: footer file format version 0x20000 not supported");
    be32(v.p + 12, 0x00010000);

    be32(v.p + 60, 5);
    reseal(&v);
    expect_refused(&v, CT_FMT_PROBE, G_ENOTSUP,
                   "vpc: disk type 5 not supported");
    be32(v.p + 60, 2);
    reseal(&v);
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT,
                   "vpc: disk type 2 (fixed) in the footer copy at offset 0 "
                   "(a fixed disk has its footer only at the end)");
    be32(v.p + 60, 3);

    memcpy(v.p + 28, "qem2", 4);
    be64(v.p + 48, 0xff000001ull * 512);
    reseal(&v);
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT,
                   "vpc: virtual size of 4278190081 sectors exceeds the "
                   "format's limit of 4278190080 sectors");
    free(v.p);
}

Test(vpc, refuses_bad_fixed_footers)
{
    struct vspec s = {.type = 2, .cyl = 2, .heads = 4, .spt = 10, .seed = 4};
    struct vimg v = build(&s);
    uint8_t *f = v.p + v.len - 512;

    be32(f + 60, 3);
    be32(f + 64, cksum(f, 512, 64));
    expect_refused(&v, CT_FMT_VPC, G_ECORRUPT,
                   "vpc: disk type 3 in the footer at the end of the file, "
                   "but no footer copy at offset 0");
    be32(f + 60, 2);
    be16(f + 56, 3); /* 3 x 4 x 10 sectors: more than the data */
    be32(f + 64, cksum(f, 512, 64));
    expect_refused(&v, CT_FMT_VPC, G_ECORRUPT,
                   "vpc: virtual size 61440 exceeds the 40960 bytes of data "
                   "of the fixed disk");
    free(v.p);
}

Test(vpc, refuses_bad_dynamic_headers)
{
    struct vspec s = dyn(0x1, 1);
    struct vimg v = build(&s);
    uint8_t *h = v.p + v.hdr;
    char want[200];

    be64(v.p + 16, v.len - 1000);
    reseal(&v);
    snprintf(want, sizeof want,
             "vpc: data_offset %zu: the dynamic disk header is past the end "
             "of the file",
             v.len - 1000);
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT, want);
    be64(v.p + 16, 512);
    reseal(&v);

    h[0] = 'X';
    reseal(&v);
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT,
                   "vpc: dynamic disk header at offset 512 has no "
                   "'cxsparse' cookie");
    h[0] = 'c';
    reseal(&v);

    h[800] = 1; /* reserved: only the checksum notices */
    snprintf(want, sizeof want,
             "vpc: dynamic disk header checksum 0x%x is wrong (computed "
             "0x%x)",
             cksum(h, 1024, 36) + 1, cksum(h, 1024, 36));
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT, want);
    h[800] = 0;

    be32(h + 24, 0x00020000);
    reseal(&v);
    expect_refused(&v, CT_FMT_PROBE, G_ENOTSUP,
                   "vpc: dynamic disk header version 0x20000 not supported");
    be32(h + 24, 0x00010000);

    be32(h + 32, 3000);
    reseal(&v);
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT,
                   "vpc: block_size 3000 is not a power of two >= 512");
    be32(h + 32, 256);
    reseal(&v);
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT,
                   "vpc: block_size 256 is not a power of two >= 512");
    be32(h + 32, 512u << 20);
    reseal(&v);
    expect_refused(&v, CT_FMT_PROBE, G_ENOTSUP,
                   "vpc: block_size 536870912 exceeds the limit 268435456");
    be32(h + 32, BLK);

    be32(h + 28, (1u << 26) + 1);
    reseal(&v);
    expect_refused(&v, CT_FMT_PROBE, G_ENOTSUP,
                   "vpc: max_table_entries 67108865 exceeds the limit "
                   "67108864");
    be32(h + 28, 9);
    reseal(&v);
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT,
                   "vpc: max_table_entries 9 x block_size 4096 is smaller "
                   "than the virtual size 40960");
    be32(h + 28, 1u << 20);
    reseal(&v);
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT,
                   "vpc: BAT at offset 1536 (4194304 bytes) is past the end "
                   "of the file");
    be32(h + 28, 10);
    be64(h + 16, UINT64_MAX - 8);
    reseal(&v);
    snprintf(want, sizeof want,
             "vpc: BAT at offset %llu (40 bytes) is past the end of the file",
             (unsigned long long)(UINT64_MAX - 8));
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT, want);
    free(v.p);
}

Test(vpc, refuses_bad_bat_entries)
{
    struct vspec s = dyn(0x1, 1);
    struct vimg v = build(&s);
    char want[200];

    be32(v.p + v.bat + 4 * 3, (uint32_t)(v.len / 512)); /* past EOF */
    snprintf(want, sizeof want,
             "vpc: BAT entry 3: block at offset %zu (4608 bytes) is past "
             "the end of the file",
             v.len & ~(size_t)511);
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT, want);
    be32(v.p + v.bat + 4 * 3, 0xfffffffe);
    snprintf(want, sizeof want,
             "vpc: BAT entry 3: block at offset %llu (4608 bytes) is past "
             "the end of the file",
             0xfffffffeull * 512);
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT, want);
    be32(v.p + v.bat + 4 * 3, 2); /* over the dynamic header */
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT,
                   "vpc: BAT entry 3: block at offset 1024 overlaps the "
                   "image metadata");
    be32(v.p + v.bat + 4 * 3, 0); /* over the footer copy */
    expect_refused(&v, CT_FMT_PROBE, G_ECORRUPT,
                   "vpc: BAT entry 3: block at offset 0 overlaps the image "
                   "metadata");
    free(v.p);
}

Test(vpc, refuses_bad_parent_locators)
{
    struct vspec base = dyn(0x3ff, 50);
    struct vspec top = diff(0x001, 51, 50);
    struct vimg vb = build(&base), vt = build(&top);
    uint8_t *loc = vt.p + vt.hdr + 576;
    struct rig g;
    char want[200];

    /* parent missing (or outside the allowed directories) */
    expect_refused(&vt, CT_FMT_PROBE, G_EIO,
                   "vpc: cannot open './base.vhd': not found or not allowed "
                   "(files an image refers to must be in an allowed "
                   "directory)");

    /* a parent whose unique id differs */
    rig_init(&g, &vt);
    struct vspec other = dyn(0x3ff, 99);
    struct vimg vo = build(&other);
    add_file(&g, "./base.vhd", &vo);
    cr_expect_eq(rig_open(&g, CT_FMT_PROBE), G_ECORRUPT);
    cr_expect_str_eq(g.err.msg,
                     "vpc: parent './base.vhd' has a unique id other than "
                     "the differencing disk's parent id");
    rig_free(&g);
    free(vo.p);

    be32(loc + 8, 8193);
    reseal(&vt);
    expect_refused(&vt, CT_FMT_PROBE, G_ECORRUPT,
                   "vpc: parent locator W2ru data_length 8193 exceeds the "
                   "limit 8192");
    be32(loc + 8, 20);
    be64(loc + 16, vt.len - 10);
    reseal(&vt);
    snprintf(want, sizeof want,
             "vpc: parent locator W2ru at offset %zu (20 bytes) is past "
             "the end of the file",
             vt.len - 10);
    expect_refused(&vt, CT_FMT_PROBE, G_ECORRUPT, want);
    be64(loc + 16, vt.loc);
    reseal(&vt);

    vt.p[vt.loc + 4] = 0x00; /* "\\" -> unpaired high surrogate */
    vt.p[vt.loc + 5] = 0xd8;
    snprintf(want, sizeof want,
             "vpc: parent locator W2ru at offset %zu is not a valid UTF-16 "
             "path",
             vt.loc);
    expect_refused(&vt, CT_FMT_PROBE, G_ECORRUPT, want);
    vt.p[vt.loc + 2] = 0; /* NUL inside */
    vt.p[vt.loc + 3] = 0;
    expect_refused(&vt, CT_FMT_PROBE, G_ECORRUPT, want);

    memcpy(loc, "Mac ", 4); /* only unsupported kinds */
    reseal(&vt);
    expect_refused(&vt, CT_FMT_PROBE, G_ENOTSUP,
                   "vpc: differencing disk has no W2ru, W2ku or MacX parent "
                   "locator");
    free(vb.p);
    free(vt.p);
}

Test(vpc, refuses_bad_macx_urls)
{
    static const char *const bad[] = {"http://x/y", "file://x%2", "file:/",
                                      "file:///a%00b"};
    for (size_t i = 0; i < 4; i++) {
        struct vspec top = diff(0x001, 51, 50);
        top.loc_code = "MacX";
        top.loc = (const uint8_t *)bad[i];
        top.loc_len = strlen(bad[i]) + (i == 3 ? 0 : 0);
        struct vimg vt = build(&top);
        char want[200];
        snprintf(want, sizeof want,
                 "vpc: parent locator MacX at offset %zu is not a valid "
                 "file URL",
                 vt.loc);
        expect_refused(&vt, CT_FMT_PROBE, G_ECORRUPT, want);
        free(vt.p);
    }
}

Test(vpc, parent_cycle_ends)
{
    /* a differencing disk naming itself: the host refuses the cycle; here
     * ct_mem hands out copies until the depth limit. Either way: no hang,
     * one error. */
    struct vspec top = diff(0x001, 60, 60);
    struct vimg vt = build(&top);
    struct rig g;
    rig_init(&g, &vt);
    add_file(&g, "./base.vhd", &vt);
    cr_expect_neq(rig_open(&g, CT_FMT_PROBE), G_OK);
    cr_expect(strstr(g.err.msg, "deeper than 16") ||
                  strstr(g.err.msg, "not allowed"),
              "%s", g.err.msg);
    rig_free(&g);
    free(vt.p);
}

Test(vpc, whole_dd_over_engine)
{
    /* The engine with the default chunking: dd of a differencing disk. */
    struct vspec base = dyn(0x3ff, 70);
    struct vspec top = diff(0x0f0, 71, 70);
    const struct vspec *chain[] = {&top, &base};
    struct vimg vb = build(&base), vt = build(&top);
    struct window_args a = {1000, 30, 3, 1, 1};
    struct ct_mem m;
    struct g_error err = {0};
    struct dd_mem mem = {calloc(1, 1 << 20), 1 << 20, calloc(1, 1 << 20),
                         1 << 20, NULL};
    struct dd_config cfg = {
        .in_format = CT_FMT_PROBE, .out_format = CT_FMT_RAW, .args = a};
    ct_mem_init(&m, vt.p, vt.len, CT_FMT_RAW, &a);
    ct_mem_add_file(&m, "./base.vhd", vb.p, vb.len);
    struct ct_ops ops = ct_mem_ops(&m);
    cr_assert_eq(dd_run(&cfg, &ops, &mem, &err), G_OK, "%s", err.msg);
    cr_assert_eq(m.out_len, 27136); /* 27000 rounded up to 512 */
    for (uint64_t i = 0; i < 27136; i++)
        cr_assert_eq(m.out[i], i < 27000 ? expect(chain, 2, 3000 + i) : 0,
                     "byte %llu", (unsigned long long)i);
    ct_mem_free(&m);
    free(mem.heap);
    free(mem.io);
    free(vb.p);
    free(vt.p);
}
