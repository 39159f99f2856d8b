/* The runner's port devices: UART, CMOS, PCI host bridge, the boot-progress
 * port, and the two ways a guest ends a run (ACPI sleep/reset registers, the
 * i8042 reset line). */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/platform.h>
#include <bulkhead/util.h>

#include "runner.h"

#define I8042_CMD_RESET 0xfe

static void uart_set_irq(void *opaque, int level)
{
	struct runner *rn = opaque;
	struct kvm_irq_level irq = { .irq = BH_IRQ_COM1, .level = level };

	if (ioctl(rn->vm, KVM_IRQ_LINE, &irq) < 0)
		bh_log_ratelimited(BH_LOG_ERR, "KVM_IRQ_LINE: %s",
				   strerror(errno));
}

static void uart_output(void *opaque, const uint8_t *data, size_t len)
{
	struct runner *rn = opaque;
	Bh__SerialData msg = BH__SERIAL_DATA__INIT;

	msg.data.data = (uint8_t *)data;
	msg.data.len = len;
	int r = runner_send(rn, BH__MSG_TYPE__MSG_SERIAL_OUT, &msg.base);

	if (r < 0)
		bh_log_ratelimited(BH_LOG_WARN, "serial output lost: %s",
				   strerror(-r));
}

/* Wakes the main loop, which sends a partial line (a prompt) after a short
 * delay unless a newline sends it first. */
static void uart_tx_pending(void *opaque)
{
	struct runner *rn = opaque;
	uint64_t one = 1;

	if (write(rn->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		bh_log_ratelimited(BH_LOG_WARN, "cannot wake the main loop: %s",
				   strerror(errno));
}

static const struct bh_uart_ops uart_ops = {
	.set_irq = uart_set_irq,
	.output = uart_output,
	.tx_pending = uart_tx_pending,
};

static uint32_t uart_io_read(void *opaque, unsigned int off, unsigned int size)
{
	return bh_uart_read(opaque, off);
}

static void uart_io_write(void *opaque, unsigned int off, unsigned int size,
			  uint32_t val)
{
	bh_uart_write(opaque, off, (uint8_t)val);
}

static uint32_t cmos_io_read(void *opaque, unsigned int off, unsigned int size)
{
	return bh_cmos_read(opaque, off);
}

static void cmos_io_write(void *opaque, unsigned int off, unsigned int size,
			  uint32_t val)
{
	bh_cmos_write(opaque, off, (uint8_t)val);
}

static uint32_t pci_io_read(void *opaque, unsigned int off, unsigned int size)
{
	return bh_pci_read(opaque, off, size);
}

static void pci_io_write(void *opaque, unsigned int off, unsigned int size,
			 uint32_t val)
{
	bh_pci_write(opaque, off, size, val);
}

/* i8042: the status port reads "nothing to read, ready for a command", and
 * the one command we act on is the CPU reset pulse. */
static uint32_t i8042_io_read(void *opaque, unsigned int off, unsigned int size)
{
	return 0;
}

static void i8042_io_write(void *opaque, unsigned int off, unsigned int size,
			   uint32_t val)
{
	struct runner *rn = opaque;

	if (off == BH_PORT_I8042_CMD - BH_PORT_I8042_DATA &&
	    (val & 0xff) == I8042_CMD_RESET)
		runner_guest_event(rn, BH__GUEST_EVENT__KIND__RESET, 0,
				   "reset through the i8042 controller");
}

static uint32_t acpi_io_read(void *opaque, unsigned int off, unsigned int size)
{
	return 0;
}

static void acpi_io_write(void *opaque, unsigned int off, unsigned int size,
			  uint32_t val)
{
	struct runner *rn = opaque;
	unsigned int port = BH_PORT_ACPI_SLEEP_CTL + off;

	if (port == BH_PORT_ACPI_SLEEP_CTL && (val & BH_ACPI_SLP_EN)) {
		unsigned int typ =
		    (val & BH_ACPI_SLP_TYP_MASK) >> BH_ACPI_SLP_TYP_SHIFT;

		if (typ == BH_ACPI_S5_TYPE)
			runner_guest_event(rn, BH__GUEST_EVENT__KIND__POWEROFF,
					   0, "ACPI poweroff (S5)");
		else
			bh_log_ratelimited(BH_LOG_WARN,
					   "guest asked for sleep state type "
					   "%u, which is not supported",
					   typ);
	} else if (port == BH_PORT_ACPI_RESET &&
		   (val & 0xff) == BH_ACPI_RESET_VALUE) {
		runner_guest_event(rn, BH__GUEST_EVENT__KIND__RESET, 0,
				   "ACPI reset");
	}
}

/* Boot progress: every byte written is logged with the time since the
 * runner started and the CLOCK_MONOTONIC time (a caller can set it against
 * its own clock); reads return nothing. */
static uint32_t progress_io_read(void *opaque, unsigned int off,
				 unsigned int size)
{
	return 0xff;
}

static void progress_io_write(void *opaque, unsigned int off, unsigned int size,
			      uint32_t val)
{
	struct runner *rn = opaque;
	uint64_t now = bh_now_ns();

	bh_log_ratelimited(BH_LOG_INFO,
			   "guest boot progress 0x%02x after %.3f ms, "
			   "monotonic %llu.%09llu",
			   val & 0xff, (double)(now - rn->start_ns) / 1e6,
			   (unsigned long long)(now / 1000000000ULL),
			   (unsigned long long)(now % 1000000000ULL));
}

int runner_platform_init(struct runner *rn, int serial)
{
	const struct bh_io_range ranges[] = {
		{ BH_PORT_COM1, 8, "uart", uart_io_read, uart_io_write,
		  &rn->uart },
		{ BH_PORT_CMOS, 2, "cmos", cmos_io_read, cmos_io_write,
		  &rn->cmos },
		{ BH_PORT_PCI_ADDR, 8, "pci", pci_io_read, pci_io_write,
		  &rn->pci },
		{ BH_PORT_I8042_DATA, 5, "i8042", i8042_io_read, i8042_io_write,
		  rn },
		{ BH_PORT_ACPI_SLEEP_CTL, 3, "acpi", acpi_io_read,
		  acpi_io_write, rn },
		{ BH_PORT_BOOT_PROGRESS, 1, "boot-progress", progress_io_read,
		  progress_io_write, rn },
	};
	uint64_t below = 0, above = 0;
	int r;

	if (rn->ram_size > BH_MEM_32BIT_GAP_START) {
		below = BH_MEM_32BIT_GAP_START;
		above = rn->ram_size - BH_MEM_32BIT_GAP_START;
	} else {
		below = rn->ram_size;
	}
	bh_cmos_init(&rn->cmos, below, above);
	bh_pci_init(&rn->pci);
	if (serial) {
		bh_uart_init(&rn->uart, &uart_ops, rn);
		rn->have_uart = 1;
	}
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		if (i == 0 && !serial)
			continue;
		r = bh_iobus_add(&rn->iobus, &ranges[i]);
		if (r < 0) {
			bh_err("cannot place %s at port 0x%x: %s",
			       ranges[i].name, ranges[i].base, strerror(-r));
			return r;
		}
	}
	return 0;
}
