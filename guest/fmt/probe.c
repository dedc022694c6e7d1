/*
 * Format probing from content (and, for dmg only, from the name, as qemu
 * does). Every format qemu would
 * recognise is listed, including ones instar cannot read yet: reading such
 * an image as raw would silently produce different bytes than qemu-img, so
 * a recognised-but-unsupported format is reported instead (the caller
 * refuses it). Magic values come from the published format specifications.
 */
#include "fmt.h"
#include "../rt/rt.h"

#include <stdbool.h>

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

/*
 * A vmdk text descriptor, recognised as qemu-img 7.2 does (measured): the
 * first line that is neither a '#' comment nor made of spaces only must be
 * "version=1", "version=2" or "version=3", ending in "\n" or "\r\n" within
 * the first 512 bytes. An empty line, leading spaces before text or a
 * comment running past 512 bytes make the file raw.
 */
static bool vmdk_descriptor(const uint8_t *p, size_t n)
{
    size_t i = 0;
    if (n > FMT_PROBE_LEN)
        n = FMT_PROBE_LEN;
    while (i < n) {
        if (p[i] == '#') {
            while (i < n && p[i] != '\n')
                i++;
            i++;
            continue;
        }
        if (p[i] == ' ') {
            while (i < n && p[i] == ' ')
                i++;
            if (i < n && p[i] == '\r')
                i++;
            if (i >= n || p[i] != '\n')
                return false;
            i++;
            continue;
        }
        if (n - i < 10 || memcmp(p + i, "version=", 8) != 0 ||
            p[i + 8] < '1' || p[i + 8] > '3')
            return false;
        return p[i + 9] == '\n' ||
               (p[i + 9] == '\r' && n - i >= 11 && p[i + 10] == '\n');
    }
    return false;
}

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
    if (vmdk_descriptor(head, n)) {
        res.format = CT_FMT_VMDK;
        res.name = "vmdk";
    }
    return res;
}

/* DMG (UDIF): a 512-byte "koly" trailer ends the file. qemu 7.2 chooses
 * its dmg driver by the name alone (score 2, above raw's 1), so any image
 * no other format claims is a dmg to qemu when its name ends in ".dmg".
 * instar has no dmg reader: refuse rather than copy the container. */
struct fmt_probe_result fmt_probe_tail(const uint8_t *tail, size_t n,
                                       bool dmg_name)
{
    struct fmt_probe_result res = {CT_FMT_RAW, "raw"};
    if (dmg_name || (n >= FMT_PROBE_TAIL_LEN && memcmp(tail, "koly", 4) == 0)) {
        res.format = CT_FMT_PROBE;
        res.name = "dmg";
    }
    return res;
}

bool fmt_name_is_dmg(const char *name, size_t len)
{
    return len > 4 && memcmp(name + len - 4, ".dmg", 4) == 0;
}

uint32_t fmt_probe_all(const uint8_t *head, size_t n, const uint8_t *tail,
                       size_t tn, const uint8_t *iso, size_t isn,
                       const char **names, uint32_t max)
{
    uint32_t k = 0;
#define ADD(name_)                                                            \
    do {                                                                      \
        if (k < max)                                                          \
            names[k++] = (name_);                                             \
    } while (0)
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++) {
        const struct magic *m = &magics[i];
        if (m->off + m->len <= n &&
            memcmp(head + m->off, m->bytes, m->len) == 0)
            ADD(m->name);
    }
    if (vmdk_descriptor(head, n))
        ADD("vmdk");
    /* a fixed VHD's footer, or a dynamic one's (which also has its copy
     * at 0) */
    if (tn >= FMT_PROBE_TAIL_LEN && memcmp(tail, "conectix", 8) == 0)
        ADD("vpc");
    if (tn >= FMT_PROBE_TAIL_LEN && memcmp(tail, "koly", 4) == 0)
        ADD("dmg");
    if (isn >= 5 && memcmp(iso, "CD001", 5) == 0)
        ADD("iso");
#undef ADD
    return k;
}
