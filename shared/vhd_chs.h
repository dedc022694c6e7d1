/*
 * The virtual size of a VHD that qemu-img creates: the requested size
 * rounded up to a cylinder/head/sector geometry, as qemu-img 7.2 does
 * (measured on 135 sizes; ../shared/design/writers.md section 4.3).
 * Header-only and pure: the guest's vpc writer and the host's bound on
 * the output compute the same number.
 *
 * The geometry of T sectors follows the VHD specification (appendix
 * "CHS calculation"); qemu searches T = S, S+1, ... until the geometry
 * covers the S requested sectors. Past the largest geometry
 * (65535/16/255) the requested size is kept exactly, up to 2040 GiB.
 */
#ifndef INSTAR_VHD_CHS_H
#define INSTAR_VHD_CHS_H

#include <stdbool.h>
#include <stdint.h>

#define VHD_CHS_SECTOR 512u
#define VHD_CHS_MAX_CYLINDERS 65535u
#define VHD_CHS_MAX_SECTORS (65535ull * 16 * 255)
/* The largest size qemu-img accepts for vpc: 2040 GiB. */
#define VHD_CHS_MAX_BYTES (2040ull << 30)

struct vhd_chs {
    uint32_t cylinders; /* up to 65535 */
    uint32_t heads;     /* up to 16 */
    uint32_t sectors;   /* per track: 17, 31, 63 or 255 */
};

/* The specification's geometry for t sectors (t <= VHD_CHS_MAX_SECTORS). */
static inline struct vhd_chs vhd_chs_of(uint64_t t)
{
    struct vhd_chs g;
    uint64_t cth;
    if (t >= 65535ull * 16 * 63) {
        g.sectors = 255;
        g.heads = 16;
        cth = t / 255;
    } else {
        g.sectors = 17;
        cth = t / 17;
        g.heads = (uint32_t)((cth + 1023) / 1024);
        if (g.heads < 4)
            g.heads = 4;
        if (cth >= (uint64_t)g.heads * 1024 || g.heads > 16) {
            g.sectors = 31;
            g.heads = 16;
            cth = t / 31;
        }
        if (cth >= 16 * 1024) {
            g.sectors = 63;
            g.heads = 16;
            cth = t / 63;
        }
    }
    g.cylinders = (uint32_t)(cth / g.heads);
    return g;
}

static inline uint64_t vhd_chs_total(const struct vhd_chs *g)
{
    return (uint64_t)g->cylinders * g->heads * g->sectors;
}

/*
 * The virtual size qemu gives a VHD of `bytes` requested bytes, and its
 * geometry. False when qemu refuses the size ("The image size is too large
 * for file format 'vpc'").
 */
static inline bool vhd_chs_size(uint64_t bytes, uint64_t *vsize,
                                struct vhd_chs *geo)
{
    struct vhd_chs g = {0, 0, 0};
    uint64_t want, t;

    if (bytes > VHD_CHS_MAX_BYTES)
        return false;
    want = bytes / VHD_CHS_SECTOR + (bytes % VHD_CHS_SECTOR != 0);
    t = want < VHD_CHS_MAX_SECTORS ? want : VHD_CHS_MAX_SECTORS;
    /* Each step grows the total by at least one sector, and the search
     * ends at the largest geometry at the latest. */
    for (uint64_t i = 0; vhd_chs_total(&g) < t; i++)
        g = vhd_chs_of(t + i);
    *geo = g;
    *vsize = vhd_chs_total(&g) == VHD_CHS_MAX_SECTORS
                 ? want * VHD_CHS_SECTOR
                 : vhd_chs_total(&g) * VHD_CHS_SECTOR;
    return true;
}

#endif /* INSTAR_VHD_CHS_H */
