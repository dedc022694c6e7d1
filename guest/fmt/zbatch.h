/*
 * Compressed units (qcow2 clusters, vmdk grains) read in large windows and
 * inflated in batches on every vCPU. One host read fills a window of
 * compressed data that serves many units; whole units are queued and
 * inflated together by the vCPUs (guest/rt/par.c); a unit the caller wants
 * only part of is inflated into a cached buffer. One zbatch serves every
 * image of a chain, so depth does not multiply memory.
 *
 * The queue is flushed when it is full, before the window moves (queued
 * jobs point into it), and by the caller before a read returns. A job
 * touches only its source, its destination and its vCPU's inflater: the
 * worker vCPU may run it.
 */
#ifndef INSTAR_GUEST_FMT_ZBATCH_H
#define INSTAR_GUEST_FMT_ZBATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "fmt.h"
#include "inflate.h"

/* Whole units queued before the batch is inflated. */
#define ZBATCH_JOBS 256u
/* The window of compressed data one host read fills, at least. */
#define ZBATCH_WINDOW (1u << 20)

struct zbatch_job {
    const uint8_t *src; /* inside the window */
    uint8_t *dst;
    uint64_t csize;     /* compressed bytes */
    uint64_t dst_size;  /* a whole unit: bytes past what inflates are 0 */
    uint64_t need;      /* bytes the unit must inflate to at least */
    uint64_t where;     /* file offset of the unit, for messages */
    int ret;
    struct fmt_inflate_status st;
};

struct zbatch {
    const struct fmt_env *env;
    const char *fmt;    /* "qcow2" */
    const char *unit;   /* "compressed cluster" */
    int mode;           /* FMT_INFLATE_RAW or FMT_INFLATE_ZLIB */
    bool allow_partial; /* a stream may end past a full unit (qcow2) */
    bool exact;         /* messages: "not N" (qcow2) or "expected N" */

    struct fmt_inflate *zw[PAR_WORKERS_MAX]; /* one per vCPU */
    struct zbatch_job *jobs;                 /* ZBATCH_JOBS */
    uint32_t njobs;
    uint64_t unit_max; /* the buffers are sized for these (0: none yet) */
    uint64_t src_max;

    uint8_t *win;      /* compressed data of one file */
    uint64_t win_cap;
    uint32_t win_handle;
    uint64_t win_off, win_len; /* the file range win holds; len 0: none */
    uint64_t win_got;  /* of which the file had (the rest: zeros) */

    uint8_t *part;     /* the last unit read only in part */
    uint32_t part_handle;
    uint64_t part_where;
    bool part_valid;
};

/* A zbatch without buffers yet (nothing is allocated before a compressed
 * unit is met). */
void zbatch_init(struct zbatch *z, const struct fmt_env *env,
                 const char *fmt, const char *unit, int mode,
                 bool allow_partial, bool exact);

/* Buffers for units of up to unit_max bytes whose compressed data is at
 * most src_max bytes; grown for a later image of the chain with larger
 * units (queued jobs keep their source: arena memory is never reused). */
int zbatch_setup(struct zbatch *z, uint64_t unit_max, uint64_t src_max);

/* Bytes [off, off + len) of file `handle` (len <= src_max), from the
 * window, refilled from off (after a flush) when they are not in it. *got
 * says how many the file has there; the rest of the len read as zeros. */
int zbatch_bytes(struct zbatch *z, uint32_t handle, uint64_t off,
                 uint64_t len, const uint8_t **src, uint64_t *got);

/* Queues the unit at `where` (its compressed bytes src, csize) for
 * inflating into dst (dst_size bytes; at least `need` must come out). */
int zbatch_queue(struct zbatch *z, const uint8_t *src, uint64_t csize,
                 uint8_t *dst, uint64_t dst_size, uint64_t need,
                 uint64_t where);

/* Inflates the queue on every vCPU; reports the first failure in queue
 * order, with the message a serial read would give. */
int zbatch_flush(struct zbatch *z);

/* Drops the queue (after an error: its destinations are not ours). */
void zbatch_drop(struct zbatch *z);

/* The unit at `where` of file `handle`, inflated whole into the part
 * buffer (returned), reusing it when it already holds that unit. fetch
 * gets the compressed bytes when they are needed. */
typedef int (*zbatch_fetch_fn)(void *ctx, const uint8_t **src,
                               uint64_t *csize);
int zbatch_part(struct zbatch *z, uint32_t handle, uint64_t where,
                uint64_t dst_size, uint64_t need, zbatch_fetch_fn fetch,
                void *ctx, const uint8_t **unit);

#endif
