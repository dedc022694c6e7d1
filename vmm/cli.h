/* The `instar dd` command line, parsed as `qemu-img dd` parses it. */
#ifndef INSTAR_CLI_H
#define INSTAR_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DD_BACKING_DIRS_MAX 15

struct dd_opts {
    const char *in_path;  /* if=, points into argv; NULL if absent */
    const char *out_path; /* of= */
    const char *in_fmt;   /* -f NAME, NULL if not given (probe) */
    const char *out_fmt;  /* -O NAME, NULL if not given (raw) */
    uint64_t bs;          /* default 512 */
    uint64_t count, skip;
    bool has_count, has_skip;
    bool help;            /* -h / --help given: caller prints help, exit 0 */
    bool progress;        /* -p (instar's own): progress on stderr */
    /* --backing-dir DIR (repeatable): where files an image refers to may
     * also come from, besides the input's own directory */
    const char *backing_dirs[DD_BACKING_DIRS_MAX];
    unsigned n_backing_dirs;
};

/*
 * Parses `instar dd` arguments. argv[0] is "dd" (the subcommand name),
 * argv[argc] == NULL; argv is permuted (GNU getopt). Returns 0 on success,
 * including when -h/--help stopped the parse (o->help set, other fields
 * unspecified). On error returns -1 and writes one message into err, meant
 * to be printed as "instar: %s\n": no leading prefix and no trailing
 * newline, but it may hold several lines, and a continuation line that
 * qemu-img prefixes with its name already starts with "instar: ".
 * Warnings (hex with a suffix) go to `warn` (may be NULL), one line each,
 * prefixed "instar: warning: ", as they occur, even if the same operand then
 * fails. Not reentrant: it uses getopt's globals.
 */
int dd_parse_args(int argc, char **argv, struct dd_opts *o,
                  char *err, size_t errlen, FILE *warn);

/* Writes one message into err (if any); returns -1. For every
 * subcommand's parser. */
int cli_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds one --backing-dir to dirs (at most DD_BACKING_DIRS_MAX); -1 with a
 * message past that. */
int cli_backing_dir(const char **dirs, unsigned *n, const char *dir,
                    char *err, size_t errlen);

/*
 * getopt's ':' (missing argument) or '?' (unknown option) as qemu-img says
 * it, naming argv[optind - 1]; returns -1. For every subcommand's parser.
 */
int cli_option_error(int c, char **argv, char *err, size_t errlen);

/*
 * The CT_FMT_* value (calltable/instar_ct.h) for "raw", "qcow2", "vmdk",
 * "vpc" or "vhdx", matched case sensitively as qemu does; -1 otherwise.
 */
int dd_format_lookup(const char *name);

#endif
