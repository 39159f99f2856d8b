/*
 * The machine the guest sees: guest-physical memory map and I/O ports.
 * Shared by the controller (which describes it in e820 and ACPI) and the
 * vCPU runner (which emulates it); the two must agree.
 */
#ifndef BULKHEAD_PLATFORM_H
#define BULKHEAD_PLATFORM_H

/* Low memory used by the boot path (all below 1 MiB). */
#define BH_GDT_ADDR	     0x0500ULL /* boot GDT: 5 entries */
#define BH_IDT_ADDR	     0x0540ULL /* empty IDT, after the GDT */
#define BH_ZERO_PAGE_ADDR    0x7000ULL /* struct boot_params */
#define BH_BOOT_STACK_ADDR   0x8ff0ULL
#define BH_PML4_ADDR	     0x9000ULL /* identity map of the low 4 GiB */
#define BH_PDPT_ADDR	     0xa000ULL
#define BH_PD_ADDR	     0xb000ULL /* 4 page directories, 0xb000-0xefff */
#define BH_CMDLINE_ADDR	     0x20000ULL
#define BH_CMDLINE_MAX	     0x10000ULL	 /* bytes, including the final NUL */
#define BH_EBDA_START	     0x9fc00ULL	 /* end of the first RAM range */
#define BH_ACPI_ADDR	     0xe0000ULL	 /* RSDP here, the other tables after */
#define BH_ACPI_SIZE	     0x20000ULL	 /* 0xe0000-0xfffff, reserved in e820 */
#define BH_HIMEM_START	     0x100000ULL /* 1 MiB */
#define BH_RESET_VECTOR_ADDR 0xffff0ULL	 /* F000:FFF0, inside the ACPI area */

/* Boot GDT selectors (Linux boot protocol: __BOOT_CS 0x10, __BOOT_DS 0x18). */
#define BH_BOOT_CS 0x10
#define BH_BOOT_DS 0x18
#define BH_BOOT_TR 0x20

/* RAM above 3 GiB continues at 4 GiB: the hole holds MMIO. */
#define BH_MEM_32BIT_GAP_START 0xc0000000ULL /* 3 GiB */
#define BH_MEM_4G	       0x100000000ULL
#define BH_PCI_MMIO32_START    0xc0000000ULL /* 32-bit BAR window */
#define BH_PCI_MMIO32_SIZE     0x20000000ULL /* 512 MiB */
#define BH_PCI_ECAM_START      0xe0000000ULL /* reserved for ECAM */
#define BH_PCI_ECAM_SIZE       0x10000000ULL
#define BH_IOAPIC_ADDR	       0xfec00000ULL
#define BH_LAPIC_ADDR	       0xfee00000ULL
#define BH_KVM_IDENTITY_MAP    0xfeffc000ULL /* one page, for KVM (VMX) */
#define BH_KVM_TSS_ADDR	       0xfeffd000ULL /* three pages, for KVM */

/*
 * PCI hotplug (vcpu-runner/hotplug.c; the DSDT's PHPR and GED1 devices): a
 * register block below the IOAPIC, in no BAR window, and the interrupt of
 * the generic event device that tells the guest to read it. Registers are
 * 32 bits wide; bit n of a slot mask is device n on bus 0.
 */
#define BH_HOTPLUG_MMIO_ADDR 0xfeb00000ULL
#define BH_HOTPLUG_MMIO_SIZE 0x1000ULL /* one page, registers first */
#define BH_HOTPLUG_PCIU	     0x00      /* slots added; reading clears */
#define BH_HOTPLUG_PCID	     0x04      /* slots to eject; reading clears */
#define BH_HOTPLUG_B0EJ	     0x08 /* the guest writes the slots it ejected */
#define BH_HOTPLUG_PSEG	     0x0c /* PCI segment of the above, only 0 */
#define BH_HOTPLUG_GDAT	     0x10 /* what the event was; reading clears */
#define BH_HOTPLUG_REGS_LEN  0x14
#define BH_GED_PCI_HOTPLUG   (1u << 0) /* GDAT: scan the slots */
/* An IOAPIC pin above the ISA range: no legacy device can claim it. */
#define BH_IRQ_GED_HOTPLUG 16

/* I/O ports emulated by the runner. */
#define BH_PORT_COM1	   0x3f8 /* 16550 UART, 8 ports */
#define BH_IRQ_COM1	   4
#define BH_PORT_CMOS	   0x70 /* index 0x70, data 0x71 */
#define BH_IRQ_RTC	   8
#define BH_IRQ_GED	   5 /* ACPI generic event device: the power button */
#define BH_PORT_I8042_DATA 0x60
#define BH_PORT_I8042_CMD  0x64
#define BH_PORT_PCI_ADDR   0xcf8 /* configuration mechanism #1 */
#define BH_PORT_PCI_DATA   0xcfc /* 4 ports */
/* ACPI hardware-reduced registers (FADT sleep control/status, reset). */
#define BH_PORT_ACPI_SLEEP_CTL 0x600
#define BH_PORT_ACPI_SLEEP_STS 0x601
#define BH_PORT_ACPI_RESET     0x602
#define BH_ACPI_RESET_VALUE    0x01
#define BH_ACPI_S5_TYPE	       5 /* SLP_TYP of \_S5 */
#define BH_ACPI_SLP_TYP_SHIFT  2
#define BH_ACPI_SLP_TYP_MASK   0x1c
#define BH_ACPI_SLP_EN	       0x20
/* Boot-progress port: the guest writes a byte, the runner logs it with the
 * time since it started (as Firecracker's boot timer device does). 0x402 is
 * unused on PC hardware; QEMU's SeaBIOS debug console sits there, so the
 * same byte does nothing harmful under QEMU. */
#define BH_PORT_BOOT_PROGRESS 0x402
/* The byte the test guests' /init writes when it starts. */
#define BH_BOOT_PROGRESS_INIT 0x7b

#define BH_MAX_VCPUS 254

/* The host check's probe guest (vcpu-runner/probe.c): chunks of a loop of
 * two instructions per iteration, each timed, stopped at the deadline if not
 * done. At hardware speed it takes about a millisecond; KVM's instruction
 * emulator (tens of thousands of instructions a second) meets the deadline
 * in its first chunk. */
#define BH_PROBE_CHUNKS	     10u
#define BH_PROBE_ITERATIONS  200000u
#define BH_PROBE_DEADLINE_MS 700

#endif
