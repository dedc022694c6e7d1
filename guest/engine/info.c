/*
 * info = open the input without following what it refers to (or, with
 * --backing-chain, following it), then one IMAGE object per image: what
 * every image has, the reader's own facts and checks (fmt_reader.info),
 * and the format-confusion check.
 */
#include "info.h"
#include "../fmt/info.h"
#include "../rt/rt.h"

/* Formats another signature in the file may name (probe.c's magic table,
 * the descriptor text, the tail, ISO). */
#define CONFUSION_NAMES_MAX 16u

struct probe_buf {
    uint8_t *head, *tail, *iso;
};

/* The file also carries another format's signature: a tool that probes
 * differently (or a later qemu) may read it as that format. An ISO 9660
 * volume inside a raw image is only a raw disk holding a CD image. */
static int confusion(struct fmt_reader *r, struct fmt_info *s,
                     const struct probe_buf *b)
{
    const struct fmt_env *env = r->env;
    const char *names[CONFUSION_NAMES_MAX];
    uint64_t hn = 0, tn = 0, in = 0;
    char msg[96];
    int ret;

    if ((ret = fmt_pread_partial(env, r->handle, 0, b->head, FMT_PROBE_LEN,
                                 &hn, "info")) != G_OK)
        return ret;
    if (r->file_size >= FMT_PROBE_TAIL_LEN &&
        (ret = fmt_pread_partial(env, r->handle,
                                 r->file_size - FMT_PROBE_TAIL_LEN, b->tail,
                                 FMT_PROBE_TAIL_LEN, &tn, "info")) != G_OK)
        return ret;
    if ((ret = fmt_pread_partial(env, r->handle, FMT_PROBE_ISO_OFF, b->iso, 5,
                                 &in, "info")) != G_OK)
        return ret;
    uint32_t n = fmt_probe_all(b->head, hn, b->tail, tn, b->iso, in, names,
                               CONFUSION_NAMES_MAX);
    for (uint32_t i = 0; i < n; i++) {
        const char *o = names[i];
        bool same = rt_strlen(o) == rt_strlen(r->name) &&
                    memcmp(o, r->name, rt_strlen(o)) == 0;
        if (same || (r->format == CT_FMT_RAW && !memcmp(o, "iso", 4)))
            continue;
        rt_fmt(msg, sizeof msg, "%s", o);
        return fmt_info_reason(s, CT_SAFETY_CONFUSION, msg);
    }
    return G_OK;
}

static int describe(struct fmt_reader *r, struct fmt_info *s,
                    const struct probe_buf *b)
{
    int ret;

    if ((ret = fmt_info_begin(s, CT_INFO_IMAGE, r->handle)) != G_OK ||
        (ret = fmt_info_enum(s, CT_INFO_FORMAT, r->format)) != G_OK ||
        /* qemu counts whole sectors: a raw file of 3000 bytes is a disk
         * of 3072 (the other formats are whole sectors already) */
        (ret = fmt_info_u64(s, CT_INFO_VIRTUAL_SIZE,
                            (r->vsize + 511) & ~511ull)) != G_OK)
        return ret;
    /* A reader without facts of its own is never dirty; the others say
     * (qemu omits the flag where it has no answer). */
    if ((r->info ? (ret = r->info(r, s))
                 : (ret = fmt_info_bool(s, CT_INFO_DIRTY, false))) != G_OK)
        return ret;
    if ((ret = confusion(r, s, b)) != G_OK)
        return ret;
    if (r->backing_refused &&
        (ret = fmt_info_reason(s, CT_SAFETY_REFUSED, "")) != G_OK)
        return ret;
    return fmt_info_end(s, CT_INFO_IMAGE);
}

int info_run(const struct info_config *cfg, const struct ct_ops *ops,
             const struct dd_mem *mem, struct g_error *err)
{
    struct arena heap, io;
    struct fmt_chain chain = {0};
    struct fmt_env env = {ops,      err,           &heap, &io,
                          mem->par, cfg->files_max, &chain,
                          cfg->chain ? FMT_REFS_CHAIN : FMT_REFS_NAME};
    struct fmt_reader *r;
    struct fmt_info s;
    struct probe_buf b;
    int ret;

    arena_init(&heap, mem->heap, mem->heap_size);
    arena_init(&io, mem->io, mem->io_size);
    b.head = fmt_io_alloc(&env, FMT_PROBE_LEN + FMT_PROBE_TAIL_LEN + 512,
                          "info", "probe buffer");
    if (!b.head)
        return G_ENOMEM;
    b.tail = b.head + FMT_PROBE_LEN;
    b.iso = b.tail + FMT_PROBE_TAIL_LEN;
    if ((ret = fmt_open_named(&env, CT_HANDLE_INPUT, cfg->in_format, 0,
                              cfg->in_dmg_name, &r)) != G_OK ||
        (ret = fmt_info_init(&s, &env)) != G_OK)
        return ret;
    for (; r; r = cfg->chain ? r->backing : NULL)
        if ((ret = describe(r, &s, &b)) != G_OK)
            return ret;
    return fmt_info_flush(&s);
}
