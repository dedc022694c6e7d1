/*
 * The VMM against hostile guests, the sandbox against forbidden syscalls.
 * Each run happens in a forked child that locks itself down exactly as
 * instar's does; its stderr (the one line the host prints) comes back
 * through a pipe.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest_image.h"
#include "output_bound.h"
#include "hostile.h"
#include "sandbox.h"
#include "session.h"

#include "test_vmm.h"

unsigned test_vcpus; /* s.vcpus of the next run_guest: 0 = automatic */
/* The next run_guest's output format and window (count/skip), for the
 * bound tests; reset after each run. */
uint32_t test_out_format = CT_FMT_RAW;
struct window_args test_args;
/* The next run_guest is an info run (the host keeps a record stream);
 * reset after each run. */
bool test_info_mode;

void need_kvm(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return;
    }
    const char *ci = getenv("CI");
    if (ci && !strcmp(ci, "true"))
        cr_assert_fail("/dev/kvm is not usable (%s) and CI=true: the VMM "
                       "tests must run in CI",
                       strerror(errno));
    cr_skip_test("/dev/kvm is not usable (%s): skipping VMM tests",
                 strerror(errno));
}

static int temp_file(const void *data, size_t len)
{
    char path[] = "/tmp/instar-vmm-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    if (len)
        cr_assert_eq(write(fd, data, len), (ssize_t)len);
    return fd;
}

/* Runs a guest sandboxed in a child. The input is `in` (a temp file) or,
 * when in_path is set, that file with backing roots (its directory plus
 * `extra`) so open_backing works as in instar. */
void run_guest_ex(const uint8_t *img, size_t len, uint64_t bs,
                         uint32_t in_fmt, const void *in, size_t in_len,
                         const char *in_path, const char *const *extra,
                         unsigned nextra, const struct vmm_limits *lim,
                         struct result *r)
{
    int pfd[2];
    static const struct vmm_limits dflt = {10000, 3000};
    int in_fd = in_path ? open(in_path, O_RDONLY | O_CLOEXEC)
                        : temp_file(in, in_len);
    struct vmm_files *files = NULL;
    char err[256];
    pid_t pid;

    cr_assert_geq(in_fd, 0);
    if (in_path) {
        struct stat st;
        cr_assert_eq(fstat(in_fd, &st), 0);
        in_len = (size_t)st.st_size;
        files = calloc(1, sizeof *files);
        cr_assert_eq(backing_init(files, in_path, in_fd, in_len, extra,
                                  nextra, err, sizeof err),
                     0, "%s", err);
    }

    memset(r, 0, sizeof *r);
    r->out_fd = temp_file(NULL, 0);
    cr_assert_eq(pipe(pfd), 0);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct vm vm;
        struct vmm_session s;
        memset(&s, 0, sizeof s);
        dup2(pfd[1], STDERR_FILENO);
        s.vm = &vm;
        s.in_name = "in.img";
        s.out_name = "out.img";
        s.in_fd = in_fd;
        s.in_size = in_len;
        s.files = files;
        s.out_fd = r->out_fd;
        s.in_format = in_fmt;
        s.out_format = test_out_format;
        s.args = test_args;
        s.args.bs = bs;
        s.notice = stderr;
        s.vcpus = test_vcpus;
        if (test_info_mode) {
            s.info = calloc(1, sizeof *s.info);
            s.info->buf = calloc(1, CT_INFO_TOTAL_MAX);
        }
        if (vmm_run(&s, img, len, lim ? lim : &dflt, true) == 0)
            _exit(0);
        fprintf(stderr, "%s", s.err);
        _exit(1);
    }
    close(pfd[1]);
    size_t got = 0;
    ssize_t n;
    while ((n = read(pfd[0], r->msg + got, sizeof r->msg - 1 - got)) > 0)
        got += (size_t)n;
    r->msg[got] = '\0';
    close(pfd[0]);
    close(in_fd);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    r->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r->signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    free(files);
    test_out_format = CT_FMT_RAW;
    memset(&test_args, 0, sizeof test_args);
    test_info_mode = false;
}

void run_guest(const uint8_t *img, size_t len, uint64_t bs,
                      uint32_t in_fmt, const void *in, size_t in_len,
                      const struct vmm_limits *lim, struct result *r)
{
    run_guest_ex(img, len, bs, in_fmt, in, in_len, NULL, NULL, 0, lim, r);
}

static void expect_stop(enum hostile_scenario sc, const char *needle)
{
    struct result r;
    need_kvm();
    run_guest(hostile_image, hostile_image_len, sc, CT_FMT_RAW, "x", 1, NULL,
              &r);
    cr_expect_eq(r.exit_code, 1, "scenario %d: exit %d signal %d msg '%s'",
                 sc, r.exit_code, r.signal, r.msg);
    cr_expect(strstr(r.msg, needle) != NULL,
              "scenario %d: '%s' does not contain '%s'", sc, r.msg, needle);
    cr_expect(strchr(r.msg, '\x1b') == NULL);
    close(r.out_fd);
}

/* An info run of the hostile guest: stops with `needle`, or (NULL)
 * finishes. */
static void info_run(enum hostile_scenario sc, uint64_t defect,
                     const char *needle)
{
    struct result r;
    need_kvm();
    test_info_mode = true;
    test_args.count = defect;
    run_guest(hostile_image, hostile_image_len, sc, CT_FMT_RAW, "x", 1, NULL,
              &r);
    if (!needle) {
        cr_expect_eq(r.exit_code, 0, "scenario %d: %s", sc, r.msg);
    } else {
        cr_expect_eq(r.exit_code, 1, "scenario %d: exit %d signal %d msg "
                                     "'%s'",
                     sc, r.exit_code, r.signal, r.msg);
        cr_expect(strstr(r.msg, needle) != NULL,
                  "scenario %d: '%s' does not contain '%s'", sc, r.msg,
                  needle);
    }
    close(r.out_fd);
}

Test(info, a_described_image_finishes) { info_run(H_INFO_OK, 0, NULL); }
Test(info, info_before_hello)
{
    info_run(H_INFO_BEFORE_HELLO, 0, "call 13 before hello");
}
Test(info, info_in_dd_mode)
{
    expect_stop(H_INFO_IN_DD_MODE, "info in dd mode");
}
Test(info, unknown_key)
{
    info_run(H_INFO_BAD, INFO_DEFECT_KEY, "unknown key 42");
}
Test(info, wrong_type)
{
    info_run(H_INFO_BAD, INFO_DEFECT_TYPE, "format has type 3, not 6");
}
Test(info, too_deep)
{
    info_run(H_INFO_BAD, INFO_DEFECT_DEEP, "extent is not allowed here");
}
Test(info, too_long)
{
    info_run(H_INFO_BAD, INFO_DEFECT_LONG,
             "backing-filename text of 4096 bytes");
}
Test(info, image_not_the_input)
{
    info_run(H_INFO_BAD, INFO_DEFECT_HANDLE, "handle 3 is not the input");
}
Test(info, a_second_image_without_chain)
{
    info_run(H_INFO_TWICE, 0, "second image without --backing-chain");
}
Test(info, exit_with_an_open_image)
{
    info_run(H_INFO_UNFINISHED, 0, "finished with info record");
}
Test(info, exit_without_a_description)
{
    info_run(H_INFO_NOTHING, 0, "no image described");
}
Test(info, batch_outside_ram)
{
    info_run(H_INFO_BAD_BATCH, 0, "info batch of 16 bytes at 0x47ffff8 is "
                                  "invalid");
}
Test(info, oversize_batch)
{
    info_run(H_INFO_OVERSIZE, 0, "is invalid");
}
Test(info, no_output_in_info_mode)
{
    info_run(H_OUTPUT_IN_INFO, 0, "begin_output in info mode");
}

Test(hostile, sanity_ok_guest_succeeds)
{
    struct result r;
    need_kvm();
    run_guest(hostile_image, hostile_image_len, H_OK_EMPTY, CT_FMT_RAW, "x",
              1, NULL, &r);
    cr_expect_eq(r.exit_code, 0, "msg: %s", r.msg);
    close(r.out_fd);
}

Test(hostile, byte_sized_port_access)
{
    char want[64];
    snprintf(want, sizeof want, "unexpected port access (port 0x%x, size 1",
             CT_PORT_BASE + CT_CALL_COUNT);
    expect_stop(H_BYTE_PORT_ACCESS, want);
}
Test(hostile, forged_fault_report)
{
    expect_stop(H_FORGED_FAULT, "bogus fault report");
}

/* With the I/O bitmap an outl to an unknown port faults in the guest, so
 * the host's own check is exercised directly (it is the only check on a
 * host whose KVM ignores the bitmap). */
Test(calls, unknown_call_number_stops)
{
    struct vmm_session s;
    memset(&s, 0, sizeof s);
    char want[64];
    cr_expect_eq(calls_dispatch(&s, CT_PORT_BASE + CT_CALL_COUNT, 0),
                 CALL_STOP);
    snprintf(want, sizeof want, "guest stopped: unknown call (port 0x%x)",
             CT_PORT_BASE + CT_CALL_COUNT);
    cr_expect_str_eq(s.err, want);
    memset(&s, 0, sizeof s);
    cr_expect_eq(calls_dispatch(&s, CT_PORT_BASE - 1, 0), CALL_STOP);
    cr_expect_str_eq(s.err, "guest stopped: unknown call (port 0x4ff)");
}

/* Every port that is not a call's is refused by the dispatch table itself,
 * before any handler runs (s.calls counts served calls). */
Test(calls, every_unused_number_stops)
{
    for (unsigned port = 0; port <= 0xffff; port++) {
        struct vmm_session s;
        if (port >= CT_PORT_BASE && port < CT_PORT_BASE + CT_CALL_COUNT)
            continue;
        memset(&s, 0, sizeof s);
        cr_assert_eq(calls_dispatch(&s, (uint16_t)port, 0), CALL_STOP);
        cr_assert(strstr(s.err, "unknown call"), "port 0x%x: %s", port,
                  s.err);
        cr_assert_eq(s.calls, 0);
    }
}
Test(hostile, port_outside_bitmap_faults)
{
    expect_stop(H_BAD_PORT_CPL3, "#GP general protection (vector 13)");
}
Test(hostile, args_outside_ram)
{
    expect_stop(H_ARGS_OUTSIDE_RAM, "read arguments at bad address");
}
Test(hostile, read_into_page_tables)
{
    expect_stop(H_READ_OUTSIDE_IO, "outside the I/O area");
}
Test(hostile, oversize_read) { expect_stop(H_READ_OVERSIZE, "exceeds"); }
Test(hostile, read_gpa_overflow)
{
    expect_stop(H_READ_GPA_OVERFLOW, "outside the I/O area");
}
Test(hostile, bad_handle) { expect_stop(H_READ_BAD_HANDLE, "bad handle 7"); }
Test(hostile, write_before_begin)
{
    expect_stop(H_WRITE_BEFORE_BEGIN, "write before begin_output");
}
Test(hostile, write_beyond_limit)
{
    expect_stop(H_WRITE_BEYOND_LIMIT, "beyond the output limit 1024");
}
Test(hostile, write_offset_overflow)
{
    expect_stop(H_WRITE_OFFSET_OVERFLOW, "beyond the output limit");
}
Test(hostile, exit_without_output)
{
    expect_stop(H_EXIT_INCOMPLETE, "finished without end_output");
}

Test(hostile, end_output_below_what_was_written)
{
    expect_stop(H_END_BELOW_WRITTEN, "end_output size 512 (written up to "
                                     "1024");
}
Test(hostile, end_output_past_the_bound)
{
    expect_stop(H_END_PAST_BOUND, "end_output size 1536");
}
Test(hostile, end_output_twice)
{
    expect_stop(H_END_TWICE, "end_output twice");
}
Test(hostile, end_output_before_begin)
{
    expect_stop(H_END_BEFORE_BEGIN, "end_output before begin_output");
}
Test(hostile, write_after_end_output)
{
    expect_stop(H_WRITE_AFTER_END, "write after end_output");
}

/* The kernel copy and allocate calls (ABI 6). */
Test(hostile, copy_from_unknown_handle)
{
    expect_stop(H_COPY_BAD_HANDLE, "copy of bad handle 7");
}
Test(hostile, copy_past_the_end_of_the_input)
{
    expect_stop(H_COPY_PAST_EOF, "past the end of file 0");
}
Test(hostile, copy_past_the_output_bound)
{
    expect_stop(H_COPY_PAST_BOUND, "copy at offset 1000 length 512 beyond "
                                   "the output limit 1024");
}
Test(hostile, copy_before_begin_output)
{
    expect_stop(H_COPY_BEFORE_BEGIN, "copy before begin_output");
}
Test(hostile, copy_oversize)
{
    expect_stop(H_COPY_OVERSIZE, "bad length");
}
Test(hostile, allocate_past_the_output_bound)
{
    expect_stop(H_ALLOCATE_PAST_BOUND, "copy at offset 1000 length 512 "
                                       "beyond");
}
Test(hostile, allocate_after_end_output)
{
    expect_stop(H_ALLOCATE_AFTER_END, "copy after end_output");
}
Test(hostile, copy_list_is_checked_whole_first)
{
    struct result r;
    need_kvm();
    run_guest(hostile_image, hostile_image_len, H_COPY_BAD_LIST, CT_FMT_RAW,
              "x", 1, NULL, &r);
    cr_expect_eq(r.exit_code, 1);
    cr_expect(strstr(r.msg, "beyond the output limit"), "%s", r.msg);
    struct stat st;
    cr_assert_eq(fstat(r.out_fd, &st), 0);
    cr_expect_eq(st.st_size, 0, "the good first segment was done");
    close(r.out_fd);
}
Test(hostile, progress_is_checked)
{
    struct result r;
    need_kvm();
    run_guest(hostile_image, hostile_image_len, H_PROGRESS_OK, CT_FMT_RAW,
              "x", 1, NULL, &r);
    cr_expect_eq(r.exit_code, 0, "%s", r.msg);
    close(r.out_fd);
    expect_stop(H_PROGRESS_BEFORE_BEGIN, "progress 0 of 1024 is invalid");
    expect_stop(H_PROGRESS_PAST_TOTAL, "progress 2048 of 1024 is invalid");
    expect_stop(H_PROGRESS_BACKWARDS, "progress 256 of 1024 is invalid");
    expect_stop(H_PROGRESS_WRONG_TOTAL, "is invalid here");
}

Test(hostile, map_is_checked)
{
    struct result r;
    need_kvm();
    run_guest(hostile_image, hostile_image_len, H_MAP_OK, CT_FMT_RAW, "x", 1,
              NULL, &r);
    cr_expect_eq(r.exit_code, 0, "%s", r.msg);
    close(r.out_fd);
    expect_stop(H_MAP_BAD_HANDLE, "map of bad handle 7");
    expect_stop(H_MAP_PAST_END, "map at 2 past the end of file 0");
}

Test(hostile, copy_list_too_long)
{
    expect_stop(H_COPY_TOO_MANY, "copy list of 1025 segments");
}

/* Runs a scenario that must succeed on a 1 KiB input of 'k's and reads
 * the first 2 KiB of its output. */
static void run_ok_2k(enum hostile_scenario sc, char got[2048])
{
    struct result r;
    char buf[1024];
    need_kvm();
    memset(buf, 'k', sizeof buf);
    run_guest(hostile_image, hostile_image_len, sc, CT_FMT_RAW, buf,
              sizeof buf, NULL, &r);
    cr_assert_eq(r.exit_code, 0, "%s", r.msg);
    cr_assert_eq(pread(r.out_fd, got, 2048, 0), 2048);
    close(r.out_fd);
}

/* A well-behaved copy: the input's bytes land in the output without the
 * guest reading them. */
Test(hostile, copy_and_allocate_fill_the_output)
{
    char got[2048];
    run_ok_2k(H_COPY_OK, got);
    for (int i = 0; i < 2048; i++)
        cr_assert_eq(got[i], i < 1024 ? 'k' : 0, "byte %d", i);
}

/* Write-behinds (ABI 10): done in order, a plain write over a queued one
 * lands after it, and the output is what synchronous writes would have
 * made. */
Test(hostile, write_behind_keeps_the_order_of_writes)
{
    char got[2048];
    run_ok_2k(H_BEHIND_OK, got);
    for (int i = 0; i < 2048; i++)
        cr_assert_eq(got[i], i >= 512 && i < 1024 ? 0 : 'k', "byte %d", i);
}

Test(hostile, write_with_unknown_flags)
{
    expect_stop(H_WRITE_BAD_FLAGS, "write flags 0x2");
}

Test(hostile, wait_for_a_write_never_made)
{
    expect_stop(H_WAIT_PAST_MADE, "wait for write 2 of 1 is invalid");
}

Test(hostile, wait_with_reserved_field)
{
    expect_stop(H_WAIT_RESERVED, "wait for write 0 of 0 is invalid");
}

/* The ports just past the last call: a 4-byte outl there needs bits the
 * bitmap leaves closed, so the guest faults before the host sees it; on a
 * host whose KVM ignored the bitmap the dispatch table would stop it
 * (calls::every_unused_number_stops). Either way the VM stops. */
Test(hostile, unused_call_numbers_stop)
{
    for (int i = 0; i < 3; i++)
        expect_stop(H_UNUSED_CALL_0 + i, "#GP general protection");
}

/* The bound of each structured format, as the host derives it from the
 * declared virtual size: a write ending exactly there is served, one byte
 * further stops the VM. */
Test(hostile, structured_output_bound)
{
    static const uint32_t fmts[] = {CT_FMT_QCOW2, CT_FMT_VMDK, CT_FMT_VPC,
                                    CT_FMT_VHDX};
    need_kvm();
    for (unsigned i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        uint64_t vsize = 5u << 20, vout, bound;
        struct result r;
        cr_assert(output_vsize(fmts[i], vsize, &vout));
        bound = output_bound(fmts[i], vout);
        /* The scenario takes the declared size and the bound through
         * skip and count; the window itself is the whole input. */
        test_out_format = fmts[i];
        test_args = (struct window_args){0, bound, vsize, false, false};
        run_guest(hostile_image, hostile_image_len, H_OK_AT_BOUND,
                  CT_FMT_RAW, "x", 1, NULL, &r);
        cr_expect_eq(r.exit_code, 0, "format %u: %s", fmts[i], r.msg);
        close(r.out_fd);
        test_out_format = fmts[i];
        test_args = (struct window_args){0, bound, vsize, false, false};
        run_guest(hostile_image, hostile_image_len, H_WRITE_PAST_BOUND,
                  CT_FMT_RAW, "x", 1, NULL, &r);
        cr_expect_eq(r.exit_code, 1, "format %u", fmts[i]);
        cr_expect(strstr(r.msg, "beyond the output limit"), "format %u: %s",
                  fmts[i], r.msg);
        close(r.out_fd);
    }
}
Test(hostile, null_dereference)
{
    expect_stop(H_NULL_DEREF, "#PF page fault (vector 14)");
}
Test(hostile, privileged_instruction)
{
    expect_stop(H_PRIVILEGED, "#GP general protection");
}
Test(hostile, call_before_hello)
{
    expect_stop(H_CALL_BEFORE_HELLO, "before hello");
}
Test(hostile, double_begin) { expect_stop(H_DOUBLE_BEGIN, "second"); }
Test(hostile, control_chars_are_sanitized)
{
    expect_stop(H_EXIT_CONTROL_CHARS, "evil ?[2J? message");
}

/* ---- the worker vCPU ---------------------------------------------------- */

static void expect_stop_vcpus(enum hostile_scenario sc, unsigned vcpus,
                              const char *needle)
{
    test_vcpus = vcpus;
    expect_stop(sc, needle);
    test_vcpus = 0;
}

Test(worker, runs_parks_and_is_woken_again)
{
    struct result r;
    need_kvm();
    test_vcpus = 2;
    run_guest(hostile_image, hostile_image_len, H_WORKER_OK, CT_FMT_RAW, "x",
              1, NULL, &r);
    cr_expect_eq(r.exit_code, 0, "msg: %s", r.msg);
    close(r.out_fd);
}
Test(worker, may_not_make_other_calls)
{
    expect_stop_vcpus(H_WORKER_FORBIDDEN_CALL, 2,
                      "guest stopped: the worker vCPU may only park (it "
                      "called port 0x509)");
}
Test(worker, bitmap_closes_the_data_calls)
{
    /* The worker's TSS opens only FAULT .. PARK: a read call faults in
     * the guest before the host sees it. */
    expect_stop_vcpus(H_WORKER_READ_CALL, 2,
                      "guest crashed on the worker vCPU: #GP general "
                      "protection (vector 13)");
}
Test(worker, fault_is_reported)
{
    expect_stop_vcpus(H_WORKER_FAULT, 2,
                      "guest crashed on the worker vCPU: #PF page fault "
                      "(vector 14)");
}
Test(worker, stack_overflow_faults_at_the_guard_page)
{
    struct result r;
    need_kvm();
    test_vcpus = 2;
    run_guest(hostile_image, hostile_image_len, H_WORKER_STACK_OVERFLOW,
              CT_FMT_RAW, "x", 1, NULL, &r);
    cr_expect_eq(r.exit_code, 1);
    cr_expect(strstr(r.msg, "guest crashed on the worker vCPU: #PF page "
                            "fault (vector 14) at rip"),
              "msg: %s", r.msg);
    const char *cr2 = strstr(r.msg, "cr2 0x");
    cr_assert(cr2, "msg: %s", r.msg);
    unsigned long long addr = strtoull(cr2 + 6, NULL, 16);
    cr_expect(addr >= CT_WGUARD_GPA && addr < CT_WGUARD_GPA + 0x1000,
              "cr2 0x%llx is not in the guard page", addr);
    close(r.out_fd);
}
Test(worker, spinning_worker_does_not_hold_up_the_exit)
{
    struct result r;
    struct timespec t0, t1;
    need_kvm();
    test_vcpus = 2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run_guest(hostile_image, hostile_image_len, H_WORKER_SPIN_MAIN_EXITS,
              CT_FMT_RAW, "x", 1, NULL, &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_expect_eq(r.exit_code, 0, "msg: %s", r.msg);
    cr_expect_lt(t1.tv_sec - t0.tv_sec, 5);
    close(r.out_fd);
}
Test(worker, main_vcpu_may_not_park)
{
    expect_stop_vcpus(H_PARK_FROM_MAIN, 2, "park from the main vCPU");
}
Test(worker, wake_without_a_worker_stops)
{
    expect_stop_vcpus(H_WAKE, 1, "wake, but the VM has no worker vCPU");
}
Test(worker, real_guest_with_one_vcpu_copies_raw)
{
    uint8_t in[5000], out[5120];
    struct result r;
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 7 + 1);
    need_kvm();
    test_vcpus = 1;
    run_guest(instar_guest_image, instar_guest_image_len, 512, CT_FMT_PROBE,
              in, sizeof in, NULL, &r);
    cr_assert_eq(r.exit_code, 0, "msg: %s", r.msg);
    cr_assert_eq(pread(r.out_fd, out, sizeof out, 0), 5120);
    cr_expect_arr_eq(out, in, sizeof in);
    close(r.out_fd);
}

Test(watchdog, idle_guest_is_stopped)
{
    struct result r;
    struct vmm_limits lim = {0, 300};
    need_kvm();
    run_guest(hostile_image, hostile_image_len, H_SPIN, CT_FMT_RAW, "x", 1,
              &lim, &r);
    cr_expect_eq(r.exit_code, 1);
    cr_expect(strstr(r.msg, "watchdog: guest made no call for 300 ms"),
              "msg: %s", r.msg);
    close(r.out_fd);
}

Test(watchdog, total_time_is_bounded)
{
    struct result r;
    struct vmm_limits lim = {400, 0};
    need_kvm();
    run_guest(hostile_image, hostile_image_len, H_SPIN, CT_FMT_RAW, "x", 1,
              &lim, &r);
    cr_expect_eq(r.exit_code, 1);
    cr_expect(strstr(r.msg, "watchdog: guest ran longer than 400 ms"),
              "msg: %s", r.msg);
    close(r.out_fd);
}

Test(vmm, real_guest_copies_raw)
{
    uint8_t in[3000];
    uint8_t out[4096];
    struct result r;
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 13 + 5);
    need_kvm();
    run_guest(instar_guest_image, instar_guest_image_len, 512, CT_FMT_PROBE,
              in, sizeof in, NULL, &r);
    cr_assert_eq(r.exit_code, 0, "msg: %s", r.msg);
    cr_assert_eq(pread(r.out_fd, out, sizeof out, 0), 3072);
    cr_expect_arr_eq(out, in, sizeof in);
    for (size_t i = sizeof in; i < 3072; i++)
        cr_expect_eq(out[i], 0);
    close(r.out_fd);
}

Test(vmm, real_guest_refuses_qcow2_magic)
{
    /* The qcow2 magic with version 0: parsed by the driver and refused,
     * never copied as raw. */
    uint8_t in[1024] = "QFI\xfb";
    struct result r;
    need_kvm();
    run_guest(instar_guest_image, instar_guest_image_len, 512, CT_FMT_PROBE,
              in, sizeof in, NULL, &r);
    cr_expect_eq(r.exit_code, 1);
    cr_expect_str_eq(r.msg,
                     "in.img: qcow2: version 0 not supported (only 2 and 3)");
    close(r.out_fd);
}

/* ---- the sandbox itself ------------------------------------------------ */

Test(sandbox, forbidden_syscall_dies_with_sigsys)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char err[256];
        int fd = open("/dev/null", O_RDWR);
        struct sandbox_fds f = {.vcpu_fd = fd, .out_fd = fd,
                                .keep = {fd}, .nkeep = 1};
        if (sandbox_lockdown(&f, err, sizeof err) < 0)
            _exit(2);
        /* Allowed: a write to stderr (to /dev/null here). */
        dup2(fd, STDERR_FILENO); /* forbidden: dies here */
        _exit(3);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
              "status 0x%x: expected death by SIGSYS", st);
}

Test(sandbox, allowed_calls_still_work_and_open_is_denied)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char err[256];
        int in = open("/dev/zero", O_RDONLY);
        int out = open("/dev/null", O_WRONLY);
        char buf[16];
        struct sandbox_fds f = {.vcpu_fd = -1, .out_fd = out,
                                .keep = {in}, .nkeep = 1};
        if (sandbox_lockdown(&f, err, sizeof err) < 0)
            _exit(2);
        if (pread(in, buf, sizeof buf, 0) != sizeof buf ||
            pwrite(out, buf, sizeof buf, 0) != sizeof buf)
            _exit(4);
        syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY);
        _exit(3);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "status 0x%x", st);
}

/* A child that locks down and lseeks a 1-byte file: the map call's
 * SEEK_DATA and SEEK_HOLE, then `whence` too when it is not -1. */
static int lseek_child(int whence)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char err[256], path[] = "/tmp/instar-lseek-XXXXXX";
        int in = mkstemp(path);
        if (in < 0)
            _exit(5);
        unlink(path);
        if (pwrite(in, "x", 1, 0) != 1)
            _exit(5);
        struct sandbox_fds f = {.vcpu_fd = -1, .out_fd = -1,
                                .keep = {in}, .nkeep = 1};
        if (sandbox_lockdown(&f, err, sizeof err) < 0)
            _exit(2);
        if (lseek(in, 0, SEEK_DATA) != 0 || lseek(in, 0, SEEK_HOLE) != 1)
            _exit(4);
        if (whence != -1)
            lseek(in, 0, whence);
        _exit(0);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return st;
}

/* lseek is allowed only to ask for data and holes (the map call). */
Test(sandbox, lseek_only_for_data_and_holes)
{
    int st = lseek_child(-1);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
    st = lseek_child(SEEK_SET);
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "status 0x%x", st);
    st = lseek_child(SEEK_END);
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "status 0x%x", st);
}

/* copy_file_range is allowed only into the output: into any other fd
 * the process dies. */
Test(sandbox, copy_file_range_only_into_the_output)
{
    for (int into_output = 1; into_output >= 0; into_output--) {
        int in = temp_file("0123456789abcdef", 16);
        int out = temp_file(NULL, 0), other = temp_file(NULL, 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            char err[256];
            struct sandbox_fds f = {.vcpu_fd = -1, .out_fd = out,
                                    .keep = {in, other}, .nkeep = 2};
            loff_t a = 0, b = 0;
            if (sandbox_lockdown(&f, err, sizeof err) < 0)
                _exit(2);
            if (copy_file_range(in, &a, into_output ? out : other, &b, 16,
                                0) != 16 ||
                fallocate(out, 0, 0, 4096) < 0)
                _exit(4);
            _exit(0);
        }
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        if (into_output)
            cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x",
                      st);
        else
            cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
                      "status 0x%x: a copy into another fd must be killed",
                      st);
        close(in);
        close(out);
        close(other);
    }
}

static bool file_has(const char *path, const char *line)
{
    char buf[8192];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return strstr(buf, line) != NULL;
}

/* True when every thread of pid has the line in its status; *nthreads
 * says how many there are. */
static bool status_has(pid_t pid, const char *line, int *nthreads)
{
    char path[320];
    struct dirent *e;
    bool all = true;
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    *nthreads = 0;
    if (!d)
        return false;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%s/status", (int)pid,
                 e->d_name);
        all = all && file_has(path, line);
        ++*nthreads;
    }
    closedir(d);
    return all && *nthreads > 0;
}

Test(sandbox, seccomp_mode_2_while_guest_runs)
{
    need_kvm();
    int in_fd = temp_file("x", 1), out_fd = temp_file(NULL, 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct vm vm;
        struct vmm_session s;
        struct vmm_limits lim = {20000, 20000};
        memset(&s, 0, sizeof s);
        s.vm = &vm;
        s.in_name = "in";
        s.in_fd = in_fd;
        s.in_size = 1;
        s.out_fd = out_fd;
        s.out_format = CT_FMT_RAW;
        s.args.bs = H_SPIN;
        s.notice = stderr;
        s.vcpus = 2; /* the worker's thread must be confined too */
        vmm_run(&s, hostile_image, hostile_image_len, &lim, true);
        _exit(1);
    }
    bool seccomp = false, nnp = false;
    int threads = 0, t2 = 0;
    for (int i = 0; i < 200 && !(seccomp && nnp && threads >= 2); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        seccomp = status_has(pid, "Seccomp:\t2", &threads);
        nnp = status_has(pid, "NoNewPrivs:\t1", &t2);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(in_fd);
    close(out_fd);
    /* The main and worker vCPU threads (KVM may add a helper task of its
     * own, e.g. kvm-nx-lpage-recovery, which inherits the filter too). */
    cr_expect_geq(threads, 2, "expected the main and the worker vCPU "
                              "threads, found %d", threads);
    cr_expect(seccomp, "a guest-running thread is not in seccomp mode 2");
    cr_expect(nnp, "no_new_privs is not set");
}
