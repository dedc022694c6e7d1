/*
 * `instar convert`: qemu-img convert of one image, on the same engine as
 * dd with the whole image as the window. The parent parses the command
 * line and -o, opens the input, prepares the atomic output and runs the
 * sandboxed child (job.c); the guest writes the output sparse (-S) and in
 * the shape -o and -c ask for, and the host bounds it by that shape.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert_cli.h"
#include "convert_cmd.h"
#include "job.h"
#include "output.h"
#include "session.h"

/* Messages carry up to two paths and a reason; the reason must fit. */
#define CONVERT_MSG_MAX (3 * PATH_MAX)

static struct output out;

void convert_usage(FILE *f)
{
    fputs("usage: instar convert [-f FMT] [-O OUTPUT_FMT] [-c] [-o OPTIONS] "
          "[-S SIZE]\n"
          "                      [-p] [-q] [-U] [--backing-dir DIR] INPUT "
          "OUTPUT\n"
          "\n"
          "Converts a disk image, like qemu-img convert, with every byte of "
          "the\nimage handled inside a KVM sandbox.\n"
          "\n"
          "  -f FMT       input format (default: probe the content)\n"
          "  -O FMT       output format: raw (default), qcow2, vmdk, vpc, "
          "vhdx\n"
          "  -c           compress (qcow2 clusters, vmdk streamOptimized "
          "grains)\n"
          "  -o OPTIONS   output options, key=value,...; -o help lists them "
          "for -O\n"
          "  -S SIZE      runs of at least SIZE zero bytes stay unallocated "
          "(default\n"
          "               4k; a multiple of 512 up to 16M; 0 writes "
          "everything)\n"
          "  -p           show progress\n"
          "  -q           quiet (no progress)\n"
          "  -U           accepted for compatibility (instar never locks "
          "images)\n"
          "  --backing-dir DIR\n"
          "               also allow backing files, extents and parents "
          "from DIR\n"
          "  -h, --help   show this help\n"
          "\n"
          "The output is written to an unnamed file and named only on "
          "success.\nNot supported: several inputs, -B, -n, -m, -W, "
          "--image-opts,\n--target-image-opts, --object, snapshots (see "
          "docs/convert.md).\n",
          f);
}

int convert_main(int argc, char **argv)
{
    struct convert_opts o;
    struct vmm_session s;
    char err[CONVERT_MSG_MAX];
    int out_fmt, ret;

    if (convert_parse_args(argc, argv, &o, err, sizeof err) < 0) {
        fprintf(stderr, "instar: %s\n", err);
        return 1;
    }
    if (o.help) {
        convert_usage(stdout);
        return 0;
    }
    memset(&s, 0, sizeof s);
    if ((out_fmt = job_pick_format(o.out_fmt, o.in_path, false)) < 0)
        return 1;
    ret = convert_output_params(&o, (uint32_t)out_fmt, &s.out_params, err,
                                sizeof err);
    if (ret < 0) {
        fprintf(stderr, "instar: %s\n", err);
        return 1;
    }
    if (ret > 0) {
        convert_option_help((uint32_t)out_fmt, stdout);
        return 0;
    }
    s.in_fd = -1;
    s.out_name = o.out_path;
    s.notice = stderr;
    s.convert = true;
    s.sparse_min = o.sparse_min;
    s.progress = o.progress ? stdout : NULL;
    /* The whole image: the window math with no count or skip. */
    s.args = (struct window_args){512, 0, 0, false, false};
    s.out_format = (uint32_t)out_fmt;
    if (job_input(&s, o.in_path, o.in_fmt, o.backing_dirs,
                  o.n_backing_dirs) < 0)
        return 1;
    ret = job_run_output(&s, &out);
    job_close_input(&s);
    if (ret == 0 && o.progress) /* the child printed 100%; end the line */
        fputs("\n", stdout);
    return ret;
}
