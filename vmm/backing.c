#define _GNU_SOURCE
#include "backing.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

bool backing_normalize(const char *in, char *out, size_t outlen)
{
    size_t len = 0;

    if (in[0] != '/' || outlen < 2)
        return false;
    out[0] = '/';
    len = 1;
    for (const char *p = in; *p;) {
        while (*p == '/')
            p++;
        const char *e = p;
        while (*e && *e != '/')
            e++;
        size_t n = (size_t)(e - p);
        if (n == 0 || (n == 1 && p[0] == '.')) {
            /* nothing */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            while (len > 1 && out[len - 1] != '/')
                len--;
            if (len > 1)
                len--; /* drop the '/' too */
        } else {
            if (len > 1) {
                if (len + 1 >= outlen)
                    return false;
                out[len++] = '/';
            }
            if (len + n >= outlen)
                return false;
            memcpy(out + len, p, n);
            len += n;
        }
        p = e;
    }
    out[len] = '\0';
    return true;
}

bool backing_find_root(const struct vmm_files *f, const char *p,
                       unsigned *root, const char **rel)
{
    for (unsigned i = 0; i < f->nroots; i++) {
        const char *r = f->roots[i].path;
        size_t n = strlen(r);
        if (n == 1) { /* the root "/" itself was allowed */
            *root = i;
            *rel = p + 1;
            return true;
        }
        if (strncmp(p, r, n) == 0 && (p[n] == '/' || p[n] == '\0')) {
            *root = i;
            *rel = p[n] == '/' ? p + n + 1 : p + n;
            return true;
        }
    }
    return false;
}

static uint32_t pool_add(struct vmm_files *f, const char *s, size_t n)
{
    if (f->pool_used + n + 1 > sizeof f->pool)
        return UINT32_MAX;
    uint32_t off = (uint32_t)f->pool_used;
    memcpy(f->pool + off, s, n);
    f->pool[off + n] = '\0';
    f->pool_used += n + 1;
    return off;
}

static int add_root(struct vmm_files *f, const char *dir, char *err,
                    size_t errlen)
{
    char real[PATH_MAX];
    if (f->nroots >= VMM_ROOTS_MAX) {
        snprintf(err, errlen, "too many backing directories (max %d)",
                 VMM_ROOTS_MAX);
        return -E2BIG;
    }
    if (!realpath(dir, real)) {
        snprintf(err, errlen, "backing directory '%s': %s", dir,
                 strerror(errno));
        return -errno;
    }
    int fd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC);
    uint32_t off = pool_add(f, real, strlen(real));
    if (fd < 0 || off == UINT32_MAX) {
        snprintf(err, errlen, "backing directory '%s': %s", dir,
                 fd < 0 ? strerror(errno) : "path too long");
        if (fd >= 0)
            close(fd);
        return -EINVAL;
    }
    f->roots[f->nroots].fd = fd;
    f->roots[f->nroots].path = f->pool + off;
    f->nroots++;
    return 0;
}

/* Trees a default root may never be: the whole file system, and the
 * kernel's and the runtime's own (devices, /dev/shm, process memory,
 * sockets). Only an explicit --backing-dir can name them. */
static bool default_root_forbidden(const char *dir)
{
    static const char *const trees[] = {"/dev", "/proc", "/sys", "/run"};
    if (!strcmp(dir, "/"))
        return true;
    for (size_t i = 0; i < sizeof trees / sizeof trees[0]; i++) {
        size_t n = strlen(trees[i]);
        if (!strncmp(dir, trees[i], n) && (dir[n] == '\0' || dir[n] == '/'))
            return true;
    }
    return false;
}

int backing_init(struct vmm_files *f, const char *in_path, int in_fd,
                 uint64_t in_size, const char *const *extra_dirs,
                 unsigned nextra, char *err, size_t errlen)
{
    char dir[PATH_MAX], real[PATH_MAX];
    const char *slash = strrchr(in_path, '/');
    struct stat st;
    int ret;

    if (fstat(in_fd, &st) < 0) {
        snprintf(err, errlen, "fstat: %s", strerror(errno));
        return -errno;
    }
    if (slash == in_path)
        snprintf(dir, sizeof dir, "/");
    else if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - in_path), in_path);
    else
        snprintf(dir, sizeof dir, ".");
    if (!realpath(dir, real)) {
        snprintf(err, errlen, "input directory '%s': %s", dir,
                 strerror(errno));
        return -errno;
    }
    /* The input's directory is a root by default only for a regular file
     * outside the forbidden trees: for a block device or /dev/stdin it
     * would be /dev (a backing name "shm/x" would read /dev/shm/x), for
     * an input in / the whole file system. */
    if (S_ISREG(st.st_mode) && !default_root_forbidden(real) &&
        (ret = add_root(f, real, err, errlen)) < 0)
        return ret;
    for (unsigned i = 0; i < nextra; i++)
        if ((ret = add_root(f, extra_dirs[i], err, errlen)) < 0)
            return ret;
    /* Relative names are still resolved against the input's directory:
     * they must then fall inside a --backing-dir. */
    f->files[0] = (struct vmm_file){.fd = in_fd, .size = in_size,
                                    .dev = st.st_dev, .ino = st.st_ino,
                                    .parent = 0, .depth = 0,
                                    .dir = pool_add(f, real, strlen(real)),
                                    .name = UINT32_MAX};
    if (f->files[0].dir == UINT32_MAX) {
        snprintf(err, errlen, "input directory '%s': path too long", real);
        return -ENAMETOOLONG;
    }
    f->nfiles = 1;
    f->files_max = CT_HANDLES_MAX; /* until the sandbox says otherwise */
    return 0;
}

/* The pool offset of the absolute directory `dir` (n bytes). Extents and
 * chains mostly live beside the image naming them: reuse its entry, or the
 * last one added, rather than storing the same directory again. */
static uint32_t pool_dir(struct vmm_files *f, const struct vmm_file *p,
                         const char *dir, size_t n)
{
    const struct vmm_file *last = &f->files[f->nfiles - 1];
    const struct vmm_file *cand[2] = {p, last};
    for (unsigned i = 0; i < 2; i++) {
        const char *s = f->pool + cand[i]->dir;
        if (strlen(s) == n && !memcmp(s, dir, n))
            return cand[i]->dir;
    }
    return pool_add(f, dir, n);
}

/* Absolute lexical path of `name` as seen from the image `p`. */
static bool lexical_path(struct vmm_files *f, const struct vmm_file *p,
                         const char *name, char *out, size_t outlen)
{
    char joined[2 * PATH_MAX + 8];
    int n;
    if (name[0] == '/')
        n = snprintf(joined, sizeof joined, "%s", name);
    else
        n = snprintf(joined, sizeof joined, "%s/%s", f->pool + p->dir,
                     name);
    if (n < 0 || (size_t)n >= sizeof joined)
        return false;
    return backing_normalize(joined, out, outlen);
}

static bool is_ancestor(const struct vmm_files *f, uint32_t h,
                        const struct stat *st)
{
    for (unsigned guard = 0; guard <= CT_CHAIN_DEPTH_MAX + 1; guard++) {
        const struct vmm_file *x = &f->files[h];
        if (x->dev == st->st_dev && x->ino == st->st_ino)
            return true;
        if (h == 0)
            break;
        h = x->parent;
    }
    return false;
}

int backing_open(struct vmm_files *f, uint32_t parent, const char *name,
                 size_t name_len, uint32_t *handle)
{
    char cname[CT_NAME_MAX + 1], path[PATH_MAX];
    const struct vmm_file *p;
    const char *rel, *slash;
    unsigned root;
    struct stat st;
    int fd;

    if (parent >= f->nfiles || name_len == 0 || name_len > CT_NAME_MAX ||
        memchr(name, '\0', name_len))
        return CT_EPERM;
    /* A limit is said to be one, and before anything is looked up, so the
     * answer tells nothing about the path. */
    if (f->nfiles >= CT_HANDLES_MAX ||
        f->nfiles >= (f->files_max ? f->files_max : CT_HANDLES_MAX) ||
        (f->keep_names && f->names_used + name_len + 1 > sizeof f->names))
        return CT_ELIMIT;
    p = &f->files[parent];
    if (p->depth + 1 > CT_CHAIN_DEPTH_MAX)
        return CT_EPERM;
    memcpy(cname, name, name_len);
    cname[name_len] = '\0';
    /* Lexical check first: nothing outside the roots is ever touched. */
    if (!lexical_path(f, p, cname, path, sizeof path) ||
        !backing_find_root(f, path, &root, &rel) || rel[0] == '\0')
        return CT_EPERM;
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    fd = (int)syscall(SYS_openat2, f->roots[root].fd, rel, &how, sizeof how);
    if (fd < 0)
        return errno == EMFILE || errno == ENFILE ? CT_ELIMIT : CT_EPERM;
    if (syscall(SYS_fstat, fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        is_ancestor(f, parent, &st)) {
        close(fd);
        return CT_EPERM;
    }
    /* path is absolute and normalized, its last component the file. */
    slash = strrchr(path, '/');
    uint32_t dir = pool_dir(f, p, path,
                            slash == path ? 1 : (size_t)(slash - path));
    if (dir == UINT32_MAX) {
        close(fd);
        return CT_ELIMIT;
    }
    uint32_t kept = UINT32_MAX;
    if (f->keep_names) { /* room was checked first */
        kept = (uint32_t)f->names_used;
        memcpy(f->names + kept, cname, name_len + 1);
        f->names_used += name_len + 1;
    }
    *handle = f->nfiles;
    f->files[f->nfiles++] = (struct vmm_file){
        .fd = fd, .size = (uint64_t)st.st_size, .dev = st.st_dev,
        .ino = st.st_ino, .parent = parent, .depth = p->depth + 1,
        .dir = dir, .name = kept};
    return CT_OK;
}
