/* Long-mode entry state of the boot vCPU: GDT, identity-mapped page tables
 * and registers, as the 64-bit boot protocol expects them. */
#ifndef BH_CONTROLLER_BOOT_H
#define BH_CONTROLLER_BOOT_H

#include <stdint.h>

#include "guestmem.h"
#include "proto/internal.pb-c.h"

/*
 * Writes the boot GDT (BH_GDT_ADDR: null, null, code64 at BH_BOOT_CS, data at
 * BH_BOOT_DS, TSS at BH_BOOT_TR), an empty IDT, and page tables mapping the
 * low 4 GiB with 2 MiB pages, and fills st (whose Segment fields the caller
 * has initialised and pointed st->cs/ds/tr at) with: rip = entry,
 * rsi = zero_page, rsp = rbp = BH_BOOT_STACK_ADDR, rflags 0x2, CR0 PE|PG|ET,
 * CR3 BH_PML4_ADDR, CR4 PAE, EFER LME|LMA, and the flat segments.
 * 0 or -EFAULT if low RAM is missing.
 */
int bh_boot_setup_long_mode(struct bh_guest_mem *gm, uint64_t entry,
			    uint64_t zero_page, Bh__VcpuState *st);

/* Writes a reset stub at the real-mode reset vector (BH_RESET_VECTOR_ADDR)
 * so that a guest jumping to "the BIOS" to reboot resets the VM. 0 or
 * -EFAULT. */
int bh_boot_write_reset_vector(struct bh_guest_mem *gm);

#endif
