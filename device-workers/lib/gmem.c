/* Guest RAM in a device worker: one shared mapping of the memfd, the only
 * place where guest-physical addresses become host pointers, and the dirty
 * bitmap of the worker's writes. */
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
	bh_gmem_log_stop(m);
	if (m->base)
		munmap(m->base, (size_t)m->size);
	memset(m, 0, sizeof(*m));
}

/* The region holding [gpa, gpa + len), and the offset of gpa in it. */
static const struct bh_gmem_region *find(const struct bh_gmem *m, uint64_t gpa,
					 uint64_t len, uint64_t *off)
{
	for (unsigned int i = 0; i < m->n; i++) {
		const struct bh_gmem_region *r = &m->r[i];

		/* gpa and len are guest-controlled: compare by differences so
		 * that nothing can wrap. */
		if (gpa < r->guest_phys)
			continue;
		*off = gpa - r->guest_phys;
		if (*off >= r->size || len > r->size - *off)
			continue;
		return r;
	}
	return NULL;
}

void *bh_gmem_ptr(const struct bh_gmem *m, uint64_t gpa, uint64_t len)
{
	const struct bh_gmem_region *r;
	uint64_t off;

	r = find(m, gpa, len, &off);
	return r ? r->host + off : NULL;
}

int bh_gmem_offset(const struct bh_gmem *m, uint64_t gpa, uint64_t len,
		   uint64_t *off)
{
	const struct bh_gmem_region *r;
	uint64_t o;

	r = find(m, gpa, len, &o);
	if (!r)
		return -EFAULT;
	/* The region lies in the memfd (check_regions): no wrap. */
	*off = (uint64_t)(r->host - m->base) + o;
	return 0;
}

/* ---- dirty log ----------------------------------------------------------- */

uint64_t bh_gmem_log_bytes(uint64_t memfd_size)
{
	uint64_t pages = memfd_size / BH_GMEM_LOG_PAGE +
			 (memfd_size % BH_GMEM_LOG_PAGE != 0);

	return (pages + 63) / 64 * 8;
}

int bh_gmem_log_start(struct bh_gmem *m, int fd)
{
	uint64_t need = bh_gmem_log_bytes(m->size);
	uint8_t last;
	ssize_t n;
	void *p;

	if (!m->base || need == 0 || need > SIZE_MAX)
		return -EINVAL;
	/* A bitmap shorter than the mapping would turn a logged write into
	 * SIGBUS. The sandbox has no fstat; a read of the last byte needed
	 * tells the same (0: the file ends before it). */
	n = pread(fd, &last, 1, (off_t)(need - 1));
	if (n < 0)
		return -errno;
	if (n != 1)
		return -EINVAL;
	p = mmap(NULL, (size_t)need, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	bh_gmem_log_stop(m);
	m->log = p;
	m->log_size = need;
	return 0;
}

void bh_gmem_log_stop(struct bh_gmem *m)
{
	if (m->log)
		munmap(m->log, (size_t)m->log_size);
	m->log = NULL;
	m->log_size = 0;
}

void bh_gmem_log_range(const struct bh_gmem *m, uint64_t off, uint64_t len)
{
	uint64_t first, last;

	if (!m->log || len == 0 || off >= m->size || len > m->size - off)
		return;
	first = off / BH_GMEM_LOG_PAGE;
	last = (off + len - 1) / BH_GMEM_LOG_PAGE;
	/* Always the atomic OR, never "load, and OR if clear": a bit seen
	 * set just before the controller takes it would leave this write in
	 * no pass. Release: whoever takes the bit sees the write. */
	for (uint64_t pg = first; pg <= last; pg++)
		__atomic_fetch_or(&m->log[pg / 8], (uint8_t)(1u << (pg % 8)),
				  __ATOMIC_RELEASE);
}

void bh_gmem_log_gpa_range(const struct bh_gmem *m, uint64_t gpa, uint64_t len)
{
	uint64_t off;

	if (bh_gmem_offset(m, gpa, len, &off) == 0)
		bh_gmem_log_range(m, off, len);
}
