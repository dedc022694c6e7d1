/*
 * vhdx output: a dynamic VHDX laid out as qemu-img 7.2 lays it out
 * (../shared/design/writers.md section 5; the sizes come from
 * output_vhdx_layout() in shared/output_bound.h):
 *
 *   0              file type identifier, creator "instar VERSION"
 *   64, 128 KiB    headers 1 and 2 (2 is current), LogGuid zero
 *   192, 256 KiB   region table and its copy: BAT, metadata (Required 0)
 *   1 MiB          log, 1 MiB, empty: left a hole
 *   2 MiB          BAT, written a page at a time as its blocks are decided
 *   2 MiB + BATlen metadata region (1 MiB), then a 4 MiB gap
 *   first_block    payload blocks, appended in the order first written
 *
 * A block gets a place when a write() first touches it, so dd's dense
 * output puts block b at first_block + b * block_size and every engine
 * chunk is one host write. A block that only ever gets zero() keeps the
 * state ZERO that qemu's create gives every block (convert). The rest
 * does not depend on the data and is written by finish(); a failed run
 * leaves no file, so nothing needs to be valid before that.
 *
 * convert -o block_size sets the block size (and with it the chunk ratio
 * and the BAT's length). -o subformat=fixed writes what qemu-img 7.2
 * converts to (measured; output_vhdx_layout_p()): the same metadata with
 * LeaveBlocksAllocated set, every block the data reaches appended after a
 * hole the size of the disk, the others left ZERO.
 */
#include "crc32c.h"
#include "fmt.h"
#include "output_bound.h"
#include "vhdx_spec.h"
#include "../rt/rt.h"

#ifndef INSTAR_VERSION
#define INSTAR_VERSION "unknown"
#endif
/* Free text (2.1): qemu writes "QEMU v7.2.22"; instar names itself. */
#define CREATOR "instar " INSTAR_VERSION

/* One 64 KiB I/O buffer: a page of BAT entries while data is written,
 * then scratch for the region table and the rest in finish(). */
#define BUF_SIZE VHDX_RT_SIZE
#define PAGE_ENTRIES (BUF_SIZE / 8)

#define LOG_OFFSET VHDX_MIB
#define LOG_LENGTH VHDX_MIB
#define META_LENGTH VHDX_MIB
#define SECTOR_SIZE 512u
/* The smallest BAT qemu-img 7.2 cannot read back (measured: 1 GiB reads,
 * 2 GiB does not). */
#define MAX_BAT_LEN (2048 * VHDX_MIB)

struct vhdx_w {
    struct output_vhdx_layout l;
    bool fixed;
    /* BAT entries to write: l.bat_entries, or none for an empty disk
     * (qemu's 64 MiB of zero entries stay a hole). */
    uint64_t entries;
    uint64_t next_block; /* file offset of the next new payload block */
    uint8_t *buf;        /* I/O area, BUF_SIZE bytes */
    uint64_t page_first; /* BAT entries [page_first, +PAGE_ENTRIES) */
};

/* The metadata items (2.6.2), in qemu's order; their data follows the
 * 64 KiB table back to back. */
enum { I_FILE_PARAMS, I_VSIZE, I_PAGE83, I_LSS, I_PSS, I_COUNT };
static const struct {
    uint8_t guid[16];
    uint32_t len, flags;
} items[I_COUNT] = {
    [I_FILE_PARAMS] = {VHDX_GUID_FILE_PARAMS, 8, VHDX_META_IS_REQUIRED},
    [I_VSIZE] = {VHDX_GUID_VSIZE, 8,
                 VHDX_META_IS_VIRTUAL_DISK | VHDX_META_IS_REQUIRED},
    [I_PAGE83] = {VHDX_GUID_PAGE83, 16,
                  VHDX_META_IS_VIRTUAL_DISK | VHDX_META_IS_REQUIRED},
    [I_LSS] = {VHDX_GUID_LSS, 4,
               VHDX_META_IS_VIRTUAL_DISK | VHDX_META_IS_REQUIRED},
    [I_PSS] = {VHDX_GUID_PSS, 4,
               VHDX_META_IS_VIRTUAL_DISK | VHDX_META_IS_REQUIRED},
};
static const uint8_t guid_bat[16] = VHDX_GUID_BAT;
static const uint8_t guid_metadata[16] = VHDX_GUID_METADATA;

/* ---- BAT ------------------------------------------------------------------ */

static uint64_t entry_index(const struct vhdx_w *s, uint64_t block)
{
    return block + block / s->l.chunk_ratio;
}

/* What entry e holds until its block is written: ZERO for payload
 * blocks, as qemu's create leaves them; 0 for sector bitmap entries
 * (every chunk_ratio + 1-th) and past the last entry. */
static uint64_t initial_entry(const struct vhdx_w *s, uint64_t e)
{
    if (e >= s->entries || e % (s->l.chunk_ratio + 1) == s->l.chunk_ratio)
        return 0;
    return VHDX_PAYLOAD_ZERO;
}

static void page_fill(struct vhdx_w *s)
{
    for (uint64_t i = 0; i < PAGE_ENTRIES; i++)
        put_le64(s->buf + 8 * i, initial_entry(s, s->page_first + i));
}

/* Writes out the entries of the page that exist. */
static int page_flush(struct fmt_writer *w, struct vhdx_w *s)
{
    uint64_t n;
    if (s->page_first >= s->entries)
        return G_OK;
    n = s->entries - s->page_first;
    if (n > PAGE_ENTRIES)
        n = PAGE_ENTRIES;
    return fmt_out_write(w, OUTPUT_VHDX_BAT_OFFSET + 8 * s->page_first,
                         s->buf, 8 * n);
}

/* Moves the page forward until it holds entry e. The entries passed are
 * final (writes come in order), so they are written out. */
static int page_seek(struct fmt_writer *w, struct vhdx_w *s, uint64_t e)
{
    int ret;
    while (e - s->page_first >= PAGE_ENTRIES) {
        if ((ret = page_flush(w, s)) != G_OK)
            return ret;
        s->page_first += PAGE_ENTRIES;
        page_fill(s);
    }
    return G_OK;
}

/*
 * Where virtual offset off lives in the file: *foff, or UINT64_MAX while
 * its block is unallocated (it reads as zeros). With allocate, an
 * unallocated block is first placed at the end of the file. The answer
 * holds for the block at the writer's position and after it; earlier
 * entries may have been written out already, and asking for them is an
 * order error.
 */
static int vhdx_w_map(struct fmt_writer *w, uint64_t off, bool allocate,
                      uint64_t *foff)
{
    struct vhdx_w *s = w->priv;
    uint64_t e = entry_index(s, off / s->l.block_size), entry;
    uint8_t *p;
    int ret;

    *foff = UINT64_MAX;
    if (off >= w->vsize || e < s->page_first)
        return g_fail(w->env->err, G_EINVAL,
                      "vhdx: offset %llu is not mapped by the writer "
                      "(engine bug)",
                      (unsigned long long)off);
    if (e - s->page_first >= PAGE_ENTRIES) {
        if (!allocate)
            return G_OK; /* nothing past the page is allocated yet */
        if ((ret = page_seek(w, s, e)) != G_OK)
            return ret;
    }
    p = s->buf + 8 * (e - s->page_first);
    entry = get_le64(p);
    if ((entry & 7) != VHDX_PAYLOAD_FULLY_PRESENT) {
        if (!allocate)
            return G_OK;
        /* Each block is placed once and the bound counts every block,
         * so next_block stays within output_bound(). */
        entry = s->next_block | VHDX_PAYLOAD_FULLY_PRESENT;
        put_le64(p, entry);
        s->next_block += s->l.block_size;
    }
    *foff = (entry >> 20 << 20) + off % s->l.block_size;
    return G_OK;
}

/* ---- data ----------------------------------------------------------------- */

/* One host write per contiguous file range: blocks placed one after the
 * other (always, for in-order writes) make the whole call one range. */
static int vhdx_w_write(struct fmt_writer *w, uint64_t off, const void *buf,
                        uint64_t len)
{
    struct vhdx_w *s = w->priv;
    const uint8_t *p = buf, *run = buf;
    uint64_t run_off = 0, run_len = 0, foff;
    int ret;

    while (len) {
        uint64_t n = s->l.block_size - off % s->l.block_size;
        if (n > len)
            n = len;
        if ((ret = vhdx_w_map(w, off, true, &foff)) != G_OK)
            return ret;
        if (run_len && foff != run_off + run_len) {
            if ((ret = fmt_out_write_data(w, run_off, run, run_len)) != G_OK)
                return ret;
            run_len = 0;
        }
        if (!run_len) {
            run = p;
            run_off = foff;
        }
        run_len += n;
        off += n;
        p += n;
        len -= n;
    }
    return run_len ? fmt_out_write_data(w, run_off, run, run_len) : G_OK;
}

/* The run of [off, off + len) inside one block, taken as written: the
 * engine puts its bytes there itself (a host copy). */
static int vhdx_w_place(struct fmt_writer *w, uint64_t off, uint64_t len,
                        uint64_t *file_off, uint64_t *n)
{
    struct vhdx_w *s = w->priv;
    uint64_t in_block = s->l.block_size - off % s->l.block_size;
    *n = in_block < len ? in_block : len;
    return vhdx_w_map(w, off, true, file_off);
}

/* Zeros stay where they are: in no block (state ZERO) or in a hole of a
 * block a write() places. */
static int vhdx_w_zero(struct fmt_writer *w, uint64_t off, uint64_t len)
{
    (void)w;
    (void)off;
    (void)len;
    return G_OK;
}

/* ---- fixed structures ----------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    /* splitmix64's finalizer: every input bit reaches every output bit */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Random word i, from all the run's entropy: three GUIDs and a sequence
 * number need more than its 32 bytes. */
static uint64_t random64(const struct fmt_writer *w, uint64_t i)
{
    uint64_t h = (i + 1) * 0x9e3779b97f4a7c15ull;
    for (unsigned k = 0; k < FMT_ENTROPY_LEN; k += 8)
        h = mix64(h ^ get_le64(w->opts->entropy + k));
    return h;
}

/* A version 4 GUID in the on-disk (Microsoft) layout: the version is the
 * high nibble of data3 (byte 7), the variant the top bits of byte 8. */
static void random_guid(const struct fmt_writer *w, uint64_t i, uint8_t *g)
{
    put_le64(g, random64(w, 2 * i));
    put_le64(g + 8, random64(w, 2 * i + 1));
    g[7] = (uint8_t)((g[7] & 0x0f) | 0x40);
    g[8] = (uint8_t)((g[8] & 0x3f) | 0x80);
}

enum { R_FILE_WRITE_GUID, R_DATA_WRITE_GUID, R_DISK_ID, R_SEQUENCE };

static void put_checksum(uint8_t *p, size_t len)
{
    put_le32(p + 4, 0);
    put_le32(p + 4, crc32c_update(0, p, len));
}

/* Metadata table (2.6.1) and its items, with qemu's offsets and flags. */
static int write_metadata(struct fmt_writer *w, struct vhdx_w *s)
{
    uint8_t *t = s->buf, *d = s->buf + 4096;
    uint32_t off = VHDX_MT_SIZE;
    int ret;

    memset(s->buf, 0, BUF_SIZE);
    memcpy(t, "metadata", 8);
    put_le16(t + 10, I_COUNT);
    for (unsigned i = 0; i < I_COUNT; i++) {
        uint8_t *e = t + 32 + 32 * i;
        memcpy(e, items[i].guid, 16);
        put_le32(e + 16, off);
        put_le32(e + 20, items[i].len);
        put_le32(e + 24, items[i].flags);
        off += items[i].len;
    }
    /* block size, then LeaveBlocksAllocated (set for a fixed disk, as
     * qemu sets it) and HasParent 0 */
    put_le32(d, (uint32_t)s->l.block_size);
    put_le32(d + 4, s->fixed ? VHDX_FILE_PARAMS_LEAVE_ALLOCATED : 0);
    put_le64(d + 8, w->vsize);
    random_guid(w, R_DISK_ID, d + 16);
    put_le32(d + 32, SECTOR_SIZE);
    put_le32(d + 36, SECTOR_SIZE);
    if ((ret = fmt_out_write(w, s->l.metadata_offset, t,
                             32 + 32 * I_COUNT)) != G_OK)
        return ret;
    return fmt_out_write(w, s->l.metadata_offset + VHDX_MT_SIZE, d,
                         off - VHDX_MT_SIZE);
}

static void region_entry(uint8_t *e, const uint8_t *guid, uint64_t off,
                         uint64_t len)
{
    memcpy(e, guid, 16);
    put_le64(e + 16, off);
    put_le32(e + 24, (uint32_t)len);
    /* Required (bit 0) stays 0, as qemu writes it. */
}

/* Region table (2.2.3), twice: it has no random field, so it is the same
 * bytes as qemu's. */
static int write_region_tables(struct fmt_writer *w, struct vhdx_w *s)
{
    uint8_t *t = s->buf;
    int ret;

    memset(t, 0, VHDX_RT_SIZE);
    memcpy(t, "regi", 4);
    put_le32(t + 8, 2);
    region_entry(t + 16, guid_bat, OUTPUT_VHDX_BAT_OFFSET, s->l.bat_len);
    region_entry(t + 48, guid_metadata, s->l.metadata_offset, META_LENGTH);
    put_checksum(t, VHDX_RT_SIZE);
    if ((ret = fmt_out_write(w, VHDX_RT1_OFFSET, t, VHDX_RT_SIZE)) != G_OK)
        return ret;
    return fmt_out_write(w, VHDX_RT2_OFFSET, t, VHDX_RT_SIZE);
}

/* Headers (2.2.2): header 2 has the higher sequence number, so it is the
 * current one, as after qemu's create. The log is empty: LogGuid zero. */
static int write_headers(struct fmt_writer *w, struct vhdx_w *s)
{
    uint64_t seq = random64(w, 2 * R_SEQUENCE) & 0xffffffffu;
    int ret;

    for (unsigned i = 0; i < 2; i++) {
        uint8_t *h = s->buf;
        memset(h, 0, VHDX_HEADER_SIZE);
        memcpy(h, "head", 4);
        put_le64(h + 8, seq + i);
        random_guid(w, R_FILE_WRITE_GUID, h + 16);
        random_guid(w, R_DATA_WRITE_GUID, h + 32);
        put_le16(h + 64, 0); /* LogVersion */
        put_le16(h + 66, 1); /* Version */
        put_le32(h + 68, LOG_LENGTH);
        put_le64(h + 72, LOG_OFFSET);
        put_checksum(h, VHDX_HEADER_SIZE);
        ret = fmt_out_write(w, i ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET,
                            h, VHDX_HEADER_SIZE);
        if (ret != G_OK)
            return ret;
    }
    return G_OK;
}

/* File type identifier (2.1): signature and the creator in UTF-16LE. */
static int write_identifier(struct fmt_writer *w, struct vhdx_w *s)
{
    static const char creator[] = CREATOR;
    uint8_t *p = s->buf;

    _Static_assert(2 * (sizeof creator - 1) < VHDX_CREATOR_BYTES,
                   "creator fits its field");
    memset(p, 0, VHDX_CREATOR_OFFSET + VHDX_CREATOR_BYTES);
    memcpy(p, VHDX_SIGNATURE, 8);
    for (size_t i = 0; i + 1 < sizeof creator; i++)
        put_le16(p + VHDX_CREATOR_OFFSET + 2 * i, (uint8_t)creator[i]);
    return fmt_out_write(w, 0, p, VHDX_CREATOR_OFFSET + VHDX_CREATOR_BYTES);
}

static int vhdx_w_finish(struct fmt_writer *w, uint64_t *file_size)
{
    struct vhdx_w *s = w->priv;
    int ret;

    /* The last BAT page first: the buffer is scratch from here on. */
    if ((ret = page_seek(w, s, s->entries)) != G_OK ||
        (ret = page_flush(w, s)) != G_OK ||
        (ret = write_metadata(w, s)) != G_OK ||
        (ret = write_region_tables(w, s)) != G_OK ||
        (ret = write_headers(w, s)) != G_OK ||
        (ret = write_identifier(w, s)) != G_OK)
        return ret;
    /* The file ends with the last block placed (its tail may be a hole)
     * or, with none, where qemu's create ended it: first_block for a
     * dynamic disk (the empty disk's 71 MiB), the end of the space of a
     * fixed disk's blocks. */
    *file_size = s->next_block == s->l.first_block ? s->l.empty_size
                                                   : s->next_block;
    return G_OK;
}

/* The shapes this writer takes: subformat dynamic or fixed, block_size 0
 * or a power of two from 1 to 256 MiB; anything else is refused by name
 * rather than ignored. */
static int check_params(const struct fmt_writer *w)
{
    const struct ct_output_params *p = fmt_params(w);
    uint32_t bs = p->block_size;
    int ret = fmt_params_only(w, FMT_TAKES_SUBFORMAT | FMT_TAKES_BLOCK_SIZE);

    if (ret != G_OK)
        return ret;
    if (p->subformat != CT_SUB_DYNAMIC && p->subformat != CT_SUB_FIXED)
        return g_fail(w->env->err, G_ENOTSUP,
                      "vhdx: subformat %u is not supported (dynamic or "
                      "fixed)",
                      (unsigned)p->subformat);
    if (bs && (bs & (bs - 1) || bs < VHDX_MIB ||
               bs > LIMIT_VHDX_BLOCK_SIZE_MAX))
        return g_fail(w->env->err, G_ENOTSUP,
                      "vhdx: block_size %u is not a power of two from 1 "
                      "to 256 MiB",
                      (unsigned)bs);
    return G_OK;
}

int fmt_vhdx_writer_open(struct fmt_writer *w)
{
    struct vhdx_w *s;
    int ret;

    w->name = "vhdx";
    if ((ret = check_params(w)) != G_OK)
        return ret;
    if (w->vsize > OUTPUT_VHDX_MAX_VSIZE)
        return g_fail(w->env->err, G_ERANGE,
                      "vhdx: virtual size %llu is larger than 64 TiB",
                      (unsigned long long)w->vsize);
    if (!w->opts || !w->opts->entropy)
        return g_fail(w->env->err, G_EINVAL,
                      "vhdx: no entropy for the image's GUIDs");
    s = fmt_alloc(w->env, sizeof *s, "vhdx", "writer state");
    if (!s)
        return G_ENOMEM;
    s->buf = fmt_io_alloc(w->env, BUF_SIZE, "vhdx", "BAT page");
    if (!s->buf)
        return G_ENOMEM;
    s->l = output_vhdx_layout_p(w->vsize, fmt_params(w));
    s->fixed = fmt_params(w)->subformat == CT_SUB_FIXED;
    /* Only an empty disk with 256 MiB blocks gets here (qemu's BAT for it
     * is 2 GiB, output_vhdx_layout_bs()): qemu-img 7.2 fails to write it,
     * and cannot open such a file either (measured: I/O error). */
    if (s->l.bat_len >= MAX_BAT_LEN)
        return g_fail(w->env->err, G_ENOTSUP,
                      "vhdx: refusing to write an empty image with %llu "
                      "MiB blocks: its %llu MiB BAT is more than qemu-img "
                      "7.2 can write or read",
                      (unsigned long long)(s->l.block_size >> 20),
                      (unsigned long long)(s->l.bat_len >> 20));
    s->entries = s->l.blocks ? s->l.bat_entries : 0;
    s->next_block = s->l.first_block;
    s->page_first = 0;
    page_fill(s);
    w->priv = s;
    w->write = vhdx_w_write;
    w->zero = vhdx_w_zero;
    w->finish = vhdx_w_finish;
    w->place = vhdx_w_place;
    return G_OK;
}
