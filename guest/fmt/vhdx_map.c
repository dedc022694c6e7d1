/*
 * vhdx reads: virtual offset -> BAT entry -> file offset. Contiguous fully
 * present blocks become one host read straight into the caller's buffer;
 * holes are memset; a differencing image reads what its sector bitmap
 * marks absent from its parent.
 */
#include "vhdx.h"
#include "../rt/rt.h"

int vhdx_map_init(const struct fmt_env *env, struct vhdx *v)
{
    v->bat_page = fmt_io_alloc(env, VHDX_BAT_PAGE_ENTRIES * 8ull, "vhdx",
                               "BAT page");
    if (!v->bat_page)
        return G_ENOMEM;
    v->bitmap_block = UINT64_MAX;
    if (v->has_parent) {
        /* bits per block = block_size / lss: 32 B .. 64 KiB */
        v->bitmap_bytes = ((uint64_t)v->block_size >> v->lss_bits) / 8;
        v->bitmap = fmt_io_alloc(env, v->bitmap_bytes, "vhdx",
                                 "sector bitmap");
        if (!v->bitmap)
            return G_ENOMEM;
    }
    return G_OK;
}

/* BAT entry idx (idx < bat_entries), through the one-page cache. */
static int bat_entry(struct fmt_reader *r, struct vhdx *v, uint64_t idx,
                     uint64_t *entry)
{
    if (idx >= v->bat_entries)
        return g_fail(r->env->err, G_ECORRUPT,
                      "vhdx: BAT index %llu out of range (%llu entries)",
                      (unsigned long long)idx,
                      (unsigned long long)v->bat_entries);
    if (idx < v->bat_first || idx - v->bat_first >= v->bat_count) {
        uint64_t first = idx & ~(uint64_t)(VHDX_BAT_PAGE_ENTRIES - 1);
        uint64_t count = v->bat_entries - first;
        if (count > VHDX_BAT_PAGE_ENTRIES)
            count = VHDX_BAT_PAGE_ENTRIES;
        v->bat_count = 0;
        /* bat_off + bat_entries * 8 was checked against the file size. */
        int ret = fmt_pread(r->env, r->handle, v->bat_off + first * 8,
                            v->bat_page, count * 8, "vhdx", "BAT");
        if (ret != G_OK)
            return ret;
        v->bat_first = first;
        v->bat_count = count;
    }
    *entry = get_le64(v->bat_page + (idx - v->bat_first) * 8);
    return G_OK;
}

/* A block at file offset foff holding `need` bytes must lie in the file
 * and clear of the image's own metadata (qemu would read such blocks; we
 * refuse them as corruption). */
static int check_block(struct fmt_reader *r, struct vhdx *v, uint64_t idx,
                       uint64_t foff, uint64_t need, const char *what)
{
    uint64_t end;
    if (__builtin_add_overflow(foff, need, &end) || end > v->file_size)
        return g_fail(r->env->err, G_ECORRUPT,
                      "vhdx: BAT entry %llu %s offset %llu is past the end "
                      "of the file (%llu bytes)",
                      (unsigned long long)idx, what,
                      (unsigned long long)foff,
                      (unsigned long long)v->file_size);
    for (unsigned i = 0; i < v->nreserved; i++) {
        const struct vhdx_range *m = &v->reserved[i];
        if (foff < m->off + m->len && m->off < end)
            return g_fail(r->env->err, G_ECORRUPT,
                          "vhdx: BAT entry %llu %s offset %llu overlaps the "
                          "%s",
                          (unsigned long long)idx, what,
                          (unsigned long long)foff, m->what);
    }
    return G_OK;
}

/* Bytes [pos, pos + n) from the parent, zeros past its end. */
static int parent_read(struct vhdx *v, uint64_t pos, uint8_t *out,
                       uint64_t n)
{
    struct fmt_reader *p = v->parent;
    uint64_t m = 0;
    if (!p) {
        memset(out, 0, (size_t)n);
        return G_OK;
    }
    if (pos < p->vsize)
        m = p->vsize - pos < n ? p->vsize - pos : n;
    if (m) {
        int ret = p->read(p, pos, out, m);
        if (ret != G_OK)
            return ret;
    }
    if (m < n)
        memset(out + m, 0, (size_t)(n - m));
    return G_OK;
}

/* Loads the sector bitmap slice of payload block blk. */
static int load_bitmap(struct fmt_reader *r, struct vhdx *v, uint64_t blk)
{
    uint64_t chunk = blk / v->chunk_ratio;
    uint64_t idx = chunk * (v->chunk_ratio + 1) + v->chunk_ratio;
    uint64_t e, foff;
    int ret;

    if (v->bitmap_block == blk)
        return G_OK;
    if ((ret = bat_entry(r, v, idx, &e)) != G_OK)
        return ret;
    if ((e & 7) != VHDX_SB_PRESENT)
        return g_fail(r->env->err, G_ECORRUPT,
                      "vhdx: sector bitmap BAT entry %llu state %u: block "
                      "%llu is partially present without a bitmap",
                      (unsigned long long)idx, (unsigned)(e & 7),
                      (unsigned long long)blk);
    foff = (e >> 20) << 20;
    if ((ret = check_block(r, v, idx, foff, VHDX_MIB, "sector bitmap")) !=
        G_OK)
        return ret;
    v->bitmap_block = UINT64_MAX;
    ret = fmt_pread(r->env, r->handle,
                    foff + (blk % v->chunk_ratio) * v->bitmap_bytes,
                    v->bitmap, v->bitmap_bytes, "vhdx", "sector bitmap");
    if (ret != G_OK)
        return ret;
    v->bitmap_block = blk;
    return G_OK;
}

static bool bit(const uint8_t *map, uint64_t i)
{
    return (map[i >> 3] >> (i & 7)) & 1;
}

/* The end of the run of sectors from byte `in` (< end) of the cached
 * bitmap's block that are all present here, or all absent (*here). */
static uint64_t sector_run(const struct vhdx *v, uint64_t in, uint64_t end,
                           bool *here)
{
    uint64_t stop = ((in >> v->lss_bits) + 1) << v->lss_bits;
    *here = bit(v->bitmap, in >> v->lss_bits);
    while (stop < end && bit(v->bitmap, stop >> v->lss_bits) == *here)
        stop += v->lss;
    return stop < end ? stop : end;
}

/* Bytes [in, in + n) of partially present block blk (data at foff): runs
 * of sectors present here are read from the file, the rest from the
 * parent. */
static int read_partial(struct fmt_reader *r, struct vhdx *v, uint64_t blk,
                        uint64_t foff, uint64_t in, uint8_t *out, uint64_t n)
{
    uint64_t base = blk << v->block_bits;
    uint64_t end = in + n;
    int ret = load_bitmap(r, v, blk);

    while (ret == G_OK && in < end) {
        bool here;
        uint64_t stop = sector_run(v, in, end, &here);
        if (here)
            ret = fmt_pread(r->env, r->handle, foff + in, out, stop - in,
                            "vhdx", "payload block");
        else
            ret = parent_read(v, base + in, out, stop - in);
        out += stop - in;
        in = stop;
    }
    return ret;
}

/* A pending host read: `len` bytes at file offset `foff` into `dst`. */
struct run {
    uint64_t foff, len;
    uint8_t *dst;
};

static int flush(struct fmt_reader *r, struct run *run)
{
    int ret = G_OK;
    if (run->len)
        ret = fmt_pread(r->env, r->handle, run->foff, run->dst, run->len,
                        "vhdx", "payload block");
    run->len = 0;
    return ret;
}

/* Where a piece inside payload block blk lives. */
enum where { IN_FILE, IN_FILE_PARTIAL, IN_PARENT, ZEROS };

/* Looks up the block of virtual offset pos: where it is, and (in the
 * file) the block's file offset. */
static int locate(struct fmt_reader *r, struct vhdx *v, uint64_t pos,
                  enum where *where, uint64_t *foff)
{
    uint64_t blk = pos >> v->block_bits;
    uint64_t idx = blk + blk / v->chunk_ratio;
    uint64_t e, used;
    unsigned state;
    int ret = bat_entry(r, v, idx, &e);

    if (ret != G_OK)
        return ret;
    state = (unsigned)(e & 7);
    *foff = (e >> 20) << 20;
    switch (state) {
    case VHDX_PAYLOAD_FULLY_PRESENT:
    case VHDX_PAYLOAD_PARTIALLY_PRESENT:
        if (state == VHDX_PAYLOAD_PARTIALLY_PRESENT && !v->has_parent)
            break;
        /* bytes of this block inside the virtual disk */
        used = v->vsize - (blk << v->block_bits);
        if (used > v->block_size)
            used = v->block_size;
        if ((ret = check_block(r, v, idx, *foff, used, "payload block")) !=
            G_OK)
            return ret;
        *where = state == VHDX_PAYLOAD_FULLY_PRESENT ? IN_FILE
                                                     : IN_FILE_PARTIAL;
        return G_OK;
    case VHDX_PAYLOAD_NOT_PRESENT:
        *where = IN_PARENT;
        return G_OK;
    case VHDX_PAYLOAD_UNDEFINED:
    case VHDX_PAYLOAD_ZERO:
    case VHDX_PAYLOAD_UNMAPPED:
    case VHDX_PAYLOAD_UNMAPPED_V095:
        /* Zeros, also in a differencing image: the spec lets undefined and
         * unmapped blocks read as zeros, and zero blocks are zeros. */
        *where = ZEROS;
        return G_OK;
    default:
        break;
    }
    return g_fail(r->env->err, G_ECORRUPT,
                  "vhdx: BAT entry %llu state %u is invalid for block %llu",
                  (unsigned long long)idx, state, (unsigned long long)blk);
}

/* One piece of a read that stays inside payload block blk. */
static int read_piece(struct fmt_reader *r, struct vhdx *v, struct run *run,
                      uint64_t pos, uint8_t *out, uint64_t n)
{
    uint64_t in = pos & (v->block_size - 1), foff;
    enum where where;
    int ret = locate(r, v, pos, &where, &foff);

    if (ret != G_OK)
        return ret;
    switch (where) {
    case IN_FILE_PARTIAL:
        if ((ret = flush(r, run)) != G_OK)
            return ret;
        return read_partial(r, v, pos >> v->block_bits, foff, in, out, n);
    case IN_FILE:
        if (run->len && run->foff + run->len == foff + in &&
            run->dst + run->len == out) {
            run->len += n;
            return G_OK;
        }
        if ((ret = flush(r, run)) != G_OK)
            return ret;
        *run = (struct run){foff + in, n, out};
        return G_OK;
    case IN_PARENT:
        return parent_read(v, pos, out, n);
    case ZEROS:
        break;
    }
    memset(out, 0, (size_t)n);
    return G_OK;
}

/* Bytes from off (< vsize) to the end of its block, within len and the
 * disk. */
static uint64_t block_piece(const struct vhdx *v, uint64_t off, uint64_t len)
{
    uint64_t n = v->block_size - (off & (v->block_size - 1));
    if (n > len)
        n = len;
    return n < v->vsize - off ? n : v->vsize - off;
}

int vhdx_read(struct fmt_reader *r, uint64_t off, void *buf, uint64_t len)
{
    struct vhdx *v = r->priv;
    uint8_t *out = buf;
    struct run run = {0, 0, 0};
    int ret = G_OK;

    while (len && ret == G_OK) {
        uint64_t n;
        if (off >= v->vsize) {
            memset(out, 0, (size_t)len);
            break;
        }
        n = block_piece(v, off, len);
        ret = read_piece(r, v, &run, off, out, n);
        off += n;
        out += n;
        len -= n;
    }
    if (ret == G_OK)
        ret = flush(r, &run);
    return ret;
}

/* Block status: a fully present block is plain bytes of this file; a
 * partially present one runs of sectors here (plain) or in the parent;
 * not present: the parent's; zero, undefined, unmapped: zeros. */
int vhdx_extent(struct fmt_reader *r, uint64_t off, uint64_t len,
                struct fmt_extent *e)
{
    struct vhdx *v = r->priv;
    uint64_t in, n, foff;
    enum where where;
    int ret;

    if (off >= v->vsize) {
        *e = (struct fmt_extent){FMT_EXTENT_ZERO, 0, 0, len};
        return G_OK;
    }
    in = off & (v->block_size - 1);
    n = block_piece(v, off, len);
    if ((ret = locate(r, v, off, &where, &foff)) != G_OK)
        return ret;
    if (where == IN_FILE_PARTIAL) {
        bool here;
        if ((ret = load_bitmap(r, v, off >> v->block_bits)) != G_OK)
            return ret;
        n = sector_run(v, in, in + n, &here) - in;
        where = here ? IN_FILE : IN_PARENT;
    }
    switch (where) {
    case IN_FILE:
        *e = (struct fmt_extent){FMT_EXTENT_PLAIN, r->handle, foff + in, n};
        return G_OK;
    case IN_PARENT:
        return fmt_extent_of(v->parent, off, n, e);
    default:
        *e = (struct fmt_extent){FMT_EXTENT_ZERO, 0, 0, n};
        return G_OK;
    }
}

int vhdx_check_blocks(struct fmt_reader *r)
{
    struct vhdx *v = r->priv;

    for (uint64_t blk = 0; blk < v->nblocks; blk++) {
        enum where where;
        uint64_t foff;
        /* the block as a read would find it, then a partial block's
         * sector bitmap */
        int ret = locate(r, v, blk << v->block_bits, &where, &foff);
        if (ret == G_OK && where == IN_FILE_PARTIAL)
            ret = load_bitmap(r, v, blk);
        if (ret != G_OK)
            return ret;
    }
    return G_OK;
}
