/* The device types the controller knows, in the order their devices take
 * PCI slots at start-up: disks, rng, console, nets, vsock, pmems. */
#include <bulkhead/util.h>

#include "devtype.h"

const struct bh_dev_type *const bh_dev_types[] = {
	&bh_dev_blk, &bh_dev_rng,   &bh_dev_console,
	&bh_dev_net, &bh_dev_vsock, &bh_dev_pmem,
};
const size_t bh_dev_ntypes = BH_ARRAY_SIZE(bh_dev_types);
