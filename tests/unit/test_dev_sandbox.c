/* The device workers' sandbox seen from outside, through bh_vdriver: a
 * running worker's /proc shows seccomp, no_new_privs, no capabilities, no
 * core files and namespaces of its own; where the host refuses a user
 * namespace a worker warns and runs, unless WorkerSetup asks for a strict
 * sandbox, which it then refuses to start with. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "vdriver.h"

#define WORKER BH_WORKER_DIR "/bulkhead-dev-rng"

/* The value of a "Name:\tvalue" line of /proc/<pid>/status. */
static void status_field(pid_t pid, const char *name, char *out, size_t len)
{
	char path[64], line[256];
	size_t n = strlen(name);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	out[0] = '\0';
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
	static const char *const ns[] = { "user", "mnt", "net", "ipc", "uts" };
	struct bh_vdriver *d = NULL;
	char v[128], mine[PATH_MAX], its[PATH_MAX], path[64];
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
		ssize_t a, b;

		snprintf(path, sizeof(path), "/proc/self/ns/%s", ns[i]);
		a = readlink(path, mine, sizeof(mine) - 1);
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, ns[i]);
		b = readlink(path, its, sizeof(its) - 1);
		assert_true(a > 0 && b > 0);
		mine[a] = its[b] = '\0';
		if (strcmp(mine, its) == 0)
			fail_msg("the worker shares our %s namespace", ns[i]);
	}
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proc_status),
		cmocka_unit_test(test_refused_namespace),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
