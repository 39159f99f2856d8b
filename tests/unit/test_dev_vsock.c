/* Unit tests for the vsock worker (bulkhead-dev-vsock) via bh_vdriver: the
 * test is the guest and the controller, socketpairs are the host's unix
 * connections. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <bulkhead/le.h>
#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "vdriver.h"

#define RXQ	    0
#define TXQ	    1
#define EVQ	    2
#define QSIZE	    64
#define NRX	    32
#define RXBUF	    (4096 + 44)
#define TXBUF	    (65536 + 44)
#define HDR	    44
#define F_VERSION_1 (1ULL << 32)
#define GUEST_CID   3
#define T	    BH_VDRIVER_TIMEOUT_MS

struct hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

enum {
	OP_REQUEST = 1,
	OP_RESPONSE,
	OP_RST,
	OP_SHUTDOWN,
	OP_RW,
	OP_CREDIT_UPDATE,
	OP_CREDIT_REQUEST
};

struct fx {
	struct bh_vdriver *d;
	Bh__VsockSetup vs;	/* kept for bh_vdriver_respawn */
	uint64_t rx_gpa[QSIZE]; /* by head */
	uint64_t rx_area;
	uint64_t tx_area;
};

static void put_hdr(uint8_t *b, const struct hdr *h)
{
	bh_put_le64(b, h->src_cid);
	bh_put_le64(b + 8, h->dst_cid);
	bh_put_le32(b + 16, h->src_port);
	bh_put_le32(b + 20, h->dst_port);
	bh_put_le32(b + 24, h->len);
	bh_put_le16(b + 28, h->type);
	bh_put_le16(b + 30, h->op);
	bh_put_le32(b + 32, h->flags);
	bh_put_le32(b + 36, h->buf_alloc);
	bh_put_le32(b + 40, h->fwd_cnt);
}

static void get_hdr(const uint8_t *b, struct hdr *h)
{
	h->src_cid = bh_get_le64(b);
	h->dst_cid = bh_get_le64(b + 8);
	h->src_port = bh_get_le32(b + 16);
	h->dst_port = bh_get_le32(b + 20);
	h->len = bh_get_le32(b + 24);
	h->type = bh_get_le16(b + 28);
	h->op = bh_get_le16(b + 30);
	h->flags = bh_get_le32(b + 32);
	h->buf_alloc = bh_get_le32(b + 36);
	h->fwd_cnt = bh_get_le32(b + 40);
}

static void post_rx(struct fx *fx, unsigned int slot)
{
	struct bh_vdriver_buf b = { fx->rx_area + (uint64_t)slot * RXBUF, RXBUF,
				    true };
	uint16_t head;

	assert_int_equal(bh_vdriver_add(fx->d, RXQ, &b, 1, 0, &head), 0);
	fx->rx_gpa[head] = b.gpa;
}

static int start(void **state, uint32_t max_conns)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	Bh__VsockSetup vs = BH__VSOCK_SETUP__INIT;
	struct bh_vdriver_cfg cfg = { 0 };

	assert_non_null(fx);
	fx->vs = vs;
	fx->vs.cid = GUEST_CID;
	fx->vs.max_connections = max_conns;
	cfg.binary = BH_WORKER_DIR "/bulkhead-dev-vsock";
	cfg.type = BH__WORKER_SETUP__BACKEND_VSOCK;
	cfg.backend = &fx->vs;
	cfg.inflight = true;
	cfg.ram_size = 16ULL << 20;
	cfg.id = "vsock0";
	assert_int_equal(bh_vdriver_start(&cfg, &fx->d), 0);
	assert_int_equal(bh_vdriver_info(fx->d)->device_type, 19);
	assert_int_equal(bh_vdriver_info(fx->d)->num_queues, 3);
	assert_int_equal(bh_vdriver_info(fx->d)->config_len, 8);
	assert_int_equal(bh_get_le64(bh_vdriver_info(fx->d)->config),
			 GUEST_CID);
	for (unsigned int q = 0; q < 3; q++)
		assert_int_equal(bh_vdriver_queue_alloc(fx->d, q, QSIZE), 0);
	assert_int_equal(
	    bh_vdriver_alloc(fx->d, (uint64_t)NRX * RXBUF, 4096, &fx->rx_area),
	    0);
	assert_int_equal(bh_vdriver_alloc(fx->d, TXBUF, 4096, &fx->tx_area), 0);
	assert_int_equal(bh_vdriver_activate(fx->d, F_VERSION_1), 0);
	for (unsigned int i = 0; i < NRX; i++)
		post_rx(fx, i);
	assert_int_equal(bh_vdriver_kick(fx->d, RXQ), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, T), 0);
	assert_null(bh_vdriver_needs_reset(fx->d));
	*state = fx;
	return 0;
}

static int setup(void **state)
{
	return start(state, 0);
}

static int setup_limit(void **state)
{
	return start(state, 2);
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	int status = 0, r;
	char why[128];

	r = bh_vdriver_stop(fx->d, T, &status);
	if (r != 0)
		fprintf(stderr, "vsock worker: %s\n",
			bh_describe_status(status, why, sizeof(why)));
	free(fx);
	assert_int_equal(r, 0);
	return 0;
}

static uint64_t counter(struct fx *fx, const char *name)
{
	uint64_t v = 0;

	assert_int_equal(bh_vdriver_sync(fx->d, T), 0);
	assert_int_equal(bh_vdriver_counter(fx->d, name, &v), 0);
	return v;
}

/* One packet from the guest: header then payload, in one or two buffers;
 * the worker returns it at once. */
static void tx_raw(struct fx *fx, const struct hdr *h, const void *data,
		   uint32_t len, bool split)
{
	uint8_t *p = bh_vdriver_gpa(fx->d, fx->tx_area, TXBUF);
	struct bh_vdriver_buf b[2] = {
		{ fx->tx_area, HDR, false },
		{ fx->tx_area + HDR, len, false },
	};
	struct bh_vdriver_used u;

	assert_non_null(p);
	assert_true(len <= TXBUF - HDR);
	put_hdr(p, h);
	if (len)
		memcpy(p + HDR, data, len);
	if (!split || !len)
		b[0].len = HDR + len;
	assert_int_equal(
	    bh_vdriver_submit(fx->d, TXQ, b, split && len ? 2 : 1, 0, NULL), 0);
	assert_int_equal(bh_vdriver_wait_used(fx->d, TXQ, T, &u), 1);
	assert_int_equal(u.len, 0);
}

static void tx(struct fx *fx, uint32_t src_port, uint32_t dst_port, uint16_t op,
	       uint32_t flags, uint32_t buf_alloc, uint32_t fwd_cnt,
	       const void *data, uint32_t len)
{
	struct hdr h = { GUEST_CID, 2,	src_port, dst_port,  len,
			 1,	    op, flags,	  buf_alloc, fwd_cnt };

	tx_raw(fx, &h, data, len, true);
}

/* The next packet for the guest (payload into data, up to max), its buffer
 * posted again. 1, or 0 if none came within timeout_ms. */
static int rx_wait(struct fx *fx, struct hdr *h, void *data, size_t max,
		   int timeout_ms)
{
	struct bh_vdriver_used u;
	uint8_t *p;
	int r;

	r = bh_vdriver_wait_used(fx->d, RXQ, timeout_ms, &u);
	if (r == -ETIMEDOUT)
		return 0;
	assert_int_equal(r, 1);
	assert_true(u.id < QSIZE);
	assert_true(u.len >= HDR && u.len <= RXBUF);
	p = bh_vdriver_gpa(fx->d, fx->rx_gpa[u.id], RXBUF);
	assert_non_null(p);
	get_hdr(p, h);
	assert_int_equal(h->len, u.len - HDR);
	assert_int_equal(h->src_cid, 2);
	assert_int_equal(h->dst_cid, GUEST_CID);
	assert_int_equal(h->type, 1);
	if (data) {
		assert_true(h->len <= max);
		memcpy(data, p + HDR, h->len);
	}
	post_rx(fx, (unsigned int)((fx->rx_gpa[u.id] - fx->rx_area) / RXBUF));
	assert_int_equal(bh_vdriver_kick(fx->d, RXQ), 0);
	return 1;
}

static void rx(struct fx *fx, struct hdr *h, void *data, size_t max)
{
	assert_int_equal(rx_wait(fx, h, data, max, T), 1);
}

/* The host's side reads exactly len bytes within the time-out. */
static void host_read(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		assert_int_equal(poll(&p, 1, T), 1);
		n = read(fd, (uint8_t *)buf + got, len - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
}

/* The host's side sees EOF (after any bytes) within timeout_ms: 1, or 0
 * if the socket is still open then. */
static int host_eof(int fd, int timeout_ms)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char buf[4096];
		ssize_t n;

		if (poll(&p, 1, timeout_ms) != 1)
			return 0;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return 1;
	}
}

/* Hands the worker a host connection as the controller does; returns the
 * host process's end. */
static int host_conn(struct fx *fx)
{
	Bh__VsockHostConn m = BH__VSOCK_HOST_CONN__INIT;
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp),
			 0);
	assert_int_equal(bh_vdriver_send_ctl(fx->d,
					     BH__MSG_TYPE__MSG_VSOCK_HOST_CONN,
					     &m.base, &sp[1], 1),
			 0);
	close(sp[1]);
	return sp[0];
}

/* A host connection to guest port `port`, accepted by the guest with
 * buf_alloc: returns the host end, *hport the host port. */
static int host_connect(struct fx *fx, uint32_t port, uint32_t buf_alloc,
			uint32_t *hport)
{
	char line[32], ok[32];
	struct hdr h;
	int fd = host_conn(fx);
	int n;

	n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	assert_int_equal(write(fd, line, (size_t)n), n);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_REQUEST);
	assert_int_equal(h.dst_port, port);
	assert_true(h.src_port >= 1024);
	assert_int_equal(h.buf_alloc, 256 * 1024);
	*hport = h.src_port;
	tx(fx, port, h.src_port, OP_RESPONSE, 0, buf_alloc, 0, NULL, 0);
	n = snprintf(ok, sizeof(ok), "OK %u\n", h.src_port);
	host_read(fd, line, (size_t)n);
	assert_memory_equal(line, ok, (size_t)n);
	return fd;
}

static void test_host_to_guest(void **state)
{
	struct fx *fx = *state;
	uint32_t hp;
	int fd = host_connect(fx, 5000, 65536, &hp);
	char buf[64];
	struct hdr h;

	assert_int_equal(write(fd, "hello", 5), 5);
	rx(fx, &h, buf, sizeof(buf));
	assert_int_equal(h.op, OP_RW);
	assert_int_equal(h.src_port, hp);
	assert_int_equal(h.dst_port, 5000);
	assert_int_equal(h.len, 5);
	assert_memory_equal(buf, "hello", 5);

	tx(fx, 5000, hp, OP_RW, 0, 65536, 5, "world!", 6);
	host_read(fd, buf, 6);
	assert_memory_equal(buf, "world!", 6);

	/* Host EOF: SHUTDOWN "will send no more" to the guest. */
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_SHUTDOWN);
	assert_int_equal(h.flags, 2);
	/* The guest closes: the worker closes the host socket, RST. */
	tx(fx, 5000, hp, OP_SHUTDOWN, 3, 65536, 5, NULL, 0);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RST);
	assert_int_equal(h.src_port, hp);
	assert_int_equal(host_eof(fd, T), 1);
	close(fd);

	assert_int_equal(counter(fx, "connections"), 1);
	assert_int_equal(counter(fx, "host_connections"), 1);
	assert_int_equal(counter(fx, "guest_connections"), 0);
	assert_int_equal(counter(fx, "rx_bytes"), 5);
	assert_int_equal(counter(fx, "tx_bytes"), 6);
	assert_int_equal(counter(fx, "open_connections"), 0);
	assert_true(counter(fx, "resets") >= 1);
}

/* No listener in the guest: its RST closes the host socket, without OK. */
static void test_host_to_guest_refused(void **state)
{
	struct fx *fx = *state;
	int fd = host_conn(fx);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[8];
	struct hdr h;

	assert_int_equal(write(fd, "CONNECT 5003\n", 13), 13);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_REQUEST);
	tx(fx, 5003, h.src_port, OP_RST, 0, 0, 0, NULL, 0);
	assert_int_equal(poll(&p, 1, T), 1);
	assert_int_equal(read(fd, buf, sizeof(buf)), 0);
	close(fd);
	assert_int_equal(rx_wait(fx, &h, NULL, 0, 100), 0);
	assert_int_equal(counter(fx, "open_connections"), 0);
}

/* Before the driver is ready there is no guest to connect to: a host
 * connection is closed at once. */
static void test_host_conn_inactive(void **state)
{
	struct fx *fx = *state;
	int fd;

	assert_int_equal(bh_vdriver_reset(fx->d, T), 0);
	fd = host_conn(fx);
	assert_int_equal(host_eof(fd, T), 1);
	close(fd);
	assert_true(bh_vdriver_alive(fx->d));
}

/* The guest connects to host port `port` from gport; the test answers as
 * the controller with error, or with a socketpair whose other end it
 * returns. */
static int guest_connect(struct fx *fx, uint32_t gport, uint32_t port,
			 int error)
{
	Bh__VsockConnected ans = BH__VSOCK_CONNECTED__INIT;
	Bh__VsockConnect *m;
	struct bh_frame f;
	int sp[2] = { -1, -1 };

	tx(fx, gport, port, OP_REQUEST, 0, 65536, 0, NULL, 0);
	assert_int_equal(bh_vdriver_recv_ctl(fx->d, &f, T), 1);
	assert_int_equal(f.type, BH__MSG_TYPE__MSG_VSOCK_CONNECT);
	assert_int_equal(f.nfds, 0);
	m = bh__vsock_connect__unpack(NULL, f.len, f.body);
	bh_frame_release(&f);
	assert_non_null(m);
	assert_int_equal(m->port, port);
	ans.token = m->token;
	bh__vsock_connect__free_unpacked(m, NULL);
	ans.error = error;
	if (error == 0)
		assert_int_equal(
		    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(
	    bh_vdriver_send_ctl(fx->d, BH__MSG_TYPE__MSG_VSOCK_CONNECTED,
				&ans.base, &sp[1], error == 0 ? 1 : 0),
	    0);
	if (sp[1] >= 0)
		close(sp[1]);
	return sp[0];
}

static void test_guest_to_host(void **state)
{
	struct fx *fx = *state;
	int fd = guest_connect(fx, 40000, 7000, 0);
	char buf[64];
	struct hdr h;

	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RESPONSE);
	assert_int_equal(h.src_port, 7000);
	assert_int_equal(h.dst_port, 40000);

	tx(fx, 40000, 7000, OP_RW, 0, 65536, 0, "ping", 4);
	host_read(fd, buf, 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(write(fd, "pong", 4), 4);
	rx(fx, &h, buf, sizeof(buf));
	assert_int_equal(h.op, OP_RW);
	assert_int_equal(h.len, 4);
	assert_memory_equal(buf, "pong", 4);
	/* Every header tells the guest what reached the host. */
	assert_int_equal(h.fwd_cnt, 4);

	/* CREDIT_REQUEST is answered. */
	tx(fx, 40000, 7000, OP_CREDIT_REQUEST, 0, 65536, 4, NULL, 0);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_CREDIT_UPDATE);
	assert_int_equal(h.buf_alloc, 256 * 1024);
	assert_int_equal(h.fwd_cnt, 4);

	/* Guest SHUTDOWN send: the host sees EOF, the connection lives. */
	tx(fx, 40000, 7000, OP_SHUTDOWN, 2, 65536, 4, NULL, 0);
	assert_int_equal(host_eof(fd, T), 1);
	assert_int_equal(write(fd, "late", 4), 4);
	rx(fx, &h, buf, sizeof(buf));
	assert_int_equal(h.op, OP_RW);
	assert_memory_equal(buf, "late", 4);

	/* Guest RST: the socket is closed, no answer. */
	tx(fx, 40000, 7000, OP_RST, 0, 65536, 8, NULL, 0);
	assert_int_equal(rx_wait(fx, &h, NULL, 0, 200), 0);
	assert_int_equal(counter(fx, "open_connections"), 0);
	assert_int_equal(counter(fx, "guest_connections"), 1);
	assert_int_equal(counter(fx, "tx_bytes"), 4);
	assert_int_equal(counter(fx, "rx_bytes"), 8);
	close(fd);
}

static void test_connect_refused(void **state)
{
	struct fx *fx = *state;
	struct hdr h;

	assert_int_equal(guest_connect(fx, 40001, 7001, ECONNREFUSED), -1);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RST);
	assert_int_equal(h.src_port, 7001);
	assert_int_equal(h.dst_port, 40001);
	assert_int_equal(counter(fx, "open_connections"), 0);
}

static void test_unknown_rst(void **state)
{
	struct fx *fx = *state;
	struct hdr h, bad = { GUEST_CID, 2, 41000, 9999, 0, 1, OP_RW, 0, 0, 0 };

	/* Data on no connection. */
	tx(fx, 41000, 9999, OP_RW, 0, 65536, 0, "x", 1);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RST);
	assert_int_equal(h.src_port, 9999);
	assert_int_equal(h.dst_port, 41000);
	/* An RST on no connection is not answered. */
	tx(fx, 41000, 9999, OP_RST, 0, 65536, 0, NULL, 0);
	assert_int_equal(rx_wait(fx, &h, NULL, 0, 200), 0);
	/* Not to the host, not from the guest's cid, not a stream: RST. */
	bad.dst_cid = 7;
	tx_raw(fx, &bad, NULL, 0, false);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RST);
	bad.dst_cid = 2;
	bad.src_cid = 4;
	tx_raw(fx, &bad, NULL, 0, false);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RST);
	bad.src_cid = GUEST_CID;
	bad.type = 2;
	tx_raw(fx, &bad, NULL, 0, false);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RST);
	assert_int_equal(counter(fx, "drops"), 3);
}

/* A host connection with a bad line is closed without a REQUEST. */
static void bad_line(struct fx *fx, const char *line, size_t len)
{
	int fd = host_conn(fx);
	struct hdr h;

	assert_int_equal(write(fd, line, len), (ssize_t)len);
	assert_int_equal(host_eof(fd, T), 1);
	close(fd);
	assert_int_equal(rx_wait(fx, &h, NULL, 0, 50), 0);
}

static void test_bad_connect_lines(void **state)
{
	struct fx *fx = *state;
	uint64_t t0;
	struct hdr h;
	int fd;

	bad_line(fx, "HELLO 5\n", 8);
	bad_line(fx, "CONNECT 05\n", 11);
	bad_line(fx, "CONNECT 4294967296\n", 19);
	bad_line(fx, "CONNECT  5\n", 11);
	bad_line(fx, "CONNECT 5 \n", 11);
	bad_line(fx, "CONNECT \n", 9);
	bad_line(fx, "connect 5\n", 10);
	bad_line(fx, "CONNECT 1111111111111111111111111111111", 39);
	/* EOF before the line ends. */
	fd = host_conn(fx);
	assert_int_equal(write(fd, "CONN", 4), 4);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	assert_int_equal(host_eof(fd, T), 1);
	close(fd);

	/* No newline: closed after 2 s, not before. */
	t0 = bh_now_ns();
	fd = host_conn(fx);
	assert_int_equal(write(fd, "CONNECT 5", 9), 9);
	assert_int_equal(host_eof(fd, 1000), 0);
	assert_int_equal(host_eof(fd, T), 1);
	assert_true(bh_now_ns() - t0 >= 1900ULL * 1000 * 1000);
	close(fd);
	/* Silent: the same. */
	fd = host_conn(fx);
	assert_int_equal(host_eof(fd, T), 1);
	close(fd);
	assert_int_equal(rx_wait(fx, &h, NULL, 0, 50), 0);
	assert_int_equal(counter(fx, "open_connections"), 0);
	assert_true(bh_vdriver_alive(fx->d));
}

/* The guest gives 1000 bytes of credit: no more is sent until it gives
 * more. */
static void test_flow_control(void **state)
{
	struct fx *fx = *state;
	static char data[5000], got[5000];
	uint32_t hp, n = 0;
	int fd = host_connect(fx, 5001, 1000, &hp);
	struct hdr h;

	for (unsigned int i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7);
	assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	while (n < 1000) {
		rx(fx, &h, got + n, sizeof(got) - n);
		assert_int_equal(h.op, OP_RW);
		n += h.len;
	}
	assert_int_equal(n, 1000);
	assert_int_equal(rx_wait(fx, &h, NULL, 0, 300), 0);
	/* The guest read 600 of them: 600 more may come. */
	tx(fx, 5001, hp, OP_CREDIT_UPDATE, 0, 1000, 600, NULL, 0);
	while (n < 1600) {
		rx(fx, &h, got + n, sizeof(got) - n);
		assert_int_equal(h.op, OP_RW);
		n += h.len;
	}
	assert_int_equal(n, 1600);
	assert_int_equal(rx_wait(fx, &h, NULL, 0, 300), 0);
	/* A bigger buffer lets the rest through. */
	tx(fx, 5001, hp, OP_CREDIT_UPDATE, 0, 65536, 1600, NULL, 0);
	while (n < sizeof(data)) {
		rx(fx, &h, got + n, sizeof(got) - n);
		assert_int_equal(h.op, OP_RW);
		n += h.len;
	}
	assert_memory_equal(got, data, sizeof(data));
	/* A guest fwd_cnt ahead of what it got gives no credit at all. */
	tx(fx, 5001, hp, OP_CREDIT_UPDATE, 0, 65536, 1u << 31, NULL, 0);
	assert_int_equal(write(fd, data, 10), 10);
	assert_int_equal(rx_wait(fx, &h, NULL, 0, 300), 0);
	close(fd);
}

/* A host that does not read: the worker buffers at most its buf_alloc
 * beyond the socket, stays responsive, and delivers it all once the host
 * reads. */
static void test_host_not_reading(void **state)
{
	struct fx *fx = *state;
	static uint8_t chunk[32768];
	uint64_t sent = 0, fwd = 0, got = 0;
	int fd = guest_connect(fx, 42000, 8000, 0);
	struct hdr h;

	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RESPONSE);
	for (unsigned int i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)(i % 251);
	/* Send while the credit the worker gave allows. */
	while (256 * 1024 - (sent - fwd) >= sizeof(chunk)) {
		tx(fx, 42000, 8000, OP_RW, 0, 65536, 0, chunk, sizeof(chunk));
		sent += sizeof(chunk);
		while (rx_wait(fx, &h, NULL, 0, 0) == 1) {
			assert_int_equal(h.op, OP_CREDIT_UPDATE);
			fwd = h.fwd_cnt;
		}
		assert_true(sent < 16 * 1024 * 1024);
	}
	/* Buffered in the worker: at most its buf_alloc. */
	assert_true(sent - fwd <= 256 * 1024);
	assert_true(sent >= 256 * 1024);
	/* Still answering. */
	assert_int_equal(counter(fx, "open_connections"), 1);
	tx(fx, 42000, 8000, OP_CREDIT_REQUEST, 0, 65536, 0, NULL, 0);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_CREDIT_UPDATE);
	/* The host reads it all, in order. */
	while (got < sent) {
		uint8_t buf[8192];
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		assert_int_equal(poll(&p, 1, T), 1);
		n = read(fd, buf, sizeof(buf));
		assert_true(n > 0);
		for (ssize_t i = 0; i < n; i++)
			assert_int_equal(buf[i],
					 (uint8_t)((got + (uint64_t)i) %
						   sizeof(chunk) % 251));
		got += (uint64_t)n;
	}
	assert_int_equal(got, sent);
	/* The worker tells the guest its buffer is free again. */
	do {
		rx(fx, &h, NULL, 0);
		assert_int_equal(h.op, OP_CREDIT_UPDATE);
	} while (h.fwd_cnt != (uint32_t)sent);
	close(fd);
}

static void test_connection_limit(void **state)
{
	struct fx *fx = *state;
	uint32_t hp1, hp2;
	int a = host_connect(fx, 6000, 65536, &hp1);
	int b = guest_connect(fx, 43000, 9000, 0);
	struct hdr h;
	int c;

	assert_int_not_equal(hp1, 0);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RESPONSE);
	/* A third host connection is closed at once. */
	c = host_conn(fx);
	assert_int_equal(host_eof(c, T), 1);
	close(c);
	/* A third guest connection gets RST without asking the controller. */
	tx(fx, 43001, 9001, OP_REQUEST, 0, 65536, 0, NULL, 0);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RST);
	assert_int_equal(h.dst_port, 43001);
	assert_int_equal(counter(fx, "open_connections"), 2);
	/* One closes: room again. */
	tx(fx, 43000, 9000, OP_RST, 0, 65536, 0, NULL, 0);
	assert_int_equal(host_eof(b, T), 1);
	c = host_connect(fx, 6001, 65536, &hp2);
	assert_int_not_equal(hp1, hp2);
	close(a);
	close(b);
	close(c);
}

/* A replacement worker knows no connection: the old ones' host sockets
 * died with the worker, and the guest gets RST on its next packet. */
static void test_respawn(void **state)
{
	struct fx *fx = *state;
	int fd = guest_connect(fx, 45000, 9100, 0);
	struct hdr h;

	struct bh_vdriver_buf ev;
	struct bh_vdriver_used used;
	uint8_t *evp;

	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RESPONSE);
	/* An event buffer, as the guest's driver keeps posted. */
	assert_int_equal(bh_vdriver_alloc(fx->d, 64, 8, &ev.gpa), 0);
	ev.len = 64;
	ev.writable = true;
	evp = bh_vdriver_gpa(fx->d, ev.gpa, 64);
	memset(evp, 0xee, 64);
	assert_int_equal(bh_vdriver_submit(fx->d, EVQ, &ev, 1, 0, NULL), 0);
	assert_int_equal(bh_vdriver_respawn(fx->d, false, T), 0);
	assert_int_equal(host_eof(fd, T), 1);
	/* The guest is told to drop every connection: TRANSPORT_RESET (id 0)
	 * in its event buffer. */
	assert_int_equal(bh_vdriver_wait_used(fx->d, EVQ, T, &used), 1);
	assert_int_equal(used.len, 4);
	assert_int_equal(bh_get_le32(evp), 0);
	assert_int_equal(evp[4], 0xee);
	close(fd);
	tx(fx, 45000, 9100, OP_RW, 0, 65536, 0, "after", 5);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RST);
	assert_int_equal(h.src_port, 9100);
	assert_int_equal(h.dst_port, 45000);
	assert_int_equal(counter(fx, "open_connections"), 0);
	/* And it serves new connections. */
	fd = guest_connect(fx, 45001, 9100, 0);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RESPONSE);
	close(fd);
}

/* A restored VM's worker is paused before it sees its queues: the
 * transport reset it owes the guest waits for the resume. */
static void test_restore_paused(void **state)
{
	struct fx *fx = *state;
	struct bh_vdriver_buf ev;
	struct bh_vdriver_used used;
	uint8_t *evp, *rec;
	size_t len;
	void *region;

	assert_int_equal(bh_vdriver_alloc(fx->d, 64, 8, &ev.gpa), 0);
	ev.len = 64;
	ev.writable = true;
	evp = bh_vdriver_gpa(fx->d, ev.gpa, 64);
	memset(evp, 0xee, 64);
	assert_int_equal(bh_vdriver_submit(fx->d, EVQ, &ev, 1, 0, NULL), 0);
	assert_int_equal(bh_vdriver_pause(fx->d, T), 0);
	region = bh_vdriver_inflight_region(fx->d, &len);
	assert_non_null(region);
	rec = malloc(len);
	assert_non_null(rec);
	memcpy(rec, region, len);
	assert_int_equal(bh_vdriver_restore(fx->d, rec, len, T), 0);
	free(rec);
	/* Answered after the activation. */
	assert_int_equal(bh_vdriver_pause(fx->d, T), 0);
	assert_int_equal(bh_vdriver_get_used(fx->d, EVQ, &used), 0);
	assert_int_equal(evp[0], 0xee);
	assert_int_equal(bh_vdriver_resume(fx->d), 0);
	assert_int_equal(bh_vdriver_wait_used(fx->d, EVQ, T, &used), 1);
	assert_int_equal(used.len, 4);
	assert_int_equal(bh_get_le32(evp), 0);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

/* Driver reset: every host socket is closed. */
static void test_reset_closes(void **state)
{
	struct fx *fx = *state;
	uint32_t hp;
	int a = host_connect(fx, 6000, 65536, &hp);
	int b = guest_connect(fx, 43000, 9000, 0);

	assert_int_equal(bh_vdriver_reset(fx->d, T), 0);
	assert_int_equal(host_eof(a, T), 1);
	assert_int_equal(host_eof(b, T), 1);
	assert_int_equal(counter(fx, "open_connections"), 0);
	close(a);
	close(b);
}

static void test_hostile_chains(void **state)
{
	struct fx *fx = *state;
	uint8_t *p = bh_vdriver_gpa(fx->d, fx->tx_area, TXBUF);
	struct hdr h = { GUEST_CID, 2, 44000, 9500, 100, 1, OP_RW, 0, 0, 0 };
	struct bh_vdriver_buf b[2];
	struct bh_vdriver_used u;
	uint64_t drops0 = counter(fx, "drops");
	uint32_t hp;
	int fd;

	/* Shorter than a header. */
	b[0] = (struct bh_vdriver_buf){ fx->tx_area, 20, false };
	assert_int_equal(bh_vdriver_submit(fx->d, TXQ, b, 1, 0, NULL), 0);
	assert_int_equal(bh_vdriver_wait_used(fx->d, TXQ, T, &u), 1);
	/* len larger than the chain (on no connection: RST). */
	put_hdr(p, &h);
	b[0] = (struct bh_vdriver_buf){ fx->tx_area, HDR + 10, false };
	assert_int_equal(bh_vdriver_submit(fx->d, TXQ, b, 1, 0, NULL), 0);
	assert_int_equal(bh_vdriver_wait_used(fx->d, TXQ, T, &u), 1);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RST);
	/* A writable buffer in a transmit chain. */
	b[0] = (struct bh_vdriver_buf){ fx->tx_area, HDR, false };
	b[1] = (struct bh_vdriver_buf){ fx->tx_area + 4096, 64, true };
	assert_int_equal(bh_vdriver_submit(fx->d, TXQ, b, 2, 0, NULL), 0);
	assert_int_equal(bh_vdriver_wait_used(fx->d, TXQ, T, &u), 1);
	assert_int_equal(counter(fx, "drops"), drops0 + 3);

	/* Over 64 KiB, or beyond the chain, on a live connection: reset. */
	fd = host_connect(fx, 5002, 65536, &hp);
	h = (struct hdr){ GUEST_CID, 2, 5002, hp, 70000, 1, OP_RW, 0, 0, 0 };
	tx_raw(fx, &h, NULL, 0, false);
	rx(fx, &h, NULL, 0);
	assert_int_equal(h.op, OP_RST);
	assert_int_equal(host_eof(fd, T), 1);
	close(fd);
	assert_true(bh_vdriver_alive(fx->d));
	assert_null(bh_vdriver_needs_reset(fx->d));

	/* A descriptor loop breaks the queue: NEEDS_RESET, not a crash. */
	assert_int_equal(bh_vdriver_write_desc(fx->d, TXQ, 40, fx->tx_area, HDR,
					       BH_VRING_DESC_F_NEXT, 41),
			 0);
	assert_int_equal(bh_vdriver_write_desc(fx->d, TXQ, 41, fx->tx_area, HDR,
					       BH_VRING_DESC_F_NEXT, 40),
			 0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, TXQ, 40), 0);
	assert_int_equal(bh_vdriver_kick(fx->d, TXQ), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, T), 0);
	assert_non_null(bh_vdriver_needs_reset(fx->d));
	assert_true(bh_vdriver_alive(fx->d));
	assert_int_equal(bh_vdriver_reset(fx->d, T), 0);
}

/* Control frames the controller should not send end the worker. */
static void test_bad_ctl(void **state)
{
	struct fx *fx = *state;
	Bh__VsockHostConn m = BH__VSOCK_HOST_CONN__INIT;
	int status = 0;

	/* MSG_VSOCK_HOST_CONN without its fd. */
	assert_int_equal(bh_vdriver_send_ctl(fx->d,
					     BH__MSG_TYPE__MSG_VSOCK_HOST_CONN,
					     &m.base, NULL, 0),
			 0);
	assert_int_equal(bh_vdriver_wait_exit(fx->d, T, &status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
}

static int teardown_exited(void **state)
{
	struct fx *fx = *state;

	bh_vdriver_stop(fx->d, T, NULL);
	free(fx);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_host_to_guest, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_host_to_guest_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_conn_inactive, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_guest_to_host, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unknown_rst, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_connect_lines, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_flow_control, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_host_not_reading, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_connection_limit,
						setup_limit, teardown),
		cmocka_unit_test_setup_teardown(test_reset_closes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_respawn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_paused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_hostile_chains, setup,
						teardown),
	};
	const struct CMUnitTest exit_tests[] = {
		cmocka_unit_test_setup_teardown(test_bad_ctl, setup,
						teardown_exited),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);

	return r + cmocka_run_group_tests(exit_tests, NULL, NULL);
}
