/* Puts dd.bin into guest RAM. The image is ours (embedded at build time),
 * but its header is still checked so a mismatched build fails clearly. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "instar_ct.h"
#include "vm.h"

int loader_load(struct vm *vm, const uint8_t *img, size_t len, char *err,
                size_t errlen)
{
    uint64_t magic;
    uint32_t abi;
    uint8_t *dst;

    if (len < CT_EXC_STUBS_OFF + CT_EXC_VECTORS * CT_EXC_STUB_SIZE ||
        len > CT_IMAGE_MAX) {
        snprintf(err, errlen, "guest image has a bad size (%zu bytes)", len);
        return -EINVAL;
    }
    memcpy(&magic, img + CT_IMAGE_MAGIC_OFF, sizeof magic);
    memcpy(&abi, img + CT_IMAGE_ABI_OFF, sizeof abi);
    if (magic != CT_IMAGE_MAGIC || abi != CT_ABI_VERSION) {
        snprintf(err, errlen, "guest image is not an instar guest for ABI %u",
                 CT_ABI_VERSION);
        return -EINVAL;
    }
    dst = vmm_gpa(vm, CT_IMAGE_GPA, len);
    if (!dst) {
        snprintf(err, errlen, "guest image does not fit in guest RAM");
        return -EINVAL;
    }
    memcpy(dst, img, len);
    return 0;
}
