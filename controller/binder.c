/* The binder: forked by the controller before it opens anything, it is the
 * one process that may bind and listen, and the one that makes network
 * sockets. On the controller's request over a socketpair it makes
 * listening unix sockets (a vsock device's host socket, a migration
 * socket), listening TCP sockets and outgoing TCP connections (live
 * migration), and hands each one over, so that the controller's filter
 * needs neither bind nor listen nor any socket but AF_UNIX. It opens
 * nothing, unlinks nothing, resolves no name and connects nowhere but to
 * the TCP address literal it is given. */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <bulkhead/dispatch.h>
#include <bulkhead/frame.h>
#include <bulkhead/hello.h>
#include <bulkhead/log.h>
#include <bulkhead/sandbox.h>
#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "binder.h"
#include "ctlseccomp.h"
#include "proto/internal.pb-c.h"
#include "vm.h"

/* Descriptors beyond its own: the socket it is making. */
#define BINDER_MORE_FDS 4
/* ms the controller waits for the binder's hello or an answer: a socket,
 * a bind and a listen, so one that says nothing is lost. */
#define BIND_TIMEOUT 10000
/* ms a binder has to exit once its socket closed, before SIGKILL. */
#define BINDER_EXIT_TIMEOUT 1000
/* A Bind body is a path and a number, a BindTcp or ConnectTcp body an
 * address literal and two numbers; their answers are numbers. */
#define BIND_MAX_BODY 512
/* listen's backlog: what the kernel's somaxconn allows by default. */
#define BINDER_MAX_BACKLOG 4096
/* The longest address literal: an IPv6 one with an IPv4 tail, without
 * its NUL (INET6_ADDRSTRLEN counts it). */
#define BINDER_MAX_HOST (INET6_ADDRSTRLEN - 1)
/* The longest a TCP connect may wait: 10 minutes. */
#define BINDER_MAX_CONNECT_MS 600000
/* The binder's own type of socket, which its filter allows and no other. */
#define BINDER_SOCK_TYPE (SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK)

/* ---- the binder process ------------------------------------------------- */

enum binder_state {
	BS_SERVING = 0,
};

struct binder {
	int sock;
};

/*
 * The path as sockaddr_un: absolute, non-empty, without NUL, short enough
 * for sun_path with its terminating NUL (an abstract or unterminated name
 * is not what the controller asks for). 0, -EINVAL or -ENAMETOOLONG.
 */
static int path_addr(const ProtobufCBinaryData *p, struct sockaddr_un *sa)
{
	if (p->len == 0 || !p->data || p->data[0] != '/')
		return -EINVAL;
	if (memchr(p->data, '\0', p->len))
		return -EINVAL;
	if (p->len >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, p->data, p->len);
	return 0;
}

/* Sends an answer with *fd (if any: it is closed here after). */
static int answer(struct binder *B, uint16_t type, const ProtobufCMessage *rep,
		  int *fd)
{
	int r;

	r = bh_frame_send(B->sock, type, rep, *fd >= 0 ? fd : NULL,
			  *fd >= 0 ? 1 : 0);
	bh_closep(fd);
	/* The controller is gone: nothing more to do. */
	if (r == -EPIPE || r == -ECONNRESET)
		_exit(0);
	return r;
}

/*
 * Makes one listener. Whether the request can be done is the answer's
 * error: a path or backlog out of bounds is refused there too, since it is
 * something the user typed, not a controller gone wrong. Only a frame that
 * is no Bind (the dispatch table's checks) ends the binder.
 */
static int h_bind(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__Bind *req = (const Bh__Bind *)m;
	Bh__Bound rep = BH__BOUND__INIT;
	struct binder *B = ctx;
	struct sockaddr_un sa;
	int fd = -1, r;

	(void)f;
	r = path_addr(&req->path, &sa);
	if (r == 0 && (req->backlog < 1 || req->backlog > BINDER_MAX_BACKLOG))
		r = -EINVAL;
	if (r == 0) {
		fd = socket(AF_UNIX, BINDER_SOCK_TYPE, 0);
		if (fd < 0)
			r = -errno;
	}
	if (r == 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = -errno;
	if (r == 0 && listen(fd, req->backlog) < 0) {
		r = -errno;
		rep.file_left = true;
	}
	if (r < 0) {
		bh_closep(&fd);
		rep.error = -r;
	}
	return answer(B, BH__MSG_TYPE__MSG_BOUND, &rep.base, &fd);
}

/*
 * host as a socket address with port: an IPv4 dotted quad or an IPv6
 * literal (no brackets, no scope, never a name: the binder has no DNS),
 * non-empty, without NUL. 0 or -EINVAL.
 */
static int host_addr(const ProtobufCBinaryData *h, int port,
		     struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	char text[BINDER_MAX_HOST + 1];

	if (h->len == 0 || !h->data || h->len > BINDER_MAX_HOST)
		return -EINVAL;
	if (memchr(h->data, '\0', h->len))
		return -EINVAL;
	if (port < 0 || port > 65535)
		return -EINVAL;
	memcpy(text, h->data, h->len);
	text[h->len] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return 0;
	}
	return -EINVAL;
}

/* The port a bound socket has, 0 on failure (it then has none). */
static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* A TCP listener, as h_bind makes a unix one: what the user typed (the
 * address, the port, the backlog) is refused in the answer. */
static int h_bind_tcp(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__BindTcp *req = (const Bh__BindTcp *)m;
	Bh__Bound rep = BH__BOUND__INIT;
	struct binder *B = ctx;
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int fd = -1, one = 1, r;

	(void)f;
	r = host_addr(&req->host, req->port, &ss, &len);
	if (r == 0 && (req->backlog < 1 || req->backlog > BINDER_MAX_BACKLOG))
		r = -EINVAL;
	if (r == 0) {
		fd = socket(ss.ss_family, BINDER_SOCK_TYPE, 0);
		if (fd < 0)
			r = -errno;
	}
	/* A port whose last connection is in TIME_WAIT is free to listen
	 * on again: a second migration to the same port right after one. */
	if (r == 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		r = -errno;
	if (r == 0 && bind(fd, (struct sockaddr *)&ss, len) < 0)
		r = -errno;
	if (r == 0 && listen(fd, req->backlog) < 0)
		r = -errno;
	if (r == 0) {
		rep.port = bound_port(fd);
		if (rep.port == 0)
			r = -EADDRNOTAVAIL;
	}
	if (r < 0) {
		bh_closep(&fd);
		rep.error = -r;
		rep.port = 0;
	}
	return answer(B, BH__MSG_TYPE__MSG_BOUND, &rep.base, &fd);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Waits at most timeout_ms for fd's connect to finish; 0 or its -errno
 * (SO_ERROR), -ETIMEDOUT. The controller sends nothing while it waits for
 * the answer: its socket closing ends the binder at once rather than after
 * the wait, and a frame arriving is a controller out of step.
 */
static int wait_connected(struct binder *B, int fd, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	int err = 0;
	socklen_t len = sizeof(err);

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = fd, .events = POLLOUT },
			{ .fd = B->sock, .events = POLLIN },
		};
		uint64_t now = now_ms();
		int n;

		if (now >= end)
			return -ETIMEDOUT;
		n = poll(p, 2, (int)(end - now));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (p[1].revents & (POLLHUP | POLLERR))
			_exit(0);
		if (p[1].revents) {
			bh_err("the controller sent a frame while a connect "
			       "was under way; ending");
			_exit(BH_EXIT_FAILURE);
		}
		if (p[0].revents)
			break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

/* A TCP connection: the address, port or timeout out of bounds, and a
 * connect that fails or does not finish in time, are answered errors. */
static int h_connect_tcp(void *ctx, const ProtobufCMessage *m,
			 struct bh_frame *f)
{
	const Bh__ConnectTcp *req = (const Bh__ConnectTcp *)m;
	Bh__ConnectedTcp rep = BH__CONNECTED_TCP__INIT;
	struct binder *B = ctx;
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int fd = -1, r;

	(void)f;
	r = host_addr(&req->host, req->port, &ss, &len);
	if (r == 0 && req->port == 0)
		r = -EINVAL;
	if (r == 0 &&
	    (req->timeout_ms < 1 || req->timeout_ms > BINDER_MAX_CONNECT_MS))
		r = -EINVAL;
	if (r == 0) {
		fd = socket(ss.ss_family, BINDER_SOCK_TYPE, 0);
		if (fd < 0)
			r = -errno;
	}
	if (r == 0 && connect(fd, (struct sockaddr *)&ss, len) < 0) {
		r = -errno;
		if (r == -EINPROGRESS)
			r = wait_connected(B, fd, req->timeout_ms);
	}
	if (r < 0) {
		bh_closep(&fd);
		rep.error = -r;
	}
	return answer(B, BH__MSG_TYPE__MSG_CONNECTED_TCP, &rep.base, &fd);
}

/* What the controller may send: Bind, BindTcp and ConnectTcp, with no
 * fd. */
static const struct bh_handler binder_requests[] = {
	{ BH__MSG_TYPE__MSG_BIND, BH_STATE(BS_SERVING), 0,
	  &bh__bind__descriptor, h_bind, "bind" },
	{ BH__MSG_TYPE__MSG_BIND_TCP, BH_STATE(BS_SERVING), 0,
	  &bh__bind_tcp__descriptor, h_bind_tcp, "bind-tcp" },
	{ BH__MSG_TYPE__MSG_CONNECT_TCP, BH_STATE(BS_SERVING), 0,
	  &bh__connect_tcp__descriptor, h_connect_tcp, "connect-tcp" },
};

/* It needs no capability, with --user or without: a root controller
 * without --user drops its own once started, and the binder never has
 * more than the controller. */
static int binder_lockdown(const struct bh_user *user)
{
	char err[512];
	int r;

	if (user) {
		r = bh_user_switch(user, err, sizeof(err));
		if (r < 0) {
			bh_err("%s", err);
			return r;
		}
	} else {
		r = bh_sandbox_drop_caps();
		if (r < 0) {
			bh_err("cannot drop capabilities: %s", strerror(-r));
			return r;
		}
	}
	r = bh_sandbox_no_new_privs();
	if (r == 0)
		r = bh_sandbox_limits(BINDER_MORE_FDS);
	if (r < 0) {
		bh_err("cannot limit the binder: %s", strerror(-r));
		return r;
	}
	return bh_binder_seccomp_install();
}

static void __attribute__((noreturn))
binder_run(int sock, const char *name, const struct bh_user *user,
	   pid_t controller)
{
	struct binder B = { .sock = sock };
	struct bh_frame_reader rd;
	char prefix[96];
	int r;

	/* Never without the controller. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
	    getppid() != controller)
		_exit(BH_EXIT_FAILURE);
	snprintf(prefix, sizeof(prefix), "bulkhead/%s/binder",
		 name ? name : "");
	bh_log_init(prefix);
	/* Its own name in ps and /proc/PID/comm, beside the launcher's. */
	prctl(PR_SET_NAME, "bulkhead-binder", 0, 0, 0);
	r = bh_helper_detach(&B.sock);
	if (r < 0) {
		bh_err("cannot set up: %s", strerror(-r));
		_exit(BH_EXIT_FAILURE);
	}
	if (binder_lockdown(user) < 0)
		_exit(BH_EXIT_FAILURE);
	if (bh_hello_exchange(B.sock, "binder", "controller") < 0)
		_exit(BH_EXIT_FAILURE);
	bh_frame_reader_init(&rd, BIND_MAX_BODY);
	for (;;) {
		const char *hname = NULL;
		struct bh_frame f;
		uint16_t type;

		/* A blocking socket: a whole frame, or the end. */
		r = bh_frame_read(B.sock, &rd, &f);
		if (r == -EPIPE)
			_exit(0);
		if (r < 0) {
			bh_err("connection to the controller: %s; ending",
			       strerror(-r));
			_exit(BH_EXIT_FAILURE);
		}
		if (r == 0)
			continue;
		type = f.type;
		r = bh_dispatch(binder_requests, BH_ARRAY_SIZE(binder_requests),
				BS_SERVING, &f, &B, &hname);
		if (r < 0) {
			bh_err("the controller sent a bad request (%s, type "
			       "%u): %s; ending",
			       hname ? hname : "unknown", type, strerror(-r));
			_exit(BH_EXIT_FAILURE);
		}
	}
}

/* ---- the controller's side ---------------------------------------------- */

struct bh_binder {
	int sock;
	bool lost;
	pid_t pid;
	struct bh_frame_reader rd;
};

/* What the controller waits for: the answer to its one request. */
enum wait_state {
	WAIT_BOUND = 0,
	WAIT_CONNECTED,
};

struct answer {
	int domain; /* the socket's family: AF_UNIX, or AF_INET for either */
	int error;
	bool file_left;
	int port;
	int fd;
};

/* Is fd a stream socket of domain (AF_INET: of AF_INET or AF_INET6) that
 * listens (or, listening false, does not)? getsockopt only: the
 * controller's filter has neither getsockname nor getpeername. */
static bool is_socket(int fd, int domain, bool listening)
{
	int v = 0, type = 0, d = 0;
	socklen_t len = sizeof(v);
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 ||
	    !v != !listening)
		return false;
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    type != SOCK_STREAM)
		return false;
	len = sizeof(d);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &d, &len) < 0)
		return false;
	if (domain == AF_INET)
		return d == AF_INET || d == AF_INET6;
	return d == domain;
}

/* An answer's error and fds agree: an errno in range, and one fd exactly
 * when it is 0. Else a binder that no longer follows the protocol. */
static int answer_check(int error, const struct bh_frame *f)
{
	if (error < 0 || error > 4095)
		return -EBADMSG;
	if (f->nfds != (error == 0 ? 1u : 0u))
		return -EPROTO;
	return 0;
}

/* Takes the answer's fd if it is a socket as expected. */
static int answer_fd(struct answer *out, struct bh_frame *f, bool listening)
{
	int fd = bh_frame_take_fd(f, 0);

	if (fd < 0)
		return fd;
	if (!is_socket(fd, out->domain, listening)) {
		close(fd);
		return -EBADMSG;
	}
	out->fd = fd;
	return 0;
}

static int h_bound(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__Bound *rep = (const Bh__Bound *)m;
	struct answer *out = ctx;
	int r;

	r = answer_check(rep->error, f);
	if (r < 0)
		return r;
	/* A TCP listener has a port, a unix one none. */
	if (!rep->error &&
	    (out->domain == AF_INET ? rep->port < 1 || rep->port > 65535
				    : rep->port != 0))
		return -EBADMSG;
	if (rep->error) {
		out->error = rep->error;
		out->file_left = rep->file_left;
		return 0;
	}
	out->port = rep->port;
	return answer_fd(out, f, true);
}

static int h_connected(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__ConnectedTcp *rep = (const Bh__ConnectedTcp *)m;
	struct answer *out = ctx;
	int r;

	r = answer_check(rep->error, f);
	if (r < 0)
		return r;
	if (rep->error) {
		out->error = rep->error;
		return 0;
	}
	return answer_fd(out, f, false);
}

/* Each answer only to its own request. */
static const struct bh_handler binder_replies[] = {
	{ BH__MSG_TYPE__MSG_BOUND, BH_STATE(WAIT_BOUND), BH_NFDS_VARIABLE,
	  &bh__bound__descriptor, h_bound, "bound" },
	{ BH__MSG_TYPE__MSG_CONNECTED_TCP, BH_STATE(WAIT_CONNECTED),
	  BH_NFDS_VARIABLE, &bh__connected_tcp__descriptor, h_connected,
	  "connected-tcp" },
};

bool bh_binder_alive(const struct bh_binder *b)
{
	return b && !b->lost;
}

pid_t bh_binder_pid(const struct bh_binder *b)
{
	return b->pid;
}

int bh_binder_fd(const struct bh_binder *b)
{
	return b->sock;
}

void bh_binder_lost(struct bh_binder *b)
{
	char desc[96];
	int status;

	if (b->lost)
		return;
	b->lost = true;
	bh_frame_reader_reset(&b->rd);
	if (b->pid <= 0)
		return;
	/* One that still runs broke the protocol: it goes at once. */
	kill(b->pid, SIGKILL);
	status = bh_reap(b->pid, BINDER_EXIT_TIMEOUT, NULL);
	b->pid = -1;
	bh_err("binder %s: no socket can be made through it any more",
	       bh_describe_status(status, desc, sizeof(desc)));
}

/*
 * Sends one request and reads its answer into *out, waiting at most
 * wait_ms for each. 0 (out->error says whether the binder did it), or
 * -ECHILD once the binder is gone or broke the protocol (it is then lost).
 */
static int ask(struct bh_binder *b, uint16_t type, const ProtobufCMessage *req,
	       enum wait_state state, int wait_ms, struct answer *out)
{
	const char *name = NULL;
	struct bh_frame f;
	int r;

	if (!bh_binder_alive(b))
		return -ECHILD;
	r = bh_frame_send_timeout(b->sock, type, req, NULL, 0, BIND_TIMEOUT);
	if (r == 0)
		r = bh_frame_read_timeout(b->sock, &b->rd, &f, wait_ms);
	if (r == 0)
		r = bh_dispatch(binder_replies, BH_ARRAY_SIZE(binder_replies),
				state, &f, out, &name);
	if (r < 0) {
		bh_err("binder: %s%s%s", name ? name : "", name ? ": " : "",
		       strerror(-r));
		bh_binder_lost(b);
		return -ECHILD;
	}
	return 0;
}

int bh_binder_listen(struct bh_binder *b, const char *path, int backlog,
		     int *fd)
{
	Bh__Bind req = BH__BIND__INIT;
	struct answer rep = { .domain = AF_UNIX, .fd = -1 };
	int r;

	*fd = -1;
	req.path.data = (uint8_t *)path;
	req.path.len = strlen(path);
	req.backlog = backlog;
	r = ask(b, BH__MSG_TYPE__MSG_BIND, &req.base, WAIT_BOUND, BIND_TIMEOUT,
		&rep);
	if (r < 0)
		return r;
	if (rep.error) {
		/* A file it made but could not listen on: ours to remove,
		 * as the binder has no unlink. */
		if (rep.file_left)
			unlink(path);
		return -rep.error;
	}
	*fd = rep.fd;
	return 0;
}

int bh_binder_listen_tcp(struct bh_binder *b, const char *host, int port,
			 int backlog, int *fd, int *bound_port)
{
	Bh__BindTcp req = BH__BIND_TCP__INIT;
	struct answer rep = { .domain = AF_INET, .fd = -1 };
	size_t len = strlen(host);
	int r;

	*fd = -1;
	*bound_port = 0;
	/* Longer than any address literal: refused here, as it would not
	 * fit the binder's frame either. */
	if (len > BINDER_MAX_HOST)
		return -EINVAL;
	req.host.data = (uint8_t *)host;
	req.host.len = len;
	req.port = port;
	req.backlog = backlog;
	r = ask(b, BH__MSG_TYPE__MSG_BIND_TCP, &req.base, WAIT_BOUND,
		BIND_TIMEOUT, &rep);
	if (r < 0)
		return r;
	if (rep.error)
		return -rep.error;
	*fd = rep.fd;
	*bound_port = rep.port;
	return 0;
}

int bh_binder_connect_tcp(struct bh_binder *b, const char *host, int port,
			  int timeout_ms, int *fd)
{
	Bh__ConnectTcp req = BH__CONNECT_TCP__INIT;
	struct answer rep = { .domain = AF_INET, .fd = -1 };
	size_t len = strlen(host);
	int wait = BIND_TIMEOUT, r;

	*fd = -1;
	if (len > BINDER_MAX_HOST)
		return -EINVAL;
	req.host.data = (uint8_t *)host;
	req.host.len = len;
	req.port = port;
	req.timeout_ms = timeout_ms;
	/* The binder's own wait, then as long as for any answer. */
	if (timeout_ms > 0 && timeout_ms <= BINDER_MAX_CONNECT_MS)
		wait += timeout_ms;
	r = ask(b, BH__MSG_TYPE__MSG_CONNECT_TCP, &req.base, WAIT_CONNECTED,
		wait, &rep);
	if (r < 0)
		return r;
	if (rep.error)
		return -rep.error;
	*fd = rep.fd;
	return 0;
}

int bh_binder_start(const char *name, const struct bh_user *user,
		    struct bh_binder **out)
{
	struct bh_binder *b;
	pid_t controller = getpid();
	struct bh_frame f;
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		bh_err("cannot start the binder: %s", strerror(-r));
		return r;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		abort();
	bh_frame_reader_init(&b->rd, BIND_MAX_BODY);
	fflush(NULL);
	b->pid = fork();
	if (b->pid == 0) {
		close(sv[0]);
		binder_run(sv[1], name, user, controller);
	}
	close(sv[1]);
	b->sock = sv[0];
	if (b->pid < 0) {
		r = -errno;
		bh_err("cannot start the binder: %s", strerror(-r));
		goto fail;
	}
	/* Non-blocking: every wait on the binder is bounded. */
	r = fcntl(b->sock, F_SETFL, fcntl(b->sock, F_GETFL) | O_NONBLOCK);
	if (r == 0)
		r = bh_hello_send(b->sock, "controller");
	else
		r = -errno;
	if (r == 0)
		r = bh_frame_read_timeout(b->sock, &b->rd, &f, BIND_TIMEOUT);
	if (r == 0) {
		r = bh_hello_check(&f, "binder");
		bh_frame_release(&f);
	}
	if (r < 0) {
		bh_err("handshake with the binder failed: %s", strerror(-r));
		bh_binder_lost(b);
		goto fail;
	}
	*out = b;
	return 0;
fail:
	bh_binder_stop(b);
	return r;
}

void bh_binder_stop(struct bh_binder *b)
{
	if (!b)
		return;
	bh_closep(&b->sock);
	bh_frame_reader_reset(&b->rd);
	/* It ends when its socket closes. */
	if (!b->lost && b->pid > 0)
		bh_reap(b->pid, BINDER_EXIT_TIMEOUT, NULL);
	free(b);
}
