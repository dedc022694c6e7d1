/*
 * Renders a checked info stream as qemu-img info 7.2 prints it, text or
 * JSON, plus instar's safety verdict. Keys come out in qemu's order
 * (measured: qemu prints a QDict's keys in its hash order, the same for
 * the text dump of format-specific data and for JSON), every value is
 * formatted here, and text from an image is escaped: JSON as qemu escapes
 * it, the human output with control and invalid bytes replaced by '?'.
 * The filename of an image and of an extent, and the disk size, come from
 * the host's own table of the files it opened, never from the guest.
 */
#define _GNU_SOURCE
#include "info.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- output buffer ------------------------------------------------------ */

struct out {
    int fd;
    bool failed;
    int err; /* the failed write's errno */
    size_t n;
    char buf[64 * 1024];
};

static void flush(struct out *o)
{
    size_t done = 0;
    while (!o->failed && done < o->n) {
        ssize_t w = write(o->fd, o->buf + done, o->n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            o->failed = true;
            o->err = w < 0 ? errno : EIO;
        }
        else
            done += (size_t)w;
    }
    o->n = 0;
}

static void put(struct out *o, const char *p, size_t n)
{
    while (n) {
        size_t k = sizeof o->buf - o->n < n ? sizeof o->buf - o->n : n;
        memcpy(o->buf + o->n, p, k);
        o->n += k;
        p += k;
        n -= k;
        if (o->n == sizeof o->buf)
            flush(o);
    }
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void putf(struct out *o,
                                                       const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void indent(struct out *o, unsigned n)
{
    static const char sp[] = "                                ";
    while (n) {
        unsigned k = n < sizeof sp - 1 ? n : (unsigned)sizeof sp - 1;
        put(o, sp, k);
        n -= k;
    }
}

/* ---- text --------------------------------------------------------------- */

/* One code point of UTF-8 at p (n bytes left): its length in *len, -1 for
 * an invalid sequence. As qemu's JSON writer reads it (measured): an
 * overlong form, a surrogate or a value past U+10FFFF is one invalid
 * sequence; a missing continuation byte ends the sequence before it; the
 * two-byte form of U+0000 is allowed. */
static int32_t utf8(const uint8_t *p, size_t n, size_t *len)
{
    uint8_t c = p[0];
    unsigned need;
    int32_t cp;

    *len = 1;
    if (c < 0x80)
        return c;
    if (c >= 0xc0 && c < 0xe0)
        need = 1, cp = c & 0x1f;
    else if (c >= 0xe0 && c < 0xf0)
        need = 2, cp = c & 0x0f;
    else if (c >= 0xf0 && c < 0xf8)
        need = 3, cp = c & 0x07;
    else
        return -1;
    for (unsigned i = 1; i <= need; i++) {
        if (i >= n || (p[i] & 0xc0) != 0x80) {
            *len = i;
            return -1;
        }
        cp = cp << 6 | (p[i] & 0x3f);
    }
    *len = need + 1;
    static const int32_t min[4] = {0, 0x80, 0x800, 0x10000};
    if (need == 1 && cp == 0)
        return 0; /* modified UTF-8's NUL */
    if (cp < min[need] || (cp >= 0xd800 && cp < 0xe000) || cp > 0x10ffff)
        return -1;
    return cp;
}

static void json_str(struct out *o, const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    put(o, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t len;
        int32_t cp = utf8(p + i, n - i, &len);
        i += len;
        switch (cp) {
        case '"': puts_(o, "\\\""); continue;
        case '\\': puts_(o, "\\\\"); continue;
        case '\b': puts_(o, "\\b"); continue;
        case '\f': puts_(o, "\\f"); continue;
        case '\n': puts_(o, "\\n"); continue;
        case '\r': puts_(o, "\\r"); continue;
        case '\t': puts_(o, "\\t"); continue;
        default: break;
        }
        if (cp < 0)
            cp = 0xfffd;
        if (cp >= 0x20 && cp < 0x7f) {
            char c = (char)cp;
            put(o, &c, 1);
        } else if (cp < 0x10000) {
            putf(o, "\\u%04" PRIX32, (uint32_t)cp);
        } else {
            cp -= 0x10000;
            putf(o, "\\u%04" PRIX32 "\\u%04" PRIX32,
                 (uint32_t)(0xd800 + (cp >> 10)),
                 (uint32_t)(0xdc00 + (cp & 0x3ff)));
        }
    }
    put(o, "\"", 1);
}

/* qemu prints text as it is; instar keeps a terminal safe: control
 * characters (C0, DEL, C1) and invalid UTF-8 become '?'. */
static void human_str(struct out *o, const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        size_t len;
        int32_t cp = utf8(p + i, n - i, &len);
        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
            put(o, "?", 1);
        else
            put(o, s + i, len);
        i += len;
    }
}

void info_human_size(uint64_t n, char *out, size_t cap)
{
    static const char *const unit[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi",
                                       "Ei"};
    unsigned i = 0;
    /* the next unit from 1000 of this one on (measured: 1023488 bytes is
     * "1e+03 KiB", 1024000 is "0.977 MiB") */
    while (i < 6 && n >= 1000ull << (10 * i))
        i++;
    snprintf(out, cap, "%0.3g %sB", (double)n / (double)(1ull << (10 * i)),
             unit[i]);
}

size_t info_path_combine(const char *base, const char *name, size_t name_len,
                         char *out, size_t cap)
{
    size_t dir = 0, colon = strcspn(name, ":/");
    bool alone = name_len && (name[0] == '/' ||
                              (colon < name_len && name[colon] == ':'));
    const char *slash = strrchr(base, '/');

    if (!alone && slash)
        dir = (size_t)(slash - base) + 1;
    if (dir + name_len + 1 > cap)
        return 0;
    memmove(out, base, dir); /* out may be base */
    memmove(out + dir, name, name_len);
    out[dir + name_len] = '\0';
    return dir + name_len;
}

/* ---- the stream as objects ---------------------------------------------- */

struct obj {
    const struct ct_info_rec *k[CT_INFO_KEY_COUNT]; /* direct children */
    const uint8_t *body, *stop; /* records between BEGIN and END */
    uint32_t handle;
};

static size_t rec_size(const struct ct_info_rec *r)
{
    return sizeof *r + (((size_t)r->len + 7) & ~(size_t)7);
}

static const char *text(const struct ct_info_rec *r)
{
    return (const char *)(r + 1);
}

/* The object whose BEGIN is at p; returns what follows its END. */
static const uint8_t *object(const uint8_t *p, struct obj *o)
{
    const struct ct_info_rec *b = (const struct ct_info_rec *)p;
    unsigned depth = 0;

    memset(o, 0, sizeof *o);
    o->handle = (uint32_t)b->value;
    o->body = p += sizeof *b;
    for (;;) {
        const struct ct_info_rec *r = (const struct ct_info_rec *)p;
        if (r->type == CT_INFO_T_END && depth-- == 0) {
            o->stop = p;
            return p + sizeof *r;
        }
        if (r->type == CT_INFO_T_BEGIN)
            depth++;
        else if (depth == 0 && r->type != CT_INFO_T_END && !o->k[r->key])
            o->k[r->key] = r;
        p += rec_size(r);
    }
}

/* The next direct child object of `parent` with key `key` after *at. */
static bool child(const struct obj *parent, uint16_t key, const uint8_t **at,
                  struct obj *c)
{
    const uint8_t *p = *at ? *at : parent->body;
    while (p < parent->stop) {
        const struct ct_info_rec *r = (const struct ct_info_rec *)p;
        if (r->type == CT_INFO_T_BEGIN) {
            const uint8_t *next = object(p, c);
            if (r->key == key) {
                *at = next;
                return true;
            }
            p = next;
            continue;
        }
        p += rec_size(r);
    }
    return false;
}

static uint64_t val(const struct obj *o, uint16_t key)
{
    return o->k[key] ? o->k[key]->value : 0;
}

/* ---- what the host knows ----------------------------------------------- */

/* 17 names of up to CT_NAME_MAX, combined */
#define NAME_BUF (80 * 1024)

struct ctx {
    const struct info_render *opt;
    struct out *o;
    char img[NAME_BUF];  /* the image being rendered */
    char name[NAME_BUF]; /* an extent's */
    char full[NAME_BUF]; /* the backing file's, combined */
};

/* The name of granted file h as qemu would show it: the input as given,
 * else its namer's name combined with the name as the image wrote it. */
static const char *filename(const struct vmm_files *f, const char *in_name,
                            uint32_t h, char *buf, size_t cap)
{
    uint32_t chain[CT_CHAIN_DEPTH_MAX + 2];
    unsigned n = 0;

    while (h != 0 && n < CT_CHAIN_DEPTH_MAX + 1) {
        chain[n++] = h;
        h = f->files[h].parent;
    }
    if (strlen(in_name) >= cap)
        return "";
    strcpy(buf, in_name);
    while (n--) {
        const struct vmm_file *x = &f->files[chain[n]];
        char tmp[CT_NAME_MAX + 1];
        const char *nm = x->name == UINT32_MAX ? "" : f->names + x->name;
        size_t len = strlen(nm);
        /* combine in place: the directory part stays where it is */
        memcpy(tmp, nm, len + 1);
        if (!info_path_combine(buf, tmp, len, buf, cap))
            return "";
    }
    return buf;
}

static uint64_t allocated(const struct vmm_files *f, uint32_t h)
{
    struct stat st;
    /* the fstat system call itself: glibc's fstat is newfstatat, which
     * the sandbox does not allow */
    if (h >= f->nfiles || syscall(SYS_fstat, f->files[h].fd, &st) < 0)
        return 0;
    return (uint64_t)st.st_blocks * 512;
}

/* The disk size qemu reports: the image's file, plus (vmdk) the file of
 * every extent line in another file, counted once per line as qemu does
 * (measured with two lines naming one file). */
static uint64_t disk_size(const struct ctx *c, const struct obj *img)
{
    const struct vmm_files *f = c->opt->files;
    uint64_t n = allocated(f, img->handle);
    const uint8_t *at = NULL;
    struct obj x;
    while (child(img, CT_INFO_EXTENT, &at, &x))
        if (x.handle != img->handle)
            n += allocated(f, x.handle);
    return n;
}

static const char *format_name(uint64_t fmt)
{
    static const char *const names[CT_FMT_COUNT] = {
        [CT_FMT_RAW] = "raw",   [CT_FMT_QCOW2] = "qcow2",
        [CT_FMT_VMDK] = "vmdk", [CT_FMT_VPC] = "vpc",
        [CT_FMT_VHDX] = "vhdx"};
    return fmt < CT_FMT_COUNT && names[fmt] ? names[fmt] : "?";
}

/* ---- the safety verdict ------------------------------------------------- */

struct reason {
    const char *rule;    /* stable name */
    char msg[2 * CT_NAME_MAX + 256];
};

#define REASONS_MAX (8 + 64)

static const char *const rule_names[CT_SAFETY_COUNT] = {
    [CT_SAFETY_BACKING_FILE] = "backing-file",
    [CT_SAFETY_DATA_FILE] = "data-file",
    [CT_SAFETY_PARENT] = "parent",
    [CT_SAFETY_VMDK_TYPE] = "vmdk-create-type",
    [CT_SAFETY_VMDK_EXTENT] = "vmdk-extent-file",
    [CT_SAFETY_DIRTY] = "dirty",
    [CT_SAFETY_CORRUPT] = "corrupt",
    [CT_SAFETY_METADATA] = "metadata",
    [CT_SAFETY_CONFUSION] = "format-confusion",
    [CT_SAFETY_REFUSED] = "backing-refused",
    [CT_SAFETY_UNCHECKED] = "unchecked",
};

/* Sets the message to PREFIX TEXT SUFFIX; a text too long is cut (the
 * image's own keys carry it whole). Escaping is the renderers'. */
static void say(struct reason *r, const char *prefix, const char *t,
                size_t n, const char *suffix)
{
    size_t cap = sizeof r->msg - strlen(suffix) - 1;
    size_t k = (size_t)snprintf(r->msg, cap, "%s", prefix);
    if (n > cap - k)
        n = cap - k;
    memcpy(r->msg + k, t, n);
    snprintf(r->msg + k + n, sizeof r->msg - k - n, "%s", suffix);
}

static struct reason *add(struct reason *rs, unsigned *n, unsigned rule)
{
    struct reason *r = &rs[(*n)++];
    r->rule = rule_names[rule];
    r->msg[0] = '\0';
    return r;
}

/* Rules the host decides from the facts, then the guest's reasons. */
static unsigned reasons(struct ctx *c, const struct obj *img,
                        struct reason *rs)
{
    const struct ct_info_rec *b = img->k[CT_INFO_BACKING_FILENAME];
    const struct ct_info_rec *d = img->k[CT_INFO_QCOW2_DATA_FILE];
    const struct ct_info_rec *t = img->k[CT_INFO_VMDK_CREATE_TYPE];
    uint64_t fmt = val(img, CT_INFO_FORMAT);
    unsigned n = 0, others = 0;
    const uint8_t *at = NULL;
    struct obj x;

    if (b && (fmt == CT_FMT_VPC || fmt == CT_FMT_VHDX))
        say(add(rs, &n, CT_SAFETY_PARENT), "parent image '", text(b), b->len,
            "'");
    else if (b)
        say(add(rs, &n, CT_SAFETY_BACKING_FILE), "backing file '", text(b),
            b->len, "'");
    if (d)
        say(add(rs, &n, CT_SAFETY_DATA_FILE), "external data file '",
            text(d), d->len, "'");
    if (t && !((t->len == 16 && !memcmp(text(t), "monolithicSparse", 16)) ||
               (t->len == 15 && !memcmp(text(t), "streamOptimized", 15))))
        say(add(rs, &n, CT_SAFETY_VMDK_TYPE), "vmdk create type '", text(t),
            t->len, "' (only monolithicSparse and streamOptimized keep the "
                    "disk in one file)");
    while (child(img, CT_INFO_EXTENT, &at, &x)) {
        if (x.handle == img->handle || others++)
            continue;
        const char *nm = filename(c->opt->files, c->opt->in_name, x.handle,
                                  c->full, sizeof c->full);
        say(add(rs, &n, CT_SAFETY_VMDK_EXTENT), "vmdk extent in another file "
                                                "'",
            nm, strlen(nm), "'");
    }
    if (val(img, CT_INFO_DIRTY))
        say(add(rs, &n, CT_SAFETY_DIRTY),
            "dirty flag set (the image was not closed cleanly)", "", 0, "");
    if (val(img, CT_INFO_QCOW2_CORRUPT))
        say(add(rs, &n, CT_SAFETY_CORRUPT), "marked corrupt", "", 0, "");
    for (const uint8_t *p = img->body; p < img->stop;) {
        const struct ct_info_rec *r = (const struct ct_info_rec *)p;
        p += rec_size(r);
        if (r->key != CT_INFO_UNSAFE || n >= REASONS_MAX)
            continue;
        struct reason *g = add(rs, &n, (unsigned)r->value);
        switch (r->value) {
        case CT_SAFETY_METADATA:
            say(g, "metadata: ", text(r), r->len, "");
            break;
        case CT_SAFETY_CONFUSION:
            say(g, "the file also carries the signature of ", text(r),
                r->len, "");
            break;
        case CT_SAFETY_REFUSED:
            say(g, "backing file '", b ? text(b) : "", b ? b->len : 0,
                "' refused by the host (not found or not allowed): not "
                "followed");
            break;
        default:
            say(g, "not checked: ", text(r), r->len, "");
            break;
        }
    }
    return n;
}

/* ---- JSON ---------------------------------------------------------------- */

struct js {
    struct out *o;
    unsigned depth;
    bool first[8];
};

static void j_sep(struct js *j)
{
    if (j->depth && !j->first[j->depth])
        put(j->o, ",", 1);
    if (j->depth) {
        put(j->o, "\n", 1);
        indent(j->o, 4 * j->depth);
    }
    j->first[j->depth] = false;
}

static void j_key(struct js *j, const char *k)
{
    j_sep(j);
    putf(j->o, "\"%s\": ", k);
}

static void j_open(struct js *j, char c)
{
    put(j->o, &c, 1);
    j->first[++j->depth] = true;
}

static void j_close(struct js *j, char c)
{
    j->depth--;
    put(j->o, "\n", 1);
    indent(j->o, 4 * j->depth);
    put(j->o, &c, 1);
}

/* A list qemu prints only when it has items: opened before the first. */
static void j_list(struct js *j, const char *k, bool *any)
{
    if (*any)
        return;
    j_key(j, k);
    j_open(j, '[');
    *any = true;
}

static void j_rec(struct js *j, const char *k, const struct ct_info_rec *r)
{
    if (!r)
        return;
    j_key(j, k);
    if (r->type == CT_INFO_T_STR)
        json_str(j->o, text(r), r->len);
    else if (r->type == CT_INFO_T_BOOL)
        puts_(j->o, r->value ? "true" : "false");
    else
        putf(j->o, "%" PRIu64, r->value);
}

static void j_strval(struct js *j, const char *k, const char *s)
{
    j_key(j, k);
    json_str(j->o, s, strlen(s));
}

static void j_snapshot(struct js *j, const struct obj *s)
{
    uint64_t clk = val(s, CT_INFO_SNAP_VM_CLOCK_NSEC);
    j_sep(j);
    j_open(j, '{');
    j_rec(j, "icount", s->k[CT_INFO_SNAP_ICOUNT]);
    j_key(j, "vm-clock-nsec");
    putf(j->o, "%" PRIu64, clk % 1000000000u);
    j_rec(j, "name", s->k[CT_INFO_SNAP_NAME]);
    j_rec(j, "date-sec", s->k[CT_INFO_SNAP_DATE_SEC]);
    j_rec(j, "date-nsec", s->k[CT_INFO_SNAP_DATE_NSEC]);
    j_key(j, "vm-clock-sec");
    putf(j->o, "%" PRIu64, clk / 1000000000u);
    j_rec(j, "id", s->k[CT_INFO_SNAP_ID]);
    j_rec(j, "vm-state-size", s->k[CT_INFO_SNAP_VM_STATE_SIZE]);
    j_close(j, '}');
}

static const char *const bitmap_flags[] = {"in-use", "auto"};

static void j_qcow2(struct js *j, const struct obj *img)
{
    const uint8_t *at = NULL;
    struct obj b;
    bool any = false;

    j_strval(j, "compat", val(img, CT_INFO_QCOW2_COMPAT) == 2 ? "0.10"
                                                               : "1.1");
    j_strval(j, "compression-type",
             val(img, CT_INFO_QCOW2_COMPRESSION) ? "zstd" : "zlib");
    j_rec(j, "lazy-refcounts", img->k[CT_INFO_QCOW2_LAZY_REFCOUNTS]);
    while (child(img, CT_INFO_BITMAP, &at, &b)) {
        j_list(j, "bitmaps", &any);
        j_sep(j);
        j_open(j, '{');
        j_key(j, "flags");
        j_open(j, '[');
        for (unsigned i = 0; i < 2; i++)
            if (val(&b, CT_INFO_BITMAP_FLAGS) >> i & 1) {
                j_sep(j);
                json_str(j->o, bitmap_flags[i], strlen(bitmap_flags[i]));
            }
        j_close(j, ']');
        j_rec(j, "name", b.k[CT_INFO_BITMAP_NAME]);
        j_rec(j, "granularity", b.k[CT_INFO_BITMAP_GRANULARITY]);
        j_close(j, '}');
    }
    if (any)
        j_close(j, ']');
    j_rec(j, "refcount-bits", img->k[CT_INFO_QCOW2_REFCOUNT_BITS]);
    j_rec(j, "data-file", img->k[CT_INFO_QCOW2_DATA_FILE]);
    j_rec(j, "data-file-raw", img->k[CT_INFO_QCOW2_DATA_FILE_RAW]);
    j_rec(j, "corrupt", img->k[CT_INFO_QCOW2_CORRUPT]);
    j_rec(j, "extended-l2", img->k[CT_INFO_QCOW2_EXTENDED_L2]);
}

static void j_vmdk(struct ctx *c, struct js *j, const struct obj *img)
{
    const uint8_t *at = NULL;
    struct obj x;

    j_rec(j, "cid", img->k[CT_INFO_VMDK_CID]);
    j_rec(j, "parent-cid", img->k[CT_INFO_VMDK_PARENT_CID]);
    j_rec(j, "create-type", img->k[CT_INFO_VMDK_CREATE_TYPE]);
    j_key(j, "extents");
    j_open(j, '[');
    while (child(img, CT_INFO_EXTENT, &at, &x)) {
        j_sep(j);
        j_open(j, '{');
        j_rec(j, "compressed", x.k[CT_INFO_COMPRESSED]);
        j_rec(j, "virtual-size", x.k[CT_INFO_VIRTUAL_SIZE]);
        j_strval(j, "filename",
                 filename(c->opt->files, c->opt->in_name, x.handle, c->name,
                          sizeof c->name));
        j_rec(j, "cluster-size", x.k[CT_INFO_CLUSTER_SIZE]);
        j_rec(j, "format", x.k[CT_INFO_EXTENT_FORMAT]);
        j_close(j, '}');
    }
    j_close(j, ']');
}

static void j_safety(struct js *j, const struct reason *rs, unsigned n)
{
    j_key(j, "instar-safety");
    j_open(j, '{');
    j_key(j, "safe");
    puts_(j->o, n ? "false" : "true");
    j_key(j, "reasons");
    j_open(j, '[');
    for (unsigned i = 0; i < n; i++) {
        j_sep(j);
        j_open(j, '{');
        j_strval(j, "rule", rs[i].rule);
        j_strval(j, "message", rs[i].msg);
        j_close(j, '}');
    }
    j_close(j, ']');
    j_close(j, '}');
}

/* One image, keys in qemu's order, then instar's verdict. */
static void j_image(struct ctx *c, struct js *j, const struct obj *img,
                    const struct reason *rs, unsigned nr)
{
    const struct ct_info_rec *b = img->k[CT_INFO_BACKING_FILENAME];
    uint64_t fmt = val(img, CT_INFO_FORMAT);
    const uint8_t *at = NULL;
    struct obj s;
    bool any = false;

    j_open(j, '{');
    if (b)
        j_rec(j, "backing-filename-format", img->k[CT_INFO_BACKING_FORMAT]);
    while (child(img, CT_INFO_SNAPSHOT, &at, &s)) {
        j_list(j, "snapshots", &any);
        j_snapshot(j, &s);
    }
    if (any)
        j_close(j, ']');
    j_rec(j, "virtual-size", img->k[CT_INFO_VIRTUAL_SIZE]);
    j_strval(j, "filename", c->img);
    j_rec(j, "cluster-size", img->k[CT_INFO_CLUSTER_SIZE]);
    j_strval(j, "format", format_name(fmt));
    j_key(j, "actual-size");
    putf(j->o, "%" PRIu64, disk_size(c, img));
    if (fmt == CT_FMT_QCOW2 || fmt == CT_FMT_VMDK) {
        j_key(j, "format-specific");
        j_open(j, '{');
        j_strval(j, "type", format_name(fmt));
        j_key(j, "data");
        j_open(j, '{');
        if (fmt == CT_FMT_QCOW2)
            j_qcow2(j, img);
        else
            j_vmdk(c, j, img);
        j_close(j, '}');
        j_close(j, '}');
    }
    if (b) {
        j_key(j, "full-backing-filename");
        size_t n = info_path_combine(c->img, text(b), b->len, c->full,
                                     sizeof c->full);
        json_str(j->o, c->full, n);
        j_rec(j, "backing-filename", b);
    }
    /* absent when qemu's bdrv_get_info fails (a vmdk whose extents differ
     * in grain size, measured) */
    j_rec(j, "dirty-flag", img->k[CT_INFO_DIRTY]);
    j_safety(j, rs, nr);
    j_close(j, '}');
}

/* ---- human --------------------------------------------------------------- */

static void h_line(struct out *o, unsigned ind, const char *k,
                   const struct ct_info_rec *r)
{
    if (!r)
        return;
    indent(o, ind);
    putf(o, "%s: ", k);
    if (r->type == CT_INFO_T_STR)
        human_str(o, text(r), r->len);
    else if (r->type == CT_INFO_T_BOOL)
        puts_(o, r->value ? "true" : "false");
    else
        putf(o, "%" PRIu64, r->value);
    put(o, "\n", 1);
}

/* One row of qemu's snapshot table (measured widths: a long ID or name
 * pushes the rest of its row). */
static void h_snapshot(struct out *o, const struct obj *s)
{
    const struct ct_info_rec *id = s->k[CT_INFO_SNAP_ID];
    const struct ct_info_rec *nm = s->k[CT_INFO_SNAP_NAME];
    char size[32], date[32] = "", clock[48], icount[24] = "";
    time_t t = (time_t)val(s, CT_INFO_SNAP_DATE_SEC);
    uint64_t ns = val(s, CT_INFO_SNAP_VM_CLOCK_NSEC);
    uint64_t sec = ns / 1000000000u;
    struct tm tm;

    info_human_size(val(s, CT_INFO_SNAP_VM_STATE_SIZE), size, sizeof size);
    /* local time: the zone was loaded before the sandbox (info.c) */
    if (localtime_r(&t, &tm))
        strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(clock, sizeof clock, "%02" PRIu64 ":%02u:%02u.%03u", sec / 3600,
             (unsigned)(sec / 60 % 60), (unsigned)(sec % 60),
             (unsigned)(ns / 1000000 % 1000));
    if (s->k[CT_INFO_SNAP_ICOUNT])
        snprintf(icount, sizeof icount, "%" PRIu64,
                 val(s, CT_INFO_SNAP_ICOUNT));
    human_str(o, text(id), id->len);
    indent(o, id->len < 9 ? 9 - id->len : 0);
    put(o, " ", 1);
    human_str(o, text(nm), nm->len);
    indent(o, nm->len < 16 ? 16 - nm->len : 0);
    putf(o, " %8s%20s%13s%11s\n", size, date, clock, icount);
}

static void h_snapshots(struct out *o, const struct obj *img)
{
    const uint8_t *at = NULL;
    struct obj s;

    for (bool any = false; child(img, CT_INFO_SNAPSHOT, &at, &s); any = true) {
        if (!any) {
            puts_(o, "Snapshot list:\n");
            putf(o, "%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE",
                 "DATE", "VM CLOCK", "ICOUNT");
        }
        h_snapshot(o, &s);
    }
}

static void h_qcow2(struct out *o, const struct obj *img)
{
    const uint8_t *at = NULL;
    struct obj b;
    bool any = false;

    putf(o, "    compat: %s\n",
         val(img, CT_INFO_QCOW2_COMPAT) == 2 ? "0.10" : "1.1");
    putf(o, "    compression type: %s\n",
         val(img, CT_INFO_QCOW2_COMPRESSION) ? "zstd" : "zlib");
    h_line(o, 4, "lazy refcounts", img->k[CT_INFO_QCOW2_LAZY_REFCOUNTS]);
    for (unsigned i = 0; child(img, CT_INFO_BITMAP, &at, &b); i++) {
        if (!any)
            puts_(o, "    bitmaps:\n");
        any = true;
        putf(o, "        [%u]:\n            flags:\n", i);
        for (unsigned f = 0, k = 0; f < 2; f++)
            if (val(&b, CT_INFO_BITMAP_FLAGS) >> f & 1)
                putf(o, "                [%u]: %s\n", k++, bitmap_flags[f]);
        h_line(o, 12, "name", b.k[CT_INFO_BITMAP_NAME]);
        h_line(o, 12, "granularity", b.k[CT_INFO_BITMAP_GRANULARITY]);
    }
    h_line(o, 4, "refcount bits", img->k[CT_INFO_QCOW2_REFCOUNT_BITS]);
    h_line(o, 4, "data file", img->k[CT_INFO_QCOW2_DATA_FILE]);
    h_line(o, 4, "data file raw", img->k[CT_INFO_QCOW2_DATA_FILE_RAW]);
    h_line(o, 4, "corrupt", img->k[CT_INFO_QCOW2_CORRUPT]);
    h_line(o, 4, "extended l2", img->k[CT_INFO_QCOW2_EXTENDED_L2]);
}

static void h_vmdk(struct ctx *c, const struct obj *img)
{
    struct out *o = c->o;
    const uint8_t *at = NULL;
    struct obj x;

    h_line(o, 4, "cid", img->k[CT_INFO_VMDK_CID]);
    h_line(o, 4, "parent cid", img->k[CT_INFO_VMDK_PARENT_CID]);
    h_line(o, 4, "create type", img->k[CT_INFO_VMDK_CREATE_TYPE]);
    puts_(o, "    extents:\n");
    for (unsigned i = 0; child(img, CT_INFO_EXTENT, &at, &x); i++) {
        putf(o, "        [%u]:\n", i);
        h_line(o, 12, "compressed", x.k[CT_INFO_COMPRESSED]);
        h_line(o, 12, "virtual size", x.k[CT_INFO_VIRTUAL_SIZE]);
        const char *nm = filename(c->opt->files, c->opt->in_name, x.handle,
                                  c->name, sizeof c->name);
        puts_(o, "            filename: ");
        human_str(o, nm, strlen(nm));
        put(o, "\n", 1);
        h_line(o, 12, "cluster size", x.k[CT_INFO_CLUSTER_SIZE]);
        h_line(o, 12, "format", x.k[CT_INFO_EXTENT_FORMAT]);
    }
}

static void h_image(struct ctx *c, const struct obj *img,
                    const struct reason *rs, unsigned nr)
{
    struct out *o = c->o;
    const struct ct_info_rec *b = img->k[CT_INFO_BACKING_FILENAME];
    uint64_t fmt = val(img, CT_INFO_FORMAT);
    char hs[32];
    const char *nm = c->img;

    puts_(o, "image: ");
    human_str(o, nm, strlen(nm));
    putf(o, "\nfile format: %s\n", format_name(fmt));
    info_human_size(val(img, CT_INFO_VIRTUAL_SIZE), hs, sizeof hs);
    putf(o, "virtual size: %s (%" PRIu64 " bytes)\n", hs,
         val(img, CT_INFO_VIRTUAL_SIZE));
    info_human_size(disk_size(c, img), hs, sizeof hs);
    putf(o, "disk size: %s\n", hs);
    h_line(o, 0, "cluster_size", img->k[CT_INFO_CLUSTER_SIZE]);
    if (val(img, CT_INFO_DIRTY))
        puts_(o, "cleanly shut down: no\n");
    if (b) {
        size_t n = info_path_combine(nm, text(b), b->len, c->full,
                                     sizeof c->full);
        puts_(o, "backing file: ");
        human_str(o, text(b), b->len);
        if (n != b->len || memcmp(c->full, text(b), n)) {
            puts_(o, " (actual path: ");
            human_str(o, c->full, n);
            puts_(o, ")");
        }
        put(o, "\n", 1);
        h_line(o, 0, "backing file format", img->k[CT_INFO_BACKING_FORMAT]);
    }
    h_snapshots(o, img);
    if (fmt == CT_FMT_QCOW2 || fmt == CT_FMT_VMDK) {
        puts_(o, "Format specific information:\n");
        if (fmt == CT_FMT_QCOW2)
            h_qcow2(o, img);
        else
            h_vmdk(c, img);
    }
    puts_(o, "instar safety: ");
    puts_(o, nr ? "unsafe: " : "safe");
    for (unsigned i = 0; i < nr; i++) {
        if (i)
            puts_(o, "; ");
        human_str(o, rs[i].msg, strlen(rs[i].msg));
    }
    put(o, "\n", 1);
}

/* ---- the whole stream --------------------------------------------------- */

/* --check-safe: one line a reason, made printable like the text output. */
static void check_line(FILE *f, const char *name, const char *msg)
{
    static struct out o;
    o.fd = fileno(f);
    o.n = 0;
    o.failed = false;
    fflush(f);
    puts_(&o, "instar: ");
    human_str(&o, name, strlen(name));
    puts_(&o, ": not safe: ");
    human_str(&o, msg, strlen(msg));
    put(&o, "\n", 1);
    flush(&o);
}

int info_render(const struct info_stream *st, const struct info_render *opt)
{
    static struct ctx c;
    static struct out o;
    static struct reason rs[REASONS_MAX];
    const uint8_t *p = st->buf, *end = st->buf + st->used;
    struct js j = {&o, 0, {true}};
    bool unsafe = false;

    c.opt = opt;
    c.o = &o;
    o.fd = opt->out_fd;
    o.n = 0;
    o.failed = false;
    /* --backing-chain prints a list, even of one image (measured) */
    if (opt->json && !opt->check_safe && st->chain)
        j_open(&j, '[');
    for (unsigned i = 0; p < end; i++) {
        struct obj img;
        p = object(p, &img);
        filename(opt->files, opt->in_name, img.handle, c.img, sizeof c.img);
        unsigned nr = reasons(&c, &img, rs);
        unsafe |= nr != 0;
        if (opt->check_safe) {
            for (unsigned k = 0; k < nr; k++)
                check_line(opt->msg, c.img, rs[k].msg);
        } else if (opt->json) {
            if (j.depth)
                j_sep(&j);
            j_image(&c, &j, &img, rs, nr);
        } else {
            if (i)
                put(&o, "\n", 1);
            h_image(&c, &img, rs, nr);
        }
    }
    if (opt->json && !opt->check_safe) {
        if (j.depth)
            j_close(&j, ']');
        put(&o, "\n", 1);
    }
    flush(&o);
    if (o.failed) {
        errno = o.err;
        return -1;
    }
    return opt->check_safe && unsafe ? 1 : 0;
}
