/* net/net_ctrl: the virtio-net worker's pure parsers (control commands and
 * transmit headers), kept apart from any process state so that a fuzz
 * target can drive them. Every byte they read is guest-controlled. */
#ifndef BH_NET_CTRL_H
#define BH_NET_CTRL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Feature bits (virtio 1.x, 5.1.3). */
#define NET_F_CSUM		  0
#define NET_F_GUEST_CSUM	  1
#define NET_F_CTRL_GUEST_OFFLOADS 2
#define NET_F_MTU		  3
#define NET_F_MAC		  5
#define NET_F_GUEST_TSO4	  7
#define NET_F_GUEST_TSO6	  8
#define NET_F_GUEST_ECN		  9
#define NET_F_GUEST_UFO		  10
#define NET_F_HOST_TSO4		  11
#define NET_F_HOST_TSO6		  12
#define NET_F_HOST_ECN		  13
#define NET_F_MRG_RXBUF		  15
#define NET_F_STATUS		  16
#define NET_F_CTRL_VQ		  17
#define NET_F_CTRL_RX		  18
#define NET_F_MQ		  22
#define NET_F_CTRL_MAC_ADDR	  23

#define NET_BIT(f) (1ULL << (f))

/* struct virtio_net_hdr_mrg_rxbuf, the header with VERSION_1 whether or not
 * MRG_RXBUF is negotiated; the TAP fds carry it too. */
#define NET_HDR_LEN	    12u
#define NET_HDR_NUM_BUFFERS 10u /* offset of le16 num_buffers */
#define NET_MAX_PAIRS	    7u
/* The largest frame either way: 64 KiB of GSO payload and its headers. */
#define NET_MAX_FRAME 65550u

/* What a control command asks of the device once acknowledged. */
enum net_ctrl_action {
	NET_CTRL_NONE,
	NET_CTRL_SET_PAIRS,
	NET_CTRL_SET_MAC,
	NET_CTRL_SET_OFFLOADS,
};

struct net_ctrl_cmd {
	uint8_t ack; /* VIRTIO_NET_OK or VIRTIO_NET_ERR */
	enum net_ctrl_action action;
	unsigned int pairs; /* SET_PAIRS: 1..max_pairs */
	uint8_t mac[6];	    /* SET_MAC */
	uint64_t offloads;  /* SET_OFFLOADS: guest offload feature bits */
};

/*
 * Parses a control command: cmd holds the chain's readable bytes (class,
 * command, then the command's data), len of them. features are the
 * negotiated ones, max_pairs what the device offers. Fills out: anything
 * malformed, unknown or not negotiated is answered VIRTIO_NET_ERR with no
 * action. Never fails otherwise.
 */
void net_ctrl_parse(const uint8_t *cmd, size_t len, uint64_t features,
		    unsigned int max_pairs, struct net_ctrl_cmd *out);

/*
 * Checks a transmit chain (guest-controlled): its readable part of out_len
 * bytes, n_in writable buffers, and hdr, the first NET_HDR_LEN bytes of it
 * (valid only when out_len >= NET_HDR_LEN). features are the negotiated
 * ones. 0 if the frame may go to the TAP, or -EINVAL (drop it): a chain
 * with writable buffers, shorter than the header or with a frame over
 * NET_MAX_FRAME, a checksum or segmentation offload the driver did not
 * negotiate, or a checksum position outside the frame.
 */
int net_tx_check(const uint8_t *hdr, uint64_t out_len, unsigned int n_in,
		 uint64_t features);

/* Copies up to len bytes from the start of the iovecs into buf; returns how
 * many were there to copy. */
size_t net_iov_peek(const struct iovec *iov, unsigned int n, void *buf,
		    size_t len);

/* TUNSETOFFLOAD flags for the guest offloads in features (GUEST_* bits):
 * none without GUEST_CSUM. */
unsigned int net_tun_offloads(uint64_t features);

#endif
