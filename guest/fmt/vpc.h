/*
 * vpc (VHD, Microsoft "Virtual Hard Disk Image Format Specification" 1.0):
 * state shared by vpc.c (footer, dynamic header, size, parent) and
 * vpc_map.c (BAT, sector bitmaps, the read path).
 *
 *   fixed:        [ data ........................ ][ footer 512 ]
 *   dynamic/diff: [ footer copy 512 ][ dynamic header 1024 ][ BAT ]
 *                 [ bitmap | block ] ... [ parent locator data ] [ footer ]
 *
 * All fields are big-endian. A BAT entry is the sector number of a block's
 * sector bitmap; the block's data follows the bitmap. Bit s (MSB first) of
 * the bitmap says whether sector s of the block is stored in this file.
 */
#ifndef INSTAR_GUEST_FMT_VPC_H
#define INSTAR_GUEST_FMT_VPC_H

#include <stdbool.h>
#include <stdint.h>

#include "fmt.h"

#define VPC_SECTOR 512u
#define VPC_FOOTER_LEN 512u
#define VPC_DYNHDR_LEN 1024u

/* Footer disk types (spec: "Disk Type"). */
#define VPC_TYPE_FIXED 2u
#define VPC_TYPE_DYNAMIC 3u
#define VPC_TYPE_DIFF 4u

#define VPC_BAT_UNUSED 0xffffffffu
/* BAT entries cached per page: 16 KiB, 8 GiB of disk at 2 MiB blocks. */
#define VPC_BAT_PAGE_ENTRIES 4096u

struct vpc {
    uint32_t type;
    uint64_t file_size;
    uint8_t uuid[16];          /* footer unique id (a child checks it) */

    /* dynamic and differencing disks */
    uint64_t hdr_off;          /* dynamic disk header */
    uint64_t bat_off;
    uint32_t bat_entries;      /* max_table_entries */
    uint32_t block_size;       /* power of two */
    unsigned block_shift;
    uint32_t bitmap_size;      /* bytes, a multiple of 512 */

    uint8_t *bat_page;         /* I/O area: VPC_BAT_PAGE_ENTRIES entries */
    uint32_t bat_first;        /* first entry in bat_page */
    uint32_t bat_count;        /* entries in bat_page; 0 = nothing cached */

    uint8_t *bitmap;           /* I/O area: bitmap_size bytes */
    uint32_t bitmap_block;     /* block whose bitmap is cached */
    bool bitmap_valid;

    struct fmt_reader *parent; /* differencing disks only */
    const char *parent_name;   /* the locator's path, for info */
    uint32_t parent_name_len;
};

/* vpc_map.c */
int vpc_bat_entry(struct fmt_reader *r, uint32_t index, uint32_t *entry);
int vpc_check_bat(struct fmt_reader *r);
int vpc_read_fixed(struct fmt_reader *r, uint64_t off, void *buf,
                   uint64_t len);
int vpc_read_sparse(struct fmt_reader *r, uint64_t off, void *buf,
                    uint64_t len);
int vpc_extent_fixed(struct fmt_reader *r, uint64_t off, uint64_t len,
                     struct fmt_extent *e);
int vpc_extent_sparse(struct fmt_reader *r, uint64_t off, uint64_t len,
                      struct fmt_extent *e);

/* vpc_parent.c */
int vpc_open_parent(const struct fmt_env *env, struct fmt_reader *r,
                    const uint8_t *hdr);

#endif
