/*
 * A fixed-size cache of metadata tables (grain directory pages, grain
 * tables, ...) read from image files, least recently used evicted. Its
 * memory is set once, at init, whatever the number of files or tables it
 * serves: one cache can be shared by every extent and every image of a
 * chain. An entry is named by (owner, index): owner tells the tables of
 * one file apart (any non-zero value, e.g. the address of the file's
 * state), index names a table of that owner.
 */
#ifndef INSTAR_GUEST_FMT_TCACHE_H
#define INSTAR_GUEST_FMT_TCACHE_H

#include <stdint.h>

#include "fmt.h"

struct tcache_slot {
    uint64_t owner, index; /* owner 0: the slot holds nothing */
    uint64_t used;         /* last use, from tcache.clock */
    uint8_t *p;            /* slot_bytes, I/O area */
};

struct tcache {
    struct tcache_slot *slot;
    uint32_t nslots;
    uint32_t last;        /* slot of the last hit or load: checked first */
    uint64_t slot_bytes;
    uint64_t clock;
    uint64_t loads;       /* tables read so far (tests, statistics) */
};

/* Fills buf (slot_bytes of I/O area) with table `index` of the owner the
 * loader was given; returns G_OK or a g_fail() code. */
typedef int (*tcache_load_fn)(void *ctx, uint64_t index, uint8_t *buf);

/* nslots buffers of slot_bytes each from env->io, their bookkeeping from
 * env->heap; "FMT: out of ... memory for WHAT" on failure. */
int tcache_init(struct tcache *c, const struct fmt_env *env, uint32_t nslots,
                uint64_t slot_bytes, const char *fmt, const char *what);

/* Table `index` of `owner` (non-zero): from the cache, or loaded into the
 * least recently used slot by load(ctx, index, buf). *out stays valid
 * until the next tcache_get on the same cache. A failed load leaves the
 * slot empty. */
int tcache_get(struct tcache *c, uint64_t owner, uint64_t index,
               tcache_load_fn load, void *ctx, const uint8_t **out);

#endif
