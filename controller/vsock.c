/* vsock: the virtio-vsock device's host sockets, accepted and connected by
 * the controller and handed to the worker as fds. The listener is the
 * binder's once the controller's filter, which has no bind or listen, is
 * loaded. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include <bulkhead/log.h>
#include <bulkhead/util.h>

#include "binder.h"
#include "vsock.h"

/* Pending host connections the kernel keeps for us. */
#define VSOCK_BACKLOG 128
/* Out of descriptors: wait this long before accepting again, instead of
 * spinning on a listener that stays readable. */
#define VSOCK_PAUSE_MS 1000

/*
 * Who makes the listeners (bh_vsock_set_binder); NULL: the controller binds
 * and listens itself. A global beside the logger's, since the device code
 * that opens a broker has no binder to pass: one per controller, set once
 * its filter is loaded and cleared at its end.
 */
static struct bh_binder *vsock_binder;

struct bh_vsock_broker {
	char *path;
	int lfd;
	/* The socket file we made: unlinked only if it is still that one. */
	dev_t dev;
	ino_t ino;
	struct event *ev;
	struct event *pause;
	void (*fn)(void *arg, int fd);
	void *arg;
};

/* "<path>_<port>" for a port; -ENAMETOOLONG if it does not fit. */
static int port_addr(const char *path, uint32_t port, struct sockaddr_un *sa)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s_%u", path, port);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/* Is someone listening on the socket file at sa? 1 yes, 0 no (stale), or
 * -errno. */
static int in_use(const struct sockaddr_un *sa)
{
	int fd, r;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	if (r == 0 || errno == EAGAIN)
		r = 1;
	else if (errno == ECONNREFUSED)
		r = 0;
	else
		r = -errno;
	close(fd);
	return r;
}

void bh_vsock_set_binder(struct bh_binder *binder)
{
	vsock_binder = binder;
}

/* Before the filter: socket, bind and listen here. The socket file is
 * removed again if listen fails. */
static int listen_here(const struct sockaddr_un *sa, int *lfd, char *err,
		       size_t errlen)
{
	int fd, r;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "vsock socket: %s", strerror(-r));
		return r;
	}
	if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		r = -errno;
		snprintf(err, errlen, "vsock socket %s: bind: %s", sa->sun_path,
			 strerror(-r));
		close(fd);
		return r;
	}
	if (listen(fd, VSOCK_BACKLOG) < 0) {
		r = -errno;
		snprintf(err, errlen, "vsock socket %s: listen: %s",
			 sa->sun_path, strerror(-r));
		unlink(sa->sun_path);
		close(fd);
		return r;
	}
	*lfd = fd;
	return 0;
}

/* After it: the binder's socket, bind and listen, answered with the
 * listener. */
static int listen_binder(const char *path, int *lfd, char *err, size_t errlen)
{
	int r = bh_binder_listen(vsock_binder, path, VSOCK_BACKLOG, lfd);

	if (r == -ECHILD)
		snprintf(err, errlen,
			 "vsock socket %s: the binder, which makes listening "
			 "sockets once bulkhead is sandboxed, is gone",
			 path);
	else if (r < 0)
		snprintf(err, errlen, "vsock socket %s: cannot listen: %s",
			 path, strerror(-r));
	return r;
}

int bh_vsock_broker_open(const char *path, struct bh_vsock_broker **out,
			 char *err, size_t errlen)
{
	struct bh_vsock_broker *b;
	struct sockaddr_un sa, probe;
	struct stat st;
	int r;

	*out = NULL;
	/* The longest guest-to-host name must fit as well. */
	if (!path || !path[0] || port_addr(path, UINT32_MAX, &probe) < 0) {
		snprintf(err, errlen,
			 "vsock socket path '%s' is too long for a unix socket "
			 "(with _<port> after it)",
			 path ? path : "");
		return -ENAMETOOLONG;
	}
	/* The binder takes absolute paths only: a relative one would be
	 * resolved in a working directory no caller sees. */
	if (vsock_binder && path[0] != '/') {
		snprintf(err, errlen,
			 "vsock socket %s: not an absolute path (once bulkhead "
			 "is sandboxed its binder makes the socket, and takes "
			 "absolute paths only)",
			 path);
		return -EINVAL;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen,
				 "vsock socket %s exists and is not a socket: "
				 "not replacing it",
				 path);
			return -EEXIST;
		}
		r = in_use(&sa);
		if (r != 0) {
			snprintf(err, errlen, "vsock socket %s: %s", path,
				 r > 0 ? "another process listens on it"
				       : strerror(-r));
			return r > 0 ? -EADDRINUSE : r;
		}
		/* A socket nobody listens on: left by an earlier run. */
		if (unlink(path) < 0 && errno != ENOENT) {
			r = -errno;
			snprintf(err, errlen,
				 "vsock socket %s: removing the "
				 "stale socket: %s",
				 path, strerror(-r));
			return r;
		}
	} else if (errno != ENOENT) {
		r = -errno;
		snprintf(err, errlen, "vsock socket %s: %s", path,
			 strerror(-r));
		return r;
	}

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->lfd = -1;
	b->path = strdup(path);
	if (!b->path) {
		r = -ENOMEM;
		goto err_free;
	}
	if (vsock_binder)
		r = listen_binder(path, &b->lfd, err, errlen);
	else
		r = listen_here(&sa, &b->lfd, err, errlen);
	if (r < 0)
		goto err_free;
	if (stat(path, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "vsock socket %s: %s", path,
			 strerror(-r));
		goto err_unlink;
	}
	b->dev = st.st_dev;
	b->ino = st.st_ino;
	*out = b;
	return 0;

err_unlink:
	unlink(path);
	bh_closep(&b->lfd);
err_free:
	free(b->path);
	free(b);
	return r;
}

static void on_accept(evutil_socket_t lfd, short what, void *arg);

static void on_pause_end(evutil_socket_t fd, short what, void *arg)
{
	struct bh_vsock_broker *b = arg;

	(void)fd;
	(void)what;
	if (b->ev)
		event_add(b->ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct bh_vsock_broker *b = arg;

	(void)what;
	/* At most a burst per wake-up: the listener stays readable and the
	 * rest comes on the next turn of the loop, after other events. */
	for (unsigned int i = 0; i < BH_VSOCK_ACCEPT_BURST; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			b->fn(b->arg, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EAGAIN)
			return;
		bh_log_ratelimited(BH_LOG_WARN, "vsock socket %s: accept: %s",
				   b->path, strerror(errno));
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			struct timeval tv = { VSOCK_PAUSE_MS / 1000,
					      (VSOCK_PAUSE_MS % 1000) * 1000 };

			event_del(b->ev);
			event_add(b->pause, &tv);
		}
		return;
	}
}

int bh_vsock_broker_start(struct bh_vsock_broker *b, struct event_base *base,
			  void (*fn)(void *arg, int fd), void *arg)
{
	if (b->ev)
		return -EBUSY;
	b->fn = fn;
	b->arg = arg;
	b->ev = event_new(base, b->lfd, EV_READ | EV_PERSIST, on_accept, b);
	if (!b->ev)
		return -ENOMEM;
	b->pause = evtimer_new(base, on_pause_end, b);
	if (!b->pause || event_add(b->ev, NULL) < 0) {
		if (b->pause)
			event_free(b->pause);
		event_free(b->ev);
		b->pause = b->ev = NULL;
		return -ENOMEM;
	}
	return 0;
}

void bh_vsock_broker_stop(struct bh_vsock_broker *b)
{
	if (!b || !b->ev)
		return;
	event_free(b->pause);
	event_free(b->ev);
	b->pause = b->ev = NULL;
}

int bh_vsock_broker_connect(struct bh_vsock_broker *b, uint32_t port, int *fd)
{
	struct sockaddr_un sa;
	int s, r;

	*fd = -1;
	r = port_addr(b->path, port, &sa);
	if (r < 0)
		return r;
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	/* A unix stream connect does not wait for the peer's accept: it
	 * succeeds at once or fails (EAGAIN with a full backlog). */
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(s);
		return r == -EINPROGRESS ? -EAGAIN : r;
	}
	*fd = s;
	return 0;
}

void bh_vsock_broker_close(struct bh_vsock_broker *b)
{
	struct stat st;

	if (!b)
		return;
	bh_vsock_broker_stop(b);
	bh_closep(&b->lfd);
	/* Someone may have put another file there since. */
	if (lstat(b->path, &st) == 0 && st.st_dev == b->dev &&
	    st.st_ino == b->ino)
		unlink(b->path);
	free(b->path);
	free(b);
}
