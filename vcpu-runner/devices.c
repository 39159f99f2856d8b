/* The runner's device table over time: devices added before start or hot,
 * and hot removal once the guest has ejected them. Main thread only. */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/platform.h>

#include "runner.h"

/* The hotplug event: an edge on the generic event device's interrupt,
 * like the power button's. */
static void hotplug_fire(void *opaque)
{
	struct runner *rn = opaque;
	struct kvm_irq_level irq = { .irq = BH_IRQ_GED_HOTPLUG, .level = 1 };

	if (ioctl(rn->vm, KVM_IRQ_LINE, &irq) < 0) {
		bh_warn("hotplug event: %s", strerror(errno));
		return;
	}
	irq.level = 0;
	if (ioctl(rn->vm, KVM_IRQ_LINE, &irq) < 0)
		bh_warn("hotplug event: %s", strerror(errno));
}

/* A vCPU saw an eject: the main thread does the removal, since it must
 * wait for every vCPU to leave the device, the ejecting one included. */
static void hotplug_ejected(void *opaque)
{
	struct runner *rn = opaque;
	uint64_t one = 1;

	if (write(rn->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		bh_log_ratelimited(BH_LOG_WARN, "wake-up eventfd: %s",
				   strerror(errno));
}

const struct bh_hotplug_ops runner_hotplug_ops = {
	.fire = hotplug_fire,
	.ejected = hotplug_ejected,
};

int runner_device_remove(struct runner *rn, uint32_t index)
{
	Bh__RunnerDeviceRemoved done = BH__RUNNER_DEVICE_REMOVED__INIT;
	struct bh_vpci *d;
	uint32_t slot;

	if (index >= BH_MAX_DEVICES || !rn->vdevs[index])
		return -ENOENT;
	d = rn->vdevs[index];
	slot = d->slot;
	bh_vpci_unpublish(d);
	runner_vcpus_quiesce(rn);
	bh_vpci_destroy(d);
	/* Its memory, once no vCPU can be inside its BAR handlers either. */
	runner_devmem_remove(rn, index);
	/* Its MSI routes: the table is rebuilt without it. */
	bh_vpci_update_routing(rn);
	bh_hotplug_forget(&rn->hotplug, slot);
	rn->removed |= 1u << index;
	bh_info("device %u removed from 00:%02x.0", index, slot);
	done.index = index;
	done.pci_slot = slot;
	return runner_send(rn, BH__MSG_TYPE__MSG_RUNNER_DEVICE_REMOVED,
			   &done.base);
}

void runner_hotplug_reap(struct runner *rn)
{
	uint32_t ejected = bh_hotplug_take_ejected(&rn->hotplug);

	if (!ejected)
		return;
	for (uint32_t i = 0; i < BH_MAX_DEVICES; i++) {
		const struct bh_vpci *d = rn->vdevs[i];

		if (d && d->slot < 32 && (ejected & (1u << d->slot)) &&
		    runner_device_remove(rn, i) < 0)
			bh_err("device %u: cannot report its removal", i);
	}
}
