/*
 * The dd window: which bytes of the input `qemu-img dd` copies, and how
 * large the output is. Header-only and pure so the guest (to copy) and the
 * host (to bound the guest's writes) compute exactly the same numbers.
 *
 * The model, as measured against qemu-img 7.2 (docs/dd.md):
 *   size  = input virtual size rounded up to 512
 *   count is the block at which copying stops, counted from the start of the
 *   input (not after skip): if count*bs fits int64 and is < size, size =
 *   count*bs. skip*bs past size (or overflowing int64) is not an error: the
 *   output is empty and a notice is printed. The copied range is
 *   [skip*bs, size); the output's virtual size is its length rounded up to
 *   512, the padding reading as zeros.
 */
#ifndef INSTAR_WINDOW_H
#define INSTAR_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#define WINDOW_SECTOR 512u
#define WINDOW_INT64_MAX 0x7fffffffffffffffull
/* Largest virtual size whose round-up to 512 still fits int64. */
#define WINDOW_MAX_VSIZE (WINDOW_INT64_MAX & ~(uint64_t)(WINDOW_SECTOR - 1))
#define WINDOW_MAX_BS 0x7fffffffull

struct window_args {
    uint64_t bs; /* 1 .. WINDOW_MAX_BS */
    uint64_t count;
    uint64_t skip;
    bool has_count;
    bool has_skip;
};

struct window {
    uint64_t start;    /* first input byte copied */
    uint64_t end;      /* one past the last input byte copied */
    uint64_t out_size; /* output virtual size: (end - start) rounded to 512 */
    bool skip_past_end; /* qemu prints "cannot skip to specified offset" */
};

/* Rounds up to a multiple of 512; false if the result would not fit. */
static inline bool window_round_up(uint64_t v, uint64_t *out)
{
    uint64_t r;
    if (__builtin_add_overflow(v, (uint64_t)(WINDOW_SECTOR - 1), &r))
        return false;
    *out = r & ~(uint64_t)(WINDOW_SECTOR - 1);
    return true;
}

/* a * b if it fits int64 (qemu's operands are int64), else false. */
static inline bool window_mul_i64(uint64_t a, uint64_t b, uint64_t *out)
{
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r) || r > WINDOW_INT64_MAX)
        return false;
    *out = r;
    return true;
}

static inline bool window_args_valid(const struct window_args *a)
{
    return a->bs >= 1 && a->bs <= WINDOW_MAX_BS &&
           (!a->has_count || a->count <= WINDOW_INT64_MAX) &&
           (!a->has_skip || a->skip <= WINDOW_INT64_MAX);
}

/*
 * Computes the window for an input of `vsize` bytes. Returns false (and
 * leaves *w untouched) when the arguments are out of range or vsize is too
 * large to be a qemu image size; callers treat that as a fatal error.
 */
static inline bool window_compute(uint64_t vsize, const struct window_args *a,
                                  struct window *w)
{
    uint64_t size, lim, start = 0;

    if (!window_args_valid(a) || vsize > WINDOW_MAX_VSIZE)
        return false;
    if (!window_round_up(vsize, &size))
        return false;
    if (a->has_count && window_mul_i64(a->count, a->bs, &lim) && lim < size)
        size = lim;
    if (a->has_skip) {
        if (!window_mul_i64(a->skip, a->bs, &start) || start > size) {
            w->start = w->end = w->out_size = 0;
            w->skip_past_end = true;
            return true;
        }
    }
    w->start = start;
    w->end = size;
    w->skip_past_end = false;
    /* end <= WINDOW_MAX_VSIZE here, so the round-up cannot overflow. */
    return window_round_up(size - start, &w->out_size);
}

static inline uint64_t window_len(const struct window *w)
{
    return w->end - w->start;
}

#endif /* INSTAR_WINDOW_H */
