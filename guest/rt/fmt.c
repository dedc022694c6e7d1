/* Message formatting for the guest: just enough of printf for errors. */
#include "rt.h"

struct out {
    char *buf;
    size_t n;
    size_t len;
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->n)
        o->buf[o->len++] = c;
}

static void put_str(struct out *o, const char *s)
{
    if (!s)
        s = "(null)";
    while (*s)
        put(o, *s++);
}

static void put_uint(struct out *o, unsigned long long v, unsigned base)
{
    char tmp[24];
    int i = 0;
    do {
        unsigned d = (unsigned)(v % base);
        tmp[i++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v);
    while (i)
        put(o, tmp[--i]);
}

size_t rt_strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

size_t rt_vfmt(char *buf, size_t n, const char *fmt, va_list ap)
{
    struct out o = {buf, n, 0};
    for (; *fmt; fmt++) {
        int lng = 0;
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        fmt++;
        while (*fmt == 'l' || *fmt == 'z') {
            lng = *fmt == 'z' ? 2 : lng + 1;
            fmt++;
        }
        switch (*fmt) {
        case 's':
            put_str(&o, va_arg(ap, const char *));
            break;
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case 'd': {
            long long v = lng ? va_arg(ap, long long) : va_arg(ap, int);
            unsigned long long u = (unsigned long long)v;
            if (v < 0) {
                put(&o, '-');
                u = 0ull - u;
            }
            put_uint(&o, u, 10);
            break;
        }
        case 'u':
        case 'x': {
            unsigned long long v = lng ? va_arg(ap, unsigned long long)
                                       : va_arg(ap, unsigned);
            put_uint(&o, v, *fmt == 'u' ? 10u : 16u);
            break;
        }
        case '%':
            put(&o, '%');
            break;
        default:
            return o.len; /* unknown conversion: stop rather than guess */
        }
        if (!*fmt)
            break;
    }
    if (n)
        buf[o.len] = '\0';
    return o.len;
}

size_t rt_fmt(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t r = rt_vfmt(buf, n, fmt, ap);
    va_end(ap);
    return r;
}
