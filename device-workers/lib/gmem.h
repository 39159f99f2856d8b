/* Guest RAM as a device worker sees it: the shared memfd mapped once, and
 * every guest address translated together with its length. */
#ifndef BH_WORKER_GMEM_H
#define BH_WORKER_GMEM_H

#include <stddef.h>
#include <stdint.h>

#define BH_GMEM_MAX_REGIONS 2

struct bh_gmem_region {
	uint64_t guest_phys;
	uint64_t size;
	uint8_t *host;
};

struct bh_gmem {
	uint8_t *base; /* mapping of the whole memfd, or NULL */
	uint64_t size;
	unsigned int n;
	struct bh_gmem_region r[BH_GMEM_MAX_REGIONS];
};

/*
 * Maps memfd (borrowed) of memfd_size shared and records the regions,
 * checking each lies in the memfd, is page aligned and overlaps no other.
 * 0 or -errno. gpa/size/offset triples come from the controller.
 */
int bh_gmem_map(struct bh_gmem *m, int memfd, uint64_t memfd_size,
		const uint64_t (*regions)[3], unsigned int n);
void bh_gmem_unmap(struct bh_gmem *m);

/*
 * Host pointer for the guest range [gpa, gpa + len) if it lies wholly in one
 * region (overflow-safe; len 0 is allowed inside a region), else NULL. Guest
 * addresses are guest-controlled: never dereference them another way.
 */
void *bh_gmem_ptr(const struct bh_gmem *m, uint64_t gpa, uint64_t len);

#endif
