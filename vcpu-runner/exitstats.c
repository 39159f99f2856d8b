/* VM-exit counters: an open-addressing table per vCPU, so counting costs a
 * few instructions on the exit path and no lock. */
#include <stdio.h>
#include <stdlib.h>

#include <bulkhead/util.h>

#include "exitstats.h"

#define KEY(kind, addr) \
	(((uint64_t)(kind) << 56) | ((addr) & ((1ULL << 56) - 1)))

static unsigned int slot_hash(uint64_t key)
{
	key ^= key >> 29;
	key *= 0xbf58476d1ce4e5b9ULL;
	key ^= key >> 32;
	return (unsigned int)(key % BH_EXITSTATS_SLOTS);
}

static void add(struct bh_exitstats *s, uint64_t key, uint64_t n)
{
	unsigned int h = slot_hash(key);

	for (unsigned int i = 0; i < BH_EXITSTATS_SLOTS; i++) {
		struct bh_exit_slot *sl =
		    &s->slots[(h + i) % BH_EXITSTATS_SLOTS];
		uint64_t k = __atomic_load_n(&sl->key, __ATOMIC_RELAXED);

		if (k == key || k == 0) {
			if (k == 0)
				__atomic_store_n(&sl->key, key,
						 __ATOMIC_RELAXED);
			__atomic_store_n(&sl->count, sl->count + n,
					 __ATOMIC_RELAXED);
			return;
		}
	}
	__atomic_store_n(&s->overflow, s->overflow + n, __ATOMIC_RELAXED);
}

void bh_exitstats_count(struct bh_exitstats *s, enum bh_exit_kind kind,
			uint64_t addr)
{
	__atomic_store_n(&s->total, s->total + 1, __ATOMIC_RELAXED);
	add(s, KEY(kind, addr), 1);
}

void bh_exitstats_merge(struct bh_exitstats *dst,
			const struct bh_exitstats *src)
{
	dst->total += __atomic_load_n(&src->total, __ATOMIC_RELAXED);
	dst->overflow += __atomic_load_n(&src->overflow, __ATOMIC_RELAXED);
	for (unsigned int i = 0; i < BH_EXITSTATS_SLOTS; i++) {
		uint64_t k =
		    __atomic_load_n(&src->slots[i].key, __ATOMIC_RELAXED);
		uint64_t c =
		    __atomic_load_n(&src->slots[i].count, __ATOMIC_RELAXED);

		if (k && c)
			add(dst, k, c);
	}
}

void bh_exitstats_describe(uint64_t key, char *buf, size_t len)
{
	static const char *const names[] = {
		[BH_EXIT_IO_IN] = "io-in",
		[BH_EXIT_IO_OUT] = "io-out",
		[BH_EXIT_MMIO_READ] = "mmio-read",
		[BH_EXIT_MMIO_WRITE] = "mmio-write",
		[BH_EXIT_OTHER] = "exit-reason",
	};
	unsigned int kind = (unsigned int)(key >> 56);
	uint64_t addr = key & ((1ULL << 56) - 1);

	if (kind >= BH_EXIT_IO_IN && kind <= BH_EXIT_OTHER)
		snprintf(buf, len,
			 kind == BH_EXIT_OTHER ? "%s %llu" : "%s 0x%llx",
			 names[kind], (unsigned long long)addr);
	else
		snprintf(buf, len, "unknown 0x%llx", (unsigned long long)key);
}

static int by_count_desc(const void *a, const void *b, void *arg)
{
	const struct bh_exitstats *s = arg;
	uint64_t ca = s->slots[*(const unsigned int *)a].count;
	uint64_t cb = s->slots[*(const unsigned int *)b].count;

	return ca < cb ? 1 : ca > cb ? -1 : 0;
}

size_t bh_exitstats_sorted(const struct bh_exitstats *s, unsigned int *idx,
			   size_t max)
{
	size_t n = 0;

	for (unsigned int i = 0; i < BH_EXITSTATS_SLOTS && n < max; i++)
		if (s->slots[i].key && s->slots[i].count)
			idx[n++] = i;
	bh_sort_r(idx, n, sizeof(*idx), by_count_desc, (void *)s);
	return n;
}
