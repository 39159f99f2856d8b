/*
 * Fuzz target: the virtio-net worker's parsers of guest bytes
 * (device-workers/net/net_ctrl.c), the control commands and the transmit
 * header check, with no process around them.
 *
 * Input: bytes 0-7 = negotiated features (little-endian), byte 8 = mode
 * (bit 0: a transmit chain, else a control command) and, for commands, the
 * pairs offered (bits 1-3), byte 9 = for a transmit chain, the writable
 * buffers it has (0 or 1) and the length of its pieces (bits 1-7, 0 for
 * one piece); the rest is the chain's readable bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <linux/virtio_net.h>

#include "net_ctrl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_IOV 64

static void fuzz_tx(const uint8_t *data, size_t size, uint64_t features,
		    uint8_t shape)
{
	struct iovec iov[FUZZ_MAX_IOV];
	size_t piece = shape >> 1, off = 0;
	unsigned int n = 0;
	uint8_t hdr[NET_HDR_LEN];
	int r;

	/* The header may straddle buffers, as a guest may split it. */
	while (off < size && n < FUZZ_MAX_IOV) {
		size_t l = piece && piece < size - off ? piece : size - off;

		if (n == FUZZ_MAX_IOV - 1)
			l = size - off;
		iov[n].iov_base = (void *)(data + off);
		iov[n].iov_len = l;
		off += l;
		n++;
	}
	memset(hdr, 0, sizeof(hdr));
	if (net_iov_peek(iov, n, hdr, sizeof(hdr)) !=
	    (size < NET_HDR_LEN ? size : NET_HDR_LEN))
		abort();
	if (size >= NET_HDR_LEN && memcmp(hdr, data, NET_HDR_LEN) != 0)
		abort();
	r = net_tx_check(hdr, size, shape & 1, features);
	/* What passes is a frame the TAP may be handed. */
	if (r == 0 && (size < NET_HDR_LEN ||
		       size - NET_HDR_LEN > NET_MAX_FRAME || (shape & 1)))
		abort();
}

static void fuzz_ctrl(const uint8_t *data, size_t size, uint64_t features,
		      unsigned int max_pairs)
{
	struct net_ctrl_cmd cmd;

	net_ctrl_parse(data, size, features, max_pairs, &cmd);
	if (cmd.ack != VIRTIO_NET_OK && cmd.ack != VIRTIO_NET_ERR)
		abort();
	if (cmd.ack == VIRTIO_NET_ERR && cmd.action != NET_CTRL_NONE)
		abort();
	if (cmd.action == NET_CTRL_SET_PAIRS &&
	    (cmd.pairs < 1 || cmd.pairs > max_pairs))
		abort();
	if (cmd.action == NET_CTRL_SET_OFFLOADS && (cmd.offloads & ~features))
		abort();
	(void)net_tun_offloads(cmd.offloads);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t features = 0;
	uint8_t mode, shape;
	uint8_t *copy;

	if (size < 10)
		return 0;
	for (unsigned int i = 0; i < 8; i++)
		features |= (uint64_t)data[i] << (8 * i);
	mode = data[8];
	shape = data[9];
	data += 10;
	size -= 10;
	/* A copy of exactly the input's size, so that a read past it is
	 * seen by the sanitizer. */
	copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	if (mode & 1)
		fuzz_tx(copy, size, features, shape);
	else
		fuzz_ctrl(copy, size, features, (mode >> 1) & 7);
	(void)net_tun_offloads(features);
	free(copy);
	return 0;
}
