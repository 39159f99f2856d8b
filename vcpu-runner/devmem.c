/* Device memory in the runner: files that devices bring into guest-physical
 * space (virtio-pmem's region), each mapped here and given a KVM memory slot
 * of its own while its device exists. Main thread only. */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/platform.h>
#include <bulkhead/util.h>

#include "guestmem.h"
#include "runner.h"

/* The guest sees the region in 2 MiB pieces (controller/config.h). */
#define DEVMEM_ALIGN (2ULL << 20)

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int runner_devmem_check(const struct runner *rn, uint32_t index, uint64_t gpa,
			uint64_t size)
{
	uint64_t end;

	/* From the controller, which the runner trusts to mean well but
	 * checks all the same: a slot over RAM or the hole would take it
	 * from the guest's view. */
	if (index >= BH_MAX_DEVICES || size == 0 ||
	    (gpa | size) % DEVMEM_ALIGN ||
	    __builtin_add_overflow(gpa, size, &end) || gpa < BH_MEM_4G ||
	    size > SIZE_MAX)
		return -EINVAL;
	for (unsigned int i = 0; i < rn->nram; i++)
		if (overlaps(gpa, size, rn->ram_gpa[i], rn->ram_len[i]))
			return -EINVAL;
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		const struct runner_devmem *m = &rn->devmem[i];

		if (m->addr &&
		    (i == index || overlaps(gpa, size, m->gpa, m->size)))
			return i == index ? -EBUSY : -EINVAL;
	}
	return 0;
}

int runner_devmem_add(struct runner *rn, uint32_t index,
		      const Bh__SharedRegion *r, int fd)
{
	struct runner_devmem *m;
	struct kvm_userspace_memory_region mr = { 0 };
	void *addr;
	int ret;

	ret = runner_devmem_check(rn, index, r->guest_phys, r->size);
	if (ret < 0) {
		bh_err("device %u: region of %llu bytes at 0x%llx refused",
		       index, (unsigned long long)r->size,
		       (unsigned long long)r->guest_phys);
		goto out;
	}
	/* Private: the guest's writes go to copies of the pages, never to
	 * the file (discard_writes, whose fd is read-only anyway). */
	addr = mmap(NULL, (size_t)r->size, PROT_READ | PROT_WRITE,
		    (r->private_ ? MAP_PRIVATE : MAP_SHARED) | MAP_NORESERVE,
		    fd, 0);
	if (addr == MAP_FAILED) {
		ret = -errno;
		bh_err("device %u: cannot map its region: %s", index,
		       strerror(-ret));
		goto out;
	}
	(void)bh_guestmem_advise(addr, (size_t)r->size);
	mr.slot = RUNNER_DEVMEM_SLOT0 + index;
	mr.guest_phys_addr = r->guest_phys;
	mr.memory_size = r->size;
	mr.userspace_addr = (uint64_t)(uintptr_t)addr;
	if (ioctl(rn->vm, KVM_SET_USER_MEMORY_REGION, &mr) < 0) {
		ret = -errno;
		bh_err("device %u: KVM_SET_USER_MEMORY_REGION: %s", index,
		       strerror(-ret));
		munmap(addr, (size_t)r->size);
		goto out;
	}
	m = &rn->devmem[index];
	m->addr = addr;
	m->gpa = r->guest_phys;
	m->size = r->size;
	bh_debug("device %u: %llu MiB of device memory at 0x%llx%s", index,
		 (unsigned long long)(r->size >> 20),
		 (unsigned long long)r->guest_phys,
		 r->private_ ? " (private)" : "");
out:
	close(fd);
	return ret;
}

void runner_devmem_remove(struct runner *rn, uint32_t index)
{
	struct runner_devmem *m;
	struct kvm_userspace_memory_region mr = { 0 };

	if (index >= BH_MAX_DEVICES || !rn->devmem[index].addr)
		return;
	m = &rn->devmem[index];
	/* Size 0 deletes the slot; KVM lets go of the pages before it
	 * returns, so the mapping can go next. */
	mr.slot = RUNNER_DEVMEM_SLOT0 + index;
	mr.guest_phys_addr = m->gpa;
	if (ioctl(rn->vm, KVM_SET_USER_MEMORY_REGION, &mr) < 0) {
		/* Left mapped: KVM may still reach it. */
		bh_err("device %u: cannot delete its memory slot: %s", index,
		       strerror(errno));
		return;
	}
	munmap(m->addr, (size_t)m->size);
	*m = (struct runner_devmem){ 0 };
}
