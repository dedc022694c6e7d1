/*
 * What the static zlib expects from a libc besides mem*: its default
 * allocator (zcalloc) calls malloc/free. instar always passes its own
 * arena allocator, so these are never reached; they exist to link, and
 * fail safely if something ever did call them.
 */
#include <stddef.h>

void *malloc(size_t n);
void free(void *p);

void *malloc(size_t n)
{
    (void)n;
    return NULL;
}

void free(void *p) { (void)p; }
