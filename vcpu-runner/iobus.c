/* Port-I/O dispatch from a vCPU exit to the device that owns the port. */
#include <errno.h>
#include <stddef.h>

#include "iobus.h"

int bh_iobus_add(struct bh_iobus *bus, const struct bh_io_range *range)
{
	unsigned int end = (unsigned int)range->base + range->len;

	if (!range->len || end > 0x10000)
		return -EINVAL;
	for (unsigned int i = 0; i < bus->n; i++) {
		const struct bh_io_range *r = &bus->r[i];

		if (range->base < r->base + r->len && r->base < end)
			return -EEXIST;
	}
	if (bus->n == BH_IOBUS_MAX)
		return -ENOSPC;
	bus->r[bus->n++] = *range;
	return 0;
}

const struct bh_io_range *bh_iobus_find(const struct bh_iobus *bus,
					uint16_t port, unsigned int size)
{
	unsigned int end = (unsigned int)port + size;

	for (unsigned int i = 0; i < bus->n; i++) {
		const struct bh_io_range *r = &bus->r[i];

		if (port >= r->base && end <= (unsigned int)r->base + r->len)
			return r;
	}
	return NULL;
}

const struct bh_io_range *bh_iobus_read(const struct bh_iobus *bus,
					uint16_t port, unsigned int size,
					uint32_t *val)
{
	const struct bh_io_range *r = bh_iobus_find(bus, port, size);

	*val = 0xffffffffu;
	if (r && r->read)
		*val = r->read(r->opaque, port - r->base, size);
	if (size < 4)
		*val &= (1u << (8 * size)) - 1;
	return r;
}

const struct bh_io_range *bh_iobus_write(const struct bh_iobus *bus,
					 uint16_t port, unsigned int size,
					 uint32_t val)
{
	const struct bh_io_range *r = bh_iobus_find(bus, port, size);

	if (r && r->write)
		r->write(r->opaque, port - r->base, size, val);
	return r;
}
