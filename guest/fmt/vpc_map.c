/*
 * vpc mapping: the BAT (cached a page at a time), the per-block sector
 * bitmaps (the last one cached) and the read path, which turns a request
 * into runs (file data, zeros, parent data) and issues one host read per
 * contiguous run.
 */
#include "vpc.h"
#include "../rt/rt.h"

int vpc_bat_entry(struct fmt_reader *r, uint32_t index, uint32_t *entry)
{
    struct vpc *v = r->priv;
    uint32_t first, count;
    int ret;

    if (index >= v->bat_entries) {
        *entry = VPC_BAT_UNUSED;
        return G_OK;
    }
    if (v->bat_count == 0 || index < v->bat_first ||
        index - v->bat_first >= v->bat_count) {
        first = index & ~(VPC_BAT_PAGE_ENTRIES - 1);
        count = v->bat_entries - first < VPC_BAT_PAGE_ENTRIES
                    ? v->bat_entries - first
                    : VPC_BAT_PAGE_ENTRIES;
        v->bat_count = 0;
        /* open checked that the whole BAT lies in the file */
        ret = fmt_pread(r->env, r->handle, v->bat_off + (uint64_t)first * 4,
                        v->bat_page, (uint64_t)count * 4, "vpc", "BAT");
        if (ret != G_OK)
            return ret;
        v->bat_first = first;
        v->bat_count = count;
    }
    *entry = get_be32(v->bat_page + (uint64_t)(index - v->bat_first) * 4);
    return G_OK;
}

static bool overlaps(uint64_t a, uint64_t a_end, uint64_t b, uint64_t b_end)
{
    return a < b_end && b < a_end;
}

/*
 * Every allocated block (bitmap + data) must lie inside the file and
 * outside the metadata: qemu refuses blocks past the end of the file too
 * ("free_data_block_offset points after the end of file"), but reads a
 * block placed over the headers or the BAT; instar refuses that as well.
 */
int vpc_check_bat(struct fmt_reader *r)
{
    struct vpc *v = r->priv;
    uint64_t span = (uint64_t)v->bitmap_size + v->block_size;
    uint64_t bat_end = v->bat_off + (uint64_t)v->bat_entries * 4;

    for (uint32_t i = 0; i < v->bat_entries; i++) {
        uint32_t e;
        int ret = vpc_bat_entry(r, i, &e);
        if (ret != G_OK)
            return ret;
        if (e == VPC_BAT_UNUSED)
            continue;
        uint64_t start = (uint64_t)e * VPC_SECTOR, end = start + span;
        if (end > v->file_size)
            return g_fail(r->env->err, G_ECORRUPT,
                          "vpc: BAT entry %u: block at offset %llu (%llu "
                          "bytes) is past the end of the file",
                          (unsigned)i, (unsigned long long)start,
                          (unsigned long long)span);
        if (overlaps(start, end, 0, VPC_FOOTER_LEN) ||
            overlaps(start, end, v->hdr_off, v->hdr_off + VPC_DYNHDR_LEN) ||
            overlaps(start, end, v->bat_off, bat_end))
            return g_fail(r->env->err, G_ECORRUPT,
                          "vpc: BAT entry %u: block at offset %llu overlaps "
                          "the image metadata",
                          (unsigned)i, (unsigned long long)start);
    }
    return G_OK;
}

int vpc_read_fixed(struct fmt_reader *r, uint64_t off, void *buf,
                   uint64_t len)
{
    uint64_t n = 0;
    int ret;

    if (off < r->vsize) {
        n = r->vsize - off < len ? r->vsize - off : len;
        /* open checked vsize <= file size - footer */
        ret = fmt_pread(r->env, r->handle, off, buf, n, "vpc", "data");
        if (ret != G_OK)
            return ret;
    }
    if (n < len)
        memset((uint8_t *)buf + n, 0, (size_t)(len - n));
    return G_OK;
}

/* Where a run of the virtual disk comes from. */
enum run_kind {
    RUN_NONE,   /* nothing pending */
    RUN_ZERO,   /* unallocated in a dynamic disk */
    RUN_FILE,   /* stored in this file at foff */
    RUN_PARENT, /* unallocated in a differencing disk: the parent's data */
};

struct run {
    enum run_kind kind;
    uint64_t voff; /* virtual offset */
    uint64_t foff; /* file offset (RUN_FILE) */
    uint64_t len;
    uint8_t *dst;
};

/* Reads [off, off + len) of the parent; past its end, zeros. */
static int read_parent(struct fmt_reader *r, uint64_t off, uint8_t *dst,
                       uint64_t len)
{
    struct fmt_reader *p = ((struct vpc *)r->priv)->parent;
    uint64_t n = 0;
    int ret;

    if (off < p->vsize) {
        n = p->vsize - off < len ? p->vsize - off : len;
        if ((ret = p->read(p, off, dst, n)) != G_OK)
            return ret;
    }
    if (n < len)
        memset(dst + n, 0, (size_t)(len - n));
    return G_OK;
}

static int run_flush(struct fmt_reader *r, struct run *run)
{
    enum run_kind kind = run->kind;

    run->kind = RUN_NONE;
    switch (kind) {
    case RUN_ZERO:
        memset(run->dst, 0, (size_t)run->len);
        return G_OK;
    case RUN_FILE:
        return fmt_pread(r->env, r->handle, run->foff, run->dst, run->len,
                         "vpc", "data block");
    case RUN_PARENT:
        return read_parent(r, run->voff, run->dst, run->len);
    case RUN_NONE:
        break;
    }
    return G_OK;
}

/* Appends a piece to the pending run, or flushes the run and starts a new
 * one when the piece does not continue it. */
static int run_add(struct fmt_reader *r, struct run *run, enum run_kind kind,
                   uint64_t voff, uint64_t foff, uint64_t len, uint8_t *dst)
{
    int ret;

    if (run->kind == kind &&
        (kind != RUN_FILE || run->foff + run->len == foff)) {
        run->len += len;
        return G_OK;
    }
    if ((ret = run_flush(r, run)) != G_OK)
        return ret;
    *run = (struct run){kind, voff, foff, len, dst};
    return G_OK;
}

static int load_bitmap(struct fmt_reader *r, uint32_t block, uint32_t entry)
{
    struct vpc *v = r->priv;
    int ret;

    if (v->bitmap_valid && v->bitmap_block == block)
        return G_OK;
    v->bitmap_valid = false;
    /* vpc_check_bat: the block, bitmap first, lies in the file */
    ret = fmt_pread(r->env, r->handle, (uint64_t)entry * VPC_SECTOR,
                    v->bitmap, v->bitmap_size, "vpc", "sector bitmap");
    if (ret != G_OK)
        return ret;
    v->bitmap_block = block;
    v->bitmap_valid = true;
    return G_OK;
}

static bool sector_present(const struct vpc *v, uint64_t sector)
{
    return (v->bitmap[sector >> 3] >> (7 - (sector & 7))) & 1;
}

/* Splits [in, in + span) of allocated block `block` into runs by its
 * sector bitmap. */
static int add_block(struct fmt_reader *r, struct run *run, uint32_t block,
                     uint32_t entry, uint64_t in, uint64_t span,
                     uint64_t voff, uint8_t *dst, enum run_kind absent)
{
    struct vpc *v = r->priv;
    uint64_t data = (uint64_t)entry * VPC_SECTOR + v->bitmap_size;
    uint64_t p = in, stop = in + span;
    int ret;

    if ((ret = load_bitmap(r, block, entry)) != G_OK)
        return ret;
    while (p < stop) {
        bool set = sector_present(v, p / VPC_SECTOR);
        uint64_t q = (p / VPC_SECTOR + 1) * VPC_SECTOR;
        while (q < stop && sector_present(v, q / VPC_SECTOR) == set)
            q += VPC_SECTOR;
        if (q > stop)
            q = stop;
        ret = run_add(r, run, set ? RUN_FILE : absent, voff + (p - in),
                      data + p, q - p, dst + (p - in));
        if (ret != G_OK)
            return ret;
        p = q;
    }
    return G_OK;
}

int vpc_read_sparse(struct fmt_reader *r, uint64_t off, void *buf,
                    uint64_t len)
{
    struct vpc *v = r->priv;
    enum run_kind absent = v->parent ? RUN_PARENT : RUN_ZERO;
    struct run run = {RUN_NONE, 0, 0, 0, 0};
    uint8_t *out = buf;
    uint64_t end = off, pos = off;
    int ret;

    if (off < r->vsize)
        end = r->vsize - off < len ? r->vsize : off + len;
    while (pos < end) {
        uint64_t block = pos >> v->block_shift;
        uint64_t in = pos & (v->block_size - 1);
        uint64_t span = v->block_size - in < end - pos ? v->block_size - in
                                                       : end - pos;
        uint32_t entry;
        /* block < bat_entries: open checked entries x block_size >= vsize */
        if ((ret = vpc_bat_entry(r, (uint32_t)block, &entry)) != G_OK)
            return ret;
        if (entry == VPC_BAT_UNUSED)
            ret = run_add(r, &run, absent, pos, 0, span, out + (pos - off));
        else
            ret = add_block(r, &run, (uint32_t)block, entry, in, span, pos,
                            out + (pos - off), absent);
        if (ret != G_OK)
            return ret;
        pos += span;
    }
    if ((ret = run_flush(r, &run)) != G_OK)
        return ret;
    if (end - off < len)
        memset(out + (end - off), 0, (size_t)(len - (end - off)));
    return G_OK;
}

/* ---- block status (extent) ---------------------------------------------- */

int vpc_extent_fixed(struct fmt_reader *r, uint64_t off, uint64_t len,
                     struct fmt_extent *e)
{
    if (off >= r->vsize) {
        *e = (struct fmt_extent){FMT_EXTENT_ZERO, 0, 0, len};
        return G_OK;
    }
    *e = (struct fmt_extent){FMT_EXTENT_PLAIN, r->handle, off,
                             r->vsize - off < len ? r->vsize - off : len};
    return G_OK;
}

/* What [off, off + len) of a dynamic or differencing disk starts with: a
 * run of sectors stored in this file (plain), or absent ones (zeros, or
 * whatever the parent has there). */
int vpc_extent_sparse(struct fmt_reader *r, uint64_t off, uint64_t len,
                      struct fmt_extent *e)
{
    struct vpc *v = r->priv;
    uint32_t entry;
    int ret;

    if (off >= r->vsize) {
        *e = (struct fmt_extent){FMT_EXTENT_ZERO, 0, 0, len};
        return G_OK;
    }
    uint64_t block = off >> v->block_shift;
    uint64_t in = off & (v->block_size - 1);
    uint64_t span = v->block_size - in;
    if (span > len)
        span = len;
    if (span > r->vsize - off)
        span = r->vsize - off;
    if ((ret = vpc_bat_entry(r, (uint32_t)block, &entry)) != G_OK)
        return ret;
    if (entry != VPC_BAT_UNUSED) {
        if ((ret = load_bitmap(r, (uint32_t)block, entry)) != G_OK)
            return ret;
        /* The run of sectors that share the first one's bit. */
        bool set = sector_present(v, in / VPC_SECTOR);
        uint64_t q = (in / VPC_SECTOR + 1) * VPC_SECTOR;
        while (q < in + span && sector_present(v, q / VPC_SECTOR) == set)
            q += VPC_SECTOR;
        if (q - in < span)
            span = q - in;
        if (set) {
            *e = (struct fmt_extent){
                FMT_EXTENT_PLAIN, r->handle,
                (uint64_t)entry * VPC_SECTOR + v->bitmap_size + in, span};
            return G_OK;
        }
    }
    return fmt_extent_of(v->parent, off, span, e);
}
