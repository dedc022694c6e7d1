/*
 * Format drivers: readers turn an image into its virtual disk, writers turn
 * a virtual disk into an image. A driver talks to the host only through the
 * ct_ops in its env, and allocates only from the env's arenas.
 */
#ifndef INSTAR_GUEST_FMT_H
#define INSTAR_GUEST_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../ct_ops.h"
#include "../err.h"
#include "../rt/arena.h"
#include "../rt/par.h"
#include "limits.h"

struct qcow2_chain;
struct fmt_info;

/*
 * What a reader does with the files an image refers to besides its own
 * extents: backing files, parents, external data files (env->refs).
 */
enum fmt_refs {
    FMT_REFS_OPEN = 0, /* dd: open them; a refusal fails the open */
    FMT_REFS_NAME,     /* info: open none, keep their names */
    FMT_REFS_CHAIN     /* info --backing-chain: open backing files and
                          parents (a host refusal is noted in
                          backing_refused, not an error); never a data
                          file */
};

/*
 * What the readers of one chain (the input and every file it refers to)
 * share. They never read side by side: a reader runs only inside the
 * engine's read or inside the read of the image it backs, so buffers that
 * grow with an image's cluster size can serve the whole chain instead of
 * being multiplied by its depth.
 */
struct fmt_chain {
    struct qcow2_chain *qcow2; /* made by the first qcow2 reader set up */
};

struct fmt_env {
    const struct ct_ops *ops;
    struct g_error *err;
    struct arena *heap; /* driver state, tables, zlib state */
    struct arena *io;   /* buffers the host reads into (I/O area) */
    struct par *par;    /* work sharing between vCPUs; NULL: serial */
    uint32_t files_max; /* handles the host can grant, the input included
                           (boot info); 0: CT_HANDLES_MAX */
    struct fmt_chain *chain; /* NULL: each reader keeps its own buffers */
    uint32_t refs;           /* enum fmt_refs */
};

/* Where a stretch of virtual disk comes from (a reader's block status). */
enum fmt_extent_kind {
    FMT_EXTENT_DATA,  /* only the reader's read() can produce it (compressed,
                         merged with a bitmap, ...) */
    FMT_EXTENT_ZERO,  /* reads as zeros */
    FMT_EXTENT_PLAIN  /* the bytes are file `handle` at `file_off`, as is */
};

struct fmt_extent {
    uint32_t kind;     /* enum fmt_extent_kind */
    uint32_t handle;   /* PLAIN: the file */
    uint64_t file_off; /* PLAIN: where the range starts in it */
    uint64_t len;      /* 1 .. the length asked for */
};

struct fmt_reader {
    const char *name;   /* format name for messages */
    uint64_t vsize;     /* virtual size in bytes */
    /* Fills exactly len bytes of virtual disk at off into buf; bytes past
     * the virtual size read as zeros. buf may be any guest memory when the
     * driver copies, but to let the host pread straight into it callers
     * pass I/O-area buffers (the engine always does). */
    int (*read)(struct fmt_reader *r, uint64_t off, void *buf, uint64_t len);
    /* Says what [off, off + len) starts with: e->len bytes (>= 1) of one
     * kind. Plain ranges need no guest memory: the host copies them
     * straight into the output. NULL: everything is DATA. Past vsize:
     * ZERO. */
    int (*extent)(struct fmt_reader *r, uint64_t off, uint64_t len,
                  struct fmt_extent *e);
    const struct fmt_env *env;
    uint32_t handle;
    uint64_t file_size;
    unsigned depth;     /* 0 = the input, 1 = its backing file, ... */
    void *priv;         /* the driver's state */
    uint32_t format;    /* CT_FMT_* (set by fmt_open) */
    /* `instar info`: the reader's own facts and safety checks as records
     * (fmt/info.h); NULL: only what every image has. */
    int (*info)(struct fmt_reader *r, struct fmt_info *s);
    /* The image unallocated data comes from (backing file, parent) once
     * opened (fmt_open_ref); NULL when there is none or it was not
     * opened (env->refs). */
    struct fmt_reader *backing;
    bool backing_refused; /* FMT_REFS_CHAIN: the host refused it */
};

/* What a writer stamps into its output; the boot info supplies it. */
struct fmt_write_opts {
    uint64_t unix_time;      /* seconds since 1970 (vpc timestamp) */
    const uint8_t *entropy;  /* FMT_ENTROPY_LEN random bytes (UUIDs, CID) */
    const char *out_name;    /* the last component of of= (vmdk extent) */
    uint32_t out_name_len;
    /* The size of the requests qemu-img would write in (dd: bs): where
     * qemu puts a qcow2 refcount block past 2 GiB of file depends on it.
     * 0: no preference. */
    uint64_t request_size;
    /* convert's -S: runs of zeros at least this long may stay
     * unallocated; 0 for dd and for a dense convert (-S 0), whose every
     * byte qemu-img writes (a compressing writer then compresses zeros
     * too). */
    uint64_t sparse_min;
    /* The output's shape (convert -o, -c); all zero (or NULL) means
     * qemu-img create's defaults, which is what dd writes. Writers read
     * it through fmt_params(). */
    const struct ct_output_params *params;
};

#define FMT_ENTROPY_LEN 32u

/*
 * A writer turns a virtual disk of vsize bytes into an image file, written
 * through env->ops->write and nothing else. The engine's promises (checked
 * by fmt_writer_write/_zero, which the engine calls instead of the
 * function pointers):
 *  - write() and zero() cover [0, data_end) in order: each call starts
 *    where the previous one ended, with any length (not whole sectors);
 *  - zero(off, len) says [off, off + len) is all zeros and may stay
 *    unallocated (sparse outputs: convert). dd never calls it: its output
 *    is dense, and zeros are written like any data, as qemu-img dd does;
 *  - finish() comes once, after the last call. [data_end, vsize) reads as
 *    zeros and stays unallocated (vpc's CHS padding). finish writes what
 *    depends on the whole image (tables of the last span, footers) and
 *    says how large the file is; the engine declares that to the host
 *    (end_output), which may extend the file with a hole.
 * A writer holds metadata only for the span it is filling (an L2 table, a
 * grain table, a stretch of BAT): a table is written when its span is
 * done, so memory does not grow with the image. Writers may rely on their
 * vsize having passed output_vsize() (shared/output_bound.h), and must
 * never write past output_bound(): the host stops the run if they do.
 */
struct fmt_writer {
    const char *name;
    uint64_t vsize;
    const struct fmt_env *env;
    const struct fmt_write_opts *opts;
    void *priv; /* the writer's state */
    int (*write)(struct fmt_writer *w, uint64_t off, const void *buf,
                 uint64_t len);
    int (*zero)(struct fmt_writer *w, uint64_t off, uint64_t len);
    int (*finish)(struct fmt_writer *w, uint64_t *file_size);
    /* Like write() without the data: takes [off, off + len) as written and
     * says where its first *n bytes (a contiguous run, 1 .. len) go in the
     * file; the engine then puts them there itself (a host copy, or
     * allocated zeros). NULL: the engine goes through write(). */
    int (*place)(struct fmt_writer *w, uint64_t off, uint64_t len,
                 uint64_t *file_off, uint64_t *n);
    uint64_t pos; /* where the next write or zero must start (engine) */
    /* Set by the engine (fmt_writer_write_stable) while write() gets a
     * buffer in its slots, which it leaves unchanged until the
     * write-behinds made from them are done (ABI 10): the writer may pass
     * such bytes on with fmt_out_write_data, which the host then writes
     * while the engine reads on. NULL otherwise. */
    struct fmt_stable *stable;
    /* Optional: the engine is about to reuse [p, p + len) of its slots;
     * a writer that still points into it (a held request) copies what it
     * needs. */
    int (*release)(struct fmt_writer *w, const uint8_t *p, uint64_t len);
};

/* The engine's buffer as the slots it reads into in turn. */
#define FMT_SLOTS_MAX 3u
struct fmt_stable {
    const uint8_t *base;
    uint64_t slot;      /* bytes per slot */
    unsigned slots;     /* 1 .. FMT_SLOTS_MAX */
    uint64_t ticket[FMT_SLOTS_MAX]; /* the last write-behind made from
                                       each slot */
};

/* Opens a writer for `format` with virtual size vsize, allocated from
 * env->heap; G_ENOTSUP for a format without a writer. */
int fmt_writer_open(const struct fmt_env *env, uint32_t format,
                    uint64_t vsize, const struct fmt_write_opts *opts,
                    struct fmt_writer **out);
/* The engine's calls: the order promise is checked, then passed on. */
int fmt_writer_write(struct fmt_writer *w, uint64_t off, const void *buf,
                     uint64_t len);
/* write() with buf in st's slots (or never changed), as above. */
int fmt_writer_write_stable(struct fmt_writer *w, struct fmt_stable *st,
                            uint64_t off, const void *buf, uint64_t len);
int fmt_writer_release(struct fmt_writer *w, const uint8_t *p, uint64_t len);
int fmt_writer_zero(struct fmt_writer *w, uint64_t off, uint64_t len);
int fmt_writer_place(struct fmt_writer *w, uint64_t off, uint64_t len,
                     uint64_t *file_off, uint64_t *n);
int fmt_writer_finish(struct fmt_writer *w, uint64_t *file_size);

/* For writers: the output's shape (w->opts->params, or qemu-img create's
 * defaults when the caller gave none). */
const struct ct_output_params *fmt_params(const struct fmt_writer *w);

/* The output options a writer takes, for fmt_params_only(). */
enum fmt_takes {
    FMT_TAKES_CLUSTER_SIZE = 1u << 0, /* cluster_bits */
    FMT_TAKES_COMPAT = 1u << 1,       /* version */
    FMT_TAKES_SUBFORMAT = 1u << 2,
    FMT_TAKES_ADAPTER = 1u << 3,
    FMT_TAKES_BLOCK_SIZE = 1u << 4,
    FMT_TAKES_COMPRESS = 1u << 5,     /* CT_OUT_COMPRESS */
    FMT_TAKES_FORCE_SIZE = 1u << 6    /* CT_OUT_FORCE_SIZE */
};

/* For writers (w->name set): G_ENOTSUP, naming the option, when the shape
 * sets one the writer does not take (`takes`: FMT_TAKES_* bits), so that
 * no option is ever ignored. The values of the options it takes are the
 * writer's to check. */
int fmt_params_only(const struct fmt_writer *w, unsigned takes);

/* For writers: writes len bytes of buf (I/O area) at file offset off of
 * the output; a failure names the format and the offset. */
int fmt_out_write(const struct fmt_writer *w, uint64_t off, const void *buf,
                  uint64_t len);
/* The same for bytes of the buffer write() was given: a write-behind when
 * the engine said that buffer is stable (w->stable), else a write. */
int fmt_out_write_data(struct fmt_writer *w, uint64_t off, const void *buf,
                       uint64_t len);

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

/* Bytes at the end of a file that fmt_probe_tail looks at. */
#define FMT_PROBE_TAIL_LEN 512u

/* For an image the head calls raw: what its last FMT_PROBE_TAIL_LEN bytes
 * (tail) and its name say. A DMG carries its "koly" trailer there, and
 * qemu picks its dmg driver for a name ending in ".dmg". */
struct fmt_probe_result fmt_probe_tail(const uint8_t *tail, size_t n,
                                       bool dmg_name);

/* ISO 9660: the primary volume descriptor's "CD001" in sector 16 (of
 * 2048 bytes), after its type byte. Not an image format to qemu (it reads
 * an ISO as raw), but a file that is an ISO and another format at once is
 * a polyglot that tools may read either way. */
#define FMT_PROBE_ISO_OFF 0x8001u

/* For info's format-confusion check: the names of every format whose
 * signature the file carries (head: its first FMT_PROBE_LEN bytes, tail:
 * its last FMT_PROBE_TAIL_LEN, iso: 5 bytes at FMT_PROBE_ISO_OFF), at
 * most max, in a fixed order; a name may repeat. */
uint32_t fmt_probe_all(const uint8_t *head, size_t n, const uint8_t *tail,
                       size_t tn, const uint8_t *iso, size_t isn,
                       const char **names, uint32_t max);

/* True when the name ends in ".dmg" (qemu's dmg probe looks at names). */
bool fmt_name_is_dmg(const char *name, size_t len);

/*
 * Opens file `handle` as `format` (CT_FMT_PROBE: detect from content) at
 * chain depth `depth`, allocating the reader from env->heap. Drivers call
 * this for backing files with depth + 1 (> LIMIT_CHAIN_DEPTH is refused).
 */
int fmt_open(const struct fmt_env *env, uint32_t handle, uint32_t format,
             unsigned depth, struct fmt_reader **out);

/* fmt_open for a file known by name: when probed, a name ending in ".dmg"
 * counts as qemu counts it (dmg_name, see fmt_name_is_dmg). */
int fmt_open_named(const struct fmt_env *env, uint32_t handle,
                   uint32_t format, unsigned depth, bool dmg_name,
                   struct fmt_reader **out);

/* What another reader (a backing file, a parent; NULL: none) has at
 * [off, off + len): its extent, zeros past its end or without one, data
 * when it has no extents. For drivers' extent(). */
int fmt_extent_of(struct fmt_reader *r, uint64_t off, uint64_t len,
                  struct fmt_extent *e);

/* Asks the host for the file `name` (name_len bytes, not NUL-terminated)
 * referenced by the image `parent`; fmt names the format for messages. */
int fmt_open_backing(const struct fmt_env *env, uint32_t parent,
                     const char *name, uint32_t name_len, const char *fmt,
                     uint32_t *handle);

/* Opens what image r takes unallocated data from (a backing file or
 * parent named `name`) as env->refs says, probing when format is
 * CT_FMT_PROBE: FMT_REFS_OPEN opens it (a refusal fails); FMT_REFS_NAME
 * opens nothing (*out = NULL); FMT_REFS_CHAIN opens it, and a host refusal
 * sets r->backing_refused (*out = NULL). Sets r->backing too. */
int fmt_open_ref(const struct fmt_env *env, struct fmt_reader *r,
                 const char *name, uint32_t name_len, uint32_t format,
                 const char *fmt, struct fmt_reader **out);

/* Reads exactly len bytes of file `handle` at off into buf (I/O area).
 * A short read is corruption: "FMT: WHAT at offset N is past the end of
 * the file". */
int fmt_pread(const struct fmt_env *env, uint32_t handle, uint64_t off,
              void *buf, uint64_t len, const char *fmt, const char *what);

/* Reads up to len bytes; *got says how many (past EOF: fewer). */
int fmt_pread_partial(const struct fmt_env *env, uint32_t handle,
                      uint64_t off, void *buf, uint64_t len, uint64_t *got,
                      const char *fmt);

/* Allocation helpers: fail with "FMT: out of memory for WHAT". */
void *fmt_alloc(const struct fmt_env *env, uint64_t size, const char *fmt,
                const char *what);
void *fmt_io_alloc(const struct fmt_env *env, uint64_t size, const char *fmt,
                   const char *what);

/* Little/big-endian decoding: never cast image bytes to structs. */
static inline uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}
static inline uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}
/* ... and encoding, for the writers. */
static inline void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void put_le32(uint8_t *p, uint32_t v)
{
    put_le16(p, (uint16_t)v);
    put_le16(p + 2, (uint16_t)(v >> 16));
}
static inline void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* Big-endian encoding, for writers. */
static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
    put_be16(p, (uint16_t)(v >> 16));
    put_be16(p + 2, (uint16_t)v);
}
static inline void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

/* Drivers. Each validates its whole header in open; read may then rely on
 * the invariants open established. */
int fmt_raw_open(const struct fmt_env *env, uint32_t handle,
                 struct fmt_reader *r);
int fmt_qcow2_open(const struct fmt_env *env, uint32_t handle,
                   struct fmt_reader *r);
int fmt_vmdk_open(const struct fmt_env *env, uint32_t handle,
                  struct fmt_reader *r);
int fmt_vpc_open(const struct fmt_env *env, uint32_t handle,
                 struct fmt_reader *r);
int fmt_vhdx_open(const struct fmt_env *env, uint32_t handle,
                  struct fmt_reader *r);

/* Writers: set name, write, zero, finish and priv on w (vsize, env and
 * opts are set by fmt_writer_open). */
int fmt_raw_writer_open(struct fmt_writer *w);
int fmt_qcow2_writer_open(struct fmt_writer *w);
int fmt_vpc_writer_open(struct fmt_writer *w);
int fmt_vmdk_writer_open(struct fmt_writer *w);
int fmt_vhdx_writer_open(struct fmt_writer *w);

#endif
