/*
 * The qcow2 writer's state, shared by the plain path (qcow2_write.c) and
 * the compressed one (qcow2_zwrite.c). Private to the writer.
 */
#ifndef INSTAR_GUEST_FMT_QCOW2_W_H
#define INSTAR_GUEST_FMT_QCOW2_W_H

#include <stdbool.h>
#include <stdint.h>

#include "fmt.h"
#include "qcow2_alloc.h"

#define QCOW2_W_NONE UINT64_MAX

struct qcow2_z;

struct qcow2_w {
    struct fmt_writer *w;
    struct qcow2_alloc a;
    unsigned cluster_bits;
    uint64_t cl;          /* cluster bytes */
    uint64_t l2e;         /* entries of an L2 table, and of an L1 cluster */
    uint64_t clusters;    /* virtual clusters */
    uint64_t tables;      /* L2 tables the virtual size needs (l1_size) */
    uint64_t l1_host;     /* first host cluster of the L1 table */
    uint32_t version;     /* 2 or 3 */
    uint64_t req;         /* dd's request size; 0: convert */
    uint64_t cap;         /* refcount table entries held */
    bool started;         /* the model is set up (first call) */

    /* The L2 table being filled: table `table` at l2_host; virtual
     * clusters below `next` were reached by some allocation, and the
     * last of them ends at host cluster last_end (0: none yet). */
    uint8_t *l2;
    uint64_t l2_host;
    uint64_t table;
    uint64_t next;
    uint64_t last_end;
    uint8_t *l1;          /* L1 cluster l1_index */
    uint64_t l1_index;
    bool l1_dirty;

    /* Refcount blocks: the two being filled (range QCOW2_W_NONE: none)
     * are kept here and written when the counts move past them; counts
     * for any other range at or below rb_hi go straight to the file. */
    struct {
        uint64_t range;
        uint8_t *buf;
    } rb[2];
    unsigned rb_old; /* the slot filled longer ago */
    uint64_t rb_hi;
    uint64_t *entries;    /* the refcount table (the model's) */
    uint8_t *scratch;     /* one cluster, for tables and direct counts */
    uint64_t written;     /* highest file byte written so far */

    /* convert -S N: the request qemu-img convert would be writing, held
     * until its end is known (a zero run, or its 2 MiB buffer's end) */
    uint8_t *pend;
    uint64_t pend_start, pend_len;
    /* The held bytes are still in the engine's stable buffer (not yet in
     * pend): pend_len bytes from here. NULL: in pend. */
    const uint8_t *pend_ext;
    /* ... and the zero run the engine left out after it, not yet known
     * to be qemu's (z_end 0: none): qemu-img rounds the zero runs it
     * skips to `align` bytes, writing their ends as data. */
    uint64_t sparse_min, align;
    uint64_t wr_end;          /* end of the last write */
    uint64_t z_start, z_end;
    bool z_after_data;

    struct qcow2_z *z;    /* -c: compressed clusters */
};

/* Writes len bytes of buf (I/O area) at file offset off. */
int qcow2_w_out(struct qcow2_w *q, uint64_t off, const void *buf,
                uint64_t len);
/* Makes table t current: the previous one is written, a new L2 table
 * allocated and hooked into the L1 table. */
int qcow2_w_table(struct qcow2_w *q, uint64_t t);
/* L2 entry of virtual cluster c (in the current table). */
void qcow2_w_set(struct qcow2_w *q, uint64_t c, uint64_t entry);

/* The compressed path (-c): set up, then every write and zero of the
 * engine, then the last clusters before the metadata is written. */
int qcow2_z_open(struct qcow2_w *q);
int qcow2_z_write(struct qcow2_w *q, uint64_t off, const void *buf,
                  uint64_t len);
int qcow2_z_zero(struct qcow2_w *q, uint64_t off, uint64_t len);
int qcow2_z_finish(struct qcow2_w *q);

#endif
