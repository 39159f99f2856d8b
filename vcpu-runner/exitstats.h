/* Counting VM exits to userspace, by kind and port or address, per vCPU. */
#ifndef BH_RUNNER_EXITSTATS_H
#define BH_RUNNER_EXITSTATS_H

#include <stddef.h>
#include <stdint.h>

enum bh_exit_kind {
	BH_EXIT_IO_IN = 1,
	BH_EXIT_IO_OUT,
	BH_EXIT_MMIO_READ,
	BH_EXIT_MMIO_WRITE,
	BH_EXIT_OTHER, /* addr holds the KVM exit reason */
};

#define BH_EXITSTATS_SLOTS 256

struct bh_exit_slot {
	uint64_t key; /* 0 = empty; kind << 56 | addr */
	uint64_t count;
};

/* Written by one vCPU thread, read by the main thread with relaxed atomics. */
struct bh_exitstats {
	uint64_t total;
	uint64_t overflow; /* exits that found no free slot */
	struct bh_exit_slot slots[BH_EXITSTATS_SLOTS];
};

void bh_exitstats_count(struct bh_exitstats *s, enum bh_exit_kind kind,
			uint64_t addr);
/* Adds every count of src into dst (dst owned by the caller's thread). */
void bh_exitstats_merge(struct bh_exitstats *dst,
			const struct bh_exitstats *src);
/* Describes a key: "io-out 0x3f8", "mmio-read 0xd0000000", "exit-reason 5". */
void bh_exitstats_describe(uint64_t key, char *buf, size_t len);
/* Fills idx[] with slot indices sorted by count, descending; returns count. */
size_t bh_exitstats_sorted(const struct bh_exitstats *s, unsigned int *idx,
			   size_t max);

#endif
