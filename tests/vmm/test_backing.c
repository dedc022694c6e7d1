/*
 * The backing-file policy (vmm/backing.c): lexical resolution, and a
 * hostile guest following chains of names read from the files themselves
 * (escapes, symlinks, absolute paths, cycles, depth, non-regular files).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
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

TestSuite(backing, .init = setup_dir);

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
