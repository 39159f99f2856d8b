/* Guest RAM: one sealed memfd, mapped in the controller while it loads. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guestmem.h"

int bh_guest_mem_create(struct bh_guest_mem *gm,
			const struct bh_mem_layout *layout)
{
	int fd = -1;
	void *p;
	int r;

	gm->memfd = -1;
	gm->host = NULL;
	if (layout->ram_size == 0 || layout->nregions == 0 ||
	    layout->nregions > BH_MAX_RAM_REGIONS)
		return -EINVAL;
	if (layout->ram_size > SIZE_MAX || layout->ram_size > INT64_MAX)
		return -ENOMEM;

	fd =
	    memfd_create("bulkhead-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)layout->ram_size) < 0) {
		r = -errno;
		goto err_close;
	}
	/* The runner and the workers map this fd trusting its size: once
	 * sealed, nobody can shrink it under them and make their accesses
	 * fault, nor grow it. F_SEAL_SEAL keeps the set fixed. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
	    0) {
		r = -errno;
		goto err_close;
	}
	p = mmap(NULL, (size_t)layout->ram_size, PROT_READ | PROT_WRITE,
		 MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		goto err_close;
	}

	gm->memfd = fd;
	gm->host = p;
	gm->layout = *layout;
	return 0;

err_close:
	close(fd);
	return r;
}

int bh_guest_mem_check_fd(int fd, uint64_t size)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	/* Not a memfd (or one made without sealing) has no seals to get. */
	if (seals < 0)
		return -EINVAL;
	if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) !=
	    (F_SEAL_SHRINK | F_SEAL_GROW))
		return -EPERM;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
		return -ERANGE;
	return 0;
}

int bh_guest_mem_adopt(struct bh_guest_mem *gm,
		       const struct bh_mem_layout *layout, int fd)
{
	int r = bh_guest_mem_check_fd(fd, layout->ram_size);

	if (r < 0)
		return r;
	gm->memfd = fd;
	gm->host = NULL;
	gm->layout = *layout;
	return 0;
}

void bh_guest_mem_unmap(struct bh_guest_mem *gm)
{
	if (gm->host != NULL) {
		munmap(gm->host, (size_t)gm->layout.ram_size);
		gm->host = NULL;
	}
}

void bh_guest_mem_destroy(struct bh_guest_mem *gm)
{
	bh_guest_mem_unmap(gm);
	if (gm->memfd >= 0) {
		close(gm->memfd);
		gm->memfd = -1;
	}
}

void *bh_guest_mem_ptr(const struct bh_guest_mem *gm, uint64_t gpa,
		       uint64_t len)
{
	const struct bh_ram_region *r;
	uint64_t off;
	unsigned int i;

	if (gm->host == NULL)
		return NULL;
	for (i = 0; i < gm->layout.nregions; i++) {
		r = &gm->layout.regions[i];
		if (gpa < r->guest_phys)
			continue;
		off = gpa - r->guest_phys;
		if (off >= r->size)
			continue;
		/* Compared as remaining room, so gpa + len never overflows. */
		if (len > r->size - off)
			return NULL;
		return gm->host + r->memfd_offset + off;
	}
	return NULL;
}

int bh_guest_mem_write(const struct bh_guest_mem *gm, uint64_t gpa,
		       const void *src, size_t len)
{
	void *dst = bh_guest_mem_ptr(gm, gpa, len);

	if (dst == NULL)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}
