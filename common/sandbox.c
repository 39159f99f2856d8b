/* Sandbox steps every child takes: drop capabilities, no_new_privs, limits,
 * Landlock, seccomp. */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cap-ng.h>

#include "bulkhead/log.h"
#include "bulkhead/sandbox.h"
#include "bulkhead/util.h"

int bh_sandbox_drop_caps(void)
{
	capng_select_t sel = CAPNG_SELECT_CAPS;

	/* Before 4.3 there is no ambient set and so nothing to clear. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
	    errno != EINVAL)
		return -errno;

	if (capng_get_caps_process() < 0)
		return -EIO;
	/*
	 * Emptying the bounding set needs CAP_SETPCAP. Without it the set
	 * cannot be changed, but it does not matter either: with no
	 * capabilities left and no_new_privs nothing can be regained.
	 */
	if (capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP))
		sel = CAPNG_SELECT_BOTH;
	else if (capng_have_capabilities(CAPNG_SELECT_CAPS) == CAPNG_NONE)
		return 0;

	capng_clear(CAPNG_SELECT_BOTH);
	if (capng_apply(sel) < 0) {
		bh_err("sandbox: cannot drop capabilities");
		return -EPERM;
	}

	/* Check what the kernel holds now, not libcap-ng's copy. */
	if (capng_get_caps_process() < 0)
		return -EIO;
	if (capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE) {
		bh_err("sandbox: capabilities remain after dropping them");
		return -EPERM;
	}
	return 0;
}

int bh_sandbox_no_new_privs(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	/* Not dumpable: no core files with guest memory, and other processes
	 * of the same user cannot ptrace or read our /proc files. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

/* The highest descriptor open now, from /proc/self/fd. */
static int highest_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int max = -1, dfd;

	if (!d)
		return -errno;
	dfd = dirfd(d);
	while ((e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);

		if (*end == '\0' && end != e->d_name && fd != dfd && fd > max)
			max = (int)fd;
	}
	closedir(d);
	return max;
}

int bh_sandbox_limits(unsigned int more_fds)
{
	struct rlimit core = { 0, 0 }, nofile;
	int top = highest_fd();

	if (top < 0)
		return top;
	if (setrlimit(RLIMIT_CORE, &core) < 0)
		return -errno;
	if (getrlimit(RLIMIT_NOFILE, &nofile) < 0)
		return -errno;
	/* Lowering is always allowed; never raise what was given. */
	if ((rlim_t)top + 1 + more_fds < nofile.rlim_max)
		nofile.rlim_max = (rlim_t)top + 1 + more_fds;
	nofile.rlim_cur = nofile.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
		return -errno;
	return 0;
}

/* The Landlock ABI, spelled out so that older kernel headers do. */
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_FS_V1		  ((1ULL << 13) - 1) /* EXECUTE..MAKE_SYM */
#define LL_FS_REFER		  (1ULL << 13)	     /* ABI 2 */
#define LL_FS_TRUNCATE		  (1ULL << 14)	     /* ABI 3 */
#define LL_FS_IOCTL_DEV		  (1ULL << 15)	     /* ABI 5 */
#define LL_NET_BIND_TCP		  (1ULL << 0)	     /* ABI 4 */
#define LL_NET_CONNECT_TCP	  (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX	  (1ULL << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL		  (1ULL << 1)

struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;	     /* ABI 6 */
};

int bh_sandbox_landlock(void)
{
	struct ll_ruleset_attr attr = { 0 };
	size_t size = sizeof(attr.handled_access_fs);
	long abi;
	int fd, r;

	abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
		      LL_CREATE_RULESET_VERSION);
	if (abi < 0)
		return errno == ENOSYS || errno == EOPNOTSUPP ? -EOPNOTSUPP
							      : -errno;
	attr.handled_access_fs = LL_FS_V1;
	if (abi >= 2)
		attr.handled_access_fs |= LL_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LL_FS_TRUNCATE;
	if (abi >= 4) {
		attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		size = offsetof(struct ll_ruleset_attr, scoped);
	}
	if (abi >= 5)
		attr.handled_access_fs |= LL_FS_IOCTL_DEV;
	if (abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	fd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (fd < 0)
		return -errno;
	/* No rule: nothing handled is allowed anywhere. */
	r = (int)syscall(SYS_landlock_restrict_self, fd, 0);
	r = r < 0 ? -errno : (int)abi;
	close(fd);
	return r;
}

int bh_seccomp_allow_list(scmp_filter_ctx ctx, const char *const *names)
{
	size_t i;

	for (i = 0; names[i]; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		int ret;

		if (nr == __NR_SCMP_ERROR) {
			bh_err("seccomp: unknown system call %s", names[i]);
			return -EINVAL;
		}
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (ret < 0) {
			bh_err("seccomp: cannot allow %s: %s", names[i],
			       strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* Spelt out rather than through SCMP_A*(), whose partial initialisers trip
 * -Wmissing-field-initializers. */
int bh_seccomp_allow_masked(scmp_filter_ctx ctx, int nr, unsigned int arg,
			    uint64_t mask, uint64_t value)
{
	struct scmp_arg_cmp cmp = {
		.arg = arg,
		.op = SCMP_CMP_MASKED_EQ,
		.datum_a = mask,
		.datum_b = value,
	};

	return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, &cmp);
}

/*
 * Sanitizer builds only: what the ASan/UBSan runtime does once a process is
 * behind its filter. A thread that ends takes down its alternate signal
 * stack (sigaltstack); the runtime asks for the CPUs it may run on
 * (sched_getaffinity). A report reads /proc/self/maps, and gcc's UBSan
 * initializes itself at its first report, reading /proc/self/exe, cmdline
 * and environ: with the legacy open and readlink (glibc's open() is openat)
 * failing with EACCES instead of killing the process, the report is printed
 * whole, from what the runtime cached at start-up. Normal builds have none
 * of these rules, and --print-policy marks them.
 */
#ifdef BULKHEAD_SANITIZER_BUILD
static const char *const sanitizer_allowed[] = {
	"sched_getaffinity",
	"sigaltstack",
	NULL,
};
static const char *const sanitizer_refused[] = {
	"open",
	"readlink",
	NULL,
};
#else
static const char *const sanitizer_allowed[] = { NULL };
static const char *const sanitizer_refused[] = { NULL };
#endif

static int sanitizer_rules(scmp_filter_ctx ctx)
{
	int r = bh_seccomp_allow_list(ctx, sanitizer_allowed);

	for (size_t i = 0; r == 0 && sanitizer_refused[i]; i++)
		r = seccomp_rule_add(
		    ctx, SCMP_ACT_ERRNO(EACCES),
		    seccomp_syscall_resolve_name(sanitizer_refused[i]), 0);
	return r;
}

int bh_seccomp_new(scmp_filter_ctx *out)
{
	scmp_filter_ctx ctx;
	int r;

	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return -ENOMEM;
	/* Threads that already exist (vCPUs, library helpers) must be
	 * covered too. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	/* No memory that is both reachable from a bug and executable. */
	if (r == 0)
		r = bh_seccomp_allow_masked(ctx, SCMP_SYS(mmap), 2, PROT_EXEC,
					    0);
	if (r == 0)
		r = bh_seccomp_allow_masked(ctx, SCMP_SYS(mprotect), 2,
					    PROT_EXEC, 0);
	if (r == 0)
		r = sanitizer_rules(ctx);
	if (r < 0) {
		seccomp_release(ctx);
		return r;
	}
	*out = ctx;
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

unsigned int bh_policy_print_names(FILE *out, const char *const *const *lists,
				   unsigned int nlists)
{
	const char *names[512];
	unsigned int n = 0, count = 0;

	for (unsigned int l = 0; l < nlists; l++)
		for (const char *const *p = lists[l]; p && *p; p++)
			if (n < BH_ARRAY_SIZE(names))
				names[n++] = *p;
	qsort(names, n, sizeof(names[0]), cmp_name);
	for (unsigned int i = 0; i < n; i++) {
		if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
			continue;
		fprintf(out, "%s\n", names[i]);
		count++;
	}
	return count;
}

unsigned int bh_policy_print(FILE *out, const char *const *const *lists,
			     unsigned int nlists, const char *const *extra)
{
	unsigned int count = bh_policy_print_names(out, lists, nlists);

	fprintf(out, "mmap (never with PROT_EXEC)\n"
		     "mprotect (never with PROT_EXEC)\n");
	count += 2;
	for (const char *const *p = sanitizer_allowed; *p; p++, count++)
		fprintf(out, "%s (sanitizer builds only)\n", *p);
	for (const char *const *p = sanitizer_refused; *p; p++, count++)
		fprintf(out, "%s, fails with EACCES (sanitizer builds only)\n",
			*p);
	for (const char *const *p = extra; p && *p; p++, count++)
		fprintf(out, "%s\n", *p);
	fprintf(out, "%u system calls; any other kills the process\n", count);
	return count;
}
