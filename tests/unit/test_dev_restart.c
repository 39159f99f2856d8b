/* Unit tests for replacing a dead device worker (the block worker, driven
 * through bh_vdriver): requests in flight are finished exactly once by the
 * next worker, or failed with an I/O error by a failing one. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/virtio_blk.h>

#include <bulkhead/inflight.h>
#include <bulkhead/spawn.h>

#include "vdriver.h"

#define IMG_SIZE (4u << 20)
#define QSIZE	 64
#define NREQ	 48 /* requests in flight at once */
#define ROUNDS	 12
#define BLOCK	 4096

struct slot {
	uint64_t hdr, data, status;
	uint16_t head;
	bool done;
};

struct fx {
	char path[64];
	int fd;
	int disk; /* the workers' backend, borrowed by the driver */
	Bh__BlkSetup bs;
	struct bh_vdriver *d;
	struct slot s[NREQ];
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct bh_vdriver_cfg cfg = { 0 };
	const struct bh_vdriver_info *in;

	assert_non_null(fx);
	snprintf(fx->path, sizeof(fx->path), "/tmp/bh-test-restart-XXXXXX");
	fx->fd = mkostemp(fx->path, O_CLOEXEC);
	assert_true(fx->fd >= 0);
	assert_int_equal(ftruncate(fx->fd, IMG_SIZE), 0);
	fx->disk = open(fx->path, O_RDWR | O_CLOEXEC);
	assert_true(fx->disk >= 0);
	bh__blk_setup__init(&fx->bs);
	fx->bs.num_queues = 1;
	fx->bs.queue_size = QSIZE;
	fx->bs.size = IMG_SIZE;
	cfg.binary = BH_WORKER_DIR "/bulkhead-dev-blk";
	cfg.type = BH__WORKER_SETUP__BACKEND_BLK;
	cfg.backend = &fx->bs;
	cfg.backend_fds = &fx->disk;
	cfg.n_backend_fds = 1;
	cfg.ram_size = 16ULL << 20;
	cfg.id = "disk0";
	cfg.inflight = true;
	cfg.log_level = getenv("BH_TEST_LOG") ? getenv("BH_TEST_LOG") : NULL;
	assert_int_equal(bh_vdriver_start(&cfg, &fx->d), 0);
	for (unsigned int i = 0; i < NREQ; i++) {
		assert_int_equal(bh_vdriver_alloc(fx->d, 16, 16, &fx->s[i].hdr),
				 0);
		assert_int_equal(
		    bh_vdriver_alloc(fx->d, BLOCK, BLOCK, &fx->s[i].data), 0);
		assert_int_equal(
		    bh_vdriver_alloc(fx->d, 1, 1, &fx->s[i].status), 0);
	}
	in = bh_vdriver_info(fx->d);
	assert_int_equal(bh_vdriver_queue_alloc(fx->d, 0, QSIZE), 0);
	assert_int_equal(bh_vdriver_activate(fx->d, in->device_features), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	int r = bh_vdriver_stop(fx->d, BH_VDRIVER_TIMEOUT_MS, NULL);

	close(fx->disk);
	close(fx->fd);
	unlink(fx->path);
	free(fx);
	assert_int_equal(r, 0);
	return 0;
}

static void *ram(struct fx *fx, uint64_t gpa, uint64_t len)
{
	void *p = bh_vdriver_gpa(fx->d, gpa, len);

	assert_non_null(p);
	return p;
}

/* Block i of round r: its own bytes, so that a mix-up shows. */
static void fill(uint8_t *p, unsigned int round, unsigned int i)
{
	for (unsigned int b = 0; b < BLOCK; b++)
		p[b] = (uint8_t)(round * 37 + i * 11 + b * 3 + 1);
}

/* Puts request i in the avail ring without a kick. */
static void add(struct fx *fx, unsigned int i, uint32_t type, uint64_t sector,
		unsigned int round)
{
	struct slot *s = &fx->s[i];
	struct virtio_blk_outhdr h = { .type = type, .sector = sector };
	struct bh_vdriver_buf b[3] = {
		{ s->hdr, 16, false },
		{ s->data, BLOCK, type == VIRTIO_BLK_T_IN },
		{ s->status, 1, true },
	};

	memcpy(ram(fx, s->hdr, 16), &h, 16);
	if (type == VIRTIO_BLK_T_OUT)
		fill(ram(fx, s->data, BLOCK), round, i);
	else
		memset(ram(fx, s->data, BLOCK), 0, BLOCK);
	*(uint8_t *)ram(fx, s->status, 1) = 0xee;
	s->done = false;
	assert_int_equal(
	    bh_vdriver_add(fx->d, 0, b, 3, BH_VDRIVER_INDIRECT, &s->head), 0);
}

/* Waits for n requests; each must come back once (the driver refuses an id
 * that is not outstanding) with the given status. */
static void collect(struct fx *fx, unsigned int n, uint8_t want)
{
	for (unsigned int k = 0; k < n; k++) {
		struct bh_vdriver_used u;
		unsigned int i;

		assert_int_equal(
		    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u),
		    1);
		for (i = 0; i < NREQ; i++)
			if (!fx->s[i].done && fx->s[i].head == u.id)
				break;
		assert_true(i < NREQ);
		fx->s[i].done = true;
		assert_int_equal(*(uint8_t *)ram(fx, fx->s[i].status, 1), want);
	}
	/* Nothing more: no request was answered twice. */
	assert_int_equal(bh_vdriver_poll(fx->d, 50), 0);
	{
		struct bh_vdriver_used u;

		assert_int_equal(bh_vdriver_get_used(fx->d, 0, &u), 0);
	}
}

/* Marks the head of request i as taken by the worker (which is then killed
 * before it could see it): what a worker that died mid-request leaves. */
static void forge_taken(struct fx *fx, unsigned int i)
{
	struct bh_inflight *inf = bh_vdriver_inflight(fx->d, 0);

	assert_non_null(inf);
	inf->desc[fx->s[i].head].counter = ++inf->counter;
	inf->desc[fx->s[i].head].inflight = 1;
}

/* A request the dead worker had taken is finished by the next worker, and
 * the ring position is right: the next request is not taken twice. */
static void test_resume_finishes_taken(void **state)
{
	struct fx *fx = *state;
	uint8_t want[BLOCK];

	/* One request through the first worker. */
	add(fx, 0, VIRTIO_BLK_T_OUT, 8, 0);
	assert_int_equal(bh_vdriver_kick(fx->d, 0), 0);
	collect(fx, 1, VIRTIO_BLK_S_OK);

	/* A write the worker "took" without a kick, then it dies. */
	add(fx, 1, VIRTIO_BLK_T_OUT, 16, 1);
	forge_taken(fx, 1);
	assert_int_equal(
	    bh_vdriver_respawn(fx->d, false, BH_VDRIVER_TIMEOUT_MS), 0);
	collect(fx, 1, VIRTIO_BLK_S_OK);
	fill(want, 1, 1);
	{
		uint8_t got[BLOCK];

		assert_int_equal(pread(fx->fd, got, BLOCK, 16 * 512), BLOCK);
		assert_memory_equal(got, want, BLOCK);
	}

	/* The new worker serves what comes next, once. */
	add(fx, 2, VIRTIO_BLK_T_IN, 16, 2);
	assert_int_equal(bh_vdriver_kick(fx->d, 0), 0);
	collect(fx, 1, VIRTIO_BLK_S_OK);
	assert_memory_equal(ram(fx, fx->s[2].data, BLOCK), want, BLOCK);
}

/* Kill the worker at arbitrary moments of a burst of writes: every request
 * completes exactly once and every block lands. */
static void test_kill_during_io(void **state)
{
	struct fx *fx = *state;
	uint8_t want[BLOCK], got[BLOCK];

	srand((unsigned int)time(NULL));
	for (unsigned int round = 0; round < ROUNDS; round++) {
		struct timespec ts = { 0, (rand() % 400) * 1000L };

		for (unsigned int i = 0; i < NREQ; i++)
			add(fx, i, VIRTIO_BLK_T_OUT, i * (BLOCK / 512), round);
		assert_int_equal(bh_vdriver_kick(fx->d, 0), 0);
		nanosleep(&ts, NULL);
		assert_int_equal(
		    bh_vdriver_respawn(fx->d, false, BH_VDRIVER_TIMEOUT_MS), 0);
		collect(fx, NREQ, VIRTIO_BLK_S_OK);
		for (unsigned int i = 0; i < NREQ; i++) {
			fill(want, round, i);
			assert_int_equal(
			    pread(fx->fd, got, BLOCK, (off_t)i * BLOCK), BLOCK);
			if (memcmp(got, want, BLOCK))
				fail_msg("round %u: block %u not written",
					 round, i);
		}
	}
}

/* A failing worker ends what was in flight and everything new with IOERR,
 * and writes nothing. */
static void test_failed_worker(void **state)
{
	struct fx *fx = *state;
	uint8_t zero[BLOCK] = { 0 }, got[BLOCK];
	uint64_t n = 0;

	add(fx, 0, VIRTIO_BLK_T_OUT, 0, 5);
	forge_taken(fx, 0);
	assert_int_equal(bh_vdriver_respawn(fx->d, true, BH_VDRIVER_TIMEOUT_MS),
			 0);
	collect(fx, 1, VIRTIO_BLK_S_IOERR);
	add(fx, 1, VIRTIO_BLK_T_OUT, 8, 5);
	add(fx, 2, VIRTIO_BLK_T_IN, 8, 5);
	assert_int_equal(bh_vdriver_kick(fx->d, 0), 0);
	collect(fx, 2, VIRTIO_BLK_S_IOERR);
	assert_int_equal(pread(fx->fd, got, BLOCK, 0), BLOCK);
	assert_memory_equal(got, zero, BLOCK);
	assert_int_equal(pread(fx->fd, got, BLOCK, 8 * 512), BLOCK);
	assert_memory_equal(got, zero, BLOCK);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_int_equal(bh_vdriver_counter(fx->d, "failed_requests", &n), 0);
	assert_int_equal(n, 3);
}

/* A worker that left records that cannot be its queue's: the new worker
 * does not believe them and asks for a reset. */
static void test_resume_bad_records(void **state)
{
	struct fx *fx = *state;
	struct bh_inflight *inf = bh_vdriver_inflight(fx->d, 0);

	assert_non_null(inf);
	inf->size = 3;
	assert_int_equal(
	    bh_vdriver_respawn(fx->d, false, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_non_null(bh_vdriver_needs_reset(fx->d));
	assert_non_null(strstr(bh_vdriver_needs_reset(fx->d), "in-flight"));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_resume_finishes_taken),
		T(test_kill_during_io),
		T(test_failed_worker),
		T(test_resume_bad_records),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
