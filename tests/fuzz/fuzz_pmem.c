/*
 * Fuzz target: the virtio-pmem request handling (device-workers/pmem/
 * pmem.c, compiled in with its main renamed) on a queue from the input
 * (layout in fuzz_vq.h; flag bit 4 is discard_writes), served by the
 * worker's own drain loop, its flushes an fsync of a memfd.
 */
#include <stdint.h>
#include <sys/mman.h>

int pmem_worker_main(int argc, char **argv);
#define main pmem_worker_main
#include "../../device-workers/pmem/pmem.c"
#undef main

#include "fuzz_vq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int region_fd = -1;
static struct bh_worker w;
static struct fuzz_vq fv;
static struct pmem p;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	bh_log_init("fuzz-pmem");
	bh_log_set_level(BH_LOG_ERR);
	region_fd = memfd_create("fuzz-pmem", MFD_CLOEXEC);
	if (region_fd < 0 || ftruncate(region_fd, 2u << 20) < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	memset(&w, 0, sizeof(w));
	w.ctl = -1;
	if (fuzz_vq_setup(&fv, &w.vq[0], data, size) < 0)
		goto out;
	memset(&p, 0, sizeof(p));
	p.fd = region_fd;
	p.discard_writes = fv.flags & 0x10;
	w.dev = &p;
	w.nq = 1;
	w.active = true;
	pmem_queue_notify(&w, 0);
out:
	fuzz_vq_teardown(&fv, &w.vq[0]);
	return 0;
}
