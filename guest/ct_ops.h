/*
 * The call table as the engine and drivers see it: a struct of function
 * pointers. In dd.bin it is backed by hypercalls (ct.c); in host unit tests
 * and fuzzers by memory (tests/support/ct_mem.c). Nothing in engine/ or
 * fmt/ may reach the host any other way.
 *
 * Every function returns a CT_* result code (0 or negative). Buffers passed
 * to read and write must lie in the I/O area the boot info describes.
 */
#ifndef INSTAR_GUEST_CT_OPS_H
#define INSTAR_GUEST_CT_OPS_H

#include <stdint.h>

#include "instar_ct.h"

struct ct_ops {
    void *ctx;
    int (*size)(void *ctx, uint32_t handle, uint64_t *size);
    int (*read)(void *ctx, uint32_t handle, uint64_t off, void *buf,
                uint64_t len, uint64_t *nread);
    int (*write)(void *ctx, uint64_t off, const void *buf, uint64_t len);
    /* Like write, but the host may do it later (CT_WRITE_BEHIND, ABI 10):
     * buf must stay unchanged until wait() has covered *ticket, the number
     * of write-behinds made so far, this one included. Both NULL: there
     * is only write. */
    int (*write_behind)(void *ctx, uint64_t off, const void *buf,
                        uint64_t len, uint64_t *ticket);
    int (*wait)(void *ctx, uint64_t ticket);
    int (*begin_output)(void *ctx, uint32_t format, uint64_t vsize);
    int (*end_output)(void *ctx, uint64_t file_size);
    /* segs: count segments (struct ct_copy_seg) anywhere in guest
     * memory; *done and *copied as in struct ct_copy. */
    int (*copy)(void *ctx, const struct ct_copy_seg *segs, uint32_t count,
                uint64_t *done, uint64_t *copied);
    void (*log)(void *ctx, const char *msg, uint64_t len);
    int (*progress)(void *ctx, uint64_t done, uint64_t total);
    /* From off in file `handle`: a hole up to *data, data up to *hole
     * (struct ct_map). NULL or CT_ENOTSUP: treat the file as all data. */
    int (*map)(void *ctx, uint32_t handle, uint64_t off, uint64_t *data,
               uint64_t *hole);
    int (*open_backing)(void *ctx, uint32_t parent, const char *name,
                        uint32_t name_len, uint32_t *handle);
    /* Info mode: len bytes of whole records (struct ct_info_rec ...)
     * anywhere in guest memory. */
    int (*info)(void *ctx, const void *recs, uint64_t len);
};

const char *ct_result_str(int ret);

#endif
