/*
 * `instar convert` arguments: qemu-img convert 7.2's options and messages
 * (measured), the ones instar does not do refused by name, and -o as
 * qemu-img parses it (key=value pairs separated by commas, ",," a comma in
 * a value, the last of a repeated key winning, "help" listing the
 * options). Keys qemu-img knows for the format but instar does not do are
 * refused with their name; keys qemu-img does not know get its message.
 */
#define _GNU_SOURCE /* getopt_long */
#include "convert_cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "size.h"

#define TRY_HELP "Try 'instar --help' for more information"
#define KiB 1024ull
#define MiB (1024ull * 1024)

enum {
    OPT_OBJECT = 256,
    OPT_IMAGE_OPTS,
    OPT_TARGET_IMAGE_OPTS,
    OPT_SALVAGE,
    OPT_TARGET_IS_ZERO,
    OPT_BITMAPS,
    OPT_SKIP_BROKEN,
    OPT_BACKING_DIR
};

static const struct option long_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"force-share", no_argument, NULL, 'U'},
    {"object", required_argument, NULL, OPT_OBJECT},
    {"image-opts", no_argument, NULL, OPT_IMAGE_OPTS},
    {"target-image-opts", no_argument, NULL, OPT_TARGET_IMAGE_OPTS},
    {"salvage", no_argument, NULL, OPT_SALVAGE},
    {"target-is-zero", no_argument, NULL, OPT_TARGET_IS_ZERO},
    {"bitmaps", no_argument, NULL, OPT_BITMAPS},
    {"skip-broken-bitmaps", no_argument, NULL, OPT_SKIP_BROKEN},
    /* instar's own */
    {"backing-dir", required_argument, NULL, OPT_BACKING_DIR},
    {NULL, 0, NULL, 0},
};

/* qemu-img convert options instar does not do: what they are for. */
static const char *out_of_scope(int c)
{
    switch (c) {
    case 'B':
        return "-B (a backing file for the output)";
    case 'F':
        return "-F (the backing file's format)";
    case 'n':
        return "-n (an existing output)";
    case 'm':
        return "-m (parallel coroutines)";
    case 'W':
        return "-W (out-of-order writes)";
    case 's':
    case 'l':
        return "snapshots (-s, -l)";
    case 't':
    case 'T':
        return "cache modes (-t, -T)";
    case 'r':
        return "-r (a rate limit)";
    case 'C':
        return "-C (copy offloading)";
    case 'a':
        return "-a";
    case OPT_OBJECT:
        return "--object";
    case OPT_IMAGE_OPTS:
        return "--image-opts";
    case OPT_TARGET_IMAGE_OPTS:
        return "--target-image-opts";
    case OPT_SALVAGE:
        return "--salvage";
    case OPT_TARGET_IS_ZERO:
        return "--target-is-zero";
    case OPT_BITMAPS:
    case OPT_SKIP_BROKEN:
        return "bitmaps (--bitmaps, --skip-broken-bitmaps)";
    default:
        return NULL;
    }
}

/* -S: qemu's size syntax, a multiple of 512 up to 16 MiB (0: dense). */
static int sparse_size(const char *s, uint64_t *v, char *err, size_t errlen)
{
    bool hex;
    if (size_parse(s, v, &hex) != SIZE_OK || *v % 512 || *v > 16 * MiB)
        return cli_fail(err, errlen,
                        "Invalid buffer size for sparse output specified. "
                        "Valid sizes are multiples of 512 up to 16777216. "
                        "Select 0 to disable sparse detection (fully "
                        "allocates output).");
    return 0;
}

static int option(int c, char **argv, struct convert_opts *o, char *err,
                  size_t errlen)
{
    const char *what = out_of_scope(c);
    if (what)
        return cli_fail(err, errlen,
                        "%s is not supported by instar convert (see "
                        "docs/convert.md)",
                        what);
    switch (c) {
    case 'h':
        o->help = true;
        return 1;
    case 'f':
        o->in_fmt = optarg;
        return 0;
    case 'O':
        o->out_fmt = optarg;
        return 0;
    case 'o':
        if (o->no >= CONVERT_OPTS_MAX)
            return cli_fail(err, errlen, "too many -o options (max %d)",
                            CONVERT_OPTS_MAX);
        o->o[o->no++] = optarg;
        return 0;
    case 'c':
        o->compress = true;
        return 0;
    case 'S':
        return sparse_size(optarg, &o->sparse_min, err, errlen);
    case 'p':
        o->progress = true;
        return 0;
    case 'q':
        o->quiet = true;
        return 0;
    case 'U':
        return 0; /* instar never locks images */
    case OPT_BACKING_DIR:
        return cli_backing_dir(o->backing_dirs, &o->n_backing_dirs, optarg,
                               err, errlen);
    default:
        return cli_option_error(c, argv, err, errlen);
    }
}

int convert_parse_args(int argc, char **argv, struct convert_opts *o,
                       char *err, size_t errlen)
{
    int c, r;

    memset(o, 0, sizeof *o);
    o->sparse_min = 4 * KiB;
    if (errlen)
        err[0] = '\0';
    opterr = 0;
    optind = 0; /* glibc: full reinitialisation, so repeated calls work */
    while ((c = getopt_long(argc, argv, ":hf:O:o:cS:pqUB:F:nm:Wsl:t:T:r:Ca:",
                            long_opts, NULL)) != -1)
        if ((r = option(c, argv, o, err, errlen)) != 0)
            return r < 0 ? -1 : 0;
    if (argc - optind < 2)
        return cli_fail(err, errlen, "Expecting image file name\n" TRY_HELP);
    if (argc - optind > 2)
        return cli_fail(err, errlen,
                        "instar convert takes one input image (qemu-img "
                        "concatenates several; not supported)");
    o->in_path = argv[optind];
    o->out_path = argv[optind + 1];
    /* qemu-img: -q silences -p. */
    if (o->quiet)
        o->progress = false;
    return 0;
}

/* ---- -o ------------------------------------------------------------------ */

enum key {
    K_NONE,
    K_CLUSTER_SIZE,
    K_COMPAT,
    K_SUBFORMAT,
    K_ADAPTER,
    K_FORCE_SIZE,
    K_BLOCK_SIZE
};

/* A key qemu-img knows for a format; `key` says how instar takes it
 * (K_NONE: known, not supported by instar). */
struct optdef {
    uint32_t format;
    const char *name;
    enum key key;
    const char *help; /* for -o help (supported keys only) */
};

static const struct optdef defs[] = {
    {CT_FMT_QCOW2, "cluster_size", K_CLUSTER_SIZE,
     "cluster_size=<size>    - qcow2 cluster size (512 .. 2M, a power of "
     "two)"},
    {CT_FMT_QCOW2, "compat", K_COMPAT,
     "compat=<str>           - Compatibility level (v2 [0.10] or v3 [1.1])"},
    {CT_FMT_QCOW2, "backing_file", K_NONE, NULL},
    {CT_FMT_QCOW2, "backing_fmt", K_NONE, NULL},
    {CT_FMT_QCOW2, "compression_type", K_NONE, NULL},
    {CT_FMT_QCOW2, "data_file", K_NONE, NULL},
    {CT_FMT_QCOW2, "data_file_raw", K_NONE, NULL},
    {CT_FMT_QCOW2, "encrypt.cipher-alg", K_NONE, NULL},
    {CT_FMT_QCOW2, "encrypt.cipher-mode", K_NONE, NULL},
    {CT_FMT_QCOW2, "encrypt.format", K_NONE, NULL},
    {CT_FMT_QCOW2, "encrypt.hash-alg", K_NONE, NULL},
    {CT_FMT_QCOW2, "encrypt.iter-time", K_NONE, NULL},
    {CT_FMT_QCOW2, "encrypt.ivgen-alg", K_NONE, NULL},
    {CT_FMT_QCOW2, "encrypt.ivgen-hash-alg", K_NONE, NULL},
    {CT_FMT_QCOW2, "encrypt.key-secret", K_NONE, NULL},
    {CT_FMT_QCOW2, "encryption", K_NONE, NULL},
    {CT_FMT_QCOW2, "extended_l2", K_NONE, NULL},
    {CT_FMT_QCOW2, "lazy_refcounts", K_NONE, NULL},
    {CT_FMT_QCOW2, "refcount_bits", K_NONE, NULL},
    {CT_FMT_VMDK, "subformat", K_SUBFORMAT,
     "subformat=<str>        - monolithicSparse (default) or "
     "streamOptimized"},
    {CT_FMT_VMDK, "adapter_type", K_ADAPTER,
     "adapter_type=<str>     - ide (default), lsilogic, buslogic or "
     "legacyESX"},
    {CT_FMT_VMDK, "backing_file", K_NONE, NULL},
    {CT_FMT_VMDK, "backing_fmt", K_NONE, NULL},
    {CT_FMT_VMDK, "compat6", K_NONE, NULL},
    {CT_FMT_VMDK, "hwversion", K_NONE, NULL},
    {CT_FMT_VMDK, "toolsversion", K_NONE, NULL},
    {CT_FMT_VMDK, "zeroed_grain", K_NONE, NULL},
    {CT_FMT_VPC, "subformat", K_SUBFORMAT,
     "subformat=<str>        - dynamic (default) or fixed"},
    {CT_FMT_VPC, "force_size", K_FORCE_SIZE,
     "force_size=<bool (on/off)> - the size as given, not the nearest CHS "
     "geometry's"},
    {CT_FMT_VHDX, "subformat", K_SUBFORMAT,
     "subformat=<str>        - dynamic (default) or fixed"},
    {CT_FMT_VHDX, "block_size", K_BLOCK_SIZE,
     "block_size=<size>      - Block size, 1M .. 256M; 0: chosen from the "
     "size"},
    {CT_FMT_VHDX, "block_state_zero", K_NONE, NULL},
    {CT_FMT_VHDX, "log_size", K_NONE, NULL},
};

/* Known to qemu-img for every format that creates files. */
static const char *const common[] = {"size", "preallocation", "nocow",
                                     "extent_size_hint"};

static const struct optdef *lookup(uint32_t format, const char *name,
                                   size_t n)
{
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        if (defs[i].format == format && strlen(defs[i].name) == n &&
            !memcmp(defs[i].name, name, n))
            return &defs[i];
    return NULL;
}

static bool is_common(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        if (strlen(common[i]) == n && !memcmp(common[i], name, n))
            return true;
    return false;
}

static const char *format_name(uint32_t format)
{
    static const char *const n[CT_FMT_COUNT] = {
        [CT_FMT_RAW] = "raw", [CT_FMT_QCOW2] = "qcow2", [CT_FMT_VMDK] = "vmdk",
        [CT_FMT_VPC] = "vpc", [CT_FMT_VHDX] = "vhdx"};
    return format < CT_FMT_COUNT && n[format] ? n[format] : "?";
}

/* qemu's bool option syntax. */
static int parse_bool(const char *key, const char *v, bool *out, char *err,
                      size_t errlen)
{
    if (!v || !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))
        *out = true;
    else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false"))
        *out = false;
    else
        return cli_fail(err, errlen, "Parameter '%s' expects 'on' or 'off'",
                        key);
    return 0;
}

static int parse_size_opt(const char *key, const char *v, uint64_t *out,
                          char *err, size_t errlen)
{
    bool hex;
    if (!v || size_parse(v, out, &hex) != SIZE_OK)
        return cli_fail(err, errlen,
                        "Parameter '%s' expects a non-negative number below "
                        "2^64\nOptional suffix k, M, G, T, P or E means "
                        "kilo-, mega-, giga-, tera-, peta-\nand exabytes, "
                        "respectively.",
                        key);
    return 0;
}

static bool pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

/* One key=value for format; `creating` prefixes qemu's "error while
 * converting" messages with the output's name. */
static int apply(uint32_t format, const struct optdef *d, const char *v,
                 struct ct_output_params *p, const char *creating, char *err,
                 size_t errlen)
{
    uint64_t n = 0;
    bool b = false;
    const char *fn = format_name(format);

    switch (d->key) {
    case K_CLUSTER_SIZE:
        if (parse_size_opt(d->name, v, &n, err, errlen) < 0)
            return -1;
        if (!pow2(n) || n < 512 || n > 2 * MiB)
            return cli_fail(err, errlen,
                            "%s: error while converting %s: Cluster size "
                            "must be a power of two between 512 and 2048k",
                            creating, fn);
        p->cluster_bits = (uint32_t)__builtin_ctzll(n);
        return 0;
    case K_COMPAT:
        if (v && (!strcmp(v, "0.10") || !strcmp(v, "v2")))
            p->version = 2;
        else if (v && (!strcmp(v, "1.1") || !strcmp(v, "v3")))
            p->version = 3;
        else
            return cli_fail(err, errlen,
                            "%s: error while converting %s: Parameter "
                            "'version' does not accept value '%s'",
                            creating, fn, v ? v : "");
        return 0;
    case K_SUBFORMAT:
        if (format == CT_FMT_VMDK) {
            if (v && !strcmp(v, "monolithicSparse"))
                p->subformat = CT_SUB_MONOLITHIC_SPARSE;
            else if (v && !strcmp(v, "streamOptimized"))
                p->subformat = CT_SUB_STREAM_OPTIMIZED;
            else if (v && (!strcmp(v, "monolithicFlat") ||
                           !strcmp(v, "twoGbMaxExtentSparse") ||
                           !strcmp(v, "twoGbMaxExtentFlat")))
                return cli_fail(err, errlen,
                                "%s: vmdk subformat '%s' is not supported by "
                                "instar (it writes monolithicSparse and "
                                "streamOptimized)",
                                creating, v);
            else
                return cli_fail(err, errlen,
                                "%s: error while converting vmdk: invalid "
                                "parameter value: %s",
                                creating, v ? v : "");
            return 0;
        }
        if (v && !strcmp(v, "dynamic"))
            p->subformat = CT_SUB_DYNAMIC;
        else if (v && !strcmp(v, "fixed"))
            p->subformat = CT_SUB_FIXED;
        else
            return cli_fail(err, errlen,
                            "%s: error while converting %s: Parameter "
                            "'subformat' does not accept value '%s'",
                            creating, fn, v ? v : "");
        return 0;
    case K_ADAPTER:
        if (v && !strcmp(v, "ide"))
            p->adapter = CT_VMDK_IDE;
        else if (v && !strcmp(v, "buslogic"))
            p->adapter = CT_VMDK_BUSLOGIC;
        else if (v && !strcmp(v, "lsilogic"))
            p->adapter = CT_VMDK_LSILOGIC;
        else if (v && !strcmp(v, "legacyESX"))
            p->adapter = CT_VMDK_LEGACY_ESX;
        else
            return cli_fail(err, errlen,
                            "%s: error while converting vmdk: invalid "
                            "parameter value: %s",
                            creating, v ? v : "");
        return 0;
    case K_FORCE_SIZE:
        if (parse_bool(d->name, v, &b, err, errlen) < 0)
            return -1;
        p->flags = b ? p->flags | CT_OUT_FORCE_SIZE
                     : p->flags & ~CT_OUT_FORCE_SIZE;
        return 0;
    case K_BLOCK_SIZE:
        if (parse_size_opt(d->name, v, &n, err, errlen) < 0)
            return -1;
        /* qemu rounds the value up to a whole MiB in 64-bit arithmetic,
         * takes 0 as "choose from the size", lowers anything past 256 MiB
         * to 256 MiB and refuses what is then not a power of two
         * (measured: 1 and 768k give 1 MiB blocks, 1536k and 1048577 give
         * 2 MiB, 300M and 2^63 give 256 MiB, 3M and 2621440 fail). The
         * rounding wraps within 1 MiB of 2^64, as qemu's does: 2^64 - 1
         * gets the size's pick. */
        n = (n + (MiB - 1)) & ~(MiB - 1);
        if (n > 256 * MiB)
            n = 256 * MiB;
        if (n && !pow2(n))
            return cli_fail(err, errlen,
                            "%s: error while converting vhdx: Block size "
                            "must be a power of two",
                            creating);
        p->block_size = (uint32_t)n;
        return 0;
    case K_NONE:
        break;
    }
    return cli_fail(err, errlen,
                    "%s: option '%s' is not supported by instar (instar "
                    "convert -O %s -o help lists what is)",
                    creating, d->name, fn);
}

/* Splits one -o string into key=value pairs (",," is a comma in a value)
 * and applies each. Returns 1 for "help". */
static int parse_o(const char *s, uint32_t format, struct ct_output_params *p,
                   const char *creating, char *err, size_t errlen)
{
    char buf[4096];
    size_t n = strlen(s);
    if (n >= sizeof buf)
        return cli_fail(err, errlen, "-o option string too long");
    for (size_t i = 0; i <= n;) {
        size_t k = 0;
        /* one item: up to an unescaped comma */
        while (i < n && !(s[i] == ',' && s[i + 1] != ',')) {
            if (s[i] == ',')
                i++; /* ",," */
            buf[k++] = s[i++];
        }
        buf[k] = '\0';
        i++;
        if (!k)
            continue;
        if (!strcmp(buf, "help") || !strcmp(buf, "?"))
            return 1;
        char *eq = strchr(buf, '=');
        size_t klen = eq ? (size_t)(eq - buf) : k;
        const struct optdef *d = lookup(format, buf, klen);
        if (!d && !is_common(buf, klen))
            return cli_fail(err, errlen, "Invalid parameter '%.*s'", (int)klen,
                            buf);
        if (!d)
            return cli_fail(err, errlen,
                            "%s: option '%.*s' is not supported by instar "
                            "(instar convert -O %s -o help lists what is)",
                            creating, (int)klen, buf, format_name(format));
        if (apply(format, d, eq ? eq + 1 : NULL, p, creating, err, errlen) <
            0)
            return -1;
    }
    return 0;
}

int convert_output_params(const struct convert_opts *o, uint32_t format,
                          struct ct_output_params *p, char *err,
                          size_t errlen)
{
    memset(p, 0, sizeof *p);
    for (unsigned i = 0; i < o->no; i++) {
        int r = parse_o(o->o[i], format, p, o->out_path, err, errlen);
        if (r != 0)
            return r;
    }
    /* qemu-img compresses only where the format can. */
    if (o->compress) {
        if (format != CT_FMT_QCOW2 && format != CT_FMT_VMDK)
            return cli_fail(err, errlen,
                            "Compression not supported for this file format");
        p->flags |= CT_OUT_COMPRESS;
    }
    return 0;
}

void convert_option_help(uint32_t format, FILE *f)
{
    fputs("Supported options:\n", f);
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        if (defs[i].format == format && defs[i].help)
            fprintf(f, "  %s\n", defs[i].help);
    if (format == CT_FMT_RAW)
        fputs("  (none: raw output takes no options in instar)\n", f);
}
