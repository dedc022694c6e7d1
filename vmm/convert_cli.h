/* The `instar convert` command line, parsed as `qemu-img convert` parses
 * it, and its -o options turned into the output's shape. */
#ifndef INSTAR_VMM_CONVERT_CLI_H
#define INSTAR_VMM_CONVERT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "instar_ct.h"

#define CONVERT_OPTS_MAX 16 /* -o given this many times at most */

struct convert_opts {
    const char *in_path, *out_path; /* point into argv */
    const char *in_fmt;             /* -f NAME, NULL: probe */
    const char *out_fmt;            /* -O NAME, NULL: raw */
    const char *o[CONVERT_OPTS_MAX]; /* -o strings, in order */
    unsigned no;
    bool compress;                  /* -c */
    uint64_t sparse_min;            /* -S, default 4 KiB; 0: dense */
    bool progress;                  /* -p */
    bool quiet;                     /* -q */
    bool help;
    const char *backing_dirs[DD_BACKING_DIRS_MAX];
    unsigned n_backing_dirs;
};

/*
 * Parses `instar convert` arguments (argv[0] is "convert"). Returns 0, also
 * when -h stopped the parse (o->help); -1 with one message in err, meant to
 * be printed as "instar: %s\n". Not reentrant (getopt).
 */
int convert_parse_args(int argc, char **argv, struct convert_opts *o,
                       char *err, size_t errlen);

/*
 * Turns the -o strings and -c into the output's shape for format (a
 * CT_FMT_*). Returns 1 when an -o asked for help (the caller prints
 * convert_option_help and exits 0), 0 on success, -1 with qemu-img's
 * message (or instar's "not supported") in err. out_path names the output
 * in messages, as qemu-img does.
 */
int convert_output_params(const struct convert_opts *o, uint32_t format,
                          struct ct_output_params *p, char *err,
                          size_t errlen);

/* `-o help` for format: the options instar supports. */
void convert_option_help(uint32_t format, FILE *f);

#endif
