/* The shared metadata table cache (see tcache.h). */
#include "tcache.h"

int tcache_init(struct tcache *c, const struct fmt_env *env, uint32_t nslots,
                uint64_t slot_bytes, const char *fmt, const char *what)
{
    uint8_t *buf;

    c->nslots = nslots;
    c->slot_bytes = slot_bytes;
    c->clock = 0;
    c->last = 0;
    c->loads = 0;
    c->slot = fmt_alloc(env, (uint64_t)nslots * sizeof *c->slot, fmt, what);
    if (!c->slot)
        return G_ENOMEM;
    /* one allocation: the I/O arena aligns each to 512 bytes */
    buf = fmt_io_alloc(env, (uint64_t)nslots * slot_bytes, fmt, what);
    if (!buf)
        return G_ENOMEM;
    for (uint32_t i = 0; i < nslots; i++)
        c->slot[i] = (struct tcache_slot){0, 0, 0, buf + i * slot_bytes};
    return G_OK;
}

int tcache_get(struct tcache *c, uint64_t owner, uint64_t index,
               tcache_load_fn load, void *ctx, const uint8_t **out)
{
    struct tcache_slot *s = &c->slot[c->last];
    uint32_t victim = 0;
    int ret;

    /* Sequential reads ask for the same table many times in a row. */
    if (s->owner != owner || s->index != index) {
        for (uint32_t i = 0; i < c->nslots; i++) {
            s = &c->slot[i];
            if (s->owner == owner && s->index == index)
                goto hit;
            /* empty slots have used == 0 and go first */
            if (s->used < c->slot[victim].used)
                victim = i;
        }
        s = &c->slot[victim];
        s->owner = 0; /* holds nothing until the load succeeds */
        s->used = 0;
        if ((ret = load(ctx, index, s->p)) != G_OK)
            return ret;
        c->loads++;
        s->owner = owner;
        s->index = index;
    }
hit:
    s->used = ++c->clock;
    c->last = (uint32_t)(s - c->slot);
    *out = s->p;
    return G_OK;
}
