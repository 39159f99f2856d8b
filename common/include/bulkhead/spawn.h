/* Starting child processes: fork+exec of their own binary (device workers in
 * a PID namespace of their own), clean environment, only the fds they need at
 * fixed numbers. */
#ifndef BULKHEAD_SPAWN_H
#define BULKHEAD_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

/* Fixed fd numbers in children. */
#define BH_CHILD_FD_CONTROL 3 /* the socketpair to the controller */

struct bh_spawn_fd {
	int src; /* fd in the parent (borrowed) */
	int dst; /* number it gets in the child, >= 3 */
};

/*
 * fork+execve(path, argv, empty environment). In the child: fd 0 is /dev/null,
 * fd 1 and 2 are the parent's stderr, each fds[i].src is placed at
 * fds[i].dst (not close-on-exec), every other fd is closed, the signal mask
 * and dispositions are reset, the child leads a new session (terminal and
 * process-group signals go to the parent only), and PR_SET_PDEATHSIG is
 * SIGKILL so that the child never outlives the parent. Returns 0 and the pid,
 * or -errno (exec failures show as the child exiting with status 127 and a
 * logged message).
 */
int bh_spawn(const char *path, char *const argv[],
	     const struct bh_spawn_fd *fds, size_t nfds, pid_t *pid_out);

/* bh_spawn_ns flags. */
#define BH_SPAWN_PIDNS		0x1u /* a PID namespace of its own */
#define BH_SPAWN_PIDNS_REQUIRED 0x2u /* ... or nothing starts */
/* The child of our parent, not ours (CLONE_PARENT): for a launcher that
 * starts processes on its parent's behalf, so that the parent waits for
 * them, kills them and is the one whose death kills them. */
#define BH_SPAWN_SIBLING 0x4u

/*
 * bh_spawn with flags. With BH_SPAWN_PIDNS the child is cloned into a new
 * user namespace and a new PID namespace, in which it is PID 1; it is still
 * our child, and *pid_out is its pid in our namespace, for waitpid and kill
 * (SIGKILL reaches it; other signals only where it has a handler). Its uid
 * and gid are mapped to themselves in the user namespace, so that it may make
 * namespaces of its own there. Where the host refuses the namespaces (EPERM,
 * EINVAL, ENOSPC, EUSERS; EPERM also for root without CAP_SETFCAP, which may
 * not map root), the child is forked as by bh_spawn after a logged warning,
 * or, with BH_SPAWN_PIDNS_REQUIRED, nothing starts: an error is logged and
 * the refusal's -errno returned. *refused (may be NULL) gets the errno with
 * which the host refused, 0 if it did not. With BH_SPAWN_SIBLING the child
 * is our parent's (the pid is the same in its namespace as in ours), and
 * its parent-death signal follows our parent.
 */
int bh_spawn_ns(const char *path, char *const argv[],
		const struct bh_spawn_fd *fds, size_t nfds, unsigned int flags,
		pid_t *pid_out, int *refused);

/*
 * Waits for child pid to exit, and SIGKILLs it once grace_ms have passed.
 * Returns its wait status (0 if it could not be waited for); *killed, if not
 * NULL, says whether the SIGKILL was needed.
 */
int bh_reap(pid_t pid, int grace_ms, int *killed);

/*
 * For a helper process the controller forks (the launcher, the binder):
 * out of the controller's session and deaf to the terminal's and systemd's
 * signals (INT, TERM, HUP, QUIT), with no fd left but *sock, moved to
 * BH_CHILD_FD_CONTROL, and stderr; stdin from /dev/null and stdout onto
 * stderr (both may be the VM's console). 0 or -errno.
 */
int bh_helper_detach(int *sock);

/* Writes the directory of the running executable (from /proc/self/exe) into
 * buf. 0 or -errno (-ENAMETOOLONG if it does not fit). */
int bh_exe_dir(char *buf, size_t len);

/*
 * Where the children of a bulkhead whose binary is in exe_dir live: in
 * libexecdir for an installed bulkhead (exe_dir is the bindir it was built
 * for), and beside it for any other (a build tree, a copy), so that a build
 * tree never runs the children of another build that was installed once.
 */
const char *bh_child_dir_for(const char *exe_dir, const char *bindir,
			     const char *libexecdir);

/* bh_child_dir_for the running executable, into out: meant to be called
 * once at start-up (reading /proc/self/exe may be refused after the
 * sandbox is entered). 0 or -errno. */
int bh_child_dir(const char *bindir, const char *libexecdir, char *out,
		 size_t len);

/* dir/name into out if it is an executable. 0, -ENOENT or -ENAMETOOLONG. */
int bh_find_child(const char *name, const char *dir, char *out, size_t len);

/* Describes a wait status: "exited with status 3", "killed by signal 9
 * (Killed)". Writes into buf and returns it. */
const char *bh_describe_status(int status, char *buf, size_t len);

#endif
