/*
 * One KVM virtual machine with CT_RAM_SIZE bytes of RAM at guest-physical
 * 0, its main vCPU and optionally a worker vCPU. All access to guest memory goes through vmm_gpa().
 */
#ifndef INSTAR_VMM_VM_H
#define INSTAR_VMM_VM_H

#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

struct vm {
    int kvm_fd;
    int vm_fd;
    int vcpu_fd;
    struct kvm_run *run;
    size_t run_size;
    int wvcpu_fd;          /* the worker vCPU; -1 when there is none */
    struct kvm_run *wrun;
    uint8_t *mem;
    uint64_t mem_size;
};

/* Creates the VM; on failure writes a message to err and returns -errno. */
int vm_create(struct vm *vm, char *err, size_t errlen);
void vm_destroy(struct vm *vm);

/* Adds the worker vCPU (index 1); on failure the VM keeps one vCPU. */
int vm_add_worker(struct vm *vm, char *err, size_t errlen);

/* Closes the fds the vCPU no longer needs (/dev/kvm, the VM fd): the vCPU
 * fd keeps the VM alive, and fewer fds means less for a sandbox escape. */
void vm_drop_setup_fds(struct vm *vm);

/*
 * Host pointer for guest range [gpa, gpa+len), or NULL if any byte lies
 * outside [lo, hi) or the arithmetic overflows. Every guest-supplied
 * address goes through here.
 */
void *vmm_gpa_in(const struct vm *vm, uint64_t gpa, uint64_t len, uint64_t lo,
                 uint64_t hi);

static inline void *vmm_gpa(const struct vm *vm, uint64_t gpa, uint64_t len)
{
    return vmm_gpa_in(vm, gpa, len, 0, vm->mem_size);
}

/* Sets up long mode at CPL3 (cpu.c): page tables, GDT/IDT/TSSs, and the
 * registers of every vCPU. entry is the guest RIP; rdi receives boot_gpa,
 * rsi the vCPU index. */
int cpu_setup(struct vm *vm, uint64_t entry, uint64_t boot_gpa,
              uint64_t canary, char *err, size_t errlen);

/* Copies a guest image to CT_IMAGE_GPA after checking its header
 * (loader.c). */
int loader_load(struct vm *vm, const uint8_t *img, size_t len, char *err,
                size_t errlen);

#endif
