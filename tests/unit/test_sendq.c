/* The bounded send queue (common/sendq.c) on a socketpair whose peer stops
 * reading: nothing waits, the bound holds, frames and their fds arrive
 * whole and in order once the peer reads again, and no fd is left behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <bulkhead/frame.h>
#include <bulkhead/sendq.h>
#include <bulkhead/util.h>

#include "proto/internal.pb-c.h"

#define QMAX (64u * 1024u)

static int count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(dir);
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1;
}

/* A serial frame of n bytes, each the byte seq. */
static int push_serial(struct bh_sendq *q, uint8_t seq, size_t n,
		       const int *fds, unsigned int nfds)
{
	Bh__SerialData d = BH__SERIAL_DATA__INIT;
	uint8_t buf[4096];

	assert_true(n <= sizeof(buf));
	memset(buf, seq, n);
	d.data.data = buf;
	d.data.len = n;
	return bh_sendq_push(q, BH__MSG_TYPE__MSG_SERIAL_OUT, &d.base, fds,
			     nfds);
}

/* Reads frames from sock, flushing q in between, until want arrived; checks
 * that frame i holds byte i. Returns the fds of the frame that had one. */
static int drain(int sock, struct bh_sendq *q, unsigned int want)
{
	struct bh_frame_reader r;
	unsigned int got = 0, idle = 0;
	int fd = -1;

	/* Non-blocking: the rest of a frame may still be in the queue, which
	 * only this thread flushes. */
	assert_int_equal(fcntl(sock, F_SETFL, O_NONBLOCK), 0);
	bh_frame_reader_init(&r, BH_FRAME_MAX_BODY);
	while (got < want) {
		struct bh_frame f;
		Bh__SerialData *d;
		int n;

		bh_sendq_flush(q);
		n = bh_frame_read(sock, &r, &f);
		assert_true(n >= 0);
		if (n == 0) {
			assert_true(++idle < 1000000);
			continue;
		}
		d = bh__serial_data__unpack(NULL, f.len, f.body);
		assert_non_null(d);
		assert_true(d->data.len > 0);
		assert_int_equal(d->data.data[0], (uint8_t)got);
		assert_int_equal(d->data.data[d->data.len - 1], (uint8_t)got);
		bh__serial_data__free_unpacked(d, NULL);
		if (f.nfds) {
			assert_int_equal(f.nfds, 1);
			assert_int_equal(fd, -1);
			fd = bh_frame_take_fd(&f, 0);
		}
		bh_frame_release(&f);
		got++;
	}
	bh_frame_reader_reset(&r);
	assert_int_equal(bh_sendq_flush(q), 0);
	assert_int_equal(bh_sendq_pending(q), 0);
	return fd;
}

static void test_sent_at_once(void **state)
{
	struct bh_sendq q;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	bh_sendq_init(&q, sv[0], QMAX);
	assert_int_equal(push_serial(&q, 0, 100, NULL, 0), 0);
	assert_int_equal(bh_sendq_pending(&q), 0);
	assert_int_equal(bh_sendq_stalled_ms(&q), 0);
	assert_int_equal(drain(sv[1], &q, 1), -1);
	close(sv[0]);
	close(sv[1]);
}

static void test_bound_and_order(void **state)
{
	struct timespec ts = { 0, 30 * 1000000 };
	struct stat a, b;
	struct bh_sendq q;
	unsigned int n = 0;
	int sv[2], fd, fds0 = count_fds(), got;
	int r;

	/* A blocking socket: the queue must not block on it either. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	bh_sendq_init(&q, sv[0], QMAX);
	/* Fill the socket, then the queue, with frames of 4000 bytes. */
	while (bh_sendq_pending(&q) == 0) {
		assert_int_equal(push_serial(&q, (uint8_t)n, 4000, NULL, 0), 0);
		n++;
		assert_true(n < 100000);
	}
	/* One with an fd, queued: the caller may close its own at once. */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(push_serial(&q, (uint8_t)n, 4000, &fd, 1), 0);
	close(fd);
	n++;
	for (;;) {
		r = push_serial(&q, (uint8_t)n, 4000, NULL, 0);
		if (r == -ENOBUFS)
			break;
		assert_int_equal(r, 0);
		n++;
	}
	assert_true(bh_sendq_pending(&q) <= QMAX);
	assert_true(bh_sendq_pending(&q) > QMAX - 4100);
	assert_int_equal(bh_sendq_flush(&q), -EAGAIN);
	assert_int_equal(bh_sendq_wait(&q, 50), -ETIMEDOUT);
	nanosleep(&ts, NULL);
	assert_true(bh_sendq_stalled_ms(&q) >= 30);

	got = drain(sv[1], &q, n);
	assert_true(got >= 0);
	assert_int_equal(fstat(got, &b), 0);
	assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
	close(got);
	assert_int_equal(bh_sendq_stalled_ms(&q), 0);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(count_fds(), fds0);
}

static void test_clear_closes_fds(void **state)
{
	struct bh_sendq q;
	int sv[2], fd, fds0 = count_fds();

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	bh_sendq_init(&q, sv[0], QMAX);
	while (bh_sendq_pending(&q) == 0)
		assert_int_equal(push_serial(&q, 1, 4000, NULL, 0), 0);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(push_serial(&q, 2, 10, &fd, 1), 0);
	close(fd);
	bh_sendq_clear(&q);
	assert_int_equal(bh_sendq_pending(&q), 0);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(count_fds(), fds0);
}

static void test_peer_gone(void **state)
{
	struct bh_sendq q;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	bh_sendq_init(&q, sv[0], QMAX);
	close(sv[1]);
	assert_int_equal(push_serial(&q, 0, 10, NULL, 0), -EPIPE);
	assert_int_equal(bh_sendq_pending(&q), 0);
	close(sv[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sent_at_once),
		cmocka_unit_test(test_bound_and_order),
		cmocka_unit_test(test_clear_closes_fds),
		cmocka_unit_test(test_peer_gone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
