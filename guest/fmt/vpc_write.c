/*
 * vpc output: a VHD laid out as qemu-img 7.2 writes it
 * (../shared/design/writers.md section 4). Dynamic (the default):
 *
 *   [ footer copy 512 ][ dynamic header 1024 ][ BAT, 0xFF-padded to 512 ]
 *   [ bitmap 512 | block 2 MiB ] ... in the order first written [ footer ]
 *
 * A block is appended when its first byte is written, so its BAT entry is
 * decided when the writer reaches it and never changes: the BAT is
 * streamed one sector (128 entries, 256 MiB of disk) at a time, and memory
 * stays the same whatever the virtual size (a 2040 GiB disk has 4 MiB of
 * BAT). A block that only gets zero() stays unallocated, as qemu-img
 * convert leaves all-zero blocks. Nothing is written past the BAT before
 * a block claims the space, so whatever part of a block gets no write is
 * a hole that reads as zeros, as in qemu's files.
 *
 * Fixed (convert -o subformat=fixed): the virtual disk as is, then the
 * footer, and no copy at the front. Zeros are left holes, as qemu-img
 * convert leaves them (measured: only the data it writes is allocated).
 *
 * force_size=on keeps the exact size instead of the CHS geometry's and
 * stamps what qemu-img 7.2 stamps then (measured, dynamic and fixed alike):
 * creator "qem2", which tells readers to take the size from the footer,
 * and the largest geometry, 65535/16/255, whatever the size.
 */
#include "vpc.h"
#include "output_bound.h"
#include "vhd_chs.h"
#include "../rt/rt.h"

#define BLOCK OUTPUT_VPC_BLOCK
#define BAT_OFFSET OUTPUT_VPC_BAT_OFFSET
#define ENTRIES_PER_SECTOR (VPC_SECTOR / 4)
/* 0xFF bytes for bitmaps and for BAT stretches nobody allocated: 64 KiB
 * fills the largest BAT (4 MiB) in 64 writes. */
#define FILL_LEN 65536u
/* vpc_map's answer for a byte whose block is not allocated. */
#define UNALLOCATED UINT64_MAX

/* The VHD timestamp counts seconds from 2000-01-01 00:00 UTC. */
#define VHD_EPOCH 946684800ull
/* What qemu-img 7.2 stamps (writers.md 4.1); "qemu" makes qemu size the
 * disk by its CHS geometry, which vhd_chs.h makes round-trip. */
#define FEATURES_RESERVED 2u
#define FORMAT_VERSION 0x00010000u
#define CREATOR_VERSION 0x00050003u
#define NO_DATA_OFFSET UINT64_MAX
/* force_size=on: what qemu-img 7.2 writes whatever the size (measured on
 * 3072, 34816, 1050112, 1079296, 2 MiB and 5 MiB + 1536 bytes). */
#define FORCED_CREATOR "qem2"
#define FORCED_GEOMETRY {65535, 16, 255}

struct vpc_out {
    uint8_t *head;        /* I/O: footer, then the dynamic header */
    uint8_t *bat;         /* I/O: BAT sector bat_sector, being filled */
    uint8_t *fill;        /* I/O: FILL_LEN bytes of 0xFF */
    uint64_t bat_sectors; /* BAT length in sectors, padding included */
    uint64_t bat_sector;  /* the sectors before it are in the file */
    bool bat_dirty;       /* bat holds an allocated entry */
    uint64_t next;        /* where the next bitmap, or the footer, goes */
};

/* A fixed disk needs only its footer. */
struct vpc_fixed_out {
    uint8_t *footer; /* I/O */
};

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* Writes 0xFF over BAT sectors [from, to): their blocks stay unallocated. */
static int bat_fill(struct fmt_writer *w, uint64_t from, uint64_t to)
{
    struct vpc_out *s = w->priv;
    uint64_t off = BAT_OFFSET + from * VPC_SECTOR;
    uint64_t end = BAT_OFFSET + to * VPC_SECTOR;

    while (off < end) {
        uint64_t n = end - off < FILL_LEN ? end - off : FILL_LEN;
        int ret = fmt_out_write(w, off, s->fill, n);
        if (ret != G_OK)
            return ret;
        off += n;
    }
    return G_OK;
}

/* Makes BAT sector `sector` the one being filled; every sector before it
 * is final, so it goes to the file. */
static int bat_seek(struct fmt_writer *w, uint64_t sector)
{
    struct vpc_out *s = w->priv;
    uint64_t from = s->bat_sector;
    int ret;

    if (sector == s->bat_sector)
        return G_OK;
    if (s->bat_dirty) {
        ret = fmt_out_write(w, BAT_OFFSET + from * VPC_SECTOR, s->bat,
                            VPC_SECTOR);
        if (ret != G_OK)
            return ret;
        memset(s->bat, 0xff, VPC_SECTOR);
        s->bat_dirty = false;
        from++;
    }
    if ((ret = bat_fill(w, from, sector)) != G_OK)
        return ret;
    s->bat_sector = sector;
    return G_OK;
}

/* Appends a block for BAT entry `entry`: its bitmap marks every sector
 * present, as qemu's does; the data area stays a hole until written. */
static int alloc_block(struct fmt_writer *w, uint8_t *entry)
{
    struct vpc_out *s = w->priv;
    int ret = fmt_out_write(w, s->next, s->fill, VPC_SECTOR);

    if (ret != G_OK)
        return ret;
    /* Open checked that the last bitmap's sector fits an entry. */
    put_be32(entry, (uint32_t)(s->next / VPC_SECTOR));
    s->bat_dirty = true;
    s->next += VPC_SECTOR + BLOCK;
    return G_OK;
}

/*
 * Where virtual byte `off` lives in the file: *file_off, or UNALLOCATED.
 * With alloc, an unallocated block is appended first. The one answer to
 * "where does this byte go": the writer's own writes use it, and the host
 * may copy plain input there. off must not be behind the writer's
 * position (the BAT before it may already be in the file).
 */
static int vpc_map(struct fmt_writer *w, uint64_t off, bool alloc,
                   uint64_t *file_off)
{
    struct vpc_out *s = w->priv;
    uint64_t block = off / BLOCK;
    uint64_t sector = block / ENTRIES_PER_SECTOR;
    uint8_t *entry = s->bat + 4 * (block % ENTRIES_PER_SECTOR);
    int ret;

    *file_off = UNALLOCATED;
    if (off >= w->vsize || sector < s->bat_sector)
        return g_fail(w->env->err, G_EINVAL,
                      "vpc: offset %llu is behind the writer or past the "
                      "disk (engine bug)",
                      (unsigned long long)off);
    if (sector != s->bat_sector) {
        /* A later BAT sector: nothing there is allocated yet. */
        if (!alloc)
            return G_OK;
        if ((ret = bat_seek(w, sector)) != G_OK)
            return ret;
    }
    if (get_be32(entry) == VPC_BAT_UNUSED) {
        if (!alloc)
            return G_OK;
        if ((ret = alloc_block(w, entry)) != G_OK)
            return ret;
    }
    *file_off = (uint64_t)get_be32(entry) * VPC_SECTOR + VPC_SECTOR +
                off % BLOCK;
    return G_OK;
}

/* One write per block: consecutive blocks are a bitmap apart in the file. */
static int vpc_write(struct fmt_writer *w, uint64_t off, const void *buf,
                     uint64_t len)
{
    const uint8_t *p = buf;

    while (len) {
        uint64_t n = BLOCK - off % BLOCK, at;
        int ret;

        if (n > len)
            n = len;
        if ((ret = vpc_map(w, off, true, &at)) != G_OK ||
            (ret = fmt_out_write_data(w, at, p, n)) != G_OK)
            return ret;
        off += n;
        p += n;
        len -= n;
    }
    return G_OK;
}

/* The run of [off, off + len) inside one block, taken as written: the
 * engine puts its bytes there itself (a host copy). */
static int vpc_place(struct fmt_writer *w, uint64_t off, uint64_t len,
                     uint64_t *file_off, uint64_t *n)
{
    *n = BLOCK - off % BLOCK < len ? BLOCK - off % BLOCK : len;
    return vpc_map(w, off, true, file_off);
}

/* Zeros need nothing: an unallocated block reads as zeros, and the part
 * of an allocated block that gets no write is a hole. The BAT sectors
 * this skips are filled when the writer moves past them. (A fixed disk's
 * zeros are a hole of the file.) */
static int vpc_zero(struct fmt_writer *w, uint64_t off, uint64_t len)
{
    (void)w;
    (void)off;
    (void)len;
    return G_OK;
}

/* ---- fixed: byte off of the disk is byte off of the file ---------------- */

static int vpc_fixed_write(struct fmt_writer *w, uint64_t off,
                           const void *buf, uint64_t len)
{
    return fmt_out_write_data(w, off, buf, len);
}

static int vpc_fixed_place(struct fmt_writer *w, uint64_t off, uint64_t len,
                           uint64_t *file_off, uint64_t *n)
{
    (void)w;
    *file_off = off;
    *n = len;
    return G_OK;
}

/* The footer ends the file; what the disk did not write, zeros and the CHS
 * padding past the window, stays a hole. */
static int vpc_fixed_finish(struct fmt_writer *w, uint64_t *file_size)
{
    struct vpc_fixed_out *s = w->priv;
    int ret = fmt_out_write(w, w->vsize, s->footer, VPC_FOOTER_LEN);

    if (ret != G_OK)
        return ret;
    *file_size = w->vsize + VPC_FOOTER_LEN;
    return G_OK;
}

static int vpc_finish(struct fmt_writer *w, uint64_t *file_size)
{
    struct vpc_out *s = w->priv;
    int ret;

    if ((ret = bat_seek(w, s->bat_sectors)) != G_OK ||
        (ret = fmt_out_write(w, 0, s->head,
                             VPC_FOOTER_LEN + VPC_DYNHDR_LEN)) != G_OK ||
        (ret = fmt_out_write(w, s->next, s->head, VPC_FOOTER_LEN)) != G_OK)
        return ret;
    *file_size = s->next + VPC_FOOTER_LEN;
    return G_OK;
}

/* writers.md 4.1: the footer qemu-img 7.2 writes; a fixed disk has no
 * dynamic header to point to, and its type says so. */
static void put_footer(const struct fmt_writer *w, const struct vhd_chs *g,
                       bool fixed, uint8_t *f)
{
    uint8_t *uuid = f + FT_UUID;
    bool forced = fmt_params(w)->flags & CT_OUT_FORCE_SIZE;

    memcpy(f + FT_COOKIE, "conectix", 8);
    put_be32(f + FT_FEATURES, FEATURES_RESERVED);
    put_be32(f + FT_VERSION, FORMAT_VERSION);
    put_be64(f + FT_DATA_OFFSET, fixed ? NO_DATA_OFFSET : VPC_FOOTER_LEN);
    /* Wraps before 2000 and after 2136, as qemu's does. */
    put_be32(f + FT_TIMESTAMP, (uint32_t)(w->opts->unix_time - VHD_EPOCH));
    memcpy(f + FT_CREATOR_APP, forced ? FORCED_CREATOR : "qemu", 4);
    put_be32(f + FT_CREATOR_VERSION, CREATOR_VERSION);
    memcpy(f + FT_CREATOR_OS, "Wi2k", 4);
    put_be64(f + FT_ORIGINAL_SIZE, w->vsize);
    put_be64(f + FT_CURRENT_SIZE, w->vsize);
    put_be16(f + FT_CYLINDERS, (uint16_t)g->cylinders);
    f[FT_HEADS] = (uint8_t)g->heads;
    f[FT_SPT] = (uint8_t)g->sectors;
    put_be32(f + FT_TYPE, fixed ? VPC_TYPE_FIXED : VPC_TYPE_DYNAMIC);
    /* A version 4 (random) UUID, RFC 4122 variant. */
    memcpy(uuid, w->opts->entropy, 16);
    uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
    uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
    put_be32(f + FT_CHECKSUM, vpc_checksum(f, VPC_FOOTER_LEN, FT_CHECKSUM));
}

/* writers.md 4.2: the dynamic header; no parent, so the rest is zero. */
static void put_dynhdr(uint64_t entries, uint8_t *h)
{
    memcpy(h + DH_COOKIE, "cxsparse", 8);
    put_be64(h + DH_DATA_OFFSET, NO_DATA_OFFSET);
    put_be64(h + DH_TABLE_OFFSET, BAT_OFFSET);
    put_be32(h + DH_VERSION, FORMAT_VERSION);
    put_be32(h + DH_MAX_ENTRIES, (uint32_t)entries);
    put_be32(h + DH_BLOCK_SIZE, (uint32_t)BLOCK);
    put_be32(h + DH_CHECKSUM, vpc_checksum(h, VPC_DYNHDR_LEN, DH_CHECKSUM));
}

/* The shapes this writer takes: subformat dynamic or fixed, force_size;
 * anything else is refused by name rather than ignored. */
static int check_params(const struct fmt_writer *w)
{
    const struct ct_output_params *p = fmt_params(w);
    int ret = fmt_params_only(w, FMT_TAKES_SUBFORMAT | FMT_TAKES_FORCE_SIZE);

    if (ret == G_OK && p->subformat != CT_SUB_DYNAMIC &&
        p->subformat != CT_SUB_FIXED)
        return g_fail(w->env->err, G_ENOTSUP,
                      "vpc: subformat %u is not supported (dynamic or "
                      "fixed)",
                      (unsigned)p->subformat);
    return ret;
}

/*
 * The geometry the footer states for the engine's size, which
 * output_vsize_p() made: with force_size any multiple of 512 up to the
 * largest size, under the one geometry qemu then stamps; otherwise its own
 * CHS size (the search is idempotent), which gives the geometry.
 */
static int footer_geometry(const struct fmt_writer *w, struct vhd_chs *g)
{
    static const struct vhd_chs forced = FORCED_GEOMETRY;
    uint64_t chs_size = 0;

    if (fmt_params(w)->flags & CT_OUT_FORCE_SIZE) {
        *g = forced;
        if (w->vsize % VPC_SECTOR == 0 && w->vsize <= VHD_CHS_MAX_BYTES)
            return G_OK;
    } else if (vhd_chs_size(w->vsize, &chs_size, g) &&
               chs_size == w->vsize) {
        return G_OK;
    }
    return g_fail(w->env->err, G_EINVAL,
                  "vpc: virtual size %llu is not a VHD size qemu-img makes "
                  "(engine bug)",
                  (unsigned long long)w->vsize);
}

static int vpc_fixed_open(struct fmt_writer *w, const struct vhd_chs *g)
{
    struct vpc_fixed_out *s;

    /* qemu-img 7.2 writes the lone footer of an empty fixed disk, then
     * cannot open it (a footer at offset 0 is a dynamic disk's copy to
     * it), and fails; instar's reader refuses it for the same reason. */
    if (w->vsize == 0)
        return g_fail(w->env->err, G_ENOTSUP,
                      "vpc: refusing to write an empty fixed image: its "
                      "footer would be at offset 0, where qemu-img 7.2 "
                      "looks for a dynamic disk's");
    s = fmt_alloc(w->env, sizeof *s, "vpc", "writer state");
    if (!s)
        return G_ENOMEM;
    s->footer = fmt_io_alloc(w->env, VPC_FOOTER_LEN, "vpc", "footer");
    if (!s->footer)
        return G_ENOMEM;
    put_footer(w, g, true, s->footer);
    w->priv = s;
    w->write = vpc_fixed_write;
    w->zero = vpc_zero;
    w->finish = vpc_fixed_finish;
    w->place = vpc_fixed_place;
    return G_OK;
}

static int vpc_dynamic_open(struct fmt_writer *w, const struct vhd_chs *g)
{
    const struct fmt_env *env = w->env;
    uint64_t entries, last_bitmap;
    struct vpc_out *s;

    entries = div_up(w->vsize, BLOCK);
    s = fmt_alloc(env, sizeof *s, "vpc", "writer state");
    if (!s)
        return G_ENOMEM;
    s->bat_sectors = div_up(4 * entries, VPC_SECTOR);
    s->next = BAT_OFFSET + s->bat_sectors * VPC_SECTOR;
    /* Entries are 32-bit sector numbers, all ones meaning unallocated:
     * the last bitmap of a full 2040 GiB disk is at sector 4279236526. */
    last_bitmap = s->next + (entries ? entries - 1 : 0) * (VPC_SECTOR + BLOCK);
    if (last_bitmap / VPC_SECTOR >= VPC_BAT_UNUSED)
        return g_fail(env->err, G_ERANGE,
                      "vpc: a %llu-byte disk cannot be addressed by 32-bit "
                      "BAT entries",
                      (unsigned long long)w->vsize);
    s->head = fmt_io_alloc(env, VPC_FOOTER_LEN + VPC_DYNHDR_LEN, "vpc",
                           "footer and dynamic header");
    s->bat = fmt_io_alloc(env, VPC_SECTOR, "vpc", "BAT sector");
    s->fill = fmt_io_alloc(env, FILL_LEN, "vpc", "bitmap");
    if (!s->head || !s->bat || !s->fill)
        return G_ENOMEM;
    memset(s->bat, 0xff, VPC_SECTOR);
    memset(s->fill, 0xff, FILL_LEN);
    put_footer(w, g, false, s->head);
    put_dynhdr(entries, s->head + VPC_FOOTER_LEN);
    w->priv = s;
    w->write = vpc_write;
    w->zero = vpc_zero;
    w->finish = vpc_finish;
    w->place = vpc_place;
    return G_OK;
}

int fmt_vpc_writer_open(struct fmt_writer *w)
{
    struct vhd_chs g;
    int ret;

    w->name = "vpc";
    if ((ret = check_params(w)) != G_OK ||
        (ret = footer_geometry(w, &g)) != G_OK)
        return ret;
    return fmt_params(w)->subformat == CT_SUB_FIXED ? vpc_fixed_open(w, &g)
                                                     : vpc_dynamic_open(w, &g);
}
