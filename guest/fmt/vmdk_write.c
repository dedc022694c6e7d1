/*
 * vmdk output: a monolithicSparse image laid out as qemu-img 7.2 writes
 * it (../shared/design/writers.md section 3). Sector 0 holds the sparse
 * extent header, sectors 1..20 the embedded descriptor; the redundant
 * grain directory follows at sector 21 with its grain tables, then the
 * primary directory with its own copies of the tables; 64 KiB grains are
 * appended from overHead on in the order they are first written. The
 * sector numbers come from output_vmdk_layout(), which the host's output
 * bound uses too.
 *
 * Writes come in virtual order, so grains are allocated in virtual order
 * and a run of written grains is contiguous in the file: dense dd costs
 * one host write per engine chunk. Only the grain table being filled is
 * held; both copies are written when its 32 MiB span is done (or in
 * finish). Header, descriptor and directories do not depend on the data:
 * finish writes them, the directories in pieces, so memory does not grow
 * with the virtual size. The output file starts empty, so the unwritten
 * rest of a grain, an unused table and all padding read as zeros.
 */
#include "vmdk.h"
#include "output_bound.h"
#include "../rt/rt.h"

#define GRAIN_BYTES ((uint64_t)OUTPUT_VMDK_GRAIN_SECTORS * VMDK_SECTOR)
#define GT_BYTES (OUTPUT_VMDK_GTES * 4u)
#define GT_SPAN (GRAIN_BYTES * OUTPUT_VMDK_GTES)
/* Header and descriptor: written at once, then reused for directories. */
#define HEAD_BYTES                                                            \
    ((OUTPUT_VMDK_DESC_SECTOR + OUTPUT_VMDK_DESC_SECTORS) * VMDK_SECTOR)
#define NONE UINT64_MAX

/* writers.md 3.1: version 1; flags bit 0 (newline test valid) and bit 1
 * (redundant grain directory in use). */
#define HDR_VERSION 1u
#define HDR_FLAGS 3u
/* writers.md 3.3: qemu's fixed geometry and its CHS cylinder count. */
#define DDB_HEADS 16u
#define DDB_SECTORS 63u

struct vmdk_w {
    struct output_vmdk_layout l;
    uint64_t next_sector; /* where the next grain goes: the file's end */
    uint64_t last_grain;  /* the grain allocated last, or NONE */
    uint64_t last_sector; /* its sector */
    uint64_t gt_index;    /* the grain table held in gt, or NONE */
    bool gt_dirty;
    uint8_t *gt;          /* GT_BYTES, I/O area */
    uint8_t *buf;         /* HEAD_BYTES, I/O area */
};

/* Both copies of the table held, each listed by its own directory. */
static int gt_flush(struct fmt_writer *w)
{
    struct vmdk_w *s = w->priv;
    uint64_t rel = s->l.gd_sectors + 4 * s->gt_index;
    int ret;

    if (!s->gt_dirty)
        return G_OK;
    s->gt_dirty = false;
    ret = fmt_out_write(w, (s->l.rgd_offset + rel) * VMDK_SECTOR, s->gt,
                        GT_BYTES);
    if (ret == G_OK)
        ret = fmt_out_write(w, (s->l.gd_offset + rel) * VMDK_SECTOR, s->gt,
                            GT_BYTES);
    return ret;
}

/* Records grain g at `sector`; the table before it is done then. */
static int gt_set(struct fmt_writer *w, uint64_t g, uint64_t sector)
{
    struct vmdk_w *s = w->priv;
    uint64_t j = g / OUTPUT_VMDK_GTES;
    int ret;

    if (j != s->gt_index) {
        if (s->gt_index != NONE && (ret = gt_flush(w)) != G_OK)
            return ret;
        memset(s->gt, 0, GT_BYTES);
        s->gt_index = j;
    }
    /* The size cap (OUTPUT_VMDK_MAX_VSIZE, checked in open) keeps every
     * grain's sector within the 32-bit entry. */
    put_le32(s->gt + 4 * (g % OUTPUT_VMDK_GTES), (uint32_t)sector);
    s->gt_dirty = true;
    return G_OK;
}

/* Everything up to `end` is written or zero: the table whose span ends
 * there will not change again. */
static int span_done(struct fmt_writer *w, uint64_t end)
{
    struct vmdk_w *s = w->priv;
    int ret = G_OK;

    if (s->gt_index != NONE && end >= (s->gt_index + 1) * GT_SPAN) {
        ret = gt_flush(w);
        s->gt_index = NONE;
    }
    return ret;
}

int fmt_vmdk_writer_map(struct fmt_writer *w, uint64_t off, uint64_t len,
                        bool alloc, uint64_t *file_off, uint64_t *run)
{
    struct vmdk_w *s = w->priv;
    uint64_t g = off / GRAIN_BYTES, in = off % GRAIN_BYTES, end, h;
    int ret;

    if (len == 0 || __builtin_add_overflow(off, len, &end) ||
        end > w->vsize || (s->last_grain != NONE && g < s->last_grain))
        return g_fail(w->env->err, G_EINVAL,
                      "vmdk: cannot place %llu bytes at offset %llu "
                      "(engine bug)",
                      (unsigned long long)len, (unsigned long long)off);
    if (g == s->last_grain) {
        *file_off = s->last_sector * VMDK_SECTOR + in;
        h = g + 1;
    } else {
        *file_off = alloc ? s->next_sector * VMDK_SECTOR + in : 0;
        h = g;
    }
    if (!alloc) {
        /* Grains past the one allocated last are not allocated yet. */
        *run = g == s->last_grain && GRAIN_BYTES - in < len
                   ? GRAIN_BYTES - in
                   : len;
        return G_OK;
    }
    for (; h <= (end - 1) / GRAIN_BYTES; h++) {
        if ((ret = gt_set(w, h, s->next_sector)) != G_OK)
            return ret;
        s->last_grain = h;
        s->last_sector = s->next_sector;
        s->next_sector += OUTPUT_VMDK_GRAIN_SECTORS;
    }
    *run = len;
    return G_OK;
}

static int vmdk_write(struct fmt_writer *w, uint64_t off, const void *buf,
                      uint64_t len)
{
    const uint8_t *p = buf;
    uint64_t at, n;
    int ret;

    while (len) {
        if ((ret = fmt_vmdk_writer_map(w, off, len, true, &at, &n)) != G_OK ||
            (ret = fmt_out_write(w, at, p, n)) != G_OK)
            return ret;
        off += n;
        p += n;
        len -= n;
    }
    return span_done(w, off);
}

/* [off, off + len) taken as written: the engine puts the bytes at the
 * file run this returns (a host copy). */
static int vmdk_place(struct fmt_writer *w, uint64_t off, uint64_t len,
                      uint64_t *file_off, uint64_t *n)
{
    int ret = fmt_vmdk_writer_map(w, off, len, true, file_off, n);
    return ret != G_OK ? ret : span_done(w, off + *n);
}

/* Zeros stay unallocated: the grains stay out of the tables. */
static int vmdk_zero(struct fmt_writer *w, uint64_t off, uint64_t len)
{
    return span_done(w, off + len);
}

/* Sector 0, writers.md 3.1. */
static void put_header(const struct vmdk_w *s, uint64_t vsize, uint8_t *h)
{
    memcpy(h, "KDMV", 4);
    put_le32(h + 4, HDR_VERSION);
    put_le32(h + 8, HDR_FLAGS);
    put_le64(h + 12, vsize / VMDK_SECTOR);
    put_le64(h + 20, OUTPUT_VMDK_GRAIN_SECTORS);
    put_le64(h + 28, OUTPUT_VMDK_DESC_SECTOR);
    put_le64(h + 36, OUTPUT_VMDK_DESC_SECTORS);
    put_le32(h + 44, OUTPUT_VMDK_GTES);
    put_le64(h + 48, s->l.rgd_offset);
    put_le64(h + 56, s->l.gd_offset);
    put_le64(h + 64, s->l.overhead);
    h[72] = 0; /* uncleanShutdown */
    /* Newline detection: a file mangled by a text-mode transfer shows. */
    memcpy(h + 73, "\n \r\n", 4);
    put_le16(h + 77, 0); /* compressAlgorithm: none */
}

/* The embedded descriptor, writers.md 3.3, into d (room for far more than
 * the longest name gives). The extent line carries the output's name as
 * qemu writes it: as given, no escaping (qemu ignores it on open). */
static void put_descriptor(const struct fmt_writer *w, char *d)
{
    const struct fmt_write_opts *o = w->opts;
    size_t n = rt_fmt(d, 256,
                      "# Disk DescriptorFile\n"
                      "version=1\n"
                      "CID=%x\n"
                      "parentCID=ffffffff\n"
                      "createType=\"monolithicSparse\"\n"
                      "\n"
                      "# Extent description\n"
                      "RW %llu SPARSE \"",
                      (unsigned)get_le32(o->entropy),
                      (unsigned long long)(w->vsize / VMDK_SECTOR));
    if (o->out_name_len)
        memcpy(d + n, o->out_name, o->out_name_len);
    n += o->out_name_len;
    rt_fmt(d + n, 512,
           "\"\n"
           "\n"
           "# The Disk Data Base\n"
           "#DDB\n"
           "\n"
           "ddb.virtualHWVersion = \"4\"\n"
           "ddb.geometry.cylinders = \"%llu\"\n"
           "ddb.geometry.heads = \"%u\"\n"
           "ddb.geometry.sectors = \"%u\"\n"
           "ddb.adapterType = \"ide\"\n"
           "ddb.toolsVersion = \"2147483647\"\n",
           (unsigned long long)(w->vsize /
                                (DDB_HEADS * DDB_SECTORS * VMDK_SECTOR)),
           DDB_HEADS, DDB_SECTORS);
}

/* The directory at `sector`: where its own copy of each table is. */
static int write_directory(struct fmt_writer *w, uint64_t sector)
{
    struct vmdk_w *s = w->priv;
    const uint64_t piece = HEAD_BYTES / 4;
    uint64_t j, i, n;
    int ret;

    for (j = 0; j < s->l.gts; j += n) {
        n = s->l.gts - j < piece ? s->l.gts - j : piece;
        for (i = 0; i < n; i++)
            put_le32(s->buf + 4 * i,
                     (uint32_t)(sector + s->l.gd_sectors + 4 * (j + i)));
        ret = fmt_out_write(w, sector * VMDK_SECTOR + 4 * j, s->buf, 4 * n);
        if (ret != G_OK)
            return ret;
    }
    return G_OK;
}

static int vmdk_finish(struct fmt_writer *w, uint64_t *file_size)
{
    struct vmdk_w *s = w->priv;
    int ret;

    if (s->gt_index != NONE && (ret = gt_flush(w)) != G_OK)
        return ret;
    memset(s->buf, 0, HEAD_BYTES);
    put_header(s, w->vsize, s->buf);
    put_descriptor(w, (char *)s->buf +
                          OUTPUT_VMDK_DESC_SECTOR * VMDK_SECTOR);
    if ((ret = fmt_out_write(w, 0, s->buf, HEAD_BYTES)) != G_OK ||
        (ret = write_directory(w, s->l.rgd_offset)) != G_OK ||
        (ret = write_directory(w, s->l.gd_offset)) != G_OK)
        return ret;
    *file_size = s->next_sector * VMDK_SECTOR;
    return G_OK;
}

int fmt_vmdk_writer_open(struct fmt_writer *w)
{
    const struct fmt_env *env = w->env;
    struct vmdk_w *s;

    w->name = VMDK_NAME;
    /* writers.md 3.4: qemu-img 7.2 takes a sparse extent of capacity 0
     * for a descriptor file and refuses it, and every other vmdk of size
     * 0 aborts it; it leaves such a file behind and fails. */
    if (w->vsize == 0)
        return g_fail(env->err, G_ENOTSUP,
                      "vmdk: refusing to write an empty image: no vmdk of "
                      "virtual size 0 can be read by qemu-img 7.2");
    if (w->vsize % VMDK_SECTOR || w->vsize > OUTPUT_VMDK_MAX_VSIZE)
        return g_fail(env->err, G_ERANGE,
                      "vmdk: virtual size %llu is not a multiple of 512 "
                      "up to %llu (engine bug)",
                      (unsigned long long)w->vsize,
                      (unsigned long long)OUTPUT_VMDK_MAX_VSIZE);
    if (!w->opts || !w->opts->entropy ||
        w->opts->out_name_len > CT_OUT_NAME_MAX ||
        (w->opts->out_name_len && !w->opts->out_name))
        return g_fail(env->err, G_EINVAL,
                      "vmdk: no entropy or a bad output name (engine bug)");
    if (!(s = fmt_alloc(env, sizeof *s, VMDK_NAME, "writer state")) ||
        !(s->gt = fmt_io_alloc(env, GT_BYTES, VMDK_NAME, "grain table")) ||
        !(s->buf = fmt_io_alloc(env, HEAD_BYTES, VMDK_NAME, "header")))
        return G_ENOMEM;
    s->l = output_vmdk_layout(w->vsize);
    s->next_sector = s->l.overhead;
    s->last_grain = NONE;
    s->gt_index = NONE;
    w->priv = s;
    w->write = vmdk_write;
    w->zero = vmdk_zero;
    w->finish = vmdk_finish;
    w->place = vmdk_place;
    return G_OK;
}
