/* Guest RAM as a device worker sees it: the shared memfd mapped once, every
 * guest address translated together with its length, and the dirty log of
 * the worker's own writes into it. */
#ifndef BH_WORKER_GMEM_H
#define BH_WORKER_GMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BH_GMEM_MAX_REGIONS 2
/* The dirty log's granule: one bit per this many bytes of the memfd. */
#define BH_GMEM_LOG_PAGE 4096ULL

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
	/* Dirty log (MSG_DEVICE_DIRTY_LOG): NULL while off. Shared with the
	 * controller, which clears or swaps it between passes. */
	uint8_t *log;
	uint64_t log_size;
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

/*
 * Memfd offset of the guest range [gpa, gpa + len), with the checks of
 * bh_gmem_ptr: 0 with *off, or -EFAULT if the range is not wholly in one
 * region.
 */
int bh_gmem_offset(const struct bh_gmem *m, uint64_t gpa, uint64_t len,
		   uint64_t *off);

/* Bytes of dirty bitmap a memfd of memfd_size needs: one bit per
 * BH_GMEM_LOG_PAGE, rounded up to whole 64-bit words. */
uint64_t bh_gmem_log_bytes(uint64_t memfd_size);

/*
 * Starts logging into the bitmap in fd (borrowed), replacing any earlier
 * log: 0, -EINVAL if fd holds fewer than bh_gmem_log_bytes bytes, or -errno
 * of the mapping. On failure the earlier state stands.
 */
int bh_gmem_log_start(struct bh_gmem *m, int fd);
/* Stops logging and unmaps the bitmap (nothing if it was off). */
void bh_gmem_log_stop(struct bh_gmem *m);

/* Sets the bits of every page of the memfd range [off, off + len), which
 * must lie in the memfd. Only with logging on. */
void bh_gmem_log_range(const struct bh_gmem *m, uint64_t off, uint64_t len);
/* The same for a guest range; a range outside guest RAM is ignored (it
 * was never written: every write goes through bh_gmem_ptr). */
void bh_gmem_log_gpa_range(const struct bh_gmem *m, uint64_t gpa, uint64_t len);

/* True while the dirty log is on: the one branch the write paths pay when
 * it is off. */
static inline bool bh_gmem_logging(const struct bh_gmem *m)
{
	return __builtin_expect(m->log != NULL, 0);
}

/*
 * Logs a write the worker made (or let the kernel make) into guest RAM at
 * host pointer p, len bytes, which came from bh_gmem_ptr. Call after the
 * write: a bit set before it could be cleared by a pass that then copies
 * the page without it.
 */
static inline void bh_gmem_log_host(const struct bh_gmem *m, const void *p,
				    size_t len)
{
	if (bh_gmem_logging(m) && len)
		bh_gmem_log_range(m, (uint64_t)((const uint8_t *)p - m->base),
				  len);
}

#endif
