/* The seccomp allow-lists of the controller, of its launcher and of its
 * binder, each loaded once its start-up is done. The children are the
 * launcher's: they inherit its filter across execve and add their own,
 * narrower one; until they do, the launcher's list is all that holds them,
 * so it also admits what they need on their way there (the dynamic loader,
 * namespaces, KVM set-up, io_uring). The controller starts nothing itself,
 * and its list holds none of that; nor does it bind or listen, which the
 * binder alone does. */
#include <errno.h>
#include <linux/fs.h>
#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>

#include <bulkhead/log.h>
#include <bulkhead/sandbox.h>
#include <bulkhead/util.h>

#include "ctlseccomp.h"

static const char *const controller_syscalls[] = {
	/* the event loop, the API socket, the children's socketpairs,
	 * sd_notify, logging */
	"read",
	"write",
	"readv",
	"writev",
	"close",
	"epoll_create1",
	"epoll_ctl",
	"epoll_wait",
	"epoll_pwait",
	"eventfd2",
	"pipe2",
	"poll",
	"ppoll",
	"accept4",
	/* the vsock device's connections from the guest to host listeners
	 * (<socket>_<port>), made here so that the worker needs no socket
	 * call; socket itself is limited to AF_UNIX below */
	"connect",
	"recvmsg",
	"sendmsg",
	"sendto",
	"getsockopt",
	"fcntl",
	/* create through the API: the kernel, initramfs and disk images;
	 * the API socket removed on the way out */
	"openat",
	"lseek",
	"pread64",
	"pwrite64",
	"newfstatat",
	"fstat",
	"statx",
	"access",
	"readlink",
	"getdents64",
	"unlink",
	/* snapshots: each file written through a .tmp, synced and renamed
	 * into place, in a directory the controller opened; one found
	 * already there is not replaced (faccessat), and what a failed
	 * snapshot wrote goes again (unlinkat) */
	"fsync",
	"renameat",
	"renameat2",
	"unlinkat",
	"faccessat",
	"faccessat2",
	/* guest RAM and the in-flight records: sealed memfds */
	"memfd_create",
	"ftruncate",
	/* memory */
	"brk",
	"munmap",
	"mremap",
	"madvise",
	/* signals, time */
	"rt_sigaction",
	"rt_sigprocmask",
	"rt_sigreturn",
	"restart_syscall",
	/* the vDSO's calls, which become system calls where the clock source
	 * has no vDSO support (an emulated host): libevent reads the wall
	 * clock every few seconds */
	"clock_gettime",
	"clock_getres",
	"gettimeofday",
	"time",
	"clock_nanosleep",
	"nanosleep",
	"getrandom",
	"futex",
	"sched_yield",
	"getpid",
	"gettid",
	"getuid",
	"geteuid",
	"getgid",
	"getegid",
	"exit",
	"exit_group",
	/* children, which the launcher starts as ours: reaped */
	"wait4",
	"waitid",
	NULL,
};

/*
 * The launcher's own calls (its socket to the controller, fork or clone
 * into a PID namespace, the child's fds placed, execve), then what the
 * children do before their own filter is loaded, then every call their own
 * lists allow: a filter stacks on the one it inherits, so every call a
 * child may make must pass this one too (test_policy holds each child's
 * list to it).
 */
static const char *const launcher_syscalls[] = {
	/* the launcher: its socket, logging, starting a child */
	"read",
	"write",
	"close",
	"poll",
	"ppoll",
	"recvmsg",
	"sendmsg",
	"fcntl",
	"newfstatat",
	"fstat",
	"clone",
	"clone3",
	"pidfd_open",
	"setsid",
	"getppid",
	"dup2",
	"dup3",
	"close_range",
	"prlimit64",
	"execve",
	"getpid",
	"gettid",
	"getuid",
	"geteuid",
	"getgid",
	"getegid",
	"rt_sigaction",
	"rt_sigprocmask",
	"rt_sigreturn",
	"restart_syscall",
	"clock_gettime",
	"clock_getres",
	"gettimeofday",
	"time",
	"clock_nanosleep",
	"nanosleep",
	"exit",
	"exit_group",
	/* the children after execve, before their own filter: the dynamic
	 * loader, files they open then (/dev/kvm, /proc/self/fd), memory,
	 * threads, limits, capabilities, namespaces and the empty root,
	 * Landlock, their filter, io_uring */
	"openat",
	"lseek",
	"pread64",
	"pwrite64",
	/* the console worker: a full output file (on_full=truncate) */
	"ftruncate",
	"readv",
	"writev",
	"statx",
	"access",
	"readlink",
	"getdents64",
	"eventfd2",
	"brk",
	"munmap",
	"mremap",
	"madvise",
	"getrandom",
	"futex",
	"sched_yield",
	"arch_prctl",
	"set_tid_address",
	"set_robust_list",
	"rseq",
	"fstatfs",
	"capget",
	"capset",
	"unshare",
	"chdir",
	"chroot",
	"pivot_root",
	"umount2",
	"landlock_create_ruleset",
	"landlock_restrict_self",
	"seccomp",
	"io_uring_setup",
	"io_uring_register",
	/* and what their own lists allow beyond the above */
	"io_uring_enter",
	"preadv",
	"pwritev",
	"fdatasync",
	"fallocate",
	/* the pmem worker: a guest's flush written back to the region's
	 * file */
	"fsync",
	/* the vsock worker: a guest's SHUTDOWN passed on to a host socket */
	"shutdown",
	NULL,
};

/*
 * The binder's: its socket to the controller, and the sockets it makes and
 * hands over (socket, setsockopt and getsockopt only as below, bind,
 * listen, connect, close); what logging and protobuf-c's allocations take;
 * nothing that opens, removes, starts a process or signals.
 */
static const char *const binder_syscalls[] = {
	/* its socket: frames and the fd they carry; bh_frame_send reads the
	 * clock (the vDSO's, a system call where the clock source has none),
	 * as does the wait for a TCP connection */
	"recvmsg",
	"sendmsg",
	"clock_gettime",
	/* the listeners, unix and TCP; a TCP one's port, which the kernel
	 * picks for port 0 */
	"bind",
	"listen",
	"getsockname",
	"close",
	/* TCP connections for live migration: a non-blocking connect, and
	 * the wait for it (bounded, and watching its own socket) */
	"connect",
	"poll",
	/* logging, to stderr */
	"write",
	/* memory: the main arena grows and shrinks with brk, a large block
	 * is a mapping of its own */
	"brk",
	"munmap",
	"rt_sigreturn",
	"exit",
	"exit_group",
	NULL,
};

/*
 * Sanitizer builds only: what the ASan/UBSan runtime calls in the controller,
 * the launcher, the binder and the children before their own filter (the
 * children's runtime also takes down its alternate signal stack later, which
 * their own lists add in these builds). --print-policy marks them.
 */
static const char *const sanitizer_syscalls[] = {
#ifdef BULKHEAD_SANITIZER_BUILD
	/* /proc/self/cmdline and maps, with open, not openat */
	"open",
	"sigaltstack",
	/* the runtime asks for its CPUs in the children */
	"sched_getaffinity",
#endif
	NULL,
};

#ifdef BULKHEAD_SANITIZER_BUILD
/*
 * LeakSanitizer's exit-time scan stops the world with ptrace, which the
 * filter refuses: once it is loaded, the scan is off whatever ASAN_OPTIONS
 * says (sanitizer_child.c turns it off by default). The unit tests that
 * link the controller's code still look for its leaks.
 */
static volatile int filter_loaded;
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	return filter_loaded;
}
#define SANITIZER_FILTER_LOADED() (filter_loaded = 1)
#else
#define SANITIZER_FILTER_LOADED() ((void)0)
#endif

#define NAMED(x)      \
	{             \
		x, #x \
	}
struct named {
	unsigned long value;
	const char *name;
};

/* ioctl in the controller: its terminal (--serial tty), block-device
 * sizes, and attaching TAP queues for a VM created through the API. */
static const struct named ctl_ioctls[] = {
	NAMED(TCGETS),	  NAMED(TCSETS),    NAMED(BLKGETSIZE64),
	NAMED(TUNSETIFF), NAMED(TUNGETIFF), NAMED(TUNSETVNETHDRSZ),
};

/* ioctl in the launcher's children: the block worker's sector size, the net
 * worker's TAP offloads, and the runner's KVM calls up to its own filter. */
static const struct named child_ioctls[] = {
	NAMED(BLKSSZGET),
	NAMED(TUNSETOFFLOAD),
	NAMED(KVM_GET_API_VERSION),
	NAMED(KVM_CREATE_VM),
	NAMED(KVM_CHECK_EXTENSION),
	NAMED(KVM_GET_VCPU_MMAP_SIZE),
	NAMED(KVM_GET_SUPPORTED_CPUID),
	NAMED(KVM_SET_TSS_ADDR),
	NAMED(KVM_SET_IDENTITY_MAP_ADDR),
	NAMED(KVM_CREATE_IRQCHIP),
	NAMED(KVM_CREATE_PIT2),
	NAMED(KVM_SET_USER_MEMORY_REGION),
	NAMED(KVM_CREATE_VCPU),
	NAMED(KVM_SET_CPUID2),
	NAMED(KVM_GET_SREGS),
	NAMED(KVM_SET_SREGS),
	NAMED(KVM_GET_REGS),
	NAMED(KVM_SET_REGS),
	NAMED(KVM_SET_FPU),
	NAMED(KVM_SET_MSRS),
	NAMED(KVM_GET_LAPIC),
	NAMED(KVM_SET_LAPIC),
	NAMED(KVM_SET_GSI_ROUTING),
	NAMED(KVM_IRQFD),
	NAMED(KVM_IOEVENTFD),
	NAMED(KVM_IRQ_LINE),
	NAMED(KVM_SIGNAL_MSI),
	NAMED(KVM_RUN),
	NAMED(KVM_GET_MSR_INDEX_LIST),
	NAMED(KVM_GET_XSAVE),
	NAMED(KVM_SET_XSAVE),
	NAMED(KVM_GET_XCRS),
	NAMED(KVM_SET_XCRS),
	NAMED(KVM_GET_MSRS),
	NAMED(KVM_GET_VCPU_EVENTS),
	NAMED(KVM_SET_VCPU_EVENTS),
	NAMED(KVM_GET_MP_STATE),
	NAMED(KVM_SET_MP_STATE),
	NAMED(KVM_GET_DEBUGREGS),
	NAMED(KVM_SET_DEBUGREGS),
	NAMED(KVM_GET_IRQCHIP),
	NAMED(KVM_SET_IRQCHIP),
	NAMED(KVM_GET_PIT2),
	NAMED(KVM_SET_PIT2),
	NAMED(KVM_GET_CLOCK),
	NAMED(KVM_SET_CLOCK),
	NAMED(KVM_GET_DIRTY_LOG),
};

/* prctl: the children's parent-death signal and sandbox steps (libcap-ng
 * reads the bounding set and securebits). */
static const struct named prctls[] = {
	NAMED(PR_SET_PDEATHSIG),    NAMED(PR_GET_DUMPABLE),
	NAMED(PR_SET_DUMPABLE),	    NAMED(PR_CAPBSET_READ),
	NAMED(PR_CAPBSET_DROP),	    NAMED(PR_GET_SECUREBITS),
	NAMED(PR_SET_NO_NEW_PRIVS), NAMED(PR_GET_NO_NEW_PRIVS),
	NAMED(PR_CAP_AMBIENT),
};

/* mount: exactly the device workers' two, in their own namespaces. */
static const struct named mount_flags[] = {
	{ MS_REC | MS_PRIVATE, "MS_REC|MS_PRIVATE" },
	{ MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
	  "MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_RDONLY" },
};

/* Rules on one argument: allowed when (arg & mask) == one of values. */
struct arg_rule {
	const char *syscall;
	unsigned int arg;
	uint64_t mask;
	const struct named *values;
	size_t nvalues;
	const char *what; /* printed after "SYSCALL, only" */
};

static const struct arg_rule ctl_rules[] = {
	{ "ioctl", 1, 0xffffffffULL, ctl_ioctls, BH_ARRAY_SIZE(ctl_ioctls),
	  "" },
	{ "socket", 0, ~0ULL, (const struct named[]){ NAMED(AF_UNIX) }, 1, "" },
	{ "socketpair", 0, ~0ULL, (const struct named[]){ NAMED(AF_UNIX) }, 1,
	  "" },
};

/*
 * Signals. The controller ends a child with kill(pid, SIGKILL), one child
 * by its pid: never pid 0 or a negative pid, which would reach a process
 * group or every process of the user. tgkill is for the children, whose
 * filters stack on this one: the runner's vCPU kick, and abort() anywhere,
 * the controller included (glibc's raise). The kernel reads the low 32 bits
 * of each int argument, and the ABI leaves the high half of its register
 * undefined, so only the low 32 bits are compared. No other call that sends a
 * signal (tkill, rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_send_signal) is
 * allowed. A filter cannot know the children's pids, so these still reach
 * any process of the user (docs/SECURITY.md).
 */
static const struct named tgkill_signals[] = {
	{ BH_RUNNER_KICK_SIGNAL, "SIGUSR1 (the vCPU runner's kick)" },
	{ SIGABRT, "SIGABRT (abort())" },
};

_Static_assert(BH_RUNNER_KICK_SIGNAL == SIGUSR1, "the printed name");

static int signal_rules(scmp_filter_ctx ctx, bool kill_children, bool tgkill)
{
	int r = 0;

	/*
	 * libseccomp takes one comparison per argument and rule, so "0 < pid
	 * <= INT_MAX" is spelt as one rule per bit that a positive pid may
	 * have set: bit b set, bit 31 (the sign) clear. A pid of 0 has no bit
	 * set and matches none.
	 */
	for (unsigned int b = 0; kill_children && r == 0 && b < 31; b++) {
		struct scmp_arg_cmp cmp[2] = {
			{
			    .arg = 0,
			    .op = SCMP_CMP_MASKED_EQ,
			    .datum_a = 0x80000000ULL | (1ULL << b),
			    .datum_b = 1ULL << b,
			},
			{
			    .arg = 1,
			    .op = SCMP_CMP_MASKED_EQ,
			    .datum_a = 0xffffffffULL,
			    .datum_b = SIGKILL,
			},
		};

		r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill),
					   2, cmp);
	}
	for (size_t i = 0;
	     tgkill && r == 0 && i < BH_ARRAY_SIZE(tgkill_signals); i++) {
		struct scmp_arg_cmp sig = {
			.arg = 2,
			.op = SCMP_CMP_MASKED_EQ,
			.datum_a = 0xffffffffULL,
			.datum_b = tgkill_signals[i].value,
		};

		r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW,
					   SCMP_SYS(tgkill), 1, &sig);
	}
	return r;
}

static const struct arg_rule launcher_rules[] = {
	{ "ioctl", 1, 0xffffffffULL, child_ioctls, BH_ARRAY_SIZE(child_ioctls),
	  "" },
	{ "prctl", 0, ~0ULL, prctls, BH_ARRAY_SIZE(prctls), "" },
	{ "mount", 3, ~0ULL, mount_flags, BH_ARRAY_SIZE(mount_flags),
	  "with flags " },
};

/*
 * A rule on several arguments at once: allowed only when each listed
 * argument (its low 32 bits: these are ints) has its value.
 */
struct exact_rule {
	const char *syscall;
	unsigned int nargs;
	struct {
		unsigned int arg;
		uint64_t value;
	} args[3];
	const char *what; /* printed after "SYSCALL, only " */
};

/* The binder's one kind of socket in its three families (binder.c makes no
 * other); SO_REUSEADDR on its TCP listeners; a connect's outcome. Rules of
 * one call follow each other, the first with the printed text. */
static const struct exact_rule binder_exact[] = {
	{ "socket",
	  3,
	  {
	      { 0, AF_UNIX },
	      { 1, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK },
	      { 2, 0 },
	  },
	  "AF_UNIX, AF_INET or AF_INET6, of type "
	  "SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK and protocol 0" },
	{ "socket",
	  3,
	  {
	      { 0, AF_INET },
	      { 1, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK },
	      { 2, 0 },
	  },
	  NULL },
	{ "socket",
	  3,
	  {
	      { 0, AF_INET6 },
	      { 1, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK },
	      { 2, 0 },
	  },
	  NULL },
	{ "setsockopt",
	  2,
	  {
	      { 1, SOL_SOCKET },
	      { 2, SO_REUSEADDR },
	  },
	  "level SOL_SOCKET and option SO_REUSEADDR" },
	{ "getsockopt",
	  2,
	  {
	      { 1, SOL_SOCKET },
	      { 2, SO_ERROR },
	  },
	  "level SOL_SOCKET and option SO_ERROR" },
};

struct policy {
	const char *title; /* --print-policy's first line */
	const char *const *names;
	/* mmap PROT_EXEC without PROT_WRITE, for the dynamic loader of the
	 * children it starts; else mmap and mprotect never PROT_EXEC */
	bool exec_mmap;
	const struct arg_rule *rules;
	size_t nrules;
	const struct exact_rule *exact;
	size_t nexact;
	/* kill(pid, SIGKILL) of one child: the controller's */
	bool kill_children;
	/* tgkill with the runner's kick or SIGABRT: the controller's and the
	 * launcher's, on which the children's filters stack */
	bool tgkill;
};

static const struct policy controller_policy = {
	"bulkhead: seccomp allow-list",
	controller_syscalls,
	false,
	ctl_rules,
	BH_ARRAY_SIZE(ctl_rules),
	NULL,
	0,
	true,
	true,
};

static const struct policy launcher_policy = {
	"bulkhead (launcher): seccomp allow-list",
	launcher_syscalls,
	true,
	launcher_rules,
	BH_ARRAY_SIZE(launcher_rules),
	NULL,
	0,
	false,
	true,
};

/* Nothing stacks on the binder's filter and it starts nothing: no signal
 * at all (an abort() there ends it through the filter instead). */
static const struct policy binder_policy = {
	"bulkhead (binder): seccomp allow-list",
	binder_syscalls,
	false,
	NULL,
	0,
	binder_exact,
	BH_ARRAY_SIZE(binder_exact),
	false,
	false,
};

static unsigned int policy_print(const struct policy *p, FILE *out)
{
	const char *const *lists[] = { p->names };
	unsigned int count;

	fprintf(out, "%s\n", p->title);
	count = bh_policy_print_names(out, lists, 1);
	if (p->exec_mmap)
		fprintf(out, "mmap (PROT_EXEC only without PROT_WRITE, for the "
			     "dynamic loader of the children it starts)\n");
	else
		fprintf(out, "mmap (never with PROT_EXEC)\n");
	fprintf(out, "mprotect (never with PROT_EXEC)\n");
	count += 2;
	for (const char *const *s = sanitizer_syscalls; *s; s++, count++)
		fprintf(out, "%s (sanitizer builds only)\n", *s);
	for (size_t i = 0; i < p->nrules; i++) {
		const struct arg_rule *a = &p->rules[i];

		fprintf(out, "%s, only %s", a->syscall, a->what);
		for (size_t j = 0; j < a->nvalues; j++)
			fprintf(out, "%s%s", j ? ", " : "", a->values[j].name);
		fprintf(out, "\n");
		count++;
	}
	for (size_t i = 0; i < p->nexact; i++) {
		if (!p->exact[i].what)
			continue;
		fprintf(out, "%s, only %s\n", p->exact[i].syscall,
			p->exact[i].what);
		count++;
	}
	if (p->kill_children) {
		fprintf(out, "kill, only SIGKILL, and only to one process by "
			     "its pid (never 0 or negative: no process group, "
			     "not every process)\n");
		count++;
	}
	if (p->tgkill) {
		fprintf(out, "tgkill, only %s or %s\n", tgkill_signals[0].name,
			tgkill_signals[1].name);
		count++;
	}
	fprintf(out, "%u system calls; any other kills the process\n", count);
	return count;
}

static int exact_rule_add(scmp_filter_ctx ctx, const struct exact_rule *e)
{
	struct scmp_arg_cmp cmp[3];

	for (unsigned int i = 0; i < e->nargs; i++)
		cmp[i] = (struct scmp_arg_cmp){
			.arg = e->args[i].arg,
			.op = SCMP_CMP_MASKED_EQ,
			.datum_a = 0xffffffffULL,
			.datum_b = e->args[i].value,
		};
	return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW,
				      seccomp_syscall_resolve_name(e->syscall),
				      e->nargs, cmp);
}

static int policy_install(const struct policy *p)
{
	scmp_filter_ctx ctx;
	int r;

	r = bh_seccomp_new(&ctx);
	if (r < 0) {
		bh_err("cannot build the seccomp filter: %s", strerror(-r));
		return r;
	}
	/* ld.so maps the children's code PROT_READ|PROT_EXEC after execve:
	 * executable, but never writable at the same time. */
	if (p->exec_mmap)
		r = bh_seccomp_allow_masked(ctx, SCMP_SYS(mmap), 2,
					    PROT_EXEC | PROT_WRITE, PROT_EXEC);
	if (r == 0)
		r = bh_seccomp_allow_list(ctx, p->names);
	if (r == 0)
		r = bh_seccomp_allow_list(ctx, sanitizer_syscalls);
	for (size_t i = 0; r == 0 && i < p->nrules; i++) {
		const struct arg_rule *a = &p->rules[i];
		int nr = seccomp_syscall_resolve_name(a->syscall);

		for (size_t j = 0; r == 0 && j < a->nvalues; j++)
			r = bh_seccomp_allow_masked(ctx, nr, a->arg, a->mask,
						    a->values[j].value);
	}
	for (size_t i = 0; r == 0 && i < p->nexact; i++)
		r = exact_rule_add(ctx, &p->exact[i]);
	if (r == 0)
		r = signal_rules(ctx, p->kill_children, p->tgkill);
	if (r == 0)
		r = seccomp_load(ctx);
	if (r == 0)
		SANITIZER_FILTER_LOADED();
	if (r < 0)
		bh_err("cannot install the seccomp filter: %s", strerror(-r));
	seccomp_release(ctx);
	return r;
}

unsigned int bh_ctl_seccomp_print(FILE *out)
{
	return policy_print(&controller_policy, out);
}

int bh_ctl_seccomp_install(void)
{
	return policy_install(&controller_policy);
}

unsigned int bh_launcher_seccomp_print(FILE *out)
{
	return policy_print(&launcher_policy, out);
}

int bh_launcher_seccomp_install(void)
{
	return policy_install(&launcher_policy);
}

unsigned int bh_binder_seccomp_print(FILE *out)
{
	return policy_print(&binder_policy, out);
}

int bh_binder_seccomp_install(void)
{
	return policy_install(&binder_policy);
}
