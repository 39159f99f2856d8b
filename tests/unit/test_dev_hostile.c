/* Hostile-guest tests for the blk and rng workers: every broken queue, ring or
 * control request has a defined outcome and never takes the worker down. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/virtio_blk.h>

#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "vdriver.h"

#define LOW_RAM	    (64ULL << 20)
#define HIGH_RAM    (64ULL << 20)
#define QSIZE	    8
#define F_VERSION_1 (1ULL << 32)
#define F_INDIRECT  (1ULL << 28)
#define DESC_NEXT   BH_VRING_DESC_F_NEXT
#define DESC_W	    BH_VRING_DESC_F_WRITE
#define DESC_IND    BH_VRING_DESC_F_INDIRECT
#define IMG_SIZE    (1u << 20)

struct hfx {
	Bh__WorkerSetup__BackendCase type;
	struct bh_vdriver *d;
	char path[64];
	uint64_t buf;  /* 64 KiB in low RAM */
	uint64_t hdr;  /* blk request header */
	uint64_t stat; /* blk status byte */
	uint64_t features;
};

static void start(struct hfx *fx, const char *selftest_open)
{
	Bh__BlkSetup bs = BH__BLK_SETUP__INIT;
	struct bh_vdriver_cfg cfg = { 0 };
	int fd;

	cfg.type = fx->type;
	cfg.ram_size = LOW_RAM;
	cfg.high_ram_size = HIGH_RAM;
	cfg.selftest_open = selftest_open;
	cfg.backend_fds = &fd;
	cfg.n_backend_fds = 1;
	if (fx->type == BH__WORKER_SETUP__BACKEND_BLK) {
		snprintf(fx->path, sizeof(fx->path),
			 "/tmp/bh-test-hostile-XXXXXX");
		fd = mkostemp(fx->path, O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, IMG_SIZE), 0);
		bs.num_queues = 1;
		bs.queue_size = 64;
		bs.size = IMG_SIZE;
		cfg.backend = &bs;
		cfg.binary = BH_WORKER_DIR "/bulkhead-dev-blk";
		cfg.id = "hostile-blk";
	} else {
		fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		cfg.binary = BH_WORKER_DIR "/bulkhead-dev-rng";
		cfg.id = "hostile-rng";
	}
	if (selftest_open) {
		assert_int_equal(bh_vdriver_spawn(&cfg, &fx->d), 0);
		/* The worker may die before or after WORKER_READY. */
		(void)bh_vdriver_setup(fx->d, BH_VDRIVER_TIMEOUT_MS);
	} else {
		assert_int_equal(bh_vdriver_start(&cfg, &fx->d), 0);
	}
	close(fd);
}

static int setup_common(void **state, Bh__WorkerSetup__BackendCase type)
{
	struct hfx *fx = calloc(1, sizeof(*fx));
	const struct bh_vdriver_info *in;

	assert_non_null(fx);
	fx->type = type;
	start(fx, NULL);
	in = bh_vdriver_info(fx->d);
	assert_true(in->device_features & F_VERSION_1);
	assert_true(in->device_features & F_INDIRECT);
	fx->features = F_VERSION_1 | F_INDIRECT;
	assert_int_equal(bh_vdriver_alloc(fx->d, 65536, 4096, &fx->buf), 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, 16, 16, &fx->hdr), 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, 1, 1, &fx->stat), 0);
	assert_int_equal(bh_vdriver_queue_alloc(fx->d, 0, QSIZE), 0);
	*state = fx;
	return 0;
}

static int setup_blk(void **state)
{
	return setup_common(state, BH__WORKER_SETUP__BACKEND_BLK);
}

static int setup_rng(void **state)
{
	return setup_common(state, BH__WORKER_SETUP__BACKEND_RNG);
}

static int teardown(void **state)
{
	struct hfx *fx = *state;
	int status = 0, r;
	char why[128];

	r = bh_vdriver_stop(fx->d, BH_VDRIVER_TIMEOUT_MS, &status);
	if (r != 0)
		fprintf(stderr, "worker: %s\n",
			bh_describe_status(status, why, sizeof(why)));
	if (fx->path[0])
		unlink(fx->path);
	free(fx);
	assert_int_equal(r, 0);
	return 0;
}

static bool is_blk(const struct hfx *fx)
{
	return fx->type == BH__WORKER_SETUP__BACKEND_BLK;
}

static void activate(struct hfx *fx)
{
	assert_int_equal(bh_vdriver_activate(fx->d, fx->features), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

/* Publishes and kicks a well-formed request with its data at gpa. */
static uint16_t submit_good(struct hfx *fx, uint64_t gpa)
{
	struct bh_vdriver_buf b[3];
	uint16_t head;

	if (is_blk(fx)) {
		struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_IN,
					       .sector = 1 };

		memcpy(bh_vdriver_gpa(fx->d, fx->hdr, 16), &h, 16);
		*(uint8_t *)bh_vdriver_gpa(fx->d, fx->stat, 1) = 0xee;
		b[0] = (struct bh_vdriver_buf){ fx->hdr, 16, false };
		b[1] = (struct bh_vdriver_buf){ gpa, 512, true };
		b[2] = (struct bh_vdriver_buf){ fx->stat, 1, true };
		assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 3, 0, &head),
				 0);
	} else {
		b[0] = (struct bh_vdriver_buf){ gpa, 64, true };
		assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 1, 0, &head),
				 0);
	}
	return head;
}

/* A well-formed request with its data at gpa; checks the answer. */
static void good_request_at(struct hfx *fx, uint64_t gpa)
{
	struct bh_vdriver_used u;
	uint16_t head = submit_good(fx, gpa);
	int r;

	r = bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u);
	if (r != 1)
		fail_msg("good request: %s (needs reset: %s)", strerror(-r),
			 bh_vdriver_needs_reset(fx->d)
			     ? bh_vdriver_needs_reset(fx->d)
			     : "no");
	assert_int_equal(u.id, head);
	if (is_blk(fx)) {
		assert_int_equal(u.len, 513);
		assert_int_equal(*(uint8_t *)bh_vdriver_gpa(fx->d, fx->stat, 1),
				 VIRTIO_BLK_S_OK);
	} else {
		assert_int_equal(u.len, 64);
	}
}

static void good_request(struct hfx *fx)
{
	good_request_at(fx, fx->buf);
}

/* Kicks queue 0 and expects NEEDS_RESET, never an answer. */
static void expect_needs_reset(struct hfx *fx, const char *what)
{
	struct bh_vdriver_used u;
	int r;

	assert_int_equal(bh_vdriver_kick(fx->d, 0), 0);
	r = bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u);
	if (r == 1)
		fail_msg("%s: answered (id %u len %u) instead of NEEDS_RESET",
			 what, u.id, u.len);
	if (r != -EIO)
		fail_msg(
		    "%s: %s instead of NEEDS_RESET (worker %s)", what,
		    strerror(-r),
		    bh_vdriver_describe_exit(fx->d, (char[128]){ 0 }, 128));
	assert_non_null(bh_vdriver_needs_reset(fx->d));
	assert_true(strlen(bh_vdriver_needs_reset(fx->d)) > 0);
	fprintf(stderr, "[ outcome ] %s %s: NEEDS_RESET \"%s\"\n",
		is_blk(fx) ? "blk" : "rng", what,
		bh_vdriver_needs_reset(fx->d));
}

/* RESET, ACTIVATE again, and a good request is served. */
static void recover(struct hfx *fx)
{
	assert_true(bh_vdriver_alive(fx->d));
	assert_int_equal(bh_vdriver_reset(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_null(bh_vdriver_needs_reset(fx->d));
	activate(fx);
	good_request(fx);
}

/* Descriptor idx of queue 0 as a plain buffer of the right direction. */
static void plain_desc(struct hfx *fx, uint16_t idx, uint16_t flags,
		       uint16_t next)
{
	assert_int_equal(bh_vdriver_write_desc(fx->d, 0, idx,
					       fx->buf + 512ULL * idx, 64,
					       flags | DESC_W, next),
			 0);
}

/* Publishes a chain at head 0 whose one buffer is (addr, len). */
static void one_buffer_chain(struct hfx *fx, uint64_t addr, uint32_t len,
			     bool writable)
{
	if (is_blk(fx)) {
		struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_IN };

		memcpy(bh_vdriver_gpa(fx->d, fx->hdr, 16), &h, 16);
		assert_int_equal(bh_vdriver_write_desc(fx->d, 0, 0, fx->hdr, 16,
						       DESC_NEXT, 1),
				 0);
		assert_int_equal(bh_vdriver_write_desc(
				     fx->d, 0, 1, addr, len,
				     DESC_NEXT | (writable ? DESC_W : 0), 2),
				 0);
		assert_int_equal(
		    bh_vdriver_write_desc(fx->d, 0, 2, fx->stat, 1, DESC_W, 0),
		    0);
	} else {
		assert_int_equal(bh_vdriver_write_desc(fx->d, 0, 0, addr, len,
						       writable ? DESC_W : 0,
						       0),
				 0);
	}
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
}

static void test_loop(void **state)
{
	struct hfx *fx = *state;

	activate(fx);
	plain_desc(fx, 0, DESC_NEXT, 1);
	plain_desc(fx, 1, DESC_NEXT, 0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	expect_needs_reset(fx, "descriptor loop");
	recover(fx);
	/* A descriptor that is its own next. */
	plain_desc(fx, 3, DESC_NEXT, 3);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 3), 0);
	expect_needs_reset(fx, "self loop");
	recover(fx);
}

static void test_chain_longer_than_queue(void **state)
{
	struct hfx *fx = *state;
	uint16_t i;

	activate(fx);
	/* 0 -> 1 -> ... -> 7 -> 0: every descriptor, then one more. */
	for (i = 0; i < QSIZE; i++)
		plain_desc(fx, i, DESC_NEXT, (uint16_t)((i + 1) % QSIZE));
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	expect_needs_reset(fx, "chain longer than the queue");
	recover(fx);
}

static void test_avail_idx_ahead(void **state)
{
	struct hfx *fx = *state;

	activate(fx);
	assert_int_equal(bh_vdriver_set_avail_idx(fx->d, 0, QSIZE + 1), 0);
	expect_needs_reset(fx, "avail idx size+1 ahead");
	recover(fx);
	assert_int_equal(bh_vdriver_set_avail_idx(fx->d, 0, 0x8000), 0);
	expect_needs_reset(fx, "avail idx 0x8000 ahead");
	recover(fx);
}

static void test_bad_head_and_next(void **state)
{
	struct hfx *fx = *state;

	activate(fx);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, QSIZE), 0);
	expect_needs_reset(fx, "head out of range");
	recover(fx);
	plain_desc(fx, 0, DESC_NEXT, 0xffff);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	expect_needs_reset(fx, "next out of range");
	recover(fx);
}

static void test_outside_ram(void **state)
{
	struct hfx *fx = *state;
	static const struct {
		uint64_t addr;
		uint32_t len;
		const char *what;
	} cases[] = {
		{ LOW_RAM, 64, "buffer just past low RAM" },
		{ 3ULL << 30, 64, "buffer in the 32-bit hole" },
		{ LOW_RAM - 32, 64, "buffer straddling the end of low RAM" },
		{ BH_VDRIVER_HIGH_BASE - 32, 64,
		  "buffer straddling the start of high RAM" },
		{ BH_VDRIVER_HIGH_BASE + HIGH_RAM - 32, 64,
		  "buffer straddling the end of high RAM" },
		{ BH_VDRIVER_HIGH_BASE + HIGH_RAM, 64, "buffer past high RAM" },
		{ UINT64_MAX - 15, 64, "buffer wrapping past 2^64" },
		{ UINT64_MAX, 0xffffffffu, "buffer at 2^64-1, 4 GiB long" },
		{ 0x1000, 0xffffffffu, "4 GiB buffer in 64 MiB of RAM" },
	};
	size_t i;

	activate(fx);
	for (i = 0; i < BH_ARRAY_SIZE(cases); i++) {
		one_buffer_chain(fx, cases[i].addr, cases[i].len, true);
		expect_needs_reset(fx, cases[i].what);
		recover(fx);
	}
	/* A buffer in high RAM is fine. */
	good_request_at(fx, BH_VDRIVER_HIGH_BASE + 0x100000);
	/* And one ending exactly at the end of low RAM. */
	good_request_at(fx, LOW_RAM - (is_blk(fx) ? 512 : 64));
}

static void test_zero_length(void **state)
{
	struct hfx *fx = *state;
	struct bh_vdriver_used u;
	int r;

	activate(fx);
	/* Zero-length buffers are skipped; the rest of the chain counts. */
	if (is_blk(fx)) {
		struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_IN,
					       .sector = 2 };
		struct bh_vdriver_buf b[5] = {
			{ fx->hdr, 16, false }, { fx->buf + 8192, 0, false },
			{ fx->buf, 512, true }, { fx->buf + 4096, 0, true },
			{ fx->stat, 1, true },
		};

		memcpy(bh_vdriver_gpa(fx->d, fx->hdr, 16), &h, 16);
		assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 5, 0, NULL), 0);
		assert_int_equal(
		    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u),
		    1);
		assert_int_equal(u.len, 513);
		assert_int_equal(*(uint8_t *)bh_vdriver_gpa(fx->d, fx->stat, 1),
				 VIRTIO_BLK_S_OK);
	} else {
		struct bh_vdriver_buf b[3] = {
			{ fx->buf + 8192, 0, true },
			{ fx->buf, 64, true },
			{ fx->buf + 4096, 0, true },
		};

		assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 3, 0, NULL), 0);
		assert_int_equal(
		    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u),
		    1);
		assert_int_equal(u.len, 64);
	}
	/* Nothing but a zero-length buffer: answered empty or NEEDS_RESET. */
	{
		struct bh_vdriver_buf z = { fx->buf, 0, true };

		assert_int_equal(bh_vdriver_submit(fx->d, 0, &z, 1, 0, NULL),
				 0);
		r = bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u);
		if (r == 1) {
			assert_int_equal(u.len, 0);
			fprintf(stderr,
				"[ outcome ] %s only zero-length: used "
				"len 0\n",
				is_blk(fx) ? "blk" : "rng");
		} else {
			assert_int_equal(r, -EIO);
			fprintf(stderr,
				"[ outcome ] %s only zero-length: "
				"NEEDS_RESET \"%s\"\n",
				is_blk(fx) ? "blk" : "rng",
				bh_vdriver_needs_reset(fx->d));
		}
	}
	recover(fx);
}

static void test_wrong_direction(void **state)
{
	struct hfx *fx = *state;
	struct bh_vdriver_used u;
	uint8_t *p = bh_vdriver_gpa(fx->d, fx->buf, 4096);

	activate(fx);
	memset(p, 0xa5, 4096);
	if (is_blk(fx)) {
		/* The header in a writable descriptor: there is no readable
		 * header, so the request fails with IOERR. */
		struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_IN };
		struct bh_vdriver_buf b[3] = {
			{ fx->hdr, 16, true },
			{ fx->buf, 512, true },
			{ fx->stat, 1, true },
		};

		memcpy(bh_vdriver_gpa(fx->d, fx->hdr, 16), &h, 16);
		*(uint8_t *)bh_vdriver_gpa(fx->d, fx->stat, 1) = 0xee;
		assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 3, 0, NULL), 0);
		assert_int_equal(
		    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u),
		    1);
		assert_int_equal(*(uint8_t *)bh_vdriver_gpa(fx->d, fx->stat, 1),
				 VIRTIO_BLK_S_IOERR);
		fprintf(stderr, "[ outcome ] blk writable header: IOERR\n");
		/* A read into readable data buffers: IOERR, nothing written. */
		b[0].writable = false;
		b[1].writable = false;
		*(uint8_t *)bh_vdriver_gpa(fx->d, fx->stat, 1) = 0xee;
		assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 3, 0, NULL), 0);
		assert_int_equal(
		    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u),
		    1);
		assert_int_equal(*(uint8_t *)bh_vdriver_gpa(fx->d, fx->stat, 1),
				 VIRTIO_BLK_S_IOERR);
		fprintf(stderr, "[ outcome ] blk read into readable buffer: "
				"IOERR\n");
		/* No status byte at all: nothing writable. */
		b[2].writable = false;
		assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 3, 0, NULL), 0);
		assert_int_equal(
		    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u),
		    -EIO);
		fprintf(stderr,
			"[ outcome ] blk no writable status: "
			"NEEDS_RESET \"%s\"\n",
			bh_vdriver_needs_reset(fx->d));
		recover(fx);
	} else {
		/* A readable buffer where the device must write: answered
		 * with nothing written, or NEEDS_RESET; never written. */
		struct bh_vdriver_buf b = { fx->buf, 64, false };
		size_t i;
		int r;

		assert_int_equal(bh_vdriver_submit(fx->d, 0, &b, 1, 0, NULL),
				 0);
		r = bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u);
		if (r == 1) {
			assert_int_equal(u.len, 0);
			fprintf(stderr, "[ outcome ] rng readable buffer: used "
					"len 0\n");
		} else {
			assert_int_equal(r, -EIO);
			fprintf(stderr,
				"[ outcome ] rng readable buffer: "
				"NEEDS_RESET \"%s\"\n",
				bh_vdriver_needs_reset(fx->d));
		}
		for (i = 0; i < 64; i++)
			assert_int_equal(p[i], 0xa5);
		recover(fx);
	}
	/* A readable buffer after a writable one breaks the rule of 2.7.4. */
	plain_desc(fx, 0, DESC_NEXT, 1);
	assert_int_equal(
	    bh_vdriver_write_desc(fx->d, 0, 1, fx->buf + 1024, 64, 0, 0), 0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	expect_needs_reset(fx, "readable after writable");
	recover(fx);
}

static void test_indirect_hostile(void **state)
{
	struct hfx *fx = *state;
	uint64_t t = fx->buf + 32768; /* our own tables */
	unsigned int i;

	activate(fx);
	/* A loop inside an indirect table. */
	assert_int_equal(bh_vdriver_write_desc_at(fx->d, t, fx->buf, 64,
						  DESC_W | DESC_NEXT, 1),
			 0);
	assert_int_equal(bh_vdriver_write_desc_at(fx->d, t + 16, fx->buf, 64,
						  DESC_W | DESC_NEXT, 0),
			 0);
	assert_int_equal(bh_vdriver_write_desc(fx->d, 0, 0, t, 32, DESC_IND, 0),
			 0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	expect_needs_reset(fx, "loop in an indirect table");
	recover(fx);

	/* Nested indirection. */
	assert_int_equal(
	    bh_vdriver_write_desc_at(fx->d, t, t + 256, 16, DESC_IND, 0), 0);
	assert_int_equal(
	    bh_vdriver_write_desc_at(fx->d, t + 256, fx->buf, 64, DESC_W, 0),
	    0);
	assert_int_equal(bh_vdriver_write_desc(fx->d, 0, 0, t, 16, DESC_IND, 0),
			 0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	expect_needs_reset(fx, "nested indirect table");
	recover(fx);

	/* A table length that is not whole descriptors, and zero. */
	assert_int_equal(bh_vdriver_write_desc(fx->d, 0, 0, t, 20, DESC_IND, 0),
			 0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	expect_needs_reset(fx, "indirect table of 20 bytes");
	recover(fx);
	assert_int_equal(bh_vdriver_write_desc(fx->d, 0, 0, t, 0, DESC_IND, 0),
			 0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	expect_needs_reset(fx, "indirect table of 0 bytes");
	recover(fx);

	/* The table outside guest RAM, and straddling low RAM's end. */
	assert_int_equal(
	    bh_vdriver_write_desc(fx->d, 0, 0, 3ULL << 30, 64, DESC_IND, 0), 0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	expect_needs_reset(fx, "indirect table outside RAM");
	recover(fx);
	assert_int_equal(
	    bh_vdriver_write_desc(fx->d, 0, 0, LOW_RAM - 16, 64, DESC_IND, 0),
	    0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	expect_needs_reset(fx, "indirect table straddling low RAM's end");
	recover(fx);

	/* INDIRECT together with NEXT. */
	plain_desc(fx, 1, 0, 0);
	assert_int_equal(
	    bh_vdriver_write_desc_at(fx->d, t, fx->buf, 64, DESC_W, 0), 0);
	assert_int_equal(
	    bh_vdriver_write_desc(fx->d, 0, 0, t, 16, DESC_IND | DESC_NEXT, 1),
	    0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	expect_needs_reset(fx, "indirect descriptor with NEXT");
	recover(fx);

	/* An indirect table of 4 GiB / 16 entries (length overflow bait). */
	assert_int_equal(
	    bh_vdriver_write_desc(fx->d, 0, 0, t, 0xfffffff0u, DESC_IND, 0), 0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	expect_needs_reset(fx, "indirect table of 4 GiB");
	recover(fx);

	/* Indirect without negotiating it. */
	fx->features = F_VERSION_1;
	assert_int_equal(bh_vdriver_reset(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	activate(fx);
	assert_int_equal(
	    bh_vdriver_write_desc_at(fx->d, t, fx->buf, 64, DESC_W, 0), 0);
	assert_int_equal(bh_vdriver_write_desc(fx->d, 0, 0, t, 16, DESC_IND, 0),
			 0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	expect_needs_reset(fx, "indirect without INDIRECT_DESC");
	recover(fx);
	fx->features = F_VERSION_1 | F_INDIRECT;

	/* An indirect table longer than the queue (what Linux does when it
	 * may): served or NEEDS_RESET, but the worker lives. */
	assert_int_equal(bh_vdriver_reset(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	activate(fx);
	for (i = 0; i < 2 * QSIZE; i++)
		assert_int_equal(
		    bh_vdriver_write_desc_at(
			fx->d, t + 16ULL * i, fx->buf + 64 * i, 64,
			DESC_W | (i + 1 < 2 * QSIZE ? DESC_NEXT : 0),
			(uint16_t)(i + 1)),
		    0);
	if (is_blk(fx)) {
		/* Header first, status last. */
		struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_GET_ID };

		memcpy(bh_vdriver_gpa(fx->d, fx->hdr, 16), &h, 16);
		assert_int_equal(bh_vdriver_write_desc_at(fx->d, t, fx->hdr, 16,
							  DESC_NEXT, 1),
				 0);
	}
	assert_int_equal(
	    bh_vdriver_write_desc(fx->d, 0, 0, t, 32 * QSIZE, DESC_IND, 0), 0);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, 0), 0);
	assert_int_equal(bh_vdriver_kick(fx->d, 0), 0);
	{
		struct bh_vdriver_used u;
		int r =
		    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u);

		if (r != 1 && r != -EIO)
			fail_msg("indirect table longer than the queue: %s",
				 strerror(-r));
		fprintf(stderr,
			"[ outcome ] %s indirect table of %u entries "
			"on a queue of %u: %s\n",
			is_blk(fx) ? "blk" : "rng", 2 * QSIZE, QSIZE,
			r == 1 ? "served" : bh_vdriver_needs_reset(fx->d));
	}
	recover(fx);
}

/* Reports what the worker said about the last control message; it must
 * still be alive and answer. */
static void control_outcome(struct hfx *fx, const char *what)
{
	const char *err = NULL;
	unsigned int nerr;

	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_true(bh_vdriver_alive(fx->d));
	nerr = bh_vdriver_errors(fx->d, &err);
	fprintf(
	    stderr, "[ outcome ] %s %s: %s%s%s%s\n", is_blk(fx) ? "blk" : "rng",
	    what, bh_vdriver_needs_reset(fx->d) ? "NEEDS_RESET " : "",
	    bh_vdriver_needs_reset(fx->d) ? bh_vdriver_needs_reset(fx->d) : "",
	    nerr ? " ERROR " : "", nerr ? err : "");
	if (!bh_vdriver_needs_reset(fx->d) && !nerr)
		fprintf(stderr, "[ outcome ]   (ignored)\n");
}

static void test_bad_activate(void **state)
{
	struct hfx *fx = *state;
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);
	struct bh_vdriver_vq_addr q = { 0 };
	uint64_t desc, avail, used;
	unsigned int nerr0;

	assert_int_equal(bh_vdriver_alloc(fx->d, 4096, 4096, &desc), 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, 4096, 4096, &avail), 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, 4096, 4096, &used), 0);
	q = (struct bh_vdriver_vq_addr){
		in->num_queues + 3, QSIZE, desc, avail, used, true
	};

	/* A queue index the device does not have. */
	nerr0 = bh_vdriver_errors(fx->d, NULL);
	assert_int_equal(bh_vdriver_activate_raw(fx->d, fx->features, &q, 1),
			 0);
	control_outcome(fx, "ACTIVATE with queue index num_queues+3");
	assert_true(bh_vdriver_needs_reset(fx->d) ||
		    bh_vdriver_errors(fx->d, NULL) > nerr0);
	recover(fx);

	/* The same index twice. */
	{
		struct bh_vdriver_vq_addr two[2] = {
			{ 0, QSIZE, desc, avail, used, true },
			{ 0, QSIZE, desc, avail, used, true },
		};

		assert_int_equal(bh_vdriver_reset(fx->d, BH_VDRIVER_TIMEOUT_MS),
				 0);
		assert_int_equal(
		    bh_vdriver_activate_raw(fx->d, fx->features, two, 2), 0);
		control_outcome(fx, "ACTIVATE with queue 0 twice");
		recover(fx);
	}

	/* Rings outside guest RAM, a size that is not a power of two, a
	 * size above the maximum, a misaligned ring. */
	{
		const struct {
			struct bh_vdriver_vq_addr q;
			const char *what;
		} bad[] = {
			{ { 0, QSIZE, 3ULL << 30, avail, used, true },
			  "ACTIVATE with desc ring in the hole" },
			{ { 0, QSIZE, desc, avail, LOW_RAM - 8, true },
			  "ACTIVATE with used ring straddling low RAM's end" },
			{ { 0, QSIZE, desc, UINT64_MAX - 3, used, true },
			  "ACTIVATE with avail ring at 2^64-4" },
			{ { 0, 3, desc, avail, used, true },
			  "ACTIVATE with queue size 3" },
			{ { 0, 65536, desc, avail, used, true },
			  "ACTIVATE with queue size 65536" },
			{ { 0, QSIZE, desc + 8, avail, used, true },
			  "ACTIVATE with misaligned desc ring" },
		};
		size_t i;

		for (i = 0; i < BH_ARRAY_SIZE(bad); i++) {
			assert_int_equal(
			    bh_vdriver_reset(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
			nerr0 = bh_vdriver_errors(fx->d, NULL);
			assert_int_equal(bh_vdriver_activate_raw(
					     fx->d, fx->features, &bad[i].q, 1),
					 0);
			control_outcome(fx, bad[i].what);
			assert_true(bh_vdriver_needs_reset(fx->d) ||
				    bh_vdriver_errors(fx->d, NULL) > nerr0);
			recover(fx);
		}
	}
}

static void test_bad_config_write(void **state)
{
	struct hfx *fx = *state;
	static const uint8_t junk[16] = { 0xff, 0xff, 0xff, 0xff };

	activate(fx);
	good_request(fx);
	assert_int_equal(bh_vdriver_config_write(fx->d, 4096, junk, 4), 0);
	control_outcome(fx, "config write at 4096");
	assert_int_equal(bh_vdriver_config_write(fx->d, 250, junk, 16), 0);
	control_outcome(fx, "config write across the end of config space");
	assert_int_equal(
	    bh_vdriver_config_write(fx->d, UINT32_MAX - 1, junk, 16), 0);
	control_outcome(fx, "config write at 2^32-2");
	assert_int_equal(bh_vdriver_config_write(fx->d, 0, junk, 0), 0);
	control_outcome(fx, "empty config write");
	/* Capacity is read-only to the driver: a write must not change it. */
	assert_int_equal(bh_vdriver_config_write(fx->d, 0, junk, 8), 0);
	control_outcome(fx, "config write over capacity");
	if (bh_vdriver_needs_reset(fx->d))
		recover(fx);
	else
		good_request(fx);
}

/* After NEEDS_RESET the worker ignores the queue until RESET. */
static void test_ignores_queue_until_reset(void **state)
{
	struct hfx *fx = *state;
	struct bh_vdriver_used u;

	activate(fx);
	assert_int_equal(bh_vdriver_publish_raw(fx->d, 0, QSIZE + 1), 0);
	expect_needs_reset(fx, "head out of range");
	/* A well-formed request now stays unanswered. */
	submit_good(fx, fx->buf);
	assert_int_equal(bh_vdriver_poll(fx->d, 300), 0);
	assert_int_equal(bh_vdriver_get_used(fx->d, 0, &u), 0);
	recover(fx);
}

static void selftest_open(Bh__WorkerSetup__BackendCase type)
{
	struct hfx fx = { .type = type };
	int status = 0;
	char why[128];

	start(&fx, "/etc/hostname");
	assert_int_equal(
	    bh_vdriver_wait_exit(fx.d, BH_VDRIVER_TIMEOUT_MS, &status), 0);
	fprintf(stderr, "[ outcome ] %s --selftest-open /etc/hostname: %s\n",
		type == BH__WORKER_SETUP__BACKEND_BLK ? "blk" : "rng",
		bh_describe_status(status, why, sizeof(why)));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
	bh_vdriver_stop(fx.d, 1000, NULL);
	if (fx.path[0])
		unlink(fx.path);
}

static void test_selftest_open_blk(void **state)
{
	selftest_open(BH__WORKER_SETUP__BACKEND_BLK);
}

static void test_selftest_open_rng(void **state)
{
	selftest_open(BH__WORKER_SETUP__BACKEND_RNG);
}

#define HOSTILE(t)                                      \
	{ "blk_" #t, t, setup_blk, teardown, NULL },    \
	{                                               \
		"rng_" #t, t, setup_rng, teardown, NULL \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOSTILE(test_loop),
		HOSTILE(test_chain_longer_than_queue),
		HOSTILE(test_avail_idx_ahead),
		HOSTILE(test_bad_head_and_next),
		HOSTILE(test_outside_ram),
		HOSTILE(test_zero_length),
		HOSTILE(test_wrong_direction),
		HOSTILE(test_indirect_hostile),
		HOSTILE(test_bad_activate),
		HOSTILE(test_bad_config_write),
		HOSTILE(test_ignores_queue_until_reset),
		cmocka_unit_test(test_selftest_open_blk),
		cmocka_unit_test(test_selftest_open_rng),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
