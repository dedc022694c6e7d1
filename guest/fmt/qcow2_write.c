/*
 * qcow2 output, laid out as qemu-img 7.2 writes it
 * (../shared/design/writers.md section 2): dd as `qemu-img dd`, convert as
 * `qemu-img convert -O qcow2 [-c] [-o cluster_size=N,compat=V]`, with
 * 16-bit refcounts for every cluster size from 512 bytes to 2 MiB.
 *
 *   cluster 0       header (v3: 112 bytes, and the feature name table
 *                   from 8 KiB clusters on; v2: 72 bytes)
 *   cluster 1       refcount table (one cluster until it grows)
 *   cluster 2       refcount block 0 (cluster/2 host clusters)
 *   cluster 3 ..    L1 table (l1_size entries)
 *   then            L2 table 0 and the data clusters of its span, L2
 *                   table 1 and its data, ...; further refcount blocks and
 *                   grown refcount tables where qcow2_alloc.c says qemu
 *                   puts them
 *
 * Streaming: the writer holds the L2 table being filled, one L1 cluster,
 * one refcount block and the refcount table (in the model), each written
 * when its span is done. A cluster only zero() reaches stays unallocated
 * (L2 entry 0), and a table whose span gets no data is not allocated at
 * all (L1 entry 0): the convert layout of writers.md 2.4. With -c every
 * cluster is compressed (qcow2_zwrite.c).
 */
#include "qcow2_w.h"

#include "qcow2.h"
#include "../rt/rt.h"

/* Header fields (qemu's docs/interop/qcow2.txt), as writers.md 2.1. */
#define HDR_V3_LENGTH 112u
#define HDR_REFCOUNT_ORDER 4u /* 16-bit refcounts */
#define FEATURE_ENTRY_LEN 48u
/* qemu-img 7.2 writes the feature name table only with clusters of at
 * least 8 KiB (measured: 512 B .. 4 KiB headers end at the v3 fields). */
#define FEATURE_TABLE_MIN_BITS 13u
/* The refcount table is held in memory: qemu grows it as the file grows,
 * instar up to this many entries (1 MiB: 16 GiB of file at 512-byte
 * clusters, 1 TiB at 4 KiB). From 64 KiB clusters on it stays the one
 * cluster qemu creates (16 TiB of file and more), as dd always did. */
#define REFTABLE_ENTRIES_MAX (1u << 17)
#define REFTABLE_FIXED_BITS 16u
/* qemu-img convert reads and writes in 2 MiB requests (its buffer). */
#define CONVERT_REQUEST (2u << 20)

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static struct qcow2_w *state(const struct fmt_writer *w)
{
    return w->priv;
}

int qcow2_w_out(struct qcow2_w *q, uint64_t off, const void *buf,
                uint64_t len)
{
    if (off + len > q->written)
        q->written = off + len;
    return fmt_out_write(q->w, off, buf, len);
}

static int write_cluster(struct qcow2_w *q, uint64_t cluster,
                         const uint8_t *buf)
{
    return qcow2_w_out(q, cluster * q->cl, buf, q->cl);
}

/* --- the refcount table and blocks (the model's sink) ------------------- */

/* n entries of the table, written at host cluster `host`. */
static int write_table(struct qcow2_w *q, uint64_t host, uint64_t n)
{
    const uint64_t per = q->cl / 8;
    int ret;
    for (uint64_t k = 0; k < n; k += per) {
        for (uint64_t i = 0; i < per; i++)
            put_be64(q->scratch + 8 * i,
                     k + i < n ? q->entries[k + i] * q->cl : 0);
        if ((ret = write_cluster(q, host + k / per, q->scratch)) != G_OK)
            return ret;
    }
    return G_OK;
}

static int flush_rb(struct qcow2_w *q, unsigned slot)
{
    uint64_t r = q->rb[slot].range;
    if (r == QCOW2_W_NONE)
        return G_OK;
    q->rb[slot].range = QCOW2_W_NONE;
    return write_cluster(q, q->entries[r], q->rb[slot].buf);
}

static int on_block(void *ctx, uint64_t index, uint64_t host)
{
    struct qcow2_w *q = ctx;
    (void)index;
    /* A block in clusters written before (a freed table) must not keep
     * their bytes where no count lands: qemu writes it whole. */
    if (host * q->cl >= q->written)
        return G_OK;
    memset(q->scratch, 0, q->cl);
    return write_cluster(q, host, q->scratch);
}

/* The block of range r kept in memory (NULL: it goes straight to the
 * file). Ranges come mostly in increasing order, a run that crosses into
 * a new range touching the last one too: a new range takes the slot
 * filled longer ago. */
static int rb_slot(struct qcow2_w *q, uint64_t r, uint8_t **buf)
{
    unsigned s = q->rb_old;
    int ret;

    *buf = NULL;
    for (unsigned i = 0; i < 2; i++)
        if (q->rb[i].range == r)
            *buf = q->rb[i].buf;
    if (*buf || (q->rb_hi != QCOW2_W_NONE && r <= q->rb_hi))
        return G_OK;
    if ((ret = flush_rb(q, s)) != G_OK)
        return ret;
    memset(q->rb[s].buf, 0, q->cl);
    q->rb[s].range = q->rb_hi = r;
    q->rb_old = !s;
    *buf = q->rb[s].buf;
    return G_OK;
}

static int on_counts(void *ctx, uint64_t c, uint64_t n, uint64_t v)
{
    struct qcow2_w *q = ctx;
    const uint64_t rb = q->a.rb;
    int ret;

    while (n) {
        uint64_t r = c / rb, k = min64(n, (r + 1) * rb - c);
        uint8_t *buf;
        if ((ret = rb_slot(q, r, &buf)) != G_OK)
            return ret;
        uint8_t *p = buf ? buf + 2 * (c % rb) : q->scratch;
        for (uint64_t i = 0; i < k; i++)
            put_be16(p + 2 * i, (uint16_t)v);
        if (!buf &&
            (ret = qcow2_w_out(q, q->entries[r] * q->cl + 2 * (c % rb),
                               q->scratch, 2 * k)) != G_OK)
            return ret;
        c += k;
        n -= k;
    }
    return G_OK;
}

static int on_table_moved(void *ctx, uint64_t old_host, uint64_t old_entries)
{
    return write_table(ctx, old_host, old_entries);
}

/* --- L1 and L2 tables ------------------------------------------------------ */

static int flush_l2(struct qcow2_w *q)
{
    /* Host cluster 0 is the header: 0 means no table yet. */
    return q->l2_host ? write_cluster(q, q->l2_host, q->l2) : G_OK;
}

static int flush_l1(struct qcow2_w *q)
{
    if (!q->l1_dirty)
        return G_OK;
    q->l1_dirty = false;
    /* Only the table's own bytes: qemu writes l1_size entries, so the rest
     * of the last cluster stays a hole in its file, and in ours. */
    uint64_t len = min64(q->cl, q->tables * 8 - q->l1_index * q->cl);
    return qcow2_w_out(q, (q->l1_host + q->l1_index) * q->cl, q->l1, len);
}

/* L1 entry `table` -> the L2 table at host cluster l2_host. */
static int set_l1(struct qcow2_w *q, uint64_t table, uint64_t l2_host)
{
    uint64_t index = table / q->l2e;
    int ret;

    if (index != q->l1_index) {
        if ((ret = flush_l1(q)) != G_OK)
            return ret;
        memset(q->l1, 0, q->cl);
        q->l1_index = index;
    }
    put_be64(q->l1 + 8 * (table % q->l2e),
             l2_host * q->cl | QCOW2_FLAG_COPIED);
    q->l1_dirty = true;
    return G_OK;
}

int qcow2_w_table(struct qcow2_w *q, uint64_t t)
{
    uint64_t host;
    int ret;

    /* Writes come in order: the previous table is complete. */
    if ((ret = flush_l2(q)) != G_OK ||
        (ret = qcow2_alloc_clusters(&q->a, q->cl, &host)) != G_OK)
        return ret;
    memset(q->l2, 0, q->cl);
    q->l2_host = host;
    q->table = t;
    return set_l1(q, t, host);
}

void qcow2_w_set(struct qcow2_w *q, uint64_t c, uint64_t entry)
{
    put_be64(q->l2 + 8 * (c % q->l2e), entry);
}

/* --- data clusters ----------------------------------------------------------- */

/* Host cluster of virtual cluster c, 0 when it is unallocated. Only the
 * current table is known: writes come in order, so an earlier table is
 * never asked for and a later one has nothing yet. */
static uint64_t host_of(const struct qcow2_w *q, uint64_t c)
{
    if (c / q->l2e != q->table || c >= q->next)
        return 0;
    return (get_be64(q->l2 + 8 * (c % q->l2e)) & QCOW2_OFFSET_MASK) >>
           q->cluster_bits;
}

/* Host clusters [h, h + n) of data, for virtual clusters from c. A
 * cluster that was written before (a freed table qemu reuses) is zeroed
 * first, as qemu's copy-on-write fills what the data leaves. */
static int take(struct qcow2_w *q, uint64_t c, uint64_t h, uint64_t n)
{
    int ret;
    for (uint64_t i = 0; i < n; i++) {
        qcow2_w_set(q, c + i, (h + i) * q->cl | QCOW2_FLAG_COPIED);
        if ((h + i) * q->cl < q->written) {
            memset(q->scratch, 0, q->cl);
            if ((ret = write_cluster(q, h + i, q->scratch)) != G_OK)
                return ret;
        }
    }
    return G_OK;
}

/*
 * The request qemu would be writing cluster c in, [*rs, *re): dd's are bs
 * bytes from the start of the window; convert's are what it reads into
 * its 2 MiB buffer, less the zero runs it leaves out: with -S N the
 * request being flushed, dense (-S 0) the whole buffer.
 */
static void request(const struct qcow2_w *q, uint64_t c, uint64_t pos,
                    uint64_t *rs, uint64_t *re)
{
    if (q->req) {
        *rs = c * q->cl / q->req * q->req;
        *re = *rs + q->req;
    } else if (q->pend) {
        *rs = q->pend_start;
        *re = q->pend_start + q->pend_len;
    } else {
        *rs = pos / CONVERT_REQUEST * CONVERT_REQUEST;
        *re = *rs + CONVERT_REQUEST;
    }
}

/*
 * Allocates the run that starts at the unallocated cluster c, as qemu's
 * write of request [rs, re) does: the table's L2 first if it is new, then
 * the clusters of the table whose first byte the request writes. When
 * the request began in the cluster before (already allocated), qemu first
 * tries to extend that cluster's host range.
 */
static int allocate(struct qcow2_w *q, uint64_t c, uint64_t rs, uint64_t re)
{
    uint64_t t = c / q->l2e, k = 0, h;
    uint64_t last = min64(min64(div_up(re, q->cl), (t + 1) * q->l2e),
                          q->clusters);
    int ret;

    if (last <= c)
        last = c + 1;
    if (t != q->table && (ret = qcow2_w_table(q, t)) != G_OK)
        return ret;
    if (rs < c * q->cl && c == q->next && q->last_end &&
        ((ret = qcow2_alloc_at(&q->a, q->last_end, last - c, &k)) != G_OK ||
         (ret = take(q, c, q->last_end, k)) != G_OK))
        return ret;
    if (k < last - c &&
        ((ret = qcow2_alloc_clusters(&q->a, (last - c - k) * q->cl, &h)) !=
             G_OK ||
         (ret = take(q, c + k, h, last - c - k)) != G_OK))
        return ret;
    q->next = last;
    q->last_end = host_of(q, last - 1) + 1;
    return G_OK;
}

/* Allocates cluster c (unallocated) for a write that reaches it at pos. */
static int reach(struct qcow2_w *q, uint64_t c, uint64_t pos)
{
    uint64_t rs, re;
    request(q, c, pos, &rs, &re);
    return allocate(q, c, rs, re);
}

/*
 * Where virtual byte `off` lives in the file: *host, and how many bytes
 * from off, at most len, continue there contiguously. Unallocated
 * clusters are allocated as the write reaches them, so a chunk that spans
 * several runs of one table still maps to one host range. The one mapping
 * every data path uses.
 */
static int map(struct qcow2_w *q, uint64_t off, uint64_t len, uint64_t *host,
               uint64_t *n)
{
    uint64_t c = off / q->cl, end = off + len, h, k;
    int ret;

    if (!(h = host_of(q, c))) {
        if ((ret = reach(q, c, off)) != G_OK)
            return ret;
        h = host_of(q, c);
    }
    for (k = 1; (c + k) * q->cl < end; k++) {
        uint64_t next = host_of(q, c + k);
        /* A new table puts its L2 table in between: not contiguous. */
        if (!next && c + k >= q->next && (c + k) % q->l2e != 0) {
            if ((ret = reach(q, c + k, (c + k) * q->cl)) != G_OK)
                return ret;
            next = host_of(q, c + k);
        }
        if (next != h + k)
            break;
    }
    *host = h * q->cl + off % q->cl;
    *n = (c + k) * q->cl < end ? (c + k) * q->cl - off : len;
    return G_OK;
}

/* The file as qemu-img create leaves it, on the first call: the L1
 * table's allocation may already write refcount blocks, which only
 * begin_output allows (it comes after open). */
static int start(struct qcow2_w *q)
{
    if (q->started)
        return G_OK;
    q->started = true;
    const struct qcow2_alloc_sink sink = {q, on_block, on_counts,
                                          on_table_moved};
    return qcow2_alloc_init(&q->a, q->cluster_bits, q->entries, q->cap,
                            q->tables, &sink, q->w->env->err, &q->l1_host);
}

/* Bytes [off, off + len) of buf to their clusters, allocated as qemu's
 * request would allocate them. `given`: buf is the engine's (a
 * write-behind when stable), not the writer's own memory. */
static int put(struct qcow2_w *q, uint64_t off, const uint8_t *buf,
               uint64_t len, bool given)
{
    uint64_t pos = off, host, n;
    int ret;

    while (pos < off + len) {
        if ((ret = map(q, pos, off + len - pos, &host, &n)) != G_OK)
            return ret;
        if (host + n > q->written)
            q->written = host + n;
        ret = given ? fmt_out_write_data(q->w, host, buf + (pos - off), n)
                    : fmt_out_write(q->w, host, buf + (pos - off), n);
        if (ret != G_OK)
            return ret;
        pos += n;
    }
    return G_OK;
}

/* The held request goes out: now its end is known. */
static int flush_pending(struct qcow2_w *q)
{
    const uint8_t *p = q->pend_ext ? q->pend_ext : q->pend;
    int ret = q->pend_len
                  ? put(q, q->pend_start, p, q->pend_len, q->pend_ext != NULL)
                  : G_OK;
    q->pend_len = 0;
    q->pend_ext = NULL;
    return ret;
}

/* The held bytes into the writer's own memory. */
static void pend_own(struct qcow2_w *q)
{
    if (q->pend_ext)
        memcpy(q->pend, q->pend_ext, q->pend_len);
    q->pend_ext = NULL;
}

/* The engine is about to read over [p, p + len). */
static int q2_release(struct fmt_writer *w, const uint8_t *p, uint64_t len)
{
    struct qcow2_w *q = state(w);
    if (q->pend_ext && q->pend_ext < p + len && p < q->pend_ext + q->pend_len)
        pend_own(q);
    return G_OK;
}

/*
 * convert -S N: qemu-img convert writes each run of data (zero runs
 * shorter than N included) of its 2 MiB buffer in one request, whose
 * clusters it allocates in one go. The run is held until it ends: at a
 * zero run qemu leaves out, at a write that does not continue it, or at
 * the buffer's end. src NULL: zeros.
 */
static int hold(struct qcow2_w *q, uint64_t off, const uint8_t *src,
                uint64_t len)
{
    int ret;

    if (q->pend_len && off != q->pend_start + q->pend_len &&
        (ret = flush_pending(q)) != G_OK)
        return ret;
    while (len) {
        uint64_t end = (off / CONVERT_REQUEST + 1) * CONVERT_REQUEST;
        uint64_t n = min64(len, end - off);
        if (!q->pend_len) {
            q->pend_start = off;
            /* A stable buffer is held where it is, as long as the
             * request goes on in it. */
            q->pend_ext = src && q->w->stable ? src : NULL;
        }
        if (!q->pend_ext || src != q->pend_ext + q->pend_len) {
            pend_own(q);
            if (src)
                memcpy(q->pend + q->pend_len, src, n);
            else
                memset(q->pend + q->pend_len, 0, n);
        }
        if (src)
            src += n;
        q->pend_len += n;
        off += n;
        len -= n;
        if (off == end && (ret = flush_pending(q)) != G_OK)
            return ret;
    }
    return G_OK;
}

/*
 * The zero run [z_start, z_end) as qemu-img convert treats it, now that
 * what follows is known (`next`: the offset of the next write, or
 * QCOW2_W_NONE): the data before it runs on to the next `align` bytes,
 * the data after it starts at the `align` bytes before (where the run
 * touches data), and what is left between is skipped only if it is at
 * least -S long, or the run met a hole or an end of the disk (the engine
 * hands a zero run shorter than -S only then); otherwise the whole run is
 * data of one request. The engine leaves out whole runs: below 4 KiB
 * clusters this decides which all-zero clusters qemu allocates.
 */
static int resolve_zeros(struct qcow2_w *q, uint64_t next)
{
    uint64_t a = q->z_start, b = q->z_end, A = q->align;
    uint64_t head = q->z_after_data ? min64(div_up(a, A) * A, b) : a;
    uint64_t tail = next == b ? b / A * A : b;
    int ret;

    q->z_end = 0;
    if (tail < head)
        tail = head;
    if (q->z_after_data && next == b && b - a >= q->sparse_min &&
        tail - head < q->sparse_min)
        return hold(q, a, NULL, b - a);
    if ((head > a && (ret = hold(q, a, NULL, head - a)) != G_OK) ||
        (ret = flush_pending(q)) != G_OK)
        return ret;
    return tail < b ? hold(q, tail, NULL, b - tail) : G_OK;
}

static int q2_write(struct fmt_writer *w, uint64_t off, const void *buf,
                    uint64_t len)
{
    struct qcow2_w *q = state(w);
    int ret;

    if ((ret = start(q)) != G_OK)
        return ret;
    if (q->z)
        return qcow2_z_write(q, off, buf, len);
    if (!q->pend)
        return put(q, off, buf, len, true);
    if (q->z_end && (ret = resolve_zeros(q, off)) != G_OK)
        return ret;
    q->wr_end = off + len;
    return hold(q, off, buf, len);
}
/* [off, off + len) taken as written: the engine puts the bytes at the
 * host run this returns (a host copy). Clusters are placed as write()
 * would place them. */
static int q2_place(struct fmt_writer *w, uint64_t off, uint64_t len,
                    uint64_t *file_off, uint64_t *n)
{
    struct qcow2_w *q = state(w);
    int ret;

    if ((ret = start(q)) != G_OK)
        return ret;
    if ((ret = map(q, off, len, file_off, n)) == G_OK &&
        *file_off + *n > q->written)
        q->written = *file_off + *n;
    return ret;
}

/* Zeros stay unallocated; inside an allocated cluster they are already
 * there: no host cluster is written twice, and the file reads as zeros
 * where nothing was written. */
static int q2_zero(struct fmt_writer *w, uint64_t off, uint64_t len)
{
    struct qcow2_w *q = state(w);
    int ret;
    if ((ret = start(q)) != G_OK)
        return ret;
    if (q->z)
        return qcow2_z_zero(q, off, len);
    if (!q->pend)
        return G_OK;
    if (q->z_end != off) { /* a new run (else it goes on) */
        q->z_start = off;
        q->z_after_data = off && q->wr_end == off;
    }
    q->z_end = off + len;
    return G_OK;
}

/* --- header and finish ------------------------------------------------------- */

static void fill_header(const struct qcow2_w *q, uint8_t *h)
{
    static const struct {
        uint8_t type, bit;
        const char *name;
    } features[] = {
        {0, 0, "dirty bit"},           {0, 1, "corrupt bit"},
        {0, 2, "external data file"},  {0, 3, "compression type"},
        {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
        {2, 0, "bitmaps"},             {2, 1, "raw external data"},
    };
    const uint32_t nf = sizeof features / sizeof features[0];
    uint8_t *e = h + HDR_V3_LENGTH + 8;

    memset(h, 0, q->cl);
    put_be32(h, QCOW2_MAGIC);
    put_be32(h + 4, q->version);
    put_be32(h + 20, q->cluster_bits);
    put_be64(h + 24, q->w->vsize);
    put_be32(h + 36, (uint32_t)q->tables);
    put_be64(h + 40, q->tables ? q->l1_host * q->cl : 0);
    put_be64(h + 48, q->a.rt_host * q->cl);
    put_be32(h + 56, (uint32_t)(q->a.rt_size / (q->cl / 8)));
    /* A version 2 header ends here (72 bytes); extensions would follow,
     * and qemu writes none: the end marker is the zeros after it. */
    if (q->version < 3)
        return;
    put_be32(h + 96, HDR_REFCOUNT_ORDER);
    put_be32(h + 100, HDR_V3_LENGTH);
    if (q->cluster_bits < FEATURE_TABLE_MIN_BITS)
        return;
    put_be32(h + HDR_V3_LENGTH, QCOW2_EXT_FEATURE_TABLE);
    put_be32(h + HDR_V3_LENGTH + 4, nf * FEATURE_ENTRY_LEN);
    for (uint32_t i = 0; i < nf; i++, e += FEATURE_ENTRY_LEN) {
        e[0] = features[i].type;
        e[1] = features[i].bit;
        memcpy(e + 2, features[i].name, rt_strlen(features[i].name));
    }
    /* then the end-of-extensions marker: 8 zero bytes */
}

static int q2_finish(struct fmt_writer *w, uint64_t *file_size)
{
    struct qcow2_w *q = state(w);
    int ret;

    if ((ret = start(q)) != G_OK ||
        (q->z && (ret = qcow2_z_finish(q)) != G_OK) ||
        (q->z_end && (ret = resolve_zeros(q, QCOW2_W_NONE)) != G_OK) ||
        (ret = flush_pending(q)) != G_OK || (ret = flush_l2(q)) != G_OK ||
        (ret = flush_l1(q)) != G_OK || (ret = flush_rb(q, 0)) != G_OK ||
        (ret = flush_rb(q, 1)) != G_OK ||
        (ret = write_table(q, q->a.rt_host, q->a.rt_size)) != G_OK)
        return ret;
    fill_header(q, q->l1);
    if ((ret = write_cluster(q, 0, q->l1)) != G_OK)
        return ret;
    /* qemu's create step writes the L1 table's bytes only, unpadded: with
     * nothing allocated after it the file ends there. With -c, qemu-img
     * convert ends by rounding the file up to a sector. */
    *file_size = q->z ? div_up(q->a.end, 512) * 512 : q->a.end;
    return G_OK;
}

/* --- open ---------------------------------------------------------------------- */

/* The shape from -o and -c, checked: anything qcow2 does not take is
 * refused by name, never ignored. */
static int check_params(struct fmt_writer *w, const struct ct_output_params *p)
{
    if (p->cluster_bits && (p->cluster_bits < 9 || p->cluster_bits > 21))
        return g_fail(w->env->err, G_ENOTSUP,
                      "qcow2: cluster_size 2^%u is not supported (512 .. "
                      "2M)",
                      p->cluster_bits);
    if (p->version && p->version != 2 && p->version != 3)
        return g_fail(w->env->err, G_ENOTSUP,
                      "qcow2: compat version %u is not supported (0.10 or "
                      "1.1)",
                      p->version);
    if (p->subformat || p->adapter || p->block_size ||
        (p->flags & ~CT_OUT_COMPRESS))
        return g_fail(w->env->err, G_ENOTSUP,
                      "qcow2: output option (subformat, adapter_type, "
                      "block_size or force_size) is not supported");
    return G_OK;
}

int fmt_qcow2_writer_open(struct fmt_writer *w)
{
    const struct ct_output_params *p = fmt_params(w);
    unsigned cb = p->cluster_bits ? p->cluster_bits : 16;
    uint64_t cl = 1ull << cb, l2e = cl / 8;
    uint64_t clusters = div_up(w->vsize, cl);
    uint64_t tables = div_up(clusters, l2e);
    uint64_t req = w->opts ? w->opts->request_size : 0;
    uint64_t cap = cb >= REFTABLE_FIXED_BITS ? l2e : REFTABLE_ENTRIES_MAX;
    struct qcow2_w *q;
    int ret;

    w->name = "qcow2";
    if ((ret = check_params(w, p)) != G_OK)
        return ret;
    /* A request size means dd (64 KiB clusters): every cluster gets
     * allocated, so the file size is known now, and a file past what one
     * refcount table cluster counts is refused before anything is
     * written. */
    if (req && qcow2_alloc_dense_refblocks(clusters, div_up(tables, l2e)) >=
                   l2e)
        return g_fail(w->env->err, G_ERANGE,
                      "qcow2: a %llu-byte output needs a file past 16 TiB, "
                      "more than a one-cluster refcount table counts "
                      "(qemu-img grows the table; instar does not)",
                      (unsigned long long)w->vsize);
    q = fmt_alloc(w->env, sizeof *q, "qcow2", "writer state");
    if (!q || !(q->entries = fmt_alloc(w->env, 8 * cap, "qcow2",
                                       "refcount table")) ||
        !(q->l2 = fmt_io_alloc(w->env, cl, "qcow2", "L2 table")) ||
        !(q->l1 = fmt_io_alloc(w->env, cl, "qcow2", "L1 table")) ||
        !(q->rb[0].buf = fmt_io_alloc(w->env, cl, "qcow2",
                                      "refcount block")) ||
        !(q->rb[1].buf = fmt_io_alloc(w->env, cl, "qcow2",
                                      "refcount block")) ||
        !(q->scratch = fmt_io_alloc(w->env, cl, "qcow2", "refcount table")))
        return G_ENOMEM;
    /* convert -S N holds a request until its end is known. qemu rounds
     * the zero runs it skips to the largest power of two not above N. */
    if (!req && !(p->flags & CT_OUT_COMPRESS) && w->opts &&
        w->opts->sparse_min) {
        if (!(q->pend = fmt_io_alloc(w->env, CONVERT_REQUEST, "qcow2",
                                     "request")))
            return G_ENOMEM;
        q->sparse_min = w->opts->sparse_min;
        for (q->align = 512; q->align * 2 <= q->sparse_min;)
            q->align *= 2;
    }
    q->w = w;
    q->cluster_bits = cb;
    q->cl = cl;
    q->l2e = l2e;
    q->clusters = clusters;
    q->tables = tables;
    q->version = p->version ? p->version : 3;
    q->req = req;
    q->table = q->rb[0].range = q->rb[1].range = q->rb_hi = QCOW2_W_NONE;
    q->cap = cap;
    w->priv = q;
    w->write = q2_write;
    w->zero = q2_zero;
    w->finish = q2_finish;
    w->release = q2_release;
    /* Compressed clusters are assembled in the guest: no host copies. */
    w->place = p->flags & CT_OUT_COMPRESS ? NULL : q2_place;
    return p->flags & CT_OUT_COMPRESS ? qcow2_z_open(q) : G_OK;
}
