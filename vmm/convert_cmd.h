#ifndef INSTAR_VMM_CONVERT_CMD_H
#define INSTAR_VMM_CONVERT_CMD_H

#include <stdio.h>

/* `instar convert ...`: argv[0] is "convert". Returns the exit status. */
int convert_main(int argc, char **argv);
void convert_usage(FILE *f);

#endif
