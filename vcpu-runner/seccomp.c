/* The runner's seccomp allow-list: what a running VM needs, nothing more.
 * Everything else kills the process. */
#include <errno.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/sandbox.h>
#include <bulkhead/util.h>

#include "runner.h"

static const char *const runner_syscalls[] = {
	/* control socket and logging */
	"read",
	"write",
	"recvmsg",
	"sendmsg",
	"poll",
	"ppoll",
	"close",
	/* memory for protobuf messages (mmap/mprotect below, without exec) */
	"brk",
	"munmap",
	"madvise",
	/* threads: locks, exit (tgkill, for kicks, below) */
	"futex",
	"getpid",
	"gettid",
	"rt_sigprocmask",
	"rt_sigreturn",
	"restart_syscall",
	"sched_yield",
	"exit",
	"exit_group",
	/* time */
	"clock_gettime",
	"clock_nanosleep",
	"nanosleep",
	NULL,
};

/* ioctls a running VM issues: entering the guest, the UART's interrupt
 * line, reading registers to describe a crash, and the virtio plumbing. */
#define IOCTL(x)      \
	{             \
		x, #x \
	}
static const struct {
	unsigned long request;
	const char *name;
} runner_ioctls[] = {
	IOCTL(KVM_RUN),
	IOCTL(KVM_IRQ_LINE),
	IOCTL(KVM_GET_REGS),
	/* virtio-pci: kicks, interrupts and MSI routes of the VM's own
	 * eventfds */
	IOCTL(KVM_IOEVENTFD),
	IOCTL(KVM_IRQFD),
	IOCTL(KVM_SET_GSI_ROUTING),
	IOCTL(KVM_SIGNAL_MSI),
	/* device memory (virtio-pmem): a slot for a region the controller
	 * handed over, and its deletion when the device goes */
	IOCTL(KVM_SET_USER_MEMORY_REGION),
	/* live migration: KVM's log of the pages the vCPUs wrote, read and
	 * cleared each pass (RUNNER_DIRTY_SYNC); turning the log on and off
	 * is KVM_SET_USER_MEMORY_REGION on the RAM slots */
	IOCTL(KVM_GET_DIRTY_LOG),
	/* snapshots: a paused vCPU's and the VM's state saved, and set in a
	 * new VM before its vCPUs start */
	IOCTL(KVM_GET_SREGS),
	IOCTL(KVM_SET_REGS),
	IOCTL(KVM_SET_SREGS),
	IOCTL(KVM_GET_XSAVE),
	IOCTL(KVM_SET_XSAVE),
	IOCTL(KVM_GET_XCRS),
	IOCTL(KVM_SET_XCRS),
	IOCTL(KVM_GET_MSRS),
	IOCTL(KVM_SET_MSRS),
	IOCTL(KVM_GET_LAPIC),
	IOCTL(KVM_SET_LAPIC),
	IOCTL(KVM_GET_VCPU_EVENTS),
	IOCTL(KVM_SET_VCPU_EVENTS),
	IOCTL(KVM_GET_MP_STATE),
	IOCTL(KVM_SET_MP_STATE),
	IOCTL(KVM_GET_DEBUGREGS),
	IOCTL(KVM_SET_DEBUGREGS),
	IOCTL(KVM_GET_IRQCHIP),
	IOCTL(KVM_SET_IRQCHIP),
	IOCTL(KVM_GET_PIT2),
	IOCTL(KVM_SET_PIT2),
	IOCTL(KVM_GET_CLOCK),
	IOCTL(KVM_SET_CLOCK),
};

/*
 * Signals the runner may send, and only to its own threads: the vCPU kick
 * (pthread_kill) and SIGABRT, so that abort() (glibc's raise) ends the
 * runner as abort() should rather than through the filter. Without the
 * target check, a runner taken over by its guest could signal, and so kill,
 * every process of its user: the other VMs on the host.
 */
static const struct {
	int sig;
	const char *name;
} runner_signals[] = {
	{ BH_RUNNER_KICK_SIGNAL, "the vCPU kick" },
	{ SIGABRT, "abort()" },
};

#define TGKILL_RULE                                                        \
	"tgkill, only to its own process (the pid it has when the filter " \
	"is loaded), with SIG%s (%s) or SIG%s (%s)"

void runner_seccomp_print(FILE *out)
{
	const char *const *lists[] = { runner_syscalls };
	char line[1024] = "ioctl, only";
	char tgkill[256];
	const char *extra[] = { tgkill, line, NULL };
	size_t len;

	for (size_t i = 0; i < BH_ARRAY_SIZE(runner_ioctls); i++) {
		len = strlen(line);
		snprintf(line + len, sizeof(line) - len, "%s %s", i ? "," : "",
			 runner_ioctls[i].name);
	}
	snprintf(tgkill, sizeof(tgkill), TGKILL_RULE,
		 sigabbrev_np(runner_signals[0].sig), runner_signals[0].name,
		 sigabbrev_np(runner_signals[1].sig), runner_signals[1].name);
	fprintf(out, "bulkhead-vcpu: seccomp allow-list\n");
	bh_policy_print(out, lists, 1, extra);
}

/* tgkill(tgid, tid, sig) with tgid our own pid (as this process sees it:
 * 1 in a PID namespace of its own) and sig one of runner_signals. Both are
 * ints, of which the kernel reads the low 32 bits; the ABI leaves the high
 * half of the register undefined (glibc's pthread_kill left something
 * there), so only the low 32 bits are compared. */
static int allow_own_signals(scmp_filter_ctx ctx)
{
	pid_t self = getpid();
	int r = 0;

	for (size_t i = 0; r == 0 && i < BH_ARRAY_SIZE(runner_signals); i++) {
		struct scmp_arg_cmp cmp[2] = {
			{
			    .arg = 0,
			    .op = SCMP_CMP_MASKED_EQ,
			    .datum_a = 0xffffffffULL,
			    .datum_b = (uint32_t)self,
			},
			{
			    .arg = 2,
			    .op = SCMP_CMP_MASKED_EQ,
			    .datum_a = 0xffffffffULL,
			    .datum_b = (uint32_t)runner_signals[i].sig,
			},
		};

		r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW,
					   SCMP_SYS(tgkill), 2, cmp);
	}
	return r;
}

int runner_seccomp_install(void)
{
	scmp_filter_ctx ctx;
	int r;

	r = bh_seccomp_new(&ctx);
	if (r < 0) {
		bh_err("cannot build the seccomp filter: %s", strerror(-r));
		return r;
	}
	r = bh_seccomp_allow_list(ctx, runner_syscalls);
	if (r == 0)
		r = allow_own_signals(ctx);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < BH_ARRAY_SIZE(runner_ioctls); i++) {
		r = bh_seccomp_allow_masked(ctx, SCMP_SYS(ioctl), 1, ~0ULL,
					    runner_ioctls[i].request);
		if (r < 0)
			goto out;
	}
	r = seccomp_load(ctx);
out:
	if (r < 0)
		bh_err("cannot install the seccomp filter: %s", strerror(-r));
	seccomp_release(ctx);
	return r;
}
