/*
 * The host's check of the guest's info records (calltable/instar_ct.h,
 * docs/calltable.md "Info records"): every record has a known key, that
 * key's type, a value in its range, text without NUL within its length,
 * zero padding, and a place: the object it may appear in, once, FORMAT
 * first in an image, objects nested at most CT_INFO_DEPTH_MAX deep and
 * closed in order with their required keys, images and extents naming
 * files the host granted for them. A record that breaks any of these
 * stops the guest: the guest is our code, so it has been subverted.
 */
#include "info.h"

#include <stdarg.h>
#include <string.h>

/* Where a key may appear: the object it is read in. */
#define W_TOP (1u << 0)    /* outside any object (IMAGE only) */
#define W_IMAGE (1u << 1)  /* any image */
#define W_QCOW2 (1u << 2)  /* a qcow2 image */
#define W_VMDK (1u << 3)   /* a vmdk image */
#define W_EXTENT (1u << 4)
#define W_SNAP (1u << 5)
#define W_BITMAP (1u << 6)

#define K(k) (1ull << (k))

struct key_def {
    const char *name; /* for messages */
    uint8_t type;     /* for objects: CT_INFO_T_BEGIN */
    uint8_t where;
    bool repeats;     /* may appear more than once in an object */
    uint64_t lo, hi;  /* value range; T_STR / T_REASON: hi = longest text */
};

static const struct key_def keys[CT_INFO_KEY_COUNT] = {
    [CT_INFO_IMAGE] = {"image", CT_INFO_T_BEGIN, W_TOP, true, 0, 0},
    [CT_INFO_EXTENT] = {"extent", CT_INFO_T_BEGIN, W_VMDK, true, 0, 0},
    [CT_INFO_SNAPSHOT] = {"snapshot", CT_INFO_T_BEGIN, W_QCOW2, true, 0, 0},
    [CT_INFO_BITMAP] = {"bitmap", CT_INFO_T_BEGIN, W_QCOW2, true, 0, 0},
    [CT_INFO_FORMAT] = {"format", CT_INFO_T_ENUM, W_IMAGE, false,
                        CT_FMT_RAW, CT_FMT_COUNT - 1},
    [CT_INFO_VIRTUAL_SIZE] = {"virtual-size", CT_INFO_T_U64,
                              W_IMAGE | W_EXTENT, false, 0, INT64_MAX},
    [CT_INFO_CLUSTER_SIZE] = {"cluster-size", CT_INFO_T_U64,
                              W_IMAGE | W_EXTENT, false, 1, INT64_MAX},
    [CT_INFO_DIRTY] = {"dirty-flag", CT_INFO_T_BOOL, W_IMAGE, false, 0, 1},
    [CT_INFO_BACKING_FILENAME] = {"backing-filename", CT_INFO_T_STR, W_IMAGE,
                                  false, 1, CT_NAME_MAX},
    [CT_INFO_BACKING_FORMAT] = {"backing-filename-format", CT_INFO_T_STR,
                                W_IMAGE, false, 0, 255},
    [CT_INFO_UNSAFE] = {"unsafe", CT_INFO_T_REASON, W_IMAGE, true,
                        CT_SAFETY_GUEST_FIRST, CT_MSG_MAX},
    [CT_INFO_QCOW2_COMPAT] = {"compat", CT_INFO_T_ENUM, W_QCOW2, false, 2,
                              3},
    [CT_INFO_QCOW2_COMPRESSION] = {"compression-type", CT_INFO_T_ENUM,
                                   W_QCOW2, false, 0, 1},
    [CT_INFO_QCOW2_LAZY_REFCOUNTS] = {"lazy-refcounts", CT_INFO_T_BOOL,
                                      W_QCOW2, false, 0, 1},
    [CT_INFO_QCOW2_REFCOUNT_BITS] = {"refcount-bits", CT_INFO_T_U64,
                                     W_QCOW2, false, 1, 64},
    [CT_INFO_QCOW2_CORRUPT] = {"corrupt", CT_INFO_T_BOOL, W_QCOW2, false, 0,
                               1},
    [CT_INFO_QCOW2_EXTENDED_L2] = {"extended-l2", CT_INFO_T_BOOL, W_QCOW2,
                                   false, 0, 1},
    [CT_INFO_QCOW2_DATA_FILE] = {"data-file", CT_INFO_T_STR, W_QCOW2, false,
                                 1, CT_NAME_MAX},
    [CT_INFO_QCOW2_DATA_FILE_RAW] = {"data-file-raw", CT_INFO_T_BOOL,
                                     W_QCOW2, false, 0, 1},
    [CT_INFO_VMDK_CID] = {"cid", CT_INFO_T_U64, W_VMDK, false, 0,
                          UINT32_MAX},
    [CT_INFO_VMDK_PARENT_CID] = {"parent-cid", CT_INFO_T_U64, W_VMDK, false,
                                 0, UINT32_MAX},
    [CT_INFO_VMDK_CREATE_TYPE] = {"create-type", CT_INFO_T_STR, W_VMDK,
                                  false, 0, CT_INFO_STR_MAX},
    [CT_INFO_EXTENT_FORMAT] = {"format", CT_INFO_T_STR, W_EXTENT, false, 0,
                               16},
    [CT_INFO_COMPRESSED] = {"compressed", CT_INFO_T_BOOL, W_EXTENT, false, 0,
                            1},
    [CT_INFO_SNAP_ID] = {"id", CT_INFO_T_STR, W_SNAP, false, 0,
                         CT_INFO_STR_MAX},
    [CT_INFO_SNAP_NAME] = {"name", CT_INFO_T_STR, W_SNAP, false, 0,
                           CT_INFO_STR_MAX},
    [CT_INFO_SNAP_VM_STATE_SIZE] = {"vm-state-size", CT_INFO_T_U64, W_SNAP,
                                    false, 0, INT64_MAX},
    [CT_INFO_SNAP_DATE_SEC] = {"date-sec", CT_INFO_T_U64, W_SNAP, false, 0,
                               UINT32_MAX},
    [CT_INFO_SNAP_DATE_NSEC] = {"date-nsec", CT_INFO_T_U64, W_SNAP, false, 0,
                                UINT32_MAX},
    [CT_INFO_SNAP_VM_CLOCK_NSEC] = {"vm-clock-nsec", CT_INFO_T_U64, W_SNAP,
                                    false, 0, INT64_MAX},
    [CT_INFO_SNAP_ICOUNT] = {"icount", CT_INFO_T_U64, W_SNAP, false, 0,
                             INT64_MAX},
    [CT_INFO_BITMAP_NAME] = {"name", CT_INFO_T_STR, W_BITMAP, false, 0,
                             CT_INFO_STR_MAX},
    [CT_INFO_BITMAP_GRANULARITY] = {"granularity", CT_INFO_T_U64, W_BITMAP,
                                    false, 1, INT64_MAX},
    [CT_INFO_BITMAP_FLAGS] = {"flags", CT_INFO_T_U64, W_BITMAP, false, 0, 3},
};

/* What an object must hold when it is closed. */
static uint64_t required(const struct info_frame *f)
{
    switch (f->key) {
    case CT_INFO_IMAGE:
        return K(CT_INFO_FORMAT) | K(CT_INFO_VIRTUAL_SIZE) |
               (f->format == CT_FMT_QCOW2
                    ? K(CT_INFO_QCOW2_COMPAT) | K(CT_INFO_QCOW2_COMPRESSION) |
                          K(CT_INFO_QCOW2_REFCOUNT_BITS)
                    : 0) |
               (f->format == CT_FMT_VMDK
                    ? K(CT_INFO_VMDK_CID) | K(CT_INFO_VMDK_PARENT_CID) |
                          K(CT_INFO_VMDK_CREATE_TYPE)
                    : 0);
    case CT_INFO_EXTENT:
        return K(CT_INFO_VIRTUAL_SIZE) | K(CT_INFO_EXTENT_FORMAT);
    case CT_INFO_SNAPSHOT:
        return K(CT_INFO_SNAP_ID) | K(CT_INFO_SNAP_NAME) |
               K(CT_INFO_SNAP_VM_STATE_SIZE) | K(CT_INFO_SNAP_DATE_SEC) |
               K(CT_INFO_SNAP_DATE_NSEC) | K(CT_INFO_SNAP_VM_CLOCK_NSEC);
    default: /* CT_INFO_BITMAP */
        return K(CT_INFO_BITMAP_NAME) | K(CT_INFO_BITMAP_GRANULARITY) |
               K(CT_INFO_BITMAP_FLAGS);
    }
}

/* The place a record at the current depth is in (W_*). */
static unsigned place(const struct info_stream *st)
{
    const struct info_frame *f;
    if (st->depth == 0)
        return W_TOP;
    f = &st->stack[st->depth - 1];
    switch (f->key) {
    case CT_INFO_IMAGE:
        return W_IMAGE | (f->format == CT_FMT_QCOW2 ? W_QCOW2 : 0) |
               (f->format == CT_FMT_VMDK ? W_VMDK : 0);
    case CT_INFO_EXTENT:
        return W_EXTENT;
    case CT_INFO_SNAPSHOT:
        return W_SNAP;
    default:
        return W_BITMAP;
    }
}

__attribute__((format(printf, 4, 5))) static int
bad(char *err, size_t errlen, size_t at, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(err, errlen, "info record at byte %zu: ", at);
    if (n >= 0 && (size_t)n < errlen) {
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return INFO_BAD;
}

/* The handle an IMAGE or EXTENT opens must be one the host gave for it:
 * the input first, then (--backing-chain) a file the previous image
 * named; an extent is its image's own file or one the image named. */
static const char *bad_handle(const struct info_stream *st,
                              const struct vmm_files *files, uint16_t key,
                              uint64_t h)
{
    if (key == CT_INFO_IMAGE) {
        if (st->images == 0)
            return h == CT_HANDLE_INPUT ? NULL : "is not the input";
        if (!st->chain)
            return "is a second image without --backing-chain";
        if (st->images > CT_CHAIN_DEPTH_MAX)
            return "is deeper than the chain may be";
        if (h == 0 || h >= files->nfiles ||
            files->files[h].parent != st->last_image)
            return "was not named by the previous image";
        return NULL;
    }
    if (key == CT_INFO_EXTENT) {
        uint32_t img = st->stack[0].handle;
        if (h == img ||
            (h > 0 && h < files->nfiles && files->files[h].parent == img))
            return NULL;
        return "was not named by its image";
    }
    return h == 0 ? NULL : "must be 0";
}

static int begin(struct info_stream *st, const struct vmm_files *files,
                 const struct ct_info_rec *r, char *err, size_t errlen,
                 size_t at)
{
    const char *why = bad_handle(st, files, r->key, r->value);
    if (why)
        return bad(err, errlen, at, "%s handle %llu %s", keys[r->key].name,
                   (unsigned long long)r->value, why);
    if (st->depth >= CT_INFO_DEPTH_MAX)
        return bad(err, errlen, at, "%s nested deeper than %u",
                   keys[r->key].name, (unsigned)CT_INFO_DEPTH_MAX);
    if (r->key == CT_INFO_IMAGE) {
        st->images++;
        st->last_image = (uint32_t)r->value;
    }
    st->stack[st->depth++] = (struct info_frame){
        r->key, 0, (uint32_t)r->value, 0, 0};
    return INFO_ACCEPTED;
}

static int end(struct info_stream *st, const struct ct_info_rec *r,
               char *err, size_t errlen, size_t at)
{
    const struct info_frame *f;
    uint64_t missing;

    if (st->depth == 0 || st->stack[st->depth - 1].key != r->key)
        return bad(err, errlen, at, "end of %s, which is not open",
                   keys[r->key].name);
    f = &st->stack[st->depth - 1];
    missing = required(f) & ~f->seen;
    if (missing)
        return bad(err, errlen, at, "%s closed without %s",
                   keys[r->key].name,
                   keys[__builtin_ctzll(missing)].name);
    st->depth--;
    return INFO_ACCEPTED;
}

/* A record's value and text; *size is its length with text and padding. */
static int value(const struct ct_info_rec *r, const uint8_t *p, size_t left,
                 size_t *size, char *err, size_t errlen, size_t at)
{
    const struct key_def *d = &keys[r->key];
    bool text = d->type == CT_INFO_T_STR || d->type == CT_INFO_T_REASON;
    size_t padded = ((size_t)r->len + 7) & ~(size_t)7;

    if (!text && r->len)
        return bad(err, errlen, at, "%s carries %u bytes of text", d->name,
                   (unsigned)r->len);
    if (text && (r->len > d->hi || r->len < (d->type == CT_INFO_T_STR
                                                 ? d->lo : 0)))
        return bad(err, errlen, at, "%s text of %u bytes (%llu..%llu)",
                   d->name, (unsigned)r->len, (unsigned long long)d->lo,
                   (unsigned long long)d->hi);
    if (padded > left - sizeof *r)
        return bad(err, errlen, at, "%s text runs past the batch", d->name);
    const uint8_t *t = p + sizeof *r;
    if (memchr(t, '\0', r->len))
        return bad(err, errlen, at, "%s text holds a NUL byte", d->name);
    for (size_t i = r->len; i < padded; i++)
        if (t[i])
            return bad(err, errlen, at, "%s padding is not zero", d->name);
    if (d->type == CT_INFO_T_STR
            ? r->value != 0
            : d->type == CT_INFO_T_REASON
                  ? r->value < d->lo || r->value >= CT_SAFETY_COUNT
                  : r->value < d->lo || r->value > d->hi)
        return bad(err, errlen, at, "%s value %llu out of range", d->name,
                   (unsigned long long)r->value);
    *size = sizeof *r + padded;
    return INFO_ACCEPTED;
}

/* One record at p (left bytes remain in the batch). */
static int record(struct info_stream *st, const struct vmm_files *files,
                  const uint8_t *p, size_t left, size_t *size, char *err,
                  size_t errlen, size_t at)
{
    struct ct_info_rec r;
    const struct key_def *d;
    int v;

    if (left < sizeof r)
        return bad(err, errlen, at, "truncated (%zu bytes)", left);
    memcpy(&r, p, sizeof r);
    if (r.key == 0 || r.key >= CT_INFO_KEY_COUNT || !keys[r.key].name)
        return bad(err, errlen, at, "unknown key %u", (unsigned)r.key);
    d = &keys[r.key];
    if (r.reserved0)
        return bad(err, errlen, at, "%s reserved byte set", d->name);
    bool object = d->type == CT_INFO_T_BEGIN;
    if (object ? r.type != CT_INFO_T_BEGIN && r.type != CT_INFO_T_END
               : r.type != d->type)
        return bad(err, errlen, at, "%s has type %u, not %u", d->name,
                   (unsigned)r.type, (unsigned)d->type);
    if (object && (r.len || (r.type == CT_INFO_T_END && r.value)))
        return bad(err, errlen, at, "%s carries a value or text", d->name);
    if (object && r.type == CT_INFO_T_END) {
        *size = sizeof r;
        return end(st, &r, err, errlen, at);
    }
    if (!object && (v = value(&r, p, left, size, err, errlen, at)) != 0)
        return v;
    if (!(place(st) & d->where))
        return bad(err, errlen, at, "%s is not allowed here", d->name);
    struct info_frame *f = st->depth ? &st->stack[st->depth - 1] : NULL;
    if (f && f->key == CT_INFO_IMAGE && !f->seen &&
        r.key != CT_INFO_FORMAT)
        return bad(err, errlen, at, "%s before the image's format", d->name);
    if (f && !d->repeats && (f->seen & K(r.key)))
        return bad(err, errlen, at, "%s given twice", d->name);
    if (f && r.key == CT_INFO_UNSAFE && ++f->reasons > 64)
        return bad(err, errlen, at, "more than 64 reasons in one image");
    if (f) {
        f->seen |= K(r.key);
        if (r.key == CT_INFO_FORMAT)
            f->format = (uint32_t)r.value;
    }
    if (object) {
        *size = sizeof r;
        return begin(st, files, &r, err, errlen, at);
    }
    return INFO_ACCEPTED;
}

int info_stream_add(struct info_stream *st, const struct vmm_files *files,
                    const uint8_t *p, size_t len, char *err, size_t errlen)
{
    size_t off = 0, size = 0;

    if (len < CT_INFO_REC_SIZE || len > CT_INFO_BATCH_MAX || len % 8)
        return bad(err, errlen, st->used, "batch of %zu bytes", len);
    if (len > CT_INFO_TOTAL_MAX - st->used)
        return INFO_LIMIT;
    while (off < len) {
        int v = record(st, files, p + off, len - off, &size, err, errlen,
                       st->used + off);
        if (v != INFO_ACCEPTED)
            return v;
        off += size;
    }
    memcpy(st->buf + st->used, p, len);
    st->used += len;
    return INFO_ACCEPTED;
}

int info_stream_done(const struct info_stream *st, char *err, size_t errlen)
{
    if (st->depth)
        return bad(err, errlen, st->used, "%s still open at the end",
                   keys[st->stack[st->depth - 1].key].name);
    if (!st->images)
        return bad(err, errlen, st->used, "no image described");
    return INFO_ACCEPTED;
}
