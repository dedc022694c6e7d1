/*
 * `instar info` arguments. qemu-img info 7.2's options and messages
 * (measured): -f, --output=human|json, --backing-chain, -U, --object and
 * --image-opts (refused here), exactly one file name; plus instar's
 * --check-safe and --backing-dir.
 */
#define _GNU_SOURCE /* getopt_long */
#include "info_cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TRY_HELP "Try 'instar --help' for more information"

enum {
    OPT_OBJECT = 256,
    OPT_IMAGE_OPTS,
    OPT_OUTPUT,
    OPT_BACKING_CHAIN,
    OPT_CHECK_SAFE,
    OPT_BACKING_DIR
};

static const struct option long_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"format", required_argument, NULL, 'f'},
    {"object", required_argument, NULL, OPT_OBJECT},
    {"image-opts", no_argument, NULL, OPT_IMAGE_OPTS},
    {"force-share", no_argument, NULL, 'U'},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"backing-chain", no_argument, NULL, OPT_BACKING_CHAIN},
    /* instar's own */
    {"check-safe", no_argument, NULL, OPT_CHECK_SAFE},
    {"backing-dir", required_argument, NULL, OPT_BACKING_DIR},
    {NULL, 0, NULL, 0},
};

static int option(int c, char **argv, struct info_opts *o, char *err,
                  size_t errlen)
{
    switch (c) {
    case 'h':
        o->help = true;
        return 1;
    case 'f':
        o->fmt = optarg;
        return 0;
    case 'U':
        return 0; /* instar never locks images */
    case OPT_OUTPUT:
        if (strcmp(optarg, "json") && strcmp(optarg, "human"))
            return cli_fail(err, errlen, "--output must be used with human "
                                         "or json as argument.");
        o->json = !strcmp(optarg, "json");
        return 0;
    case OPT_BACKING_CHAIN:
        o->chain = true;
        return 0;
    case OPT_CHECK_SAFE:
        o->check_safe = true;
        return 0;
    case OPT_BACKING_DIR:
        return cli_backing_dir(o->backing_dirs, &o->n_backing_dirs, optarg,
                               err, errlen);
    case OPT_OBJECT:
        return cli_fail(err, errlen, "option '--object' is not supported");
    case OPT_IMAGE_OPTS:
        return cli_fail(err, errlen, "option '--image-opts' is not supported");
    default:
        return cli_option_error(c, argv, err, errlen);
    }
}

int info_parse_args(int argc, char **argv, struct info_opts *o, char *err,
                    size_t errlen)
{
    int c, r;

    memset(o, 0, sizeof *o);
    if (errlen)
        err[0] = '\0';
    opterr = 0;
    optind = 0; /* glibc: full reinitialisation, so repeated calls work */
    while ((c = getopt_long(argc, argv, ":hf:U", long_opts, NULL)) != -1)
        if ((r = option(c, argv, o, err, errlen)) != 0)
            return r < 0 ? -1 : 0;
    if (optind != argc - 1)
        return cli_fail(err, errlen,
                        "Expecting one image file name\n" TRY_HELP);
    o->path = argv[optind];
    return 0;
}
