/*
 * qcow2 reader, part 1: the header, its extensions, the backing file and
 * the external data file. See qcow2.h for the layout; qcow2_map.c maps
 * and reads clusters.
 *
 * Measured with qemu-img 7.2 (see docs/format-coverage.md): the dirty and
 * corrupt bits do not stop a read-only open, so they are ignored here; the
 * virtual size is the header's size rounded down to 512 bytes.
 */
#include "qcow2.h"
#include "../rt/rt.h"

#define V2_HEADER_LEN 72u
#define V3_HEADER_LEN 104u
#define BACKING_NAME_MAX 1023u /* spec: "must not be longer than 1023" */
#define FORMAT_NAME_MAX 15u    /* backing format names: "qcow2", "raw", ... */
#define FEATURE_ENTRY_LEN 48u

struct qcow2_hdr {
    uint32_t version, cluster_bits, crypt_method, l1_size;
    uint32_t backing_size, header_length, refcount_order;
    uint32_t reftable_clusters;
    uint64_t backing_offset, size, l1_offset, incompat, compat, autoclear;
    uint64_t reftable_offset;
    uint8_t compression_type;
};

/* What the header extensions say, as offsets into the head buffer. */
struct qcow2_exts {
    const uint8_t *head;
    uint32_t backing_fmt_off, backing_fmt_len;
    bool has_backing_fmt;
    uint32_t data_file_off, data_file_len;
    bool has_data_file;
    uint32_t features_off, features_len;
};

static int read_header(struct qcow2 *q, const uint8_t *h, uint64_t got,
                       struct qcow2_hdr *hdr)
{
    const struct fmt_env *env = q->env;

    if (got < V2_HEADER_LEN)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: header truncated: file is %llu bytes, the header "
                      "needs %u",
                      (unsigned long long)q->file_size, V2_HEADER_LEN);
    if (get_be32(h) != QCOW2_MAGIC)
        return g_fail(env->err, G_ECORRUPT, "qcow2: magic 0x%x is not QFI\\xfb",
                      (unsigned)get_be32(h));
    hdr->version = get_be32(h + 4);
    if (hdr->version != 2 && hdr->version != 3)
        return g_fail(env->err, G_ENOTSUP,
                      "qcow2: version %u not supported (only 2 and 3)",
                      (unsigned)hdr->version);
    hdr->backing_offset = get_be64(h + 8);
    hdr->backing_size = get_be32(h + 16);
    hdr->cluster_bits = get_be32(h + 20);
    hdr->size = get_be64(h + 24);
    hdr->crypt_method = get_be32(h + 32);
    hdr->l1_size = get_be32(h + 36);
    hdr->l1_offset = get_be64(h + 40);
    hdr->reftable_offset = get_be64(h + 48);
    hdr->reftable_clusters = get_be32(h + 56);
    hdr->header_length = V2_HEADER_LEN;
    hdr->refcount_order = 4;
    if (hdr->version == 3) {
        if (got < V3_HEADER_LEN)
            return g_fail(env->err, G_ECORRUPT,
                          "qcow2: header truncated: file is %llu bytes, the "
                          "version 3 header needs %u",
                          (unsigned long long)q->file_size, V3_HEADER_LEN);
        hdr->incompat = get_be64(h + 72);
        hdr->compat = get_be64(h + 80);
        hdr->autoclear = get_be64(h + 88);
        hdr->refcount_order = get_be32(h + 96);
        hdr->header_length = get_be32(h + 100);
    }
    return G_OK;
}

/* instar never reads refcounts, but qemu reads the refcount table when it
 * opens an image, so an image whose table it refuses is refused here too
 * (measured with qemu-img 7.2, v2 and v3 alike). */
static int check_reftable(const struct qcow2 *q, const struct qcow2_hdr *hdr,
                          uint64_t cs)
{
    const struct fmt_env *env = q->env;
    uint64_t max = LIMIT_QCOW2_REFTABLE_BYTES / cs, bytes, end;

    if (hdr->reftable_clusters == 0)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: refcount_table_clusters is 0: the image has no "
                      "refcount table");
    if (hdr->reftable_clusters > max)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: refcount_table_clusters %u exceeds %llu (%llu "
                      "bytes of table)",
                      (unsigned)hdr->reftable_clusters,
                      (unsigned long long)max,
                      (unsigned long long)LIMIT_QCOW2_REFTABLE_BYTES);
    if (hdr->reftable_offset & (cs - 1))
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: refcount_table_offset %llu is not "
                      "cluster-aligned",
                      (unsigned long long)hdr->reftable_offset);
    bytes = (uint64_t)hdr->reftable_clusters * cs; /* <= 8 MiB */
    if (__builtin_add_overflow(hdr->reftable_offset, bytes, &end) ||
        end > LIMIT_FILE_END)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: refcount table at offset %llu (%llu bytes) "
                      "ends past offset %llu, the last one qemu reads",
                      (unsigned long long)hdr->reftable_offset,
                      (unsigned long long)bytes,
                      (unsigned long long)LIMIT_FILE_END);
    return G_OK;
}

/* Checks every header field the read path relies on. */
static int check_header(struct qcow2 *q, const struct qcow2_hdr *hdr,
                        const uint8_t *h, uint64_t got)
{
    const struct fmt_env *env = q->env;

    if (hdr->cluster_bits < LIMIT_QCOW2_CLUSTER_BITS_MIN ||
        hdr->cluster_bits > LIMIT_QCOW2_CLUSTER_BITS_MAX)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: cluster_bits %u out of range (%u..%u)",
                      (unsigned)hdr->cluster_bits,
                      LIMIT_QCOW2_CLUSTER_BITS_MIN,
                      LIMIT_QCOW2_CLUSTER_BITS_MAX);
    uint64_t cs = 1ull << hdr->cluster_bits;
    int ret;
    if ((ret = check_reftable(q, hdr, cs)) != G_OK)
        return ret;
    if (hdr->version == 3) {
        if (hdr->header_length < V3_HEADER_LEN ||
            hdr->header_length % 8 != 0 || hdr->header_length > cs)
            return g_fail(env->err, G_ECORRUPT,
                          "qcow2: header_length %u invalid (multiple of 8, "
                          "%u..%llu)",
                          (unsigned)hdr->header_length, V3_HEADER_LEN,
                          (unsigned long long)cs);
        if (hdr->header_length > got)
            return g_fail(env->err, G_ECORRUPT,
                          "qcow2: header truncated: header_length %u, file "
                          "is %llu bytes",
                          (unsigned)hdr->header_length,
                          (unsigned long long)q->file_size);
    }
    if (hdr->refcount_order > 6)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: refcount_order %u exceeds 6",
                      (unsigned)hdr->refcount_order);
    if (hdr->crypt_method != 0)
        return g_fail(env->err, G_ENOTSUP,
                      "qcow2: crypt_method %u (%s) not supported",
                      (unsigned)hdr->crypt_method,
                      hdr->crypt_method == 1   ? "AES encryption"
                      : hdr->crypt_method == 2 ? "LUKS encryption"
                                               : "unknown encryption");
    /* compression_type is present when the header is long enough. */
    uint8_t ctype = hdr->header_length > V3_HEADER_LEN ? h[104] : 0;
    bool cbit = (hdr->incompat & QCOW2_INCOMPAT_COMPRESSION) != 0;
    if (ctype != 0)
        return g_fail(env->err, G_ENOTSUP,
                      "qcow2: compression_type %u (%s) not supported (only "
                      "deflate)",
                      (unsigned)ctype, ctype == 1 ? "zstd" : "unknown");
    if (cbit)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: compression type feature bit set but "
                      "compression_type is 0");
    if ((hdr->incompat & QCOW2_INCOMPAT_EXTL2) && hdr->cluster_bits < 14)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: cluster_bits %u too small for extended L2 "
                      "entries (needs 14)",
                      (unsigned)hdr->cluster_bits);
    if ((hdr->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW) &&
        !(hdr->incompat & QCOW2_INCOMPAT_DATA_FILE))
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: data-file-raw bit set without an external data "
                      "file");
    return G_OK;
}

/* Name of incompatible feature `bit` from the feature name table, if any. */
static void feature_name(const struct qcow2_exts *x, unsigned bit, char *out,
                         size_t n)
{
    out[0] = '\0';
    for (uint32_t o = 0; o + FEATURE_ENTRY_LEN <= x->features_len;
         o += FEATURE_ENTRY_LEN) {
        const uint8_t *e = x->head + x->features_off + o;
        if (e[0] != 0 || e[1] != bit)
            continue;
        size_t i = 0;
        for (; i + 1 < n && i < FEATURE_ENTRY_LEN - 2 && e[2 + i]; i++)
            out[i] = (e[2 + i] >= 0x20 && e[2 + i] < 0x7f) ? (char)e[2 + i]
                                                            : '?';
        out[i] = '\0';
        return;
    }
}

static int check_incompat(struct qcow2 *q, uint64_t incompat,
                          const struct qcow2_exts *x)
{
    uint64_t unknown = incompat & ~QCOW2_INCOMPAT_KNOWN;
    if (!unknown)
        return G_OK;
    unsigned bit = (unsigned)__builtin_ctzll(unknown);
    char name[47];
    feature_name(x, bit, name, sizeof name);
    return g_fail(q->env->err, G_ENOTSUP,
                  "qcow2: incompatible feature bits 0x%llx not supported "
                  "(bit %u%s%s%s)",
                  (unsigned long long)unknown, bit, name[0] ? ": '" : "",
                  name, name[0] ? "'" : "");
}

/*
 * Walks the header extensions in [start, end) of the head buffer (got bytes
 * valid; the rest of the buffer reads as zeros, which ends the walk).
 */
static int read_extensions(struct qcow2 *q, const uint8_t *h, uint32_t start,
                           uint32_t end, struct qcow2_exts *x)
{
    const struct fmt_env *env = q->env;
    uint32_t off = start;

    x->head = h;
    while (off < end) {
        if (end - off < 8)
            return g_fail(env->err, G_ECORRUPT,
                          "qcow2: header extension at offset %u overflows the "
                          "header area (ends at %u)",
                          (unsigned)off, (unsigned)end);
        uint32_t type = get_be32(h + off);
        uint32_t len = get_be32(h + off + 4);
        if (type == QCOW2_EXT_END)
            return G_OK;
        uint32_t data = off + 8;
        if (len > end - data)
            return g_fail(env->err, G_ECORRUPT,
                          "qcow2: header extension 0x%x length %u overflows "
                          "the header area (ends at %u)",
                          (unsigned)type, (unsigned)len, (unsigned)end);
        switch (type) {
        case QCOW2_EXT_BACKING_FORMAT:
            if (len == 0 || len > FORMAT_NAME_MAX)
                return g_fail(env->err, G_ECORRUPT,
                              "qcow2: backing format name length %u invalid "
                              "(1..%u)",
                              (unsigned)len, FORMAT_NAME_MAX);
            x->has_backing_fmt = true;
            x->backing_fmt_off = data;
            x->backing_fmt_len = len;
            break;
        case QCOW2_EXT_DATA_FILE:
            x->has_data_file = true;
            x->data_file_off = data;
            x->data_file_len = len;
            break;
        case QCOW2_EXT_FEATURE_TABLE:
            x->features_off = data;
            x->features_len = len;
            break;
        case QCOW2_EXT_BITMAPS: /* only info reads it */
            q->facts.bitmaps = h + data;
            q->facts.bitmaps_len = len;
            break;
        default: /* bitmaps, encryption pointer, unknown: not needed */
            break;
        }
        /* Data is padded to a multiple of 8; len <= end - data < 2^32. */
        uint64_t next = (uint64_t)data + ((uint64_t)len + 7) / 8 * 8;
        if (next > end)
            return G_OK; /* the padding may run to the end of the area */
        off = (uint32_t)next;
    }
    return G_OK;
}

/* Maps a backing format name to the driver that must read it. */
static int backing_format(struct qcow2 *q, const struct qcow2_exts *x,
                          uint32_t *fmt)
{
    static const struct {
        const char *name;
        uint32_t fmt;
    } known[] = {
        {"raw", CT_FMT_RAW},   {"qcow2", CT_FMT_QCOW2}, {"vmdk", CT_FMT_VMDK},
        {"vpc", CT_FMT_VPC},   {"vhdx", CT_FMT_VHDX},
    };
    const char *s = (const char *)x->head + x->backing_fmt_off;
    uint32_t n = x->backing_fmt_len;
    char shown[FORMAT_NAME_MAX + 1];

    if (!x->has_backing_fmt) {
        *fmt = CT_FMT_PROBE;
        return G_OK;
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (rt_strlen(known[i].name) == n && memcmp(known[i].name, s, n) == 0) {
            *fmt = known[i].fmt;
            return G_OK;
        }
    for (uint32_t i = 0; i < n; i++)
        shown[i] = ((uint8_t)s[i] >= 0x20 && (uint8_t)s[i] < 0x7f) ? s[i] : '?';
    shown[n] = '\0';
    return g_fail(q->env->err, G_ENOTSUP,
                  "qcow2: backing format '%s' not supported", shown);
}

static int open_backing(struct qcow2 *q, struct fmt_reader *r,
                        const struct qcow2_hdr *hdr,
                        const struct qcow2_exts *x)
{
    const struct fmt_env *env = q->env;
    uint32_t fmt = CT_FMT_PROBE, len = 0;
    uint64_t end;
    int ret;

    if (hdr->backing_size > BACKING_NAME_MAX)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: backing_file_size %u exceeds %u",
                      (unsigned)hdr->backing_size, BACKING_NAME_MAX);
    if (__builtin_add_overflow(hdr->backing_offset, hdr->backing_size, &end) ||
        end > q->cluster_size || hdr->backing_offset < hdr->header_length)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: backing_file_offset %llu (size %u) is not "
                      "inside the header cluster",
                      (unsigned long long)hdr->backing_offset,
                      (unsigned)hdr->backing_size);
    char *name = fmt_io_alloc(env, hdr->backing_size, "qcow2",
                              "backing file name");
    if (!name)
        return G_ENOMEM;
    ret = fmt_pread(env, q->handle, hdr->backing_offset, name,
                    hdr->backing_size, "qcow2", "backing file name");
    if (ret != G_OK)
        return ret;
    /* qemu keeps the name as a C string: it ends at the first NUL, and
     * an empty one is no backing file, whatever the backing format says
     * (measured with qemu-img 7.2). */
    while (len < hdr->backing_size && name[len] != '\0')
        len++;
    if (len == 0)
        return G_OK;
    if ((hdr->incompat & QCOW2_INCOMPAT_DATA_FILE) &&
        (hdr->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW))
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: a backing file conflicts with the data-file-raw "
                      "bit");
    if ((ret = backing_format(q, x, &fmt)) != G_OK)
        return ret;
    q->facts.backing_name = name;
    q->facts.backing_name_len = len;
    if (x->has_backing_fmt) {
        q->facts.backing_fmt = (const char *)x->head + x->backing_fmt_off;
        q->facts.backing_fmt_len = x->backing_fmt_len;
    }
    return fmt_open_ref(env, r, name, len, fmt, "qcow2", &q->backing);
}

static int open_data_file(struct qcow2 *q, const struct qcow2_exts *x)
{
    const struct fmt_env *env = q->env;
    const struct ct_ops *ops = env->ops;
    int ret;

    if (!x->has_data_file)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: external data file bit set but no data file "
                      "name extension");
    if (x->data_file_len == 0 || x->data_file_len > LIMIT_NAME_LEN)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: data file name length %u invalid (1..%u)",
                      (unsigned)x->data_file_len, LIMIT_NAME_LEN);
    q->facts.data_name = (const char *)x->head + x->data_file_off;
    q->facts.data_name_len = x->data_file_len;
    /* qemu-img info opens no data file, with --backing-chain neither
     * (measured): its clusters are never read. */
    if (env->refs != FMT_REFS_OPEN)
        return G_OK;
    ret = fmt_open_backing(env, q->handle,
                           (const char *)x->head + x->data_file_off,
                           x->data_file_len, "qcow2", &q->data_handle);
    if (ret != G_OK)
        return ret;
    ret = ops->size(ops->ctx, q->data_handle, &q->data_size);
    if (ret != CT_OK)
        return g_fail(env->err, G_EIO,
                      "qcow2: cannot get the data file size: %s",
                      ct_result_str(ret));
    q->has_data_file = true;
    return G_OK;
}

/* L1 geometry: how many entries cover vsize, and where they are. */
static int check_l1(struct qcow2 *q, const struct qcow2_hdr *hdr)
{
    const struct fmt_env *env = q->env;
    uint64_t span_bits = q->cluster_bits + q->l2_bits; /* <= 39 */
    uint64_t need = (q->vsize + (1ull << span_bits) - 1) >> span_bits;
    uint64_t end;

    if ((uint64_t)hdr->l1_size * 8 > LIMIT_QCOW2_L1_BYTES)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: l1_size %u exceeds the limit of %llu entries",
                      (unsigned)hdr->l1_size,
                      (unsigned long long)(LIMIT_QCOW2_L1_BYTES / 8));
    if (hdr->l1_size < need)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: l1_size %u too small for virtual size %llu "
                      "(needs %llu)",
                      (unsigned)hdr->l1_size, (unsigned long long)q->vsize,
                      (unsigned long long)need);
    q->l1_entries = need;
    q->l1_offset = hdr->l1_offset;
    if (need == 0)
        return G_OK;
    if (hdr->l1_offset & (q->cluster_size - 1) || hdr->l1_offset == 0)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: l1_table_offset %llu is not a cluster-aligned "
                      "offset past the header",
                      (unsigned long long)hdr->l1_offset);
    if (__builtin_add_overflow(hdr->l1_offset, need * 8, &end) ||
        end > q->file_size)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: L1 table at offset %llu (%llu entries) is past "
                      "the end of the file (%llu bytes)",
                      (unsigned long long)hdr->l1_offset,
                      (unsigned long long)need,
                      (unsigned long long)q->file_size);
    return G_OK;
}

int fmt_qcow2_open(const struct fmt_env *env, uint32_t handle,
                   struct fmt_reader *r)
{
    const struct ct_ops *ops = env->ops;
    struct qcow2_hdr hdr = {0};
    struct qcow2_exts x = {0};
    uint64_t got = 0;
    int ret;

    struct qcow2 *q = fmt_alloc(env, sizeof *q, "qcow2", "driver state");
    if (!q)
        return G_ENOMEM;
    q->env = env;
    q->handle = handle;
    ret = ops->size(ops->ctx, handle, &q->file_size);
    if (ret != CT_OK)
        return g_fail(env->err, G_EIO, "qcow2: cannot get the image size: %s",
                      ct_result_str(ret));

    /* The head: header, extensions and (usually) the backing name all
     * live in cluster 0; extensions past LIMIT_QCOW2_HEADER_EXT_BYTES are
     * refused. Bytes past EOF stay zero (fresh arena memory). */
    uint8_t *h = fmt_io_alloc(env, LIMIT_QCOW2_HEADER_EXT_BYTES, "qcow2",
                              "header");
    if (!h)
        return G_ENOMEM;
    ret = fmt_pread_partial(env, handle, 0, h, LIMIT_QCOW2_HEADER_EXT_BYTES,
                            &got, "qcow2");
    if (ret != G_OK)
        return ret;
    if ((ret = read_header(q, h, got, &hdr)) != G_OK ||
        (ret = check_header(q, &hdr, h, got)) != G_OK)
        return ret;

    q->version = hdr.version;
    q->cluster_bits = hdr.cluster_bits;
    q->cluster_size = 1ull << hdr.cluster_bits;
    q->ext_l2 = (hdr.incompat & QCOW2_INCOMPAT_EXTL2) != 0;
    q->entry_bytes = q->ext_l2 ? 16 : 8;
    q->l2_bits = hdr.cluster_bits - (q->ext_l2 ? 4 : 3);
    q->sc_size = q->cluster_size / 32;
    /* qemu counts whole 512-byte sectors: a size of 1000 reads as 512. */
    q->vsize = hdr.size & ~511ull;
    if (q->vsize > LIMIT_VSIZE)
        return g_fail(env->err, G_ECORRUPT,
                      "qcow2: virtual size %llu exceeds the limit %llu",
                      (unsigned long long)hdr.size,
                      (unsigned long long)LIMIT_VSIZE);

    /* Extensions run from the header's end to the backing name (if any)
     * or the end of cluster 0. */
    uint64_t ext_end = q->cluster_size;
    if (hdr.backing_offset && hdr.backing_offset < ext_end)
        ext_end = hdr.backing_offset;
    if (ext_end > LIMIT_QCOW2_HEADER_EXT_BYTES)
        ext_end = LIMIT_QCOW2_HEADER_EXT_BYTES;
    if (hdr.header_length < ext_end) { /* version 2 may have them too */
        ret = read_extensions(q, h, hdr.header_length, (uint32_t)ext_end, &x);
        if (ret != G_OK)
            return ret;
    }
    if ((ret = check_incompat(q, hdr.incompat, &x)) != G_OK)
        return ret;
    if ((ret = check_l1(q, &hdr)) != G_OK)
        return ret;
    if ((hdr.incompat & QCOW2_INCOMPAT_DATA_FILE) &&
        (ret = open_data_file(q, &x)) != G_OK)
        return ret;
    if (hdr.backing_offset != 0 && hdr.backing_size != 0 &&
        (ret = open_backing(q, r, &hdr, &x)) != G_OK)
        return ret;
    if ((ret = qcow2_map_init(q)) != G_OK)
        return ret;

    q->facts.incompat = hdr.incompat;
    q->facts.compat = hdr.compat;
    q->facts.autoclear = hdr.autoclear;
    q->facts.refcount_order = hdr.refcount_order;
    q->facts.l1_size = hdr.l1_size;
    q->facts.reftable_offset = hdr.reftable_offset;
    q->facts.reftable_clusters = hdr.reftable_clusters;
    q->facts.nb_snapshots = get_be32(h + 60);
    q->facts.snapshots_offset = get_be64(h + 64);

    r->name = "qcow2";
    r->vsize = q->vsize;
    r->file_size = q->file_size;
    r->read = qcow2_read;
    r->extent = qcow2_extent;
    r->info = qcow2_info;
    r->priv = q;
    return G_OK;
}
