/* Unit tests of the runner's dirty log without KVM: KVM's per-slot bitmaps
 * folded into the controller's bitmap at any slot offset and size, the
 * bitmap memfd's size check, and the checks of the two requests. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "dirty.h"

static bool bit(const uint64_t *b, uint64_t i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

static void set_bit(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ULL << (i % 64);
}

/* A little xorshift: the same sequence on every run. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * One slot of npages at first_page into a bitmap of dst_words words that
 * holds bits already: afterwards dst must be the old bits OR the slot's
 * bits moved by first_page, bit by bit, nothing past npages of the source
 * (its last word is filled with garbage past the end) and nothing past
 * dst's end; the count is the source's bits below npages.
 */
static void fold_case(uint64_t npages, uint64_t first_page, uint64_t dst_words,
		      uint64_t seed)
{
	uint64_t sw = (npages + 63) / 64;
	uint64_t *src = calloc(sw ? sw : 1, 8);
	uint64_t *dst = calloc(dst_words, 8);
	uint64_t *want = calloc(dst_words, 8);
	uint64_t s = seed, count = 0;

	assert_non_null(src);
	assert_non_null(dst);
	assert_non_null(want);
	for (uint64_t i = 0; i < dst_words; i++)
		want[i] = dst[i] = rnd(&s) & rnd(&s) & rnd(&s);
	for (uint64_t k = 0; k < sw; k++)
		src[k] = rnd(&s) & rnd(&s);
	if (sw && npages % 64)
		src[sw - 1] |= ~0ULL << (npages % 64); /* past the slot */
	for (uint64_t i = 0; i < npages; i++) {
		if (!bit(src, i))
			continue;
		count++;
		if (first_page + i < dst_words * 64)
			set_bit(want, first_page + i);
	}
	assert_int_equal(bh_dirty_fold(dst, dst_words, src, npages, first_page),
			 count);
	for (uint64_t i = 0; i < dst_words * 64; i++)
		if (bit(dst, i) != bit(want, i))
			fail_msg("npages %llu at page %llu: page %llu is %d, "
				 "should be %d",
				 (unsigned long long)npages,
				 (unsigned long long)first_page,
				 (unsigned long long)i, bit(dst, i),
				 bit(want, i));
	free(src);
	free(dst);
	free(want);
}

static void test_fold_aligned(void **state)
{
	(void)state;
	fold_case(64, 0, 2, 1);
	fold_case(128, 64, 4, 2);
	fold_case(4096, 0, 64, 3);
	fold_case(4096, 4096, 128, 4);
}

/* Slots whose memfd offset is not a multiple of 64 pages: each word of
 * KVM's bitmap lands across two words of the shared one. */
static void test_fold_odd_offsets(void **state)
{
	static const uint64_t offs[] = { 1, 3, 31, 32, 33, 63, 65, 127, 1000 };

	(void)state;
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		fold_case(64, offs[i], 40, 10 + i);
		fold_case(640, offs[i], 40, 20 + i);
		fold_case(1, offs[i], 40, 30 + i);
	}
}

/* Slot sizes that are not whole words of pages. */
static void test_fold_odd_sizes(void **state)
{
	static const uint64_t sizes[] = { 1, 2, 63, 65, 100, 127, 129, 1023 };

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		fold_case(sizes[i], 0, 20, 40 + i);
		fold_case(sizes[i], 7, 20, 50 + i);
		fold_case(sizes[i], 64 * 3 + 61, 20, 60 + i);
	}
}

/* Every offset and size of a small range, against the bit-by-bit fold. */
static void test_fold_exhaustive(void **state)
{
	(void)state;
	for (uint64_t off = 0; off < 130; off++)
		for (uint64_t n = 1; n < 200; n += 7)
			fold_case(n, off, 8, off * 1000 + n + 1);
}

/* A slot reaching past the bitmap's end (it cannot, the runner checked the
 * regions against the memfd; the fold stays inside all the same). */
static void test_fold_clipped(void **state)
{
	uint64_t dst[3] = { 0, 0, 0 };
	uint64_t src[4] = { ~0ULL, ~0ULL, ~0ULL, ~0ULL };

	(void)state;
	fold_case(256, 100, 3, 77);
	assert_int_equal(bh_dirty_fold(dst, 2, src, 256, 65), 256);
	assert_true(dst[0] == 0 && dst[1] == ~1ULL && dst[2] == 0);
}

/* Empty source words are skipped; nothing is written for them. */
static void test_fold_counts_only_set(void **state)
{
	uint64_t dst[4] = { 5, 0, 0, 9 },
		 src[3] = { 0, 0x8000000000000001ULL, 0 };

	(void)state;
	assert_int_equal(bh_dirty_fold(dst, 4, src, 192, 32), 2);
	assert_true(dst[0] == 5);
	assert_true(dst[1] == (1ULL << 32));
	assert_true(dst[2] == (1ULL << 31));
	assert_true(dst[3] == 9);
}

static void test_sizes(void **state)
{
	(void)state;
	assert_int_equal(bh_dirty_bitmap_bytes(4096), 8);
	assert_int_equal(bh_dirty_bitmap_bytes(64 * 4096), 8);
	assert_int_equal(bh_dirty_bitmap_bytes(65 * 4096), 16);
	assert_int_equal(bh_dirty_bitmap_bytes(1ULL << 30), 32768);
	assert_int_equal(bh_dirty_bitmap_bytes(4097), 8);
	assert_int_equal(bh_dirty_slot_words(4096), 1);
	assert_int_equal(bh_dirty_slot_words(65 * 4096), 2);
	assert_int_equal(bh_dirty_slot_words(3ULL << 30), 12288);
}

static int memfd_of(uint64_t size)
{
	int fd = memfd_create("test-dirty", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/* The bitmap's size is checked without fstat: a file that lacks a page of
 * it is -EINVAL, and nothing stays mapped; the right size maps shared. */
static void test_map(void **state)
{
	uint64_t ram = 3ULL << 30, need = bh_dirty_bitmap_bytes(ram);
	uint64_t *map = NULL, bytes = 0, word = 0;
	int fd;

	(void)state;
	/* A page short, more, or empty (a file that ends inside the last
	 * page cannot be told apart, and cannot raise SIGBUS either). */
	fd = memfd_of(need - 4096);
	assert_int_equal(bh_dirty_map(fd, ram, &map, &bytes), -EINVAL);
	close(fd);
	fd = memfd_of(need - 4097);
	assert_int_equal(bh_dirty_map(fd, ram, &map, &bytes), -EINVAL);
	close(fd);
	fd = memfd_of(0);
	assert_int_equal(bh_dirty_map(fd, ram, &map, &bytes), -EINVAL);
	close(fd);
	assert_null(map);

	fd = memfd_of(need);
	assert_int_equal(bh_dirty_map(fd, ram, &map, &bytes), 0);
	assert_non_null(map);
	assert_int_equal(bytes, need);
	/* Shared: what the runner folds in, the controller reads. */
	map[need / 8 - 1] = 0x42;
	assert_int_equal(pread(fd, &word, 8, (off_t)(need - 8)), 8);
	assert_int_equal(word, 0x42);
	bh_dirty_unmap(map, bytes);
	close(fd);

	/* Larger than needed is fine; an fd that cannot be mapped is not. */
	fd = memfd_of(need + 8192);
	assert_int_equal(bh_dirty_map(fd, ram, &map, &bytes), 0);
	assert_int_equal(bytes, need);
	bh_dirty_unmap(map, bytes);
	close(fd);
	assert_true(bh_dirty_map(-1, ram, &map, &bytes) < 0);
}

static void test_checks(void **state)
{
	const char *why = NULL;

	(void)state;
	assert_int_equal(bh_dirty_check_log(true, 1, true, &why), 0);
	assert_int_equal(bh_dirty_check_log(false, 0, true, &why), 0);
	/* The fds must fit the request, before anything else. */
	assert_int_equal(bh_dirty_check_log(true, 0, true, &why), -EPROTO);
	assert_non_null(why);
	assert_int_equal(bh_dirty_check_log(true, 2, false, &why), -EPROTO);
	assert_int_equal(bh_dirty_check_log(false, 1, true, &why), -EPROTO);
	/* Before RUNNER_START: refused, the runner lives on. */
	why = NULL;
	assert_int_equal(bh_dirty_check_log(true, 1, false, &why), -EAGAIN);
	assert_non_null(strstr(why, "RUNNER_START"));
	assert_int_equal(bh_dirty_check_log(false, 0, false, &why), -EAGAIN);

	assert_int_equal(bh_dirty_check_sync(true, true, &why), 0);
	assert_int_equal(bh_dirty_check_sync(false, true, &why), -EAGAIN);
	why = NULL;
	assert_int_equal(bh_dirty_check_sync(true, false, &why), -ENODATA);
	assert_non_null(strstr(why, "off"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fold_aligned),
		cmocka_unit_test(test_fold_odd_offsets),
		cmocka_unit_test(test_fold_odd_sizes),
		cmocka_unit_test(test_fold_exhaustive),
		cmocka_unit_test(test_fold_clipped),
		cmocka_unit_test(test_fold_counts_only_set),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_map),
		cmocka_unit_test(test_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
