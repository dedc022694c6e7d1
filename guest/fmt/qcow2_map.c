/*
 * qcow2 reader, part 2: guest offset -> L1 -> L2 -> cluster, and the read
 * path. A read is cut into runs of one kind (data at consecutive host
 * offsets, zeros, backing file, one compressed cluster); each data run is
 * one host read straight into the caller's buffer.
 *
 * Entries are checked when used: an L2 table or data cluster that is not
 * cluster-aligned, starts past the end of its file or sits in the header
 * cluster is refused with its offset (qemu reads some of these as zeros).
 */
#include "qcow2.h"
#include "../rt/rt.h"

/* Per image in the chain (I/O area); everything that grows with the
 * cluster size is in the chain's shared struct qcow2_chain. */
#define L1_WINDOW_ENTRIES 8192u   /* 64 KiB of L1 per host read */

enum run_kind { RUN_DATA, RUN_ZERO, RUN_BACKING, RUN_COMPRESSED };

/* A piece of the virtual disk starting at a guest offset. */
struct piece {
    enum run_kind kind;
    uint64_t len;   /* bytes from the guest offset, within one cluster or
                       one unallocated L2 span */
    uint64_t host;  /* RUN_DATA: file offset of the first byte;
                       RUN_COMPRESSED: offset of the compressed data */
    uint64_t csize; /* RUN_COMPRESSED: bytes of compressed data */
};

/* The chain's shared state: env->chain's, made by the first qcow2 reader
 * to finish opening (the deepest: backing files open first); without
 * env->chain, each reader has its own. */
static struct qcow2_chain *chain_of(const struct fmt_env *env)
{
    if (env->chain && env->chain->qcow2)
        return env->chain->qcow2;
    struct qcow2_chain *ch = fmt_alloc(env, sizeof *ch, "qcow2",
                                       "chain state");
    if (!ch)
        return NULL;
    ch->env = env;
    zbatch_init(&ch->zb, env, "qcow2", "compressed cluster", FMT_INFLATE_RAW,
                true, true);
    if (env->chain)
        env->chain->qcow2 = ch;
    return ch;
}

int qcow2_map_init(struct qcow2 *q)
{
    const struct fmt_env *env = q->env;

    if (!(q->ch = chain_of(env)))
        return G_ENOMEM;
    /* Buffers are sized at first use, when the whole chain is open. */
    if (q->ch->cs_max < q->cluster_size)
        q->ch->cs_max = q->cluster_size;
    if (q->l1_entries == 0)
        return G_OK; /* empty disk: nothing is ever looked up */
    q->l1_win_cap = q->l1_entries < L1_WINDOW_ENTRIES ? q->l1_entries
                                                      : L1_WINDOW_ENTRIES;
    q->l1_win = fmt_io_alloc(env, q->l1_win_cap * 8, "qcow2", "L1 table");
    if (!q->l1_win)
        return G_ENOMEM;
    return G_OK;
}

static int l1_entry(struct qcow2 *q, uint64_t idx, uint64_t *e)
{
    if (idx < q->l1_win_first || idx >= q->l1_win_first + q->l1_win_count) {
        uint64_t first = idx - idx % q->l1_win_cap;
        uint64_t count = q->l1_entries - first < q->l1_win_cap
                             ? q->l1_entries - first
                             : q->l1_win_cap;
        q->l1_win_count = 0;
        int ret = fmt_pread(q->env, q->handle, q->l1_offset + first * 8,
                            q->l1_win, count * 8, "qcow2", "L1 table");
        if (ret != G_OK)
            return ret;
        q->l1_win_first = first;
        q->l1_win_count = count;
    }
    *e = get_be64(q->l1_win + (idx - q->l1_win_first) * 8);
    return G_OK;
}

/* An image's L2 window: its whole table, or QCOW2_L2_WINDOW of it. */
static uint64_t l2_window_bytes(uint64_t cluster_size)
{
    return cluster_size < QCOW2_L2_WINDOW ? cluster_size : QCOW2_L2_WINDOW;
}

/* The chain's L2 cache, set up at the first lookup of any image, when
 * the whole chain is open; again (emptied) only for an image opened later
 * with larger windows. */
static int l2_setup(struct qcow2_chain *ch, uint64_t wlen)
{
    const struct fmt_env *env = ch->env;

    if (ch->l2 && ch->l2_slot_bytes >= wlen)
        return G_OK;
    uint64_t bytes = l2_window_bytes(ch->cs_max);
    if (bytes < wlen)
        bytes = wlen;
    struct qcow2_l2_slot *s = fmt_alloc(env, QCOW2_L2_SLOTS * sizeof *s,
                                        "qcow2", "L2 cache");
    if (!s)
        return G_ENOMEM;
    for (uint32_t i = 0; i < QCOW2_L2_SLOTS; i++)
        if (!(s[i].p = fmt_io_alloc(env, bytes, "qcow2", "L2 table")))
            return G_ENOMEM;
    ch->l2 = s;
    ch->l2_slot_bytes = bytes;
    return G_OK;
}

/* The window [off, off + len) of an L2 table of q, from the cache or
 * read into the least recently used slot. */
static int l2_window(struct qcow2 *q, uint64_t off, uint64_t len,
                     const uint8_t **w)
{
    struct qcow2_chain *ch = q->ch;
    struct qcow2_l2_slot *victim;
    int ret;

    if ((ret = l2_setup(ch, len)) != G_OK)
        return ret;
    victim = &ch->l2[0];
    for (uint32_t i = 0; i < QCOW2_L2_SLOTS; i++) {
        struct qcow2_l2_slot *s = &ch->l2[i];
        if (s->off == off && s->handle == q->handle) {
            s->used = ++ch->clock;
            *w = s->p;
            return G_OK;
        }
        if (s->used < victim->used)
            victim = s;
    }
    victim->off = 0; /* invalid until the read succeeds */
    ret = fmt_pread(q->env, q->handle, off, victim->p, len, "qcow2",
                    "L2 table");
    if (ret != G_OK)
        return ret;
    victim->handle = q->handle;
    victim->off = off;
    victim->used = ++ch->clock;
    *w = victim->p;
    return G_OK;
}

/* The file offset of the L2 table of L1 index idx (0: unallocated),
 * cluster-aligned and inside the file. */
static int l2_table(struct qcow2 *q, uint64_t idx, uint64_t *off)
{
    const struct fmt_env *env = q->env;
    uint64_t e;
    int ret;

    if ((ret = l1_entry(q, idx, &e)) != G_OK)
        return ret;
    *off = e & QCOW2_OFFSET_MASK;
    if (*off == 0)
        return G_OK;
    if (*off & (q->cluster_size - 1))
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: L1 entry %llu: L2 table offset %llu is not "
                      "cluster-aligned",
                      (unsigned long long)idx, (unsigned long long)*off);
    if (*off > q->file_size || q->file_size - *off < q->cluster_size)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: L1 entry %llu: L2 table offset %llu is past "
                      "the end of the file (%llu bytes)",
                      (unsigned long long)idx, (unsigned long long)*off,
                      (unsigned long long)q->file_size);
    return G_OK;
}

/* The L2 entry l2i of the table for L1 index idx (*e, and *bitmap with
 * extended L2 entries); *mapped = false: the table is unallocated. */
static int l2_entry(struct qcow2 *q, uint64_t idx, uint64_t l2i,
                    bool *mapped, uint64_t *e, uint64_t *bitmap)
{
    uint64_t off;
    int ret;

    *mapped = false;
    if ((ret = l2_table(q, idx, &off)) != G_OK || off == 0)
        return ret;
    /* The window holding entry l2i; windows are aligned to their size. */
    uint64_t wlen = l2_window_bytes(q->cluster_size);
    uint64_t at = l2i * q->entry_bytes, wstart = at - at % wlen;
    const uint8_t *w;
    if ((ret = l2_window(q, off + wstart, wlen, &w)) != G_OK)
        return ret;
    *mapped = true;
    *e = get_be64(w + (at - wstart));
    if (q->ext_l2)
        *bitmap = get_be64(w + (at - wstart) + 8);
    return G_OK;
}

/* qemu checks the cluster offset of every entry that has one, whether or
 * not the read uses it (zero clusters, unallocated subclusters). */
static int check_aligned(struct qcow2 *q, uint64_t guest, uint64_t host)
{
    if (host & (q->cluster_size - 1))
        return g_fail(q->env->err, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset %llu: cluster offset "
                      "%llu is not cluster-aligned",
                      (unsigned long long)guest, (unsigned long long)host);
    return G_OK;
}

/* Where an allocated cluster's data is: aligned, inside its file, and in
 * a data file at the guest's own offset (spec: "must match"). */
static int check_data(struct qcow2 *q, uint64_t guest, uint64_t host)
{
    const struct fmt_env *env = q->env;
    int ret;

    if ((ret = check_aligned(q, guest, host)) != G_OK)
        return ret;
    if (q->has_data_file) {
        if (host != guest)
            return g_fail(env->err, G_ECORRUPT,
                          "qcow2: L2 entry for guest offset %llu: data file "
                          "offset %llu differs from the guest offset",
                          (unsigned long long)guest,
                          (unsigned long long)host);
        if (host >= q->data_size)
            return g_fail(env->err, G_ECORRUPT,
                          "qcow2: L2 entry for guest offset %llu: cluster "
                          "offset %llu is past the end of the data file "
                          "(%llu bytes)",
                          (unsigned long long)guest, (unsigned long long)host,
                          (unsigned long long)q->data_size);
        return G_OK;
    }
    if (host >= q->file_size)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset %llu: cluster offset "
                      "%llu is past the end of the file (%llu bytes)",
                      (unsigned long long)guest, (unsigned long long)host,
                      (unsigned long long)q->file_size);
    return G_OK;
}

static int compressed(struct qcow2 *q, uint64_t guest, uint64_t e,
                      struct piece *p)
{
    const struct fmt_env *env = q->env;
    uint32_t x = 62 - (q->cluster_bits - 8); /* bits of the offset */
    uint64_t host = e & ((1ull << x) - 1);
    uint64_t nsec = (e >> x) & ((1ull << (q->cluster_bits - 8)) - 1);

    if (q->has_data_file)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset %llu: compressed "
                      "cluster in an image with an external data file",
                      (unsigned long long)guest);
    if (host < q->cluster_size || host >= q->file_size)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset %llu: compressed "
                      "cluster offset %llu is %s",
                      (unsigned long long)guest, (unsigned long long)host,
                      host < q->cluster_size ? "in the header cluster"
                                             : "past the end of the file");
    p->kind = RUN_COMPRESSED;
    p->host = host;
    /* (nsec + 1) sectors from host's sector: at most 2 * cluster_size. */
    p->csize = (nsec + 1) * 512 - (host & 511);
    return G_OK;
}

/* Extended L2: the run of subclusters of one kind that holds `in`. */
static int subclusters(struct qcow2 *q, uint64_t guest, uint64_t host,
                       bool allocated, uint64_t bitmap, uint64_t in,
                       struct piece *p)
{
    uint32_t alloc = (uint32_t)bitmap, zero = (uint32_t)(bitmap >> 32);
    int ret;

    if (!allocated && alloc)
        return g_fail(q->env->err, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset %llu: subcluster "
                      "allocation bitmap 0x%x without a cluster offset",
                      (unsigned long long)guest, (unsigned)alloc);
    if (alloc & zero)
        return g_fail(q->env->err, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset %llu: subclusters "
                      "0x%x are both allocated and zero",
                      (unsigned long long)guest, (unsigned)(alloc & zero));
    /* An offset no subcluster uses must still be aligned (qemu: "Cluster
     * allocation offset ... unaligned"); an aligned one past EOF is read
     * as unallocated by qemu too. */
    if (allocated && (ret = check_aligned(q, guest, host)) != G_OK)
        return ret;
    if (alloc && (ret = check_data(q, guest, host)) != G_OK)
        return ret;
    uint32_t sc = (uint32_t)(in / q->sc_size), end = sc + 1;
#define SC_KIND(i)                                                            \
    ((alloc >> (i) & 1) ? RUN_DATA : (zero >> (i) & 1) ? RUN_ZERO : RUN_BACKING)
    p->kind = SC_KIND(sc);
    while (end < 32 && SC_KIND(end) == p->kind)
        end++;
#undef SC_KIND
    p->len = end * q->sc_size - in;
    p->host = host + in;
    return G_OK;
}

/* Describes the virtual disk from guest offset `off` (< vsize). */
static int lookup(struct qcow2 *q, uint64_t off, struct piece *p)
{
    const struct fmt_env *env = q->env;
    uint64_t c = off >> q->cluster_bits;
    uint64_t in = off & (q->cluster_size - 1);
    uint64_t guest = off - in;
    uint64_t l2i = c & ((1ull << q->l2_bits) - 1);
    uint64_t e, bitmap = 0;
    bool mapped;
    int ret;

    if ((ret = l2_entry(q, c >> q->l2_bits, l2i, &mapped, &e, &bitmap)) !=
        G_OK)
        return ret;
    if (!mapped) { /* the whole span of this L1 entry is unallocated */
        p->kind = RUN_BACKING;
        p->len = (((uint64_t)1 << q->l2_bits) - l2i) * q->cluster_size - in;
        return G_OK;
    }
    p->len = q->cluster_size - in;
    if (e & QCOW2_FLAG_COMPRESSED)
        return compressed(q, guest, e, p); /* subcluster bitmap unused */
    uint64_t host = e & QCOW2_OFFSET_MASK;
    bool allocated = host != 0 || (q->has_data_file && (e & QCOW2_FLAG_COPIED));
    if (!allocated && (e & QCOW2_FLAG_COPIED))
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: L2 entry for guest offset %llu points into the "
                      "header cluster (offset 0)",
                      (unsigned long long)guest);
    if (q->ext_l2)
        return subclusters(q, guest, host, allocated, bitmap, in, p);
    if (e & QCOW2_FLAG_ZERO) {
        if (q->version == 2)
            return g_fail(env->err, G_ECORRUPT,
                          "qcow2: L2 entry for guest offset %llu has the "
                          "zero flag in a version 2 image",
                          (unsigned long long)guest);
        if ((ret = check_aligned(q, guest, host)) != G_OK)
            return ret;
        p->kind = RUN_ZERO;
        return G_OK;
    }
    if (!allocated) {
        p->kind = RUN_BACKING;
        return G_OK;
    }
    if ((ret = check_data(q, guest, host)) != G_OK)
        return ret;
    p->kind = RUN_DATA;
    p->host = host + in;
    return G_OK;
}

static int read_backing(struct qcow2 *q, uint64_t off, uint8_t *buf,
                        uint64_t n)
{
    struct fmt_reader *b = q->backing;
    uint64_t m = 0;

    /* A shorter backing file reads as zeros past its end. */
    if (b && off < b->vsize) {
        m = b->vsize - off < n ? b->vsize - off : n;
        int ret = b->read(b, off, buf, m);
        if (ret != G_OK)
            return ret;
    }
    if (m < n)
        memset(buf + m, 0, (size_t)(n - m));
    return G_OK;
}

static int read_data(struct qcow2 *q, uint64_t host, uint8_t *buf,
                     uint64_t n)
{
    uint32_t h = q->has_data_file ? q->data_handle : q->handle;
    uint64_t got = 0;
    int ret = fmt_pread_partial(q->env, h, host, buf, n, &got, "qcow2");
    if (ret != G_OK)
        return ret;
    /* Only the last cluster of a run can cross EOF (each cluster starts
     * inside the file); its tail reads as zeros, as in qemu. */
    if (got < n)
        memset(buf + got, 0, (size_t)(n - got));
    return G_OK;
}

/* The chain's batcher, set up at the first compressed cluster for the
 * largest cluster of the chain: compressed data is at most two clusters
 * (the spec's bound on its sector count). */
static int zsetup(struct qcow2_chain *ch)
{
    return zbatch_setup(&ch->zb, ch->cs_max, 2 * ch->cs_max);
}

/* The compressed bytes of p from the batcher's window; the last sectors
 * may lie past EOF (they read as zeros, as in qemu). */
struct zfetch {
    struct qcow2 *q;
    const struct piece *p;
};

static int zfetch(void *ctx, const uint8_t **src, uint64_t *csize)
{
    const struct zfetch *f = ctx;
    uint64_t got;
    *csize = f->p->csize;
    return zbatch_bytes(&f->q->ch->zb, f->q->handle, f->p->host, f->p->csize,
                        src, &got);
}

/* Copies [in, in + n) of the cluster p into dst: whole clusters are
 * queued for the vCPUs, parts are inflated at once into the batcher's
 * part buffer (with whatever was queued before). */
static int read_compressed(struct qcow2 *q, const struct piece *p,
                           uint64_t in, uint8_t *dst, uint64_t n)
{
    struct zbatch *zb = &q->ch->zb;
    struct zfetch f = {q, p};
    const uint8_t *src;
    uint64_t csize;
    int ret;

    if ((ret = zsetup(q->ch)) != G_OK)
        return ret;
    if (in == 0 && n == q->cluster_size) {
        if ((ret = zfetch(&f, &src, &csize)) != G_OK)
            return ret;
        return zbatch_queue(zb, src, csize, dst, q->cluster_size,
                            q->cluster_size, p->host);
    }
    ret = zbatch_part(zb, q->handle, p->host, q->cluster_size,
                      q->cluster_size, zfetch, &f, &src);
    if (ret == G_OK)
        memcpy(dst, src + in, (size_t)n);
    return ret;
}

static bool continues(const struct piece *a, uint64_t n, const struct piece *b)
{
    if (a->kind != b->kind || a->kind == RUN_COMPRESSED)
        return false;
    return a->kind != RUN_DATA || b->host == a->host + n;
}

int qcow2_read(struct fmt_reader *r, uint64_t off, void *buf, uint64_t len)
{
    struct qcow2 *q = r->priv;
    uint8_t *out = buf;
    struct piece p, next;
    bool have_next = false;
    int ret;

    if (off >= q->vsize) {
        memset(out, 0, (size_t)len);
        return G_OK;
    }
    if (len > q->vsize - off) {
        memset(out + (q->vsize - off), 0, (size_t)(len - (q->vsize - off)));
        len = q->vsize - off;
    }
    for (uint64_t done = 0; done < len;) {
        if (have_next)
            p = next;
        else if ((ret = lookup(q, off + done, &p)) != G_OK)
            return ret;
        have_next = false;
        uint64_t n = p.len < len - done ? p.len : len - done;
        /* Grow the run while the next piece continues it. */
        while (done + n < len && p.kind != RUN_COMPRESSED) {
            if ((ret = lookup(q, off + done + n, &next)) != G_OK)
                return ret;
            if (!continues(&p, n, &next)) {
                have_next = true;
                break;
            }
            n += next.len < len - done - n ? next.len : len - done - n;
        }
        switch (p.kind) {
        case RUN_DATA:
            ret = read_data(q, p.host, out + done, n);
            break;
        case RUN_ZERO:
            memset(out + done, 0, (size_t)n);
            ret = G_OK;
            break;
        case RUN_BACKING:
            ret = read_backing(q, off + done, out + done, n);
            break;
        default:
            ret = read_compressed(q, &p,
                                  (off + done) & (q->cluster_size - 1),
                                  out + done, n);
            break;
        }
        if (ret != G_OK) {
            /* The caller's buffer is not ours any more; the error ends the
             * reads of the images this one backs too. */
            zbatch_drop(&q->ch->zb);
            return ret;
        }
        done += n;
    }
    return q->ch->zb.njobs ? zbatch_flush(&q->ch->zb) : G_OK;
}

/* Block status: runs of clusters stored as they are (plain, in the image
 * or its data file), zeros, the backing file's, or compressed (data). */
int qcow2_extent(struct fmt_reader *r, uint64_t off, uint64_t len,
                 struct fmt_extent *e)
{
    struct qcow2 *q = r->priv;
    struct piece p, next;
    int ret;

    if (off >= q->vsize) {
        *e = (struct fmt_extent){FMT_EXTENT_ZERO, 0, 0, len};
        return G_OK;
    }
    if (len > q->vsize - off)
        len = q->vsize - off;
    if ((ret = lookup(q, off, &p)) != G_OK)
        return ret;
    uint64_t n = p.len < len ? p.len : len;
    while (n < len && p.kind != RUN_COMPRESSED) {
        if ((ret = lookup(q, off + n, &next)) != G_OK)
            return ret;
        if (!continues(&p, n, &next))
            break;
        n += next.len < len - n ? next.len : len - n;
    }
    switch (p.kind) {
    case RUN_DATA: {
        uint32_t h = q->has_data_file ? q->data_handle : q->handle;
        uint64_t fsize = q->has_data_file ? q->data_size : q->file_size;
        /* A cluster may run past EOF (its tail reads as zeros): plain up
         * to the end of the file, zeros from there. */
        if (p.host >= fsize)
            *e = (struct fmt_extent){FMT_EXTENT_ZERO, 0, 0, n};
        else
            *e = (struct fmt_extent){FMT_EXTENT_PLAIN, h, p.host,
                                     fsize - p.host < n ? fsize - p.host : n};
        return G_OK;
    }
    case RUN_ZERO:
        *e = (struct fmt_extent){FMT_EXTENT_ZERO, 0, 0, n};
        return G_OK;
    case RUN_BACKING:
        return fmt_extent_of(q->backing, off, n, e);
    default:
        *e = (struct fmt_extent){FMT_EXTENT_DATA, 0, 0, n};
        return G_OK;
    }
}

int qcow2_l2_offset(struct qcow2 *q, uint64_t idx, uint64_t *off)
{
    return l2_table(q, idx, off);
}

int qcow2_scan_run(struct qcow2 *q, uint64_t off, struct qcow2_run *run)
{
    struct piece p;
    int ret = lookup(q, off, &p);

    if (ret != G_OK)
        return ret;
    *run = (struct qcow2_run){p.len, p.host, p.csize, p.kind == RUN_DATA,
                              p.kind == RUN_COMPRESSED};
    return G_OK;
}
