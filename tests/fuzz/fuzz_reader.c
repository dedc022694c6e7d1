/*
 * libFuzzer harness: one image format driver over the memory-backed call
 * table. The fuzz input is the image file; the driver is forced with
 * FUZZ_FORMAT (a CT_FMT_* value; CT_FMT_PROBE exercises the probe and
 * whatever it picks). Reads sample the start, middle and end of the
 * virtual disk so the mapping code runs without materialising huge disks;
 * then the reader's info hook (its facts and its check of every table).
 * Files the image names are refused (no ct_mem files), like a hostile
 * backing name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ct_mem.h"
#include "fmt/fmt.h"
#include "fmt/info.h"

#ifndef FUZZ_FORMAT
#define FUZZ_FORMAT CT_FMT_PROBE
#endif

#define HEAP_SIZE (24u << 20)
#define IO_SIZE (24u << 20)
#define SAMPLE (256u << 10)

static uint8_t *heap_mem, *io_mem;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct window_args args = {512, 0, 0, false, false};
    struct ct_mem m;
    struct g_error err = {0};
    struct arena heap, io;
    struct fmt_reader *r;

    if (!heap_mem) {
        heap_mem = calloc(1, HEAP_SIZE);
        io_mem = calloc(1, IO_SIZE);
    }
    arena_init(&heap, heap_mem, HEAP_SIZE);
    arena_init(&io, io_mem, IO_SIZE);
    uint8_t *buf = arena_alloc(&io, SAMPLE, 4096);
    ct_mem_init(&m, data, size, CT_FMT_RAW, &args);
    struct ct_ops ops = ct_mem_ops(&m);
    struct fmt_chain chain = {0};
    struct fmt_env env = {&ops, &err, &heap, &io, NULL, 0, &chain,
                          FMT_REFS_OPEN};

    if (fmt_open(&env, CT_HANDLE_INPUT, FUZZ_FORMAT, 0, &r) == G_OK) {
        uint64_t offs[3] = {0, r->vsize / 2, r->vsize > SAMPLE ?
                                                  r->vsize - SAMPLE : 0};
        for (int i = 0; i < 3; i++) {
            uint64_t len = r->vsize - offs[i] < SAMPLE ? r->vsize - offs[i]
                                                        : SAMPLE;
            if (r->read(r, offs[i], buf, len) != G_OK)
                break;
        }
        struct fmt_info s;
        err = (struct g_error){0};
        if (r->info && fmt_info_init(&s, &env) == G_OK &&
            r->info(r, &s) == G_OK)
            fmt_info_flush(&s);
    }
    ct_mem_free(&m);
    /* Arenas promise zeroed memory: clear what this input used. */
    memset(heap_mem, 0, (size_t)heap.used);
    memset(io_mem, 0, (size_t)io.used);
    return 0;
}
