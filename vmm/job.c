/*
 * The jailer's side of a run, shared by every subcommand: open
 * the input, catch the signals that would end us, fork the sandboxed child
 * that builds the VM and runs the guest, wait for its exit status.
 */
#define _GNU_SOURCE
#include "job.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "guest_image.h"

#define DEFAULT_IDLE_MS 30000ull           /* a chunk takes milliseconds */
#define DEFAULT_TOTAL_MS (12ull * 3600000) /* far beyond any sane image */

static struct output *job_out;
static volatile pid_t child_pid;

/* Signals whose default action does not end the process. */
static bool harmless_signal(int sig)
{
    return sig == SIGCHLD || sig == SIGCONT || sig == SIGSTOP ||
           sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU ||
           sig == SIGURG || sig == SIGWINCH || sig == SIGKILL;
}

/* Any signal that ends the parent ends the run: the sandbox goes first,
 * then a temporary name if the output has one (an unnamed output simply
 * disappears), then the parent dies of the same signal. */
static void on_signal(int sig)
{
    if (child_pid > 0)
        kill(child_pid, SIGKILL);
    if (job_out)
        output_signal_cleanup(job_out);
    signal(sig, SIG_DFL);
    raise(sig); /* delivered when the handler returns */
}

void job_catch_signals(struct output *out)
{
    job_out = out;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (harmless_signal(sig) || sigaction(sig, NULL, &old) < 0 ||
            old.sa_handler != SIG_DFL)
            continue;
        sigaction(sig, &sa, NULL); /* glibc's internal ones refuse */
    }
}

/* The child takes back the default action of every signal the parent
 * caught, and dies with the parent however the parent ends (SIGKILL
 * included). If the parent is gone already, the child was too late to
 * ask: it quits before building anything. */
static void child_signals(pid_t parent)
{
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction old;
        if (!harmless_signal(sig) && sigaction(sig, NULL, &old) == 0 &&
            old.sa_handler == on_signal)
            signal(sig, SIG_DFL);
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
        getppid() != parent)
        _exit(1);
}

static uint64_t env_ms(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    char *end;
    if (!v || !*v)
        return dflt;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end) {
        fprintf(stderr, "instar: warning: ignoring bad %s=%s\n", name, v);
        return dflt;
    }
    return n;
}

int job_open_input(const char *path, uint64_t *size)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        fprintf(stderr, "instar: Could not open '%s': %s\n", path,
                strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0)
        goto bad;
    if (S_ISREG(st.st_mode)) {
        *size = (uint64_t)st.st_size;
    } else if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, size) < 0)
            goto bad;
    } else {
        fprintf(stderr,
                "instar: Could not open '%s': not a regular file or block "
                "device\n",
                path);
        close(fd);
        return -1;
    }
    return fd;
bad:
    fprintf(stderr, "instar: Could not open '%s': %s\n", path,
            strerror(errno));
    close(fd);
    return -1;
}

int job_pick_format(const char *name, const char *in_path, bool input)
{
    int fmt;
    if (!name)
        return input ? CT_FMT_PROBE : CT_FMT_RAW;
    fmt = dd_format_lookup(name);
    if (fmt < 0) {
        if (input)
            fprintf(stderr, "instar: Could not open '%s': Unknown driver "
                            "'%s'\n",
                    in_path, name);
        else
            fprintf(stderr, "instar: Unknown file format '%s'\n", name);
        return -1;
    }
    /* Every known format has a guest reader; the guest's writer registry
     * refuses an output format it has no writer for. */
    return fmt;
}

/* The sandboxed child: never returns. */
static void run_child(struct vmm_session *s,
                      int (*after)(struct vmm_session *s))
{
    struct vm vm;
    struct vmm_limits lim = {
        env_ms("INSTAR_WATCHDOG_TOTAL_MS", DEFAULT_TOTAL_MS),
        env_ms("INSTAR_WATCHDOG_IDLE_MS", DEFAULT_IDLE_MS),
    };
    s->vm = &vm;
    /* For tests: the guest's own read-and-write path only. */
    s->no_kernel_copy = env_ms("INSTAR_NO_KERNEL_COPY", 0) != 0;
    /* INSTAR_VCPUS=1 turns the worker vCPU off (0 or unset: automatic). */
    s->vcpus = (unsigned)env_ms("INSTAR_VCPUS", 0);
    if (s->vcpus > CT_VCPUS_MAX) {
        fprintf(stderr, "instar: warning: ignoring INSTAR_VCPUS=%u (at most "
                        "%u)\n", s->vcpus, (unsigned)CT_VCPUS_MAX);
        s->vcpus = 0;
    }
    if (vmm_run(s, instar_guest_image, instar_guest_image_len, &lim, true)) {
        fprintf(stderr, "instar: %s\n", s->err);
        _exit(1);
    }
    _exit(after ? after(s) : 0);
}

static int wait_child(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st) == 0 ? 0 : -1;
    if (WIFSIGNALED(st))
        fprintf(stderr, "instar: sandbox process killed by signal %d%s\n",
                WTERMSIG(st),
                WTERMSIG(st) == SIGSYS ? " (forbidden system call)" : "");
    return -1;
}

int job_run(struct vmm_session *s, int (*after)(struct vmm_session *s))
{
    pid_t pid, parent = getpid();

    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "instar: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        child_signals(parent);
        run_child(s, after);
    }
    child_pid = pid;
    int r = wait_child(pid);
    child_pid = 0;
    return r < 0 ? 1 : 0;
}

int job_input(struct vmm_session *s, const char *path, const char *fmt_name,
              const char *const *dirs, unsigned ndirs)
{
    char err[3 * PATH_MAX];
    int fmt = job_pick_format(fmt_name, path, true);

    if (fmt < 0 || (s->in_fd = job_open_input(path, &s->in_size)) < 0)
        return -1;
    s->in_name = path;
    s->in_format = (uint32_t)fmt;
    /* qemu picks its dmg driver by name when no -f is given; the guest
     * refuses such an image unless its content is another format. */
    size_t len = strlen(path);
    s->in_dmg_name = fmt == CT_FMT_PROBE && len > 4 &&
                     !strcmp(path + len - 4, ".dmg");
    /* Allocated here: the sandboxed child may not allocate. */
    s->files = calloc(1, sizeof *s->files);
    if (!s->files || backing_init(s->files, path, s->in_fd, s->in_size,
                                  dirs, ndirs, err, sizeof err) < 0) {
        fprintf(stderr, "instar: %s\n", s->files ? err : "out of memory");
        job_close_input(s);
        return -1;
    }
    return 0;
}

void job_close_input(struct vmm_session *s)
{
    if (s->in_fd >= 0)
        close(s->in_fd);
    s->in_fd = -1;
    free(s->files);
    s->files = NULL;
}

int job_run_output(struct vmm_session *s, struct output *out)
{
    char err[3 * PATH_MAX];

    job_catch_signals(out);
    if (output_prepare(out, s->out_name, OUTPUT_UNNAMED, err, sizeof err) <
        0) {
        fprintf(stderr, "instar: %s\n", err);
        return 1;
    }
    s->out_fd = out->fd;
    fflush(stdout); /* the child may print progress */
    if (job_run(s, NULL) != 0) {
        output_abort(out);
        return 1;
    }
    if (output_commit(out, err, sizeof err) < 0) {
        fprintf(stderr, "instar: %s\n", err);
        return 1;
    }
    return 0;
}
