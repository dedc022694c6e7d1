#include "ct_mem.h"

#include <stdlib.h>
#include <string.h>

static int m_size(void *ctx, uint32_t handle, uint64_t *size)
{
    struct ct_mem *m = ctx;
    if (handle != CT_HANDLE_INPUT)
        return CT_EBADH;
    *size = m->in_len;
    return CT_OK;
}

static int m_read(void *ctx, uint32_t handle, uint64_t off, void *buf,
                  uint64_t len, uint64_t *nread)
{
    struct ct_mem *m = ctx;
    if (handle != CT_HANDLE_INPUT)
        return CT_EBADH;
    if (len > CT_IO_MAX_LEN)
        return CT_ERANGE;
    if (m->fail_read_at && (int)++m->reads == m->fail_read_at)
        return CT_EIO;
    *nread = 0;
    if (off < m->in_len) {
        uint64_t n = m->in_len - off < len ? m->in_len - off : len;
        memcpy(buf, m->in + off, (size_t)n);
        *nread = n;
    }
    return CT_OK;
}

static int m_write(void *ctx, uint64_t off, const void *buf, uint64_t len)
{
    struct ct_mem *m = ctx;
    uint64_t end;
    if (!m->begun)
        return CT_ESTATE;
    if (__builtin_add_overflow(off, len, &end) || end > m->out_limit)
        return CT_ERANGE;
    if (end > m->out_cap) {
        size_t cap = (size_t)end;
        uint8_t *p = realloc(m->out, cap ? cap : 1);
        if (!p)
            return CT_EIO;
        memset(p + m->out_cap, 0, cap - m->out_cap);
        m->out = p;
        m->out_cap = cap;
    }
    memcpy(m->out + off, buf, (size_t)len);
    if (end > m->out_len)
        m->out_len = (size_t)end;
    m->writes++;
    return CT_OK;
}

static int m_begin_output(void *ctx, uint32_t format, uint64_t vsize)
{
    struct ct_mem *m = ctx;
    struct window w;
    if (m->begun || format != m->out_format)
        return CT_ESTATE;
    if (!window_compute(vsize, &m->args, &w))
        return CT_EINVAL;
    m->begun = true;
    m->out_limit = w.out_size;
    m->skip_notice = w.skip_past_end;
    return CT_OK;
}

static void m_log(void *ctx, const char *msg, uint64_t len)
{
    (void)ctx;
    (void)msg;
    (void)len;
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
}

struct ct_ops ct_mem_ops(struct ct_mem *m)
{
    struct ct_ops ops = {m, m_size, m_read, m_write, m_begin_output, m_log};
    return ops;
}
