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

#endif
