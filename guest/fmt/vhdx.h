/*
 * vhdx reader: state shared by the open path (vhdx.c: headers, region
 * table, metadata, log, parent) and the mapping path (vhdx_map.c: BAT,
 * sector bitmaps, reads). The on-disk layout is in vhdx_spec.h.
 */
#ifndef INSTAR_GUEST_FMT_VHDX_H
#define INSTAR_GUEST_FMT_VHDX_H

#include <stdbool.h>
#include <stdint.h>

#include "fmt.h"
#include "vhdx_spec.h"

/* Entries of one BAT page cached at a time (64 KiB). */
#define VHDX_BAT_PAGE_ENTRIES 8192u

/* A file range that payload blocks must not overlap. */
struct vhdx_range {
    uint64_t off, len;
    const char *what;
};

struct vhdx {
    uint64_t vsize;
    uint64_t file_size;
    uint32_t block_size;   /* power of two, 1..256 MiB */
    unsigned block_bits;
    uint32_t lss;          /* logical sector size: 512 or 4096 */
    unsigned lss_bits;
    uint64_t chunk_ratio;  /* payload blocks per sector bitmap block */
    uint64_t nblocks;      /* payload blocks */
    uint64_t bat_entries;
    uint64_t bat_off;
    bool has_parent;
    uint8_t data_write_guid[16];
    struct fmt_reader *parent; /* differencing only */
    const char *parent_name;   /* the locator's path, for info */
    uint32_t parent_name_len;

    /* Metadata the payload must not overlap: the first MiB (identifier,
     * headers, region tables), the log, the BAT and the metadata region. */
    struct vhdx_range reserved[4];
    unsigned nreserved;

    /* One cached BAT page: entries [bat_first, bat_first + bat_count). */
    uint8_t *bat_page;
    uint64_t bat_first, bat_count;
    /* The sector bitmap of one payload block (differencing). */
    uint8_t *bitmap;
    uint64_t bitmap_bytes;
    uint64_t bitmap_block; /* UINT64_MAX: none cached */
};

/* Allocates the caches; call once the geometry above is set. */
int vhdx_map_init(const struct fmt_env *env, struct vhdx *v);

/* The reader's read(): see struct fmt_reader. */
int vhdx_read(struct fmt_reader *r, uint64_t off, void *buf, uint64_t len);
/* The reader's extent(). */
int vhdx_extent(struct fmt_reader *r, uint64_t off, uint64_t len,
                struct fmt_extent *e);

/* For info: every payload block's BAT entry (and sector bitmap entry)
 * checked as a read would check it; G_ECORRUPT with the first problem. */
int vhdx_check_blocks(struct fmt_reader *r);

#endif
