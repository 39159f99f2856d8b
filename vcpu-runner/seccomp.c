/* The runner's seccomp allow-list: what a running VM needs, nothing more.
 * Everything else kills the process. */
#include <errno.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>

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
	/* threads: locks, kicks, exit */
	"futex",
	"tgkill",
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
static const unsigned long runner_ioctls[] = {
	KVM_RUN,
	KVM_IRQ_LINE,
	KVM_GET_REGS,
	/* virtio-pci: kicks, interrupts and MSI routes of the VM's own
	 * eventfds */
	KVM_IOEVENTFD,
	KVM_IRQFD,
	KVM_SET_GSI_ROUTING,
	KVM_SIGNAL_MSI,
};

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
	if (r < 0)
		goto out;
	for (size_t i = 0; i < BH_ARRAY_SIZE(runner_ioctls); i++) {
		r = bh_seccomp_allow_masked(ctx, SCMP_SYS(ioctl), 1, ~0ULL,
					    runner_ioctls[i]);
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
