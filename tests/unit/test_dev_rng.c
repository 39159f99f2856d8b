/* Unit tests for the rng worker (bulkhead-dev-rng) driven through bh_vdriver.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <bulkhead/spawn.h>
#include <bulkhead/virtio.h>

#include "vdriver.h"

#define F_VERSION_1 (1ULL << 32)
#define F_INDIRECT  (1ULL << 28)
#define F_EVENT_IDX (1ULL << 29)
#define QSIZE	    64

struct rng_fixture {
	struct bh_vdriver *d;
	uint64_t buf; /* 8 KiB of guest RAM for the tests' buffers */
};

static int rng_setup(void **state)
{
	struct rng_fixture *fx = calloc(1, sizeof(*fx));
	struct bh_vdriver_cfg cfg = { 0 };
	int src;

	assert_non_null(fx);
	src = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	assert_true(src >= 0);
	cfg.binary = BH_WORKER_DIR "/bulkhead-dev-rng";
	cfg.type = BH__WORKER_SETUP__BACKEND_RNG;
	cfg.backend_fds = &src;
	cfg.n_backend_fds = 1;
	cfg.ram_size = 16ULL << 20;
	cfg.id = "rng0";
	assert_int_equal(bh_vdriver_start(&cfg, &fx->d), 0);
	close(src);
	assert_int_equal(bh_vdriver_alloc(fx->d, 8192, 4096, &fx->buf), 0);
	*state = fx;
	return 0;
}

static int rng_teardown(void **state)
{
	struct rng_fixture *fx = *state;
	int status = -1;
	char why[128];

	if (fx->d) {
		int r = bh_vdriver_stop(fx->d, BH_VDRIVER_TIMEOUT_MS, &status);

		if (r != 0)
			fprintf(stderr, "rng worker: %s\n",
				bh_describe_status(status, why, sizeof(why)));
		assert_int_equal(r, 0);
	}
	free(fx);
	return 0;
}

static void activate(struct bh_vdriver *d)
{
	const struct bh_vdriver_info *in = bh_vdriver_info(d);

	assert_true(in->device_features & F_VERSION_1);
	assert_true(in->device_features & F_INDIRECT);
	assert_int_equal(bh_vdriver_queue_alloc(d, 0, QSIZE), 0);
	assert_int_equal(bh_vdriver_activate(d, F_VERSION_1 | F_INDIRECT), 0);
	assert_int_equal(bh_vdriver_sync(d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_null(bh_vdriver_needs_reset(d));
}

/* Asks for len random bytes at gpa; returns the used length. */
static uint32_t read_random(struct bh_vdriver *d, uint64_t gpa, uint32_t len,
			    unsigned int flags)
{
	struct bh_vdriver_buf b = { .gpa = gpa, .len = len, .writable = true };
	struct bh_vdriver_used u;
	uint16_t head;

	memset(bh_vdriver_gpa(d, gpa, len), 0, len);
	assert_int_equal(bh_vdriver_submit(d, 0, &b, 1, flags, &head), 0);
	assert_int_equal(bh_vdriver_wait_used(d, 0, BH_VDRIVER_TIMEOUT_MS, &u),
			 1);
	assert_int_equal(u.id, head);
	return u.len;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i])
			return false;
	}
	return true;
}

static void test_ready(void **state)
{
	struct rng_fixture *fx = *state;
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);

	assert_int_equal(in->device_type, BH_VIRTIO_ID_RNG);
	assert_int_equal(in->num_queues, 1);
	assert_true(in->max_queue_size >= QSIZE);
	assert_true(in->device_features & F_VERSION_1);
}

static void test_random_bytes(void **state)
{
	struct rng_fixture *fx = *state;
	struct bh_vdriver *d = fx->d;
	uint8_t first[4096];
	uint8_t *p;

	activate(d);

	/* 64 bytes, twice: both filled, and not the same. */
	assert_int_equal(read_random(d, fx->buf, 64, 0), 64);
	p = bh_vdriver_gpa(d, fx->buf, 4096);
	assert_false(all_zero(p, 64));
	memcpy(first, p, 64);
	assert_int_equal(read_random(d, fx->buf, 64, 0), 64);
	assert_false(all_zero(p, 64));
	assert_memory_not_equal(first, p, 64);
	assert_true(bh_vdriver_calls(d, 0) >= 1);

	/* 4096 bytes, twice, the second through an indirect table. */
	assert_int_equal(read_random(d, fx->buf, 4096, 0), 4096);
	assert_false(all_zero(p, 4096));
	/* No 64-byte stretch of zeros in real random data. */
	assert_false(all_zero(p + 4032, 64));
	memcpy(first, p, 4096);
	assert_int_equal(read_random(d, fx->buf, 4096, BH_VDRIVER_INDIRECT),
			 4096);
	assert_false(all_zero(p + 4032, 64));
	assert_memory_not_equal(first, p, 4096);
	assert_int_equal(bh_vdriver_num_free(d, 0), QSIZE);
}

/* Several requests in flight before one kick: all complete. */
static void test_batch(void **state)
{
	struct rng_fixture *fx = *state;
	struct bh_vdriver *d = fx->d;
	struct bh_vdriver_used u;
	bool seen[QSIZE] = { false };
	unsigned int i, got = 0;

	activate(d);
	for (i = 0; i < 8; i++) {
		struct bh_vdriver_buf b = { .gpa = fx->buf + 512 * i,
					    .len = 512,
					    .writable = true };

		assert_int_equal(bh_vdriver_add(d, 0, &b, 1, 0, NULL), 0);
	}
	assert_int_equal(bh_vdriver_kick(d, 0), 0);
	while (got < 8) {
		assert_int_equal(
		    bh_vdriver_wait_used(d, 0, BH_VDRIVER_TIMEOUT_MS, &u), 1);
		assert_int_equal(u.len, 512);
		assert_true(u.id < QSIZE);
		assert_false(seen[u.id]);
		seen[u.id] = true;
		got++;
	}
	assert_int_equal(bh_vdriver_num_free(d, 0), QSIZE);
}

/* With EVENT_IDX both sides suppress notifications; requests sent with
 * bh_vdriver_kick_if_needed must still all complete, one after another and
 * in bursts. */
static void test_event_idx(void **state)
{
	struct rng_fixture *fx = *state;
	struct bh_vdriver *d = fx->d;
	const uint64_t feat = F_VERSION_1 | F_EVENT_IDX;
	struct bh_vdriver_used u;
	unsigned int i, j, kicks = 0;

	assert_true(bh_vdriver_info(d)->device_features & F_EVENT_IDX);
	assert_int_equal(bh_vdriver_queue_alloc(d, 0, QSIZE), 0);
	assert_int_equal(bh_vdriver_activate(d, feat), 0);
	assert_int_equal(bh_vdriver_sync(d, BH_VDRIVER_TIMEOUT_MS), 0);
	for (i = 0; i < 3 * QSIZE; i++) {
		struct bh_vdriver_buf b = { fx->buf, 16, true };
		int r;

		assert_int_equal(bh_vdriver_add(d, 0, &b, 1, 0, NULL), 0);
		r = bh_vdriver_kick_if_needed(d, 0);
		assert_true(r >= 0);
		kicks += (unsigned int)r;
		assert_int_equal(
		    bh_vdriver_wait_used(d, 0, BH_VDRIVER_TIMEOUT_MS, &u), 1);
		assert_int_equal(u.len, 16);
	}
	assert_true(kicks >= 1);
	for (i = 0; i < 10; i++) {
		for (j = 0; j < QSIZE / 2; j++) {
			struct bh_vdriver_buf b = { fx->buf + 64 * j, 64,
						    true };

			assert_int_equal(bh_vdriver_add(d, 0, &b, 1, 0, NULL),
					 0);
		}
		assert_true(bh_vdriver_kick_if_needed(d, 0) >= 0);
		for (j = 0; j < QSIZE / 2; j++)
			assert_int_equal(bh_vdriver_wait_used(
					     d, 0, BH_VDRIVER_TIMEOUT_MS, &u),
					 1);
	}
	assert_int_equal(bh_vdriver_num_free(d, 0), QSIZE);
}

/* A device not yet activated confirms a pause too, and one paused before
 * its activation serves nothing until resumed. */
static void test_pause_before_activate(void **state)
{
	struct rng_fixture *fx = *state;
	struct bh_vdriver_buf b = { .gpa = fx->buf,
				    .len = 64,
				    .writable = true };
	struct bh_vdriver_used u;
	uint16_t head;

	assert_int_equal(bh_vdriver_pause(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	activate(fx->d);
	memset(bh_vdriver_gpa(fx->d, fx->buf, 64), 0, 64);
	assert_int_equal(bh_vdriver_submit(fx->d, 0, &b, 1, 0, &head), 0);
	assert_int_equal(bh_vdriver_wait_used(fx->d, 0, 300, &u), -ETIMEDOUT);
	assert_true(all_zero(bh_vdriver_gpa(fx->d, fx->buf, 64), 64));
	assert_int_equal(bh_vdriver_resume(fx->d), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	assert_int_equal(u.id, head);
	assert_int_equal(u.len, 64);
	assert_false(all_zero(bh_vdriver_gpa(fx->d, fx->buf, 64), 64));
	/* A resume that pauses nothing is harmless. */
	assert_int_equal(bh_vdriver_resume(fx->d), 0);
	assert_int_equal(read_random(fx->d, fx->buf, 32, 0), 32);
}

static void test_counters(void **state)
{
	struct rng_fixture *fx = *state;
	struct bh_vdriver *d = fx->d;
	uint64_t v = 0;

	activate(d);
	read_random(d, fx->buf, 64, 0);
	read_random(d, fx->buf, 4096, 0);
	read_random(d, fx->buf, 100, 0);
	assert_int_equal(bh_vdriver_sync(d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_int_equal(bh_vdriver_counter(d, "requests", &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(bh_vdriver_counter(d, "read_bytes", &v), 0);
	assert_int_equal(v, 64 + 4096 + 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ready, rng_setup,
						rng_teardown),
		cmocka_unit_test_setup_teardown(test_random_bytes, rng_setup,
						rng_teardown),
		cmocka_unit_test_setup_teardown(test_batch, rng_setup,
						rng_teardown),
		cmocka_unit_test_setup_teardown(test_event_idx, rng_setup,
						rng_teardown),
		cmocka_unit_test_setup_teardown(test_pause_before_activate,
						rng_setup, rng_teardown),
		cmocka_unit_test_setup_teardown(test_counters, rng_setup,
						rng_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
