/*
 * vhdx open: validates the file identifier, picks the current header,
 * reads the region table and the metadata region, refuses a log that
 * needs replaying, and opens the parent of a differencing image. Section
 * numbers refer to the VHDX specification v1.0 ([MS-VHDX]).
 */
#include "crc32c.h"
#include "info.h"
#include "vhdx.h"
#include "../rt/rt.h"

#define ITEM_MAX 65536u  /* largest metadata item instar reads */

static const uint8_t guid_bat[16] = VHDX_GUID_BAT;
static const uint8_t guid_metadata[16] = VHDX_GUID_METADATA;

/* Metadata items (2.6.2) in the order of the `items` array below. */
enum { M_FILE_PARAMS, M_VSIZE, M_PAGE83, M_LSS, M_PSS, M_PARENT, M_COUNT };
static const struct {
    uint8_t guid[16];
    uint32_t min_len;
    const char *name;
} items[M_COUNT] = {
    [M_FILE_PARAMS] = {VHDX_GUID_FILE_PARAMS, 8, "file parameters"},
    [M_VSIZE] = {VHDX_GUID_VSIZE, 8, "virtual disk size"},
    [M_PAGE83] = {VHDX_GUID_PAGE83, 16, "page 83 data"},
    [M_LSS] = {VHDX_GUID_LSS, 4, "logical sector size"},
    [M_PSS] = {VHDX_GUID_PSS, 4, "physical sector size"},
    [M_PARENT] = {VHDX_GUID_PARENT_LOCATOR, 20, "parent locator"},
};
static const uint8_t guid_locator_vhdx[16] = VHDX_GUID_LOCATOR_VHDX;

struct open_ctx {
    const struct fmt_env *env;
    struct fmt_reader *r;
    struct vhdx *v;
    uint8_t *buf;  /* 64 KiB scratch in the I/O area */
    uint8_t *item; /* ITEM_MAX bytes: one metadata item */
    uint64_t log_off, log_len;
    uint8_t log_guid[16];
    uint64_t meta_off, meta_len;
    uint32_t item_off[M_COUNT], item_len[M_COUNT];
    bool item_seen[M_COUNT];
};

static bool is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* "{01234567-89AB-...}" for messages (rt_fmt has no field widths). */
static void guid_str(const uint8_t *g, char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    static const uint8_t order[16] = {3, 2, 1, 0, 5, 4, 7, 6,
                                      8, 9, 10, 11, 12, 13, 14, 15};
    char t[39];
    unsigned o = 0;
    t[o++] = '{';
    for (unsigned i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            t[o++] = '-';
        t[o++] = hex[g[order[i]] >> 4];
        t[o++] = hex[g[order[i]] & 15];
    }
    t[o++] = '}';
    t[o] = '\0';
    rt_fmt(s, n, "%s", t);
}

/* CRC-32C of a structure with its checksum field (at 4) taken as zero. */
static uint32_t struct_crc(const uint8_t *p, size_t len)
{
    static const uint8_t zero[4];
    uint32_t c = crc32c_update(0, p, 4);
    c = crc32c_update(c, zero, 4);
    return crc32c_update(c, p + 8, len - 8);
}

static int fail(struct open_ctx *c, int code, const char *msg)
{
    return g_fail(c->env->err, code, "vhdx: %s", msg);
}

/* Headers (2.2.2): the valid one with the highest sequence number. */
static int read_headers(struct open_ctx *c)
{
    uint8_t *h[2] = {c->buf, c->buf + VHDX_HEADER_SIZE};
    bool ok[2];
    uint64_t seq[2];
    int ret, pick;

    unsigned other_version = 0;
    bool sane = false;
    for (int i = 0; i < 2; i++) {
        ret = fmt_pread(c->env, c->r->handle,
                        i ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET, h[i],
                        VHDX_HEADER_SIZE, "vhdx", i ? "header 2" : "header 1");
        if (ret != G_OK)
            return ret;
        ok[i] = memcmp(h[i], "head", 4) == 0 &&
                get_le32(h[i] + 4) == struct_crc(h[i], VHDX_HEADER_SIZE);
        sane |= ok[i];
        /* like qemu, a header of another version is not a candidate */
        if (ok[i] && get_le16(h[i] + 66) != 1) {
            other_version = get_le16(h[i] + 66);
            ok[i] = false;
        }
        seq[i] = get_le64(h[i] + 8);
    }
    if (!ok[0] && !ok[1] && sane)
        return g_fail(c->env->err, G_ENOTSUP,
                      "vhdx: header version %u not supported (expected 1)",
                      other_version);
    if (!ok[0] && !ok[1])
        return fail(c, G_ECORRUPT,
                    "no valid header (bad signature or checksum in both "
                    "copies)");
    pick = !ok[0] || (ok[1] && seq[1] > seq[0]);
    const uint8_t *p = h[pick];
    memcpy(c->v->data_write_guid, p + 32, 16);
    memcpy(c->log_guid, p + 48, 16);
    c->log_len = get_le32(p + 68);
    c->log_off = get_le64(p + 72);
    if (!is_zero(c->log_guid, 16) && get_le16(p + 64) != 0)
        return g_fail(c->env->err, G_ENOTSUP,
                      "vhdx: log version %u not supported (expected 0)",
                      (unsigned)get_le16(p + 64));
    return G_OK;
}

/* A region (log, BAT, metadata) must be 1 MiB-aligned, start after the
 * first MiB, be non-empty and not wrap. */
static int check_region(struct open_ctx *c, const char *what, uint64_t off,
                        uint64_t len)
{
    uint64_t end;
    if (off % VHDX_MIB || off < VHDX_MIB)
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: %s offset %llu is not a multiple of 1 MiB past "
                      "the first MiB",
                      what, (unsigned long long)off);
    if (len == 0 || len % VHDX_MIB || __builtin_add_overflow(off, len, &end))
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: %s length %llu is not a non-zero multiple of "
                      "1 MiB",
                      what, (unsigned long long)len);
    for (unsigned i = 0; i < c->v->nreserved; i++) {
        const struct vhdx_range *m = &c->v->reserved[i];
        if (off < m->off + m->len && m->off < end)
            return g_fail(c->env->err, G_ECORRUPT,
                          "vhdx: %s at offset %llu overlaps the %s", what,
                          (unsigned long long)off, m->what);
    }
    c->v->reserved[c->v->nreserved++] = (struct vhdx_range){off, len, what};
    return G_OK;
}

/* Region table 1 (2.3). Like qemu, instar does not fall back to the copy
 * when table 1 is damaged. */
static int read_region_table(struct open_ctx *c)
{
    struct vhdx *v = c->v;
    uint8_t *t = c->buf;
    uint64_t bat_len = 0;
    uint32_t n;
    int ret = fmt_pread(c->env, c->r->handle, VHDX_RT1_OFFSET, t,
                        VHDX_RT_SIZE, "vhdx", "region table");
    if (ret != G_OK)
        return ret;
    if (memcmp(t, "regi", 4) != 0)
        return fail(c, G_ECORRUPT, "region table signature is not 'regi'");
    if (get_le32(t + 4) != struct_crc(t, VHDX_RT_SIZE))
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: region table checksum 0x%x does not match "
                      "the contents",
                      get_le32(t + 4));
    n = get_le32(t + 8);
    if (n > LIMIT_VHDX_REGION_ENTRIES)
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: region table entry_count %u > %u", n,
                      LIMIT_VHDX_REGION_ENTRIES);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = t + 16 + i * 32;
        uint64_t off = get_le64(e + 16);
        uint32_t len = get_le32(e + 24);
        bool bat = memcmp(e, guid_bat, 16) == 0;
        bool meta = memcmp(e, guid_metadata, 16) == 0;
        char gs[40];
        if (!bat && !meta) {
            if (!(get_le32(e + 28) & 1))
                continue; /* optional regions may be ignored (2.3.1) */
            guid_str(e, gs, sizeof gs);
            return g_fail(c->env->err, G_ENOTSUP,
                          "vhdx: required region %s not supported", gs);
        }
        if ((bat && bat_len) || (meta && c->meta_len))
            return g_fail(c->env->err, G_ECORRUPT,
                          "vhdx: region table lists the %s region twice",
                          bat ? "BAT" : "metadata");
        ret = check_region(c, bat ? "BAT region" : "metadata region", off,
                           len);
        if (ret != G_OK)
            return ret;
        if (bat) {
            v->bat_off = off;
            bat_len = len;
        } else {
            c->meta_off = off;
            c->meta_len = len;
        }
    }
    if (!bat_len || !c->meta_len)
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: region table has no %s region",
                      bat_len ? "metadata" : "BAT");
    /* Kept for the BAT size check once the geometry is known. */
    v->bat_entries = bat_len / 8;
    return G_OK;
}

/* Metadata table (2.6.1): records where each known item is. */
static int read_metadata_table(struct open_ctx *c)
{
    uint8_t *t = c->buf;
    uint16_t n;
    int ret = fmt_pread(c->env, c->r->handle, c->meta_off, t, VHDX_MT_SIZE,
                        "vhdx", "metadata table");
    if (ret != G_OK)
        return ret;
    if (memcmp(t, "metadata", 8) != 0)
        return fail(c, G_ECORRUPT,
                    "metadata table signature is not 'metadata'");
    n = get_le16(t + 10);
    if (n > LIMIT_VHDX_METADATA_ENTRIES)
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: metadata table entry_count %u > %u", n,
                      LIMIT_VHDX_METADATA_ENTRIES);
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *e = t + 32 + i * 32;
        uint32_t off = get_le32(e + 16), len = get_le32(e + 20);
        bool required = get_le32(e + 24) & VHDX_META_IS_REQUIRED;
        bool user = get_le32(e + 24) & VHDX_META_IS_USER;
        char gs[40];
        int k = M_COUNT;
        for (int j = 0; j < M_COUNT && !user; j++)
            if (memcmp(e, items[j].guid, 16) == 0)
                k = j;
        guid_str(e, gs, sizeof gs);
        if (k == M_COUNT) {
            if (required)
                return g_fail(c->env->err, G_ENOTSUP,
                              "vhdx: required metadata item %s not "
                              "supported",
                              gs);
            continue;
        }
        if (c->item_seen[k])
            return g_fail(c->env->err, G_ECORRUPT,
                          "vhdx: metadata item %s (%s) listed twice",
                          items[k].name, gs);
        if (len < items[k].min_len || len > ITEM_MAX)
            return g_fail(c->env->err, G_ECORRUPT,
                          "vhdx: metadata item %s length %u is invalid",
                          items[k].name, len);
        /* items live after the 64 KiB table, inside the region */
        if (off < VHDX_MT_SIZE || (uint64_t)off + len > c->meta_len)
            return g_fail(c->env->err, G_ECORRUPT,
                          "vhdx: metadata item %s offset %u is outside the "
                          "metadata region",
                          items[k].name, off);
        c->item_seen[k] = true;
        c->item_off[k] = off;
        c->item_len[k] = len;
    }
    return G_OK;
}

static int load_item(struct open_ctx *c, int k)
{
    return fmt_pread(c->env, c->r->handle, c->meta_off + c->item_off[k],
                     c->item, c->item_len[k], "vhdx", items[k].name);
}

/* The items that define the geometry (2.6.2.1 - 2.6.2.5). */
static int read_geometry(struct open_ctx *c)
{
    struct vhdx *v = c->v;
    uint32_t bits, pss;
    uint64_t want, bat_bytes, bat_end;
    int ret;

    for (int k = 0; k < M_PARENT; k++)
        if (!c->item_seen[k])
            return g_fail(c->env->err, G_ECORRUPT,
                          "vhdx: metadata item %s is missing",
                          items[k].name);
    if ((ret = load_item(c, M_FILE_PARAMS)) != G_OK)
        return ret;
    v->block_size = get_le32(c->item);
    bits = get_le32(c->item + 4);
    v->has_parent = bits & VHDX_FILE_PARAMS_HAS_PARENT;
    if (v->block_size < VHDX_MIB ||
        v->block_size > LIMIT_VHDX_BLOCK_SIZE_MAX ||
        (v->block_size & (v->block_size - 1)))
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: block size %u is not a power of two from 1 MiB "
                      "to %u",
                      v->block_size, LIMIT_VHDX_BLOCK_SIZE_MAX);
    v->block_bits = (unsigned)__builtin_ctz(v->block_size);
    if ((ret = load_item(c, M_LSS)) != G_OK)
        return ret;
    v->lss = get_le32(c->item);
    if (v->lss != 512 && v->lss != 4096)
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: logical sector size %u is not 512 or 4096",
                      v->lss);
    v->lss_bits = (unsigned)__builtin_ctz(v->lss);
    if ((ret = load_item(c, M_PSS)) != G_OK)
        return ret;
    pss = get_le32(c->item);
    if (pss != 512 && pss != 4096)
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: physical sector size %u is not 512 or 4096",
                      pss);
    if ((ret = load_item(c, M_VSIZE)) != G_OK)
        return ret;
    v->vsize = get_le64(c->item);
    if (v->vsize > LIMIT_VHDX_VSIZE_MAX)
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: virtual disk size %llu > %llu (64 TiB)",
                      (unsigned long long)v->vsize,
                      (unsigned long long)LIMIT_VHDX_VSIZE_MAX);
    /* The spec wants a multiple of the logical sector size. qemu 7.2 opens
     * no image with 4096-byte sectors (measured: "Operation not
     * supported"), so those are held to the spec; for 512 see below. */
    if (v->vsize % v->lss && v->lss != 512)
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: virtual disk size %llu is not a multiple of the "
                      "logical sector size %u",
                      (unsigned long long)v->vsize, v->lss);
    /* chunk ratio = 2^23 * lss / block size (2.4): 16 .. 32768 */
    v->chunk_ratio = ((uint64_t)1 << 23 << v->lss_bits) >> v->block_bits;
    v->nblocks = (v->vsize + v->block_size - 1) >> v->block_bits;
    if (v->has_parent)
        want = (v->nblocks + v->chunk_ratio - 1) / v->chunk_ratio *
               (v->chunk_ratio + 1);
    else
        want = v->nblocks ? v->nblocks + (v->nblocks - 1) / v->chunk_ratio
                          : 0;
    /* bat_entries holds what the BAT region can hold (vsize <= 2^46 keeps
     * these products far from overflow). */
    if (want > v->bat_entries)
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: BAT region (%llu entries) is too small for "
                      "%llu entries",
                      (unsigned long long)v->bat_entries,
                      (unsigned long long)want);
    v->bat_entries = want;
    bat_bytes = want * 8;
    bat_end = v->bat_off + bat_bytes;
    if (bat_end > v->file_size)
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: BAT (%llu entries at offset %llu) is past the "
                      "end of the file",
                      (unsigned long long)want,
                      (unsigned long long)v->bat_off);
    /* With 512-byte sectors qemu 7.2 reads a disk of the size rounded down
     * to 512 (measured: 1000 reads as 512 bytes, 100 as none), after
     * sizing the BAT by the size as stored, as above. */
    v->vsize &= ~(uint64_t)511;
    return G_OK;
}

/*
 * The log (2.3.2): a non-zero log_guid with log entries carrying that guid
 * means writes that may not have reached their final place. qemu-img opens
 * read-only and refuses such an image ("contains a log that needs to be
 * replayed"); instar refuses too, and never replays. An entry counts when a
 * 4 KiB-aligned sector of the log starts with "loge" and names the
 * header's log_guid.
 */
static int check_log(struct open_ctx *c)
{
    uint64_t pos;
    char gs[40];
    int ret;

    if (is_zero(c->log_guid, 16)) {
        /* No log to replay; still keep payload off a sane log region. */
        uint64_t end;
        if (c->log_off >= VHDX_MIB && c->log_off % VHDX_MIB == 0 &&
            c->log_len && c->log_len % VHDX_MIB == 0 &&
            !__builtin_add_overflow(c->log_off, c->log_len, &end))
            c->v->reserved[c->v->nreserved++] =
                (struct vhdx_range){c->log_off, c->log_len, "log"};
        return G_OK;
    }
    ret = check_region(c, "log", c->log_off, c->log_len);
    if (ret != G_OK)
        return ret;
    if (c->log_len > LIMIT_VHDX_LOG_BYTES)
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: log length %llu > %u",
                      (unsigned long long)c->log_len, LIMIT_VHDX_LOG_BYTES);
    for (pos = 0; pos < c->log_len; pos += VHDX_RT_SIZE) {
        ret = fmt_pread(c->env, c->r->handle, c->log_off + pos, c->buf,
                        VHDX_RT_SIZE, "vhdx", "log");
        if (ret != G_OK)
            return ret;
        for (unsigned s = 0; s < VHDX_RT_SIZE; s += 4096) {
            const uint8_t *e = c->buf + s;
            if (memcmp(e, "loge", 4) == 0 &&
                memcmp(e + 32, c->log_guid, 16) == 0) {
                guid_str(c->log_guid, gs, sizeof gs);
                return g_fail(c->env->err, G_ENOTSUP,
                              "vhdx: log %s has entries that need to be "
                              "replayed (not supported for a read-only "
                              "open; 'qemu-img check -r all' replays it)",
                              gs);
            }
        }
    }
    return G_OK;
}

/* UTF-16LE src (n units) as UTF-8 in dst, backslashes becoming '/'. */
static int utf16_to_name(struct open_ctx *c, const uint8_t *src, uint32_t n,
                         char *dst, uint32_t cap, uint32_t *out_len)
{
    int ret = rt_utf16le_to_utf8(src, n, dst, cap, out_len);
    if (ret == RT_TEXT_INVALID)
        return fail(c, G_ECORRUPT,
                    "parent locator path has a NUL or an unpaired "
                    "surrogate");
    if (ret == RT_TEXT_TOO_LONG)
        return fail(c, G_ECORRUPT, "parent locator path is too long");
    for (uint32_t i = 0; i < *out_len; i++)
        if (dst[i] == '\\')
            dst[i] = '/';
    return G_OK;
}

/* Is the UTF-16LE key (n bytes) the ASCII string s? */
static bool key_is(const uint8_t *k, uint32_t n, const char *s)
{
    size_t l = rt_strlen(s);
    if (n != 2 * l)
        return false;
    for (size_t i = 0; i < l; i++)
        if (get_le16(k + 2 * i) != (uint8_t)s[i])
            return false;
    return true;
}

/* Parses a UTF-16LE "{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}" into the
 * on-disk GUID layout. */
static bool parse_guid(const uint8_t *s, uint32_t n, uint8_t *g)
{
    /* byte order of the 16 on-disk bytes as they appear in the text */
    static const uint8_t order[16] = {3, 2, 1, 0, 5, 4, 7, 6,
                                      8, 9, 10, 11, 12, 13, 14, 15};
    unsigned units = n / 2, pos = 0, b = 0;
    if (n % 2 || (units != 38 && units != 36))
        return false;
    if (units == 38) {
        if (get_le16(s) != '{' || get_le16(s + 74) != '}')
            return false;
        pos = 1;
        units = 37;
    }
    for (; pos < units && b < 16; pos++) {
        uint16_t ch = get_le16(s + 2 * pos);
        if (ch == '-')
            continue;
        int hi = rt_hexval(ch), lo = pos + 1 < units
                                      ? rt_hexval(get_le16(s + 2 * pos + 2))
                                      : -1;
        if (hi < 0 || lo < 0)
            return false;
        g[order[b++]] = (uint8_t)(hi << 4 | lo);
        pos++;
    }
    return b == 16;
}

enum { K_RELATIVE, K_ABSOLUTE, K_LINKAGE, K_COUNT };

/* Parent locator (2.6.2.6): finds the paths and the parent's linkage. */
static int parse_locator(struct open_ctx *c, uint32_t koff[K_COUNT],
                         uint32_t klen[K_COUNT])
{
    const uint8_t *p = c->item;
    uint32_t len = c->item_len[M_PARENT];
    uint16_t n;

    if (memcmp(p, guid_locator_vhdx, 16) != 0)
        return fail(c, G_ENOTSUP, "parent locator type is not the VHDX "
                                  "locator type");
    n = get_le16(p + 18);
    if (20 + (uint64_t)n * 12 > len)
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: parent locator key_value_count %u overruns "
                      "the item (%u bytes)",
                      (unsigned)n, len);
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *e = p + 20 + i * 12;
        uint32_t ko = get_le32(e), vo = get_le32(e + 4);
        uint32_t kl = get_le16(e + 8), vl = get_le16(e + 10);
        if ((uint64_t)ko + kl > len || (uint64_t)vo + vl > len || !kl ||
            !vl)
            return g_fail(c->env->err, G_ECORRUPT,
                          "vhdx: parent locator entry %u is outside the item",
                          i);
        int k = key_is(p + ko, kl, "relative_path")         ? K_RELATIVE
                : key_is(p + ko, kl, "absolute_win32_path") ? K_ABSOLUTE
                : key_is(p + ko, kl, "parent_linkage")      ? K_LINKAGE
                                                            : K_COUNT;
        if (k == K_COUNT)
            continue;
        koff[k] = vo;
        klen[k] = vl;
    }
    return G_OK;
}

/* The parent's name as reported by info (the locator's first path). */
static int keep_name(struct open_ctx *c, const char *name, uint32_t len)
{
    char *p = fmt_alloc(c->env, len, "vhdx", "parent name");
    if (!p)
        return G_ENOMEM;
    memcpy(p, name, len);
    c->v->parent_name = p;
    c->v->parent_name_len = len;
    return G_OK;
}

static int open_parent(struct open_ctx *c)
{
    static const int order[2] = {K_RELATIVE, K_ABSOLUTE};
    const struct ct_ops *ops = c->env->ops;
    uint32_t koff[K_COUNT] = {0}, klen[K_COUNT] = {0};
    char name[LIMIT_NAME_LEN];
    uint32_t name_len = 0, h = 0;
    uint8_t linkage[16];
    int ret;

    if (!c->item_seen[M_PARENT])
        return fail(c, G_ECORRUPT,
                    "differencing image has no parent locator");
    if ((ret = load_item(c, M_PARENT)) != G_OK ||
        (ret = parse_locator(c, koff, klen)) != G_OK)
        return ret;
    if (!klen[K_LINKAGE] ||
        !parse_guid(c->item + koff[K_LINKAGE], klen[K_LINKAGE], linkage))
        return fail(c, G_ECORRUPT,
                    "parent locator has no valid parent_linkage");
    if (!klen[K_RELATIVE] && !klen[K_ABSOLUTE])
        return fail(c, G_ECORRUPT, "parent locator has no relative_path or "
                                   "absolute_win32_path");
    /* Try relative_path, then absolute_win32_path; the last failure names
     * its path. Info without --backing-chain opens neither and reports
     * the first. */
    for (int i = 0; i < 2; i++) {
        int k = order[i];
        if (!klen[k])
            continue;
        if (klen[k] % 2)
            return fail(c, G_ECORRUPT,
                        "parent locator path has an odd byte length");
        ret = utf16_to_name(c, c->item + koff[k], klen[k] / 2, name,
                            sizeof name, &name_len);
        if (ret != G_OK)
            return ret;
        if (name_len && !c->v->parent_name &&
            (ret = keep_name(c, name, name_len)) != G_OK)
            return ret;
        if (c->env->refs == FMT_REFS_NAME)
            break;
        if (name_len && ops->open_backing(ops->ctx, c->r->handle, name,
                                          name_len, &h) == CT_OK)
            break;
        h = 0;
    }
    if (h)
        ret = fmt_open(c->env, h, CT_FMT_VHDX, c->r->depth + 1,
                       &c->v->parent);
    else
        ret = fmt_open_ref(c->env, c->r, name, name_len, CT_FMT_VHDX, "vhdx",
                           &c->v->parent);
    c->r->backing = c->v->parent;
    if (ret != G_OK || !c->v->parent)
        return ret;
    const struct vhdx *pv = c->v->parent->priv;
    if (memcmp(pv->data_write_guid, linkage, 16) != 0) {
        char want[40], got[40];
        guid_str(linkage, want, sizeof want);
        guid_str(pv->data_write_guid, got, sizeof got);
        return g_fail(c->env->err, G_ECORRUPT,
                      "vhdx: parent data write GUID %s does not match "
                      "parent_linkage %s",
                      got, want);
    }
    return G_OK;
}

/* fmt_reader.info: the block size is qemu-img info's cluster size; the
 * parent is instar's own report (qemu 7.2 opens no differencing image);
 * every BAT entry is checked as a read would check it. */
static int vhdx_info(struct fmt_reader *r, struct fmt_info *s)
{
    const struct vhdx *v = r->priv;
    int ret = fmt_info_u64(s, CT_INFO_CLUSTER_SIZE, v->block_size);

    if (ret == G_OK)
        ret = fmt_info_bool(s, CT_INFO_DIRTY, false);

    if (ret == G_OK && v->parent_name_len &&
        ((ret = fmt_info_str(s, CT_INFO_BACKING_FILENAME, v->parent_name,
                             v->parent_name_len)) != G_OK ||
         (ret = fmt_info_str(s, CT_INFO_BACKING_FORMAT, "vhdx", 4)) != G_OK))
        return ret;
    if (ret != G_OK)
        return ret;
    return vhdx_check_blocks(r);
}

int fmt_vhdx_open(const struct fmt_env *env, uint32_t handle,
                  struct fmt_reader *r)
{
    struct vhdx *v = fmt_alloc(env, sizeof *v, "vhdx", "state");
    struct open_ctx c = {.env = env, .r = r, .v = v};
    int ret;

    if (!v)
        return G_ENOMEM;
    ret = env->ops->size(env->ops->ctx, handle, &v->file_size);
    if (ret != CT_OK)
        return g_fail(env->err, G_EIO, "vhdx: cannot get the image size: %s",
                      ct_result_str(ret));
    c.buf = fmt_io_alloc(env, VHDX_RT_SIZE, "vhdx", "metadata buffer");
    c.item = c.buf ? fmt_io_alloc(env, ITEM_MAX, "vhdx", "metadata item")
                   : 0;
    if (!c.item)
        return G_ENOMEM;
    if ((ret = fmt_pread(env, handle, 0, c.buf, 8, "vhdx",
                         "file identifier")) != G_OK)
        return ret;
    if (memcmp(c.buf, VHDX_SIGNATURE, 8) != 0)
        return fail(&c, G_ECORRUPT, "file identifier is not 'vhdxfile'");
    /* Nothing may be placed in the first MiB: identifier, headers and
     * region tables (2.1). */
    v->reserved[v->nreserved++] =
        (struct vhdx_range){0, VHDX_MIB, "header area"};
    if ((ret = read_headers(&c)) != G_OK ||
        (ret = read_region_table(&c)) != G_OK ||
        (ret = read_metadata_table(&c)) != G_OK ||
        (ret = read_geometry(&c)) != G_OK || (ret = check_log(&c)) != G_OK)
        return ret;
    if (v->has_parent && (ret = open_parent(&c)) != G_OK)
        return ret;
    if ((ret = vhdx_map_init(env, v)) != G_OK)
        return ret;
    r->name = "vhdx";
    r->vsize = v->vsize;
    r->file_size = v->file_size;
    r->read = vhdx_read;
    r->extent = vhdx_extent;
    r->info = vhdx_info;
    r->priv = v;
    return G_OK;
}
