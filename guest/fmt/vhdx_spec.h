/*
 * VHDX on-disk constants (Microsoft "VHDX Format Specification" v1.0,
 * [MS-VHDX]), shared by the reader (vhdx.c, vhdx_map.c) and the writer
 * (vhdx_write.c).
 *
 *   0        file type identifier ("vhdxfile", creator in UTF-16LE)
 *   64 KiB   header 1   (4 KiB, CRC-32C)   highest valid sequence wins
 *   128 KiB  header 2
 *   192 KiB  region table 1 (64 KiB, CRC-32C): BAT and metadata regions
 *   256 KiB  region table 2 (copy)
 *   >= 1 MiB log, BAT, metadata region, payload and sector bitmap blocks,
 *            all at 1 MiB-aligned offsets
 *
 * The BAT interleaves payload entries with sector bitmap entries: after
 * every chunk_ratio payload entries comes one sector bitmap entry, so
 * payload block b lives at BAT index b + b / chunk_ratio. An entry is a
 * u64: state in bits 0-2, file offset in MiB in bits 20-63.
 */
#ifndef INSTAR_GUEST_FMT_VHDX_SPEC_H
#define INSTAR_GUEST_FMT_VHDX_SPEC_H

#define VHDX_MIB (1ull << 20)

#define VHDX_SIGNATURE "vhdxfile"   /* file type identifier (2.1) */
#define VHDX_CREATOR_OFFSET 8u      /* creator: 256 UTF-16LE units */
#define VHDX_CREATOR_BYTES 512u
#define VHDX_HEADER_SIZE 4096u      /* checksummed header (2.2.2) */
#define VHDX_HEADER1_OFFSET (64u << 10)
#define VHDX_HEADER2_OFFSET (128u << 10)
#define VHDX_RT_SIZE 65536u         /* region table (2.2.3) */
#define VHDX_RT1_OFFSET (192u << 10)
#define VHDX_RT2_OFFSET (256u << 10)
#define VHDX_MT_SIZE 65536u         /* metadata table (2.6.1) */

/* Metadata table entry flags (2.6.1.2). */
#define VHDX_META_IS_USER 1u
#define VHDX_META_IS_VIRTUAL_DISK 2u
#define VHDX_META_IS_REQUIRED 4u

/* File Parameters flags (2.6.2.1), the u32 after the block size. */
#define VHDX_FILE_PARAMS_LEAVE_ALLOCATED 1u
#define VHDX_FILE_PARAMS_HAS_PARENT 2u

/* Payload BAT entry states (spec 2.5.1.1); 5 is the 0.95 draft's value
 * for "unmapped", which qemu also reads as zeros. */
enum vhdx_block_state {
    VHDX_PAYLOAD_NOT_PRESENT = 0,
    VHDX_PAYLOAD_UNDEFINED = 1,
    VHDX_PAYLOAD_ZERO = 2,
    VHDX_PAYLOAD_UNMAPPED = 3,
    VHDX_PAYLOAD_UNMAPPED_V095 = 5,
    VHDX_PAYLOAD_FULLY_PRESENT = 6,
    VHDX_PAYLOAD_PARTIALLY_PRESENT = 7,
};
#define VHDX_SB_PRESENT 6u /* sector bitmap BAT entry state (2.5.1.2) */

/* A GUID as stored on disk (mixed endian: le32, le16, le16, 8 bytes), as
 * an initializer for a uint8_t[16]. */
#define VHDX_GUID(a, b, c, d0, d1, d2, d3, d4, d5, d6, d7)                   \
    {(a) & 0xff, ((a) >> 8) & 0xff, ((a) >> 16) & 0xff, ((a) >> 24) & 0xff, \
     (b) & 0xff, ((b) >> 8) & 0xff, (c) & 0xff, ((c) >> 8) & 0xff,          \
     d0, d1, d2, d3, d4, d5, d6, d7}

/* Regions (2.2.3.1). */
#define VHDX_GUID_BAT                                                        \
    VHDX_GUID(0x2DC27766, 0xF623, 0x4200, 0x9D, 0x64, 0x11, 0x5E, 0x9B,     \
              0xFD, 0x4A, 0x08)
#define VHDX_GUID_METADATA                                                   \
    VHDX_GUID(0x8B7CA206, 0x4790, 0x4B9A, 0xB8, 0xFE, 0x57, 0x5F, 0x05,     \
              0x0F, 0x88, 0x6E)

/* Metadata items (2.6.2). */
#define VHDX_GUID_FILE_PARAMS                                                \
    VHDX_GUID(0xCAA16737, 0xFA36, 0x4D43, 0xB3, 0xB6, 0x33, 0xF0, 0xAA,     \
              0x44, 0xE7, 0x6B)
#define VHDX_GUID_VSIZE                                                      \
    VHDX_GUID(0x2FA54224, 0xCD1B, 0x4876, 0xB2, 0x11, 0x5D, 0xBE, 0xD8,     \
              0x3B, 0xF4, 0xB8)
#define VHDX_GUID_PAGE83                                                     \
    VHDX_GUID(0xBECA12AB, 0xB2E6, 0x4523, 0x93, 0xEF, 0xC3, 0x09, 0xE0,     \
              0x00, 0xC7, 0x46)
#define VHDX_GUID_LSS                                                        \
    VHDX_GUID(0x8141BF1D, 0xA96F, 0x4709, 0xBA, 0x47, 0xF2, 0x33, 0xA8,     \
              0xFA, 0xAB, 0x5F)
#define VHDX_GUID_PSS                                                        \
    VHDX_GUID(0xCDA348C7, 0x445D, 0x4471, 0x9C, 0xC9, 0xE9, 0x88, 0x52,     \
              0x51, 0xC5, 0x56)
#define VHDX_GUID_PARENT_LOCATOR                                             \
    VHDX_GUID(0xA8D35F2D, 0xB30B, 0x454D, 0xAB, 0xF7, 0xD3, 0xD8, 0x48,     \
              0x34, 0xAB, 0x0C)
/* The VHDX parent locator type (2.6.2.6.1). */
#define VHDX_GUID_LOCATOR_VHDX                                               \
    VHDX_GUID(0xB04AEFB7, 0xD19E, 0x4A81, 0xB7, 0x89, 0x25, 0xB8, 0xE9,     \
              0x44, 0x59, 0x13)

#endif
