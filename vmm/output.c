#define _GNU_SOURCE
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINKS 40    /* as the kernel's own symlink limit */
#define NAME_TRIES 100  /* random temporary names tried before giving up */

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

int output_tmp_name(const char *base, const char *suffix, char *out,
                    size_t outlen)
{
    static const char mid[] = ".instar-";
    size_t fixed = 1 + strlen(mid) + strlen(suffix);
    size_t keep = strlen(base);
    size_t room = outlen - 1 < NAME_MAX ? outlen - 1 : NAME_MAX;

    if (fixed >= room)
        return -ENAMETOOLONG;
    if (keep > room - fixed)
        keep = room - fixed; /* a 255-byte of= still gets a temporary */
    snprintf(out, outlen, ".%.*s%s%s", (int)keep, base, mid, suffix);
    return 0;
}

static void random_suffix(char s[OUTPUT_TMP_SUFFIX_LEN + 1])
{
    static const char set[] = "abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char r[OUTPUT_TMP_SUFFIX_LEN];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        for (unsigned i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)(rand() ^ getpid() ^ i);
    for (unsigned i = 0; i < OUTPUT_TMP_SUFFIX_LEN; i++)
        s[i] = set[r[i] % (sizeof set - 1)];
    s[OUTPUT_TMP_SUFFIX_LEN] = '\0';
}

/* Signals that could end this process are held while a temporary name
 * appears and is recorded (or renamed away), so a handler never misses
 * one. Only SIGKILL can still strike in that window. */
static void hold_signals(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, old);
}

static void release_signals(const sigset_t *old)
{
    sigprocmask(SIG_SETMASK, old, NULL);
}

/* Calls make(o, name) with fresh temporary names until one is free;
 * records it. make returns 0 or -errno. */
static int with_tmp_name(struct output *o,
                         int (*make)(struct output *, const char *))
{
    char suffix[OUTPUT_TMP_SUFFIX_LEN + 1], name[sizeof o->tmp_name];
    int ret = -EEXIST;

    for (int i = 0; i < NAME_TRIES && ret == -EEXIST; i++) {
        sigset_t old;
        random_suffix(suffix);
        if ((ret = output_tmp_name(o->base, suffix, name, sizeof name)) < 0)
            return ret;
        hold_signals(&old);
        ret = make(o, name);
        if (ret == 0)
            memcpy(o->tmp_name, name, sizeof name);
        release_signals(&old);
    }
    return ret;
}

static int create_named(struct output *o, const char *name)
{
    int fd = openat(o->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
                    0600);
    if (fd < 0)
        return -errno;
    o->fd = fd;
    return 0;
}

static int create_file(struct output *o, enum output_kind kind)
{
    if (kind == OUTPUT_UNNAMED) {
        o->fd = openat(o->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (o->fd >= 0) {
            o->unnamed = true;
            return 0;
        }
        /* Only a file system without O_TMPFILE falls back; EACCES, ENOSPC
         * and the like are the real answer. */
        if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
            return -errno;
    }
    return with_tmp_name(o, create_named);
}

int output_prepare(struct output *o, const char *of, enum output_kind kind,
                   char *err, size_t errlen)
{
    struct stat st;
    char *slash;
    int ret;

    memset(o, 0, sizeof *o);
    o->fd = o->dirfd = -1;
    if ((ret = resolve_target(of, &o->target)) < 0)
        goto fail;
    slash = strrchr(o->target, '/');
    o->base = slash ? slash + 1 : o->target;
    if (!*o->base) {
        ret = -EISDIR;
        goto fail;
    }
    if (slash == o->target)
        o->dirfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    else if (slash) {
        *slash = '\0';
        o->dirfd = open(o->target, O_PATH | O_DIRECTORY | O_CLOEXEC);
        *slash = '/';
    } else
        o->dirfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (o->dirfd < 0) {
        ret = -errno;
        goto fail;
    }
    if (strlen(o->base) > NAME_MAX) {
        ret = -ENAMETOOLONG; /* before any work, not at the commit */
        goto fail;
    }
    if (fstatat(o->dirfd, o->base, &st, 0) < 0) {
        if (errno != ENOENT) {
            ret = -errno;
            goto fail;
        }
        o->mode = default_mode();
    } else {
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
        /* New content never inherits set-id bits. */
        o->exists = true;
        o->mode = st.st_mode & 07777 & ~(mode_t)(S_ISUID | S_ISGID);
        o->uid = st.st_uid;
        o->gid = st.st_gid;
    }
    if ((ret = create_file(o, kind)) < 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen,
             "%s: error while creating output image: Could not create '%s': "
             "%s",
             of, of, strerror(-ret));
out:
    output_abort(o);
    return ret;
}

/* Gives the unnamed file the name `name` in the target's directory. */
static int link_unnamed(struct output *o, const char *name)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", o->fd);
    if (linkat(AT_FDCWD, proc, o->dirfd, name, AT_SYMLINK_FOLLOW) == 0)
        return 0;
    /* Without /proc, AT_EMPTY_PATH does the same for a privileged
     * process. */
    if (errno == ENOENT &&
        linkat(o->fd, "", o->dirfd, name, AT_EMPTY_PATH) == 0)
        return 0;
    return -errno;
}

/* Keeps the replaced file's owner and group where this process may (as
 * qemu, which rewrites of= in place). */
static void keep_owner(const struct output *o)
{
    struct stat st;
    if (!o->exists || fstat(o->fd, &st) < 0 ||
        (st.st_uid == o->uid && st.st_gid == o->gid))
        return;
    /* Not permitted (not root): at least the group, where this process
     * is a member of it; else the file stays this process's. */
    if (fchown(o->fd, o->uid, o->gid) < 0 && st.st_gid != o->gid)
        (void)!fchown(o->fd, (uid_t)-1, o->gid);
}

static int name_file(struct output *o)
{
    sigset_t old;
    int ret;

    if (o->unnamed && !o->exists) {
        /* Nothing to replace: the link is the commit, and atomic. */
        if ((ret = link_unnamed(o, o->base)) != -EEXIST)
            return ret;
    }
    if (o->unnamed && (ret = with_tmp_name(o, link_unnamed)) < 0)
        return ret;
    hold_signals(&old);
    ret = renameat(o->dirfd, o->tmp_name, o->dirfd, o->base) < 0 ? -errno
                                                                  : 0;
    if (ret == 0)
        o->tmp_name[0] = '\0';
    release_signals(&old);
    return ret;
}

int output_commit(struct output *o, char *err, size_t errlen)
{
    int ret = 0;
    keep_owner(o);
    if (fchmod(o->fd, o->mode) < 0 || fsync(o->fd) < 0)
        ret = -errno;
    if (ret == 0)
        ret = name_file(o);
    if (ret < 0) {
        snprintf(err, errlen, "%s: cannot finish the output: %s", o->target,
                 strerror(-ret));
        output_abort(o);
        return ret;
    }
    output_abort(o); /* nothing left to remove: just closes and frees */
    return 0;
}

void output_abort(struct output *o)
{
    if (o->tmp_name[0] && o->dirfd >= 0)
        unlinkat(o->dirfd, o->tmp_name, 0);
    o->tmp_name[0] = '\0';
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    if (o->dirfd >= 0)
        close(o->dirfd);
    o->dirfd = -1;
    free(o->target);
    o->target = NULL;
    o->base = NULL;
}

void output_signal_cleanup(const struct output *o)
{
    if (o->tmp_name[0] && o->dirfd >= 0)
        unlinkat(o->dirfd, o->tmp_name, 0);
}
