/*
 * Work sharing between the guest's vCPUs: the main vCPU hands out the
 * items of a batch (say, one compressed cluster each) and takes items
 * itself; the worker vCPU takes items until the batch is claimed, then
 * spins briefly and parks until the next batch.
 *
 * Items must touch only their own memory: no allocation, no calls to the
 * host, no g_fail (the worker may make no call but park). Each item writes
 * its own result for the caller to check after par_run.
 *
 * The same code runs on the host in unit tests, with threads standing in
 * for vCPUs and park/wake built on a condition variable.
 */
#ifndef INSTAR_GUEST_RT_PAR_H
#define INSTAR_GUEST_RT_PAR_H

#include <stdint.h>

#define PAR_WORKERS_MAX 2u /* the main vCPU and one worker: CT_VCPUS_MAX */

/* worker: 0 on the main vCPU, 1 .. workers-1 on the others. */
typedef void (*par_fn)(void *ctx, uint32_t item, uint32_t worker);

struct par {
    uint32_t workers; /* 1: par_run runs every item inline */
    void (*wake)(void *hctx);
    void (*park)(void *hctx);
    void *hctx;
    /* Shared between vCPUs; only touched through __atomic builtins. */
    uint64_t ticket; /* batch generation << 32 | next item to claim */
    uint32_t done;   /* items of the current batch finished */
    uint32_t parked; /* the worker is parked, or has never run */
    uint32_t n;
    par_fn fn;
    void *ctx;
};

/* workers is clamped to 1 .. PAR_WORKERS_MAX; wake and park are needed
 * only when workers > 1. */
void par_init(struct par *p, uint32_t workers, void (*wake)(void *),
              void (*park)(void *), void *hctx);

/* Main vCPU: runs fn(ctx, i, worker) once for every i in [0, n) and
 * returns when all have finished; a NULL p runs them inline. Not
 * reentrant: fn must not call it. */
void par_run(struct par *p, uint32_t n, par_fn fn, void *ctx);

/* A batch started by par_start and not finished yet. */
struct par_batch {
    struct par *p; /* NULL: the items run inline in par_finish */
    uint32_t n, gen;
    par_fn fn;
    void *ctx;
};

/*
 * par_run in two halves, so the main vCPU can do other work (the host's
 * I/O) while the worker takes items: par_start hands the batch to the
 * worker and returns at once; par_finish takes the items still unclaimed
 * on the main vCPU and returns when all have finished. One batch at a
 * time: no other par_run or par_start on p until par_finish. Without a
 * worker every item runs in par_finish.
 */
void par_start(struct par *p, struct par_batch *b, uint32_t n, par_fn fn,
               void *ctx);
void par_finish(struct par_batch *b);

/* Worker vCPU's loop; never returns. */
__attribute__((noreturn)) void par_worker(struct par *p, uint32_t worker);

/* Workers par_run may use: 1 for a NULL p. */
static inline uint32_t par_workers(const struct par *p)
{
    return p ? p->workers : 1u;
}

#endif
