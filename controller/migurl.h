/* Live migration URLs: unix:/PATH and tcp:HOST:PORT parsed and checked, and
 * the socket each one names made, through the binder where the controller's
 * own filter does not reach (every TCP socket, every listener). */
#ifndef BH_CONTROLLER_MIGURL_H
#define BH_CONTROLLER_MIGURL_H

#include <stddef.h>

#include "binder.h"

enum bh_migurl_kind {
	BH_MIGURL_UNIX = 1,
	BH_MIGURL_TCP,
};

/* What a URL is for: receive-migration listens on it (tcp: the host may be
 * 0.0.0.0 or [::], every address, and the port 0, the kernel's pick);
 * send-migration connects to it (a real address, a port of 1..65535). */
enum bh_migurl_role {
	BH_MIGURL_RECEIVE = 1,
	BH_MIGURL_SEND,
};

/* The longest address literal with its NUL (INET6_ADDRSTRLEN). */
#define BH_MIGURL_HOST_MAX 46
/* sun_path's size: a path of at most 107 bytes and its NUL. */
#define BH_MIGURL_PATH_MAX 108
/* A URL as bh_migurl_format writes it: "tcp:[HOST]:PORT" or "unix:PATH". */
#define BH_MIGURL_TEXT_MAX (BH_MIGURL_PATH_MAX + 8)

struct bh_migurl {
	enum bh_migurl_kind kind;
	char path[BH_MIGURL_PATH_MAX]; /* unix: absolute */
	char host[BH_MIGURL_HOST_MAX]; /* tcp: the literal, no brackets */
	int family;		       /* tcp: AF_INET or AF_INET6 */
	int port;		       /* tcp: 0..65535, 0 only to receive */
};

/*
 * Parses text as a migration URL for role: "unix:/PATH" (absolute, at most
 * 107 bytes), or "tcp:HOST:PORT" with HOST an IPv4 dotted quad or an IPv6
 * literal in brackets ("tcp:[::1]:6000"), never a name, and PORT decimal.
 * To receive, HOST may be 0.0.0.0 or [::] and PORT 0..65535; to send, not
 * those and PORT 1..65535. 0 with *url filled, or -EINVAL with err naming
 * the URL and the problem ("migration URL 'x': expected unix:/PATH or
 * tcp:HOST:PORT").
 */
int bh_migurl_parse(const char *text, enum bh_migurl_role role,
		    struct bh_migurl *url, char *err, size_t errlen);

/* url as text, the way bh_migurl_parse reads it ("tcp:[::1]:6000"). */
void bh_migurl_format(const struct bh_migurl *url, char *buf, size_t len);

/*
 * The listening socket for url, made by the binder: unix through
 * bh_binder_listen (the path must not exist: a file left there is the
 * caller's to remove, as is the socket file once done), tcp through
 * bh_binder_listen_tcp with SO_REUSEADDR. 0 with *fd (non-blocking,
 * close-on-exec, the caller's) and *port (tcp: the port it listens on,
 * the kernel's pick for port 0; unix: 0), or -errno with err naming the
 * URL and the reason: the binder's (-EADDRINUSE: the path exists or the
 * port is taken; -EADDRNOTAVAIL: not an address of this host; -EACCES),
 * or -ECHILD when the binder is gone (b NULL: none).
 */
int bh_migurl_open_listen(struct bh_binder *b, const struct bh_migurl *url,
			  int *fd, int *port, char *err, size_t errlen);

/*
 * A connection to url, made within timeout_ms (1..600000): unix by the
 * controller itself (a non-blocking AF_UNIX connect, retried while the
 * listener's queue is full; b may be NULL), tcp by the binder through
 * bh_binder_connect_tcp. 0 with *fd (connected, non-blocking,
 * close-on-exec, the caller's), or -errno with err naming the URL and the
 * reason: -EINVAL (a timeout or port out of range), -ECONNREFUSED,
 * -ENOENT (no such socket file), -ETIMEDOUT, -EHOSTUNREACH, ..., or
 * -ECHILD for tcp when the binder is gone. Blocks its caller for up to
 * timeout_ms (tcp: and up to 10 s more should the binder hang).
 */
int bh_migurl_connect(struct bh_binder *b, const struct bh_migurl *url,
		      int timeout_ms, int *fd, char *err, size_t errlen);

#endif
