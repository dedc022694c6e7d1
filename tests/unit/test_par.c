/* The guest's work sharing (guest/rt/par.c) with a host thread as the
 * worker vCPU. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "par_threads.h"

#define ITEMS_MAX 300u

struct tally {
    uint32_t runs[ITEMS_MAX];
    uint32_t by_worker[PAR_WORKERS_MAX];
    uint32_t bad_worker;
};

static void count(void *ctx, uint32_t item, uint32_t worker)
{
    struct tally *t = ctx;
    __atomic_add_fetch(&t->runs[item], 1, __ATOMIC_RELAXED);
    if (worker < PAR_WORKERS_MAX)
        __atomic_add_fetch(&t->by_worker[worker], 1, __ATOMIC_RELAXED);
    else
        __atomic_add_fetch(&t->bad_worker, 1, __ATOMIC_RELAXED);
}

Test(par, null_par_runs_every_item_inline)
{
    struct tally t;
    memset(&t, 0, sizeof t);
    par_run(NULL, 10, count, &t);
    for (uint32_t i = 0; i < 10; i++)
        cr_expect_eq(t.runs[i], 1);
    cr_expect_eq(t.by_worker[0], 10);
    cr_expect_eq(par_workers(NULL), 1u);
}

Test(par, one_worker_runs_inline_without_waking)
{
    struct par p;
    struct tally t;
    memset(&t, 0, sizeof t);
    par_init(&p, 2, NULL, NULL, NULL); /* no park/wake: one worker */
    cr_expect_eq(p.workers, 1u);
    par_run(&p, 5, count, &t);
    cr_expect_eq(t.by_worker[0], 5);
}

/* Many batches of every size: each item runs exactly once per batch, and
 * never with a stale batch's function or context. */
Test(par, every_item_exactly_once_across_batches)
{
    struct par *p = par_threads();
    static struct tally t[2];
    cr_assert_eq(par_workers(p), 2u);
    for (uint32_t round = 0; round < 3000; round++) {
        uint32_t n = 1 + round % ITEMS_MAX;
        struct tally *cur = &t[round & 1];
        memset(cur, 0, sizeof *cur);
        par_run(p, n, count, cur);
        for (uint32_t i = 0; i < ITEMS_MAX; i++)
            cr_assert_eq(cur->runs[i], i < n ? 1u : 0u,
                         "round %u item %u ran %u times", round, i,
                         cur->runs[i]);
        cr_assert_eq(cur->bad_worker, 0);
        cr_assert_eq(cur->by_worker[0] + cur->by_worker[1], n);
    }
}

/* Two items that each wait until both have started: only finishes if the
 * worker really runs one of them concurrently. */
struct meet {
    uint32_t started;
    uint32_t met[2];
};

static void meet(void *ctx, uint32_t item, uint32_t worker)
{
    struct meet *m = ctx;
    (void)worker;
    __atomic_add_fetch(&m->started, 1, __ATOMIC_SEQ_CST);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        if (__atomic_load_n(&m->started, __ATOMIC_SEQ_CST) == 2) {
            m->met[item] = 1;
            return;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec - t0.tv_sec < 10);
}

Test(par, worker_runs_items_concurrently)
{
    struct par *p = par_threads();
    /* Repeatedly: the worker may be spinning or parked at each batch. */
    for (int i = 0; i < 50; i++) {
        struct meet m;
        memset(&m, 0, sizeof m);
        par_run(p, 2, meet, &m);
        cr_assert(m.met[0] && m.met[1],
                  "batch %d: the two items never ran at the same time", i);
        if (i % 10 == 9) { /* let the worker park before the next one */
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    cr_expect_gt(par_threads_wakes(), 1ul, "the worker never parked");
}

/* par_start returns before the items run (the worker takes them while
 * the caller goes on); par_finish runs what is left and waits: each item
 * exactly once, batch after batch, and inline without a worker. */
Test(par, start_then_finish)
{
    struct par *p = par_threads();
    static struct tally t;
    struct par_batch b;
    for (uint32_t round = 0; round < 2000; round++) {
        uint32_t n = 1 + round % ITEMS_MAX;
        memset(&t, 0, sizeof t);
        par_start(p, &b, n, count, &t);
        if (round % 7 == 0) { /* the caller busy for a while */
            struct timespec ts = {0, 100 * 1000};
            nanosleep(&ts, NULL);
        }
        par_finish(&b);
        for (uint32_t i = 0; i < n; i++)
            cr_assert_eq(t.runs[i], 1u, "round %u item %u", round, i);
        cr_assert_eq(t.by_worker[0] + t.by_worker[1], n);
    }
    memset(&t, 0, sizeof t);
    par_start(NULL, &b, 5, count, &t);
    cr_expect_eq(t.by_worker[0], 0u, "inline items wait for par_finish");
    par_finish(&b);
    cr_expect_eq(t.by_worker[0], 5u);
}

/* While the caller is away, the worker runs the whole batch. */
Test(par, worker_takes_a_started_batch_alone)
{
    struct par *p = par_threads();
    static struct tally t;
    struct par_batch b;
    memset(&t, 0, sizeof t);
    par_start(p, &b, 50, count, &t);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (__atomic_load_n(&t.by_worker[1], __ATOMIC_SEQ_CST) < 50 &&
             now.tv_sec - t0.tv_sec < 10);
    par_finish(&b);
    cr_expect_eq(t.by_worker[1], 50u, "the worker ran %u of 50",
                 t.by_worker[1]);
}

/*
 * The interleaving behind a hang seen under load: par_start writes the
 * next batch's n while the finished batch's generation is still in the
 * ticket, and a worker that read that generation then reads the new n.
 * Set up here without timing: a batch run by the main side alone (the
 * worker never woken), the next batch's n written, then the worker
 * started. It must claim nothing of the finished batch, whatever n says;
 * before batches were closed it ran items 3..9 of a 3-item batch.
 */
static pthread_mutex_t late_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t late_cv = PTHREAD_COND_INITIALIZER;
static bool late_parked;

static void late_wake(void *hctx)
{
    (void)hctx;
}

static void late_park(void *hctx)
{
    (void)hctx;
    pthread_mutex_lock(&late_mu);
    late_parked = true;
    pthread_cond_broadcast(&late_cv);
    for (;;) /* stays parked: nothing wakes it in this test */
        pthread_cond_wait(&late_cv, &late_mu);
}

static struct par late_par;

static void *late_worker(void *arg)
{
    (void)arg;
    par_worker(&late_par, 1);
}

Test(par, a_late_worker_claims_nothing_of_a_finished_batch)
{
    static struct tally t;
    struct par *p = &late_par;
    memset(&t, 0, sizeof t);
    par_init(p, 2, late_wake, late_park, NULL);
    par_run(p, 3, count, &t);
    cr_assert_eq(t.by_worker[0], 3u);
    __atomic_store_n(&p->n, 10u, __ATOMIC_RELEASE); /* par_start's first step */

    pthread_t tid;
    cr_assert_eq(pthread_create(&tid, NULL, late_worker, NULL), 0);
    pthread_detach(tid);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&late_mu);
    while (!late_parked)
        if (pthread_cond_timedwait(&late_cv, &late_mu, &until) != 0)
            break;
    bool parked = late_parked;
    pthread_mutex_unlock(&late_mu);
    cr_assert(parked, "the worker never parked");
    for (uint32_t i = 0; i < ITEMS_MAX; i++)
        cr_expect_eq(t.runs[i], i < 3 ? 1u : 0u, "item %u ran %u times", i,
                     t.runs[i]);
    cr_expect_eq(t.by_worker[1], 0u, "the worker ran %u items",
                 t.by_worker[1]);
}
