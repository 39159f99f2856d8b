/* Dirty bitmaps in the controller: one sealed memfd per writer, and the
 * take that merges them each pass. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dirtymap.h"

uint64_t bh_dirtymap_words(uint64_t ram_size)
{
	uint64_t pages =
	    ram_size / BH_DIRTYMAP_PAGE + (ram_size % BH_DIRTYMAP_PAGE != 0);

	return (pages + 63) / 64;
}

int bh_dirtymap_create(struct bh_dirtymap *m, uint64_t ram_size)
{
	uint64_t words = bh_dirtymap_words(ram_size);
	uint64_t bytes = words * 8;
	void *p;
	int fd, r;

	bh_dirtymap_init(m);
	if (words == 0 || bytes > SIZE_MAX || bytes > INT64_MAX)
		return -EINVAL;
	fd =
	    memfd_create("bulkhead-dirty-log", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)bytes) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
		0) {
		r = -errno;
		goto err_close;
	}
	p = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 0);
	if (p == MAP_FAILED) {
		r = -errno;
		goto err_close;
	}
	m->fd = fd;
	m->words = p;
	m->nwords = words;
	return 0;

err_close:
	close(fd);
	return r;
}

void bh_dirtymap_destroy(struct bh_dirtymap *m)
{
	if (m->words)
		munmap(m->words, (size_t)(m->nwords * 8));
	if (m->fd >= 0)
		close(m->fd);
	bh_dirtymap_init(m);
}

uint64_t bh_dirtymap_take(uint64_t *const *bitmaps, size_t n,
			  uint64_t words_each, uint64_t *out, size_t nwords)
{
	uint64_t count = 0;

	if (nwords > words_each)
		nwords = (size_t)words_each;
	for (size_t b = 0; b < n; b++) {
		uint64_t *w = bitmaps[b];

		if (!w)
			continue;
		for (size_t i = 0; i < nwords; i++) {
			/* A clear word is left alone (a plain load; nothing
			 * is lost: a bit set after it is there next time),
			 * so that a pass touches only what was written. */
			if (!__atomic_load_n(&w[i], __ATOMIC_RELAXED))
				continue;
			out[i] |=
			    __atomic_exchange_n(&w[i], 0, __ATOMIC_ACQUIRE);
		}
	}
	for (size_t i = 0; i < nwords; i++)
		count += (uint64_t)__builtin_popcountll(out[i]);
	return count;
}
