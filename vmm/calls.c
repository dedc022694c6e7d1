/*
 * The host side of the call table. Each call: copy the argument struct out
 * of guest memory once, validate the copy, act, write back only `ret` and
 * the OUT fields. Any malformed request stops the VM (the guest is
 * untrusted; a confused guest is a broken guest). Host I/O failures are
 * returned as CT_EIO so the guest can say what it was doing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "output_bound.h"
#include "session.h"

enum call_next session_fail(struct vmm_session *s, const char *fmt, ...)
{
    if (!s->done) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->err, sizeof s->err, fmt, ap);
        va_end(ap);
        s->done = true;
        s->ok = false;
    }
    return CALL_STOP;
}

static bool copy_in(struct vmm_session *s, uint32_t gpa, void *dst,
                    size_t len, const char *call)
{
    const void *src = vmm_gpa(s->vm, gpa, len);
    if (!src) {
        session_fail(s, "guest stopped: %s arguments at bad address 0x%x",
                     call, (unsigned)gpa);
        return false;
    }
    memcpy(dst, src, len);
    return true;
}

/* Writes back [off, off+len) of the struct; the range was checked by
 * copy_in (same gpa, larger length). */
static void copy_out(struct vmm_session *s, uint32_t gpa, const void *src,
                     size_t off, size_t len)
{
    uint8_t *dst = vmm_gpa(s->vm, (uint64_t)gpa + off, len);
    if (dst)
        memcpy(dst, (const uint8_t *)src + off, len);
}

#define COPY_OUT(s, gpa, a, field)                                            \
    copy_out(s, gpa, &(a), offsetof(__typeof__(a), field), sizeof((a).field))

/* Terminal-safe copy of a guest message: no control bytes reach a tty. */
static void sanitize(char *dst, size_t cap, const uint8_t *src, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
    dst[n] = '\0';
}

/* Guest buffer for a data transfer: must lie inside the I/O area. */
static void *io_buf(struct vmm_session *s, uint64_t gpa, uint64_t len,
                    const char *call)
{
    void *p = NULL;
    if (len > CT_IO_MAX_LEN)
        session_fail(s, "guest stopped: %s length %llu exceeds %u", call,
                     (unsigned long long)len, (unsigned)CT_IO_MAX_LEN);
    else if (!(p = vmm_gpa_in(s->vm, gpa, len, CT_IO_GPA,
                              CT_IO_GPA + CT_IO_SIZE)))
        session_fail(s,
                     "guest stopped: %s buffer [0x%llx, +%llu) outside the "
                     "I/O area",
                     call, (unsigned long long)gpa, (unsigned long long)len);
    return p;
}

static enum call_next do_hello(struct vmm_session *s, uint32_t gpa)
{
    struct ct_hello a;
    if (!copy_in(s, gpa, &a, sizeof a, "hello"))
        return CALL_STOP;
    if (s->hello)
        return session_fail(s, "guest stopped: second hello");
    a.ret = a.abi_version == CT_ABI_VERSION ? CT_OK : CT_EINVAL;
    s->hello = a.ret == CT_OK;
    COPY_OUT(s, gpa, a, ret);
    return CALL_CONTINUE;
}

static const struct vmm_file *file_of(struct vmm_session *s, uint32_t h,
                                      const char *call)
{
    if (h >= s->files->nfiles) {
        session_fail(s, "guest stopped: %s of bad handle %u", call,
                     (unsigned)h);
        return NULL;
    }
    return &s->files->files[h];
}

static enum call_next do_size(struct vmm_session *s, uint32_t gpa)
{
    struct ct_size a;
    const struct vmm_file *f;
    if (!copy_in(s, gpa, &a, sizeof a, "size"))
        return CALL_STOP;
    if (!(f = file_of(s, a.handle, "size")))
        return CALL_STOP;
    a.size = f->size;
    a.ret = CT_OK;
    COPY_OUT(s, gpa, a, ret);
    COPY_OUT(s, gpa, a, size);
    return CALL_CONTINUE;
}

/* lseek(SEEK_DATA or SEEK_HOLE) clamped to [off, size]; -1 when the file
 * system cannot say (the caller then answers "all data"). ENXIO: no data
 * past off. */
static int64_t seek_clamped(int fd, uint64_t off, int whence, uint64_t size)
{
    off_t r = lseek(fd, (off_t)off, whence);
    if (r < 0)
        return errno == ENXIO ? (int64_t)size : -1;
    if ((uint64_t)r < off)
        return (int64_t)off;
    return (uint64_t)r > size ? (int64_t)size : (int64_t)r;
}

static enum call_next do_map(struct vmm_session *s, uint32_t gpa)
{
    struct ct_map a;
    const struct vmm_file *f;
    int64_t data, hole;

    if (!copy_in(s, gpa, &a, sizeof a, "map"))
        return CALL_STOP;
    if (!(f = file_of(s, a.handle, "map")))
        return CALL_STOP;
    if (a.offset > f->size)
        return session_fail(s, "guest stopped: map at %llu past the end of "
                               "file %u (%llu bytes)",
                            (unsigned long long)a.offset, (unsigned)a.handle,
                            (unsigned long long)f->size);
    /* The size is the one taken at open: a file that changed since is
     * clamped to it, so the answer stays within what the guest knows. */
    data = a.offset == f->size
               ? (int64_t)f->size
               : seek_clamped(f->fd, a.offset, SEEK_DATA, f->size);
    hole = data < 0 || (uint64_t)data == f->size
               ? (int64_t)f->size
               : seek_clamped(f->fd, (uint64_t)data, SEEK_HOLE, f->size);
    if (data < 0 || hole < 0) {
        data = (int64_t)a.offset;
        hole = (int64_t)f->size;
    }
    a.data = (uint64_t)data;
    a.hole = (uint64_t)hole;
    a.ret = CT_OK;
    COPY_OUT(s, gpa, a, data);
    COPY_OUT(s, gpa, a, hole);
    COPY_OUT(s, gpa, a, ret);
    return CALL_CONTINUE;
}

static enum call_next do_read(struct vmm_session *s, uint32_t gpa)
{
    struct ct_read a;
    const struct vmm_file *f;
    uint64_t end;
    uint8_t *buf;

    if (!copy_in(s, gpa, &a, sizeof a, "read"))
        return CALL_STOP;
    if (!(f = file_of(s, a.handle, "read")))
        return CALL_STOP;
    if (!(buf = io_buf(s, a.gpa, a.len, "read")))
        return CALL_STOP;
    if (__builtin_add_overflow(a.offset, a.len, &end) ||
        end > (uint64_t)INT64_MAX)
        return session_fail(s, "guest stopped: read offset %llu + %llu "
                               "overflows",
                            (unsigned long long)a.offset,
                            (unsigned long long)a.len);
    a.nread = 0;
    a.ret = CT_OK;
    while (a.nread < a.len) {
        ssize_t n = pread(f->fd, buf + a.nread, a.len - a.nread,
                          (off_t)(a.offset + a.nread));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            a.ret = CT_EIO;
            break;
        }
        if (n == 0)
            break; /* end of file: the guest decides what that means */
        a.nread += (uint64_t)n;
    }
    COPY_OUT(s, gpa, a, ret);
    COPY_OUT(s, gpa, a, nread);
    return CALL_CONTINUE;
}

/* An info run has no output: its calls are violations. */
static bool no_output(struct vmm_session *s, const char *call)
{
    if (!s->info)
        return false;
    session_fail(s, "guest stopped: %s in info mode", call);
    return true;
}

/* A failed output syscall: the guest only learns CT_EIO or CT_ENOSPC; the
 * real cause (a full disk, a quota) is the host's to tell at the end. */
static int32_t out_failed(struct vmm_session *s, int e)
{
    if (!s->write_errno)
        s->write_errno = e;
    return behind_result(e);
}

/* The first failure of a queued write, or CT_OK; recorded for the final
 * message. */
static int32_t queue_failure(struct vmm_session *s, uint64_t ticket)
{
    int e = 0;
    int32_t ret = behind_wait(s->behind, ticket, &e);
    if (ret != CT_OK && !s->write_errno)
        s->write_errno = e;
    return ret;
}

/* Every queued write done: before the output changes any other way. */
static int32_t drain(struct vmm_session *s)
{
    return queue_failure(s, behind_made(s->behind));
}

static enum call_next do_write(struct vmm_session *s, uint32_t gpa)
{
    struct ct_write a;
    uint64_t end;
    const uint8_t *buf;

    if (no_output(s, "write") || !copy_in(s, gpa, &a, sizeof a, "write"))
        return CALL_STOP;
    if (!s->begun || s->ended)
        return session_fail(s, "guest stopped: write %s",
                            s->ended ? "after end_output"
                                     : "before begin_output");
    if (a.flags & ~CT_WRITE_BEHIND)
        return session_fail(s, "guest stopped: write flags 0x%x",
                            (unsigned)a.flags);
    if (!(buf = io_buf(s, a.gpa, a.len, "write")))
        return CALL_STOP;
    if (__builtin_add_overflow(a.offset, a.len, &end) || end > s->out_limit)
        return session_fail(s,
                            "guest stopped: write at offset %llu length %llu "
                            "beyond the output limit %llu",
                            (unsigned long long)a.offset,
                            (unsigned long long)a.len,
                            (unsigned long long)s->out_limit);
    if (a.flags & CT_WRITE_BEHIND) {
        a.ret = a.len ? behind_push(s->behind, a.offset, buf, a.len)
                      : queue_failure(s, 0);
    } else {
        /* A queued write to the same bytes goes first; any failure of
         * the queue fails this write too. */
        a.ret = behind_overlaps(s->behind, a.offset, a.len)
                    ? drain(s)
                    : queue_failure(s, 0);
        int e = a.ret == CT_OK
                    ? out_pwrite_all(s->out_fd, buf, a.len, a.offset)
                    : 0;
        if (e)
            a.ret = out_failed(s, e);
    }
    if (a.ret == CT_OK && end > s->out_high)
        s->out_high = end;
    COPY_OUT(s, gpa, a, ret);
    return CALL_CONTINUE;
}

/* Waits for the write-behinds whose memory the guest is about to reuse. */
static enum call_next do_wait(struct vmm_session *s, uint32_t gpa)
{
    struct ct_wait a;

    if (no_output(s, "wait") || !copy_in(s, gpa, &a, sizeof a, "wait"))
        return CALL_STOP;
    if (a.reserved0 != 0 || !s->begun ||
        a.ticket > behind_made(s->behind))
        return session_fail(s, "guest stopped: wait for write %llu of %llu "
                               "is invalid here",
                            (unsigned long long)a.ticket,
                            (unsigned long long)behind_made(s->behind));
    a.ret = queue_failure(s, a.ticket);
    COPY_OUT(s, gpa, a, ret);
    return CALL_CONTINUE;
}

static void show_progress(struct vmm_session *s, uint64_t hundredths);

static enum call_next do_begin_output(struct vmm_session *s, uint32_t gpa)
{
    struct ct_begin_output a;
    struct window w;

    if (no_output(s, "begin_output") ||
        !copy_in(s, gpa, &a, sizeof a, "begin_output"))
        return CALL_STOP;
    if (s->begun)
        return session_fail(s, "guest stopped: second begin_output");
    if (a.format != s->out_format)
        return session_fail(s, "guest stopped: begin_output format %u, "
                               "expected %u",
                            (unsigned)a.format, (unsigned)s->out_format);
    /* The same window math the guest used, on the size it claims: the
     * guest cannot widen what it may write. A size the format cannot take
     * is the guest's to refuse before it gets here. */
    if (!window_compute(a.virtual_size, &s->args, &w) ||
        !output_vsize_p(s->out_format, &s->out_params, w.out_size,
                        &s->out_vsize))
        return session_fail(s, "guest stopped: begin_output virtual size "
                               "%llu out of range",
                            (unsigned long long)a.virtual_size);
    if (w.skip_past_end)
        fprintf(s->notice, "instar: %s: cannot skip to specified offset\n",
                s->in_name);
    s->begun = true;
    s->window_out = w.out_size;
    if (s->progress)
        show_progress(s, 0);
    s->out_limit = output_bound_p(s->out_format, &s->out_params,
                                  s->out_vsize);
    a.ret = CT_OK;
    COPY_OUT(s, gpa, a, ret);
    return CALL_CONTINUE;
}

static enum call_next do_log(struct vmm_session *s, uint32_t gpa)
{
    struct ct_log a;
    char msg[CT_MSG_MAX + 1];
    const uint8_t *p;

    if (!copy_in(s, gpa, &a, sizeof a, "log"))
        return CALL_STOP;
    if (a.len > CT_MSG_MAX || !(p = vmm_gpa(s->vm, a.gpa, a.len)))
        return session_fail(s, "guest stopped: bad log message");
    sanitize(msg, sizeof msg, p, (size_t)a.len);
    fprintf(s->notice, "instar: guest: %s\n", msg);
    a.ret = CT_OK;
    COPY_OUT(s, gpa, a, ret);
    return CALL_CONTINUE;
}

static enum call_next do_exit(struct vmm_session *s, uint32_t gpa)
{
    struct ct_exit a;
    char msg[CT_MSG_MAX + 1] = "";
    const uint8_t *p;

    if (!copy_in(s, gpa, &a, sizeof a, "exit"))
        return CALL_STOP;
    /* No write left running when the process ends; its failure, if any,
     * is the one to report. */
    if (!s->info)
        (void)drain(s);
    if (a.msg_len > CT_MSG_MAX || !(p = vmm_gpa(s->vm, a.msg_gpa, a.msg_len)))
        return session_fail(s, "guest stopped: bad exit message");
    sanitize(msg, sizeof msg, p, (size_t)a.msg_len);
    /* A failed write ends the guest's run too, but its cause is the
     * output's, not the input's: say so as qemu does, with the file. The
     * errno text is untranslated: no locale files are opened here. */
    if (a.status == CT_STATUS_FAIL && s->write_errno)
        return session_fail(s, "error while writing to output image file "
                               "'%s': %s",
                            s->out_name, strerrordesc_np(s->write_errno));
    if (a.status == CT_STATUS_FAIL)
        return session_fail(s, "%s: %s", s->in_name,
                            msg[0] ? msg : "conversion failed");
    if (a.status != CT_STATUS_OK)
        return session_fail(s, "guest stopped: bad exit status %u",
                            (unsigned)a.status);
    char why[256];
    if (s->info && info_stream_done(s->info, why, sizeof why) != 0)
        return session_fail(s, "guest stopped: finished with %s", why);
    if (!s->info && !s->ended)
        return session_fail(s, "guest stopped: finished without end_output");
    s->done = true;
    s->ok = true;
    return CALL_STOP;
}

static enum call_next do_end_output(struct vmm_session *s, uint32_t gpa)
{
    struct ct_end_output a;

    if (no_output(s, "end_output") ||
        !copy_in(s, gpa, &a, sizeof a, "end_output"))
        return CALL_STOP;
    if (!s->begun || s->ended)
        return session_fail(s, "guest stopped: end_output %s",
                            s->ended ? "twice" : "before begin_output");
    if (a.reserved0 != 0)
        return session_fail(s, "guest stopped: end_output reserved field "
                               "set");
    /* The size must hold everything written and nothing past the bound;
     * a raw output is exactly the window. */
    if (a.file_size < s->out_high || a.file_size > s->out_limit ||
        (s->out_format == CT_FMT_RAW && a.file_size != s->window_out))
        return session_fail(s,
                            "guest stopped: end_output size %llu (written "
                            "up to %llu, bound %llu)",
                            (unsigned long long)a.file_size,
                            (unsigned long long)s->out_high,
                            (unsigned long long)s->out_limit);
    a.ret = drain(s);
    if (a.ret == CT_OK && ftruncate(s->out_fd, (off_t)a.file_size) < 0) {
        a.ret = out_failed(s, errno);
    }
    s->ended = a.ret == CT_OK;
    COPY_OUT(s, gpa, a, ret);
    return CALL_CONTINUE;
}

static enum call_next do_open_backing(struct vmm_session *s, uint32_t gpa)
{
    struct ct_open_backing a;
    const char *name;

    if (!copy_in(s, gpa, &a, sizeof a, "open_backing"))
        return CALL_STOP;
    if (a.name_len == 0 || a.name_len > CT_NAME_MAX ||
        !(name = vmm_gpa(s->vm, a.name_gpa, a.name_len)))
        return session_fail(s, "guest stopped: open_backing name at 0x%llx "
                               "length %u is invalid",
                            (unsigned long long)a.name_gpa,
                            (unsigned)a.name_len);
    /* Policy refusals are answers, not violations: the name came from the
     * image, and the guest reports it with the image's context. */
    a.handle = 0;
    a.ret = backing_open(s->files, a.parent, name, a.name_len, &a.handle);
    COPY_OUT(s, gpa, a, ret);
    COPY_OUT(s, gpa, a, handle);
    return CALL_CONTINUE;
}

static const char *const vector_names[CT_EXC_VECTORS] = {
    [0] = "#DE divide error", [1] = "#DB debug", [3] = "#BP breakpoint",
    [4] = "#OF overflow", [5] = "#BR bound range", [6] = "#UD invalid opcode",
    [7] = "#NM no math", [8] = "#DF double fault", [10] = "#TS invalid TSS",
    [11] = "#NP segment not present", [12] = "#SS stack fault",
    [13] = "#GP general protection", [14] = "#PF page fault",
    [16] = "#MF x87 error", [17] = "#AC alignment check",
    [18] = "#MC machine check", [19] = "#XM SIMD error",
};

int calls_fault_msg(const struct vm *vm, uint32_t gpa, char *buf,
                    size_t len)
{
    struct ct_fault f;
    const void *src = vmm_gpa(vm, gpa, sizeof f);
    const char *name;

    /* Only the stub reports faults, and it always uses the fixed record. */
    if (gpa != CT_FAULT_GPA || !src) {
        snprintf(buf, len, "bogus fault report");
        return -1;
    }
    memcpy(&f, src, sizeof f);
    name = f.vector < CT_EXC_VECTORS && vector_names[f.vector]
               ? vector_names[f.vector]
               : "exception";
    snprintf(buf, len,
             "%s (vector %llu) at rip 0x%llx, error code 0x%llx, cr2 0x%llx",
             name, (unsigned long long)f.vector, (unsigned long long)f.rip,
             (unsigned long long)f.error_code, (unsigned long long)f.cr2);
    return 0;
}

static enum call_next do_fault(struct vmm_session *s, uint32_t gpa)
{
    char msg[SESSION_ERR_MAX - 32];
    if (calls_fault_msg(s->vm, gpa, msg, sizeof msg) < 0)
        return session_fail(s, "guest stopped: %s", msg);
    return session_fail(s, "guest crashed: %s", msg);
}

/* The main vCPU hands the worker a batch. */
static enum call_next do_wake(struct vmm_session *s, uint32_t gpa)
{
    struct ct_vcpu_signal a;
    if (!copy_in(s, gpa, &a, sizeof a, "wake"))
        return CALL_STOP;
    if (a.reserved0 != 0)
        return session_fail(s, "guest stopped: wake with reserved field set");
    if (!s->worker)
        return session_fail(s, "guest stopped: wake, but the VM has no "
                               "worker vCPU");
    worker_wake(s->worker);
    a.ret = CT_OK;
    COPY_OUT(s, gpa, a, ret);
    return CALL_CONTINUE;
}

/* What a failed copy or allocate means to the guest. */
static int32_t out_error(struct vmm_session *s, int e)
{
    if (e == EXDEV || e == EINVAL || e == EOPNOTSUPP || e == ENOSYS)
        return CT_ENOTSUP;
    return out_failed(s, e);
}

/* The whole list is checked before anything is done: a hostile segment
 * stops the VM with the output untouched by this call. */
static bool check_segs(struct vmm_session *s, const struct ct_copy_seg *g,
                       uint32_t count)
{
    uint64_t total = 0;
    if (!s->begun || s->ended) {
        session_fail(s, "guest stopped: copy %s",
                     s->ended ? "after end_output" : "before begin_output");
        return false;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint64_t dst_end, src_end;
        if (g[i].reserved0 != 0 || g[i].len == 0 ||
            __builtin_add_overflow(total, g[i].len, &total) ||
            total > CT_COPY_MAX_LEN) {
            session_fail(s, "guest stopped: copy segment %u: bad length "
                            "%llu or reserved field (at most %llu bytes a "
                            "call)",
                         (unsigned)i, (unsigned long long)g[i].len,
                         (unsigned long long)CT_COPY_MAX_LEN);
            return false;
        }
        if (__builtin_add_overflow(g[i].dst_off, g[i].len, &dst_end) ||
            dst_end > s->out_limit) {
            session_fail(s, "guest stopped: copy at offset %llu length %llu "
                            "beyond the output limit %llu",
                         (unsigned long long)g[i].dst_off,
                         (unsigned long long)g[i].len,
                         (unsigned long long)s->out_limit);
            return false;
        }
        if (g[i].handle == CT_COPY_ZEROS)
            continue;
        const struct vmm_file *f = file_of(s, g[i].handle, "copy");
        if (!f)
            return false;
        if (__builtin_add_overflow(g[i].src_off, g[i].len, &src_end) ||
            src_end > f->size) {
            session_fail(s, "guest stopped: copy of [%llu, +%llu) past the "
                            "end of file %u (%llu bytes)",
                         (unsigned long long)g[i].src_off,
                         (unsigned long long)g[i].len, (unsigned)g[i].handle,
                         (unsigned long long)f->size);
            return false;
        }
    }
    return true;
}

/* One segment; *copied says how far it got. */
static int32_t do_seg(struct vmm_session *s, const struct ct_copy_seg *g,
                      uint64_t *copied)
{
    *copied = 0;
    if (s->no_kernel_copy)
        return CT_ENOTSUP;
    if (g->handle == CT_COPY_ZEROS) {
        if (fallocate(s->out_fd, 0, (off_t)g->dst_off, (off_t)g->len) < 0)
            return out_error(s, errno);
        *copied = g->len;
        return CT_OK;
    }
    int fd = s->files->files[g->handle].fd;
    while (*copied < g->len) {
        loff_t in = (loff_t)(g->src_off + *copied);
        loff_t out = (loff_t)(g->dst_off + *copied);
        ssize_t n = copy_file_range(fd, &in, s->out_fd, &out,
                                    (size_t)(g->len - *copied), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return out_error(s, errno);
        if (n == 0)
            return CT_EIO; /* the file shrank under us */
        *copied += (uint64_t)n;
    }
    return CT_OK;
}

/* Output ranges filled in the kernel: input bytes straight to the output,
 * or allocated zeros. The guest decided where they go, as it does for
 * write: copy gives it nothing write does not (it could read the same
 * bytes and write them). */
static enum call_next do_copy(struct vmm_session *s, uint32_t gpa)
{
    static struct ct_copy_seg segs[CT_COPY_SEGS_MAX];
    struct ct_copy a;
    const void *src;

    if (no_output(s, "copy") || !copy_in(s, gpa, &a, sizeof a, "copy"))
        return CALL_STOP;
    if (a.count == 0 || a.count > CT_COPY_SEGS_MAX ||
        !(src = vmm_gpa(s->vm, a.segs_gpa,
                        (uint64_t)a.count * sizeof segs[0])))
        return session_fail(s, "guest stopped: copy list of %u segments at "
                               "0x%llx is invalid",
                            (unsigned)a.count,
                            (unsigned long long)a.segs_gpa);
    memcpy(segs, src, a.count * sizeof segs[0]);
    if (!check_segs(s, segs, a.count))
        return CALL_STOP;
    a.ret = drain(s);
    a.done = 0;
    a.copied = 0;
    for (; a.ret == CT_OK && a.done < a.count; a.done++) {
        const struct ct_copy_seg *g = &segs[a.done];
        a.ret = do_seg(s, g, &a.copied);
        if (a.copied && g->dst_off + a.copied > s->out_high)
            s->out_high = g->dst_off + a.copied;
        if (a.ret != CT_OK)
            break;
    }
    if (a.ret == CT_OK)
        a.copied = 0;
    COPY_OUT(s, gpa, a, ret);
    COPY_OUT(s, gpa, a, done);
    COPY_OUT(s, gpa, a, copied);
    return CALL_CONTINUE;
}

/* A batch of info records: checked whole against the schema, then kept
 * for rendering once the guest has finished. */
static enum call_next do_info(struct vmm_session *s, uint32_t gpa)
{
    struct ct_info a;
    const uint8_t *p;
    char why[512];

    if (!copy_in(s, gpa, &a, sizeof a, "info"))
        return CALL_STOP;
    if (!s->info)
        return session_fail(s, "guest stopped: info in dd mode");
    if (a.len > CT_INFO_BATCH_MAX || !(p = vmm_gpa(s->vm, a.gpa, a.len)))
        return session_fail(s, "guest stopped: info batch of %u bytes at "
                               "0x%llx is invalid",
                            (unsigned)a.len, (unsigned long long)a.gpa);
    int v = info_stream_add(s->info, s->files, p, a.len, why, sizeof why);
    if (v == INFO_BAD)
        return session_fail(s, "guest stopped: %s", why);
    a.ret = v == INFO_LIMIT ? CT_ELIMIT : CT_OK;
    COPY_OUT(s, gpa, a, ret);
    return CALL_CONTINUE;
}

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Prints "    (42.00/100%)\r" as qemu-img convert -p does: one write
 * (stdio's first write to a stream would fstat it, which the sandbox
 * forbids). */
static void show_progress(struct vmm_session *s, uint64_t hundredths)
{
    char line[32];
    int n = snprintf(line, sizeof line, "    (%llu.%02llu/100%%)\r",
                     (unsigned long long)(hundredths / 100),
                     (unsigned long long)(hundredths % 100));
    if (n > 0) /* a failure has nowhere to be said: the copy goes on */
        (void)!write(fileno(s->progress), line, (size_t)n);
    s->progress_shown = hundredths;
    s->progress_at_ms = now_ms();
}

/* The guest's progress: printed when the user asked, when it moved by a
 * whole percent and at most ten times a second (the last one always). */
static enum call_next do_progress(struct vmm_session *s, uint32_t gpa)
{
    struct ct_progress a;

    if (!copy_in(s, gpa, &a, sizeof a, "progress"))
        return CALL_STOP;
    if (a.reserved0 != 0 || !s->begun || a.total != s->window_out ||
        a.done > a.total || a.done < s->progress_done)
        return session_fail(s, "guest stopped: progress %llu of %llu is "
                               "invalid here",
                            (unsigned long long)a.done,
                            (unsigned long long)a.total);
    s->progress_done = a.done;
    if (s->progress) {
        uint64_t h = a.total ? (uint64_t)((double)a.done * 10000.0 /
                                          (double)a.total)
                             : 10000;
        if (h == 10000 || (h >= s->progress_shown + 100 &&
                           now_ms() - s->progress_at_ms >= 100))
            show_progress(s, h);
    }
    a.ret = CT_OK;
    COPY_OUT(s, gpa, a, ret);
    return CALL_CONTINUE;
}

static enum call_next do_park(struct vmm_session *s, uint32_t gpa)
{
    (void)gpa;
    return session_fail(s, "guest stopped: park from the main vCPU (only "
                           "the worker vCPU parks)");
}

typedef enum call_next (*call_fn)(struct vmm_session *, uint32_t);

/* Indexed by call number. Every port the guest's I/O bitmap opens but no
 * call owns, and any slot left empty, stops the VM: a call is never served
 * by another call's handler. */
static const call_fn handlers[CT_CALL_COUNT] = {
    [CT_CALL_HELLO] = do_hello,
    [CT_CALL_SIZE] = do_size,
    [CT_CALL_READ] = do_read,
    [CT_CALL_WRITE] = do_write,
    [CT_CALL_BEGIN_OUTPUT] = do_begin_output,
    [CT_CALL_LOG] = do_log,
    [CT_CALL_EXIT] = do_exit,
    [CT_CALL_FAULT] = do_fault,
    [CT_CALL_OPEN_BACKING] = do_open_backing,
    [CT_CALL_WAKE] = do_wake,
    [CT_CALL_PARK] = do_park,
    [CT_CALL_END_OUTPUT] = do_end_output,
    [CT_CALL_COPY] = do_copy,
    [CT_CALL_INFO] = do_info,
    [CT_CALL_PROGRESS] = do_progress,
    [CT_CALL_MAP] = do_map,
    [CT_CALL_WAIT] = do_wait,
};

enum call_next calls_dispatch(struct vmm_session *s, uint16_t port,
                              uint32_t gpa)
{
    unsigned nr = (unsigned)port - CT_PORT_BASE;

    if (port < CT_PORT_BASE || nr >= CT_CALL_COUNT || !handlers[nr])
        return session_fail(s, "guest stopped: unknown call (port 0x%x)",
                            (unsigned)port);
    s->calls++;
    if (!s->hello && nr != CT_CALL_HELLO && nr != CT_CALL_EXIT &&
        nr != CT_CALL_FAULT)
        return session_fail(s, "guest stopped: call %u before hello", nr);
    return handlers[nr](s, gpa);
}
