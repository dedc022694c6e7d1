#include "arena.h"

void arena_init(struct arena *a, void *base, uint64_t size)
{
    a->base = base;
    a->size = size;
    a->used = 0;
}

void *arena_alloc(struct arena *a, uint64_t size, uint64_t align)
{
    uint64_t start, end;
    if (align == 0 || (align & (align - 1)) != 0)
        return 0;
    start = (a->used + align - 1) & ~(align - 1);
    if (start < a->used || __builtin_add_overflow(start, size, &end) ||
        end > a->size)
        return 0;
    a->used = end;
    return a->base + start;
}
