/* The virtio-pci (modern, 1.x) transport of one device: PCI configuration,
 * BAR0 with common/ISR/device/notify regions and MSI-X. The device itself
 * lives in a worker process; queue kicks and interrupts bypass the runner
 * through ioeventfd and irqfd. */
#ifndef BH_RUNNER_VIRTIO_PCI_H
#define BH_RUNNER_VIRTIO_PCI_H

#include <pthread.h>
#include <stdint.h>

#include <bulkhead/limits.h>

#include "proto/state.pb-c.h"

#define BH_VPCI_MAX_VECTORS (BH_MAX_QUEUES + 1)
#define BH_VPCI_BAR_SIZE    0x8000
#define BH_VPCI_NO_VECTOR   0xffff

struct runner;

struct bh_vpci_queue {
	uint16_t size;	 /* guest-controlled, checked by the worker */
	uint16_t vector; /* guest-controlled */
	uint16_t enable;
	uint64_t desc, avail, used; /* guest-controlled */
	int kick_fd;		    /* owned */
	int call_fd;		    /* owned */
	int irqfd_gsi;		    /* -1: no irqfd registered */
};

struct bh_vpci_msix {
	uint32_t addr_lo, addr_hi, data, ctrl; /* guest-controlled */
};

struct bh_vpci {
	struct runner *rn;
	pthread_mutex_t lock;
	/* Held by a vCPU from before it takes lock until what it sends to the
	 * controller is sent (never lock across the send): the device's
	 * messages stay in order. */
	pthread_mutex_t out_lock;
	uint32_t index; /* the controller's device number */
	uint32_t type;	/* virtio device id */
	uint32_t slot;	/* PCI device number on bus 0 */
	char id[64];

	uint64_t dev_features, drv_features;
	uint32_t dfsel, gfsel;
	uint16_t nq, max_qsize, qsel, msix_config;
	uint8_t status, cfg_gen, isr;
	int activated, reset_pending, needs_reset;
	struct bh_vpci_queue q[BH_MAX_QUEUES];
	uint8_t config[BH_VIRTIO_CONFIG_MAX];
	uint32_t config_len;

	uint8_t pcicfg[256];
	uint32_t bar_lo, bar_hi;
	uint16_t command;
	uint16_t msix_ctrl;
	unsigned int nvec;
	struct bh_vpci_msix msix[BH_VPCI_MAX_VECTORS];
	uint64_t notify_base; /* where the ioeventfds sit, 0: nowhere */
	unsigned int gsi_base;
};

/*
 * Creates the transport for a device described by the controller; takes
 * ownership of the 2 * nq eventfds (kicks, then calls) even on failure.
 * Registers it on the PCI bus and its queue kicks as ioeventfds.
 */
int bh_vpci_create(struct runner *rn, uint32_t index, uint32_t type,
		   uint32_t slot, uint64_t features, unsigned int nq,
		   unsigned int max_qsize, const uint8_t *config,
		   size_t config_len, const char *id, const int *fds,
		   struct bh_vpci **out);

/*
 * Hot removal, on the main thread, in this order: bh_vpci_unpublish takes
 * the device off the PCI bus and out of the device table; once no vCPU
 * thread can be inside its handlers any more (runner_vcpus_quiesce),
 * bh_vpci_destroy unregisters its ioeventfds and irqfds, closes its
 * eventfds and frees it. Its MSI routes go with the next
 * bh_vpci_update_routing, which no longer finds it.
 */
void bh_vpci_unpublish(struct bh_vpci *d);
void bh_vpci_destroy(struct bh_vpci *d);

/* A guest access to BAR0 at off (0 <= off < BH_VPCI_BAR_SIZE). */
void bh_vpci_mmio(struct bh_vpci *d, uint64_t off, uint8_t *data,
		  unsigned int len, int is_write);
/* Whether gpa lies in the device's BAR0 while memory decoding is on; sets
 * *off. */
int bh_vpci_claims(struct bh_vpci *d, uint64_t gpa, uint64_t *off);

/* From the controller, on the main thread. */
void bh_vpci_reset_done(struct bh_vpci *d);
void bh_vpci_config_update(struct bh_vpci *d, const uint8_t *config, size_t len,
			   int notify);
void bh_vpci_needs_reset(struct bh_vpci *d, const char *reason);

/*
 * Saved state (proto/state.proto). bh_vpci_save fills s with arrays from
 * buf, which must outlive s; a reset the worker has not confirmed yet is
 * saved as done (status 0: the restored device starts reset).
 * bh_vpci_restore puts s into d, a transport just made for the same device
 * (slot, type, features and queue count must match: -EINVAL, d unchanged,
 * for those or any field the model cannot hold), then places its kick
 * ioeventfds and, for an activated device, its queues' irqfds; the caller
 * rebuilds the routing once every device is in (bh_vpci_update_routing).
 */
struct bh_vpci_state_buf {
	Bh__VirtioPciQueueState q[BH_MAX_QUEUES];
	Bh__VirtioPciQueueState *qp[BH_MAX_QUEUES];
	Bh__MsixEntryState m[BH_VPCI_MAX_VECTORS];
	Bh__MsixEntryState *mp[BH_VPCI_MAX_VECTORS];
};
void bh_vpci_save(struct bh_vpci *d, Bh__VirtioPciState *s,
		  struct bh_vpci_state_buf *buf);
int bh_vpci_restore(struct bh_vpci *d, const Bh__VirtioPciState *s);

/* After a restore: a device the driver had activated is announced to the
 * controller (VIRTIO_ACTIVATE), whose worker then takes up its rings. */
void bh_vpci_announce(struct bh_vpci *d);

/* Rebuilds KVM's GSI routing from every device's MSI-X table. */
int bh_vpci_update_routing(struct runner *rn);

#endif
