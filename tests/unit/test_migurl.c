/* Migration URLs (controller/migurl.c): what parses and every refusal with
 * its message; and the sockets they name, made through a real binder: TCP
 * over 127.0.0.1 and ::1 with port 0, unix, refused and timed-out
 * connections, a binder gone, and all of it under the controller's own
 * filter. */
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
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <bulkhead/util.h>

#include "binder.h"
#include "ctlseccomp.h"
#include "migurl.h"

/* ---- parsing ------------------------------------------------------------ */

static void assert_parses(const char *text, enum bh_migurl_role role,
			  struct bh_migurl *url)
{
	char err[256] = "";

	if (bh_migurl_parse(text, role, url, err, sizeof(err)) != 0)
		fail_msg("'%s' refused: %s", text, err);
}

static void test_parse(void **state)
{
	char text[160], path[BH_MIGURL_PATH_MAX + 8];
	struct bh_migurl u;

	(void)state;
	assert_parses("unix:/run/bulkhead/mig.sock", BH_MIGURL_RECEIVE, &u);
	assert_int_equal(u.kind, BH_MIGURL_UNIX);
	assert_string_equal(u.path, "/run/bulkhead/mig.sock");
	assert_parses("unix:/run/bulkhead/mig.sock", BH_MIGURL_SEND, &u);
	assert_string_equal(u.path, "/run/bulkhead/mig.sock");
	/* 107 bytes: the most sun_path holds with its NUL. */
	memset(path, 'a', 107);
	path[0] = '/';
	path[107] = '\0';
	snprintf(text, sizeof(text), "unix:%s", path);
	assert_parses(text, BH_MIGURL_SEND, &u);
	assert_string_equal(u.path, path);

	assert_parses("tcp:192.0.2.7:6000", BH_MIGURL_SEND, &u);
	assert_int_equal(u.kind, BH_MIGURL_TCP);
	assert_int_equal(u.family, AF_INET);
	assert_string_equal(u.host, "192.0.2.7");
	assert_int_equal(u.port, 6000);
	assert_parses("tcp:0.0.0.0:6000", BH_MIGURL_RECEIVE, &u);
	assert_string_equal(u.host, "0.0.0.0");
	assert_parses("tcp:127.0.0.1:0", BH_MIGURL_RECEIVE, &u);
	assert_int_equal(u.port, 0);
	assert_parses("tcp:10.1.2.3:1", BH_MIGURL_SEND, &u);
	assert_int_equal(u.port, 1);
	assert_parses("tcp:10.1.2.3:65535", BH_MIGURL_SEND, &u);
	assert_int_equal(u.port, 65535);
	assert_parses("tcp:[::1]:6000", BH_MIGURL_SEND, &u);
	assert_int_equal(u.family, AF_INET6);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 6000);
	assert_parses("tcp:[::]:0", BH_MIGURL_RECEIVE, &u);
	assert_string_equal(u.host, "::");
	assert_parses("tcp:[2001:db8::ffff:192.0.2.1]:443", BH_MIGURL_SEND, &u);
	assert_string_equal(u.host, "2001:db8::ffff:192.0.2.1");

	/* Formatted back as it is read. */
	assert_parses("tcp:[::1]:6000", BH_MIGURL_SEND, &u);
	bh_migurl_format(&u, text, sizeof(text));
	assert_string_equal(text, "tcp:[::1]:6000");
	assert_parses("tcp:10.1.2.3:80", BH_MIGURL_SEND, &u);
	bh_migurl_format(&u, text, sizeof(text));
	assert_string_equal(text, "tcp:10.1.2.3:80");
	assert_parses("unix:/a/b", BH_MIGURL_SEND, &u);
	bh_migurl_format(&u, text, sizeof(text));
	assert_string_equal(text, "unix:/a/b");
}

static const struct refusal {
	const char *text;
	enum bh_migurl_role role;
	const char *why; /* in the message, after the URL */
} refusals[] = {
	{ "", BH_MIGURL_SEND, "expected unix:/PATH or tcp:HOST:PORT" },
	{ "x", BH_MIGURL_RECEIVE, "expected unix:/PATH or tcp:HOST:PORT" },
	{ "/run/mig.sock", BH_MIGURL_SEND,
	  "expected unix:/PATH or tcp:HOST:PORT" },
	{ "UNIX:/run/mig.sock", BH_MIGURL_SEND,
	  "expected unix:/PATH or tcp:HOST:PORT" },
	{ "tcp", BH_MIGURL_SEND, "expected unix:/PATH or tcp:HOST:PORT" },
	{ "http://192.0.2.1:80", BH_MIGURL_SEND,
	  "expected unix:/PATH or tcp:HOST:PORT" },
	{ "unix:", BH_MIGURL_RECEIVE, "not absolute" },
	{ "unix:mig.sock", BH_MIGURL_RECEIVE, "'mig.sock' is not absolute" },
	{ "unix:./mig.sock", BH_MIGURL_SEND, "not absolute" },
	{ "tcp:", BH_MIGURL_SEND, "expected tcp:HOST:PORT" },
	{ "tcp:192.0.2.1", BH_MIGURL_SEND, "expected tcp:HOST:PORT" },
	{ "tcp::6000", BH_MIGURL_RECEIVE, "no host" },
	{ "tcp:192.0.2.1:", BH_MIGURL_SEND, "port '' is not a number" },
	{ "tcp:192.0.2.1:0", BH_MIGURL_SEND,
	  "port '0' is not a number in 1..65535" },
	{ "tcp:192.0.2.1:65536", BH_MIGURL_SEND,
	  "port '65536' is not a number in 1..65535" },
	{ "tcp:192.0.2.1:65536", BH_MIGURL_RECEIVE,
	  "port '65536' is not a number in 0..65535" },
	{ "tcp:192.0.2.1:-1", BH_MIGURL_RECEIVE, "port '-1'" },
	{ "tcp:192.0.2.1:+80", BH_MIGURL_SEND, "port '+80'" },
	{ "tcp:192.0.2.1: 80", BH_MIGURL_SEND, "port ' 80'" },
	{ "tcp:192.0.2.1:80x", BH_MIGURL_SEND, "port '80x'" },
	{ "tcp:192.0.2.1:000080", BH_MIGURL_SEND, "port '000080'" },
	{ "tcp:192.0.2.1:0x50", BH_MIGURL_SEND, "port '0x50'" },
	{ "tcp:migration.example:6000", BH_MIGURL_SEND,
	  "'migration.example' is not an IPv4 address (names are not "
	  "resolved" },
	{ "tcp:localhost:6000", BH_MIGURL_SEND,
	  "'localhost' is not an IPv4 address" },
	{ "tcp:1.2.3:6000", BH_MIGURL_SEND, "'1.2.3' is not an IPv4" },
	{ "tcp:256.1.1.1:6000", BH_MIGURL_SEND, "not an IPv4" },
	{ "tcp:127.0.0.01:6000", BH_MIGURL_SEND, "not an IPv4" },
	{ "tcp: 127.0.0.1:6000", BH_MIGURL_SEND, "not an IPv4" },
	{ "tcp:::1:6000", BH_MIGURL_SEND, "an IPv6 address goes in brackets" },
	{ "tcp:[::1]6000", BH_MIGURL_SEND, "expected :PORT after the address" },
	{ "tcp:[::1]", BH_MIGURL_SEND, "expected :PORT after the address" },
	{ "tcp:[::1:6000", BH_MIGURL_SEND, "no ']'" },
	{ "tcp:[]:6000", BH_MIGURL_SEND, "no IPv6 address between" },
	{ "tcp:[192.0.2.1]:6000", BH_MIGURL_SEND,
	  "'192.0.2.1' is not an IPv6 address" },
	{ "tcp:[fe80::1%eth0]:6000", BH_MIGURL_SEND,
	  "'fe80::1%eth0' is not an IPv6 address" },
	{ "tcp:[::1]:0", BH_MIGURL_SEND, "port '0'" },
	{ "tcp:0.0.0.0:6000", BH_MIGURL_SEND, "'0.0.0.0' means every address" },
	{ "tcp:[::]:6000", BH_MIGURL_SEND, "'::' means every address" },
};

static void test_refused(void **state)
{
	char err[512], path[300], text[320];
	struct bh_migurl u;
	int r;

	(void)state;
	for (size_t i = 0; i < BH_ARRAY_SIZE(refusals); i++) {
		const struct refusal *t = &refusals[i];
		char want[256];

		err[0] = '\0';
		r = bh_migurl_parse(t->text, t->role, &u, err, sizeof(err));
		snprintf(want, sizeof(want), "migration URL '%s': ", t->text);
		if (r != -EINVAL || strncmp(err, want, strlen(want)) != 0 ||
		    !strstr(err, t->why))
			fail_msg("'%s': %d, '%s' (wanted '%s...%s')", t->text,
				 r, err, want, t->why);
	}
	/* 108 bytes do not fit sun_path with its NUL. */
	memset(path, 'a', 108);
	path[0] = '/';
	path[108] = '\0';
	snprintf(text, sizeof(text), "unix:%s", path);
	assert_int_equal(
	    bh_migurl_parse(text, BH_MIGURL_RECEIVE, &u, err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "longer than 107 bytes"));
	/* NULL is the empty URL. */
	assert_int_equal(
	    bh_migurl_parse(NULL, BH_MIGURL_SEND, &u, err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "expected unix:/PATH or tcp:HOST:PORT"));
}

/* ---- sockets ------------------------------------------------------------ */

struct fx {
	char dir[256];
	char path[300];
	struct bh_binder *b;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "%s/bh-migurl-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/mig.sock", fx->dir);
	assert_int_equal(bh_binder_start("test", NULL, &fx->b), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[400];

	bh_binder_stop(fx->b);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void parse(const char *text, enum bh_migurl_role role,
		  struct bh_migurl *u)
{
	char err[256];

	if (bh_migurl_parse(text, role, u, err, sizeof(err)) < 0)
		fail_msg("%s", err);
}

static int sock_opt(int fd, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	assert_int_equal(getsockopt(fd, SOL_SOCKET, opt, &v, &len), 0);
	return v;
}

/* l listens and c is connected to it, both as handed over: the accepted
 * end and c pass bytes both ways. */
static void assert_pair(int l, int c, int domain)
{
	struct pollfd p = { .fd = l, .events = POLLIN };
	char buf[4];
	int a;

	assert_int_equal(sock_opt(l, SO_ACCEPTCONN), 1);
	assert_int_equal(sock_opt(c, SO_ACCEPTCONN), 0);
	assert_int_equal(sock_opt(l, SO_DOMAIN), domain);
	assert_int_equal(sock_opt(c, SO_DOMAIN), domain);
	assert_true(fcntl(l, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(c, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(l, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(c, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(poll(&p, 1, 5000), 1);
	a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(a >= 0);
	assert_int_equal(write(c, "mig", 3), 3);
	p.fd = a;
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(read(a, buf, 3), 3);
	assert_memory_equal(buf, "mig", 3);
	assert_int_equal(write(a, "ok", 2), 2);
	p.fd = c;
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(read(c, buf, 2), 2);
	assert_memory_equal(buf, "ok", 2);
	close(a);
}

/* receive-migration tcp:127.0.0.1:0 then send-migration to the port it
 * reports; the same over ::1. */
static void test_tcp(void **state)
{
	static const struct {
		const char *listen, *prefix;
		int domain;
	} to[] = { { "tcp:127.0.0.1:0", "tcp:127.0.0.1:", AF_INET },
		   { "tcp:[::1]:0", "tcp:[::1]:", AF_INET6 } };
	struct fx *fx = *state;

	for (size_t i = 0; i < BH_ARRAY_SIZE(to); i++) {
		char err[512] = "", text[64];
		struct bh_migurl u;
		int l = -1, c = -1, port = 0, r;

		parse(to[i].listen, BH_MIGURL_RECEIVE, &u);
		r = bh_migurl_open_listen(fx->b, &u, &l, &port, err,
					  sizeof(err));
		if (to[i].domain == AF_INET6 &&
		    (r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL)) {
			fprintf(stderr,
				"test_migurl: no IPv6 loopback here: "
				"%s\n",
				err);
			continue;
		}
		if (r < 0)
			fail_msg("%s", err);
		assert_true(port > 0 && port <= 65535);
		snprintf(text, sizeof(text), "%s%d", to[i].prefix, port);
		parse(text, BH_MIGURL_SEND, &u);
		if (bh_migurl_connect(fx->b, &u, 5000, &c, err, sizeof(err)) <
		    0)
			fail_msg("%s", err);
		assert_pair(l, c, to[i].domain);
		close(c);
		/* The port taken: refused with a reason. */
		snprintf(text, sizeof(text), "%s%d", to[i].prefix, port);
		parse(text, BH_MIGURL_RECEIVE, &u);
		assert_int_equal(bh_migurl_open_listen(fx->b, &u, &c, &port,
						       err, sizeof(err)),
				 -EADDRINUSE);
		assert_int_equal(c, -1);
		assert_int_equal(port, 0);
		assert_non_null(strstr(err, text));
		assert_non_null(strstr(err, "cannot listen"));
		close(l);
	}
}

/* receive-migration unix:PATH, send-migration unix:PATH (the controller's
 * own connect); the path then exists and is refused to listen on again. */
static void test_unix(void **state)
{
	struct fx *fx = *state;
	char text[400], err[512];
	struct bh_migurl u;
	int l = -1, c = -1, port = 7;

	snprintf(text, sizeof(text), "unix:%s", fx->path);
	parse(text, BH_MIGURL_RECEIVE, &u);
	if (bh_migurl_open_listen(fx->b, &u, &l, &port, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_int_equal(port, 0);
	parse(text, BH_MIGURL_SEND, &u);
	/* No binder needed to connect over unix. */
	if (bh_migurl_connect(NULL, &u, 1000, &c, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_pair(l, c, AF_UNIX);
	close(c);
	assert_int_equal(
	    bh_migurl_open_listen(fx->b, &u, &c, &port, err, sizeof(err)),
	    -EADDRINUSE);
	assert_non_null(strstr(err, fx->path));
	assert_non_null(strstr(err, "the path exists"));
	close(l);
	/* Nobody listens on it any more. */
	assert_int_equal(
	    bh_migurl_connect(fx->b, &u, 1000, &c, err, sizeof(err)),
	    -ECONNREFUSED);
	assert_int_equal(c, -1);
	assert_non_null(strstr(err, fx->path));
	assert_non_null(strstr(err, "cannot connect"));
	assert_non_null(strstr(err, strerror(ECONNREFUSED)));
	unlink(fx->path);
	assert_int_equal(
	    bh_migurl_connect(fx->b, &u, 1000, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, strerror(ENOENT)));
	/* Relative or too long never gets this far: the parser refuses. */
}

/* A closed port: refused, with the URL and the reason. */
static void test_tcp_refused(void **state)
{
	struct fx *fx = *state;
	char err[512], text[64];
	struct bh_migurl u;
	int l = -1, c = 7, port = 0;

	parse("tcp:127.0.0.1:0", BH_MIGURL_RECEIVE, &u);
	assert_int_equal(
	    bh_migurl_open_listen(fx->b, &u, &l, &port, err, sizeof(err)), 0);
	close(l);
	snprintf(text, sizeof(text), "tcp:127.0.0.1:%d", port);
	parse(text, BH_MIGURL_SEND, &u);
	assert_int_equal(
	    bh_migurl_connect(fx->b, &u, 5000, &c, err, sizeof(err)),
	    -ECONNREFUSED);
	assert_int_equal(c, -1);
	assert_non_null(strstr(err, text));
	assert_non_null(strstr(err, strerror(ECONNREFUSED)));
	/* A timeout out of range, before anything is tried. */
	assert_int_equal(bh_migurl_connect(fx->b, &u, 0, &c, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "timeout of 0 ms"));
	assert_int_equal(
	    bh_migurl_connect(fx->b, &u, 600001, &c, err, sizeof(err)),
	    -EINVAL);
	/* An address not the host's, to listen on. */
	parse("tcp:192.0.2.1:0", BH_MIGURL_RECEIVE, &u);
	assert_int_equal(
	    bh_migurl_open_listen(fx->b, &u, &l, &port, err, sizeof(err)),
	    -EADDRNOTAVAIL);
	assert_non_null(strstr(err, "192.0.2.1 is not an address of this "
				    "host"));
}

/* A TCP listener whose full queue drops every SYN (backlog 0, one client
 * in it), or a unix one whose queue is full: connects there wait. */
static int tcp_blackhole(int *port, int held[8], size_t *n)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 0), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	for (*n = 0; *n < 8;) {
		struct pollfd p = { .events = POLLOUT };
		int c = socket(AF_INET,
			       SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		assert_true(c >= 0);
		held[(*n)++] = c;
		if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			continue;
		assert_int_equal(errno, EINPROGRESS);
		p.fd = c;
		if (poll(&p, 1, 300) == 0)
			return l;
	}
	fail_msg("a listener of backlog 0 still answered after 8 clients");
	return -1;
}

static int unix_blackhole(const char *path, int held[8], size_t *n)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(l >= 0);
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 0), 0);
	for (*n = 0; *n < 8;) {
		int c = socket(AF_UNIX,
			       SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		assert_true(c >= 0);
		held[(*n)++] = c;
		if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			assert_int_equal(errno, EAGAIN);
			return l;
		}
	}
	fail_msg("a unix listener of backlog 0 took 8 clients");
	return -1;
}

/* No connection within the timeout: ETIMEDOUT after it, not long after,
 * over TCP (the binder's wait) and unix (the controller's tries). */
static void test_timeout(void **state)
{
	struct fx *fx = *state;
	char err[512], text[400];
	int held[8], l, c = 7, port;
	struct bh_migurl u;
	uint64_t t0, took;
	size_t n;

	l = tcp_blackhole(&port, held, &n);
	snprintf(text, sizeof(text), "tcp:127.0.0.1:%d", port);
	parse(text, BH_MIGURL_SEND, &u);
	t0 = now_ms();
	assert_int_equal(
	    bh_migurl_connect(fx->b, &u, 300, &c, err, sizeof(err)),
	    -ETIMEDOUT);
	took = now_ms() - t0;
	assert_int_equal(c, -1);
	assert_true(took >= 290 && took < 3000);
	assert_non_null(strstr(err, text));
	assert_non_null(strstr(err, "no connection within 300 ms"));
	for (size_t i = 0; i < n; i++)
		close(held[i]);
	close(l);

	l = unix_blackhole(fx->path, held, &n);
	snprintf(text, sizeof(text), "unix:%s", fx->path);
	parse(text, BH_MIGURL_SEND, &u);
	t0 = now_ms();
	assert_int_equal(
	    bh_migurl_connect(fx->b, &u, 300, &c, err, sizeof(err)),
	    -ETIMEDOUT);
	took = now_ms() - t0;
	assert_int_equal(c, -1);
	assert_true(took >= 290 && took < 3000);
	assert_non_null(strstr(err, "no connection within 300 ms"));
	/* Room again: the next try gets in. */
	{
		int a = accept4(l, NULL, NULL, SOCK_CLOEXEC);

		assert_true(a >= 0);
		close(a);
	}
	assert_int_equal(
	    bh_migurl_connect(fx->b, &u, 1000, &c, err, sizeof(err)), 0);
	close(c);
	for (size_t i = 0; i < n; i++)
		close(held[i]);
	close(l);
}

/* The binder gone: TCP and listening refused, naming it, at once; a unix
 * connect is the controller's own and still works. */
static void test_binder_gone(void **state)
{
	struct fx *fx = *state;
	char err[512], text[400];
	struct bh_migurl u;
	int l = -1, c = -1, port = 0;

	snprintf(text, sizeof(text), "unix:%s", fx->path);
	parse(text, BH_MIGURL_RECEIVE, &u);
	assert_int_equal(
	    bh_migurl_open_listen(fx->b, &u, &l, &port, err, sizeof(err)), 0);
	assert_int_equal(kill(bh_binder_pid(fx->b), SIGKILL), 0);
	parse("tcp:127.0.0.1:0", BH_MIGURL_RECEIVE, &u);
	assert_int_equal(
	    bh_migurl_open_listen(fx->b, &u, &c, &port, err, sizeof(err)),
	    -ECHILD);
	assert_non_null(strstr(err, "tcp:127.0.0.1:0"));
	assert_non_null(strstr(err, "binder"));
	assert_non_null(strstr(err, "gone"));
	parse("tcp:127.0.0.1:9", BH_MIGURL_SEND, &u);
	assert_int_equal(
	    bh_migurl_connect(fx->b, &u, 1000, &c, err, sizeof(err)), -ECHILD);
	assert_non_null(strstr(err, "gone"));
	parse(text, BH_MIGURL_SEND, &u);
	assert_int_equal(
	    bh_migurl_connect(fx->b, &u, 1000, &c, err, sizeof(err)), 0);
	assert_pair(l, c, AF_UNIX);
	close(c);
	close(l);
	/* No binder at all. */
	parse("tcp:127.0.0.1:0", BH_MIGURL_RECEIVE, &u);
	assert_int_equal(
	    bh_migurl_open_listen(NULL, &u, &c, &port, err, sizeof(err)),
	    -ECHILD);
}

/*
 * In a child that is the controller once its filter is loaded (socket only
 * AF_UNIX, no bind, no listen): receive and send over TCP and unix all
 * work, since what the filter forbids is the binder's. 0, or the step that
 * failed; a forbidden call would end it with SIGSYS.
 */
static int sandboxed_controller(struct fx *fx)
{
	struct bh_binder *b = NULL;
	char err[512], text[400];
	struct bh_migurl u;
	int l, c, a, port;

	if (bh_binder_start("test", NULL, &b) < 0)
		return 10;
	if (bh_ctl_seccomp_install() < 0)
		return 11;
	for (int i = 0; i < 2; i++) {
		bool tcp = i == 0;

		if (tcp)
			snprintf(text, sizeof(text), "tcp:127.0.0.1:0");
		else
			snprintf(text, sizeof(text), "unix:%s", fx->path);
		if (bh_migurl_parse(text, BH_MIGURL_RECEIVE, &u, err,
				    sizeof(err)) < 0 ||
		    bh_migurl_open_listen(b, &u, &l, &port, err, sizeof(err)) <
			0) {
			fprintf(stderr, "%s\n", err);
			return 12 + i;
		}
		if (tcp)
			snprintf(text, sizeof(text), "tcp:127.0.0.1:%d", port);
		if (bh_migurl_parse(text, BH_MIGURL_SEND, &u, err,
				    sizeof(err)) < 0 ||
		    bh_migurl_connect(b, &u, 5000, &c, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			return 14 + i;
		}
		{
			struct pollfd p = { .fd = l, .events = POLLIN };

			if (poll(&p, 1, 5000) != 1)
				return 16 + i;
		}
		a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (a < 0 || write(c, "x", 1) != 1)
			return 18 + i;
		close(a);
		close(c);
		close(l);
	}
	bh_binder_stop(b);
	return 0;
}

static void test_after_filter(void **state)
{
	struct fx *fx = *state;
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(sandboxed_controller(fx));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("the sandboxed controller: status 0x%x (exit %d, "
			 "signal %d)",
			 (unsigned int)status,
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_refused),
		cmocka_unit_test_setup_teardown(test_tcp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binder_gone, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_after_filter, setup,
						teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
