/*
 * vmdk internals shared by vmdk.c (descriptor, extents, parent, reads),
 * vmdk_sparse.c (hosted sparse extents, "KDMV") and vmdk_write.c (the
 * monolithicSparse writer).
 *
 * Layout of a hosted sparse extent (VMware Virtual Disk Format 1.1, 512-byte
 * sectors, little-endian):
 *
 *   sector 0        SparseExtentHeader: magic "KDMV", version, flags,
 *                   capacity, grainSize, descriptorOffset/Size,
 *                   numGTEsPerGT, rgdOffset, gdOffset, overHead, ...
 *   descriptor      embedded text descriptor (qemu reads it at sector 1)
 *   GD              grain directory: uint32 sector of each grain table
 *   GTs             grain tables: uint32 sector of each grain
 *                   (0 = unallocated, 1 = zeroed grain when flag bit 2)
 *   grains          data; streamOptimized: a 12-byte marker {lba, size}
 *                   then a zlib stream
 *   footer          streamOptimized with gdOffset = GD_AT_END: footer
 *                   marker, a header copy holding the real gdOffset, and
 *                   an end-of-stream marker in the last three sectors
 */
#ifndef INSTAR_GUEST_FMT_VMDK_H
#define INSTAR_GUEST_FMT_VMDK_H

#include <stdbool.h>
#include <stdint.h>

#include "fmt.h"
#include "inflate.h"
#include "tcache.h"
#include "zbatch.h"

#define VMDK_SECTOR 512u
#define VMDK_NAME "vmdk"

struct vmdk_state;

/* Slots of the table cache one vmdk chain shares: grain tables and grain
 * directory pages of every sparse extent, LIMIT_VMDK_GT_ENTRIES_MAX * 4
 * bytes each (512 KiB in all). */
#define VMDK_TABLE_SLOTS 256u
#define VMDK_TABLE_BYTES (LIMIT_VMDK_GT_ENTRIES_MAX * 4u)

/* What every image and extent of a vmdk chain shares, so that memory does
 * not grow with the number of extents: the table cache and, set up at the
 * first compressed grain, the batcher that inflates grains. */
struct vmdk_shared {
    struct tcache tables;
    struct zbatch zb; /* compressed grains: read in windows, inflated in
                         batches on every vCPU */
};

/* One hosted sparse extent, parsed and validated by vmdk_sparse_open. Kept
 * small: a descriptor may list tens of thousands of them. */
struct vmdk_sparse {
    const struct fmt_env *env;
    uint32_t handle;
    uint32_t gtes;         /* entries per grain table */
    uint64_t file_size;
    uint64_t capacity;     /* bytes of virtual disk this extent holds */
    uint64_t grain_bytes;
    uint64_t overhead;     /* bytes: grains may not start before this */
    uint64_t gd_off;       /* file offset of the grain directory */
    uint32_t gd_entries;
    uint32_t memo_t;       /* the GD entry last looked up (UINT32_MAX: */
    uint32_t memo_gde;     /* none) and its value */
    bool compressed, markers, zero_flag;
    /* the embedded descriptor (monolithic images): sector 1 onwards */
    const char *desc;
    uint32_t desc_len;
};

/* What one grain of a sparse extent is. */
enum vmdk_grain_kind {
    VMDK_GRAIN_UNALLOCATED, /* read the parent, or zeros */
    VMDK_GRAIN_ZERO,        /* zeroed grain: zeros, never the parent */
    VMDK_GRAIN_DATA,        /* at `off` in the extent file */
};

/* Bytes of I/O area vmdk_sparse_open needs as scratch (header, footer);
 * one buffer serves every extent of an image. */
#define VMDK_SPARSE_SCRATCH (4u * VMDK_SECTOR)

/* Parses the sparse extent header of `handle` (already known or required
 * to start with "KDMV"). `embedded` asks for the embedded descriptor. */
int vmdk_sparse_open(const struct fmt_env *env, uint32_t handle,
                     bool embedded, uint8_t *scratch,
                     struct vmdk_sparse **out);

/* Reads [off, off + len) of the extent's virtual bytes (within capacity)
 * into buf; unallocated runs go to `hole(st, voff, buf, n)` with voff the
 * extent-relative offset. */
typedef int (*vmdk_hole_fn)(struct vmdk_state *st, uint64_t ext_start,
                            uint64_t voff, uint8_t *buf, uint64_t n);
int vmdk_sparse_read(struct vmdk_sparse *sp, struct vmdk_shared *sh,
                     uint64_t off, uint8_t *buf, uint64_t len,
                     vmdk_hole_fn hole, struct vmdk_state *st,
                     uint64_t ext_start);

/* Block status of [off, off + len) of the extent (within capacity);
 * *unallocated: the run is not in this image (the parent's, or zeros). */
int vmdk_sparse_extent(struct vmdk_sparse *sp, struct vmdk_shared *sh,
                       uint64_t off, uint64_t len, struct fmt_extent *e,
                       bool *unallocated);

/*
 * The writer (vmdk_write.c): where virtual bytes [off, off + len) of the
 * output go. *file_off is the file offset of off and *run how many bytes
 * from off are contiguous there. With alloc, grains not yet allocated are
 * appended at the file's end (their table entries recorded), and *run is
 * len; without, an unallocated grain gives *file_off = 0 (it reads as
 * zeros) and *run the unallocated bytes. Grains are allocated in virtual
 * order, so off may not lie before the grain allocated last.
 */
int fmt_vmdk_writer_map(struct fmt_writer *w, uint64_t off, uint64_t len,
                        bool alloc, uint64_t *file_off, uint64_t *run);

struct fmt_info;
/* For info: checks every grain table and grain of the extent as a read
 * would (G_ECORRUPT with the first problem, as dd fails), and that none
 * lies inside the header, the grain directory or a grain table (a reason
 * in s; UNCHECKED when the directory is too large to check). */
int vmdk_sparse_check(struct vmdk_sparse *sp, struct vmdk_shared *sh,
                      struct fmt_info *s);

#endif
