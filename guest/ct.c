/*
 * The hypercall-backed call table: the only file in dd.bin that talks to
 * the host. A call is one `outl` of the argument struct's address; the
 * host has written `ret` and the OUT fields when outl returns.
 */
#include "ct.h"

#include "rt/rt.h"

static inline void ct_call(unsigned nr, volatile void *args)
{
    uint32_t gpa = (uint32_t)(uintptr_t)args;
    __asm__ volatile("outl %0, %w1"
                     :
                     : "a"(gpa), "Nd"((uint16_t)(CT_PORT_BASE + nr))
                     : "memory");
}

int ct_hello(void)
{
    struct ct_hello a = {.abi_version = CT_ABI_VERSION, .ret = CT_EINVAL};
    ct_call(CT_CALL_HELLO, &a);
    return a.ret;
}

static int hc_size(void *ctx, uint32_t handle, uint64_t *size)
{
    (void)ctx;
    struct ct_size a = {.handle = handle, .ret = CT_EINVAL};
    ct_call(CT_CALL_SIZE, &a);
    *size = a.size;
    return a.ret;
}

static int hc_read(void *ctx, uint32_t handle, uint64_t off, void *buf,
                   uint64_t len, uint64_t *nread)
{
    (void)ctx;
    struct ct_read a = {.handle = handle,
                        .ret = CT_EINVAL,
                        .offset = off,
                        .gpa = (uint64_t)(uintptr_t)buf,
                        .len = len};
    ct_call(CT_CALL_READ, &a);
    *nread = a.nread;
    return a.ret;
}

static int hc_write(void *ctx, uint64_t off, const void *buf, uint64_t len)
{
    (void)ctx;
    struct ct_write a = {.ret = CT_EINVAL,
                         .offset = off,
                         .gpa = (uint64_t)(uintptr_t)buf,
                         .len = len};
    ct_call(CT_CALL_WRITE, &a);
    return a.ret;
}

/* Write-behinds the host accepted: the tickets (ABI 10). */
static uint64_t behind_made;

static int hc_write_behind(void *ctx, uint64_t off, const void *buf,
                           uint64_t len, uint64_t *ticket)
{
    (void)ctx;
    struct ct_write a = {.flags = CT_WRITE_BEHIND,
                         .ret = CT_EINVAL,
                         .offset = off,
                         .gpa = (uint64_t)(uintptr_t)buf,
                         .len = len};
    ct_call(CT_CALL_WRITE, &a);
    if (a.ret == CT_OK && len)
        behind_made++;
    *ticket = behind_made;
    return a.ret;
}

static int hc_wait(void *ctx, uint64_t ticket)
{
    (void)ctx;
    /* Done already, as the host shows: no exit needed. */
    if (__atomic_load_n((const uint64_t *)(uintptr_t)CT_BEHIND_DONE_GPA,
                        __ATOMIC_ACQUIRE) >= ticket)
        return CT_OK;
    struct ct_wait a = {.ret = CT_EINVAL, .ticket = ticket};
    ct_call(CT_CALL_WAIT, &a);
    return a.ret;
}

static int hc_begin_output(void *ctx, uint32_t format, uint64_t vsize)
{
    (void)ctx;
    struct ct_begin_output a = {
        .format = format, .ret = CT_EINVAL, .virtual_size = vsize};
    ct_call(CT_CALL_BEGIN_OUTPUT, &a);
    return a.ret;
}

static int hc_end_output(void *ctx, uint64_t file_size)
{
    (void)ctx;
    struct ct_end_output a = {.ret = CT_EINVAL, .file_size = file_size};
    ct_call(CT_CALL_END_OUTPUT, &a);
    return a.ret;
}

static int hc_copy(void *ctx, const struct ct_copy_seg *segs, uint32_t count,
                   uint64_t *done, uint64_t *copied)
{
    (void)ctx;
    struct ct_copy a = {.count = count,
                        .ret = CT_EINVAL,
                        .segs_gpa = (uint64_t)(uintptr_t)segs};
    ct_call(CT_CALL_COPY, &a);
    *done = a.done;
    *copied = a.copied;
    return a.ret;
}

static int hc_progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)ctx;
    struct ct_progress a = {.ret = CT_EINVAL, .done = done, .total = total};
    ct_call(CT_CALL_PROGRESS, &a);
    return a.ret;
}

static int hc_map(void *ctx, uint32_t handle, uint64_t off, uint64_t *data,
                  uint64_t *hole)
{
    (void)ctx;
    struct ct_map a = {.handle = handle, .ret = CT_EINVAL, .offset = off};
    ct_call(CT_CALL_MAP, &a);
    *data = a.data;
    *hole = a.hole;
    return a.ret;
}

static void hc_log(void *ctx, const char *msg, uint64_t len)
{
    (void)ctx;
    struct ct_log a = {.gpa = (uint64_t)(uintptr_t)msg, .len = len};
    ct_call(CT_CALL_LOG, &a);
}

static int hc_open_backing(void *ctx, uint32_t parent, const char *name,
                           uint32_t name_len, uint32_t *handle)
{
    (void)ctx;
    struct ct_open_backing a = {.parent = parent,
                                .ret = CT_EINVAL,
                                .name_gpa = (uint64_t)(uintptr_t)name,
                                .name_len = name_len};
    ct_call(CT_CALL_OPEN_BACKING, &a);
    *handle = a.handle;
    return a.ret;
}

static int hc_info(void *ctx, const void *recs, uint64_t len)
{
    (void)ctx;
    struct ct_info a = {.len = (uint32_t)len,
                        .ret = CT_EINVAL,
                        .gpa = (uint64_t)(uintptr_t)recs};
    ct_call(CT_CALL_INFO, &a);
    return a.ret;
}

void ct_wake(void *hctx)
{
    (void)hctx;
    struct ct_vcpu_signal a = {.ret = CT_EINVAL};
    ct_call(CT_CALL_WAKE, &a);
}

void ct_park(void *hctx)
{
    (void)hctx;
    struct ct_vcpu_signal a = {.ret = CT_EINVAL};
    ct_call(CT_CALL_PARK, &a);
}

void ct_exit(uint32_t status, const char *msg)
{
    struct ct_exit a = {.status = status,
                        .msg_gpa = (uint64_t)(uintptr_t)msg,
                        .msg_len = msg ? rt_strlen(msg) : 0};
    ct_call(CT_CALL_EXIT, &a);
    for (;;) /* the host never resumes a guest after exit */
        __asm__ volatile("ud2");
}

const struct ct_ops ct_hypercall_ops = {
    .ctx = 0,
    .size = hc_size,
    .read = hc_read,
    .write = hc_write,
    .write_behind = hc_write_behind,
    .wait = hc_wait,
    .begin_output = hc_begin_output,
    .end_output = hc_end_output,
    .copy = hc_copy,
    .log = hc_log,
    .progress = hc_progress,
    .map = hc_map,
    .open_backing = hc_open_backing,
    .info = hc_info,
};
