/* Unit tests for the device workers' guest-RAM translation (lib/gmem.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_translate),
		cmocka_unit_test(test_reject_ranges),
		cmocka_unit_test(test_bad_tables),
		cmocka_unit_test(test_unmap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
