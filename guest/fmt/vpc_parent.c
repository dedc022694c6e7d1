/*
 * vpc differencing disks: pick a parent locator, turn its path into the
 * name the host resolves (relative to this image, inside the allowed
 * directories), open the parent as a VHD and check its unique id.
 *
 * qemu 7.2 does not read parents at all (a differencing disk reads as a
 * dynamic one, unallocated sectors as zeros); instar follows the spec.
 * Locators used, in this order (spec: "Parent Locator Entries"):
 *   W2ru  path relative to this image, UTF-16LE, '\' separators
 *   W2ku  absolute path, UTF-16LE; a drive letter "C:" is dropped
 *   MacX  file URL, UTF-8 ("file://localhost/..." or "file:///...")
 * The deprecated Wi2r/Wi2k (ANSI) and Mac (alias blob) are not used.
 */
#include "vpc.h"
#include "../rt/rt.h"

#define DH_PARENT_UUID 40
#define DH_LOCATORS 576
#define DH_LOCATOR_LEN 24
#define DH_LOCATOR_COUNT 8

enum loc_kind { LOC_W2RU, LOC_W2KU, LOC_MACX, LOC_KINDS };

static const char *const loc_codes[LOC_KINDS] = {"W2ru", "W2ku", "MacX"};

/* file URL to path: "file://" [ "localhost" ] path, %XX decoded.
 * Returns the length, 0 if invalid. */
static uint32_t file_url_to_path(const uint8_t *in, uint32_t len, char *out)
{
    uint32_t i = 7, n = 0;

    while (len > 0 && in[len - 1] == 0)
        len--;
    if (len < 7 || memcmp(in, "file://", 7) != 0)
        return 0;
    if (len - i >= 10 && memcmp(in + i, "localhost/", 10) == 0)
        i += 9;
    for (; i < len; i++) {
        uint8_t c = in[i];
        if (c == '%') {
            int hi = i + 2 < len ? rt_hexval(in[i + 1]) : -1;
            int lo = i + 2 < len ? rt_hexval(in[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return 0;
            c = (uint8_t)(hi << 4 | lo);
            i += 2;
        }
        if (c == 0)
            return 0;
        out[n++] = (char)c;
    }
    return n;
}

/* The locator's path as the host expects it; 0 if invalid. */
static uint32_t locator_name(enum loc_kind kind, const uint8_t *data,
                             uint32_t len, char *out)
{
    uint32_t n, units = len / 2;

    if (kind == LOC_MACX)
        return file_url_to_path(data, len, out);
    /* Trailing NUL units are padding. UTF-8 needs at most 3 bytes per
     * unit; the caller's buffer holds 2 * len = 4 per unit. */
    while (units > 0 && get_le16(data + (units - 1) * 2) == 0)
        units--;
    if (len % 2 != 0 ||
        rt_utf16le_to_utf8(data, units, out, 2 * len, &n) != 0 || n == 0)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (out[i] == '\\')
            out[i] = '/';
    if (kind == LOC_W2KU && n >= 2 && out[1] == ':' &&
        ((out[0] >= 'A' && out[0] <= 'Z') || (out[0] >= 'a' && out[0] <= 'z'))) {
        memmove(out, out + 2, n - 2);
        n -= 2;
    }
    return n;
}

/* The first non-empty locator of the preferred kind, or -1. */
static int pick_locator(const uint8_t *hdr, enum loc_kind *kind,
                        const uint8_t **ent)
{
    for (int k = 0; k < LOC_KINDS; k++)
        for (int i = 0; i < DH_LOCATOR_COUNT; i++) {
            const uint8_t *e = hdr + DH_LOCATORS + i * DH_LOCATOR_LEN;
            if (memcmp(e, loc_codes[k], 4) == 0 && get_be32(e + 8) != 0) {
                *kind = (enum loc_kind)k;
                *ent = e;
                return 0;
            }
        }
    return -1;
}

/* Reads the chosen locator and converts it; *name_len receives the size. */
static int locator_path(const struct fmt_env *env, struct fmt_reader *r,
                        const uint8_t *hdr, char **name, uint32_t *name_len)
{
    const struct vpc *v = r->priv;
    enum loc_kind kind;
    const uint8_t *e;
    uint8_t *data;
    uint32_t len;
    uint64_t off;
    int ret;

    if (pick_locator(hdr, &kind, &e) != 0)
        return g_fail(env->err, G_ENOTSUP,
                      "vpc: differencing disk has no W2ru, W2ku or MacX "
                      "parent locator");
    len = get_be32(e + 8);
    off = get_be64(e + 16);
    if (len > LIMIT_VPC_LOCATOR_BYTES)
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: parent locator %s data_length %u exceeds the "
                      "limit %u",
                      loc_codes[kind], (unsigned)len,
                      (unsigned)LIMIT_VPC_LOCATOR_BYTES);
    if (off > v->file_size || len > v->file_size - off)
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: parent locator %s at offset %llu (%u bytes) is "
                      "past the end of the file",
                      loc_codes[kind], (unsigned long long)off,
                      (unsigned)len);
    data = fmt_io_alloc(env, len, "vpc", "parent locator");
    /* UTF-8 needs at most 3 bytes per UTF-16 unit (4 per pair). */
    *name = fmt_alloc(env, (uint64_t)len * 2 + 1, "vpc", "parent name");
    if (!data || !*name)
        return G_ENOMEM;
    ret = fmt_pread(env, r->handle, off, data, len, "vpc", "parent locator");
    if (ret != G_OK)
        return ret;
    *name_len = locator_name(kind, data, len, *name);
    if (*name_len == 0)
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: parent locator %s at offset %llu is not a valid "
                      "%s",
                      loc_codes[kind], (unsigned long long)off,
                      kind == LOC_MACX ? "file URL" : "UTF-16 path");
    return G_OK;
}

int vpc_open_parent(const struct fmt_env *env, struct fmt_reader *r,
                    const uint8_t *hdr)
{
    struct vpc *v = r->priv;
    const struct vpc *pv;
    uint32_t name_len = 0;
    char *name = NULL;
    int ret;

    if ((ret = locator_path(env, r, hdr, &name, &name_len)) != G_OK)
        return ret;
    v->parent_name = name;
    v->parent_name_len = name_len;
    if ((ret = fmt_open_ref(env, r, name, name_len, CT_FMT_VPC, "vpc",
                            &v->parent)) != G_OK ||
        !v->parent)
        return ret;
    /* Spec: the parent's footer unique id is the child's parent id; a
     * different file under the same name is not this disk's parent. */
    pv = v->parent->priv;
    if (memcmp(pv->uuid, hdr + DH_PARENT_UUID, sizeof pv->uuid) != 0) {
        if (name_len > 64)
            name_len = 64;
        for (uint32_t i = 0; i < name_len; i++)
            if ((uint8_t)name[i] < 0x20 || (uint8_t)name[i] >= 0x7f)
                name[i] = '?';
        name[name_len] = '\0';
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: parent '%s' has a unique id other than the "
                      "differencing disk's parent id",
                      name);
    }
    return G_OK;
}
