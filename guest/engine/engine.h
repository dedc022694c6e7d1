/*
 * The convert engine: copies a byte range of a reader's virtual disk into
 * a writer, densely (zeros are copied like any data), in large chunks so
 * each chunk costs one host call per side. `dd` is this engine driven by
 * the shared window math.
 */
#ifndef INSTAR_GUEST_ENGINE_H
#define INSTAR_GUEST_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "../ct_ops.h"
#include "../err.h"
#include "../fmt/fmt.h"
#include "window.h"

/* Largest chunk moved per call; the I/O area may be larger. */
#define ENGINE_CHUNK_MAX (4u << 20)
/* The chunk buffer: a sparse copy uses it as three slots of a chunk each
 * (engine/convert.c), two of qemu-img convert's 2 MiB requests. */
#define ENGINE_BUF_MAX (3 * ENGINE_CHUNK_MAX)

struct engine_buf {
    uint8_t *p;    /* in the I/O area */
    uint64_t size; /* >= 512 */
};

/* What to copy and how. */
struct engine_job {
    uint64_t start, end; /* the input's virtual bytes to copy */
    uint64_t out_size;   /* end - start rounded up to 512 */
    /* Runs of at least this many zero bytes stay unallocated (the
     * writer's zero()); 0: every byte is written or allocated (dd). */
    uint64_t sparse_min;
    bool progress;       /* report progress to the host as the copy goes */
};

/* Copies virtual bytes [start, end) of r to [0, end - start) of w, then
 * zeros up to out_size (the 512-byte rounding), finishes w and declares
 * the output's final size to the host. */
int engine_copy(struct fmt_reader *r, struct fmt_writer *w,
                const struct engine_job *job, const struct engine_buf *b,
                struct g_error *err);

struct dd_config {
    uint32_t in_format;  /* CT_FMT_PROBE or a CT_FMT_* */
    uint32_t out_format; /* CT_FMT_* */
    struct window_args args;
    uint32_t files_max;  /* boot info's files_max; 0: CT_HANDLES_MAX */
    bool in_dmg_name;    /* the input's name ends in ".dmg" */
    struct fmt_write_opts write; /* what the writer stamps (boot info);
                                    request_size is set from bs */
    /* convert: runs of zeros this long stay unallocated (-S); 0 for dd */
    uint64_t sparse_min;
    bool convert;  /* the whole image (args: bs 512, no count or skip) */
    bool progress; /* report progress (convert -p) */
};

/* Memory the guest gives the engine: the heap for driver state and the
 * I/O area, from which the engine takes its chunk buffer and drivers their
 * metadata buffers. Both must start zeroed. */
struct dd_mem {
    void *heap;
    uint64_t heap_size;
    void *io;
    uint64_t io_size;
    struct par *par; /* the vCPUs drivers may share work with; NULL: one */
};

/* Runs a whole dd: open input, declare the output, copy the window. */
int dd_run(const struct dd_config *cfg, const struct ct_ops *ops,
           const struct dd_mem *mem, struct g_error *err);

#endif
