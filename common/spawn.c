/* Spawning children: fork+execve with an empty environment and fixed fds. */
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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

static void __attribute__((noreturn))
child_run(const char *path, char *const argv[], const struct bh_spawn_fd *fds,
	  size_t nfds, int *tmp, pid_t parent)
{
	static char *const empty_env[] = { NULL };
	int max_dst = STDERR_FILENO;
	int fd, tmp_min;
	size_t i;

	/*
	 * PR_SET_PDEATHSIG follows the parent thread that forked us, so the
	 * caller should spawn from a thread that lives as long as the process.
	 * If the parent already died before the prctl, no signal will come.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail("prctl PR_SET_PDEATHSIG", path);
	if (getppid() != parent)
		_exit(127);
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

int bh_spawn(const char *path, char *const argv[],
	     const struct bh_spawn_fd *fds, size_t nfds, pid_t *pid_out)
{
	pid_t parent = getpid();
	int *tmp = NULL;
	size_t i, j;
	pid_t pid;

	if (!path || !argv || (nfds > 0 && !fds))
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

	pid = fork();
	if (pid < 0) {
		int ret = -errno;

		free(tmp);
		return ret;
	}
	if (pid == 0)
		child_run(path, argv, fds, nfds, tmp, parent);

	free(tmp);
	*pid_out = pid;
	return 0;
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

int bh_find_child(const char *name, const char *libexecdir, char *out,
		  size_t len)
{
	char dir[PATH_MAX];

	if (bh_exe_dir(dir, sizeof(dir)) == 0 &&
	    (size_t)snprintf(out, len, "%s/%s", dir, name) < len &&
	    access(out, X_OK) == 0)
		return 0;
	if ((size_t)snprintf(out, len, "%s/%s", libexecdir, name) < len &&
	    access(out, X_OK) == 0)
		return 0;
	return -ENOENT;
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
