/* The placement model of qcow2_alloc.h. */
#include "qcow2_alloc.h"

#define NONE UINT64_MAX

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

void qcow2_alloc_init(struct qcow2_alloc *a, uint64_t clusters,
                      uint64_t l1_clusters, uint64_t req)
{
    a->top = QCOW2_W_L1_CLUSTER + l1_clusters;
    a->refblocks = 1;
    a->req = req;
    a->clusters = clusters;
    a->next = 0;
    a->table = NONE;
    a->hint = NONE;
}

/*
 * Puts n clusters at the end of the file: *host is the first, *split how
 * many come before a refcount block placed inside them. The file never
 * has holes, so top <= the first cluster of the first range without a
 * block (b), and one run (at most a table's worth) reaches at most that
 * range.
 */
static bool place(struct qcow2_alloc *a, uint64_t n, bool hinted,
                  uint64_t *host, uint64_t *split, struct qcow2_step *s)
{
    uint64_t t = a->top, b = a->refblocks * QCOW2_W_RB_CLUSTERS;

    *host = t;
    *split = n;
    if (t + n <= b) {
        a->top = t + n;
        return true;
    }
    if (a->refblocks >= QCOW2_W_REFBLOCKS_MAX)
        return false;
    struct qcow2_rb *rb = &s->rb[s->nrb++];
    rb->index = a->refblocks++;
    if (hinted) {
        /* qemu first extends the host range of the cluster the request
         * started in; taking the refcount for b needs the block, which
         * lands on the first free cluster: b itself, as [t, b) already
         * counts as used. The rest of the run then starts afresh after it. */
        rb->host = b;
        *split = b - t;
    } else {
        /* A fresh allocation has already moved qemu's free-cluster search
         * past the run when the block is needed. */
        rb->host = t + n;
    }
    a->top = t + n + 1;
    return true;
}

bool qcow2_alloc_step(struct qcow2_alloc *a, uint64_t c, uint64_t wr_start,
                      uint64_t wr_end, struct qcow2_step *s)
{
    struct qcow2_alloc x = *a;
    uint64_t table = c / QCOW2_W_L2_ENTRIES, start, end, last, split;

    if (x.req) {
        /* The request that writes cluster c's first byte allocates it and
         * every later cluster whose first byte it writes. */
        start = c * QCOW2_W_CLUSTER / x.req * x.req;
        end = start + x.req;
    } else {
        start = wr_start;
        end = wr_end;
    }
    last = div_up(end, QCOW2_W_CLUSTER);
    if (last > (table + 1) * QCOW2_W_L2_ENTRIES)
        last = (table + 1) * QCOW2_W_L2_ENTRIES;
    if (last > x.clusters)
        last = x.clusters;
    if (last <= c)
        last = c + 1;

    s->nrb = 0;
    s->new_table = table != x.table;
    s->table = table;
    s->l2_host = 0;
    if (s->new_table) {
        if (!place(&x, 1, false, &s->l2_host, &split, s))
            return false;
        x.table = table;
    }
    s->first = c;
    s->n = last - c;
    /* The request started inside cluster c - 1, whose host range can be
     * extended only if nothing was placed after it since. */
    bool hinted = start < c * QCOW2_W_CLUSTER && x.hint == x.top;
    if (!place(&x, s->n, hinted, &s->host, &s->split, s))
        return false;
    x.hint = qcow2_step_host(s, s->n - 1) + 1;
    x.next = last;
    *a = x;
    return true;
}

uint64_t qcow2_alloc_dense_refblocks(uint64_t clusters, uint64_t l1_clusters)
{
    uint64_t tables = div_up(clusters, QCOW2_W_L2_ENTRIES);
    uint64_t used = QCOW2_W_L1_CLUSTER + l1_clusters + tables + clusters;

    /* Each extra block counts itself: k blocks cover used + k clusters
     * while used + k <= (k + 1) * QCOW2_W_RB_CLUSTERS. */
    return used > QCOW2_W_RB_CLUSTERS
               ? div_up(used - QCOW2_W_RB_CLUSTERS, QCOW2_W_RB_CLUSTERS - 1)
               : 0;
}
