/*
 * Holes of the files plain extents come from. A range a reader calls plain
 * bytes of a file that lies in a hole of that file reads as zeros; saying
 * so lets a sparse output skip it, as qemu-img convert skips the holes of
 * a raw input, and spares reading (or copying) gigabytes of nothing.
 */
#ifndef INSTAR_GUEST_HOLES_H
#define INSTAR_GUEST_HOLES_H

#include <stdbool.h>
#include <stdint.h>

#include "../ct_ops.h"
#include "../err.h"
#include "../fmt/fmt.h"

#define HOLES_FILES 4 /* files remembered at once (a chain, a data file) */

struct holes {
    const struct ct_ops *ops;
    bool off;        /* the host cannot say: everything is data */
    unsigned next;   /* the slot to reuse next */
    struct holes_file {
        bool used;
        bool dense;        /* no hole anywhere: never ask again */
        uint32_t handle;
        uint64_t size;     /* the file's size, as the host reported it */
        uint64_t from;     /* asked at: [from, data) is a hole, */
        uint64_t data, hole; /* [data, hole) data */
    } files[HOLES_FILES];
};

void holes_init(struct holes *h, const struct ct_ops *ops);

/* Narrows a PLAIN extent e to its first run of data or hole; a hole
 * becomes a ZERO extent. Other kinds are left alone. */
int holes_refine(struct holes *h, struct fmt_extent *e, struct g_error *err);

#endif
