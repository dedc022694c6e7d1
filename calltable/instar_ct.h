/*
 * instar call-table ABI: the only thing that crosses the host/guest boundary.
 *
 * The guest issues a call by executing `outl` of the 32-bit guest-physical
 * address of the call's argument struct to port CT_PORT_BASE + call number.
 * The host copies the struct out of guest memory, validates every field,
 * acts, and writes back only `ret` and the fields marked OUT. Results are
 * CT_* codes, never host errno values.
 *
 * Rules: the table is append-only; a changed layout or meaning bumps
 * CT_ABI_VERSION. Every struct has fixed-width fields, explicit padding and
 * asserted size/offsets. This header must compile hosted and freestanding,
 * so it includes only <stdint.h>.
 */
#ifndef INSTAR_CT_H
#define INSTAR_CT_H

/* Constants are usable from the guest's assembly too. */
#ifdef __ASSEMBLER__
#define CT_U(x) x
#define CT_ULL(x) x
#else
#include <stdint.h>
#define CT_U(x) x##u
#define CT_ULL(x) x##ull
#endif

#define CT_ABI_VERSION CT_U(10)

/* ---- Transport ---------------------------------------------------------- */

#define CT_PORT_BASE CT_U(0x500)

/* Call numbers: port = CT_PORT_BASE + number. Append only. */
#define CT_CALL_HELLO 0        /* struct ct_hello */
#define CT_CALL_SIZE 1         /* struct ct_size */
#define CT_CALL_READ 2         /* struct ct_read */
#define CT_CALL_WRITE 3        /* struct ct_write */
#define CT_CALL_BEGIN_OUTPUT 4 /* struct ct_begin_output */
#define CT_CALL_LOG 5          /* struct ct_log */
#define CT_CALL_EXIT 6         /* struct ct_exit */
#define CT_CALL_FAULT 7        /* struct ct_fault, from the CPL0 stub only */
#define CT_CALL_OPEN_BACKING 8 /* struct ct_open_backing (ABI 2) */
#define CT_CALL_WAKE 9         /* struct ct_vcpu_signal, main vCPU (ABI 3) */
#define CT_CALL_PARK 10        /* struct ct_vcpu_signal, worker vCPU (ABI 3) */
#define CT_CALL_END_OUTPUT 11  /* struct ct_end_output (ABI 5) */
#define CT_CALL_COPY 12        /* struct ct_copy (ABI 6) */
#define CT_CALL_INFO 13        /* struct ct_info, info mode only (ABI 7) */
#define CT_CALL_PROGRESS 14    /* struct ct_progress (ABI 8) */
#define CT_CALL_MAP 15         /* struct ct_map (ABI 9) */
#define CT_CALL_WAIT 16        /* struct ct_wait (ABI 10) */
#define CT_CALL_COUNT 17

/* The last component of of= handed to the guest: at most NAME_MAX. */
#define CT_OUT_NAME_MAX 255

/* vCPUs: 0 runs the guest's main; 1 (when the boot info says 2) is a
 * worker that runs only the code the main vCPU hands it and may make no
 * call but PARK (and FAULT from its exception stub). */
#define CT_VCPUS_MAX 2

#ifndef __ASSEMBLER__

/* Result codes written to `ret`. */
enum ct_result {
    CT_OK = 0,
    CT_EINVAL = -1, /* a field is out of range or malformed */
    CT_EBADH = -2,  /* unknown handle */
    CT_EIO = -3,    /* the host's read or write failed */
    CT_ERANGE = -4, /* offset/length outside what the call allows */
    CT_ESTATE = -5, /* call not valid now (e.g. write before begin_output) */
    CT_EPERM = -6,  /* the host refuses (policy) */
    CT_ELIMIT = -7, /* a host limit is reached: open files (ABI 4) */
    CT_ENOSPC = -8, /* the output's file system is full or over quota
                       (ABI 5) */
    CT_ENOTSUP = -9 /* the host cannot do this here (copy between file
                       systems, no fallocate): use read and write (ABI 6) */
};

/* Handles the host hands out. The output is written only via CT_CALL_WRITE. */
enum ct_handle {
    CT_HANDLE_INPUT = 0,
    CT_HANDLE_FIRST_BACKING = 1 /* then one per file open_backing granted */
};

/* Image formats, used in boot info and begin_output. */
enum ct_format {
    CT_FMT_PROBE = 0, /* input only: detect from content */
    CT_FMT_RAW = 1,
    CT_FMT_QCOW2 = 2,
    CT_FMT_VMDK = 3,
    CT_FMT_VPC = 4,
    CT_FMT_VHDX = 5,
    CT_FMT_COUNT = 6
};

/* Guest exit statuses (struct ct_exit.status). */
enum ct_status {
    CT_STATUS_OK = 0,
    CT_STATUS_FAIL = 1 /* message says why */
};

/* ---- Argument structs (IN: guest -> host, OUT: host -> guest) ----------- */

struct ct_hello {
    uint32_t abi_version; /* IN: CT_ABI_VERSION the guest was built with */
    int32_t ret;          /* OUT */
};

struct ct_size {
    uint32_t handle; /* IN */
    int32_t ret;     /* OUT */
    uint64_t size;   /* OUT: file size in bytes */
};

/*
 * Where a granted file's data and holes are (lseek SEEK_DATA/SEEK_HOLE):
 * from `offset`, the file has a hole up to `data` and data from `data` up
 * to `hole`; offset <= data <= hole <= the file size the host reported.
 * data == hole == size: nothing but holes from offset to the end. A file
 * system that cannot say answers as if the whole file were data.
 * qemu-img convert skips the holes of a raw input the same way.
 */
struct ct_map {
    uint32_t handle; /* IN */
    int32_t ret;     /* OUT */
    uint64_t offset; /* IN: <= the file size */
    uint64_t data;   /* OUT */
    uint64_t hole;   /* OUT */
};

/* Reads up to len bytes at offset into [gpa, gpa+len), which must lie in
 * the I/O area. Bytes past the end of the file are not touched; nread says
 * how many were read. len <= CT_IO_MAX_LEN. */
struct ct_read {
    uint32_t handle; /* IN */
    int32_t ret;     /* OUT */
    uint64_t offset; /* IN */
    uint64_t gpa;    /* IN */
    uint64_t len;    /* IN */
    uint64_t nread;  /* OUT */
};

/* Writes len bytes from [gpa, gpa+len) (in the I/O area) to the output at
 * offset. Only after begin_output; [offset, offset+len) must lie within the
 * output limit the host derived from begin_output.
 *
 * With CT_WRITE_BEHIND (ABI 10) the host checks the call as always, queues
 * the write and returns at once, so the guest's next read overlaps it; the
 * guest must leave the bytes unchanged until a WAIT covers the write.
 * Write-behinds are numbered from 1 in the order they are made, and done
 * in that order. Every other output call (a plain write that overlaps a
 * queued one, copy, end_output, exit) first waits for the queue, so the
 * file sees the writes in the order the guest made them. A queued write
 * that fails makes the next WAIT, write or copy fail (CT_EIO or
 * CT_ENOSPC); the queue's later writes are dropped. */
#define CT_WRITE_BEHIND CT_U(1)

struct ct_write {
    uint32_t flags;  /* IN: 0 or CT_WRITE_BEHIND (ABI 10; was reserved) */
    int32_t ret;     /* OUT */
    uint64_t offset; /* IN */
    uint64_t gpa;    /* IN */
    uint64_t len;    /* IN */
};

/* Waits until the first `ticket` write-behinds are done (ABI 10); ticket
 * must not exceed the number made. ret: CT_OK, or the first failure of
 * any write-behind so far. The host also stores the number done (failed
 * and dropped ones included) at CT_BEHIND_DONE_GPA as each one ends, so
 * the guest calls wait only when that is short of the ticket; a failure
 * then shows at the next wait, write, copy or end_output. */
struct ct_wait {
    uint32_t reserved0; /* IN: must be 0 */
    int32_t ret;        /* OUT */
    uint64_t ticket;    /* IN */
};

/* Declares the input's virtual size once, before any write. The host runs
 * the same window math (shared/window.h), derives the output's virtual
 * size and the largest file the format may need (shared/output_bound.h),
 * and from then on refuses every write past that bound. */
struct ct_begin_output {
    uint32_t format;       /* IN: must equal the boot info's out_format */
    int32_t ret;           /* OUT */
    uint64_t virtual_size; /* IN: input virtual size in bytes */
};

struct ct_log {
    uint32_t reserved0; /* IN: must be 0 */
    int32_t ret;        /* OUT */
    uint64_t gpa;       /* IN: message bytes (anywhere in guest RAM) */
    uint64_t len;       /* IN: <= CT_MSG_MAX */
};

/* Asks for a file an image refers to (backing file, extent, parent,
 * external data file) by the name stored in the image. The host resolves
 * it relative to the parent image, applies its policy (allowed
 * directories, depth, cycles) and answers a new read-only handle or
 * CT_EPERM, whatever the reason. */
struct ct_open_backing {
    uint32_t parent;   /* IN: handle of the image that names the file */
    int32_t ret;       /* OUT */
    uint64_t name_gpa; /* IN: the name's bytes (anywhere in guest RAM) */
    uint32_t name_len; /* IN: 1 .. CT_NAME_MAX, no NUL bytes */
    uint32_t handle;   /* OUT */
};

/*
 * WAKE (main vCPU) posts one wake-up to the worker vCPU, which does not
 * run at all before the first one; PARK (worker vCPU) sleeps until a
 * wake-up is posted and consumes it. Wake-ups do not count: one pending
 * wake-up absorbs the next. Guests park only after checking for work, so
 * an early return is harmless.
 */
struct ct_vcpu_signal {
    uint32_t reserved0; /* IN: must be 0 */
    int32_t ret;        /* OUT */
};

/* Declares the output finished at file_size bytes, once, after the last
 * write: the host sets the file to that size (the writer may leave holes
 * at the end, as qemu does). file_size must cover every byte written and
 * stay within the bound; raw output must be exactly the window's size. */
struct ct_end_output {
    uint32_t reserved0; /* IN: must be 0 */
    int32_t ret;        /* OUT */
    uint64_t file_size; /* IN */
};

/*
 * Fills output ranges in the host kernel, a list of segments per call so
 * that a fragmented image costs one exit per list, not one per cluster:
 * a segment copies len bytes of file `handle` at src_off to the output at
 * dst_off (copy_file_range: no user buffer, a reflink where the file
 * system shares extents), or with handle CT_COPY_ZEROS allocates
 * [dst_off, dst_off + len) as zeros without writing them (fallocate).
 * Only between begin_output and end_output. The host checks the whole
 * list before acting: each source range inside its file, each output
 * range inside the bound, at most CT_COPY_MAX_LEN bytes in all. It does
 * the segments in order and stops at the first failure: `done` segments
 * are complete and `copied` bytes of the next one. CT_ENOTSUP says the
 * kernel cannot here (another file system on older kernels, a block
 * device, no fallocate): the guest does the rest through read and write,
 * for the rest of the run.
 */
#define CT_COPY_ZEROS CT_U(0xffffffff)
#define CT_COPY_SEGS_MAX CT_U(1024)

struct ct_copy_seg {
    uint32_t handle;    /* a granted file, or CT_COPY_ZEROS */
    uint32_t reserved0; /* 0 */
    uint64_t src_off;   /* ignored for CT_COPY_ZEROS */
    uint64_t dst_off;
    uint64_t len;       /* >= 1 */
};

struct ct_copy {
    uint32_t count;    /* IN: 1 .. CT_COPY_SEGS_MAX */
    int32_t ret;       /* OUT */
    uint64_t segs_gpa; /* IN: count struct ct_copy_seg (anywhere in RAM) */
    uint64_t done;     /* OUT: segments completed */
    uint64_t copied;   /* OUT: bytes of segment `done` completed */
};

/* Ends the run. status CT_STATUS_OK means the output is complete: it is
 * accepted only after end_output. */
struct ct_exit {
    uint32_t status;  /* IN: enum ct_status */
    int32_t ret;      /* OUT: never written (the VM is gone) */
    uint64_t msg_gpa; /* IN: optional message (len 0 for none) */
    uint64_t msg_len; /* IN: <= CT_MSG_MAX */
};

/* Written by the guest's CPL0 exception stub at CT_FAULT_GPA. */
struct ct_fault {
    uint64_t vector;
    uint64_t error_code;
    uint64_t rip;
    uint64_t cr2;
};

/*
 * The shape of the output (convert's -o and -c; all zero for dd: qemu-img
 * create's defaults). The host derives the output bound from the same
 * values (shared/output_bound.h), so the guest cannot make the bound
 * larger by asking for another shape.
 */
struct ct_output_params {
    uint32_t cluster_bits; /* qcow2: 9 .. 21; 0: 16 (64 KiB) */
    uint32_t version;      /* qcow2: 2 (compat=0.10) or 3; 0: 3 */
    uint32_t subformat;    /* enum ct_subformat */
    uint32_t adapter;      /* vmdk: enum ct_vmdk_adapter */
    uint32_t block_size;   /* vhdx: 1 .. 256 MiB, a power of two; 0: qemu's
                              pick for the size */
    uint32_t flags;        /* CT_OUT_COMPRESS | CT_OUT_FORCE_SIZE */
};

enum ct_subformat {
    CT_SUB_DEFAULT = 0,       /* qemu-img create's default */
    CT_SUB_DYNAMIC = 0,       /* vpc, vhdx */
    CT_SUB_FIXED = 1,         /* vpc, vhdx */
    CT_SUB_MONOLITHIC_SPARSE = 0, /* vmdk */
    CT_SUB_STREAM_OPTIMIZED = 2   /* vmdk */
};

enum ct_vmdk_adapter {
    CT_VMDK_IDE = 0,
    CT_VMDK_BUSLOGIC = 1,
    CT_VMDK_LSILOGIC = 2,
    CT_VMDK_LEGACY_ESX = 3
};

/* qcow2: compressed clusters (-c). */
#define CT_OUT_COMPRESS CT_U(1)
/* vpc: the exact size, not the CHS geometry's (force_size=on). */
#define CT_OUT_FORCE_SIZE CT_U(2)

/*
 * The guest's progress through the copy (convert -p): `done` of `total`
 * bytes of the virtual disk. The host prints it, at most a few times a
 * second, when the user asked for it; done never goes back and never
 * passes total.
 */
struct ct_progress {
    uint32_t reserved0; /* IN: must be 0 */
    int32_t ret;        /* OUT */
    uint64_t done;      /* IN */
    uint64_t total;     /* IN */
};

/* Host -> guest, written once at CT_BOOTINFO_GPA before the first run. */
struct ct_bootinfo {
    uint32_t abi_version;
    uint32_t in_format;  /* enum ct_format; CT_FMT_PROBE = detect */
    uint32_t out_format; /* enum ct_format, never CT_FMT_PROBE */
    uint32_t flags;      /* CT_BOOT_HAS_COUNT | CT_BOOT_HAS_SKIP */
    uint64_t bs;         /* 1 .. INT32_MAX */
    uint64_t count;      /* valid with CT_BOOT_HAS_COUNT */
    uint64_t skip;       /* valid with CT_BOOT_HAS_SKIP */
    uint64_t io_base;    /* I/O area: the only memory read/write may use */
    uint64_t io_size;
    uint64_t heap_base;
    uint64_t heap_size;
    uint32_t vcpus;      /* 1 .. CT_VCPUS_MAX (ABI 3) */
    uint32_t files_max;  /* handles this run can hold, the input included:
                            1 .. CT_HANDLES_MAX (ABI 4) */
    /* ABI 5: what writers stamp into their outputs. */
    uint64_t unix_time;  /* seconds since 1970 (vpc timestamps) */
    uint8_t entropy[32]; /* random bytes (UUIDs, GUIDs, the vmdk CID) */
    uint32_t out_name_len; /* 0 .. CT_OUT_NAME_MAX */
    uint32_t mode;       /* enum ct_mode (ABI 7; was reserved, 0 = dd) */
    char out_name[CT_OUT_NAME_MAX + 1]; /* the last component of of= as
                                           given (the vmdk extent line) */
    /* ABI 8: how the output is made (convert's -o and -c; dd: zeros). */
    struct ct_output_params out;
    uint64_t sparse_min; /* convert's -S: all-zero runs of this many bytes
                            (aligned) stay unallocated; 0: dense, as dd */
};

#define CT_BOOT_HAS_COUNT CT_U(1)
#define CT_BOOT_HAS_SKIP CT_U(2)
/* The input's name ends in ".dmg": qemu would pick its dmg driver by name
 * for an image no other format claims (ABI 4). */
#define CT_BOOT_INPUT_DMG_NAME CT_U(4)
/* Info mode: open the backing files and parents and describe each image
 * of the chain (--backing-chain) (ABI 7). */
#define CT_BOOT_BACKING_CHAIN CT_U(8)

/* Convert mode: report progress (CT_CALL_PROGRESS) as the copy goes
 * (ABI 8). */
#define CT_BOOT_PROGRESS CT_U(16)

/* What the guest does with the input (boot info `mode`, ABI 7). */
enum ct_mode {
    CT_MODE_DD = 0,     /* copy a window to the output (begin_output ...) */
    CT_MODE_INFO = 1,   /* describe the image through info calls; no output */
    CT_MODE_CONVERT = 2 /* copy the whole image to the output, zeros left
                           unallocated as sparse_min says (ABI 8) */
};

/*
 * Info mode (ABI 7): the guest describes the image as typed records, the
 * host checks them and renders qemu-img info's text and JSON itself, so a
 * subverted guest can state wrong facts but never shape the output.
 *
 * A record is a struct ct_info_rec; a T_STR or T_REASON record is followed
 * by `len` bytes of text (no NUL) and zero padding to a multiple of 8.
 * Records nest: an IMAGE (BEGIN with the image's handle) holds the image's
 * facts, its vmdk EXTENTs (BEGIN with the extent file's handle), qcow2
 * SNAPSHOTs and BITMAPs, and REASONs the image is not safe; END closes the
 * innermost object. Each key has one type and the objects it may appear
 * in (docs/calltable.md); a key appears at most once per object, FORMAT
 * first in an image. The host refuses anything else.
 */
enum ct_info_type {
    CT_INFO_T_BEGIN = 1,  /* opens an object (key IMAGE, EXTENT, ...) */
    CT_INFO_T_END = 2,    /* closes it (key: the same object key) */
    CT_INFO_T_U64 = 3,
    CT_INFO_T_BOOL = 4,   /* value 0 or 1 */
    CT_INFO_T_STR = 5,    /* len bytes of text follow */
    CT_INFO_T_ENUM = 6,   /* value from the key's own table */
    CT_INFO_T_REASON = 7  /* value: enum ct_safety_rule; len bytes of
                             detail follow */
};

enum ct_info_key {
    /* objects */
    CT_INFO_IMAGE = 1,    /* BEGIN value: the image's handle */
    CT_INFO_EXTENT = 2,   /* BEGIN value: the extent file's handle (vmdk) */
    CT_INFO_SNAPSHOT = 3, /* qcow2 internal snapshot */
    CT_INFO_BITMAP = 4,   /* qcow2 persistent dirty bitmap */
    /* image (and some extent) facts */
    CT_INFO_FORMAT = 5,        /* ENUM ct_format (not PROBE) */
    CT_INFO_VIRTUAL_SIZE = 6,  /* U64, image and extent */
    CT_INFO_CLUSTER_SIZE = 7,  /* U64, image and extent */
    CT_INFO_DIRTY = 8,         /* BOOL */
    CT_INFO_BACKING_FILENAME = 9, /* STR as written in the image */
    CT_INFO_BACKING_FORMAT = 10,  /* STR */
    CT_INFO_UNSAFE = 11,       /* REASON: a guest-found safety rule */
    /* qcow2 */
    CT_INFO_QCOW2_COMPAT = 12,       /* ENUM: header version 2 or 3 */
    CT_INFO_QCOW2_COMPRESSION = 13,  /* ENUM: 0 zlib, 1 zstd */
    CT_INFO_QCOW2_LAZY_REFCOUNTS = 14, /* BOOL */
    CT_INFO_QCOW2_REFCOUNT_BITS = 15,  /* U64 */
    CT_INFO_QCOW2_CORRUPT = 16,      /* BOOL */
    CT_INFO_QCOW2_EXTENDED_L2 = 17,  /* BOOL */
    CT_INFO_QCOW2_DATA_FILE = 18,    /* STR */
    CT_INFO_QCOW2_DATA_FILE_RAW = 19, /* BOOL */
    /* vmdk */
    CT_INFO_VMDK_CID = 20,           /* U64 (32 bits) */
    CT_INFO_VMDK_PARENT_CID = 21,    /* U64 (32 bits) */
    CT_INFO_VMDK_CREATE_TYPE = 22,   /* STR */
    CT_INFO_EXTENT_FORMAT = 23,      /* STR: the extent line's type */
    CT_INFO_COMPRESSED = 24,         /* BOOL, extent */
    /* qcow2 snapshot */
    CT_INFO_SNAP_ID = 25,            /* STR */
    CT_INFO_SNAP_NAME = 26,          /* STR */
    CT_INFO_SNAP_VM_STATE_SIZE = 27, /* U64 */
    CT_INFO_SNAP_DATE_SEC = 28,      /* U64 (32 bits) */
    CT_INFO_SNAP_DATE_NSEC = 29,     /* U64 (32 bits) */
    CT_INFO_SNAP_VM_CLOCK_NSEC = 30, /* U64 */
    CT_INFO_SNAP_ICOUNT = 31,        /* U64 */
    /* qcow2 bitmap */
    CT_INFO_BITMAP_NAME = 32,        /* STR */
    CT_INFO_BITMAP_GRANULARITY = 33, /* U64 */
    CT_INFO_BITMAP_FLAGS = 34,       /* U64: bit 0 in-use, bit 1 auto */
    CT_INFO_KEY_COUNT = 35
};

/* Why an image is not safe to hand to a hypervisor or to qemu-img
 * unconfined. The host derives the first group from the facts itself;
 * the guest may report only the second (CT_INFO_UNSAFE). */
enum ct_safety_rule {
    CT_SAFETY_BACKING_FILE = 0,  /* host: a backing file is named */
    CT_SAFETY_DATA_FILE = 1,     /* host: an external data file */
    CT_SAFETY_PARENT = 2,        /* host: a VHD/VHDX parent */
    CT_SAFETY_VMDK_TYPE = 3,     /* host: createType other than
                                    monolithicSparse / streamOptimized */
    CT_SAFETY_VMDK_EXTENT = 4,   /* host: an extent in another file */
    CT_SAFETY_DIRTY = 5,         /* host: dirty flag */
    CT_SAFETY_CORRUPT = 6,       /* host: qcow2 corrupt bit */
    CT_SAFETY_GUEST_FIRST = 7,
    CT_SAFETY_METADATA = 7,      /* metadata outside the file, inside
                                    other metadata, or invalid */
    CT_SAFETY_CONFUSION = 8,     /* the content also matches another
                                    format's signature */
    CT_SAFETY_REFUSED = 9,       /* --backing-chain: the host refused a
                                    file the image refers to */
    CT_SAFETY_UNCHECKED = 10,    /* metadata too large to check */
    CT_SAFETY_COUNT = 11
};

struct ct_info_rec {
    uint16_t key;      /* enum ct_info_key */
    uint8_t type;      /* enum ct_info_type: the key's */
    uint8_t reserved0; /* 0 */
    uint32_t len;      /* STR, REASON: bytes of text that follow; else 0 */
    uint64_t value;
};

/* One batch of whole records; the batches of a run form one stream. */
struct ct_info {
    uint32_t len;   /* IN: CT_INFO_REC_SIZE .. CT_INFO_BATCH_MAX bytes */
    int32_t ret;    /* OUT: CT_ELIMIT when the stream would pass
                       CT_INFO_TOTAL_MAX */
    uint64_t gpa;   /* IN: the records (anywhere in guest RAM) */
};

#endif /* !__ASSEMBLER__ */

/* ---- Guest memory map (guest-physical == guest-virtual) ----------------- */
/*
 * 0x0000_0000  page 0: never mapped (null dereferences fault)
 * 0x0000_1000  page tables (PML4, PDPT, PD, PT for the first 2 MiB)
 * 0x0000_5000  GDT, IDT, TSS
 * 0x0000_8000  boot info
 * 0x0000_9000  fault record (struct ct_fault)
 * 0x0000_a000  FS block (stack-protector canary at %fs:0x28)
 * 0x0000_b000  worker vCPU's TSS
 * 0x0000_c000  write-behinds done (uint64_t, stored by the host; ABI 10)
 * 0x0001_0000  CPL0 exception stack (top at 0x20000)
 * 0x0002_0000  worker vCPU's CPL0 exception stack (top at 0x30000)
 * 0x0003_f000  guard page: never mapped (worker stack overflow faults)
 * 0x0004_0000  worker vCPU's stack (top at 0x80000)
 * 0x0010_0000  guest image: text, data, bss (CT_IMAGE_MAX)
 * 0x0080_0000  guest stack (top at CT_STACK_TOP)
 * 0x0090_0000  heap (arena for drivers and zlib)
 * 0x0200_0000  I/O area: every read/write buffer lives here
 * 0x0480_0000  end of RAM
 */
#define CT_PT_GPA CT_U(0x1000)
#define CT_PT_SIZE CT_U(0x4000)
#define CT_GDT_GPA CT_U(0x5000)
#define CT_IDT_GPA CT_U(0x6000)
#define CT_TSS_GPA CT_U(0x7000)
#define CT_BOOTINFO_GPA CT_U(0x8000)
#define CT_FAULT_GPA CT_U(0x9000)
#define CT_FSBLOCK_GPA CT_U(0xa000)
#define CT_TSS1_GPA CT_U(0xb000)
#define CT_BEHIND_DONE_GPA CT_U(0xc000)
#define CT_KSTACK_GPA CT_U(0x10000)
#define CT_KSTACK_SIZE CT_U(0x10000)
#define CT_KSTACK1_GPA CT_U(0x20000)
#define CT_WGUARD_GPA CT_U(0x3f000)
#define CT_WSTACK_GPA CT_U(0x40000)
#define CT_WSTACK_SIZE CT_U(0x40000)
#define CT_WSTACK_TOP (CT_WSTACK_GPA + CT_WSTACK_SIZE)
#define CT_IMAGE_GPA CT_U(0x100000)
#define CT_IMAGE_MAX CT_U(0x700000)
#define CT_STACK_GPA CT_U(0x800000)
#define CT_STACK_SIZE CT_U(0x100000)
#define CT_STACK_TOP (CT_STACK_GPA + CT_STACK_SIZE)
#define CT_HEAP_GPA CT_U(0x900000)
#define CT_HEAP_SIZE CT_U(0x1700000)
#define CT_IO_GPA CT_U(0x2000000)
/* 40 MiB (ABI 10; was 32): the engine's 12 MiB of slots and the 28 MiB
 * the drivers had before. */
#define CT_IO_SIZE CT_U(0x2800000)
#define CT_RAM_SIZE CT_U(0x4800000)

/* Guest image header: the entry jump, then a magic and the ABI version the
 * image was built for, then the exception stubs at fixed 16-byte slots so
 * the host can build the IDT without parsing anything. */
#define CT_IMAGE_MAGIC_OFF 8
#define CT_IMAGE_MAGIC CT_ULL(0x3147524154534e49) /* "INSTARG1" little-endian */
#define CT_IMAGE_ABI_OFF 16
#define CT_EXC_STUBS_OFF CT_U(0x40)
#define CT_EXC_STUB_SIZE 16
#define CT_EXC_VECTORS 32
#define CT_FSBLOCK_CANARY_OFF CT_U(0x28) /* where gcc's stack protector looks */

#define CT_IO_MAX_LEN CT_IO_SIZE /* one call moves at most the whole area */
/* One copy call moves at most this much in all its segments: a call on a
 * slow disk stays short next to the watchdog's limits. */
#define CT_COPY_MAX_LEN (CT_ULL(1) << 30)
#define CT_MSG_MAX CT_U(1024)
#define CT_NAME_MAX CT_U(4095)
/* Input + granted files: a 128 TiB twoGbMaxExtent vmdk has 65536 extents.
 * The run's real bound is the boot info's files_max (open-file limit). */
#define CT_HANDLES_MAX CT_U(65600)
#define CT_CHAIN_DEPTH_MAX CT_U(16)
/* Info records (ABI 7): one call carries at most a batch; a run's stream
 * at most the total (a vmdk's descriptor lists at most 1 MiB of names). */
#define CT_INFO_REC_SIZE CT_U(16)
#define CT_INFO_BATCH_MAX (CT_U(1) << 20)
#define CT_INFO_TOTAL_MAX (CT_U(16) << 20)
#define CT_INFO_DEPTH_MAX CT_U(2) /* image > extent, snapshot, bitmap */
#define CT_INFO_STR_MAX CT_U(65535) /* a qcow2 snapshot name (u16 size) */

#ifndef __ASSEMBLER__
/* ---- Layout asserts ------------------------------------------------------ */

#define CT_ASSERT_SIZE(t, n) _Static_assert(sizeof(struct t) == (n), #t " size")
#define CT_ASSERT_OFF(t, f, n)                                                 \
    _Static_assert(__builtin_offsetof(struct t, f) == (n), #t "." #f " offset")

CT_ASSERT_SIZE(ct_hello, 8);
CT_ASSERT_SIZE(ct_size, 16);
CT_ASSERT_OFF(ct_size, size, 8);
CT_ASSERT_SIZE(ct_map, 32);
CT_ASSERT_OFF(ct_map, offset, 8);
CT_ASSERT_OFF(ct_map, data, 16);
CT_ASSERT_OFF(ct_map, hole, 24);
CT_ASSERT_SIZE(ct_read, 40);
CT_ASSERT_OFF(ct_read, offset, 8);
CT_ASSERT_OFF(ct_read, gpa, 16);
CT_ASSERT_OFF(ct_read, len, 24);
CT_ASSERT_OFF(ct_read, nread, 32);
CT_ASSERT_SIZE(ct_write, 32);
CT_ASSERT_OFF(ct_write, offset, 8);
CT_ASSERT_OFF(ct_write, gpa, 16);
CT_ASSERT_OFF(ct_write, len, 24);
CT_ASSERT_SIZE(ct_wait, 16);
CT_ASSERT_OFF(ct_wait, ticket, 8);
CT_ASSERT_SIZE(ct_begin_output, 16);
CT_ASSERT_OFF(ct_begin_output, virtual_size, 8);
CT_ASSERT_SIZE(ct_log, 24);
CT_ASSERT_SIZE(ct_exit, 24);
CT_ASSERT_OFF(ct_exit, msg_gpa, 8);
CT_ASSERT_SIZE(ct_fault, 32);
CT_ASSERT_SIZE(ct_open_backing, 24);
CT_ASSERT_OFF(ct_open_backing, name_gpa, 8);
CT_ASSERT_OFF(ct_open_backing, name_len, 16);
CT_ASSERT_OFF(ct_open_backing, handle, 20);
CT_ASSERT_SIZE(ct_vcpu_signal, 8);
CT_ASSERT_SIZE(ct_end_output, 16);
CT_ASSERT_SIZE(ct_copy_seg, 32);
CT_ASSERT_OFF(ct_copy_seg, src_off, 8);
CT_ASSERT_OFF(ct_copy_seg, dst_off, 16);
CT_ASSERT_OFF(ct_copy_seg, len, 24);
CT_ASSERT_SIZE(ct_copy, 32);
CT_ASSERT_OFF(ct_copy, segs_gpa, 8);
CT_ASSERT_OFF(ct_copy, done, 16);
CT_ASSERT_OFF(ct_copy, copied, 24);
CT_ASSERT_OFF(ct_end_output, file_size, 8);
CT_ASSERT_SIZE(ct_info_rec, 16);
CT_ASSERT_OFF(ct_info_rec, type, 2);
CT_ASSERT_OFF(ct_info_rec, len, 4);
CT_ASSERT_OFF(ct_info_rec, value, 8);
CT_ASSERT_SIZE(ct_info, 16);
CT_ASSERT_OFF(ct_info, gpa, 8);
_Static_assert(sizeof(struct ct_info_rec) == CT_INFO_REC_SIZE, "info rec");
_Static_assert(CT_INFO_KEY_COUNT <= 64, "a key set fits a uint64_t mask");
CT_ASSERT_SIZE(ct_output_params, 24);
CT_ASSERT_OFF(ct_output_params, flags, 20);
CT_ASSERT_SIZE(ct_progress, 24);
CT_ASSERT_OFF(ct_progress, done, 8);
CT_ASSERT_SIZE(ct_bootinfo, 416);
CT_ASSERT_OFF(ct_bootinfo, out, 384);
CT_ASSERT_OFF(ct_bootinfo, sparse_min, 408);
CT_ASSERT_OFF(ct_bootinfo, unix_time, 80);
CT_ASSERT_OFF(ct_bootinfo, entropy, 88);
CT_ASSERT_OFF(ct_bootinfo, out_name_len, 120);
CT_ASSERT_OFF(ct_bootinfo, out_name, 128);
CT_ASSERT_OFF(ct_bootinfo, mode, 124);
CT_ASSERT_OFF(ct_bootinfo, vcpus, 72);
CT_ASSERT_OFF(ct_bootinfo, files_max, 76);
CT_ASSERT_OFF(ct_bootinfo, bs, 16);
CT_ASSERT_OFF(ct_bootinfo, io_base, 40);

/* Each region ends where or before the next begins; all fit in RAM. */
_Static_assert(CT_PT_GPA >= 0x1000u, "page 0 stays unmapped");
_Static_assert(CT_PT_GPA + CT_PT_SIZE <= CT_GDT_GPA, "page tables / GDT");
_Static_assert(CT_GDT_GPA + 0x1000u <= CT_IDT_GPA, "GDT / IDT");
_Static_assert(CT_IDT_GPA + 0x1000u <= CT_TSS_GPA, "IDT / TSS");
_Static_assert(CT_TSS_GPA + 0x1000u <= CT_BOOTINFO_GPA, "TSS / boot info");
_Static_assert(CT_BOOTINFO_GPA + 0x1000u <= CT_FAULT_GPA, "boot / fault");
_Static_assert(CT_FAULT_GPA + 0x1000u <= CT_FSBLOCK_GPA, "fault / FS block");
_Static_assert(CT_FSBLOCK_GPA + 0x1000u <= CT_TSS1_GPA, "FS / TSS1");
_Static_assert(CT_TSS1_GPA + 0x1000u <= CT_BEHIND_DONE_GPA,
               "TSS1 / write-behinds done");
_Static_assert(CT_BEHIND_DONE_GPA + 0x1000u <= CT_KSTACK_GPA,
               "write-behinds done / kstack");
_Static_assert(CT_KSTACK_GPA + CT_KSTACK_SIZE <= CT_KSTACK1_GPA, "kstacks");
_Static_assert(CT_KSTACK1_GPA + CT_KSTACK_SIZE <= CT_WGUARD_GPA,
               "kstack1 / guard");
_Static_assert(CT_WGUARD_GPA + 0x1000u == CT_WSTACK_GPA, "guard / wstack");
_Static_assert(CT_WSTACK_TOP <= CT_IMAGE_GPA, "worker stack / image");
_Static_assert(CT_WSTACK_TOP <= 0x200000u, "guard page is in the 4 KiB PT");
_Static_assert(CT_IMAGE_GPA + CT_IMAGE_MAX <= CT_STACK_GPA, "image / stack");
_Static_assert(CT_STACK_GPA + CT_STACK_SIZE <= CT_HEAP_GPA, "stack / heap");
_Static_assert(CT_HEAP_GPA + CT_HEAP_SIZE <= CT_IO_GPA, "heap / I/O area");
_Static_assert(CT_IO_GPA + CT_IO_SIZE <= CT_RAM_SIZE, "I/O area / RAM end");
_Static_assert(CT_RAM_SIZE <= 0x40000000u, "RAM fits one PD (1 GiB)");
_Static_assert(sizeof(struct ct_bootinfo) <= 0x1000u, "boot info page");

#endif /* !__ASSEMBLER__ */
#endif /* INSTAR_CT_H */
