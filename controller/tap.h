/* TAP queues for virtio-net: opened by name or taken as handed in, checked,
 * and configured on the host side, all in the controller; the net worker
 * only reads and writes the fds it is given. */
#ifndef BH_CONTROLLER_TAP_H
#define BH_CONTROLLER_TAP_H

#include <stddef.h>

#include "config.h"

/* The vnet header on every TAP read and write: struct
 * virtio_net_hdr_mrg_rxbuf, which virtio 1.x drivers always use. */
#define BH_TAP_VNET_HDR_LEN 12

/*
 * One TAP fd per queue pair of nc (num_queues / 2), each with IFF_TAP,
 * IFF_NO_PI and IFF_VNET_HDR (IFF_MULTI_QUEUE with more than one pair), the
 * vnet header size set to BH_TAP_VNET_HDR_LEN, close-on-exec and
 * non-blocking, in fds (room for BH_CONFIG_MAX_NET_PAIRS).
 * - tap=NAME: /dev/net/tun is opened once per pair and attached to NAME
 *   (created when it does not exist and we may). With ip= the host side's
 *   address and mask are set and the link brought up, which needs
 *   CAP_NET_ADMIN: done at start-up, before privileges drop.
 * - fd=[...]: each fd must be a TAP with those flags; it is duplicated
 *   (close-on-exec) and the caller's fd closed.
 * On failure, -errno with a message beginning "--net" that names the TAP or
 * fd and the problem in err, and nothing left open.
 */
int bh_tap_open(const struct bh_net_config *nc, int *fds, char *err,
		size_t errlen);

/* Queue pairs of nc: the fds bh_tap_open fills. */
unsigned int bh_tap_pairs(const struct bh_net_config *nc);

#endif
