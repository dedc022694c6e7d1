/*
 * vmdk hosted sparse extents ("KDMV"): header, footer, grain directory,
 * grain tables and grains, plain or zlib-compressed (streamOptimized). See
 * vmdk.h for the layout. Directories and tables go through the table cache
 * the chain shares (struct vmdk_shared), so an extent costs only its
 * struct vmdk_sparse however many there are.
 */
#include "info.h"
#include "vmdk.h"
#include "../rt/rt.h"

#define GD_AT_END UINT64_MAX
#define FLAG_ZERO_GRAIN (1u << 2)
#define FLAG_MARKERS (1u << 17)
#define MARKER_EOS 0u
#define MARKER_FOOTER 3u
/* Table cache indexes: grain tables by GD index (< 2^25), GD pages above. */
#define GD_PAGE_KEY (1ull << 32)
#define GD_PAGE_ENTRIES (VMDK_TABLE_BYTES / 4u)

static int corrupt(const struct fmt_env *env, const char *what,
                   unsigned long long v, const char *problem)
{
    return g_fail(env->err, G_ECORRUPT, "vmdk: %s %llu %s", what, v, problem);
}

/* streamOptimized images may put the GD after the grains; the footer in
 * the last three sectors (footer marker, header copy, end-of-stream marker)
 * then holds the header to use. */
static int read_footer(const struct fmt_env *env, uint32_t handle,
                       uint64_t file_size, uint8_t *hdr)
{
    /* a file ending mid-sector reads as if zero-padded to the sector */
    uint64_t end = (file_size + VMDK_SECTOR - 1) / VMDK_SECTOR * VMDK_SECTOR;
    uint8_t *f = hdr + VMDK_SECTOR; /* the rest of the scratch buffer */
    uint64_t got = 0;
    int ret;

    if (end < 4 * VMDK_SECTOR)
        return corrupt(env, "file size", file_size,
                       "is too small for a footer (invalid footer)");
    ret = fmt_pread_partial(env, handle, end - 3 * VMDK_SECTOR, f,
                            3 * VMDK_SECTOR, &got, VMDK_NAME);
    if (ret != G_OK)
        return ret;
    memset(f + got, 0, (size_t)(3 * VMDK_SECTOR - got));
    if (get_le32(f + 12) != MARKER_FOOTER || get_le32(f + 8) != 0)
        return corrupt(env, "footer marker type", get_le32(f + 12),
                       "is not a footer marker (invalid footer)");
    if (memcmp(f + VMDK_SECTOR, "KDMV", 4) != 0)
        return g_fail(env->err, G_ECORRUPT,
                      "vmdk: footer magic is not KDMV (invalid footer)");
    if (get_le64(f + 1024) != 0 || get_le32(f + 1032) != 0 ||
        get_le32(f + 1036) != MARKER_EOS)
        return g_fail(env->err, G_ECORRUPT,
                      "vmdk: end-of-stream marker after the footer is "
                      "missing (invalid footer)");
    if (get_le64(f + VMDK_SECTOR + 56) == GD_AT_END)
        return g_fail(env->err, G_ECORRUPT,
                      "vmdk: footer gdOffset is GD_AT_END too");
    memcpy(hdr, f + VMDK_SECTOR, VMDK_SECTOR);
    return G_OK;
}

/* Header fields checked before anything uses them. */
static int check_header(const struct fmt_env *env, const uint8_t *h,
                        struct vmdk_sparse *sp)
{
    uint32_t version = get_le32(h + 4), flags = get_le32(h + 8);
    uint64_t cap = get_le64(h + 12), grain = get_le64(h + 20);
    uint32_t gtes = get_le32(h + 44);
    uint16_t alg = get_le16(h + 77);
    uint64_t grains, gd_entries;

    if (version > 3)
        return g_fail(env->err, G_ENOTSUP,
                      "vmdk: version %u is not supported", (unsigned)version);
    if (cap == 0)
        return g_fail(env->err, G_ENOTSUP,
                      "vmdk: capacity 0 is not supported (qemu cannot open "
                      "such an extent either)");
    if (cap > LIMIT_VSIZE / VMDK_SECTOR)
        return corrupt(env, "capacity", cap, "sectors exceeds the limit");
    if (grain == 0 || grain > LIMIT_VMDK_GRAIN_SECTORS_MAX)
        return corrupt(env, "grainSize", grain, "is out of range");
    if (gtes == 0 || gtes > LIMIT_VMDK_GT_ENTRIES_MAX)
        return corrupt(env, "numGTEsPerGT", gtes, "is out of range");
    if (alg > 1)
        return g_fail(env->err, G_ENOTSUP,
                      "vmdk: compressAlgorithm %u is not supported",
                      (unsigned)alg);
    sp->compressed = alg == 1;
    sp->markers = (flags & FLAG_MARKERS) != 0;
    sp->zero_flag = (flags & FLAG_ZERO_GRAIN) != 0;
    if (sp->compressed && grain > LIMIT_VMDK_COMPRESSED_GRAIN_SECTORS)
        return corrupt(env, "grainSize", grain,
                       "is too large for compressed grains");
    sp->capacity = cap * VMDK_SECTOR;
    sp->grain_bytes = grain * VMDK_SECTOR;
    sp->gtes = gtes;
    grains = cap / grain + (cap % grain != 0);
    gd_entries = grains / gtes + (grains % gtes != 0);
    if (gd_entries > LIMIT_VMDK_GD_ENTRIES)
        return corrupt(env, "grain directory size", gd_entries,
                       "entries exceeds the limit");
    sp->gd_entries = (uint32_t)gd_entries;
    sp->overhead = get_le64(h + 64) > UINT64_MAX / VMDK_SECTOR
                       ? UINT64_MAX
                       : get_le64(h + 64) * VMDK_SECTOR;
    return G_OK;
}

/* Byte offset of `sectors`, refusing offsets past the end of the file. */
static int sector_off(const struct vmdk_sparse *sp, const char *what,
                      uint64_t sectors, uint64_t len, uint64_t *off)
{
    uint64_t end;
    if (sectors > UINT64_MAX / VMDK_SECTOR ||
        __builtin_add_overflow(sectors * VMDK_SECTOR, len, &end) ||
        end > sp->file_size)
        return g_fail(sp->env->err, G_ECORRUPT,
                      "vmdk: %s at sector %llu (%llu bytes) is past the end "
                      "of the file",
                      what, (unsigned long long)sectors,
                      (unsigned long long)len);
    *off = sectors * VMDK_SECTOR;
    return G_OK;
}

/* qemu reads the embedded descriptor from the 20 sectors after the header
 * whatever descriptorOffset/descriptorSize say (measured: text moved
 * elsewhere is not found, text at sector 1 is found with descriptorOffset
 * 0), so instar does the same. */
#define EMBEDDED_DESC_BYTES (20u * VMDK_SECTOR)

static int read_descriptor(struct vmdk_sparse *sp)
{
    uint8_t *d = fmt_io_alloc(sp->env, EMBEDDED_DESC_BYTES, VMDK_NAME,
                              "descriptor");
    uint64_t got = 0;
    int ret;

    if (!d)
        return G_ENOMEM;
    if ((ret = fmt_pread_partial(sp->env, sp->handle, VMDK_SECTOR, d,
                                 EMBEDDED_DESC_BYTES, &got, VMDK_NAME)) < 0)
        return ret;
    sp->desc = (const char *)d;
    /* text ends at the first NUL or the end of the file, like a C string */
    for (sp->desc_len = 0; sp->desc_len < got && d[sp->desc_len];)
        sp->desc_len++;
    return G_OK;
}

/* The grain directory must lie inside the file; it is read a page at a
 * time, through the table cache, when first used. */
static int check_gd(struct vmdk_sparse *sp, uint64_t gd_sectors)
{
    if (gd_sectors == 0)
        return corrupt(sp->env, "gdOffset", 0, "overlaps the header");
    sp->memo_t = UINT32_MAX;
    return sector_off(sp, "grain directory", gd_sectors,
                      (uint64_t)sp->gd_entries * 4, &sp->gd_off);
}

int vmdk_sparse_open(const struct fmt_env *env, uint32_t handle,
                     bool embedded, uint8_t *scratch,
                     struct vmdk_sparse **out)
{
    struct vmdk_sparse *sp = fmt_alloc(env, sizeof *sp, VMDK_NAME, "extent");
    uint8_t *h = scratch;
    uint64_t got = 0;
    int ret;

    if (!sp)
        return G_ENOMEM;
    sp->env = env;
    sp->handle = handle;
    ret = env->ops->size(env->ops->ctx, handle, &sp->file_size);
    if (ret != CT_OK)
        return g_fail(env->err, G_EIO, "vmdk: cannot get the extent size: %s",
                      ct_result_str(ret));
    if ((ret = fmt_pread_partial(env, handle, 0, h, VMDK_SECTOR, &got,
                                 VMDK_NAME)) < 0)
        return ret;
    if (got >= 4 && memcmp(h, "COWD", 4) == 0)
        return g_fail(env->err, G_ENOTSUP,
                      "vmdk: COWD (ESX sparse) extents are not supported");
    if (got < 4 || memcmp(h, "KDMV", 4) != 0)
        return g_fail(env->err, G_ECORRUPT,
                      "vmdk: sparse extent magic is not KDMV (image not in "
                      "VMDK format)");
    if (got < VMDK_SECTOR)
        return corrupt(env, "header of", got, "bytes is truncated");
    if (embedded && (ret = read_descriptor(sp)) < 0)
        return ret;
    if (get_le64(h + 56) == GD_AT_END &&
        (ret = read_footer(env, handle, sp->file_size, h)) < 0)
        return ret;
    if ((ret = check_header(env, h, sp)) < 0 ||
        (ret = check_gd(sp, get_le64(h + 56))) < 0)
        return ret;
    *out = sp;
    return G_OK;
}

static int load_gd_page(void *ctx, uint64_t index, uint8_t *buf)
{
    struct vmdk_sparse *sp = ctx;
    uint64_t first = (index - GD_PAGE_KEY) * GD_PAGE_ENTRIES;
    uint64_t n = sp->gd_entries - first < GD_PAGE_ENTRIES
                     ? sp->gd_entries - first
                     : GD_PAGE_ENTRIES;

    /* check_gd put the whole directory inside the file */
    return fmt_pread(sp->env, sp->handle, sp->gd_off + first * 4, buf, n * 4,
                     VMDK_NAME, "grain directory");
}

/* A grain table to load: its extent and the GD entry naming it. */
struct gt_load {
    struct vmdk_sparse *sp;
    uint32_t sector;
};

static int load_gt(void *ctx, uint64_t t, uint8_t *buf)
{
    const struct gt_load *l = ctx;
    uint64_t bytes = (uint64_t)l->sp->gtes * 4, pos = 0;
    int ret = sector_off(l->sp, "grain table", l->sector, bytes, &pos);

    (void)t;
    if (ret < 0)
        return ret;
    return fmt_pread(l->sp->env, l->sp->handle, pos, buf, bytes, VMDK_NAME,
                     "grain table");
}

/* GD entry t (t < gd_entries), remembered for the grains that follow. */
static int gd_entry(struct vmdk_sparse *sp, struct vmdk_shared *sh,
                    uint32_t t, uint32_t *e)
{
    const uint8_t *page;
    int ret;

    if (t != sp->memo_t) {
        if ((ret = tcache_get(&sh->tables, (uintptr_t)sp,
                              GD_PAGE_KEY + t / GD_PAGE_ENTRIES,
                              load_gd_page, sp, &page)) < 0)
            return ret;
        sp->memo_gde = get_le32(page + 4 * (t % GD_PAGE_ENTRIES));
        sp->memo_t = t;
    }
    *e = sp->memo_gde;
    return G_OK;
}

/* What grain g is, its grain table entry being e. */
static int grain_kind(const struct vmdk_sparse *sp, uint64_t g, uint32_t e,
                      int *kind, uint64_t *off)
{
    *kind = VMDK_GRAIN_UNALLOCATED;
    if (e == 0)
        return G_OK;
    if (e == 1 && sp->zero_flag) {
        *kind = VMDK_GRAIN_ZERO;
        return G_OK;
    }
    *off = (uint64_t)e * VMDK_SECTOR;
    /* qemu reads such grains from the header and tables; refuse instead */
    if (*off < sp->overhead)
        return g_fail(sp->env->err, G_ECORRUPT,
                      "vmdk: grain %llu at sector %u lies inside the metadata "
                      "(overHead %llu sectors)",
                      (unsigned long long)g, (unsigned)e,
                      (unsigned long long)(sp->overhead / VMDK_SECTOR));
    *kind = VMDK_GRAIN_DATA;
    return G_OK;
}

/* Kind of grain g and, for data, its byte offset in the file. */
static int lookup(struct vmdk_sparse *sp, struct vmdk_shared *sh, uint64_t g,
                  int *kind, uint64_t *off)
{
    uint32_t t = (uint32_t)(g / sp->gtes); /* < gd_entries <= 2^25 */
    const uint8_t *gt;
    uint32_t e;
    int ret;

    *kind = VMDK_GRAIN_UNALLOCATED;
    if ((ret = gd_entry(sp, sh, t, &e)) < 0)
        return ret;
    if (e == 0)
        return G_OK; /* the whole grain table is unallocated */
    struct gt_load l = {sp, e};
    if ((ret = tcache_get(&sh->tables, (uintptr_t)sp, t, load_gt, &l,
                          &gt)) < 0)
        return ret;
    return grain_kind(sp, g, get_le32(gt + 4 * (g % sp->gtes)), kind, off);
}

/* A compressed grain: marker + zlib stream, bounded by the grain size plus
 * room for zlib's worst-case expansion. */
#define CGRAIN_SLACK 4096u
#define CGRAIN_BYTES_MAX                                                    \
    ((uint64_t)LIMIT_VMDK_COMPRESSED_GRAIN_SECTORS * VMDK_SECTOR)

/* Where grain g's compressed bytes are, for the batcher. */
struct gfetch {
    struct vmdk_sparse *sp;
    struct zbatch *zb;
    uint64_t off; /* file offset of the grain (its marker, if any) */
};

/* The grain's compressed bytes from the batcher's window: after its
 * marker (streamOptimized), or up to the grain bound when there is none
 * (the stream ends where zlib says). */
static int gfetch(void *ctx, const uint8_t **src, uint64_t *csize)
{
    const struct gfetch *f = ctx;
    const struct vmdk_sparse *sp = f->sp;
    uint64_t limit = sp->grain_bytes + CGRAIN_SLACK, got;
    int ret;

    if (f->off >= sp->file_size)
        return corrupt(sp->env, "compressed grain at offset", f->off,
                       "is past the end of the file");
    if (!sp->markers) {
        uint64_t want = sp->file_size - f->off < limit ? sp->file_size - f->off
                                                       : limit;
        *csize = want;
        return zbatch_bytes(f->zb, sp->handle, f->off, want, src, &got);
    }
    if ((ret = zbatch_bytes(f->zb, sp->handle, f->off, 12, src, &got)) < 0)
        return ret;
    uint32_t size = got >= 12 ? get_le32(*src + 8) : 0;
    if (got < 12 || (uint64_t)size + 12 > limit)
        return corrupt(sp->env, "compressed grain size", size,
                       "is larger than a grain allows");
    if ((ret = zbatch_bytes(f->zb, sp->handle, f->off, 12 + (uint64_t)size,
                            src, &got)) < 0)
        return ret;
    if (got < 12 + (uint64_t)size)
        return corrupt(sp->env, "compressed grain at offset", f->off,
                       "is past the end of the file");
    *src += 12;
    *csize = size;
    return G_OK;
}

/* Grain g (at file offset off): [in, in + n) into buf. A whole grain is
 * queued for the vCPUs; a part is inflated at once into the batcher's
 * part buffer. */
static int read_compressed(struct vmdk_sparse *sp, struct vmdk_shared *sh,
                           uint64_t g, uint64_t off, uint64_t in,
                           uint8_t *buf, uint64_t n)
{
    uint64_t need = sp->capacity - g * sp->grain_bytes, csize;
    struct gfetch f = {sp, &sh->zb, off};
    const uint8_t *src;
    int ret;

    if (need > sp->grain_bytes)
        need = sp->grain_bytes;
    if ((ret = zbatch_setup(&sh->zb, sp->grain_bytes,
                            sp->grain_bytes + CGRAIN_SLACK)) < 0)
        return ret;
    if (in == 0 && n == sp->grain_bytes) {
        if ((ret = gfetch(&f, &src, &csize)) < 0)
            return ret;
        return zbatch_queue(&sh->zb, src, csize, buf, sp->grain_bytes, need,
                            off);
    }
    ret = zbatch_part(&sh->zb, sp->handle, off, sp->grain_bytes, need,
                      gfetch, &f, &src);
    if (ret == G_OK)
        memcpy(buf, src + in, (size_t)n);
    return ret;
}

/* The run of grains from `pos` (< end) that read alike: one compressed
 * grain, or grains of one kind (for data, contiguous in the file). *foff
 * is the file offset of the first grain's data. */
static int grain_run(struct vmdk_sparse *sp, struct vmdk_shared *sh,
                     uint64_t pos, uint64_t end, int *kind, uint64_t *foff,
                     uint64_t *run)
{
    const uint64_t gb = sp->grain_bytes;
    uint64_t g = pos / gb, in = pos - g * gb;
    int ret;

    *foff = 0;
    if ((ret = lookup(sp, sh, g, kind, foff)) < 0)
        return ret;
    *run = gb - in < end - pos ? gb - in : end - pos;
    if (*kind == VMDK_GRAIN_DATA && sp->compressed)
        return G_OK;
    while (pos + *run < end) {
        uint64_t g2 = (pos + *run) / gb, f2 = 0, step;
        int k2;
        if ((ret = lookup(sp, sh, g2, &k2, &f2)) < 0)
            return ret;
        if (k2 != *kind ||
            (*kind == VMDK_GRAIN_DATA && f2 != *foff + (g2 - g) * gb))
            break;
        step = end - (pos + *run);
        *run += step < gb ? step : gb;
    }
    return G_OK;
}

int vmdk_sparse_read(struct vmdk_sparse *sp, struct vmdk_shared *sh,
                     uint64_t off, uint8_t *buf, uint64_t len,
                     vmdk_hole_fn hole, struct vmdk_state *st,
                     uint64_t ext_start)
{
    const uint64_t gb = sp->grain_bytes, end = off + len;
    uint64_t pos = off;
    int ret;

    while (pos < end) {
        uint64_t g = pos / gb, in = pos - g * gb, foff, run;
        int kind;
        if ((ret = grain_run(sp, sh, pos, end, &kind, &foff, &run)) < 0)
            return ret;
        uint8_t *dst = buf + (pos - off);
        if (kind == VMDK_GRAIN_DATA && sp->compressed)
            ret = read_compressed(sp, sh, g, foff, in, dst, run);
        else if (kind == VMDK_GRAIN_DATA)
            ret = fmt_pread(sp->env, sp->handle, foff + in, dst, run,
                            VMDK_NAME, "grain data");
        else if (kind == VMDK_GRAIN_ZERO)
            memset(dst, 0, (size_t)run), ret = G_OK;
        else
            ret = hole(st, ext_start, pos, dst, run);
        if (ret < 0) {
            /* The caller's buffer is not ours any more. */
            zbatch_drop(&sh->zb);
            return ret;
        }
        pos += run;
    }
    return sh->zb.njobs ? zbatch_flush(&sh->zb) : G_OK;
}

/* Block status of [off, off + len) of the extent (within capacity): a run
 * of uncompressed grains contiguous in the file is plain, a compressed
 * grain data, zeroed grains zeros; unallocated grains say so through
 * *unallocated (the caller asks the parent). */
int vmdk_sparse_extent(struct vmdk_sparse *sp, struct vmdk_shared *sh,
                       uint64_t off, uint64_t len, struct fmt_extent *e,
                       bool *unallocated)
{
    uint64_t in = off % sp->grain_bytes, foff, run, end;
    int kind, ret;

    *unallocated = false;
    if ((ret = grain_run(sp, sh, off, off + len, &kind, &foff, &run)) < 0)
        return ret;
    if (kind == VMDK_GRAIN_DATA && sp->compressed) {
        *e = (struct fmt_extent){FMT_EXTENT_DATA, 0, 0, run};
    } else if (kind == VMDK_GRAIN_DATA) {
        /* The read path refuses grain data past EOF: so does this one,
         * with its message (the host would stop a copy past EOF). */
        if (__builtin_add_overflow(foff + in, run, &end) ||
            end > sp->file_size)
            return g_fail(sp->env->err, G_ECORRUPT,
                          "%s: grain data at offset %llu (%llu bytes) is "
                          "past the end of the file",
                          VMDK_NAME, (unsigned long long)(foff + in),
                          (unsigned long long)run);
        *e = (struct fmt_extent){FMT_EXTENT_PLAIN, sp->handle, foff + in,
                                 run};
    } else {
        *unallocated = kind == VMDK_GRAIN_UNALLOCATED;
        *e = (struct fmt_extent){FMT_EXTENT_ZERO, 0, 0, run};
    }
    return G_OK;
}

/* Grain tables the overlap check holds: a 1 TiB extent of 64 KiB grains
 * has 32768. */
#define CHECK_TABLES_MAX (1u << 18)

/* The header sector, the grain directory and every grain table, checked
 * to lie in the file and clear of each other. */
static int table_ranges(struct vmdk_sparse *sp, struct vmdk_shared *sh,
                        struct fmt_ranges *m)
{
    uint64_t pos = 0;
    uint32_t e;
    int ret;

    fmt_ranges_add(m, 0, VMDK_SECTOR, "header");
    fmt_ranges_add(m, sp->gd_off, (uint64_t)sp->gd_entries * 4,
                   "grain directory");
    for (uint32_t t = 0; t < sp->gd_entries; t++) {
        if ((ret = gd_entry(sp, sh, t, &e)) < 0)
            return ret;
        if (e == 0)
            continue;
        if ((ret = sector_off(sp, "grain table", e, (uint64_t)sp->gtes * 4,
                              &pos)) < 0)
            return ret;
        fmt_ranges_add(m, pos, (uint64_t)sp->gtes * 4, "grain table");
    }
    return G_OK;
}

/* Grain tables are read for the check in runs that lie back to back in
 * the file, this much at once: qemu writes them so, and a 1 GiB disk's 32
 * tables then cost one host read, not 32. */
#define CHECK_READ_BYTES (256u * 1024u)

/* Grain g (table entry e) as its read would go, and clear of the tables
 * (else a reason, the first only: *bad). */
static int check_grain(struct vmdk_sparse *sp, struct fmt_info *s,
                       const struct fmt_ranges *m, bool *bad, uint64_t g,
                       uint32_t e)
{
    const struct fmt_env *env = sp->env;
    uint64_t off = 0, len;
    int kind, ret = grain_kind(sp, g, e, &kind, &off);

    if (ret < 0 || kind != VMDK_GRAIN_DATA)
        return ret;
    /* a compressed grain's length is in its marker: its start must lie in
     * the file; a plain one is read whole */
    len = sp->capacity - g * sp->grain_bytes < sp->grain_bytes
              ? sp->capacity - g * sp->grain_bytes
              : sp->grain_bytes;
    if (sp->compressed)
        len = 1;
    /* as the read of this grain would fail */
    if (off > sp->file_size || len > sp->file_size - off)
        return sp->compressed
                   ? corrupt(env, "compressed grain at offset", off,
                             "is past the end of the file")
                   : g_fail(env->err, G_ECORRUPT,
                            "vmdk: grain data at offset %llu (%llu bytes) is "
                            "past the end of the file",
                            (unsigned long long)off, (unsigned long long)len);
    const struct fmt_range *hit = *bad ? NULL : fmt_ranges_find(m, off, len);
    if (!hit)
        return G_OK;
    *bad = true;
    return fmt_info_reasonf(s, CT_SAFETY_METADATA,
                            "vmdk: grain %llu at offset %llu lies inside the "
                            "%s at offset %llu",
                            (unsigned long long)g, (unsigned long long)off,
                            hit->what, (unsigned long long)hit->off);
}

/* How many tables from t on (GD entry e, allocated) lie back to back and
 * fit one read. */
static int table_run(struct vmdk_sparse *sp, struct vmdk_shared *sh,
                     uint32_t t, uint32_t e, uint32_t spt, uint32_t *n)
{
    uint32_t next, most = CHECK_READ_BYTES / (spt * VMDK_SECTOR);
    int ret;

    for (*n = 1; t + *n < sp->gd_entries && *n < most; ++*n) {
        if ((ret = gd_entry(sp, sh, t + *n, &next)) < 0)
            return ret;
        if (next != e + *n * spt)
            break;
    }
    return G_OK;
}

int vmdk_sparse_check(struct vmdk_sparse *sp, struct vmdk_shared *sh,
                      struct fmt_info *s)
{
    uint64_t grains = (sp->capacity + sp->grain_bytes - 1) / sp->grain_bytes;
    uint64_t gt_bytes = (uint64_t)sp->gtes * 4;
    uint32_t spt = (uint32_t)((gt_bytes + VMDK_SECTOR - 1) / VMDK_SECTOR);
    uint8_t *buf = fmt_info_scratch(s, CHECK_READ_BYTES);
    struct fmt_ranges m;
    bool bad = false;
    int ret;

    /* a directory too large to hold gives an UNCHECKED reason (the ranges
     * fill up); the reads' checks still run */
    uint32_t cap = sp->gd_entries + 2u > CHECK_TABLES_MAX ? CHECK_TABLES_MAX
                                                          : sp->gd_entries + 2u;
    if (!buf)
        return G_ENOMEM;
    if ((ret = fmt_ranges_init(&m, s, cap)) < 0 ||
        (ret = table_ranges(sp, sh, &m)) < 0 ||
        (ret = fmt_ranges_check(&m, s, VMDK_NAME, &bad)) < 0)
        return ret;
    for (uint32_t t = 0, n = 1, e; t < sp->gd_entries; t += n) {
        n = 1;
        if ((ret = gd_entry(sp, sh, t, &e)) < 0)
            return ret;
        if (e == 0)
            continue; /* the whole table is unallocated */
        /* table_ranges put every table inside the file */
        if ((ret = table_run(sp, sh, t, e, spt, &n)) < 0 ||
            (ret = fmt_pread(sp->env, sp->handle, (uint64_t)e * VMDK_SECTOR,
                             buf, (uint64_t)(n - 1) * spt * VMDK_SECTOR +
                                      gt_bytes,
                             VMDK_NAME, "grain table")) < 0)
            return ret;
        for (uint32_t i = 0; i < n; i++)
            for (uint32_t j = 0; j < sp->gtes; j++) {
                uint64_t g = (uint64_t)(t + i) * sp->gtes + j;
                const uint8_t *p = buf + (uint64_t)i * spt * VMDK_SECTOR;
                if (g < grains &&
                    (ret = check_grain(sp, s, &m, &bad, g,
                                       get_le32(p + 4 * j))) < 0)
                    return ret;
            }
    }
    return G_OK;
}
