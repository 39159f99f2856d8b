/* The binder (controller/binder.c) as the controller meets it: a real forked
 * binder under its own filter, asked for listeners, refusing what it must,
 * lost when killed, and ended by every frame no honest controller sends;
 * and its filter alone, loaded in a child. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <bulkhead/frame.h>
#include <bulkhead/util.h>

#include "binder.h"
#include "ctlseccomp.h"
#include "proto/internal.pb-c.h"

struct fx {
	char dir[256];
	char path[300];
	struct bh_binder *b;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "%s/bh-binder-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/l.sock", fx->dir);
	/* The binder's working directory: whatever a relative path would
	 * make lands there. */
	assert_int_equal(chdir(fx->dir), 0);
	assert_int_equal(bh_binder_start("test", NULL, &fx->b), 0);
	assert_true(bh_binder_alive(fx->b));
	assert_true(bh_binder_pid(fx->b) > 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[400];

	bh_binder_stop(fx->b);
	assert_int_equal(chdir("/"), 0);
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

/* fd listens at path: a client connects, and is accepted on fd. */
static void assert_listens(int fd, const char *path)
{
	struct stat st;
	int c, a;

	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* Nobody yet: a non-blocking accept says so at once. */
	assert_int_equal(accept4(fd, NULL, NULL, SOCK_CLOEXEC), -1);
	assert_int_equal(errno, EAGAIN);
	c = client(path);
	assert_true(c >= 0);
	assert_int_equal(write(c, "hi", 2), 2);
	a = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(a >= 0);
	{
		char buf[2];

		assert_int_equal(read(a, buf, 2), 2);
		assert_memory_equal(buf, "hi", 2);
	}
	close(a);
	close(c);
}

static void test_listen(void **state)
{
	struct fx *fx = *state;
	char second[320];
	int fd = -1, fd2 = -1;

	assert_int_equal(bh_binder_listen(fx->b, fx->path, 16, &fd), 0);
	assert_true(fd >= 0);
	assert_listens(fd, fx->path);
	/* A second one, while the first stays open. */
	snprintf(second, sizeof(second), "%s/second.sock", fx->dir);
	assert_int_equal(bh_binder_listen(fx->b, second, 1, &fd2), 0);
	assert_listens(fd2, second);
	assert_listens(fd, fx->path);
	close(fd);
	close(fd2);
	assert_true(bh_binder_alive(fx->b));
}

/* A path that exists is the kernel's EADDRINUSE, answered; the binder
 * serves on. */
static void test_exists(void **state)
{
	struct fx *fx = *state;
	int fd = 7, f;

	f = open(fx->path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(f >= 0);
	close(f);
	assert_int_equal(bh_binder_listen(fx->b, fx->path, 16, &fd),
			 -EADDRINUSE);
	assert_int_equal(fd, -1);
	assert_true(bh_binder_alive(fx->b));
	/* The file is left as it was. */
	{
		struct stat st;

		assert_int_equal(lstat(fx->path, &st), 0);
		assert_true(S_ISREG(st.st_mode));
	}
	/* A directory that is not there. */
	{
		char p[320];

		snprintf(p, sizeof(p), "%s/no/such.sock", fx->dir);
		assert_int_equal(bh_binder_listen(fx->b, p, 16, &fd), -ENOENT);
	}
	unlink(fx->path);
	assert_int_equal(bh_binder_listen(fx->b, fx->path, 16, &fd), 0);
	close(fd);
}

/* Sends a Bind of len bytes of path as it is, reads the answer. */
static int raw_bind(struct bh_binder *b, const char *path, size_t len,
		    int backlog)
{
	Bh__Bind req = BH__BIND__INIT;
	struct bh_frame_reader rd;
	struct bh_frame f;
	Bh__Bound *rep;
	int r;

	req.path.data = (uint8_t *)path;
	req.path.len = len;
	req.backlog = backlog;
	assert_int_equal(bh_frame_send_timeout(bh_binder_fd(b),
					       BH__MSG_TYPE__MSG_BIND,
					       &req.base, NULL, 0, 1000),
			 0);
	bh_frame_reader_init(&rd, 1024);
	assert_int_equal(bh_frame_read_timeout(bh_binder_fd(b), &rd, &f, 5000),
			 0);
	assert_int_equal(f.type, BH__MSG_TYPE__MSG_BOUND);
	assert_int_equal(f.nfds, 0);
	rep = bh__bound__unpack(NULL, f.len, f.body);
	assert_non_null(rep);
	r = rep->error;
	bh__bound__free_unpacked(rep, NULL);
	bh_frame_release(&f);
	return r;
}

/* What the user may have typed wrong is refused with an answer, never by
 * ending the binder, and nothing is made. */
static void test_refused(void **state)
{
	struct fx *fx = *state;
	char longp[200], nul[320];
	size_t len;
	int fd = 7;

	assert_int_equal(bh_binder_listen(fx->b, "rel.sock", 16, &fd), -EINVAL);
	assert_int_equal(fd, -1);
	assert_int_equal(access("rel.sock", F_OK), -1);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(bh_binder_listen(fx->b, longp, 16, &fd),
			 -ENAMETOOLONG);
	/* 107 bytes fit sun_path with its NUL; 108 do not. */
	longp[108] = '\0';
	assert_int_equal(bh_binder_listen(fx->b, longp, 16, &fd),
			 -ENAMETOOLONG);
	assert_int_equal(bh_binder_listen(fx->b, "", 16, &fd), -EINVAL);
	assert_int_equal(bh_binder_listen(fx->b, fx->path, 0, &fd), -EINVAL);
	assert_int_equal(bh_binder_listen(fx->b, fx->path, 4097, &fd), -EINVAL);
	assert_int_equal(bh_binder_listen(fx->b, fx->path, -1, &fd), -EINVAL);
	assert_int_equal(access(fx->path, F_OK), -1);
	/* A NUL inside the path: not the shorter path before it. */
	len = strlen(fx->path);
	memcpy(nul, fx->path, len);
	memcpy(nul + len, "\0x", 2);
	assert_int_equal(raw_bind(fx->b, nul, len + 2, 16), EINVAL);
	assert_int_equal(raw_bind(fx->b, fx->path, 0, 16), EINVAL);
	assert_int_equal(access(fx->path, F_OK), -1);
	assert_true(bh_binder_alive(fx->b));
	/* And it still serves. */
	assert_int_equal(bh_binder_listen(fx->b, fx->path, 16, &fd), 0);
	assert_listens(fd, fx->path);
	close(fd);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Killed, the binder is found gone at the next request, at once, and is
 * reaped; every later request fails the same way. */
static void test_killed(void **state)
{
	struct fx *fx = *state;
	pid_t pid = bh_binder_pid(fx->b);
	uint64_t t0;
	int fd = 7;

	assert_int_equal(kill(pid, SIGKILL), 0);
	t0 = now_ms();
	assert_int_equal(bh_binder_listen(fx->b, fx->path, 16, &fd), -ECHILD);
	assert_true(now_ms() - t0 < 2000);
	assert_int_equal(fd, -1);
	assert_false(bh_binder_alive(fx->b));
	assert_int_equal(bh_binder_pid(fx->b), -1);
	/* Reaped: no such child any more. */
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(bh_binder_listen(fx->b, fx->path, 16, &fd), -ECHILD);
	assert_int_equal(access(fx->path, F_OK), -1);
}

/* /proc/PID/status's value for key, "" if none. */
static void status_field(pid_t pid, const char *key, char *out, size_t len)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	FILE *f;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			char *v = line + klen + 1;

			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			snprintf(out, len, "%s", v);
			break;
		}
	}
	fclose(f);
}

/* The fds the binder holds, as a bit per fd number below 64; -1 if its
 * /proc/PID/fd cannot be read. */
static int64_t held_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	int64_t set = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d) {
		fprintf(stderr,
			"test_binder: %s: %s (the binder is not dumpable: "
			"reading it needs root)\n",
			path, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		int n;

		if (e->d_name[0] == '.')
			continue;
		n = atoi(e->d_name);
		assert_true(n >= 0 && n < 63);
		set |= (int64_t)1 << n;
	}
	closedir(d);
	return set;
}

/* Sandboxed as it says, holding nothing but its socket and the standard
 * fds, before a request and after one. */
static void test_sandboxed(void **state)
{
	struct fx *fx = *state;
	pid_t pid = bh_binder_pid(fx->b);
	static const char *const caps[] = { "CapInh", "CapPrm", "CapEff",
					    "CapBnd", "CapAmb" };
	char v[128], comm[64], path[64];
	int fd, cf;
	ssize_t n;

	status_field(pid, "Seccomp", v, sizeof(v));
	assert_string_equal(v, "2");
	status_field(pid, "NoNewPrivs", v, sizeof(v));
	assert_string_equal(v, "1");
	for (size_t i = 0; i < BH_ARRAY_SIZE(caps); i++) {
		status_field(pid, caps[i], v, sizeof(v));
		assert_string_equal(v, "0000000000000000");
	}
	/* Its own session, out of the terminal's reach. */
	status_field(pid, "NSsid", v, sizeof(v));
	assert_int_equal(atoi(v), (int)pid);
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	cf = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(cf >= 0);
	n = read(cf, comm, sizeof(comm) - 1);
	close(cf);
	assert_true(n > 0);
	comm[n] = '\0';
	assert_string_equal(comm, "bulkhead-binder\n");

	assert_int_equal(held_fds(pid), 0xf);
	assert_int_equal(bh_binder_listen(fx->b, fx->path, 16, &fd), 0);
	close(fd);
	/* Its copy goes right after the answer that carried it: wait (a
	 * bounded while) for that close, not past it. */
	for (int i = 0; i < 200 && held_fds(pid) != 0xf; i++)
		usleep(10000);
	assert_int_equal(held_fds(pid), 0xf);
}

/* The binder closed its socket: it ended, as it must on a bad frame, and
 * the controller's side finds it lost. */
static void assert_ended(struct fx *fx)
{
	struct bh_frame_reader rd;
	struct bh_frame f;
	int fd;

	bh_frame_reader_init(&rd, 1024);
	assert_int_equal(
	    bh_frame_read_timeout(bh_binder_fd(fx->b), &rd, &f, 5000), -EPIPE);
	assert_int_equal(bh_binder_listen(fx->b, fx->path, 16, &fd), -ECHILD);
	assert_false(bh_binder_alive(fx->b));
	assert_int_equal(access(fx->path, F_OK), -1);
}

static void test_other_type(void **state)
{
	struct fx *fx = *state;
	Bh__Quit q = BH__QUIT__INIT;

	assert_int_equal(bh_frame_send(bh_binder_fd(fx->b),
				       BH__MSG_TYPE__MSG_QUIT, &q.base, NULL,
				       0),
			 0);
	assert_ended(fx);
}

/* A Bind with an fd attached: Bind carries none. */
static void test_fd_attached(void **state)
{
	struct fx *fx = *state;
	Bh__Bind req = BH__BIND__INIT;
	int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_true(null_fd >= 0);
	req.path.data = (uint8_t *)fx->path;
	req.path.len = strlen(fx->path);
	req.backlog = 16;
	assert_int_equal(bh_frame_send(bh_binder_fd(fx->b),
				       BH__MSG_TYPE__MSG_BIND, &req.base,
				       &null_fd, 1),
			 0);
	close(null_fd);
	assert_ended(fx);
}

/* A header that announces more than the binder reads, and bytes that are
 * no frame at all. */
static void test_bad_frames(void **state)
{
	static const uint8_t huge[8] = {
		0x00, 0x00, 0x10, 0x00, BH__MSG_TYPE__MSG_BIND, 0, 0, 0
	};
	static const uint8_t junk[8] = { 4, 0, 0, 0, BH__MSG_TYPE__MSG_BIND,
					 0, 0, 7 };
	static const uint8_t body[12] = {
		4,    0,    0,	  0,   BH__MSG_TYPE__MSG_BIND, 0, 0, 0,
		0xff, 0xff, 0xff, 0xff
	};
	const uint8_t *bad[] = { huge, junk, body };
	const size_t len[] = { sizeof(huge), sizeof(junk), sizeof(body) };
	struct fx *fx = *state;

	for (size_t i = 0; i < BH_ARRAY_SIZE(bad); i++) {
		if (i > 0) {
			bh_binder_stop(fx->b);
			assert_int_equal(bh_binder_start("test", NULL, &fx->b),
					 0);
		}
		assert_int_equal(write(bh_binder_fd(fx->b), bad[i], len[i]),
				 (ssize_t)len[i]);
		assert_ended(fx);
	}
}

/* ---- the filter alone --------------------------------------------------- */

enum call {
	CALL_LISTENER = 0, /* the binder's own: socket, bind, listen */
	CALL_SOCKET_INET,
	CALL_SOCKET_DGRAM,
	CALL_SOCKET_BLOCKING,
	CALL_CONNECT,
	CALL_OPENAT,
	CALL_UNLINK,
	CALL_GETPID,
	CALL_KILL,
	CALL_EXECVE,
	CALL_FORK,
};

/* In a child: the binder's filter, then one call. Returns its wait
 * status. */
static int under_filter(enum call c, const char *path)
{
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd = -1;

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		if (bh_binder_seccomp_install() < 0)
			_exit(100);
		switch (c) {
		case CALL_LISTENER:
			fd = (int)syscall(
			    SYS_socket, AF_UNIX,
			    SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (fd < 0 ||
			    syscall(SYS_bind, fd, &sa, sizeof(sa)) < 0 ||
			    syscall(SYS_listen, fd, 4) < 0)
				_exit(101);
			syscall(SYS_close, fd);
			break;
		case CALL_SOCKET_INET:
			syscall(SYS_socket, AF_INET,
				SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			break;
		case CALL_SOCKET_DGRAM:
			syscall(SYS_socket, AF_UNIX,
				SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			break;
		case CALL_SOCKET_BLOCKING:
			syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
			break;
		case CALL_CONNECT:
			syscall(SYS_connect, -1, &sa, sizeof(sa));
			break;
		case CALL_OPENAT:
			syscall(SYS_openat, AT_FDCWD, "/", O_RDONLY);
			break;
		case CALL_UNLINK:
			syscall(SYS_unlink, path);
			break;
		case CALL_GETPID:
			syscall(SYS_getpid);
			break;
		case CALL_KILL:
			syscall(SYS_kill, 1, 0);
			break;
		case CALL_EXECVE:
			syscall(SYS_execve, "/bin/true", NULL, NULL);
			break;
		case CALL_FORK:
			syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
			break;
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void test_filter(void **state)
{
	static const enum call killed[] = {
		CALL_SOCKET_INET, CALL_SOCKET_DGRAM, CALL_SOCKET_BLOCKING,
		CALL_CONNECT,	  CALL_OPENAT,	     CALL_UNLINK,
		CALL_GETPID,	  CALL_KILL,	     CALL_EXECVE,
		CALL_FORK,
	};
	struct fx *fx = *state;
	struct stat st;
	int status;

	status = under_filter(CALL_LISTENER, fx->path);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(lstat(fx->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	for (size_t i = 0; i < BH_ARRAY_SIZE(killed); i++) {
		status = under_filter(killed[i], fx->path);
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
			fail_msg("call %d: status 0x%x, not killed by SIGSYS",
				 (int)killed[i], (unsigned int)status);
	}
	/* unlink was refused: the socket file is still there. */
	assert_int_equal(lstat(fx->path, &st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_listen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sandboxed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_other_type, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fd_attached, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_frames, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_filter, setup, teardown),
	};

	/* A binder that ends must not take us with it through a write to
	 * its closed socket. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
