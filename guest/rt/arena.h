/*
 * Bump allocator over a fixed region. Drivers allocate their state and
 * table caches once at open time and never free: a run converts one image
 * chain and exits. Memory comes back zeroed (the region must start zeroed:
 * guest RAM is, host tests use calloc).
 */
#ifndef INSTAR_GUEST_ARENA_H
#define INSTAR_GUEST_ARENA_H

#include <stdint.h>

struct arena {
    uint8_t *base;
    uint64_t size;
    uint64_t used;
};

void arena_init(struct arena *a, void *base, uint64_t size);
/* NULL when the request does not fit; align must be a power of two. */
void *arena_alloc(struct arena *a, uint64_t size, uint64_t align);

#endif
