/*
 * qcow2 reader: state shared by the header code (qcow2.c) and the cluster
 * mapping and read path (qcow2_map.c). Spec: qemu's docs/interop/qcow2.txt.
 *
 *   cluster 0        header | header extensions | backing file name
 *   L1 table         contiguous, l1_size big-endian u64 entries -> L2 tables
 *   L2 table         one cluster of u64 entries (or u64 pairs with extended
 *                    L2 entries) -> data clusters, compressed clusters, zero
 *   data clusters    in the image, or in an external data file
 *
 * open() validates the header and every field the read path relies on;
 * per-entry checks (alignment, EOF, flags) happen when an entry is used.
 */
#ifndef INSTAR_GUEST_FMT_QCOW2_H
#define INSTAR_GUEST_FMT_QCOW2_H

#include <stdbool.h>
#include <stdint.h>

#include "fmt.h"
#include "inflate.h"
#include "zbatch.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */

/* incompatible_features bits */
#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1full

/* compatible_features bits */
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)

/* autoclear_features bits */
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ull << 1)

/* header extension types */
#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_DATA_FILE 0x44415441u
#define QCOW2_EXT_BITMAPS 0x23852875u

/* L1/L2 entry fields */
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull /* bits 9-55 */
#define QCOW2_FLAG_COPIED (1ull << 63)
#define QCOW2_FLAG_COMPRESSED (1ull << 62)
#define QCOW2_FLAG_ZERO 1ull

/* L2 tables are cached in windows of at most this many bytes: a table is
 * a whole cluster, up to 2 MiB, of which a read usually needs a few
 * entries. Tables of clusters up to this size are cached whole. */
#define QCOW2_L2_WINDOW (64u * 1024u)
/* Windows cached for the whole chain: one for each image of the deepest
 * chain, twice over, so images read in turn do not evict each other. */
#define QCOW2_L2_SLOTS 32u

/* A slot of the L2 cache: one window of one image's L2 table. */
struct qcow2_l2_slot {
    uint32_t handle; /* the image's file */
    uint64_t off;    /* file offset of the window; 0 = empty slot */
    uint64_t used;   /* when last used (chain's clock), for eviction */
    uint8_t *p;      /* l2_slot_bytes, I/O area */
};

/*
 * The buffers of the read path, shared by every qcow2 reader of a chain
 * (struct fmt_chain). Sharing is safe because a chain's readers run one
 * at a time, each nested in the read of the image it backs:
 * - L2 windows are keyed by file handle; a table pointer is used only
 *   within one lookup.
 * - Queued jobs may belong to several images (an overlay queues clusters,
 *   then reads its backing file, which queues more). Whoever moves the
 *   read-ahead window flushes the queue first, whoever returns from a read
 *   flushes it, and a failed read drops it: the error ends every read up
 *   the chain. A job's destination is in the buffer of the read that
 *   queued it, and a backing file only ever gets a different part of it.
 * - The read-ahead window and the decompressed cluster are keyed by file
 *   handle and offset.
 */
struct qcow2_chain {
    const struct fmt_env *env;
    uint64_t cs_max; /* largest cluster of the images opened so far */

    struct qcow2_l2_slot *l2; /* QCOW2_L2_SLOTS, at the first lookup */
    uint64_t l2_slot_bytes;   /* the largest window of the chain */
    uint64_t clock;

    /* Compressed clusters of every image: read in windows, inflated in
     * batches on every vCPU (zbatch.h). */
    struct zbatch zb;
};

struct qcow2 {
    const struct fmt_env *env;
    uint32_t handle;
    uint64_t file_size;
    uint64_t vsize;

    uint32_t version;
    uint32_t cluster_bits;
    uint64_t cluster_size;
    bool ext_l2;          /* 128-bit L2 entries with subclusters */
    uint32_t l2_bits;     /* log2 of entries per L2 table */
    uint32_t entry_bytes; /* 8, or 16 with extended L2 entries */
    uint64_t sc_size;     /* subcluster size (extended L2) */

    uint64_t l1_offset;
    uint64_t l1_entries; /* entries that cover vsize (<= l1_size) */
    uint8_t *l1_win;     /* cached window of the L1 table */
    uint64_t l1_win_cap; /* entries the window holds */
    uint64_t l1_win_first, l1_win_count;

    bool has_data_file;
    uint32_t data_handle;
    uint64_t data_size;

    struct fmt_reader *backing; /* NULL: unallocated reads zeros */

    struct qcow2_chain *ch; /* the L2 cache and compressed-cluster buffers */

    /* What `instar info` reports (qcow2_info.c); names point into the
     * head buffer, which lives as long as the reader. */
    struct qcow2_facts {
        uint64_t incompat, compat, autoclear;
        uint32_t refcount_order;
        uint32_t l1_size;           /* entries the L1 table holds */
        uint64_t reftable_offset;
        uint32_t reftable_clusters;
        uint32_t nb_snapshots;
        uint64_t snapshots_offset;
        const char *backing_name, *backing_fmt, *data_name;
        uint32_t backing_name_len, backing_fmt_len, data_name_len;
        const uint8_t *bitmaps;     /* the bitmaps extension, or NULL */
        uint32_t bitmaps_len;
    } facts;
};

/* fmt_reader.info for qcow2 (qcow2_info.c). */
int qcow2_info(struct fmt_reader *r, struct fmt_info *s);
/* For the info scan: the run of virtual disk at off (< vsize) as the read
 * path sees it, every entry checked as a read would (qcow2_map.c). */
struct qcow2_run {
    uint64_t len;
    uint64_t host;  /* RUN_DATA: file offset; compressed: its start */
    uint64_t csize; /* compressed: stored bytes */
    bool data, compressed;
};
int qcow2_scan_run(struct qcow2 *q, uint64_t off, struct qcow2_run *run);
/* File offset of L1 entry idx's L2 table (0: none), checked as a read
 * would check it (qcow2_map.c). */
int qcow2_l2_offset(struct qcow2 *q, uint64_t idx, uint64_t *off);

/* Joins q to its chain's shared buffers and sets up the L1 window
 * (qcow2_map.c). */
int qcow2_map_init(struct qcow2 *q);

/* fmt_reader.read for qcow2 (qcow2_map.c). */
int qcow2_read(struct fmt_reader *r, uint64_t off, void *buf, uint64_t len);
/* fmt_reader.extent for qcow2 (qcow2_map.c). */
int qcow2_extent(struct fmt_reader *r, uint64_t off, uint64_t len,
                 struct fmt_extent *e);

#endif
