/* Unit tests for the vsock connection state machine alone (vsock_conn.c):
 * the CONNECT line, credit on both sides, the RST ring and its bound. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vsock_conn.h"

#define CID 3

static void test_parse_connect(void **state)
{
	static const struct {
		const char *s;
		int r;
		uint32_t port;
	} cases[] = {
		{ "CONNECT 5\n", 1, 5 },
		{ "CONNECT 0\n", 1, 0 },
		{ "CONNECT 4294967295\n", 1, 4294967295u },
		{ "CONNECT 4294967296\n", -EINVAL, 0 },
		{ "CONNECT 05\n", -EINVAL, 0 },
		{ "CONNECT -5\n", -EINVAL, 0 },
		{ "CONNECT +5\n", -EINVAL, 0 },
		{ "CONNECT \n", -EINVAL, 0 },
		{ "CONNECT 5 \n", -EINVAL, 0 },
		{ "CONNECT 5\r\n", -EINVAL, 0 },
		{ "CONNECT 5\nX", -EINVAL, 0 },
		{ "CONNECT", 0, 0 },
		{ "CONNECT 12", 0, 0 },
		{ "C", 0, 0 },
		{ "X", -EINVAL, 0 },
		{ "", 0, 0 },
		{ "CONNECT 000000000000000000000001", -EINVAL, 0 },
	};
	char longl[VSK_LINE_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t port = 77;
		int r =
		    vsk_parse_connect(cases[i].s, strlen(cases[i].s), &port);

		if (r != cases[i].r)
			fail_msg("'%s': %d, not %d", cases[i].s, r, cases[i].r);
		if (r == 1)
			assert_int_equal(port, cases[i].port);
	}
	/* A prefix as long as the limit with no newline is refused. */
	memcpy(longl, "CONNECT ", 8);
	memset(longl + 8, '1', sizeof(longl) - 8);
	assert_int_equal(vsk_parse_connect(longl, VSK_LINE_MAX, NULL), -EINVAL);
}

static struct vsk_hdr pkt(uint32_t src, uint32_t dst, uint16_t op, uint32_t len)
{
	struct vsk_hdr h = {
		CID, VSK_HOST_CID, src, dst, len, VSK_TYPE_STREAM, op,
		0,   65536,	   0
	};

	return h;
}

/* A host connection the guest accepted; returns it. */
static struct vsk_conn *host_established(struct vsk *v, int fd, uint32_t port)
{
	const char *line = "CONNECT 10\n";
	struct vsk_conn *c, *c2;
	struct vsk_hdr h;

	assert_int_equal(vsk_host_conn(v, fd, 0, &c), 0);
	for (size_t i = 0; line[i]; i++)
		assert_int_equal(vsk_line_byte(v, c, (uint8_t)line[i]),
				 line[i + 1] ? 0 : 1);
	assert_int_equal(vsk_rx_next(v, &h, &c2), 1);
	assert_ptr_equal(c2, c);
	assert_int_equal(h.op, VSK_OP_REQUEST);
	assert_int_equal(h.dst_port, 10);
	vsk_rx_done(v, &h, c);
	h = pkt(10, c->local_port, VSK_OP_RESPONSE, 0);
	assert_int_equal(vsk_tx(v, &h, 0, &c2), VSK_ACT_ESTABLISHED);
	(void)port;
	return c;
}

static void test_credit(void **state)
{
	static struct vsk v;
	struct vsk_conn *c, *c2;
	struct vsk_hdr h;

	(void)state;
	vsk_init(&v, CID, 0);
	c = host_established(&v, 50, 10);
	/* The guest fills our buffer exactly: accepted. */
	for (uint32_t sent = 0; sent < VSK_BUF_ALLOC; sent += VSK_MAX_PKT) {
		h = pkt(10, c->local_port, VSK_OP_RW, VSK_MAX_PKT);
		assert_int_equal(vsk_tx(&v, &h, VSK_MAX_PKT, &c2),
				 VSK_ACT_DATA);
		vsk_conn_buffer(c, (const uint8_t[VSK_MAX_PKT]){ 0 },
				VSK_MAX_PKT);
	}
	assert_int_equal(c->buf_len, VSK_BUF_ALLOC);
	/* One byte more than the credit resets the connection. */
	h = pkt(10, c->local_port, VSK_OP_RW, 1);
	assert_int_equal(vsk_tx(&v, &h, 1, &c2), VSK_ACT_RESET);
	assert_ptr_equal(c2, c);

	/* Our side: the guest's buf_alloc and fwd_cnt bound what we send. */
	vsk_reset(&v, NULL, NULL);
	vsk_init(&v, CID, 0);
	c = host_established(&v, 51, 10);
	assert_int_equal(vsk_conn_credit(c), VSK_MAX_PKT);
	c->rx_cnt = 65000;
	assert_int_equal(vsk_conn_credit(c), 536);
	c->peer_fwd_cnt = 70000; /* ahead of what we sent */
	assert_int_equal(vsk_conn_credit(c), 0);
	assert_false(vsk_conn_wants_read(c));
	vsk_reset(&v, NULL, NULL);
}

static void test_rst_ring(void **state)
{
	static struct vsk v;
	struct vsk_conn *c;
	struct vsk_hdr h;

	(void)state;
	vsk_init(&v, CID, 0);
	/* An RST for no connection is not answered. */
	h = pkt(1, 2, VSK_OP_RST, 0);
	assert_int_equal(vsk_tx(&v, &h, 0, &c), VSK_ACT_NONE);
	assert_int_equal(v.rst_len, 0);
	for (unsigned int i = 0; i < VSK_RST_RING; i++) {
		assert_true(vsk_tx_room(&v));
		h = pkt(i, 2, VSK_OP_RW, 0);
		assert_int_equal(vsk_tx(&v, &h, 0, &c), VSK_ACT_NONE);
	}
	assert_false(vsk_tx_room(&v));
	/* They go out in order, ports swapped. */
	for (unsigned int i = 0; i < VSK_RST_RING; i++) {
		assert_int_equal(vsk_rx_next(&v, &h, &c), 1);
		assert_null(c);
		assert_int_equal(h.op, VSK_OP_RST);
		assert_int_equal(h.dst_port, i);
		assert_int_equal(h.src_port, 2);
		vsk_rx_done(&v, &h, c);
	}
	assert_true(vsk_tx_room(&v));
	assert_int_equal(vsk_rx_next(&v, &h, &c), 0);
}

static void test_host_ports(void **state)
{
	static struct vsk v;
	struct vsk_conn *a, *b;

	(void)state;
	vsk_init(&v, CID, 4);
	a = host_established(&v, 60, 10);
	b = host_established(&v, 61, 10);
	assert_true(a->local_port >= VSK_HOST_PORT_FIRST);
	assert_int_not_equal(a->local_port, b->local_port);
	/* The limit: 4 open at once. */
	host_established(&v, 62, 10);
	host_established(&v, 63, 10);
	assert_int_equal(vsk_host_conn(&v, 64, 0, &a), -EBUSY);
	vsk_reset(&v, NULL, NULL);
	assert_int_equal(v.nconns, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_connect),
		cmocka_unit_test(test_credit),
		cmocka_unit_test(test_rst_ring),
		cmocka_unit_test(test_host_ports),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
