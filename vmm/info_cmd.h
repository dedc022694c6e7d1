#ifndef INSTAR_VMM_INFO_CMD_H
#define INSTAR_VMM_INFO_CMD_H

#include <stdio.h>

/* `instar info ...`: argv[0] is "info". Returns the process exit status. */
int info_main(int argc, char **argv);
void info_usage(FILE *f);

#endif
