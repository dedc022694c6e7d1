/*
 * A reader's extents (block status) must say the truth: a plain range's
 * file bytes are what read() returns, a zero range reads as zeros. Every
 * reader's unit tests run this over the windows they read.
 */
#ifndef INSTAR_TEST_EXTENT_CHECK_H
#define INSTAR_TEST_EXTENT_CHECK_H

#include <stdint.h>

#include "ct_mem.h"
#include "fmt/fmt.h"

/* Walks [off, off + len) extent by extent, comparing each with read()
 * into buf (I/O memory of buflen bytes). Fails the criterion test on any
 * lie; returns how many extents were plain (so a test can insist the path
 * is exercised). */
unsigned extent_check(struct fmt_reader *r, struct ct_mem *m, uint8_t *buf,
                      uint64_t buflen, uint64_t off, uint64_t len);

/* Two dd runs of the same case, one through the host's copies and one
 * through the guest's own path, must agree: result, message, bytes. */
void expect_same_dd(int ret_a, const char *msg_a, const struct ct_mem *a,
                    int ret_b, const char *msg_b, const struct ct_mem *b);

#endif
