/* Live migration URLs: parsing unix:/PATH and tcp:HOST:PORT, and making the
 * socket each names. The controller holds no network socket of its own and
 * cannot bind or listen: TCP sockets and every listener come from the
 * binder; only a unix connect, which its filter allows, is its own. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "migurl.h"

/* A listener takes one connection: the sender's. */
#define MIGURL_BACKLOG 1
/* As the binder bounds a connect: 10 minutes at most. */
#define MIGURL_MAX_TIMEOUT 600000
/* ms between two tries of a unix connect whose listener's queue is full. */
#define MIGURL_RETRY_MS 10

_Static_assert(BH_MIGURL_HOST_MAX == INET6_ADDRSTRLEN, "the longest literal");
_Static_assert(BH_MIGURL_PATH_MAX ==
		   sizeof(((struct sockaddr_un *)0)->sun_path),
	       "sun_path");

static int refuse(const char *text, char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "migration URL '%s': %s", text, why);
	return -EINVAL;
}

static int parse_unix(const char *text, const char *path, struct bh_migurl *url,
		      char *err, size_t errlen)
{
	char why[160];

	if (path[0] != '/') {
		snprintf(why, sizeof(why),
			 "the socket path '%s' is not absolute (unix:/PATH)",
			 path);
		return refuse(text, err, errlen, why);
	}
	if (strlen(path) >= sizeof(url->path)) {
		snprintf(why, sizeof(why),
			 "the socket path is longer than %zu bytes",
			 sizeof(url->path) - 1);
		return refuse(text, err, errlen, why);
	}
	url->kind = BH_MIGURL_UNIX;
	snprintf(url->path, sizeof(url->path), "%s", path);
	return 0;
}

/* PORT: 1-5 decimal digits, no sign or space, at most 65535; 0 only to
 * receive. The port or -1. */
static int parse_port(const char *s, enum bh_migurl_role role)
{
	size_t n = strlen(s);
	int port = 0;

	if (n < 1 || n > 5 || strspn(s, "0123456789") != n)
		return -1;
	for (size_t i = 0; i < n; i++)
		port = port * 10 + (s[i] - '0');
	if (port > 65535 || (port == 0 && role != BH_MIGURL_RECEIVE))
		return -1;
	return port;
}

static int parse_tcp(const char *text, const char *rest,
		     enum bh_migurl_role role, struct bh_migurl *url, char *err,
		     size_t errlen)
{
	char host[BH_MIGURL_HOST_MAX + 2], why[200];
	const char *port_text;
	bool unspecified;
	size_t hlen;
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} a;

	if (rest[0] == '[') {
		const char *end = strchr(rest, ']');

		if (!end)
			return refuse(text, err, errlen,
				      "no ']' after the IPv6 address "
				      "(tcp:[ADDRESS]:PORT)");
		hlen = (size_t)(end - rest - 1);
		if (end[1] != ':')
			return refuse(text, err, errlen,
				      "expected :PORT after the address "
				      "(tcp:[ADDRESS]:PORT)");
		if (hlen == 0 || hlen >= sizeof(url->host))
			return refuse(text, err, errlen,
				      "no IPv6 address between the brackets");
		memcpy(host, rest + 1, hlen);
		host[hlen] = '\0';
		port_text = end + 2;
		if (inet_pton(AF_INET6, host, &a.v6) != 1) {
			snprintf(why, sizeof(why),
				 "'%s' is not an IPv6 address", host);
			return refuse(text, err, errlen, why);
		}
		url->family = AF_INET6;
		unspecified = IN6_IS_ADDR_UNSPECIFIED(&a.v6);
	} else {
		const char *colon = strrchr(rest, ':');

		if (!colon)
			return refuse(text, err, errlen,
				      "expected tcp:HOST:PORT");
		hlen = (size_t)(colon - rest);
		if (hlen == 0)
			return refuse(text, err, errlen,
				      "no host before :PORT (tcp:HOST:PORT)");
		if (memchr(rest, ':', hlen))
			return refuse(text, err, errlen,
				      "an IPv6 address goes in brackets "
				      "(tcp:[ADDRESS]:PORT)");
		host[0] = '\0';
		if (hlen < sizeof(url->host)) {
			memcpy(host, rest, hlen);
			host[hlen] = '\0';
		}
		if (!host[0] || inet_pton(AF_INET, host, &a.v4) != 1) {
			snprintf(why, sizeof(why),
				 "'%.*s' is not an IPv4 address (names are "
				 "not resolved: give the address)",
				 (int)(hlen < 64 ? hlen : 64), rest);
			return refuse(text, err, errlen, why);
		}
		port_text = colon + 1;
		url->family = AF_INET;
		unspecified = a.v4.s_addr == htonl(INADDR_ANY);
	}
	if (unspecified && role != BH_MIGURL_RECEIVE) {
		snprintf(why, sizeof(why),
			 "'%s' means every address, which receives but "
			 "cannot be sent to",
			 host);
		return refuse(text, err, errlen, why);
	}
	url->port = parse_port(port_text, role);
	if (url->port < 0) {
		snprintf(why, sizeof(why), "port '%.16s' is not a number in %s",
			 port_text,
			 role == BH_MIGURL_RECEIVE ? "0..65535" : "1..65535");
		return refuse(text, err, errlen, why);
	}
	url->kind = BH_MIGURL_TCP;
	/* inet_pton took it: it fits (the precision says so to the
	 * compiler). */
	snprintf(url->host, sizeof(url->host), "%.*s",
		 (int)sizeof(url->host) - 1, host);
	return 0;
}

int bh_migurl_parse(const char *text, enum bh_migurl_role role,
		    struct bh_migurl *url, char *err, size_t errlen)
{
	memset(url, 0, sizeof(*url));
	if (!text)
		text = "";
	if (strncmp(text, "unix:", 5) == 0)
		return parse_unix(text, text + 5, url, err, errlen);
	if (strncmp(text, "tcp:", 4) == 0)
		return parse_tcp(text, text + 4, role, url, err, errlen);
	return refuse(text, err, errlen,
		      "expected unix:/PATH or tcp:HOST:PORT");
}

void bh_migurl_format(const struct bh_migurl *url, char *buf, size_t len)
{
	if (url->kind == BH_MIGURL_UNIX)
		snprintf(buf, len, "unix:%s", url->path);
	else if (url->family == AF_INET6)
		snprintf(buf, len, "tcp:[%s]:%d", url->host, url->port);
	else
		snprintf(buf, len, "tcp:%s:%d", url->host, url->port);
}

/* The binder gone says what it was for; any other error as it is. */
static void failed(const struct bh_migurl *url, const char *doing, int r,
		   char *err, size_t errlen)
{
	char text[BH_MIGURL_TEXT_MAX];

	bh_migurl_format(url, text, sizeof(text));
	if (r == -ECHILD)
		snprintf(err, errlen,
			 "migration URL '%s': cannot %s: the binder, which "
			 "makes network and listening sockets once bulkhead "
			 "is sandboxed, is gone",
			 text, doing);
	else if (r == -EADDRINUSE && url->kind == BH_MIGURL_UNIX)
		snprintf(err, errlen,
			 "migration URL '%s': cannot %s: the path exists "
			 "(a socket left by an earlier migration? remove it)",
			 text, doing);
	else if (r == -EADDRNOTAVAIL)
		snprintf(err, errlen,
			 "migration URL '%s': cannot %s: %s is not an address "
			 "of this host",
			 text, doing, url->host);
	else
		snprintf(err, errlen, "migration URL '%s': cannot %s: %s", text,
			 doing, strerror(-r));
}

int bh_migurl_open_listen(struct bh_binder *b, const struct bh_migurl *url,
			  int *fd, int *port, char *err, size_t errlen)
{
	int r;

	*fd = -1;
	*port = 0;
	if (url->kind == BH_MIGURL_UNIX)
		r = bh_binder_listen(b, url->path, MIGURL_BACKLOG, fd);
	else
		r = bh_binder_listen_tcp(b, url->host, url->port,
					 MIGURL_BACKLOG, fd, port);
	if (r < 0)
		failed(url, "listen", r, err, errlen);
	return r;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A unix stream connect does not wait for the peer's accept: it succeeds
 * at once, or fails with EAGAIN while the listener's queue is full, tried
 * again until the deadline. */
static int connect_unix(const struct bh_migurl *url, int timeout_ms, int *fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	long long end = now_ms() + timeout_ms;
	int s, r;

	memcpy(sa.sun_path, url->path, strlen(url->path) + 1);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	for (;;) {
		long long left;

		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		r = -errno;
		if (r == -EINTR)
			continue;
		if (r != -EAGAIN && r != -EINPROGRESS) {
			close(s);
			return r;
		}
		left = end - now_ms();
		if (left <= 0) {
			close(s);
			return -ETIMEDOUT;
		}
		sleep_ms(left < MIGURL_RETRY_MS ? (int)left : MIGURL_RETRY_MS);
	}
	*fd = s;
	return 0;
}

int bh_migurl_connect(struct bh_binder *b, const struct bh_migurl *url,
		      int timeout_ms, int *fd, char *err, size_t errlen)
{
	char text[BH_MIGURL_TEXT_MAX];
	int r;

	*fd = -1;
	if (timeout_ms < 1 || timeout_ms > MIGURL_MAX_TIMEOUT) {
		bh_migurl_format(url, text, sizeof(text));
		snprintf(err, errlen,
			 "migration URL '%s': a timeout of %d ms is out of "
			 "1..%d",
			 text, timeout_ms, MIGURL_MAX_TIMEOUT);
		return -EINVAL;
	}
	if (url->kind == BH_MIGURL_UNIX)
		r = connect_unix(url, timeout_ms, fd);
	else
		r = bh_binder_connect_tcp(b, url->host, url->port, timeout_ms,
					  fd);
	if (r == -ETIMEDOUT) {
		bh_migurl_format(url, text, sizeof(text));
		snprintf(err, errlen,
			 "migration URL '%s': no connection within %d ms", text,
			 timeout_ms);
	} else if (r < 0) {
		failed(url, "connect", r, err, errlen);
	}
	return r;
}
