/* The launcher: a small process the controller forks at start-up, before it
 * opens anything, that alone may start the controller's children. */
#ifndef BH_CONTROLLER_LAUNCHER_H
#define BH_CONTROLLER_LAUNCHER_H

#include <stdbool.h>
#include <sys/types.h>

#include <bulkhead/log.h>

#include "config.h"
#include "user.h"

struct bh_launcher;

/* What the launcher learns once, at its fork: the children's arguments
 * follow from these and from each request's kind and id. */
struct bh_launcher_opts {
	const char *name; /* the VM's name, the runner's --name */
	enum bh_log_level log_level;
	enum bh_self_test self_test;
	bool strict_sandbox;	    /* workers need their PID namespace */
	const struct bh_user *user; /* --user: becomes it; NULL: stays */
};

enum bh_launch_kind {
	BH_LAUNCH_RUNNER = 0, /* bulkhead-vcpu */
	BH_LAUNCH_BLK,	      /* bulkhead-dev-blk */
	BH_LAUNCH_CONSOLE,    /* bulkhead-dev-console */
	BH_LAUNCH_RNG,	      /* bulkhead-dev-rng */
	BH_LAUNCH_NET,	      /* bulkhead-dev-net */
	BH_LAUNCH_VSOCK,      /* bulkhead-dev-vsock */
	BH_LAUNCH_PMEM,	      /* bulkhead-dev-pmem */
};

/*
 * Forks the launcher, connected by a socketpair. The child finds the
 * children's binaries (beside bulkhead, else in libexecdir) once, then locks
 * itself down (--user, no_new_privs, limits, its own seccomp filter) and
 * answers the controller's requests until its socket closes; it dies with
 * the controller (PR_SET_PDEATHSIG). Call it before anything is opened: the
 * launcher keeps no fd but its socket and stderr. 0 or -errno (logged).
 */
int bh_launcher_start(const struct bh_launcher_opts *o,
		      struct bh_launcher **out);

/*
 * Asks the launcher to start a child of the kind with sock (borrowed) as its
 * fd 3, and id as a worker's --id ("" or NULL for the runner). The child is
 * ours (the launcher clones it as our child): waitpid and kill it as any
 * other. 0 and its pid, -ENOENT when the launcher found no binary for that
 * kind, the launcher's -errno for a child that did not start, or -ECHILD
 * when the launcher is gone (it is then killed and reaped, and logged).
 */
int bh_launcher_spawn(struct bh_launcher *l, enum bh_launch_kind kind,
		      const char *id, int sock, pid_t *pid);

/* The socket to watch: readable outside a request means the launcher ended
 * or broke the protocol, and bh_launcher_lost should follow. It stays open
 * when the launcher is lost elsewhere, and then reads as closed. */
int bh_launcher_fd(const struct bh_launcher *l);

/* The launcher is gone or misbehaved: kills and reaps it, logs how it
 * ended (once). Every later bh_launcher_spawn fails with -ECHILD. */
void bh_launcher_lost(struct bh_launcher *l);

/* Whether the launcher is still there to start children. */
bool bh_launcher_alive(const struct bh_launcher *l);

/* Closes the socket, which ends the launcher, and reaps it. NULL is fine. */
void bh_launcher_stop(struct bh_launcher *l);

#endif
