/*
 * The output's write-behind queue (ABI 10): writes the guest hands over
 * with CT_WRITE_BEHIND are done by one host thread, in order, while the
 * main vCPU goes on (it reads and scans the next chunk meanwhile).
 * Without a thread (info runs, which have no output, and any run not
 * locked down) each write is done when it is queued, which the guest
 * cannot tell apart.
 *
 * The thread only ever pwrite()s guest memory that the call was checked
 * to lie in; guest memory stays mapped for the life of the process. It is
 * never joined (glibc's thread exit makes system calls the sandbox
 * forbids): it ends with the process.
 */
#ifndef INSTAR_VMM_BEHIND_H
#define INSTAR_VMM_BEHIND_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Queued writes at most; a full queue makes the guest wait for room. */
#define BEHIND_DEPTH 256u

struct behind_item {
    const uint8_t *p;
    uint64_t off, len;
};

struct vmm_behind {
    int fd; /* the output */
    bool threaded;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t work; /* an item was queued (mu) */
    pthread_cond_t done_cv; /* an item was done (mu) */
    struct behind_item ring[BEHIND_DEPTH];
    uint64_t made; /* accepted so far; item n is ring[(n - 1) % DEPTH] */
    uint64_t done; /* done or dropped, in order */
    int32_t ret;   /* the first failure (CT_EIO, CT_ENOSPC) or CT_OK */
    int err;       /* its errno */
    uint64_t *shown; /* where the guest reads `done` (guest memory) */
    bool ready;    /* the thread's start-up is over (mu) */
};

/* pwrite()s all of [p, p + len) at off: 0, or the errno (ENOSPC when the
 * file system takes no more bytes). */
int out_pwrite_all(int fd, const uint8_t *p, uint64_t len, uint64_t off);

/* The CT_* result for a failed output syscall's errno. */
int32_t behind_result(int err);

/* Sets up the queue for the output fd; with threaded, starts its thread
 * (every signal blocked). `shown`: where `done` is stored for the guest
 * as it changes (8-byte aligned), or NULL. Returns 0 or -errno with err
 * set. */
int behind_start(struct vmm_behind *b, int fd, bool threaded,
                 uint64_t *shown, char *err, size_t errlen);

/* Queues a write (done at once without a thread). CT_OK, or the queue's
 * failure, in which case nothing is queued. */
int32_t behind_push(struct vmm_behind *b, uint64_t off, const uint8_t *p,
                    uint64_t len);

/* How many writes were accepted. */
uint64_t behind_made(struct vmm_behind *b);

/* Waits until the first `ticket` writes are done (ticket <= made), then
 * returns the queue's failure or CT_OK; *err gets its errno. */
int32_t behind_wait(struct vmm_behind *b, uint64_t ticket, int *err);

/* Whether a write not yet done touches [off, off + len). */
bool behind_overlaps(struct vmm_behind *b, uint64_t off, uint64_t len);

#endif
