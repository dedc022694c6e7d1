/* A struct par whose worker is a host thread: the guest's work sharing,
 * exercised in unit tests with real concurrency. */
#ifndef INSTAR_TEST_PAR_THREADS_H
#define INSTAR_TEST_PAR_THREADS_H

#include "rt/par.h"

/* A two-worker par, its worker thread started on first use and left
 * running (parked) until the process ends. Wake-ups are counted. */
struct par *par_threads(void);
unsigned long par_threads_wakes(void);

#endif
