/*
 * Builds the VM for one job and runs the vCPU until the guest exits, dies
 * or the watchdog fires. Every exit reason other than a well-formed call
 * stops the VM with one line in s->err.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"
#include "session.h"

#define WATCHDOG_TICK_MS 100

static volatile sig_atomic_t wd_ticks;

static void on_alarm(int sig)
{
    (void)sig;
    wd_ticks++;
}

static int watchdog_start(void)
{
    struct sigaction sa;
    struct itimerval it = {{0, WATCHDOG_TICK_MS * 1000},
                           {0, WATCHDOG_TICK_MS * 1000}};
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART: KVM_RUN must return */
    sigemptyset(&sa.sa_mask);
    wd_ticks = 0;
    if (sigaction(SIGALRM, &sa, NULL) < 0 || setitimer(ITIMER_REAL, &it, 0))
        return -errno;
    return 0;
}

static void watchdog_stop(void)
{
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
}

/* Two vCPUs when asked, or by default when this process may run on two
 * CPUs: the worker spins between batches, which only pays off if it does
 * not steal the main vCPU's CPU. */
static unsigned want_vcpus(const struct vmm_session *s)
{
    cpu_set_t set;
    if (s->vcpus)
        return s->vcpus;
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return 1;
    return CPU_COUNT(&set) >= 2 ? 2 : 1;
}

/* The last component of of= as given: qemu writes it into a vmdk's extent
 * line. */
static void out_base(const char *of, struct ct_bootinfo *bi)
{
    const char *slash = of ? strrchr(of, '/') : NULL;
    const char *base = slash ? slash + 1 : of ? of : "";
    size_t n = strlen(base);
    if (n > CT_OUT_NAME_MAX)
        n = 0; /* cannot be: the output was created with this name */
    memcpy(bi->out_name, base, n);
    bi->out_name_len = (uint32_t)n;
}

static void write_bootinfo(struct vmm_session *s, const uint8_t *entropy)
{
    struct ct_bootinfo bi = {
        .abi_version = CT_ABI_VERSION,
        .in_format = s->in_format,
        .out_format = s->out_format,
        .flags = (s->args.has_count ? CT_BOOT_HAS_COUNT : 0) |
                 (s->args.has_skip ? CT_BOOT_HAS_SKIP : 0) |
                 (s->in_dmg_name ? CT_BOOT_INPUT_DMG_NAME : 0) |
                 (s->info && s->info->chain ? CT_BOOT_BACKING_CHAIN : 0) |
                 (s->progress ? CT_BOOT_PROGRESS : 0),
        .bs = s->args.bs,
        .count = s->args.count,
        .skip = s->args.skip,
        .io_base = CT_IO_GPA,
        .io_size = CT_IO_SIZE,
        .heap_base = CT_HEAP_GPA,
        .heap_size = CT_HEAP_SIZE,
        .vcpus = s->worker ? 2 : 1,
        .files_max = s->files->files_max,
        .unix_time = (uint64_t)time(NULL),
        .mode = s->info      ? CT_MODE_INFO
                : s->convert ? CT_MODE_CONVERT
                             : CT_MODE_DD,
        .out = s->out_params,
        .sparse_min = s->sparse_min,
    };
    memcpy(bi.entropy, entropy, sizeof bi.entropy);
    out_base(s->out_name, &bi);
    memcpy(vmm_gpa(s->vm, CT_BOOTINFO_GPA, sizeof bi), &bi, sizeof bi);
}

int run_exit_call(const struct vm *vm, const struct kvm_run *run,
                  uint16_t *port, uint32_t *data, char *buf, size_t len)
{
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        if (run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 4 ||
            run->io.count != 1) {
            snprintf(buf, len,
                     "unexpected port access (port 0x%x, size %u, count %u)",
                     (unsigned)run->io.port, (unsigned)run->io.size,
                     (unsigned)run->io.count);
            return -1;
        }
        if (run->io.data_offset > vm->run_size - sizeof *data) {
            snprintf(buf, len, "bad KVM I/O data offset");
            return -1;
        }
        memcpy(data, (const uint8_t *)run + run->io.data_offset,
               sizeof *data);
        *port = run->io.port;
        return 0;
    case KVM_EXIT_HLT:
        snprintf(buf, len, "unexpected halt");
        return -1;
    case KVM_EXIT_SHUTDOWN:
        snprintf(buf, len, "triple fault");
        return -1;
    case KVM_EXIT_MMIO:
        snprintf(buf, len, "access to unmapped memory at 0x%llx",
                 (unsigned long long)run->mmio.phys_addr);
        return -1;
    case KVM_EXIT_FAIL_ENTRY:
        snprintf(buf, len, "vCPU entry failed (reason 0x%llx)",
                 (unsigned long long)
                     run->fail_entry.hardware_entry_failure_reason);
        return -1;
    case KVM_EXIT_INTERNAL_ERROR:
        snprintf(buf, len, "KVM internal error %u",
                 (unsigned)run->internal.suberror);
        return -1;
    default:
        snprintf(buf, len, "unexpected exit reason %u",
                 (unsigned)run->exit_reason);
        return -1;
    }
}

static enum call_next handle_exit(struct vmm_session *s)
{
    char msg[SESSION_ERR_MAX - 32];
    uint16_t port;
    uint32_t data;

    if (run_exit_call(s->vm, s->vm->run, &port, &data, msg, sizeof msg) < 0)
        return session_fail(s, "guest stopped: %s", msg);
    return calls_dispatch(s, port, data);
}

/* A failed worker fails the run; the main vCPU notices at its next exit
 * (at worst the next watchdog tick). */
static void check_worker(struct vmm_session *s)
{
    const char *why = s->worker ? worker_failure(s->worker) : NULL;
    if (why)
        session_fail(s, "%s", why);
}

static void run_loop(struct vmm_session *s, const struct vmm_limits *lim)
{
    uint64_t last_calls = 0, idle_ticks = 0, seen_ticks = 0;

    while (!s->done) {
        if (ioctl(s->vm->vcpu_fd, KVM_RUN, 0) == 0) {
            handle_exit(s);
            check_worker(s);
            continue;
        }
        check_worker(s);
        if (errno != EINTR && errno != EAGAIN) {
            session_fail(s, "guest stopped: KVM_RUN: %s", strerror(errno));
            break;
        }
        /* A watchdog tick interrupted the vCPU. */
        uint64_t ticks = (uint64_t)wd_ticks;
        idle_ticks = s->calls == last_calls ? idle_ticks + ticks - seen_ticks
                                            : 0;
        last_calls = s->calls;
        seen_ticks = ticks;
        if (lim->total_ms && ticks * WATCHDOG_TICK_MS >= lim->total_ms)
            session_fail(s, "watchdog: guest ran longer than %llu ms",
                         (unsigned long long)lim->total_ms);
        else if (lim->idle_ms && idle_ticks * WATCHDOG_TICK_MS >= lim->idle_ms)
            session_fail(s, "watchdog: guest made no call for %llu ms",
                         (unsigned long long)lim->idle_ms);
    }
}

int vmm_run(struct vmm_session *s, const uint8_t *img, size_t img_len,
            const struct vmm_limits *lim, bool lockdown)
{
    char err[256];
    struct sandbox_fds f = {.wvcpu_fd = -1};
    uint64_t canary;
    uint8_t entropy[sizeof ((struct ct_bootinfo *)0)->entropy];
    int ret;

    if (!s->files) {
        /* No roots: the hostile-guest tests and any caller that has no
         * backing directories get a table with just the input. */
        static struct vmm_files only_input;
        only_input.nroots = 0;
        only_input.nfiles = 1;
        only_input.pool_used = 0;
        only_input.files[0] = (struct vmm_file){.fd = s->in_fd,
                                                .size = s->in_size};
        s->files = &only_input;
    }
    if ((ret = vm_create(s->vm, err, sizeof err)) < 0 ||
        (ret = loader_load(s->vm, img, img_len, err, sizeof err)) < 0)
        goto fail;
    /* Only a locked-down run gets a worker: its thread is never joined,
     * it ends with the process. If KVM cannot add the vCPU, the run uses
     * one. */
    s->worker = NULL;
    if (lockdown && want_vcpus(s) > 1 &&
        vm_add_worker(s->vm, err, sizeof err) == 0) {
        static struct vmm_worker worker;
        if ((ret = worker_start(&worker, s->vm, err, sizeof err)) < 0)
            goto fail;
        s->worker = &worker;
    }
    /* The write-behind thread likewise: only where it can never be
     * joined; elsewhere queued writes are done at once. */
    static struct vmm_behind behind;
    bool threaded = lockdown && !s->info;
    uint64_t *shown = (uint64_t *)vmm_gpa(s->vm, CT_BEHIND_DONE_GPA, 8);
    if ((ret = behind_start(&behind, s->out_fd, threaded, shown, err,
                            sizeof err)) < 0)
        goto fail;
    s->behind = &behind;
    f.threads = s->worker != NULL || threaded;
    /* What lock-down keeps, known now: the boot info says how many files
     * the run will be able to open. */
    f.vcpu_fd = s->vm->vcpu_fd;
    f.wvcpu_fd = s->vm->wvcpu_fd;
    f.out_fd = s->info ? -1 : s->out_fd;
    /* info renders after the run; convert -p prints progress, as qemu-img
     * convert -p does, on stdout */
    f.stdout_ok = s->info != NULL || (s->progress && s->progress == stdout);
    f.keep[f.nkeep++] = s->files->files[0].fd;
    for (unsigned i = 0; i < s->files->nroots && i < VMM_ROOTS_MAX; i++)
        f.keep[f.nkeep++] = f.roots[f.nroots++] = s->files->roots[i].fd;
    s->files->files_max = lockdown ? sandbox_files_max(&f) : CT_HANDLES_MAX;
    if (getrandom(&canary, sizeof canary, 0) != sizeof canary ||
        getrandom(entropy, sizeof entropy, 0) != sizeof entropy) {
        snprintf(err, sizeof err, "getrandom: %s", strerror(errno));
        ret = -errno;
        goto fail;
    }
    write_bootinfo(s, entropy);
    if ((ret = cpu_setup(s->vm, CT_IMAGE_GPA, CT_BOOTINFO_GPA, canary, err,
                         sizeof err)) < 0)
        goto fail;
    vm_drop_setup_fds(s->vm);
    if ((ret = watchdog_start()) < 0) {
        snprintf(err, sizeof err, "watchdog: %s", strerror(-ret));
        goto fail;
    }
    if (lockdown && (ret = sandbox_lockdown(&f, err, sizeof err)) < 0)
        goto fail;
    run_loop(s, lim);
    if (!lockdown)
        watchdog_stop(); /* a locked-down process only exits after this */
    return s->ok ? 0 : -1;
fail:
    session_fail(s, "cannot start the sandbox: %s", err);
    return -1;
}
