/* CPUID per vCPU: identity and topology on top of what KVM supports. */
#include "cpuid.h"

#define LEAF1_ECX_HYPERVISOR (1u << 31)
#define LEAF1_EDX_HTT	     (1u << 28)
#define EXT1_ECX_CMP_LEGACY  (1u << 1)

unsigned int bh_cpuid_bits(unsigned int n)
{
	unsigned int b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

static int is_amd(const struct kvm_cpuid2 *c)
{
	for (unsigned int i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];

		/* "AuthenticAMD": ebx "Auth", edx "enti", ecx "cAMD" */
		if (e->function == 0)
			return e->ebx == 0x68747541 && e->ecx == 0x444d4163;
	}
	return 0;
}

static void patch_topology_leaf(struct kvm_cpuid_entry2 *e,
				unsigned int apic_id, unsigned int nvcpus)
{
	e->edx = apic_id;
	switch (e->index) {
	case 0: /* SMT level: one thread per core */
		e->eax = 0;
		e->ebx = 1;
		e->ecx = (1u << 8) | 0;
		break;
	case 1: /* core level: every vCPU is a core of one package */
		e->eax = bh_cpuid_bits(nvcpus);
		e->ebx = nvcpus;
		e->ecx = (2u << 8) | 1;
		break;
	default:
		e->eax = 0;
		e->ebx = 0;
		e->ecx = e->index;
		break;
	}
}

void bh_cpuid_patch(struct kvm_cpuid2 *c, unsigned int apic_id,
		    unsigned int nvcpus)
{
	int amd = is_amd(c);

	for (unsigned int i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			e->ebx = (e->ebx & 0x0000ffffu) | (apic_id << 24) |
				 ((nvcpus & 0xff) << 16);
			/* CLFLUSH line size in 8-byte units. */
			e->ebx = (e->ebx & ~0xff00u) | (8u << 8);
			e->ecx |= LEAF1_ECX_HYPERVISOR;
			if (nvcpus > 1)
				e->edx |= LEAF1_EDX_HTT;
			else
				e->edx &= ~LEAF1_EDX_HTT;
			break;
		case 4:
			if (!amd) {
				unsigned int cores = nvcpus - 1;

				/* A 6-bit field: saturate past 64 cores rather
				 * than wrap to a small count. */
				if (cores > 0x3f)
					cores = 0x3f;
				e->eax &= 0x03ffffffu;
				e->eax |= cores << 26;
				/* Cache shared by all threads of a core: 1. */
				e->eax &= ~(0xfffu << 14);
			}
			break;
		case 0xb:
		case 0x1f:
			patch_topology_leaf(e, apic_id, nvcpus);
			break;
		case 0x80000001:
			if (amd) {
				if (nvcpus > 1)
					e->ecx |= EXT1_ECX_CMP_LEGACY;
				else
					e->ecx &= ~EXT1_ECX_CMP_LEGACY;
			}
			break;
		case 0x80000008:
			if (amd) {
				e->ecx &= ~0xf0ffu;
				e->ecx |= (nvcpus - 1) & 0xff;
				e->ecx |= bh_cpuid_bits(nvcpus) << 12;
			}
			break;
		case 0x8000001e:
			if (amd) {
				e->eax = apic_id;
				e->ebx = apic_id & 0xff; /* core id, 1 thread */
				e->ecx = 0;		 /* node 0 of 1 */
			}
			break;
		default:
			break;
		}
	}
}
