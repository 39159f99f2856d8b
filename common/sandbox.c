/* Sandbox steps every child takes: drop capabilities, no_new_privs, seccomp. */
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <cap-ng.h>

#include "bulkhead/log.h"
#include "bulkhead/sandbox.h"

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
