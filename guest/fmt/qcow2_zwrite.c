/*
 * Compressed qcow2 clusters (convert -c), as qemu-img 7.2 writes them
 * (measured; the descriptor is docs/interop/qcow2.txt's):
 *
 *  - every virtual cluster is compressed whole (the last one padded with
 *    zeros) with raw deflate, zlib's default level, a 4 KiB window and
 *    memory level 9, into at most cluster - 1 bytes; one that does not
 *    fit (zlib needs room to spare) is stored plain;
 *  - an all-zero cluster stays unallocated, except with -S 0, where qemu
 *    compresses zeros too;
 *  - compressed data is packed at byte granularity into host clusters
 *    (qcow2_alloc_bytes), whose refcount is the number of compressed
 *    clusters touching them; the L2 entry holds the byte offset and the
 *    number of 512-byte sectors the data reaches into past its first;
 *  - clusters are placed in virtual order, an L2 table allocated when its
 *    span gets its first cluster; the file ends rounded up to a sector.
 *
 * Clusters are assembled from the engine's writes and zeros into a batch;
 * a full batch is handed to the worker vCPU (guest/rt/par.c: each job
 * touches only its own cluster, its output slot and its vCPU's deflate
 * state) while the main vCPU goes on reading the next one, then helps
 * finish it and places its clusters in order. Writes that continue each
 * other in the file are gathered into one.
 */
#include "qcow2_w.h"

#include "deflate.h"
#include "qcow2.h"
#include "../rt/par.h"
#include "../rt/rt.h"

/* A batch holds about this much input: both vCPUs get many clusters. */
#define Z_BATCH_BYTES (4u << 20)
#define Z_BATCH_MAX 64u
/* Two batches (one filling, one compressing) up to this cluster size;
 * past it one, so that 2 MiB clusters fit the I/O area. */
#define Z_DOUBLE_MAX_BITS 19u
/* Gathered output written in one call, at most. */
#define Z_STAGE (1u << 20)
/* qemu's deflate parameters for qcow2 (zlib compression type). */
#define Z_WINDOW_BITS 12
#define Z_MEM_LEVEL 9

struct qcow2_z_job {
    uint64_t len; /* compressed bytes; 0: stored plain */
    bool zero;    /* all zeros: left unallocated */
};

struct qcow2_z;

struct qcow2_z_batch {
    struct qcow2_z *z;
    uint8_t *in;              /* the clusters */
    uint8_t *out;             /* one compressed output slot per cluster */
    struct qcow2_z_job *jobs;
    uint64_t first;           /* virtual cluster of in[0] */
    uint32_t n;               /* clusters handed out */
};

struct qcow2_z {
    struct fmt_deflate *zs[PAR_WORKERS_MAX]; /* one per vCPU */
    const struct fmt_env *env;
    uint64_t cl;
    bool sparse;
    uint32_t batch;           /* clusters a batch holds */
    struct qcow2_z_batch b[2];
    unsigned nb;              /* batches: 1 or 2 */
    unsigned cur;             /* the one being filled */
    uint64_t fill;            /* bytes of it assembled */
    bool busy;                /* the other one is being compressed */
    struct par_batch pb;
    uint8_t *stage;           /* output gathered for one write */
    uint64_t stage_off, stage_len;
};

static int batch_alloc(struct qcow2_z *z, struct qcow2_z_batch *b)
{
    const struct fmt_env *env = z->env;
    b->z = z;
    b->jobs = fmt_alloc(env, z->batch * sizeof *b->jobs, "qcow2",
                        "compression queue");
    b->in = b->jobs ? fmt_io_alloc(env, z->batch * z->cl, "qcow2",
                                   "clusters to compress")
                    : NULL;
    b->out = b->in ? fmt_io_alloc(env, z->batch * z->cl, "qcow2",
                                  "compressed clusters")
                   : NULL;
    return b->out ? G_OK : G_ENOMEM;
}

int qcow2_z_open(struct qcow2_w *q)
{
    const struct fmt_env *env = q->w->env;
    struct qcow2_z *z = fmt_alloc(env, sizeof *z, "qcow2", "compressor");
    uint64_t batch = Z_BATCH_BYTES / q->cl;

    if (!z)
        return G_ENOMEM;
    /* Two clusters at least, so that both vCPUs have one. */
    batch = batch < 2 ? 2 : batch > Z_BATCH_MAX ? Z_BATCH_MAX : batch;
    z->env = env;
    z->cl = q->cl;
    z->sparse = q->w->opts && q->w->opts->sparse_min;
    z->batch = (uint32_t)batch;
    z->nb = q->cluster_bits <= Z_DOUBLE_MAX_BITS ? 2 : 1;
    for (unsigned i = 0; i < z->nb; i++)
        if (batch_alloc(z, &z->b[i]) != G_OK)
            return G_ENOMEM;
    if (!(z->stage = fmt_io_alloc(env, Z_STAGE, "qcow2",
                                  "compressed output")))
        return G_ENOMEM;
    for (uint32_t i = 0; i < par_workers(env->par); i++)
        if (!(z->zs[i] = fmt_deflate_new(env, Z_WINDOW_BITS, Z_MEM_LEVEL,
                                         "qcow2")))
            return G_ENOMEM;
    q->z = z;
    return G_OK;
}

/* --- output ----------------------------------------------------------------- */

static int stage_flush(struct qcow2_w *q)
{
    struct qcow2_z *z = q->z;
    uint64_t n = z->stage_len;
    z->stage_len = 0;
    return n ? qcow2_w_out(q, z->stage_off, z->stage, n) : G_OK;
}

/* len bytes of src (I/O area) for file offset off: gathered with what
 * came before when they continue it. */
static int stage(struct qcow2_w *q, uint64_t off, const uint8_t *src,
                 uint64_t len)
{
    struct qcow2_z *z = q->z;
    int ret;

    if (z->stage_len && off == z->stage_off + z->stage_len &&
        z->stage_len + len <= Z_STAGE) {
        memcpy(z->stage + z->stage_len, src, len);
        z->stage_len += len;
        return G_OK;
    }
    if ((ret = stage_flush(q)) != G_OK)
        return ret;
    if (len > Z_STAGE)
        return qcow2_w_out(q, off, src, len);
    memcpy(z->stage, src, len);
    z->stage_off = off;
    z->stage_len = len;
    return G_OK;
}

/* --- compressing a batch ------------------------------------------------------- */

static bool all_zero(const uint8_t *p, uint64_t n)
{
    const uint64_t *w = (const void *)p;
    for (uint64_t i = 0; i < n / 8; i++)
        if (w[i])
            return false;
    return true;
}

/* One cluster, on whichever vCPU claims it. */
static void job_run(void *ctx, uint32_t item, uint32_t worker)
{
    struct qcow2_z_batch *b = ctx;
    struct qcow2_z *z = b->z;
    const uint8_t *src = b->in + item * z->cl;
    struct qcow2_z_job *j = &b->jobs[item];

    j->zero = z->sparse && all_zero(src, z->cl);
    j->len = j->zero ? 0
                     : fmt_deflate_try(z->zs[worker], src, z->cl,
                                       b->out + item * z->cl, z->cl - 1);
}

/* Virtual cluster b->first + i with its compressed job. */
static int place(struct qcow2_w *q, const struct qcow2_z_batch *b,
                 uint32_t i)
{
    const struct qcow2_z_job *j = &b->jobs[i];
    uint64_t c = b->first + i, t = c / q->l2e, off, host;
    int ret;

    if (j->zero)
        return G_OK;
    if (t != q->table && (ret = qcow2_w_table(q, t)) != G_OK)
        return ret;
    if (!j->len) {
        /* qemu writes it as a plain cluster. */
        if ((ret = qcow2_alloc_clusters(&q->a, q->cl, &host)) != G_OK)
            return ret;
        qcow2_w_set(q, c, host * q->cl | QCOW2_FLAG_COPIED);
        return stage(q, host * q->cl, b->in + i * q->cl, q->cl);
    }
    if ((ret = qcow2_alloc_bytes(&q->a, j->len, &off)) != G_OK)
        return ret;
    /* Offset in the low 62 - (cluster_bits - 8) bits, then the sectors
     * the data reaches past the one it starts in. */
    uint64_t sectors = (off + j->len - 1) / 512 - off / 512;
    qcow2_w_set(q, c,
                QCOW2_FLAG_COMPRESSED |
                    sectors << (62 - (q->cluster_bits - 8)) | off);
    return stage(q, off, b->out + i * q->cl, j->len);
}

static int place_all(struct qcow2_w *q, const struct qcow2_z_batch *b)
{
    int ret;
    for (uint32_t i = 0; i < b->n; i++)
        if ((ret = place(q, b, i)) != G_OK)
            return ret;
    return G_OK;
}

/*
 * The batch being filled is complete (or the last): the one before is
 * finished (the main vCPU helping), this one handed to the worker, and
 * the one before placed while the worker compresses. With one batch it
 * is compressed and placed at once.
 */
static int rotate(struct qcow2_w *q)
{
    struct qcow2_z *z = q->z;
    struct qcow2_z_batch *b = &z->b[z->cur], *prev = &z->b[!z->cur];
    bool placing = z->busy;
    int ret;

    if (z->busy)
        par_finish(&z->pb);
    b->n = (uint32_t)(z->fill / q->cl);
    par_start(z->env->par, &z->pb, b->n, job_run, b);
    z->busy = true;
    z->fill = 0;
    if (z->nb == 1) {
        par_finish(&z->pb);
        z->busy = false;
        ret = place_all(q, b);
        b->first += b->n;
        return ret;
    }
    /* The one before is placed, then filled next. */
    if (placing && (ret = place_all(q, prev)) != G_OK)
        return ret;
    prev->first = b->first + b->n;
    z->cur = !z->cur;
    return G_OK;
}

/* [off, off + len) of the virtual disk, from src (NULL: zeros), into the
 * batch being filled; full batches go out. */
static int feed(struct qcow2_w *q, uint64_t off, const uint8_t *src,
                uint64_t len)
{
    struct qcow2_z *z = q->z;
    const uint64_t cap = z->batch * q->cl;
    int ret;

    while (len) {
        struct qcow2_z_batch *b = &z->b[z->cur];
        uint64_t at = off - b->first * q->cl;
        uint64_t n = cap - at < len ? cap - at : len;
        if (src) {
            memcpy(b->in + at, src, n);
            src += n;
        } else {
            memset(b->in + at, 0, n);
        }
        z->fill = at + n;
        off += n;
        len -= n;
        if (z->fill == cap && (ret = rotate(q)) != G_OK)
            return ret;
    }
    return G_OK;
}

int qcow2_z_write(struct qcow2_w *q, uint64_t off, const void *buf,
                  uint64_t len)
{
    return feed(q, off, buf, len);
}

/* Zeros. Whole clusters of them stay unallocated with -S N: they are
 * skipped, not compressed (a large hole costs nothing); the batch being
 * filled goes out short if they interrupt it. */
int qcow2_z_zero(struct qcow2_w *q, uint64_t off, uint64_t len)
{
    struct qcow2_z *z = q->z;
    uint64_t head = (q->cl - off % q->cl) % q->cl, whole;
    int ret;

    if (!z->sparse || len - (head < len ? head : len) < q->cl)
        return feed(q, off, NULL, len);
    if (head && (ret = feed(q, off, NULL, head)) != G_OK)
        return ret;
    off += head;
    len -= head;
    whole = len / q->cl;
    if (z->fill && (ret = rotate(q)) != G_OK)
        return ret;
    z->b[z->cur].first += whole;
    off += whole * q->cl;
    len -= whole * q->cl;
    return len ? feed(q, off, NULL, len) : G_OK;
}

/* The last cluster padded with zeros, the last batches, the last write. */
int qcow2_z_finish(struct qcow2_w *q)
{
    struct qcow2_z *z = q->z;
    const struct qcow2_z_batch *b = &z->b[z->cur];
    uint64_t end = q->clusters * q->cl, pos = b->first * q->cl + z->fill;
    int ret;

    if ((pos < end && (ret = feed(q, pos, NULL, end - pos)) != G_OK) ||
        (z->fill && (ret = rotate(q)) != G_OK))
        return ret;
    if (z->busy) {
        par_finish(&z->pb);
        z->busy = false;
        if ((ret = place_all(q, &z->b[!z->cur])) != G_OK)
            return ret;
    }
    return stage_flush(q);
}
