/* Unit tests of the ACPI tables and the AML encoder, read back as a guest. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <bulkhead/platform.h>

#include "acpi.h"
#include "aml.h"
#include <bulkhead/le.h>

#define BUF_LEN ((size_t)BH_ACPI_SIZE)

static uint8_t sum8(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

struct tables {
	uint8_t *buf;
	struct bh_acpi_result res;
	const uint8_t *rsdp, *xsdt, *fadt, *dsdt, *madt;
};

/* Translates a guest address of a len-byte object inside the used part. */
static const uint8_t *gpa_ptr(const struct tables *t, uint64_t gpa, size_t len)
{
	assert_true(gpa >= BH_ACPI_ADDR);
	assert_true(gpa - BH_ACPI_ADDR <= t->res.used);
	assert_true(len <= t->res.used - (gpa - BH_ACPI_ADDR));
	assert_int_equal(gpa % 8, 0);
	return t->buf + (gpa - BH_ACPI_ADDR);
}

/* Checks a table header as a guest would, and returns the table. */
static const uint8_t *table_at(const struct tables *t, uint64_t gpa,
			       const char *sig)
{
	const uint8_t *h = gpa_ptr(t, gpa, 36);
	uint32_t len = bh_get_le32(h + 4);

	assert_memory_equal(h, sig, 4);
	assert_true(len >= 36);
	h = gpa_ptr(t, gpa, len);
	assert_int_equal(sum8(h, len), 0);
	assert_memory_equal(h + 10, "BLKHD ", 6);
	assert_memory_equal(h + 16, "BULKHEAD", 8);
	assert_int_equal(bh_get_le32(h + 24), 1);
	assert_memory_equal(h + 28, "BLKH", 4);
	assert_int_equal(bh_get_le32(h + 32), 1);
	return h;
}

static void build_and_walk(struct tables *t, unsigned int vcpus)
{
	struct bh_acpi_config cfg = { .vcpus = vcpus };
	const uint8_t *r;
	uint32_t xlen;

	memset(t, 0, sizeof(*t));
	t->buf = calloc(1, BUF_LEN);
	assert_non_null(t->buf);
	assert_int_equal(
	    bh_acpi_build(t->buf, BUF_LEN, BH_ACPI_ADDR, &cfg, &t->res), 0);
	assert_int_equal(t->res.rsdp_gpa, BH_ACPI_ADDR);
	assert_true(t->res.used > 0 && t->res.used <= BUF_LEN);

	/* The RSDP must sit on a 16-byte boundary for the BIOS-area scan. */
	r = gpa_ptr(t, t->res.rsdp_gpa, 36);
	assert_int_equal(t->res.rsdp_gpa % 16, 0);
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(sum8(r, 20), 0);
	assert_int_equal(sum8(r, 36), 0);
	assert_memory_equal(r + 9, "BLKHD ", 6);
	assert_int_equal(r[15], 2);
	assert_int_equal(bh_get_le32(r + 16), 0);
	assert_int_equal(bh_get_le32(r + 20), 36);
	t->rsdp = r;

	t->xsdt = table_at(t, bh_get_le64(r + 24), "XSDT");
	xlen = bh_get_le32(t->xsdt + 4);
	assert_int_equal(xlen, 36 + 2 * 8);
	assert_int_equal(t->xsdt[8], 1);
	t->fadt = table_at(t, bh_get_le64(t->xsdt + 36), "FACP");
	t->madt = table_at(t, bh_get_le64(t->xsdt + 44), "APIC");
	assert_int_equal(bh_get_le64(t->fadt + 140) % 8, 0);
	t->dsdt = table_at(t, bh_get_le64(t->fadt + 140), "DSDT");
}

static void free_tables(struct tables *t)
{
	free(t->buf);
}

static void check_gas_io8(const uint8_t *g, uint16_t port)
{
	assert_int_equal(g[0], 1); /* SystemIO */
	assert_int_equal(g[1], 8);
	assert_int_equal(g[2], 0);
	assert_int_equal(g[3], 1); /* byte access */
	assert_int_equal(bh_get_le64(g + 4), port);
}

static void test_fadt(void **state)
{
	struct tables t;
	const uint8_t *f;
	uint32_t flags;

	(void)state;
	build_and_walk(&t, 1);
	f = t.fadt;
	assert_int_equal(bh_get_le32(f + 4), 276);
	assert_int_equal(f[8], 6);
	assert_int_equal(f[131], 0);		   /* minor version: 6.0 */
	assert_int_equal(bh_get_le32(f + 36), 0);  /* FIRMWARE_CTRL */
	assert_int_equal(bh_get_le32(f + 40), 0);  /* 32-bit DSDT */
	assert_int_equal(bh_get_le64(f + 132), 0); /* X_FIRMWARE_CTRL */
	flags = bh_get_le32(f + 112);
	assert_int_equal(flags,
			 (1u << 20) | (1u << 10) | (1u << 4) | (1u << 5));
	/* VGA not present; in particular not "CMOS RTC not present". */
	assert_int_equal(bh_get_le16(f + 109), 1u << 2);
	check_gas_io8(f + 116, BH_PORT_ACPI_RESET);
	assert_int_equal(f[128], BH_ACPI_RESET_VALUE);
	check_gas_io8(f + 244, BH_PORT_ACPI_SLEEP_CTL);
	check_gas_io8(f + 256, BH_PORT_ACPI_SLEEP_STS);
	assert_memory_equal(f + 268, "BLKHDVMM", 8);
	/* No PM1, PM timer or GPE blocks in a hardware-reduced FADT. */
	for (size_t off = 148; off < 244; off++)
		assert_int_equal(f[off], 0);
	free_tables(&t);
}

static void test_dsdt(void **state)
{
	static const uint8_t pnp0a08[] = { 0x0c, 0x41, 0xd0, 0x0a, 0x08 };
	static const uint8_t pnp0a03[] = { 0x0c, 0x41, 0xd0, 0x0a, 0x03 };
	static const uint8_t pnp0501[] = { 0x0c, 0x41, 0xd0, 0x05, 0x01 };
	/* Name(_S5_, Package(4) { 5, 0, 0, 0 }) */
	static const uint8_t s5[] = { 0x08, '_',  'S',	'5',  '_',  0x12, 0x07,
				      0x04, 0x0a, 0x05, 0x00, 0x00, 0x00 };
	/* Scope(\_SB_) */
	static const uint8_t sb[] = { '\\', '_', 'S', 'B', '_' };
	/* OperationRegion(PCST, SystemMemory, BH_HOTPLUG_MMIO_ADDR, 0x14) */
	static const uint8_t region[] = {
		0x5b,
		0x80,
		'P',
		'C',
		'S',
		'T',
		0x00,
		0x0c,
		(uint8_t)BH_HOTPLUG_MMIO_ADDR,
		(uint8_t)(BH_HOTPLUG_MMIO_ADDR >> 8),
		(uint8_t)(BH_HOTPLUG_MMIO_ADDR >> 16),
		(uint8_t)(BH_HOTPLUG_MMIO_ADDR >> 24),
		0x0a,
		BH_HOTPLUG_REGS_LEN,
	};
	/* Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) {16} */
	static const uint8_t ged_irq[] = { 0x89, 0x06, 0x00,
					   0x03, 0x01, BH_IRQ_GED_HOTPLUG,
					   0,	 0,    0 };
	struct tables t;
	const uint8_t *d;
	size_t len;

	(void)state;
	build_and_walk(&t, 2);
	d = t.dsdt;
	len = bh_get_le32(d + 4);
	assert_int_equal(d[8], 2);
	assert_non_null(memmem(d, len, s5, sizeof(s5)));
	assert_non_null(memmem(d, len, sb, sizeof(sb)));
	assert_non_null(memmem(d, len, "PCI0", 4));
	assert_non_null(memmem(d, len, "COM1", 4));
	assert_non_null(memmem(d, len, "RTC_", 4));
	/* EISAID("PNP0B00"): the RTC the rtc_cmos driver binds to. */
	assert_non_null(memmem(d, len, "\x41\xd0\x0b\x00", 4));
	assert_non_null(memmem(d, len, pnp0a08, sizeof(pnp0a08)));
	assert_non_null(memmem(d, len, pnp0a03, sizeof(pnp0a03)));
	assert_non_null(memmem(d, len, pnp0501, sizeof(pnp0501)));
	assert_non_null(memmem(d, len, "_CRS", 4));
	/* PCI hotplug: the register block, its event device, the slots. */
	assert_non_null(memmem(d, len, "PHPR", 4));
	assert_non_null(memmem(d, len, "GED1", 4));
	assert_non_null(memmem(d, len, "PCEJ", 4));
	assert_non_null(memmem(d, len, "PSCN", 4));
	assert_non_null(memmem(d, len, "DVNT", 4));
	assert_non_null(memmem(d, len, "S01_", 4));
	assert_non_null(memmem(d, len, "S1F_", 4));
	assert_null(memmem(d, len, "S00_", 4));
	assert_null(memmem(d, len, "S20_", 4));
	assert_non_null(memmem(d, len, region, sizeof(region)));
	assert_non_null(memmem(d, len, ged_irq, sizeof(ged_irq)));
	/* The body starts right after the header with the Name of _S5_. */
	assert_memory_equal(d + 36, s5, sizeof(s5));
	free_tables(&t);
}

static void check_madt(unsigned int n)
{
	struct tables t;
	const uint8_t *m, *e, *end;
	unsigned int lapics = 0, ioapics = 0, nmis = 0;

	build_and_walk(&t, n);
	m = t.madt;
	assert_int_equal(m[8], 4);
	assert_int_equal(bh_get_le32(m + 36), BH_LAPIC_ADDR);
	assert_int_equal(bh_get_le32(m + 40), 0);
	end = m + bh_get_le32(m + 4);
	for (e = m + 44; e < end; e += e[1]) {
		assert_true(e + 2 <= end);
		assert_true(e[1] >= 2 && e + e[1] <= end);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			assert_int_equal(e[2], lapics); /* processor UID */
			assert_int_equal(e[3], lapics); /* APIC id */
			assert_int_equal(bh_get_le32(e + 4), 1);
			lapics++;
			break;
		case 1:
			assert_int_equal(e[1], 12);
			assert_int_equal(e[2], 0);
			assert_int_equal(bh_get_le32(e + 4), BH_IOAPIC_ADDR);
			assert_int_equal(bh_get_le32(e + 8), 0);
			ioapics++;
			break;
		case 4:
			assert_int_equal(e[1], 6);
			assert_int_equal(e[2], 0xff);
			assert_int_equal(bh_get_le16(e + 3), 0);
			assert_int_equal(e[5], 1);
			nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
	}
	assert_ptr_equal(e, end);
	assert_int_equal(lapics, n);
	assert_int_equal(ioapics, 1);
	assert_int_equal(nmis, 1);
	free_tables(&t);
}

static void test_madt(void **state)
{
	static const unsigned int counts[] = { 1, 2, 8, BH_MAX_VCPUS };

	(void)state;
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		check_madt(counts[i]);
}

/* Every buffer shorter than needed fails without writing past its end. */
static void test_enospc(void **state)
{
	struct bh_acpi_config cfg = { .vcpus = BH_MAX_VCPUS };
	struct bh_acpi_result res;
	size_t need;
	uint8_t *buf;

	(void)state;
	buf = malloc(BUF_LEN);
	assert_non_null(buf);
	assert_int_equal(bh_acpi_build(buf, BUF_LEN, BH_ACPI_ADDR, &cfg, &res),
			 0);
	need = res.used;
	assert_int_equal(bh_acpi_build(buf, need, BH_ACPI_ADDR, &cfg, &res), 0);
	assert_int_equal(res.used, need);
	for (size_t len = 0; len < need; len++) {
		memset(buf, 0xa5, BUF_LEN);
		assert_int_equal(
		    bh_acpi_build(buf, len, BH_ACPI_ADDR, &cfg, &res), -ENOSPC);
		for (size_t i = len; i < need; i++)
			assert_int_equal(buf[i], 0xa5);
	}
	free(buf);
}

static void test_einval(void **state)
{
	struct bh_acpi_config cfg = { .vcpus = 0 };
	struct bh_acpi_result res;
	uint8_t *buf;

	(void)state;
	buf = calloc(1, BUF_LEN);
	assert_non_null(buf);
	assert_int_equal(bh_acpi_build(buf, BUF_LEN, BH_ACPI_ADDR, &cfg, &res),
			 -EINVAL);
	cfg.vcpus = BH_MAX_VCPUS + 1;
	assert_int_equal(bh_acpi_build(buf, BUF_LEN, BH_ACPI_ADDR, &cfg, &res),
			 -EINVAL);
	cfg.vcpus = 1;
	assert_int_equal(bh_acpi_build(buf, BUF_LEN, BH_ACPI_ADDR, NULL, &res),
			 -EINVAL);
	assert_int_equal(
	    bh_acpi_build(buf, BUF_LEN, UINT64_MAX - 16, &cfg, &res), -EINVAL);
	free(buf);
}

static void check_pkglen(size_t body, const uint8_t *want, int n)
{
	uint8_t out[4];

	assert_int_equal(aml_pkglen_encode(body, out), n);
	assert_memory_equal(out, want, (size_t)n);
}

/*
 * The encoded value counts the PkgLength bytes themselves, so the switch
 * to a longer form happens a few bytes before 64, 4096 and 1 MiB.
 */
static void test_pkglen(void **state)
{
	uint8_t out[4];

	(void)state;
	check_pkglen(0, (const uint8_t[]){ 0x01 }, 1);
	check_pkglen(62, (const uint8_t[]){ 0x3f }, 1);		      /* 63 */
	check_pkglen(63, (const uint8_t[]){ 0x41, 0x04 }, 2);	      /* 65 */
	check_pkglen(62 + 2, (const uint8_t[]){ 0x42, 0x04 }, 2);     /* 66 */
	check_pkglen(4093, (const uint8_t[]){ 0x4f, 0xff }, 2);	      /* 4095 */
	check_pkglen(4094, (const uint8_t[]){ 0x81, 0x00, 0x01 }, 3); /* 4097 */
	check_pkglen(0xffffc, (const uint8_t[]){ 0x8f, 0xff, 0xff }, 3);
	check_pkglen(0xffffd, (const uint8_t[]){ 0xc1, 0x00, 0x00, 0x01 }, 4);
	check_pkglen(0xffffffb, (const uint8_t[]){ 0xcf, 0xff, 0xff, 0xff }, 4);
	assert_int_equal(aml_pkglen_encode(0xffffffc, out), -EINVAL);
	assert_int_equal(aml_pkglen_encode(SIZE_MAX, out), -EINVAL);
}

/* A Device whose body crosses 63 bytes gets a two-byte PkgLength. */
static void test_nested_pkglen(void **state)
{
	uint8_t mem[256];
	struct aml_buf b;
	aml_mark scope, dev;

	(void)state;
	for (size_t body = 58; body < 66; body++) {
		size_t devlen = 4 + body; /* NameSeg and body */
		size_t plen = devlen + 1 <= 63 ? 1 : 2;
		size_t sbody;
		uint8_t *d;

		aml_buf_init(&b, mem, sizeof(mem));
		assert_int_equal(aml_scope(&b, "\\", &scope), 0);
		assert_int_equal(aml_device(&b, "DEV", &dev), 0);
		for (size_t i = 0; i < body; i++)
			assert_int_equal(aml_integer(&b, 0), 0);
		assert_int_equal(aml_end(&b, dev), 0);
		assert_int_equal(aml_end(&b, scope), 0);
		/* Scope: 0x10, a two-byte PkgLength, '\' NullName, Device. */
		sbody = 2 + 2 + plen + devlen;
		assert_int_equal(mem[0], 0x10);
		assert_int_equal(mem[1], 0x40 | ((sbody + 2) & 0xf));
		assert_int_equal(mem[2], (sbody + 2) >> 4);
		assert_int_equal(mem[3], '\\');
		assert_int_equal(mem[4], 0x00);
		d = mem + 5;
		assert_int_equal(d[0], 0x5b);
		assert_int_equal(d[1], 0x82);
		if (plen == 1) {
			assert_int_equal(d[2], devlen + 1);
		} else {
			assert_int_equal(d[2], 0x40 | ((devlen + 2) & 0xf));
			assert_int_equal(d[3], (devlen + 2) >> 4);
		}
		assert_memory_equal(d + 2 + plen, "DEV_", 4);
		assert_int_equal(b.len, 1 + 2 + sbody);
	}
}

static void check_aml(const struct aml_buf *b, const uint8_t *want, size_t n)
{
	assert_int_equal(b->err, 0);
	assert_int_equal(b->len, n);
	assert_memory_equal(b->data, want, n);
}

/*
 * ResourceTemplate() {
 *     IO(Decode16, 0x3F8, 0x3F8, 0x01, 0x08)
 *     IRQNoFlags() {4}
 * }
 * as ACPI 6.x 6.4.2 lays it out, with the End Tag checksum making the
 * descriptors sum to zero.
 */
static void test_restemplate_com1(void **state)
{
	static const uint8_t want[] = {
		0x11, 0x10, 0x0a, 0x0d, /* Buffer, PkgLength 16, size 13 */
		0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, /* IO */
		0x22, 0x10, 0x00, /* IRQNoFlags, mask 1 << 4 */
		0x79, 0x0e,	  /* End Tag */
	};
	uint8_t mem[64];
	struct aml_buf b;
	aml_mark m;

	(void)state;
	aml_buf_init(&b, mem, sizeof(mem));
	aml_restemplate(&b, &m);
	aml_io(&b, 0x3f8, 0x3f8, 1, 8);
	aml_irq_noflags(&b, 4);
	assert_int_equal(aml_restemplate_end(&b, m), 0);
	check_aml(&b, want, sizeof(want));
	assert_int_equal(sum8(mem + 4, sizeof(want) - 4), 0);
}

/*
 * Method(PCEJ, 2) {
 *     Acquire(BLCK, 0xFFFF)
 *     If (Arg0 & 0x02) { Notify(S01, Arg1) }
 *     B0EJ = One << Arg0
 *     Local7 = Arg6
 *     Release(BLCK)
 * }
 * Field(PCST, DWordAcc, NoLock, WriteAsZeros) { PCIU, 32, , 64, BIG, 300 }
 * Mutex(BLCK, 15)
 */
static void test_methods_fields(void **state)
{
	static const uint8_t want[] = {
		0x14, 0x2b, 'P',  'C',	'E',  'J',  0x02, /* Method */
		0x5b, 0x23, 'B',  'L',	'C',  'K',  0xff,
		0xff,					  /* Acquire */
		0xa0, 0x0c, 0x7b, 0x68, 0x0a, 0x02, 0x00, /* If (And) */
		0x86, 'S',  '0',  '1',	'_',  0x69,	  /* Notify */
		0x79, 0x01, 0x68, 'B',	'0',  'E',  'J',  /* ShiftLeft */
		0x70, 0x6e, 0x67,			  /* Store */
		0x5b, 0x27, 'B',  'L',	'C',  'K',	  /* Release */
		0x5b, 0x81, 0x14, 'P',	'C',  'S',  'T',
		0x43, /* Field */
		'P',  'C',  'I',  'U',	0x20, 0x00, 0x40,
		0x04,				    /* 64: two bytes */
		'B',  'I',  'G',  '_',	0x4c, 0x12, /* 300 bits: two bytes */
		0x5b, 0x01, 'B',  'L',	'C',  'K',  0x0f, /* Mutex */
	};
	static const struct aml_field_unit units[] = {
		{ "PCIU", 32 },
		{ NULL, 64 },
		{ "BIG", 300 },
	};
	uint8_t mem[128];
	struct aml_buf b;
	aml_mark m, c;

	(void)state;
	aml_buf_init(&b, mem, sizeof(mem));
	aml_method(&b, "PCEJ", 2, &m);
	aml_acquire(&b, "BLCK", 0xffff);
	aml_if(&b, &c);
	aml_op(&b, AML_OP_AND);
	aml_arg(&b, 0);
	aml_integer(&b, 2);
	aml_no_target(&b);
	aml_op(&b, AML_OP_NOTIFY);
	aml_namestring(&b, "S01");
	aml_arg(&b, 1);
	aml_end(&b, c);
	aml_op(&b, AML_OP_SHIFT_LEFT);
	aml_integer(&b, 1);
	aml_arg(&b, 0);
	aml_namestring(&b, "B0EJ");
	aml_op(&b, AML_OP_STORE);
	aml_arg(&b, 6);
	aml_local(&b, 7);
	aml_release(&b, "BLCK");
	aml_end(&b, m);
	aml_field(&b, "PCST", AML_FIELD_DWORD_ACC | AML_FIELD_WRITE_AS_ZEROS,
		  units, 3);
	aml_mutex(&b, "BLCK", 15);
	check_aml(&b, want, sizeof(want));

	/* Out of range operands stick as errors. */
	aml_buf_init(&b, mem, sizeof(mem));
	assert_int_equal(aml_arg(&b, 7), -EINVAL);
	aml_buf_init(&b, mem, sizeof(mem));
	assert_int_equal(aml_local(&b, 8), -EINVAL);
	aml_buf_init(&b, mem, sizeof(mem));
	assert_int_equal(aml_mutex(&b, "BLCK", 16), -EINVAL);
	aml_buf_init(&b, mem, sizeof(mem));
	assert_int_equal(
	    aml_field(&b, "PCST", 0, &(struct aml_field_unit){ "A.B", 8 }, 1),
	    -EINVAL);
	aml_buf_init(&b, mem, sizeof(mem));
	assert_int_equal(
	    aml_field(&b, "PCST", 0, &(struct aml_field_unit){ "AB", 0 }, 1),
	    -EINVAL);
}

/* Memory32Fixed(ReadWrite, 0xFEB00000, 0x1000) */
static void test_memory32_fixed(void **state)
{
	static const uint8_t want[] = { 0x86, 0x09, 0x00, 0x01, 0x00, 0x00,
					0xb0, 0xfe, 0x00, 0x10, 0x00, 0x00 };
	uint8_t mem[16];
	struct aml_buf b;

	(void)state;
	aml_buf_init(&b, mem, sizeof(mem));
	assert_int_equal(aml_memory32_fixed(&b, true, 0xfeb00000u, 0x1000), 0);
	check_aml(&b, want, sizeof(want));
}

/* The PCI root bridge's windows, field by field. */
static void test_address_descriptors(void **state)
{
	static const uint8_t want[] = {
		/* WordBusNumber(Producer, MinFixed, MaxFixed, PosDecode,
		 * 0, 0, 0xff, 0, 0x100) */
		0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00,
		0xff, 0x00, 0x00, 0x00, 0x00, 0x01,
		/* WordIO(..., EntireRange) 0xd00-0xffff */
		0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x0d,
		0xff, 0xff, 0x00, 0x00, 0x00, 0xf3,
		/* DWordMemory(..., NonCacheable, ReadWrite)
		 * 0xc0000000-0xdfffffff */
		0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x20,
		/* QWordMemory(..., Prefetchable, ReadWrite)
		 * 0x8000000000-0x80ffffffff */
		0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x07, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00,
		0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x01, 0x00, 0x00, 0x00
	};
	uint8_t mem[128];
	struct aml_buf b;

	(void)state;
	aml_buf_init(&b, mem, sizeof(mem));
	aml_word_bus_number(&b, 0, 0xff);
	aml_word_io(&b, 0xd00, 0xffff);
	aml_dword_memory(&b, AML_MEM_NONCACHEABLE, true, 0xc0000000,
			 0xdfffffff);
	aml_qword_memory(&b, AML_MEM_PREFETCHABLE, true, 0x8000000000ULL,
			 0x80ffffffffULL);
	check_aml(&b, want, sizeof(want));

	/* Ranges that cannot be described. */
	aml_buf_init(&b, mem, sizeof(mem));
	assert_int_equal(aml_word_io(&b, 2, 1), -EINVAL);
	aml_buf_init(&b, mem, sizeof(mem));
	assert_int_equal(aml_word_io(&b, 0, 0xffff), -EINVAL);
	aml_buf_init(&b, mem, sizeof(mem));
	assert_int_equal(aml_irq_noflags(&b, 16), -EINVAL);
}

static void test_namestring(void **state)
{
	static const uint8_t want[] = {
		'_',  'H',  'I', 'D',	   /* one segment */
		'_',  'S',  '5', '_',	   /* padded */
		'\\', '_',  'S', 'B', '_', /* root prefix */
		'\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', /* dual */
		0x2f, 0x03, 'A', '_', '_', '_', 'B', 'C', '_', '_',
		'C',  '1',  '2', '3',		/* multi */
		'^',  '^',  'X', '_', '_', '_', /* parent prefixes */
		'\\', 0x00,			/* the root itself */
	};
	static const char *const bad[] = {
		"",  "1ABC", "ABCDE", "A..B", "A.",
		"a", "\\^A", "A-B",   "\\.",  "^\\A"
	};
	uint8_t mem[64];
	struct aml_buf b;

	(void)state;
	aml_buf_init(&b, mem, sizeof(mem));
	aml_namestring(&b, "_HID");
	aml_namestring(&b, "_S5");
	aml_namestring(&b, "\\_SB");
	aml_namestring(&b, "\\_SB.PCI0");
	aml_namestring(&b, "A.BC.C123");
	aml_namestring(&b, "^^X");
	aml_namestring(&b, "\\");
	check_aml(&b, want, sizeof(want));

	for (size_t i = 1; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_buf_init(&b, mem, sizeof(mem));
		assert_int_equal(aml_namestring(&b, bad[i]), -EINVAL);
	}
	/* An empty path is the NullName. */
	aml_buf_init(&b, mem, sizeof(mem));
	assert_int_equal(aml_namestring(&b, bad[0]), 0);
	check_aml(&b, (const uint8_t[]){ 0x00 }, 1);
}

static void test_integer_string(void **state)
{
	static const uint8_t want[] = {
		0x00, 0x01, 0x0a, 0x02, 0x0a, 0xff, 0x0b, 0x00, 0x01, 0x0c,
		0x00, 0x00, 0x01, 0x00, 0x0c, 0xff, 0xff, 0xff, 0xff, 0x0e,
		0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0d, 'h',
		'i',  0x00, 0x0c, 0x41, 0xd0, 0x0a, 0x08,
	};
	uint8_t mem[64];
	struct aml_buf b;
	uint32_t v;

	(void)state;
	aml_buf_init(&b, mem, sizeof(mem));
	aml_integer(&b, 0);
	aml_integer(&b, 1);
	aml_integer(&b, 2);
	aml_integer(&b, 0xff);
	aml_integer(&b, 0x100);
	aml_integer(&b, 0x10000);
	aml_integer(&b, 0xffffffff);
	aml_integer(&b, 0x100000000ULL);
	aml_string(&b, "hi");
	aml_eisaid(&b, "PNP0A08");
	check_aml(&b, want, sizeof(want));

	assert_int_equal(aml_eisaid_value("PNP0A03", &v), 0);
	assert_int_equal(v, 0x030ad041);
	assert_int_equal(aml_eisaid_value("PNP0a03", &v), -EINVAL);
	assert_int_equal(aml_eisaid_value("pNP0A03", &v), -EINVAL);
	assert_int_equal(aml_eisaid_value("PNP0A0", &v), -EINVAL);
}

/* A full buffer fails once and every later call reports the same error. */
static void test_sticky_error(void **state)
{
	uint8_t mem[8];
	struct aml_buf b;
	aml_mark m;

	(void)state;
	aml_buf_init(&b, mem, sizeof(mem));
	assert_int_equal(aml_device(&b, "DEV", &m), 0);
	assert_int_equal(aml_integer(&b, 0x12345678), -ENOSPC);
	assert_int_equal(aml_integer(&b, 0), -ENOSPC);
	assert_int_equal(aml_end(&b, m), -ENOSPC);
	assert_int_equal(b.err, -ENOSPC);
	assert_true(b.len <= sizeof(mem));

	/* Closing a construct needs room for its PkgLength too. */
	aml_buf_init(&b, mem, 6);
	aml_device(&b, "DEV", &m);
	assert_int_equal(aml_end(&b, m), -ENOSPC);
}

/* Writes each table to DIR/<name>.dat for a disassembler to check. */
static int dump(const char *dir)
{
	static const char *const names[] = { "rsdp", "xsdt", "facp", "apic",
					     "dsdt" };
	struct bh_acpi_config cfg = { .vcpus = 4 };
	struct tables t;
	const uint8_t *tabs[5];
	char path[4096];
	int ret = 1;

	t.buf = calloc(1, BUF_LEN);
	if (!t.buf)
		return 1;
	if (bh_acpi_build(t.buf, BUF_LEN, BH_ACPI_ADDR, &cfg, &t.res) < 0)
		goto out;
	tabs[0] = t.buf + (t.res.rsdp_gpa - BH_ACPI_ADDR);
	tabs[1] = t.buf + (bh_get_le64(tabs[0] + 24) - BH_ACPI_ADDR);
	tabs[2] = t.buf + (bh_get_le64(tabs[1] + 36) - BH_ACPI_ADDR);
	tabs[3] = t.buf + (bh_get_le64(tabs[1] + 44) - BH_ACPI_ADDR);
	tabs[4] = t.buf + (bh_get_le64(tabs[2] + 140) - BH_ACPI_ADDR);
	for (size_t i = 0; i < 5; i++) {
		/* The RSDP has its length at offset 20, the others at 4. */
		size_t len = bh_get_le32(tabs[i] + (i == 0 ? 20 : 4));
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s.dat", dir, names[i]);
		f = fopen(path, "wb");
		if (!f)
			goto out;
		if (fwrite(tabs[i], 1, len, f) != len) {
			fclose(f);
			goto out;
		}
		if (fclose(f) != 0)
			goto out;
	}
	ret = 0;
out:
	free(t.buf);
	return ret;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fadt),
		cmocka_unit_test(test_dsdt),
		cmocka_unit_test(test_madt),
		cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_einval),
		cmocka_unit_test(test_pkglen),
		cmocka_unit_test(test_nested_pkglen),
		cmocka_unit_test(test_restemplate_com1),
		cmocka_unit_test(test_address_descriptors),
		cmocka_unit_test(test_methods_fields),
		cmocka_unit_test(test_memory32_fixed),
		cmocka_unit_test(test_namestring),
		cmocka_unit_test(test_integer_string),
		cmocka_unit_test(test_sticky_error),
	};

	if (argc == 3 && strcmp(argv[1], "--dump") == 0)
		return dump(argv[2]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
