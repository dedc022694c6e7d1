/*
 * dd_parse_args against the parity.md tables ("Block size", "Count",
 * "Skip", "Command line structure") and the order-of-checks rules measured
 * with qemu-img 7.2. Rows that fail later than parsing in qemu (bad -f/-O
 * names, empty if=/of=) must parse here.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "instar_ct.h"

#define I64MAX 9223372036854775807ull
#define SYNTAX(name)                                                        \
    "Invalid " name " specified. You may use k, M, G, T, P or E suffixes " \
    "for\ninstar: kilobytes, megabytes, gigabytes, terabytes, petabytes "  \
    "and exabytes."
#define RANGE_BS "Invalid bs specified. Must be between 1 and 2147483647."
#define RANGE(name)                                                         \
    "Invalid " name " specified. Must be between 0 and 9223372036854775807."
#define MISSING "Must specify both input and output files"
#define TRY "\nTry 'instar --help' for more information"
#define HEX_WARN(v)                                                         \
    "instar: warning: Using a multiplier suffix on hex numbers is "        \
    "deprecated: " v "\n"

#define MAXARGS 16

struct run {
    struct dd_opts o;
    char err[512];
    char warn[512]; /* everything written to the warning stream */
    size_t warnlen;
    int ret;
};

static void run_args(struct run *r, const char *const *args)
{
    char *argv[MAXARGS + 2];
    int argc = 0;
    char *buf = NULL;
    FILE *w;

    argv[argc++] = (char *)"dd";
    for (; *args; args++) {
        cr_assert(argc <= MAXARGS);
        argv[argc++] = (char *)*args;
    }
    argv[argc] = NULL;
    memset(r->err, 'X', sizeof r->err);
    r->err[sizeof r->err - 1] = '\0';
    w = open_memstream(&buf, &r->warnlen);
    cr_assert(w);
    r->ret = dd_parse_args(argc, argv, &r->o, r->err, sizeof r->err, w);
    fclose(w);
    cr_assert_lt(r->warnlen, sizeof r->warn);
    memcpy(r->warn, buf, r->warnlen + 1);
    free(buf);
}

/* RUN(&r, "if=a", "of=b"); RUN(&r, NULL) for no arguments. */
#define RUN(r, ...) run_args((r), (const char *const[]){__VA_ARGS__, NULL})

static void expect_err(const struct run *r, const char *msg)
{
    cr_expect_eq(r->ret, -1, "parse succeeded, wanted \"%s\"", msg);
    cr_expect_str_eq(r->err, msg);
}

static void expect_ok(const struct run *r)
{
    cr_assert_eq(r->ret, 0, "parse failed: %s", r->err);
    cr_expect_not(r->o.help);
}

/* A row of the operand tables; the harness adds if= and of=. */
struct row {
    const char *args[4];
    const char *err; /* NULL: must parse */
    uint64_t bs, count, skip;
    bool has_count, has_skip;
};

static void check_row(const struct row *w)
{
    struct run r;
    const char *const *a = w->args;

    RUN(&r, "if=small.raw", "of=out", a[0], a[1], a[2], a[3]);
    if (w->err) {
        cr_expect_eq(r.ret, -1, "%s %s %s: parsed", a[0], a[1] ? a[1] : "",
                     a[2] ? a[2] : "");
        cr_expect_str_eq(r.err, w->err, "%s %s: \"%s\"", a[0],
                         a[1] ? a[1] : "", r.err);
            return;
    }
    cr_expect_eq(r.ret, 0, "%s %s: %s", a[0], a[1] ? a[1] : "", r.err);
    cr_expect_str_eq(r.o.in_path, "small.raw");
    cr_expect_str_eq(r.o.out_path, "out");
    cr_expect_eq(r.o.bs, w->bs, "%s: bs %llu", a[0],
                 (unsigned long long)r.o.bs);
    cr_expect_eq(r.o.has_count, w->has_count, "%s: has_count", a[0]);
    cr_expect_eq(r.o.has_skip, w->has_skip, "%s: has_skip", a[0]);
    if (w->has_count)
        cr_expect_eq(r.o.count, w->count, "%s: count %llu", a[0],
                     (unsigned long long)r.o.count);
    if (w->has_skip)
        cr_expect_eq(r.o.skip, w->skip, "%s: skip %llu", a[0],
                     (unsigned long long)r.o.skip);
}

static void check_rows(const struct row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_row(&rows[i]);
}

#define BS(v) .bs = (v)
#define COUNT(v) .count = (v), .has_count = true
#define SKIP(v) .skip = (v), .has_skip = true

/* parity.md "Block size (bs=)" */
static const struct row bs_rows[] = {
    {{"bs=0"}, RANGE_BS, 0, 0, 0, false, false},
    {{"bs=1"}, NULL, BS(1)},
    {{"bs=3"}, NULL, BS(3)},
    {{"bs=2147483647"}, NULL, BS(2147483647)},
    {{"bs=2147483648"}, RANGE_BS, 0, 0, 0, false, false},
    {{"bs=2G"}, RANGE_BS, 0, 0, 0, false, false},
    {{"bs=1k"}, NULL, BS(1024)},
    {{"bs=1K"}, NULL, BS(1024)},
    {{"bs=1M"}, NULL, BS(1048576)},
    {{"bs=1G"}, NULL, BS(1073741824)},
    {{"bs=1T"}, RANGE_BS, 0, 0, 0, false, false},
    {{"bs=1b", "count=600"}, NULL, BS(1), COUNT(600)},
    {{"bs=1B", "count=600"}, NULL, BS(1), COUNT(600)},
    {{"bs=1.5k"}, NULL, BS(1536)},
    {{"bs=0.5k"}, NULL, BS(512)},
    {{"bs=1.k"}, NULL, BS(1024)},
    {{"bs=.5k"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=1.5"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=1.0"}, NULL, BS(1)},
    {{"bs=0x200"}, NULL, BS(512)},
    {{"bs=0x1k"}, NULL, BS(1024)},
    {{"bs=+512"}, NULL, BS(512)},
    {{"bs= 512"}, NULL, BS(512)},
    {{"bs=512 "}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=007"}, NULL, BS(7)},
    {{"bs=12x"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs="}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=1kB"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=1KiB"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=1e3"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=-1"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=-0"}, SYNTAX("bs"), 0, 0, 0, false, false},
    /* measured, not in parity.md */
    {{"bs=0.3k"}, NULL, BS(307)},
    {{"bs=1.001k"}, NULL, BS(1025)},
    {{"bs=0.0001k"}, RANGE_BS, 0, 0, 0, false, false},
    {{"bs=1.5b"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=0x1.8k"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=1k5"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=1."}, NULL, BS(1)},
    {{"bs=0x"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=0x1p"}, RANGE_BS, 0, 0, 0, false, false},
    {{"bs= +5"}, NULL, BS(5)},
    {{"bs=+ 5"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=++5"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=1kb"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=1Kb"}, SYNTAX("bs"), 0, 0, 0, false, false},
    {{"bs=2147483647b"}, NULL, BS(2147483647)},
    {{"bs=1.99999999999999999999G"}, NULL, BS(1073741824)},
    {{"bs=-18446744073709551616"}, RANGE_BS, 0, 0, 0, false, false},
    {{"bs=18446744073709551616k"}, SYNTAX("bs"), 0, 0, 0, false, false},
};

/* parity.md "Count (count=)" */
static const struct row count_rows[] = {
    {{"count=0"}, NULL, BS(512), COUNT(0)},
    {{"count=1"}, NULL, BS(512), COUNT(1)},
    {{"bs=1", "count=1k"}, NULL, BS(1), COUNT(1024)},
    {{"count=1.5"}, SYNTAX("count"), 0, 0, 0, false, false},
    {{"bs=1", "count=0.5k"}, NULL, BS(1), COUNT(512)},
    {{"count=100000"}, NULL, BS(512), COUNT(100000)},
    {{"count=9223372036854775807"}, NULL, BS(512), COUNT(I64MAX)},
    {{"count=9223372036854775808"}, RANGE("count"), 0, 0, 0, false, false},
    {{"count=18446744073709551615"}, RANGE("count"), 0, 0, 0, false, false},
    {{"count=18446744073709551616"}, RANGE("count"), 0, 0, 0, false, false},
    {{"count=7E"}, NULL, BS(512), COUNT(7ull << 60)},
    {{"count=8E"}, RANGE("count"), 0, 0, 0, false, false},
    {{"bs=1k", "count=36028797018963968"},
     NULL, BS(1024), COUNT(36028797018963968ull)},
    {{"count=-1"}, SYNTAX("count"), 0, 0, 0, false, false},
    {{"count=-0"}, SYNTAX("count"), 0, 0, 0, false, false},
    {{"count=12x"}, SYNTAX("count"), 0, 0, 0, false, false},
};

/* parity.md "Skip (skip=) and its interaction with count=" */
static const struct row skip_rows[] = {
    {{"skip=1"}, NULL, BS(512), SKIP(1)},
    {{"bs=512", "skip=6"}, NULL, BS(512), SKIP(6)},
    {{"bs=1000", "skip=3"}, NULL, BS(1000), SKIP(3)},
    {{"bs=512", "skip=7"}, NULL, BS(512), SKIP(7)},
    {{"skip=9223372036854775807"}, NULL, BS(512), SKIP(I64MAX)},
    {{"skip=1E"}, NULL, BS(512), SKIP(1ull << 60)},
    {{"bs=1k", "skip=36028797018963968"},
     NULL, BS(1024), SKIP(36028797018963968ull)},
    {{"skip=-1"}, SYNTAX("skip"), 0, 0, 0, false, false},
    {{"bs=512", "skip=2", "count=5"}, NULL, BS(512), COUNT(5), SKIP(2)},
    {{"bs=512", "skip=5", "count=5"}, NULL, BS(512), COUNT(5), SKIP(5)},
    {{"bs=512", "skip=5", "count=2"}, NULL, BS(512), COUNT(2), SKIP(5)},
    {{"bs=1000", "skip=2", "count=1"}, NULL, BS(1000), COUNT(1), SKIP(2)},
    {{"count=9", "skip=3", "bs=700"}, NULL, BS(700), COUNT(9), SKIP(3)},
    /* measured, not in parity.md */
    {{"skip=9223372036854775808"}, RANGE("skip"), 0, 0, 0, false, false},
    {{"skip=8E"}, RANGE("skip"), 0, 0, 0, false, false},
    {{"skip=0x1.8k"}, SYNTAX("skip"), 0, 0, 0, false, false},
    {{"skip=0.3k"}, NULL, BS(512), SKIP(307)},
    {{"skip=0.9999k"}, NULL, BS(512), SKIP(1024)},
};

Test(cli, block_size_table)
{
    check_rows(bs_rows, sizeof bs_rows / sizeof bs_rows[0]);
}

Test(cli, count_table)
{
    check_rows(count_rows, sizeof count_rows / sizeof count_rows[0]);
}

Test(cli, skip_table)
{
    check_rows(skip_rows, sizeof skip_rows / sizeof skip_rows[0]);
}

Test(cli, defaults)
{
    struct run r;

    RUN(&r, "if=in", "of=out");
    expect_ok(&r);
    cr_expect_eq(r.o.bs, 512);
    cr_expect_not(r.o.has_count);
    cr_expect_not(r.o.has_skip);
    cr_expect_null(r.o.in_fmt);
    cr_expect_null(r.o.out_fmt);
    cr_expect_not(r.o.progress);
    cr_expect_eq(r.warnlen, 0);
}

/* -p is instar's own (qemu-img dd has none): it only turns progress on. */
Test(cli, progress_option)
{
    struct run r;

    RUN(&r, "-p", "if=in", "of=out", "bs=1M");
    expect_ok(&r);
    cr_expect(r.o.progress);
    cr_expect_eq(r.o.bs, 1048576);
    cr_expect_str_eq(r.o.in_path, "in");
    cr_expect_str_eq(r.o.out_path, "out");
}

/* parity.md "Command line structure": missing if=/of= */
Test(cli, missing_files)
{
    struct run r;

    RUN(&r, "of=out");
    expect_err(&r, MISSING);
    RUN(&r, "if=small.raw");
    expect_err(&r, MISSING);
    RUN(&r, NULL);
    expect_err(&r, MISSING);
    RUN(&r, "count=1", "-O", "qcow2");
    expect_err(&r, MISSING);
}

/* parity.md "Command line structure": unknown operands print the key only */
Test(cli, unrecognized_operands)
{
    struct run r;

    RUN(&r, "if=small.raw", "of=out", "foo=1");
    expect_err(&r, "unrecognized operand foo");
    RUN(&r, "if=small.raw", "of=out", "seek=1");
    expect_err(&r, "unrecognized operand seek");
    RUN(&r, "if=small.raw", "of=out", "conv=notrunc");
    expect_err(&r, "unrecognized operand conv");
    RUN(&r, "if=small.raw", "of=out", "BS=512");
    expect_err(&r, "unrecognized operand BS");
    RUN(&r, "if=small.raw", "of=out", "bs");
    expect_err(&r, "unrecognized operand bs");
    RUN(&r, "if=small.raw", "of=out", "=5");
    expect_err(&r, "unrecognized operand ");
    RUN(&r, "if=small.raw", "of=out", "bs==5");
    expect_err(&r, SYNTAX("bs"));
    /* measured: */
    RUN(&r, "if=small.raw", "of=out", "=");
    expect_err(&r, "unrecognized operand ");
    RUN(&r, "if=small.raw", "of=out", "");
    expect_err(&r, "unrecognized operand ");
    RUN(&r, "if=small.raw", "of=out", "if");
    expect_err(&r, "unrecognized operand if");
    RUN(&r, "if=small.raw", "of=out", "-");
    expect_err(&r, "unrecognized operand -");
    RUN(&r, "If=small.raw", "of=out");
    expect_err(&r, "unrecognized operand If");
    RUN(&r, "if=small.raw", "of=out", "count =1");
    expect_err(&r, "unrecognized operand count ");
}

/* Empty names parse; opening them is what fails in qemu. */
Test(cli, empty_names)
{
    struct run r;

    RUN(&r, "if=", "of=out");
    expect_ok(&r);
    cr_expect_str_eq(r.o.in_path, "");
    RUN(&r, "if=small.raw", "of=");
    expect_ok(&r);
    cr_expect_str_eq(r.o.out_path, "");
}

Test(cli, value_keeps_later_equals)
{
    struct run r;

    RUN(&r, "if=a=b", "of=c==d");
    expect_ok(&r);
    cr_expect_str_eq(r.o.in_path, "a=b");
    cr_expect_str_eq(r.o.out_path, "c==d");
}

/* A repeated operand silently takes the last value. */
Test(cli, repeats_last_wins)
{
    struct run r;

    RUN(&r, "if=tiny.raw", "if=small.raw", "of=out");
    expect_ok(&r);
    cr_expect_str_eq(r.o.in_path, "small.raw");
    RUN(&r, "if=small.raw", "of=DIR/first.img", "of=out");
    expect_ok(&r);
    cr_expect_str_eq(r.o.out_path, "out");
    RUN(&r, "if=small.raw", "of=out", "bs=1", "bs=1k", "count=1");
    expect_ok(&r);
    cr_expect_eq(r.o.bs, 1024);
    cr_expect_eq(r.o.count, 1);
    RUN(&r, "if=a", "of=b", "skip=3", "skip=0", "count=9", "count=2");
    expect_ok(&r);
    cr_expect_eq(r.o.skip, 0);
    cr_expect_eq(r.o.count, 2);
}

/* Operands left to right, first bad one wins, before the if=/of= check. */
Test(cli, first_bad_operand_wins)
{
    struct run r;

    RUN(&r, "if=in", "of=out", "bs=1", "bs=0", "foo=1");
    expect_err(&r, RANGE_BS);
    RUN(&r, "if=in", "of=out", "foo=1", "bs=0");
    expect_err(&r, "unrecognized operand foo");
    RUN(&r, "count=x", "skip=-1");
    expect_err(&r, SYNTAX("count"));
    RUN(&r, "bs=0");
    expect_err(&r, RANGE_BS);
    RUN(&r, "foo=1");
    expect_err(&r, "unrecognized operand foo");
    RUN(&r, "");
    expect_err(&r, "unrecognized operand ");
    /* a bad value that a later good one would replace still fails */
    RUN(&r, "if=in", "of=out", "bs=0", "bs=1");
    expect_err(&r, RANGE_BS);
}

/* -O/-f are only stored; qemu rejects bad names later, after opening. */
Test(cli, formats)
{
    struct run r;

    RUN(&r, "if=small.raw", "of=out", "-O", "qcow2");
    expect_ok(&r);
    cr_expect_str_eq(r.o.out_fmt, "qcow2");
    RUN(&r, "-O", "bogus", "if=small.raw", "of=out");
    expect_ok(&r);
    cr_expect_str_eq(r.o.out_fmt, "bogus");
    RUN(&r, "-O", "RAW", "if=small.raw", "of=out");
    expect_ok(&r);
    cr_expect_str_eq(r.o.out_fmt, "RAW");
    RUN(&r, "-O", "vpc", "-O", "qcow2", "if=small.raw", "of=out");
    expect_ok(&r);
    cr_expect_str_eq(r.o.out_fmt, "qcow2");
    RUN(&r, "-O", "qed", "if=small.raw", "of=out");
    expect_ok(&r);
    cr_expect_str_eq(r.o.out_fmt, "qed");
    RUN(&r, "-O", "vdi", "if=small.raw", "of=out");
    expect_ok(&r);
    RUN(&r, "-O", "file", "if=small.raw", "of=out");
    expect_ok(&r);
    RUN(&r, "-f", "raw", "if=small.raw", "of=out");
    expect_ok(&r);
    cr_expect_str_eq(r.o.in_fmt, "raw");
    cr_expect_null(r.o.out_fmt);
    RUN(&r, "-f", "bogus", "if=small.raw", "of=out");
    expect_ok(&r);
    cr_expect_str_eq(r.o.in_fmt, "bogus");
    RUN(&r, "-f", "raw", "-f", "qcow2", "if=small.raw", "of=out");
    expect_ok(&r);
    cr_expect_str_eq(r.o.in_fmt, "qcow2");
    RUN(&r, "-fvmdk", "-Ovhdx", "if=a", "of=b");
    expect_ok(&r);
    cr_expect_str_eq(r.o.in_fmt, "vmdk");
    cr_expect_str_eq(r.o.out_fmt, "vhdx");
}

Test(cli, permutation_and_double_dash)
{
    struct run r;

    RUN(&r, "if=a", "-O", "qcow2", "of=b", "-f", "vmdk", "count=3");
    expect_ok(&r);
    cr_expect_str_eq(r.o.in_path, "a");
    cr_expect_str_eq(r.o.out_path, "b");
    cr_expect_str_eq(r.o.out_fmt, "qcow2");
    cr_expect_str_eq(r.o.in_fmt, "vmdk");
    cr_expect_eq(r.o.count, 3);
    RUN(&r, "--", "if=small.raw", "of=out");
    expect_ok(&r);
    cr_expect_str_eq(r.o.in_path, "small.raw");
    /* after --, an option-looking word is an operand */
    RUN(&r, "if=a", "of=b", "--", "-x");
    expect_err(&r, "unrecognized operand -x");
    RUN(&r, "if=a", "--", "of=b", "-O", "qcow2");
    expect_err(&r, "unrecognized operand -O");
    /* all options are read before any operand is judged */
    RUN(&r, "bs=0", "-x");
    expect_err(&r, "unrecognized option '-x'" TRY);
}

Test(cli, force_share_ignored)
{
    struct run r;

    RUN(&r, "-U", "if=a", "of=b");
    expect_ok(&r);
    RUN(&r, "if=a", "of=b", "--force-share");
    expect_ok(&r);
    RUN(&r, "if=a", "of=b", "--force");
    expect_ok(&r);
    RUN(&r, "-UO", "qcow2", "if=a", "of=b");
    expect_ok(&r);
    cr_expect_str_eq(r.o.out_fmt, "qcow2");
    RUN(&r, "--force-share=1", "if=a", "of=b");
    expect_err(&r, "unrecognized option '--force-share=1'" TRY);
}

static void expect_help(const struct run *r)
{
    cr_expect_eq(r->ret, 0, "help: %s", r->err);
    cr_expect(r->o.help);
}

/* -h wins over everything after it and over every operand. */
Test(cli, help)
{
    struct run r;

    RUN(&r, "-h");
    expect_help(&r);
    RUN(&r, "--help");
    expect_help(&r);
    RUN(&r, "--hel");
    expect_help(&r);
    RUN(&r, "bs=0", "-h");
    expect_help(&r);
    RUN(&r, "-h", "-x");
    expect_help(&r);
    RUN(&r, "-h", "-O");
    expect_help(&r);
    RUN(&r, "foo=1", "--help");
    expect_help(&r);
    RUN(&r, "-x", "-h");
    expect_err(&r, "unrecognized option '-x'" TRY);
    RUN(&r, "--help=3");
    expect_err(&r, "unrecognized option '--help=3'" TRY);
    /* -O takes "-h" as its argument */
    RUN(&r, "-O", "-h", "if=a", "of=b");
    expect_ok(&r);
    cr_expect_str_eq(r.o.out_fmt, "-h");
}

/* qemu names argv[optind - 1]: the whole word, or for "-xU" the previous */
Test(cli, unrecognized_options)
{
    struct run r;

    RUN(&r, "-x", "if=small.raw", "of=out");
    expect_err(&r, "unrecognized option '-x'" TRY);
    RUN(&r, "if=small.raw", "of=out", "-x");
    expect_err(&r, "unrecognized option '-x'" TRY);
    RUN(&r, "--foo", "if=small.raw", "of=out");
    expect_err(&r, "unrecognized option '--foo'" TRY);
    RUN(&r, "-Ux", "if=in", "of=out");
    expect_err(&r, "unrecognized option '-Ux'" TRY);
    RUN(&r, "-xU", "if=in", "of=out");
    expect_err(&r, "unrecognized option 'dd'" TRY);
    RUN(&r, "if=in", "of=out", "-xU");
    expect_err(&r, "unrecognized option 'of=out'" TRY);
    RUN(&r, "-", "if=in", "of=out");
    expect_err(&r, "unrecognized operand -");
}

Test(cli, missing_option_argument)
{
    struct run r;

    RUN(&r, "if=small.raw", "of=out", "-O");
    expect_err(&r, "missing argument for option '-O'" TRY);
    RUN(&r, "-f");
    expect_err(&r, "missing argument for option '-f'" TRY);
    RUN(&r, "if=in", "of=out", "-UO");
    expect_err(&r, "missing argument for option '-UO'" TRY);
    RUN(&r, "--object");
    expect_err(&r, "missing argument for option '--object'" TRY);
}

Test(cli, qemu_only_options_refused)
{
    struct run r;

    RUN(&r, "--object", "secret,id=s0,data=x", "if=a", "of=b");
    expect_err(&r, "option '--object' is not supported");
    RUN(&r, "--image-opts", "if=a", "of=b");
    expect_err(&r, "option '--image-opts' is not supported");
}

Test(cli, hex_suffix_warning)
{
    struct run r;

    RUN(&r, "if=a", "of=b", "bs=0x1k");
    expect_ok(&r);
    cr_expect_eq(r.o.bs, 1024);
    cr_expect_str_eq(r.warn, HEX_WARN("0x1k"));
    /* one line per operand, the value printed as given */
    RUN(&r, "if=a", "of=b", "count= 0x2M", "skip=0x1K");
    expect_ok(&r);
    cr_expect_str_eq(r.warn, HEX_WARN(" 0x2M") HEX_WARN("0x1K"));
    /* the warning comes before the error, as in qemu */
    RUN(&r, "if=a", "of=b", "bs=0x1T");
    expect_err(&r, RANGE_BS);
    cr_expect_str_eq(r.warn, HEX_WARN("0x1T"));
    RUN(&r, "if=a", "of=b", "skip=0x1kX");
    expect_err(&r, SYNTAX("skip"));
    cr_expect_str_eq(r.warn, HEX_WARN("0x1kX"));
    /* hex without a suffix, and hex digits b/e, are silent */
    RUN(&r, "if=a", "of=b", "bs=0x200", "count=0x1b", "skip=0x1E");
    expect_ok(&r);
    cr_expect_eq(r.o.count, 27);
    cr_expect_eq(r.o.skip, 30);
    cr_expect_eq(r.warnlen, 0);
}

Test(cli, null_warning_stream)
{
    char *argv[] = {(char *)"dd", (char *)"if=a", (char *)"of=b",
                    (char *)"bs=0x1k", NULL};
    struct dd_opts o;
    char err[128];

    cr_assert_eq(dd_parse_args(4, argv, &o, err, sizeof err, NULL), 0);
    cr_expect_eq(o.bs, 1024);
}

Test(cli, short_error_buffer)
{
    char *argv[] = {(char *)"dd", (char *)"foo=1", NULL};
    struct dd_opts o;
    char err[8];

    cr_assert_eq(dd_parse_args(2, argv, &o, err, sizeof err, NULL), -1);
    cr_expect_str_eq(err, "unrecog");
    cr_assert_eq(dd_parse_args(2, argv, &o, NULL, 0, NULL), -1);
}

/* getopt state is reset on every call. */
Test(cli, repeated_calls)
{
    struct run r;

    for (int i = 0; i < 3; i++) {
        RUN(&r, "-O", "vpc", "if=a", "of=b", "-x");
        expect_err(&r, "unrecognized option '-x'" TRY);
        RUN(&r, "if=a", "-O", "vpc", "of=b", "-f", "raw");
        expect_ok(&r);
        cr_expect_str_eq(r.o.out_fmt, "vpc");
        RUN(&r, "-Ux", "if=a");
        expect_err(&r, "unrecognized option '-Ux'" TRY);
        RUN(&r, "if=a", "of=b");
        expect_ok(&r);
        cr_expect_null(r.o.out_fmt);
        cr_expect_null(r.o.in_fmt);
    }
}

Test(cli, format_lookup)
{
    cr_expect_eq(dd_format_lookup("raw"), CT_FMT_RAW);
    cr_expect_eq(dd_format_lookup("qcow2"), CT_FMT_QCOW2);
    cr_expect_eq(dd_format_lookup("vmdk"), CT_FMT_VMDK);
    cr_expect_eq(dd_format_lookup("vpc"), CT_FMT_VPC);
    cr_expect_eq(dd_format_lookup("vhdx"), CT_FMT_VHDX);
    cr_expect_eq(dd_format_lookup("RAW"), -1);
    cr_expect_eq(dd_format_lookup("Qcow2"), -1);
    cr_expect_eq(dd_format_lookup("qcow"), -1);
    cr_expect_eq(dd_format_lookup("qed"), -1);
    cr_expect_eq(dd_format_lookup("file"), -1);
    cr_expect_eq(dd_format_lookup("vhd"), -1);
    cr_expect_eq(dd_format_lookup(""), -1);
    cr_expect_eq(dd_format_lookup("raw "), -1);
    cr_expect_eq(dd_format_lookup(NULL), -1);
}
