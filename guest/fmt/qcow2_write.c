/*
 * qcow2 output, laid out as qemu-img 7.2 dd writes it
 * (../shared/design/writers.md section 2): version 3, 64 KiB clusters,
 * 16-bit refcounts, the feature name table as the only extension.
 *
 *   cluster 0       header, feature name table
 *   cluster 1       refcount table (one cluster: 16 TiB of file)
 *   cluster 2       refcount block 0 (host clusters 0 .. 32767)
 *   cluster 3 ..    L1 table, one cluster per 4 TiB of virtual disk
 *   then            L2 table 0 and the data clusters of its 512 MiB, L2
 *                   table 1 and its data, ...; one more refcount block per
 *                   2 GiB of file where qcow2_alloc.c says qemu puts it
 *
 * Streaming: the writer holds the L2 table being filled and one L1
 * cluster, each written when its span is done. The file has no holes
 * (every cluster below its end is in use, refcount 1), so the refcount
 * blocks and the table follow from the file size and are written in
 * finish. A cluster only zero() reaches stays unallocated (L2 entry 0),
 * and a table whose span gets no data is not allocated at all (L1 entry
 * 0): the convert layout of writers.md 2.4.
 */
#include "fmt.h"
#include "qcow2.h"
#include "qcow2_alloc.h"
#include "../rt/rt.h"

#define CL QCOW2_W_CLUSTER

/* Header fields (qemu's docs/interop/qcow2.txt), as writers.md 2.1. */
#define HDR_VERSION 3u
#define HDR_LENGTH 112u
#define HDR_REFCOUNT_ORDER 4u /* 16-bit refcounts */
#define FEATURE_ENTRY_LEN 48u

struct qcow2_w {
    struct qcow2_alloc a;
    uint64_t tables;      /* L2 tables the virtual size needs (l1_size) */
    uint64_t l1_clusters;
    uint8_t *l2;          /* entries of table a.table */
    uint64_t l2_host;     /* its host cluster */
    uint8_t *l1;          /* L1 cluster l1_index */
    uint64_t l1_index;
    bool l1_dirty;
    uint8_t *reftable;    /* the whole refcount table */
};

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static struct qcow2_w *state(const struct fmt_writer *w)
{
    return w->priv;
}

static int write_cluster(struct fmt_writer *w, uint64_t cluster,
                         const uint8_t *buf)
{
    return fmt_out_write(w, cluster * CL, buf, CL);
}

static int flush_l2(struct fmt_writer *w)
{
    struct qcow2_w *q = state(w);
    /* Host cluster 0 is the header: 0 means no table yet. */
    return q->l2_host ? write_cluster(w, q->l2_host, q->l2) : G_OK;
}

static int flush_l1(struct fmt_writer *w)
{
    struct qcow2_w *q = state(w);
    if (!q->l1_dirty)
        return G_OK;
    q->l1_dirty = false;
    return write_cluster(w, QCOW2_W_L1_CLUSTER + q->l1_index, q->l1);
}

/* L1 entry `table` -> the L2 table at host cluster l2_host. */
static int set_l1(struct fmt_writer *w, uint64_t table, uint64_t l2_host)
{
    struct qcow2_w *q = state(w);
    uint64_t index = table / QCOW2_W_L2_ENTRIES;
    int ret;

    if (index != q->l1_index) {
        if ((ret = flush_l1(w)) != G_OK)
            return ret;
        memset(q->l1, 0, CL);
        q->l1_index = index;
    }
    put_be64(q->l1 + 8 * (table % QCOW2_W_L2_ENTRIES),
             l2_host * CL | QCOW2_FLAG_COPIED);
    q->l1_dirty = true;
    return G_OK;
}

/* Takes in what one allocation placed: a new L2 table (the previous one
 * is complete then), refcount blocks, the run's L2 entries. */
static int apply(struct fmt_writer *w, const struct qcow2_step *s)
{
    struct qcow2_w *q = state(w);
    int ret;

    if (s->new_table) {
        if ((ret = flush_l2(w)) != G_OK)
            return ret;
        memset(q->l2, 0, CL);
        q->l2_host = s->l2_host;
        if ((ret = set_l1(w, s->table, s->l2_host)) != G_OK)
            return ret;
    }
    for (unsigned i = 0; i < s->nrb; i++)
        put_be64(q->reftable + 8 * s->rb[i].index, s->rb[i].host * CL);
    for (uint64_t i = 0; i < s->n; i++)
        put_be64(q->l2 + 8 * ((s->first + i) % QCOW2_W_L2_ENTRIES),
                 qcow2_step_host(s, i) * CL | QCOW2_FLAG_COPIED);
    return G_OK;
}

/* Host cluster of virtual cluster c, 0 when it is unallocated. Only the
 * current table is known: writes come in order, so an earlier table is
 * never asked for and a later one has nothing yet. */
static uint64_t host_of(const struct qcow2_w *q, uint64_t c)
{
    if (c / QCOW2_W_L2_ENTRIES != q->a.table || c >= q->a.next)
        return 0;
    return (get_be64(q->l2 + 8 * (c % QCOW2_W_L2_ENTRIES)) &
            QCOW2_OFFSET_MASK) / CL;
}

/* Allocates the run that starts at the unallocated cluster c. */
static int allocate(struct fmt_writer *w, uint64_t c, const uint64_t wr[2])
{
    struct qcow2_w *q = state(w);
    struct qcow2_step s;

    if (!qcow2_alloc_step(&q->a, c, wr[0], wr[1], &s))
        return g_fail(w->env->err, G_ERANGE,
                      "qcow2: the output passes 16 TiB of file, more than "
                      "a one-cluster refcount table counts");
    return apply(w, &s);
}

/*
 * Where virtual byte `off` lives in the file: *host (0: unallocated) and
 * how many bytes from off, at most len, continue there contiguously (or
 * stay unallocated). With `wr` (the byte range of the write() call, which
 * decides the run when there is no request size), unallocated clusters
 * are allocated as the range reaches them, so a chunk that spans several
 * runs of one table still maps to one host range. The one mapping every
 * data path uses.
 */
static int map(struct fmt_writer *w, uint64_t off, uint64_t len,
               const uint64_t wr[2], uint64_t *host, uint64_t *n)
{
    struct qcow2_w *q = state(w);
    uint64_t c = off / CL, end = off + len, h, k;
    int ret;

    if (!(h = host_of(q, c)) && wr) {
        if ((ret = allocate(w, c, wr)) != G_OK)
            return ret;
        h = host_of(q, c);
    }
    for (k = 1; (c + k) * CL < end; k++) {
        uint64_t next = host_of(q, c + k);
        /* A new table puts its L2 table in between: not contiguous. */
        if (!next && h && wr && c + k >= q->a.next &&
            (c + k) % QCOW2_W_L2_ENTRIES != 0) {
            if ((ret = allocate(w, c + k, wr)) != G_OK)
                return ret;
            next = host_of(q, c + k);
        }
        if (h ? next != h + k : next != 0)
            break;
    }
    *host = h ? h * CL + off % CL : 0;
    *n = (c + k) * CL < end ? (c + k) * CL - off : len;
    return G_OK;
}

static int q2_write(struct fmt_writer *w, uint64_t off, const void *buf,
                    uint64_t len)
{
    const uint64_t wr[2] = {off, off + len};
    const uint8_t *p = buf;
    uint64_t pos = off, host, n;
    int ret;

    while (pos < wr[1]) {
        if ((ret = map(w, pos, wr[1] - pos, wr, &host, &n)) != G_OK ||
            (ret = fmt_out_write(w, host, p + (pos - off), n)) != G_OK)
            return ret;
        pos += n;
    }
    return G_OK;
}

/* [off, off + len) taken as written: the engine puts the bytes at the
 * host run this returns (a host copy). Clusters are placed as write()
 * would place them. */
static int q2_place(struct fmt_writer *w, uint64_t off, uint64_t len,
                    uint64_t *file_off, uint64_t *n)
{
    const uint64_t wr[2] = {off, off + len};
    return map(w, off, len, wr, file_off, n);
}

/* Zeros stay unallocated; inside an allocated cluster they are already
 * there: no host cluster is written twice, and the file reads as zeros
 * where nothing was written. */
static int q2_zero(struct fmt_writer *w, uint64_t off, uint64_t len)
{
    (void)w;
    (void)off;
    (void)len;
    return G_OK;
}

/* Refcount 1 for every host cluster below top, in block after block. */
static int write_refblocks(struct fmt_writer *w, uint8_t *buf)
{
    struct qcow2_w *q = state(w);
    int ret;

    for (uint64_t i = 0; i < QCOW2_W_RB_CLUSTERS; i++)
        put_be16(buf + 2 * i, 1);
    for (uint64_t k = 0; k < q->a.refblocks; k++) {
        uint64_t used = q->a.top - k * QCOW2_W_RB_CLUSTERS;
        if (used < QCOW2_W_RB_CLUSTERS)
            memset(buf + 2 * used, 0, 2 * (QCOW2_W_RB_CLUSTERS - used));
        if ((ret = write_cluster(w, get_be64(q->reftable + 8 * k) / CL,
                                 buf)) != G_OK)
            return ret;
    }
    return G_OK;
}

static void fill_header(const struct fmt_writer *w, uint8_t *h)
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
    const struct qcow2_w *q = state(w);
    const uint32_t nf = sizeof features / sizeof features[0];
    uint8_t *e = h + HDR_LENGTH + 8;

    memset(h, 0, CL);
    put_be32(h, QCOW2_MAGIC);
    put_be32(h + 4, HDR_VERSION);
    put_be32(h + 20, QCOW2_W_CLUSTER_BITS);
    put_be64(h + 24, w->vsize);
    put_be32(h + 36, (uint32_t)q->tables);
    put_be64(h + 40, q->tables ? QCOW2_W_L1_CLUSTER * CL : 0);
    put_be64(h + 48, QCOW2_W_REFTABLE_CLUSTER * CL);
    put_be32(h + 56, 1);
    put_be32(h + 96, HDR_REFCOUNT_ORDER);
    put_be32(h + 100, HDR_LENGTH);
    put_be32(h + HDR_LENGTH, QCOW2_EXT_FEATURE_TABLE);
    put_be32(h + HDR_LENGTH + 4, nf * FEATURE_ENTRY_LEN);
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

    if ((ret = flush_l2(w)) != G_OK || (ret = flush_l1(w)) != G_OK ||
        (ret = write_refblocks(w, q->l2)) != G_OK ||
        (ret = write_cluster(w, QCOW2_W_REFTABLE_CLUSTER, q->reftable)) !=
            G_OK)
        return ret;
    fill_header(w, q->l1);
    if ((ret = write_cluster(w, 0, q->l1)) != G_OK)
        return ret;
    /* qemu's create step writes the L1 table's bytes only, unpadded: with
     * nothing allocated after it the file ends there. */
    if (q->a.top == QCOW2_W_L1_CLUSTER + q->l1_clusters)
        *file_size = QCOW2_W_L1_CLUSTER * CL + 8 * q->tables;
    else
        *file_size = q->a.top * CL;
    return G_OK;
}

int fmt_qcow2_writer_open(struct fmt_writer *w)
{
    uint64_t clusters = div_up(w->vsize, CL);
    uint64_t tables = div_up(clusters, QCOW2_W_L2_ENTRIES);
    uint64_t l1_clusters = div_up(tables, QCOW2_W_L2_ENTRIES);
    uint64_t req = w->opts ? w->opts->request_size : 0;
    struct qcow2_w *q;

    w->name = "qcow2";
    /* A request size means dd: every cluster gets allocated, so the file
     * size is known now, and a file past what one refcount table cluster
     * counts is refused before anything is written. */
    if (req && qcow2_alloc_dense_refblocks(clusters, l1_clusters) >=
                   QCOW2_W_REFBLOCKS_MAX)
        return g_fail(w->env->err, G_ERANGE,
                      "qcow2: a %llu-byte output needs a file past 16 TiB, "
                      "more than a one-cluster refcount table counts "
                      "(qemu-img grows the table; instar does not)",
                      (unsigned long long)w->vsize);
    q = fmt_alloc(w->env, sizeof *q, "qcow2", "writer state");
    if (!q || !(q->l2 = fmt_io_alloc(w->env, CL, "qcow2", "L2 table")) ||
        !(q->l1 = fmt_io_alloc(w->env, CL, "qcow2", "L1 table")) ||
        !(q->reftable = fmt_io_alloc(w->env, CL, "qcow2", "refcount table")))
        return G_ENOMEM;
    qcow2_alloc_init(&q->a, clusters, l1_clusters, req);
    q->tables = tables;
    q->l1_clusters = l1_clusters;
    q->l1_index = 0;
    put_be64(q->reftable, QCOW2_W_REFBLOCK0_CLUSTER * CL);
    w->priv = q;
    w->write = q2_write;
    w->zero = q2_zero;
    w->finish = q2_finish;
    w->place = q2_place;
    return G_OK;
}
