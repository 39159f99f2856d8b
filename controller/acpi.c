/* acpi: lays out the guest's RSDP, XSDT, FADT, DSDT and MADT in one buffer. */
#include "acpi.h"

#include <errno.h>
#include <string.h>

#include <bulkhead/platform.h>

#include "aml.h"
#include <bulkhead/le.h>

#define ACPI_OEM_ID	   "BLKHD "
#define ACPI_OEM_TABLE_ID  "BULKHEAD"
#define ACPI_OEM_REVISION  1
#define ACPI_CREATOR_ID	   "BLKH"
#define ACPI_CREATOR_REV   1
#define ACPI_HYPERVISOR_ID "BLKHDVMM"

#define ACPI_ALIGN 8
#define HDR_LEN	   36

/* RSDP, ACPI 6.x 5.2.5.3. */
#define RSDP_LEN	  36
#define RSDP_V1_LEN	  20 /* what the first checksum covers */
#define RSDP_CHECKSUM	  8
#define RSDP_OEM_ID	  9
#define RSDP_REVISION	  15
#define RSDP_LENGTH	  20
#define RSDP_XSDT	  24
#define RSDP_EXT_CHECKSUM 32

/* Common table header, 5.2.6. */
#define HDR_LENGTH	 4
#define HDR_REVISION	 8
#define HDR_CHECKSUM	 9
#define HDR_OEM_ID	 10
#define HDR_OEM_TABLE_ID 16
#define HDR_OEM_REVISION 24
#define HDR_CREATOR_ID	 28
#define HDR_CREATOR_REV	 32

#define XSDT_REVISION 1
#define XSDT_ENTRIES  2 /* FADT, MADT */

/* FADT of ACPI 6.0 (revision 6, minor 0), 5.2.9. */
#define FADT_LEN	    276
#define FADT_REVISION	    6
#define FADT_MINOR	    0
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS	    112
#define FADT_RESET_REG	    116
#define FADT_RESET_VALUE    128
#define FADT_MINOR_VERSION  131
#define FADT_X_DSDT	    140
#define FADT_SLEEP_CTL_REG  244
#define FADT_SLEEP_STS_REG  256
#define FADT_HYPERVISOR_ID  268

#define FADT_F_PWR_BUTTON    (1u << 4)
#define FADT_F_SLP_BUTTON    (1u << 5)
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED    (1u << 20)
#define FADT_BOOT_NO_VGA     (1u << 2)

/* Generic Address Structure, 5.2.3.2. */
#define GAS_SYSTEM_IO	1
#define GAS_ACCESS_BYTE 1

#define DSDT_REVISION 2 /* 64-bit AML integers */

/* MADT of ACPI 6.0, 5.2.12. */
#define MADT_REVISION	    4
#define MADT_HDR_LEN	    44
#define MADT_LAPIC_ADDR	    36
#define MADT_FLAGS	    40
#define MADT_LAPIC	    0
#define MADT_LAPIC_LEN	    8
#define MADT_LAPIC_ENABLED  1u
#define MADT_IOAPIC	    1
#define MADT_IOAPIC_LEN	    12
#define MADT_LAPIC_NMI	    4
#define MADT_LAPIC_NMI_LEN  6
#define MADT_ALL_PROCESSORS 0xff
#define MADT_NMI_LINT1	    1

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)-sum;
}

/*
 * Reserves len bytes at the next aligned offset after *off. -ENOSPC if the
 * buffer cannot hold them.
 */
static int take(size_t *off, size_t buflen, size_t len, size_t *at)
{
	size_t a = (*off + ACPI_ALIGN - 1) & ~(size_t)(ACPI_ALIGN - 1);

	if (a < *off || a > buflen || len > buflen - a)
		return -ENOSPC;
	*at = a;
	*off = a + len;
	return 0;
}

/* The checksum is filled in by seal() once the table is complete. */
static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	bh_put_le32(t + HDR_LENGTH, len);
	t[HDR_REVISION] = rev;
	memcpy(t + HDR_OEM_ID, ACPI_OEM_ID, 6);
	memcpy(t + HDR_OEM_TABLE_ID, ACPI_OEM_TABLE_ID, 8);
	bh_put_le32(t + HDR_OEM_REVISION, ACPI_OEM_REVISION);
	memcpy(t + HDR_CREATOR_ID, ACPI_CREATOR_ID, 4);
	bh_put_le32(t + HDR_CREATOR_REV, ACPI_CREATOR_REV);
}

static void seal(uint8_t *t, size_t len)
{
	t[HDR_CHECKSUM] = 0;
	t[HDR_CHECKSUM] = checksum(t, len);
}

static void gas_io8(uint8_t *g, uint16_t port)
{
	g[0] = GAS_SYSTEM_IO;
	g[1] = 8; /* bit width */
	g[2] = 0; /* bit offset */
	g[3] = GAS_ACCESS_BYTE;
	bh_put_le64(g + 4, port);
}

static void build_fadt(uint8_t *t, uint64_t dsdt_gpa)
{
	memset(t, 0, FADT_LEN);
	header(t, "FACP", FADT_LEN, FADT_REVISION);
	/*
	 * Hardware-reduced: no PM1/GPE blocks, no SCI, no FACS. The button
	 * flags say there are no fixed-feature buttons to look for.
	 */
	bh_put_le32(t + FADT_FLAGS, FADT_F_HW_REDUCED | FADT_F_RESET_REG_SUP |
					FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON);
	/* No "CMOS RTC not present": the runner emulates one. */
	bh_put_le16(t + FADT_IAPC_BOOT_ARCH, FADT_BOOT_NO_VGA);
	gas_io8(t + FADT_RESET_REG, BH_PORT_ACPI_RESET);
	t[FADT_RESET_VALUE] = BH_ACPI_RESET_VALUE;
	t[FADT_MINOR_VERSION] = FADT_MINOR;
	/* The 32-bit DSDT field stays 0 so that only X_DSDT is used. */
	bh_put_le64(t + FADT_X_DSDT, dsdt_gpa);
	gas_io8(t + FADT_SLEEP_CTL_REG, BH_PORT_ACPI_SLEEP_CTL);
	gas_io8(t + FADT_SLEEP_STS_REG, BH_PORT_ACPI_SLEEP_STS);
	memcpy(t + FADT_HYPERVISOR_ID, ACPI_HYPERVISOR_ID, 8);
	seal(t, FADT_LEN);
}

/* Hotplug slots: every device number of bus 0 but the host bridge's. */
#define SLOT_FIRST 1
#define SLOT_LAST  31
/* Notify values (ACPI 6.x 5.6.6): a device appeared, or is to go. */
#define NOTIFY_DEVICE_CHECK  1
#define NOTIFY_EJECT_REQUEST 3
#define ACQUIRE_FOREVER	     0xffff

static void slot_name(char out[5], unsigned int slot)
{
	static const char hex[] = "0123456789ABCDEF";

	out[0] = 'S';
	out[1] = hex[slot >> 4];
	out[2] = hex[slot & 15];
	out[3] = '\0';
}

/*
 * Device(Snn) for each slot: _ADR and _SUN say which, and _EJ0 tells the
 * runner through PHPR.PCEJ that the guest has let the function go. Then
 * DVNT(mask, value) notifies each slot whose bit is set in mask: PSCN
 * calls it with the added (device check) and the removed (eject request)
 * slots, which the guest's ACPI PCI hotplug driver acts on.
 */
static int dsdt_pci0_slots(struct aml_buf *b)
{
	aml_mark dev, m, cond;
	char name[5];

	for (unsigned int s = SLOT_FIRST; s <= SLOT_LAST; s++) {
		slot_name(name, s);
		aml_device(b, name, &dev);
		aml_name(b, "_ADR");
		aml_integer(b, (uint64_t)s << 16); /* device s, function 0 */
		aml_name(b, "_SUN");
		aml_integer(b, s);
		aml_method(b, "_EJ0", 1, &m);
		aml_call(b, "\\_SB.PHPR.PCEJ");
		aml_namestring(b, "_SUN");
		aml_namestring(b, "_SEG");
		aml_end(b, m);
		aml_end(b, dev);
	}
	aml_method(b, "DVNT", 2, &m);
	for (unsigned int s = SLOT_FIRST; s <= SLOT_LAST; s++) {
		slot_name(name, s);
		aml_if(b, &cond);
		aml_op(b, AML_OP_AND);
		aml_arg(b, 0);
		aml_integer(b, 1ULL << s);
		aml_no_target(b);
		aml_op(b, AML_OP_NOTIFY);
		aml_namestring(b, name);
		aml_arg(b, 1);
		aml_end(b, cond);
	}
	return aml_end(b, m);
}

/*
 * The PCI hotplug controller: the runner's register block (platform.h) as
 * fields, a mutex so that one scan or eject at a time uses PSEG, PCEJ for
 * the slots' _EJ0 and PSCN for the generic event device below.
 */
static int dsdt_phpr(struct aml_buf *b)
{
	static const struct aml_field_unit regs[] = {
		{ "PCIU", 32 }, { "PCID", 32 }, { "B0EJ", 32 },
		{ "PSEG", 32 }, { "GDAT", 32 },
	};
	aml_mark dev, crs, m;

	aml_device(b, "PHPR", &dev);
	aml_name(b, "_HID");
	aml_eisaid(b, "PNP0A06"); /* generic container */
	aml_name(b, "_UID");
	aml_string(b, "PCI Hotplug Controller");
	aml_name(b, "_CRS");
	aml_restemplate(b, &crs);
	aml_memory32_fixed(b, true, (uint32_t)BH_HOTPLUG_MMIO_ADDR,
			   (uint32_t)BH_HOTPLUG_MMIO_SIZE);
	aml_restemplate_end(b, crs);
	aml_mutex(b, "BLCK", 0);
	aml_opregion_memory(b, "PCST", BH_HOTPLUG_MMIO_ADDR,
			    BH_HOTPLUG_REGS_LEN);
	aml_field(b, "PCST", AML_FIELD_DWORD_ACC | AML_FIELD_WRITE_AS_ZEROS,
		  regs, sizeof(regs) / sizeof(regs[0]));

	/* PCEJ(slot, segment): B0EJ = 1 << slot */
	aml_method(b, "PCEJ", 2, &m);
	aml_acquire(b, "BLCK", ACQUIRE_FOREVER);
	aml_op(b, AML_OP_STORE);
	aml_arg(b, 1);
	aml_namestring(b, "PSEG");
	aml_op(b, AML_OP_SHIFT_LEFT);
	aml_integer(b, 1);
	aml_arg(b, 0);
	aml_namestring(b, "B0EJ");
	aml_release(b, "BLCK");
	aml_end(b, m);

	/* PSCN(): each register is read once, which clears it. */
	aml_method(b, "PSCN", 0, &m);
	aml_acquire(b, "BLCK", ACQUIRE_FOREVER);
	aml_op(b, AML_OP_STORE);
	aml_integer(b, 0);
	aml_namestring(b, "PSEG");
	aml_call(b, "\\_SB.PCI0.DVNT");
	aml_namestring(b, "PCIU");
	aml_integer(b, NOTIFY_DEVICE_CHECK);
	aml_call(b, "\\_SB.PCI0.DVNT");
	aml_namestring(b, "PCID");
	aml_integer(b, NOTIFY_EJECT_REQUEST);
	aml_release(b, "BLCK");
	aml_end(b, m);
	return aml_end(b, dev);
}

/*
 * The hotplug event: a second generic event device, on its own interrupt
 * so that the power button's stays as simple as it is. _EVT reads (and so
 * clears) GDAT and scans the slots if the runner asked for it.
 */
static int dsdt_ged_hotplug(struct aml_buf *b)
{
	aml_mark dev, crs, evt, cond;

	aml_device(b, "GED1", &dev);
	aml_name(b, "_HID");
	aml_string(b, "ACPI0013");
	aml_name(b, "_UID");
	aml_integer(b, 1);
	aml_name(b, "_CRS");
	aml_restemplate(b, &crs);
	aml_interrupt(b, true, false, BH_IRQ_GED_HOTPLUG);
	aml_restemplate_end(b, crs);
	aml_method(b, "_EVT", 1, &evt);
	aml_op(b, AML_OP_STORE);
	aml_namestring(b, "\\_SB.PHPR.GDAT");
	aml_local(b, 0);
	aml_if(b, &cond);
	aml_op(b, AML_OP_AND);
	aml_local(b, 0);
	aml_integer(b, BH_GED_PCI_HOTPLUG);
	aml_no_target(b);
	aml_call(b, "\\_SB.PHPR.PSCN");
	aml_end(b, cond);
	aml_end(b, evt);
	return aml_end(b, dev);
}

static int dsdt_pci0(struct aml_buf *b)
{
	aml_mark dev, crs;

	/*
	 * No _ADR: ACPI 6.x 6.1 wants either _HID or _ADR on a device, and
	 * a root bridge is found by its _HID.
	 */
	aml_device(b, "PCI0", &dev);
	aml_name(b, "_HID");
	aml_eisaid(b, "PNP0A08"); /* PCI Express root bridge */
	aml_name(b, "_CID");
	aml_eisaid(b, "PNP0A03"); /* PCI root bridge */
	aml_name(b, "_SEG");
	aml_integer(b, 0);
	aml_name(b, "_UID");
	aml_integer(b, 0);
	aml_name(b, "_BBN");
	aml_integer(b, 0);
	/*
	 * The bridge forwards every I/O port except its own configuration
	 * ports (0xcf8-0xcff), which are listed as consumed.
	 */
	aml_name(b, "_CRS");
	aml_restemplate(b, &crs);
	aml_word_bus_number(b, 0, 0);
	aml_io(b, BH_PORT_PCI_ADDR, BH_PORT_PCI_ADDR, 1, 8);
	aml_word_io(b, 0x0000, BH_PORT_PCI_ADDR - 1);
	aml_word_io(b, BH_PORT_PCI_ADDR + 8, 0xffff);
	aml_dword_memory(
	    b, AML_MEM_NONCACHEABLE, true, (uint32_t)BH_PCI_MMIO32_START,
	    (uint32_t)(BH_PCI_MMIO32_START + BH_PCI_MMIO32_SIZE - 1));
	aml_restemplate_end(b, crs);
	dsdt_pci0_slots(b);
	return aml_end(b, dev);
}

static int dsdt_com1(struct aml_buf *b)
{
	aml_mark dev, crs;

	aml_device(b, "COM1", &dev);
	aml_name(b, "_HID");
	aml_eisaid(b, "PNP0501"); /* 16550A-compatible UART */
	aml_name(b, "_UID");
	aml_integer(b, 1);
	aml_name(b, "_CRS");
	aml_restemplate(b, &crs);
	aml_io(b, BH_PORT_COM1, BH_PORT_COM1, 1, 8);
	aml_irq_noflags(b, BH_IRQ_COM1);
	aml_restemplate_end(b, crs);
	return aml_end(b, dev);
}

/* The CMOS RTC; described so that Linux's rtc_cmos gets its interrupt
 * through ACPI, there being no legacy PIC in hardware-reduced mode. */
static int dsdt_rtc(struct aml_buf *b)
{
	aml_mark dev, crs;

	aml_device(b, "RTC", &dev);
	aml_name(b, "_HID");
	aml_eisaid(b, "PNP0B00"); /* AT real-time clock */
	aml_name(b, "_CRS");
	aml_restemplate(b, &crs);
	aml_io(b, BH_PORT_CMOS, BH_PORT_CMOS, 1, 2);
	aml_irq_noflags(b, BH_IRQ_RTC);
	aml_restemplate_end(b, crs);
	return aml_end(b, dev);
}

/*
 * The power button of a hardware-reduced machine: a generic event device
 * (ACPI0013) whose interrupt the runner pulses, and whose _EVT method
 * notifies the button device (PNP0C0C) with 0x80, "pressed".
 */
static int dsdt_power_button(struct aml_buf *b)
{
	aml_mark dev, crs, evt;

	aml_device(b, "PWRB", &dev);
	aml_name(b, "_HID");
	aml_eisaid(b, "PNP0C0C");
	aml_name(b, "_UID");
	aml_integer(b, 0);
	aml_end(b, dev);

	aml_device(b, "GED0", &dev);
	aml_name(b, "_HID");
	aml_string(b, "ACPI0013");
	aml_name(b, "_UID");
	aml_integer(b, 0);
	aml_name(b, "_CRS");
	aml_restemplate(b, &crs);
	aml_interrupt(b, true, false, BH_IRQ_GED);
	aml_restemplate_end(b, crs);
	/* One event only: the argument (the GSI) needs no test. */
	aml_method(b, "_EVT", 1, &evt);
	aml_notify(b, "\\_SB.PWRB", 0x80);
	aml_end(b, evt);
	return aml_end(b, dev);
}

static int dsdt_aml(struct aml_buf *b)
{
	aml_mark pkg, sb;

	/*
	 * \_S5_: Linux reads SLP_TYPa from the first element and writes it to
	 * the sleep control register; the other three are SLP_TYPb and
	 * reserved.
	 */
	aml_name(b, "_S5");
	aml_package(b, 4, &pkg);
	aml_integer(b, BH_ACPI_S5_TYPE);
	aml_integer(b, 0);
	aml_integer(b, 0);
	aml_integer(b, 0);
	aml_end(b, pkg);

	aml_scope(b, "\\_SB", &sb);
	/* Before PCI0, whose slots' _EJ0 call into it. */
	dsdt_phpr(b);
	dsdt_pci0(b);
	dsdt_com1(b);
	dsdt_rtc(b);
	dsdt_power_button(b);
	dsdt_ged_hotplug(b);
	return aml_end(b, sb);
}

static int build_dsdt(uint8_t *buf, size_t *off, size_t buflen, size_t *at)
{
	struct aml_buf b;
	size_t len;
	int r;

	r = take(off, buflen, HDR_LEN, at);
	if (r < 0)
		return r;
	/* The AML may use whatever the buffer has left; take() trims it. */
	aml_buf_init(&b, buf + *at + HDR_LEN, buflen - *at - HDR_LEN);
	r = dsdt_aml(&b);
	if (r < 0)
		return r;
	len = HDR_LEN + b.len;
	if (len > UINT32_MAX)
		return -ENOSPC;
	memset(buf + *at, 0, HDR_LEN);
	header(buf + *at, "DSDT", (uint32_t)len, DSDT_REVISION);
	seal(buf + *at, len);
	*off = *at + len;
	return 0;
}

static size_t madt_len(unsigned int vcpus)
{
	return MADT_HDR_LEN + (size_t)vcpus * MADT_LAPIC_LEN + MADT_IOAPIC_LEN +
	       MADT_LAPIC_NMI_LEN;
}

static void build_madt(uint8_t *t, unsigned int vcpus)
{
	size_t len = madt_len(vcpus);
	uint8_t *e;

	memset(t, 0, len);
	header(t, "APIC", (uint32_t)len, MADT_REVISION);
	bh_put_le32(t + MADT_LAPIC_ADDR, (uint32_t)BH_LAPIC_ADDR);
	/*
	 * No PCAT_COMPAT: a hardware-reduced guest does not use the 8259s
	 * even though KVM's irqchip models them.
	 */
	bh_put_le32(t + MADT_FLAGS, 0);
	e = t + MADT_HDR_LEN;
	for (unsigned int i = 0; i < vcpus; i++, e += MADT_LAPIC_LEN) {
		e[0] = MADT_LAPIC;
		e[1] = MADT_LAPIC_LEN;
		e[2] = (uint8_t)i; /* ACPI processor UID */
		e[3] = (uint8_t)i; /* APIC id */
		bh_put_le32(e + 4, MADT_LAPIC_ENABLED);
	}
	e[0] = MADT_IOAPIC;
	e[1] = MADT_IOAPIC_LEN;
	e[2] = 0; /* I/O APIC id */
	bh_put_le32(e + 4, (uint32_t)BH_IOAPIC_ADDR);
	bh_put_le32(e + 8, 0); /* GSI base */
	e += MADT_IOAPIC_LEN;
	e[0] = MADT_LAPIC_NMI;
	e[1] = MADT_LAPIC_NMI_LEN;
	e[2] = MADT_ALL_PROCESSORS;
	bh_put_le16(e + 3, 0); /* polarity and trigger as the bus defines */
	e[5] = MADT_NMI_LINT1;
	seal(t, len);
}

int bh_acpi_build(uint8_t *buf, size_t buflen, uint64_t buf_gpa,
		  const struct bh_acpi_config *cfg, struct bh_acpi_result *out)
{
	size_t off = 0, rsdp, xsdt, fadt, dsdt, madt;
	size_t xsdt_len = HDR_LEN + XSDT_ENTRIES * 8;
	uint8_t *p;
	int r;

	if (!buf || !cfg || !out)
		return -EINVAL;
	if (cfg->vcpus == 0 || cfg->vcpus > BH_MAX_VCPUS)
		return -EINVAL;
	if (buf_gpa > UINT64_MAX - buflen)
		return -EINVAL;

	/* The DSDT follows the FADT so its address is known before it. */
	r = take(&off, buflen, RSDP_LEN, &rsdp);
	if (r < 0)
		return r;
	r = take(&off, buflen, xsdt_len, &xsdt);
	if (r < 0)
		return r;
	r = take(&off, buflen, FADT_LEN, &fadt);
	if (r < 0)
		return r;
	r = build_dsdt(buf, &off, buflen, &dsdt);
	if (r < 0)
		return r;
	r = take(&off, buflen, madt_len(cfg->vcpus), &madt);
	if (r < 0)
		return r;

	build_fadt(buf + fadt, buf_gpa + dsdt);
	build_madt(buf + madt, cfg->vcpus);

	p = buf + xsdt;
	memset(p, 0, xsdt_len);
	header(p, "XSDT", (uint32_t)xsdt_len, XSDT_REVISION);
	bh_put_le64(p + HDR_LEN, buf_gpa + fadt);
	bh_put_le64(p + HDR_LEN + 8, buf_gpa + madt);
	seal(p, xsdt_len);

	p = buf + rsdp;
	memset(p, 0, RSDP_LEN);
	memcpy(p, "RSD PTR ", 8);
	memcpy(p + RSDP_OEM_ID, ACPI_OEM_ID, 6);
	p[RSDP_REVISION] = 2;
	bh_put_le32(p + RSDP_LENGTH, RSDP_LEN);
	bh_put_le64(p + RSDP_XSDT, buf_gpa + xsdt);
	p[RSDP_CHECKSUM] = checksum(p, RSDP_V1_LEN);
	p[RSDP_EXT_CHECKSUM] = checksum(p, RSDP_LEN);

	out->rsdp_gpa = buf_gpa + rsdp;
	out->used = off;
	return 0;
}
