/*
 * Every writer, the same properties: random windows over patterned inputs
 * (seeded, so a failure is reproducible), written by dd -O FMT over the
 * memory-backed call table, then read back by the project's own reader
 * for that format. The virtual size is the window's (vpc: CHS-rounded),
 * the data is the window's, and the file is exactly as large as
 * qemu-img dd's (../shared/design/writers.md section 1).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "output_bound.h"
#include "extent_check.h"
#include "writer_rig.h"

#define MiB (1ull << 20)

/* Formats whose writer has landed; the others must still be refused. */
static const uint32_t written[] = {CT_FMT_RAW, CT_FMT_QCOW2, CT_FMT_VPC,
                                   CT_FMT_VMDK, CT_FMT_VHDX};

static bool has_writer(uint32_t fmt)
{
    for (size_t i = 0; i < sizeof written / sizeof written[0]; i++)
        if (written[i] == fmt)
            return true;
    return false;
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* writers.md section 1, for a window of w bytes (v: w rounded to 512),
 * below 2 GiB of file. */
static uint64_t qemu_file_size(uint32_t fmt, uint64_t w)
{
    uint64_t v = div_up(w, 512) * 512, vout;
    switch (fmt) {
    case CT_FMT_RAW:
        return v;
    case CT_FMT_QCOW2: {
        uint64_t l = div_up(v, 512 * MiB);
        uint64_t l1c = div_up(8 * l, 65536);
        return 65536 * (3 + l1c + l + div_up(w, 65536));
    }
    case CT_FMT_VMDK:
        return 512 * output_vmdk_layout(v).overhead +
               65536 * div_up(w, 65536);
    case CT_FMT_VPC: {
        cr_assert(output_vsize(CT_FMT_VPC, v, &vout));
        uint64_t n = div_up(vout, 2 * MiB);
        return 1536 + 512 * div_up(4 * n, 512) +
               div_up(w, 2 * MiB) * (512 + 2 * MiB) + 512;
    }
    case CT_FMT_VHDX: {
        struct output_vhdx_layout l = output_vhdx_layout(v);
        return l.first_block + div_up(w, l.block_size) * l.block_size;
    }
    }
    return 0;
}

static const char *fmt_name(uint32_t fmt)
{
    static const char *const n[CT_FMT_COUNT] = {"probe", "raw", "qcow2",
                                                "vmdk", "vpc", "vhdx"};
    return fmt < CT_FMT_COUNT ? n[fmt] : "?";
}

static uint64_t next(uint64_t *s)
{
    /* splitmix64: a fixed sequence from the seed. */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void check_case(uint32_t fmt, const uint8_t *in, size_t len,
                       struct window_args a, unsigned id)
{
    struct rig r = {0};
    struct window w;
    struct g_error err;
    uint64_t vsize = 0, want_vsize;

    rig_write(&r, in, len, a, fmt, NULL);
    cr_assert(window_compute(len, &a, &w));
    /* The same case through the guest's own path (no host copies): the
     * same file, byte for byte. */
    struct rig g;
    rig_write_guest_path(&g, in, len, a, fmt, NULL);
    expect_same_dd(r.ret, r.err.msg, &r.m, g.ret, g.err.msg, &g.m);
    rig_free(&g);
    if (!has_writer(fmt)) {
        cr_expect_eq(r.ret, G_ENOTSUP, "%s case %u", fmt_name(fmt), id);
        rig_free(&r);
        return;
    }
    if (fmt == CT_FMT_VMDK && w.out_size == 0) {
        /* qemu-img 7.2 cannot read any vmdk of size 0: refused. */
        cr_expect_neq(r.ret, G_OK, "vmdk case %u: empty output written", id);
        rig_free(&r);
        return;
    }
    cr_assert_eq(r.ret, G_OK, "%s case %u (len %zu bs %llu count %llu skip "
                              "%llu): %s",
                 fmt_name(fmt), id, len, (unsigned long long)a.bs,
                 (unsigned long long)a.count, (unsigned long long)a.skip,
                 r.err.msg);
    cr_expect_eq(r.m.out_len, qemu_file_size(fmt, window_len(&w)),
                 "%s case %u: file %zu bytes, qemu-img dd's %llu",
                 fmt_name(fmt), id, r.m.out_len,
                 (unsigned long long)qemu_file_size(fmt, window_len(&w)));
    cr_assert(output_vsize(fmt, w.out_size, &want_vsize));
    uint8_t *back = rig_read_back(&r, fmt, &vsize, &err);
    cr_assert(back, "%s case %u: read back: %s", fmt_name(fmt), id,
              err.msg);
    cr_expect_eq(vsize, want_vsize, "%s case %u: virtual size %llu, want "
                                    "%llu",
                 fmt_name(fmt), id, (unsigned long long)vsize,
                 (unsigned long long)want_vsize);
    for (uint64_t i = 0; i < vsize && i < want_vsize; i++) {
        uint64_t src = w.start + i;
        uint8_t want = i < window_len(&w) && src < len ? in[src] : 0;
        if (back[i] != want) {
            cr_assert_fail("%s case %u: byte %llu reads %u, want %u",
                           fmt_name(fmt), id, (unsigned long long)i,
                           back[i], want);
        }
    }
    free(back);
    rig_free(&r);
}

static void random_windows(uint32_t fmt, unsigned cases, uint64_t max_len,
                           uint64_t seed)
{
    uint64_t s = seed;
    uint8_t *in = rig_pattern(max_len, 3);
    for (unsigned id = 0; id < cases; id++) {
        size_t len = (size_t)(next(&s) % (max_len + 1));
        struct window_args a = {1, 0, 0, false, false};
        static const uint64_t bss[] = {1, 512, 1000, 4096, 65536, MiB};
        a.bs = bss[next(&s) % (sizeof bss / sizeof bss[0])];
        if (next(&s) % 3 == 0) {
            a.has_skip = true;
            a.skip = next(&s) % (len / a.bs + 2);
        }
        if (next(&s) % 3 == 0) {
            a.has_count = true;
            a.count = next(&s) % (len / a.bs + 2);
        }
        check_case(fmt, in, len, a, id);
    }
    free(in);
}

#define FORMAT_TESTS(name, fmt)                                               \
    Test(writers, name##_random_small_windows)                                \
    {                                                                         \
        random_windows(fmt, 150, 3 * MiB, 0x5eed0000 + fmt);                  \
    }                                                                         \
    Test(writers, name##_random_large_windows)                                \
    {                                                                         \
        random_windows(fmt, 12, 40 * MiB, 0x1a46e000 + fmt);                  \
    }                                                                         \
    Test(writers, name##_edges)                                               \
    {                                                                         \
        static const uint64_t lens[] = {0,          512,        3000,         \
                                        65535,      65536,      65537,        \
                                        2 * MiB - 1, 2 * MiB,   2 * MiB + 1,  \
                                        8 * MiB,    8 * MiB + 1,              \
                                        32 * MiB - 512, 32 * MiB + 512};      \
        uint8_t *in = rig_pattern(32 * MiB + 512, 3);                         \
        for (unsigned i = 0; i < sizeof lens / sizeof lens[0]; i++)           \
            check_case(fmt, in, lens[i],                                      \
                       (struct window_args){512, 0, 0, false, false}, i);     \
        free(in);                                                             \
    }

FORMAT_TESTS(raw, CT_FMT_RAW)
FORMAT_TESTS(qcow2, CT_FMT_QCOW2)
FORMAT_TESTS(vmdk, CT_FMT_VMDK)
FORMAT_TESTS(vpc, CT_FMT_VPC)
FORMAT_TESTS(vhdx, CT_FMT_VHDX)
