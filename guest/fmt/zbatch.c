#include "zbatch.h"
#include "../rt/rt.h"

void zbatch_init(struct zbatch *z, const struct fmt_env *env,
                 const char *fmt, const char *unit, int mode,
                 bool allow_partial, bool exact)
{
    memset(z, 0, sizeof *z);
    z->env = env;
    z->fmt = fmt;
    z->unit = unit;
    z->mode = mode;
    z->allow_partial = allow_partial;
    z->exact = exact;
}

int zbatch_setup(struct zbatch *z, uint64_t unit_max, uint64_t src_max)
{
    const struct fmt_env *env = z->env;

    if (!z->jobs && !(z->jobs = fmt_alloc(env, ZBATCH_JOBS * sizeof *z->jobs,
                                          z->fmt, "decompression queue")))
        return G_ENOMEM;
    for (uint32_t i = 0; i < par_workers(env->par); i++)
        if (!z->zw[i] && !(z->zw[i] = fmt_inflate_new(env, z->mode, z->fmt)))
            return G_ENOMEM;
    if (z->unit_max >= unit_max && z->src_max >= src_max)
        return G_OK;
    if (unit_max < z->unit_max)
        unit_max = z->unit_max;
    if (src_max < z->src_max)
        src_max = z->src_max;
    /* A window refilled at a unit's start holds it whole, and with units
     * much smaller than their bound (the usual case) many more. */
    uint64_t cap = src_max > ZBATCH_WINDOW ? src_max : ZBATCH_WINDOW;
    uint8_t *win = fmt_io_alloc(env, cap, z->fmt, z->unit);
    uint8_t *part = win ? fmt_io_alloc(env, unit_max, z->fmt,
                                       "decompressed unit")
                        : NULL;
    if (!part)
        return G_ENOMEM;
    z->win = win;
    z->win_cap = cap;
    z->win_len = 0;
    z->part = part;
    z->part_valid = false;
    z->unit_max = unit_max;
    z->src_max = src_max;
    return G_OK;
}

int zbatch_bytes(struct zbatch *z, uint32_t handle, uint64_t off,
                 uint64_t len, const uint8_t **src, uint64_t *got)
{
    int ret;
    bool held = z->win_len && z->win_handle == handle && off >= z->win_off &&
                off - z->win_off <= z->win_len &&
                len <= z->win_len - (off - z->win_off);

    if (!held) {
        uint64_t n = 0;
        /* Moving the window would pull the source from under queued
         * jobs. */
        if (z->njobs && (ret = zbatch_flush(z)) != G_OK)
            return ret;
        z->win_len = 0; /* empty until the read succeeds */
        ret = fmt_pread_partial(z->env, handle, off, z->win, z->win_cap, &n,
                                z->fmt);
        if (ret != G_OK)
            return ret;
        if (n < len) /* a unit's last sectors may lie past EOF */
            memset(z->win + n, 0, (size_t)(len - n));
        z->win_handle = handle;
        z->win_off = off;
        z->win_got = n;
        z->win_len = n > len ? n : len;
    }
    uint64_t file_end = z->win_off + z->win_got;
    *src = z->win + (off - z->win_off);
    *got = off >= file_end ? 0 : file_end - off < len ? file_end - off : len;
    return G_OK;
}

int zbatch_queue(struct zbatch *z, const uint8_t *src, uint64_t csize,
                 uint8_t *dst, uint64_t dst_size, uint64_t need,
                 uint64_t where)
{
    z->jobs[z->njobs++] = (struct zbatch_job){
        .src = src, .dst = dst, .csize = csize, .dst_size = dst_size,
        .need = need, .where = where};
    return z->njobs == ZBATCH_JOBS ? zbatch_flush(z) : G_OK;
}

static void job_run(void *ctx, uint32_t item, uint32_t worker)
{
    struct zbatch *z = ctx;
    struct zbatch_job *j = &z->jobs[item];
    j->ret = fmt_inflate_try(z->zw[worker], j->src, (size_t)j->csize, j->dst,
                             (size_t)j->dst_size, z->allow_partial, &j->st);
}

int zbatch_flush(struct zbatch *z)
{
    uint32_t n = z->njobs;
    char what[96];

    z->njobs = 0;
    par_run(z->env->par, n, job_run, z);
    for (uint32_t i = 0; i < n; i++) {
        struct zbatch_job *j = &z->jobs[i];
        if (j->ret != G_OK) {
            rt_fmt(what, sizeof what, "%s at offset %llu", z->unit,
                   (unsigned long long)j->where);
            return fmt_inflate_fail(z->zw[0], &j->st, what);
        }
        if (j->st.out < j->need)
            return g_fail(z->env->err, G_ECORRUPT,
                          "%s: %s at offset %llu decompresses to %llu bytes, "
                          "%s %llu",
                          z->fmt, z->unit, (unsigned long long)j->where,
                          (unsigned long long)j->st.out,
                          z->exact ? "not" : "expected",
                          (unsigned long long)j->need);
        if (j->st.out < j->dst_size)
            memset(j->dst + j->st.out, 0,
                   (size_t)(j->dst_size - j->st.out));
    }
    return G_OK;
}

void zbatch_drop(struct zbatch *z)
{
    z->njobs = 0;
}

int zbatch_part(struct zbatch *z, uint32_t handle, uint64_t where,
                uint64_t dst_size, uint64_t need, zbatch_fetch_fn fetch,
                void *ctx, const uint8_t **unit)
{
    const uint8_t *src;
    uint64_t csize;
    int ret;

    if (!(z->part_valid && z->part_handle == handle &&
          z->part_where == where)) {
        z->part_valid = false;
        if ((ret = fetch(ctx, &src, &csize)) != G_OK ||
            (ret = zbatch_queue(z, src, csize, z->part, dst_size, need,
                                where)) != G_OK ||
            (z->njobs && (ret = zbatch_flush(z)) != G_OK))
            return ret;
        z->part_handle = handle;
        z->part_where = where;
        z->part_valid = true;
    }
    *unit = z->part;
    return G_OK;
}
