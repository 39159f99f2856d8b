/* Linux bzImage checks and loading through the 64-bit boot protocol. */
#ifndef BH_CONTROLLER_BZIMAGE_H
#define BH_CONTROLLER_BZIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "guestmem.h"

/* Offsets in the image / in struct boot_params
 * (Documentation/arch/x86/boot.rst). */
#define BH_BP_SETUP_SECTS	0x1f1
#define BH_BP_BOOT_FLAG		0x1fe
#define BH_BP_HEADER		0x202 /* "HdrS" */
#define BH_BP_VERSION		0x206
#define BH_BP_TYPE_OF_LOADER	0x210
#define BH_BP_LOADFLAGS		0x211
#define BH_BP_RAMDISK_IMAGE	0x218
#define BH_BP_RAMDISK_SIZE	0x21c
#define BH_BP_HEAP_END_PTR	0x224
#define BH_BP_CMD_LINE_PTR	0x228
#define BH_BP_INITRD_ADDR_MAX	0x22c
#define BH_BP_KERNEL_ALIGNMENT	0x230
#define BH_BP_RELOCATABLE	0x234
#define BH_BP_XLOADFLAGS	0x236
#define BH_BP_CMDLINE_SIZE	0x238
#define BH_BP_PREF_ADDRESS	0x258
#define BH_BP_INIT_SIZE		0x260
#define BH_BP_ACPI_RSDP		0x070
#define BH_BP_EXT_RAMDISK_IMAGE 0x0c0
#define BH_BP_EXT_RAMDISK_SIZE	0x0c4
#define BH_BP_EXT_CMD_LINE_PTR	0x0c8
#define BH_BP_E820_ENTRIES	0x1e8
#define BH_BP_E820_TABLE	0x2d0
#define BH_BOOT_PARAMS_SIZE	4096

#define BH_BZIMAGE_MIN_VERSION 0x020c /* 2.12: XLF_KERNEL_64 */

/* What the checks learnt about a bzImage. */
struct bh_bzimage {
	uint16_t version;
	size_t setup_size; /* (setup_sects + 1) * 512 */
	size_t
	    kernel_offset; /* == setup_size: protected-mode code in the file */
	size_t kernel_size;
	size_t header_end; /* end of the setup header in the file */
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size; /* max length without the NUL */
	uint32_t kernel_alignment;
	int relocatable;
};

/*
 * Checks that img[0..len) is a bzImage we can boot: long enough for the setup
 * header, boot flag 0xAA55, "HdrS", protocol >= 2.12, LOADED_HIGH, the 64-bit
 * entry (XLF_KERNEL_64), setup_sects that leave a kernel behind them. On
 * failure -ENOEXEC with err naming the problem ("not a bzImage: no HdrS
 * signature", "boot protocol 2.06 is too old, need 2.12", ...).
 */
int bh_bzimage_parse(const uint8_t *img, size_t len, struct bh_bzimage *out,
		     char *err, size_t errlen);

struct bh_boot_images {
	const uint8_t *kernel; /* whole bzImage file */
	size_t kernel_len;
	const uint8_t *initramfs; /* or NULL */
	size_t initramfs_len;
	const char *cmdline;
	uint64_t acpi_rsdp; /* guest address of the RSDP, 0 if none */
};

/* Where things went in guest memory. */
struct bh_boot_result {
	uint64_t kernel_addr; /* protected-mode code; 64-bit entry at +0x200 */
	uint64_t entry;
	uint64_t initramfs_addr;
	uint64_t initramfs_size;
	uint64_t zero_page;
};

/*
 * Loads a parsed bzImage: the protected-mode kernel at pref_address (or 1 MiB
 * aligned as the kernel asks), the initramfs at the top of RAM below 4 GiB and
 * initrd_addr_max, the command line at BH_CMDLINE_ADDR, and the zero page
 * (setup header copied from the image, type_of_loader 0xff, CAN_USE_HEAP,
 * e820 from the layout, acpi_rsdp_addr). -E2BIG with err if the command line
 * is too long for the kernel, -ENOMEM if kernel or initramfs do not fit in RAM.
 */
int bh_bzimage_load(struct bh_guest_mem *gm, const struct bh_bzimage *bz,
		    const struct bh_boot_images *im, struct bh_boot_result *res,
		    char *err, size_t errlen);

#endif
