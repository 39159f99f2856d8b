/* Unit tests for the console worker (bulkhead-dev-console): guest output to
 * a pipe or a size-limited file and pipe input into the guest's receive
 * buffers, via bh_vdriver. */
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
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <bulkhead/spawn.h>

#include "vdriver.h"

#define RXQ	    0
#define TXQ	    1
#define QSIZE	    64
#define F_VERSION_1 (1ULL << 32)

struct con_fx {
	struct bh_vdriver *d;
	int out_rd;   /* what the guest wrote */
	int in_wr;    /* what the guest reads */
	uint64_t buf; /* 64 KiB of guest RAM */
};

static int con_setup(void **state)
{
	struct con_fx *fx = calloc(1, sizeof(*fx));
	Bh__ConsoleSetup cs = BH__CONSOLE_SETUP__INIT;
	struct bh_vdriver_cfg cfg = { 0 };
	int out[2], in[2], fds[2];

	assert_non_null(fx);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	fx->out_rd = out[0];
	fx->in_wr = in[1];
	fds[0] = out[1];
	fds[1] = in[0];
	cs.has_input = true;
	cfg.binary = BH_WORKER_DIR "/bulkhead-dev-console";
	cfg.type = BH__WORKER_SETUP__BACKEND_CONSOLE;
	cfg.backend = &cs;
	cfg.backend_fds = fds;
	cfg.n_backend_fds = 2;
	cfg.ram_size = 16ULL << 20;
	cfg.id = "console0";
	assert_int_equal(bh_vdriver_start(&cfg, &fx->d), 0);
	close(out[1]);
	close(in[0]);
	assert_int_equal(bh_vdriver_alloc(fx->d, 65536, 4096, &fx->buf), 0);
	*state = fx;
	return 0;
}

/* Output to a regular file kept to 16 KiB (no input). */
static int con_setup_file(void **state, bool stop)
{
	struct con_fx *fx = calloc(1, sizeof(*fx));
	Bh__ConsoleSetup cs = BH__CONSOLE_SETUP__INIT;
	struct bh_vdriver_cfg cfg = { 0 };
	char path[256];
	int fd;

	assert_non_null(fx);
	snprintf(path, sizeof(path), "%s/bh-con-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fx->out_rd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fx->out_rd >= 0);
	unlink(path);
	fx->in_wr = -1;
	cs.max_size = 16384;
	cs.stop_when_full = stop;
	cfg.binary = BH_WORKER_DIR "/bulkhead-dev-console";
	cfg.type = BH__WORKER_SETUP__BACKEND_CONSOLE;
	cfg.backend = &cs;
	cfg.backend_fds = &fd;
	cfg.n_backend_fds = 1;
	cfg.ram_size = 16ULL << 20;
	cfg.id = "console0";
	assert_int_equal(bh_vdriver_start(&cfg, &fx->d), 0);
	close(fd);
	assert_int_equal(bh_vdriver_alloc(fx->d, 65536, 4096, &fx->buf), 0);
	*state = fx;
	return 0;
}

static int con_setup_truncate(void **state)
{
	return con_setup_file(state, false);
}

static int con_setup_stop(void **state)
{
	return con_setup_file(state, true);
}

static int con_teardown(void **state)
{
	struct con_fx *fx = *state;
	int status = 0, r;
	char why[128];

	r = bh_vdriver_stop(fx->d, BH_VDRIVER_TIMEOUT_MS, &status);
	if (r != 0)
		fprintf(stderr, "console worker: %s\n",
			bh_describe_status(status, why, sizeof(why)));
	close(fx->out_rd);
	if (fx->in_wr >= 0)
		close(fx->in_wr);
	free(fx);
	assert_int_equal(r, 0);
	return 0;
}

static void activate(struct con_fx *fx)
{
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);

	assert_int_equal(in->device_type, 3);
	assert_int_equal(in->num_queues, 2);
	assert_true(in->device_features & F_VERSION_1);
	assert_int_equal(bh_vdriver_queue_alloc(fx->d, RXQ, QSIZE), 0);
	assert_int_equal(bh_vdriver_queue_alloc(fx->d, TXQ, QSIZE), 0);
	assert_int_equal(bh_vdriver_activate(fx->d, F_VERSION_1), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

/* Reads exactly len bytes from fd within the test timeout. */
static void read_exact(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		assert_int_equal(poll(&p, 1, BH_VDRIVER_TIMEOUT_MS), 1);
		n = read(fd, (uint8_t *)buf + got, len - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
}

/* Nothing more to read from fd for a short while. */
static void expect_quiet(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	assert_int_equal(poll(&p, 1, 100), 0);
}

static void test_tx(void **state)
{
	struct con_fx *fx = *state;
	static const char msg[] = "hello from the guest\n";
	static const char part2[] = "second ";
	static const char part3[] = "chain\n";
	struct bh_vdriver_buf b[2];
	struct bh_vdriver_used u;
	char got[64];

	activate(fx);
	memcpy(bh_vdriver_gpa(fx->d, fx->buf, sizeof(msg)), msg,
	       sizeof(msg) - 1);
	b[0] = (struct bh_vdriver_buf){ fx->buf, sizeof(msg) - 1, false };
	assert_int_equal(bh_vdriver_submit(fx->d, TXQ, b, 1, 0, NULL), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, TXQ, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	assert_int_equal(u.len, 0);
	read_exact(fx->out_rd, got, sizeof(msg) - 1);
	assert_memory_equal(got, msg, sizeof(msg) - 1);

	/* Two buffers in one chain arrive in order. */
	memcpy(bh_vdriver_gpa(fx->d, fx->buf + 4096, 16), part2,
	       sizeof(part2) - 1);
	memcpy(bh_vdriver_gpa(fx->d, fx->buf + 8192, 16), part3,
	       sizeof(part3) - 1);
	b[0] =
	    (struct bh_vdriver_buf){ fx->buf + 4096, sizeof(part2) - 1, false };
	b[1] =
	    (struct bh_vdriver_buf){ fx->buf + 8192, sizeof(part3) - 1, false };
	assert_int_equal(bh_vdriver_submit(fx->d, TXQ, b, 2, 0, NULL), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, TXQ, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	read_exact(fx->out_rd, got, sizeof(part2) + sizeof(part3) - 2);
	assert_memory_equal(got, "second chain\n", 13);
	expect_quiet(fx->out_rd);

	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	{
		uint64_t v = 0;

		assert_int_equal(bh_vdriver_counter(fx->d, "tx_bytes", &v), 0);
		assert_int_equal(v, sizeof(msg) - 1 + 13);
	}
}

/* Sends n transmit chains of len bytes (from fx->buf) and waits for every
 * one to come back used. */
static void send_tx(struct con_fx *fx, unsigned int n, uint32_t len)
{
	struct bh_vdriver_buf b = { fx->buf, len, false };
	struct bh_vdriver_used u;

	for (unsigned int i = 0; i < n; i++)
		assert_int_equal(bh_vdriver_submit(fx->d, TXQ, &b, 1, 0, NULL),
				 0);
	for (unsigned int i = 0; i < n; i++)
		assert_int_equal(
		    bh_vdriver_wait_used(fx->d, TXQ, BH_VDRIVER_TIMEOUT_MS, &u),
		    1);
}

static uint64_t counter(struct con_fx *fx, const char *name)
{
	uint64_t v = 0;

	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_int_equal(bh_vdriver_counter(fx->d, name, &v), 0);
	return v;
}

/*
 * Nobody reads the output (a paused terminal, a stdout pipe left alone):
 * the guest's transmit buffers still come back at once, what does not fit
 * is dropped and counted, and output flows again once the reader reads.
 */
static void test_tx_stalled_reader(void **state)
{
	struct con_fx *fx = *state;
	uint8_t *p = bh_vdriver_gpa(fx->d, fx->buf, 65536);
	uint64_t sent = 48ULL * 65536, dropped, got = 0;
	char buf[65536];

	activate(fx);
	memset(p, 'x', 65536);
	send_tx(fx, 48, 65536);
	assert_int_equal(counter(fx, "tx_bytes"), sent);
	dropped = counter(fx, "tx_dropped");
	assert_true(dropped > 0);
	assert_true(dropped < sent);
	assert_true(bh_vdriver_alive(fx->d));

	/* The reader wakes up: everything kept arrives. */
	for (;;) {
		struct pollfd pfd = { .fd = fx->out_rd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 500) == 0)
			break;
		n = read(fx->out_rd, buf, sizeof(buf));
		assert_true(n > 0);
		got += (uint64_t)n;
	}
	assert_int_equal(got, sent - dropped);
	memcpy(p, "after\n", 6);
	send_tx(fx, 1, 6);
	read_exact(fx->out_rd, buf, 6);
	assert_memory_equal(buf, "after\n", 6);
	assert_int_equal(counter(fx, "tx_dropped"), dropped);
}

static off_t out_size(struct con_fx *fx)
{
	struct stat st;

	assert_int_equal(fstat(fx->out_rd, &st), 0);
	return st.st_size;
}

/* max_size=16K, on_full=truncate: the file is emptied (ftruncate, which
 * the worker's filter allows) and holds only the newest output. */
static void test_tx_file_truncate(void **state)
{
	struct con_fx *fx = *state;
	uint8_t *p = bh_vdriver_gpa(fx->d, fx->buf, 65536);
	char got[8];

	activate(fx);
	memset(p, 'a', 6000);
	send_tx(fx, 6, 6000); /* 36000 = 2 * 16384 + 3232 */
	memcpy(p, "newest", 6);
	send_tx(fx, 1, 6);
	assert_int_equal(out_size(fx), 36006 - 2 * 16384);
	assert_int_equal(pread(fx->out_rd, got, 6, 36000 - 2 * 16384), 6);
	assert_memory_equal(got, "newest", 6);
	assert_int_equal(counter(fx, "tx_dropped"), 0);
	assert_true(bh_vdriver_alive(fx->d));
}

/* max_size=16K, on_full=stop: the file keeps its first 16K. */
static void test_tx_file_stop(void **state)
{
	struct con_fx *fx = *state;
	uint8_t *p = bh_vdriver_gpa(fx->d, fx->buf, 65536);

	activate(fx);
	memset(p, 'a', 6000);
	send_tx(fx, 6, 6000);
	assert_int_equal(out_size(fx), 16384);
	assert_int_equal(counter(fx, "tx_dropped"), 36000 - 16384);
	assert_true(bh_vdriver_alive(fx->d));
}

/* Posts n receive buffers of len bytes, 4 KiB apart from fx->buf. */
static void post_rx(struct con_fx *fx, unsigned int n, uint32_t len)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct bh_vdriver_buf b = { fx->buf + 4096ULL * i, len, true };

		memset(bh_vdriver_gpa(fx->d, b.gpa, len), 0, len);
		assert_int_equal(bh_vdriver_add(fx->d, RXQ, &b, 1, 0, NULL), 0);
	}
	assert_int_equal(bh_vdriver_kick(fx->d, RXQ), 0);
}

/* Collects want bytes from used receive buffers (head i is at
 * fx->buf + 4096 * i, as post_rx placed them when the queue was fresh). */
static void collect_rx(struct con_fx *fx, char *out, size_t want)
{
	size_t got = 0;

	while (got < want) {
		struct bh_vdriver_used u;

		assert_int_equal(
		    bh_vdriver_wait_used(fx->d, RXQ, BH_VDRIVER_TIMEOUT_MS, &u),
		    1);
		assert_true(u.len > 0);
		assert_true(got + u.len <= want);
		memcpy(out + got,
		       bh_vdriver_gpa(fx->d, fx->buf + 4096ULL * u.id, u.len),
		       u.len);
		got += u.len;
	}
}

static void test_rx(void **state)
{
	struct con_fx *fx = *state;
	static const char typed[] = "typed on the host";
	char big[100], got[100];
	uint64_t v = 0;
	size_t i;

	activate(fx);
	post_rx(fx, 4, 64);
	assert_int_equal(write(fx->in_wr, typed, sizeof(typed) - 1),
			 (ssize_t)sizeof(typed) - 1);
	collect_rx(fx, got, sizeof(typed) - 1);
	assert_memory_equal(got, typed, sizeof(typed) - 1);

	/* More than one buffer holds: split over two (or more). */
	for (i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	assert_int_equal(write(fx->in_wr, big, sizeof(big)),
			 (ssize_t)sizeof(big));
	collect_rx(fx, got, sizeof(big));
	assert_memory_equal(got, big, sizeof(big));

	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_int_equal(bh_vdriver_counter(fx->d, "rx_bytes", &v), 0);
	assert_int_equal(v, sizeof(typed) - 1 + sizeof(big));
}

/* Input typed before the guest posts buffers waits for them, and the end of
 * the input does not end the worker. */
static void test_rx_late_buffers(void **state)
{
	struct con_fx *fx = *state;
	char got[8];

	activate(fx);
	assert_int_equal(write(fx->in_wr, "early", 5), 5);
	usleep(50 * 1000);
	post_rx(fx, 2, 64);
	collect_rx(fx, got, 5);
	assert_memory_equal(got, "early", 5);
	close(fx->in_wr);
	fx->in_wr = -1;
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_true(bh_vdriver_alive(fx->d));
}

/* Paused, the worker reads no input and takes no output; resumed, both
 * flow again, nothing lost. */
static void test_pause(void **state)
{
	struct con_fx *fx = *state;
	static const char msg[] = "said while paused\n";
	struct bh_vdriver_buf b;
	struct bh_vdriver_used u;
	char got[32];

	activate(fx);
	post_rx(fx, 2, 64);
	assert_int_equal(bh_vdriver_pause(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_int_equal(write(fx->in_wr, "held", 4), 4);
	memcpy(bh_vdriver_gpa(fx->d, fx->buf + 32768, sizeof(msg)), msg,
	       sizeof(msg) - 1);
	b = (struct bh_vdriver_buf){ fx->buf + 32768, sizeof(msg) - 1, false };
	assert_int_equal(bh_vdriver_submit(fx->d, TXQ, &b, 1, 0, NULL), 0);
	assert_int_equal(bh_vdriver_wait_used(fx->d, RXQ, 300, &u), -ETIMEDOUT);
	assert_int_equal(bh_vdriver_get_used(fx->d, TXQ, &u), 0);
	expect_quiet(fx->out_rd);

	assert_int_equal(bh_vdriver_resume(fx->d), 0);
	collect_rx(fx, got, 4);
	assert_memory_equal(got, "held", 4);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, TXQ, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	read_exact(fx->out_rd, got, sizeof(msg) - 1);
	assert_memory_equal(got, msg, sizeof(msg) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tx, con_setup,
						con_teardown),
		cmocka_unit_test_setup_teardown(test_pause, con_setup,
						con_teardown),
		cmocka_unit_test_setup_teardown(test_rx, con_setup,
						con_teardown),
		cmocka_unit_test_setup_teardown(test_rx_late_buffers, con_setup,
						con_teardown),
		cmocka_unit_test_setup_teardown(test_tx_stalled_reader,
						con_setup, con_teardown),
		cmocka_unit_test_setup_teardown(
		    test_tx_file_truncate, con_setup_truncate, con_teardown),
		cmocka_unit_test_setup_teardown(test_tx_file_stop,
						con_setup_stop, con_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
