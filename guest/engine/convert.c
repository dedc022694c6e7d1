/*
 * The convert engine: copies a window of a reader's virtual disk into a
 * writer. Where the reader says a range is plain bytes of a file and the
 * writer says where the range goes, the host copies it in the kernel
 * (copy_file_range) and the bytes never enter the guest; zeros are
 * allocated rather than written. Such segments are gathered into lists
 * (merged where they continue each other), so a fragmented image costs
 * one host call per list, not one per cluster. Everything else, and
 * everything after the host says it cannot (CT_ENOTSUP), goes through
 * guest memory in large chunks: one host call per chunk per side,
 * whatever bs is.
 *
 * A sparse copy (convert) must look at every data byte, so it cannot
 * leave them in the kernel. It overlaps instead (ABI 10): the chunk
 * buffer is three slots, used in turn, and the writes of a slot's bytes
 * are write-behinds that the host does while the guest reads and scans
 * the next two.
 */
#include "engine.h"
#include "holes.h"
#include "../rt/rt.h"

struct route {
    struct fmt_reader *r;
    struct fmt_writer *w;
    const struct engine_buf *b;
    uint64_t chunk;
    struct g_error *err;
    bool kernel; /* copies in the host; off after CT_ENOTSUP */
    /* Segments waiting for one copy call, and where each one's bytes are
     * in the virtual input (to do them through memory instead). */
    struct ct_copy_seg *segs;
    uint64_t *seg_in;
    uint32_t nsegs;
    uint64_t seg_bytes;
    /* Sparse outputs (convert): runs of zeros at least sparse_min long
     * go to the writer's zero(); a run is held until its length is known
     * (it may go on in the next chunk or extent). */
    uint64_t sparse_min;
    uint64_t zrun_start, zrun_len;
    bool zrun_hole; /* the run touches a hole of the input or an end */
    const uint8_t *zeros; /* ZEROS_LEN zero bytes, for short runs */
    /* Sparse copies: the chunk buffer as slots (st). Output offset o
     * lives in slot o / slot % slots, at o % slot, so that a 2 MiB request
     * of qemu's stays contiguous in memory; region[k] is the o / slot
     * that slot k holds, waited the last write-behind known done. */
    struct fmt_stable st;
    uint64_t region[FMT_SLOTS_MAX], waited;
    /* Progress (convert -p): output bytes done, and the total. */
    bool progress;
    uint64_t done, total;
    struct holes holes; /* of the files plain extents come from */
};

/* Short zero runs are written from this many zero bytes at a time. */
#define ZEROS_LEN (64u << 10)

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static int host_failed(struct route *c, const char *what, uint64_t off,
                       uint64_t len, int ret)
{
    return g_fail(c->err, ret == CT_ENOSPC ? G_ENOSPC : G_EIO,
                  "%s: %s of %llu bytes at offset %llu failed: %s",
                  c->w->name, what, (unsigned long long)len,
                  (unsigned long long)off, ct_result_str(ret));
}

/* Input [in_off, +len) through guest memory to the writer. */
static int buffered(struct route *c, uint64_t in_off, uint64_t out_off,
                    uint64_t len)
{
    for (uint64_t done = 0; done < len;) {
        uint64_t n = min64(len - done, c->chunk);
        int ret = c->r->read(c->r, in_off + done, c->b->p, n);
        if (ret == G_OK)
            ret = fmt_writer_write(c->w, out_off + done, c->b->p, n);
        if (ret != G_OK)
            return ret;
        done += n;
    }
    return G_OK;
}

/* A run the writer placed at file_off, filled through guest memory: the
 * input's bytes, or zeros when zero is set. */
static int put_direct(struct route *c, uint64_t in_off, uint64_t file_off,
                      uint64_t len, bool zero)
{
    const struct ct_ops *ops = c->w->env->ops;
    if (zero)
        memset(c->b->p, 0, (size_t)min64(len, c->chunk));
    for (uint64_t done = 0; done < len;) {
        uint64_t n = min64(len - done, c->chunk);
        int ret = zero ? G_OK : c->r->read(c->r, in_off + done, c->b->p, n);
        if (ret != G_OK)
            return ret;
        ret = ops->write(ops->ctx, file_off + done, c->b->p, n);
        if (ret != CT_OK)
            return host_failed(c, "write", file_off + done, n, ret);
        done += n;
    }
    return G_OK;
}

/* Sends the pending segments to the host. Whatever it cannot do (after
 * CT_ENOTSUP, from then on) goes through guest memory. */
static int flush_segs(struct route *c)
{
    const struct ct_ops *ops = c->w->env->ops;
    uint64_t done = 0, copied = 0;
    int ret = CT_ENOTSUP;

    if (!c->nsegs)
        return G_OK;
    if (c->kernel)
        ret = ops->copy(ops->ctx, c->segs, c->nsegs, &done, &copied);
    if (ret == CT_ENOTSUP)
        c->kernel = false;
    else if (ret != CT_OK)
        return host_failed(c, "copy", c->segs[done].dst_off + copied,
                           c->segs[done].len - copied, ret);
    for (uint64_t i = done; i < c->nsegs; i++, copied = 0) {
        const struct ct_copy_seg *g = &c->segs[i];
        ret = put_direct(c, c->seg_in[i] + copied, g->dst_off + copied,
                         g->len - copied, g->handle == CT_COPY_ZEROS);
        if (ret != G_OK)
            return ret;
    }
    c->nsegs = 0;
    c->seg_bytes = 0;
    return G_OK;
}

/* Queues "put input [in_off, +n) (file `handle` at src; CT_COPY_ZEROS:
 * zeros) at file_off", merged with the last segment when it continues
 * it. A call carries at most CT_COPY_MAX_LEN bytes. */
static int add_seg(struct route *c, uint32_t handle, uint64_t src,
                   uint64_t in_off, uint64_t file_off, uint64_t n)
{
    int ret;
    while (n) {
        if (!c->kernel)
            return put_direct(c, in_off, file_off, n,
                              handle == CT_COPY_ZEROS);
        if (c->seg_bytes == CT_COPY_MAX_LEN && (ret = flush_segs(c)) != G_OK)
            return ret;
        uint64_t k = min64(n, CT_COPY_MAX_LEN - c->seg_bytes);
        struct ct_copy_seg *last = c->nsegs ? &c->segs[c->nsegs - 1] : NULL;
        if (last && last->handle == handle &&
            last->dst_off + last->len == file_off &&
            c->seg_in[c->nsegs - 1] + last->len == in_off &&
            (handle == CT_COPY_ZEROS || last->src_off + last->len == src)) {
            last->len += k;
        } else if (c->nsegs == CT_COPY_SEGS_MAX) {
            if ((ret = flush_segs(c)) != G_OK)
                return ret;
            continue; /* the list is empty now (or the kernel said no) */
        } else {
            c->segs[c->nsegs] = (struct ct_copy_seg){handle, 0, src,
                                                     file_off, k};
            c->seg_in[c->nsegs++] = in_off;
        }
        c->seg_bytes += k;
        n -= k;
        in_off += k;
        file_off += k;
        if (handle != CT_COPY_ZEROS)
            src += k;
    }
    return G_OK;
}

/* One extent the writer places run by run. */
static int placed(struct route *c, const struct fmt_extent *e,
                  uint64_t in_off, uint64_t out_off)
{
    for (uint64_t done = 0; done < e->len;) {
        uint64_t file_off = 0, n = 0;
        int ret = fmt_writer_place(c->w, out_off + done, e->len - done,
                                   &file_off, &n);
        if (ret != G_OK)
            return ret;
        ret = e->kind == FMT_EXTENT_PLAIN
                  ? add_seg(c, e->handle, e->file_off + done, in_off + done,
                            file_off, n)
                  : add_seg(c, CT_COPY_ZEROS, 0, in_off + done, file_off, n);
        if (ret != G_OK)
            return ret;
        done += n;
    }
    return G_OK;
}

/* The held zero run goes out: unallocated when long enough, or when it
 * touches a hole of the input or an end of the disk (qemu-img convert
 * leaves those out whatever their length); written as zeros otherwise (a
 * short run between data stays data, as in qemu, so that writes are not
 * broken up). */
static int zrun_flush(struct route *c)
{
    uint64_t off = c->zrun_start, len = c->zrun_len;
    int ret = G_OK;

    c->zrun_len = 0;
    if (len >= c->sparse_min || c->zrun_hole || off == 0 ||
        off + len == c->total)
        return len ? fmt_writer_zero(c->w, off, len) : G_OK;
    for (uint64_t done = 0; done < len && ret == G_OK;) {
        uint64_t n = min64(len - done, ZEROS_LEN);
        ret = fmt_writer_write_stable(c->w, &c->st, off + done, c->zeros, n);
        done += n;
    }
    return ret;
}

/* Adds [off, off + n) of zeros (hole: read from nowhere, an input hole)
 * to the held run. */
static int zrun_add(struct route *c, uint64_t off, uint64_t n, bool hole)
{
    int ret;
    if (c->zrun_len && c->zrun_start + c->zrun_len == off) {
        c->zrun_len += n;
        c->zrun_hole |= hole;
        return G_OK;
    }
    if ((ret = zrun_flush(c)) != G_OK)
        return ret;
    c->zrun_start = off;
    c->zrun_len = n;
    c->zrun_hole = hole;
    return G_OK;
}

/* n bytes of data for output offset off: zero sectors join the held zero
 * run, the rest is written (after the held run, in order). */
static int sparse_data(struct route *c, uint64_t off, const uint8_t *p,
                       uint64_t n)
{
    uint64_t i = 0;
    while (i < n) {
        /* Sectors of the output (the last may be short). */
        uint64_t step = min64(WINDOW_SECTOR - (off + i) % WINDOW_SECTOR,
                              n - i);
        bool zero = rt_all_zero(p + i, step);
        uint64_t j = i + step;
        while (j < n) {
            uint64_t k = min64(WINDOW_SECTOR, n - j);
            if (rt_all_zero(p + j, k) != zero)
                break;
            j += k;
        }
        int ret = zero ? zrun_add(c, off + i, j - i, false) : zrun_flush(c);
        if (ret == G_OK && !zero)
            ret = fmt_writer_write_stable(c->w, &c->st, off + i, p + i, j - i);
        if (ret != G_OK)
            return ret;
        i = j;
    }
    return G_OK;
}

/* Slot k, about to hold output region `region`: when it held another
 * one, the write-behinds made from it must be done first. */
static int slot_take(struct route *c, unsigned k, uint64_t region)
{
    const struct ct_ops *ops = c->w->env->ops;
    if (c->region[k] == region)
        return G_OK;
    c->region[k] = region;
    int ret = fmt_writer_release(c->w, c->st.base + k * c->st.slot,
                                 c->st.slot);
    if (ret != G_OK || c->st.ticket[k] <= c->waited)
        return ret;
    ret = ops->wait(ops->ctx, c->st.ticket[k]);
    if (ret != CT_OK)
        return g_fail(c->err, ret == CT_ENOSPC ? G_ENOSPC : G_EIO,
                      "%s: a queued write failed: %s", c->w->name,
                      ct_result_str(ret));
    c->waited = c->st.ticket[k];
    return G_OK;
}

/* Input [in_off, +len) through guest memory, zero runs left out; each
 * piece read into its slot while the host writes the other's. */
static int sparse_buffered(struct route *c, uint64_t in_off,
                           uint64_t out_off, uint64_t len)
{
    for (uint64_t done = 0; done < len;) {
        uint64_t at = out_off + done;
        uint64_t slot = c->st.slot;
        uint64_t n = min64(len - done, slot - at % slot);
        unsigned k = (unsigned)(at / slot % c->st.slots);
        uint8_t *p = c->b->p + k * slot + at % slot;
        int ret = slot_take(c, k, at / slot);
        if (ret == G_OK)
            ret = c->r->read(c->r, in_off + done, p, n);
        if (ret == G_OK)
            ret = sparse_data(c, at, p, n);
        if (ret != G_OK)
            return ret;
        done += n;
    }
    return G_OK;
}

/* One extent of a sparse output: zeros join the held run without being
 * read; everything else is read and scanned (qemu-img convert leaves
 * written zeros unallocated too). */
static int sparse_extent(struct route *c, const struct fmt_extent *e,
                         uint64_t in_off, uint64_t out_off)
{
    if (e->kind == FMT_EXTENT_ZERO)
        return zrun_add(c, out_off, e->len, true);
    return sparse_buffered(c, in_off, out_off, e->len);
}

static int report(struct route *c, uint64_t done)
{
    const struct ct_ops *ops = c->w->env->ops;
    if (!c->progress || done <= c->done)
        return G_OK;
    c->done = done;
    int ret = ops->progress(ops->ctx, done, c->total);
    return ret == CT_OK ? G_OK
                        : g_fail(c->err, G_EIO, "engine: progress refused: %s",
                                 ct_result_str(ret));
}

/* Whether an extent of this kind goes through guest memory. */
static bool buffered_kind(const struct route *c, uint32_t kind)
{
    if (c->sparse_min)
        return kind != FMT_EXTENT_ZERO;
    return kind == FMT_EXTENT_DATA || !c->w->place;
}

/* The reader's extent at in_off, checked. */
static int next_extent(struct route *c, uint64_t in_off, uint64_t len,
                       struct fmt_extent *e)
{
    *e = (struct fmt_extent){FMT_EXTENT_DATA, 0, 0, len};
    int ret = c->r->extent ? c->r->extent(c->r, in_off, len, e) : G_OK;
    if (ret == G_OK && (e->len == 0 || e->len > len))
        return g_fail(c->err, G_EINVAL,
                      "%s: extent of %llu bytes for %llu asked (reader bug)",
                      c->r->name, (unsigned long long)e->len,
                      (unsigned long long)len);
    return ret == G_OK ? holes_refine(&c->holes, e, c->err) : ret;
}

/* Input [in_off, in_off + len) to output [out_off, ...), extent by
 * extent. */
static int route(struct route *c, uint64_t in_off, uint64_t out_off,
                 uint64_t len)
{
    while (len) {
        struct fmt_extent e, more;
        int ret = next_extent(c, in_off, len, &e);
        if (ret != G_OK)
            return ret;
        /* Extents that go through memory are read a chunk at a time, not
         * one by one: compressed clusters then inflate in batches on both
         * vCPUs, and scattered ones cost one read call per run. */
        while (buffered_kind(c, e.kind) && e.len < c->chunk && e.len < len) {
            if ((ret = next_extent(c, in_off + e.len, len - e.len, &more)) !=
                G_OK)
                return ret;
            if (!buffered_kind(c, more.kind))
                break;
            e.len += min64(more.len, c->chunk - e.len);
            e.kind = FMT_EXTENT_DATA;
        }
        if (c->sparse_min)
            ret = sparse_extent(c, &e, in_off, out_off);
        else if (!buffered_kind(c, e.kind))
            ret = placed(c, &e, in_off, out_off);
        else
            ret = buffered(c, in_off, out_off, e.len);
        if (ret == G_OK)
            ret = report(c, out_off + e.len);
        if (ret != G_OK)
            return ret;
        in_off += e.len;
        out_off += e.len;
        len -= e.len;
    }
    return G_OK;
}

int engine_copy(struct fmt_reader *r, struct fmt_writer *w,
                const struct engine_job *job, const struct engine_buf *b,
                struct g_error *err)
{
    struct route c = {.r = r, .w = w, .b = b,
                      .chunk = min64(b->size, ENGINE_CHUNK_MAX), .err = err,
                      .kernel = true, .sparse_min = job->sparse_min,
                      .progress = job->progress, .total = job->out_size};
    uint64_t len = job->end - job->start, out_size = job->out_size;
    int ret;

    holes_init(&c.holes, w->env->ops);
    if (job->end < job->start || out_size < len || out_size - len >= 512 ||
        c.chunk < 512)
        return g_fail(err, G_EINVAL,
                      "engine: bad copy range [%llu, %llu) to %llu bytes",
                      (unsigned long long)job->start,
                      (unsigned long long)job->end,
                      (unsigned long long)out_size);
    c.segs = fmt_alloc(w->env, sizeof *c.segs * CT_COPY_SEGS_MAX, "engine",
                       "copy list");
    c.seg_in = fmt_alloc(w->env, sizeof *c.seg_in * CT_COPY_SEGS_MAX,
                         "engine", "copy list");
    if (c.sparse_min &&
        !(c.zeros = fmt_io_alloc(w->env, ZEROS_LEN, "engine", "zeros")))
        return G_ENOMEM;
    if (!c.segs || !c.seg_in)
        return G_ENOMEM;
    /* Three slots when the host can write behind (a slot's writes then
     * have two pieces' time to finish before it is read over), else one
     * (every write done before the next read). 512-byte multiples, so
     * that the sectors scanned stay the output's. */
    const struct ct_ops *ops = w->env->ops;
    c.st = (struct fmt_stable){b->p, 0, 1, {0}};
    if (ops->write_behind && ops->wait && b->size >= FMT_SLOTS_MAX * 512)
        c.st.slots = FMT_SLOTS_MAX;
    c.st.slot = b->size / c.st.slots / 512 * 512;
    if (c.st.slot > ENGINE_CHUNK_MAX)
        c.st.slot = ENGINE_CHUNK_MAX;
    for (unsigned k = 0; k < FMT_SLOTS_MAX; k++)
        c.region[k] = UINT64_MAX;
    if ((ret = route(&c, job->start, 0, len)) != G_OK ||
        (ret = flush_segs(&c)) != G_OK)
        return ret;
    /* qemu's output size is the window rounded up to 512; the tail is
     * zeros, never input bytes past the window. */
    if (out_size > len) {
        if (c.sparse_min) {
            ret = zrun_add(&c, len, out_size - len, false);
        } else {
            memset(b->p, 0, (size_t)(out_size - len));
            ret = fmt_writer_write(w, len, b->p, out_size - len);
        }
        if (ret != G_OK)
            return ret;
    }
    if ((c.sparse_min && (ret = zrun_flush(&c)) != G_OK) ||
        (ret = report(&c, out_size)) != G_OK)
        return ret;
    uint64_t file_size = 0;
    if ((ret = fmt_writer_finish(w, &file_size)) != G_OK)
        return ret;
    ret = ops->end_output(ops->ctx, file_size);
    if (ret != CT_OK)
        return g_fail(err, ret == CT_ENOSPC ? G_ENOSPC : G_EIO,
                      "%s: cannot finish the output at %llu bytes: %s",
                      w->name, (unsigned long long)file_size,
                      ct_result_str(ret));
    return G_OK;
}
