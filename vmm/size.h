/*
 * qemu's size syntax, as `qemu-img dd` accepts it for bs=, count= and skip=.
 *
 * The rules were measured against qemu-img 7.2, quirks included, because
 * instar must accept and reject exactly the same operands:
 *
 *  - An integer part, parsed like strtoull base 10: leading whitespace
 *    (" \t\n\v\f\r") and one '+' are allowed. A '-' anywhere in it is a
 *    syntax error, except that a magnitude past 2^64 - 1 is reported as out
 *    of range first ("-99999999999999999999" is SIZE_ERANGE).
 *  - "0x"/"0X" after a zero integer part makes the number hex (" +0x10" is
 *    16). Hex takes no fraction; a suffix is accepted but *hex_suffix is set
 *    so the caller can print qemu's deprecation warning. b, B, e and E are
 *    hex digits there, so only k M G T P (either case) act as suffixes.
 *  - An optional fraction '.' DIGITS, converted as a C double. A fraction
 *    with an exponent ("1.5e3k") is a syntax error. A bare "." is allowed
 *    ("1." is 1, "1.k" is 1024).
 *  - An optional suffix: b/B = 1, k/K = 2^10, M, G, T, P, E (either case)
 *    up to 2^60. A non-zero fraction needs a suffix other than b/B.
 *  - The result is rounded to the nearest byte, halves up ("0.3k" = 307,
 *    "0.9999k" = 1024, "0.00146484375k" = 2).
 *  - Nothing may follow. Trailing garbage beats overflow:
 *    "18446744073709551616" is SIZE_ERANGE, "18446744073709551616k" is
 *    SIZE_ESYNTAX.
 *
 * qemu quirks reproduced on purpose (all measured):
 *  - A fraction that rounds to 1.0 as a double counts as 0
 *    ("1.99999999999999999999k" is 1024, not 2048).
 *  - A fraction whose conversion over- or underflows (more than ~308
 *    leading zeros, or an exponent such as "1.5e-999") counts as 0, and the
 *    character after it is swallowed: "1.5e-999k" is 1, "1.5e-999kk" is
 *    1024.
 */
#ifndef INSTAR_SIZE_H
#define INSTAR_SIZE_H

#include <stdbool.h>
#include <stdint.h>

enum size_result { SIZE_OK = 0, SIZE_ESYNTAX = -1, SIZE_ERANGE = -2 };

/*
 * Parses s (see above) into *out. Returns SIZE_OK, SIZE_ESYNTAX, or
 * SIZE_ERANGE when the value does not fit in uint64_t. *out is written only
 * on success. *hex_suffix is always written: true when a suffix was applied
 * to a hex number, even if the parse then fails (qemu warns in that case
 * too, before reporting the error).
 */
int size_parse(const char *s, uint64_t *out, bool *hex_suffix);

#endif
