/*
 * qcow2 for `instar info`: the facts qemu-img info 7.2 prints (header
 * fields, the internal snapshot table, persistent bitmaps) and the safety
 * check of the metadata: every L1 and L2 entry is looked up as a read
 * would look it up, and no data cluster, compressed cluster or table may
 * lie inside the header cluster, the L1 or refcount tables, a refcount
 * block, an L2 table, the snapshot table or a snapshot's L1 table, or the
 * bitmap directory. Layouts: qemu's docs/interop/qcow2.txt.
 */
#include "info.h"
#include "qcow2.h"
#include "../rt/rt.h"

/* Caps on what qemu itself accepts (qcow2.txt and qemu's refusals). */
#define SNAPSHOTS_MAX 65536u
#define SNAPSHOT_EXTRA_MAX 1024u
#define BITMAPS_MAX 65535u
#define AUTOCLEAR_BITMAPS (1ull << 0)
/* Metadata tables the overlap check holds (16 bytes each). */
#define RANGES_MAX (1u << 18)
/* What the window reads at once: small, since the first touch of guest
 * memory is what info's time goes to; an entry larger than this (a
 * snapshot's 64 KiB names) gets a larger window. */
#define WIN_BYTES (64u * 1024u)

/* A sequential reader over a table of variable-length entries. */
struct win {
    struct qcow2 *q;
    struct fmt_info *s; /* its scratch buffer is the window */
    uint8_t *buf;
    uint64_t off, len; /* file range buf holds */
};

/* [pos, pos + n) of the file; past its end the file reads as zeros, as
 * it does to qemu (which then lists a snapshot of zeros). */
static int win_get(struct win *w, uint64_t pos, uint64_t n, const uint8_t **p)
{
    if (pos < w->off || pos + n > w->off + w->len) {
        uint64_t cap = n > WIN_BYTES ? n : WIN_BYTES, got = 0;
        w->len = 0;
        if (!(w->buf = fmt_info_scratch(w->s, cap)))
            return G_ENOMEM;
        int ret = pos < w->q->file_size
                      ? fmt_pread_partial(w->q->env, w->q->handle, pos,
                                          w->buf, cap, &got, "qcow2")
                      : G_OK;
        if (ret != G_OK)
            return ret;
        memset(w->buf + got, 0, (size_t)(cap - got));
        w->off = pos;
        w->len = cap;
    }
    *p = w->buf + (pos - w->off);
    return G_OK;
}

/* A table no read uses that lies (partly) past the end of the file: a
 * reason, the table read as zeros there. */
static int outside(struct qcow2 *q, struct fmt_info *s, const char *what,
                   uint64_t off, uint64_t len, bool *said)
{
    if (*said || (off <= q->file_size && len <= q->file_size - off))
        return G_OK;
    *said = true;
    return fmt_info_reasonf(s, CT_SAFETY_METADATA,
                            "qcow2: %s at offset %llu (%llu bytes) runs past "
                            "the end of the file (%llu bytes)",
                            what, (unsigned long long)off,
                            (unsigned long long)len,
                            (unsigned long long)q->file_size);
}

static int facts(struct qcow2 *q, struct fmt_info *s)
{
    const struct qcow2_facts *f = &q->facts;
    int ret = fmt_info_u64(s, CT_INFO_CLUSTER_SIZE, q->cluster_size);

    if (ret == G_OK)
        ret = fmt_info_bool(s, CT_INFO_DIRTY,
                            f->incompat & QCOW2_INCOMPAT_DIRTY);
    if (ret == G_OK && f->backing_name_len)
        ret = fmt_info_str(s, CT_INFO_BACKING_FILENAME, f->backing_name,
                           f->backing_name_len);
    if (ret == G_OK && f->backing_name_len && f->backing_fmt_len)
        ret = fmt_info_str(s, CT_INFO_BACKING_FORMAT, f->backing_fmt,
                           f->backing_fmt_len);
    if (ret == G_OK)
        ret = fmt_info_enum(s, CT_INFO_QCOW2_COMPAT, q->version);
    /* the reader refuses every compression type but deflate (zlib) */
    if (ret == G_OK)
        ret = fmt_info_enum(s, CT_INFO_QCOW2_COMPRESSION, 0);
    if (ret == G_OK)
        ret = fmt_info_u64(s, CT_INFO_QCOW2_REFCOUNT_BITS,
                           1ull << f->refcount_order);
    if (ret != G_OK || q->version < 3)
        return ret; /* version 2 has no feature bits */
    if ((ret = fmt_info_bool(s, CT_INFO_QCOW2_LAZY_REFCOUNTS,
                             f->compat & QCOW2_COMPAT_LAZY_REFCOUNTS)) ||
        (ret = fmt_info_bool(s, CT_INFO_QCOW2_CORRUPT,
                             f->incompat & QCOW2_INCOMPAT_CORRUPT)) ||
        (ret = fmt_info_bool(s, CT_INFO_QCOW2_EXTENDED_L2, q->ext_l2)))
        return ret;
    if (!(f->incompat & QCOW2_INCOMPAT_DATA_FILE))
        return G_OK;
    if ((ret = fmt_info_str(s, CT_INFO_QCOW2_DATA_FILE, f->data_name,
                            f->data_name_len)) != G_OK)
        return ret;
    return fmt_info_bool(s, CT_INFO_QCOW2_DATA_FILE_RAW,
                         f->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW);
}

/* One snapshot table entry at pos: its records, its L1 table as metadata,
 * and where the next entry starts. */
static int snapshot(struct win *w, struct fmt_info *s, struct fmt_ranges *m,
                    uint64_t *pos, bool *said)
{
    struct qcow2 *q = w->q;
    const uint8_t *h;
    int ret = win_get(w, *pos, 40, &h);
    if (ret != G_OK)
        return ret;
    uint64_t l1_off = get_be64(h), vm_clock = get_be64(h + 24);
    uint32_t l1_size = get_be32(h + 8), id_len = get_be16(h + 12);
    uint32_t name_len = get_be16(h + 14), sec = get_be32(h + 16);
    uint32_t nsec = get_be32(h + 20), vm_state = get_be32(h + 32);
    uint32_t extra = get_be32(h + 36);
    uint64_t vm_state_large = vm_state, icount = UINT64_MAX;
    bool has_icount = false;

    if (extra > SNAPSHOT_EXTRA_MAX)
        return g_fail(q->env->err, G_ECORRUPT,
                      "qcow2: snapshot at offset %llu: extra_data_size %u "
                      "exceeds %u",
                      (unsigned long long)*pos, (unsigned)extra,
                      SNAPSHOT_EXTRA_MAX);
    if ((ret = win_get(w, *pos, 40 + extra, &h)))
        return ret;
    if (extra >= 8)
        vm_state_large = get_be64(h + 40);
    if (extra >= 24) {
        icount = get_be64(h + 56);
        has_icount = icount != UINT64_MAX; /* -1: not recorded */
    }
    fmt_ranges_add(m, l1_off, (uint64_t)l1_size * 8, "snapshot L1 table");
    if ((ret = outside(q, s, "snapshot L1 table", l1_off,
                       (uint64_t)l1_size * 8, said)) != G_OK)
        return ret;
    uint64_t at = *pos + 40 + extra;
    const uint8_t *id, *name;
    if ((ret = win_get(w, at, id_len + name_len, &id)))
        return ret;
    name = id + id_len;
    if ((ret = fmt_info_begin(s, CT_INFO_SNAPSHOT, 0)) ||
        (ret = fmt_info_str(s, CT_INFO_SNAP_ID, (const char *)id, id_len)) ||
        (ret = fmt_info_str(s, CT_INFO_SNAP_NAME, (const char *)name,
                            name_len)) ||
        (ret = fmt_info_u64(s, CT_INFO_SNAP_VM_STATE_SIZE, vm_state_large)) ||
        (ret = fmt_info_u64(s, CT_INFO_SNAP_DATE_SEC, sec)) ||
        (ret = fmt_info_u64(s, CT_INFO_SNAP_DATE_NSEC, nsec)) ||
        (ret = fmt_info_u64(s, CT_INFO_SNAP_VM_CLOCK_NSEC, vm_clock)) ||
        (has_icount &&
         (ret = fmt_info_u64(s, CT_INFO_SNAP_ICOUNT, icount))) ||
        (ret = fmt_info_end(s, CT_INFO_SNAPSHOT)))
        return ret;
    *pos = (at + id_len + name_len + 7) & ~7ull;
    return G_OK;
}

static int snapshots(struct win *w, struct fmt_info *s, struct fmt_ranges *m)
{
    struct qcow2 *q = w->q;
    const struct qcow2_facts *f = &q->facts;
    uint64_t pos = f->snapshots_offset;
    int ret;

    if (f->nb_snapshots == 0)
        return G_OK;
    if (f->nb_snapshots > SNAPSHOTS_MAX)
        return g_fail(q->env->err, G_ECORRUPT,
                      "qcow2: nb_snapshots %u exceeds %u",
                      (unsigned)f->nb_snapshots, SNAPSHOTS_MAX);
    if (pos & (q->cluster_size - 1))
        return g_fail(q->env->err, G_ECORRUPT,
                      "qcow2: snapshots_offset %llu is not cluster-aligned",
                      (unsigned long long)pos);
    bool said = false;
    for (uint32_t i = 0; i < f->nb_snapshots; i++)
        if ((ret = snapshot(w, s, m, &pos, &said)) != G_OK)
            return ret;
    fmt_ranges_add(m, f->snapshots_offset, pos - f->snapshots_offset,
                   "snapshot table");
    return outside(q, s, "snapshot table", f->snapshots_offset,
                   pos - f->snapshots_offset, &said);
}

/* Persistent dirty bitmaps: qemu lists them only while the autoclear bit
 * says the extension is valid. */
static int bitmaps(struct win *w, struct fmt_info *s, struct fmt_ranges *m)
{
    struct qcow2 *q = w->q;
    const struct qcow2_facts *f = &q->facts;
    int ret;

    if (!f->bitmaps || !(f->autoclear & AUTOCLEAR_BITMAPS))
        return G_OK;
    if (f->bitmaps_len < 24)
        return g_fail(q->env->err, G_ECORRUPT,
                      "qcow2: bitmaps extension length %u is too short",
                      (unsigned)f->bitmaps_len);
    uint32_t nb = get_be32(f->bitmaps);
    uint64_t size = get_be64(f->bitmaps + 8), pos = get_be64(f->bitmaps + 16);
    if (nb > BITMAPS_MAX)
        return g_fail(q->env->err, G_ECORRUPT,
                      "qcow2: nb_bitmaps %u exceeds %u", (unsigned)nb,
                      BITMAPS_MAX);
    fmt_ranges_add(m, pos, size, "bitmap directory");
    for (uint32_t i = 0; i < nb; i++) {
        const uint8_t *e;
        if ((ret = win_get(w, pos, 24, &e)))
            return ret;
        uint32_t flags = get_be32(e + 12), name_len = get_be16(e + 18);
        uint32_t extra = get_be32(e + 20), bits = e[17];
        /* qemu refuses the image unless every entry is a dirty-tracking
         * bitmap (type 1) of a granularity of 2^9 .. 2^31 bytes with a
         * name of 1 .. 1023 bytes and no reserved flag (qcow2.txt,
         * "Bitmap directory"; qemu 7.2 measured: "doesn't satisfy the
         * constraints"); a directory past the end of the file reads as
         * zeros and fails the same way */
        if (e[16] != 1 || bits < 9 || bits > 31 || name_len == 0 ||
            name_len > 1023 || (flags & ~7u) || extra > SNAPSHOT_EXTRA_MAX)
            return g_fail(q->env->err, G_ECORRUPT,
                          "qcow2: bitmap directory entry %u at offset %llu "
                          "does not satisfy the constraints (type %u, "
                          "granularity_bits %u, name_size %u, flags 0x%x)",
                          (unsigned)i, (unsigned long long)pos,
                          (unsigned)e[16], (unsigned)bits,
                          (unsigned)name_len, (unsigned)flags);
        if ((ret = win_get(w, pos, 24 + extra + name_len, &e)))
            return ret;
        if ((ret = fmt_info_begin(s, CT_INFO_BITMAP, 0)) ||
            (ret = fmt_info_u64(s, CT_INFO_BITMAP_FLAGS, flags & 3)) ||
            (ret = fmt_info_str(s, CT_INFO_BITMAP_NAME,
                                (const char *)e + 24 + extra, name_len)) ||
            (ret = fmt_info_u64(s, CT_INFO_BITMAP_GRANULARITY, 1ull << bits)) ||
            (ret = fmt_info_end(s, CT_INFO_BITMAP)))
            return ret;
        pos = (pos + 24 + extra + name_len + 7) & ~7ull;
    }
    return G_OK;
}

/* Refcount blocks, one cluster each, from the refcount table. A read
 * never uses them: one outside the file is a reason, not an error. */
static int refblocks(struct win *w, struct fmt_info *s, struct fmt_ranges *m,
                     bool *bad)
{
    struct qcow2 *q = w->q;
    const struct qcow2_facts *f = &q->facts;
    uint64_t n = (uint64_t)f->reftable_clusters * q->cluster_size / 8;
    int ret;

    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *e;
        /* read in whole windows; a table past the end reads as zeros in
         * qemu, as it does in the reader */
        uint64_t pos = f->reftable_offset + i * 8;
        if (pos + 8 > q->file_size)
            break;
        if ((ret = win_get(w, pos, 8, &e)) != G_OK)
            return ret;
        uint64_t off = get_be64(e) & ~511ull;
        if (off == 0)
            continue;
        if (off & (q->cluster_size - 1) || off >= q->file_size) {
            *bad = true;
            return fmt_info_reasonf(
                s, CT_SAFETY_METADATA,
                "qcow2: refcount table entry %llu: refcount block offset "
                "%llu is %s",
                (unsigned long long)i, (unsigned long long)off,
                off >= q->file_size ? "past the end of the file"
                                    : "not cluster-aligned");
        }
        fmt_ranges_add(m, off, q->cluster_size, "refcount block");
    }
    return G_OK;
}

/* The active L2 tables, checked as a read checks them. */
static int l2_tables(struct qcow2 *q, struct fmt_ranges *m)
{
    for (uint64_t i = 0; i < q->l1_entries; i++) {
        uint64_t off;
        int ret = qcow2_l2_offset(q, i, &off);
        if (ret != G_OK)
            return ret;
        if (off)
            fmt_ranges_add(m, off, q->cluster_size, "L2 table");
    }
    return G_OK;
}

/* Every run of the virtual disk: looked up as a read would (a failure is
 * dd's), and, unless the tables are already known to be bad (m NULL), its
 * data clear of the metadata (else a reason). */
static int clusters(struct qcow2 *q, struct fmt_info *s,
                    const struct fmt_ranges *m)
{
    for (uint64_t off = 0; off < q->vsize;) {
        struct qcow2_run run;
        int ret = qcow2_scan_run(q, off, &run);
        if (ret != G_OK)
            return ret;
        uint64_t len = run.compressed ? run.csize : run.len;
        const struct fmt_range *hit =
            m && (run.data || run.compressed)
                ? fmt_ranges_find(m, run.host, len)
                : NULL;
        if (hit && (ret = fmt_info_reasonf(
                        s, CT_SAFETY_METADATA,
                        "qcow2: %s cluster of guest offset %llu at offset "
                        "%llu lies inside the %s at offset %llu",
                        run.compressed ? "compressed" : "data",
                        (unsigned long long)off,
                        (unsigned long long)run.host, hit->what,
                        (unsigned long long)hit->off)) != G_OK)
            return ret;
        if (hit)
            m = NULL; /* one reason is enough; the reads go on */
        off += run.len;
    }
    return G_OK;
}

/* The read path's checks first (their failures are dd's, and win over
 * any reason), then what no read checks. */
static int check_metadata(struct qcow2 *q, struct win *w, struct fmt_info *s,
                          struct fmt_ranges *m)
{
    const struct qcow2_facts *f = &q->facts;
    bool bad = false;
    int ret;

    if ((ret = l2_tables(q, m)) != G_OK)
        return ret;
    fmt_ranges_add(m, 0, q->cluster_size, "header cluster");
    fmt_ranges_add(m, q->l1_offset, (uint64_t)f->l1_size * 8, "L1 table");
    fmt_ranges_add(m, f->reftable_offset,
                   (uint64_t)f->reftable_clusters * q->cluster_size,
                   "refcount table");
    /* the fixed tables first: a refcount table inside the header would
     * otherwise be read as one */
    if ((ret = fmt_ranges_check(m, s, "qcow2", &bad)) != G_OK ||
        (!bad && (ret = refblocks(w, s, m, &bad)) != G_OK) ||
        (!bad && (ret = fmt_ranges_check(m, s, "qcow2", &bad)) != G_OK))
        return ret;
    return clusters(q, s, bad ? NULL : m);
}

int qcow2_info(struct fmt_reader *r, struct fmt_info *s)
{
    struct qcow2 *q = r->priv;
    struct win w = {.q = q, .s = s};
    struct fmt_ranges m;
    int ret;

    if ((ret = fmt_ranges_init(&m, s, RANGES_MAX)) != G_OK ||
        (ret = facts(q, s)) != G_OK || (ret = snapshots(&w, s, &m)) != G_OK ||
        (ret = bitmaps(&w, s, &m)) != G_OK)
        return ret;
    /* Data clusters in an external data file are never read by info (it
     * is not opened): the data-file rule already says the image is not
     * safe, and its L2 entries mean nothing without the file. */
    if (q->facts.incompat & QCOW2_INCOMPAT_DATA_FILE)
        return G_OK;
    return check_metadata(q, &w, s, &m);
}
