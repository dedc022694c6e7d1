/*
 * A memory-backed call table: runs the guest engine and drivers on the host
 * (unit tests, fuzzers) with no KVM. The input is a byte array; the output
 * grows as written. It enforces the same rules the VMM does for writes:
 * begin_output first, then only within the window's output size.
 */
#ifndef INSTAR_TEST_CT_MEM_H
#define INSTAR_TEST_CT_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ct_ops.h"
#include "window.h"

struct ct_mem {
    const uint8_t *in;
    size_t in_len;
    uint32_t out_format;
    struct window_args args;

    uint8_t *out;
    size_t out_len;
    size_t out_cap;
    bool begun;
    uint64_t out_limit;
    bool skip_notice;
    unsigned reads, writes;
    int fail_read_at; /* fail the Nth read with CT_EIO (1-based); 0 = never */
};

void ct_mem_init(struct ct_mem *m, const uint8_t *in, size_t in_len,
                 uint32_t out_format, const struct window_args *args);
void ct_mem_free(struct ct_mem *m);
struct ct_ops ct_mem_ops(struct ct_mem *m);

#endif
