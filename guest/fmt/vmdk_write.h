/*
 * The vmdk writer's internals, shared by vmdk_write.c (layout, tables,
 * header, descriptor, grains written in place) and vmdk_grains.c (grains
 * gathered whole: streamOptimized's compressed grains, and -c).
 */
#ifndef INSTAR_GUEST_FMT_VMDK_WRITE_H
#define INSTAR_GUEST_FMT_VMDK_WRITE_H

#include "vmdk.h"
#include "output_bound.h"

#define VMDK_W_GRAIN ((uint64_t)OUTPUT_VMDK_GRAIN_SECTORS * VMDK_SECTOR)
#define VMDK_W_NONE UINT64_MAX

struct vmdk_grains;

struct vmdk_w {
    struct output_vmdk_layout l;
    bool stream;          /* streamOptimized: compressed grains */
    uint64_t next_sector; /* where the next grain goes: the file's end */
    uint64_t last_grain;  /* the grain allocated last, or VMDK_W_NONE */
    uint64_t last_sector; /* its sector */
    uint64_t gt_index;    /* the grain table held in gt, or VMDK_W_NONE */
    bool gt_dirty;
    uint8_t *gt;          /* one grain table, I/O area */
    uint8_t *buf;         /* header and descriptor, I/O area */
    struct vmdk_grains *gr; /* whole grains (stream, -c); NULL: in place */
};

/* Records grain g at `sector` in the table held, writing the table before
 * it when g is past its span (grains come in virtual order). */
int vmdk_w_gt_set(struct fmt_writer *w, uint64_t g, uint64_t sector);

/* Bytes of the virtual disk in grain g (the last one may be short). */
static inline uint64_t vmdk_w_grain_len(const struct fmt_writer *w,
                                        uint64_t g)
{
    uint64_t left = w->vsize - g * VMDK_W_GRAIN;
    return left < VMDK_W_GRAIN ? left : VMDK_W_GRAIN;
}

/* Makes w take its grains whole (write and zero gather them; place is
 * off), compressed when s->stream. */
int vmdk_grains_open(struct fmt_writer *w);
/* Puts out the grains still gathered; *end_sector is where the file ends. */
int vmdk_grains_finish(struct fmt_writer *w, uint64_t *end_sector);

#endif
