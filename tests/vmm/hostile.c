/*
 * A guest that misbehaves on purpose. The host test picks the scenario
 * through the boot info's bs field; each one must stop the VM cleanly
 * with a message, never hurt the host.
 */
#include <stdbool.h>

#include "ct.h"
#include "hostile.h"
#include "rt/rt.h"

__attribute__((noreturn)) void guest_main(const struct ct_bootinfo *bi);
__attribute__((noreturn)) void guest_worker_main(const struct ct_bootinfo *bi,
                                                 uint64_t vcpu);

__attribute__((noreturn)) void __stack_chk_fail(void)
{
    ct_exit(CT_STATUS_FAIL, "hostile: stack smashing detected");
}

static void call(unsigned port, volatile void *args)
{
    uint32_t gpa = (uint32_t)(uintptr_t)args;
    __asm__ volatile("outl %0, %w1" : : "a"(gpa), "Nd"((uint16_t)port)
                     : "memory");
}

static void read_call(uint32_t handle, uint64_t gpa, uint64_t len)
{
    struct ct_read a = {.handle = handle, .offset = 0, .gpa = gpa, .len = len};
    call(CT_PORT_BASE + CT_CALL_READ, &a);
}

static void write_call(uint64_t off, uint64_t gpa, uint64_t len)
{
    struct ct_write a = {.offset = off, .gpa = gpa, .len = len};
    call(CT_PORT_BASE + CT_CALL_WRITE, &a);
}

static int write_flags_call(uint32_t flags, uint64_t off, uint64_t gpa,
                            uint64_t len)
{
    struct ct_write a = {.flags = flags, .ret = CT_EINVAL, .offset = off,
                         .gpa = gpa, .len = len};
    call(CT_PORT_BASE + CT_CALL_WRITE, &a);
    return a.ret;
}

static int wait_call(uint32_t reserved, uint64_t ticket)
{
    struct ct_wait a = {.reserved0 = reserved, .ret = CT_EINVAL,
                        .ticket = ticket};
    call(CT_PORT_BASE + CT_CALL_WAIT, &a);
    return a.ret;
}

static uint32_t out_format; /* the boot info's */

static void begin(uint64_t vsize)
{
    struct ct_begin_output a = {.format = out_format, .virtual_size = vsize};
    call(CT_PORT_BASE + CT_CALL_BEGIN_OUTPUT, &a);
}

static struct ct_copy_seg segs[4];

/* One segment (handle CT_COPY_ZEROS: allocate) in a one-entry list. */
static int copy_call(uint32_t handle, uint64_t src, uint64_t dst,
                     uint64_t len)
{
    segs[0] = (struct ct_copy_seg){handle, 0, src, dst, len};
    struct ct_copy a = {.count = 1, .ret = CT_EINVAL,
                        .segs_gpa = (uint64_t)(uintptr_t)segs};
    call(CT_PORT_BASE + CT_CALL_COPY, &a);
    return a.ret;
}

static int allocate_call(uint64_t off, uint64_t len)
{
    return copy_call(CT_COPY_ZEROS, 0, off, len);
}

static int progress_call(uint64_t done, uint64_t total)
{
    struct ct_progress a = {.ret = CT_EINVAL, .done = done, .total = total};
    call(CT_PORT_BASE + CT_CALL_PROGRESS, &a);
    return a.ret;
}

static int map_call(uint32_t handle, uint64_t off, uint64_t *data,
                    uint64_t *hole)
{
    struct ct_map a = {.handle = handle, .ret = CT_EINVAL, .offset = off};
    call(CT_PORT_BASE + CT_CALL_MAP, &a);
    *data = a.data;
    *hole = a.hole;
    return a.ret;
}

static int end(uint64_t file_size)
{
    struct ct_end_output a = {.ret = CT_EINVAL, .file_size = file_size};
    call(CT_PORT_BASE + CT_CALL_END_OUTPUT, &a);
    return a.ret;
}

/*
 * Follows a chain of names: each file's first bytes (up to NUL or
 * newline) name the next one, starting with the input. Reports how far it
 * got: "chain: N granted, then refused" or "chain: N granted, end".
 */
static void backing_chain(uint64_t io)
{
    char *name = (char *)(uintptr_t)io;
    static char msg[96];
    uint32_t h = CT_HANDLE_INPUT;
    unsigned granted = 0;
    for (;;) {
        struct ct_read rd = {.handle = h, .gpa = io, .len = 256};
        call(CT_PORT_BASE + CT_CALL_READ, &rd);
        uint32_t n = 0;
        while (n < rd.nread && name[n] && name[n] != '\n')
            n++;
        if (n == 0) {
            rt_fmt(msg, sizeof msg, "chain: %u granted, end", granted);
            ct_exit(CT_STATUS_FAIL, msg);
        }
        struct ct_open_backing ob = {.parent = h, .name_gpa = io,
                                     .name_len = n};
        call(CT_PORT_BASE + CT_CALL_OPEN_BACKING, &ob);
        if (ob.ret != CT_OK) {
            rt_fmt(msg, sizeof msg, "chain: %u granted, then refused (%d)",
                   granted, ob.ret);
            ct_exit(CT_STATUS_FAIL, msg);
        }
        h = ob.handle;
        granted++;
    }
}

/* Info records, built by hand as a subverted guest would. */
static uint8_t recs[8192] __attribute__((aligned(8)));
static uint32_t nrecs;

static void info_rec(uint16_t key, uint8_t type, uint64_t value,
                     uint32_t text_len)
{
    struct ct_info_rec r = {key, type, 0, text_len, value};
    memcpy(recs + nrecs, &r, sizeof r);
    nrecs += (uint32_t)sizeof r;
    memset(recs + nrecs, 'n', text_len);
    nrecs += (text_len + 7) & ~7u;
}

static int info_call(const void *p, uint32_t len)
{
    struct ct_info a = {.len = len, .ret = CT_EINVAL,
                        .gpa = (uint64_t)(uintptr_t)p};
    call(CT_PORT_BASE + CT_CALL_INFO, &a);
    return a.ret;
}

/* A raw image of 512 bytes: the input. */
static void info_image(uint64_t handle, bool close)
{
    info_rec(CT_INFO_IMAGE, CT_INFO_T_BEGIN, handle, 0);
    info_rec(CT_INFO_FORMAT, CT_INFO_T_ENUM, CT_FMT_RAW, 0);
    info_rec(CT_INFO_VIRTUAL_SIZE, CT_INFO_T_U64, 512, 0);
    if (close)
        info_rec(CT_INFO_IMAGE, CT_INFO_T_END, 0, 0);
}

static void info_defect(uint64_t which)
{
    switch (which) {
    case INFO_DEFECT_KEY:
        info_image(0, false);
        info_rec(CT_INFO_KEY_COUNT + 7, CT_INFO_T_U64, 0, 0);
        break;
    case INFO_DEFECT_TYPE:
        info_rec(CT_INFO_IMAGE, CT_INFO_T_BEGIN, 0, 0);
        info_rec(CT_INFO_FORMAT, CT_INFO_T_U64, CT_FMT_RAW, 0);
        break;
    case INFO_DEFECT_DEEP:
        info_rec(CT_INFO_IMAGE, CT_INFO_T_BEGIN, 0, 0);
        info_rec(CT_INFO_FORMAT, CT_INFO_T_ENUM, CT_FMT_VMDK, 0);
        info_rec(CT_INFO_EXTENT, CT_INFO_T_BEGIN, 0, 0);
        info_rec(CT_INFO_EXTENT, CT_INFO_T_BEGIN, 0, 0);
        break;
    case INFO_DEFECT_LONG:
        info_image(0, false);
        info_rec(CT_INFO_BACKING_FILENAME, CT_INFO_T_STR, 0, CT_NAME_MAX + 1);
        break;
    default:
        info_image(3, true);
        break;
    }
}

/* Shared with the worker vCPU. */
static volatile uint32_t worker_rounds;

static void signal_call(unsigned nr)
{
    struct ct_vcpu_signal a = {.ret = CT_EINVAL};
    call(CT_PORT_BASE + nr, &a);
}

static unsigned recurse(volatile unsigned *depth)
{
    volatile uint8_t pad[512];
    pad[0] = (uint8_t)*depth;
    if (++*depth > 100000000u) /* never: the guard page is hit first */
        return 0;
    return recurse(depth) + pad[0];
}

void guest_worker_main(const struct ct_bootinfo *bi, uint64_t vcpu)
{
    volatile unsigned depth = 0;
    if (vcpu != 1)
        ct_exit(CT_STATUS_FAIL, "hostile: worker started with bad index");
    switch (bi->bs) {
    case H_WORKER_OK:
        for (;;) {
            __atomic_add_fetch(&worker_rounds, 1, __ATOMIC_SEQ_CST);
            signal_call(CT_CALL_PARK);
        }
    case H_WORKER_FORBIDDEN_CALL:
        signal_call(CT_CALL_WAKE);
        break;
    case H_WORKER_READ_CALL:
        read_call(CT_HANDLE_INPUT, bi->io_base, 1);
        break;
    case H_WORKER_FAULT:
        *(volatile int *)0 = 1;
        break;
    case H_WORKER_STACK_OVERFLOW:
        recurse(&depth);
        break;
    case H_WORKER_SPIN_MAIN_EXITS:
        __atomic_store_n(&worker_rounds, 1, __ATOMIC_SEQ_CST);
        for (;;)
            __asm__ volatile("pause");
    }
    for (;;) /* a worker that got here did what its scenario asked */
        __asm__ volatile("pause");
}

/* Waits (bounded) for the worker to reach round n. */
static void await_worker(uint32_t n)
{
    for (uint64_t i = 0; i < 4000000000ull; i++) {
        if (__atomic_load_n(&worker_rounds, __ATOMIC_SEQ_CST) >= n)
            return;
        __asm__ volatile("pause");
    }
    ct_exit(CT_STATUS_FAIL, "hostile: the worker vCPU never ran");
}

void guest_main(const struct ct_bootinfo *bi)
{
    uint64_t io = bi->io_base;

    out_format = bi->out_format;
    if (bi->bs != H_CALL_BEFORE_HELLO && bi->bs != H_BAD_PORT_CPL3 &&
        bi->bs != H_INFO_BEFORE_HELLO && ct_hello() != CT_OK)
        ct_exit(CT_STATUS_FAIL, "hostile: hello failed");
    switch (bi->bs) {
    case H_OK_EMPTY:
        begin(0);
        end(0);
        ct_exit(CT_STATUS_OK, 0);
    case H_END_BELOW_WRITTEN:
        begin(1024);
        write_call(0, io, 1024);
        end(512);
        break;
    case H_END_PAST_BOUND:
        begin(1024);
        end(1536);
        break;
    case H_END_TWICE:
        begin(0);
        end(0);
        end(0);
        break;
    case H_END_BEFORE_BEGIN:
        end(0);
        break;
    case H_WRITE_AFTER_END:
        begin(512);
        write_call(0, io, 512);
        end(512);
        write_call(0, io, 512);
        break;
    case H_OK_AT_BOUND:
        /* bi->count: the bound the test computed for this format. */
        begin(bi->skip);
        write_call(bi->count - 512, io, 512);
        if (end(bi->count) != CT_OK)
            ct_exit(CT_STATUS_FAIL, "hostile: end_output at the bound "
                                    "refused");
        ct_exit(CT_STATUS_OK, 0);
    case H_WRITE_PAST_BOUND:
        begin(bi->skip);
        write_call(bi->count - 511, io, 512);
        break;
    case H_COPY_BAD_HANDLE:
        begin(1024);
        copy_call(7, 0, 0, 512);
        break;
    case H_COPY_PAST_EOF:
        /* The input is one byte ("x"). */
        begin(1024);
        copy_call(CT_HANDLE_INPUT, 0, 0, 2);
        break;
    case H_COPY_PAST_BOUND:
        begin(1024);
        copy_call(CT_HANDLE_INPUT, 0, 1000, 512);
        break;
    case H_COPY_BEFORE_BEGIN:
        copy_call(CT_HANDLE_INPUT, 0, 0, 1);
        break;
    case H_COPY_OVERSIZE:
        begin(1024);
        copy_call(CT_HANDLE_INPUT, 0, 0, CT_COPY_MAX_LEN + 1);
        break;
    case H_ALLOCATE_PAST_BOUND:
        begin(1024);
        allocate_call(1000, 512);
        break;
    case H_ALLOCATE_AFTER_END:
        begin(0);
        end(0);
        allocate_call(0, 512);
        break;
    case H_COPY_OK: {
        begin(2048);
        /* One list: half of the input, zeros, the other half. */
        segs[0] = (struct ct_copy_seg){CT_HANDLE_INPUT, 0, 0, 0, 512};
        segs[1] = (struct ct_copy_seg){CT_COPY_ZEROS, 0, 0, 1024, 1024};
        segs[2] = (struct ct_copy_seg){CT_HANDLE_INPUT, 0, 512, 512, 512};
        struct ct_copy a = {.count = 3, .ret = CT_EINVAL,
                            .segs_gpa = (uint64_t)(uintptr_t)segs};
        call(CT_PORT_BASE + CT_CALL_COPY, &a);
        if (a.ret != CT_OK || a.done != 3 || end(2048) != CT_OK)
            ct_exit(CT_STATUS_FAIL, "hostile: copy refused");
        ct_exit(CT_STATUS_OK, 0);
    }
    case H_COPY_BAD_LIST: {
        /* A good first segment, then one past the bound: nothing may be
         * done, the VM stops. */
        begin(1024);
        segs[0] = (struct ct_copy_seg){CT_HANDLE_INPUT, 0, 0, 0, 1};
        segs[1] = (struct ct_copy_seg){CT_COPY_ZEROS, 0, 0, 1000, 512};
        struct ct_copy a = {.count = 2, .segs_gpa = (uint64_t)(uintptr_t)segs};
        call(CT_PORT_BASE + CT_CALL_COPY, &a);
        break;
    }
    case H_COPY_TOO_MANY: {
        struct ct_copy a = {.count = CT_COPY_SEGS_MAX + 1,
                            .segs_gpa = (uint64_t)(uintptr_t)segs};
        begin(1024);
        call(CT_PORT_BASE + CT_CALL_COPY, &a);
        break;
    }
    case H_INFO_OK:
        info_image(0, true);
        if (info_call(recs, nrecs) != CT_OK)
            ct_exit(CT_STATUS_FAIL, "hostile: info refused");
        ct_exit(CT_STATUS_OK, 0);
    case H_INFO_BEFORE_HELLO:
    case H_INFO_IN_DD_MODE:
        info_image(0, true);
        info_call(recs, nrecs);
        break;
    case H_INFO_BAD:
        info_defect(bi->count);
        info_call(recs, nrecs);
        break;
    case H_INFO_TWICE:
        info_image(0, true);
        info_image(0, true);
        info_call(recs, nrecs);
        break;
    case H_INFO_UNFINISHED:
        info_image(0, false);
        info_call(recs, nrecs);
        ct_exit(CT_STATUS_OK, 0);
    case H_INFO_NOTHING:
        ct_exit(CT_STATUS_OK, 0);
    case H_INFO_BAD_BATCH:
        info_call((void *)(uintptr_t)(CT_RAM_SIZE - 8), 16);
        break;
    case H_INFO_OVERSIZE:
        info_call((void *)(uintptr_t)io, CT_INFO_BATCH_MAX + 8);
        break;
    case H_OUTPUT_IN_INFO:
        begin(512);
        break;
    case H_PROGRESS_OK:
        begin(1024);
        if (progress_call(0, 1024) != CT_OK ||
            progress_call(512, 1024) != CT_OK ||
            progress_call(1024, 1024) != CT_OK)
            ct_exit(CT_STATUS_FAIL, "hostile: progress refused");
        write_call(0, io, 1024);
        end(1024);
        ct_exit(CT_STATUS_OK, 0);
    case H_PROGRESS_BEFORE_BEGIN:
        progress_call(0, 1024);
        break;
    case H_PROGRESS_PAST_TOTAL:
        begin(1024);
        progress_call(2048, 1024);
        break;
    case H_PROGRESS_BACKWARDS:
        begin(1024);
        progress_call(512, 1024);
        progress_call(256, 1024);
        break;
    case H_PROGRESS_WRONG_TOTAL:
        begin(1024);
        progress_call(0, 1ull << 40);
        break;
    case H_MAP_OK: {
        uint64_t data = 7, hole = 7, data2 = 7, hole2 = 7;
        if (map_call(0, 0, &data, &hole) != CT_OK || data != 0 || hole != 1 ||
            map_call(0, 1, &data2, &hole2) != CT_OK || data2 != 1 ||
            hole2 != 1)
            ct_exit(CT_STATUS_FAIL, "hostile: map answered wrong");
        begin(512);
        write_call(0, io, 512);
        end(512);
        ct_exit(CT_STATUS_OK, 0);
    }
    case H_MAP_BAD_HANDLE: {
        uint64_t data, hole;
        map_call(7, 0, &data, &hole);
        break;
    }
    case H_MAP_PAST_END: {
        uint64_t data, hole;
        map_call(0, 2, &data, &hole);
        break;
    }
    case H_BEHIND_OK:
        /* io: the input's 1 KiB; io + 4096: zeros (the I/O area starts
         * zeroed). The plain write overlaps the first queued one and
         * must land after it. */
        begin(2048);
        read_call(CT_HANDLE_INPUT, io, 1024);
        if (write_flags_call(CT_WRITE_BEHIND, 0, io, 1024) != CT_OK ||
            write_flags_call(CT_WRITE_BEHIND, 1024, io, 1024) != CT_OK ||
            write_flags_call(0, 512, io + 4096, 512) != CT_OK ||
            wait_call(0, 2) != CT_OK || end(2048) != CT_OK)
            ct_exit(CT_STATUS_FAIL, "hostile: write-behind refused");
        ct_exit(CT_STATUS_OK, 0);
    case H_WRITE_BAD_FLAGS:
        begin(1024);
        write_flags_call(2, 0, io, 512);
        break;
    case H_WAIT_PAST_MADE:
        begin(1024);
        write_flags_call(CT_WRITE_BEHIND, 0, io, 512);
        wait_call(0, 2);
        break;
    case H_WAIT_RESERVED:
        begin(1024);
        wait_call(1, 0);
        break;
    case H_UNUSED_CALL_0:
    case H_UNUSED_CALL_1:
    case H_UNUSED_CALL_2:
        call(CT_PORT_BASE + CT_CALL_COUNT + (unsigned)(bi->bs -
                                                        H_UNUSED_CALL_0),
             (void *)(uintptr_t)io);
        break;
    case H_BYTE_PORT_ACCESS:
        /* The bitmap opens port CT_CALL_COUNT's byte (outl to the last
         * call needs it); an outb there must still be refused. */
        __asm__ volatile("outb %b0, %w1" : : "a"(0), "Nd"(
                             (uint16_t)(CT_PORT_BASE + CT_CALL_COUNT)));
        break;
    case H_FORGED_FAULT:
        call(CT_PORT_BASE + CT_CALL_FAULT, (void *)(uintptr_t)io);
        break;
    case H_BAD_PORT_CPL3:
        call(0x80, (void *)(uintptr_t)io); /* not in the I/O bitmap */
        break;
    case H_ARGS_OUTSIDE_RAM:
        call(CT_PORT_BASE + CT_CALL_READ,
             (void *)(uintptr_t)(CT_RAM_SIZE - 8));
        break;
    case H_READ_OUTSIDE_IO:
        read_call(CT_HANDLE_INPUT, CT_PT_GPA, 4096); /* over page tables */
        break;
    case H_READ_OVERSIZE:
        read_call(CT_HANDLE_INPUT, io, CT_IO_SIZE + 1ull);
        break;
    case H_READ_GPA_OVERFLOW:
        read_call(CT_HANDLE_INPUT, ~0ull - 15, 32);
        break;
    case H_READ_BAD_HANDLE:
        read_call(7, io, 512);
        break;
    case H_WRITE_BEFORE_BEGIN:
        write_call(0, io, 512);
        break;
    case H_WRITE_BEYOND_LIMIT:
        begin(1024);
        write_call(1000, io, 512);
        break;
    case H_WRITE_OFFSET_OVERFLOW:
        begin(1024);
        write_call(~0ull - 100, io, 512);
        break;
    case H_EXIT_INCOMPLETE:
        begin(1024);
        ct_exit(CT_STATUS_OK, 0);
    case H_SPIN:
        for (;;)
            __asm__ volatile("pause");
    case H_NULL_DEREF:
        *(volatile int *)0 = 1;
        break;
    case H_PRIVILEGED:
        __asm__ volatile("hlt"); /* CPL3: #GP */
        break;
    case H_CALL_BEFORE_HELLO:
        begin(0);
        break;
    case H_EXIT_CONTROL_CHARS:
        ct_exit(CT_STATUS_FAIL, "evil \x1b[2J\x07 message");
    case H_BACKING_CHAIN:
        backing_chain(io);
        break;
    case H_BACKING_BAD_NAME_GPA: {
        struct ct_open_backing ob = {.name_gpa = CT_RAM_SIZE - 2,
                                     .name_len = 16};
        call(CT_PORT_BASE + CT_CALL_OPEN_BACKING, &ob);
        break;
    }
    case H_DOUBLE_BEGIN:
        begin(0);
        begin(0);
        break;
    case H_WORKER_OK:
        if (bi->vcpus != 2)
            ct_exit(CT_STATUS_FAIL, "hostile: boot info says one vCPU");
        /* Round 1 starts the worker; each later wake-up ends one park. */
        for (uint32_t round = 1; round <= 3; round++) {
            signal_call(CT_CALL_WAKE);
            await_worker(round);
        }
        begin(0);
        end(0);
        ct_exit(CT_STATUS_OK, 0);
    case H_WORKER_SPIN_MAIN_EXITS:
        signal_call(CT_CALL_WAKE);
        await_worker(1);
        begin(0);
        end(0);
        ct_exit(CT_STATUS_OK, 0);
    case H_WORKER_FORBIDDEN_CALL:
    case H_WORKER_READ_CALL:
    case H_WORKER_FAULT:
    case H_WORKER_STACK_OVERFLOW:
        signal_call(CT_CALL_WAKE);
        for (;;) /* the host stops the run */
            __asm__ volatile("pause");
    case H_PARK_FROM_MAIN:
        signal_call(CT_CALL_PARK);
        break;
    case H_WAKE:
        signal_call(CT_CALL_WAKE);
        break;
    }
    ct_exit(CT_STATUS_FAIL, "hostile: the host let a bad call through");
}
