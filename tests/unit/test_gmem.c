/* Unit tests for the device workers' guest-RAM translation (lib/gmem.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include <bulkhead/util.h>

#include "gmem.h"

#define LOW_SIZE  (1 * BH_MIB)
#define HIGH_SIZE (1 * BH_MIB)
#define HIGH_GPA  (4 * BH_GIB)
#define FD_SIZE	  (LOW_SIZE + HIGH_SIZE)

/* RAM below the hole at 0, the rest at 4 GiB: two slices of one memfd. */
static const uint64_t two_regions[2][3] = {
	{ 0, LOW_SIZE, 0 },
	{ HIGH_GPA, HIGH_SIZE, LOW_SIZE },
};

static int make_memfd(uint64_t size)
{
	int fd = memfd_create("test-gmem", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static void map_two(struct bh_gmem *m, int *fd)
{
	*fd = make_memfd(FD_SIZE);
	assert_int_equal(bh_gmem_map(m, *fd, FD_SIZE, two_regions, 2), 0);
}

static void test_translate(void **state)
{
	struct bh_gmem m;
	uint8_t byte = 0;
	uint8_t *p;
	int fd;

	map_two(&m, &fd);
	assert_ptr_equal(bh_gmem_ptr(&m, 0, 1), m.base);
	assert_ptr_equal(bh_gmem_ptr(&m, 0x1234, 16), m.base + 0x1234);
	/* The high region is the memfd's second MiB. */
	p = bh_gmem_ptr(&m, HIGH_GPA + 0x10, 4);
	assert_ptr_equal(p, m.base + LOW_SIZE + 0x10);
	/* Shared: what the worker writes is in the memfd. */
	*p = 0xa5;
	assert_int_equal(pread(fd, &byte, 1, LOW_SIZE + 0x10), 1);
	assert_int_equal(byte, 0xa5);
	/* Whole regions, up to their last byte. */
	assert_non_null(bh_gmem_ptr(&m, 0, LOW_SIZE));
	assert_non_null(bh_gmem_ptr(&m, HIGH_GPA, HIGH_SIZE));
	assert_non_null(bh_gmem_ptr(&m, LOW_SIZE - 1, 1));
	assert_non_null(bh_gmem_ptr(&m, HIGH_GPA + HIGH_SIZE - 1, 1));
	/* len 0 inside a region. */
	assert_non_null(bh_gmem_ptr(&m, 0x100, 0));
	bh_gmem_unmap(&m);
	close(fd);
}

static void test_reject_ranges(void **state)
{
	struct bh_gmem m;
	int fd;

	map_two(&m, &fd);
	/* Past the end of a region, even by one byte. */
	assert_null(bh_gmem_ptr(&m, 0, LOW_SIZE + 1));
	assert_null(bh_gmem_ptr(&m, HIGH_GPA, HIGH_SIZE + 1));
	/* Straddling the end of region 0 into the hole: contiguous in the
	 * host mapping, but not in guest-physical space. */
	assert_null(bh_gmem_ptr(&m, LOW_SIZE - 8, 16));
	/* In the hole, and below region 1. */
	assert_null(bh_gmem_ptr(&m, LOW_SIZE, 1));
	assert_null(bh_gmem_ptr(&m, 3 * BH_GIB, 1));
	assert_null(bh_gmem_ptr(&m, HIGH_GPA - 1, 2));
	/* Beyond all RAM. */
	assert_null(bh_gmem_ptr(&m, HIGH_GPA + HIGH_SIZE, 1));
	assert_null(bh_gmem_ptr(&m, HIGH_GPA + HIGH_SIZE, 0));
	/* len 0 exactly at a region's end is not inside it. */
	assert_null(bh_gmem_ptr(&m, LOW_SIZE, 0));
	/* gpa + len wraps. */
	assert_null(bh_gmem_ptr(&m, UINT64_MAX - 10, 100));
	assert_null(bh_gmem_ptr(&m, UINT64_MAX, 1));
	assert_null(bh_gmem_ptr(&m, 0x1000, UINT64_MAX));
	assert_null(bh_gmem_ptr(&m, HIGH_GPA + 0x1000, UINT64_MAX - 0xfff));
	bh_gmem_unmap(&m);
	close(fd);
}

static void test_bad_tables(void **state)
{
	const uint64_t unaligned_gpa[1][3] = { { 0x800, 0x1000, 0 } };
	const uint64_t unaligned_size[1][3] = { { 0, 0x1800, 0 } };
	const uint64_t unaligned_off[1][3] = { { 0, 0x1000, 0x800 } };
	const uint64_t empty[1][3] = { { 0, 0, 0 } };
	const uint64_t past_fd[1][3] = { { 0, FD_SIZE, 0x1000 } };
	const uint64_t overlap[2][3] = { { 0, 0x2000, 0 },
					 { 0x1000, 0x1000, 0x2000 } };
	const uint64_t wraps[1][3] = { { UINT64_MAX - 0xfff, 0x2000, 0 } };
	const uint64_t off_wraps[1][3] = { { 0, 0x1000, UINT64_MAX - 0xfff } };
	uint64_t three[3][3] = { { 0, 0x1000, 0 },
				 { 0x10000, 0x1000, 0x1000 },
				 { 0x20000, 0x1000, 0x2000 } };
	struct bh_gmem m;
	int fd = make_memfd(FD_SIZE);

	assert_int_equal(bh_gmem_map(&m, fd, FD_SIZE, two_regions, 0), -EINVAL);
	assert_int_equal(
	    bh_gmem_map(&m, fd, FD_SIZE, (const uint64_t(*)[3])three, 3),
	    -EINVAL);
	assert_int_equal(bh_gmem_map(&m, fd, FD_SIZE, unaligned_gpa, 1),
			 -EINVAL);
	assert_int_equal(bh_gmem_map(&m, fd, FD_SIZE, unaligned_size, 1),
			 -EINVAL);
	assert_int_equal(bh_gmem_map(&m, fd, FD_SIZE, unaligned_off, 1),
			 -EINVAL);
	assert_int_equal(bh_gmem_map(&m, fd, FD_SIZE, empty, 1), -EINVAL);
	assert_int_equal(bh_gmem_map(&m, fd, FD_SIZE, past_fd, 1), -EINVAL);
	assert_int_equal(bh_gmem_map(&m, fd, FD_SIZE, overlap, 2), -EINVAL);
	assert_int_equal(bh_gmem_map(&m, fd, FD_SIZE, wraps, 1), -EINVAL);
	assert_int_equal(bh_gmem_map(&m, fd, FD_SIZE, off_wraps, 1), -EINVAL);
	/* A size the memfd does not have, or no size at all. */
	assert_int_equal(bh_gmem_map(&m, fd, 2 * FD_SIZE, two_regions, 2),
			 -EINVAL);
	assert_int_equal(bh_gmem_map(&m, fd, 0, two_regions, 2), -EINVAL);
	assert_int_equal(bh_gmem_map(&m, fd, FD_SIZE + 1, two_regions, 2),
			 -EINVAL);
	assert_int_equal(bh_gmem_map(&m, -1, FD_SIZE, two_regions, 2), -EBADF);
	/* Nothing mapped after a failure, and translation finds nothing. */
	assert_null(m.base);
	assert_null(bh_gmem_ptr(&m, 0, 1));
	close(fd);
}

static void test_unmap(void **state)
{
	struct bh_gmem m;
	int fd;

	map_two(&m, &fd);
	bh_gmem_unmap(&m);
	assert_null(m.base);
	assert_int_equal(m.n, 0);
	assert_null(bh_gmem_ptr(&m, 0, 1));
	bh_gmem_unmap(&m);
	close(fd);
}

/* Guest addresses become memfd offsets in both regions, with the checks of
 * bh_gmem_ptr. */
static void test_offset(void **state)
{
	struct bh_gmem m;
	uint64_t off = 1;
	int fd;

	map_two(&m, &fd);
	assert_int_equal(bh_gmem_offset(&m, 0x1234, 16, &off), 0);
	assert_int_equal(off, 0x1234);
	assert_int_equal(bh_gmem_offset(&m, HIGH_GPA + 0x10, 4, &off), 0);
	assert_int_equal(off, LOW_SIZE + 0x10);
	assert_int_equal(bh_gmem_offset(&m, LOW_SIZE - 4, 8, &off), -EFAULT);
	assert_int_equal(bh_gmem_offset(&m, LOW_SIZE, 1, &off), -EFAULT);
	assert_int_equal(bh_gmem_offset(&m, UINT64_MAX, 2, &off), -EFAULT);
	bh_gmem_unmap(&m);
	close(fd);
}

static bool bit(const uint8_t *log, uint64_t page)
{
	return log[page / 8] & (1u << (page % 8));
}

/*
 * The bitmap's layout: page = memfd offset / 4096, bit page % 8 of byte
 * page / 8; a range sets every page it touches and no other; a guest range
 * outside RAM sets nothing; a log memfd too small is refused and the
 * earlier log stands; stopping unmaps.
 */
static void test_dirty_log(void **state)
{
	uint64_t need = bh_gmem_log_bytes(FD_SIZE), pages = FD_SIZE / 4096;
	struct bh_gmem m;
	uint8_t *log;
	int fd, lfd, small;
	unsigned int set = 0;

	assert_int_equal(need, pages / 8);
	assert_int_equal(bh_gmem_log_bytes(4096), 8);
	assert_int_equal(bh_gmem_log_bytes(65 * 4096), 16);
	map_two(&m, &fd);
	assert_false(bh_gmem_logging(&m));
	/* Off: nothing to log into, nothing happens. */
	bh_gmem_log_range(&m, 0, 4096);

	small = make_memfd(need - 1);
	assert_int_equal(bh_gmem_log_start(&m, small), -EINVAL);
	assert_false(bh_gmem_logging(&m));
	lfd = make_memfd(need);
	log = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_SHARED, lfd, 0);
	assert_true(log != MAP_FAILED);
	assert_int_equal(bh_gmem_log_start(&m, lfd), 0);
	assert_true(bh_gmem_logging(&m));

	/* Two bytes across the boundary of pages 0 and 1. */
	bh_gmem_log_gpa_range(&m, 4095, 2);
	/* Page 9 of the high region: memfd page 256 + 9 = byte 33, bit 1. */
	bh_gmem_log_gpa_range(&m, HIGH_GPA + 9 * 4096 + 100, 1);
	bh_gmem_log_host(&m, m.base + 20 * 4096, 3 * 4096);
	/* Outside RAM: ignored. */
	bh_gmem_log_gpa_range(&m, LOW_SIZE + 4096, 1);
	assert_true(bit(log, 0) && bit(log, 1));
	assert_int_equal(log[33], 1u << 1);
	assert_true(bit(log, 20) && bit(log, 21) && bit(log, 22));
	for (uint64_t pg = 0; pg < pages; pg++)
		set += bit(log, pg);
	assert_int_equal(set, 6);

	/* Refused: the log in force stays. */
	assert_int_equal(bh_gmem_log_start(&m, small), -EINVAL);
	assert_true(bh_gmem_logging(&m));
	bh_gmem_log_gpa_range(&m, 2 * 4096, 1);
	assert_true(bit(log, 2));

	bh_gmem_log_stop(&m);
	assert_false(bh_gmem_logging(&m));
	memset(log, 0, need);
	bh_gmem_log_range(&m, 0, FD_SIZE);
	for (uint64_t i = 0; i < need; i++)
		assert_int_equal(log[i], 0);
	munmap(log, need);
	close(lfd);
	close(small);
	bh_gmem_unmap(&m);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_translate),
		cmocka_unit_test(test_reject_ranges),
		cmocka_unit_test(test_bad_tables),
		cmocka_unit_test(test_unmap),
		cmocka_unit_test(test_offset),
		cmocka_unit_test(test_dirty_log),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
