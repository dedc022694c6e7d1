/*
 * `instar info` in the guest: open the input (and with --backing-chain its
 * backing files and parents) and describe each image as info records for
 * the host to check and render (fmt/info.h).
 */
#ifndef INSTAR_GUEST_ENGINE_INFO_H
#define INSTAR_GUEST_ENGINE_INFO_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

struct info_config {
    uint32_t in_format; /* CT_FMT_PROBE or a CT_FMT_* */
    bool in_dmg_name;   /* the input's name ends in ".dmg" */
    bool chain;         /* --backing-chain */
    uint32_t files_max; /* boot info's files_max; 0: CT_HANDLES_MAX */
};

int info_run(const struct info_config *cfg, const struct ct_ops *ops,
             const struct dd_mem *mem, struct g_error *err);

#endif
