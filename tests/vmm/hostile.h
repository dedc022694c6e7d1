/* Scenarios of the hostile test guest, selected by the boot info's bs. */
#ifndef INSTAR_TEST_HOSTILE_H
#define INSTAR_TEST_HOSTILE_H

enum hostile_scenario {
    H_OK_EMPTY = 1,
    H_BYTE_PORT_ACCESS,
    H_FORGED_FAULT,
    H_BAD_PORT_CPL3,
    H_ARGS_OUTSIDE_RAM,
    H_READ_OUTSIDE_IO,
    H_READ_OVERSIZE,
    H_READ_GPA_OVERFLOW,
    H_READ_BAD_HANDLE,
    H_WRITE_BEFORE_BEGIN,
    H_WRITE_BEYOND_LIMIT,
    H_WRITE_OFFSET_OVERFLOW,
    H_EXIT_INCOMPLETE,
    H_SPIN,
    H_NULL_DEREF,
    H_PRIVILEGED,
    H_CALL_BEFORE_HELLO,
    H_EXIT_CONTROL_CHARS,
    H_DOUBLE_BEGIN,
};

#endif
