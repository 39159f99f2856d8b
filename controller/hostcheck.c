/* Whether this host can run a VM. A /dev/kvm that opens is not enough: some
 * KVMs (kvm_pvm on a CPU without VMX or SVM) run a stock kernel through the
 * instruction emulator, where it never finishes booting. The runner times a
 * probe guest; this file judges what it measured, beside what the host's
 * own files say, and writes the --check-host report. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/kvm.h>

#include <bulkhead/util.h>

#include "hostcheck.h"

#define CAP(c, need, what)        \
	{                         \
		c, #c, need, what \
	}

const struct bh_kvm_cap bh_kvm_caps[] = {
	CAP(KVM_CAP_IRQCHIP, BH_CAP_REQUIRED, "in-kernel IOAPIC and LAPIC"),
	CAP(KVM_CAP_PIT2, BH_CAP_REQUIRED, "in-kernel PIT"),
	CAP(KVM_CAP_USER_MEMORY, BH_CAP_REQUIRED, "guest RAM from a memfd"),
	CAP(KVM_CAP_IMMEDIATE_EXIT, BH_CAP_REQUIRED, "pausing vCPUs"),
	CAP(KVM_CAP_EXT_CPUID, BH_CAP_REQUIRED, "CPUID for the guest"),
	CAP(KVM_CAP_SET_TSS_ADDR, BH_CAP_REQUIRED, "Intel's TSS pages"),
	CAP(KVM_CAP_IOEVENTFD, BH_CAP_REQUIRED, "queue kicks to workers"),
	CAP(KVM_CAP_IRQFD, BH_CAP_REQUIRED, "interrupts from workers"),
	CAP(KVM_CAP_IRQ_ROUTING, BH_CAP_REQUIRED, "MSI-X routes (GSI)"),
	CAP(KVM_CAP_SIGNAL_MSI, BH_CAP_REQUIRED, "MSI from the runner"),
	CAP(KVM_CAP_MP_STATE, BH_CAP_LATER, "vCPU state: snapshot"),
	CAP(KVM_CAP_VCPU_EVENTS, BH_CAP_LATER, "vCPU state: snapshot"),
	CAP(KVM_CAP_DEBUGREGS, BH_CAP_LATER, "vCPU state: snapshot"),
	CAP(KVM_CAP_XSAVE, BH_CAP_LATER, "vCPU state: snapshot"),
	CAP(KVM_CAP_XCRS, BH_CAP_LATER, "vCPU state: snapshot"),
	CAP(KVM_CAP_PIT_STATE2, BH_CAP_LATER, "PIT state: snapshot"),
	CAP(KVM_CAP_ADJUST_CLOCK, BH_CAP_LATER, "KVM clock: snapshot"),
	CAP(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, BH_CAP_LATER,
	    "dirty logging: migration"),
};
const size_t bh_kvm_ncaps = BH_ARRAY_SIZE(bh_kvm_caps);

_Static_assert(BH_ARRAY_SIZE(bh_kvm_caps) <= BH_HOST_MAX_CAPS,
	       "more capabilities than a probe carries");

/* ---- facts ------------------------------------------------------------- */

static bool module_loaded(const char *name)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/module/%s", name);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Whether word is one of the space-separated words of line. */
static bool has_word(const char *line, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = line; (p = strstr(p, word)); p += n) {
		if ((p == line || p[-1] == ' ' || p[-1] == '\t') &&
		    (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
			return true;
	}
	return false;
}

void bh_host_facts_read(struct bh_host_facts *f)
{
	static const char *const modules[] = { "kvm_intel", "kvm_amd",
					       "kvm_pvm" };
	char line[8192];
	FILE *in;

	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < BH_ARRAY_SIZE(modules); i++) {
		if (module_loaded(modules[i])) {
			snprintf(f->kvm_module, sizeof(f->kvm_module), "%s",
				 modules[i]);
			break;
		}
	}
	in = fopen("/proc/cpuinfo", "re");
	if (!in)
		return;
	while (fgets(line, sizeof(line), in)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		f->cpu_vmx = has_word(line, "vmx");
		f->cpu_svm = has_word(line, "svm");
		break;
	}
	fclose(in);
}

/* ---- the verdict ------------------------------------------------------- */

uint64_t bh_kvm_probe_ips(const struct bh_kvm_report *r)
{
	uint64_t ns = r->probe_best_ns ? r->probe_best_ns : 1;

	if (!r->probe_ran)
		return 0;
	return (uint64_t)((unsigned __int128)r->probe_best_done *
			  1000000000ULL / ns);
}

static const char *cpu_virt(const struct bh_host_facts *f)
{
	if (f->cpu_vmx)
		return "VMX";
	if (f->cpu_svm)
		return "SVM";
	return NULL;
}

static const char *module_name(const struct bh_host_facts *f)
{
	return f->kvm_module[0] ? f->kvm_module : "an unknown module";
}

/* A KVM that emulates: name the module and the CPU, and what to do. */
static void emulated_msg(const struct bh_host_facts *f,
			 const struct bh_kvm_report *r, char *msg, size_t len)
{
	uint64_t ips = bh_kvm_probe_ips(r);
	char speed[160];

	snprintf(speed, sizeof(speed),
		 "a probe guest ran %" PRIu64 " instructions a second "
		 "(%" PRIu64 " of %" PRIu64 " in %" PRIu64
		 " ms), where hardware runs billions",
		 ips, r->probe_done, r->probe_planned, r->probe_ns / 1000000);
	if (strcmp(f->kvm_module, "kvm_pvm") == 0 && !cpu_virt(f))
		snprintf(msg, len,
			 "/dev/kvm is provided by kvm_pvm on a CPU without "
			 "VMX or SVM: it runs only PVM guest kernels, and a "
			 "stock kernel would run under instruction emulation "
			 "(%s). Run Bulkhead on a host whose CPU offers VMX "
			 "or SVM, or inside an emulated KVM host "
			 "(tests/kvm/kvm-host)",
			 speed);
	else
		snprintf(msg, len,
			 "/dev/kvm (%s, CPU %s) runs guest code under "
			 "emulation, not at hardware speed: %s. A stock "
			 "kernel would not finish booting. Run Bulkhead on a "
			 "host whose CPU offers VMX or SVM to KVM",
			 module_name(f),
			 cpu_virt(f) ? cpu_virt(f)
				     : "without "
				       "VMX or SVM",
			 speed);
}

enum bh_kvm_verdict bh_kvm_judge(const struct bh_host_facts *f,
				 const struct bh_kvm_report *r, char *msg,
				 size_t len)
{
	if (len)
		msg[0] = '\0';
	if (r->open_errno) {
		snprintf(msg, len, "cannot open /dev/kvm: %s%s",
			 strerror(r->open_errno),
			 r->open_errno == ENOENT || r->open_errno == ENODEV
			     ? " (no KVM on this host: load kvm_intel or "
			       "kvm_amd, on a CPU with VMX or SVM)"
			 : r->open_errno == EACCES
			     ? " (give the user Bulkhead runs as access to "
			       "it, e.g. the kvm group)"
			     : "");
		return BH_KVM_MISSING;
	}
	if (r->api_version != KVM_API_VERSION) {
		snprintf(msg, len, "/dev/kvm speaks KVM API version %d, not %d",
			 r->api_version, KVM_API_VERSION);
		return BH_KVM_UNUSABLE;
	}
	for (size_t i = 0; i < bh_kvm_ncaps; i++) {
		if (bh_kvm_caps[i].need != BH_CAP_REQUIRED)
			continue;
		if (i >= r->ncaps || r->caps[i] <= 0) {
			snprintf(msg, len, "/dev/kvm (%s) lacks %s (%s)",
				 module_name(f), bh_kvm_caps[i].name,
				 bh_kvm_caps[i].what);
			return BH_KVM_UNUSABLE;
		}
	}
	if (!r->probe_ran) {
		snprintf(
		    msg, len, "/dev/kvm (%s) could not run a probe guest: %s",
		    module_name(f),
		    r->probe_error[0] ? r->probe_error : "no reason given");
		return BH_KVM_UNUSABLE;
	}
	if (bh_kvm_probe_ips(r) < BH_KVM_MIN_IPS) {
		emulated_msg(f, r, msg, len);
		return BH_KVM_EMULATED;
	}
	return BH_KVM_FAST;
}

/* ---- the report -------------------------------------------------------- */

void bh_check_line(struct bh_check_report *rep, enum bh_check_level level,
		   const char *what, const char *fmt, ...)
{
	static const char *const tags[] = { "pass", "warn", "FAIL" };
	va_list ap;

	if (level == BH_CHECK_FAIL)
		rep->fails++;
	else if (level == BH_CHECK_WARN)
		rep->warns++;
	fprintf(rep->out, "%-4s  %-18s ", tags[level], what);
	va_start(ap, fmt);
	vfprintf(rep->out, fmt, ap);
	va_end(ap);
	fputc('\n', rep->out);
}

void bh_check_kvm(struct bh_check_report *rep, const struct bh_host_facts *f,
		  const struct bh_kvm_report *r)
{
	char msg[768];
	enum bh_kvm_verdict v = bh_kvm_judge(f, r, msg, sizeof(msg));
	const char *virt = cpu_virt(f);

	bh_check_line(rep, virt ? BH_CHECK_PASS : BH_CHECK_WARN, "cpu", "%s",
		      virt ? (f->cpu_vmx ? "VMX (Intel VT-x)" : "SVM (AMD-V)")
			   : "neither VMX nor SVM in /proc/cpuinfo");
	if (strcmp(f->kvm_module, "kvm_pvm") == 0 && !virt)
		bh_check_line(rep, BH_CHECK_WARN, "kvm-module",
			      "kvm_pvm without VMX or SVM: it runs PVM guest "
			      "kernels at speed, a stock kernel only under "
			      "instruction emulation");
	else
		bh_check_line(rep,
			      f->kvm_module[0] ? BH_CHECK_PASS : BH_CHECK_WARN,
			      "kvm-module", "%s",
			      f->kvm_module[0] ? f->kvm_module
					       : "none of kvm_intel, kvm_amd, "
						 "kvm_pvm in /sys/module");
	if (v == BH_KVM_MISSING) {
		bh_check_line(rep, BH_CHECK_FAIL, "kvm-device", "%s", msg);
		return;
	}
	bh_check_line(rep, BH_CHECK_PASS, "kvm-device",
		      "/dev/kvm opens read-write (host CPU %s)",
		      r->vendor[0] ? r->vendor : "unknown");
	bh_check_line(rep,
		      r->api_version == KVM_API_VERSION ? BH_CHECK_PASS
							: BH_CHECK_FAIL,
		      "kvm-api", "version %d", r->api_version);
	for (size_t i = 0; i < bh_kvm_ncaps; i++) {
		bool have = i < r->ncaps && r->caps[i] > 0;
		const struct bh_kvm_cap *c = &bh_kvm_caps[i];

		bh_check_line(rep,
			      have			   ? BH_CHECK_PASS
			      : c->need == BH_CAP_REQUIRED ? BH_CHECK_FAIL
							   : BH_CHECK_WARN,
			      "kvm-capability", "%s: %s%s", c->name, c->what,
			      have ? ""
			      : c->need == BH_CAP_REQUIRED
				  ? " (missing: Bulkhead cannot run)"
				  : " (missing: needed by features to come)");
	}
	if (!r->probe_ran)
		bh_check_line(rep, BH_CHECK_FAIL, "kvm-speed",
			      "no probe guest ran: %s",
			      r->probe_error[0] ? r->probe_error : "unknown");
	else if (v == BH_KVM_EMULATED)
		bh_check_line(rep, BH_CHECK_FAIL, "kvm-speed", "%s", msg);
	else
		bh_check_line(rep,
			      bh_kvm_probe_ips(r) >= BH_KVM_MIN_IPS
				  ? BH_CHECK_PASS
				  : BH_CHECK_FAIL,
			      "kvm-speed",
			      "guest code runs at hardware speed: %" PRIu64
			      " million instructions a second (%" PRIu64
			      " in %" PRIu64 " us)",
			      bh_kvm_probe_ips(r) / 1000000, r->probe_done,
			      r->probe_ns / 1000);
}

/* Whether a child can make the user and PID namespaces the device workers
 * enter (common/spawn.c). */
static int try_userns(void)
{
	int status = 0;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(unshare(CLONE_NEWUSER | CLONE_NEWPID) == 0 ? 0 : errno);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status))
		return -EIO;
	return -WEXITSTATUS(status);
}

/* The first line of a small file, without its newline; -errno. */
static int read_line(const char *path, char *buf, size_t len)
{
	FILE *in = fopen(path, "re");
	int r = 0;

	if (!in)
		return -errno;
	if (!fgets(buf, (int)len, in))
		r = -EIO;
	else
		buf[strcspn(buf, "\n")] = '\0';
	fclose(in);
	return r;
}

static void check_shmem(struct bh_check_report *rep)
{
	char v[256], sel[32] = "";
	const char *a, *b;

	if (read_line("/sys/kernel/mm/transparent_hugepage/shmem_enabled", v,
		      sizeof(v)) < 0) {
		bh_check_line(rep, BH_CHECK_WARN, "shmem-huge-pages",
			      "no transparent huge pages for shmem in this "
			      "kernel: guest RAM in 4 KiB pages");
		return;
	}
	a = strchr(v, '[');
	b = a ? strchr(a, ']') : NULL;
	if (a && b && (size_t)(b - a) < sizeof(sel))
		snprintf(sel, sizeof(sel), "%.*s", (int)(b - a - 1), a + 1);
	if (!strcmp(sel, "advise") || !strcmp(sel, "within_size") ||
	    !strcmp(sel, "always") || !strcmp(sel, "force"))
		bh_check_line(rep, BH_CHECK_PASS, "shmem-huge-pages",
			      "shmem_enabled is %s: guest RAM in 2 MiB pages",
			      sel);
	else
		bh_check_line(rep, BH_CHECK_WARN, "shmem-huge-pages",
			      "shmem_enabled is %s: guest RAM in 4 KiB pages, "
			      "more nested page faults (set it to advise, "
			      "docs/SYSTEMD.md)",
			      sel[0] ? sel : v);
}

static void check_io_uring(struct bh_check_report *rep)
{
	char v[32];
	int r = read_line("/proc/sys/kernel/io_uring_disabled", v, sizeof(v));
	long fd;
	struct {
		uint32_t w[30];
	} params; /* struct io_uring_params is 120 bytes */

	memset(&params, 0, sizeof(params));
	fd = syscall(__NR_io_uring_setup, 1, &params);
	if (fd >= 0) {
		close((int)fd);
		bh_check_line(rep, BH_CHECK_PASS, "io_uring",
			      "available to the disk workers, under their "
			      "seccomp filters%s%s%s",
			      r == 0 ? " (kernel.io_uring_disabled=" : "",
			      r == 0 ? v : "", r == 0 ? ")" : "");
		return;
	}
	bh_check_line(rep, BH_CHECK_WARN, "io_uring",
		      "io_uring_setup: %s%s%s%s: disks use synchronous I/O",
		      strerror(errno),
		      r == 0 ? " (kernel.io_uring_disabled=" : "",
		      r == 0 ? v : "", r == 0 ? ")" : "");
}

void bh_check_system(struct bh_check_report *rep)
{
	long abi;
	int r;

	/* Every process of Bulkhead enters an allow-list; no filter, no VM. */
	r = (int)syscall(__NR_seccomp, SECCOMP_GET_ACTION_AVAIL, 0,
			 &(uint32_t){ SECCOMP_RET_KILL_PROCESS });
	if (r == 0)
		bh_check_line(rep, BH_CHECK_PASS, "seccomp",
			      "filters with kill-process%s",
			      prctl(PR_GET_SECCOMP) == 2
				  ? " (this process is already under one)"
				  : "");
	else
		bh_check_line(rep, BH_CHECK_FAIL, "seccomp",
			      "seccomp filters with kill-process: %s",
			      strerror(errno));

	r = try_userns();
	if (r == 0)
		bh_check_line(rep, BH_CHECK_PASS, "user-namespaces",
			      "device workers get user, PID, mount, network, "
			      "IPC and UTS namespaces of their own");
	else
		bh_check_line(rep, BH_CHECK_WARN, "user-namespaces",
			      "unshare(CLONE_NEWUSER|CLONE_NEWPID): %s: device "
			      "workers run without namespaces or an empty "
			      "root (--sandbox strict refuses to start them)",
			      strerror(-r));

	abi = syscall(__NR_landlock_create_ruleset, NULL, 0,
		      LANDLOCK_CREATE_RULESET_VERSION);
	if (abi > 0)
		bh_check_line(rep, BH_CHECK_PASS, "landlock",
			      "ABI version %ld: device workers lose all file "
			      "access",
			      abi);
	else
		bh_check_line(rep, BH_CHECK_WARN, "landlock",
			      "%s: seccomp alone keeps files closed to the "
			      "device workers",
			      strerror(errno));
	check_shmem(rep);
	check_io_uring(rep);
}
