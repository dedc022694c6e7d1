/* `instar convert`'s command line and -o, as qemu-img convert 7.2 takes
 * them (measured). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "convert_cli.h"

static int parse(struct convert_opts *o, char *err, size_t n, ...)
{
    char *argv[32] = {"convert"};
    int argc = 1;
    va_list ap;
    va_start(ap, n);
    for (char *a; (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    return convert_parse_args(argc, argv, o, err, n);
}

#define PARSE(o, err, ...) parse(o, err, sizeof err, __VA_ARGS__, NULL)

Test(convert_cli, defaults)
{
    struct convert_opts o;
    char err[512];
    cr_assert_eq(PARSE(&o, err, "in.img", "out.img"), 0, "%s", err);
    cr_expect_str_eq(o.in_path, "in.img");
    cr_expect_str_eq(o.out_path, "out.img");
    cr_expect_null(o.out_fmt);
    cr_expect_eq(o.sparse_min, 4096u);
    cr_expect_not(o.compress);
}

Test(convert_cli, sparse_size_rules)
{
    struct convert_opts o;
    char err[512];
    cr_expect_eq(PARSE(&o, err, "-S", "0", "a", "b"), 0);
    cr_expect_eq(o.sparse_min, 0u);
    cr_expect_eq(PARSE(&o, err, "-S", "64k", "a", "b"), 0);
    cr_expect_eq(o.sparse_min, 65536u);
    cr_expect_eq(PARSE(&o, err, "-S", "16M", "a", "b"), 0);
    cr_expect_eq(PARSE(&o, err, "-S", "1000", "a", "b"), -1);
    cr_expect(strstr(err, "Invalid buffer size for sparse output"), "%s",
              err);
    cr_expect_eq(PARSE(&o, err, "-S", "32M", "a", "b"), -1);
}

Test(convert_cli, quiet_silences_progress)
{
    struct convert_opts o;
    char err[512];
    cr_expect_eq(PARSE(&o, err, "-p", "-q", "a", "b"), 0);
    cr_expect_not(o.progress);
}

Test(convert_cli, one_input_only)
{
    struct convert_opts o;
    char err[512];
    cr_expect_eq(PARSE(&o, err, "a", "b", "c"), -1);
    cr_expect(strstr(err, "one input image"), "%s", err);
    cr_expect_eq(PARSE(&o, err, "a"), -1);
}

Test(convert_cli, out_of_scope_options_named)
{
    struct convert_opts o;
    char err[512];
    cr_expect_eq(PARSE(&o, err, "-B", "base", "a", "b"), -1);
    cr_expect(strstr(err, "-B"), "%s", err);
    cr_expect_eq(PARSE(&o, err, "--target-image-opts", "a", "b"), -1);
    cr_expect(strstr(err, "--target-image-opts"), "%s", err);
    cr_expect_eq(PARSE(&o, err, "-m", "8", "a", "b"), -1);
}

static int params(uint32_t fmt, const char *opt, bool compress,
                  struct ct_output_params *p, char *err, size_t n)
{
    struct convert_opts o = {.out_path = "out"};
    if (opt)
        o.o[o.no++] = opt;
    o.compress = compress;
    return convert_output_params(&o, fmt, p, err, n);
}

Test(convert_cli, qcow2_options)
{
    struct ct_output_params p;
    char err[512];
    cr_expect_eq(params(CT_FMT_QCOW2, "cluster_size=4k,compat=0.10", false,
                        &p, err, sizeof err),
                 0, "%s", err);
    cr_expect_eq(p.cluster_bits, 12u);
    cr_expect_eq(p.version, 2u);
    cr_expect_eq(params(CT_FMT_QCOW2, "cluster_size=4k,cluster_size=8k",
                        false, &p, err, sizeof err),
                 0);
    cr_expect_eq(p.cluster_bits, 13u, "the last one wins");
    cr_expect_eq(params(CT_FMT_QCOW2, "cluster_size=3k", false, &p, err,
                        sizeof err),
                 -1);
    cr_expect(strstr(err, "power of two between 512 and 2048k"), "%s", err);
    cr_expect_eq(params(CT_FMT_QCOW2, "compat=v3", true, &p, err,
                        sizeof err),
                 0);
    cr_expect_eq(p.version, 3u);
    cr_expect(p.flags & CT_OUT_COMPRESS);
}

Test(convert_cli, unknown_and_unsupported_keys)
{
    struct ct_output_params p;
    char err[512];
    cr_expect_eq(params(CT_FMT_QCOW2, "foo=1", false, &p, err, sizeof err),
                 -1);
    cr_expect_str_eq(err, "Invalid parameter 'foo'");
    cr_expect_eq(params(CT_FMT_QCOW2, "lazy_refcounts=on", false, &p, err,
                        sizeof err),
                 -1);
    cr_expect(strstr(err, "'lazy_refcounts' is not supported by instar"),
              "%s", err);
    cr_expect_eq(params(CT_FMT_RAW, "preallocation=full", false, &p, err,
                        sizeof err),
                 -1);
    cr_expect(strstr(err, "not supported by instar"), "%s", err);
    cr_expect_eq(params(CT_FMT_RAW, NULL, true, &p, err, sizeof err), -1);
    cr_expect_str_eq(err, "Compression not supported for this file format");
}

Test(convert_cli, help_and_escaped_commas)
{
    struct ct_output_params p;
    char err[512];
    cr_expect_eq(params(CT_FMT_VPC, "help", false, &p, err, sizeof err), 1);
    cr_expect_eq(params(CT_FMT_VPC, "force_size=on,?", false, &p, err,
                        sizeof err),
                 1);
    /* ",," is a comma inside a value: "dynamic,,x" is no subformat */
    cr_expect_eq(params(CT_FMT_VPC, "subformat=dynamic,,x", false, &p, err,
                        sizeof err),
                 -1);
    cr_expect(strstr(err, "'dynamic,x'"), "%s", err);
}

Test(convert_cli, vpc_vhdx_vmdk_options)
{
    struct ct_output_params p;
    char err[512];
    cr_expect_eq(params(CT_FMT_VPC, "subformat=fixed,force_size=yes", false,
                        &p, err, sizeof err),
                 0, "%s", err);
    cr_expect_eq(p.subformat, (uint32_t)CT_SUB_FIXED);
    cr_expect(p.flags & CT_OUT_FORCE_SIZE);
    cr_expect_eq(params(CT_FMT_VHDX, "block_size=512k", false, &p, err,
                        sizeof err),
                 0);
    cr_expect_eq(p.block_size, 1u << 20, "qemu raises it to 1 MiB");
    cr_expect_eq(params(CT_FMT_VHDX, "block_size=3M", false, &p, err,
                        sizeof err),
                 -1);
    cr_expect_eq(params(CT_FMT_VMDK,
                        "subformat=streamOptimized,adapter_type=lsilogic",
                        false, &p, err, sizeof err),
                 0);
    cr_expect_eq(p.subformat, (uint32_t)CT_SUB_STREAM_OPTIMIZED);
    cr_expect_eq(p.adapter, (uint32_t)CT_VMDK_LSILOGIC);
    cr_expect_eq(params(CT_FMT_VMDK, "subformat=monolithicFlat", false, &p,
                        err, sizeof err),
                 -1);
    cr_expect(strstr(err, "not supported by instar"), "%s", err);
}

/* vhdx block_size as qemu-img 7.2 takes it (measured with qemu-img create
 * and convert, read back from the file parameters): rounded up to a MiB
 * (wrapping near 2^64), capped at 256 MiB, then a power of two or an
 * error. */
Test(convert_cli, vhdx_block_size_is_rounded_and_capped_like_qemu)
{
    static const struct {
        const char *v;
        int ret;
        uint32_t bs;
    } rows[] = {
        {"0", 0, 0},
        {"1", 0, 1u << 20},
        {"511k", 0, 1u << 20},
        {"768k", 0, 1u << 20},
        {"1M", 0, 1u << 20},
        {"1048577", 0, 2u << 20},
        {"1536k", 0, 2u << 20},
        {"1.5M", 0, 2u << 20},
        {"3145729", 0, 4u << 20},
        {"7340033", 0, 8u << 20},
        {"256M", 0, 256u << 20},
        {"257M", 0, 256u << 20},
        {"300M", 0, 256u << 20},
        {"16G", 0, 256u << 20},
        {"9223372036854775808", 0, 256u << 20},
        {"18446744073708503040", 0, 256u << 20}, /* 2^64 - 1 MiB */
        {"18446744073708503041", 0, 0},          /* wraps to 0 */
        {"18446744073709551615", 0, 0},
        {"2621440", -1, 0},
        {"3M", -1, 0},
        {"5M", -1, 0},
        {"100M", -1, 0},
        {"192M", -1, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct ct_output_params p;
        char o[64], err[512];
        snprintf(o, sizeof o, "block_size=%s", rows[i].v);
        cr_expect_eq(params(CT_FMT_VHDX, o, false, &p, err, sizeof err),
                     rows[i].ret, "%s: %s", o, err);
        if (rows[i].ret == 0)
            cr_expect_eq(p.block_size, rows[i].bs, "%s: %u", o,
                         (unsigned)p.block_size);
        else
            cr_expect(strstr(err, "Block size must be a power of two"),
                      "%s: %s", o, err);
    }
}
