/*
 * Errors are values: every fallible guest function returns 0 or a negative
 * G_E* code. The first failure also records one message, which names the
 * format and field ("raw: read at offset 4096 failed: I/O error"); later
 * failures keep the first message, which is the root cause.
 */
#ifndef INSTAR_GUEST_ERR_H
#define INSTAR_GUEST_ERR_H

#include <stddef.h>

enum g_err {
    G_OK = 0,
    G_EIO = -5,
    G_ENOMEM = -12,
    G_ENOSPC = -28,
    G_EINVAL = -22,
    G_ERANGE = -34,
    G_ECORRUPT = -74,
    G_ENOTSUP = -95
};

/* As long as the host takes (CT_MSG_MAX): names are clipped where they are
 * shown, so the reason at the end of a message is never cut. */
#define G_MSG_MAX 1024

struct g_error {
    int code;
    char msg[G_MSG_MAX];
};

/* Records code and message if none is recorded yet; returns code. */
int g_fail(struct g_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
