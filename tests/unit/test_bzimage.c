/* Unit tests: bzImage checks and loading, on synthetic and real kernels. */
#include <errno.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "boot.h"
#include "bulkhead/platform.h"
#include "bzimage.h"
#include "guestmem.h"
#include "layout.h"
#include "bulkhead/le.h"

#define KIB 1024ULL
#define MIB (1024ULL * KIB)

#define T_SETUP_SECTS  4
#define T_KERNEL_LEN   (64 * KIB + 123)
#define T_PREF	       0x1000000ULL
#define T_INIT_SIZE    (4 * MIB)
#define T_ALIGN	       0x200000U
#define T_CMDLINE_SIZE 2047U
#define T_RSDP	       BH_ACPI_ADDR

/* A minimal image a 2.15 loader would accept: real-mode setup of
 * T_SETUP_SECTS sectors, then a patterned "kernel". */
static uint8_t *make_image(size_t *len)
{
	size_t setup = (T_SETUP_SECTS + 1) * 512;
	uint8_t *img;
	size_t i;

	*len = setup + T_KERNEL_LEN;
	img = calloc(1, *len);
	assert_non_null(img);
	img[BH_BP_SETUP_SECTS] = T_SETUP_SECTS;
	bh_put_le16(img + BH_BP_BOOT_FLAG, 0xaa55);
	img[0x200] = 0xeb;
	img[0x201] = 0x6a; /* header ends at 0x26c, as in Linux 6.1 */
	memcpy(img + BH_BP_HEADER, "HdrS", 4);
	bh_put_le16(img + BH_BP_VERSION, 0x020f);
	img[BH_BP_LOADFLAGS] = 0x01;
	bh_put_le32(img + BH_BP_INITRD_ADDR_MAX, 0x7fffffff);
	bh_put_le32(img + BH_BP_KERNEL_ALIGNMENT, T_ALIGN);
	img[BH_BP_RELOCATABLE] = 1;
	bh_put_le16(img + BH_BP_XLOADFLAGS, 0x3);
	bh_put_le32(img + BH_BP_CMDLINE_SIZE, T_CMDLINE_SIZE);
	bh_put_le64(img + BH_BP_PREF_ADDRESS, T_PREF);
	bh_put_le32(img + BH_BP_INIT_SIZE, T_INIT_SIZE);
	/* Past the header, so it must not reach the zero page. */
	img[0x280] = 0x77;
	for (i = setup; i < *len; i++)
		img[i] = (uint8_t)(i * 7 + 3);
	return img;
}

static void mem_init(struct bh_guest_mem *gm, uint64_t size)
{
	struct bh_mem_layout l;

	assert_int_equal(bh_layout_compute(size, &l), 0);
	assert_int_equal(bh_guest_mem_create(gm, &l), 0);
}

/* Parse must fail with -ENOEXEC and a message containing what. */
static void expect_parse_error(const uint8_t *img, size_t len, const char *what)
{
	struct bh_bzimage bz;
	char err[256] = "";

	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)),
			 -ENOEXEC);
	assert_true(strlen(err) > 0);
	if (strstr(err, what) == NULL)
		fail_msg("error \"%s\" does not name \"%s\"", err, what);
}

static void test_parse_valid(void **state)
{
	struct bh_bzimage bz;
	char err[256] = "";
	uint8_t *img;
	size_t len;

	(void)state;
	img = make_image(&len);
	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)), 0);
	assert_int_equal(bz.version, 0x020f);
	assert_int_equal(bz.setup_size, (T_SETUP_SECTS + 1) * 512);
	assert_int_equal(bz.kernel_offset, bz.setup_size);
	assert_int_equal(bz.kernel_size, T_KERNEL_LEN);
	assert_int_equal(bz.header_end, 0x26c);
	assert_int_equal(bz.pref_address, T_PREF);
	assert_int_equal(bz.init_size, T_INIT_SIZE);
	assert_int_equal(bz.initrd_addr_max, 0x7fffffff);
	assert_int_equal(bz.cmdline_size, T_CMDLINE_SIZE);
	assert_int_equal(bz.kernel_alignment, T_ALIGN);
	assert_true(bz.relocatable);

	/* setup_sects 0 means 4. */
	img[BH_BP_SETUP_SECTS] = 0;
	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)), 0);
	assert_int_equal(bz.setup_size, 5 * 512);
	/* The header end is bounded by the file. */
	img[0x201] = 0xff;
	assert_int_equal(bh_bzimage_parse(img, 0x280, &bz, err, sizeof(err)),
			 -ENOEXEC); /* no kernel left after the setup */
	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)), 0);
	assert_int_equal(bz.header_end, 0x202 + 0xff);
	free(img);
}

static void test_parse_errors(void **state)
{
	static const size_t cuts[] = { 0,     1,     0x1f1, 0x1ff,
				       0x202, 0x206, 0x25f, 0x263 };
	uint8_t *img;
	size_t len, i;

	(void)state;
	img = make_image(&len);
	for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		expect_parse_error(img, cuts[i], "too short");
	/* Long enough for the header, but nothing after the setup. */
	expect_parse_error(img, 0x264, "beyond the end");
	expect_parse_error(img, (T_SETUP_SECTS + 1) * 512, "beyond the end");

	bh_put_le16(img + BH_BP_BOOT_FLAG, 0x55aa);
	expect_parse_error(img, len, "boot flag");
	bh_put_le16(img + BH_BP_BOOT_FLAG, 0xaa55);

	memcpy(img + BH_BP_HEADER, "HdrX", 4);
	expect_parse_error(img, len, "HdrS");
	memcpy(img + BH_BP_HEADER, "HdrS", 4);

	bh_put_le16(img + BH_BP_VERSION, 0x0206);
	expect_parse_error(img, len, "2.06");
	bh_put_le16(img + BH_BP_VERSION, 0x020b);
	expect_parse_error(img, len, "too old");
	bh_put_le16(img + BH_BP_VERSION, 0x020f);

	img[0x201] = 0x10;
	expect_parse_error(img, len, "setup header ends");
	img[0x201] = 0x6a;

	bh_put_le16(img + BH_BP_XLOADFLAGS, 0x2);
	expect_parse_error(img, len, "XLF_KERNEL_64");
	bh_put_le16(img + BH_BP_XLOADFLAGS, 0x3);

	img[BH_BP_LOADFLAGS] = 0x80;
	expect_parse_error(img, len, "LOADED_HIGH");
	img[BH_BP_LOADFLAGS] = 0x01;

	/* Setup that swallows the whole file, and absurd setup sizes. */
	img[BH_BP_SETUP_SECTS] = 60;
	expect_parse_error(img, 40 * 512, "beyond the end");
	img[BH_BP_SETUP_SECTS] = 200;
	expect_parse_error(img, len, "setup_sects");
	img[BH_BP_SETUP_SECTS] = 255;
	expect_parse_error(img, len, "too large");
	img[BH_BP_SETUP_SECTS] = T_SETUP_SECTS;

	bh_put_le32(img + BH_BP_INIT_SIZE, 0);
	expect_parse_error(img, len, "init_size");
	bh_put_le32(img + BH_BP_INIT_SIZE, T_INIT_SIZE);

	bh_put_le32(img + BH_BP_KERNEL_ALIGNMENT, 0x300000);
	expect_parse_error(img, len, "kernel_alignment");
	bh_put_le32(img + BH_BP_KERNEL_ALIGNMENT, T_ALIGN);

	/* And the image is whole again. */
	{
		struct bh_bzimage bz;

		assert_int_equal(bh_bzimage_parse(img, len, &bz, NULL, 0), 0);
	}
	free(img);
}

static void test_load_valid(void **state)
{
	static const char cmdline[] = "console=ttyS0 root=/dev/vda quiet";
	struct bh_e820_entry tbl[BH_E820_MAX];
	struct bh_boot_result res;
	struct bh_guest_mem gm;
	struct bh_bzimage bz;
	struct bh_boot_images im;
	uint8_t initrd[10000];
	char err[256] = "";
	const uint8_t *zp;
	uint8_t *img;
	size_t len, i;
	int n;

	(void)state;
	img = make_image(&len);
	for (i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i * 13 + 1);
	mem_init(&gm, 64 * MIB);
	memset(gm.host + BH_ZERO_PAGE_ADDR, 0xcc, 4096);
	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)), 0);
	im = (struct bh_boot_images){ .kernel = img,
				      .kernel_len = len,
				      .initramfs = initrd,
				      .initramfs_len = sizeof(initrd),
				      .cmdline = cmdline,
				      .acpi_rsdp = T_RSDP };
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 0);

	assert_int_equal(res.kernel_addr, T_PREF);
	assert_int_equal(res.entry, T_PREF + 0x200);
	assert_int_equal(res.zero_page, BH_ZERO_PAGE_ADDR);
	assert_memory_equal(gm.host + T_PREF, img + bz.kernel_offset,
			    T_KERNEL_LEN);

	/* Initramfs: page aligned, as high as possible, clear of the kernel. */
	assert_int_equal(res.initramfs_size, sizeof(initrd));
	assert_int_equal(res.initramfs_addr % 4096, 0);
	assert_int_equal(res.initramfs_addr,
			 (64 * MIB - sizeof(initrd)) & ~0xfffULL);
	assert_true(res.initramfs_addr >= T_PREF + T_INIT_SIZE);
	assert_memory_equal(gm.host + res.initramfs_addr, initrd,
			    sizeof(initrd));

	assert_string_equal((const char *)gm.host + BH_CMDLINE_ADDR, cmdline);

	zp = gm.host + BH_ZERO_PAGE_ADDR;
	/* Setup header copied, the rest of the page cleared. */
	assert_memory_equal(zp + 0x1f1, img + 0x1f1, 0x210 - 0x1f1);
	assert_memory_equal(zp + BH_BP_HEADER, "HdrS", 4);
	assert_int_equal(bh_get_le16(zp + BH_BP_VERSION), 0x020f);
	assert_int_equal(bh_get_le32(zp + BH_BP_INIT_SIZE), T_INIT_SIZE);
	assert_int_equal(zp[0x26c], 0);
	assert_int_equal(zp[0x280], 0);
	assert_int_equal(zp[0], 0);
	assert_int_equal(zp[4095], 0);
	assert_int_equal(zp[BH_BP_TYPE_OF_LOADER], 0xff);
	assert_int_equal(zp[BH_BP_LOADFLAGS], 0x81);
	assert_int_equal(bh_get_le16(zp + BH_BP_HEAP_END_PTR), 0xfe00);
	assert_int_equal(bh_get_le32(zp + BH_BP_CMD_LINE_PTR), BH_CMDLINE_ADDR);
	assert_int_equal(bh_get_le32(zp + BH_BP_EXT_CMD_LINE_PTR), 0);
	assert_int_equal(bh_get_le32(zp + BH_BP_RAMDISK_IMAGE),
			 res.initramfs_addr);
	assert_int_equal(bh_get_le32(zp + BH_BP_RAMDISK_SIZE), sizeof(initrd));
	assert_int_equal(bh_get_le32(zp + BH_BP_EXT_RAMDISK_IMAGE), 0);
	assert_int_equal(bh_get_le32(zp + BH_BP_EXT_RAMDISK_SIZE), 0);
	assert_int_equal(bh_get_le64(zp + BH_BP_ACPI_RSDP), T_RSDP);

	n = bh_e820_build(&gm.layout, tbl, BH_E820_MAX);
	assert_int_equal(n, 3);
	assert_int_equal(zp[BH_BP_E820_ENTRIES], n);
	for (i = 0; i < (size_t)n; i++) {
		const uint8_t *e = zp + BH_BP_E820_TABLE + i * 20;

		assert_int_equal(bh_get_le64(e), tbl[i].addr);
		assert_int_equal(bh_get_le64(e + 8), tbl[i].size);
		assert_int_equal(bh_get_le32(e + 16), tbl[i].type);
	}
	assert_int_equal(bh_get_le64(zp + BH_BP_E820_TABLE + 2 * 20 + 8),
			 64 * MIB - BH_HIMEM_START);

	bh_guest_mem_destroy(&gm);
	free(img);
}

static void test_load_placement(void **state)
{
	struct bh_boot_result res;
	struct bh_guest_mem gm;
	struct bh_bzimage bz;
	struct bh_boot_images im;
	uint8_t initrd[5000] = { 1, 2, 3 };
	char err[256] = "";
	uint8_t *img;
	size_t len;

	(void)state;
	img = make_image(&len);
	im = (struct bh_boot_images){ .kernel = img, .kernel_len = len };

	/* pref_address does not fit in 16 MiB: relocated to 1 MiB rounded up
	 * to kernel_alignment. No initramfs, no command line. */
	mem_init(&gm, 16 * MIB);
	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)), 0);
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 0);
	assert_int_equal(res.kernel_addr, 2 * MIB);
	assert_int_equal(res.entry, 2 * MIB + 0x200);
	assert_int_equal(res.initramfs_addr, 0);
	assert_int_equal(res.initramfs_size, 0);
	assert_int_equal(gm.host[BH_CMDLINE_ADDR], 0);
	assert_int_equal(
	    bh_get_le32(gm.host + BH_ZERO_PAGE_ADDR + BH_BP_RAMDISK_IMAGE), 0);
	assert_int_equal(
	    bh_get_le64(gm.host + BH_ZERO_PAGE_ADDR + BH_BP_ACPI_RSDP), 0);
	assert_memory_equal(gm.host + 2 * MIB, img + bz.kernel_offset,
			    T_KERNEL_LEN);
	bh_guest_mem_destroy(&gm);

	/* The initramfs stays below initrd_addr_max. */
	bh_put_le32(img + BH_BP_INITRD_ADDR_MAX, 32 * MIB - 1);
	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)), 0);
	mem_init(&gm, 64 * MIB);
	im.initramfs = initrd;
	im.initramfs_len = sizeof(initrd);
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 0);
	assert_int_equal(res.initramfs_addr, 32 * MIB - 8192);
	assert_memory_equal(gm.host + res.initramfs_addr, initrd,
			    sizeof(initrd));
	bh_guest_mem_destroy(&gm);

	/* A non-relocatable kernel goes where it asks or nowhere. */
	img[BH_BP_RELOCATABLE] = 0;
	bh_put_le64(img + BH_BP_PREF_ADDRESS, 0x100000);
	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)), 0);
	mem_init(&gm, 16 * MIB);
	im.initramfs = NULL;
	im.initramfs_len = 0;
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 0);
	assert_int_equal(res.kernel_addr, 0x100000);
	bh_guest_mem_destroy(&gm);

	bh_put_le64(img + BH_BP_PREF_ADDRESS, T_PREF);
	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)), 0);
	mem_init(&gm, 16 * MIB);
	err[0] = '\0';
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 -ENOMEM);
	assert_non_null(strstr(err, "kernel does not fit"));
	assert_non_null(strstr(err, "not relocatable"));
	bh_guest_mem_destroy(&gm);
	free(img);
}

static void test_load_cmdline(void **state)
{
	struct bh_boot_result res;
	struct bh_guest_mem gm;
	struct bh_bzimage bz;
	struct bh_boot_images im;
	char err[256] = "";
	uint8_t *img;
	char *cmd;
	size_t len;

	(void)state;
	img = make_image(&len);
	mem_init(&gm, 64 * MIB);
	cmd = malloc(BH_CMDLINE_MAX + 1);
	assert_non_null(cmd);
	im = (struct bh_boot_images){ .kernel = img,
				      .kernel_len = len,
				      .cmdline = cmd };

	/* cmdline_size is the longest the kernel takes, without the NUL. */
	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)), 0);
	memset(cmd, 'a', T_CMDLINE_SIZE);
	cmd[T_CMDLINE_SIZE] = '\0';
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 0);
	assert_int_equal(strlen((const char *)gm.host + BH_CMDLINE_ADDR),
			 T_CMDLINE_SIZE);
	cmd[T_CMDLINE_SIZE] = 'a';
	cmd[T_CMDLINE_SIZE + 1] = '\0';
	err[0] = '\0';
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 -E2BIG);
	assert_non_null(strstr(err, "command line"));

	/* A kernel that takes anything is still bounded by our buffer. */
	bh_put_le32(img + BH_BP_CMDLINE_SIZE, 0xffffffff);
	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)), 0);
	memset(cmd, 'b', BH_CMDLINE_MAX);
	cmd[BH_CMDLINE_MAX - 1] = '\0';
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 0);
	assert_int_equal(gm.host[BH_CMDLINE_ADDR + BH_CMDLINE_MAX - 1], 0);
	cmd[BH_CMDLINE_MAX - 1] = 'b';
	cmd[BH_CMDLINE_MAX] = '\0';
	err[0] = '\0';
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 -E2BIG);
	assert_non_null(strstr(err, "command line"));

	free(cmd);
	bh_guest_mem_destroy(&gm);
	free(img);
}

static void test_load_no_room(void **state)
{
	struct bh_boot_result res;
	struct bh_guest_mem gm;
	struct bh_bzimage bz;
	struct bh_boot_images im;
	char err[256] = "";
	uint8_t *img, *big;
	size_t len;

	(void)state;
	img = make_image(&len);
	mem_init(&gm, 64 * MIB);
	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)), 0);

	/* 16 MiB + 4 MiB for the kernel leaves less than 48 MiB on top. */
	big = calloc(1, 48 * MIB);
	assert_non_null(big);
	im = (struct bh_boot_images){ .kernel = img,
				      .kernel_len = len,
				      .initramfs = big,
				      .initramfs_len = 48 * MIB };
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 -ENOMEM);
	assert_non_null(strstr(err, "initramfs"));
	/* Exactly what fits above the kernel is fine. */
	im.initramfs_len = 64 * MIB - T_PREF - T_INIT_SIZE;
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 0);
	assert_int_equal(res.initramfs_addr, T_PREF + T_INIT_SIZE);
	im.initramfs_len += 1;
	err[0] = '\0';
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 -ENOMEM);
	assert_non_null(strstr(err, "initramfs"));
	free(big);

	/* init_size larger than RAM. */
	im.initramfs = NULL;
	im.initramfs_len = 0;
	bh_put_le32(img + BH_BP_INIT_SIZE, 256 * MIB);
	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)), 0);
	err[0] = '\0';
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 -ENOMEM);
	assert_non_null(strstr(err, "kernel does not fit"));

	/* A description of another image is refused, not trusted. */
	bh_put_le32(img + BH_BP_INIT_SIZE, T_INIT_SIZE);
	assert_int_equal(bh_bzimage_parse(img, len, &bz, err, sizeof(err)), 0);
	im.kernel_len = len - 1;
	err[0] = '\0';
	assert_int_equal(bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)),
			 -EINVAL);
	assert_true(strlen(err) > 0);

	bh_guest_mem_destroy(&gm);
	free(img);
}

static int vers_cmp(const void *a, const void *b)
{
	return strverscmp(*(char *const *)a, *(char *const *)b);
}

static uint8_t *read_whole(const char *path, size_t *len)
{
	uint8_t *buf;
	FILE *f;
	long n;

	f = fopen(path, "rbe");
	if (f == NULL)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	assert_int_equal(fseek(f, 0, SEEK_SET), 0);
	buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* The reference guest kernel: Debian's linux-image-amd64 must pass. */
static void test_debian_kernel(void **state)
{
	Bh__VcpuState st = BH__VCPU_STATE__INIT;
	Bh__Segment cs = BH__SEGMENT__INIT, ds = BH__SEGMENT__INIT,
		    tr = BH__SEGMENT__INIT;
	static const char cmdline[] = "console=ttyS0 panic=-1";
	uint8_t initrd[4096] = "070701";
	struct bh_boot_result res;
	struct bh_guest_mem gm;
	struct bh_bzimage bz;
	struct bh_boot_images im;
	char err[256] = "";
	const char *path;
	uint8_t *img;
	glob_t g;
	size_t len;

	(void)state;
	if (glob("/boot/vmlinuz-*", 0, NULL, &g) != 0 || g.gl_pathc == 0)
		fail_msg("no /boot/vmlinuz-* (install linux-image-amd64)");
	qsort(g.gl_pathv, g.gl_pathc, sizeof(char *), vers_cmp);
	path = g.gl_pathv[g.gl_pathc - 1];
	img = read_whole(path, &len);

	if (bh_bzimage_parse(img, len, &bz, err, sizeof(err)) != 0)
		fail_msg("%s: %s", path, err);
	assert_true(bz.version >= BH_BZIMAGE_MIN_VERSION);
	assert_true(bz.relocatable);
	assert_true(bz.kernel_size > 1 * MIB);
	assert_int_equal(bz.kernel_size + bz.setup_size, len);
	assert_true(bz.init_size >= bz.kernel_size);

	mem_init(&gm, 512 * MIB);
	im = (struct bh_boot_images){ .kernel = img,
				      .kernel_len = len,
				      .initramfs = initrd,
				      .initramfs_len = sizeof(initrd),
				      .cmdline = cmdline,
				      .acpi_rsdp = T_RSDP };
	if (bh_bzimage_load(&gm, &bz, &im, &res, err, sizeof(err)) != 0)
		fail_msg("%s: %s", path, err);
	assert_int_equal(res.kernel_addr, bz.pref_address);
	assert_int_equal(res.entry, bz.pref_address + 0x200);
	assert_memory_equal(gm.host + res.kernel_addr, img + bz.kernel_offset,
			    bz.kernel_size);
	assert_int_equal(res.initramfs_addr, 512 * MIB - sizeof(initrd));
	assert_memory_equal(gm.host + BH_ZERO_PAGE_ADDR + BH_BP_HEADER, "HdrS",
			    4);
	assert_int_equal(gm.host[BH_ZERO_PAGE_ADDR + BH_BP_TYPE_OF_LOADER],
			 0xff);
	assert_string_equal((const char *)gm.host + BH_CMDLINE_ADDR, cmdline);

	st.cs = &cs;
	st.ds = &ds;
	st.tr = &tr;
	assert_int_equal(
	    bh_boot_setup_long_mode(&gm, res.entry, res.zero_page, &st), 0);
	assert_int_equal(st.rip, res.entry);
	assert_int_equal(st.rsi, BH_ZERO_PAGE_ADDR);

	bh_guest_mem_destroy(&gm);
	free(img);
	globfree(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_load_valid),
		cmocka_unit_test(test_load_placement),
		cmocka_unit_test(test_load_cmdline),
		cmocka_unit_test(test_load_no_room),
		cmocka_unit_test(test_debian_kernel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
