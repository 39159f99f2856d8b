/* Guest-physical RAM layout around the 32-bit hole, and the e820 map. */
#include <errno.h>
#include <stdbool.h>

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

/* Where device memory may begin: above 4 GiB and above RAM. */
static uint64_t devmem_start(const struct bh_mem_layout *l)
{
	uint64_t next = BH_MEM_4G;

	for (unsigned int i = 0; i < l->nregions; i++) {
		uint64_t end = l->regions[i].guest_phys + l->regions[i].size;

		if (end > next)
			next = end;
	}
	return next;
}

int bh_layout_devmem(const struct bh_mem_layout *l, const uint64_t *sizes,
		     unsigned int n, uint64_t *gpa)
{
	uint64_t next = devmem_start(l);

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

int bh_layout_devmem_fit(const struct bh_mem_layout *l,
			 const uint64_t *used_gpa, const uint64_t *used_size,
			 unsigned int nused, uint64_t size, uint64_t *gpa)
{
	uint64_t cand = devmem_start(l);
	bool moved = true;

	if (size == 0)
		return -EINVAL;
	/*
	 * First fit: a candidate that meets a used region moves past its
	 * end. The candidate only grows, so a region once passed is never
	 * met again: nused + 1 rounds at most. The used regions' ends are
	 * clamped, so that no sum wraps however they were given.
	 */
	for (unsigned int round = 0; moved && round <= nused; round++) {
		moved = false;
		if (cand > BH_LAYOUT_DEVMEM_LIMIT)
			return -ENOSPC;
		/* cand <= the limit: neither the rounding nor the
		 * comparisons below wrap. */
		cand = (cand + BH_LAYOUT_DEVMEM_ALIGN - 1) &
		       ~(BH_LAYOUT_DEVMEM_ALIGN - 1);
		if (cand > BH_LAYOUT_DEVMEM_LIMIT ||
		    size > BH_LAYOUT_DEVMEM_LIMIT - cand)
			return -ENOSPC;
		for (unsigned int i = 0; i < nused; i++) {
			uint64_t end;

			if (used_size[i] == 0)
				continue;
			if (__builtin_add_overflow(used_gpa[i], used_size[i],
						   &end))
				end = UINT64_MAX;
			/* [cand, cand + size) meets [gpa, end)? */
			if (used_gpa[i] < cand + size && cand < end) {
				cand = end;
				moved = true;
				break;
			}
		}
	}
	if (moved)
		return -ENOSPC; /* cannot happen: see above */
	*gpa = cand;
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
