/*
 * Format drivers: readers turn an image into its virtual disk, writers turn
 * a virtual disk into an image. A driver talks to the host only through the
 * ct_ops in its env.
 */
#ifndef INSTAR_GUEST_FMT_H
#define INSTAR_GUEST_FMT_H

#include <stddef.h>
#include <stdint.h>

#include "../ct_ops.h"
#include "../err.h"

struct fmt_env {
    const struct ct_ops *ops;
    struct g_error *err;
};

struct fmt_reader {
    const char *name;   /* format name for messages */
    uint64_t vsize;     /* virtual size in bytes */
    /* Fills exactly len bytes of virtual disk at off into buf (an I/O-area
     * buffer); bytes past the virtual size read as zeros. */
    int (*read)(struct fmt_reader *r, uint64_t off, void *buf, uint64_t len);
    const struct fmt_env *env;
    uint32_t handle;
    uint64_t file_size;
};

struct fmt_writer {
    const char *name;
    uint64_t vsize; /* virtual size of the output */
    /* Writes len bytes of virtual disk at off from buf (I/O area). */
    int (*write)(struct fmt_writer *w, uint64_t off, const void *buf,
                 uint64_t len);
    int (*finish)(struct fmt_writer *w);
    const struct fmt_env *env;
};

/* What the first bytes of an image say it is. */
struct fmt_probe_result {
    uint32_t format;   /* CT_FMT_* if instar can read it, else CT_FMT_PROBE */
    const char *name;  /* format name when recognised, else NULL */
};

/* Bytes of the image head that fmt_probe looks at. */
#define FMT_PROBE_LEN 512u

/* Identifies an image from its first n bytes (n may be short: small file).
 * Raw is the answer when no known magic matches. */
struct fmt_probe_result fmt_probe(const uint8_t *head, size_t n);

int fmt_raw_open(const struct fmt_env *env, uint32_t handle,
                 struct fmt_reader *r);
int fmt_raw_writer_open(const struct fmt_env *env, uint64_t vsize,
                        struct fmt_writer *w);

#endif
