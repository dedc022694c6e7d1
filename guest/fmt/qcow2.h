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

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */

/* incompatible_features bits */
#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1full

/* autoclear_features bits */
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ull << 1)

/* header extension types */
#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_DATA_FILE 0x44415441u

/* L1/L2 entry fields */
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull /* bits 9-55 */
#define QCOW2_FLAG_COPIED (1ull << 63)
#define QCOW2_FLAG_COMPRESSED (1ull << 62)
#define QCOW2_FLAG_ZERO 1ull

/* A slot of the L2 table cache. */
struct qcow2_l2_slot {
    uint64_t off; /* file offset of the table; 0 = empty slot */
    uint8_t *p;   /* cluster_size bytes, I/O area */
};

/* Compressed clusters are stored back to back; reading them in windows of
 * this size costs one host call per window instead of one per cluster. */
#define QCOW2_ZRA (1u << 20)

/* Whole compressed clusters queued for inflating in parallel: the batch is
 * flushed when full, before the read-ahead window moves, and before a read
 * returns. */
#define QCOW2_ZBATCH 256u

struct qcow2_zjob {
    const uint8_t *src; /* inside the read-ahead window */
    uint8_t *dst;       /* cluster_size bytes of the caller's buffer */
    uint64_t csize;
    uint64_t host;      /* for messages */
    int ret;
    struct fmt_inflate_status st;
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

    struct qcow2_l2_slot *l2;
    uint32_t l2_nslots, l2_next;

    bool has_data_file;
    uint32_t data_handle;
    uint64_t data_size;

    struct fmt_reader *backing; /* NULL: unallocated reads zeros */

    /* Compressed clusters: set up at the first one met. */
    struct fmt_inflate *zw[PAR_WORKERS_MAX]; /* one per vCPU */
    struct qcow2_zjob *zjobs; /* QCOW2_ZBATCH */
    uint32_t njobs;
    uint8_t *zin;  /* read-ahead window of compressed data (QCOW2_ZRA) */
    uint64_t zin_off, zin_len; /* file range zin holds; len 0 = empty */
    uint64_t zin_cap;
    uint8_t *zout; /* cluster_size: the decompressed cluster */
    uint64_t zout_desc;
    bool zout_valid;
};

/* Sets up the L1 window and the L2 cache (qcow2_map.c). */
int qcow2_map_init(struct qcow2 *q);

/* fmt_reader.read for qcow2 (qcow2_map.c). */
int qcow2_read(struct fmt_reader *r, uint64_t off, void *buf, uint64_t len);

#endif
