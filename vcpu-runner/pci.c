/* PCI host bridge behind configuration mechanism #1 (ports 0xcf8-0xcff). */
#include <string.h>

#include "pci.h"

#define CFG_ENABLE 0x80000000u

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
}

void bh_pci_init(struct bh_pci *p)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	put16(&p->host_bridge[0x00], 0x8086); /* vendor */
	put16(&p->host_bridge[0x02], 0x0d57); /* device: host bridge */
	put16(&p->host_bridge[0x04], 0x0006); /* memory + bus master */
	p->host_bridge[0x08] = 0;	      /* revision */
	p->host_bridge[0x0a] = 0x00;	      /* subclass: host bridge */
	p->host_bridge[0x0b] = 0x06;	      /* class: bridge */
	p->host_bridge[0x0e] = 0x00;	      /* header type 0 */
}

/* Config space of the function the address register selects, or NULL. */
static uint8_t *pci_selected(struct bh_pci *p, unsigned int *reg)
{
	uint32_t a = p->config_address;
	unsigned int bus = (a >> 16) & 0xff, dev = (a >> 11) & 0x1f;
	unsigned int fn = (a >> 8) & 0x7;

	if (!(a & CFG_ENABLE) || bus || dev || fn)
		return NULL;
	*reg = a & 0xfc;
	return p->host_bridge;
}

uint32_t bh_pci_read(struct bh_pci *p, unsigned int off, unsigned int size)
{
	uint32_t val = 0xffffffffu;
	unsigned int reg;
	uint8_t *cfg;

	if (size != 1 && size != 2 && size != 4)
		return val;
	pthread_mutex_lock(&p->lock);
	if (off < 4) {
		/* Only whole-dword accesses reach the address register. */
		if (off == 0 && size == 4)
			val = p->config_address;
	} else if ((cfg = pci_selected(p, &reg))) {
		reg += off - 4;
		if (reg + size <= 256) {
			val = 0;
			for (unsigned int i = 0; i < size; i++)
				val |= (uint32_t)cfg[reg + i] << (8 * i);
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
	pthread_mutex_lock(&p->lock);
	if (off == 0 && size == 4)
		p->config_address = val;
	/* The host bridge has nothing writable that matters to a guest:
	 * BARs are absent and the command register is fixed. */
	pthread_mutex_unlock(&p->lock);
}
