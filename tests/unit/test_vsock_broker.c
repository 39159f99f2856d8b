/* Unit tests for the controller's vsock broker (controller/vsock.c): the
 * listening socket and its stale file, accepting in bursts in a libevent
 * loop, stopping, and connecting to <socket>_<port>; and opening, accepting,
 * closing and the refusals again under the controller's own filter, with
 * the listener made by the binder. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "binder.h"
#include "ctlseccomp.h"
#include "vsock.h"

#define MAX_FDS 256

struct fx {
	char dir[256];
	char path[300];
	struct event_base *base;
	int fds[MAX_FDS]; /* accepted */
	unsigned int nfds;
};

static void on_conn(void *arg, int fd)
{
	struct fx *fx = arg;

	assert_true(fx->nfds < MAX_FDS);
	fx->fds[fx->nfds++] = fd;
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "%s/bh-vsock-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/v.sock", fx->dir);
	fx->base = event_base_new();
	assert_non_null(fx->base);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[400];

	for (unsigned int i = 0; i < fx->nfds; i++)
		close(fx->fds[i]);
	event_base_free(fx->base);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static int client(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

/* A listener at path with backlog; returns its fd. */
static int listener(const char *path, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, backlog), 0);
	return fd;
}

static void test_accept(void **state)
{
	struct fx *fx = *state;
	struct bh_vsock_broker *b;
	char err[256] = "", buf[8];
	struct stat st;
	int c, fl;

	assert_int_equal(bh_vsock_broker_open(fx->path, &b, err, sizeof(err)),
			 0);
	assert_int_equal(lstat(fx->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(bh_vsock_broker_start(b, fx->base, on_conn, fx), 0);
	c = client(fx->path);
	assert_true(c >= 0);
	assert_int_equal(write(c, "CONNECT 1\n", 10), 10);
	assert_int_equal(event_base_loop(fx->base, EVLOOP_ONCE), 0);
	assert_int_equal(fx->nfds, 1);
	fl = fcntl(fx->fds[0], F_GETFL);
	assert_true(fl & O_NONBLOCK);
	assert_true(fcntl(fx->fds[0], F_GETFD) & FD_CLOEXEC);
	/* Nothing was read: the worker reads the line. */
	assert_int_equal(read(fx->fds[0], buf, 8), 8);
	assert_memory_equal(buf, "CONNECT ", 8);
	close(c);

	/* Stopped: connections wait, nobody takes them. */
	bh_vsock_broker_stop(b);
	c = client(fx->path);
	assert_true(c >= 0);
	assert_int_equal(event_base_loop(fx->base, EVLOOP_NONBLOCK), 1);
	assert_int_equal(fx->nfds, 1);
	/* Started again: it is taken. */
	assert_int_equal(bh_vsock_broker_start(b, fx->base, on_conn, fx), 0);
	assert_int_equal(event_base_loop(fx->base, EVLOOP_ONCE), 0);
	assert_int_equal(fx->nfds, 2);
	close(c);

	bh_vsock_broker_close(b);
	assert_int_equal(lstat(fx->path, &st), -1);
	assert_int_equal(errno, ENOENT);
}

/* A flood of clients is taken a burst per turn of the loop. */
static void test_accept_burst(void **state)
{
	struct fx *fx = *state;
	struct bh_vsock_broker *b;
	int cl[100];
	char err[256];
	unsigned int turns = 0;

	assert_int_equal(bh_vsock_broker_open(fx->path, &b, err, sizeof(err)),
			 0);
	assert_int_equal(bh_vsock_broker_start(b, fx->base, on_conn, fx), 0);
	for (unsigned int i = 0; i < 100; i++) {
		cl[i] = client(fx->path);
		assert_true(cl[i] >= 0);
	}
	while (fx->nfds < 100) {
		unsigned int before = fx->nfds;

		assert_int_equal(event_base_loop(fx->base, EVLOOP_ONCE), 0);
		assert_true(fx->nfds - before <= BH_VSOCK_ACCEPT_BURST);
		assert_true(++turns <= 100);
	}
	assert_true(turns >= 100 / BH_VSOCK_ACCEPT_BURST);
	for (unsigned int i = 0; i < 100; i++)
		close(cl[i]);
	bh_vsock_broker_close(b);
}

static void test_existing_files(void **state)
{
	struct fx *fx = *state;
	struct bh_vsock_broker *b = NULL;
	char err[512] = "", longp[200];
	struct stat st;
	int fd, l;

	/* A regular file is refused, named, and left alone. */
	fd = open(fx->path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(bh_vsock_broker_open(fx->path, &b, err, sizeof(err)),
			 -EEXIST);
	assert_null(b);
	assert_non_null(strstr(err, fx->path));
	assert_int_equal(lstat(fx->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	unlink(fx->path);

	/* A socket someone listens on is refused. */
	l = listener(fx->path, 4);
	assert_int_equal(bh_vsock_broker_open(fx->path, &b, err, sizeof(err)),
			 -EADDRINUSE);
	assert_non_null(strstr(err, fx->path));
	/* Once nobody listens, it is stale and replaced. */
	close(l);
	assert_int_equal(lstat(fx->path, &st), 0);
	assert_int_equal(bh_vsock_broker_open(fx->path, &b, err, sizeof(err)),
			 0);
	fd = client(fx->path);
	assert_true(fd >= 0);
	close(fd);
	bh_vsock_broker_close(b);

	/* Too long with _<port> after it. */
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;
	assert_int_equal(bh_vsock_broker_open(longp, &b, err, sizeof(err)),
			 -ENAMETOOLONG);
}

static void test_connect(void **state)
{
	struct fx *fx = *state;
	struct bh_vsock_broker *b;
	char err[256], lp[320];
	int l, fd, a, fill[64], nfill = 0, r;

	assert_int_equal(bh_vsock_broker_open(fx->path, &b, err, sizeof(err)),
			 0);
	/* Nobody there. */
	assert_int_equal(bh_vsock_broker_connect(b, 5000, &fd), -ENOENT);
	assert_int_equal(fd, -1);

	snprintf(lp, sizeof(lp), "%s_5000", fx->path);
	l = listener(lp, 0);
	assert_int_equal(bh_vsock_broker_connect(b, 5000, &fd), 0);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(a >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(a);
	close(fd);

	/* A listener that does not accept: its backlog fills, then EAGAIN
	 * at once rather than a wait. */
	for (;;) {
		r = bh_vsock_broker_connect(b, 5000, &fd);
		if (r < 0)
			break;
		assert_true(nfill < 64);
		fill[nfill++] = fd;
	}
	assert_int_equal(r, -EAGAIN);
	for (int i = 0; i < nfill; i++)
		close(fill[i]);
	close(l);
	/* The file is left, nobody listens. */
	assert_int_equal(bh_vsock_broker_connect(b, 5000, &fd), -ECONNREFUSED);
	bh_vsock_broker_close(b);
}

/*
 * In a child that is the controller once its filter is loaded: no bind or
 * listen any more. Returns 0, or the step that failed (as its exit
 * status); a bind or listen of its own would end it with SIGSYS.
 */
static int sandboxed_controller(struct fx *fx, const char *regular)
{
	struct event_base *base;
	struct bh_vsock_broker *b = NULL;
	struct bh_binder *binder = NULL;
	char err[512] = "";
	struct stat st;
	int c, r;

	base = event_base_new();
	if (!base || bh_binder_start("test", NULL, &binder) < 0)
		return 10;
	bh_vsock_set_binder(binder);
	if (bh_ctl_seccomp_install() < 0)
		return 11;
	/* A stale socket file is replaced, through the binder. */
	r = bh_vsock_broker_open(fx->path, &b, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "broker_open: %s\n", err);
		return 12;
	}
	if (lstat(fx->path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return 13;
	if (bh_vsock_broker_start(b, base, on_conn, fx) < 0)
		return 14;
	c = client(fx->path);
	if (c < 0 || event_base_loop(base, EVLOOP_ONCE) != 0 || fx->nfds != 1)
		return 15;
	close(c);
	bh_vsock_broker_close(b);
	if (lstat(fx->path, &st) == 0 || errno != ENOENT)
		return 16;
	/* Refusals that name the path and the reason, as before. */
	b = NULL;
	r = bh_vsock_broker_open(regular, &b, err, sizeof(err));
	if (r != -EEXIST || b || !strstr(err, regular))
		return 17;
	r = bh_vsock_broker_open("rel.sock", &b, err, sizeof(err));
	if (r != -EINVAL || b || !strstr(err, "rel.sock") ||
	    !strstr(err, "not an absolute path"))
		return 18;
	/* The binder gone: refused with a reason, at once. */
	if (kill(bh_binder_pid(binder), SIGKILL) < 0)
		return 19;
	r = bh_vsock_broker_open(fx->path, &b, err, sizeof(err));
	if (r != -ECHILD || b || !strstr(err, fx->path) ||
	    !strstr(err, "binder") || !strstr(err, "gone")) {
		fprintf(stderr, "after the binder's kill: %d: %s\n", r, err);
		return 20;
	}
	if (lstat(fx->path, &st) == 0)
		return 21;
	bh_vsock_set_binder(NULL);
	bh_binder_stop(binder);
	event_base_free(base);
	return 0;
}

static void test_after_filter(void **state)
{
	struct fx *fx = *state;
	char regular[320];
	int l, fd, status;
	pid_t pid;

	snprintf(regular, sizeof(regular), "%s/regular", fx->dir);
	fd = open(regular, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	/* A socket file nobody listens on any more. */
	l = listener(fx->path, 4);
	close(l);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(sandboxed_controller(fx, regular));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("the sandboxed controller: status 0x%x (exit %d, "
			 "signal %d)",
			 (unsigned int)status,
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	/* The listener is gone with the broker, and only the regular file
	 * is left. */
	assert_int_equal(access(fx->path, F_OK), -1);
	assert_int_equal(access(regular, F_OK), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_accept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_burst, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_existing_files, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_after_filter, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
