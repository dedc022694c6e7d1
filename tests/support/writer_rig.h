/*
 * Runs the guest's dd (engine + a writer) over a memory-backed call table
 * and reads the output back with the project's own reader for the format:
 * what every writer's unit tests need.
 */
#ifndef INSTAR_TEST_WRITER_RIG_H
#define INSTAR_TEST_WRITER_RIG_H

#include <stddef.h>
#include <stdint.h>

#include "ct_mem.h"
#include "engine/engine.h"

struct rig {
    struct ct_mem m;    /* m.out / m.out_len: the output file */
    struct g_error err;
    int ret;            /* dd_run's result */
    uint8_t entropy[FMT_ENTROPY_LEN];
};

/* dd -O out_format over `in` (raw) with window args a. The writer sees
 * unix_time 1700000000, entropy bytes 1, 2, 3, ... and the name out_name
 * (NULL: "out.img"). */
void rig_write(struct rig *r, const uint8_t *in, size_t len,
               struct window_args a, uint32_t out_format,
               const char *out_name);
/* rig_write with the host's copies refused (CT_ENOTSUP): everything goes
 * through the guest's own read-and-write path. */
void rig_write_guest_path(struct rig *r, const uint8_t *in, size_t len,
                          struct window_args a, uint32_t out_format,
                          const char *out_name);

/* convert -O out_format of the whole of `in` (raw): runs of at least
 * sparse_min zero bytes left out (0: dense), with the output parameters p
 * (NULL: defaults) and progress reports. */
void rig_convert(struct rig *r, const uint8_t *in, size_t len,
                 uint32_t out_format, uint64_t sparse_min,
                 const struct ct_output_params *p);

/* rig_convert and rig_write over an input whose all-zero, aligned
 * hole_block-byte blocks are holes of a sparse file (struct ct_mem). */
void rig_convert_holes(struct rig *r, const uint8_t *in, size_t len,
                       uint32_t out_format, uint64_t sparse_min,
                       const struct ct_output_params *p, uint32_t hole_block);
/* rig_convert on a host without write-behinds (every write done before
 * the next read). */
void rig_convert_no_behind(struct rig *r, const uint8_t *in, size_t len,
                           uint32_t out_format, uint64_t sparse_min);
void rig_write_holes(struct rig *r, const uint8_t *in, size_t len,
                     struct window_args a, uint32_t out_format,
                     uint32_t hole_block);

/* Reads the output of r back as `format` with the project's reader: a
 * malloc'd copy of its virtual disk (*vsize bytes), or NULL with the
 * reader's message in err. */
uint8_t *rig_read_back(const struct rig *r, uint32_t format, uint64_t *vsize,
                       struct g_error *err);

/* ct_mem_free and the like. */
void rig_free(struct rig *r);

/* Deterministic test data: a pattern with all-zero 64 KiB regions where
 * (region index % zero_every) == 1 (0: none). */
uint8_t *rig_pattern(size_t n, unsigned zero_every);

/* Asserts the run succeeded and its output file is exactly in (raw). */
void rig_expect_same(const struct rig *r, const uint8_t *in, size_t len);

#endif
