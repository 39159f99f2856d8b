/* Whether this host can run a VM: what the controller reads of the host
 * itself, what the vCPU runner measured at /dev/kvm, and the verdict. */
#ifndef BH_HOSTCHECK_H
#define BH_HOSTCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Guest code must run at least this fast to count as run by the CPU:
 * hardware runs the probe loop at billions of instructions a second, the
 * emulated KVM host of the tests (QEMU TCG with nested SVM) at about a
 * hundred million (its fastest chunk; a busy machine slows whole runs of it
 * down to a few million), and KVM's instruction emulator at tens of
 * thousands. */
#define BH_KVM_MIN_IPS 5000000ULL

#define BH_HOST_MAX_CAPS 64

enum bh_cap_need {
	BH_CAP_REQUIRED, /* Bulkhead does not start without it */
	BH_CAP_LATER,	 /* snapshot, migration and the like will need it */
};

struct bh_kvm_cap {
	uint32_t num; /* KVM_CAP_* */
	const char *name;
	enum bh_cap_need need;
	const char *what; /* what it is for, for the report */
};

/* The capabilities the runner is asked about, in that order. */
extern const struct bh_kvm_cap bh_kvm_caps[];
extern const size_t bh_kvm_ncaps;

/* What the controller reads of the host: /sys/module, /proc/cpuinfo. */
struct bh_host_facts {
	char kvm_module[32]; /* kvm_intel, kvm_amd, kvm_pvm, ...; "" unknown */
	bool cpu_vmx;
	bool cpu_svm;
};

/* What the runner found at /dev/kvm (MSG_RUNNER_PROBE_RESULT). */
struct bh_kvm_report {
	int open_errno; /* 0: opened read-write */
	int api_version;
	char vendor[13];
	int caps[BH_HOST_MAX_CAPS]; /* answers for bh_kvm_caps, in order */
	size_t ncaps;
	bool probe_ran;
	char probe_error[160];
	uint64_t probe_planned;
	uint64_t probe_done;
	uint64_t probe_ns;
	uint64_t probe_deadline_ns;
	uint64_t probe_best_done; /* the fastest chunk */
	uint64_t probe_best_ns;
};

enum bh_kvm_verdict {
	BH_KVM_FAST,	 /* runs guest code at hardware speed */
	BH_KVM_EMULATED, /* opens, but guest code runs in an emulator */
	BH_KVM_MISSING,	 /* no /dev/kvm that opens */
	BH_KVM_UNUSABLE, /* wrong API, a capability missing, no probe */
};

/* Reads the facts of this host; what cannot be read stays unknown. */
void bh_host_facts_read(struct bh_host_facts *f);

/* Instructions a second in the probe's fastest chunk; 0 if it did not
 * run. */
uint64_t bh_kvm_probe_ips(const struct bh_kvm_report *r);

/* The verdict on this host's KVM, with a message for the user that names
 * what was found and what to do (empty for BH_KVM_FAST). Pure: tests feed it
 * made-up reports. */
enum bh_kvm_verdict bh_kvm_judge(const struct bh_host_facts *f,
				 const struct bh_kvm_report *r, char *msg,
				 size_t len);

/* One line of the --check-host report. */
enum bh_check_level { BH_CHECK_PASS, BH_CHECK_WARN, BH_CHECK_FAIL };

struct bh_check_report {
	FILE *out;
	unsigned int fails;
	unsigned int warns;
};

void bh_check_line(struct bh_check_report *rep, enum bh_check_level level,
		   const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The KVM lines of the report: device, API, module, capabilities, speed. */
void bh_check_kvm(struct bh_check_report *rep, const struct bh_host_facts *f,
		  const struct bh_kvm_report *r);

/* The rest of the host: user namespaces, Landlock, seccomp, shmem huge
 * pages, io_uring. Read from this process; meant to run before the
 * controller's sandbox. */
void bh_check_system(struct bh_check_report *rep);

#endif
