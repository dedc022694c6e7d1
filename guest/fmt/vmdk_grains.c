/*
 * vmdk grains taken whole: streamOptimized's compressed grains, and -c on
 * monolithicSparse. qemu-img convert writes these outputs a grain at a
 * time (measured, docs/format-coverage.md):
 *  - every grain with a non-zero byte is stored whole, zeros included; an
 *    all-zero grain stays unallocated unless the output is dense (-S 0),
 *    however short -S is;
 *  - streamOptimized: a grain is a 12-byte marker (its first sector, u64;
 *    the stream's length, u32) and zlib's compress() of the grain's bytes
 *    (only those inside the disk for the last grain), padded with zeros
 *    to a sector; the next grain follows in the next sector, and the file
 *    ends at least 128 sectors past the last grain's first (qemu allocates
 *    a whole grain before it writes the compressed one into it);
 *  - -c on monolithicSparse: the grains are stored plain (64 KiB, the last
 *    one padded with zeros), exactly as without -c.
 *
 * The engine's writes and zero runs are gathered into the grain slots of
 * a batch; a full batch is handed to the worker vCPU to deflate
 * (par_start: each job touches only its slot and its vCPU's compressor)
 * while the main vCPU gathers the next batch, reading the input; when
 * that one is full too, the main vCPU deflates what the worker has not
 * claimed (par_finish), packs the grains sector after sector and writes
 * them with one host write, their table entries recorded in order. Memory
 * is two batches, whatever the image size.
 */
#include <zlib.h>

#include "vmdk_write.h"
#include "deflate.h"
#include "../rt/rt.h"

/* Grains of one batch (2 MiB of input): fewer batches mean fewer times
 * the vCPUs wait for each other, which costs most when the host is busy
 * (measured: 16 grains were up to 30% slower under load). */
#define BATCH 32u
/* The 12-byte grain marker before each compressed grain. */
#define MARKER 12u
/* compress()'s stream is a raw deflate stream between a 2-byte zlib header
 * (78 9c: deflate, 32 KiB window, the default level) and the adler32 of
 * the data, big-endian. */
#define ZHEAD 2u
#define ZTAIL 4u
#define Z_WINDOW_BITS 15 /* compress()'s window and memory level */
#define Z_MEM_LEVEL 8
/* The most one stored grain takes: marker and zlib's bound, in whole
 * sectors (129). */
#define SLOT_OUT                                                              \
    (output_div_up(MARKER + output_deflate_bound(VMDK_W_GRAIN), VMDK_SECTOR) * \
     VMDK_SECTOR)
/* A grain table entry is 32 bits, and qemu fails a grain whose 128
 * sectors would end past sector 2^32 (writers.md; output_bound.h). */
#define SECTOR_LIMIT (1ull << 32)

struct slot {
    uint64_t grain;
    uint64_t len;   /* bytes of the disk in it */
    uint64_t csize; /* its zlib stream's length; 0: it did not fit */
};

/* Grains gathered, then deflated and put out together. */
struct batch {
    uint8_t *src; /* BATCH grains as gathered, I/O area */
    uint8_t *dst; /* BATCH stored grains (stream), I/O area */
    struct slot slot[BATCH];
    uint32_t n;   /* complete grains in slots 0 .. n-1 */
    struct fmt_deflate **z; /* the vCPUs' compressors */
};

struct vmdk_grains {
    bool skip_zero;  /* sparse convert: all-zero grains stay out */
    struct batch b[2];
    uint32_t cur_b;  /* the batch being gathered */
    bool busy;       /* the other one is being deflated (pb) */
    struct par_batch pb;
    uint64_t cur;    /* the grain being gathered in the next slot, or NONE */
    uint64_t fill;   /* its bytes received so far */
    bool cur_data;   /* some came from write(): they may be non-zero */
    uint64_t end;    /* sector the file ends at, after the last grain */
    struct fmt_deflate *z[PAR_WORKERS_MAX]; /* one per vCPU */
};

/* One grain of the batch deflated into its own output slot, marker and
 * zero padding included. Runs on any vCPU: touches only its slot. */
static void deflate_job(void *ctx, uint32_t item, uint32_t worker)
{
    struct batch *b = ctx;
    struct slot *sl = &b->slot[item];
    const uint8_t *src = b->src + (uint64_t)item * VMDK_W_GRAIN;
    uint8_t *out = b->dst + (uint64_t)item * SLOT_OUT;
    size_t c = fmt_deflate_try(b->z[worker], src, (size_t)sl->len,
                               out + MARKER + ZHEAD,
                               SLOT_OUT - MARKER - ZHEAD - ZTAIL);

    sl->csize = 0;
    if (c == 0)
        return;
    out[MARKER] = 0x78;
    out[MARKER + 1] = 0x9c;
    put_be32(out + MARKER + ZHEAD + c,
             (uint32_t)adler32(adler32(0, NULL, 0), src, (uInt)sl->len));
    c += ZHEAD + ZTAIL;
    sl->csize = c;
    put_le64(out, sl->grain * OUTPUT_VMDK_GRAIN_SECTORS);
    put_le32(out + 8, (uint32_t)c);
    uint64_t used = MARKER + c;
    memset(out + used, 0,
           (size_t)(output_div_up(used, VMDK_SECTOR) * VMDK_SECTOR - used));
}

static int too_far(const struct fmt_writer *w, uint64_t g, uint64_t sector)
{
    return g_fail(w->env->err, G_ERANGE,
                  "vmdk: grain %llu would be stored at sector %llu, past "
                  "what a 32-bit grain table entry can address (qemu-img "
                  "fails this write too)",
                  (unsigned long long)g, (unsigned long long)sector);
}

/* Plain grains (-c on monolithicSparse) go out as they are. */
static int put_plain(struct fmt_writer *w, struct batch *b)
{
    struct vmdk_w *s = w->priv;
    int ret;

    /* The size cap keeps every plain grain within the entries. */
    for (uint32_t i = 0; i < b->n; i++)
        if ((ret = vmdk_w_gt_set(w, b->slot[i].grain,
                                 s->next_sector +
                                     i * OUTPUT_VMDK_GRAIN_SECTORS)) != G_OK)
            return ret;
    if ((ret = fmt_out_write(w, s->next_sector * VMDK_SECTOR, b->src,
                             b->n * VMDK_W_GRAIN)) != G_OK)
        return ret;
    s->next_sector += b->n * OUTPUT_VMDK_GRAIN_SECTORS;
    s->gr->end = s->next_sector;
    b->n = 0;
    return G_OK;
}

/* A deflated batch goes out after the grains before it. */
static int put_deflated(struct fmt_writer *w, struct batch *b)
{
    struct vmdk_w *s = w->priv;
    uint64_t pos = 0, sector = 0;
    int ret;

    for (uint32_t i = 0; i < b->n; i++) {
        const struct slot *sl = &b->slot[i];
        if (sl->csize == 0)
            return g_fail(w->env->err, G_EINVAL,
                          "vmdk: grain %llu does not compress into %llu "
                          "bytes (writer bug)",
                          (unsigned long long)sl->grain,
                          (unsigned long long)SLOT_OUT);
        uint64_t bytes = output_div_up(MARKER + sl->csize, VMDK_SECTOR) *
                         VMDK_SECTOR;
        sector = s->next_sector + pos / VMDK_SECTOR;
        if (sector + OUTPUT_VMDK_GRAIN_SECTORS > SECTOR_LIMIT)
            return too_far(w, sl->grain, sector);
        /* Pack: each grain starts in the sector after the one before. */
        if (pos != i * SLOT_OUT)
            memmove(b->dst + pos, b->dst + i * SLOT_OUT, (size_t)bytes);
        if ((ret = vmdk_w_gt_set(w, sl->grain, sector)) != G_OK)
            return ret;
        pos += bytes;
    }
    if ((ret = fmt_out_write(w, s->next_sector * VMDK_SECTOR, b->dst,
                             pos)) != G_OK)
        return ret;
    s->next_sector += pos / VMDK_SECTOR;
    s->gr->end = sector + OUTPUT_VMDK_GRAIN_SECTORS > s->next_sector
                     ? sector + OUTPUT_VMDK_GRAIN_SECTORS
                     : s->next_sector;
    b->n = 0;
    return G_OK;
}

/* The batch being deflated, if any, finished and put out. */
static int settle(struct fmt_writer *w)
{
    struct vmdk_grains *g = ((struct vmdk_w *)w->priv)->gr;

    if (!g->busy)
        return G_OK;
    g->busy = false;
    par_finish(&g->pb);
    return put_deflated(w, &g->b[g->cur_b ^ 1]);
}

/* The batch gathered goes to be deflated (plain: out) and the other one
 * is gathered next. */
static int flush(struct fmt_writer *w)
{
    struct vmdk_w *s = w->priv;
    struct vmdk_grains *g = s->gr;
    struct batch *b = &g->b[g->cur_b];
    int ret;

    if (b->n == 0)
        return G_OK;
    if (!s->stream)
        return put_plain(w, b);
    if ((ret = settle(w)) != G_OK)
        return ret;
    par_start(w->env->par, &g->pb, b->n, deflate_job, b);
    g->busy = true;
    g->cur_b ^= 1;
    return G_OK;
}

/* The grain in the next slot is complete: queued, or dropped when all
 * zero. */
static int close_grain(struct fmt_writer *w)
{
    struct vmdk_w *s = w->priv;
    struct vmdk_grains *g = s->gr;
    struct batch *b = &g->b[g->cur_b];
    uint8_t *at = b->src + b->n * VMDK_W_GRAIN;
    uint64_t len = g->fill;

    /* Only zero runs: the engine said they may stay out. */
    if (!g->cur_data || (g->skip_zero && rt_all_zero(at, len))) {
        g->cur = VMDK_W_NONE;
        return G_OK;
    }
    if (!s->stream && len < VMDK_W_GRAIN) /* plain grains are whole */
        memset(at + len, 0, (size_t)(VMDK_W_GRAIN - len));
    b->slot[b->n++] = (struct slot){.grain = g->cur, .len = len};
    g->cur = VMDK_W_NONE;
    return b->n == BATCH ? flush(w) : G_OK;
}

/* [off, off + len) of the disk: the bytes at p, or zeros (p NULL: a zero
 * run the engine says may stay unallocated). */
static int gather(struct fmt_writer *w, uint64_t off, const uint8_t *p,
                  uint64_t len)
{
    struct vmdk_grains *g = ((struct vmdk_w *)w->priv)->gr;
    int ret;

    while (len) {
        uint64_t k = off / VMDK_W_GRAIN, in = off % VMDK_W_GRAIN;
        uint64_t glen = vmdk_w_grain_len(w, k);
        uint64_t n = glen - in < len ? glen - in : len;
        if (g->cur == VMDK_W_NONE && !(p == NULL && in == 0 && n == glen)) {
            g->cur = k;
            g->fill = 0;
            g->cur_data = false;
        }
        if (g->cur != VMDK_W_NONE) {
            /* Writes come in order (fmt.h), so the grain fills from its
             * start, without gaps. */
            if (g->cur != k || g->fill != in)
                return g_fail(w->env->err, G_EINVAL,
                              "vmdk: bytes at offset %llu out of order "
                              "(engine bug)",
                              (unsigned long long)off);
            const struct batch *b = &g->b[g->cur_b];
            uint8_t *at = b->src + b->n * VMDK_W_GRAIN + in;
            if (p)
                memcpy(at, p, (size_t)n);
            else
                memset(at, 0, (size_t)n);
            g->cur_data |= p != NULL;
            g->fill += n;
            if (g->fill == glen && (ret = close_grain(w)) != G_OK)
                return ret;
        }
        off += n;
        len -= n;
        if (p)
            p += n;
    }
    return G_OK;
}

static int grains_write(struct fmt_writer *w, uint64_t off, const void *buf,
                        uint64_t len)
{
    return gather(w, off, buf, len);
}

/* A whole grain of zeros stays out; zeros inside a grain with data are
 * stored with it, as qemu stores the grain whole. */
static int grains_zero(struct fmt_writer *w, uint64_t off, uint64_t len)
{
    return gather(w, off, NULL, len);
}

int vmdk_grains_finish(struct fmt_writer *w, uint64_t *end_sector)
{
    struct vmdk_grains *g = ((struct vmdk_w *)w->priv)->gr;
    int ret;

    /* What the engine left out at the end reads as zeros (fmt.h). */
    if (g->cur != VMDK_W_NONE) {
        const struct batch *b = &g->b[g->cur_b];
        uint64_t glen = vmdk_w_grain_len(w, g->cur);
        memset(b->src + b->n * VMDK_W_GRAIN + g->fill, 0,
               (size_t)(glen - g->fill));
        g->fill = glen;
        if ((ret = close_grain(w)) != G_OK)
            return ret;
    }
    /* The last batch is started, then settled with the one before. */
    if ((ret = flush(w)) != G_OK || (ret = settle(w)) != G_OK)
        return ret;
    *end_sector = g->end;
    return G_OK;
}

int vmdk_grains_open(struct fmt_writer *w)
{
    const struct fmt_env *env = w->env;
    struct vmdk_w *s = w->priv;
    struct vmdk_grains *g = fmt_alloc(env, sizeof *g, VMDK_NAME, "grains");

    if (!g)
        return G_ENOMEM;
    /* -c on monolithicSparse puts each batch out as it fills: one. */
    for (uint32_t i = 0; i < (s->stream ? 2u : 1u); i++) {
        struct batch *b = &g->b[i];
        b->n = 0;
        b->z = g->z;
        b->dst = NULL;
        if (!(b->src = fmt_io_alloc(env, BATCH * VMDK_W_GRAIN, VMDK_NAME,
                                    "grain batch")) ||
            (s->stream &&
             !(b->dst = fmt_io_alloc(env, BATCH * SLOT_OUT, VMDK_NAME,
                                     "compressed grains"))))
            return G_ENOMEM;
    }
    for (uint32_t i = 0; s->stream && i < par_workers(env->par); i++)
        if (!(g->z[i] = fmt_deflate_new(env, Z_WINDOW_BITS, Z_MEM_LEVEL,
                                        VMDK_NAME)))
            return G_ENOMEM;
    /* qemu-img convert leaves all-zero grains out unless -S 0 made the
     * output dense. */
    g->skip_zero = w->opts->sparse_min != 0;
    g->cur_b = 0;
    g->busy = false;
    g->cur = VMDK_W_NONE;
    g->end = s->next_sector;
    s->gr = g;
    w->write = grains_write;
    w->zero = grains_zero;
    w->place = NULL; /* every byte passes through a batch */
    return G_OK;
}
