/*
 * vmdk reader: monolithic sparse images (one "KDMV" extent with an
 * embedded descriptor, incl. streamOptimized), and text descriptor files
 * (monolithicFlat, twoGbMaxExtent*, vmfs*) listing FLAT/VMFS extents (raw,
 * with a sector offset) and SPARSE/VMFSSPARSE extents (KDMV files). A
 * parent named by parentFileNameHint supplies unallocated grains.
 *
 * Descriptor semantics follow what qemu-img 7.2 does, measured: keys are
 * found as substrings ("CID" also matches "parentCID"), only RW extent
 * lines count, RDONLY/NOACCESS/ZERO/VMFSRDM/VMFSRAW lines are skipped, the
 * size of a SPARSE extent is its header capacity. docs/format-coverage.md
 * lists the measurements.
 */
#include "info.h"
#include "vmdk.h"
#include "../rt/rt.h"

enum { EXT_FLAT, EXT_SPARSE };
/* The extent line's type, as qemu-img info names it ("" for the one
 * extent of a monolithic sparse file). */
enum { TYPE_NONE, TYPE_FLAT, TYPE_VMFS, TYPE_SPARSE, TYPE_VMFSSPARSE };
static const char *const type_names[] = {"", "FLAT", "VMFS", "SPARSE",
                                         "VMFSSPARSE"};

/* One extent line. Kept small: a descriptor may list LIMIT_VMDK_EXTENTS. */
struct vmdk_extent {
    uint64_t start, len;    /* virtual bytes */
    uint64_t flat_off;      /* FLAT: bytes into the file */
    uint64_t file_size;     /* FLAT */
    struct vmdk_sparse *sp; /* SPARSE */
    uint32_t handle;
    uint32_t file;          /* the first extent naming the same file */
    uint32_t name_off;      /* open only: the name in the descriptor */
    uint16_t name_len;      /* (at most 511 bytes) */
    uint8_t kind;
    uint8_t type;           /* TYPE_*, for info */
};

struct vmdk_state {
    const struct fmt_env *env;
    struct vmdk_extent *ext;
    uint32_t n;
    bool has_cid;
    uint32_t cid, parent_cid;
    struct fmt_reader *parent;
    uint32_t parent_real_cid;
    bool parent_cid_ok;
    uint8_t *scratch;       /* VMDK_SPARSE_SCRATCH bytes of I/O area */
    struct vmdk_shared *sh; /* the chain's; NULL: no sparse extent in it */
    /* for info: the descriptor's createType and parentFileNameHint */
    const char *create_type, *hint;
    uint32_t create_type_len, hint_len;
};

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
           c == '\r';
}

/* First occurrence of key in the text, or -1. */
static int64_t find(const char *s, uint32_t n, const char *key)
{
    size_t k = rt_strlen(key);
    for (uint32_t i = 0; i + k <= n; i++)
        if (memcmp(s + i, key, k) == 0)
            return i;
    return -1;
}

/* "KEY?VALUE": the value, read as hex the way scanf's %x does, starts one
 * character after the key (qemu's lookup). */
static int desc_hex(const struct fmt_env *env, const char *s, uint32_t n,
                    const char *key, uint32_t *v)
{
    int64_t at = find(s, n, key);
    uint64_t p, x = 0;
    bool neg = false, ovf = false;
    unsigned digits = 0;

    if (at < 0)
        return g_fail(env->err, G_ECORRUPT,
                      "vmdk: descriptor has no %s", key);
    p = (uint64_t)at + rt_strlen(key) + 1;
    while (p < n && is_ws(s[p]))
        p++;
    if (p < n && (s[p] == '+' || s[p] == '-'))
        neg = s[p++] == '-';
    if (p + 2 < n && s[p] == '0' && (s[p + 1] | 0x20) == 'x' &&
        rt_hexval(s[p + 2]) >= 0)
        p += 2;
    for (; p < n && rt_hexval(s[p]) >= 0; p++, digits++)
        if (x > UINT64_MAX >> 4)
            ovf = true;
        else
            x = x << 4 | (uint64_t)rt_hexval(s[p]);
    if (!digits)
        return g_fail(env->err, G_ECORRUPT,
                      "vmdk: descriptor %s has no hex value", key);
    if (ovf)
        x = UINT64_MAX;
    *v = (uint32_t)(neg ? 0 - x : x);
    return G_OK;
}

/* KEY="VALUE": the value starts two characters after the key and ends at
 * the next quote. 0: found, 1: absent, -1: not quoted. */
static int desc_value(const char *s, uint32_t n, const char *key,
                      const char **v, uint32_t *len)
{
    int64_t at = find(s, n, key);
    uint64_t p, q;

    if (at < 0)
        return 1;
    p = (uint64_t)at + rt_strlen(key) + 2;
    for (q = p; q < n && s[q] != '"'; q++)
        ;
    if (p > n || q >= n)
        return -1;
    *v = s + p;
    *len = (uint32_t)(q - p);
    return 0;
}

/* desc_value, failing on a value that is not quoted; found = false when
 * the key is absent. */
static int desc_str(const struct fmt_env *env, const char *s, uint32_t n,
                    const char *key, const char **v, uint32_t *len,
                    bool *found)
{
    int r = desc_value(s, n, key, v, len);

    *found = r == 0;
    if (r < 0)
        return g_fail(env->err, G_ECORRUPT,
                      "vmdk: descriptor %s value is not quoted", key);
    return G_OK;
}

/* One extent line, scanned like scanf("%10s %lld %10s \"%511[^\n\r\"]\"
 * %lld") over [p, e): the number of fields matched. */
struct ext_line {
    char access[11], type[11];
    int64_t sectors, offset;
    const char *name;
    uint32_t name_len;
};

static bool scan_word(const char **p, const char *e, char *out)
{
    unsigned n = 0;
    while (*p < e && is_ws(**p))
        (*p)++;
    while (*p < e && !is_ws(**p) && n < 10)
        out[n++] = *(*p)++;
    out[n] = '\0';
    return n > 0;
}

static bool scan_int(const char **p, const char *e, int64_t *v)
{
    bool neg = false;
    uint64_t x = 0, lim;
    unsigned digits = 0;
    while (*p < e && is_ws(**p))
        (*p)++;
    if (*p < e && (**p == '+' || **p == '-'))
        neg = *(*p)++ == '-';
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p < e && **p >= '0' && **p <= '9'; (*p)++, digits++) {
        uint64_t d = (uint64_t)(**p - '0');
        x = x > (lim - d) / 10 ? lim : x * 10 + d; /* saturate */
    }
    *v = neg ? (int64_t)(0 - x) : (int64_t)x;
    return digits > 0;
}

static int scan_line(const char *p, const char *e, struct ext_line *l)
{
    if (!scan_word(&p, e, l->access))
        return 0;
    if (!scan_int(&p, e, &l->sectors))
        return 1;
    if (!scan_word(&p, e, l->type))
        return 2;
    while (p < e && is_ws(*p))
        p++;
    if (p >= e || *p++ != '"')
        return 3;
    l->name = p;
    while (p < e && *p != '"' && *p != '\r' && *p != '\n' &&
           p - l->name < 511)
        p++;
    l->name_len = (uint32_t)(p - l->name);
    if (l->name_len == 0)
        return 3;
    if (p >= e || *p++ != '"')
        return 4;
    return scan_int(&p, e, &l->offset) ? 5 : 4;
}

static bool streq(const char *a, const char *b)
{
    size_t n = rt_strlen(b);
    return rt_strlen(a) == n && memcmp(a, b, n) == 0;
}

/* Classifies a line: 1 = an extent to open (kind set), 0 = skipped. */
static int classify(const struct fmt_env *env, const char *p, const char *e,
                    struct ext_line *l, int *kind, int *type)
{
    int m = scan_line(p, e, l);
    bool flat;

    if (m < 4 || !streq(l->access, "RW"))
        return 0;
    flat = streq(l->type, "FLAT");
    if ((flat && (m != 5 || l->offset < 0)) || (!flat && m != 4)) {
        uint32_t shown = (uint32_t)(e - p) > 80 ? 80 : (uint32_t)(e - p);
        char line[81];
        memcpy(line, p, shown);
        line[shown] = '\0';
        for (uint32_t i = 0; i < shown; i++)
            if ((uint8_t)line[i] < 0x20 || (uint8_t)line[i] >= 0x7f)
                line[i] = '?';
        return g_fail(env->err, G_ECORRUPT, "vmdk: invalid extent line: %s",
                      line);
    }
    if (l->sectors <= 0)
        return 0;
    if (flat || streq(l->type, "VMFS")) {
        *kind = EXT_FLAT;
        *type = flat ? TYPE_FLAT : TYPE_VMFS;
    } else if (streq(l->type, "SPARSE") || streq(l->type, "VMFSSPARSE")) {
        *kind = EXT_SPARSE;
        *type = streq(l->type, "SPARSE") ? TYPE_SPARSE : TYPE_VMFSSPARSE;
    } else if (streq(l->type, "SESPARSE")) {
        return g_fail(env->err, G_ENOTSUP,
                      "vmdk: SESPARSE extents are not supported");
    } else {
        return 0; /* ZERO, VMFSRDM, VMFSRAW, ...: qemu skips them */
    }
    if (l->offset < 0 || (uint64_t)l->offset > UINT64_MAX / VMDK_SECTOR)
        l->offset = 0;
    return 1;
}

/* Opens the file of extent x, or takes the one an earlier extent naming
 * the same file opened. */
static int open_extent(struct vmdk_state *st, uint32_t parent, const char *s,
                       struct vmdk_extent *x)
{
    const struct fmt_env *env = st->env;
    const struct vmdk_extent *first = &st->ext[x->file];
    int ret;

    if (first != x) {
        x->handle = first->handle;
        x->file_size = first->file_size;
        x->sp = first->sp;
    } else if ((ret = fmt_open_backing(env, parent, s + x->name_off,
                                       x->name_len, VMDK_NAME,
                                       &x->handle)) < 0) {
        return ret;
    } else if (x->kind == EXT_SPARSE) {
        if ((ret = vmdk_sparse_open(env, x->handle, false, st->scratch,
                                    &x->sp)) < 0)
            return ret;
    } else if ((ret = env->ops->size(env->ops->ctx, x->handle,
                                     &x->file_size)) != CT_OK) {
        return g_fail(env->err, G_EIO, "vmdk: cannot get the extent size: %s",
                      ct_result_str(ret));
    }
    if (x->kind == EXT_SPARSE)
        x->len = x->sp->capacity; /* the header wins over the line */
    return G_OK;
}

static const char *const create_types[] = {
    "monolithicFlat",       "vmfs",       "vmfsSparse", "seSparse",
    "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
};

static int check_create_type(const struct fmt_env *env, const char *s,
                             uint32_t n)
{
    const char *v;
    uint32_t len;
    bool found;
    int ret = desc_str(env, s, n, "createType", &v, &len, &found);

    if (ret < 0)
        return ret;
    if (!found)
        return g_fail(env->err, G_ECORRUPT,
                      "vmdk: descriptor has no createType (invalid VMDK "
                      "image descriptor)");
    for (size_t i = 0; i < sizeof create_types / sizeof *create_types; i++)
        if (rt_strlen(create_types[i]) == len &&
            memcmp(create_types[i], v, len) == 0)
            return G_OK;
    char shown[48];
    uint32_t k = len < sizeof shown - 1 ? len : sizeof shown - 1;
    memcpy(shown, v, k);
    shown[k] = '\0';
    for (uint32_t i = 0; i < k; i++)
        if ((uint8_t)shown[i] < 0x20 || (uint8_t)shown[i] >= 0x7f)
            shown[i] = '?';
    return g_fail(env->err, G_ENOTSUP,
                  "vmdk: createType '%s' is not supported in a descriptor "
                  "file",
                  shown);
}

/* The next extent line in [*p, end): 1 and l, kind set; 0 at the end. */
static int next_extent(const struct fmt_env *env, const char **p,
                       const char *end, struct ext_line *l, int *kind,
                       int *type)
{
    while (*p < end) {
        const char *e = *p;
        int ret;
        while (e < end && *e != '\n')
            e++;
        memset(l, 0, sizeof *l);
        ret = classify(env, *p, e, l, kind, type);
        *p = e + (e < end);
        if (ret)
            return ret;
    }
    return 0;
}

/* Extents naming the same file (and kind) share one handle: a hash of
 * names to the first such extent, 0 = free, else extent index + 1. */
static uint32_t name_hash(const char *s, uint32_t n, int kind)
{
    uint32_t h = 2166136261u ^ (uint32_t)kind; /* FNV-1a */
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static uint32_t same_file(struct vmdk_state *st, const char *s,
                          uint32_t *table, uint32_t mask, uint32_t i)
{
    const struct vmdk_extent *x = &st->ext[i];
    uint32_t h = name_hash(s + x->name_off, x->name_len, x->kind) & mask;

    for (;; h = (h + 1) & mask) {
        const struct vmdk_extent *o;
        if (!table[h]) {
            table[h] = i + 1;
            return i;
        }
        o = &st->ext[table[h] - 1];
        if (o->kind == x->kind && o->name_len == x->name_len &&
            memcmp(s + o->name_off, s + x->name_off, x->name_len) == 0)
            return table[h] - 1;
    }
}

/* Three passes over the lines: count them, record and validate each and
 * find the files they share, then, once the run is known to be able to
 * hold every file, open them. */
static int parse_extents(struct vmdk_state *st, uint32_t handle,
                         const char *s, uint32_t n)
{
    const struct fmt_env *env = st->env;
    const char *p, *end = s + n;
    uint32_t count = 0, files = 0, mask = 1, *table;
    uint32_t files_max = env->files_max ? env->files_max : CT_HANDLES_MAX;
    uint64_t vsize = 0;
    struct ext_line l;
    int kind = EXT_FLAT, type = TYPE_NONE, ret;

    for (p = s; (ret = next_extent(env, &p, end, &l, &kind, &type)) > 0;)
        if (++count > LIMIT_VMDK_EXTENTS)
            return g_fail(env->err, G_ECORRUPT,
                          "vmdk: descriptor has more than %u extents",
                          (unsigned)LIMIT_VMDK_EXTENTS);
    if (ret < 0 || count == 0)
        return ret;
    while (mask < 2 * count)
        mask <<= 1;
    st->ext = fmt_alloc(env, (uint64_t)count * sizeof *st->ext, VMDK_NAME,
                        "extents");
    table = st->ext ? fmt_alloc(env, (uint64_t)mask * sizeof *table,
                                VMDK_NAME, "extent names")
                    : NULL;
    if (!table)
        return G_ENOMEM;
    mask--;
    for (p = s; (ret = next_extent(env, &p, end, &l, &kind, &type)) > 0;
         st->n++) {
        struct vmdk_extent *x = &st->ext[st->n];
        x->kind = (uint8_t)kind;
        x->type = (uint8_t)type;
        x->name_off = (uint32_t)(l.name - s);
        x->name_len = (uint16_t)l.name_len;
        if (kind == EXT_FLAT) {
            if ((uint64_t)l.sectors > LIMIT_VSIZE / VMDK_SECTOR)
                return g_fail(env->err, G_ECORRUPT,
                              "vmdk: extent size %lld sectors exceeds the "
                              "limit",
                              (long long)l.sectors);
            x->len = (uint64_t)l.sectors * VMDK_SECTOR;
            x->flat_off = (uint64_t)l.offset * VMDK_SECTOR;
        }
        x->file = same_file(st, s, table, mask, st->n);
        files += x->file == st->n;
    }
    if (ret < 0)
        return ret;
    /* the descriptor itself holds a handle too */
    if ((uint64_t)files + 1 > files_max)
        return g_fail(env->err, G_EIO,
                      "vmdk: too many files referenced: %u > %u (the "
                      "open-files limit, ulimit -n, bounds what this run can "
                      "open)",
                      (unsigned)files, (unsigned)(files_max - 1));
    for (uint32_t i = 0; i < st->n; i++) {
        struct vmdk_extent *x = &st->ext[i];
        if ((ret = open_extent(st, handle, s, x)) < 0)
            return ret;
        x->start = vsize;
        if (__builtin_add_overflow(vsize, x->len, &vsize) ||
            vsize > LIMIT_VSIZE)
            return g_fail(env->err, G_ECORRUPT,
                          "vmdk: extents add up to more than %llu bytes",
                          (unsigned long long)LIMIT_VSIZE);
    }
    return G_OK;
}

/* CID, parentCID and the parent, from a descriptor (file or embedded). */
static int parse_ids(struct vmdk_state *st, const char *s, uint32_t n)
{
    int ret;
    if ((ret = desc_hex(st->env, s, n, "CID", &st->cid)) < 0 ||
        (ret = desc_hex(st->env, s, n, "parentCID", &st->parent_cid)) < 0)
        return ret;
    st->has_cid = true;
    return G_OK;
}

static int open_parent(struct vmdk_state *st, struct fmt_reader *r,
                       const char *s, uint32_t n)
{
    const char *name;
    uint32_t len;
    bool found;
    int ret = desc_str(st->env, s, n, "parentFileNameHint", &name, &len,
                       &found);

    /* qemu takes an empty hint for no parent (measured: the image reads
     * standalone, parentCID unchecked) */
    if (ret < 0 || !found || len == 0)
        return ret;
    st->hint = name;
    st->hint_len = len;
    if ((ret = fmt_open_ref(st->env, r, name, len, CT_FMT_VMDK, VMDK_NAME,
                            &st->parent)) < 0 ||
        !st->parent)
        return ret;
    /* qemu fails reads of unallocated grains when the CIDs disagree */
    const struct vmdk_state *ps = st->parent->priv;
    st->parent_real_cid = ps->cid;
    st->parent_cid_ok = ps->has_cid && ps->cid == st->parent_cid;
    return G_OK;
}

/* qemu reads a parent only when its CID matches the child's parentCID. */
static int check_parent_cid(const struct vmdk_state *st)
{
    if (st->parent && !st->parent_cid_ok)
        return g_fail(st->env->err, G_ECORRUPT,
                      "vmdk: parentCID %x does not match the parent's CID "
                      "%x",
                      (unsigned)st->parent_cid,
                      (unsigned)st->parent_real_cid);
    return G_OK;
}

static int hole(struct vmdk_state *st, uint64_t ext_start, uint64_t voff,
                uint8_t *buf, uint64_t n)
{
    uint64_t vo = ext_start + voff, pn = 0;
    struct fmt_reader *p = st->parent;
    int ret;

    if (p) {
        if ((ret = check_parent_cid(st)) != G_OK)
            return ret;
        if (vo < p->vsize)
            pn = p->vsize - vo < n ? p->vsize - vo : n;
        if (pn && (ret = p->read(p, vo, buf, pn)) < 0)
            return ret;
    }
    memset(buf + pn, 0, (size_t)(n - pn));
    return G_OK;
}

/* The first extent that ends after off: extents are in order, none empty. */
static uint32_t extent_at(const struct vmdk_state *st, uint64_t off)
{
    uint32_t lo = 0, hi = st->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (st->ext[mid].start + st->ext[mid].len <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int vmdk_read(struct fmt_reader *r, uint64_t off, void *vbuf,
                     uint64_t len)
{
    struct vmdk_state *st = r->priv;
    uint8_t *buf = vbuf;
    uint64_t end = off + len, got;
    int ret;

    if (off >= r->vsize || end > r->vsize || end < off) {
        uint64_t keep = off >= r->vsize ? 0 : r->vsize - off;
        memset(buf + keep, 0, (size_t)(len - keep));
        len = keep;
        end = off + len;
    }
    for (uint32_t i = extent_at(st, off); i < st->n && off < end; i++) {
        struct vmdk_extent *x = &st->ext[i];
        uint64_t rel = off - x->start;
        uint64_t n = x->len - rel < end - off ? x->len - rel : end - off;
        uint8_t *dst = buf + (len - (end - off));
        if (x->kind == EXT_SPARSE) {
            ret = vmdk_sparse_read(x->sp, st->sh, rel, dst, n, hole, st,
                                   x->start);
        } else {
            /* flat data past the end of its file reads as zeros (qemu) */
            uint64_t fo, want = 0;
            got = 0;
            ret = G_OK;
            if (!__builtin_add_overflow(x->flat_off, rel, &fo) &&
                fo < x->file_size) {
                want = x->file_size - fo < n ? x->file_size - fo : n;
                ret = fmt_pread_partial(st->env, x->handle, fo, dst, want,
                                        &got, VMDK_NAME);
            }
            if (ret == G_OK)
                memset(dst + got, 0, (size_t)(n - got));
        }
        if (ret < 0)
            return ret;
        off += n;
    }
    return G_OK;
}

/* Block status: flat extents are plain (zeros past their file's end),
 * sparse ones say per grain run; what is not in this image is the
 * parent's. */
static int vmdk_extent(struct fmt_reader *r, uint64_t off, uint64_t len,
                       struct fmt_extent *e)
{
    struct vmdk_state *st = r->priv;
    bool unallocated = false;
    int ret;

    if (off >= r->vsize) {
        *e = (struct fmt_extent){FMT_EXTENT_ZERO, 0, 0, len};
        return G_OK;
    }
    const struct vmdk_extent *x = &st->ext[extent_at(st, off)];
    uint64_t rel = off - x->start;
    uint64_t n = x->len - rel < len ? x->len - rel : len;
    if (x->kind == EXT_SPARSE) {
        if ((ret = vmdk_sparse_extent(x->sp, st->sh, rel, n, e,
                                      &unallocated)) != G_OK)
            return ret;
        if (!unallocated || !st->parent)
            return G_OK;
        if ((ret = check_parent_cid(st)) != G_OK)
            return ret;
        return fmt_extent_of(st->parent, off, e->len, e);
    }
    uint64_t fo;
    if (__builtin_add_overflow(x->flat_off, rel, &fo) || fo >= x->file_size)
        *e = (struct fmt_extent){FMT_EXTENT_ZERO, 0, 0, n};
    else
        *e = (struct fmt_extent){FMT_EXTENT_PLAIN, x->handle, fo,
                                 x->file_size - fo < n ? x->file_size - fo
                                                       : n};
    return G_OK;
}

/* A text descriptor file: read it whole (it ends at the first NUL). qemu
 * reads only its first LIMIT_VMDK_DESCRIPTOR_BYTES and silently drops the
 * extents after them (measured), so text running past that is refused. */
static int open_descriptor_file(struct vmdk_state *st, struct fmt_reader *r)
{
    const struct fmt_env *env = st->env;
    uint64_t want = r->file_size < LIMIT_VMDK_DESCRIPTOR_BYTES
                        ? r->file_size
                        : LIMIT_VMDK_DESCRIPTOR_BYTES;
    char *d = fmt_io_alloc(env, want ? want : 1, VMDK_NAME, "descriptor");
    uint32_t n = 0;
    int ret;

    if (!d)
        return G_ENOMEM;
    if ((ret = fmt_pread(env, r->handle, 0, d, want, VMDK_NAME,
                         "descriptor")) < 0)
        return ret;
    while (n < want && d[n])
        n++;
    if (n == want && r->file_size > want)
        return g_fail(env->err, G_ECORRUPT,
                      "vmdk: descriptor file size %llu exceeds the limit %u "
                      "(qemu reads only that much of it)",
                      (unsigned long long)r->file_size,
                      (unsigned)LIMIT_VMDK_DESCRIPTOR_BYTES);
    if ((ret = check_create_type(env, d, n)) < 0 ||
        (ret = parse_ids(st, d, n)) < 0 ||
        desc_value(d, n, "createType", &st->create_type,
                   &st->create_type_len) < 0 ||
        (ret = parse_extents(st, r->handle, d, n)) < 0)
        return ret;
    return open_parent(st, r, d, n);
}

static int open_monolithic(struct vmdk_state *st, struct fmt_reader *r)
{
    struct vmdk_extent *x = fmt_alloc(st->env, sizeof *x, VMDK_NAME,
                                      "extents");
    int ret;

    if (!x)
        return G_ENOMEM;
    if ((ret = vmdk_sparse_open(st->env, r->handle, true, st->scratch,
                                &x->sp)) < 0)
        return ret;
    x->kind = EXT_SPARSE;
    x->len = x->sp->capacity;
    x->handle = r->handle;
    st->ext = x;
    st->n = 1;
    /* qemu-img info names a sparse file's type by its compression,
     * whatever the embedded descriptor says (measured) */
    st->create_type = x->sp->compressed ? "streamOptimized"
                                        : "monolithicSparse";
    st->create_type_len = (uint32_t)rt_strlen(st->create_type);
    if ((ret = parse_ids(st, x->sp->desc, x->sp->desc_len)) < 0)
        return ret;
    return open_parent(st, r, x->sp->desc, x->sp->desc_len);
}

/* The chain's shared state: the parent's (which took its own parent's),
 * or new when this is the deepest image with a sparse extent. */
static int share(struct vmdk_state *st)
{
    const struct vmdk_state *ps = st->parent ? st->parent->priv : NULL;
    uint32_t i = 0;

    if (ps && ps->sh) {
        st->sh = ps->sh;
        return G_OK;
    }
    while (i < st->n && st->ext[i].kind != EXT_SPARSE)
        i++;
    if (i == st->n)
        return G_OK;
    st->sh = fmt_alloc(st->env, sizeof *st->sh, VMDK_NAME, "state");
    if (!st->sh)
        return G_ENOMEM;
    zbatch_init(&st->sh->zb, st->env, VMDK_NAME, "compressed grain",
                FMT_INFLATE_ZLIB, false, false);
    return tcache_init(&st->sh->tables, st->env, VMDK_TABLE_SLOTS,
                       VMDK_TABLE_BYTES, VMDK_NAME, "table cache");
}

/* qemu-img info's cluster size of a vmdk (measured): when every extent
 * has the same grain size (flat ones none), that size, or none for flat
 * extents, and the dirty flag (false); with extents that differ, neither
 * (qemu's query fails, and it prints neither). */
static bool common_grain(const struct vmdk_state *st, uint64_t *grain)
{
    *grain = 0;
    for (uint32_t i = 0; i < st->n; i++) {
        const struct vmdk_extent *x = &st->ext[i];
        uint64_t g = x->kind == EXT_SPARSE ? x->sp->grain_bytes : 0;
        if (i && g != *grain)
            return false;
        *grain = g;
    }
    return true;
}

static int extent_info(const struct vmdk_extent *x, struct fmt_info *s)
{
    const char *t = type_names[x->type];
    int ret;
    if ((ret = fmt_info_begin(s, CT_INFO_EXTENT, x->handle)) < 0 ||
        (ret = fmt_info_u64(s, CT_INFO_VIRTUAL_SIZE, x->len)) < 0 ||
        (ret = fmt_info_str(s, CT_INFO_EXTENT_FORMAT, t,
                            (uint32_t)rt_strlen(t))) < 0)
        return ret;
    if (x->kind == EXT_SPARSE &&
        ((ret = fmt_info_u64(s, CT_INFO_CLUSTER_SIZE,
                             x->sp->grain_bytes)) < 0 ||
         (x->sp->compressed &&
          (ret = fmt_info_bool(s, CT_INFO_COMPRESSED, true)) < 0)))
        return ret;
    return fmt_info_end(s, CT_INFO_EXTENT);
}

/* fmt_reader.info: the descriptor's facts, each extent, and the check of
 * each sparse extent file's tables. */
static int vmdk_info(struct fmt_reader *r, struct fmt_info *s)
{
    struct vmdk_state *st = r->priv;
    uint64_t grain;
    int ret = G_OK;

    if (common_grain(st, &grain) &&
        ((grain && (ret = fmt_info_u64(s, CT_INFO_CLUSTER_SIZE, grain)) < 0) ||
         (ret = fmt_info_bool(s, CT_INFO_DIRTY, false)) < 0))
        return ret;

    if (ret == G_OK && st->hint_len &&
        ((ret = fmt_info_str(s, CT_INFO_BACKING_FILENAME, st->hint,
                             st->hint_len)) < 0 ||
         (ret = fmt_info_str(s, CT_INFO_BACKING_FORMAT, VMDK_NAME, 4)) < 0))
        return ret;
    if (ret < 0 || (ret = fmt_info_u64(s, CT_INFO_VMDK_CID, st->cid)) < 0 ||
        (ret = fmt_info_u64(s, CT_INFO_VMDK_PARENT_CID, st->parent_cid)) < 0 ||
        (ret = fmt_info_str(s, CT_INFO_VMDK_CREATE_TYPE, st->create_type,
                            st->create_type_len)) < 0)
        return ret;
    for (uint32_t i = 0; i < st->n; i++)
        if ((ret = extent_info(&st->ext[i], s)) < 0)
            return ret;
    /* one check per sparse file */
    for (uint32_t i = 0; i < st->n; i++) {
        struct vmdk_extent *x = &st->ext[i];
        if (x->kind == EXT_SPARSE && x->file == i &&
            (ret = vmdk_sparse_check(x->sp, st->sh, s)) < 0)
            return ret;
    }
    return G_OK;
}

int fmt_vmdk_open(const struct fmt_env *env, uint32_t handle,
                  struct fmt_reader *r)
{
    struct vmdk_state *st = fmt_alloc(env, sizeof *st, VMDK_NAME, "state");
    uint8_t *head = fmt_io_alloc(env, VMDK_SPARSE_SCRATCH, VMDK_NAME,
                                 "header");
    uint64_t got = 0, vsize = 0;
    int ret;

    if (!st || !head)
        return G_ENOMEM;
    st->env = env;
    st->scratch = head;
    r->name = VMDK_NAME;
    r->priv = st;
    r->read = vmdk_read;
    r->extent = vmdk_extent;
    r->info = vmdk_info;
    ret = env->ops->size(env->ops->ctx, handle, &r->file_size);
    if (ret != CT_OK)
        return g_fail(env->err, G_EIO, "vmdk: cannot get the image size: %s",
                      ct_result_str(ret));
    if ((ret = fmt_pread_partial(env, handle, 0, head, 4, &got, VMDK_NAME)) <
        0)
        return ret;
    if (got == 4 && memcmp(head, "COWD", 4) == 0)
        return g_fail(env->err, G_ENOTSUP,
                      "vmdk: COWD (ESX sparse, vmdk3) images are not "
                      "supported");
    if (got == 4 && memcmp(head, "KDMV", 4) == 0)
        ret = open_monolithic(st, r);
    else
        ret = open_descriptor_file(st, r);
    if (ret < 0 || (ret = share(st)) < 0)
        return ret;
    for (uint32_t i = 0; i < st->n; i++)
        vsize += st->ext[i].len; /* bounded by parse_extents */
    r->vsize = vsize;
    return G_OK;
}
