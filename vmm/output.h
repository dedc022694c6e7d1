/*
 * Atomic output: the guest writes into a temporary file beside the final
 * target; only a successful run renames it into place. A failure never
 * leaves a partial file and never touches an existing of=.
 */
#ifndef INSTAR_VMM_OUTPUT_H
#define INSTAR_VMM_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct output {
    char *target;   /* of= with symlinks resolved: what gets replaced */
    char *tmp_path; /* NULL once committed or removed */
    int fd;
    mode_t mode;    /* existing file's permission bits, or 0666 & ~umask */
};

/* Resolves of= and creates the temporary file. On error writes a message
 * (qemu's wording) into err and returns -errno. */
int output_prepare(struct output *o, const char *of, char *err, size_t errlen);
/* fsync, set the mode, rename over the target. */
int output_commit(struct output *o, char *err, size_t errlen);
/* Removes the temporary file (safe to call more than once). */
void output_abort(struct output *o);
/* For a signal handler: the temporary path to unlink, or NULL. */
const char *output_tmp_path(const struct output *o);

#endif
