/* Checks a Linux bzImage and loads it for the 64-bit boot protocol. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bulkhead/platform.h"
#include "bzimage.h"
#include "bulkhead/le.h"

#define LOADED_HIGH	  0x01
#define CAN_USE_HEAP	  0x80
#define XLF_KERNEL_64	  0x0001
#define BP_JUMP_END	  0x201 /* jump offset byte: header length - 0x202 */
#define BP_HEADER_MIN_END (BH_BP_INIT_SIZE + 4)
#define SETUP_SECTS_MAX	  64 /* Linux's build tool refuses more */
#define HEAP_END	  0xfe00
#define E820_ENTRY_SIZE	  20
#define ENTRY_64_OFFSET	  0x200
#define PAGE_MASK	  0xfffULL

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int bh_bzimage_parse(const uint8_t *img, size_t len, struct bh_bzimage *out,
		     char *err, size_t errlen)
{
	unsigned int sects;
	uint16_t version;
	size_t hdr_end;

	/* All of img is untrusted input: every offset read below is covered
	 * by this length check or by header_end. */
	if (len < BP_HEADER_MIN_END) {
		set_err(err, errlen,
			"not a bzImage: %zu bytes is too short for the setup "
			"header",
			len);
		return -ENOEXEC;
	}
	if (bh_get_le16(img + BH_BP_BOOT_FLAG) != 0xaa55) {
		set_err(err, errlen,
			"not a bzImage: boot flag is 0x%04x, not 0xaa55",
			bh_get_le16(img + BH_BP_BOOT_FLAG));
		return -ENOEXEC;
	}
	if (memcmp(img + BH_BP_HEADER, "HdrS", 4) != 0) {
		set_err(err, errlen, "not a bzImage: no HdrS signature");
		return -ENOEXEC;
	}
	version = bh_get_le16(img + BH_BP_VERSION);
	if (version < BH_BZIMAGE_MIN_VERSION) {
		set_err(err, errlen,
			"boot protocol %u.%02x is too old, need %u.%02x",
			version >> 8, version & 0xff,
			BH_BZIMAGE_MIN_VERSION >> 8,
			BH_BZIMAGE_MIN_VERSION & 0xff);
		return -ENOEXEC;
	}
	hdr_end = BH_BP_HEADER + (size_t)img[BP_JUMP_END];
	if (hdr_end > len)
		hdr_end = len;
	if (hdr_end > BH_BOOT_PARAMS_SIZE)
		hdr_end = BH_BOOT_PARAMS_SIZE;
	if (hdr_end < BP_HEADER_MIN_END) {
		set_err(err, errlen,
			"setup header ends at 0x%zx, before init_size at 0x%x",
			hdr_end, BH_BP_INIT_SIZE);
		return -ENOEXEC;
	}
	if (!(img[BH_BP_LOADFLAGS] & LOADED_HIGH)) {
		set_err(err, errlen,
			"kernel must be loaded low (LOADED_HIGH clear in "
			"loadflags)");
		return -ENOEXEC;
	}
	if (!(bh_get_le16(img + BH_BP_XLOADFLAGS) & XLF_KERNEL_64)) {
		set_err(err, errlen,
			"kernel has no 64-bit entry point (XLF_KERNEL_64 clear "
			"in xloadflags)");
		return -ENOEXEC;
	}

	sects = img[BH_BP_SETUP_SECTS];
	/* Ancient convention, still honoured by every loader. */
	if (sects == 0)
		sects = 4;
	if (sects > SETUP_SECTS_MAX) {
		set_err(err, errlen, "setup_sects %u is too large (at most %u)",
			sects, SETUP_SECTS_MAX);
		return -ENOEXEC;
	}
	*out = (struct bh_bzimage){ .version = version };
	out->setup_size = ((size_t)sects + 1) * 512;
	if (out->setup_size >= len) {
		set_err(err, errlen,
			"setup_sects %u puts the kernel beyond the end of the "
			"%zu-byte file",
			sects, len);
		return -ENOEXEC;
	}
	out->kernel_offset = out->setup_size;
	out->kernel_size = len - out->setup_size;
	out->header_end = hdr_end;
	out->pref_address = bh_get_le64(img + BH_BP_PREF_ADDRESS);
	out->init_size = bh_get_le32(img + BH_BP_INIT_SIZE);
	out->initrd_addr_max = bh_get_le32(img + BH_BP_INITRD_ADDR_MAX);
	out->cmdline_size = bh_get_le32(img + BH_BP_CMDLINE_SIZE);
	out->kernel_alignment = bh_get_le32(img + BH_BP_KERNEL_ALIGNMENT);
	out->relocatable = img[BH_BP_RELOCATABLE] != 0;
	if (out->init_size == 0) {
		set_err(err, errlen, "init_size is 0 in the setup header");
		return -ENOEXEC;
	}
	if (out->relocatable &&
	    (out->kernel_alignment == 0 ||
	     (out->kernel_alignment & (out->kernel_alignment - 1)) != 0)) {
		set_err(err, errlen,
			"kernel_alignment 0x%x is not a power of two",
			out->kernel_alignment);
		return -ENOEXEC;
	}
	return 0;
}

/* [addr, addr + size) inside [BH_HIMEM_START, end), without overflow. */
static int fits_high(uint64_t addr, uint64_t size, uint64_t end)
{
	return addr >= BH_HIMEM_START && addr <= end && size <= end - addr;
}

/* Picks where the protected-mode kernel goes; needs bytes from there on. */
static int place_kernel(const struct bh_bzimage *bz, uint64_t need,
			uint64_t low_end, uint64_t *addr, char *err,
			size_t errlen)
{
	uint64_t a;

	if (bz->pref_address != 0 &&
	    fits_high(bz->pref_address, need, low_end)) {
		*addr = bz->pref_address;
		return 0;
	}
	if (!bz->relocatable) {
		set_err(err, errlen,
			"kernel does not fit: it is not relocatable and needs "
			"0x%llx bytes at 0x%llx, but RAM below 4 GiB ends at "
			"0x%llx",
			(unsigned long long)need,
			(unsigned long long)bz->pref_address,
			(unsigned long long)low_end);
		return -ENOMEM;
	}
	a = (BH_HIMEM_START + bz->kernel_alignment - 1) &
	    ~((uint64_t)bz->kernel_alignment - 1);
	if (!fits_high(a, need, low_end)) {
		set_err(err, errlen,
			"kernel does not fit: it needs 0x%llx bytes at 0x%llx, "
			"but RAM below 4 GiB ends at 0x%llx",
			(unsigned long long)need, (unsigned long long)a,
			(unsigned long long)low_end);
		return -ENOMEM;
	}
	*addr = a;
	return 0;
}

/* The initramfs goes as high as the kernel allows, clear of the kernel's
 * decompression area. */
static int place_initramfs(const struct bh_bzimage *bz, uint64_t size,
			   uint64_t kernel_end, uint64_t low_end,
			   uint64_t *addr, char *err, size_t errlen)
{
	uint64_t top = (uint64_t)bz->initrd_addr_max + 1;

	if (top > low_end)
		top = low_end;
	if (size > top || ((top - size) & ~PAGE_MASK) < kernel_end) {
		set_err(err, errlen,
			"initramfs of %llu bytes does not fit in RAM between "
			"the kernel end 0x%llx and 0x%llx",
			(unsigned long long)size,
			(unsigned long long)kernel_end,
			(unsigned long long)top);
		return -ENOMEM;
	}
	*addr = (top - size) & ~PAGE_MASK;
	return 0;
}

static int write_e820(const struct bh_guest_mem *gm, uint8_t *zp)
{
	struct bh_e820_entry tbl[BH_E820_MAX];
	int n, i;

	n = bh_e820_build(&gm->layout, tbl, BH_E820_MAX);
	if (n < 0)
		return n;
	zp[BH_BP_E820_ENTRIES] = (uint8_t)n;
	for (i = 0; i < n; i++) {
		uint8_t *e =
		    zp + BH_BP_E820_TABLE + (size_t)i * E820_ENTRY_SIZE;

		bh_put_le64(e, tbl[i].addr);
		bh_put_le64(e + 8, tbl[i].size);
		bh_put_le32(e + 16, tbl[i].type);
	}
	return 0;
}

int bh_bzimage_load(struct bh_guest_mem *gm, const struct bh_bzimage *bz,
		    const struct bh_boot_images *im, struct bh_boot_result *res,
		    char *err, size_t errlen)
{
	uint64_t low_end = bh_layout_low_ram_end(&gm->layout);
	const char *cmdline = im->cmdline != NULL ? im->cmdline : "";
	size_t cmdlen = strlen(cmdline);
	uint64_t cmdmax = (uint64_t)bz->cmdline_size + 1;
	uint64_t need, kaddr, iaddr = 0, isize = 0;
	uint8_t *zp;
	int r;

	/* bz must describe this very image: its offsets index im->kernel. */
	if (bz->header_end > im->kernel_len ||
	    bz->header_end < BP_HEADER_MIN_END ||
	    bz->kernel_offset > im->kernel_len ||
	    bz->kernel_size != im->kernel_len - bz->kernel_offset) {
		set_err(err, errlen,
			"bzImage description does not match the "
			"image");
		return -EINVAL;
	}
	if (cmdmax > BH_CMDLINE_MAX)
		cmdmax = BH_CMDLINE_MAX;
	if (cmdlen >= cmdmax) {
		set_err(err, errlen,
			"command line is %zu bytes, the kernel takes at most "
			"%llu",
			cmdlen, (unsigned long long)cmdmax - 1);
		return -E2BIG;
	}

	/* The kernel decompresses in place over init_size bytes. */
	need =
	    bz->init_size > bz->kernel_size ? bz->init_size : bz->kernel_size;
	r = place_kernel(bz, need, low_end, &kaddr, err, errlen);
	if (r < 0)
		return r;
	if (im->initramfs != NULL && im->initramfs_len != 0) {
		isize = im->initramfs_len;
		r = place_initramfs(bz, isize, kaddr + need, low_end, &iaddr,
				    err, errlen);
		if (r < 0)
			return r;
	}

	zp = bh_guest_mem_ptr(gm, BH_ZERO_PAGE_ADDR, BH_BOOT_PARAMS_SIZE);
	if (zp == NULL ||
	    bh_guest_mem_write(gm, BH_CMDLINE_ADDR, cmdline, cmdlen + 1) < 0 ||
	    bh_guest_mem_write(gm, kaddr, im->kernel + bz->kernel_offset,
			       bz->kernel_size) < 0 ||
	    (isize != 0 &&
	     bh_guest_mem_write(gm, iaddr, im->initramfs, isize) < 0)) {
		set_err(err, errlen, "boot images fall outside guest RAM");
		return -EFAULT;
	}

	memset(zp, 0, BH_BOOT_PARAMS_SIZE);
	memcpy(zp + BH_BP_SETUP_SECTS, im->kernel + BH_BP_SETUP_SECTS,
	       bz->header_end - BH_BP_SETUP_SECTS);
	/* 0xff: a boot loader with no assigned id. */
	zp[BH_BP_TYPE_OF_LOADER] = 0xff;
	zp[BH_BP_LOADFLAGS] |= CAN_USE_HEAP;
	bh_put_le16(zp + BH_BP_HEAP_END_PTR, HEAP_END);
	bh_put_le32(zp + BH_BP_CMD_LINE_PTR, (uint32_t)BH_CMDLINE_ADDR);
	bh_put_le32(zp + BH_BP_EXT_CMD_LINE_PTR,
		    (uint32_t)(BH_CMDLINE_ADDR >> 32));
	bh_put_le32(zp + BH_BP_RAMDISK_IMAGE, (uint32_t)iaddr);
	bh_put_le32(zp + BH_BP_RAMDISK_SIZE, (uint32_t)isize);
	bh_put_le32(zp + BH_BP_EXT_RAMDISK_IMAGE, (uint32_t)(iaddr >> 32));
	bh_put_le32(zp + BH_BP_EXT_RAMDISK_SIZE, (uint32_t)(isize >> 32));
	bh_put_le64(zp + BH_BP_ACPI_RSDP, im->acpi_rsdp);
	r = write_e820(gm, zp);
	if (r < 0) {
		set_err(err, errlen, "cannot build the e820 map: %s",
			strerror(-r));
		return r;
	}

	*res = (struct bh_boot_result){
		.kernel_addr = kaddr,
		.entry = kaddr + ENTRY_64_OFFSET,
		.initramfs_addr = iaddr,
		.initramfs_size = isize,
		.zero_page = BH_ZERO_PAGE_ADDR,
	};
	return 0;
}
