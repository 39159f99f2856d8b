/* Unit tests for frame.c over real AF_UNIX stream socketpairs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "bulkhead/frame.h"
#include "bulkhead/util.h"
#include "proto/internal.pb-c.h"

struct raw_hdr {
	uint32_t len;
	uint16_t type;
	uint8_t nfds;
	uint8_t flags;
};

static void make_pair(int sv[2], int nonblock_reader)
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	if (nonblock_reader) {
		int fl = fcntl(sv[1], F_GETFL);

		assert_int_equal(fcntl(sv[1], F_SETFL, fl | O_NONBLOCK), 0);
	}
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Sends bytes with optional SCM_RIGHTS, bypassing bh_frame_send. */
static void send_raw(int sock, const void *data, size_t len, const int *fds,
		     unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * (BH_FRAME_MAX_FDS + 8))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	assert_true(nfds <= BH_FRAME_MAX_FDS + 8);
	if (nfds > 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	assert_int_equal(sendmsg(sock, &m, MSG_NOSIGNAL), (ssize_t)len);
}

static void send_hdr(int sock, uint32_t len, uint16_t type, uint8_t nfds,
		     uint8_t flags, const int *fds, unsigned int nattached)
{
	struct raw_hdr h = {
		.len = len, .type = type, .nfds = nfds, .flags = flags
	};

	send_raw(sock, &h, sizeof(h), fds, nattached);
}

static int make_memfd(void)
{
	int fd = memfd_create("bh_test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

static ino_t ino_of(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

static int read_one(int sock, uint32_t max_body, struct bh_frame *f)
{
	struct bh_frame_reader r;
	int ret;

	bh_frame_reader_init(&r, max_body);
	ret = bh_frame_read(sock, &r, f);
	bh_frame_reader_reset(&r);
	return ret;
}

static void round_trip(unsigned int nfds)
{
	uint8_t payload[] = "hello, guest";
	Bh__SerialData msg = BH__SERIAL_DATA__INIT;
	Bh__SerialData *got;
	int fds[3], sv[2];
	struct bh_frame f;
	unsigned int i;

	assert_true(nfds <= 3);
	make_pair(sv, 0);
	for (i = 0; i < nfds; i++)
		fds[i] = make_memfd();
	msg.data.data = payload;
	msg.data.len = sizeof(payload);
	assert_int_equal(bh_frame_send(sv[0], BH__MSG_TYPE__MSG_SERIAL_OUT,
				       &msg.base, fds, nfds),
			 0);

	assert_int_equal(read_one(sv[1], BH_FRAME_MAX_BODY, &f), 1);
	assert_int_equal(f.type, BH__MSG_TYPE__MSG_SERIAL_OUT);
	assert_int_equal(f.nfds, nfds);
	assert_int_equal(f.len, bh__serial_data__get_packed_size(&msg));
	got = bh__serial_data__unpack(NULL, f.len, f.body);
	assert_non_null(got);
	assert_int_equal(got->data.len, sizeof(payload));
	assert_memory_equal(got->data.data, payload, sizeof(payload));
	bh__serial_data__free_unpacked(got, NULL);

	for (i = 0; i < nfds; i++) {
		int flags = fcntl(f.fds[i], F_GETFD);

		assert_true(flags >= 0);
		assert_true(flags & FD_CLOEXEC);
		assert_true(f.fds[i] != fds[i]);
		assert_true(ino_of(f.fds[i]) == ino_of(fds[i]));
	}
	for (i = nfds; i < BH_FRAME_MAX_FDS; i++)
		assert_int_equal(f.fds[i], -1);
	bh_frame_release(&f);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	close(sv[0]);
	close(sv[1]);
}

static void test_round_trip_0(void **state)
{
	round_trip(0);
}

static void test_round_trip_1(void **state)
{
	round_trip(1);
}

static void test_round_trip_3(void **state)
{
	round_trip(3);
}

static void test_empty_body(void **state)
{
	struct bh_frame f;
	uint8_t *buf;
	size_t len;
	int sv[2];

	assert_int_equal(
	    bh_frame_encode(BH__MSG_TYPE__MSG_QUIT, NULL, 0, &buf, &len), 0);
	assert_int_equal(len, BH_FRAME_HDR_SIZE);
	free(buf);

	make_pair(sv, 0);
	assert_int_equal(
	    bh_frame_send(sv[0], BH__MSG_TYPE__MSG_QUIT, NULL, NULL, 0), 0);
	assert_int_equal(read_one(sv[1], 0, &f), 1);
	assert_int_equal(f.type, BH__MSG_TYPE__MSG_QUIT);
	assert_int_equal(f.len, 0);
	assert_null(f.body);
	assert_int_equal(f.nfds, 0);
	bh_frame_release(&f);
	close(sv[0]);
	close(sv[1]);
}

static void test_encode_limits(void **state)
{
	Bh__SerialData msg = BH__SERIAL_DATA__INIT;
	uint8_t *big = calloc(1, BH_FRAME_MAX_BODY), *buf = NULL;
	size_t len;

	assert_non_null(big);
	msg.data.data = big;
	msg.data.len = BH_FRAME_MAX_BODY;
	assert_int_equal(bh_frame_encode(BH__MSG_TYPE__MSG_SERIAL_OUT,
					 &msg.base, 0, &buf, &len),
			 -EMSGSIZE);
	assert_int_equal(bh_frame_encode(0, NULL, 0, &buf, &len), -EINVAL);
	assert_int_equal(bh_frame_encode(BH__MSG_TYPE__MSG_QUIT, NULL,
					 BH_FRAME_MAX_FDS + 1, &buf, &len),
			 -EINVAL);
	assert_null(buf);
	free(big);
}

/* Frames sent back to back keep their own fds. */
static void test_fd_attribution(void **state)
{
	int a = make_memfd(), b[2] = { make_memfd(), make_memfd() };
	struct bh_frame_reader r;
	struct bh_frame f1, f2;
	int sv[2];

	make_pair(sv, 0);
	assert_int_equal(
	    bh_frame_send(sv[0], BH__MSG_TYPE__MSG_QUIT, NULL, &a, 1), 0);
	assert_int_equal(
	    bh_frame_send(sv[0], BH__MSG_TYPE__MSG_RUNNER_START, NULL, b, 2),
	    0);
	bh_frame_reader_init(&r, BH_FRAME_MAX_BODY);
	assert_int_equal(bh_frame_read(sv[1], &r, &f1), 1);
	assert_int_equal(bh_frame_read(sv[1], &r, &f2), 1);
	assert_int_equal(f1.type, BH__MSG_TYPE__MSG_QUIT);
	assert_int_equal(f1.nfds, 1);
	assert_true(ino_of(f1.fds[0]) == ino_of(a));
	assert_int_equal(f2.type, BH__MSG_TYPE__MSG_RUNNER_START);
	assert_int_equal(f2.nfds, 2);
	assert_true(ino_of(f2.fds[0]) == ino_of(b[0]));
	assert_true(ino_of(f2.fds[1]) == ino_of(b[1]));
	bh_frame_release(&f1);
	bh_frame_release(&f2);
	bh_frame_reader_reset(&r);
	close(a);
	close(b[0]);
	close(b[1]);
	close(sv[0]);
	close(sv[1]);
}

/* The reader assembles a frame that trickles in one byte at a time. */
static void test_short_reads(void **state)
{
	uint8_t payload[40];
	Bh__SerialData msg = BH__SERIAL_DATA__INIT;
	struct bh_frame_reader r;
	struct bh_frame f;
	int sv[2], memfd = make_memfd();
	uint8_t *buf;
	size_t len, i;

	memset(payload, 0xab, sizeof(payload));
	msg.data.data = payload;
	msg.data.len = sizeof(payload);
	assert_int_equal(bh_frame_encode(BH__MSG_TYPE__MSG_SERIAL_IN, &msg.base,
					 1, &buf, &len),
			 0);

	make_pair(sv, 1);
	bh_frame_reader_init(&r, BH_FRAME_MAX_BODY);
	assert_int_equal(bh_frame_read(sv[1], &r, &f), 0);
	for (i = 0; i < len; i++) {
		/* The fd rides on the first header byte. */
		send_raw(sv[0], buf + i, 1, &memfd, i == 0 ? 1 : 0);
		if (i + 1 < len) {
			assert_int_equal(bh_frame_read(sv[1], &r, &f), 0);
		}
	}
	assert_int_equal(bh_frame_read(sv[1], &r, &f), 1);
	assert_int_equal(f.type, BH__MSG_TYPE__MSG_SERIAL_IN);
	assert_int_equal(f.len, len - BH_FRAME_HDR_SIZE);
	assert_memory_equal(f.body, buf + BH_FRAME_HDR_SIZE, f.len);
	assert_int_equal(f.nfds, 1);
	assert_true(ino_of(f.fds[0]) == ino_of(memfd));
	bh_frame_release(&f);
	assert_int_equal(bh_frame_read(sv[1], &r, &f), 0);
	bh_frame_reader_reset(&r);
	free(buf);
	close(memfd);
	close(sv[0]);
	close(sv[1]);
}

static void test_oversize(void **state)
{
	uint8_t payload[100], rest[256];
	Bh__SerialData msg = BH__SERIAL_DATA__INIT;
	struct bh_frame f;
	size_t body;
	int sv[2];

	memset(payload, 1, sizeof(payload));
	msg.data.data = payload;
	msg.data.len = sizeof(payload);
	body = bh__serial_data__get_packed_size(&msg);
	make_pair(sv, 0);
	assert_int_equal(bh_frame_send(sv[0], BH__MSG_TYPE__MSG_SERIAL_OUT,
				       &msg.base, NULL, 0),
			 0);
	assert_int_equal(read_one(sv[1], 16, &f), -EMSGSIZE);
	/* The whole body is still in the socket. */
	assert_int_equal(recv(sv[1], rest, sizeof(rest), MSG_DONTWAIT),
			 (ssize_t)body);
	close(sv[0]);
	close(sv[1]);
}

static void expect_bad_header(uint32_t len, uint16_t type, uint8_t nfds,
			      uint8_t flags, unsigned int nattached, int want)
{
	int fds[BH_FRAME_MAX_FDS + 1];
	struct bh_frame f;
	int sv[2], before;
	unsigned int i;

	make_pair(sv, 0);
	for (i = 0; i < nattached; i++)
		fds[i] = make_memfd();
	before = count_fds();
	send_hdr(sv[0], len, type, nfds, flags, fds, nattached);
	assert_int_equal(read_one(sv[1], BH_FRAME_MAX_BODY, &f), want);
	/* Every fd that arrived with the bad frame was closed. */
	assert_int_equal(count_fds(), before);
	for (i = 0; i < nattached; i++)
		close(fds[i]);
	close(sv[0]);
	close(sv[1]);
}

static void test_bad_headers(void **state)
{
	/* nfds says 2, one arrived. */
	expect_bad_header(0, BH__MSG_TYPE__MSG_QUIT, 2, 0, 1, -EPROTO);
	/* nfds says 0, one arrived. */
	expect_bad_header(0, BH__MSG_TYPE__MSG_QUIT, 0, 0, 1, -EPROTO);
	/* nfds says 1, none arrived. */
	expect_bad_header(0, BH__MSG_TYPE__MSG_QUIT, 1, 0, 0, -EPROTO);
	expect_bad_header(0, BH__MSG_TYPE__MSG_QUIT, BH_FRAME_MAX_FDS + 1, 0, 0,
			  -EBADMSG);
	expect_bad_header(0, 0, 0, 0, 0, -EBADMSG);
	expect_bad_header(0, 0, 1, 0, 1, -EBADMSG);
	expect_bad_header(0, BH__MSG_TYPE__MSG_QUIT, 0, 1, 0, -EBADMSG);
	expect_bad_header(0, BH__MSG_TYPE__MSG_QUIT, 0, 0x80, 1, -EBADMSG);
	/* More fds than the reader has room for: truncated by the kernel. */
	expect_bad_header(0, BH__MSG_TYPE__MSG_QUIT, BH_FRAME_MAX_FDS, 0,
			  BH_FRAME_MAX_FDS + 1, -EPROTO);
	expect_bad_header(UINT32_MAX, BH__MSG_TYPE__MSG_QUIT, 0, 0, 1,
			  -EMSGSIZE);
}

/* The sender's copy is closed first, so the count drops by one exactly when
 * the reader closed what it received. */
static void test_unexpected_fd_closed(void **state)
{
	int memfd = make_memfd(), sv[2], before;
	struct bh_frame f;

	make_pair(sv, 0);
	before = count_fds();
	send_hdr(sv[0], 0, BH__MSG_TYPE__MSG_QUIT, 0, 0, &memfd, 1);
	close(memfd);
	assert_int_equal(read_one(sv[1], BH_FRAME_MAX_BODY, &f), -EPROTO);
	assert_int_equal(count_fds(), before - 1);
	close(sv[0]);
	close(sv[1]);
}

static void test_fds_on_body(void **state)
{
	static const uint8_t body[4] = { 0x0a, 0x02, 'h', 'i' };
	int memfd = make_memfd(), sv[2], before;
	struct bh_frame f;

	/* Header says no fds; the fd comes with the body. */
	make_pair(sv, 0);
	before = count_fds();
	send_hdr(sv[0], sizeof(body), BH__MSG_TYPE__MSG_SERIAL_OUT, 0, 0, NULL,
		 0);
	send_raw(sv[0], body, sizeof(body), &memfd, 1);
	assert_int_equal(read_one(sv[1], BH_FRAME_MAX_BODY, &f), -EPROTO);
	assert_int_equal(count_fds(), before);
	close(sv[0]);
	close(sv[1]);

	/* Header says one fd, but it is attached to the body. */
	make_pair(sv, 0);
	before = count_fds();
	send_hdr(sv[0], sizeof(body), BH__MSG_TYPE__MSG_SERIAL_OUT, 1, 0, NULL,
		 0);
	send_raw(sv[0], body, sizeof(body), &memfd, 1);
	assert_int_equal(read_one(sv[1], BH_FRAME_MAX_BODY, &f), -EPROTO);
	assert_int_equal(count_fds(), before);
	close(sv[0]);
	close(sv[1]);

	/* The fd comes with the second half of the body. */
	make_pair(sv, 0);
	before = count_fds();
	send_hdr(sv[0], sizeof(body), BH__MSG_TYPE__MSG_SERIAL_OUT, 0, 0, NULL,
		 0);
	send_raw(sv[0], body, 2, NULL, 0);
	send_raw(sv[0], body + 2, 2, &memfd, 1);
	assert_int_equal(read_one(sv[1], BH_FRAME_MAX_BODY, &f), -EPROTO);
	assert_int_equal(count_fds(), before);
	close(sv[0]);
	close(sv[1]);
	close(memfd);
}

/* The set-up reads: a silent peer times out, a frame that is there is
 * returned at once. */
static void test_read_timeout(void **state)
{
	Bh__SerialData msg = BH__SERIAL_DATA__INIT;
	struct bh_frame_reader r;
	struct bh_frame f;
	uint64_t t0;
	int sv[2];

	make_pair(sv, 0);
	bh_frame_reader_init(&r, BH_FRAME_MAX_BODY);
	t0 = bh_now_ns();
	assert_int_equal(bh_frame_read_timeout(sv[1], &r, &f, 50), -ETIMEDOUT);
	assert_true(bh_now_ns() - t0 >= 50 * 1000000ULL);

	msg.data.data = (uint8_t *)"hi";
	msg.data.len = 2;
	assert_int_equal(bh_frame_send(sv[0], BH__MSG_TYPE__MSG_SERIAL_OUT,
				       &msg.base, NULL, 0),
			 0);
	assert_int_equal(bh_frame_read_timeout(sv[1], &r, &f, 5000), 0);
	assert_int_equal(f.type, BH__MSG_TYPE__MSG_SERIAL_OUT);
	bh_frame_release(&f);

	close(sv[0]);
	assert_int_equal(bh_frame_read_timeout(sv[1], &r, &f, 5000), -EPIPE);
	bh_frame_reader_reset(&r);
	close(sv[1]);
}

static void test_eof(void **state)
{
	static const uint8_t body[4] = { 0x0a, 0x02, 'h', 'i' };
	struct bh_frame_reader r;
	struct bh_frame f;
	int sv[2], memfd = make_memfd(), before;

	/* Between frames. */
	make_pair(sv, 0);
	assert_int_equal(
	    bh_frame_send(sv[0], BH__MSG_TYPE__MSG_QUIT, NULL, NULL, 0), 0);
	close(sv[0]);
	bh_frame_reader_init(&r, BH_FRAME_MAX_BODY);
	assert_int_equal(bh_frame_read(sv[1], &r, &f), 1);
	bh_frame_release(&f);
	assert_int_equal(bh_frame_read(sv[1], &r, &f), -EPIPE);
	close(sv[1]);

	/* In the header, with an fd already received. */
	make_pair(sv, 0);
	before = count_fds();
	send_raw(sv[0], "\x04\x00\x00", 3, &memfd, 1);
	close(sv[0]);
	assert_int_equal(read_one(sv[1], BH_FRAME_MAX_BODY, &f), -ECONNRESET);
	assert_int_equal(count_fds(), before - 1);
	close(sv[1]);

	/* In the body. */
	make_pair(sv, 0);
	before = count_fds();
	send_hdr(sv[0], sizeof(body), BH__MSG_TYPE__MSG_SERIAL_OUT, 1, 0,
		 &memfd, 1);
	send_raw(sv[0], body, 2, NULL, 0);
	close(sv[0]);
	assert_int_equal(read_one(sv[1], BH_FRAME_MAX_BODY, &f), -ECONNRESET);
	assert_int_equal(count_fds(), before - 1);
	close(sv[1]);
	close(memfd);
}

static void test_take_fd(void **state)
{
	int a = make_memfd(), b = make_memfd(), sv[2], fd;
	int fds[2] = { a, b };
	struct bh_frame f;

	make_pair(sv, 0);
	assert_int_equal(
	    bh_frame_send(sv[0], BH__MSG_TYPE__MSG_QUIT, NULL, fds, 2), 0);
	assert_int_equal(read_one(sv[1], BH_FRAME_MAX_BODY, &f), 1);
	fd = bh_frame_take_fd(&f, 1);
	assert_true(fd >= 0);
	assert_int_equal(f.fds[1], -1);
	assert_int_equal(bh_frame_take_fd(&f, 1), -EBADF);
	assert_int_equal(bh_frame_take_fd(&f, 2), -EBADF);
	assert_int_equal(bh_frame_take_fd(&f, BH_FRAME_MAX_FDS), -EBADF);
	bh_frame_release(&f);
	/* The taken fd survives the release. */
	assert_true(fcntl(fd, F_GETFD) >= 0);
	assert_true(ino_of(fd) == ino_of(b));
	close(fd);
	close(a);
	close(b);
	close(sv[0]);
	close(sv[1]);
}

static void test_send_peer_gone(void **state)
{
	int sv[2];

	make_pair(sv, 0);
	close(sv[1]);
	assert_int_equal(
	    bh_frame_send(sv[0], BH__MSG_TYPE__MSG_QUIT, NULL, NULL, 0),
	    -EPIPE);
	close(sv[0]);
}

/* A peer that stops reading: the send gives up after its timeout, and a
 * timeout of 0 does not wait at all; with room it goes through. */
static void test_send_timeout(void **state)
{
	Bh__SerialData d = BH__SERIAL_DATA__INIT;
	uint8_t chunk[4096] = { 0 };
	struct bh_frame f;
	uint64_t t0;
	int sv[2];

	make_pair(sv, 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(bh_frame_send_timeout(sv[0], BH__MSG_TYPE__MSG_QUIT,
					       NULL, NULL, 0, 0),
			 0);
	assert_int_equal(read_one(sv[1], BH_FRAME_MAX_BODY, &f), 1);
	bh_frame_release(&f);
	d.data.data = chunk;
	d.data.len = sizeof(chunk);
	/* Fill the socket: a blocking send would wait for ever now. */
	while (send(sv[0], chunk, sizeof(chunk), MSG_DONTWAIT) > 0)
		;
	t0 = bh_now_ns();
	assert_int_equal(bh_frame_send_timeout(sv[0],
					       BH__MSG_TYPE__MSG_SERIAL_OUT,
					       &d.base, NULL, 0, 200),
			 -ETIMEDOUT);
	assert_true(bh_now_ns() - t0 >= 200000000ull);
	assert_true(bh_now_ns() - t0 < 2000000000ull);
	t0 = bh_now_ns();
	assert_int_equal(bh_frame_send_timeout(sv[0], BH__MSG_TYPE__MSG_QUIT,
					       NULL, NULL, 0, 0),
			 -ETIMEDOUT);
	assert_true(bh_now_ns() - t0 < 100000000ull);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_0),
		cmocka_unit_test(test_round_trip_1),
		cmocka_unit_test(test_round_trip_3),
		cmocka_unit_test(test_empty_body),
		cmocka_unit_test(test_encode_limits),
		cmocka_unit_test(test_fd_attribution),
		cmocka_unit_test(test_short_reads),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_unexpected_fd_closed),
		cmocka_unit_test(test_fds_on_body),
		cmocka_unit_test(test_read_timeout),
		cmocka_unit_test(test_eof),
		cmocka_unit_test(test_take_fd),
		cmocka_unit_test(test_send_peer_gone),
		cmocka_unit_test(test_send_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
