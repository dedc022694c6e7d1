/*
 * The atomic output (vmm/output.c): an unnamed file that gets its name
 * only at commit, the named fallback for file systems without O_TMPFILE,
 * temporary names that fit NAME_MAX, owner and mode of a replaced file.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "output.h"

static char dir[PATH_MAX];

static void make_dir(void)
{
    char t[] = "/tmp/instar-output-XXXXXX";
    cr_assert(mkdtemp(t));
    snprintf(dir, sizeof dir, "%s", t);
}

/* Entries of dir, "." and ".." left out. */
static int entries(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    cr_assert(d);
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_MAX * 2];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

TestSuite(output, .init = make_dir, .fini = remove_dir);

static void path_of(char *p, size_t n, const char *name)
{
    snprintf(p, n, "%s/%s", dir, name);
}

static void put(const char *name, const char *content, mode_t mode)
{
    char p[PATH_MAX * 2];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fputs(content, f);
    fclose(f);
    chmod(p, mode);
}

static void expect_content(const char *name, const char *want)
{
    char p[PATH_MAX * 2], buf[64] = "";
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "r");
    cr_assert(f, "%s missing", p);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    cr_expect_str_eq(buf, want);
}

static void write_all(const struct output *o, const char *s)
{
    cr_assert_eq(pwrite(o->fd, s, strlen(s), 0), (ssize_t)strlen(s));
}

Test(output, unnamed_file_has_no_name_until_commit)
{
    struct output o;
    char p[PATH_MAX * 2], err[PATH_MAX * 3];
    path_of(p, sizeof p, "out.raw");
    cr_assert_eq(output_prepare(&o, p, OUTPUT_UNNAMED, err, sizeof err), 0,
                 "%s", err);
    cr_expect(o.unnamed, "this file system has O_TMPFILE");
    cr_expect_eq(entries(), 0);
    write_all(&o, "new");
    cr_assert_eq(output_commit(&o, err, sizeof err), 0, "%s", err);
    cr_expect_eq(entries(), 1);
    expect_content("out.raw", "new");
}

Test(output, unnamed_file_replaces_an_existing_one)
{
    struct output o;
    char p[PATH_MAX * 2], err[PATH_MAX * 3];
    struct stat st;
    put("out.raw", "old", 0640);
    path_of(p, sizeof p, "out.raw");
    cr_assert_eq(output_prepare(&o, p, OUTPUT_UNNAMED, err, sizeof err), 0);
    write_all(&o, "new");
    cr_expect_eq(entries(), 1);
    cr_assert_eq(output_commit(&o, err, sizeof err), 0, "%s", err);
    cr_expect_eq(entries(), 1);
    expect_content("out.raw", "new");
    cr_assert_eq(stat(p, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0640);
}

Test(output, abort_leaves_nothing)
{
    struct output o;
    char p[PATH_MAX * 2], err[PATH_MAX * 3];
    path_of(p, sizeof p, "out.raw");
    for (int kind = OUTPUT_UNNAMED; kind <= OUTPUT_NAMED; kind++) {
        cr_assert_eq(output_prepare(&o, p, kind, err, sizeof err), 0);
        write_all(&o, "partial");
        cr_expect_eq(entries(), kind == OUTPUT_NAMED);
        output_abort(&o);
        output_abort(&o); /* twice is harmless */
        cr_expect_eq(entries(), 0);
    }
}

/* Where the file system lacks O_TMPFILE: a named temporary beside the
 * target, which only a commit renames and an abort removes. */
Test(output, named_fallback_commits_by_rename)
{
    struct output o;
    char p[PATH_MAX * 2], err[PATH_MAX * 3];
    put("out.raw", "old", 0600);
    path_of(p, sizeof p, "out.raw");
    cr_assert_eq(output_prepare(&o, p, OUTPUT_NAMED, err, sizeof err), 0);
    cr_expect_not(o.unnamed);
    cr_expect_eq(strncmp(o.tmp_name, ".out.raw.instar-", 16), 0, "%s",
                 o.tmp_name);
    cr_expect_eq(entries(), 2);
    write_all(&o, "new");
    cr_assert_eq(output_commit(&o, err, sizeof err), 0, "%s", err);
    cr_expect_eq(entries(), 1);
    expect_content("out.raw", "new");
}

Test(output, named_fallback_fits_a_255_byte_name)
{
    struct output o;
    char name[256], p[PATH_MAX * 2], err[PATH_MAX * 3];
    memset(name, 'n', 255);
    name[255] = '\0';
    put(name, "old", 0600);
    path_of(p, sizeof p, name);
    cr_assert_eq(output_prepare(&o, p, OUTPUT_NAMED, err, sizeof err), 0,
                 "%s", err);
    cr_expect_leq(strlen(o.tmp_name), (size_t)NAME_MAX);
    write_all(&o, "new");
    cr_assert_eq(output_commit(&o, err, sizeof err), 0, "%s", err);
    expect_content(name, "new");
    cr_expect_eq(entries(), 1);
}

Test(output, tmp_name_is_cut_to_name_max)
{
    char base[256], out[512];
    memset(base, 'b', 255);
    base[255] = '\0';
    cr_assert_eq(output_tmp_name(base, "XXXXXX", out, sizeof out), 0);
    cr_expect_eq(strlen(out), (size_t)NAME_MAX);
    cr_expect_eq(out[0], '.');
    cr_expect_str_eq(out + strlen(out) - 14, ".instar-XXXXXX");
    cr_assert_eq(output_tmp_name("short", "XXXXXX", out, sizeof out), 0);
    cr_expect_str_eq(out, ".short.instar-XXXXXX");
    cr_expect_eq(output_tmp_name("a", "XXXXXX", out, 8), -ENAMETOOLONG);
}

Test(output, set_id_bits_are_not_carried_over)
{
    struct output o;
    char p[PATH_MAX * 2], err[PATH_MAX * 3];
    struct stat st;
    put("out.raw", "old", 06755);
    path_of(p, sizeof p, "out.raw");
    cr_assert_eq(output_prepare(&o, p, OUTPUT_UNNAMED, err, sizeof err), 0);
    cr_expect_eq(o.mode, 0755);
    write_all(&o, "new");
    cr_assert_eq(output_commit(&o, err, sizeof err), 0, "%s", err);
    cr_assert_eq(stat(p, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0755);
}

Test(output, too_long_name_fails_at_prepare)
{
    struct output o;
    char name[257], p[PATH_MAX * 2], err[PATH_MAX * 3];
    memset(name, 'n', 256);
    name[256] = '\0';
    path_of(p, sizeof p, name);
    cr_expect_eq(output_prepare(&o, p, OUTPUT_UNNAMED, err, sizeof err),
                 -ENAMETOOLONG);
    cr_expect(strstr(err, "File name too long"), "%s", err);
    cr_expect_eq(entries(), 0);
}
