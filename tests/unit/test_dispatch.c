/* Unit tests for dispatch.c and hello.c: the checks before any handler runs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "bulkhead/dispatch.h"
#include "bulkhead/hello.h"
#include "bulkhead/util.h"
#include "proto/internal.pb-c.h"

enum test_state {
	ST_INIT,
	ST_RUNNING,
	ST_STOPPED,
};

struct test_ctx {
	int calls;
	int ret;
	int take_fd;
	int taken_fd;
	uint32_t vcpus;
	char serial[64];
	int quit_msg_seen;
};

static int on_serial_in(void *opaque, const ProtobufCMessage *m,
			struct bh_frame *f)
{
	const Bh__SerialData *msg = (const Bh__SerialData *)m;
	struct test_ctx *ctx = opaque;

	ctx->calls++;
	assert_true(m->descriptor == &bh__serial_data__descriptor);
	assert_true(msg->data.len < sizeof(ctx->serial));
	memcpy(ctx->serial, msg->data.data, msg->data.len);
	ctx->serial[msg->data.len] = '\0';
	return ctx->ret;
}

static int on_runner_setup(void *opaque, const ProtobufCMessage *m,
			   struct bh_frame *f)
{
	const Bh__RunnerSetup *msg = (const Bh__RunnerSetup *)m;
	struct test_ctx *ctx = opaque;

	ctx->calls++;
	ctx->vcpus = msg->vcpus;
	assert_int_equal(f->nfds, 1);
	if (ctx->take_fd)
		ctx->taken_fd = bh_frame_take_fd(f, 0);
	return ctx->ret;
}

static int on_quit(void *opaque, const ProtobufCMessage *m, struct bh_frame *f)
{
	struct test_ctx *ctx = opaque;

	ctx->calls++;
	ctx->quit_msg_seen = m != NULL;
	return ctx->ret;
}

static int on_add_device(void *opaque, const ProtobufCMessage *m,
			 struct bh_frame *f)
{
	struct test_ctx *ctx = opaque;

	ctx->calls++;
	ctx->vcpus = f->nfds; /* reused: how many fds the handler saw */
	return ctx->ret;
}

static const struct bh_handler table[] = {
	{ BH__MSG_TYPE__MSG_RUNNER_ADD_DEVICE, BH_STATE(ST_INIT),
	  BH_NFDS_VARIABLE, &bh__runner_add_device__descriptor, on_add_device,
	  "add-device" },
	{ BH__MSG_TYPE__MSG_SERIAL_IN, BH_STATE(ST_RUNNING), 0,
	  &bh__serial_data__descriptor, on_serial_in, "serial-in" },
	{ BH__MSG_TYPE__MSG_RUNNER_SETUP, BH_STATE(ST_INIT), 1,
	  &bh__runner_setup__descriptor, on_runner_setup, "runner-setup" },
	{ BH__MSG_TYPE__MSG_QUIT,
	  BH_STATE(ST_INIT) | BH_STATE(ST_RUNNING) | BH_STATE(ST_STOPPED), 0,
	  &bh__quit__descriptor, on_quit, "quit" },
};

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Puts a frame through a real socket so that its fds are real copies. */
static void make_frame(uint16_t type, const ProtobufCMessage *msg,
		       const int *fds, unsigned int nfds, struct bh_frame *f)
{
	struct bh_frame_reader r;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(bh_frame_send(sv[0], type, msg, fds, nfds), 0);
	bh_frame_reader_init(&r, BH_FRAME_MAX_BODY);
	assert_int_equal(bh_frame_read(sv[1], &r, f), 1);
	bh_frame_reader_reset(&r);
	close(sv[0]);
	close(sv[1]);
}

static void make_serial_frame(const char *text, struct bh_frame *f)
{
	Bh__SerialData msg = BH__SERIAL_DATA__INIT;

	msg.data.data = (uint8_t *)text;
	msg.data.len = strlen(text);
	make_frame(BH__MSG_TYPE__MSG_SERIAL_IN, &msg.base, NULL, 0, f);
}

static void make_setup_frame(int memfd, struct bh_frame *f)
{
	Bh__RunnerSetup msg = BH__RUNNER_SETUP__INIT;

	msg.vcpus = 4;
	msg.memfd_size = 1 << 20;
	make_frame(BH__MSG_TYPE__MSG_RUNNER_SETUP, &msg.base, &memfd, 1, f);
}

static void assert_released(const struct bh_frame *f)
{
	unsigned int i;

	assert_null(f->body);
	for (i = 0; i < BH_FRAME_MAX_FDS; i++)
		assert_int_equal(f->fds[i], -1);
}

static void test_allowed(void **state)
{
	struct test_ctx ctx = { .ret = 7 };
	const char *name = NULL;
	struct bh_frame f;

	make_serial_frame("ttyS0 hello", &f);
	assert_int_equal(bh_dispatch(table, BH_ARRAY_SIZE(table), ST_RUNNING,
				     &f, &ctx, &name),
			 7);
	assert_int_equal(ctx.calls, 1);
	assert_string_equal(ctx.serial, "ttyS0 hello");
	assert_string_equal(name, "serial-in");
	assert_released(&f);
}

static void test_empty_body(void **state)
{
	struct test_ctx ctx = { 0 };
	const char *name = NULL;
	struct bh_frame f;

	make_frame(BH__MSG_TYPE__MSG_QUIT, NULL, NULL, 0, &f);
	assert_int_equal(f.len, 0);
	assert_int_equal(bh_dispatch(table, BH_ARRAY_SIZE(table), ST_STOPPED,
				     &f, &ctx, &name),
			 0);
	assert_int_equal(ctx.calls, 1);
	assert_true(ctx.quit_msg_seen);
	assert_string_equal(name, "quit");
}

static void test_unknown_type(void **state)
{
	struct test_ctx ctx = { 0 };
	const char *name = "x";
	struct bh_frame f;

	make_frame(BH__MSG_TYPE__MSG_STATS_REQUEST, NULL, NULL, 0, &f);
	assert_int_equal(bh_dispatch(table, BH_ARRAY_SIZE(table), ST_RUNNING,
				     &f, &ctx, &name),
			 -ENOMSG);
	assert_null(name);
	assert_int_equal(ctx.calls, 0);
	assert_released(&f);
}

static void test_wrong_state(void **state)
{
	struct test_ctx ctx = { 0 };
	const char *name = NULL;
	struct bh_frame f;

	make_serial_frame("early", &f);
	assert_int_equal(
	    bh_dispatch(table, BH_ARRAY_SIZE(table), ST_INIT, &f, &ctx, &name),
	    -EPERM);
	assert_string_equal(name, "serial-in");
	make_serial_frame("far out", &f);
	assert_int_equal(
	    bh_dispatch(table, BH_ARRAY_SIZE(table), 40, &f, &ctx, NULL),
	    -EPERM);
	assert_int_equal(ctx.calls, 0);
}

static void test_wrong_fd_count(void **state)
{
	Bh__SerialData serial = BH__SERIAL_DATA__INIT;
	struct test_ctx ctx = { 0 };
	int memfd, before;
	struct bh_frame f;

	/* RUNNER_SETUP without its memfd. */
	make_frame(BH__MSG_TYPE__MSG_RUNNER_SETUP, NULL, NULL, 0, &f);
	assert_int_equal(
	    bh_dispatch(table, BH_ARRAY_SIZE(table), ST_INIT, &f, &ctx, NULL),
	    -EPROTO);

	/* SERIAL_IN with an fd it must not carry: the fd is closed. */
	memfd = memfd_create("bh_test", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	before = count_fds();
	make_frame(BH__MSG_TYPE__MSG_SERIAL_IN, &serial.base, &memfd, 1, &f);
	assert_int_equal(count_fds(), before + 1);
	assert_int_equal(bh_dispatch(table, BH_ARRAY_SIZE(table), ST_RUNNING,
				     &f, &ctx, NULL),
			 -EPROTO);
	assert_int_equal(count_fds(), before);
	assert_int_equal(ctx.calls, 0);
	close(memfd);
}

/* A handler that declares a variable fd count sees every count, and the
 * fds it does not take are closed after it. */
static void test_variable_fds(void **state)
{
	Bh__RunnerAddDevice add = BH__RUNNER_ADD_DEVICE__INIT;
	struct test_ctx ctx = { 0 };
	int fds[3], before;
	struct bh_frame f;

	for (int i = 0; i < 3; i++) {
		fds[i] = memfd_create("bh_test", MFD_CLOEXEC);
		assert_true(fds[i] >= 0);
	}
	before = count_fds();
	for (unsigned int n = 0; n <= 3; n++) {
		make_frame(BH__MSG_TYPE__MSG_RUNNER_ADD_DEVICE, &add.base, fds,
			   n, &f);
		assert_int_equal(bh_dispatch(table, BH_ARRAY_SIZE(table),
					     ST_INIT, &f, &ctx, NULL),
				 0);
		assert_int_equal(ctx.vcpus, n);
		assert_int_equal(count_fds(), before);
	}
	assert_int_equal(ctx.calls, 4);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
}

static void test_garbage_body(void **state)
{
	static const uint8_t garbage[][4] = {
		{ 0x0a, 0x05, 'a', 'b' }, /* bytes field longer than the body */
		{ 0x0f, 0x00, 0x00, 0x00 }, /* wire type 7 does not exist */
		{ 0x08, 0xff, 0xff, 0xff }, /* unterminated varint */
	};
	struct test_ctx ctx = { 0 };
	struct bh_frame f;
	size_t i;

	for (i = 0; i < BH_ARRAY_SIZE(garbage); i++) {
		make_frame(BH__MSG_TYPE__MSG_SERIAL_IN, NULL, NULL, 0, &f);
		f.body = malloc(sizeof(garbage[i]));
		assert_non_null(f.body);
		memcpy(f.body, garbage[i], sizeof(garbage[i]));
		f.len = sizeof(garbage[i]);
		assert_int_equal(bh_dispatch(table, BH_ARRAY_SIZE(table),
					     ST_RUNNING, &f, &ctx, NULL),
				 -EBADMSG);
		assert_released(&f);
	}
	assert_int_equal(ctx.calls, 0);
}

static void test_fd_not_taken_is_closed(void **state)
{
	struct test_ctx ctx = { .take_fd = 0 };
	int memfd, before;
	struct bh_frame f;

	memfd = memfd_create("bh_test", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	before = count_fds();
	make_setup_frame(memfd, &f);
	assert_int_equal(count_fds(), before + 1);
	assert_int_equal(
	    bh_dispatch(table, BH_ARRAY_SIZE(table), ST_INIT, &f, &ctx, NULL),
	    0);
	assert_int_equal(ctx.calls, 1);
	assert_int_equal(ctx.vcpus, 4);
	assert_int_equal(count_fds(), before);
	close(memfd);
}

static void test_fd_taken_stays_open(void **state)
{
	struct test_ctx ctx = { .take_fd = 1, .taken_fd = -1 };
	struct stat a, b;
	struct bh_frame f;
	int memfd;

	memfd = memfd_create("bh_test", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	make_setup_frame(memfd, &f);
	assert_int_equal(
	    bh_dispatch(table, BH_ARRAY_SIZE(table), ST_INIT, &f, &ctx, NULL),
	    0);
	assert_true(ctx.taken_fd >= 0);
	assert_int_equal(fstat(ctx.taken_fd, &a), 0);
	assert_int_equal(fstat(memfd, &b), 0);
	assert_true(a.st_ino == b.st_ino);
	close(ctx.taken_fd);
	close(memfd);
}

/* Handshake. */

struct peer {
	int sock;
	const char *role;
	const char *expect;
	int ret;
};

static void *peer_thread(void *arg)
{
	struct peer *p = arg;

	p->ret = bh_hello_exchange(p->sock, p->role, p->expect);
	return NULL;
}

static void exchange(const char *role_a, const char *expect_a,
		     const char *role_b, const char *expect_b, int *ret_a,
		     int *ret_b, int sv[2])
{
	struct peer a = { sv[0], role_a, expect_a, 1 };
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, peer_thread, &a), 0);
	*ret_b = bh_hello_exchange(sv[1], role_b, expect_b);
	assert_int_equal(pthread_join(t, NULL), 0);
	*ret_a = a.ret;
}

static void test_hello_exchange(void **state)
{
	struct bh_frame_reader r;
	struct bh_frame f;
	int sv[2], ra, rb;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	exchange("controller", "vcpu-runner", "vcpu-runner", "controller", &ra,
		 &rb, sv);
	assert_int_equal(ra, 0);
	assert_int_equal(rb, 0);

	/* The handshake left the next frame in the socket. */
	assert_int_equal(
	    bh_frame_send(sv[0], BH__MSG_TYPE__MSG_QUIT, NULL, NULL, 0), 0);
	bh_frame_reader_init(&r, BH_FRAME_MAX_BODY);
	assert_int_equal(bh_frame_read(sv[1], &r, &f), 1);
	assert_int_equal(f.type, BH__MSG_TYPE__MSG_QUIT);
	bh_frame_release(&f);
	close(sv[0]);
	close(sv[1]);
}

static void test_hello_exchange_wrong_role(void **state)
{
	int sv[2], ra, rb;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	exchange("controller", "dev-blk", "vcpu-runner", NULL, &ra, &rb, sv);
	assert_int_equal(ra, -EPROTO);
	assert_int_equal(rb, 0);
	close(sv[0]);
	close(sv[1]);
}

static void make_hello(uint16_t type, uint32_t version, const char *role,
		       const int *fds, unsigned int nfds, struct bh_frame *f)
{
	Bh__Hello h = BH__HELLO__INIT;

	h.version = version;
	h.role = (char *)role;
	make_frame(type, &h.base, fds, nfds, f);
}

static void test_hello_check(void **state)
{
	struct bh_frame f;
	int memfd;

	make_hello(BH__MSG_TYPE__MSG_HELLO, BH_PROTO_VERSION, "controller",
		   NULL, 0, &f);
	assert_int_equal(bh_hello_check(&f, "controller"), 0);
	assert_int_equal(bh_hello_check(&f, NULL), 0);
	assert_int_equal(bh_hello_check(&f, "vcpu-runner"), -EPROTO);
	/* bh_hello_check does not release. */
	assert_non_null(f.body);
	bh_frame_release(&f);

	make_hello(BH__MSG_TYPE__MSG_HELLO, BH_PROTO_VERSION + 1, "controller",
		   NULL, 0, &f);
	assert_int_equal(bh_hello_check(&f, "controller"), -EPROTONOSUPPORT);
	bh_frame_release(&f);

	/* An empty body is a hello with version 0. */
	make_frame(BH__MSG_TYPE__MSG_HELLO, NULL, NULL, 0, &f);
	assert_int_equal(bh_hello_check(&f, NULL), -EPROTONOSUPPORT);
	bh_frame_release(&f);

	make_hello(BH__MSG_TYPE__MSG_ERROR, BH_PROTO_VERSION, "controller",
		   NULL, 0, &f);
	assert_int_equal(bh_hello_check(&f, "controller"), -EPROTO);
	bh_frame_release(&f);

	memfd = memfd_create("bh_test", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	make_hello(BH__MSG_TYPE__MSG_HELLO, BH_PROTO_VERSION, "controller",
		   &memfd, 1, &f);
	assert_int_equal(bh_hello_check(&f, "controller"), -EPROTO);
	bh_frame_release(&f);
	close(memfd);

	make_frame(BH__MSG_TYPE__MSG_HELLO, NULL, NULL, 0, &f);
	f.body = malloc(3);
	assert_non_null(f.body);
	memcpy(f.body, "\x12\x09x", 3);
	f.len = 3;
	assert_int_equal(bh_hello_check(&f, NULL), -EBADMSG);
	bh_frame_release(&f);
}

static void test_hello_exchange_bad_peer(void **state)
{
	Bh__Hello h = BH__HELLO__INIT;
	struct bh_frame_reader r;
	struct bh_frame f;
	int sv[2];

	/* The peer speaks another version; its hello is already queued, so a
	 * single thread can run the exchange. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	h.version = 99;
	h.role = "controller";
	assert_int_equal(
	    bh_frame_send(sv[0], BH__MSG_TYPE__MSG_HELLO, &h.base, NULL, 0), 0);
	assert_int_equal(bh_hello_exchange(sv[1], "vcpu-runner", "controller"),
			 -EPROTONOSUPPORT);
	/* Our own hello went out. */
	bh_frame_reader_init(&r, BH_FRAME_MAX_BODY);
	assert_int_equal(bh_frame_read(sv[0], &r, &f), 1);
	assert_int_equal(bh_hello_check(&f, "vcpu-runner"), 0);
	bh_frame_release(&f);

	/* The peer hangs up instead. */
	close(sv[0]);
	assert_int_equal(bh_hello_exchange(sv[1], "vcpu-runner", NULL), -EPIPE);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_variable_fds),
		cmocka_unit_test(test_empty_body),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_wrong_state),
		cmocka_unit_test(test_wrong_fd_count),
		cmocka_unit_test(test_garbage_body),
		cmocka_unit_test(test_fd_not_taken_is_closed),
		cmocka_unit_test(test_fd_taken_stays_open),
		cmocka_unit_test(test_hello_exchange),
		cmocka_unit_test(test_hello_exchange_wrong_role),
		cmocka_unit_test(test_hello_check),
		cmocka_unit_test(test_hello_exchange_bad_peer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
