/* The PCI hotplug register block the DSDT's PHPR device reads (platform.h
 * has its address and layout) and the event that tells the guest to. */
#ifndef BH_RUNNER_HOTPLUG_H
#define BH_RUNNER_HOTPLUG_H

#include <pthread.h>
#include <stdint.h>

struct bh_hotplug_ops {
	/* Pulse the generic event device's interrupt. */
	void (*fire)(void *opaque);
	/* The guest ejected slots that were asked to go; called on the vCPU
	 * thread that wrote B0EJ, without the block's lock: only a wake-up
	 * of the main thread, which takes them with bh_hotplug_take_ejected.
	 */
	void (*ejected)(void *opaque);
};

struct bh_hotplug {
	pthread_mutex_t lock;
	uint32_t pciu;	     /* slots added, until the guest reads PCIU */
	uint32_t pcid;	     /* slots to eject, until the guest reads PCID */
	uint32_t gdat;	     /* event bits, until the guest reads GDAT */
	uint32_t pseg;	     /* guest-controlled */
	uint32_t removing;   /* asked to go, not yet ejected by the guest */
	uint32_t ejected;    /* ejected, not yet taken by the main thread */
	uint64_t bad_ejects; /* B0EJ writes naming a slot not asked to go */
	uint64_t bad_access; /* accesses of another width or alignment */
	const struct bh_hotplug_ops *ops;
	void *opaque;
};

void bh_hotplug_init(struct bh_hotplug *h, const struct bh_hotplug_ops *ops,
		     void *opaque);
void bh_hotplug_destroy(struct bh_hotplug *h);

/* A function now answers at slot (1-31): PCIU gets its bit and the guest
 * the event. -EINVAL for another slot. */
int bh_hotplug_add(struct bh_hotplug *h, unsigned int slot);
/* Asks the guest to let slot go: PCID gets its bit and the guest the event.
 * Asking again for a slot not yet ejected signals again. -EINVAL for
 * another slot. */
int bh_hotplug_remove(struct bh_hotplug *h, unsigned int slot);
/* Forgets a request to remove (the device went another way). */
void bh_hotplug_forget(struct bh_hotplug *h, unsigned int slot);
/* The slots the guest ejected since the last call, as a mask. */
uint32_t bh_hotplug_take_ejected(struct bh_hotplug *h);

/*
 * A guest access at off (0 <= off < BH_HOTPLUG_MMIO_SIZE) of len bytes
 * (guest-controlled, at most 8). Only aligned 32-bit accesses to a register
 * do anything; other reads return 0 and other writes are dropped.
 */
void bh_hotplug_mmio(struct bh_hotplug *h, uint64_t off, uint8_t *data,
		     unsigned int len, int is_write);

#endif
