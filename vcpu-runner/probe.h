/* The host check: /dev/kvm's answers and the speed of a probe guest. */
#ifndef BH_RUNNER_PROBE_H
#define BH_RUNNER_PROBE_H

#include <stddef.h>
#include <stdint.h>

#define BH_PROBE_MAX_CAPS 64

struct runner_probe {
	int open_errno;
	int api_version;
	char vendor[13];
	int caps[BH_PROBE_MAX_CAPS];
	size_t ncaps;
	int ran;	    /* the loop ran until done or the deadline */
	char error[160];    /* why it did not run */
	uint64_t planned;   /* instructions in the loop */
	uint64_t done;	    /* instructions that ran */
	uint64_t ns;	    /* how long they took */
	uint64_t best_done; /* the fastest chunk: its instructions */
	uint64_t best_ns;   /* and its time */
	uint64_t deadline_ns;
};

struct runner;

/* Frees the probe's VM, kept until the VM proper exists (probe.c says
 * why). */
void runner_probe_release(struct runner *rn);

/* Opens /dev/kvm into rn->kvm unless open, asks KVM_CHECK_EXTENSION for
 * caps and times the probe guest in a VM of its own. What failed is in p;
 * -EINVAL only for too many caps. */
int runner_kvm_probe(struct runner *rn, const uint32_t *caps, size_t ncaps,
		     struct runner_probe *p);

#endif
