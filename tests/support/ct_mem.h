/*
 * A memory-backed call table: runs the guest engine and drivers on the host
 * (unit tests, fuzzers) with no KVM. The input is a byte array; the output
 * grows as written. It enforces the same rules the VMM does for writes:
 * begin_output first, then only within the window's output size.
 */
#ifndef INSTAR_TEST_CT_MEM_H
#define INSTAR_TEST_CT_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ct_ops.h"
#include "window.h"

#define CT_MEM_FILES 32

/* A file open_backing may return, matched by exact name. */
struct ct_mem_file {
    const char *name;
    const uint8_t *data;
    size_t len;
};

struct ct_mem {
    const uint8_t *in;
    size_t in_len;
    struct ct_mem_file files[CT_MEM_FILES]; /* [0] unused: the input */
    unsigned nfiles;
    uint32_t handle_of[CT_MEM_FILES]; /* open handles -> files[] index */
    unsigned open_handles;             /* handles granted so far */
    unsigned parent_depth[CT_MEM_FILES];
    uint32_t out_format;
    struct window_args args;

    uint8_t *out;
    size_t out_len;
    size_t out_cap;
    bool begun;
    bool ended;          /* end_output accepted: out_len is the file size */
    uint64_t window_out; /* the window rounded up to 512 */
    uint64_t out_vsize;  /* the output's virtual size */
    uint64_t out_limit;  /* output_bound_p() of the format */
    /* The output's shape (convert -o, -c) the host would bound it by;
     * NULL: qemu-img create's defaults. */
    const struct ct_output_params *out_params;
    bool skip_notice;
    unsigned reads, writes, copies; /* copies: copy calls */
    uint64_t bytes_written;   /* by write and copy (allocated zeros too) */
    uint64_t bytes_taken;     /* from input files, by read and copy */
    uint64_t progress_done;   /* the last progress report */
    unsigned progress_calls;
    bool no_kernel; /* copy answers CT_ENOTSUP, as a host that cannot (or
                       INSTAR_NO_KERNEL_COPY=1) */
    int fail_read_at; /* fail the Nth read with CT_EIO (1-based); 0 = never */
    /* map: 0 answers "all data", as a file system that cannot say; else
     * every whole, aligned block of this size that is all zeros is a hole,
     * as in a sparse file. */
    uint32_t hole_block;
    unsigned maps; /* map calls */
    /* Write-behinds not done yet (ABI 10): done, in order, at a wait()
     * that covers them or before any other output call, as the host does
     * them; a queued buffer that changes before then aborts the test. */
    struct ct_mem_behind {
        const uint8_t *p;
        uint64_t off, len;
        uint8_t *copy; /* the bytes when queued */
    } *behind;
    size_t nbehind, behind_cap;
    uint64_t behind_made, behind_done;
    unsigned behind_writes, waits;
    bool no_behind; /* ct_mem_ops offers no write_behind or wait: a host
                       before ABI 10 */
    uint8_t *info;    /* info records received, in order */
    size_t info_len, info_cap;
    unsigned info_calls;
};

void ct_mem_init(struct ct_mem *m, const uint8_t *in, size_t in_len,
                 uint32_t out_format, const struct window_args *args);
void ct_mem_free(struct ct_mem *m);
/* Makes `name` openable through open_backing (data is not copied). */
void ct_mem_add_file(struct ct_mem *m, const char *name, const uint8_t *data,
                     size_t len);
struct ct_ops ct_mem_ops(struct ct_mem *m);
/* The bytes behind a granted handle (0: the input). */
bool ct_mem_file(struct ct_mem *m, uint32_t handle, const uint8_t **data,
                 size_t *len);

#endif
