/*
 * Shared by the virtqueue and virtio-blk fuzz targets: one queue whose rings
 * and guest RAM come from the input, with in-flight records from the input
 * when it asks for a resumed queue.
 *
 * Input: byte 0 = log2 of the queue size (mod 9: 1 to 256 entries);
 * byte 1 = flags (bit 0 INDIRECT_DESC, bit 1 EVENT_IDX, bit 2 in-flight
 * records, bit 3 resume them, bits 4-7 for the target); when records are
 * resumed, BH_INFLIGHT_BYTES(size) bytes of them; then guest RAM from
 * address 0 (64 KiB, zero-filled past the input): descriptor table at 0,
 * avail ring at 0x1000, used ring at 0x2000.
 */
#ifndef BH_FUZZ_VQ_H
#define BH_FUZZ_VQ_H

#include <stdlib.h>
#include <string.h>

#include "gmem.h"
#include "virtqueue.h"

#define FUZZ_RAM_SIZE  (64u * 1024)
#define FUZZ_DESC_GPA  0x0000u
#define FUZZ_AVAIL_GPA 0x1000u
#define FUZZ_USED_GPA  0x2000u
#define FUZZ_MAX_QSIZE 256u

struct fuzz_vq {
	uint8_t *ram;
	struct bh_gmem mem;
	uint8_t inflight[BH_INFLIGHT_BYTES(FUZZ_MAX_QSIZE)];
	uint8_t flags; /* byte 1 */
};

/* Sets up vq from the input; 0, or -1 when the input is too short or the
 * queue refuses it (both fine: nothing to walk). */
static inline int fuzz_vq_setup(struct fuzz_vq *f, struct bh_vq *vq,
				const uint8_t *data, size_t size)
{
	uint16_t qsize;
	uint64_t features = 1ULL << BH_VIRTIO_F_VERSION_1;
	size_t inf = 0;

	memset(vq, 0, sizeof(*vq));
	f->ram = NULL;
	if (size < 2)
		return -1;
	qsize = (uint16_t)(1u << (data[0] % 9u));
	f->flags = data[1];
	if (f->flags & 1)
		features |= 1ULL << BH_VIRTIO_F_INDIRECT_DESC;
	if (f->flags & 2)
		features |= 1ULL << BH_VIRTIO_F_EVENT_IDX;
	data += 2;
	size -= 2;
	memset(f->inflight, 0, sizeof(f->inflight));
	if ((f->flags & 0xc) == 0xc) {
		inf = BH_INFLIGHT_BYTES(qsize);
		if (inf > size)
			inf = size;
		memcpy(f->inflight, data, inf);
		data += inf;
		size -= inf;
	}
	/* A fresh buffer each time, so that ASan sees any access past it. */
	f->ram = calloc(1, FUZZ_RAM_SIZE);
	if (!f->ram)
		abort();
	memcpy(f->ram, data, size < FUZZ_RAM_SIZE ? size : FUZZ_RAM_SIZE);
	memset(&f->mem, 0, sizeof(f->mem));
	f->mem.base = f->ram;
	f->mem.size = FUZZ_RAM_SIZE;
	f->mem.n = 1;
	f->mem.r[0].guest_phys = 0;
	f->mem.r[0].size = FUZZ_RAM_SIZE;
	f->mem.r[0].host = f->ram;
	if (bh_vq_init(vq, &f->mem, qsize, FUZZ_DESC_GPA, FUZZ_AVAIL_GPA,
		       FUZZ_USED_GPA, features, -1, -1) < 0)
		return -1;
	if ((f->flags & 4) &&
	    bh_vq_inflight_attach(vq, f->inflight, f->flags & 8) < 0)
		return -1;
	return 0;
}

static inline void fuzz_vq_teardown(struct fuzz_vq *f, struct bh_vq *vq)
{
	bh_vq_release(vq);
	free(f->ram);
	f->ram = NULL;
}

#endif
