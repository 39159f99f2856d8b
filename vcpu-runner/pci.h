/* PCI configuration mechanism #1 with a host bridge at 00:00.0. */
#ifndef BH_RUNNER_PCI_H
#define BH_RUNNER_PCI_H

#include <pthread.h>
#include <stdint.h>

struct bh_pci {
	pthread_mutex_t lock;
	uint32_t config_address; /* last value written to 0xcf8 */
	uint8_t host_bridge[256];
};

void bh_pci_init(struct bh_pci *p);
/* Port offsets relative to 0xcf8: 0-3 address, 4-7 data; size 1, 2 or 4. */
uint32_t bh_pci_read(struct bh_pci *p, unsigned int off, unsigned int size);
void bh_pci_write(struct bh_pci *p, unsigned int off, unsigned int size,
		  uint32_t val);

#endif
