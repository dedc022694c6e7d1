#define _GNU_SOURCE
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "instar_ct.h"
#include "session.h"

static void wait_token(struct vmm_worker *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->token)
        pthread_cond_wait(&w->cv, &w->mu);
    w->token = false;
    pthread_mutex_unlock(&w->mu);
}

/* Records why the worker stopped and never runs it again. The thread
 * must not return: glibc's thread exit makes system calls the sandbox
 * does not allow, so it sleeps until the process ends. */
__attribute__((noreturn, format(printf, 2, 3))) static void
stop(struct vmm_worker *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    __atomic_store_n(&w->failed, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&w->mu);
    for (;;)
        pthread_cond_wait(&w->cv, &w->mu);
}

/* The only call the worker makes in normal operation. */
static void park(struct vmm_worker *w, uint32_t gpa)
{
    struct ct_vcpu_signal a;
    uint8_t *p = vmm_gpa(w->vm, gpa, sizeof a);
    if (!p)
        stop(w, "guest stopped: worker vCPU's park arguments at bad "
                "address 0x%x", (unsigned)gpa);
    memcpy(&a, p, sizeof a);
    if (a.reserved0 != 0)
        stop(w, "guest stopped: worker vCPU's park with reserved field "
                "set");
    wait_token(w);
    a.ret = CT_OK;
    memcpy(p + offsetof(struct ct_vcpu_signal, ret), &a.ret, sizeof a.ret);
}

static void *worker_main(void *arg)
{
    struct vmm_worker *w = arg;
    char msg[WORKER_ERR_MAX - 64];
    uint16_t port;
    uint32_t data;

    /* Thread start-up (robust list, rseq, ...) is over: the sandbox may
     * now be locked down. */
    pthread_mutex_lock(&w->mu);
    w->ready = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    wait_token(w); /* the first wake-up starts the worker */
    for (;;) {
        if (ioctl(w->vm->wvcpu_fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            stop(w, "guest stopped: worker vCPU: KVM_RUN: %s",
                 strerror(errno));
        }
        if (run_exit_call(w->vm, w->vm->wrun, &port, &data, msg,
                          sizeof msg) < 0)
            stop(w, "guest stopped: worker vCPU: %s", msg);
        if (port == CT_PORT_BASE + CT_CALL_PARK) {
            park(w, data);
        } else if (port == CT_PORT_BASE + CT_CALL_FAULT) {
            if (calls_fault_msg(w->vm, data, msg, sizeof msg) < 0)
                stop(w, "guest stopped: worker vCPU: %s", msg);
            stop(w, "guest crashed on the worker vCPU: %s", msg);
        } else {
            stop(w, "guest stopped: the worker vCPU may only park (it "
                    "called port 0x%x)", (unsigned)port);
        }
    }
    return NULL;
}

int worker_start(struct vmm_worker *w, const struct vm *vm, char *err,
                 size_t errlen)
{
    sigset_t all, old;
    int ret;

    memset(w, 0, sizeof *w);
    w->vm = vm;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the thread */
    ret = pthread_create(&w->tid, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret != 0) {
        snprintf(err, errlen, "cannot start the worker vCPU: %s",
                 strerror(ret));
        return -ret;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->ready)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void worker_wake(struct vmm_worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->token = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

const char *worker_failure(struct vmm_worker *w)
{
    return __atomic_load_n(&w->failed, __ATOMIC_ACQUIRE) ? w->err : NULL;
}
