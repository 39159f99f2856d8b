/* Building the VM: /dev/kvm, in-kernel irqchip and PIT, guest RAM slots and
 * vCPUs in their boot state. Runs before the sandbox is entered. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/platform.h>
#include <bulkhead/util.h>

#include "cpuid.h"
#include "dirty.h"
#include "guestmem.h"
#include "runner.h"

#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE    0x2ff
#define MTRR_ENABLE	     0x800
#define MTRR_TYPE_WB	     0x6

#define APIC_LVT0	 0x350
#define APIC_LVT1	 0x360
#define APIC_MODE_NMI	 0x4
#define APIC_MODE_EXTINT 0x7

static int kvm_get_supported_cpuid(struct runner *rn)
{
	unsigned int nent = 128;

	for (;;) {
		struct kvm_cpuid2 *c =
		    calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));

		if (!c)
			return -ENOMEM;
		c->nent = nent;
		if (ioctl(rn->kvm, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			rn->cpuid = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG || nent >= 4096)
			return -errno;
		nent *= 2;
	}
}

static void cpuid_vendor(const struct kvm_cpuid2 *c, char out[13])
{
	memset(out, 0, 13);
	for (unsigned int i = 0; i < c->nent; i++) {
		if (c->entries[i].function == 0) {
			memcpy(out, &c->entries[i].ebx, 4);
			memcpy(out + 4, &c->entries[i].edx, 4);
			memcpy(out + 8, &c->entries[i].ecx, 4);
			return;
		}
	}
}

int runner_kvm_open(struct runner *rn)
{
	static const struct {
		int cap;
		const char *name;
	} caps[] = {
		{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
		{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
		{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
		{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
		{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
	};
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t ident = BH_KVM_IDENTITY_MAP;
	int r, v;

	/* Open already when the controller asked for a probe first. */
	if (rn->kvm < 0)
		rn->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (rn->kvm < 0) {
		r = -errno;
		bh_err("cannot open /dev/kvm: %s", strerror(errno));
		return r;
	}
	v = ioctl(rn->kvm, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		bh_err("KVM API version %d, need %d", v, KVM_API_VERSION);
		return -ENOTSUP;
	}
	for (size_t i = 0; i < BH_ARRAY_SIZE(caps); i++) {
		if (ioctl(rn->kvm, KVM_CHECK_EXTENSION, caps[i].cap) <= 0) {
			bh_err("KVM lacks %s", caps[i].name);
			return -ENOTSUP;
		}
	}
	r = kvm_get_supported_cpuid(rn);
	if (r < 0) {
		bh_err("KVM_GET_SUPPORTED_CPUID: %s", strerror(-r));
		return r;
	}
	cpuid_vendor(rn->cpuid, rn->vendor);
	rn->run_size = ioctl(rn->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if ((long)rn->run_size < (long)sizeof(struct kvm_run)) {
		bh_err("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		return -EINVAL;
	}

	rn->vm = ioctl(rn->kvm, KVM_CREATE_VM, 0);
	if (rn->vm < 0) {
		r = -errno;
		bh_err("KVM_CREATE_VM: %s", strerror(errno));
		return r;
	}
	/* Intel needs these pages in guest-physical space; they sit in the
	 * hole below 4 GiB, away from RAM and the APICs. */
	if (ioctl(rn->vm, KVM_SET_TSS_ADDR, (unsigned long)BH_KVM_TSS_ADDR) <
		0 ||
	    ioctl(rn->vm, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0) {
		r = -errno;
		bh_err("KVM_SET_TSS_ADDR/IDENTITY_MAP_ADDR: %s",
		       strerror(errno));
		return r;
	}
	if (ioctl(rn->vm, KVM_CREATE_IRQCHIP, 0) < 0) {
		r = -errno;
		bh_err("KVM_CREATE_IRQCHIP: %s", strerror(errno));
		return r;
	}
	if (ioctl(rn->vm, KVM_CREATE_PIT2, &pit) < 0) {
		r = -errno;
		bh_err("KVM_CREATE_PIT2: %s", strerror(errno));
		return r;
	}
	return 0;
}

int runner_kvm_map_memory(struct runner *rn, int memfd, uint64_t memfd_size,
			  Bh__MemRegion *const *regions, size_t nregions)
{
	struct stat st;
	int r;

	if (fstat(memfd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != memfd_size ||
	    !memfd_size || memfd_size % 4096) {
		bh_err("guest memory fd has size %lld, expected %llu",
		       (long long)st.st_size, (unsigned long long)memfd_size);
		return -EINVAL;
	}
	if (!nregions || nregions > 2) {
		bh_err("%zu memory regions, expected 1 or 2", nregions);
		return -EINVAL;
	}
	for (size_t i = 0; i < nregions; i++) {
		const Bh__MemRegion *m = regions[i];
		uint64_t end;

		if (!m->size ||
		    (m->guest_phys | m->size | m->memfd_offset) % 4096 ||
		    __builtin_add_overflow(m->memfd_offset, m->size, &end) ||
		    end > memfd_size ||
		    __builtin_add_overflow(m->guest_phys, m->size, &end)) {
			bh_err("memory region %zu is out of bounds", i);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			const Bh__MemRegion *o = regions[j];

			if (m->guest_phys < o->guest_phys + o->size &&
			    o->guest_phys < end) {
				bh_err("memory regions %zu and %zu overlap", j,
				       i);
				return -EINVAL;
			}
		}
	}

	rn->ram = mmap(NULL, memfd_size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_NORESERVE, memfd, 0);
	if (rn->ram == MAP_FAILED) {
		rn->ram = NULL;
		r = -errno;
		bh_err("mapping guest memory: %s", strerror(errno));
		return r;
	}
	rn->ram_size = memfd_size;
	if (!(bh_guestmem_advise(rn->ram, memfd_size) & BH_GUESTMEM_HUGEPAGE))
		bh_debug("guest RAM: no transparent huge pages in this kernel");

	for (size_t i = 0; i < nregions; i++) {
		struct kvm_userspace_memory_region mr = {
			.slot = (uint32_t)i,
			.guest_phys_addr = regions[i]->guest_phys,
			.memory_size = regions[i]->size,
			.userspace_addr =
			    (uint64_t)(uintptr_t)(rn->ram +
						  regions[i]->memfd_offset),
		};

		if (ioctl(rn->vm, KVM_SET_USER_MEMORY_REGION, &mr) < 0) {
			r = -errno;
			bh_err("KVM_SET_USER_MEMORY_REGION %zu: %s", i,
			       strerror(errno));
			return r;
		}
		rn->ram_gpa[i] = regions[i]->guest_phys;
		rn->ram_len[i] = regions[i]->size;
		rn->ram_off[i] = regions[i]->memfd_offset;
		rn->nram = (unsigned int)i + 1;
	}
	return 0;
}

/* ---- dirty logging ---------------------------------------------------- */

/* RAM slot i registered again as it is, with flags: KVM takes a change of
 * flags alone while the vCPUs run. */
static int ram_slot_flags(struct runner *rn, unsigned int i, uint32_t flags)
{
	struct kvm_userspace_memory_region mr = {
		.slot = i,
		.flags = flags,
		.guest_phys_addr = rn->ram_gpa[i],
		.memory_size = rn->ram_len[i],
		.userspace_addr =
		    (uint64_t)(uintptr_t)(rn->ram + rn->ram_off[i]),
	};

	return ioctl(rn->vm, KVM_SET_USER_MEMORY_REGION, &mr) < 0 ? -errno : 0;
}

static void kvm_dirty_free(struct runner *rn)
{
	for (unsigned int i = 0; i < 2; i++) {
		free(rn->kvm_dirty[i]);
		rn->kvm_dirty[i] = NULL;
	}
}

int runner_kvm_dirty_start(struct runner *rn, uint64_t *map, uint64_t bytes)
{
	unsigned int i;
	int r = 0;

	if (rn->dirty) {
		bh_dirty_unmap(rn->dirty, rn->dirty_bytes);
		rn->dirty = map;
		rn->dirty_bytes = bytes;
		return 0;
	}
	for (i = 0; i < rn->nram; i++) {
		rn->kvm_dirty[i] = calloc(bh_dirty_slot_words(rn->ram_len[i]),
					  sizeof(uint64_t));
		if (!rn->kvm_dirty[i]) {
			kvm_dirty_free(rn);
			return -ENOMEM;
		}
	}
	for (i = 0; i < rn->nram; i++) {
		r = ram_slot_flags(rn, i, KVM_MEM_LOG_DIRTY_PAGES);
		if (r < 0)
			break;
	}
	if (r < 0) {
		bh_err("dirty log: KVM_SET_USER_MEMORY_REGION of RAM slot %u "
		       "with KVM_MEM_LOG_DIRTY_PAGES: %s",
		       i, strerror(-r));
		while (i-- > 0)
			(void)ram_slot_flags(rn, i, 0);
		kvm_dirty_free(rn);
		return r;
	}
	rn->dirty = map;
	rn->dirty_bytes = bytes;
	return 0;
}

void runner_kvm_dirty_stop(struct runner *rn)
{
	if (!rn->dirty)
		return;
	for (unsigned int i = 0; i < rn->nram; i++) {
		int r = ram_slot_flags(rn, i, 0);

		/* KVM then logs on in vain; nothing reads it. */
		if (r < 0)
			bh_warn("dirty log: RAM slot %u stays logged: %s", i,
				strerror(-r));
	}
	kvm_dirty_free(rn);
	bh_dirty_unmap(rn->dirty, rn->dirty_bytes);
	rn->dirty = NULL;
	rn->dirty_bytes = 0;
}

int runner_kvm_dirty_sync(struct runner *rn, uint64_t *pages)
{
	uint64_t n = 0;

	if (!rn->dirty)
		return -ENODATA;
	for (unsigned int i = 0; i < rn->nram; i++) {
		struct kvm_dirty_log log = { .slot = i };

		log.dirty_bitmap = rn->kvm_dirty[i];
		if (ioctl(rn->vm, KVM_GET_DIRTY_LOG, &log) < 0) {
			int r = -errno;

			bh_err("dirty log: KVM_GET_DIRTY_LOG of RAM slot %u: "
			       "%s",
			       i, strerror(-r));
			return r;
		}
		n += bh_dirty_fold(rn->dirty, rn->dirty_bytes / 8,
				   rn->kvm_dirty[i],
				   rn->ram_len[i] / BH_DIRTY_PAGE,
				   rn->ram_off[i] / BH_DIRTY_PAGE);
	}
	*pages = n;
	return 0;
}

static void seg_from_msg(struct kvm_segment *s, const Bh__Segment *m)
{
	memset(s, 0, sizeof(*s));
	if (!m)
		return;
	s->base = m->base_addr;
	s->limit = m->limit;
	s->selector = (uint16_t)m->selector;
	s->type = (uint8_t)m->type;
	s->present = m->present;
	s->dpl = (uint8_t)m->dpl;
	s->db = m->db;
	s->s = m->s;
	s->l = m->l;
	s->g = m->g;
	s->avl = m->avl;
}

static int vcpu_set_boot_state(struct bh_vcpu *v, const Bh__VcpuState *b)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_fpu fpu;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	seg_from_msg(&sregs.cs, b->cs);
	seg_from_msg(&sregs.ds, b->ds);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	seg_from_msg(&sregs.tr, b->tr);
	sregs.gdt.base = b->gdt_base;
	sregs.gdt.limit = (uint16_t)b->gdt_limit;
	sregs.idt.base = b->idt_base;
	sregs.idt.limit = (uint16_t)b->idt_limit;
	sregs.cr0 = b->cr0;
	sregs.cr3 = b->cr3;
	sregs.cr4 = b->cr4;
	sregs.efer = b->efer;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rip = b->rip;
	regs.rsp = b->rsp;
	regs.rbp = b->rbp;
	regs.rsi = b->rsi;
	regs.rflags = b->rflags ? b->rflags : 0x2;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	return 0;
}

static int vcpu_set_msrs(struct bh_vcpu *v)
{
	/* struct kvm_msrs ends in a flexible array: give it room for two. */
	union {
		struct kvm_msrs hdr;
		uint8_t bytes[sizeof(struct kvm_msrs) +
			      2 * sizeof(struct kvm_msr_entry)];
	} m;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 2;
	m.hdr.entries[0].index = MSR_IA32_MISC_ENABLE;
	m.hdr.entries[0].data = 1; /* fast strings */
	/* Without enabled MTRRs Linux would treat all RAM as uncached. */
	m.hdr.entries[1].index = MSR_MTRR_DEF_TYPE;
	m.hdr.entries[1].data = MTRR_ENABLE | MTRR_TYPE_WB;
	if (ioctl(v->fd, KVM_SET_MSRS, &m) != 2)
		return -EIO;
	return 0;
}

static void lapic_set_mode(struct kvm_lapic_state *l, unsigned int reg,
			   uint32_t mode)
{
	uint32_t val;

	memcpy(&val, &l->regs[reg], 4);
	val = (val & ~0x700u) | (mode << 8);
	memcpy(&l->regs[reg], &val, 4);
}

static int vcpu_set_lint(struct bh_vcpu *v)
{
	struct kvm_lapic_state l;

	if (ioctl(v->fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	/* LINT0 carries the legacy PIC, LINT1 the NMI, as on a PC. */
	lapic_set_mode(&l, APIC_LVT0, APIC_MODE_EXTINT);
	lapic_set_mode(&l, APIC_LVT1, APIC_MODE_NMI);
	if (ioctl(v->fd, KVM_SET_LAPIC, &l) < 0)
		return -errno;
	return 0;
}

int runner_vcpus_create(struct runner *rn, unsigned int nvcpus,
			const Bh__VcpuState *boot)
{
	size_t csize = sizeof(*rn->cpuid) +
		       rn->cpuid->nent * sizeof(rn->cpuid->entries[0]);
	struct kvm_cpuid2 *c;
	int r = 0;

	rn->vcpus = calloc(nvcpus, sizeof(*rn->vcpus));
	c = malloc(csize);
	if (!rn->vcpus || !c) {
		free(c);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < nvcpus; i++) {
		struct bh_vcpu *v = &rn->vcpus[i];
		const char *step;

		v->rn = rn;
		v->id = i;
		v->fd = ioctl(rn->vm, KVM_CREATE_VCPU, (unsigned long)i);
		if (v->fd < 0) {
			step = "KVM_CREATE_VCPU";
			r = -errno;
			goto fail;
		}
		rn->nvcpus = i + 1;
		v->run = mmap(NULL, rn->run_size, PROT_READ | PROT_WRITE,
			      MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED) {
			v->run = NULL;
			step = "mmap kvm_run";
			r = -errno;
			goto fail;
		}
		memcpy(c, rn->cpuid, csize);
		bh_cpuid_patch(c, i, nvcpus);
		step = "KVM_SET_CPUID2";
		if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
			r = -errno;
			goto fail;
		}
		step = "KVM_SET_MSRS";
		r = vcpu_set_msrs(v);
		if (r < 0)
			goto fail;
		step = "KVM_SET_LAPIC";
		r = vcpu_set_lint(v);
		if (r < 0)
			goto fail;
		if (i == 0) {
			step = "boot vCPU state";
			r = vcpu_set_boot_state(v, boot);
			if (r < 0)
				goto fail;
		}
		continue;
	fail:
		bh_err("vCPU %u: %s: %s", i, step, strerror(-r));
		break;
	}
	free(c);
	return r;
}
