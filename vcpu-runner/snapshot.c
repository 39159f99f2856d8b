/* Saved state of the runner's KVM objects: each vCPU's registers, FPU and
 * extended state, MSRs, local APIC, pending events, MP and debug state, and
 * the VM's PICs, IOAPIC, PIT and clock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <bulkhead/log.h>
#include <bulkhead/util.h>

#include "snapshot.h"

int runner_msr_list(struct runner *rn)
{
	struct kvm_msr_list *l;
	int r = 0;

	l = calloc(1, sizeof(*l) + RUNNER_MAX_MSRS * sizeof(l->indices[0]));
	if (!l)
		return -ENOMEM;
	l->nmsrs = RUNNER_MAX_MSRS;
	if (ioctl(rn->kvm, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		r = -errno;
		bh_err("KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	} else {
		memcpy(rn->msrs, l->indices, l->nmsrs * sizeof(l->indices[0]));
		rn->nmsrs = l->nmsrs;
	}
	free(l);
	return r;
}

/* KVM_GET_MSRS of every listed MSR; one KVM cannot read is dropped from
 * the list for good (KVM answers how many it read, in order). */
static int cpu_get_msrs(struct bh_vcpu *v, struct runner_cpu_buf *buf,
			unsigned int *n)
{
	struct runner *rn = v->rn;
	size_t msize = sizeof(struct kvm_msrs) +
		       RUNNER_MAX_MSRS * sizeof(struct kvm_msr_entry);
	struct kvm_msrs *m = malloc(msize);
	unsigned int done = 0;

	if (!m)
		return -ENOMEM;
	while (done < rn->nmsrs) {
		int got;

		memset(m, 0, msize);
		m->nmsrs = rn->nmsrs - done;
		for (unsigned int i = 0; i < m->nmsrs; i++)
			m->entries[i].index = rn->msrs[done + i];
		got = ioctl(v->fd, KVM_GET_MSRS, m);
		if (got < 0) {
			got = -errno;
			free(m);
			return got;
		}
		for (int i = 0; i < got; i++) {
			bh__msr__init(&buf->msr[done + i]);
			buf->msr[done + i].index = m->entries[i].index;
			buf->msr[done + i].value = m->entries[i].data;
			buf->msrp[done + i] = &buf->msr[done + i];
		}
		done += (unsigned int)got;
		if (done < rn->nmsrs) {
			bh_debug("MSR 0x%x cannot be read: not saved",
				 rn->msrs[done]);
			memmove(&rn->msrs[done], &rn->msrs[done + 1],
				(rn->nmsrs - done - 1) * sizeof(rn->msrs[0]));
			rn->nmsrs--;
		}
	}
	free(m);
	*n = done;
	return 0;
}

#define BYTES(field, obj)                          \
	do {                                       \
		s->field.data = (uint8_t *)&(obj); \
		s->field.len = sizeof(obj);        \
	} while (0)

int runner_cpu_save(struct bh_vcpu *v, Bh__CpuState *s,
		    struct runner_cpu_buf *buf)
{
	static const struct {
		unsigned long req;
		size_t off;
		const char *name;
	} gets[] = {
#define GET(r, f) { r, offsetof(struct runner_cpu_buf, f), #r }
		GET(KVM_GET_REGS, regs),   GET(KVM_GET_SREGS, sregs),
		GET(KVM_GET_XSAVE, xsave), GET(KVM_GET_XCRS, xcrs),
		GET(KVM_GET_LAPIC, lapic), GET(KVM_GET_VCPU_EVENTS, events),
		GET(KVM_GET_MP_STATE, mp), GET(KVM_GET_DEBUGREGS, debugregs),
#undef GET
	};
	unsigned int nmsrs = 0;
	int r;

	memset(buf, 0, offsetof(struct runner_cpu_buf, msr));
	bh__cpu_state__init(s);
	for (size_t i = 0; i < BH_ARRAY_SIZE(gets); i++) {
		if (ioctl(v->fd, gets[i].req, (uint8_t *)buf + gets[i].off) <
		    0) {
			r = -errno;
			bh_err("vCPU %u: %s: %s", v->id, gets[i].name,
			       strerror(errno));
			return r;
		}
	}
	r = cpu_get_msrs(v, buf, &nmsrs);
	if (r < 0) {
		bh_err("vCPU %u: KVM_GET_MSRS: %s", v->id, strerror(-r));
		return r;
	}
	s->id = v->id;
	BYTES(regs, buf->regs);
	BYTES(sregs, buf->sregs);
	BYTES(xsave, buf->xsave);
	BYTES(xcrs, buf->xcrs);
	BYTES(lapic, buf->lapic);
	BYTES(events, buf->events);
	BYTES(mp_state, buf->mp);
	BYTES(debugregs, buf->debugregs);
	s->n_msrs = nmsrs;
	s->msrs = buf->msrp;
	return 0;
}

/* A field of exactly the structure's size, copied out aligned. */
static bool take(const ProtobufCBinaryData *b, void *obj, size_t size)
{
	if (b->len != size || !b->data)
		return false;
	memcpy(obj, b->data, size);
	return true;
}

int runner_cpu_restore(struct bh_vcpu *v, const Bh__CpuState *s)
{
	struct runner_cpu_buf *buf = calloc(1, sizeof(*buf));
	struct kvm_msrs *m =
	    calloc(1, sizeof(*m) + RUNNER_MAX_MSRS * sizeof(m->entries[0]));
	const char *step = "the saved state";
	int r = -EINVAL;

	if (!buf || !m) {
		r = -ENOMEM;
		goto out;
	}
	if (s->id != v->id || s->n_msrs > RUNNER_MAX_MSRS ||
	    !take(&s->regs, &buf->regs, sizeof(buf->regs)) ||
	    !take(&s->sregs, &buf->sregs, sizeof(buf->sregs)) ||
	    !take(&s->xsave, buf->xsave, sizeof(buf->xsave)) ||
	    !take(&s->xcrs, &buf->xcrs, sizeof(buf->xcrs)) ||
	    !take(&s->lapic, &buf->lapic, sizeof(buf->lapic)) ||
	    !take(&s->events, &buf->events, sizeof(buf->events)) ||
	    !take(&s->mp_state, &buf->mp, sizeof(buf->mp)) ||
	    !take(&s->debugregs, &buf->debugregs, sizeof(buf->debugregs)))
		goto out;
	m->nmsrs = (uint32_t)s->n_msrs;
	for (size_t i = 0; i < s->n_msrs; i++) {
		if (!s->msrs[i])
			goto out;
		m->entries[i].index = s->msrs[i]->index;
		m->entries[i].data = s->msrs[i]->value;
	}
	/* KVM checks each structure's contents as it takes it; its answer
	 * is the check. */
#define SET(req, obj)                             \
	do {                                      \
		step = #req;                      \
		if (ioctl(v->fd, req, obj) < 0) { \
			r = -errno;               \
			goto out;                 \
		}                                 \
	} while (0)
	SET(KVM_SET_REGS, &buf->regs);
	SET(KVM_SET_SREGS, &buf->sregs);
	SET(KVM_SET_XSAVE, buf->xsave);
	/* A host without XSAVE saves no XCR (and refuses to set one). */
	if (buf->xcrs.nr_xcrs)
		SET(KVM_SET_XCRS, &buf->xcrs);
	SET(KVM_SET_LAPIC, &buf->lapic);
	step = "KVM_SET_MSRS";
	r = ioctl(v->fd, KVM_SET_MSRS, m);
	if (r < 0) {
		r = -errno;
		goto out;
	}
	if ((unsigned int)r != m->nmsrs) {
		bh_err("vCPU %u: MSR 0x%x refused (%d of %u set)", v->id,
		       m->entries[r].index, r, m->nmsrs);
		r = -EINVAL;
		goto out;
	}
	SET(KVM_SET_DEBUGREGS, &buf->debugregs);
	SET(KVM_SET_VCPU_EVENTS, &buf->events);
	SET(KVM_SET_MP_STATE, &buf->mp);
#undef SET
	r = 0;
out:
	if (r < 0)
		bh_err("vCPU %u: cannot restore: %s: %s", v->id, step,
		       strerror(-r));
	free(buf);
	free(m);
	return r;
}

int runner_vm_save(struct runner *rn, Bh__KvmVmState *s,
		   struct runner_vm_buf *buf)
{
	static const char *const chips[] = { "PIC master", "PIC slave",
					     "IOAPIC" };

	memset(buf, 0, sizeof(*buf));
	bh__kvm_vm_state__init(s);
	for (unsigned int i = 0; i < 3; i++) {
		buf->chip[i].chip_id = i;
		if (ioctl(rn->vm, KVM_GET_IRQCHIP, &buf->chip[i]) < 0) {
			bh_err("KVM_GET_IRQCHIP (%s): %s", chips[i],
			       strerror(errno));
			return -errno;
		}
	}
	if (ioctl(rn->vm, KVM_GET_PIT2, &buf->pit) < 0 ||
	    ioctl(rn->vm, KVM_GET_CLOCK, &buf->clock) < 0) {
		bh_err("KVM_GET_PIT2/CLOCK: %s", strerror(errno));
		return -errno;
	}
	BYTES(pic_master, buf->chip[0]);
	BYTES(pic_slave, buf->chip[1]);
	BYTES(ioapic, buf->chip[2]);
	BYTES(pit, buf->pit);
	BYTES(clock, buf->clock);
	return 0;
}

int runner_vm_restore(struct runner *rn, const Bh__KvmVmState *s)
{
	struct runner_vm_buf buf;
	const char *step = "the saved state";
	int r = -EINVAL;

	memset(&buf, 0, sizeof(buf));
	if (!take(&s->pic_master, &buf.chip[0], sizeof(buf.chip[0])) ||
	    !take(&s->pic_slave, &buf.chip[1], sizeof(buf.chip[1])) ||
	    !take(&s->ioapic, &buf.chip[2], sizeof(buf.chip[2])) ||
	    !take(&s->pit, &buf.pit, sizeof(buf.pit)) ||
	    !take(&s->clock, &buf.clock, sizeof(buf.clock)))
		goto out;
	/* Each chip where its id says, and nowhere else. */
	for (unsigned int i = 0; i < 3; i++)
		if (buf.chip[i].chip_id != i)
			goto out;
	for (unsigned int i = 0; i < 3; i++) {
		step = "KVM_SET_IRQCHIP";
		if (ioctl(rn->vm, KVM_SET_IRQCHIP, &buf.chip[i]) < 0) {
			r = -errno;
			goto out;
		}
	}
	step = "KVM_SET_PIT2";
	if (ioctl(rn->vm, KVM_SET_PIT2, &buf.pit) < 0) {
		r = -errno;
		goto out;
	}
	/* The guest's clock goes on from where it was saved: only the
	 * value, none of the flags the host's clock had. */
	buf.clock.flags = 0;
	step = "KVM_SET_CLOCK";
	if (ioctl(rn->vm, KVM_SET_CLOCK, &buf.clock) < 0) {
		r = -errno;
		goto out;
	}
	r = 0;
out:
	if (r < 0)
		bh_err("cannot restore the VM's interrupt controllers and "
		       "clock: %s: %s",
		       step, strerror(-r));
	return r;
}
