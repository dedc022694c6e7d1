/*
 * `instar dd`: the host flow. The parent process is the jailer: it parses
 * operands, opens the input, prepares the atomic output, then forks a child
 * that builds the VM, locks itself down and runs the guest. The parent
 * never maps guest memory; it only commits or discards the output by the
 * child's exit status. Order of checks follows qemu-img dd (docs/dd.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "dd.h"
#include "guest_image.h"
#include "output.h"
#include "session.h"

#define DEFAULT_IDLE_MS 30000ull           /* a chunk takes milliseconds */
#define DEFAULT_TOTAL_MS (12ull * 3600000) /* far beyond any sane image */

/* Messages carry up to two paths and a reason; the reason must fit. */
#define DD_MSG_MAX (3 * PATH_MAX)

static struct output out;
static volatile pid_t child_pid;

void dd_usage(FILE *f)
{
    fputs("usage: instar dd [-f FMT] [-O OUTPUT_FMT] if=INPUT of=OUTPUT "
          "[bs=N] [count=N] [skip=N]\n"
          "\n"
          "Copies a window of a disk image, like qemu-img dd, with every byte "
          "of\nthe image handled inside a KVM sandbox.\n"
          "\n"
          "  if=INPUT     input image (regular file or block device)\n"
          "  of=OUTPUT    output image; written to a temporary file and "
          "renamed\n"
          "               into place only on success\n"
          "  bs=N         block size, 1..2147483647 (default 512)\n"
          "  count=N      stop copying at block N of the input\n"
          "  skip=N       start copying at block N of the input\n"
          "  -f FMT       input format (default: probe the content)\n"
          "  -O FMT       output format (default: raw)\n"
          "  -U           accepted for compatibility (instar never locks "
          "images)\n"
          "  --backing-dir DIR\n"
          "               also allow backing files, extents and parents "
          "from DIR\n"
          "               (default: only the input's own directory and "
          "below)\n"
          "  -h, --help   show this help\n"
          "\n"
          "N takes the suffixes k, M, G, T, P, E (powers of 1024) or b "
          "(bytes).\n"
          "Input formats: raw, qcow2, vmdk, vpc, vhdx. A fixed VHD is read as\n"
          "vpc only with -f vpc, as in qemu-img. Output formats: raw (the\n"
          "default, not the input's format), qcow2, vmdk (monolithicSparse),\n"
          "vpc (dynamic VHD), vhdx (dynamic), as qemu-img dd writes them.\n"
          "\n"
          "Environment: INSTAR_WATCHDOG_TOTAL_MS (default 43200000) and\n"
          "INSTAR_WATCHDOG_IDLE_MS (default 30000) bound the guest's run "
          "time and\nthe time between its calls; 0 disables a limit.\n",
          f);
}

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
    output_signal_cleanup(&out);
    signal(sig, SIG_DFL);
    raise(sig); /* delivered when the handler returns */
}

/* Catches every signal that would end the process and is not ignored
 * already (nohup's SIGHUP stays ignored). */
static void catch_signals(void)
{
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

/* Opens if= without blocking (a FIFO must not hang us) and accepts only
 * regular files and block devices. */
static int open_input(const char *path, uint64_t *size)
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

/* Picks the -f / -O format; prints qemu's message for unknown names. */
static int pick_format(const char *name, const char *in_path, bool input)
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
static void run_child(struct vmm_session *s)
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
    _exit(0);
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

static int run_job(struct vmm_session *s)
{
    char err[DD_MSG_MAX];
    pid_t pid, parent = getpid();

    catch_signals();
    if (output_prepare(&out, s->out_name, OUTPUT_UNNAMED, err, sizeof err) <
        0) {
        fprintf(stderr, "instar: %s\n", err);
        return 1;
    }
    s->out_fd = out.fd;
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "instar: fork: %s\n", strerror(errno));
        output_abort(&out);
        return 1;
    }
    if (pid == 0) {
        child_signals(parent);
        run_child(s);
    }
    child_pid = pid;
    if (wait_child(pid) < 0) {
        output_abort(&out);
        return 1;
    }
    child_pid = 0;
    if (output_commit(&out, err, sizeof err) < 0) {
        fprintf(stderr, "instar: %s\n", err);
        return 1;
    }
    return 0;
}

int dd_main(int argc, char **argv)
{
    struct dd_opts o;
    struct vmm_session s;
    char err[DD_MSG_MAX];
    int in_fmt, out_fmt, ret;

    if (dd_parse_args(argc, argv, &o, err, sizeof err, stderr) < 0) {
        fprintf(stderr, "instar: %s\n", err);
        return 1;
    }
    if (o.help) {
        dd_usage(stdout);
        return 0;
    }
    memset(&s, 0, sizeof s);
    s.in_name = o.in_path;
    s.out_name = o.out_path;
    s.notice = stderr;
    s.args = (struct window_args){o.bs, o.count, o.skip, o.has_count,
                                  o.has_skip};
    if ((in_fmt = pick_format(o.in_fmt, o.in_path, true)) < 0)
        return 1;
    if ((s.in_fd = open_input(o.in_path, &s.in_size)) < 0)
        return 1;
    if ((out_fmt = pick_format(o.out_fmt, o.in_path, false)) < 0) {
        close(s.in_fd);
        return 1;
    }
    s.in_format = (uint32_t)in_fmt;
    /* qemu picks its dmg driver by name when no -f is given; the guest
     * refuses such an image unless its content is another format. */
    size_t in_len = strlen(o.in_path);
    s.in_dmg_name = in_fmt == CT_FMT_PROBE && in_len > 4 &&
                    !strcmp(o.in_path + in_len - 4, ".dmg");
    s.out_format = (uint32_t)out_fmt;
    /* Allocated here: the sandboxed child may not allocate. */
    s.files = calloc(1, sizeof *s.files);
    if (!s.files ||
        backing_init(s.files, o.in_path, s.in_fd, s.in_size, o.backing_dirs,
                     o.n_backing_dirs, err, sizeof err) < 0) {
        fprintf(stderr, "instar: %s\n", s.files ? err : "out of memory");
        close(s.in_fd);
        free(s.files);
        return 1;
    }
    ret = run_job(&s);
    close(s.in_fd);
    free(s.files);
    return ret;
}
