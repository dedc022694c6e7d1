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

/*
 * The input of s from the command line: -f (fmt_name, NULL: probe), the
 * file opened, the dmg name rule, the table of files the image may name
 * with the allowed directories (the input's own, then dirs). 0, or -1 with
 * the message printed (nothing left open). job_close_input undoes it.
 */
int job_input(struct vmm_session *s, const char *path, const char *fmt_name,
              const char *const *dirs, unsigned ndirs);
void job_close_input(struct vmm_session *s);

/* Runs s with its output written to s->out_name atomically (output.c):
 * prepared, the guest run, then committed or dropped. The exit status. */
int job_run_output(struct vmm_session *s, struct output *out);

/* Runs the guest for s in a sandboxed child and waits for it. `after`, if
 * set, runs in the child once the guest has finished successfully, still
 * sandboxed, and gives the child's exit status. Returns 0 when the child
 * exited 0, else 1 (a message is printed for a child killed by a
 * signal). */
int job_run(struct vmm_session *s, int (*after)(struct vmm_session *s));

#endif
