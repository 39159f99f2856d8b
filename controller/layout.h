/* Guest-physical memory layout: where the RAM slices of the memfd go, and
 * the e820 map that tells the guest. */
#ifndef BH_CONTROLLER_LAYOUT_H
#define BH_CONTROLLER_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define BH_MAX_RAM_REGIONS 2

struct bh_ram_region {
	uint64_t guest_phys;
	uint64_t size;
	uint64_t memfd_offset;
};

struct bh_mem_layout {
	uint64_t ram_size; /* total RAM == memfd size */
	unsigned int nregions;
	struct bh_ram_region regions[BH_MAX_RAM_REGIONS];
};

/* RAM [0, min(size, 3 GiB)) and, beyond that, [4 GiB, 4 GiB + rest). size
 * must be a multiple of 4 KiB and >= 1 MiB + 4KiB: else -EINVAL. */
int bh_layout_compute(uint64_t ram_size, struct bh_mem_layout *out);

/* Highest guest-physical address + 1 of RAM below 4 GiB. */
uint64_t bh_layout_low_ram_end(const struct bh_mem_layout *l);

#define BH_E820_RAM	 1
#define BH_E820_RESERVED 2
#define BH_E820_MAX	 128 /* entries in struct boot_params */

struct bh_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

/*
 * The guest's e820 map for layout l, sorted and non-overlapping:
 * RAM [0, EBDA), reserved [EBDA, 1 MiB) (it holds the ACPI tables), RAM
 * [1 MiB, low end), RAM above 4 GiB if any. Returns the entry count or -ENOSPC.
 */
int bh_e820_build(const struct bh_mem_layout *l, struct bh_e820_entry *tbl,
		  size_t max);

#endif
