/* net/net_ctrl: parsing of virtio-net control commands and transmit
 * headers, pure functions over guest-controlled bytes (see net_ctrl.h). */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include <linux/if_tun.h>
#include <linux/virtio_net.h>

#include "net_ctrl.h"

/* The guest offloads a driver may switch with GUEST_OFFLOADS_SET. */
#define NET_GUEST_OFFLOADS                                       \
	(NET_BIT(NET_F_GUEST_CSUM) | NET_BIT(NET_F_GUEST_TSO4) | \
	 NET_BIT(NET_F_GUEST_TSO6) | NET_BIT(NET_F_GUEST_ECN) |  \
	 NET_BIT(NET_F_GUEST_UFO))

size_t net_iov_peek(const struct iovec *iov, unsigned int n, void *buf,
		    size_t len)
{
	uint8_t *p = buf;
	size_t done = 0;

	for (unsigned int i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (l > len - done)
			l = len - done;
		memcpy(p + done, iov[i].iov_base, l);
		done += l;
	}
	return done;
}

unsigned int net_tun_offloads(uint64_t features)
{
	unsigned int off = 0;

	/* Segments without checksum offload would reach the guest with
	 * checksums it cannot trust. */
	if (!(features & NET_BIT(NET_F_GUEST_CSUM)))
		return 0;
	off |= TUN_F_CSUM;
	if (features & NET_BIT(NET_F_GUEST_TSO4))
		off |= TUN_F_TSO4;
	if (features & NET_BIT(NET_F_GUEST_TSO6))
		off |= TUN_F_TSO6;
	if ((features & NET_BIT(NET_F_GUEST_ECN)) &&
	    (off & (TUN_F_TSO4 | TUN_F_TSO6)))
		off |= TUN_F_TSO_ECN;
	return off;
}

static uint16_t le16_at(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

int net_tx_check(const uint8_t *hdr, uint64_t out_len, unsigned int n_in,
		 uint64_t features)
{
	uint64_t frame;
	uint8_t gso;

	if (n_in != 0 || out_len < NET_HDR_LEN)
		return -EINVAL;
	frame = out_len - NET_HDR_LEN;
	if (frame > NET_MAX_FRAME)
		return -EINVAL;
	if (hdr[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		/* csum_start and csum_offset are guest-controlled: the
		 * 16-bit checksum they name must lie inside the frame. */
		uint32_t at = (uint32_t)le16_at(hdr + 6) + le16_at(hdr + 8);

		if (!(features & NET_BIT(NET_F_CSUM)) || at + 2 > frame)
			return -EINVAL;
	}
	gso = hdr[1];
	if (gso == VIRTIO_NET_HDR_GSO_NONE)
		return 0;
	/* gso_size: segments of no bytes would never end. */
	if (le16_at(hdr + 4) == 0)
		return -EINVAL;
	if ((gso & VIRTIO_NET_HDR_GSO_ECN) &&
	    !(features & NET_BIT(NET_F_HOST_ECN)))
		return -EINVAL;
	switch (gso & ~VIRTIO_NET_HDR_GSO_ECN) {
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return features & NET_BIT(NET_F_HOST_TSO4) ? 0 : -EINVAL;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return features & NET_BIT(NET_F_HOST_TSO6) ? 0 : -EINVAL;
	default: /* UFO is not offered */
		return -EINVAL;
	}
}

static void ctrl_mq(const uint8_t *data, size_t len, uint8_t cmd,
		    uint64_t features, unsigned int max_pairs,
		    struct net_ctrl_cmd *out)
{
	unsigned int pairs;

	if (!(features & NET_BIT(NET_F_MQ)) ||
	    cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || len != 2)
		return;
	pairs = le16_at(data);
	if (pairs < 1 || pairs > max_pairs)
		return;
	out->ack = VIRTIO_NET_OK;
	out->action = NET_CTRL_SET_PAIRS;
	out->pairs = pairs;
}

/* A MAC table: le32 entries, then 6 bytes each; *used gets its size. */
static int mac_table(const uint8_t *data, size_t len, size_t *used)
{
	uint32_t entries;

	if (len < 4)
		return -EINVAL;
	entries = (uint32_t)data[0] | (uint32_t)data[1] << 8 |
		  (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
	/* entries is guest-controlled: compare without multiplying it. */
	if (entries > (len - 4) / 6)
		return -EINVAL;
	*used = 4 + (size_t)entries * 6;
	return 0;
}

static void ctrl_mac(const uint8_t *data, size_t len, uint8_t cmd,
		     uint64_t features, struct net_ctrl_cmd *out)
{
	size_t uc, mc;

	if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET) {
		if (!(features & NET_BIT(NET_F_CTRL_MAC_ADDR)) || len != 6)
			return;
		memcpy(out->mac, data, 6);
		out->ack = VIRTIO_NET_OK;
		out->action = NET_CTRL_SET_MAC;
		return;
	}
	/* The TAP does no filtering: a valid table is accepted as is. */
	if (cmd != VIRTIO_NET_CTRL_MAC_TABLE_SET ||
	    !(features & NET_BIT(NET_F_CTRL_RX)))
		return;
	if (mac_table(data, len, &uc) < 0 ||
	    mac_table(data + uc, len - uc, &mc) < 0 || uc + mc != len)
		return;
	out->ack = VIRTIO_NET_OK;
}

void net_ctrl_parse(const uint8_t *cmd, size_t len, uint64_t features,
		    unsigned int max_pairs, struct net_ctrl_cmd *out)
{
	const uint8_t *data = cmd + 2;
	uint64_t offloads;

	memset(out, 0, sizeof(*out));
	out->ack = VIRTIO_NET_ERR;
	out->action = NET_CTRL_NONE;
	if (len < 2)
		return;
	len -= 2;
	switch (cmd[0]) {
	case VIRTIO_NET_CTRL_RX:
		/* Promiscuous and all-multicast are what a TAP does anyway. */
		if (!(features & NET_BIT(NET_F_CTRL_RX)) || len != 1 ||
		    (cmd[1] != VIRTIO_NET_CTRL_RX_PROMISC &&
		     cmd[1] != VIRTIO_NET_CTRL_RX_ALLMULTI))
			return;
		out->ack = VIRTIO_NET_OK;
		return;
	case VIRTIO_NET_CTRL_MAC:
		ctrl_mac(data, len, cmd[1], features, out);
		return;
	case VIRTIO_NET_CTRL_MQ:
		ctrl_mq(data, len, cmd[1], features, max_pairs, out);
		return;
	case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
		if (!(features & NET_BIT(NET_F_CTRL_GUEST_OFFLOADS)) ||
		    cmd[1] != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET || len != 8)
			return;
		memcpy(&offloads, data, 8);
		offloads = le64toh(offloads);
		/* Only offloads that were negotiated may be switched on. */
		if (offloads & ~(features & NET_GUEST_OFFLOADS))
			return;
		out->ack = VIRTIO_NET_OK;
		out->action = NET_CTRL_SET_OFFLOADS;
		out->offloads = offloads;
		return;
	default:
		return;
	}
}
