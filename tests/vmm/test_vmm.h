/* Shared harness of the VMM tests (defined in test_vmm.c). */
#ifndef INSTAR_TEST_VMM_H
#define INSTAR_TEST_VMM_H

#include <stddef.h>
#include <stdint.h>

#include "hostile.h"
#include "session.h"

extern const uint8_t hostile_image[];
extern const size_t hostile_image_len;

struct result {
    int exit_code; /* -1 if killed */
    int signal;
    char msg[1024];
    int out_fd;
};

/* Skips without /dev/kvm, or fails when CI=true. */
void need_kvm(void);

void run_guest_ex(const uint8_t *img, size_t len, uint64_t bs,
                  uint32_t in_fmt, const void *in, size_t in_len,
                  const char *in_path, const char *const *extra,
                  unsigned nextra, const struct vmm_limits *lim,
                  struct result *r);
void run_guest(const uint8_t *img, size_t len, uint64_t bs, uint32_t in_fmt,
               const void *in, size_t in_len, const struct vmm_limits *lim,
               struct result *r);

#endif
