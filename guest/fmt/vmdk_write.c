/*
 * vmdk output: a monolithicSparse or streamOptimized image laid out as
 * qemu-img 7.2 writes it (../shared/design/writers.md section 3,
 * docs/format-coverage.md). Sector 0 holds the sparse extent header,
 * sectors 1..20 the embedded descriptor; the redundant grain directory
 * follows at sector 21 with its grain tables, then the primary directory
 * with its own copies of the tables; grains are appended from overHead on
 * in the order they are first written. The sector numbers come from
 * output_vmdk_layout(), which the host's output bound uses too.
 * streamOptimized keeps that layout (qemu-img convert writes no grain
 * table markers and no footer) and stores each grain deflated behind a
 * marker (vmdk_grains.c).
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
#include "vmdk_write.h"
#include "../rt/rt.h"

#define GRAIN_BYTES VMDK_W_GRAIN
#define GT_BYTES (OUTPUT_VMDK_GTES * 4u)
#define GT_SPAN (GRAIN_BYTES * OUTPUT_VMDK_GTES)
/* Header and descriptor: written at once, then reused for directories. */
#define HEAD_BYTES                                                            \
    ((OUTPUT_VMDK_DESC_SECTOR + OUTPUT_VMDK_DESC_SECTORS) * VMDK_SECTOR)
#define NONE VMDK_W_NONE

/* writers.md 3.1: version 1; flags bit 0 (newline test valid) and bit 1
 * (redundant grain directory in use). streamOptimized, measured: version
 * 3, flags bit 16 (compressed grains) and bit 17 (markers) as well, and
 * compressAlgorithm 1 (deflate). */
#define HDR_VERSION 1u
#define HDR_FLAGS 3u
#define HDR_STREAM_VERSION 3u
#define HDR_STREAM_FLAGS 0x30003u
#define HDR_DEFLATE 1u
/* writers.md 3.3: qemu's fixed geometry and its CHS cylinder count; 255
 * heads for every adapter but ide (measured for each adapter_type). */
#define DDB_HEADS 16u
#define DDB_SCSI_HEADS 255u
#define DDB_SECTORS 63u

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

int vmdk_w_gt_set(struct fmt_writer *w, uint64_t g, uint64_t sector)
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
        if ((ret = vmdk_w_gt_set(w, h, s->next_sector)) != G_OK)
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
            (ret = fmt_out_write_data(w, at, p, n)) != G_OK)
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

/* Sector 0, writers.md 3.1; streamOptimized's version, flags and
 * compression as measured. gdOffset is the real one in both: qemu-img
 * convert lays the tables out before the grains, so nothing is at the
 * file's end for it to point at. */
static void put_header(const struct vmdk_w *s, uint64_t vsize, uint8_t *h)
{
    memcpy(h, "KDMV", 4);
    put_le32(h + 4, s->stream ? HDR_STREAM_VERSION : HDR_VERSION);
    put_le32(h + 8, s->stream ? HDR_STREAM_FLAGS : HDR_FLAGS);
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
    put_le16(h + 77, s->stream ? HDR_DEFLATE : 0); /* compressAlgorithm */
}

/* ddb.adapterType for each enum ct_vmdk_adapter (open checks the range). */
static const char *const adapter_names[] = {
    [CT_VMDK_IDE] = "ide",
    [CT_VMDK_BUSLOGIC] = "buslogic",
    [CT_VMDK_LSILOGIC] = "lsilogic",
    [CT_VMDK_LEGACY_ESX] = "legacyESX",
};

/* The embedded descriptor, writers.md 3.3, into d (room for far more than
 * the longest name gives). The extent line carries the output's name as
 * qemu writes it: as given, no escaping (qemu ignores it on open). */
static void put_descriptor(const struct fmt_writer *w, char *d)
{
    const struct fmt_write_opts *o = w->opts;
    const struct vmdk_w *s = w->priv;
    const uint32_t adapter = fmt_params(w)->adapter;
    const unsigned heads =
        adapter == CT_VMDK_IDE ? DDB_HEADS : DDB_SCSI_HEADS;
    size_t n = rt_fmt(d, 256,
                      "# Disk DescriptorFile\n"
                      "version=1\n"
                      "CID=%x\n"
                      "parentCID=ffffffff\n"
                      "createType=\"%s\"\n"
                      "\n"
                      "# Extent description\n"
                      "RW %llu SPARSE \"",
                      (unsigned)get_le32(o->entropy),
                      s->stream ? "streamOptimized" : "monolithicSparse",
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
           "ddb.adapterType = \"%s\"\n"
           "ddb.toolsVersion = \"2147483647\"\n",
           (unsigned long long)(w->vsize /
                                (heads * DDB_SECTORS * VMDK_SECTOR)),
           heads, DDB_SECTORS, adapter_names[adapter]);
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

    uint64_t end = s->next_sector;

    if ((s->gr && (ret = vmdk_grains_finish(w, &end)) != G_OK) ||
        (s->gt_index != NONE && (ret = gt_flush(w)) != G_OK))
        return ret;
    memset(s->buf, 0, HEAD_BYTES);
    put_header(s, w->vsize, s->buf);
    put_descriptor(w, (char *)s->buf +
                          OUTPUT_VMDK_DESC_SECTOR * VMDK_SECTOR);
    if ((ret = fmt_out_write(w, 0, s->buf, HEAD_BYTES)) != G_OK ||
        (ret = write_directory(w, s->l.rgd_offset)) != G_OK ||
        (ret = write_directory(w, s->l.gd_offset)) != G_OK)
        return ret;
    *file_size = end * VMDK_SECTOR;
    return G_OK;
}

/* The shapes this writer makes (convert -o subformat, adapter_type, -c);
 * anything else is refused by name rather than ignored. */
static int check_params(const struct fmt_writer *w)
{
    const struct ct_output_params *p = fmt_params(w);
    const char *what = NULL;
    uint64_t value = 0;

    if (p->subformat != CT_SUB_MONOLITHIC_SPARSE &&
        p->subformat != CT_SUB_STREAM_OPTIMIZED)
        what = "subformat", value = p->subformat;
    else if (p->adapter >= sizeof adapter_names / sizeof adapter_names[0])
        what = "adapter_type", value = p->adapter;
    else if (p->cluster_bits)
        what = "cluster_size", value = p->cluster_bits;
    else if (p->version)
        what = "compat", value = p->version;
    else if (p->block_size)
        what = "block_size", value = p->block_size;
    else if (p->flags & CT_OUT_FORCE_SIZE)
        what = "force_size", value = p->flags;
    else if (p->flags & ~CT_OUT_COMPRESS)
        what = "flags", value = p->flags;
    if (what)
        return g_fail(w->env->err, G_ENOTSUP,
                      "vmdk: output option %s (%llu) is not supported",
                      what, (unsigned long long)value);
    return G_OK;
}

int fmt_vmdk_writer_open(struct fmt_writer *w)
{
    const struct fmt_env *env = w->env;
    const struct ct_output_params *p = fmt_params(w);
    struct vmdk_w *s;
    int ret;

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
    if ((ret = check_params(w)) != G_OK)
        return ret;
    if (!(s = fmt_alloc(env, sizeof *s, VMDK_NAME, "writer state")) ||
        !(s->gt = fmt_io_alloc(env, GT_BYTES, VMDK_NAME, "grain table")) ||
        !(s->buf = fmt_io_alloc(env, HEAD_BYTES, VMDK_NAME, "header")))
        return G_ENOMEM;
    s->l = output_vmdk_layout(w->vsize);
    s->next_sector = s->l.overhead;
    s->last_grain = NONE;
    s->gt_index = NONE;
    s->gr = NULL;
    w->priv = s;
    w->write = vmdk_write;
    w->zero = vmdk_zero;
    w->finish = vmdk_finish;
    w->place = vmdk_place;
    s->stream = p->subformat == CT_SUB_STREAM_OPTIMIZED;
    /* -c on monolithicSparse is qemu-img's compressed convert: grains are
     * stored whole, plain (the extent cannot hold compressed ones), and
     * all-zero ones stay out whatever -S is. */
    if (s->stream || p->flags & CT_OUT_COMPRESS)
        return vmdk_grains_open(w);
    return G_OK;
}
