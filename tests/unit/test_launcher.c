/* The launcher (controller/launcher.c) as the controller meets it: a real
 * forked launcher under its own filter, asked for a worker, and fed the
 * requests no honest controller sends, each of which must end it. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <bulkhead/frame.h>
#include <bulkhead/util.h>

#include "launcher.h"
#include "proto/internal.pb-c.h"

static struct bh_launcher *start(void)
{
	struct bh_launcher_opts o = {
		.name = "test",
		.log_level = BH_LOG_WARN,
		.self_test = BH_SELF_TEST_NONE,
	};
	struct bh_launcher *l = NULL;

	assert_int_equal(bh_launcher_start(&o, &l), 0);
	assert_true(bh_launcher_alive(l));
	return l;
}

/* The launcher closed its socket: it ended, as it must on a bad request. */
static void assert_ended(struct bh_launcher *l)
{
	struct bh_frame_reader rd;
	struct bh_frame f;
	int sv[2];
	pid_t pid;

	bh_frame_reader_init(&rd, 1024);
	assert_int_equal(
	    bh_frame_read_timeout(bh_launcher_fd(l), &rd, &f, 5000), -EPIPE);
	/* And the controller's side finds it lost. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(
	    bh_launcher_spawn(l, BH_LAUNCH_RNG, "rng0", sv[1], &pid), -ECHILD);
	assert_false(bh_launcher_alive(l));
	close(sv[0]);
	close(sv[1]);
	bh_launcher_stop(l);
}

static void send_launch(struct bh_launcher *l, int kind, const char *id, int fd)
{
	Bh__Launch req = BH__LAUNCH__INIT;

	req.kind = (Bh__Launch__Kind)kind;
	req.id = (char *)id;
	assert_int_equal(bh_frame_send_timeout(bh_launcher_fd(l),
					       BH__MSG_TYPE__MSG_LAUNCH,
					       &req.base, fd >= 0 ? &fd : NULL,
					       fd >= 0 ? 1 : 0, 1000),
			 0);
}

/* A worker, started as our child, with the socket we gave at its fd 3. */
static void test_worker(void **state)
{
	struct bh_launcher *l = start();
	int sv[2], status;
	pid_t pid = -1;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(
	    bh_launcher_spawn(l, BH_LAUNCH_RNG, "rng0", sv[1], &pid), 0);
	assert_true(pid > 0);
	close(sv[1]);
	/* Ours to wait for: it ends when its socket closes. */
	close(sv[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* A second request on the same launcher. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(
	    bh_launcher_spawn(l, BH_LAUNCH_BLK, "disk0", sv[1], &pid), 0);
	close(sv[1]);
	close(sv[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(bh_launcher_alive(l));
	bh_launcher_stop(l);
}

static void bad_launch(int kind, const char *id, bool socket_fd)
{
	struct bh_launcher *l = start();
	int sv[2];

	if (socket_fd)
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	else
		assert_int_equal(pipe(sv), 0);
	send_launch(l, kind, id, sv[1]);
	close(sv[0]);
	close(sv[1]);
	assert_ended(l);
}

static void test_bad_kind(void **state)
{
	(void)state;
	bad_launch(0, "rng0", true);
	bad_launch(99, "rng0", true);
	bad_launch(-1, "rng0", true);
}

static void test_bad_id(void **state)
{
	(void)state;
	bad_launch(BH__LAUNCH__KIND__KIND_RUNNER, "x", true);
	bad_launch(BH__LAUNCH__KIND__KIND_RNG, "", true);
	bad_launch(BH__LAUNCH__KIND__KIND_RNG, "../../../bin/sh", true);
	bad_launch(BH__LAUNCH__KIND__KIND_RNG, "a b", true);
	bad_launch(BH__LAUNCH__KIND__KIND_RNG,
		   "abcdefghijklmnopqrstuvwxyz0123456", true);
}

static void test_not_a_socket(void **state)
{
	(void)state;
	bad_launch(BH__LAUNCH__KIND__KIND_RNG, "rng0", false);
}

static void test_no_fd(void **state)
{
	struct bh_launcher *l = start();

	(void)state;
	send_launch(l, BH__LAUNCH__KIND__KIND_RNG, "rng0", -1);
	assert_ended(l);
}

static void test_other_type(void **state)
{
	struct bh_launcher *l = start();
	Bh__Quit q = BH__QUIT__INIT;

	(void)state;
	assert_int_equal(bh_frame_send(bh_launcher_fd(l),
				       BH__MSG_TYPE__MSG_QUIT, &q.base, NULL,
				       0),
			 0);
	assert_ended(l);
}

/* A header that announces more than the launcher reads, and bytes that are
 * no frame at all. */
static void test_bad_frames(void **state)
{
	static const uint8_t huge[8] = {
		0x00, 0x00, 0x10, 0x00, BH__MSG_TYPE__MSG_LAUNCH, 0, 0, 0
	};
	static const uint8_t junk[8] = { 4, 0, 0, 0, BH__MSG_TYPE__MSG_LAUNCH,
					 0, 0, 7 };
	const uint8_t *bad[] = { huge, junk };

	(void)state;
	for (size_t i = 0; i < BH_ARRAY_SIZE(bad); i++) {
		struct bh_launcher *l = start();

		assert_int_equal(write(bh_launcher_fd(l), bad[i], 8), 8);
		assert_ended(l);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_worker),
		cmocka_unit_test(test_bad_kind),
		cmocka_unit_test(test_bad_id),
		cmocka_unit_test(test_not_a_socket),
		cmocka_unit_test(test_no_fd),
		cmocka_unit_test(test_other_type),
		cmocka_unit_test(test_bad_frames),
	};

	/* The launcher's children are ours; a worker that ends must not take
	 * us with it through a write to its closed socket. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
