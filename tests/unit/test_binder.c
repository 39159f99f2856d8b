/* The binder (controller/binder.c) as the controller meets it: a real forked
 * binder under its own filter, asked for unix and TCP listeners and TCP
 * connections, refusing what it must, lost when killed, and ended by every
 * frame no honest controller sends; and its filter alone, loaded in a
 * child. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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

/* ---- TCP ---------------------------------------------------------------- */

/* The port fd is bound to, by getsockname. */
static int local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	assert_int_equal(ss.ss_family, AF_INET6);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int sock_opt(int fd, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	assert_int_equal(getsockopt(fd, SOL_SOCKET, opt, &v, &len), 0);
	return v;
}

/* A blocking client of family to loopback:port; the fd or -errno. */
static int tcp_client(int family, int port)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6,
				   .sin6_port = htons((uint16_t)port),
				   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in s4 = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r;

	assert_true(fd >= 0);
	r = family == AF_INET ? connect(fd, (struct sockaddr *)&s4, sizeof(s4))
			      : connect(fd, (struct sockaddr *)&s6, sizeof(s6));
	if (r < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* a and b are the two ends of one connection: bytes pass both ways. */
static void assert_linked(int a, int b)
{
	struct pollfd p = { .fd = b, .events = POLLIN };
	char buf[2];

	assert_int_equal(write(a, "hi", 2), 2);
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(read(b, buf, 2), 2);
	assert_memory_equal(buf, "hi", 2);
	p.fd = a;
	assert_int_equal(write(b, "ok", 2), 2);
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(read(a, buf, 2), 2);
	assert_memory_equal(buf, "ok", 2);
}

/* fd is a TCP listener of family on port, as the binder hands them over:
 * a client connects and is accepted. */
static void assert_tcp_listens(int fd, int family, int port)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int c, a;

	assert_int_equal(sock_opt(fd, SO_DOMAIN), family);
	assert_int_equal(sock_opt(fd, SO_ACCEPTCONN), 1);
	assert_int_equal(sock_opt(fd, SO_REUSEADDR), 1);
	assert_int_equal(local_port(fd), port);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(accept4(fd, NULL, NULL, SOCK_CLOEXEC), -1);
	assert_int_equal(errno, EAGAIN);
	c = tcp_client(family, port);
	assert_true(c >= 0);
	assert_int_equal(poll(&p, 1, 5000), 1);
	a = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(a >= 0);
	assert_linked(c, a);
	close(a);
	close(c);
}

/* Port 0: the kernel picks one, and the answer says which; a port asked
 * for is the one it listens on; IPv6 too. */
static void test_tcp_listen(void **state)
{
	struct fx *fx = *state;
	int fd = -1, fd2 = -1, port = 0, port2 = 0, r;

	assert_int_equal(
	    bh_binder_listen_tcp(fx->b, "127.0.0.1", 0, 4, &fd, &port), 0);
	assert_true(port > 0 && port <= 65535);
	assert_tcp_listens(fd, AF_INET, port);
	/* The same port taken: the kernel's EADDRINUSE, SO_REUSEADDR or
	 * not; on every address too. */
	assert_int_equal(
	    bh_binder_listen_tcp(fx->b, "127.0.0.1", port, 4, &fd2, &port2),
	    -EADDRINUSE);
	assert_int_equal(fd2, -1);
	assert_int_equal(port2, 0);
	assert_int_equal(
	    bh_binder_listen_tcp(fx->b, "0.0.0.0", port, 4, &fd2, &port2),
	    -EADDRINUSE);
	close(fd);
	/* Free again: asked for by number. */
	assert_int_equal(
	    bh_binder_listen_tcp(fx->b, "127.0.0.1", port, 1, &fd, &port2), 0);
	assert_int_equal(port2, port);
	assert_tcp_listens(fd, AF_INET, port);
	close(fd);
	/* Every address. */
	assert_int_equal(
	    bh_binder_listen_tcp(fx->b, "0.0.0.0", 0, 4, &fd, &port), 0);
	assert_tcp_listens(fd, AF_INET, port);
	close(fd);
	r = bh_binder_listen_tcp(fx->b, "::1", 0, 4, &fd, &port);
	if (r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL) {
		fprintf(stderr,
			"test_binder: no IPv6 loopback here (%s): "
			"the IPv6 listener is not checked\n",
			strerror(-r));
	} else {
		assert_int_equal(r, 0);
		assert_tcp_listens(fd, AF_INET6, port);
		close(fd);
	}
	/* An address that is not the host's. */
	assert_int_equal(
	    bh_binder_listen_tcp(fx->b, "192.0.2.1", 0, 4, &fd, &port),
	    -EADDRNOTAVAIL);
	assert_true(bh_binder_alive(fx->b));
}

/* Sends a BindTcp or ConnectTcp with host as len bytes, reads the answer's
 * error. */
static int raw_tcp(struct bh_binder *b, bool connect, const char *host,
		   size_t len, int port, int n)
{
	Bh__BindTcp bind = BH__BIND_TCP__INIT;
	Bh__ConnectTcp conn = BH__CONNECT_TCP__INIT;
	struct bh_frame_reader rd;
	struct bh_frame f;
	int r;

	bind.host.data = conn.host.data = (uint8_t *)host;
	bind.host.len = conn.host.len = len;
	bind.port = conn.port = port;
	bind.backlog = conn.timeout_ms = n;
	assert_int_equal(bh_frame_send_timeout(
			     bh_binder_fd(b),
			     connect ? BH__MSG_TYPE__MSG_CONNECT_TCP
				     : BH__MSG_TYPE__MSG_BIND_TCP,
			     connect ? &conn.base : &bind.base, NULL, 0, 1000),
			 0);
	bh_frame_reader_init(&rd, 1024);
	assert_int_equal(bh_frame_read_timeout(bh_binder_fd(b), &rd, &f, 5000),
			 0);
	assert_int_equal(f.nfds, 0);
	if (connect) {
		Bh__ConnectedTcp *rep;

		assert_int_equal(f.type, BH__MSG_TYPE__MSG_CONNECTED_TCP);
		rep = bh__connected_tcp__unpack(NULL, f.len, f.body);
		assert_non_null(rep);
		r = rep->error;
		bh__connected_tcp__free_unpacked(rep, NULL);
	} else {
		Bh__Bound *rep;

		assert_int_equal(f.type, BH__MSG_TYPE__MSG_BOUND);
		rep = bh__bound__unpack(NULL, f.len, f.body);
		assert_non_null(rep);
		r = rep->error;
		assert_int_equal(rep->port, 0);
		bh__bound__free_unpacked(rep, NULL);
	}
	bh_frame_release(&f);
	return r;
}

/* Names, literals that are not quite, brackets, scopes, ports, backlogs
 * and timeouts out of range: refused in the answer, nothing made, and the
 * binder serves on. */
static void test_tcp_refused(void **state)
{
	static const char *const hosts[] = {
		"localhost",
		"",
		"1.2.3",
		"127.0.0.1 ",
		" 127.0.0.1",
		"127.0.0.01",
		"256.0.0.1",
		"0x7f.0.0.1",
		"[::1]",
		"::1%lo",
		"fe80::1%1",
		"127.0.0.1:80",
		"::g",
		/* 46 characters: longer than any literal */
		"0000:0000:0000:0000:0000:ffff:255.255.255.2555",
	};
	struct fx *fx = *state;
	int fd = 7, port = 7, a = -1, p = 0;

	for (size_t i = 0; i < BH_ARRAY_SIZE(hosts); i++) {
		if (bh_binder_listen_tcp(fx->b, hosts[i], 0, 4, &fd, &port) !=
			-EINVAL ||
		    bh_binder_connect_tcp(fx->b, hosts[i], 1, 1000, &fd) !=
			-EINVAL)
			fail_msg("host '%s' not refused", hosts[i]);
		assert_int_equal(fd, -1);
		assert_int_equal(port, 0);
	}
	/* The same sent as they are, the long one past the controller's own
	 * check: the binder refuses them itself. */
	for (size_t i = 0; i < BH_ARRAY_SIZE(hosts); i++) {
		if (raw_tcp(fx->b, false, hosts[i], strlen(hosts[i]), 0, 4) !=
			EINVAL ||
		    raw_tcp(fx->b, true, hosts[i], strlen(hosts[i]), 1, 100) !=
			EINVAL)
			fail_msg("host '%s' not refused by the binder",
				 hosts[i]);
	}
	/* A NUL inside: not the address before it. */
	assert_int_equal(raw_tcp(fx->b, false, "127.0.0.1\0x", 11, 0, 4),
			 EINVAL);
	assert_int_equal(raw_tcp(fx->b, true, "127.0.0.1\0x", 11, 1, 100),
			 EINVAL);
	assert_int_equal(
	    bh_binder_listen_tcp(fx->b, "127.0.0.1", -1, 4, &fd, &port),
	    -EINVAL);
	assert_int_equal(
	    bh_binder_listen_tcp(fx->b, "127.0.0.1", 65536, 4, &fd, &port),
	    -EINVAL);
	assert_int_equal(
	    bh_binder_listen_tcp(fx->b, "127.0.0.1", 0, 0, &fd, &port),
	    -EINVAL);
	assert_int_equal(
	    bh_binder_listen_tcp(fx->b, "127.0.0.1", 0, 4097, &fd, &port),
	    -EINVAL);
	/* A real listener, so that only the argument is wrong below. */
	assert_int_equal(bh_binder_listen_tcp(fx->b, "127.0.0.1", 0, 4, &a, &p),
			 0);
	assert_int_equal(
	    bh_binder_connect_tcp(fx->b, "127.0.0.1", 0, 1000, &fd), -EINVAL);
	assert_int_equal(
	    bh_binder_connect_tcp(fx->b, "127.0.0.1", 65536, 1000, &fd),
	    -EINVAL);
	assert_int_equal(bh_binder_connect_tcp(fx->b, "127.0.0.1", p, 0, &fd),
			 -EINVAL);
	assert_int_equal(bh_binder_connect_tcp(fx->b, "127.0.0.1", p, -5, &fd),
			 -EINVAL);
	assert_int_equal(
	    bh_binder_connect_tcp(fx->b, "127.0.0.1", p, 600001, &fd), -EINVAL);
	assert_int_equal(fd, -1);
	/* Nothing connected to it. */
	assert_int_equal(accept4(a, NULL, NULL, SOCK_CLOEXEC), -1);
	assert_int_equal(errno, EAGAIN);
	assert_true(bh_binder_alive(fx->b));
	assert_int_equal(
	    bh_binder_connect_tcp(fx->b, "127.0.0.1", p, 1000, &fd), 0);
	close(fd);
	close(a);
}

/* Connected through the binder to a listener, over IPv4 and IPv6: a
 * non-blocking, close-on-exec socket linked to the accepted end. */
static void test_tcp_connect(void **state)
{
	static const struct {
		int family;
		const char *host;
	} to[] = { { AF_INET, "127.0.0.1" }, { AF_INET6, "::1" } };
	struct fx *fx = *state;

	for (size_t i = 0; i < BH_ARRAY_SIZE(to); i++) {
		struct pollfd p = { .events = POLLIN };
		int l = -1, c = -1, a, port = 0, r;

		r = bh_binder_listen_tcp(fx->b, to[i].host, 0, 4, &l, &port);
		if (to[i].family == AF_INET6 &&
		    (r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL)) {
			fprintf(stderr,
				"test_binder: no IPv6 loopback here "
				"(%s): not checked\n",
				strerror(-r));
			continue;
		}
		assert_int_equal(r, 0);
		assert_int_equal(
		    bh_binder_connect_tcp(fx->b, to[i].host, port, 5000, &c),
		    0);
		assert_true(c >= 0);
		assert_true(fcntl(c, F_GETFL) & O_NONBLOCK);
		assert_true(fcntl(c, F_GETFD) & FD_CLOEXEC);
		assert_int_equal(sock_opt(c, SO_DOMAIN), to[i].family);
		assert_int_equal(sock_opt(c, SO_ACCEPTCONN), 0);
		assert_int_equal(sock_opt(c, SO_ERROR), 0);
		p.fd = l;
		assert_int_equal(poll(&p, 1, 5000), 1);
		a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		assert_true(a >= 0);
		assert_linked(c, a);
		close(a);
		close(c);
		close(l);
	}
}

/* A port nobody listens on: ECONNREFUSED, answered. */
static void test_tcp_connect_refused(void **state)
{
	struct fx *fx = *state;
	int l = -1, fd = 7, port = 0;

	assert_int_equal(
	    bh_binder_listen_tcp(fx->b, "127.0.0.1", 0, 4, &l, &port), 0);
	close(l);
	assert_int_equal(
	    bh_binder_connect_tcp(fx->b, "127.0.0.1", port, 5000, &fd),
	    -ECONNREFUSED);
	assert_int_equal(fd, -1);
	assert_true(bh_binder_alive(fx->b));
}

/*
 * A listener that answers no SYN: one of backlog 0 with its queue full
 * (the kernel drops what comes then), proved by a client of our own that
 * stays unconnected. Returns the listener and its port; the clients stay
 * in *held (up to 8) until release_blackhole.
 */
struct blackhole {
	int l;
	int port;
	int held[8];
	size_t n;
};

static void make_blackhole(struct blackhole *bh)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	bh->l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(bh->l >= 0);
	assert_int_equal(bind(bh->l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(bh->l, 0), 0);
	bh->port = local_port(bh->l);
	sa.sin_port = htons((uint16_t)bh->port);
	for (bh->n = 0; bh->n < BH_ARRAY_SIZE(bh->held);) {
		struct pollfd p = { .events = POLLOUT };
		int c = socket(AF_INET,
			       SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		assert_true(c >= 0);
		bh->held[bh->n++] = c;
		if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			continue;
		assert_int_equal(errno, EINPROGRESS);
		p.fd = c;
		if (poll(&p, 1, 300) == 0)
			return;
	}
	fail_msg("a listener of backlog 0 still answered after %zu clients",
		 bh->n);
}

static void release_blackhole(struct blackhole *bh)
{
	for (size_t i = 0; i < bh->n; i++)
		close(bh->held[i]);
	close(bh->l);
}

/* A connect that does not finish: ETIMEDOUT after the timeout, not long
 * after, and the binder serves on. */
static void test_tcp_connect_timeout(void **state)
{
	struct fx *fx = *state;
	struct blackhole bh;
	int fd = 7, l = -1, port = 0;
	uint64_t t0, took;

	make_blackhole(&bh);
	t0 = now_ms();
	assert_int_equal(
	    bh_binder_connect_tcp(fx->b, "127.0.0.1", bh.port, 400, &fd),
	    -ETIMEDOUT);
	took = now_ms() - t0;
	assert_int_equal(fd, -1);
	if (took < 390 || took > 3000)
		fail_msg("a 400 ms connect timed out after %llu ms",
			 (unsigned long long)took);
	assert_true(bh_binder_alive(fx->b));
	assert_int_equal(
	    bh_binder_listen_tcp(fx->b, "127.0.0.1", 0, 4, &l, &port), 0);
	close(l);
	release_blackhole(&bh);
}

/* The controller closes its socket while the binder waits for a connect:
 * the binder ends at once, not when the connect gives up. */
static void test_tcp_connect_hangup(void **state)
{
	struct fx *fx = *state;
	Bh__ConnectTcp req = BH__CONNECT_TCP__INIT;
	pid_t pid = bh_binder_pid(fx->b);
	struct blackhole bh;
	uint64_t t0;

	make_blackhole(&bh);
	req.host.data = (uint8_t *)"127.0.0.1";
	req.host.len = strlen("127.0.0.1");
	req.port = bh.port;
	req.timeout_ms = 60000;
	assert_int_equal(bh_frame_send_timeout(bh_binder_fd(fx->b),
					       BH__MSG_TYPE__MSG_CONNECT_TCP,
					       &req.base, NULL, 0, 1000),
			 0);
	/* Under way. */
	usleep(100000);
	t0 = now_ms();
	/* Reaps it, killing it only after a grace of 1 s. */
	bh_binder_stop(fx->b);
	fx->b = NULL;
	assert_true(now_ms() - t0 < 800);
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	release_blackhole(&bh);
}

/* A frame while a connect is under way is a controller out of step: the
 * binder ends. */
static void test_tcp_connect_out_of_step(void **state)
{
	struct fx *fx = *state;
	Bh__ConnectTcp req = BH__CONNECT_TCP__INIT;
	struct blackhole bh;
	uint64_t t0;

	make_blackhole(&bh);
	req.host.data = (uint8_t *)"127.0.0.1";
	req.host.len = strlen("127.0.0.1");
	req.port = bh.port;
	req.timeout_ms = 60000;
	for (int i = 0; i < 2; i++)
		assert_int_equal(
		    bh_frame_send_timeout(bh_binder_fd(fx->b),
					  BH__MSG_TYPE__MSG_CONNECT_TCP,
					  &req.base, NULL, 0, 1000),
		    0);
	t0 = now_ms();
	/* Ended with the second frame unread: its socket is reset rather
	 * than closed. */
	{
		struct bh_frame_reader rd;
		struct bh_frame f;
		int r, fd;

		bh_frame_reader_init(&rd, 1024);
		r = bh_frame_read_timeout(bh_binder_fd(fx->b), &rd, &f, 5000);
		if (r != -EPIPE && r != -ECONNRESET)
			fail_msg("read after a frame out of step: %s",
				 strerror(-r));
		assert_int_equal(bh_binder_listen(fx->b, fx->path, 16, &fd),
				 -ECHILD);
		assert_false(bh_binder_alive(fx->b));
	}
	assert_true(now_ms() - t0 < 5000);
	release_blackhole(&bh);
}

/* A BindTcp or ConnectTcp with an fd attached ends it as Bind's does. */
static void test_tcp_fd_attached(void **state)
{
	struct fx *fx = *state;
	Bh__ConnectTcp req = BH__CONNECT_TCP__INIT;
	int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_true(null_fd >= 0);
	req.host.data = (uint8_t *)"127.0.0.1";
	req.host.len = strlen("127.0.0.1");
	req.port = 1;
	req.timeout_ms = 100;
	assert_int_equal(bh_frame_send(bh_binder_fd(fx->b),
				       BH__MSG_TYPE__MSG_CONNECT_TCP, &req.base,
				       &null_fd, 1),
			 0);
	close(null_fd);
	assert_ended(fx);
}

/* ---- the filter alone --------------------------------------------------- */

enum call {
	CALL_LISTENER = 0, /* the binder's own: socket, bind, listen */
	CALL_TCP,	   /* and its TCP listener and connection */
	CALL_SOCKET_INET_DGRAM,
	CALL_SOCKET_INET_RAW,
	CALL_SOCKET_INET6_BLOCKING,
	CALL_SOCKET_NETLINK,
	CALL_SOCKET_DGRAM,
	CALL_SOCKET_BLOCKING,
	CALL_SETSOCKOPT_OTHER,
	CALL_SETSOCKOPT_TCP,
	CALL_GETSOCKOPT_OTHER,
	CALL_ACCEPT,
	CALL_OPENAT,
	CALL_UNLINK,
	CALL_GETPID,
	CALL_KILL,
	CALL_EXECVE,
	CALL_FORK,
};

/* Under the binder's filter: a TCP listener on 127.0.0.1 with the calls
 * the binder makes for one (port 0, SO_REUSEADDR, getsockname), a
 * non-blocking connect to it, waited for with poll and SO_ERROR, and an
 * IPv6 socket. 0, or the step that failed. */
static int tcp_under_filter(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	const int type = SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK;
	socklen_t len = sizeof(sa);
	int l, c, one = 1, err = -1;
	struct pollfd p = { .events = POLLOUT };

	l = (int)syscall(SYS_socket, AF_INET, type, 0);
	if (l < 0)
		return 110;
	if (syscall(SYS_setsockopt, l, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one)) < 0 ||
	    syscall(SYS_bind, l, &sa, sizeof(sa)) < 0 ||
	    syscall(SYS_listen, l, 4) < 0 ||
	    syscall(SYS_getsockname, l, &sa, &len) < 0 || sa.sin_port == 0)
		return 111;
	c = (int)syscall(SYS_socket, AF_INET, type, 0);
	if (c < 0)
		return 112;
	if (syscall(SYS_connect, c, &sa, sizeof(sa)) < 0 &&
	    errno != EINPROGRESS)
		return 113;
	p.fd = c;
	len = sizeof(err);
	if (syscall(SYS_poll, &p, 1, 5000) != 1 ||
	    syscall(SYS_getsockopt, c, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ||
	    err != 0)
		return 114;
	/* Made, or refused by a host without IPv6: not killed. */
	syscall(SYS_socket, AF_INET6, type, 0);
	return 0;
}

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
		case CALL_TCP:
			_exit(tcp_under_filter());
		case CALL_SOCKET_INET_DGRAM:
			syscall(SYS_socket, AF_INET,
				SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			break;
		case CALL_SOCKET_INET_RAW:
			syscall(SYS_socket, AF_INET,
				SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
				IPPROTO_ICMP);
			break;
		case CALL_SOCKET_INET6_BLOCKING:
			syscall(SYS_socket, AF_INET6,
				SOCK_STREAM | SOCK_CLOEXEC, 0);
			break;
		case CALL_SOCKET_NETLINK:
			syscall(SYS_socket, AF_NETLINK,
				SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			break;
		case CALL_SETSOCKOPT_OTHER:
			syscall(SYS_setsockopt, -1, SOL_SOCKET, SO_BROADCAST,
				&(int){ 1 }, sizeof(int));
			break;
		case CALL_SETSOCKOPT_TCP:
			syscall(SYS_setsockopt, -1, IPPROTO_TCP, SO_REUSEADDR,
				&(int){ 1 }, sizeof(int));
			break;
		case CALL_GETSOCKOPT_OTHER:
			syscall(SYS_getsockopt, -1, SOL_SOCKET, SO_PEERCRED,
				NULL, NULL);
			break;
		case CALL_ACCEPT:
			syscall(SYS_accept4, -1, NULL, NULL, 0);
			break;
		case CALL_SOCKET_DGRAM:
			syscall(SYS_socket, AF_UNIX,
				SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			break;
		case CALL_SOCKET_BLOCKING:
			syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
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
		CALL_SOCKET_INET_DGRAM,
		CALL_SOCKET_INET_RAW,
		CALL_SOCKET_INET6_BLOCKING,
		CALL_SOCKET_NETLINK,
		CALL_SOCKET_DGRAM,
		CALL_SOCKET_BLOCKING,
		CALL_SETSOCKOPT_OTHER,
		CALL_SETSOCKOPT_TCP,
		CALL_GETSOCKOPT_OTHER,
		CALL_ACCEPT,
		CALL_OPENAT,
		CALL_UNLINK,
		CALL_GETPID,
		CALL_KILL,
		CALL_EXECVE,
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
	status = under_filter(CALL_TCP, fx->path);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("TCP under the binder's filter: status 0x%x",
			 (unsigned int)status);
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
		cmocka_unit_test_setup_teardown(test_tcp_listen, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tcp_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tcp_connect, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tcp_connect_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tcp_connect_timeout, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tcp_connect_hangup, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tcp_connect_out_of_step,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_fd_attached, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_filter, setup, teardown),
	};

	/* A binder that ends must not take us with it through a write to
	 * its closed socket. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
