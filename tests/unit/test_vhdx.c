/* The vhdx reader over ct_mem, on images built here from the spec. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_mem.h"
#include "extent_check.h"
#include "engine/engine.h"
#include "fmt/crc32c.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)

/* ---- a small vhdx builder (layout as tests/gen/malformed_vhdx.py) ---- */

static const uint8_t GUID_BAT[16] = {0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6,
                                     0x00, 0x42, 0x9D, 0x64, 0x11, 0x5E,
                                     0x9B, 0xFD, 0x4A, 0x08};
static const uint8_t GUID_META[16] = {0x06, 0xA2, 0x7C, 0x8B, 0x90, 0x47,
                                      0x9A, 0x4B, 0xB8, 0xFE, 0x57, 0x5F,
                                      0x05, 0x0F, 0x88, 0x6E};
static const uint8_t GUID_FP[16] = {0x37, 0x67, 0xA1, 0xCA, 0x36, 0xFA,
                                    0x43, 0x4D, 0xB3, 0xB6, 0x33, 0xF0,
                                    0xAA, 0x44, 0xE7, 0x6B};
static const uint8_t GUID_VSIZE[16] = {0x24, 0x42, 0xA5, 0x2F, 0x1B, 0xCD,
                                       0x76, 0x48, 0xB2, 0x11, 0x5D, 0xBE,
                                       0xD8, 0x3B, 0xF4, 0xB8};
static const uint8_t GUID_P83[16] = {0xAB, 0x12, 0xCA, 0xBE, 0xE6, 0xB2,
                                     0x23, 0x45, 0x93, 0xEF, 0xC3, 0x09,
                                     0xE0, 0x00, 0xC7, 0x46};
static const uint8_t GUID_LSS[16] = {0x1D, 0xBF, 0x41, 0x81, 0x6F, 0xA9,
                                     0x09, 0x47, 0xBA, 0x47, 0xF2, 0x33,
                                     0xA8, 0xFA, 0xAB, 0x5F};
static const uint8_t GUID_PSS[16] = {0xC7, 0x48, 0xA3, 0xCD, 0x5D, 0x44,
                                     0x71, 0x44, 0x9C, 0xC9, 0xE9, 0x88,
                                     0x52, 0x51, 0xC5, 0x56};
static const uint8_t GUID_PARENT[16] = {0x2D, 0x5F, 0xD3, 0xA8, 0x0B, 0xB3,
                                        0x4D, 0x45, 0xAB, 0xF7, 0xD3, 0xD8,
                                        0x48, 0x34, 0xAB, 0x0C};
static const uint8_t GUID_LOC[16] = {0xB7, 0xEF, 0x4A, 0xB0, 0x9E, 0xD1,
                                     0x81, 0x4A, 0xB7, 0x89, 0x25, 0xB8,
                                     0xE9, 0x44, 0x59, 0x13};

static void put16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}
static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static void fix_crc(uint8_t *p, size_t len)
{
    put32(p + 4, 0);
    put32(p + 4, crc32c_update(0, p, len));
}

#define MAXBLK 16
struct img {
    uint64_t vsize;
    uint32_t block_size, lss;
    int state[MAXBLK];     /* -1: untouched (NOT_PRESENT, offset 0) */
    uint8_t fill[MAXBLK];  /* data blocks are memset to fill */
    const uint8_t *bitmap[MAXBLK]; /* partially present: sector bitmap */
    const char *parent;    /* relative_path, NULL: not differencing */
    uint8_t dwg[16];       /* data write GUID */
    uint8_t link[16];      /* parent_linkage GUID */
    uint8_t log_guid[16];
    bool log_entry;        /* write a "loge" entry with log_guid */
    /* built */
    uint8_t *buf;
    size_t len;
};

static void img_init(struct img *m, uint64_t vsize)
{
    memset(m, 0, sizeof *m);
    m->vsize = vsize;
    m->block_size = MiB;
    m->lss = 512;
    for (int i = 0; i < MAXBLK; i++)
        m->state[i] = -1;
    memset(m->dwg, 0xd1, 16);
}

static uint64_t chunk_ratio(const struct img *m)
{
    return (8 * MiB * m->lss) / m->block_size;
}

static uint64_t bat_index(const struct img *m, uint64_t b)
{
    return b + b / chunk_ratio(m);
}

static size_t utf16(uint8_t *dst, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        put16(dst + 2 * i, (uint8_t)s[i]);
    return 2 * n;
}

static void guid_text(char *s, const uint8_t *g)
{
    sprintf(s,
            "{%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X}",
            (unsigned)(g[0] | g[1] << 8 | g[2] << 16 | (unsigned)g[3] << 24),
            (unsigned)(g[4] | g[5] << 8), (unsigned)(g[6] | g[7] << 8), g[8],
            g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
}

static size_t locator(const struct img *m, uint8_t *p)
{
    const char *keys[2] = {"parent_linkage", "relative_path"};
    char link[40];
    const char *vals[2] = {link, m->parent};
    size_t o = 20 + 2 * 12;
    guid_text(link, m->link);
    memcpy(p, GUID_LOC, 16);
    put16(p + 18, 2);
    for (int i = 0; i < 2; i++) {
        uint8_t *e = p + 20 + 12 * i;
        size_t kl = utf16(p + o, keys[i]);
        put32(e, (uint32_t)o);
        put16(e + 8, (uint16_t)kl);
        o += kl;
        size_t vl = utf16(p + o, vals[i]);
        put32(e + 4, (uint32_t)o);
        put16(e + 10, (uint16_t)vl);
        o += vl;
    }
    return o;
}

static void img_build(struct img *m)
{
    uint64_t nblocks = (m->vsize + m->block_size - 1) / m->block_size;
    uint64_t cr = chunk_ratio(m);
    size_t cap = 5 * MiB + (MAXBLK + 1) * (size_t)m->block_size;
    uint8_t *f = calloc(1, cap);
    size_t end = 4 * MiB;
    cr_assert(nblocks <= MAXBLK);

    memcpy(f, "vhdxfile", 8);
    for (int i = 1; i <= 2; i++) {
        uint8_t *h = f + i * 64 * KiB;
        memcpy(h, "head", 4);
        put64(h + 8, (uint64_t)i);
        memcpy(h + 32, m->dwg, 16);
        memcpy(h + 48, m->log_guid, 16);
        put16(h + 66, 1);
        put32(h + 68, MiB);
        put64(h + 72, MiB);
        fix_crc(h, 4096);
    }
    for (int i = 0; i < 2; i++) {
        uint8_t *t = f + (3 + i) * 64 * KiB;
        memcpy(t, "regi", 4);
        put32(t + 8, 2);
        memcpy(t + 16, GUID_BAT, 16);
        put64(t + 32, 2 * MiB);
        put32(t + 40, MiB);
        put32(t + 44, 1);
        memcpy(t + 48, GUID_META, 16);
        put64(t + 64, 3 * MiB);
        put32(t + 72, MiB);
        put32(t + 76, 1);
        fix_crc(t, 64 * KiB);
    }
    if (m->log_entry) {
        uint8_t *e = f + MiB;
        memcpy(e, "loge", 4);
        put32(e + 8, 4096);
        memcpy(e + 32, m->log_guid, 16);
        fix_crc(e, 4096);
    }
    /* metadata: table, then items at +64 KiB */
    uint8_t *md = f + 3 * MiB, *it = md + 64 * KiB;
    const uint8_t *ids[6] = {GUID_FP, GUID_VSIZE, GUID_P83, GUID_LSS,
                             GUID_PSS, GUID_PARENT};
    uint8_t data[6][512] = {{0}};
    size_t lens[6] = {8, 8, 16, 4, 4, 0};
    put32(data[0], m->block_size);
    put32(data[0] + 4, m->parent ? 2 : 0);
    put64(data[1], m->vsize);
    put32(data[3], m->lss);
    put32(data[4], 4096);
    if (m->parent)
        lens[5] = locator(m, data[5]);
    memcpy(md, "metadata", 8);
    put16(md + 10, m->parent ? 6 : 5);
    for (int i = 0; i < (m->parent ? 6 : 5); i++) {
        uint8_t *e = md + 32 + 32 * i;
        memcpy(e, ids[i], 16);
        put32(e + 16, (uint32_t)(it - md));
        put32(e + 20, (uint32_t)lens[i]);
        put32(e + 24, 4);
        memcpy(it, data[i], lens[i]);
        it += 4096;
    }
    /* sector bitmaps (one chunk is enough here), then payload blocks */
    uint8_t *bat = f + 2 * MiB;
    for (uint64_t b = 0; b < nblocks; b++) {
        if (!m->bitmap[b])
            continue;
        uint64_t sb = (b / cr) * (cr + 1) + cr;
        if (!(bat[8 * sb] & 7)) {
            put64(bat + 8 * sb, end | 6);
            end += MiB;
        }
        uint64_t per = m->block_size / m->lss / 8;
        uint64_t sboff = (bat[8 * sb + 2] >> 4 | (uint64_t)bat[8 * sb + 3] << 4 |
                          (uint64_t)bat[8 * sb + 4] << 12) << 20;
        memcpy(f + sboff + (b % cr) * per, m->bitmap[b], per);
    }
    for (uint64_t b = 0; b < nblocks; b++) {
        if (m->state[b] < 0)
            continue;
        uint64_t off = 0;
        if (m->state[b] == 6 || m->state[b] == 7) {
            off = end;
            memset(f + end, m->fill[b], m->block_size);
            end += m->block_size;
        }
        put64(bat + 8 * bat_index(m, b), off | (uint64_t)m->state[b]);
    }
    m->buf = f;
    m->len = end;
}

/* ---- running dd over ct_mem ---- */

struct run {
    struct ct_mem m;
    struct g_error err;
    int ret;
};

static struct window_args ALL = {512, 0, 0, 0, 0};

static void run_dd_once(struct run *r, const struct img *m,
                        struct window_args a, const struct img *parent,
                        const char *pname, bool no_kernel)
{
    size_t io = 16 * MiB;
    struct dd_mem mem = {calloc(1, 1 << 20), 1 << 20, calloc(1, io), io, NULL};
    struct dd_config cfg = {
        .in_format = CT_FMT_PROBE, .out_format = CT_FMT_RAW, .args = a};
    memset(&r->err, 0, sizeof r->err);
    ct_mem_init(&r->m, m->buf, m->len, CT_FMT_RAW, &a);
    if (parent)
        ct_mem_add_file(&r->m, pname, parent->buf, parent->len);
    r->m.no_kernel = no_kernel;
    struct ct_ops ops = ct_mem_ops(&r->m);
    r->ret = dd_run(&cfg, &ops, &mem, &r->err);
    free(mem.heap);
    free(mem.io);
}

/* dd through the engine, and again through the guest's own path (no host
 * copies): both must give the same result, message and bytes. r holds
 * the first run. */
static void run_dd(struct run *r, const struct img *m, struct window_args a,
                   const struct img *parent, const char *pname)
{
    struct run g;
    run_dd_once(r, m, a, parent, pname, false);
    run_dd_once(&g, m, a, parent, pname, true);
    expect_same_dd(r->ret, r->err.msg, &r->m, g.ret, g.err.msg, &g.m);
    ct_mem_free(&g.m);
}

static void expect_err(const struct img *m, const char *msg)
{
    struct run r;
    run_dd(&r, m, ALL, NULL, NULL);
    cr_expect_neq(r.ret, G_OK);
    cr_expect_str_eq(r.err.msg, msg);
    ct_mem_free(&r.m);
}

/* Output [start, end) equals want[start, end), zero-padded to 512. */
static void expect_out(const struct run *r, const uint8_t *want,
                       uint64_t start, uint64_t end)
{
    uint64_t n = (end - start + 511) & ~511ull;
    cr_assert_eq(r->ret, G_OK, "dd failed: %s", r->err.msg);
    cr_assert_eq(r->m.out_len, n, "output %zu bytes, want %llu",
                 r->m.out_len, (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        uint8_t w = start + i < end ? want[start + i] : 0;
        if (r->m.out[i] != w)
            cr_assert_fail("byte %llu: got %u want %u",
                           (unsigned long long)(start + i), r->m.out[i], w);
    }
}

/* 3.5 MiB dynamic: block 0 data, 1 absent, 2 zero, 3 data (half used). */
static void sample(struct img *m, uint8_t *want)
{
    img_init(m, 3 * MiB + 512 * KiB);
    m->state[0] = 6;
    m->fill[0] = 0x11;
    m->state[2] = 2;
    m->state[3] = 6;
    m->fill[3] = 0x44;
    img_build(m);
    memset(want, 0, 4 * MiB);
    memset(want, 0x11, MiB);
    memset(want + 3 * MiB, 0x44, 512 * KiB);
}

Test(vhdx, dynamic_whole_and_windows)
{
    static uint8_t want[4 * MiB];
    struct img m;
    sample(&m, want);
    static const struct window_args wins[] = {
        {512, 0, 0, 0, 0},
        {1000, 3000, 1000, 1, 1},      /* crosses block 0 -> 1 -> 2 -> 3 */
        {3, 349526, 349525, 1, 1},     /* inside block 0 at an odd offset */
        {65536, 0, 47, 0, 1},          /* starts in block 2 (zero) */
    };
    for (size_t i = 0; i < sizeof wins / sizeof *wins; i++) {
        struct run r;
        struct window w = {0};
        cr_assert(window_compute(m.vsize, &wins[i], &w));
        run_dd(&r, &m, wins[i], NULL, NULL);
        expect_out(&r, want, w.start, w.end);
        ct_mem_free(&r.m);
    }
    free(m.buf);
}

Test(vhdx, contiguous_blocks_are_one_host_read)
{
    struct img m;
    struct run r;
    img_init(&m, 4 * MiB);
    for (int b = 0; b < 4; b++) {
        m.state[b] = 6;
        m.fill[b] = (uint8_t)(0x20 + b);
    }
    img_build(&m);
    run_dd(&r, &m, ALL, NULL, NULL);
    cr_assert_eq(r.ret, G_OK, "%s", r.err.msg);
    for (int b = 0; b < 4; b++)
        cr_expect_eq(r.m.out[b * MiB + 5], 0x20 + b);
    /* probe (head and tail) + identifier + 2 headers + region table +
     * metadata table + 5 items + BAT page; the data is one host copy */
    cr_expect_leq(r.m.reads, 14, "%u reads", r.m.reads);
    cr_expect_eq(r.m.copies, 1);
    ct_mem_free(&r.m);
    free(m.buf);
}

Test(vhdx, zero_undefined_unmapped_read_zeros)
{
    struct img m;
    struct run r;
    img_init(&m, 4 * MiB);
    m.state[0] = 1;
    m.state[1] = 2;
    m.state[2] = 3;
    m.state[3] = 5; /* the 0.95 draft's "unmapped" */
    img_build(&m);
    run_dd(&r, &m, ALL, NULL, NULL);
    static uint8_t zero[4 * MiB];
    expect_out(&r, zero, 0, 4 * MiB);
    ct_mem_free(&r.m);
    free(m.buf);
}

Test(vhdx, bat_beyond_one_cached_page)
{
    /* 10 GiB with 1 MiB blocks: the BAT has more than 8192 entries, so
     * reading block 10000 loads a second BAT page. */
    struct img m;
    struct run r;
    img_init(&m, 16 * MiB);
    m.state[15] = 6;
    m.fill[15] = 0x5a;
    img_build(&m);
    /* move block 15's BAT entry to block 10000 and grow the disk */
    uint64_t cr = chunk_ratio(&m);
    uint8_t *bat = m.buf + 2 * MiB;
    memcpy(bat + 8 * (10000 + 10000 / cr), bat + 8 * bat_index(&m, 15), 8);
    memset(bat + 8 * bat_index(&m, 15), 0, 8);
    uint8_t *vs = m.buf + 3 * MiB + 64 * KiB + 4096;
    put64(vs, 10 * 1024 * MiB);
    struct window_args a = {MiB, 10002, 9999, 1, 1};
    run_dd(&r, &m, a, NULL, NULL);
    cr_assert_eq(r.ret, G_OK, "%s", r.err.msg);
    cr_assert_eq(r.m.out_len, 3 * MiB);
    cr_expect_eq(r.m.out[0], 0);
    cr_expect_eq(r.m.out[MiB], 0x5a);
    cr_expect_eq(r.m.out[2 * MiB - 1], 0x5a);
    cr_expect_eq(r.m.out[2 * MiB], 0);
    ct_mem_free(&r.m);
    free(m.buf);
}

/* A differencing child over a 2 MiB parent: block 0 partially present
 * (sectors 1, 2 and 100..299 here), block 1 absent, block 2 data. */
Test(vhdx, differencing_with_sector_bitmap)
{
    struct img p, c;
    struct run r;
    static uint8_t bm[MiB / 512 / 8], want[4 * MiB];
    img_init(&p, 2 * MiB);
    p.state[0] = 6;
    p.fill[0] = 0xaa;
    p.state[1] = 6;
    p.fill[1] = 0xbb;
    memset(p.dwg, 0x42, 16);
    img_build(&p);
    img_init(&c, 3 * MiB + 4096); /* longer than the parent */
    c.parent = "base.vhdx";
    memcpy(c.link, p.dwg, 16);
    c.state[0] = 7;
    c.fill[0] = 0xcc;
    c.state[2] = 6;
    c.fill[2] = 0xdd;
    for (int s = 0; s < 2048; s++)
        if (s == 1 || s == 2 || (s >= 100 && s < 300))
            bm[s / 8] |= (uint8_t)(1 << (s % 8));
    c.bitmap[0] = bm;
    img_build(&c);

    memset(want, 0xaa, MiB);
    memset(want + 512, 0xcc, 1024);
    memset(want + 100 * 512, 0xcc, 200 * 512);
    memset(want + MiB, 0xbb, MiB);
    memset(want + 2 * MiB, 0xdd, MiB);
    memset(want + 3 * MiB, 0, 4096); /* block 3 of the child: absent */
    static const struct window_args wins[] = {
        {512, 0, 0, 0, 0},
        {7, 100000, 70, 1, 1}, /* starts inside sector 1 */
    };
    for (size_t i = 0; i < 2; i++) {
        struct window w = {0};
        cr_assert(window_compute(c.vsize, &wins[i], &w));
        run_dd(&r, &c, wins[i], &p, "base.vhdx");
        expect_out(&r, want, w.start, w.end);
        ct_mem_free(&r.m);
    }
    free(p.buf);
    free(c.buf);
}

Test(vhdx, differencing_parent_errors)
{
    struct img p, c;
    struct run r;
    img_init(&p, MiB);
    img_build(&p);
    img_init(&c, MiB);
    c.parent = "base.vhdx";
    memset(c.link, 0x99, 16);
    img_build(&c);
    run_dd(&r, &c, ALL, &p, "base.vhdx");
    cr_expect_str_eq(r.err.msg,
                     "vhdx: parent data write GUID "
                     "{D1D1D1D1-D1D1-D1D1-D1D1-D1D1D1D1D1D1} does not match "
                     "parent_linkage {99999999-9999-9999-9999-999999999999}");
    ct_mem_free(&r.m);
    run_dd(&r, &c, ALL, &p, "other.vhdx");
    cr_expect_str_eq(r.err.msg,
                     "vhdx: cannot open 'base.vhdx': not found or not "
                     "allowed (files an image refers to must be in an "
                     "allowed directory)");
    ct_mem_free(&r.m);
    free(p.buf);
    free(c.buf);
}

/* ---- malformed images: each refused with its exact message ---- */

static void good(struct img *m)
{
    img_init(m, 2 * MiB);
    m->state[0] = 6;
    m->fill[0] = 0x11;
    img_build(m);
}

Test(vhdx_bad, header_checksums)
{
    struct img m;
    good(&m);
    m.buf[64 * KiB + 20] ^= 1;
    m.buf[128 * KiB + 20] ^= 1;
    expect_err(&m, "vhdx: no valid header (bad signature or checksum in "
                   "both copies)");
    free(m.buf);
}

Test(vhdx_bad, one_bad_header_uses_the_other)
{
    struct img m;
    struct run r;
    good(&m);
    m.buf[128 * KiB + 20] ^= 1; /* header 2 (higher sequence) broken */
    run_dd(&r, &m, ALL, NULL, NULL);
    cr_expect_eq(r.ret, G_OK, "%s", r.err.msg);
    ct_mem_free(&r.m);
    free(m.buf);
}

Test(vhdx_bad, header_version)
{
    struct img m;
    good(&m);
    for (int i = 1; i <= 2; i++) {
        put16(m.buf + i * 64 * KiB + 66, 2);
        fix_crc(m.buf + i * 64 * KiB, 4096);
    }
    expect_err(&m, "vhdx: header version 2 not supported (expected 1)");
    free(m.buf);
}

Test(vhdx_bad, truncated)
{
    struct img m;
    good(&m);
    m.len = 100 * KiB;
    expect_err(&m, "vhdx: header 2 at offset 131072 (4096 bytes) is past "
                   "the end of the file");
    free(m.buf);
}

Test(vhdx_bad, region_table_checksum)
{
    struct img m;
    good(&m);
    m.buf[192 * KiB + 1000] = 1;
    char want[128];
    sprintf(want, "vhdx: region table checksum 0x%x does not match the "
                  "contents",
            (unsigned)(m.buf[192 * KiB + 4] | m.buf[192 * KiB + 5] << 8 |
                       m.buf[192 * KiB + 6] << 16 |
                       (unsigned)m.buf[192 * KiB + 7] << 24));
    expect_err(&m, want);
    free(m.buf);
}

Test(vhdx_bad, region_entry_count)
{
    struct img m;
    good(&m);
    put32(m.buf + 192 * KiB + 8, 2048);
    fix_crc(m.buf + 192 * KiB, 64 * KiB);
    expect_err(&m, "vhdx: region table entry_count 2048 > 2047");
    free(m.buf);
}

Test(vhdx_bad, required_unknown_region)
{
    struct img m;
    good(&m);
    m.buf[192 * KiB + 16] ^= 0xff; /* BAT GUID -> unknown, required */
    fix_crc(m.buf + 192 * KiB, 64 * KiB);
    expect_err(&m, "vhdx: required region "
                   "{2DC27799-F623-4200-9D64-115E9BFD4A08} not supported");
    free(m.buf);
}

Test(vhdx_bad, region_unaligned)
{
    struct img m;
    good(&m);
    put64(m.buf + 192 * KiB + 32, 2 * MiB + 512);
    fix_crc(m.buf + 192 * KiB, 64 * KiB);
    expect_err(&m, "vhdx: BAT region offset 2097664 is not a multiple of "
                   "1 MiB past the first MiB");
    free(m.buf);
}

Test(vhdx_bad, metadata_entry_count)
{
    struct img m;
    good(&m);
    put16(m.buf + 3 * MiB + 10, 2048);
    expect_err(&m, "vhdx: metadata table entry_count 2048 > 2047");
    free(m.buf);
}

Test(vhdx_bad, block_size)
{
    struct img m;
    good(&m);
    put32(m.buf + 3 * MiB + 64 * KiB, 3 * MiB);
    expect_err(&m, "vhdx: block size 3145728 is not a power of two from "
                   "1 MiB to 268435456");
    free(m.buf);
}

Test(vhdx_bad, logical_sector_size)
{
    struct img m;
    good(&m);
    put32(m.buf + 3 * MiB + 64 * KiB + 3 * 4096, 1024);
    expect_err(&m, "vhdx: logical sector size 1024 is not 512 or 4096");
    free(m.buf);
}

Test(vhdx_bad, vsize_cap)
{
    struct img m;
    good(&m);
    put64(m.buf + 3 * MiB + 64 * KiB + 4096, (64ull << 40) + 512);
    expect_err(&m, "vhdx: virtual disk size 70368744178176 > 70368744177664 "
                   "(64 TiB)");
    free(m.buf);
}

Test(vhdx_bad, bat_region_too_small)
{
    struct img m;
    good(&m);
    put64(m.buf + 3 * MiB + 64 * KiB + 4096, 1ull << 40);
    expect_err(&m, "vhdx: BAT region (131072 entries) is too small for "
                   "1048831 entries");
    free(m.buf);
}

Test(vhdx_bad, block_past_eof)
{
    struct img m;
    good(&m);
    put64(m.buf + 2 * MiB + 8, (1ull << 30) | 6);
    expect_err(&m, "vhdx: BAT entry 1 payload block offset 1073741824 is "
                   "past the end of the file (5242880 bytes)");
    free(m.buf);
}

Test(vhdx_bad, block_in_metadata)
{
    struct img m;
    good(&m);
    put64(m.buf + 2 * MiB + 8, (3 * MiB) | 6);
    expect_err(&m, "vhdx: BAT entry 1 payload block offset 3145728 overlaps "
                   "the metadata region");
    free(m.buf);
}

Test(vhdx_bad, block_state)
{
    struct img m;
    good(&m);
    put64(m.buf + 2 * MiB + 8, 4);
    expect_err(&m, "vhdx: BAT entry 1 state 4 is invalid for block 1");
    free(m.buf);
}

Test(vhdx_bad, partial_without_parent)
{
    struct img m;
    good(&m);
    put64(m.buf + 2 * MiB, (4 * MiB) | 7);
    expect_err(&m, "vhdx: BAT entry 0 state 7 is invalid for block 0");
    free(m.buf);
}

Test(vhdx_bad, dirty_log)
{
    struct img m;
    img_init(&m, MiB);
    memset(m.log_guid, 0x77, 16);
    m.log_entry = true;
    img_build(&m);
    expect_err(&m, "vhdx: log {77777777-7777-7777-7777-777777777777} has "
                   "entries that need to be replayed (not supported for a "
                   "read-only open; 'qemu-img check -r all' replays it)");
    free(m.buf);
}

Test(vhdx, log_guid_without_entries_reads)
{
    struct img m;
    struct run r;
    img_init(&m, MiB);
    memset(m.log_guid, 0x77, 16);
    img_build(&m);
    run_dd(&r, &m, ALL, NULL, NULL);
    cr_expect_eq(r.ret, G_OK, "%s", r.err.msg);
    ct_mem_free(&r.m);
    free(m.buf);
}

Test(vhdx_bad, forced_format_on_non_vhdx)
{
    static uint8_t junk[512 * 1024];
    struct run r;
    struct dd_mem mem = {calloc(1, 1 << 20), 1 << 20, calloc(1, 8 * MiB),
                         8 * MiB, NULL};
    struct dd_config cfg = {
        .in_format = CT_FMT_VHDX, .out_format = CT_FMT_RAW, .args = ALL};
    memset(&r.err, 0, sizeof r.err);
    ct_mem_init(&r.m, junk, sizeof junk, CT_FMT_RAW, &ALL);
    struct ct_ops ops = ct_mem_ops(&r.m);
    cr_expect_eq(dd_run(&cfg, &ops, &mem, &r.err), G_ECORRUPT);
    cr_expect_str_eq(r.err.msg, "vhdx: file identifier is not 'vhdxfile'");
    ct_mem_free(&r.m);
    free(mem.heap);
    free(mem.io);
}

Test(vhdx_bad, parent_cycle_is_bounded)
{
    /* An image naming itself: ct_mem (like the host) hands out a handle,
     * so the chain depth limit ends it. */
    struct img c;
    struct run r;
    img_init(&c, MiB);
    c.parent = "self.vhdx";
    memcpy(c.link, c.dwg, 16);
    img_build(&c);
    run_dd(&r, &c, ALL, &c, "self.vhdx");
    cr_expect_neq(r.ret, G_OK);
    cr_expect(strstr(r.err.msg, "vhdx: cannot open 'self.vhdx'") ||
                  strstr(r.err.msg, "backing chain is deeper"),
              "%s", r.err.msg);
    ct_mem_free(&r.m);
    free(c.buf);
}

Test(crc32c, check_value)
{
    /* The standard check value of CRC-32C over "123456789". */
    cr_expect_eq(crc32c_update(0, "123456789", 9), 0xE3069283u);
    cr_expect_eq(crc32c_update(crc32c_update(0, "1234", 4), "56789", 5),
                 0xE3069283u);
}

Test(vhdx, logical_sector_4096_differencing)
{
    /* 4 KiB logical sectors: chunk ratio 32768, 32-byte block bitmaps. */
    struct img p, c;
    struct run r;
    static uint8_t bm[MiB / 4096 / 8], want[2 * MiB];
    img_init(&p, 2 * MiB);
    p.lss = 4096;
    p.state[1] = 6;
    p.fill[1] = 0xab;
    img_build(&p);
    img_init(&c, 2 * MiB);
    c.lss = 4096;
    c.parent = "p.vhdx";
    memcpy(c.link, p.dwg, 16);
    c.state[1] = 7;
    c.fill[1] = 0xcd;
    bm[0] = 0x05; /* sectors 0 and 2 */
    bm[31] = 0x80; /* the last sector */
    c.bitmap[1] = bm;
    img_build(&c);
    memset(want + MiB, 0xab, MiB);
    memset(want + MiB, 0xcd, 4096);
    memset(want + MiB + 8192, 0xcd, 4096);
    memset(want + 2 * MiB - 4096, 0xcd, 4096);
    run_dd(&r, &c, ALL, &p, "p.vhdx");
    expect_out(&r, want, 0, 2 * MiB);
    ct_mem_free(&r.m);
    free(p.buf);
    free(c.buf);
}

Test(vhdx, virtual_size_rounds_down_to_512_like_qemu)
{
    /* Not a multiple of the 512-byte logical sector: qemu 7.2 reads the
     * size rounded down to 512, the BAT still sized by the stored size. */
    static const struct {
        uint64_t vsize, reads;
    } cases[] = {
        {3 * MiB + 1000, 3 * MiB + 512},
        {3 * MiB + 100, 3 * MiB}, /* the last block then is not read */
        {1000, 512},
        {511, 0},
    };
    static uint8_t want[4 * MiB];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct img m;
        struct run r;
        img_init(&m, cases[i].vsize);
        for (int b = 0; b < 4 && (uint64_t)b * MiB < cases[i].vsize; b++) {
            m.state[b] = 6;
            m.fill[b] = (uint8_t)(0x21 + b);
            memset(want + b * MiB, 0x21 + b, MiB);
        }
        img_build(&m);
        run_dd(&r, &m, ALL, NULL, NULL);
        cr_assert_eq(r.ret, G_OK, "case %zu: %s", i, r.err.msg);
        cr_expect_eq(r.m.out_len, cases[i].reads, "case %zu", i);
        cr_expect(r.m.out_len == 0 ||
                      memcmp(r.m.out, want, r.m.out_len) == 0,
                  "case %zu", i);
        ct_mem_free(&r.m);
        free(m.buf);
    }
}

Test(vhdx_bad, virtual_size_not_a_multiple_of_4096_byte_sectors)
{
    /* qemu opens no 4096-byte-sector image; the spec's rule holds */
    struct img m;
    img_init(&m, 2 * MiB + 512);
    m.lss = 4096;
    m.state[0] = 6;
    m.fill[0] = 0x31;
    img_build(&m);
    expect_err(&m, "vhdx: virtual disk size 2097664 is not a multiple of "
                   "the logical sector size 4096");
    free(m.buf);
}
