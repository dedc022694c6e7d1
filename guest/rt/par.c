/*
 * Batches are published by bumping the generation in `ticket`; an item is
 * claimed by a compare-and-swap that checks the generation too, so a
 * worker still finishing the loop of an old batch can never claim (or run
 * the function of) a newer one. The main vCPU publishes a batch only after
 * the previous one is done, so fn/ctx/n are stable while any item of their
 * batch is claimed.
 *
 * A batch's parameters are written while the previous generation is
 * still in `ticket`, so a worker may pair that generation with the new n.
 * par_finish therefore closes each batch (next item UINT32_MAX: nothing
 * left to claim for any n) before the next one's parameters are written.
 *
 * Parking is the classic store-then-check pair on both sides: the worker
 * sets `parked` and re-checks the ticket; the main vCPU bumps the ticket
 * and then reads `parked`. With sequentially consistent operations at
 * least one side sees the other, so a batch never waits on a parked worker
 * nobody woke.
 */
#include "par.h"

/* Spins before parking: a batch usually follows within a host read or
 * write, far cheaper to wait out than a park/wake round trip. */
#define PAR_SPINS 20000u

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("pause");
#endif
}

void par_init(struct par *p, uint32_t workers, void (*wake)(void *),
              void (*park)(void *), void *hctx)
{
    if (workers < 1 || !wake || !park)
        workers = 1;
    if (workers > PAR_WORKERS_MAX)
        workers = PAR_WORKERS_MAX;
    *p = (struct par){.workers = workers, .wake = wake, .park = park,
                      .hctx = hctx, .parked = 1};
}

/* Claims the next item of batch gen, if any is left. */
static int claim(struct par *p, uint32_t gen, uint32_t n, uint32_t *item)
{
    uint64_t t = __atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE);
    for (;;) {
        if ((uint32_t)(t >> 32) != gen || (uint32_t)t >= n)
            return 0;
        if (__atomic_compare_exchange_n(&p->ticket, &t, t + 1, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            *item = (uint32_t)t;
            return 1;
        }
    }
}

static void take_items(struct par *p, uint32_t gen, uint32_t n,
                       uint32_t worker)
{
    uint32_t i;
    while (claim(p, gen, n, &i)) {
        /* The batch cannot end while this item is claimed: fn and ctx
         * are this batch's. */
        p->fn(p->ctx, i, worker);
        __atomic_add_fetch(&p->done, 1, __ATOMIC_RELEASE);
    }
}

void par_start(struct par *p, struct par_batch *b, uint32_t n, par_fn fn,
               void *ctx)
{
    *b = (struct par_batch){.n = n, .fn = fn, .ctx = ctx};
    if (!p || p->workers < 2 || n < 2)
        return; /* inline, in par_finish */
    b->p = p;
    b->gen = (uint32_t)(p->ticket >> 32) + 1;
    p->fn = fn;
    p->ctx = ctx;
    /* Released after the close above: whoever reads this n sees the old
     * batch closed. */
    __atomic_store_n(&p->n, n, __ATOMIC_RELEASE);
    __atomic_store_n(&p->done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->ticket, (uint64_t)b->gen << 32, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&p->parked, __ATOMIC_SEQ_CST))
        p->wake(p->hctx);
}

void par_finish(struct par_batch *b)
{
    if (!b->p) {
        for (uint32_t i = 0; i < b->n; i++)
            b->fn(b->ctx, i, 0);
        return;
    }
    take_items(b->p, b->gen, b->n, 0);
    while (__atomic_load_n(&b->p->done, __ATOMIC_ACQUIRE) != b->n)
        cpu_relax();
    /* Close the batch: a worker that saw this generation but reads the
     * next batch's n must not claim an item past this one's end. */
    __atomic_store_n(&b->p->ticket, (uint64_t)b->gen << 32 | UINT32_MAX,
                     __ATOMIC_SEQ_CST);
}

void par_run(struct par *p, uint32_t n, par_fn fn, void *ctx)
{
    struct par_batch b;
    par_start(p, &b, n, fn, ctx);
    par_finish(&b);
}

void par_worker(struct par *p, uint32_t worker)
{
    uint32_t seen = 0;
    /* Started by the first wake-up, which already did its job. */
    __atomic_store_n(&p->parked, 0, __ATOMIC_SEQ_CST);
    for (;;) {
        uint32_t gen = seen;
        for (uint32_t spin = 0; spin < PAR_SPINS && gen == seen; spin++) {
            cpu_relax();
            gen = (uint32_t)(__atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE) >>
                             32);
        }
        if (gen == seen) {
            __atomic_store_n(&p->parked, 1, __ATOMIC_SEQ_CST);
            gen = (uint32_t)(__atomic_load_n(&p->ticket, __ATOMIC_SEQ_CST) >>
                             32);
            if (gen == seen)
                p->park(p->hctx);
            __atomic_store_n(&p->parked, 0, __ATOMIC_SEQ_CST);
            continue; /* re-check: a wake-up may be stale */
        }
        seen = gen;
        take_items(p, gen, __atomic_load_n(&p->n, __ATOMIC_ACQUIRE), worker);
    }
}
