/* Unit tests for outbuf.c: guest output never blocks on a reader that does
 * not read, keeps its order, and keeps a file to its size limit. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "bulkhead/outbuf.h"

#define CHUNK 4096

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 7 + i / 251);
}

static void fill(uint8_t *buf, uint64_t start, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern(start + i);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A pipe whose reader reads nothing, as a paused terminal or a stdout
 * nobody drains: writing 8 MiB returns at once, the overflow is dropped
 * and counted, and what was kept arrives in order once the reader reads. */
static void test_stalled_pipe(void **state)
{
	struct bh_outbuf o;
	uint8_t buf[CHUNK], got[CHUNK];
	uint64_t sent = 0, dropped = 0, seen = 0;
	int p[2], fl;
	double t0;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(
	    bh_outbuf_init(&o, "test", p[1], 0, BH_OUT_FULL_TRUNCATE), 0);
	fl = fcntl(p[1], F_GETFL);
	assert_true(fl & O_NONBLOCK);
	assert_false(fl & O_APPEND);
	assert_false(o.limited);
	t0 = now_s();
	while (sent < 8 * 1024 * 1024) {
		fill(buf, sent, sizeof(buf));
		dropped += bh_outbuf_write(&o, buf, sizeof(buf));
		sent += sizeof(buf);
	}
	assert_true(now_s() - t0 < 2.0);
	assert_true(bh_outbuf_pending(&o));
	assert_int_equal(o.len, BH_OUT_BUF_SIZE);
	assert_int_equal(o.dropped, dropped);
	assert_int_equal(o.written + o.len + o.dropped, sent);
	assert_true(o.written > 0);

	/* The reader wakes up: the bytes it gets are the first ones sent,
	 * the pipe's then the buffer's, without a gap. */
	while (seen < o.written + (uint64_t)o.len) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 0) == 0) {
			bh_outbuf_flush(&o);
			continue;
		}
		n = read(p[0], got, sizeof(got));
		assert_true(n > 0);
		fill(buf, seen, (size_t)n);
		assert_memory_equal(got, buf, (size_t)n);
		seen += (uint64_t)n;
		bh_outbuf_flush(&o);
	}
	assert_false(bh_outbuf_pending(&o));
	assert_int_equal(seen, sent - dropped);

	/* Room again: new output goes straight through. */
	assert_int_equal(bh_outbuf_write(&o, "ok", 2), 0);
	assert_int_equal(read(p[0], got, sizeof(got)), 2);
	bh_outbuf_free(&o);
	close(p[0]);
	close(p[1]);
}

/* The reader went away: EPIPE (not SIGPIPE) ends the output, counted. */
static void test_reader_gone(void **state)
{
	struct bh_outbuf o;
	int p[2];

	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(
	    bh_outbuf_init(&o, "test", p[1], 0, BH_OUT_FULL_TRUNCATE), 0);
	close(p[0]);
	assert_int_equal(bh_outbuf_write(&o, "abc", 3), 3);
	assert_true(o.broken);
	assert_int_equal(bh_outbuf_write(&o, "de", 2), 2);
	assert_int_equal(o.dropped, 5);
	assert_false(bh_outbuf_pending(&o));
	bh_outbuf_free(&o);
	close(p[1]);
}

static int temp_file(char *path, size_t len)
{
	int fd;

	snprintf(path, len, "%s/bh-outbuf-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	return fd;
}

static off_t file_size(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_size;
}

/* on_full=stop: the file keeps its first max_size bytes, no more. */
static void test_file_stop(void **state)
{
	struct bh_outbuf o;
	uint8_t buf[3000], got[8192];
	char path[256];
	int fd = temp_file(path, sizeof(path));

	assert_int_equal(bh_outbuf_init(&o, "test", fd, 8192, BH_OUT_FULL_STOP),
			 0);
	assert_true(o.limited);
	assert_true(fcntl(fd, F_GETFL) & O_APPEND);
	for (uint64_t sent = 0; sent < 30000; sent += sizeof(buf)) {
		fill(buf, sent, sizeof(buf));
		bh_outbuf_write(&o, buf, sizeof(buf));
	}
	assert_int_equal(file_size(fd), 8192);
	assert_int_equal(o.written, 8192);
	assert_int_equal(o.dropped, 30000 - 8192);
	assert_true(o.stopped);
	assert_int_equal(pread(fd, got, sizeof(got), 0), 8192);
	fill(buf, 0, sizeof(buf));
	assert_memory_equal(got, buf, sizeof(buf));
	bh_outbuf_free(&o);
	close(fd);
	unlink(path);
}

/* on_full=truncate: the file is emptied when full and holds the newest
 * bytes, never more than max_size. */
static void test_file_truncate(void **state)
{
	struct bh_outbuf o;
	uint8_t buf[3000], got[8192], want[8192];
	char path[256];
	int fd = temp_file(path, sizeof(path));
	uint64_t sent;

	/* A file that is already over its limit is emptied at once. */
	assert_int_equal(ftruncate(fd, 10000), 0);
	assert_int_equal(
	    bh_outbuf_init(&o, "test", fd, 8192, BH_OUT_FULL_TRUNCATE), 0);
	for (sent = 0; sent < 30000; sent += sizeof(buf)) {
		fill(buf, sent, sizeof(buf));
		bh_outbuf_write(&o, buf, sizeof(buf));
		assert_true(file_size(fd) <= 8192);
	}
	/* 30000 = 3 * 8192 + 5424: three times full, the first time at
	 * once (the old 10000 bytes). */
	assert_int_equal(o.truncations, 4);
	assert_int_equal(file_size(fd), 30000 - 3 * 8192);
	assert_int_equal(o.dropped, 0);
	assert_int_equal(pread(fd, got, sizeof(got), 0), 30000 - 3 * 8192);
	fill(want, 3 * 8192, 30000 - 3 * 8192);
	assert_memory_equal(got, want, 30000 - 3 * 8192);
	bh_outbuf_free(&o);
	close(fd);
	unlink(path);
}

/* max_size 0: no limit (a stdout the user redirected to a file). */
static void test_file_unlimited(void **state)
{
	struct bh_outbuf o;
	uint8_t buf[4096] = { 0 };
	char path[256];
	int fd = temp_file(path, sizeof(path));

	assert_int_equal(
	    bh_outbuf_init(&o, "test", fd, 0, BH_OUT_FULL_TRUNCATE), 0);
	assert_false(o.limited);
	for (int i = 0; i < 10; i++)
		bh_outbuf_write(&o, buf, sizeof(buf));
	assert_int_equal(file_size(fd), 40960);
	bh_outbuf_free(&o);
	close(fd);
	unlink(path);
}

static void test_names(void **state)
{
	enum bh_out_full f;

	assert_int_equal(bh_out_full_parse("stop", &f), 0);
	assert_int_equal(f, BH_OUT_FULL_STOP);
	assert_string_equal(bh_out_full_name(f), "stop");
	assert_int_equal(bh_out_full_parse("truncate", &f), 0);
	assert_int_equal(f, BH_OUT_FULL_TRUNCATE);
	assert_string_equal(bh_out_full_name(f), "truncate");
	assert_int_equal(bh_out_full_parse("rotate", &f), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stalled_pipe),
		cmocka_unit_test(test_reader_gone),
		cmocka_unit_test(test_file_stop),
		cmocka_unit_test(test_file_truncate),
		cmocka_unit_test(test_file_unlimited),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
