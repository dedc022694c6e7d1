/*
 * `instar info` on the host: the guest's info records are checked one
 * batch at a time (info_rec.c) into a stream the host keeps, and once the
 * guest has finished the host renders qemu-img info's output from it
 * (info_out.c). Nothing the guest sends reaches the output except typed
 * values: numbers, booleans, enum codes the host names, and text the host
 * escapes.
 */
#ifndef INSTAR_VMM_INFO_H
#define INSTAR_VMM_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backing.h"
#include "instar_ct.h"

/* What the host has accepted so far; buf is allocated before lock-down. */
struct info_stream {
    uint8_t *buf; /* CT_INFO_TOTAL_MAX bytes */
    size_t used;
    bool chain;   /* --backing-chain: more than one image allowed */
    unsigned depth;
    struct info_frame {
        uint16_t key;    /* IMAGE, EXTENT, SNAPSHOT or BITMAP */
        uint32_t format; /* the image's CT_FMT_* (0 until FORMAT) */
        uint32_t handle;
        uint64_t seen;   /* keys already given in this object */
        unsigned reasons;
    } stack[CT_INFO_DEPTH_MAX];
    unsigned images;
    uint32_t last_image; /* handle of the last image */
};

enum info_verdict { INFO_ACCEPTED = 0, INFO_LIMIT = 1, INFO_BAD = -1 };

/* Checks one batch of records (len bytes) against the schema and what the
 * host granted (files: handles and who named them) and appends it.
 * INFO_LIMIT: the stream would pass CT_INFO_TOTAL_MAX (nothing appended);
 * INFO_BAD: err says which record broke which rule. */
int info_stream_add(struct info_stream *st, const struct vmm_files *files,
                    const uint8_t *p, size_t len, char *err, size_t errlen);

/* The stream is whole: every object closed, at least one image. */
int info_stream_done(const struct info_stream *st, char *err, size_t errlen);

/* How to render. */
struct info_render {
    bool json;
    bool check_safe; /* --check-safe: no output, reasons to `msg` */
    const char *in_name;           /* filename of the input, as given */
    const struct vmm_files *files; /* names and fds of granted files */
    int out_fd;                    /* where the output goes (stdout) */
    FILE *msg;                     /* where --check-safe's reasons go */
};

/* Renders the whole stream. Returns 0, or 1 for --check-safe when an image
 * is not safe, or -1 with errno when the output could not be written. */
int info_render(const struct info_stream *st, const struct info_render *o);

/* qemu's rule for the name of a file an image names (measured): an
 * absolute name, or one with a ':' before its first '/', stands alone;
 * any other is appended to the directory part of base (up to and
 * including its last '/'). Returns the length, or 0 if it does not fit. */
size_t info_path_combine(const char *base, const char *name, size_t name_len,
                         char *out, size_t cap);

/* The size qemu-img prints for n bytes ("1.21 MiB", "1e+03 KiB"). */
void info_human_size(uint64_t n, char *out, size_t cap);

#endif
