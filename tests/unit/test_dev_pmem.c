/* Unit tests for the pmem worker (bulkhead-dev-pmem) driven through
 * bh_vdriver: its config space, flushes that reach fsync, and chains a
 * hostile driver builds. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <bulkhead/spawn.h>
#include <bulkhead/virtio.h>

#include "vdriver.h"

#define F_VERSION_1 (1ULL << 32)
#define QSIZE	    16
#define REGION_GPA  (6ULL << 30)
#define REGION_SIZE (64ULL << 20)

#define REQ_FLUSH 0
#define RESP_OK	  0
#define RESP_EIO  1

struct pmem_fixture {
	struct bh_vdriver *d;
	uint64_t req;  /* guest RAM for requests */
	uint64_t resp; /* and for their answers */
	char path[64];
	int pipe[2];
};

/* A worker whose region file is fd, as the controller would hand it. */
static void start(struct pmem_fixture *fx, int fd, bool discard)
{
	struct bh_vdriver_cfg cfg = { 0 };
	Bh__PmemSetup ps = BH__PMEM_SETUP__INIT;

	ps.guest_phys = REGION_GPA;
	ps.size = REGION_SIZE;
	ps.discard_writes = discard;
	cfg.binary = BH_WORKER_DIR "/bulkhead-dev-pmem";
	cfg.type = BH__WORKER_SETUP__BACKEND_PMEM;
	cfg.backend = &ps;
	cfg.backend_fds = &fd;
	cfg.n_backend_fds = 1;
	cfg.ram_size = 16ULL << 20;
	cfg.id = "pmem0";
	assert_int_equal(bh_vdriver_start(&cfg, &fx->d), 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, 4096, 4096, &fx->req), 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, 4096, 4096, &fx->resp), 0);
	assert_int_equal(bh_vdriver_queue_alloc(fx->d, 0, QSIZE), 0);
	assert_int_equal(bh_vdriver_activate(fx->d, F_VERSION_1), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

static int setup(void **state)
{
	struct pmem_fixture *fx = calloc(1, sizeof(*fx));
	int fd;

	assert_non_null(fx);
	snprintf(fx->path, sizeof(fx->path), "/tmp/bh-test-pmem-XXXXXX");
	fd = mkstemp(fx->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)REGION_SIZE), 0);
	fx->pipe[0] = fx->pipe[1] = -1;
	start(fx, fd, false);
	close(fd);
	*state = fx;
	return 0;
}

/* The region's "file" is a pipe, which fsync refuses (EINVAL): what the
 * worker answers shows whether it called fsync. */
static int setup_pipe(void **state, bool discard)
{
	struct pmem_fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	assert_int_equal(pipe2(fx->pipe, O_CLOEXEC), 0);
	start(fx, fx->pipe[0], discard);
	*state = fx;
	return 0;
}

static int setup_failing(void **state)
{
	return setup_pipe(state, false);
}

static int setup_discard(void **state)
{
	return setup_pipe(state, true);
}

static int teardown(void **state)
{
	struct pmem_fixture *fx = *state;
	int status = -1;
	char why[128];
	int r = bh_vdriver_stop(fx->d, BH_VDRIVER_TIMEOUT_MS, &status);

	if (r != 0)
		fprintf(stderr, "pmem worker: %s\n",
			bh_describe_status(status, why, sizeof(why)));
	if (fx->path[0])
		unlink(fx->path);
	if (fx->pipe[0] >= 0) {
		close(fx->pipe[0]);
		close(fx->pipe[1]);
	}
	free(fx);
	assert_int_equal(r, 0);
	return 0;
}

/* Submits the chain and returns the status the worker wrote (the used
 * length must be 4). */
static uint32_t submit(struct pmem_fixture *fx,
		       const struct bh_vdriver_buf *bufs, unsigned int n)
{
	struct bh_vdriver_used u;
	uint32_t status;
	uint16_t head;

	memset(bh_vdriver_gpa(fx->d, fx->resp, 8), 0xa5, 8);
	assert_int_equal(bh_vdriver_submit(fx->d, 0, bufs, n, 0, &head), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	assert_int_equal(u.id, head);
	assert_int_equal(u.len, 4);
	memcpy(&status, bh_vdriver_gpa(fx->d, fx->resp, 4), 4);
	/* Nothing past the status. */
	assert_int_equal(((uint8_t *)bh_vdriver_gpa(fx->d, fx->resp, 8))[4],
			 0xa5);
	return le32toh(status);
}

static uint32_t request(struct pmem_fixture *fx, uint32_t type)
{
	struct bh_vdriver_buf b[2] = {
		{ .gpa = fx->req, .len = 4 },
		{ .gpa = fx->resp, .len = 4, .writable = true },
	};
	uint32_t le = htole32(type);

	memcpy(bh_vdriver_gpa(fx->d, fx->req, 4), &le, 4);
	return submit(fx, b, 2);
}

static uint64_t counter(struct pmem_fixture *fx, const char *name)
{
	uint64_t v = 0;

	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	if (bh_vdriver_counter(fx->d, name, &v) < 0)
		return 0;
	return v;
}

/* The device as the guest's driver sees it: one queue, no features of
 * its own, and the region in the config space. */
static void test_ready(void **state)
{
	struct pmem_fixture *fx = *state;
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);
	uint64_t start, size;

	assert_int_equal(in->device_type, BH_VIRTIO_ID_PMEM);
	assert_int_equal(in->num_queues, 1);
	assert_true(in->max_queue_size >= QSIZE);
	assert_true(in->device_features & F_VERSION_1);
	/* VIRTIO_PMEM_F_SHMEM_REGION (bit 0) is not offered. */
	assert_false(in->device_features & 1);
	assert_int_equal(in->config_len, 16);
	memcpy(&start, in->config, 8);
	memcpy(&size, in->config + 8, 8);
	assert_int_equal(le64toh(start), REGION_GPA);
	assert_int_equal(le64toh(size), REGION_SIZE);
}

static void test_flush(void **state)
{
	struct pmem_fixture *fx = *state;

	assert_int_equal(request(fx, REQ_FLUSH), RESP_OK);
	assert_int_equal(request(fx, REQ_FLUSH), RESP_OK);
	assert_int_equal(counter(fx, "flushes"), 2);
	assert_int_equal(counter(fx, "errors"), 0);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

/* fsync fails: the guest hears EIO, and the device serves on. */
static void test_flush_fails(void **state)
{
	struct pmem_fixture *fx = *state;

	assert_int_equal(request(fx, REQ_FLUSH), RESP_EIO);
	assert_int_equal(request(fx, REQ_FLUSH), RESP_EIO);
	assert_int_equal(counter(fx, "errors"), 2);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

/* discard_writes: nothing reaches the file, so a flush has nothing to
 * write back and succeeds without fsync (which would fail here). */
static void test_flush_discard(void **state)
{
	struct pmem_fixture *fx = *state;

	assert_int_equal(request(fx, REQ_FLUSH), RESP_OK);
	assert_int_equal(counter(fx, "flushes"), 1);
	assert_int_equal(counter(fx, "errors"), 0);
}

/* Requests a driver may get wrong without breaking the protocol: each
 * answered with EIO, and the device goes on. */
static void test_bad_requests(void **state)
{
	struct pmem_fixture *fx = *state;
	uint8_t *req = bh_vdriver_gpa(fx->d, fx->req, 8);
	struct bh_vdriver_buf b[3];

	/* Unknown types. */
	assert_int_equal(request(fx, 1), RESP_EIO);
	assert_int_equal(request(fx, 0xffffffffu), RESP_EIO);
	assert_int_equal(counter(fx, "unsupported"), 2);

	/* No request at all: only the status buffer. */
	b[0] = (struct bh_vdriver_buf){ fx->resp, 4, true };
	assert_int_equal(submit(fx, b, 1), RESP_EIO);
	/* Three bytes of request. */
	memset(req, 0, 8);
	b[0] = (struct bh_vdriver_buf){ fx->req, 3, false };
	b[1] = (struct bh_vdriver_buf){ fx->resp, 4, true };
	assert_int_equal(submit(fx, b, 2), RESP_EIO);
	assert_int_equal(counter(fx, "bad_requests"), 2);

	/* A flush split over two buffers, and one with bytes to spare, and
	 * a status buffer longer than the status: all fine. */
	b[0] = (struct bh_vdriver_buf){ fx->req, 2, false };
	b[1] = (struct bh_vdriver_buf){ fx->req + 2, 2, false };
	b[2] = (struct bh_vdriver_buf){ fx->resp, 64, true };
	assert_int_equal(submit(fx, b, 3), RESP_OK);
	b[0] = (struct bh_vdriver_buf){ fx->req, 64, false };
	b[1] = (struct bh_vdriver_buf){ fx->resp, 4, true };
	assert_int_equal(submit(fx, b, 2), RESP_OK);
	/* The status split over two writable buffers. */
	b[0] = (struct bh_vdriver_buf){ fx->req, 4, false };
	b[1] = (struct bh_vdriver_buf){ fx->resp, 1, true };
	b[2] = (struct bh_vdriver_buf){ fx->resp + 1, 3, true };
	assert_int_equal(submit(fx, b, 3), RESP_OK);
	assert_int_equal(counter(fx, "flushes"), 3);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

/* No room for the status: the driver broke the protocol, the device
 * needs a reset, and a reset brings it back. */
static void test_no_status_room(void **state)
{
	struct pmem_fixture *fx = *state;
	struct bh_vdriver_buf b[2] = {
		{ .gpa = fx->req, .len = 4 },
		{ .gpa = fx->resp, .len = 3, .writable = true },
	};
	struct bh_vdriver_used u;
	const char *why;

	memset(bh_vdriver_gpa(fx->d, fx->req, 4), 0, 4);
	assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 2, 0, NULL), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u), -EIO);
	why = bh_vdriver_needs_reset(fx->d);
	assert_non_null(why);
	assert_non_null(strstr(why, "status"));

	assert_int_equal(bh_vdriver_reset(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_int_equal(bh_vdriver_queue_alloc(fx->d, 0, QSIZE), 0);
	assert_int_equal(bh_vdriver_activate(fx->d, F_VERSION_1), 0);
	assert_int_equal(request(fx, REQ_FLUSH), RESP_OK);

	/* Only readable buffers: the same. */
	b[1] = (struct bh_vdriver_buf){ fx->req, 4, false };
	assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 2, 0, NULL), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u), -EIO);
	assert_true(bh_vdriver_alive(fx->d));
}

/* A readable buffer after a writable one breaks the queue (the worker
 * library's check), and never reaches the device's code. */
static void test_wrong_direction(void **state)
{
	struct pmem_fixture *fx = *state;
	struct bh_vdriver_buf b[2] = {
		{ .gpa = fx->resp, .len = 4, .writable = true },
		{ .gpa = fx->req, .len = 4 },
	};
	struct bh_vdriver_used u;

	assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 2, 0, NULL), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u), -EIO);
	assert_non_null(bh_vdriver_needs_reset(fx->d));
	assert_int_equal(counter(fx, "flushes"), 0);
	assert_true(bh_vdriver_alive(fx->d));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_fails, setup_failing,
						teardown),
		cmocka_unit_test_setup_teardown(test_flush_discard,
						setup_discard, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_status_room, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wrong_direction, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
