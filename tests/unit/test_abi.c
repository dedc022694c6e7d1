/* The ABI header compiles hosted, and its layout is what docs/calltable.md
 * says (the _Static_asserts in the header already check sizes; this pins
 * the values a guest and host must agree on at run time). */
#include <criterion/criterion.h>
#include <stddef.h>

#include "instar_ct.h"

Test(abi, version_and_ports)
{
    cr_expect_eq(CT_ABI_VERSION, 10u);
    cr_expect_eq(CT_PORT_BASE, 0x500u);
    cr_expect_eq(CT_CALL_EXIT, 6);
    cr_expect_eq(CT_CALL_OPEN_BACKING, 8);
    cr_expect_eq(CT_CALL_WAKE, 9);
    cr_expect_eq(CT_CALL_PARK, 10);
    cr_expect_eq(CT_CALL_END_OUTPUT, 11);
    cr_expect_eq(CT_CALL_COPY, 12);
    cr_expect_eq(CT_CALL_INFO, 13);
    cr_expect_eq(CT_CALL_PROGRESS, 14);
    cr_expect_eq(CT_CALL_MAP, 15);
    cr_expect_eq(CT_CALL_WAIT, 16);
    cr_expect_eq(CT_CALL_COUNT, 17);
    cr_expect_eq(CT_WRITE_BEHIND, 1u);
    cr_expect_eq(sizeof(struct ct_wait), 16u);
    cr_expect_eq(sizeof(struct ct_map), 32u);
    cr_expect_eq(CT_MODE_DD, 0u);
    cr_expect_eq(CT_MODE_INFO, 1u);
    cr_expect_eq(CT_BOOT_BACKING_CHAIN, 8u);
    cr_expect_eq(sizeof(struct ct_info_rec), 16u);
    cr_expect_eq(sizeof(struct ct_info), 16u);
    cr_expect_eq(CT_INFO_KEY_COUNT, 35);
    cr_expect_eq(CT_SAFETY_COUNT, 11);
    cr_expect_eq(sizeof(struct ct_copy_seg), 32u);
    cr_expect_eq(sizeof(struct ct_copy), 32u);
    cr_expect_eq(CT_ENOTSUP, -9);
    cr_expect_eq(CT_ENOSPC, -8);
    cr_expect_eq(CT_VCPUS_MAX, 2u);
    cr_expect_eq(CT_ELIMIT, -7);
    cr_expect_eq(CT_BOOT_INPUT_DMG_NAME, 4u);
}

Test(abi, struct_layout)
{
    cr_expect_eq(sizeof(struct ct_read), 40u);
    cr_expect_eq(offsetof(struct ct_read, nread), 32u);
    cr_expect_eq(sizeof(struct ct_write), 32u);
    cr_expect_eq(sizeof(struct ct_bootinfo), 416u);
    cr_expect_eq(offsetof(struct ct_bootinfo, out), 384u);
    cr_expect_eq(sizeof(struct ct_output_params), 24u);
    cr_expect_eq(sizeof(struct ct_progress), 24u);
    cr_expect_eq(offsetof(struct ct_bootinfo, out_name), 128u);
    cr_expect_eq(offsetof(struct ct_bootinfo, mode), 124u);
    cr_expect_eq(offsetof(struct ct_info_rec, value), 8u);
    cr_expect_eq(offsetof(struct ct_info, gpa), 8u);
    cr_expect_eq(sizeof(struct ct_end_output), 16u);
    cr_expect_eq(offsetof(struct ct_bootinfo, heap_size), 64u);
    cr_expect_eq(offsetof(struct ct_bootinfo, vcpus), 72u);
    cr_expect_eq(offsetof(struct ct_bootinfo, files_max), 76u);
    cr_expect_eq(sizeof(struct ct_vcpu_signal), 8u);
    cr_expect_eq(sizeof(struct ct_fault), 32u);
}

Test(abi, memory_map_regions_are_disjoint_and_in_ram)
{
    struct {
        uint64_t base, size;
    } r[] = {
        {CT_PT_GPA, CT_PT_SIZE},         {CT_GDT_GPA, 0x1000},
        {CT_IDT_GPA, 0x1000},            {CT_TSS_GPA, 0x1000},
        {CT_BOOTINFO_GPA, 0x1000},       {CT_FAULT_GPA, 0x1000},
        {CT_FSBLOCK_GPA, 0x1000},        {CT_KSTACK_GPA, CT_KSTACK_SIZE},
        {CT_TSS1_GPA, 0x1000},           {CT_KSTACK1_GPA, CT_KSTACK_SIZE},
        {CT_WGUARD_GPA, 0x1000},         {CT_WSTACK_GPA, CT_WSTACK_SIZE},
        {CT_IMAGE_GPA, CT_IMAGE_MAX},    {CT_STACK_GPA, CT_STACK_SIZE},
        {CT_HEAP_GPA, CT_HEAP_SIZE},     {CT_IO_GPA, CT_IO_SIZE},
    };
    size_t n = sizeof r / sizeof r[0];
    for (size_t i = 0; i < n; i++) {
        cr_expect(r[i].base >= 0x1000, "region %zu maps page 0", i);
        cr_expect(r[i].base + r[i].size <= CT_RAM_SIZE, "region %zu", i);
        for (size_t j = i + 1; j < n; j++)
            cr_expect(r[i].base + r[i].size <= r[j].base ||
                          r[j].base + r[j].size <= r[i].base,
                      "regions %zu and %zu overlap", i, j);
    }
}
