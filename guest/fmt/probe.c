/*
 * Format probing from content, never from names. Every format qemu would
 * recognise is listed, including ones instar cannot read yet: reading such
 * an image as raw would silently produce different bytes than qemu-img, so
 * a recognised-but-unsupported format is reported instead (the caller
 * refuses it). Magic values come from the published format specifications.
 */
#include "fmt.h"
#include "../rt/rt.h"

struct magic {
    const char *name;
    uint32_t format; /* CT_FMT_PROBE: recognised, no driver */
    size_t off;
    const char *bytes;
    size_t len;
};

static const struct magic magics[] = {
    {"qcow2", CT_FMT_QCOW2, 0, "QFI\xfb", 4},
    {"vmdk", CT_FMT_VMDK, 0, "KDMV", 4},         /* hosted sparse extent */
    {"vmdk", CT_FMT_VMDK, 0, "COWD", 4},         /* ESX sparse extent */
    {"vmdk", CT_FMT_VMDK, 0, "# Disk DescriptorFile", 21},
    {"vpc", CT_FMT_VPC, 0, "conectix", 8},       /* dynamic VHD footer copy */
    {"vhdx", CT_FMT_VHDX, 0, "vhdxfile", 8},
    {"qed", CT_FMT_PROBE, 0, "QED\0", 4},
    {"vdi", CT_FMT_PROBE, 0x40, "\x7f\x10\xda\xbe", 4},
    {"luks", CT_FMT_PROBE, 0, "LUKS\xba\xbe", 6},
    {"bochs", CT_FMT_PROBE, 0, "Bochs Virtual HD Image", 22},
    {"parallels", CT_FMT_PROBE, 0, "WithoutFreeSpace", 16},
    {"parallels", CT_FMT_PROBE, 0, "WithouFreSpacExt", 16},
    {"cloop", CT_FMT_PROBE, 0, "#!/bin/sh\n#V2.0 Format\n", 23},
};

struct fmt_probe_result fmt_probe(const uint8_t *head, size_t n)
{
    struct fmt_probe_result res = {CT_FMT_RAW, "raw"};
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++) {
        const struct magic *m = &magics[i];
        if (m->off + m->len <= n &&
            memcmp(head + m->off, m->bytes, m->len) == 0) {
            res.format = m->format;
            res.name = m->name;
            return res;
        }
    }
    return res;
}
