/* The port-I/O bus: which device answers which port range. */
#ifndef BH_RUNNER_IOBUS_H
#define BH_RUNNER_IOBUS_H

#include <stdint.h>

#define BH_IOBUS_MAX 16

/* off is relative to the range's base; size is 1, 2 or 4. */
typedef uint32_t (*bh_io_read_fn)(void *opaque, unsigned int off,
				  unsigned int size);
typedef void (*bh_io_write_fn)(void *opaque, unsigned int off,
			       unsigned int size, uint32_t val);

struct bh_io_range {
	uint16_t base;
	uint16_t len;
	const char *name;
	bh_io_read_fn read;
	bh_io_write_fn write;
	void *opaque;
};

struct bh_iobus {
	unsigned int n;
	struct bh_io_range r[BH_IOBUS_MAX];
};

/* -EEXIST if it overlaps a registered range, -ENOSPC if full. */
int bh_iobus_add(struct bh_iobus *bus, const struct bh_io_range *range);
/* The range holding [port, port + size), or NULL. */
const struct bh_io_range *bh_iobus_find(const struct bh_iobus *bus,
					uint16_t port, unsigned int size);
/* Unclaimed reads return all ones, unclaimed writes are dropped; returns
 * the range used or NULL. */
const struct bh_io_range *bh_iobus_read(const struct bh_iobus *bus,
					uint16_t port, unsigned int size,
					uint32_t *val);
const struct bh_io_range *bh_iobus_write(const struct bh_iobus *bus,
					 uint16_t port, unsigned int size,
					 uint32_t val);

#endif
