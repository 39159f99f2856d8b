/*
 * Fuzz target: the virtqueue walker (device-workers/lib/virtqueue.c) on
 * rings and guest RAM from the input (layout in fuzz_vq.h), with and without
 * in-flight records resumed from the input. Pops until the ring is empty or
 * the queue broken, touching every byte of every buffer it hands out, and
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
		for (i = 0; i < req.n_out; i++)
			for (size_t j = 0; j < req.iov[i].iov_len; j++)
				sum += ((uint8_t *)req.iov[i].iov_base)[j];
		for (; i < n; i++)
			memset(req.iov[i].iov_base, 0xa5, req.iov[i].iov_len);
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
