#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "instar_ct.h"

void *vmm_gpa_in(const struct vm *vm, uint64_t gpa, uint64_t len, uint64_t lo,
                 uint64_t hi)
{
    uint64_t end;
    if (hi > vm->mem_size || lo > hi)
        return NULL;
    if (__builtin_add_overflow(gpa, len, &end))
        return NULL;
    if (gpa < lo || end > hi)
        return NULL;
    return vm->mem + gpa;
}

static int fail(char *err, size_t errlen, const char *what)
{
    int e = errno;
    snprintf(err, errlen, "%s: %s", what, strerror(e));
    return -e;
}

int vm_create(struct vm *vm, char *err, size_t errlen)
{
    int ret;
    memset(vm, 0, sizeof *vm);
    vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = vm->wvcpu_fd = -1;

    vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0)
        return fail(err, errlen, "cannot open /dev/kvm");
    if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        snprintf(err, errlen, "unsupported KVM API version");
        return -ENOTSUP;
    }
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0)
        return fail(err, errlen, "KVM_CREATE_VM");

    /* MAP_NORESERVE: RAM the guest never touches costs nothing. */
    vm->mem_size = CT_RAM_SIZE;
    vm->mem = mmap(NULL, vm->mem_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (vm->mem == MAP_FAILED) {
        vm->mem = NULL;
        return fail(err, errlen, "cannot map guest RAM");
    }
    struct kvm_userspace_memory_region region = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = vm->mem_size,
        .userspace_addr = (uint64_t)(uintptr_t)vm->mem,
    };
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return fail(err, errlen, "KVM_SET_USER_MEMORY_REGION");

    vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
    if (vm->vcpu_fd < 0)
        return fail(err, errlen, "KVM_CREATE_VCPU");
    ret = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (ret < (int)sizeof(struct kvm_run)) {
        snprintf(err, errlen, "bad KVM_GET_VCPU_MMAP_SIZE");
        return -EINVAL;
    }
    vm->run_size = (size_t)ret;
    vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                   vm->vcpu_fd, 0);
    if (vm->run == MAP_FAILED) {
        vm->run = NULL;
        return fail(err, errlen, "cannot map the vCPU run area");
    }
    return 0;
}

int vm_add_worker(struct vm *vm, char *err, size_t errlen)
{
    vm->wvcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 1);
    if (vm->wvcpu_fd < 0)
        return fail(err, errlen, "KVM_CREATE_VCPU (worker)");
    vm->wrun = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                    vm->wvcpu_fd, 0);
    if (vm->wrun == MAP_FAILED) {
        int ret = fail(err, errlen, "cannot map the worker's run area");
        vm->wrun = NULL;
        close(vm->wvcpu_fd);
        vm->wvcpu_fd = -1;
        return ret;
    }
    return 0;
}

void vm_drop_setup_fds(struct vm *vm)
{
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    vm->vm_fd = vm->kvm_fd = -1;
}

void vm_destroy(struct vm *vm)
{
    if (vm->run)
        munmap(vm->run, vm->run_size);
    if (vm->mem)
        munmap(vm->mem, vm->mem_size);
    if (vm->wrun)
        munmap(vm->wrun, vm->run_size);
    if (vm->vcpu_fd >= 0)
        close(vm->vcpu_fd);
    if (vm->wvcpu_fd >= 0)
        close(vm->wvcpu_fd);
    vm_drop_setup_fds(vm);
    vm->wrun = NULL;
    vm->wvcpu_fd = -1;
    vm->run = NULL;
    vm->mem = NULL;
    vm->vcpu_fd = -1;
}
