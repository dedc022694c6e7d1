/* The holes of plain extents' files (holes.h), from the host's map call. */
#include "holes.h"

void holes_init(struct holes *h, const struct ct_ops *ops)
{
    *h = (struct holes){.ops = ops, .off = ops->map == 0};
}

/* Asks the host about slot f's file from `off`. */
static int ask(struct holes *h, struct holes_file *f, uint64_t off,
               struct g_error *err)
{
    uint64_t data = 0, hole = 0;
    int ret = h->ops->map(h->ops->ctx, f->handle, off, &data, &hole);
    if (ret == CT_ENOTSUP) {
        h->off = true;
        return G_OK;
    }
    if (ret != CT_OK)
        return g_fail(err, G_EIO, "engine: map of file %u at %llu failed: %s",
                      (unsigned)f->handle, (unsigned long long)off,
                      ct_result_str(ret));
    if (data < off || hole < data || hole > f->size)
        return g_fail(err, G_EIO,
                      "engine: map of file %u at %llu answered %llu, %llu",
                      (unsigned)f->handle, (unsigned long long)off,
                      (unsigned long long)data, (unsigned long long)hole);
    f->from = off;
    f->data = data;
    f->hole = hole;
    return G_OK;
}

/* The slot of file `handle`, asked about from 0 when it is new. */
static int slot_of(struct holes *h, uint32_t handle, struct holes_file **out,
                   struct g_error *err)
{
    for (unsigned i = 0; i < HOLES_FILES; i++)
        if (h->files[i].used && h->files[i].handle == handle) {
            *out = &h->files[i];
            return G_OK;
        }
    struct holes_file *f = &h->files[h->next];
    h->next = (h->next + 1) % HOLES_FILES;
    *f = (struct holes_file){.used = true, .handle = handle};
    int ret = h->ops->size(h->ops->ctx, handle, &f->size);
    if (ret != CT_OK)
        return g_fail(err, G_EIO, "engine: size of file %u failed: %s",
                      (unsigned)handle, ct_result_str(ret));
    /* Most files (a qcow2, a vmdk) have no hole at all: then their
     * clusters, in whatever order, cost no further call. */
    if ((ret = ask(h, f, 0, err)) != G_OK)
        return ret;
    f->dense = f->data == 0 && f->hole == f->size;
    *out = f;
    return G_OK;
}

int holes_refine(struct holes *h, struct fmt_extent *e, struct g_error *err)
{
    struct holes_file *f = 0;
    int ret;

    if (h->off || e->kind != FMT_EXTENT_PLAIN)
        return G_OK;
    if ((ret = slot_of(h, e->handle, &f, err)) != G_OK || h->off)
        return ret;
    uint64_t at = e->file_off;
    if (at >= f->size) { /* past the end reads as zeros */
        e->kind = FMT_EXTENT_ZERO;
        return G_OK;
    }
    if (f->dense)
        return G_OK;
    /* Known: [from, hole), or [from, size) when the hole runs to the end. */
    bool to_end = f->data == f->size;
    if (at < f->from || (at >= f->hole && !to_end))
        if ((ret = ask(h, f, at, err)) != G_OK || h->off)
            return ret;
    if (at < f->data) {
        e->kind = FMT_EXTENT_ZERO;
        if (f->data - at < e->len)
            e->len = f->data - at;
    } else if (f->hole - at < e->len) {
        e->len = f->hole - at;
    }
    return G_OK;
}
