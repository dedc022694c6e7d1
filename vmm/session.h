/*
 * What the host knows about one guest run: the files it may touch, the dd
 * operands, and how far the guest has got. Every guest call is checked
 * against this state (calls.c).
 */
#ifndef INSTAR_VMM_SESSION_H
#define INSTAR_VMM_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "backing.h"
#include "behind.h"
#include "info.h"
#include "instar_ct.h"
#include "vm.h"
#include "window.h"
#include "worker.h"

/* Room for a full path and the longest guest message: a message's reason
 * comes last and must never be cut. */
#define SESSION_ERR_MAX (4096 + CT_MSG_MAX + 256)

struct vmm_limits {
    uint64_t total_ms; /* whole run; 0 = unlimited */
    uint64_t idle_ms;  /* longest time without a guest call; 0 = unlimited */
};

struct vmm_session {
    /* Set up by the caller. */
    struct vm *vm;
    const char *in_name;  /* for messages only */
    const char *out_name; /* for messages; its last component goes to the
                             guest (the vmdk extent line) */
    int in_fd;
    uint64_t in_size;
    struct vmm_files *files; /* NULL: vmm_run makes one with no roots, so
                                every open_backing is refused */
    int out_fd;
    uint32_t in_format;
    bool in_dmg_name; /* if= ends in ".dmg" and -f was not given */
    uint32_t out_format;
    struct window_args args;
    FILE *notice; /* where notices and guest logs go (stderr) */
    unsigned vcpus; /* 1 or 2; 0: 2 when this process may use 2 CPUs */
    bool no_kernel_copy; /* answer copy and allocate with CT_ENOTSUP
                            (INSTAR_NO_KERNEL_COPY=1, for tests) */
    /* Info mode (ABI 7): the records the guest sends; NULL for dd. The
     * run has no output then (out_fd -1) and writes only to stdout,
     * after the guest has finished. */
    struct info_stream *info;
    /* Convert mode (ABI 8): the whole image, shaped by out_params, zeros
     * left unallocated as sparse_min says; dd leaves all three zero. */
    bool convert;
    struct ct_output_params out_params;
    uint64_t sparse_min;
    FILE *progress; /* where to print the guest's progress; NULL: don't */

    /* The worker vCPU's thread (run.c), NULL with one vCPU. */
    struct vmm_worker *worker;
    /* The output's write-behind queue (run.c; ABI 10). */
    struct vmm_behind *behind;

    /* Progress, owned by calls.c. */
    bool hello;
    bool begun;
    bool ended;         /* end_output accepted */
    uint64_t window_out; /* the window's length rounded up to 512 */
    uint64_t out_vsize; /* the output's virtual size (vpc: CHS-rounded) */
    uint64_t out_limit; /* writes must end at or before this: the format's
                           largest file (shared/output_bound.h) */
    uint64_t out_high;  /* highest byte written + 1 */
    int write_errno;    /* the first failed write's errno, 0 if none */
    uint64_t calls;
    uint64_t progress_done;    /* the guest's last progress report */
    uint64_t progress_shown;   /* hundredths of a percent last printed */
    uint64_t progress_at_ms;   /* when (CLOCK_MONOTONIC) */

    /* Outcome: done is set by exit, fault or any violation. */
    bool done;
    bool ok;
    char err[SESSION_ERR_MAX];
};

enum call_next { CALL_CONTINUE, CALL_STOP };

/* Handles one port write of the guest (a call). */
enum call_next calls_dispatch(struct vmm_session *s, uint16_t port,
                              uint32_t data);

/* Records the first failure; always returns CALL_STOP. */
enum call_next session_fail(struct vmm_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Describes the fault record at gpa in buf ("#PF page fault (vector 14)
 * at rip ..."); -1 when gpa is not the fault record. */
int calls_fault_msg(const struct vm *vm, uint32_t gpa, char *buf,
                    size_t len);

/* Decodes a vCPU exit (run.c): 0 with the port and the data word for a
 * well-formed 4-byte port write (a call), else -1 with buf saying why. */
int run_exit_call(const struct vm *vm, const struct kvm_run *run,
                  uint16_t *port, uint32_t *data, char *buf, size_t len);

/* Creates the VM, loads the guest image, runs it to completion (run.c).
 * With lockdown, the sandbox is applied before the first KVM_RUN.
 * Returns 0 when the guest finished successfully; otherwise s->err says
 * why. */
int vmm_run(struct vmm_session *s, const uint8_t *img, size_t img_len,
            const struct vmm_limits *lim, bool lockdown);

#endif
