#include "ct_mem.h"

#include "output_bound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Handle -> bytes; handle 0 is the input, later ones were granted. */
static bool file_of(struct ct_mem *m, uint32_t handle, const uint8_t **data,
                    size_t *len)
{
    if (handle == CT_HANDLE_INPUT) {
        *data = m->in;
        *len = m->in_len;
        return true;
    }
    if (handle > m->open_handles)
        return false;
    const struct ct_mem_file *f = &m->files[m->handle_of[handle]];
    *data = f->data;
    *len = f->len;
    return true;
}

bool ct_mem_file(struct ct_mem *m, uint32_t handle, const uint8_t **data,
                 size_t *len)
{
    return file_of(m, handle, data, len);
}

static int m_size(void *ctx, uint32_t handle, uint64_t *size)
{
    const uint8_t *d;
    size_t n;
    if (!file_of(ctx, handle, &d, &n))
        return CT_EBADH;
    *size = n;
    return CT_OK;
}

static int m_read(void *ctx, uint32_t handle, uint64_t off, void *buf,
                  uint64_t len, uint64_t *nread)
{
    struct ct_mem *m = ctx;
    const uint8_t *d;
    size_t dlen;
    if (!file_of(m, handle, &d, &dlen))
        return CT_EBADH;
    if (len > CT_IO_MAX_LEN)
        return CT_ERANGE;
    if ((int)++m->reads == m->fail_read_at)
        return CT_EIO;
    *nread = 0;
    if (off < dlen) {
        uint64_t n = dlen - off < len ? dlen - off : len;
        memcpy(buf, d + off, (size_t)n);
        *nread = n;
        m->bytes_taken += n;
    }
    return CT_OK;
}

/* The output grown to hold [off, off + len): the host's checks, then the
 * bytes' place (zeros until written). NULL when a rule is broken. */
static uint8_t *out_at(struct ct_mem *m, uint64_t off, uint64_t len, int *ret)
{
    uint64_t end;
    *ret = CT_OK;
    if (!m->begun || m->ended) {
        *ret = CT_ESTATE;
        return NULL;
    }
    if (__builtin_add_overflow(off, len, &end) || end > m->out_limit) {
        *ret = CT_ERANGE;
        return NULL;
    }
    if (end > m->out_cap) {
        size_t cap = (size_t)end;
        uint8_t *p = realloc(m->out, cap ? cap : 1);
        if (!p) {
            *ret = CT_EIO;
            return NULL;
        }
        memset(p + m->out_cap, 0, cap - m->out_cap);
        m->out = p;
        m->out_cap = cap;
    }
    if (end > m->out_len)
        m->out_len = (size_t)end;
    return m->out + off;
}

static int put_bytes(struct ct_mem *m, uint64_t off, const void *buf,
                     uint64_t len)
{
    int ret;
    uint8_t *p = out_at(m, off, len, &ret);
    if (!p)
        return ret;
    memcpy(p, buf, (size_t)len);
    m->writes++;
    m->bytes_written += len;
    return CT_OK;
}

/* Does the queued write-behinds up to `ticket`, each checked unchanged
 * since it was queued. */
static int behind_do(struct ct_mem *m, uint64_t ticket)
{
    size_t k = 0;
    for (; k < m->nbehind && m->behind_done < ticket; k++) {
        struct ct_mem_behind *b = &m->behind[k];
        if (memcmp(b->p, b->copy, (size_t)b->len) != 0) {
            fprintf(stderr, "ct_mem: the buffer of write-behind %llu "
                            "(%llu bytes at %llu) changed before its wait\n",
                    (unsigned long long)m->behind_done + 1,
                    (unsigned long long)b->len,
                    (unsigned long long)b->off);
            abort();
        }
        int ret = put_bytes(m, b->off, b->copy, b->len);
        free(b->copy);
        m->behind_done++;
        if (ret != CT_OK)
            return ret;
    }
    memmove(m->behind, m->behind + k, (m->nbehind - k) * sizeof *m->behind);
    m->nbehind -= k;
    return CT_OK;
}

static int behind_drain(struct ct_mem *m)
{
    return behind_do(m, m->behind_made);
}

static int m_write(void *ctx, uint64_t off, const void *buf, uint64_t len)
{
    struct ct_mem *m = ctx;
    int ret = behind_drain(m);
    return ret == CT_OK ? put_bytes(m, off, buf, len) : ret;
}

static int m_write_behind(void *ctx, uint64_t off, const void *buf,
                          uint64_t len, uint64_t *ticket)
{
    struct ct_mem *m = ctx;
    *ticket = m->behind_made;
    if (!len)
        return CT_OK;
    /* Checked now, as the host checks the call before queueing it. */
    uint64_t end;
    if (!m->begun || m->ended)
        return CT_ESTATE;
    if (__builtin_add_overflow(off, len, &end) || end > m->out_limit)
        return CT_ERANGE;
    if (m->nbehind == m->behind_cap) {
        size_t cap = m->behind_cap ? 2 * m->behind_cap : 64;
        struct ct_mem_behind *p = realloc(m->behind, cap * sizeof *p);
        if (!p)
            return CT_EIO;
        m->behind = p;
        m->behind_cap = cap;
    }
    uint8_t *copy = malloc((size_t)len);
    if (!copy)
        return CT_EIO;
    memcpy(copy, buf, (size_t)len);
    m->behind[m->nbehind++] = (struct ct_mem_behind){buf, off, len, copy};
    m->behind_writes++;
    *ticket = ++m->behind_made;
    return CT_OK;
}

static int m_wait(void *ctx, uint64_t ticket)
{
    struct ct_mem *m = ctx;
    m->waits++;
    return ticket > m->behind_made ? CT_EINVAL : behind_do(m, ticket);
}

/* As the host: the list checked whole, then file bytes (or zeros) to the
 * output without the guest's memory. */
static int m_copy(void *ctx, const struct ct_copy_seg *segs, uint32_t count,
                  uint64_t *done, uint64_t *copied)
{
    struct ct_mem *m = ctx;
    uint64_t total = 0;
    int ret;
    *done = *copied = 0;
    if (count == 0 || count > CT_COPY_SEGS_MAX)
        return CT_EINVAL;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *d;
        size_t dlen;
        uint64_t end;
        if (segs[i].len == 0 || segs[i].reserved0 ||
            __builtin_add_overflow(total, segs[i].len, &total) ||
            total > CT_COPY_MAX_LEN)
            return CT_EINVAL;
        if (segs[i].handle == CT_COPY_ZEROS)
            continue;
        if (!file_of(m, segs[i].handle, &d, &dlen))
            return CT_EBADH;
        if (__builtin_add_overflow(segs[i].src_off, segs[i].len, &end) ||
            end > dlen)
            return CT_ERANGE;
    }
    if (m->no_kernel)
        return CT_ENOTSUP;
    if ((ret = behind_drain(m)) != CT_OK)
        return ret;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *d = NULL;
        size_t dlen;
        uint8_t *p = out_at(m, segs[i].dst_off, segs[i].len, &ret);
        if (!p)
            return ret;
        if (segs[i].handle != CT_COPY_ZEROS) {
            file_of(m, segs[i].handle, &d, &dlen);
            memcpy(p, d + segs[i].src_off, (size_t)segs[i].len);
            m->bytes_taken += segs[i].len;
        }
        m->bytes_written += segs[i].len;
        *done = i + 1;
    }
    m->copies++;
    return CT_OK;
}

static int m_begin_output(void *ctx, uint32_t format, uint64_t vsize)
{
    struct ct_mem *m = ctx;
    struct window w;
    if (m->begun || format != m->out_format)
        return CT_ESTATE;
    if (!window_compute(vsize, &m->args, &w) ||
        !output_vsize_p(format, m->out_params, w.out_size, &m->out_vsize))
        return CT_EINVAL;
    m->begun = true;
    m->window_out = w.out_size;
    m->out_limit = output_bound_p(format, m->out_params, m->out_vsize);
    m->skip_notice = w.skip_past_end;
    return CT_OK;
}

static int m_end_output(void *ctx, uint64_t file_size)
{
    struct ct_mem *m = ctx;
    int ret = behind_drain(m);
    if (ret != CT_OK)
        return ret;
    if (!m->begun || m->ended || file_size < m->out_len ||
        file_size > m->out_limit)
        return CT_ESTATE;
    /* Like the host's ftruncate: the file ends at file_size. */
    if (file_size > m->out_cap) {
        uint8_t *p = realloc(m->out, (size_t)file_size);
        if (!p)
            return CT_EIO;
        memset(p + m->out_cap, 0, (size_t)(file_size - m->out_cap));
        m->out = p;
        m->out_cap = (size_t)file_size;
    }
    m->out_len = (size_t)file_size;
    m->ended = true;
    return CT_OK;
}

/* As the host: never back, never past the total. */
static int m_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct ct_mem *m = ctx;
    if (!m->begun || total != m->window_out || done > total ||
        done < m->progress_done)
        return CT_EINVAL;
    m->progress_done = done;
    m->progress_calls++;
    return CT_OK;
}

static bool m_hole_at(const uint8_t *d, size_t n, uint64_t block,
                      uint64_t at)
{
    if (at + block > n)
        return false;
    for (uint64_t i = 0; i < block; i++)
        if (d[at + i])
            return false;
    return true;
}

/* As the host's lseek(SEEK_DATA / SEEK_HOLE), over hole_block blocks. */
static int m_map(void *ctx, uint32_t handle, uint64_t off, uint64_t *data,
                 uint64_t *hole)
{
    struct ct_mem *m = ctx;
    const uint8_t *d;
    size_t n;
    if (!file_of(m, handle, &d, &n))
        return CT_EBADH;
    if (off > n)
        return CT_EINVAL;
    m->maps++;
    *data = off;
    *hole = n;
    if (!m->hole_block)
        return CT_OK;
    uint64_t b = m->hole_block, at = off / b * b;
    while (at < n && m_hole_at(d, n, b, at))
        at += b;
    *data = at < n ? (at > off ? at : off) : n;
    at = *data / b * b;
    while (at < n && !m_hole_at(d, n, b, at))
        at += b;
    *hole = at < n ? (at > *data ? at : *data) : n;
    return CT_OK;
}

static void m_log(void *ctx, const char *msg, uint64_t len)
{
    (void)ctx;
    (void)msg;
    (void)len;
}

/* Like the host: exact-name lookup (no paths), bounded depth, and a file
 * may not be its own ancestor. */
static int m_open_backing(void *ctx, uint32_t parent, const char *name,
                          uint32_t name_len, uint32_t *handle)
{
    struct ct_mem *m = ctx;
    const uint8_t *d;
    size_t n;
    if (!file_of(m, parent, &d, &n))
        return CT_EBADH;
    if (name_len == 0 || name_len > CT_NAME_MAX)
        return CT_EINVAL;
    if (m->parent_depth[parent] + 1 > CT_CHAIN_DEPTH_MAX ||
        m->open_handles + 1 >= CT_MEM_FILES)
        return CT_EPERM;
    for (unsigned i = 1; i <= m->nfiles; i++) {
        if (strlen(m->files[i].name) != name_len ||
            memcmp(m->files[i].name, name, name_len) != 0)
            continue;
        uint32_t h = ++m->open_handles;
        m->handle_of[h] = i;
        m->parent_depth[h] = m->parent_depth[parent] + 1;
        *handle = h;
        return CT_OK;
    }
    return CT_EPERM;
}

/* Info records are kept as sent, for the tests to read back. */
static int m_info(void *ctx, const void *recs, uint64_t len)
{
    struct ct_mem *m = ctx;
    if (len == 0 || len % 8 || len > CT_INFO_BATCH_MAX)
        return CT_EINVAL;
    if (m->info_len + len > CT_INFO_TOTAL_MAX)
        return CT_ELIMIT;
    if (m->info_len + len > m->info_cap) {
        size_t cap = (m->info_len + len) * 2;
        uint8_t *p = realloc(m->info, cap);
        if (!p)
            return CT_EIO;
        m->info = p;
        m->info_cap = cap;
    }
    memcpy(m->info + m->info_len, recs, (size_t)len);
    m->info_len += (size_t)len;
    m->info_calls++;
    return CT_OK;
}

void ct_mem_add_file(struct ct_mem *m, const char *name, const uint8_t *data,
                     size_t len)
{
    if (m->nfiles + 1 < CT_MEM_FILES)
        m->files[++m->nfiles] = (struct ct_mem_file){name, data, len};
}

void ct_mem_init(struct ct_mem *m, const uint8_t *in, size_t in_len,
                 uint32_t out_format, const struct window_args *args)
{
    memset(m, 0, sizeof *m);
    m->in = in;
    m->in_len = in_len;
    m->out_format = out_format;
    m->args = *args;
}

void ct_mem_free(struct ct_mem *m)
{
    free(m->out);
    m->out = NULL;
    free(m->info);
    m->info = NULL;
    for (size_t i = 0; i < m->nbehind; i++)
        free(m->behind[i].copy);
    free(m->behind);
    m->behind = NULL;
    m->nbehind = m->behind_cap = 0;
}

struct ct_ops ct_mem_ops(struct ct_mem *m)
{
    struct ct_ops ops = {.ctx = m,
                         .size = m_size,
                         .read = m_read,
                         .write = m_write,
                         .write_behind = m_write_behind,
                         .wait = m_wait,
                         .begin_output = m_begin_output,
                         .end_output = m_end_output,
                         .copy = m_copy,
                         .log = m_log,
                         .progress = m_progress,
                         .map = m_map,
                         .open_backing = m_open_backing,
                         .info = m_info};
    if (m->no_behind)
        ops.write_behind = NULL, ops.wait = NULL;
    return ops;
}
