/*
 * Every hard cap on a number that comes from an image, in one place. A
 * field that feeds a shift, an allocation, a loop bound or an offset is
 * checked against these before use; each cap has a test that trips it.
 * Caps are set well above what qemu-img creates and what real images use,
 * and well below what would exhaust the guest's memory.
 */
#ifndef INSTAR_GUEST_FMT_LIMITS_H
#define INSTAR_GUEST_FMT_LIMITS_H

/* Any format */
#define LIMIT_CHAIN_DEPTH 16u            /* backing files / parents */
#define LIMIT_NAME_LEN 4095u             /* backing/extent/parent names */
#define LIMIT_VSIZE (1ull << 56)         /* 64 PiB virtual size */
/* qemu's block layer refuses to read at or past this file offset
 * (2^63 - 2^30), so metadata it must read that ends later fails there. */
#define LIMIT_FILE_END 0x7fffffffc0000000ull

/* qcow2 */
#define LIMIT_QCOW2_CLUSTER_BITS_MIN 9u  /* 512 B */
#define LIMIT_QCOW2_CLUSTER_BITS_MAX 21u /* 2 MiB */
#define LIMIT_QCOW2_L1_BYTES (32ull << 20)
#define LIMIT_QCOW2_REFTABLE_BYTES (8ull << 20) /* qemu's own limit */
#define LIMIT_QCOW2_HEADER_EXT_BYTES 65536u

/* vmdk */
#define LIMIT_VMDK_DESCRIPTOR_BYTES ((1u << 20) - 1) /* what qemu reads */
#define LIMIT_VMDK_EXTENTS 65536u /* qemu-img writes at most ~31000
                                     into a descriptor qemu reads whole */
#define LIMIT_VMDK_GRAIN_SECTORS_MAX 65536u /* 32 MiB grains (qemu: 64 KiB) */
#define LIMIT_VMDK_COMPRESSED_GRAIN_SECTORS 2048u /* 1 MiB, buffered */
#define LIMIT_VMDK_GT_ENTRIES_MAX 512u     /* qemu refuses more too */
#define LIMIT_VMDK_GD_ENTRIES (1u << 25)   /* qemu's "L1 size too big" */

/* vpc */
#define LIMIT_VPC_BLOCK_SIZE_MAX (256u << 20)
#define LIMIT_VPC_BAT_ENTRIES_MAX (1u << 26)
#define LIMIT_VPC_SECTORS_MAX 0xff000000ull /* 2040 GiB, as qemu */
#define LIMIT_VPC_LOCATOR_BYTES 8192u       /* one parent locator path */

/* vhdx */
#define LIMIT_VHDX_BLOCK_SIZE_MAX (256u << 20)
#define LIMIT_VHDX_REGION_ENTRIES 2047u  /* spec: at most 2047 */
#define LIMIT_VHDX_METADATA_ENTRIES 2047u
#define LIMIT_VHDX_VSIZE_MAX (64ull << 40) /* spec: at most 64 TiB */
#define LIMIT_VHDX_LOG_BYTES (256u << 20)  /* scanned once at open */

/* Compressed data (qcow2 clusters, vmdk grains). */
#define LIMIT_COMPRESSED_BYTES (4u << 20)

#endif
