/*
 * Fuzz target: the kernel image loader (controller/bzimage.c): the input is
 * the kernel file; bh_bzimage_parse, then bh_bzimage_load with a short
 * initramfs and command line into 64 MiB of guest RAM.
 */
#include <stdint.h>
#include <stdlib.h>

#include <bulkhead/log.h>

#include "bzimage.h"
#include "guestmem.h"
#include "layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_RAM (64ULL << 20)

static struct bh_guest_mem gm;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct bh_mem_layout l;

	bh_log_init("fuzz-bzimage");
	bh_log_set_level(BH_LOG_ERR);
	if (bh_layout_compute(FUZZ_RAM, &l) < 0 ||
	    bh_guest_mem_create(&gm, &l) < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t initramfs[] = "070701fuzz";
	struct bh_boot_images im = {
		.kernel = data,
		.kernel_len = size,
		.initramfs = initramfs,
		.initramfs_len = sizeof(initramfs),
		.cmdline = "console=ttyS0 panic=-1",
		.acpi_rsdp = 0xe0000,
	};
	struct bh_boot_result res;
	struct bh_bzimage bz;
	char err[256];

	if (bh_bzimage_parse(data, size, &bz, err, sizeof(err)) < 0)
		return 0;
	bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err));
	return 0;
}
