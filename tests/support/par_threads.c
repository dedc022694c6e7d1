#include "par_threads.h"

#include <pthread.h>
#include <stdbool.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool token;
static unsigned long wakes;
static struct par par;

static void wake(void *hctx)
{
    (void)hctx;
    pthread_mutex_lock(&mu);
    token = true;
    wakes++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static void park(void *hctx)
{
    (void)hctx;
    pthread_mutex_lock(&mu);
    while (!token)
        pthread_cond_wait(&cv, &mu);
    token = false;
    pthread_mutex_unlock(&mu);
}

/* Like the worker vCPU: nothing runs before the first wake-up. */
static void *worker(void *arg)
{
    (void)arg;
    park(NULL);
    par_worker(&par, 1);
}

static void start(void)
{
    pthread_t tid;
    par_init(&par, 2, wake, park, NULL);
    if (pthread_create(&tid, NULL, worker, NULL) == 0)
        pthread_detach(tid);
    else
        par.workers = 1; /* par_run then runs inline; tests that need the
                            worker notice it never ran */
}

struct par *par_threads(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, start);
    return &par;
}

unsigned long par_threads_wakes(void)
{
    pthread_mutex_lock(&mu);
    unsigned long n = wakes;
    pthread_mutex_unlock(&mu);
    return n;
}
