/*
 * The qcow2 reader over ct_mem, on images built here byte by byte (spec:
 * qemu's docs/interop/qcow2.txt). Layout of a test image: cluster 0 the
 * header (+ extensions, backing name), cluster 1 the L1 table, cluster 2
 * the L2 table, clusters 3.. data. Each malformed case asserts the exact
 * message.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ct_mem.h"
#include "extent_check.h"
#include "par_threads.h"
#include "engine/engine.h"
#include "fmt/fmt.h"

#define COPIED (1ull << 63)
#define COMPRESSED (1ull << 62)

static void be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static void be64(uint8_t *p, uint64_t v)
{
    be32(p, (uint32_t)(v >> 32));
    be32(p + 4, (uint32_t)v);
}

struct img {
    uint8_t *d;
    size_t len;
    unsigned cb;
    uint64_t cs;
    unsigned eb;     /* L2 entry bytes */
    uint32_t ext_at; /* where the next header extension goes */
};

/* A data byte that is never zero and depends on its host offset. */
static uint8_t pat(uint64_t host)
{
    return (uint8_t)(host * 13 + (host >> 9) * 7 + 1) | 1;
}

static struct img img_new(unsigned version, unsigned cb, uint64_t vsize,
                          unsigned nclusters, uint64_t incompat)
{
    struct img m = {0};
    m.cb = cb;
    m.cs = 1ull << cb;
    m.eb = (incompat & 16) ? 16 : 8;
    m.len = nclusters * m.cs;
    m.d = calloc(1, m.len);
    for (uint64_t i = 3 * m.cs; i < m.len; i++)
        m.d[i] = pat(i);
    memcpy(m.d, "QFI\xfb", 4);
    be32(m.d + 4, version);
    be32(m.d + 20, cb);
    be64(m.d + 24, vsize);
    uint64_t span = m.cs * (m.cs / m.eb);
    be32(m.d + 36, (uint32_t)((vsize + span - 1) / span));
    be64(m.d + 40, m.cs);       /* L1 at cluster 1 */
    /* qemu refuses an image without a refcount table; instar never reads
     * it, so it may overlap the header. */
    be32(m.d + 56, 1);
    be64(m.d + m.cs, 2 * m.cs | COPIED); /* L2 at cluster 2 */
    if (version == 3) {
        be64(m.d + 72, incompat);
        be32(m.d + 96, 4);
        be32(m.d + 100, 104);
        m.ext_at = 104;
    } else {
        m.ext_at = 72;
    }
    return m;
}

/* L2 entry for guest cluster i (and the subcluster bitmap if extended). */
static void l2(struct img *m, unsigned i, uint64_t e, uint64_t bitmap)
{
    be64(m->d + 2 * m->cs + i * m->eb, e);
    if (m->eb == 16)
        be64(m->d + 2 * m->cs + i * 16 + 8, bitmap);
}

static void ext(struct img *m, uint32_t type, const void *data, uint32_t len)
{
    be32(m->d + m->ext_at, type);
    be32(m->d + m->ext_at + 4, len);
    memcpy(m->d + m->ext_at + 8, data, len);
    m->ext_at += 8 + (len + 7) / 8 * 8;
}

/* A backing name of len bytes (NULs included) and optionally a format. */
static void backing_n(struct img *m, const char *name, uint32_t len,
                      const char *fmt)
{
    if (fmt)
        ext(m, 0xe2792aca, fmt, (uint32_t)strlen(fmt));
    uint32_t off = m->ext_at + 8; /* after the end-of-extensions marker */
    memcpy(m->d + off, name, len);
    be64(m->d + 8, off);
    be32(m->d + 16, len);
}

static void backing(struct img *m, const char *name, const char *fmt)
{
    backing_n(m, name, (uint32_t)strlen(name), fmt);
}

struct ctx {
    struct ct_mem m;
    struct ct_ops ops;
    struct g_error err;
    struct arena heap, io;
    struct fmt_chain chain;
    struct fmt_env env;
    void *hm, *im;
    struct fmt_reader *r;
};

static void ctx_init(struct ctx *c, const struct img *m)
{
    struct window_args a = {512, 0, 0, 0, 0};
    memset(c, 0, sizeof *c);
    ct_mem_init(&c->m, m->d, m->len, CT_FMT_RAW, &a);
    c->m.fail_read_at = 1 << 30; /* never fails, but counts reads */
    c->ops = ct_mem_ops(&c->m);
    c->hm = calloc(1, 8 << 20);
    c->im = calloc(1, 24 << 20);
    arena_init(&c->heap, c->hm, 8 << 20);
    arena_init(&c->io, c->im, 24 << 20);
    /* Two workers, as in dd.bin on a 2-CPU host: compressed clusters are
     * inflated by both. */
    c->env = (struct fmt_env){&c->ops,       &c->err, &c->heap, &c->io,
                              par_threads(), 0,       &c->chain,
                              FMT_REFS_OPEN};
}

static int ctx_open(struct ctx *c)
{
    return fmt_open(&c->env, CT_HANDLE_INPUT, CT_FMT_PROBE, 0, &c->r);
}

static void ctx_free(struct ctx *c)
{
    ct_mem_free(&c->m);
    free(c->hm);
    free(c->im);
}

/* Opens m and expects the exact error message. */
static void expect_open_error(struct img *m, int code, const char *msg)
{
    struct ctx c;
    ctx_init(&c, m);
    cr_assert_eq(ctx_open(&c), code, "open: %s", c.err.msg);
    cr_expect_str_eq(c.err.msg, msg);
    ctx_free(&c);
    free(m->d);
}

/* Opens m, reads [off, off+len) and expects the exact error message. */
static void expect_read_error(struct img *m, uint64_t off, uint64_t len,
                              int code, const char *msg)
{
    struct ctx c;
    ctx_init(&c, m);
    cr_assert_eq(ctx_open(&c), G_OK, "open: %s", c.err.msg);
    uint8_t *buf = malloc(len);
    cr_assert_eq(c.r->read(c.r, off, buf, len), code, "read: %s", c.err.msg);
    cr_expect_str_eq(c.err.msg, msg);
    free(buf);
    ctx_free(&c);
    free(m->d);
}

/* Reads [off, off+len) and compares with want(guest offset). */
static void expect_bytes(struct fmt_reader *r, uint64_t off, uint64_t len,
                         uint8_t (*want)(uint64_t), struct g_error *err)
{
    uint8_t *buf = malloc(len);
    memset(buf, 0xee, len);
    cr_assert_eq(r->read(r, off, buf, len), G_OK, "read: %s", err->msg);
    for (uint64_t i = 0; i < len; i++)
        if (buf[i] != want(off + i))
            cr_assert_fail("offset %llu: got 0x%02x want 0x%02x",
                           (unsigned long long)(off + i), buf[i],
                           want(off + i));
    free(buf);
}

/* The reader's extents over [0, len) and two unaligned windows agree with
 * read(); at least min_plain plain extents (the copy path is used). */
static void expect_extents(struct ctx *c, uint64_t len, unsigned min_plain)
{
    uint64_t blen = 1 << 20;
    uint8_t *buf = arena_alloc(&c->io, blen, 512);
    cr_assert(buf);
    unsigned plain = extent_check(c->r, &c->m, buf, blen, 0, len);
    cr_expect_geq(plain, min_plain, "%u plain extents", plain);
    extent_check(c->r, &c->m, buf, blen, 1, len > 2 ? len - 2 : 0);
    extent_check(c->r, &c->m, buf, blen, len / 3, len / 3 + 1000);
}

/* Opens m, expects [0, len) to read as want, and frees m. */
static void expect_image(struct img *m, uint64_t len,
                         uint8_t (*want)(uint64_t))
{
    struct ctx c;
    ctx_init(&c, m);
    cr_assert_eq(ctx_open(&c), G_OK, "open: %s", c.err.msg);
    expect_bytes(c.r, 0, len, want, &c.err);
    expect_extents(&c, len, 0);
    ctx_free(&c);
    free(m->d);
}

/* --- a v3 image with 512-byte clusters: every kind of cluster ---------- */
/* guest cluster: 0,1 -> host 3,4 (contiguous); 2 zero flag; 3 unallocated;
 * 4 -> host 6; 5 zero flag with a preallocated offset; 6,7 -> host 7,8. */
static struct img basic(unsigned version)
{
    struct img m = img_new(version, 9, 4096, 9, 0);
    l2(&m, 0, 3 * 512 | COPIED, 0);
    l2(&m, 1, 4 * 512 | COPIED, 0);
    if (version == 3) {
        l2(&m, 2, 1, 0);
        l2(&m, 5, 5 * 512 | 1, 0);
    }
    l2(&m, 4, 6 * 512 | COPIED, 0);
    l2(&m, 6, 7 * 512 | COPIED, 0);
    l2(&m, 7, 8 * 512, 0);
    return m;
}

static uint8_t basic_want(uint64_t g)
{
    static const int host[8] = {3, 4, -1, -1, 6, -1, 7, 8};
    if (g >= 4096)
        return 0;
    int h = host[g / 512];
    return h < 0 ? 0 : pat((uint64_t)h * 512 + g % 512);
}

Test(qcow2, v3_cluster_kinds_and_windows)
{
    struct img m = basic(3);
    struct ctx c;
    ctx_init(&c, &m);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    cr_expect_str_eq(c.r->name, "qcow2");
    cr_expect_eq(c.r->vsize, 4096);
    expect_bytes(c.r, 0, 4096, basic_want, &c.err);
    expect_bytes(c.r, 1, 4000, basic_want, &c.err);
    expect_bytes(c.r, 700, 1000, basic_want, &c.err);
    expect_bytes(c.r, 3000, 5000, basic_want, &c.err); /* zeros past vsize */
    expect_bytes(c.r, 9000, 100, basic_want, &c.err);
    /* Clusters 0-1 one plain run, 4 and 6-7 two more. */
    expect_extents(&c, 9000, 3);
    ctx_free(&c);
    free(m.d);
}

Test(qcow2, contiguous_clusters_are_one_host_read)
{
    struct img m = basic(3);
    struct ctx c;
    ctx_init(&c, &m);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    unsigned before = c.m.reads;
    expect_bytes(c.r, 0, 1024, basic_want, &c.err);   /* L1 + L2 + 1 run */
    expect_bytes(c.r, 3072, 1024, basic_want, &c.err); /* cached: 1 run */
    cr_expect_eq(c.m.reads - before, 4, "%u reads", c.m.reads - before);
    ctx_free(&c);
    free(m.d);
}

Test(qcow2, v2_image)
{
    struct img m = basic(2);
    expect_image(&m, 4096, basic_want);
}

Test(qcow2, size_rounds_down_to_512_like_qemu)
{
    struct img m = basic(3);
    be64(m.d + 24, 4096 + 1000);
    struct ctx c;
    ctx_init(&c, &m);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    cr_expect_eq(c.r->vsize, 4096 + 512);
    ctx_free(&c);
    free(m.d);
}

Test(qcow2, dirty_and_corrupt_bits_are_read)
{
    struct img m = basic(3);
    be64(m.d + 72, 3);
    expect_image(&m, 4096, basic_want);
}

Test(qcow2, dd_through_the_engine)
{
    struct img m = basic(3);
    struct dd_mem mem = {calloc(1, 4 << 20), 4 << 20, calloc(1, 8 << 20),
                         8 << 20, NULL};
    struct window_args a = {1000, 4, 1, 1, 1};
    struct dd_config cfg = {
        .in_format = CT_FMT_PROBE, .out_format = CT_FMT_RAW, .args = a};
    struct ct_mem cm;
    struct g_error err = {0};
    ct_mem_init(&cm, m.d, m.len, CT_FMT_RAW, &a);
    struct ct_ops ops = ct_mem_ops(&cm);
    cr_assert_eq(dd_run(&cfg, &ops, &mem, &err), G_OK, "%s", err.msg);
    cr_assert_eq(cm.out_len, 3072);
    for (uint64_t i = 0; i < 3072; i++)
        cr_assert_eq(cm.out[i], i < 3000 ? basic_want(1000 + i) : 0,
                     "byte %llu",
                     (unsigned long long)i);
    ct_mem_free(&cm);
    free(mem.heap);
    free(mem.io);
    free(m.d);
}

/* --- backing files -------------------------------------------------------- */
static uint8_t *raw_base(size_t n)
{
    uint8_t *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(0x80 | (i * 3));
    return b;
}

static uint8_t base_byte(uint64_t g)
{
    return (uint8_t)(0x80 | (g * 3));
}

static uint64_t base_len;
static uint8_t over_want(uint64_t g)
{
    if (g >= 4096)
        return 0;
    if (g / 512 == 3) /* the unallocated cluster reads the backing file */
        return g < base_len ? base_byte(g) : 0;
    return basic_want(g);
}

static void backing_case(size_t blen, const char *fmt)
{
    struct img m = basic(3);
    backing(&m, "base.raw", fmt);
    uint8_t *b = raw_base(blen);
    struct ctx c;
    ctx_init(&c, &m);
    ct_mem_add_file(&c.m, "base.raw", b, blen);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    base_len = blen;
    expect_bytes(c.r, 0, 4096, over_want, &c.err);
    expect_bytes(c.r, 1600, 300, over_want, &c.err);
    /* The unallocated cluster maps into the backing file. */
    expect_extents(&c, 4096, 4);
    ctx_free(&c);
    free(b);
    free(m.d);
}

Test(qcow2, backing_raw_longer_than_overlay)
{
    backing_case(8192, "raw");
}

Test(qcow2, backing_raw_shorter_than_overlay_reads_zeros)
{
    backing_case(1700, "raw"); /* ends inside the unallocated cluster */
}

Test(qcow2, backing_probed_without_format_extension)
{
    backing_case(8192, NULL);
}

Test(qcow2, backing_declared_raw_is_not_probed)
{
    /* A raw backing file that starts with the qcow2 magic: declared raw,
     * it is read as bytes, never parsed. */
    struct img m = basic(3);
    backing(&m, "base.raw", "raw");
    uint8_t *b = raw_base(4096);
    memcpy(b, "QFI\xfb", 4);
    struct ctx c;
    ctx_init(&c, &m);
    ct_mem_add_file(&c.m, "base.raw", b, 4096);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    uint8_t buf[512];
    cr_assert_eq(c.r->read(c.r, 1536, buf, 512), G_OK, "%s", c.err.msg);
    cr_expect_eq(buf[0], base_byte(1536));
    ctx_free(&c);
    free(b);
    free(m.d);
}

Test(qcow2, chain_of_three)
{
    /* top (cluster 0 only) -> mid qcow2 (basic) -> base raw */
    struct img mid = basic(3);
    backing(&mid, "base.raw", "raw");
    struct img top = img_new(3, 9, 4096, 4, 0);
    l2(&top, 0, 3 * 512 | COPIED, 0);
    backing(&top, "mid.qcow2", "qcow2");
    uint8_t *b = raw_base(8192);
    struct ctx c;
    ctx_init(&c, &top);
    ct_mem_add_file(&c.m, "mid.qcow2", mid.d, mid.len);
    ct_mem_add_file(&c.m, "base.raw", b, 8192);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    uint8_t buf[4096];
    cr_assert_eq(c.r->read(c.r, 0, buf, 4096), G_OK, "%s", c.err.msg);
    cr_expect_eq(buf[5], pat(3 * 512 + 5));             /* top */
    cr_expect_eq(buf[512 + 5], basic_want(512 + 5));    /* mid */
    cr_expect_eq(buf[1024 + 5], 0);                     /* mid zero */
    cr_expect_eq(buf[1536 + 5], base_byte(1536 + 5));   /* base */
    expect_extents(&c, 4096, 4);
    ctx_free(&c);
    free(b);
    free(mid.d);
    free(top.d);
}

/* The name ends at its first NUL, as in qemu (a C string there); what
 * follows it inside backing_file_size is ignored. */
static void nul_name_case(const char *name, uint32_t len)
{
    struct img m = basic(3);
    backing_n(&m, name, len, "raw");
    uint8_t *b = raw_base(8192);
    struct ctx c;
    ctx_init(&c, &m);
    ct_mem_add_file(&c.m, "base.raw", b, 8192);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    base_len = 8192;
    expect_bytes(c.r, 0, 4096, over_want, &c.err);
    ctx_free(&c);
    free(b);
    free(m.d);
}

Test(qcow2, backing_name_padded_with_nuls)
{
    nul_name_case("base.raw\0\0\0\0", 12);
}

Test(qcow2, backing_name_ends_at_first_nul)
{
    nul_name_case("base.raw\0junk", 13);
}

/* An empty name after the cut is no backing file at all, even with a
 * backing format instar does not know: unallocated clusters read zeros. */
Test(qcow2, backing_name_of_nuls_is_no_backing_file)
{
    struct img m = basic(3);
    backing_n(&m, "\0\0\0\0", 4, "qed");
    expect_image(&m, 4096, basic_want);
}

/* qemu probes a backing file named *.dmg as dmg: the name it means is the
 * one before the NULs. */
Test(qcow2, backing_dmg_name_before_nuls)
{
    struct img m = basic(3);
    backing_n(&m, "b.dmg\0\0", 7, NULL);
    uint8_t *b = raw_base(8192);
    struct ctx c;
    ctx_init(&c, &m);
    ct_mem_add_file(&c.m, "b.dmg", b, 8192);
    cr_assert_eq(ctx_open(&c), G_ENOTSUP, "%s", c.err.msg);
    cr_expect_str_eq(c.err.msg, "dmg image: format not supported by instar");
    ctx_free(&c);
    free(b);
    free(m.d);
}

Test(qcow2, backing_missing_is_refused)
{
    struct img m = basic(3);
    backing(&m, "../etc/passwd", NULL);
    expect_open_error(&m, G_EIO,
                      "qcow2: cannot open '../etc/passwd': not found or not "
                      "allowed (files an image refers to must be in an "
                      "allowed directory)");
}

Test(qcow2, backing_format_unknown)
{
    struct img m = basic(3);
    backing(&m, "base.x", "qed");
    expect_open_error(&m, G_ENOTSUP, "qcow2: backing format 'qed' not supported");
}

Test(qcow2, backing_name_too_long)
{
    struct img m = basic(3);
    backing(&m, "b", NULL);
    be32(m.d + 16, 1024);
    expect_open_error(&m, G_ECORRUPT, "qcow2: backing_file_size 1024 exceeds 1023");
}

Test(qcow2, backing_name_outside_header_cluster)
{
    struct img m = basic(3);
    backing(&m, "b", NULL);
    be64(m.d + 8, 510);
    be32(m.d + 16, 10);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: backing_file_offset 510 (size 10) is not inside "
                      "the header cluster");
}

/* --- compressed clusters -------------------------------------------------- */
static uint8_t comp_want(uint64_t g)
{
    return (uint8_t)(g / 7 + 1);
}

/* Raw-deflates one cluster of comp_want data for guest cluster gc. */
static size_t deflate_cluster(uint64_t gc, uint64_t cs, uint8_t *out,
                              size_t cap)
{
    uint8_t *src = malloc(cs);
    for (uint64_t i = 0; i < cs; i++)
        src[i] = comp_want(gc * cs + i);
    z_stream zs = {0};
    cr_assert_eq(deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY),
                 Z_OK);
    zs.next_in = src;
    zs.avail_in = (uInt)cs;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t n = cap - zs.avail_out;
    deflateEnd(&zs);
    free(src);
    return n;
}

/* 4 KiB clusters; guest clusters 0 and 1 compressed, packed at host
 * 3*cs+100 and right after it. */
static struct img comp_img(void)
{
    struct img m = img_new(3, 12, 8192, 5, 0);
    uint64_t cs = m.cs, x = 62 - (12 - 8);
    uint64_t host = 3 * cs + 100;
    for (unsigned gc = 0; gc < 2; gc++) {
        size_t n = deflate_cluster(gc, cs, m.d + host, m.len - host);
        uint64_t nsec = (host + n - 1) / 512 - host / 512;
        l2(&m, gc, COMPRESSED | nsec << x | host, 0);
        host += n;
    }
    return m;
}

Test(qcow2, compressed_clusters)
{
    struct img m = comp_img();
    struct ctx c;
    ctx_init(&c, &m);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    expect_bytes(c.r, 0, 8192, comp_want, &c.err);
    expect_bytes(c.r, 4000, 200, comp_want, &c.err);
    expect_extents(&c, 8192, 0);
    ctx_free(&c);
    free(m.d);
}

/* A part of a cluster as the very first compressed read: it goes through
 * the cached cluster, which must already exist. */
Test(qcow2, compressed_partial_read_first)
{
    struct img m = comp_img();
    struct ctx c;
    ctx_init(&c, &m);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    expect_bytes(c.r, 4000, 200, comp_want, &c.err);
    expect_bytes(c.r, 0, 8192, comp_want, &c.err);
    ctx_free(&c);
    free(m.d);
}

/* Compressed clusters far apart and out of order in the file: reads must
 * refill the read-ahead window forwards and backwards, never reuse it for
 * a cluster outside it. */
Test(qcow2, compressed_clusters_across_readahead_windows)
{
    /* 4 KiB clusters, 640 clusters = 2.5 MiB of file. */
    struct img m = img_new(3, 12, 4 * 4096, 640, 0);
    uint64_t cs = m.cs, x = 62 - (12 - 8);
    const uint64_t hosts[4] = {3 * cs + 100, (400 * cs) + 7, 200 * cs + 3,
                               600 * cs};
    for (unsigned gc = 0; gc < 4; gc++) {
        size_t n = deflate_cluster(gc, cs, m.d + hosts[gc],
                                   m.len - hosts[gc]);
        uint64_t nsec = (hosts[gc] + n - 1) / 512 - hosts[gc] / 512;
        l2(&m, gc, COMPRESSED | nsec << x | hosts[gc], 0);
    }
    struct ctx c;
    ctx_init(&c, &m);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    expect_bytes(c.r, 0, 4 * cs, comp_want, &c.err);
    expect_bytes(c.r, 3 * cs + 5, 100, comp_want, &c.err);
    expect_bytes(c.r, 10, 100, comp_want, &c.err);
    ctx_free(&c);
    free(m.d);
}

/* More compressed clusters than one batch holds (QCOW2_ZBATCH): with a
 * corrupt one in the middle of the second batch, the error names it, as a
 * serial read would; without, every byte is right. */
static struct img many_comp_img(unsigned nc, unsigned bad)
{
    struct img m = img_new(3, 12, (uint64_t)nc * 4096, nc + 4, 0);
    uint64_t cs = m.cs, x = 62 - (12 - 8), host = 3 * cs;
    for (unsigned gc = 0; gc < nc; gc++) {
        size_t n = deflate_cluster(gc, cs, m.d + host, m.len - host);
        uint64_t nsec = (host + n - 1) / 512 - host / 512;
        l2(&m, gc, COMPRESSED | nsec << x | host, 0);
        if (gc == bad)
            memset(m.d + host, 0xff, 16);
        host += n;
    }
    return m;
}

Test(qcow2, compressed_batches_read_in_parallel)
{
    struct img m = many_comp_img(300, ~0u);
    struct ctx c;
    ctx_init(&c, &m);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    expect_bytes(c.r, 0, 300 * 4096, comp_want, &c.err);
    expect_bytes(c.r, 4096 * 10 + 5, 4096 * 200, comp_want, &c.err);
    ctx_free(&c);
    free(m.d);
}

Test(qcow2, compressed_batch_reports_first_corrupt_cluster)
{
    struct img m = many_comp_img(300, 270);
    uint64_t host = get_be64(m.d + 2 * m.cs + 270 * 8) & ((1ull << 54) - 1);
    char msg[160];
    snprintf(msg, sizeof msg,
             "qcow2: compressed cluster at offset %llu does not decompress "
             "(zlib -3: invalid block type)",
             (unsigned long long)host);
    expect_read_error(&m, 0, 300 * 4096, G_ECORRUPT, msg);
}

Test(qcow2, compressed_garbage_is_refused)
{
    struct img m = comp_img();
    memset(m.d + 3 * m.cs + 100, 0xff, 64);
    expect_read_error(&m, 0, 4096, G_ECORRUPT,
                      "qcow2: compressed cluster at offset 12388 does not "
                      "decompress (zlib -3: invalid block type)");
}

Test(qcow2, compressed_short_output_is_refused)
{
    struct img m = img_new(3, 12, 4096, 5, 0);
    /* A valid stream of 100 bytes: less than a cluster. */
    z_stream zs = {0};
    uint8_t src[100];
    memset(src, 7, sizeof src);
    deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY);
    zs.next_in = src;
    zs.avail_in = sizeof src;
    zs.next_out = m.d + 3 * m.cs;
    zs.avail_out = 4096;
    deflate(&zs, Z_FINISH);
    deflateEnd(&zs);
    l2(&m, 0, COMPRESSED | 3 * m.cs, 0);
    expect_read_error(&m, 0, 4096, G_ECORRUPT,
                      "qcow2: compressed cluster at offset 12288 decompresses "
                      "to 100 bytes, not 4096");
}

Test(qcow2, compressed_in_header_cluster)
{
    struct img m = img_new(3, 12, 4096, 5, 0);
    l2(&m, 0, COMPRESSED | 8, 0);
    expect_read_error(&m, 0, 512, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset 0: compressed cluster "
                      "offset 8 is in the header cluster");
}

Test(qcow2, compressed_past_eof)
{
    struct img m = img_new(3, 12, 4096, 5, 0);
    l2(&m, 0, COMPRESSED | 5 * 4096, 0);
    expect_read_error(&m, 0, 512, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset 0: compressed cluster "
                      "offset 20480 is past the end of the file");
}

/* --- a chain of compressed 2 MiB-cluster images --------------------------- */
/* Image j of a chain of n ("c0.qcow2" on top) holds guest cluster j,
 * compressed, and is backed by image j + 1: a read of the whole disk
 * inflates one cluster from each image, in turn. */
static unsigned chain_n;
static uint8_t chain_want(uint64_t g)
{
    return g >> 21 < chain_n ? comp_want(g) : 0;
}

static struct img chain_img(unsigned j, unsigned n)
{
    struct img m = img_new(3, 21, 4ull << 21, 4, 0);
    uint64_t host = 3 * m.cs + 512, x = 62 - (21 - 8);
    size_t len = deflate_cluster(j, m.cs, m.d + host, m.len - host);
    uint64_t nsec = (host + len - 1) / 512 - host / 512;
    l2(&m, j, COMPRESSED | nsec << x | host, 0);
    if (j + 1 < n) {
        char name[16];
        snprintf(name, sizeof name, "c%u.qcow2", j + 1);
        backing(&m, name, "qcow2");
    }
    return m;
}

/* Reads the whole chain of n, whole clusters and parts across images;
 * returns the I/O memory it took. */
static uint64_t chain_io_used(unsigned n)
{
    struct img m[4];
    struct ctx c;
    char names[4][16];

    for (unsigned j = 0; j < n; j++)
        m[j] = chain_img(j, n);
    ctx_init(&c, &m[0]);
    for (unsigned j = 1; j < n; j++) {
        snprintf(names[j], sizeof names[j], "c%u.qcow2", j);
        ct_mem_add_file(&c.m, names[j], m[j].d, m[j].len);
    }
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    chain_n = n;
    expect_bytes(c.r, 0, 4ull << 21, chain_want, &c.err);
    expect_bytes(c.r, (2ull << 21) - 100, 200, chain_want, &c.err);
    expect_bytes(c.r, (1ull << 21) - 100, 200, chain_want, &c.err);
    uint64_t used = c.io.used;
    ctx_free(&c);
    for (unsigned j = 0; j < n; j++)
        free(m[j].d);
    return used;
}

/* Buffers that grow with the cluster size (L2 cache, compressed-cluster
 * windows: ~8 MiB per image with 2 MiB clusters) are the chain's, not
 * each image's: a deeper chain costs only the small per-image state. */
Test(qcow2, chain_shares_cluster_sized_buffers)
{
    uint64_t one = chain_io_used(1), four = chain_io_used(4);
    cr_expect_leq(four - one, 3 * (160u << 10), "1 image: %llu, 4: %llu",
                  (unsigned long long)one, (unsigned long long)four);
    cr_expect_leq(one, 9u << 20, "%llu", (unsigned long long)one);
}

/* --- extended L2 entries (16 KiB clusters, 512-byte subclusters) -------- */
static struct img extl2_img(void)
{
    struct img m = img_new(3, 14, 32768, 5, 16);
    /* cluster 0 -> host 3: subclusters 0-3 allocated, 4-5 zero, 6-31
     * unallocated; cluster 1: no offset, subcluster 2 zero. */
    l2(&m, 0, 3 * m.cs | COPIED, 0x30ull << 32 | 0xf);
    l2(&m, 1, 0, 0x4ull << 32);
    return m;
}

static uint8_t extl2_want(uint64_t g)
{
    if (g < 4 * 512)
        return pat(3 * 16384 + g);
    return 0;
}

Test(qcow2, extended_l2_subclusters)
{
    struct img m = extl2_img();
    struct ctx c;
    ctx_init(&c, &m);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    expect_bytes(c.r, 0, 32768, extl2_want, &c.err);
    expect_bytes(c.r, 1000, 2000, extl2_want, &c.err);
    expect_extents(&c, 32768, 1);
    ctx_free(&c);
    free(m.d);
}

static uint8_t extl2_over_want(uint64_t g)
{
    if (g < 4 * 512)
        return pat(3 * 16384 + g);
    if (g < 6 * 512 || (g >= 16384 + 1024 && g < 16384 + 1536))
        return 0;
    return base_byte(g);
}

Test(qcow2, extended_l2_unallocated_subclusters_read_backing)
{
    struct img m = extl2_img();
    backing(&m, "base.raw", "raw");
    uint8_t *b = raw_base(32768);
    struct ctx c;
    ctx_init(&c, &m);
    ct_mem_add_file(&c.m, "base.raw", b, 32768);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    expect_bytes(c.r, 0, 32768, extl2_over_want, &c.err);
    expect_bytes(c.r, 1900, 15000, extl2_over_want, &c.err);
    expect_extents(&c, 32768, 2);
    ctx_free(&c);
    free(b);
    free(m.d);
}

Test(qcow2, extended_l2_allocated_and_zero)
{
    struct img m = extl2_img();
    l2(&m, 0, 3 * m.cs, 0x1ull << 32 | 0x1);
    expect_read_error(&m, 0, 512, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset 0: subclusters 0x1 "
                      "are both allocated and zero");
}

Test(qcow2, extended_l2_allocated_without_offset)
{
    struct img m = extl2_img();
    l2(&m, 1, 0, 0x2);
    expect_read_error(&m, 16384, 512, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset 16384: subcluster "
                      "allocation bitmap 0x2 without a cluster offset");
}

/* qemu refuses an unaligned cluster offset even when no subcluster is
 * allocated ("Cluster allocation offset ... unaligned"). */
Test(qcow2, extended_l2_unaligned_offset_nothing_allocated)
{
    struct img m = extl2_img();
    l2(&m, 1, (3 * m.cs + 512) | COPIED, 0);
    expect_read_error(&m, 16384, 512, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset 16384: cluster offset "
                      "49664 is not cluster-aligned");
}

Test(qcow2, extended_l2_unaligned_offset_only_zero_subclusters)
{
    struct img m = extl2_img();
    l2(&m, 1, 3 * m.cs + 512, 0xffffffffull << 32);
    expect_read_error(&m, 16384 + 4096, 512, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset 16384: cluster offset "
                      "49664 is not cluster-aligned");
}

/* An aligned offset that no subcluster uses is not looked at, even past
 * EOF: qemu reads such a cluster as its bitmap says, and so does instar. */
Test(qcow2, extended_l2_unused_offset_past_eof_is_not_read)
{
    struct img m = extl2_img();
    l2(&m, 1, (1ull << 30) | COPIED, 0x4ull << 32);
    expect_image(&m, 32768, extl2_want);
}

Test(qcow2, extended_l2_needs_16k_clusters)
{
    struct img m = img_new(3, 13, 8192, 4, 16);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: cluster_bits 13 too small for extended L2 "
                      "entries (needs 14)");
}

/* --- external data file ---------------------------------------------------- */
static uint8_t df_want(uint64_t g)
{
    if (g < 1024)
        return (uint8_t)(g * 5 + 3);
    return 0;
}

Test(qcow2, external_data_file)
{
    struct img m = img_new(3, 9, 4096, 3, 4);
    ext(&m, 0x44415441, "data.raw", 8);
    l2(&m, 0, COPIED, 0); /* guest 0 at data file offset 0 */
    l2(&m, 1, 512 | COPIED, 0);
    uint8_t *data = malloc(4096);
    for (int i = 0; i < 4096; i++)
        data[i] = (uint8_t)(i * 5 + 3);
    struct ctx c;
    ctx_init(&c, &m);
    ct_mem_add_file(&c.m, "data.raw", data, 4096);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    expect_bytes(c.r, 0, 4096, df_want, &c.err);
    expect_extents(&c, 4096, 1);
    ctx_free(&c);
    free(data);
    free(m.d);
}

Test(qcow2, external_data_file_offset_mismatch)
{
    struct img m = img_new(3, 9, 4096, 3, 4);
    ext(&m, 0x44415441, "data.raw", 8);
    l2(&m, 1, 1024 | COPIED, 0);
    uint8_t data[4096] = {0};
    struct ctx c;
    ctx_init(&c, &m);
    ct_mem_add_file(&c.m, "data.raw", data, 4096);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    uint8_t buf[512];
    cr_expect_eq(c.r->read(c.r, 512, buf, 512), G_ECORRUPT);
    cr_expect_str_eq(c.err.msg,
                     "qcow2: L2 entry for guest offset 512: data file offset "
                     "1024 differs from the guest offset");
    ctx_free(&c);
    free(m.d);
}

Test(qcow2, external_data_file_bit_without_name)
{
    struct img m = img_new(3, 9, 4096, 3, 4);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: external data file bit set but no data file "
                      "name extension");
}

Test(qcow2, data_file_raw_without_data_file)
{
    struct img m = basic(3);
    be64(m.d + 88, 2);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: data-file-raw bit set without an external data "
                      "file");
}

/* --- malformed headers -------------------------------------------------- */
Test(qcow2, truncated_header)
{
    struct img m = basic(3);
    m.len = 60;
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: header truncated: file is 60 bytes, the header "
                      "needs 72");
}

Test(qcow2, truncated_v3_header)
{
    struct img m = basic(3);
    m.len = 90;
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: header truncated: file is 90 bytes, the version "
                      "3 header needs 104");
}

Test(qcow2, bad_version)
{
    struct img m = basic(3);
    be32(m.d + 4, 4);
    expect_open_error(&m, G_ENOTSUP,
                      "qcow2: version 4 not supported (only 2 and 3)");
}

Test(qcow2, forced_qcow2_on_other_bytes)
{
    struct img m = basic(3);
    m.d[0] = 'X';
    struct ctx c;
    ctx_init(&c, &m);
    cr_assert_eq(fmt_open(&c.env, CT_HANDLE_INPUT, CT_FMT_QCOW2, 0, &c.r),
                 G_ECORRUPT);
    cr_expect_str_eq(c.err.msg, "qcow2: magic 0x584649fb is not QFI\\xfb");
    ctx_free(&c);
    free(m.d);
}

Test(qcow2, cluster_bits_too_small)
{
    struct img m = basic(3);
    be32(m.d + 20, 8);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: cluster_bits 8 out of range (9..21)");
}

Test(qcow2, cluster_bits_too_large)
{
    struct img m = basic(3);
    be32(m.d + 20, 22);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: cluster_bits 22 out of range (9..21)");
}

Test(qcow2, header_length_invalid)
{
    struct img m = basic(3);
    be32(m.d + 100, 105);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: header_length 105 invalid (multiple of 8, "
                      "104..512)");
}

Test(qcow2, refcount_order_invalid)
{
    struct img m = basic(3);
    be32(m.d + 96, 7);
    expect_open_error(&m, G_ECORRUPT, "qcow2: refcount_order 7 exceeds 6");
}

/* qemu reads the refcount table at open and refuses these (instar never
 * reads it, but must not read what qemu refuses). */
Test(qcow2, refcount_table_missing)
{
    struct img m = basic(3);
    be32(m.d + 56, 0);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: refcount_table_clusters is 0: the image has no "
                      "refcount table");
}

Test(qcow2, refcount_table_too_large)
{
    /* 8 MiB of table at most: 16384 clusters of 512 bytes. */
    struct img m = basic(3);
    be32(m.d + 56, 16384 + 1);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: refcount_table_clusters 16385 exceeds 16384 "
                      "(8388608 bytes of table)");
    m = basic(3);
    be32(m.d + 56, 1u << 31);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: refcount_table_clusters 2147483648 exceeds "
                      "16384 (8388608 bytes of table)");
    m = basic(3);
    be32(m.d + 56, 16384);
    expect_image(&m, 4096, basic_want);
}

Test(qcow2, refcount_table_unaligned)
{
    struct img m = basic(3);
    be64(m.d + 48, 520);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: refcount_table_offset 520 is not "
                      "cluster-aligned");
}

/* Past EOF is fine (qemu reads zeros there), past qemu's largest file
 * offset is not. */
Test(qcow2, refcount_table_past_the_last_offset_qemu_reads)
{
    struct img m = basic(3);
    be64(m.d + 48, 0x7fffffffc0000000ull);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: refcount table at offset 9223372035781033984 "
                      "(512 bytes) ends past offset 9223372035781033984, the "
                      "last one qemu reads");
    m = basic(3);
    be64(m.d + 48, 0xfffffffffffffe00ull);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: refcount table at offset 18446744073709551104 "
                      "(512 bytes) ends past offset 9223372035781033984, the "
                      "last one qemu reads");
    m = basic(3);
    be64(m.d + 48, 0x7fffffffc0000000ull - 512);
    expect_image(&m, 4096, basic_want);
}

Test(qcow2, encryption_refused)
{
    struct img m = basic(3);
    be32(m.d + 32, 2);
    expect_open_error(&m, G_ENOTSUP,
                      "qcow2: crypt_method 2 (LUKS encryption) not supported");
}

Test(qcow2, zstd_refused)
{
    struct img m = basic(3);
    be64(m.d + 72, 8);
    be32(m.d + 100, 112);
    m.d[104] = 1;
    m.ext_at = 112;
    expect_open_error(&m, G_ENOTSUP,
                      "qcow2: compression_type 1 (zstd) not supported (only "
                      "deflate)");
}

Test(qcow2, compression_bit_without_type)
{
    struct img m = basic(3);
    be64(m.d + 72, 8);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: compression type feature bit set but "
                      "compression_type is 0");
}

Test(qcow2, unknown_incompatible_feature_named)
{
    struct img m = basic(3);
    uint8_t table[48] = {0, 5};
    memcpy(table + 2, "future thing", 12);
    ext(&m, 0x6803f857, table, sizeof table);
    be64(m.d + 72, 1ull << 5);
    expect_open_error(&m, G_ENOTSUP,
                      "qcow2: incompatible feature bits 0x20 not supported "
                      "(bit 5: 'future thing')");
}

Test(qcow2, unknown_incompatible_feature_unnamed)
{
    struct img m = basic(3);
    be64(m.d + 72, 1ull << 40);
    expect_open_error(&m, G_ENOTSUP,
                      "qcow2: incompatible feature bits 0x10000000000 not "
                      "supported (bit 40)");
}

Test(qcow2, header_extension_overflow)
{
    struct img m = basic(3);
    be32(m.d + 104, 0x12345678);
    be32(m.d + 108, 1000);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: header extension 0x12345678 length 1000 "
                      "overflows the header area (ends at 512)");
}

Test(qcow2, virtual_size_too_large)
{
    struct img m = basic(3);
    be64(m.d + 24, 1ull << 60);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: virtual size 1152921504606846976 exceeds the "
                      "limit 72057594037927936");
}

Test(qcow2, l1_size_over_limit)
{
    struct img m = basic(3);
    be32(m.d + 36, 0xffffffffu);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: l1_size 4294967295 exceeds the limit of 4194304 "
                      "entries");
}

Test(qcow2, l1_size_too_small)
{
    struct img m = basic(3);
    be64(m.d + 24, 1 << 20); /* needs 32 L1 entries with 512 B clusters */
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: l1_size 1 too small for virtual size 1048576 "
                      "(needs 32)");
}

Test(qcow2, l1_unaligned)
{
    struct img m = basic(3);
    be64(m.d + 40, 520);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: l1_table_offset 520 is not a cluster-aligned "
                      "offset past the header");
}

Test(qcow2, l1_past_eof)
{
    struct img m = basic(3);
    be64(m.d + 40, 1ull << 40);
    expect_open_error(&m, G_ECORRUPT,
                      "qcow2: L1 table at offset 1099511627776 (1 entries) is "
                      "past the end of the file (4608 bytes)");
}

/* --- malformed tables ----------------------------------------------------- */
Test(qcow2, l2_unaligned)
{
    struct img m = img_new(3, 12, 8192, 5, 0);
    be64(m.d + 4096, (2 * 4096 + 512) | COPIED);
    expect_read_error(&m, 0, 512, G_ECORRUPT,
                      "qcow2: L1 entry 0: L2 table offset 8704 is not "
                      "cluster-aligned");
}

Test(qcow2, l2_past_eof)
{
    struct img m = basic(3);
    be64(m.d + 512, 1ull << 30);
    expect_read_error(&m, 0, 512, G_ECORRUPT,
                      "qcow2: L1 entry 0: L2 table offset 1073741824 is past "
                      "the end of the file (4608 bytes)");
}

Test(qcow2, data_unaligned)
{
    struct img m = img_new(3, 12, 8192, 5, 0);
    l2(&m, 0, 3 * 4096 | COPIED, 0);
    l2(&m, 1, (3 * 4096 + 512) | COPIED, 0);
    expect_read_error(&m, 0, 8192, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset 4096: cluster offset "
                      "12800 is not cluster-aligned");
}

Test(qcow2, data_past_eof)
{
    struct img m = basic(3);
    l2(&m, 4, 1ull << 36 | COPIED, 0);
    expect_read_error(&m, 0, 4096, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset 2048: cluster offset "
                      "68719476736 is past the end of the file (4608 bytes)");
}

Test(qcow2, data_in_header_cluster)
{
    struct img m = basic(3);
    l2(&m, 3, COPIED, 0);
    expect_read_error(&m, 1536, 512, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset 1536 points into the "
                      "header cluster (offset 0)");
}

Test(qcow2, zero_flag_in_v2)
{
    struct img m = basic(2);
    l2(&m, 2, 1, 0);
    expect_read_error(&m, 1024, 512, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset 1024 has the zero flag "
                      "in a version 2 image");
}

Test(qcow2, read_error_is_reported)
{
    struct img m = basic(3);
    struct ctx c;
    ctx_init(&c, &m);
    cr_assert_eq(ctx_open(&c), G_OK, "%s", c.err.msg);
    c.m.fail_read_at = (int)c.m.reads + 3; /* L1, L2, then the data */
    uint8_t buf[512];
    cr_expect_eq(c.r->read(c.r, 0, buf, 512), G_EIO);
    cr_expect_str_eq(c.err.msg,
                     "qcow2: read of 512 bytes at offset 1536 failed: I/O "
                     "error");
    ctx_free(&c);
    free(m.d);
}
