/* Every device worker type's saved state (its in-flight records memfd, see
 * bulkhead/inflight.h) survives save, restore and save again unchanged, one
 * shared test body over blk, net, console, rng, vsock and pmem driven
 * through bh_vdriver; and a restored worker refuses records that cannot be
 * its queues' with NEEDS_RESET. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_net.h>

#include <bulkhead/inflight.h>
#include <bulkhead/le.h>
#include <bulkhead/spawn.h>

#include "vdriver.h"

#include "dev_backends.h"

#define T BH_VDRIVER_TIMEOUT_MS

#define F_V1	(1ULL << 32)
#define F_IND	(1ULL << 28)
#define F_CTRL	(1ULL << 17)
#define F_MQ	(1ULL << 22)
#define BUFSIZE (256u << 10) /* guest RAM for the tests' buffers */

#define BLK_BLOCK 4096u
#define NET_HDR	  12u
#define VSK_HDR	  44u
#define VSK_RXBUF (4096u + VSK_HDR)
#define VSK_NEV	  4 /* event buffers kept posted, as a guest's driver does */

struct fx;

/* One worker type: how to start it and what a little traffic, a chain held
 * across the snapshot and a request after it look like. */
struct type {
	const char *name;
	/* Fills the configuration (backend, fds) and opens what it needs. */
	void (*config)(struct fx *fx, struct bh_vdriver_cfg *cfg);
	/* Sets up the queues (all of size QSIZE) and activates. */
	void (*activate)(struct fx *fx);
	/* Some traffic before the snapshot. */
	void (*traffic)(struct fx *fx);
	/* While paused: one chain left in flight (hold()). */
	void (*hold)(struct fx *fx);
	/* After the restore and the resume: the held chain and one request
	 * more are served. */
	void (*serve)(struct fx *fx);
	/* Type-specific checks of the first save (may be NULL). */
	void (*check_saved)(struct fx *fx, const uint8_t *rec);
	unsigned int nq;     /* queues activated, 0..nq-1 */
	unsigned int busy_q; /* a queue the traffic went through */
};

struct fx {
	const struct type *t;
	struct bh_vdriver *d;
	/* The worker's backends, its fds kept open for the restored worker. */
	struct dev_backend be;
	uint64_t buf; /* BUFSIZE bytes of guest RAM */
	unsigned int held_q;
	uint16_t held;
};

static uint8_t *ram(struct fx *fx, uint64_t off, uint64_t len)
{
	uint8_t *p = bh_vdriver_gpa(fx->d, fx->buf + off, len);

	assert_true(off + len <= BUFSIZE);
	assert_non_null(p);
	return p;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void activate_with(struct fx *fx, uint64_t features)
{
	for (unsigned int q = 0; q < fx->t->nq; q++)
		assert_int_equal(bh_vdriver_queue_alloc(fx->d, q, QSIZE), 0);
	assert_int_equal(bh_vdriver_activate(fx->d, features), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, T), 0);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

/* Waits for the next used entry of queue q, saying why if none comes. */
static struct bh_vdriver_used used(struct fx *fx, unsigned int q)
{
	struct bh_vdriver_used u = { 0 };
	int r = bh_vdriver_wait_used(fx->d, q, T, &u);

	if (r != 1)
		fail_msg("%s: queue %u: no used entry (%s), needs reset: %s",
			 fx->t->name, q, strerror(-r),
			 bh_vdriver_needs_reset(fx->d)
			     ? bh_vdriver_needs_reset(fx->d)
			     : "no");
	return u;
}

/*
 * Leaves a chain of queue q in flight across the snapshot, as a worker
 * leaves one it holds by design (a receive buffer waiting for input) or one
 * a worker that died had taken: the driver makes it available (no kick)
 * and its record says taken. It must be the only chain of q not yet taken,
 * so that the ring position stays "returned + in flight".
 */
static void hold(struct fx *fx, unsigned int q, const struct bh_vdriver_buf *b,
		 unsigned int n)
{
	struct bh_inflight *inf = bh_vdriver_inflight(fx->d, q);

	assert_non_null(inf);
	assert_int_equal(bh_vdriver_add(fx->d, q, b, n, 0, &fx->held), 0);
	inf->desc[fx->held].counter = ++inf->counter;
	inf->desc[fx->held].inflight = 1;
	fx->held_q = q;
}

/* ---- blk ------------------------------------------------------------------
 */

/* Request k's header, status and data in the buffer area. */
#define BLK_HDR(k)    (64ULL * (k))
#define BLK_STATUS(k) (4096ULL + (k))
#define BLK_DATA(k)   (8192ULL + (uint64_t)BLK_BLOCK * (k))

static void blk_config(struct fx *fx, struct bh_vdriver_cfg *cfg)
{
	dev_blk_config(&fx->be, "state", cfg);
}

static void blk_activate(struct fx *fx)
{
	/* Everything the device offers, EVENT_IDX included. */
	activate_with(fx, bh_vdriver_info(fx->d)->device_features);
}

/* Puts a read of one block at sector into slot k's buffers (no kick). */
static void blk_read_add(struct fx *fx, unsigned int k, uint64_t sector,
			 bool held)
{
	struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_IN,
				       .sector = sector };
	struct bh_vdriver_buf b[3] = {
		{ fx->buf + BLK_HDR(k), 16, false },
		{ fx->buf + BLK_DATA(k), BLK_BLOCK, true },
		{ fx->buf + BLK_STATUS(k), 1, true },
	};

	memcpy(ram(fx, BLK_HDR(k), 16), &h, 16);
	memset(ram(fx, BLK_DATA(k), BLK_BLOCK), 0, BLK_BLOCK);
	*ram(fx, BLK_STATUS(k), 1) = 0xee;
	if (held)
		hold(fx, 0, b, 3);
	else
		assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 3, 0, NULL), 0);
}

/* Slot k holds the image's block at sector, status OK. */
static void blk_check(struct fx *fx, unsigned int k, uint64_t sector)
{
	const uint8_t *p = ram(fx, BLK_DATA(k), BLK_BLOCK);

	assert_int_equal(*ram(fx, BLK_STATUS(k), 1), VIRTIO_BLK_S_OK);
	for (uint32_t i = 0; i < BLK_BLOCK; i++)
		if (p[i] != blk_pattern(sector * 512 + i))
			fail_msg("blk: byte %u of sector %llu read wrong", i,
				 (unsigned long long)sector);
}

static void blk_traffic(struct fx *fx)
{
	blk_read_add(fx, 0, 8, false);
	assert_int_equal(used(fx, 0).len, BLK_BLOCK + 1);
	blk_check(fx, 0, 8);
}

static void blk_hold(struct fx *fx)
{
	blk_read_add(fx, 1, 16, true);
}

static void blk_serve(struct fx *fx)
{
	struct bh_vdriver_used u = used(fx, 0);

	assert_int_equal(u.id, fx->held);
	assert_int_equal(u.len, BLK_BLOCK + 1);
	blk_check(fx, 1, 16);
	blk_read_add(fx, 2, 24, false);
	assert_int_equal(used(fx, 0).len, BLK_BLOCK + 1);
	blk_check(fx, 2, 24);
}

/* ---- rng ------------------------------------------------------------------
 */

static void rng_config(struct fx *fx, struct bh_vdriver_cfg *cfg)
{
	dev_rng_config(&fx->be, cfg);
}

static void rng_activate(struct fx *fx)
{
	activate_with(fx, F_V1 | F_IND);
}

static void rng_buf(struct fx *fx, unsigned int k, struct bh_vdriver_buf *b)
{
	*b = (struct bh_vdriver_buf){ fx->buf + 64ULL * k, 64, true };
	memset(ram(fx, 64ULL * k, 64), 0, 64);
}

static void rng_read(struct fx *fx, unsigned int k)
{
	struct bh_vdriver_buf b;
	struct bh_vdriver_used u;

	rng_buf(fx, k, &b);
	assert_int_equal(bh_vdriver_submit(fx->d, 0, &b, 1, 0, NULL), 0);
	u = used(fx, 0);
	assert_int_equal(u.len, 64);
	assert_false(all_zero(ram(fx, 64ULL * k, 64), 64));
}

static void rng_traffic(struct fx *fx)
{
	rng_read(fx, 0);
}

static void rng_hold(struct fx *fx)
{
	struct bh_vdriver_buf b;

	rng_buf(fx, 1, &b);
	hold(fx, 0, &b, 1);
}

static void rng_serve(struct fx *fx)
{
	struct bh_vdriver_used u = used(fx, 0);

	assert_int_equal(u.id, fx->held);
	assert_int_equal(u.len, 64);
	assert_false(all_zero(ram(fx, 64, 64), 64));
	rng_read(fx, 2);
}

/* ---- pmem -----------------------------------------------------------------
 */

static void pmem_config(struct fx *fx, struct bh_vdriver_cfg *cfg)
{
	dev_pmem_config(&fx->be, "state", cfg);
}

static void pmem_activate(struct fx *fx)
{
	activate_with(fx, F_V1);
}

/* A flush request in slot k: type at 64k, answer at 4096 + 64k. */
static void pmem_flush_bufs(struct fx *fx, unsigned int k,
			    struct bh_vdriver_buf *b)
{
	uint32_t flush = htole32(0);

	memcpy(ram(fx, 64ULL * k, 4), &flush, 4);
	memset(ram(fx, 4096 + 64ULL * k, 4), 0xa5, 4);
	b[0] = (struct bh_vdriver_buf){ fx->buf + 64ULL * k, 4, false };
	b[1] = (struct bh_vdriver_buf){ fx->buf + 4096 + 64ULL * k, 4, true };
}

static void pmem_check(struct fx *fx, unsigned int k, struct bh_vdriver_used u)
{
	uint32_t status;

	assert_int_equal(u.len, 4);
	memcpy(&status, ram(fx, 4096 + 64ULL * k, 4), 4);
	assert_int_equal(le32toh(status), 0);
}

static void pmem_flush(struct fx *fx, unsigned int k)
{
	struct bh_vdriver_buf b[2];

	pmem_flush_bufs(fx, k, b);
	assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 2, 0, NULL), 0);
	pmem_check(fx, k, used(fx, 0));
}

static void pmem_traffic(struct fx *fx)
{
	pmem_flush(fx, 0);
}

static void pmem_hold(struct fx *fx)
{
	struct bh_vdriver_buf b[2];

	pmem_flush_bufs(fx, 1, b);
	hold(fx, 0, b, 2);
}

static void pmem_serve(struct fx *fx)
{
	struct bh_vdriver_used u = used(fx, 0);

	assert_int_equal(u.id, fx->held);
	pmem_check(fx, 1, u);
	pmem_flush(fx, 2);
}

/* ---- console --------------------------------------------------------------
 */

#define CON_RXQ 0
#define CON_TXQ 1

static void con_config(struct fx *fx, struct bh_vdriver_cfg *cfg)
{
	dev_con_config(&fx->be, cfg);
}

static void con_activate(struct fx *fx)
{
	activate_with(fx, F_V1);
}

static void con_tx(struct fx *fx, const char *msg)
{
	size_t len = strlen(msg);
	struct bh_vdriver_buf b = { fx->buf, (uint32_t)len, false };
	char got[64];

	memcpy(ram(fx, 0, len), msg, len);
	assert_int_equal(bh_vdriver_submit(fx->d, CON_TXQ, &b, 1, 0, NULL), 0);
	assert_int_equal(used(fx, CON_TXQ).len, 0);
	dev_read_exact(fx->be.ours[0], got, len, T);
	assert_memory_equal(got, msg, len);
}

static void con_traffic(struct fx *fx)
{
	con_tx(fx, "before the snapshot\n");
}

/* A receive buffer the worker holds until input comes. */
static void con_hold(struct fx *fx)
{
	struct bh_vdriver_buf b = { fx->buf + 4096, 64, true };

	memset(ram(fx, 4096, 64), 0, 64);
	hold(fx, CON_RXQ, &b, 1);
}

static void con_serve(struct fx *fx)
{
	static const char in[] = "typed after";
	struct bh_vdriver_used u;

	assert_int_equal(write(fx->be.ours[1], in, sizeof(in) - 1),
			 sizeof(in) - 1);
	u = used(fx, CON_RXQ);
	assert_int_equal(u.id, fx->held);
	assert_int_equal(u.len, sizeof(in) - 1);
	assert_memory_equal(ram(fx, 4096, sizeof(in) - 1), in, sizeof(in) - 1);
	con_tx(fx, "after the restore\n");
}

/* ---- net ------------------------------------------------------------------
 */

/* Queues rx0, tx0, rx1, tx1, then the control queue. */
#define NET_CTRLQ 4
/* Where the worker keeps the pairs in use in its own state. */
#define NET_STATE_ACTIVE 0

static void net_config(struct fx *fx, struct bh_vdriver_cfg *cfg)
{
	dev_net_config(&fx->be, cfg);
}

static void net_activate(struct fx *fx)
{
	activate_with(fx, F_V1 | F_MQ | F_CTRL | F_IND);
}

/* A frame of len bytes after a zero vnet header, its bytes from seed. */
static void net_frame(uint8_t *p, size_t len, uint8_t seed)
{
	memset(p, 0, NET_HDR);
	for (size_t i = 0; i < len; i++)
		p[NET_HDR + i] = (uint8_t)(seed + i * 7);
}

/* Transmits a frame on transmit queue q; pair p's peer receives it. */
static void net_tx(struct fx *fx, unsigned int q, unsigned int p, uint8_t seed)
{
	uint8_t want[NET_HDR + 200], got[sizeof(want) + 16];
	struct bh_vdriver_buf b = { fx->buf, sizeof(want), false };
	struct pollfd pf = { .fd = fx->be.ours[p], .events = POLLIN };

	net_frame(want, 200, seed);
	memcpy(ram(fx, 0, sizeof(want)), want, sizeof(want));
	assert_int_equal(bh_vdriver_submit(fx->d, q, &b, 1, 0, NULL), 0);
	assert_int_equal(used(fx, q).len, 0);
	assert_int_equal(poll(&pf, 1, T), 1);
	assert_int_equal(recv(fx->be.ours[p], got, sizeof(got), 0),
			 sizeof(want));
	assert_memory_equal(got, want, sizeof(want));
}

static void net_traffic(struct fx *fx)
{
	uint8_t *cmd = ram(fx, 8192, 1024);
	struct bh_vdriver_buf b[3] = {
		{ fx->buf + 8192, 2, false },
		{ fx->buf + 8192 + 16, 2, false },
		{ fx->buf + 8192 + 512, 1, true },
	};

	/* VQ_PAIRS_SET 2: the device's lasting state, which a restored
	 * worker must find again. */
	cmd[0] = VIRTIO_NET_CTRL_MQ;
	cmd[1] = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET;
	bh_put_le16(cmd + 16, NET_PAIRS);
	cmd[512] = 0xee;
	assert_int_equal(bh_vdriver_submit(fx->d, NET_CTRLQ, b, 3, 0, NULL), 0);
	assert_int_equal(used(fx, NET_CTRLQ).len, 1);
	assert_int_equal(cmd[512], VIRTIO_NET_OK);
	net_tx(fx, 1, 0, 1);
}

/* A receive buffer on rx1, which only a worker that knows both pairs are
 * in use fills from the second TAP queue. */
static void net_hold(struct fx *fx)
{
	struct bh_vdriver_buf b = { fx->buf + 16384, 2048, true };

	memset(ram(fx, 16384, 2048), 0, 2048);
	hold(fx, 2, &b, 1);
}

static void net_serve(struct fx *fx)
{
	uint8_t frame[NET_HDR + 300];
	struct bh_vdriver_used u;

	net_frame(frame, 300, 9);
	assert_int_equal(send(fx->be.ours[1], frame, sizeof(frame), 0),
			 sizeof(frame));
	u = used(fx, 2);
	assert_int_equal(u.id, fx->held);
	assert_int_equal(u.len, sizeof(frame));
	assert_memory_equal(ram(fx, 16384 + NET_HDR, 300), frame + NET_HDR,
			    300);
	/* tx1 is served only while both pairs are in use. */
	net_tx(fx, 3, 1, 2);
}

static void net_check_saved(struct fx *fx, const uint8_t *rec)
{
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);
	const uint8_t *dev =
	    rec + in->num_queues * BH_INFLIGHT_BYTES(in->max_queue_size);

	assert_int_equal(bh_get_le32(dev + NET_STATE_ACTIVE), NET_PAIRS);
}

/* ---- vsock ----------------------------------------------------------------
 */

#define VSK_RXQ 0
#define VSK_TXQ 1
#define VSK_EVQ 2
/* Guest RAM: tx packet at 0, rx buffers from 8192, events from 65536. */
#define VSK_RX(k) (8192ULL + (uint64_t)VSK_RXBUF * (k))
#define VSK_EV(k) (65536ULL + 8ULL * (k))

static void vsock_config(struct fx *fx, struct bh_vdriver_cfg *cfg)
{
	dev_vsock_config(&fx->be, cfg);
}

static void vsock_activate(struct fx *fx)
{
	activate_with(fx, F_V1);
}

static struct bh_vdriver_buf vsock_rx_buf(struct fx *fx, unsigned int k)
{
	memset(ram(fx, VSK_RX(k), VSK_RXBUF), 0, VSK_RXBUF);
	return (struct bh_vdriver_buf){ fx->buf + VSK_RX(k), VSK_RXBUF, true };
}

/* A data packet from the guest to a host port nobody connected: the
 * worker returns it at once and owes the guest an RST. */
static void vsock_tx_stray(struct fx *fx, uint32_t src_port)
{
	uint8_t *p = ram(fx, 0, VSK_HDR + 5);
	struct bh_vdriver_buf b = { fx->buf, VSK_HDR + 5, false };

	memset(p, 0, VSK_HDR);
	bh_put_le64(p, GUEST_CID);
	bh_put_le64(p + 8, 2);
	bh_put_le32(p + 16, src_port);
	bh_put_le32(p + 20, 9100);
	bh_put_le32(p + 24, 5);
	bh_put_le16(p + 28, 1); /* stream */
	bh_put_le16(p + 30, 5); /* RW */
	bh_put_le32(p + 36, 65536);
	memcpy(p + VSK_HDR, "stray", 5);
	assert_int_equal(bh_vdriver_submit(fx->d, VSK_TXQ, &b, 1, 0, NULL), 0);
	assert_int_equal(used(fx, VSK_TXQ).len, 0);
}

/* The RST for vsock_tx_stray(src_port) in rx buffer k. */
static void vsock_check_rst(struct fx *fx, unsigned int k,
			    struct bh_vdriver_used u, uint32_t src_port)
{
	const uint8_t *p = ram(fx, VSK_RX(k), VSK_HDR);

	assert_int_equal(u.len, VSK_HDR);
	assert_int_equal(bh_get_le64(p + 8), GUEST_CID);
	assert_int_equal(bh_get_le32(p + 16), 9100);
	assert_int_equal(bh_get_le32(p + 20), src_port);
	assert_int_equal(bh_get_le16(p + 30), 3); /* RST */
}

static void vsock_traffic(struct fx *fx)
{
	struct bh_vdriver_buf b = vsock_rx_buf(fx, 0);

	/* Event buffers stay posted, as the guest's driver keeps them. */
	for (unsigned int k = 0; k < VSK_NEV; k++) {
		struct bh_vdriver_buf e = { fx->buf + VSK_EV(k), 8, true };

		memset(ram(fx, VSK_EV(k), 8), 0xee, 8);
		assert_int_equal(bh_vdriver_add(fx->d, VSK_EVQ, &e, 1, 0, NULL),
				 0);
	}
	assert_int_equal(bh_vdriver_kick(fx->d, VSK_EVQ), 0);
	assert_int_equal(bh_vdriver_submit(fx->d, VSK_RXQ, &b, 1, 0, NULL), 0);
	vsock_tx_stray(fx, 45000);
	vsock_check_rst(fx, 0, used(fx, VSK_RXQ), 45000);
}

/* A receive buffer the worker holds until it has a packet for the guest
 * (the chain a vsock device keeps in flight by design). */
static void vsock_hold(struct fx *fx)
{
	struct bh_vdriver_buf b = vsock_rx_buf(fx, 1);

	hold(fx, VSK_RXQ, &b, 1);
}

static void vsock_serve(struct fx *fx)
{
	struct bh_vdriver_used u;

	/* The restored worker knows none of the guest's connections:
	 * TRANSPORT_RESET (id 0) in the first event buffer, now that the VM
	 * runs again. */
	u = used(fx, VSK_EVQ);
	assert_int_equal(u.len, 4);
	assert_int_equal(bh_get_le32(ram(fx, VSK_EV(0), 4)), 0);
	assert_int_equal(*ram(fx, VSK_EV(0) + 4, 1), 0xee);
	vsock_tx_stray(fx, 45001);
	u = used(fx, VSK_RXQ);
	assert_int_equal(u.id, fx->held);
	vsock_check_rst(fx, 1, u, 45001);
}

/* ---- the types ------------------------------------------------------------
 */

static const struct type types[] = {
	{ "blk", blk_config, blk_activate, blk_traffic, blk_hold, blk_serve,
	  NULL, 1, 0 },
	{ "net", net_config, net_activate, net_traffic, net_hold, net_serve,
	  net_check_saved, 2 * NET_PAIRS + 1, NET_CTRLQ },
	{ "console", con_config, con_activate, con_traffic, con_hold, con_serve,
	  NULL, 2, CON_TXQ },
	{ "rng", rng_config, rng_activate, rng_traffic, rng_hold, rng_serve,
	  NULL, 1, 0 },
	{ "vsock", vsock_config, vsock_activate, vsock_traffic, vsock_hold,
	  vsock_serve, NULL, 3, VSK_TXQ },
	{ "pmem", pmem_config, pmem_activate, pmem_traffic, pmem_hold,
	  pmem_serve, NULL, 1, 0 },
};

enum { BLK, NET, CONSOLE, RNG, VSOCK, PMEM };

/* ---- the shared body ------------------------------------------------------
 */

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct bh_vdriver_cfg cfg = { 0 };

	assert_non_null(fx);
	fx->t = *state;
	fx->be.file = fx->be.ours[0] = fx->be.ours[1] = -1;
	fx->be.theirs[0] = fx->be.theirs[1] = -1;
	fx->t->config(fx, &cfg);
	cfg.backend_fds = fx->be.theirs;
	cfg.n_backend_fds = fx->be.ntheirs;
	cfg.ram_size = 16ULL << 20;
	cfg.id = fx->t->name;
	cfg.inflight = true;
	cfg.log_level = getenv("BH_TEST_LOG");
	assert_int_equal(bh_vdriver_start(&cfg, &fx->d), 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, BUFSIZE, 4096, &fx->buf), 0);
	fx->t->activate(fx);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	int status = 0, r;
	char why[128];

	r = bh_vdriver_stop(fx->d, T, &status);
	if (r != 0)
		fprintf(stderr, "%s worker: %s\n", fx->t->name,
			bh_describe_status(status, why, sizeof(why)));
	for (unsigned int i = 0; i < 2; i++) {
		if (fx->be.theirs[i] >= 0 && fx->be.theirs[i] != fx->be.file)
			close(fx->be.theirs[i]);
		if (fx->be.ours[i] >= 0)
			close(fx->be.ours[i]);
	}
	if (fx->be.file >= 0)
		close(fx->be.file);
	if (fx->be.path[0])
		unlink(fx->be.path);
	free(fx);
	assert_int_equal(r, 0);
	return 0;
}

/* What a snapshot saves of the device: a copy of its whole records memfd. */
static uint8_t *save(struct fx *fx, size_t *len)
{
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);
	void *p = bh_vdriver_inflight_region(fx->d, len);
	uint8_t *copy;

	assert_non_null(p);
	assert_int_equal(*len,
			 BH_INFLIGHT_TOTAL(in->num_queues, in->max_queue_size));
	copy = malloc(*len);
	assert_non_null(copy);
	memcpy(copy, p, *len);
	return copy;
}

/* Queue q's records in a saved copy. */
static const struct bh_inflight *rec_queue(struct fx *fx, const uint8_t *rec,
					   unsigned int q)
{
	return (const void *)(rec +
			      q * BH_INFLIGHT_BYTES(
				      bh_vdriver_info(fx->d)->max_queue_size));
}

/* The first save holds what the test did: a guard against comparing two
 * copies of nothing. */
static void check_saved(struct fx *fx, const uint8_t *rec)
{
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);
	const struct bh_inflight *h;

	for (unsigned int q = 0; q < in->num_queues; q++) {
		h = rec_queue(fx, rec, q);
		if (q >= fx->t->nq) {
			assert_int_equal(h->magic, 0);
			continue;
		}
		assert_int_equal(h->magic, BH_INFLIGHT_MAGIC);
		assert_int_equal(h->size, QSIZE);
	}
	assert_true(rec_queue(fx, rec, fx->t->busy_q)->used_idx >= 1);
	h = rec_queue(fx, rec, fx->held_q);
	assert_int_equal(h->desc[fx->held].inflight, 1);
	assert_int_equal(h->desc[fx->held].counter, h->counter);
	if (fx->t->check_saved)
		fx->t->check_saved(fx, rec);
}

/* Names the field of the records at byte off. */
static void field_name(struct fx *fx, size_t off, char *buf, size_t len)
{
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);
	size_t qb = BH_INFLIGHT_BYTES(in->max_queue_size);
	size_t q = off / qb, o = off % qb;

	if (q >= in->num_queues) {
		snprintf(buf, len, "device state byte %zu",
			 off - in->num_queues * qb);
	} else if (o >= BH_INFLIGHT_HDR) {
		size_t i = (o - BH_INFLIGHT_HDR) / 16;
		size_t b = (o - BH_INFLIGHT_HDR) % 16;

		snprintf(buf, len, "queue %zu desc[%zu].%s", q, i,
			 b == 0	 ? "inflight"
			 : b < 8 ? "pad"
				 : "counter");
	} else {
		snprintf(buf, len, "queue %zu %s", q,
			 o < 4	  ? "magic"
			 : o < 6  ? "size"
			 : o < 8  ? "used_idx"
			 : o < 10 ? "last_head"
			 : o < 16 ? "pad0"
			 : o < 24 ? "counter"
				  : "pad1");
	}
}

/* The two saves byte for byte; every field that differs is named. */
static void compare(struct fx *fx, const uint8_t *a, const uint8_t *b,
		    size_t len)
{
	char name[64], last[64] = "";
	unsigned int nfields = 0;

	if (memcmp(a, b, len) == 0)
		return;
	for (size_t i = 0; i < len; i++) {
		if (a[i] == b[i])
			continue;
		field_name(fx, i, name, sizeof(name));
		if (strcmp(name, last) == 0)
			continue;
		snprintf(last, sizeof(last), "%s", name);
		fprintf(stderr,
			"%s: %s differs (byte %zu: 0x%02x, then 0x%02x)\n",
			fx->t->name, name, i, a[i], b[i]);
		nfields++;
	}
	fail_msg("%s: the second save differs from the first in %u fields",
		 fx->t->name, nfields);
}

/*
 * Save, restore into a new worker, save again: the same bytes. The
 * restored worker is paused before it sees its queues, as in a restore
 * (docs/ARCHITECTURE.md, "Snapshots"), so it may take no chain, return
 * none and change no record until the resume; then it serves the chain
 * held across the snapshot and one request more. (bh_vdriver_respawn,
 * the replacement of a worker that died while the VM ran, activates it
 * unpaused: it would take up the held chain at once and rightly change the
 * records before the second save.)
 */
static void test_round_trip(void **state)
{
	struct fx *fx = *state;
	uint8_t *first, *second;
	size_t len, len2;

	fx->t->traffic(fx);
	assert_int_equal(bh_vdriver_pause(fx->d, T), 0);
	fx->t->hold(fx);
	first = save(fx, &len);
	check_saved(fx, first);

	assert_int_equal(bh_vdriver_restore(fx->d, first, len, T), 0);
	/* Answered after the activation: the worker has taken up its
	 * records by now. */
	assert_int_equal(bh_vdriver_pause(fx->d, T), 0);
	assert_null(bh_vdriver_needs_reset(fx->d));
	second = save(fx, &len2);
	assert_int_equal(len2, len);
	compare(fx, first, second, len);
	for (unsigned int q = 0; q < fx->t->nq; q++) {
		struct bh_vdriver_used u;

		if (bh_vdriver_get_used(fx->d, q, &u) != 0)
			fail_msg("%s: queue %u: head %u returned while the "
				 "restored VM was paused",
				 fx->t->name, q, u.id);
	}

	assert_int_equal(bh_vdriver_resume(fx->d), 0);
	fx->t->serve(fx);
	assert_null(bh_vdriver_needs_reset(fx->d));
	assert_true(bh_vdriver_alive(fx->d));
	free(first);
	free(second);
}

/*
 * Saved records that cannot be the queue's (one byte of queue 0's size
 * changed, as a compromised worker or a damaged snapshot could leave
 * them): the restored worker reads them as guest input, puts the device in
 * NEEDS_RESET naming them, and lives on; a reset makes it usable again.
 */
static void test_bad_records(void **state)
{
	struct fx *fx = *state;
	struct bh_inflight *inf;
	const char *why;
	uint8_t *rec;
	size_t len;

	fx->t->traffic(fx);
	assert_int_equal(bh_vdriver_pause(fx->d, T), 0);
	rec = save(fx, &len);
	inf = (struct bh_inflight *)rec;
	assert_int_equal(inf->size, QSIZE);
	((uint8_t *)&inf->size)[0] ^= 0x01;
	assert_int_equal(bh_vdriver_restore(fx->d, rec, len, T), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, T), 0);
	why = bh_vdriver_needs_reset(fx->d);
	if (!why || !strstr(why, "in-flight records"))
		fail_msg("%s: records with queue size %u for a queue of %u: "
			 "needs reset: %s",
			 fx->t->name, inf->size, QSIZE, why ? why : "no");
	assert_true(bh_vdriver_alive(fx->d));
	assert_int_equal(bh_vdriver_reset(fx->d, T), 0);
	assert_null(bh_vdriver_needs_reset(fx->d));
	assert_int_equal(bh_vdriver_sync(fx->d, T), 0);
	free(rec);
}

#define BOTH(i, name)                                                     \
	{ name ": save, restore, save", test_round_trip, setup, teardown, \
	  (void *)&types[i] },                                            \
	{                                                                 \
		name ": bad records", test_bad_records, setup, teardown,  \
		    (void *)&types[i]                                     \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(BLK, "blk"),	  BOTH(NET, "net"),
		BOTH(CONSOLE, "console"), BOTH(RNG, "rng"),
		BOTH(VSOCK, "vsock"),	  BOTH(PMEM, "pmem"),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
