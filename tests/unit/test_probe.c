/* Probing by content: every magic instar knows, and raw otherwise. */
#include <criterion/criterion.h>
#include <string.h>

#include "fmt/fmt.h"

static struct fmt_probe_result probe_at(const char *magic, size_t mlen,
                                        size_t off)
{
    uint8_t head[FMT_PROBE_LEN] = {0};
    memcpy(head + off, magic, mlen);
    return fmt_probe(head, sizeof head);
}

Test(probe, readable_formats)
{
    cr_expect_eq(probe_at("QFI\xfb", 4, 0).format, CT_FMT_QCOW2);
    cr_expect_eq(probe_at("KDMV", 4, 0).format, CT_FMT_VMDK);
    cr_expect_eq(probe_at("# Disk DescriptorFile\nversion=1\n", 32, 0).format,
                 CT_FMT_VMDK);
    cr_expect_eq(probe_at("conectix", 8, 0).format, CT_FMT_VPC);
    cr_expect_eq(probe_at("vhdxfile", 8, 0).format, CT_FMT_VHDX);
}

Test(probe, formats_without_driver_are_named)
{
    struct fmt_probe_result r = probe_at("\x7f\x10\xda\xbe", 4, 0x40);
    cr_expect_eq(r.format, CT_FMT_PROBE);
    cr_expect_str_eq(r.name, "vdi");
    cr_expect_str_eq(probe_at("QED\0", 4, 0).name, "qed");
    cr_expect_str_eq(probe_at("LUKS\xba\xbe", 6, 0).name, "luks");
}

Test(probe, raw_when_nothing_matches_or_short)
{
    uint8_t head[3] = {'Q', 'F', 'I'};
    cr_expect_eq(fmt_probe(head, sizeof head).format, CT_FMT_RAW);
    cr_expect_eq(fmt_probe(head, 0).format, CT_FMT_RAW);
    /* the magic must be at its offset, not anywhere */
    cr_expect_eq(probe_at("QFI\xfb", 4, 1).format, CT_FMT_RAW);
    /* a fixed VHD has its footer at the end only: raw, as qemu */
    cr_expect_eq(probe_at("conectix", 8, 100).format, CT_FMT_RAW);
}

static uint32_t probe_text(const char *t)
{
    return fmt_probe((const uint8_t *)t, strlen(t)).format;
}

Test(probe, vmdk_descriptor_version_line)
{
    /* as qemu-img 7.2 probes (measured): comments and space-only lines
     * may precede "version=1..3" */
    cr_expect_eq(probe_text("version=1\nCID=1\n"), CT_FMT_VMDK);
    cr_expect_eq(probe_text("# a\n#b\n \n  \r\nversion=2\r\n"), CT_FMT_VMDK);
    cr_expect_eq(probe_text("version=3\n"), CT_FMT_VMDK);
    cr_expect_eq(probe_text("version=4\n"), CT_FMT_RAW);
    cr_expect_eq(probe_text("version=10\n"), CT_FMT_RAW);
    cr_expect_eq(probe_text("version=1"), CT_FMT_RAW);
    cr_expect_eq(probe_text("version=1 \n"), CT_FMT_RAW);
    cr_expect_eq(probe_text("\nversion=1\n"), CT_FMT_RAW);
    cr_expect_eq(probe_text("  version=1\n"), CT_FMT_RAW);
    cr_expect_eq(probe_text("CID=1\nversion=1\n"), CT_FMT_RAW);
    cr_expect_eq(probe_text("# Disk DescriptorFile\nCID=1\n"), CT_FMT_RAW);
    /* the version line must end within the first 512 bytes */
    char buf[600];
    memset(buf, 'x', sizeof buf);
    buf[0] = '#';
    memcpy(buf + 501, "\nversion=1\n", 11); /* ends at 512 */
    cr_expect_eq(fmt_probe((uint8_t *)buf, 512).format, CT_FMT_VMDK);
    memcpy(buf + 501, "x\nversion=1\n", 12); /* ends at 513 */
    cr_expect_eq(fmt_probe((uint8_t *)buf, sizeof buf).format, CT_FMT_RAW);
}
