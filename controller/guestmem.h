/* Guest RAM as seen by the controller: one sealed memfd, mapped while the
 * controller writes the boot images into it. */
#ifndef BH_CONTROLLER_GUESTMEM_H
#define BH_CONTROLLER_GUESTMEM_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

struct bh_guest_mem {
	int memfd;     /* owned, -1 when closed */
	uint8_t *host; /* whole memfd mapped shared, or NULL */
	struct bh_mem_layout layout;
};

/*
 * memfd_create("bulkhead-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING), sized
 * to layout->ram_size, sealed with F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL,
 * then mapped. 0 or -errno.
 */
int bh_guest_mem_create(struct bh_guest_mem *gm,
			const struct bh_mem_layout *layout);
/*
 * Whether fd can be guest RAM of size bytes: a memfd sealed against
 * shrinking and growing, of exactly that size. 0, -EINVAL (not a memfd),
 * -EPERM (not sealed so), -ERANGE (another size).
 */
int bh_guest_mem_check_fd(int fd, uint64_t size);
/* Takes fd, checked so, as the guest RAM of layout (not mapped). 0 or
 * bh_guest_mem_check_fd's -errno (fd is then still the caller's). */
int bh_guest_mem_adopt(struct bh_guest_mem *gm,
		       const struct bh_mem_layout *layout, int fd);
/* Unmaps and closes. */
void bh_guest_mem_destroy(struct bh_guest_mem *gm);
/* Drops the mapping but keeps the fd (after loading). */
void bh_guest_mem_unmap(struct bh_guest_mem *gm);

/*
 * Host pointer for [gpa, gpa + len) if the whole range lies inside one RAM
 * region (overflow-safe), else NULL.
 */
void *bh_guest_mem_ptr(const struct bh_guest_mem *gm, uint64_t gpa,
		       uint64_t len);

/* Copies into guest RAM; -EFAULT if the range is not all RAM. */
int bh_guest_mem_write(const struct bh_guest_mem *gm, uint64_t gpa,
		       const void *src, size_t len);

#endif
