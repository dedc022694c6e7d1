/*
 * The vpc writer driven directly (fmt_writer_open, _write, _zero,
 * _finish), its bytes checked field by field against writers.md section 4
 * and read back with the project's vpc reader. Ordinary sizes run over
 * ct_mem; disks whose blocks land far apart in the virtual disk (BAT
 * sector crossings, 2040 GiB) run over a sparse in-memory file.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ct_mem.h"
#include "fmt/fmt.h"
#include "fmt/vpc.h"
#include "output_bound.h"
#include "vhd_chs.h"
#include "writer_rig.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define BLOCK (2 * MiB)
#define UNUSED 0xffffffffu
#define T0 1700000000ull
#define ARENA (1u << 20)
#define MAX_RANGES 16

/* --- a sparse file: the extents as written, later ones on top ---------- */

struct ext {
    uint64_t off, len;
    uint8_t *data;
};

struct sfile {
    struct ext *v;
    size_t n, cap;
    uint64_t limit; /* output_bound(), as the host enforces it */
    uint64_t size;
};

static int s_write(void *ctx, uint64_t off, const void *buf, uint64_t len)
{
    struct sfile *f = ctx;
    uint64_t end;
    if (__builtin_add_overflow(off, len, &end) || end > f->limit)
        return CT_ERANGE;
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 64;
        f->v = realloc(f->v, f->cap * sizeof *f->v);
        cr_assert(f->v);
    }
    f->v[f->n].off = off;
    f->v[f->n].len = len;
    f->v[f->n].data = malloc(len ? len : 1);
    memcpy(f->v[f->n].data, buf, len);
    f->n++;
    if (end > f->size)
        f->size = end;
    return CT_OK;
}

static void s_read_at(const struct sfile *f, uint64_t off, uint8_t *buf,
                      uint64_t len)
{
    memset(buf, 0, len);
    for (size_t i = 0; i < f->n; i++) {
        const struct ext *e = &f->v[i];
        uint64_t a = e->off > off ? e->off : off;
        uint64_t b = e->off + e->len < off + len ? e->off + e->len
                                                 : off + len;
        if (a < b)
            memcpy(buf + (a - off), e->data + (a - e->off), b - a);
    }
}

static int s_read(void *ctx, uint32_t handle, uint64_t off, void *buf,
                  uint64_t len, uint64_t *got)
{
    struct sfile *f = ctx;
    if (handle != CT_HANDLE_INPUT)
        return CT_EBADH;
    *got = off < f->size ? (f->size - off < len ? f->size - off : len) : 0;
    s_read_at(f, off, buf, *got);
    return CT_OK;
}

static int s_size(void *ctx, uint32_t handle, uint64_t *size)
{
    if (handle != CT_HANDLE_INPUT)
        return CT_EBADH;
    *size = ((struct sfile *)ctx)->size;
    return CT_OK;
}

static int s_end(void *ctx, uint64_t file_size)
{
    struct sfile *f = ctx;
    if (file_size < f->size || file_size > f->limit)
        return CT_ESTATE;
    f->size = file_size;
    return CT_OK;
}

static void s_free(struct sfile *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].data);
    free(f->v);
}

/* --- the harness ------------------------------------------------------- */

struct h {
    bool sparse;
    struct ct_mem m;
    struct sfile f;
    struct ct_ops ops;
    void *hb, *ib;
    struct arena heap, io;
    struct g_error err;
    struct fmt_env env;
    uint8_t entropy[FMT_ENTROPY_LEN];
    struct fmt_write_opts opts;
    struct fmt_writer *w;
    uint64_t vsize, file_size;
    uint64_t wr[MAX_RANGES][2]; /* written ranges: [start, end) */
    unsigned nwr;
};

/* A byte the tests write at virtual offset o: never zero. */
static uint8_t pat(uint64_t o)
{
    return (uint8_t)((o * 7 + (o >> 11) * 3) % 251 + 1);
}

static void env_init(struct h *h, struct ct_ops *ops, struct arena *heap,
                     struct arena *io, struct fmt_env *env)
{
    h->hb = calloc(1, ARENA);
    h->ib = calloc(1, ARENA);
    arena_init(heap, h->hb, ARENA);
    arena_init(io, h->ib, ARENA);
    *env = (struct fmt_env){.ops = ops, .err = &h->err, .heap = heap, .io = io};
}

/* Opens the writer for a window of data_end bytes (a multiple of 512);
 * returns its result (the writer is in h->w when G_OK). */
static int h_try_open(struct h *h, uint64_t data_end, bool sparse)
{
    memset(h, 0, sizeof *h);
    h->sparse = sparse;
    for (unsigned i = 0; i < FMT_ENTROPY_LEN; i++)
        h->entropy[i] = (uint8_t)(0xa0 + 3 * i);
    h->opts = (struct fmt_write_opts){.unix_time = T0,
                                      .entropy = h->entropy,
                                      .out_name = "o.vpc",
                                      .out_name_len = 5};
    cr_assert(output_vsize(CT_FMT_VPC, data_end, &h->vsize));
    if (sparse) {
        h->f.limit = output_bound(CT_FMT_VPC, h->vsize);
        h->ops = (struct ct_ops){.ctx = &h->f,
                                 .size = s_size,
                                 .read = s_read,
                                 .write = s_write,
                                 .end_output = s_end};
    } else {
        static const struct window_args all = {1, 0, 0, false, false};
        ct_mem_init(&h->m, NULL, 0, CT_FMT_VPC, &all);
        h->ops = ct_mem_ops(&h->m);
        cr_assert_eq(h->ops.begin_output(h->ops.ctx, CT_FMT_VPC, data_end),
                     CT_OK);
    }
    env_init(h, &h->ops, &h->heap, &h->io, &h->env);
    return fmt_writer_open(&h->env, CT_FMT_VPC, h->vsize, &h->opts, &h->w);
}

static void h_open(struct h *h, uint64_t data_end, bool sparse)
{
    cr_assert_eq(h_try_open(h, data_end, sparse), G_OK, "%s", h->err.msg);
}

/* Writes the pattern over [off, off + len); the checks expect it there
 * only if the range is recorded (h_write). */
static void h_put(struct h *h, uint64_t off, uint64_t len)
{
    uint8_t *buf = malloc(len);
    for (uint64_t i = 0; i < len; i++)
        buf[i] = pat(off + i);
    cr_assert_eq(fmt_writer_write(h->w, off, buf, len), G_OK, "%s",
                 h->err.msg);
    free(buf);
}

static void h_write(struct h *h, uint64_t off, uint64_t len)
{
    h_put(h, off, len);
    cr_assert(h->nwr < MAX_RANGES);
    h->wr[h->nwr][0] = off;
    h->wr[h->nwr++][1] = off + len;
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

/* Bytes [off, off + len) of the output file. */
static void h_file(const struct h *h, uint64_t off, uint8_t *buf,
                   uint64_t len)
{
    if (h->sparse) {
        s_read_at(&h->f, off, buf, len);
        return;
    }
    cr_assert_leq(off + len, h->m.out_len);
    memcpy(buf, h->m.out + off, len);
}

static uint32_t h_be32(const struct h *h, uint64_t off)
{
    uint8_t b[4];
    h_file(h, off, b, 4);
    return get_be32(b);
}

static void h_free(struct h *h)
{
    if (h->sparse)
        s_free(&h->f);
    else
        ct_mem_free(&h->m);
    free(h->hb);
    free(h->ib);
}

/* What virtual byte o should read as. */
static uint8_t want(const struct h *h, uint64_t o)
{
    for (unsigned i = 0; i < h->nwr; i++)
        if (o >= h->wr[i][0] && o < h->wr[i][1])
            return pat(o);
    return 0;
}

/* --- field checks (offsets from writers.md 4.1 and 4.2) ---------------- */

static bool all_bytes(const uint8_t *p, uint64_t n, uint8_t v)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

static void check_footer(const struct h *h, const uint8_t *f, unsigned c,
                         unsigned heads, unsigned spt)
{
    cr_expect(memcmp(f, "conectix", 8) == 0);
    cr_expect_eq(get_be32(f + 8), 2, "features");
    cr_expect_eq(get_be32(f + 12), 0x00010000, "version");
    cr_expect_eq(get_be64(f + 16), 512, "data offset");
    cr_expect_eq(get_be32(f + 24), T0 - 946684800, "timestamp");
    cr_expect(memcmp(f + 28, "qemu", 4) == 0, "creator application");
    cr_expect_eq(get_be32(f + 32), 0x00050003, "creator version");
    cr_expect(memcmp(f + 36, "Wi2k", 4) == 0, "creator host OS");
    cr_expect_eq(get_be64(f + 40), h->vsize, "original size");
    cr_expect_eq(get_be64(f + 48), h->vsize, "current size");
    cr_expect_eq(get_be16(f + 56), c, "cylinders %u", get_be16(f + 56));
    cr_expect_eq(f[58], heads, "heads %u", f[58]);
    cr_expect_eq(f[59], spt, "sectors per track %u", f[59]);
    cr_expect_eq(get_be32(f + 60), 3, "disk type");
    cr_expect_eq(get_be32(f + 64), vpc_checksum(f, 512, 64), "checksum");
    /* A version 4 UUID from the entropy. */
    for (unsigned i = 0; i < 16; i++) {
        uint8_t e = h->entropy[i];
        uint8_t u = i == 6 ? (uint8_t)((e & 0x0f) | 0x40)
                    : i == 8 ? (uint8_t)((e & 0x3f) | 0x80) : e;
        cr_expect_eq(f[68 + i], u, "uuid byte %u", i);
    }
    cr_expect(all_bytes(f + 84, 512 - 84, 0), "saved state, reserved");
}

static void check_dynhdr(const uint8_t *d, uint64_t entries)
{
    cr_expect(memcmp(d, "cxsparse", 8) == 0);
    cr_expect_eq(get_be64(d + 8), UINT64_MAX, "data offset");
    cr_expect_eq(get_be64(d + 16), 1536, "table offset");
    cr_expect_eq(get_be32(d + 24), 0x00010000, "header version");
    cr_expect_eq(get_be32(d + 28), entries, "max table entries %u",
                 get_be32(d + 28));
    cr_expect_eq(get_be32(d + 32), BLOCK, "block size");
    cr_expect_eq(get_be32(d + 36), vpc_checksum(d, 1024, 36), "checksum");
    cr_expect(all_bytes(d + 40, 1024 - 40, 0), "parent fields, reserved");
}

/* The geometry qemu-img gives a window of `end` bytes (vhd_chs.h, checked
 * against the live qemu-img). */
static struct vhd_chs geo(uint64_t end)
{
    struct vhd_chs g;
    uint64_t v;
    cr_assert(vhd_chs_size(end, &v, &g));
    return g;
}

/* Footer copy, dynamic header, footer at the end identical to the copy,
 * BAT padding; returns the BAT length. */
static uint64_t check_metadata(const struct h *h, unsigned c, unsigned heads,
                               unsigned spt)
{
    uint64_t n = (h->vsize + BLOCK - 1) / BLOCK;
    uint64_t bat = (4 * n + 511) / 512 * 512;
    uint8_t head[1536], tail[512];

    h_file(h, 0, head, sizeof head);
    h_file(h, h->file_size - 512, tail, sizeof tail);
    check_footer(h, head, c, heads, spt);
    check_dynhdr(head + 512, n);
    cr_expect(memcmp(head, tail, 512) == 0, "footer copy != footer");
    if (bat > 4 * n) {
        uint8_t *pad = malloc(bat - 4 * n);
        h_file(h, 1536 + 4 * n, pad, bat - 4 * n);
        cr_expect(all_bytes(pad, bat - 4 * n, 0xff), "BAT padding");
        free(pad);
    }
    return bat;
}

/* Block i's BAT entry. */
static uint32_t bat_entry(const struct h *h, uint64_t i)
{
    return h_be32(h, 1536 + 4 * i);
}

/* The allocated block at entry e: a 0xFF bitmap, and data that reads as
 * written (holes as zeros) for virtual block `block`. */
static void check_block(const struct h *h, uint32_t e, uint64_t block)
{
    uint8_t bm[512];
    uint8_t *data = malloc(BLOCK);
    h_file(h, (uint64_t)e * 512, bm, 512);
    cr_expect(all_bytes(bm, 512, 0xff), "bitmap of block %llu",
              (unsigned long long)block);
    h_file(h, (uint64_t)e * 512 + 512, data, BLOCK);
    for (uint64_t i = 0; i < BLOCK; i++) {
        uint64_t o = block * BLOCK + i;
        if (data[i] != want(h, o))
            cr_assert_fail("block %llu byte %llu: %u, want %u",
                           (unsigned long long)block,
                           (unsigned long long)i, data[i], want(h, o));
    }
    free(data);
}

/* The first n BAT entries are `bat`, and every allocated block holds
 * what was written to it. */
static void check_bat(const struct h *h, const uint32_t *bat, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        cr_expect_eq(bat_entry(h, i), bat[i], "entry %u: 0x%x", i,
                     bat_entry(h, i));
        if (bat[i] != UNUSED)
            check_block(h, bat[i], i);
    }
}

/* Reads the output with the project's vpc reader: the virtual size, and
 * every byte of [off, off + len). */
static void check_read_back(struct h *h, uint64_t off, uint64_t len)
{
    struct ct_mem m;
    struct ct_ops ops;
    struct arena heap, io;
    struct fmt_env env;
    struct fmt_reader *r;
    void *hb = h->hb, *ib = h->ib;
    static const struct window_args all = {1, 0, 0, false, false};

    if (h->sparse) {
        ops = h->ops;
    } else {
        ct_mem_init(&m, h->m.out, h->m.out_len, CT_FMT_RAW, &all);
        ops = ct_mem_ops(&m);
    }
    env_init(h, &ops, &heap, &io, &env);
    cr_assert_eq(fmt_open(&env, CT_HANDLE_INPUT, CT_FMT_VPC, 0, &r), G_OK,
                 "%s", h->err.msg);
    cr_expect_eq(r->vsize, h->vsize, "read back: virtual size %llu",
                 (unsigned long long)r->vsize);
    uint8_t *buf = arena_alloc(&io, 64 * 1024, 512);
    for (uint64_t done = 0; done < len;) {
        uint64_t n = len - done < 65536 ? len - done : 65536;
        cr_assert_eq(r->read(r, off + done, buf, n), G_OK, "%s",
                     h->err.msg);
        for (uint64_t i = 0; i < n; i++)
            if (buf[i] != want(h, off + done + i))
                cr_assert_fail("read back byte %llu: %u, want %u",
                               (unsigned long long)(off + done + i), buf[i],
                               want(h, off + done + i));
        done += n;
    }
    free(h->hb);
    free(h->ib);
    h->hb = hb;
    h->ib = ib;
}

/* --- sizes from writers.md --------------------------------------------- */

Test(vpc_write, empty)
{
    struct h h;
    h_open(&h, 0, false);
    h_finish(&h);
    /* 4.4: footer copy, dynamic header with no entries, footer. */
    cr_expect_eq(h.file_size, 2048);
    cr_expect_eq(h.vsize, 0);
    cr_expect_eq(check_metadata(&h, 0, 0, 0), 0);
    check_read_back(&h, 0, 0);
    h_free(&h);
}

/* One data block at sector 4 for windows of one sector up to one block. */
static void one_block(uint64_t data_end, uint64_t vsize, unsigned c,
                      unsigned heads, unsigned spt, unsigned n)
{
    struct h h;
    h_open(&h, data_end, false);
    cr_assert_eq(h.vsize, vsize);
    h_write(&h, 0, data_end);
    h_finish(&h);
    cr_expect_eq(h.file_size, 2048 + 512 + BLOCK + 512);
    cr_expect_eq(check_metadata(&h, c, heads, spt), 512);
    /* Block 1, when there is one, holds only CHS padding. */
    check_bat(&h, (const uint32_t[]){4, UNUSED}, n);
    check_read_back(&h, 0, vsize);
    h_free(&h);
}

Test(vpc_write, one_sector) { one_block(512, 34816, 1, 4, 17, 1); }
Test(vpc_write, unaligned_3000) { one_block(3072, 34816, 1, 4, 17, 1); }
Test(vpc_write, one_mib_and_a_bit)
{
    one_block(MiB + 1536, 1079296, 31, 4, 17, 1);
}
/* 4.2: the block past a 2 MiB window holds only CHS padding. */
Test(vpc_write, one_block_exactly) { one_block(BLOCK, 2123776, 61, 4, 17, 2); }
Test(vpc_write, one_block_minus_a_sector)
{
    one_block(BLOCK - 512, 2123776, 61, 4, 17, 2);
}

Test(vpc_write, one_block_plus_a_sector)
{
    struct h h;
    h_open(&h, BLOCK + 512, false);
    h_write(&h, 0, BLOCK + 512);
    h_finish(&h);
    cr_expect_eq(h.file_size, 4197888);
    check_metadata(&h, 61, 4, 17);
    check_bat(&h, (const uint32_t[]){4, 4 + 4097}, 2);
    check_read_back(&h, 0, h.vsize);
    h_free(&h);
}

/* 4.2's example, through the engine: 5 MiB + 1536 gives [0x4, 0x1005,
 * 0x2006] and 6295552 bytes. */
Test(vpc_write, dd_three_blocks)
{
    struct rig r = {0};
    uint8_t *in = rig_pattern(5 * MiB + 1536, 3);
    rig_write(&r, in, 5 * MiB + 1536, (struct window_args){MiB, 0, 0, 0, 0},
              CT_FMT_VPC, NULL);
    cr_assert_eq(r.ret, G_OK, "%s", r.err.msg);
    cr_expect_eq(r.m.out_len, 6295552);
    cr_expect_eq(get_be32(r.m.out + 1536), 0x4);
    cr_expect_eq(get_be32(r.m.out + 1540), 0x1005);
    cr_expect_eq(get_be32(r.m.out + 1544), 0x2006);
    cr_expect(all_bytes(r.m.out + 1548, 512 - 12, 0xff));
    /* The part of block 2 past the window is left alone (zeros). */
    cr_expect(memcmp(r.m.out + 0x2007 * 512, in + 4 * MiB, MiB + 1536) == 0);
    cr_expect(all_bytes(r.m.out + 0x2007 * 512 + MiB + 1536,
                        BLOCK - MiB - 1536, 0));
    free(in);
    rig_free(&r);
}

/* --- the BAT across its sector boundary (128 entries) ------------------ */

/* The largest window (a multiple of 512) whose disk has `entries` BAT
 * entries. */
static uint64_t window_with_entries(uint64_t entries)
{
    uint64_t lo = 512, hi = entries * BLOCK, v;
    while (lo < hi) {
        uint64_t mid = (lo + hi + 512) / 2 / 512 * 512;
        cr_assert(output_vsize(CT_FMT_VPC, mid, &v));
        if ((v + BLOCK - 1) / BLOCK <= entries)
            lo = mid;
        else
            hi = mid - 512;
    }
    return lo;
}

/* Only the last block written: it gets the first bitmap after the BAT. */
static void last_block_only(uint64_t entries, uint64_t bat_bytes)
{
    struct h h;
    uint64_t end = window_with_entries(entries);
    uint64_t last = (end - 1) / BLOCK;
    uint32_t first = (uint32_t)((1536 + bat_bytes) / 512);

    h_open(&h, end, false);
    cr_assert_eq((h.vsize + BLOCK - 1) / BLOCK, entries);
    h_zero(&h, 0, last * BLOCK);
    h_write(&h, last * BLOCK, end - last * BLOCK);
    h_finish(&h);
    struct vhd_chs g = geo(end);
    cr_expect_eq(check_metadata(&h, g.cylinders, g.heads, g.sectors),
                 bat_bytes);
    for (uint64_t i = 0; i < entries; i++)
        cr_expect_eq(bat_entry(&h, i), i == last ? first : UNUSED,
                     "entry %llu", (unsigned long long)i);
    check_block(&h, first, last);
    cr_expect_eq(h.file_size, 1536 + bat_bytes + 512 + BLOCK + 512);
    check_read_back(&h, last * BLOCK - 4096, h.vsize - last * BLOCK + 4096);
    h_free(&h);
}

Test(vpc_write, bat_one_sector_full) { last_block_only(128, 512); }
Test(vpc_write, bat_one_entry_into_sector_two) { last_block_only(129, 1024); }

/* Every block allocated in order across the BAT sector boundary: the
 * first sector is flushed when block 128 comes, the second in finish. */
Test(vpc_write, bat_sectors_in_order)
{
    struct h h;
    uint64_t end = window_with_entries(129);
    struct vhd_chs g = geo(end);
    h_open(&h, end, true);
    for (uint64_t b = 0; b * BLOCK < end; b++) {
        uint64_t n = end - b * BLOCK < BLOCK ? end - b * BLOCK : BLOCK;
        /* Only the blocks around the boundary are checked. */
        if (b == 0 || b == 127 || b == 128)
            h_write(&h, b * BLOCK, 512);
        else
            h_put(&h, b * BLOCK, 512);
        h_zero(&h, b * BLOCK + 512, n - 512);
    }
    h_finish(&h);
    cr_expect_eq(check_metadata(&h, g.cylinders, g.heads, g.sectors), 1024);
    for (uint64_t i = 0; i < 129; i++)
        cr_expect_eq(bat_entry(&h, i), 5 + 4097 * i, "entry %llu",
                     (unsigned long long)i);
    cr_expect_eq(h.file_size, 2560 + 129 * (512 + BLOCK) + 512);
    check_block(&h, 5 + 4097 * 127, 127);
    check_block(&h, 5 + 4097 * 128, 128);
    check_read_back(&h, 0, 4096);
    check_read_back(&h, 127 * BLOCK - 4096, 8192);
    check_read_back(&h, 128 * BLOCK - 4096, 8192);
    h_free(&h);
}

/* --- zero(): blocks nobody writes stay unallocated (convert) ----------- */

Test(vpc_write, zero_everything)
{
    struct h h;
    h_open(&h, 5 * MiB + 1536, false);
    h_zero(&h, 0, 5 * MiB + 1536);
    h_finish(&h);
    cr_expect_eq(h.file_size, 2560);
    check_metadata(&h, 151, 4, 17);
    check_bat(&h, (const uint32_t[]){UNUSED, UNUSED, UNUSED}, 3);
    check_read_back(&h, 0, h.vsize);
    h_free(&h);
}

Test(vpc_write, zero_and_data_mixed)
{
    struct h h;
    h_open(&h, 5 * MiB + 1536, false);
    h_zero(&h, 0, BLOCK + MiB);           /* block 0 never written */
    h_write(&h, BLOCK + MiB, 4096);       /* block 1: a hole before */
    h_zero(&h, BLOCK + MiB + 4096, MiB - 4096 + 1);
    h_write(&h, 2 * BLOCK + 1, 1000);     /* block 2: unaligned */
    h_zero(&h, 2 * BLOCK + 1001, MiB + 1536 - 1001);
    h_finish(&h);
    cr_expect_eq(h.file_size, 2048 + 2 * (512 + BLOCK) + 512);
    check_metadata(&h, 151, 4, 17);
    check_bat(&h, (const uint32_t[]){UNUSED, 4, 4 + 4097}, 3);
    check_read_back(&h, 0, h.vsize);
    h_free(&h);
}

/* A zero() that skips whole BAT sectors: they are filled with 0xFF. */
Test(vpc_write, zero_across_bat_sectors)
{
    struct h h;
    uint64_t end = 3 * GiB; /* 1537 entries: 13 BAT sectors */
    h_open(&h, end, true);
    uint64_t n = (h.vsize + BLOCK - 1) / BLOCK;
    cr_assert_eq(n, 1537);
    h_write(&h, 0, 512);
    h_zero(&h, 512, end - 1024);
    h_write(&h, end - 512, 512);
    h_finish(&h);
    struct vhd_chs g = geo(end);
    uint64_t bat = check_metadata(&h, g.cylinders, g.heads, g.sectors);
    cr_expect_eq(bat, 512 * 13);
    uint32_t first = (uint32_t)((1536 + bat) / 512);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t want_e = i == 0 ? first
                          : i == (end - 1) / BLOCK ? first + 4097 : UNUSED;
        if (bat_entry(&h, i) != want_e)
            cr_assert_fail("entry %llu: 0x%x, want 0x%x",
                           (unsigned long long)i, bat_entry(&h, i), want_e);
    }
    cr_expect_eq(h.file_size, 1536 + bat + 2 * (512 + BLOCK) + 512);
    check_read_back(&h, 0, 4096);
    check_read_back(&h, GiB, 4096);
    check_read_back(&h, end - 4096, h.vsize - end + 4096);
    h_free(&h);
}

/* --- the size limit ---------------------------------------------------- */

/* 2040 GiB, the largest disk qemu-img makes: the exact size (past the
 * largest geometry), a 4177920-byte BAT, the last block addressable. */
Test(vpc_write, largest_disk)
{
    struct h h;
    uint64_t end = 2040 * GiB, n = end / BLOCK;
    h_open(&h, end, true);
    cr_assert_eq(h.vsize, end);
    h_write(&h, 0, 512);
    h_zero(&h, 512, end - BLOCK - 512);
    h_write(&h, end - BLOCK, 4096);
    h_zero(&h, end - BLOCK + 4096, BLOCK - 4096);
    h_finish(&h);
    cr_expect_eq(check_metadata(&h, 65535, 16, 255), 4177920);
    cr_expect_eq(bat_entry(&h, 0), 8163);
    cr_expect_eq(bat_entry(&h, 1), UNUSED);
    cr_expect_eq(bat_entry(&h, n / 2), UNUSED);
    cr_expect_eq(bat_entry(&h, n - 1), 8163 + 4097);
    cr_expect_eq(h.file_size, 1536 + 4177920 + 2 * (512 + BLOCK) + 512);
    check_read_back(&h, 0, 4096);
    check_read_back(&h, 1000 * GiB, 4096);
    check_read_back(&h, end - BLOCK, BLOCK);
    h_free(&h);
}

Test(vpc_write, refuses_sizes_qemu_does_not_make)
{
    struct h h;
    /* Open writes nothing, and a size that is not its own CHS size (an
     * engine bug) or past 2040 GiB is refused. */
    h_open(&h, 512, false);
    cr_expect_eq(h.m.out_len, 0);
    h_free(&h);
    cr_assert_eq(h_try_open(&h, 0, false), G_OK);
    h.w = NULL;
    cr_expect_eq(fmt_writer_open(&h.env, CT_FMT_VPC, 1024, &h.opts, &h.w),
                 G_EINVAL);
    cr_expect(strstr(h.err.msg, "vpc") != NULL, "%s", h.err.msg);
    h.err = (struct g_error){0};
    cr_expect_eq(fmt_writer_open(&h.env, CT_FMT_VPC, 2040 * GiB + 512,
                                 &h.opts, &h.w),
                 G_EINVAL);
    cr_expect_eq(h.m.out_len, 0);
    h_free(&h);
}

/* --- stamps ------------------------------------------------------------ */

Test(vpc_write, stamps_come_from_the_options)
{
    struct h h;
    h_open(&h, 512, false);
    h_write(&h, 0, 512);
    h_finish(&h);
    uint8_t a[512];
    h_file(&h, 0, a, 512);
    h_free(&h);

    h_try_open(&h, 512, false);
    h.w = NULL;
    h.opts.unix_time = 946684800 + 77;
    h.entropy[0] ^= 0xff;
    cr_assert_eq(fmt_writer_open(&h.env, CT_FMT_VPC, h.vsize, &h.opts, &h.w),
                 G_OK);
    h_write(&h, 0, 512);
    h_finish(&h);
    uint8_t b[512];
    h_file(&h, 0, b, 512);
    cr_expect_eq(get_be32(b + 24), 77);
    cr_expect_eq(b[68], a[68] ^ 0xff);
    cr_expect_neq(get_be32(b + 64), get_be32(a + 64));
    cr_expect(memcmp(a + 84, b + 84, 512 - 84) == 0);
    h_free(&h);
}
