/* Guest CPUID: KVM's supported set with per-vCPU identity and topology. */
#ifndef BH_RUNNER_CPUID_H
#define BH_RUNNER_CPUID_H

#include <linux/kvm.h>

/*
 * Sets in c (a copy per vCPU) the APIC id, the logical processor count and
 * the hypervisor bit (leaf 1), the x2APIC topology (leaves 0xb and 0x1f:
 * one thread per core, n cores per package), the core count of Intel leaf 4
 * and AMD leaves 0x80000008/0x8000001e. Leaves KVM did not report are left
 * absent.
 */
void bh_cpuid_patch(struct kvm_cpuid2 *c, unsigned int apic_id,
		    unsigned int nvcpus);

/* Number of bits needed to number n items (ceil(log2(n))). */
unsigned int bh_cpuid_bits(unsigned int n);

#endif
