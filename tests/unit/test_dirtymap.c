/* Unit tests of the controller's dirty bitmaps (controller/dirtymap.c): the
 * sealed memfd each writer gets, and the take that merges every writer's
 * bitmap and clears it, with no bit lost to a writer setting bits during
 * the take. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dirtymap.h"

static void test_words(void **state)
{
	(void)state;
	assert_int_equal(bh_dirtymap_words(4096), 1);
	assert_int_equal(bh_dirtymap_words(64 * 4096), 1);
	assert_int_equal(bh_dirtymap_words(64 * 4096 + 1), 2);
	assert_int_equal(bh_dirtymap_words(1ULL << 30), 4096);
	assert_int_equal(bh_dirtymap_words(0), 0);
}

/* The memfd a writer maps: its size, clear, sealed, and shared with the
 * mapping here. */
static void test_create(void **state)
{
	struct bh_dirtymap m;
	uint64_t ram = (3ULL << 30) + (1ULL << 20), v = 0x5a;
	int seals;

	(void)state;
	assert_int_equal(bh_dirtymap_create(&m, ram), 0);
	assert_true(m.fd >= 0);
	assert_int_equal(m.nwords, bh_dirtymap_words(ram));
	assert_int_equal(lseek(m.fd, 0, SEEK_END), (off_t)(m.nwords * 8));
	for (uint64_t i = 0; i < m.nwords; i++)
		assert_true(m.words[i] == 0);
	seals = fcntl(m.fd, F_GET_SEALS);
	assert_true(seals >= 0);
	assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
			 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	assert_int_equal(ftruncate(m.fd, 8), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(m.fd, (off_t)(m.nwords * 16)), -1);
	/* A writer's bit is seen here. */
	assert_int_equal(pwrite(m.fd, &v, 8, 8 * 7), 8);
	assert_true(m.words[7] == 0x5a);
	assert_int_equal(fcntl(m.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	bh_dirtymap_destroy(&m);
	assert_int_equal(m.fd, -1);
	assert_null(m.words);
	bh_dirtymap_destroy(&m); /* twice is fine */
	assert_int_equal(bh_dirtymap_create(&m, 0), -EINVAL);
	assert_int_equal(m.fd, -1);
}

/* Several writers: out gets the OR of all, each bitmap is cleared, and the
 * count is of out's bits (those it held before included). */
static void test_take_merges(void **state)
{
	uint64_t a[4] = { 0x1, 0, 0xf0, 1ULL << 63 };
	uint64_t b[4] = { 0x3, 0x100, 0, 1ULL << 63 };
	uint64_t c[4] = { 0, 0, 0, 0 };
	uint64_t *maps[4] = { a, NULL, b, c };
	uint64_t out[4] = { 0, 0, 0, 0x2 };

	(void)state;
	assert_int_equal(bh_dirtymap_take(maps, 4, 4, out, 4), 2 + 1 + 4 + 2);
	assert_true(out[0] == 0x3 && out[1] == 0x100 && out[2] == 0xf0 &&
		    out[3] == ((1ULL << 63) | 0x2));
	for (int i = 0; i < 4; i++)
		assert_true(a[i] == 0 && b[i] == 0 && c[i] == 0);
	/* Nothing new: nothing more, out as it was. */
	assert_int_equal(bh_dirtymap_take(maps, 4, 4, out, 4), 9);
	memset(out, 0, sizeof(out));
	assert_int_equal(bh_dirtymap_take(maps, 4, 4, out, 4), 0);
	/* A bit set after a take is in the next one. */
	b[2] = 0x8;
	assert_int_equal(bh_dirtymap_take(maps, 4, 4, out, 4), 1);
	assert_true(out[2] == 0x8 && b[2] == 0);
}

/* A shorter out takes only its words; the rest waits in the bitmaps. */
static void test_take_partial(void **state)
{
	uint64_t a[3] = { 1, 2, 4 }, out[3] = { 0, 0, 0 };
	uint64_t *maps[1] = { a };

	(void)state;
	assert_int_equal(bh_dirtymap_take(maps, 1, 3, out, 2), 2);
	assert_true(a[0] == 0 && a[1] == 0 && a[2] == 4);
	assert_true(out[2] == 0);
	/* An out longer than the bitmaps: their length counts. */
	memset(out, 0, sizeof(out));
	assert_int_equal(bh_dirtymap_take(maps, 1, 1, out, 3), 0);
	assert_int_equal(bh_dirtymap_take(maps, 1, 3, out, 3), 1);
	assert_true(out[2] == 4 && a[2] == 0);
}

/* Writers set bits while the controller takes, as the runner's sync and
 * the workers do during a pass: every bit set is taken exactly once over
 * the takes, none lost and none twice. */
#define RACE_WORDS 512
#define RACE_BITS  (RACE_WORDS * 64)

struct racer {
	uint64_t *words;
	unsigned int stride, first;
	bool done;
};

static void *race_writer(void *arg)
{
	struct racer *r = arg;

	for (unsigned int i = r->first; i < RACE_BITS; i += r->stride)
		__atomic_fetch_or(&r->words[i / 64], 1ULL << (i % 64),
				  __ATOMIC_RELEASE);
	__atomic_store_n(&r->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static void test_take_while_writing(void **state)
{
	struct bh_dirtymap m[2];
	struct racer rc[2];
	pthread_t t[2];
	uint64_t *maps[2], *seen = calloc(RACE_WORDS, 8), total = 0;
	uint64_t out[RACE_WORDS];

	(void)state;
	assert_non_null(seen);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(bh_dirtymap_create(&m[i], RACE_BITS * 4096ULL),
				 0);
		maps[i] = m[i].words;
		/* Two writers that share words, bits apart. */
		rc[i] = (struct racer){ m[i].words, 2, (unsigned int)i, false };
		assert_int_equal(
		    pthread_create(&t[i], NULL, race_writer, &rc[i]), 0);
	}
	for (;;) {
		bool done = __atomic_load_n(&rc[0].done, __ATOMIC_ACQUIRE) &&
			    __atomic_load_n(&rc[1].done, __ATOMIC_ACQUIRE);

		memset(out, 0, sizeof(out));
		total += bh_dirtymap_take(maps, 2, RACE_WORDS, out, RACE_WORDS);
		for (int w = 0; w < RACE_WORDS; w++) {
			/* Never the same bit in two takes. */
			assert_true((seen[w] & out[w]) == 0);
			seen[w] |= out[w];
		}
		if (done)
			break;
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	memset(out, 0, sizeof(out));
	assert_int_equal(bh_dirtymap_take(maps, 2, RACE_WORDS, out, RACE_WORDS),
			 0);
	assert_int_equal(total, RACE_BITS);
	for (int w = 0; w < RACE_WORDS; w++)
		assert_true(seen[w] == ~0ULL);
	for (int i = 0; i < 2; i++)
		bh_dirtymap_destroy(&m[i]);
	free(seen);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_take_merges),
		cmocka_unit_test(test_take_partial),
		cmocka_unit_test(test_take_while_writing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
