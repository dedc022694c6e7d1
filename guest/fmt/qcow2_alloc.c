/* The allocator model of qcow2_alloc.h. */
#include "qcow2_alloc.h"

#include "../err.h"
#include "output_bound.h"

#define NONE UINT64_MAX
/* Internal: a refcount block was made, search again (qemu's EAGAIN). */
#define AGAIN 1

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static uint64_t max64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* --- which clusters are in use ------------------------------------------ */

/* The hole containing c, or the first one after it (nholes: none). */
static unsigned hole_at(const struct qcow2_alloc *a, uint64_t c)
{
    unsigned i = 0;
    while (i < a->nholes && a->holes[i].end <= c)
        i++;
    return i;
}

static bool pending(const struct qcow2_alloc *a, uint64_t c)
{
    return c >= a->pend_start && c < a->pend_end;
}

/* The first free cluster at or after x. */
static uint64_t next_free(const struct qcow2_alloc *a, uint64_t x)
{
    for (;;) {
        if (pending(a, x)) {
            x = a->pend_end;
            continue;
        }
        if (x >= a->top)
            return x;
        unsigned i = hole_at(a, x);
        if (i < a->nholes && a->holes[i].start <= x)
            return x;
        x = i < a->nholes ? a->holes[i].start : a->top;
    }
}

/* The first used cluster after the free cluster x (NONE: none). */
static uint64_t next_used(const struct qcow2_alloc *a, uint64_t x)
{
    uint64_t u = NONE;
    if (x < a->top) {
        unsigned i = hole_at(a, x);
        if (a->holes[i].end < a->top)
            u = a->holes[i].end;
    }
    if (a->pend_start < a->pend_end && a->pend_start > x && a->pend_start < u)
        u = a->pend_start;
    return u;
}

static bool used(const struct qcow2_alloc *a, uint64_t c)
{
    return next_free(a, c) != c;
}

static void add_hole(struct qcow2_alloc *a, uint64_t s, uint64_t e)
{
    unsigned i = hole_at(a, s);
    /* Merge with the neighbours it touches (holes never overlap). */
    if (i > 0 && a->holes[i - 1].end == s) {
        a->holes[i - 1].end = e;
        if (i < a->nholes && a->holes[i].start == e) {
            a->holes[i - 1].end = a->holes[i].end;
            for (unsigned k = i; k + 1 < a->nholes; k++)
                a->holes[k] = a->holes[k + 1];
            a->nholes--;
        }
        return;
    }
    if (i < a->nholes && a->holes[i].start == e) {
        a->holes[i].start = s;
        return;
    }
    for (unsigned k = a->nholes; k > i; k--)
        a->holes[k] = a->holes[k - 1];
    a->holes[i].start = s;
    a->holes[i].end = e;
    a->nholes++;
}

/* Takes [s, e) out of the holes (the part below top). */
static void fill_holes(struct qcow2_alloc *a, uint64_t s, uint64_t e)
{
    for (unsigned i = 0; i < a->nholes;) {
        uint64_t hs = a->holes[i].start, he = a->holes[i].end;
        if (he <= s || hs >= e) {
            i++;
            continue;
        }
        if (hs < s && he > e) { /* split */
            for (unsigned k = a->nholes; k > i + 1; k--)
                a->holes[k] = a->holes[k - 1];
            a->holes[i].end = s;
            a->holes[i + 1].start = e;
            a->holes[i + 1].end = he;
            a->nholes++;
            return;
        }
        if (hs < s) {
            a->holes[i++].end = s;
        } else if (he > e) {
            a->holes[i].start = e;
            i++;
        } else {
            for (unsigned k = i; k + 1 < a->nholes; k++)
                a->holes[k] = a->holes[k + 1];
            a->nholes--;
        }
    }
}

/* Room for the holes a growth may add (checked before it changes
 * anything, so a refused growth leaves the model as it was). */
static bool holes_room(const struct qcow2_alloc *a)
{
    return a->nholes + 3 <= QCOW2_A_HOLES;
}

/* Every allocation starts with room for what it may split or add (a few
 * ranges: holes come from table growths, two each). */
static int check_holes(struct qcow2_alloc *a)
{
    if (a->nholes + 8 <= QCOW2_A_HOLES)
        return G_OK;
    return g_fail(a->err, G_ERANGE,
                  "qcow2: more than %u free ranges in the output (refcount "
                  "table grown too often)",
                  QCOW2_A_HOLES - 8);
}

static void mark_used(struct qcow2_alloc *a, uint64_t s, uint64_t n)
{
    uint64_t e = s + n;
    fill_holes(a, s, e < a->top ? e : a->top);
    if (e > a->top) {
        if (s > a->top)
            add_hole(a, a->top, s);
        a->top = e;
    }
}

/* --- qemu's searches ------------------------------------------------------ */

/* The first n free clusters in a row at or after the free index; the
 * index moves past them (qemu counts them only later). */
static uint64_t search(struct qcow2_alloc *a, uint64_t n)
{
    uint64_t x = a->free_index;
    for (;;) {
        uint64_t s = next_free(a, x), u = next_used(a, s);
        if (u - s >= n) {
            a->free_index = s + n;
            return s;
        }
        x = u;
    }
}

static int emit_counts(struct qcow2_alloc *a, uint64_t c, uint64_t n,
                       uint64_t v)
{
    return n ? a->sink.counts(a->sink.ctx, c, n, v) : G_OK;
}

/* Clusters [s, s + n) now count 1. */
static int commit(struct qcow2_alloc *a, uint64_t s, uint64_t n)
{
    mark_used(a, s, n);
    return emit_counts(a, s, n, 1);
}

static int need_blocks(struct qcow2_alloc *a, uint64_t s, uint64_t n);

static int refused(struct qcow2_alloc *a, uint64_t size)
{
    uint64_t span = a->cap * a->rb * a->cluster;
    bool tib = span >= (1ull << 40);
    return g_fail(a->err, G_ERANGE,
                  "qcow2: the output passes %llu %s of file, more than a "
                  "refcount table of %llu entries counts (it would need "
                  "%llu; qemu-img grows the table further, instar does not)",
                  (unsigned long long)(span >> (tib ? 40 : 30)),
                  tib ? "TiB" : "GiB", (unsigned long long)a->cap,
                  (unsigned long long)size);
}

/*
 * The refcount table is full: a new one, with blocks that count it and
 * themselves, goes at the first range boundary past both the cluster that
 * needed block r and that block (nb), and the old table is freed.
 */
static int grow(struct qcow2_alloc *a, uint64_t need, uint64_t r,
                uint64_t nb, bool self)
{
    uint64_t start = div_up(need, a->rb) * a->rb;
    uint64_t total = output_qcow2_meta_blocks(start, a->cluster, true);
    uint64_t per_cluster = a->cluster / 8;
    uint64_t size = div_up(total + div_up(total, 2), per_cluster) *
                    per_cluster;
    uint64_t old_host = a->rt_host, old_size = a->rt_size;
    uint64_t old_clusters = old_size / per_cluster, next = start;
    int ret;

    if (size > a->cap || !holes_room(a))
        return refused(a, size);
    a->entries[r] = nb;
    if (self)
        mark_used(a, nb, 1);
    a->end = max64(a->end, (nb + 1) * a->cluster);
    for (uint64_t i = start / a->rb; i < total; i++)
        if (!a->entries[i])
            a->entries[i] = next++;
    a->rt_host = next;
    a->rt_size = size;
    next += size / per_cluster;
    mark_used(a, start, next - start);
    a->end = max64(a->end, next * a->cluster);
    if ((ret = a->sink.table_moved(a->sink.ctx, old_host, old_size)) !=
            G_OK ||
        (ret = a->sink.block(a->sink.ctx, r, nb)) != G_OK ||
        (self && (ret = emit_counts(a, nb, 1, 1)) != G_OK))
        return ret;
    for (uint64_t i = start / a->rb; i < total; i++)
        if ((ret = a->sink.block(a->sink.ctx, i, a->entries[i])) != G_OK)
            return ret;
    if ((ret = emit_counts(a, start, a->rt_host + size / per_cluster - start,
                           1)) != G_OK)
        return ret;
    /* The old table is freed, and searches start there again. */
    add_hole(a, old_host, old_host + old_clusters);
    if (a->free_index > old_host)
        a->free_index = old_host;
    ret = emit_counts(a, old_host, old_clusters, 0);
    return ret == G_OK ? AGAIN : ret;
}

/* Makes the missing refcount block of the range cluster ci is in; AGAIN
 * (or an error): what was being allocated must be searched for again. */
static int make_block(struct qcow2_alloc *a, uint64_t ci)
{
    uint64_t r = ci / a->rb, nb = search(a, 1);
    bool self = nb / a->rb == r;
    int ret;

    if (!self) {
        /* The block is counted by the block of its own range (which may
         * have to be made first: then everything is searched again). */
        if ((ret = need_blocks(a, nb, 1)) != G_OK ||
            (ret = commit(a, nb, 1)) != G_OK)
            return ret;
    }
    if (r >= a->rt_size)
        return grow(a, max64(ci, nb) + 1, r, nb, self);
    a->entries[r] = nb;
    if (self)
        mark_used(a, nb, 1);
    a->end = max64(a->end, (nb + 1) * a->cluster);
    if ((ret = a->sink.block(a->sink.ctx, r, nb)) != G_OK ||
        (self && (ret = emit_counts(a, nb, 1, 1)) != G_OK))
        return ret;
    return AGAIN;
}

/* qemu's refcount update of clusters [s, s + n): G_OK when every range
 * they are in has its block; else makes the first missing one and says
 * AGAIN, with the search restarting no later than s. */
static int need_blocks(struct qcow2_alloc *a, uint64_t s, uint64_t n)
{
    for (uint64_t c = s; c < s + n; c = (c / a->rb + 1) * a->rb) {
        uint64_t r = c / a->rb;
        if (r < a->rt_size && a->entries[r])
            continue;
        /* The clusters before c were counted (then uncounted): the new
         * block cannot take them. */
        uint64_t ps = a->pend_start, pe = a->pend_end;
        if (c > s) {
            a->pend_start = s;
            a->pend_end = c;
        }
        int ret = make_block(a, c);
        a->pend_start = ps;
        a->pend_end = pe;
        if (ret == AGAIN && a->free_index > s)
            a->free_index = s;
        return ret;
    }
    return G_OK;
}

/* --- the allocations a writer makes ------------------------------------- */

int qcow2_alloc_clusters(struct qcow2_alloc *a, uint64_t bytes,
                         uint64_t *host)
{
    uint64_t n = div_up(bytes, a->cluster), s;
    int ret;

    if ((ret = check_holes(a)) != G_OK)
        return ret;
    do {
        s = search(a, n);
        ret = need_blocks(a, s, n);
    } while (ret == AGAIN);
    if (ret != G_OK || (ret = commit(a, s, n)) != G_OK)
        return ret;
    a->end = max64(a->end, s * a->cluster + bytes);
    *host = s;
    return G_OK;
}

int qcow2_alloc_at(struct qcow2_alloc *a, uint64_t host, uint64_t n,
                   uint64_t *got)
{
    uint64_t k;
    int ret;

    if ((ret = check_holes(a)) != G_OK)
        return ret;
    do {
        for (k = 0; k < n && !used(a, host + k); k++)
            ;
        ret = need_blocks(a, host, k);
    } while (ret == AGAIN);
    if (ret != G_OK || (ret = commit(a, host, k)) != G_OK)
        return ret;
    if (k)
        a->end = max64(a->end, (host + k) * a->cluster);
    *got = k;
    return G_OK;
}

int qcow2_alloc_bytes(struct qcow2_alloc *a, uint64_t size,
                      uint64_t *offset)
{
    const uint64_t cl = a->cluster;
    uint64_t off = a->free_byte, room;
    int ret;

    if ((ret = check_holes(a)) != G_OK)
        return ret;
    /* A cluster whose refcount is at its maximum takes no more. */
    if (off && a->byte_count == QCOW2_A_REFCOUNT_MAX)
        off = 0;
    room = cl - off % cl;
    do {
        if (!off || room < size) {
            uint64_t nc = search(a, 1) * cl;
            /* Continue across into the next cluster only when it is the
             * one right after. */
            if (!off || div_up(off, cl) * cl != nc) {
                off = nc;
                room = cl;
            } else {
                room += cl;
            }
        }
        ret = need_blocks(a, off / cl, (off + size - 1) / cl - off / cl + 1);
        if (ret == AGAIN)
            off = 0; /* start afresh in a new cluster */
    } while (ret == AGAIN);
    if (ret != G_OK)
        return ret;

    uint64_t c0 = off / cl, c1 = (off + size - 1) / cl;
    uint64_t count = off % cl ? a->byte_count + 1 : 1;
    if (count == 1)
        mark_used(a, c0, 1);
    if ((ret = emit_counts(a, c0, 1, count)) != G_OK)
        return ret;
    if (c1 != c0) {
        mark_used(a, c1, 1);
        count = 1;
        if ((ret = emit_counts(a, c1, 1, 1)) != G_OK)
            return ret;
    }
    a->free_byte = (off + size) % cl ? off + size : 0;
    a->byte_count = count;
    a->end = max64(a->end, off + size);
    *offset = off;
    return G_OK;
}

int qcow2_alloc_init(struct qcow2_alloc *a, unsigned cluster_bits,
                     uint64_t *entries, uint64_t cap, uint64_t l1_entries,
                     const struct qcow2_alloc_sink *sink, struct g_error *err,
                     uint64_t *l1_host)
{
    int ret;

    *a = (struct qcow2_alloc){
        .cluster_bits = cluster_bits, .cluster = 1ull << cluster_bits,
        .rb = 1ull << (cluster_bits - 1), .top = 3, .entries = entries,
        .cap = cap, .rt_host = 1, .rt_size = (1ull << cluster_bits) / 8,
        .end = 3ull << cluster_bits, .sink = *sink, .err = err};
    a->entries[0] = 2;
    *l1_host = 0;
    if ((ret = a->sink.block(a->sink.ctx, 0, 2)) != G_OK ||
        (ret = emit_counts(a, 0, 3, 1)) != G_OK)
        return ret;
    /* qemu writes the L1 table's bytes only: the file may end inside its
     * last cluster. */
    return l1_entries ? qcow2_alloc_clusters(a, 8 * l1_entries, l1_host)
                      : G_OK;
}

uint64_t qcow2_alloc_dense_refblocks(uint64_t clusters, uint64_t l1_clusters)
{
    const uint64_t l2e = 8192, rb = 32768; /* 64 KiB clusters */
    uint64_t tables = div_up(clusters, l2e);
    uint64_t used = 3 + l1_clusters + tables + clusters;

    /* Each extra block counts itself: k blocks cover used + k clusters
     * while used + k <= (k + 1) * rb. */
    return used > rb ? div_up(used - rb, rb - 1) : 0;
}
