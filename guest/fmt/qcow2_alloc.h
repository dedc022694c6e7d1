/*
 * Where qemu-img 7.2 puts each cluster of a qcow2 it writes front to back
 * (64 KiB clusters, 16-bit refcounts): a pure model, no I/O, so the layout
 * of a multi-GiB output can be checked without writing it.
 *
 * qemu allocates at the end of the file. Each write request allocates, per
 * L2 table it touches, the L2 table if it is new (one cluster) and then
 * the clusters whose first byte the request writes (a "run"). The file
 * grows without holes, so every host cluster below `top` is in use with
 * refcount 1. The one irregularity is the refcount block for each further
 * 2 GiB of file, placed by the allocation that first reaches that range
 * (measured with qemu-img dd and qemu-io, ../shared/design/writers.md 2.3):
 *
 *   - a run that starts a request, and an L2 table: the block goes right
 *     after the run;
 *   - a run that continues a cluster the same request already wrote into
 *     (the request started mid-cluster and qemu first tries to extend that
 *     cluster's host range): the block takes the first cluster of the new
 *     range, and the run flows around it.
 *
 * So where the blocks go depends on the request size (dd: bs), and the
 * model needs it; with no request size a run is what one write() call
 * newly allocates in one table (how convert will drive it).
 */
#ifndef INSTAR_GUEST_FMT_QCOW2_ALLOC_H
#define INSTAR_GUEST_FMT_QCOW2_ALLOC_H

#include <stdbool.h>
#include <stdint.h>

#include "output_bound.h"

#define QCOW2_W_CLUSTER_BITS OUTPUT_QCOW2_CLUSTER_BITS
#define QCOW2_W_CLUSTER OUTPUT_QCOW2_CLUSTER
/* Entries of one L2 table (and of one L1 cluster). */
#define QCOW2_W_L2_ENTRIES (QCOW2_W_CLUSTER / 8)
/* Clusters one refcount block counts: 2 GiB of file. */
#define QCOW2_W_RB_CLUSTERS OUTPUT_QCOW2_REFBLOCK_CLUSTERS
/* Refcount blocks a one-cluster refcount table lists: 16 TiB of file.
 * qemu grows the table past that (and frees the old one, which later
 * allocations reuse); instar refuses instead. */
#define QCOW2_W_REFBLOCKS_MAX (QCOW2_W_CLUSTER / 8)
/* The fixed clusters qemu's create step writes: header, refcount table,
 * refcount block 0; the L1 table follows. */
#define QCOW2_W_REFTABLE_CLUSTER 1u
#define QCOW2_W_REFBLOCK0_CLUSTER 2u
#define QCOW2_W_L1_CLUSTER 3u

struct qcow2_alloc {
    uint64_t top;       /* host clusters [0, top) are in use */
    uint64_t refblocks; /* refcount blocks placed: ranges 0 .. refblocks-1 */
    uint64_t req;       /* request size in bytes; 0: one write() call */
    uint64_t clusters;  /* virtual clusters */
    uint64_t next;      /* first virtual cluster no run has reached */
    uint64_t table;     /* table of the last L2 placed; UINT64_MAX: none */
    /* Host cluster right after the last data cluster placed (UINT64_MAX:
     * none): where qemu tries to extend a partly written cluster's run. */
    uint64_t hint;
};

/* A refcount block placed by a step. */
struct qcow2_rb {
    uint64_t index; /* refcount table entry: counts host clusters from
                       index * QCOW2_W_RB_CLUSTERS */
    uint64_t host;  /* host cluster */
};

/* What allocating one run did, in qemu's order. */
struct qcow2_step {
    bool new_table;   /* the run's L2 table was placed first, at l2_host */
    uint64_t table;
    uint64_t l2_host; /* host cluster */
    uint64_t first, n; /* the run: virtual clusters [first, first + n) */
    uint64_t host;    /* host cluster of `first` */
    /* Run clusters before a refcount block that sits inside the run (the
     * rest follow it); n when there is none. */
    uint64_t split;
    struct qcow2_rb rb[2];
    unsigned nrb;
};

/* A model for a disk of `clusters` virtual clusters written in requests
 * of req bytes (0: one write() call each), after the create step: header,
 * refcount table, refcount block 0 and l1_clusters clusters of L1. */
void qcow2_alloc_init(struct qcow2_alloc *a, uint64_t clusters,
                      uint64_t l1_clusters, uint64_t req);

/*
 * Allocates the run that starts at virtual cluster c (>= a->next: the
 * first unallocated cluster a write reaches) for a write() call covering
 * bytes [wr_start, wr_end) (used only when a->req is 0). Clusters between
 * a->next and c stay unallocated. False when the file would need more
 * refcount blocks than the table holds; the step is then unchanged.
 */
bool qcow2_alloc_step(struct qcow2_alloc *a, uint64_t c, uint64_t wr_start,
                      uint64_t wr_end, struct qcow2_step *s);

/* Host cluster of run cluster i (0 <= i < s->n). */
static inline uint64_t qcow2_step_host(const struct qcow2_step *s,
                                       uint64_t i)
{
    return s->host + i + (i >= s->split);
}

/* Refcount blocks a dense output (every cluster of `clusters` allocated)
 * needs besides block 0, whatever the request size: the file has no holes,
 * so block k exists iff the file passes k * 2 GiB. */
uint64_t qcow2_alloc_dense_refblocks(uint64_t clusters, uint64_t l1_clusters);

#endif
