/*
 * The qcow2 writer driven directly (fmt_writer_open, _write, _zero,
 * _finish), its bytes checked field by field against writers.md section 2,
 * and its placement model (qcow2_alloc.c) against what qemu-img 7.2 wrote.
 * Small outputs run over ct_mem; outputs of GiBs and TiBs run over a sink
 * that keeps the metadata clusters and, for data, only which virtual
 * sector landed where, so nothing of that size is ever held.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ct_mem.h"
#include "fmt/fmt.h"
#include "fmt/qcow2.h"
#include "fmt/qcow2_alloc.h"
#include "output_bound.h"
#include "writer_rig.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define TiB (1ull << 40)
#define CL 65536ull
#define COPIED (1ull << 63)
#define L2E 8192ull
#define SPAN (L2E * CL)
#define ARENA (4u << 20)
/* Every 512-byte sector of test data starts with its virtual offset
 * (big-endian) or'ed with this, so data found in the file names itself. */
#define TAG (1ull << 62)

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* --- test data ---------------------------------------------------------- */

static uint8_t data_byte(uint64_t x)
{
    uint64_t s = x % 512;
    if (s < 8)
        return (uint8_t)(((x - s) | TAG) >> (8 * (7 - s)));
    return (uint8_t)((x * 31 + (x >> 9)) % 251 + 1);
}

/* Every byte for small outputs; for large ones (tags) only the sector
 * heads, the rest being whatever the buffer held. */
static void fill(uint8_t *buf, uint64_t off, uint64_t len, bool tags_only)
{
    if (!tags_only) {
        for (uint64_t i = 0; i < len; i++)
            buf[i] = data_byte(off + i);
        return;
    }
    for (uint64_t i = (512 - off % 512) % 512; i + 8 <= len; i += 512)
        put_be64(buf + i, (off + i) | TAG);
}

/* --- a sink for large outputs ------------------------------------------- */

#define META_MAX 64
/* Host clusters the sink tracks (64 GiB of file); writes stay below. */
#define SINK_CLUSTERS (1u << 20)

struct sink {
    uint64_t limit, size;
    uint64_t *tag;     /* per host cluster: the tag its first bytes carry */
    uint32_t *bytes;   /* per host cluster: bytes written */
    struct {
        uint64_t off;
        uint8_t *p;
    } meta[META_MAX]; /* cluster writes: where the metadata is */
    unsigned nmeta;
};

static int s_write(void *ctx, uint64_t off, const void *buf, uint64_t len)
{
    struct sink *s = ctx;
    const uint8_t *p = buf;
    uint64_t end;

    if (__builtin_add_overflow(off, len, &end) || end > s->limit)
        return CT_ERANGE;
    /* A cluster's worth or less from its start: metadata (the L1 table's
     * last cluster is written only up to its last entry). */
    if (len <= CL && off % CL == 0) {
        cr_assert(s->nmeta < META_MAX, "sink: too many cluster writes");
        s->meta[s->nmeta].off = off;
        s->meta[s->nmeta].p = calloc(1, CL);
        memcpy(s->meta[s->nmeta++].p, buf, len);
    }
    for (uint64_t x = off; x < end;) {
        uint64_t c = x / CL, n = (c + 1) * CL < end ? (c + 1) * CL - x
                                                     : end - x;
        cr_assert(c < SINK_CLUSTERS, "sink: write at %#llx",
                  (unsigned long long)x);
        s->bytes[c] += (uint32_t)n;
        cr_assert(s->bytes[c] <= CL, "sink: cluster %llu written twice",
                  (unsigned long long)c);
        if (x % CL == 0 && n >= 8)
            s->tag[c] = get_be64(p + (x - off));
        x += n;
    }
    if (end > s->size)
        s->size = end;
    return CT_OK;
}

static int s_end(void *ctx, uint64_t file_size)
{
    struct sink *s = ctx;
    if (file_size < s->size || file_size > s->limit)
        return CT_ESTATE;
    s->size = file_size;
    return CT_OK;
}

/* The last cluster write at off (metadata is written once). */
static const uint8_t *s_cluster(const struct sink *s, uint64_t off)
{
    for (unsigned i = s->nmeta; i-- > 0;)
        if (s->meta[i].off == off)
            return s->meta[i].p;
    return NULL;
}

/* --- the harness ------------------------------------------------------- */

struct h {
    bool big;
    struct ct_mem m;
    struct sink s;
    struct ct_ops ops;
    void *hb, *ib;
    struct arena heap, io;
    struct g_error err;
    struct fmt_env env;
    struct fmt_write_opts opts;
    struct fmt_writer *w;
    uint64_t vsize, file_size;
    uint8_t *buf; /* 4 MiB of test data, like an engine chunk */
    uint8_t zeros[CL];
};

static int h_open(struct h *h, uint64_t vsize, uint64_t req, bool big)
{
    static const struct window_args all = {1, 0, 0, false, false};
    memset(h, 0, sizeof *h);
    h->big = big;
    h->vsize = vsize;
    if (big) {
        h->s.limit = output_bound(CT_FMT_QCOW2, vsize);
        h->s.tag = calloc(SINK_CLUSTERS, sizeof *h->s.tag);
        h->s.bytes = calloc(SINK_CLUSTERS, sizeof *h->s.bytes);
        h->ops = (struct ct_ops){.ctx = &h->s, .write = s_write,
                                 .end_output = s_end};
    } else {
        ct_mem_init(&h->m, NULL, 0, CT_FMT_QCOW2, &all);
        h->ops = ct_mem_ops(&h->m);
        cr_assert_eq(h->ops.begin_output(h->ops.ctx, CT_FMT_QCOW2, vsize),
                     CT_OK);
    }
    h->hb = calloc(1, ARENA);
    h->ib = calloc(1, ARENA);
    h->buf = malloc(4 * MiB);
    arena_init(&h->heap, h->hb, ARENA);
    arena_init(&h->io, h->ib, ARENA);
    h->env = (struct fmt_env){
        .ops = &h->ops, .err = &h->err, .heap = &h->heap, .io = &h->io};
    h->opts.request_size = req;
    /* No request size: convert with qemu-img's default -S 4k. */
    h->opts.sparse_min = req ? 0 : 4096;
    return fmt_writer_open(&h->env, CT_FMT_QCOW2, vsize, &h->opts, &h->w);
}

static void h_write(struct h *h, uint64_t off, uint64_t len)
{
    while (len) {
        uint64_t n = len < 4 * MiB ? len : 4 * MiB;
        fill(h->buf, off, n, h->big);
        cr_assert_eq(fmt_writer_write(h->w, off, h->buf, n), G_OK, "%s",
                     h->err.msg);
        off += n;
        len -= n;
    }
}

static void h_zero(struct h *h, uint64_t off, uint64_t len)
{
    cr_assert_eq(fmt_writer_zero(h->w, off, len), G_OK, "%s", h->err.msg);
}

static void h_finish(struct h *h)
{
    cr_assert_eq(fmt_writer_finish(h->w, &h->file_size), G_OK, "%s",
                 h->err.msg);
    cr_assert_eq(h->ops.end_output(h->ops.ctx, h->file_size), CT_OK);
}

/* Opens for vsize, writes it all (dd) and finishes. */
static void h_dense(struct h *h, uint64_t vsize, uint64_t req, bool big)
{
    cr_assert_eq(h_open(h, vsize, req, big), G_OK, "%s", h->err.msg);
    h_write(h, 0, vsize);
    h_finish(h);
}

static void h_free(struct h *h)
{
    if (h->big) {
        for (unsigned i = 0; i < h->s.nmeta; i++)
            free(h->s.meta[i].p);
        free(h->s.tag);
        free(h->s.bytes);
    } else {
        ct_mem_free(&h->m);
    }
    free(h->hb);
    free(h->ib);
    free(h->buf);
}

/* The 64 KiB cluster at off, from whichever file the harness kept; a
 * cluster never written reads as zeros. */
static const uint8_t *h_cluster(const struct h *h, uint64_t off)
{
    if (h->big) {
        const uint8_t *p = s_cluster(&h->s, off);
        return p ? p : h->zeros;
    }
    if (off + CL <= h->m.out_len)
        return h->m.out + off;
    /* A file may end inside its last cluster (the unpadded L1 table). */
    static uint8_t part[CL];
    memset(part, 0, CL);
    if (off < h->m.out_len)
        memcpy(part, h->m.out + off, h->m.out_len - off);
    return part;
}

static uint64_t h_u64(const struct h *h, uint64_t off)
{
    return get_be64(h_cluster(h, off - off % CL) + off % CL);
}

/* The tag of the data at file offset host (must be a cluster start). */
static uint64_t h_tag(const struct h *h, uint64_t host)
{
    return h->big ? h->s.tag[host / CL] : get_be64(h->m.out + host);
}

/* --- checks ------------------------------------------------------------- */

static const char *const feature_names[8] = {
    "dirty bit",           "corrupt bit",    "external data file",
    "compression type",    "extended L2 entries", "lazy refcounts",
    "bitmaps",             "raw external data"};
static const uint8_t feature_type_bit[8][2] = {
    {0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {1, 0}, {2, 0}, {2, 1}};

/* writers.md 2.1, field by field. */
static void check_header(const struct h *h)
{
    const uint8_t *p = h_cluster(h, 0);
    uint64_t l1 = div_up(h->vsize, SPAN);

    cr_expect_eq(get_be32(p), QCOW2_MAGIC);
    cr_expect_eq(get_be32(p + 4), 3u);
    cr_expect_eq(get_be64(p + 8), 0u, "backing_file_offset");
    cr_expect_eq(get_be32(p + 16), 0u, "backing_file_size");
    cr_expect_eq(get_be32(p + 20), 16u, "cluster_bits");
    cr_expect_eq(get_be64(p + 24), h->vsize, "size");
    cr_expect_eq(get_be32(p + 32), 0u, "crypt_method");
    cr_expect_eq(get_be32(p + 36), l1, "l1_size");
    cr_expect_eq(get_be64(p + 40), l1 ? 0x30000u : 0u, "l1_table_offset");
    cr_expect_eq(get_be64(p + 48), 0x10000u, "refcount_table_offset");
    cr_expect_eq(get_be32(p + 56), 1u, "refcount_table_clusters");
    cr_expect_eq(get_be32(p + 60), 0u, "nb_snapshots");
    cr_expect_eq(get_be64(p + 64), 0u, "snapshots_offset");
    cr_expect_eq(get_be64(p + 72), 0u, "incompatible_features");
    cr_expect_eq(get_be64(p + 80), 0u, "compatible_features");
    cr_expect_eq(get_be64(p + 88), 0u, "autoclear_features");
    cr_expect_eq(get_be32(p + 96), 4u, "refcount_order");
    cr_expect_eq(get_be32(p + 100), 112u, "header_length");
    for (unsigned i = 104; i < 112; i++)
        cr_expect_eq(p[i], 0, "compression type and padding, byte %u", i);
    cr_expect_eq(get_be32(p + 112), 0x6803f857u, "feature table type");
    cr_expect_eq(get_be32(p + 116), 384u, "feature table length");
    for (unsigned i = 0; i < 8; i++) {
        const uint8_t *e = p + 120 + 48 * i;
        uint8_t name[46] = {0};
        memcpy(name, feature_names[i], strlen(feature_names[i]));
        cr_expect_eq(e[0], feature_type_bit[i][0], "feature %u type", i);
        cr_expect_eq(e[1], feature_type_bit[i][1], "feature %u bit", i);
        cr_expect_arr_eq(e + 2, name, 46, "feature %u name", i);
    }
    for (unsigned i = 504; i < CL; i++)
        cr_assert_eq(p[i], 0, "header byte %u (end of extensions, rest)", i);
}

/* Refcount table and blocks: refcount 1 for every cluster below the end
 * of the file (rounded up: qemu's create leaves the L1 unpadded), 0 past
 * it; the table lists exactly the blocks it needs. */
static void check_refcounts(const struct h *h)
{
    uint64_t used = div_up(h->file_size, CL);
    uint64_t blocks = div_up(used, CL / 2);
    const uint8_t *rt = h_cluster(h, 0x10000);

    for (uint64_t k = 0; k < CL / 8; k++) {
        uint64_t off = get_be64(rt + 8 * k);
        if (k >= blocks) {
            cr_assert_eq(off, 0u, "refcount table entry %llu",
                         (unsigned long long)k);
            continue;
        }
        cr_assert(off && off % CL == 0 && off < h->file_size,
                  "refcount block %llu at %#llx", (unsigned long long)k,
                  (unsigned long long)off);
        const uint8_t *rb = h_cluster(h, off);
        for (uint64_t i = 0; i < CL / 2; i++) {
            uint64_t c = k * (CL / 2) + i;
            cr_assert_eq(get_be16(rb + 2 * i), c < used ? 1 : 0,
                         "refcount of cluster %llu", (unsigned long long)c);
        }
    }
    cr_expect_eq(get_be64(rt), 0x20000u, "refcount block 0");
}

/* L1 and L2 entries with COPIED; a table is allocated iff some cluster of
 * its span is (want(c) says which), and each data cluster carries its own
 * virtual offset. Returns the host offset of every L2 table in *l2s. */
static void check_tables(const struct h *h, bool (*want)(uint64_t c),
                         uint64_t *l2s)
{
    uint64_t clusters = div_up(h->vsize, CL);
    uint64_t tables = div_up(clusters, L2E);

    for (uint64_t t = 0; t < tables; t++) {
        uint64_t e = h_u64(h, 0x30000 + 8 * t), l2 = e & ~COPIED;
        bool any = false;
        for (uint64_t c = t * L2E; c < clusters && c < (t + 1) * L2E; c++)
            any = any || want(c);
        l2s[t] = l2;
        if (!any) {
            cr_assert_eq(e, 0u, "L1[%llu] for a span without data",
                         (unsigned long long)t);
            continue;
        }
        cr_assert(e & COPIED && l2 && l2 % CL == 0 && l2 < h->file_size,
                  "L1[%llu] = %#llx", (unsigned long long)t,
                  (unsigned long long)e);
        const uint8_t *p = h_cluster(h, l2);
        for (uint64_t i = 0; i < L2E; i++) {
            uint64_t c = t * L2E + i, d = get_be64(p + 8 * i);
            if (c >= clusters || !want(c)) {
                cr_assert_eq(d, 0u, "L2 entry of cluster %llu",
                             (unsigned long long)c);
                continue;
            }
            cr_assert(d & COPIED && (d & ~COPIED) % CL == 0 &&
                          (d & ~COPIED) + CL <= h->file_size,
                      "L2 entry of cluster %llu = %#llx",
                      (unsigned long long)c, (unsigned long long)d);
            cr_assert_eq(h_tag(h, d & ~COPIED), (c * CL) | TAG,
                         "cluster %llu: data at %#llx is another's",
                         (unsigned long long)c,
                         (unsigned long long)(d & ~COPIED));
        }
    }
}

static bool all(uint64_t c)
{
    (void)c;
    return true;
}

/* A dense output's whole layout: header, refcounts, tables, file size. */
static void check_dense(const struct h *h, uint64_t *l2s)
{
    uint64_t clusters = div_up(h->vsize, CL), tables = div_up(clusters, L2E);
    uint64_t l1c = div_up(tables, L2E);
    uint64_t extra = qcow2_alloc_dense_refblocks(clusters, l1c);

    check_header(h);
    cr_expect_eq(h->file_size,
                 CL * (3 + l1c + tables + clusters + extra),
                 "file size %llu", (unsigned long long)h->file_size);
    check_refcounts(h);
    check_tables(h, all, l2s);
}

/* --- small outputs, every byte --------------------------------------------- */

Test(qcow2_write, empty)
{
    struct h h;
    uint64_t l2s[1];
    h_dense(&h, 0, 512, false);
    cr_expect_eq(h.file_size, 196608u);
    check_dense(&h, l2s);
    const uint8_t *rb = h_cluster(&h, 0x20000);
    cr_expect(get_be16(rb) == 1 && get_be16(rb + 2) == 1 &&
              get_be16(rb + 4) == 1 && get_be16(rb + 6) == 0);
    h_free(&h);
}

/* writers.md 2.2: the 3000-byte window. */
Test(qcow2_write, one_cluster_layout)
{
    static const uint64_t sizes[] = {512, 3072, CL - 512, CL};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct h h;
        uint64_t l2s[1];
        h_dense(&h, sizes[i], 512, false);
        check_dense(&h, l2s);
        cr_expect_eq(h.file_size, 0x60000u);
        cr_expect_eq(h_u64(&h, 0x30000), 0x8000000000040000ull);
        cr_expect_eq(h_u64(&h, 0x40000), 0x8000000000050000ull);
        cr_expect_eq(h_u64(&h, 0x40008), 0u);
        for (uint64_t x = 0; x < CL; x++)
            cr_assert_eq(h.m.out[0x50000 + x],
                         x < sizes[i] ? data_byte(x) : 0, "byte %llu",
                         (unsigned long long)x);
        h_free(&h);
    }
}

Test(qcow2_write, two_clusters_and_request_sizes)
{
    /* bs changes nothing below 2 GiB of file (writers.md section 1). */
    static const uint64_t reqs[] = {1, 512, 1000, CL, MiB, 0};
    for (unsigned i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        struct h h;
        uint64_t l2s[1];
        h_dense(&h, CL + 512, reqs[i], false);
        check_dense(&h, l2s);
        cr_expect_eq(h.file_size, 458752u);
        cr_expect_eq(h_u64(&h, 0x40008), 0x8000000000060000ull);
        cr_expect_eq(memcmp(h.m.out + 0x60000 + 512, h.zeros, CL - 512), 0);
        h_free(&h);
    }
}

/* The engine hands chunks of any length: a write that ends mid-cluster,
 * the next one continuing it, lands where one write would. */
Test(qcow2_write, odd_write_lengths)
{
    struct h h;
    uint64_t l2s[1], v = 5 * MiB + 1536, pos = 0, step = 1;
    cr_assert_eq(h_open(&h, v, 1000, false), G_OK);
    while (pos < v) {
        uint64_t n = v - pos < step ? v - pos : step;
        h_write(&h, pos, n);
        pos += n;
        step = step * 3 + 7;
    }
    h_finish(&h);
    check_dense(&h, l2s);
    for (uint64_t x = 0; x < v; x += 4093)
        cr_assert_eq(h.m.out[0x50000 + x], data_byte(x));
    h_free(&h);
}

/* --- the sparse (convert) layout: writers.md 2.4 ------------------------- */

static uint64_t sparse_at;
static bool only_at(uint64_t c)
{
    return c == sparse_at / CL;
}

Test(qcow2_write, sparse_one_cluster_in_a_later_table)
{
    struct h h;
    uint64_t l2s[4], v = 1600 * MiB;
    sparse_at = 1100 * MiB;
    cr_assert_eq(h_open(&h, v, 0, false), G_OK);
    h_zero(&h, 0, sparse_at);
    h_write(&h, sparse_at, 512);
    h_zero(&h, sparse_at + 512, v - sparse_at - 512);
    h_finish(&h);
    check_header(&h);
    check_refcounts(&h);
    check_tables(&h, only_at, l2s);
    cr_expect_eq(h.file_size, 393216u);
    cr_expect_eq(h_u64(&h, 0x30000), 0u);
    cr_expect_eq(h_u64(&h, 0x30010), 0x8000000000040000ull);
    cr_expect_eq(h_u64(&h, 0x40000 + 8 * ((sparse_at - 2 * SPAN) / CL)),
                 0x8000000000050000ull);
    h_free(&h);
}

/* Nothing but zeros: qemu-img convert leaves the file at the end of the
 * unpadded L1 table (196616 bytes for one table). */
Test(qcow2_write, sparse_all_zero)
{
    struct h h;
    cr_assert_eq(h_open(&h, 3072, 0, false), G_OK);
    h_zero(&h, 0, 3072);
    h_finish(&h);
    check_header(&h);
    cr_expect_eq(h.file_size, 196616u);
    cr_expect_eq(h_u64(&h, 0x30000), 0u);
    h_free(&h);
}

/* A cluster with one written byte among zeros is allocated whole; one only
 * zero() reaches is not; zero() inside an allocated cluster reads as
 * zeros. */
static bool even(uint64_t c)
{
    return c % 2 == 0;
}

Test(qcow2_write, sparse_mixed_clusters)
{
    struct h h;
    uint64_t l2s[1], v = 16 * CL;
    cr_assert_eq(h_open(&h, v, 0, false), G_OK);
    for (uint64_t c = 0; c < 16; c++) {
        if (c % 2) {
            h_zero(&h, c * CL, CL);
        } else {
            h_write(&h, c * CL, 8);
            h_zero(&h, c * CL + 8, CL - 8 - 512);
            h_write(&h, c * CL + CL - 512, 512);
        }
    }
    h_finish(&h);
    check_refcounts(&h);
    check_tables(&h, even, l2s);
    cr_expect_eq(h.file_size, CL * (3 + 1 + 1 + 8));
    for (uint64_t c = 0; c < 16; c += 2) {
        uint64_t host = h_u64(&h, 0x40000 + 8 * c) & ~COPIED;
        cr_expect_eq(host, 0x50000 + CL * (c / 2));
        cr_expect_eq(memcmp(h.m.out + host + 8, h.zeros, CL - 8 - 512), 0);
        cr_expect_eq(h.m.out[host + CL - 1], data_byte(c * CL + CL - 1));
    }
    h_free(&h);
}

/* --- large outputs, over the sink ---------------------------------------- */

/* ±512 bytes around the first L2 table boundary (512 MiB). */
Test(qcow2_write, l2_table_boundary)
{
    static const uint64_t sizes[] = {SPAN - 512, SPAN, SPAN + 512};
    static const uint64_t tables[] = {1, 1, 2};
    for (unsigned i = 0; i < 3; i++) {
        struct h h;
        uint64_t l2s[2];
        h_dense(&h, sizes[i], MiB, true);
        check_dense(&h, l2s);
        cr_expect_eq(get_be32(h_cluster(&h, 0) + 36), tables[i]);
        cr_expect_eq(l2s[0], 0x40000u);
        if (tables[i] == 2)
            cr_expect_eq(l2s[1], 0x40000 + CL + SPAN, "L2 1 after data 0");
        h_free(&h);
    }
}

/*
 * Past 2 GiB of file, measured with qemu-img 7.2 dd on a 2100 MiB window
 * (writers.md 2.3; the other request sizes were measured for this test
 * and agree with qcow2_alloc.c in every L1, L2 and refcount entry): where
 * refcount block 1 goes depends on the request size; L2 table 4 follows.
 */
struct crossing {
    uint64_t req, rb1;
};
static const struct crossing crossings[] = {
    {MiB, 0x80080000},           /* run 0x7ff80000..0x8007ffff, then block */
    {512, 0x80010000},           /* cluster by cluster: block right after */
    {64 * KiB, 0x80010000},
    {600 * MiB, 0x80080000},     /* larger than a table's span */
    {MiB + 1, 0x80000000},       /* starts mid-cluster: block at 2 GiB */
    {4 * MiB + 512, 0x80000000}, /* ... and the run flows around it */
    {1000, 0x80000000},
    {12345, 0x80000000},
};

Test(qcow2_write, refcount_block_past_2GiB)
{
    for (unsigned i = 0; i < sizeof crossings / sizeof crossings[0]; i++) {
        struct h h;
        uint64_t l2s[5];
        h_dense(&h, 2100 * MiB, crossings[i].req, true);
        check_dense(&h, l2s);
        cr_expect_eq(h_u64(&h, 0x10008), crossings[i].rb1,
                     "req %llu: refcount block 1 at %#llx",
                     (unsigned long long)crossings[i].req,
                     (unsigned long long)h_u64(&h, 0x10008));
        cr_expect_eq(l2s[3], 0x60070000u);
        cr_expect_eq(l2s[4], 0x80090000u);
        cr_expect_eq(h.file_size, 0x834a0000u);
        h_free(&h);
    }
}

/* ±512 bytes around the window whose dense file is exactly 2 GiB (header,
 * refcount table and block, L1, 4 L2 tables, 32760 data clusters): one
 * more cluster needs refcount block 1, which then follows the last run. */
Test(qcow2_write, refcount_block_boundary)
{
    static const uint64_t sizes[] = {32760 * CL - 512, 32760 * CL,
                                     32760 * CL + 512};
    for (unsigned i = 0; i < 3; i++) {
        struct h h;
        uint64_t l2s[4];
        h_dense(&h, sizes[i], MiB, true);
        check_dense(&h, l2s);
        if (i < 2) {
            cr_expect_eq(h.file_size, 2 * GiB);
            cr_expect_eq(h_u64(&h, 0x10008), 0u);
        } else {
            cr_expect_eq(h.file_size, 2 * GiB + 2 * CL);
            cr_expect_eq(h_u64(&h, 0x10008), 2 * GiB + CL);
        }
        h_free(&h);
    }
}

/* The same at the level of single clusters: where every data cluster of
 * table 3 lands around the block, for the cases that differ. */
static void plan(uint64_t req, uint64_t c, uint64_t *before, uint64_t *at,
                 uint64_t *last, uint64_t *rb1)
{
    struct h h;
    uint64_t l2s[5];
    h_dense(&h, 2100 * MiB, req, true);
    check_dense(&h, l2s);
    const uint8_t *t3 = h_cluster(&h, l2s[3]);
    *before = get_be64(t3 + 8 * (c - 1 - 3 * L2E)) & ~COPIED;
    *at = get_be64(t3 + 8 * (c - 3 * L2E)) & ~COPIED;
    *last = get_be64(t3 + 8 * (L2E - 1)) & ~COPIED;
    *rb1 = h_u64(&h, 0x10008);
    h_free(&h);
}

Test(qcow2_write, runs_around_the_block)
{
    /* Virtual cluster 4 * 8192 - 8 would sit at 2 GiB without the block. */
    uint64_t c = 4 * L2E - 8, before, at, last, rb1;

    plan(MiB, c, &before, &at, &last, &rb1);
    cr_expect_eq(at, 0x80000000u);
    cr_expect_eq(last, 0x80070000u);
    cr_expect_eq(rb1, 0x80080000u);

    plan(4 * MiB + 512, c, &before, &at, &last, &rb1);
    cr_expect_eq(rb1, 0x80000000u);
    cr_expect_eq(before, 0x7fff0000u);
    cr_expect_eq(at, 0x80010000u);
    cr_expect_eq(last, 0x80080000u);

    plan(64 * KiB, c, &before, &at, &last, &rb1);
    cr_expect_eq(at, 0x80000000u);
    cr_expect_eq(before + CL, 0x80000000u);
    cr_expect_eq(rb1, 0x80010000u);
}

/* --- the allocator model alone ------------------------------------------- */

struct msink {
    uint64_t blocks, last_block_index, last_block;
    uint64_t moves;
};

static int m_block(void *ctx, uint64_t index, uint64_t host)
{
    struct msink *m = ctx;
    m->blocks++;
    m->last_block_index = index;
    m->last_block = host;
    return G_OK;
}

static int m_counts(void *ctx, uint64_t c, uint64_t n, uint64_t v)
{
    (void)ctx, (void)c, (void)n, (void)v;
    return G_OK;
}

static int m_moved(void *ctx, uint64_t host, uint64_t n)
{
    struct msink *m = ctx;
    (void)host, (void)n;
    m->moves++;
    return G_OK;
}

/* A model of cluster_bits with a table of cap entries, L1 of l1 entries. */
static void m_init(struct qcow2_alloc *a, struct msink *m, unsigned bits,
                   uint64_t cap, uint64_t l1, struct g_error *err)
{
    static uint64_t *entries;
    struct qcow2_alloc_sink s = {m, m_block, m_counts, m_moved};
    uint64_t l1_host;
    free(entries);
    entries = calloc(cap, 8);
    memset(m, 0, sizeof *m);
    memset(err, 0, sizeof *err);
    cr_assert_eq(qcow2_alloc_init(a, bits, entries, cap, l1, &s, err,
                                  &l1_host),
                 G_OK, "%s", err->msg);
    cr_expect_eq(l1_host, l1 ? 3u : 0u);
}

/* An L2 table that is the first allocation past 2 GiB: the block follows
 * it, and the table's data follows the block. */
Test(qcow2_write, model_l2_table_at_2GiB)
{
    struct qcow2_alloc a;
    struct msink m;
    struct g_error err;
    uint64_t l2, data;
    m_init(&a, &m, 16, L2E, 1, &err);
    a.top = 32768; /* as if the file had just filled 2 GiB */
    cr_assert_eq(qcow2_alloc_clusters(&a, CL, &l2), G_OK);
    cr_expect_eq(l2, 32768u);
    cr_expect(m.last_block_index == 1 && m.last_block == 32769);
    cr_assert_eq(qcow2_alloc_clusters(&a, 16 * CL, &data), G_OK);
    cr_expect_eq(data, 32770u);
}

/* Block k counts itself: dense dd-style allocation (an L2 table, then its
 * clusters in 3 MiB requests) needs as many blocks as the formula says. */
Test(qcow2_write, dense_refblock_count)
{
    static const uint64_t sizes[] = {0,          512,     2 * GiB - 5 * MiB,
                                     2 * GiB - 4 * MiB, 2 * GiB, 2100 * MiB,
                                     4 * GiB,    6 * GiB + 12345};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct qcow2_alloc a;
        struct msink m;
        struct g_error err;
        uint64_t clusters = div_up(sizes[i], CL), host, used = 0;
        m_init(&a, &m, 16, L2E, div_up(clusters, L2E), &err);
        for (uint64_t c = 0; c < clusters;) {
            uint64_t n = clusters - c < 48 ? clusters - c : 48;
            if (c % L2E + n > L2E)
                n = L2E - c % L2E;
            if (c % L2E == 0)
                cr_assert_eq(qcow2_alloc_clusters(&a, CL, &host), G_OK);
            cr_assert_eq(qcow2_alloc_clusters(&a, n * CL, &host), G_OK);
            c += n;
        }
        for (uint64_t k = 0; k < L2E; k++)
            used += a.entries[k] != 0;
        cr_expect_eq(used - 1, qcow2_alloc_dense_refblocks(clusters, 1),
                     "size %llu", (unsigned long long)sizes[i]);
        cr_expect_eq(a.nholes, 0u, "no holes at 64 KiB clusters");
    }
}

/* A file that would pass 16 TiB (8192 refcount blocks) is refused before
 * anything is written; the largest one that fits is not. */
Test(qcow2_write, refcount_table_limit)
{
    /* clusters c with 3 + 1 + ceil(c/8192) + c + extra blocks <= 2^28 */
    uint64_t lo = 0, hi = (16 * TiB) / CL;
    while (lo < hi) {
        uint64_t mid = (lo + hi + 1) / 2;
        if (qcow2_alloc_dense_refblocks(mid, div_up(div_up(mid, L2E), L2E)) <
            L2E)
            lo = mid;
        else
            hi = mid - 1;
    }
    struct h h;
    cr_expect_eq(h_open(&h, lo * CL, MiB, true), G_OK, "%s", h.err.msg);
    h_free(&h);
    cr_expect_eq(h_open(&h, lo * CL + 512, MiB, true), G_ERANGE);
    cr_expect(strstr(h.err.msg, "qcow2") && strstr(h.err.msg, "16 TiB"),
              "%s", h.err.msg);
    cr_expect_eq(h.s.size, 0u, "nothing written");
    h_free(&h);
    /* Sparse (no request size): refused when an allocation needs block
     * 8192, which the one-cluster table cannot list. */
    struct qcow2_alloc a;
    struct msink m;
    struct g_error err;
    uint64_t host;
    m_init(&a, &m, 16, L2E, 1024, &err);
    a.top = 8192ull * 32768 - 1;
    for (uint64_t k = 1; k < L2E; k++)
        a.entries[k] = k * 32768;
    cr_expect_eq(qcow2_alloc_clusters(&a, 2 * CL, &host), G_ERANGE);
    cr_expect(strstr(err.msg, "16 TiB"), "%s", err.msg);
    cr_expect_eq(m.moves, 0u, "no table written");
}

/* ±512 bytes around 4 TiB, where the L1 table takes a second cluster;
 * sparse, with data in the last cluster of the first L1 cluster's span
 * and the first of the next. */
static uint64_t l1_edge;
static bool at_l1_edge(uint64_t c)
{
    return c == l1_edge / CL - 1 || c == l1_edge / CL;
}

Test(qcow2_write, l1_cluster_boundary)
{
    static const uint64_t sizes[] = {4 * TiB - 512, 4 * TiB, 4 * TiB + 512};
    l1_edge = 4 * TiB;
    for (unsigned i = 0; i < 3; i++) {
        struct h h;
        uint64_t v = sizes[i], l2s[8193];
        uint64_t l1c = div_up(div_up(v, SPAN), L2E);
        uint64_t from = l1_edge - CL;
        cr_assert_eq(h_open(&h, v, 0, true), G_OK, "%s", h.err.msg);
        h_zero(&h, 0, from);
        h_write(&h, from, v - from);
        h_finish(&h);
        check_header(&h);
        check_refcounts(&h);
        check_tables(&h, at_l1_edge, l2s);
        cr_expect_eq(l1c, i == 2 ? 2u : 1u);
        uint64_t first = (3 + l1c) * CL;
        cr_expect_eq(l2s[8191], first);
        if (i == 2) {
            /* L1 entry 8192 is the first of the L1's second cluster. */
            cr_expect_eq(h_u64(&h, 0x40000), (first + 2 * CL) | COPIED);
            cr_expect_eq(h.file_size, first + 4 * CL);
        } else {
            cr_expect_eq(h.file_size, first + 2 * CL);
        }
        h_free(&h);
    }
}

/* --- memory ---------------------------------------------------------------- */

/* The writer holds one L2 table, one L1 cluster, two refcount blocks, a
 * scratch cluster and the refcount table, whatever the virtual size. */
Test(qcow2_write, memory_is_bounded)
{
    static const uint64_t sizes[] = {GiB, TiB, 15 * TiB};
    for (unsigned i = 0; i < 3; i++) {
        struct h h;
        cr_assert_eq(h_open(&h, sizes[i], MiB, true), G_OK, "%s",
                     h.err.msg);
        cr_expect_eq(h.io.used, 5 * CL, "I/O bytes %llu",
                     (unsigned long long)h.io.used);
        cr_expect_leq(h.heap.used, 8 * L2E + 4096u, "heap bytes %llu",
                      (unsigned long long)h.heap.used);
        h_free(&h);
    }
}

/* The output of the engine's dd reads back through the project's qcow2
 * reader with the same bytes (the writers' property tests do the same for
 * random windows). */
Test(qcow2_write, reads_back)
{
    struct rig r;
    struct g_error err;
    uint64_t vsize = 0;
    size_t len = 3 * MiB + 777;
    uint8_t *in = rig_pattern(len, 3);
    rig_write(&r, in, len, (struct window_args){4096, 0, 0, false, false},
              CT_FMT_QCOW2, NULL);
    cr_assert_eq(r.ret, G_OK, "%s", r.err.msg);
    uint8_t *back = rig_read_back(&r, CT_FMT_QCOW2, &vsize, &err);
    cr_assert(back, "%s", err.msg);
    cr_assert_eq(vsize, div_up(len, 512) * 512);
    cr_assert_eq(memcmp(back, in, len), 0);
    free(back);
    free(in);
    rig_free(&r);
}
