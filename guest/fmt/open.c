/* The format registry: probe, pick the reader or writer, bound the chain
 * depth. */
#include "fmt.h"
#include "../rt/rt.h"

typedef int (*open_fn)(const struct fmt_env *, uint32_t, struct fmt_reader *);
typedef int (*writer_open_fn)(struct fmt_writer *);

/* One row a format: its name, its reader, its writer (NULL: none yet), and
 * whether the writer takes output parameters other than the defaults
 * (convert's -o and -c). The host refuses options for a format that takes
 * none; the guest checks again rather than trust that. */
static const struct {
    const char *name;
    open_fn open;
    writer_open_fn writer_open;
    bool params;
} drivers[CT_FMT_COUNT] = {
    [CT_FMT_RAW] = {"raw", fmt_raw_open, fmt_raw_writer_open, false},
    [CT_FMT_QCOW2] = {"qcow2", fmt_qcow2_open, fmt_qcow2_writer_open, true},
    [CT_FMT_VMDK] = {"vmdk", fmt_vmdk_open, fmt_vmdk_writer_open, true},
    [CT_FMT_VPC] = {"vpc", fmt_vpc_open, fmt_vpc_writer_open, true},
    [CT_FMT_VHDX] = {"vhdx", fmt_vhdx_open, fmt_vhdx_writer_open, true},
};

/* What the end of a file the head calls raw says (dmg). */
static int probe_tail(const struct fmt_env *env, uint32_t handle,
                      uint8_t *buf, bool dmg_name,
                      struct fmt_probe_result *p)
{
    const struct ct_ops *ops = env->ops;
    uint64_t size = 0, got = 0;
    int ret = ops->size(ops->ctx, handle, &size);

    if (ret != CT_OK)
        return g_fail(env->err, G_EIO, "probe: cannot get the file size: %s",
                      ct_result_str(ret));
    if (size >= FMT_PROBE_TAIL_LEN) {
        ret = fmt_pread_partial(env, handle, size - FMT_PROBE_TAIL_LEN, buf,
                                FMT_PROBE_TAIL_LEN, &got, "probe");
        if (ret != G_OK)
            return ret;
    }
    *p = fmt_probe_tail(buf, (size_t)got, dmg_name);
    return G_OK;
}

static int probe(const struct fmt_env *env, uint32_t handle, bool dmg_name,
                 uint32_t *fmt)
{
    /* One buffer for head and tail: the head is done with when the tail
     * is read. */
    uint8_t *buf = fmt_io_alloc(env, FMT_PROBE_LEN > FMT_PROBE_TAIL_LEN
                                         ? FMT_PROBE_LEN
                                         : FMT_PROBE_TAIL_LEN,
                                "probe", "image head");
    uint64_t got = 0;
    int ret;

    if (!buf)
        return G_ENOMEM;
    ret = fmt_pread_partial(env, handle, 0, buf, FMT_PROBE_LEN, &got,
                            "probe");
    if (ret != G_OK)
        return ret;
    struct fmt_probe_result p = fmt_probe(buf, (size_t)got);
    if (p.format == CT_FMT_RAW &&
        (ret = probe_tail(env, handle, buf, dmg_name, &p)) != G_OK)
        return ret;
    if (p.format == CT_FMT_PROBE)
        return g_fail(env->err, G_ENOTSUP,
                      "%s image: format not supported by instar", p.name);
    *fmt = p.format;
    return G_OK;
}

int fmt_open(const struct fmt_env *env, uint32_t handle, uint32_t format,
             unsigned depth, struct fmt_reader **out)
{
    return fmt_open_named(env, handle, format, depth, false, out);
}

int fmt_open_named(const struct fmt_env *env, uint32_t handle,
                   uint32_t format, unsigned depth, bool dmg_name,
                   struct fmt_reader **out)
{
    struct fmt_reader *r;
    int ret;

    if (depth > LIMIT_CHAIN_DEPTH)
        return g_fail(env->err, G_ECORRUPT,
                      "backing chain is deeper than %u images",
                      (unsigned)LIMIT_CHAIN_DEPTH);
    if (format == CT_FMT_PROBE &&
        (ret = probe(env, handle, dmg_name, &format)) < 0)
        return ret;
    if (format >= CT_FMT_COUNT || !drivers[format].open)
        return g_fail(env->err, G_EINVAL, "unknown format %u",
                      (unsigned)format);
    r = fmt_alloc(env, sizeof *r, drivers[format].name, "reader");
    if (!r)
        return G_ENOMEM;
    r->env = env;
    r->handle = handle;
    r->depth = depth;
    r->format = format;
    ret = drivers[format].open(env, handle, r);
    if (ret != G_OK)
        return ret;
    if (r->vsize > LIMIT_VSIZE)
        return g_fail(env->err, G_ECORRUPT,
                      "%s: virtual size %llu exceeds the limit %llu", r->name,
                      (unsigned long long)r->vsize,
                      (unsigned long long)LIMIT_VSIZE);
    *out = r;
    return G_OK;
}

int fmt_writer_open(const struct fmt_env *env, uint32_t format,
                    uint64_t vsize, const struct fmt_write_opts *opts,
                    struct fmt_writer **out)
{
    struct fmt_writer *w;
    int ret;

    if (format >= CT_FMT_COUNT || !drivers[format].name)
        return g_fail(env->err, G_EINVAL, "unknown output format %u",
                      (unsigned)format);
    if (!drivers[format].writer_open)
        return g_fail(env->err, G_ENOTSUP,
                      "output format '%s' is not supported yet",
                      drivers[format].name);
    w = fmt_alloc(env, sizeof *w, drivers[format].name, "writer");
    if (!w)
        return G_ENOMEM;
    w->vsize = vsize;
    w->env = env;
    w->opts = opts;
    static const struct ct_output_params defaults;
    if (!drivers[format].params &&
        memcmp(fmt_params(w), &defaults, sizeof defaults) != 0)
        return g_fail(env->err, G_ENOTSUP,
                      "%s takes no output options",
                      drivers[format].name);
    if ((ret = drivers[format].writer_open(w)) != G_OK)
        return ret;
    *out = w;
    return G_OK;
}

int fmt_extent_of(struct fmt_reader *r, uint64_t off, uint64_t len,
                  struct fmt_extent *e)
{
    if (!r || off >= r->vsize) {
        *e = (struct fmt_extent){FMT_EXTENT_ZERO, 0, 0, len};
        return G_OK;
    }
    if (len > r->vsize - off)
        len = r->vsize - off;
    if (!r->extent) {
        *e = (struct fmt_extent){FMT_EXTENT_DATA, 0, 0, len};
        return G_OK;
    }
    return r->extent(r, off, len, e);
}

static int check_name_len(const struct fmt_env *env, uint32_t name_len,
                          const char *fmt)
{
    if (name_len == 0 || name_len > LIMIT_NAME_LEN)
        return g_fail(env->err, G_ECORRUPT,
                      "%s: referenced file name length %u is invalid", fmt,
                      (unsigned)name_len);
    return G_OK;
}

/* Asks the host for a file; with `refused` a policy refusal is an answer
 * (*refused set, G_OK), not an error. */
static int request(const struct fmt_env *env, uint32_t parent,
                   const char *name, uint32_t name_len, const char *fmt,
                   uint32_t *handle, bool *refused)
{
    const struct ct_ops *ops = env->ops;
    char shown[128];
    uint32_t n = name_len < sizeof shown - 1 ? name_len : sizeof shown - 1;
    int ret;

    memcpy(shown, name, n);
    shown[n] = '\0';
    for (uint32_t i = 0; i < n; i++)
        if ((uint8_t)shown[i] < 0x20 || (uint8_t)shown[i] >= 0x7f)
            shown[i] = '?';
    if ((ret = check_name_len(env, name_len, fmt)) != G_OK)
        return ret;
    ret = ops->open_backing(ops->ctx, parent, name, name_len, handle);
    if (ret == CT_EPERM && refused) {
        *refused = true;
        return G_OK;
    }
    if (ret == CT_EPERM)
        return g_fail(env->err, G_EIO,
                      "%s: cannot open '%s': not found or not allowed (files "
                      "an image refers to must be in an allowed directory)",
                      fmt, shown);
    if (ret == CT_ELIMIT)
        return g_fail(env->err, G_EIO,
                      "%s: cannot open '%s': too many files referenced "
                      "(this run can open at most %u; the open-files limit, "
                      "ulimit -n, bounds it)",
                      fmt, shown,
                      (unsigned)(env->files_max ? env->files_max
                                                : CT_HANDLES_MAX));
    if (ret != CT_OK)
        return g_fail(env->err, G_EIO, "%s: cannot open '%s': %s", fmt,
                      shown, ct_result_str(ret));
    return G_OK;
}

int fmt_open_backing(const struct fmt_env *env, uint32_t parent,
                     const char *name, uint32_t name_len, const char *fmt,
                     uint32_t *handle)
{
    return request(env, parent, name, name_len, fmt, handle, NULL);
}

int fmt_open_ref(const struct fmt_env *env, struct fmt_reader *r,
                 const char *name, uint32_t name_len, uint32_t format,
                 const char *fmt, struct fmt_reader **out)
{
    bool refused = false;
    uint32_t h = 0;
    int ret;

    *out = NULL;
    if (env->refs == FMT_REFS_NAME) /* the name as dd would take it */
        return check_name_len(env, name_len, fmt);
    ret = request(env, r->handle, name, name_len, fmt, &h,
                  env->refs == FMT_REFS_CHAIN ? &refused : NULL);
    if (ret != G_OK)
        return ret;
    if (refused) {
        r->backing_refused = true;
        return G_OK;
    }
    /* qemu probes a backing file without a format by content and name. */
    ret = fmt_open_named(env, h, format, r->depth + 1,
                         fmt_name_is_dmg(name, name_len), out);
    r->backing = *out;
    return ret;
}

int fmt_pread_partial(const struct fmt_env *env, uint32_t handle,
                      uint64_t off, void *buf, uint64_t len, uint64_t *got,
                      const char *fmt)
{
    const struct ct_ops *ops = env->ops;
    int ret = ops->read(ops->ctx, handle, off, buf, len, got);
    if (ret != CT_OK)
        return g_fail(env->err, G_EIO,
                      "%s: read of %llu bytes at offset %llu failed: %s", fmt,
                      (unsigned long long)len, (unsigned long long)off,
                      ct_result_str(ret));
    if (*got > len)
        return g_fail(env->err, G_EIO,
                      "%s: host returned %llu bytes for a %llu-byte read", fmt,
                      (unsigned long long)*got, (unsigned long long)len);
    return G_OK;
}

int fmt_pread(const struct fmt_env *env, uint32_t handle, uint64_t off,
              void *buf, uint64_t len, const char *fmt, const char *what)
{
    uint64_t got = 0;
    int ret = fmt_pread_partial(env, handle, off, buf, len, &got, fmt);
    if (ret != G_OK)
        return ret;
    if (got != len)
        return g_fail(env->err, G_ECORRUPT,
                      "%s: %s at offset %llu (%llu bytes) is past the end of "
                      "the file",
                      fmt, what, (unsigned long long)off,
                      (unsigned long long)len);
    return G_OK;
}

void *fmt_alloc(const struct fmt_env *env, uint64_t size, const char *fmt,
                const char *what)
{
    void *p = arena_alloc(env->heap, size, 16);
    if (!p)
        g_fail(env->err, G_ENOMEM, "%s: out of memory for %s (%llu bytes)",
               fmt, what, (unsigned long long)size);
    return p;
}

void *fmt_io_alloc(const struct fmt_env *env, uint64_t size, const char *fmt,
                   const char *what)
{
    void *p = arena_alloc(env->io, size, 512);
    if (!p)
        g_fail(env->err, G_ENOMEM,
               "%s: out of I/O memory for %s (%llu bytes)", fmt, what,
               (unsigned long long)size);
    return p;
}
