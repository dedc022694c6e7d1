/* Lock-down applied after the VM is built and before the first KVM_RUN. */
#ifndef INSTAR_VMM_SANDBOX_H
#define INSTAR_VMM_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#define SANDBOX_KEEP_MAX 24

struct sandbox_fds {
    int vcpu_fd;
    int wvcpu_fd; /* the worker vCPU, or -1 */
    int out_fd;   /* the output, or -1 (info: no output) */
    bool threads; /* a host thread besides the main one (futex waits) */
    bool stdout_ok; /* keep stdout and allow write(1) (info's rendering) */
    int keep[SANDBOX_KEEP_MAX]; /* input, backing roots: kept open */
    unsigned nkeep;
    int roots[SANDBOX_KEEP_MAX]; /* directories openat2 may start from */
    unsigned nroots;
};

/* How many files (the input included) the locked-down process will be
 * able to hold open: the open-files limit is lowered to what the kept fds
 * plus CT_HANDLES_MAX need, but never above the hard limit (raising that
 * needs privilege), so a small hard limit bounds the files a chain may
 * reference. */
unsigned sandbox_files_max(const struct sandbox_fds *f);

/* Closes every fd but stderr and the given ones, sets rlimits, no_new_privs
 * and a kill-by-default seccomp filter on every thread of the process (the
 * worker vCPU's too). Returns 0 or -errno with err set. */
int sandbox_lockdown(const struct sandbox_fds *f, char *err, size_t errlen);

#endif
