/*
 * raw output: the virtual disk is the file. A zero range is left as a
 * hole; the host sets the file's final size, so holes read as zeros.
 */
#include "fmt.h"

static int raw_write(struct fmt_writer *w, uint64_t off, const void *buf,
                     uint64_t len)
{
    return fmt_out_write_data(w, off, buf, len);
}

static int raw_zero(struct fmt_writer *w, uint64_t off, uint64_t len)
{
    (void)w;
    (void)off;
    (void)len;
    return G_OK;
}

static int raw_place(struct fmt_writer *w, uint64_t off, uint64_t len,
                     uint64_t *file_off, uint64_t *n)
{
    (void)w;
    *file_off = off;
    *n = len;
    return G_OK;
}

static int raw_finish(struct fmt_writer *w, uint64_t *file_size)
{
    *file_size = w->vsize;
    return G_OK;
}

int fmt_raw_writer_open(struct fmt_writer *w)
{
    w->name = "raw";
    w->write = raw_write;
    w->zero = raw_zero;
    w->finish = raw_finish;
    w->place = raw_place;
    return G_OK;
}
