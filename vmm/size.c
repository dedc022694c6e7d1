/* qemu size syntax; the rules and the quirks kept are listed in size.h. */
#define _GNU_SOURCE /* strtod_l */
#include "size.h"

#include <errno.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

/* What strtoull would report, without its locale-dependent isspace. */
struct uscan {
    const char *end; /* first character not consumed */
    uint64_t val;
    bool digits;     /* false: nothing converted, end == start */
    bool neg;
    bool overflow;   /* magnitude > UINT64_MAX */
};

static bool is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Digit value in bases up to 16; 16 for anything else. */
static unsigned digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (unsigned)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (unsigned)(c - 'A' + 10);
    return 16;
}

static void scan_uint(const char *s, unsigned base, struct uscan *u)
{
    const char *p = s;

    memset(u, 0, sizeof *u);
    u->end = s;
    while (is_space(*p))
        p++;
    if (*p == '+' || *p == '-')
        u->neg = *p++ == '-';
    /* Like glibc, "0x" without a hex digit after it is just "0". */
    if (base == 16 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') &&
        digit_value(p[2]) < 16)
        p += 2;
    for (; digit_value(*p) < base; p++) {
        u->digits = true;
        if (__builtin_mul_overflow(u->val, base, &u->val) ||
            __builtin_add_overflow(u->val, digit_value(*p), &u->val))
            u->overflow = true;
    }
    if (u->digits)
        u->end = p;
}

/* Power-of-two exponent of a suffix, or -1 if c is not one. */
static int suffix_shift(char c)
{
    switch (c) {
    case 'b': case 'B': return 0;
    case 'k': case 'K': return 10;
    case 'm': case 'M': return 20;
    case 'g': case 'G': return 30;
    case 't': case 'T': return 40;
    case 'p': case 'P': return 50;
    case 'e': case 'E': return 60;
    default: return -1;
    }
}

/* The fraction is read as a C double whatever the process locale is. */
static double strtod_c(const char *s, char **end)
{
    static locale_t c_locale;

    if (!c_locale)
        c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!c_locale)
        return strtod(s, end);
    return strtod_l(s, end, c_locale);
}

/*
 * The fraction as 0.64 fixed point. A double that rounded up to 1.0 gives
 * 0, as qemu's out-of-range float-to-integer conversion does on x86-64.
 */
static uint64_t fraction_bits(double d)
{
    double x = d * 18446744073709551616.0; /* exact: 2^64 */

    if (x >= 18446744073709551616.0)
        return 0;
    return (uint64_t)x;
}

/*
 * Parses the fraction at f (which points at '.'), setting *end past what
 * qemu treats as consumed and *valf to its bits.
 */
static int scan_fraction(const char *f, const char **end, uint64_t *valf)
{
    char *ep;
    double d;
    int saved = errno;

    *valf = 0;
    errno = 0;
    d = strtod_c(f, &ep);
    if (ep == f) {
        /* "1." and "1.k": qemu steps over the '.' alone. */
        *end = f + 1;
    } else if (errno == ERANGE) {
        /*
         * qemu steps one character past an over/underflowing fraction
         * and drops it. Past the terminator it reads heap bytes that are
         * in practice zero, so stay on the terminator.
         */
        *end = *ep ? ep + 1 : ep;
    } else if (memchr(f, 'e', (size_t)(ep - f)) ||
               memchr(f, 'E', (size_t)(ep - f))) {
        errno = saved;
        return SIZE_ESYNTAX;
    } else {
        *end = ep;
        *valf = fraction_bits(d);
    }
    errno = saved;
    return SIZE_OK;
}

/* val.valf * 2^shift, rounded to nearest with halves up. */
static int scale(uint64_t val, uint64_t valf, unsigned shift, uint64_t *out)
{
    uint64_t lo, round;

    if (shift == 0) {
        /* A fraction needs a real multiplier. */
        if (valf != 0)
            return SIZE_ESYNTAX;
        *out = val;
        return SIZE_OK;
    }
    if (val >> (64 - shift))
        return SIZE_ERANGE;
    lo = val << shift;
    round = (valf >> (63 - shift)) & 1;
    if (__builtin_add_overflow(lo, valf >> (64 - shift), &lo) ||
        __builtin_add_overflow(lo, round, &lo))
        return SIZE_ERANGE;
    *out = lo;
    return SIZE_OK;
}

/* qemu reports trailing garbage in preference to an overflow. */
static int overflow_result(const char *end)
{
    return *end ? SIZE_ESYNTAX : SIZE_ERANGE;
}

int size_parse(const char *s, uint64_t *out, bool *hex_suffix)
{
    struct uscan u;
    const char *p;
    uint64_t valf = 0, val;
    bool hex = false;
    int shift, r;

    *hex_suffix = false;
    scan_uint(s, 10, &u);
    if (!u.digits)
        return SIZE_ESYNTAX;
    if (u.overflow)
        return overflow_result(u.end);
    if (u.neg)
        return SIZE_ESYNTAX;
    p = u.end;
    if (u.val == 0 && (*p == 'x' || *p == 'X')) {
        scan_uint(s, 16, &u);
        if (u.overflow)
            return overflow_result(u.end);
        p = u.end;
        if (*p == '.')
            return SIZE_ESYNTAX;
        hex = true;
    } else if (*p == '.') {
        r = scan_fraction(p, &p, &valf);
        if (r != SIZE_OK)
            return r;
    }
    shift = suffix_shift(*p);
    if (shift >= 0) {
        *hex_suffix = hex;
        p++;
    } else {
        shift = 0;
    }
    if (*p)
        return SIZE_ESYNTAX;
    r = scale(u.val, valf, (unsigned)shift, &val);
    if (r == SIZE_OK)
        *out = val;
    return r;
}
