/* Saved state of the runner's KVM objects (proto/state.proto): each vCPU,
 * the in-kernel irqchip, PIT and clock. The vCPUs must be parked (paused,
 * or not started yet). */
#ifndef BH_RUNNER_SNAPSHOT_H
#define BH_RUNNER_SNAPSHOT_H

#include <linux/kvm.h>

#include "proto/state.pb-c.h"
#include "runner.h"

/* The MSRs KVM lists (KVM_GET_MSR_INDEX_LIST), read while /dev/kvm is
 * open (rn->msrs); the ones a vCPU cannot read are dropped at the first
 * save. 0 or -errno. */
int runner_msr_list(struct runner *rn);

/* What one vCPU's state points into. */
struct runner_cpu_buf {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	/* struct kvm_xsave, whose newer headers end in a flexible array:
	 * its fixed part, as raw bytes. */
	uint8_t xsave[sizeof(struct kvm_xsave)]
	    __attribute__((aligned(__alignof__(struct kvm_xsave))));
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_debugregs debugregs;
	Bh__Msr msr[RUNNER_MAX_MSRS];
	Bh__Msr *msrp[RUNNER_MAX_MSRS];
};

int runner_cpu_save(struct bh_vcpu *v, Bh__CpuState *s,
		    struct runner_cpu_buf *buf);
/* Checks every size, then sets the state in KVM's order (regs before
 * sregs before the LAPIC before the MSRs, whose TSC deadline needs it;
 * events and MP state last). 0 or -errno (logged). */
int runner_cpu_restore(struct bh_vcpu *v, const Bh__CpuState *s);

struct runner_vm_buf {
	struct kvm_irqchip chip[3];
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

int runner_vm_save(struct runner *rn, Bh__KvmVmState *s,
		   struct runner_vm_buf *buf);
int runner_vm_restore(struct runner *rn, const Bh__KvmVmState *s);

#endif
