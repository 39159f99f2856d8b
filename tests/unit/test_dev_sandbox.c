/* The device workers' sandbox seen from outside, through bh_vdriver, which
 * spawns them as the controller does: a running worker's /proc shows
 * seccomp, no_new_privs, no capabilities, no core files and namespaces of its
 * own, PID included, in which it is PID 1; where the host refuses a user or
 * PID namespace a worker warns and runs, unless WorkerSetup asks for a
 * strict sandbox, which it then refuses to start with; and the worker dies
 * with the process that spawned it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <seccomp.h>
#include <cmocka.h>

#include "bulkhead/util.h"
#include "vdriver.h"

#define WORKER BH_WORKER_DIR "/bulkhead-dev-rng"

/* The value of a "Name:\tvalue" line of /proc/<pid>/status, or "" (no
 * cmocka assertion: forked processes use it too). */
static void status_field(pid_t pid, const char *name, char *out, size_t len)
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
			snprintf(out, len, "%s", line + n + 1);
			out[strcspn(out, "\n")] = '\0';
			memmove(out, out + strspn(out, " \t"),
				strlen(out + strspn(out, " \t")) + 1);
			break;
		}
	}
	fclose(f);
}

/* Whether a process shares our namespace of this type; -1 if unreadable. */
static int shares_ns(pid_t pid, const char *type)
{
	char path[64], mine[64], its[64];
	ssize_t a, b;

	snprintf(path, sizeof(path), "/proc/self/ns/%s", type);
	a = readlink(path, mine, sizeof(mine) - 1);
	snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, type);
	b = readlink(path, its, sizeof(its) - 1);
	if (a <= 0 || b <= 0)
		return -1;
	mine[a] = its[b] = '\0';
	return strcmp(mine, its) == 0;
}

/* How many PID namespaces NSpid lists the process in (0 if unreadable), and
 * its pid in the innermost. */
static size_t nspid_levels(pid_t pid, long *inner)
{
	char v[128], *p = v, *end;
	size_t n = 0;

	status_field(pid, "NSpid", v, sizeof(v));
	*inner = -1;
	while (*p) {
		*inner = strtol(p, &end, 10);
		if (end == p)
			return 0;
		n++;
		p = end + strspn(end, " \t");
	}
	return n;
}

/* Whether the process is in our PID namespace. */
static bool same_pid_ns(pid_t pid)
{
	long inner;
	size_t ours = nspid_levels(getpid(), &inner);

	return ours > 0 && nspid_levels(pid, &inner) == ours && inner == pid;
}

/* Whether the process is PID 1 of a namespace right below ours. */
static bool pid1_below(pid_t pid)
{
	long inner;
	size_t ours = nspid_levels(getpid(), &inner);

	return ours > 0 && nspid_levels(pid, &inner) == ours + 1 && inner == 1;
}

static int start(const char *binary, bool strict, struct bh_vdriver **d)
{
	struct bh_vdriver_cfg cfg = { 0 };
	int src = open("/dev/urandom", O_RDONLY | O_CLOEXEC), r;

	assert_true(src >= 0);
	cfg.backend_fds = &src;
	cfg.n_backend_fds = 1;
	cfg.binary = binary;
	cfg.type = BH__WORKER_SETUP__BACKEND_RNG;
	cfg.ram_size = 16ULL << 20;
	cfg.strict_sandbox = strict;
	cfg.log_level = "error";
	r = bh_vdriver_start(&cfg, d);
	close(src);
	return r;
}

static void test_proc_status(void **state)
{
	static const char *const zero[] = { "CapInh", "CapPrm", "CapEff",
					    "CapBnd", "CapAmb" };
	static const char *const ns[] = { "user", "mnt", "net",
					  "ipc",  "uts", "pid" };
	struct bh_vdriver *d = NULL;
	char v[128], its[PATH_MAX], path[64];
	pid_t pid;
	FILE *f;
	bool core_off = false;

	/* Strict: this machine allows every step, so it starts. */
	assert_int_equal(start(WORKER, true, &d), 0);
	pid = bh_vdriver_pid(d);
	status_field(pid, "Seccomp", v, sizeof(v));
	assert_string_equal(v, "2");
	status_field(pid, "NoNewPrivs", v, sizeof(v));
	assert_string_equal(v, "1");
	for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
		status_field(pid, zero[i], v, sizeof(v));
		if (strcmp(v, "0000000000000000") != 0)
			fail_msg("%s is %s", zero[i], v);
	}
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		int r = shares_ns(pid, ns[i]);

		assert_true(r >= 0);
		if (r)
			fail_msg("the worker shares our %s namespace", ns[i]);
	}
	/* Two entries: its pid here, and 1 in its own namespace. */
	status_field(pid, "NSpid", v, sizeof(v));
	if (!pid1_below(pid))
		fail_msg("NSpid of the worker (pid %d) is '%s'", (int)pid, v);
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(its, sizeof(its), f))
		if (strncmp(its, "Max core file size", 18) == 0)
			core_off = strstr(its, " 0 ") != NULL;
	fclose(f);
	assert_true(core_off);
	assert_int_equal(bh_vdriver_stop(d, BH_VDRIVER_TIMEOUT_MS, NULL), 0);
}

/* A wrapper that starts the worker where user namespaces are used up:
 * inside a user namespace whose max_user_namespaces is 0. */
static void make_refusing_wrapper(char *path, size_t len)
{
	FILE *f;
	int fd;

	snprintf(path, len, "/tmp/bh-test-nouserns-XXXXXX");
	fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f,
		"#!/bin/sh\n"
		"exec /usr/bin/unshare --user --map-root-user /bin/sh -c "
		"'echo 0 >/proc/sys/user/max_user_namespaces && "
		"exec \"$0\" \"$@\"' %s \"$@\"\n",
		WORKER);
	fclose(f);
	assert_int_equal(chmod(path, 0700), 0);
}

static void test_refused_namespace(void **state)
{
	struct bh_vdriver *d = NULL;
	char wrapper[64];
	int status = 0;

	make_refusing_wrapper(wrapper, sizeof(wrapper));
	/* Relaxed: a warning, and the worker serves. */
	assert_int_equal(start(wrapper, false, &d), 0);
	assert_true(bh_vdriver_alive(d));
	assert_int_equal(bh_vdriver_stop(d, BH_VDRIVER_TIMEOUT_MS, NULL), 0);

	/* Strict: it refuses to start. */
	d = NULL;
	assert_true(start(wrapper, true, &d) < 0);
	if (d) {
		assert_int_equal(
		    bh_vdriver_wait_exit(d, BH_VDRIVER_TIMEOUT_MS, &status), 0);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
		bh_vdriver_stop(d, 0, NULL);
	}
	unlink(wrapper);
}

/*
 * Where the host refuses the clone into a user and PID namespace (here a
 * seccomp filter in a throw-away process answers EPERM to clone with
 * CLONE_NEWUSER, as systemd's RestrictNamespaces= or a container's filter
 * do; the worker's own unshare stays allowed): relaxed, the worker starts
 * after a warning, in our PID namespace but with its other namespaces;
 * strict, it does not start. The exit status is the step that failed.
 */
static int pidns_refused_run(const char *log)
{
	struct bh_vdriver *d = NULL;
	scmp_filter_ctx ctx;
	char buf[4096];
	ssize_t n;
	pid_t pid;
	int fd;

	fd = open(log, O_RDWR | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		return 1;
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
			     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER,
				     CLONE_NEWUSER)) < 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) <
		0 ||
	    seccomp_load(ctx) < 0)
		return 2;
	seccomp_release(ctx);

	if (start(WORKER, false, &d) != 0)
		return 3;
	pid = bh_vdriver_pid(d);
	if (!same_pid_ns(pid))
		return 4;
	/* Forked in our user namespace, it is not dumpable and its ns links
	 * are for root alone; cloned, they were ours as its user namespace's
	 * owner. */
	for (size_t i = 0; i < 3; i++) {
		static const char *const own[] = { "user", "mnt", "net" };
		int r = shares_ns(pid, own[i]);

		if (r == 1 || (r < 0 && geteuid() == 0))
			return 5;
	}
	if (bh_vdriver_stop(d, BH_VDRIVER_TIMEOUT_MS, NULL) != 0)
		return 6;

	d = NULL;
	if (start(WORKER, true, &d) != -EPERM || d)
		return 7;
	/* Nothing was left running. */
	if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
		return 8;

	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 9;
	buf[n] = '\0';
	if (!strstr(buf, "warn: sandbox: bulkhead-dev-rng: PID namespace "
			 "refused (Operation not permitted): started without "
			 "one\n"))
		return 10;
	if (!strstr(buf, "error: sandbox: bulkhead-dev-rng: PID namespace "
			 "refused (Operation not permitted), and it is "
			 "required: not starting\n"))
		return 11;
	return 0;
}

static void test_pidns_refused(void **state)
{
	char log[] = "/tmp/bh-test-pidns-XXXXXX", buf[4096];
	int fd, status;
	ssize_t n;
	pid_t pid;

	fd = mkostemp(log, O_CLOEXEC);
	assert_true(fd >= 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(pidns_refused_run(log));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(log);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("step %d failed (status 0x%x); its log:\n%s",
			 WEXITSTATUS(status), status, buf);
}

/*
 * kill -9 of the process that spawned a worker (the controller) takes the
 * worker with it: PR_SET_PDEATHSIG's SIGKILL comes from the parent's
 * namespace, so the worker gets it even as PID 1 of its own. A process that
 * keeps the control socket open outlives the spawner, so that the worker
 * cannot leave on its own through EOF: only the signal ends it.
 */
static void test_spawner_killed(void **state)
{
	pid_t spawner, worker, holder, got[2];
	int p[2], spawner_status = 0, worker_status = 0, ms;
	bool was_pid1;

	/* We adopt the orphans so that we can see how they ended. */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	spawner = fork();
	assert_true(spawner >= 0);
	if (spawner == 0) {
		struct bh_vdriver *d = NULL;
		pid_t h;

		/* A backstop: nothing here outlives a failed test for long. */
		alarm(30);
		if (start(WORKER, false, &d) != 0)
			_exit(1);
		got[0] = bh_vdriver_pid(d);
		h = fork();
		if (h < 0)
			_exit(2);
		if (h == 0) {
			/* Holds our end of the control socket. */
			for (;;)
				pause();
		}
		got[1] = h;
		if (write(p[1], got, sizeof(got)) != sizeof(got))
			_exit(3);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(bh_read_full(p[0], got, sizeof(got)), 0);
	close(p[0]);
	worker = got[0];
	holder = got[1];
	was_pid1 = pid1_below(worker);

	kill(spawner, SIGKILL);
	waitpid(spawner, &spawner_status, 0);
	/* The worker is ours now, and goes at once; 5 s at most. */
	for (ms = 0; ms < 5000; ms += 10) {
		if (waitpid(worker, &worker_status, WNOHANG) == worker)
			break;
		usleep(10000);
	}
	if (ms >= 5000) {
		kill(worker, SIGKILL);
		waitpid(worker, NULL, 0);
	}
	kill(holder, SIGKILL);
	waitpid(holder, NULL, 0);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);

	assert_true(was_pid1);
	assert_true(WIFSIGNALED(spawner_status) &&
		    WTERMSIG(spawner_status) == SIGKILL);
	if (ms >= 5000)
		fail_msg("the worker outlived its spawner");
	assert_true(WIFSIGNALED(worker_status));
	assert_int_equal(WTERMSIG(worker_status), SIGKILL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proc_status),
		cmocka_unit_test(test_refused_namespace),
		cmocka_unit_test(test_pidns_refused),
		cmocka_unit_test(test_spawner_killed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
