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
    H_BACKING_CHAIN,
    H_BACKING_BAD_NAME_GPA,
    /* The worker vCPU (boot info vcpus == 2). */
    H_WORKER_OK,             /* worker runs, parks, runs again: exit ok */
    H_WORKER_FORBIDDEN_CALL, /* worker calls wake (in its bitmap) */
    H_WORKER_READ_CALL,      /* worker calls read (outside its bitmap) */
    H_WORKER_FAULT,          /* worker dereferences NULL */
    H_WORKER_STACK_OVERFLOW, /* worker recurses into the guard page */
    H_WORKER_SPIN_MAIN_EXITS, /* worker spins forever; main exits ok */
    H_PARK_FROM_MAIN,        /* main vCPU calls park */
    H_WAKE,                  /* main wakes (fails with one vCPU) */
    /* end_output (ABI 5) and the bound of structured outputs. */
    H_END_BELOW_WRITTEN,  /* declares less than it wrote */
    H_END_PAST_BOUND,     /* declares more than the bound */
    H_END_TWICE,
    H_END_BEFORE_BEGIN,
    H_WRITE_AFTER_END,
    H_OK_AT_BOUND,        /* writes its last byte at the bound: exit ok */
    H_WRITE_PAST_BOUND,   /* one byte past the format's bound */
    H_UNUSED_CALL_0,      /* the ports the bitmap opens past the last call */
    H_UNUSED_CALL_1,
    H_UNUSED_CALL_2,
    /* copy and allocate (ABI 6) */
    H_COPY_BAD_HANDLE,
    H_COPY_PAST_EOF,
    H_COPY_PAST_BOUND,
    H_COPY_BEFORE_BEGIN,
    H_COPY_OVERSIZE,
    H_ALLOCATE_PAST_BOUND,
    H_ALLOCATE_AFTER_END,
    H_COPY_OK,            /* 1 KiB input copied, 1 KiB allocated: exit ok */
    H_COPY_BAD_LIST,      /* a good segment, then a bad one */
    H_COPY_TOO_MANY,      /* more segments than a list may hold */
    /* progress (ABI 8) */
    H_PROGRESS_OK,        /* 0, half, all of a 1024-byte output: exit ok */
    H_PROGRESS_BEFORE_BEGIN,
    H_PROGRESS_PAST_TOTAL,
    H_PROGRESS_BACKWARDS,
    H_PROGRESS_WRONG_TOTAL,
    /* map (ABI 9) */
    H_MAP_OK,             /* the 1-byte input: data [0, 1), then the end */
    H_MAP_BAD_HANDLE,
    H_MAP_PAST_END,
    /* write-behind and wait (ABI 10) */
    H_BEHIND_OK,          /* 1 KiB input: queued writes, a plain write
                             over one of them, wait: exit ok */
    H_WRITE_BAD_FLAGS,
    H_WAIT_PAST_MADE,     /* waits for a write-behind never made */
    H_WAIT_RESERVED,
    /* info mode (ABI 7); boot info count picks the defect of H_INFO_BAD */
    H_INFO_OK,            /* one raw image described: exit ok */
    H_INFO_BEFORE_HELLO,
    H_INFO_IN_DD_MODE,
    H_INFO_BAD,           /* a record breaking rule `count` (INFO_DEFECT_*) */
    H_INFO_TWICE,         /* a second image without --backing-chain */
    H_INFO_UNFINISHED,    /* exits ok with the image still open */
    H_INFO_NOTHING,       /* exits ok without describing anything */
    H_INFO_BAD_BATCH,     /* a batch outside guest RAM */
    H_INFO_OVERSIZE,      /* a batch larger than CT_INFO_BATCH_MAX */
    H_OUTPUT_IN_INFO,     /* begin_output in info mode */
};

enum info_defect {
    INFO_DEFECT_KEY = 1,  /* unknown key */
    INFO_DEFECT_TYPE,     /* FORMAT sent as U64 */
    INFO_DEFECT_DEEP,     /* an extent inside an extent */
    INFO_DEFECT_LONG,     /* a backing file name of CT_NAME_MAX + 1 */
    INFO_DEFECT_HANDLE,   /* an image that is not the input */
};

#endif
