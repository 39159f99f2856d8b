/* Unit tests for spawn.c: what a child sees after bh_spawn. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cap-ng.h>
#include <cmocka.h>

#include "bulkhead/sandbox.h"
#include "bulkhead/spawn.h"
#include "bulkhead/util.h"

/* Reads everything until EOF into a NUL-terminated buffer. */
static void read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;

	for (;;) {
		ssize_t n;

		assert_true(got < len - 1);
		n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n >= 0);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
}

static int wait_child(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

/* Runs a shell script with fd 3 as a pipe; returns its output. */
static int run_script(const char *script, char *out, size_t len)
{
	char *argv[] = { "sh", "-c", (char *)script, NULL };
	struct bh_spawn_fd map;
	int p[2];
	pid_t pid;
	int status;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	map.src = p[1];
	map.dst = 3;
	assert_int_equal(bh_spawn("/bin/sh", argv, &map, 1, &pid), 0);
	close(p[1]);
	read_all(p[0], out, len);
	close(p[0]);
	status = wait_child(pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_child_fds(void **state)
{
	char out[4096];
	int leak;

	/* An inheritable fd in the parent must not reach the child. */
	leak = open("/dev/null", O_RDONLY);
	assert_true(leak >= 0);
	assert_true(dup2(leak, 20) == 20);

	assert_int_equal(run_script("ls /proc/self/fd >&3", out, sizeof(out)),
			 0);
	/* 0-3, and 4 which ls opens to list the directory. */
	assert_string_equal(out, "0\n1\n2\n3\n4\n");
	close(20);
	close(leak);
}

static void test_child_env_empty(void **state)
{
	char out[4096];

	/* The shell's initial environment, before it adds anything. */
	assert_int_equal(
	    run_script("cat /proc/$$/environ >&3", out, sizeof(out)), 0);
	assert_string_equal(out, "");
}

/* The child leads its own session, away from the parent's process group. */
static void test_child_session(void **state)
{
	char out[4096];

	assert_int_equal(run_script("set -- $(cat /proc/$$/stat); "
				    "echo \"$1 $5 $6\" >&3",
				    out, sizeof(out)),
			 0);
	/* pid, process group and session are all the child's own pid. */
	{
		unsigned long pid, pgrp, sid;

		assert_int_equal(sscanf(out, "%lu %lu %lu", &pid, &pgrp, &sid),
				 3);
		assert_int_equal(pgrp, pid);
		assert_int_equal(sid, pid);
		assert_true(sid != (unsigned long)getsid(0));
	}
}

static void test_child_stdio(void **state)
{
	char out[4096], want[2 * PATH_MAX + 64], err_target[PATH_MAX];
	ssize_t n;

	n = readlink("/proc/self/fd/2", err_target, sizeof(err_target) - 1);
	assert_true(n > 0);
	err_target[n] = '\0';
	snprintf(want, sizeof(want), "stdin=eof\n/dev/null\n%s\n%s\n",
		 err_target, err_target);

	/* dash applies a command's redirections in the shell itself before
	 * forking, so the links are read before anything is redirected. */
	assert_int_equal(run_script("r=$(readlink /proc/$$/fd/0 /proc/$$/fd/1 "
				    "/proc/$$/fd/2); "
				    "if read x; then echo stdin=data; "
				    "else echo stdin=eof; fi >&3; "
				    "echo \"$r\" >&3",
				    out, sizeof(out)),
			 0);
	assert_string_equal(out, want);
}

static unsigned long long sig_field(const char *status, const char *name)
{
	const char *p = strstr(status, name);

	assert_non_null(p);
	return strtoull(p + strlen(name), NULL, 16);
}

static void test_child_signals(void **state)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_usr2;
	sigset_t block, old_mask;
	char out[4096];

	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	assert_int_equal(sigprocmask(SIG_BLOCK, &block, &old_mask), 0);
	assert_int_equal(sigaction(SIGUSR2, &ign, &old_usr2), 0);

	/* cat's own status, after two execs: the shell itself blocks
	 * signals for a moment around each fork. */
	assert_int_equal(
	    run_script("exec cat /proc/self/status >&3", out, sizeof(out)), 0);
	assert_true(sig_field(out, "SigBlk:") == 0);
	/* An ignored disposition would survive execve. */
	assert_true((sig_field(out, "SigIgn:") & (1ULL << (SIGUSR2 - 1))) == 0);

	assert_int_equal(sigaction(SIGUSR2, &old_usr2, NULL), 0);
	assert_int_equal(sigprocmask(SIG_SETMASK, &old_mask, NULL), 0);
}

/* Two fds that trade numbers: each must still land where it was asked. */
static void test_crossed_fds(void **state)
{
	struct bh_spawn_fd map[2];
	char *argv[4], script[64];
	int a[2], b[2];
	char out[64];
	pid_t pid;

	assert_int_equal(pipe2(a, O_CLOEXEC), 0);
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	/* sh redirects only single-digit fds; a test process has few. */
	assert_true(a[1] <= 9 && b[1] <= 9);
	map[0].src = a[1];
	map[0].dst = b[1];
	map[1].src = b[1];
	map[1].dst = a[1];
	snprintf(script, sizeof(script), "echo one >&%d; echo two >&%d", b[1],
		 a[1]);
	argv[0] = "sh";
	argv[1] = "-c";
	argv[2] = script;
	argv[3] = NULL;
	assert_int_equal(bh_spawn("/bin/sh", argv, map, 2, &pid), 0);
	close(a[1]);
	close(b[1]);
	read_all(a[0], out, sizeof(out));
	assert_string_equal(out, "one\n");
	read_all(b[0], out, sizeof(out));
	assert_string_equal(out, "two\n");
	assert_int_equal(wait_child(pid), 0);
	close(a[0]);
	close(b[0]);
}

static void test_exec_failure(void **state)
{
	char *argv[] = { "nothing", NULL };
	pid_t pid;
	int status;

	assert_int_equal(
	    bh_spawn("/nonexistent/bulkhead-child", argv, NULL, 0, &pid), 0);
	status = wait_child(pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 127);
}

static void test_bad_args(void **state)
{
	char *argv[] = { "true", NULL };
	struct bh_spawn_fd low = { .src = 2, .dst = 2 };
	struct bh_spawn_fd dup[2] = { { 2, 5 }, { 2, 5 } };
	struct bh_spawn_fd neg = { .src = -1, .dst = 3 };
	pid_t pid = 0;

	assert_int_equal(bh_spawn("/bin/true", argv, &low, 1, &pid), -EINVAL);
	assert_int_equal(bh_spawn("/bin/true", argv, dup, 2, &pid), -EINVAL);
	assert_int_equal(bh_spawn("/bin/true", argv, &neg, 1, &pid), -EINVAL);
	assert_int_equal(pid, 0);
}

/* The child dies with the process that spawned it, also as the PID 1 of a
 * namespace of its own, which ignores every other signal from outside. */
static void check_pdeathsig(unsigned int flags)
{
	int p[2], status;
	pid_t mid, child;

	/* We adopt the orphan so that we can see how it ended. */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	mid = fork();
	assert_true(mid >= 0);
	if (mid == 0) {
		/* The child reports once its death signal is armed, so that
		 * our exit cannot race its prctl. */
		char *argv[] = { "sh", "-c", "echo >&3; exec sleep 60", NULL };
		struct bh_spawn_fd map;
		int ready[2];
		char c;
		pid_t pid;

		if (pipe2(ready, O_CLOEXEC) < 0)
			_exit(1);
		map.src = ready[1];
		map.dst = 3;
		if (bh_spawn_ns("/bin/sh", argv, &map, 1, flags, &pid, NULL) <
		    0)
			_exit(1);
		close(ready[1]);
		if (read(ready[0], &c, 1) != 1)
			_exit(1);
		if (write(p[1], &pid, sizeof(pid)) != sizeof(pid))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(bh_read_full(p[0], &child, sizeof(child)), 0);
	close(p[0]);
	status = wait_child(mid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	status = wait_child(child);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
}

static void test_pdeathsig(void **state)
{
	check_pdeathsig(0);
}

static void test_pidns_pdeathsig(void **state)
{
	check_pdeathsig(BH_SPAWN_PIDNS | BH_SPAWN_PIDNS_REQUIRED);
}

/* The value of a "Name:\tvalue" line of /proc/<pid>/status, or "". */
static void pid_status_field(pid_t pid, const char *name, char *out, size_t len)
{
	char path[64], line[256];
	size_t n = strlen(name);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	out[0] = '\0';
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, name, n) == 0 && line[n] == ':') {
			snprintf(out, len, "%s",
				 line + n + 1 + strspn(line + n + 1, " \t"));
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	}
	fclose(f);
}

/* Whether two processes share a namespace of this type. */
static bool same_ns(pid_t a, pid_t b, const char *type)
{
	char pa[64], pb[64], la[64], lb[64];
	ssize_t na, nb;

	snprintf(pa, sizeof(pa), "/proc/%d/ns/%s", (int)a, type);
	snprintf(pb, sizeof(pb), "/proc/%d/ns/%s", (int)b, type);
	na = readlink(pa, la, sizeof(la) - 1);
	nb = readlink(pb, lb, sizeof(lb) - 1);
	assert_true(na > 0 && nb > 0);
	la[na] = lb[nb] = '\0';
	return strcmp(la, lb) == 0;
}

/*
 * Spawns sh -c script with fd 3 as a pipe and returns its pid; the script's
 * output, up to its closing fd 3, goes into out. A script that goes on
 * running after that is the caller's to end.
 */
static pid_t spawn_script(const char *script, unsigned int flags, char *out,
			  size_t len, int *refused)
{
	char *argv[] = { "sh", "-c", (char *)script, NULL };
	struct bh_spawn_fd map;
	int p[2];
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	map.src = p[1];
	map.dst = 3;
	assert_int_equal(
	    bh_spawn_ns("/bin/sh", argv, &map, 1, flags, &pid, refused), 0);
	close(p[1]);
	read_all(p[0], out, len);
	close(p[0]);
	return pid;
}

/*
 * BH_SPAWN_PIDNS: the child is PID 1 of a new PID namespace, in a new user
 * namespace where its ids are its own and where it may make namespaces
 * further in; we see it under an ordinary pid, it is our child, SIGKILL
 * ends it and a SIGTERM without a handler does not.
 */
static void test_pidns_child(void **state)
{
	char out[512], want[512], nspid[64];
	unsigned long outer;
	int refused = -1, status;
	pid_t pid;

	pid = spawn_script("echo $$ >&3; cat /proc/self/uid_map "
			   "/proc/self/gid_map >&3; "
			   "unshare --user --mount --net true && "
			   "echo nested >&3; exec 3>&-; exec sleep 30",
			   BH_SPAWN_PIDNS | BH_SPAWN_PIDNS_REQUIRED, out,
			   sizeof(out), &refused);
	assert_int_equal(refused, 0);
	snprintf(want, sizeof(want),
		 "1\n%10u %10u %10u\n%10u %10u %10u\nnested\n",
		 (unsigned int)geteuid(), (unsigned int)geteuid(), 1U,
		 (unsigned int)getegid(), (unsigned int)getegid(), 1U);
	assert_string_equal(out, want);

	/* Its pid here, then 1 in its own namespace. */
	pid_status_field(pid, "NSpid", nspid, sizeof(nspid));
	assert_int_equal(sscanf(nspid, "%lu", &outer), 1);
	assert_int_equal(outer, (unsigned long)pid);
	assert_non_null(strchr(nspid, '\t'));
	assert_string_equal(strchr(nspid, '\t'), "\t1");
	assert_false(same_ns(pid, getpid(), "pid"));
	assert_false(same_ns(pid, getpid(), "user"));
	assert_true(same_ns(pid, getpid(), "mnt"));

	/* Queued and discarded at once: PID 1 has no handler for it. */
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(kill(pid, SIGKILL), 0);
	status = wait_child(pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
}

/* Without BH_SPAWN_PIDNS nothing changes: our namespaces, our ids. */
static void test_plain_child(void **state)
{
	char out[64], want[64];
	int refused = -1;
	pid_t pid;

	pid = spawn_script("echo $$ >&3; exec 3>&-; exec sleep 30", 0, out,
			   sizeof(out), &refused);
	assert_int_equal(refused, 0);
	snprintf(want, sizeof(want), "%d\n", (int)pid);
	assert_string_equal(out, want);
	assert_true(same_ns(pid, getpid(), "pid"));
	assert_true(same_ns(pid, getpid(), "user"));
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(WTERMSIG(wait_child(pid)), SIGKILL);
}

/* Reads a whole small file into buf. */
static void slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	read_all(fd, buf, len);
	close(fd);
}

/*
 * Where user namespaces are used up (user.max_user_namespaces 0 in the user
 * namespace we run in), the clone is refused with ENOSPC: the child is
 * forked after a warning into our PID namespace, or with
 * BH_SPAWN_PIDNS_REQUIRED nothing starts. Runs in a throw-away process,
 * which its exit status reports on.
 */
static int refused_run(const char *log)
{
	char out[64], want[64];
	int refused = -1, r, fd;
	char *argv[] = { "sh", "-c", "echo $$ >&3", NULL };
	struct bh_spawn_fd map;
	int p[2];
	pid_t pid;

	fd = open(log, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		return 1;
	close(fd);
	/* The uid is read before the unshare: unmapped, it reads 65534. */
	snprintf(want, sizeof(want), "0 %u 1", (unsigned int)geteuid());
	if (unshare(CLONE_NEWUSER) < 0)
		return 2;
	fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, want, strlen(want)) < 0)
		return 3;
	close(fd);
	fd = open("/proc/sys/user/max_user_namespaces", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1)
		return 4;
	close(fd);

	if (pipe2(p, O_CLOEXEC) < 0)
		return 5;
	map.src = p[1];
	map.dst = 3;
	r = bh_spawn_ns("/bin/sh", argv, &map, 1, BH_SPAWN_PIDNS, &pid,
			&refused);
	if (r != 0 || refused != ENOSPC)
		return 6;
	close(p[1]);
	r = (int)read(p[0], out, sizeof(out) - 1);
	close(p[0]);
	if (r <= 0)
		return 7;
	out[r] = '\0';
	/* Forked: its pid is the same here and in its own eyes. */
	snprintf(want, sizeof(want), "%d\n", (int)pid);
	if (strcmp(out, want) != 0)
		return 8;
	if (waitpid(pid, &r, 0) != pid || !WIFEXITED(r) || WEXITSTATUS(r) != 0)
		return 9;

	refused = -1;
	pid = 0;
	r = bh_spawn_ns("/bin/true", argv, NULL, 0,
			BH_SPAWN_PIDNS | BH_SPAWN_PIDNS_REQUIRED, &pid,
			&refused);
	if (r != -ENOSPC || refused != ENOSPC || pid != 0)
		return 10;
	if (waitpid(-1, &r, WNOHANG) != -1 || errno != ECHILD)
		return 11;
	return 0;
}

static void test_pidns_refused(void **state)
{
	char log[] = "/tmp/bh-test-spawn-XXXXXX", buf[2048];
	int fd, status;
	pid_t pid;

	fd = mkostemp(log, O_CLOEXEC);
	assert_true(fd >= 0);
	close(fd);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(refused_run(log));
	status = wait_child(pid);
	slurp(log, buf, sizeof(buf));
	unlink(log);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("step %d failed; its log: %s", WEXITSTATUS(status),
			 buf);
	assert_non_null(strstr(buf, "warn: sandbox: sh: PID namespace "
				    "refused (No space left on device): "
				    "started without one\n"));
	assert_non_null(strstr(buf, "error: sandbox: sh: PID namespace "
				    "refused (No space left on device), and "
				    "it is required: not starting\n"));
}

/*
 * Root may map root in a user namespace only with CAP_SETFCAP, and a child
 * whose ids are not mapped could not make the worker's namespaces: for root
 * without it, the PID namespace counts as refused (EPERM). Anyone else keeps
 * their ids there and may nest a user namespace. Runs in a throw-away
 * process that drops CAP_SETFCAP; its exit status is the step that failed.
 */
static int no_setfcap_run(int out_fd)
{
	char *argv[] = { "sh", "-c",
			 "cat /proc/self/uid_map >&3; "
			 "unshare --user true && echo nested >&3",
			 NULL };
	struct bh_spawn_fd map = { .src = out_fd, .dst = 3 };
	int refused = -1, status, r;
	pid_t child = 0;

	if (capng_get_caps_process() < 0 ||
	    capng_update(CAPNG_DROP, CAPNG_EFFECTIVE | CAPNG_PERMITTED,
			 CAP_SETFCAP) < 0 ||
	    capng_apply(CAPNG_SELECT_CAPS) < 0)
		return 1;
	r = bh_spawn_ns("/bin/sh", argv, &map, 1,
			BH_SPAWN_PIDNS | BH_SPAWN_PIDNS_REQUIRED, &child,
			&refused);
	if (geteuid() == 0)
		return r == -EPERM && refused == EPERM && child == 0 ? 0 : 2;
	if (r < 0 || refused != 0)
		return 3;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status))
		return 4;
	return WEXITSTATUS(status) == 0 ? 0 : 5;
}

static void test_pidns_no_setfcap(void **state)
{
	char out[512], want[512];
	int p[2], status;
	pid_t pid;

	want[0] = '\0';
	if (geteuid() != 0)
		snprintf(want, sizeof(want), "%10u %10u %10u\nnested\n",
			 (unsigned int)geteuid(), (unsigned int)geteuid(), 1U);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(no_setfcap_run(p[1]));
	close(p[1]);
	read_all(p[0], out, sizeof(out));
	close(p[0]);
	status = wait_child(pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_string_equal(out, want);
}

static void test_describe_status(void **state)
{
	char *exit3[] = { "sh", "-c", "exit 3", NULL };
	char *kill9[] = { "sh", "-c", "kill -9 $$", NULL };
	char buf[128];
	pid_t pid;

	assert_int_equal(bh_spawn("/bin/sh", exit3, NULL, 0, &pid), 0);
	assert_string_equal(
	    bh_describe_status(wait_child(pid), buf, sizeof(buf)),
	    "exited with status 3");
	assert_int_equal(bh_spawn("/bin/sh", kill9, NULL, 0, &pid), 0);
	assert_string_equal(
	    bh_describe_status(wait_child(pid), buf, sizeof(buf)),
	    "killed by signal 9 (Killed)");
	/* Truncation keeps the buffer terminated. */
	assert_int_equal(strlen(bh_describe_status(0, buf, 8)), 7);
}

static void test_exe_dir(void **state)
{
	char dir[PATH_MAX], exe[PATH_MAX], small[4];
	struct stat st;
	ssize_t n;

	assert_int_equal(bh_exe_dir(dir, sizeof(dir)), 0);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	assert_int_equal(strncmp(exe, dir, strlen(dir)), 0);
	assert_int_equal(exe[strlen(dir)], '/');
	assert_null(strchr(exe + strlen(dir) + 1, '/'));
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(bh_exe_dir(small, sizeof(small)), -ENAMETOOLONG);
}

/* An installed bulkhead takes its children from libexecdir; any other (a
 * build tree, a copy) only from beside itself, even where an installed
 * Bulkhead exists: a build tree never runs another build's children. */
static void test_child_dir(void **state)
{
	char base[] = "/tmp/bh-childdir-XXXXXX", bin[64], link[64], lib[64];
	char dir[PATH_MAX], path[PATH_MAX], exe[PATH_MAX];
	int fd;

	assert_non_null(mkdtemp(base));
	snprintf(bin, sizeof(bin), "%s/bin", base);
	snprintf(lib, sizeof(lib), "%s/libexec", base);
	snprintf(link, sizeof(link), "%s/bin-link", base);
	assert_int_equal(mkdir(bin, 0755), 0);
	assert_int_equal(mkdir(lib, 0755), 0);
	assert_int_equal(symlink(bin, link), 0);

	assert_string_equal(bh_child_dir_for(bin, bin, lib), lib);
	/* The same directory by another name is still the install. */
	assert_string_equal(bh_child_dir_for(link, bin, lib), lib);
	assert_string_equal(bh_child_dir_for("/work/build/bin", bin, lib),
			    "/work/build/bin");
	assert_string_equal(bh_child_dir_for(lib, bin, lib), lib);

	/* This test program is not installed in bin: its own directory. */
	assert_int_equal(bh_child_dir(bin, lib, dir, sizeof(dir)), 0);
	assert_int_equal(bh_exe_dir(exe, sizeof(exe)), 0);
	assert_string_equal(dir, exe);
	assert_int_equal(bh_child_dir(bin, lib, dir, 4), -ENAMETOOLONG);

	/* Only an executable counts. */
	snprintf(path, sizeof(path), "%s/bulkhead-x", lib);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(bh_find_child("bulkhead-x", lib, dir, sizeof(dir)),
			 -ENOENT);
	assert_int_equal(chmod(path, 0755), 0);
	assert_int_equal(bh_find_child("bulkhead-x", lib, dir, sizeof(dir)), 0);
	assert_string_equal(dir, path);
	assert_int_equal(bh_find_child("bulkhead-x", bin, dir, sizeof(dir)),
			 -ENOENT);
	assert_int_equal(bh_find_child("bulkhead-x", lib, dir, 8),
			 -ENAMETOOLONG);

	unlink(path);
	unlink(link);
	rmdir(bin);
	rmdir(lib);
	rmdir(base);
}

/* Reads a hex field such as "CapEff:" from /proc/self/status. */
static unsigned long long self_status_field(const char *name)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	read_all(fd, buf, sizeof(buf));
	close(fd);
	return sig_field(buf, name);
}

/* The sandbox steps a child takes, run in a throw-away process. */
static void test_sandbox_steps(void **state)
{
	static const char *const bad[] = { "read", "no_such_syscall", NULL };
	static const char *const good[] = { "read", "write", "exit_group",
					    NULL };
	int could_drop_bounds = (self_status_field("CapEff:") >> 8) & 1;
	scmp_filter_ctx ctx;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (bh_sandbox_drop_caps() != 0)
			_exit(1);
		if (self_status_field("CapEff:") != 0 ||
		    self_status_field("CapPrm:") != 0 ||
		    self_status_field("CapInh:") != 0 ||
		    self_status_field("CapAmb:") != 0)
			_exit(2);
		/* CAP_SETPCAP (bit 8) is what allows emptying the bounding
		 * set. */
		if (could_drop_bounds && self_status_field("CapBnd:") != 0)
			_exit(3);
		/* A second call finds nothing left to drop. */
		if (bh_sandbox_drop_caps() != 0)
			_exit(4);
		if (bh_sandbox_no_new_privs() != 0)
			_exit(5);
		if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 ||
		    prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
			_exit(6);
		_exit(0);
	}
	assert_int_equal(wait_child(pid), 0);

	/* Built, never loaded: only the name checks are under test. */
	ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	assert_non_null(ctx);
	assert_int_equal(bh_seccomp_allow_list(ctx, bad), -EINVAL);
	assert_int_equal(bh_seccomp_allow_list(ctx, good), 0);
	seccomp_release(ctx);
}

/* bh_reap: a child that exits is waited for; one that does not is killed
 * after the grace period. */
static void test_reap(void **state)
{
	char *sleeper[] = { "sleep", "10", NULL };
	char *quick[] = { "true", NULL };
	int status, killed;
	pid_t pid;

	assert_int_equal(bh_spawn("/bin/true", quick, NULL, 0, &pid), 0);
	status = bh_reap(pid, 5000, &killed);
	assert_false(killed);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	assert_int_equal(bh_spawn("/bin/sleep", sleeper, NULL, 0, &pid), 0);
	status = bh_reap(pid, 50, &killed);
	assert_true(killed);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_sandbox_limits(void **state)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl;
		int fd, n = 0;

		/* Descriptors 0-2 only, so that the count below is exact. */
		if (close_range(3, ~0U, 0) < 0 || bh_sandbox_limits(3) != 0)
			_exit(1);
		if (getrlimit(RLIMIT_CORE, &rl) < 0 || rl.rlim_cur != 0 ||
		    rl.rlim_max != 0)
			_exit(2);
		/* Three more descriptors, not a fourth. */
		while ((fd = dup(0)) >= 0)
			n++;
		if (errno != EMFILE || n != 3)
			_exit(3);
		if (getrlimit(RLIMIT_NOFILE, &rl) < 0 ||
		    rl.rlim_cur != rl.rlim_max)
			_exit(4);
		_exit(0);
	}
	assert_int_equal(wait_child(pid), 0);
}

/* Landlock: no file opens, creates or changes after it, while descriptors
 * already open keep working. The machines this runs on have Landlock; a
 * kernel without it fails the test rather than skip it. */
static void test_sandbox_landlock(void **state)
{
	/* Made and removed here: once sandboxed, the child can do neither. */
	char dir[] = "/tmp/bh-landlock-XXXXXX";
	int r_status;
	pid_t pid;

	assert_non_null(mkdtemp(dir));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char path[64], c;
		int before, r;

		snprintf(path, sizeof(path), "%s/f", dir);
		before = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
		if (before < 0 || bh_sandbox_no_new_privs() != 0)
			_exit(2);
		r = bh_sandbox_landlock();
		if (r < 1)
			_exit(10 + (r == -EOPNOTSUPP));
		if (open("/etc/hostname", O_RDONLY | O_CLOEXEC) >= 0 ||
		    errno != EACCES)
			_exit(3);
		if (open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600) >= 0 ||
		    errno != EACCES)
			_exit(4);
		if (mkdir(path, 0700) == 0 || rmdir(dir) == 0)
			_exit(5);
		if (read(before, &c, 1) != 1)
			_exit(6);
		_exit(0);
	}
	r_status = wait_child(pid);
	rmdir(dir);
	assert_int_equal(r_status, 0);
}

/*
 * BH_SPAWN_SIBLING, as the controller's launcher uses it: a helper we fork
 * spawns a child (plain, and in a PID namespace) that is ours, not the
 * helper's: we reap it, with its own status, after the helper is gone.
 */
static void test_sibling(void **state)
{
	static const unsigned int flags[] = {
		BH_SPAWN_SIBLING,
		BH_SPAWN_SIBLING | BH_SPAWN_PIDNS,
	};

	(void)state;
	for (size_t i = 0; i < BH_ARRAY_SIZE(flags); i++) {
		char *argv[] = { "sh", "-c", "read x <&3; exit 7", NULL };
		struct bh_spawn_fd map;
		pid_t helper, child = -1;
		int p[2], sv[2];

		assert_int_equal(pipe(p), 0);
		assert_int_equal(pipe(sv), 0);
		helper = fork();
		assert_true(helper >= 0);
		if (helper == 0) {
			map.src = sv[0];
			map.dst = 3;
			if (bh_spawn_ns("/bin/sh", argv, &map, 1, flags[i],
					&child, NULL) < 0)
				_exit(1);
			if (write(p[1], &child, sizeof(child)) !=
			    (ssize_t)sizeof(child))
				_exit(1);
			_exit(0);
		}
		close(p[1]);
		close(sv[0]);
		assert_int_equal(read(p[0], &child, sizeof(child)),
				 (ssize_t)sizeof(child));
		close(p[0]);
		assert_int_equal(wait_child(helper), 0);
		/* The helper is gone, its child lives on, and it is ours. */
		assert_int_equal(waitpid(child, NULL, WNOHANG), 0);
		assert_int_equal(write(sv[1], "x\n", 2), 2);
		close(sv[1]);
		{
			int status = wait_child(child);

			assert_true(WIFEXITED(status));
			assert_int_equal(WEXITSTATUS(status), 7);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_child_fds),
		cmocka_unit_test(test_child_env_empty),
		cmocka_unit_test(test_child_stdio),
		cmocka_unit_test(test_child_session),
		cmocka_unit_test(test_reap),
		cmocka_unit_test(test_child_signals),
		cmocka_unit_test(test_crossed_fds),
		cmocka_unit_test(test_exec_failure),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_pdeathsig),
		cmocka_unit_test(test_pidns_pdeathsig),
		cmocka_unit_test(test_plain_child),
		cmocka_unit_test(test_pidns_child),
		cmocka_unit_test(test_sibling),
		cmocka_unit_test(test_pidns_refused),
		cmocka_unit_test(test_pidns_no_setfcap),
		cmocka_unit_test(test_describe_status),
		cmocka_unit_test(test_exe_dir),
		cmocka_unit_test(test_sandbox_steps),
		cmocka_unit_test(test_sandbox_limits),
		cmocka_unit_test(test_sandbox_landlock),
		cmocka_unit_test(test_child_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
