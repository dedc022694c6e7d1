#include "err.h"

#include <stdarg.h>

#include "ct_ops.h"
#include "rt/rt.h"

int g_fail(struct g_error *e, int code, const char *fmt, ...)
{
    if (e->code == G_OK) {
        va_list ap;
        va_start(ap, fmt);
        rt_vfmt(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

const char *ct_result_str(int ret)
{
    switch (ret) {
    case CT_OK:
        return "success";
    case CT_EINVAL:
        return "invalid argument";
    case CT_EBADH:
        return "bad handle";
    case CT_EIO:
        return "I/O error";
    case CT_ERANGE:
        return "out of range";
    case CT_ESTATE:
        return "call not valid now";
    case CT_EPERM:
        return "refused by host policy";
    case CT_ELIMIT:
        return "host limit reached";
    case CT_ENOSPC:
        return "no space left on device";
    case CT_ENOTSUP:
        return "not supported by the host here";
    default:
        return "unknown host error";
    }
}
