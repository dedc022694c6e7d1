/*
 * `instar info` on the guest side: readers describe an image as typed
 * records (calltable/instar_ct.h, struct ct_info_rec) through a sink that
 * batches them into CT_CALL_INFO calls. The host checks every record and
 * renders the text itself; readers never format output.
 */
#ifndef INSTAR_GUEST_FMT_INFO_H
#define INSTAR_GUEST_FMT_INFO_H

#include <stdbool.h>
#include <stdint.h>

#include "fmt.h"

struct fmt_range;

struct fmt_info {
    const struct fmt_env *env;
    uint8_t *buf;  /* one batch (heap) */
    uint64_t cap;  /* <= CT_INFO_BATCH_MAX */
    uint64_t used;
    /* the metadata ranges of the image being checked: one buffer for
     * every image and extent, checked one after another */
    struct fmt_range *ranges;
    uint32_t ranges_cap;
    uint8_t *scratch; /* I/O area for checks, reused likewise */
    uint64_t scratch_cap;
};

/* Batch buffer from env->heap. */
int fmt_info_init(struct fmt_info *s, const struct fmt_env *env);

/* Append one record; a full batch goes to the host first. */
int fmt_info_begin(struct fmt_info *s, uint16_t key, uint64_t value);
int fmt_info_end(struct fmt_info *s, uint16_t key);
int fmt_info_u64(struct fmt_info *s, uint16_t key, uint64_t v);
int fmt_info_bool(struct fmt_info *s, uint16_t key, bool v);
int fmt_info_enum(struct fmt_info *s, uint16_t key, uint64_t v);
/* Text as written in the image: NUL bytes are cut (the host refuses
 * them), anything else is the host's to escape. */
int fmt_info_str(struct fmt_info *s, uint16_t key, const char *p,
                 uint32_t len);
/* A reason (enum ct_safety_rule) the image is not safe; detail is a
 * message (may be empty). */
int fmt_info_reason(struct fmt_info *s, uint32_t rule, const char *detail);

/* Sends what is batched. */
int fmt_info_flush(struct fmt_info *s);

/* A buffer in the I/O area of at least len bytes for a reader's check;
 * every check of the run gets the same one (NULL: out of memory). */
uint8_t *fmt_info_scratch(struct fmt_info *s, uint64_t len);

/* fmt_info_reason with a formatted detail (rt_fmt's conversions). */
int fmt_info_reasonf(struct fmt_info *s, uint32_t rule, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * File ranges that hold metadata (tables, headers), for the check that no
 * data and no other metadata lies inside them. Sorted once complete.
 *
 * Readers check for info what their read path checks, and fail the same
 * way (dd's message, exit 1); what no read checks (tables overlapping
 * each other or data, tables a read never uses) becomes a reason the
 * image is not safe, and the description goes on: qemu-img reads such
 * images.
 */
struct fmt_range {
    uint64_t off, len;
    const char *what;
};

struct fmt_ranges {
    struct fmt_range *r;
    uint32_t n, cap;
    bool full; /* more ranges than cap: the overlap check is skipped */
};

/* An empty set of at most cap ranges, in s's buffer (reused: one set
 * exists at a time). */
int fmt_ranges_init(struct fmt_ranges *m, struct fmt_info *s, uint32_t cap);
void fmt_ranges_add(struct fmt_ranges *m, uint64_t off, uint64_t len,
                    const char *what);
/* Sorts the ranges; the first two that overlap become a METADATA reason
 * (*bad set). A full set gives an UNCHECKED reason instead. */
int fmt_ranges_check(struct fmt_ranges *m, struct fmt_info *s,
                     const char *fmt, bool *bad);
/* The metadata range [off, off + len) overlaps, or NULL (after check). */
const struct fmt_range *fmt_ranges_find(const struct fmt_ranges *m,
                                        uint64_t off, uint64_t len);

#endif
