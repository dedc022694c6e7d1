/* dd.bin, embedded at build time (see guest/meson.build). */
#ifndef INSTAR_VMM_GUEST_IMAGE_H
#define INSTAR_VMM_GUEST_IMAGE_H

#include <stddef.h>
#include <stdint.h>

extern const uint8_t instar_guest_image[];
extern const size_t instar_guest_image_len;

#endif
