/* The binder: forked by the controller before it opens anything, it is the
 * one process that may bind and listen. It makes listening unix sockets on
 * the controller's request over a socketpair and hands each one over, so
 * that a vsock device's host socket can be made after the controller's
 * filter, which has neither call, is loaded. It opens nothing, unlinks
 * nothing and connects nowhere. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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
/* A Bind body is a path and a number; a Bound body two numbers. */
#define BIND_MAX_BODY 512
/* listen's backlog: what the kernel's somaxconn allows by default. */
#define BINDER_MAX_BACKLOG 4096
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
	r = bh_frame_send(B->sock, BH__MSG_TYPE__MSG_BOUND, &rep.base,
			  fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
	bh_closep(&fd);
	/* The controller is gone: nothing more to do. */
	if (r == -EPIPE || r == -ECONNRESET)
		_exit(0);
	return r;
}

/* What the controller may send: nothing but Bind, with no fd. */
static const struct bh_handler binder_requests[] = {
	{ BH__MSG_TYPE__MSG_BIND, BH_STATE(BS_SERVING), 0,
	  &bh__bind__descriptor, h_bind, "bind" },
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

struct bound {
	int error;
	bool file_left;
	int fd;
};

/* Is fd what the binder makes: a unix stream socket that listens? */
static bool is_listener(int fd)
{
	int v = 0, type = 0, domain = 0;
	socklen_t len = sizeof(v);
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || !v)
		return false;
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    type != SOCK_STREAM)
		return false;
	len = sizeof(domain);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
	    domain != AF_UNIX)
		return false;
	return true;
}

static int h_bound(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__Bound *rep = (const Bh__Bound *)m;
	struct bound *out = ctx;
	int fd;

	/* An errno out of its range, a listener with an error or none
	 * without, or something else than a listener: a binder that no
	 * longer follows the protocol. */
	if (rep->error < 0 || rep->error > 4095)
		return -EBADMSG;
	if (f->nfds != (rep->error == 0 ? 1u : 0u))
		return -EPROTO;
	if (rep->error) {
		out->error = rep->error;
		out->file_left = rep->file_left;
		return 0;
	}
	fd = bh_frame_take_fd(f, 0);
	if (fd < 0)
		return fd;
	if (!is_listener(fd)) {
		close(fd);
		return -EBADMSG;
	}
	out->error = 0;
	out->fd = fd;
	return 0;
}

static const struct bh_handler binder_replies[] = {
	{ BH__MSG_TYPE__MSG_BOUND, BH_STATE(0), BH_NFDS_VARIABLE,
	  &bh__bound__descriptor, h_bound, "bound" },
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
	bh_err("binder %s: no listening socket can be made any more",
	       bh_describe_status(status, desc, sizeof(desc)));
}

int bh_binder_listen(struct bh_binder *b, const char *path, int backlog,
		     int *fd)
{
	Bh__Bind req = BH__BIND__INIT;
	struct bound rep = { .error = 0, .fd = -1 };
	const char *name = NULL;
	struct bh_frame f;
	int r;

	*fd = -1;
	if (!bh_binder_alive(b))
		return -ECHILD;
	req.path.data = (uint8_t *)path;
	req.path.len = strlen(path);
	req.backlog = backlog;
	r = bh_frame_send_timeout(b->sock, BH__MSG_TYPE__MSG_BIND, &req.base,
				  NULL, 0, BIND_TIMEOUT);
	if (r == 0)
		r = bh_frame_read_timeout(b->sock, &b->rd, &f, BIND_TIMEOUT);
	if (r == 0)
		r = bh_dispatch(binder_replies, BH_ARRAY_SIZE(binder_replies),
				0, &f, &rep, &name);
	if (r < 0) {
		bh_err("binder: %s%s%s", name ? name : "", name ? ": " : "",
		       strerror(-r));
		bh_binder_lost(b);
		return -ECHILD;
	}
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
