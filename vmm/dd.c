/*
 * `instar dd`: the host flow. The parent process is the jailer: it parses
 * operands, opens the input, prepares the atomic output, then forks a child
 * that builds the VM, locks itself down and runs the guest. The parent
 * never maps guest memory; it only commits or discards the output by the
 * child's exit status. Order of checks follows qemu-img dd (docs/dd.md).
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dd.h"
#include "job.h"
#include "output.h"
#include "session.h"

/* Messages carry up to two paths and a reason; the reason must fit. */
#define DD_MSG_MAX (3 * PATH_MAX)

static struct output out;

void dd_usage(FILE *f)
{
    fputs("usage: instar dd [-f FMT] [-O OUTPUT_FMT] [-p] if=INPUT of=OUTPUT\n"
          "                 [bs=N] [count=N] [skip=N]\n"
          "\n"
          "Copies a window of a disk image, like qemu-img dd, with every byte "
          "of\nthe image handled inside a KVM sandbox.\n"
          "\n"
          "  if=INPUT     input image (regular file or block device)\n"
          "  of=OUTPUT    output image; written to a temporary file and "
          "renamed\n"
          "               into place only on success\n"
          "  bs=N         block size, 1..2147483647 (default 512)\n"
          "  count=N      stop copying at block N of the input\n"
          "  skip=N       start copying at block N of the input\n"
          "  -f FMT       input format (default: probe the content)\n"
          "  -O FMT       output format (default: raw)\n"
          "  -U           accepted for compatibility (instar never locks "
          "images)\n"
          "  -p           show progress on stderr (instar's own; qemu-img dd "
          "has none)\n"
          "  --backing-dir DIR\n"
          "               also allow backing files, extents and parents "
          "from DIR\n"
          "               (default: only the input's own directory and "
          "below)\n"
          "  -h, --help   show this help\n"
          "\n"
          "N takes the suffixes k, M, G, T, P, E (powers of 1024) or b "
          "(bytes).\n"
          "Input formats: raw, qcow2, vmdk, vpc, vhdx. A fixed VHD is read as\n"
          "vpc only with -f vpc, as in qemu-img. Output formats: raw (the\n"
          "default, not the input's format), qcow2, vmdk (monolithicSparse),\n"
          "vpc (dynamic VHD), vhdx (dynamic), as qemu-img dd writes them.\n"
          "\n"
          "Environment: INSTAR_WATCHDOG_TOTAL_MS (default 43200000) and\n"
          "INSTAR_WATCHDOG_IDLE_MS (default 30000) bound the guest's run "
          "time and\nthe time between its calls; 0 disables a limit.\n",
          f);
}

int dd_main(int argc, char **argv)
{
    struct dd_opts o;
    struct vmm_session s;
    char err[DD_MSG_MAX];
    int out_fmt, ret;

    if (dd_parse_args(argc, argv, &o, err, sizeof err, stderr) < 0) {
        fprintf(stderr, "instar: %s\n", err);
        return 1;
    }
    if (o.help) {
        dd_usage(stdout);
        return 0;
    }
    memset(&s, 0, sizeof s);
    s.in_fd = -1;
    s.out_name = o.out_path;
    s.notice = stderr;
    /* stderr, so that stdout stays what qemu-img dd prints (nothing) */
    s.progress = o.progress ? stderr : NULL;
    s.args = (struct window_args){o.bs, o.count, o.skip, o.has_count,
                                  o.has_skip};
    /* qemu-img dd checks -f, opens the input, then checks -O. */
    if (job_input(&s, o.in_path, o.in_fmt, o.backing_dirs,
                  o.n_backing_dirs) < 0)
        return 1;
    if ((out_fmt = job_pick_format(o.out_fmt, o.in_path, false)) < 0) {
        job_close_input(&s);
        return 1;
    }
    s.out_format = (uint32_t)out_fmt;
    ret = job_run_output(&s, &out);
    job_close_input(&s);
    if (ret == 0 && o.progress) /* the child printed 100%; end the line */
        fputs("\n", stderr);
    return ret;
}
