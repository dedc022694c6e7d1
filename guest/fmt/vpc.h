/*
 * vpc (VHD, Microsoft "Virtual Hard Disk Image Format Specification" 1.0):
 * state shared by vpc.c (footer, dynamic header, size, parent) and
 * vpc_map.c (BAT, sector bitmaps, the read path); vpc_write.c (the writer)
 * shares the field offsets and the checksum.
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

/* Footer field offsets (spec: "Hard Disk Footer Format"). */
#define FT_COOKIE 0
#define FT_FEATURES 8
#define FT_VERSION 12
#define FT_DATA_OFFSET 16
#define FT_TIMESTAMP 24
#define FT_CREATOR_APP 28
#define FT_CREATOR_VERSION 32
#define FT_CREATOR_OS 36
#define FT_ORIGINAL_SIZE 40
#define FT_CURRENT_SIZE 48
#define FT_CYLINDERS 56
#define FT_HEADS 58
#define FT_SPT 59
#define FT_TYPE 60
#define FT_CHECKSUM 64
#define FT_UUID 68

/* Dynamic disk header field offsets (spec: "Dynamic Disk Header Format"). */
#define DH_COOKIE 0
#define DH_DATA_OFFSET 8
#define DH_TABLE_OFFSET 16
#define DH_VERSION 24
#define DH_MAX_ENTRIES 28
#define DH_BLOCK_SIZE 32
#define DH_CHECKSUM 36

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

/* vpc.c. Spec: one's complement of the byte sum of len bytes, the 4-byte
 * checksum field at ck_off counted as zero (footer and dynamic header). */
uint32_t vpc_checksum(const uint8_t *p, uint32_t len, uint32_t ck_off);

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
