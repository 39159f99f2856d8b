/*
 * Fuzz target: the virtqueue walker (device-workers/lib/virtqueue.c) on
 * rings and guest RAM from the input (layout in fuzz_vq.h), with and without
 * in-flight records resumed from the input. Pops until the ring is empty or
 * the queue broken, touching both ends of every buffer it hands out, and
 * returns each chain.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bulkhead/log.h>

#include "fuzz_vq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	bh_log_init("fuzz-virtqueue");
	bh_log_set_level(BH_LOG_ERR);
	return 0;
}

static struct bh_vq_req req;
static struct fuzz_vq fv;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bh_vq vq;
	unsigned int i, n, rounds = 0;
	volatile uint8_t sum = 0;

	if (fuzz_vq_setup(&fv, &vq, data, size) < 0)
		goto out;
	/* Replays, then at most one ring's worth: bounded either way. */
	while (rounds++ < 4u * vq.size + 8u && bh_vq_pop(&vq, &req) == 1) {
		n = req.n_out + req.n_in;
		if (n > BH_VQ_MAX_IOV)
			abort();
		/* Each buffer's first and last byte: the bounds are what the
		 * walker vouches for. Every byte of every buffer would let one
		 * input cost ~1000 pops x 1024 buffers x 64 KiB. */
		for (i = 0; i < n; i++) {
			uint8_t *b = req.iov[i].iov_base;
			size_t len = req.iov[i].iov_len;

			if (len == 0)
				abort(); /* zero-length buffers are skipped */
			if (i < req.n_out) {
				sum += b[0];
				sum += b[len - 1];
			} else {
				b[0] = 0xa5;
				b[len - 1] = 0xa5;
			}
		}
		bh_vq_push(&vq, req.head,
			   req.in_len > UINT32_MAX ? UINT32_MAX
						   : (uint32_t)req.in_len);
		bh_vq_need_notify(&vq);
	}
out:
	fuzz_vq_teardown(&fv, &vq);
	(void)sum;
	return 0;
}
