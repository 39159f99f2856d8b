/* Unit tests for the systemd notify protocol (controller/sdnotify.c): a
 * datagram socket of the test's own stands in for systemd. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "sdnotify.h"

struct listener {
	char dir[64];
	char path[128];
	int fd;
};

/* A datagram socket at a path in a fresh directory, or abstract. */
static void listen_at(struct listener *l, bool abstract)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len;

	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(l->fd >= 0);
	if (abstract) {
		snprintf(l->path, sizeof(l->path), "@bh-test-sdnotify-%d",
			 (int)getpid());
		memcpy(sun.sun_path + 1, l->path + 1, strlen(l->path) - 1);
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				  strlen(l->path));
	} else {
		snprintf(l->dir, sizeof(l->dir),
			 "/tmp/bh-test-sdnotify-XXXXXX");
		assert_non_null(mkdtemp(l->dir));
		snprintf(l->path, sizeof(l->path), "%s/notify", l->dir);
		strcpy(sun.sun_path, l->path);
		len = sizeof(sun);
	}
	assert_int_equal(bind(l->fd, (struct sockaddr *)&sun, len), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", l->path, 1), 0);
}

static void listener_close(struct listener *l)
{
	close(l->fd);
	if (l->dir[0]) {
		unlink(l->path);
		rmdir(l->dir);
	}
	unsetenv("NOTIFY_SOCKET");
}

/* The next datagram, which must be exactly want. */
static void expect_datagram(struct listener *l, const char *want)
{
	char buf[512];
	ssize_t n;

	n = recv(l->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void test_unset(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(bh_sdnotify("READY=1"), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", "", 1), 0);
	assert_int_equal(bh_sdnotify("READY=1"), 0);
	unsetenv("NOTIFY_SOCKET");
}

static void test_path_socket(void **state)
{
	struct listener l = { .fd = -1 };
	int fds;

	listen_at(&l, false);
	fds = count_fds();
	assert_int_equal(bh_sdnotify("READY=1"), 0);
	expect_datagram(&l, "READY=1");
	assert_int_equal(bh_sdnotify("STATUS=Running"), 0);
	expect_datagram(&l, "STATUS=Running");
	assert_int_equal(bh_sdnotify("STOPPING=1\nSTATUS=Powering off"), 0);
	expect_datagram(&l, "STOPPING=1\nSTATUS=Powering off");
	/* Nothing left open, and the variable is still there for the next
	 * call. */
	assert_int_equal(count_fds(), fds);
	assert_string_equal(getenv("NOTIFY_SOCKET"), l.path);
	listener_close(&l);
}

static void test_abstract_socket(void **state)
{
	struct listener l = { .fd = -1 };

	listen_at(&l, true);
	assert_int_equal(bh_sdnotify("READY=1"), 0);
	expect_datagram(&l, "READY=1");
	assert_int_equal(bh_sdnotify("STOPPING=1"), 0);
	expect_datagram(&l, "STOPPING=1");
	assert_non_null(getenv("NOTIFY_SOCKET"));
	listener_close(&l);
}

static void test_missing_socket(void **state)
{
	struct listener l = { .fd = -1 };
	char path[160];

	/* The path's socket went away: nothing listens there. */
	listen_at(&l, false);
	snprintf(path, sizeof(path), "%s", l.path);
	listener_close(&l);
	assert_int_equal(setenv("NOTIFY_SOCKET", path, 1), 0);
	assert_int_equal(bh_sdnotify("READY=1"), -ENOENT);
	assert_int_equal(setenv("NOTIFY_SOCKET", "@bh-test-sdnotify-nobody", 1),
			 0);
	assert_int_equal(bh_sdnotify("READY=1"), -ECONNREFUSED);
	unsetenv("NOTIFY_SOCKET");
}

static void test_bad_address(void **state)
{
	static const char *const bad[] = { "relative/notify", "@", "x" };
	char longpath[200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(setenv("NOTIFY_SOCKET", bad[i], 1), 0);
		assert_int_equal(bh_sdnotify("READY=1"), -EINVAL);
	}
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(setenv("NOTIFY_SOCKET", longpath, 1), 0);
	assert_int_equal(bh_sdnotify("READY=1"), -EINVAL);
	assert_int_equal(setenv("NOTIFY_SOCKET", "/run/x", 1), 0);
	assert_int_equal(bh_sdnotify(""), -EINVAL);
	unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unset),
		cmocka_unit_test(test_path_socket),
		cmocka_unit_test(test_abstract_socket),
		cmocka_unit_test(test_missing_socket),
		cmocka_unit_test(test_bad_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
