/* Every device worker type logs each page of guest RAM it writes in the dirty
 * bitmap (MSG_DEVICE_DIRTY_LOG): one shared test body over blk, net,
 * console, rng, vsock and pmem driven through bh_vdriver compares guest RAM
 * before and after traffic page by page, and every page the worker changed
 * must have its bit. A missing bit is a page a migration would not send
 * again: the guest's memory silently wrong on the destination. */
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

#include <bulkhead/le.h>
#include <bulkhead/spawn.h>

#include "vdriver.h"

#include "dev_backends.h"

#define T	BH_VDRIVER_TIMEOUT_MS
#define PAGE	4096ULL
#define RAM	(16ULL << 20)
#define NPAGES	(RAM / PAGE)
#define BUFSIZE (256u << 10) /* guest RAM for the tests' buffers */
#define P(n)	(PAGE * (n)) /* page n of the buffer area */

#define F_V1   (1ULL << 32)
#define F_IND  (1ULL << 28)
#define F_CTRL (1ULL << 17)
#define F_MQ   (1ULL << 22)
#define F_MRG  (1ULL << 15)

#define BLK_LEN	  8192u /* a read covers two pages */
#define NET_HDR	  12u
#define VSK_HDR	  44u
#define VSK_RXBUF (4096u + VSK_HDR)

struct fx;

/* One worker type: how to start it, and a round of traffic in two parts:
 * what the driver writes beforehand (buffers it fills, request headers),
 * then the requests, whose writes into guest RAM are the worker's. */
struct type {
	const char *name;
	void (*config)(struct fx *fx, struct bh_vdriver_cfg *cfg);
	uint64_t (*features)(struct fx *fx);
	/* Fills what round r's requests need. Before the RAM snapshot. */
	void (*prepare)(struct fx *fx, unsigned int r);
	/* Round r's requests, each answered and checked; expect() names the
	 * pages the worker must have changed. Writes nothing but rings. */
	void (*traffic)(struct fx *fx, unsigned int r);
	unsigned int nq;
};

struct fx {
	const struct type *t;
	struct bh_vdriver *d;
	struct dev_backend be;
	uint64_t buf;	      /* BUFSIZE bytes of guest RAM */
	uint64_t used_gpa[8]; /* each queue's used ring, a page alone */
	bool drv[NPAGES];     /* pages the driver writes during traffic */
	bool exp[NPAGES];     /* pages the worker must change */
	uint8_t *before;      /* guest RAM at the snapshot */
};

static uint8_t *ram(struct fx *fx, uint64_t off, uint64_t len)
{
	uint8_t *p = bh_vdriver_gpa(fx->d, fx->buf + off, len);

	assert_true(off + len <= BUFSIZE);
	assert_non_null(p);
	return p;
}

/* The worker must change [off, off + len) of the buffer area. */
static void expect(struct fx *fx, uint64_t off, uint64_t len)
{
	uint64_t gpa = fx->buf + off;

	for (uint64_t pg = gpa / PAGE; pg <= (gpa + len - 1) / PAGE; pg++)
		fx->exp[pg] = true;
}

/* Waits for the next used entry of queue q, whose used ring the worker
 * then has changed. */
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
	fx->exp[fx->used_gpa[q] / PAGE] = true;
	return u;
}

/* ---- blk ------------------------------------------------------------------
 */

/* Request k: header at P(0) + 64k, status at P(1) + k, data at P(4 + 4k). */
static void blk_config(struct fx *fx, struct bh_vdriver_cfg *cfg)
{
	dev_blk_config(&fx->be, "dirty", cfg);
}

static uint64_t blk_features(struct fx *fx)
{
	/* Everything the device offers, EVENT_IDX included. */
	return bh_vdriver_info(fx->d)->device_features;
}

static void blk_prepare(struct fx *fx, unsigned int r)
{
	for (unsigned int k = 2 * r; k < 2 * r + 2; k++) {
		struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_IN,
					       .sector = 16 * (k + 1) };

		memcpy(ram(fx, 64ULL * k, 16), &h, 16);
		*ram(fx, P(1) + k, 1) = 0xee;
	}
}

static void blk_traffic(struct fx *fx, unsigned int r)
{
	for (unsigned int k = 2 * r; k < 2 * r + 2; k++) {
		struct bh_vdriver_buf b[3] = {
			{ fx->buf + 64ULL * k, 16, false },
			{ fx->buf + P(4 + 4 * k), BLK_LEN, true },
			{ fx->buf + P(1) + k, 1, true },
		};

		assert_int_equal(bh_vdriver_add(fx->d, 0, b, 3, 0, NULL), 0);
		expect(fx, P(4 + 4 * k), BLK_LEN);
		expect(fx, P(1) + k, 1);
	}
	assert_int_equal(bh_vdriver_kick(fx->d, 0), 0);
	for (unsigned int i = 0; i < 2; i++)
		assert_int_equal(used(fx, 0).len, BLK_LEN + 1);
	for (unsigned int k = 2 * r; k < 2 * r + 2; k++) {
		const uint8_t *p = ram(fx, P(4 + 4 * k), BLK_LEN);

		assert_int_equal(*ram(fx, P(1) + k, 1), VIRTIO_BLK_S_OK);
		for (uint32_t i = 0; i < BLK_LEN; i++)
			if (p[i] != blk_pattern(16 * (k + 1) * 512 + i))
				fail_msg("blk: byte %u of request %u wrong", i,
					 k);
	}
}

/* ---- rng ------------------------------------------------------------------
 */

static void rng_config(struct fx *fx, struct bh_vdriver_cfg *cfg)
{
	dev_rng_config(&fx->be, cfg);
}

static uint64_t rng_features(struct fx *fx)
{
	return F_V1 | F_IND;
}

static void rng_prepare(struct fx *fx, unsigned int r)
{
	/* The buffers are zero since the allocation. */
	(void)fx;
	(void)r;
}

/* One buffer in a page, one across a page boundary. */
static void rng_traffic(struct fx *fx, unsigned int r)
{
	uint64_t off[2] = { P(8 + 4 * r), P(10 + 4 * r) - 32 };

	for (unsigned int i = 0; i < 2; i++) {
		struct bh_vdriver_buf b = { fx->buf + off[i], 64, true };

		assert_int_equal(bh_vdriver_submit(fx->d, 0, &b, 1, 0, NULL),
				 0);
		assert_int_equal(used(fx, 0).len, 64);
		expect(fx, off[i], 64);
	}
}

/* ---- pmem -----------------------------------------------------------------
 */

static void pmem_config(struct fx *fx, struct bh_vdriver_cfg *cfg)
{
	dev_pmem_config(&fx->be, "dirty", cfg);
}

static uint64_t pmem_features(struct fx *fx)
{
	return F_V1;
}

/* A flush: type at P(0) + 64r, status at P(1 + r). */
static void pmem_prepare(struct fx *fx, unsigned int r)
{
	uint32_t flush = htole32(0);

	memcpy(ram(fx, 64ULL * r, 4), &flush, 4);
	memset(ram(fx, P(1 + r), 4), 0xa5, 4);
}

static void pmem_traffic(struct fx *fx, unsigned int r)
{
	struct bh_vdriver_buf b[2] = {
		{ fx->buf + 64ULL * r, 4, false },
		{ fx->buf + P(1 + r), 4, true },
	};
	uint32_t status;

	assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 2, 0, NULL), 0);
	assert_int_equal(used(fx, 0).len, 4);
	memcpy(&status, ram(fx, P(1 + r), 4), 4);
	assert_int_equal(le32toh(status), 0);
	expect(fx, P(1 + r), 4);
}

/* ---- console --------------------------------------------------------------
 */

#define CON_RXQ 0
#define CON_TXQ 1

static void con_config(struct fx *fx, struct bh_vdriver_cfg *cfg)
{
	dev_con_config(&fx->be, cfg);
}

static uint64_t con_features(struct fx *fx)
{
	return F_V1;
}

static const char con_out[] = "output of the guest\n";

/* Output at P(0) + 64r; the input buffer is P(4 + r), zero. */
static void con_prepare(struct fx *fx, unsigned int r)
{
	memcpy(ram(fx, 64ULL * r, sizeof(con_out) - 1), con_out,
	       sizeof(con_out) - 1);
}

static void con_traffic(struct fx *fx, unsigned int r)
{
	static const char in[] = "typed in";
	struct bh_vdriver_buf rx = { fx->buf + P(4 + r), 64, true };
	struct bh_vdriver_buf tx = { fx->buf + 64ULL * r, sizeof(con_out) - 1,
				     false };
	char got[sizeof(con_out)];

	assert_int_equal(bh_vdriver_submit(fx->d, CON_RXQ, &rx, 1, 0, NULL), 0);
	assert_int_equal(write(fx->be.ours[1], in, sizeof(in) - 1),
			 sizeof(in) - 1);
	assert_int_equal(used(fx, CON_RXQ).len, sizeof(in) - 1);
	assert_memory_equal(ram(fx, P(4 + r), sizeof(in) - 1), in,
			    sizeof(in) - 1);
	expect(fx, P(4 + r), sizeof(in) - 1);
	assert_int_equal(bh_vdriver_submit(fx->d, CON_TXQ, &tx, 1, 0, NULL), 0);
	assert_int_equal(used(fx, CON_TXQ).len, 0);
	dev_read_exact(fx->be.ours[0], got, sizeof(con_out) - 1, T);
	assert_memory_equal(got, con_out, sizeof(con_out) - 1);
}

/* ---- net ------------------------------------------------------------------
 */

/* Queues rx0, tx0, rx1, tx1, then the control queue. */
#define NET_CTRLQ 4
/* A frame over three receive chains of NET_RXB bytes (MRG_RXBUF). */
#define NET_RXB	  512u
#define NET_FRAME 1400u

static void net_config(struct fx *fx, struct bh_vdriver_cfg *cfg)
{
	dev_net_config(&fx->be, cfg);
}

static uint64_t net_features(struct fx *fx)
{
	return F_V1 | F_MQ | F_CTRL | F_MRG;
}

static void net_frame(uint8_t *p, size_t len, uint8_t seed)
{
	memset(p, 0, NET_HDR);
	for (size_t i = 0; i < len; i++)
		p[NET_HDR + i] = (uint8_t)(seed + i * 7);
}

/* Control command at P(0), its ack at P(1) + r (0xee until answered), the
 * frame to send at P(0) + 1024, receive chains at P(4 + 4r) .. P(6 + 4r). */
static void net_prepare(struct fx *fx, unsigned int r)
{
	uint8_t *cmd = ram(fx, 0, 64);

	cmd[0] = VIRTIO_NET_CTRL_MQ;
	cmd[1] = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET;
	bh_put_le16(cmd + 16, 1);
	*ram(fx, P(1) + r, 1) = 0xee;
	net_frame(ram(fx, 1024, NET_HDR + 200), 200, (uint8_t)(1 + r));
}

static void net_traffic(struct fx *fx, unsigned int r)
{
	struct bh_vdriver_buf c[3] = {
		{ fx->buf, 2, false },
		{ fx->buf + 16, 2, false },
		{ fx->buf + P(1) + r, 1, true },
	};
	struct bh_vdriver_buf tx = { fx->buf + 1024, NET_HDR + 200, false };
	uint8_t frame[NET_HDR + NET_FRAME], got[NET_HDR + 256];
	struct pollfd pf = { .fd = fx->be.ours[0], .events = POLLIN };
	uint32_t total = 0;

	/* The control queue's ack. */
	assert_int_equal(bh_vdriver_submit(fx->d, NET_CTRLQ, c, 3, 0, NULL), 0);
	assert_int_equal(used(fx, NET_CTRLQ).len, 1);
	assert_int_equal(*ram(fx, P(1) + r, 1), VIRTIO_NET_OK);
	expect(fx, P(1) + r, 1);

	/* A frame out: only the used ring is written. */
	assert_int_equal(bh_vdriver_submit(fx->d, 1, &tx, 1, 0, NULL), 0);
	assert_int_equal(used(fx, 1).len, 0);
	assert_int_equal(poll(&pf, 1, T), 1);
	assert_int_equal(recv(fx->be.ours[0], got, sizeof(got), 0),
			 NET_HDR + 200);

	/* A frame in over three chains; num_buffers goes into the first
	 * after the last is filled. */
	for (unsigned int i = 0; i < 3; i++) {
		struct bh_vdriver_buf b = { fx->buf + P(4 + 4 * r + i), NET_RXB,
					    true };

		assert_int_equal(bh_vdriver_add(fx->d, 0, &b, 1, 0, NULL), 0);
	}
	assert_int_equal(bh_vdriver_kick(fx->d, 0), 0);
	net_frame(frame, NET_FRAME, (uint8_t)(9 + r));
	assert_int_equal(send(fx->be.ours[0], frame, sizeof(frame), 0),
			 sizeof(frame));
	for (unsigned int i = 0; i < 3; i++)
		total += used(fx, 0).len;
	assert_int_equal(total, sizeof(frame));
	assert_int_equal(bh_get_le16(ram(fx, P(4 + 4 * r) + 10, 2)), 3);
	assert_memory_equal(ram(fx, P(5 + 4 * r), NET_RXB), frame + NET_RXB,
			    NET_RXB);
	for (unsigned int i = 0; i < 3; i++)
		expect(fx, P(4 + 4 * r + i), 1);
}

/* ---- vsock ----------------------------------------------------------------
 */

#define VSK_RXQ 0
#define VSK_TXQ 1

static void vsock_config(struct fx *fx, struct bh_vdriver_cfg *cfg)
{
	dev_vsock_config(&fx->be, cfg);
}

static uint64_t vsock_features(struct fx *fx)
{
	return F_V1;
}

/* A data packet from the guest to a host port nobody connected, at
 * P(0) + 128r: the worker answers with an RST in the receive buffer at
 * P(4 + 2r), which spans two pages. */
static void vsock_prepare(struct fx *fx, unsigned int r)
{
	uint8_t *p = ram(fx, 128ULL * r, VSK_HDR + 5);

	memset(p, 0, VSK_HDR);
	bh_put_le64(p, GUEST_CID);
	bh_put_le64(p + 8, 2);
	bh_put_le32(p + 16, 45000 + r);
	bh_put_le32(p + 20, 9100);
	bh_put_le32(p + 24, 5);
	bh_put_le16(p + 28, 1); /* stream */
	bh_put_le16(p + 30, 5); /* RW */
	bh_put_le32(p + 36, 65536);
	memcpy(p + VSK_HDR, "stray", 5);
}

static void vsock_traffic(struct fx *fx, unsigned int r)
{
	struct bh_vdriver_buf rx = { fx->buf + P(4 + 2 * r), VSK_RXBUF, true };
	struct bh_vdriver_buf tx = { fx->buf + 128ULL * r, VSK_HDR + 5, false };
	const uint8_t *p;

	assert_int_equal(bh_vdriver_submit(fx->d, VSK_RXQ, &rx, 1, 0, NULL), 0);
	assert_int_equal(bh_vdriver_submit(fx->d, VSK_TXQ, &tx, 1, 0, NULL), 0);
	assert_int_equal(used(fx, VSK_TXQ).len, 0);
	assert_int_equal(used(fx, VSK_RXQ).len, VSK_HDR);
	p = ram(fx, P(4 + 2 * r), VSK_HDR);
	assert_int_equal(bh_get_le32(p + 20), 45000 + r);
	assert_int_equal(bh_get_le16(p + 30), 3); /* RST */
	expect(fx, P(4 + 2 * r), VSK_HDR);
}

/* ---- the types ------------------------------------------------------------
 */

static const struct type types[] = {
	{ "blk", blk_config, blk_features, blk_prepare, blk_traffic, 1 },
	{ "net", net_config, net_features, net_prepare, net_traffic,
	  2 * NET_PAIRS + 1 },
	{ "console", con_config, con_features, con_prepare, con_traffic, 2 },
	{ "rng", rng_config, rng_features, rng_prepare, rng_traffic, 1 },
	{ "vsock", vsock_config, vsock_features, vsock_prepare, vsock_traffic,
	  3 },
	{ "pmem", pmem_config, pmem_features, pmem_prepare, pmem_traffic, 1 },
};

enum { BLK, NET, CONSOLE, RNG, VSOCK, PMEM };

/* ---- the shared body ------------------------------------------------------
 */

/*
 * Each queue's descriptors and available ring in one page, its used ring
 * at the end of the next, with avail_event (EVENT_IDX) just past it on a
 * third: the driver's writes and the worker's never share a page, so no
 * write of the worker's hides behind one of the driver's, and the used
 * ring's entries and avail_event are logged or missed apart.
 */
#define USED_OFF (2 * PAGE - (4 + 8 * QSIZE))

static void queues(struct fx *fx)
{
	for (unsigned int q = 0; q < fx->t->nq; q++) {
		uint64_t base;

		assert_int_equal(bh_vdriver_alloc(fx->d, 3 * PAGE, PAGE, &base),
				 0);
		assert_int_equal(bh_vdriver_queue_setup(fx->d, q, QSIZE, base,
							base + 2048,
							base + USED_OFF),
				 0);
		fx->drv[base / PAGE] = true;
		fx->used_gpa[q] = base + USED_OFF;
	}
	assert_int_equal(bh_vdriver_activate(fx->d, fx->t->features(fx)), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, T), 0);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

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
	cfg.ram_size = RAM; /* low RAM only: memfd offset = guest address */
	cfg.id = fx->t->name;
	cfg.log_level = getenv("BH_TEST_LOG");
	assert_int_equal(bh_vdriver_start(&cfg, &fx->d), 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, BUFSIZE, PAGE, &fx->buf), 0);
	queues(fx);
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
	free(fx->before);
	free(fx);
	assert_int_equal(r, 0);
	return 0;
}

/* Copies guest RAM as it is now, and forgets what was expected before. */
static void snapshot(struct fx *fx)
{
	uint64_t size;
	const uint8_t *now = bh_vdriver_ram(fx->d, &size);

	assert_int_equal(size, RAM);
	if (!fx->before)
		fx->before = malloc(RAM);
	assert_non_null(fx->before);
	memcpy(fx->before, now, RAM);
	memset(fx->exp, 0, sizeof(fx->exp));
}

static bool page_changed(struct fx *fx, uint64_t pg)
{
	uint64_t size;
	const uint8_t *now = bh_vdriver_ram(fx->d, &size);

	return memcmp(fx->before + pg * PAGE, now + pg * PAGE, PAGE) != 0;
}

/*
 * Every page the worker changed since the snapshot has its bit. The worker
 * is paused first: it has then finished every write, and confirmed it.
 * Pages the driver writes (rings) are not the worker's to log; every page
 * the traffic expected the worker to change must have changed, or the test
 * would prove nothing.
 */
static void check_logged(struct fx *fx, const char *what)
{
	unsigned int changed = 0, missing = 0, set = 0;

	assert_int_equal(bh_vdriver_pause(fx->d, T), 0);
	for (uint64_t pg = 0; pg < NPAGES; pg++) {
		bool c = page_changed(fx, pg),
		     b = bh_vdriver_dirty_page(fx->d, pg);

		set += b;
		if (fx->exp[pg] && (!c || fx->drv[pg]))
			fail_msg("%s: the traffic left page 0x%llx unchanged "
				 "or shared with the driver: it proves "
				 "nothing",
				 fx->t->name, (unsigned long long)(pg * PAGE));
		if (!c || fx->drv[pg])
			continue;
		changed++;
		if (!b) {
			fprintf(stderr,
				"%s: page 0x%llx changed by the worker, not "
				"logged\n",
				fx->t->name, (unsigned long long)(pg * PAGE));
			missing++;
		}
	}
	if (missing)
		fail_msg("%s (%s): %u of %u pages the worker changed are not "
			 "in the dirty log",
			 fx->t->name, what, missing, changed);
	assert_true(changed > 0);
	printf("%s (%s): %u pages changed by the worker, all %u logged "
	       "(%u bits set)\n",
	       fx->t->name, what, changed, changed, set);
}

static bool none_set(struct fx *fx)
{
	for (uint64_t pg = 0; pg < NPAGES; pg++)
		if (bh_vdriver_dirty_page(fx->d, pg))
			return false;
	return true;
}

/* Logging turned on while the device runs; one round of traffic. */
static void test_logged(void **state)
{
	struct fx *fx = *state;
	uint8_t *bitmap = NULL;

	assert_int_equal(bh_vdriver_dirty_log(fx->d, true, T, &bitmap), 0);
	assert_non_null(bitmap);
	assert_true(none_set(fx));
	fx->t->prepare(fx, 0);
	snapshot(fx);
	fx->t->traffic(fx, 0);
	check_logged(fx, "running");
}

/* Turned on while the VM is paused (as a migration starting from a paused
 * VM does): answered at once, and in force from the resume. */
static void test_paused(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(bh_vdriver_pause(fx->d, T), 0);
	assert_int_equal(bh_vdriver_dirty_log(fx->d, true, T, NULL), 0);
	fx->t->prepare(fx, 0);
	snapshot(fx);
	assert_int_equal(bh_vdriver_resume(fx->d), 0);
	fx->t->traffic(fx, 0);
	check_logged(fx, "enabled while paused");
}

/*
 * The controller clears the bitmap between passes: after the clear only
 * the next round's pages are set, none of those only the first round
 * wrote.
 */
static void test_clear(void **state)
{
	struct fx *fx = *state;
	bool first[NPAGES];

	assert_int_equal(bh_vdriver_dirty_log(fx->d, true, T, NULL), 0);
	fx->t->prepare(fx, 0);
	snapshot(fx);
	fx->t->traffic(fx, 0);
	check_logged(fx, "first pass");
	memcpy(first, fx->exp, sizeof(first));

	bh_vdriver_dirty_clear(fx->d);
	fx->t->prepare(fx, 1);
	snapshot(fx);
	assert_int_equal(bh_vdriver_resume(fx->d), 0);
	fx->t->traffic(fx, 1);
	check_logged(fx, "second pass");
	for (uint64_t pg = 0; pg < NPAGES; pg++)
		if (first[pg] && !fx->exp[pg] &&
		    bh_vdriver_dirty_page(fx->d, pg))
			fail_msg("%s: page 0x%llx, written only before the "
				 "clear, logged again",
				 fx->t->name, (unsigned long long)(pg * PAGE));
}

/* Turned off: the worker sets no bit any more, though it writes. */
static void test_off(void **state)
{
	struct fx *fx = *state;
	unsigned int changed = 0;

	assert_int_equal(bh_vdriver_dirty_log(fx->d, true, T, NULL), 0);
	assert_int_equal(bh_vdriver_dirty_log(fx->d, false, T, NULL), 0);
	bh_vdriver_dirty_clear(fx->d);
	fx->t->prepare(fx, 0);
	snapshot(fx);
	fx->t->traffic(fx, 0);
	assert_int_equal(bh_vdriver_pause(fx->d, T), 0);
	for (uint64_t pg = 0; pg < NPAGES; pg++)
		changed += page_changed(fx, pg) && !fx->drv[pg];
	assert_true(changed > 0);
	if (!none_set(fx))
		fail_msg("%s: a bit set after logging was turned off",
			 fx->t->name);
}

/*
 * A log memfd smaller than the bitmap would turn the worker's next logged
 * write into SIGBUS: refused with MSG_ERROR naming it, and the worker
 * serves on, unlogged, until a proper one comes.
 */
static void test_small(void **state)
{
	struct fx *fx = *state;
	uint64_t need = bh_vdriver_dirty_log_bytes(fx->d);
	const char *msg;

	assert_int_equal(need, NPAGES / 8);
	assert_int_equal(bh_vdriver_dirty_log_sized(fx->d, need - 8, T, NULL),
			 -EINVAL);
	assert_int_equal(bh_vdriver_errors(fx->d, &msg), 1);
	if (!strstr(msg, "too small"))
		fail_msg("%s: refusal says \"%s\"", fx->t->name, msg);
	assert_true(bh_vdriver_alive(fx->d));
	/* A memfd longer than needed is fine. */
	assert_int_equal(
	    bh_vdriver_dirty_log_sized(fx->d, need + 4096, T, NULL), 0);
	fx->t->prepare(fx, 0);
	snapshot(fx);
	fx->t->traffic(fx, 0);
	check_logged(fx, "after a refused log");
}

#define ALL(i, name)                                                           \
	{ name ": every written page logged", test_logged, setup, teardown,    \
	  (void *)&types[i] },                                                 \
	    { name ": enabled while paused", test_paused, setup, teardown,     \
	      (void *)&types[i] },                                             \
	    { name ": cleared between passes", test_clear, setup, teardown,    \
	      (void *)&types[i] },                                             \
	    { name ": off sets nothing", test_off, setup, teardown,            \
	      (void *)&types[i] },                                             \
	{                                                                      \
		name ": small log memfd refused", test_small, setup, teardown, \
		    (void *)&types[i]                                          \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
		ALL(BLK, "blk"), ALL(NET, "net"),     ALL(CONSOLE, "console"),
		ALL(RNG, "rng"), ALL(VSOCK, "vsock"), ALL(PMEM, "pmem"),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
