#ifndef INSTAR_VMM_DD_H
#define INSTAR_VMM_DD_H

#include <stdio.h>

/* `instar dd ...`: argv[0] is "dd". Returns the process exit status. */
int dd_main(int argc, char **argv);
void dd_usage(FILE *f);

#endif
