/*
 * The vhdx writer driven directly (fmt_writer_open, _write, _zero, _finish
 * over ct_mem), its bytes checked field by field against what qemu-img 7.2
 * writes (../shared/design/writers.md section 5; the expected layouts are
 * that document's numbers, not output_vhdx_layout()'s).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_mem.h"
#include "fmt/crc32c.h"
#include "fmt/fmt.h"
#include "writer_rig.h"

#define KiB 1024ull
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define TiB (1024 * GiB)

#define ARENA (1u << 20)
#define CHUNK (4 * MiB) /* the engine's chunk */

struct wr {
    struct ct_mem m;
    struct g_error err;
    struct arena heap, io;
    struct ct_ops ops;
    struct fmt_env env;
    uint8_t entropy[FMT_ENTROPY_LEN];
    struct fmt_write_opts opts;
    struct ct_output_params params; /* the shape (convert -o) */
    struct fmt_writer *w;
    uint64_t vsize;
    uint8_t *chunk; /* a pattern buffer of CHUNK bytes */
};

/* wr_open with the output shape p (NULL: the defaults); returns the
 * writer's open result. */
static int wr_try_open(struct wr *r, uint64_t vsize,
                       const struct ct_output_params *p)
{
    static const struct window_args all = {512, 0, 0, false, false};
    memset(r, 0, sizeof *r);
    arena_init(&r->heap, calloc(1, ARENA), ARENA);
    arena_init(&r->io, calloc(1, ARENA), ARENA);
    for (unsigned i = 0; i < FMT_ENTROPY_LEN; i++)
        r->entropy[i] = (uint8_t)(i + 1);
    r->opts = (struct fmt_write_opts){.unix_time = 1700000000,
                                      .entropy = r->entropy,
                                      .out_name = "o.vhdx",
                                      .out_name_len = 6};
    if (p)
        r->params = *p;
    r->opts.params = &r->params;
    ct_mem_init(&r->m, NULL, 0, CT_FMT_VHDX, &all);
    r->m.out_params = &r->params; /* the host bounds the shape's file */
    r->ops = ct_mem_ops(&r->m);
    r->env = (struct fmt_env){
        .ops = &r->ops, .err = &r->err, .heap = &r->heap, .io = &r->io};
    r->vsize = vsize;
    r->chunk = malloc(CHUNK);
    cr_assert_eq(r->ops.begin_output(r->ops.ctx, CT_FMT_VHDX, vsize), CT_OK);
    return fmt_writer_open(&r->env, CT_FMT_VHDX, vsize, &r->opts, &r->w);
}

/* A writer for vsize over a fresh ct_mem (begin_output already done). */
static void wr_open(struct wr *r, uint64_t vsize)
{
    cr_assert_eq(wr_try_open(r, vsize, NULL), G_OK, "%s", r->err.msg);
}

static void wr_free(struct wr *r)
{
    ct_mem_free(&r->m);
    free(r->heap.base);
    free(r->io.base);
    free(r->chunk);
}

/* The byte every data range holds at virtual offset o: never zero. */
static uint8_t pat(uint64_t o)
{
    return (uint8_t)((o ^ (o >> 13)) % 251 + 1);
}

/* write() calls of at most `piece` bytes over [pos, pos + len). */
static void wr_data_by(struct wr *r, uint64_t len, uint64_t piece)
{
    while (len) {
        uint64_t off = r->w->pos, n = len < piece ? len : piece;
        for (uint64_t i = 0; i < n; i++)
            r->chunk[i] = pat(off + i);
        cr_assert_eq(fmt_writer_write(r->w, off, r->chunk, n), G_OK, "%s",
                     r->err.msg);
        len -= n;
    }
}

static void wr_data(struct wr *r, uint64_t len)
{
    wr_data_by(r, len, CHUNK);
}

static void wr_zero(struct wr *r, uint64_t len)
{
    cr_assert_eq(fmt_writer_zero(r->w, r->w->pos, len), G_OK, "%s",
                 r->err.msg);
}

static uint64_t wr_finish(struct wr *r)
{
    uint64_t size = 0;
    cr_assert_eq(fmt_writer_finish(r->w, &size), G_OK, "%s", r->err.msg);
    cr_assert_eq(r->ops.end_output(r->ops.ctx, size), CT_OK);
    cr_assert_eq(r->m.out_len, size);
    return size;
}

static const uint8_t *out(const struct wr *r, uint64_t off, uint64_t len)
{
    cr_assert(off + len <= r->m.out_len, "%llu+%llu past the file (%zu)",
              (unsigned long long)off, (unsigned long long)len,
              r->m.out_len);
    return r->m.out + off;
}

static bool all_zero(const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* "2DC27766-F623-4200-9D64-115E9BFD4A08" in the on-disk layout. */
static void guid(const char *s, uint8_t g[16])
{
    static const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6,
                                  8, 9, 10, 11, 12, 13, 14, 15};
    unsigned b = 0;
    for (const char *p = s; *p && b < 16; p++) {
        unsigned v;
        if (*p == '-')
            continue;
        cr_assert_eq(sscanf(p, "%2x", &v), 1);
        g[order[b++]] = (uint8_t)v;
        p++;
    }
}

static void expect_guid(const uint8_t *p, const char *text)
{
    uint8_t g[16];
    guid(text, g);
    cr_expect_arr_eq(p, g, 16, "GUID %s", text);
}

static uint32_t crc_with_zero_field(const uint8_t *p, size_t len)
{
    uint8_t *c = malloc(len);
    memcpy(c, p, len);
    memset(c + 4, 0, 4);
    uint32_t v = crc32c_update(0, c, len);
    free(c);
    return v;
}

/* What writers.md 5.5 / 5.6 say a vhdx of one virtual size looks like. */
struct layout {
    uint64_t vsize, block, entries, bat_len;
};

static uint64_t ratio(const struct layout *l)
{
    return (8 * MiB * 512) / l->block;
}

static uint64_t meta_off(const struct layout *l)
{
    return 2 * MiB + l->bat_len;
}

static uint64_t first_block(const struct layout *l)
{
    return meta_off(l) + 5 * MiB;
}

/* ---- the fixed structures ------------------------------------------------ */

static void check_identifier(const struct wr *r)
{
    static const char creator[] = "instar " INSTAR_VERSION;
    const uint8_t *p = out(r, 0, 64 * KiB);
    size_t n = strlen(creator);
    cr_expect_arr_eq(p, "vhdxfile", 8);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(get_le16(p + 8 + 2 * i), (uint8_t)creator[i]);
    cr_expect(all_zero(p + 8 + 2 * n, 64 * KiB - 8 - 2 * n));
}

static void check_headers(const struct wr *r)
{
    const uint8_t *h[2] = {out(r, 64 * KiB, 4096), out(r, 128 * KiB, 4096)};
    for (int i = 0; i < 2; i++) {
        cr_expect_arr_eq(h[i], "head", 4);
        cr_expect_eq(get_le32(h[i] + 4), crc_with_zero_field(h[i], 4096),
                     "header %d checksum", i + 1);
        cr_expect(all_zero(h[i] + 48, 16), "LogGuid zero");
        cr_expect_eq(get_le16(h[i] + 64), 0, "LogVersion");
        cr_expect_eq(get_le16(h[i] + 66), 1, "Version");
        cr_expect_eq(get_le32(h[i] + 68), MiB, "LogLength");
        cr_expect_eq(get_le64(h[i] + 72), MiB, "LogOffset");
        cr_expect(all_zero(h[i] + 80, 4096 - 80), "reserved");
        /* the rest of the 64 KiB slot is empty */
        cr_expect(all_zero(h[i] + 4096, 60 * KiB));
    }
    /* header 2 is current, like qemu's after create */
    cr_expect_eq(get_le64(h[1] + 8), get_le64(h[0] + 8) + 1);
    cr_expect_arr_eq(h[0] + 16, h[1] + 16, 32, "same GUIDs in both");
    cr_expect_arr_neq(h[0] + 16, h[0] + 32, 16);
    for (int g = 16; g <= 32; g += 16) {
        cr_expect(!all_zero(h[0] + g, 16));
        cr_expect_eq(h[0][g + 7] >> 4, 4, "version 4 GUID");
        cr_expect_eq(h[0][g + 8] >> 6, 2, "RFC 4122 variant");
    }
}

static void check_region_tables(const struct wr *r, const struct layout *l)
{
    static const uint8_t bat_guid[16] = {0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6,
                                         0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e,
                                         0x9b, 0xfd, 0x4a, 0x08};
    const uint8_t *t = out(r, 192 * KiB, 64 * KiB);
    cr_expect_arr_eq(t, "regi", 4);
    cr_expect_eq(get_le32(t + 4), crc_with_zero_field(t, 64 * KiB));
    cr_expect_eq(get_le32(t + 8), 2, "EntryCount");
    cr_expect_eq(get_le32(t + 12), 0);
    cr_expect_arr_eq(t + 16, bat_guid, 16);
    cr_expect_eq(get_le64(t + 32), 2 * MiB);
    cr_expect_eq(get_le32(t + 40), l->bat_len);
    cr_expect_eq(get_le32(t + 44), 0, "BAT Required = 0, as qemu");
    expect_guid(t + 48, "8B7CA206-4790-4B9A-B8FE-575F050F886E");
    cr_expect_eq(get_le64(t + 64), meta_off(l));
    cr_expect_eq(get_le32(t + 72), MiB);
    cr_expect_eq(get_le32(t + 76), 0, "metadata Required = 0, as qemu");
    cr_expect(all_zero(t + 80, 64 * KiB - 80));
    cr_expect_arr_eq(out(r, 256 * KiB, 64 * KiB), t, 64 * KiB,
                     "region table 2 is a copy");
    /* nothing between the tables and the BAT: the log is empty */
    cr_expect(all_zero(out(r, 320 * KiB, 2 * MiB - 320 * KiB),
                       2 * MiB - 320 * KiB));
}

static void check_metadata(const struct wr *r, const struct layout *l)
{
    static const struct {
        const char *guid;
        uint32_t off, len, flags;
    } items[5] = {
        {"CAA16737-FA36-4D43-B3B6-33F0AA44E76B", 0x10000, 8, 4},
        {"2FA54224-CD1B-4876-B211-5DBED83BF4B8", 0x10008, 8, 6},
        {"BECA12AB-B2E6-4523-93EF-C309E000C746", 0x10010, 16, 6},
        {"8141BF1D-A96F-4709-BA47-F233A8FAAB5F", 0x10020, 4, 6},
        {"CDA348C7-445D-4471-9CC9-E9885251C556", 0x10024, 4, 6},
    };
    const uint8_t *t = out(r, meta_off(l), 64 * KiB + 40);
    const uint8_t *d = t + 64 * KiB;
    cr_expect_arr_eq(t, "metadata", 8);
    cr_expect_eq(get_le16(t + 8), 0);
    cr_expect_eq(get_le16(t + 10), 5, "EntryCount");
    cr_expect(all_zero(t + 12, 20));
    for (int i = 0; i < 5; i++) {
        const uint8_t *e = t + 32 + 32 * i;
        expect_guid(e, items[i].guid);
        cr_expect_eq(get_le32(e + 16), items[i].off);
        cr_expect_eq(get_le32(e + 20), items[i].len);
        cr_expect_eq(get_le32(e + 24), items[i].flags);
        cr_expect_eq(get_le32(e + 28), 0);
    }
    cr_expect(all_zero(t + 192, 64 * KiB - 192));
    cr_expect_eq(get_le32(d), l->block, "BlockSize");
    /* a fixed disk (convert -o subformat=fixed) leaves blocks allocated */
    cr_expect_eq(get_le32(d + 4), r->params.subformat == CT_SUB_FIXED,
                 "LeaveBlocksAllocated, HasParent");
    cr_expect_eq(get_le64(d + 8), l->vsize, "VirtualDiskSize");
    cr_expect(!all_zero(d + 16, 16), "Virtual Disk ID");
    cr_expect_arr_neq(d + 16, out(r, 64 * KiB + 16, 16), 16);
    cr_expect_eq(get_le32(d + 32), 512, "LogicalSectorSize");
    cr_expect_eq(get_le32(d + 36), 512, "PhysicalSectorSize");
    /* the rest of the region and the 4 MiB gap: empty */
    uint64_t rest = MiB - 64 * KiB - 40 + 4 * MiB;
    if (r->m.out_len >= meta_off(l) + 64 * KiB + 40 + rest)
        cr_expect(all_zero(d + 40, rest));
}

/* where[b]: file offset of payload block b, 0 when unallocated. */
static void check_bat(const struct wr *r, const struct layout *l,
                      const uint64_t *where)
{
    const uint8_t *bat = out(r, 2 * MiB, l->bat_len);
    uint64_t b = 0, e;
    for (e = 0; e < l->entries; e++) {
        uint64_t v = get_le64(bat + 8 * e);
        if (e % (ratio(l) + 1) == ratio(l)) {
            cr_assert_eq(v, 0, "entry %llu: sector bitmap entry %#llx",
                         (unsigned long long)e, (unsigned long long)v);
            continue;
        }
        uint64_t want = where[b] ? where[b] | 6 : 2;
        cr_assert_eq(v, want, "entry %llu (block %llu): %#llx, want %#llx",
                     (unsigned long long)e, (unsigned long long)b,
                     (unsigned long long)v, (unsigned long long)want);
        b++;
    }
    cr_assert_eq(b, (l->vsize + l->block - 1) / l->block, "payload blocks");
    cr_expect(all_zero(bat + 8 * e, l->bat_len - 8 * e));
}

static void check_all(const struct wr *r, const struct layout *l,
                      const uint64_t *where)
{
    check_identifier(r);
    check_headers(r);
    check_region_tables(r, l);
    check_metadata(r, l);
    check_bat(r, l, where);
}

/* The project's reader over the output: n bytes at virtual offset off,
 * read in engine-sized pieces (a host read moves at most 32 MiB). */
static void read_back(const struct wr *r, uint64_t off, uint8_t *buf,
                      uint64_t n)
{
    static const struct window_args all = {512, 0, 0, false, false};
    struct ct_mem m;
    struct g_error err = {0};
    struct arena heap, io;
    struct fmt_reader *rd;
    arena_init(&heap, calloc(1, ARENA), ARENA);
    arena_init(&io, calloc(1, CHUNK + ARENA), CHUNK + ARENA);
    ct_mem_init(&m, r->m.out, r->m.out_len, CT_FMT_RAW, &all);
    struct ct_ops ops = ct_mem_ops(&m);
    struct fmt_env env = {.ops = &ops, .err = &err, .heap = &heap, .io = &io};
    uint8_t *io_buf = arena_alloc(&io, CHUNK, 4096);
    cr_assert(io_buf);
    cr_assert_eq(fmt_open(&env, CT_HANDLE_INPUT, CT_FMT_VHDX, 0, &rd), G_OK,
                 "%s", err.msg);
    cr_assert_eq(rd->vsize, r->vsize);
    for (uint64_t done = 0; done < n;) {
        uint64_t k = n - done < CHUNK ? n - done : CHUNK;
        cr_assert_eq(rd->read(rd, off + done, io_buf, k), G_OK, "%s",
                     err.msg);
        memcpy(buf + done, io_buf, k);
        done += k;
    }
    ct_mem_free(&m);
    free(heap.base);
    free(io.base);
}

/* Reads [off, off + n) back: pattern where data was written, else zeros. */
static void expect_read(const struct wr *r, uint64_t off, uint64_t n,
                        bool data)
{
    uint8_t *buf = malloc(n);
    read_back(r, off, buf, n);
    for (uint64_t i = 0; i < n; i++)
        if (buf[i] != (data ? pat(off + i) : 0))
            cr_assert_fail("virtual byte %llu reads %u",
                           (unsigned long long)(off + i), buf[i]);
    free(buf);
}

/* ---- dense (dd) ---------------------------------------------------------- */

/* dd: every block written, placed in order from the first block on. */
static void dense_case(const struct layout *l)
{
    struct wr r;
    uint64_t nb = (l->vsize + l->block - 1) / l->block;
    uint64_t *where = calloc(nb + 1, 8);
    wr_open(&r, l->vsize);
    wr_data(&r, l->vsize);
    uint64_t size = wr_finish(&r);
    for (uint64_t b = 0; b < nb; b++)
        where[b] = first_block(l) + b * l->block;
    cr_expect_eq(size, first_block(l) + nb * l->block,
                 "vsize %llu: file %llu", (unsigned long long)l->vsize,
                 (unsigned long long)size);
    check_all(&r, l, where);
    /* payload bytes straight at their place; the tail of the last block
     * is a hole */
    const uint8_t *p = out(&r, first_block(l), nb * l->block);
    for (uint64_t i = 0; i < nb * l->block; i++)
        if (p[i] != (i < l->vsize ? pat(i) : 0))
            cr_assert_fail("payload byte %llu", (unsigned long long)i);
    expect_read(&r, 0, l->vsize, true);
    free(where);
    wr_free(&r);
}

Test(vhdx_write, dense_small_sizes)
{
    /* writers.md 1: 512 .. 1 GiB use 8 MiB blocks and a 1 MiB BAT */
    static const struct layout ls[] = {
        {512, 8 * MiB, 1, MiB},
        {3072, 8 * MiB, 1, MiB},
        {8 * MiB - 512, 8 * MiB, 1, MiB},
        {8 * MiB, 8 * MiB, 1, MiB},
        {8 * MiB + 512, 8 * MiB, 2, MiB},
        {40 * MiB + 1536, 8 * MiB, 6, MiB},
    };
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
        dense_case(&ls[i]);
}

Test(vhdx_write, dense_file_sizes_match_qemu)
{
    /* writers.md 1, the vhdx column (V = W rounded to 512) */
    static const struct {
        uint64_t v, size;
    } t[] = {{512, 16777216},           {65536, 16777216},
             {2 * MiB + 512, 16777216}, {8 * MiB, 16777216},
             {8 * MiB + 512, 25165824}, {33 * MiB, 50331648},
             {40 * MiB + 1536, 58720256}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct wr r;
        wr_open(&r, t[i].v);
        wr_data(&r, t[i].v);
        cr_expect_eq(wr_finish(&r), t[i].size, "V %llu",
                     (unsigned long long)t[i].v);
        wr_free(&r);
    }
}

Test(vhdx_write, one_host_write_per_engine_chunk)
{
    /* Chunks that straddle block boundaries still make one write each:
     * dd's blocks are contiguous in the file. */
    static const uint64_t pieces[] = {CHUNK, 3 * MiB, 3 * MiB + 512,
                                      64 * KiB + 512};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        struct wr r;
        uint64_t v = 40 * MiB + 1536;
        wr_open(&r, v);
        wr_data_by(&r, v, pieces[i]);
        cr_expect_eq(r.m.writes, (v + pieces[i] - 1) / pieces[i],
                     "piece %llu", (unsigned long long)pieces[i]);
        wr_finish(&r);
        /* identifier, 2 headers, 2 region tables, metadata table and
         * items, one BAT page */
        cr_expect_eq(r.m.writes, (v + pieces[i] - 1) / pieces[i] + 8);
        wr_free(&r);
    }
}

/* ---- empty --------------------------------------------------------------- */

Test(vhdx_write, empty_disk_has_qemus_64_mib_bat)
{
    /* writers.md 5.8: 8388607 entries (unsigned underflow), a 64 MiB BAT
     * region that qemu requires; it stays a hole; 71 MiB file. */
    static const struct layout l = {0, 8 * MiB, 0, 64 * MiB};
    struct wr r;
    wr_open(&r, 0);
    cr_expect_eq(wr_finish(&r), 74448896);
    check_all(&r, &l, NULL);
    cr_expect(all_zero(out(&r, 2 * MiB, 64 * MiB), 64 * MiB));
    cr_expect_eq(r.m.writes, 7, "no BAT write");
    wr_free(&r);
}

/* ---- sparse (zero) ------------------------------------------------------- */

Test(vhdx_write, zero_leaves_blocks_unallocated)
{
    /* writers.md 5.9: 40 MiB + 1536 with data in blocks 0, 2, 4, 5 gives
     * BAT [6@8 MiB, 2, 6@16 MiB, 2, 6@24 MiB, 6@32 MiB], file 40 MiB. */
    static const struct layout l = {40 * MiB + 1536, 8 * MiB, 6, MiB};
    const uint64_t where[6] = {8 * MiB, 0, 16 * MiB, 0, 24 * MiB, 32 * MiB};
    struct wr r;
    wr_open(&r, l.vsize);
    wr_data(&r, MiB);
    wr_zero(&r, 16 * MiB);
    wr_data(&r, 64 * KiB);
    wr_zero(&r, 33 * MiB - r.w->pos);
    wr_data(&r, l.vsize - r.w->pos);
    cr_expect_eq(wr_finish(&r), 40 * MiB);
    check_all(&r, &l, where);
    expect_read(&r, 0, MiB, true);
    expect_read(&r, MiB, 16 * MiB, false);
    expect_read(&r, 17 * MiB, 64 * KiB, true);
    expect_read(&r, 17 * MiB + 64 * KiB, 16 * MiB - 64 * KiB, false);
    expect_read(&r, 33 * MiB, l.vsize - 33 * MiB, true);
    wr_free(&r);
}

Test(vhdx_write, zero_then_write_in_one_block_allocates_it)
{
    static const struct layout l = {16 * MiB, 8 * MiB, 2, MiB};
    const uint64_t where[2] = {8 * MiB, 0};
    struct wr r;
    wr_open(&r, l.vsize);
    wr_zero(&r, 4 * MiB);
    wr_data(&r, 512);
    wr_zero(&r, l.vsize - r.w->pos);
    cr_expect_eq(wr_finish(&r), 16 * MiB);
    check_all(&r, &l, where);
    /* the zeroed start of the block is a hole in the file */
    cr_expect(all_zero(out(&r, 8 * MiB, 4 * MiB), 4 * MiB));
    expect_read(&r, 0, 4 * MiB, false);
    expect_read(&r, 4 * MiB, 512, true);
    wr_free(&r);
}

Test(vhdx_write, all_zero_disk_has_no_block)
{
    static const struct layout l = {40 * MiB, 8 * MiB, 5, MiB};
    const uint64_t where[5] = {0};
    struct wr r;
    wr_open(&r, l.vsize);
    wr_zero(&r, l.vsize);
    cr_expect_eq(wr_finish(&r), 8 * MiB, "first_block: nothing placed");
    check_all(&r, &l, where);
    expect_read(&r, 0, l.vsize, false);
    wr_free(&r);
}

Test(vhdx_write, blocks_placed_in_first_written_order)
{
    /* writes in order: the data lands where the BAT says, each block
     * appended at the end of the file */
    static const struct layout l = {64 * MiB, 8 * MiB, 8, MiB};
    const uint64_t where[8] = {0, 8 * MiB, 0, 0, 16 * MiB, 24 * MiB, 0, 0};
    struct wr r;
    wr_open(&r, l.vsize);
    wr_zero(&r, 8 * MiB);
    wr_data(&r, 512);
    wr_zero(&r, 32 * MiB - r.w->pos);
    wr_data(&r, 8 * MiB + 4096);
    wr_zero(&r, l.vsize - r.w->pos);
    cr_expect_eq(wr_finish(&r), 32 * MiB);
    check_all(&r, &l, where);
    cr_expect_eq(*out(&r, 8 * MiB, 1), pat(8 * MiB));
    cr_expect_eq(*out(&r, 16 * MiB, 1), pat(32 * MiB));
    cr_expect_eq(*out(&r, 24 * MiB + 4095, 1), pat(40 * MiB + 4095));
    expect_read(&r, 32 * MiB, 8 * MiB + 4096, true);
    expect_read(&r, 40 * MiB + 4096, 4096, false);
    wr_free(&r);
}

/* ---- large sizes: block size, BAT and bitmap boundaries ------------------ */

/* 512 bytes of data at the start and at the end, zeros between: the
 * first and last blocks are placed, every other entry stays ZERO. */
static void ends_case(const struct layout *l)
{
    struct wr r;
    uint64_t nb = (l->vsize + l->block - 1) / l->block;
    uint64_t *where = calloc(nb, 8);
    wr_open(&r, l->vsize);
    wr_data(&r, 512);
    wr_zero(&r, l->vsize - 1024);
    wr_data(&r, 512);
    uint64_t size = wr_finish(&r);
    where[0] = first_block(l);
    if (nb > 1)
        where[nb - 1] = first_block(l) + l->block;
    cr_expect_eq(size, first_block(l) + (nb > 1 ? 2 : 1) * l->block,
                 "vsize %llu", (unsigned long long)l->vsize);
    check_all(&r, l, where);
    /* the data sits at the start and end of the blocks the BAT names */
    cr_expect_eq(*out(&r, first_block(l), 1), pat(0));
    cr_expect_eq(*out(&r, where[nb - 1] + (l->vsize - 512) % l->block, 1),
                 pat(l->vsize - 512));
    expect_read(&r, 0, 512, true);
    expect_read(&r, l->vsize - 512, 512, true);
    expect_read(&r, l->vsize / 2 & ~511ull, 512, false);
    free(where);
    wr_free(&r);
}

Test(vhdx_write, block_size_boundaries)
{
    /* writers.md 5.5 and 5.6: entries = nb + (nb - 1) / chunk ratio */
    static const struct layout ls[] = {
        {GiB, 8 * MiB, 128, MiB},
        {GiB + 512, 16 * MiB, 65, MiB},
        {100 * GiB, 16 * MiB, 6400 + 24, MiB},
        {100 * GiB + 512, 32 * MiB, 3201 + 25, MiB},
        {32 * TiB, 32 * MiB, 1048576 + 8191, 9 * MiB},
        {32 * TiB + 512, 64 * MiB, 524289 + 8192, 5 * MiB},
        {64 * TiB, 64 * MiB, 1048576 + 16383, 9 * MiB},
    };
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
        ends_case(&ls[i]);
}

Test(vhdx_write, sector_bitmap_entries_interleave)
{
    /* 16 MiB blocks, chunk ratio 256: block 256 is entry 257 and entry
     * 256 is a sector bitmap entry (writers.md 5.6, the 5 GiB example). */
    static const struct layout ls[] = {
        {4 * GiB, 16 * MiB, 256, MiB},
        {4 * GiB + 512, 16 * MiB, 258, MiB},
        {5 * GiB, 16 * MiB, 321, MiB},
    };
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
        ends_case(&ls[i]);
}

Test(vhdx_write, bat_region_and_page_boundaries)
{
    /* 32 MiB blocks, chunk ratio 128. 130056 blocks fill a 1 MiB BAT
     * exactly (131072 entries); one block more needs 2 MiB. The writer
     * streams the BAT 8192 entries at a time: 8129 blocks fill one page
     * exactly, 8130 spill into the next. */
    static const struct layout ls[] = {
        {130056 * 32 * MiB, 32 * MiB, 131072, MiB},
        {130056 * 32 * MiB + 512, 32 * MiB, 131073, 2 * MiB},
        {8129 * 32 * MiB, 32 * MiB, 8192, MiB},
        {8129 * 32 * MiB + 512, 32 * MiB, 8193, MiB},
        {4 * TiB, 32 * MiB, 132095, 2 * MiB},
    };
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
        ends_case(&ls[i]);
}

Test(vhdx_write, dense_tail_with_16_mib_blocks)
{
    /* 1 GiB + 512 takes 16 MiB blocks: zeros up to block 62, then
     * data written in 3 MiB + 512 pieces that straddle the blocks; the
     * three blocks land one after the other, each piece one write. */
    static const struct layout l = {GiB + 512, 16 * MiB, 65, MiB};
    uint64_t where[65] = {0}, tail = 32 * MiB + 512, piece = 3 * MiB + 512;
    struct wr r;
    wr_open(&r, l.vsize);
    wr_zero(&r, l.vsize - tail);
    wr_data_by(&r, tail, piece);
    cr_expect_eq(r.m.writes, (tail + piece - 1) / piece);
    for (unsigned b = 62; b < 65; b++)
        where[b] = first_block(&l) + (b - 62) * l.block;
    cr_expect_eq(wr_finish(&r), first_block(&l) + 3 * l.block);
    check_all(&r, &l, where);
    expect_read(&r, l.vsize - tail - 4096, 4096, false);
    expect_read(&r, l.vsize - tail, tail, true);
    wr_free(&r);
}

/* ---- refusals and memory ------------------------------------------------- */

Test(vhdx_write, over_64_tib_refused_without_writing)
{
    static const struct window_args all = {512, 0, 0, false, false};
    struct ct_mem m;
    struct g_error err = {0};
    struct arena heap, io;
    struct fmt_writer *w = NULL;
    uint8_t entropy[FMT_ENTROPY_LEN] = {1};
    struct fmt_write_opts opts = {.entropy = entropy};
    arena_init(&heap, calloc(1, ARENA), ARENA);
    arena_init(&io, calloc(1, ARENA), ARENA);
    ct_mem_init(&m, NULL, 0, CT_FMT_VHDX, &all);
    struct ct_ops ops = ct_mem_ops(&m);
    struct fmt_env env = {.ops = &ops, .err = &err, .heap = &heap, .io = &io};
    cr_expect_eq(fmt_writer_open(&env, CT_FMT_VHDX, 64 * TiB + 512, &opts,
                                 &w),
                 G_ERANGE);
    cr_expect(strstr(err.msg, "vhdx") && strstr(err.msg, "64 TiB"), "%s",
              err.msg);
    cr_expect_eq(m.writes, 0);
    ct_mem_free(&m);
    free(heap.base);
    free(io.base);
}

Test(vhdx_write, memory_does_not_grow_with_the_disk)
{
    /* One 64 KiB I/O buffer and the state, whatever the size: the BAT is
     * streamed a page at a time. */
    static const uint64_t sizes[] = {GiB, TiB, 64 * TiB};
    uint64_t heap0 = 0, io0 = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct wr r;
        wr_open(&r, sizes[i]);
        wr_data(&r, 512);
        wr_zero(&r, sizes[i] - 512);
        wr_finish(&r);
        if (i == 0) {
            heap0 = r.heap.used;
            io0 = r.io.used;
            cr_expect_leq(io0, 64 * KiB + 4096, "I/O bytes %llu",
                          (unsigned long long)io0);
            cr_expect_leq(heap0, 4096, "heap bytes %llu",
                          (unsigned long long)heap0);
        }
        cr_expect_eq(r.heap.used, heap0);
        cr_expect_eq(r.io.used, io0);
        wr_free(&r);
    }
}

Test(vhdx_write, guids_come_from_the_entropy)
{
    /* Same entropy, same bytes; other entropy, other GUIDs and ID. */
    struct wr a, b;
    wr_open(&a, 512);
    wr_data(&a, 512);
    wr_finish(&a);
    wr_open(&b, 512);
    b.entropy[0] ^= 1;
    wr_data(&b, 512);
    wr_finish(&b);
    cr_expect_arr_neq(out(&a, 64 * KiB + 16, 32), out(&b, 64 * KiB + 16, 32),
                      32);
    cr_expect_arr_neq(out(&a, 3 * MiB + 64 * KiB + 16, 16),
                      out(&b, 3 * MiB + 64 * KiB + 16, 16), 16);
    struct wr c;
    wr_open(&c, 512);
    wr_data(&c, 512);
    wr_finish(&c);
    cr_expect_eq(a.m.out_len, c.m.out_len);
    cr_expect_arr_eq(a.m.out, c.m.out, a.m.out_len);
    wr_free(&a);
    wr_free(&b);
    wr_free(&c);
}

/* ---- convert -o subformat, block_size ------------------------------------ */

/* The input qemu-img convert was measured on: 20 MiB + 1536 bytes, one
 * data sector at 0, at 16 MiB + 512 and at 20 MiB + 1024, the rest zeros
 * (which the engine hands to zero()). */
#define B_VSIZE (20 * MiB + 1536)
static const uint64_t b_data[3] = {0, 16 * MiB + 512, 20 * MiB + 1024};

static void b_write(struct wr *r)
{
    for (int i = 0; i < 3; i++) {
        wr_zero(r, b_data[i] - r->w->pos);
        wr_data(r, 512);
    }
}

static void b_expect_read(const struct wr *r)
{
    for (int i = 0; i < 3; i++)
        expect_read(r, b_data[i], 512, true);
    expect_read(r, 512, b_data[1] - 512, false);
    expect_read(r, b_data[1] + 512, b_data[2] - b_data[1] - 512, false);
}

/*
 * Measured (qemu-img convert -O vhdx -o subformat=fixed[,block_size=N] of
 * that input): the file parameters say LeaveBlocksAllocated, the blocks
 * the data reaches are appended after 8 MiB + the disk's size rounded up
 * to a MiB (29 MiB here), in the order written; the others stay ZERO.
 * Dynamic with the same block sizes: appended from 8 MiB.
 */
Test(vhdx_write, block_sizes_and_fixed_match_qemu)
{
    static const struct {
        uint32_t bs;
        bool fixed;
        uint64_t file, entries;
        uint64_t blocks[3]; /* block of each data sector */
    } rows[] = {
        {0, true, 47185920, 3, {0, 2, 2}},
        {1 << 20, false, 11534336, 21, {0, 16, 20}},
        {1 << 20, true, 33554432, 21, {0, 16, 20}},
        {2 << 20, false, 14680064, 11, {0, 8, 10}},
        {2 << 20, true, 36700160, 11, {0, 8, 10}},
        {4 << 20, false, 20971520, 6, {0, 4, 5}},
        {4 << 20, true, 42991616, 6, {0, 4, 5}},
        {16 << 20, false, 41943040, 2, {0, 1, 1}},
        {16 << 20, true, 63963136, 2, {0, 1, 1}},
        {32 << 20, true, 63963136, 1, {0, 0, 0}},
        {256u << 20, false, 276824064, 1, {0, 0, 0}},
        {256u << 20, true, 298844160, 1, {0, 0, 0}},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct ct_output_params p = {
            .subformat = rows[i].fixed ? CT_SUB_FIXED : CT_SUB_DYNAMIC,
            .block_size = rows[i].bs};
        struct layout l = {B_VSIZE, rows[i].bs ? rows[i].bs : 8 * MiB,
                           rows[i].entries, MiB};
        uint64_t where[21] = {0}, at = rows[i].fixed ? 29 * MiB : 8 * MiB;
        struct wr r;
        cr_assert_eq(wr_try_open(&r, B_VSIZE, &p), G_OK, "%s", r.err.msg);
        b_write(&r);
        for (int k = 0; k < 3; k++)
            if (!where[rows[i].blocks[k]]) {
                where[rows[i].blocks[k]] = at;
                at += l.block;
            }
        cr_expect_eq(wr_finish(&r), rows[i].file, "row %zu: file %zu", i,
                     r.m.out_len);
        check_all(&r, &l, where);
        b_expect_read(&r);
        wr_free(&r);
    }
}

/* -S 0: every block written, each appended after the disk's space. */
Test(vhdx_write, fixed_dense_matches_qemu)
{
    static const struct ct_output_params p = {.subformat = CT_SUB_FIXED};
    struct layout l = {B_VSIZE, 8 * MiB, 3, MiB};
    uint64_t where[3] = {29 * MiB, 37 * MiB, 45 * MiB};
    struct wr r;
    cr_assert_eq(wr_try_open(&r, B_VSIZE, &p), G_OK, "%s", r.err.msg);
    wr_data(&r, B_VSIZE);
    cr_expect_eq(wr_finish(&r), 55574528u);
    check_all(&r, &l, where);
    expect_read(&r, 0, B_VSIZE, true);
    wr_free(&r);
}

/* With no data qemu's fixed file ends where create ended it: 8 MiB and
 * the disk's size, not rounded (measured: 3072 bytes give 8391680). */
Test(vhdx_write, fixed_without_data_ends_after_the_disk_space)
{
    static const struct {
        uint64_t vsize;
        uint32_t bs;
        uint64_t file;
    } rows[] = {{3072, 0, 8391680},
                {3072, 1 << 20, 8391680},
                {4 * MiB, 0, 12582912}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct ct_output_params p = {.subformat = CT_SUB_FIXED,
                                     .block_size = rows[i].bs};
        uint64_t bs = rows[i].bs ? rows[i].bs : 8 * MiB;
        struct layout l = {rows[i].vsize, bs, (rows[i].vsize + bs - 1) / bs,
                           MiB};
        uint64_t where[4] = {0};
        struct wr r;
        cr_assert_eq(wr_try_open(&r, rows[i].vsize, &p), G_OK, "%s",
                     r.err.msg);
        wr_zero(&r, rows[i].vsize);
        cr_expect_eq(wr_finish(&r), rows[i].file);
        check_all(&r, &l, where);
        expect_read(&r, 0, rows[i].vsize, false);
        wr_free(&r);
    }
}

/* A small block size puts sector bitmap entries among the first blocks'
 * (chunk ratio 2^23 * 512 / bs): a 5 GiB disk needs 5121 entries with
 * 1 MiB blocks and 161 with 32 MiB blocks (measured), the entry after
 * block ratio - 1 being a sector bitmap entry. (A fixed disk's blocks
 * come after 5 GiB of file: too large for ct_mem; its BAT is the same.) */
Test(vhdx_write, block_size_moves_the_sector_bitmap_entries)
{
    static const struct layout ls[] = {
        {5 * GiB, MiB, 5121, MiB},
        {5 * GiB, 32 * MiB, 161, MiB},
    };
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++) {
        const struct layout *l = &ls[i];
        struct ct_output_params p = {.block_size = (uint32_t)l->block};
        uint64_t nb = l->vsize / l->block, at = first_block(l);
        uint64_t *where = calloc(nb, 8);
        struct wr r;
        cr_assert_eq(wr_try_open(&r, l->vsize, &p), G_OK, "%s", r.err.msg);
        /* the first sector, and the blocks on both sides of the first
         * sector bitmap entry */
        wr_data(&r, 512);
        wr_zero(&r, (ratio(l) - 1) * l->block - 512);
        wr_data(&r, 2 * l->block);
        wr_zero(&r, l->vsize - r.w->pos);
        where[0] = at;
        where[ratio(l) - 1] = at + l->block;
        where[ratio(l)] = at + 2 * l->block;
        cr_expect_eq(wr_finish(&r), at + 3 * l->block);
        check_all(&r, l, where);
        expect_read(&r, (ratio(l) - 1) * l->block, 2 * l->block, true);
        free(where);
        wr_free(&r);
    }
}

/* An empty disk gets the BAT qemu computes, (2^32 - 1) / ratio entries,
 * left a hole (measured: 15728640 bytes with 1 MiB blocks, 24117248 with
 * 2 MiB); with 256 MiB blocks that BAT is 2 GiB, which qemu-img neither
 * writes nor reads: refused before anything is written. */
Test(vhdx_write, empty_disk_bat_follows_the_block_size)
{
    static const struct {
        uint32_t bs;
        uint64_t bat, file;
    } rows[] = {{1 << 20, 8 * MiB, 15728640}, {2 << 20, 16 * MiB, 24117248}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        for (int fixed = 0; fixed < 2; fixed++) {
            struct ct_output_params p = {.subformat = (uint32_t)fixed,
                                         .block_size = rows[i].bs};
            struct layout l = {0, rows[i].bs, 0, rows[i].bat};
            struct wr r;
            cr_assert_eq(wr_try_open(&r, 0, &p), G_OK, "%s", r.err.msg);
            cr_expect_eq(wr_finish(&r), rows[i].file);
            check_all(&r, &l, NULL);
            wr_free(&r);
        }
    struct ct_output_params big = {.block_size = 256u << 20};
    struct wr r;
    cr_expect_eq(wr_try_open(&r, 0, &big), G_ENOTSUP);
    cr_expect(strstr(r.err.msg, "vhdx") && strstr(r.err.msg, "256 MiB"),
              "%s", r.err.msg);
    cr_expect_eq(r.m.writes, 0u);
    wr_free(&r);
}

Test(vhdx_write, other_shapes_are_refused_by_name)
{
    static const struct {
        struct ct_output_params p;
        const char *word;
    } rows[] = {
        {{.subformat = CT_SUB_STREAM_OPTIMIZED}, "subformat"},
        {{.block_size = 3u << 20}, "block_size"},
        {{.block_size = 512u << 10}, "block_size"},
        {{.block_size = 512u << 20}, "block_size"},
        {{.flags = CT_OUT_FORCE_SIZE}, "force_size"},
        {{.flags = CT_OUT_COMPRESS}, "compression"},
        {{.flags = 8}, "flags"},
        {{.cluster_bits = 16}, "cluster_size"},
        {{.version = 3}, "compat"},
        {{.adapter = CT_VMDK_BUSLOGIC}, "adapter_type"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct wr r;
        cr_expect_eq(wr_try_open(&r, MiB, &rows[i].p), G_ENOTSUP, "row %zu",
                     i);
        cr_expect(strstr(r.err.msg, "vhdx:") &&
                      strstr(r.err.msg, rows[i].word),
                  "row %zu: %s", i, r.err.msg);
        cr_expect_eq(r.m.writes, 0u);
        wr_free(&r);
    }
}

/* Through the engine (convert, -S 4k) and back with the project's reader. */
Test(vhdx_write, convert_fixed_reads_back)
{
    static const struct ct_output_params p = {.subformat = CT_SUB_FIXED,
                                              .block_size = 1 << 20};
    uint8_t *in = rig_pattern(B_VSIZE, 3);
    struct rig r;
    struct g_error err;
    uint64_t vsize = 0;
    rig_convert(&r, in, B_VSIZE, CT_FMT_VHDX, 4 * KiB, &p);
    cr_assert_eq(r.ret, G_OK, "%s", r.err.msg);
    uint8_t *back = rig_read_back(&r, CT_FMT_VHDX, &vsize, &err);
    cr_assert(back, "%s", err.msg);
    cr_expect_eq(vsize, B_VSIZE);
    cr_expect(!memcmp(back, in, B_VSIZE));
    free(back);
    rig_free(&r);
    free(in);
}
