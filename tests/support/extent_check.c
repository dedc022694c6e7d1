#include "extent_check.h"

#include <criterion/criterion.h>
#include <string.h>

unsigned extent_check(struct fmt_reader *r, struct ct_mem *m, uint8_t *buf,
                      uint64_t buflen, uint64_t off, uint64_t len)
{
    unsigned plain = 0;
    if (!r->extent)
        return 0;
    while (len) {
        struct fmt_extent e = {99, 0, 0, 0};
        cr_assert_eq(r->extent(r, off, len, &e), G_OK, "extent at %llu",
                     (unsigned long long)off);
        cr_assert(e.len >= 1 && e.len <= len, "extent at %llu: %llu of %llu",
                  (unsigned long long)off, (unsigned long long)e.len,
                  (unsigned long long)len);
        cr_assert(e.kind <= FMT_EXTENT_PLAIN);
        for (uint64_t done = 0; done < e.len;) {
            uint64_t n = e.len - done < buflen ? e.len - done : buflen;
            cr_assert_eq(r->read(r, off + done, buf, n), G_OK);
            const uint8_t *file = NULL;
            size_t flen = 0;
            if (e.kind == FMT_EXTENT_PLAIN) {
                cr_assert(ct_mem_file(m, e.handle, &file, &flen),
                          "extent at %llu: bad handle %u",
                          (unsigned long long)off, e.handle);
                cr_assert_leq(e.file_off + e.len, flen,
                              "extent at %llu: past the end of file %u",
                              (unsigned long long)off, e.handle);
            }
            for (uint64_t i = 0; i < n; i++) {
                uint8_t want = e.kind == FMT_EXTENT_PLAIN
                                   ? file[e.file_off + done + i]
                                   : e.kind == FMT_EXTENT_ZERO ? 0 : buf[i];
                if (buf[i] != want)
                    cr_assert_fail("extent at %llu (kind %u): byte %llu "
                                   "reads %u, the extent says %u",
                                   (unsigned long long)off, e.kind,
                                   (unsigned long long)(off + done + i),
                                   buf[i], want);
            }
            done += n;
        }
        plain += e.kind == FMT_EXTENT_PLAIN;
        off += e.len;
        len -= e.len;
    }
    return plain;
}

void expect_same_dd(int ret_a, const char *msg_a, const struct ct_mem *a,
                    int ret_b, const char *msg_b, const struct ct_mem *b)
{
    cr_assert_eq(ret_b, ret_a, "guest path: %s; kernel path: %s", msg_b,
                 msg_a);
    cr_assert_str_eq(msg_b, msg_a);
    cr_assert_eq(b->out_len, a->out_len);
    cr_assert(!a->out_len || !memcmp(a->out, b->out, a->out_len),
              "the two paths wrote other bytes");
}
