/*
 * nosandbox: link-time stand-ins (ld --wrap) that keep a bench-only build of
 * a device worker out of namespaces and seccomp, so that valgrind can run
 * it. Valgrind implements no seccomp(2), so libseccomp's probes of the kernel
 * fail; a loaded filter would kill valgrind itself (it maps executable code
 * and opens its output file), and the empty root would hide that file's
 * directory. Every Bulkhead object in the binary is the production code: the
 * filter is still built rule by rule, only the calls into the kernel are
 * stood in for. The production binaries have no such switch.
 */
#include <errno.h>

#include <seccomp.h>

#include <bulkhead/log.h>

int __wrap_unshare(int flags);
scmp_filter_ctx __wrap_seccomp_init(uint32_t def_action);
int __wrap_seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr,
			    uint32_t value);
int __wrap_seccomp_load(const scmp_filter_ctx ctx);
scmp_filter_ctx __real_seccomp_init(uint32_t def_action);

/* The worker goes on without namespaces, as on a host that refuses them. */
int __wrap_unshare(int flags)
{
	(void)flags;
	errno = EPERM;
	return -1;
}

/* KILL_PROCESS makes libseccomp ask the kernel whether it knows that action
 * (through seccomp(2)); KILL_THREAD needs no question. */
scmp_filter_ctx __wrap_seccomp_init(uint32_t def_action)
{
	if (def_action == SCMP_ACT_KILL_PROCESS)
		def_action = SCMP_ACT_KILL_THREAD;
	return __real_seccomp_init(def_action);
}

/* TSYNC is likewise probed; it only matters for a filter that loads. */
int __wrap_seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr,
			    uint32_t value)
{
	(void)ctx;
	(void)attr;
	(void)value;
	return 0;
}

int __wrap_seccomp_load(const scmp_filter_ctx ctx)
{
	(void)ctx;
	bh_warn("bench build: seccomp filter built but not loaded, no "
		"namespaces");
	return 0;
}
