/*
 * Atomic output: the guest writes into a file with no name in the target's
 * directory (O_TMPFILE); only a successful run gives it a name, replacing
 * the target in one rename. A run that fails, or is killed at any moment,
 * leaves no file behind and never touches an existing of=. Where the file
 * system has no O_TMPFILE, a named temporary file beside the target is the
 * fallback (removed on failure and on signals, but left by SIGKILL).
 */
#ifndef INSTAR_VMM_OUTPUT_H
#define INSTAR_VMM_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The temporary name: "." + base + ".instar-" + 6 random characters. */
#define OUTPUT_TMP_SUFFIX_LEN 6

struct output {
    char *target;     /* of= with symlinks resolved: what gets replaced */
    const char *base; /* the target's last component (inside target) */
    int dirfd;        /* the target's directory */
    int fd;
    /* A name the file has now, relative to dirfd, to unlink on failure;
     * empty while the file has none. Read by signal handlers. */
    char tmp_name[256];
    bool unnamed;     /* created with O_TMPFILE */
    bool exists;      /* of= existed: replace it, keep its owner */
    mode_t mode;      /* the old file's permission bits (no set-id), or
                         0666 & ~umask */
    uid_t uid;        /* the old file's owner and group */
    gid_t gid;
};

enum output_kind {
    OUTPUT_UNNAMED, /* O_TMPFILE where the file system has it, else named */
    OUTPUT_NAMED    /* always a named temporary file (tests) */
};

/* Resolves of= and creates the output file. On error writes a message
 * (qemu's wording) into err and returns -errno. */
int output_prepare(struct output *o, const char *of, enum output_kind kind,
                   char *err, size_t errlen);
/* Owner, mode, fsync, then names the file: of= is replaced atomically. */
int output_commit(struct output *o, char *err, size_t errlen);
/* Drops the output (safe to call more than once). */
void output_abort(struct output *o);
/* Async-signal-safe: removes a temporary name the file has right now. */
void output_signal_cleanup(const struct output *o);

/* The temporary name for `base`: "." BASE ".instar-" SUFFIX, with BASE cut
 * so that the whole fits NAME_MAX. -ENAMETOOLONG if the result would not
 * fit outlen. */
int output_tmp_name(const char *base, const char *suffix, char *out,
                    size_t outlen);

#endif
