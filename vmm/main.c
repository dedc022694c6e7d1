/* instar: subcommand dispatch. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "convert_cmd.h"
#include "dd.h"
#include "info_cmd.h"
#include "instar_ct.h"

#ifndef INSTAR_VERSION
#define INSTAR_VERSION "unknown"
#endif

static void usage(FILE *f)
{
    fputs("usage: instar COMMAND [ARGS]\n"
          "\n"
          "A sandboxed disk-image tool: untrusted image bytes are only ever "
          "parsed\ninside a KVM guest.\n"
          "\n"
          "Commands:\n"
          "  dd        copy a window of an image, like qemu-img dd "
          "(instar dd --help)\n"
          "  info      describe an image, like qemu-img info, and say "
          "whether it is\n"
          "            safe to use (instar info --help)\n"
          "  convert   convert an image, like qemu-img convert (instar "
          "convert --help)\n"
          "\n"
          "Options:\n"
          "  -h, --help     show this help\n"
          "  -V, --version  show the version\n",
          f);
}

/* A process started with stdin, stdout or stderr closed would get its
 * input or output file on fd 0-2, and messages written to stderr would
 * land in the output. /dev/null takes each closed one, first of all. */
static int guard_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int n = open("/dev/null", O_RDWR);
        if (n != fd) {
            if (n >= 0)
                close(n);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (guard_std_fds() < 0)
        return 1; /* nowhere safe to even say so */
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
        printf("instar %s (call-table ABI %u)\n", INSTAR_VERSION,
               CT_ABI_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "dd"))
        return dd_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info"))
        return info_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "convert"))
        return convert_main(argc - 1, argv + 1);
    fprintf(stderr, "instar: unknown command '%s'\nTry 'instar --help' for "
                    "more information\n",
            argv[1]);
    return 1;
}
