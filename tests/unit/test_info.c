/*
 * The host's side of `instar info` without KVM: the check of the guest's
 * records (vmm/info_rec.c) refuses every malformed or misplaced one, and
 * the renderer (vmm/info_out.c) prints qemu-img info's text and JSON with
 * the guest's text escaped.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "info.h"

/* ---- building streams ---------------------------------------------------- */

struct batch {
    uint8_t buf[1 << 16];
    size_t len;
};

static void rec_text(struct batch *b, uint16_t key, uint8_t type,
                     uint64_t value, const char *text, size_t n)
{
    struct ct_info_rec r = {key, type, 0, (uint32_t)n, value};
    size_t pad = (n + 7) & ~(size_t)7;
    memcpy(b->buf + b->len, &r, sizeof r);
    memcpy(b->buf + b->len + sizeof r, text, n);
    memset(b->buf + b->len + sizeof r + n, 0, pad - n);
    b->len += sizeof r + pad;
}

static void rec(struct batch *b, uint16_t key, uint8_t type, uint64_t value)
{
    rec_text(b, key, type, value, "", 0);
}

static void str(struct batch *b, uint16_t key, const char *s)
{
    rec_text(b, key, CT_INFO_T_STR, 0, s, strlen(s));
}

/* An image's opening records: BEGIN, FORMAT, VIRTUAL_SIZE. */
static void image(struct batch *b, uint32_t handle, uint32_t fmt)
{
    rec(b, CT_INFO_IMAGE, CT_INFO_T_BEGIN, handle);
    rec(b, CT_INFO_FORMAT, CT_INFO_T_ENUM, fmt);
    rec(b, CT_INFO_VIRTUAL_SIZE, CT_INFO_T_U64, 1 << 20);
}

static void qcow2_facts(struct batch *b)
{
    rec(b, CT_INFO_QCOW2_COMPAT, CT_INFO_T_ENUM, 3);
    rec(b, CT_INFO_QCOW2_COMPRESSION, CT_INFO_T_ENUM, 0);
    rec(b, CT_INFO_QCOW2_REFCOUNT_BITS, CT_INFO_T_U64, 16);
}

static void end(struct batch *b, uint16_t key)
{
    rec(b, key, CT_INFO_T_END, 0);
}

static struct vmm_files *files;
static struct info_stream st;
static char err[512];

static void setup(void)
{
    files = calloc(1, sizeof *files);
    cr_assert(files);
    files->nfiles = 1;
    files->files[0].fd = -1;
    files->files[0].name = UINT32_MAX;
    memset(&st, 0, sizeof st);
    st.buf = malloc(CT_INFO_TOTAL_MAX);
    cr_assert(st.buf);
    err[0] = '\0';
}

static void teardown(void)
{
    free(files);
    free(st.buf);
}

/* A fresh stream and file table within one test. */
static void reset(void)
{
    teardown();
    setup();
}

/* A file the image `parent` named `name`. */
static uint32_t grant(uint32_t parent, const char *name, int fd)
{
    uint32_t h = files->nfiles++;
    size_t n = strlen(name);
    files->files[h] = (struct vmm_file){.fd = fd, .parent = parent,
                                        .name = (uint32_t)files->names_used};
    memcpy(files->names + files->names_used, name, n + 1);
    files->names_used += n + 1;
    return h;
}

static int add(const struct batch *b)
{
    return info_stream_add(&st, files, b->buf, b->len, err, sizeof err);
}

/* The batch is refused, with `why` in the message. */
static void refused(const struct batch *b, const char *why)
{
    cr_expect_eq(add(b), INFO_BAD, "accepted");
    cr_expect(strstr(err, why), "'%s' does not say '%s'", err, why);
}

TestSuite(info_rec, .init = setup, .fini = teardown);

Test(info_rec, a_whole_qcow2_image_is_accepted)
{
    struct batch b = {.len = 0};
    image(&b, 0, CT_FMT_QCOW2);
    qcow2_facts(&b);
    rec(&b, CT_INFO_CLUSTER_SIZE, CT_INFO_T_U64, 65536);
    str(&b, CT_INFO_BACKING_FILENAME, "base.qcow2");
    rec_text(&b, CT_INFO_UNSAFE, CT_INFO_T_REASON, CT_SAFETY_METADATA, "x",
             1);
    rec(&b, CT_INFO_SNAPSHOT, CT_INFO_T_BEGIN, 0);
    str(&b, CT_INFO_SNAP_ID, "1");
    str(&b, CT_INFO_SNAP_NAME, "s");
    rec(&b, CT_INFO_SNAP_VM_STATE_SIZE, CT_INFO_T_U64, 0);
    rec(&b, CT_INFO_SNAP_DATE_SEC, CT_INFO_T_U64, 0);
    rec(&b, CT_INFO_SNAP_DATE_NSEC, CT_INFO_T_U64, 0);
    rec(&b, CT_INFO_SNAP_VM_CLOCK_NSEC, CT_INFO_T_U64, 0);
    end(&b, CT_INFO_SNAPSHOT);
    end(&b, CT_INFO_IMAGE);
    cr_assert_eq(add(&b), INFO_ACCEPTED, "%s", err);
    cr_expect_eq(info_stream_done(&st, err, sizeof err), 0, "%s", err);
    cr_expect_eq(st.used, b.len);
}

Test(info_rec, records_may_span_batches)
{
    struct batch a = {.len = 0}, b = {.len = 0};
    image(&a, 0, CT_FMT_RAW);
    end(&b, CT_INFO_IMAGE);
    cr_assert_eq(add(&a), INFO_ACCEPTED, "%s", err);
    cr_expect_neq(info_stream_done(&st, err, sizeof err), 0);
    cr_expect(strstr(err, "still open"), "%s", err);
    cr_assert_eq(add(&b), INFO_ACCEPTED, "%s", err);
    cr_expect_eq(info_stream_done(&st, err, sizeof err), 0, "%s", err);
}

Test(info_rec, nothing_is_not_a_description)
{
    cr_expect_neq(info_stream_done(&st, err, sizeof err), 0);
    cr_expect(strstr(err, "no image"), "%s", err);
}

Test(info_rec, unknown_keys)
{
    struct batch b = {.len = 0};
    rec(&b, 0, CT_INFO_T_U64, 0);
    refused(&b, "unknown key 0");
    b.len = 0;
    rec(&b, CT_INFO_KEY_COUNT, CT_INFO_T_U64, 0);
    refused(&b, "unknown key 35");
}

Test(info_rec, a_key_has_one_type)
{
    struct batch b = {.len = 0};
    rec(&b, CT_INFO_IMAGE, CT_INFO_T_BEGIN, 0);
    rec(&b, CT_INFO_FORMAT, CT_INFO_T_U64, CT_FMT_RAW);
    refused(&b, "format has type 3, not 6");
}

Test(info_rec, reserved_byte)
{
    struct batch b = {.len = 0};
    image(&b, 0, CT_FMT_RAW);
    b.buf[3] = 1;
    refused(&b, "reserved byte set");
}

Test(info_rec, values_in_range)
{
    static const struct {
        uint16_t key;
        uint8_t type;
        uint64_t v;
    } bad[] = {
        {CT_INFO_DIRTY, CT_INFO_T_BOOL, 2},
        {CT_INFO_QCOW2_REFCOUNT_BITS, CT_INFO_T_U64, 65},
        {CT_INFO_QCOW2_COMPAT, CT_INFO_T_ENUM, 4},
        {CT_INFO_CLUSTER_SIZE, CT_INFO_T_U64, 0},
        {CT_INFO_VIRTUAL_SIZE, CT_INFO_T_U64, (uint64_t)INT64_MAX + 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct batch b = {.len = 0};
        rec(&b, CT_INFO_IMAGE, CT_INFO_T_BEGIN, 0);
        rec(&b, CT_INFO_FORMAT, CT_INFO_T_ENUM, CT_FMT_QCOW2);
        rec(&b, bad[i].key, bad[i].type, bad[i].v);
        reset();
        refused(&b, "out of range");
    }
    reset();
    struct batch f = {.len = 0};
    rec(&f, CT_INFO_IMAGE, CT_INFO_T_BEGIN, 0);
    rec(&f, CT_INFO_FORMAT, CT_INFO_T_ENUM, CT_FMT_PROBE);
    refused(&f, "format value 0 out of range");
}

Test(info_rec, text_rules)
{
    char name[CT_NAME_MAX + 2];
    struct batch b = {.len = 0};
    image(&b, 0, CT_FMT_RAW);
    rec_text(&b, CT_INFO_BACKING_FILENAME, CT_INFO_T_STR, 0, "a\0b", 3);
    refused(&b, "NUL");

    reset();
    b.len = 0;
    image(&b, 0, CT_FMT_RAW);
    memset(name, 'n', sizeof name);
    rec_text(&b, CT_INFO_BACKING_FILENAME, CT_INFO_T_STR, 0, name,
             CT_NAME_MAX + 1);
    refused(&b, "text of 4096 bytes");

    reset();
    b.len = 0;
    image(&b, 0, CT_FMT_RAW);
    str(&b, CT_INFO_BACKING_FILENAME, "abc");
    b.buf[b.len - 1] = 'x'; /* padding */
    refused(&b, "padding is not zero");

    reset();
    b.len = 0;
    image(&b, 0, CT_FMT_RAW);
    str(&b, CT_INFO_BACKING_FILENAME, "abcdefgh");
    b.len -= 8; /* the text runs past the batch */
    refused(&b, "runs past the batch");

    reset();
    b.len = 0;
    image(&b, 0, CT_FMT_RAW);
    rec_text(&b, CT_INFO_DIRTY, CT_INFO_T_BOOL, 0, "12345678", 8);
    refused(&b, "carries 8 bytes of text");
}

Test(info_rec, places)
{
    struct batch b = {.len = 0};
    image(&b, 0, CT_FMT_RAW);
    rec(&b, CT_INFO_QCOW2_CORRUPT, CT_INFO_T_BOOL, 1);
    refused(&b, "corrupt is not allowed here");

    reset();
    b.len = 0;
    image(&b, 0, CT_FMT_QCOW2);
    rec(&b, CT_INFO_EXTENT, CT_INFO_T_BEGIN, 0);
    refused(&b, "extent is not allowed here");

    reset();
    b.len = 0;
    rec(&b, CT_INFO_VIRTUAL_SIZE, CT_INFO_T_U64, 1);
    refused(&b, "virtual-size is not allowed here");

    reset();
    b.len = 0;
    rec(&b, CT_INFO_IMAGE, CT_INFO_T_BEGIN, 0);
    rec(&b, CT_INFO_VIRTUAL_SIZE, CT_INFO_T_U64, 1);
    refused(&b, "before the image's format");
}

Test(info_rec, too_deep)
{
    struct batch b = {.len = 0};
    image(&b, 0, CT_FMT_VMDK);
    rec(&b, CT_INFO_EXTENT, CT_INFO_T_BEGIN, 0);
    rec(&b, CT_INFO_EXTENT, CT_INFO_T_BEGIN, 0);
    refused(&b, "extent is not allowed here");

    reset();
    b.len = 0;
    image(&b, 0, CT_FMT_VMDK);
    rec(&b, CT_INFO_IMAGE, CT_INFO_T_BEGIN, 0);
    refused(&b, "image is not allowed here");
}

Test(info_rec, once_per_object)
{
    struct batch b = {.len = 0};
    image(&b, 0, CT_FMT_RAW);
    rec(&b, CT_INFO_VIRTUAL_SIZE, CT_INFO_T_U64, 1);
    refused(&b, "virtual-size given twice");
}

Test(info_rec, reasons_the_guest_may_give)
{
    struct batch b = {.len = 0};
    image(&b, 0, CT_FMT_RAW);
    rec(&b, CT_INFO_UNSAFE, CT_INFO_T_REASON, CT_SAFETY_BACKING_FILE);
    refused(&b, "unsafe value 0 out of range");

    reset();
    b.len = 0;
    image(&b, 0, CT_FMT_RAW);
    rec(&b, CT_INFO_UNSAFE, CT_INFO_T_REASON, CT_SAFETY_COUNT);
    refused(&b, "out of range");

    reset();
    b.len = 0;
    image(&b, 0, CT_FMT_RAW);
    for (int i = 0; i < 65; i++)
        rec(&b, CT_INFO_UNSAFE, CT_INFO_T_REASON, CT_SAFETY_METADATA);
    refused(&b, "more than 64 reasons");
}

Test(info_rec, objects_close_in_order_with_their_keys)
{
    struct batch b = {.len = 0};
    end(&b, CT_INFO_IMAGE);
    refused(&b, "end of image, which is not open");

    reset();
    b.len = 0;
    image(&b, 0, CT_FMT_QCOW2);
    end(&b, CT_INFO_IMAGE);
    refused(&b, "image closed without compat");

    reset();
    b.len = 0;
    rec(&b, CT_INFO_IMAGE, CT_INFO_T_BEGIN, 0);
    rec(&b, CT_INFO_FORMAT, CT_INFO_T_ENUM, CT_FMT_RAW);
    end(&b, CT_INFO_IMAGE);
    refused(&b, "image closed without virtual-size");

    reset();
    b.len = 0;
    image(&b, 0, CT_FMT_VMDK);
    end(&b, CT_INFO_EXTENT);
    refused(&b, "end of extent, which is not open");

    reset();
    b.len = 0;
    image(&b, 0, CT_FMT_RAW);
    rec(&b, CT_INFO_IMAGE, CT_INFO_T_END, 5);
    refused(&b, "carries a value");
}

Test(info_rec, images_are_the_input_then_its_chain)
{
    struct batch b = {.len = 0};
    image(&b, 1, CT_FMT_RAW);
    refused(&b, "handle 1 is not the input");

    reset();
    b.len = 0;
    image(&b, 0, CT_FMT_RAW);
    end(&b, CT_INFO_IMAGE);
    image(&b, 0, CT_FMT_RAW);
    refused(&b, "second image without --backing-chain");

    reset();
    st.chain = true;
    uint32_t other = grant(0, "x", -1);
    uint32_t deeper = grant(other, "y", -1);
    b.len = 0;
    image(&b, 0, CT_FMT_RAW);
    end(&b, CT_INFO_IMAGE);
    image(&b, deeper, CT_FMT_RAW);
    refused(&b, "was not named by the previous image");

    reset();
    st.chain = true;
    other = grant(0, "x", -1);
    b.len = 0;
    image(&b, 0, CT_FMT_RAW);
    end(&b, CT_INFO_IMAGE);
    image(&b, other, CT_FMT_RAW);
    end(&b, CT_INFO_IMAGE);
    cr_expect_eq(add(&b), INFO_ACCEPTED, "%s", err);
}

Test(info_rec, extents_are_the_images_files)
{
    uint32_t mine = grant(0, "e", -1);
    uint32_t other = grant(mine, "f", -1);
    struct batch b = {.len = 0};
    image(&b, 0, CT_FMT_VMDK);
    rec(&b, CT_INFO_EXTENT, CT_INFO_T_BEGIN, mine);
    rec(&b, CT_INFO_VIRTUAL_SIZE, CT_INFO_T_U64, 512);
    str(&b, CT_INFO_EXTENT_FORMAT, "FLAT");
    end(&b, CT_INFO_EXTENT);
    rec(&b, CT_INFO_EXTENT, CT_INFO_T_BEGIN, 0);
    rec(&b, CT_INFO_VIRTUAL_SIZE, CT_INFO_T_U64, 512);
    str(&b, CT_INFO_EXTENT_FORMAT, "");
    end(&b, CT_INFO_EXTENT);
    cr_assert_eq(add(&b), INFO_ACCEPTED, "%s", err);
    b.len = 0;
    rec(&b, CT_INFO_EXTENT, CT_INFO_T_BEGIN, other);
    refused(&b, "was not named by its image");
}

Test(info_rec, batch_sizes_and_the_total)
{
    struct batch b = {.len = 0};
    image(&b, 0, CT_FMT_RAW);
    cr_expect_eq(info_stream_add(&st, files, b.buf, b.len - 4, err,
                                 sizeof err),
                 INFO_BAD);
    cr_expect_eq(info_stream_add(&st, files, b.buf, 8, err, sizeof err),
                 INFO_BAD);
    cr_expect_eq(info_stream_add(&st, files, b.buf, CT_INFO_BATCH_MAX + 8,
                                 err, sizeof err),
                 INFO_BAD);
    st.used = CT_INFO_TOTAL_MAX - 16;
    cr_expect_eq(add(&b), INFO_LIMIT);
    cr_expect_eq(st.used, CT_INFO_TOTAL_MAX - 16, "nothing appended");
}

/* ---- rendering ---------------------------------------------------------- */

TestSuite(info_out, .init = setup, .fini = teardown);

/* Renders the stream; returns stdout's text (static). */
static const char *render(bool json, bool check_safe, int *ret)
{
    static char out[1 << 16];
    char path[] = "/tmp/instar-info-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    FILE *msg = tmpfile();
    struct info_render o = {.json = json, .check_safe = check_safe,
                            .in_name = "dir/img.qcow2", .files = files,
                            .out_fd = fd, .msg = msg};
    *ret = info_render(&st, &o);
    ssize_t n = pread(fd, out, sizeof out - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    if (check_safe) { /* the reasons instead */
        rewind(msg);
        n = (ssize_t)fread(out, 1, sizeof out - 1, msg);
        out[n > 0 ? n : 0] = '\0';
    }
    fclose(msg);
    close(fd);
    return out;
}

static void qcow2_with_backing(const char *backing)
{
    struct batch b = {.len = 0};
    char path[] = "/tmp/instar-info-img-XXXXXX";
    files->files[0].fd = mkstemp(path);
    cr_assert_geq(files->files[0].fd, 0);
    unlink(path);
    image(&b, 0, CT_FMT_QCOW2);
    rec(&b, CT_INFO_CLUSTER_SIZE, CT_INFO_T_U64, 65536);
    rec(&b, CT_INFO_DIRTY, CT_INFO_T_BOOL, 0);
    str(&b, CT_INFO_BACKING_FILENAME, backing);
    str(&b, CT_INFO_BACKING_FORMAT, "qcow2");
    qcow2_facts(&b);
    end(&b, CT_INFO_IMAGE);
    cr_assert_eq(add(&b), INFO_ACCEPTED, "%s", err);
}

Test(info_out, json_in_qemus_order)
{
    int ret;
    qcow2_with_backing("base.qcow2");
    const char *j = render(true, false, &ret);
    close(files->files[0].fd);
    cr_expect_eq(ret, 0);
    const char *want =
        "{\n"
        "    \"backing-filename-format\": \"qcow2\",\n"
        "    \"virtual-size\": 1048576,\n"
        "    \"filename\": \"dir/img.qcow2\",\n"
        "    \"cluster-size\": 65536,\n"
        "    \"format\": \"qcow2\",\n"
        "    \"actual-size\": 0,\n"
        "    \"format-specific\": {\n"
        "        \"type\": \"qcow2\",\n"
        "        \"data\": {\n"
        "            \"compat\": \"1.1\",\n"
        "            \"compression-type\": \"zlib\",\n"
        "            \"refcount-bits\": 16\n"
        "        }\n"
        "    },\n"
        "    \"full-backing-filename\": \"dir/base.qcow2\",\n"
        "    \"backing-filename\": \"base.qcow2\",\n"
        "    \"dirty-flag\": false,\n"
        "    \"instar-safety\": {\n"
        "        \"safe\": false,\n"
        "        \"reasons\": [\n"
        "            {\n"
        "                \"rule\": \"backing-file\",\n"
        "                \"message\": \"backing file 'base.qcow2'\"\n"
        "            }\n"
        "        ]\n"
        "    }\n"
        "}\n";
    cr_expect_str_eq(j, want);
}

Test(info_out, human_lines)
{
    int ret;
    qcow2_with_backing("base.qcow2");
    const char *h = render(false, false, &ret);
    close(files->files[0].fd);
    cr_expect_str_eq(h, "image: dir/img.qcow2\n"
                        "file format: qcow2\n"
                        "virtual size: 1 MiB (1048576 bytes)\n"
                        "disk size: 0 B\n"
                        "cluster_size: 65536\n"
                        "backing file: base.qcow2 (actual path: "
                        "dir/base.qcow2)\n"
                        "backing file format: qcow2\n"
                        "Format specific information:\n"
                        "    compat: 1.1\n"
                        "    compression type: zlib\n"
                        "    refcount bits: 16\n"
                        "instar safety: unsafe: backing file 'base.qcow2'\n");
}

Test(info_out, check_safe_prints_reasons_and_fails)
{
    int ret;
    qcow2_with_backing("b\x1b[2J");
    const char *m = render(false, true, &ret);
    close(files->files[0].fd);
    cr_expect_eq(ret, 1);
    cr_expect_str_eq(m, "instar: dir/img.qcow2: not safe: backing file "
                        "'b?[2J'\n");
}

Test(info_out, text_from_the_image_is_escaped)
{
    int ret;
    qcow2_with_backing("\xc3\xa9\x01\"\\\t\xff\xf0\x9f\x98\x80\xc0\xaf"
                       "\xed\xa0\x80\x7f\xc2\x9b");
    const char *j = render(true, false, &ret);
    cr_expect(strstr(j, "\"backing-filename\": \"\\u00E9\\u0001\\\"\\\\\\t"
                        "\\uFFFD\\uD83D\\uDE00\\uFFFD\\uFFFD\\u007F\\u009B\""),
              "%s", j);
    const char *h = render(false, false, &ret);
    close(files->files[0].fd);
    cr_expect(strstr(h, "backing file: \xc3\xa9?\"\\??\xf0\x9f\x98\x80???? "
                        "(actual path:"),
              "%s", h);
}

Test(info_out, chains_are_lists)
{
    int ret;
    struct batch b = {.len = 0};
    char path[] = "/tmp/instar-info-img-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    files->files[0].fd = fd;
    st.chain = true;
    image(&b, 0, CT_FMT_RAW);
    end(&b, CT_INFO_IMAGE);
    cr_assert_eq(add(&b), INFO_ACCEPTED, "%s", err);
    const char *j = render(true, false, &ret);
    close(fd);
    cr_expect_eq(strncmp(j, "[\n    {\n        \"virtual-size\": 1048576,\n",
                         41),
                 0, "%s", j);
    cr_expect(strstr(j, "\n    }\n]\n"), "%s", j);
}

Test(info_out, human_sizes_as_qemu_prints_them)
{
    static const struct {
        uint64_t n;
        const char *s;
    } t[] = {
        {0, "0 B"},           {512, "512 B"},        {999, "999 B"},
        {1000, "0.977 KiB"},  {1536, "1.5 KiB"},     {200704, "196 KiB"},
        {1023488, "1e+03 KiB"}, {1024000, "0.977 MiB"},
        {1265664, "1.21 MiB"}, {10737418240ull, "10 GiB"},
        {UINT64_MAX, "16 EiB"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char s[32];
        info_human_size(t[i].n, s, sizeof s);
        cr_expect_str_eq(s, t[i].s, "%llu", (unsigned long long)t[i].n);
    }
}

Test(info_out, names_combine_as_qemus)
{
    static const struct {
        const char *base, *name, *want;
    } t[] = {
        {"d1/ov.qcow2", "base.qcow2", "d1/base.qcow2"},
        {"ov.qcow2", "base.qcow2", "base.qcow2"},
        {"./d1/ov.qcow2", "base.qcow2", "./d1/base.qcow2"},
        {"d1/d2/ov.qcow2", "../b.qcow2", "d1/d2/../b.qcow2"},
        {"d1/ov.qcow2", "/abs/b.qcow2", "/abs/b.qcow2"},
        {"d1/ov.qcow2", "json:{}", "json:{}"},
        {"d1/ov.qcow2", "x/y:z", "d1/x/y:z"},
        {"/ov.qcow2", "b", "/b"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char out[64];
        size_t n = info_path_combine(t[i].base, t[i].name,
                                     strlen(t[i].name), out, sizeof out);
        cr_expect_eq(n, strlen(t[i].want));
        cr_expect_str_eq(out, t[i].want);
    }
    char tiny[4];
    cr_expect_eq(info_path_combine("d/x", "abc", 3, tiny, sizeof tiny), 0);
}

/* ---- the guest's side, over the memory-backed call table ----------------- */

#include <zlib.h>

#include "ct_mem.h"
#include "engine/info.h"

/* A stored image of baselines/images (gzipped), whole. */
static uint8_t *stored(const char *name, size_t *len)
{
    char path[4096];
    size_t cap = 1 << 20, n = 0;
    uint8_t *p = malloc(cap);
    snprintf(path, sizeof path, "%s/baselines/images/%s.gz", INSTAR_SRC_DIR,
             name);
    gzFile g = gzopen(path, "rb");
    cr_assert(g && p, "%s", path);
    for (int k; (k = gzread(g, p + n, (unsigned)(cap - n))) > 0;) {
        n += (size_t)k;
        if (n == cap)
            cr_assert(p = realloc(p, cap *= 2));
    }
    gzclose(g);
    *len = n;
    return p;
}

/* Describes the image with the guest's code, checks the records with the
 * host's, renders them: the text output. */
static const char *describe(const uint8_t *img, size_t len, uint32_t fmt)
{
    struct ct_mem m;
    struct window_args a = {.bs = 512};
    struct g_error e = {0};
    struct dd_mem mem = {calloc(1, CT_HEAP_SIZE), CT_HEAP_SIZE,
                         calloc(1, CT_IO_SIZE), CT_IO_SIZE, NULL};
    struct info_config cfg = {.in_format = fmt};
    int ret;

    ct_mem_init(&m, img, len, CT_FMT_RAW, &a);
    struct ct_ops ops = ct_mem_ops(&m);
    cr_assert_eq(info_run(&cfg, &ops, &mem, &e), G_OK, "%s", e.msg);
    cr_assert_eq(info_stream_add(&st, files, m.info, m.info_len, err,
                                 sizeof err),
                 INFO_ACCEPTED, "%s", err);
    cr_assert_eq(info_stream_done(&st, err, sizeof err), 0, "%s", err);
    ct_mem_free(&m);
    free(mem.heap);
    free(mem.io);
    char path[] = "/tmp/instar-info-img-XXXXXX";
    files->files[0].fd = mkstemp(path);
    unlink(path);
    const char *out = render(false, false, &ret);
    close(files->files[0].fd);
    cr_assert_eq(ret, 0);
    return out;
}

TestSuite(info_guest, .init = setup, .fini = teardown);

Test(info_guest, every_stored_image_is_described)
{
    static const struct {
        const char *name;
        uint32_t fmt;
        const char *has;
    } t[] = {
        {"qcow2", CT_FMT_PROBE, "compat: 1.1\n"},
        {"qcow2-v2", CT_FMT_PROBE, "compat: 0.10\n"},
        {"qcow2-512", CT_FMT_PROBE, "cluster_size: 512\n"},
        {"qcow2-compressed", CT_FMT_PROBE, "refcount bits: 16\n"},
        {"qcow2-extl2", CT_FMT_PROBE, "extended l2: true\n"},
        {"vmdk-sparse", CT_FMT_PROBE, "create type: monolithicSparse\n"},
        {"vmdk-stream", CT_FMT_PROBE, "compressed: true\n"},
        {"vpc-dynamic", CT_FMT_PROBE, "cluster_size: 2097152\n"},
        {"vpc-fixed", CT_FMT_VPC, "file format: vpc\n"},
        {"vpc-fixed", CT_FMT_PROBE, "the signature of vpc"},
        {"vhdx-dynamic", CT_FMT_PROBE, "file format: vhdx\n"},
        {"vhdx-fixed", CT_FMT_PROBE, "instar safety: safe\n"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        size_t len;
        uint8_t *img = stored(t[i].name, &len);
        reset();
        const char *out = describe(img, len, t[i].fmt);
        cr_expect(strstr(out, t[i].has), "%s: %s", t[i].name, out);
        free(img);
    }
}

/* ---- the command line ----------------------------------------------------- */

#include "info_cli.h"

static int parse(struct info_opts *o, char *msg, size_t n, ...)
{
    char *argv[32] = {"info"};
    int argc = 1;
    va_list ap;
    va_start(ap, n);
    for (char *a; (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    return info_parse_args(argc, argv, o, msg, n);
}

Test(info_cli, options_as_qemu_img_info_takes_them)
{
    struct info_opts o;
    char msg[256];
    cr_assert_eq(parse(&o, msg, sizeof msg, "img", "--output", "json", "-U",
                       "--backing-chain", "-f", "qcow2", "--check-safe",
                       "--backing-dir", "/d", NULL),
                 0, "%s", msg);
    cr_expect_str_eq(o.path, "img");
    cr_expect_str_eq(o.fmt, "qcow2");
    cr_expect(o.json && o.chain && o.check_safe);
    cr_expect_eq(o.n_backing_dirs, 1u);
    cr_assert_eq(parse(&o, msg, sizeof msg, "--output=human", "img", NULL), 0);
    cr_expect(!o.json);
    cr_assert_eq(parse(&o, msg, sizeof msg, "-h", NULL), 0);
    cr_expect(o.help);
}

Test(info_cli, errors_as_qemu_img_info_says_them)
{
    static const struct {
        const char *a, *b, *want;
    } t[] = {
        {NULL, NULL, "Expecting one image file name\nTry 'instar --help' "
                     "for more information"},
        {"a", "b", "Expecting one image file name\nTry 'instar --help' for "
                   "more information"},
        {"--output=xml", "a", "--output must be used with human or json as "
                              "argument."},
        {"-x", "a", "unrecognized option '-x'\nTry 'instar --help' for more "
                    "information"},
        {"a", "--output", "missing argument for option '--output'\nTry "
                          "'instar --help' for more information"},
        {"--image-opts", "a", "option '--image-opts' is not supported"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct info_opts o;
        char msg[256];
        cr_expect_eq(parse(&o, msg, sizeof msg, t[i].a, t[i].b, NULL), -1,
                     "case %zu", i);
        cr_expect_str_eq(msg, t[i].want, "case %zu", i);
    }
}
