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

#define VMDK_SECTOR 512u
#define VMDK_NAME "vmdk"

struct vmdk_state;

/* One hosted sparse extent, parsed and validated by vmdk_sparse_open. */
struct vmdk_sparse {
    const struct fmt_env *env;
    uint32_t handle;
    uint64_t file_size;
    uint64_t capacity;     /* bytes of virtual disk this extent holds */
    uint64_t grain_bytes;
    uint64_t overhead;     /* bytes: grains may not start before this */
    uint32_t gtes;         /* entries per grain table */
    uint32_t gd_entries;
    uint8_t *gd;           /* raw little-endian GD (heap) */
    bool compressed, markers, zero_flag;
    /* the embedded descriptor (monolithic images): sector 1 onwards */
    const char *desc;
    uint32_t desc_len;
    /* grain-table cache: slots of gtes * 4 bytes in the I/O area */
    uint8_t *gt_cache;
    uint32_t *gt_tag;      /* GD index + 1 held by each slot, 0 = empty */
    uint32_t gt_next;      /* round-robin victim */
    /* compressed grains */
    struct fmt_inflate *z;
    uint8_t *cbuf;         /* compressed bytes (I/O area) */
    uint64_t cbuf_size;
    uint8_t *gbuf;         /* one decompressed grain (heap) */
    uint64_t gbuf_grain;   /* grain number held + 1, 0 = none */
};

/* What one grain of a sparse extent is. */
enum vmdk_grain_kind {
    VMDK_GRAIN_UNALLOCATED, /* read the parent, or zeros */
    VMDK_GRAIN_ZERO,        /* zeroed grain: zeros, never the parent */
    VMDK_GRAIN_DATA,        /* at `off` in the extent file */
};

/* Parses the sparse extent header of `handle` (already known or required
 * to start with "KDMV"). `embedded` asks for the embedded descriptor. */
int vmdk_sparse_open(const struct fmt_env *env, uint32_t handle,
                     bool embedded, struct vmdk_sparse **out);

/* Reads [off, off + len) of the extent's virtual bytes (within capacity)
 * into buf; unallocated runs go to `hole(st, voff, buf, n)` with voff the
 * extent-relative offset. */
typedef int (*vmdk_hole_fn)(struct vmdk_state *st, uint64_t ext_start,
                            uint64_t voff, uint8_t *buf, uint64_t n);
int vmdk_sparse_read(struct vmdk_sparse *sp, uint64_t off, uint8_t *buf,
                     uint64_t len, vmdk_hole_fn hole, struct vmdk_state *st,
                     uint64_t ext_start);

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

#endif
