/*
 * size_parse against qemu-img 7.2. Every row was checked with the real
 * qemu-img dd: syntax vs range errors by its message, the hex warning by
 * its presence, and values below 4 MiB by the offset skip= or bs= copied.
 */
#include <criterion/criterion.h>
#include <locale.h>
#include <string.h>

#include "size.h"

struct scase {
    const char *in;
    int result;
    uint64_t value;
    bool hex_suffix;
};

static const struct scase cases[] = {
    /* parity.md "Block size" table */
    {"0", SIZE_OK, 0ull, false},
    {"1", SIZE_OK, 1ull, false},
    {"3", SIZE_OK, 3ull, false},
    {"2147483647", SIZE_OK, 2147483647ull, false},
    {"2147483648", SIZE_OK, 2147483648ull, false},
    {"2G", SIZE_OK, 2147483648ull, false},
    {"1k", SIZE_OK, 1024ull, false},
    {"1K", SIZE_OK, 1024ull, false},
    {"1M", SIZE_OK, 1048576ull, false},
    {"1G", SIZE_OK, 1073741824ull, false},
    {"1T", SIZE_OK, 1099511627776ull, false},
    {"1b", SIZE_OK, 1ull, false},
    {"1B", SIZE_OK, 1ull, false},
    {"1.5k", SIZE_OK, 1536ull, false},
    {"0.5k", SIZE_OK, 512ull, false},
    {"1.k", SIZE_OK, 1024ull, false},
    {".5k", SIZE_ESYNTAX, 0ull, false},
    {"1.5", SIZE_ESYNTAX, 0ull, false},
    {"1.0", SIZE_OK, 1ull, false},
    {"0x200", SIZE_OK, 512ull, false},
    {"0x1k", SIZE_OK, 1024ull, true},
    {"+512", SIZE_OK, 512ull, false},
    {" 512", SIZE_OK, 512ull, false},
    {"512 ", SIZE_ESYNTAX, 0ull, false},
    {"007", SIZE_OK, 7ull, false},
    {"12x", SIZE_ESYNTAX, 0ull, false},
    {"", SIZE_ESYNTAX, 0ull, false},
    {"1kB", SIZE_ESYNTAX, 0ull, false},
    {"1KiB", SIZE_ESYNTAX, 0ull, false},
    {"1e3", SIZE_ESYNTAX, 0ull, false},
    {"-1", SIZE_ESYNTAX, 0ull, false},
    {"-0", SIZE_ESYNTAX, 0ull, false},
    /* parity.md "Count" and "Skip" tables */
    {"100000", SIZE_OK, 100000ull, false},
    {"9223372036854775807", SIZE_OK, 9223372036854775807ull, false},
    {"9223372036854775808", SIZE_OK, 9223372036854775808ull, false},
    {"18446744073709551615", SIZE_OK, 18446744073709551615ull, false},
    {"18446744073709551616", SIZE_ERANGE, 0ull, false},
    {"7E", SIZE_OK, 8070450532247928832ull, false},
    {"8E", SIZE_OK, 9223372036854775808ull, false},
    {"1E", SIZE_OK, 1152921504606846976ull, false},
    {"36028797018963968", SIZE_OK, 36028797018963968ull, false},
    /* measured: rounding is to nearest, halves up */
    {"0.3k", SIZE_OK, 307ull, false},
    {"1.001k", SIZE_OK, 1025ull, false},
    {"0.0001k", SIZE_OK, 0ull, false},
    {"0.9999k", SIZE_OK, 1024ull, false},
    {"1.0009765625k", SIZE_OK, 1025ull, false},
    {"0.00048828125k", SIZE_OK, 1ull, false},
    {"0.000488281249k", SIZE_OK, 0ull, false},
    {"0.00146484375k", SIZE_OK, 2ull, false},
    {"1.00048828125k", SIZE_OK, 1025ull, false},
    {"1.000488281k", SIZE_OK, 1024ull, false},
    {"7.99999k", SIZE_OK, 8192ull, false},
    {"3.14159M", SIZE_OK, 3294196ull, false},
    {"1.1M", SIZE_OK, 1153434ull, false},
    {"0.333333333M", SIZE_OK, 349525ull, false},
    {"2.7182818284590452M", SIZE_OK, 2850325ull, false},
    {"0.0000001G", SIZE_OK, 107ull, false},
    {"0.001G", SIZE_OK, 1073742ull, false},
    {"3.9999999999M", SIZE_OK, 4194304ull, false},
    {"0.5E", SIZE_OK, 576460752303423488ull, false},
    /* measured: quirks of the double conversion (see size.h) */
    {"1.99999999999999999999k", SIZE_OK, 1024ull, false},
    {"1.99999999999999999999", SIZE_OK, 1ull, false},
    {"0.99999999999999999999k", SIZE_OK, 0ull, false},
    {"0.9999999999999999k", SIZE_OK, 1024ull, false},
    {"0.99999999999999994k", SIZE_OK, 1024ull, false},
    {"0.9999999999999999444888487687421729788184165954589843750k",
     SIZE_OK, 0ull, false},
    {"15.99999999999999999999E", SIZE_OK, 17293822569102704640ull, false},
    {"1.5e-999k", SIZE_OK, 1ull, false},
    {"1.5e999k", SIZE_OK, 1ull, false},
    {"1.5e999kk", SIZE_OK, 1024ull, false},
    {"1.5e-999kk", SIZE_OK, 1024ull, false},
    {"1.5e-999kX", SIZE_ESYNTAX, 0ull, false},
    /* measured: syntax edges */
    {"1.5b", SIZE_ESYNTAX, 0ull, false},
    {"1.5B", SIZE_ESYNTAX, 0ull, false},
    {"0.5b", SIZE_ESYNTAX, 0ull, false},
    {"3.3b", SIZE_ESYNTAX, 0ull, false},
    {"1.0b", SIZE_OK, 1ull, false},
    {"0x1.8k", SIZE_ESYNTAX, 0ull, false},
    {"0x1.k", SIZE_ESYNTAX, 0ull, false},
    {"0x1.0", SIZE_ESYNTAX, 0ull, false},
    {"0x1.8", SIZE_ESYNTAX, 0ull, false},
    {"1k5", SIZE_ESYNTAX, 0ull, false},
    {"1.", SIZE_OK, 1ull, false},
    {"0x", SIZE_ESYNTAX, 0ull, false},
    {"0X", SIZE_ESYNTAX, 0ull, false},
    {"0xk", SIZE_ESYNTAX, 0ull, false},
    {"0x1p", SIZE_OK, 1125899906842624ull, true},
    {" +5", SIZE_OK, 5ull, false},
    {"+ 5", SIZE_ESYNTAX, 0ull, false},
    {"++5", SIZE_ESYNTAX, 0ull, false},
    {"+-5", SIZE_ESYNTAX, 0ull, false},
    {"5 ", SIZE_ESYNTAX, 0ull, false},
    {"1kb", SIZE_ESYNTAX, 0ull, false},
    {"1Kb", SIZE_ESYNTAX, 0ull, false},
    {"1.00", SIZE_OK, 1ull, false},
    {"0.0", SIZE_OK, 0ull, false},
    {"0x10", SIZE_OK, 16ull, false},
    {"0X10", SIZE_OK, 16ull, false},
    {"010", SIZE_OK, 10ull, false},
    {"\t5", SIZE_OK, 5ull, false},
    {"\n5", SIZE_OK, 5ull, false},
    {"\v5", SIZE_OK, 5ull, false},
    {"\r5", SIZE_OK, 5ull, false},
    {"\f5", SIZE_OK, 5ull, false},
    {" ", SIZE_ESYNTAX, 0ull, false},
    {"+", SIZE_ESYNTAX, 0ull, false},
    {"k", SIZE_ESYNTAX, 0ull, false},
    {"1.e", SIZE_OK, 1152921504606846976ull, false},
    {"1.5e", SIZE_OK, 1729382256910270464ull, false},
    {"1.5E", SIZE_OK, 1729382256910270464ull, false},
    {"1.e5", SIZE_ESYNTAX, 0ull, false},
    {"1.5e3k", SIZE_ESYNTAX, 0ull, false},
    {"1.5e-3k", SIZE_ESYNTAX, 0ull, false},
    {"1.5E3k", SIZE_ESYNTAX, 0ull, false},
    {"1.-5k", SIZE_ESYNTAX, 0ull, false},
    {"1. 5k", SIZE_ESYNTAX, 0ull, false},
    {"1.x", SIZE_ESYNTAX, 0ull, false},
    {"1m", SIZE_OK, 1048576ull, false},
    {"1g", SIZE_OK, 1073741824ull, false},
    {"1t", SIZE_OK, 1099511627776ull, false},
    {"1p", SIZE_OK, 1125899906842624ull, false},
    {"1e", SIZE_OK, 1152921504606846976ull, false},
    {"1P", SIZE_OK, 1125899906842624ull, false},
    /* measured: hex; b and e are digits there, not suffixes */
    {"0x1b", SIZE_OK, 27ull, false},
    {"0x1B", SIZE_OK, 27ull, false},
    {"0x1E", SIZE_OK, 30ull, false},
    {"0x1f", SIZE_OK, 31ull, false},
    {"0x1g", SIZE_OK, 1073741824ull, true},
    {"0x1K", SIZE_OK, 1024ull, true},
    {"0x0k", SIZE_OK, 0ull, true},
    {"0x1T", SIZE_OK, 1099511627776ull, true},
    {"0x1M", SIZE_OK, 1048576ull, true},
    {"0xffffffffffffffff", SIZE_OK, 18446744073709551615ull, false},
    {"00x10", SIZE_ESYNTAX, 0ull, false},
    {"0x0x10", SIZE_ESYNTAX, 0ull, false},
    {"1x10", SIZE_ESYNTAX, 0ull, false},
    {"0x+5", SIZE_ESYNTAX, 0ull, false},
    {"0x-5", SIZE_ESYNTAX, 0ull, false},
    {"-0x5", SIZE_ESYNTAX, 0ull, false},
    {" 0x10", SIZE_OK, 16ull, false},
    {"+0x10", SIZE_OK, 16ull, false},
    /* measured: trailing garbage beats overflow */
    {"18446744073709551616k", SIZE_ESYNTAX, 0ull, false},
    {"18446744073709551615k", SIZE_ERANGE, 0ull, false},
    {"16E", SIZE_ERANGE, 0ull, false},
    {"16383P", SIZE_OK, 18445618173802708992ull, false},
    {"16384P", SIZE_ERANGE, 0ull, false},
    {"17592186044415.9999999T", SIZE_ERANGE, 0ull, false},
    {"99999999999999999999.5k", SIZE_ESYNTAX, 0ull, false},
    {"-99999999999999999999", SIZE_ERANGE, 0ull, false},
    {"-18446744073709551616", SIZE_ERANGE, 0ull, false},
    {"-18446744073709551615", SIZE_ESYNTAX, 0ull, false},
    {"0x10000000000000000", SIZE_ERANGE, 0ull, false},
    {"0x10000000000000000k", SIZE_ESYNTAX, 0ull, false},
    {"0xffffffffffffffffk", SIZE_ERANGE, 0ull, true},
    {"0x1kX", SIZE_ESYNTAX, 0ull, true},
    {"0x1kk", SIZE_ESYNTAX, 0ull, true},
};

static void check(const struct scase *c)
{
    uint64_t v = 0xdeadbeef;
    bool hex = !c->hex_suffix;
    int r = size_parse(c->in, &v, &hex);

    cr_expect_eq(r, c->result, "\"%s\": result %d, want %d", c->in, r,
                 c->result);
    cr_expect_eq(hex, c->hex_suffix, "\"%s\": hex_suffix %d", c->in, hex);
    if (c->result == SIZE_OK)
        cr_expect_eq(v, c->value, "\"%s\": %llu, want %llu", c->in,
                     (unsigned long long)v, (unsigned long long)c->value);
    else
        cr_expect_eq(v, 0xdeadbeef, "\"%s\": *out written on error", c->in);
}

Test(size, table)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check(&cases[i]);
}

/* "1." then zeros then "1k": a fraction that is tiny but still normal. */
static void tiny_fraction(char *buf, size_t zeros)
{
    buf[0] = '1';
    buf[1] = '.';
    memset(buf + 2, '0', zeros);
    strcpy(buf + 2 + zeros, "1k");
}

Test(size, tiny_fraction_is_ignored)
{
    char buf[400];
    uint64_t v;
    bool hex;

    tiny_fraction(buf, 300);
    cr_assert_eq(size_parse(buf, &v, &hex), SIZE_OK);
    cr_expect_eq(v, 1024);
}

/* Measured: the underflowing fraction also swallows the 'k' after it. */
Test(size, underflowing_fraction_swallows_next_char)
{
    char buf[400];
    uint64_t v;
    bool hex;

    tiny_fraction(buf, 310);
    cr_assert_eq(size_parse(buf, &v, &hex), SIZE_OK);
    cr_expect_eq(v, 1);
}

/* qemu reads past the terminator here; instar stops on it. */
Test(size, underflow_at_end_of_string)
{
    uint64_t v;
    bool hex;

    cr_assert_eq(size_parse("1.5e-999", &v, &hex), SIZE_OK);
    cr_expect_eq(v, 1);
}

/* The fraction must not depend on the process locale's decimal point. */
Test(size, locale_independent)
{
    uint64_t v;
    bool hex;

    if (!setlocale(LC_NUMERIC, "de_DE.UTF-8") &&
        !setlocale(LC_NUMERIC, "fr_FR.UTF-8"))
        cr_skip_test("no locale with a decimal comma installed");
    cr_expect_eq(size_parse("1.5k", &v, &hex), SIZE_OK);
    cr_expect_eq(v, 1536);
    setlocale(LC_NUMERIC, "C");
}
