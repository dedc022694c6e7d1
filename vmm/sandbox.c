/*
 * The seccomp allowlist for the process that runs the guest. Everything
 * not listed kills the process (SIGSYS). After lock-down the process can
 * only: run the vCPUs, read its files, write the output, open files beneath
 * the allowed directories (openat2, for backing files), write messages to
 * stderr, return from the watchdog's signal handler, and exit. It cannot
 * map, fork, exec, rename or unlink anything: the parent does the commit.
 */
#define _GNU_SOURCE
#include "sandbox.h"

#include <errno.h>
#include <linux/futex.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "instar_ct.h"

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* close_range() over the gaps between the fds we keep (sorted). */
static int close_other_fds(const int *keep, unsigned n)
{
    unsigned lo = 0;
    for (unsigned i = 0; i < n; i++) {
        if ((unsigned)keep[i] > lo &&
            close_range(lo, (unsigned)keep[i] - 1, 0) < 0)
            return -errno;
        lo = (unsigned)keep[i] + 1;
    }
    return close_range(lo, ~0u, 0) < 0 ? -errno : 0;
}

/* The fds lock-down keeps, sorted, duplicates and -1 dropped. */
static unsigned kept_fds(const struct sandbox_fds *f,
                         int keep[SANDBOX_KEEP_MAX + 5])
{
    int all[SANDBOX_KEEP_MAX + 5] = {STDERR_FILENO, f->vcpu_fd, f->out_fd,
                                     f->wvcpu_fd,
                                     f->stdout_ok ? STDOUT_FILENO : -1};
    unsigned n = 5, out = 0;
    for (unsigned i = 0; i < f->nkeep && i < SANDBOX_KEEP_MAX; i++)
        all[n++] = f->keep[i];
    qsort(all, n, sizeof all[0], cmp_int);
    for (unsigned i = 0; i < n; i++)
        if (all[i] >= 0 && (out == 0 || keep[out - 1] != all[i]))
            keep[out++] = all[i];
    return out;
}

/* The open-files limit after lock-down: room for every handle, never more
 * than the hard limit allows. */
static rlim_t nofile_limit(const int *keep, unsigned n)
{
    struct rlimit cur;
    rlim_t want = (rlim_t)keep[n - 1] + 1 + CT_HANDLES_MAX;
    if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
        cur.rlim_max < want)
        return cur.rlim_max;
    return want;
}

unsigned sandbox_files_max(const struct sandbox_fds *f)
{
    int keep[SANDBOX_KEEP_MAX + 5];
    unsigned n = kept_fds(f, keep);
    rlim_t lim = nofile_limit(keep, n);
    /* New fds take the lowest free numbers below the limit; the input is
     * one of the kept fds and counts as a handle. */
    rlim_t room = lim > n ? lim - n : 0;
    return room + 1 < CT_HANDLES_MAX ? (unsigned)room + 1 : CT_HANDLES_MAX;
}

/* What only a run with an output needs. */
static int add_output_rules(scmp_filter_ctx ctx, int out_fd)
{
    int r = 0;
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(pwrite64), 1,
                          SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)out_fd));
    /* copy: input bytes to the output in the kernel, never to any other
     * fd (arg 2 is fd_out); allocate: zeros without a buffer. */
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(copy_file_range), 1,
                          SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)out_fd));
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fallocate), 1,
                          SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)out_fd));
    /* end_output: the output's final size (a writer may end in a hole). */
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ftruncate), 1,
                          SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)out_fd));
    return r;
}

static int add_rules(scmp_filter_ctx ctx, const struct sandbox_fds *f)
{
    int r = 0;
    /* The data path: one exit per chunk, served by pread/pwrite. */
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2,
                          SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)f->vcpu_fd),
                          SCMP_A1(SCMP_CMP_EQ, KVM_RUN));
    if (f->wvcpu_fd >= 0)
        r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2,
                              SCMP_A0(SCMP_CMP_EQ,
                                      (scmp_datum_t)f->wvcpu_fd),
                              SCMP_A1(SCMP_CMP_EQ, KVM_RUN));
    if (f->threads) {
        /* The worker's park/wake and the write-behind queue: private
         * mutexes and condition variables. Only plain wait and wake (no
         * requeue, no PI). */
        static const int ops[] = {
            FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE,
            FUTEX_WAIT_BITSET_PRIVATE,
            FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME};
        for (unsigned i = 0; i < sizeof ops / sizeof ops[0]; i++)
            r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(futex), 1,
                                  SCMP_A1(SCMP_CMP_EQ,
                                          (scmp_datum_t)ops[i]));
    }
    /* pread on any fd: the fds of backing files are only known later, and
     * every fd this process holds is one it may read (the output, the
     * vCPU and O_PATH directory fds just fail). */
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(pread64), 0);
    /* The map call: where a file's data and holes are. Only SEEK_DATA and
     * SEEK_HOLE, which say nothing pread could not; every transfer is
     * pread/pwrite at an explicit offset, so the file position is unused. */
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(lseek), 1,
                          SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)SEEK_DATA));
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(lseek), 1,
                          SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)SEEK_HOLE));
    if (f->out_fd >= 0)
        r |= add_output_rules(ctx, f->out_fd);
    /* Backing files: openat2 only from an allowed directory fd (the host
     * adds RESOLVE_BENEATH; the policy in backing.c runs first), fstat to
     * check it is a regular file, close to drop a refused one. */
    for (unsigned i = 0; i < f->nroots; i++)
        r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat2), 1,
                              SCMP_A0(SCMP_CMP_EQ,
                                      (scmp_datum_t)f->roots[i]));
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fstat), 0);
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(close), 0);
    /* Notices and the final message. */
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(write), 1,
                          SCMP_A0(SCMP_CMP_EQ, STDERR_FILENO));
    /* info: the rendered output, once the guest has finished. */
    if (f->stdout_ok)
        r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(write), 1,
                              SCMP_A0(SCMP_CMP_EQ, STDOUT_FILENO));
    /* The watchdog's SIGALRM handler returns through rt_sigreturn. */
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigreturn), 0);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
    /* Sanitizer builds only: ASan's _exit interceptor tears down the
     * alternate signal stack. Release builds never get this rule. */
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sigaltstack), 0);
#endif
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(exit_group), 0);
    r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(exit), 0);
    return r;
}

int sandbox_lockdown(const struct sandbox_fds *f, char *err, size_t errlen)
{
    struct rlimit zero = {0, 0}, nofile;
    int keep[SANDBOX_KEEP_MAX + 5];
    unsigned n = kept_fds(f, keep);
    scmp_filter_ctx ctx;
    int ret;

    if ((ret = close_other_fds(keep, n)) < 0) {
        snprintf(err, errlen, "sandbox: close_range: %s", strerror(-ret));
        return ret;
    }
    /* No core dumps of guest memory; no more fds than backing files need
     * even if seccomp failed; and never more than the hard limit, which
     * only a privileged process could raise. */
    nofile.rlim_cur = nofile.rlim_max = nofile_limit(keep, n);
    if (setrlimit(RLIMIT_CORE, &zero) < 0 ||
        setrlimit(RLIMIT_NOFILE, &nofile) < 0 ||
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 ||
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        snprintf(err, errlen, "sandbox: %s", strerror(errno));
        return -errno;
    }
    ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!ctx) {
        snprintf(err, errlen, "sandbox: seccomp_init failed");
        return -ENOMEM;
    }
    ret = add_rules(ctx, f);
    /* TSYNC: the filter covers the worker's thread, started earlier. */
    if (ret == 0)
        ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (ret == 0)
        ret = seccomp_load(ctx);
    seccomp_release(ctx);
    if (ret != 0) {
        snprintf(err, errlen, "sandbox: cannot load the seccomp filter: %s",
                 strerror(ret < 0 ? -ret : EINVAL));
        return ret < 0 ? ret : -EINVAL;
    }
    return 0;
}
