/* The migration stream's framing (controller/migwire.c): headers, MEMORY
 * payloads, and the reader and writer over a real socketpair. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "migwire.h"

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void test_header_round_trip(void **state)
{
	uint8_t b[BH_MIG_HEADER_SIZE];
	struct bh_mig_header h;
	char err[256];

	(void)state;
	bh_mig_header_encode(b, BH_MIG_STATE, 12345);
	assert_int_equal(memcmp(b, "BHMG", 4), 0);
	assert_int_equal(bh_mig_header_decode(b, &h, err, sizeof(err)), 0);
	assert_int_equal(h.type, BH_MIG_STATE);
	assert_int_equal(h.version, BH_MIG_VERSION);
	assert_int_equal(h.length, 12345);
	assert_string_equal(bh_mig_type_name(BH_MIG_MEMFD), "MEMFD");
	assert_string_equal(bh_mig_type_name(99), "unknown");
}

static void test_header_refusals(void **state)
{
	uint8_t b[BH_MIG_HEADER_SIZE];
	struct bh_mig_header h;
	char err[256];

	(void)state;
	bh_mig_header_encode(b, BH_MIG_START, 8);
	b[0] = 'X';
	assert_int_equal(bh_mig_header_decode(b, &h, err, sizeof(err)),
			 -EPROTO);
	assert_non_null(strstr(err, "not a bulkhead migration stream"));

	bh_mig_header_encode(b, BH_MIG_START, 8);
	b[4] = 2;
	assert_int_equal(bh_mig_header_decode(b, &h, err, sizeof(err)),
			 -EPROTO);
	assert_non_null(strstr(err, "version 2"));

	bh_mig_header_encode(b, 0, 0);
	assert_int_equal(bh_mig_header_decode(b, &h, err, sizeof(err)),
			 -EBADMSG);
	bh_mig_header_encode(b, BH_MIG_TYPE_END, 0);
	assert_int_equal(bh_mig_header_decode(b, &h, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "unknown message type"));

	/* Each type's limit. */
	bh_mig_header_encode(b, BH_MIG_RESPONSE, 4097);
	assert_int_equal(bh_mig_header_decode(b, &h, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "RESPONSE message of 4097 bytes"));
	bh_mig_header_encode(b, BH_MIG_MEMFD, 1);
	assert_int_equal(bh_mig_header_decode(b, &h, err, sizeof(err)),
			 -EBADMSG);
	bh_mig_header_encode(b, BH_MIG_STATE, UINT64_MAX);
	assert_int_equal(bh_mig_header_decode(b, &h, err, sizeof(err)),
			 -EBADMSG);

	/* MEMORY: an offset and whole pages. */
	bh_mig_header_encode(b, BH_MIG_MEMORY, 8);
	assert_int_equal(bh_mig_header_decode(b, &h, err, sizeof(err)),
			 -EBADMSG);
	bh_mig_header_encode(b, BH_MIG_MEMORY, 8 + 4096 + 1);
	assert_int_equal(bh_mig_header_decode(b, &h, err, sizeof(err)),
			 -EBADMSG);
	bh_mig_header_encode(b, BH_MIG_MEMORY, 8 + BH_MIG_MEMORY_MAX + 4096);
	assert_int_equal(bh_mig_header_decode(b, &h, err, sizeof(err)),
			 -EBADMSG);
	bh_mig_header_encode(b, BH_MIG_MEMORY, 8 + 2 * 4096);
	assert_int_equal(bh_mig_header_decode(b, &h, err, sizeof(err)), 0);
}

static void test_memory_check(void **state)
{
	static uint8_t p[8 + 2 * 4096];
	const uint8_t *data;
	uint64_t off;
	size_t len;
	char err[256];

	(void)state;
	put64(p, 0x3000);
	assert_int_equal(bh_mig_memory_check(p, sizeof(p), 0x5000, &off, &data,
					     &len, err, sizeof(err)),
			 0);
	assert_int_equal(off, 0x3000);
	assert_int_equal(len, 2 * 4096);
	assert_ptr_equal(data, p + 8);
	/* One page past the end. */
	assert_int_equal(bh_mig_memory_check(p, sizeof(p), 0x4000, &off, &data,
					     &len, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "inside the 16384 bytes"));
	/* Not page-aligned. */
	put64(p, 0x3001);
	assert_int_equal(bh_mig_memory_check(p, sizeof(p), 0x10000, &off, &data,
					     &len, err, sizeof(err)),
			 -EBADMSG);
	/* An offset that wraps. */
	put64(p, UINT64_MAX - 4095);
	assert_int_equal(bh_mig_memory_check(p, sizeof(p), UINT64_MAX, &off,
					     &data, &len, err, sizeof(err)),
			 -EBADMSG);
	put64(p, 0);
	assert_int_equal(bh_mig_memory_check(p, 8, 0x10000, &off, &data, &len,
					     err, sizeof(err)),
			 -EBADMSG);
}

/* Frames written in pieces arrive whole; a MEMFD's fd comes with it. */
static void test_reader_writer(void **state)
{
	struct bh_mig_reader r;
	struct bh_mig_out o;
	int sv[2], memfd, r1;
	char err[256];
	uint8_t *p;

	(void)state;
	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	bh_mig_reader_init(&r);
	bh_mig_out_init(&o);
	assert_int_equal(bh_mig_read(&r, sv[1], err, sizeof(err)), 0);

	p = bh_mig_out_frame(&o, BH_MIG_START, 5);
	assert_non_null(p);
	memcpy(p, "hello", 5);
	assert_true(bh_mig_out_busy(&o));
	/* Not while one is on its way. */
	assert_null(bh_mig_out_frame(&o, BH_MIG_START, 1));
	/* The header in two pieces. */
	assert_int_equal(write(sv[0], o.buf, 7), 7);
	assert_int_equal(bh_mig_read(&r, sv[1], err, sizeof(err)), 0);
	assert_int_equal(write(sv[0], o.buf + 7, o.len - 7),
			 (ssize_t)(o.len - 7));
	assert_int_equal(bh_mig_read(&r, sv[1], err, sizeof(err)), 1);
	assert_int_equal(r.h.type, BH_MIG_START);
	assert_int_equal(r.h.length, 5);
	assert_memory_equal(r.body, "hello", 5);
	assert_int_equal(r.fd, -1);
	bh_mig_reader_next(&r);
	o.off = o.len;

	memfd = memfd_create("t", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	assert_non_null(bh_mig_out_frame(&o, BH_MIG_MEMFD, 0));
	o.fd = memfd;
	assert_int_equal(bh_mig_out_send(&o, sv[0]), 1);
	assert_false(bh_mig_out_busy(&o));
	assert_int_equal(bh_mig_read(&r, sv[1], err, sizeof(err)), 1);
	assert_int_equal(r.h.type, BH_MIG_MEMFD);
	assert_true(r.fd >= 0);
	assert_int_not_equal(r.fd, memfd);
	bh_mig_reader_next(&r);

	/* An fd with any other message is refused. */
	p = bh_mig_out_frame(&o, BH_MIG_COMPLETE, 1);
	p[0] = 0;
	o.fd = memfd;
	assert_int_equal(bh_mig_out_send(&o, sv[0]), 1);
	r1 = bh_mig_read(&r, sv[1], err, sizeof(err));
	assert_int_equal(r1, -EBADMSG);
	assert_non_null(strstr(err, "an fd with a COMPLETE message"));
	bh_mig_reader_reset(&r);
	/* (the connection is dropped after an error; here its byte of
	 * payload is read away instead) */
	{
		uint8_t x;

		assert_int_equal(read(sv[1], &x, 1), 1);
	}

	/* A MEMFD without its fd is refused. */
	assert_non_null(bh_mig_out_frame(&o, BH_MIG_MEMFD, 0));
	assert_int_equal(bh_mig_out_send(&o, sv[0]), 1);
	assert_int_equal(bh_mig_read(&r, sv[1], err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "without its fd"));
	bh_mig_reader_reset(&r);

	/* Closed in the middle of a frame, then between frames. */
	p = bh_mig_out_frame(&o, BH_MIG_STATE, 100);
	memset(p, 1, 100);
	assert_int_equal(write(sv[0], o.buf, 50), 50);
	o.off = o.len;
	close(sv[0]);
	assert_int_equal(bh_mig_read(&r, sv[1], err, sizeof(err)), -ECONNRESET);
	bh_mig_reader_reset(&r);
	assert_int_equal(bh_mig_read(&r, sv[1], err, sizeof(err)), -EPIPE);
	bh_mig_reader_reset(&r);
	close(sv[1]);
	close(memfd);
	bh_mig_out_free(&o);
}

/* A full socket: the writer says so and goes on where it stopped. */
static void test_writer_full_socket(void **state)
{
	struct bh_mig_reader r;
	struct bh_mig_out o;
	size_t big = 8 + 1024 * 4096;
	int sv[2], n, got = 0;
	char err[256];
	uint8_t *p;

	(void)state;
	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	bh_mig_reader_init(&r);
	bh_mig_out_init(&o);
	p = bh_mig_out_frame(&o, BH_MIG_MEMORY, big);
	assert_non_null(p);
	for (size_t i = 0; i < big; i++)
		p[i] = (uint8_t)(i * 7);
	n = bh_mig_out_send(&o, sv[0]);
	assert_int_equal(n, 0);
	while (bh_mig_out_busy(&o) || !got) {
		int rr = bh_mig_read(&r, sv[1], err, sizeof(err));

		assert_true(rr >= 0);
		if (rr == 1) {
			got = 1;
			break;
		}
		assert_true(bh_mig_out_send(&o, sv[0]) >= 0);
	}
	assert_int_equal(r.h.length, big);
	assert_memory_equal(r.body, o.buf + BH_MIG_HEADER_SIZE, big);
	assert_int_equal(o.bytes, BH_MIG_HEADER_SIZE + big);
	bh_mig_reader_reset(&r);
	bh_mig_out_free(&o);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_round_trip),
		cmocka_unit_test(test_header_refusals),
		cmocka_unit_test(test_memory_check),
		cmocka_unit_test(test_reader_writer),
		cmocka_unit_test(test_writer_full_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
