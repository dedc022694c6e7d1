/*
 * The worker vCPU's host thread. It runs the worker only after the main
 * vCPU's first wake-up (so never before the sandbox is locked down), serves
 * its parks, and turns anything else the worker does into a failure that
 * the main vCPU's loop reports. The thread is never joined: it ends with
 * the sandboxed process.
 */
#ifndef INSTAR_VMM_WORKER_H
#define INSTAR_VMM_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm.h"

#define WORKER_ERR_MAX 400

struct vmm_worker {
    const struct vm *vm;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ready;  /* the thread is waiting for its first wake-up (mu) */
    bool token;  /* a wake-up is pending (under mu) */
    int failed;  /* atomic: err is final */
    char err[WORKER_ERR_MAX];
};

/* Starts the thread (blocked until the first wake-up) with every signal
 * blocked, so the watchdog's SIGALRM always interrupts the main vCPU. */
int worker_start(struct vmm_worker *w, const struct vm *vm, char *err,
                 size_t errlen);

/* Posts a wake-up (from the main vCPU's WAKE call). */
void worker_wake(struct vmm_worker *w);

/* The worker's failure message, or NULL while it is healthy. */
const char *worker_failure(struct vmm_worker *w);

#endif
