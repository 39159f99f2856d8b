/*
 * Unit tests for the controller's --exit-stats lines (controller/exitlog.c):
 * a runner is hostile, so a counter name of any length or content must give
 * a line no longer than the buffer, with nothing of the controller's memory
 * after it and no control byte in it.
 */
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

#include "exitlog.h"

/* What bh_exitlog_write wrote to a fresh file, NUL-terminated. */
static char *written(const Bh__ExitStats *s, unsigned int boot, size_t *len)
{
	int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	char *buf = malloc(65536);
	ssize_t n;

	assert_true(fd >= 0);
	assert_non_null(buf);
	assert_int_equal(bh_exitlog_write(fd, s, boot), 0);
	n = pread(fd, buf, 65535, 0);
	assert_true(n >= 0);
	buf[n] = '\0';
	*len = (size_t)n;
	close(fd);
	return buf;
}

/* A 4,000-byte name once made the controller write 4,013 bytes: the whole
 * name and then its own stack past the end of its 160-byte line. */
static void test_long_name_is_cut(void **state)
{
	Bh__ExitCount c = BH__EXIT_COUNT__INIT;
	Bh__ExitCount *cp[] = { &c };
	Bh__ExitStats s = BH__EXIT_STATS__INIT;
	char *name = malloc(4001), *out, *second;
	char want[BH_EXITLOG_LINE_MAX + 1];
	size_t len;

	assert_non_null(name);
	memset(name, 'A', 4000);
	name[4000] = '\0';
	c.what = name;
	c.count = 7;
	s.total = 7;
	s.n_counts = 1;
	s.counts = cp;
	out = written(&s, 2, &len);

	second = strchr(out, '\n');
	assert_non_null(second);
	second++;
	assert_memory_equal(out, "VM exits to userspace, boot 2: 7\n",
			    (size_t)(second - out));
	/* The line is as long as the buffer allows, its newline included,
	 * and nothing follows it. */
	assert_int_equal(len, (size_t)(second - out) + BH_EXITLOG_LINE_MAX);
	assert_int_equal(strlen(second), BH_EXITLOG_LINE_MAX);
	snprintf(want, sizeof(want), "%10d  ", 7);
	memset(want + 12, 'A', BH_EXITLOG_LINE_MAX - 13);
	want[BH_EXITLOG_LINE_MAX - 1] = '\n';
	assert_memory_equal(second, want, BH_EXITLOG_LINE_MAX);
	free(out);
	free(name);
}

/* Control bytes would forge log lines or reach the operator's terminal. */
static void test_control_bytes_replaced(void **state)
{
	Bh__ExitCount a = BH__EXIT_COUNT__INIT, b = BH__EXIT_COUNT__INIT;
	Bh__ExitCount *cp[] = { &a, &b };
	Bh__ExitStats s = BH__EXIT_STATS__INIT;
	size_t len;
	char *out;

	a.what = "io-out 0x3f8\nbulkhead: error: forged\x1b[2J\xff";
	a.count = 3;
	b.what = "hlt";
	b.count = 12345678901ULL;
	s.total = 12345678904ULL;
	s.n_counts = 2;
	s.counts = cp;
	out = written(&s, 1, &len);
	assert_string_equal(out, "VM exits to userspace, boot 1: 12345678904\n"
				 "         3  io-out 0x3f8?bulkhead: error: "
				 "forged?[2J?\n"
				 "12345678901  hlt\n");
	assert_int_equal(len, strlen(out));
	free(out);
}

/* Every buffer size gives a line that fits it and ends in a newline. */
static void test_line_fits_any_buffer(void **state)
{
	char line[64];

	for (size_t size = 2; size <= sizeof(line); size++) {
		size_t n;

		memset(line, 'x', sizeof(line));
		n = bh_exitlog_line(line, size, 42, "mmio-read 0xd0000000");
		assert_true(n <= size - 1);
		assert_int_equal(line[n - 1], '\n');
		assert_int_equal(line[n], '\0');
		assert_int_equal(strlen(line), n);
		if (size < sizeof(line))
			assert_int_equal(line[size], 'x');
	}
	assert_int_equal(bh_exitlog_line(line, sizeof(line), 1, NULL), 13);
	assert_string_equal(line, "         1  \n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_long_name_is_cut),
		cmocka_unit_test(test_control_bytes_replaced),
		cmocka_unit_test(test_line_fits_any_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
