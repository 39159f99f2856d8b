/* Unit tests: RAM layout, e820 map, sealed guest memory, boot page tables. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "boot.h"
#include "bulkhead/platform.h"
#include "guestmem.h"
#include "layout.h"
#include "bulkhead/le.h"

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)

/* The e820 map of a layout must describe exactly its RAM, sorted, with the
 * low reserved area and nothing in the 32-bit hole. */
static void check_e820(const struct bh_mem_layout *l)
{
	struct bh_e820_entry tbl[BH_E820_MAX];
	uint64_t ram = 0, reserved = 0;
	int n, i;

	n = bh_e820_build(l, tbl, BH_E820_MAX);
	assert_true(n >= 3);
	for (i = 0; i < n; i++) {
		uint64_t end = tbl[i].addr + tbl[i].size;

		assert_true(tbl[i].size > 0);
		assert_true(end > tbl[i].addr);
		if (i > 0)
			assert_true(tbl[i - 1].addr + tbl[i - 1].size <=
				    tbl[i].addr);
		/* Nothing at all in [3 GiB, 4 GiB). */
		assert_true(end <= BH_MEM_32BIT_GAP_START ||
			    tbl[i].addr >= BH_MEM_4G);
		if (tbl[i].type == BH_E820_RAM) {
			ram += tbl[i].size;
		} else {
			assert_int_equal(tbl[i].type, BH_E820_RESERVED);
			reserved += tbl[i].size;
		}
	}
	assert_int_equal(tbl[0].addr, 0);
	assert_int_equal(tbl[0].size, BH_EBDA_START);
	assert_int_equal(tbl[0].type, BH_E820_RAM);
	assert_int_equal(tbl[1].addr, BH_EBDA_START);
	assert_int_equal(tbl[1].addr + tbl[1].size, BH_HIMEM_START);
	assert_int_equal(tbl[1].type, BH_E820_RESERVED);
	/* The ACPI tables lie in the reserved range. */
	assert_true(BH_ACPI_ADDR >= tbl[1].addr);
	assert_true(BH_ACPI_ADDR + BH_ACPI_SIZE <= BH_HIMEM_START);
	/* Every byte of the memfd is described once; only the area below
	 * 1 MiB that holds the ACPI tables is not usable RAM. */
	assert_int_equal(ram + reserved, l->ram_size);
	assert_int_equal(reserved, BH_HIMEM_START - BH_EBDA_START);
}

static void check_layout(uint64_t size, uint64_t low, uint64_t high)
{
	struct bh_mem_layout l;

	assert_int_equal(bh_layout_compute(size, &l), 0);
	assert_int_equal(l.ram_size, size);
	assert_int_equal(l.regions[0].guest_phys, 0);
	assert_int_equal(l.regions[0].size, low);
	assert_int_equal(l.regions[0].memfd_offset, 0);
	assert_int_equal(bh_layout_low_ram_end(&l), low);
	if (high == 0) {
		assert_int_equal(l.nregions, 1);
	} else {
		assert_int_equal(l.nregions, 2);
		assert_int_equal(l.regions[1].guest_phys, BH_MEM_4G);
		assert_int_equal(l.regions[1].size, high);
		assert_int_equal(l.regions[1].memfd_offset, low);
	}
	check_e820(&l);
}

static void test_layout_sizes(void **state)
{
	(void)state;
	check_layout(1 * MIB + 4 * KIB, 1 * MIB + 4 * KIB, 0);
	check_layout(64 * MIB, 64 * MIB, 0);
	check_layout(3 * GIB - 4 * KIB, 3 * GIB - 4 * KIB, 0);
	check_layout(3 * GIB, 3 * GIB, 0);
	check_layout(3 * GIB + 4 * KIB, 3 * GIB, 4 * KIB);
	check_layout(4 * GIB, 3 * GIB, 1 * GIB);
	check_layout(8 * GIB, 3 * GIB, 5 * GIB);
}

static void test_layout_invalid(void **state)
{
	static const uint64_t bad[] = {
		0,
		4 * KIB,
		1 * MIB,
		64 * MIB + 1,
		64 * MIB + 512,
		3 * GIB + 1,
		8 * GIB - 1,
		UINT64_MAX,
		/* A multiple of 4 KiB whose slice above 4 GiB would wrap. */
		UINT64_MAX & ~0xfffULL,
	};
	struct bh_mem_layout l;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(bh_layout_compute(bad[i], &l), -EINVAL);
}

static void test_e820_nospc(void **state)
{
	struct bh_e820_entry tbl[4];
	struct bh_mem_layout l;

	(void)state;
	assert_int_equal(bh_layout_compute(8 * GIB, &l), 0);
	assert_int_equal(bh_e820_build(&l, tbl, 3), -ENOSPC);
	assert_int_equal(bh_e820_build(&l, tbl, 4), 4);
	assert_int_equal(bh_layout_compute(64 * MIB, &l), 0);
	assert_int_equal(bh_e820_build(&l, tbl, 2), -ENOSPC);
	assert_int_equal(bh_e820_build(&l, tbl, 3), 3);
}

static void test_guestmem_sealed(void **state)
{
	struct bh_guest_mem gm;
	struct bh_mem_layout l;
	int seals, flags;

	(void)state;
	assert_int_equal(bh_layout_compute(2 * MIB, &l), 0);
	assert_int_equal(bh_guest_mem_create(&gm, &l), 0);
	assert_true(gm.memfd >= 0);
	assert_non_null(gm.host);

	flags = fcntl(gm.memfd, F_GETFD);
	assert_true(flags >= 0 && (flags & FD_CLOEXEC));
	seals = fcntl(gm.memfd, F_GET_SEALS);
	assert_true(seals >= 0);
	assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
			 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	/* Writes stay allowed: the controller loads the kernel afterwards. */
	assert_int_equal(seals & F_SEAL_WRITE, 0);

	assert_int_equal(ftruncate(gm.memfd, 4 * MIB), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(gm.memfd, 1 * MIB), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fcntl(gm.memfd, F_ADD_SEALS, F_SEAL_WRITE), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(lseek(gm.memfd, 0, SEEK_END), 2 * MIB);

	bh_guest_mem_destroy(&gm);
	assert_int_equal(gm.memfd, -1);
	assert_null(gm.host);
}

static void test_guestmem_ptr_low(void **state)
{
	struct bh_guest_mem gm;
	struct bh_mem_layout l;
	uint8_t buf[16] = "bulkhead";

	(void)state;
	assert_int_equal(bh_layout_compute(2 * MIB, &l), 0);
	assert_int_equal(bh_guest_mem_create(&gm, &l), 0);

	assert_ptr_equal(bh_guest_mem_ptr(&gm, 0, 2 * MIB), gm.host);
	assert_ptr_equal(bh_guest_mem_ptr(&gm, 0x1234, 1), gm.host + 0x1234);
	assert_ptr_equal(bh_guest_mem_ptr(&gm, 2 * MIB - 1, 1),
			 gm.host + 2 * MIB - 1);
	/* Ranges crossing the end of RAM. */
	assert_null(bh_guest_mem_ptr(&gm, 0, 2 * MIB + 1));
	assert_null(bh_guest_mem_ptr(&gm, 2 * MIB - 1, 2));
	assert_null(bh_guest_mem_ptr(&gm, 2 * MIB, 1));
	assert_null(bh_guest_mem_ptr(&gm, 3 * GIB, 1));
	/* gpa + len would wrap. */
	assert_null(bh_guest_mem_ptr(&gm, 0x1000, UINT64_MAX));
	assert_null(bh_guest_mem_ptr(&gm, UINT64_MAX, 2));
	assert_null(bh_guest_mem_ptr(&gm, UINT64_MAX - 0xff, 0x1000));

	assert_int_equal(bh_guest_mem_write(&gm, 0x5000, buf, sizeof(buf)), 0);
	assert_memory_equal(gm.host + 0x5000, buf, sizeof(buf));
	assert_int_equal(bh_guest_mem_write(&gm, 2 * MIB - 8, buf, sizeof(buf)),
			 -EFAULT);

	/* The fd outlives the mapping: it goes to the runner afterwards. */
	bh_guest_mem_unmap(&gm);
	assert_null(gm.host);
	assert_true(gm.memfd >= 0);
	assert_null(bh_guest_mem_ptr(&gm, 0, 1));
	assert_int_equal(bh_guest_mem_write(&gm, 0, buf, 1), -EFAULT);
	bh_guest_mem_destroy(&gm);
	assert_int_equal(gm.memfd, -1);
}

static void test_guestmem_ptr_hole(void **state)
{
	struct bh_guest_mem gm;
	struct bh_mem_layout l;
	uint8_t v = 0x5a;

	(void)state;
	/* Sparse: only the pages touched below cost memory. */
	assert_int_equal(bh_layout_compute(3 * GIB + 2 * MIB, &l), 0);
	assert_int_equal(bh_guest_mem_create(&gm, &l), 0);

	assert_ptr_equal(bh_guest_mem_ptr(&gm, 3 * GIB - 4 * KIB, 4 * KIB),
			 gm.host + 3 * GIB - 4 * KIB);
	/* Crossing from low RAM into the hole, and inside the hole. */
	assert_null(bh_guest_mem_ptr(&gm, 3 * GIB - 4 * KIB, 8 * KIB));
	assert_null(bh_guest_mem_ptr(&gm, 3 * GIB, 1));
	assert_null(bh_guest_mem_ptr(&gm, BH_IOAPIC_ADDR, 4));
	assert_null(bh_guest_mem_ptr(&gm, BH_MEM_4G - 1, 1));
	/* One range spanning both slices is refused although both are RAM. */
	assert_null(
	    bh_guest_mem_ptr(&gm, 3 * GIB - 4 * KIB, 1 * GIB + 8 * KIB));
	/* RAM above 4 GiB is the memfd past 3 GiB. */
	assert_ptr_equal(bh_guest_mem_ptr(&gm, BH_MEM_4G, 2 * MIB),
			 gm.host + 3 * GIB);
	assert_null(bh_guest_mem_ptr(&gm, BH_MEM_4G, 2 * MIB + 1));
	assert_null(bh_guest_mem_ptr(&gm, BH_MEM_4G + 2 * MIB - 1, 2));
	assert_null(bh_guest_mem_ptr(&gm, BH_MEM_4G + 2 * MIB, 1));
	assert_null(bh_guest_mem_ptr(&gm, BH_MEM_4G, UINT64_MAX));

	assert_int_equal(bh_guest_mem_write(&gm, BH_MEM_4G + 0x10, &v, 1), 0);
	assert_int_equal(gm.host[3 * GIB + 0x10], 0x5a);
	bh_guest_mem_destroy(&gm);
}

/* Walks the guest's page tables the way the MMU would (4-level, 2 MiB
 * leaves); returns the physical address or UINT64_MAX if unmapped. */
static uint64_t walk(const struct bh_guest_mem *gm, uint64_t cr3, uint64_t va)
{
	const uint64_t addr_mask = 0x000ffffffffff000ULL;
	const uint8_t *t;
	uint64_t e;

	t = bh_guest_mem_ptr(gm, cr3 & addr_mask, 4096);
	assert_non_null(t);
	e = bh_get_le64(t + ((va >> 39) & 511) * 8);
	if (!(e & 1))
		return UINT64_MAX;
	assert_true(e & 2);
	t = bh_guest_mem_ptr(gm, e & addr_mask, 4096);
	assert_non_null(t);
	e = bh_get_le64(t + ((va >> 30) & 511) * 8);
	if (!(e & 1))
		return UINT64_MAX;
	assert_false(e & 0x80); /* no 1 GiB pages */
	t = bh_guest_mem_ptr(gm, e & addr_mask, 4096);
	assert_non_null(t);
	e = bh_get_le64(t + ((va >> 21) & 511) * 8);
	if (!(e & 1))
		return UINT64_MAX;
	assert_true(e & 0x80);
	assert_true(e & 2);
	return (e & addr_mask & ~0x1fffffULL) | (va & 0x1fffff);
}

static void check_segment(const Bh__Segment *s, const uint8_t *gdt,
			  uint32_t selector)
{
	uint64_t d = bh_get_le64(gdt + selector);
	uint32_t limit = (uint32_t)((d & 0xffff) | ((d >> 32) & 0xf0000));
	uint64_t base = ((d >> 16) & 0xffffff) | ((d >> 32) & 0xff000000);
	int g = (d >> 55) & 1;

	assert_int_equal(s->selector, selector);
	assert_int_equal(s->base_addr, base);
	assert_int_equal(s->type, (d >> 40) & 0xf);
	assert_int_equal(s->s, (d >> 44) & 1);
	assert_int_equal(s->dpl, (d >> 45) & 3);
	assert_int_equal(s->present, (d >> 47) & 1);
	assert_int_equal(s->avl, (d >> 52) & 1);
	assert_int_equal(s->l, (d >> 53) & 1);
	assert_int_equal(s->db, (d >> 54) & 1);
	assert_int_equal(s->g, g);
	/* KVM wants the limit in bytes. */
	assert_int_equal(s->limit, g ? (limit << 12) | 0xfff : limit);
}

static void test_boot_long_mode(void **state)
{
	Bh__VcpuState st = BH__VCPU_STATE__INIT;
	Bh__Segment cs = BH__SEGMENT__INIT, ds = BH__SEGMENT__INIT,
		    tr = BH__SEGMENT__INIT;
	struct bh_guest_mem gm;
	struct bh_mem_layout l;
	const uint8_t *gdt;
	uint64_t va;

	(void)state;
	st.cs = &cs;
	st.ds = &ds;
	st.tr = &tr;
	assert_int_equal(bh_layout_compute(64 * MIB, &l), 0);
	assert_int_equal(bh_guest_mem_create(&gm, &l), 0);
	memset(gm.host, 0xee, 1 * MIB); /* tables must not rely on zeroes */
	assert_int_equal(bh_boot_setup_long_mode(&gm, 0x1000200, 0x7000, &st),
			 0);

	assert_int_equal(st.rip, 0x1000200);
	assert_int_equal(st.rsi, 0x7000);
	assert_int_equal(st.rsp, BH_BOOT_STACK_ADDR);
	assert_int_equal(st.rbp, BH_BOOT_STACK_ADDR);
	assert_int_equal(st.rflags, 0x2);
	assert_int_equal(st.cr0, 0x80000011);
	assert_int_equal(st.cr3, BH_PML4_ADDR);
	assert_int_equal(st.cr4, 0x20);
	assert_int_equal(st.efer, 0x500);
	assert_int_equal(st.gdt_base, BH_GDT_ADDR);
	assert_int_equal(st.gdt_limit, 5 * 8 - 1);
	assert_int_equal(st.idt_base, BH_IDT_ADDR);
	assert_int_equal(st.idt_limit, 0);

	gdt = bh_guest_mem_ptr(&gm, BH_GDT_ADDR, 5 * 8);
	assert_non_null(gdt);
	assert_int_equal(bh_get_le64(gdt), 0);
	assert_int_equal(bh_get_le64(gdt + 8), 0);
	assert_int_equal(bh_get_le64(gdt + BH_BOOT_CS), 0x00af9b000000ffffULL);
	assert_int_equal(bh_get_le64(gdt + BH_BOOT_DS), 0x00cf93000000ffffULL);
	assert_int_equal(bh_get_le64(gdt + BH_BOOT_TR), 0x008f8b000000ffffULL);
	check_segment(&cs, gdt, BH_BOOT_CS);
	check_segment(&ds, gdt, BH_BOOT_DS);
	check_segment(&tr, gdt, BH_BOOT_TR);
	assert_int_equal(cs.limit, 0xffffffff);
	assert_true(cs.l && !cs.db && cs.s);
	assert_true(ds.db && !ds.l && ds.s);
	assert_false(tr.s);

	/* Identity map of every 2 MiB page below 4 GiB, at both ends and in
	 * the middle of each page; nothing above. */
	for (va = 0; va < BH_MEM_4G; va += 0x200000) {
		assert_int_equal(walk(&gm, st.cr3, va), va);
		assert_int_equal(walk(&gm, st.cr3, va + 0x12345), va + 0x12345);
		assert_int_equal(walk(&gm, st.cr3, va + 0x1fffff),
				 va + 0x1fffff);
	}
	assert_int_equal(walk(&gm, st.cr3, BH_MEM_4G), UINT64_MAX);
	assert_int_equal(walk(&gm, st.cr3, 1ULL << 39), UINT64_MAX);
	bh_guest_mem_destroy(&gm);
}

static void test_boot_no_low_ram(void **state)
{
	Bh__VcpuState st = BH__VCPU_STATE__INIT;
	Bh__Segment cs = BH__SEGMENT__INIT, ds = BH__SEGMENT__INIT,
		    tr = BH__SEGMENT__INIT;
	struct bh_guest_mem gm = { .memfd = -1, .host = NULL };

	(void)state;
	st.cs = &cs;
	st.ds = &ds;
	st.tr = &tr;
	/* Nothing mapped: every table write must be refused. */
	assert_int_equal(bh_layout_compute(64 * MIB, &gm.layout), 0);
	assert_int_equal(bh_boot_setup_long_mode(&gm, 0x1000200, 0x7000, &st),
			 -EFAULT);
}

/* The reset stub: real-mode code that pulses the i8042 reset line. */
static void test_reset_vector(void **state)
{
	static const uint8_t expect[] = { 0xb0, 0xfe, 0xe6, 0x64,
					  0xf4, 0xeb, 0xfd };
	struct bh_guest_mem gm;
	struct bh_mem_layout l;
	const uint8_t *p;

	(void)state;
	assert_int_equal(bh_layout_compute(64 * MIB, &l), 0);
	assert_int_equal(bh_guest_mem_create(&gm, &l), 0);
	assert_int_equal(bh_boot_write_reset_vector(&gm), 0);
	p = bh_guest_mem_ptr(&gm, 0xffff0, sizeof(expect));
	assert_non_null(p);
	assert_memory_equal(p, expect, sizeof(expect));
	bh_guest_mem_destroy(&gm);
}

/* Device memory: above RAM and above 4 GiB, aligned, in order, never
 * overlapping RAM, the 32-bit hole or each other, and bounded. */
static void test_layout_devmem(void **state)
{
	uint64_t sizes[3] = { 2 * MIB, 130 * MIB, 1 * GIB };
	uint64_t gpa[3];
	struct bh_mem_layout l;

	(void)state;
	/* Small RAM: the regions start at 4 GiB, past the hole. */
	assert_int_equal(bh_layout_compute(512 * MIB, &l), 0);
	assert_int_equal(bh_layout_devmem(&l, sizes, 3, gpa), 0);
	assert_int_equal(gpa[0], BH_MEM_4G);
	assert_int_equal(gpa[1], BH_MEM_4G + BH_LAYOUT_DEVMEM_ALIGN);
	/* 130 MiB spill into a second section: the next starts after. */
	assert_int_equal(gpa[2], BH_MEM_4G + 3 * BH_LAYOUT_DEVMEM_ALIGN);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(gpa[i] % BH_LAYOUT_DEVMEM_ALIGN, 0);
		assert_true(gpa[i] >= BH_PCI_MMIO32_START + 1 * GIB);
		if (i > 0)
			assert_true(gpa[i - 1] + sizes[i - 1] <= gpa[i]);
	}

	/* RAM above 4 GiB: the first region starts at its aligned end. */
	assert_int_equal(bh_layout_compute(4 * GIB + 4 * KIB, &l), 0);
	assert_int_equal(bh_layout_devmem(&l, sizes, 1, gpa), 0);
	assert_int_equal(gpa[0], 5 * GIB + BH_LAYOUT_DEVMEM_ALIGN);
	assert_int_equal(bh_layout_compute(5 * GIB, &l), 0);
	assert_int_equal(bh_layout_devmem(&l, sizes, 1, gpa), 0);
	assert_int_equal(gpa[0], 6 * GIB);

	/* Nothing: nothing placed. */
	assert_int_equal(bh_layout_devmem(&l, sizes, 0, gpa), 0);
	/* A size 0 is a caller's error. */
	sizes[1] = 0;
	assert_int_equal(bh_layout_devmem(&l, sizes, 2, gpa), -EINVAL);
	/* Up to the limit exactly, and not a byte past it, nor a size
	 * that would wrap. */
	sizes[0] = BH_LAYOUT_DEVMEM_LIMIT - 6 * GIB;
	assert_int_equal(bh_layout_devmem(&l, sizes, 1, gpa), 0);
	sizes[0] += 2 * MIB;
	assert_int_equal(bh_layout_devmem(&l, sizes, 1, gpa), -ENOSPC);
	sizes[0] = UINT64_MAX - 2 * MIB + 1;
	assert_int_equal(bh_layout_devmem(&l, sizes, 1, gpa), -ENOSPC);
	sizes[0] = 2 * MIB;
	sizes[1] = UINT64_MAX - 2 * MIB + 1;
	assert_int_equal(bh_layout_devmem(&l, sizes, 2, gpa), -ENOSPC);
}

/* Whether [a, a + alen) and [b, b + blen) share a byte. */
static int meets(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* A place for one more region among those placed: the lowest free aligned
 * one, gaps of removed regions taken again, never over another region, RAM,
 * the hole or the limit, and agreeing with bh_layout_devmem. */
static void test_layout_devmem_fit(void **state)
{
	uint64_t sizes[3] = { 2 * MIB, 130 * MIB, 1 * GIB };
	uint64_t ugpa[8], usize[8], gpa[3], got;
	struct bh_mem_layout l;
	uint32_t seed = 12345;

	(void)state;
	assert_int_equal(bh_layout_compute(512 * MIB, &l), 0);
	/* Nothing placed: at 4 GiB, as the first of bh_layout_devmem. */
	assert_int_equal(bh_layout_devmem_fit(&l, NULL, NULL, 0, 2 * MIB, &got),
			 0);
	assert_int_equal(got, BH_MEM_4G);

	/* The boot-time regions one by one, each against those before it:
	 * bh_layout_devmem's places. */
	assert_int_equal(bh_layout_devmem(&l, sizes, 3, gpa), 0);
	for (unsigned int i = 0; i < 3; i++) {
		assert_int_equal(
		    bh_layout_devmem_fit(&l, gpa, sizes, i, sizes[i], &got), 0);
		assert_int_equal(got, gpa[i]);
	}
	/* The same with sizes of every kind, and with RAM above 4 GiB. */
	for (unsigned int t = 0; t < 200; t++) {
		uint64_t sz[8], want[8];
		unsigned int n = 1 + t % 8;

		assert_int_equal(bh_layout_compute(
				     t % 2 ? 512 * MIB : 5 * GIB + 4 * KIB, &l),
				 0);
		for (unsigned int i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			sz[i] = (1 + (seed >> 16) % 300) * 2 * MIB;
		}
		assert_int_equal(bh_layout_devmem(&l, sz, n, want), 0);
		for (unsigned int i = 0; i < n; i++) {
			assert_int_equal(
			    bh_layout_devmem_fit(&l, want, sz, i, sz[i], &got),
			    0);
			assert_int_equal(got, want[i]);
		}
	}

	/* A removal's gap is taken again by what fits in it... */
	assert_int_equal(bh_layout_compute(512 * MIB, &l), 0);
	assert_int_equal(bh_layout_devmem(&l, sizes, 3, gpa), 0);
	assert_int_equal(
	    bh_layout_devmem_fit(&l, gpa + 1, sizes + 1, 2, 64 * MIB, &got), 0);
	assert_int_equal(got, BH_MEM_4G);
	/* ...and by what needs more than one section, when it fits. */
	assert_int_equal(
	    bh_layout_devmem_fit(&l, gpa + 1, sizes + 1, 2, 200 * MIB, &got),
	    0);
	assert_int_equal(got, gpa[2] + sizes[2]);
	ugpa[0] = gpa[2];
	usize[0] = sizes[2];
	ugpa[1] = gpa[0];
	usize[1] = sizes[0];
	/* Given in any order. */
	assert_int_equal(
	    bh_layout_devmem_fit(&l, ugpa, usize, 2, 200 * MIB, &got), 0);
	assert_int_equal(got, BH_MEM_4G + BH_LAYOUT_DEVMEM_ALIGN);
	/* A gap taken to its last byte, and one too small passed over. */
	assert_int_equal(
	    bh_layout_devmem_fit(&l, ugpa, usize, 2, 256 * MIB, &got), 0);
	assert_int_equal(got, BH_MEM_4G + BH_LAYOUT_DEVMEM_ALIGN);
	assert_int_equal(got + 256 * MIB, gpa[2]);
	assert_int_equal(
	    bh_layout_devmem_fit(&l, ugpa, usize, 2, 258 * MIB, &got), 0);
	assert_int_equal(got, gpa[2] + sizes[2]);
	/* A region of size 0 takes no room. */
	usize[1] = 0;
	assert_int_equal(
	    bh_layout_devmem_fit(&l, ugpa, usize, 2, 2 * MIB, &got), 0);
	assert_int_equal(got, BH_MEM_4G);

	/* Never over another region, nor RAM, nor below 4 GiB, always
	 * aligned: regions placed and removed at random. */
	for (unsigned int t = 0; t < 500; t++) {
		unsigned int n = 0;

		assert_int_equal(
		    bh_layout_compute(t % 3 ? 256 * MIB : 6 * GIB, &l), 0);
		for (unsigned int i = 0; i < 8; i++) {
			uint64_t sz;

			seed = seed * 1103515245u + 12345u;
			sz = (1 + (seed >> 16) % 200) * 2 * MIB;
			assert_int_equal(
			    bh_layout_devmem_fit(&l, ugpa, usize, n, sz, &got),
			    0);
			assert_int_equal(got % BH_LAYOUT_DEVMEM_ALIGN, 0);
			assert_true(got >= BH_MEM_4G);
			for (unsigned int r = 0; r < l.nregions; r++)
				assert_false(meets(got, sz,
						   l.regions[r].guest_phys,
						   l.regions[r].size));
			for (unsigned int k = 0; k < n; k++)
				assert_false(meets(got, sz, ugpa[k], usize[k]));
			ugpa[n] = got;
			usize[n++] = sz;
			/* Now and then one goes. */
			if ((seed >> 8) % 3 == 0 && n > 1) {
				unsigned int k = (seed >> 4) % n;

				ugpa[k] = ugpa[n - 1];
				usize[k] = usize[--n];
			}
		}
	}

	/* Up to the limit exactly, not a byte past it. */
	assert_int_equal(bh_layout_compute(512 * MIB, &l), 0);
	ugpa[0] = BH_MEM_4G;
	usize[0] = 2 * MIB;
	assert_int_equal(bh_layout_devmem_fit(&l, ugpa, usize, 1,
					      BH_LAYOUT_DEVMEM_LIMIT -
						  BH_MEM_4G -
						  BH_LAYOUT_DEVMEM_ALIGN,
					      &got),
			 0);
	assert_int_equal(got, BH_MEM_4G + BH_LAYOUT_DEVMEM_ALIGN);
	assert_int_equal(
	    bh_layout_devmem_fit(&l, ugpa, usize, 1,
				 BH_LAYOUT_DEVMEM_LIMIT - BH_MEM_4G -
				     BH_LAYOUT_DEVMEM_ALIGN + 2 * MIB,
				 &got),
	    -ENOSPC);
	/* Everything up to the limit taken: no room even for 2 MiB. */
	ugpa[1] = BH_MEM_4G + BH_LAYOUT_DEVMEM_ALIGN;
	usize[1] = BH_LAYOUT_DEVMEM_LIMIT - ugpa[1];
	assert_int_equal(
	    bh_layout_devmem_fit(&l, ugpa, usize, 2, 2 * MIB, &got), -ENOSPC);
	/* RAM that reaches the limit leaves none either. */
	l.regions[1] = (struct bh_ram_region){ .guest_phys = BH_MEM_4G,
					       .size = BH_LAYOUT_DEVMEM_LIMIT -
						       BH_MEM_4G - MIB };
	l.nregions = 2;
	assert_int_equal(bh_layout_devmem_fit(&l, NULL, NULL, 0, 2 * MIB, &got),
			 -ENOSPC);

	/* Sizes and regions that would wrap: no sum overflows. */
	assert_int_equal(bh_layout_compute(512 * MIB, &l), 0);
	assert_int_equal(bh_layout_devmem_fit(&l, NULL, NULL, 0,
					      UINT64_MAX - 2 * MIB + 1, &got),
			 -ENOSPC);
	assert_int_equal(
	    bh_layout_devmem_fit(&l, NULL, NULL, 0, UINT64_MAX, &got), -ENOSPC);
	ugpa[0] = 6 * GIB;
	usize[0] = UINT64_MAX; /* to the end of the address space */
	assert_int_equal(
	    bh_layout_devmem_fit(&l, ugpa, usize, 1, 2 * MIB, &got), 0);
	assert_int_equal(got, BH_MEM_4G);
	assert_int_equal(
	    bh_layout_devmem_fit(&l, ugpa, usize, 1, 4 * GIB, &got), -ENOSPC);
	ugpa[0] = UINT64_MAX - MIB;
	usize[0] = 4 * MIB;
	assert_int_equal(
	    bh_layout_devmem_fit(&l, ugpa, usize, 1,
				 BH_LAYOUT_DEVMEM_LIMIT - BH_MEM_4G, &got),
	    0);
	assert_int_equal(got, BH_MEM_4G);

	/* A size 0 is the caller's error. */
	assert_int_equal(bh_layout_devmem_fit(&l, NULL, NULL, 0, 0, &got),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_sizes),
		cmocka_unit_test(test_layout_invalid),
		cmocka_unit_test(test_e820_nospc),
		cmocka_unit_test(test_layout_devmem),
		cmocka_unit_test(test_layout_devmem_fit),
		cmocka_unit_test(test_guestmem_sealed),
		cmocka_unit_test(test_guestmem_ptr_low),
		cmocka_unit_test(test_guestmem_ptr_hole),
		cmocka_unit_test(test_boot_long_mode),
		cmocka_unit_test(test_boot_no_low_ram),
		cmocka_unit_test(test_reset_vector),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
