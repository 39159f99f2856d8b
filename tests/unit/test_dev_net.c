/* Unit tests for the virtio-net worker (bulkhead-dev-net) via bh_vdriver,
 * with a SOCK_SEQPACKET socketpair per queue pair standing in for the TAP
 * fds: the peer writes and reads the 12-byte vnet header with every frame,
 * as a TAP with IFF_VNET_HDR does. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/sockios.h>
#include <linux/virtio_net.h>

#include <bulkhead/spawn.h>

#include "vdriver.h"

#define QSIZE	  64
#define HDR	  12u
#define BIG	  (HDR + 65550u)
#define F(bit)	  (1ULL << (bit))
#define F_V1	  F(32)
#define F_CSUM	  F(0)
#define F_GCSUM	  F(1)
#define F_GOFF	  F(2)
#define F_MTU	  F(3)
#define F_MAC	  F(5)
#define F_GTSO4	  F(7)
#define F_GTSO6	  F(8)
#define F_GECN	  F(9)
#define F_GUFO	  F(10)
#define F_HTSO4	  F(11)
#define F_HTSO6	  F(12)
#define F_HECN	  F(13)
#define F_MRG	  F(15)
#define F_STATUS  F(16)
#define F_CTRL	  F(17)
#define F_CTRL_RX F(18)
#define F_MQ	  F(22)
#define F_MACADDR F(23)
#define F_IND	  F(28)

struct net_fx {
	struct bh_vdriver *d;
	unsigned int pairs;
	int peer[7];   /* the test's end of each pair's socketpair */
	int theirs[7]; /* the worker's end, kept for a respawn */
	Bh__NetSetup ns;
	uint64_t features;
	uint64_t rxbuf; /* 2 MiB of guest RAM for receive chains */
	uint64_t txbuf; /* 128 KiB for transmit chains */
	uint64_t ctl;	/* 4 KiB for control commands */
	uint8_t frame[BIG + 16];
	uint8_t got[BIG + 16];
};

static const uint8_t test_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static void start(struct net_fx *fx, unsigned int pairs,
		  const char *selftest_open)
{
	Bh__NetSetup *ns = &fx->ns;
	struct bh_vdriver_cfg cfg = { 0 };
	int *theirs = fx->theirs;

	bh__net_setup__init(ns);
	fx->pairs = pairs;
	for (unsigned int p = 0; p < pairs; p++) {
		int sv[2];

		assert_int_equal(
		    socketpair(AF_UNIX,
			       SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
			       sv),
		    0);
		fx->peer[p] = sv[0];
		theirs[p] = sv[1];
	}
	ns->mac.data = (uint8_t *)test_mac;
	ns->mac.len = 6;
	ns->mtu = 1500;
	ns->queue_pairs = pairs;
	ns->queue_size = 256;
	cfg.binary = BH_WORKER_DIR "/bulkhead-dev-net";
	cfg.type = BH__WORKER_SETUP__BACKEND_NET;
	cfg.backend = ns;
	cfg.backend_fds = theirs;
	cfg.n_backend_fds = pairs;
	cfg.ram_size = 64ULL << 20;
	cfg.id = "net0";
	cfg.selftest_open = selftest_open;
	cfg.inflight = true;
	if (selftest_open) {
		assert_int_equal(bh_vdriver_spawn(&cfg, &fx->d), 0);
		(void)bh_vdriver_setup(fx->d, BH_VDRIVER_TIMEOUT_MS);
	} else {
		assert_int_equal(bh_vdriver_start(&cfg, &fx->d), 0);
	}
}

static int setup_n(void **state, unsigned int pairs)
{
	struct net_fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	start(fx, pairs, NULL);
	assert_int_equal(bh_vdriver_alloc(fx->d, 2ULL << 20, 4096, &fx->rxbuf),
			 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, 128 << 10, 4096, &fx->txbuf),
			 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, 4096, 4096, &fx->ctl), 0);
	*state = fx;
	return 0;
}

static int setup1(void **state)
{
	return setup_n(state, 1);
}

static int setup2(void **state)
{
	return setup_n(state, 2);
}

static int teardown(void **state)
{
	struct net_fx *fx = *state;
	int status = 0, r;
	char why[128];

	r = bh_vdriver_stop(fx->d, BH_VDRIVER_TIMEOUT_MS, &status);
	if (r != 0)
		fprintf(stderr, "net worker: %s\n",
			bh_describe_status(status, why, sizeof(why)));
	for (unsigned int p = 0; p < fx->pairs; p++) {
		close(fx->peer[p]);
		close(fx->theirs[p]);
	}
	free(fx);
	assert_int_equal(r, 0);
	return 0;
}

static unsigned int ctrlq(const struct net_fx *fx)
{
	return 2 * ((fx->features & F_MQ) ? fx->pairs : 1);
}

static void activate(struct net_fx *fx, uint64_t features)
{
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);
	unsigned int nq = (features & F_MQ) ? 2 * fx->pairs : 2;

	/* Long chains go in indirect tables, as Linux sends them. */
	features |= F_IND;

	assert_int_equal(in->device_type, 1);
	assert_int_equal(in->num_queues, 2 * fx->pairs + 1);
	assert_int_equal(in->device_features & features, features);
	fx->features = features;
	for (unsigned int q = 0; q < nq; q++)
		assert_int_equal(bh_vdriver_queue_alloc(fx->d, q, QSIZE), 0);
	if (features & F_CTRL)
		assert_int_equal(
		    bh_vdriver_queue_alloc(fx->d, ctrlq(fx), QSIZE), 0);
	assert_int_equal(bh_vdriver_activate(fx->d, features), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

static uint64_t counter(struct net_fx *fx, const char *name)
{
	uint64_t v = 0;

	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_int_equal(bh_vdriver_counter(fx->d, name, &v), 0);
	return v;
}

static uint8_t *gpa(struct net_fx *fx, uint64_t a, uint64_t len)
{
	uint8_t *p = bh_vdriver_gpa(fx->d, a, len);

	assert_non_null(p);
	return p;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A header and len bytes of a recognisable frame in fx->frame. */
static void make_frame(struct net_fx *fx, const struct virtio_net_hdr_v1 *h,
		       size_t len, uint8_t seed)
{
	memset(fx->frame, 0, HDR);
	if (h)
		memcpy(fx->frame, h, sizeof(*h));
	for (size_t i = 0; i < len; i++)
		fx->frame[HDR + i] = (uint8_t)(seed + i * 7 + (i >> 8));
}

static void peer_send(struct net_fx *fx, unsigned int p, size_t len)
{
	assert_int_equal(send(fx->peer[p], fx->frame, len, 0), (ssize_t)len);
}

/* One message from the peer socket within the timeout; its length. */
static size_t peer_recv(struct net_fx *fx, unsigned int p)
{
	struct pollfd pf = { .fd = fx->peer[p], .events = POLLIN };
	ssize_t n;

	assert_int_equal(poll(&pf, 1, BH_VDRIVER_TIMEOUT_MS), 1);
	n = recv(fx->peer[p], fx->got, sizeof(fx->got), 0);
	assert_true(n > 0);
	return (size_t)n;
}

static void peer_quiet(struct net_fx *fx, unsigned int p)
{
	struct pollfd pf = { .fd = fx->peer[p], .events = POLLIN };

	assert_int_equal(poll(&pf, 1, 100), 0);
}

/* Guest transmit of fx->frame (len bytes with header) split into pieces of
 * at most piece bytes; waits for the chain to come back. */
static void guest_tx(struct net_fx *fx, unsigned int q, size_t len,
		     uint32_t piece)
{
	struct bh_vdriver_buf b[64];
	struct bh_vdriver_used u;
	unsigned int n = 0;

	memcpy(gpa(fx, fx->txbuf, len), fx->frame, len);
	for (size_t off = 0; off < len; off += piece) {
		uint32_t l = len - off < piece ? (uint32_t)(len - off) : piece;

		assert_true(n < 64);
		b[n++] = (struct bh_vdriver_buf){ fx->txbuf + off, l, false };
	}
	assert_int_equal(bh_vdriver_submit(fx->d, q, b, n,
					   n > 8 ? BH_VDRIVER_INDIRECT : 0,
					   NULL),
			 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, q, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	assert_int_equal(u.len, 0);
}

/* Posts n receive chains of len bytes each from fx->rxbuf + off. */
/* Where each posted receive chain is, by queue and head (test_mq). */
static uint64_t rx_head_off[16][QSIZE];

static void post_rx(struct net_fx *fx, unsigned int q, uint64_t off,
		    unsigned int n, uint32_t len)
{
	for (unsigned int i = 0; i < n; i++) {
		struct bh_vdriver_buf b = { fx->rxbuf + off + (uint64_t)i * len,
					    len, true };
		uint16_t head;

		assert_int_equal(bh_vdriver_add(fx->d, q, &b, 1, 0, &head), 0);
		rx_head_off[q][head % QSIZE] = off + (uint64_t)i * len;
	}
	assert_int_equal(bh_vdriver_kick(fx->d, q), 0);
}

static uint16_t num_buffers(const uint8_t *hdr)
{
	return (uint16_t)(hdr[10] | hdr[11] << 8);
}

/* Waits for a frame of len bytes (with header) spread over chains of
 * chain bytes posted contiguously from fx->rxbuf + off, and checks it
 * against fx->frame; returns the chains used. */
static unsigned int expect_rx(struct net_fx *fx, unsigned int q, uint64_t off,
			      uint32_t chain, size_t len)
{
	struct bh_vdriver_used u;
	unsigned int nbuf = (unsigned int)((len + chain - 1) / chain);
	size_t got = 0;
	uint8_t *base = gpa(fx, fx->rxbuf + off, (uint64_t)nbuf * chain);

	for (unsigned int i = 0; i < nbuf; i++) {
		assert_int_equal(
		    bh_vdriver_wait_used(fx->d, q, BH_VDRIVER_TIMEOUT_MS, &u),
		    1);
		assert_int_equal(u.len, len - got < chain ? len - got : chain);
		got += u.len;
	}
	assert_int_equal(num_buffers(base), nbuf);
	/* The header as the peer wrote it, then the frame. */
	assert_memory_equal(base, fx->frame, 10);
	assert_memory_equal(base + HDR, fx->frame + HDR, len - HDR);
	return nbuf;
}

/* A frame of len bytes (with header) in one chain of queue q, whichever
 * of the posted chains it is: TAP queues folded onto one receive queue
 * each hold a chain of their own, returned in the order frames came. */
static void expect_rx_one(struct net_fx *fx, unsigned int q, size_t len)
{
	struct bh_vdriver_used u;
	uint8_t *base;

	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, q, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	assert_int_equal(u.len, len);
	base = gpa(fx, fx->rxbuf + rx_head_off[q][u.id % QSIZE], len);
	assert_memory_equal(base, fx->frame, 10);
	assert_memory_equal(base + HDR, fx->frame + HDR, len - HDR);
}

static void expect_no_used(struct net_fx *fx, unsigned int q)
{
	struct bh_vdriver_used u;

	assert_int_equal(bh_vdriver_poll(fx->d, 150), 0);
	assert_int_equal(bh_vdriver_get_used(fx->d, q, &u), 0);
}

/* ---- data path ------------------------------------------------------------
 */

static void test_config(void **state)
{
	struct net_fx *fx = *state;
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);
	uint64_t want = F_V1 | F_CSUM | F_GCSUM | F_GOFF | F_MTU | F_MAC |
			F_GTSO4 | F_GTSO6 | F_GECN | F_HTSO4 | F_HTSO6 |
			F_HECN | F_MRG | F_STATUS | F_CTRL | F_CTRL_RX |
			F_MACADDR | F(28) | F(29);

	assert_int_equal(in->device_features, want);
	/* UFO is not offered, nor MQ with one pair. */
	assert_false(in->device_features & (F_GUFO | F_MQ));
	assert_int_equal(in->config_len, 12);
	assert_memory_equal(in->config, test_mac, 6);
	assert_int_equal(in->config[6] | in->config[7] << 8, 1); /* up */
	assert_int_equal(in->config[8] | in->config[9] << 8, 1);
	assert_int_equal(in->config[10] | in->config[11] << 8, 1500);
}

static void test_small_frames(void **state)
{
	struct net_fx *fx = *state;
	size_t n;

	activate(fx, F_V1);
	/* Guest to peer: header included, byte for byte. */
	make_frame(fx, NULL, 100, 1);
	guest_tx(fx, 1, HDR + 100, 4096);
	n = peer_recv(fx, 0);
	assert_int_equal(n, HDR + 100);
	assert_memory_equal(fx->got, fx->frame, n);
	peer_quiet(fx, 0);

	/* Peer to guest, one chain per frame without MRG_RXBUF. */
	post_rx(fx, 0, 0, 1, 1526);
	make_frame(fx, NULL, 1514, 2);
	peer_send(fx, 0, HDR + 1514);
	expect_rx(fx, 0, 0, 1526, HDR + 1514);
	assert_int_equal(counter(fx, "rx0_packets"), 1);
	assert_int_equal(counter(fx, "rx0_bytes"), 1514);
	assert_int_equal(counter(fx, "tx0_packets"), 1);
	assert_int_equal(counter(fx, "tx0_bytes"), 100);
	assert_int_equal(counter(fx, "tx0_drops"), 0);
}

/* Without MRG_RXBUF a frame takes one chain: the big ones the driver posts
 * with GUEST_TSO (read into directly), and a frame that does not fit a
 * small chain is dropped while the chain waits for the next. */
static void test_big_frames(void **state)
{
	struct net_fx *fx = *state;
	static const size_t sizes[] = { 9000, 60000 };
	struct bh_vdriver_buf b[17];

	activate(fx, F_V1 | F_GCSUM | F_GTSO4);
	for (unsigned int i = 0; i < 2; i++) {
		post_rx(fx, 0, 0, 1, BIG);
		make_frame(fx, NULL, sizes[i], (uint8_t)(3 + i));
		peer_send(fx, 0, HDR + sizes[i]);
		expect_rx(fx, 0, 0, BIG, HDR + sizes[i]);
		/* And out, in 4 KiB pieces. */
		guest_tx(fx, 1, HDR + sizes[i], 4096);
		assert_int_equal(peer_recv(fx, 0), HDR + sizes[i]);
		assert_memory_equal(fx->got, fx->frame, HDR + sizes[i]);
	}
	/* One big chain of 4 KiB buffers. */
	for (unsigned int i = 0; i < 17; i++)
		b[i] = (struct bh_vdriver_buf){ fx->rxbuf + i * 4096ULL,
						i < 16 ? 4096 : BIG - 16 * 4096,
						true };
	assert_int_equal(
	    bh_vdriver_submit(fx->d, 0, b, 17, BH_VDRIVER_INDIRECT, NULL), 0);
	make_frame(fx, NULL, 60000, 9);
	peer_send(fx, 0, HDR + 60000);
	expect_rx(fx, 0, 0, BIG, HDR + 60000);

	/* A 4 KiB chain: a 9000-byte frame is dropped, the next fits. */
	post_rx(fx, 0, 0, 1, 4096);
	make_frame(fx, NULL, 9000, 5);
	peer_send(fx, 0, HDR + 9000);
	expect_no_used(fx, 0);
	assert_int_equal(counter(fx, "rx0_drops"), 1);
	make_frame(fx, NULL, 1000, 6);
	peer_send(fx, 0, HDR + 1000);
	expect_rx(fx, 0, 0, 4096, HDR + 1000);
	assert_int_equal(counter(fx, "rx0_packets"), 4);
}

static void test_mrg(void **state)
{
	struct net_fx *fx = *state;

	activate(fx, F_V1 | F_MRG);
	post_rx(fx, 0, 0, 20, 4096);
	make_frame(fx, NULL, 9000, 11);
	peer_send(fx, 0, HDR + 9000);
	assert_int_equal(expect_rx(fx, 0, 0, 4096, HDR + 9000), 3);
	make_frame(fx, NULL, 60000, 12);
	peer_send(fx, 0, HDR + 60000);
	assert_int_equal(expect_rx(fx, 0, 3 * 4096, 4096, HDR + 60000), 15);

	/* Two chains left for a frame that needs three: it waits for the
	 * third, then comes whole. */
	make_frame(fx, NULL, 9000, 13);
	peer_send(fx, 0, HDR + 9000);
	expect_no_used(fx, 0);
	post_rx(fx, 0, 20 * 4096, 1, 4096);
	assert_int_equal(expect_rx(fx, 0, 18 * 4096, 4096, HDR + 9000), 3);
	assert_int_equal(counter(fx, "rx0_packets"), 3);
	assert_int_equal(counter(fx, "rx0_bytes"), 78000);
	assert_int_equal(counter(fx, "rx0_drops"), 0);
}

/* Offload headers pass unchanged both ways for each offload negotiated;
 * one asking for an offload that was not is dropped. */
static void test_headers(void **state)
{
	struct net_fx *fx = *state;
	static const struct {
		uint8_t gso;
		uint64_t needs;
	} cases[] = {
		{ VIRTIO_NET_HDR_GSO_NONE, F_CSUM },
		{ VIRTIO_NET_HDR_GSO_TCPV4, F_HTSO4 },
		{ VIRTIO_NET_HDR_GSO_TCPV6, F_HTSO6 },
		{ VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, F_HECN },
	};
	struct virtio_net_hdr_v1 h = { 0 };

	activate(fx, F_V1 | F_CSUM | F_GCSUM | F_GTSO4 | F_GTSO6 | F_GECN |
			 F_HTSO4 | F_HTSO6 | F_HECN | F_MRG);
	for (unsigned int i = 0; i < 4; i++) {
		h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h.gso_type = cases[i].gso;
		h.hdr_len = htole16(54);
		h.gso_size = htole16(cases[i].gso ? 1448 : 0);
		h.csum_start = htole16(34);
		h.csum_offset = htole16(16);
		make_frame(fx, &h, 3000, (uint8_t)i);
		guest_tx(fx, 1, HDR + 3000, 4096);
		assert_int_equal(peer_recv(fx, 0), HDR + 3000);
		assert_memory_equal(fx->got, fx->frame, HDR + 3000);

		/* The same header from the TAP reaches the guest. */
		post_rx(fx, 0, 0, 1, 4096);
		make_frame(fx, &h, 3000, (uint8_t)(i + 100));
		peer_send(fx, 0, HDR + 3000);
		expect_rx(fx, 0, 0, 4096, HDR + 3000);
	}
	assert_int_equal(counter(fx, "tx0_drops"), 0);

	/* A checksum position past the frame's end. */
	h = (struct virtio_net_hdr_v1){ 0 };
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.csum_start = htole16(2990);
	h.csum_offset = htole16(16);
	make_frame(fx, &h, 3000, 1);
	guest_tx(fx, 1, HDR + 3000, 4096);
	peer_quiet(fx, 0);
	assert_int_equal(counter(fx, "tx0_drops"), 1);
}

static void test_headers_not_negotiated(void **state)
{
	struct net_fx *fx = *state;
	struct virtio_net_hdr_v1 h = { 0 };

	activate(fx, F_V1 | F_CSUM);
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	h.gso_size = htole16(1448);
	h.csum_start = htole16(34);
	h.csum_offset = htole16(16);
	make_frame(fx, &h, 3000, 1);
	guest_tx(fx, 1, HDR + 3000, 4096);
	peer_quiet(fx, 0);
	assert_int_equal(counter(fx, "tx0_drops"), 1);
	assert_int_equal(counter(fx, "tx0_packets"), 0);
}

static unsigned long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	/* Fields after the command's closing parenthesis: state is 3,
	 * utime 14 and stime 15. */
	p = strrchr(buf, ')');
	assert_non_null(p);
	assert_int_equal(sscanf(p + 2,
				"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
				"%*u %lu %lu",
				&ut, &st),
			 2);
	return ut + st;
}

/* The TAP refuses more (EAGAIN): the worker waits for it to be writable,
 * without spinning, and then sends the rest in order. */
static void test_tx_backpressure(void **state)
{
	struct net_fx *fx = *state;
	struct bh_vdriver_used u;
	unsigned int used = 0;
	unsigned long t0, t1;

	activate(fx, F_V1);
	for (unsigned int i = 0; i < 40; i++) {
		struct bh_vdriver_buf b = { fx->rxbuf + i * 16384ULL,
					    HDR + 16000, false };
		uint8_t *p = gpa(fx, b.gpa, b.len);

		memset(p, 0, HDR);
		memset(p + HDR, (int)i, 16000);
		assert_int_equal(bh_vdriver_add(fx->d, 1, &b, 1, 0, NULL), 0);
	}
	assert_int_equal(bh_vdriver_kick(fx->d, 1), 0);
	assert_int_equal(bh_vdriver_poll(fx->d, 200), 0);
	while (bh_vdriver_get_used(fx->d, 1, &u) == 1)
		used++;
	assert_true(used < 40);
	t0 = cpu_ticks(bh_vdriver_pid(fx->d));
	assert_int_equal(bh_vdriver_poll(fx->d, 500), 0);
	t1 = cpu_ticks(bh_vdriver_pid(fx->d));
	fprintf(stderr,
		"[ outcome ] %u of 40 sent before the peer read; "
		"%lu ticks of CPU while it waited\n",
		used, t1 - t0);
	assert_true(t1 - t0 <= 10);
	for (unsigned int i = 0; i < 40; i++) {
		assert_int_equal(peer_recv(fx, 0), HDR + 16000);
		assert_int_equal(fx->got[HDR], i);
		assert_int_equal(fx->got[HDR + 15999], i);
	}
	while (used < 40) {
		assert_int_equal(
		    bh_vdriver_wait_used(fx->d, 1, BH_VDRIVER_TIMEOUT_MS, &u),
		    1);
		used++;
	}
	assert_int_equal(counter(fx, "tx0_packets"), 40);
	assert_int_equal(counter(fx, "tx0_drops"), 0);
}

/* ---- control queue ------------------------------------------------------- */

/* Sends a control command (class, cmd, data) and returns the ack byte. */
static uint8_t ctrl(struct net_fx *fx, uint8_t cls, uint8_t cmd,
		    const void *data, uint32_t len)
{
	uint8_t *p = gpa(fx, fx->ctl, 4096);
	struct bh_vdriver_buf b[3];
	struct bh_vdriver_used u;
	unsigned int n = 0;

	p[0] = cls;
	p[1] = cmd;
	if (len)
		memcpy(p + 16, data, len);
	p[1024] = 0xee;
	b[n++] = (struct bh_vdriver_buf){ fx->ctl, 2, false };
	if (len)
		b[n++] = (struct bh_vdriver_buf){ fx->ctl + 16, len, false };
	b[n++] = (struct bh_vdriver_buf){ fx->ctl + 1024, 1, true };
	assert_int_equal(bh_vdriver_submit(fx->d, ctrlq(fx), b, n, 0, NULL), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, ctrlq(fx), BH_VDRIVER_TIMEOUT_MS, &u),
	    1);
	assert_int_equal(u.len, 1);
	return p[1024];
}

static uint8_t set_pairs(struct net_fx *fx, uint16_t n)
{
	uint8_t le[2] = { (uint8_t)n, (uint8_t)(n >> 8) };

	return ctrl(fx, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, le,
		    2);
}

static void test_mq(void **state)
{
	struct net_fx *fx = *state;

	activate(fx, F_V1 | F_MQ | F_CTRL);
	assert_int_equal(bh_vdriver_info(fx->d)->config[8], 2);
	post_rx(fx, 0, 0, 4, 2048);
	post_rx(fx, 2, 64 * 2048, 4, 2048);
	/* One pair until the driver sets more: a frame on the TAP's second
	 * queue (where the TAP hashed its flow) still reaches the guest,
	 * through rx0, and rx1 is left alone. */
	make_frame(fx, NULL, 500, 1);
	peer_send(fx, 1, HDR + 500);
	expect_rx_one(fx, 0, HDR + 500);
	expect_no_used(fx, 2);

	assert_int_equal(set_pairs(fx, 0), VIRTIO_NET_ERR);
	assert_int_equal(set_pairs(fx, 3), VIRTIO_NET_ERR);
	assert_int_equal(set_pairs(fx, 2), VIRTIO_NET_OK);
	/* Now each TAP queue fills its own receive queue. */
	make_frame(fx, NULL, 550, 5);
	peer_send(fx, 1, HDR + 550);
	expect_rx_one(fx, 2, HDR + 550);
	expect_no_used(fx, 0);
	make_frame(fx, NULL, 600, 2);
	peer_send(fx, 0, HDR + 600);
	expect_rx_one(fx, 0, HDR + 600);
	expect_no_used(fx, 2);
	/* tx1 goes to pair 1's socket. */
	make_frame(fx, NULL, 700, 3);
	guest_tx(fx, 3, HDR + 700, 4096);
	assert_int_equal(peer_recv(fx, 1), HDR + 700);
	peer_quiet(fx, 0);

	/* Back to one pair: the second TAP queue folds onto rx0 again. */
	assert_int_equal(set_pairs(fx, 1), VIRTIO_NET_OK);
	make_frame(fx, NULL, 800, 4);
	peer_send(fx, 1, HDR + 800);
	expect_rx_one(fx, 0, HDR + 800);
	expect_no_used(fx, 2);
	/* Counters per queue. */
	assert_int_equal(counter(fx, "rx0_packets"), 3);
	assert_int_equal(counter(fx, "rx1_packets"), 1);
	assert_int_equal(counter(fx, "rx1_bytes"), 550);
	assert_int_equal(counter(fx, "tx1_packets"), 1);
	assert_int_equal(counter(fx, "tx1_bytes"), 700);
	assert_int_equal(counter(fx, "tx0_packets"), 0);
}

/* Pair 0's peer floods while the guest keeps refilling rx0: pair 1 still
 * gets its frames through (round-robin with a budget per queue). */
static void test_fairness(void **state)
{
	struct net_fx *fx = *state;
	uint8_t le[2] = { 2, 0 };
	unsigned int got1 = 0;
	double end;

	activate(fx, F_V1 | F_MQ | F_CTRL | F_MRG);
	assert_int_equal(ctrl(fx, VIRTIO_NET_CTRL_MQ,
			      VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, le, 2),
			 VIRTIO_NET_OK);
	post_rx(fx, 0, 0, QSIZE, 2048);
	post_rx(fx, 2, QSIZE * 2048, 8, 2048);
	make_frame(fx, NULL, 1400, 1);
	end = now_s() + 1.0;
	while (now_s() < end) {
		struct bh_vdriver_used u;

		/* Flood pair 0, recycle its chains at once. */
		while (send(fx->peer[0], fx->frame, HDR + 1400, 0) > 0)
			;
		while (bh_vdriver_get_used(fx->d, 0, &u) == 1) {
			struct bh_vdriver_buf b = {
				fx->rxbuf + (u.id % QSIZE) * 2048ULL, 2048, true
			};

			(void)bh_vdriver_add(fx->d, 0, &b, 1, 0, NULL);
		}
		(void)bh_vdriver_kick(fx->d, 0);
		if (got1 < 8 &&
		    send(fx->peer[1], fx->frame, HDR + 100, 0) > 0) {
			assert_int_equal(
			    bh_vdriver_wait_used(fx->d, 2,
						 BH_VDRIVER_TIMEOUT_MS, &u),
			    1);
			got1++;
		}
	}
	assert_int_equal(got1, 8);
	assert_true(counter(fx, "rx0_packets") > 8);
}

static void test_ctrl(void **state)
{
	struct net_fx *fx = *state;
	static const uint8_t new_mac[6] = { 0x52, 0x54, 0, 0xab, 0xcd, 0xef };
	uint8_t one = 1, table[20] = { 0 };
	uint64_t off;

	activate(fx, F_V1 | F_CTRL | F_CTRL_RX | F_MACADDR | F_GOFF | F_GCSUM |
			 F_GTSO4);
	assert_int_equal(
	    ctrl(fx, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &one, 1),
	    VIRTIO_NET_OK);
	assert_int_equal(
	    ctrl(fx, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &one, 1),
	    VIRTIO_NET_OK);
	/* Not offered (CTRL_RX_EXTRA) and malformed ones. */
	assert_int_equal(
	    ctrl(fx, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST, &one, 1),
	    VIRTIO_NET_ERR);
	assert_int_equal(
	    ctrl(fx, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, NULL, 0),
	    VIRTIO_NET_ERR);
	/* MAC tables: one unicast entry and no multicast; then an entry
	 * count larger than the data. */
	table[0] = 1;
	memcpy(table + 4, new_mac, 6);
	assert_int_equal(ctrl(fx, VIRTIO_NET_CTRL_MAC,
			      VIRTIO_NET_CTRL_MAC_TABLE_SET, table, 14),
			 VIRTIO_NET_OK);
	table[0] = 0xff;
	table[3] = 0xff;
	assert_int_equal(ctrl(fx, VIRTIO_NET_CTRL_MAC,
			      VIRTIO_NET_CTRL_MAC_TABLE_SET, table, 14),
			 VIRTIO_NET_ERR);
	/* ADDR_SET changes the config space. */
	assert_int_equal(ctrl(fx, VIRTIO_NET_CTRL_MAC,
			      VIRTIO_NET_CTRL_MAC_ADDR_SET, new_mac, 6),
			 VIRTIO_NET_OK);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_memory_equal(bh_vdriver_info(fx->d)->config, new_mac, 6);
	/* Guest offloads: only negotiated ones. */
	off = htole64(F_GCSUM | F_GTSO4);
	assert_int_equal(ctrl(fx, VIRTIO_NET_CTRL_GUEST_OFFLOADS,
			      VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &off, 8),
			 VIRTIO_NET_OK);
	off = htole64(F_GCSUM | F_GTSO6);
	assert_int_equal(ctrl(fx, VIRTIO_NET_CTRL_GUEST_OFFLOADS,
			      VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &off, 8),
			 VIRTIO_NET_ERR);
	/* MQ not negotiated, VLAN and unknown classes. */
	assert_int_equal(set_pairs(fx, 1), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(fx, VIRTIO_NET_CTRL_VLAN, 0, &one, 1),
			 VIRTIO_NET_ERR);
	assert_int_equal(ctrl(fx, 200, 0, NULL, 0), VIRTIO_NET_ERR);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

/* A control command whose chain has no writable byte for the ack, or only
 * a class byte: NEEDS_RESET or ERR, and the worker lives on. */
static void test_ctrl_short(void **state)
{
	struct net_fx *fx = *state;
	struct bh_vdriver_buf b[2];
	struct bh_vdriver_used u;
	uint8_t *p;

	activate(fx, F_V1 | F_CTRL);
	p = gpa(fx, fx->ctl, 4096);
	p[0] = VIRTIO_NET_CTRL_RX;
	p[1024] = 0xee;
	/* One readable byte only: ERR. */
	b[0] = (struct bh_vdriver_buf){ fx->ctl, 1, false };
	b[1] = (struct bh_vdriver_buf){ fx->ctl + 1024, 1, true };
	assert_int_equal(bh_vdriver_submit(fx->d, 2, b, 2, 0, NULL), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, 2, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	assert_int_equal(p[1024], VIRTIO_NET_ERR);
	/* No ack byte. */
	b[0] = (struct bh_vdriver_buf){ fx->ctl, 2, false };
	assert_int_equal(bh_vdriver_submit(fx->d, 2, b, 1, 0, NULL), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_non_null(bh_vdriver_needs_reset(fx->d));
	assert_true(bh_vdriver_alive(fx->d));
	assert_int_equal(bh_vdriver_reset(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	activate(fx, F_V1 | F_CTRL);
	assert_int_equal(ctrl(fx, 200, 0, NULL, 0), VIRTIO_NET_ERR);
}

/* ---- hostile queues ------------------------------------------------------ */

static void test_hostile_tx(void **state)
{
	struct net_fx *fx = *state;
	struct bh_vdriver_buf b[3];
	struct bh_vdriver_used u;

	activate(fx, F_V1);
	make_frame(fx, NULL, 200, 1);
	memcpy(gpa(fx, fx->txbuf, HDR + 200), fx->frame, HDR + 200);
	/* Shorter than the header. */
	b[0] = (struct bh_vdriver_buf){ fx->txbuf, 8, false };
	assert_int_equal(bh_vdriver_submit(fx->d, 1, b, 1, 0, NULL), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, 1, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	assert_int_equal(u.len, 0);
	/* With a writable buffer. */
	b[0] = (struct bh_vdriver_buf){ fx->txbuf, HDR + 200, false };
	b[1] = (struct bh_vdriver_buf){ fx->txbuf + 4096, 100, true };
	assert_int_equal(bh_vdriver_submit(fx->d, 1, b, 2, 0, NULL), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, 1, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	assert_int_equal(u.len, 0);
	/* Over the largest frame. */
	b[0] = (struct bh_vdriver_buf){ fx->txbuf, BIG + 1, false };
	assert_int_equal(bh_vdriver_submit(fx->d, 1, b, 1, 0, NULL), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, 1, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	peer_quiet(fx, 0);
	assert_int_equal(counter(fx, "tx0_drops"), 3);
	/* Zero-length buffers around the frame are skipped; the queue still
	 * works. */
	b[0] = (struct bh_vdriver_buf){ fx->txbuf, 0, false };
	b[1] = (struct bh_vdriver_buf){ fx->txbuf, HDR + 200, false };
	b[2] = (struct bh_vdriver_buf){ fx->txbuf + 8192, 0, false };
	assert_int_equal(bh_vdriver_submit(fx->d, 1, b, 3, 0, NULL), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, 1, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	assert_int_equal(peer_recv(fx, 0), HDR + 200);
	assert_memory_equal(fx->got, fx->frame, HDR + 200);
	assert_null(bh_vdriver_needs_reset(fx->d));
	assert_int_equal(counter(fx, "tx0_packets"), 1);
}

static void test_hostile_rx(void **state)
{
	struct net_fx *fx = *state;
	struct bh_vdriver_buf b[2];

	activate(fx, F_V1 | F_MRG);
	/* A zero-length buffer first, then a real one: fine. */
	b[0] = (struct bh_vdriver_buf){ fx->rxbuf, 0, true };
	b[1] = (struct bh_vdriver_buf){ fx->rxbuf, 2048, true };
	assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 2, 0, NULL), 0);
	make_frame(fx, NULL, 300, 1);
	peer_send(fx, 0, HDR + 300);
	expect_rx(fx, 0, 0, 2048, HDR + 300);
	/* A receive chain that is read-only: NEEDS_RESET, no crash. */
	b[0] = (struct bh_vdriver_buf){ fx->rxbuf, 2048, false };
	assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 1, 0, NULL), 0);
	peer_send(fx, 0, HDR + 300);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_non_null(bh_vdriver_needs_reset(fx->d));
	assert_int_equal(bh_vdriver_reset(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	/* Too short for the header. */
	activate(fx, F_V1 | F_MRG);
	b[0] = (struct bh_vdriver_buf){ fx->rxbuf, 6, true };
	assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 1, 0, NULL), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_non_null(bh_vdriver_needs_reset(fx->d));
	assert_int_equal(bh_vdriver_reset(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	/* After the reset the frame still waiting is delivered. */
	activate(fx, F_V1 | F_MRG);
	post_rx(fx, 0, 0, 1, 2048);
	expect_rx(fx, 0, 0, 2048, HDR + 300);
}

/* A descriptor that chains to itself on the transmit queue. */
static void test_hostile_loop(void **state)
{
	struct net_fx *fx = *state;

	activate(fx, F_V1);
	assert_int_equal(bh_vdriver_write_desc(fx->d, 1, 0, fx->txbuf, 64,
					       BH_VRING_DESC_F_NEXT, 0),
			 0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 1, 0), 0);
	assert_int_equal(bh_vdriver_kick(fx->d, 1), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_non_null(bh_vdriver_needs_reset(fx->d));
	assert_true(bh_vdriver_alive(fx->d));
	assert_int_equal(bh_vdriver_reset(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	activate(fx, F_V1);
	make_frame(fx, NULL, 100, 1);
	guest_tx(fx, 1, HDR + 100, 4096);
	assert_int_equal(peer_recv(fx, 0), HDR + 100);
}

static long vm_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	assert_true(kib > 0);
	return kib;
}

/* The peer floods while the guest never refills its receive queue: the
 * worker answers, transmits, and keeps its memory. */
static void test_flood_no_refill(void **state)
{
	struct net_fx *fx = *state;
	long before, after;
	unsigned long sent = 0, t0, t1;
	double end;

	activate(fx, F_V1 | F_MRG);
	post_rx(fx, 0, 0, 8, 2048);
	before = vm_rss_kib(bh_vdriver_pid(fx->d));
	t0 = cpu_ticks(bh_vdriver_pid(fx->d));
	make_frame(fx, NULL, 1400, 1);
	end = now_s() + 1.5;
	while (now_s() < end) {
		ssize_t n = send(fx->peer[0], fx->frame, HDR + 1400, 0);

		if (n < 0) {
			struct pollfd pf = { .fd = fx->peer[0],
					     .events = POLLOUT };

			assert_int_equal(errno, EAGAIN);
			(void)poll(&pf, 1, 10);
			/* The worker answers all the while. */
			assert_int_equal(
			    bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
			continue;
		}
		sent++;
	}
	/* Eight frames reached the guest, the rest wait in the socket. */
	assert_true(sent > 8);
	/* Not polled without buffers: no spinning on a readable TAP. */
	t1 = cpu_ticks(bh_vdriver_pid(fx->d));
	fprintf(stderr, "[ outcome ] %lu ticks of CPU during the flood\n",
		t1 - t0);
	assert_true(t1 - t0 < 40);
	assert_int_equal(counter(fx, "rx0_packets"), 8);
	make_frame(fx, NULL, 100, 2);
	guest_tx(fx, 1, HDR + 100, 4096);
	assert_int_equal(peer_recv(fx, 0), HDR + 100);
	after = vm_rss_kib(bh_vdriver_pid(fx->d));
	fprintf(stderr,
		"[ outcome ] VmRSS %ld kB before the flood, %ld after, "
		"%lu frames sent\n",
		before, after, sent);
	assert_true(after < before + 4096);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

/* A worker that dies holding a receive chain: its replacement takes the
 * chain up again and fills it. */
static void test_restart(void **state)
{
	struct net_fx *fx = *state;

	activate(fx, F_V1 | F_MRG);
	post_rx(fx, 0, 0, 2, 2048);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_int_equal(
	    bh_vdriver_respawn(fx->d, false, BH_VDRIVER_TIMEOUT_MS), 0);
	make_frame(fx, NULL, 300, 1);
	peer_send(fx, 0, HDR + 300);
	expect_rx(fx, 0, 0, 2048, HDR + 300);
	make_frame(fx, NULL, 100, 2);
	guest_tx(fx, 1, HDR + 100, 4096);
	assert_int_equal(peer_recv(fx, 0), HDR + 100);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

/* The queue pairs the driver set outlive the worker: after a restart each
 * TAP queue still fills its own receive queue. */
static void test_restart_mq(void **state)
{
	struct net_fx *fx = *state;

	activate(fx, F_V1 | F_MQ | F_CTRL);
	assert_int_equal(set_pairs(fx, 2), VIRTIO_NET_OK);
	post_rx(fx, 0, 0, 4, 2048);
	post_rx(fx, 2, 64 * 2048, 4, 2048);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_int_equal(
	    bh_vdriver_respawn(fx->d, false, BH_VDRIVER_TIMEOUT_MS), 0);
	make_frame(fx, NULL, 400, 1);
	peer_send(fx, 1, HDR + 400);
	expect_rx_one(fx, 2, HDR + 400);
	expect_no_used(fx, 0);
	make_frame(fx, NULL, 300, 2);
	peer_send(fx, 0, HDR + 300);
	expect_rx_one(fx, 0, HDR + 300);
	make_frame(fx, NULL, 200, 3);
	guest_tx(fx, 3, HDR + 200, 4096);
	assert_int_equal(peer_recv(fx, 1), HDR + 200);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

/* A replacement worker for a failed device: transmit chains come back
 * empty and reach no TAP, receive chains stay with the driver. */
static void test_failed_device(void **state)
{
	struct net_fx *fx = *state;
	struct bh_vdriver_used u;

	activate(fx, F_V1);
	post_rx(fx, 0, 0, 2, 2048);
	assert_int_equal(bh_vdriver_respawn(fx->d, true, BH_VDRIVER_TIMEOUT_MS),
			 0);
	make_frame(fx, NULL, 100, 1);
	peer_send(fx, 0, HDR + 100);
	memcpy(gpa(fx, fx->txbuf, HDR + 100), fx->frame, HDR + 100);
	{
		struct bh_vdriver_buf b = { fx->txbuf, HDR + 100, false };

		assert_int_equal(bh_vdriver_submit(fx->d, 1, &b, 1, 0, NULL),
				 0);
	}
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, 1, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	assert_int_equal(u.len, 0);
	peer_quiet(fx, 0);
	expect_no_used(fx, 0);
	assert_true(bh_vdriver_alive(fx->d));
}

/* ---- sandbox ------------------------------------------------------------- */

static void test_selftest_open(void **state)
{
	struct net_fx fx = { 0 };
	int status = 0;
	char why[128];

	start(&fx, 1, "/etc/hostname");
	assert_int_equal(
	    bh_vdriver_wait_exit(fx.d, BH_VDRIVER_TIMEOUT_MS, &status), 0);
	fprintf(stderr, "[ outcome ] net --selftest-open /etc/hostname: %s\n",
		bh_describe_status(status, why, sizeof(why)));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
	bh_vdriver_stop(fx.d, 1000, NULL);
	close(fx.peer[0]);
	close(fx.theirs[0]);
}

static void test_seccomp_status(void **state)
{
	struct net_fx *fx = *state;
	char path[64], line[256];
	int mode = -1;
	FILE *f;

	activate(fx, F_V1 | F_GCSUM | F_GTSO4);
	snprintf(path, sizeof(path), "/proc/%d/status",
		 (int)bh_vdriver_pid(fx->d));
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Seccomp: %d", &mode) == 1)
			break;
	fclose(f);
	assert_int_equal(mode, 2);
	/* TUNSETOFFLOAD was tried (and refused by the socket) without the
	 * filter killing the worker. */
	assert_true(bh_vdriver_alive(fx->d));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_small_frames, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_big_frames, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_mrg, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_headers, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_headers_not_negotiated,
						setup1, teardown),
		cmocka_unit_test_setup_teardown(test_tx_backpressure, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_mq, setup2, teardown),
		cmocka_unit_test_setup_teardown(test_fairness, setup2,
						teardown),
		cmocka_unit_test_setup_teardown(test_ctrl, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_ctrl_short, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_hostile_tx, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_hostile_rx, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_hostile_loop, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_flood_no_refill, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_restart_mq, setup2,
						teardown),
		cmocka_unit_test_setup_teardown(test_restart, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_failed_device, setup1,
						teardown),
		cmocka_unit_test(test_selftest_open),
		cmocka_unit_test_setup_teardown(test_seccomp_status, setup1,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
