/* The runner's dirty log without KVM: the shared bitmap mapped and checked,
 * KVM's per-slot bitmaps folded into it at the slot's memfd offset, and the
 * checks of the two requests. */
#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>

#include "dirty.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

uint64_t bh_dirty_bitmap_bytes(uint64_t memfd_size)
{
	uint64_t pages =
	    memfd_size / BH_DIRTY_PAGE + (memfd_size % BH_DIRTY_PAGE != 0);

	return (pages + 63) / 64 * 8;
}

uint64_t bh_dirty_slot_words(uint64_t size)
{
	uint64_t pages = size / BH_DIRTY_PAGE + (size % BH_DIRTY_PAGE != 0);

	return (pages + 63) / 64;
}

int bh_dirty_map(int fd, uint64_t memfd_size, uint64_t **map, uint64_t *bytes)
{
	uint64_t need = bh_dirty_bitmap_bytes(memfd_size), last;
	void *p;
	int r;

	if (need == 0 || need > SIZE_MAX)
		return -EINVAL;
	p = mmap(NULL, (size_t)need, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	/* A bitmap shorter than the mapping would turn the next sync into
	 * SIGBUS: its last page must be there. */
	last = (need - 1) / BH_DIRTY_PAGE * BH_DIRTY_PAGE;
	if (madvise((uint8_t *)p + last, (size_t)(need - last),
		    MADV_POPULATE_WRITE) < 0) {
		r = errno == EFAULT   ? -EINVAL
		    : errno == EINVAL ? -EOPNOTSUPP
				      : -errno;
		munmap(p, (size_t)need);
		return r;
	}
	*map = p;
	*bytes = need;
	return 0;
}

void bh_dirty_unmap(uint64_t *map, uint64_t bytes)
{
	if (map)
		munmap(map, (size_t)bytes);
}

/* The little-endian words of both bitmaps put page i at bit i % 64 of word
 * i / 64, the byte layout of DirtyLog (x86-64 only, as Bulkhead is). */
uint64_t bh_dirty_fold(uint64_t *dst, uint64_t dst_words, const uint64_t *src,
		       uint64_t npages, uint64_t first_page)
{
	uint64_t nwords = (npages + 63) / 64, base = first_page / 64;
	unsigned int shift = (unsigned int)(first_page % 64);
	uint64_t count = 0;

	for (uint64_t k = 0; k < nwords; k++) {
		uint64_t w = src[k], i = base + k;

		if (k == nwords - 1 && npages % 64)
			w &= (1ULL << (npages % 64)) - 1;
		if (!w)
			continue;
		count += (uint64_t)__builtin_popcountll(w);
		if (i < dst_words)
			__atomic_fetch_or(&dst[i], w << shift,
					  __ATOMIC_RELEASE);
		/* The high bits of w belong to the next word. */
		if (shift && i + 1 < dst_words && (w >> (64 - shift)))
			__atomic_fetch_or(&dst[i + 1], w >> (64 - shift),
					  __ATOMIC_RELEASE);
	}
	return count;
}

int bh_dirty_check_log(bool enable, unsigned int nfds, bool started,
		       const char **why)
{
	if (enable && nfds != 1) {
		*why = "turning the log on takes the bitmap memfd, one fd";
		return -EPROTO;
	}
	if (!enable && nfds != 0) {
		*why = "turning the log off takes no fd";
		return -EPROTO;
	}
	if (!started) {
		*why = "the vCPUs have not started (RUNNER_START)";
		return -EAGAIN;
	}
	return 0;
}

int bh_dirty_check_sync(bool started, bool logging, const char **why)
{
	if (!started) {
		*why = "the vCPUs have not started (RUNNER_START)";
		return -EAGAIN;
	}
	if (!logging) {
		*why = "dirty logging is off";
		return -ENODATA;
	}
	return 0;
}
