/* The binder: a small process the controller forks at start-up, before it
 * opens anything, that alone may bind and listen and make network sockets:
 * listening unix and TCP sockets, and TCP connections, for the controller,
 * whose own filter has neither bind nor listen and no socket but AF_UNIX. */
#ifndef BH_CONTROLLER_BINDER_H
#define BH_CONTROLLER_BINDER_H

#include <stdbool.h>
#include <sys/types.h>

#include "user.h"

struct bh_binder;

/*
 * Forks the binder, connected by a socketpair. The child leaves the
 * controller's session, keeps no fd but its socket (fd 3) and stderr,
 * becomes user (NULL: stays, with no capability), sets no_new_privs and its
 * limits, loads its own seccomp filter and answers the controller's
 * requests until its socket closes; it dies with the controller
 * (PR_SET_PDEATHSIG). name is the VM's, for its log prefix. 0 or -errno
 * (logged).
 */
int bh_binder_start(const char *name, const struct bh_user *user,
		    struct bh_binder **out);

/*
 * Asks the binder for a unix stream socket bound to path and listening with
 * backlog. The binder makes the socket file: path must not exist (a socket
 * file left by an earlier run is the caller's to remove first). 0 with *fd
 * (non-blocking, close-on-exec, the caller's), the binder's -errno for a
 * request it refused or a call that failed (-EINVAL: path empty, relative
 * or with a NUL, or backlog out of 1..4096; -ENAMETOOLONG; -EADDRINUSE: the
 * path exists), or -ECHILD when the binder is gone (it is then killed and
 * reaped, and that is logged once). Waits at most 10 s for the answer.
 */
int bh_binder_listen(struct bh_binder *b, const char *path, int backlog,
		     int *fd);

/*
 * Asks the binder for a TCP socket bound to host:port (SO_REUSEADDR set)
 * and listening with backlog. host is an address literal, never a name:
 * an IPv4 dotted quad or an IPv6 address without brackets ("0.0.0.0",
 * "::" for every address). port 0 lets the kernel pick one. 0 with *fd
 * (AF_INET or AF_INET6, non-blocking, close-on-exec, the caller's) and
 * *bound_port (the port it listens on, 1..65535), the binder's -errno for
 * a request it refused or a call that failed (-EINVAL: host not an
 * address literal, port out of 0..65535 or backlog out of 1..4096;
 * -EADDRINUSE; -EADDRNOTAVAIL: no such local address; -EACCES: a port
 * below 1024 without the right), or -ECHILD when the binder is gone (as
 * for bh_binder_listen). *fd is -1 and *bound_port 0 on failure. Waits at
 * most 10 s for the answer.
 */
int bh_binder_listen_tcp(struct bh_binder *b, const char *host, int port,
			 int backlog, int *fd, int *bound_port);

/*
 * Asks the binder for a TCP connection to host:port (host as for
 * bh_binder_listen_tcp; which addresses are worth connecting to is the
 * caller's to decide), made within timeout_ms. 0 with
 * *fd (connected, non-blocking, close-on-exec, the caller's), the
 * binder's -errno (-EINVAL: host not an address literal, port out of
 * 1..65535 or timeout_ms out of 1..600000; -ECONNREFUSED; -ETIMEDOUT: not
 * connected within timeout_ms; -EHOSTUNREACH, -ENETUNREACH, ...), or
 * -ECHILD when the binder is gone. *fd is -1 on failure. The binder serves
 * nothing else while it connects; this waits at most timeout_ms + 10 s
 * for the answer, and blocks its caller that long.
 */
int bh_binder_connect_tcp(struct bh_binder *b, const char *host, int port,
			  int timeout_ms, int *fd);

/* Whether the binder is still there to make sockets. */
bool bh_binder_alive(const struct bh_binder *b);

/* The binder is gone or misbehaved: kills and reaps it, logs how it ended
 * (once). Every later request fails with -ECHILD. */
void bh_binder_lost(struct bh_binder *b);

/* The binder's pid, -1 once it is lost; and the controller's end of its
 * socket (the binder ends when it closes). For tests. */
pid_t bh_binder_pid(const struct bh_binder *b);
int bh_binder_fd(const struct bh_binder *b);

/* Closes the socket, which ends the binder, and reaps it. NULL is fine. */
void bh_binder_stop(struct bh_binder *b);

#endif
