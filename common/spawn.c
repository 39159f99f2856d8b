/* Spawning children: fork (or a clone into a PID namespace of their own) and
 * execve with an empty environment and fixed fds. */
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bulkhead/log.h"
#include "bulkhead/spawn.h"
#include "bulkhead/util.h"

/* Temporary copies of the source fds live at or above this number so that
 * placing one fd never overwrites another that is still to be placed. */
#define SPAWN_TMP_FD_MIN 64

/*
 * The child_* functions run between fork and execve, where a multithreaded
 * parent leaves only async-signal-safe calls usable: no malloc, no stdio.
 */

static void child_fail(const char *what, const char *path)
{
	/* strerrorname_np returns a constant string and is safe here, unlike
	 * strerror which may translate and allocate. */
	const char *err = strerrorname_np(errno);

	bh_err("spawn %s: %s: %s", path, what, err ? err : "unknown error");
	_exit(127);
}

static void child_reset_signals(void)
{
	struct sigaction sa;
	sigset_t none;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	/* Fails harmlessly for SIGKILL, SIGSTOP and libc's reserved ones. */
	for (sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static bool is_dst(const struct bh_spawn_fd *fds, size_t nfds, int fd)
{
	size_t i;

	for (i = 0; i < nfds; i++) {
		if (fds[i].dst == fd)
			return true;
	}
	return false;
}

static void child_close_from(int first, const char *path)
{
	struct rlimit rl;
	long fd;

	if (close_range((unsigned int)first, ~0U, 0) == 0)
		return;
	if (errno != ENOSYS)
		child_fail("close_range", path);
	/* Kernels before 5.9: close one by one up to the fd limit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		child_fail("getrlimit", path);
	for (fd = first; fd < (long)rl.rlim_cur && fd < INT_MAX; fd++)
		close((int)fd);
}

static void child_setup_stdio(const char *path)
{
	int null_fd;

	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0)
		child_fail("open /dev/null", path);
	if (null_fd == STDIN_FILENO) {
		/* dup2 onto itself would keep close-on-exec set. */
		if (fcntl(null_fd, F_SETFD, 0) < 0)
			child_fail("fcntl", path);
	} else {
		if (dup2(null_fd, STDIN_FILENO) < 0)
			child_fail("dup2 stdin", path);
		close(null_fd);
	}

	if (fcntl(STDERR_FILENO, F_GETFD) < 0) {
		/* The parent has no stderr: give the child a sink instead. */
		int sink = open("/dev/null", O_WRONLY);

		if (sink < 0 ||
		    (sink != STDERR_FILENO && dup2(sink, STDERR_FILENO) < 0))
			child_fail("open /dev/null", path);
		if (sink != STDERR_FILENO)
			close(sink);
	}
	if (fcntl(STDERR_FILENO, F_SETFD, 0) < 0)
		child_fail("fcntl stderr", path);
	if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		child_fail("dup2 stdout", path);
}

/*
 * What a child cloned into a user and a PID namespace of its own needs,
 * prepared before the clone because the child may not format strings: the
 * lines that map its ids to themselves, and a pidfd of its parent, since
 * getppid() there says 0 whether the parent lives or not.
 */
struct spawn_ns {
	bool cloned;
	int parent_fd;	  /* pidfd of the parent, or -1 (no such call) */
	char uid_map[32]; /* "uid uid 1" */
	char gid_map[32]; /* "gid gid 1" */
};

/* Writes text into one of the child's /proc/self files. 0 or -errno. */
static int child_write_file(const char *file, const char *text)
{
	size_t len = strlen(text);
	int fd, ret = 0;
	ssize_t n;

	fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, text, len);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != len)
		ret = -EIO;
	close(fd);
	return ret;
}

/*
 * A new user namespace starts with no id mapped in it, and a process whose
 * ids are not mapped may not make a user namespace inside it, as the device
 * workers do. The child maps its own uid and gid to themselves (the one
 * mapping an unprivileged process may write, after denying setgroups). If it
 * cannot, it still runs: the nested namespace will then be refused, and the
 * worker reports that itself.
 */
static void child_map_ids(const struct spawn_ns *ns, const char *path)
{
	const char *what = "setgroups";
	/* A controller that became --user is not dumpable, nor is this copy
	 * of it, and then its /proc/self files belong to root: dumpable while
	 * the maps are written (execve decides afresh). */
	int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	int r;

	if (dumpable == 0)
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	r = child_write_file("/proc/self/setgroups", "deny");
	if (r == 0) {
		what = "gid_map";
		r = child_write_file("/proc/self/gid_map", ns->gid_map);
	}
	if (r == 0) {
		what = "uid_map";
		r = child_write_file("/proc/self/uid_map", ns->uid_map);
	}
	if (dumpable == 0)
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (r < 0) {
		const char *err = strerrorname_np(-r);

		bh_warn("spawn %s: cannot write its %s: %s", path, what,
			err ? err : "unknown error");
	}
}

/* Ends the child if the parent died before PR_SET_PDEATHSIG was armed. */
static void child_check_parent(pid_t parent, const struct spawn_ns *ns)
{
	struct pollfd pfd;

	if (!ns->cloned) {
		if (getppid() != parent)
			_exit(127);
		return;
	}
	if (ns->parent_fd < 0)
		return;
	/* A pidfd polls readable once its process has exited. */
	pfd.fd = ns->parent_fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (poll(&pfd, 1, 0) != 0)
		_exit(127);
}

static void __attribute__((noreturn))
child_run(const char *path, char *const argv[], const struct bh_spawn_fd *fds,
	  size_t nfds, int *tmp, pid_t parent, const struct spawn_ns *ns)
{
	static char *const empty_env[] = { NULL };
	int max_dst = STDERR_FILENO;
	int fd, tmp_min;
	size_t i;

	/*
	 * PR_SET_PDEATHSIG follows the parent thread that forked us, so the
	 * caller should spawn from a thread that lives as long as the process.
	 * If the parent already died before the prctl, no signal will come.
	 * The parent's namespace sends it, so it reaches even the PID 1 of a
	 * namespace of its own, which ignores signals from inside.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail("prctl PR_SET_PDEATHSIG", path);
	child_check_parent(parent, ns);
	if (ns->cloned)
		child_map_ids(ns, path);
	child_reset_signals();
	/* A session of its own: a terminal's ^C or a supervisor's signal to
	 * the process group reaches the controller, which stops its children
	 * in order, never the children directly. */
	if (setsid() < 0)
		child_fail("setsid", path);

	for (i = 0; i < nfds; i++) {
		if (fds[i].dst > max_dst)
			max_dst = fds[i].dst;
	}
	tmp_min = max_dst >= SPAWN_TMP_FD_MIN ? max_dst + 1 : SPAWN_TMP_FD_MIN;
	for (i = 0; i < nfds; i++) {
		tmp[i] = fcntl(fds[i].src, F_DUPFD_CLOEXEC, tmp_min);
		if (tmp[i] < 0)
			child_fail("fcntl F_DUPFD_CLOEXEC", path);
	}

	child_setup_stdio(path);

	/* dup2 clears close-on-exec on the new number. */
	for (i = 0; i < nfds; i++) {
		if (dup2(tmp[i], fds[i].dst) < 0)
			child_fail("dup2", path);
	}
	for (fd = STDERR_FILENO + 1; fd < max_dst; fd++) {
		if (!is_dst(fds, nfds, fd))
			close(fd);
	}
	child_close_from(max_dst + 1, path);

	execve(path, argv, empty_env);
	child_fail("execve", path);
	_exit(127);
}

/* The errors with which a host refuses the namespaces themselves, rather
 * than a process: user namespaces off or used up (sysctls, a container's
 * or systemd's seccomp filter, a chroot), or a kernel without them. */
static bool ns_refusal(int err)
{
	return err == EPERM || err == EINVAL || err == ENOSPC || err == EUSERS;
}

static void ns_prepare(struct spawn_ns *ns, pid_t parent)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();

	snprintf(ns->uid_map, sizeof(ns->uid_map), "%u %u 1\n",
		 (unsigned int)uid, (unsigned int)uid);
	snprintf(ns->gid_map, sizeof(ns->gid_map), "%u %u 1\n",
		 (unsigned int)gid, (unsigned int)gid);
	ns->parent_fd = (int)syscall(SYS_pidfd_open, parent, 0);
}

/*
 * Whether we are root without CAP_SETFCAP, which the kernel requires for
 * mapping root in a user namespace (5.12 and later). The child could then
 * map no id, and without one it could make none of the worker's namespaces
 * in its user namespace: better none of ours than none of the worker's.
 */
static bool root_cannot_map(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
		.pid = 0,
	};
	struct __user_cap_data_struct data[2];

	if (geteuid() != 0)
		return false;
	if (syscall(SYS_capget, &hdr, data) < 0)
		return true;
	return !(data[CAP_TO_INDEX(CAP_SETFCAP)].effective &
		 CAP_TO_MASK(CAP_SETFCAP));
}

/* fork(), or with BH_SPAWN_SIBLING its equivalent as our parent's child. */
static pid_t spawn_fork(unsigned int flags)
{
	pid_t pid;

	if (flags & BH_SPAWN_SIBLING)
		/* The exit signal is our own, SIGCHLD, whatever we pass. */
		pid = (pid_t)syscall(SYS_clone,
				     (unsigned long)(CLONE_PARENT | SIGCHLD),
				     0UL, NULL, NULL, 0UL);
	else
		pid = fork();
	return pid < 0 ? -errno : pid;
}

/*
 * fork(), or with BH_SPAWN_PIDNS a clone into a new user and PID namespace
 * that otherwise behaves as fork: the raw system call with no stack returns
 * in the child on a copy of ours. An unprivileged process may make a PID
 * namespace only together with a user namespace. -errno on failure, with
 * *refused set if the host refused the namespaces.
 */
static pid_t spawn_clone(const char *name, unsigned int flags, pid_t parent,
			 struct spawn_ns *ns, int *refused)
{
	unsigned long cflags = CLONE_NEWUSER | CLONE_NEWPID | SIGCHLD;
	const char *why;
	pid_t pid;
	int err;

	if (!(flags & BH_SPAWN_PIDNS))
		return spawn_fork(flags);
	if (root_cannot_map()) {
		err = EPERM;
		why = "root without CAP_SETFCAP cannot map itself in a user "
		      "namespace";
	} else {
		ns_prepare(ns, parent);
		/* x86_64 argument order: flags, stack, parent_tid, child_tid,
		 * tls. */
		if (flags & BH_SPAWN_SIBLING)
			cflags |= CLONE_PARENT;
		pid = (pid_t)syscall(SYS_clone, cflags, 0UL, NULL, NULL, 0UL);
		if (pid == 0) {
			ns->cloned = true;
			return 0;
		}
		if (pid > 0)
			return pid;
		err = errno;
		if (!ns_refusal(err))
			return -err;
		why = strerror(err);
	}
	*refused = err;
	if (flags & BH_SPAWN_PIDNS_REQUIRED) {
		bh_err("sandbox: %s: PID namespace refused (%s), and it is "
		       "required: not starting",
		       name, why);
		return -err;
	}
	bh_warn("sandbox: %s: PID namespace refused (%s): started without one",
		name, why);
	return spawn_fork(flags);
}

int bh_spawn_ns(const char *path, char *const argv[],
		const struct bh_spawn_fd *fds, size_t nfds, unsigned int flags,
		pid_t *pid_out, int *refused)
{
	struct spawn_ns ns = { .cloned = false, .parent_fd = -1 };
	/* The process whose death must end the child. */
	pid_t parent = flags & BH_SPAWN_SIBLING ? getppid() : getpid();
	int *tmp = NULL, refused_err = 0;
	const char *name;
	size_t i, j;
	pid_t pid;

	if (refused)
		*refused = 0;
	if (!path || !argv || (nfds > 0 && !fds) ||
	    (flags &
	     ~(BH_SPAWN_PIDNS | BH_SPAWN_PIDNS_REQUIRED | BH_SPAWN_SIBLING)))
		return -EINVAL;
	for (i = 0; i < nfds; i++) {
		if (fds[i].src < 0 || fds[i].dst <= STDERR_FILENO ||
		    fds[i].dst >= INT_MAX - SPAWN_TMP_FD_MIN)
			return -EINVAL;
		for (j = 0; j < i; j++) {
			if (fds[j].dst == fds[i].dst)
				return -EINVAL;
		}
	}
	/* Allocated before fork: the child must not call malloc. */
	if (nfds > 0) {
		tmp = calloc(nfds, sizeof(*tmp));
		if (!tmp)
			return -ENOMEM;
	}

	name = argv[0] ? argv[0] : path;
	if (strrchr(name, '/'))
		name = strrchr(name, '/') + 1;
	pid = spawn_clone(name, flags, parent, &ns, &refused_err);
	if (pid == 0)
		child_run(path, argv, fds, nfds, tmp, parent, &ns);
	bh_closep(&ns.parent_fd);
	free(tmp);
	if (refused)
		*refused = refused_err;
	if (pid < 0)
		return pid;
	*pid_out = pid;
	return 0;
}

int bh_spawn(const char *path, char *const argv[],
	     const struct bh_spawn_fd *fds, size_t nfds, pid_t *pid_out)
{
	return bh_spawn_ns(path, argv, fds, nfds, 0, pid_out, NULL);
}

int bh_exe_dir(char *buf, size_t len)
{
	char exe[PATH_MAX];
	size_t dir_len;
	ssize_t n;
	char *slash;

	n = readlink("/proc/self/exe", exe, sizeof(exe));
	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(exe))
		return -ENAMETOOLONG;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -EINVAL;
	/* The root directory keeps its slash. */
	dir_len = slash == exe ? 1 : (size_t)(slash - exe);
	if (dir_len + 1 > len)
		return -ENAMETOOLONG;
	memcpy(buf, exe, dir_len);
	buf[dir_len] = '\0';
	return 0;
}

/* Whether two directory names are the same directory. */
static bool same_dir(const char *a, const char *b)
{
	struct stat sa, sb;

	if (strcmp(a, b) == 0)
		return true;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

const char *bh_child_dir_for(const char *exe_dir, const char *bindir,
			     const char *libexecdir)
{
	return same_dir(exe_dir, bindir) ? libexecdir : exe_dir;
}

int bh_child_dir(const char *bindir, const char *libexecdir, char *out,
		 size_t len)
{
	char dir[PATH_MAX];
	int r = bh_exe_dir(dir, sizeof(dir));

	if (r < 0)
		return r;
	if ((size_t)snprintf(out, len, "%s",
			     bh_child_dir_for(dir, bindir, libexecdir)) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int bh_find_child(const char *name, const char *dir, char *out, size_t len)
{
	if ((size_t)snprintf(out, len, "%s/%s", dir, name) >= len)
		return -ENAMETOOLONG;
	return access(out, X_OK) == 0 ? 0 : -ENOENT;
}

const char *bh_describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)%s",
			 WTERMSIG(status), strsignal(WTERMSIG(status)),
			 WCOREDUMP(status) ? ", core dumped" : "");
	else if (WIFSTOPPED(status))
		snprintf(buf, len, "stopped by signal %d (%s)",
			 WSTOPSIG(status), strsignal(WSTOPSIG(status)));
	else
		snprintf(buf, len, "unknown wait status 0x%x",
			 (unsigned int)status);
	return buf;
}

int bh_reap(pid_t pid, int grace_ms, int *killed)
{
	struct timespec start, now;
	int status = 0;
	pid_t p;

	if (killed)
		*killed = 0;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		p = waitpid(pid, &status, WNOHANG);
		if (p == pid)
			return status;
		if (p < 0 && errno != EINTR)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 +
			(now.tv_nsec - start.tv_nsec) / 1000000 >=
		    grace_ms)
			break;
		usleep(5000);
	}
	if (killed)
		*killed = 1;
	kill(pid, SIGKILL);
	while ((p = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	return p == pid ? status : 0;
}

int bh_helper_detach(int *sock)
{
	static const int ignored[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	int null_fd;

	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		signal(ignored[i], SIG_IGN);
	if (setsid() < 0)
		return -errno;
	if (*sock != BH_CHILD_FD_CONTROL) {
		if (dup3(*sock, BH_CHILD_FD_CONTROL, O_CLOEXEC) < 0)
			return -errno;
		*sock = BH_CHILD_FD_CONTROL;
	}
	if (close_range(BH_CHILD_FD_CONTROL + 1, ~0U, 0) < 0)
		return -errno;
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0)
		return -errno;
	if (dup2(null_fd, STDIN_FILENO) < 0 ||
	    dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
		close(null_fd);
		return -errno;
	}
	close(null_fd);
	return 0;
}
