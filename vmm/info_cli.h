/* The `instar info` command line, parsed as `qemu-img info` parses it. */
#ifndef INSTAR_VMM_INFO_CLI_H
#define INSTAR_VMM_INFO_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "cli.h"

struct info_opts {
    const char *path;   /* the image, points into argv */
    const char *fmt;    /* -f NAME, NULL: probe */
    bool json;          /* --output=json */
    bool chain;         /* --backing-chain */
    bool check_safe;    /* --check-safe (instar's own) */
    bool help;
    const char *backing_dirs[DD_BACKING_DIRS_MAX];
    unsigned n_backing_dirs;
};

/*
 * Parses `instar info` arguments (argv[0] is "info"). Returns 0, also when
 * -h stopped the parse (o->help); -1 with one message in err, meant to be
 * printed as "instar: %s\n" (qemu-img's wording). Not reentrant (getopt).
 */
int info_parse_args(int argc, char **argv, struct info_opts *o, char *err,
                    size_t errlen);

#endif
