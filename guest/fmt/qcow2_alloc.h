/*
 * Where qemu-img 7.2 puts each cluster of a qcow2 it writes front to back,
 * for every cluster size (512 B .. 2 MiB) with 16-bit refcounts: a model of
 * qemu's cluster allocator, no I/O, so the layout of a multi-GiB output can
 * be checked without writing it (../shared/design/writers.md 2.3, and the
 * convert measurements of docs/format-coverage.md).
 *
 * What the model reproduces, as measured:
 *  - allocations search for free clusters from a moving "free index", at
 *    the end of the file unless something was freed below it;
 *  - a refcount block counts cluster/2 clusters. The first allocation
 *    that reaches a range without one makes it: the block goes to the
 *    first free cluster (usually right after the allocation that reached
 *    the range) and the allocation is searched for again;
 *  - when the block's index does not fit the refcount table, the table
 *    grows: new blocks and a new table (1.5 times what the file needs,
 *    rounded up to whole clusters) go at the next range boundary, the old
 *    table is freed (its clusters, and any gap before the new area, stay
 *    free until a later search finds them);
 *  - a request that starts inside a cluster it already wrote into first
 *    tries to extend that cluster's host range ("at" allocations);
 *  - compressed clusters are packed at byte granularity into host clusters
 *    whose refcount is the number of compressed clusters touching them.
 *
 * The writer learns what happened through a sink: new refcount blocks,
 * refcounts (absolute values, once an allocation is final) and table
 * moves, in the order qemu makes them. The refcount table lives in memory
 * (`entries`, up to `cap` of them); an output needing more is refused.
 */
#ifndef INSTAR_GUEST_FMT_QCOW2_ALLOC_H
#define INSTAR_GUEST_FMT_QCOW2_ALLOC_H

#include <stdbool.h>
#include <stdint.h>

/* Free ranges below the top the model tracks: each table growth frees
 * the old table and may skip a gap, and a growth multiplies the table by
 * 1.5 at least, so a 1 MiB table is reached in a few dozen. */
#define QCOW2_A_HOLES 128u
/* The largest refcount count (16-bit refcounts). */
#define QCOW2_A_REFCOUNT_MAX 0xffffu

struct g_error;

/* Each hook returns G_OK or an error, which the allocation then returns
 * (the model's own "search again" never reaches a caller). */
struct qcow2_alloc_sink {
    void *ctx;
    /* A new refcount block for table entry `index` at host cluster `host`
     * (already in a->entries): zeros until counts arrive. */
    int (*block)(void *ctx, uint64_t index, uint64_t host);
    /* Host clusters [c, c + n) now have refcount v (their blocks exist). */
    int (*counts)(void *ctx, uint64_t c, uint64_t n, uint64_t v);
    /* The table moved to a->rt_host; the old one, at host cluster
     * old_host, keeps its first old_entries entries as they are now in
     * a->entries (qemu does not rewrite a freed table). */
    int (*table_moved)(void *ctx, uint64_t old_host, uint64_t old_entries);
};

struct qcow2_alloc {
    unsigned cluster_bits;
    uint64_t cluster;   /* bytes */
    uint64_t rb;        /* clusters one refcount block counts */
    uint64_t top;       /* host clusters [0, top) were used or skipped */
    uint64_t free_index; /* where the next search starts */
    struct {
        uint64_t start, end;
    } holes[QCOW2_A_HOLES]; /* free clusters below top, sorted */
    unsigned nholes;
    /* Clusters counted so far by an update that then needed a block (so
     * they are not free for that block), [pend_start, pend_end). */
    uint64_t pend_start, pend_end;
    uint64_t *entries;  /* refcount table: host cluster of block k, 0 none */
    uint64_t cap;       /* entries the array holds */
    uint64_t rt_host;   /* the table's first host cluster */
    uint64_t rt_size;   /* its entries (whole clusters of them) */
    uint64_t end;       /* bytes qemu has written: the file's size */
    /* Compressed clusters: the next free byte of the host cluster being
     * filled (0: none) and that cluster's refcount. */
    uint64_t free_byte;
    uint64_t byte_count;
    struct qcow2_alloc_sink sink;
    struct g_error *err;
};

/*
 * The file after qemu-img create: header, refcount table and block 0 at
 * clusters 0, 1 and 2, then the L1 table of l1_entries entries, allocated
 * as qemu allocates it (*l1_host: its first cluster; 0 when l1_entries is
 * 0). entries (cap of them, zeroed by the caller) must hold at least one
 * cluster's worth. Errors name "qcow2".
 */
int qcow2_alloc_init(struct qcow2_alloc *a, unsigned cluster_bits,
                     uint64_t *entries, uint64_t cap, uint64_t l1_entries,
                     const struct qcow2_alloc_sink *sink, struct g_error *err,
                     uint64_t *l1_host);

/* qemu's cluster allocation of `bytes` (whole clusters): *host is the
 * first of the contiguous clusters it took. */
int qcow2_alloc_clusters(struct qcow2_alloc *a, uint64_t bytes,
                         uint64_t *host);

/* qemu's allocation at a given host cluster: takes the free clusters of
 * [host, host + n) that come before the first used one, *got of them. */
int qcow2_alloc_at(struct qcow2_alloc *a, uint64_t host, uint64_t n,
                   uint64_t *got);

/* Room for a compressed cluster of `size` bytes (1 .. cluster - 1):
 * *offset is its byte offset in the file. */
int qcow2_alloc_bytes(struct qcow2_alloc *a, uint64_t size,
                      uint64_t *offset);

/* Refcount blocks a dense 64 KiB-cluster output (every one of `clusters`
 * virtual clusters allocated, no table growth) needs besides block 0,
 * whatever the request size: the file has no holes, so block k exists iff
 * the file passes k * 2 GiB. */
uint64_t qcow2_alloc_dense_refblocks(uint64_t clusters, uint64_t l1_clusters);

#endif
