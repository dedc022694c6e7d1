#define _GNU_SOURCE
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINKS 40 /* as the kernel's own symlink limit */

static char *join_dir(const char *link, const char *target)
{
    const char *slash = strrchr(link, '/');
    char *out;
    if (target[0] == '/' || !slash)
        return strdup(target);
    if (asprintf(&out, "%.*s/%s", (int)(slash - link), link, target) < 0)
        return NULL;
    return out;
}

/* Follows of= through symlinks (even dangling ones, as qemu does) so the
 * link stays a link and its target receives the data. */
static int resolve_target(const char *of, char **out)
{
    char *path = strdup(of);
    struct stat st;
    int links = 0;

    if (!path)
        return -ENOMEM;
    while (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        char buf[PATH_MAX];
        ssize_t n = readlink(path, buf, sizeof buf - 1);
        if (n < 0 || ++links > MAX_LINKS) {
            free(path);
            return n < 0 ? -errno : -ELOOP;
        }
        buf[n] = '\0';
        char *next = join_dir(path, buf);
        free(path);
        if (!(path = next))
            return -ENOMEM;
    }
    *out = path;
    return 0;
}

static mode_t default_mode(void)
{
    mode_t mask = umask(0);
    umask(mask);
    return 0666 & ~mask;
}

int output_prepare(struct output *o, const char *of, char *err, size_t errlen)
{
    struct stat st;
    const char *slash, *base;
    int ret;

    memset(o, 0, sizeof *o);
    o->fd = -1;
    if ((ret = resolve_target(of, &o->target)) < 0)
        goto fail;
    if (stat(o->target, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            ret = -EISDIR;
            goto fail;
        }
        if (!S_ISREG(st.st_mode)) {
            snprintf(err, errlen,
                     "%s: error while creating output image: not a regular "
                     "file (instar writes images atomically, not to devices)",
                     of);
            ret = -EINVAL;
            goto out;
        }
        o->mode = st.st_mode & 07777;
    } else {
        o->mode = default_mode();
    }
    slash = strrchr(o->target, '/');
    base = slash ? slash + 1 : o->target;
    if (!*base) {
        ret = -EISDIR;
        goto fail;
    }
    if (asprintf(&o->tmp_path, "%.*s.%s.instar-XXXXXX",
                 slash ? (int)(slash - o->target + 1) : 0, o->target,
                 base) < 0) {
        o->tmp_path = NULL;
        ret = -ENOMEM;
        goto fail;
    }
    o->fd = mkostemp(o->tmp_path, O_CLOEXEC);
    if (o->fd < 0) {
        ret = -errno;
        free(o->tmp_path);
        o->tmp_path = NULL;
        goto fail;
    }
    return 0;
fail:
    snprintf(err, errlen,
             "%s: error while creating output image: Could not create '%s': "
             "%s",
             of, of, strerror(-ret));
out:
    free(o->target);
    o->target = NULL;
    return ret;
}

int output_commit(struct output *o, char *err, size_t errlen)
{
    if (fchmod(o->fd, o->mode) < 0 || fsync(o->fd) < 0 ||
        rename(o->tmp_path, o->target) < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot finish the output: %s", o->target,
                 strerror(e));
        output_abort(o);
        return -e;
    }
    close(o->fd);
    o->fd = -1;
    free(o->tmp_path);
    o->tmp_path = NULL;
    free(o->target);
    o->target = NULL;
    return 0;
}

void output_abort(struct output *o)
{
    if (o->tmp_path) {
        unlink(o->tmp_path);
        free(o->tmp_path);
        o->tmp_path = NULL;
    }
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    free(o->target);
    o->target = NULL;
}

const char *output_tmp_path(const struct output *o) { return o->tmp_path; }
