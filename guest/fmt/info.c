/* The guest's info records: built in a batch, sent with CT_CALL_INFO. */
#include "info.h"

#include <stdarg.h>

#include "../rt/rt.h"

/* 64 KiB batches: a few calls even for thousands of vmdk extents. */
#define INFO_BATCH (64u * 1024u)

int fmt_info_init(struct fmt_info *s, const struct fmt_env *env)
{
    *s = (struct fmt_info){.env = env, .cap = INFO_BATCH};
    s->buf = fmt_alloc(env, s->cap, "info", "record batch");
    return s->buf ? G_OK : G_ENOMEM;
}

int fmt_info_flush(struct fmt_info *s)
{
    const struct ct_ops *ops = s->env->ops;
    int ret;

    if (s->used == 0)
        return G_OK;
    ret = ops->info(ops->ctx, s->buf, s->used);
    s->used = 0;
    if (ret == CT_ELIMIT)
        return g_fail(s->env->err, G_ENOSPC,
                      "info: the description exceeds the host's limit of %u "
                      "bytes",
                      (unsigned)CT_INFO_TOTAL_MAX);
    if (ret != CT_OK)
        return g_fail(s->env->err, G_EIO, "info: host refused the records: "
                                          "%s",
                      ct_result_str(ret));
    return G_OK;
}

static int put(struct fmt_info *s, uint16_t key, uint8_t type, uint64_t value,
               const char *text, uint32_t len)
{
    int ret;

    if (len > CT_INFO_STR_MAX) /* the host's cap: longer text is cut */
        len = CT_INFO_STR_MAX;
    uint64_t pad = ((uint64_t)len + 7) & ~7ull;
    uint64_t need = CT_INFO_REC_SIZE + pad;
    if (s->used + need > s->cap && (ret = fmt_info_flush(s)) != G_OK)
        return ret;
    if (need > s->cap)
        return g_fail(s->env->err, G_EINVAL, "info: record of %llu bytes",
                      (unsigned long long)need);
    uint8_t *p = s->buf + s->used;
    struct ct_info_rec rec = {key, type, 0, len, value};
    memcpy(p, &rec, sizeof rec);
    if (len)
        memcpy(p + CT_INFO_REC_SIZE, text, len);
    memset(p + CT_INFO_REC_SIZE + len, 0, (size_t)(pad - len));
    s->used += need;
    return G_OK;
}

int fmt_info_begin(struct fmt_info *s, uint16_t key, uint64_t value)
{
    return put(s, key, CT_INFO_T_BEGIN, value, 0, 0);
}

int fmt_info_end(struct fmt_info *s, uint16_t key)
{
    return put(s, key, CT_INFO_T_END, 0, 0, 0);
}

int fmt_info_u64(struct fmt_info *s, uint16_t key, uint64_t v)
{
    return put(s, key, CT_INFO_T_U64, v, 0, 0);
}

int fmt_info_bool(struct fmt_info *s, uint16_t key, bool v)
{
    return put(s, key, CT_INFO_T_BOOL, v, 0, 0);
}

int fmt_info_enum(struct fmt_info *s, uint16_t key, uint64_t v)
{
    return put(s, key, CT_INFO_T_ENUM, v, 0, 0);
}

int fmt_info_str(struct fmt_info *s, uint16_t key, const char *p,
                 uint32_t len)
{
    uint32_t n = 0;
    while (n < len && p[n]) /* a C string to qemu: it ends at a NUL */
        n++;
    return put(s, key, CT_INFO_T_STR, 0, p, n);
}

int fmt_info_reason(struct fmt_info *s, uint32_t rule, const char *detail)
{
    uint32_t n = detail ? (uint32_t)rt_strlen(detail) : 0;
    if (n > CT_MSG_MAX)
        n = CT_MSG_MAX;
    return put(s, CT_INFO_UNSAFE, CT_INFO_T_REASON, rule, detail, n);
}

int fmt_info_reasonf(struct fmt_info *s, uint32_t rule, const char *fmt, ...)
{
    char msg[CT_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    rt_vfmt(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fmt_info_reason(s, rule, msg);
}

uint8_t *fmt_info_scratch(struct fmt_info *s, uint64_t len)
{
    if (len > s->scratch_cap) { /* the arena never frees: grow rarely */
        s->scratch = fmt_io_alloc(s->env, len, "info", "check buffer");
        s->scratch_cap = s->scratch ? len : 0;
    }
    return s->scratch;
}

int fmt_ranges_init(struct fmt_ranges *m, struct fmt_info *s, uint32_t cap)
{
    if (cap > s->ranges_cap) { /* the arena never frees: grow rarely */
        s->ranges = fmt_alloc(s->env, (uint64_t)cap * sizeof *s->ranges,
                              "info", "metadata ranges");
        if (!s->ranges)
            return G_ENOMEM;
        s->ranges_cap = cap;
    }
    *m = (struct fmt_ranges){s->ranges, 0, cap, false};
    return G_OK;
}

void fmt_ranges_add(struct fmt_ranges *m, uint64_t off, uint64_t len,
                    const char *what)
{
    if (len == 0)
        return;
    if (m->n == m->cap) {
        m->full = true;
        return;
    }
    m->r[m->n++] = (struct fmt_range){off, len, what};
}

/* Heap sort by offset: no libc in the guest, and n may be large. */
static void sift(struct fmt_range *r, uint32_t i, uint32_t n)
{
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && r[c + 1].off > r[c].off)
            c++;
        if (r[i].off >= r[c].off)
            return;
        struct fmt_range t = r[i];
        r[i] = r[c];
        r[c] = t;
        i = c;
    }
}

static void sort_ranges(struct fmt_range *r, uint32_t n)
{
    for (uint32_t i = n / 2; i-- > 0;)
        sift(r, i, n);
    for (uint32_t end = n; end-- > 1;) {
        struct fmt_range t = r[0];
        r[0] = r[end];
        r[end] = t;
        sift(r, 0, end);
    }
}

static bool overlap(const struct fmt_range *a, uint64_t off, uint64_t len)
{
    return off < a->off + a->len && a->off < off + len;
}

int fmt_ranges_check(struct fmt_ranges *m, struct fmt_info *s,
                     const char *fmt, bool *bad)
{
    *bad = false;
    if (m->full) {
        *bad = true;
        return fmt_info_reasonf(s, CT_SAFETY_UNCHECKED,
                                "%s: more than %u metadata tables", fmt,
                                (unsigned)m->cap);
    }
    sort_ranges(m->r, m->n);
    for (uint32_t i = 1; i < m->n; i++) {
        const struct fmt_range *a = &m->r[i - 1], *b = &m->r[i];
        if (!overlap(a, b->off, b->len))
            continue;
        *bad = true;
        return fmt_info_reasonf(s, CT_SAFETY_METADATA,
                                "%s: %s at offset %llu overlaps the %s at "
                                "offset %llu",
                                fmt, b->what, (unsigned long long)b->off,
                                a->what, (unsigned long long)a->off);
    }
    return G_OK;
}

const struct fmt_range *fmt_ranges_find(const struct fmt_ranges *m,
                                        uint64_t off, uint64_t len)
{
    uint32_t lo = 0, hi = m->n;

    /* the first range that ends after off; ranges do not overlap */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (m->r[mid].off + m->r[mid].len <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->n && overlap(&m->r[lo], off, len) ? &m->r[lo] : NULL;
}
