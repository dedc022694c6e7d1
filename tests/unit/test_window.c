/* Window math: the parity.md rows as numbers, plus the overflow edges. */
#include <criterion/criterion.h>
#include <limits.h>

#include "window.h"

#define I64MAX 9223372036854775807ull

struct wcase {
    uint64_t vsize, bs, count, skip;
    bool has_count, has_skip;
    uint64_t start, end, out_size;
    bool notice;
};

static void check(const struct wcase *c)
{
    struct window_args a = {c->bs, c->count, c->skip, c->has_count,
                            c->has_skip};
    struct window w = {0};
    cr_assert(window_compute(c->vsize, &a, &w),
              "vsize %llu bs %llu count %llu skip %llu rejected",
              (unsigned long long)c->vsize, (unsigned long long)c->bs,
              (unsigned long long)c->count, (unsigned long long)c->skip);
    cr_expect_eq(w.start, c->start, "start %llu != %llu",
                 (unsigned long long)w.start, (unsigned long long)c->start);
    cr_expect_eq(w.end, c->end, "end %llu != %llu", (unsigned long long)w.end,
                 (unsigned long long)c->end);
    cr_expect_eq(w.out_size, c->out_size, "out_size %llu != %llu",
                 (unsigned long long)w.out_size,
                 (unsigned long long)c->out_size);
    cr_expect_eq(w.skip_past_end, c->notice);
}

#define C(v, b, cnt, hc, sk, hs, s, e, o, n)                                   \
    {v, b, cnt, sk, hc, hs, s, e, o, n}

/* Inputs as in parity.md: small.raw 3000, mid.raw 1050112. */
static const struct wcase parity_rows[] = {
    /* whole file, any bs */
    C(3000, 512, 0, 0, 0, 0, 0, 3072, 3072, 0),
    C(3000, 1, 0, 0, 0, 0, 0, 3072, 3072, 0),
    C(3000, 3, 0, 0, 0, 0, 0, 3072, 3072, 0),
    C(3000, 2147483647, 0, 0, 0, 0, 0, 3072, 3072, 0),
    /* bs=1b count=600: 600 bytes, output rounded to 1024 */
    C(3000, 1, 600, 1, 0, 0, 0, 600, 1024, 0),
    /* count */
    C(1050112, 512, 0, 1, 0, 0, 0, 0, 0, 0),
    C(1050112, 512, 1, 1, 0, 0, 0, 512, 512, 0),
    C(1050112, 1, 1024, 1, 0, 0, 0, 1024, 1024, 0),
    C(1050112, 1, 512, 1, 0, 0, 0, 512, 512, 0),
    C(1050112, 512, 100000, 1, 0, 0, 0, 1050112, 1050112, 0),
    C(1050112, 512, I64MAX, 1, 0, 0, 0, 1050112, 1050112, 0),
    C(1050112, 512, 7ull << 60, 1, 0, 0, 0, 1050112, 1050112, 0),
    C(1050112, 1024, 36028797018963968ull, 1, 0, 0, 0, 1050112, 1050112, 0),
    /* skip */
    C(3000, 512, 0, 0, 1, 1, 512, 3072, 2560, 0),
    C(3000, 512, 0, 0, 6, 1, 3072, 3072, 0, 0),
    C(3000, 1000, 0, 0, 3, 1, 3000, 3072, 512, 0),
    C(3000, 512, 0, 0, 7, 1, 0, 0, 0, 1),
    C(3000, 512, 0, 0, I64MAX, 1, 0, 0, 0, 1),
    C(3000, 512, 0, 0, 1ull << 60, 1, 0, 0, 0, 1),
    C(3000, 1024, 0, 0, 36028797018963968ull, 1, 0, 0, 0, 1),
    /* count is the absolute end block, not a length after skip */
    C(3000, 512, 5, 1, 2, 1, 1024, 2560, 1536, 0),
    C(3000, 512, 5, 1, 5, 1, 2560, 2560, 0, 0),
    C(3000, 512, 2, 1, 5, 1, 0, 0, 0, 1),
    C(3000, 1000, 1, 1, 2, 1, 0, 0, 0, 1),
    C(3000, 700, 9, 1, 3, 1, 2100, 3072, 1024, 0),
    /* output formats table */
    C(3000, 3, 100, 1, 0, 0, 0, 300, 512, 0),
    C(3000, 1000, 3, 1, 1, 1, 1000, 3000, 2048, 0),
    C(3000, 1000, 0, 0, 4, 1, 0, 0, 0, 1),
    /* sizes: tiny and empty */
    C(1000, 512, 0, 0, 0, 0, 0, 1024, 1024, 0),
    C(0, 512, 0, 0, 0, 0, 0, 0, 0, 0),
    C(0, 512, 0, 0, 0, 1, 0, 0, 0, 0),
    C(0, 512, 0, 0, 1, 1, 0, 0, 0, 1),
    C(1, 1, 0, 0, 0, 0, 0, 512, 512, 0),
    /* across 4 GiB on a 5 GiB input */
    C(5ull << 30, 1, 4294967297ull, 1, 4294967295ull, 1, 4294967295ull,
      4294967297ull, 512, 0),
};

Test(window, parity_rows)
{
    for (size_t i = 0; i < sizeof parity_rows / sizeof parity_rows[0]; i++)
        check(&parity_rows[i]);
}

Test(window, max_vsize_accepted_and_beyond_refused)
{
    struct window_args a = {512, 0, 0, false, false};
    struct window w;
    cr_assert(window_compute(WINDOW_MAX_VSIZE, &a, &w));
    cr_expect_eq(w.end, WINDOW_MAX_VSIZE);
    cr_expect_eq(w.out_size, WINDOW_MAX_VSIZE);
    cr_expect_not(window_compute(WINDOW_MAX_VSIZE + 1, &a, &w));
    cr_expect_not(window_compute(UINT64_MAX, &a, &w));
}

Test(window, bs_range)
{
    struct window w;
    struct window_args a = {0, 0, 0, false, false};
    cr_expect_not(window_compute(3000, &a, &w));
    a.bs = (uint64_t)INT_MAX;
    cr_expect(window_compute(3000, &a, &w));
    a.bs = (uint64_t)INT_MAX + 1;
    cr_expect_not(window_compute(3000, &a, &w));
}

Test(window, count_skip_range)
{
    struct window w;
    struct window_args a = {1, I64MAX, I64MAX, true, true};
    cr_expect(window_compute(3000, &a, &w));
    cr_expect(w.skip_past_end);
    a.count = I64MAX + 1;
    cr_expect_not(window_compute(3000, &a, &w));
    a.count = 0;
    a.skip = I64MAX + 1;
    cr_expect_not(window_compute(3000, &a, &w));
}

Test(window, products_never_wrap)
{
    /* 2^34 * (2^31 - 1) wraps in 64 bits; it must mean "past the end". */
    struct window w;
    struct window_args a = {(1ull << 31) - 1, 1ull << 34, 1ull << 34, false,
                            true};
    cr_assert(window_compute(3000, &a, &w));
    cr_expect(w.skip_past_end);
    a.has_skip = false;
    a.has_count = true;
    cr_assert(window_compute(3000, &a, &w));
    cr_expect_eq(w.end, 3072); /* huge count: to the end */
    /* count*bs exactly INT64_MAX+1 must not count as "fits". */
    a.bs = 2;
    a.count = (I64MAX + 1) / 2;
    cr_assert(window_compute(3000, &a, &w));
    cr_expect_eq(w.end, 3072);
}

Test(window, skip_exactly_at_end_is_silent)
{
    struct window w;
    struct window_args a = {1, 0, 3072, false, true};
    cr_assert(window_compute(3000, &a, &w));
    cr_expect_not(w.skip_past_end);
    cr_expect_eq(w.out_size, 0);
    a.skip = 3073;
    cr_assert(window_compute(3000, &a, &w));
    cr_expect(w.skip_past_end);
}

Test(window, round_up_overflow)
{
    uint64_t r;
    cr_expect_not(window_round_up(UINT64_MAX, &r));
    cr_expect(window_round_up(0, &r));
    cr_expect_eq(r, 0);
    cr_expect(window_round_up(513, &r));
    cr_expect_eq(r, 1024);
}
