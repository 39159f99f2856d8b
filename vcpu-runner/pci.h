/* PCI configuration mechanism #1 with a host bridge at 00:00.0. */
#ifndef BH_RUNNER_PCI_H
#define BH_RUNNER_PCI_H

#include <pthread.h>
#include <stdint.h>

#include "proto/state.pb-c.h"

#define BH_PCI_SLOTS 32

/* A PCI function behind the host bridge: its configuration space. reg is
 * the byte offset (0-255), size 1, 2 or 4, never crossing a dword. */
struct bh_pci_fn_ops {
	uint32_t (*cfg_read)(void *opaque, unsigned int reg, unsigned int size);
	void (*cfg_write)(void *opaque, unsigned int reg, unsigned int size,
			  uint32_t val);
};

struct bh_pci {
	pthread_mutex_t lock;
	uint32_t config_address; /* last value written to 0xcf8 */
	uint8_t host_bridge[256];
	const struct bh_pci_fn_ops *fn_ops[BH_PCI_SLOTS];
	void *fn_opaque[BH_PCI_SLOTS];
};

void bh_pci_init(struct bh_pci *p);
/* Puts a single-function device at 00:slot.0 (slot 1-31). 0, -EINVAL or
 * -EBUSY. */
int bh_pci_register(struct bh_pci *p, unsigned int slot,
		    const struct bh_pci_fn_ops *ops, void *opaque);
/* Takes the function at 00:slot.0 off the bus. Once it returns no vCPU is
 * inside the function's callbacks (they run under the bus lock) or will
 * enter them. */
void bh_pci_unregister(struct bh_pci *p, unsigned int slot);
/* Port offsets relative to 0xcf8: 0-3 address, 4-7 data; size 1, 2 or 4. */
uint32_t bh_pci_read(struct bh_pci *p, unsigned int off, unsigned int size);
void bh_pci_write(struct bh_pci *p, unsigned int off, unsigned int size,
		  uint32_t val);

/* Saved state (proto/state.proto): the address register. */
void bh_pci_save(struct bh_pci *p, Bh__PciHostState *s);
void bh_pci_restore(struct bh_pci *p, const Bh__PciHostState *s);

#endif
