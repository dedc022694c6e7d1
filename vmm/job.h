/*
 * What every subcommand's jailer shares: the input, the signals, and one
 * sandboxed child that runs the guest. The parent never maps guest memory
 * and learns only the child's exit status.
 */
#ifndef INSTAR_VMM_JOB_H
#define INSTAR_VMM_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "output.h"
#include "session.h"

/* Opens the input without blocking (a FIFO must not hang us); only regular
 * files and block devices. -1 with a message on stderr. */
int job_open_input(const char *path, uint64_t *size);

/* The CT_FMT_* for -f / -O NAME (input: CT_FMT_PROBE without one), or -1
 * with qemu's message on stderr. */
int job_pick_format(const char *name, const char *in_path, bool input);

/* Catches every signal that would end the process and is not ignored
 * already (nohup's SIGHUP stays ignored): the handler kills the child
 * job_run started, drops out's temporary name (out may be NULL: no
 * output) and re-raises the signal. Call before creating the output. */
void job_catch_signals(struct output *out);

/* Runs the guest for s in a sandboxed child and waits for it. `after`, if
 * set, runs in the child once the guest has finished successfully, still
 * sandboxed, and gives the child's exit status. Returns 0 when the child
 * exited 0, else 1 (a message is printed for a child killed by a
 * signal). */
int job_run(struct vmm_session *s, int (*after)(struct vmm_session *s));

#endif
