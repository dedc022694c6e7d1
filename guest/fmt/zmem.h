/*
 * zlib streams that allocate only from an arena of their own (inflate.c,
 * deflate.c): zlib may allocate inside inflate()/deflate(), which can run
 * on the worker vCPU, so each stream gets memory no other stream touches.
 * Arena memory lives as long as the run; zlib's frees are no-ops.
 */
#ifndef INSTAR_GUEST_FMT_ZMEM_H
#define INSTAR_GUEST_FMT_ZMEM_H

#include <stdbool.h>
#include <zlib.h>

#include "fmt.h"

static inline voidpf fmt_zmem_alloc(voidpf opaque, uInt items, uInt size)
{
    return arena_alloc(opaque, (uint64_t)items * size, 16);
}

static inline void fmt_zmem_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    (void)p;
}

/* Takes `size` bytes from env->heap for mem and points zs's allocator at
 * them; false (with a message naming fmt) when they do not fit. */
static inline bool fmt_zmem_init(z_stream *zs, struct arena *mem,
                                 const struct fmt_env *env, uint64_t size,
                                 const char *fmt, const char *what)
{
    void *base = fmt_alloc(env, size, fmt, what);
    if (!base)
        return false;
    arena_init(mem, base, size);
    zs->zalloc = fmt_zmem_alloc;
    zs->zfree = fmt_zmem_free;
    zs->opaque = mem;
    return true;
}

#endif
