/*
 * Guest entry and exception stubs. The host enters _start at CPL3 in long
 * mode with rdi = boot info GPA, rsi = vCPU index and rsp = that vCPU's
 * stack top (CT_STACK_TOP, CT_WSTACK_TOP). RAM is zeroed by
 * the host, so .bss needs no clearing.
 *
 * Exceptions are delivered at CPL0 through the IDT the host builds from the
 * fixed stub slots below; the common handler records vector, error code,
 * RIP and CR2 at CT_FAULT_GPA and reports them with one outl. That path is
 * slow under PVM but only runs when the guest is already dying.
 */
#include "instar_ct.h"

    .section .text.entry, "ax"
    .code64
    .globl _start
_start:
    jmp     entry                       /* 2 bytes */
    .org    CT_IMAGE_MAGIC_OFF
    .quad   CT_IMAGE_MAGIC
    .org    CT_IMAGE_ABI_OFF
    .long   CT_ABI_VERSION

/* Vectors that push an error code themselves: 8, 10-14, 17, 21, 29, 30. */
.macro STUB n
    .org    CT_EXC_STUBS_OFF + \n * CT_EXC_STUB_SIZE
    .if (\n == 8) || (\n >= 10 && \n <= 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
    .else
    pushq   $0
    .endif
    pushq   $\n
    jmp     exc_common
.endm

    STUB 0
    STUB 1
    STUB 2
    STUB 3
    STUB 4
    STUB 5
    STUB 6
    STUB 7
    STUB 8
    STUB 9
    STUB 10
    STUB 11
    STUB 12
    STUB 13
    STUB 14
    STUB 15
    STUB 16
    STUB 17
    STUB 18
    STUB 19
    STUB 20
    STUB 21
    STUB 22
    STUB 23
    STUB 24
    STUB 25
    STUB 26
    STUB 27
    STUB 28
    STUB 29
    STUB 30
    STUB 31
    .org    CT_EXC_STUBS_OFF + CT_EXC_VECTORS * CT_EXC_STUB_SIZE

exc_common:
    /* stack: vector, error code, rip, cs, rflags, rsp, ss */
    movl    $CT_FAULT_GPA, %edi
    movq    0(%rsp), %rax
    movq    %rax, 0(%rdi)
    movq    8(%rsp), %rax
    movq    %rax, 8(%rdi)
    movq    16(%rsp), %rax
    movq    %rax, 16(%rdi)
    movq    %cr2, %rax
    movq    %rax, 24(%rdi)
    movl    %edi, %eax
    movw    $(CT_PORT_BASE + CT_CALL_FAULT), %dx
    outl    %eax, %dx
1:  hlt
    jmp     1b

entry:
    xorl    %ebp, %ebp
    testl   %esi, %esi
    jnz     1f
    call    guest_main                  /* does not return */
    ud2
1:  call    guest_worker_main           /* (bootinfo, vcpu): no return */
    ud2
