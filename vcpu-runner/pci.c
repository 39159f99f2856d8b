/* PCI host bridge behind configuration mechanism #1 (ports 0xcf8-0xcff). */
#include <errno.h>
#include <string.h>

#include "pci.h"
#include <bulkhead/le.h>

#define CFG_ENABLE 0x80000000u

void bh_pci_init(struct bh_pci *p)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	bh_put_le16(&p->host_bridge[0x00], 0x8086); /* vendor */
	bh_put_le16(&p->host_bridge[0x02], 0x0d57); /* device: host bridge */
	bh_put_le16(&p->host_bridge[0x04], 0x0006); /* memory + bus master */
	p->host_bridge[0x08] = 0;		    /* revision */
	p->host_bridge[0x0a] = 0x00;		    /* subclass: host bridge */
	p->host_bridge[0x0b] = 0x06;		    /* class: bridge */
	p->host_bridge[0x0e] = 0x00;		    /* header type 0 */
}

int bh_pci_register(struct bh_pci *p, unsigned int slot,
		    const struct bh_pci_fn_ops *ops, void *opaque)
{
	if (slot == 0 || slot >= BH_PCI_SLOTS || !ops)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	if (p->fn_ops[slot]) {
		pthread_mutex_unlock(&p->lock);
		return -EBUSY;
	}
	p->fn_ops[slot] = ops;
	p->fn_opaque[slot] = opaque;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

void bh_pci_unregister(struct bh_pci *p, unsigned int slot)
{
	if (slot == 0 || slot >= BH_PCI_SLOTS)
		return;
	pthread_mutex_lock(&p->lock);
	p->fn_ops[slot] = NULL;
	p->fn_opaque[slot] = NULL;
	pthread_mutex_unlock(&p->lock);
}

/* Decodes the address register: 0 and the slot and register of an enabled
 * bus-0 function-0 access, else -1. */
static int pci_selected(const struct bh_pci *p, unsigned int *slot,
			unsigned int *reg)
{
	uint32_t a = p->config_address;
	unsigned int bus = (a >> 16) & 0xff, dev = (a >> 11) & 0x1f;
	unsigned int fn = (a >> 8) & 0x7;

	if (!(a & CFG_ENABLE) || bus || fn)
		return -1;
	if (dev && !p->fn_ops[dev])
		return -1;
	*slot = dev;
	*reg = a & 0xfc;
	return 0;
}

uint32_t bh_pci_read(struct bh_pci *p, unsigned int off, unsigned int size)
{
	uint32_t val = 0xffffffffu;
	unsigned int slot, reg;

	if (size != 1 && size != 2 && size != 4)
		return val;
	pthread_mutex_lock(&p->lock);
	if (off < 4) {
		/* Only whole-dword accesses reach the address register. */
		if (off == 0 && size == 4)
			val = p->config_address;
	} else if (pci_selected(p, &slot, &reg) == 0) {
		reg += off - 4;
		if (reg + size > 256 || (reg & 3) + size > 4) {
			/* an access crossing a dword: floats high */
		} else if (slot) {
			val = p->fn_ops[slot]->cfg_read(p->fn_opaque[slot], reg,
							size);
		} else {
			val = 0;
			for (unsigned int i = 0; i < size; i++)
				val |= (uint32_t)p->host_bridge[reg + i]
				       << (8 * i);
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (size < 4)
		val &= (1u << (8 * size)) - 1;
	return val;
}

void bh_pci_write(struct bh_pci *p, unsigned int off, unsigned int size,
		  uint32_t val)
{
	unsigned int slot, reg;

	pthread_mutex_lock(&p->lock);
	if (off == 0 && size == 4) {
		p->config_address = val;
	} else if (off >= 4 && (size == 1 || size == 2 || size == 4) &&
		   pci_selected(p, &slot, &reg) == 0 && slot) {
		reg += off - 4;
		/* The host bridge has nothing writable that matters to a
		 * guest; devices get every well-formed write. */
		if (reg + size <= 256 && (reg & 3) + size <= 4)
			p->fn_ops[slot]->cfg_write(p->fn_opaque[slot], reg,
						   size, val);
	}
	pthread_mutex_unlock(&p->lock);
}

void bh_pci_save(struct bh_pci *p, Bh__PciHostState *s)
{
	bh__pci_host_state__init(s);
	pthread_mutex_lock(&p->lock);
	s->config_address = p->config_address;
	pthread_mutex_unlock(&p->lock);
}

/* Any value is one the guest may write. */
void bh_pci_restore(struct bh_pci *p, const Bh__PciHostState *s)
{
	pthread_mutex_lock(&p->lock);
	p->config_address = s->config_address;
	pthread_mutex_unlock(&p->lock);
}
