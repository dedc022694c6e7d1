/*
 * vCPU state: 64-bit long mode entered directly at CPL3.
 *
 * Why CPL3: on PVM (software-nested KVM) guest code at CPL0 is emulated,
 * roughly 1000x slower; CPL3 code runs natively. So the guest gets DPL-3
 * code/stack segments, user-accessible identity page tables, a TSS I/O
 * bitmap that lets CPL3 `outl` to the call ports only, and SSE. The CPL0 side exists only for the
 * exception stubs, reached through the IDT and the TSS's RSP0.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "instar_ct.h"
#include "vm.h"

#define PTE_P 0x1ull
#define PTE_W 0x2ull
#define PTE_U 0x4ull
#define PTE_PS 0x80ull
#define PAGE_2M 0x200000ull

#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA 0x1b /* GDT index 3, RPL 3 */
#define SEL_UCODE 0x23 /* GDT index 4, RPL 3 */
#define SEL_TSS 0x28   /* GDT index 5, 16 bytes */
#define SEL_TSS1 0x38  /* GDT index 7, 16 bytes: the worker vCPU's */
#define GDT_ENTRIES 9

#define CR0_PE 0x1ull
#define CR0_MP 0x2ull
#define CR0_ET 0x10ull
#define CR0_NE 0x20ull
#define CR0_WP 0x10000ull
#define CR0_PG 0x80000000ull
#define CR4_PAE 0x20ull
#define CR4_OSFXSR 0x200ull
#define CR4_OSXMMEXCPT 0x400ull
#define EFER_LME 0x100ull
#define EFER_LMA 0x400ull
#define RFLAGS_RESERVED 0x2ull

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Identity map of all RAM; page 0 is left absent so NULL faults, and the
 * page below the worker's stack so an overflow faults too. */
static void setup_page_tables(struct vm *vm)
{
    uint8_t *pml4 = vm->mem + CT_PT_GPA;
    uint8_t *pdpt = pml4 + 0x1000;
    uint8_t *pd = pml4 + 0x2000;
    uint8_t *pt = pml4 + 0x3000;
    uint64_t flags = PTE_P | PTE_W | PTE_U;

    put64(pml4, (CT_PT_GPA + 0x1000) | flags);
    put64(pdpt, (CT_PT_GPA + 0x2000) | flags);
    put64(pd, (CT_PT_GPA + 0x3000) | flags);
    for (uint64_t i = 1; i < 512; i++)
        if (i != CT_WGUARD_GPA >> 12)
            put64(pt + 8 * i, (i << 12) | flags);
    for (uint64_t i = 1; i < vm->mem_size / PAGE_2M; i++)
        put64(pd + 8 * i, (i * PAGE_2M) | flags | PTE_PS);
}

/* Legacy 8-byte segment descriptor, flat. */
static uint64_t seg_desc(unsigned type, unsigned dpl, unsigned l, unsigned db)
{
    return 0xffffull | (0xfull << 48) | ((uint64_t)type << 40) |
           (1ull << 44) /* S */ | ((uint64_t)dpl << 45) | (1ull << 47) |
           ((uint64_t)l << 53) | ((uint64_t)db << 54) | (1ull << 55) /* G */;
}

/*
 * The TSS carries an I/O permission bitmap that opens exactly the call
 * ports. IOPL stays 0, so the bitmap is what decides; PVM honours the
 * guest's bitmap but not IOPL (measured: with IOPL=3 and no bitmap, outl
 * at CPL3 raised #GP).
 */
#define TSS_IOMAP_OFF 0x68u
/* A 4-byte outl needs the bits of all four port bytes it touches. */
#define IOMAP_PORTS_END (CT_PORT_BASE + CT_CALL_COUNT + 3u)
#define IOMAP_BYTES ((IOMAP_PORTS_END + 7u) / 8u)
#define TSS_LIMIT (TSS_IOMAP_OFF + IOMAP_BYTES) /* + the 0xff end byte */
_Static_assert(TSS_LIMIT < 0x1000u, "TSS fits its page");

/* 64-bit available TSS (type 9), a 16-byte system descriptor. */
static void put_tss_desc(uint8_t *d, uint64_t base)
{
    uint64_t limit = TSS_LIMIT;
    put64(d, (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x9ull << 40) |
                 (1ull << 47) | (((base >> 24) & 0xff) << 56));
    put64(d + 8, base >> 32);
}

/* A TSS whose bitmap opens ports [first, end): RSP0 is where exceptions
 * from CPL3 switch stacks. A set bit denies the port; the byte past the
 * map must be 0xff (the CPU may read two bytes). */
static void setup_tss(uint8_t *tss, uint64_t rsp0, unsigned first,
                      unsigned end)
{
    put64(tss + 4, rsp0);
    tss[0x66] = TSS_IOMAP_OFF & 0xff;
    tss[0x67] = TSS_IOMAP_OFF >> 8;
    memset(tss + TSS_IOMAP_OFF, 0xff, IOMAP_BYTES + 1);
    for (unsigned p = first; p < end; p++)
        tss[TSS_IOMAP_OFF + p / 8] &= (uint8_t)~(1u << (p % 8));
}

_Static_assert(CT_CALL_FAULT < CT_CALL_PARK && CT_CALL_PARK < CT_CALL_COUNT,
               "the worker's port range covers FAULT and PARK");

static void setup_gdt_tss(struct vm *vm)
{
    uint8_t *gdt = vm->mem + CT_GDT_GPA;

    put64(gdt + 0x08, seg_desc(0xb, 0, 1, 0)); /* kernel code64 */
    put64(gdt + 0x10, seg_desc(0x3, 0, 0, 1)); /* kernel data */
    put64(gdt + 0x18, seg_desc(0x3, 3, 0, 1)); /* user data */
    put64(gdt + 0x20, seg_desc(0xb, 3, 1, 0)); /* user code64 */
    put_tss_desc(gdt + SEL_TSS, CT_TSS_GPA);
    put_tss_desc(gdt + SEL_TSS1, CT_TSS1_GPA);
    setup_tss(vm->mem + CT_TSS_GPA, CT_KSTACK_GPA + CT_KSTACK_SIZE,
              CT_PORT_BASE, IOMAP_PORTS_END);
    /* The worker may only park and report a fault; the 4-byte outl to
     * FAULT needs the bits up to PARK (both, and WAKE/OPEN_BACKING between
     * them, are refused by the host when the worker calls them). */
    setup_tss(vm->mem + CT_TSS1_GPA, CT_KSTACK1_GPA + CT_KSTACK_SIZE,
              CT_PORT_BASE + CT_CALL_FAULT, IOMAP_PORTS_END);
}

static void setup_idt(struct vm *vm)
{
    uint8_t *idt = vm->mem + CT_IDT_GPA;
    for (uint64_t v = 0; v < CT_EXC_VECTORS; v++) {
        uint64_t off = CT_IMAGE_GPA + CT_EXC_STUBS_OFF + v * CT_EXC_STUB_SIZE;
        /* Present, DPL0, 64-bit interrupt gate (0x8e) to SEL_KCODE. */
        uint64_t lo = (off & 0xffff) | ((uint64_t)SEL_KCODE << 16) |
                      (0x8eull << 40) | (((off >> 16) & 0xffff) << 48);
        put64(idt + 16 * v, lo);
        put64(idt + 16 * v + 8, off >> 32);
    }
}

static struct kvm_segment segment(uint16_t sel, uint8_t type, uint8_t dpl,
                                  uint8_t l, uint8_t db)
{
    struct kvm_segment s = {
        .base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
        .present = 1, .dpl = dpl, .db = db, .s = 1, .l = l, .g = 1,
    };
    return s;
}

/* Long mode at CPL3 for one vCPU; rsi tells the guest which one it is. */
static int setup_vcpu(int fd, uint16_t tr_sel, uint64_t tr_base,
                      uint64_t entry, uint64_t boot_gpa, uint64_t vcpu,
                      uint64_t rsp, char *err, size_t errlen)
{
    struct kvm_sregs sregs;
    struct kvm_regs regs;

    if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0) {
        snprintf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
        return -errno;
    }
    sregs.cs = segment(SEL_UCODE, 0xb, 3, 1, 0);
    sregs.ss = segment(SEL_UDATA, 0x3, 3, 0, 1);
    sregs.ds = sregs.es = sregs.gs = sregs.ss;
    sregs.fs = sregs.ss;
    sregs.fs.base = CT_FSBLOCK_GPA;
    sregs.tr = (struct kvm_segment){
        .base = tr_base, .limit = TSS_LIMIT, .selector = tr_sel,
        .type = 0xb /* busy 64-bit TSS */, .present = 1,
    };
    sregs.ldt = (struct kvm_segment){.type = 0x2, .present = 1,
                                     .limit = 0xffff, .unusable = 1};
    sregs.gdt.base = CT_GDT_GPA;
    sregs.gdt.limit = GDT_ENTRIES * 8 - 1;
    sregs.idt.base = CT_IDT_GPA;
    sregs.idt.limit = CT_EXC_VECTORS * 16 - 1;
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    sregs.cr3 = CT_PT_GPA;
    sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    sregs.efer = EFER_LME | EFER_LMA;
    if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0) {
        snprintf(err, errlen, "KVM_SET_SREGS: %s", strerror(errno));
        return -errno;
    }

    memset(&regs, 0, sizeof regs);
    regs.rip = entry;
    regs.rdi = boot_gpa;
    regs.rsi = vcpu;
    regs.rsp = rsp;
    regs.rflags = RFLAGS_RESERVED; /* IOPL 0, interrupts off */
    if (ioctl(fd, KVM_SET_REGS, &regs) < 0) {
        snprintf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
        return -errno;
    }
    return 0;
}

int cpu_setup(struct vm *vm, uint64_t entry, uint64_t boot_gpa,
              uint64_t canary, char *err, size_t errlen)
{
    int ret;

    setup_page_tables(vm);
    setup_gdt_tss(vm);
    setup_idt(vm);
    put64(vm->mem + CT_FSBLOCK_GPA + CT_FSBLOCK_CANARY_OFF, canary);
    ret = setup_vcpu(vm->vcpu_fd, SEL_TSS, CT_TSS_GPA, entry, boot_gpa, 0,
                     CT_STACK_TOP, err, errlen);
    if (ret == 0 && vm->wvcpu_fd >= 0)
        ret = setup_vcpu(vm->wvcpu_fd, SEL_TSS1, CT_TSS1_GPA, entry,
                         boot_gpa, 1, CT_WSTACK_TOP, err, errlen);
    return ret;
}
