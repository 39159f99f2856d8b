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

/*
 * Device memory (virtio-pmem regions) goes above RAM and above 4 GiB, so
 * that it meets neither RAM, nor the 32-bit hole (PCI BARs, ECAM, the APICs,
 * the hotplug registers), each region starting at a 128 MiB boundary (a
 * Linux memory section: the guest's nvdimm code maps whole ones best) and
 * ending below BH_LAYOUT_DEVMEM_LIMIT: 40 bits of physical address, what a
 * nested QEMU's default CPU offers its guest.
 */
#define BH_LAYOUT_DEVMEM_ALIGN (128ULL << 20)
#define BH_LAYOUT_DEVMEM_LIMIT (1ULL << 40)

/*
 * The guest-physical address of each of n regions of the given sizes
 * (non-zero), in that order, after the RAM of l: gpa[i]. 0, or -ENOSPC when
 * they do not all end below BH_LAYOUT_DEVMEM_LIMIT, -EINVAL for a size 0.
 */
int bh_layout_devmem(const struct bh_mem_layout *l, const uint64_t *sizes,
		     unsigned int n, uint64_t *gpa);

/*
 * A place for one more region of size bytes (non-zero) among the nused
 * regions already placed ([used_gpa[i], used_gpa[i] + used_size[i]), in any
 * order; a region of size 0 takes no room): the lowest address at or above
 * both 4 GiB and the end of l's RAM, on a BH_LAYOUT_DEVMEM_ALIGN boundary,
 * where [*gpa, *gpa + size) meets none of them and ends at or below
 * BH_LAYOUT_DEVMEM_LIMIT. For a device added while the VM runs: a gap a
 * removed one left is taken again. Placing the regions of
 * bh_layout_devmem one by one, each against those before it, gives its
 * answer. 0, -ENOSPC when there is no such place, -EINVAL for a size 0.
 */
int bh_layout_devmem_fit(const struct bh_mem_layout *l,
			 const uint64_t *used_gpa, const uint64_t *used_size,
			 unsigned int nused, uint64_t size, uint64_t *gpa);

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
