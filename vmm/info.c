/*
 * `instar info`: qemu-img info, answered by the guest's readers inside the
 * sandbox, plus a safety verdict. The parent opens the input and forks the
 * sandboxed child; the child runs the guest, checks its records as they
 * come (info_rec.c) and, once the guest has finished, renders them to
 * stdout (info_out.c). Nothing is written anywhere else.
 */
#define _GNU_SOURCE /* strerrordesc_np */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "info_cli.h"
#include "info_cmd.h"
#include "job.h"
#include "session.h"

/* Messages carry a path and a reason. */
#define INFO_MSG_MAX 8192

static struct info_render render;

void info_usage(FILE *f)
{
    fputs("usage: instar info [-f FMT] [--output=human|json] "
          "[--backing-chain] [-U]\n"
          "                   [--check-safe] [--backing-dir DIR] IMAGE\n"
          "\n"
          "Describes a disk image as qemu-img info does, with every byte of "
          "the\nimage parsed inside a KVM sandbox, and says whether the "
          "image is safe\nto hand to a hypervisor or to qemu-img "
          "unconfined.\n"
          "\n"
          "  -f FMT           image format (default: probe the content)\n"
          "  --output=FMT     human (default) or json\n"
          "  --backing-chain  describe the backing files and parents too "
          "(opened\n"
          "                   only in allowed directories; a refused one is "
          "reported)\n"
          "  --check-safe     print nothing; exit 0 only for a safe image, "
          "else 1\n"
          "                   with the reasons on stderr\n"
          "  --backing-dir DIR\n"
          "                   also allow backing files, extents and parents "
          "from DIR\n"
          "  -U               accepted for compatibility\n"
          "  -h, --help       show this help\n"
          "\n"
          "Formats: raw, qcow2, vmdk, vpc, vhdx. Without --backing-chain no "
          "file the\nimage refers to is opened (vmdk extents are part of "
          "the image).\n",
          f);
}

/* In the sandboxed child, after the guest finished: the output. */
static int render_after(struct vmm_session *s)
{
    render.files = s->files;
    int r = info_render(s->info, &render);
    /* the errno text untranslated: no locale files are opened here */
    if (r < 0)
        fprintf(stderr, "instar: error writing the output: %s\n",
                strerrordesc_np(errno));
    return r == 0 ? 0 : 1;
}

int info_main(int argc, char **argv)
{
    struct info_opts o;
    struct vmm_session s;
    char err[INFO_MSG_MAX];
    int ret;

    if (info_parse_args(argc, argv, &o, err, sizeof err) < 0) {
        fprintf(stderr, "instar: %s\n", err);
        return 1;
    }
    if (o.help) {
        info_usage(stdout);
        return 0;
    }
    memset(&s, 0, sizeof s);
    s.in_fd = -1;
    s.notice = stderr;
    s.out_fd = -1;
    s.args.bs = 512; /* unused: no window */
    s.out_format = CT_FMT_RAW;
    if (job_input(&s, o.path, o.fmt, o.backing_dirs, o.n_backing_dirs) < 0)
        return 1;
    s.info = calloc(1, sizeof *s.info);
    uint8_t *buf = calloc(1, CT_INFO_TOTAL_MAX);
    if (!s.info || !buf) {
        fprintf(stderr, "instar: out of memory\n");
        ret = 1;
        goto out;
    }
    s.files->keep_names = true;
    s.info->buf = buf;
    s.info->chain = o.chain;
    render = (struct info_render){.json = o.json,
                                  .check_safe = o.check_safe,
                                  .in_name = o.path,
                                  .out_fd = STDOUT_FILENO,
                                  .msg = stderr};
    /* Snapshot dates are local time: the zone is read now, the sandbox
     * could not open it. */
    tzset();
    /* a reader that stops reading (| head) gets a message, not a
     * sandbox killed by SIGPIPE */
    signal(SIGPIPE, SIG_IGN);
    job_catch_signals(NULL);
    ret = job_run(&s, render_after);
out:
    job_close_input(&s);
    free(s.info);
    free(buf);
    return ret;
}
