/* Unit tests for util.c: size and number parsing, file and full reads. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "bulkhead/util.h"

static void test_parse_size_good(void **state)
{
	static const struct {
		const char *in;
		uint64_t want;
	} cases[] = {
		{ "512M", 512 * BH_MIB },
		{ "1G", BH_GIB },
		{ "4096", 4096 },
		{ "1t", 1024 * BH_GIB },
		{ "0", 0 },
		{ "2k", 2048 },
		{ "16777215T", 16777215ULL * 1024 * BH_GIB },
		{ "18446744073709551615", UINT64_MAX },
	};
	size_t i;

	for (i = 0; i < BH_ARRAY_SIZE(cases); i++) {
		uint64_t v = 0;

		assert_int_equal(bh_parse_size(cases[i].in, &v), 0);
		assert_true(v == cases[i].want);
	}
}

static void test_parse_size_bad(void **state)
{
	static const struct {
		const char *in;
		int want;
	} cases[] = {
		{ "", -EINVAL },
		{ "M", -EINVAL },
		{ "12Q", -EINVAL },
		{ "-1", -EINVAL },
		{ "+1", -EINVAL },
		{ " 1", -EINVAL },
		{ "1 ", -EINVAL },
		{ "1.5G", -EINVAL },
		{ "1GB", -EINVAL },
		{ "1GiB", -EINVAL },
		{ "1MM", -EINVAL },
		{ "18446744073709551616", -ERANGE },
		{ "17179869184G", -ERANGE },
		{ "16777216T", -ERANGE },
	};
	size_t i;

	for (i = 0; i < BH_ARRAY_SIZE(cases); i++) {
		uint64_t v = 42;

		assert_int_equal(bh_parse_size(cases[i].in, &v), cases[i].want);
		assert_true(v == 42);
	}
}

static void test_parse_uint(void **state)
{
	uint64_t v = 0;

	assert_int_equal(bh_parse_uint("1", 1, 254, &v), 0);
	assert_true(v == 1);
	assert_int_equal(bh_parse_uint("254", 1, 254, &v), 0);
	assert_true(v == 254);
	assert_int_equal(bh_parse_uint("0", 0, 0, &v), 0);
	assert_true(v == 0);
	assert_int_equal(
	    bh_parse_uint("18446744073709551615", 0, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);

	v = 7;
	assert_int_equal(bh_parse_uint("0", 1, 254, &v), -ERANGE);
	assert_int_equal(bh_parse_uint("255", 1, 254, &v), -ERANGE);
	assert_int_equal(
	    bh_parse_uint("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(bh_parse_uint("", 0, 10, &v), -EINVAL);
	assert_int_equal(bh_parse_uint("-1", 0, 10, &v), -EINVAL);
	assert_int_equal(bh_parse_uint("1x", 0, 10, &v), -EINVAL);
	assert_int_equal(bh_parse_uint("1K", 0, 10000, &v), -EINVAL);
	assert_int_equal(bh_parse_uint(" 1", 0, 10, &v), -EINVAL);
	assert_true(v == 7);
}

static void make_temp_file(char *path, size_t path_len, const void *data,
			   size_t len)
{
	int fd;

	snprintf(path, path_len, "/tmp/bh_test_util.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(bh_write_full(fd, data, len), 0);
	close(fd);
}

static void test_read_file_regular(void **state)
{
	char path[64];
	uint8_t *buf = NULL;
	size_t len = 0;

	make_temp_file(path, sizeof(path), "hello", 5);
	assert_int_equal(bh_read_file(path, 5, &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "hello", 5);
	free(buf);

	assert_int_equal(bh_read_file(path, 4, &buf, &len), -EFBIG);
	unlink(path);

	make_temp_file(path, sizeof(path), "", 0);
	buf = NULL;
	assert_int_equal(bh_read_file(path, 16, &buf, &len), 0);
	assert_int_equal(len, 0);
	assert_non_null(buf);
	free(buf);
	unlink(path);
}

/* The controller keeps its boot images open and reads them again at every
 * boot: each read starts at the beginning and sees the file as it is. */
static void test_read_fd_again(void **state)
{
	char path[64];
	uint8_t *buf = NULL;
	size_t len = 0;
	int fd, wfd;

	(void)state;
	make_temp_file(path, sizeof(path), "first", 5);
	fd = bh_open_file(path);
	assert_true(fd >= 0);
	assert_int_equal(bh_read_fd(fd, 16, &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "first", 5);
	free(buf);

	/* The offset moved: the next read still starts at 0. */
	assert_int_equal(lseek(fd, 3, SEEK_SET), 3);
	assert_int_equal(bh_read_fd(fd, 16, &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "first", 5);
	free(buf);

	/* Rewritten in place, longer: read whole; over the limit: -EFBIG. */
	wfd = open(path, O_WRONLY | O_TRUNC);
	assert_true(wfd >= 0);
	assert_int_equal(bh_write_full(wfd, "second!", 7), 0);
	close(wfd);
	assert_int_equal(bh_read_fd(fd, 16, &buf, &len), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "second!", 7);
	free(buf);
	assert_int_equal(bh_read_fd(fd, 6, &buf, &len), -EFBIG);

	/* The path may go: the open file stays readable. */
	unlink(path);
	assert_int_equal(bh_read_fd(fd, 16, &buf, &len), 0);
	assert_int_equal(len, 7);
	free(buf);
	close(fd);

	assert_int_equal(bh_open_file("/nonexistent/bulkhead"), -ENOENT);
	fd = bh_open_file("/tmp");
	assert_true(fd >= 0);
	assert_int_equal(bh_read_fd(fd, 16, &buf, &len), -EISDIR);
	close(fd);
}

static void test_read_file_large(void **state)
{
	size_t n = 100000;
	uint8_t *data = malloc(n), *buf = NULL;
	char path[64];
	size_t len = 0, i;

	assert_non_null(data);
	for (i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7);
	make_temp_file(path, sizeof(path), data, n);
	assert_int_equal(bh_read_file(path, n, &buf, &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(buf, data, n);
	free(buf);
	assert_int_equal(bh_read_file(path, n - 1, &buf, &len), -EFBIG);
	unlink(path);
	free(data);
}

static void test_read_file_errors(void **state)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(bh_read_file("/tmp", 4096, &buf, &len), -EISDIR);
	assert_int_equal(
	    bh_read_file("/nonexistent/bulkhead", 4096, &buf, &len), -ENOENT);
	assert_int_equal(bh_read_file("/dev/null", 4096, &buf, &len), -EINVAL);
	assert_null(buf);
}

static void test_read_file_proc(void **state)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	/* /proc files report size 0 but have content. */
	assert_int_equal(bh_read_file("/proc/self/status", 1 << 20, &buf, &len),
			 0);
	assert_true(len > 0);
	assert_memory_equal(buf, "Name:", 5);
	free(buf);
}

static void test_read_full_eof(void **state)
{
	int p[2];
	char buf[8];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(bh_write_full(p[1], "abc", 3), 0);
	close(p[1]);
	assert_int_equal(bh_read_full(p[0], buf, 2), 0);
	assert_memory_equal(buf, "ab", 2);
	assert_int_equal(bh_read_full(p[0], buf, 2), -EPIPE);
	close(p[0]);
}

static void test_closep(void **state)
{
	int p[2];
	int fd;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fd = p[0];
	errno = EXDEV;
	bh_closep(&fd);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, EXDEV);
	assert_int_equal(fcntl(p[0], F_GETFD), -1);
	bh_closep(&fd);
	assert_int_equal(fd, -1);
	close(p[1]);
}

static void test_now_ns(void **state)
{
	uint64_t a = bh_now_ns(), b = bh_now_ns();

	assert_true(a > 0);
	assert_true(b >= a);
}

/* A truncated string counts what fits, never what was wanted. */
static void test_fmt_stored(void **state)
{
	char buf[8];
	/* Unknown to the compiler, which would refuse a certain truncation. */
	volatile size_t size = sizeof(buf);
	int n;

	n = snprintf(buf, size, "%s", "abc");
	assert_int_equal(bh_fmt_stored(n, sizeof(buf)), 3);
	n = snprintf(buf, size, "%s", "abcdefghijklmnop");
	assert_int_equal(n, 16);
	assert_int_equal(bh_fmt_stored(n, sizeof(buf)), 7);
	assert_int_equal(strlen(buf), 7);
	n = snprintf(buf, size, "%s", "abcdefg");
	assert_int_equal(bh_fmt_stored(n, sizeof(buf)), 7);
	assert_int_equal(bh_fmt_stored(-1, sizeof(buf)), 0);
	assert_int_equal(bh_fmt_stored(5, 0), 0);
	assert_int_equal(bh_fmt_stored(5, 1), 0);
}

static int cmp_big(const void *a, const void *b, void *arg)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	(void)arg;
	return x < y ? -1 : x > y;
}

static int cmp_u32_by(const void *a, const void *b, void *arg)
{
	const uint32_t *key = arg;
	uint32_t x = key[*(const uint16_t *)a], y = key[*(const uint16_t *)b];

	return x < y ? -1 : x > y;
}

/* bh_sort_r: sorted through the comparison's argument, for sizes from 0 to
 * well past glibc's 1 KiB threshold, with repeats, and n 0 and 1 left as
 * they are. */
static void test_sort_r(void **state)
{
	static uint32_t key[5000];
	static uint16_t v[5000];
	size_t sizes[] = { 0, 1, 2, 3, 7, 512, 513, 4999 };

	(void)state;
	for (size_t i = 0; i < 5000; i++)
		key[i] = (uint32_t)((i * 2654435761u) % 1000);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		uint64_t sum = 0, sum2 = 0;

		for (size_t i = 0; i < n; i++) {
			v[i] = (uint16_t)(n - 1 - i);
			sum += v[i];
		}
		bh_sort_r(v, n, sizeof(v[0]), cmp_u32_by, key);
		for (size_t i = 0; i < n; i++) {
			sum2 += v[i];
			if (i > 0)
				assert_true(key[v[i - 1]] <= key[v[i]]);
		}
		/* The same elements, only moved. */
		assert_int_equal(sum, sum2);
	}
	/* A larger element than any swap buffer would hold. */
	{
		struct big {
			uint32_t k;
			char pad[200];
		} b[3] = { { 3, "c" }, { 1, "a" }, { 2, "b" } };
		bh_sort_r(b, 3, sizeof(b[0]), cmp_big, NULL);
		assert_int_equal(b[0].k, 1);
		assert_string_equal(b[0].pad, "a");
		assert_int_equal(b[2].k, 3);
		assert_string_equal(b[2].pad, "c");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_good),
		cmocka_unit_test(test_parse_size_bad),
		cmocka_unit_test(test_parse_uint),
		cmocka_unit_test(test_read_file_regular),
		cmocka_unit_test(test_read_fd_again),
		cmocka_unit_test(test_read_file_large),
		cmocka_unit_test(test_read_file_errors),
		cmocka_unit_test(test_read_file_proc),
		cmocka_unit_test(test_read_full_eof),
		cmocka_unit_test(test_closep),
		cmocka_unit_test(test_now_ns),
		cmocka_unit_test(test_fmt_stored),
		cmocka_unit_test(test_sort_r),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
