/*
 * vpc output: a dynamic VHD laid out as qemu-img 7.2 writes it
 * (../shared/design/writers.md section 4):
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

struct vpc_out {
    uint8_t *head;        /* I/O: footer, then the dynamic header */
    uint8_t *bat;         /* I/O: BAT sector bat_sector, being filled */
    uint8_t *fill;        /* I/O: FILL_LEN bytes of 0xFF */
    uint64_t bat_sectors; /* BAT length in sectors, padding included */
    uint64_t bat_sector;  /* the sectors before it are in the file */
    bool bat_dirty;       /* bat holds an allocated entry */
    uint64_t next;        /* where the next bitmap, or the footer, goes */
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
            (ret = fmt_out_write(w, at, p, n)) != G_OK)
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
 * this skips are filled when the writer moves past them. */
static int vpc_zero(struct fmt_writer *w, uint64_t off, uint64_t len)
{
    (void)w;
    (void)off;
    (void)len;
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

/* writers.md 4.1: the footer qemu-img 7.2 writes for a dynamic disk. */
static void put_footer(const struct fmt_writer *w, const struct vhd_chs *g,
                       uint8_t *f)
{
    uint8_t *uuid = f + FT_UUID;

    memcpy(f + FT_COOKIE, "conectix", 8);
    put_be32(f + FT_FEATURES, FEATURES_RESERVED);
    put_be32(f + FT_VERSION, FORMAT_VERSION);
    put_be64(f + FT_DATA_OFFSET, VPC_FOOTER_LEN);
    /* Wraps before 2000 and after 2136, as qemu's does. */
    put_be32(f + FT_TIMESTAMP, (uint32_t)(w->opts->unix_time - VHD_EPOCH));
    memcpy(f + FT_CREATOR_APP, "qemu", 4);
    put_be32(f + FT_CREATOR_VERSION, CREATOR_VERSION);
    memcpy(f + FT_CREATOR_OS, "Wi2k", 4);
    put_be64(f + FT_ORIGINAL_SIZE, w->vsize);
    put_be64(f + FT_CURRENT_SIZE, w->vsize);
    put_be16(f + FT_CYLINDERS, (uint16_t)g->cylinders);
    f[FT_HEADS] = (uint8_t)g->heads;
    f[FT_SPT] = (uint8_t)g->sectors;
    put_be32(f + FT_TYPE, VPC_TYPE_DYNAMIC);
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

int fmt_vpc_writer_open(struct fmt_writer *w)
{
    const struct fmt_env *env = w->env;
    struct vhd_chs g;
    uint64_t chs_size = 0, entries, last_bitmap;
    struct vpc_out *s;

    w->name = "vpc";
    /* The engine hands a size output_vsize() made; it is its own CHS
     * size (the search is idempotent), which gives the geometry. */
    if (!vhd_chs_size(w->vsize, &chs_size, &g) || chs_size != w->vsize)
        return g_fail(env->err, G_EINVAL,
                      "vpc: virtual size %llu is not a VHD size qemu-img "
                      "makes (engine bug)",
                      (unsigned long long)w->vsize);
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
    put_footer(w, &g, s->head);
    put_dynhdr(entries, s->head + VPC_FOOTER_LEN);
    w->priv = s;
    w->write = vpc_write;
    w->zero = vpc_zero;
    w->finish = vpc_finish;
    w->place = vpc_place;
    return G_OK;
}
