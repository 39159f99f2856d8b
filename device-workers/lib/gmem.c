/* Guest RAM in a device worker: one shared mapping of the memfd, and the only
 * place where guest-physical addresses become host pointers. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bulkhead/log.h>

#include "gmem.h"

static int page_aligned(uint64_t v)
{
	return (v & ((uint64_t)sysconf(_SC_PAGESIZE) - 1)) == 0;
}

/* Checks the controller's description before anything is mapped, so that a
 * bad table never leaves a mapping behind. */
static int check_regions(uint64_t memfd_size, const uint64_t (*regions)[3],
			 unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t gpa = regions[i][0], size = regions[i][1];
		uint64_t off = regions[i][2], end;

		if (size == 0 || !page_aligned(gpa) || !page_aligned(size) ||
		    !page_aligned(off))
			return -EINVAL;
		if (__builtin_add_overflow(off, size, &end) || end > memfd_size)
			return -EINVAL;
		if (__builtin_add_overflow(gpa, size, &end))
			return -EINVAL;
		for (unsigned int j = 0; j < i; j++) {
			uint64_t ogpa = regions[j][0];
			uint64_t oend = ogpa + regions[j][1];

			if (gpa < oend && ogpa < end)
				return -EINVAL;
		}
	}
	return 0;
}

int bh_gmem_map(struct bh_gmem *m, int memfd, uint64_t memfd_size,
		const uint64_t (*regions)[3], unsigned int n)
{
	struct stat st;
	void *p;
	int r;

	memset(m, 0, sizeof(*m));
	if (n == 0 || n > BH_GMEM_MAX_REGIONS || memfd_size == 0 ||
	    !page_aligned(memfd_size) || memfd_size > SIZE_MAX)
		return -EINVAL;
	r = check_regions(memfd_size, regions, n);
	if (r < 0)
		return r;
	/* A mapping past the end of the file would turn guest accesses into
	 * SIGBUS; the memfd is sealed, so its size cannot change later. */
	if (fstat(memfd, &st) < 0)
		return -errno;
	if (st.st_size < 0 || (uint64_t)st.st_size < memfd_size)
		return -EINVAL;

	p = mmap(NULL, (size_t)memfd_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 memfd, 0);
	if (p == MAP_FAILED)
		return -errno;
	/* Guest RAM has no place in a core file of the worker. */
	if (madvise(p, (size_t)memfd_size, MADV_DONTDUMP) < 0)
		bh_debug("gmem: MADV_DONTDUMP: %s", strerror(errno));

	m->base = p;
	m->size = memfd_size;
	m->n = n;
	for (unsigned int i = 0; i < n; i++) {
		m->r[i].guest_phys = regions[i][0];
		m->r[i].size = regions[i][1];
		m->r[i].host = m->base + regions[i][2];
	}
	return 0;
}

void bh_gmem_unmap(struct bh_gmem *m)
{
	if (m->base)
		munmap(m->base, (size_t)m->size);
	memset(m, 0, sizeof(*m));
}

void *bh_gmem_ptr(const struct bh_gmem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < m->n; i++) {
		const struct bh_gmem_region *r = &m->r[i];
		uint64_t off;

		/* gpa and len are guest-controlled: compare by differences so
		 * that nothing can wrap. */
		if (gpa < r->guest_phys)
			continue;
		off = gpa - r->guest_phys;
		if (off >= r->size || len > r->size - off)
			continue;
		return r->host + off;
	}
	return NULL;
}
