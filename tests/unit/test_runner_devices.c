/* Unit tests for the vCPU runner's device models, driven the way Linux's
 * drivers probe and use them: 16550A, CMOS RTC, PCI mechanism #1, the port
 * bus, CPUID patching, the VM-exit counters and the advice on guest RAM. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "cmos.h"
#include "cpuid.h"
#include "exitstats.h"
#include "guestmem.h"
#include "iobus.h"
#include "pci.h"
#include "uart.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* 16550 register offsets and bits, as include/uapi/linux/serial_reg.h. */
#define RBR 0
#define THR 0
#define DLL 0
#define IER 1
#define DLM 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

#define IER_RDI	 0x01
#define IER_THRI 0x02
#define IIR_NO	 0x01
#define IIR_THR	 0x02
#define IIR_RD	 0x04
#define IIR_FIFO 0xc0
#define LCR_DLAB 0x80
#define LCR_8N1	 0x03
#define MCR_DTR	 0x01
#define MCR_RTS	 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define LSR_DR	 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

/* What the UART told its owner: line transitions and transmitted bytes. */
struct uart_sink {
	int level;
	int rises;
	int falls;
	size_t out_calls;
	size_t last_len;
	size_t out_len;
	uint8_t out[8192];
	struct bh_uart *uart;
};

static void sink_set_irq(void *opaque, int level)
{
	struct uart_sink *s = opaque;

	/* The model reports transitions only: a repeated level is a bug. */
	assert_int_not_equal(level, s->level);
	s->level = level;
	if (level)
		s->rises++;
	else
		s->falls++;
}

static void sink_output(void *opaque, const uint8_t *data, size_t len)
{
	struct uart_sink *s = opaque;

	/* Output may wait for the controller: never with the register lock
	 * held, which the runner's main thread needs for serial input. */
	assert_int_equal(pthread_mutex_trylock(&s->uart->lock), 0);
	pthread_mutex_unlock(&s->uart->lock);
	assert_true(len > 0);
	assert_true(s->out_len + len <= sizeof(s->out));
	memcpy(s->out + s->out_len, data, len);
	s->out_len += len;
	s->last_len = len;
	s->out_calls++;
}

static const struct bh_uart_ops sink_ops = {
	.set_irq = sink_set_irq,
	.output = sink_output,
};

struct uart_fixture {
	struct bh_uart u;
	struct uart_sink sink;
};

static int uart_setup(void **state)
{
	struct uart_fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	bh_uart_init(&f->u, &sink_ops, &f->sink);
	f->sink.uart = &f->u;
	*state = f;
	return 0;
}

static int uart_teardown(void **state)
{
	struct uart_fixture *f = *state;

	bh_uart_destroy(&f->u);
	free(f);
	return 0;
}

static void uart_puts(struct bh_uart *u, const char *s)
{
	while (*s)
		bh_uart_write(u, THR, (uint8_t)*s++);
}

/* autoconfig() in drivers/tty/serial/8250/8250_port.c, step by step. */
static void test_uart_probe(void **state)
{
	struct uart_fixture *f = *state;
	struct bh_uart *u = &f->u;

	/* Scratch register round trip. */
	bh_uart_write(u, SCR, 0xa5);
	assert_int_equal(bh_uart_read(u, SCR), 0xa5);
	bh_uart_write(u, SCR, 0x5a);
	assert_int_equal(bh_uart_read(u, SCR), 0x5a);

	/* IER: the low four bits read back what was written. */
	bh_uart_write(u, IER, 0);
	assert_int_equal(bh_uart_read(u, IER) & 0x0f, 0);
	bh_uart_write(u, IER, 0x0f);
	assert_int_equal(bh_uart_read(u, IER) & 0x0f, 0x0f);
	bh_uart_write(u, IER, 0);

	/* Loopback test: RTS and OUT2 come back as CTS and DCD. */
	bh_uart_write(u, MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);
	assert_int_equal(bh_uart_read(u, MSR) & 0xf0, 0x90);
	bh_uart_write(u, MCR, MCR_LOOP | MCR_DTR | MCR_OUT1);
	assert_int_equal(bh_uart_read(u, MSR) & 0xf0, 0x60);
	bh_uart_write(u, MCR, MCR_OUT2 | MCR_RTS | MCR_DTR);
	/* Out of loopback the modem lines say a peer is there. */
	assert_int_equal(bh_uart_read(u, MSR) & 0xf0, 0xb0);

	/* FIFO detection: IIR bits 7:6 are 3 once the FIFO is enabled. */
	bh_uart_write(u, FCR, 0);
	assert_int_equal(bh_uart_read(u, IIR) & IIR_FIFO, 0);
	bh_uart_write(u, FCR, 0x01);
	assert_int_equal(bh_uart_read(u, IIR) & IIR_FIFO, IIR_FIFO);
	assert_int_equal(bh_uart_read(u, IIR), IIR_FIFO | IIR_NO);

	/* Divisor latch. */
	bh_uart_write(u, IER, 0x05);
	bh_uart_write(u, LCR, LCR_DLAB | LCR_8N1);
	assert_int_equal(bh_uart_read(u, LCR), LCR_DLAB | LCR_8N1);
	assert_int_equal(bh_uart_read(u, DLL), 1); /* 115200 baud */
	bh_uart_write(u, DLL, 0x0c);
	bh_uart_write(u, DLM, 0x34);
	assert_int_equal(bh_uart_read(u, DLL), 0x0c);
	assert_int_equal(bh_uart_read(u, DLM), 0x34);
	assert_int_equal(f->sink.out_calls, 0); /* a DLL write is no THR */
	bh_uart_write(u, LCR, LCR_8N1);
	assert_int_equal(bh_uart_read(u, IER), 0x05);
	bh_uart_write(u, LCR, LCR_DLAB | LCR_8N1);
	assert_int_equal(bh_uart_read(u, DLL), 0x0c);
	assert_int_equal(bh_uart_read(u, DLM), 0x34);
	bh_uart_write(u, LCR, LCR_8N1);

	/* Transmitter idle. */
	assert_int_equal(bh_uart_read(u, LSR), LSR_THRE | LSR_TEMT);
}

static void test_uart_thri(void **state)
{
	struct uart_fixture *f = *state;
	struct bh_uart *u = &f->u;

	assert_int_equal(f->sink.level, 0);
	assert_int_equal(f->sink.rises, 0);
	assert_int_equal(bh_uart_read(u, IIR), IIR_NO);

	/* Enabling THRI with an empty holding register interrupts at once. */
	bh_uart_write(u, IER, IER_THRI);
	assert_int_equal(f->sink.level, 1);
	assert_int_equal(f->sink.rises, 1);

	/* Reading IIR identifies and acknowledges it. */
	assert_int_equal(bh_uart_read(u, IIR), IIR_THR);
	assert_int_equal(f->sink.level, 0);
	assert_int_equal(f->sink.falls, 1);
	assert_int_equal(bh_uart_read(u, IIR), IIR_NO);

	/* Each transmitted byte empties the register again: a new edge. */
	bh_uart_write(u, THR, 'a');
	assert_int_equal(f->sink.level, 1);
	assert_int_equal(f->sink.rises, 2);

	/* Writing THR while the line is still high drops it first so that
	 * an edge-triggered pin sees the next interrupt. */
	bh_uart_write(u, THR, 'b');
	assert_int_equal(f->sink.level, 1);
	assert_int_equal(f->sink.rises, 3);
	assert_int_equal(f->sink.falls, 2);

	/* With the FIFO on, IIR carries the FIFO bits too. */
	bh_uart_write(u, FCR, 0x01);
	assert_int_equal(bh_uart_read(u, IIR), IIR_FIFO | IIR_THR);
	assert_int_equal(f->sink.level, 0);

	/* Disabling THRI leaves nothing pending. */
	bh_uart_write(u, THR, 'c');
	assert_int_equal(f->sink.level, 1);
	bh_uart_write(u, IER, 0);
	assert_int_equal(f->sink.level, 0);
	assert_int_equal(bh_uart_read(u, IIR), IIR_FIFO | IIR_NO);
}

static void test_uart_out2_gates_irq(void **state)
{
	struct uart_fixture *f = *state;
	struct bh_uart *u = &f->u;

	bh_uart_write(u, MCR, MCR_DTR | MCR_RTS);
	bh_uart_write(u, IER, IER_THRI | IER_RDI);
	bh_uart_write(u, THR, 'x');
	assert_int_equal(bh_uart_receive(u, (const uint8_t *)"y", 1), 1);
	assert_int_equal(f->sink.level, 0);
	assert_int_equal(f->sink.rises, 0);
	/* The interrupt is still identified, only the pin is gated. */
	assert_int_equal(bh_uart_read(u, IIR), IIR_RD);

	bh_uart_write(u, MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
	assert_int_equal(f->sink.level, 1);
	bh_uart_write(u, MCR, MCR_DTR | MCR_RTS);
	assert_int_equal(f->sink.level, 0);
	assert_int_equal(f->sink.rises, 1);
	assert_int_equal(f->sink.falls, 1);
}

static void test_uart_output_lines(void **state)
{
	struct uart_fixture *f = *state;
	struct bh_uart *u = &f->u;

	assert_false(bh_uart_tx_pending(u));
	uart_puts(u, "hello, world");
	assert_int_equal(f->sink.out_calls, 0);
	assert_true(bh_uart_tx_pending(u));
	bh_uart_write(u, THR, '\n');
	assert_int_equal(f->sink.out_calls, 1);
	assert_int_equal(f->sink.out_len, 13);
	assert_memory_equal(f->sink.out, "hello, world\n", 13);
	assert_false(bh_uart_tx_pending(u));

	/* A prompt without a newline goes out on the periodic flush. */
	uart_puts(u, "login: ");
	assert_int_equal(f->sink.out_calls, 1);
	bh_uart_flush(u);
	assert_int_equal(f->sink.out_calls, 2);
	assert_int_equal(f->sink.last_len, 7);
	assert_memory_equal(f->sink.out + 13, "login: ", 7);
	assert_false(bh_uart_tx_pending(u));

	/* Nothing buffered: nothing delivered. */
	bh_uart_flush(u);
	assert_int_equal(f->sink.out_calls, 2);
}

static void test_uart_output_full_buffer(void **state)
{
	struct uart_fixture *f = *state;
	struct bh_uart *u = &f->u;
	size_t i;

	for (i = 0; i < BH_UART_TX_BUF - 1; i++)
		bh_uart_write(u, THR, (uint8_t)('a' + i % 26));
	assert_int_equal(f->sink.out_calls, 0);
	bh_uart_write(u, THR, 'Z');
	assert_int_equal(f->sink.out_calls, 1);
	assert_int_equal(f->sink.last_len, BH_UART_TX_BUF);
	for (i = 0; i < BH_UART_TX_BUF - 1; i++)
		assert_int_equal(f->sink.out[i], 'a' + i % 26);
	assert_int_equal(f->sink.out[BH_UART_TX_BUF - 1], 'Z');
	assert_false(bh_uart_tx_pending(u));

	/* The buffer starts over. */
	uart_puts(u, "ok\n");
	assert_int_equal(f->sink.out_calls, 2);
	assert_int_equal(f->sink.last_len, 3);
	assert_memory_equal(f->sink.out + BH_UART_TX_BUF, "ok\n", 3);
}

static void test_uart_receive(void **state)
{
	struct uart_fixture *f = *state;
	struct bh_uart *u = &f->u;

	bh_uart_write(u, FCR, 0x07);
	bh_uart_write(u, IER, IER_RDI);
	assert_int_equal(f->sink.level, 0);
	assert_int_equal(bh_uart_read(u, LSR) & LSR_DR, 0);

	assert_int_equal(bh_uart_receive(u, (const uint8_t *)"hi!", 3), 3);
	assert_int_equal(bh_uart_read(u, LSR) & LSR_DR, LSR_DR);
	assert_int_equal(bh_uart_read(u, IIR), IIR_FIFO | IIR_RD);
	assert_int_equal(f->sink.level, 1);
	/* Reading IIR does not acknowledge received data. */
	assert_int_equal(bh_uart_read(u, IIR), IIR_FIFO | IIR_RD);
	assert_int_equal(f->sink.level, 1);

	assert_int_equal(bh_uart_read(u, RBR), 'h');
	assert_int_equal(bh_uart_read(u, RBR), 'i');
	assert_int_equal(bh_uart_read(u, LSR) & LSR_DR, LSR_DR);
	assert_int_equal(f->sink.level, 1);
	assert_int_equal(bh_uart_read(u, RBR), '!');
	assert_int_equal(bh_uart_read(u, LSR) & LSR_DR, 0);
	assert_int_equal(f->sink.level, 0);
	assert_int_equal(bh_uart_read(u, IIR), IIR_FIFO | IIR_NO);

	/* Received data outranks THR empty. */
	bh_uart_write(u, IER, IER_RDI | IER_THRI);
	assert_int_equal(bh_uart_receive(u, (const uint8_t *)"z", 1), 1);
	assert_int_equal(bh_uart_read(u, IIR), IIR_FIFO | IIR_RD);
	assert_int_equal(bh_uart_read(u, RBR), 'z');
	assert_int_equal(bh_uart_read(u, IIR), IIR_FIFO | IIR_THR);
	assert_int_equal(bh_uart_read(u, IIR), IIR_FIFO | IIR_NO);

	/* FCR can clear the receive FIFO. */
	assert_int_equal(bh_uart_receive(u, (const uint8_t *)"abc", 3), 3);
	bh_uart_write(u, FCR, 0x03);
	assert_int_equal(bh_uart_read(u, LSR) & LSR_DR, 0);
	assert_int_equal(f->sink.level, 0);
}

static void test_uart_receive_full(void **state)
{
	struct uart_fixture *f = *state;
	struct bh_uart *u = &f->u;
	size_t n = BH_UART_RX_BUF + 1000, i;
	uint8_t *data = malloc(n);

	assert_non_null(data);
	for (i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7 % 251);
	assert_int_equal(bh_uart_receive(u, data, 100), 100);
	assert_int_equal(bh_uart_receive(u, data + 100, n - 100),
			 BH_UART_RX_BUF - 100);
	assert_int_equal(bh_uart_receive(u, data, 1), 0);

	/* Drain part, so the ring wraps on the next receive. */
	for (i = 0; i < 50; i++)
		assert_int_equal(bh_uart_read(u, RBR), data[i]);
	assert_int_equal(bh_uart_receive(u, data + BH_UART_RX_BUF, 60), 50);
	for (i = 50; i < BH_UART_RX_BUF + 50; i++) {
		assert_int_equal(bh_uart_read(u, LSR) & LSR_DR, LSR_DR);
		assert_int_equal(bh_uart_read(u, RBR), data[i]);
	}
	assert_int_equal(bh_uart_read(u, LSR) & LSR_DR, 0);
	assert_int_equal(f->sink.rises, 0); /* IER is clear */
	free(data);
}

static void test_uart_loopback(void **state)
{
	struct uart_fixture *f = *state;
	struct bh_uart *u = &f->u;

	bh_uart_write(u, MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);
	uart_puts(u, "Z\n");
	assert_int_equal(bh_uart_read(u, LSR) & LSR_DR, LSR_DR);
	assert_int_equal(bh_uart_read(u, RBR), 'Z');
	assert_int_equal(bh_uart_read(u, RBR), '\n');
	assert_int_equal(bh_uart_read(u, LSR) & LSR_DR, 0);
	assert_false(bh_uart_tx_pending(u));
	bh_uart_flush(u);
	assert_int_equal(f->sink.out_calls, 0);

	/* Out of loopback the next byte goes to the host again. */
	bh_uart_write(u, MCR, MCR_OUT2 | MCR_RTS | MCR_DTR);
	uart_puts(u, "Y\n");
	assert_int_equal(f->sink.out_calls, 1);
	assert_memory_equal(f->sink.out, "Y\n", 2);
	assert_int_equal(bh_uart_read(u, LSR) & LSR_DR, 0);
}

/* CMOS: index at offset 0 (port 0x70), data at offset 1 (port 0x71). */
static uint8_t cmos_get(struct bh_cmos *c, uint8_t reg)
{
	bh_cmos_write(c, 0, reg);
	return bh_cmos_read(c, 1);
}

static void cmos_set(struct bh_cmos *c, uint8_t reg, uint8_t val)
{
	bh_cmos_write(c, 0, reg);
	bh_cmos_write(c, 1, val);
}

static time_t utc(int year, int mon, int mday, int hour, int min, int sec)
{
	struct tm tm = {
		.tm_year = year - 1900,
		.tm_mon = mon - 1,
		.tm_mday = mday,
		.tm_hour = hour,
		.tm_min = min,
		.tm_sec = sec,
	};

	return timegm(&tm);
}

static void test_cmos_time(void **state)
{
	struct bh_cmos c;

	bh_cmos_init(&c, 512ULL << 20, 0);
	c.fixed_time = utc(2026, 11, 23, 10, 45, 58);

	/* BCD, 24-hour: how bh_cmos_init leaves register B. */
	assert_int_equal(cmos_get(&c, 0x0b) & 0x06, 0x02);
	assert_int_equal(cmos_get(&c, 0x00), 0x58);
	assert_int_equal(cmos_get(&c, 0x02), 0x45);
	assert_int_equal(cmos_get(&c, 0x04), 0x10);
	assert_int_equal(cmos_get(&c, 0x06), 0x02); /* Monday */
	assert_int_equal(cmos_get(&c, 0x07), 0x23);
	assert_int_equal(cmos_get(&c, 0x08), 0x11);
	assert_int_equal(cmos_get(&c, 0x09), 0x26);
	assert_int_equal(cmos_get(&c, 0x32), 0x20);

	/* Binary, 24-hour. */
	cmos_set(&c, 0x0b, 0x06);
	assert_int_equal(cmos_get(&c, 0x0b), 0x06);
	assert_int_equal(cmos_get(&c, 0x00), 58);
	assert_int_equal(cmos_get(&c, 0x02), 45);
	assert_int_equal(cmos_get(&c, 0x04), 10);
	assert_int_equal(cmos_get(&c, 0x06), 2);
	assert_int_equal(cmos_get(&c, 0x07), 23);
	assert_int_equal(cmos_get(&c, 0x08), 11);
	assert_int_equal(cmos_get(&c, 0x09), 26);
	assert_int_equal(cmos_get(&c, 0x32), 20);

	/* The turn of a century. */
	c.fixed_time = utc(1999, 12, 31, 23, 59, 59);
	assert_int_equal(cmos_get(&c, 0x09), 99);
	assert_int_equal(cmos_get(&c, 0x32), 19);
	c.fixed_time = utc(2000, 1, 1, 0, 0, 0);
	assert_int_equal(cmos_get(&c, 0x09), 0);
	assert_int_equal(cmos_get(&c, 0x32), 20);
	assert_int_equal(cmos_get(&c, 0x08), 1);
	assert_int_equal(cmos_get(&c, 0x07), 1);
}

static void test_cmos_12h(void **state)
{
	static const struct {
		int hour;
		uint8_t bcd, bin;
	} cases[] = {
		{ 0, 0x12, 12 },
		{ 1, 0x01, 1 },
		{ 10, 0x10, 10 },
		{ 11, 0x11, 11 },
		{ 12, 0x80 | 0x12, 0x80 | 12 },
		{ 13, 0x80 | 0x01, 0x80 | 1 },
		{ 22, 0x80 | 0x10, 0x80 | 10 },
		{ 23, 0x80 | 0x11, 0x80 | 11 },
	};
	struct bh_cmos c;
	size_t i;

	bh_cmos_init(&c, 512ULL << 20, 0);
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		c.fixed_time = utc(2026, 11, 23, cases[i].hour, 45, 58);
		cmos_set(&c, 0x0b, 0x00);
		assert_int_equal(cmos_get(&c, 0x04), cases[i].bcd);
		assert_int_equal(cmos_get(&c, 0x02), 0x45);
		cmos_set(&c, 0x0b, 0x04);
		assert_int_equal(cmos_get(&c, 0x04), cases[i].bin);
		assert_int_equal(cmos_get(&c, 0x02), 45);
	}
}

static void test_cmos_status_registers(void **state)
{
	struct bh_cmos c;
	int i;

	bh_cmos_init(&c, 512ULL << 20, 0);
	/* The host's real clock: update-in-progress never shows. */
	for (i = 0; i < 10000; i++)
		assert_int_equal(cmos_get(&c, 0x0a) & 0x80, 0);
	assert_int_equal(cmos_get(&c, 0x0a), 0x26);
	cmos_set(&c, 0x0a, 0xa6);
	assert_int_equal(cmos_get(&c, 0x0a) & 0x80, 0);

	/* Register D: valid RAM and time, read-only. */
	assert_int_equal(cmos_get(&c, 0x0d), 0x80);
	cmos_set(&c, 0x0d, 0x00);
	assert_int_equal(cmos_get(&c, 0x0d), 0x80);

	/* Register C: no interrupt flags. */
	assert_int_equal(cmos_get(&c, 0x0c), 0);

	/* Linux's CMOS_READ sets the NMI-disable bit on the index port. */
	assert_int_equal(cmos_get(&c, 0x80 | 0x0d), 0x80);
	cmos_set(&c, 0x80 | 0x40, 0x5a);
	assert_int_equal(cmos_get(&c, 0x40), 0x5a);
	assert_int_equal(cmos_get(&c, 0x80 | 0x40), 0x5a);
}

static void test_cmos_nvram(void **state)
{
	struct bh_cmos c;
	unsigned int r;

	bh_cmos_init(&c, 512ULL << 20, 0);
	for (r = 0x40; r < 0x80; r++)
		cmos_set(&c, (uint8_t)r, (uint8_t)(r ^ 0xa5));
	cmos_set(&c, 0x0f, 0x00); /* shutdown status byte */
	for (r = 0x40; r < 0x80; r++)
		assert_int_equal(cmos_get(&c, (uint8_t)r), r ^ 0xa5);
	assert_int_equal(cmos_get(&c, 0x0f), 0x00);
	cmos_set(&c, 0x0f, 0x0a);
	assert_int_equal(cmos_get(&c, 0x0f), 0x0a);
}

static void test_cmos_time_writes_ignored(void **state)
{
	static const uint8_t regs[] = { 0x00, 0x02, 0x04, 0x06,
					0x07, 0x08, 0x09, 0x32 };
	uint8_t before[ARRAY_SIZE(regs)];
	struct bh_cmos c;
	size_t i;

	bh_cmos_init(&c, 512ULL << 20, 0);
	c.fixed_time = utc(2026, 11, 23, 10, 45, 58);
	for (i = 0; i < ARRAY_SIZE(regs); i++)
		before[i] = cmos_get(&c, regs[i]);
	/* What hwclock --systohc does: set B's SET bit, write, clear it. */
	cmos_set(&c, 0x0b, 0x82);
	for (i = 0; i < ARRAY_SIZE(regs); i++)
		cmos_set(&c, regs[i], 0x01);
	cmos_set(&c, 0x0b, 0x02);
	for (i = 0; i < ARRAY_SIZE(regs); i++)
		assert_int_equal(cmos_get(&c, regs[i]), before[i]);
}

static void test_cmos_memory_size(void **state)
{
	struct bh_cmos c;

	/* 2 GiB below 4 GiB, 6 GiB above. */
	bh_cmos_init(&c, 2ULL << 30, 6ULL << 30);
	/* (2 GiB - 16 MiB) / 64 KiB = 0x7f00 */
	assert_int_equal(cmos_get(&c, 0x34), 0x00);
	assert_int_equal(cmos_get(&c, 0x35), 0x7f);
	/* 6 GiB / 64 KiB = 0x18000 */
	assert_int_equal(cmos_get(&c, 0x5b), 0x00);
	assert_int_equal(cmos_get(&c, 0x5c), 0x80);
	assert_int_equal(cmos_get(&c, 0x5d), 0x01);
	/* KiB above 1 MiB, capped at 0xffff. */
	assert_int_equal(cmos_get(&c, 0x30), 0xff);
	assert_int_equal(cmos_get(&c, 0x31), 0xff);
	assert_int_equal(cmos_get(&c, 0x17), 0xff);
	assert_int_equal(cmos_get(&c, 0x18), 0xff);

	/* 64 MiB, nothing above 4 GiB. */
	bh_cmos_init(&c, 64ULL << 20, 0);
	assert_int_equal(cmos_get(&c, 0x34), 0x00); /* 48 MiB = 0x300 */
	assert_int_equal(cmos_get(&c, 0x35), 0x03);
	assert_int_equal(cmos_get(&c, 0x5b), 0);
	assert_int_equal(cmos_get(&c, 0x5c), 0);
	assert_int_equal(cmos_get(&c, 0x5d), 0);
	assert_int_equal(cmos_get(&c, 0x30), 0x00); /* 63 MiB = 0xfc00 KiB */
	assert_int_equal(cmos_get(&c, 0x31), 0xfc);

	/* 3 GiB + 512 MiB below 4 GiB and 1 GiB + 64 KiB above. */
	bh_cmos_init(&c, 0xe0000000ULL, (1ULL << 30) + 0x10000);
	assert_int_equal(cmos_get(&c, 0x34), 0x00); /* 0xdf00 */
	assert_int_equal(cmos_get(&c, 0x35), 0xdf);
	assert_int_equal(cmos_get(&c, 0x5b), 0x01); /* 0x4001 */
	assert_int_equal(cmos_get(&c, 0x5c), 0x40);
	assert_int_equal(cmos_get(&c, 0x5d), 0x00);
}

/* PCI: address register at offset 0 (0xcf8), data at 4-7 (0xcfc-0xcff). */
static uint32_t pci_cfg(struct bh_pci *p, uint32_t addr, unsigned int reg,
			unsigned int size)
{
	bh_pci_write(p, 0, 4, addr | (reg & 0xfc));
	return bh_pci_read(p, 4 + (reg & 3), size);
}

static void test_pci_address_register(void **state)
{
	struct bh_pci p;

	bh_pci_init(&p);
	bh_pci_write(&p, 0, 4, 0x80000000);
	assert_int_equal(bh_pci_read(&p, 0, 4), 0x80000000);
	bh_pci_write(&p, 0, 4, 0x12345678);
	assert_int_equal(bh_pci_read(&p, 0, 4), 0x12345678);

	/* pci_check_type1(): outb(0x01, 0xcfb) must not disturb the
	 * address register, which then round-trips 0x80000000. */
	bh_pci_write(&p, 0, 4, 0);
	bh_pci_write(&p, 3, 1, 0x01);
	assert_int_equal(bh_pci_read(&p, 0, 4), 0);
	bh_pci_write(&p, 0, 4, 0x80000000);
	assert_int_equal(bh_pci_read(&p, 0, 4), 0x80000000);
	bh_pci_write(&p, 3, 1, 0x01);
	bh_pci_write(&p, 0, 1, 0x00);
	bh_pci_write(&p, 2, 2, 0x1234);
	assert_int_equal(bh_pci_read(&p, 0, 4), 0x80000000);

	/* pci_check_type2() reads 0xcf8 and 0xcfa bytewise expecting 0:
	 * this is not a mechanism #2 bridge. */
	assert_int_not_equal(bh_pci_read(&p, 0, 1), 0);
	assert_int_not_equal(bh_pci_read(&p, 2, 1), 0);
}

static void test_pci_host_bridge(void **state)
{
	struct bh_pci p;

	bh_pci_init(&p);
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x00, 4), 0x0d578086);
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x00, 2), 0x8086);
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x02, 2), 0x0d57);
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x00, 1), 0x86);
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x01, 1), 0x80);
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x02, 1), 0x57);
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x03, 1), 0x0d);

	/* Class code: bridge, host bridge (pci_sanity_check reads the word
	 * at 0x0a). */
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x08, 4) >> 16, 0x0600);
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x0a, 2), 0x0600);
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x0b, 1), 0x06);
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x0a, 1), 0x00);

	/* Header type 0, single function. */
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x0e, 1), 0x00);

	/* The low two bits of the address register do not select bytes. */
	bh_pci_write(&p, 0, 4, 0x80000003);
	assert_int_equal(bh_pci_read(&p, 4, 4), 0x0d578086);
}

static void test_pci_absent(void **state)
{
	static const uint32_t absent[] = {
		0x80000800, /* 00:01.0 */
		0x8000f800, /* 00:1f.0 */
		0x80000100, /* 00:00.1 */
		0x80010000, /* 01:00.0 */
		0x00000000, /* 00:00.0, enable bit clear */
		0x00000800, /* 00:01.0, enable bit clear */
	};
	struct bh_pci p;
	size_t i;
	unsigned int off;

	bh_pci_init(&p);
	for (i = 0; i < ARRAY_SIZE(absent); i++) {
		assert_int_equal(pci_cfg(&p, absent[i], 0x00, 4), 0xffffffff);
		assert_int_equal(pci_cfg(&p, absent[i], 0x08, 4), 0xffffffff);
		for (off = 0; off < 4; off += 2)
			assert_int_equal(pci_cfg(&p, absent[i], off, 2),
					 0xffff);
		for (off = 0; off < 4; off++)
			assert_int_equal(pci_cfg(&p, absent[i], off, 1), 0xff);
		/* Writes to nothing are dropped. */
		bh_pci_write(&p, 4, 4, 0);
		assert_int_equal(bh_pci_read(&p, 4, 4), 0xffffffff);
	}
	/* And the host bridge is still there. */
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x00, 4), 0x0d578086);
}

static void test_pci_host_bridge_writes(void **state)
{
	struct bh_pci p;
	unsigned int reg;

	bh_pci_init(&p);
	for (reg = 0; reg < 256; reg += 4) {
		bh_pci_write(&p, 0, 4, 0x80000000 | reg);
		bh_pci_write(&p, 4, 4, 0xffffffff);
		bh_pci_write(&p, 6, 2, 0x0000);
		bh_pci_write(&p, 7, 1, 0x55);
	}
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x00, 4), 0x0d578086);
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x0a, 2), 0x0600);
	/* BAR sizing finds no BARs. */
	assert_int_equal(pci_cfg(&p, 0x80000000, 0x10, 4), 0);
	/* Odd sizes are refused without touching anything. */
	bh_pci_write(&p, 0, 4, 0x80000000);
	bh_pci_write(&p, 4, 3, 0);
	assert_int_equal(bh_pci_read(&p, 4, 3), 0xffffffff);
	assert_int_equal(bh_pci_read(&p, 4, 4), 0x0d578086);
}

/* iobus */
struct io_dev {
	int reads, writes;
	unsigned int off, size;
	uint32_t val;
	uint32_t ret;
};

static uint32_t io_read(void *opaque, unsigned int off, unsigned int size)
{
	struct io_dev *d = opaque;

	d->reads++;
	d->off = off;
	d->size = size;
	return d->ret;
}

static void io_write(void *opaque, unsigned int off, unsigned int size,
		     uint32_t val)
{
	struct io_dev *d = opaque;

	d->writes++;
	d->off = off;
	d->size = size;
	d->val = val;
}

static struct bh_io_range io_range(uint16_t base, uint16_t len,
				   struct io_dev *d)
{
	struct bh_io_range r = {
		.base = base,
		.len = len,
		.name = "dev",
		.read = io_read,
		.write = io_write,
		.opaque = d,
	};

	return r;
}

static void test_iobus_add(void **state)
{
	struct bh_iobus bus = { 0 };
	struct io_dev d = { 0 };
	struct bh_io_range r;
	unsigned int i;

	r = io_range(0x3f8, 8, &d);
	assert_int_equal(bh_iobus_add(&bus, &r), 0);
	r = io_range(0x3fc, 8, &d);
	assert_int_equal(bh_iobus_add(&bus, &r), -EEXIST);
	r = io_range(0x3f0, 9, &d);
	assert_int_equal(bh_iobus_add(&bus, &r), -EEXIST);
	r = io_range(0x3f9, 1, &d);
	assert_int_equal(bh_iobus_add(&bus, &r), -EEXIST);
	r = io_range(0x300, 0x200, &d);
	assert_int_equal(bh_iobus_add(&bus, &r), -EEXIST);
	/* Adjacent on both sides is fine. */
	r = io_range(0x3f0, 8, &d);
	assert_int_equal(bh_iobus_add(&bus, &r), 0);
	r = io_range(0x400, 1, &d);
	assert_int_equal(bh_iobus_add(&bus, &r), 0);

	r = io_range(0x70, 0, &d);
	assert_int_equal(bh_iobus_add(&bus, &r), -EINVAL);
	r = io_range(0xfff9, 8, &d);
	assert_int_equal(bh_iobus_add(&bus, &r), -EINVAL);
	r = io_range(0xffff, 0xffff, &d);
	assert_int_equal(bh_iobus_add(&bus, &r), -EINVAL);
	r = io_range(0xfff8, 8, &d);
	assert_int_equal(bh_iobus_add(&bus, &r), 0);
	assert_int_equal(bus.n, 4);

	for (i = bus.n; i < BH_IOBUS_MAX; i++) {
		r = io_range((uint16_t)(0x1000 + i * 0x10), 0x10, &d);
		assert_int_equal(bh_iobus_add(&bus, &r), 0);
	}
	r = io_range(0x8000, 4, &d);
	assert_int_equal(bh_iobus_add(&bus, &r), -ENOSPC);
	assert_int_equal(bus.n, BH_IOBUS_MAX);
}

static void test_iobus_find(void **state)
{
	struct bh_iobus bus = { 0 };
	struct io_dev a = { 0 }, b = { 0 };
	struct bh_io_range r;
	const struct bh_io_range *found;

	r = io_range(0x3f8, 8, &a);
	assert_int_equal(bh_iobus_add(&bus, &r), 0);
	r = io_range(0xcf8, 8, &b);
	assert_int_equal(bh_iobus_add(&bus, &r), 0);

	found = bh_iobus_find(&bus, 0x3f8, 1);
	assert_non_null(found);
	assert_ptr_equal(found->opaque, &a);
	found = bh_iobus_find(&bus, 0x3ff, 1);
	assert_non_null(found);
	assert_ptr_equal(found->opaque, &a);
	assert_non_null(bh_iobus_find(&bus, 0x3fe, 2));
	assert_non_null(bh_iobus_find(&bus, 0x3fc, 4));
	assert_null(bh_iobus_find(&bus, 0x3ff, 2));
	assert_null(bh_iobus_find(&bus, 0x3fd, 4));
	assert_null(bh_iobus_find(&bus, 0x3f7, 2));
	assert_null(bh_iobus_find(&bus, 0x3f7, 1));
	assert_null(bh_iobus_find(&bus, 0x400, 1));
	found = bh_iobus_find(&bus, 0xcfc, 4);
	assert_non_null(found);
	assert_ptr_equal(found->opaque, &b);
	assert_null(bh_iobus_find(&bus, 0xffff, 4));
}

static void test_iobus_dispatch(void **state)
{
	struct bh_iobus bus = { 0 };
	struct io_dev a = { 0 }, b = { 0 };
	struct bh_io_range r;
	uint32_t val;

	r = io_range(0x3f8, 8, &a);
	assert_int_equal(bh_iobus_add(&bus, &r), 0);
	r = io_range(0xcf8, 8, &b);
	assert_int_equal(bh_iobus_add(&bus, &r), 0);

	/* Unclaimed: all ones of the access size, no handler runs. */
	val = 0;
	assert_null(bh_iobus_read(&bus, 0x80, 1, &val));
	assert_int_equal(val, 0xff);
	assert_null(bh_iobus_read(&bus, 0x80, 2, &val));
	assert_int_equal(val, 0xffff);
	assert_null(bh_iobus_read(&bus, 0x80, 4, &val));
	assert_int_equal(val, 0xffffffff);
	assert_null(bh_iobus_read(&bus, 0x3ff, 2, &val));
	assert_int_equal(val, 0xffff);
	assert_null(bh_iobus_write(&bus, 0x80, 1, 0x12));
	assert_int_equal(a.reads + a.writes + b.reads + b.writes, 0);

	/* Claimed: the handler sees the offset from its base. */
	a.ret = 0x1234560d;
	assert_ptr_equal(bh_iobus_read(&bus, 0x3fd, 1, &val)->opaque, &a);
	assert_int_equal(a.reads, 1);
	assert_int_equal(a.off, 5);
	assert_int_equal(a.size, 1);
	assert_int_equal(val, 0x0d);

	b.ret = 0x0d578086;
	assert_ptr_equal(bh_iobus_read(&bus, 0xcfc, 4, &val)->opaque, &b);
	assert_int_equal(b.off, 4);
	assert_int_equal(b.size, 4);
	assert_int_equal(val, 0x0d578086);
	assert_ptr_equal(bh_iobus_read(&bus, 0xcfe, 2, &val)->opaque, &b);
	assert_int_equal(b.off, 6);
	assert_int_equal(b.size, 2);
	assert_int_equal(val, 0x8086);

	assert_ptr_equal(bh_iobus_write(&bus, 0xcf8, 4, 0x80000000)->opaque,
			 &b);
	assert_int_equal(b.writes, 1);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.size, 4);
	assert_int_equal(b.val, 0x80000000);
	assert_ptr_equal(bh_iobus_write(&bus, 0x3f8, 1, 'A')->opaque, &a);
	assert_int_equal(a.writes, 1);
	assert_int_equal(a.off, 0);
	assert_int_equal(a.val, 'A');
	assert_int_equal(a.reads, 1);
	assert_int_equal(b.reads, 2);

	/* A range without a read handler reads as all ones. */
	r = io_range(0x80, 1, &a);
	r.read = NULL;
	assert_int_equal(bh_iobus_add(&bus, &r), 0);
	assert_non_null(bh_iobus_read(&bus, 0x80, 1, &val));
	assert_int_equal(val, 0xff);
	assert_int_equal(a.reads, 1);
}

/* CPUID */
#define SIG_INTEL_EBX 0x756e6547 /* "Genu" */
#define SIG_INTEL_EDX 0x49656e69 /* "ineI" */
#define SIG_INTEL_ECX 0x6c65746e /* "ntel" */
#define SIG_AMD_EBX   0x68747541 /* "Auth" */
#define SIG_AMD_EDX   0x69746e65 /* "enti" */
#define SIG_AMD_ECX   0x444d4163 /* "cAMD" */

#define CPUID_CAP 32

static struct kvm_cpuid2 *cpuid_alloc(void)
{
	struct kvm_cpuid2 *c =
	    malloc(sizeof(*c) + CPUID_CAP * sizeof(c->entries[0]));

	assert_non_null(c);
	memset(c, 0, sizeof(*c));
	/* Unused capacity stays recognisable. */
	memset(c->entries, 0xa5, CPUID_CAP * sizeof(c->entries[0]));
	return c;
}

static void cpuid_add(struct kvm_cpuid2 *c, uint32_t fn, uint32_t index,
		      uint32_t flags, uint32_t eax, uint32_t ebx, uint32_t ecx,
		      uint32_t edx)
{
	struct kvm_cpuid_entry2 *e;

	assert_true(c->nent < CPUID_CAP);
	e = &c->entries[c->nent++];
	memset(e, 0, sizeof(*e));
	e->function = fn;
	e->index = index;
	e->flags = flags;
	e->eax = eax;
	e->ebx = ebx;
	e->ecx = ecx;
	e->edx = edx;
}

/* Roughly what KVM_GET_SUPPORTED_CPUID reports, with the fields the patch
 * replaces set to junk. */
static struct kvm_cpuid2 *cpuid_fake(int amd)
{
	struct kvm_cpuid2 *c = cpuid_alloc();
	uint32_t idx = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
	unsigned int i;

	if (amd)
		cpuid_add(c, 0, 0, 0, 0x10, SIG_AMD_EBX, SIG_AMD_ECX,
			  SIG_AMD_EDX);
	else
		cpuid_add(c, 0, 0, 0, 0x1f, SIG_INTEL_EBX, SIG_INTEL_ECX,
			  SIG_INTEL_EDX);
	cpuid_add(c, 1, 0, 0, 0x000806f8, 0xff3f0000 | 0x1234, 0x77fafbff,
		  0x1f8bfbff);
	for (i = 0; i < 4; i++)
		cpuid_add(c, 4, i, idx, 0xfc00c121 + i * 0x20, 0x01c0003f, 0x3f,
			  0);
	for (i = 0; i < 3; i++)
		cpuid_add(c, 0xb, i, idx, 0xdead, 0xbeef, 0xcafe, 0xf00d);
	cpuid_add(c, 0x80000000, 0, 0, 0x80000021, 0, 0, 0);
	cpuid_add(c, 0x80000001, 0, 0, 0, 0, 0x00000121, 0x2c100800);
	cpuid_add(c, 0x80000008, 0, 0, 0x00003030, 0, 0x0003f0ff, 0);
	cpuid_add(c, 0x8000001e, 0, 0, 0xdead, 0xbeef, 0xcafe, 0);
	return c;
}

static const struct kvm_cpuid_entry2 *cpuid_get(const struct kvm_cpuid2 *c,
						uint32_t fn, uint32_t index)
{
	for (unsigned int i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn &&
		    c->entries[i].index == index)
			return &c->entries[i];
	fail_msg("leaf %#x.%u missing", fn, index);
	return NULL;
}

/* The patch changes values only: same leaves, same order, no additions. */
static void cpuid_check_shape(const struct kvm_cpuid2 *before,
			      const struct kvm_cpuid2 *after)
{
	uint8_t spare[sizeof(after->entries[0])];
	unsigned int i;

	assert_int_equal(after->nent, before->nent);
	for (i = 0; i < after->nent; i++) {
		assert_int_equal(after->entries[i].function,
				 before->entries[i].function);
		assert_int_equal(after->entries[i].index,
				 before->entries[i].index);
		assert_int_equal(after->entries[i].flags,
				 before->entries[i].flags);
	}
	memset(spare, 0xa5, sizeof(spare));
	for (i = after->nent; i < CPUID_CAP; i++)
		assert_memory_equal(&after->entries[i], spare, sizeof(spare));
}

static void cpuid_check_common(const struct kvm_cpuid2 *orig,
			       const struct kvm_cpuid2 *c, unsigned int id,
			       unsigned int n)
{
	const struct kvm_cpuid_entry2 *e, *o;
	unsigned int i;

	cpuid_check_shape(orig, c);

	e = cpuid_get(c, 1, 0);
	o = cpuid_get(orig, 1, 0);
	assert_int_equal(e->ebx >> 24, id);
	assert_int_equal((e->ebx >> 16) & 0xff, n);
	assert_int_equal((e->ebx >> 8) & 0xff, 8); /* CLFLUSH: 64 bytes */
	assert_int_equal(e->ebx & 0xff, o->ebx & 0xff);
	assert_true(e->ecx & (1u << 31));
	assert_int_equal(e->ecx & ~(1u << 31), o->ecx & ~(1u << 31));
	assert_int_equal(!!(e->edx & (1u << 28)), n > 1);
	assert_int_equal(e->edx & ~(1u << 28), o->edx & ~(1u << 28));
	assert_int_equal(e->eax, o->eax);

	/* x2APIC topology: one thread per core, n cores per package. */
	for (i = 0; i < 3; i++) {
		e = cpuid_get(c, 0xb, i);
		assert_int_equal(e->edx, id);
		assert_int_equal(e->ecx & 0xff, i);
	}
	e = cpuid_get(c, 0xb, 0);
	assert_int_equal(e->eax & 0x1f, 0);
	assert_int_equal(e->ebx, 1);
	assert_int_equal((e->ecx >> 8) & 0xff, 1); /* SMT */
	e = cpuid_get(c, 0xb, 1);
	assert_int_equal(e->eax & 0x1f, bh_cpuid_bits(n));
	assert_int_equal(e->ebx, n);
	assert_int_equal((e->ecx >> 8) & 0xff, 2); /* core */
	e = cpuid_get(c, 0xb, 2);
	assert_int_equal(e->ebx, 0);
	assert_int_equal((e->ecx >> 8) & 0xff, 0); /* invalid: the end */

	/* The vendor leaf is left alone. */
	assert_memory_equal(cpuid_get(c, 0, 0), cpuid_get(orig, 0, 0),
			    sizeof(*e));
	assert_memory_equal(cpuid_get(c, 0x80000000, 0),
			    cpuid_get(orig, 0x80000000, 0), sizeof(*e));
}

static struct kvm_cpuid2 *cpuid_copy(const struct kvm_cpuid2 *c)
{
	size_t sz = sizeof(*c) + CPUID_CAP * sizeof(c->entries[0]);
	struct kvm_cpuid2 *d = malloc(sz);

	assert_non_null(d);
	memcpy(d, c, sz);
	return d;
}

/* Up to BH_MAX_VCPUS (254): past 64 some fields no longer fit as is. */
static const unsigned int cpuid_counts[] = { 1, 2, 3, 4, 8, 16, 64, 65, 254 };

static void test_cpuid_intel(void **state)
{
	struct kvm_cpuid2 *orig = cpuid_fake(0);
	size_t k;

	for (k = 0; k < ARRAY_SIZE(cpuid_counts); k++) {
		unsigned int n = cpuid_counts[k];

		for (unsigned int id = 0; id < n; id++) {
			struct kvm_cpuid2 *c = cpuid_copy(orig);
			const struct kvm_cpuid_entry2 *e, *o;
			unsigned int i;

			bh_cpuid_patch(c, id, n);
			cpuid_check_common(orig, c, id, n);

			/* Leaf 4: cores per package - 1 in EAX[31:26],
			 * saturated at the field's 63, and threads sharing
			 * each cache - 1 = 0. */
			for (i = 0; i < 4; i++) {
				e = cpuid_get(c, 4, i);
				o = cpuid_get(orig, 4, i);
				assert_int_equal(e->eax >> 26,
						 n - 1 < 63 ? n - 1 : 63);
				assert_int_equal((e->eax >> 14) & 0xfff, 0);
				assert_int_equal(e->eax & 0x3fff,
						 o->eax & 0x3fff);
				assert_int_equal(e->ebx, o->ebx);
				assert_int_equal(e->ecx, o->ecx);
			}
			/* AMD-only leaves stay as KVM reported them. */
			assert_memory_equal(cpuid_get(c, 0x80000001, 0),
					    cpuid_get(orig, 0x80000001, 0),
					    sizeof(*e));
			assert_memory_equal(cpuid_get(c, 0x80000008, 0),
					    cpuid_get(orig, 0x80000008, 0),
					    sizeof(*e));
			assert_memory_equal(cpuid_get(c, 0x8000001e, 0),
					    cpuid_get(orig, 0x8000001e, 0),
					    sizeof(*e));
			free(c);
		}
	}
	free(orig);
}

static void test_cpuid_amd(void **state)
{
	struct kvm_cpuid2 *orig = cpuid_fake(1);
	size_t k;

	for (k = 0; k < ARRAY_SIZE(cpuid_counts); k++) {
		unsigned int n = cpuid_counts[k];

		for (unsigned int id = 0; id < n; id++) {
			struct kvm_cpuid2 *c = cpuid_copy(orig);
			const struct kvm_cpuid_entry2 *e, *o;
			unsigned int i;

			bh_cpuid_patch(c, id, n);
			cpuid_check_common(orig, c, id, n);

			/* Intel's leaf 4 means nothing on AMD. */
			for (i = 0; i < 4; i++)
				assert_memory_equal(cpuid_get(c, 4, i),
						    cpuid_get(orig, 4, i),
						    sizeof(*e));

			e = cpuid_get(c, 0x80000001, 0);
			o = cpuid_get(orig, 0x80000001, 0);
			assert_int_equal(!!(e->ecx & 2), n > 1); /* CmpLegacy */
			assert_int_equal(e->ecx & ~2u, o->ecx & ~2u);
			assert_int_equal(e->edx, o->edx);

			e = cpuid_get(c, 0x80000008, 0);
			o = cpuid_get(orig, 0x80000008, 0);
			assert_int_equal(e->ecx & 0xff, n - 1);
			assert_int_equal((e->ecx >> 12) & 0xf,
					 bh_cpuid_bits(n));
			assert_int_equal(e->ecx & ~0xf0ffu, o->ecx & ~0xf0ffu);
			assert_int_equal(e->eax, o->eax);

			e = cpuid_get(c, 0x8000001e, 0);
			assert_int_equal(e->eax, id);
			assert_int_equal(e->ebx & 0xff, id);
			assert_int_equal((e->ebx >> 8) & 0xff, 0);
			free(c);
		}
	}
	free(orig);
}

static void test_cpuid_missing_leaves(void **state)
{
	struct kvm_cpuid2 *c = cpuid_alloc(), *orig;
	const struct kvm_cpuid_entry2 *e;

	/* No leaf 0xb, 4, or extended leaves: none appear. */
	cpuid_add(c, 0, 0, 0, 0xd, SIG_INTEL_EBX, SIG_INTEL_ECX, SIG_INTEL_EDX);
	cpuid_add(c, 1, 0, 0, 0x000806f8, 0, 0, 0x10000000);
	cpuid_add(c, 7, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 0, 0x1234, 0, 0);
	orig = cpuid_copy(c);
	bh_cpuid_patch(c, 0, 1);
	cpuid_check_shape(orig, c);
	e = cpuid_get(c, 1, 0);
	assert_int_equal(e->edx & (1u << 28), 0);
	assert_int_equal(e->ebx >> 16, 0x0001);
	assert_memory_equal(cpuid_get(c, 7, 0), cpuid_get(orig, 7, 0),
			    sizeof(*e));
	free(orig);

	/* An empty table stays empty. */
	free(c);
	c = cpuid_alloc();
	orig = cpuid_copy(c);
	bh_cpuid_patch(c, 3, 4);
	cpuid_check_shape(orig, c);
	free(orig);
	free(c);
}

static void test_cpuid_bits(void **state)
{
	assert_int_equal(bh_cpuid_bits(1), 0);
	assert_int_equal(bh_cpuid_bits(2), 1);
	assert_int_equal(bh_cpuid_bits(3), 2);
	assert_int_equal(bh_cpuid_bits(4), 2);
	assert_int_equal(bh_cpuid_bits(5), 3);
	assert_int_equal(bh_cpuid_bits(8), 3);
	assert_int_equal(bh_cpuid_bits(9), 4);
	assert_int_equal(bh_cpuid_bits(255), 8);
	assert_int_equal(bh_cpuid_bits(256), 8);
	assert_int_equal(bh_cpuid_bits(257), 9);
}

/* exitstats */
static uint64_t exit_key(enum bh_exit_kind kind, uint64_t addr)
{
	return ((uint64_t)kind << 56) | addr;
}

static uint64_t exit_count(const struct bh_exitstats *s, uint64_t key)
{
	for (unsigned int i = 0; i < BH_EXITSTATS_SLOTS; i++)
		if (s->slots[i].key == key)
			return s->slots[i].count;
	return 0;
}

static unsigned int exit_used(const struct bh_exitstats *s)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < BH_EXITSTATS_SLOTS; i++)
		if (s->slots[i].key)
			n++;
	return n;
}

static uint64_t exit_sum(const struct bh_exitstats *s)
{
	uint64_t sum = s->overflow;

	for (unsigned int i = 0; i < BH_EXITSTATS_SLOTS; i++)
		sum += s->slots[i].count;
	return sum;
}

static struct bh_exitstats *exit_alloc(void)
{
	struct bh_exitstats *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	return s;
}

static void exit_repeat(struct bh_exitstats *s, enum bh_exit_kind kind,
			uint64_t addr, int n)
{
	while (n-- > 0)
		bh_exitstats_count(s, kind, addr);
}

static void test_exitstats_count(void **state)
{
	struct bh_exitstats *s = exit_alloc();

	exit_repeat(s, BH_EXIT_IO_OUT, 0x3f8, 5);
	exit_repeat(s, BH_EXIT_IO_IN, 0x3f8, 2);
	exit_repeat(s, BH_EXIT_IO_IN, 0x3fd, 3);
	exit_repeat(s, BH_EXIT_MMIO_READ, 0xd0000000, 4);
	exit_repeat(s, BH_EXIT_MMIO_WRITE, 0xd0000000, 1);
	exit_repeat(s, BH_EXIT_OTHER, 5, 6);
	exit_repeat(s, BH_EXIT_IO_OUT, 0x3f8, 1);

	assert_int_equal(s->total, 22);
	assert_int_equal(s->overflow, 0);
	assert_int_equal(exit_used(s), 6);
	assert_int_equal(exit_count(s, exit_key(BH_EXIT_IO_OUT, 0x3f8)), 6);
	assert_int_equal(exit_count(s, exit_key(BH_EXIT_IO_IN, 0x3f8)), 2);
	assert_int_equal(exit_count(s, exit_key(BH_EXIT_IO_IN, 0x3fd)), 3);
	assert_int_equal(exit_count(s, exit_key(BH_EXIT_MMIO_READ, 0xd0000000)),
			 4);
	assert_int_equal(
	    exit_count(s, exit_key(BH_EXIT_MMIO_WRITE, 0xd0000000)), 1);
	assert_int_equal(exit_count(s, exit_key(BH_EXIT_OTHER, 5)), 6);
	assert_int_equal(exit_sum(s), s->total);
	free(s);
}

static void test_exitstats_merge(void **state)
{
	struct bh_exitstats *a = exit_alloc(), *b = exit_alloc();
	struct bh_exitstats *all = exit_alloc();

	exit_repeat(a, BH_EXIT_IO_OUT, 0x3f8, 10);
	exit_repeat(a, BH_EXIT_OTHER, 5, 2);
	exit_repeat(b, BH_EXIT_IO_OUT, 0x3f8, 7);
	exit_repeat(b, BH_EXIT_MMIO_READ, 0xd0000000, 3);
	b->overflow = 4; /* as if b had run out of slots */
	b->total += 4;

	bh_exitstats_merge(all, a);
	bh_exitstats_merge(all, b);
	assert_int_equal(all->total, 12 + 14);
	assert_int_equal(all->overflow, 4);
	assert_int_equal(exit_used(all), 3);
	assert_int_equal(exit_count(all, exit_key(BH_EXIT_IO_OUT, 0x3f8)), 17);
	assert_int_equal(exit_count(all, exit_key(BH_EXIT_OTHER, 5)), 2);
	assert_int_equal(
	    exit_count(all, exit_key(BH_EXIT_MMIO_READ, 0xd0000000)), 3);
	assert_int_equal(exit_sum(all), all->total);

	/* The sources are untouched. */
	assert_int_equal(a->total, 12);
	assert_int_equal(exit_count(a, exit_key(BH_EXIT_IO_OUT, 0x3f8)), 10);

	/* Merging again adds again. */
	bh_exitstats_merge(all, a);
	assert_int_equal(all->total, 38);
	assert_int_equal(exit_count(all, exit_key(BH_EXIT_IO_OUT, 0x3f8)), 27);
	free(a);
	free(b);
	free(all);
}

static void test_exitstats_sorted(void **state)
{
	struct bh_exitstats *s = exit_alloc();
	unsigned int idx[BH_EXITSTATS_SLOTS];
	size_t n, i;

	exit_repeat(s, BH_EXIT_IO_IN, 0x64, 3);
	exit_repeat(s, BH_EXIT_IO_OUT, 0x3f8, 50);
	exit_repeat(s, BH_EXIT_OTHER, 5, 1);
	exit_repeat(s, BH_EXIT_MMIO_WRITE, 0xfee000b0, 20);
	exit_repeat(s, BH_EXIT_IO_OUT, 0x80, 7);
	for (i = 0; i < 40; i++)
		bh_exitstats_count(s, BH_EXIT_IO_IN, 0x1000 + i);

	n = bh_exitstats_sorted(s, idx, ARRAY_SIZE(idx));
	assert_int_equal(n, 45);
	for (i = 0; i < n; i++) {
		assert_true(idx[i] < BH_EXITSTATS_SLOTS);
		assert_int_not_equal(s->slots[idx[i]].key, 0);
		if (i)
			assert_true(s->slots[idx[i - 1]].count >=
				    s->slots[idx[i]].count);
	}
	assert_int_equal(s->slots[idx[0]].key, exit_key(BH_EXIT_IO_OUT, 0x3f8));
	assert_int_equal(s->slots[idx[1]].key,
			 exit_key(BH_EXIT_MMIO_WRITE, 0xfee000b0));
	assert_int_equal(s->slots[idx[2]].key, exit_key(BH_EXIT_IO_OUT, 0x80));
	assert_int_equal(s->slots[idx[3]].key, exit_key(BH_EXIT_IO_IN, 0x64));
	/* Each used slot exactly once. */
	for (i = 1; i < n; i++)
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(idx[i], idx[j]);

	/* An empty table has nothing to sort. */
	memset(s, 0, sizeof(*s));
	assert_int_equal(bh_exitstats_sorted(s, idx, ARRAY_SIZE(idx)), 0);
	free(s);
}

static void test_exitstats_describe(void **state)
{
	char buf[48];

	bh_exitstats_describe(exit_key(BH_EXIT_IO_OUT, 0x3f8), buf,
			      sizeof(buf));
	assert_string_equal(buf, "io-out 0x3f8");
	bh_exitstats_describe(exit_key(BH_EXIT_IO_IN, 0x64), buf, sizeof(buf));
	assert_string_equal(buf, "io-in 0x64");
	bh_exitstats_describe(exit_key(BH_EXIT_MMIO_READ, 0xd0000000), buf,
			      sizeof(buf));
	assert_string_equal(buf, "mmio-read 0xd0000000");
	bh_exitstats_describe(exit_key(BH_EXIT_MMIO_WRITE, 0xfee000b0), buf,
			      sizeof(buf));
	assert_string_equal(buf, "mmio-write 0xfee000b0");
	bh_exitstats_describe(exit_key(BH_EXIT_OTHER, 5), buf, sizeof(buf));
	assert_string_equal(buf, "exit-reason 5");
	bh_exitstats_describe(exit_key(BH_EXIT_OTHER, 17), buf, sizeof(buf));
	assert_string_equal(buf, "exit-reason 17");

	/* Small buffers are truncated, not overrun. */
	memset(buf, 'x', sizeof(buf));
	bh_exitstats_describe(exit_key(BH_EXIT_MMIO_READ, 0xd0000000), buf, 8);
	assert_string_equal(buf, "mmio-re");
	assert_int_equal(buf[8], 'x');
}

static void test_exitstats_overflow(void **state)
{
	struct bh_exitstats *s = exit_alloc(), *all = exit_alloc();
	unsigned int extra = 40, i;

	for (i = 0; i < BH_EXITSTATS_SLOTS + extra; i++)
		bh_exitstats_count(s, BH_EXIT_IO_IN, i);
	assert_int_equal(s->total, BH_EXITSTATS_SLOTS + extra);
	assert_int_equal(exit_used(s), BH_EXITSTATS_SLOTS);
	assert_int_equal(s->overflow, extra);
	assert_int_equal(exit_sum(s), s->total);

	/* A key that has a slot still counts there. */
	bh_exitstats_count(s, BH_EXIT_IO_IN, 0);
	assert_int_equal(exit_count(s, exit_key(BH_EXIT_IO_IN, 0)), 2);
	assert_int_equal(s->overflow, extra);
	/* A new key does not. */
	bh_exitstats_count(s, BH_EXIT_IO_OUT, 0x3f8);
	assert_int_equal(s->overflow, extra + 1);
	assert_int_equal(s->total, BH_EXITSTATS_SLOTS + extra + 2);
	assert_int_equal(exit_sum(s), s->total);

	/* Merging a full table keeps every count. */
	bh_exitstats_count(all, BH_EXIT_OTHER, 5);
	bh_exitstats_merge(all, s);
	assert_int_equal(all->total, s->total + 1);
	assert_int_equal(exit_used(all), BH_EXITSTATS_SLOTS);
	assert_int_equal(exit_sum(all), all->total);
	assert_int_equal(exit_count(all, exit_key(BH_EXIT_OTHER, 5)), 1);
	free(s);
	free(all);
}

/* ---- guest RAM advice -------------------------------------------------- */

/* The VmFlags line of the mapping at addr in /proc/self/smaps, or "". */
static void vmflags_of(void *addr, char *out, size_t outlen)
{
	char line[512];
	int in_it = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	out[0] = 0;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		/* A mapping's first line is "lo-hi perms ..."; the others
		 * are "Name: value", which never parse as two numbers. */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			in_it = lo == (unsigned long)(uintptr_t)addr;
		} else if (in_it && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(out, outlen, "%s", line + 8);
			break;
		}
	}
	fclose(f);
}

static int has_flag(const char *flags, const char *flag)
{
	char padded[8];

	snprintf(padded, sizeof(padded), " %s ", flag);
	return strstr(flags, padded) != NULL;
}

/* The runner's mapping of a memfd, as guest RAM is mapped: no core dump,
 * not inherited, and huge pages asked for wherever the kernel has them. */
static void test_guestmem_advise(void **state)
{
	size_t len = 4u << 20;
	char flags[512];
	int thp = access("/sys/kernel/mm/transparent_hugepage", F_OK) == 0;
	int fd = memfd_create("guest-ram", MFD_CLOEXEC);
	unsigned int taken;
	void *p;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		 fd, 0);
	assert_true(p != MAP_FAILED);

	vmflags_of(p, flags, sizeof(flags));
	assert_true(flags[0] != 0);
	assert_false(has_flag(flags, "hg"));
	assert_false(has_flag(flags, "dd"));

	taken = bh_guestmem_advise(p, len);
	assert_int_equal(taken & (BH_GUESTMEM_DONTDUMP | BH_GUESTMEM_DONTFORK),
			 BH_GUESTMEM_DONTDUMP | BH_GUESTMEM_DONTFORK);
	/* A kernel with transparent huge pages takes the advice. */
	assert_int_equal(!!(taken & BH_GUESTMEM_HUGEPAGE), thp);

	vmflags_of(p, flags, sizeof(flags));
	assert_true(has_flag(flags, "dd"));
	assert_true(has_flag(flags, "dc"));
	assert_int_equal(has_flag(flags, "hg"), thp);

	munmap(p, len);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_uart_probe, uart_setup,
						uart_teardown),
		cmocka_unit_test_setup_teardown(test_uart_thri, uart_setup,
						uart_teardown),
		cmocka_unit_test_setup_teardown(test_uart_out2_gates_irq,
						uart_setup, uart_teardown),
		cmocka_unit_test_setup_teardown(test_uart_output_lines,
						uart_setup, uart_teardown),
		cmocka_unit_test_setup_teardown(test_uart_output_full_buffer,
						uart_setup, uart_teardown),
		cmocka_unit_test_setup_teardown(test_uart_receive, uart_setup,
						uart_teardown),
		cmocka_unit_test_setup_teardown(test_uart_receive_full,
						uart_setup, uart_teardown),
		cmocka_unit_test_setup_teardown(test_uart_loopback, uart_setup,
						uart_teardown),
		cmocka_unit_test(test_cmos_time),
		cmocka_unit_test(test_cmos_12h),
		cmocka_unit_test(test_cmos_status_registers),
		cmocka_unit_test(test_cmos_nvram),
		cmocka_unit_test(test_cmos_time_writes_ignored),
		cmocka_unit_test(test_cmos_memory_size),
		cmocka_unit_test(test_pci_address_register),
		cmocka_unit_test(test_pci_host_bridge),
		cmocka_unit_test(test_pci_absent),
		cmocka_unit_test(test_pci_host_bridge_writes),
		cmocka_unit_test(test_iobus_add),
		cmocka_unit_test(test_iobus_find),
		cmocka_unit_test(test_iobus_dispatch),
		cmocka_unit_test(test_cpuid_intel),
		cmocka_unit_test(test_cpuid_amd),
		cmocka_unit_test(test_cpuid_missing_leaves),
		cmocka_unit_test(test_cpuid_bits),
		cmocka_unit_test(test_exitstats_count),
		cmocka_unit_test(test_exitstats_merge),
		cmocka_unit_test(test_exitstats_sorted),
		cmocka_unit_test(test_exitstats_describe),
		cmocka_unit_test(test_exitstats_overflow),
		cmocka_unit_test(test_guestmem_advise),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
