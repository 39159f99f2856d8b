/*
 * Fuzz target: the virtio-blk request parser (device-workers/blk/blk.c,
 * compiled in with its main renamed) on a queue from the input (layout in
 * fuzz_vq.h; flag bit 4 makes the disk read-only), served by the worker's
 * own drain loop with synchronous I/O on a 1 MiB memfd disk.
 */
#include <stdint.h>
#include <sys/mman.h>

int blk_worker_main(int argc, char **argv);
#define main blk_worker_main
#include "../../device-workers/blk/blk.c"
#undef main

#include "fuzz_vq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_DISK_SIZE (1u << 20)
#define FUZZ_SLOTS     4u

static int disk_fd = -1;
static uint8_t *zero;
static struct blk_slot slots[FUZZ_SLOTS];
static struct bh_worker w;
static struct fuzz_vq fv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	bh_log_init("fuzz-blk");
	bh_log_set_level(BH_LOG_ERR);
	disk_fd = memfd_create("fuzz-disk", MFD_CLOEXEC);
	zero = calloc(1, BLK_ZERO_SIZE);
	if (disk_fd < 0 || !zero)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blk b;

	memset(&w, 0, sizeof(w));
	w.ctl = -1;
	if (fuzz_vq_setup(&fv, &w.vq[0], data, size) < 0)
		goto out;
	/* The same empty disk for every input. */
	if (ftruncate(disk_fd, 0) < 0 || ftruncate(disk_fd, FUZZ_DISK_SIZE) < 0)
		abort();
	memset(&b, 0, sizeof(b));
	b.fd = disk_fd;
	b.readonly = fv.flags & 0x10;
	b.blk_size = BLK_SECTOR_SIZE;
	b.capacity = FUZZ_DISK_SIZE >> BLK_SECTOR_SHIFT;
	memcpy(b.serial, "fuzz-serial", 11);
	b.zero = zero;
	b.ring_efd = -1;
	b.slots = slots;
	b.nslots = FUZZ_SLOTS;
	for (unsigned int i = 0; i < FUZZ_SLOTS; i++)
		blk_slot_put(&b, &slots[i]);
	w.dev = &b;
	w.nq = 1;
	w.active = true;
	/* Synchronous I/O frees each slot before the next pop, so one call
	 * serves the whole ring. */
	blk_queue_notify(&w, 0);
out:
	fuzz_vq_teardown(&fv, &w.vq[0]);
	return 0;
}
