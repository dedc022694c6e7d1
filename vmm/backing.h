/*
 * The host's policy for files an image refers to (backing files, extents,
 * parents, data files). A name is resolved lexically relative to the image
 * that names it and must fall inside an allowed directory ("root") before
 * the filesystem is touched; then it is opened with openat2 from that
 * root's fd with RESOLVE_BENEATH, so symlinks cannot leave it either.
 * Every refusal looks the same to the guest (CT_EPERM): the answer never
 * tells whether a path outside the roots exists.
 */
#ifndef INSTAR_VMM_BACKING_H
#define INSTAR_VMM_BACKING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "instar_ct.h"

#define VMM_ROOTS_MAX 16
/* Directory names of granted files; each distinct directory once. */
#define VMM_POOL_BYTES (4u << 20)
/* Info mode: the name each file was asked for by (a vmdk descriptor's
 * names are at most 1 MiB; a chain adds 16 names of up to 4 KiB). */
#define VMM_NAMES_BYTES (4u << 20)

struct vmm_root {
    int fd;           /* O_PATH | O_DIRECTORY */
    const char *path; /* absolute, normalized, no trailing '/' (except "/") */
};

struct vmm_file {
    int fd;
    uint64_t size;
    dev_t dev;
    ino_t ino;
    uint32_t parent; /* handle of the image that named it (self for 0) */
    unsigned depth;  /* 0 for the input */
    uint32_t dir;    /* offset in the pool: its absolute directory, where
                        the names it holds are resolved */
    uint32_t name;   /* keep_names: offset in names of the name it was
                        asked for; else UINT32_MAX */
};

/* Allocated by the parent before the sandbox: nothing here may allocate
 * once seccomp is on. */
struct vmm_files {
    struct vmm_root roots[VMM_ROOTS_MAX];
    unsigned nroots;
    struct vmm_file files[CT_HANDLES_MAX];
    unsigned nfiles;
    unsigned files_max; /* this run's bound on nfiles (the fd limit) */
    char pool[VMM_POOL_BYTES];
    size_t pool_used;
    /* Info mode keeps what each file was asked for by: qemu-img info shows
     * an extent or a backing file by that name. */
    bool keep_names;
    char names[VMM_NAMES_BYTES];
    size_t names_used;
};

/*
 * Sets up roots (the input's directory, then each extra directory) and
 * file 0 (the input, already open as in_fd). The input's directory is a
 * root only for a regular file, and never when it is /, or in /dev,
 * /proc, /sys or /run. Returns 0 or -errno with a message in err.
 */
int backing_init(struct vmm_files *f, const char *in_path, int in_fd,
                 uint64_t in_size, const char *const *extra_dirs,
                 unsigned nextra, char *err, size_t errlen);

/*
 * Normalizes an absolute path lexically ("." and ".." and repeated '/'
 * collapse; ".." at "/" stays at "/"). Returns false if it does not fit.
 */
bool backing_normalize(const char *in, char *out, size_t outlen);

/* The root that contains normalized path p, and p relative to it; false if
 * none does. */
bool backing_find_root(const struct vmm_files *f, const char *p,
                       unsigned *root, const char **rel);

/* Opens `name` for `parent` under the policy; returns CT_OK with *handle,
 * CT_ELIMIT when the run cannot hold another file (files_max, the fd limit,
 * the name pools), or CT_EPERM for any refusal. */
int backing_open(struct vmm_files *f, uint32_t parent, const char *name,
                 size_t name_len, uint32_t *handle);

#endif
