/* The shared table cache: least recently used eviction across owners. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fmt/tcache.h"

#define SLOT 64u

struct rig {
    uint8_t *hm, *im;
    struct arena heap, io;
    struct g_error err;
    struct fmt_env env;
    struct tcache c;
    unsigned loads[4][16]; /* per owner and index */
    int fail;              /* make the next load fail */
};

static void rig_init(struct rig *g, uint32_t nslots)
{
    memset(g, 0, sizeof *g);
    g->hm = calloc(1, 1 << 20);
    g->im = calloc(1, 1 << 16);
    arena_init(&g->heap, g->hm, 1 << 20);
    arena_init(&g->io, g->im, 1 << 16);
    g->env = (struct fmt_env){NULL, &g->err, &g->heap,     &g->io,
                              NULL, 0,       NULL, FMT_REFS_OPEN};
    cr_assert_eq(tcache_init(&g->c, &g->env, nslots, SLOT, "t", "tables"),
                 G_OK);
}

static void rig_free(struct rig *g)
{
    free(g->hm);
    free(g->im);
}

/* What table (owner, index) holds: a pattern both name. */
static uint8_t fill(uint64_t owner, uint64_t index, unsigned i)
{
    return (uint8_t)(owner * 31 + index * 7 + i);
}

struct load_ctx {
    struct rig *g;
    uint64_t owner;
};

static int load(void *ctx, uint64_t index, uint8_t *buf)
{
    struct load_ctx *l = ctx;
    if (l->g->fail) {
        l->g->fail = 0;
        memset(buf, 0xee, SLOT); /* a half-done read */
        return g_fail(l->g->env.err, G_EIO, "t: read failed");
    }
    l->g->loads[l->owner][index]++;
    for (unsigned i = 0; i < SLOT; i++)
        buf[i] = fill(l->owner, index, i);
    return G_OK;
}

/* Gets (owner, index) and checks its bytes. */
static void get(struct rig *g, uint64_t owner, uint64_t index)
{
    struct load_ctx l = {g, owner};
    const uint8_t *p = NULL;
    cr_assert_eq(tcache_get(&g->c, owner, index, load, &l, &p), G_OK);
    for (unsigned i = 0; i < SLOT; i++)
        cr_assert_eq(p[i], fill(owner, index, i),
                     "owner %llu table %llu byte %u",
                     (unsigned long long)owner, (unsigned long long)index,
                     i);
}

Test(tcache, hits_do_not_reload)
{
    struct rig g;
    rig_init(&g, 4);
    for (int round = 0; round < 3; round++)
        for (uint64_t t = 0; t < 4; t++)
            get(&g, 1, t);
    for (uint64_t t = 0; t < 4; t++)
        cr_expect_eq(g.loads[1][t], 1);
    cr_expect_eq(g.c.loads, 4);
    rig_free(&g);
}

Test(tcache, owners_are_told_apart)
{
    struct rig g;
    rig_init(&g, 4);
    get(&g, 1, 5);
    get(&g, 2, 5); /* same index, another extent */
    get(&g, 1, 5);
    get(&g, 2, 5);
    cr_expect_eq(g.loads[1][5], 1);
    cr_expect_eq(g.loads[2][5], 1);
    rig_free(&g);
}

Test(tcache, least_recently_used_is_evicted_across_owners)
{
    struct rig g;
    rig_init(&g, 3);
    get(&g, 1, 0);
    get(&g, 2, 0);
    get(&g, 3, 0);
    get(&g, 1, 0); /* owner 2's table is now the least recently used */
    get(&g, 3, 1); /* evicts (2, 0) */
    cr_expect_eq(g.c.loads, 4);
    get(&g, 1, 0);
    get(&g, 3, 0);
    get(&g, 3, 1);
    cr_expect_eq(g.c.loads, 4, "(1,0), (3,0), (3,1) stayed");
    get(&g, 2, 0); /* reloaded, evicting (1, 0): used before (3,0) */
    cr_expect_eq(g.loads[2][0], 2);
    get(&g, 3, 0);
    get(&g, 3, 1);
    cr_expect_eq(g.c.loads, 5);
    get(&g, 1, 0);
    cr_expect_eq(g.loads[1][0], 2);
    rig_free(&g);
}

Test(tcache, cycling_through_more_tables_than_slots)
{
    /* more tables than slots, visited in turn across owners: every visit
     * after the first round reloads, and the bytes are always right */
    struct rig g;
    rig_init(&g, 5);
    for (int round = 0; round < 3; round++)
        for (uint64_t o = 1; o < 4; o++)
            for (uint64_t t = 0; t < 2; t++)
                get(&g, o, t);
    cr_expect_eq(g.c.loads, 18);
    rig_free(&g);
}

Test(tcache, failed_load_leaves_the_slot_empty)
{
    struct rig g;
    struct load_ctx l = {&g, 1};
    const uint8_t *p = NULL;
    rig_init(&g, 2);
    get(&g, 1, 0);
    g.fail = 1;
    cr_expect_eq(tcache_get(&g.c, 1, 1, load, &l, &p), G_EIO);
    cr_expect_str_eq(g.err.msg, "t: read failed");
    get(&g, 1, 1); /* loaded again, not served half-read */
    cr_expect_eq(g.loads[1][1], 1);
    get(&g, 1, 0);
    cr_expect_eq(g.loads[1][0], 1, "the failure evicted nothing else");
    rig_free(&g);
}

Test(tcache, out_of_io_memory_is_named)
{
    struct rig g;
    rig_init(&g, 1);
    cr_expect_eq(tcache_init(&g.c, &g.env, 4096, 4096, "t", "tables"),
                 G_ENOMEM);
    cr_expect_str_eq(g.err.msg,
                     "t: out of I/O memory for tables (16777216 bytes)");
    rig_free(&g);
}
