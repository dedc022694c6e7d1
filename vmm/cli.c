/*
 * `instar dd` arguments. Every message and every order of checks here was
 * measured against `qemu-img dd` 7.2: options (anywhere, GNU permutation)
 * first, then operands left to right with the first bad one winning, then
 * the presence of if= and of=.
 */
#define _GNU_SOURCE /* getopt_long */
#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <string.h>

#include "instar_ct.h"
#include "size.h"

#define TRY_HELP "Try 'instar --help' for more information"

enum { OPT_OBJECT = 256, OPT_IMAGE_OPTS, OPT_BACKING_DIR };

/*
 * qemu-img dd's own long options. --object and --image-opts are listed so
 * that abbreviations and a missing argument behave as in qemu; instar then
 * refuses them.
 */
static const struct option long_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"object", required_argument, NULL, OPT_OBJECT},
    {"image-opts", no_argument, NULL, OPT_IMAGE_OPTS},
    {"force-share", no_argument, NULL, 'U'},
    /* instar's own: more directories backing files may come from */
    {"backing-dir", required_argument, NULL, OPT_BACKING_DIR},
    {NULL, 0, NULL, 0},
};

struct size_operand {
    const char *name;
    uint64_t min, max;
};

static const struct size_operand bs_operand = {"bs", 1, 2147483647};
static const struct size_operand count_operand = {
    "count", 0, 9223372036854775807u};
static const struct size_operand skip_operand = {
    "skip", 0, 9223372036854775807u};

int cli_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int cli_backing_dir(const char **dirs, unsigned *n, const char *dir,
                    char *err, size_t errlen)
{
    if (*n >= DD_BACKING_DIRS_MAX)
        return cli_fail(err, errlen, "too many --backing-dir options (max %d)",
                        DD_BACKING_DIRS_MAX);
    dirs[(*n)++] = dir;
    return 0;
}


static int parse_size_operand(const struct size_operand *op,
                              const char *value, uint64_t *dst,
                              char *err, size_t errlen, FILE *warn)
{
    uint64_t v = 0;
    bool hex_suffix;
    int r = size_parse(value, &v, &hex_suffix);

    if (hex_suffix && warn)
        fprintf(warn, "instar: warning: Using a multiplier suffix on hex "
                "numbers is deprecated: %s\n", value);
    /* qemu prints these as two separately prefixed lines. */
    if (r == SIZE_ESYNTAX)
        return cli_fail(err, errlen, "Invalid %s specified. You may use k, M, "
                        "G, T, P or E suffixes for\ninstar: kilobytes, "
                        "megabytes, gigabytes, terabytes, petabytes and "
                        "exabytes.", op->name);
    if (r == SIZE_ERANGE || v < op->min || v > op->max)
        return cli_fail(err, errlen, "Invalid %s specified. Must be between "
                        "%llu and %llu.", op->name,
                        (unsigned long long)op->min,
                        (unsigned long long)op->max);
    *dst = v;
    return 0;
}

static bool key_is(const char *word, size_t keylen, const char *key)
{
    return strlen(key) == keylen && memcmp(word, key, keylen) == 0;
}

/* One KEY=VALUE word; the key ends at the first '='. */
static int parse_operand(const char *word, struct dd_opts *o,
                         char *err, size_t errlen, FILE *warn)
{
    const char *eq = strchr(word, '=');
    const char *value;
    size_t keylen;

    if (!eq)
        return cli_fail(err, errlen, "unrecognized operand %s", word);
    keylen = (size_t)(eq - word);
    value = eq + 1;
    if (key_is(word, keylen, "if")) {
        o->in_path = value;
    } else if (key_is(word, keylen, "of")) {
        o->out_path = value;
    } else if (key_is(word, keylen, "bs")) {
        return parse_size_operand(&bs_operand, value, &o->bs, err, errlen,
                                  warn);
    } else if (key_is(word, keylen, "count")) {
        o->has_count = true;
        return parse_size_operand(&count_operand, value, &o->count, err,
                                  errlen, warn);
    } else if (key_is(word, keylen, "skip")) {
        o->has_skip = true;
        return parse_size_operand(&skip_operand, value, &o->skip, err,
                                  errlen, warn);
    } else {
        return cli_fail(err, errlen, "unrecognized operand %.*s",
                        (int)(keylen > 4096 ? 4096 : keylen), word);
    }
    return 0;
}

/*
 * Like qemu, names the failing option by argv[optind - 1]: the whole word
 * ("-Ux"), which for an unknown option in the middle of a cluster ("-xU")
 * is the word before it.
 */
int cli_option_error(int c, char **argv, char *err, size_t errlen)
{
    const char *word = argv[optind - 1];

    if (c == ':')
        return cli_fail(err, errlen, "missing argument for option '%s'\n"
                        TRY_HELP, word);
    return cli_fail(err, errlen, "unrecognized option '%s'\n" TRY_HELP, word);
}

/* Returns 1 when -h stops the parse, 0 to go on, -1 on error. */
static int parse_options(int argc, char **argv, struct dd_opts *o,
                         char *err, size_t errlen)
{
    int c;

    opterr = 0;
    optind = 0; /* glibc: full reinitialisation, so repeated calls work */
    while ((c = getopt_long(argc, argv, ":hf:O:Up", long_opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            o->help = true;
            return 1;
        case 'f':
            o->in_fmt = optarg;
            break;
        case 'O':
            o->out_fmt = optarg;
            break;
        case 'U':
            break; /* sharing locks mean nothing to a read-only sandbox */
        case 'p': /* instar's own; qemu-img dd has no -p */
            o->progress = true;
            break;
        case OPT_BACKING_DIR:
            if (cli_backing_dir(o->backing_dirs, &o->n_backing_dirs, optarg,
                                err, errlen) < 0)
                return -1;
            break;
        case OPT_OBJECT:
            return cli_fail(err, errlen, "option '--object' is not supported");
        case OPT_IMAGE_OPTS:
            return cli_fail(err, errlen,
                            "option '--image-opts' is not supported");
        default:
            return cli_option_error(c, argv, err, errlen);
        }
    }
    return 0;
}

int dd_parse_args(int argc, char **argv, struct dd_opts *o,
                  char *err, size_t errlen, FILE *warn)
{
    int r;

    memset(o, 0, sizeof *o);
    o->bs = 512;
    if (err && errlen)
        err[0] = '\0';
    r = parse_options(argc, argv, o, err, errlen);
    if (r != 0)
        return r < 0 ? -1 : 0;
    for (int i = optind; i < argc; i++)
        if (parse_operand(argv[i], o, err, errlen, warn) < 0)
            return -1;
    if (!o->in_path || !o->out_path)
        return cli_fail(err, errlen,
                        "Must specify both input and output files");
    return 0;
}

int dd_format_lookup(const char *name)
{
    static const struct {
        const char *name;
        int fmt;
    } formats[] = {
        {"raw", CT_FMT_RAW},   {"qcow2", CT_FMT_QCOW2}, {"vmdk", CT_FMT_VMDK},
        {"vpc", CT_FMT_VPC},   {"vhdx", CT_FMT_VHDX},
    };

    if (!name)
        return -1;
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (strcmp(name, formats[i].name) == 0)
            return formats[i].fmt;
    return -1;
}
