/* PCI hotplug registers (PCIU, PCID, B0EJ, PSEG, GDAT): what the runner
 * tells the guest's ACPI scan, and the ejects the guest reports back. */
#include <errno.h>
#include <string.h>

#include <bulkhead/log.h>
#include <bulkhead/platform.h>

#include "hotplug.h"
#include "pci.h"

void bh_hotplug_init(struct bh_hotplug *h, const struct bh_hotplug_ops *ops,
		     void *opaque)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
	h->ops = ops;
	h->opaque = opaque;
}

void bh_hotplug_destroy(struct bh_hotplug *h)
{
	pthread_mutex_destroy(&h->lock);
}

static int slot_ok(unsigned int slot)
{
	return slot > 0 && slot < BH_PCI_SLOTS;
}

int bh_hotplug_add(struct bh_hotplug *h, unsigned int slot)
{
	if (!slot_ok(slot))
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	h->pciu |= 1u << slot;
	h->pcid &= ~(1u << slot);
	h->gdat |= BH_GED_PCI_HOTPLUG;
	pthread_mutex_unlock(&h->lock);
	/* Fired after the bits are set: the guest's scan must find them. */
	h->ops->fire(h->opaque);
	return 0;
}

int bh_hotplug_remove(struct bh_hotplug *h, unsigned int slot)
{
	if (!slot_ok(slot))
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	/* An add the guest has not scanned yet is no longer news. */
	h->pciu &= ~(1u << slot);
	h->pcid |= 1u << slot;
	h->removing |= 1u << slot;
	h->gdat |= BH_GED_PCI_HOTPLUG;
	pthread_mutex_unlock(&h->lock);
	h->ops->fire(h->opaque);
	return 0;
}

void bh_hotplug_forget(struct bh_hotplug *h, unsigned int slot)
{
	if (!slot_ok(slot))
		return;
	pthread_mutex_lock(&h->lock);
	h->pciu &= ~(1u << slot);
	h->pcid &= ~(1u << slot);
	h->removing &= ~(1u << slot);
	h->ejected &= ~(1u << slot);
	pthread_mutex_unlock(&h->lock);
}

uint32_t bh_hotplug_take_ejected(struct bh_hotplug *h)
{
	uint32_t e;

	pthread_mutex_lock(&h->lock);
	e = h->ejected;
	h->ejected = 0;
	pthread_mutex_unlock(&h->lock);
	return e;
}

/* B0EJ: acted on only for slots the runner asked to remove, on segment 0.
 * Called with the lock held; returns whether there is news for the main
 * thread. */
static int eject(struct bh_hotplug *h, uint32_t mask /* guest-controlled */)
{
	uint32_t ok = h->pseg == 0 ? mask & h->removing : 0;

	if (mask & ~ok) {
		h->bad_ejects++;
		bh_log_ratelimited(BH_LOG_WARN,
				   "guest ejected PCI slots 0x%08x on segment "
				   "%u, not asked to: ignored",
				   mask & ~ok, h->pseg);
	}
	h->removing &= ~ok;
	h->ejected |= ok;
	return ok != 0;
}

void bh_hotplug_mmio(struct bh_hotplug *h, uint64_t off /* guest-controlled */,
		     uint8_t *data, unsigned int len /* guest-controlled */,
		     int is_write)
{
	uint32_t val = 0;
	int wake = 0;

	if (!is_write)
		memset(data, 0, len > 8 ? 8 : len);
	if (len != 4 || (off & 3) || off >= BH_HOTPLUG_REGS_LEN) {
		pthread_mutex_lock(&h->lock);
		h->bad_access++;
		pthread_mutex_unlock(&h->lock);
		return;
	}
	if (is_write)
		memcpy(&val, data, 4); /* x86: little-endian like the guest */
	pthread_mutex_lock(&h->lock);
	switch (off) {
	case BH_HOTPLUG_PCIU:
		if (!is_write) {
			val = h->pciu;
			h->pciu = 0;
		}
		break;
	case BH_HOTPLUG_PCID:
		if (!is_write) {
			val = h->pcid;
			h->pcid = 0;
		}
		break;
	case BH_HOTPLUG_B0EJ:
		if (is_write)
			wake = eject(h, val);
		else
			val = 0;
		break;
	case BH_HOTPLUG_PSEG:
		if (is_write)
			h->pseg = val;
		else
			val = h->pseg;
		break;
	case BH_HOTPLUG_GDAT:
		if (!is_write) {
			val = h->gdat;
			h->gdat = 0;
		}
		break;
	}
	pthread_mutex_unlock(&h->lock);
	if (!is_write)
		memcpy(data, &val, 4);
	if (wake)
		h->ops->ejected(h->opaque);
}
