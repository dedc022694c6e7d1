/*
 * The writers' compressor (guest/fmt/deflate.c): the same raw deflate
 * stream as host zlib at the default level with the same window and
 * memory level (vmdk's compress() settings, qcow2's), and a refusal when
 * the room is short. vmdk wraps it into compress()'s zlib stream; its
 * tests compare that with compress2() (test_vmdk_write.c).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fmt/deflate.h"
#include "output_bound.h"
#include "writer_rig.h"

#define HEAP (1u << 20)

struct dz {
    struct g_error err;
    struct arena heap;
    void *mem;
    struct fmt_env env;
};

static struct fmt_deflate *dz_new(struct dz *d, int wbits, int level)
{
    memset(d, 0, sizeof *d);
    d->mem = calloc(1, HEAP);
    arena_init(&d->heap, d->mem, HEAP);
    d->env = (struct fmt_env){.err = &d->err, .heap = &d->heap};
    struct fmt_deflate *z = fmt_deflate_new(&d->env, wbits, level, "test");
    cr_assert(z, "%s", d->err.msg);
    return z;
}

/* Host zlib, raw, with the same settings. */
static size_t host_deflate(int wbits, int level, const uint8_t *src,
                           size_t n, uint8_t *dst, size_t cap)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    cr_assert_eq(deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -wbits,
                              level, Z_DEFAULT_STRATEGY),
                 Z_OK);
    s.next_in = (Bytef *)(uintptr_t)src;
    s.avail_in = (uInt)n;
    s.next_out = dst;
    s.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&s, Z_FINISH), Z_STREAM_END);
    size_t out = cap - s.avail_out;
    deflateEnd(&s);
    return out;
}

Test(deflate, same_stream_as_host_zlib)
{
    const size_t n = 64 * 1024;
    const uint64_t cap = 2 * n; /* room for any setting's stored blocks */
    uint8_t *in[4] = {calloc(1, n), rig_pattern(n, 0), malloc(n),
                      rig_pattern(n, 3)};
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        in[2][i] = (uint8_t)x;
    }
    uint8_t *a = malloc(cap), *b = malloc(cap);
    /* vmdk's (compress()'s) settings and qcow2's. */
    static const int settings[][2] = {{15, 8}, {12, 9}};
    for (int m = 0; m < 2; m++) {
        struct dz d;
        int wb = settings[m][0], ml = settings[m][1];
        struct fmt_deflate *z = dz_new(&d, wb, ml);
        for (int k = 0; k < 4; k++)
            for (size_t len = 512; len <= n; len += n / 2 - 256) {
                size_t got = fmt_deflate_try(z, in[k], len, a, cap);
                size_t want = host_deflate(wb, ml, in[k], len, b, cap);
                cr_assert_eq(got, want, "window %d input %d len %zu", wb, k,
                             len);
                cr_assert_eq(memcmp(a, b, got), 0);
            }
        free(d.mem);
    }
    for (int k = 0; k < 4; k++)
        free(in[k]);
    free(a);
    free(b);
}

/* Too little room: refused (0), never a truncated stream taken as whole;
 * the next unit starts afresh. */
Test(deflate, short_room_is_refused)
{
    struct dz d;
    struct fmt_deflate *z = dz_new(&d, 15, 8);
    uint8_t *in = rig_pattern(65536, 0), out[256];
    cr_expect_eq(fmt_deflate_try(z, in, 65536, out, sizeof out), 0u);
    uint8_t zeros[512] = {0};
    size_t got = fmt_deflate_try(z, zeros, sizeof zeros, out, sizeof out);
    cr_assert_gt(got, 0u);
    uint8_t back[512];
    z_stream s;
    memset(&s, 0, sizeof s);
    cr_assert_eq(inflateInit2(&s, -15), Z_OK);
    s.next_in = out;
    s.avail_in = (uInt)got;
    s.next_out = back;
    s.avail_out = sizeof back;
    cr_expect_eq(inflate(&s, Z_FINISH), Z_STREAM_END);
    cr_expect_eq(s.total_out, sizeof back);
    inflateEnd(&s);
    free(in);
    free(d.mem);
}

/* A heap too small for the state is refused, naming the format. */
Test(deflate, heap_too_small_is_refused)
{
    struct g_error err = {0};
    struct arena heap;
    void *mem = calloc(1, 64 * 1024);
    arena_init(&heap, mem, 64 * 1024);
    struct fmt_env env = {.err = &err, .heap = &heap};
    cr_expect_null(fmt_deflate_new(&env, 15, 8, "test"));
    cr_expect(strstr(err.msg, "test"), "%s", err.msg);
    free(mem);
}
