/*
 * vpc open: find and check the footer, derive the virtual size the way
 * qemu-img 7.2 does, check the dynamic disk header and the BAT, and open
 * the parent of a differencing disk. See vpc.h for the layout.
 */
#include "info.h"
#include "vpc.h"
#include "../rt/rt.h"

#define VPC_VERSION_MAJOR 1u
/* CHS of the largest geometry the spec's algorithm produces: qemu takes
 * current_size instead when it sees it (the disk may be larger). */
#define VPC_MAX_GEOMETRY (65535ull * 16 * 255)

uint32_t vpc_checksum(const uint8_t *p, uint32_t len, uint32_t ck_off)
{
    uint32_t sum = 0;
    for (uint32_t i = 0; i < len; i++)
        if (i < ck_off || i >= ck_off + 4)
            sum += p[i];
    return ~sum;
}

static bool in_file(const struct vpc *v, uint64_t off, uint64_t len)
{
    return off <= v->file_size && len <= v->file_size - off;
}

/*
 * The virtual size qemu 7.2 reports: cylinders x heads x sectors per track
 * (Virtual PC sizes disks by geometry), except for the creator
 * applications that size by current_size (Hyper-V "win ", disk2vhd
 * "d2v ", XenServer "tap\0", XenConverter "CTXS", qemu with force_size
 * "qem2") and for the maximum geometry. current_size is used rounded down
 * to whole sectors, as qemu does.
 */
static int vpc_size(const struct fmt_env *env, const uint8_t *ft,
                    uint64_t *vsize)
{
    static const char *const by_size[] = {"win ", "qem2", "d2v ", "CTXS",
                                          "tap\0"};
    uint64_t sectors = (uint64_t)get_be16(ft + FT_CYLINDERS) *
                       ft[FT_HEADS] * ft[FT_SPT];
    bool use_size = sectors == VPC_MAX_GEOMETRY;

    for (unsigned i = 0; i < sizeof by_size / sizeof by_size[0]; i++)
        if (memcmp(ft + FT_CREATOR_APP, by_size[i], 4) == 0)
            use_size = true;
    if (use_size)
        sectors = get_be64(ft + FT_CURRENT_SIZE) / VPC_SECTOR;
    if (sectors > LIMIT_VPC_SECTORS_MAX)
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: virtual size of %llu sectors exceeds the "
                      "format's limit of %llu sectors",
                      (unsigned long long)sectors,
                      (unsigned long long)LIMIT_VPC_SECTORS_MAX);
    *vsize = sectors * VPC_SECTOR;
    return G_OK;
}

/* Reads the footer: the copy at offset 0 of a dynamic or differencing
 * disk, else the one at the end of a fixed disk (qemu looks in the same
 * two places, in the same order). */
static int read_footer(const struct fmt_env *env, uint32_t handle,
                       struct vpc *v, uint8_t *ft)
{
    uint64_t at = 0;
    uint32_t type, ck, version;
    int ret;

    if (v->file_size < VPC_FOOTER_LEN)
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: file size %llu is too small for a VHD footer",
                      (unsigned long long)v->file_size);
    ret = fmt_pread(env, handle, 0, ft, VPC_FOOTER_LEN, "vpc", "footer");
    if (ret != G_OK)
        return ret;
    if (memcmp(ft + FT_COOKIE, "conectix", 8) != 0) {
        at = v->file_size - VPC_FOOTER_LEN;
        ret = fmt_pread(env, handle, at, ft, VPC_FOOTER_LEN, "vpc",
                        "footer");
        if (ret != G_OK)
            return ret;
        if (memcmp(ft + FT_COOKIE, "conectix", 8) != 0)
            return g_fail(env->err, G_ECORRUPT,
                          "vpc: no 'conectix' footer at offset 0 or at the "
                          "end of the file");
    }
    ck = get_be32(ft + FT_CHECKSUM);
    if (vpc_checksum(ft, VPC_FOOTER_LEN, FT_CHECKSUM) != ck)
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: footer checksum 0x%x at offset %llu is wrong "
                      "(computed 0x%x)",
                      (unsigned)ck, (unsigned long long)at,
                      (unsigned)vpc_checksum(ft, VPC_FOOTER_LEN,
                                             FT_CHECKSUM));
    version = get_be32(ft + FT_VERSION);
    if (version >> 16 != VPC_VERSION_MAJOR)
        return g_fail(env->err, G_ENOTSUP,
                      "vpc: footer file format version 0x%x not supported",
                      (unsigned)version);
    type = get_be32(ft + FT_TYPE);
    /* A fixed disk has no footer copy at 0; a sparse one is found at 0. */
    if (at != 0 && type != VPC_TYPE_FIXED)
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: disk type %u in the footer at the end of the "
                      "file, but no footer copy at offset 0",
                      (unsigned)type);
    if (at == 0 && type != VPC_TYPE_DYNAMIC && type != VPC_TYPE_DIFF) {
        if (type == VPC_TYPE_FIXED)
            return g_fail(env->err, G_ECORRUPT,
                          "vpc: disk type 2 (fixed) in the footer copy at "
                          "offset 0 (a fixed disk has its footer only at "
                          "the end)");
        return g_fail(env->err, G_ENOTSUP,
                      "vpc: disk type %u not supported", (unsigned)type);
    }
    v->type = type;
    memcpy(v->uuid, ft + FT_UUID, sizeof v->uuid);
    return G_OK;
}

/* Checks the dynamic disk header and derives the block geometry. */
static int check_dynhdr(const struct fmt_env *env, struct vpc *v,
                        const uint8_t *h, uint64_t vsize)
{
    uint32_t ck = get_be32(h + DH_CHECKSUM), version;
    uint64_t bat_bytes;

    if (memcmp(h + DH_COOKIE, "cxsparse", 8) != 0)
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: dynamic disk header at offset %llu has no "
                      "'cxsparse' cookie",
                      (unsigned long long)v->hdr_off);
    /* qemu does not check this checksum; a header that fails it is
     * corrupt, so instar refuses it. */
    if (vpc_checksum(h, VPC_DYNHDR_LEN, DH_CHECKSUM) != ck)
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: dynamic disk header checksum 0x%x is wrong "
                      "(computed 0x%x)",
                      (unsigned)ck,
                      (unsigned)vpc_checksum(h, VPC_DYNHDR_LEN,
                                             DH_CHECKSUM));
    version = get_be32(h + DH_VERSION);
    if (version >> 16 != VPC_VERSION_MAJOR)
        return g_fail(env->err, G_ENOTSUP,
                      "vpc: dynamic disk header version 0x%x not supported",
                      (unsigned)version);
    v->block_size = get_be32(h + DH_BLOCK_SIZE);
    if (v->block_size < VPC_SECTOR ||
        (v->block_size & (v->block_size - 1)) != 0)
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: block_size %u is not a power of two >= 512",
                      (unsigned)v->block_size);
    if (v->block_size > LIMIT_VPC_BLOCK_SIZE_MAX)
        return g_fail(env->err, G_ENOTSUP,
                      "vpc: block_size %u exceeds the limit %u",
                      (unsigned)v->block_size,
                      (unsigned)LIMIT_VPC_BLOCK_SIZE_MAX);
    v->block_shift = (unsigned)__builtin_ctz(v->block_size);
    /* One bit per sector, padded to whole sectors. */
    v->bitmap_size = ((v->block_size / VPC_SECTOR / 8) + VPC_SECTOR - 1) &
                     ~(VPC_SECTOR - 1);
    v->bat_entries = get_be32(h + DH_MAX_ENTRIES);
    if (v->bat_entries > LIMIT_VPC_BAT_ENTRIES_MAX)
        return g_fail(env->err, G_ENOTSUP,
                      "vpc: max_table_entries %u exceeds the limit %u",
                      (unsigned)v->bat_entries,
                      (unsigned)LIMIT_VPC_BAT_ENTRIES_MAX);
    if ((uint64_t)v->bat_entries << v->block_shift < vsize)
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: max_table_entries %u x block_size %u is smaller "
                      "than the virtual size %llu",
                      (unsigned)v->bat_entries, (unsigned)v->block_size,
                      (unsigned long long)vsize);
    v->bat_off = get_be64(h + DH_TABLE_OFFSET);
    bat_bytes = (uint64_t)v->bat_entries * 4;
    if (!in_file(v, v->bat_off, bat_bytes))
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: BAT at offset %llu (%llu bytes) is past the end "
                      "of the file",
                      (unsigned long long)v->bat_off,
                      (unsigned long long)bat_bytes);
    return G_OK;
}

static int open_sparse(const struct fmt_env *env, struct fmt_reader *r,
                       struct vpc *v, const uint8_t *ft)
{
    uint8_t *h;
    int ret;

    v->hdr_off = get_be64(ft + FT_DATA_OFFSET);
    if (!in_file(v, v->hdr_off, VPC_DYNHDR_LEN))
        return g_fail(env->err, G_ECORRUPT,
                      "vpc: data_offset %llu: the dynamic disk header is "
                      "past the end of the file",
                      (unsigned long long)v->hdr_off);
    h = fmt_io_alloc(env, VPC_DYNHDR_LEN, "vpc", "dynamic disk header");
    if (!h)
        return G_ENOMEM;
    ret = fmt_pread(env, r->handle, v->hdr_off, h, VPC_DYNHDR_LEN, "vpc",
                    "dynamic disk header");
    if (ret == G_OK)
        ret = check_dynhdr(env, v, h, r->vsize);
    if (ret != G_OK)
        return ret;
    v->bat_page = fmt_io_alloc(env, VPC_BAT_PAGE_ENTRIES * 4, "vpc", "BAT");
    v->bitmap = fmt_io_alloc(env, v->bitmap_size, "vpc", "sector bitmap");
    if (!v->bat_page || !v->bitmap)
        return G_ENOMEM;
    if ((ret = vpc_check_bat(r)) != G_OK)
        return ret;
    if (v->type == VPC_TYPE_DIFF)
        return vpc_open_parent(env, r, h);
    return G_OK;
}

/* fmt_reader.info: qemu-img info gives a dynamic disk's block size as
 * its cluster size. The parent of a differencing disk is instar's own
 * report (qemu 7.2 ignores it). Every BAT entry was checked at open. */
static int vpc_info(struct fmt_reader *r, struct fmt_info *s)
{
    const struct vpc *v = r->priv;
    int ret = G_OK;

    if (v->type != VPC_TYPE_FIXED)
        ret = fmt_info_u64(s, CT_INFO_CLUSTER_SIZE, v->block_size);
    if (ret == G_OK)
        ret = fmt_info_bool(s, CT_INFO_DIRTY, false);
    if (ret == G_OK && v->parent_name_len &&
        (ret = fmt_info_str(s, CT_INFO_BACKING_FILENAME, v->parent_name,
                            v->parent_name_len)) == G_OK)
        ret = fmt_info_str(s, CT_INFO_BACKING_FORMAT, "vpc", 3);
    return ret;
}

int fmt_vpc_open(const struct fmt_env *env, uint32_t handle,
                 struct fmt_reader *r)
{
    struct vpc *v = fmt_alloc(env, sizeof *v, "vpc", "state");
    uint8_t *ft = fmt_io_alloc(env, VPC_FOOTER_LEN, "vpc", "footer");
    int ret;

    if (!v || !ft)
        return G_ENOMEM;
    ret = env->ops->size(env->ops->ctx, handle, &v->file_size);
    if (ret != CT_OK)
        return g_fail(env->err, G_EIO, "vpc: cannot get the image size: %s",
                      ct_result_str(ret));
    r->name = "vpc";
    r->file_size = v->file_size;
    r->priv = v;
    r->info = vpc_info;
    if ((ret = read_footer(env, handle, v, ft)) != G_OK ||
        (ret = vpc_size(env, ft, &r->vsize)) != G_OK)
        return ret;
    if (v->type == VPC_TYPE_FIXED) {
        /* qemu reads the footer and zeros past the data area; a size
         * that reaches past the data is corruption. */
        if (r->vsize > v->file_size - VPC_FOOTER_LEN)
            return g_fail(env->err, G_ECORRUPT,
                          "vpc: virtual size %llu exceeds the %llu bytes of "
                          "data of the fixed disk",
                          (unsigned long long)r->vsize,
                          (unsigned long long)(v->file_size -
                                               VPC_FOOTER_LEN));
        r->read = vpc_read_fixed;
        r->extent = vpc_extent_fixed;
        return G_OK;
    }
    r->read = vpc_read_sparse;
    r->extent = vpc_extent_sparse;
    return open_sparse(env, r, v, ft);
}
