#define _GNU_SOURCE
#include "behind.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "instar_ct.h"

int out_pwrite_all(int fd, const uint8_t *p, uint64_t len, uint64_t off)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, p + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return ENOSPC;
        done += (uint64_t)n;
    }
    return 0;
}

int32_t behind_result(int err)
{
    return err == ENOSPC || err == EDQUOT ? CT_ENOSPC : CT_EIO;
}

/* One more write done (under mu): the guest may see it without a call. */
static void one_done(struct vmm_behind *b)
{
    b->done++;
    if (b->shown)
        __atomic_store_n(b->shown, b->done, __ATOMIC_RELEASE);
}

/* Records the first failure; the queue's later writes are dropped. */
static void failed(struct vmm_behind *b, int e)
{
    if (b->ret == CT_OK) {
        b->ret = behind_result(e);
        b->err = e;
    }
}

/* Never returns: the thread ends with the process. */
__attribute__((noreturn)) static void *behind_main(void *arg)
{
    struct vmm_behind *b = arg;

    /* Thread start-up (robust list, rseq, ...) is over: the sandbox may
     * now be locked down. */
    pthread_mutex_lock(&b->mu);
    b->ready = true;
    pthread_cond_broadcast(&b->done_cv);
    for (;;) {
        while (b->done == b->made)
            pthread_cond_wait(&b->work, &b->mu);
        /* The item stays in the ring until it is done: the producer
         * never reuses a slot before then. */
        struct behind_item it = b->ring[b->done % BEHIND_DEPTH];
        bool skip = b->ret != CT_OK;
        pthread_mutex_unlock(&b->mu);
        int e = skip ? 0 : out_pwrite_all(b->fd, it.p, it.len, it.off);
        pthread_mutex_lock(&b->mu);
        if (e)
            failed(b, e);
        one_done(b);
        pthread_cond_broadcast(&b->done_cv);
    }
}

int behind_start(struct vmm_behind *b, int fd, bool threaded,
                 uint64_t *shown, char *err, size_t errlen)
{
    sigset_t all, old;
    int ret;

    memset(b, 0, sizeof *b);
    b->fd = fd;
    b->shown = shown;
    b->ret = CT_OK;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->work, NULL);
    pthread_cond_init(&b->done_cv, NULL);
    if (!threaded)
        return 0;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the thread */
    ret = pthread_create(&b->tid, NULL, behind_main, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret != 0) {
        snprintf(err, errlen, "cannot start the write-behind thread: %s",
                 strerror(ret));
        return -ret;
    }
    b->threaded = true;
    pthread_mutex_lock(&b->mu);
    while (!b->ready)
        pthread_cond_wait(&b->done_cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

int32_t behind_push(struct vmm_behind *b, uint64_t off, const uint8_t *p,
                    uint64_t len)
{
    const struct behind_item item = {p, off, len};
    int32_t ret;

    pthread_mutex_lock(&b->mu);
    if (!b->threaded && b->ret == CT_OK) {
        int e = out_pwrite_all(b->fd, p, len, off);
        if (e)
            failed(b, e);
        else
            b->made++, one_done(b);
    } else if (b->threaded) {
        while (b->ret == CT_OK && b->made - b->done == BEHIND_DEPTH)
            pthread_cond_wait(&b->done_cv, &b->mu);
        if (b->ret == CT_OK) {
            b->ring[b->made % BEHIND_DEPTH] = item;
            b->made++;
            pthread_cond_signal(&b->work);
        }
    }
    ret = b->ret;
    pthread_mutex_unlock(&b->mu);
    return ret;
}

uint64_t behind_made(struct vmm_behind *b)
{
    pthread_mutex_lock(&b->mu);
    uint64_t n = b->made;
    pthread_mutex_unlock(&b->mu);
    return n;
}

int32_t behind_wait(struct vmm_behind *b, uint64_t ticket, int *err)
{
    pthread_mutex_lock(&b->mu);
    while (b->done < ticket)
        pthread_cond_wait(&b->done_cv, &b->mu);
    int32_t ret = b->ret;
    *err = b->err;
    pthread_mutex_unlock(&b->mu);
    return ret;
}

bool behind_overlaps(struct vmm_behind *b, uint64_t off, uint64_t len)
{
    bool hit = false;
    pthread_mutex_lock(&b->mu);
    for (uint64_t i = b->done; i < b->made && !hit; i++) {
        const struct behind_item *it = &b->ring[i % BEHIND_DEPTH];
        hit = it->off < off + len && off < it->off + it->len;
    }
    pthread_mutex_unlock(&b->mu);
    return hit;
}
