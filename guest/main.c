/* dd.bin's main: check the ABI, turn the boot info into a dd or info
 * config (the boot info's mode), run. */
#include "ct.h"
#include "engine/engine.h"
#include "engine/info.h"
#include "rt/par.h"
#include "rt/rt.h"

__attribute__((noreturn)) void guest_main(const struct ct_bootinfo *bi);
__attribute__((noreturn)) void guest_worker_main(const struct ct_bootinfo *bi,
                                                 uint64_t vcpu);

/* gcc's stack protector calls this when a canary was overwritten. */
__attribute__((noreturn)) void __stack_chk_fail(void)
{
    ct_exit(CT_STATUS_FAIL, "guest: stack smashing detected");
}

static struct g_error err; /* in .bss: too big to want on a small stack */
/* Set up by the main vCPU before its first wake-up starts the worker. */
static struct par par;

void guest_worker_main(const struct ct_bootinfo *bi, uint64_t vcpu)
{
    (void)bi;
    par_worker(&par, (uint32_t)vcpu);
}

void guest_main(const struct ct_bootinfo *bi)
{
    if (ct_hello() != CT_OK || bi->abi_version != CT_ABI_VERSION)
        ct_exit(CT_STATUS_FAIL, "guest: call-table ABI version mismatch");

    struct dd_config cfg = {
        .in_format = bi->in_format,
        .out_format = bi->out_format,
        .args = {.bs = bi->bs,
                 .count = bi->count,
                 .skip = bi->skip,
                 .has_count = (bi->flags & CT_BOOT_HAS_COUNT) != 0,
                 .has_skip = (bi->flags & CT_BOOT_HAS_SKIP) != 0},
        .files_max = bi->files_max,
        .in_dmg_name = (bi->flags & CT_BOOT_INPUT_DMG_NAME) != 0,
        .write = {.unix_time = bi->unix_time,
                  .entropy = bi->entropy,
                  .out_name = bi->out_name,
                  .out_name_len = bi->out_name_len <= CT_OUT_NAME_MAX
                                      ? bi->out_name_len
                                      : 0,
                  .params = &bi->out},
        /* convert: the whole image (the host sets no count or skip) */
        .convert = bi->mode == CT_MODE_CONVERT,
        .sparse_min = bi->mode == CT_MODE_CONVERT ? bi->sparse_min : 0,
        .progress = (bi->flags & CT_BOOT_PROGRESS) != 0,
    };
    struct dd_mem mem = {(void *)(uintptr_t)bi->heap_base, bi->heap_size,
                         (void *)(uintptr_t)bi->io_base, bi->io_size, &par};

    par_init(&par, bi->vcpus, ct_wake, ct_park, 0);

    if (bi->mode == CT_MODE_INFO) {
        struct info_config icfg = {
            .in_format = bi->in_format,
            .in_dmg_name = cfg.in_dmg_name,
            .chain = (bi->flags & CT_BOOT_BACKING_CHAIN) != 0,
            .files_max = bi->files_max,
        };
        if (info_run(&icfg, &ct_hypercall_ops, &mem, &err) != G_OK)
            ct_exit(CT_STATUS_FAIL, err.msg[0] ? err.msg : "guest: failed");
        ct_exit(CT_STATUS_OK, 0);
    }
    if (bi->mode != CT_MODE_DD && bi->mode != CT_MODE_CONVERT)
        ct_exit(CT_STATUS_FAIL, "guest: unknown mode in the boot info");
    if (dd_run(&cfg, &ct_hypercall_ops, &mem, &err) != G_OK)
        ct_exit(CT_STATUS_FAIL, err.msg[0] ? err.msg : "guest: failed");
    ct_exit(CT_STATUS_OK, 0);
}
