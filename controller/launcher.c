/* The launcher: forked by the controller before it opens anything, it is the
 * one process that may execve, clone into namespaces, mount and set up
 * io_uring for the children. It starts them as the controller's own children,
 * on the controller's request over a socketpair, and only from the binaries
 * it found when it started; the controller then needs none of those calls. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bulkhead/dispatch.h>
#include <bulkhead/frame.h>
#include <bulkhead/hello.h>
#include <bulkhead/log.h>
#include <bulkhead/sandbox.h>
#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "ctlseccomp.h"
#include "launcher.h"
#include "proto/internal.pb-c.h"
#include "vm.h"

/* Descriptors a child may open before it sets its own, lower limit: the
 * runner's vCPU fds, a worker's io_uring. As the controller's margin. */
#define LAUNCHER_MORE_FDS 4096
/* ms the controller waits for the launcher's hello or an answer: starting
 * a child is a fork and no more, so one that says nothing is lost. */
#define LAUNCH_TIMEOUT 10000
/* ms a launcher has to exit once its socket closed, before SIGKILL. */
#define LAUNCHER_EXIT_TIMEOUT 1000
/* A Launch or Launched body is a few dozen bytes. */
#define LAUNCH_MAX_BODY 1024

static const char *const binaries[] = {
	[BH_LAUNCH_RUNNER] = "bulkhead-vcpu",
	[BH_LAUNCH_BLK] = "bulkhead-dev-blk",
	[BH_LAUNCH_CONSOLE] = "bulkhead-dev-console",
	[BH_LAUNCH_RNG] = "bulkhead-dev-rng",
	[BH_LAUNCH_NET] = "bulkhead-dev-net",
	[BH_LAUNCH_VSOCK] = "bulkhead-dev-vsock",
	[BH_LAUNCH_PMEM] = "bulkhead-dev-pmem",
};
#define NKINDS BH_ARRAY_SIZE(binaries)

/* ---- the launcher process ----------------------------------------------- */

enum launcher_state {
	LS_SERVING = 0,
};

struct launcher {
	int sock;
	const struct bh_launcher_opts *o;
	/* Found once, before the filter: never a path named later. */
	char path[NKINDS][4096];
	bool found[NKINDS];
};

/* A worker's id goes on its command line: the characters and length the
 * configuration allows (config.c), checked again since the request may
 * come from a controller that is no longer ours. */
static bool id_ok(const char *id)
{
	size_t len = strlen(id);

	if (len < 1 || len > BH_CONFIG_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

/*
 * Starts one child. The answer's error is for what may go wrong on an honest
 * request (no binary, no process); a request no honest controller sends (a
 * kind or id out of bounds, a descriptor that is no socket) returns -EINVAL
 * unanswered, and the launcher ends.
 */
static int h_launch(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__Launch *req = (const Bh__Launch *)m;
	Bh__Launched rep = BH__LAUNCHED__INIT;
	struct launcher *L = ctx;
	const struct bh_launcher_opts *o = L->o;
	const char *lvl = bh_log_level_name(o->log_level);
	char *argv[8] = { NULL };
	struct bh_spawn_fd fds[1];
	unsigned int flags = BH_SPAWN_SIBLING, kind;
	struct stat st;
	pid_t pid = -1;
	int r = 0;

	if (req->kind <= BH__LAUNCH__KIND__KIND_NONE ||
	    req->kind > BH__LAUNCH__KIND__KIND_PMEM)
		return -EINVAL;
	kind = (unsigned int)req->kind - 1;
	if (kind == BH_LAUNCH_RUNNER ? req->id[0] != '\0' : !id_ok(req->id))
		return -EINVAL;
	if (fstat(f->fds[0], &st) < 0 || !S_ISSOCK(st.st_mode))
		return -EINVAL;

	argv[0] = (char *)binaries[kind];
	if (kind == BH_LAUNCH_RUNNER) {
		argv[1] = "--name";
		argv[2] = (char *)o->name;
		argv[3] = "--log-level";
		argv[4] = (char *)lvl;
		/* Only on the runner's command line, never in its protocol. */
		if (o->self_test == BH_SELF_TEST_VCPU)
			argv[5] = "--self-test-seccomp";
	} else {
		argv[1] = "--id";
		argv[2] = req->id;
		argv[3] = "--log-level";
		argv[4] = (char *)lvl;
		/* The worker opens / once sandboxed, which must get it
		 * killed. */
		if (o->self_test == BH_SELF_TEST_WORKER) {
			argv[5] = "--selftest-open";
			argv[6] = "/";
		}
		/* A PID namespace of its own where the host allows it;
		 * strict makes it a condition, as it does the worker's other
		 * namespaces. */
		flags |= BH_SPAWN_PIDNS |
			 (o->strict_sandbox ? BH_SPAWN_PIDNS_REQUIRED : 0);
	}
	fds[0].src = f->fds[0];
	fds[0].dst = BH_CHILD_FD_CONTROL;
	if (!L->found[kind])
		r = -ENOENT;
	else
		r = bh_spawn_ns(L->path[kind], argv, fds, 1, flags, &pid, NULL);
	if (r < 0) {
		rep.error = -r;
	} else {
		rep.pid = (int32_t)pid;
		bh_debug("started %s (pid %d)", binaries[kind], (int)pid);
	}
	r = bh_frame_send(L->sock, BH__MSG_TYPE__MSG_LAUNCHED, &rep.base, NULL,
			  0);
	/* The controller is gone: nothing more to do. */
	if (r == -EPIPE || r == -ECONNRESET)
		_exit(0);
	return r;
}

/* What the controller may send: nothing but Launch, each with the child's
 * socket. */
static const struct bh_handler launcher_requests[] = {
	{ BH__MSG_TYPE__MSG_LAUNCH, BH_STATE(LS_SERVING), 1,
	  &bh__launch__descriptor, h_launch, "launch" },
};

static int launcher_lockdown(const struct bh_launcher_opts *o)
{
	char err[512];
	int r;

	if (o->user) {
		r = bh_user_switch(o->user, err, sizeof(err));
		if (r < 0) {
			bh_err("%s", err);
			return r;
		}
	}
	r = bh_sandbox_no_new_privs();
	if (r == 0)
		r = bh_sandbox_limits(LAUNCHER_MORE_FDS);
	if (r < 0) {
		bh_err("cannot limit the launcher: %s", strerror(-r));
		return r;
	}
	return bh_launcher_seccomp_install();
}

static void __attribute__((noreturn))
launcher_run(int sock, const struct bh_launcher_opts *o, pid_t controller)
{
	struct launcher L = { .sock = sock, .o = o };
	struct bh_frame_reader rd;
	char prefix[96], dir[4096];
	int r;

	/* Never without the controller; its death ends us as it ends the
	 * children (theirs follows the controller too). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
	    getppid() != controller)
		_exit(BH_EXIT_FAILURE);
	snprintf(prefix, sizeof(prefix), "bulkhead/%s/launcher", o->name);
	bh_log_init(prefix);
	r = bh_helper_detach(&L.sock);
	if (r < 0) {
		bh_err("cannot set up: %s", strerror(-r));
		_exit(BH_EXIT_FAILURE);
	}
	/* The same directory as the controller's (vm.c): libexecdir for an
	 * installed bulkhead, beside it for any other. */
	if (bh_child_dir(BULKHEAD_BINDIR, BULKHEAD_LIBEXECDIR, dir,
			 sizeof(dir)) < 0)
		dir[0] = '\0';
	for (size_t k = 0; k < NKINDS; k++)
		L.found[k] =
		    dir[0] && bh_find_child(binaries[k], dir, L.path[k],
					    sizeof(L.path[k])) == 0;
	if (launcher_lockdown(o) < 0)
		_exit(BH_EXIT_FAILURE);
	if (bh_hello_exchange(L.sock, "launcher", "controller") < 0)
		_exit(BH_EXIT_FAILURE);
	bh_frame_reader_init(&rd, LAUNCH_MAX_BODY);
	for (;;) {
		const char *name = NULL;
		struct bh_frame f;
		uint16_t type;

		/* A blocking socket: a whole frame, or the end. */
		r = bh_frame_read(L.sock, &rd, &f);
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
		r = bh_dispatch(launcher_requests,
				BH_ARRAY_SIZE(launcher_requests), LS_SERVING,
				&f, &L, &name);
		if (r < 0) {
			bh_err("the controller sent a bad request (%s, type "
			       "%u): %s; ending",
			       name ? name : "unknown", type, strerror(-r));
			_exit(BH_EXIT_FAILURE);
		}
	}
}

/* ---- the controller's side ---------------------------------------------- */

struct bh_launcher {
	/* Kept open once the launcher is lost, until bh_launcher_stop: the
	 * event loop's watch on it then reports the loss, wherever it was
	 * found. */
	int sock;
	bool lost;
	pid_t pid;
	struct bh_frame_reader rd;
};

struct launched {
	bool got;
	int error;
	pid_t pid;
};

static int h_launched(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__Launched *rep = (const Bh__Launched *)m;
	struct launched *out = ctx;

	/* An errno outside its range, or a pid that cannot be, is a
	 * launcher that no longer follows the protocol. */
	if (rep->error < 0 || rep->error > 4095 ||
	    (rep->error == 0 && rep->pid <= 0))
		return -EBADMSG;
	out->got = true;
	out->error = rep->error;
	out->pid = (pid_t)rep->pid;
	return 0;
}

static const struct bh_handler launcher_replies[] = {
	{ BH__MSG_TYPE__MSG_LAUNCHED, BH_STATE(0), 0, &bh__launched__descriptor,
	  h_launched, "launched" },
};

int bh_launcher_fd(const struct bh_launcher *l)
{
	return l->sock;
}

bool bh_launcher_alive(const struct bh_launcher *l)
{
	return l && !l->lost;
}

void bh_launcher_lost(struct bh_launcher *l)
{
	char desc[96];
	int status;

	if (l->lost)
		return;
	l->lost = true;
	bh_frame_reader_reset(&l->rd);
	if (l->pid <= 0)
		return;
	/* One that still runs broke the protocol: it goes at once. */
	kill(l->pid, SIGKILL);
	status = bh_reap(l->pid, LAUNCHER_EXIT_TIMEOUT, NULL);
	l->pid = -1;
	bh_err("launcher %s: no process can start any more",
	       bh_describe_status(status, desc, sizeof(desc)));
}

int bh_launcher_spawn(struct bh_launcher *l, enum bh_launch_kind kind,
		      const char *id, int sock, pid_t *pid)
{
	Bh__Launch req = BH__LAUNCH__INIT;
	struct launched rep = { .got = false };
	const char *name = NULL;
	struct bh_frame f;
	siginfo_t si;
	int r;

	if (!bh_launcher_alive(l))
		return -ECHILD;
	if ((unsigned int)kind >= NKINDS)
		return -EINVAL;
	req.kind = (Bh__Launch__Kind)(kind + 1);
	req.id = (char *)(id ? id : "");
	r = bh_frame_send_timeout(l->sock, BH__MSG_TYPE__MSG_LAUNCH, &req.base,
				  &sock, 1, LAUNCH_TIMEOUT);
	if (r == 0)
		r = bh_frame_read_timeout(l->sock, &l->rd, &f, LAUNCH_TIMEOUT);
	if (r == 0)
		r = bh_dispatch(launcher_replies,
				BH_ARRAY_SIZE(launcher_replies), 0, &f, &rep,
				&name);
	/* The child must be ours, as BH_SPAWN_SIBLING makes it: a pid that
	 * is not would have us wait for, or kill, someone else's. */
	if (r == 0 && rep.error == 0) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)rep.pid, &si,
			   WEXITED | WNOHANG | WNOWAIT) < 0)
			r = -ECHILD;
	}
	if (r < 0) {
		bh_err("launcher: %s%s%s", name ? name : "", name ? ": " : "",
		       strerror(-r));
		bh_launcher_lost(l);
		return -ECHILD;
	}
	if (rep.error)
		return -rep.error;
	*pid = rep.pid;
	return 0;
}

int bh_launcher_start(const struct bh_launcher_opts *o,
		      struct bh_launcher **out)
{
	struct bh_launcher *l;
	pid_t controller = getpid();
	struct bh_frame f;
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		bh_err("cannot start the launcher: %s", strerror(-r));
		return r;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		abort();
	bh_frame_reader_init(&l->rd, LAUNCH_MAX_BODY);
	fflush(NULL);
	l->pid = fork();
	if (l->pid == 0) {
		close(sv[0]);
		launcher_run(sv[1], o, controller);
	}
	close(sv[1]);
	l->sock = sv[0];
	if (l->pid < 0) {
		r = -errno;
		bh_err("cannot start the launcher: %s", strerror(-r));
		goto fail;
	}
	/* Non-blocking: every wait on the launcher is bounded. */
	r = fcntl(l->sock, F_SETFL, fcntl(l->sock, F_GETFL) | O_NONBLOCK);
	if (r == 0)
		r = bh_hello_send(l->sock, "controller");
	else
		r = -errno;
	if (r == 0)
		r = bh_frame_read_timeout(l->sock, &l->rd, &f, LAUNCH_TIMEOUT);
	if (r == 0) {
		r = bh_hello_check(&f, "launcher");
		bh_frame_release(&f);
	}
	if (r < 0) {
		bh_err("handshake with the launcher failed: %s", strerror(-r));
		bh_launcher_lost(l);
		goto fail;
	}
	*out = l;
	return 0;
fail:
	bh_launcher_stop(l);
	return r;
}

void bh_launcher_stop(struct bh_launcher *l)
{
	if (!l)
		return;
	bh_closep(&l->sock);
	bh_frame_reader_reset(&l->rd);
	/* It ends when its socket closes. */
	if (!l->lost && l->pid > 0)
		bh_reap(l->pid, LAUNCHER_EXIT_TIMEOUT, NULL);
	free(l);
}
