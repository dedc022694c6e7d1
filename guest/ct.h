#ifndef INSTAR_GUEST_CT_H
#define INSTAR_GUEST_CT_H

#include "ct_ops.h"

extern const struct ct_ops ct_hypercall_ops;

int ct_hello(void);
/* Worker vCPU control (struct par's wake and park). */
void ct_wake(void *hctx);
void ct_park(void *hctx);
__attribute__((noreturn)) void ct_exit(uint32_t status, const char *msg);

#endif
