/* The runner's seccomp allow-list: what a running VM needs, nothing more.
 * Everything else kills the process. */
#include <errno.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <stdio.h>
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
};

void runner_seccomp_print(FILE *out)
{
	const char *const *lists[] = { runner_syscalls };
	char line[512] = "ioctl, only";
	const char *extra[] = { line, NULL };
	size_t len;

	for (size_t i = 0; i < BH_ARRAY_SIZE(runner_ioctls); i++) {
		len = strlen(line);
		snprintf(line + len, sizeof(line) - len, "%s %s", i ? "," : "",
			 runner_ioctls[i].name);
	}
	fprintf(out, "bulkhead-vcpu: seccomp allow-list\n");
	bh_policy_print(out, lists, 1, extra);
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
