/* Guest-physical RAM layout around the 32-bit hole, and the e820 map. */
#include <errno.h>

#include "bulkhead/platform.h"
#include "layout.h"

#define LAYOUT_PAGE 0x1000ULL

int bh_layout_compute(uint64_t ram_size, struct bh_mem_layout *out)
{
	uint64_t low, high;

	if (ram_size % LAYOUT_PAGE != 0 ||
	    ram_size < BH_HIMEM_START + LAYOUT_PAGE)
		return -EINVAL;
	low = ram_size < BH_MEM_32BIT_GAP_START ? ram_size
						: BH_MEM_32BIT_GAP_START;
	high = ram_size - low;
	/* The slice above 4 GiB must end inside the address space. */
	if (high > UINT64_MAX - BH_MEM_4G)
		return -EINVAL;

	*out = (struct bh_mem_layout){ .ram_size = ram_size, .nregions = 1 };
	out->regions[0] = (struct bh_ram_region){ .guest_phys = 0,
						  .size = low,
						  .memfd_offset = 0 };
	if (high != 0) {
		out->regions[1] =
		    (struct bh_ram_region){ .guest_phys = BH_MEM_4G,
					    .size = high,
					    .memfd_offset = low };
		out->nregions = 2;
	}
	return 0;
}

uint64_t bh_layout_low_ram_end(const struct bh_mem_layout *l)
{
	unsigned int i;

	for (i = 0; i < l->nregions; i++) {
		if (l->regions[i].guest_phys < BH_MEM_4G)
			return l->regions[i].guest_phys + l->regions[i].size;
	}
	return 0;
}

int bh_layout_devmem(const struct bh_mem_layout *l, const uint64_t *sizes,
		     unsigned int n, uint64_t *gpa)
{
	uint64_t next = BH_MEM_4G;

	for (unsigned int i = 0; i < l->nregions; i++) {
		uint64_t end = l->regions[i].guest_phys + l->regions[i].size;

		if (end > next)
			next = end;
	}
	for (unsigned int i = 0; i < n; i++) {
		/* next stays below the limit, so neither sum can wrap. */
		next = (next + BH_LAYOUT_DEVMEM_ALIGN - 1) &
		       ~(BH_LAYOUT_DEVMEM_ALIGN - 1);
		if (sizes[i] == 0)
			return -EINVAL;
		if (next > BH_LAYOUT_DEVMEM_LIMIT ||
		    sizes[i] > BH_LAYOUT_DEVMEM_LIMIT - next)
			return -ENOSPC;
		gpa[i] = next;
		next += sizes[i];
	}
	return 0;
}

static int e820_add(struct bh_e820_entry *tbl, size_t max, size_t *n,
		    uint64_t addr, uint64_t size, uint32_t type)
{
	if (size == 0)
		return 0;
	if (*n >= max)
		return -ENOSPC;
	tbl[*n] =
	    (struct bh_e820_entry){ .addr = addr, .size = size, .type = type };
	(*n)++;
	return 0;
}

int bh_e820_build(const struct bh_mem_layout *l, struct bh_e820_entry *tbl,
		  size_t max)
{
	uint64_t low_end = bh_layout_low_ram_end(l);
	size_t n = 0;
	unsigned int i;
	int r;

	/* bh_layout_compute guarantees low RAM reaches past 1 MiB. */
	if (low_end <= BH_HIMEM_START)
		return -EINVAL;
	r = e820_add(tbl, max, &n, 0, BH_EBDA_START, BH_E820_RAM);
	if (r < 0)
		return r;
	/* The EBDA and BIOS area hold the ACPI tables: the guest must not
	 * reuse them as RAM. */
	r = e820_add(tbl, max, &n, BH_EBDA_START,
		     BH_HIMEM_START - BH_EBDA_START, BH_E820_RESERVED);
	if (r < 0)
		return r;
	r = e820_add(tbl, max, &n, BH_HIMEM_START, low_end - BH_HIMEM_START,
		     BH_E820_RAM);
	if (r < 0)
		return r;
	for (i = 0; i < l->nregions; i++) {
		if (l->regions[i].guest_phys < BH_MEM_4G)
			continue;
		r = e820_add(tbl, max, &n, l->regions[i].guest_phys,
			     l->regions[i].size, BH_E820_RAM);
		if (r < 0)
			return r;
	}
	return (int)n;
}
