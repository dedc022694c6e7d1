/*
 * The backing-file policy (vmm/backing.c): lexical resolution, and a
 * hostile guest following chains of names read from the files themselves
 * (escapes, symlinks, absolute paths, cycles, depth, non-regular files).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backing.h"
#include "test_vmm.h"

/* ---- lexical resolution, no KVM ----------------------------------------- */

static void norm(const char *in, const char *want)
{
    char out[PATH_MAX];
    cr_assert(backing_normalize(in, out, sizeof out), "%s", in);
    cr_expect_str_eq(out, want, "normalize(%s)", in);
}

Test(backing_lexical, normalize)
{
    norm("/", "/");
    norm("/a/b/../c", "/a/c");
    norm("/a/./b//c/", "/a/b/c");
    norm("/../../etc/passwd", "/etc/passwd");
    norm("/a/b/../../..", "/");
    norm("/a/..b/c", "/a/..b/c");
    char out[8];
    cr_expect_not(backing_normalize("relative", out, sizeof out));
    cr_expect_not(backing_normalize("/much/too/long/for/eight", out,
                                    sizeof out));
}

Test(backing_lexical, find_root_is_by_component)
{
    static struct vmm_files f;
    unsigned root;
    const char *rel;
    f.nroots = 2;
    f.roots[0].path = "/img/dir";
    f.roots[1].path = "/extra";
    cr_assert(backing_find_root(&f, "/img/dir/a/b", &root, &rel));
    cr_expect_eq(root, 0);
    cr_expect_str_eq(rel, "a/b");
    cr_assert(backing_find_root(&f, "/extra/x", &root, &rel));
    cr_expect_eq(root, 1);
    cr_expect_str_eq(rel, "x");
    /* a sibling sharing a prefix is not inside */
    cr_expect_not(backing_find_root(&f, "/img/dir2/a", &root, &rel));
    cr_expect_not(backing_find_root(&f, "/img", &root, &rel));
    cr_expect_not(backing_find_root(&f, "/etc/passwd", &root, &rel));
}

/* ---- the default root ---------------------------------------------------- */

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Tests remove what they create. */
static void remove_tree(const char *d)
{
    if (d[0])
        nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static struct vmm_files *files_for(const char *in_path, int in_fd,
                                   const char *const *extra, unsigned n)
{
    static struct vmm_files f;
    char err[256];
    memset(&f, 0, sizeof f);
    cr_assert_eq(backing_init(&f, in_path, in_fd, 0, extra, n, err,
                              sizeof err), 0, "%s", err);
    return &f;
}

Test(backing_policy, regular_input_gets_its_directory)
{
    char d[] = "/tmp/instar-policy-XXXXXX", p[PATH_MAX];
    cr_assert(mkdtemp(d));
    snprintf(p, sizeof p, "%s/in", d);
    int fd = open(p, O_RDWR | O_CREAT, 0600);
    struct vmm_files *f = files_for(p, fd, NULL, 0);
    cr_expect_eq(f->nroots, 1);
    cr_expect_str_eq(f->roots[0].path, d);
    close(fd);
    close(f->roots[0].fd);
    remove_tree(d);
}

Test(backing_policy, non_regular_input_gets_no_default_root)
{
    /* A pipe stands for /dev/stdin or a device: its "directory" is no
     * place to look for backing files. */
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    struct vmm_files *f = files_for("/tmp/in", pfd[0], NULL, 0);
    cr_expect_eq(f->nroots, 0);
    close(pfd[0]);
    close(pfd[1]);
}

Test(backing_policy, forbidden_trees_are_never_a_default_root)
{
    char p[64];
    int fd = open("/proc/self/exe", O_RDONLY);
    cr_assert(fd >= 0);
    /* / itself, and a regular file seen through /proc. */
    cr_expect_eq(files_for("/disk.qcow2", fd, NULL, 0)->nroots, 0);
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    cr_expect_eq(files_for(p, fd, NULL, 0)->nroots, 0);
    cr_expect_eq(files_for("/dev/stdin", fd, NULL, 0)->nroots, 0);
    cr_expect_eq(files_for("/sys/x", fd, NULL, 0)->nroots, 0);
    /* An explicit --backing-dir may name them (the docs warn). */
    const char *root[] = {"/"};
    struct vmm_files *f = files_for("/disk.qcow2", fd, root, 1);
    cr_expect_eq(f->nroots, 1);
    cr_expect_str_eq(f->roots[0].path, "/");
    close(f->roots[0].fd);
    close(fd);
}

Test(backing_policy, limit_is_reported_as_a_limit)
{
    char d[] = "/tmp/instar-policy-XXXXXX", p[PATH_MAX];
    uint32_t h;
    cr_assert(mkdtemp(d));
    snprintf(p, sizeof p, "%s/in", d);
    int fd = open(p, O_RDWR | O_CREAT, 0600);
    snprintf(p, sizeof p, "%s/a", d);
    close(open(p, O_RDWR | O_CREAT, 0600));
    snprintf(p, sizeof p, "%s/in", d);
    struct vmm_files *f = files_for(p, fd, NULL, 0);
    f->files_max = 2; /* the input and one more */
    cr_expect_eq(backing_open(f, 0, "a", 1, &h), CT_OK);
    cr_expect_eq(backing_open(f, 1, "a", 1, &h), CT_ELIMIT);
    /* Decided before the name is looked at: a missing file says the
     * same, so the answer tells nothing about paths. */
    cr_expect_eq(backing_open(f, 1, "missing", 7, &h), CT_ELIMIT);
    close(f->files[1].fd);
    close(f->roots[0].fd);
    close(fd);
    remove_tree(d);
}

Test(backing_policy, one_directory_is_stored_once)
{
    char d[] = "/tmp/instar-policy-XXXXXX", p[PATH_MAX], name[8];
    uint32_t h;
    cr_assert(mkdtemp(d));
    snprintf(p, sizeof p, "%s/in", d);
    int fd = open(p, O_RDWR | O_CREAT, 0600);
    struct vmm_files *f = files_for(p, fd, NULL, 0);
    size_t before = f->pool_used;
    for (int i = 0; i < 50; i++) {
        snprintf(p, sizeof p, "%s/e%d", d, i);
        close(open(p, O_RDWR | O_CREAT, 0600));
        snprintf(name, sizeof name, "e%d", i);
        cr_assert_eq(backing_open(f, 0, name, (uint32_t)strlen(name), &h),
                     CT_OK);
    }
    cr_expect_eq(f->pool_used, before, "the extents' directory was stored "
                                       "again");
    for (unsigned i = 1; i < f->nfiles; i++)
        close(f->files[i].fd);
    close(f->roots[0].fd);
    close(fd);
    remove_tree(d);
}

/* ---- through a sandboxed guest ------------------------------------------ */

static char dir[PATH_MAX];

static void put(const char *name, const char *content)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert(f, "%s", p);
    fputs(content, f);
    fclose(f);
}

static void setup_dir(void)
{
    char tmpl[] = "/tmp/instar-backing-XXXXXX";
    cr_assert(mkdtemp(tmpl));
    snprintf(dir, sizeof dir, "%s", tmpl);
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/sub", dir);
    mkdir(p, 0755);
}

static void chain(const char *top, const char *const *extra, unsigned n,
                  const char *want)
{
    struct result r;
    char p[PATH_MAX * 2];
    need_kvm();
    put("top", top);
    snprintf(p, sizeof p, "%s/top", dir);
    run_guest_ex(hostile_image, hostile_image_len, H_BACKING_CHAIN,
                 CT_FMT_RAW, NULL, 0, p, extra, n, NULL, &r);
    cr_expect_eq(r.exit_code, 1);
    cr_expect(strstr(r.msg, want) != NULL, "'%s' lacks '%s'", r.msg, want);
    close(r.out_fd);
}

static void remove_dir(void)
{
    remove_tree(dir);
}

TestSuite(backing, .init = setup_dir, .fini = remove_dir);

Test(backing, relative_chain_inside_the_directory)
{
    put("a", "sub/b");
    put("sub/b", "c"); /* relative to sub/, as qemu resolves it */
    put("sub/c", "");
    chain("a", NULL, 0, "chain: 3 granted, end");
}

Test(backing, parent_escape_is_refused)
{
    chain("../../../../etc/passwd", NULL, 0, "chain: 0 granted, then refused");
}

Test(backing, absolute_outside_is_refused)
{
    chain("/etc/passwd", NULL, 0, "chain: 0 granted, then refused");
}

Test(backing, absolute_inside_is_allowed)
{
    char name[PATH_MAX * 2];
    put("a", "");
    snprintf(name, sizeof name, "%s/sub/../a", dir);
    chain(name, NULL, 0, "chain: 1 granted, end");
}

Test(backing, symlink_out_of_the_directory_is_refused)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/link", dir);
    cr_assert_eq(symlink("/etc/passwd", p), 0);
    chain("link", NULL, 0, "chain: 0 granted, then refused");
}

Test(backing, symlink_inside_is_allowed)
{
    char p[PATH_MAX * 2];
    put("a", "");
    snprintf(p, sizeof p, "%s/inlink", dir);
    cr_assert_eq(symlink("a", p), 0);
    chain("inlink", NULL, 0, "chain: 1 granted, end");
}

Test(backing, missing_file_looks_like_any_refusal)
{
    chain("nonexistent", NULL, 0, "chain: 0 granted, then refused (-6)");
}

Test(backing, self_reference_and_cycles_are_refused)
{
    chain("top", NULL, 0, "chain: 0 granted, then refused");
}

Test(backing, two_file_cycle)
{
    put("a", "top");
    chain("a", NULL, 0, "chain: 1 granted, then refused");
}

Test(backing, depth_is_bounded)
{
    char name[32], next[32];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "f%d", i);
        snprintf(next, sizeof next, "f%d", i + 1);
        put(name, next);
    }
    chain("f0", NULL, 0, "chain: 16 granted, then refused");
}

Test(backing, directory_and_fifo_are_refused)
{
    char p[PATH_MAX * 2];
    chain("sub", NULL, 0, "chain: 0 granted, then refused");
    snprintf(p, sizeof p, "%s/fifo", dir);
    cr_assert_eq(mkfifo(p, 0600), 0);
    chain("fifo", NULL, 0, "chain: 0 granted, then refused");
}

Test(backing, extra_directory_only_when_given)
{
    char extra[] = "/tmp/instar-extra-XXXXXX", name[PATH_MAX], p[PATH_MAX];
    const char *dirs[] = {extra};
    cr_assert(mkdtemp(extra));
    snprintf(p, sizeof p, "%s/x", extra);
    FILE *f = fopen(p, "w");
    fclose(f);
    snprintf(name, sizeof name, "%s/x", extra);
    chain(name, NULL, 0, "chain: 0 granted, then refused");
    chain(name, dirs, 1, "chain: 1 granted, end");
    remove_tree(extra);
}

Test(backing, bad_name_address_stops_the_vm)
{
    struct result r;
    need_kvm();
    run_guest(hostile_image, hostile_image_len, H_BACKING_BAD_NAME_GPA,
              CT_FMT_RAW, "x", 1, NULL, &r);
    cr_expect_eq(r.exit_code, 1);
    cr_expect(strstr(r.msg, "open_backing name at"), "%s", r.msg);
    close(r.out_fd);
}
